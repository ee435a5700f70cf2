//! Writes the seed corpora of the fuzz targets into `corpus/<target>/` (replacing what is
//! there). Deterministic: running it again gives the same files. From the repository root:
//!
//! ```text
//! cargo run --manifest-path firmware/fuzz/Cargo.toml --example seeds
//! ```
//!
//! - `frame`: one encoded frame of each kind, built with `Frame::encode`;
//! - `event`: the wire bytes of every vector in `tests/vectors/events.json`;
//! - `config`: the built-in defaults file and every board drop-in;
//! - `recon`: what the node under test receives in a normal session with a peer, in each
//!   mode of the target (see `basis_fuzz::chunks`).

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use basis_core::{ChunkList, EventId};
use basis_fuzz::chunks::{self, RAW, RECON};
use basis_fuzz::{EXPORTER, LOCAL, PEER, PEER_TO, all_events, config, local_items, peer_items};
use basis_proto::frame::{
    ChunkRange, FileFrame, FileHave, Frame, Notice, NoticeKind, PeerInfo, Presence,
};
use basis_proto::link::event_frames;
use basis_proto::recon::{Initiator, Responder, Step};
use basis_proto::{Action, ItemSource, Link, Role};

fn main() {
    let fuzz_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let repo = fuzz_dir.join("../..");
    let corpus = fuzz_dir.join("corpus");
    let mut total = 0;
    for (target, seeds) in [
        ("frame", frame_seeds()),
        ("event", event_seeds(&repo)),
        ("config", config_seeds(&repo)),
        ("recon", recon_seeds()),
    ] {
        let dir = corpus.join(target);
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("remove the old seeds");
        }
        fs::create_dir_all(&dir).expect("create the corpus directory");
        for (name, bytes) in &seeds {
            fs::write(dir.join(name), bytes).expect("write a seed");
            total += bytes.len();
        }
        println!("{target}: {} seeds", seeds.len());
    }
    println!("{total} bytes in all, in {}", corpus.display());
}

type Seeds = Vec<(String, Vec<u8>)>;

/// A file name from a description: lowercase letters and digits, dashes between words.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn frame_seeds() -> Seeds {
    let event = all_events()[1].bytes().to_vec();
    let addrs: Vec<SocketAddr> = vec![
        "192.0.2.7:7400".parse().expect("an address"),
        "[2001:db8::7]:7400".parse().expect("an address"),
    ];
    let (_, first) = Initiator::start(local_items()).expect("an initiator");
    let frames = [
        ("hello", basis_fuzz::peer_hello(Role::Acceptor)),
        ("peers", Frame::Peers(vec![PeerInfo { node: PEER, addrs }])),
        ("recon", Frame::Recon(first)),
        ("recon-end", Frame::ReconEnd),
        (
            "want",
            Frame::Want(vec![all_events()[1].id(), EventId([9; 32])]),
        ),
        ("want-end", Frame::WantEnd),
        (
            "catch-up",
            Frame::CatchUp(Some(all_events()[1].event().content.time.0)),
        ),
        ("catch-up-all", Frame::CatchUp(None)),
        ("catch-up-end", Frame::CatchUpEnd),
        (
            "slice",
            Frame::Slice {
                from: 0,
                to: all_events()[1].event().content.time.0,
            },
        ),
        ("events", Frame::Events(vec![event.clone(), event])),
        ("bye", Frame::Bye("shutting down".into())),
        (
            "notice-typing",
            Frame::Notice(Notice {
                user: all_events()[0].event().content.author,
                room: Some(all_events()[0].room()),
                kind: NoticeKind::Typing(true),
            }),
        ),
        (
            "notice-presence",
            Frame::Notice(Notice {
                user: all_events()[0].event().content.author,
                room: None,
                kind: NoticeKind::Presence(Presence::Away),
            }),
        ),
        (
            "file-have",
            Frame::File(FileFrame::Have(vec![FileHave {
                address: [3; 32],
                ranges: vec![ChunkRange { start: 0, end: 3 }],
            }])),
        ),
        (
            "file-want",
            Frame::File(FileFrame::Want {
                address: [3; 32],
                list: true,
                ranges: vec![ChunkRange { start: 1, end: 3 }],
            }),
        ),
        (
            "file-list",
            Frame::File(FileFrame::List {
                address: [3; 32],
                bytes: ChunkList {
                    chunk_size: 1024,
                    size: 2058,
                    hashes: vec![[0; 32]; 3],
                }
                .to_bytes(),
            }),
        ),
        (
            "file-chunk",
            Frame::File(FileFrame::Chunk {
                address: [3; 32],
                index: 2,
                bytes: vec![0; 26],
            }),
        ),
        (
            "file-lacks",
            Frame::File(FileFrame::Lacks {
                address: [3; 32],
                list: false,
                ranges: vec![ChunkRange { start: 0, end: 1 }],
            }),
        ),
    ];
    frames
        .into_iter()
        .map(|(name, frame)| (name.to_string(), frame.encode()))
        .collect()
}

fn event_seeds(repo: &Path) -> Seeds {
    let path = repo.join("tests/vectors/events.json");
    let text = fs::read_to_string(&path).expect("read tests/vectors/events.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("the vectors are JSON");
    let mut seeds = Vec::new();
    for kind in ["valid", "invalid"] {
        let list = json[kind].as_array().expect("a list of vectors");
        for (i, v) in list.iter().enumerate() {
            let name = v["name"].as_str().expect("a name");
            let hex = v["event_hex"].as_str().expect("event_hex");
            let bytes = hex::decode(hex).expect("event_hex is hex");
            seeds.push((format!("{kind}-{i:02}-{}", slug(name)), bytes));
        }
    }
    seeds
}

fn config_seeds(repo: &Path) -> Seeds {
    let mut seeds = vec![(
        "defaults.toml".to_string(),
        fs::read(repo.join("firmware/basis-config/src/defaults.toml")).expect("read defaults"),
    )];
    let boards = repo.join("board-configs/available.d");
    let mut files: Vec<PathBuf> = fs::read_dir(&boards)
        .expect("list the board configs")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for path in files {
        let name = path.file_name().expect("a file name").to_string_lossy();
        seeds.push((
            format!("board-{name}"),
            fs::read(&path).expect("read a board file"),
        ));
    }
    seeds
}

fn recon_seeds() -> Seeds {
    let mut seeds = Vec::new();
    // The bare handler: the messages of a session between the fixture and the peer's set.
    let (to_responder, to_initiator) = recon_session();
    let mut input = vec![chunks::RESPONDER];
    for m in &to_responder {
        chunks::push(&mut input, 0, m);
    }
    seeds.push(("responder-session".into(), input));
    let mut input = vec![chunks::INITIATOR];
    for m in &to_initiator {
        chunks::push(&mut input, 0, m);
    }
    seeds.push(("initiator-session".into(), input));
    // A link in each role: what the peer sends it in a normal session.
    for (mode, role, name) in [
        (chunks::LINK_ACCEPTOR, Role::Acceptor, "acceptor"),
        (chunks::LINK_DIALER, Role::Dialer, "dialer"),
    ] {
        let (hello, frames) = link_session(role);
        let mut raw = vec![mode];
        let mut wrapped = vec![mode];
        for f in &frames {
            chunks::push(&mut raw, RAW, &f.encode());
            match f {
                Frame::Recon(m) => chunks::push(&mut wrapped, RECON, m),
                other => chunks::push(&mut wrapped, RAW, &other.encode()),
            }
        }
        let mut unadmitted = vec![mode | chunks::NO_ADMISSION];
        chunks::push(&mut unadmitted, RAW, &hello.encode());
        unadmitted.extend_from_slice(&raw[1..]);
        seeds.push((format!("link-{name}-session"), raw));
        seeds.push((format!("link-{name}-session-recon-chunks"), wrapped));
        seeds.push((format!("link-{name}-session-with-hello"), unadmitted));
    }
    seeds
}

/// A session between an initiator over the peer's items and a responder over the fixture,
/// and one the other way round: the messages the fixture's responder receives, and the
/// replies the fixture's initiator receives.
fn recon_session() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let (mut init, mut msg) = Initiator::start(peer_items()).expect("an initiator");
    let mut resp = Responder::new(local_items()).expect("a responder");
    let mut to_responder = Vec::new();
    loop {
        to_responder.push(msg.clone());
        let reply = resp.reply(&msg).expect("an honest reply");
        match init.step(&reply).expect("an honest step") {
            Step::Continue(next) => msg = next,
            Step::Done { .. } => break,
        }
    }
    let (mut init, mut msg) = Initiator::start(local_items()).expect("an initiator");
    let mut resp = Responder::new(peer_items()).expect("a responder");
    let mut to_initiator = Vec::new();
    loop {
        let reply = resp.reply(&msg).expect("an honest reply");
        to_initiator.push(reply.clone());
        match init.step(&reply).expect("an honest step") {
            Step::Continue(next) => msg = next,
            Step::Done { .. } => break,
        }
    }
    (to_responder, to_initiator)
}

/// The events one node of a seed session holds.
struct Store(BTreeMap<EventId, (u64, Vec<u8>)>);

impl ItemSource for Store {
    fn items(
        &mut self,
        _scope: Option<&[basis_core::RoomId]>,
        items: &mut basis_proto::recon::Items,
    ) -> Result<(), String> {
        for (id, (ts, _)) in &self.0 {
            items.push(*ts, *id).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// One node's side of an in-memory link.
struct Side {
    link: Link,
    store: Store,
}

fn side(link: Link, items: Vec<(u64, EventId)>) -> Side {
    let by_id: BTreeMap<EventId, Vec<u8>> = all_events()
        .iter()
        .map(|e| (e.id(), e.bytes().to_vec()))
        .collect();
    let events = items
        .into_iter()
        .map(|(ts, id)| (id, (ts, by_id[&id].clone())))
        .collect();
    Side {
        link,
        store: Store(events),
    }
}

/// Sends the held events among `ids`, newest first, as the driver does.
fn send_events(s: &mut Side, ids: &[EventId], outbox: &mut VecDeque<Frame>) {
    let mut raws: Vec<(u64, Vec<u8>)> = ids
        .iter()
        .filter_map(|id| s.store.0.get(id).cloned())
        .collect();
    raws.sort_by_key(|r| std::cmp::Reverse(r.0));
    outbox.extend(event_frames(raws.into_iter().map(|(_, r)| r).collect()));
    s.link.sent(ids);
}

/// Carries out a side's actions; frames go to `outbox`.
fn apply(s: &mut Side, actions: Vec<Action>, outbox: &mut VecDeque<Frame>) {
    for action in actions {
        match action {
            Action::Send(frame) => outbox.push_back(frame),
            Action::Store(events) => {
                for e in events {
                    let ts = e.event().content.time.0;
                    s.store.0.insert(e.id(), (ts, e.bytes().to_vec()));
                }
            }
            Action::SendEvents(ids) => send_events(s, &ids, outbox),
            // A catch-up: every held event newer than `after`.
            Action::SendNewer(after) => {
                let ids: Vec<EventId> = s
                    .store
                    .0
                    .iter()
                    .filter(|(_, (ts, _))| after.is_none_or(|a| *ts > a))
                    .map(|(id, _)| *id)
                    .collect();
                send_events(s, &ids, outbox);
                outbox.push_back(Frame::CatchUpEnd);
            }
            Action::Close(reason) => panic!("the seed session closed: {reason}"),
            Action::Penalize { reason, .. } => panic!("the seed session penalized: {reason}"),
            _ => {}
        }
    }
}

/// A normal session between the node under test (fixture items, in `role`) and a peer
/// holding other items. Returns the peer's hello and every later frame it sent.
fn link_session(role: Role) -> (Frame, Vec<Frame>) {
    let now = Instant::now();
    let (local_link, local_hello) = Link::new(config(LOCAL), role, PEER, EXPORTER);
    let (peer_link, peer_hello) = Link::new(config(PEER), role.peer(), LOCAL, EXPORTER);
    let mut local = side(local_link, local_items());
    let mut peer = side(peer_link, peer_items());
    let (mut to_local, mut to_peer) = (VecDeque::new(), VecDeque::new());
    apply(&mut local, local_hello, &mut to_peer);
    apply(&mut peer, peer_hello, &mut to_local);
    let hello = to_local.front().cloned().expect("the peer's hello");
    let mut recorded = Vec::new();
    for _ in 0..10_000 {
        if to_local.is_empty() && to_peer.is_empty() {
            assert!(local.link.is_open() && peer.link.is_open());
            assert_eq!(
                local.store.0.len(),
                1 + PEER_TO,
                "the session did not converge"
            );
            // The hello is recorded apart: the fuzz target admits the peer itself.
            return (hello, recorded.split_off(1));
        }
        if let Some(frame) = to_peer.pop_front() {
            let acts = peer.link.on_frame(&frame.encode(), now, &mut peer.store);
            apply(&mut peer, acts, &mut to_local);
        }
        if let Some(frame) = to_local.pop_front() {
            recorded.push(match &frame {
                // negentropy lists the ids a side lacks in hash-set order; sorted, the
                // seeds come out the same on every run (the receiver sorts a want list by
                // time anyway).
                Frame::Want(ids) => {
                    let mut ids = ids.clone();
                    ids.sort();
                    Frame::Want(ids)
                }
                other => other.clone(),
            });
            let acts = local.link.on_frame(&frame.encode(), now, &mut local.store);
            apply(&mut local, acts, &mut to_peer);
        }
    }
    panic!("the seed session never went quiet");
}
