//! An offline health check of a database file, safe while a node is running on it.

use std::path::Path;

use basis_core::encoding::decode_event;
use basis_core::room::RoomState;
use basis_core::{Event, RoomId, Timestamp};
use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;
use crate::open::inspect;
use crate::schema::APPLICATION_ID;
use crate::wire::wire;

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// Problems reported by SQLite's integrity check (empty when the file is sound).
    pub problems: Vec<String>,
    /// Events held.
    pub events: u64,
    /// Rooms with at least one event held.
    pub rooms: u64,
    /// Schema version of the file.
    pub schema_version: i64,
}

/// Opens the database read-only (never creating or migrating it), refusing a file that is
/// not a Basis store.
fn open_read_only(path: &Path) -> Result<(Connection, i64), StoreError> {
    if !path.exists() {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "no such file".into(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let (app_id, schema_version) = inspect(&conn, path)?;
    if app_id != APPLICATION_ID {
        return Err(StoreError::NotBasis {
            path: path.to_path_buf(),
            found: app_id,
        });
    }
    Ok((conn, schema_version))
}

/// Opens the database read-only (never creating or migrating it) and runs SQLite's
/// `PRAGMA integrity_check`, then counts events and rooms.
pub fn check(path: &Path) -> Result<CheckReport, StoreError> {
    let (conn, schema_version) = open_read_only(path)?;
    let corrupt = |e: rusqlite::Error| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let problems: Vec<String> = {
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let lines = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(corrupt)?;
        lines.into_iter().filter(|l| l != "ok").collect()
    };
    let (events, rooms) = if problems.is_empty() {
        conn.query_row(
            "SELECT count(*), (SELECT count(DISTINCT room) FROM events) FROM events",
            [],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?.max(0) as u64,
                    r.get::<_, i64>(1)?.max(0) as u64,
                ))
            },
        )?
    } else {
        (0, 0)
    };
    Ok(CheckReport {
        problems,
        events,
        rooms,
        schema_version,
    })
}

/// One room the store holds, as `basis store rooms` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomListing {
    /// The room.
    pub room: RoomId,
    /// Its current name (from its creation and later settings; empty when unnamed or when
    /// the store does not hold its creation).
    pub name: String,
    /// Events held.
    pub events: u64,
    /// Bytes of their encodings.
    pub bytes: u64,
    /// Newest timestamp held.
    pub newest: Timestamp,
}

/// Every room the database holds, most recently active first; opened read-only, so safe
/// while a node runs on it.
pub fn list_rooms(path: &Path) -> Result<Vec<RoomListing>, StoreError> {
    let (conn, _) = open_read_only(path)?;
    let mut stmt = conn.prepare(concat!(
        "SELECT rooms.id, count(*), sum(",
        wire_len_of_row!(),
        "), max(ts) FROM events JOIN rooms ON rooms.n = events.room \
         GROUP BY events.room ORDER BY max(ts) DESC, rooms.id",
    ))?;
    let counts = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?.max(0) as u64,
                r.get::<_, i64>(2)?.max(0) as u64,
                r.get::<_, i64>(3)?.max(0) as u64,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // Only creations and settings name a room (kinds 0 and 2, in the state index).
    let mut names = conn.prepare(concat!(
        "SELECT ",
        wire_of_row!(),
        " FROM events WHERE room = ",
        room_number_of_param!(),
        " AND kind IN ",
        state_kinds!(),
        " ORDER BY seq"
    ))?;
    let mut out = Vec::with_capacity(counts.len());
    for (room, events, bytes, newest) in counts {
        let Ok(room) = <[u8; 32]>::try_from(room.as_slice()).map(RoomId) else {
            continue;
        };
        let state: Vec<Event> = names
            .query_map([room.as_bytes()], |r| wire(r, 0))?
            .filter_map(|raw| decode_event(&raw.ok()?).ok())
            .collect();
        out.push(RoomListing {
            room,
            name: RoomState::from_events(&state).name,
            events,
            bytes,
            newest: Timestamp(newest),
        });
    }
    Ok(out)
}
