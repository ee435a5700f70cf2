//! The admin commands' side of the control socket.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::{Reply, Request};

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
        let reply = self.call(request).await?;
        if !reply.ok {
            bail!(
                "{} ({})",
                reply
                    .message
                    .as_deref()
                    .unwrap_or("the node refused the request"),
                reply.code.as_deref().unwrap_or("error")
            );
        }
        Ok(reply)
    }
}
