//! What a Megolm message carries inside: the room, the sender and the message body.
//!
//! Encoding: one version byte ([`PLAINTEXT_VERSION`]), then postcard of `(room: [u8; 32],
//! sender: [u8; 32], body: MessageBody)`; nothing may follow. The body is never
//! `MessageBody::Encrypted` nor `MessageBody::EncryptedAttachment`.

use basis_core::{MessageBody, RoomId, UserId};
use serde::{Deserialize, Serialize};

/// Version byte in front of every encoded plaintext.
pub const PLAINTEXT_VERSION: u8 = 1;

/// Why a plaintext could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum PlaintextError {
    /// The body is itself an encrypted message.
    #[error("an encrypted message cannot contain another encrypted message")]
    NestedEncrypted,
    /// The version byte is unknown.
    #[error("unsupported plaintext version {0}")]
    UnsupportedVersion(u8),
    /// The bytes are not an encoded plaintext.
    #[error("malformed plaintext: {0}")]
    Malformed(String),
}

/// The decrypted content of an encrypted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plaintext {
    /// The room the message was written for; checked against the room it arrives in.
    pub room: RoomId,
    /// The user who wrote it; checked against the event's author.
    pub sender: UserId,
    /// The message itself (any kind but `Encrypted`).
    pub body: MessageBody,
}

#[derive(Serialize)]
struct WireRef<'a> {
    room: &'a RoomId,
    sender: &'a UserId,
    body: &'a MessageBody,
}

#[derive(Deserialize)]
struct Wire {
    room: RoomId,
    sender: UserId,
    body: MessageBody,
}

impl Plaintext {
    /// The encoded bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, PlaintextError> {
        if self.body.is_encrypted() {
            return Err(PlaintextError::NestedEncrypted);
        }
        let wire = WireRef {
            room: &self.room,
            sender: &self.sender,
            body: &self.body,
        };
        postcard::to_extend(&wire, vec![PLAINTEXT_VERSION])
            .map_err(|e| PlaintextError::Malformed(e.to_string()))
    }

    /// Decodes what [`Plaintext::to_bytes`] wrote, refusing nested encrypted bodies.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, PlaintextError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or_else(|| PlaintextError::Malformed("empty".into()))?;
        if version != PLAINTEXT_VERSION {
            return Err(PlaintextError::UnsupportedVersion(version));
        }
        let (wire, tail): (Wire, &[u8]) = postcard::take_from_bytes(rest)
            .map_err(|e| PlaintextError::Malformed(e.to_string()))?;
        if !tail.is_empty() {
            return Err(PlaintextError::Malformed("trailing bytes".into()));
        }
        if wire.body.is_encrypted() {
            return Err(PlaintextError::NestedEncrypted);
        }
        Ok(Self {
            room: wire.room,
            sender: wire.sender,
            body: wire.body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Plaintext {
        Plaintext {
            room: RoomId([1; 32]),
            sender: UserId([2; 32]),
            body: MessageBody::Text {
                text: "hello".into(),
            },
        }
    }

    #[test]
    fn round_trip_and_layout() {
        let p = sample();
        let bytes = p.to_bytes().unwrap();
        // version, room, sender, then the body exactly as postcard writes it.
        assert_eq!(bytes[0], PLAINTEXT_VERSION);
        assert_eq!(&bytes[1..33], &[1; 32]);
        assert_eq!(&bytes[33..65], &[2; 32]);
        assert_eq!(
            &bytes[65..],
            postcard::to_allocvec(&p.body).unwrap().as_slice()
        );
        assert_eq!(Plaintext::from_bytes(&bytes).unwrap(), p);
    }

    #[test]
    fn nested_encrypted_is_refused_both_ways() {
        let mut p = sample();
        p.body = MessageBody::Encrypted {
            session_id: vec![1],
            ciphertext: vec![2],
        };
        assert!(matches!(p.to_bytes(), Err(PlaintextError::NestedEncrypted)));
        let mut bytes = vec![PLAINTEXT_VERSION];
        bytes.extend(postcard::to_allocvec(&(p.room, p.sender, &p.body)).unwrap());
        assert!(matches!(
            Plaintext::from_bytes(&bytes),
            Err(PlaintextError::NestedEncrypted)
        ));
    }

    #[test]
    fn bad_version_truncation_and_trailing_bytes() {
        let bytes = sample().to_bytes().unwrap();
        let mut v2 = bytes.to_vec();
        v2[0] = 2;
        assert!(matches!(
            Plaintext::from_bytes(&v2),
            Err(PlaintextError::UnsupportedVersion(2))
        ));
        for len in 0..bytes.len() {
            assert!(Plaintext::from_bytes(&bytes[..len]).is_err());
        }
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(matches!(
            Plaintext::from_bytes(&long),
            Err(PlaintextError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Plaintext::from_bytes(&bytes);
        }
    }
}
