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
//!
//! **Files** go after the rooms' events. The upstream node fetches a file like any node, once
//! it holds the message naming it (`docs/FEDERATION.md`, "Files"): it asks the gateway with
//! `Want` frames. The bridge answers only for files named by messages of rooms that go up,
//! only while no cycle is reconciling or sending events, and only what the room's budget has
//! room for: the driver serves those parts ([`Action::ServeFile`]) as file data, behind every
//! message, and the rest is refused with `Lacks`. A file refused for the budget (or not
//! held here yet) is announced again with `Have` at the end of a later cycle, once the budget
//! has room and the gateway holds the whole file, and the upstream node then asks for what
//! it still lacks: a transfer cut by the budget, the WAN or a restart goes on where it
//! stopped, and no chunk upstream stored is sent again. Down, the node's own fetches ask
//! through the bridge ([`BridgeLink::to_upstream`]): only for files of rooms that come down,
//! after their events, within the budget; the fetch is told upstream lacks the rest, and
//! only the lists and chunks the bridge asked for reach it. A file of a room whose events
//! still wait to cross that way waits behind them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use basis_core::{BlobRef, EventId, NodeId, RoomId, ValidEvent};
use serde::{Deserialize, Serialize};

use crate::admission::Role;
use crate::bridge::{Budget, Pending, RoomPolicy, classify, file_of, list_cost, send_order};
use crate::frame::{ChunkRange, EventsBatch, FileFrame, FileHave, Frame, event_cost};
use crate::limits::{MAX_FILES_PER_HAVE, MAX_QUEUED_CHUNKS, MAX_RANGES};
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
    /// The files named by the held messages of `rooms` (`Attachment`, `EncryptedAttachment`),
    /// each with its room.
    fn files(&mut self, rooms: &[RoomId]) -> Result<Vec<(RoomId, BlobRef)>, String>;
    /// Whether this node holds the whole file at `address` (its list and every chunk).
    fn file_complete(&mut self, address: &[u8; 32]) -> bool;
}

/// A part of a file the driver served for the bridge ([`Action::ServeFile`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FilePart {
    /// The chunk list.
    List,
    /// The chunk of this index.
    Chunk(u64),
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
    /// Files of the room whose chunks the budget holds back on the current link, either way
    /// (until it has room again): not yet sent. While one waits, the room counts as
    /// exhausted.
    pub files_waiting: u64,
    /// Bytes of the room's file chunks (and chunk lists) sent upstream since the node started.
    pub file_bytes_sent: u64,
    /// Bytes of the room's file chunks (and chunk lists) received from upstream since the
    /// node started.
    pub file_bytes_received: u64,
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
    /// Files the budget held back on the current link (see [`RoomSnapshot::files_waiting`]).
    files_waiting: BTreeSet<[u8; 32]>,
    file_bytes_sent: u64,
    file_bytes_received: u64,
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

    /// The driver handed a part of a file to the link: its reservation becomes the bytes that
    /// went (there is no acknowledgement per chunk; `bytes` is what was sent).
    fn file_sent(&mut self, room: &RoomId, reserved: u64, bytes: u64, unix: u64) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.reserved = r.reserved.saturating_sub(reserved);
            r.saved.budget.spend(unix, bytes);
            r.file_bytes_sent += bytes;
            self.changed = true;
        }
    }

    /// A list or chunk the bridge asked for came down: its reservation becomes the bytes that
    /// came (paid for, like events that come down).
    fn file_received(&mut self, room: &RoomId, reserved: u64, bytes: u64, unix: u64) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.reserved = r.reserved.saturating_sub(reserved);
            r.saved.budget.spend(unix, bytes);
            r.file_bytes_received += bytes;
            self.changed = true;
        }
    }

    /// Whether events of the room wait to cross that way (`up`: to the upstream node, else
    /// from it), as the last reconciliation found less what crossed since: its files wait
    /// behind them.
    fn events_waiting(&self, room: &RoomId, up: bool) -> bool {
        self.rooms.get(room).is_some_and(|r| {
            if up {
                r.up_backlog.is_some_and(|(n, _)| n > 0)
            } else {
                r.down_backlog > 0
            }
        })
    }

    /// Whether the budget held back a file of the room on the current link.
    fn file_waiting(&mut self, room: &RoomId, address: [u8; 32], waiting: bool) {
        if let Some(r) = self.rooms.get_mut(room) {
            if waiting {
                r.files_waiting.insert(address);
            } else {
                r.files_waiting.remove(&address);
            }
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

    /// A link ended: the exact backlogs it found, and the files it held back, are no longer
    /// known (the next link's upstream node asks again for what it lacks).
    pub fn forget_backlogs(&mut self) {
        for r in self.rooms.values_mut() {
            r.up_backlog = None;
            r.files_waiting.clear();
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
                // A file held back for the budget keeps the room spent until it may go on.
                budget_exhausted: r.exhausted || !r.files_waiting.is_empty(),
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
                files_waiting: r.files_waiting.len() as u64,
                file_bytes_sent: r.file_bytes_sent,
                file_bytes_received: r.file_bytes_received,
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

/// A `Want` of the upstream node for a file, waiting for the cycle's events to go first.
#[derive(Debug)]
struct FileWant {
    address: [u8; 32],
    list: bool,
    ranges: Vec<ChunkRange>,
}

/// What the upstream node asked of a file on this link and has not announced complete.
#[derive(Debug, Default)]
struct Asked {
    /// Chunks were refused for the budget: the cost of the first one (announced again with
    /// `Have` once the budget has room for it).
    refused: Option<u64>,
    /// The driver did not hold a part asked for (the gateway was still fetching the file):
    /// announced again once it holds the whole file.
    unheld: bool,
}

/// The files of one upstream link (see the module's documentation).
#[derive(Debug, Default)]
struct UpFiles {
    /// The files named by the messages of rooms that go up, with their rooms: read from the
    /// store when the link's first cycle starts, then added from each cycle's uploads.
    index: HashMap<[u8; 32], (RoomId, BlobRef)>,
    indexed: bool,
    /// The upstream node's wants, waiting for the cycle's events.
    deferred: VecDeque<FileWant>,
    /// Parts handed to the driver and not yet reported, with their room and reservation.
    serving: HashMap<([u8; 32], FilePart), (RoomId, u64)>,
    asked: BTreeMap<[u8; 32], Asked>,
    /// A cycle ended since files were last announced.
    announce_due: bool,
    /// Wants of this node's fetches for the upstream node, waiting for the cycle's events.
    down_deferred: VecDeque<FileWant>,
    /// Parts asked of the upstream node: their room, reservation and deadline.
    down_asked: HashMap<([u8; 32], FilePart), (RoomId, u64, Instant)>,
    /// Files the budget held back coming down: what the first part refused costs.
    down_refused: BTreeMap<[u8; 32], u64>,
}

/// How the budget splits one want for a file: the parts reserved, and the rest refused.
#[derive(Debug, Default)]
struct Split {
    /// The parts let through, with the bytes reserved for each.
    reserved: Vec<(FilePart, u64)>,
    /// The list was asked for and not let through.
    refused_list: bool,
    /// The chunks not let through (beyond the file, over the queue's cap, or the budget).
    refused: Vec<ChunkRange>,
    /// The budget refused a part: what the first of them costs.
    held_back: Option<u64>,
}

impl Split {
    /// Reserves the parts of `want` the room's budget has room for, lowest first (the list
    /// first), at most `cap` chunks, skipping parts `taken` already; the first part that does
    /// not fit stops the rest. With `events_first` (the room still has events waiting to
    /// cross that way) nothing is reserved: the events go first.
    #[allow(clippy::too_many_arguments)]
    fn of(
        want: &FileWant,
        blob: &BlobRef,
        room: &RoomId,
        cap: usize,
        taken: impl Fn(FilePart) -> bool,
        events_first: bool,
        rooms: &mut BridgeRooms,
        unix: u64,
    ) -> Split {
        let count = blob.chunk_count();
        let mut split = Split::default();
        let mut candidates = Vec::new();
        if want.list {
            candidates.push(FilePart::List);
        }
        let mut left = cap as u64;
        for r in &want.ranges {
            let end = r.end.min(count);
            let take = end.saturating_sub(r.start).min(left);
            candidates.extend((r.start..r.start + take).map(FilePart::Chunk));
            left -= take;
            if r.start + take < r.end {
                split.refused.push(ChunkRange {
                    start: r.start + take,
                    end: r.end,
                });
            }
        }
        for part in candidates {
            if taken(part) {
                // Already on its way: neither reserved again nor refused.
                continue;
            }
            let cost = match part {
                FilePart::List => list_cost(blob),
                FilePart::Chunk(i) => blob.cipher_len(i).unwrap_or(u64::from(blob.chunk_size)),
            };
            if !events_first && split.held_back.is_none() && rooms.reserve(room, cost, unix) {
                split.reserved.push((part, cost));
                continue;
            }
            split.held_back.get_or_insert(cost);
            match part {
                FilePart::List => split.refused_list = true,
                FilePart::Chunk(i) => split.refused.push(ChunkRange {
                    start: i,
                    end: i + 1,
                }),
            }
        }
        split
    }

    /// The list flag and chunk ranges let through, if any.
    fn granted(&self) -> Option<(bool, Vec<ChunkRange>)> {
        let list = self.reserved.iter().any(|(p, _)| *p == FilePart::List);
        let chunks = self.reserved.iter().filter_map(|(p, _)| match p {
            FilePart::Chunk(i) => Some(*i),
            FilePart::List => None,
        });
        let ranges = ChunkRange::from_indices(chunks);
        (list || !ranges.is_empty()).then_some((list, ranges))
    }

    /// The `Lacks` for what was not let through, if anything.
    fn refusal(&self, address: [u8; 32]) -> Option<FileFrame> {
        if !self.refused_list && self.refused.is_empty() {
            return None;
        }
        let mut refused = self.refused.clone();
        refused.sort_by_key(|r| r.start);
        let mut ranges: Vec<ChunkRange> = Vec::new();
        for r in refused {
            match ranges.last_mut() {
                Some(last) if last.end >= r.start => last.end = last.end.max(r.end),
                _ => ranges.push(r),
            }
        }
        ranges.truncate(MAX_RANGES);
        Some(FileFrame::Lacks {
            address,
            list: self.refused_list,
            ranges,
        })
    }
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
    files: UpFiles,
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
            files: UpFiles::default(),
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
        let file = self.files.down_asked.values().map(|(_, _, t)| *t).min();
        [cycle, want, ack, file].into_iter().flatten().min()
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
        // File parts upstream did not send in time: the fetch asks again (and is charged
        // again) if it still wants them.
        let late: Vec<([u8; 32], FilePart)> = self
            .files
            .down_asked
            .iter()
            .filter(|(_, (_, _, t))| now.at >= *t)
            .map(|(k, _)| *k)
            .collect();
        for key in late {
            if let Some((room, cost, _)) = self.files.down_asked.remove(&key) {
                rooms.release(&room, cost);
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

    /// The link ended: what was sent and not acknowledged is backlog again, and file parts
    /// not yet handed to the link are not charged.
    pub fn closed(&mut self, rooms: &mut BridgeRooms) {
        if let Some(up) = self.upload.take() {
            for frame in up.in_flight {
                for (room, bytes) in frame.events {
                    rooms.release(&room, bytes);
                }
            }
        }
        for (_, (room, cost)) in self.files.serving.drain() {
            rooms.release(&room, cost);
        }
        for (_, (room, cost, _)) in self.files.down_asked.drain() {
            rooms.release(&room, cost);
        }
        self.files.deferred.clear();
        self.files.asked.clear();
        self.files.down_deferred.clear();
        self.files.down_refused.clear();
        self.cycle = None;
        rooms.forget_backlogs();
    }

    /// The driver handed a part of a file it was told to serve ([`Action::ServeFile`]) to the
    /// link (`sent`: the bytes of the list or chunk), or did not hold it (`None`: the upstream
    /// node was told `Lacks`). The part is charged to its room only when it went.
    pub fn file_served(
        &mut self,
        address: [u8; 32],
        part: FilePart,
        sent: Option<u64>,
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
    ) -> Vec<Action> {
        if let Some((room, cost)) = self.files.serving.remove(&(address, part)) {
            match sent {
                Some(bytes) => rooms.file_sent(&room, cost, bytes, now.unix),
                None => {
                    rooms.release(&room, cost);
                    self.files.asked.entry(address).or_default().unheld = true;
                }
            }
        }
        let mut out = Vec::new();
        self.work(now, rooms, store, &mut out);
        out
    }

    /// A file frame this node's fetches would send the upstream node (the driver gave the
    /// node's file table this link). A `Want` for a file of a room that comes down goes after
    /// the cycle's events and within the room's budget; the rest of it, and a `Want` for any
    /// other file, is refused as if upstream lacked it (an [`Action::File`] for the fetches).
    /// A `Have` goes only for files of rooms that go up.
    pub fn to_upstream(
        &mut self,
        frame: FileFrame,
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        match frame {
            FileFrame::Want {
                address,
                list,
                ranges,
            } => {
                let allowed = self
                    .files
                    .index
                    .get(&address)
                    .is_some_and(|(room, _)| rooms.downlink(room));
                if allowed {
                    self.files.down_deferred.push_back(FileWant {
                        address,
                        list,
                        ranges,
                    });
                } else {
                    out.push(Action::File(FileFrame::Lacks {
                        address,
                        list: true,
                        ranges,
                    }));
                }
            }
            FileFrame::Have(files) => {
                let up: Vec<FileHave> = files
                    .into_iter()
                    .filter(|h| {
                        self.files
                            .index
                            .get(&h.address)
                            .is_some_and(|(room, _)| rooms.uplink(room))
                    })
                    .collect();
                if !up.is_empty() {
                    out.push(Action::Send(Frame::File(FileFrame::Have(up))));
                }
            }
            // A node's fetches send nothing else on a link.
            FileFrame::List { .. } | FileFrame::Chunk { .. } | FileFrame::Lacks { .. } => {}
        }
        self.work(now, rooms, store, &mut out);
        out
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
                Action::File(frame) => self.on_file(frame, now, rooms, out),
                // Upstream mode never asks to serve, share or relay.
                Action::Reconciled { .. }
                | Action::CatchingUp
                | Action::SendEvents(_)
                | Action::SendNewer(_)
                | Action::Learned(_)
                | Action::Notice(_)
                | Action::ServeFile { .. } => {}
                other @ (Action::Send(_) | Action::Penalize { .. } | Action::Close(_)) => {
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
            if let Some(blob) = file_of(ev.bytes()) {
                self.files.index.insert(blob.address, (room, blob));
            }
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
        if !self.files.indexed {
            let bridged = rooms.order().to_vec();
            match store.files(&bridged) {
                Ok(files) => {
                    for (room, blob) in files {
                        self.files.index.insert(blob.address, (room, blob));
                    }
                    self.files.indexed = true;
                }
                Err(e) => {
                    self.next_cycle = Some(now.at + self.reconcile_every);
                    return out.push(Action::Close(format!("cannot read the store: {e}")));
                }
            }
        }
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
                    if let Some(blob) = file_of(&ev.raw) {
                        self.files.index.insert(blob.address, (room, blob));
                    }
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
        self.files.announce_due = true;
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
        self.serve_files(now, rooms, store, out);
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

    /// A file frame from the upstream node. A `Want` waits for the cycle's events; a `Have`
    /// of a whole file says it crossed (and goes on to this node's fetches); a list or chunk
    /// goes on to the fetches only when the bridge asked for it, and a `Lacks` gives back what
    /// it names.
    fn on_file(
        &mut self,
        frame: FileFrame,
        now: Now,
        rooms: &mut BridgeRooms,
        out: &mut Vec<Action>,
    ) {
        if let Some(reason) = frame.violation() {
            out.push(Action::Send(Frame::Bye(reason.clone())));
            out.push(Action::Close(reason));
            return;
        }
        match frame {
            FileFrame::Want {
                address,
                list,
                ranges,
            } => {
                let known = self
                    .files
                    .index
                    .get(&address)
                    .is_some_and(|(room, _)| rooms.uplink(room));
                if !known {
                    // Not a file of a room that goes up: never served, whoever asks.
                    out.push(Action::Send(Frame::File(FileFrame::Lacks {
                        address,
                        list,
                        ranges,
                    })));
                    return;
                }
                self.files.asked.entry(address).or_default();
                self.files.deferred.push_back(FileWant {
                    address,
                    list,
                    ranges,
                });
            }
            FileFrame::Have(files) => {
                for h in &files {
                    let Some((room, blob)) = self.files.index.get(&h.address).copied() else {
                        continue;
                    };
                    let whole = h
                        .ranges
                        .iter()
                        .any(|r| r.start == 0 && r.end >= blob.chunk_count());
                    if whole && self.files.asked.remove(&h.address).is_some() {
                        rooms.file_waiting(&room, h.address, false);
                    }
                }
                // For this node's fetches: upstream holds these chunks.
                out.push(Action::File(FileFrame::Have(files)));
            }
            FileFrame::List { address, bytes } => {
                if self.came_file(address, FilePart::List, bytes.len(), now, rooms) {
                    out.push(Action::File(FileFrame::List { address, bytes }));
                }
            }
            FileFrame::Chunk {
                address,
                index,
                bytes,
            } => {
                if self.came_file(address, FilePart::Chunk(index), bytes.len(), now, rooms) {
                    out.push(Action::File(FileFrame::Chunk {
                        address,
                        index,
                        bytes,
                    }));
                }
            }
            FileFrame::Lacks {
                address,
                list,
                ranges,
            } => {
                let given_back: Vec<([u8; 32], FilePart)> = self
                    .files
                    .down_asked
                    .keys()
                    .filter(|(a, part)| {
                        *a == address
                            && match part {
                                FilePart::List => list,
                                FilePart::Chunk(i) => {
                                    ranges.iter().any(|r| r.indices().contains(i))
                                }
                            }
                    })
                    .copied()
                    .collect();
                for key in given_back {
                    if let Some((room, cost, _)) = self.files.down_asked.remove(&key) {
                        rooms.release(&room, cost);
                    }
                }
                out.push(Action::File(FileFrame::Lacks {
                    address,
                    list,
                    ranges,
                }));
            }
        }
    }

    /// A list or chunk came down: kept (and counted against its room's budget, as events that
    /// come down are) only when the bridge asked for it.
    fn came_file(
        &mut self,
        address: [u8; 32],
        part: FilePart,
        bytes: usize,
        now: Now,
        rooms: &mut BridgeRooms,
    ) -> bool {
        match self.files.down_asked.remove(&(address, part)) {
            Some((room, cost, _)) => {
                rooms.file_received(&room, cost, bytes as u64, now.unix);
                true
            }
            None => false,
        }
    }

    /// Serves the upstream node's file wants and asks for this node's, once no cycle is
    /// reconciling, sending or asking for events, within each room's budget; announces the
    /// files held back once they may go on.
    fn serve_files(
        &mut self,
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
        out: &mut Vec<Action>,
    ) {
        let events_moving = self.cycle.is_some()
            || self.upload.is_some()
            || !self.down.inflight.is_empty()
            || !self.down.queue.is_empty();
        if events_moving {
            // The cycle's events first, both ways: files never go ahead of them.
            return;
        }
        while let Some(want) = self.files.deferred.pop_front() {
            self.serve_want(want, now, rooms, out);
        }
        while let Some(want) = self.files.down_deferred.pop_front() {
            self.ask_file(want, now, rooms, out);
        }
        if std::mem::take(&mut self.files.announce_due) {
            self.announce(now, rooms, store, out);
        }
    }

    /// Hands the driver the parts of one want that the room's budget has room for, lowest
    /// first, and refuses the rest with `Lacks`.
    fn serve_want(
        &mut self,
        want: FileWant,
        now: Now,
        rooms: &mut BridgeRooms,
        out: &mut Vec<Action>,
    ) {
        let Some((room, blob)) = self.files.index.get(&want.address).copied() else {
            return out.push(Action::Send(Frame::File(FileFrame::Lacks {
                address: want.address,
                list: want.list,
                ranges: want.ranges,
            })));
        };
        let address = want.address;
        let cap = MAX_QUEUED_CHUNKS.saturating_sub(self.files.serving.len());
        let events_first = rooms.events_waiting(&room, true);
        let serving = &self.files.serving;
        let split = Split::of(
            &want,
            &blob,
            &room,
            cap,
            |p| serving.contains_key(&(address, p)),
            events_first,
            rooms,
            now.unix,
        );
        for (part, cost) in &split.reserved {
            self.files.serving.insert((address, *part), (room, *cost));
        }
        if let Some(cost) = split.held_back {
            // The first part the budget holds back: announced again when it fits.
            self.files.asked.entry(address).or_default().refused = Some(cost);
            rooms.file_waiting(&room, address, true);
        }
        if let Some((list, ranges)) = split.granted() {
            out.push(Action::ServeFile {
                address,
                list,
                ranges,
            });
        }
        if let Some(lacks) = split.refusal(address) {
            out.push(Action::Send(Frame::File(lacks)));
        }
    }

    /// Asks the upstream node for the parts of one of this node's wants that the room's budget
    /// has room for; the fetch is told upstream lacks the rest.
    fn ask_file(
        &mut self,
        want: FileWant,
        now: Now,
        rooms: &mut BridgeRooms,
        out: &mut Vec<Action>,
    ) {
        let address = want.address;
        let Some((room, blob)) = self.files.index.get(&address).copied() else {
            return out.push(Action::File(FileFrame::Lacks {
                address,
                list: true,
                ranges: want.ranges,
            }));
        };
        let cap = MAX_QUEUED_CHUNKS.saturating_sub(self.files.down_asked.len());
        let events_first = rooms.events_waiting(&room, false);
        let asked = &self.files.down_asked;
        let split = Split::of(
            &want,
            &blob,
            &room,
            cap,
            |p| asked.contains_key(&(address, p)),
            events_first,
            rooms,
            now.unix,
        );
        let deadline = now.at + crate::transfer::REQUEST_TIMEOUT;
        for (part, cost) in &split.reserved {
            self.files
                .down_asked
                .insert((address, *part), (room, *cost, deadline));
        }
        if let Some(cost) = split.held_back {
            self.files.down_refused.insert(address, cost);
            rooms.file_waiting(&room, address, true);
        }
        if let Some((list, ranges)) = split.granted() {
            out.push(Action::Send(Frame::File(FileFrame::Want {
                address,
                list,
                ranges,
            })));
        }
        if let Some(lacks) = split.refusal(address) {
            out.push(Action::File(lacks));
        }
    }

    /// After a cycle: tells the upstream node again (`Have`) about the files it asked for that
    /// were held back, once this node holds the whole file and the room's budget has room for
    /// the part refused; upstream then asks for what it still lacks.
    fn announce(
        &mut self,
        now: Now,
        rooms: &mut BridgeRooms,
        store: &mut dyn BridgeStore,
        out: &mut Vec<Action>,
    ) {
        let mut have = Vec::new();
        let addresses: Vec<[u8; 32]> = self.files.asked.keys().copied().collect();
        for address in addresses {
            let Some(asked) = self.files.asked.get(&address) else {
                continue;
            };
            if asked.refused.is_none() && !asked.unheld {
                continue;
            }
            let Some((room, blob)) = self.files.index.get(&address).copied() else {
                continue;
            };
            let busy = self.files.serving.keys().any(|(a, _)| *a == address)
                || rooms.events_waiting(&room, true);
            let fits = asked
                .refused
                .is_none_or(|cost| rooms.remaining(&room, now.unix).is_none_or(|l| l >= cost));
            if busy || !fits || !store.file_complete(&address) {
                continue;
            }
            if let Some(asked) = self.files.asked.get_mut(&address) {
                asked.refused = None;
                asked.unheld = false;
            }
            // It may go on now; held back again, it is marked again.
            rooms.file_waiting(&room, address, false);
            have.push(FileHave {
                address,
                ranges: vec![ChunkRange {
                    start: 0,
                    end: blob.chunk_count(),
                }],
            });
        }
        for files in have.chunks(MAX_FILES_PER_HAVE) {
            out.push(Action::Send(Frame::File(FileFrame::Have(files.to_vec()))));
        }
        // Files held back coming down: once the budget has room, this node's fetch may ask
        // upstream again (as if upstream announced the file).
        let refused: Vec<([u8; 32], u64)> = self
            .files
            .down_refused
            .iter()
            .map(|(a, c)| (*a, *c))
            .collect();
        for (address, cost) in refused {
            let Some((room, blob)) = self.files.index.get(&address).copied() else {
                continue;
            };
            if rooms.events_waiting(&room, false)
                || rooms.remaining(&room, now.unix).is_some_and(|l| l < cost)
            {
                continue;
            }
            self.files.down_refused.remove(&address);
            rooms.file_waiting(&room, address, false);
            out.push(Action::File(FileFrame::Have(vec![FileHave {
                address,
                ranges: vec![ChunkRange {
                    start: 0,
                    end: blob.chunk_count(),
                }],
            }])));
        }
    }
}
