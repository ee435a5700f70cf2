//! Conversions from the node's state into the client API's wire types (`basis_api`), and
//! the parsing of ids in paths and bodies.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use basis_api::events::ApiEvent;
use basis_api::rooms::{MemberInfo, RoomInfo};
use basis_api::users::UserInfo;
use basis_core::room::RoomState;
use basis_core::{RoomId, UserId};
use basis_store::StoredEvent;

use super::index::ProfileEntry;

/// A stored event as the API returns it.
pub fn api_event(e: &StoredEvent, seq: Option<u64>) -> ApiEvent {
    ApiEvent {
        seq,
        id: e.id.to_string(),
        room: e.room.to_string(),
        time: e.time.0,
        raw: STANDARD.encode(&e.raw),
    }
}

/// A user's profile as the API returns it, from the index's entry.
pub fn user_info(user: &UserId, p: &ProfileEntry) -> UserInfo {
    UserInfo {
        user: user.to_string(),
        name: p.profile.name.clone(),
        agreement_key: hex::encode(p.profile.agreement_key),
        time: p.time.0,
        event: p.id.to_string(),
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
        history: state.history.into(),
        creator: state.creator.map(|c| c.to_string()).unwrap_or_default(),
        standing: state
            .standing(user)
            .map_or(basis_api::rooms::Standing::None, Into::into),
        members: state
            .members
            .iter()
            .map(|(u, (s, _))| {
                let p = profile(u);
                MemberInfo {
                    user: u.to_string(),
                    standing: (*s).into(),
                    name: p.as_ref().map(|p| p.profile.name.clone()),
                    agreement_key: p.map(|p| hex::encode(p.profile.agreement_key)),
                }
            })
            .collect(),
        heads,
        latest_time,
    }
}
