//! The connection driver: one loop for LAN and upstream links. It moves frames between the
//! QUIC stream and the protocol state machine (a [`Link`] on the LAN, a [`BridgeLink`]
//! upstream), sleeps until the machine's next deadline, and carries out the actions it
//! returns: frames to send, events to store or stream, peers to record, penalties.
//!
//! Each turn of the loop waits for the first of: the node stopping; a frame from the peer; a
//! new event stored on this node; the session's own input (on the LAN: a client's notice, a
//! batch of streamed events sent, the set of linked peers changing; upstream: the WAN going
//! down); the machine's deadline ([`Link::poll_timeout`], [`BridgeLink::poll_timeout`]); the
//! connection closing. Then it hands the actions to the session.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use basis_core::{EventId, NodeId, RoomId};
use basis_proto::admission::EXPORTER_LABEL;
use basis_proto::bridge_link::{HeldEvent, Now};
use basis_proto::frame::{FileFrame, Frame};
use basis_proto::limits::MAX_FRAME;
use basis_proto::link::{Action, Link, Span, event_frames};
use basis_proto::recon::Items;
use basis_proto::{BridgeLink, BridgeStore, CloseCode, ItemSource, LinkConfig, LinkFacts, Role};
use basis_store::Readers;
use bytes::Bytes;
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::addr::canonical;
use crate::bridge::{Attempt, Bridge};
use crate::closing::{Outcome, close, read_close, refusal_by_peer};
use crate::context::{Context, Dial, NewEvent};
use crate::peers::{Found, Refusal};
use crate::registry::Registered;
use crate::wan::{WanView, unix_now};

/// Least time between two peer lists on one link. A link shares the node's peers when it
/// opens and again whenever this node gains or loses a link (so a node linked through a hub
/// meets the others, and the peer's live pushes know whom this node hears from directly),
/// never while nothing changes: repeating an unchanged list to every peer would make idle
/// traffic grow with the square of the number of nodes. Changes that come closer together
/// go out as one list.
const SHARE_PEERS_GAP: Duration = Duration::from_secs(1);
/// Events per store read while streaming. A chunk of typical events (~330 bytes) fills one
/// `Events` frame (`EVENTS_FRAME_BYTES`), and the receiving node stores a frame in one commit:
/// larger commits write fewer bytes per event to its SD card (500 gave ~165 kB frames).
const STREAM_CHUNK: usize = 1500;
/// How long a closing link waits for its last frames (a `Bye`) to leave.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the bridge's state (budgets, sync marks) is written to disk when it changed.
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// Per-peer rate limit on bytes read: a token bucket holding one second of the rate. A peer
/// that reads ahead is made to wait, and QUIC flow control holds it back in turn.
struct RateLimit {
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl RateLimit {
    fn new(bytes_per_sec: u64) -> RateLimit {
        let rate = bytes_per_sec.max(1) as f64;
        RateLimit {
            rate,
            tokens: rate.max(MAX_FRAME as f64),
            updated: Instant::now(),
        }
    }

    /// How long to wait before `bytes` more may be read.
    fn take(&mut self, bytes: usize) -> Duration {
        let now = Instant::now();
        let burst = self.rate.max(MAX_FRAME as f64);
        self.tokens =
            (self.tokens + now.duration_since(self.updated).as_secs_f64() * self.rate).min(burst);
        self.updated = now;
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// The store as the set a link reconciles over, and as the bridge reads it (events, and the
/// files once the node attached its blob store).
pub(crate) struct StoreItems(pub Arc<Context>);

impl ItemSource for StoreItems {
    fn items(&mut self, scope: Option<&[RoomId]>, items: &mut Items) -> Result<(), String> {
        // Reading the set blocks; tell the runtime so other tasks move elsewhere. Only the
        // slice the set takes is read, from the `events_ts` index.
        let (from, to) = items.span().unwrap_or((0, u64::MAX));
        // Pushing fails only on a sealed set; this one is being built.
        let visit = |ts, id| {
            let _ = items.push(ts, id);
        };
        tokio::task::block_in_place(|| match scope {
            Some(rooms) => self.0.readers.for_each_item_in(rooms, visit),
            None => self.0.readers.for_each_item(from, to, visit),
        })
        .map_err(|e| e.to_string())
    }

    fn newest(&mut self) -> Result<Option<u64>, String> {
        tokio::task::block_in_place(|| self.0.readers.newest_ts()).map_err(|e| e.to_string())
    }

    fn nth_from(&mut self, from: u64, n: usize) -> Result<Option<u64>, String> {
        tokio::task::block_in_place(|| self.0.readers.nth_ts_from(from, n))
            .map_err(|e| e.to_string())
    }

    fn holds(&mut self, id: &basis_core::EventId) -> bool {
        // A failed lookup answers "not held": the event is then checked, as any other.
        self.0.readers.contains(id).unwrap_or(false)
    }
}

impl BridgeStore for StoreItems {
    fn last_seq(&mut self) -> Result<u64, String> {
        tokio::task::block_in_place(|| self.0.readers.last_seq()).map_err(|e| e.to_string())
    }

    fn files(&mut self, rooms: &[RoomId]) -> Result<Vec<(RoomId, basis_core::BlobRef)>, String> {
        let uses = tokio::task::block_in_place(|| self.0.readers.blob_refs());
        Ok(uses
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|u| rooms.contains(&u.room))
            .map(|u| (u.room, u.blob))
            .collect())
    }

    fn file_complete(&mut self, address: &[u8; 32]) -> bool {
        self.0
            .files
            .get()
            .is_some_and(|f| tokio::task::block_in_place(|| f.complete(address)))
    }

    fn events(&mut self, ids: &[EventId]) -> Result<Vec<HeldEvent>, String> {
        let events = tokio::task::block_in_place(|| self.0.readers.get_many(ids));
        Ok(events
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|e| HeldEvent {
                id: e.id,
                ts: e.time.0,
                raw: e.raw,
            })
            .collect())
    }
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Writes frames to the stream: small control frames first, bulk event frames when idle, and
/// file data (a list or a chunk, one at a time) only when neither waits: files never delay
/// messages (`basis_proto::outbox` states the rule).
async fn writer(
    send: SendStream,
    mut control: mpsc::UnboundedReceiver<Vec<u8>>,
    mut bulk: mpsc::Receiver<Vec<u8>>,
    mut files: mpsc::Receiver<Vec<u8>>,
) {
    let mut sink = FramedWrite::new(send, codec());
    loop {
        let next = tokio::select! {
            biased;
            frame = control.recv() => frame,
            Some(frame) = bulk.recv() => Some(frame),
            Some(frame) = files.recv() => Some(frame),
        };
        let Some(frame) = next else { break };
        if sink.send(Bytes::from(frame)).await.is_err() {
            return;
        }
    }
    let mut send = sink.into_inner();
    let _ = send.finish();
}

/// Streams held events to the peer, newest first, reporting what went out.
async fn stream_events(
    readers: Arc<Readers>,
    ids: Vec<EventId>,
    bulk: mpsc::Sender<Vec<u8>>,
    sent: mpsc::UnboundedSender<Vec<EventId>>,
) {
    let ordered = {
        let readers = readers.clone();
        tokio::task::spawn_blocking(move || readers.newest_first(&ids)).await
    };
    let Ok(Ok(ordered)) = ordered else {
        log::warn!("cannot read events a peer asked for");
        return;
    };
    for chunk in ordered.chunks(STREAM_CHUNK) {
        let ids: Vec<EventId> = chunk.iter().map(|(_, id)| *id).collect();
        let raw = {
            let readers = readers.clone();
            let ids = ids.clone();
            tokio::task::spawn_blocking(move || readers.raw_many(&ids)).await
        };
        let Ok(Ok(raw)) = raw else {
            log::warn!("cannot read events a peer asked for");
            return;
        };
        if !send_page(ids, raw, &bulk, &sent).await {
            return;
        }
    }
}

/// Queues one page of events (`ids` and their wire bytes) on the link's bulk queue, then
/// reports the ids as sent; false when the link has gone.
async fn send_page(
    ids: Vec<EventId>,
    raw: Vec<Vec<u8>>,
    bulk: &mpsc::Sender<Vec<u8>>,
    sent: &mpsc::UnboundedSender<Vec<EventId>>,
) -> bool {
    for frame in event_frames(raw) {
        if bulk.send(frame.encode()).await.is_err() {
            return false;
        }
    }
    let _ = sent.send(ids);
    true
}

/// Streams every held event newer than `after` (all, for `None`) to a peer catching up,
/// newest first, reading the store a page of [`STREAM_CHUNK`] at a time, so a node serving a
/// million events holds one page, not a list of every id. Ends with `Frame::CatchUpEnd` on
/// the same queue (see `Action::SendNewer`), unless the link has gone.
async fn stream_newer(
    readers: Arc<Readers>,
    after: Option<u64>,
    bulk: mpsc::Sender<Vec<u8>>,
    sent: mpsc::UnboundedSender<Vec<EventId>>,
) {
    if stream_newer_pages(readers, after, &bulk, &sent).await {
        let _ = bulk.send(Frame::CatchUpEnd.encode()).await;
    }
}

/// The pages of [`stream_newer`]; false when the link has gone.
async fn stream_newer_pages(
    readers: Arc<Readers>,
    after: Option<u64>,
    bulk: &mpsc::Sender<Vec<u8>>,
    sent: &mpsc::UnboundedSender<Vec<EventId>>,
) -> bool {
    let mut before = None;
    loop {
        let page = {
            let readers = readers.clone();
            tokio::task::spawn_blocking(move || readers.newer_page(after, before, STREAM_CHUNK))
                .await
        };
        let Ok(Ok(page)) = page else {
            log::warn!("cannot read the events a peer catching up needs");
            return true;
        };
        let full = page.len() == STREAM_CHUNK;
        before = page.last().map(|(ts, id, _)| (*ts, *id));
        let (ids, raw): (Vec<EventId>, Vec<Vec<u8>>) =
            page.into_iter().map(|(_, id, raw)| (id, raw)).unzip();
        if !send_page(ids, raw, bulk, sent).await {
            return false;
        }
        if !full {
            return true;
        }
    }
}

/// Most new events a link takes from the node's queue in one turn (see [`waiting_events`]).
const PUSH_BATCH: usize = 512;

/// `first` and the new events already waiting behind it (at most [`PUSH_BATCH`] in all), taken
/// without waiting for more: events committed together go out together. Also whether some
/// were missed because the queue overflowed.
fn waiting_events(
    first: Arc<NewEvent>,
    events: &mut broadcast::Receiver<Arc<NewEvent>>,
) -> (Vec<Arc<NewEvent>>, bool) {
    let mut waiting = vec![first];
    while waiting.len() < PUSH_BATCH {
        match events.try_recv() {
            Ok(ev) => waiting.push(ev),
            Err(broadcast::error::TryRecvError::Lagged(_)) => return (waiting, true),
            Err(_) => break,
        }
    }
    (waiting, false)
}

/// Stores valid events from `peer` and offers the new ones to the other links.
async fn store_from(
    ctx: &Context,
    peer: NodeId,
    events: Vec<basis_core::ValidEvent>,
) -> Result<(), basis_store::StoreError> {
    let keep: Vec<(EventId, RoomId, Vec<u8>)> = events
        .iter()
        .map(|e| (e.id(), e.room(), e.bytes().to_vec()))
        .collect();
    let results = ctx.writer.insert(events).await?;
    for (inserted, (id, room, bytes)) in results.iter().zip(keep) {
        if inserted.new {
            let _ = ctx.events.send(Arc::new(NewEvent {
                id,
                room,
                bytes,
                origin: Some(peer),
            }));
        }
    }
    Ok(())
}

/// The session-specific input a turn of the loop may bring.
enum Extra {
    /// A notice of this node's clients (LAN).
    Notice(Result<basis_proto::Notice, broadcast::error::RecvError>),
    /// Events streamed to the peer went out (LAN).
    Sent(Vec<EventId>),
    /// This node gained or lost a link (LAN).
    PeersChanged,
    /// The WAN view changed, or the monitor ended (upstream).
    Wan(bool),
    /// The serving task handed a part of a file to the writer, or did not hold it (upstream).
    Served(crate::files::Served),
    /// A frame the node's fetches would send the upstream node (upstream).
    ToUpstream(Vec<u8>),
    /// The oldest store under way ended (LAN).
    Stored(StoreResult),
}

/// How a store under way ended: stored, refused by the store, or its task failed.
type StoreResult = Result<Result<(), basis_store::StoreError>, tokio::task::JoinError>;

/// A LAN link: the protocol state and what the LAN adds to it.
struct Lan {
    link: Link,
    /// The link's facts for the duplicate rule, once the peer's hello came.
    facts: Option<LinkFacts>,
    /// Another link to the same peer was kept; this one closes as a duplicate.
    duplicate: bool,
    /// This node banned the peer on this link.
    banned: bool,
    rate: RateLimit,
    notices: broadcast::Receiver<basis_proto::Notice>,
    sent_tx: mpsc::UnboundedSender<Vec<EventId>>,
    sent_rx: mpsc::UnboundedReceiver<Vec<EventId>>,
    changes: watch::Receiver<u64>,
    /// When the node's peer list is next due on this link (`None`: nothing changed since).
    next_share: Option<Instant>,
    /// When this link last shared it.
    shared_at: Option<Instant>,
    bulk: mpsc::Sender<Vec<u8>>,
    /// The writer's file queue, until the link is admitted and its serving task takes it.
    files_out: Option<mpsc::Sender<Vec<u8>>>,
    /// The serving task's queue of the peer's wants, once files are carried on this link.
    wants: Option<mpsc::UnboundedSender<crate::files::Want>>,
    /// The control queue this link gave the node's fetches (dropped when the link ends, so
    /// the writer can finish).
    files_control: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// The task streaming a catch-up to the peer: a newer request replaces it, so one link
    /// never has two running.
    catch_up: Option<tokio::task::JoinHandle<()>>,
    /// Stores under way, oldest first (at most `Link::stores_allowed`): the link goes on
    /// reading frames and checking their signatures while the writer commits the ones before.
    stores: FuturesOrdered<tokio::task::JoinHandle<Result<(), basis_store::StoreError>>>,
}

/// An upstream link: the bridge's state machine and what it reads and writes.
struct Upstream {
    bridge: Arc<Bridge>,
    machine: BridgeLink,
    wan: watch::Receiver<WanView>,
    saved_at: Instant,
    /// The writer's file queue, until the serving task takes it (once files are attached and
    /// the bridge first serves a file).
    files_out: Option<mpsc::Sender<Vec<u8>>>,
    /// The serving task's queue of what the bridge chose to serve.
    serve: Option<mpsc::UnboundedSender<crate::files::Want>>,
    served_tx: mpsc::UnboundedSender<crate::files::Served>,
    served_rx: mpsc::UnboundedReceiver<crate::files::Served>,
    /// The queue the node's file table sends upstream on (once admitted): what its fetches
    /// ask goes through the bridge.
    fetches_tx: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Its other end.
    fetches_rx: Option<mpsc::UnboundedReceiver<Vec<u8>>>,
}

enum Session {
    Lan(Box<Lan>),
    Upstream(Box<Upstream>),
}

/// How the loop ended.
enum End {
    /// The node is stopping.
    Stopped,
    /// For this reason.
    Closed(String),
}

/// What every driver holds: the connection, the queue to the writer, the store.
struct Io<'a> {
    ctx: &'a Arc<Context>,
    conn: &'a Connection,
    peer: NodeId,
    remote: SocketAddr,
    control: mpsc::UnboundedSender<Vec<u8>>,
    source: StoreItems,
    /// Why the link is ending, once it is.
    end: Option<End>,
    admitted: bool,
}

impl Io<'_> {
    fn send(&self, frame: &Frame) {
        let _ = self.control.send(frame.encode());
    }

    fn close(&mut self, reason: String) {
        self.end.get_or_insert(End::Closed(reason));
    }
}

fn now() -> Now {
    Now {
        at: Instant::now(),
        unix: unix_now(),
    }
}

/// Sleeps until `deadline`, or for ever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

impl Session {
    fn on_frame(&mut self, io: &mut Io<'_>, bytes: &[u8]) -> Vec<Action> {
        match self {
            Session::Lan(lan) => {
                let out = lan.link.on_frame(bytes, Instant::now(), &mut io.source);
                lan.facts = lan.link.facts(Duration::ZERO);
                out
            }
            Session::Upstream(up) => {
                let mut rooms = up.bridge.rooms();
                up.machine
                    .on_frame(bytes, now(), &mut rooms, &mut io.source)
            }
        }
    }

    /// New events stored on this node that were waiting together: a LAN link pushes them in
    /// as few frames as they fit in.
    fn on_new_events(&mut self, peer: NodeId, events: &[Arc<NewEvent>]) -> Vec<Action> {
        match self {
            Session::Lan(lan) => lan.link.push_batch(events.iter().map(|ev| ev.offer())),
            Session::Upstream(_) => events
                .iter()
                .flat_map(|ev| self.on_new_event(peer, Some(ev.as_ref())))
                .collect(),
        }
    }

    fn on_new_event(&mut self, peer: NodeId, event: Option<&NewEvent>) -> Vec<Action> {
        match self {
            Session::Lan(lan) => match event {
                Some(ev) => lan.link.push(ev.offer()).into_iter().collect(),
                None => {
                    log::debug!(
                        "link {}: live events skipped; reconciliation will catch up",
                        peer.short()
                    );
                    Vec::new()
                }
            },
            Session::Upstream(up) => {
                // Events from upstream itself need not go back; missed ones may have to.
                match event {
                    Some(ev) if ev.origin == Some(peer) => {}
                    ev => {
                        let room = ev.map(|e| e.room);
                        up.machine.on_local_event(room, now(), &up.bridge.rooms());
                    }
                }
                Vec::new()
            }
        }
    }

    /// The session's own input; never ready for a session without any.
    async fn extra(&mut self) -> Extra {
        match self {
            Session::Lan(lan) => tokio::select! {
                Some(stored) = lan.stores.next(), if !lan.stores.is_empty() => Extra::Stored(stored),
                n = lan.notices.recv() => Extra::Notice(n),
                Some(ids) = lan.sent_rx.recv() => Extra::Sent(ids),
                changed = lan.changes.changed() => match changed {
                    Ok(()) => Extra::PeersChanged,
                    Err(_) => std::future::pending().await,
                },
            },
            Session::Upstream(up) => {
                let fetches = async {
                    match up.fetches_rx.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    changed = up.wan.changed() => Extra::Wan(changed.is_ok()),
                    Some(served) = up.served_rx.recv() => Extra::Served(served),
                    Some(frame) = fetches => Extra::ToUpstream(frame),
                }
            }
        }
    }

    fn on_extra(&mut self, io: &mut Io<'_>, extra: Extra) -> Vec<Action> {
        match (self, extra) {
            (Session::Lan(lan), Extra::Notice(Ok(n))) => lan.link.notice(n).into_iter().collect(),
            (Session::Lan(lan), Extra::Sent(ids)) => {
                lan.link.sent(&ids);
                Vec::new()
            }
            (Session::Lan(lan), Extra::PeersChanged) => {
                let earliest = lan
                    .shared_at
                    .map_or_else(Instant::now, |at| at + SHARE_PEERS_GAP);
                lan.next_share.get_or_insert(earliest);
                Vec::new()
            }
            (Session::Lan(lan), Extra::Stored(result)) => {
                lan.on_stored(io, result);
                Vec::new()
            }
            (Session::Upstream(up), Extra::Wan(alive)) => {
                if !alive {
                    // The monitor ends only when the node stops.
                    io.end.get_or_insert(End::Stopped);
                } else if !up.wan.borrow().up {
                    io.close("the WAN went down".into());
                }
                Vec::new()
            }
            (Session::Upstream(up), Extra::Served(s)) => {
                let mut rooms = up.bridge.rooms();
                up.machine
                    .file_served(s.address, s.part, s.sent, now(), &mut rooms, &mut io.source)
            }
            (Session::Upstream(up), Extra::ToUpstream(bytes)) => match Frame::decode(&bytes) {
                Ok(Frame::File(frame)) => {
                    let mut rooms = up.bridge.rooms();
                    up.machine
                        .to_upstream(frame, now(), &mut rooms, &mut io.source)
                }
                // The file table sends only file frames.
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Session::Lan(lan) => {
                let share = lan.next_share.filter(|_| lan.link.is_open());
                [lan.link.poll_timeout(), share].into_iter().flatten().min()
            }
            Session::Upstream(up) => {
                let save = up
                    .bridge
                    .rooms()
                    .has_changes()
                    .then_some(up.saved_at + SAVE_EVERY);
                [up.machine.poll_timeout(), save]
                    .into_iter()
                    .flatten()
                    .min()
            }
        }
    }

    fn on_timeout(&mut self, io: &mut Io<'_>) -> Vec<Action> {
        match self {
            Session::Lan(lan) => {
                let mut out = lan.link.on_tick(Instant::now(), &mut io.source);
                if lan.link.is_open() && lan.next_share.is_some_and(|t| Instant::now() >= t) {
                    out.extend(lan.share(io));
                }
                out
            }
            Session::Upstream(up) => {
                if up.saved_at.elapsed() >= SAVE_EVERY && up.bridge.rooms().has_changes() {
                    up.saved_at = Instant::now();
                    up.bridge.save();
                }
                let mut rooms = up.bridge.rooms();
                up.machine.on_timeout(now(), &mut rooms, &mut io.source)
            }
        }
    }

    /// How long to wait before reading a frame of `len` bytes (the LAN's per-peer rate).
    fn read_wait(&mut self, len: usize) -> Duration {
        match self {
            Session::Lan(lan) => lan.rate.take(len),
            Session::Upstream(_) => Duration::ZERO,
        }
    }

    async fn apply(&mut self, io: &mut Io<'_>, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send(frame) => io.send(&frame),
                Action::Admitted { peer, name } => self.admitted(io, peer, &name),
                Action::Store(events) => match self {
                    Session::Lan(lan) => lan.store(io, events).await,
                    Session::Upstream(up) => {
                        if let Err(e) = store_from(io.ctx, io.peer, events).await {
                            log::error!("cannot store events from node {}: {e}", io.peer.short());
                            // Nothing was acknowledged upstream; reconciling again asks again.
                            up.machine.store_failed(now());
                        }
                    }
                },
                Action::SendEvents(ids) => {
                    if let Session::Lan(lan) = self {
                        tokio::spawn(stream_events(
                            io.ctx.readers.clone(),
                            ids,
                            lan.bulk.clone(),
                            lan.sent_tx.clone(),
                        ));
                    }
                }
                Action::SendNewer(after) => {
                    if let Session::Lan(lan) = self {
                        if let Some(old) = lan.catch_up.take() {
                            old.abort();
                        }
                        lan.catch_up = Some(tokio::spawn(stream_newer(
                            io.ctx.readers.clone(),
                            after,
                            lan.bulk.clone(),
                            lan.sent_tx.clone(),
                        )));
                    }
                }
                Action::Learned(peers) => {
                    for info in io.ctx.registry.learned(io.peer, peers) {
                        for addr in info.addrs {
                            io.ctx.dial(Dial {
                                addr,
                                expected: Some(info.node),
                                found: Some(Found::Exchange),
                            });
                        }
                    }
                }
                Action::CatchingUp => {
                    log::info!(
                        "this node holds no events: asked node {} for all of its events instead of reconciling (1 round trip)",
                        io.peer.short()
                    );
                    io.ctx.registry.note_reconciled(io.peer, SystemTime::now());
                }
                Action::Reconciled {
                    have,
                    need,
                    rounds,
                    span,
                } => {
                    let compared = match span {
                        Span::Newest => "up to its newest event; anything newer came whole",
                        Span::PreviousSession => {
                            "up to its newest event when the last session began; newer ones come by live push"
                        }
                        Span::Scope => "in the bridged rooms",
                    };
                    log::info!(
                        "reconciled with node {}: it lacked {have}, this node lacked {need} ({compared}; {rounds} round trips)",
                        io.peer.short()
                    );
                    io.ctx.registry.note_reconciled(io.peer, SystemTime::now());
                }
                Action::Penalize { points, reason } => self.penalize(io, points, reason),
                Action::Notice(n) => {
                    let _ = io.ctx.notices_in.send((io.peer, n));
                }
                Action::Close(reason) => io.close(reason),
                // The bridge consumes these; a LAN link never reconciles by scope.
                Action::Differences { .. } | Action::Delivered(_) => {}
                Action::File(f) => self.on_file(io, f),
                Action::ServeFile {
                    address,
                    list,
                    ranges,
                } => self.serve_file(io, address, list, ranges),
            }
        }
    }

    fn admitted(&mut self, io: &mut Io<'_>, peer: NodeId, name: &str) {
        io.admitted = true;
        match self {
            Session::Lan(lan) => {
                // One link per pair: a live link to the same peer may win over this one.
                let registered = lan.facts.map_or(Registered::Refused, |f| {
                    io.ctx.registry.register(peer, Box::new(io.conn.clone()), f)
                });
                match registered {
                    Registered::Refused => {
                        lan.duplicate = true;
                        io.close("another link to this node was kept".into());
                        return;
                    }
                    // Both nodes dialled at once: the operator was already told of the first.
                    Registered::Replaced { restarted: false } => log::debug!(
                        "node {} linked again at {}: this link replaces the other",
                        peer.short(),
                        io.remote
                    ),
                    Registered::Replaced { restarted: true } => log::info!(
                        "node {} ({name}) restarted: linked again at {}",
                        peer.short(),
                        io.remote
                    ),
                    Registered::First => log::info!(
                        "linked with node {} ({name}) at {}",
                        peer.short(),
                        io.remote
                    ),
                }
                io.ctx.writer.remember_peer(peer.0, io.remote.to_string());
                io.ctx.registry.admitted(peer, name, io.remote);
                lan.carry_files(io);
            }
            Session::Upstream(up) => {
                log::info!("bridged with upstream node {} ({name})", peer.short());
                up.bridge.linked(peer, io.remote, io.conn.clone());
                // The node's fetches may ask upstream too, through the bridge.
                if let Some(files) = io.ctx.files.get() {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::task::block_in_place(|| files.link_up(peer, tx.clone()));
                    up.fetches_tx = Some(tx);
                    up.fetches_rx = Some(rx);
                }
            }
        }
    }

    fn penalize(&mut self, io: &mut Io<'_>, points: u32, reason: String) {
        match self {
            Session::Lan(lan) => {
                let (banned, score) = io.ctx.registry.penalize(io.peer, points, &reason);
                log::warn!(
                    "node {} at {}: {reason} (score now {score})",
                    io.peer.short(),
                    io.remote
                );
                if banned && io.end.is_none() {
                    lan.banned = true;
                    let why = format!("banned for misbehaving: {reason}");
                    io.send(&Frame::Bye(why.clone()));
                    io.close(why);
                }
            }
            Session::Upstream(_) => log::warn!("upstream node {}: {reason}", io.peer.short()),
        }
    }

    /// Parts of a file the bridge chose to send upstream: for the link's serving task, which
    /// reads each from the blob store when the writer's file queue has room and reports it
    /// (started at the first). Without the node's files nothing is held: upstream is told
    /// `Lacks` and the bridge that nothing went.
    fn serve_file(
        &mut self,
        io: &mut Io<'_>,
        address: [u8; 32],
        list: bool,
        ranges: Vec<basis_proto::ChunkRange>,
    ) {
        let Session::Upstream(up) = self else {
            return;
        };
        if up.serve.is_none()
            && let (Some(files), Some(out)) = (io.ctx.files.get(), up.files_out.take())
        {
            let (tx, rx) = mpsc::unbounded_channel();
            io.ctx.tasks.spawn(crate::files::serve(
                files.clone(),
                rx,
                io.control.clone(),
                out,
                Some(up.served_tx.clone()),
            ));
            up.serve = Some(tx);
        }
        let mut want = crate::files::Want {
            address,
            list,
            ranges,
        };
        if let Some(serve) = &up.serve {
            match serve.send(want) {
                Ok(()) => return,
                // The serving task ended (the link is ending): nothing goes.
                Err(back) => want = back.0,
            }
        }
        let parts = want
            .list
            .then_some(basis_proto::bridge_link::FilePart::List)
            .into_iter()
            .chain(
                want.ranges
                    .iter()
                    .flat_map(|r| r.indices())
                    .map(basis_proto::bridge_link::FilePart::Chunk),
            );
        for part in parts {
            let _ = up.served_tx.send(crate::files::Served {
                address,
                part,
                sent: None,
            });
        }
        io.send(&Frame::File(FileFrame::Lacks {
            address,
            list: want.list,
            ranges: want.ranges,
        }));
    }

    /// A file frame from the peer: on a LAN link a want for this link's serving task, anything
    /// else for the node's fetches. On an upstream link the bridge took the frame and passes
    /// on only what is for the fetches (what came down, what upstream holds or lacks).
    fn on_file(&mut self, io: &mut Io<'_>, frame: FileFrame) {
        let Session::Lan(lan) = self else {
            if let Some(files) = io.ctx.files.get() {
                let peer = io.peer;
                let penalties = tokio::task::block_in_place(|| files.on_frame(peer, &frame));
                for p in penalties {
                    self.penalize(io, p.points, p.reason);
                }
            }
            return;
        };
        match frame {
            FileFrame::Want {
                address,
                list,
                ranges,
            } => {
                // An over-long want never gets here: the link closed on it.
                let want = crate::files::Want {
                    address,
                    list,
                    ranges,
                };
                match &lan.wants {
                    Some(wants) => {
                        let _ = wants.send(want);
                    }
                    // This node carries no files: the peer asks elsewhere.
                    None => io.send(&Frame::File(FileFrame::Lacks {
                        address: want.address,
                        list: want.list,
                        ranges: want.ranges,
                    })),
                }
            }
            other => {
                let Some(files) = io.ctx.files.get() else {
                    return;
                };
                let peer = io.peer;
                let penalties = tokio::task::block_in_place(|| files.on_frame(peer, &other));
                for p in penalties {
                    self.penalize(io, p.points, p.reason);
                }
            }
        }
    }

    /// Counters for the peer table or the bridge's status.
    fn note_stats(&self, io: &Io<'_>) {
        match self {
            Session::Lan(lan) => io.ctx.registry.note_stats(io.peer, lan.link.stats()),
            Session::Upstream(up) => up.bridge.note_stats(io.peer, up.machine.stats()),
        }
    }
}

impl Lan {
    /// Starts storing a frame's events and goes on; waits while more stores are under way
    /// than the link allows (`Link::stores_allowed`).
    async fn store(&mut self, io: &mut Io<'_>, events: Vec<basis_core::ValidEvent>) {
        let (ctx, peer) = (io.ctx.clone(), io.peer);
        self.stores.push_back(
            io.ctx
                .tasks
                .spawn(async move { store_from(&ctx, peer, events).await }),
        );
        while self.stores.len() > self.link.stores_allowed() {
            if let Some(result) = self.stores.next().await {
                self.on_stored(io, result);
            }
        }
    }

    /// The oldest store under way ended: acknowledge it if the peer asked, or report it lost.
    fn on_stored(&mut self, io: &mut Io<'_>, result: StoreResult) {
        let failure = match result {
            Ok(Ok(())) => {
                if let Some(Action::Send(ack)) = self.link.stored() {
                    io.send(&ack);
                }
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the storing task failed: {e}"),
        };
        log::error!(
            "cannot store events from node {}: {failure}",
            io.peer.short()
        );
        self.link.store_failed();
    }

    /// Starts carrying files on this admitted link, once the node attached its files (which
    /// may come after the link opened: then at the link's next turn).
    fn carry_files(&mut self, io: &Io<'_>) {
        if !io.admitted || io.end.is_some() || self.duplicate || self.files_out.is_none() {
            return;
        }
        let Some(files) = io.ctx.files.get() else {
            return;
        };
        let Some(out) = self.files_out.take() else {
            return;
        };
        let (wants_tx, wants_rx) = mpsc::unbounded_channel();
        self.wants = Some(wants_tx);
        io.ctx.tasks.spawn(crate::files::serve(
            files.clone(),
            wants_rx,
            io.control.clone(),
            out,
            None,
        ));
        let control = io.control.clone();
        self.files_control = Some(control.clone());
        let peer = io.peer;
        tokio::task::block_in_place(|| files.link_up(peer, control));
    }

    /// The peer-exchange frame, now.
    fn share(&mut self, io: &Io<'_>) -> Vec<Action> {
        self.changes.mark_unchanged();
        self.next_share = None;
        self.shared_at = Some(Instant::now());
        self.link
            .share_peers(&io.ctx.registry.connected_peers())
            .into_iter()
            .collect()
    }
}

/// Drives the connection until the link ends; returns how it ended.
async fn drive(
    io: &mut Io<'_>,
    session: &mut Session,
    first: Vec<Action>,
    recv: RecvStream,
) -> End {
    let mut frames = FramedRead::new(recv, codec());
    let mut events = io.ctx.events.subscribe();
    let stop = io.ctx.stop.clone();
    session.apply(io, first).await;
    while io.end.is_none() {
        let deadline = session.poll_timeout();
        let actions = tokio::select! {
            biased;
            () = stop.cancelled() => {
                io.send(&Frame::Bye("the node is shutting down".into()));
                io.end = Some(End::Stopped);
                Vec::new()
            }
            frame = frames.next() => match frame {
                Some(Ok(bytes)) => {
                    let wait = session.read_wait(bytes.len());
                    if !wait.is_zero() {
                        io.ctx.registry.note_throttled(io.peer, wait);
                        tokio::time::sleep(wait).await;
                    }
                    session.on_frame(io, &bytes)
                }
                // A frame over the size limit is the peer's fault; a connection that broke
                // (a partition, a peer that went away) is nobody's and costs no score.
                Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    let reason = format!("unreadable frame from the peer: {e}");
                    vec![
                        Action::Send(Frame::Bye(reason.clone())),
                        Action::Penalize {
                            points: basis_proto::link::PENALTY_VIOLATION,
                            reason: reason.clone(),
                        },
                        Action::Close(reason),
                    ]
                }
                Some(Err(e)) => vec![Action::Close(match io.conn.close_reason() {
                    Some(reason) => read_close(&reason).0,
                    None => format!("the link broke: {e}"),
                })],
                None => vec![Action::Close(match io.conn.close_reason() {
                    Some(reason) => read_close(&reason).0,
                    None => "the peer ended the stream".into(),
                })],
            },
            event = events.recv() => match event {
                Ok(ev) => {
                    let (waiting, lagged) = waiting_events(ev, &mut events);
                    let mut actions = session.on_new_events(io.peer, &waiting);
                    if lagged {
                        actions.extend(session.on_new_event(io.peer, None));
                    }
                    actions
                }
                Err(broadcast::error::RecvError::Lagged(_)) => session.on_new_event(io.peer, None),
                Err(broadcast::error::RecvError::Closed) => Vec::new(),
            },
            extra = session.extra() => session.on_extra(io, extra),
            () = sleep_until(deadline) => session.on_timeout(io),
            reason = io.conn.closed() => vec![Action::Close(read_close(&reason).0)],
        };
        session.apply(io, actions).await;
        session.note_stats(io);
        if let Session::Lan(lan) = session {
            lan.carry_files(io);
        }
    }
    io.end.take().unwrap_or(End::Stopped)
}

/// The queues of a new writer task on `send`.
struct Queues {
    control: mpsc::UnboundedSender<Vec<u8>>,
    /// Streamed events (LAN backfill).
    bulk: mpsc::Sender<Vec<u8>>,
    /// File data: room for one frame, so a link reads a chunk from the store only when the
    /// writer is about to take it.
    files: mpsc::Sender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

fn spawn_writer(send: SendStream) -> Queues {
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (bulk_tx, bulk_rx) = mpsc::channel(8);
    let (files_tx, files_rx) = mpsc::channel(1);
    Queues {
        control: control_tx,
        bulk: bulk_tx,
        files: files_tx,
        task: tokio::spawn(writer(send, control_rx, bulk_rx, files_rx)),
    }
}

/// The exporter value of the connection's TLS session, for the admission proof.
fn exporter(conn: &Connection) -> Option<[u8; 32]> {
    let mut exporter = [0u8; 32];
    conn.export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
        .ok()
        .map(|()| exporter)
}

/// Runs a LAN link until it closes, then records how it ended.
pub(crate) async fn run_lan(
    ctx: Arc<Context>,
    conn: Connection,
    role: Role,
    peer: NodeId,
    send: SendStream,
    recv: RecvStream,
) {
    let Some(exporter) = exporter(&conn) else {
        return close(&conn, CloseCode::Unusable, "no keying material");
    };
    let mut config = ctx.link_config.clone();
    if role == Role::Dialer {
        config.dial = ctx.next_dial();
    }
    let (link, first) = Link::new(config, role, peer, exporter);
    let Queues {
        control,
        bulk,
        files: files_out,
        task: writer_task,
    } = spawn_writer(send);
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let mut session = Session::Lan(Box::new(Lan {
        link,
        facts: None,
        duplicate: false,
        banned: false,
        rate: RateLimit::new(ctx.peer_rate),
        notices: ctx.notices_out.subscribe(),
        sent_tx,
        sent_rx,
        changes: ctx.registry.changes(),
        next_share: Some(Instant::now()),
        shared_at: None,
        bulk,
        files_out: Some(files_out),
        wants: None,
        files_control: None,
        catch_up: None,
        stores: FuturesOrdered::new(),
    }));
    let mut io = Io {
        ctx: &ctx,
        conn: &conn,
        peer,
        remote: canonical(conn.remote_address()),
        control,
        source: StoreItems(ctx.clone()),
        end: None,
        admitted: false,
    };
    let end = drive(&mut io, &mut session, first, recv).await;
    drop(io);
    let Session::Lan(mut lan) = session else {
        return;
    };
    if let Some(files) = ctx.files.get()
        && let Some(control) = lan.files_control.take()
    {
        tokio::task::block_in_place(|| files.link_down(&peer, &control));
    }
    let stopping = matches!(end, End::Stopped) || ctx.stop.is_cancelled();
    let reason = match end {
        End::Stopped => "this node is shutting down".to_string(),
        End::Closed(reason) => reason,
    };
    let (outcome, code) = ending(&conn, &lan.link, lan.duplicate, lan.banned, stopping);
    drop(lan);
    if outcome != Outcome::Duplicate {
        // Let a Bye reach the peer before the connection goes.
        let _ = tokio::time::timeout(FLUSH_TIMEOUT, writer_task).await;
    }
    close(&conn, code, &reason);
    ctx.registry.link_ended(peer, &conn, &reason, outcome);
}

/// Runs an upstream link until it ends: whether it was admitted, and how it ended.
pub(crate) async fn run_upstream(
    ctx: &Arc<Context>,
    bridge: &Arc<Bridge>,
    id: NodeId,
    conn: Connection,
    wan: watch::Receiver<WanView>,
    connect_timeout: Duration,
) -> (bool, Attempt) {
    let Some(exporter) = exporter(&conn) else {
        close(&conn, CloseCode::Unusable, "no keying material");
        return (false, Attempt::Ended("no keying material".into()));
    };
    let (send, recv) = match tokio::time::timeout(connect_timeout, conn.open_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => {
            let reason = format!("cannot open the link stream: {e}");
            return (false, Attempt::Ended(reason));
        }
        Err(_) => {
            let reason = "cannot open the link stream: timed out".to_string();
            return (false, Attempt::Ended(reason));
        }
    };
    let config = LinkConfig {
        local: ctx.local,
        name: ctx.link_config.name.clone(),
        // The LAN's secret proves nothing upstream; the upstream node admits this node by id.
        federation: None,
        allow: vec![id],
        reconcile_every: bridge.reconcile_every(),
        upstream: true,
        boot: ctx.link_config.boot,
        dial: ctx.next_dial(),
        slice_items: LinkConfig::SLICE_ITEMS,
    };
    let (machine, first) = BridgeLink::new(config, id, exporter, bridge.reconcile_every());
    // Every frame but file data goes in order on one queue: the upload frames' numbers must
    // match the order the upstream node receives them in, and the machine bounds what is in
    // flight. File data (what the bridge chose to serve) waits behind them in the file queue.
    let Queues {
        control,
        files: files_out,
        task: writer_task,
        ..
    } = spawn_writer(send);
    let (served_tx, served_rx) = mpsc::unbounded_channel();
    let mut session = Session::Upstream(Box::new(Upstream {
        bridge: bridge.clone(),
        machine,
        wan,
        saved_at: Instant::now(),
        files_out: Some(files_out),
        serve: None,
        served_tx,
        served_rx,
        fetches_tx: None,
        fetches_rx: None,
    }));
    let remote = canonical(conn.remote_address());
    let mut io = Io {
        ctx,
        conn: &conn,
        peer: id,
        remote,
        control,
        source: StoreItems(ctx.clone()),
        end: None,
        admitted: false,
    };
    let end = drive(&mut io, &mut session, first, recv).await;
    let admitted = io.admitted;
    drop(io);
    let Session::Upstream(mut up) = session else {
        return (admitted, Attempt::Stopped);
    };
    up.machine.closed(&mut bridge.rooms());
    if let (Some(files), Some(tx)) = (ctx.files.get(), up.fetches_tx.take()) {
        tokio::task::block_in_place(|| files.link_down(&id, &tx));
    }
    bridge.unlinked(id);
    let refused = up.machine.link().refused();
    drop(up);
    let _ = tokio::time::timeout(FLUSH_TIMEOUT, writer_task).await;
    let attempt = match end {
        End::Stopped => {
            close(&conn, CloseCode::Shutdown, "this node is shutting down");
            Attempt::Stopped
        }
        End::Closed(reason) => {
            close(&conn, CloseCode::Ended, &reason);
            if !admitted && refused {
                Attempt::NotAdmitted(reason)
            } else {
                Attempt::Ended(reason)
            }
        }
    };
    if admitted {
        log::debug!("upstream link to {remote} ended");
    }
    (admitted, attempt)
}

/// What a finished LAN link's end means, and the close code to send for it.
fn ending(
    conn: &Connection,
    link: &Link,
    duplicate: bool,
    banned: bool,
    stopping: bool,
) -> (Outcome, CloseCode) {
    let closed = conn.close_reason();
    let peer_code = closed.as_ref().and_then(|e| read_close(e).1);
    // Closed here while the link ran: another link to the same peer replaced this one.
    let replaced = !stopping && matches!(closed, Some(quinn::ConnectionError::LocallyClosed));
    if duplicate || replaced || peer_code == Some(CloseCode::Duplicate) {
        return (Outcome::Duplicate, CloseCode::Duplicate);
    }
    if link.refused_by_me() {
        return (
            Outcome::Refused(Refusal::NotAdmittedHere),
            CloseCode::NotAdmitted,
        );
    }
    if banned {
        return (Outcome::Refused(Refusal::Banned), CloseCode::Banned);
    }
    if let Some(refusal) = peer_code.and_then(refusal_by_peer) {
        return (Outcome::Refused(refusal), CloseCode::Ended);
    }
    if link.refused() {
        return (
            Outcome::Refused(Refusal::NotAdmittedThere),
            CloseCode::Ended,
        );
    }
    let code = if stopping {
        CloseCode::Shutdown
    } else {
        CloseCode::Ended
    };
    if link.was_admitted() {
        (Outcome::Ended, code)
    } else {
        (Outcome::Broke, code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_event(n: u8) -> Arc<NewEvent> {
        Arc::new(NewEvent {
            id: EventId([n; 32]),
            room: RoomId([1; 32]),
            bytes: vec![n],
            origin: None,
        })
    }

    #[tokio::test]
    async fn events_committed_together_are_taken_together_without_waiting_for_more() {
        let (tx, mut rx) = broadcast::channel(16);
        for n in 0..3 {
            let _ = tx.send(new_event(n));
        }
        let first = rx.recv().await.expect("an event");
        let (waiting, lagged) = waiting_events(first, &mut rx);
        let ids: Vec<u8> = waiting.iter().map(|e| e.id.0[0]).collect();
        assert_eq!(ids, vec![0, 1, 2]);
        assert!(!lagged);
        // Nothing more waiting: the next turn waits for the next event.
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_queue_that_overflowed_behind_the_first_event_is_reported() {
        let (tx, mut rx) = broadcast::channel(4);
        let _ = tx.send(new_event(0));
        let first = rx.recv().await.expect("an event");
        for n in 1..10 {
            let _ = tx.send(new_event(n));
        }
        let (waiting, lagged) = waiting_events(first, &mut rx);
        assert_eq!(waiting.len(), 1);
        assert!(lagged, "reconciliation must be told to catch up");
    }

    #[tokio::test]
    async fn at_most_a_batch_is_taken_in_one_turn() {
        let (tx, mut rx) = broadcast::channel(2 * PUSH_BATCH);
        for n in 0..(PUSH_BATCH + 10) {
            let _ = tx.send(new_event((n % 256) as u8));
        }
        let first = rx.recv().await.expect("an event");
        let (waiting, lagged) = waiting_events(first, &mut rx);
        assert_eq!(waiting.len(), PUSH_BATCH);
        assert!(!lagged);
        assert!(rx.try_recv().is_ok(), "the rest waits for the next turn");
    }

    #[test]
    fn rate_limit_lets_a_burst_through_then_paces() {
        let mut r = RateLimit::new(2 * MAX_FRAME as u64);
        // A full second's worth passes at once.
        assert!(r.take(2 * MAX_FRAME).is_zero());
        // The next second's worth must wait about a second.
        let wait = r.take(2 * MAX_FRAME);
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_millis(1000),
            "{wait:?}"
        );
    }

    #[test]
    fn slow_rates_still_admit_one_whole_frame() {
        let mut r = RateLimit::new(1024);
        assert!(r.take(MAX_FRAME).is_zero());
        assert!(!r.take(1).is_zero());
    }
}
