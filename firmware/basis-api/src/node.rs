//! What a node says about itself and its links to clients: its info, its peers, and on a
//! gateway its upstream nodes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The state of a link with a peer node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// A dial is under way.
    Connecting,
    /// Admitted and linked now.
    Connected,
    /// Not linked (never, or the link ended); it is dialled again when it reappears.
    Disconnected,
    /// Not linked, and dialling again would not help (another federation, not admitted,
    /// banned, an unexpected key).
    Refused,
}

impl PeerState {
    /// The word the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Connecting => "connecting",
            PeerState::Connected => "connected",
            PeerState::Disconnected => "disconnected",
            PeerState::Refused => "refused",
        }
    }
}

/// Where a gateway's bridge stands with one upstream node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum UpstreamState {
    /// The WAN is down; nothing is dialled until it is up.
    #[serde(rename = "waiting for the WAN")]
    WaitingForWan,
    /// Dialling, or linked and not yet admitted.
    #[serde(rename = "linking")]
    Linking,
    /// Admitted and linked now.
    #[serde(rename = "linked")]
    Linked,
    /// The last dial found no answer; dialled again.
    #[serde(rename = "unreachable")]
    Unreachable,
    /// The node answered and did not admit this one; dialled again.
    #[serde(rename = "refused")]
    Refused,
}

impl UpstreamState {
    /// The words the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamState::WaitingForWan => "waiting for the WAN",
            UpstreamState::Linking => "linking",
            UpstreamState::Linked => "linked",
            UpstreamState::Unreachable => "unreachable",
            UpstreamState::Refused => "refused",
        }
    }

    /// Whether the upstream's `last_error` says why it is in this state (rather than what
    /// happened before).
    pub fn has_reason(self) -> bool {
        matches!(self, UpstreamState::Unreachable | UpstreamState::Refused)
    }
}

/// A peer node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PeerInfo {
    /// Node id, hex.
    pub node_id: String,
    /// Its name.
    pub name: String,
    /// The state of the link.
    pub state: PeerState,
    /// Round-trip time, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

/// Peers of this node.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PeerList {
    /// The peers.
    pub peers: Vec<PeerInfo>,
}

/// What the node says about itself to clients.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    /// Node id, hex.
    pub node_id: String,
    /// Node name.
    pub name: String,
    /// Version of the software.
    pub version: String,
    /// Events held.
    pub events: u64,
    /// Peers linked now.
    pub peers_connected: u64,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// The node's hybrid clock now (clients observe it so their timestamps sort after it).
    pub time: u64,
    /// On a gateway: the WAN link, `up` or `down`, with why (absent without a bridge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wan: Option<String>,
    /// On a gateway: each upstream node and where the bridge stands with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<UpstreamInfo>,
    /// The largest file (plaintext bytes) this node takes (`files.max_file_mib`); absent when
    /// it keeps no files. Check it before sealing and uploading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<u64>,
}

/// An upstream node of a gateway, as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UpstreamInfo {
    /// Node id, hex.
    pub node_id: String,
    /// Where the bridge stands with it.
    pub state: UpstreamState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_as_status_shows_them() {
        for (state, text) in [
            (UpstreamState::WaitingForWan, "waiting for the WAN"),
            (UpstreamState::Linking, "linking"),
            (UpstreamState::Linked, "linked"),
            (UpstreamState::Unreachable, "unreachable"),
            (UpstreamState::Refused, "refused"),
        ] {
            assert_eq!(state.as_str(), text);
            assert_eq!(
                serde_json::to_string(&state).ok(),
                Some(format!("\"{text}\""))
            );
        }
        for state in [
            PeerState::Connecting,
            PeerState::Connected,
            PeerState::Disconnected,
            PeerState::Refused,
        ] {
            let text = state.as_str();
            assert_eq!(
                serde_json::to_string(&state).ok(),
                Some(format!("\"{text}\""))
            );
        }
    }
}
