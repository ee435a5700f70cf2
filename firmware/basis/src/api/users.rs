//! Users' published profiles (display name and key-agreement key).

use std::sync::Arc;

use axum::extract::State;
use basis_core::UserId;

use super::auth::SignedIn;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use basis_api::users::UserInfo;

use super::types::{parse_id, user_info};
use super::{ApiState, current_index};

/// A user's newest profile as this node holds it. Publish your own by posting a profile event
/// to `/v1/events`.
#[utoipa::path(get, path = "/v1/users/{user}", tag = "users", security(("bearer" = [])),
    params(("user" = String, Path, pattern = "^[0-9a-fA-F]{64}$", description = "User id, 64 hex characters")),
    responses(
        (status = 200, description = "The profile", body = UserInfo),
        (status = 400, description = "Bad user id", body = ErrorBody),
        (status = 401, description = "No valid session", body = ErrorBody),
        (status = 404, description = "No profile of this user on this node", body = ErrorBody),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn get_user(
    State(state): State<Arc<ApiState>>,
    ApiPath(user): ApiPath<String>,
    _me: SignedIn,
) -> Result<ApiJson<UserInfo>, ApiError> {
    let user: UserId = parse_id("user", &user)?;
    current_index(&state).await?;
    let p = state.index.profile(&user).ok_or_else(|| {
        ApiError::not_found(
            "unknown_user",
            "this node holds no profile of that user (not published yet, or not synced here yet)",
        )
    })?;
    Ok(ApiJson(user_info(&user, &p)))
}
