//! Events: posting one, and the shapes in which the node returns them (a room's state, a page
//! of its history, the sync feed).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// An event to store, signed by the client.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PostEvent {
    /// Standard base64 of the event's canonical wire bytes (see docs/PROTOCOL.md).
    #[schema(
        pattern = "^(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$|^[A-Za-z0-9+/]{2}==$|^[A-Za-z0-9+/]{3}=$",
        min_length = 4
    )]
    pub event: String,
}

/// A stored event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Posted {
    /// The event id.
    pub id: String,
    /// Its room.
    pub room: String,
    /// False when the node already held it.
    pub new: bool,
}

/// An event as the API returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiEvent {
    /// Position in this node's feed (`since` for /v1/sync); absent in history pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The event id.
    pub id: String,
    /// Its room.
    pub room: String,
    /// Author's hybrid timestamp (milliseconds << 16 | counter).
    pub time: u64,
    /// Standard base64 of the wire bytes; clients decode and verify these.
    pub raw: String,
}

impl ApiEvent {
    /// From stored wire bytes (`None` if they do not decode).
    pub fn from_raw(raw: &[u8]) -> Option<ApiEvent> {
        let e = basis_core::encoding::decode_event(raw).ok()?;
        Some(ApiEvent {
            seq: None,
            id: basis_core::event::id_of(raw).to_string(),
            room: e.room_id().to_string(),
            time: e.content.time.0,
            raw: STANDARD.encode(raw),
        })
    }
}

/// The events that define a room (create, membership, settings), oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StateReply {
    /// The events.
    pub events: Vec<ApiEvent>,
}

/// A page of a room's history, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct HistoryReply {
    /// Events, newest first.
    pub events: Vec<ApiEvent>,
    /// Pass as `before` for the next older page; absent at the beginning of the room.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub older: Option<String>,
}

/// History paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// A cursor from an earlier page's `older`; absent for the newest page.
    #[param(pattern = "^[0-9]{1,19}-[0-9a-fA-F]{64}$")]
    pub before: Option<String>,
    /// Events per page, 1 to 1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// Sync paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SyncQuery {
    /// `next` of the previous sync; 0 or absent for everything.
    pub since: Option<u64>,
    /// Most events to return, 1 to 1000 (default 500).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// When nothing is new, wait up to this many milliseconds (0 to 30000, default 0).
    #[param(minimum = 0, maximum = 30000)]
    pub wait_ms: Option<u64>,
}

/// New events in the user's rooms.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncReply {
    /// Events in arrival order at this node.
    pub events: Vec<ApiEvent>,
    /// Pass as `since` next time.
    pub next: u64,
    /// True when more events are waiting (call again at once).
    pub more: bool,
}
