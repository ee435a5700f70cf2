//! Files over the federation (`docs/FEDERATION.md`, "Files"): the node-wide table of files
//! this node fetches, and per LAN link the task that serves a peer's wants.
//!
//! The protocol is `basis-proto`'s: a [`Fetch`] per file, an [`Outbox`] per link. This module
//! stores what a fetch verified in the [`BlobStore`], sends a fetch's requests on the link of
//! the peer they are for, and reads a chunk for a peer only when the link's writer takes it:
//! file data is the writer's third and lowest queue, after control frames and event backfill,
//! so files never delay messages.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basis_core::encoding::decode_event;
use basis_core::{BlobRef, Body, ChunkList, NodeId, RoomId};
use basis_proto::frame::{ChunkRange, FileFrame, FileHave, Frame};
use basis_proto::transfer::Fetch;
use basis_proto::{FetchAction, FilePolicy, Next, Outbox, PauseReason};
use basis_store::{BlobError, BlobStatus, BlobStore};
use tokio::sync::mpsc;

/// How often fetches are checked for requests past their deadline.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// How often a fetch paused by a full store tries again.
const RETRY_PAUSED: Duration = Duration::from_secs(30);

/// A room's file policy, as the node decides it.
pub type PolicyFn = dyn Fn(RoomId) -> FilePolicy + Send + Sync;

/// A peer's want, as the driver hands it to the link's serving task.
pub(crate) struct Want {
    pub address: [u8; 32],
    pub list: bool,
    pub ranges: Vec<ChunkRange>,
}

/// A list or chunk the serving task of an upstream link handed to the writer (`sent`: its
/// bytes) or did not hold (`None`), for the bridge to charge it.
pub(crate) struct Served {
    pub address: [u8; 32],
    pub part: basis_proto::bridge_link::FilePart,
    pub sent: Option<u64>,
}

/// What the calling link must count against its peer.
pub(crate) struct Penalty {
    pub points: u32,
    pub reason: String,
}

#[derive(Default)]
struct Table {
    fetches: HashMap<[u8; 32], Fetch>,
    /// The control queue of each open LAN link, by peer.
    links: HashMap<NodeId, mpsc::UnboundedSender<Vec<u8>>>,
    last_retry: Option<Instant>,
}

/// The files of this node on the federation.
pub(crate) struct Files {
    blobs: Arc<BlobStore>,
    policy: Box<PolicyFn>,
    table: Mutex<Table>,
}

impl Files {
    pub(crate) fn new(blobs: Arc<BlobStore>, policy: Box<PolicyFn>) -> Files {
        Files {
            blobs,
            policy,
            table: Mutex::new(Table::default()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A LAN link to `peer` is open: its control queue takes the fetches' requests, and every
    /// fetch may ask it.
    pub(crate) fn link_up(&self, peer: NodeId, control: mpsc::UnboundedSender<Vec<u8>>) {
        let mut t = self.table();
        t.links.insert(peer, control);
        let now = Instant::now();
        let addresses: Vec<[u8; 32]> = t.fetches.keys().copied().collect();
        for address in addresses {
            if let Some(f) = t.fetches.get_mut(&address) {
                let acts = f.add_peer(peer, None, now);
                self.carry_out(&mut t, address, acts);
            }
        }
    }

    /// The link to `peer` whose control queue is `control` ended: what was asked on it is
    /// asked again, of the same peer if another link to it replaced this one (the
    /// one-link-per-pair rule), else of the others.
    pub(crate) fn link_down(&self, peer: &NodeId, control: &mpsc::UnboundedSender<Vec<u8>>) {
        let mut t = self.table();
        let replaced = t.links.get(peer).is_some_and(|c| !c.same_channel(control));
        if !replaced {
            t.links.remove(peer);
        }
        let now = Instant::now();
        let addresses: Vec<[u8; 32]> = t.fetches.keys().copied().collect();
        for address in addresses {
            if let Some(f) = t.fetches.get_mut(&address) {
                let mut acts = f.remove_peer(peer, now);
                if replaced {
                    acts.extend(f.add_peer(*peer, None, now));
                }
                self.carry_out(&mut t, address, acts);
            }
        }
    }

    /// Fetches the file `blob` names from the linked peers, going on from what is stored.
    pub(crate) fn fetch(&self, blob: BlobRef) -> Result<(), BlobError> {
        let mut t = self.table();
        if t.fetches.contains_key(&blob.address) {
            return Ok(());
        }
        let mut fetch = match self.blobs.status(&blob.address)? {
            BlobStatus::Complete => return Ok(()),
            BlobStatus::Partial { .. } => match self.blobs.list(&blob.address)? {
                Some(list) => {
                    let missing = self.blobs.missing(&list);
                    Fetch::resume(blob, list, &missing)?
                }
                None => Fetch::new(blob)?,
            },
            BlobStatus::Absent => Fetch::new(blob)?,
        };
        let now = Instant::now();
        let peers: Vec<NodeId> = t.links.keys().copied().collect();
        let mut acts = Vec::new();
        for peer in peers {
            acts.extend(fetch.add_peer(peer, None, now));
        }
        t.fetches.insert(blob.address, fetch);
        self.carry_out(&mut t, blob.address, acts);
        Ok(())
    }

    /// Whether this node holds the whole file at `address`.
    pub(crate) fn complete(&self, address: &[u8; 32]) -> bool {
        matches!(self.blobs.status(address), Ok(BlobStatus::Complete))
    }

    /// Where this node's fetch of the file at `address` stands, and chunks held of how many
    /// (`None`: no fetch running; the blob store says whether the file is here).
    pub(crate) fn progress(
        &self,
        address: &[u8; 32],
    ) -> Option<(basis_proto::FetchState, (u64, u64))> {
        let t = self.table();
        t.fetches.get(address).map(|f| (f.state(), f.progress()))
    }

    /// A new message of `room` naming the file `blob` was stored on this node: an eager
    /// room's file is fetched at once. Reads the store (the room's policy, the chunks held).
    pub(crate) fn on_file_message(&self, room: RoomId, blob: BlobRef) {
        if (self.policy)(room).fetch(false)
            && let Err(e) = self.fetch(blob)
        {
            log::warn!("cannot fetch a file of room {}: {e}", room.short());
        }
    }

    /// After a start: fetches what the stored messages name and the node should hold, going
    /// on from what is stored: every file of an eager room, and a lazy room's file that was
    /// being fetched (partly held) when the node stopped.
    pub(crate) fn resume_all(&self, readers: &basis_store::Readers) {
        let uses = match readers.blob_refs() {
            Ok(uses) => uses,
            Err(e) => return log::warn!("cannot list the files of stored messages: {e}"),
        };
        for u in uses {
            let partial = matches!(
                self.blobs.status(&u.blob.address),
                Ok(BlobStatus::Partial { .. })
            );
            if ((self.policy)(u.room).fetch(false) || partial)
                && let Err(e) = self.fetch(u.blob)
            {
                log::warn!("cannot resume a file of room {}: {e}", u.room.short());
            }
        }
    }

    /// A file frame from `peer` (not a `Want`: those go to the link's serving task).
    pub(crate) fn on_frame(&self, peer: NodeId, frame: &FileFrame) -> Vec<Penalty> {
        let addresses: Vec<[u8; 32]> = match frame {
            FileFrame::Have(files) => files.iter().map(|h| h.address).collect(),
            FileFrame::List { address, .. }
            | FileFrame::Chunk { address, .. }
            | FileFrame::Lacks { address, .. } => vec![*address],
            FileFrame::Want { .. } => Vec::new(),
        };
        let mut t = self.table();
        let now = Instant::now();
        let mut penalties = Vec::new();
        for address in addresses {
            if let Some(f) = t.fetches.get_mut(&address) {
                let acts = f.on_frame(peer, frame, now);
                penalties.extend(self.carry_out(&mut t, address, acts));
            }
        }
        penalties
    }

    /// Requests past their deadline go elsewhere; fetches paused by a full store try again
    /// now and then.
    pub(crate) fn tick(&self) {
        let mut t = self.table();
        let now = Instant::now();
        let retry = t
            .last_retry
            .is_none_or(|last| now.duration_since(last) >= RETRY_PAUSED);
        if retry {
            t.last_retry = Some(now);
        }
        let addresses: Vec<[u8; 32]> = t.fetches.keys().copied().collect();
        for address in addresses {
            if let Some(f) = t.fetches.get_mut(&address) {
                let mut acts = Vec::new();
                if f.poll_timeout().is_some_and(|d| d <= now) {
                    acts.extend(f.on_tick(now));
                }
                if retry && matches!(f.state(), basis_proto::FetchState::Paused(_)) {
                    // A list that could not be stored is stored first (the fetch holds it).
                    let list_missing = f.list().is_some_and(|l| {
                        matches!(self.blobs.status(&l.address()), Ok(BlobStatus::Absent))
                    });
                    let stored = match f.list() {
                        Some(l) if list_missing => {
                            self.blobs.put_list(f.blob(), &l.to_bytes()).is_ok()
                        }
                        _ => true,
                    };
                    if stored {
                        acts.extend(f.unpause(now));
                    }
                }
                self.carry_out(&mut t, address, acts);
            }
        }
    }

    /// Carries out a fetch's actions; returns the penalties for the caller's peer.
    fn carry_out(&self, t: &mut Table, address: [u8; 32], acts: Vec<FetchAction>) -> Vec<Penalty> {
        let mut penalties = Vec::new();
        let mut queue: std::collections::VecDeque<FetchAction> = acts.into();
        let now = Instant::now();
        while let Some(act) = queue.pop_front() {
            match act {
                FetchAction::Send { peer, frame } => {
                    if let Some(link) = t.links.get(&peer) {
                        let _ = link.send(frame.encode());
                    }
                }
                FetchAction::StoreList(list) => {
                    let Some(f) = t.fetches.get_mut(&address) else {
                        continue;
                    };
                    let blob = *f.blob();
                    if let Err(e) = self.blobs.put_list(&blob, &list.to_bytes()) {
                        log::warn!("cannot store a file's chunk list: {e}");
                        f.store_failed(u64::MAX, pause_reason(&e));
                    }
                }
                FetchAction::StoreChunk { index, bytes } => {
                    let Some(f) = t.fetches.get_mut(&address) else {
                        continue;
                    };
                    let Some(list) = f.list().cloned() else {
                        continue;
                    };
                    match self.blobs.put_chunk(&list, index, &bytes) {
                        Ok(_) => queue.extend(f.chunk_stored(index, now)),
                        Err(e) => {
                            log::warn!("cannot store a file chunk: {e}");
                            f.store_failed(index, pause_reason(&e));
                        }
                    }
                }
                FetchAction::Penalize { points, reason, .. } => penalties.push(Penalty {
                    points,
                    reason: reason.to_string(),
                }),
                FetchAction::Complete => {
                    if let Some(f) = t.fetches.remove(&address) {
                        let have = Frame::File(FileFrame::Have(vec![FileHave {
                            address,
                            ranges: vec![ChunkRange {
                                start: 0,
                                end: f.blob().chunk_count(),
                            }],
                        }]))
                        .encode();
                        for link in t.links.values() {
                            let _ = link.send(have.clone());
                        }
                    }
                }
            }
        }
        penalties
    }

    /// Bytes of a list or chunk a peer asked for, if held (`list` caches the last list read).
    fn read(&self, job: &Next, list: &mut Option<ChunkList>) -> Option<Vec<u8>> {
        match job {
            Next::Frame(_) => None,
            Next::List { address } => self.blobs.list_bytes(address).ok().flatten(),
            Next::Chunk { address, index } => {
                if list.as_ref().is_none_or(|l| l.address() != *address) {
                    *list = self.blobs.list(address).ok().flatten();
                }
                self.blobs.chunk(list.as_ref()?, *index).ok().flatten()
            }
        }
    }
}

fn pause_reason(e: &BlobError) -> PauseReason {
    match e {
        BlobError::QuotaFull { .. } => PauseReason::QuotaFull,
        BlobError::DiskFull => PauseReason::DiskFull,
        _ => PauseReason::StoreFailed,
    }
}

/// Serves one link's wants: queues them in an [`Outbox`] and hands the writer one list or
/// chunk at a time, read from the store only when the writer's file queue has room. On an
/// upstream link (the bridge chose what to serve) each part handed over is `report`ed.
pub(crate) async fn serve(
    files: Arc<Files>,
    mut wants: mpsc::UnboundedReceiver<Want>,
    control: mpsc::UnboundedSender<Vec<u8>>,
    out: mpsc::Sender<Vec<u8>>,
    report: Option<mpsc::UnboundedSender<Served>>,
) {
    let mut outbox = Outbox::new();
    let mut list: Option<ChunkList> = None;
    loop {
        while let Ok(w) = wants.try_recv() {
            // The driver checked the number of ranges.
            let _ = outbox.on_want(w.address, w.list, &w.ranges);
        }
        let Some(job) = outbox.pop() else {
            match wants.recv().await {
                Some(w) => {
                    let _ = outbox.on_want(w.address, w.list, &w.ranges);
                    continue;
                }
                None => return,
            }
        };
        if let Next::Frame(frame) = job {
            // A refusal of what was asked beyond the limit: a small control frame.
            let _ = control.send(frame.encode());
            continue;
        }
        // Wait for room before reading, so at most one chunk waits per link.
        let Ok(permit) = out.reserve().await else {
            return;
        };
        let held = tokio::task::block_in_place(|| files.read(&job, &mut list));
        let served = match &job {
            Next::List { address } => Some((*address, basis_proto::bridge_link::FilePart::List)),
            Next::Chunk { address, index } => {
                Some((*address, basis_proto::bridge_link::FilePart::Chunk(*index)))
            }
            Next::Frame(_) => None,
        };
        let sent = held.as_ref().map(|b| b.len() as u64);
        permit.send(job.answer(held).encode());
        if let (Some(report), Some((address, part))) = (&report, served) {
            let _ = report.send(Served {
                address,
                part,
                sent,
            });
        }
    }
}

/// The file a stored event's bytes name, if it is a message with one. Decodes only.
fn named_file(bytes: &[u8]) -> Option<BlobRef> {
    let event = decode_event(bytes).ok()?;
    match &event.content.body {
        Body::Message(message) => message.blob().copied(),
        _ => None,
    }
}

/// Runs the node-wide file tasks until `stop`: fetching eager rooms' files as their messages
/// are stored, and the fetches' timers.
pub(crate) async fn run(
    files: Arc<Files>,
    readers: Arc<basis_store::Readers>,
    mut events: tokio::sync::broadcast::Receiver<Arc<crate::context::NewEvent>>,
    stop: tokio_util::sync::CancellationToken,
) {
    tokio::task::block_in_place(|| files.resume_all(&readers));
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            event = events.recv() => match event {
                // Most events name no file: they are looked at here, and only a file's
                // message leaves this thread to read the store. (Leaving it for every event
                // cost a thread handover per event.)
                Ok(ev) => {
                    if let Some(blob) = named_file(&ev.bytes) {
                        tokio::task::block_in_place(|| files.on_file_message(ev.room, blob));
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    log::warn!("{n} new events not looked at for files");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => tokio::task::block_in_place(|| files.tick()),
        }
    }
}
