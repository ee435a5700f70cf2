//! Sealing client state files (pickled sessions and the like) under the user's state key.
//!
//! Layout of a sealed file: a random 24-byte nonce, then the XChaCha20-Poly1305 ciphertext
//! and tag of the plaintext, with the caller's associated data (a label naming what the file
//! is, so one kind of state file cannot be passed off as another).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

/// Length of the XChaCha20-Poly1305 nonce.
pub(crate) const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;

/// Why a state file could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// The file is shorter than a nonce and a tag.
    #[error("state file too short ({0} bytes)")]
    TooShort(usize),
    /// The file was not sealed with this key and label, or was changed since.
    #[error("state file does not open with this key (wrong key, wrong kind of file or tampered)")]
    Tampered,
    /// Encryption failed (the plaintext is too long for the cipher).
    #[error("state could not be encrypted")]
    Encrypt,
    /// The file opened but its content is not the state expected.
    #[error("malformed state: {0}")]
    Malformed(String),
}

/// XChaCha20-Poly1305 encryption with an explicit nonce; returns ciphertext ‖ tag.
pub(crate) fn xchacha_seal(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, chacha20poly1305::Error> {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    cipher.encrypt(
        &XNonce::from(*nonce),
        Payload {
            msg: plaintext,
            aad,
        },
    )
}

/// XChaCha20-Poly1305 decryption of ciphertext ‖ tag; the plaintext is zeroized on drop.
pub(crate) fn xchacha_open(
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Zeroizing<Vec<u8>>, chacha20poly1305::Error> {
    let cipher = XChaCha20Poly1305::new(&Key::from(*key));
    cipher
        .decrypt(
            &XNonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map(Zeroizing::new)
}

/// Encrypts `plaintext` under `state_key` with a random nonce; `aad` labels the kind of file.
pub fn seal_state(
    state_key: &[u8; 32],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, StateError> {
    let nonce: [u8; NONCE_LEN] =
        crate::random_array().map_err(|e| StateError::Random(e.to_string()))?;
    seal_state_with_nonce(state_key, &nonce, aad, plaintext)
}

/// [`seal_state`] with the nonce given (the test vectors fix it; everything else draws it).
pub(crate) fn seal_state_with_nonce(
    state_key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, StateError> {
    let ciphertext =
        xchacha_seal(state_key, nonce, aad, plaintext).map_err(|_| StateError::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypts what [`seal_state`] made with the same key and `aad`.
pub fn open_state(
    state_key: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, StateError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(StateError::TooShort(sealed.len()));
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| StateError::TooShort(sealed.len()))?;
    xchacha_open(state_key, &nonce, aad, ciphertext).map_err(|_| StateError::Tampered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    #[test]
    fn round_trip() {
        let sealed = seal_state(&KEY, b"label", b"hello state").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 11 + TAG_LEN);
        let opened = open_state(&KEY, b"label", &sealed).unwrap();
        assert_eq!(opened.as_slice(), b"hello state");
    }

    #[test]
    fn nonces_are_fresh() {
        let a = seal_state(&KEY, b"l", b"same").unwrap();
        let b = seal_state(&KEY, b"l", b"same").unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn wrong_key_label_or_any_flipped_byte_fails() {
        let sealed = seal_state(&KEY, b"label", b"hello state").unwrap();
        assert!(matches!(
            open_state(&[8; 32], b"label", &sealed),
            Err(StateError::Tampered)
        ));
        assert!(matches!(
            open_state(&KEY, b"other", &sealed),
            Err(StateError::Tampered)
        ));
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(
                matches!(open_state(&KEY, b"label", &bad), Err(StateError::Tampered)),
                "flip at {i} opened"
            );
        }
    }

    #[test]
    fn short_input_is_refused() {
        for len in 0..NONCE_LEN + TAG_LEN {
            assert!(matches!(
                open_state(&KEY, b"", &vec![0; len]),
                Err(StateError::TooShort(n)) if n == len
            ));
        }
        // Exactly nonce + tag is an empty plaintext, which must still authenticate.
        let sealed = seal_state(&KEY, b"", b"").unwrap();
        assert!(open_state(&KEY, b"", &sealed).unwrap().is_empty());
    }
}
