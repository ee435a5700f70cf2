//! A signed-in connection to a node's client API.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use basis_core::auth::challenge_message;
use basis_core::{ChunkList, Event, NodeId, RoomId, UserId};
use basis_e2ee::UserSecrets;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::WebSocketStream;

use basis_api::error::ErrorBody;
use basis_api::events::{HistoryReply, PostEvent, Posted};
use basis_api::files::FileInfo;
use basis_api::node::NodeInfo;
use basis_api::rooms::{RoomInfo, RoomList};
use basis_api::sign_in::{ChallengeReply, ChallengeRequest, SessionReply, SessionRequest};
use basis_api::users::UserInfo;

/// A live WebSocket to the node.
pub type Stream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A refusal from the node, with its code.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({code})")]
pub struct Refused {
    /// HTTP status.
    pub status: u16,
    /// The node's error code.
    pub code: String,
    /// The node's message.
    pub message: String,
}

/// A signed-in API connection.
pub struct NodeClient {
    base: String,
    http: reqwest::Client,
    token: String,
}

async fn decode<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("the node's reply broke off")?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .context("the node's reply is not what this client expects (different versions?)");
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(e) => Err(Refused {
            status: status.as_u16(),
            code: e.code,
            message: e.message,
        }
        .into()),
        Err(_) => Err(anyhow!(
            "the node answered {status}: {}",
            String::from_utf8_lossy(&bytes)
                .chars()
                .take(200)
                .collect::<String>()
        )),
    }
}

impl NodeClient {
    /// Connects to `base` and signs in as the holder of `secrets`.
    pub async fn sign_in(base: &str, secrets: &UserSecrets) -> Result<NodeClient> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot make an HTTP client")?;
        let user = secrets.user_id();
        let reach = |e: reqwest::Error| {
            // reqwest's own text names the URL only; its deepest cause says what went wrong.
            let mut cause: &dyn std::error::Error = &e;
            while let Some(next) = cause.source() {
                cause = next;
            }
            anyhow!("cannot reach the node at {base}: is it running? ({cause})")
        };
        let c: ChallengeReply = decode(
            http.post(format!("{base}/v1/auth/challenge"))
                .json(&ChallengeRequest {
                    user: user.to_string(),
                })
                .send()
                .await
                .map_err(reach)?,
        )
        .await?;
        let node_id: NodeId = c.node_id.parse().context("the node sent a bad node id")?;
        let challenge: [u8; 32] = hex::decode(&c.challenge)
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("the node sent a bad challenge")?;
        let signature = secrets
            .signing_key()
            .sign(&challenge_message(&node_id, &challenge));
        let s: SessionReply = decode(
            http.post(format!("{base}/v1/auth/session"))
                .json(&SessionRequest {
                    user: user.to_string(),
                    challenge: c.challenge,
                    signature: hex::encode(signature),
                })
                .send()
                .await
                .map_err(reach)?,
        )
        .await
        .context("the node refused to sign you in")?;
        Ok(NodeClient {
            base: base.to_string(),
            http,
            token: s.token,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str, query: &[(&str, String)]) -> Result<T> {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .query(query)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        decode(r).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        decode(r).await
    }

    /// The node's status and clock.
    pub async fn status(&self) -> Result<NodeInfo> {
        self.get("/v1/status", &[]).await
    }

    /// The user's rooms.
    pub async fn rooms(&self) -> Result<Vec<RoomInfo>> {
        Ok(self.get::<RoomList>("/v1/rooms", &[]).await?.rooms)
    }

    /// One room.
    pub async fn room(&self, room: &RoomId) -> Result<RoomInfo> {
        self.get(&format!("/v1/rooms/{room}"), &[]).await
    }

    /// A page of history, newest first.
    pub async fn history(
        &self,
        room: &RoomId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<HistoryReply> {
        let mut q = vec![("limit", limit.to_string())];
        if let Some(b) = before {
            q.push(("before", b.to_string()));
        }
        self.get(&format!("/v1/rooms/{room}/events"), &q).await
    }

    /// The events that define a room (create, membership, settings).
    pub async fn room_state(&self, room: &RoomId) -> Result<Vec<basis_api::events::ApiEvent>> {
        Ok(self
            .get::<basis_api::events::StateReply>(&format!("/v1/rooms/{room}/state"), &[])
            .await?
            .events)
    }

    /// A user's profile, or `None` when the node has none.
    pub async fn user_info(&self, user: &UserId) -> Result<Option<UserInfo>> {
        match self.get(&format!("/v1/users/{user}"), &[]).await {
            Ok(u) => Ok(Some(u)),
            Err(e) if e.downcast_ref::<Refused>().is_some_and(|r| r.status == 404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Posts a signed event (create and membership events go to their own paths).
    pub async fn post_event(&self, event: &Event) -> Result<Posted> {
        let body = PostEvent {
            event: STANDARD.encode(event.to_bytes()),
        };
        let path = match &event.content.body {
            basis_core::Body::Create(_) => "/v1/rooms".to_string(),
            basis_core::Body::Membership { .. } => {
                format!("/v1/rooms/{}/members", event.room_id())
            }
            _ => "/v1/events".to_string(),
        };
        self.post(&path, &body).await
    }

    /// Where the file at `address` stands on the node (`None`: unknown there). For a file a
    /// message names, asking starts the node fetching it from others.
    pub async fn file(&self, address: &[u8; 32]) -> Result<Option<FileInfo>> {
        match self
            .get(&format!("/v1/files/{}", hex::encode(address)), &[])
            .await
        {
            Ok(info) => Ok(Some(info)),
            Err(e)
                if e.downcast_ref::<Refused>()
                    .is_some_and(|r| r.code == "unknown_file") =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    async fn put_bytes(
        &self,
        path: &str,
        query: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<reqwest::Response> {
        self.http
            .put(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .query(query)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))
    }

    /// Uploads a file's chunk list.
    pub async fn put_file_list(&self, list: &ChunkList) -> Result<FileInfo> {
        let path = format!("/v1/files/{}/list", hex::encode(list.address()));
        let query = [
            ("size", list.size.to_string()),
            ("chunk_size", list.chunk_size.to_string()),
        ];
        decode(self.put_bytes(&path, &query, list.to_bytes()).await?).await
    }

    /// Uploads one ciphertext chunk of a file whose list the node holds.
    pub async fn put_file_chunk(
        &self,
        address: &[u8; 32],
        index: u64,
        chunk: Vec<u8>,
    ) -> Result<()> {
        let path = format!("/v1/files/{}/chunks/{index}", hex::encode(address));
        let r = self.put_bytes(&path, &[], chunk).await?;
        if r.status().is_success() {
            return Ok(());
        }
        decode::<serde_json::Value>(r).await.map(|_| ())
    }

    /// One ciphertext chunk of a file.
    pub async fn file_chunk(&self, address: &[u8; 32], index: u64) -> Result<Vec<u8>> {
        let r = self
            .http
            .get(format!(
                "{}/v1/files/{}/chunks/{index}",
                self.base,
                hex::encode(address)
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the node at {}", self.base))?;
        if !r.status().is_success() {
            decode::<serde_json::Value>(r).await?;
            return Err(anyhow!("the node sent no chunk"));
        }
        Ok(r.bytes()
            .await
            .context("the node's reply broke off")?
            .to_vec())
    }

    /// Opens the live stream, starting after `since` (or from now).
    pub async fn stream(&self, since: Option<u64>) -> Result<Stream> {
        let ws_base = self
            .base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        let mut url = format!("{ws_base}/v1/stream?access_token={}", self.token);
        if let Some(s) = since {
            url.push_str(&format!("&since={s}"));
        }
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .with_context(|| format!("cannot open the live stream at {}", self.base))?;
        Ok(ws)
    }

    /// Ends the session on the node.
    pub async fn sign_out(&self) {
        let _ = self
            .http
            .delete(format!("{}/v1/auth/session", self.base))
            .bearer_auth(&self.token)
            .send()
            .await;
    }
}
