//! The node's side of the control socket.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, Framed};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use basis_api::admin::{MAX_LINE, Reply, Request};

use super::wire;
use crate::node::Node;

/// Binds the control socket. The node holds the data directory's lock, so a socket file left
/// there is from a node that died: it is replaced.
pub fn bind(path: &Path) -> Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()));
        }
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("cannot listen on the control socket {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict the control socket {}", path.display()))?;
    Ok(listener)
}

/// Accepts connections until `stop` is cancelled; each connection is served by a task that
/// `tasks` tracks, so shutdown can wait for replies in flight.
pub async fn serve(
    listener: UnixListener,
    node: Arc<Node>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tasks.spawn(connection(stream, node.clone(), stop.clone()));
                }
                Err(e) => {
                    log::warn!("control socket: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
        }
    }
}

async fn connection(stream: UnixStream, node: Arc<Node>, stop: CancellationToken) {
    // Framed as bytes, not text: a line that is not UTF-8 gets an answer, not a hang-up.
    let codec = AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), b"\n".to_vec(), MAX_LINE);
    let mut framed = Framed::new(stream, codec);
    loop {
        let line = tokio::select! {
            () = stop.cancelled() => return,
            line = framed.next() => line,
        };
        let (reply, close) = match line {
            None => return,
            Some(Ok(line)) => match std::str::from_utf8(&line) {
                Ok(text) => (handle(text, &node).await, false),
                Err(_) => (
                    Reply::failed("bad_request", "a request line must be UTF-8 JSON"),
                    false,
                ),
            },
            Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => (
                Reply::failed(
                    "line_too_long",
                    format!("a request line may be at most {MAX_LINE} bytes"),
                ),
                true,
            ),
            Some(Err(AnyDelimiterCodecError::Io(e))) => {
                log::debug!("control socket: connection error: {e}");
                return;
            }
        };
        let text = serde_json::to_string(&reply).unwrap_or_else(|_| {
            r#"{"ok":false,"code":"internal","message":"reply not encodable"}"#.into()
        });
        if framed.send(text).await.is_err() || close {
            return;
        }
    }
}

async fn handle(line: &str, node: &Node) -> Reply {
    let request: Request = match serde_json::from_str(line) {
        Ok(r) => r,
        Err(e) => return Reply::failed("bad_request", format!("not a valid request: {e}")),
    };
    match request {
        Request::Status => Reply::Status(Box::new(node.status().await)),
        Request::Peers => Reply::Peers(node.peers().into_iter().map(wire::peer).collect()),
        Request::Append { event } => {
            let bytes = match base64::engine::general_purpose::STANDARD.decode(event.trim()) {
                Ok(b) => b,
                Err(e) => return Reply::failed("bad_request", format!("event is not base64: {e}")),
            };
            match node.append(&bytes).await {
                Ok(stored) => Reply::Appended {
                    id: stored.id.to_string(),
                    room: stored.room.to_string(),
                    new: stored.new,
                },
                Err(e) => Reply::failed(e.code(), e.to_string()),
            }
        }
    }
}
