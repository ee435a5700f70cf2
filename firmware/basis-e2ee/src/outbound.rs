//! A sender's Megolm session in one room: encrypting, sharing its key, knowing when to rotate.

use std::collections::BTreeSet;
use std::fmt;

use basis_core::limits::MAX_SEALED_KEYS;
use basis_core::{KeyShare, MessageBody, RoomId, UserId};
use serde::{Deserialize, Serialize};
use vodozemac::megolm::{GroupSession, GroupSessionPickle};
use zeroize::Zeroizing;

use crate::plaintext::{Plaintext, PlaintextError};
use crate::seal::{Binding, SealError, seal_session_key};
use crate::state::{StateError, open_state, seal_state};

/// A session is replaced once it has encrypted this many messages.
pub const ROTATE_AFTER_MESSAGES: u32 = 100;
/// A session is replaced once it is this old (7 days, in milliseconds).
pub const ROTATE_AFTER_MS: u64 = 7 * 24 * 60 * 60 * 1000;

/// Associated data of a pickled outbound session (names the kind of state file).
const PICKLE_AAD: &[u8] = b"basis/outbound-session/v1";
/// Version of the pickled outbound session encoding.
const PICKLE_VERSION: u8 = 1;

/// Why a session must be replaced by a new one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationReason {
    /// The room's members are not the ones the session was shared with.
    MembersChanged,
    /// The session has encrypted [`ROTATE_AFTER_MESSAGES`] messages.
    MessageLimit,
    /// The session is [`ROTATE_AFTER_MS`] old.
    Age,
}

/// Why an outbound operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// Sealing the session key to a recipient failed.
    #[error("sealing the session key to {recipient}: {source}")]
    Seal {
        /// The recipient whose key failed.
        recipient: UserId,
        /// Why.
        source: SealError,
    },
    /// More recipients than one key-share event may hold.
    #[error("{0} recipients, more than the {MAX_SEALED_KEYS} a key share may hold")]
    TooManyRecipients(usize),
    /// The plaintext could not be encoded (for instance it is itself encrypted).
    #[error("plaintext: {0}")]
    Plaintext(#[from] PlaintextError),
    /// The state file could not be sealed or opened.
    #[error("state file: {0}")]
    State(#[from] StateError),
    /// The opened state file is not a pickled outbound session.
    #[error("malformed pickled session: {0}")]
    Malformed(String),
}

/// The sender's group session for one room.
pub struct OutboundSession {
    session: GroupSession,
    created_ms: u64,
    members: BTreeSet<UserId>,
}

impl OutboundSession {
    /// A new session made at `now_ms` for the room's current `members` (the set it will be
    /// shared with; used to notice membership changes).
    pub fn new(now_ms: u64, members: BTreeSet<UserId>) -> Self {
        Self {
            session: GroupSession::new(crate::megolm_config()),
            created_ms: now_ms,
            members,
        }
    }

    /// A session around a given vodozemac session (the test vectors fix its ratchet and key).
    #[cfg(test)]
    pub(crate) fn from_group_session(
        session: GroupSession,
        now_ms: u64,
        members: BTreeSet<UserId>,
    ) -> Self {
        Self {
            session,
            created_ms: now_ms,
            members,
        }
    }

    /// The session id as it travels in events: the 32 bytes of the session's ed25519 public
    /// key (vodozemac's base64 session id, decoded).
    pub fn session_id(&self) -> Vec<u8> {
        crate::session_id_bytes(&self.session.session_id())
    }

    /// When the session was made, in unix milliseconds.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// How many messages the session has encrypted.
    pub fn message_count(&self) -> u32 {
        self.session.message_index()
    }

    /// The members the session was made for.
    pub fn members(&self) -> &BTreeSet<UserId> {
        &self.members
    }

    /// Whether the session must be replaced before the next message, and why: the members
    /// changed in any way, [`ROTATE_AFTER_MESSAGES`] messages were sent, or it is
    /// [`ROTATE_AFTER_MS`] old. `None` means it may go on.
    pub fn needs_rotation(
        &self,
        current_members: &BTreeSet<UserId>,
        now_ms: u64,
    ) -> Option<RotationReason> {
        if current_members != &self.members {
            Some(RotationReason::MembersChanged)
        } else if self.message_count() >= ROTATE_AFTER_MESSAGES {
            Some(RotationReason::MessageLimit)
        } else if now_ms.saturating_sub(self.created_ms) >= ROTATE_AFTER_MS {
            Some(RotationReason::Age)
        } else {
            None
        }
    }

    /// The key-share body giving this session to `recipients` (user id and agreement key
    /// each), one sealed key per recipient, bound to `room` and `sender`. Include the sender
    /// itself so its other clients can read. The key is exported at the current ratchet
    /// index, so recipients read from the next message on.
    pub fn key_share(
        &self,
        room: RoomId,
        sender: UserId,
        recipients: &[(UserId, [u8; 32])],
    ) -> Result<KeyShare, OutboundError> {
        if recipients.len() > MAX_SEALED_KEYS {
            return Err(OutboundError::TooManyRecipients(recipients.len()));
        }
        let session_id = self.session_id();
        let binding = Binding {
            room,
            sender,
            session_id: session_id.clone(),
        };
        let session_key = self.session_key_bytes();
        let keys = recipients
            .iter()
            .map(|&(recipient, agreement)| {
                seal_session_key(recipient, agreement, &binding, &session_key)
                    .map_err(|source| OutboundError::Seal { recipient, source })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyShare { session_id, keys })
    }

    /// The exported session key (ratchet at the current index and the session's public
    /// signing key, signed by it), zeroized on drop.
    pub(crate) fn session_key_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.session.session_key().to_bytes())
    }

    /// Encrypts a message; the result is the body of the message event: `EncryptedAttachment`
    /// (naming the file's chunks in the clear for nodes) for an `Attachment`, `Encrypted` for
    /// anything else.
    pub fn encrypt(&mut self, plaintext: &Plaintext) -> Result<MessageBody, OutboundError> {
        let bytes = Zeroizing::new(plaintext.to_bytes()?);
        let message = self.session.encrypt(bytes.as_slice());
        let session_id = self.session_id();
        let ciphertext = message.to_bytes();
        Ok(match &plaintext.body {
            MessageBody::Attachment(file) => MessageBody::EncryptedAttachment {
                blob: file.blob,
                session_id,
                ciphertext,
            },
            _ => MessageBody::Encrypted {
                session_id,
                ciphertext,
            },
        })
    }

    /// The whole session state, encrypted under the user's state key, for a state file.
    pub fn pickle(&self, state_key: &[u8; 32]) -> Result<Vec<u8>, OutboundError> {
        let wire = PickleWire {
            version: PICKLE_VERSION,
            created_ms: self.created_ms,
            members: self.members.iter().copied().collect(),
            session: self.session.pickle(),
        };
        // Room for the whole encoding up front, so no reallocation leaves key copies behind.
        let capacity = 1024 + 40 * self.members.len();
        let bytes = Zeroizing::new(
            postcard::to_extend(&wire, Vec::with_capacity(capacity))
                .map_err(|e| OutboundError::Malformed(e.to_string()))?,
        );
        Ok(seal_state(state_key, PICKLE_AAD, &bytes)?)
    }

    /// Restores a session from [`OutboundSession::pickle`]'s output; it goes on where it was.
    pub fn unpickle(bytes: &[u8], state_key: &[u8; 32]) -> Result<Self, OutboundError> {
        let plain = open_state(state_key, PICKLE_AAD, bytes)?;
        let (wire, tail): (PickleWire, &[u8]) = postcard::take_from_bytes(&plain)
            .map_err(|e| OutboundError::Malformed(e.to_string()))?;
        if wire.version != PICKLE_VERSION {
            return Err(OutboundError::Malformed(format!(
                "unsupported version {}",
                wire.version
            )));
        }
        if !tail.is_empty() {
            return Err(OutboundError::Malformed("trailing bytes".into()));
        }
        Ok(Self {
            session: GroupSession::from_pickle(wire.session),
            created_ms: wire.created_ms,
            members: wire.members.into_iter().collect(),
        })
    }
}

impl fmt::Debug for OutboundSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundSession")
            .field("session_id", &self.session.session_id())
            .field("created_ms", &self.created_ms)
            .field("messages", &self.message_count())
            .field("members", &self.members.len())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct PickleWire {
    version: u8,
    created_ms: u64,
    members: Vec<UserId>,
    session: GroupSessionPickle,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(ids: &[u8]) -> BTreeSet<UserId> {
        ids.iter().map(|&b| UserId([b; 32])).collect()
    }

    fn text(room: RoomId, sender: UserId, t: &str) -> Plaintext {
        Plaintext {
            room,
            sender,
            body: MessageBody::Text { text: t.into() },
        }
    }

    #[test]
    fn session_id_is_the_32_byte_key_and_stable() {
        let s = OutboundSession::new(0, members(&[1]));
        assert_eq!(s.session_id().len(), 32);
        assert_eq!(s.session_id(), s.session_id());
        assert_ne!(
            s.session_id(),
            OutboundSession::new(0, members(&[1])).session_id()
        );
    }

    #[test]
    fn membership_changes_need_rotation() {
        let s = OutboundSession::new(0, members(&[1, 2, 3]));
        assert_eq!(s.needs_rotation(&members(&[1, 2, 3]), 0), None);
        assert_eq!(
            s.needs_rotation(&members(&[1, 2]), 0),
            Some(RotationReason::MembersChanged)
        );
        assert_eq!(
            s.needs_rotation(&members(&[1, 2, 3, 4]), 0),
            Some(RotationReason::MembersChanged)
        );
        assert_eq!(
            s.needs_rotation(&members(&[1, 2, 4]), 0),
            Some(RotationReason::MembersChanged)
        );
    }

    #[test]
    fn rotation_after_100_messages() {
        let m = members(&[1]);
        let mut s = OutboundSession::new(0, m.clone());
        let p = text(RoomId([5; 32]), UserId([1; 32]), "x");
        for i in 0..ROTATE_AFTER_MESSAGES {
            assert_eq!(s.needs_rotation(&m, 0), None, "rotated after {i}");
            s.encrypt(&p).unwrap();
        }
        assert_eq!(s.message_count(), 100);
        assert_eq!(s.needs_rotation(&m, 0), Some(RotationReason::MessageLimit));
    }

    #[test]
    fn rotation_after_7_days() {
        let m = members(&[1]);
        let start = 1_700_000_000_000;
        let s = OutboundSession::new(start, m.clone());
        assert_eq!(s.needs_rotation(&m, start + ROTATE_AFTER_MS - 1), None);
        assert_eq!(
            s.needs_rotation(&m, start + ROTATE_AFTER_MS),
            Some(RotationReason::Age)
        );
        assert_eq!(ROTATE_AFTER_MS, 604_800_000);
        // A clock that went backwards does not rotate (nor panic).
        assert_eq!(s.needs_rotation(&m, 0), None);
    }

    #[test]
    fn nested_encryption_is_refused() {
        let mut s = OutboundSession::new(0, members(&[1]));
        let p = Plaintext {
            room: RoomId([5; 32]),
            sender: UserId([1; 32]),
            body: MessageBody::Encrypted {
                session_id: vec![1],
                ciphertext: vec![2],
            },
        };
        assert!(matches!(
            s.encrypt(&p),
            Err(OutboundError::Plaintext(PlaintextError::NestedEncrypted))
        ));
        assert_eq!(s.message_count(), 0);
    }

    #[test]
    fn key_share_refuses_too_many_and_bad_keys() {
        let s = OutboundSession::new(0, members(&[1]));
        let many = vec![(UserId([1; 32]), [9; 32]); MAX_SEALED_KEYS + 1];
        assert!(matches!(
            s.key_share(RoomId([5; 32]), UserId([1; 32]), &many),
            Err(OutboundError::TooManyRecipients(257))
        ));
        let bad = [(UserId([2; 32]), [0; 32])];
        assert!(matches!(
            s.key_share(RoomId([5; 32]), UserId([1; 32]), &bad),
            Err(OutboundError::Seal { recipient, source: SealError::BadRecipientKey })
                if recipient == UserId([2; 32])
        ));
        let share = s.key_share(RoomId([5; 32]), UserId([1; 32]), &[]).unwrap();
        assert_eq!(share.session_id, s.session_id());
        assert!(share.keys.is_empty());
    }

    #[test]
    fn pickle_round_trip_keeps_state() {
        let m = members(&[1, 2]);
        let mut s = OutboundSession::new(42, m.clone());
        s.encrypt(&text(RoomId([5; 32]), UserId([1; 32]), "a"))
            .unwrap();
        let key = [3u8; 32];
        let bytes = s.pickle(&key).unwrap();
        let back = OutboundSession::unpickle(&bytes, &key).unwrap();
        assert_eq!(back.session_id(), s.session_id());
        assert_eq!(back.created_ms(), 42);
        assert_eq!(back.message_count(), 1);
        assert_eq!(back.members(), &m);
        assert!(matches!(
            OutboundSession::unpickle(&bytes, &[4; 32]),
            Err(OutboundError::State(StateError::Tampered))
        ));
        // A state file of another kind under the same key is refused.
        let other = seal_state(&key, b"basis/something-else/v1", &[0; 64]).unwrap();
        assert!(matches!(
            OutboundSession::unpickle(&other, &key),
            Err(OutboundError::State(StateError::Tampered))
        ));
        // Right kind and key but garbage inside: an error, not a panic.
        for garbage in [&[][..], &[1, 2, 3], &[1; 300]] {
            let sealed = seal_state(&key, PICKLE_AAD, garbage).unwrap();
            assert!(matches!(
                OutboundSession::unpickle(&sealed, &key),
                Err(OutboundError::Malformed(_))
            ));
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let s = OutboundSession::new(0, members(&[1]));
        let text = format!("{s:?}");
        assert!(text.contains(&s.session.session_id()));
        assert!(!text.contains(&s.session.session_key().to_base64()[..20]));
    }
}
