//! Why an event was refused.

use crate::limits::{MAX_EVENT_BYTES, MAX_PARENTS};

/// Why bytes are not a valid event. Every variant is a reason a node gives back to whoever
/// sent the bytes, and counts against a peer that sends them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The encoding is larger than the protocol allows.
    #[error("event is {size} bytes, the limit is {MAX_EVENT_BYTES}")]
    Oversize {
        /// Size of what was received.
        size: usize,
    },
    /// The bytes do not decode as an event.
    #[error("malformed event: {0}")]
    Malformed(String),
    /// The bytes decode, but are not the canonical encoding of what they decode to.
    #[error("event is not in canonical encoding (overlong numbers or trailing bytes)")]
    NonCanonical,
    /// The event says a protocol version this node does not know.
    #[error("unknown event version {0}")]
    UnknownVersion(u8),
    /// The signature does not verify against the author's key.
    #[error("signature does not verify for author {author}")]
    BadSignature {
        /// Short form of the claimed author.
        author: String,
    },
    /// The event names too many parents.
    #[error("event names {count} parents, the limit is {MAX_PARENTS}")]
    TooManyParents {
        /// How many it named.
        count: usize,
    },
    /// A field breaks a rule of its kind.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The field, such as `body.name`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl EventError {
    /// A stable machine-readable code for this error (used in API and control replies).
    pub fn code(&self) -> &'static str {
        match self {
            EventError::Oversize { .. } => "oversize",
            EventError::Malformed(_) => "malformed",
            EventError::NonCanonical => "non_canonical",
            EventError::UnknownVersion(_) => "unknown_version",
            EventError::BadSignature { .. } => "bad_signature",
            EventError::TooManyParents { .. } => "too_many_parents",
            EventError::InvalidField { .. } => "invalid_field",
        }
    }
}
