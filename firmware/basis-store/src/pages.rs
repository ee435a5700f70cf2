//! Moving a store made with larger pages to [`PAGE_SIZE`] pages, once, when it is opened.
//!
//! SQLite fixes a database's page size when it creates the file, and a database in WAL mode
//! cannot change it in place. So a store made before pages were [`PAGE_SIZE`] bytes is
//! copied with `VACUUM INTO` to a file beside it (`<name>.pages`), the copy is checked (page
//! size, integrity, every event there), and only then does it replace the original by a
//! rename. A power cut at any moment leaves either the original or the checked copy in place,
//! never a mix: the original's log is folded into it and removed before the rename, so no log
//! can pair with the copy, and a copy left behind by a cut is deleted at the next open.
//!
//! Without room for the copy the store keeps its pages (it works the same, writing more to
//! the card) and the move is tried again at the next start.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;
use crate::open::{PAGE_SIZE, UPGRADE_MARGIN_MIB, database_bytes, free_bytes};

const MIB: u64 = 1024 * 1024;

/// Where the copy is made: beside the database, on the same file system.
fn copy_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pages");
    PathBuf::from(name)
}

/// Removes a copy (and its log files) left by a move that did not finish.
fn remove_copy(copy: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = copy.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// Free space a move of a database of `db` bytes needs: one copy, and a margin.
fn room_to_move(db: u64) -> u64 {
    db + UPGRADE_MARGIN_MIB * MIB
}

/// What [`to_small_pages`] did.
pub(crate) enum PageMove {
    /// The store keeps its pages (they were [`PAGE_SIZE`] already, or there was no room to
    /// move them, which is logged): its connection, as it was given.
    Kept(Connection),
    /// The store at the path now has [`PAGE_SIZE`] pages; the connection given was closed.
    Moved,
}

/// Moves the store at `path` to [`PAGE_SIZE`] pages if it has others and there is room.
/// `conn` must be the only connection to `path`.
pub(crate) fn to_small_pages(conn: Connection, path: &Path) -> Result<PageMove, StoreError> {
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    if size == PAGE_SIZE {
        return Ok(PageMove::Kept(conn));
    }
    // A cut during an earlier move leaves the original with its pages, and maybe a copy.
    let copy = copy_path(path);
    remove_copy(&copy);
    let bytes = database_bytes(path);
    let need = room_to_move(bytes);
    if let Some(free) = free_bytes(path)
        && free < need
    {
        log::warn!(
            "store: {} keeps its {size}-byte pages for now: moving it to {PAGE_SIZE}-byte \
             pages, which write about a third less to the card for each message, needs \
             {} MiB free and there are {} MiB; it is tried again at the next start",
            path.display(),
            need.div_ceil(MIB),
            free / MIB
        );
        return Ok(PageMove::Kept(conn));
    }
    log::info!(
        "store: moving {} ({:.1} MiB) once from {size}-byte to {PAGE_SIZE}-byte pages, \
         which write about a third less to the card for each message; nothing is lost",
        path.display(),
        bytes as f64 / MIB as f64
    );
    if let Err(e) = make_checked_copy(&conn, &copy) {
        remove_copy(&copy);
        log::warn!(
            "store: {} keeps its {size}-byte pages for now: the copy with smaller pages \
             failed ({e}); the store is untouched and the move is tried again at the next start",
            path.display()
        );
        return Ok(PageMove::Kept(conn));
    }
    replace_with_copy(conn, path, &copy).map_err(|reason| {
        remove_copy(&copy);
        StoreError::PagesNotMoved {
            path: path.to_path_buf(),
            reason,
        }
    })?;
    Ok(PageMove::Moved)
}

/// Copies the store behind `conn` to `copy` with [`PAGE_SIZE`] pages, on disk, and checks
/// the copy: its page size, SQLite's integrity check, and as many events as the original.
fn make_checked_copy(conn: &Connection, copy: &Path) -> Result<(), StoreError> {
    let events: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    conn.pragma_update(None, "page_size", PAGE_SIZE)?;
    let target = copy
        .to_str()
        .ok_or_else(|| StoreError::Migration(format!("{} is not UTF-8", copy.display())))?;
    conn.execute("VACUUM INTO ?1", [target])?;
    let check = Connection::open_with_flags(copy, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    let size: i64 = check.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let integrity: String = check.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    let copied: i64 = check.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
    if size != PAGE_SIZE || integrity != "ok" || copied != events {
        return Err(StoreError::Migration(format!(
            "the copy has {size}-byte pages, integrity \"{integrity}\", {copied} of {events} events"
        )));
    }
    // The store runs in WAL mode; the header records it.
    let mode: String = check.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Migration(format!(
            "the copy could not switch to WAL (got {mode})"
        )));
    }
    check.close().map_err(|(_, e)| StoreError::Sqlite(e))?;
    std::fs::File::open(copy)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Migration(format!("syncing the copy: {e}")))?;
    Ok(())
}

/// Folds the original's log into it and removes the log, closes it, and renames the checked
/// copy over it, then makes the rename durable.
fn replace_with_copy(conn: Connection, path: &Path, copy: &Path) -> Result<(), String> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .map_err(|e| format!("leaving WAL mode: {e}"))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(format!("leaving WAL mode gave {mode}"));
    }
    conn.close()
        .map_err(|(_, e)| format!("closing the original: {e}"))?;
    std::fs::rename(copy, path).map_err(|e| format!("renaming the copy: {e}"))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("syncing {}: {e}", dir.display()))?;
    }
    Ok(())
}
