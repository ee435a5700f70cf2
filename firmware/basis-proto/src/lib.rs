//! The Basis federation protocol as a sans-IO state machine.
//!
//! A [`link::Link`] is one admitted-or-not connection to a peer node. It takes the frames the
//! peer sent and the time, and returns [`link::Action`]s: frames to send, events to store,
//! events to stream to the peer, penalties. It never touches a socket, a clock or a database
//! itself, so it is tested with in-memory pipes and fuzzed directly; `basis-net` drives it over
//! QUIC. See `docs/FEDERATION.md` for the protocol. [`bridge_link::BridgeLink`] does the same
//! for a link to an upstream node, with the bridge's decisions on top (`docs/BRIDGE.md`).
//!
//! # How a driver calls a [`Link`]
//!
//! 1. [`Link::new`] once the connection is up and the peer's key is known; send the hello it
//!    returns before anything else.
//! 2. Then loop, handling one input at a time, in the order they happen:
//!    - each complete frame from the peer: [`Link::on_frame`];
//!    - when the time reaches [`Link::poll_timeout`] (ask again after every call that may
//!      change it, that is after every input): [`Link::on_tick`]. Sleep until then; there is
//!      nothing to do between deadlines without input;
//!    - a new event stored on this node: [`Link::push`]; a notice of this node's clients:
//!      [`Link::notice`]; when peers change: [`Link::share_peers`];
//!    - on an upstream link, the driver's own decisions: [`Link::reconcile_rooms`],
//!      [`Link::want`], [`Link::subscribe`] (a [`bridge_link::BridgeLink`] makes them).
//! 3. Carry out every returned [`Action`] in order before the next input:
//!    [`Action::Send`] frames go out in the order returned; [`Action::Store`] events are
//!    made durable, then [`Link::stored`] says what to acknowledge ([`Link::store_failed`] when
//!    they could not be). A driver may go on with later input while a store is under way, so
//!    that the next frame's signatures are checked while the last one's commit is written;
//!    it then reports on the stores in the order they were returned, and waits for the oldest
//!    whenever more are under way than [`Link::stores_allowed`]; [`Action::SendEvents`]
//!    are streamed newest first and reported with [`Link::sent`] once they went out;
//!    [`Action::Admitted`] is when the driver applies the one-link-per-pair rule
//!    ([`duplicate::keep`] with [`Link::facts`]); after [`Action::Close`] the link takes no
//!    more input: close the connection with the [`CloseCode`] that [`Link::refused_by_me`],
//!    [`Link::refused`] and [`Link::was_admitted`] call for.
//!
//! The link never blocks on I/O and never reads a clock: every method that needs the time takes it.
//! The one thing it does that takes long is checking signatures: a frame's events are checked on
//! every core at once ([`validation`]), the calling thread among them.
//!
//! # Files
//!
//! File chunks travel in [`frame::FileFrame`]s, which a link hands to its driver as
//! [`Action::File`]. A [`transfer::Fetch`] per file being fetched asks peers for chunks and
//! checks each against the file's content address; an [`outbox::Outbox`] per link answers
//! peers' wants and orders what goes out, messages before file data (the priority rule is
//! in [`outbox`]). [`FilePolicy`] says whether a room's files are fetched when their message
//! arrives or only when a client asks.

pub mod admission;
pub mod bridge;
pub mod bridge_link;
pub mod close;
pub mod duplicate;
pub mod file_policy;
pub mod frame;
pub mod limits;
pub mod link;
pub mod outbox;
pub mod recon;
pub mod reputation;
pub mod transfer;
pub mod validation;

pub use admission::{FederationKey, Proof, Role};
pub use bridge_link::{BridgeLink, BridgeRooms, BridgeStore};
pub use close::CloseCode;
pub use duplicate::{Keep, LinkEnd, LinkFacts};
pub use file_policy::FilePolicy;
pub use frame::{
    ChunkRange, FileFrame, FileHave, Frame, FrameError, Notice, NoticeKind, PeerInfo, Presence,
    Priority,
};
pub use link::{Action, ItemSource, Link, LinkConfig, Offer, Span};
pub use outbox::{Next, Outbox};
pub use reputation::Reputation;
pub use transfer::{BadData, Fetch, FetchAction, FetchState, PauseReason};

/// ALPN protocol id of Basis federation links.
pub const ALPN: &[u8] = b"basis/1";
/// Version of the federation protocol carried in the hello frame.
/// Version 3 added the `Stored` frame; version 4 the `File` frames (a version 3 node would
/// refuse them as malformed and count that against the sender, so the versions must not
/// link); version 5 the `CatchUp` frame; version 6 the `Slice` frame (a version 5 responder
/// would reconcile every event against one slice of the dialler's and report the rest as
/// missing); version 7 made `Peers` the complete list of the sender's links, sent also when
/// empty (a node does not push an event to a peer linked to the node it came from, so a
/// version 6 node's stale list would cost its peers those pushes); version 8 has the
/// accepting side answer the dialler's `CatchUp` with its own (a version 7 dialler would
/// close the link over it). A node never links with a node of another version.
pub const PROTOCOL_VERSION: u16 = 8;
