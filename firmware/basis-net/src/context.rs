//! What the federation's tasks share: the node's identity and store, the channels between
//! links, the stop token, the dial queue and the peer registry. Everything in it is either
//! immutable, a channel, or behind the registry's own lock.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use basis_core::{EventId, NodeId, RoomId};
use basis_proto::{LinkConfig, Notice, Offer};
use basis_store::{Readers, WriterHandle};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::peers::Found;
use crate::registry::Registry;

/// A newly stored event, fanned out to links.
#[derive(Debug)]
pub(crate) struct NewEvent {
    pub id: EventId,
    pub room: RoomId,
    pub bytes: Vec<u8>,
    /// The peer it came from (not pushed back there).
    pub origin: Option<NodeId>,
}

impl NewEvent {
    /// The event as offered to a link for live push.
    pub fn offer(&self) -> Offer<'_> {
        Offer {
            room: self.room,
            id: self.id,
            bytes: &self.bytes,
            from: self.origin,
        }
    }
}

/// A request to the dialler.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    pub addr: SocketAddr,
    pub expected: Option<NodeId>,
    /// How the peer became known; `None` for a redial, which adds no new source.
    pub found: Option<Found>,
}

/// State shared by the federation's tasks.
pub(crate) struct Context {
    pub local: NodeId,
    /// The configuration of this node's LAN links (a dial sets its own `dial` number).
    pub link_config: LinkConfig,
    pub writer: WriterHandle,
    pub readers: Arc<Readers>,
    /// Events this node stored that are new to it, for every link.
    pub events: broadcast::Sender<Arc<NewEvent>>,
    /// Notices of this node's clients, for every link.
    pub notices_out: broadcast::Sender<Notice>,
    /// Notices from peers, for this node's clients.
    pub notices_in: broadcast::Sender<(NodeId, Notice)>,
    pub stop: CancellationToken,
    pub tasks: TaskTracker,
    /// Most bytes per second read from one LAN peer.
    pub peer_rate: u64,
    pub registry: Registry,
    /// The node's files on the federation, once the node attached its blob store
    /// ([`crate::Federation::attach_files`]); without it a link answers every want `Lacks`.
    pub files: OnceLock<Arc<crate::files::Files>>,
    dial_tx: mpsc::UnboundedSender<Dial>,
    /// Dials made by this process, numbered for the duplicate-link rule.
    dials: AtomicU64,
}

impl Context {
    /// A context; the receiver is the dialler's queue.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        link_config: LinkConfig,
        writer: WriterHandle,
        readers: Arc<Readers>,
        stop: CancellationToken,
        tasks: TaskTracker,
        peer_rate: u64,
        registry: Registry,
        queues: Queues,
    ) -> (Context, mpsc::UnboundedReceiver<Dial>) {
        let (dial_tx, dial_rx) = mpsc::unbounded_channel();
        let context = Context {
            local: link_config.local,
            link_config,
            writer,
            readers,
            events: broadcast::channel(queues.fanout).0,
            notices_out: broadcast::channel(queues.notices).0,
            notices_in: broadcast::channel(queues.notices).0,
            stop,
            tasks,
            peer_rate,
            registry,
            files: OnceLock::new(),
            dial_tx,
            dials: AtomicU64::new(0),
        };
        (context, dial_rx)
    }

    /// Asks the dialler to dial.
    pub(crate) fn dial(&self, dial: Dial) {
        let _ = self.dial_tx.send(dial);
    }

    /// The number of a new dial of this process (1, 2, ...).
    pub(crate) fn next_dial(&self) -> u64 {
        self.dials.fetch_add(1, Ordering::Relaxed).saturating_add(1)
    }
}

/// Sizes of the channels between links.
pub(crate) struct Queues {
    /// New events waiting to be pushed per link before a slow link skips some.
    pub fanout: usize,
    /// Notices waiting to go out or to be read; older ones are dropped.
    pub notices: usize,
}
