//! The parts of the node's JSON replies the module reads, parsed from the reply text as it
//! came so 64-bit times keep every bit.
//!
//! These mirror fields of the node's API types (`firmware/basis/src/api/types.rs`:
//! `RoomInfo`, `MemberInfo`, `ChallengeReply`, `NodeInfo`); unknown fields are ignored.

use basis_core::{EventId, RoomId, Timestamp, UserId};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::WebError;

/// One member as the node describes it.
#[derive(Debug, Deserialize)]
pub(crate) struct Member {
    /// The user id, hex.
    pub user: String,
    /// `invited`, `joined`, `left` or `removed`.
    pub standing: String,
    /// The published agreement key, hex.
    #[serde(default)]
    pub agreement_key: Option<String>,
}

/// A room as the node describes it (`GET /v1/rooms/{room}`).
#[derive(Debug, Deserialize)]
pub(crate) struct RoomInfo {
    /// The room id, hex.
    pub room: String,
    /// Whether messages must be end-to-end encrypted.
    #[serde(default)]
    pub encrypted: bool,
    /// Everyone with a standing in the room.
    #[serde(default)]
    pub members: Vec<Member>,
    /// The newest events' ids, hex.
    #[serde(default)]
    pub heads: Vec<String>,
    /// Timestamp of the newest event.
    #[serde(default)]
    pub latest_time: u64,
}

impl RoomInfo {
    /// The room id.
    pub fn room_id(&self) -> Result<RoomId, WebError> {
        self.room
            .parse()
            .map_err(|e| WebError::BadReply(format!("bad room id: {e}")))
    }

    /// The heads that parse, as the command-line client names them as parents.
    pub fn parents(&self) -> Vec<EventId> {
        self.heads.iter().filter_map(|h| h.parse().ok()).collect()
    }

    /// The newest timestamp.
    pub fn latest(&self) -> Timestamp {
        Timestamp(self.latest_time)
    }

    /// Members who receive the room's keys, with their agreement key when published, as the
    /// command-line client reads them.
    pub fn key_members(&self) -> Vec<(UserId, Option<[u8; 32]>)> {
        self.members
            .iter()
            .filter_map(|m| {
                basis_e2ee::key_member(&m.user, &m.standing, m.agreement_key.as_deref())
            })
            .collect()
    }
}

/// The answer to `POST /v1/auth/challenge`.
#[derive(Debug, Deserialize)]
pub(crate) struct ChallengeReply {
    /// 32 random bytes, hex.
    pub challenge: String,
    /// The node's id, hex.
    pub node_id: String,
}

/// The part of `GET /v1/status` the clock needs.
#[derive(Debug, Deserialize)]
pub(crate) struct NodeTime {
    /// The node's hybrid clock.
    pub time: u64,
}

/// Parses a reply text.
pub(crate) fn parse<T: DeserializeOwned>(what: &str, text: &str) -> Result<T, WebError> {
    serde_json::from_str(text).map_err(|e| WebError::BadReply(format!("{what}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_info_keeps_64_bit_times_and_picks_key_members() {
        let me = "11".repeat(32);
        let invited = "22".repeat(32);
        let left = "33".repeat(32);
        let key = "ab".repeat(32);
        let text = format!(
            r#"{{"room":"{r}","name":"x","encrypted":true,"history":"since_join",
            "creator":"{me}","standing":"joined","latest_time":117093590311632897,
            "heads":["{h}","nonsense"],
            "members":[{{"user":"{me}","standing":"joined","agreement_key":"{key}"}},
                       {{"user":"{invited}","standing":"invited"}},
                       {{"user":"{left}","standing":"left","agreement_key":"{key}"}}]}}"#,
            r = "44".repeat(32),
            h = "55".repeat(32),
        );
        let info: RoomInfo = parse("room", &text).unwrap();
        assert_eq!(info.latest_time, 117_093_590_311_632_897);
        assert_eq!(info.parents(), vec![EventId([0x55; 32])]);
        assert_eq!(
            info.key_members(),
            vec![
                (UserId([0x11; 32]), Some([0xab; 32])),
                (UserId([0x22; 32]), None)
            ]
        );
        assert!(parse::<RoomInfo>("room", "{").is_err());
    }
}
