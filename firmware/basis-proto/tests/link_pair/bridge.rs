//! The upstream bridge's state machine against an ordinary link in memory: cycles, budgets,
//! acknowledgements, a sync cut halfway that resumes on a new link, and files, which the
//! upstream node fetches as any node does (a [`Fetch`] per file) and the bridge serves after
//! the cycle's events within the budget.

use std::collections::{BTreeMap, HashMap};

use basis_core::body::MessageBody as Msg;
use basis_core::{BlobRef, ChunkList, FileDescriptor};
use basis_proto::bridge::RoomPolicy;
use basis_proto::bridge::file_of;
use basis_proto::bridge_link::{
    BridgeStats, FilePart, HeldEvent, Now, RoomSnapshot, UNACKED_FRAMES,
};
use basis_proto::{
    BridgeLink, BridgeRooms, BridgeStore, Fetch, FetchAction, FileFrame, Next, Outbox,
};

use super::*;

const GATEWAY: NodeId = NodeId([1; 32]);
const UPSTREAM: NodeId = NodeId([2; 32]);

/// The gateway's store: events by id with the sequence number of their arrival, and the
/// files it holds (list and chunks by address).
#[derive(Default)]
struct GwStore {
    events: BTreeMap<EventId, (u64, Vec<u8>, u64)>,
    seq: u64,
    blobs: HashMap<[u8; 32], (ChunkList, Vec<Vec<u8>>)>,
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

    fn files(&mut self, rooms: &[RoomId]) -> Result<Vec<(RoomId, BlobRef)>, String> {
        Ok(self
            .events
            .values()
            .filter_map(|(_, raw, _)| {
                let room = validate(raw).ok()?.room();
                Some((room, file_of(raw)?))
            })
            .filter(|(room, _)| rooms.contains(room))
            .collect())
    }

    fn file_complete(&mut self, address: &[u8; 32]) -> bool {
        self.blobs.contains_key(address)
    }
}

/// A node's files (the upstream node's, or those the gateway fetches): what it holds of each,
/// and its fetches (as a node's file table runs them: one per file a stored message names,
/// asking every linked peer).
#[derive(Default)]
struct NodeFiles {
    lists: HashMap<[u8; 32], ChunkList>,
    chunks: HashMap<[u8; 32], BTreeMap<u64, Vec<u8>>>,
    fetches: HashMap<[u8; 32], Fetch>,
    blobs: HashMap<[u8; 32], BlobRef>,
}

impl NodeFiles {
    /// A fetch of `blob` going on from what is held.
    fn fetch_of(&self, blob: BlobRef) -> Fetch {
        match self.lists.get(&blob.address) {
            Some(list) => {
                let held = self.chunks.get(&blob.address);
                let missing: Vec<u64> = (0..blob.chunk_count())
                    .filter(|i| held.is_none_or(|h| !h.contains_key(i)))
                    .collect();
                Fetch::resume(blob, list.clone(), &missing).unwrap()
            }
            None => Fetch::new(blob).unwrap(),
        }
    }

    fn complete(&self, blob: &BlobRef) -> bool {
        self.lists.contains_key(&blob.address)
            && self
                .chunks
                .get(&blob.address)
                .is_some_and(|c| c.len() as u64 == blob.chunk_count())
    }

    /// Chunks held of the file at `address`.
    fn held(&self, address: &[u8; 32]) -> usize {
        self.chunks.get(address).map_or(0, |c| c.len())
    }

    /// The file's bytes as the node holds them, in order.
    fn bytes(&self, address: &[u8; 32]) -> Vec<u8> {
        self.chunks
            .get(address)
            .map(|c| c.values().flatten().copied().collect())
            .unwrap_or_default()
    }
}

/// A message in the room of `room_evs` that names the file `list` describes, newer than them.
fn attachment(
    room_evs: &[(u64, EventId, Vec<u8>)],
    list: &ChunkList,
    seed: u8,
) -> (u64, EventId, Vec<u8>) {
    let key = UserKey::from_secret([seed; 32]);
    let newest = room_evs.iter().map(|e| e.0).max().unwrap();
    let c = EventContent {
        version: PROTOCOL_VERSION,
        room: Some(room_of(room_evs)),
        author: key.id(),
        parents: vec![],
        time: Timestamp(newest + 1),
        body: Body::Message(Msg::Attachment(FileDescriptor {
            blob: list.blob_ref(),
            name: "map.png".into(),
            media_type: "image/png".into(),
            key: [3; 32],
            preview: None,
        })),
    };
    let v = validate_event(c.sign(&key)).unwrap();
    (v.event().content.time.0, v.id(), v.bytes().to_vec())
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
    up_files: NodeFiles,
    /// The gateway link's file data queue (the driver's serving task): served only when no
    /// other frame waits either way, one frame at a time.
    gw_outbox: Outbox,
    /// What the upstream node received, in order: `events`, `list` or `chunk`.
    received: Vec<&'static str>,
    /// File data frames the upstream node takes before the WAN goes (`None`: all).
    chunk_limit: Option<usize>,
    /// Events upstream had stored each time the bridge told the driver to serve a file.
    served_when: Vec<usize>,
    /// The gateway's fetches (of files that come down) and what they stored.
    gw_files: NodeFiles,
    /// The upstream link's file data queue, serving the gateway's wants.
    up_outbox: Outbox,
    /// What the gateway received, in order: `events`, `list` or `chunk`.
    received_down: Vec<&'static str>,
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
            up_files: NodeFiles::default(),
            gw_outbox: Outbox::new(),
            received: Vec::new(),
            chunk_limit: None,
            served_when: Vec::new(),
            gw_files: NodeFiles::default(),
            up_outbox: Outbox::new(),
            received_down: Vec::new(),
        };
        site.relink();
        site
    }

    /// The gateway holds the file `list` and `data` describe.
    fn hold(&mut self, list: &ChunkList, data: &[Vec<u8>]) {
        self.gw_store
            .blobs
            .insert(list.address(), (list.clone(), data.to_vec()));
    }

    /// Carries out the upstream node's file actions for the file at `address`.
    fn up_fetch_actions(&mut self, address: [u8; 32], acts: Vec<FetchAction>) {
        let mut queue: VecDeque<FetchAction> = acts.into();
        while let Some(act) = queue.pop_front() {
            match act {
                FetchAction::Send { frame, .. } => self.to_gw.push_back(frame.encode()),
                FetchAction::StoreList(list) => {
                    self.up_files.lists.insert(address, list);
                }
                FetchAction::StoreChunk { index, bytes } => {
                    self.up_files
                        .chunks
                        .entry(address)
                        .or_default()
                        .insert(index, bytes);
                    if let Some(f) = self.up_files.fetches.get_mut(&address) {
                        queue.extend(f.chunk_stored(index, self.start + self.elapsed));
                    }
                }
                FetchAction::Penalize { reason, .. } => panic!("upstream penalised: {reason}"),
                FetchAction::Complete => {
                    if let Some(f) = self.up_files.fetches.remove(&address) {
                        let have = Frame::File(FileFrame::Have(vec![basis_proto::FileHave {
                            address,
                            ranges: vec![basis_proto::ChunkRange {
                                start: 0,
                                end: f.blob().chunk_count(),
                            }],
                        }]));
                        self.to_gw.push_back(have.encode());
                    }
                }
            }
        }
    }

    /// The upstream node starts fetching a file a stored message names (an eager room).
    fn up_fetch(&mut self, blob: BlobRef) {
        self.up_files.blobs.insert(blob.address, blob);
        if self.up_files.complete(&blob) || self.up_files.fetches.contains_key(&blob.address) {
            return;
        }
        let mut fetch = self.up_files.fetch_of(blob);
        let acts = fetch.add_peer(GATEWAY, None, self.start + self.elapsed);
        self.up_files.fetches.insert(blob.address, fetch);
        self.up_fetch_actions(blob.address, acts);
    }

    /// The upstream node's actions: files first (its fetches), the rest as any link's.
    fn up_actions(&mut self, acts: Vec<Action>) {
        let mut rest = Vec::new();
        let mut new_files = Vec::new();
        for a in acts {
            match a {
                Action::File(frame) => {
                    let address = match &frame {
                        FileFrame::List { address, .. }
                        | FileFrame::Chunk { address, .. }
                        | FileFrame::Lacks { address, .. } => Some(*address),
                        FileFrame::Have(h) => h.first().map(|h| h.address),
                        FileFrame::Want {
                            address,
                            list,
                            ranges,
                        } => {
                            self.up_outbox
                                .on_want(*address, *list, ranges)
                                .expect("a want within the limits");
                            None
                        }
                    };
                    let now = self.start + self.elapsed;
                    if let Some(address) = address
                        && let Some(f) = self.up_files.fetches.get_mut(&address)
                    {
                        let acts = f.on_frame(GATEWAY, &frame, now);
                        self.up_fetch_actions(address, acts);
                    }
                }
                Action::Store(evs) => {
                    new_files.extend(evs.iter().filter_map(|e| file_of(e.bytes())));
                    rest.push(Action::Store(evs));
                }
                Action::Admitted { peer, name } => {
                    // Every file it fetches asks the newly linked gateway too.
                    new_files.extend(self.up_files.blobs.values().copied());
                    rest.push(Action::Admitted { peer, name });
                }
                other => rest.push(other),
            }
        }
        apply(&mut self.up, rest, &mut self.to_gw);
        for blob in new_files {
            self.up_fetch(blob);
        }
    }

    /// The gateway's file table starts fetching `blob` from its linked peers (upstream).
    fn gw_fetch(&mut self, blob: BlobRef) {
        if self.gw_files.fetches.contains_key(&blob.address) || self.gw_files.complete(&blob) {
            return;
        }
        let mut fetch = self.gw_files.fetch_of(blob);
        let acts = fetch.add_peer(UPSTREAM, None, self.start + self.elapsed);
        self.gw_files.fetches.insert(blob.address, fetch);
        self.gw_fetch_actions(blob.address, acts);
    }

    /// A file frame the bridge passed to the gateway's fetches.
    fn gw_file_frame(&mut self, frame: FileFrame) {
        let address = match &frame {
            FileFrame::List { address, .. }
            | FileFrame::Chunk { address, .. }
            | FileFrame::Lacks { address, .. } => Some(*address),
            FileFrame::Have(h) => h.first().map(|h| h.address),
            FileFrame::Want { .. } => panic!("the bridge passed a want to the fetches"),
        };
        let now = self.start + self.elapsed;
        if let Some(address) = address
            && let Some(f) = self.gw_files.fetches.get_mut(&address)
        {
            let acts = f.on_frame(UPSTREAM, &frame, now);
            self.gw_fetch_actions(address, acts);
        }
    }

    /// Carries out the gateway's fetch actions: what it sends upstream goes through the
    /// bridge.
    fn gw_fetch_actions(&mut self, address: [u8; 32], acts: Vec<FetchAction>) {
        let mut queue: VecDeque<FetchAction> = acts.into();
        while let Some(act) = queue.pop_front() {
            let file_frame = match act {
                FetchAction::Send {
                    frame: Frame::File(f),
                    ..
                } => Some(f),
                FetchAction::Send { .. } => None,
                FetchAction::StoreList(list) => {
                    self.gw_files.lists.insert(address, list);
                    None
                }
                FetchAction::StoreChunk { index, bytes } => {
                    self.gw_files
                        .chunks
                        .entry(address)
                        .or_default()
                        .insert(index, bytes);
                    if let Some(f) = self.gw_files.fetches.get_mut(&address) {
                        queue.extend(f.chunk_stored(index, self.start + self.elapsed));
                    }
                    None
                }
                FetchAction::Penalize { reason, .. } => panic!("the gateway penalised: {reason}"),
                FetchAction::Complete => self.gw_files.fetches.remove(&address).map(|f| {
                    FileFrame::Have(vec![basis_proto::FileHave {
                        address,
                        ranges: vec![basis_proto::ChunkRange {
                            start: 0,
                            end: f.blob().chunk_count(),
                        }],
                    }])
                }),
            };
            if let Some(frame) = file_frame {
                let now = self.now();
                let acts = self
                    .gw
                    .to_upstream(frame, now, &mut self.rooms, &mut self.gw_store);
                self.gateway_actions(acts);
            }
        }
    }

    /// The upstream node holds the file `list` and `data` describe.
    fn up_hold(&mut self, list: &ChunkList, data: &[Vec<u8>]) {
        self.up_files.lists.insert(list.address(), list.clone());
        self.up_files.chunks.insert(
            list.address(),
            data.iter()
                .cloned()
                .enumerate()
                .map(|(i, c)| (i as u64, c))
                .collect(),
        );
    }

    /// The upstream link writes the next file data frame for the gateway, if any waits.
    fn up_serve_one(&mut self) -> bool {
        let Some(job) = self.up_outbox.pop() else {
            return false;
        };
        let held = match &job {
            Next::Frame(_) => None,
            Next::List { address } => self.up_files.lists.get(address).map(|l| l.to_bytes()),
            Next::Chunk { address, index } => self
                .up_files
                .chunks
                .get(address)
                .and_then(|c| c.get(index).cloned()),
        };
        self.to_gw.push_back(job.answer(held).encode());
        true
    }

    /// The gateway's link writes the next file data frame, if any waits.
    fn serve_one(&mut self) -> bool {
        if self.chunk_limit == Some(0) {
            return false;
        }
        let Some(job) = self.gw_outbox.pop() else {
            return false;
        };
        let held = match &job {
            Next::Frame(_) => None,
            Next::List { address } => self.gw_store.blobs.get(address).map(|(l, _)| l.to_bytes()),
            Next::Chunk { address, index } => self
                .gw_store
                .blobs
                .get(address)
                .and_then(|(_, d)| d.get(*index as usize).cloned()),
        };
        let report = match &job {
            Next::List { address } => Some((*address, FilePart::List)),
            Next::Chunk { address, index } => Some((*address, FilePart::Chunk(*index))),
            Next::Frame(_) => None,
        };
        let sent = held.as_ref().map(|b| b.len() as u64);
        self.up.inbox.push_back(job.answer(held).encode());
        self.chunk_limit = self.chunk_limit.map(|n| n - 1);
        if let Some((address, part)) = report {
            let now = self.now();
            let acts = self.gw.file_served(
                address,
                part,
                sent,
                now,
                &mut self.rooms,
                &mut self.gw_store,
            );
            self.gateway_actions(acts);
        }
        true
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
        self.gw_outbox = Outbox::new();
        // The upstream node's file table starts again from what it holds once the new link is
        // admitted (as after a cut or a restart).
        self.up_files.fetches.clear();
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
        self.gw_outbox = Outbox::new();
        self.gw.closed(&mut self.rooms);
        let now = self.start + self.elapsed;
        for f in self.up_files.fetches.values_mut() {
            f.remove_peer(&GATEWAY, now);
        }
    }

    fn gateway_actions(&mut self, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Send(f) => self.up.inbox.push_back(f.encode()),
                Action::Store(evs) => {
                    for e in evs {
                        self.gw_store
                            .insert(e.event().content.time.0, e.id(), e.bytes().to_vec());
                        // An eager room: the gateway's file table fetches what it names.
                        if let Some(blob) = file_of(e.bytes()) {
                            self.gw_fetch(blob);
                        }
                    }
                }
                Action::Close(reason) => self.closed = Some(reason),
                Action::Penalize { reason, .. } => panic!("the gateway penalized: {reason}"),
                Action::ServeFile {
                    address,
                    list,
                    ranges,
                } => {
                    self.served_when.push(self.up.store.events.len());
                    self.gw_outbox
                        .on_want(address, list, &ranges)
                        .expect("the bridge serves at most what a want may ask");
                }
                Action::File(f) => self.gw_file_frame(f),
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
                match Frame::decode(&bytes) {
                    Ok(Frame::Events(_)) => {
                        up_events = up_events.map(|n| n - 1);
                        self.received.push("events");
                    }
                    Ok(Frame::File(FileFrame::Chunk { .. })) => self.received.push("chunk"),
                    Ok(Frame::File(FileFrame::List { .. })) => self.received.push("list"),
                    _ => {}
                }
                let acts = self
                    .up
                    .link
                    .on_frame(&bytes, self.now().at, &mut self.up.store);
                self.up_actions(acts);
                moved = true;
            }
            if let Some(bytes) = self.to_gw.pop_front() {
                match Frame::decode(&bytes) {
                    Ok(Frame::Events(_)) => self.received_down.push("events"),
                    Ok(Frame::File(FileFrame::Chunk { .. })) => self.received_down.push("chunk"),
                    Ok(Frame::File(FileFrame::List { .. })) => self.received_down.push("list"),
                    _ => {}
                }
                let now = self.now();
                let acts = self
                    .gw
                    .on_frame(&bytes, now, &mut self.rooms, &mut self.gw_store);
                self.gateway_actions(acts);
                moved = true;
            }
            // File data only when no other frame waits either way.
            if !moved && up_events != Some(0) && (self.serve_one() || self.up_serve_one()) {
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
    // The driver reports the failure: the link acknowledges nothing for that frame.
    site.up.link.store_failed();
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

/// Events as the tests hold them: timestamp, id, wire bytes.
type Evs = Vec<(u64, EventId, Vec<u8>)>;

/// A room of `messages` short messages and, newest, one naming a file of `chunks` chunks that
/// the gateway holds; returns the room's events and the file.
fn room_with_file(messages: usize, chunks: u64, seed: u8) -> (Evs, ChunkList, Vec<Vec<u8>>) {
    let mut evs = events(messages, seed);
    let (list, data) = super::files::file(chunks);
    let named = attachment(&evs, &list, seed);
    evs.push(named);
    (evs, list, data)
}

/// How many frames of `what` were received.
fn count(received: &[&str], what: &str) -> usize {
    received.iter().filter(|r| **r == what).count()
}

/// Bytes of the file: its chunks and its list, as they cross.
fn file_bytes(list: &ChunkList, data: &[Vec<u8>]) -> u64 {
    data.iter().map(|c| c.len() as u64).sum::<u64>() + list.to_bytes().len() as u64
}

#[test]
fn a_file_goes_up_after_the_cycles_messages_and_is_charged_what_crossed() {
    // Enough messages for several upload frames: the file's message is the newest, so it goes
    // in the first, and upstream asks for the file while the rest are still on their way.
    let (room_evs, list, data) = room_with_file(2000, 40, 21);
    let room = room_of(&room_evs);
    let budget = 10_000_000;
    let policies = BTreeMap::from([(room, policy(true, false, Some(budget), 0))]);
    let mut site = Site::new(policies, &room_evs, &[]);
    site.hold(&list, &data);
    site.pump(None);
    assert!(site.closed.is_none(), "{:?}", site.closed);

    assert_eq!(site.up_ids(room), ids(&room_evs), "every event went up");
    assert_eq!(
        site.up_files.bytes(&list.address()),
        data.concat(),
        "upstream holds the same file"
    );
    // The bridge served nothing of the file before upstream had stored every event of the
    // cycle, and every frame of them reached upstream before any of the file.
    assert!(
        site.served_when.iter().all(|n| *n == room_evs.len()),
        "served while events were still crossing: {:?}",
        site.served_when
    );
    let first_file = site
        .received
        .iter()
        .position(|r| *r != "events")
        .expect("file data crossed");
    assert!(
        site.received[first_file..].iter().all(|r| *r != "events"),
        "{:?}",
        site.received
    );
    let chunks = count(&site.received, "chunk");
    assert_eq!(chunks, data.len(), "each chunk crossed once");
    let status = site.room(room);
    assert_eq!(
        status.file_bytes_sent,
        file_bytes(&list, &data),
        "{status:?}"
    );
    assert_eq!(
        status.budget_used_bytes,
        site.up_bytes(room) + file_bytes(&list, &data),
        "the budget is charged the events and the file that crossed: {status:?}"
    );
    assert_eq!(status.files_waiting, 0, "{status:?}");
    assert!(!status.budget_exhausted, "{status:?}");
}

#[test]
fn a_budget_too_small_for_the_file_carries_the_messages_and_holds_the_file_back() {
    let (room_evs, list, data) = room_with_file(30, 40, 22);
    let room = room_of(&room_evs);
    let events_bytes = bytes_of(&room_evs);
    // The events and about half the file.
    let budget = events_bytes + file_bytes(&list, &data) / 2;
    let policies = BTreeMap::from([(room, policy(true, false, Some(budget), 0))]);
    let mut site = Site::new(policies, &room_evs, &[]);
    site.hold(&list, &data);
    site.pump(None);
    assert!(site.closed.is_none(), "not an error: {:?}", site.closed);

    assert_eq!(site.up_ids(room), ids(&room_evs), "every message went up");
    let held = site.up_files.held(&list.address());
    assert!(
        held > 0 && held < data.len(),
        "{held} of {} chunks went up",
        data.len()
    );
    let status = site.room(room);
    assert_eq!(
        status.files_waiting, 1,
        "the file is not yet sent: {status:?}"
    );
    assert!(status.budget_exhausted, "{status:?}");
    assert!(status.budget_used_bytes <= budget, "{status:?}");
    assert_eq!(
        status.budget_used_bytes,
        site.up_bytes(room) + status.file_bytes_sent,
        "{status:?}"
    );

    // Later cycles within the hour send nothing more of it ...
    site.wait(Duration::from_secs(600));
    let still = site.up_files.held(&list.address());
    assert_eq!(still, held);
    // ... and once the window has moved on, the rest, without sending again what upstream
    // already stored.
    site.wait(Duration::from_secs(3600));
    assert!(site.closed.is_none(), "{:?}", site.closed);
    assert_eq!(site.up_files.bytes(&list.address()), data.concat());
    let chunks = count(&site.received, "chunk");
    assert_eq!(chunks, data.len(), "each chunk crossed once");
    let status = site.room(room);
    assert_eq!(status.files_waiting, 0, "{status:?}");
    assert_eq!(
        status.file_bytes_sent,
        file_bytes(&list, &data),
        "{status:?}"
    );
}

#[test]
fn a_file_cut_mid_transfer_resumes_on_the_next_link_without_resending_what_crossed() {
    let (room_evs, list, data) = room_with_file(10, 60, 23);
    let room = room_of(&room_evs);
    let policies = BTreeMap::from([(room, policy(true, false, None, 0))]);
    let mut site = Site::new(policies, &room_evs, &[]);
    site.hold(&list, &data);
    // The list and 20 chunks cross, then the WAN goes.
    site.chunk_limit = Some(21);
    site.pump(None);
    let at_cut = site.up_files.held(&list.address());
    assert_eq!(at_cut, 20);
    site.cut();
    site.wait(Duration::from_secs(3));
    site.chunk_limit = None;
    site.relink();
    site.pump(None);
    assert!(site.closed.is_none(), "{:?}", site.closed);
    assert_eq!(site.up_files.bytes(&list.address()), data.concat());
    let chunks = count(&site.received, "chunk");
    let lists = count(&site.received, "list");
    assert_eq!(
        (chunks, lists),
        (data.len(), 1),
        "nothing upstream stored crossed again"
    );
    assert_eq!(
        site.room(room).file_bytes_sent,
        file_bytes(&list, &data),
        "sent bytes count each part once"
    );
}

#[test]
fn a_file_of_a_room_that_does_not_go_up_is_never_served() {
    let (room_evs, list, data) = room_with_file(5, 4, 24);
    let room = room_of(&room_evs);
    // Down only: nothing of the room goes up, so upstream never learns of the file; asked
    // for it anyway (by address), the gateway says it lacks it.
    let policies = BTreeMap::from([(room, policy(false, true, None, 0))]);
    let mut site = Site::new(policies, &room_evs, &[]);
    site.hold(&list, &data);
    site.pump(None);
    site.up_fetch(list.blob_ref());
    site.pump(None);
    assert!(site.up_ids(room).is_empty());
    assert!(!site.received.iter().any(|r| *r == "chunk" || *r == "list"));
    assert!(site.up_files.chunks.is_empty());
}

#[test]
fn a_file_written_upstream_comes_down_after_the_messages_within_the_budget() {
    let (up_evs, list, data) = room_with_file(30, 40, 25);
    let room = room_of(&up_evs);
    let events_bytes = bytes_of(&up_evs);
    // The events and about half the file.
    let budget = events_bytes + file_bytes(&list, &data) / 2;
    let policies = BTreeMap::from([(room, policy(false, true, Some(budget), 0))]);
    let mut site = Site::new(policies, &[], &up_evs);
    site.up_hold(&list, &data);
    // Without sizes in advance the gateway asks for about one event per KiB of budget left,
    // so the last messages come with the next cycle; the file waits for them.
    site.pump(None);
    site.wait(Duration::from_secs(61));
    assert!(site.closed.is_none(), "not an error: {:?}", site.closed);

    assert_eq!(site.gw_ids(room), ids(&up_evs), "every message came down");
    // The bridge stores what comes down itself: its link keeps no report of it waiting.
    assert_eq!(site.gw.link().stores_pending(), 0);
    let first_file = site
        .received_down
        .iter()
        .position(|r| *r != "events")
        .expect("file data came down");
    assert!(
        site.received_down[first_file..]
            .iter()
            .all(|r| *r != "events"),
        "{:?}",
        site.received_down
    );
    let held = site.gw_files.held(&list.address());
    assert!(
        held > 0 && held < data.len(),
        "{held} of {} chunks came down",
        data.len()
    );
    let status = site.room(room);
    assert_eq!(status.files_waiting, 1, "held back: {status:?}");
    assert!(status.budget_exhausted, "{status:?}");
    assert!(status.budget_used_bytes <= budget, "{status:?}");
    assert_eq!(
        status.budget_used_bytes,
        events_bytes + status.file_bytes_received,
        "{status:?}"
    );

    // Within the hour nothing more; after it, the rest, each chunk once.
    site.wait(Duration::from_secs(600));
    let still = site.gw_files.held(&list.address());
    assert_eq!(still, held);
    site.wait(Duration::from_secs(3600));
    assert!(site.closed.is_none(), "{:?}", site.closed);
    assert_eq!(site.gw_files.bytes(&list.address()), data.concat());
    let chunks = count(&site.received_down, "chunk");
    assert_eq!(chunks, data.len(), "each chunk came down once");
    let status = site.room(room);
    assert_eq!(status.files_waiting, 0, "{status:?}");
    assert_eq!(
        status.file_bytes_received,
        file_bytes(&list, &data),
        "{status:?}"
    );
}

#[test]
fn a_file_of_a_room_that_does_not_come_down_is_never_asked_for() {
    let (up_evs, list, data) = room_with_file(5, 4, 26);
    let room = room_of(&up_evs);
    // Up only: nothing comes down. Asked for anyway by the gateway's fetch, the bridge
    // refuses it without asking upstream.
    let policies = BTreeMap::from([(room, policy(true, false, None, 0))]);
    let mut site = Site::new(policies, &[], &up_evs);
    site.up_hold(&list, &data);
    site.pump(None);
    site.gw_fetch(list.blob_ref());
    site.pump(None);
    assert!(site.gw_ids(room).is_empty());
    assert!(
        !site
            .received_down
            .iter()
            .any(|r| *r == "chunk" || *r == "list")
    );
    assert_eq!(
        site.gw_files
            .fetches
            .get(&list.address())
            .map(|f| f.state()),
        Some(basis_proto::FetchState::NoPeer),
        "the fetch was told upstream lacks it"
    );
}
