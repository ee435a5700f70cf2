//! The body of every error reply of the client API.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The body of every error reply.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, such as `not_member` or `expired_token`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
}
