//! Pure logic of Basis: identifiers, keys, signed events, their canonical encoding,
//! validation and the hybrid logical clock.
//!
//! This crate knows nothing of tokio, SQLite or sockets (see `docs/ARCHITECTURE.md`), so it is
//! fast to test, easy to fuzz, and can later be compiled for a browser client.

pub mod auth;
pub mod body;
pub mod compact;
pub mod compose;
pub mod encoding;
pub mod error;
pub mod event;
pub mod file;
pub mod hlc;
pub mod ids;
pub mod keys;
pub mod limits;
pub mod room;
mod sig;
pub mod timeline;
pub mod validate;
pub mod vectors;

pub use body::{
    Body, FileManifest, History, KeyShare, MembershipAction, MessageBody, Profile, ReceiptKind,
    RoomCreate, RoomSettings, SealedKey,
};
pub use compose::Composer;
pub use error::EventError;
pub use event::{Event, EventContent, PROTOCOL_VERSION};
pub use file::{BlobRef, ChunkList, FileDescriptor, FileError, Preview, safe_file_name};
pub use hlc::{Clock, Timestamp};
pub use ids::{EventId, IdParseError, NodeId, RoomId, UserId, profile_room};
pub use keys::{KeyError, NodeKey, UserKey};
pub use room::Standing;
pub use validate::ValidEvent;
