//! Sign-in endpoints: challenge, session, sign-out.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use basis_core::UserId;

use super::ApiState;
use super::auth::{CHALLENGE_TTL, SignedIn, hex_field};
use super::error::{ApiError, ErrorBody};
use super::extract::ApiJson;
use basis_api::sign_in::{ChallengeReply, ChallengeRequest, SessionReply, SessionRequest};

use super::types::parse_id;

/// Get a fresh challenge to sign with your user key.
#[utoipa::path(post, path = "/v1/auth/challenge", tag = "auth", request_body = ChallengeRequest,
    responses(
        (status = 200, description = "A challenge, valid once for a minute", body = ChallengeReply),
        (status = 400, description = "Bad user id", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn challenge(
    State(state): State<Arc<ApiState>>,
    ApiJson(req): ApiJson<ChallengeRequest>,
) -> Result<ApiJson<ChallengeReply>, ApiError> {
    let user: UserId = parse_id("user", &req.user)?;
    let c = state.auth.challenge(user)?;
    Ok(ApiJson(ChallengeReply {
        challenge: hex::encode(c),
        node_id: state.node.id.to_string(),
        expires_in_secs: CHALLENGE_TTL.as_secs(),
    }))
}

/// Trade a signed challenge for a session token.
#[utoipa::path(post, path = "/v1/auth/session", tag = "auth", request_body = SessionRequest,
    responses(
        (status = 200, description = "Signed in", body = SessionReply),
        (status = 400, description = "Malformed request", body = ErrorBody),
        (status = 401, description = "Unknown, spent or expired challenge, or a bad signature", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn session(
    State(state): State<Arc<ApiState>>,
    ApiJson(req): ApiJson<SessionRequest>,
) -> Result<ApiJson<SessionReply>, ApiError> {
    let user: UserId = parse_id("user", &req.user)?;
    let challenge = hex_field::<32>("challenge", &req.challenge)?;
    let signature = hex_field::<64>("signature", &req.signature)?;
    let (token, ttl) = state.auth.sign_in(user, challenge, signature)?;
    log::info!("api: user {} signed in", user.short());
    Ok(ApiJson(SessionReply {
        token,
        user: user.to_string(),
        expires_in_secs: ttl.as_secs(),
    }))
}

/// End this session: the token stops working at once.
#[utoipa::path(delete, path = "/v1/auth/session", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn sign_out(State(state): State<Arc<ApiState>>, me: SignedIn) -> StatusCode {
    state.auth.revoke(&me.token);
    StatusCode::NO_CONTENT
}
