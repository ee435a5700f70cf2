//! Limits of the federation protocol.

/// Largest frame a node sends or accepts, in bytes (a batch of events or a reconciliation
/// message). A peer that sends a larger one is cut off.
pub const MAX_FRAME: usize = 1024 * 1024;
/// Most bytes of events put in one `Events` frame.
pub const EVENTS_FRAME_BYTES: usize = 512 * 1024;
/// Most ids in one `Want` frame.
pub const WANT_FRAME_IDS: usize = 8192;
/// Most ids one peer may ask for in one round before `WantEnd`.
pub const MAX_WANTED: usize = 4_000_000;
/// Limit negentropy messages to this many bytes (it splits its work across more rounds).
pub const RECON_FRAME_BYTES: u64 = 60_000;
/// Most reconciliation round trips in one session before it is given up as misbehaving.
/// An empty node catching up needs every id of its peer, 32 bytes each, at most
/// [`RECON_FRAME_BYTES`] a message: about one round per 1 800 events, so 8 192 rounds cover a
/// peer with some 15 million events. (It was 64, which banned an honest newcomer to a node
/// of 120 000 events or more; `basis bench --full` found it.) A peer that drags a session
/// out is still bounded: each round is one message of at most 60 kB.
pub const MAX_RECON_ROUNDS: u32 = 8192;
/// Most items (held events) in one slice of a reconciliation session on a LAN link. A
/// session reconciles the events up to the dialler's newest slice by slice, oldest first
/// (`Frame::Slice`), and each side holds only the current slice's `(timestamp, id)` items,
/// 40 bytes each: about 3.8 MiB for a slice instead of 38 MiB for a million events held.
pub const SLICE_ITEMS: usize = 100_000;
/// Stores of received frames a LAN link lets its driver keep under way beyond the one it
/// waits for (see [`crate::link::Link::stores_allowed`]).
pub const STORES_UNDER_WAY: usize = 2;
/// Least time between two `CatchUp` frames on one link. A dialler sends one per session, and
/// sessions are at least 5 s apart (`federation.reconcile_secs`); a peer that asks sooner
/// would have the node read its whole store again and again for two bytes a time, and is
/// cut off.
pub const CATCH_UP_MIN_GAP: std::time::Duration = std::time::Duration::from_secs(4);
/// Ids remembered per link as known to the peer, so live pushes are not echoed.
pub const RECENT_IDS: usize = 8192;
/// Most peers listed in one peer-exchange frame.
pub const MAX_PEERS_SHARED: usize = 64;
/// Most addresses per shared peer.
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Most notices (typing, presence) taken from one peer per second; more are dropped.
pub const NOTICES_PER_SEC: u32 = 50;
/// Most rooms named in one `Subscribe` or `Scope` frame.
pub const MAX_SCOPE_ROOMS: usize = 1024;
/// Most files named in one `FileFrame::Have`.
pub const MAX_FILES_PER_HAVE: usize = 256;
/// Most ranges in one `FileFrame::Want`, `Have` entry or `Lacks`.
pub const MAX_RANGES: usize = 1024;
/// Most chunks a peer may have asked for and not yet received on one link; more are
/// answered with `Lacks` (about 64 MiB of 256 KiB chunks, and only their indices are queued).
pub const MAX_QUEUED_CHUNKS: usize = 256;
