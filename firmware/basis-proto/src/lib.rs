//! The Basis federation protocol as a sans-IO state machine.
//!
//! A [`link::Link`] is one admitted-or-not connection to a peer node. It takes the frames the
//! peer sent and the time, and returns [`link::Action`]s: frames to send, events to store,
//! events to stream to the peer, penalties. It never touches a socket, a clock or a database
//! itself, so it is tested with in-memory pipes and fuzzed directly; `basis-net` drives it over
//! QUIC. See `docs/FEDERATION.md` for the protocol.

pub mod admission;
pub mod bridge;
pub mod bridge_link;
pub mod close;
pub mod duplicate;
pub mod frame;
pub mod limits;
pub mod link;
pub mod recon;
pub mod reputation;

pub use admission::{FederationKey, Proof, Role};
pub use bridge_link::{BridgeLink, BridgeRooms, BridgeStore};
pub use close::CloseCode;
pub use duplicate::{Keep, LinkEnd, LinkFacts};
pub use frame::{Frame, FrameError, Notice, NoticeKind, PeerInfo, Presence};
pub use link::{Action, ItemSource, Link, LinkConfig};
pub use reputation::Reputation;

/// ALPN protocol id of Basis federation links.
pub const ALPN: &[u8] = b"basis/1";
/// Version of the federation protocol carried in the hello frame.
/// Version 3 added the `Stored` frame; a node never links with a node of another version.
pub const PROTOCOL_VERSION: u16 = 3;
