//! An offline health check of a database file, safe while a node is running on it.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;
use crate::open::inspect;
use crate::schema::APPLICATION_ID;

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

/// Opens the database read-only (never creating or migrating it) and runs SQLite's
/// `PRAGMA integrity_check`, then counts events and rooms.
pub fn check(path: &Path) -> Result<CheckReport, StoreError> {
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
    let corrupt = |e: rusqlite::Error| StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let (app_id, schema_version) = inspect(&conn, path)?;
    if app_id != APPLICATION_ID {
        return Err(StoreError::NotBasis {
            path: path.to_path_buf(),
            found: app_id,
        });
    }
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
