//! Request and reply bodies of the client API, as the OpenAPI document describes them.
//! Ids are 64 lowercase hex characters; events travel as standard base64 of their wire bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use basis_core::room::{RoomState, Standing};
use basis_core::{History, RoomId, UserId};
use basis_store::StoredEvent;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::index::ProfileEntry;

/// Ask for a sign-in challenge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChallengeRequest {
    /// The user id (public key, 64 hex characters).
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub user: String,
}

/// A challenge to sign.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChallengeReply {
    /// 32 random bytes, hex. Sign `basis/auth/v1\n` ‖ node id ‖ challenge (raw bytes).
    pub challenge: String,
    /// The node's id, hex (part of the signed message).
    pub node_id: String,
    /// Seconds the challenge may be answered.
    pub expires_in_secs: u64,
}

/// A signed challenge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionRequest {
    /// The user id, hex.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub user: String,
    /// The challenge, hex, as received.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub challenge: String,
    /// ed25519 signature of the sign-in message, 128 hex characters.
    #[schema(pattern = "^[0-9a-fA-F]{128}$")]
    pub signature: String,
}

/// A new session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionReply {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The signed-in user.
    pub user: String,
    /// Seconds until the token expires.
    pub expires_in_secs: u64,
}

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

    /// From a stored event.
    pub fn from_stored(e: &StoredEvent, seq: Option<u64>) -> ApiEvent {
        ApiEvent {
            seq,
            id: e.id.to_string(),
            room: e.room.to_string(),
            time: e.time.0,
            raw: STANDARD.encode(&e.raw),
        }
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

/// A member of a room.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberInfo {
    /// The user id.
    pub user: String,
    /// `invited`, `joined`, `left` or `removed`.
    pub standing: String,
    /// Display name from the user's profile, if the node has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's current X25519 key (hex) for sealing room keys, if published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_key: Option<String>,
}

/// A room as the signed-in user may see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoomInfo {
    /// The room id.
    pub room: String,
    /// Its name (visible to nodes; message content is not).
    pub name: String,
    /// Whether messages are end-to-end encrypted.
    pub encrypted: bool,
    /// `since_join` or `shared`.
    pub history: String,
    /// The creator (the room's admin).
    pub creator: String,
    /// The signed-in user's standing.
    pub standing: String,
    /// Everyone with a standing in the room.
    pub members: Vec<MemberInfo>,
    /// The newest events' ids, to name as parents of a new event.
    pub heads: Vec<String>,
    /// Timestamp of the newest event (0 when unknown).
    pub latest_time: u64,
}

/// Every room the signed-in user has a standing in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoomList {
    /// The rooms, newest activity first.
    pub rooms: Vec<RoomInfo>,
}

/// A user's published profile.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserInfo {
    /// The user id.
    pub user: String,
    /// Display name.
    pub name: String,
    /// Current X25519 key-agreement key, hex.
    pub agreement_key: String,
    /// Timestamp of the profile event.
    pub time: u64,
    /// The profile event's id.
    pub event: String,
}

impl UserInfo {
    /// From the index's entry.
    pub fn new(user: &UserId, p: &ProfileEntry) -> UserInfo {
        UserInfo {
            user: user.to_string(),
            name: p.profile.name.clone(),
            agreement_key: hex::encode(p.profile.agreement_key),
            time: p.time.0,
            event: p.id.to_string(),
        }
    }
}

/// A peer node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PeerInfo {
    /// Node id, hex.
    pub node_id: String,
    /// Its name.
    pub name: String,
    /// `connected`, `connecting`, `disconnected` or `refused`.
    pub state: String,
    /// Round-trip time, milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

/// Peers of this node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PeerList {
    /// The peers.
    pub peers: Vec<PeerInfo>,
}

/// What the node says about itself to clients.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    /// Node id, hex.
    pub node_id: String,
    /// Node name.
    pub name: String,
    /// Version of the software.
    pub version: String,
    /// Events held.
    pub events: u64,
    /// Peers linked now.
    pub peers_connected: u64,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The node's hybrid clock now (clients observe it so their timestamps sort after it).
    pub time: u64,
    /// On a gateway: the WAN link, `up` or `down`, with why (absent without a bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wan: Option<String>,
    /// On a gateway: each upstream node and where the bridge stands with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<UpstreamInfo>,
}

/// An upstream node of a gateway, as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpstreamInfo {
    /// Node id, hex.
    pub node_id: String,
    /// `waiting for the WAN`, `linking`, `linked`, `unreachable` or `refused`.
    pub state: String,
}

/// The name of a standing.
pub fn standing_name(s: Standing) -> &'static str {
    match s {
        Standing::Invited => "invited",
        Standing::Joined => "joined",
        Standing::Left => "left",
        Standing::Removed => "removed",
    }
}

/// The name of a history setting.
pub fn history_name(h: Option<History>) -> &'static str {
    match h {
        Some(History::Shared) => "shared",
        _ => "since_join",
    }
}

/// Parses an id path or body field.
pub fn parse_id<T: std::str::FromStr>(field: &str, text: &str) -> Result<T, super::ApiError> {
    text.parse().map_err(|_| {
        super::ApiError::bad_request(
            "bad_id",
            format!(
                "{field}: expected 64 hex characters, got {:?}",
                truncate(text)
            ),
        )
    })
}

fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Summary of one room for `user`.
pub fn room_info(
    room: RoomId,
    state: &RoomState,
    user: &UserId,
    heads: Vec<String>,
    latest_time: u64,
    profile: impl Fn(&UserId) -> Option<ProfileEntry>,
) -> RoomInfo {
    RoomInfo {
        room: room.to_string(),
        name: state.name.clone(),
        encrypted: state.encrypted,
        history: history_name(state.history).to_string(),
        creator: state.creator.map(|c| c.to_string()).unwrap_or_default(),
        standing: state
            .standing(user)
            .map(standing_name)
            .unwrap_or("none")
            .to_string(),
        members: state
            .members
            .iter()
            .map(|(u, (s, _))| {
                let p = profile(u);
                MemberInfo {
                    user: u.to_string(),
                    standing: standing_name(*s).to_string(),
                    name: p.as_ref().map(|p| p.profile.name.clone()),
                    agreement_key: p.map(|p| hex::encode(p.profile.agreement_key)),
                }
            })
            .collect(),
        heads,
        latest_time,
    }
}
