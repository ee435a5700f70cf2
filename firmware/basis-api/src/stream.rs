//! The `/v1/stream` WebSocket: what the node pushes (new events, typing and presence
//! notices, errors) and what a client sends (typing, presence). One JSON object per text
//! message, tagged by `type`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::events::ApiEvent;

/// What a notice is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// Someone started or stopped typing in a room.
    Typing,
    /// Someone's presence changed.
    Presence,
}

/// A user's presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// Using a client now.
    Online,
    /// A client is open but idle.
    Away,
    /// No client open.
    Offline,
}

impl Presence {
    /// The word the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }
}

/// An ephemeral notice: typing in a room, or presence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Notice {
    /// What it is about.
    pub kind: NoticeKind,
    /// Who.
    pub user: String,
    /// The room, for typing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// For typing: started (true) or stopped (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typing: Option<bool>,
    /// For presence: the new presence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Presence>,
}

/// A message the node sends on the stream: `{"type":"event","event":{...}}` for each new event
/// of the user's rooms, `{"type":"notice","notice":{...}}` for typing and presence, and
/// `{"type":"error","code":..,"message":..}` for a client message it cannot take.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamMessage {
    /// A new event of one of the user's rooms.
    Event {
        /// The event.
        event: ApiEvent,
    },
    /// A typing or presence notice.
    Notice {
        /// The notice.
        notice: Notice,
    },
    /// A client message that was not taken.
    Error {
        /// Stable code (`bad_notice`).
        code: String,
        /// What was wrong.
        message: String,
    },
}

/// A message a client sends on the stream: typing in a room it is joined to, or its presence.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamRequest {
    /// The user started (true) or stopped (false) typing in `room` (room id, hex).
    Typing {
        /// The room.
        room: String,
        /// Started or stopped.
        typing: bool,
    },
    /// The user's presence.
    Presence {
        /// The status.
        status: Presence,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_documented() {
        let typing: StreamRequest =
            serde_json::from_str(r#"{"type":"typing","room":"ab","typing":true}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(typing, StreamRequest::Typing { typing: true, .. }));
        let away: StreamRequest = serde_json::from_str(r#"{"type":"presence","status":"away"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            away,
            StreamRequest::Presence {
                status: Presence::Away
            }
        ));
        assert!(
            serde_json::from_str::<StreamRequest>(r#"{"type":"presence","status":"asleep"}"#)
                .is_err()
        );
    }

    #[test]
    fn notices_read_back() {
        let text = r#"{"type":"notice","notice":{"kind":"presence","user":"u","status":"online"}}"#;
        let m: StreamMessage = serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}"));
        let StreamMessage::Notice { notice } = m else {
            panic!("not a notice: {m:?}");
        };
        assert_eq!(notice.kind, NoticeKind::Presence);
        assert_eq!(notice.status, Some(Presence::Online));
    }
}
