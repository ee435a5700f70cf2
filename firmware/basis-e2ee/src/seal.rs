//! Sealing a Megolm session key to one member with HPKE (RFC 9180, base mode).
//!
//! Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305. The [`Binding`] (room,
//! sender, session id) goes into HPKE `info` and the recipient's user id into the AEAD's
//! associated data, so a sealed key opens only in the slot it was made for.

use basis_core::{RoomId, SealedKey, UserId};
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use zeroize::Zeroizing;

use crate::secrets::UserSecrets;

/// The HPKE KEM: DHKEM(X25519, HKDF-SHA256).
pub(crate) type Kem = hpke::kem::X25519HkdfSha256;
/// The HPKE KDF.
type Kdf = hpke::kdf::HkdfSha256;
/// The HPKE AEAD.
type Aead = hpke::aead::ChaCha20Poly1305;

/// Domain-separation prefix of the HPKE `info` of key shares.
pub const KEY_SHARE_INFO_PREFIX: &[u8] = b"basis/key-share/v1\n";

/// Why a session key could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The sealed key names an agreement key this user does not hold (never had it, or
    /// already forgot it).
    #[error("no agreement key matches the one the key was sealed to")]
    NoMatchingKey,
    /// The sealed key is addressed to another user.
    #[error("the sealed key is addressed to another user")]
    NotForMe,
    /// The recipient's agreement public key is unusable (a low-order point).
    #[error("unusable recipient agreement key")]
    BadRecipientKey,
    /// The encapsulated key is not a 32-byte X25519 public key.
    #[error("malformed encapsulated key")]
    MalformedEncapsulated,
    /// Decryption failed: wrong room, sender, session, recipient, or tampered bytes.
    #[error("sealed key does not open (wrong binding or tampered)")]
    Open,
    /// HPKE refused to seal.
    #[error("sealing failed: {0}")]
    Seal(String),
    /// The user's own agreement key could not be loaded.
    #[error("agreement key unusable: {0}")]
    Secrets(#[from] crate::secrets::SecretsError),
}

/// What a sealed session key is bound to: it opens only for this room, sender and session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    /// The room the key share is in.
    pub room: RoomId,
    /// The author of the key share, owner of the session.
    pub sender: UserId,
    /// The session id the share names.
    pub session_id: Vec<u8>,
}

impl Binding {
    /// The HPKE `info`: prefix ‖ room (32) ‖ sender (32) ‖ session id (the rest; the only
    /// variable-length part is last, so the encoding is unambiguous).
    pub fn info(&self) -> Vec<u8> {
        let mut info = Vec::with_capacity(KEY_SHARE_INFO_PREFIX.len() + 64 + self.session_id.len());
        info.extend_from_slice(KEY_SHARE_INFO_PREFIX);
        info.extend_from_slice(self.room.as_bytes());
        info.extend_from_slice(self.sender.as_bytes());
        info.extend_from_slice(&self.session_id);
        info
    }
}

/// Seals `session_key` to `recipient`'s agreement key `recipient_key`, bound to `binding`.
pub fn seal_session_key(
    recipient: UserId,
    recipient_key: [u8; 32],
    binding: &Binding,
    session_key: &[u8],
) -> Result<SealedKey, SealError> {
    seal_with(
        recipient,
        recipient_key,
        binding,
        session_key,
        |public, info, plaintext, aad| {
            hpke::single_shot_seal::<Aead, Kdf, Kem>(&OpModeS::Base, public, info, plaintext, aad)
        },
    )
}

/// [`seal_session_key`] with the randomness given: the HPKE ephemeral key is derived from the
/// first 32 bytes `rng` yields (RFC 9180 `DeriveKeyPair`). For the test vectors only.
#[cfg(test)]
pub(crate) fn seal_session_key_with_rng(
    recipient: UserId,
    recipient_key: [u8; 32],
    binding: &Binding,
    session_key: &[u8],
    rng: &mut impl hpke::rand_core::CryptoRng,
) -> Result<SealedKey, SealError> {
    seal_with(
        recipient,
        recipient_key,
        binding,
        session_key,
        |public, info, plaintext, aad| {
            hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
                &OpModeS::Base,
                public,
                info,
                plaintext,
                aad,
                rng,
            )
        },
    )
}

/// What HPKE's single-shot seal returns: the encapsulated key and the ciphertext.
type Sealed = Result<(<Kem as hpke::Kem>::EncappedKey, Vec<u8>), hpke::HpkeError>;

/// Seals with `seal` (HPKE single-shot seal of recipient key, info, plaintext, aad), then maps
/// the result to a [`SealedKey`]: the one body of both sealing functions.
fn seal_with(
    recipient: UserId,
    recipient_key: [u8; 32],
    binding: &Binding,
    session_key: &[u8],
    seal: impl FnOnce(&<Kem as hpke::Kem>::PublicKey, &[u8], &[u8], &[u8]) -> Sealed,
) -> Result<SealedKey, SealError> {
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient_key)
        .map_err(|_| SealError::BadRecipientKey)?;
    let (encapsulated, ciphertext) =
        seal(&public, &binding.info(), session_key, recipient.as_bytes()).map_err(|e| match e {
            hpke::HpkeError::EncapError => SealError::BadRecipientKey,
            other => SealError::Seal(other.to_string()),
        })?;
    Ok(SealedKey {
        recipient,
        recipient_key,
        encapsulated: encapsulated.to_bytes().to_vec(),
        ciphertext,
    })
}

/// Opens a sealed session key addressed to `secrets`' user, checking it was made for
/// `binding`. The result is zeroized on drop.
pub fn open_session_key(
    sealed: &SealedKey,
    secrets: &UserSecrets,
    binding: &Binding,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let me = secrets.user_id();
    if sealed.recipient != me {
        return Err(SealError::NotForMe);
    }
    let key = secrets
        .agreement_key_for(&sealed.recipient_key)
        .ok_or(SealError::NoMatchingKey)?;
    let private = key.hpke_private()?;
    let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed.encapsulated)
        .map_err(|_| SealError::MalformedEncapsulated)?;
    hpke::single_shot_open::<Aead, Kdf, Kem>(
        &OpModeR::Base,
        &private,
        &encapsulated,
        &binding.info(),
        &sealed.ciphertext,
        me.as_bytes(),
    )
    .map(Zeroizing::new)
    .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding() -> Binding {
        Binding {
            room: RoomId([1; 32]),
            sender: UserId([2; 32]),
            session_id: vec![3; 32],
        }
    }

    #[test]
    fn seal_and_open() {
        let bob = UserSecrets::generate(0).unwrap();
        let sealed =
            seal_session_key(bob.user_id(), bob.agreement_public(), &binding(), b"key").unwrap();
        assert_eq!(sealed.recipient, bob.user_id());
        assert_eq!(sealed.recipient_key, bob.agreement_public());
        assert_eq!(sealed.encapsulated.len(), 32);
        assert_ne!(&sealed.ciphertext[..3], b"key");
        let opened = open_session_key(&sealed, &bob, &binding()).unwrap();
        assert_eq!(opened.as_slice(), b"key");
    }

    #[test]
    fn other_room_sender_or_session_fails() {
        let bob = UserSecrets::generate(0).unwrap();
        let sealed =
            seal_session_key(bob.user_id(), bob.agreement_public(), &binding(), b"key").unwrap();
        let mut other_room = binding();
        other_room.room = RoomId([9; 32]);
        let mut other_sender = binding();
        other_sender.sender = UserId([9; 32]);
        let mut other_session = binding();
        other_session.session_id = vec![9; 32];
        let mut longer_session = binding();
        longer_session.session_id.push(0);
        for b in [other_room, other_sender, other_session, longer_session] {
            assert!(matches!(
                open_session_key(&sealed, &bob, &b),
                Err(SealError::Open)
            ));
        }
    }

    #[test]
    fn another_recipients_slot_fails() {
        let bob = UserSecrets::generate(0).unwrap();
        let carol = UserSecrets::generate(0).unwrap();
        let for_bob =
            seal_session_key(bob.user_id(), bob.agreement_public(), &binding(), b"key").unwrap();

        // Bob's slot relabelled as Carol's: Bob refuses it, Carol lacks the key.
        let mut relabelled = for_bob.clone();
        relabelled.recipient = carol.user_id();
        assert!(matches!(
            open_session_key(&relabelled, &bob, &binding()),
            Err(SealError::NotForMe)
        ));
        assert!(matches!(
            open_session_key(&relabelled, &carol, &binding()),
            Err(SealError::NoMatchingKey)
        ));

        // Carol's slot pointing at Bob's key: Bob cannot open what was sealed to Carol.
        let for_carol =
            seal_session_key(carol.user_id(), carol.agreement_public(), &binding(), b"k2").unwrap();
        let mut moved = for_carol.clone();
        moved.recipient = bob.user_id();
        moved.recipient_key = bob.agreement_public();
        assert!(matches!(
            open_session_key(&moved, &bob, &binding()),
            Err(SealError::Open)
        ));

        // The recipient id really is authenticated: a user holding the very same agreement
        // key under another identity still cannot open Bob's slot.
        let mut twin = UserSecrets::generate(0).unwrap();
        twin.replace_agreement_keys_for_tests(&bob);
        let mut for_twin = for_bob.clone();
        for_twin.recipient = twin.user_id();
        assert!(matches!(
            open_session_key(&for_twin, &twin, &binding()),
            Err(SealError::Open)
        ));
        // ...while the twin can open a key sealed to its own id with that agreement key.
        let sealed_to_twin =
            seal_session_key(twin.user_id(), bob.agreement_public(), &binding(), b"k3").unwrap();
        assert_eq!(
            open_session_key(&sealed_to_twin, &twin, &binding())
                .unwrap()
                .as_slice(),
            b"k3"
        );
    }

    #[test]
    fn tampering_fails_without_panic() {
        let bob = UserSecrets::generate(0).unwrap();
        let sealed =
            seal_session_key(bob.user_id(), bob.agreement_public(), &binding(), b"key").unwrap();
        for i in 0..sealed.ciphertext.len() {
            let mut bad = sealed.clone();
            bad.ciphertext[i] ^= 0x80;
            assert!(open_session_key(&bad, &bob, &binding()).is_err());
        }
        for i in 0..sealed.encapsulated.len() {
            let mut bad = sealed.clone();
            bad.encapsulated[i] ^= 0x01;
            assert!(open_session_key(&bad, &bob, &binding()).is_err());
        }
        for len in [0, 1, 31, 33, 64] {
            let mut bad = sealed.clone();
            bad.encapsulated = vec![5; len];
            assert!(matches!(
                open_session_key(&bad, &bob, &binding()),
                Err(SealError::MalformedEncapsulated)
            ));
        }
        let mut bad = sealed.clone();
        bad.encapsulated = vec![0; 32];
        assert!(open_session_key(&bad, &bob, &binding()).is_err());
        let mut bad = sealed;
        bad.ciphertext.clear();
        assert!(matches!(
            open_session_key(&bad, &bob, &binding()),
            Err(SealError::Open)
        ));
    }

    #[test]
    fn low_order_recipient_key_is_refused() {
        assert!(matches!(
            seal_session_key(UserId([1; 32]), [0; 32], &binding(), b"key"),
            Err(SealError::BadRecipientKey)
        ));
    }
}
