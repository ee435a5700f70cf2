//! Store errors.

use std::path::PathBuf;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the file system's quota) is full: nothing of the failed batch was stored.
    #[error("the disk is full: nothing of this batch was stored; free space or lower the quota")]
    DiskFull,
    /// The database was written by a newer version of Basis; it was left untouched.
    #[error(
        "{path} was written by a newer Basis (schema version {found}, this build knows up to {known}); it was left untouched: run a newer basis or move the file away"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Schema version found in the file.
        found: i64,
        /// Newest schema version this build knows.
        known: i64,
    },
    /// The file is an SQLite database of some other program.
    #[error("{path} is not a Basis database (application id {found:#x}); it was left untouched")]
    NotBasis {
        /// The database file.
        path: PathBuf,
        /// The application id found.
        found: i64,
    },
    /// The file is not an SQLite database at all, or is damaged.
    #[error("{path} is not a readable SQLite database: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        reason: String,
    },
    /// A schema migration failed.
    #[error("schema migration failed: {0}")]
    Migration(String),
    /// Moving the store to smaller pages failed after its copy was made and checked; the
    /// original is in place, whole.
    #[error(
        "moving {path} to smaller pages failed after its copy was checked ({reason}); the store is whole and in place: start again"
    )]
    PagesNotMoved {
        /// The database file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// Upgrading the database rewrites it once, and its disk has too little room for that; it
    /// was left untouched.
    #[error(
        "upgrading {path} to this version of Basis rewrites it once and needs about {need_mib} MiB free on its disk, but {free_mib} MiB are free; it was left untouched: free space (or move the data directory to a larger disk) and start again"
    )]
    UpgradeNeedsSpace {
        /// The database file.
        path: PathBuf,
        /// Free space the upgrade needs, MiB.
        need_mib: u64,
        /// Free space there is, MiB.
        free_mib: u64,
    },
    /// Writing a batch failed for a reason other than a full disk; nothing of it was stored.
    #[error("writing to the database failed, nothing of this batch was stored: {0}")]
    WriteFailed(String),
    /// The writer has stopped (the store is closing or closed).
    #[error("the store is closed")]
    Closed,
    /// Any other SQLite error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Starting a thread failed.
    #[error("cannot start the writer thread: {0}")]
    Thread(std::io::Error),
}

impl StoreError {
    /// A stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::DiskFull => "disk_full",
            StoreError::NewerSchema { .. } => "newer_schema",
            StoreError::NotBasis { .. } => "not_basis",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Migration(_) => "migration",
            StoreError::PagesNotMoved { .. } => "pages_not_moved",
            StoreError::UpgradeNeedsSpace { .. } => "upgrade_needs_space",
            StoreError::WriteFailed(_) => "write_failed",
            StoreError::Closed => "closed",
            StoreError::Sqlite(_) => "database",
            StoreError::Thread(_) => "thread",
        }
    }

    /// Maps SQLite's "disk full" to [`StoreError::DiskFull`], everything else unchanged.
    pub(crate) fn from_sqlite(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => StoreError::DiskFull,
            _ => StoreError::Sqlite(e),
        }
    }
}
