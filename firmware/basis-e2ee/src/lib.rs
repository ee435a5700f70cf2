//! End-to-end encryption of Basis: pure logic, no tokio, sockets or SQLite.
//!
//! Nodes store and forward encrypted rooms without ever seeing their plaintext. This crate
//! holds everything a client needs for that; it only composes audited primitives (vodozemac's
//! Megolm, the `hpke` crate, Argon2id, XChaCha20-Poly1305) and writes none of its own.
//!
//! # The scheme
//!
//! **Who holds what.** Each user has [`UserSecrets`]: the ed25519 signing key that is their
//! identity ([`basis_core::UserKey`]), a list of X25519 *agreement keys* (the newest is
//! published, signed, in the user's profile; older ones are kept until the key shares sealed to
//! them have been read, then forgotten) and a random `state_key` that encrypts the client's
//! state files ([`seal_state`]). On disk the secrets are a passphrase-encrypted, ASCII-armoured
//! key file ([`keyfile`]: Argon2id, then XChaCha20-Poly1305 with the public header as
//! associated data).
//!
//! **Group messages.** Every sender has, per room, its own outbound Megolm session
//! ([`OutboundSession`], vodozemac `GroupSession`, `SessionConfig::version_1()`). Messages are
//! [`Plaintext`]s encrypted with it and travel as [`basis_core::MessageBody::Encrypted`]
//! `{ session_id, ciphertext }`, where `session_id` is the 32 bytes of the session's ed25519 key
//! (vodozemac's base64 session id, decoded) and `ciphertext` is vodozemac's binary
//! `MegolmMessage`.
//!
//! **Key shares.** The sender exports the session key (ratchet state plus the session's public
//! signing key, signed by it) and seals it to each current member, itself included, with HPKE
//! (RFC 9180 base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to that
//! member's newest agreement key. The sealed keys form one [`basis_core::KeyShare`] event,
//! signed by the sender as usual. For each sealed key:
//!
//! - HPKE `info` = `b"basis/key-share/v1\n"` ‖ room id (32) ‖ sender user id (32) ‖
//!   session id (the rest), see [`Binding`];
//! - HPKE `aad` = the recipient's user id (32).
//!
//! So a sealed key copied into another room's share, into another sender's share, under another
//! session id, or into another recipient's slot does not open. A receiver also checks that the
//! opened session key belongs to the session id the share names, and files the inbound session
//! under (room, share author, session id) ([`RoomKeys`]). A message is decrypted only with the
//! session filed under its own event's author and room; the plaintext repeats the room and the
//! sender, and both must match too, so nobody can replay another member's ciphertext as theirs
//! or into another room.
//!
//! **Rotation.** A sender starts a new session ([`OutboundSession::needs_rotation`]) whenever
//! the member set differs from the one the session was shared with (join, leave or removal),
//! after [`ROTATE_AFTER_MESSAGES`] messages, and when the session is
//! [`ROTATE_AFTER_MS`] (7 days) old. A new session's key is shared at ratchet index 0 to the
//! members of that moment only.
//!
//! **What a removed member and a newcomer can read.** A removed member keeps the sessions it
//! was given, so it can still read what was sent before its removal, but it receives no key to
//! any session started afterwards ([`DecryptError::NoSession`]). A newcomer receives only the
//! sessions started after it joined, so it reads from its join on; earlier history would need
//! the old session keys re-shared, which is a separate decision of the room (`History::Shared`)
//! and not done here.
//!
//! **Plaintext encoding.** The bytes Megolm encrypts are one version byte (`1`) followed by the
//! postcard encoding of `(room: [u8; 32], sender: [u8; 32], body: MessageBody)`, the body in the
//! same postcard layout as in events (`docs/PROTOCOL.md`). The inner body may be any message
//! kind except `Encrypted`.
//!
//! **Why Megolm version 1.** vodozemac only offers version 2 (untruncated MAC) behind its
//! `experimental-session-config` feature. Version 1 is the stable, widely deployed format; its
//! 8-byte MAC truncation does not weaken authenticity here because every Megolm message is
//! also signed with the session's ed25519 key, which is checked first.
//!
//! **Files.** A file is sealed chunk by chunk with a fresh key ([`file`]: ChaCha20-Poly1305,
//! the chunk's index and a last-chunk flag in the nonce); the chunks are named by their
//! SHA-256 and listed in a chunk list whose hash is the file's content address
//! ([`basis_core::file`]), so nodes verify and store chunks without the key. The key, name,
//! type and preview travel in a `MessageBody::Attachment` inside the Megolm message; the
//! event is an `EncryptedAttachment` that names only the content address and size in the
//! clear. `docs/E2EE.md` §13 has the bytes.
//!
//! **Randomness.** Keys and nonces drawn by this crate come from the operating system through
//! `getrandom` and a failure is returned as an error; vodozemac and hpke draw their own
//! (Megolm ratchets, HPKE ephemeral keys) and panic if the operating system has none.

pub mod file;
pub mod inbound;
pub mod keyfile;
pub mod outbound;
pub mod plaintext;
pub mod seal;
pub mod secrets;
pub mod send;
pub mod state;
#[cfg(test)]
mod vectors;

pub use file::{
    ChunkOpener, ChunkSealer, FileCryptoError, FileKey, SealedFile, open_to_writer, seal_chunk,
    seal_reader,
};
pub use inbound::{AbsorbError, DecryptError, RoomKeys};
pub use keyfile::{KdfParams, KeyFileError};
pub use outbound::{
    OutboundError, OutboundSession, ROTATE_AFTER_MESSAGES, ROTATE_AFTER_MS, RotationReason,
};
pub use plaintext::{Plaintext, PlaintextError};
pub use seal::{Binding, SealError, open_session_key, seal_session_key};
pub use secrets::{AgreementKey, SecretsError, UserSecrets};
pub use send::{Recipients, key_member, receives_room_keys, recipients, session_for};
pub use state::{StateError, open_state, seal_state};

/// The Megolm variant used for every session (see the crate docs for why version 1).
pub(crate) fn megolm_config() -> vodozemac::megolm::SessionConfig {
    vodozemac::megolm::SessionConfig::version_1()
}

/// The wire form of a Megolm session id: the 32 bytes behind vodozemac's base64 session id.
///
/// vodozemac session ids are always base64 of a 32-byte key; should one ever not decode, its
/// UTF-8 bytes are used instead, the same way on both the sending and the receiving side, so
/// this never fails and never disagrees with itself.
pub(crate) fn session_id_bytes(id: &str) -> Vec<u8> {
    vodozemac::base64_decode(id).unwrap_or_else(|_| id.as_bytes().to_vec())
}

/// Random bytes from the operating system.
pub(crate) fn random_array<const N: usize>() -> Result<[u8; N], getrandom::Error> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out)?;
    Ok(out)
}
