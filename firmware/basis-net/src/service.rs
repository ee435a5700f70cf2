//! The federation service: the QUIC endpoint, accepting and dialling, one link per pair of
//! nodes, discovery, peer exchange, reputation, and live fan-out of new events.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use basis_core::{EventId, NodeId, NodeKey, RoomId};
use basis_proto::duplicate::{self, Keep, LinkFacts};
use basis_proto::link::LinkStats;
use basis_proto::{CloseCode, FederationKey, LinkConfig, Notice, PeerInfo, Reputation, Role};
use basis_store::{Readers, WriterHandle};
use quinn::{Connection, Endpoint, TransportConfig};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::closing::{Outcome, close};
use crate::discovery::{Discovery, Sighting};
use crate::error::NetError;
use crate::link_task;
use crate::peers::{Found, PeerSnapshot, PeerState, PeerTable, Refusal};
use crate::tls;
use crate::upstream::{self, Bridge, BridgeSnapshot, UpstreamSettings};
use crate::wan;

/// QUIC keep-alive: well inside the idle timeout, so a quiet link stays up (a few dozen bytes
/// every 5 s per link).
const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// A link silent this long is dead: a peer that vanished without a goodbye is shown
/// disconnected within this time (`docs/FEDERATION.md`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for a handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Static peers are redialled after this, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between dials of a static peer that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// New events waiting to be pushed per link before a slow link skips some (reconciliation
/// then catches it up).
const FANOUT_QUEUE: usize = 4096;
/// Notices waiting to go out or to be read; older ones are dropped (they are ephemeral).
const NOTICE_QUEUE: usize = 256;

/// A peer named in the configuration.
#[derive(Debug, Clone)]
pub struct StaticPeer {
    /// The node id it must have, if pinned.
    pub expected: Option<NodeId>,
    /// Host name or address.
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl std::str::FromStr for StaticPeer {
    type Err = String;
    /// Reads `host:port` or `NODEID@host:port`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (expected, address) = match s.split_once('@') {
            Some((id, rest)) => (Some(id.parse::<NodeId>().map_err(|e| e.to_string())?), rest),
            None => (None, s),
        };
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected host:port"))?;
        let port = port.parse().map_err(|_| format!("{s:?}: bad port"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(StaticPeer {
            expected,
            host,
            port,
        })
    }
}

/// What the federation needs from the node.
pub struct FederationSettings {
    /// The node key (its TLS identity).
    pub key: NodeKey,
    /// The node's human name.
    pub name: String,
    /// The federation key, when a secret is set.
    pub federation: Option<FederationKey>,
    /// Node ids admitted without the secret.
    pub allow: Vec<NodeId>,
    /// UDP port to listen on (0: any).
    pub port: u16,
    /// Peers to keep dialling.
    pub static_peers: Vec<StaticPeer>,
    /// Announce and browse with mDNS.
    pub mdns: bool,
    /// Reconcile a link again after this long.
    pub reconcile_every: Duration,
    /// Most links at once.
    pub max_peers: usize,
    /// Most bytes per second read from one peer.
    pub peer_rate: u64,
    /// TCP port of the node's client API, announced over mDNS for clients (None: off).
    pub api_port: Option<u16>,
    /// The bridge to upstream nodes over the WAN (None: no bridge).
    pub upstream: Option<UpstreamSettings>,
}

/// A newly stored event, fanned out to links.
#[derive(Debug)]
pub(crate) struct NewEvent {
    pub id: EventId,
    pub room: RoomId,
    pub bytes: Vec<u8>,
    /// The peer it came from (not pushed back there).
    pub origin: Option<NodeId>,
}

struct LinkHandle {
    conn: Connection,
    /// What the duplicate-link rule needs (its `age` is measured from `since`).
    facts: LinkFacts,
    remote: SocketAddr,
    since: Instant,
}

enum Dial {
    To {
        addr: SocketAddr,
        expected: Option<NodeId>,
        /// How the peer became known; `None` for a redial, which adds no new source.
        found: Option<Found>,
    },
}

/// State shared by the service's tasks.
pub(crate) struct Shared {
    pub local: NodeId,
    pub link_config: LinkConfig,
    pub writer: WriterHandle,
    pub readers: Arc<Readers>,
    pub events: broadcast::Sender<Arc<NewEvent>>,
    /// Notices of this node's clients, for every link.
    pub notices_out: broadcast::Sender<Notice>,
    /// Notices from peers, for this node's clients.
    pub notices_in: broadcast::Sender<(NodeId, Notice)>,
    pub stop: CancellationToken,
    pub tasks: TaskTracker,
    pub endpoint: Endpoint,
    client: quinn::ClientConfig,
    tag: String,
    max_peers: usize,
    pub peer_rate: u64,
    peers: Mutex<PeerTable>,
    reputation: Mutex<Reputation>,
    links: Mutex<HashMap<NodeId, LinkHandle>>,
    /// Bumped whenever a link is admitted or ends, so links share the new peer list at once.
    pub links_changed: std::sync::atomic::AtomicU64,
    dialling: Mutex<HashSet<SocketAddr>>,
    dial_tx: mpsc::UnboundedSender<Dial>,
    /// Dials made by this process, numbered for the duplicate-link rule.
    dials: std::sync::atomic::AtomicU64,
    /// Peers whose refusal was logged: once per peer until it links, not per attempt.
    refusals_logged: Mutex<HashSet<NodeId>>,
}

/// An address with IPv4-mapped IPv6 shown as plain IPv4.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running federation of a node.
pub struct Federation {
    shared: Arc<Shared>,
    bridge: Option<Arc<Bridge>>,
    local_addr: SocketAddr,
    discovery: Mutex<Option<Discovery>>,
}

/// Keep-alive on an upstream link: a WAN may be metered, yet a dead upstream node (one that
/// restarted without saying goodbye) must be noticed well before the LAN's timeout.
const UPSTREAM_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// An upstream link silent this long is dead.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

fn transport() -> Arc<TransportConfig> {
    transport_with(KEEP_ALIVE, IDLE_TIMEOUT)
}

fn transport_with(keep_alive: Duration, idle: Duration) -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(keep_alive));
    // Seconds fit in a VarInt, so the conversion cannot fail.
    t.max_idle_timeout(idle.try_into().ok());
    t.max_concurrent_bidi_streams(4u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    Arc::new(t)
}

fn bind(server: quinn::ServerConfig, port: u16) -> Result<Endpoint, NetError> {
    let v6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port);
    match Endpoint::server(server.clone(), v6) {
        Ok(e) => Ok(e),
        Err(_) => Endpoint::server(server, SocketAddr::from(([0, 0, 0, 0], port)))
            .map_err(|source| NetError::Bind { port, source }),
    }
}

impl Federation {
    /// Starts the endpoint, discovery and dialling. Tasks stop when `stop` is cancelled and are
    /// tracked by `tasks`.
    pub fn start(
        settings: FederationSettings,
        writer: WriterHandle,
        readers: Arc<Readers>,
        stop: CancellationToken,
        tasks: TaskTracker,
    ) -> Result<Federation, NetError> {
        let local = settings.key.id();
        let configs = tls::configs(&settings.key, basis_proto::ALPN)?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(configs.server));
        server.transport_config(transport());
        let mut client = quinn::ClientConfig::new(Arc::new(configs.client));
        client.transport_config(transport());
        let endpoint = bind(server, settings.port)?;
        let local_addr = endpoint.local_addr().map_err(|source| NetError::Bind {
            port: settings.port,
            source,
        })?;
        let tag = settings
            .federation
            .as_ref()
            .map(FederationKey::tag)
            .unwrap_or_default();
        // A new number each start: peers tell a restart from a second link by it.
        let mut boot_bytes = [0u8; 8];
        getrandom::fill(&mut boot_bytes).map_err(|e| NetError::Random(e.to_string()))?;
        let boot = u64::from_le_bytes(boot_bytes);
        let (dial_tx, dial_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(FANOUT_QUEUE);
        let (notices_out, _) = broadcast::channel(NOTICE_QUEUE);
        let (notices_in, _) = broadcast::channel(NOTICE_QUEUE);
        let shared = Arc::new(Shared {
            local,
            link_config: LinkConfig {
                local,
                name: settings.name.clone(),
                federation: settings.federation.clone(),
                allow: settings.allow.clone(),
                reconcile_every: settings.reconcile_every,
                upstream: false,
                boot,
                dial: 0,
            },
            writer,
            readers,
            events,
            notices_out,
            notices_in,
            stop: stop.clone(),
            tasks: tasks.clone(),
            endpoint,
            client,
            tag: tag.clone(),
            max_peers: settings.max_peers,
            peer_rate: settings.peer_rate,
            peers: Mutex::new(PeerTable::default()),
            reputation: Mutex::new(Reputation::new()),
            links: Mutex::new(HashMap::new()),
            links_changed: std::sync::atomic::AtomicU64::new(0),
            dialling: Mutex::new(HashSet::new()),
            dial_tx,
            dials: std::sync::atomic::AtomicU64::new(0),
            refusals_logged: Mutex::new(HashSet::new()),
        });
        tasks.spawn(accept_loop(shared.clone()));
        tasks.spawn(dial_loop(shared.clone(), dial_rx));
        for peer in settings.static_peers {
            tasks.spawn(static_peer_loop(shared.clone(), peer));
        }
        tasks.spawn(redial_loop(shared.clone()));
        // The named WAN interface hears no mDNS from this node.
        let wan_interface = settings
            .upstream
            .as_ref()
            .and_then(|u| u.wan_interface.clone());
        let bridge = match settings.upstream {
            Some(up) if !up.peers.is_empty() => {
                let wan = wan::start(
                    up.peers.clone(),
                    up.wan_interface.clone(),
                    stop.clone(),
                    &tasks,
                );
                let bridge = Arc::new(Bridge::new(up, wan));
                let mut client = quinn::ClientConfig::new(Arc::new(
                    tls::configs(&settings.key, basis_proto::ALPN)?.client,
                ));
                client.transport_config(transport_with(UPSTREAM_KEEP_ALIVE, UPSTREAM_IDLE_TIMEOUT));
                upstream::start(&shared, &bridge, client);
                Some(bridge)
            }
            _ => None,
        };
        tasks.spawn(dial_known_peers(shared.clone()));
        let discovery = if settings.mdns {
            let (discovery, sightings) = Discovery::start(
                local,
                &settings.name,
                &tag,
                local_addr.port(),
                settings.api_port,
                wan_interface.as_deref(),
            )?;
            tasks.spawn(sighting_loop(shared.clone(), sightings));
            Some(discovery)
        } else {
            None
        };
        Ok(Federation {
            shared,
            bridge,
            local_addr,
            discovery: Mutex::new(discovery),
        })
    }

    /// The UDP address the endpoint listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The federation tag announced over mDNS (empty without a secret).
    pub fn tag(&self) -> &str {
        &self.shared.tag
    }

    /// Offers an event of `room` this node just stored (from a client) to every link.
    pub fn announce(&self, id: EventId, room: RoomId, bytes: &[u8]) {
        let _ = self.shared.events.send(Arc::new(NewEvent {
            id,
            room,
            bytes: bytes.to_vec(),
            origin: None,
        }));
    }

    /// Sends a notice of one of this node's clients (typing, presence) to every linked node.
    pub fn send_notice(&self, notice: Notice) {
        let _ = self.shared.notices_out.send(notice);
    }

    /// Notices from linked nodes for this node's clients, with the node that sent each.
    pub fn notices(&self) -> broadcast::Receiver<(NodeId, Notice)> {
        self.shared.notices_in.subscribe()
    }

    /// Every known peer, connected ones first.
    pub fn peers(&self) -> Vec<PeerSnapshot> {
        lock(&self.shared.peers).snapshot()
    }

    /// The upstream bridge as `basis status` shows it (None: no bridge configured).
    pub async fn bridge_status(&self) -> Option<BridgeSnapshot> {
        let bridge = self.bridge.clone()?;
        let readers = self.shared.readers.clone();
        tokio::task::spawn_blocking(move || bridge.snapshot(&readers))
            .await
            .ok()
    }

    /// Withdraws the mDNS announcement and closes the endpoint (after links said goodbye).
    pub fn shutdown(&self) {
        if let Some(bridge) = &self.bridge {
            bridge.save();
        }
        if let Some(d) = lock(&self.discovery).take() {
            d.stop();
        }
        self.shared
            .endpoint
            .close(CloseCode::Shutdown.code().into(), b"node shutting down");
    }
}

impl Shared {
    /// Registers a link whose peer was just admitted, applying the one-link-per-pair rule
    /// (`basis_proto::duplicate`): false when a live link to the same peer wins and this one
    /// must close; true when this one is kept (an older one, if any, is closed).
    pub(crate) fn register(&self, peer: NodeId, conn: &Connection, facts: LinkFacts) -> bool {
        let mut links = lock(&self.links);
        if let Some(existing) = links.get(&peer)
            && existing.conn.close_reason().is_none()
            && existing.conn.stable_id() != conn.stable_id()
        {
            let old = LinkFacts {
                age: existing.since.elapsed(),
                ..existing.facts
            };
            match duplicate::keep(self.local, peer, &old, &facts) {
                Keep::Existing => return false,
                Keep::New => {
                    if old.peer_boot != facts.peer_boot {
                        log::info!(
                            "node {} restarted: its new link replaces the old one",
                            peer.short()
                        );
                    } else {
                        log::debug!("node {} linked again: replacing its old link", peer.short());
                    }
                    existing.conn.close(
                        CloseCode::Duplicate.code().into(),
                        CloseCode::Duplicate.meaning().as_bytes(),
                    );
                }
            }
        }
        links.insert(
            peer,
            LinkHandle {
                conn: conn.clone(),
                facts,
                remote: canonical(conn.remote_address()),
                since: Instant::now(),
            },
        );
        true
    }

    /// Whether a live link runs to this address.
    fn linked_at(&self, addr: SocketAddr) -> bool {
        lock(&self.links)
            .values()
            .any(|l| l.remote == addr && l.conn.close_reason().is_none())
    }

    fn connected(&self, peer: &NodeId) -> bool {
        lock(&self.links)
            .get(peer)
            .is_some_and(|l| l.conn.close_reason().is_none())
    }

    /// Linked peers and where they are, for peer exchange.
    pub(crate) fn connected_peers(&self) -> Vec<PeerInfo> {
        lock(&self.links)
            .iter()
            .filter(|(_, l)| l.conn.close_reason().is_none())
            .map(|(id, l)| PeerInfo {
                node: *id,
                addrs: vec![l.remote],
            })
            .collect()
    }

    fn banned(&self, peer: &NodeId) -> Option<String> {
        lock(&self.reputation).banned(peer, Instant::now())
    }

    pub(crate) fn penalize(&self, peer: NodeId, points: u32, reason: &str) -> (bool, i32) {
        let now = Instant::now();
        let mut rep = lock(&self.reputation);
        let banned = rep.penalize(peer, points, reason, now);
        let score = rep.score(peer, now);
        drop(rep);
        let mut peers = lock(&self.peers);
        let e = peers.entry(peer);
        e.score = score;
        e.last_error = Some(reason.to_string());
        (banned, score)
    }

    /// The number of a new dial of this process (1, 2, ...).
    pub(crate) fn next_dial(&self) -> u64 {
        self.dials
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .saturating_add(1)
    }

    fn bump_links(&self) {
        self.links_changed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn admitted(&self, peer: NodeId, name: &str, remote: SocketAddr) {
        self.bump_links();
        lock(&self.refusals_logged).remove(&peer);
        self.writer.remember_peer(peer.0, remote.to_string());
        let mut peers = lock(&self.peers);
        let e = peers.entry(peer);
        e.name = name.to_string();
        e.state = PeerState::Connected;
        e.refusal = None;
        e.addrs.insert(remote);
        e.connected_since = Some(Instant::now());
        e.last_error = None;
    }

    pub(crate) fn learned(&self, from: NodeId, list: Vec<PeerInfo>) {
        for info in list {
            if info.node == self.local {
                continue;
            }
            {
                let mut peers = lock(&self.peers);
                let e = peers.entry(info.node);
                e.found.insert(Found::Exchange);
                e.addrs.extend(info.addrs.iter().copied());
            }
            if !self.connected(&info.node) {
                log::debug!("node {} told of node {}", from.short(), info.node.short());
                for addr in info.addrs {
                    let _ = self.dial_tx.send(Dial::To {
                        addr,
                        expected: Some(info.node),
                        found: Some(Found::Exchange),
                    });
                }
            }
        }
    }

    pub(crate) fn note_rtt(&self, peer: NodeId, rtt: Duration) {
        lock(&self.peers).entry(peer).rtt = Some(rtt);
    }

    pub(crate) fn note_throttled(&self, peer: NodeId, wait: Duration) {
        lock(&self.peers).entry(peer).throttled += wait;
    }

    pub(crate) fn note_reconciled(&self, peer: NodeId, at: SystemTime) {
        lock(&self.peers).entry(peer).last_reconciled = Some(at);
    }

    pub(crate) fn note_stats(&self, peer: NodeId, stats: &LinkStats) {
        let mut peers = lock(&self.peers);
        let e = peers.entry(peer);
        e.events_sent = stats.events_sent;
        e.events_received = stats.events_received;
        e.invalid_received = stats.invalid_received;
        if stats.last_reconciled.is_some() && e.last_reconciled.is_none() {
            e.last_reconciled = Some(SystemTime::now());
        }
    }

    /// A link ended, for the reason and with the outcome its task found.
    pub(crate) fn link_ended(
        &self,
        peer: NodeId,
        conn: &Connection,
        reason: &str,
        outcome: Outcome,
    ) {
        {
            let mut links = lock(&self.links);
            if links
                .get(&peer)
                .is_some_and(|l| l.conn.stable_id() == conn.stable_id())
            {
                links.remove(&peer);
                self.bump_links();
            }
        }
        let still_linked = self.connected(&peer);
        if !still_linked {
            let mut peers = lock(&self.peers);
            let e = peers.entry(peer);
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
        let remote = canonical(conn.remote_address());
        match outcome {
            Outcome::Duplicate => {
                log::debug!("dropped a duplicate link to node {}", peer.short());
            }
            Outcome::Ended => log::info!("link to node {} closed: {reason}", peer.short()),
            Outcome::Refused(refusal) => {
                // Once per peer: a refused peer may keep dialling.
                if lock(&self.refusals_logged).insert(peer) {
                    log::warn!(
                        "node {} at {remote} not linked: {reason} ({})",
                        peer.short(),
                        refusal.hint()
                    );
                } else {
                    log::debug!("node {} at {remote} refused again: {reason}", peer.short());
                }
            }
            Outcome::Broke => {
                log::debug!("node {} at {remote} not linked: {reason}", peer.short());
            }
        }
    }

    /// A node of another federation (or of none) announced itself on the LAN.
    fn saw_outsider(&self, s: &Sighting) {
        let refusal = if self.tag.is_empty() && self.link_config.allow.is_empty() {
            Refusal::NoFederationHere
        } else if s.tag.is_empty() {
            Refusal::NoFederationThere
        } else {
            Refusal::OtherFederation
        };
        let mut peers = lock(&self.peers);
        let e = peers.entry(s.node);
        e.found.insert(Found::Mdns);
        e.addrs.extend(s.addrs.iter().copied());
        if !s.name.is_empty() {
            e.name = s.name.chars().take(64).collect();
        }
        if e.state != PeerState::Connected {
            e.state = PeerState::Refused;
            e.refusal = Some(refusal);
        }
        drop(peers);
        if lock(&self.refusals_logged).insert(s.node) {
            log::warn!(
                "node {} ({}) is on this LAN but not in this federation: {}",
                s.node.short(),
                s.name,
                refusal.hint()
            );
        }
    }
}

pub(crate) fn peer_of(conn: &Connection) -> Option<NodeId> {
    let identity = conn.peer_identity()?;
    let certs = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    tls::node_id_of(certs.first()?.as_ref())
}

async fn accept_loop(shared: Arc<Shared>) {
    loop {
        let incoming = tokio::select! {
            () = shared.stop.cancelled() => return,
            incoming = shared.endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else { return };
        let shared2 = shared.clone();
        shared.tasks.spawn(async move {
            let remote = canonical(incoming.remote_address());
            let conn = match tokio::time::timeout(CONNECT_TIMEOUT, async { incoming.await }).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return log::debug!("handshake from {remote} failed: {e}"),
                Err(_) => return log::debug!("handshake from {remote} timed out"),
            };
            let Some(peer) = peer_of(&conn) else {
                return close(&conn, CloseCode::Unusable, "no node key");
            };
            if let Some(reason) = shared2.banned(&peer) {
                log::info!(
                    "refused node {} at {remote}: banned for {reason}",
                    peer.short()
                );
                return close(&conn, CloseCode::Banned, "banned for misbehaving");
            }
            if lock(&shared2.links).len() >= shared2.max_peers && !shared2.connected(&peer) {
                return close(&conn, CloseCode::TooManyPeers, "too many peers");
            }
            {
                let mut peers = lock(&shared2.peers);
                let e = peers.entry(peer);
                e.found.insert(Found::Inbound);
                e.addrs.insert(remote);
            }
            let streams = tokio::time::timeout(CONNECT_TIMEOUT, conn.accept_bi()).await;
            let Ok(Ok((send, recv))) = streams else {
                return close(&conn, CloseCode::Unusable, "no link stream");
            };
            link_task::run(shared2, conn, Role::Acceptor, peer, send, recv).await;
        });
    }
}

async fn dial_loop(shared: Arc<Shared>, mut dials: mpsc::UnboundedReceiver<Dial>) {
    loop {
        let dial = tokio::select! {
            () = shared.stop.cancelled() => return,
            dial = dials.recv() => dial,
        };
        let Some(Dial::To {
            addr,
            expected,
            found,
        }) = dial
        else {
            return;
        };
        if expected.is_some_and(|p| {
            p == shared.local || shared.connected(&p) || shared.banned(&p).is_some()
        }) {
            continue;
        }
        // A static peer without a pinned id is dialled by address: not while linked there.
        if shared.linked_at(canonical(addr)) {
            continue;
        }
        if !lock(&shared.dialling).insert(addr) {
            continue;
        }
        let shared2 = shared.clone();
        shared.tasks.spawn(async move {
            dial_one(&shared2, addr, expected, found).await;
            lock(&shared2.dialling).remove(&addr);
        });
    }
}

async fn dial_one(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    expected: Option<NodeId>,
    found: Option<Found>,
) {
    let connecting =
        match shared
            .endpoint
            .connect_with(shared.client.clone(), addr, "basis.invalid")
        {
            Ok(c) => c,
            Err(e) => return log::debug!("cannot dial {addr}: {e}"),
        };
    if let Some(peer) = expected {
        let mut peers = lock(&shared.peers);
        let e = peers.entry(peer);
        e.found.extend(found);
        e.addrs.insert(addr);
        if e.state != PeerState::Connected {
            e.state = PeerState::Connecting;
        }
    }
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            if let Some(peer) = expected {
                let mut peers = lock(&shared.peers);
                let e2 = peers.entry(peer);
                if e2.state == PeerState::Connecting {
                    e2.state = PeerState::Disconnected;
                }
                e2.last_error = Some(e.to_string());
            }
            return log::debug!("dial {addr} failed: {e}");
        }
        Err(_) => return log::debug!("dial {addr} timed out"),
    };
    let Some(peer) = peer_of(&conn) else {
        return close(&conn, CloseCode::Unusable, "no node key");
    };
    if let Some(want) = expected
        && want != peer
    {
        log::warn!(
            "{addr} is node {}, not the expected {}; not linking",
            peer.short(),
            want.short()
        );
        let mut peers = lock(&shared.peers);
        let e = peers.entry(want);
        e.state = PeerState::Refused;
        e.refusal = Some(Refusal::UnexpectedKey);
        e.last_error = Some(format!("{addr} is node {}", peer.short()));
        drop(peers);
        return close(&conn, CloseCode::UnexpectedKey, "unexpected node key");
    }
    // A peer configured by address only: not a second link to a node already linked.
    if expected.is_none() && shared.connected(&peer) {
        return close(&conn, CloseCode::Duplicate, "already linked");
    }
    {
        let mut peers = lock(&shared.peers);
        let e = peers.entry(peer);
        e.found.extend(found);
        e.addrs.insert(addr);
    }
    let Ok((send, recv)) = conn.open_bi().await else {
        return;
    };

    link_task::run(shared.clone(), conn, Role::Dialer, peer, send, recv).await;
}

async fn static_peer_loop(shared: Arc<Shared>, peer: StaticPeer) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let up = peer.expected.is_some_and(|p| shared.connected(&p));
        if !up {
            match tokio::net::lookup_host((peer.host.as_str(), peer.port)).await {
                Ok(addrs) => {
                    for addr in addrs {
                        let _ = shared.dial_tx.send(Dial::To {
                            addr,
                            expected: peer.expected,
                            found: Some(Found::Static),
                        });
                    }
                }
                Err(e) => log::warn!("cannot resolve static peer {}: {e}", peer.host),
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        } else {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
    }
}

/// Most remembered peers dialled at start.
const KNOWN_PEERS_DIALLED: usize = 64;

/// At start, dials the peers this node was linked with before (kept in the store), so that a
/// restarted node finds its federation even where mDNS does not reach.
async fn dial_known_peers(shared: Arc<Shared>) {
    let readers = shared.readers.clone();
    let known = tokio::task::spawn_blocking(move || readers.known_peers(KNOWN_PEERS_DIALLED)).await;
    let Ok(Ok(known)) = known else {
        return log::warn!("cannot read the remembered peers");
    };
    for (node, addr) in known {
        let (node, Ok(addr)) = (NodeId(node), addr.parse::<SocketAddr>()) else {
            continue;
        };
        {
            let mut peers = lock(&shared.peers);
            let e = peers.entry(node);
            e.found.insert(Found::Known);
            e.addrs.insert(addr);
        }
        let _ = shared.dial_tx.send(Dial::To {
            addr,
            expected: Some(node),
            found: Some(Found::Known),
        });
    }
}

/// Redials peers found by mDNS or peer exchange whose link went down (a partition that
/// outlasted the idle timeout, a rebooted node), with a growing pause per peer.
async fn redial_loop(shared: Arc<Shared>) {
    let mut pause: HashMap<NodeId, (Instant, Duration)> = HashMap::new();
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = tokio::time::sleep(FIRST_BACKOFF) => {}
        }
        let now = Instant::now();
        let candidates: Vec<(NodeId, Vec<SocketAddr>)> = lock(&shared.peers)
            .peers
            .iter()
            .filter(|(_, e)| {
                e.state != PeerState::Connected
                    && e.state != PeerState::Refused
                    && (e.found.contains(&Found::Mdns)
                        || e.found.contains(&Found::Exchange)
                        || e.found.contains(&Found::Known))
            })
            .map(|(id, e)| (*id, e.addrs.iter().copied().collect()))
            .collect();
        for (peer, addrs) in candidates {
            if shared.connected(&peer) {
                pause.remove(&peer);
                continue;
            }
            let (next, wait) = pause.entry(peer).or_insert((now, FIRST_BACKOFF));
            if now < *next {
                continue;
            }
            *wait = (*wait * 2).min(MAX_BACKOFF);
            *next = now + *wait;
            for addr in addrs {
                let _ = shared.dial_tx.send(Dial::To {
                    addr,
                    expected: Some(peer),
                    found: None,
                });
            }
        }
    }
}

async fn sighting_loop(shared: Arc<Shared>, mut sightings: mpsc::Receiver<Sighting>) {
    loop {
        let sighting = tokio::select! {
            () = shared.stop.cancelled() => return,
            s = sightings.recv() => s,
        };
        let Some(s) = sighting else { return };
        let ours = (!shared.tag.is_empty() && s.tag == shared.tag)
            || shared.link_config.allow.contains(&s.node);
        if ours {
            let mut peers = lock(&shared.peers);
            let e = peers.entry(s.node);
            e.found.insert(Found::Mdns);
            e.addrs.extend(s.addrs.iter().copied());
            // A node that was refused for announcing another federation now announces this one.
            if e.refusal == Some(Refusal::OtherFederation)
                || e.refusal == Some(Refusal::NoFederationHere)
                || e.refusal == Some(Refusal::NoFederationThere)
            {
                e.state = PeerState::Disconnected;
                e.refusal = None;
            }
        }
        if !ours {
            shared.saw_outsider(&s);
            continue;
        }
        // A node that (re)appears is dialled at once.
        for addr in s.addrs {
            let _ = shared.dial_tx.send(Dial::To {
                addr,
                expected: Some(s.node),
                found: Some(Found::Mdns),
            });
        }
    }
}
