//! Opening a store: refuse foreign or newer databases untouched, migrate, start the writer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;
use crate::ids::IdIndex;
use crate::pages::PageMove;
use crate::readers::Readers;
use crate::schema::{APPLICATION_ID, SCHEMA_VERSION, migrations};
use crate::writer::{StoreStats, Writer, WriterHandle};

/// Tuning of a store (from the node's `[store]` configuration).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// SQLite page cache per connection, in MiB.
    pub cache_mib: u32,
    /// Number of reader connections.
    pub readers: usize,
    /// Most events committed in one transaction.
    pub write_batch: usize,
    /// Insert requests waiting for the writer before callers wait.
    pub write_queue: usize,
    /// Least time between the starts of two commits while writes keep coming: under load the
    /// writer waits out the rest of it to gather more events into one commit (fewer, larger
    /// writes to the card; at most this much added latency). Zero commits at once.
    pub commit_gap: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_mib: 2,
            readers: 2,
            write_batch: 256,
            write_queue: 1024,
            commit_gap: std::time::Duration::from_millis(2),
        }
    }
}

/// Bytes in a page of a new database. Every commit writes each page it touches to the log
/// (the table's last leaf and one leaf of each index, at least), so the page is the unit of a
/// commit's fixed cost: 2 KiB pages write about a third less than SQLite's 4 KiB for a lone
/// message, and a seventh less at 60 events a commit. Smaller pages hold the ~400-byte rows
/// less tightly (1 KiB pages: a fifth more bytes kept). Measured in `docs/BENCHMARKS.md`.
pub const PAGE_SIZE: i64 = 2048;

/// An open store: the writer thread and the reader connections.
pub struct Store {
    path: PathBuf,
    writer: Writer,
    readers: Arc<Readers>,
}

pub(crate) fn configure(conn: &Connection, cache_mib: u32) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "cache_size", -(i64::from(cache_mib) * 1024))?;
    Ok(())
}

/// The writer's connection to the database at `path`, made if missing.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    Ok(Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?)
}

/// Reads the application id and schema version without writing anything.
pub(crate) fn inspect(conn: &Connection, path: &Path) -> Result<(i64, i64), StoreError> {
    let read = |pragma: &str| -> Result<i64, StoreError> {
        conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::NotADatabase)
                | Some(rusqlite::ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                },
                _ => StoreError::Sqlite(e),
            })
    };
    Ok((read("application_id")?, read("user_version")?))
}

/// The newest schema version whose migration copies the whole events table (versions 4, 5
/// and 6 do): a database older than it is rewritten once when opened.
const REWRITES_EVENTS: i64 = 6;

/// Room kept free beyond the copy and its log, MiB.
pub(crate) const UPGRADE_MARGIN_MIB: u64 = 16;

/// The database's bytes on disk, with its write-ahead log.
pub(crate) fn database_bytes(path: &Path) -> u64 {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    size(path) + size(Path::new(&wal))
}

/// Free bytes for this process on the file system holding `path` (`None`: unknown).
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether an upgrade that rewrites the events table fits: the copy and a log as large as it
/// are written before the old table goes, so a database of `db` bytes needs about twice that
/// free, and a margin. An unknown amount of free space lets the upgrade try (SQLite rolls
/// back a migration that runs out of room, and nothing is lost).
fn room_to_rewrite(path: &Path, db: u64, free: Option<u64>) -> Result<(), StoreError> {
    const MIB: u64 = 1024 * 1024;
    let need = db.saturating_mul(2) + UPGRADE_MARGIN_MIB * MIB;
    match free {
        Some(free) if free < need => Err(StoreError::UpgradeNeedsSpace {
            path: path.to_path_buf(),
            need_mib: need.div_ceil(MIB),
            free_mib: free / MIB,
        }),
        _ => Ok(()),
    }
}

impl Store {
    /// Opens (or creates) the database at `path`. A database of another program, a damaged file
    /// or one written by a newer schema is refused with a clear error and left untouched.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let mut conn = connect(path)?;
        let (app_id, version) = inspect(&conn, path)?;
        // A file with a foreign application id, or none but a schema version, belongs to
        // some other program.
        if (app_id != 0 && app_id != APPLICATION_ID) || (app_id == 0 && version != 0) {
            return Err(StoreError::NotBasis {
                path: path.to_path_buf(),
                found: app_id,
            });
        }
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        // A new database gets pages of PAGE_SIZE (SQLite fixes the size when it first writes
        // the file); a store made with other pages is moved to them below.
        let new = app_id == 0 && version == 0;
        if new {
            conn.pragma_update(None, "page_size", PAGE_SIZE)?;
        }
        // WAL: readers never block the writer. synchronous=FULL: a commit is on disk when it
        // returns, which is what "acknowledged" promises.
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Migration(format!(
                "cannot switch to WAL journal mode (got {mode})"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        configure(&conn, options.cache_mib)?;
        if version > 0 && version < REWRITES_EVENTS {
            let bytes = database_bytes(path);
            room_to_rewrite(path, bytes, free_bytes(path))?;
            log::info!(
                "store: upgrading {} from schema version {version} to {SCHEMA_VERSION}: \
                 rewriting {:.1} MiB of events once, nothing is lost",
                path.display(),
                bytes as f64 / (1024.0 * 1024.0)
            );
        }
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        // After the migrations, so that the copy also drops the space a rewrite left free.
        if !new {
            conn = match crate::pages::to_small_pages(conn, path)? {
                PageMove::Kept(conn) => conn,
                PageMove::Moved => {
                    let conn = connect(path)?;
                    conn.pragma_update(None, "synchronous", "FULL")?;
                    configure(&conn, options.cache_mib)?;
                    conn
                }
            };
        }
        let stats = Arc::new(StoreStats::load(&conn)?);
        let held = stats.events.load(std::sync::atomic::Ordering::Relaxed);
        let ids = Arc::new(IdIndex::load(&conn, usize::try_from(held).unwrap_or(0))?);
        let writer = Writer::start(conn, options, stats, ids.clone())?;
        let readers = Arc::new(Readers::open(path, options, ids)?);
        Ok(Store {
            path: path.to_path_buf(),
            writer,
            readers,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle to send events and expiry runs to the writer; cheap to clone.
    pub fn writer(&self) -> WriterHandle {
        self.writer.handle()
    }

    /// The reader connections, shareable with tasks.
    pub fn readers(&self) -> Arc<Readers> {
        self.readers.clone()
    }

    /// The highest event `seq` committed so far; changes after each commit that stored a new
    /// event. Wait on it to follow new events (then read them with [`Readers::since`]).
    pub fn committed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writer.committed()
    }

    /// The highest `seq` of a committed event that defines a room or a user (create,
    /// membership, settings, profile: what [`Readers::state_since`] gives); changes only
    /// after a commit that stored one, so a follower of room state is not woken by messages.
    /// A commit publishes it before [`Store::committed`]: once `committed` reads `n`, this
    /// covers every room-defining event up to `n`.
    pub fn state_committed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.writer.state_committed()
    }

    /// Live counters kept by the writer.
    pub fn stats(&self) -> Arc<StoreStats> {
        self.writer.stats()
    }

    /// Flushes everything queued, checkpoints the log into the database and closes it.
    /// Blocking: from async code, call it inside `tokio::task::spawn_blocking`.
    pub fn close(self) -> Result<(), StoreError> {
        drop(self.readers);
        self.writer.shutdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upgrade_that_rewrites_the_table_needs_twice_the_database_free() {
        let path = Path::new("/data/basis.db");
        let mib = 1024 * 1024;
        assert!(room_to_rewrite(path, 100 * mib, Some(300 * mib)).is_ok());
        assert!(room_to_rewrite(path, 100 * mib, None).is_ok());
        let err = room_to_rewrite(path, 100 * mib, Some(150 * mib)).unwrap_err();
        assert_eq!(err.code(), "upgrade_needs_space");
        let text = err.to_string();
        assert!(
            text.contains("needs about 216 MiB free") && text.contains("150 MiB are free"),
            "{text}"
        );
        assert!(text.contains("left untouched"), "{text}");
    }
}
