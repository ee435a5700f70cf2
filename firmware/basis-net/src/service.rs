//! The federation as the node sees it: [`Federation::start`] wires the endpoint, the peer
//! registry, the dialler, discovery and the upstream bridge together and spawns their
//! tasks; [`Federation`] is the handle the rest of the node uses.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use basis_core::{EventId, NodeId, NodeKey, RoomId};
use basis_proto::{CloseCode, FederationKey, LinkConfig, Notice};
use basis_store::{Readers, WriterHandle};
use quinn::Endpoint;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::addr::StaticPeer;
use crate::bridge::{Bridge, BridgeSnapshot, UpstreamSettings};
use crate::context::{Context, NewEvent, Queues};
use crate::dialler::{self, Dialler};
use crate::discovery::Discovery;
use crate::endpoint::{
    UPSTREAM_IDLE_TIMEOUT, UPSTREAM_KEEP_ALIVE, accept_loop, bind, transport_accepting,
    transport_dialling, transport_with,
};
use crate::error::NetError;
use crate::peers::PeerSnapshot;
use crate::registry::Registry;
use crate::tls;
use crate::upstream::{self, UpstreamDialler};
use crate::wan;

/// New events waiting to be pushed per link before a slow link skips some (reconciliation
/// then catches it up).
const FANOUT_QUEUE: usize = 4096;
/// Notices waiting to go out or to be read; older ones are dropped (they are ephemeral).
const NOTICE_QUEUE: usize = 256;

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

/// The running federation of a node.
pub struct Federation {
    ctx: Arc<Context>,
    endpoint: Endpoint,
    bridge: Option<Arc<Bridge>>,
    local_addr: SocketAddr,
    discovery: Mutex<Option<Discovery>>,
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
        server.transport_config(transport_accepting());
        let mut client = quinn::ClientConfig::new(Arc::new(configs.client));
        client.transport_config(transport_dialling());
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
        getrandom::fill(&mut boot_bytes).map_err(NetError::Random)?;
        let link_config = LinkConfig {
            local,
            name: settings.name.clone(),
            federation: settings.federation.clone(),
            allow: settings.allow.clone(),
            reconcile_every: settings.reconcile_every,
            upstream: false,
            boot: u64::from_le_bytes(boot_bytes),
            dial: 0,
            slice_items: LinkConfig::SLICE_ITEMS,
        };
        let registry = Registry::new(local, tag.clone(), settings.allow, settings.max_peers);
        let (ctx, dial_rx) = Context::new(
            link_config,
            writer,
            readers,
            stop.clone(),
            tasks.clone(),
            settings.peer_rate,
            registry,
            Queues {
                fanout: FANOUT_QUEUE,
                notices: NOTICE_QUEUE,
            },
        );
        let ctx = Arc::new(ctx);
        tasks.spawn(accept_loop(ctx.clone(), endpoint.clone()));
        let dialler = Dialler {
            endpoint: endpoint.clone(),
            client,
        };
        tasks.spawn(dialler::dial_loop(ctx.clone(), dialler, dial_rx));
        for peer in settings.static_peers {
            tasks.spawn(dialler::static_peer_loop(ctx.clone(), peer));
        }
        tasks.spawn(dialler::redial_loop(ctx.clone()));
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
                client.transport_config(transport_with(
                    Some(UPSTREAM_KEEP_ALIVE),
                    UPSTREAM_IDLE_TIMEOUT,
                ));
                let dialler = UpstreamDialler {
                    endpoint: endpoint.clone(),
                    client,
                };
                upstream::start(&ctx, &bridge, dialler);
                Some(bridge)
            }
            _ => None,
        };
        tasks.spawn(dialler::dial_known_peers(ctx.clone()));
        let discovery = if settings.mdns {
            let (discovery, sightings) = Discovery::start(
                local,
                &settings.name,
                &tag,
                local_addr.port(),
                settings.api_port,
                wan_interface.as_deref(),
            )?;
            tasks.spawn(dialler::sighting_loop(ctx.clone(), sightings));
            Some(discovery)
        } else {
            None
        };
        Ok(Federation {
            ctx,
            endpoint,
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
        self.ctx.registry.tag()
    }

    /// Carries files (`docs/FEDERATION.md`, "Files"): chunks are served from and fetched
    /// into `blobs`; `policy` says per room whether a file is fetched as soon as its message
    /// is stored ([`basis_proto::FilePolicy::Eager`]) or only by [`Federation::fetch_file`].
    /// Files the stored messages name are fetched at once where the policy says so (and a
    /// partly held file always), so a transfer a restart cut goes on. Links opened before
    /// the call carry files from their next turn on; a second call is ignored.
    pub fn attach_files(
        &self,
        blobs: Arc<basis_store::BlobStore>,
        policy: Box<crate::files::PolicyFn>,
    ) {
        let files = Arc::new(crate::files::Files::new(blobs, policy));
        if self.ctx.files.set(files.clone()).is_err() {
            return;
        }
        let events = self.ctx.events.subscribe();
        let stop = self.ctx.stop.clone();
        let readers = self.ctx.readers.clone();
        self.ctx
            .tasks
            .spawn(crate::files::run(files, readers, events, stop));
    }

    /// Fetches the file `blob` names from the linked peers (a client asked for it), going on
    /// from what is stored. Does nothing before [`Federation::attach_files`].
    pub fn fetch_file(&self, blob: basis_core::BlobRef) -> Result<(), basis_store::BlobError> {
        match self.ctx.files.get() {
            Some(files) => files.fetch(blob),
            None => Ok(()),
        }
    }

    /// Where this node's fetch of the file at `address` stands and how many of its chunks it
    /// holds, while one runs (`None` otherwise: `BlobStore::status` then says whether the
    /// file is here, partly here, or not yet on this node).
    pub fn file_progress(
        &self,
        address: &[u8; 32],
    ) -> Option<(basis_proto::FetchState, (u64, u64))> {
        self.ctx.files.get()?.progress(address)
    }

    /// Offers an event of `room` this node just stored (from a client) to every link.
    pub fn announce(&self, id: EventId, room: RoomId, bytes: &[u8]) {
        let _ = self.ctx.events.send(Arc::new(NewEvent {
            id,
            room,
            bytes: bytes.to_vec(),
            origin: None,
        }));
    }

    /// Sends a notice of one of this node's clients (typing, presence) to every linked node.
    pub fn send_notice(&self, notice: Notice) {
        let _ = self.ctx.notices_out.send(notice);
    }

    /// Notices from linked nodes for this node's clients, with the node that sent each.
    pub fn notices(&self) -> broadcast::Receiver<(NodeId, Notice)> {
        self.ctx.notices_in.subscribe()
    }

    /// Every known peer, connected ones first.
    pub fn peers(&self) -> Vec<PeerSnapshot> {
        self.ctx.registry.snapshot()
    }

    /// The upstream bridge as `basis status` shows it (None: no bridge configured).
    pub async fn bridge_status(&self) -> Option<BridgeSnapshot> {
        let bridge = self.bridge.clone()?;
        let readers = self.ctx.readers.clone();
        tokio::task::spawn_blocking(move || bridge.snapshot(&readers))
            .await
            .ok()
    }

    /// Withdraws the mDNS announcement and closes the endpoint (after links said goodbye).
    pub fn shutdown(&self) {
        if let Some(bridge) = &self.bridge {
            bridge.save();
        }
        let discovery = self
            .discovery
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(d) = discovery {
            d.stop();
        }
        self.endpoint
            .close(CloseCode::Shutdown.code().into(), b"node shutting down");
    }
}
