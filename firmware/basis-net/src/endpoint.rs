//! The QUIC endpoint: its transport settings, binding the UDP port, the peer's node key of a
//! connection, and the accept loop that hands each admitted-to-be connection to a driver.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use basis_core::NodeId;
use basis_proto::{CloseCode, Role};
use quinn::{Connection, Endpoint, TransportConfig};

use crate::addr::canonical;
use crate::closing::close;
use crate::context::Context;
use crate::driver;
use crate::error::NetError;
use crate::peers::Found;
use crate::tls;

/// QUIC keep-alive on the LAN, sent by the dialling side only (the peer's acknowledgement
/// keeps the dialler's idle timer going): well inside the idle timeout, so a quiet link stays
/// up, at a few dozen bytes every 3 s per link. A keep-alive and its acknowledgement are most
/// of a settled node's traffic on a large LAN (49 links on 50 nodes: ~1.4 kB/s); from both
/// sides they were ~8 % more.
const KEEP_ALIVE: Duration = Duration::from_secs(3);
/// A LAN link silent this long is dead. QUIC starts the idle timer again when a packet
/// arrives and when the dialler sends its keep-alive, so a peer that vanished without a
/// goodbye is shown disconnected at most `KEEP_ALIVE + IDLE_TIMEOUT` = 15 s after it last
/// spoke, on either side (`docs/FEDERATION.md`).
const IDLE_TIMEOUT: Duration = Duration::from_secs(12);
/// Keep-alive on an upstream link: a WAN may be metered, yet a dead upstream node (one that
/// restarted without saying goodbye) must be noticed well before the LAN's timeout.
pub(crate) const UPSTREAM_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// An upstream link silent this long is dead.
pub(crate) const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest wait for a handshake.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The transport settings of links this node dials on the LAN.
pub(crate) fn transport_dialling() -> Arc<TransportConfig> {
    transport_with(Some(KEEP_ALIVE), IDLE_TIMEOUT)
}

/// The transport settings of links this node accepts (from LAN peers and from gateways
/// bridging to it): the dialling side keeps them alive.
pub(crate) fn transport_accepting() -> Arc<TransportConfig> {
    transport_with(None, IDLE_TIMEOUT)
}

/// Transport settings with this keep-alive (`None`: none) and idle timeout.
pub(crate) fn transport_with(keep_alive: Option<Duration>, idle: Duration) -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(keep_alive);
    // Seconds fit in a VarInt, so the conversion cannot fail.
    t.max_idle_timeout(idle.try_into().ok());
    t.max_concurrent_bidi_streams(4u32.into());
    t.max_concurrent_uni_streams(0u32.into());
    Arc::new(t)
}

/// Binds the endpoint on `port` of every address, IPv6 (with IPv4 mapped) when it can.
pub(crate) fn bind(server: quinn::ServerConfig, port: u16) -> Result<Endpoint, NetError> {
    let v6 = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port);
    match Endpoint::server(server.clone(), v6) {
        Ok(e) => Ok(e),
        Err(_) => Endpoint::server(server, SocketAddr::from(([0, 0, 0, 0], port)))
            .map_err(|source| NetError::Bind { port, source }),
    }
}

/// The node id the peer proved in TLS (its raw public key).
pub(crate) fn peer_of(conn: &Connection) -> Option<NodeId> {
    let identity = conn.peer_identity()?;
    let certs = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    tls::node_id_of(certs.first()?.as_ref())
}

/// Accepts connections until the node stops; each becomes a LAN link's driver once its peer
/// is known, not banned and not one too many.
pub(crate) async fn accept_loop(ctx: Arc<Context>, endpoint: Endpoint) {
    loop {
        let incoming = tokio::select! {
            () = ctx.stop.cancelled() => return,
            incoming = endpoint.accept() => incoming,
        };
        let Some(incoming) = incoming else { return };
        let ctx2 = ctx.clone();
        ctx.tasks.spawn(async move {
            let remote = canonical(incoming.remote_address());
            let conn = match tokio::time::timeout(CONNECT_TIMEOUT, async { incoming.await }).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return log::debug!("handshake from {remote} failed: {e}"),
                Err(_) => return log::debug!("handshake from {remote} timed out"),
            };
            let Some(peer) = peer_of(&conn) else {
                return close(&conn, CloseCode::Unusable, "no node key");
            };
            if let Some(reason) = ctx2.registry.banned(&peer) {
                log::info!(
                    "refused node {} at {remote}: banned for {reason}",
                    peer.short()
                );
                return close(&conn, CloseCode::Banned, "banned for misbehaving");
            }
            if ctx2.registry.full_for(&peer) {
                return close(&conn, CloseCode::TooManyPeers, "too many peers");
            }
            ctx2.registry.found(peer, Some(Found::Inbound), remote);
            let streams = tokio::time::timeout(CONNECT_TIMEOUT, conn.accept_bi()).await;
            let Ok(Ok((send, recv))) = streams else {
                return close(&conn, CloseCode::Unusable, "no link stream");
            };
            driver::run_lan(ctx2, conn, Role::Acceptor, peer, send, recv).await;
        });
    }
}
