//! Following new events: `/v1/sync` (long-poll) and what it shares with the WebSocket stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use basis_core::{RoomId, UserId};

use super::auth::SignedIn;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiQuery};
use super::index::visible;
use basis_api::events::{ApiEvent, SyncQuery, SyncReply};

use super::types::api_event;
use super::{ApiState, blocking};

/// Longest a sync call may wait for news.
const MAX_WAIT_MS: u64 = 30_000;

/// Feed positions are SQLite row ids: 0 to 2^63 - 1.
pub fn check_since(since: Option<u64>) -> Result<Option<u64>, ApiError> {
    match since {
        Some(s) if i64::try_from(s).is_err() => Err(ApiError::bad_request(
            "bad_query",
            "since: a position from 0 to 9223372036854775807",
        )),
        other => Ok(other),
    }
}

/// One read of the feed after `since`, keeping what `user` may see.
pub struct FeedPage {
    /// Visible events.
    pub events: Vec<ApiEvent>,
    /// The feed position after this read (past invisible events too).
    pub next: u64,
    /// True when the read was full: more may be waiting.
    pub more: bool,
}

/// Reads up to `limit` events after `since` and keeps those in rooms `user` may read.
pub async fn read_feed(
    state: &Arc<ApiState>,
    user: UserId,
    since: u64,
    limit: usize,
) -> Result<FeedPage, ApiError> {
    let index = state.index.clone();
    let readers = state.node.readers().clone();
    let committed = state.node.committed();
    let (rows, more) = blocking(move || {
        // Every room-defining event up to `upto` is published before `upto` is, so the
        // index caught up after reading it can judge every row up to it. Rows committed
        // after that wait for the next page: judged now, an invitation in the same commit
        // could be missing from the index and the rows after it dropped for good.
        let upto = *committed.borrow();
        index.catch_up()?;
        let mut rows = readers.since(since, limit)?;
        let full = rows.len() == limit;
        let before = rows.len();
        rows.retain(|(seq, _)| *seq <= upto);
        let more = full || rows.len() < before;
        Ok::<_, basis_store::StoreError>((rows, more))
    })
    .await??;
    let next = rows.last().map(|(seq, _)| *seq).unwrap_or(since);
    let mut access: HashMap<RoomId, Option<super::index::Visible>> = HashMap::new();
    let mut events = Vec::new();
    for (seq, e) in &rows {
        let v = *access
            .entry(e.room)
            .or_insert_with(|| state.index.room(&e.room).and_then(|rs| visible(&rs, &user)));
        if v.is_some_and(|v| v.allows(e.time)) {
            events.push(api_event(e, Some(*seq)));
        }
    }
    Ok(FeedPage { events, next, more })
}

/// Events of the signed-in user's rooms that arrived at this node after `since`, in arrival
/// order. With `wait_ms`, waits for news when there is none yet (long-poll).
#[utoipa::path(get, path = "/v1/sync", tag = "events", security(("bearer" = [])),
    params(SyncQuery),
    responses(
        (status = 200, description = "New events and the position to sync from next", body = SyncReply),
        (status = 400, description = "Bad parameters", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn sync(
    State(state): State<Arc<ApiState>>,
    ApiQuery(q): ApiQuery<SyncQuery>,
    user: SignedIn,
) -> Result<ApiJson<SyncReply>, ApiError> {
    let limit = q.limit.unwrap_or(500);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("bad_limit", "limit: from 1 to 1000"));
    }
    let wait = q.wait_ms.unwrap_or(0);
    if wait > MAX_WAIT_MS {
        return Err(ApiError::bad_request(
            "bad_wait",
            format!("wait_ms: from 0 to {MAX_WAIT_MS}"),
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
    let mut since = check_since(q.since)?.unwrap_or(0);
    let mut committed = state.node.committed();
    loop {
        committed.borrow_and_update();
        let page = read_feed(&state, user.user, since, limit as usize).await?;
        if !page.events.is_empty() || page.more || tokio::time::Instant::now() >= deadline {
            return Ok(ApiJson(SyncReply {
                events: page.events,
                next: page.next,
                more: page.more,
            }));
        }
        since = page.next;
        tokio::select! {
            changed = committed.changed() => if changed.is_err() { break },
            () = tokio::time::sleep_until(deadline) => {}
            () = state.stop.cancelled() => break,
        }
    }
    Ok(ApiJson(SyncReply {
        events: Vec::new(),
        next: since,
        more: false,
    }))
}
