//! Users' published profiles.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

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
