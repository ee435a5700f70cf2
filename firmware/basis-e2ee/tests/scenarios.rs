//! Whole-room scenarios through the public API: sharing, removal, newcomers, rotation,
//! restarts, agreement-key rotation and tampering.

use std::collections::BTreeSet;

use basis_core::{KeyShare, MessageBody, RoomId, UserId};
use basis_e2ee::{
    AbsorbError, DecryptError, OutboundSession, Plaintext, RoomKeys, RotationReason, SealError,
    UserSecrets,
};
use proptest::prelude::*;

const ROOM: RoomId = RoomId([0x52; 32]);
const OTHER_ROOM: RoomId = RoomId([0x53; 32]);
const T0: u64 = 1_700_000_000_000;

struct Member {
    secrets: UserSecrets,
    keys: RoomKeys,
}

impl Member {
    fn new() -> Self {
        Self {
            secrets: UserSecrets::generate(T0).unwrap(),
            keys: RoomKeys::new(),
        }
    }

    fn id(&self) -> UserId {
        self.secrets.user_id()
    }

    fn recipient(&self) -> (UserId, [u8; 32]) {
        (self.id(), self.secrets.agreement_public())
    }

    fn absorb(&mut self, author: UserId, share: &KeyShare) -> Result<bool, AbsorbError> {
        self.keys.absorb(ROOM, author, share, &self.secrets)
    }

    fn read(&mut self, author: UserId, msg: &Encrypted) -> Result<String, DecryptError> {
        let p = self
            .keys
            .decrypt(ROOM, author, &msg.session_id, &msg.ciphertext)?;
        assert_eq!(p.room, ROOM);
        assert_eq!(p.sender, author);
        match p.body {
            MessageBody::Text { text } => Ok(text),
            other => panic!("unexpected body {other:?}"),
        }
    }
}

#[derive(Clone, Debug)]
struct Encrypted {
    session_id: Vec<u8>,
    ciphertext: Vec<u8>,
}

fn ids(members: &[&Member]) -> BTreeSet<UserId> {
    members.iter().map(|m| m.id()).collect()
}

fn send(session: &mut OutboundSession, sender: UserId, text: &str) -> Encrypted {
    let body = session
        .encrypt(&Plaintext {
            room: ROOM,
            sender,
            body: MessageBody::Text { text: text.into() },
        })
        .unwrap();
    match body {
        MessageBody::Encrypted {
            session_id,
            ciphertext,
        } => {
            assert!(!ciphertext.windows(text.len()).any(|w| w == text.as_bytes()));
            Encrypted {
                session_id,
                ciphertext,
            }
        }
        other => panic!("not encrypted: {other:?}"),
    }
}

fn share(session: &OutboundSession, sender: UserId, to: &[&Member]) -> KeyShare {
    let recipients: Vec<_> = to.iter().map(|m| m.recipient()).collect();
    let share = session.key_share(ROOM, sender, &recipients).unwrap();
    assert_eq!(share.session_id, session.session_id());
    assert_eq!(share.keys.len(), to.len());
    share
}

#[test]
fn removed_member_reads_the_past_but_not_the_future() {
    let mut a = Member::new();
    let mut b = Member::new();
    let mut c = Member::new();
    let everyone = ids(&[&a, &b, &c]);

    let mut s1 = OutboundSession::new(T0, everyone.clone());
    let share1 = share(&s1, a.id(), &[&a, &b, &c]);
    let a_id = a.id();
    for m in [&mut a, &mut b, &mut c] {
        assert!(m.absorb(a_id, &share1).unwrap());
    }
    let m1 = send(&mut s1, a.id(), "before removal");
    assert_eq!(b.read(a.id(), &m1).unwrap(), "before removal");
    assert_eq!(c.read(a.id(), &m1).unwrap(), "before removal");
    // The sender's own clients read it through the share to itself.
    assert_eq!(a.read(a.id(), &m1).unwrap(), "before removal");

    // C is removed.
    let remaining = ids(&[&a, &b]);
    assert_eq!(
        s1.needs_rotation(&remaining, T0 + 1),
        Some(RotationReason::MembersChanged)
    );
    let mut s2 = OutboundSession::new(T0 + 1, remaining.clone());
    assert_ne!(s2.session_id(), s1.session_id());
    assert_eq!(s2.needs_rotation(&remaining, T0 + 1), None);
    let share2 = share(&s2, a.id(), &[&a, &b]);
    assert!(b.absorb(a.id(), &share2).unwrap());
    assert!(!c.absorb(a.id(), &share2).unwrap(), "nothing in it for C");

    let m2 = send(&mut s2, a.id(), "after removal");
    assert_eq!(b.read(a.id(), &m2).unwrap(), "after removal");
    assert!(matches!(c.read(a.id(), &m2), Err(DecryptError::NoSession)));
    // C still reads what was sent while it was a member.
    assert_eq!(c.read(a.id(), &m1).unwrap(), "before removal");
}

#[test]
fn newcomer_reads_from_its_join_on() {
    let a = Member::new();
    let mut b = Member::new();
    let mut d = Member::new();

    let mut s1 = OutboundSession::new(T0, ids(&[&a, &b]));
    let share1 = share(&s1, a.id(), &[&a, &b]);
    b.absorb(a.id(), &share1).unwrap();
    let before = send(&mut s1, a.id(), "before D joined");

    // D joins: the member set changed, so a new session goes to A, B and D.
    let with_d = ids(&[&a, &b, &d]);
    assert_eq!(
        s1.needs_rotation(&with_d, T0 + 5),
        Some(RotationReason::MembersChanged)
    );
    let mut s2 = OutboundSession::new(T0 + 5, with_d);
    let share2 = share(&s2, a.id(), &[&a, &b, &d]);
    // D sees the old share in the room's history but it holds nothing for D.
    assert!(!d.absorb(a.id(), &share1).unwrap());
    assert!(d.absorb(a.id(), &share2).unwrap());
    assert!(b.absorb(a.id(), &share2).unwrap());

    let after = send(&mut s2, a.id(), "welcome D");
    assert_eq!(d.read(a.id(), &after).unwrap(), "welcome D");
    assert_eq!(b.read(a.id(), &after).unwrap(), "welcome D");
    assert!(matches!(
        d.read(a.id(), &before),
        Err(DecryptError::NoSession)
    ));
    assert_eq!(b.read(a.id(), &before).unwrap(), "before D joined");
}

#[test]
fn restored_sender_continues_the_same_session() {
    let a = Member::new();
    let mut b = Member::new();
    let members = ids(&[&a, &b]);
    let mut s = OutboundSession::new(T0, members.clone());
    b.absorb(a.id(), &share(&s, a.id(), &[&a, &b])).unwrap();
    let m1 = send(&mut s, a.id(), "first run");

    // The CLI exits; its state goes to a file under the state key and comes back.
    let file = s.pickle(a.secrets.state_key()).unwrap();
    drop(s);
    let mut restored = OutboundSession::unpickle(&file, a.secrets.state_key()).unwrap();
    assert_eq!(restored.needs_rotation(&members, T0 + 10), None);
    assert_eq!(restored.message_count(), 1);

    let m2 = send(&mut restored, a.id(), "second run");
    assert_eq!(m2.session_id, m1.session_id);
    assert_eq!(b.read(a.id(), &m1).unwrap(), "first run");
    assert_eq!(b.read(a.id(), &m2).unwrap(), "second run");

    // Another user's state key does not open it.
    assert!(OutboundSession::unpickle(&file, b.secrets.state_key()).is_err());
}

#[test]
fn receiver_keys_survive_a_restart_and_forgotten_agreement_keys() {
    let a = Member::new();
    let mut b = Member::new();
    let mut s = OutboundSession::new(T0, ids(&[&a, &b]));
    let old_share = share(&s, a.id(), &[&a, &b]);
    b.absorb(a.id(), &old_share).unwrap();
    let m1 = send(&mut s, a.id(), "kept");

    let file = b.keys.pickle(b.secrets.state_key()).unwrap();
    b.keys = RoomKeys::unpickle(&file, b.secrets.state_key()).unwrap();
    assert_eq!(b.keys.len(), 1);
    assert!(b.keys.has_session(ROOM, a.id(), &m1.session_id));

    // B rotates its agreement key and forgets the old one: the old share no longer opens,
    // but the stored session still reads the old message.
    b.secrets.rotate_agreement(T0 + 100).unwrap();
    assert_eq!(b.secrets.forget_agreement_keys_replaced_before(T0 + 101), 1);
    let mut fresh = RoomKeys::new();
    assert!(matches!(
        fresh.absorb(ROOM, a.id(), &old_share, &b.secrets),
        Err(AbsorbError::Open(SealError::NoMatchingKey))
    ));
    assert_eq!(b.read(a.id(), &m1).unwrap(), "kept");
    assert!(RoomKeys::unpickle(&file, a.secrets.state_key()).is_err());
}

#[test]
fn agreement_key_rotation() {
    let a = Member::new();
    let mut b = Member::new();
    let mut s1 = OutboundSession::new(T0, ids(&[&a, &b]));
    let share_to_old = share(&s1, a.id(), &[&b]);
    let old_key = b.secrets.agreement_public();
    assert_eq!(share_to_old.keys[0].recipient_key, old_key);

    let new_key = b.secrets.rotate_agreement(T0 + 50).unwrap();
    assert_ne!(new_key, old_key);
    // Sealed before the rotation, opened after it.
    assert!(b.absorb(a.id(), &share_to_old).unwrap());
    let m1 = send(&mut s1, a.id(), "old key");
    assert_eq!(b.read(a.id(), &m1).unwrap(), "old key");

    // New shares go to the new key (the sender takes it from B's newest profile).
    let mut s2 = OutboundSession::new(T0 + 60, ids(&[&a, &b]));
    let share_to_new = share(&s2, a.id(), &[&b]);
    assert_eq!(share_to_new.keys[0].recipient_key, new_key);
    b.secrets.forget_agreement_keys_replaced_before(u64::MAX);
    assert!(b.absorb(a.id(), &share_to_new).unwrap());
    let m2 = send(&mut s2, a.id(), "new key");
    assert_eq!(b.read(a.id(), &m2).unwrap(), "new key");
}

#[test]
fn a_share_opens_only_in_its_own_room_sender_and_session() {
    let a = Member::new();
    let b = Member::new();
    let s = OutboundSession::new(T0, ids(&[&a, &b]));
    let good = share(&s, a.id(), &[&b]);
    let open = |room: RoomId, author: UserId, share: &KeyShare| {
        RoomKeys::new().absorb(room, author, share, &b.secrets)
    };
    assert!(open(ROOM, a.id(), &good).unwrap());
    // Copied into another room.
    assert!(matches!(
        open(OTHER_ROOM, a.id(), &good),
        Err(AbsorbError::Open(SealError::Open))
    ));
    // Re-posted by another sender as theirs.
    assert!(matches!(
        open(ROOM, b.id(), &good),
        Err(AbsorbError::Open(SealError::Open))
    ));
    // Relabelled with another session id.
    let mut relabelled = good.clone();
    relabelled.session_id[0] ^= 1;
    assert!(matches!(
        open(ROOM, a.id(), &relabelled),
        Err(AbsorbError::Open(SealError::Open))
    ));
    // One sealed key moved into a share of another session of the same sender.
    let other = OutboundSession::new(T0, ids(&[&a, &b]));
    let mut spliced = share(&other, a.id(), &[&b]);
    spliced.keys = good.keys.clone();
    assert!(matches!(
        open(ROOM, a.id(), &spliced),
        Err(AbsorbError::Open(SealError::Open))
    ));
}

#[test]
fn absorbing_is_idempotent_and_ignores_other_recipients() {
    let a = Member::new();
    let mut b = Member::new();
    let c = Member::new();
    let s = OutboundSession::new(T0, ids(&[&a, &b, &c]));
    let sh = share(&s, a.id(), &[&a, &c]);
    assert!(!b.absorb(a.id(), &sh).unwrap());
    assert!(b.keys.is_empty());
    let sh = share(&s, a.id(), &[&a, &b, &c]);
    assert!(b.absorb(a.id(), &sh).unwrap());
    assert!(b.absorb(a.id(), &sh).unwrap());
    assert_eq!(b.keys.len(), 1);
    // A broken slot addressed to B is reported, even though nothing else failed.
    let mut broken = sh.clone();
    for k in &mut broken.keys {
        k.ciphertext[0] ^= 1;
    }
    assert!(b.absorb(a.id(), &broken).is_err());
    // ...but a share with one broken and one good slot for B still opens.
    let mut mixed = sh.clone();
    let mine = mixed
        .keys
        .iter()
        .position(|k| k.recipient == b.id())
        .unwrap();
    let mut bad_copy = mixed.keys[mine].clone();
    bad_copy.ciphertext[0] ^= 1;
    mixed.keys.insert(0, bad_copy);
    assert!(b.absorb(a.id(), &mixed).unwrap());
}

#[test]
fn message_from_another_author_than_the_share_is_refused() {
    let a = Member::new();
    let b = Member::new();
    let mut c = Member::new();
    let mut s = OutboundSession::new(T0, ids(&[&a, &b, &c]));
    c.absorb(a.id(), &share(&s, a.id(), &[&c])).unwrap();
    // What B could build from the key A gave it: the same session, shared under B's name.
    let forged = s.key_share(ROOM, b.id(), &[c.recipient()]).unwrap();
    let m = send(&mut s, a.id(), "from A");

    // B re-posts A's ciphertext in an event of its own.
    assert!(matches!(c.read(b.id(), &m), Err(DecryptError::WrongSender)));
    // Or in another room.
    assert!(matches!(
        c.keys
            .decrypt(OTHER_ROOM, a.id(), &m.session_id, &m.ciphertext),
        Err(DecryptError::WrongRoom)
    ));

    // B re-shares A's session under its own name and replays A's ciphertext: the session
    // now sits under B too, but the plaintext names A, so it is refused.
    assert!(c.absorb(b.id(), &forged).unwrap());
    assert!(matches!(c.read(b.id(), &m), Err(DecryptError::WrongSender)));
    assert_eq!(c.read(a.id(), &m).unwrap(), "from A");

    // A plaintext that names another room than the one it is sent in is refused.
    let wrong_room = s
        .encrypt(&Plaintext {
            room: OTHER_ROOM,
            sender: a.id(),
            body: MessageBody::Text { text: "x".into() },
        })
        .unwrap();
    let MessageBody::Encrypted {
        session_id,
        ciphertext,
    } = wrong_room
    else {
        panic!("not encrypted");
    };
    assert!(matches!(
        c.keys.decrypt(ROOM, a.id(), &session_id, &ciphertext),
        Err(DecryptError::WrongRoom)
    ));
}

#[test]
fn tampered_messages_fail_without_panic() {
    let a = Member::new();
    let mut b = Member::new();
    let mut s1 = OutboundSession::new(T0, ids(&[&a, &b]));
    b.absorb(a.id(), &share(&s1, a.id(), &[&b])).unwrap();
    let mut s2 = OutboundSession::new(T0, ids(&[&a, &b]));
    b.absorb(a.id(), &share(&s2, a.id(), &[&b])).unwrap();
    let m = send(&mut s1, a.id(), "intact");
    let m_other = send(&mut s2, a.id(), "other session");

    // Every single-bit flip anywhere in the ciphertext.
    for i in 0..m.ciphertext.len() {
        for bit in 0..8 {
            let mut bad = m.clone();
            bad.ciphertext[i] ^= 1 << bit;
            let r = b.read(a.id(), &bad);
            assert!(
                matches!(r, Err(DecryptError::Megolm(_) | DecryptError::Malformed(_))),
                "flip of bit {bit} at {i}: {r:?}"
            );
        }
    }
    // Truncations.
    for len in 0..m.ciphertext.len() {
        let mut bad = m.clone();
        bad.ciphertext.truncate(len);
        assert!(b.read(a.id(), &bad).is_err());
    }
    // Session id swapped for another session of the same sender.
    let mut swapped = m.clone();
    swapped.session_id = m_other.session_id.clone();
    assert!(matches!(
        b.read(a.id(), &swapped),
        Err(DecryptError::Megolm(_))
    ));
    // Session id unknown or damaged.
    let mut unknown = m.clone();
    unknown.session_id[5] ^= 0x10;
    assert!(matches!(
        b.read(a.id(), &unknown),
        Err(DecryptError::NoSession)
    ));
    unknown.session_id.clear();
    assert!(matches!(
        b.read(a.id(), &unknown),
        Err(DecryptError::NoSession)
    ));
    // The intact message still reads after all that.
    assert_eq!(b.read(a.id(), &m).unwrap(), "intact");
    assert_eq!(b.read(a.id(), &m_other).unwrap(), "other session");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn garbage_ciphertext_never_panics(garbage in proptest::collection::vec(any::<u8>(), 0..400)) {
        let a = Member::new();
        let mut b = Member::new();
        let s = OutboundSession::new(T0, ids(&[&a, &b]));
        b.absorb(a.id(), &share(&s, a.id(), &[&b])).unwrap();
        let r = b.keys.decrypt(ROOM, a.id(), &s.session_id(), &garbage);
        prop_assert!(r.is_err());
    }

    #[test]
    fn garbage_shares_never_panic(
        session_id in proptest::collection::vec(any::<u8>(), 0..40),
        encapsulated in proptest::collection::vec(any::<u8>(), 0..40),
        ciphertext in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let a = Member::new();
        let b = Member::new();
        let sh = KeyShare {
            session_id,
            keys: vec![basis_core::SealedKey {
                recipient: b.id(),
                recipient_key: b.secrets.agreement_public(),
                encapsulated,
                ciphertext,
            }],
        };
        prop_assert!(RoomKeys::new().absorb(ROOM, a.id(), &sh, &b.secrets).is_err());
    }
}

/// A photo sent to a room end to end: sealed in chunks, its descriptor in an encrypted
/// message that names only the chunks in the clear; the reader opens it. An author who
/// names other chunks in the clear than inside is refused.
#[test]
fn a_file_travels_end_to_end_and_its_clear_reference_must_match() {
    use basis_core::{Body, EventContent, PROTOCOL_VERSION, Timestamp};
    use basis_e2ee::{open_to_writer, seal_reader};

    let mut a = Member::new();
    let mut b = Member::new();
    let mut s = OutboundSession::new(T0, ids(&[&a, &b]));
    let keys = share(&s, a.id(), &[&a, &b]);
    let a_id = a.id();
    for m in [&mut a, &mut b] {
        assert!(m.absorb(a_id, &keys).unwrap());
    }
    let photo: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut chunks = Vec::new();
    let sealed = seal_reader(&photo[..], photo.len() as u64, 1024, |_, c| {
        chunks.push(c.to_vec());
        Ok(())
    })
    .unwrap();
    // No 64-byte run of the photo is in any chunk a node stores.
    for c in &chunks {
        assert!(!c.windows(64).any(|w| photo.windows(64).any(|p| p == w)));
    }
    let descriptor = sealed.descriptor("photo.jpg".into(), "image/jpeg".into(), None);
    let inner = Plaintext {
        room: ROOM,
        sender: a.id(),
        body: MessageBody::Attachment(descriptor.clone()),
    };
    let body = s.encrypt(&inner).unwrap();
    let MessageBody::EncryptedAttachment { blob, .. } = &body else {
        panic!("a file message is an EncryptedAttachment: {body:?}")
    };
    assert_eq!(*blob, descriptor.blob);
    let event = |body: MessageBody| {
        EventContent {
            version: PROTOCOL_VERSION,
            room: Some(ROOM),
            author: a.id(),
            parents: vec![],
            time: Timestamp::new(T0, 0),
            body: Body::Message(body),
        }
        .sign(a.secrets.signing_key())
    };
    let read = b
        .keys
        .decrypt_event(ROOM, &event(body.clone()))
        .unwrap()
        .unwrap();
    let MessageBody::Attachment(got) = read.body else {
        panic!("not an attachment")
    };
    let mut out = Vec::new();
    open_to_writer(&got, |i| Ok(chunks[i as usize].clone()), &mut out).unwrap();
    assert_eq!(out, photo);

    // The same ciphertext under another clear reference is refused.
    let MessageBody::EncryptedAttachment {
        mut blob,
        session_id,
        ciphertext,
    } = body
    else {
        unreachable!()
    };
    blob.address[0] ^= 1;
    let forged = event(MessageBody::EncryptedAttachment {
        blob,
        session_id,
        ciphertext,
    });
    assert!(matches!(
        b.keys.decrypt_event(ROOM, &forged),
        Some(Err(DecryptError::AttachmentMismatch))
    ));
}
