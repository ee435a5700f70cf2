//! The peer registry: every peer this node knows (the table `basis peers` shows), the live
//! link to each (one per pair, by `basis_proto::duplicate`), reputations and bans, and which
//! refusals were already logged. One mutex guards it all; nothing in it waits.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use basis_core::NodeId;
use basis_proto::duplicate::{self, Keep, LinkFacts};
use basis_proto::link::LinkStats;
use basis_proto::{CloseCode, PeerInfo, Reputation};
use tokio::sync::watch;

use crate::closing::Outcome;
use crate::discovery::Sighting;
use crate::peers::{Found, PeerSnapshot, PeerState, PeerTable, Refusal};

/// What the registry needs of a connection: quinn's in the node, a stand-in in tests.
pub(crate) trait LinkConn: Send + Sync {
    /// The same number for every handle of one connection.
    fn id(&self) -> usize;
    /// Whether it is still open.
    fn is_live(&self) -> bool;
    /// Where the peer is.
    fn remote(&self) -> SocketAddr;
    /// The current round-trip estimate.
    fn rtt(&self) -> Duration;
    /// UDP payload bytes received on it so far.
    fn bytes_received(&self) -> u64;
    /// Closes it with a code the peer reads.
    fn close(&self, code: CloseCode, reason: &str);
}

impl LinkConn for quinn::Connection {
    fn id(&self) -> usize {
        self.stable_id()
    }

    fn is_live(&self) -> bool {
        self.close_reason().is_none()
    }

    fn remote(&self) -> SocketAddr {
        crate::addr::canonical(self.remote_address())
    }

    fn rtt(&self) -> Duration {
        quinn::Connection::rtt(self)
    }

    fn bytes_received(&self) -> u64 {
        self.stats().udp_rx.bytes
    }

    fn close(&self, code: CloseCode, reason: &str) {
        crate::closing::close(self, code, reason);
    }
}

/// A registered link.
struct Linked {
    conn: Box<dyn LinkConn>,
    /// What the duplicate-link rule needs (its `age` is measured from `since`).
    facts: LinkFacts,
    since: Instant,
}

#[derive(Default)]
struct State {
    peers: PeerTable,
    reputation: Reputation,
    links: HashMap<NodeId, Linked>,
    /// Peers whose refusal was logged: once per peer until it links, not per attempt.
    refusals_logged: HashSet<NodeId>,
}

impl State {
    fn connected(&self, peer: &NodeId) -> bool {
        self.links.get(peer).is_some_and(|l| l.conn.is_live())
    }
}

/// Who this node knows and is linked with.
pub(crate) struct Registry {
    local: NodeId,
    /// The federation tag (empty without a secret).
    tag: String,
    /// Node ids admitted without the secret.
    allow: Vec<NodeId>,
    max_peers: usize,
    state: Mutex<State>,
    /// Bumped whenever a link is admitted or ends, so links share the new peer list at once.
    changes: watch::Sender<u64>,
}

/// What [`Registry::register`] did with a link whose peer was just admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registered {
    /// Kept: the only live link to its peer.
    First,
    /// Kept in place of a live link to the same peer, now closed: the peer restarted
    /// (`restarted`), or the two nodes dialled each other at once and this link is the one
    /// both keep.
    Replaced {
        /// Whether the peer started again since the replaced link was made.
        restarted: bool,
    },
    /// Refused: a live link to the same peer wins, and this one must close.
    Refused,
}

impl Registry {
    /// An empty registry for node `local` of the federation with `tag`.
    pub(crate) fn new(local: NodeId, tag: String, allow: Vec<NodeId>, max_peers: usize) -> Self {
        Registry {
            local,
            tag,
            allow,
            max_peers,
            state: Mutex::new(State::default()),
            changes: watch::Sender::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The federation tag (empty without a secret).
    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }

    /// Changes whenever a link is admitted or ends.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Registers a link whose peer was just admitted, applying the one-link-per-pair rule
    /// (`basis_proto::duplicate`): [`Registered::Refused`] when a live link to the same peer
    /// wins and this one must close; otherwise this one is kept, and an older one, if any, is
    /// closed.
    pub(crate) fn register(
        &self,
        peer: NodeId,
        conn: Box<dyn LinkConn>,
        facts: LinkFacts,
    ) -> Registered {
        let mut state = self.state();
        let mut registered = Registered::First;
        if let Some(existing) = state.links.get(&peer)
            && existing.conn.is_live()
            && existing.conn.id() != conn.id()
        {
            let old = LinkFacts {
                age: existing.since.elapsed(),
                ..existing.facts
            };
            match duplicate::keep(self.local, peer, &old, &facts) {
                Keep::Existing => return Registered::Refused,
                Keep::New => {
                    registered = Registered::Replaced {
                        restarted: old.peer_boot != facts.peer_boot,
                    };
                    existing
                        .conn
                        .close(CloseCode::Duplicate, CloseCode::Duplicate.meaning());
                }
            }
        }
        state.links.insert(
            peer,
            Linked {
                conn,
                facts,
                since: Instant::now(),
            },
        );
        registered
    }

    /// Whether a live link runs to this address.
    pub(crate) fn linked_at(&self, addr: SocketAddr) -> bool {
        self.state()
            .links
            .values()
            .any(|l| l.conn.remote() == addr && l.conn.is_live())
    }

    /// Whether a live link runs to this peer.
    pub(crate) fn connected(&self, peer: &NodeId) -> bool {
        self.state().connected(peer)
    }

    /// Whether a new link to `peer` would be one too many (`federation.max_peers`).
    pub(crate) fn full_for(&self, peer: &NodeId) -> bool {
        let state = self.state();
        state.links.len() >= self.max_peers && !state.connected(peer)
    }

    /// Linked peers and where they are, for peer exchange.
    pub(crate) fn connected_peers(&self) -> Vec<PeerInfo> {
        self.state()
            .links
            .iter()
            .filter(|(_, l)| l.conn.is_live())
            .map(|(id, l)| PeerInfo {
                node: *id,
                addrs: vec![l.conn.remote()],
            })
            .collect()
    }

    /// Why the peer is banned, while it is.
    pub(crate) fn banned(&self, peer: &NodeId) -> Option<String> {
        self.state().reputation.banned(peer, Instant::now())
    }

    /// Takes points off the peer: whether it is now banned, and its score.
    pub(crate) fn penalize(&self, peer: NodeId, points: u32, reason: &str) -> (bool, i32) {
        let now = Instant::now();
        let mut state = self.state();
        let banned = state.reputation.penalize(peer, points, reason, now);
        let score = state.reputation.score(peer, now);
        let e = state.peers.entry(peer);
        e.score = score;
        e.last_error = Some(reason.to_string());
        (banned, score)
    }

    /// The peer was admitted on a registered link.
    pub(crate) fn admitted(&self, peer: NodeId, name: &str, remote: SocketAddr) {
        {
            let mut state = self.state();
            let e = state.peers.entry(peer);
            e.name = name.to_string();
            e.state = PeerState::Connected;
            e.refusal = None;
            e.addrs.insert(remote);
            e.connected_since = Some(Instant::now());
            e.last_error = None;
            // Logged once per peer until it links, not per attempt or cause.
            state.refusals_logged.remove(&peer);
        }
        self.bump();
    }

    /// Records the peers `from` told of; returns those to dial (not linked, not this node).
    pub(crate) fn learned(&self, from: NodeId, list: Vec<PeerInfo>) -> Vec<PeerInfo> {
        let mut state = self.state();
        let mut dial = Vec::new();
        for info in list {
            if info.node == self.local {
                continue;
            }
            let e = state.peers.entry(info.node);
            e.found.insert(Found::Exchange);
            e.addrs.extend(info.addrs.iter().copied());
            if !state.connected(&info.node) {
                log::debug!("node {} told of node {}", from.short(), info.node.short());
                dial.push(info);
            }
        }
        dial
    }

    /// How the peer became known and where.
    pub(crate) fn found(&self, peer: NodeId, found: Option<Found>, addr: SocketAddr) {
        let mut state = self.state();
        let e = state.peers.entry(peer);
        e.found.extend(found);
        e.addrs.insert(addr);
    }

    /// A dial to the peer started.
    pub(crate) fn dialling(&self, peer: NodeId, found: Option<Found>, addr: SocketAddr) {
        let mut state = self.state();
        let e = state.peers.entry(peer);
        e.found.extend(found);
        e.addrs.insert(addr);
        if e.state != PeerState::Connected {
            e.state = PeerState::Connecting;
        }
    }

    /// A dial to the peer failed before any link.
    pub(crate) fn dial_failed(&self, peer: NodeId, error: String) {
        let mut state = self.state();
        let e = state.peers.entry(peer);
        if e.state == PeerState::Connecting {
            e.state = PeerState::Disconnected;
        }
        e.last_error = Some(error);
    }

    /// The node at `addr` was `got`, not the `want` pinned for it.
    pub(crate) fn unexpected_key(&self, want: NodeId, addr: SocketAddr, got: NodeId) {
        let mut state = self.state();
        let e = state.peers.entry(want);
        e.state = PeerState::Refused;
        e.refusal = Some(Refusal::UnexpectedKey);
        e.last_error = Some(format!("{addr} is node {}", got.short()));
    }

    /// The link's read rate limit made it wait this long.
    pub(crate) fn note_throttled(&self, peer: NodeId, wait: Duration) {
        self.state().peers.entry(peer).throttled += wait;
    }

    /// A reconciliation with the peer finished.
    pub(crate) fn note_reconciled(&self, peer: NodeId, at: SystemTime) {
        self.state().peers.entry(peer).last_reconciled = Some(at);
    }

    /// The link's counters.
    pub(crate) fn note_stats(&self, peer: NodeId, stats: &LinkStats) {
        let mut state = self.state();
        let e = state.peers.entry(peer);
        e.events_sent = stats.events_sent;
        e.events_received = stats.events_received;
        e.invalid_received = stats.invalid_received;
        if stats.last_reconciled.is_some() && e.last_reconciled.is_none() {
            e.last_reconciled = Some(SystemTime::now());
        }
    }

    /// A link ended, for the reason and with the outcome its driver found.
    pub(crate) fn link_ended(
        &self,
        peer: NodeId,
        conn: &dyn LinkConn,
        reason: &str,
        outcome: Outcome,
    ) {
        let remote = conn.remote();
        let mut state = self.state();
        let was_registered = state
            .links
            .get(&peer)
            .is_some_and(|l| l.conn.id() == conn.id());
        if was_registered {
            state.links.remove(&peer);
        }
        state.peers.entry(peer).bytes_received += conn.bytes_received();
        if !state.connected(&peer) {
            let e = state.peers.entry(peer);
            e.rtt = Some(conn.rtt());
            match outcome {
                Outcome::Refused(refusal) => {
                    e.state = PeerState::Refused;
                    e.refusal = Some(refusal);
                }
                Outcome::Duplicate => {}
                Outcome::Ended | Outcome::Broke => {
                    e.state = PeerState::Disconnected;
                    e.refusal = None;
                }
            }
            if outcome != Outcome::Duplicate {
                e.last_error = Some(reason.to_string());
            }
        }
        let first_refusal = match outcome {
            Outcome::Refused(_) => state.refusals_logged.insert(peer),
            _ => false,
        };
        drop(state);
        if was_registered {
            self.bump();
        }
        match outcome {
            Outcome::Duplicate => {
                log::debug!("dropped a duplicate link to node {}", peer.short());
            }
            Outcome::Ended => log::info!("link to node {} closed: {reason}", peer.short()),
            // Once per peer and cause: a refused peer may keep dialling.
            Outcome::Refused(refusal) if first_refusal => log::warn!(
                "node {} at {remote} not linked: {reason} ({})",
                peer.short(),
                refusal.hint()
            ),
            Outcome::Refused(_) => {
                log::debug!("node {} at {remote} refused again: {reason}", peer.short());
            }
            Outcome::Broke => {
                log::debug!("node {} at {remote} not linked: {reason}", peer.short());
            }
        }
    }

    /// A node announced itself on the LAN: where to dial it when it is of this federation
    /// (or allowed), `None` when it is not (it is then shown refused).
    pub(crate) fn sighted(&self, s: &Sighting) -> Option<Vec<SocketAddr>> {
        let ours = (!self.tag.is_empty() && s.tag == self.tag) || self.allow.contains(&s.node);
        let refusal = if self.tag.is_empty() && self.allow.is_empty() {
            Refusal::NoFederationHere
        } else if s.tag.is_empty() {
            Refusal::NoFederationThere
        } else {
            Refusal::OtherFederation
        };
        let mut state = self.state();
        let e = state.peers.entry(s.node);
        e.found.insert(Found::Mdns);
        e.addrs.extend(s.addrs.iter().copied());
        if ours {
            // A node that was refused for announcing another federation now announces this one.
            if matches!(
                e.refusal,
                Some(
                    Refusal::OtherFederation
                        | Refusal::NoFederationHere
                        | Refusal::NoFederationThere
                )
            ) {
                e.state = PeerState::Disconnected;
                e.refusal = None;
            }
            return Some(s.addrs.clone());
        }
        if !s.name.is_empty() {
            e.name = s.name.chars().take(64).collect();
        }
        if e.state != PeerState::Connected {
            e.state = PeerState::Refused;
            e.refusal = Some(refusal);
        }
        let first = state.refusals_logged.insert(s.node);
        drop(state);
        if first {
            log::warn!(
                "node {} ({}) is on this LAN but not in this federation: {}",
                s.node.short(),
                s.name,
                refusal.hint()
            );
        }
        None
    }

    /// Peers found by mDNS, exchange or memory whose link is down and that are worth
    /// dialling again, with their addresses.
    pub(crate) fn redial_candidates(&self) -> Vec<(NodeId, Vec<SocketAddr>)> {
        let state = self.state();
        state
            .peers
            .peers
            .iter()
            .filter(|(id, e)| {
                e.state != PeerState::Connected
                    && e.state != PeerState::Refused
                    && !state.connected(id)
                    && (e.found.contains(&Found::Mdns)
                        || e.found.contains(&Found::Exchange)
                        || e.found.contains(&Found::Known))
            })
            .map(|(id, e)| (*id, e.addrs.iter().copied().collect()))
            .collect()
    }

    /// Every known peer as `basis peers` shows it, linked ones with their live round trip.
    pub(crate) fn snapshot(&self) -> Vec<PeerSnapshot> {
        let mut state = self.state();
        let live: Vec<(NodeId, Duration, u64)> = state
            .links
            .iter()
            .filter(|(_, l)| l.conn.is_live())
            .map(|(id, l)| (*id, l.conn.rtt(), l.conn.bytes_received()))
            .collect();
        for (id, rtt, _) in &live {
            state.peers.entry(*id).rtt = Some(*rtt);
        }
        let mut list = state.peers.snapshot();
        for (id, _, bytes) in live {
            let id = id.to_string();
            if let Some(p) = list.iter_mut().find(|p| p.node_id == id) {
                p.bytes_received += bytes;
            }
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use basis_proto::LinkEnd;

    use super::*;

    /// A connection in memory: open until closed.
    #[derive(Clone)]
    struct Fake {
        id: usize,
        open: Arc<AtomicBool>,
    }

    impl Fake {
        fn new(id: usize) -> Fake {
            Fake {
                id,
                open: Arc::new(AtomicBool::new(true)),
            }
        }
    }

    impl LinkConn for Fake {
        fn id(&self) -> usize {
            self.id
        }
        fn is_live(&self) -> bool {
            self.open.load(Ordering::Relaxed)
        }
        fn remote(&self) -> SocketAddr {
            SocketAddr::from(([10, 0, 0, self.id as u8], 7464))
        }
        fn rtt(&self) -> Duration {
            Duration::from_millis(self.id as u64)
        }
        fn bytes_received(&self) -> u64 {
            1000 * self.id as u64
        }
        fn close(&self, _: CloseCode, _: &str) {
            self.open.store(false, Ordering::Relaxed);
        }
    }

    fn facts(end: LinkEnd, boot: u64, dial: u64) -> LinkFacts {
        LinkFacts {
            end,
            peer_boot: boot,
            dial,
            age: Duration::ZERO,
        }
    }

    const ME: NodeId = NodeId([1; 32]);
    const PEER: NodeId = NodeId([2; 32]);

    #[test]
    fn a_later_dial_replaces_the_held_link_and_the_replaced_one_ending_changes_nothing() {
        let r = Registry::new(ME, "tag".into(), vec![], 32);
        let mut changes = r.changes();
        let (old, new) = (Fake::new(1), Fake::new(2));
        assert_eq!(
            r.register(PEER, Box::new(old.clone()), facts(LinkEnd::Dialled, 7, 1)),
            Registered::First
        );
        r.admitted(PEER, "peer", old.remote());
        assert!(changes.has_changed().unwrap_or(false));
        changes.mark_unchanged();
        assert_eq!(
            r.register(PEER, Box::new(new.clone()), facts(LinkEnd::Dialled, 7, 2)),
            Registered::Replaced { restarted: false }
        );
        assert!(!old.is_live(), "the older dial was closed as a duplicate");
        // The replaced link's end neither unlinks the peer nor counts as a change of links.
        r.link_ended(PEER, &old, "duplicate", Outcome::Duplicate);
        assert!(r.connected(&PEER));
        assert!(!changes.has_changed().unwrap_or(true));
        let peers = r.snapshot();
        assert_eq!(peers[0].state, PeerState::Connected);
        assert_eq!(peers[0].rtt_ms, Some(2.0), "the live link's round trip");
        assert_eq!(
            peers[0].bytes_received, 3000,
            "the ended link's bytes and the live one's"
        );
        // An earlier dial arriving late loses to the held one.
        let stale = Fake::new(3);
        assert_eq!(
            r.register(PEER, Box::new(stale), facts(LinkEnd::Dialled, 7, 1)),
            Registered::Refused
        );
        r.link_ended(PEER, &new, "the peer went away", Outcome::Ended);
        assert!(!r.connected(&PEER));
        assert_eq!(r.snapshot()[0].state, PeerState::Disconnected);
        assert_eq!(
            r.snapshot()[0].bytes_received,
            3000,
            "kept after the links ended"
        );
        assert_eq!(
            r.redial_candidates().len(),
            0,
            "a peer found by nothing is not redialled"
        );
    }

    #[test]
    fn too_many_peers_refuses_only_newcomers() {
        let r = Registry::new(ME, "tag".into(), vec![], 1);
        let a = Fake::new(1);
        assert!(!r.full_for(&PEER));
        r.register(PEER, Box::new(a), facts(LinkEnd::Accepted, 1, 1));
        assert!(r.full_for(&NodeId([3; 32])));
        assert!(!r.full_for(&PEER), "a linked peer may dial again");
    }

    #[test]
    fn sightings_of_another_federation_are_refused_until_they_announce_this_one() {
        let r = Registry::new(ME, "ours".into(), vec![], 32);
        let mut s = Sighting {
            node: PEER,
            tag: "theirs".into(),
            name: "n2".into(),
            addrs: vec![SocketAddr::from(([10, 0, 0, 2], 7464))],
        };
        assert_eq!(r.sighted(&s), None);
        let shown = &r.snapshot()[0];
        assert_eq!(shown.state, PeerState::Refused);
        assert_eq!(shown.refusal, Some(Refusal::OtherFederation));
        s.tag = "ours".into();
        assert_eq!(r.sighted(&s), Some(s.addrs.clone()));
        assert_eq!(r.snapshot()[0].state, PeerState::Disconnected);
        assert_eq!(r.redial_candidates(), vec![(PEER, s.addrs.clone())]);
        // Without a secret or an allow-list, no node is of this node's federation.
        let alone = Registry::new(ME, String::new(), vec![], 32);
        assert_eq!(alone.sighted(&s), None);
        assert_eq!(alone.snapshot()[0].refusal, Some(Refusal::NoFederationHere));
    }

    #[test]
    fn peers_learned_are_dialled_unless_linked_or_this_node() {
        let r = Registry::new(ME, "tag".into(), vec![], 32);
        let addr = SocketAddr::from(([10, 0, 0, 9], 7464));
        let info = |node| PeerInfo {
            node,
            addrs: vec![addr],
        };
        r.register(PEER, Box::new(Fake::new(2)), facts(LinkEnd::Accepted, 1, 1));
        let dial = r.learned(PEER, vec![info(ME), info(PEER), info(NodeId([4; 32]))]);
        assert_eq!(dial, vec![info(NodeId([4; 32]))]);
    }
}
