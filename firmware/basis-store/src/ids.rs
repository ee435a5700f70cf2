//! Which row holds an event id: an index kept in memory, not in the database.
//!
//! Event ids are SHA-256 hashes, so an index on them in the database put every new event on a
//! random page: each commit dirtied about one page of that index per event, written to the
//! log and again by the checkpoint (29 times an event's size on ingest, docs/BENCHMARKS.md).
//! This index lives in memory instead: built at open from the database (a scan of the narrow
//! `(room, ts, id)` index) and kept by the writer after each commit and each expiry, 16 bytes
//! an event. It is derived data and never the truth: duplicates are refused by the database's
//! UNIQUE `(room, ts, id)` index (an id hashes its event's room and time, so that is the same
//! rule as a unique id), and every lookup checks the full id in the row it names.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use basis_core::EventId;
use rusqlite::Connection;

use crate::error::StoreError;

/// Entries added since the last merge before they are folded into the large sorted table.
const RECENT_MAX: usize = 4096;

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

/// `(key, seq)` pairs, sorted: a large table and a small one of recent additions.
#[derive(Default)]
struct Tables {
    main: Vec<(u64, i64)>,
    recent: Vec<(u64, i64)>,
}

fn matching(sorted: &[(u64, i64)], k: u64, out: &mut Vec<i64>) {
    let start = sorted.partition_point(|&(x, _)| x < k);
    out.extend(
        sorted[start..]
            .iter()
            .take_while(|&&(x, _)| x == k)
            .map(|&(_, seq)| seq),
    );
}

/// Merges `recent` (sorted) into `main` (sorted) in place, from the back.
fn merge_into(main: &mut Vec<(u64, i64)>, recent: &mut Vec<(u64, i64)>) {
    let old = main.len();
    main.reserve_exact(recent.len());
    main.resize(old + recent.len(), (0, 0));
    let (mut i, mut j, mut w) = (old, recent.len(), main.len());
    while j > 0 {
        if i > 0 && main[i - 1] > recent[j - 1] {
            main[w - 1] = main[i - 1];
            i -= 1;
        } else {
            main[w - 1] = recent[j - 1];
            j -= 1;
        }
        w -= 1;
    }
    recent.clear();
}

/// The id index shared by the writer and the readers.
#[derive(Default)]
pub(crate) struct IdIndex {
    tables: RwLock<Tables>,
}

impl IdIndex {
    /// Builds the index from every event held (`expected`: how many, to size it once).
    pub(crate) fn load(conn: &Connection, expected: usize) -> Result<IdIndex, StoreError> {
        let mut main: Vec<(u64, i64)> = Vec::with_capacity(expected);
        {
            let mut stmt = conn.prepare("SELECT seq, id FROM events")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let id = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
                main.push((key_of(id), row.get(0)?));
            }
        }
        main.sort_unstable();
        main.shrink_to_fit();
        Ok(IdIndex {
            tables: RwLock::new(Tables {
                main,
                recent: Vec::new(),
            }),
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
        let t = self.read();
        let mut out = Vec::new();
        matching(&t.main, k, &mut out);
        matching(&t.recent, k, &mut out);
        out
    }

    /// Records committed rows.
    pub(crate) fn add(&self, entries: &[(u64, i64)]) {
        if entries.is_empty() {
            return;
        }
        let mut t = self.write();
        t.recent.extend_from_slice(entries);
        t.recent.sort_unstable();
        if t.recent.len() >= RECENT_MAX {
            let Tables { main, recent } = &mut *t;
            merge_into(main, recent);
        }
    }

    /// Forgets deleted rows.
    pub(crate) fn remove(&self, entries: &mut [(u64, i64)]) {
        if entries.is_empty() {
            return;
        }
        entries.sort_unstable();
        let gone = |e: &(u64, i64)| entries.binary_search(e).is_err();
        let mut t = self.write();
        t.main.retain(gone);
        t.recent.retain(gone);
    }

    /// Entries held (for tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let t = self.read();
        t.main.len() + t.recent.len()
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
    fn adds_merges_finds_and_removes() {
        let index = IdIndex::default();
        // Enough additions, in no order, to go through several merges.
        let entries: Vec<(u64, i64)> = (0..(3 * RECENT_MAX as u64 + 17))
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
        let mut gone = vec![entries[5], entries[7], (entries[9].0, 12_345)];
        index.remove(&mut gone);
        assert_eq!(index.candidates(&id(entries[5].0)), vec![999_999]);
        assert!(index.candidates(&id(entries[7].0)).is_empty());
        // Removing a pair that is not there leaves the real one.
        assert_eq!(index.candidates(&id(entries[9].0)), vec![entries[9].1]);
        assert_eq!(index.len(), entries.len() - 1);
    }

    #[test]
    fn merging_keeps_order() {
        let mut main = vec![(1, 1), (5, 5), (9, 9)];
        let mut recent = vec![(0, 0), (5, 4), (6, 6), (10, 10)];
        merge_into(&mut main, &mut recent);
        assert_eq!(
            main,
            vec![(0, 0), (1, 1), (5, 4), (5, 5), (6, 6), (9, 9), (10, 10)]
        );
        assert!(recent.is_empty());
    }
}
