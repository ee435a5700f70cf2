//! Rooms as the signed-in user sees them: name, encryption, members and their standing.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Where a user stands in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Standing {
    /// Invited, not yet joined.
    Invited,
    /// A member.
    Joined,
    /// Left on their own.
    Left,
    /// Removed by the room's admin.
    Removed,
    /// No standing at all (only in [`RoomInfo::standing`], for a room the user may see
    /// without being in it).
    None,
}

impl Standing {
    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Invited => "invited",
            Standing::Joined => "joined",
            Standing::Left => "left",
            Standing::Removed => "removed",
            Standing::None => "none",
        }
    }

    /// Invited or joined: the user belongs to the room (or may join it).
    pub fn is_current(self) -> bool {
        matches!(self, Standing::Invited | Standing::Joined)
    }
}

impl From<basis_core::room::Standing> for Standing {
    fn from(s: basis_core::room::Standing) -> Standing {
        match s {
            basis_core::room::Standing::Invited => Standing::Invited,
            basis_core::room::Standing::Joined => Standing::Joined,
            basis_core::room::Standing::Left => Standing::Left,
            basis_core::room::Standing::Removed => Standing::Removed,
        }
    }
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which messages a new member may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum History {
    /// Only those sent after they joined (the default).
    SinceJoin,
    /// The room's whole history.
    Shared,
}

impl From<Option<basis_core::History>> for History {
    fn from(h: Option<basis_core::History>) -> History {
        match h {
            Some(basis_core::History::Shared) => History::Shared,
            _ => History::SinceJoin,
        }
    }
}

/// A member of a room.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MemberInfo {
    /// The user id.
    pub user: String,
    /// Where they stand.
    pub standing: Standing,
    /// Display name from the user's profile, if the node has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The user's current X25519 key (hex) for sealing room keys, if published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// Which messages a new member may read.
    pub history: History,
    /// The creator (the room's admin).
    pub creator: String,
    /// The signed-in user's standing.
    pub standing: Standing,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_the_documented_words() {
        let words: Vec<String> = [
            Standing::Invited,
            Standing::Joined,
            Standing::Left,
            Standing::Removed,
            Standing::None,
        ]
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
        assert_eq!(
            words,
            [
                r#""invited""#,
                r#""joined""#,
                r#""left""#,
                r#""removed""#,
                r#""none""#
            ]
        );
        for s in [Standing::Invited, Standing::Joined, Standing::None] {
            assert_eq!(serde_json::to_string(&s).ok(), Some(format!("\"{s}\"")));
        }
        assert_eq!(
            serde_json::to_string(&History::SinceJoin).ok().as_deref(),
            Some(r#""since_join""#)
        );
        assert_eq!(
            History::from(Some(basis_core::History::Shared)),
            History::Shared
        );
    }
}
