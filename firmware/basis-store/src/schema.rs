//! The schema and its migrations.
//!
//! `events` is append-only (rows are inserted, later deleted by expiry, never updated), with
//! `seq` as the rowid so new rows go to the end of the table's b-tree: few pages touched per
//! commit, which is kind to SD cards.

use basis_core::RoomId;
use basis_core::compact::compact;
use basis_core::encoding::decode_event;
use rusqlite::{Transaction, params};
use rusqlite_migration::{HookError, HookResult, M, Migrations};

use crate::error::StoreError;
use crate::numbers::{Keys, Numbers};

/// `PRAGMA application_id` of a Basis database ("BSIS").
pub const APPLICATION_ID: i64 = 0x4253_4953;

/// Newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 6;

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

/// The kinds `events_state` holds (`Body::kind_code`): create, membership, settings,
/// profile, as the writer tests them; readers name them in SQL with `state_kinds!`. The
/// writer publishes the newest of these separately (`Store::state_committed`).
pub(crate) const STATE_KINDS: [u8; 4] = [0, 1, 2, 6];

/// Version 4: writes for SD cards. The UNIQUE constraint on `id` kept an index keyed by a
/// SHA-256, so every new event landed on a random page of it: each commit dirtied about one
/// page per event, written to the log and again by the checkpoint. Here the table is rebuilt
/// without it (SQLite cannot drop a column constraint), and the rule moves to the
/// `(room, ts, id)` index, now UNIQUE: an id hashes its event's room and time, so two rows
/// with one id have the same room and time, and the rule is the same. That index grows at its
/// end as events arrive in roughly increasing time, like the table (`seq`) and `events_ts`.
/// Lookups by id go through an index kept in memory (`ids.rs`). The `author` column, written
/// and never read (the author is in `raw`), goes too: 33 bytes less per event.
/// Every event is kept, with its `seq`.
const V4: &str = "
CREATE TABLE events_v4 (
    seq         INTEGER PRIMARY KEY,   -- local arrival order
    id          BLOB NOT NULL,         -- SHA-256 of raw; unique through events_room_ts_id
    room        BLOB NOT NULL,         -- room id (own id for a create event)
    kind        INTEGER NOT NULL,      -- body variant index
    ts          INTEGER NOT NULL,      -- hybrid logical clock of the author
    received_at INTEGER NOT NULL,      -- local wall clock at arrival, ms
    raw         BLOB NOT NULL          -- canonical wire bytes
) STRICT;
INSERT INTO events_v4 (seq, id, room, kind, ts, received_at, raw)
    SELECT seq, id, room, kind, ts, received_at, raw FROM events ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;
-- History paging, reconciliation ranges, and the one-row-per-event rule.
CREATE UNIQUE INDEX events_room_ts_id ON events(room, ts, id);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_state ON events(room, seq) WHERE kind IN (0, 1, 2, 6);
";

/// Version 5: rooms as small numbers. Every event row and every entry of the
/// `(room, ts, id)` index held the room's 32-byte id: about 62 of the 570 bytes an event
/// took, each written twice (the log, then the checkpoint). The ids move to `rooms`, one
/// row per room, and events keep the room's number (`n`, one or two bytes as SQLite stores
/// it). Numbers are given in order of each room's first event and never reused; a room
/// whose events all expired keeps its row (a few dozen bytes). The table is rebuilt, every
/// event kept with its `seq`.
const V5: &str = "
CREATE TABLE rooms (
    n           INTEGER PRIMARY KEY,   -- the number events store
    id          BLOB NOT NULL UNIQUE   -- room id
) STRICT;
INSERT INTO rooms (id) SELECT room FROM events GROUP BY room ORDER BY min(seq);
CREATE TABLE events_v5 (
    seq         INTEGER PRIMARY KEY,   -- local arrival order
    id          BLOB NOT NULL,         -- SHA-256 of raw; unique through events_room_ts_id
    room        INTEGER NOT NULL,      -- rooms.n (own id for a create event)
    kind        INTEGER NOT NULL,      -- body variant index
    ts          INTEGER NOT NULL,      -- hybrid logical clock of the author
    received_at INTEGER NOT NULL,      -- local wall clock at arrival, ms
    raw         BLOB NOT NULL          -- canonical wire bytes
) STRICT;
INSERT INTO events_v5 (seq, id, room, kind, ts, received_at, raw)
    SELECT seq, events.id, rooms.n, kind, ts, received_at, raw
    FROM events JOIN rooms ON rooms.id = events.room ORDER BY seq;
DROP TABLE events;
ALTER TABLE events_v5 RENAME TO events;
CREATE UNIQUE INDEX events_room_ts_id ON events(room, ts, id);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_state ON events(room, seq) WHERE kind IN (0, 1, 2, 6);
";

/// Version 6: events kept without their room and author keys. A message's wire bytes carry
/// its room's 32-byte id and its author's 32-byte key; the row already names the room by
/// number, and now names the author by number too (`authors`, numbered like `rooms`), so
/// `raw` keeps the wire bytes without those 64 bytes (`basis_core::compact`; a create event
/// names no room and loses only its author's 32). About 64 of the 490 bytes an event took,
/// each written twice. `author` is NULL where `raw` holds the whole wire bytes: an event this
/// build could not take apart, which readers then give as it is. The table is rebuilt in
/// arrival order by [`compact_events`], every event kept with its `seq`.
const V6: &str = "
CREATE TABLE authors (
    n           INTEGER PRIMARY KEY,   -- the number events store
    id          BLOB NOT NULL UNIQUE   -- the author's public key
) STRICT;
CREATE TABLE events_v6 (
    seq         INTEGER PRIMARY KEY,   -- local arrival order
    id          BLOB NOT NULL,         -- SHA-256 of the wire bytes; unique through events_room_ts_id
    room        INTEGER NOT NULL,      -- rooms.n (own id for a create event)
    author      INTEGER,               -- authors.n; NULL when raw is the whole wire bytes
    kind        INTEGER NOT NULL,      -- body variant index
    ts          INTEGER NOT NULL,      -- hybrid logical clock of the author
    received_at INTEGER NOT NULL,      -- local wall clock at arrival, ms
    raw         BLOB NOT NULL          -- wire bytes without room and author (or whole, above)
) STRICT;
";

/// The end of version 6, once [`compact_events`] has filled `events_v6`.
const V6_SWAP: &str = "
DROP TABLE events;
ALTER TABLE events_v6 RENAME TO events;
CREATE UNIQUE INDEX events_room_ts_id ON events(room, ts, id);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_state ON events(room, seq) WHERE kind IN (0, 1, 2, 6);
";

/// Copies every event into `events_v6` in arrival order, compacted (see [`V6`]), numbering
/// authors as it meets them, then puts the new table in the old one's place.
fn compact_events(tx: &Transaction) -> HookResult {
    let hook_error = |e: StoreError| HookError::Hook(e.to_string());
    let mut authors = Numbers::load(tx, Keys::Authors).map_err(hook_error)?;
    let mut read = tx.prepare(
        "SELECT seq, events.id, room, rooms.id, kind, ts, received_at, raw
         FROM events JOIN rooms ON rooms.n = events.room ORDER BY seq",
    )?;
    let mut write = tx.prepare(
        "INSERT INTO events_v6 (seq, id, room, author, kind, ts, received_at, raw)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    let mut rows = read.query([])?;
    while let Some(row) = rows.next()? {
        let raw: Vec<u8> = row.get(7)?;
        let room = RoomId::from_slice(&row.get::<_, Vec<u8>>(3)?);
        // Every stored event was validated when it came; one that no longer decodes is
        // kept whole rather than dropped.
        let author = decode_event(&raw).ok().map(|ev| ev.content.author);
        let small = room
            .zip(author)
            .and_then(|(room, author)| Some((author, compact(&raw, &room, &author)?)));
        let (author_n, kept) = match small {
            Some((author, small)) => {
                let n = authors.number(tx, author.as_bytes()).map_err(hook_error)?;
                (Some(n), small)
            }
            None => (None, raw),
        };
        write.execute(params![
            row.get::<_, i64>(0)?,
            row.get::<_, Vec<u8>>(1)?,
            row.get::<_, i64>(2)?,
            author_n,
            row.get::<_, i64>(4)?,
            row.get::<_, i64>(5)?,
            row.get::<_, i64>(6)?,
            kept,
        ])?;
    }
    // The statements reading and writing the tables must be gone before the swap drops one.
    drop(rows);
    drop((read, write));
    tx.execute_batch(V6_SWAP)?;
    Ok(())
}

/// The migrations, oldest first. Append; never edit one that has shipped.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(V1),
        M::up(V2),
        M::up(V3),
        M::up(V4),
        M::up(V5),
        M::up_with_hook(V6, compact_events),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Store, StoreOptions};
    use basis_core::body::{Body, History, MessageBody, RoomCreate};
    use basis_core::validate::{ValidEvent, validate_event};
    use basis_core::{EventContent, PROTOCOL_VERSION, RoomId, Timestamp, UserKey};

    fn signed(room: Option<RoomId>, millis: u64, body: Body) -> ValidEvent {
        let key = UserKey::from_secret([9; 32]);
        let content = EventContent {
            version: PROTOCOL_VERSION,
            room,
            author: key.id(),
            parents: vec![],
            time: Timestamp::new(millis, 0),
            body,
        };
        validate_event(content.sign(&key)).unwrap()
    }

    /// A database exactly as schema `version` left it, holding `events` written the way that
    /// version wrote them (in the given order, `received_at` 1000 + position).
    fn database_at(path: &std::path::Path, version: usize, events: &[ValidEvent]) {
        let mut conn = rusqlite::Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        let all = [V1, V2, V3, V4, V5];
        assert!(
            version <= all.len(),
            "version {version} is made by the store itself"
        );
        Migrations::new(all[..version].iter().map(|sql| M::up(sql)).collect())
            .to_latest(&mut conn)
            .unwrap();
        for (n, ev) in events.iter().enumerate() {
            let c = &ev.event().content;
            let (id, room, kind) = (ev.id(), ev.room(), c.body.kind_code());
            let (ts, received, raw) = (c.time.0 as i64, 1000 + n as i64, ev.bytes());
            if version < 4 {
                conn.execute(
                    "INSERT INTO events (id, room, author, kind, ts, received_at, raw)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    rusqlite::params![
                        id.as_bytes(),
                        room.as_bytes(),
                        c.author.as_bytes(),
                        kind,
                        ts,
                        received,
                        raw
                    ],
                )
                .unwrap();
            } else if version == 4 {
                conn.execute(
                    "INSERT INTO events (id, room, kind, ts, received_at, raw)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    rusqlite::params![id.as_bytes(), room.as_bytes(), kind, ts, received, raw],
                )
                .unwrap();
            } else {
                conn.execute(
                    "INSERT OR IGNORE INTO rooms (id) VALUES (?1)",
                    [room.as_bytes()],
                )
                .unwrap();
                conn.execute(
                    "INSERT INTO events (id, room, kind, ts, received_at, raw)
                     VALUES (?1, (SELECT n FROM rooms WHERE id = ?2), ?3, ?4, ?5, ?6)",
                    rusqlite::params![id.as_bytes(), room.as_bytes(), kind, ts, received, raw],
                )
                .unwrap();
            }
        }
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, version as i64);
    }

    #[test]
    fn an_old_database_holding_events_migrates_in_place_and_keeps_them() {
        for version in [1, 3, 4, 5] {
            old_database_migrates(version);
        }
    }

    fn old_database_migrates(version: usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("basis.db");
        let t0 = 1_700_000_000_000u64;
        let create_room = |name: &str| {
            signed(
                None,
                t0,
                Body::Create(RoomCreate {
                    name: name.into(),
                    encrypted: false,
                    history: History::SinceJoin,
                }),
            )
        };
        let (create, other) = (create_room("old"), create_room("other"));
        let room = create.room();
        let mut events = vec![create, other.clone()];
        // Stored out of time order, as a node that caught up newest first holds them, and
        // two rooms interleaved.
        for i in (0..300u64).rev() {
            let text = format!("message {i}");
            let body = Body::Message(MessageBody::Text { text });
            let in_room = if i % 3 == 0 { other.room() } else { room };
            events.push(signed(Some(in_room), t0 + 1 + i, body));
        }
        database_at(&path, version, &events);
        let store = Store::open(&path, &StoreOptions::default()).unwrap();
        let readers = store.readers();
        assert_eq!(readers.ids.len(), events.len());
        for ev in &events {
            let got = readers.get(&ev.id()).unwrap().unwrap();
            assert_eq!(got.raw, ev.bytes());
            assert_eq!(got.time, ev.event().content.time);
        }
        // Every event kept its `seq` (arrival order), and its arrival time.
        let since = readers.since(0, 1000).unwrap();
        let seqs: Vec<u64> = since.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
        let ids: Vec<_> = since.iter().map(|(_, e)| e.id).collect();
        assert_eq!(ids, events.iter().map(|e| e.id()).collect::<Vec<_>>());
        assert_eq!(since[7].1.received_at, 1007);
        assert!(
            since
                .iter()
                .zip(&events)
                .all(|((_, s), e)| s.room == e.room())
        );
        // History still pages newest first.
        let page = readers.history(&room, None, 5).unwrap();
        let newest: Vec<_> = page.events.iter().map(|e| e.id).collect();
        let expected: Vec<_> = events[2..]
            .iter()
            .filter(|e| e.room() == room)
            .take(5)
            .map(|e| e.id())
            .collect();
        assert_eq!(newest, expected);
        assert!(page.events.iter().all(|e| e.room == room));
        // Each room keeps its events, counted apart.
        let mut rooms: Vec<(RoomId, u64)> = readers
            .rooms()
            .unwrap()
            .iter()
            .map(|r| (r.room, r.events))
            .collect();
        rooms.sort();
        let mut expected = vec![(room, 201), (other.room(), 101)];
        expected.sort();
        assert_eq!(rooms, expected);
        // ... and their size on the wire, whatever the rows keep.
        for summary in readers.rooms().unwrap() {
            let wire: u64 = events
                .iter()
                .filter(|e| e.room() == summary.room)
                .map(|e| e.bytes().len() as u64)
                .sum();
            assert_eq!(summary.bytes, wire);
        }
        // The one-row-per-event rule holds after the migration: offering them again adds
        // nothing, and a new event is stored after the old ones.
        let again = store.writer().insert_blocking(events.clone()).unwrap();
        assert!(again.iter().all(|i| !i.new));
        let body = Body::Message(MessageBody::Text { text: "new".into() });
        let fresh = signed(Some(room), t0 + 10_000, body);
        let stored = store.writer().insert_blocking(vec![fresh.clone()]).unwrap();
        assert!(stored[0].new);
        assert_eq!(readers.last_seq().unwrap(), events.len() as u64 + 1);
        assert!(readers.integrity_check().unwrap().is_empty());
        store.close().unwrap();

        let conn = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        // No index keyed by the id alone is left.
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexes, ["events_room_ts_id", "events_state", "events_ts"]);
        // The kinds the writer publishes as room state are the ones `events_state` holds.
        let state_sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE name = 'events_state'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let kinds = format!("({})", STATE_KINDS.map(|k| k.to_string()).join(", "));
        assert!(
            state_sql.ends_with(&format!("WHERE kind IN {kinds}")),
            "{state_sql}"
        );
        assert_eq!(kinds, state_kinds!(), "the readers' list");
        // Rows hold a room's number, and `rooms` its id.
        let numbers: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE typeof(room) = 'integer'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(numbers, events.len() as i64 + 1);
        let known: i64 = conn
            .query_row("SELECT count(*) FROM rooms", [], |r| r.get(0))
            .unwrap();
        assert_eq!(known, 2);
        // Rows name their author by number (one author here), and keep the wire bytes
        // without the room and author keys: 64 bytes less a message, 32 a create event.
        let (named, authors): (i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM events WHERE typeof(author) = 'integer'),
                        (SELECT count(*) FROM authors)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((named, authors), (events.len() as i64 + 1, 1));
        let kept: i64 = conn
            .query_row("SELECT sum(length(raw)) FROM events", [], |r| r.get(0))
            .unwrap();
        let wire: usize = events.iter().chain([&fresh]).map(|e| e.bytes().len()).sum();
        assert_eq!(kept as usize, wire - 64 * (events.len() - 1) - 2 * 32);
    }

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
