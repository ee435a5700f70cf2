//! The upstream bridge: when the WAN is up, links to the configured upstream nodes and
//! reconciles the rooms its policy allows, in the directions it allows, within each room's
//! hourly byte budget.
//!
//! An upstream link is an ordinary federation link on the upstream side. On this side the
//! link runs in upstream mode (see [`basis_proto::LinkConfig::upstream`]): it reconciles one
//! room at a time, and this driver decides what is sent (room state and keys, then messages,
//! then files; newest first) and what is asked for. Nothing else crosses: the peer's wants,
//! peer lists and notices are ignored, and events it pushes in rooms not allowed down are
//! dropped. A sync cut halfway resumes at the next link with a fresh reconciliation, which
//! finds exactly what is still missing; content addressing makes a repeat harmless.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use basis_core::{EventId, NodeId, RoomId, ValidEvent};
use basis_proto::admission::EXPORTER_LABEL;
use basis_proto::bridge::{Budget, Pending, RoomPolicy, classify, send_order};
use basis_proto::frame::Frame;
use basis_proto::limits::EVENTS_FRAME_BYTES;
use basis_proto::{Action, CloseCode, Link, LinkConfig, Role};
use basis_store::Readers;
use futures_util::StreamExt;
use quinn::Connection;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::FramedRead;

use crate::closing::{close, read_close};
use crate::link_task::{StoreItems, codec, store_from, writer};
use crate::service::{Shared, StaticPeer, canonical, peer_of};
use crate::wan::{WanView, unix_now};

/// First wait before dialling an upstream node again; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between dials while the WAN is up: an upstream node that restarted is
/// found again within this long.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait for a handshake with an upstream node (WAN links can be slow).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// After a new local event in a bridged room, wait this long for more before reconciling.
const DEBOUNCE: Duration = Duration::from_millis(300);
/// Events read from the store at once while uploading.
const READ_CHUNK: usize = 256;
/// A downlink request not answered within this long is asked again.
const WANT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most events asked for at once when a room has no budget.
const WANT_BATCH: usize = 4096;
/// How often the bridge's state (budgets, sync marks) is written to disk when it changed.
const SAVE_EVERY: Duration = Duration::from_secs(10);

/// What the bridge needs from the node's configuration.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Upstream nodes; each must have its node id pinned.
    pub peers: Vec<StaticPeer>,
    /// The WAN interface (`None`: whichever the route to the upstream nodes leaves by).
    pub wan_interface: Option<String>,
    /// Reconcile the rooms again after this long while linked.
    pub reconcile_every: Duration,
    /// The rooms bridged and what each may do.
    pub rooms: BTreeMap<RoomId, RoomPolicy>,
    /// Where budgets and sync marks are kept across restarts (`None`: not kept).
    pub state_file: Option<PathBuf>,
}

/// The bridge as `basis status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BridgeSnapshot {
    /// The WAN link.
    pub wan: WanView,
    /// Each upstream node.
    pub upstreams: Vec<UpstreamSnapshot>,
    /// Each bridged room.
    pub rooms: Vec<RoomSnapshot>,
}

/// One upstream node as `basis status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UpstreamSnapshot {
    /// Its node id (hex).
    pub node_id: String,
    /// Host and port as configured.
    pub host: String,
    /// The address it is linked at.
    pub address: Option<String>,
    /// `linked`, `connecting`, `waiting for the WAN`, `unreachable` or `disconnected`.
    pub state: String,
    /// Unix time (seconds) the state began.
    pub since: u64,
    /// Round-trip time, milliseconds, while linked.
    pub rtt_ms: Option<f64>,
    /// Unix time (seconds) of the last finished reconciliation of every room.
    pub last_reconciled: Option<u64>,
    /// Events sent to it since the node started.
    pub events_sent: u64,
    /// Events received from it since the node started.
    pub events_received: u64,
    /// Why the last link ended or the last dial failed.
    pub last_error: Option<String>,
}

/// One bridged room as `basis status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomSnapshot {
    /// The room id (hex).
    pub room: String,
    /// Events written on the LAN go up.
    pub uplink: bool,
    /// Events written upstream come down.
    pub downlink: bool,
    /// Higher goes first.
    pub priority: i32,
    /// The hourly byte budget (`None`: no limit).
    pub budget_bytes_per_hour: Option<u64>,
    /// Bytes of the room's events that crossed the WAN in the last hour.
    pub budget_used_bytes: u64,
    /// The budget stopped the bridge from sending or asking for more.
    pub budget_exhausted: bool,
    /// Seconds until the oldest spending in the window stops counting.
    pub budget_frees_in_secs: Option<u64>,
    /// Events waiting to go up.
    pub backlog_events: u64,
    /// Their bytes.
    pub backlog_bytes: u64,
    /// Whether the backlog is what the last reconciliation found (true) or, while not
    /// linked, the events stored since the last complete sync of the room (at most that).
    pub backlog_exact: bool,
    /// Events upstream holds that have not come down yet (as of the last reconciliation).
    pub downlink_backlog_events: u64,
    /// Events of the room sent up since the node started.
    pub sent_events: u64,
    /// Their bytes.
    pub sent_bytes: u64,
    /// Events of the room received from upstream since the node started.
    pub received_events: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Unix time (seconds) the room was last fully in sync upward.
    pub last_synced: Option<u64>,
}

/// What is kept on disk across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    rooms: BTreeMap<String, SavedRoom>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct SavedRoom {
    budget: Budget,
    synced_seq: u64,
    last_synced: Option<u64>,
}

#[derive(Debug, Default)]
struct RoomState {
    saved: SavedRoom,
    /// `(events, bytes)` waiting to go up, as the last reconciliation found.
    up_backlog: Option<(u64, u64)>,
    down_backlog: u64,
    exhausted: bool,
    sent_events: u64,
    sent_bytes: u64,
    received_events: u64,
    received_bytes: u64,
}

#[derive(Debug, Default)]
struct UpstreamEntry {
    host: String,
    address: Option<String>,
    state: String,
    since: u64,
    rtt: Option<Duration>,
    last_reconciled: Option<u64>,
    events_sent: u64,
    events_received: u64,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    rooms: BTreeMap<RoomId, RoomState>,
    upstreams: BTreeMap<NodeId, UpstreamEntry>,
    changed: bool,
}

/// The bridge shared by the upstream links.
pub(crate) struct Bridge {
    settings: UpstreamSettings,
    /// Bridged rooms, highest priority first.
    order: Vec<RoomId>,
    pub(crate) wan: watch::Receiver<WanView>,
    state: Mutex<State>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Bridge {
    pub(crate) fn new(settings: UpstreamSettings, wan: watch::Receiver<WanView>) -> Bridge {
        let saved = settings
            .state_file
            .as_ref()
            .and_then(|path| match std::fs::read(path) {
                Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                    Ok(saved) => Some(saved),
                    Err(e) => {
                        log::warn!(
                            "{} is unreadable ({e}); budgets start empty",
                            path.display()
                        );
                        None
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    log::warn!("cannot read {}: {e}; budgets start empty", path.display());
                    None
                }
            })
            .unwrap_or_default();
        let mut state = State::default();
        for room in settings.rooms.keys() {
            let saved = saved.rooms.get(&room.to_string()).cloned();
            state.rooms.insert(
                *room,
                RoomState {
                    saved: saved.unwrap_or_default(),
                    ..RoomState::default()
                },
            );
        }
        for peer in &settings.peers {
            if let Some(id) = peer.expected {
                state.upstreams.insert(
                    id,
                    UpstreamEntry {
                        host: format!("{}:{}", peer.host, peer.port),
                        state: "waiting for the WAN".into(),
                        since: unix_now(),
                        ..UpstreamEntry::default()
                    },
                );
            }
        }
        let mut order: Vec<RoomId> = settings.rooms.keys().copied().collect();
        order.sort_by_key(|r| {
            (
                std::cmp::Reverse(settings.rooms.get(r).map_or(0, |p| p.priority)),
                *r,
            )
        });
        Bridge {
            settings,
            order,
            wan,
            state: Mutex::new(state),
        }
    }

    fn policy(&self, room: &RoomId) -> Option<&RoomPolicy> {
        self.settings.rooms.get(room)
    }

    fn uplink(&self, room: &RoomId) -> bool {
        self.policy(room).is_some_and(|p| p.uplink)
    }

    fn downlink(&self, room: &RoomId) -> bool {
        self.policy(room).is_some_and(|p| p.downlink)
    }

    fn limit(&self, room: &RoomId) -> Option<u64> {
        self.policy(room).and_then(|p| p.budget_per_hour)
    }

    /// Spends `bytes` of the room's budget if they fit; false (and the room is marked
    /// exhausted) when they do not.
    fn try_spend(&self, room: &RoomId, bytes: u64) -> bool {
        let limit = self.limit(room);
        let now = unix_now();
        let mut state = lock(&self.state);
        let Some(r) = state.rooms.get_mut(room) else {
            return false;
        };
        if !r.saved.budget.allows(limit, now, bytes) {
            r.exhausted = true;
            return false;
        }
        r.saved.budget.spend(now, bytes);
        state.changed = true;
        true
    }

    /// Bytes the room may still move this hour (`None`: no limit).
    fn remaining(&self, room: &RoomId) -> Option<u64> {
        let limit = self.limit(room);
        let mut state = lock(&self.state);
        state
            .rooms
            .get_mut(room)
            .and_then(|r| r.saved.budget.remaining(limit, unix_now()))
    }

    fn set_upstream(&self, id: NodeId, state: &str, error: Option<String>) {
        let mut s = lock(&self.state);
        let e = s.upstreams.entry(id).or_default();
        if e.state != state {
            e.state = state.to_string();
            e.since = unix_now();
        }
        if state != "linked" {
            e.rtt = None;
        }
        if error.is_some() {
            e.last_error = error;
        }
    }

    fn upstream<T>(&self, id: NodeId, f: impl FnOnce(&mut UpstreamEntry) -> T) -> T {
        f(lock(&self.state).upstreams.entry(id).or_default())
    }

    /// Runs `f` on a room's state. What is saved to disk changes only through
    /// [`Bridge::try_spend`] and [`Bridge::mark_changed`], so figures kept in memory only
    /// (backlogs, counters) never cause a write.
    fn room<T>(&self, room: &RoomId, f: impl FnOnce(&mut RoomState) -> T) -> Option<T> {
        lock(&self.state).rooms.get_mut(room).map(f)
    }

    /// The saved part of the state changed: write it at the next save.
    fn mark_changed(&self) {
        lock(&self.state).changed = true;
    }

    /// A link ended: the exact backlogs it found are no longer known.
    fn forget_backlogs(&self) {
        for r in lock(&self.state).rooms.values_mut() {
            r.up_backlog = None;
        }
    }

    /// Writes budgets and sync marks to the state file when they changed.
    pub(crate) fn save(&self) {
        let Some(path) = &self.settings.state_file else {
            return;
        };
        let saved = {
            let mut s = lock(&self.state);
            if !s.changed {
                return;
            }
            s.changed = false;
            Saved {
                rooms: s
                    .rooms
                    .iter()
                    .map(|(id, r)| (id.to_string(), r.saved.clone()))
                    .collect(),
            }
        };
        let tmp = path.with_extension("json.tmp");
        let result = serde_json::to_vec(&saved)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            log::warn!("cannot save the bridge state to {}: {e}", path.display());
            lock(&self.state).changed = true;
        }
    }

    /// The snapshot for `basis status`; estimates the backlog of rooms not reconciled on a
    /// live link from the store (a blocking read).
    pub(crate) fn snapshot(&self, readers: &Readers) -> BridgeSnapshot {
        let now = unix_now();
        let wan = self.wan.borrow().clone();
        let mut rooms = Vec::new();
        // Rooms without an exact backlog, and where their last complete sync left off.
        let marks: Vec<(RoomId, u64)> = lock(&self.state)
            .rooms
            .iter()
            .filter(|(_, r)| r.up_backlog.is_none())
            .map(|(id, r)| (*id, r.saved.synced_seq))
            .collect();
        let mut estimates = HashMap::new();
        for (room, synced) in marks {
            if self.uplink(&room) {
                match readers.room_since(&room, synced) {
                    Ok(found) => {
                        estimates.insert(room, found);
                    }
                    Err(e) => log::warn!("cannot count the backlog of room {}: {e}", room.short()),
                }
            }
        }
        let mut s = lock(&self.state);
        for room in &self.order {
            let Some(policy) = self.settings.rooms.get(room).copied() else {
                continue;
            };
            let Some(r) = s.rooms.get_mut(room) else {
                continue;
            };
            let (backlog, exact) = match r.up_backlog {
                Some(b) => (b, true),
                None => (estimates.get(room).copied().unwrap_or((0, 0)), false),
            };
            let used = r.saved.budget.used(now);
            rooms.push(RoomSnapshot {
                room: room.to_string(),
                uplink: policy.uplink,
                downlink: policy.downlink,
                priority: policy.priority,
                budget_bytes_per_hour: policy.budget_per_hour,
                budget_used_bytes: used,
                budget_exhausted: r.exhausted,
                budget_frees_in_secs: policy
                    .budget_per_hour
                    .and_then(|_| r.saved.budget.frees_at(now))
                    .map(|t| t.saturating_sub(now)),
                backlog_events: if policy.uplink { backlog.0 } else { 0 },
                backlog_bytes: if policy.uplink { backlog.1 } else { 0 },
                backlog_exact: exact,
                downlink_backlog_events: r.down_backlog,
                sent_events: r.sent_events,
                sent_bytes: r.sent_bytes,
                received_events: r.received_events,
                received_bytes: r.received_bytes,
                last_synced: r.saved.last_synced,
            });
        }
        let upstreams = s
            .upstreams
            .iter()
            .map(|(id, e)| UpstreamSnapshot {
                node_id: id.to_string(),
                host: e.host.clone(),
                address: e.address.clone(),
                state: e.state.clone(),
                since: e.since,
                rtt_ms: e.rtt.map(|d| d.as_secs_f64() * 1000.0),
                last_reconciled: e.last_reconciled,
                events_sent: e.events_sent,
                events_received: e.events_received,
                last_error: e.last_error.clone(),
            })
            .collect();
        BridgeSnapshot {
            wan,
            upstreams,
            rooms,
        }
    }
}

/// Starts one task per upstream node.
pub(crate) fn start(shared: &Arc<Shared>, bridge: &Arc<Bridge>, client: quinn::ClientConfig) {
    for peer in bridge.settings.peers.clone() {
        shared.tasks.spawn(peer_loop(
            shared.clone(),
            bridge.clone(),
            peer,
            client.clone(),
        ));
    }
}

/// Keeps one upstream node linked while the WAN is up.
async fn peer_loop(
    shared: Arc<Shared>,
    bridge: Arc<Bridge>,
    peer: StaticPeer,
    client: quinn::ClientConfig,
) {
    let Some(id) = peer.expected else {
        return log::warn!(
            "upstream peer {} has no pinned node id; not bridging with it",
            peer.host
        );
    };
    let mut wan = bridge.wan.clone();
    let mut backoff = FIRST_BACKOFF;
    let mut last_failure: Option<String> = None;
    loop {
        if !wan.borrow_and_update().up {
            last_failure = None;
            bridge.set_upstream(id, "waiting for the WAN", None);
            tokio::select! {
                () = shared.stop.cancelled() => return,
                changed = wan.changed() => if changed.is_err() { return },
            }
            backoff = FIRST_BACKOFF;
            continue;
        }
        // While retrying an upstream node that does not answer, status keeps saying so.
        if last_failure.is_none() {
            bridge.set_upstream(id, "connecting", None);
        }
        let (linked, reason) = match connect(&shared, &peer, id, &client).await {
            Ok(conn) => run_link(&shared, &bridge, id, conn, &mut wan).await,
            Err(reason) => (false, reason),
        };
        bridge.forget_backlogs();
        bridge.save();
        if linked {
            log::info!("upstream node {} unlinked: {reason}", id.short());
            bridge.set_upstream(id, "disconnected", Some(reason));
            backoff = FIRST_BACKOFF;
            last_failure = None;
        } else {
            // Said once per cause, not every few seconds for as long as it lasts.
            if last_failure.as_deref() != Some(reason.as_str()) {
                log::info!(
                    "upstream node {} unreachable: {reason} (retrying every {} s at most)",
                    id.short(),
                    MAX_BACKOFF.as_secs()
                );
            } else {
                log::debug!("upstream node {} still unreachable: {reason}", id.short());
            }
            bridge.set_upstream(id, "unreachable", Some(reason.clone()));
            last_failure = Some(reason);
        }
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
            _ = wan.changed() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(
    shared: &Shared,
    peer: &StaticPeer,
    id: NodeId,
    client: &quinn::ClientConfig,
) -> Result<Connection, String> {
    let addrs: Vec<_> = tokio::net::lookup_host((peer.host.as_str(), peer.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", peer.host))?
        .collect();
    let mut last = format!("{} resolved to no address", peer.host);
    for addr in addrs {
        let connecting = match shared
            .endpoint
            .connect_with(client.clone(), addr, "basis.invalid")
        {
            Ok(c) => c,
            Err(e) => {
                last = format!("cannot dial {addr}: {e}");
                continue;
            }
        };
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                last = format!("{addr}: {e}");
                continue;
            }
            Err(_) => {
                last = format!("{addr}: no answer within {} s", CONNECT_TIMEOUT.as_secs());
                continue;
            }
        };
        match peer_of(&conn) {
            Some(got) if got == id => return Ok(conn),
            got => {
                close(&conn, CloseCode::UnexpectedKey, "unexpected node key");
                last = format!(
                    "{addr} is node {}, not the pinned {}",
                    got.map_or_else(|| "?".into(), |g| g.short()),
                    id.short()
                );
            }
        }
    }
    Err(last)
}

/// One reconciliation of every bridged room, one room at a time.
struct Cycle {
    rooms: VecDeque<RoomId>,
    started_seq: u64,
    have: Vec<(RoomId, Vec<EventId>)>,
    need: Vec<(RoomId, Vec<EventId>)>,
}

/// Events to ask the upstream node for, highest-priority room first.
#[derive(Default)]
struct Down {
    queue: VecDeque<(RoomId, EventId)>,
    inflight: HashSet<EventId>,
    asked: Option<Instant>,
}

/// What the upload task reports.
enum Uploaded {
    /// These events went into the send queue.
    Sent(Vec<EventId>),
    /// The upload finished; rooms whose events all went are in sync up to the given seq.
    Done { synced: Vec<RoomId>, seq: u64 },
}

/// Runs one upstream link until it ends: `(admitted, why it ended)`.
async fn run_link(
    shared: &Arc<Shared>,
    bridge: &Arc<Bridge>,
    id: NodeId,
    conn: Connection,
    wan: &mut watch::Receiver<WanView>,
) -> (bool, String) {
    let remote = canonical(conn.remote_address());
    let mut exporter = [0u8; 32];
    if conn
        .export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
        .is_err()
    {
        close(&conn, CloseCode::Unusable, "no keying material");
        return (false, "no keying material".into());
    }
    let (send, recv) = match tokio::time::timeout(CONNECT_TIMEOUT, conn.open_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => return (false, format!("cannot open the link stream: {e}")),
        Err(_) => return (false, "cannot open the link stream: timed out".into()),
    };
    let config = LinkConfig {
        local: shared.local,
        name: shared.link_config.name.clone(),
        // The LAN's secret proves nothing upstream; the upstream node admits this node by id.
        federation: None,
        allow: vec![id],
        reconcile_every: bridge.settings.reconcile_every,
        upstream: true,
        boot: shared.link_config.boot,
        dial: shared.next_dial(),
    };
    let (link, first) = Link::new(config, Role::Dialer, id, exporter);
    let (control_tx, control_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (bulk_tx, bulk_rx) = mpsc::channel::<Vec<u8>>(8);
    let (up_tx, mut up_rx) = mpsc::unbounded_channel::<Uploaded>();
    let writer_task = tokio::spawn(writer(send, control_rx, bulk_rx));
    let mut frames = FramedRead::new(recv, codec());
    let mut events = shared.events.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut run = Run {
        shared,
        bridge,
        id,
        remote,
        link,
        source: StoreItems(shared.readers.clone()),
        control: control_tx,
        bulk: bulk_tx,
        uploads: up_tx,
        upload: None,
        cycle: None,
        next_cycle: None,
        dirty: None,
        down: Down::default(),
        subscribed: None,
        admitted: false,
        closed: None,
        saved_at: Instant::now(),
    };
    run.apply(first).await;
    let stop = shared.stop.clone();
    while run.closed.is_none() {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(bytes)) => {
                    let actions = run.link.on_frame(&bytes, Instant::now(), &mut run.source);
                    run.apply(actions).await;
                }
                Some(Err(e)) => run.close(format!("the link broke: {e}")),
                None => run.close(match conn.close_reason() {
                    Some(reason) => read_close(&reason).0,
                    None => "the upstream node ended the stream".into(),
                }),
            },
            event = events.recv() => match event {
                Ok(ev) if ev.origin != Some(id) && bridge.uplink(&ev.room) => run.touch(),
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => run.touch(),
                Err(_) => {}
            },
            Some(up) = up_rx.recv() => run.uploaded(up),
            _ = tick.tick() => {
                bridge.upstream(id, |e| e.rtt = Some(conn.rtt()));
                run.on_tick().await;
            }
            changed = wan.changed() => {
                if changed.is_err() || !wan.borrow().up {
                    run.close("the WAN went down".into());
                }
            }
            reason = conn.closed() => run.close(read_close(&reason).0),
            () = stop.cancelled() => {
                let _ = run.control.send(Frame::Bye("the node is shutting down".into()).encode());
                run.close("this node is shutting down".into());
            }
        }
    }
    if let Some(upload) = run.upload.take() {
        upload.abort();
    }
    let reason = run.closed.take().unwrap_or_default();
    let admitted = run.admitted;
    drop(run);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer_task).await;
    close(&conn, CloseCode::Ended, &reason);
    if admitted {
        log::debug!("upstream link to {remote} ended");
    }
    (admitted, reason)
}

struct Run<'a> {
    shared: &'a Arc<Shared>,
    bridge: &'a Arc<Bridge>,
    id: NodeId,
    remote: std::net::SocketAddr,
    link: Link,
    source: StoreItems,
    control: mpsc::UnboundedSender<Vec<u8>>,
    bulk: mpsc::Sender<Vec<u8>>,
    uploads: mpsc::UnboundedSender<Uploaded>,
    upload: Option<tokio::task::JoinHandle<()>>,
    cycle: Option<Cycle>,
    next_cycle: Option<Instant>,
    dirty: Option<Instant>,
    down: Down,
    subscribed: Option<Vec<RoomId>>,
    admitted: bool,
    closed: Option<String>,
    saved_at: Instant,
}

impl Run<'_> {
    fn close(&mut self, reason: String) {
        self.closed.get_or_insert(reason);
    }

    /// A new local event in a room that goes up: reconcile soon.
    fn touch(&mut self) {
        if self.dirty.is_none() {
            self.dirty = Some(Instant::now() + DEBOUNCE);
        }
    }

    async fn apply(&mut self, actions: Vec<Action>) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Send(frame) => {
                    let _ = self.control.send(frame.encode());
                }
                Action::Admitted { name, .. } => {
                    self.admitted = true;
                    log::info!("bridged with upstream node {} ({name})", self.id.short());
                    let address = self.remote.to_string();
                    self.bridge.upstream(self.id, |e| e.address = Some(address));
                    self.bridge.set_upstream(self.id, "linked", None);
                    self.next_cycle = Some(Instant::now());
                    self.refresh_subscription();
                }
                Action::Store(events) => self.store(events).await,
                Action::Differences { rooms, have, need } => {
                    queue.extend(self.differences(rooms, have, need));
                }
                Action::Reconciled { .. } => {}
                Action::Penalize { reason, .. } => {
                    log::warn!("upstream node {}: {reason}", self.id.short());
                }
                Action::Close(reason) => self.close(reason),
                // Upstream mode never asks to serve, share or relay.
                Action::SendEvents(_) | Action::Learned(_) | Action::Notice(_) => {}
            }
        }
    }

    /// Stores what came down, in rooms allowed down only, and counts it against budgets.
    async fn store(&mut self, events: Vec<ValidEvent>) {
        let mut keep = Vec::with_capacity(events.len());
        let mut dropped = 0usize;
        for ev in events {
            let room = ev.room();
            self.down.inflight.remove(&ev.id());
            if !self.bridge.downlink(&room) {
                dropped += 1;
                continue;
            }
            let bytes = ev.bytes().len() as u64;
            // What came down was paid for: count it even when it overshoots the budget.
            let limit = self.bridge.limit(&room);
            self.bridge.room(&room, |r| {
                r.saved.budget.spend(unix_now(), bytes);
                if r.saved.budget.remaining(limit, unix_now()) == Some(0) {
                    r.exhausted = true;
                }
                r.received_events += 1;
                r.received_bytes += bytes;
                r.down_backlog = r.down_backlog.saturating_sub(1);
            });
            keep.push(ev);
        }
        if !keep.is_empty() {
            self.bridge.mark_changed();
        }
        if dropped > 0 {
            log::debug!(
                "dropped {dropped} events from upstream node {} in rooms not bridged down",
                self.id.short()
            );
        }
        let n = keep.len() as u64;
        if n == 0 {
            return;
        }
        match store_from(self.shared, self.id, keep).await {
            Ok(()) => self.bridge.upstream(self.id, |e| e.events_received += n),
            Err(e) => {
                log::error!(
                    "cannot store events from upstream node {}: {e}",
                    self.id.short()
                );
                // Nothing was acknowledged upstream; the next reconciliation asks again.
                self.next_cycle = Some(Instant::now() + Duration::from_secs(5));
            }
        }
    }

    /// One room's session finished: remember its differences and start the next room, or
    /// finish the cycle.
    fn differences(
        &mut self,
        rooms: Vec<RoomId>,
        have: Vec<EventId>,
        need: Vec<EventId>,
    ) -> Vec<Action> {
        let Some(cycle) = self.cycle.as_mut() else {
            return Vec::new();
        };
        if let Some(room) = rooms.first() {
            cycle.have.push((*room, have));
            cycle.need.push((*room, need));
        }
        if let Some(next) = cycle.rooms.pop_front() {
            return self
                .link
                .reconcile_rooms(vec![next], Instant::now(), &mut self.source);
        }
        let Some(cycle) = self.cycle.take() else {
            return Vec::new();
        };
        self.finish_cycle(cycle);
        Vec::new()
    }

    fn start_cycle(&mut self) -> Vec<Action> {
        let mut rooms: VecDeque<RoomId> = self.bridge.order.iter().copied().collect();
        let Some(first) = rooms.pop_front() else {
            return Vec::new();
        };
        let started_seq = match self.shared.readers.last_seq() {
            Ok(seq) => seq,
            Err(e) => {
                log::warn!("cannot read the store: {e}");
                return Vec::new();
            }
        };
        self.dirty = None;
        self.next_cycle = None;
        self.cycle = Some(Cycle {
            rooms,
            started_seq,
            have: Vec::new(),
            need: Vec::new(),
        });
        self.link
            .reconcile_rooms(vec![first], Instant::now(), &mut self.source)
    }

    fn finish_cycle(&mut self, cycle: Cycle) {
        let now = unix_now();
        self.next_cycle = Some(Instant::now() + self.bridge.settings.reconcile_every);
        self.bridge
            .upstream(self.id, |e| e.last_reconciled = Some(now));
        // Down: what upstream holds that this node lacks, in allowed rooms, newest first.
        self.down.queue.clear();
        for (room, need) in cycle.need {
            if !self.bridge.downlink(&room) {
                continue;
            }
            let waiting = need.len() as u64;
            self.bridge.room(&room, |r| r.down_backlog = waiting);
            for id in need.into_iter().rev() {
                if !self.down.inflight.contains(&id) {
                    self.down.queue.push_back((room, id));
                }
            }
        }
        // Up: what this node holds that upstream lacks, in allowed rooms.
        let mut up = Vec::new();
        let mut synced = Vec::new();
        for (room, have) in cycle.have {
            if !self.bridge.uplink(&room) {
                continue;
            }
            if have.is_empty() {
                synced.push(room);
                continue;
            }
            // A spent budget with the same backlog as last time: nothing can go, and reading
            // the backlog again (a large one, on an SD card) would only wear the card.
            let unchanged = self.bridge.remaining(&room) == Some(0)
                && self.bridge.room(&room, |r| {
                    r.exhausted = true;
                    r.up_backlog.is_some_and(|(n, _)| n == have.len() as u64)
                }) == Some(true);
            if !unchanged {
                up.push((room, have));
            }
        }
        self.mark_synced(&synced, cycle.started_seq);
        if !up.is_empty() {
            self.upload = Some(tokio::spawn(upload(
                self.shared.readers.clone(),
                self.bridge.clone(),
                up,
                cycle.started_seq,
                self.bulk.clone(),
                self.uploads.clone(),
            )));
        }
    }

    fn mark_synced(&self, rooms: &[RoomId], seq: u64) {
        let now = unix_now();
        for room in rooms {
            // A cycle that finds nothing new writes nothing: the sync time alone is not worth
            // a write to the card every cycle (it goes with the next write).
            let advanced = self.bridge.room(room, |r| {
                let advanced = seq > r.saved.synced_seq;
                r.saved.synced_seq = r.saved.synced_seq.max(seq);
                r.saved.last_synced = Some(now);
                r.up_backlog = Some((0, 0));
                r.exhausted = false;
                advanced
            });
            if advanced == Some(true) {
                self.bridge.mark_changed();
            }
        }
    }

    fn uploaded(&mut self, up: Uploaded) {
        match up {
            Uploaded::Sent(ids) => {
                let n = ids.len() as u64;
                self.link.sent(&ids);
                self.bridge.upstream(self.id, |e| e.events_sent += n);
            }
            Uploaded::Done { synced, seq } => {
                self.upload = None;
                self.mark_synced(&synced, seq);
            }
        }
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        if self.admitted && self.cycle.is_none() && self.upload.is_none() {
            let due =
                self.next_cycle.is_some_and(|t| now >= t) || self.dirty.is_some_and(|t| now >= t);
            if due {
                let actions = self.start_cycle();
                self.apply(actions).await;
            }
        }
        if self.admitted {
            self.ask_down(now);
            self.refresh_subscription();
        }
        if now.duration_since(self.saved_at) >= SAVE_EVERY {
            self.saved_at = now;
            self.bridge.save();
        }
    }

    /// Asks for the next batch of missing events, within each room's budget.
    fn ask_down(&mut self, now: Instant) {
        if !self.down.inflight.is_empty() {
            if self
                .down
                .asked
                .is_some_and(|t| now.duration_since(t) < WANT_TIMEOUT)
            {
                return;
            }
            self.down.inflight.clear();
        }
        if self.down.queue.is_empty() {
            return;
        }
        let mut allowance: HashMap<RoomId, usize> = HashMap::new();
        let mut batch = Vec::new();
        let mut later = VecDeque::new();
        while let Some((room, id)) = self.down.queue.pop_front() {
            let left = allowance.entry(room).or_insert_with(|| {
                // Without sizes ahead, ask for about one event per KiB of budget left.
                match self.bridge.remaining(&room) {
                    None => WANT_BATCH,
                    Some(0) => 0,
                    Some(bytes) => ((bytes / 1024) as usize).clamp(1, 256),
                }
            });
            if *left == 0 {
                // Over budget: dropped from this round; the next reconciliation lists it.
                self.bridge.room(&room, |r| r.exhausted = true);
                continue;
            }
            if batch.len() >= WANT_BATCH {
                later.push_back((room, id));
                continue;
            }
            *left -= 1;
            batch.push(id);
        }
        self.down.queue = later;
        if batch.is_empty() {
            return;
        }
        self.down.inflight = batch.iter().copied().collect();
        self.down.asked = Some(now);
        for action in self.link.want(&batch) {
            if let Action::Send(frame) = action {
                let _ = self.control.send(frame.encode());
            }
        }
    }

    /// Tells upstream which rooms to push live: those allowed down with budget left.
    fn refresh_subscription(&mut self) {
        let wanted: Vec<RoomId> = self
            .bridge
            .order
            .iter()
            .filter(|r| self.bridge.downlink(r) && self.bridge.remaining(r) != Some(0))
            .copied()
            .collect();
        if self.subscribed.as_ref() == Some(&wanted) {
            return;
        }
        if let Some(Action::Send(frame)) = self.link.subscribe(wanted.clone()) {
            let _ = self.control.send(frame.encode());
            self.subscribed = Some(wanted);
        }
    }
}

/// Sends the events upstream lacks: room state first, then messages, then files, higher
/// priority first, newest first, each only if its room's budget has room for it.
async fn upload(
    readers: Arc<Readers>,
    bridge: Arc<Bridge>,
    rooms: Vec<(RoomId, Vec<EventId>)>,
    seq: u64,
    bulk: mpsc::Sender<Vec<u8>>,
    report: mpsc::UnboundedSender<Uploaded>,
) {
    // Describe the backlog (a chunk at a time: only sizes and classes stay in memory).
    let mut pending = Vec::new();
    for (room, ids) in rooms {
        let (mut count, mut bytes) = (0u64, 0u64);
        for chunk in ids.chunks(READ_CHUNK) {
            let Some(events) = read(&readers, chunk).await else {
                return;
            };
            for ev in events {
                count += 1;
                bytes += ev.raw.len() as u64;
                pending.push(Pending {
                    room,
                    id: ev.id,
                    ts: ev.time.0,
                    class: classify(&ev.raw),
                    bytes: ev.raw.len() as u64,
                });
            }
        }
        bridge.room(&room, |r| r.up_backlog = Some((count, bytes)));
    }
    send_order(&mut pending, |room| {
        bridge.policy(room).map_or(0, |p| p.priority)
    });
    let mut held: HashSet<RoomId> = HashSet::new();
    let mut frame: Vec<Vec<u8>> = Vec::new();
    let mut frame_ids = Vec::new();
    let mut size = 0usize;
    for chunk in pending.chunks(READ_CHUNK) {
        let wanted: Vec<EventId> = chunk.iter().map(|p| p.id).collect();
        let Some(events) = read(&readers, &wanted).await else {
            return;
        };
        let raw: HashMap<EventId, Vec<u8>> = events.into_iter().map(|e| (e.id, e.raw)).collect();
        for p in chunk {
            let Some(bytes) = raw.get(&p.id) else {
                continue;
            };
            if !bridge.try_spend(&p.room, p.bytes) {
                held.insert(p.room);
                continue;
            }
            bridge.room(&p.room, |r| {
                r.sent_events += 1;
                r.sent_bytes += p.bytes;
                if let Some((n, b)) = r.up_backlog.as_mut() {
                    *n = n.saturating_sub(1);
                    *b = b.saturating_sub(p.bytes);
                }
            });
            if size + bytes.len() > EVENTS_FRAME_BYTES && !frame.is_empty() {
                if !flush(&bulk, &report, &mut frame, &mut frame_ids).await {
                    return;
                }
                size = 0;
            }
            size += bytes.len() + 4;
            frame.push(bytes.clone());
            frame_ids.push(p.id);
        }
        // Flush per chunk so the first events go out while later ones are read.
        if !flush(&bulk, &report, &mut frame, &mut frame_ids).await {
            return;
        }
        size = 0;
    }
    let synced: Vec<RoomId> = bridge
        .order
        .iter()
        .filter(|r| !held.contains(r) && pending.iter().any(|p| p.room == **r))
        .copied()
        .collect();
    for room in &held {
        log::info!(
            "room {}: the hourly budget is spent; the rest waits",
            room.short()
        );
    }
    let _ = report.send(Uploaded::Done { synced, seq });
}

async fn read(readers: &Arc<Readers>, ids: &[EventId]) -> Option<Vec<basis_store::StoredEvent>> {
    let readers = readers.clone();
    let ids = ids.to_vec();
    match tokio::task::spawn_blocking(move || readers.get_many(&ids)).await {
        Ok(Ok(events)) => Some(events),
        Ok(Err(e)) => {
            log::warn!("cannot read events to send upstream: {e}");
            None
        }
        Err(_) => None,
    }
}

async fn flush(
    bulk: &mpsc::Sender<Vec<u8>>,
    report: &mpsc::UnboundedSender<Uploaded>,
    frame: &mut Vec<Vec<u8>>,
    ids: &mut Vec<EventId>,
) -> bool {
    if frame.is_empty() {
        return true;
    }
    let encoded = Frame::Events(std::mem::take(frame)).encode();
    if bulk.send(encoded).await.is_err() {
        return false;
    }
    report.send(Uploaded::Sent(std::mem::take(ids))).is_ok()
}
