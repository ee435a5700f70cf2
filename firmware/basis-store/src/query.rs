//! Read queries: events by id, a room's history page by page, reconciliation ranges, rooms.

use std::fmt;
use std::str::FromStr;

use basis_core::{EventId, RoomId, Timestamp};
use rusqlite::{OptionalExtension, Row, params};

use crate::error::StoreError;
use crate::readers::Readers;
use crate::wire::wire;
use crate::writer::ts_sql;

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event id.
    pub id: EventId,
    /// The room.
    pub room: RoomId,
    /// The author's timestamp.
    pub time: Timestamp,
    /// Local wall clock at arrival, milliseconds since the epoch.
    pub received_at: i64,
    /// The canonical wire bytes.
    pub raw: Vec<u8>,
}

/// A file named by a stored message ([`Readers::blob_refs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobUse {
    /// The message's room.
    pub room: RoomId,
    /// The message.
    pub event: EventId,
    /// The file it names.
    pub blob: basis_core::BlobRef,
}

/// A position in a room's history: page before it with [`Readers::history`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    /// Timestamp of the event at the position.
    pub time: Timestamp,
    /// Id of the event at the position.
    pub id: EventId,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.time.0, self.id)
    }
}

/// Why a cursor string is not valid.
#[derive(Debug, thiserror::Error)]
#[error("a cursor looks like <timestamp>-<64 hex characters>")]
pub struct CursorParseError;

impl FromStr for Cursor {
    type Err = CursorParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (time, id) = s.split_once('-').ok_or(CursorParseError)?;
        Ok(Cursor {
            time: Timestamp(time.parse().map_err(|_| CursorParseError)?),
            id: id.parse().map_err(|_| CursorParseError)?,
        })
    }
}

/// One page of a room's history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The events, newest first.
    pub events: Vec<StoredEvent>,
    /// Where the next (older) page starts; `None` when this page reached the beginning.
    pub older: Option<Cursor>,
}

/// A room as the store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomSummary {
    /// The room.
    pub room: RoomId,
    /// Events held.
    pub events: u64,
    /// Bytes of their encodings.
    pub bytes: u64,
    /// Newest timestamp held.
    pub latest: Timestamp,
}

/// Most events one history page or range may return.
pub const MAX_PAGE: usize = 10_000;

fn blob32<T>(row: &Row, idx: usize, make: fn([u8; 32]) -> T) -> rusqlite::Result<T> {
    let bytes: Vec<u8> = row.get(idx)?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map(make)
        .map_err(|_| {
            rusqlite::Error::InvalidColumnType(
                idx,
                "32-byte id".into(),
                rusqlite::types::Type::Blob,
            )
        })
}

fn stored(row: &Row) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        id: blob32(row, 0, EventId)?,
        room: blob32(row, 1, RoomId)?,
        time: Timestamp(row.get::<_, i64>(2)?.max(0) as u64),
        received_at: row.get(3)?,
        raw: wire(row, 4)?,
    })
}

/// The columns [`stored`] reads, for `concat!`.
macro_rules! columns {
    () => {
        concat!(
            "id, ",
            room_id_of_row!(),
            ", ts, received_at, ",
            wire_of_row!()
        )
    };
}

/// [`columns`] of the row `seq` (?1) if it holds the id ?2.
const BY_ID: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM events WHERE seq = ?1 AND id = ?2"
);

impl Readers {
    /// Runs `read` on the row holding `id`, if any: the id index names the candidate rows
    /// (almost always one), and `sql`, which selects `WHERE seq = ?1 AND id = ?2`, checks the
    /// id in each.
    fn by_id<T>(
        &self,
        c: &rusqlite::Connection,
        sql: &str,
        id: &EventId,
        read: impl Fn(&Row) -> rusqlite::Result<T>,
    ) -> Result<Option<T>, StoreError> {
        let candidates = self.ids.candidates(id);
        if candidates.is_empty() {
            return Ok(None);
        }
        let mut stmt = c.prepare_cached(sql)?;
        for seq in candidates {
            let mut rows = stmt.query(params![seq, id.as_bytes()])?;
            if let Some(row) = rows.next()? {
                return Ok(Some(read(row)?));
            }
        }
        Ok(None)
    }

    /// The event with this id, if held.
    pub fn get(&self, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.with(|c| self.by_id(c, BY_ID, id, stored))
    }

    /// Whether the event with this id is held.
    pub fn contains(&self, id: &EventId) -> Result<bool, StoreError> {
        // A link asks this of every event it receives, and most are new: the in-memory index
        // answers those without taking a connection from the pool.
        if self.ids.candidates(id).is_empty() {
            return Ok(false);
        }
        self.with(|c| {
            let found = self.by_id(
                c,
                "SELECT 1 FROM events WHERE seq = ?1 AND id = ?2",
                id,
                |_| Ok(()),
            )?;
            Ok(found.is_some())
        })
    }

    /// Up to `limit` events of a room, newest first, strictly older than `before` (or the
    /// newest ones when `before` is `None`).
    pub fn history(
        &self,
        room: &RoomId,
        before: Option<Cursor>,
        limit: usize,
    ) -> Result<HistoryPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let (ts, id) = match before {
            Some(c) => (ts_sql(c.time), c.id.0.to_vec()),
            None => (i64::MAX, vec![0xff; 33]),
        };
        let events: Vec<StoredEvent> = self.with(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ",
                columns!(),
                " FROM events WHERE room = ",
                room_number_of_param!(),
                " AND (ts, id) < (?2, ?3) ORDER BY ts DESC, id DESC LIMIT ?4"
            ))?;
            let rows = stmt.query_map(params![room.as_bytes(), ts, id, limit as i64], stored)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })?;
        let older = if events.len() == limit {
            events.last().map(|e| Cursor {
                time: e.time,
                id: e.id,
            })
        } else {
            None
        };
        Ok(HistoryPage { events, older })
    }

    /// `(timestamp, id)` of a room's events in `[from, to)`, ascending, at most `limit`: the
    /// items set reconciliation works on.
    pub fn range(
        &self,
        room: &RoomId,
        from: Cursor,
        to: Cursor,
        limit: usize,
    ) -> Result<Vec<(Timestamp, EventId)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ts, id FROM events WHERE room = ",
                room_number_of_param!(),
                " AND (ts, id) >= (?2, ?3) AND (ts, id) < (?4, ?5) ORDER BY ts, id LIMIT ?6"
            ))?;
            let rows = stmt.query_map(
                params![
                    room.as_bytes(),
                    ts_sql(from.time),
                    from.id.as_bytes(),
                    ts_sql(to.time),
                    to.id.as_bytes(),
                    limit.min(i64::MAX as usize) as i64
                ],
                |r| {
                    Ok((
                        Timestamp(r.get::<_, i64>(0)?.max(0) as u64),
                        blob32(r, 1, EventId)?,
                    ))
                },
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Calls `visit` with `(timestamp, id)` of every event held with a timestamp from `from`
    /// to `to` (both included), ascending: the set federation reconciles, or one slice of it.
    /// Streams from the `events_ts` index, so the caller decides what to keep in memory.
    pub fn for_each_item(
        &self,
        from: u64,
        to: u64,
        mut visit: impl FnMut(u64, EventId),
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT ts, id FROM events WHERE ts BETWEEN ?1 AND ?2 ORDER BY ts, id",
            )?;
            let mut rows = stmt.query(params![ts_sql(Timestamp(from)), ts_sql(Timestamp(to))])?;
            while let Some(row) = rows.next()? {
                visit(
                    row.get::<_, i64>(0)?.max(0) as u64,
                    blob32(row, 1, EventId)?,
                );
            }
            Ok(())
        })
    }

    /// The newest timestamp of the events held (`None` when there is none), from the
    /// `events_ts` index.
    pub fn newest_ts(&self) -> Result<Option<u64>, StoreError> {
        self.with(|c| {
            let newest: Option<i64> =
                c.query_row("SELECT max(ts) FROM events", [], |r| r.get(0))?;
            Ok(newest.map(|t| t.max(0) as u64))
        })
    }

    /// The timestamp of the held event `n` places after the oldest one at or after `from`,
    /// by `(timestamp, id)` (`None` when `n` or fewer are held from `from` on): where a
    /// reconciliation slice of `n` events ends. Walks the `events_ts` index only.
    pub fn nth_ts_from(&self, from: u64, n: usize) -> Result<Option<u64>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT ts FROM events WHERE ts >= ?1 ORDER BY ts LIMIT 1 OFFSET ?2",
            )?;
            let ts: Option<i64> = stmt
                .query_row(
                    params![
                        ts_sql(Timestamp(from)),
                        i64::try_from(n).unwrap_or(i64::MAX)
                    ],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(ts.map(|t| t.max(0) as u64))
        })
    }

    /// Like [`Readers::for_each_item`], for the events of `rooms` only (room by room).
    pub fn for_each_item_in(
        &self,
        rooms: &[RoomId],
        mut visit: impl FnMut(u64, EventId),
    ) -> Result<(), StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ts, id FROM events WHERE room = ",
                room_number_of_param!(),
                " ORDER BY ts, id"
            ))?;
            for room in rooms {
                let mut rows = stmt.query(params![room.as_bytes()])?;
                while let Some(row) = rows.next()? {
                    visit(
                        row.get::<_, i64>(0)?.max(0) as u64,
                        blob32(row, 1, EventId)?,
                    );
                }
            }
            Ok(())
        })
    }

    /// The held events among `ids`, in the order of `ids` (ids not held are left out).
    pub fn get_many(&self, ids: &[EventId]) -> Result<Vec<StoredEvent>, StoreError> {
        self.with(|c| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(self.by_id(c, BY_ID, id, stored)?);
            }
            Ok(out)
        })
    }

    /// The `seq` of the newest event stored (0 for an empty store).
    pub fn last_seq(&self) -> Result<u64, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT coalesce(max(seq), 0) FROM events")?;
            Ok(stmt.query_row([], |r| Ok(r.get::<_, i64>(0)?.max(0) as u64))?)
        })
    }

    /// Events of `room` stored after `seq` (see [`Readers::since`]): how many, and their bytes.
    pub fn room_since(&self, room: &RoomId, seq: u64) -> Result<(u64, u64), StoreError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        self.with(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT count(*), coalesce(sum(",
                wire_len_of_row!(),
                "), 0) FROM events WHERE room = ",
                room_number_of_param!(),
                " AND seq > ?2"
            ))?;
            Ok(stmt.query_row(params![room.as_bytes(), seq], |r| {
                Ok((
                    r.get::<_, i64>(0)?.max(0) as u64,
                    r.get::<_, i64>(1)?.max(0) as u64,
                ))
            })?)
        })
    }

    /// Timestamps of the held events among `ids`, newest first (ids not held are left out).
    pub fn newest_first(&self, ids: &[EventId]) -> Result<Vec<(Timestamp, EventId)>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        self.with(|c| {
            for id in ids {
                let ts = self.by_id(
                    c,
                    "SELECT ts FROM events WHERE seq = ?1 AND id = ?2",
                    id,
                    |r| r.get::<_, i64>(0),
                )?;
                if let Some(ts) = ts {
                    out.push((Timestamp(ts.max(0) as u64), *id));
                }
            }
            Ok(())
        })?;
        out.sort_by(|a, b| b.cmp(a));
        Ok(out)
    }

    /// One page of the events newer than `after` (every event for `None`), newest first by
    /// `(timestamp, id)`: at most `limit` of them, starting below `before` (from the newest
    /// for `None`). Gives `(timestamp, id, wire bytes)`; pass the last one's timestamp and id
    /// as the next page's `before`. A peer catching up is served this way, page by page,
    /// without a list of every id in memory.
    pub fn newer_page(
        &self,
        after: Option<u64>,
        before: Option<(u64, EventId)>,
        limit: usize,
    ) -> Result<Vec<(u64, EventId, Vec<u8>)>, StoreError> {
        let after = after.map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX));
        let (below_ts, below_id) = match before {
            Some((ts, id)) => (i64::try_from(ts).unwrap_or(i64::MAX), id.0),
            None => (i64::MAX, [0xff; 32]),
        };
        self.with(|c| {
            // The range on `ts` lets SQLite walk the `events_ts` index backwards.
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ts, id, ",
                wire_of_row!(),
                " FROM events WHERE ts > ?1 AND ts <= ?2 AND (ts < ?2 OR id < ?3) \
                 ORDER BY ts DESC, id DESC LIMIT ?4",
            ))?;
            let rows = stmt.query_map(
                params![
                    after,
                    below_ts,
                    below_id.as_slice(),
                    limit.min(i64::MAX as usize) as i64
                ],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?.max(0) as u64,
                        blob32(r, 1, EventId)?,
                        wire(r, 2)?,
                    ))
                },
            )?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Wire bytes of the held events among `ids`, in the order of `ids`.
    pub fn raw_many(&self, ids: &[EventId]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.with(|c| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let raw = self.by_id(
                    c,
                    concat!(
                        "SELECT ",
                        wire_of_row!(),
                        " FROM events WHERE seq = ?1 AND id = ?2"
                    ),
                    id,
                    |r| wire(r, 0),
                )?;
                out.extend(raw);
            }
            Ok(out)
        })
    }

    /// Peers this node was linked with, most recently seen first: `(node id, address)`.
    pub fn known_peers(&self, limit: usize) -> Result<Vec<([u8; 32], String)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT node, addr FROM known_peers ORDER BY last_seen DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map(params![limit.min(i64::MAX as usize) as i64], |r| {
                Ok((blob32(r, 0, |b| b)?, r.get::<_, String>(1)?))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Every room with its counts, most recently active first.
    pub fn rooms(&self) -> Result<Vec<RoomSummary>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT rooms.id, count(*), sum(",
                wire_len_of_row!(),
                "), max(ts) FROM events JOIN rooms ON rooms.n = events.room \
                 GROUP BY events.room ORDER BY max(ts) DESC",
            ))?;
            let rows = stmt.query_map([], |r| {
                Ok(RoomSummary {
                    room: blob32(r, 0, RoomId)?,
                    events: r.get::<_, i64>(1)?.max(0) as u64,
                    bytes: r.get::<_, i64>(2)?.max(0) as u64,
                    latest: Timestamp(r.get::<_, i64>(3)?.max(0) as u64),
                })
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Up to `limit` events stored after `after` (a `seq` from [`crate::Store::committed`] or
    /// from an earlier call), in arrival order, each with its `seq`: a feed of new events.
    pub fn since(&self, after: u64, limit: usize) -> Result<Vec<(u64, StoredEvent)>, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE) as i64;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.with(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT seq, ",
                columns!(),
                " FROM events WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![after, limit], |r| {
                let seq = r.get::<_, i64>(0)?.max(0) as u64;
                Ok((
                    seq,
                    StoredEvent {
                        id: blob32(r, 1, EventId)?,
                        room: blob32(r, 2, RoomId)?,
                        time: Timestamp(r.get::<_, i64>(3)?.max(0) as u64),
                        received_at: r.get(4)?,
                        raw: wire(r, 5)?,
                    },
                ))
            })?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Wire bytes of the events that define rooms and users (create, membership, settings and
    /// profile events), of one room or of all, in arrival order. Read from a small index.
    pub fn state_events(&self, room: Option<&RoomId>) -> Result<Vec<Vec<u8>>, StoreError> {
        self.with(|c| {
            // The kind list must match the partial index `events_state` exactly to use it.
            let mut stmt = match room {
                Some(_) => c.prepare_cached(concat!(
                    "SELECT ",
                    wire_of_row!(),
                    " FROM events WHERE room = ",
                    room_number_of_param!(),
                    " AND kind IN ",
                    state_kinds!(),
                    " ORDER BY seq"
                ))?,
                None => c.prepare_cached(concat!(
                    "SELECT ",
                    wire_of_row!(),
                    " FROM events WHERE kind IN ",
                    state_kinds!(),
                    " ORDER BY seq"
                ))?,
            };
            let raw = |r: &Row| wire(r, 0);
            let rows: Vec<Vec<u8>> = match room {
                Some(room) => stmt
                    .query_map(params![room.as_bytes()], raw)?
                    .collect::<Result<_, _>>()?,
                None => stmt.query_map([], raw)?.collect::<Result<_, _>>()?,
            };
            Ok(rows)
        })
    }

    /// The files named by message events still held (`Attachment`, `EncryptedAttachment`):
    /// room, the message's id and the file's reference, in arrival order. What the blob store
    /// keeps ([`crate::BlobStore::retain`]) and an eager room replicates. Scans the message
    /// events, so the node calls it once per expiry run, not per request.
    pub fn blob_refs(&self) -> Result<Vec<BlobUse>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ",
                wire_of_row!(),
                " FROM events WHERE kind = 4 ORDER BY seq"
            ))?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let raw = wire(row, 0)?;
                // Stored events were validated; one that no longer decodes is skipped.
                let Ok(event) = basis_core::encoding::decode_event(&raw) else {
                    continue;
                };
                if let (basis_core::Body::Message(m), Some(room)) =
                    (&event.content.body, event.content.room)
                    && let Some(blob) = m.blob()
                {
                    out.push(BlobUse {
                        room,
                        event: event.id(),
                        blob: *blob,
                    });
                }
            }
            Ok(out)
        })
    }

    /// Wire bytes of the room-defining events (as [`Readers::state_events`]) stored with a
    /// `seq` in `(after, upto]`, in arrival order: how a room index catches up.
    pub fn state_since(&self, after: u64, upto: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let sql = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.with(|c| {
            let mut stmt = c.prepare_cached(concat!(
                "SELECT ",
                wire_of_row!(),
                " FROM events WHERE seq > ?1 AND seq <= ?2 AND kind IN ",
                state_kinds!(),
                " ORDER BY seq"
            ))?;
            let rows = stmt.query_map(params![sql(after), sql(upto)], |r| wire(r, 0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
    }

    /// Runs SQLite's `PRAGMA integrity_check`; returns the problems found (empty when ok).
    pub fn integrity_check(&self) -> Result<Vec<String>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("PRAGMA integrity_check")?;
            let lines: Vec<String> = stmt
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(lines.into_iter().filter(|l| l != "ok").collect())
        })
    }
}
