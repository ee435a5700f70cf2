//! The client API: HTTP/JSON and a WebSocket under `/v1/`, for phones, laptops and the
//! `basis` chat commands. `docs/CLIENT-API.md` describes it for client writers; the node
//! serves the OpenAPI document at `/v1/openapi.json`.

pub mod auth;
pub mod error;
pub mod events;
pub mod extract;
pub mod files;
pub mod index;
pub mod limit;
pub mod node_info;
pub mod openapi;
pub mod rooms;
pub mod sign_in;
pub mod stream;
pub mod sync;
pub mod types;
pub mod users;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use basis_config::ApiConfig;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::node::Node;
pub use error::ApiError;
use index::RoomIndex;

/// What the handlers share.
pub struct ApiState {
    /// The node.
    pub node: Arc<Node>,
    /// Rooms and profiles.
    pub index: Arc<RoomIndex>,
    /// The files messages name, for access checks.
    pub files: Arc<files::FileIndex>,
    /// Challenges and sessions.
    pub auth: auth::Auth,
    /// Rate limit per client address.
    pub limiter: limit::Limiter,
    /// Ephemeral notices between the WebSocket clients of this node.
    pub notices: broadcast::Sender<stream::Relayed>,
    /// Cancelled when the node stops.
    pub stop: CancellationToken,
}

/// Runs blocking work (SQLite reads) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "internal",
            format!("a worker task failed: {e}"),
        )
    })
}

/// Brings the room index up to date before answering from it. Only when a room-defining
/// event was committed since does this read the store, on a blocking thread; a post to a
/// busy room usually finds nothing to read and costs no hop between threads.
pub(crate) async fn current_index(state: &Arc<ApiState>) -> Result<(), ApiError> {
    if state.index.is_current() {
        return Ok(());
    }
    let index = state.index.clone();
    blocking(move || index.catch_up()).await??;
    Ok(())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found(
        "no_such_path",
        "no such API path; the list is at /v1/openapi.json",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take that method; see /v1/openapi.json",
    )
}

/// CORS for the configured web origins (none: no CORS headers, only same-origin pages).
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use axum::http::{HeaderValue, Method, header};
    if origins.is_empty() {
        return None;
    }
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(allowed)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::RANGE])
            .expose_headers([header::CONTENT_RANGE, header::ACCEPT_RANGES])
            .max_age(Duration::from_secs(3600)),
    )
}

/// The router with every route, limit and fallback; `cors_origins` may call it from pages
/// served elsewhere.
pub fn router(state: Arc<ApiState>, max_body: usize, cors_origins: &[String]) -> Router {
    let app = Router::new()
        .route("/", get(web::index))
        .route("/{file}", get(web::asset))
        .route("/v1/openapi.json", get(openapi::document))
        .route("/v1/status", get(node_info::status))
        .route("/v1/peers", get(node_info::peers))
        .route("/v1/auth/challenge", post(sign_in::challenge))
        .route(
            "/v1/auth/session",
            post(sign_in::session).delete(sign_in::sign_out),
        )
        .route("/v1/events", post(events::post_event))
        .route("/v1/sync", get(sync::sync))
        .route("/v1/stream", get(stream::stream))
        .route(
            "/v1/rooms",
            get(rooms::list_rooms).post(events::create_room),
        )
        .route("/v1/rooms/{room}", get(rooms::get_room))
        .route("/v1/rooms/{room}/events", get(rooms::history))
        .route("/v1/rooms/{room}/state", get(rooms::room_state))
        .route("/v1/rooms/{room}/members", post(events::post_membership))
        .route("/v1/users/{user}", get(users::get_user))
        .route("/v1/files/{address}", get(files::get_file))
        .route("/v1/files/{address}/list", put(files::put_list))
        .route(
            "/v1/files/{address}/chunks/{index}",
            get(files::get_chunk).put(files::put_chunk),
        )
        .route("/v1/files/{address}/data", get(files::get_data))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit::limit,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state);
    match cors(cors_origins) {
        Some(layer) => app.layer(layer),
        None => app,
    }
}

/// Binds the API's TCP listener. `[::]` falls back to `0.0.0.0` where IPv6 is off; a port in
/// use is said to be one, with the setting that moves it.
pub async fn bind(config: &ApiConfig) -> Result<TcpListener> {
    let addr: SocketAddr = config
        .listen
        .parse()
        .with_context(|| format!("api.listen {:?} is not ip:port", config.listen))?;
    let in_use = |addr: SocketAddr| {
        let mut other = addr;
        other.set_port(addr.port().wrapping_add(1).max(1));
        anyhow::anyhow!(
            "cannot listen for the client API on {addr}: the port is in use (by another basis node?); give this node another one with --set api.listen={other} (or turn the API off with --set api.enabled=false)"
        )
    };
    match TcpListener::bind(addr).await {
        Ok(l) => Ok(l),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(in_use(addr)),
        Err(e) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            let v4 = SocketAddr::from(([0, 0, 0, 0], addr.port()));
            log::warn!("api: cannot listen on {addr} ({e}); IPv6 may be off, using {v4}");
            match TcpListener::bind(v4).await {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(in_use(v4)),
                other => other.with_context(|| format!("cannot listen for the client API on {v4}")),
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen for the client API on {addr}")),
    }
}

/// The URLs clients on the LAN reach an API bound to `bound` at, such as
/// `http://192.168.1.20:7480/`: every address of the machine but loopback when it listens on
/// all of them (`[::]` takes IPv4 and IPv6, `0.0.0.0` IPv4 only), IPv4 first; loopback only
/// when there is no other address; never `[::]` or `0.0.0.0`.
pub fn reachable_urls(bound: SocketAddr) -> Vec<String> {
    let ips: Vec<std::net::IpAddr> = if bound.ip().is_unspecified() {
        let lan: Vec<_> = basis_net::Discovery::lan_addresses()
            .into_iter()
            .filter(|ip| bound.is_ipv6() || ip.is_ipv4())
            .collect();
        if lan.is_empty() {
            vec![std::net::Ipv4Addr::LOCALHOST.into()]
        } else {
            lan
        }
    } else {
        vec![bound.ip()]
    };
    ips.into_iter()
        .map(|ip| format!("http://{}/", SocketAddr::new(ip, bound.port())))
        .collect()
}

/// Passes notices from linked nodes to this node's WebSocket clients.
async fn relay_notices(
    state: Arc<ApiState>,
    mut from_peers: broadcast::Receiver<(basis_core::NodeId, basis_proto::Notice)>,
) {
    loop {
        tokio::select! {
            () = state.stop.cancelled() => return,
            n = from_peers.recv() => match n {
                Ok((_, n)) => {
                    let _ = state.notices.send(stream::relayed(n.user, n.room, n.kind));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Serves the API until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    config: ApiConfig,
    stop: CancellationToken,
) {
    let index = Arc::new(RoomIndex::new(
        node.readers().clone(),
        node.state_committed(),
    ));
    let warm = index.clone();
    match tokio::task::spawn_blocking(move || warm.catch_up()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::error!("api: cannot read rooms from the store: {e}"),
        Err(e) => log::error!("api: the room index task failed: {e}"),
    }
    let (notices, _) = broadcast::channel(256);
    let state = Arc::new(ApiState {
        auth: auth::Auth::new(node.id, Duration::from_secs(config.session_secs)),
        limiter: limit::Limiter::new(config.rate_per_sec, config.rate_burst),
        files: Arc::new(files::FileIndex::new(
            node.readers().clone(),
            node.committed(),
        )),
        node,
        index,
        notices,
        stop: stop.clone(),
    });
    if let Some(f) = state.node.federation() {
        tokio::spawn(relay_notices(state.clone(), f.notices()));
    }
    let max_body = usize::try_from(config.max_body_kib.saturating_mul(1024)).unwrap_or(usize::MAX);
    let app = router(state.clone(), max_body, &config.cors_origins);
    let forget = state.clone();
    let forget_stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = forget_stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(60)) => forget.limiter.forget_idle(),
            }
        }
    });
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(stop.cancelled_owned())
    .await;
    if let Err(e) = served {
        log::error!("api: the server stopped: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::reachable_urls;

    #[test]
    fn urls_name_addresses_clients_can_reach() {
        assert_eq!(
            reachable_urls("127.0.0.1:7480".parse().unwrap()),
            ["http://127.0.0.1:7480/"]
        );
        assert_eq!(
            reachable_urls("[2001:db8::7]:80".parse().unwrap()),
            ["http://[2001:db8::7]:80/"]
        );
        for any in ["[::]:7480", "0.0.0.0:7480"] {
            let urls = reachable_urls(any.parse().unwrap());
            assert!(!urls.is_empty(), "{any}");
            for url in &urls {
                assert!(
                    url.starts_with("http://") && url.ends_with(":7480/"),
                    "{url}"
                );
                assert!(!url.contains("[::]") && !url.contains("0.0.0.0"), "{url}");
            }
            let lan = basis_net::Discovery::lan_addresses();
            if lan.iter().any(|ip| ip.is_ipv4()) {
                assert!(!urls.iter().any(|u| u.contains("127.0.0.1")), "{urls:?}");
            }
        }
        // 0.0.0.0 takes no IPv6 connection: no IPv6 URL for it.
        assert!(
            !reachable_urls("0.0.0.0:7480".parse().unwrap())
                .iter()
                .any(|u| u.contains('['))
        );
    }
}
