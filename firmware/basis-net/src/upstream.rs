//! Dialling the upstream nodes: while the WAN is up, keeps a link to each configured upstream
//! node and runs it through the connection driver, where the bridge's state machine
//! ([`basis_proto::bridge_link`]) decides what crosses; the shared state and status are in
//! `bridge`.
//!
//! An upstream link is an ordinary federation link on the upstream side. A sync cut halfway
//! resumes at the next link with a fresh reconciliation, which finds exactly what is still
//! missing; content addressing makes a repeat harmless.

use std::sync::Arc;
use std::time::Duration;

use basis_core::NodeId;
use basis_proto::CloseCode;
use quinn::{Connection, Endpoint};

use crate::addr::StaticPeer;
use crate::bridge::{Attempt, Bridge, UpstreamState, state_after};
use crate::closing::close;
use crate::context::Context;
use crate::driver;
use crate::endpoint::{CONNECT_TIMEOUT, peer_of};

/// First wait before dialling an upstream node again; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between dials while the WAN is up: an upstream node that restarted is
/// found again within this long.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What dialling an upstream node needs: the endpoint and the client side of TLS with the
/// upstream keep-alive.
#[derive(Clone)]
pub(crate) struct UpstreamDialler {
    pub endpoint: Endpoint,
    pub client: quinn::ClientConfig,
}

/// Starts one task per upstream node.
pub(crate) fn start(ctx: &Arc<Context>, bridge: &Arc<Bridge>, dialler: UpstreamDialler) {
    for peer in bridge.peers().to_vec() {
        ctx.tasks.spawn(peer_loop(
            ctx.clone(),
            bridge.clone(),
            peer,
            dialler.clone(),
        ));
    }
}

/// Keeps one upstream node linked while the WAN is up.
async fn peer_loop(
    ctx: Arc<Context>,
    bridge: Arc<Bridge>,
    peer: StaticPeer,
    dialler: UpstreamDialler,
) {
    let Some(id) = peer.expected else {
        return log::warn!(
            "upstream peer {} has no pinned node id; not bridging with it",
            peer.host
        );
    };
    let mut wan = bridge.wan.clone();
    let mut backoff = FIRST_BACKOFF;
    let mut last_failure: Option<String> = None;
    loop {
        if !wan.borrow_and_update().up {
            last_failure = None;
            bridge.set_state(id, UpstreamState::WaitingForWan, None);
            tokio::select! {
                () = ctx.stop.cancelled() => return,
                changed = wan.changed() => if changed.is_err() { return },
            }
            backoff = FIRST_BACKOFF;
            continue;
        }
        // While retrying an upstream node that does not answer, status keeps saying so.
        if last_failure.is_none() {
            bridge.set_state(id, UpstreamState::Linking, None);
        }
        let attempt = match connect(&dialler, &peer, id).await {
            Ok(conn) => {
                driver::run_upstream(&ctx, &bridge, id, conn, wan.clone(), CONNECT_TIMEOUT).await
            }
            Err(reason) => (false, Attempt::NoAnswer(reason)),
        };
        bridge.save();
        let (linked, attempt) = attempt;
        let reason = match &attempt {
            Attempt::Stopped => {
                return log::info!(
                    "upstream node {} unlinked: this node is stopping",
                    id.short()
                );
            }
            Attempt::NoAnswer(r) | Attempt::NotAdmitted(r) | Attempt::Ended(r) => r.clone(),
        };
        let state = if wan.borrow().up {
            state_after(&attempt)
        } else {
            UpstreamState::WaitingForWan
        };
        bridge.set_state(id, state, Some(reason.clone()));
        if linked {
            log::info!("upstream node {} unlinked: {reason}", id.short());
            backoff = FIRST_BACKOFF;
            last_failure = None;
        } else {
            // Said once per cause, not every few seconds for as long as it lasts.
            if last_failure.as_deref() != Some(reason.as_str()) {
                log::info!(
                    "upstream node {} not linked: {reason} (retrying every {} s at most)",
                    id.short(),
                    MAX_BACKOFF.as_secs()
                );
            } else {
                log::debug!("upstream node {} still not linked: {reason}", id.short());
            }
            last_failure = Some(reason);
        }
        tokio::select! {
            () = ctx.stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
            _ = wan.changed() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(
    dialler: &UpstreamDialler,
    peer: &StaticPeer,
    id: NodeId,
) -> Result<Connection, String> {
    let addrs: Vec<_> = tokio::net::lookup_host((peer.host.as_str(), peer.port))
        .await
        .map_err(|e| format!("cannot resolve {}: {e}", peer.host))?
        .collect();
    let mut last = format!("{} resolved to no address", peer.host);
    for addr in addrs {
        let connecting =
            match dialler
                .endpoint
                .connect_with(dialler.client.clone(), addr, "basis.invalid")
            {
                Ok(c) => c,
                Err(e) => {
                    last = format!("cannot dial {addr}: {e}");
                    continue;
                }
            };
        let conn = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                last = format!("{addr}: {e}");
                continue;
            }
            Err(_) => {
                last = format!("{addr}: no answer within {} s", CONNECT_TIMEOUT.as_secs());
                continue;
            }
        };
        match peer_of(&conn) {
            Some(got) if got == id => return Ok(conn),
            got => {
                close(&conn, CloseCode::UnexpectedKey, "unexpected node key");
                last = format!(
                    "{addr} is node {}, not the pinned {}",
                    got.map_or_else(|| "?".into(), |g| g.short()),
                    id.short()
                );
            }
        }
    }
    Err(last)
}
