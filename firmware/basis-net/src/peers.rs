//! The table of known peers: how each was found, its state and counters (`basis peers`).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use basis_core::NodeId;

/// How a peer became known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// The state of a peer's link, as `basis peers` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// A dial is under way.
    Connecting,
    /// Admitted and linked now.
    Connected,
    /// Not linked (never, or the link ended); it is dialled again when it reappears.
    Disconnected,
    /// Not linked, and dialling again would not help: see [`Refusal`].
    Refused,
}

/// Why a peer is [`PeerState::Refused`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// It announces another federation on the LAN (a different federation tag).
    OtherFederation,
    /// It is a Basis node on the LAN, but this node has no federation secret or allow-list.
    NoFederationHere,
    /// It is a Basis node on the LAN that has no federation secret: it serves chat clients
    /// and replicates with no other node.
    NoFederationThere,
    /// It dialled or answered this node but did not prove this federation's secret.
    NotAdmittedHere,
    /// It did not admit this node: it holds another secret or allow-list.
    NotAdmittedThere,
    /// One of the two is banned by the other for misbehaving.
    Banned,
    /// Its key is not the one the configuration pins for its address.
    UnexpectedKey,
}

impl Refusal {
    /// What an operator should check, in a sentence.
    pub fn hint(self) -> &'static str {
        match self {
            Refusal::OtherFederation => {
                "same LAN, different federation secret? it announces another federation"
            }
            Refusal::NoFederationHere => {
                "this node has no federation secret: set federation.secret (the same on every node) to link with it"
            }
            Refusal::NoFederationThere => {
                "it has no federation secret: it serves its own clients only; set the same federation.secret there to link with it"
            }
            Refusal::NotAdmittedHere => {
                "it did not prove this federation's secret: same LAN, different federation secret?"
            }
            Refusal::NotAdmittedThere => {
                "it did not admit this node: different federation secret, or not on its allow-list?"
            }
            Refusal::Banned => "refused for misbehaving; it is taken back after the ban ends",
            Refusal::UnexpectedKey => {
                "the node at that address has another key than the one configured (NODEID@host:port)"
            }
        }
    }
}

/// One peer as `basis peers` shows it.
#[derive(Debug, Clone)]
pub struct PeerSnapshot {
    /// The peer's node id (hex).
    pub node_id: String,
    /// Its name, from its hello.
    pub name: String,
    /// Addresses it is known at.
    pub addresses: Vec<String>,
    /// How it became known.
    pub found: Vec<Found>,
    /// Whether it is linked now.
    pub state: PeerState,
    /// Why it is refused, when it is.
    pub refusal: Option<Refusal>,
    /// What to check, when it is refused.
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
    pub throttled_secs: f64,
    /// Bytes received from it over QUIC since the node started, on every link it had.
    pub bytes_received: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub name: String,
    pub addrs: BTreeSet<SocketAddr>,
    pub found: BTreeSet<Found>,
    pub state: PeerState,
    pub refusal: Option<Refusal>,
    pub rtt: Option<Duration>,
    pub last_reconciled: Option<SystemTime>,
    pub events_sent: u64,
    pub events_received: u64,
    pub invalid_received: u64,
    pub score: i32,
    pub last_error: Option<String>,
    pub connected_since: Option<Instant>,
    pub throttled: Duration,
    /// Bytes received on its links that ended (a live link's own count is added when read).
    pub bytes_received: u64,
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
            name: String::new(),
            addrs: BTreeSet::new(),
            found: BTreeSet::new(),
            state: PeerState::Disconnected,
            refusal: None,
            rtt: None,
            last_reconciled: None,
            events_sent: 0,
            events_received: 0,
            invalid_received: 0,
            score: basis_proto::reputation::START_SCORE,
            last_error: None,
            connected_since: None,
            throttled: Duration::ZERO,
            bytes_received: 0,
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
                state: e.state,
                refusal: e.refusal.filter(|_| e.state == PeerState::Refused),
                hint: e
                    .refusal
                    .filter(|_| e.state == PeerState::Refused)
                    .map(|r| r.hint().to_string()),
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
                bytes_received: e.bytes_received,
            })
            .collect();
        list.sort_by(|a, b| {
            (a.state != PeerState::Connected, &a.node_id)
                .cmp(&(b.state != PeerState::Connected, &b.node_id))
        });
        list
    }
}
