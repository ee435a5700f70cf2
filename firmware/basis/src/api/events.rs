//! Posting client-signed events: any kind at `/v1/events`, and the room operations (create,
//! invite, join, leave, remove) at their own paths, which check the kind they expect.
//!
//! The node validates the event (format, signature), that its author is the signed-in user,
//! and the room's rules as this node knows them ([`basis_core::room`]); then it stores the
//! event durably and replicates it. In an encrypted room only encrypted messages are taken.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use basis_core::encoding::decode_event;
use basis_core::validate::validate;
use basis_core::{Body, EventId, MessageBody, RoomId, UserId};

use super::auth::SignedIn;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use basis_api::events::{PostEvent, Posted};

use super::types::parse_id;
use super::{ApiState, blocking, current_index};

/// What a path accepts.
enum Expect {
    Any,
    Create,
    Membership(RoomId),
}

async fn post(
    state: &Arc<ApiState>,
    user: &SignedIn,
    body: PostEvent,
    expect: Expect,
) -> Result<(StatusCode, ApiJson<Posted>), ApiError> {
    let bytes = STANDARD.decode(body.event.trim()).map_err(|_| {
        ApiError::bad_request(
            "bad_base64",
            "event: expected standard base64 of the event bytes",
        )
    })?;
    let event = validate(&bytes).map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let c = &event.event().content;
    if c.author != user.user {
        return Err(ApiError::forbidden(
            "wrong_author",
            format!(
                "the event is signed by {} but you are signed in as {}; post only your own events",
                c.author.short(),
                user.user.short()
            ),
        ));
    }
    match (&expect, &c.body) {
        (Expect::Any, _) | (Expect::Create, Body::Create(_)) => {}
        (Expect::Membership(room), Body::Membership { .. }) if *room == event.room() => {}
        (Expect::Create, _) => {
            return Err(ApiError::bad_request(
                "wrong_kind",
                "this path takes a room-create event",
            ));
        }
        (Expect::Membership(_), _) => {
            return Err(ApiError::bad_request(
                "wrong_kind",
                "this path takes a membership event of the room in the path",
            ));
        }
    }
    let room = event.room();
    if !matches!(c.body, Body::Create(_) | Body::Profile(_)) {
        current_index(state).await?;
        let Some(rs) = state.index.room(&room) else {
            return Err(ApiError::not_found(
                "unknown_room",
                "this node does not hold the room's create event (yet); check the room id or try again once the nodes have synced",
            ));
        };
        rs.check(event.event())
            .map_err(|e| ApiError::forbidden(e.code(), e.to_string()))?;
        // `Encrypted` and `EncryptedAttachment` (a file's event: its descriptor and key are
        // in the ciphertext, only the chunks' address and layout in the clear).
        let plaintext_message = matches!(&c.body, Body::Message(m) if !m.is_encrypted());
        if rs.encrypted && plaintext_message {
            return Err(ApiError::bad_request(
                "must_encrypt",
                "this room is end-to-end encrypted: messages must be encrypted",
            ));
        }
        // In a room without encryption the node sees what an edit or delete targets and
        // refuses what every reader would ignore. (In an encrypted room only the clients can
        // tell, and they refuse before sending.)
        if let Body::Message(MessageBody::Edit { target, .. } | MessageBody::Delete { target }) =
            &c.body
        {
            let edit = matches!(c.body, Body::Message(MessageBody::Edit { .. }));
            check_change(state, room, c.author, *target, edit).await?;
        }
    }
    let state_kind = matches!(
        c.body,
        Body::Create(_) | Body::Membership { .. } | Body::Settings(_) | Body::Profile(_)
    );
    let stored = state.node.store_valid(event).await?;
    if state_kind {
        current_index(state).await?;
    }
    let status = if stored.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        ApiJson(Posted {
            id: stored.id.to_string(),
            room: stored.room.to_string(),
            new: stored.new,
        }),
    ))
}

/// Refuses an edit (`edit`) or delete of `target` by `author` in `room` unless the target is
/// the author's own text message (or file, for a delete) in that room.
async fn check_change(
    state: &Arc<ApiState>,
    room: RoomId,
    author: UserId,
    target: EventId,
    edit: bool,
) -> Result<(), ApiError> {
    let readers = state.node.readers().clone();
    let raw = blocking(move || readers.raw_many(&[target])).await??;
    let Some(target_event) = raw.first().and_then(|b| decode_event(b).ok()) else {
        return Err(ApiError::not_found(
            "unknown_target",
            "the message to change is not on this node; check its id (basis history shows ids)",
        ));
    };
    let t = &target_event.content;
    let in_room = t.room == Some(room);
    let is_message = matches!(
        t.body,
        Body::Message(MessageBody::Text { .. } | MessageBody::File(_) | MessageBody::Attachment(_))
    );
    if !in_room || !is_message {
        return Err(ApiError::forbidden(
            "not_a_message",
            "that event is not a message of this room: only messages can be edited or deleted",
        ));
    }
    if t.author != author {
        return Err(ApiError::forbidden(
            "not_your_message",
            "that message was written by someone else: only its author can edit or delete it",
        ));
    }
    if edit && !matches!(t.body, Body::Message(MessageBody::Text { .. })) {
        return Err(ApiError::bad_request(
            "not_text",
            "only text messages can be edited",
        ));
    }
    Ok(())
}

/// Store any event signed by the signed-in user.
#[utoipa::path(post, path = "/v1/events", tag = "events", request_body = PostEvent,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Stored (durable) and offered to the federation", body = Posted),
        (status = 200, description = "The node already held it", body = Posted),
        (status = 400, description = "Malformed, invalid, or plaintext in an encrypted room", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not your event, or the room's rules refuse it", body = ErrorBody),
        (status = 404, description = "The room is not known to this node", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn post_event(
    State(state): State<Arc<ApiState>>,
    user: SignedIn,
    ApiJson(body): ApiJson<PostEvent>,
) -> Result<(StatusCode, ApiJson<Posted>), ApiError> {
    post(&state, &user, body, Expect::Any).await
}

/// Create a room with a signed room-create event; the room id is the event id.
#[utoipa::path(post, path = "/v1/rooms", tag = "rooms", request_body = PostEvent,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Room created", body = Posted),
        (status = 200, description = "The node already held it", body = Posted),
        (status = 400, description = "Malformed, invalid or not a create event", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not your event", body = ErrorBody),
        (status = 404, description = "Not found", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn create_room(
    State(state): State<Arc<ApiState>>,
    user: SignedIn,
    ApiJson(body): ApiJson<PostEvent>,
) -> Result<(StatusCode, ApiJson<Posted>), ApiError> {
    post(&state, &user, body, Expect::Create).await
}

/// Invite, join, leave or remove: a signed membership event of this room.
#[utoipa::path(post, path = "/v1/rooms/{room}/members", tag = "rooms", request_body = PostEvent,
    security(("bearer" = [])),
    params(("room" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "Room id, 64 hex characters")),
    responses(
        (status = 201, description = "Stored", body = Posted),
        (status = 200, description = "The node already held it", body = Posted),
        (status = 400, description = "Malformed, invalid or not a membership event of this room", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 403, description = "Not your event, or the room's rules refuse it", body = ErrorBody),
        (status = 404, description = "The room is not known to this node", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn post_membership(
    State(state): State<Arc<ApiState>>,
    ApiPath(room): ApiPath<String>,
    user: SignedIn,
    ApiJson(body): ApiJson<PostEvent>,
) -> Result<(StatusCode, ApiJson<Posted>), ApiError> {
    let room: RoomId = parse_id("room", &room)?;
    post(&state, &user, body, Expect::Membership(room)).await
}
