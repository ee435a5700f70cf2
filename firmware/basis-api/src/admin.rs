//! The admin socket: how admin commands on the same board (`basis status`, `basis peers`,
//! `basis metrics`, `basis dev append`) talk to the running node.
//!
//! A Unix stream socket in the data directory (mode 0600), carrying newline-delimited JSON:
//! one [`Request`] per line, one [`Reply`] per line, in order. A reply is
//! `{"ok":true,...}` with the fields of its kind, or
//! `{"ok":false,"code":...,"message":...}`; [`Reply`] is that as an enum.

use serde::{Deserialize, Serialize};

use crate::node::{PeerState, UpstreamState};

/// Longest request line the node reads; longer ones get `line_too_long` and the connection
/// is closed.
pub const MAX_LINE: usize = 256 * 1024;

/// A request.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// A reply, one kind for each request and one for a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "ReplyWire", try_from = "ReplyWire")]
pub enum Reply {
    /// The event is durable (or was already held).
    Appended {
        /// Its id (hex).
        id: String,
        /// Its room (hex).
        room: String,
        /// False when the node already held it.
        new: bool,
    },
    /// The node's status.
    Status(Box<Status>),
    /// The peers the node knows.
    Peers(Vec<Peer>),
    /// The request failed.
    Failed {
        /// Stable machine-readable reason: `bad_request`, `line_too_long`, `internal`, or
        /// the event's validation or storage code (`bad_signature`, `oversize`, ...).
        code: String,
        /// What went wrong, for a person.
        message: String,
    },
}

impl Reply {
    /// A failure reply.
    pub fn failed(code: &str, message: impl Into<String>) -> Reply {
        Reply::Failed {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// The reply as it travels: one flat object, `ok` and the fields of its kind.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ReplyWire {
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    new: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<Box<Status>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peers: Option<Vec<Peer>>,
}

impl From<Reply> for ReplyWire {
    fn from(reply: Reply) -> ReplyWire {
        match reply {
            Reply::Appended { id, room, new } => ReplyWire {
                ok: true,
                id: Some(id),
                room: Some(room),
                new: Some(new),
                ..ReplyWire::default()
            },
            Reply::Status(status) => ReplyWire {
                ok: true,
                status: Some(status),
                ..ReplyWire::default()
            },
            Reply::Peers(peers) => ReplyWire {
                ok: true,
                peers: Some(peers),
                ..ReplyWire::default()
            },
            Reply::Failed { code, message } => ReplyWire {
                code: Some(code),
                message: Some(message),
                ..ReplyWire::default()
            },
        }
    }
}

/// A reply line that is none of the kinds.
#[derive(Debug)]
pub struct UnknownReply;

impl std::fmt::Display for UnknownReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a reply of no known kind (is the node another version?)")
    }
}

impl TryFrom<ReplyWire> for Reply {
    type Error = UnknownReply;

    fn try_from(w: ReplyWire) -> Result<Reply, UnknownReply> {
        if !w.ok {
            return Ok(Reply::Failed {
                code: w.code.unwrap_or_else(|| "error".into()),
                message: w
                    .message
                    .unwrap_or_else(|| "the node refused the request".into()),
            });
        }
        match w {
            ReplyWire {
                status: Some(status),
                ..
            } => Ok(Reply::Status(status)),
            ReplyWire {
                peers: Some(peers), ..
            } => Ok(Reply::Peers(peers)),
            ReplyWire {
                id: Some(id),
                room: Some(room),
                new: Some(new),
                ..
            } => Ok(Reply::Appended { id, room, new }),
            _ => Err(UnknownReply),
        }
    }
}

/// What the node says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub peers_refused: Vec<Peer>,
    /// The upstream bridge, when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<Bridge>,
}

/// How a peer became known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Found {
    /// Announced on the LAN (mDNS).
    Mdns,
    /// Listed in the configuration.
    Static,
    /// Named by another peer (peer exchange).
    Exchange,
    /// It dialled this node.
    Inbound,
    /// Remembered from an earlier link.
    Known,
}

/// Why a peer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    /// It announces another federation on the LAN.
    OtherFederation,
    /// It is a Basis node on the LAN, but this node has no federation secret or allow-list.
    NoFederationHere,
    /// It is a Basis node on the LAN that has no federation secret.
    NoFederationThere,
    /// It dialled or answered this node but did not prove this federation's secret.
    NotAdmittedHere,
    /// It did not admit this node.
    NotAdmittedThere,
    /// One of the two is banned by the other for misbehaving.
    Banned,
    /// Its key is not the one the configuration pins for its address.
    UnexpectedKey,
}

/// A peer node as the admin commands show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    /// The peer's node id (hex).
    pub node_id: String,
    /// Its name, from its hello.
    pub name: String,
    /// Addresses it is known at.
    pub addresses: Vec<String>,
    /// How it became known.
    pub found: Vec<Found>,
    /// The state of the link.
    pub state: PeerState,
    /// Why it is refused, when it is.
    #[serde(default)]
    pub refusal: Option<Refusal>,
    /// What to check, when it is refused.
    #[serde(default)]
    pub hint: Option<String>,
    /// Round-trip time of the link, milliseconds.
    pub rtt_ms: Option<f64>,
    /// Unix time (seconds) of the last finished reconciliation.
    pub last_reconciled: Option<u64>,
    /// Events sent to it.
    pub events_sent: u64,
    /// Valid events received from it.
    pub events_received: u64,
    /// Invalid events received from it.
    pub invalid_received: u64,
    /// Reputation score (100 is clean; at 0 it is refused for a while).
    pub score: i32,
    /// Why the last link ended or was refused.
    pub last_error: Option<String>,
    /// Seconds its link was slowed down for sending faster than the per-peer rate limit.
    #[serde(default)]
    pub throttled_secs: f64,
    /// Bytes received from it over QUIC since the node started (UDP payloads: frames and
    /// QUIC's own packets), on every link it had.
    #[serde(default)]
    pub bytes_received: u64,
}

/// The upstream bridge of a gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bridge {
    /// The WAN link.
    pub wan: Wan,
    /// Each upstream node.
    pub upstreams: Vec<Upstream>,
    /// Each bridged room.
    pub rooms: Vec<BridgeRoom>,
}

/// The WAN link as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wan {
    /// A route to at least one upstream node leaves by an interface that is up.
    pub up: bool,
    /// The interface it leaves by.
    pub interface: Option<String>,
    /// Why it is down, or where it goes when up.
    pub detail: String,
    /// Unix time (seconds) of the last change of `up`.
    pub since: u64,
}

/// One upstream node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upstream {
    /// Its node id (hex).
    pub node_id: String,
    /// Host and port as configured.
    pub host: String,
    /// The address it is linked at.
    pub address: Option<String>,
    /// Where the bridge stands with it.
    pub state: UpstreamState,
    /// Unix time (seconds) the state began.
    pub since: u64,
    /// Round-trip time, milliseconds, while linked.
    pub rtt_ms: Option<f64>,
    /// Unix time (seconds) of the last finished reconciliation of every room.
    pub last_reconciled: Option<u64>,
    /// Events it acknowledged since the node started.
    pub events_sent: u64,
    /// Events received from it since the node started.
    pub events_received: u64,
    /// Why the last link ended or the last dial failed.
    pub last_error: Option<String>,
}

/// One bridged room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BridgeRoom {
    /// The room id (hex).
    pub room: String,
    /// Events written on the LAN go up.
    pub uplink: bool,
    /// Events written upstream come down.
    pub downlink: bool,
    /// Higher goes first.
    pub priority: i32,
    /// The hourly byte budget (`None`: no limit).
    pub budget_bytes_per_hour: Option<u64>,
    /// Bytes of the room's events that crossed the WAN in the last hour.
    pub budget_used_bytes: u64,
    /// The budget stopped the bridge from sending or asking for more.
    pub budget_exhausted: bool,
    /// Seconds until the oldest spending in the window stops counting.
    pub budget_frees_in_secs: Option<u64>,
    /// Events waiting to go up (sent ones count until upstream acknowledges them).
    pub backlog_events: u64,
    /// Their bytes.
    pub backlog_bytes: u64,
    /// Whether the backlog is exact (what the last reconciliation found less what upstream
    /// acknowledged since) or, while not linked, an upper bound.
    pub backlog_exact: bool,
    /// Events upstream holds that have not come down yet (as of the last reconciliation).
    pub downlink_backlog_events: u64,
    /// Events of the room upstream acknowledged since the node started.
    pub sent_events: u64,
    /// Their bytes.
    pub sent_bytes: u64,
    /// Events of the room received from upstream since the node started.
    pub received_events: u64,
    /// Their bytes.
    pub received_bytes: u64,
    /// Unix time (seconds) the room was last fully in sync upward.
    pub last_synced: Option<u64>,
    /// Files of the room whose chunks the budget holds back on the current link, either way
    /// (until it has room again): not yet sent. While one waits, the room counts as
    /// exhausted.
    pub files_waiting: u64,
    /// Bytes of the room's file chunks and chunk lists sent upstream since the node started.
    pub file_bytes_sent: u64,
    /// Bytes of the room's file chunks and chunk lists received from upstream since the node
    /// started.
    pub file_bytes_received: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(reply: Reply) -> (serde_json::Value, Reply) {
        let text = serde_json::to_string(&reply).unwrap_or_else(|e| panic!("{e}"));
        let back: Reply = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        (
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}")),
            back,
        )
    }

    #[test]
    fn replies_travel_flat_and_come_back_as_their_kind() {
        let appended = Reply::Appended {
            id: "ab".into(),
            room: "cd".into(),
            new: false,
        };
        let (wire, back) = round_trip(appended.clone());
        assert_eq!(
            wire,
            serde_json::json!({"ok": true, "id": "ab", "room": "cd", "new": false})
        );
        assert_eq!(back, appended);

        let failed = Reply::failed("bad_request", "not JSON");
        let (wire, back) = round_trip(failed.clone());
        assert_eq!(
            wire,
            serde_json::json!({"ok": false, "code": "bad_request", "message": "not JSON"})
        );
        assert_eq!(back, failed);

        let (wire, back) = round_trip(Reply::Peers(vec![]));
        assert_eq!(wire, serde_json::json!({"ok": true, "peers": []}));
        assert_eq!(back, Reply::Peers(vec![]));
    }

    #[test]
    fn a_reply_of_no_kind_is_an_error() {
        assert!(serde_json::from_str::<Reply>(r#"{"ok":true}"#).is_err());
        assert!(serde_json::from_str::<Reply>(r#"{"ok":true,"id":"ab"}"#).is_err());
    }

    #[test]
    fn refusals_are_the_documented_words() {
        assert_eq!(
            serde_json::to_string(&Refusal::OtherFederation)
                .ok()
                .as_deref(),
            Some(r#""other-federation""#)
        );
        assert_eq!(
            serde_json::to_string(&UpstreamState::WaitingForWan)
                .ok()
                .as_deref(),
            Some(r#""waiting for the WAN""#)
        );
    }
}
