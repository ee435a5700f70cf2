//! The wire types of Basis's two interfaces, apart from the node that serves them and the
//! store behind it, so that the node and its clients share one definition:
//!
//! - the **client API** (HTTP/JSON and the `/v1/stream` WebSocket, described by the node's
//!   OpenAPI document): [`sign_in`], [`events`], [`files`], [`rooms`], [`users`], [`node`],
//!   [`stream`], [`error`];
//! - the **admin socket** (newline-delimited JSON on a Unix socket in the data directory,
//!   used by `basis status`, `basis peers` and `basis dev append`): [`admin`].
//!
//! These types are what goes over the wire, nothing else: the node converts its internal
//! state into them, so renaming an internal field never changes what a client reads.
//! States and reasons are enums that serialise as the words the API documents.

pub mod admin;
pub mod error;
pub mod events;
pub mod files;
pub mod node;
pub mod rooms;
pub mod sign_in;
pub mod stream;
pub mod users;
