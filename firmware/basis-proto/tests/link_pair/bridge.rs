//! The upstream bridge's state machine against an ordinary link in memory: cycles, budgets,
//! acknowledgements, and a sync cut halfway that resumes on a new link.

use std::collections::{BTreeMap, HashMap};

use basis_proto::bridge::RoomPolicy;
use basis_proto::bridge_link::{BridgeStats, HeldEvent, Now, RoomSnapshot, UNACKED_FRAMES};
use basis_proto::{BridgeLink, BridgeRooms, BridgeStore};

use super::*;

const GATEWAY: NodeId = NodeId([1; 32]);
const UPSTREAM: NodeId = NodeId([2; 32]);

/// The gateway's store: events by id with the sequence number of their arrival.
#[derive(Default)]
struct GwStore {
    events: BTreeMap<EventId, (u64, Vec<u8>, u64)>,
    seq: u64,
}

impl GwStore {
    fn insert(&mut self, ts: u64, id: EventId, raw: Vec<u8>) {
        if !self.events.contains_key(&id) {
            self.seq += 1;
            self.events.insert(id, (ts, raw, self.seq));
        }
    }

    /// `(events, bytes)` of `room` stored after `seq`: the backlog's upper bound.
    fn since(&self, room: RoomId, seq: u64) -> (u64, u64) {
        self.events
            .values()
            .filter(|(_, raw, s)| *s > seq && validate(raw).unwrap().room() == room)
            .fold((0, 0), |(n, b), (_, raw, _)| (n + 1, b + raw.len() as u64))
    }
}

impl ItemSource for GwStore {
    fn items(&mut self, scope: Option<&[RoomId]>, items: &mut Items) -> Result<(), String> {
        for (id, (ts, raw, _)) in &self.events {
            let room = validate(raw).map_err(|e| e.to_string())?.room();
            if scope.is_none_or(|rooms| rooms.contains(&room)) {
                items.push(*ts, *id).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
}

impl BridgeStore for GwStore {
    fn last_seq(&mut self) -> Result<u64, String> {
        Ok(self.seq)
    }

    fn events(&mut self, ids: &[EventId]) -> Result<Vec<HeldEvent>, String> {
        Ok(ids
            .iter()
            .filter_map(|id| {
                let (ts, raw, _) = self.events.get(id)?;
                Some(HeldEvent {
                    id: *id,
                    ts: *ts,
                    raw: raw.clone(),
                })
            })
            .collect())
    }
}

/// A gateway bridging to one upstream node, both in memory, with a clock the test moves.
struct Site {
    gw: BridgeLink,
    gw_store: GwStore,
    rooms: BridgeRooms,
    up: Side,
    to_gw: VecDeque<Vec<u8>>,
    start: Instant,
    elapsed: Duration,
    closed: Option<String>,
}

fn policy(uplink: bool, downlink: bool, budget: Option<u64>, priority: i32) -> RoomPolicy {
    RoomPolicy {
        uplink,
        downlink,
        budget_per_hour: budget,
        priority,
    }
}

impl Site {
    fn new(
        policies: BTreeMap<RoomId, RoomPolicy>,
        gw_evs: &[(u64, EventId, Vec<u8>)],
        up_evs: &[(u64, EventId, Vec<u8>)],
    ) -> Site {
        let mut gw_store = GwStore::default();
        for (ts, id, raw) in gw_evs {
            gw_store.insert(*ts, *id, raw.clone());
        }
        let mut site = Site {
            gw: link_pair_placeholder(),
            gw_store,
            rooms: BridgeRooms::new(policies, BTreeMap::new()),
            up: side(
                Link::new(config(2, None), Role::Acceptor, GATEWAY, [0; 32]).0,
                vec![],
                up_evs,
                &mut VecDeque::new(),
            ),
            to_gw: VecDeque::new(),
            start: Instant::now(),
            elapsed: Duration::ZERO,
            closed: None,
        };
        site.relink();
        site
    }

    fn now(&self) -> Now {
        Now {
            at: self.start + self.elapsed,
            unix: 1_000_000 + self.elapsed.as_secs(),
        }
    }

    /// A new link between the two (after a cut, or at first): fresh link state on both sides,
    /// the same stores and the same bridged rooms.
    fn relink(&mut self) {
        let exporter = [9; 32];
        let mut gw_config = config(1, None);
        gw_config.upstream = true;
        gw_config.allow = vec![UPSTREAM];
        let (gw, hello) = BridgeLink::new(gw_config, UPSTREAM, exporter, Duration::from_secs(30));
        let mut up_config = config(2, None);
        up_config.allow = vec![GATEWAY];
        let (up_link, up_hello) = Link::new(up_config, Role::Acceptor, GATEWAY, exporter);
        self.gw = gw;
        self.up.link = up_link;
        self.up.inbox.clear();
        self.to_gw.clear();
        self.closed = None;
        for a in up_hello {
            if let Action::Send(f) = a {
                self.to_gw.push_back(f.encode());
            }
        }
        self.gateway_actions(hello);
    }

    /// The WAN is cut: whatever is on the wire is lost, and both links end.
    fn cut(&mut self) {
        self.up.inbox.clear();
        self.to_gw.clear();
        self.gw.closed(&mut self.rooms);
    }

    fn gateway_actions(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(f) => self.up.inbox.push_back(f.encode()),
                Action::Store(evs) => {
                    for e in evs {
                        self.gw_store
                            .insert(e.event().content.time.0, e.id(), e.bytes().to_vec());
                    }
                }
                Action::Close(reason) => self.closed = Some(reason),
                Action::Penalize { reason, .. } => panic!("the gateway penalized: {reason}"),
                _ => {}
            }
        }
    }

    /// Delivers frames both ways until both sides are quiet, or until the upstream node has
    /// taken `up_events` `Events` frames (then it takes nothing more and the rest stays on
    /// the wire).
    fn pump(&mut self, mut up_events: Option<usize>) {
        for _ in 0..100_000 {
            let mut moved = false;
            if up_events != Some(0)
                && let Some(bytes) = self.up.inbox.pop_front()
            {
                if matches!(Frame::decode(&bytes), Ok(Frame::Events(_))) {
                    up_events = up_events.map(|n| n - 1);
                }
                let acts = self
                    .up
                    .link
                    .on_frame(&bytes, self.now().at, &mut self.up.store);
                apply(&mut self.up, acts, &mut self.to_gw);
                moved = true;
            }
            if let Some(bytes) = self.to_gw.pop_front() {
                let now = self.now();
                let acts = self
                    .gw
                    .on_frame(&bytes, now, &mut self.rooms, &mut self.gw_store);
                self.gateway_actions(acts);
                moved = true;
            }
            if !moved {
                return;
            }
        }
        panic!("the bridge never went quiet");
    }

    /// Moves the clock by `by`, firing the bridge's timer when it is due, and pumps.
    fn wait(&mut self, by: Duration) {
        let until = self.elapsed + by;
        loop {
            let next = self
                .gw
                .poll_timeout()
                .map(|t| t.duration_since(self.start))
                .filter(|t| *t <= until);
            let Some(next) = next else { break };
            self.elapsed = self.elapsed.max(next);
            let now = self.now();
            let acts = self.gw.on_timeout(now, &mut self.rooms, &mut self.gw_store);
            self.gateway_actions(acts);
            self.pump(None);
        }
        self.elapsed = until;
    }

    fn room(&mut self, room: RoomId) -> RoomSnapshot {
        let estimates: HashMap<RoomId, (u64, u64)> = self
            .rooms
            .marks()
            .into_iter()
            .map(|(r, seq)| (r, self.gw_store.since(r, seq)))
            .collect();
        let unix = self.now().unix;
        self.rooms
            .snapshot(unix, &estimates)
            .into_iter()
            .find(|s| s.room == room.to_string())
            .expect("the room is bridged")
    }

    fn up_ids(&self, room: RoomId) -> Vec<EventId> {
        ids_in(
            self.up.store.events.iter().map(|(id, (_, raw))| (*id, raw)),
            room,
        )
    }

    fn gw_ids(&self, room: RoomId) -> Vec<EventId> {
        ids_in(
            self.gw_store
                .events
                .iter()
                .map(|(id, (_, raw, _))| (*id, raw)),
            room,
        )
    }

    /// Bytes of the room's events the upstream node holds.
    fn up_bytes(&self, room: RoomId) -> u64 {
        self.up
            .store
            .events
            .values()
            .filter(|(_, raw)| validate(raw).unwrap().room() == room)
            .map(|(_, raw)| raw.len() as u64)
            .sum()
    }
}

/// A bridge link with nowhere to go, replaced by [`Site::relink`] at once.
fn link_pair_placeholder() -> BridgeLink {
    let mut c = config(1, None);
    c.upstream = true;
    BridgeLink::new(c, UPSTREAM, [0; 32], Duration::from_secs(30)).0
}

fn ids_in<'a>(events: impl Iterator<Item = (EventId, &'a Vec<u8>)>, room: RoomId) -> Vec<EventId> {
    let mut ids: Vec<EventId> = events
        .filter(|(_, raw)| validate(raw).unwrap().room() == room)
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids
}

fn bytes_of(evs: &[(u64, EventId, Vec<u8>)]) -> u64 {
    evs.iter().map(|e| e.2.len() as u64).sum()
}

#[test]
fn a_cycle_carries_the_allowed_rooms_each_way_and_nothing_else() {
    let both = events(60, 1); // up and down
    let up_only = events(20, 2);
    let private = events(10, 3); // not bridged
    let down_only = events(15, 4); // written upstream, comes down
    let upstream_private = events(5, 5); // upstream's, not bridged
    let gw_evs: Vec<_> = both[..40]
        .iter()
        .chain(&up_only)
        .chain(&private)
        .cloned()
        .collect();
    let up_evs: Vec<_> = both[20..]
        .iter()
        .chain(&down_only)
        .chain(&upstream_private)
        .cloned()
        .collect();
    let policies = BTreeMap::from([
        (room_of(&both), policy(true, true, None, 1)),
        (room_of(&up_only), policy(true, false, None, 0)),
        (room_of(&down_only), policy(false, true, None, 0)),
    ]);
    let mut site = Site::new(policies, &gw_evs, &up_evs);
    site.pump(None);
    assert!(site.closed.is_none(), "{:?}", site.closed);

    assert_eq!(site.up_ids(room_of(&both)), ids(&both));
    assert_eq!(site.gw_ids(room_of(&both)), ids(&both));
    assert_eq!(site.up_ids(room_of(&up_only)), ids(&up_only));
    assert_eq!(site.gw_ids(room_of(&down_only)), ids(&down_only));
    assert!(site.up_ids(room_of(&private)).is_empty());
    assert!(site.gw_ids(room_of(&upstream_private)).is_empty());
    let room = site.room(room_of(&both));
    assert!(room.backlog_exact && room.backlog_events == 0, "{room:?}");
    assert_eq!(room.sent_events, 20);
    assert_eq!(room.received_events, 21);
    assert!(room.last_synced.is_some());
    assert_eq!(
        site.gw.stats(),
        BridgeStats {
            events_sent: 20 + 21,
            events_received: 21 + 16,
            last_reconciled: Some(1_000_000),
        }
    );

    // A new local event goes up after the debounce, not at once and not only at the next
    // periodic cycle.
    let fresh = &events(61, 1)[61];
    site.gw_store.insert(fresh.0, fresh.1, fresh.2.clone());
    let now = site.now();
    site.gw
        .on_local_event(Some(room_of(&both)), now, &site.rooms);
    site.wait(Duration::from_millis(200));
    assert!(!site.up.store.events.contains_key(&fresh.1));
    site.wait(Duration::from_millis(200));
    assert!(site.up.store.events.contains_key(&fresh.1));
    // An event of a room that does not go up starts no cycle.
    let before = site.gw.poll_timeout();
    let now = site.now();
    site.gw
        .on_local_event(Some(room_of(&private)), now, &site.rooms);
    assert_eq!(site.gw.poll_timeout(), before);
}

#[test]
fn the_budget_holds_with_messages_before_files_and_is_charged_on_acknowledgement() {
    // 40 short messages, then 20 file-sized ones (newer, so newest first alone would send
    // them first).
    let mut room_evs = events(40, 7);
    let files = events_with(20, 7, |i| format!("{i} {}", "file ".repeat(1000)));
    room_evs.extend(files[1..].iter().map(|e| {
        // Later than every message.
        (e.0 + 100, e.1, e.2.clone())
    }));
    let room = room_of(&room_evs);
    const BUDGET: u64 = 30_000;
    let policies = BTreeMap::from([(room, policy(true, true, Some(BUDGET), 0))]);
    let mut site = Site::new(policies, &room_evs, &[]);
    site.pump(None);

    let held = site.up_ids(room);
    assert!(
        room_evs[..41]
            .iter()
            .all(|e| held.binary_search(&e.1).is_ok()),
        "every message (and the creation) goes up"
    );
    let files_up = files[1..]
        .iter()
        .filter(|e| held.binary_search(&e.1).is_ok())
        .count();
    assert!(files_up > 0 && files_up < 20, "{files_up} files went up");
    let status = site.room(room);
    assert!(status.budget_used_bytes <= BUDGET, "{status:?}");
    assert_eq!(
        status.budget_used_bytes,
        site.up_bytes(room),
        "charged what crossed"
    );
    assert!(status.budget_exhausted);
    assert_eq!(status.backlog_events, (20 - files_up) as u64);
    assert!(status.backlog_exact);

    // The next cycles send nothing more within the hour ...
    site.wait(Duration::from_secs(600));
    assert_eq!(site.up_ids(room), held);
    // ... and the rest once the window has moved on.
    site.wait(Duration::from_secs(3600));
    assert!(site.up_ids(room).len() > held.len());
}

/// The budget used is the bytes that crossed, but for at most one frame whose
/// acknowledgement a cut lost (those bytes crossed uncharged).
fn assert_charged_what_crossed(site: &Site, status: &RoomSnapshot, room: RoomId) {
    let crossed = site.up_bytes(room);
    let used = status.budget_used_bytes;
    assert!(
        used <= crossed && crossed - used <= basis_proto::bridge_link::UPLOAD_FRAME_BYTES as u64,
        "used {used} of {crossed} bytes that crossed"
    );
}

#[test]
fn a_cut_halfway_leaves_the_unacknowledged_in_the_backlog_and_charges_each_event_once() {
    let room_evs = events(2000, 9);
    let room = room_of(&room_evs);
    let total = bytes_of(&room_evs);
    // Enough for every event once, and a little more: never enough for everything twice.
    let budget = total * 13 / 10;
    let policies = BTreeMap::from([(room, policy(true, false, Some(budget), 0))]);
    let mut site = Site::new(policies, &room_evs, &[]);

    // The upstream node takes two upload frames, then the WAN goes.
    site.pump(Some(2));
    let on_the_wire = site.up.inbox.len();
    assert!(
        (1..=UNACKED_FRAMES).contains(&on_the_wire),
        "{on_the_wire} frames sent ahead of acknowledgements"
    );
    let linked = site.room(room);
    let lacking = (room_evs.len() - site.up_ids(room).len()) as u64;
    assert!(
        linked.backlog_exact && linked.backlog_events >= lacking,
        "linked: the backlog counts what is not acknowledged: {linked:?}, upstream lacks {lacking}"
    );
    assert!(linked.budget_used_bytes <= site.up_bytes(room));
    site.cut();
    let down = site.room(room);
    let lacking = (room_evs.len() - site.up_ids(room).len()) as u64;
    assert!(!down.backlog_exact);
    assert!(
        down.backlog_events >= lacking && lacking > 0,
        "cut: backlog {} events, upstream lacks {lacking}",
        down.backlog_events
    );
    assert_charged_what_crossed(&site, &down, room);

    // The WAN comes back 3 s later: a new link finishes the room within the same hour.
    site.wait(Duration::from_secs(3));
    site.relink();
    site.pump(None);
    assert!(site.closed.is_none(), "{:?}", site.closed);
    assert_eq!(site.up_ids(room), ids(&room_evs), "every event crossed");
    let done = site.room(room);
    assert!(!done.budget_exhausted, "{done:?}");
    assert!(done.backlog_exact && done.backlog_events == 0, "{done:?}");
    assert_charged_what_crossed(&site, &done, room);
}

#[test]
fn a_frame_upstream_did_not_store_goes_back_to_the_backlog() {
    let room_evs = events(1500, 11);
    let room = room_of(&room_evs);
    let policies = BTreeMap::from([(room, policy(true, false, None, 0))]);
    let mut site = Site::new(policies, &room_evs, &[]);
    // The first upload frame crosses ...
    site.pump(Some(1));
    assert!(site.up.inbox.len() >= 2, "upload frames on the wire");
    // ... the next one reaches the upstream node, whose store fails: nothing is stored and
    // no `Stored` goes back; the frames after it are stored and acknowledged.
    let lost = site.up.inbox.pop_front().expect("a frame");
    let acts = site
        .up
        .link
        .on_frame(&lost, site.now().at, &mut site.up.store);
    assert!(
        acts.iter().any(|a| matches!(a, Action::Store(_))),
        "{acts:?}"
    );
    site.pump(None);
    let status = site.room(room);
    let lacking = (room_evs.len() - site.up_ids(room).len()) as u64;
    assert!(lacking > 0);
    assert_eq!(status.backlog_events, lacking, "{status:?}");
    assert_eq!(status.budget_used_bytes, site.up_bytes(room));
    // The next cycle sends what was lost.
    site.wait(Duration::from_secs(31));
    assert_eq!(site.up_ids(room), ids(&room_evs));
    assert_eq!(site.room(room).backlog_events, 0);
}
