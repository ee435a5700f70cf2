//! Range-based set reconciliation over `(timestamp, id)` items, with the `negentropy` crate.
//!
//! The initiator learns which ids only it has (it pushes those) and which only the peer has
//! (it asks for those); the responder only answers. Each message is bounded in size, so a
//! large difference takes more round trips rather than larger frames.

use basis_core::EventId;
use negentropy::{Id, Negentropy, NegentropyStorageBase, NegentropyStorageVector};

use crate::limits::{MAX_RECON_ROUNDS, RECON_FRAME_BYTES};

/// Why reconciliation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconError {
    /// negentropy refused a message (malformed or out of protocol).
    #[error("reconciliation failed: {0}")]
    Protocol(String),
    /// The peer kept the session going far longer than any honest set difference needs.
    #[error("reconciliation took more than {MAX_RECON_ROUNDS} rounds")]
    TooManyRounds,
}

/// The items a session reconciles, collected straight into negentropy's sorted vector (40
/// bytes per item), so no second copy of the set is held.
///
/// A set made with [`Items::between`] takes only the items of one slice of time and leaves
/// out the rest (see `Frame::Slice`); a source that can read a range of time by itself asks
/// [`Items::span`] which.
#[derive(Default)]
pub struct Items {
    storage: NegentropyStorageVector,
    newest: Option<u64>,
    span: Option<(u64, u64)>,
}

impl Items {
    /// An empty set with room for `n` items.
    pub fn with_capacity(n: usize) -> Items {
        Items {
            storage: NegentropyStorageVector::with_capacity(n),
            ..Items::default()
        }
    }

    /// An empty set that takes only items with a timestamp from `from` to `to`, both
    /// included; the others are left out.
    pub fn between(from: u64, to: u64) -> Items {
        Items {
            span: Some((from, to)),
            ..Items::default()
        }
    }

    /// The timestamps `(from, to)` this set takes (`None`: every timestamp).
    pub fn span(&self) -> Option<(u64, u64)> {
        self.span
    }

    /// Adds one item.
    pub fn push(&mut self, timestamp: u64, id: EventId) -> Result<(), ReconError> {
        if self
            .span
            .is_some_and(|(from, to)| timestamp < from || timestamp > to)
        {
            return Ok(());
        }
        self.storage
            .insert(timestamp, Id::from_byte_array(id.0))
            .map_err(|e| ReconError::Protocol(e.to_string()))?;
        self.newest = self.newest.max(Some(timestamp));
        Ok(())
    }

    /// Whether no item in the span was added.
    pub fn is_empty(&self) -> bool {
        self.newest.is_none()
    }

    /// The newest timestamp of the items in the span (`None` when there is none).
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    /// The timestamp of the item `n` places after the oldest, in `(timestamp, id)` order
    /// (`None` when the set holds `n` items or fewer).
    pub fn nth_timestamp(self, n: usize) -> Result<Option<u64>, ReconError> {
        let mut storage = self.storage;
        storage
            .seal()
            .map_err(|e| ReconError::Protocol(e.to_string()))?;
        let size = storage
            .size()
            .map_err(|e| ReconError::Protocol(e.to_string()))?;
        if n >= size {
            return Ok(None);
        }
        let item = storage
            .get_item(n)
            .map_err(|e| ReconError::Protocol(e.to_string()))?;
        Ok(item.map(|i| i.timestamp))
    }
}

impl From<Vec<(u64, EventId)>> for Items {
    fn from(list: Vec<(u64, EventId)>) -> Items {
        let mut items = Items::with_capacity(list.len());
        for (ts, id) in list {
            // Insertion fails only on a sealed vector, and this one is new.
            let _ = items.push(ts, id);
        }
        items
    }
}

fn neg(items: Items) -> Result<Negentropy<'static, NegentropyStorageVector>, ReconError> {
    let mut storage = items.storage;
    storage
        .seal()
        .map_err(|e| ReconError::Protocol(e.to_string()))?;
    Negentropy::owned(storage, RECON_FRAME_BYTES).map_err(|e| ReconError::Protocol(e.to_string()))
}

/// What the initiator does after a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this message and wait for the next reply.
    Continue(Vec<u8>),
    /// Done: ids only this side has, and ids only the peer has.
    Done {
        /// Ids this side has and the peer lacks.
        have: Vec<EventId>,
        /// Ids the peer has and this side lacks.
        need: Vec<EventId>,
    },
}

/// The initiating side of one reconciliation session.
pub struct Initiator {
    neg: Negentropy<'static, NegentropyStorageVector>,
    have: Vec<Id>,
    need: Vec<Id>,
    rounds: u32,
}

impl Initiator {
    /// Starts a session over `items`; returns it and the first message to send.
    pub fn start(items: impl Into<Items>) -> Result<(Initiator, Vec<u8>), ReconError> {
        let mut neg = neg(items.into())?;
        let first = neg
            .initiate()
            .map_err(|e| ReconError::Protocol(e.to_string()))?;
        Ok((
            Initiator {
                neg,
                have: Vec::new(),
                need: Vec::new(),
                rounds: 0,
            },
            first,
        ))
    }

    /// Handles the peer's reply.
    pub fn step(&mut self, reply: &[u8]) -> Result<Step, ReconError> {
        self.rounds += 1;
        if self.rounds > MAX_RECON_ROUNDS {
            return Err(ReconError::TooManyRounds);
        }
        let next = self
            .neg
            .reconcile_with_ids(reply, &mut self.have, &mut self.need)
            .map_err(|e| ReconError::Protocol(e.to_string()))?;
        Ok(match next {
            Some(message) => Step::Continue(message),
            None => Step::Done {
                have: once_each(&mut self.have),
                need: once_each(&mut self.need),
            },
        })
    }

    /// Round trips so far.
    pub fn rounds(&self) -> u32 {
        self.rounds
    }
}

/// The ids of `list`, each once, in the order first seen; `list` is left empty. Negentropy can
/// report an id twice when a large difference spans rounds (seen listing 90 000 of 100 000
/// ids: 1 858 repeats), and each repeat would cost the event sent again.
fn once_each(list: &mut Vec<Id>) -> Vec<EventId> {
    let mut seen = std::collections::HashSet::with_capacity(list.len());
    list.drain(..)
        .filter(|id| seen.insert(*id))
        .map(|id| EventId(*id))
        .collect()
}

/// The responding side of one reconciliation session.
pub struct Responder {
    neg: Negentropy<'static, NegentropyStorageVector>,
    rounds: u32,
}

impl Responder {
    /// A responder over `items`.
    pub fn new(items: impl Into<Items>) -> Result<Responder, ReconError> {
        Ok(Responder {
            neg: neg(items.into())?,
            rounds: 0,
        })
    }

    /// Answers one message of the initiator.
    pub fn reply(&mut self, message: &[u8]) -> Result<Vec<u8>, ReconError> {
        self.rounds += 1;
        if self.rounds > MAX_RECON_ROUNDS {
            return Err(ReconError::TooManyRounds);
        }
        self.neg
            .reconcile(message)
            .map_err(|e| ReconError::Protocol(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ids of a set, newest first (by timestamp, then id), each once.
    fn ids_newest_first(items: Items) -> Vec<EventId> {
        let mut storage = items.storage;
        storage.seal().unwrap();
        let size = storage.size().unwrap();
        let mut ids = Vec::with_capacity(size);
        storage
            .iterate(0, size, &mut |item, _| {
                ids.push(EventId(item.id.to_bytes()));
                Ok(true)
            })
            .unwrap();
        ids.reverse();
        ids
    }

    fn items(range: std::ops::Range<u64>) -> Vec<(u64, EventId)> {
        range
            .map(|i| {
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&i.to_be_bytes());
                (1000 + i, EventId(id))
            })
            .collect()
    }

    fn run(a: Vec<(u64, EventId)>, b: Vec<(u64, EventId)>) -> (Vec<EventId>, Vec<EventId>, u32) {
        let (mut init, mut msg) = Initiator::start(a).unwrap();
        let mut resp = Responder::new(b).unwrap();
        loop {
            let reply = resp.reply(&msg).unwrap();
            match init.step(&reply).unwrap() {
                Step::Continue(m) => msg = m,
                Step::Done { have, need } => return (have, need, init.rounds()),
            }
        }
    }

    #[test]
    fn an_empty_node_catches_up_with_a_large_one() {
        // 300 000 ids are 9.6 MB of ids: far more rounds than a small difference needs.
        let (have, need, rounds) = run(Vec::new(), items(0..300_000));
        assert!(have.is_empty());
        assert_eq!(need.len(), 300_000);
        assert!(rounds > 64, "{rounds} rounds");
    }

    #[test]
    fn ids_come_out_newest_first_each_once() {
        let mut list = items(0..50);
        list.reverse();
        list.push(list[3]);
        let mut set = Items::from(list);
        assert!(!set.is_empty());
        let ids = ids_newest_first(std::mem::take(&mut set));
        assert_eq!(ids.len(), 50);
        let ts: Vec<u64> = ids
            .iter()
            .map(|id| u64::from_be_bytes(id.0[..8].try_into().unwrap()))
            .collect();
        assert_eq!(ts, (0..50).rev().collect::<Vec<u64>>());
        assert!(Items::default().is_empty());
        assert!(ids_newest_first(Items::default()).is_empty());
    }

    #[test]
    fn a_span_leaves_the_items_outside_it_out() {
        let mut set = Items::between(1000 + 5, 1000 + 39);
        for (ts, id) in items(0..50).into_iter().rev() {
            set.push(ts, id).unwrap();
        }
        assert_eq!(set.span(), Some((1005, 1039)));
        assert_eq!(set.newest(), Some(1000 + 39));
        let ids = ids_newest_first(set);
        assert_eq!(ids.len(), 35);
        assert_eq!(u64::from_be_bytes(ids[0].0[..8].try_into().unwrap()), 39);
        assert_eq!(u64::from_be_bytes(ids[34].0[..8].try_into().unwrap()), 5);
    }

    #[test]
    fn the_nth_timestamp_counts_from_the_oldest() {
        let mut list = items(0..50);
        list.reverse();
        let set = || Items::from(list.clone());
        assert_eq!(set().nth_timestamp(0).unwrap(), Some(1000));
        assert_eq!(set().nth_timestamp(49).unwrap(), Some(1049));
        assert_eq!(set().nth_timestamp(50).unwrap(), None);
        assert_eq!(Items::default().nth_timestamp(0).unwrap(), None);
    }

    #[test]
    fn a_large_difference_is_reported_once_per_id() {
        let all = items(0..100_000);
        let (have, need, _) = run(all[..10_000].to_vec(), all.clone());
        assert!(have.is_empty());
        let distinct: std::collections::HashSet<_> = need.iter().collect();
        assert_eq!(distinct.len(), 90_000);
        assert_eq!(need.len(), 90_000, "an id reported twice");
    }

    #[test]
    fn finds_both_differences() {
        let mut a = items(0..5000);
        let mut b = items(0..5000);
        a.push(items(9000..9001)[0]);
        b.retain(|(ts, _)| *ts != 1000 + 77);
        b.push(items(7000..7001)[0]);
        let (have, need, _) = run(a, b);
        let mut have_ts: Vec<u64> = have
            .iter()
            .map(|id| u64::from_be_bytes(id.0[..8].try_into().unwrap()))
            .collect();
        have_ts.sort();
        assert_eq!(have_ts, vec![77, 9000]);
        let need_ts: Vec<u64> = need
            .iter()
            .map(|id| u64::from_be_bytes(id.0[..8].try_into().unwrap()))
            .collect();
        assert_eq!(need_ts, vec![7000]);
    }

    #[test]
    fn empty_side_learns_everything() {
        let (have, need, rounds) = run(vec![], items(0..20_000));
        assert!(have.is_empty());
        assert_eq!(need.len(), 20_000);
        assert!(rounds >= 1);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut resp = Responder::new(items(0..10)).unwrap();
        assert!(resp.reply(&[0xff, 0x00, 0x13]).is_err());
        let (mut init, _) = Initiator::start(items(0..10)).unwrap();
        // A wrong protocol version byte is refused.
        assert!(init.step(&[0x62, 0x00]).is_err());
        // Other garbage may or may not parse, but never panics.
        for garbage in [
            &[0x61, 0xff, 0xff, 0xff][..],
            &[0x61],
            &[],
            &[0x61, 0x80, 0x80],
        ] {
            let (mut init, _) = Initiator::start(items(0..10)).unwrap();
            let _ = init.step(garbage);
        }
    }
}
