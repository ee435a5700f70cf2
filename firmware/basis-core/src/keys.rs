//! Signing keys of users and nodes (ed25519). Secrets never appear in `Debug` output.

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey};

use crate::ids::{NodeId, UserId};

/// Why a key could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The text is not a PKCS#8 PEM ed25519 private key.
    #[error("not a PKCS#8 PEM ed25519 private key: {0}")]
    Format(String),
}

fn random_secret() -> Result<[u8; 32], KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(seed)
}

fn from_pem(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| KeyError::Format(e.to_string()))
}

fn to_pem(key: &SigningKey) -> Result<String, KeyError> {
    key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map(|z| z.to_string())
        .map_err(|e| KeyError::Format(e.to_string()))
}

macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident, $id:ident) => {
        $(#[$doc])*
        pub struct $name(SigningKey);

        impl $name {
            /// A new key from the operating system's randomness.
            pub fn generate() -> Result<Self, KeyError> {
                Ok(Self(SigningKey::from_bytes(&random_secret()?)))
            }

            /// A key from a 32-byte secret (for test vectors and imports).
            pub fn from_secret(secret: [u8; 32]) -> Self {
                Self(SigningKey::from_bytes(&secret))
            }

            /// Reads a PKCS#8 PEM private key (the format `openssl genpkey -algorithm ed25519` writes).
            pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
                from_pem(pem).map(Self)
            }

            /// Writes the key as PKCS#8 PEM. The result is a secret: keep it out of logs.
            pub fn to_pem(&self) -> Result<String, KeyError> {
                to_pem(&self.0)
            }

            /// The key as PKCS#8 DER bytes (for TLS). The result is a secret.
            pub fn to_pkcs8_der(&self) -> Result<Vec<u8>, KeyError> {
                self.0
                    .to_pkcs8_der()
                    .map(|d| d.as_bytes().to_vec())
                    .map_err(|e| KeyError::Format(e.to_string()))
            }

            /// The public identity of this key.
            pub fn id(&self) -> $id {
                $id(self.0.verifying_key().to_bytes())
            }

            /// Signs bytes.
            pub fn sign(&self, message: &[u8]) -> [u8; 64] {
                self.0.sign(message).to_bytes()
            }

            /// The 32-byte secret (for TLS certificates and encrypted export); handle with care.
            pub fn secret_bytes(&self) -> [u8; 32] {
                self.0.to_bytes()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}(public {})", stringify!($name), self.id().short())
            }
        }
    };
}

key_type!(
    /// A user's signing key: signs the user's events. Made and kept by the client.
    UserKey,
    UserId
);
key_type!(
    /// A node's identity key: made on first start, names the node to its peers.
    NodeKey,
    NodeId
);

/// Public keys decoded per thread and kept: decoding one (a square root on the curve) is a
/// tenth of a signature check, and the events a node checks come from few authors.
const DECODED_KEYS: std::num::NonZeroUsize = std::num::NonZeroUsize::new(256).unwrap();

thread_local! {
    static DECODED: std::cell::RefCell<lru::LruCache<[u8; 32], ed25519_dalek::VerifyingKey>> =
        std::cell::RefCell::new(lru::LruCache::new(DECODED_KEYS));
}

/// `public` decoded as a curve point (`None` when it is not one), from this thread's cache
/// when it was decoded before. Only keys that decode are kept.
fn decoded(public: &[u8; 32]) -> Option<ed25519_dalek::VerifyingKey> {
    DECODED.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(key) = cache.get(public) {
            return Some(*key);
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(public).ok()?;
        cache.put(*public, key);
        Some(key)
    })
}

/// Verifies a signature strictly (no malleable signatures, no weak keys).
pub fn verify(public: &[u8; 32], message: &[u8], signature: &[u8; 64]) -> bool {
    let Some(key) = decoded(public) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    key.verify_strict(message, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip_keeps_identity() {
        let k = NodeKey::generate().unwrap();
        let pem = k.to_pem().unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = NodeKey::from_pem(&pem).unwrap();
        assert_eq!(back.id(), k.id());
    }

    #[test]
    fn garbage_is_a_format_error() {
        assert!(matches!(
            UserKey::from_pem("hello"),
            Err(KeyError::Format(_))
        ));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let k = UserKey::from_secret([7; 32]);
        let shown = format!("{k:?}");
        assert!(!shown.contains(&hex::encode([7u8; 32])));
        assert!(shown.contains(&k.id().short()));
    }

    #[test]
    fn signatures_verify_and_tampering_fails() {
        let k = UserKey::from_secret([1; 32]);
        let sig = k.sign(b"hello");
        assert!(verify(k.id().as_bytes(), b"hello", &sig));
        assert!(!verify(k.id().as_bytes(), b"hellO", &sig));
    }

    #[test]
    fn keys_kept_decoded_answer_as_fresh_ones_past_the_cache_size() {
        // More authors than the cache holds, twice over, so that keys are evicted and decoded
        // again; every answer must be the one a fresh decode gives.
        let keys: Vec<UserKey> = (0..DECODED_KEYS.get() as u64 + 44)
            .map(|i| {
                let mut secret = [9u8; 32];
                secret[..8].copy_from_slice(&i.to_le_bytes());
                UserKey::from_secret(secret)
            })
            .collect();
        let sigs: Vec<[u8; 64]> = keys.iter().map(|k| k.sign(b"m")).collect();
        for _ in 0..2 {
            for (i, k) in keys.iter().enumerate() {
                assert!(verify(k.id().as_bytes(), b"m", &sigs[i]));
                assert!(!verify(k.id().as_bytes(), b"n", &sigs[i]));
                let other = &sigs[(i + 1) % sigs.len()];
                assert!(!verify(k.id().as_bytes(), b"m", other));
            }
        }
        // A weak key (the identity point, of small order) and bytes that are no point are
        // refused each time they are asked about.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        let weak = ed25519_dalek::VerifyingKey::from_bytes(&identity).map(|k| k.is_weak());
        assert!(matches!(weak, Ok(true)));
        assert!(ed25519_dalek::VerifyingKey::from_bytes(&not_a_point).is_err());
        for _ in 0..2 {
            assert!(!verify(&identity, b"m", &[0; 64]));
            assert!(!verify(&not_a_point, b"m", &sigs[0]));
        }
    }
}
