//! Files between two real federations on loopback (QUIC, admission, the driver): an eager
//! room's file follows its message to the other node; a lazy room's file crosses only when
//! asked for.

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
use basis_proto::{FederationKey, FilePolicy};
use basis_store::{BlobStatus, BlobStore, Store, StoreOptions};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
        federation: Some(FederationKey::from_secret(b"files test")),
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
