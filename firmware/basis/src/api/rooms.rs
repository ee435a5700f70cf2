//! Reading rooms: the user's rooms, one room, and its history page by page, newest first.

use std::sync::Arc;

use axum::extract::State;
use basis_core::room::RoomState;
use basis_core::{EventId, RoomId, Timestamp, UserId};
use basis_store::Cursor;

use super::auth::SignedIn;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::index::{Visible, visible};
use basis_api::events::{ApiEvent, HistoryQuery, HistoryReply, StateReply};
use basis_api::rooms::{RoomInfo, RoomList};

use super::types::{api_event, parse_id, room_info};
use super::{ApiState, blocking, current_index};

/// Parents a client names for a new event: the room's newest few.
const HEADS: usize = 3;

/// The summary of one room for `user`, reading its newest events.
async fn info(
    state: &Arc<ApiState>,
    room: RoomId,
    rs: RoomState,
    user: UserId,
) -> Result<RoomInfo, ApiError> {
    let readers = state.node.readers().clone();
    let page = blocking(move || readers.history(&room, None, HEADS)).await??;
    let heads = page.events.iter().map(|e| e.id.to_string()).collect();
    let latest = page.events.first().map(|e| e.time.0).unwrap_or(0);
    let index = state.index.clone();
    Ok(room_info(room, &rs, &user, heads, latest, |u| {
        index.profile(u)
    }))
}

async fn room_for(
    state: &Arc<ApiState>,
    room: &str,
    user: &UserId,
) -> Result<(RoomId, RoomState, Visible), ApiError> {
    let room: RoomId = parse_id("room", room)?;
    current_index(state).await?;
    let not_found = || {
        ApiError::not_found(
            "unknown_room",
            "no such room on this node, or you were never invited to it",
        )
    };
    let rs = state.index.room(&room).ok_or_else(not_found)?;
    let v = visible(&rs, user).ok_or_else(not_found)?;
    Ok((room, rs, v))
}

/// The rooms the signed-in user is invited to, a member of, or was once a member of.
#[utoipa::path(get, path = "/v1/rooms", tag = "rooms", security(("bearer" = [])),
    responses(
        (status = 200, description = "The rooms, newest activity first", body = RoomList),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn list_rooms(
    State(state): State<Arc<ApiState>>,
    user: SignedIn,
) -> Result<ApiJson<RoomList>, ApiError> {
    current_index(&state).await?;
    let mut rooms = Vec::new();
    for (room, rs) in state.index.rooms_of(&user.user) {
        rooms.push(info(&state, room, rs, user.user).await?);
    }
    rooms.sort_by_key(|r| std::cmp::Reverse(r.latest_time));
    Ok(ApiJson(RoomList { rooms }))
}

/// One room: name, members with their published keys, and the newest events' ids.
#[utoipa::path(get, path = "/v1/rooms/{room}", tag = "rooms", security(("bearer" = [])),
    params(("room" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Room id, 64 hex characters")),
    responses(
        (status = 200, description = "The room", body = RoomInfo),
        (status = 400, description = "Bad room id", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "Unknown room, or not yours", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn get_room(
    State(state): State<Arc<ApiState>>,
    ApiPath(room): ApiPath<String>,
    user: SignedIn,
) -> Result<ApiJson<RoomInfo>, ApiError> {
    let (room, rs, _) = room_for(&state, &room, &user.user).await?;
    Ok(ApiJson(info(&state, room, rs, user.user).await?))
}

/// A page of a room's events, newest first; pass `older` back as `before` for the next.
/// After leaving or removal a user reads up to the moment they left.
#[utoipa::path(get, path = "/v1/rooms/{room}/events", tag = "rooms", security(("bearer" = [])),
    params(("room" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Room id, 64 hex characters"), HistoryQuery),
    responses(
        (status = 200, description = "A page of events", body = HistoryReply),
        (status = 400, description = "Bad room id, cursor or limit", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "Unknown room, or not yours", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn history(
    State(state): State<Arc<ApiState>>,
    ApiPath(room): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
    user: SignedIn,
) -> Result<ApiJson<HistoryReply>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("bad_limit", "limit: from 1 to 1000"));
    }
    let mut before: Option<Cursor> = match &q.before {
        Some(text) => Some(
            text.parse()
                .map_err(|e| ApiError::bad_request("bad_cursor", format!("before: {e}")))?,
        ),
        None => None,
    };
    let (room, _, v) = room_for(&state, &room, &user.user).await?;
    if let Visible::Until(t) = v {
        // Start just after the moment the user left: nothing later is theirs to read.
        let cap = Cursor {
            time: Timestamp(t.0.saturating_add(1)),
            id: EventId([0; 32]),
        };
        before = Some(before.map_or(cap, |b| b.min(cap)));
    }
    let readers = state.node.readers().clone();
    let page = blocking(move || readers.history(&room, before, limit as usize)).await??;
    Ok(ApiJson(HistoryReply {
        events: page.events.iter().map(|e| api_event(e, None)).collect(),
        older: page.older.map(|c| c.to_string()),
    }))
}

/// The events that define the room: its create event and every membership and settings
/// change, oldest first. Clients need them to show a page of history with the right members.
#[utoipa::path(get, path = "/v1/rooms/{room}/state", tag = "rooms", security(("bearer" = [])),
    params(("room" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Room id, 64 hex characters")),
    responses(
        (status = 200, description = "The room-defining events", body = StateReply),
        (status = 400, description = "Bad room id", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "Unknown room, or not yours", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn room_state(
    State(state): State<Arc<ApiState>>,
    ApiPath(room): ApiPath<String>,
    user: SignedIn,
) -> Result<ApiJson<StateReply>, ApiError> {
    let (room, _, v) = room_for(&state, &room, &user.user).await?;
    let readers = state.node.readers().clone();
    let raws = blocking(move || readers.state_events(Some(&room))).await??;
    Ok(ApiJson(StateReply {
        events: raws
            .iter()
            .filter_map(|r| ApiEvent::from_raw(r))
            .filter(|e| v.allows(basis_core::Timestamp(e.time)))
            .collect(),
    }))
}
