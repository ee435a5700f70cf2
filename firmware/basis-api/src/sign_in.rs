//! Signing in: a challenge from the node, signed with the user's key, exchanged for a session
//! token.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Ask for a sign-in challenge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChallengeRequest {
    /// The user id (public key, 64 hex characters).
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub user: String,
}

/// A challenge to sign.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChallengeReply {
    /// 32 random bytes, hex. Sign `basis/auth/v1\n` ‖ node id ‖ challenge (raw bytes).
    pub challenge: String,
    /// The node's id, hex (part of the signed message).
    pub node_id: String,
    /// Seconds the challenge may be answered.
    pub expires_in_secs: u64,
}

/// A signed challenge.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionRequest {
    /// The user id, hex.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub user: String,
    /// The challenge, hex, as received.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub challenge: String,
    /// ed25519 signature of the sign-in message, 128 hex characters.
    #[schema(pattern = "^[0-9a-fA-F]{128}$")]
    pub signature: String,
}

/// A new session.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SessionReply {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The signed-in user.
    pub user: String,
    /// Seconds until the token expires.
    pub expires_in_secs: u64,
}
