//! Reader connections: a small pool, so queries never wait for the writer (WAL).

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::{Connection, OpenFlags};

use crate::error::StoreError;
use crate::ids::IdIndex;
use crate::open::{StoreOptions, configure};

/// A pool of read-only connections.
pub struct Readers {
    idle: Mutex<Vec<Connection>>,
    freed: Condvar,
    /// Which row holds which id (shared with the writer).
    pub(crate) ids: Arc<IdIndex>,
}

impl Readers {
    pub(crate) fn open(
        path: &Path,
        options: &StoreOptions,
        ids: Arc<IdIndex>,
    ) -> Result<Readers, StoreError> {
        let mut idle = Vec::with_capacity(options.readers.max(1));
        for _ in 0..options.readers.max(1) {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            configure(&conn, options.cache_mib)?;
            idle.push(conn);
        }
        Ok(Readers {
            idle: Mutex::new(idle),
            freed: Condvar::new(),
            ids,
        })
    }

    /// Runs `f` on a free reader connection, waiting for one if all are busy. Blocking: call
    /// it from a blocking thread, not an async task.
    pub fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(conn) = idle.pop() {
                    break conn;
                }
                idle = self.freed.wait(idle).unwrap_or_else(|p| p.into_inner());
            }
        };
        let result = f(&conn);
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        self.freed.notify_one();
        result
    }
}
