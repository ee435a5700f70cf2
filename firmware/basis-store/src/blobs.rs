//! The blob store: file chunks beside the event database, one file per chunk.
//!
//! Layout under the store's directory (`<data dir>/blobs` in the node):
//!
//! - `lists/<address>`: a file's chunk list (`docs/PROTOCOL.md` §9.2), named by the file's
//!   content address in hex, kept only after it hashed to that address;
//! - `chunks/<first two hex digits>/<sha256>`: one ciphertext chunk, named by its SHA-256,
//!   kept only after it matched the hash its list gives for its place;
//! - `tmp/`: files being written. Each chunk or list is written there, fsynced, renamed to
//!   its name (and, for a list, the directory fsynced), so after a power cut a name holds
//!   either nothing or the complete, verified bytes (a chunk whose rename was lost is just
//!   fetched again); whatever is left in `tmp/` is deleted when the store opens.
//!
//! **Why files and not SQLite rows.** Chunks are large (256 KiB) and written once. In SQLite
//! (WAL mode) each page is written to the WAL and again at the checkpoint, and freed pages
//! stay in the database until a vacuum rewrites it: about twice the bytes per byte received,
//! on SD cards that wear by the byte. A file written once and renamed costs the bytes plus a
//! little metadata (goal: ≤ 1.1 bytes written per byte received), is freed at once on delete,
//! and keeps the event database small and its writer free for messages.
//!
//! **Partial files** are simply the chunks held so far; they stay for a later resume and
//! count in the quota like complete ones. **Quota**: a chunk that would take the bytes held
//! past the quota is refused with [`BlobError::QuotaFull`] before anything is written, and a
//! full disk gives [`BlobError::DiskFull`]; neither leaves anything behind, and the transfer
//! resumes once there is room. **Retention**: a file's chunks live as long as a message that
//! names them; [`BlobStore::retain`] removes every file no live message names (the node calls
//! it after each expiry run with [`crate::Readers::blob_refs`]), so chunks expire with their
//! message (files written within a grace period stay: an upload is stored before its
//! message), and [`BlobStore::remove`] drops one sooner (a lazy room's file fetched for a
//! client and no longer wanted).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use basis_core::file::chunk_hash;
use basis_core::{BlobRef, ChunkList, FileError};

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// Storing this would take the blob store past its quota; nothing was written.
    #[error(
        "the file store is full ({used} of {quota} bytes used, {needed} more needed); nothing was written, the transfer resumes when room is freed"
    )]
    QuotaFull {
        /// Bytes held now.
        used: u64,
        /// The quota.
        quota: u64,
        /// Bytes the refused write needed.
        needed: u64,
    },
    /// The disk is full; nothing was kept of the failed write.
    #[error(
        "the disk is full; nothing was kept of this chunk, the transfer resumes when space is freed"
    )]
    DiskFull,
    /// The bytes are not what their name or place says (a bad chunk or list from a peer).
    #[error("refused: {0}")]
    Invalid(#[from] FileError),
    /// The file's chunk list is not held, so its chunks cannot be checked.
    #[error("the chunk list of this file is not held")]
    NoList,
    /// Any other input/output error.
    #[error("blob store i/o at {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

impl BlobError {
    /// A stable machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            BlobError::QuotaFull { .. } => "quota_full",
            BlobError::DiskFull => "disk_full",
            BlobError::Invalid(_) => "invalid",
            BlobError::NoList => "no_list",
            BlobError::Io { .. } => "io",
        }
    }

    fn io(path: &Path, source: io::Error) -> BlobError {
        // ENOSPC and EDQUOT: the disk (or the user's share of it) is full.
        if matches!(source.raw_os_error(), Some(28) | Some(122))
            || source.kind() == io::ErrorKind::StorageFull
        {
            return BlobError::DiskFull;
        }
        BlobError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How much of a file this node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobStatus {
    /// Not even its chunk list.
    Absent,
    /// Its list and `have` of its `of` chunks (possibly none): resumable.
    Partial {
        /// Chunks held.
        have: u64,
        /// Chunks the file has.
        of: u64,
    },
    /// Every chunk.
    Complete,
}

/// What [`BlobStore::put_chunk`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The chunk was verified and stored.
    Stored,
    /// The chunk was already held; nothing was written.
    AlreadyHeld,
}

/// What [`BlobStore::open`] found and cleaned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Leftover files of interrupted writes, deleted.
    pub leftovers_removed: u64,
    /// Bytes held (lists and chunks).
    pub used_bytes: u64,
}

/// Counters of a blob store.
#[derive(Debug, Default)]
pub struct BlobStats {
    /// Chunks stored since the store opened.
    pub chunks_stored: AtomicU64,
    /// Bytes of chunks stored since the store opened.
    pub bytes_stored: AtomicU64,
    /// Chunks and lists refused because their bytes did not match.
    pub refused: AtomicU64,
}

/// File chunks on disk, with a byte quota. Every method takes `&self`; writes of different
/// chunks may run at the same time (each goes through its own temporary file).
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    quota: Option<u64>,
    used: AtomicU64,
    /// Serialises the quota check and the accounting of a write.
    reserve: Mutex<()>,
    next_tmp: AtomicU64,
    stats: BlobStats,
}

/// Lowercase hex of 32 bytes.
fn hex32(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn fsync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| BlobError::io(dir, e))
}

impl BlobStore {
    /// Opens (creating if needed) the blob store in `dir` with an optional byte quota,
    /// deleting what interrupted writes left and counting what is held.
    pub fn open(dir: &Path, quota: Option<u64>) -> Result<(BlobStore, OpenReport), BlobError> {
        for sub in ["lists", "chunks", "tmp"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(|e| BlobError::io(&d, e))?;
        }
        let mut report = OpenReport::default();
        let tmp = dir.join("tmp");
        for entry in fs::read_dir(&tmp).map_err(|e| BlobError::io(&tmp, e))? {
            let path = entry.map_err(|e| BlobError::io(&tmp, e))?.path();
            fs::remove_file(&path).map_err(|e| BlobError::io(&path, e))?;
            report.leftovers_removed += 1;
        }
        report.used_bytes = dir_bytes(&dir.join("lists"))? + dir_bytes(&dir.join("chunks"))?;
        let store = BlobStore {
            dir: dir.to_path_buf(),
            quota,
            used: AtomicU64::new(report.used_bytes),
            reserve: Mutex::new(()),
            next_tmp: AtomicU64::new(0),
            stats: BlobStats::default(),
        };
        Ok((store, report))
    }

    /// Bytes held (chunk lists and chunks, complete files and partial ones).
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The quota, if any.
    pub fn quota(&self) -> Option<u64> {
        self.quota
    }

    /// Counters since the store opened.
    pub fn stats(&self) -> &BlobStats {
        &self.stats
    }

    fn list_path(&self, address: &[u8; 32]) -> PathBuf {
        self.dir.join("lists").join(hex32(address))
    }

    fn chunk_path(&self, hash: &[u8; 32]) -> PathBuf {
        let name = hex32(hash);
        self.dir.join("chunks").join(&name[..2]).join(name)
    }

    /// Writes `bytes` to `dest` so that `dest` never holds anything but all of them: through
    /// a fsynced temporary file and a rename (then the directory fsynced too when `sync_dir`),
    /// after reserving the bytes in the quota.
    fn write_atomically(&self, dest: &Path, bytes: &[u8], sync_dir: bool) -> Result<(), BlobError> {
        let len = bytes.len() as u64;
        {
            let _guard = self.reserve.lock().unwrap_or_else(|p| p.into_inner());
            let used = self.used.load(Ordering::Relaxed);
            if let Some(quota) = self.quota
                && used.saturating_add(len) > quota
            {
                return Err(BlobError::QuotaFull {
                    used,
                    quota,
                    needed: len,
                });
            }
            self.used.fetch_add(len, Ordering::Relaxed);
        }
        let result = self.write_through_tmp(dest, bytes, sync_dir);
        if result.is_err() {
            self.used.fetch_sub(len, Ordering::Relaxed);
        }
        result
    }

    fn write_through_tmp(
        &self,
        dest: &Path,
        bytes: &[u8],
        sync_dir: bool,
    ) -> Result<(), BlobError> {
        let n = self.next_tmp.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .dir
            .join("tmp")
            .join(format!("{}-{n}", std::process::id()));
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(BlobError::io(&tmp, e));
        }
        let parent = dest.parent().unwrap_or(&self.dir);
        let placed = fs::create_dir_all(parent).and_then(|()| fs::rename(&tmp, dest));
        if let Err(e) = placed {
            let _ = fs::remove_file(&tmp);
            return Err(BlobError::io(dest, e));
        }
        if sync_dir {
            fsync_dir(parent)?;
        }
        Ok(())
    }

    /// Stores the chunk list of `blob` after checking it hashes to `blob`'s address and
    /// agrees with its layout. Returns the list.
    pub fn put_list(&self, blob: &BlobRef, bytes: &[u8]) -> Result<ChunkList, BlobError> {
        let list = ChunkList::for_blob(bytes, blob).inspect_err(|_| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
        })?;
        let path = self.list_path(&blob.address);
        if !path.exists() {
            self.write_atomically(&path, bytes, true)?;
        }
        Ok(list)
    }

    /// The chunk list of the file at `address`, if held (and still intact).
    pub fn list(&self, address: &[u8; 32]) -> Result<Option<ChunkList>, BlobError> {
        let path = self.list_path(address);
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        match ChunkList::from_bytes(&bytes) {
            Ok(list) if list.address() == *address => Ok(Some(list)),
            // Damaged on disk: dropped, so it is fetched again.
            _ => {
                self.delete(&path)?;
                Ok(None)
            }
        }
    }

    /// The encoded chunk list of the file at `address`, to send to a peer.
    pub fn list_bytes(&self, address: &[u8; 32]) -> Result<Option<Vec<u8>>, BlobError> {
        Ok(self.list(address)?.map(|l| l.to_bytes()))
    }

    /// Verifies chunk `index` of `list` and stores it. A chunk whose length or hash does not
    /// match is refused ([`BlobError::Invalid`]) and nothing is written.
    pub fn put_chunk(&self, list: &ChunkList, index: u64, bytes: &[u8]) -> Result<Put, BlobError> {
        list.verify_chunk(index, bytes).inspect_err(|_| {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
        })?;
        let path = self.chunk_path(&chunk_hash(bytes));
        if path.exists() {
            return Ok(Put::AlreadyHeld);
        }
        // No directory fsync for a chunk: a rename a power cut loses only means the chunk is
        // fetched again (its bytes were fsynced before the rename, so its name never points
        // at a part of them). It halves the syncs per chunk on an SD card.
        self.write_atomically(&path, bytes, false)?;
        self.stats.chunks_stored.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_stored
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(Put::Stored)
    }

    /// Chunk `index` of `list`, checked again against its hash (a chunk damaged on disk is
    /// deleted and reported absent, so it is fetched again).
    pub fn chunk(&self, list: &ChunkList, index: u64) -> Result<Option<Vec<u8>>, BlobError> {
        let hash = usize::try_from(index)
            .ok()
            .and_then(|i| list.hashes.get(i))
            .ok_or(FileError::NoSuchChunk {
                index,
                count: list.hashes.len() as u64,
            })?;
        let path = self.chunk_path(hash);
        let Some(bytes) = read_if_exists(&path)? else {
            return Ok(None);
        };
        if list.verify_chunk(index, &bytes).is_err() {
            self.delete(&path)?;
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Whether chunk `index` of `list` is held (by name; [`BlobStore::chunk`] checks bytes).
    pub fn has_chunk(&self, list: &ChunkList, index: u64) -> bool {
        usize::try_from(index)
            .ok()
            .and_then(|i| list.hashes.get(i))
            .is_some_and(|h| self.chunk_path(h).exists())
    }

    /// Indices of the chunks of `list` not held, in order.
    pub fn missing(&self, list: &ChunkList) -> Vec<u64> {
        (0..list.hashes.len() as u64)
            .filter(|&i| !self.has_chunk(list, i))
            .collect()
    }

    /// How much of the file at `address` is held.
    pub fn status(&self, address: &[u8; 32]) -> Result<BlobStatus, BlobError> {
        let Some(list) = self.list(address)? else {
            return Ok(BlobStatus::Absent);
        };
        let of = list.hashes.len() as u64;
        let have = of - self.missing(&list).len() as u64;
        Ok(if have == of {
            BlobStatus::Complete
        } else {
            BlobStatus::Partial { have, of }
        })
    }

    fn delete(&self, path: &Path) -> Result<u64, BlobError> {
        let len = match fs::metadata(path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(BlobError::io(path, e)),
        };
        match fs::remove_file(path) {
            Ok(()) => {
                self.used
                    .fetch_sub(len.min(self.used_bytes()), Ordering::Relaxed);
                Ok(len)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(BlobError::io(path, e)),
        }
    }

    /// Addresses of every file whose chunk list is held.
    pub fn addresses(&self) -> Result<Vec<[u8; 32]>, BlobError> {
        let dir = self.dir.join("lists");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| BlobError::io(&dir, e))? {
            let name = entry.map_err(|e| BlobError::io(&dir, e))?.file_name();
            if let Some(address) = name.to_str().and_then(parse_hex32) {
                out.push(address);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes the file at `address`: its list and the chunks no other held list names.
    /// Returns the bytes freed.
    pub fn remove(&self, address: &[u8; 32]) -> Result<u64, BlobError> {
        let keep: HashSet<[u8; 32]> = self
            .addresses()?
            .into_iter()
            .filter(|a| a != address)
            .collect();
        self.remove_except(&keep, None)
    }

    /// Removes every file whose address is not in `live` (the files named by the messages
    /// still held), with its chunks, and chunks no held list names. A list or chunk written
    /// less than `grace` ago stays whatever `live` says: a client's upload is stored before
    /// the message that names it, and a transfer may be writing while this runs. Returns
    /// the bytes freed.
    pub fn retain(&self, live: &HashSet<[u8; 32]>, grace: Duration) -> Result<u64, BlobError> {
        self.remove_except(live, Some(grace))
    }

    fn remove_except(
        &self,
        keep: &HashSet<[u8; 32]>,
        grace: Option<Duration>,
    ) -> Result<u64, BlobError> {
        // Written within the grace period (an unreadable time counts as recent).
        let recent = |path: &Path| {
            grace.is_some_and(|grace| {
                fs::metadata(path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_none_or(|age| age < grace)
            })
        };
        let mut kept_chunks: HashSet<[u8; 32]> = HashSet::new();
        let mut freed = 0;
        for address in self.addresses()? {
            let path = self.list_path(&address);
            if keep.contains(&address) || recent(&path) {
                if let Some(list) = self.list(&address)? {
                    kept_chunks.extend(list.hashes);
                }
            } else {
                freed += self.delete(&path)?;
            }
        }
        let chunks = self.dir.join("chunks");
        for sub in fs::read_dir(&chunks).map_err(|e| BlobError::io(&chunks, e))? {
            let sub = sub.map_err(|e| BlobError::io(&chunks, e))?.path();
            if !sub.is_dir() {
                continue;
            }
            for entry in fs::read_dir(&sub).map_err(|e| BlobError::io(&sub, e))? {
                let path = entry.map_err(|e| BlobError::io(&sub, e))?.path();
                let name = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(parse_hex32);
                if !name.is_some_and(|h| kept_chunks.contains(&h)) && !recent(&path) {
                    freed += self.delete(&path)?;
                }
            }
        }
        Ok(freed)
    }
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, BlobError> {
    match File::open(path) {
        Ok(mut f) => {
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes)
                .map_err(|e| BlobError::io(path, e))?;
            Ok(Some(bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BlobError::io(path, e)),
    }
}

/// Bytes of the files under `dir`, recursively.
fn dir_bytes(dir: &Path) -> Result<u64, BlobError> {
    let mut total = 0;
    for entry in fs::read_dir(dir).map_err(|e| BlobError::io(dir, e))? {
        let entry = entry.map_err(|e| BlobError::io(dir, e))?;
        let meta = entry
            .metadata()
            .map_err(|e| BlobError::io(&entry.path(), e))?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "file" of `size` bytes in chunks of 1 024 whose ciphertext chunks are patterned
    /// bytes (the store never opens chunks, so any bytes of the right lengths do).
    fn file(size: u64, seed: u8) -> (ChunkList, Vec<Vec<u8>>) {
        let layout = BlobRef {
            address: [0; 32],
            size,
            chunk_size: 1024,
        };
        let chunks: Vec<Vec<u8>> = (0..layout.chunk_count())
            .map(|i| {
                let len = layout.cipher_len(i).unwrap() as usize;
                (0..len)
                    .map(|j| (j as u8).wrapping_mul(seed) ^ i as u8)
                    .collect()
            })
            .collect();
        let list = ChunkList {
            chunk_size: 1024,
            size,
            hashes: chunks.iter().map(|c| chunk_hash(c)).collect(),
        };
        (list, chunks)
    }

    fn open(dir: &Path, quota: Option<u64>) -> BlobStore {
        BlobStore::open(dir, quota).unwrap().0
    }

    #[test]
    fn a_file_is_stored_chunk_by_chunk_and_read_back() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path(), None);
        let (list, chunks) = file(3000, 3);
        let blob = list.blob_ref();
        assert_eq!(store.status(&blob.address).unwrap(), BlobStatus::Absent);
        store.put_list(&blob, &list.to_bytes()).unwrap();
        assert_eq!(
            store.status(&blob.address).unwrap(),
            BlobStatus::Partial { have: 0, of: 3 }
        );
        assert_eq!(store.put_chunk(&list, 1, &chunks[1]).unwrap(), Put::Stored);
        assert_eq!(
            store.put_chunk(&list, 1, &chunks[1]).unwrap(),
            Put::AlreadyHeld
        );
        assert_eq!(store.missing(&list), vec![0, 2]);
        store.put_chunk(&list, 0, &chunks[0]).unwrap();
        store.put_chunk(&list, 2, &chunks[2]).unwrap();
        assert_eq!(store.status(&blob.address).unwrap(), BlobStatus::Complete);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(store.chunk(&list, i as u64).unwrap().as_ref(), Some(c));
        }
        let listed = list.to_bytes().len() as u64;
        assert_eq!(store.used_bytes(), listed + blob.stored_bytes());
        // The chunk file's name is the SHA-256 of its bytes.
        let name = hex32(&chunk_hash(&chunks[0]));
        assert!(
            tmp.path()
                .join("chunks")
                .join(&name[..2])
                .join(&name)
                .exists()
        );
        // Reopened, the same bytes are counted.
        drop(store);
        let again = open(tmp.path(), None);
        assert_eq!(again.used_bytes(), listed + blob.stored_bytes());
        assert_eq!(again.status(&blob.address).unwrap(), BlobStatus::Complete);
    }

    #[test]
    fn bad_chunks_and_lists_are_refused_and_nothing_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path(), None);
        let (list, chunks) = file(3000, 5);
        let blob = list.blob_ref();
        let mut wrong_address = blob;
        wrong_address.address[0] ^= 1;
        assert!(matches!(
            store.put_list(&wrong_address, &list.to_bytes()),
            Err(BlobError::Invalid(FileError::WrongAddress))
        ));
        store.put_list(&blob, &list.to_bytes()).unwrap();
        let before = store.used_bytes();
        let mut bad = chunks[0].clone();
        bad[10] ^= 0xff;
        assert!(matches!(
            store.put_chunk(&list, 0, &bad),
            Err(BlobError::Invalid(FileError::ChunkHash(0)))
        ));
        // A genuine chunk in the wrong place is refused too.
        assert!(matches!(
            store.put_chunk(&list, 1, &chunks[0]),
            Err(BlobError::Invalid(FileError::ChunkHash(1)))
        ));
        assert_eq!(store.used_bytes(), before);
        assert_eq!(store.missing(&list), vec![0, 1, 2]);
        assert_eq!(store.stats().refused.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn the_quota_refuses_a_chunk_before_writing_it_and_counts_partial_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (list, chunks) = file(3000, 7);
        let listed = list.to_bytes().len() as u64;
        // Room for the list and two full chunks, not the third.
        let store = open(tmp.path(), Some(listed + 2 * 1040 + 50));
        store.put_list(&list.blob_ref(), &list.to_bytes()).unwrap();
        store.put_chunk(&list, 0, &chunks[0]).unwrap();
        store.put_chunk(&list, 1, &chunks[1]).unwrap();
        let err = store.put_chunk(&list, 2, &chunks[2]).unwrap_err();
        assert_eq!(err.code(), "quota_full");
        assert!(matches!(err, BlobError::QuotaFull { needed: 968, .. }));
        assert_eq!(store.missing(&list), vec![2]);
        assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
        // The partial file is kept and counted; with a larger quota it resumes.
        drop(store);
        let store = open(tmp.path(), Some(1 << 20));
        assert_eq!(store.used_bytes(), listed + 2 * 1040);
        assert_eq!(store.put_chunk(&list, 2, &chunks[2]).unwrap(), Put::Stored);
        assert_eq!(store.status(&list.address()).unwrap(), BlobStatus::Complete);
    }

    #[test]
    fn a_crash_mid_write_leaves_no_chunk_that_verifies_wrongly() {
        let tmp = tempfile::tempdir().unwrap();
        let (list, chunks) = file(3000, 9);
        {
            let store = open(tmp.path(), None);
            store.put_list(&list.blob_ref(), &list.to_bytes()).unwrap();
            store.put_chunk(&list, 0, &chunks[0]).unwrap();
        }
        // A power cut during the write of chunk 1: half of it in a temporary file, never
        // renamed. And a torn chunk under its final name (a file system that reordered the
        // rename before the data): half of chunk 2's bytes.
        fs::write(tmp.path().join("tmp").join("1234-0"), &chunks[1][..500]).unwrap();
        let name = hex32(&list.hashes[2]);
        let torn = tmp.path().join("chunks").join(&name[..2]);
        fs::create_dir_all(&torn).unwrap();
        fs::write(torn.join(&name), &chunks[2][..300]).unwrap();

        let (store, report) = BlobStore::open(tmp.path(), None).unwrap();
        assert_eq!(report.leftovers_removed, 1);
        assert_eq!(fs::read_dir(tmp.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(store.chunk(&list, 0).unwrap().as_ref(), Some(&chunks[0]));
        assert_eq!(store.chunk(&list, 1).unwrap(), None);
        // The torn chunk is never handed out: it is deleted when read and fetched again.
        assert_eq!(store.chunk(&list, 2).unwrap(), None);
        assert_eq!(store.missing(&list), vec![1, 2]);
        store.put_chunk(&list, 1, &chunks[1]).unwrap();
        store.put_chunk(&list, 2, &chunks[2]).unwrap();
        assert_eq!(store.status(&list.address()).unwrap(), BlobStatus::Complete);
        assert_eq!(
            store.used_bytes(),
            list.to_bytes().len() as u64 + list.blob_ref().stored_bytes()
        );
    }

    #[test]
    fn retention_keeps_only_files_a_live_message_names() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path(), None);
        let (a, ca) = file(2000, 11);
        let (b, cb) = file(1500, 13);
        for (list, chunks) in [(&a, &ca), (&b, &cb)] {
            store.put_list(&list.blob_ref(), &list.to_bytes()).unwrap();
            for (i, c) in chunks.iter().enumerate() {
                store.put_chunk(list, i as u64, c).unwrap();
            }
        }
        // Everything was written just now: within an hour's grace nothing goes.
        assert_eq!(
            store
                .retain(&HashSet::new(), Duration::from_secs(3600))
                .unwrap(),
            0
        );
        let freed = store
            .retain(&HashSet::from([a.address()]), Duration::ZERO)
            .unwrap();
        assert_eq!(
            freed,
            b.to_bytes().len() as u64 + b.blob_ref().stored_bytes()
        );
        assert_eq!(store.status(&b.address()).unwrap(), BlobStatus::Absent);
        assert_eq!(store.status(&a.address()).unwrap(), BlobStatus::Complete);
        assert_eq!(store.addresses().unwrap(), vec![a.address()]);
        store.remove(&a.address()).unwrap();
        assert_eq!(store.used_bytes(), 0);
    }

    #[test]
    fn a_damaged_list_on_disk_is_dropped_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(tmp.path(), None);
        let (list, _) = file(2000, 17);
        store.put_list(&list.blob_ref(), &list.to_bytes()).unwrap();
        let path = tmp.path().join("lists").join(hex32(&list.address()));
        let mut bytes = fs::read(&path).unwrap();
        bytes[5] ^= 1;
        fs::write(&path, bytes).unwrap();
        assert_eq!(store.list(&list.address()).unwrap(), None);
        assert!(!path.exists());
    }
}
