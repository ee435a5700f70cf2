//! How a link ended: the close codes this node sends, and what the peer's close says.

use basis_proto::CloseCode;
use quinn::{Connection, ConnectionError};

use crate::peers::Refusal;

/// What a link's end means for the peer table and the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The link was admitted and has ended (a partition, a goodbye, a shutdown).
    Ended,
    /// Another link to the same peer was kept instead.
    Duplicate,
    /// Admission failed, on either side; dialling again soon would not help.
    Refused(Refusal),
    /// The connection broke before admission; the peer is worth dialling again.
    Broke,
}

/// Closes a connection with a code the peer can read, and a short text.
pub(crate) fn close(conn: &Connection, code: CloseCode, reason: &str) {
    let mut text = reason.to_string();
    text.truncate(200);
    conn.close(code.code().into(), text.as_bytes());
}

/// Why a connection closed, as read from quinn: the text for people and, when the peer closed
/// it with a code, that code.
pub(crate) fn read_close(e: &ConnectionError) -> (String, Option<CloseCode>) {
    match e {
        ConnectionError::ApplicationClosed(c) => {
            let code = CloseCode::from_code(c.error_code.into_inner());
            let text = String::from_utf8_lossy(&c.reason).into_owned();
            let shown = match code {
                Some(code) if text.is_empty() => code.meaning().to_string(),
                _ => text,
            };
            (format!("the peer closed the link: {shown}"), code)
        }
        ConnectionError::TimedOut => ("the peer stopped answering (idle timeout)".into(), None),
        ConnectionError::LocallyClosed => ("this node closed the link".into(), None),
        other => (other.to_string(), None),
    }
}

/// The refusal a peer's close code stands for, if it is one.
pub(crate) fn refusal_by_peer(code: CloseCode) -> Option<Refusal> {
    match code {
        CloseCode::NotAdmitted => Some(Refusal::NotAdmittedThere),
        CloseCode::Banned => Some(Refusal::Banned),
        CloseCode::UnexpectedKey => Some(Refusal::UnexpectedKey),
        _ => None,
    }
}
