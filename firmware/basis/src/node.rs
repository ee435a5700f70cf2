//! The running node's shared state: identity, store handles, clock and counters.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use basis_core::validate::validate;
use basis_core::{Clock, EventError, EventId, NodeId, RoomId, Timestamp, ValidEvent};
use basis_net::{Federation, PeerSnapshot, PeerState};
use basis_store::{BlobStore, Readers, StoreError, StoreStats, WriterHandle};
use tokio::sync::watch;

use basis_api::admin::Status;

use crate::control::wire;

/// Why an event offered to the node was not stored.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The event is invalid.
    #[error("refused: {0}")]
    Invalid(#[from] EventError),
    /// The store could not take it.
    #[error("not stored: {0}")]
    Store(#[from] StoreError),
}

impl AppendError {
    /// Machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            AppendError::Invalid(e) => e.code(),
            AppendError::Store(e) => e.code(),
        }
    }
}

/// An event the node has made durable.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    /// Its id.
    pub id: EventId,
    /// Its room.
    pub room: RoomId,
    /// False when it was already held.
    pub new: bool,
}

/// State shared by the node's tasks.
pub struct Node {
    /// This node's id.
    pub id: NodeId,
    /// Human name of the node.
    pub name: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where the node listens (for status).
    pub listening: Vec<String>,
    writer: WriterHandle,
    readers: Arc<Readers>,
    committed: watch::Receiver<u64>,
    state_committed: watch::Receiver<u64>,
    stats: Arc<StoreStats>,
    federation: Option<Arc<Federation>>,
    clock: Mutex<Clock>,
    started: Instant,
    refused: AtomicU64,
    files: Option<NodeFiles>,
}

/// The node's file store and its limit for uploads.
#[derive(Debug, Clone)]
pub struct NodeFiles {
    /// File chunks, beside the database (`<data dir>/blobs`).
    pub blobs: Arc<BlobStore>,
    /// Largest file (plaintext bytes) a client may upload (`files.max_file_mib`).
    pub max_file_bytes: u64,
}

/// Milliseconds since the Unix epoch by the wall clock (0 if the clock is before 1970).
pub fn wall_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Node {
    /// Builds the node state around an open store.
    pub fn new(
        id: NodeId,
        name: String,
        data_dir: PathBuf,
        listening: Vec<String>,
        store: &basis_store::Store,
        federation: Option<Arc<Federation>>,
    ) -> Node {
        Node {
            id,
            name,
            data_dir,
            listening,
            writer: store.writer(),
            readers: store.readers(),
            committed: store.committed(),
            state_committed: store.state_committed(),
            stats: store.stats(),
            federation,
            clock: Mutex::new(Clock::new()),
            started: Instant::now(),
            refused: AtomicU64::new(0),
            files: None,
        }
    }

    /// The node with a file store: its client API takes uploads into it and serves from it.
    pub fn with_files(mut self, files: NodeFiles) -> Node {
        self.files = Some(files);
        self
    }

    /// The file store, when the node has one.
    pub fn files(&self) -> Option<&NodeFiles> {
        self.files.as_ref()
    }

    /// The node's hybrid clock now.
    pub fn now(&self) -> Timestamp {
        self.clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .tick(wall_millis())
    }

    /// The writer handle.
    pub fn writer(&self) -> &WriterHandle {
        &self.writer
    }

    /// The store's reader connections.
    pub fn readers(&self) -> &Arc<Readers> {
        &self.readers
    }

    /// The highest event `seq` committed; changes after every commit that stored something.
    pub fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    /// The highest `seq` of a committed event that defines a room or a user; changes only
    /// when one is stored (see `basis_store::Store::state_committed`).
    pub fn state_committed(&self) -> watch::Receiver<u64> {
        self.state_committed.clone()
    }

    /// Validates event bytes and stores them; returns once they are durable.
    pub async fn append(&self, bytes: &[u8]) -> Result<Stored, AppendError> {
        let event = validate(bytes).inspect_err(|e| {
            self.refused.fetch_add(1, Ordering::Relaxed);
            log::info!("refused an event from a local client: {e}");
        })?;
        self.store_valid(event).await
    }

    /// Stores an event already validated (the client API checks room rules in between);
    /// returns once it is durable, and offers it to the federation when it is new.
    pub async fn store_valid(&self, event: ValidEvent) -> Result<Stored, AppendError> {
        self.clock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .observe(event.event().content.time);
        let (id, room) = (event.id(), event.room());
        let bytes = event.bytes().to_vec();
        let inserted = self.writer.insert(vec![event]).await?;
        let new = inserted.first().is_some_and(|i| i.new);
        if new && let Some(f) = &self.federation {
            f.announce(id, room, &bytes);
        }
        Ok(Stored { id, room, new })
    }

    /// What `basis status` shows.
    pub async fn status(&self) -> Status {
        let bridge = match &self.federation {
            Some(f) => f.bridge_status().await,
            None => None,
        };
        let file_size = |suffix: &str| {
            std::fs::metadata(self.data_dir.join(format!("basis.db{suffix}")))
                .map(|m| m.len())
                .unwrap_or(0)
        };
        let peers = self.peers();
        Status {
            node_id: self.id.to_string(),
            name: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            data_dir: self.data_dir.display().to_string(),
            events: self.stats.events.load(Ordering::Relaxed),
            event_bytes: self.stats.event_bytes.load(Ordering::Relaxed),
            store_bytes: file_size("") + file_size("-wal") + file_size("-shm"),
            listening: self.listening.clone(),
            api_urls: self
                .listening
                .iter()
                .filter_map(|l| l.strip_prefix("http://")?.parse().ok())
                .flat_map(crate::api::reachable_urls)
                .collect(),
            uptime_secs: self.started.elapsed().as_secs(),
            refused: self.refused.load(Ordering::Relaxed),
            federation_tag: self
                .federation
                .as_ref()
                .map(|f| f.tag().to_string())
                .unwrap_or_default(),
            peers_connected: peers
                .iter()
                .filter(|p| p.state == PeerState::Connected)
                .count(),
            peers_refused: peers
                .into_iter()
                .filter(|p| p.state == PeerState::Refused)
                .map(wire::peer)
                .collect(),
            bridge: bridge.map(wire::bridge),
        }
    }

    /// The federation service, when the node federates.
    pub fn federation(&self) -> Option<&Arc<Federation>> {
        self.federation.as_ref()
    }

    /// Known peers (empty when the node does not federate).
    pub fn peers(&self) -> Vec<PeerSnapshot> {
        self.federation
            .as_ref()
            .map(|f| f.peers())
            .unwrap_or_default()
    }
}
