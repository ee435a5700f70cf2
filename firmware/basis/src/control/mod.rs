//! The local control socket: how admin commands on the same board talk to the running node.
//!
//! A Unix stream socket in the data directory (mode 0600, so only the node's user may use it),
//! carrying newline-delimited JSON: one request per line, one reply per line, in order.
//! It is for the board's administrator; phones and laptops use the client API instead.

pub mod client;
pub mod server;

use serde::{Deserialize, Serialize};

/// Longest request line the node reads; longer ones close the connection.
pub const MAX_LINE: usize = 256 * 1024;

/// A request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Validate and store one event (standard base64 of its wire bytes).
    Append {
        /// The event's wire bytes, base64.
        event: String,
    },
    /// Report the node's status.
    Status,
    /// List the peers the node knows.
    Peers,
}

/// What the node says about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The node id (hex).
    pub node_id: String,
    /// Human name of the node.
    pub name: String,
    /// Version of the running binary.
    pub version: String,
    /// The data directory.
    pub data_dir: String,
    /// Events held.
    pub events: u64,
    /// Bytes of those events' encodings.
    pub event_bytes: u64,
    /// Bytes of the database files on disk.
    pub store_bytes: u64,
    /// Addresses the node listens on.
    pub listening: Vec<String>,
    /// URLs clients reach the client API at, e.g. `http://192.168.1.20:7480/`: each address of
    /// the machine but loopback when the API listens on all of them (empty: the API is off).
    #[serde(default)]
    pub api_urls: Vec<String>,
    /// Seconds since the node started.
    pub uptime_secs: u64,
    /// Events refused as invalid since start.
    pub refused: u64,
    /// The federation tag announced over mDNS (empty when the node has no secret).
    #[serde(default)]
    pub federation_tag: String,
    /// Peers linked now.
    #[serde(default)]
    pub peers_connected: usize,
    /// Nodes seen or dialled that are refused (another federation, not admitted), with why.
    #[serde(default)]
    pub peers_refused: Vec<basis_net::PeerSnapshot>,
    /// The upstream bridge, when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<basis_net::BridgeSnapshot>,
}

/// A reply: `{"ok":true,...}` or `{"ok":false,"code":...,"message":...}`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    /// Whether the request succeeded.
    pub ok: bool,
    /// Machine-readable reason of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Human-readable reason of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Id of a stored event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Room of a stored event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// False when the node already held the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<bool>,
    /// The status, for a status request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// The peers, for a peers request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<basis_net::PeerSnapshot>>,
}

impl Reply {
    /// A failure reply.
    pub fn error(code: &str, message: impl Into<String>) -> Reply {
        Reply {
            code: Some(code.to_string()),
            message: Some(message.into()),
            ..Reply::default()
        }
    }

    /// An empty success reply, to fill in.
    pub fn ok() -> Reply {
        Reply {
            ok: true,
            ..Reply::default()
        }
    }
}
