//! The node itself: status and peers, as clients see them.

use std::sync::Arc;

use axum::extract::State;

use super::ApiState;
use super::auth::SignedIn;
use super::error::ErrorBody;
use super::extract::ApiJson;
use basis_api::node::{NodeInfo, PeerInfo, PeerList, UpstreamInfo};

/// The node's id, name, version and clock. Needs no session.
#[utoipa::path(get, path = "/v1/status", tag = "node",
    responses(
        (status = 200, description = "The node", body = NodeInfo),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn status(State(state): State<Arc<ApiState>>) -> ApiJson<NodeInfo> {
    let s = state.node.status().await;
    let (wan, upstreams) = match &s.bridge {
        Some(b) => (
            Some(format!(
                "{} ({})",
                if b.wan.up { "up" } else { "down" },
                b.wan.detail
            )),
            b.upstreams
                .iter()
                .map(|u| UpstreamInfo {
                    node_id: u.node_id.clone(),
                    state: u.state,
                })
                .collect(),
        ),
        None => (None, Vec::new()),
    };
    ApiJson(NodeInfo {
        node_id: s.node_id,
        name: s.name,
        version: s.version,
        events: s.events,
        peers_connected: s.peers_connected as u64,
        uptime_secs: s.uptime_secs,
        time: state.node.now().0,
        wan,
        upstreams,
        max_file_bytes: state.node.files().map(|f| f.max_file_bytes),
    })
}

/// Other nodes this node knows, and whether it is linked to them now.
#[utoipa::path(get, path = "/v1/peers", tag = "node", security(("bearer" = [])),
    responses(
        (status = 200, description = "The peers", body = PeerList),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn peers(State(state): State<Arc<ApiState>>, _me: SignedIn) -> ApiJson<PeerList> {
    ApiJson(PeerList {
        peers: state
            .node
            .peers()
            .into_iter()
            .map(|p| PeerInfo {
                node_id: p.node_id,
                name: p.name,
                state: crate::control::wire::peer_state(p.state),
                rtt_ms: p.rtt_ms,
            })
            .collect(),
    })
}
