//! `basis send ROOM --file PATH` and `basis download ROOM MSG`: files sealed on this computer
//! (`basis_e2ee::file`), uploaded and downloaded chunk by chunk through the node's client API
//! (`docs/CLIENT-API.md` "Files"), never held in memory whole.
//!
//! An upload resumes: the file's key is kept (sealed under the user's state key) in the
//! client folder until the message is posted, so sealing the same file again gives the same
//! chunks, and only those the node lacks are sent.

use std::fs::{self, File};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use basis_api::files::{FileInfo, FileState, MAX_MISSING_LISTED, Stalled};
use basis_core::{ChunkList, FileDescriptor, MessageBody, safe_file_name};
use basis_e2ee::file::{ChunkOpener, ChunkSealer, FileKey, default_chunk_size};
use basis_e2ee::{open_state, seal_state};
use sha2::{Digest, Sha256};

use crate::client::directory;
use crate::client::node_client::NodeClient;
use crate::client::profile::write_private;
use crate::client::render;
use crate::client::session::{ClientOptions, Session};
use crate::client::view::RoomView;
use crate::commands::messages::{must_be_joined, post_message};
use crate::commands::print_json;
use crate::commands::rooms::find;

/// What labels a sealed upload key in the client folder.
const UPLOAD_KEY_LABEL: &[u8] = b"basis/upload-key/v1";

/// A size for people: `812 bytes`, `3.4 KiB`, `12.0 MiB`.
pub fn human(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} bytes")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / KIB / KIB)
    } else {
        format!("{:.2} GiB", b / KIB / KIB / KIB)
    }
}

/// Where a file stands on the node, as `basis history` says it.
pub fn state_text(info: Option<&FileInfo>) -> String {
    match info {
        Some(i) if i.state == FileState::Complete => "here".into(),
        Some(i) if i.state == FileState::Fetching => {
            let done = i.held * 100 / i.chunks.max(1);
            match i.stalled {
                None => format!("fetching {done}%"),
                Some(why) => format!("fetching {done}%, waiting: {}", stalled_text(why)),
            }
        }
        Some(i) if i.held > 0 => format!("partly here, {} of {} chunks", i.held, i.chunks),
        _ => "not yet on this node".into(),
    }
}

/// Why a fetch waits, in a user's words (it goes on by itself once the cause is gone).
fn stalled_text(why: Stalled) -> &'static str {
    match why {
        Stalled::NoPeer => "no linked node holds the missing chunks yet",
        Stalled::QuotaFull => "this node's file quota is full (files.quota_mib)",
        Stalled::DiskFull => "this node's disk is full",
        Stalled::StoreFailed => "this node cannot store it (see its log)",
    }
}

/// A one-line progress display on standard error, when that is a terminal.
struct Progress {
    label: String,
    of: u64,
    tty: bool,
    shown: bool,
}

impl Progress {
    fn new(label: String, of: u64) -> Progress {
        Progress {
            label,
            of: of.max(1),
            tty: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn show(&mut self, done: u64, bytes: u64) {
        if !self.tty {
            return;
        }
        let pct = done.min(self.of) * 100 / self.of;
        let width = 30;
        let filled = (pct as usize * width) / 100;
        eprint!(
            "\r{} [{}{}] {pct:>3}% {}   ",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            human(bytes)
        );
        let _ = std::io::stderr().flush();
        self.shown = true;
    }

    fn finish(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

/// A media type from a file name's extension (`application/octet-stream` when unknown).
pub fn media_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "pdf" => "application/pdf",
        "txt" | "log" => "text/plain",
        "csv" => "text/csv",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "m4a" => "audio/mp4",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "webm" => "video/webm",
        "mp4" => "video/mp4",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// The client-folder file that keeps the key of an upload of `path` (as it is now) to `room`.
fn upload_record(s: &Session, path: &Path, meta: &fs::Metadata, room: &str) -> Result<PathBuf> {
    let full = fs::canonicalize(path).with_context(|| format!("cannot find {}", path.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(UPLOAD_KEY_LABEL);
    h.update(full.as_os_str().as_encoded_bytes());
    h.update([0]);
    h.update(meta.len().to_be_bytes());
    h.update(mtime.to_be_bytes());
    h.update(room.as_bytes());
    let id = hex::encode(&h.finalize()[..16]);
    s.dir.ensure()?;
    Ok(s.dir.path().join("sessions").join(format!("upload-{id}")))
}

/// The key of an interrupted upload of the same file, or a fresh one (saved first).
fn upload_key(s: &Session, record: &Path) -> Result<FileKey> {
    if let Ok(sealed) = fs::read(record)
        && let Ok(plain) = open_state(s.secrets.state_key(), UPLOAD_KEY_LABEL, &sealed)
        && let Ok(bytes) = <[u8; 32]>::try_from(plain.as_slice())
    {
        return Ok(FileKey::from_bytes(bytes));
    }
    let key = FileKey::generate().context("cannot make a file key")?;
    let sealed = seal_state(s.secrets.state_key(), UPLOAD_KEY_LABEL, key.as_bytes())
        .context("cannot seal the file key")?;
    write_private(record, &sealed)?;
    Ok(key)
}

/// Reads the whole file once, sealing each chunk, for its chunk list.
fn chunk_list(path: &Path, size: u64, chunk_size: u32, key: FileKey) -> Result<ChunkList> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut sealer = ChunkSealer::new(key, size, chunk_size)?;
    let blob = basis_core::BlobRef {
        address: [0; 32],
        size,
        chunk_size,
    };
    let mut buf = vec![0u8; chunk_size as usize];
    for index in 0..blob.chunk_count() {
        let want = blob.plain_len(index)? as usize;
        file.read_exact(&mut buf[..want])
            .with_context(|| format!("{} changed while it was read", path.display()))?;
        sealer.seal_next(&buf[..want])?;
    }
    Ok(sealer.finish()?)
}

/// Uploads what the node lacks of the file: the list, then each missing chunk, sealed again
/// from the file in order.
async fn upload(
    client: &NodeClient,
    path: &Path,
    list: &ChunkList,
    key: &FileKey,
    label: &str,
) -> Result<()> {
    let address = list.address();
    let mut info = match client.file(&address).await? {
        Some(i) => i,
        None => client.put_file_list(list).await?,
    };
    if info.state == FileState::Complete {
        return Ok(());
    }
    let blob = list.blob_ref();
    let mut progress = Progress::new(format!("uploading {label}"), blob.chunk_count());
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut sealer = ChunkSealer::new(key.clone(), list.size, list.chunk_size)?;
    let mut buf = vec![0u8; list.chunk_size as usize];
    let (mut held, mut sent) = (info.held, 0u64);
    for index in 0..blob.chunk_count() {
        let want = blob.plain_len(index)? as usize;
        file.read_exact(&mut buf[..want])
            .with_context(|| format!("{} changed while it was sent", path.display()))?;
        let (cipher, _) = sealer.seal_next(&buf[..want])?;
        // `missing` lists the first 64: past them, ask for the next ones.
        let window_end = (info.missing.len() >= MAX_MISSING_LISTED)
            .then(|| info.missing.last().copied())
            .flatten();
        if window_end.is_some_and(|last| index > last) {
            info = client
                .file(&address)
                .await?
                .context("the node dropped the upload; run the command again")?;
        }
        if info.missing.contains(&index) {
            sent += cipher.len() as u64;
            client
                .put_file_chunk(&address, index, cipher)
                .await
                .with_context(|| format!("chunk {index} was refused (did the file change?)"))?;
            held += 1;
            progress.show(held, sent);
        }
    }
    progress.finish();
    let info = client
        .file(&address)
        .await?
        .context("the node dropped the upload; run the command again")?;
    if info.state != FileState::Complete {
        bail!(
            "the node holds {} of {} chunks after the upload; run the same command again to resume",
            info.held,
            info.chunks
        );
    }
    Ok(())
}

/// `basis send ROOM --file PATH`.
pub async fn send_file(opts: &ClientOptions, room: &str, path: &Path, json: bool) -> Result<()> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file", path.display());
    }
    let size = meta.len();
    let s = Session::open(opts).await?;
    let info = find(&s, room).await?;
    let shown_name = directory::display_name(&s.contacts, &s.secrets.user_id(), &info);
    must_be_joined(&info, &shown_name)?;
    let status = s.client.status().await?;
    match status.max_file_bytes {
        None => bail!(
            "the node {} takes no files (its version is older than this client's)",
            status.name
        ),
        Some(max) if size > max => bail!(
            "{} is {}: the node takes files up to {} (files.max_file_mib in its configuration); nothing was sent",
            path.display(),
            human(size),
            human(max)
        ),
        Some(_) => {}
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let record = upload_record(&s, path, &meta, &info.room)?;
    let key = upload_key(&s, &record)?;
    let list = {
        let (p, k) = (path.to_path_buf(), key.clone());
        tokio::task::spawn_blocking(move || chunk_list(&p, size, default_chunk_size(), k))
            .await
            .context("the sealing task failed")??
    };
    let label = safe_file_name(&name);
    upload(&s.client, path, &list, &key, &label).await?;
    let descriptor = FileDescriptor {
        blob: list.blob_ref(),
        name: name.clone(),
        media_type: media_type(&name).to_string(),
        key: *key.as_bytes(),
        preview: None,
    };
    let id = post_message(&s, &info, MessageBody::Attachment(descriptor)).await?;
    let _ = fs::remove_file(&record);
    if json {
        print_json(&serde_json::json!({
            "id": id,
            "room": info.room,
            "address": hex::encode(list.address()),
            "size": size,
        }));
    } else {
        println!(
            "sent {} to {shown_name}: {label} ({})",
            render::prefix(&id, 8),
            human(size)
        );
    }
    Ok(())
}

/// `name (n).ext` for the n-th name tried (`name` itself for 0).
fn numbered(name: &str, n: u32) -> String {
    if n == 0 {
        return name.to_string();
    }
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && !ext.is_empty() => {
            format!("{stem} ({n}).{ext}")
        }
        _ => format!("{name} ({n})"),
    }
}

fn sha256_of(path: &Path) -> Result<[u8; 32]> {
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finalize().into());
        }
        h.update(&buf[..n]);
    }
}

/// Where a downloaded file goes in `dir`: `name`, or `name (1).ext` and so on when a
/// different file has that name. Moves `tmp` there (never over an existing file) and returns
/// the path, and whether an identical file was already there (then `tmp` is removed).
pub fn place(tmp: &Path, dir: &Path, name: &str, digest: &[u8; 32]) -> Result<(PathBuf, bool)> {
    for n in 0..10_000 {
        let candidate = dir.join(numbered(name, n));
        if candidate.exists() {
            if candidate.is_file() && sha256_of(&candidate)? == *digest {
                let _ = fs::remove_file(tmp);
                return Ok((candidate, true));
            }
            continue;
        }
        // A hard link never replaces an existing file; where links are not possible
        // (some removable media), a rename after the check above.
        match fs::hard_link(tmp, &candidate) {
            Ok(()) => {
                let _ = fs::remove_file(tmp);
                return Ok((candidate, false));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(_) => {
                fs::rename(tmp, &candidate)
                    .with_context(|| format!("cannot save {}", candidate.display()))?;
                return Ok((candidate, false));
            }
        }
    }
    bail!("too many files named like {name} in {}", dir.display())
}

/// Waits until the node holds every chunk, showing how far its fetch is.
async fn wait_for(client: &NodeClient, d: &FileDescriptor, label: &str) -> Result<()> {
    let mut progress = Progress::new(format!("fetching {label}"), d.blob.chunk_count());
    let mut said = None;
    loop {
        let info = client
            .file(&d.blob.address)
            .await?
            .context("the node does not know this file (has the message expired?)")?;
        match info.state {
            FileState::Complete => break,
            FileState::Fetching => {
                progress.show(info.held, info.held * u64::from(d.blob.chunk_size));
                if info.stalled != said {
                    said = info.stalled;
                    let why = info.stalled.map(stalled_text);
                    if let Some(why) = why {
                        progress.finish();
                        eprintln!("waiting: {why} (Ctrl-C stops; the download resumes later)");
                    }
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            FileState::Partial | FileState::Absent => bail!(
                "the node holds {} of {} chunks of this file and cannot fetch the rest now (is it linked to other nodes?)",
                info.held,
                info.chunks
            ),
        }
    }
    progress.finish();
    Ok(())
}

/// Downloads and opens the file into a temporary file in `dir`; returns its path and the
/// SHA-256 of the plaintext.
async fn fetch_into(
    client: &NodeClient,
    d: &FileDescriptor,
    dir: &Path,
    label: &str,
) -> Result<(PathBuf, [u8; 32])> {
    let opener = ChunkOpener::new(d)?;
    let tmp = dir.join(format!(
        ".basis-download-{}-{}.part",
        &hex::encode(d.blob.address)[..12],
        std::process::id()
    ));
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let result: Result<[u8; 32]> = async {
        let mut h = Sha256::new();
        let mut progress = Progress::new(format!("downloading {label}"), d.blob.chunk_count());
        let mut done = 0u64;
        for index in 0..d.blob.chunk_count() {
            let cipher = client.file_chunk(&d.blob.address, index).await?;
            let plain = opener
                .open(index, &cipher)
                .with_context(|| format!("chunk {index} does not open"))?;
            out.write_all(&plain)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            h.update(&plain[..]);
            done += plain.len() as u64;
            progress.show(index + 1, done);
        }
        progress.finish();
        out.sync_all()?;
        Ok(h.finalize().into())
    }
    .await;
    match result {
        Ok(digest) => Ok((tmp, digest)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// `basis download ROOM MSG [--to DIR]`.
pub async fn download(
    opts: &ClientOptions,
    room: &str,
    msg: &str,
    to: Option<&Path>,
) -> Result<()> {
    let dir = match to {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir().context("cannot find the current folder")?,
    };
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{} is a file, not a folder: give --to a folder to save into",
            dir.display()
        );
    }
    let s = Session::open(opts).await?;
    let info = find(&s, room).await?;
    let mut view = RoomView::open(&s, info).await?;
    let target = view.message(&s, msg).await?;
    let short = &target.to_string()[..8];
    let d = view.attachment(&target).with_context(|| {
        format!("{short} is not a file message you can read (basis history shows files)")
    })?;
    let name = safe_file_name(&d.name);
    wait_for(&s.client, &d, &name).await?;
    if !dir.exists() {
        // As `mkdir -p` would: a download into a new folder is what was asked.
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the folder {}", dir.display()))?;
        eprintln!("created the folder {}", dir.display());
    }
    let (tmp, digest) = fetch_into(&s.client, &d, &dir, &name).await?;
    let (path, same) = place(&tmp, &dir, &name, &digest)?;
    if same {
        println!("{} is already there, identical", path.display());
    } else {
        println!("saved {} ({})", path.display(), human(d.blob.size));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_before_the_extension() {
        assert_eq!(numbered("map.pdf", 0), "map.pdf");
        assert_eq!(numbered("map.pdf", 1), "map (1).pdf");
        assert_eq!(numbered("notes", 2), "notes (2)");
        assert_eq!(numbered("archive.tar.gz", 1), "archive.tar (1).gz");
    }

    #[test]
    fn an_existing_different_file_is_never_replaced() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let existing = dir.path().join("a.txt");
        fs::write(&existing, b"old").expect("write");
        let tmp = dir.path().join("t.part");
        fs::write(&tmp, b"new").expect("write");
        let digest: [u8; 32] = Sha256::digest(b"new").into();
        let (path, same) = place(&tmp, dir.path(), "a.txt", &digest).expect("placed");
        assert!(!same);
        assert_eq!(path, dir.path().join("a (1).txt"));
        assert_eq!(fs::read(&existing).expect("read"), b"old");
        assert_eq!(fs::read(&path).expect("read"), b"new");
        // The same bytes again: recognised, nothing added.
        fs::write(&tmp, b"new").expect("write");
        let (again, same) = place(&tmp, dir.path(), "a.txt", &digest).expect("placed");
        assert!(same);
        assert_eq!(again, path);
        assert!(!tmp.exists());
    }
}
