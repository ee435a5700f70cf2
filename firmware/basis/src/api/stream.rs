//! `/v1/stream`: a WebSocket that pushes new events of the user's rooms as they arrive, and
//! carries ephemeral notices (typing, presence) that are relayed, never stored.
//!
//! Server → client, one JSON object per text message:
//! `{"type":"event","event":{..ApiEvent..}}` and
//! `{"type":"notice","notice":{"kind":"typing","user":..,"room":..,"typing":true}}`.
//! Client → server: `{"type":"typing","room":"<id>","typing":true}` or
//! `{"type":"presence","status":"online"}` (`online`, `away` or `offline`). Notices go to
//! this node's other clients and, over federation, to the clients of linked nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use basis_core::room::Standing;
use basis_core::{RoomId, UserId};
use basis_proto::{NoticeKind, Presence};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiState;
use super::auth::SignedIn;
use super::error::{ApiError, ErrorBody};
use super::extract::ApiQuery;
use super::sync::read_feed;
use basis_api::stream::{Notice, StreamMessage, StreamRequest};

/// Most notices a connection may send per second; more are dropped.
const NOTICES_PER_SEC: u32 = 10;
/// Largest message a client may send on the socket.
const MAX_CLIENT_MESSAGE: usize = 4096;

/// Where the stream starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Start after this feed position (`next` of a sync); absent: only events from now on.
    pub since: Option<u64>,
}

/// A notice as relayed inside the node, with parsed ids for filtering.
#[derive(Debug, Clone)]
pub struct Relayed {
    user: UserId,
    room: Option<RoomId>,
    kind: NoticeKind,
    notice: Notice,
}

/// Open the live stream (WebSocket upgrade).
#[utoipa::path(get, path = "/v1/stream", tag = "events", security(("bearer" = [])),
    params(StreamQuery,
        ("access_token" = Option<String>, Query, description = "The session token, for clients that cannot set an Authorization header")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade, or bad parameters", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn stream(
    State(state): State<Arc<ApiState>>,
    ApiQuery(q): ApiQuery<StreamQuery>,
    me: SignedIn,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let since = super::sync::check_since(q.since)?;
    let ws = ws.map_err(|e| ApiError::bad_request("not_websocket", e.body_text()))?;
    let user = me.user;
    Ok(ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| run(state, user, since, socket)))
}

fn shares_a_room(state: &ApiState, a: &UserId, b: &UserId) -> bool {
    state
        .index
        .rooms_of(a)
        .iter()
        .any(|(_, rs)| rs.is_member(a) && rs.is_member(b))
}

/// A notice as this node's clients receive it.
pub fn relayed(user: UserId, room: Option<RoomId>, kind: NoticeKind) -> Relayed {
    let (typing, status) = match kind {
        NoticeKind::Typing(t) => (Some(t), None),
        NoticeKind::Presence(p) => (None, Some(presence_word(p))),
    };
    Relayed {
        user,
        room,
        kind,
        notice: Notice {
            kind: if typing.is_some() {
                basis_api::stream::NoticeKind::Typing
            } else {
                basis_api::stream::NoticeKind::Presence
            },
            user: user.to_string(),
            room: room.map(|r| r.to_string()),
            typing,
            status,
        },
    }
}

/// A presence in the API's words.
fn presence_word(p: Presence) -> basis_api::stream::Presence {
    match p {
        Presence::Online => basis_api::stream::Presence::Online,
        Presence::Away => basis_api::stream::Presence::Away,
        Presence::Offline => basis_api::stream::Presence::Offline,
    }
}

fn parse_incoming(state: &ApiState, user: UserId, text: &str) -> Option<Relayed> {
    match serde_json::from_str::<StreamRequest>(text).ok()? {
        StreamRequest::Typing { room, typing } => {
            let room: RoomId = room.parse().ok()?;
            let rs = state.index.room(&room)?;
            (rs.standing(&user) == Some(Standing::Joined))
                .then(|| relayed(user, Some(room), NoticeKind::Typing(typing)))
        }
        StreamRequest::Presence { status } => {
            let p = match status {
                basis_api::stream::Presence::Online => Presence::Online,
                basis_api::stream::Presence::Away => Presence::Away,
                basis_api::stream::Presence::Offline => Presence::Offline,
            };
            Some(relayed(user, None, NoticeKind::Presence(p)))
        }
    }
}

fn for_me(state: &ApiState, me: &UserId, n: &Relayed) -> bool {
    if n.user == *me {
        return false;
    }
    match n.room {
        Some(room) => state.index.room(&room).is_some_and(|rs| rs.is_member(me)),
        None => shares_a_room(state, me, &n.user),
    }
}

async fn run(state: Arc<ApiState>, me: UserId, since: Option<u64>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let mut committed = state.node.committed();
    let mut position = match since {
        Some(s) => s,
        None => *committed.borrow_and_update(),
    };
    let mut notices = state.notices.subscribe();
    let mut window = (Instant::now(), 0u32);
    // Events already waiting (when `since` was given) go out before anything else.
    let mut pending = since.is_some();
    loop {
        if pending {
            committed.borrow_and_update();
            let page = match read_feed(&state, me, position, 500).await {
                Ok(p) => p,
                Err(e) => {
                    log::warn!("api: stream of {} stopped: {}", me.short(), e.message);
                    break;
                }
            };
            position = page.next;
            pending = page.more;
            for event in &page.events {
                let text = serde_json::to_string(&StreamMessage::Event {
                    event: event.clone(),
                })
                .unwrap_or_default();
                if tx.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                    return;
                }
            }
            continue;
        }
        tokio::select! {
            () = state.stop.cancelled() => {
                let _ = tx.send(Message::Close(None)).await;
                break;
            }
            changed = committed.changed() => {
                if changed.is_err() { break; }
                pending = true;
            }
            notice = notices.recv() => match notice {
                Ok(n) if for_me(&state, &me, &n) => {
                    let text = serde_json::to_string(&StreamMessage::Notice { notice: n.notice.clone() })
                        .unwrap_or_default();
                    if tx.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                        break;
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            incoming = rx.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if window.0.elapsed() >= Duration::from_secs(1) {
                        window = (Instant::now(), 0);
                    }
                    window.1 += 1;
                    if window.1 > NOTICES_PER_SEC {
                        continue;
                    }
                    match parse_incoming(&state, me, text.as_str()) {
                        Some(n) => {
                            // To this node's other clients, and to the clients of linked nodes.
                            if let Some(f) = state.node.federation() {
                                f.send_notice(basis_proto::Notice { user: n.user, room: n.room, kind: n.kind });
                            }
                            let _ = state.notices.send(n);
                        }
                        None => {
                            let err = StreamMessage::Error {
                                code: "bad_notice".into(),
                                message: "expected {\"type\":\"typing\",\"room\":ROOM,\"typing\":BOOL} as a member, or {\"type\":\"presence\",\"status\":\"online|away|offline\"}".into(),
                            };
                            let text = serde_json::to_string(&err).unwrap_or_default();
                            if tx.send(Message::Text(Utf8Bytes::from(text))).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}
