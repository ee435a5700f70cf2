//! Helpers shared by the fuzz targets and the seed generator (`examples/seeds.rs`).
//!
//! Nothing here is instrumented-only: the same code builds on stable, so the seed generator
//! can replay a normal federation session and record what the fuzzed side receives.

use std::sync::OnceLock;
use std::time::Duration;

use basis_core::body::{Body, History, MessageBody, RoomCreate};
use basis_core::validate::{ValidEvent, validate_event};
use basis_core::{EventContent, EventId, NodeId, PROTOCOL_VERSION, Timestamp, UserKey};
use basis_proto::frame::Frame;
use basis_proto::recon::Items;
use basis_proto::{FederationKey, ItemSource, LinkConfig, Role};

/// Node id of the link under test.
pub const LOCAL: NodeId = NodeId([1; 32]);
/// Node id of the peer the fuzzer plays.
pub const PEER: NodeId = NodeId([2; 32]);
/// TLS exporter value of the simulated session.
pub const EXPORTER: [u8; 32] = [42; 32];
/// Shared secret of the simulated federation.
pub const SECRET: &[u8] = b"fuzz federation";

/// Events of the fixture room: index 0 is the create event, `1 + i` the text message `i`.
/// Built once (signing is the slow part) and deterministic: fixed key, fixed times.
pub fn room_events(count: usize) -> Vec<ValidEvent> {
    let key = UserKey::from_secret([7; 32]);
    let t0 = 1_700_000_000_000u64;
    let create = EventContent {
        version: PROTOCOL_VERSION,
        room: None,
        author: key.id(),
        parents: vec![],
        time: Timestamp::new(t0, 0),
        body: Body::Create(RoomCreate {
            name: "fuzz".into(),
            encrypted: false,
            history: History::Shared,
        }),
    };
    let create = validate_event(create.sign(&key)).expect("the fixture's create event is valid");
    let room = create.room();
    let mut out = vec![create];
    for i in 0..count {
        let content = EventContent {
            version: PROTOCOL_VERSION,
            room: Some(room),
            author: key.id(),
            parents: vec![],
            time: Timestamp::new(t0 + 1 + i as u64, 0),
            body: Body::Message(MessageBody::Text {
                text: format!("message {i}"),
            }),
        };
        out.push(validate_event(content.sign(&key)).expect("fixture events are valid"));
    }
    out
}

/// The first `LOCAL_MESSAGES` messages of the fixture room (plus its create event): what
/// the node under test holds.
pub const LOCAL_MESSAGES: usize = 50;
/// The peer of a seed session holds messages `PEER_FROM..PEER_TO` (plus the create event),
/// so both sides lack something.
pub const PEER_FROM: usize = 25;
/// See [`PEER_FROM`].
pub const PEER_TO: usize = 75;

/// Every fixture event either side of a seed session may hold.
pub fn all_events() -> &'static [ValidEvent] {
    static ALL: OnceLock<Vec<ValidEvent>> = OnceLock::new();
    ALL.get_or_init(|| room_events(PEER_TO))
}

/// `(timestamp, id)` of an event, as reconciliation sees it.
pub fn item(ev: &ValidEvent) -> (u64, EventId) {
    (ev.event().content.time.0, ev.id())
}

/// The items of the node under test: the create event and messages `0..LOCAL_MESSAGES`.
pub fn local_items() -> Vec<(u64, EventId)> {
    all_events()[..=LOCAL_MESSAGES].iter().map(item).collect()
}

/// The items of the peer of a seed session.
pub fn peer_items() -> Vec<(u64, EventId)> {
    let all = all_events();
    std::iter::once(&all[0])
        .chain(&all[1 + PEER_FROM..=PEER_TO])
        .map(item)
        .collect()
}

/// A fixed item list that a link reconciles over.
pub struct FixedItems(pub Vec<(u64, EventId)>);

impl ItemSource for FixedItems {
    fn items(
        &mut self,
        _scope: Option<&[basis_core::RoomId]>,
        items: &mut Items,
    ) -> Result<(), String> {
        for (ts, id) in &self.0 {
            items.push(*ts, *id).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Configuration of a link of node `local` in the fixture federation.
pub fn config(local: NodeId) -> LinkConfig {
    LinkConfig {
        local,
        name: format!("node-{}", local.0[0]),
        federation: Some(FederationKey::from_secret(SECRET)),
        allow: vec![],
        reconcile_every: Duration::from_secs(60),
        upstream: false,
        boot: 1,
        dial: 1,
        slice_items: LinkConfig::SLICE_ITEMS,
    }
}

/// The hello the peer sends to a link of `LOCAL` in `role`: a correct admission proof.
pub fn peer_hello(local_role: Role) -> Frame {
    let key = FederationKey::from_secret(SECRET);
    Frame::Hello {
        version: basis_proto::PROTOCOL_VERSION,
        node: PEER,
        name: "peer".into(),
        proof: key.prove(&EXPORTER, local_role.peer(), &PEER),
        boot: 2,
        dial: 1,
    }
}

/// Recon fuzz inputs: a mode byte, then chunks of `tag: u8, len: u16 LE, payload`. A chunk
/// whose length runs past the end takes what is left.
pub mod chunks {
    /// Mode: a reconciliation responder answers each chunk's payload.
    pub const RESPONDER: u8 = 0;
    /// Mode: a reconciliation initiator takes each chunk's payload as the peer's reply.
    pub const INITIATOR: u8 = 1;
    /// Mode: a link that accepted the connection; chunks are frames from the peer.
    pub const LINK_ACCEPTOR: u8 = 2;
    /// Mode: a link that dialled; chunks are frames from the peer.
    pub const LINK_DIALER: u8 = 3;
    /// Mode flag: do not admit the peer first (the fuzzer drives the hello itself).
    pub const NO_ADMISSION: u8 = 4;

    /// Link chunk tag: the payload is a frame's bytes as they came off the wire.
    pub const RAW: u8 = 0;
    /// Link chunk tag: the payload is a negentropy message, wrapped in a `Recon` frame.
    pub const RECON: u8 = 1;
    /// Link chunk tag: the payload is one event, wrapped in an `Events` frame.
    pub const EVENT: u8 = 2;
    /// Link chunk tag: time passes (payload's first byte, in minutes) and the link ticks.
    pub const TICK: u8 = 3;

    /// Splits a recon fuzz input's body (after the mode byte) into `(tag, payload)`.
    pub fn split(mut data: &[u8]) -> Vec<(u8, &[u8])> {
        let mut out = Vec::new();
        while let [tag, rest @ ..] = data {
            let (len, rest) = match rest {
                [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
                _ => (rest.len(), &rest[rest.len()..]),
            };
            let len = len.min(rest.len());
            out.push((*tag, &rest[..len]));
            data = &rest[len..];
        }
        out
    }

    /// Appends one chunk (payloads over 64 KiB are cut, which seeds never need).
    pub fn push(out: &mut Vec<u8>, tag: u8, payload: &[u8]) {
        let payload = &payload[..payload.len().min(usize::from(u16::MAX))];
        out.push(tag);
        out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
        out.extend_from_slice(payload);
    }
}
