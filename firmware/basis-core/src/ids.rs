//! Identifiers: 32-byte values shown as lowercase hex, with an 8-character short form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a textual identifier could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    /// The text is not 64 hexadecimal characters.
    #[error("expected 64 hexadecimal characters, got {len} characters")]
    Length {
        /// Length of the text that was given.
        len: usize,
    },
    /// The text has a character that is not hexadecimal.
    #[error("not hexadecimal: {0}")]
    Hex(String),
}

fn parse_hex32(s: &str) -> Result<[u8; 32], IdParseError> {
    let s = s.trim();
    if s.len() != 64 {
        return Err(IdParseError::Length { len: s.len() });
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|e| IdParseError::Hex(e.to_string()))?;
    Ok(out)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        // Binary formats get the 32 raw bytes; human-readable ones (JSON) get hex.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.to_string())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let text = String::deserialize(d)?;
                    text.parse().map_err(serde::de::Error::custom)
                } else {
                    <[u8; 32]>::deserialize(d).map(Self)
                }
            }
        }

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The first 8 hex characters, for logs and tables.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }

            /// Builds the identifier from a byte slice that must be exactly 32 bytes long.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                <[u8; 32]>::try_from(bytes).ok().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_hex32(s).map(Self)
            }
        }
    };
}

id_type!(
    /// Id of an event: SHA-256 of its complete signed encoding.
    EventId
);
id_type!(
    /// Id of a room: the id of the room's create event.
    RoomId
);
id_type!(
    /// A user: the user's ed25519 public signing key.
    UserId
);
id_type!(
    /// A node: the node's ed25519 public key.
    NodeId
);

impl From<EventId> for RoomId {
    fn from(id: EventId) -> Self {
        RoomId(id.0)
    }
}

/// Domain prefix of profile-room ids, so they can never collide with an event id.
const PROFILE_ROOM_CONTEXT: &[u8] = b"basis/profile-room/v1\n";

/// The room that holds a user's profile events: SHA-256 of a fixed prefix and the user id.
/// Nobody creates it; validation only lets the user themself write there.
pub fn profile_room(user: &UserId) -> RoomId {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(PROFILE_ROOM_CONTEXT);
    h.update(user.as_bytes());
    RoomId(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_short_form() {
        let id = EventId([0xab; 32]);
        let text = id.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(id.short(), "abababab");
        assert_eq!(text.parse::<EventId>().unwrap(), id);
    }

    #[test]
    fn bad_text_is_refused_with_reason() {
        assert_eq!(
            "abc".parse::<RoomId>().unwrap_err(),
            IdParseError::Length { len: 3 }
        );
        let bad = "zz".repeat(32);
        assert!(matches!(bad.parse::<RoomId>(), Err(IdParseError::Hex(_))));
    }
}
