//! The schema and its migrations.
//!
//! `events` is append-only (rows are inserted, later deleted by expiry, never updated), with
//! `seq` as the rowid so new rows go to the end of the table's b-tree: few pages touched per
//! commit, which is kind to SD cards.

use rusqlite_migration::{M, Migrations};

/// `PRAGMA application_id` of a Basis database ("BSIS").
pub const APPLICATION_ID: i64 = 0x4253_4953;

/// Newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 3;

const V1: &str = "
PRAGMA application_id = 1112754515;
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,   -- local arrival order
    id          BLOB NOT NULL UNIQUE,  -- SHA-256 of raw
    room        BLOB NOT NULL,         -- room id (own id for a create event)
    author      BLOB NOT NULL,         -- author public key
    kind        INTEGER NOT NULL,      -- body variant index
    ts          INTEGER NOT NULL,      -- hybrid logical clock of the author
    received_at INTEGER NOT NULL,      -- local wall clock at arrival, ms
    raw         BLOB NOT NULL          -- canonical wire bytes
) STRICT;
-- History paging (newest first) and reconciliation ranges, per room.
CREATE INDEX events_room_ts_id ON events(room, ts, id);
-- Expiry by age and by quota, oldest first across rooms.
CREATE INDEX events_ts ON events(ts);
";

/// Version 2: peers this node was linked with, so that it can dial them again after a restart
/// even where mDNS does not reach. One row per peer, rewritten only when a link is admitted.
const V2: &str = "
CREATE TABLE known_peers (
    node      BLOB PRIMARY KEY,        -- node id
    addr      TEXT NOT NULL,           -- last address it was linked at
    last_seen INTEGER NOT NULL         -- wall clock, ms
) STRICT;
";

/// Version 3: a small partial index over the events that define rooms and users (create,
/// membership, settings, profile), so room state is read without scanning messages.
const V3: &str = "
CREATE INDEX events_state ON events(room, seq) WHERE kind IN (0, 1, 2, 6);
";

/// The migrations, oldest first. Append; never edit one that has shipped.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(V1), M::up(V2), M::up(V3)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid_and_match_the_version() {
        assert!(migrations().validate().is_ok());
        assert_eq!(APPLICATION_ID, 1_112_754_515);
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrations().to_latest(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
    }
}
