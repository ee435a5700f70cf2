//! A peer that knows the federation secret but lies: garbage frames, oversize frames and
//! forged events. It is cut off and banned, nothing of it is stored, and honest replication
//! goes on. The hostile peer is this test, speaking the wire protocol over QUIC on loopback.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use basis_core::body::{Body, MessageBody};
use basis_core::{EventContent, NodeKey, PROTOCOL_VERSION, RoomId, Timestamp, UserKey};
use basis_proto::admission::EXPORTER_LABEL;
use basis_proto::frame::Frame;
use basis_proto::{FederationKey, Role};
use bytes::Bytes;
use common::{Node, count_events, open_db_ro, wait_until};
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

const SECRET: &str = "blue river 42";

/// An honest node on a port of its own choosing (0: the port is read back with
/// [`Node::quic_port`]), dialling the node at `peer_port` when given.
fn honest(peer_port: Option<u16>) -> Node {
    let peers = peer_port
        .map(|p| format!("peers = [\"127.0.0.1:{p}\"]"))
        .unwrap_or_default();
    let mut n = Node::with_config_extra(&format!(
        "[federation]\nsecret = \"{SECRET}\"\nport = 0\nmdns = false\nreconcile_secs = 5\n{peers}\n"
    ));
    n.start();
    n
}

/// A lying peer's open link: admitted with the real secret, then free to misbehave.
struct Liar {
    conn: quinn::Connection,
    tx: FramedWrite<quinn::SendStream, LengthDelimitedCodec>,
    rx: FramedRead<quinn::RecvStream, LengthDelimitedCodec>,
    _endpoint: quinn::Endpoint,
}

fn codec() -> LengthDelimitedCodec {
    // The liar's own codec takes large frames so that it can send them.
    LengthDelimitedCodec::builder()
        .max_frame_length(64 * 1024 * 1024)
        .new_codec()
}

async fn handshake(key: &NodeKey, target: SocketAddr) -> (quinn::Endpoint, quinn::Connection) {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(basis_net::tls::client_config(key).unwrap());
    let conn = endpoint
        .connect(target, "basis.invalid")
        .unwrap()
        .await
        .expect("the QUIC handshake succeeds (the liar has a valid key)");
    (endpoint, conn)
}

async fn connect(key: &NodeKey, target: SocketAddr, hello: bool) -> Liar {
    let (endpoint, conn) = handshake(key, target).await;
    let (send, recv) = conn.open_bi().await.unwrap();
    let mut liar = Liar {
        conn,
        tx: FramedWrite::new(send, codec()),
        rx: FramedRead::new(recv, codec()),
        _endpoint: endpoint,
    };
    if hello {
        let mut exporter = [0u8; 32];
        liar.conn
            .export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
            .unwrap();
        let proof =
            FederationKey::from_secret(SECRET.as_bytes()).prove(&exporter, Role::Dialer, &key.id());
        let hello = Frame::Hello {
            version: basis_proto::PROTOCOL_VERSION,
            node: key.id(),
            name: "liar".into(),
            proof,
            boot: 1,
            dial: 1,
        };
        liar.send(hello.encode()).await;
        // The node answers with its own hello: admitted.
        let first = liar.rx.next().await.expect("a reply").expect("a frame");
        assert!(
            matches!(Frame::decode(&first), Ok(Frame::Hello { .. })),
            "{first:?}"
        );
    }
    liar
}

impl Liar {
    async fn send(&mut self, bytes: Vec<u8>) {
        let _ = self.tx.send(Bytes::from(bytes)).await;
    }

    /// Waits until the node closes the connection; returns its reason.
    async fn closed(&mut self) -> String {
        // Drain whatever the node still sends (its recon messages, a bye).
        let drain = async { while let Some(Ok(_)) = self.rx.next().await {} };
        let _ = tokio::time::timeout(Duration::from_secs(20), drain).await;
        match tokio::time::timeout(Duration::from_secs(20), self.conn.closed()).await {
            Ok(quinn::ConnectionError::ApplicationClosed(c)) => {
                String::from_utf8_lossy(&c.reason).into_owned()
            }
            Ok(other) => other.to_string(),
            Err(_) => panic!("the node did not cut off the hostile peer"),
        }
    }
}

fn forged_event(room: RoomId, text: &str) -> (Vec<u8>, Vec<u8>) {
    let author = UserKey::from_secret([3; 32]);
    let impostor = UserKey::from_secret([4; 32]);
    let content = EventContent {
        version: PROTOCOL_VERSION,
        room: Some(room),
        author: author.id(),
        parents: vec![],
        time: Timestamp::new(1_800_000_000_000, 0),
        body: Body::Message(MessageBody::Text { text: text.into() }),
    };
    let event = content.sign(&impostor);
    (event.to_bytes(), event.id().0.to_vec())
}

/// How long honest replication may take.
const SYNC: Duration = Duration::from_secs(60);

#[test]
fn liars_are_cut_off_and_banned_while_honest_replication_goes_on() {
    let a = honest(None);
    let pa = a.quic_port();
    let b = honest(Some(pa));
    let target: SocketAddr = format!("127.0.0.1:{pa}").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let room = RoomId(
        a.append_json(&["--count", "1"])[0]
            .id
            .parse::<basis_core::EventId>()
            .unwrap()
            .0,
    );
    wait_until(SYNC, "b to replicate a's first events", || {
        count_events(&open_db_ro(&b.db_path())) == 2
    });

    // 1. Garbage before hello: cut off at once.
    let reason = rt.block_on(async {
        let key = NodeKey::generate().unwrap();
        let mut l = connect(&key, target, false).await;
        l.send(vec![0xde, 0xad, 0xbe, 0xef]).await;
        l.closed().await
    });
    assert!(!reason.is_empty());

    // 2. An oversize frame (2 MiB) after a valid hello: cut off.
    let reason = rt.block_on(async {
        let key = NodeKey::generate().unwrap();
        let mut l = connect(&key, target, true).await;
        l.send(vec![0u8; 2 * 1024 * 1024]).await;
        l.closed().await
    });
    assert!(reason.contains("frame"), "{reason}");

    // 3. Forged events, then garbage: penalised to zero and banned; a reconnect is refused.
    let liar_key = NodeKey::generate().unwrap();
    let mut forged_ids = Vec::new();
    let reason = rt.block_on(async {
        let mut l = connect(&liar_key, target, true).await;
        for i in 0..6 {
            let (bytes, id) = forged_event(room, &format!("forged {i}"));
            forged_ids.push(id);
            l.send(Frame::Events(vec![bytes]).encode()).await;
        }
        l.send(vec![0xff; 64]).await;
        l.closed().await
    });
    assert!(!reason.is_empty());
    let banned = rt.block_on(async {
        // The node closes a banned peer's connection right after the handshake.
        let (_endpoint, conn) = handshake(&liar_key, target).await;
        match tokio::time::timeout(Duration::from_secs(20), conn.closed()).await {
            Ok(quinn::ConnectionError::ApplicationClosed(c)) => {
                String::from_utf8_lossy(&c.reason).into_owned()
            }
            Ok(other) => other.to_string(),
            Err(_) => "the banned peer's connection stayed open".to_string(),
        }
    });
    eprintln!("liar cut off: {reason}; on reconnect: {banned}");
    assert!(
        banned.contains("banned"),
        "a banned peer got back in: {banned}"
    );

    // Nothing of it was stored, the database is sound, and the log says why.
    let conn = open_db_ro(&a.db_path());
    for id in &forged_ids {
        assert_eq!(common::count_id(&conn, id), 0, "a forged event was stored");
    }
    a.store_check_ok();
    let log = a.log_text();
    assert!(log.contains("invalid events"), "{log}");
    assert!(log.contains("banned"), "{log}");
    assert!(!log.contains("panicked"));

    // Honest replication goes on, both ways.
    let from_b = b.append_json(&["--room", &room.to_string(), "--count", "5"]);
    let from_a = a.append_json(&["--room", &room.to_string(), "--count", "5"]);
    wait_until(SYNC, "honest events to replicate", || {
        let (ca, cb) = (open_db_ro(&a.db_path()), open_db_ro(&b.db_path()));
        from_a.iter().chain(&from_b).all(|ack| {
            let id = common::id_bytes(&ack.id);
            common::count_id(&ca, &id) == 1 && common::count_id(&cb, &id) == 1
        })
    });
}

/// Peak resident memory of a process, MiB.
fn peak_rss_mib(pid: i32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// The most memory the node may take while it is flooded (a Pi Zero 2 W has 512 MB).
const RSS_CAP_MIB: f64 = 160.0;

#[test]
fn floods_of_lies_and_requests_leave_memory_bounded_and_honest_traffic_flowing() {
    let mut a = Node::with_config_extra(&format!(
        "[federation]\nsecret = \"{SECRET}\"\nport = 0\nmdns = false\nreconcile_secs = 5\n\
         [api]\nlisten = \"127.0.0.1:0\"\nrate_per_sec = 50\nrate_burst = 100\n"
    ));
    a.start();
    let pa = a.quic_port();
    let b = honest(Some(pa));
    let target: SocketAddr = format!("127.0.0.1:{pa}").parse().unwrap();
    let api = a.api_url();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let room = RoomId(
        a.append_json(&["--count", "1"])[0]
            .id
            .parse::<basis_core::EventId>()
            .unwrap()
            .0,
    );
    let flood_for = Duration::from_secs(15);
    let (liars, sent_mib, hammer, honest_ok, honest_total) = rt.block_on(async {
        let until = Instant::now() + flood_for;
        // Four liars at a time, each a fresh identity that knows the secret, pushing frames
        // of forged events as fast as they can until cut off, then the next.
        let mut liar_tasks = Vec::new();
        for _ in 0..4 {
            liar_tasks.push(tokio::spawn(async move {
                let (mut links, mut bytes) = (0u64, 0u64);
                let big = "x".repeat(60_000);
                // The flood ends at `until` even where a write or a handshake would wait
                // (a node that stopped reading holds a sender back by flow control).
                let deadline = tokio::time::Instant::from_std(until);
                while Instant::now() < until {
                    let key = NodeKey::generate().unwrap();
                    let Ok(mut l) =
                        tokio::time::timeout_at(deadline, connect(&key, target, true)).await
                    else {
                        break;
                    };
                    links += 1;
                    let batch: Vec<Vec<u8>> = (0..15)
                        .map(|i| forged_event(room, &format!("{i}{big}")).0)
                        .collect();
                    let frame = Frame::Events(batch).encode();
                    while Instant::now() < until {
                        bytes += frame.len() as u64;
                        let sent = tokio::time::timeout_at(
                            deadline,
                            l.tx.send(Bytes::from(frame.clone())),
                        )
                        .await;
                        if !matches!(sent, Ok(Ok(()))) {
                            break;
                        }
                    }
                }
                (links, bytes)
            }));
        }
        // A client hammering the API from 127.0.0.2, and an honest one from 127.0.0.1.
        // Requests time out rather than wait forever: a stuck one fails the counts below.
        let hammer_client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .local_address(Some("127.0.0.2".parse().unwrap()))
            .build()
            .unwrap();
        let mut hammers = Vec::new();
        for _ in 0..8 {
            let (c, api) = (hammer_client.clone(), api.clone());
            hammers.push(tokio::spawn(async move {
                // (requests, refused with 429, answered otherwise: let through the limiter)
                let (mut total, mut limited, mut passed) = (0u64, 0u64, 0u64);
                while Instant::now() < until {
                    let r = c
                        .post(format!("{api}/v1/events"))
                        .header("content-type", "application/json")
                        .body(vec![b'x'; 200_000])
                        .send()
                        .await;
                    total += 1;
                    match r {
                        Ok(r) if r.status() == 429 => limited += 1,
                        Ok(r) => {
                            assert!(r.status().is_client_error(), "{}", r.status());
                            passed += 1;
                        }
                        // The node may close a connection whose body it refused unread.
                        Err(_) => {}
                    }
                }
                (total, limited, passed)
            }));
        }
        let honest_client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let (mut ok, mut total) = (0u64, 0u64);
        while Instant::now() < until {
            total += 1;
            if let Ok(r) = honest_client.get(format!("{api}/v1/status")).send().await
                && r.status() == 200
            {
                ok += 1;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (mut links, mut bytes) = (0, 0);
        for t in liar_tasks {
            let (l, b) = t.await.unwrap();
            links += l;
            bytes += b;
        }
        let (mut h_total, mut h_limited, mut h_passed) = (0, 0, 0);
        for h in hammers {
            let (t, l, p) = h.await.unwrap();
            h_total += t;
            h_limited += l;
            h_passed += p;
        }
        (
            links,
            bytes as f64 / 1048576.0,
            (h_total, h_limited, h_passed),
            ok,
            total,
        )
    });
    let peak = peak_rss_mib(a.pid());
    eprintln!(
        "flood of {flood_for:?}: {liars} liar links pushed {sent_mib:.0} MiB of forged events; \
         the API hammer sent {} requests, {} refused with 429, {} let through; honest API requests \
         {honest_ok}/{honest_total} answered; node peak RSS {peak:.1} MiB (cap {RSS_CAP_MIB})",
        hammer.0, hammer.1, hammer.2
    );
    assert!(peak < RSS_CAP_MIB, "peak RSS {peak:.1} MiB over the cap");
    assert!(liars > 4, "the liars were not cut off and replaced");
    // The limiter lets the hammer's address through at its rate (50 a second, after a burst
    // of 100) whatever the hammer's speed; a second of slack for requests that straddle the
    // flood's start and end.
    let allowed = 50 * (flood_for.as_secs() + 1) + 100;
    assert!(hammer.1 > 0, "the hammer was never refused: {hammer:?}");
    assert!(
        hammer.2 <= allowed,
        "the hammer got {} requests through, more than the {allowed} its rate allows: {hammer:?}",
        hammer.2
    );
    assert_eq!(honest_ok, honest_total, "honest API requests were refused");
    assert!(a.is_running());
    // Nothing forged was stored, and honest replication still works at once.
    let conn = open_db_ro(&a.db_path());
    assert_eq!(count_events(&conn), 2, "only the honest room's two events");
    drop(conn);
    let from_b = b.append_json(&["--room", &room.to_string(), "--count", "5"]);
    wait_until(SYNC, "honest events to replicate after the flood", || {
        let ca = open_db_ro(&a.db_path());
        from_b
            .iter()
            .all(|ack| common::count_id(&ca, &common::id_bytes(&ack.id)) == 1)
    });
    assert!(!a.log_text().contains("panicked"));
}
