//! The upstream bridge's algorithm as a sans-IO state machine: one [`BridgeLink`] per link to
//! an upstream node, and the [`BridgeRooms`] they share (budgets, sync marks, backlogs).
//!
//! The driver feeds it the upstream node's frames, local events and the time, and carries out
//! the [`Action`]s it returns; it reads the store only through [`BridgeStore`]. It never looks
//! at a clock itself, so cycles, budgets and resumption are tested with links in memory.
//!
//! What it does, in cycles (`docs/BRIDGE.md`): one scoped reconciliation per room, highest
//! priority first; then it asks for what the gateway lacks (down) and sends what upstream
//! lacks (up), room state first, then messages, then files, newest first, each event only if
//! its room's budget has room for it. An event counts as sent, is charged to its room's budget
//! and moves the room's sync mark only once the upstream node acknowledges it with a `Stored`
//! frame; until then its bytes are only *reserved*. When the link ends, what was not
//! acknowledged is backlog again and its reservation is released, so it costs budget once,
//! when it really crosses.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use basis_core::{EventId, NodeId, RoomId, ValidEvent};
use serde::{Deserialize, Serialize};

use crate::admission::Role;
use crate::bridge::{Budget, Pending, RoomPolicy, classify, send_order};
use crate::frame::{EventsBatch, event_cost};
use crate::link::{Action, ItemSource, Link, LinkConfig};

/// After a new local event in a bridged room, wait this long for more before reconciling.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// A downlink request not answered within this long is asked again.
pub const WANT_TIMEOUT: Duration = Duration::from_secs(30);
/// Most events asked for at once when a room has no budget.
pub const WANT_BATCH: usize = 4096;
/// Events described or read from the store at once.
pub const READ_CHUNK: usize = 256;
/// Most bytes of events in one upload frame: a cut costs at most a few of them in resends.
pub const UPLOAD_FRAME_BYTES: usize = 64 * 1024;
/// Upload frames sent and not yet acknowledged, at most: about 512 KiB in flight, enough to
/// keep a 1 Mbit/s link with a satellite's round trip busy.
pub const UNACKED_FRAMES: usize = 8;
/// Frames in flight with no acknowledgement for this long are given up (back to the backlog).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// After events from upstream could not be stored, reconcile again this soon.
pub const RETRY_AFTER_STORE_FAILURE: Duration = Duration::from_secs(5);

/// The time, as the driver reads it: a monotonic instant for deadlines and unix seconds for
/// the budgets (which are saved across restarts).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// For deadlines.
    pub at: Instant,
    /// Unix seconds, for budgets.
    pub unix: u64,
}

/// An event held in the store, as the bridge reads it.
#[derive(Debug, Clone)]
pub struct HeldEvent {
    /// Its id.
    pub id: EventId,
    /// Its timestamp.
    pub ts: u64,
    /// Its wire bytes.
    pub raw: Vec<u8>,
}

/// What the bridge reads from the store: the reconciliation items (see [`ItemSource`]), the
/// store's sequence number, and events by id.
pub trait BridgeStore: ItemSource {
    /// The sequence number of the newest stored event (0 when empty).
    fn last_seq(&mut self) -> Result<u64, String>;
    /// The events among `ids` that are held (in any order; missing ones are left out).
    fn events(&mut self, ids: &[EventId]) -> Result<Vec<HeldEvent>, String>;
}

/// What one bridged room keeps across restarts.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRoom {
    /// Bytes that crossed in the last hour.
    pub budget: Budget,
    /// The store's sequence number up to which every event of the room is known upstream.
    pub synced_seq: u64,
    /// Unix time (seconds) of the last complete sync.
    pub last_synced: Option<u64>,
}

/// One bridged room as `basis status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Events waiting to go up (sent ones count until upstream acknowledges them).
    pub backlog_events: u64,
    /// Their bytes.
    pub backlog_bytes: u64,
    /// Whether the backlog is what the last reconciliation found less what upstream
    /// acknowledged since (true) or, while not linked, the events stored since the last
    /// complete sync of the room (at most that).
    pub backlog_exact: bool,
    /// Events upstream holds that have not come down yet (as of the last reconciliation).
    pub downlink_backlog_events: u64,
    /// Events of the room upstream acknowledged since the node started.
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

#[derive(Debug, Default)]
struct RoomState {
    saved: SavedRoom,
    /// `(events, bytes)` upstream lacks: what the last reconciliation found, less what it
    /// acknowledged since (`None`: not known on a live link).
    up_backlog: Option<(u64, u64)>,
    down_backlog: u64,
    exhausted: bool,
    /// Bytes sent and not acknowledged yet: held against the budget, not spent.
    reserved: u64,
    sent_events: u64,
    sent_bytes: u64,
    received_events: u64,
    received_bytes: u64,
}

/// The bridged rooms: their policies and everything the upstream links share about them.
#[derive(Debug)]
pub struct BridgeRooms {
    policies: BTreeMap<RoomId, RoomPolicy>,
    /// Highest priority first.
    order: Vec<RoomId>,
    rooms: BTreeMap<RoomId, RoomState>,
    /// What is saved changed since [`BridgeRooms::take_changes`].
    changed: bool,
}

impl BridgeRooms {
    /// The rooms of `policies`, with what was saved of them.
    pub fn new(
        policies: BTreeMap<RoomId, RoomPolicy>,
        mut saved: BTreeMap<RoomId, SavedRoom>,
    ) -> BridgeRooms {
        let rooms = policies
            .keys()
            .map(|room| {
                let state = RoomState {
                    saved: saved.remove(room).unwrap_or_default(),
                    ..RoomState::default()
                };
                (*room, state)
            })
            .collect();
        let mut order: Vec<RoomId> = policies.keys().copied().collect();
        order.sort_by_key(|r| (std::cmp::Reverse(policies[r].priority), *r));
        BridgeRooms {
            policies,
            order,
            rooms,
            changed: false,
        }
    }

    /// The bridged rooms, highest priority first.
    pub fn order(&self) -> &[RoomId] {
        &self.order
    }

    /// Whether events of `room` written here go up.
    pub fn uplink(&self, room: &RoomId) -> bool {
        self.policies.get(room).is_some_and(|p| p.uplink)
    }

    fn downlink(&self, room: &RoomId) -> bool {
        self.policies.get(room).is_some_and(|p| p.downlink)
    }

    fn limit(&self, room: &RoomId) -> Option<u64> {
        self.policies.get(room).and_then(|p| p.budget_per_hour)
    }

    /// Bytes the room may still move this hour, reservations deducted (`None`: no limit).
    fn remaining(&mut self, room: &RoomId, unix: u64) -> Option<u64> {
        let limit = self.limit(room)?;
        let r = self.rooms.get_mut(room)?;
        Some(limit.saturating_sub(r.saved.budget.used(unix).saturating_add(r.reserved)))
    }

    /// Whether the room's budget is spent by what crossed (reservations aside).
    fn spent(&mut self, room: &RoomId, unix: u64) -> bool {
        let limit = self.limit(room);
        self.rooms
            .get_mut(room)
            .is_some_and(|r| r.saved.budget.remaining(limit, unix) == Some(0))
    }

    /// Reserves `bytes` of the room's budget for an event about to be sent; false (and the
    /// room is marked exhausted) when they do not fit.
    fn reserve(&mut self, room: &RoomId, bytes: u64, unix: u64) -> bool {
        if self.remaining(room, unix).is_some_and(|left| left < bytes) {
            if let Some(r) = self.rooms.get_mut(room) {
                r.exhausted = true;
            }
            return false;
        }
        match self.rooms.get_mut(room) {
            Some(r) => {
                r.reserved += bytes;
                true
            }
            None => false,
        }
    }

    /// A sent event was not acknowledged: its reservation is released.
    fn release(&mut self, room: &RoomId, bytes: u64) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.reserved = r.reserved.saturating_sub(bytes);
        }
    }

    /// Upstream acknowledged a sent event: its bytes are spent and it leaves the backlog.
    fn confirm(&mut self, room: &RoomId, bytes: u64, unix: u64) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.reserved = r.reserved.saturating_sub(bytes);
            r.saved.budget.spend(unix, bytes);
            r.sent_events += 1;
            r.sent_bytes += bytes;
            if let Some((n, b)) = r.up_backlog.as_mut() {
                *n = n.saturating_sub(1);
                *b = b.saturating_sub(bytes);
            }
            self.changed = true;
        }
    }

    /// An event of the room came down: it was paid for, so it counts even over the budget.
    fn received(&mut self, room: &RoomId, bytes: u64, unix: u64) {
        let limit = self.limit(room);
        if let Some(r) = self.rooms.get_mut(room) {
            r.saved.budget.spend(unix, bytes);
            if r.saved.budget.remaining(limit, unix) == Some(0) {
                r.exhausted = true;
            }
            r.received_events += 1;
            r.received_bytes += bytes;
            r.down_backlog = r.down_backlog.saturating_sub(1);
            self.changed = true;
        }
    }

    /// Every event of `rooms` stored up to `seq` is known upstream.
    fn mark_synced(&mut self, rooms: &[RoomId], seq: u64, unix: u64) {
        for room in rooms {
            if let Some(r) = self.rooms.get_mut(room) {
                // A cycle that finds nothing new writes nothing: the sync time alone is not
                // worth a write to the card every cycle (it goes with the next write).
                if seq > r.saved.synced_seq {
                    r.saved.synced_seq = seq;
                    self.changed = true;
                }
                r.saved.last_synced = Some(unix);
                r.up_backlog = Some((0, 0));
                r.exhausted = false;
            }
        }
    }

    /// A link ended: the exact backlogs it found are no longer known.
    pub fn forget_backlogs(&mut self) {
        for r in self.rooms.values_mut() {
            r.up_backlog = None;
        }
    }

    /// What is saved, if it changed since the last call (the caller writes it).
    pub fn take_changes(&mut self) -> Option<BTreeMap<RoomId, SavedRoom>> {
        if !self.changed {
            return None;
        }
        self.changed = false;
        Some(
            self.rooms
                .iter()
                .map(|(id, r)| (*id, r.saved.clone()))
                .collect(),
        )
    }

    /// Whether what is saved changed since the last [`BridgeRooms::take_changes`].
    pub fn has_changes(&self) -> bool {
        self.changed
    }

    /// Writing what [`BridgeRooms::take_changes`] gave failed: offer it again next time.
    pub fn keep_changes(&mut self) {
        self.changed = true;
    }

    /// Rooms going up whose backlog is not known exactly, with their sync marks: the driver
    /// counts the events stored since (an upper bound of the backlog) for the snapshot.
    pub fn marks(&self) -> Vec<(RoomId, u64)> {
        self.rooms
            .iter()
            .filter(|(id, r)| r.up_backlog.is_none() && self.uplink(id))
            .map(|(id, r)| (*id, r.saved.synced_seq))
            .collect()
    }

    /// Every room as `basis status` shows it; `estimates` are the counts for [`marks`].
    ///
    /// [`marks`]: BridgeRooms::marks
    pub fn snapshot(
        &mut self,
        unix: u64,
        estimates: &HashMap<RoomId, (u64, u64)>,
    ) -> Vec<RoomSnapshot> {
        let mut out = Vec::new();
        for room in &self.order {
            let (Some(policy), Some(r)) = (self.policies.get(room), self.rooms.get_mut(room))
            else {
                continue;
            };
            let (backlog, exact) = match r.up_backlog {
                Some(b) => (b, true),
                None => (estimates.get(room).copied().unwrap_or((0, 0)), false),
            };
            out.push(RoomSnapshot {
                room: room.to_string(),
                uplink: policy.uplink,
                downlink: policy.downlink,
                priority: policy.priority,
                budget_bytes_per_hour: policy.budget_per_hour,
                budget_used_bytes: r.saved.budget.used(unix),
                budget_exhausted: r.exhausted,
                budget_frees_in_secs: policy
                    .budget_per_hour
                    .and_then(|_| r.saved.budget.frees_at(unix))
                    .map(|t| t.saturating_sub(unix)),
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
        out
    }
}

/// Counters of one upstream link.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BridgeStats {
    /// Events upstream acknowledged.
    pub events_sent: u64,
    /// Events received from upstream in rooms allowed down.
    pub events_received: u64,
    /// Unix time (seconds) the last cycle finished reconciling every room.
    pub last_reconciled: Option<u64>,
}

/// One reconciliation of every bridged room, one room at a time.
#[derive(Debug)]
struct Cycle {
    rooms: VecDeque<RoomId>,
    started_seq: u64,
    have: Vec<(RoomId, Vec<EventId>)>,
    need: Vec<(RoomId, Vec<EventId>)>,
}

/// Events to ask the upstream node for, highest-priority room first.
#[derive(Debug, Default)]
struct Down {
    queue: VecDeque<(RoomId, EventId)>,
    inflight: HashSet<EventId>,
    asked: Option<Instant>,
}

/// A frame sent up and not acknowledged yet.
#[derive(Debug)]
struct InFlight {
    /// Its number among the `Events` frames of this link.
    number: u64,
    /// Room and bytes of each event in it.
    events: Vec<(RoomId, u64)>,
}

/// What one cycle sends up.
#[derive(Debug)]
struct Upload {
    /// Where the store stood when the cycle began.
    started_seq: u64,
    /// Waiting to go, in sending order.
    queue: VecDeque<Pending>,
    /// Rooms with events in this upload.
    rooms: BTreeSet<RoomId>,
    /// Rooms some of whose events did not get acknowledged (budget, a lost frame).
    incomplete: BTreeSet<RoomId>,
    in_flight: VecDeque<InFlight>,
    /// The last acknowledgement (or the first send).
    progress: Instant,
}

/// The bridge on one upstream link: the link (in upstream mode) and the sync it drives.
pub struct BridgeLink {
    link: Link,
    reconcile_every: Duration,
    admitted: bool,
    cycle: Option<Cycle>,
    next_cycle: Option<Instant>,
    /// A new local event asks for a cycle at this time.
    dirty: Option<Instant>,
    down: Down,
    subscribed: Option<Vec<RoomId>>,
    upload: Option<Upload>,
    /// `Events` frames sent on this link.
    frames_sent: u64,
    stats: BridgeStats,
}

impl BridgeLink {
    /// A bridge on a new link to upstream node `peer`, dialled by this node; `config` must be
    /// in upstream mode. Returns it and the hello to send.
    pub fn new(
        config: LinkConfig,
        peer: NodeId,
        exporter: [u8; 32],
        reconcile_every: Duration,
    ) -> (BridgeLink, Vec<Action>) {
        debug_assert!(config.upstream, "a bridge drives an upstream link");
        let (link, first) = Link::new(config, Role::Dialer, peer, exporter);
        let bridge = BridgeLink {
            link,
            reconcile_every,
            admitted: false,
            cycle: None,
            next_cycle: None,
            dirty: None,
            down: Down::default(),
            subscribed: None,
            upload: None,
            frames_sent: 0,
            stats: BridgeStats::default(),
        };
        (bridge, first)
    }

    /// The link underneath.
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// Counters of this link.
    pub fn stats(&self) -> BridgeStats {
        self.stats
    }

    /// Handles one frame from the upstream node.
    pub fn on_frame(
        &mut self,
        bytes: &[u8],
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
    ) -> Vec<Action> {
        let actions = self.link.on_frame(bytes, now.at, store);
        let mut out = Vec::new();
        self.process(actions, now, rooms, store, &mut out);
        self.work(now, rooms, store, &mut out);
        out
    }

    /// A new event of `room` was stored locally: reconcile soon if it goes up.
    pub fn on_local_event(&mut self, room: Option<RoomId>, now: Now, rooms: &BridgeRooms) {
        if room.is_none_or(|r| rooms.uplink(&r)) && self.dirty.is_none() {
            self.dirty = Some(now.at + DEBOUNCE);
        }
    }

    /// When [`BridgeLink::on_timeout`] next has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = self.admitted && self.cycle.is_none() && self.upload.is_none();
        let cycle = if idle {
            [self.next_cycle, self.dirty].into_iter().flatten().min()
        } else {
            None
        };
        let want = (!self.down.inflight.is_empty())
            .then(|| self.down.asked.map(|t| t + WANT_TIMEOUT))
            .flatten();
        let ack = self
            .upload
            .as_ref()
            .filter(|u| !u.in_flight.is_empty())
            .map(|u| u.progress + ACK_TIMEOUT);
        [cycle, want, ack].into_iter().flatten().min()
    }

    /// Time-driven work: a cycle that is due, a request or upload that timed out.
    pub fn on_timeout(
        &mut self,
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if let Some(up) = self.upload.as_mut()
            && !up.in_flight.is_empty()
            && now.at >= up.progress + ACK_TIMEOUT
        {
            // Upstream stopped acknowledging: what it did not confirm is backlog again.
            for frame in std::mem::take(&mut up.in_flight) {
                for (room, bytes) in frame.events {
                    rooms.release(&room, bytes);
                    up.incomplete.insert(room);
                }
            }
        }
        self.work(now, rooms, store, &mut out);
        out
    }

    /// The driver could not store the events of the last [`Action::Store`]: reconcile again
    /// soon, which asks for them again.
    pub fn store_failed(&mut self, now: Now) {
        self.next_cycle = Some(now.at + RETRY_AFTER_STORE_FAILURE);
    }

    /// The link ended: what was sent and not acknowledged is backlog again.
    pub fn closed(&mut self, rooms: &mut BridgeRooms) {
        if let Some(up) = self.upload.take() {
            for frame in up.in_flight {
                for (room, bytes) in frame.events {
                    rooms.release(&room, bytes);
                }
            }
        }
        self.cycle = None;
        rooms.forget_backlogs();
    }

    fn process(
        &mut self,
        actions: Vec<Action>,
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
        out: &mut Vec<Action>,
    ) {
        for action in actions {
            match action {
                Action::Admitted { peer, name } => {
                    self.admitted = true;
                    self.next_cycle = Some(now.at);
                    out.push(Action::Admitted { peer, name });
                }
                Action::Store(events) => {
                    if let Some(keep) = self.came_down(events, now, rooms) {
                        out.push(Action::Store(keep));
                    }
                }
                Action::Differences {
                    rooms: of,
                    have,
                    need,
                } => {
                    self.differences(of, have, need, now, rooms, store, out);
                }
                Action::Delivered(n) => self.delivered(n, now, rooms),
                // Upstream mode never asks to serve, share or relay.
                Action::Reconciled { .. }
                | Action::SendEvents(_)
                | Action::Learned(_)
                | Action::Notice(_) => {}
                // File frames go to the driver, which decides what files cross (after messages).
                other @ (Action::Send(_)
                | Action::Penalize { .. }
                | Action::Close(_)
                | Action::File(_)) => {
                    out.push(other);
                }
            }
        }
    }

    /// Keeps what came down in rooms allowed down, and counts it against their budgets.
    fn came_down(
        &mut self,
        events: Vec<ValidEvent>,
        now: Now,
        rooms: &mut BridgeRooms,
    ) -> Option<Vec<ValidEvent>> {
        let mut keep = Vec::with_capacity(events.len());
        for ev in events {
            let room = ev.room();
            self.down.inflight.remove(&ev.id());
            if !rooms.downlink(&room) {
                continue;
            }
            rooms.received(&room, ev.bytes().len() as u64, now.unix);
            keep.push(ev);
        }
        self.stats.events_received += keep.len() as u64;
        (!keep.is_empty()).then_some(keep)
    }

    /// One room's session finished: remember its differences and reconcile the next room, or
    /// finish the cycle.
    #[allow(clippy::too_many_arguments)]
    fn differences(
        &mut self,
        of: Vec<RoomId>,
        have: Vec<EventId>,
        need: Vec<EventId>,
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
        out: &mut Vec<Action>,
    ) {
        let Some(cycle) = self.cycle.as_mut() else {
            return;
        };
        if let Some(room) = of.first() {
            cycle.have.push((*room, have));
            cycle.need.push((*room, need));
        }
        if let Some(next) = cycle.rooms.pop_front() {
            out.extend(self.link.reconcile_rooms(vec![next], now.at, store));
            return;
        }
        if let Some(cycle) = self.cycle.take() {
            self.finish_cycle(cycle, now, rooms, store, out);
        }
    }

    fn start_cycle(
        &mut self,
        now: Now,
        rooms: &BridgeRooms,
        store: &mut dyn BridgeStore,
        out: &mut Vec<Action>,
    ) {
        let mut order: VecDeque<RoomId> = rooms.order().iter().copied().collect();
        self.dirty = None;
        self.next_cycle = None;
        let Some(first) = order.pop_front() else {
            return;
        };
        let started_seq = match store.last_seq() {
            Ok(seq) => seq,
            Err(e) => {
                self.next_cycle = Some(now.at + self.reconcile_every);
                return out.push(Action::Close(format!("cannot read the store: {e}")));
            }
        };
        self.cycle = Some(Cycle {
            rooms: order,
            started_seq,
            have: Vec::new(),
            need: Vec::new(),
        });
        out.extend(self.link.reconcile_rooms(vec![first], now.at, store));
    }

    fn finish_cycle(
        &mut self,
        cycle: Cycle,
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
        out: &mut Vec<Action>,
    ) {
        self.next_cycle = Some(now.at + self.reconcile_every);
        self.stats.last_reconciled = Some(now.unix);
        // Down: what upstream holds that this node lacks, in allowed rooms, newest first.
        self.down.queue.clear();
        for (room, need) in cycle.need {
            if !rooms.downlink(&room) {
                continue;
            }
            if let Some(r) = rooms.rooms.get_mut(&room) {
                r.down_backlog = need.len() as u64;
            }
            for id in need.into_iter().rev() {
                if !self.down.inflight.contains(&id) {
                    self.down.queue.push_back((room, id));
                }
            }
        }
        // Up: what this node holds that upstream lacks, in allowed rooms.
        let mut pending = Vec::new();
        let mut synced = Vec::new();
        let mut up_rooms = BTreeSet::new();
        for (room, have) in cycle.have {
            if !rooms.uplink(&room) {
                continue;
            }
            if have.is_empty() {
                synced.push(room);
                continue;
            }
            // A spent budget with the same backlog as last time: nothing can go, and reading
            // the backlog again (a large one, on an SD card) would only wear the card.
            let spent = rooms.remaining(&room, now.unix) == Some(0);
            if let Some(r) = rooms.rooms.get_mut(&room)
                && spent
            {
                r.exhausted = true;
                if r.up_backlog.is_some_and(|(n, _)| n == have.len() as u64) {
                    continue;
                }
            }
            let (mut count, mut bytes) = (0u64, 0u64);
            // Only sizes and classes stay in memory; the bytes are read again to send.
            for chunk in have.chunks(READ_CHUNK) {
                let events = match store.events(chunk) {
                    Ok(events) => events,
                    Err(e) => {
                        return out.push(Action::Close(format!("cannot read the store: {e}")));
                    }
                };
                for ev in events {
                    count += 1;
                    bytes += ev.raw.len() as u64;
                    pending.push(Pending {
                        room,
                        id: ev.id,
                        ts: ev.ts,
                        class: classify(&ev.raw),
                        bytes: ev.raw.len() as u64,
                    });
                }
            }
            if let Some(r) = rooms.rooms.get_mut(&room) {
                r.up_backlog = Some((count, bytes));
            }
            up_rooms.insert(room);
        }
        rooms.mark_synced(&synced, cycle.started_seq, now.unix);
        if pending.is_empty() {
            // Everything listed has gone from the store meanwhile (expiry): in sync.
            let gone: Vec<RoomId> = up_rooms.into_iter().collect();
            rooms.mark_synced(&gone, cycle.started_seq, now.unix);
            return;
        }
        let policies = &rooms.policies;
        send_order(&mut pending, |room| {
            policies.get(room).map_or(0, |p| p.priority)
        });
        self.upload = Some(Upload {
            started_seq: cycle.started_seq,
            queue: pending.into(),
            rooms: up_rooms,
            incomplete: BTreeSet::new(),
            in_flight: VecDeque::new(),
            progress: now.at,
        });
    }

    /// Upstream acknowledged frame `n`: its events crossed. Frames before it that were not
    /// acknowledged were not stored there and are backlog again.
    fn delivered(&mut self, n: u64, now: Now, rooms: &mut BridgeRooms) {
        let Some(up) = self.upload.as_mut() else {
            return;
        };
        while let Some(frame) = up.in_flight.front() {
            if frame.number > n {
                break;
            }
            let Some(frame) = up.in_flight.pop_front() else {
                break;
            };
            for (room, bytes) in frame.events {
                if frame.number == n {
                    rooms.confirm(&room, bytes, now.unix);
                    self.stats.events_sent += 1;
                } else {
                    rooms.release(&room, bytes);
                    up.incomplete.insert(room);
                }
            }
        }
        up.progress = now.at;
    }

    /// Everything that does not wait for a frame: a cycle that is due, the next downlink
    /// request, upload frames while the window has room, the live subscription.
    fn work(
        &mut self,
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
        out: &mut Vec<Action>,
    ) {
        if !self.admitted || !self.link.is_open() {
            return;
        }
        self.send_up(now, rooms, store, out);
        if self.cycle.is_none() && self.upload.is_none() {
            let due = [self.next_cycle, self.dirty]
                .into_iter()
                .flatten()
                .any(|t| now.at >= t);
            if due {
                self.start_cycle(now, rooms, store, out);
            }
        }
        self.ask_down(now, rooms, out);
        self.refresh_subscription(now, rooms, out);
    }

    /// Sends upload frames while fewer than [`UNACKED_FRAMES`] wait for acknowledgement; an
    /// upload whose events are all acknowledged (or given up) ends, and the rooms it fully
    /// carried are in sync.
    fn send_up(
        &mut self,
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
        out: &mut Vec<Action>,
    ) {
        let Some(up) = self.upload.as_mut() else {
            return;
        };
        while up.in_flight.len() < UNACKED_FRAMES && !up.queue.is_empty() {
            let mut picked: Vec<Pending> = Vec::new();
            let mut size = 0usize;
            while let Some(next) = up.queue.front() {
                let cost = event_cost(next.bytes as usize);
                if !picked.is_empty() && size + cost > UPLOAD_FRAME_BYTES {
                    break;
                }
                let Some(p) = up.queue.pop_front() else {
                    break;
                };
                if !rooms.reserve(&p.room, p.bytes, now.unix) {
                    up.incomplete.insert(p.room);
                    continue;
                }
                size += cost;
                picked.push(p);
            }
            if picked.is_empty() {
                break;
            }
            let ids: Vec<EventId> = picked.iter().map(|p| p.id).collect();
            let mut held: HashMap<EventId, Vec<u8>> = match store.events(&ids) {
                Ok(events) => events.into_iter().map(|e| (e.id, e.raw)).collect(),
                Err(e) => {
                    for p in &picked {
                        rooms.release(&p.room, p.bytes);
                    }
                    return out.push(Action::Close(format!("cannot read the store: {e}")));
                }
            };
            let mut batch = EventsBatch::new(UPLOAD_FRAME_BYTES);
            let mut events = Vec::with_capacity(picked.len());
            for p in picked {
                match held.remove(&p.id) {
                    Some(raw) => {
                        batch.push(raw);
                        events.push((p.room, p.bytes));
                    }
                    // Expired meanwhile: nothing to send, nothing to charge.
                    None => rooms.release(&p.room, p.bytes),
                }
            }
            let Some(frame) = batch.take() else {
                continue;
            };
            self.frames_sent += 1;
            if up.in_flight.is_empty() {
                up.progress = now.at;
            }
            up.in_flight.push_back(InFlight {
                number: self.frames_sent,
                events,
            });
            out.push(Action::Send(frame));
        }
        if up.queue.is_empty() && up.in_flight.is_empty() {
            let synced: Vec<RoomId> = up.rooms.difference(&up.incomplete).copied().collect();
            let seq = up.started_seq;
            self.upload = None;
            rooms.mark_synced(&synced, seq, now.unix);
        }
    }

    /// Asks for the next batch of missing events, within each room's budget.
    fn ask_down(&mut self, now: Now, rooms: &mut BridgeRooms, out: &mut Vec<Action>) {
        if !self.down.inflight.is_empty() {
            if self
                .down
                .asked
                .is_some_and(|t| now.at.duration_since(t) < WANT_TIMEOUT)
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
                match rooms.remaining(&room, now.unix) {
                    None => WANT_BATCH,
                    Some(0) => 0,
                    Some(bytes) => ((bytes / 1024) as usize).clamp(1, 256),
                }
            });
            if *left == 0 {
                // Over budget: dropped from this round; the next reconciliation lists it.
                if let Some(r) = rooms.rooms.get_mut(&room) {
                    r.exhausted = true;
                }
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
        self.down.asked = Some(now.at);
        out.extend(self.link.want(&batch));
    }

    /// Tells upstream which rooms to push live: those allowed down with budget left.
    fn refresh_subscription(&mut self, now: Now, rooms: &mut BridgeRooms, out: &mut Vec<Action>) {
        let order = rooms.order.clone();
        let wanted: Vec<RoomId> = order
            .into_iter()
            .filter(|r| rooms.downlink(r) && !rooms.spent(r, now.unix))
            .collect();
        if self.subscribed.as_ref() == Some(&wanted) {
            return;
        }
        if let Some(action) = self.link.subscribe(wanted.clone()) {
            out.push(action);
            self.subscribed = Some(wanted);
        }
    }
}
