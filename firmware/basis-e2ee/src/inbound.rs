//! The inbound Megolm sessions a member holds, and decrypting messages with them.

use std::collections::BTreeMap;
use std::fmt;

use basis_core::{Body, Event, KeyShare, MessageBody, RoomId, SealedKey, UserId};
use serde::{Deserialize, Serialize};
use vodozemac::megolm::{
    DecryptionError, InboundGroupSession, InboundGroupSessionPickle, MegolmMessage, SessionKey,
    SessionOrdering,
};
use zeroize::Zeroizing;

use crate::plaintext::Plaintext;
use crate::seal::{Binding, SealError, open_session_key};
use crate::secrets::UserSecrets;
use crate::state::{StateError, open_state, seal_state};

/// Associated data of pickled room keys (names the kind of state file).
const PICKLE_AAD: &[u8] = b"basis/room-keys/v1";
/// Version of the pickled room keys encoding.
const PICKLE_VERSION: u8 = 1;

/// Why a key share addressed to me could not be taken in. Callers log it and go on.
#[derive(Debug, thiserror::Error)]
pub enum AbsorbError {
    /// The sealed key did not open.
    #[error("sealed key: {0}")]
    Open(#[from] SealError),
    /// The opened bytes are not a valid (correctly self-signed) Megolm session key.
    #[error("not a valid session key: {0}")]
    BadSessionKey(String),
    /// The session key belongs to another session than the one the share names.
    #[error("the session key does not belong to the session the share names")]
    SessionIdMismatch,
}

/// Why a message could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    /// No key for this session (yet): show "waiting for key".
    #[error("no key for this session (yet)")]
    NoSession,
    /// The session, or the plaintext, belongs to another user than the message's author.
    #[error("the message's session or content belongs to another sender")]
    WrongSender,
    /// The session, or the plaintext, belongs to another room.
    #[error("the message's session or content belongs to another room")]
    WrongRoom,
    /// The ciphertext or the decrypted bytes are not well formed.
    #[error("malformed encrypted message: {0}")]
    Malformed(String),
    /// Megolm refused the message (bad signature or MAC, or an index before the key).
    #[error("decryption failed: {0}")]
    Megolm(#[from] DecryptionError),
    /// An `EncryptedAttachment` whose inner body is not an `Attachment` of the same chunks.
    #[error("the encrypted file message does not describe the file it names")]
    AttachmentMismatch,
}

/// What a client shows for an encrypted message whose session key it does not hold.
pub const WAITING_FOR_KEY: &str =
    "waiting for the key (not synced to this node yet, or sent before you joined)";

impl DecryptError {
    /// Why the message shows no text, in the words a client shows the user.
    pub fn reason(&self) -> String {
        match self {
            DecryptError::NoSession => WAITING_FOR_KEY.to_string(),
            other => format!("cannot be decrypted: {other}"),
        }
    }
}

/// Where an inbound session is filed: the room and author of its key share, and its id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct SessionRef {
    room: RoomId,
    sender: UserId,
    session_id: Vec<u8>,
}

/// The inbound Megolm sessions a member can use, filed by (room, sender, session id). One
/// value can serve one room or all of a user's rooms.
#[derive(Default)]
pub struct RoomKeys {
    sessions: BTreeMap<SessionRef, InboundGroupSession>,
}

impl RoomKeys {
    /// No sessions.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Whether the session `session_id` of `sender` in `room` is held.
    pub fn has_session(&self, room: RoomId, sender: UserId, session_id: &[u8]) -> bool {
        self.sessions.contains_key(&SessionRef {
            room,
            sender,
            session_id: session_id.to_vec(),
        })
    }

    /// Takes in the key share `share` written by `share_author` in `room`. `Ok(false)` when
    /// it holds nothing for this user; `Ok(true)` when a slot for this user opened and its
    /// session is now held. An error means a slot addressed to this user did not open: callers
    /// log it and go on.
    pub fn absorb(
        &mut self,
        room: RoomId,
        share_author: UserId,
        share: &KeyShare,
        secrets: &UserSecrets,
    ) -> Result<bool, AbsorbError> {
        let me = secrets.user_id();
        let binding = Binding {
            room,
            sender: share_author,
            session_id: share.session_id.clone(),
        };
        let mut failure = None;
        for sealed in share.keys.iter().filter(|k| k.recipient == me) {
            match self.absorb_one(sealed, secrets, &binding) {
                Ok(()) => return Ok(true),
                Err(e) => failure = Some(e),
            }
        }
        failure.map_or(Ok(false), Err)
    }

    fn absorb_one(
        &mut self,
        sealed: &SealedKey,
        secrets: &UserSecrets,
        binding: &Binding,
    ) -> Result<(), AbsorbError> {
        let bytes = open_session_key(sealed, secrets, binding)?;
        let key = SessionKey::from_bytes(&bytes)
            .map_err(|e| AbsorbError::BadSessionKey(e.to_string()))?;
        let mut session = InboundGroupSession::new(&key, crate::megolm_config());
        if crate::session_id_bytes(&session.session_id()) != binding.session_id {
            return Err(AbsorbError::SessionIdMismatch);
        }
        let slot = SessionRef {
            room: binding.room,
            sender: binding.sender,
            session_id: binding.session_id.clone(),
        };
        match self.sessions.get_mut(&slot) {
            // Keep whichever copy reaches further back (a re-share may start later).
            Some(held) => {
                if session.compare(held) == SessionOrdering::Better {
                    *held = session;
                }
            }
            None => {
                self.sessions.insert(slot, session);
            }
        }
        Ok(())
    }

    /// Decrypts the `ciphertext` of an encrypted message event by `author` in `room` that
    /// names `session_id`. Only the session filed under that room and author is used, and the
    /// plaintext must name the same room and sender.
    pub fn decrypt(
        &mut self,
        room: RoomId,
        author: UserId,
        session_id: &[u8],
        ciphertext: &[u8],
    ) -> Result<Plaintext, DecryptError> {
        let slot = SessionRef {
            room,
            sender: author,
            session_id: session_id.to_vec(),
        };
        if !self.sessions.contains_key(&slot) {
            return Err(self.why_missing(&slot));
        }
        let session = self
            .sessions
            .get_mut(&slot)
            .ok_or(DecryptError::NoSession)?;
        let message = MegolmMessage::from_bytes(ciphertext)
            .map_err(|e| DecryptError::Malformed(e.to_string()))?;
        // The decoder tolerates some variations of its encoding (it is protobuf inside);
        // accept only the one encoding a sender makes, so each message has a single form.
        if message.to_bytes() != ciphertext {
            return Err(DecryptError::Malformed("non-canonical encoding".into()));
        }
        let decrypted = Zeroizing::new(session.decrypt(&message)?.plaintext);
        let plaintext = Plaintext::from_bytes(&decrypted)
            .map_err(|e| DecryptError::Malformed(e.to_string()))?;
        if plaintext.room != room {
            return Err(DecryptError::WrongRoom);
        }
        if plaintext.sender != author {
            return Err(DecryptError::WrongSender);
        }
        Ok(plaintext)
    }

    /// Takes in `event` of `room` if it is a key share: `Ok(false)` for any other event, else
    /// as [`RoomKeys::absorb`] with the event's author as the share's author.
    pub fn absorb_event(
        &mut self,
        room: RoomId,
        event: &Event,
        secrets: &UserSecrets,
    ) -> Result<bool, AbsorbError> {
        match &event.content.body {
            Body::KeyShare(share) => self.absorb(room, event.content.author, share, secrets),
            _ => Ok(false),
        }
    }

    /// Decrypts `event` of `room` if it is an encrypted message (`None` for any other event),
    /// as [`RoomKeys::decrypt`] with the event's author.
    pub fn decrypt_event(
        &mut self,
        room: RoomId,
        event: &Event,
    ) -> Option<Result<Plaintext, DecryptError>> {
        match &event.content.body {
            Body::Message(MessageBody::Encrypted {
                session_id,
                ciphertext,
            }) => Some(self.decrypt(room, event.content.author, session_id, ciphertext)),
            Body::Message(MessageBody::EncryptedAttachment {
                blob,
                session_id,
                ciphertext,
            }) => Some(
                self.decrypt(room, event.content.author, session_id, ciphertext)
                    .and_then(|p| match &p.body {
                        // The inner descriptor must name the chunks the event names in the
                        // clear, or nodes would keep other chunks than the reader fetches.
                        MessageBody::Attachment(file) if file.blob == *blob => Ok(p),
                        _ => Err(DecryptError::AttachmentMismatch),
                    }),
            ),
            _ => None,
        }
    }

    /// True when `event` of `room` is an encrypted message whose session is not held.
    pub fn lacks_session_for(&self, room: RoomId, event: &Event) -> bool {
        match &event.content.body {
            Body::Message(
                MessageBody::Encrypted { session_id, .. }
                | MessageBody::EncryptedAttachment { session_id, .. },
            ) => !self.has_session(room, event.content.author, session_id),
            _ => false,
        }
    }

    /// Why no session is filed under `slot`: the id is held for another sender, or for the
    /// same sender in another room, or not at all.
    fn why_missing(&self, slot: &SessionRef) -> DecryptError {
        let holders: Vec<&SessionRef> = self
            .sessions
            .keys()
            .filter(|held| held.session_id == slot.session_id)
            .collect();
        if holders.iter().any(|held| held.sender != slot.sender) {
            DecryptError::WrongSender
        } else if !holders.is_empty() {
            DecryptError::WrongRoom
        } else {
            DecryptError::NoSession
        }
    }

    /// All sessions, encrypted under the user's state key, for a state file (so history stays
    /// readable after the agreement keys it was sealed to are forgotten).
    pub fn pickle(&self, state_key: &[u8; 32]) -> Result<Vec<u8>, StateError> {
        let wire = PickleWire {
            version: PICKLE_VERSION,
            sessions: self
                .sessions
                .iter()
                .map(|(slot, session)| (slot.clone(), session.pickle()))
                .collect(),
        };
        // Room for the whole encoding up front, so no reallocation leaves key copies behind.
        let capacity = 64 + 512 * self.sessions.len();
        let bytes = Zeroizing::new(
            postcard::to_extend(&wire, Vec::with_capacity(capacity))
                .map_err(|e| StateError::Malformed(e.to_string()))?,
        );
        seal_state(state_key, PICKLE_AAD, &bytes)
    }

    /// Restores what [`RoomKeys::pickle`] saved.
    pub fn unpickle(bytes: &[u8], state_key: &[u8; 32]) -> Result<Self, StateError> {
        let plain = open_state(state_key, PICKLE_AAD, bytes)?;
        let (wire, tail): (PickleWire, &[u8]) =
            postcard::take_from_bytes(&plain).map_err(|e| StateError::Malformed(e.to_string()))?;
        if wire.version != PICKLE_VERSION {
            return Err(StateError::Malformed(format!(
                "unsupported version {}",
                wire.version
            )));
        }
        if !tail.is_empty() {
            return Err(StateError::Malformed("trailing bytes".into()));
        }
        Ok(Self {
            sessions: wire
                .sessions
                .into_iter()
                .map(|(slot, pickle)| (slot, InboundGroupSession::from_pickle(pickle)))
                .collect(),
        })
    }
}

impl fmt::Debug for RoomKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoomKeys")
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct PickleWire {
    version: u8,
    sessions: Vec<(SessionRef, InboundGroupSessionPickle)>,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use basis_core::MessageBody;

    use super::*;
    use crate::outbound::OutboundSession;
    use crate::seal::seal_session_key;

    const ROOM: RoomId = RoomId([7; 32]);

    fn text(sender: UserId, t: &str) -> Plaintext {
        Plaintext {
            room: ROOM,
            sender,
            body: MessageBody::Text { text: t.into() },
        }
    }

    /// A share naming `named` but carrying the key of `carried`, correctly sealed to `to`.
    fn mislabelled(
        named: &OutboundSession,
        carried: &OutboundSession,
        sender: UserId,
        to: &UserSecrets,
    ) -> KeyShare {
        let binding = Binding {
            room: ROOM,
            sender,
            session_id: named.session_id(),
        };
        let sealed = seal_session_key(
            to.user_id(),
            to.agreement_public(),
            &binding,
            &carried.session_key_bytes(),
        )
        .unwrap();
        KeyShare {
            session_id: named.session_id(),
            keys: vec![sealed],
        }
    }

    #[test]
    fn events_are_absorbed_and_decrypted_by_kind() {
        use basis_core::{Composer, Timestamp};
        let a = UserSecrets::generate(0).unwrap();
        let b = UserSecrets::generate(0).unwrap();
        let mut s = OutboundSession::new(0, BTreeSet::new());
        let share = s
            .key_share(ROOM, a.user_id(), &[(b.user_id(), b.agreement_public())])
            .unwrap();
        let body = s.encrypt(&text(a.user_id(), "hello")).unwrap();
        let mut c = Composer::new(Timestamp(0));
        let sign = |c: &mut Composer, body| c.sign(a.signing_key(), Some(ROOM), vec![], body, 1);
        let share_event = sign(&mut c, Body::KeyShare(share));
        let message = sign(&mut c, Body::Message(body));
        let plain = sign(
            &mut c,
            Body::Message(MessageBody::Text { text: "x".into() }),
        );

        let mut keys = RoomKeys::new();
        assert!(keys.lacks_session_for(ROOM, &message));
        assert!(!keys.lacks_session_for(ROOM, &plain));
        let waiting = keys.decrypt_event(ROOM, &message).unwrap().unwrap_err();
        assert!(matches!(waiting, DecryptError::NoSession));
        assert_eq!(waiting.reason(), WAITING_FOR_KEY);
        assert!(!keys.absorb_event(ROOM, &plain, &b).unwrap());
        assert!(keys.absorb_event(ROOM, &share_event, &b).unwrap());
        assert!(!keys.lacks_session_for(ROOM, &message));
        let opened = keys.decrypt_event(ROOM, &message).unwrap().unwrap();
        assert_eq!(
            opened.body,
            MessageBody::Text {
                text: "hello".into()
            }
        );
        assert!(keys.decrypt_event(ROOM, &plain).is_none());
    }

    #[test]
    fn a_share_carrying_another_sessions_key_is_refused() {
        let a = UserSecrets::generate(0).unwrap();
        let b = UserSecrets::generate(0).unwrap();
        let s1 = OutboundSession::new(0, BTreeSet::new());
        let s2 = OutboundSession::new(0, BTreeSet::new());
        let share = mislabelled(&s1, &s2, a.user_id(), &b);
        let mut keys = RoomKeys::new();
        assert!(matches!(
            keys.absorb(ROOM, a.user_id(), &share, &b),
            Err(AbsorbError::SessionIdMismatch)
        ));
        assert!(keys.is_empty());
    }

    #[test]
    fn a_sealed_non_key_is_refused() {
        let a = UserSecrets::generate(0).unwrap();
        let b = UserSecrets::generate(0).unwrap();
        let s = OutboundSession::new(0, BTreeSet::new());
        let binding = Binding {
            room: ROOM,
            sender: a.user_id(),
            session_id: s.session_id(),
        };
        let mut key = s.session_key_bytes().to_vec();
        // Damage the ratchet: the session key's own signature no longer verifies.
        key[10] ^= 1;
        for bytes in [&b"not a key"[..], &key] {
            let sealed =
                seal_session_key(b.user_id(), b.agreement_public(), &binding, bytes).unwrap();
            let share = KeyShare {
                session_id: s.session_id(),
                keys: vec![sealed],
            };
            assert!(matches!(
                RoomKeys::new().absorb(ROOM, a.user_id(), &share, &b),
                Err(AbsorbError::BadSessionKey(_))
            ));
        }
    }

    #[test]
    fn an_earlier_share_replaces_a_later_one_but_not_the_reverse() {
        let a = UserSecrets::generate(0).unwrap();
        let b = UserSecrets::generate(0).unwrap();
        let mut s = OutboundSession::new(0, BTreeSet::new());
        let early = s
            .key_share(ROOM, a.user_id(), &[(b.user_id(), b.agreement_public())])
            .unwrap();
        let first = s.encrypt(&text(a.user_id(), "first")).unwrap();
        let late = s
            .key_share(ROOM, a.user_id(), &[(b.user_id(), b.agreement_public())])
            .unwrap();
        let MessageBody::Encrypted {
            session_id,
            ciphertext,
        } = first
        else {
            panic!("not encrypted")
        };

        let mut keys = RoomKeys::new();
        assert!(keys.absorb(ROOM, a.user_id(), &late, &b).unwrap());
        assert!(matches!(
            keys.decrypt(ROOM, a.user_id(), &session_id, &ciphertext),
            Err(DecryptError::Megolm(DecryptionError::UnknownMessageIndex(
                1, 0
            )))
        ));
        assert!(keys.absorb(ROOM, a.user_id(), &early, &b).unwrap());
        assert!(
            keys.decrypt(ROOM, a.user_id(), &session_id, &ciphertext)
                .is_ok()
        );
        // The later share again does not take the earlier index away.
        assert!(keys.absorb(ROOM, a.user_id(), &late, &b).unwrap());
        assert!(
            keys.decrypt(ROOM, a.user_id(), &session_id, &ciphertext)
                .is_ok()
        );
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn session_filed_under_another_room_reports_wrong_room() {
        let a = UserSecrets::generate(0).unwrap();
        let b = UserSecrets::generate(0).unwrap();
        let mut s = OutboundSession::new(0, BTreeSet::new());
        let share = s
            .key_share(ROOM, a.user_id(), &[(b.user_id(), b.agreement_public())])
            .unwrap();
        let mut keys = RoomKeys::new();
        keys.absorb(ROOM, a.user_id(), &share, &b).unwrap();
        let MessageBody::Encrypted {
            session_id,
            ciphertext,
        } = s.encrypt(&text(a.user_id(), "hi")).unwrap()
        else {
            panic!("not encrypted")
        };
        assert!(matches!(
            keys.decrypt(RoomId([8; 32]), a.user_id(), &session_id, &ciphertext),
            Err(DecryptError::WrongRoom)
        ));
        assert!(matches!(
            keys.decrypt(ROOM, b.user_id(), &session_id, &ciphertext),
            Err(DecryptError::WrongSender)
        ));
        assert!(matches!(
            keys.decrypt(ROOM, a.user_id(), &[1; 32], &ciphertext),
            Err(DecryptError::NoSession)
        ));
        assert_eq!(
            keys.decrypt(ROOM, a.user_id(), &session_id, &ciphertext)
                .unwrap()
                .body,
            MessageBody::Text { text: "hi".into() }
        );
        assert_eq!(format!("{keys:?}"), "RoomKeys { sessions: 1, .. }");
    }

    #[test]
    fn pickled_room_keys_refuse_garbage() {
        let key = [1; 32];
        let empty = RoomKeys::new().pickle(&key).unwrap();
        assert!(RoomKeys::unpickle(&empty, &key).unwrap().is_empty());
        for garbage in [&[][..], &[2, 0], &[1, 5, 9]] {
            let sealed = seal_state(&key, PICKLE_AAD, garbage).unwrap();
            assert!(matches!(
                RoomKeys::unpickle(&sealed, &key),
                Err(StateError::Malformed(_))
            ));
        }
    }
}
