//! Which row holds an event id: an index kept in memory, not in the database.
//!
//! Event ids are SHA-256 hashes, so an index on them in the database put every new event on a
//! random page: each commit dirtied about one page of that index per event, written to the
//! log and again by the checkpoint (29 times an event's size on ingest, docs/BENCHMARKS.md).
//! This index lives in memory instead: built at open from the database and kept by the writer
//! after each commit and each expiry. It is derived data and never the truth: duplicates are
//! refused by the database's UNIQUE `(room, ts, id)` index (an id hashes its event's room and
//! time, so that is the same rule as a unique id), and every lookup checks the full id in the
//! row it names, so two ids that share the bits kept here only cost a second row read.
//!
//! Layout, 8 bytes an event: the first 12 bits of an id choose one of 4 096 buckets, and a
//! bucket is a sorted list of (the id's next 32 bits, the row's `seq` as 32 bits). Ids are
//! uniform hashes, so the buckets fill evenly (244 entries each at a million events) and an
//! insertion moves a few kilobytes at most. Many small lists, never one large one, means the
//! index never reallocates a block of its whole size, which left holes in the heap as large
//! as the index itself while a node caught up. A `seq` beyond 32 bits (four billion rows
//! ever stored) goes to a list of full-width entries instead.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use basis_core::EventId;
use rusqlite::Connection;

use crate::error::StoreError;

/// Bits of the key that choose a bucket.
const BUCKET_BITS: u32 = 12;
/// Number of buckets.
const BUCKETS: usize = 1 << BUCKET_BITS;

/// The first 8 bytes of an id, the key of the index (ids are uniform hashes).
pub(crate) fn key(id: &EventId) -> u64 {
    key_of(id.as_bytes())
}

/// [`key`] of an id read from a row (a shorter blob, which the schema never holds, gives 0).
pub(crate) fn key_of(id: &[u8]) -> u64 {
    let mut k = [0u8; 8];
    if let Some(prefix) = id.get(..8) {
        k.copy_from_slice(prefix);
    }
    u64::from_be_bytes(k)
}

/// Where an entry `(key, seq)` lives.
enum Place {
    /// In this bucket, as (the key's bits 12 to 43, the seq).
    Bucket(usize, (u32, u32)),
    /// In the full-width list: its seq does not fit in 32 bits.
    Wide((u64, i64)),
}

/// A key's bucket and the 32 bits of it the bucket keeps (the key's bits 12 to 43).
fn split(k: u64) -> (usize, u32) {
    (
        (k >> (64 - BUCKET_BITS)) as usize,
        (k >> (32 - BUCKET_BITS)) as u32,
    )
}

fn place((k, seq): (u64, i64)) -> Place {
    match u32::try_from(seq) {
        Ok(seq) => {
            let (b, bits) = split(k);
            Place::Bucket(b, (bits, seq))
        }
        Err(_) => Place::Wide((k, seq)),
    }
}

/// The seqs of the entries of the sorted `list` whose key is `k`.
fn seqs_of<K: Ord + Copy, S: Copy>(list: &[(K, S)], k: K) -> impl Iterator<Item = S> + '_ {
    let start = list.partition_point(|&(x, _)| x < k);
    list[start..]
        .iter()
        .take_while(move |&&(x, _)| x == k)
        .map(|&(_, seq)| seq)
}

/// Inserts `x` into the sorted `list`, growing it by an eighth when full: the lists are
/// small, so copying is cheap, and the spare room stays near 6 % instead of a doubling's 25 %
/// on average.
fn insert_sorted<T: Ord>(list: &mut Vec<T>, x: T) {
    let at = list.partition_point(|e| *e < x);
    if list.len() == list.capacity() {
        list.reserve_exact(list.len() / 8 + 4);
    }
    list.insert(at, x);
}

/// Removes `x` from the sorted `list`, if it is there.
fn remove_sorted<T: Ord>(list: &mut Vec<T>, x: &T) {
    if let Ok(at) = list.binary_search(x) {
        list.remove(at);
    }
}

/// The buckets and the full-width entries.
struct Tables {
    /// `BUCKETS` sorted lists of `(key bits, seq)`.
    buckets: Vec<Vec<(u32, u32)>>,
    /// Sorted `(key, seq)` entries whose `seq` does not fit in 32 bits.
    wide: Vec<(u64, i64)>,
}

impl Tables {
    fn new(per_bucket: usize) -> Tables {
        Tables {
            buckets: (0..BUCKETS)
                .map(|_| Vec::with_capacity(per_bucket))
                .collect(),
            wide: Vec::new(),
        }
    }

    fn insert(&mut self, entry: (u64, i64)) {
        match place(entry) {
            Place::Bucket(b, x) => insert_sorted(&mut self.buckets[b], x),
            Place::Wide(x) => insert_sorted(&mut self.wide, x),
        }
    }

    fn remove(&mut self, entry: (u64, i64)) {
        match place(entry) {
            Place::Bucket(b, x) => remove_sorted(&mut self.buckets[b], &x),
            Place::Wide(x) => remove_sorted(&mut self.wide, &x),
        }
    }
}

/// The id index shared by the writer and the readers.
pub(crate) struct IdIndex {
    tables: RwLock<Tables>,
}

impl Default for IdIndex {
    fn default() -> Self {
        IdIndex {
            tables: RwLock::new(Tables::new(0)),
        }
    }
}

impl IdIndex {
    /// Builds the index from every event held (`expected`: how many, to size it once).
    pub(crate) fn load(conn: &Connection, expected: usize) -> Result<IdIndex, StoreError> {
        // Room for what is held and a sixteenth more, so that the first events added after
        // opening do not make every bucket grow at once.
        let per_bucket = if expected == 0 {
            0
        } else {
            let n = expected / BUCKETS;
            n + n / 16 + 4
        };
        let mut tables = Tables::new(per_bucket);
        {
            let mut stmt = conn.prepare("SELECT seq, id FROM events")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let id = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                // Pushed unsorted, each list sorted once below.
                match place((key_of(id), row.get(0)?)) {
                    Place::Bucket(b, x) => tables.buckets[b].push(x),
                    Place::Wide(x) => tables.wide.push(x),
                }
            }
        }
        for list in &mut tables.buckets {
            list.sort_unstable();
        }
        tables.wide.sort_unstable();
        Ok(IdIndex {
            tables: RwLock::new(tables),
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, Tables> {
        self.tables.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tables> {
        self.tables.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The `seq`s that may hold `id` (almost always none or one); the caller checks the id
    /// in the row.
    pub(crate) fn candidates(&self, id: &EventId) -> Vec<i64> {
        let k = key(id);
        let (b, bits) = split(k);
        let t = self.read();
        seqs_of(&t.buckets[b], bits)
            .map(i64::from)
            .chain(seqs_of(&t.wide, k))
            .collect()
    }

    /// Records committed rows, as `(key, seq)`.
    pub(crate) fn add(&self, entries: &[(u64, i64)]) {
        if entries.is_empty() {
            return;
        }
        let mut t = self.write();
        for &e in entries {
            t.insert(e);
        }
    }

    /// Forgets deleted rows, given as `(key, seq)`.
    pub(crate) fn remove(&self, entries: &[(u64, i64)]) {
        if entries.is_empty() {
            return;
        }
        let mut t = self.write();
        for &e in entries {
            t.remove(e);
        }
    }

    /// Entries held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let t = self.read();
        t.buckets.iter().map(Vec::len).sum::<usize>() + t.wide.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> EventId {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&n.to_be_bytes());
        b[31] = 1;
        EventId(b)
    }

    #[test]
    fn adds_finds_and_removes() {
        let index = IdIndex::default();
        // Keys spread over every bucket, added in batches in no order.
        let entries: Vec<(u64, i64)> = (0..(3 * BUCKETS as u64 + 17))
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15), i as i64 + 1))
            .collect();
        for chunk in entries.chunks(31) {
            index.add(chunk);
        }
        assert_eq!(index.len(), entries.len());
        for &(k, seq) in entries.iter().step_by(97) {
            assert_eq!(index.candidates(&id(k)), vec![seq]);
        }
        // Two ids sharing a key both come back.
        index.add(&[(entries[5].0, 999_999)]);
        let mut both = index.candidates(&id(entries[5].0));
        both.sort_unstable();
        assert_eq!(both, vec![entries[5].1, 999_999]);
        index.remove(&[entries[5], entries[7], (entries[9].0, 12_345)]);
        assert_eq!(index.candidates(&id(entries[5].0)), vec![999_999]);
        assert!(index.candidates(&id(entries[7].0)).is_empty());
        // Removing a pair that is not there leaves the real one.
        assert_eq!(index.candidates(&id(entries[9].0)), vec![entries[9].1]);
        assert_eq!(index.len(), entries.len() - 1);
    }

    #[test]
    fn ids_alike_in_the_kept_bits_are_both_candidates() {
        // Same first 44 bits, different after: the index cannot tell them apart, so both
        // rows are offered and the caller's check of the full id decides.
        let (a, b) = (0xABCD_EF01_2340_0000_u64, 0xABCD_EF01_234F_FFFF_u64);
        let index = IdIndex::default();
        index.add(&[(a, 1), (b, 2)]);
        assert_eq!(index.candidates(&id(a)), vec![1, 2]);
        // A key that differs within the kept bits is not offered.
        assert!(index.candidates(&id(a ^ (1 << 30))).is_empty());
    }

    #[test]
    fn a_seq_beyond_32_bits_is_kept_whole() {
        let index = IdIndex::default();
        let big = i64::from(u32::MAX) + 5;
        index.add(&[(42, big), (42, 7)]);
        assert_eq!(index.candidates(&id(42)), vec![7, big]);
        index.remove(&[(42, big)]);
        assert_eq!(index.candidates(&id(42)), vec![7]);
        assert_eq!(index.len(), 1);
    }
}
