//! The OpenAPI document the node serves at `/v1/openapi.json`, generated from the handlers.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use basis_api::events::*;
use basis_api::files::{FileInfo, FileState, Stalled};
use basis_api::node::*;
use basis_api::rooms::*;
use basis_api::sign_in::*;
use basis_api::stream::{Notice, NoticeKind, Presence, StreamMessage, StreamRequest};
use basis_api::users::*;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // The project has chosen no license yet: say nothing rather than an empty name.
        openapi.info.license = None;
    }
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Basis client API",
        description = "The API a Basis node serves to phones, laptops and the `basis` CLI. Sign in by signing a challenge with your user key; post events you signed yourself; upload and download files' encrypted chunks; read rooms, history, a sync feed and a live WebSocket stream. Errors are JSON objects with a `code` and a `message`.",
    ),
    paths(
        super::sign_in::challenge,
        super::sign_in::session,
        super::sign_in::sign_out,
        super::events::post_event,
        super::events::create_room,
        super::events::post_membership,
        super::rooms::list_rooms,
        super::rooms::get_room,
        super::rooms::history,
        super::rooms::room_state,
        super::sync::sync,
        super::stream::stream,
        super::users::get_user,
        super::files::put_list,
        super::files::put_chunk,
        super::files::get_file,
        super::files::get_chunk,
        super::files::get_data,
        super::node_info::status,
        super::node_info::peers,
        document,
    ),
    components(schemas(
        ErrorBody, ChallengeRequest, ChallengeReply, SessionRequest, SessionReply, PostEvent,
        Posted, ApiEvent, HistoryReply, StateReply, SyncReply, MemberInfo, RoomInfo, RoomList, UserInfo,
        PeerInfo, PeerList, NodeInfo, UpstreamInfo, Notice, StreamMessage, StreamRequest, Standing,
        History, PeerState, UpstreamState, NoticeKind, Presence,
        FileInfo, FileState, Stalled,
    )),
    servers((url = "/", description = "This node: the same origin as the page or client that fetched this document")),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Sign in and out"),
        (name = "events", description = "Post events and follow new ones"),
        (name = "rooms", description = "Rooms, members and history"),
        (name = "users", description = "Published profiles and keys"),
        (name = "files", description = "Upload and download files' encrypted chunks"),
        (name = "node", description = "The node itself"),
    )
)]
pub struct ApiDoc;

/// This document, as JSON.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "node",
    responses(
        (status = 200, description = "The OpenAPI document", content_type = "application/json"),
        (status = 429, description = "Too many requests", body = ErrorBody),
    ))]
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
