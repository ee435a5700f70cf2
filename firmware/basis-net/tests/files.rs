//! Files between two real federations on loopback (QUIC, admission, the driver): an eager
//! room's file follows its message to the other node; a lazy room's file crosses only when
//! asked for; a lying peer's bad chunks are refused and the file completes from an honest one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use basis_core::body::{Body, History, MessageBody, RoomCreate};
use basis_core::file::chunk_hash;
use basis_core::validate::{ValidEvent, validate_event};
use basis_core::{
    BlobRef, ChunkList, EventContent, FileDescriptor, NodeKey, PROTOCOL_VERSION, RoomId, Timestamp,
    UserKey,
};
use basis_net::{Federation, FederationSettings, PeerState};
use basis_proto::admission::EXPORTER_LABEL;
use basis_proto::frame::{ChunkRange, FileFrame, FileHave, Frame};
use basis_proto::{FederationKey, FilePolicy, Role};
use basis_store::{BlobStatus, BlobStore, Store, StoreOptions};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The federation secret of every node here (the lying peer knows it too).
const SECRET: &[u8] = b"files test";

struct Node {
    fed: Federation,
    store: Store,
    blobs: Arc<BlobStore>,
    dir: PathBuf,
    stop: CancellationToken,
    /// Leave the data directory when dropped (a restart reuses it).
    keep_dir: bool,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.cancel();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn settings(name: &str, peers: Vec<String>) -> FederationSettings {
    FederationSettings {
        key: NodeKey::generate().unwrap(),
        name: name.into(),
        federation: Some(FederationKey::from_secret(SECRET)),
        allow: vec![],
        port: 0,
        static_peers: peers.iter().map(|p| p.parse().unwrap()).collect(),
        mdns: false,
        reconcile_every: Duration::from_secs(2),
        max_peers: 8,
        peer_rate: 64 << 20,
        api_port: None,
        upstream: None,
    }
}

fn node(name: &str, peers: Vec<String>, policy: FilePolicy) -> Node {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("basis-net-files-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&dir.join("basis.db"), &StoreOptions::default()).unwrap();
    let (blobs, _) = BlobStore::open(&dir.join("blobs"), None).unwrap();
    let blobs = Arc::new(blobs);
    let stop = CancellationToken::new();
    let fed = Federation::start(
        settings(name, peers),
        store.writer(),
        store.readers(),
        stop.clone(),
        TaskTracker::new(),
    )
    .unwrap();
    fed.attach_files(blobs.clone(), Box::new(move |_room| policy));
    Node {
        fed,
        store,
        blobs,
        dir,
        stop,
        keep_dir: false,
    }
}

/// A room and a message naming a file of 20 chunks of 16 KiB, whose chunks and list are
/// put in `holder`'s blob store (nodes never open chunks: patterned bytes will do).
fn file_message(holder: &BlobStore) -> (Vec<ValidEvent>, ChunkList) {
    let layout = BlobRef {
        address: [0; 32],
        size: 19 * 16384 + 500,
        chunk_size: 16384,
    };
    let chunks: Vec<Vec<u8>> = (0..layout.chunk_count())
        .map(|i| {
            let len = layout.cipher_len(i).unwrap() as usize;
            (0..len).map(|j| (j as u8) ^ (i as u8)).collect()
        })
        .collect();
    let list = ChunkList {
        chunk_size: layout.chunk_size,
        size: layout.size,
        hashes: chunks.iter().map(|c| chunk_hash(c)).collect(),
    };
    holder.put_list(&list.blob_ref(), &list.to_bytes()).unwrap();
    for (i, c) in chunks.iter().enumerate() {
        holder.put_chunk(&list, i as u64, c).unwrap();
    }
    let key = UserKey::from_secret([3; 32]);
    let t0 = 1_700_000_000_000;
    let create = validate_event(
        EventContent {
            version: PROTOCOL_VERSION,
            room: None,
            author: key.id(),
            parents: vec![],
            time: Timestamp::new(t0, 0),
            body: Body::Create(RoomCreate {
                name: "photos".into(),
                encrypted: false,
                history: History::SinceJoin,
            }),
        }
        .sign(&key),
    )
    .unwrap();
    let room: RoomId = create.room();
    let message = validate_event(
        EventContent {
            version: PROTOCOL_VERSION,
            room: Some(room),
            author: key.id(),
            parents: vec![create.id()],
            time: Timestamp::new(t0 + 1, 0),
            body: Body::Message(MessageBody::Attachment(FileDescriptor {
                blob: list.blob_ref(),
                name: "damage.jpg".into(),
                media_type: "image/jpeg".into(),
                key: [9; 32],
                preview: None,
            })),
        }
        .sign(&key),
    )
    .unwrap();
    (vec![create, message], list)
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A node "b" that dials `a`, once linked.
async fn linked_to(a: &Node, policy: FilePolicy) -> Node {
    let b = node(
        "b",
        vec![format!("127.0.0.1:{}", a.fed.local_addr().port())],
        policy,
    );
    wait_for("the link", || {
        b.fed
            .peers()
            .iter()
            .any(|p| p.state == PeerState::Connected)
    })
    .await;
    b
}

/// Node `a` holds the file and its message; node `b` dials it. Returns both once linked.
async fn two_nodes(b_policy: FilePolicy) -> (Node, Node, Vec<ValidEvent>, ChunkList) {
    let a = node("a", vec![], FilePolicy::Eager);
    let (events, list) = file_message(&a.blobs);
    a.store.writer().insert(events.clone()).await.unwrap();
    let b = linked_to(&a, b_policy).await;
    (a, b, events, list)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eager_rooms_file_follows_its_message() {
    let (_a, b, events, list) = two_nodes(FilePolicy::Eager).await;
    let message = events[1].id();
    wait_for("the message", || {
        b.store.readers().get(&message).unwrap().is_some()
    })
    .await;
    wait_for("the file", || {
        b.blobs.status(&list.address()).unwrap() == BlobStatus::Complete
    })
    .await;
    for i in 0..list.hashes.len() as u64 {
        assert!(b.blobs.chunk(&list, i).unwrap().is_some(), "chunk {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_rooms_file_crosses_only_when_asked() {
    let (_a, b, events, list) = two_nodes(FilePolicy::Lazy).await;
    let message = events[1].id();
    wait_for("the message", || {
        b.store.readers().get(&message).unwrap().is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.blobs.status(&list.address()).unwrap(), BlobStatus::Absent);
    b.fed.fetch_file(list.blob_ref()).unwrap();
    wait_for("the file", || {
        b.blobs.status(&list.address()).unwrap() == BlobStatus::Complete
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restarted_mid_transfer_fetches_only_what_it_lacks() {
    // Node b "restarts" holding the message and half of the file: it goes on at once, from
    // what it stored, without any new event to prompt it.
    let a = node("a", vec![], FilePolicy::Eager);
    let (events, list) = file_message(&a.blobs);
    a.store.writer().insert(events.clone()).await.unwrap();
    let b_dir_node = node("b-before", vec![], FilePolicy::Eager);
    b_dir_node
        .store
        .writer()
        .insert(events.clone())
        .await
        .unwrap();
    b_dir_node
        .blobs
        .put_list(&list.blob_ref(), &list.to_bytes())
        .unwrap();
    let half = list.hashes.len() as u64 / 2;
    for i in 0..half {
        let bytes = a.blobs.chunk(&list, i).unwrap().unwrap();
        b_dir_node.blobs.put_chunk(&list, i, &bytes).unwrap();
    }
    // Stop b (its federation, store and blob store), keeping its data directory, and start
    // it again on the same files.
    let mut b_dir_node = b_dir_node;
    b_dir_node.keep_dir = true;
    let dir = b_dir_node.dir.clone();
    drop(b_dir_node);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let b = restart(
        &dir,
        vec![format!("127.0.0.1:{}", a.fed.local_addr().port())],
    );
    wait_for("the file", || {
        b.blobs.status(&list.address()).unwrap() == BlobStatus::Complete
    })
    .await;
    let crossed = b
        .blobs
        .stats()
        .chunks_stored
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(crossed, list.hashes.len() as u64 - half);
}

/// A node started again on the data directory of an earlier one.
fn restart(dir: &std::path::Path, peers: Vec<String>) -> Node {
    let store = Store::open(&dir.join("basis.db"), &StoreOptions::default()).unwrap();
    let (blobs, _) = BlobStore::open(&dir.join("blobs"), None).unwrap();
    let blobs = Arc::new(blobs);
    let stop = CancellationToken::new();
    let fed = Federation::start(
        settings("b-after", peers),
        store.writer(),
        store.readers(),
        stop.clone(),
        TaskTracker::new(),
    )
    .unwrap();
    fed.attach_files(blobs.clone(), Box::new(|_room| FilePolicy::Eager));
    Node {
        fed,
        store,
        blobs,
        dir: dir.to_path_buf(),
        stop,
        keep_dir: false,
    }
}

/// A peer that knows the federation secret and answers every `Want` of the file with the
/// true chunk list but chunks whose bytes are wrong, over a real QUIC link to `target`.
/// Returns its node id and how many bad chunks it sent, once `stop` is cancelled.
async fn lying_peer(
    target: std::net::SocketAddr,
    list: ChunkList,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<basis_core::NodeId>,
) -> u64 {
    let key = NodeKey::generate().unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(basis_net::tls::client_config(&key).unwrap());
    let conn = endpoint
        .connect(target, "basis.invalid")
        .unwrap()
        .await
        .expect("the liar's QUIC handshake");
    let (send, recv) = conn.open_bi().await.unwrap();
    let codec = || {
        LengthDelimitedCodec::builder()
            .max_frame_length(16 << 20)
            .new_codec()
    };
    let mut tx = FramedWrite::new(send, codec());
    let mut rx = FramedRead::new(recv, codec());
    let mut exporter = [0u8; 32];
    conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
        .unwrap();
    let proof = FederationKey::from_secret(SECRET).prove(&exporter, Role::Dialer, &key.id());
    let hello = Frame::Hello {
        version: basis_proto::PROTOCOL_VERSION,
        node: key.id(),
        name: "liar".into(),
        proof,
        boot: 1,
        dial: 1,
    };
    tx.send(Bytes::from(hello.encode())).await.unwrap();
    let first = rx.next().await.expect("the node's hello").unwrap();
    assert!(matches!(Frame::decode(&first), Ok(Frame::Hello { .. })));
    // It claims to hold the whole file.
    let all = vec![ChunkRange {
        start: 0,
        end: list.hashes.len() as u64,
    }];
    let have = Frame::File(FileFrame::Have(vec![FileHave {
        address: list.address(),
        ranges: all,
    }]));
    tx.send(Bytes::from(have.encode())).await.unwrap();
    let _ = ready.send(key.id());
    let layout = list.blob_ref();
    let mut bad = 0;
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => break,
            f = rx.next() => match f {
                Some(Ok(f)) => f,
                _ => break,
            },
        };
        let Ok(Frame::File(FileFrame::Want {
            address,
            list: wants_list,
            ranges,
        })) = Frame::decode(&frame)
        else {
            continue;
        };
        let mut replies = Vec::new();
        if wants_list {
            replies.push(Frame::File(FileFrame::List {
                address,
                bytes: list.to_bytes(),
            }));
        }
        for index in ranges.iter().flat_map(|r| r.start..r.end) {
            // The right length for its place, the wrong bytes.
            let len = layout.cipher_len(index).unwrap() as usize;
            replies.push(Frame::File(FileFrame::Chunk {
                address,
                index,
                bytes: vec![0xEE; len],
            }));
            bad += 1;
        }
        for r in replies {
            if tx.send(Bytes::from(r.encode())).await.is_err() {
                break;
            }
        }
    }
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_peers_bad_chunks_are_refused_and_the_file_completes_from_an_honest_one() {
    // Node n has two peers: a liar, linked first, that claims the file and serves wrong
    // bytes, and the honest node h that holds it.
    let n = node("n", vec![], FilePolicy::Eager);
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], n.fed.local_addr().port()));
    // The liar learns the file from a store of its own (file_message is deterministic: the
    // same chunks, list and events every call).
    let (prepared, _folder) = tempdir_blobs();
    let (_, list) = file_message(&prepared);
    let stop_liar = CancellationToken::new();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let liar = tokio::spawn(lying_peer(
        target,
        list.clone(),
        stop_liar.clone(),
        ready_tx,
    ));
    let liar_id = ready_rx.await.expect("the liar linked").to_string();
    wait_for("n lists the liar as linked", || {
        n.fed
            .peers()
            .iter()
            .any(|p| p.node_id == liar_id && p.state == PeerState::Connected)
    })
    .await;

    let h = node(
        "h",
        vec![format!("127.0.0.1:{}", n.fed.local_addr().port())],
        FilePolicy::Eager,
    );
    let (events, same_list) = file_message(&h.blobs);
    assert_eq!(same_list, list);
    h.store.writer().insert(events).await.unwrap();

    wait_for("the file on n", || {
        n.blobs.status(&list.address()).unwrap() == BlobStatus::Complete
    })
    .await;
    for i in 0..list.hashes.len() as u64 {
        let got = n.blobs.chunk(&list, i).unwrap().expect("held");
        let want = h.blobs.chunk(&list, i).unwrap().expect("held");
        assert_eq!(got, want, "chunk {i} is the honest one");
    }
    stop_liar.cancel();
    let bad = liar.await.unwrap();
    assert!(
        bad > 0,
        "n asked the liar for chunks (so the test tested something)"
    );
    let score = n
        .fed
        .peers()
        .iter()
        .find(|p| p.node_id == liar_id)
        .map(|p| p.score);
    let start = basis_proto::reputation::START_SCORE;
    assert!(
        score.is_some_and(|s| s <= start - 10),
        "the liar was penalised as for a forged event: score {score:?} (clean: {start})"
    );
    let stored = n
        .blobs
        .stats()
        .chunks_stored
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(stored, list.hashes.len() as u64, "no bad chunk was stored");
}

/// A blob store in a folder of its own, where a test prepares a file before any node holds it.
fn tempdir_blobs() -> (BlobStore, TempBlobs) {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("basis-net-blobs-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (blobs, _) = BlobStore::open(&dir, None).unwrap();
    (blobs, TempBlobs(dir))
}

/// Removes a prepared blob store's folder when dropped.
struct TempBlobs(PathBuf);

impl Drop for TempBlobs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
