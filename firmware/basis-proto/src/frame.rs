//! Frames exchanged on a link, encoded with postcard. Framing (a length before each frame)
//! is the transport's job; a frame here is one complete message.

use std::net::SocketAddr;

use basis_core::{EventId, NodeId, RoomId, UserId};
use serde::{Deserialize, Serialize};

use crate::limits::{MAX_FRAME, MAX_RANGES};

/// A peer a node knows, shared in peer exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's node id.
    pub node: NodeId,
    /// Addresses it was reached at.
    pub addrs: Vec<SocketAddr>,
}

/// A user's presence, as their client reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Presence {
    /// Using a client now.
    Online,
    /// Idle.
    Away,
    /// Closed their client.
    Offline,
}

/// What an ephemeral notice says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoticeKind {
    /// Started (true) or stopped (false) typing in the notice's room.
    Typing(bool),
    /// Presence changed.
    Presence(Presence),
}

/// An ephemeral notice for clients (typing, presence), relayed from the node where the user
/// is signed in to the nodes it is linked with. Never stored and never forwarded further:
/// on a LAN every node links every other. It is vouched for by the admitted node that sends
/// it, not signed by the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Whose notice.
    pub user: UserId,
    /// The room, for typing.
    pub room: Option<RoomId>,
    /// What it says.
    pub kind: NoticeKind,
}

/// One message on a link. Variant order is wire format: append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame each side sends: who it is and its proof of membership.
    Hello {
        /// Protocol version.
        version: u16,
        /// Sender's node id (must match its TLS key).
        node: NodeId,
        /// Sender's human name.
        name: String,
        /// Admission proof (all zero when the sender has no federation secret).
        proof: [u8; 32],
        /// A random number the sender drew when its process started: a different boot on a
        /// new link means the peer restarted (see [`crate::duplicate`]).
        boot: u64,
        /// The dialler's number for this dial, growing with each dial of its process (0 from
        /// the accepting side).
        dial: u64,
    },
    /// The peers the sender is linked to now (peer exchange), all of them up to
    /// [`crate::limits::MAX_PEERS_SHARED`], sent again when they change, also when none are
    /// left (protocol version 7): live pushes rely on it.
    Peers(Vec<PeerInfo>),
    /// A negentropy reconciliation message.
    Recon(Vec<u8>),
    /// The initiator finished reconciling; the responder may drop its state.
    ReconEnd,
    /// Ids the sender wants; more `Want` frames may follow until `WantEnd`.
    Want(Vec<EventId>),
    /// End of a want list: the receiver sends the wanted events, newest first.
    WantEnd,
    /// Events (wire bytes), pushed live or sent for a want list.
    Events(Vec<Vec<u8>>),
    /// The sender is closing the link, and why.
    Bye(String),
    /// An ephemeral notice for clients (typing, presence).
    Notice(Notice),
    /// The sender wants live pushes only of events in these rooms (an upstream bridge sends
    /// it); a link that never receives one pushes every event. A later one replaces it.
    Subscribe(Vec<RoomId>),
    /// The next reconciliation session, until `ReconEnd`, covers only events of these rooms
    /// (sent by the initiator before its first `Recon`).
    Scope(Vec<RoomId>),
    /// The sender has stored the events of the `n`-th `Events` frame it received on this link
    /// (counting from 1). Sent only to a peer that sent a `Scope` (an upstream bridge), which
    /// counts an event as crossed, charges its budget and advances its sync mark by it.
    Stored(u64),
    /// File transfer (protocol version 4): what chunks a node holds, asks for and sends.
    File(FileFrame),
    /// Sent by the dialling side of a LAN link before the first `Recon` of the link's first
    /// session: the newest timestamp it holds (`None`: it holds no events at all). The
    /// receiver sends every event newer than that (everything, for `None`) newest first, as
    /// for a want list, and answers with a `CatchUp` of its own newest, which the dialler
    /// serves the same way (protocol version 8). The session then reconciles only the events
    /// up to the older of the two; when either side held nothing no session follows. A node
    /// that was away gets what it missed in one round trip, whichever side dialled, where
    /// negentropy would list every id, 60 kB a round (protocol version 5).
    CatchUp(Option<u64>),
    /// Sent by the dialling side of a LAN link before the first `Recon` of each slice of a
    /// session: the `Recon` messages that follow, until the next `Slice` or `ReconEnd`,
    /// reconcile only the events with a timestamp from `from` to `to` (both included). A
    /// session covers the events up to the dialler's newest in slices of about
    /// [`crate::limits::SLICE_ITEMS`] of the dialler's events, oldest first, so neither side
    /// holds more than a slice's items at a time (protocol version 6).
    Slice {
        /// The oldest timestamp in the slice.
        from: u64,
        /// The newest timestamp in the slice.
        to: u64,
    },
    /// Sent after the last `Events` frame streamed for a `CatchUp` (also when reading the
    /// store failed part way): the dialler starts no new session while a catch-up is still
    /// arriving, or the session would find everything not yet received missing and ask for
    /// it a second time (protocol version 6).
    CatchUpEnd,
}

/// Chunks `start..end` (half-open, 0-based) of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChunkRange {
    /// First chunk.
    pub start: u64,
    /// One past the last chunk.
    pub end: u64,
}

impl ChunkRange {
    /// The indices of the range (none when `end <= start`).
    pub fn indices(&self) -> std::ops::Range<u64> {
        self.start..self.end.max(self.start)
    }

    /// Number of chunks in the range.
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no chunk.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorted indices gathered into the fewest ranges.
    pub fn from_indices(indices: impl IntoIterator<Item = u64>) -> Vec<ChunkRange> {
        let mut out: Vec<ChunkRange> = Vec::new();
        for i in indices {
            match out.last_mut() {
                Some(r) if r.end == i => r.end = i + 1,
                _ => out.push(ChunkRange {
                    start: i,
                    end: i + 1,
                }),
            }
        }
        out
    }
}

/// Which chunks of one file a node holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileHave {
    /// The file's content address.
    pub address: [u8; 32],
    /// The chunks held (the list is held whenever any chunk is).
    pub ranges: Vec<ChunkRange>,
}

/// A file-transfer message (`docs/FEDERATION.md`, "Files"). Variant order is wire format:
/// append only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileFrame {
    /// The sender holds these chunks (an announcement; a node sends it when a file becomes
    /// complete or a peer asks for one it lacks). At most [`crate::limits::MAX_FILES_PER_HAVE`]
    /// files.
    Have(Vec<FileHave>),
    /// Asks for a file's chunk list (when `list`) and these chunks. At most
    /// [`crate::limits::MAX_RANGES`] ranges.
    Want {
        /// The file's content address.
        address: [u8; 32],
        /// Send the chunk list too.
        list: bool,
        /// The chunks wanted.
        ranges: Vec<ChunkRange>,
    },
    /// A file's chunk list (`docs/PROTOCOL.md` §9.2), answering a `Want`.
    List {
        /// The file's content address.
        address: [u8; 32],
        /// The encoded list.
        bytes: Vec<u8>,
    },
    /// One ciphertext chunk, answering a `Want`.
    Chunk {
        /// The file's content address.
        address: [u8; 32],
        /// Its index in the file.
        index: u64,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// The sender cannot send these (it does not hold them, or too much is asked at once):
    /// ask another peer, or later. `list` true: it does not hold the list either.
    Lacks {
        /// The file's content address.
        address: [u8; 32],
        /// The list was asked for and is not held.
        list: bool,
        /// The chunks it cannot send.
        ranges: Vec<ChunkRange>,
    },
}

/// Which queue a frame waits in on a link (see [`crate::outbox`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Everything but file data: hello, reconciliation, events, notices, and the small
    /// file control frames (`Have`, `Want`, `Lacks`). Always sent first.
    Message,
    /// File data (`List`, `Chunk`): sent only when no message frame waits.
    File,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Larger than [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME}")]
    Oversize(usize),
    /// Not a valid frame.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl FileFrame {
    /// Why this frame breaks the protocol's limits, if it does: a `Want` of more than
    /// [`MAX_RANGES`] ranges. The link that received it closes (`docs/FEDERATION.md`, "Files").
    pub fn violation(&self) -> Option<String> {
        match self {
            FileFrame::Want { ranges, .. } if ranges.len() > MAX_RANGES => {
                Some(format!("a file want of {} ranges", ranges.len()))
            }
            _ => None,
        }
    }
}

impl Frame {
    /// Encodes the frame.
    pub fn encode(&self) -> Vec<u8> {
        // postcard fails only for serde features these types do not use.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Decodes a frame, refusing oversize input and trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Frame, FrameError> {
        if bytes.len() > MAX_FRAME {
            return Err(FrameError::Oversize(bytes.len()));
        }
        let (frame, rest) = postcard::take_from_bytes::<Frame>(bytes)
            .map_err(|e| FrameError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(FrameError::Malformed(format!(
                "{} bytes after the frame",
                rest.len()
            )));
        }
        Ok(frame)
    }

    /// A short name for logs and counters.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Peers(_) => "peers",
            Frame::Recon(_) => "recon",
            Frame::ReconEnd => "recon-end",
            Frame::Want(_) => "want",
            Frame::WantEnd => "want-end",
            Frame::Events(_) => "events",
            Frame::Bye(_) => "bye",
            Frame::Notice(_) => "notice",
            Frame::Subscribe(_) => "subscribe",
            Frame::Scope(_) => "scope",
            Frame::Stored(_) => "stored",
            Frame::File(FileFrame::Have(_)) => "file-have",
            Frame::File(FileFrame::Want { .. }) => "file-want",
            Frame::File(FileFrame::List { .. }) => "file-list",
            Frame::File(FileFrame::Chunk { .. }) => "file-chunk",
            Frame::File(FileFrame::Lacks { .. }) => "file-lacks",
            Frame::CatchUp(_) => "catch-up",
            Frame::Slice { .. } => "slice",
            Frame::CatchUpEnd => "catch-up-end",
        }
    }

    /// The queue this frame waits in on a link: file data behind everything else.
    pub fn priority(&self) -> Priority {
        match self {
            Frame::File(FileFrame::List { .. } | FileFrame::Chunk { .. }) => Priority::File,
            _ => Priority::Message,
        }
    }
}

/// Bytes one event of `len` bytes adds to an `Events` frame: the event and postcard's
/// varint length before it.
pub fn event_cost(len: usize) -> usize {
    let mut prefix = 1;
    let mut rest = len >> 7;
    while rest > 0 {
        prefix += 1;
        rest >>= 7;
    }
    len + prefix
}

/// Packs events into `Events` frames holding at most `limit` bytes of events each (a single
/// larger event still gets a frame of its own).
#[derive(Debug)]
pub struct EventsBatch {
    limit: usize,
    size: usize,
    events: Vec<Vec<u8>>,
}

impl EventsBatch {
    /// An empty batch for frames of at most `limit` bytes of events.
    pub fn new(limit: usize) -> EventsBatch {
        EventsBatch {
            limit,
            size: 0,
            events: Vec::new(),
        }
    }

    /// Whether an event of `len` bytes still fits in this frame.
    pub fn fits(&self, len: usize) -> bool {
        self.events.is_empty() || self.size + event_cost(len) <= self.limit
    }

    /// Adds an event (whether or not it [fits](EventsBatch::fits): the caller decides).
    pub fn push(&mut self, event: Vec<u8>) {
        self.size += event_cost(event.len());
        self.events.push(event);
    }

    /// Whether the batch holds no event.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The frame of the events gathered so far, leaving the batch empty (`None` when empty).
    pub fn take(&mut self) -> Option<Frame> {
        self.size = 0;
        (!self.events.is_empty()).then(|| Frame::Events(std::mem::take(&mut self.events)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let f = Frame::Want(vec![EventId([3; 32])]);
        assert_eq!(Frame::decode(&f.encode()).unwrap(), f);
        let mut bytes = f.encode();
        bytes.push(0);
        assert!(matches!(
            Frame::decode(&bytes),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn a_batch_never_outgrows_its_limit_and_its_size_is_the_encoding() {
        for len in [0usize, 1, 127, 128, 16383, 16384, 300_000] {
            let frame = Frame::Events(vec![vec![7; len]]);
            let empty = Frame::Events(vec![]).encode().len();
            // The frame's tag and event count take the same bytes either way.
            assert_eq!(frame.encode().len() - empty, event_cost(len), "{len}");
        }
        let mut batch = EventsBatch::new(1000);
        let mut frames = Vec::new();
        for _ in 0..25 {
            if !batch.fits(100) {
                frames.extend(batch.take());
            }
            batch.push(vec![1; 100]);
        }
        frames.extend(batch.take());
        assert_eq!(frames.len(), 3, "9 events of 101 bytes a frame");
        assert!(batch.take().is_none());
        // A lone oversized event still goes, alone.
        let mut batch = EventsBatch::new(10);
        assert!(batch.fits(50));
        batch.push(vec![0; 50]);
        assert!(!batch.fits(1));
    }

    #[test]
    fn file_frames_round_trip_and_only_file_data_waits() {
        let frames = [
            Frame::File(FileFrame::Have(vec![FileHave {
                address: [1; 32],
                ranges: vec![ChunkRange { start: 0, end: 4 }],
            }])),
            Frame::File(FileFrame::Want {
                address: [1; 32],
                list: true,
                ranges: vec![ChunkRange { start: 2, end: 3 }],
            }),
            Frame::File(FileFrame::List {
                address: [1; 32],
                bytes: vec![1, 2],
            }),
            Frame::File(FileFrame::Chunk {
                address: [1; 32],
                index: 7,
                bytes: vec![9; 300],
            }),
            Frame::File(FileFrame::Lacks {
                address: [1; 32],
                list: false,
                ranges: vec![],
            }),
        ];
        for f in &frames {
            assert_eq!(Frame::decode(&f.encode()).unwrap(), *f);
        }
        let file_data: Vec<bool> = frames
            .iter()
            .map(|f| f.priority() == Priority::File)
            .collect();
        assert_eq!(file_data, [false, false, true, true, false]);
        assert_eq!(Frame::WantEnd.priority(), Priority::Message);
        // A chunk frame costs its bytes plus a few of framing: tag 12, file tag, address,
        // index and length varints.
        let chunk = &frames[3];
        assert_eq!(chunk.encode().len(), 1 + 1 + 32 + 1 + 2 + 300);
    }

    #[test]
    fn ranges_gather_indices() {
        let r = ChunkRange::from_indices([0, 1, 2, 5, 7, 8]);
        assert_eq!(
            r,
            vec![
                ChunkRange { start: 0, end: 3 },
                ChunkRange { start: 5, end: 6 },
                ChunkRange { start: 7, end: 9 }
            ]
        );
        assert_eq!(r.iter().map(ChunkRange::len).sum::<u64>(), 6);
        assert!(ChunkRange { start: 5, end: 2 }.indices().next().is_none());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
            let _ = Frame::decode(&bytes);
        }
    }
}
