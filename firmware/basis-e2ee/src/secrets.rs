//! A user's secrets: signing key, X25519 agreement keys and the state key.
//!
//! Byte encoding ([`UserSecrets::to_bytes`]), the plaintext inside a key file: one version
//! byte (`1`), then postcard of `(signing: [u8; 32], state_key: [u8; 32], agreement:
//! Vec<(secret: [u8; 32], created_ms: u64)>)`, agreement keys oldest first. Public keys are not
//! stored; they are derived again on reading.

use std::fmt;

use basis_core::{UserId, UserKey};
use hpke::{Deserializable, Kem as _, Serializable};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::seal::Kem;

/// Version byte of the secrets encoding.
const SECRETS_VERSION: u8 = 1;
/// Most agreement keys a secrets encoding may hold (refuses absurd input before allocating).
pub const MAX_AGREEMENT_KEYS: usize = 1024;

/// Why secrets could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The bytes are not an encoding of user secrets.
    #[error("malformed user secrets: {0}")]
    Malformed(String),
    /// The encoding has a version this build does not know.
    #[error("unsupported user secrets version {0}")]
    UnsupportedVersion(u8),
}

/// One X25519 key-agreement key pair and when it was made.
pub struct AgreementKey {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
    created_ms: u64,
}

impl AgreementKey {
    /// A new random key made at `now_ms`.
    fn generate(now_ms: u64) -> Result<Self, SecretsError> {
        let secret = Zeroizing::new(
            crate::random_array::<32>().map_err(|e| SecretsError::Random(e.to_string()))?,
        );
        Self::from_secret(secret, now_ms)
    }

    /// The key pair of a stored secret.
    fn from_secret(secret: Zeroizing<[u8; 32]>, created_ms: u64) -> Result<Self, SecretsError> {
        let private = private_key(&secret)?;
        let public: [u8; 32] = Kem::sk_to_pk(&private).to_bytes().into();
        Ok(Self {
            secret,
            public,
            created_ms,
        })
    }

    /// The public key, which others seal session keys to.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// When the key was made, in unix milliseconds.
    pub fn created_ms(&self) -> u64 {
        self.created_ms
    }

    /// The HPKE private key (zeroized on drop by hpke).
    pub(crate) fn hpke_private(&self) -> Result<<Kem as hpke::Kem>::PrivateKey, SecretsError> {
        private_key(&self.secret)
    }
}

fn private_key(secret: &[u8; 32]) -> Result<<Kem as hpke::Kem>::PrivateKey, SecretsError> {
    <Kem as hpke::Kem>::PrivateKey::from_bytes(secret)
        .map_err(|e| SecretsError::Malformed(format!("agreement key: {e}")))
}

impl fmt::Debug for AgreementKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgreementKey")
            .field("public", &short_hex(&self.public))
            .field("created_ms", &self.created_ms)
            .finish_non_exhaustive()
    }
}

fn short_hex(bytes: &[u8]) -> String {
    bytes.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// Everything secret a user has: identity, agreement keys, state key.
pub struct UserSecrets {
    signing: UserKey,
    /// The agreement key published now.
    current: AgreementKey,
    /// Earlier agreement keys, oldest first, kept so earlier key shares still open.
    previous: Vec<AgreementKey>,
    state_key: Zeroizing<[u8; 32]>,
}

impl UserSecrets {
    /// New secrets: a fresh signing key, one agreement key made at `now_ms`, a fresh state key.
    pub fn generate(now_ms: u64) -> Result<Self, SecretsError> {
        let signing = UserKey::generate().map_err(|e| SecretsError::Random(e.to_string()))?;
        let current = AgreementKey::generate(now_ms)?;
        let state_key = Zeroizing::new(
            crate::random_array::<32>().map_err(|e| SecretsError::Random(e.to_string()))?,
        );
        Ok(Self {
            signing,
            current,
            previous: Vec::new(),
            state_key,
        })
    }

    /// The user's public identity.
    pub fn user_id(&self) -> UserId {
        self.signing.id()
    }

    /// The ed25519 key that signs the user's events.
    pub fn signing_key(&self) -> &UserKey {
        &self.signing
    }

    /// The newest agreement public key: the one to publish and to seal new shares to.
    pub fn agreement_public(&self) -> [u8; 32] {
        self.current.public
    }

    /// All agreement keys held, oldest first, the current one last.
    pub fn agreement_keys(&self) -> impl Iterator<Item = &AgreementKey> {
        self.previous.iter().chain(std::iter::once(&self.current))
    }

    /// The held agreement key whose public key is `public`, if any.
    pub(crate) fn agreement_key_for(&self, public: &[u8; 32]) -> Option<&AgreementKey> {
        self.agreement_keys().find(|k| &k.public == public)
    }

    /// Makes a new agreement key at `now_ms` and makes it current; the old one is kept so
    /// shares already sealed to it still open. Returns the new public key.
    pub fn rotate_agreement(&mut self, now_ms: u64) -> Result<[u8; 32], SecretsError> {
        let fresh = AgreementKey::generate(now_ms)?;
        let old = std::mem::replace(&mut self.current, fresh);
        self.previous.push(old);
        Ok(self.current.public)
    }

    /// Forgets every earlier agreement key that was replaced before `cutoff_ms` (a key is
    /// replaced when the next one is made). The current key is always kept. Shares sealed to a
    /// forgotten key no longer open, so call this only once those shares have been absorbed.
    /// Returns how many keys were forgotten.
    pub fn forget_agreement_keys_replaced_before(&mut self, cutoff_ms: u64) -> usize {
        // Replacement time of previous[i] is the creation time of the key after it.
        let replaced_at: Vec<u64> = self
            .previous
            .iter()
            .skip(1)
            .chain(std::iter::once(&self.current))
            .map(|k| k.created_ms)
            .collect();
        let before = self.previous.len();
        let mut index = 0;
        self.previous.retain(|_| {
            let keep = replaced_at.get(index).is_none_or(|&at| at >= cutoff_ms);
            index += 1;
            keep
        });
        before - self.previous.len()
    }

    /// The key that encrypts the client's state files (see [`crate::seal_state`]).
    pub fn state_key(&self) -> &[u8; 32] {
        &self.state_key
    }

    /// The secrets as bytes (the plaintext of a key file); zeroized on drop.
    pub fn to_bytes(&self) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let wire = SecretsWire {
            signing: self.signing.secret_bytes(),
            state_key: *self.state_key,
            agreement: self
                .agreement_keys()
                .map(|k| AgreementWire {
                    secret: *k.secret,
                    created_ms: k.created_ms,
                })
                .collect(),
        };
        // Exact upper bound, so the buffer never reallocates and leaves copies behind:
        // version, two keys, a length varint, then per key 32 bytes and a u64 varint.
        let capacity = 1 + 64 + 10 + wire.agreement.len() * (32 + 10);
        let mut buf = Zeroizing::new(vec![0u8; capacity]);
        buf[0] = SECRETS_VERSION;
        let used = postcard::to_slice(&wire, &mut buf[1..])
            .map_err(|e| SecretsError::Malformed(format!("encoding: {e}")))?
            .len();
        buf.truncate(1 + used);
        Ok(buf)
    }

    /// Reads what [`UserSecrets::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SecretsError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or_else(|| SecretsError::Malformed("empty".into()))?;
        if version != SECRETS_VERSION {
            return Err(SecretsError::UnsupportedVersion(version));
        }
        let (wire, tail): (SecretsWire, &[u8]) =
            postcard::take_from_bytes(rest).map_err(|e| SecretsError::Malformed(e.to_string()))?;
        if !tail.is_empty() {
            return Err(SecretsError::Malformed("trailing bytes".into()));
        }
        if wire.agreement.len() > MAX_AGREEMENT_KEYS {
            return Err(SecretsError::Malformed("too many agreement keys".into()));
        }
        let mut keys = Vec::with_capacity(wire.agreement.len());
        for k in &wire.agreement {
            keys.push(AgreementKey::from_secret(
                Zeroizing::new(k.secret),
                k.created_ms,
            )?);
        }
        let current = keys
            .pop()
            .ok_or_else(|| SecretsError::Malformed("no agreement key".into()))?;
        Ok(Self {
            signing: UserKey::from_secret(wire.signing),
            current,
            previous: keys,
            state_key: Zeroizing::new(wire.state_key),
        })
    }
}

#[cfg(test)]
impl UserSecrets {
    /// Gives this user the very agreement keys of `other` (to test that the recipient id, not
    /// only the agreement key, decides who can open a sealed key).
    pub(crate) fn replace_agreement_keys_for_tests(&mut self, other: &UserSecrets) {
        let copy = |k: &AgreementKey| AgreementKey::from_secret(k.secret.clone(), k.created_ms);
        self.current = copy(&other.current).unwrap();
        self.previous = other.previous.iter().map(|k| copy(k).unwrap()).collect();
    }
}

impl fmt::Debug for UserSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSecrets")
            .field("user", &self.user_id().short())
            .field("agreement_keys", &(self.previous.len() + 1))
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct SecretsWire {
    signing: [u8; 32],
    state_key: [u8; 32],
    agreement: Vec<AgreementWire>,
}

#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
struct AgreementWire {
    secret: [u8; 32],
    created_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_and_round_trip() {
        let mut s = UserSecrets::generate(1_000).unwrap();
        s.rotate_agreement(2_000).unwrap();
        let bytes = s.to_bytes().unwrap();
        let back = UserSecrets::from_bytes(&bytes).unwrap();
        assert_eq!(back.user_id(), s.user_id());
        assert_eq!(back.state_key(), s.state_key());
        assert_eq!(back.agreement_public(), s.agreement_public());
        let publics = |u: &UserSecrets| {
            u.agreement_keys()
                .map(|k| (k.public(), k.created_ms()))
                .collect::<Vec<_>>()
        };
        assert_eq!(publics(&back), publics(&s));
        assert_eq!(publics(&s).len(), 2);
        assert_eq!(publics(&s)[1].1, 2_000);
    }

    #[test]
    fn fresh_secrets_differ() {
        let a = UserSecrets::generate(0).unwrap();
        let b = UserSecrets::generate(0).unwrap();
        assert_ne!(a.user_id(), b.user_id());
        assert_ne!(a.agreement_public(), b.agreement_public());
        assert_ne!(a.state_key(), b.state_key());
    }

    #[test]
    fn rotation_makes_a_new_current_key_and_keeps_the_old() {
        let mut s = UserSecrets::generate(10).unwrap();
        let first = s.agreement_public();
        let second = s.rotate_agreement(20).unwrap();
        assert_ne!(first, second);
        assert_eq!(s.agreement_public(), second);
        assert!(s.agreement_key_for(&first).is_some());
        assert!(s.agreement_key_for(&second).is_some());
        assert!(s.agreement_key_for(&[9; 32]).is_none());
    }

    #[test]
    fn forgetting_drops_only_keys_replaced_before_the_cutoff() {
        let mut s = UserSecrets::generate(100).unwrap();
        let k100 = s.agreement_public();
        let k200 = s.rotate_agreement(200).unwrap();
        let k300 = s.rotate_agreement(300).unwrap();
        // k100 was replaced at 200, k200 at 300; the current one never goes.
        assert_eq!(s.forget_agreement_keys_replaced_before(200), 0);
        assert_eq!(s.forget_agreement_keys_replaced_before(201), 1);
        assert!(s.agreement_key_for(&k100).is_none());
        assert!(s.agreement_key_for(&k200).is_some());
        assert_eq!(s.forget_agreement_keys_replaced_before(u64::MAX), 1);
        assert!(s.agreement_key_for(&k200).is_none());
        assert_eq!(s.agreement_public(), k300);
        assert_eq!(s.agreement_keys().count(), 1);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let s = UserSecrets::generate(0).unwrap();
        let text = format!("{s:?} {:?}", s.agreement_keys().collect::<Vec<_>>());
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert!(!text.contains(&hex(s.state_key())));
        assert!(!text.contains(&hex(&s.signing_key().secret_bytes())));
        assert!(!text.contains(&hex(&*s.current.secret)));
        assert!(!text.contains(&format!("{:?}", s.state_key())));
        assert!(text.contains(&s.user_id().short()));
    }

    #[test]
    fn bad_bytes_are_errors() {
        assert!(matches!(
            UserSecrets::from_bytes(&[]),
            Err(SecretsError::Malformed(_))
        ));
        assert!(matches!(
            UserSecrets::from_bytes(&[2, 0, 0]),
            Err(SecretsError::UnsupportedVersion(2))
        ));
        let s = UserSecrets::generate(0).unwrap();
        let bytes = s.to_bytes().unwrap();
        for len in 0..bytes.len() {
            assert!(UserSecrets::from_bytes(&bytes[..len]).is_err());
        }
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(UserSecrets::from_bytes(&long).is_err());
        // No agreement key at all.
        let mut none = vec![SECRETS_VERSION];
        none.extend_from_slice(&[1; 64]);
        none.push(0);
        assert!(matches!(
            UserSecrets::from_bytes(&none),
            Err(SecretsError::Malformed(_))
        ));
    }
}
