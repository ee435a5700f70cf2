//! Small numbers for 32-byte keys that many events share: rooms (schema version 5) and
//! authors (version 6). Event rows keep the number (one or two bytes as SQLite stores it)
//! instead of the key; a table of `(n INTEGER PRIMARY KEY, id BLOB UNIQUE)` maps them back.
//! Numbers are given in order of each key's first event and never reused.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction, params};

use crate::error::StoreError;

/// Which table of numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Keys {
    /// `rooms`: room ids.
    Rooms,
    /// `authors`: authors' public keys.
    Authors,
}

impl Keys {
    fn select_all(self) -> &'static str {
        match self {
            Keys::Rooms => "SELECT id, n FROM rooms",
            Keys::Authors => "SELECT id, n FROM authors",
        }
    }

    fn insert(self) -> &'static str {
        match self {
            Keys::Rooms => "INSERT INTO rooms (id) VALUES (?1)",
            Keys::Authors => "INSERT INTO authors (id) VALUES (?1)",
        }
    }
}

/// The numbers of one table as the writer knows them: those committed, and those given
/// inside the transaction at hand, remembered only once it commits.
pub(crate) struct Numbers {
    keys: Keys,
    committed: HashMap<[u8; 32], i64>,
    pending: HashMap<[u8; 32], i64>,
}

impl Numbers {
    /// Every number the table holds.
    pub(crate) fn load(conn: &Connection, keys: Keys) -> Result<Numbers, StoreError> {
        let mut stmt = conn.prepare(keys.select_all())?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?;
        let mut committed = HashMap::new();
        for row in rows {
            let (id, n) = row?;
            if let Ok(id) = <[u8; 32]>::try_from(id.as_slice()) {
                committed.insert(id, n);
            }
        }
        Ok(Numbers {
            keys,
            committed,
            pending: HashMap::new(),
        })
    }

    /// Forgets numbers given in a transaction that did not commit.
    pub(crate) fn begin(&mut self) {
        self.pending.clear();
    }

    /// The number of `key`, given now (inside `tx`) if it has none.
    pub(crate) fn number(&mut self, tx: &Transaction, key: &[u8; 32]) -> Result<i64, StoreError> {
        let known = self.committed.get(key).or_else(|| self.pending.get(key));
        if let Some(n) = known {
            return Ok(*n);
        }
        tx.prepare_cached(self.keys.insert())
            .and_then(|mut stmt| stmt.execute(params![key.as_slice()]))
            .map_err(StoreError::from_sqlite)?;
        let n = tx.last_insert_rowid();
        self.pending.insert(*key, n);
        Ok(n)
    }

    /// Keeps the numbers given in the transaction that just committed.
    pub(crate) fn committed(&mut self) {
        self.committed.extend(self.pending.drain());
    }
}
