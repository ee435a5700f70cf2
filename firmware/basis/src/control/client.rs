//! The admin commands' side of the control socket.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use basis_api::admin::{Peer, Reply, Request, Status};

/// A connection to the running node.
pub struct Client {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: OwnedWriteHalf,
}

impl Client {
    /// Connects to the node's control socket.
    pub async fn connect(socket: &Path) -> Result<Client> {
        let stream = UnixStream::connect(socket).await.map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    "no node is running there; start one with `basis run`, or, if it runs with another data directory, add --data-dir DIR (or the --config FILE it was started with)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied; run as the node's user (or root)"
                }
                _ => "cannot connect",
            };
            anyhow!("no node answers at {} ({hint}): {e}", socket.display())
        })?;
        let (read, write) = stream.into_split();
        Ok(Client {
            lines: BufReader::new(read).lines(),
            write,
        })
    }

    /// Sends a request and waits for its reply.
    pub async fn call(&mut self, request: &Request) -> Result<Reply> {
        let mut line = serde_json::to_string(request).context("cannot encode the request")?;
        line.push('\n');
        self.write
            .write_all(line.as_bytes())
            .await
            .context("the node closed the connection (did it stop?)")?;
        let Some(answer) = self
            .lines
            .next_line()
            .await
            .context("the node closed the connection (did it stop?)")?
        else {
            bail!("the node closed the connection before answering (did it stop?)");
        };
        serde_json::from_str(&answer)
            .with_context(|| format!("the node's reply is not valid: {answer}"))
    }

    /// Sends a request and turns a failure reply into an error.
    pub async fn call_ok(&mut self, request: &Request) -> Result<Reply> {
        match self.call(request).await? {
            Reply::Failed { code, message } => bail!("{message} ({code})"),
            reply => Ok(reply),
        }
    }

    /// The node's status.
    pub async fn status(&mut self) -> Result<Status> {
        match self.call_ok(&Request::Status).await? {
            Reply::Status(status) => Ok(*status),
            other => Err(unexpected("a status", &other)),
        }
    }

    /// The peers the node knows.
    pub async fn peers(&mut self) -> Result<Vec<Peer>> {
        match self.call_ok(&Request::Peers).await? {
            Reply::Peers(peers) => Ok(peers),
            other => Err(unexpected("a peer list", &other)),
        }
    }

    /// Stores one event (its wire bytes); the reply says its id, its room and whether it
    /// was new.
    pub async fn append(&mut self, event: &[u8]) -> Result<Appended> {
        let event = base64::engine::general_purpose::STANDARD.encode(event);
        match self.call_ok(&Request::Append { event }).await? {
            Reply::Appended { id, room, new } => Ok(Appended { id, room, new }),
            other => Err(unexpected("an acknowledgement", &other)),
        }
    }
}

/// An event the node stored, as its reply says.
#[derive(Debug, Clone)]
pub struct Appended {
    /// Its id (hex).
    pub id: String,
    /// Its room (hex).
    pub room: String,
    /// False when the node already held it.
    pub new: bool,
}

fn unexpected(wanted: &str, got: &Reply) -> anyhow::Error {
    let kind = match got {
        Reply::Appended { .. } => "an acknowledgement",
        Reply::Status(_) => "a status",
        Reply::Peers(_) => "a peer list",
        Reply::Failed { .. } => "a failure",
    };
    anyhow!("the node answered with {kind} where {wanted} was due (is it another version?)")
}
