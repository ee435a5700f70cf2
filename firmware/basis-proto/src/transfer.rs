//! Fetching one file from the peers that hold it, as a sans-IO state machine.
//!
//! A [`Fetch`] is this node's side of getting one file: it asks peers for the chunk list,
//! then for chunks, a window at a time per peer, lowest index first; checks every list and
//! chunk against the content address before it asks the driver to store it; and returns
//! [`FetchAction`]s: frames to send to a peer, a list or chunk to store, a penalty for a
//! peer that sent bad data. It never reads a clock, a socket or a disk: the driver passes the
//! time in and calls [`Fetch::on_tick`] at [`Fetch::poll_timeout`], like a [`crate::Link`].
//!
//! - **Resume.** [`Fetch::resume`] starts from the chunks already stored (after a cut, a
//!   restart or a full disk), so only what is missing crosses again.
//! - **Switching peers.** Every peer that may hold the file is added ([`Fetch::add_peer`]);
//!   chunks are spread over them. A peer that goes away ([`Fetch::remove_peer`]), does not
//!   answer within [`REQUEST_TIMEOUT`], or says it lacks a chunk gives its requests back and
//!   they go to another peer.
//! - **Liars.** A list or chunk whose bytes do not match is refused, the peer is penalised
//!   [`PENALTY_BAD_CHUNK`] points (as for a forged event) and asked nothing more for this
//!   file; its requests go to the other peers.
//! - **A full store** ([`Fetch::store_failed`]) pauses the fetch with the reason; nothing is
//!   lost, and [`Fetch::unpause`] goes on from there.
//!
//! The driver's loop for one file: route each `FileFrame` about the file's address from a
//! peer to [`Fetch::on_frame`]; store what [`FetchAction::StoreList`] and
//! [`FetchAction::StoreChunk`] hand over and report with [`Fetch::chunk_stored`] or
//! [`Fetch::store_failed`]; send [`FetchAction::Send`] frames on the named peer's link (they
//! are small control frames, in the message queue of [`crate::outbox`]); pass penalties to
//! [`crate::Reputation`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use basis_core::{BlobRef, ChunkList, FileError, NodeId};

use crate::frame::{ChunkRange, FileFrame, Frame};
use crate::link::PENALTY_INVALID_EVENT;

/// Chunks asked of one peer at a time: with 256 KiB chunks, 2 MiB in flight per peer, enough
/// to fill a LAN link and little to resend after a cut.
pub const CHUNK_WINDOW: usize = 8;
/// A list or chunk not received within this long after asking is asked of another peer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeouts after which a peer is asked nothing more for this file.
pub const MAX_TIMEOUTS: u32 = 3;
/// Points taken off a peer for a list or chunk that does not match its hash: the same as
/// for a forged event.
pub const PENALTY_BAD_CHUNK: u32 = PENALTY_INVALID_EVENT;

/// What a peer sent that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadData {
    /// A chunk list that is malformed or does not hash to the file's address.
    #[error("a chunk list that does not match the file: {0}")]
    List(FileError),
    /// A chunk whose length or hash is wrong for its place.
    #[error("a chunk that does not match its hash: {0}")]
    Chunk(FileError),
    /// Ranges that are not ranges (end before start) or too many of them.
    #[error("malformed chunk ranges")]
    Ranges,
}

/// Why a fetch stopped until [`Fetch::unpause`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseReason {
    /// The blob store's quota is reached.
    QuotaFull,
    /// The disk is full.
    DiskFull,
    /// Writing failed for another reason.
    StoreFailed,
}

/// Where a fetch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchState {
    /// Waiting for the chunk list.
    NeedList,
    /// Receiving chunks.
    Fetching,
    /// No linked peer may hold what is missing (it resumes when one is added or announces
    /// chunks with `Have`).
    NoPeer,
    /// Stopped by the store (see [`PauseReason`]).
    Paused(PauseReason),
    /// Every chunk is stored.
    Complete,
}

/// What the driver must do for a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAction {
    /// Send this frame to this peer.
    Send {
        /// The peer.
        peer: NodeId,
        /// The frame (a `FileFrame::Want`).
        frame: Frame,
    },
    /// Store this verified chunk list (its bytes are `list.to_bytes()`).
    StoreList(ChunkList),
    /// Store this verified chunk, then call [`Fetch::chunk_stored`] or [`Fetch::store_failed`].
    StoreChunk {
        /// Its index.
        index: u64,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// Count this against the peer's reputation.
    Penalize {
        /// The peer.
        peer: NodeId,
        /// Points to take off.
        points: u32,
        /// What it sent.
        reason: BadData,
    },
    /// Every chunk is stored (once).
    Complete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Missing,
    Asked { peer: NodeId, deadline: Instant },
    Storing,
    Held,
}

#[derive(Debug, Default)]
struct PeerFetch {
    /// What the peer announced it holds (`None`: unknown, it may hold anything).
    have: Option<Vec<ChunkRange>>,
    /// What it said it lacks.
    lacks: Vec<ChunkRange>,
    /// Chunks asked of it and not yet answered.
    asked: BTreeSet<u64>,
    timeouts: u32,
}

impl PeerFetch {
    fn may_hold(&self, index: u64) -> bool {
        let within = |ranges: &[ChunkRange]| ranges.iter().any(|r| r.indices().contains(&index));
        !within(&self.lacks) && self.have.as_deref().is_none_or(within)
    }
}

/// The slot of chunk `index`, if the file has one (never truncating the index on 32-bit).
fn slot_mut(slots: &mut [Slot], index: u64) -> Option<&mut Slot> {
    usize::try_from(index).ok().and_then(|i| slots.get_mut(i))
}

/// This node's fetch of one file.
#[derive(Debug)]
pub struct Fetch {
    blob: BlobRef,
    list: Option<ChunkList>,
    slots: Vec<Slot>,
    held: u64,
    list_asked: Option<(NodeId, Instant)>,
    peers: BTreeMap<NodeId, PeerFetch>,
    /// Peers asked nothing more for this file until they announce chunks of it: those that
    /// lack it or time out.
    dropped: BTreeSet<NodeId>,
    /// Peers that sent bad data: asked nothing more for this file.
    liars: BTreeSet<NodeId>,
    paused: Option<PauseReason>,
    completed: bool,
    chunk_bytes_in: u64,
}

impl Fetch {
    /// A fetch of the file `blob` names, holding nothing of it yet.
    pub fn new(blob: BlobRef) -> Result<Fetch, FileError> {
        blob.check()?;
        let count = usize::try_from(blob.chunk_count())
            .map_err(|_| FileError::TooManyChunks(blob.chunk_count()))?;
        Ok(Fetch {
            blob,
            list: None,
            slots: vec![Slot::Missing; count],
            held: 0,
            list_asked: None,
            peers: BTreeMap::new(),
            dropped: BTreeSet::new(),
            liars: BTreeSet::new(),
            paused: None,
            completed: false,
            chunk_bytes_in: 0,
        })
    }

    /// A fetch that goes on from what is stored: the file's list (already checked against
    /// `blob`) and the chunks not held (`BlobStore::missing`).
    pub fn resume(blob: BlobRef, list: ChunkList, missing: &[u64]) -> Result<Fetch, FileError> {
        let mut f = Fetch::new(blob)?;
        if list.address() != blob.address {
            return Err(FileError::WrongAddress);
        }
        f.list = Some(list);
        f.slots.fill(Slot::Held);
        for &i in missing {
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| f.slots.get_mut(i)) {
                *slot = Slot::Missing;
            }
        }
        f.held = f.slots.iter().filter(|s| **s == Slot::Held).count() as u64;
        Ok(f)
    }

    /// The file.
    pub fn blob(&self) -> &BlobRef {
        &self.blob
    }

    /// The file's chunk list, once received and checked (what a chunk is stored against).
    pub fn list(&self) -> Option<&ChunkList> {
        self.list.as_ref()
    }

    /// Chunks stored, of how many.
    pub fn progress(&self) -> (u64, u64) {
        (self.held, self.slots.len() as u64)
    }

    /// Bytes of chunks received from peers, good or bad, duplicates included.
    pub fn chunk_bytes_in(&self) -> u64 {
        self.chunk_bytes_in
    }

    /// Where the fetch stands.
    pub fn state(&self) -> FetchState {
        if self.held == self.slots.len() as u64 && self.list.is_some() {
            return FetchState::Complete;
        }
        if let Some(reason) = self.paused {
            return FetchState::Paused(reason);
        }
        let waiting = self.list_asked.is_some()
            || self
                .slots
                .iter()
                .any(|s| matches!(s, Slot::Asked { .. } | Slot::Storing));
        let supplier = |(_, p): (&NodeId, &PeerFetch)| {
            self.list.is_none()
                || self
                    .slots
                    .iter()
                    .enumerate()
                    .any(|(i, s)| *s == Slot::Missing && p.may_hold(i as u64))
        };
        if !waiting && !self.usable_peers().any(supplier) {
            return FetchState::NoPeer;
        }
        if self.list.is_none() {
            FetchState::NeedList
        } else {
            FetchState::Fetching
        }
    }

    fn usable_peers(&self) -> impl Iterator<Item = (&NodeId, &PeerFetch)> {
        self.peers
            .iter()
            .filter(|(p, _)| !self.dropped.contains(p) && !self.liars.contains(p))
    }

    /// A peer that may hold the file: with what it announced (`None`: unknown). A peer that
    /// lacked it before is asked again when it announces chunks; a liar is not.
    pub fn add_peer(
        &mut self,
        peer: NodeId,
        have: Option<Vec<ChunkRange>>,
        now: Instant,
    ) -> Vec<FetchAction> {
        let entry = self.peers.entry(peer).or_default();
        if have.is_some() {
            // An announcement is news: a peer that lacked the file or timed out is asked again.
            entry.lacks.clear();
            entry.timeouts = 0;
            self.dropped.remove(&peer);
        }
        entry.have = have;
        let mut out = Vec::new();
        self.fill(now, &mut out);
        out
    }

    /// A peer's link is gone: what was asked of it is asked of others.
    pub fn remove_peer(&mut self, peer: &NodeId, now: Instant) -> Vec<FetchAction> {
        self.release(peer);
        self.peers.remove(peer);
        let mut out = Vec::new();
        self.fill(now, &mut out);
        out
    }

    /// Gives back everything asked of `peer`.
    fn release(&mut self, peer: &NodeId) {
        if self.list_asked.is_some_and(|(p, _)| p == *peer) {
            self.list_asked = None;
        }
        if let Some(p) = self.peers.get_mut(peer) {
            for i in std::mem::take(&mut p.asked) {
                if let Some(slot) = slot_mut(&mut self.slots, i)
                    && matches!(slot, Slot::Asked { peer: q, .. } if q == peer)
                {
                    *slot = Slot::Missing;
                }
            }
        }
    }

    fn penalize(&mut self, peer: NodeId, reason: BadData, out: &mut Vec<FetchAction>) {
        self.release(&peer);
        self.liars.insert(peer);
        out.push(FetchAction::Penalize {
            peer,
            points: PENALTY_BAD_CHUNK,
            reason,
        });
    }

    /// Handles a file frame from `peer` about this file (frames about other files are
    /// ignored: the driver routes by address).
    pub fn on_frame(&mut self, peer: NodeId, frame: &FileFrame, now: Instant) -> Vec<FetchAction> {
        let mut out = Vec::new();
        if self.liars.contains(&peer) {
            // Already refused and penalised once for this file; what it still sends (it was
            // asked before it lied) is ignored.
            return out;
        }
        match frame {
            FileFrame::List { address, bytes }
                if *address == self.blob.address && self.list.is_none() =>
            {
                match ChunkList::for_blob(bytes, &self.blob) {
                    Ok(list) => {
                        self.list_asked = None;
                        out.push(FetchAction::StoreList(list.clone()));
                        self.list = Some(list);
                    }
                    Err(e) => self.penalize(peer, BadData::List(e), &mut out),
                }
            }
            FileFrame::Chunk {
                address,
                index,
                bytes,
            } if *address == self.blob.address => {
                self.chunk_bytes_in += bytes.len() as u64;
                self.on_chunk(peer, *index, bytes, &mut out);
            }
            FileFrame::Lacks {
                address,
                list,
                ranges,
            } if *address == self.blob.address => {
                if ranges.len() > crate::limits::MAX_RANGES {
                    self.penalize(peer, BadData::Ranges, &mut out);
                } else if *list {
                    // It lacks the whole file.
                    self.release(&peer);
                    self.dropped.insert(peer);
                } else if let Some(p) = self.peers.get_mut(&peer) {
                    p.lacks.extend(ranges.iter().copied());
                    let lacked: Vec<u64> = p
                        .asked
                        .iter()
                        .copied()
                        .filter(|i| !p.may_hold(*i))
                        .collect();
                    for i in lacked {
                        p.asked.remove(&i);
                        if let Some(slot) = slot_mut(&mut self.slots, i) {
                            *slot = Slot::Missing;
                        }
                    }
                }
            }
            FileFrame::Have(files) => {
                if let Some(h) = files.iter().find(|h| h.address == self.blob.address) {
                    if h.ranges.len() > crate::limits::MAX_RANGES {
                        self.penalize(peer, BadData::Ranges, &mut out);
                    } else {
                        out.extend(self.add_peer(peer, Some(h.ranges.clone()), now));
                        return out;
                    }
                }
            }
            _ => {}
        }
        self.fill(now, &mut out);
        out
    }

    fn on_chunk(&mut self, peer: NodeId, index: u64, bytes: &[u8], out: &mut Vec<FetchAction>) {
        let Some(list) = &self.list else {
            // Not asked for: no chunk is asked before the list is here.
            return;
        };
        if let Err(e) = list.verify_chunk(index, bytes) {
            return self.penalize(peer, BadData::Chunk(e), out);
        }
        if let Some(p) = self.peers.get_mut(&peer) {
            p.asked.remove(&index);
            p.timeouts = 0;
        }
        let Some(slot) = slot_mut(&mut self.slots, index) else {
            return;
        };
        match *slot {
            Slot::Held | Slot::Storing => {}
            Slot::Asked { peer: other, .. } => {
                if other != peer
                    && let Some(p) = self.peers.get_mut(&other)
                {
                    p.asked.remove(&index);
                }
                *slot = Slot::Storing;
                out.push(FetchAction::StoreChunk {
                    index,
                    bytes: bytes.to_vec(),
                });
            }
            Slot::Missing => {
                *slot = Slot::Storing;
                out.push(FetchAction::StoreChunk {
                    index,
                    bytes: bytes.to_vec(),
                });
            }
        }
    }

    /// The driver stored chunk `index`.
    pub fn chunk_stored(&mut self, index: u64, now: Instant) -> Vec<FetchAction> {
        let mut out = Vec::new();
        if let Some(slot) = slot_mut(&mut self.slots, index)
            && *slot != Slot::Held
        {
            *slot = Slot::Held;
            self.held += 1;
        }
        self.fill(now, &mut out);
        out
    }

    /// The driver could not store chunk `index`: the fetch pauses until [`Fetch::unpause`].
    pub fn store_failed(&mut self, index: u64, reason: PauseReason) {
        if let Some(slot) = slot_mut(&mut self.slots, index)
            && *slot == Slot::Storing
        {
            *slot = Slot::Missing;
        }
        self.paused = Some(reason);
    }

    /// Goes on after a pause (the store has room again).
    pub fn unpause(&mut self, now: Instant) -> Vec<FetchAction> {
        self.paused = None;
        let mut out = Vec::new();
        self.fill(now, &mut out);
        out
    }

    /// When [`Fetch::on_tick`] has work: the earliest request deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let chunks = self.slots.iter().filter_map(|s| match s {
            Slot::Asked { deadline, .. } => Some(*deadline),
            _ => None,
        });
        chunks.chain(self.list_asked.map(|(_, d)| d)).min()
    }

    /// Requests past their deadline go to other peers; a peer that timed out
    /// [`MAX_TIMEOUTS`] times is asked nothing more for this file.
    pub fn on_tick(&mut self, now: Instant) -> Vec<FetchAction> {
        let mut late: BTreeSet<NodeId> = BTreeSet::new();
        if let Some((peer, deadline)) = self.list_asked
            && deadline <= now
        {
            self.list_asked = None;
            late.insert(peer);
        }
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Slot::Asked { peer, deadline } = *slot
                && deadline <= now
            {
                *slot = Slot::Missing;
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.asked.remove(&(i as u64));
                }
                late.insert(peer);
            }
        }
        for peer in late {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.timeouts += 1;
                if p.timeouts >= MAX_TIMEOUTS {
                    self.release(&peer);
                    self.dropped.insert(peer);
                }
            }
        }
        let mut out = Vec::new();
        self.fill(now, &mut out);
        out
    }

    /// Asks peers for what is missing, up to the window of each.
    fn fill(&mut self, now: Instant, out: &mut Vec<FetchAction>) {
        if self.paused.is_some() {
            return;
        }
        if self.held == self.slots.len() as u64 && self.list.is_some() {
            if !self.completed {
                self.completed = true;
                out.push(FetchAction::Complete);
            }
            return;
        }
        let address = self.blob.address;
        let deadline = now + REQUEST_TIMEOUT;
        let candidates: Vec<NodeId> = {
            let mut v: Vec<(u32, bool, NodeId)> = self
                .usable_peers()
                .map(|(n, p)| (p.timeouts, p.have.is_none(), *n))
                .collect();
            // Fewest timeouts first, then peers that announced what they hold.
            v.sort();
            v.into_iter().map(|(_, _, n)| n).collect()
        };
        if self.list.is_none() {
            if self.list_asked.is_none()
                && let Some(&peer) = candidates.first()
            {
                self.list_asked = Some((peer, deadline));
                out.push(FetchAction::Send {
                    peer,
                    frame: Frame::File(FileFrame::Want {
                        address,
                        list: true,
                        ranges: Vec::new(),
                    }),
                });
            }
            return;
        }
        let mut next_missing = 0usize;
        for peer in candidates {
            let Some(p) = self.peers.get_mut(&peer) else {
                continue;
            };
            let mut asked_now = Vec::new();
            let mut i = next_missing;
            while p.asked.len() < CHUNK_WINDOW && i < self.slots.len() {
                if self.slots[i] == Slot::Missing && p.may_hold(i as u64) {
                    self.slots[i] = Slot::Asked { peer, deadline };
                    p.asked.insert(i as u64);
                    asked_now.push(i as u64);
                }
                i += 1;
            }
            // Peers that hold everything take the lowest chunks first; the next peer starts
            // where this one stopped, unless this one skipped some it lacks.
            if p.have.is_none() && p.lacks.is_empty() {
                next_missing = i;
            }
            if !asked_now.is_empty() {
                out.push(FetchAction::Send {
                    peer,
                    frame: Frame::File(FileFrame::Want {
                        address,
                        list: false,
                        ranges: ChunkRange::from_indices(asked_now),
                    }),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basis_core::file::chunk_hash;

    fn file(chunks: u64) -> (ChunkList, Vec<Vec<u8>>) {
        let size = (chunks - 1) * 1024 + 10;
        let data: Vec<Vec<u8>> = (0..chunks)
            .map(|i| {
                let len = if i + 1 == chunks { 26 } else { 1040 };
                vec![i as u8 ^ 0x5a; len]
            })
            .collect();
        let list = ChunkList {
            chunk_size: 1024,
            size,
            hashes: data.iter().map(|c| chunk_hash(c)).collect(),
        };
        (list, data)
    }

    fn wants(actions: &[FetchAction]) -> Vec<(NodeId, bool, Vec<ChunkRange>)> {
        actions
            .iter()
            .filter_map(|a| match a {
                FetchAction::Send {
                    peer,
                    frame: Frame::File(FileFrame::Want { list, ranges, .. }),
                } => Some((*peer, *list, ranges.clone())),
                _ => None,
            })
            .collect()
    }

    const A: NodeId = NodeId([1; 32]);
    const B: NodeId = NodeId([2; 32]);

    #[test]
    fn the_list_first_then_windows_of_chunks_spread_over_peers() {
        let (list, _) = file(20);
        let now = Instant::now();
        let mut f = Fetch::new(list.blob_ref()).unwrap();
        assert_eq!(f.state(), FetchState::NoPeer);
        let acts = f.add_peer(A, None, now);
        assert_eq!(wants(&acts), vec![(A, true, vec![])]);
        let acts = f.add_peer(B, None, now);
        assert!(wants(&acts).is_empty(), "one list request at a time");
        let acts = f.on_frame(
            A,
            &FileFrame::List {
                address: list.address(),
                bytes: list.to_bytes(),
            },
            now,
        );
        assert!(matches!(acts[0], FetchAction::StoreList(_)));
        assert_eq!(
            wants(&acts),
            vec![
                (A, false, vec![ChunkRange { start: 0, end: 8 }]),
                (B, false, vec![ChunkRange { start: 8, end: 16 }])
            ]
        );
        assert_eq!(f.state(), FetchState::Fetching);
    }

    #[test]
    fn a_bad_chunk_penalises_its_sender_and_goes_to_another_peer() {
        let (list, data) = file(3);
        let now = Instant::now();
        let mut f = Fetch::resume(list.blob_ref(), list.clone(), &[0, 1, 2]).unwrap();
        f.add_peer(A, None, now);
        f.add_peer(B, None, now);
        let mut bad = data[0].clone();
        bad[0] ^= 1;
        let address = list.address();
        let acts = f.on_frame(
            A,
            &FileFrame::Chunk {
                address,
                index: 0,
                bytes: bad,
            },
            now,
        );
        assert!(matches!(
            acts[0],
            FetchAction::Penalize {
                peer: A,
                points: PENALTY_BAD_CHUNK,
                reason: BadData::Chunk(FileError::ChunkHash(0))
            }
        ));
        // A's chunks are asked of B now; A is asked nothing more.
        assert_eq!(
            wants(&acts),
            vec![(B, false, vec![ChunkRange { start: 0, end: 3 }])]
        );
        for i in 0..3u64 {
            let acts = f.on_frame(
                B,
                &FileFrame::Chunk {
                    address,
                    index: i,
                    bytes: data[i as usize].clone(),
                },
                now,
            );
            assert!(matches!(acts[0], FetchAction::StoreChunk { index, .. } if index == i));
        }
        let mut last = Vec::new();
        for i in 0..3 {
            last = f.chunk_stored(i, now);
        }
        assert_eq!(last, vec![FetchAction::Complete]);
        assert_eq!(f.state(), FetchState::Complete);
    }

    #[test]
    fn a_wrong_list_is_refused() {
        let (list, _) = file(3);
        let (other, _) = file(4);
        let now = Instant::now();
        let mut f = Fetch::new(list.blob_ref()).unwrap();
        f.add_peer(A, None, now);
        f.add_peer(B, None, now);
        let acts = f.on_frame(
            A,
            &FileFrame::List {
                address: list.address(),
                bytes: other.to_bytes(),
            },
            now,
        );
        assert!(matches!(
            acts[0],
            FetchAction::Penalize {
                peer: A,
                reason: BadData::List(_),
                ..
            }
        ));
        assert_eq!(wants(&acts), vec![(B, true, vec![])]);
    }

    #[test]
    fn timeouts_lacks_and_departures_move_requests_elsewhere() {
        let (list, _) = file(4);
        let now = Instant::now();
        let mut f = Fetch::resume(list.blob_ref(), list.clone(), &[0, 1, 2, 3]).unwrap();
        let acts = f.add_peer(A, None, now);
        assert_eq!(
            wants(&acts),
            vec![(A, false, vec![ChunkRange { start: 0, end: 4 }])]
        );
        f.add_peer(B, Some(vec![ChunkRange { start: 0, end: 2 }]), now);
        // A says it lacks chunks 2 and 3 (B does not have them either): no peer for them.
        let acts = f.on_frame(
            A,
            &FileFrame::Lacks {
                address: list.address(),
                list: false,
                ranges: vec![ChunkRange { start: 2, end: 4 }],
            },
            now,
        );
        assert!(wants(&acts).is_empty());
        assert_eq!(
            f.state(),
            FetchState::Fetching,
            "chunks 0 and 1 are still asked of A"
        );
        // A goes away: chunks 0 and 1 go to B.
        let acts = f.remove_peer(&A, now);
        assert_eq!(
            wants(&acts),
            vec![(B, false, vec![ChunkRange { start: 0, end: 2 }])]
        );
        // B does not answer: after the timeout, asked again (of B, the only one).
        assert_eq!(f.poll_timeout(), Some(now + REQUEST_TIMEOUT));
        let later = now + REQUEST_TIMEOUT;
        let acts = f.on_tick(later);
        assert_eq!(
            wants(&acts),
            vec![(B, false, vec![ChunkRange { start: 0, end: 2 }])]
        );
        f.on_tick(later + REQUEST_TIMEOUT);
        f.on_tick(later + REQUEST_TIMEOUT * 2);
        assert_eq!(f.state(), FetchState::NoPeer);
    }

    fn arb_ranges() -> impl proptest::strategy::Strategy<Value = Vec<ChunkRange>> {
        use proptest::prelude::*;
        proptest::collection::vec(
            (any::<u64>(), any::<u64>()).prop_map(|(start, end)| ChunkRange { start, end }),
            0..4,
        )
    }

    proptest::proptest! {
        /// Whatever a peer sends about the file (any index, any bytes, any ranges), the fetch
        /// neither panics nor stores what does not match.
        #[test]
        fn any_answer_is_taken_without_panic(
            index in proptest::prelude::any::<u64>(),
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1100),
            ranges in arb_ranges(),
            list in proptest::prelude::any::<bool>(),
        ) {
            let (l, _) = file(3);
            let address = l.address();
            let now = Instant::now();
            for mut f in [Fetch::new(l.blob_ref()).unwrap(), Fetch::resume(l.blob_ref(), l.clone(), &[0, 1, 2]).unwrap()] {
                f.add_peer(A, None, now);
                let frames = [
                    FileFrame::Chunk { address, index, bytes: bytes.clone() },
                    FileFrame::List { address, bytes: bytes.clone() },
                    FileFrame::Lacks { address, list, ranges: ranges.clone() },
                    FileFrame::Have(vec![crate::frame::FileHave { address, ranges: ranges.clone() }]),
                ];
                for frame in &frames {
                    for act in f.on_frame(A, frame, now) {
                        let stores = matches!(
                            act,
                            FetchAction::StoreChunk { .. } | FetchAction::StoreList(_)
                        );
                        proptest::prop_assert!(!stores, "stored unchecked data");
                    }
                }
                f.on_tick(now + REQUEST_TIMEOUT);
                let _ = f.state();
            }
        }
    }

    #[test]
    fn a_full_store_pauses_and_unpausing_goes_on() {
        let (list, data) = file(2);
        let now = Instant::now();
        let mut f = Fetch::resume(list.blob_ref(), list.clone(), &[0, 1]).unwrap();
        f.add_peer(A, None, now);
        let address = list.address();
        f.on_frame(
            A,
            &FileFrame::Chunk {
                address,
                index: 0,
                bytes: data[0].clone(),
            },
            now,
        );
        f.store_failed(0, PauseReason::QuotaFull);
        assert_eq!(f.state(), FetchState::Paused(PauseReason::QuotaFull));
        f.on_frame(
            A,
            &FileFrame::Chunk {
                address,
                index: 1,
                bytes: data[1].clone(),
            },
            now,
        );
        f.chunk_stored(1, now);
        let acts = f.unpause(now);
        assert_eq!(
            wants(&acts),
            vec![(A, false, vec![ChunkRange { start: 0, end: 1 }])]
        );
        assert_eq!(f.progress(), (1, 2));
    }
}
