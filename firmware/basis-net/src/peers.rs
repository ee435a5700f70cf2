//! The table of known peers: how each was found, its state and counters (`basis peers`).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use basis_core::NodeId;
use serde::{Deserialize, Serialize};

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
    /// Remembered from an earlier link (kept in the store).
    Known,
}

/// One peer as `basis peers` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerSnapshot {
    /// The peer's node id (hex).
    pub node_id: String,
    /// Its name, from its hello.
    pub name: String,
    /// Addresses it is known at.
    pub addresses: Vec<String>,
    /// How it became known.
    pub found: Vec<Found>,
    /// `connected`, `connecting`, `disconnected` or `refused`.
    pub state: String,
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
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Entry {
    pub name: String,
    pub addrs: BTreeSet<SocketAddr>,
    pub found: BTreeSet<Found>,
    pub state: &'static str,
    pub rtt: Option<Duration>,
    pub last_reconciled: Option<SystemTime>,
    pub events_sent: u64,
    pub events_received: u64,
    pub invalid_received: u64,
    pub score: i32,
    pub last_error: Option<String>,
    pub connected_since: Option<Instant>,
    pub throttled: Duration,
}

/// Known peers by id.
#[derive(Debug, Default)]
pub(crate) struct PeerTable {
    pub peers: HashMap<NodeId, Entry>,
}

impl PeerTable {
    /// The entry of a peer, made when new.
    pub fn entry(&mut self, id: NodeId) -> &mut Entry {
        self.peers.entry(id).or_insert_with(|| Entry {
            state: "disconnected",
            score: basis_proto::reputation::START_SCORE,
            ..Entry::default()
        })
    }

    /// Everything, for `basis peers`, connected peers first.
    pub fn snapshot(&self) -> Vec<PeerSnapshot> {
        let mut list: Vec<PeerSnapshot> = self
            .peers
            .iter()
            .map(|(id, e)| PeerSnapshot {
                node_id: id.to_string(),
                name: e.name.clone(),
                addresses: e.addrs.iter().map(ToString::to_string).collect(),
                found: e.found.iter().copied().collect(),
                state: e.state.to_string(),
                rtt_ms: e.rtt.map(|d| d.as_secs_f64() * 1000.0),
                last_reconciled: e
                    .last_reconciled
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs()),
                events_sent: e.events_sent,
                events_received: e.events_received,
                invalid_received: e.invalid_received,
                score: e.score,
                last_error: e.last_error.clone(),
                throttled_secs: e.throttled.as_secs_f64(),
            })
            .collect();
        list.sort_by(|a, b| {
            (a.state != "connected", &a.node_id).cmp(&(b.state != "connected", &b.node_id))
        });
        list
    }
}
