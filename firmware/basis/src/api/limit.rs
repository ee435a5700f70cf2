//! Per-client-address request rate limit (a token bucket per IP address).

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiState;
use super::error::ApiError;

/// The limiter: `rate` requests per second per address, bursts of `burst`.
pub struct Limiter(DefaultKeyedRateLimiter<IpAddr>);

impl Limiter {
    /// A limiter with these numbers (zero is taken as one).
    pub fn new(rate: u32, burst: u32) -> Limiter {
        let one = NonZeroU32::MIN;
        let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(one))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(one));
        Limiter(RateLimiter::keyed(quota))
    }

    /// Forgets addresses that have been quiet long enough to be full again.
    pub fn forget_idle(&self) {
        self.0.retain_recent();
    }
}

/// Middleware: refuse with 429 once an address is over its rate.
pub async fn limit(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if state.limiter.0.check_key(&peer.ip()).is_err() {
        return ApiError::too_many(
            "rate_limited",
            "too many requests from this address; slow down",
        )
        .into_response();
    }
    next.run(request).await
}
