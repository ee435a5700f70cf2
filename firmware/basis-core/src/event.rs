//! The event: signed, content-addressed, immutable.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::body::Body;
use crate::encoding;
use crate::hlc::Timestamp;
use crate::ids::{EventId, RoomId, UserId};
use crate::keys::UserKey;

/// The event format version this code writes and reads.
pub const PROTOCOL_VERSION: u8 = 1;

/// Prefix of every signed message, so an event signature can never be mistaken for a
/// signature over anything else the same key signs.
pub const SIGNING_CONTEXT: &[u8] = b"basis/event/v1\n";

/// The signed part of an event. Field order is the wire order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventContent {
    /// Format version; [`PROTOCOL_VERSION`].
    pub version: u8,
    /// The room; `None` only on a room-create event, whose id becomes the room id.
    pub room: Option<RoomId>,
    /// The author: the user whose key signs the event.
    pub author: UserId,
    /// The room's latest events the author knew of (bounded).
    pub parents: Vec<EventId>,
    /// Hybrid logical clock reading of the author.
    pub time: Timestamp,
    /// What the event says.
    pub body: Body,
}

/// A signed event. Its wire form is the content's canonical encoding followed by the
/// 64-byte signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The signed content.
    pub content: EventContent,
    /// ed25519 signature of [`SIGNING_CONTEXT`] followed by the content's encoding.
    #[serde(with = "crate::sig")]
    pub signature: [u8; 64],
}

impl EventContent {
    /// The message the author signs: context prefix, then the canonical content bytes.
    pub fn signing_message(&self) -> Vec<u8> {
        let body = encoding::encode(self);
        let mut m = Vec::with_capacity(SIGNING_CONTEXT.len() + body.len());
        m.extend_from_slice(SIGNING_CONTEXT);
        m.extend_from_slice(&body);
        m
    }

    /// Signs the content with the author's key. The key must belong to `author`; validation
    /// refuses the event otherwise.
    pub fn sign(self, key: &UserKey) -> Event {
        let signature = key.sign(&self.signing_message());
        Event {
            content: self,
            signature,
        }
    }
}

impl Event {
    /// The canonical wire bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        encoding::encode(self)
    }

    /// The content-addressed id: SHA-256 of the wire bytes.
    pub fn id(&self) -> EventId {
        id_of(&self.to_bytes())
    }

    /// The room this event belongs to: its own id for a room-create event.
    pub fn room_id(&self) -> RoomId {
        match self.content.room {
            Some(room) => room,
            None => self.id().into(),
        }
    }
}

/// SHA-256 of an event's wire bytes.
pub fn id_of(bytes: &[u8]) -> EventId {
    EventId(Sha256::digest(bytes).into())
}
