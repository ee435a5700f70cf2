//! The passphrase-encrypted key file that holds a user's secrets.
//!
//! The file is ASCII so it can be exported, copied and pasted:
//!
//! ```text
//! -----BEGIN BASIS USER KEY-----
//! <standard base64 of the blob, 64 characters a line>
//! -----END BASIS USER KEY-----
//! ```
//!
//! The blob is an 85-byte public header followed by the encrypted secrets:
//!
//! | offset | length | field |
//! |---|---|---|
//! | 0 | 1 | format version (`1`) |
//! | 1 | 4 | Argon2id memory in KiB (u32, little endian) |
//! | 5 | 4 | Argon2id iterations (u32, little endian) |
//! | 9 | 4 | Argon2id parallelism (u32, little endian) |
//! | 13 | 16 | salt |
//! | 29 | 32 | user id (ed25519 public key) |
//! | 61 | 24 | XChaCha20-Poly1305 nonce |
//! | 85 | rest | ciphertext and 16-byte tag of [`UserSecrets::to_bytes`] |
//!
//! The key is Argon2id (version 0x13) of the passphrase and salt with the header's parameters;
//! the whole header is the AEAD's associated data, so no field of it can be changed unnoticed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use basis_core::UserId;
use zeroize::Zeroizing;

use crate::secrets::UserSecrets;
use crate::state::{NONCE_LEN, TAG_LEN, xchacha_open, xchacha_seal};

/// First line of a key file.
pub const BEGIN_LINE: &str = "-----BEGIN BASIS USER KEY-----";
/// Last line of a key file.
pub const END_LINE: &str = "-----END BASIS USER KEY-----";
/// The format version written and understood.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the random salt.
pub const SALT_LEN: usize = 16;
/// Length of the public header.
pub const HEADER_LEN: usize = 1 + 12 + SALT_LEN + 32 + NONCE_LEN;
/// Most memory a key file may ask for: 1 GiB, in KiB.
pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
/// Most Argon2 iterations a key file may ask for.
pub const MAX_ITERATIONS: u32 = 64;
/// Most Argon2 lanes a key file may ask for.
pub const MAX_PARALLELISM: u32 = 16;
/// Longest key-file text read (a key file is well under 2 KiB).
pub const MAX_TEXT_LEN: usize = 64 * 1024;
/// Characters of base64 per line.
const LINE_LEN: usize = 64;

/// Why a key file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Decryption failed: the passphrase is wrong (or the file was altered).
    #[error("wrong passphrase (or the key file was altered)")]
    WrongPassphrase,
    /// The text or blob is not a key file.
    #[error("malformed key file: {0}")]
    Malformed(String),
    /// The key file has a format version this build does not know.
    #[error("unsupported key file version {0}")]
    UnsupportedVersion(u8),
    /// The Argon2 parameters are outside the accepted range.
    #[error("key derivation parameters out of range: {0}")]
    ParamsOutOfRange(String),
    /// The operating system gave no randomness.
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    /// Key derivation failed (out of memory).
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The secrets could not be encoded.
    #[error("cannot encode the secrets: {0}")]
    Secrets(#[from] crate::secrets::SecretsError),
}

/// Argon2id cost parameters, stored in the key file's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Number of lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// The default: 64 MiB, 3 passes, 1 lane; about a second on a Raspberry Pi or a phone.
    pub const RECOMMENDED: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// The cheapest accepted parameters (8 KiB, 1 pass). Offer no protection: for tests only.
    pub const INSECURE_FOR_TESTS: Self = Self {
        memory_kib: 8,
        iterations: 1,
        parallelism: 1,
    };

    /// Checks the parameters are within the accepted range (see the `MAX_*` constants).
    pub fn check(&self) -> Result<(), KeyFileError> {
        let out_of_range = |what: String| Err(KeyFileError::ParamsOutOfRange(what));
        if self.memory_kib > MAX_MEMORY_KIB {
            return out_of_range(format!(
                "memory {} KiB exceeds {MAX_MEMORY_KIB} KiB",
                self.memory_kib
            ));
        }
        if !(1..=MAX_ITERATIONS).contains(&self.iterations) {
            return out_of_range(format!(
                "iterations {} not in 1..={MAX_ITERATIONS}",
                self.iterations
            ));
        }
        if !(1..=MAX_PARALLELISM).contains(&self.parallelism) {
            return out_of_range(format!(
                "parallelism {} not in 1..={MAX_PARALLELISM}",
                self.parallelism
            ));
        }
        if self.memory_kib < 8 * self.parallelism {
            return out_of_range(format!(
                "memory {} KiB below 8 KiB per lane",
                self.memory_kib
            ));
        }
        Ok(())
    }

    /// The Argon2id key for `passphrase` and `salt`.
    pub(crate) fn derive(
        &self,
        passphrase: &[u8],
        salt: &[u8; SALT_LEN],
    ) -> Result<Zeroizing<[u8; 32]>, KeyFileError> {
        self.check()?;
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| KeyFileError::ParamsOutOfRange(e.to_string()))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, key.as_mut())
            .map_err(|e| KeyFileError::Kdf(e.to_string()))?;
        Ok(key)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::RECOMMENDED
    }
}

/// The parsed public header.
struct Header {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    user: UserId,
    nonce: [u8; NONCE_LEN],
}

impl Header {
    fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = FORMAT_VERSION;
        out[1..5].copy_from_slice(&self.params.memory_kib.to_le_bytes());
        out[5..9].copy_from_slice(&self.params.iterations.to_le_bytes());
        out[9..13].copy_from_slice(&self.params.parallelism.to_le_bytes());
        out[13..29].copy_from_slice(&self.salt);
        out[29..61].copy_from_slice(self.user.as_bytes());
        out[61..HEADER_LEN].copy_from_slice(&self.nonce);
        out
    }

    /// Splits a blob into its header (checked for version and length) and the rest.
    fn parse(blob: &[u8]) -> Result<(Self, &[u8; HEADER_LEN], &[u8]), KeyFileError> {
        let &version = blob
            .first()
            .ok_or_else(|| KeyFileError::Malformed("empty".into()))?;
        if version != FORMAT_VERSION {
            return Err(KeyFileError::UnsupportedVersion(version));
        }
        if blob.len() < HEADER_LEN + TAG_LEN {
            return Err(KeyFileError::Malformed(format!(
                "{} bytes is too short",
                blob.len()
            )));
        }
        let (header, rest) = blob.split_at(HEADER_LEN);
        let header: &[u8; HEADER_LEN] = header
            .try_into()
            .map_err(|_| KeyFileError::Malformed("header".into()))?;
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&header[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&header[13..29]);
        let mut user = [0u8; 32];
        user.copy_from_slice(&header[29..61]);
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&header[61..HEADER_LEN]);
        let parsed = Self {
            params: KdfParams {
                memory_kib: u32_at(1),
                iterations: u32_at(5),
                parallelism: u32_at(9),
            },
            salt,
            user: UserId(user),
            nonce,
        };
        Ok((parsed, header, rest))
    }
}

/// Encrypts `secrets` under `passphrase` and returns the armoured key-file text.
pub fn encrypt(
    secrets: &UserSecrets,
    passphrase: &[u8],
    params: KdfParams,
) -> Result<String, KeyFileError> {
    params.check()?;
    let random = |e: getrandom::Error| KeyFileError::Random(e.to_string());
    let salt = crate::random_array().map_err(random)?;
    let nonce = crate::random_array().map_err(random)?;
    encrypt_with(secrets, passphrase, params, salt, nonce)
}

/// [`encrypt`] with the salt and nonce given (the test vectors fix them; everything else
/// draws them).
pub(crate) fn encrypt_with(
    secrets: &UserSecrets,
    passphrase: &[u8],
    params: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
) -> Result<String, KeyFileError> {
    params.check()?;
    let header = Header {
        params,
        salt,
        user: secrets.user_id(),
        nonce,
    };
    let header_bytes = header.to_bytes();
    let key = params.derive(passphrase, &header.salt)?;
    let plaintext = secrets.to_bytes()?;
    let ciphertext = xchacha_seal(&key, &header.nonce, &header_bytes, &plaintext)
        .map_err(|_| KeyFileError::Malformed("secrets too long to encrypt".into()))?;
    let mut blob = Vec::with_capacity(HEADER_LEN + ciphertext.len());
    blob.extend_from_slice(&header_bytes);
    blob.extend_from_slice(&ciphertext);
    Ok(armor(&blob))
}

/// Decrypts key-file text with `passphrase`.
pub fn decrypt(text: &str, passphrase: &[u8]) -> Result<UserSecrets, KeyFileError> {
    let blob = unarmor(text)?;
    let (header, header_bytes, ciphertext) = Header::parse(&blob)?;
    let key = header.params.derive(passphrase, &header.salt)?;
    let plaintext = xchacha_open(&key, &header.nonce, header_bytes, ciphertext)
        .map_err(|_| KeyFileError::WrongPassphrase)?;
    let secrets = UserSecrets::from_bytes(&plaintext)
        .map_err(|e| KeyFileError::Malformed(format!("secrets: {e}")))?;
    if secrets.user_id() != header.user {
        return Err(KeyFileError::Malformed(
            "header user id differs from the secrets".into(),
        ));
    }
    Ok(secrets)
}

/// The user id in a key file's public header, read without the passphrase (not authenticated
/// until the file is decrypted).
pub fn peek_user_id(text: &str) -> Result<UserId, KeyFileError> {
    let blob = unarmor(text)?;
    Header::parse(&blob).map(|(header, _, _)| header.user)
}

/// The Argon2 parameters in a key file's public header, checked for range.
pub fn peek_params(text: &str) -> Result<KdfParams, KeyFileError> {
    let blob = unarmor(text)?;
    let (header, _, _) = Header::parse(&blob)?;
    header.params.check()?;
    Ok(header.params)
}

fn armor(blob: &[u8]) -> String {
    let body = STANDARD.encode(blob);
    let mut out = String::with_capacity(body.len() + body.len() / LINE_LEN + 80);
    out.push_str(BEGIN_LINE);
    out.push('\n');
    // Base64 is ASCII, so byte chunks are whole characters.
    for line in body.as_bytes().chunks(LINE_LEN) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(END_LINE);
    out.push('\n');
    out
}

/// The blob inside the armour. Text before the BEGIN line and after the END line is ignored
/// (a key pasted from a mail or a note still reads); whitespace around lines is too.
pub(crate) fn unarmor(text: &str) -> Result<Vec<u8>, KeyFileError> {
    if text.len() > MAX_TEXT_LEN {
        return Err(KeyFileError::Malformed(format!(
            "longer than {MAX_TEXT_LEN} bytes"
        )));
    }
    let mut lines = text.lines().map(str::trim);
    if !lines.any(|l| l == BEGIN_LINE) {
        return Err(KeyFileError::Malformed(format!("no {BEGIN_LINE} line")));
    }
    let mut body = String::new();
    let mut ended = false;
    for line in lines {
        if line == END_LINE {
            ended = true;
            break;
        }
        body.push_str(line);
    }
    if !ended {
        return Err(KeyFileError::Malformed(format!("no {END_LINE} line")));
    }
    STANDARD
        .decode(body.as_bytes())
        .map_err(|e| KeyFileError::Malformed(format!("base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CHEAP: KdfParams = KdfParams::INSECURE_FOR_TESTS;

    fn sample() -> (UserSecrets, String) {
        let mut s = UserSecrets::generate(1_000).unwrap();
        s.rotate_agreement(2_000).unwrap();
        let text = encrypt(&s, b"correct horse", CHEAP).unwrap();
        (s, text)
    }

    fn blob_of(text: &str) -> Vec<u8> {
        unarmor(text).unwrap()
    }

    #[test]
    fn round_trip() {
        let (s, text) = sample();
        assert!(text.starts_with(&format!("{BEGIN_LINE}\n")));
        assert!(text.ends_with(&format!("{END_LINE}\n")));
        for line in text.lines() {
            assert!(line.len() <= LINE_LEN || line == BEGIN_LINE || line == END_LINE);
            assert!(line.is_ascii());
        }
        let back = decrypt(&text, b"correct horse").unwrap();
        assert_eq!(back.user_id(), s.user_id());
        assert_eq!(back.state_key(), s.state_key());
        assert_eq!(back.agreement_public(), s.agreement_public());
        assert_eq!(back.agreement_keys().count(), 2);
        assert_eq!(peek_user_id(&text).unwrap(), s.user_id());
        assert_eq!(peek_params(&text).unwrap(), CHEAP);
    }

    #[test]
    fn recommended_params_are_written_to_the_header() {
        // Checks the header, not the (slow) derivation: build the header as encrypt does.
        let header = Header {
            params: KdfParams::default(),
            salt: [1; SALT_LEN],
            user: UserId([2; 32]),
            nonce: [3; NONCE_LEN],
        };
        let bytes = header.to_bytes();
        let mut blob = bytes.to_vec();
        blob.extend_from_slice(&[0; TAG_LEN]);
        let (parsed, _, _) = Header::parse(&blob).unwrap();
        assert_eq!(parsed.params, KdfParams::RECOMMENDED);
        assert_eq!(parsed.params.memory_kib, 65_536);
        assert_eq!(parsed.salt, [1; SALT_LEN]);
        assert_eq!(parsed.user, UserId([2; 32]));
        assert_eq!(parsed.nonce, [3; NONCE_LEN]);
    }

    #[test]
    fn tolerant_of_surrounding_text_and_crlf() {
        let (s, text) = sample();
        let pasted = format!(
            "my key:\r\n\r\n  {}\r\nthanks\r\n",
            text.replace('\n', "\r\n  ")
        );
        assert_eq!(
            decrypt(&pasted, b"correct horse").unwrap().user_id(),
            s.user_id()
        );
    }

    #[test]
    fn salt_and_nonce_are_fresh() {
        let (s, text) = sample();
        let again = encrypt(&s, b"correct horse", CHEAP).unwrap();
        assert_ne!(text, again);
        assert_ne!(blob_of(&text)[13..29], blob_of(&again)[13..29]);
        assert_ne!(blob_of(&text)[61..85], blob_of(&again)[61..85]);
    }

    #[test]
    fn wrong_passphrase() {
        let (_, text) = sample();
        for wrong in [&b"correct horsE"[..], b"", b"correct horse "] {
            assert!(matches!(
                decrypt(&text, wrong),
                Err(KeyFileError::WrongPassphrase)
            ));
        }
    }

    #[test]
    fn every_flipped_byte_is_an_error() {
        let (_, text) = sample();
        let blob = blob_of(&text);
        for i in 0..blob.len() {
            for mask in [0x01u8, 0xff] {
                let mut bad = blob.clone();
                bad[i] ^= mask;
                let result = decrypt(&armor(&bad), b"correct horse");
                assert!(result.is_err(), "flip {mask:#x} at byte {i} was accepted");
                if i == 0 {
                    assert!(matches!(result, Err(KeyFileError::UnsupportedVersion(_))));
                }
            }
        }
    }

    #[test]
    fn hostile_params_are_refused_before_deriving() {
        let (_, text) = sample();
        let blob = blob_of(&text);
        let with = |at: usize, value: u32| {
            let mut bad = blob.clone();
            bad[at..at + 4].copy_from_slice(&value.to_le_bytes());
            armor(&bad)
        };
        for (at, value) in [
            (1, MAX_MEMORY_KIB + 1),
            (1, u32::MAX),
            (1, 7),
            (5, 0),
            (5, MAX_ITERATIONS + 1),
            (5, u32::MAX),
            (9, 0),
            (9, MAX_PARALLELISM + 1),
            (9, u32::MAX),
        ] {
            let hostile = with(at, value);
            assert!(
                matches!(
                    decrypt(&hostile, b"correct horse"),
                    Err(KeyFileError::ParamsOutOfRange(_))
                ),
                "field at {at} = {value} accepted"
            );
            assert!(matches!(
                peek_params(&hostile),
                Err(KeyFileError::ParamsOutOfRange(_))
            ));
        }
        // Memory too small for the lanes asked for.
        let mut bad = blob.clone();
        bad[1..5].copy_from_slice(&15u32.to_le_bytes());
        bad[9..13].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            decrypt(&armor(&bad), b"x"),
            Err(KeyFileError::ParamsOutOfRange(_))
        ));
        // encrypt refuses them too.
        let s = UserSecrets::generate(0).unwrap();
        let absurd = KdfParams {
            memory_kib: MAX_MEMORY_KIB + 1,
            ..CHEAP
        };
        assert!(matches!(
            encrypt(&s, b"x", absurd),
            Err(KeyFileError::ParamsOutOfRange(_))
        ));
    }

    #[test]
    fn malformed_text() {
        let (_, text) = sample();
        let blob = blob_of(&text);
        let cases = [
            String::new(),
            "hello".to_string(),
            text.replace(BEGIN_LINE, "-----BEGIN SOMETHING-----"),
            text.replace(END_LINE, ""),
            text.replacen('A', "*", 1),
            format!("{BEGIN_LINE}\n{END_LINE}\n"),
            armor(&blob[..HEADER_LEN + TAG_LEN - 1]),
            armor(&blob[..blob.len() - 1]),
            "x".repeat(MAX_TEXT_LEN + 1),
        ];
        for case in cases {
            assert!(
                decrypt(&case, b"correct horse").is_err(),
                "accepted {case:?}"
            );
        }
        assert!(matches!(
            peek_user_id("nothing here"),
            Err(KeyFileError::Malformed(_))
        ));
        let mut v2 = blob;
        v2[0] = 2;
        assert!(matches!(
            peek_user_id(&armor(&v2)),
            Err(KeyFileError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn header_user_must_match_the_secrets() {
        // A file whose (authenticated) header names another user than its secrets: only a
        // faulty writer makes this, and it is refused rather than trusted.
        let s = UserSecrets::generate(0).unwrap();
        let header = Header {
            params: CHEAP,
            salt: [4; SALT_LEN],
            user: UserId([9; 32]),
            nonce: [5; NONCE_LEN],
        };
        let header_bytes = header.to_bytes();
        let key = CHEAP.derive(b"pw", &header.salt).unwrap();
        let ct = xchacha_seal(&key, &header.nonce, &header_bytes, &s.to_bytes().unwrap()).unwrap();
        let mut blob = header_bytes.to_vec();
        blob.extend_from_slice(&ct);
        assert!(matches!(
            decrypt(&armor(&blob), b"pw"),
            Err(KeyFileError::Malformed(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn garbage_text_never_panics(text in ".{0,300}") {
            prop_assert!(decrypt(&text, b"pw").is_err());
            prop_assert!(peek_user_id(&text).is_err());
        }

        #[test]
        fn garbage_blob_never_panics(mut blob in proptest::collection::vec(any::<u8>(), 0..300)) {
            // Keep the derivation cheap when the random header happens to parse.
            if blob.len() > 13 {
                blob[0] = FORMAT_VERSION;
                blob[1..13].copy_from_slice(&[8, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0]);
            }
            prop_assert!(decrypt(&armor(&blob), b"pw").is_err());
        }
    }
}
