//! Dialling LAN peers: the dial queue, static peers (redialled with back-off), the peers
//! remembered in the store, peers whose link dropped, and nodes seen over mDNS.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use basis_core::NodeId;
use basis_proto::{CloseCode, Role};
use quinn::Endpoint;
use tokio::sync::mpsc;

use crate::addr::{StaticPeer, canonical};
use crate::closing::close;
use crate::context::{Context, Dial};
use crate::discovery::Sighting;
use crate::driver;
use crate::endpoint::{CONNECT_TIMEOUT, peer_of};
use crate::peers::Found;

/// Static peers are redialled after this, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between dials of a static peer that is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Most remembered peers dialled at start.
const KNOWN_PEERS_DIALLED: usize = 64;

/// What a dial needs: the endpoint and the client side of TLS.
#[derive(Clone)]
pub(crate) struct Dialler {
    pub endpoint: Endpoint,
    pub client: quinn::ClientConfig,
}

/// Takes dials off the queue, one task per dial, skipping peers linked, banned or already
/// being dialled at that address.
pub(crate) async fn dial_loop(
    ctx: Arc<Context>,
    dialler: Dialler,
    mut dials: mpsc::UnboundedReceiver<Dial>,
) {
    let dialling: Arc<Mutex<HashSet<SocketAddr>>> = Arc::default();
    loop {
        let dial = tokio::select! {
            () = ctx.stop.cancelled() => return,
            dial = dials.recv() => dial,
        };
        let Some(dial) = dial else { return };
        if dial.expected.is_some_and(|p| {
            p == ctx.local || ctx.registry.connected(&p) || ctx.registry.banned(&p).is_some()
        }) {
            continue;
        }
        // A static peer without a pinned id is dialled by address: not while linked there.
        if ctx.registry.linked_at(canonical(dial.addr)) {
            continue;
        }
        let addr = dial.addr;
        if !lock(&dialling).insert(addr) {
            continue;
        }
        let (ctx2, dialler2, dialling2) = (ctx.clone(), dialler.clone(), dialling.clone());
        ctx.tasks.spawn(async move {
            dial_one(&ctx2, &dialler2, dial).await;
            lock(&dialling2).remove(&addr);
        });
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn dial_one(ctx: &Arc<Context>, dialler: &Dialler, dial: Dial) {
    let Dial {
        addr,
        expected,
        found,
    } = dial;
    let connecting =
        match dialler
            .endpoint
            .connect_with(dialler.client.clone(), addr, "basis.invalid")
        {
            Ok(c) => c,
            Err(e) => return log::debug!("cannot dial {addr}: {e}"),
        };
    if let Some(peer) = expected {
        ctx.registry.dialling(peer, found, addr);
    }
    let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            if let Some(peer) = expected {
                ctx.registry.dial_failed(peer, e.to_string());
            }
            return log::debug!("dial {addr} failed: {e}");
        }
        Err(_) => {
            // Shown in `basis peers`: the peer stays "connecting" no longer than the dial.
            if let Some(peer) = expected {
                ctx.registry.dial_failed(
                    peer,
                    format!(
                        "no answer from {addr} within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    ),
                );
            }
            return log::debug!("dial {addr} timed out");
        }
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
        ctx.registry.unexpected_key(want, addr, peer);
        return close(&conn, CloseCode::UnexpectedKey, "unexpected node key");
    }
    // A peer configured by address only: not a second link to a node already linked.
    if expected.is_none() && ctx.registry.connected(&peer) {
        return close(&conn, CloseCode::Duplicate, "already linked");
    }
    ctx.registry.found(peer, found, addr);
    let Ok((send, recv)) = conn.open_bi().await else {
        return;
    };
    driver::run_lan(ctx.clone(), conn, Role::Dialer, peer, send, recv).await;
}

/// Keeps dialling a configured peer while it is not linked, with a pause that doubles.
pub(crate) async fn static_peer_loop(ctx: Arc<Context>, peer: StaticPeer) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let up = peer.expected.is_some_and(|p| ctx.registry.connected(&p));
        if !up {
            match tokio::net::lookup_host((peer.host.as_str(), peer.port)).await {
                Ok(addrs) => {
                    for addr in addrs {
                        ctx.dial(Dial {
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
            () = ctx.stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
    }
}

/// At start, dials the peers this node was linked with before (kept in the store), so that a
/// restarted node finds its federation even where mDNS does not reach.
pub(crate) async fn dial_known_peers(ctx: Arc<Context>) {
    let readers = ctx.readers.clone();
    let known = tokio::task::spawn_blocking(move || readers.known_peers(KNOWN_PEERS_DIALLED)).await;
    let Ok(Ok(known)) = known else {
        return log::warn!("cannot read the remembered peers");
    };
    for (node, addr) in known {
        let (node, Ok(addr)) = (NodeId(node), addr.parse::<SocketAddr>()) else {
            continue;
        };
        ctx.registry.found(node, Some(Found::Known), addr);
        ctx.dial(Dial {
            addr,
            expected: Some(node),
            found: Some(Found::Known),
        });
    }
}

/// Redials peers found by mDNS, peer exchange or memory whose link went down (a partition
/// that outlasted the idle timeout, a rebooted node), with a growing pause per peer.
pub(crate) async fn redial_loop(ctx: Arc<Context>) {
    let mut pause: HashMap<NodeId, (Instant, Duration)> = HashMap::new();
    loop {
        tokio::select! {
            () = ctx.stop.cancelled() => return,
            () = tokio::time::sleep(FIRST_BACKOFF) => {}
        }
        let now = Instant::now();
        let candidates = ctx.registry.redial_candidates();
        pause.retain(|peer, _| candidates.iter().any(|(c, _)| c == peer));
        for (peer, addrs) in candidates {
            let (next, wait) = pause.entry(peer).or_insert((now, FIRST_BACKOFF));
            if now < *next {
                continue;
            }
            *wait = (*wait * 2).min(MAX_BACKOFF);
            *next = now + *wait;
            for addr in addrs {
                ctx.dial(Dial {
                    addr,
                    expected: Some(peer),
                    found: None,
                });
            }
        }
    }
}

/// Dials each node of this federation that (re)appears on mDNS at once; others are shown
/// refused.
pub(crate) async fn sighting_loop(ctx: Arc<Context>, mut sightings: mpsc::Receiver<Sighting>) {
    loop {
        let sighting = tokio::select! {
            () = ctx.stop.cancelled() => return,
            s = sightings.recv() => s,
        };
        let Some(s) = sighting else { return };
        for addr in ctx.registry.sighted(&s).unwrap_or_default() {
            ctx.dial(Dial {
                addr,
                expected: Some(s.node),
                found: Some(Found::Mdns),
            });
        }
    }
}
