//! Files: clients upload a sealed file's chunk list and ciphertext chunks, ask where a file
//! stands on this node (which starts fetching it from other nodes when a message names it),
//! and read its chunks back, one by one or as one stream with range requests.
//!
//! The node never sees a plaintext byte: `basis_e2ee::file` seals the file on the client and
//! the key travels inside the room's encryption. Bodies stream: a chunk upload holds at most
//! one chunk, a download at most one chunk at a time.
//!
//! **Who may read.** A file that a stored message names may be read by users with a standing
//! (invited, joined, or once a member) in one of the rooms of those messages; to anyone else
//! it does not exist (`unknown_file`). A file no message names yet may be read by any
//! signed-in user, so that an uploader can check and resume its upload before posting the
//! message: its bytes are ciphertext under a key only the uploader has.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use basis_api::files::{FileInfo, FileState, ListQuery, MAX_MISSING_LISTED, Stalled};
use basis_core::encoding::decode_event;
use basis_core::{BlobRef, Body as EventBody, ChunkList, RoomId};
use basis_proto::{FetchState, PauseReason};
use basis_store::{BlobError, BlobStatus, BlobStore, Put, Readers, StoreError};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::auth::{SignedIn, hex_field};
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::index::visible;
use super::{ApiState, blocking};
use crate::node::NodeFiles;

const MIB: u64 = 1024 * 1024;
/// Authentication tag bytes after each chunk's ciphertext.
const TAG: u64 = basis_core::file::TAG_BYTES as u64;

/// The files stored messages name, and their rooms, kept current from the store's feed.
pub struct FileIndex {
    readers: Arc<Readers>,
    committed: watch::Receiver<u64>,
    named: RwLock<HashMap<[u8; 32], Named>>,
    /// Highest `seq` folded in; the mutex also serialises catching up.
    applied: Mutex<u64>,
}

/// A file some stored messages name.
#[derive(Clone, Debug)]
struct Named {
    blob: BlobRef,
    rooms: Vec<RoomId>,
}

impl FileIndex {
    /// An empty index over the store; [`FileIndex::catch_up`] fills it.
    pub fn new(readers: Arc<Readers>, committed: watch::Receiver<u64>) -> FileIndex {
        FileIndex {
            readers,
            committed,
            named: RwLock::new(HashMap::new()),
            applied: Mutex::new(0),
        }
    }

    /// Folds in the file messages committed since the last call. Blocking (reads SQLite).
    pub fn catch_up(&self) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let upto = *self.committed.borrow();
        while *applied < upto {
            let page = self.readers.since(*applied, 1000)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            let last = *last;
            let mut named = self.named.write().unwrap_or_else(|p| p.into_inner());
            for (_, e) in &page {
                let Ok(event) = decode_event(&e.raw) else {
                    continue;
                };
                if let EventBody::Message(m) = &event.content.body
                    && let Some(blob) = m.blob()
                {
                    let entry = named.entry(blob.address).or_insert(Named {
                        blob: *blob,
                        rooms: Vec::new(),
                    });
                    if !entry.rooms.contains(&e.room) {
                        entry.rooms.push(e.room);
                    }
                }
            }
            *applied = last;
        }
        Ok(())
    }

    fn named(&self, address: &[u8; 32]) -> Option<Named> {
        self.named
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(address)
            .cloned()
    }
}

/// What the signed-in user may do with a file.
enum Access {
    /// Messages in rooms where the user has a standing name it.
    Named(BlobRef),
    /// No message names it (yet).
    Unnamed,
}

fn files_of(state: &ApiState) -> Result<&NodeFiles, ApiError> {
    state.node.files().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "files_off",
            "this node keeps no files",
        )
    })
}

fn unknown_file() -> ApiError {
    ApiError::not_found(
        "unknown_file",
        "no such file on this node, or no message you may read names it",
    )
}

fn address_of(text: &str) -> Result<[u8; 32], ApiError> {
    hex_field::<32>("address", text)
}

/// The error reply for a blob store error; `invalid` is the code for bytes that do not match.
fn blob_error(e: BlobError, invalid: &'static str) -> ApiError {
    match e {
        BlobError::QuotaFull { .. } => ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "quota_full",
            e.to_string(),
        ),
        BlobError::DiskFull => {
            ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "disk_full", e.to_string())
        }
        BlobError::Invalid(inner) => ApiError::bad_request(invalid, inner.to_string()),
        BlobError::NoList => ApiError::not_found(
            "no_list",
            "this node holds no chunk list for the file: upload the list first",
        ),
        BlobError::Io { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "store_failed",
            format!("the node's file store failed: {e}"),
        ),
    }
}

async fn access(
    state: &Arc<ApiState>,
    user: &SignedIn,
    address: [u8; 32],
) -> Result<Access, ApiError> {
    let (files, rooms) = (state.files.clone(), state.index.clone());
    blocking(move || files.catch_up().and_then(|()| rooms.catch_up())).await??;
    let Some(named) = state.files.named(&address) else {
        return Ok(Access::Unnamed);
    };
    let allowed = named.rooms.iter().any(|room| {
        state
            .index
            .room(room)
            .is_some_and(|rs| visible(&rs, &user.user).is_some())
    });
    if allowed {
        Ok(Access::Named(named.blob))
    } else {
        Err(unknown_file())
    }
}

/// Most bytes of a refused upload the node reads and drops so that the client's connection
/// stays usable (an HTTP/1.1 server that answers before reading the body must close the
/// connection, and a client that has already sent its next request on it sees it cut).
const DRAIN_LIMIT: u64 = 1 << 20;

/// Refuses an upload after reading and dropping what is left of its body (at most
/// [`DRAIN_LIMIT`] bytes; a longer one is left and the connection closes after the reply).
async fn refuse<T>(body: Body, e: ApiError) -> Result<T, ApiError> {
    let _ = read_body(body, DRAIN_LIMIT).await;
    Err(e)
}

/// Reads a request body of at most `limit` bytes; `Err(None)` when it is longer (having read
/// and dropped up to [`DRAIN_LIMIT`] bytes more, so that the connection stays usable).
async fn read_body(body: Body, limit: u64) -> Result<Vec<u8>, Option<String>> {
    let mut stream = body.into_data_stream();
    let cap = usize::try_from(limit).unwrap_or(usize::MAX).min(1 << 20);
    let mut out = Vec::with_capacity(cap);
    let mut over = 0u64;
    while let Some(piece) = stream.next().await {
        let piece = piece.map_err(|e| Some(e.to_string()))?;
        if over > 0 || (out.len() + piece.len()) as u64 > limit {
            over += piece.len() as u64;
            if over > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        out.extend_from_slice(&piece);
    }
    if over > 0 {
        return Err(None);
    }
    Ok(out)
}

/// The file's state from what the store holds and what a fetch says.
fn info(
    blobs: &BlobStore,
    blob: BlobRef,
    fetch: Option<(FetchState, (u64, u64))>,
) -> Result<FileInfo, BlobError> {
    let chunks = blob.chunk_count();
    let list = blobs.list(&blob.address)?;
    let (held, missing) = match &list {
        Some(list) => {
            let missing = blobs.missing(list);
            (chunks - missing.len() as u64, missing)
        }
        None => (0, (0..chunks.min(MAX_MISSING_LISTED as u64)).collect()),
    };
    let running = fetch.filter(|(s, _)| *s != FetchState::Complete);
    let state = if list.is_some() && held == chunks {
        FileState::Complete
    } else if running.is_some() {
        FileState::Fetching
    } else if list.is_some() {
        FileState::Partial
    } else {
        FileState::Absent
    };
    let stalled = match running.map(|(s, _)| s) {
        _ if state != FileState::Fetching => None,
        Some(FetchState::NoPeer) => Some(Stalled::NoPeer),
        Some(FetchState::Paused(PauseReason::QuotaFull)) => Some(Stalled::QuotaFull),
        Some(FetchState::Paused(PauseReason::DiskFull)) => Some(Stalled::DiskFull),
        Some(FetchState::Paused(PauseReason::StoreFailed)) => Some(Stalled::StoreFailed),
        _ => None,
    };
    Ok(FileInfo {
        address: hex::encode(blob.address),
        size: blob.size,
        chunk_size: blob.chunk_size,
        chunks,
        held,
        state,
        missing: missing.into_iter().take(MAX_MISSING_LISTED).collect(),
        stalled,
    })
}

/// Where the file stands here; for a file a message names that is not complete here, starts
/// (or goes on with) fetching it from the federation first.
async fn current(
    state: &Arc<ApiState>,
    files: &NodeFiles,
    blob: BlobRef,
    fetch: bool,
) -> Result<FileInfo, ApiError> {
    let blobs = files.blobs.clone();
    let federation = state.node.federation().cloned().filter(|_| fetch);
    blocking(move || {
        let mut progress = None;
        if let Some(f) = federation
            && blobs.status(&blob.address)? != BlobStatus::Complete
        {
            f.fetch_file(blob)?;
            progress = f.file_progress(&blob.address);
        }
        info(&blobs, blob, progress)
    })
    .await?
    .map_err(|e| blob_error(e, "bad_list"))
}

/// Upload a file's chunk list (docs/PROTOCOL.md §9.2): the first step of an upload.
#[utoipa::path(put, path = "/v1/files/{address}/list", tag = "files",
    security(("bearer" = [])),
    params(("address" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "The file's content address, 64 hex characters"), ListQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The chunk list's bytes"),
    responses(
        (status = 201, description = "Stored", body = FileInfo),
        (status = 200, description = "The node already held it", body = FileInfo),
        (status = 400, description = "The list does not hash to the address or its layout is invalid (`bad_list`)", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 413, description = "The file is larger than this node takes (`file_too_large`)", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
        (status = 507, description = "The node's file store or disk is full (`quota_full`, `disk_full`)", body = ErrorBody),
    ))]
pub async fn put_list(
    State(state): State<Arc<ApiState>>,
    ApiPath(address): ApiPath<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
    _user: SignedIn,
    body: Body,
) -> Result<(StatusCode, ApiJson<FileInfo>), ApiError> {
    let files = files_of(&state)?.clone();
    let address = address_of(&address)?;
    if q.size > files.max_file_bytes {
        return refuse(body, ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!(
                "the file is {:.1} MiB; this node takes files up to {} MiB (files.max_file_mib)",
                q.size as f64 / MIB as f64,
                files.max_file_bytes / MIB
            ),
        ))
        .await;
    }
    let blob = BlobRef {
        address,
        size: q.size,
        chunk_size: q.chunk_size,
    };
    if let Err(e) = blob.check() {
        return refuse(body, ApiError::bad_request("bad_list", e.to_string())).await;
    }
    // A list is a few bytes of header and one 32-byte hash per chunk.
    let limit = 32 + 32 * blob.chunk_count();
    let bytes = read_body(body, limit).await.map_err(|e| match e {
        None => ApiError::bad_request("bad_list", "longer than a chunk list of this layout"),
        Some(e) => ApiError::bad_request("bad_body", format!("the body broke off: {e}")),
    })?;
    let blobs = files.blobs.clone();
    let (held, info) = blocking(move || {
        let held = blobs.list(&address)?.is_some();
        blobs.put_list(&blob, &bytes)?;
        Ok::<_, BlobError>((held, info(&blobs, blob, None)?))
    })
    .await?
    .map_err(|e| blob_error(e, "bad_list"))?;
    let status = if held {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, ApiJson(info)))
}

/// Upload one ciphertext chunk of a file whose list is here.
#[utoipa::path(put, path = "/v1/files/{address}/chunks/{index}", tag = "files",
    security(("bearer" = [])),
    params(
        ("address" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "The file's content address, 64 hex characters"),
        ("index" = u64, Path, description = "The chunk's index, from 0"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The chunk's ciphertext (its plaintext length + 16 bytes)"),
    responses(
        (status = 201, description = "Stored"),
        (status = 200, description = "The node already held it"),
        (status = 400, description = "Wrong length or hash, or no such chunk (`bad_chunk`)", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "Upload the chunk list first (`no_list`)", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
        (status = 507, description = "The node's file store or disk is full (`quota_full`, `disk_full`)", body = ErrorBody),
    ))]
pub async fn put_chunk(
    State(state): State<Arc<ApiState>>,
    ApiPath((address, index)): ApiPath<(String, u64)>,
    _user: SignedIn,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let files = files_of(&state)?.clone();
    let address = address_of(&address)?;
    let blobs = files.blobs.clone();
    let list = blocking(move || blobs.list(&address))
        .await?
        .map_err(|e| blob_error(e, "bad_list"))?;
    let Some(list) = list else {
        return refuse(body, blob_error(BlobError::NoList, "bad_list")).await;
    };
    let want = match list.blob_ref().cipher_len(index) {
        Ok(want) => want,
        Err(e) => return refuse(body, ApiError::bad_request("bad_chunk", e.to_string())).await,
    };
    let bytes = read_body(body, want).await.map_err(|e| match e {
        None => ApiError::bad_request(
            "bad_chunk",
            format!("chunk {index} of this file is {want} bytes; the body is longer"),
        ),
        Some(e) => ApiError::bad_request("bad_body", format!("the body broke off: {e}")),
    })?;
    let blobs = files.blobs.clone();
    let put = blocking(move || blobs.put_chunk(&list, index, &bytes))
        .await?
        .map_err(|e| blob_error(e, "bad_chunk"))?;
    Ok(match put {
        Put::Stored => StatusCode::CREATED,
        Put::AlreadyHeld => StatusCode::OK,
    })
}

/// Where a file stands on this node. For a file a message you may read names, this also
/// starts or goes on with fetching it from other nodes (`fetching`): ask again to follow.
#[utoipa::path(get, path = "/v1/files/{address}", tag = "files",
    security(("bearer" = [])),
    params(("address" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "The file's content address, 64 hex characters")),
    responses(
        (status = 200, description = "The file here", body = FileInfo),
        (status = 400, description = "Bad address", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "Not here and named by no message you may read (`unknown_file`)", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn get_file(
    State(state): State<Arc<ApiState>>,
    ApiPath(address): ApiPath<String>,
    user: SignedIn,
) -> Result<ApiJson<FileInfo>, ApiError> {
    let files = files_of(&state)?.clone();
    let address = address_of(&address)?;
    match access(&state, &user, address).await? {
        Access::Named(blob) => Ok(ApiJson(current(&state, &files, blob, true).await?)),
        Access::Unnamed => {
            let blobs = files.blobs.clone();
            let list = blocking(move || blobs.list(&address))
                .await?
                .map_err(|e| blob_error(e, "bad_list"))?
                .ok_or_else(unknown_file)?;
            Ok(ApiJson(
                current(&state, &files, list.blob_ref(), false).await?,
            ))
        }
    }
}

/// The list a reader may read chunks by, if held.
async fn readable_list(
    state: &Arc<ApiState>,
    user: &SignedIn,
    address: &str,
) -> Result<(NodeFiles, Access, Option<ChunkList>), ApiError> {
    let files = files_of(state)?.clone();
    let address = address_of(address)?;
    let access = access(state, user, address).await?;
    let blobs = files.blobs.clone();
    let list = blocking(move || blobs.list(&address))
        .await?
        .map_err(|e| blob_error(e, "bad_list"))?;
    Ok((files, access, list))
}

fn octets(status: StatusCode, body: Body, len: u64) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// One ciphertext chunk.
#[utoipa::path(get, path = "/v1/files/{address}/chunks/{index}", tag = "files",
    security(("bearer" = [])),
    params(
        ("address" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "The file's content address, 64 hex characters"),
        ("index" = u64, Path, description = "The chunk's index, from 0"),
    ),
    responses(
        (status = 200, description = "The chunk's ciphertext", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Bad address or no such chunk", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "Not (yet) here (`not_held`), or named by no message you may read (`unknown_file`)", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn get_chunk(
    State(state): State<Arc<ApiState>>,
    ApiPath((address, index)): ApiPath<(String, u64)>,
    user: SignedIn,
) -> Result<Response, ApiError> {
    let (files, _, list) = readable_list(&state, &user, &address).await?;
    let not_held = || {
        ApiError::not_found(
            "not_held",
            format!("chunk {index} is not on this node (yet)"),
        )
    };
    let list = list.ok_or_else(not_held)?;
    list.blob_ref()
        .cipher_len(index)
        .map_err(|e| ApiError::bad_request("bad_chunk", e.to_string()))?;
    let blobs = files.blobs.clone();
    let bytes = blocking(move || blobs.chunk(&list, index))
        .await?
        .map_err(|e| blob_error(e, "bad_chunk"))?
        .ok_or_else(not_held)?;
    let len = bytes.len() as u64;
    Ok(octets(StatusCode::OK, Body::from(bytes), len))
}

/// What a `Range` header asks of a body of `total` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No range, one this server does not take (several ranges) or a malformed one: the
    /// whole body (as RFC 9110 says to do with a header it ignores).
    Whole,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// A well-formed range that lies outside the body: 416.
    Unsatisfiable,
}

fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses one `bytes=a-b`, `bytes=a-` or `bytes=-n` range for a body of `total` bytes.
pub fn parse_range(value: &str, total: u64) -> ByteRange {
    let value = value.trim();
    let Some(spec) = value
        .get(..6)
        .filter(|unit| unit.eq_ignore_ascii_case("bytes="))
        .and_then(|_| value.get(6..))
    else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Some(n) = digits(b) else {
            return ByteRange::Whole;
        };
        if n == 0 || total == 0 {
            return ByteRange::Unsatisfiable;
        }
        return ByteRange::Part {
            start: total.saturating_sub(n),
            end: total - 1,
        };
    }
    let Some(start) = digits(a) else {
        return ByteRange::Whole;
    };
    let end = if b.is_empty() {
        u64::MAX
    } else {
        match digits(b) {
            Some(end) if end >= start => end,
            _ => return ByteRange::Whole,
        }
    };
    if start >= total {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part {
        start,
        end: end.min(total - 1),
    }
}

/// The whole file's ciphertext, every chunk in order, streamed; takes one byte range.
#[utoipa::path(get, path = "/v1/files/{address}/data", tag = "files",
    security(("bearer" = [])),
    params(
        ("address" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "The file's content address, 64 hex characters"),
        ("Range" = Option<String>, Header, description = "One range, `bytes=a-b`, `bytes=a-` or `bytes=-n`"),
    ),
    responses(
        (status = 200, description = "The chunks' ciphertext, concatenated", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 206, description = "The range asked for", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, description = "Bad address", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "Named by no message you may read and not here (`unknown_file`)", body = ErrorBody),
        (status = 409, description = "Not all of the file is here yet (`not_complete`)", body = ErrorBody),
        (status = 416, description = "The range lies outside the file (`bad_range`)", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn get_data(
    State(state): State<Arc<ApiState>>,
    ApiPath(address): ApiPath<String>,
    headers: HeaderMap,
    user: SignedIn,
) -> Result<Response, ApiError> {
    let (files, access, list) = readable_list(&state, &user, &address).await?;
    let not_complete = |info: Option<&FileInfo>| {
        let held = info.map_or(String::new(), |i| {
            format!(" ({} of {} chunks)", i.held, i.chunks)
        });
        ApiError::new(
            StatusCode::CONFLICT,
            "not_complete",
            format!(
                "this node does not hold all of the file yet{held}; GET /v1/files/{address} says where it stands"
            ),
        )
    };
    let list = match (list, &access) {
        (Some(list), _) => list,
        (None, Access::Named(blob)) => {
            let info = current(&state, &files, *blob, true).await?;
            return Err(not_complete(Some(&info)));
        }
        (None, Access::Unnamed) => return Err(unknown_file()),
    };
    let blob = list.blob_ref();
    let info = current(&state, &files, blob, matches!(access, Access::Named(_))).await?;
    if info.state != FileState::Complete {
        return Err(not_complete(Some(&info)));
    }
    let total = blob.stored_bytes();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(ByteRange::Whole, |v| parse_range(v, total));
    let (status, start, end) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, total),
        ByteRange::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end + 1),
        ByteRange::Unsatisfiable => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "bad_range",
                format!("the file's data is {total} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{total}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let stream = chunk_stream(files.blobs.clone(), Arc::new(list), start, end);
    let mut r = octets(status, Body::from_stream(stream), end - start);
    let h = r.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{}/{total}", end - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    Ok(r)
}

/// Bytes `start..end` of the file's concatenated ciphertext chunks, read one chunk at a time.
fn chunk_stream(
    blobs: Arc<BlobStore>,
    list: Arc<ChunkList>,
    start: u64,
    end: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let step = u64::from(list.chunk_size) + TAG;
    futures_util::stream::try_unfold(start, move |pos| {
        let (blobs, list) = (blobs.clone(), list.clone());
        async move {
            if pos >= end {
                return Ok(None);
            }
            let index = pos / step;
            let within = (pos % step) as usize;
            let bytes = tokio::task::spawn_blocking(move || blobs.chunk(&list, index))
                .await
                .map_err(std::io::Error::other)?
                .map_err(std::io::Error::other)?
                .ok_or_else(|| {
                    std::io::Error::other(format!("chunk {index} went away while it was read"))
                })?;
            let left = usize::try_from(end - pos).unwrap_or(usize::MAX);
            let stop = bytes.len().min(within.saturating_add(left));
            if within >= stop {
                return Err(std::io::Error::other(
                    "the chunks are shorter than their list",
                ));
            }
            let piece = Bytes::from(bytes).slice(within..stop);
            let next = pos + piece.len() as u64;
            Ok(Some((piece, next)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::{ByteRange, parse_range};

    #[test]
    fn one_byte_range_is_taken_and_everything_else_is_the_whole() {
        let part = |start, end| ByteRange::Part { start, end };
        assert_eq!(parse_range("bytes=0-99", 1000), part(0, 99));
        assert_eq!(parse_range("bytes=500-", 1000), part(500, 999));
        assert_eq!(parse_range("bytes=-100", 1000), part(900, 999));
        assert_eq!(parse_range("bytes=-5000", 1000), part(0, 999));
        assert_eq!(parse_range("bytes=900-5000", 1000), part(900, 999));
        assert_eq!(parse_range("Bytes= 1-2 ", 1000), part(1, 2));
        assert_eq!(parse_range("bytes=1000-", 1000), ByteRange::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 1000), ByteRange::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), ByteRange::Unsatisfiable);
        for ignored in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=5-1",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=a-b",
            "bytes=99999999999999999999999-",
            "bytes=\u{e9}-1",
            "\u{e9}\u{e9}\u{e9}=0-1",
        ] {
            assert_eq!(parse_range(ignored, 1000), ByteRange::Whole, "{ignored:?}");
        }
    }
}
