//! One link to a peer node: hello and admission, then reconciliation, fetch and live push.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use basis_core::validate::ValidEvent;
use basis_core::{EventId, NodeId, RoomId};

use crate::PROTOCOL_VERSION;
use crate::admission::{FederationKey, Role};
use crate::frame::{EventsBatch, FileFrame, Frame, Notice, PeerInfo};
use crate::limits::{
    CATCH_UP_MIN_GAP, EVENTS_FRAME_BYTES, MAX_ADDRS_PER_PEER, MAX_PEERS_SHARED, MAX_SCOPE_ROOMS,
    MAX_WANTED, NOTICES_PER_SEC, RECENT_IDS, SLICE_ITEMS, STORES_UNDER_WAY, WANT_FRAME_IDS,
};
use crate::recon::{Initiator, Items, Responder, Step};
use crate::validation::validate_all;

/// Points taken off a peer for one invalid event.
pub const PENALTY_INVALID_EVENT: u32 = 10;
/// Points taken off a peer for a protocol violation (garbage, out-of-order frames).
pub const PENALTY_VIOLATION: u32 = 50;

/// What a link needs to know about its own node.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// This node's id.
    pub local: NodeId,
    /// This node's human name.
    pub name: String,
    /// The federation key, if this node has a federation secret.
    pub federation: Option<FederationKey>,
    /// Node ids admitted without a proof.
    pub allow: Vec<NodeId>,
    /// How often the dialing side reconciles again while the link is up.
    pub reconcile_every: Duration,
    /// This link is an upstream bridge (this node dialled an upstream node): nothing is
    /// reconciled, sent, asked for or shared unless the driver says so (see
    /// [`Link::reconcile_rooms`]); the peer's wants, peer lists and notices are ignored.
    pub upstream: bool,
    /// This process's boot number, sent in every hello (see [`crate::duplicate`]).
    pub boot: u64,
    /// The number of this dial, when this node dials (0 when it accepts); the driver sets it
    /// on the link's own copy of the configuration.
    pub dial: u64,
    /// Most of this node's events in one slice of a reconciliation session (see
    /// `Frame::Slice`); [`SLICE_ITEMS`] unless a test wants small slices.
    pub slice_items: usize,
}

impl LinkConfig {
    /// The slice size nodes use: [`SLICE_ITEMS`].
    pub const SLICE_ITEMS: usize = SLICE_ITEMS;
}

/// Where a link gets the items it reconciles over.
pub trait ItemSource {
    /// `(timestamp, id)` of every event in the reconciled set, added to `items`: every event
    /// held, or only those of the rooms in `scope` when it is given.
    /// A set made with [`Items::between`] keeps only the items of its span, so a source may
    /// add them all; a source that can read a range of time by itself reads only
    /// [`Items::span`].
    fn items(&mut self, scope: Option<&[RoomId]>, items: &mut Items) -> Result<(), String>;

    /// The newest timestamp of the events held (`None` when there is none).
    ///
    /// The default collects every item to find it; a store with an index on the timestamp
    /// answers from the index.
    fn newest(&mut self) -> Result<Option<u64>, String> {
        let mut items = Items::default();
        self.items(None, &mut items)?;
        Ok(items.newest())
    }

    /// The timestamp of the held event `n` places after the oldest one at or after `from`,
    /// in `(timestamp, id)` order (`None` when `n` or fewer events are held from `from` on):
    /// where a slice of `n` events that starts at `from` ends.
    ///
    /// The default collects the items from `from` on to count them; a store with an index on
    /// the timestamp answers from the index.
    fn nth_from(&mut self, from: u64, n: usize) -> Result<Option<u64>, String> {
        let mut items = Items::between(from, u64::MAX);
        self.items(None, &mut items)?;
        items.nth_timestamp(n).map_err(|e| e.to_string())
    }

    /// Whether the store holds the event `id` already. A received event is looked up here
    /// before its signature is checked: in a mesh every node is sent each event by several
    /// peers, and a copy of an event already held then costs a hash and a lookup instead of
    /// a verification and a write. A source that cannot tell answers `false` (the default),
    /// and every event is checked.
    fn holds(&mut self, id: &EventId) -> bool {
        let _ = id;
        false
    }
}

/// The session this node is running on a LAN link, slice by slice (see `Frame::Slice`).
#[derive(Debug)]
struct Session {
    /// Where the last slice ends: this node's newest timestamp when the session started (the
    /// peer's newer events came with `CatchUp`), or when the previous one started.
    newest: u64,
    /// Which of the two `newest` is.
    span: Span,
    /// The slice being reconciled.
    slice: (u64, u64),
    /// Ids sent and asked for, and round trips, in the slices done so far.
    have: usize,
    need: usize,
    rounds: u32,
}

/// What a finished reconciliation session compared (see [`Action::Reconciled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Every event of the rooms in the session's scope (the upstream bridge's sessions).
    Scope,
    /// The events up to this node's newest; the peer sent the newer ones whole (`CatchUp`),
    /// as in the first session of a link.
    Newest,
    /// The events up to this node's newest when the previous session on the link began;
    /// newer ones were left to live push, for the session after.
    PreviousSession,
}

/// The items of `source` added to `items`, or the reason to close the link.
fn collect(
    source: &mut dyn ItemSource,
    scope: Option<&[RoomId]>,
    mut items: Items,
) -> Result<Items, String> {
    source
        .items(scope, &mut items)
        .map_err(|e| format!("cannot read the store to reconcile: {e}"))?;
    Ok(items)
}

/// What the driver must do.
#[derive(Debug)]
pub enum Action {
    /// Send this frame to the peer.
    Send(Frame),
    /// The peer proved membership; the link is open.
    Admitted {
        /// The peer's node id.
        peer: NodeId,
        /// The peer's human name.
        name: String,
    },
    /// Store these valid events from the peer (then offer the new ones to other peers); once
    /// they are durable, call [`Link::stored`] and send what it returns.
    Store(Vec<ValidEvent>),
    /// Send these held events to the peer, newest first, then call [`Link::sent`].
    SendEvents(Vec<EventId>),
    /// Send every held event newer than this timestamp (every event held, for `None`) to
    /// the peer, newest first, reading them from the store a page at a time, and call
    /// [`Link::sent`] for each page: the peer is catching up (`Frame::CatchUp`). After the
    /// last page, on the same queue as the events, send `Frame::CatchUpEnd`, also when the
    /// store could not be read to the end (the peer's reconciliation finds the rest); not
    /// when a newer `SendNewer` replaced this one.
    SendNewer(Option<u64>),
    /// Peers the peer knows.
    Learned(Vec<PeerInfo>),
    /// This node holds no events, so instead of reconciling it asked the peer for all of its
    /// events (`Frame::CatchUp`): one round trip, and the peer sends them newest first.
    CatchingUp,
    /// A reconciliation session finished.
    Reconciled {
        /// Events the peer lacked (now being sent).
        have: usize,
        /// Events this node lacked (now asked for) among those the session compared.
        need: usize,
        /// Round trips it took.
        rounds: u32,
        /// Which events the session compared.
        span: Span,
    },
    /// Count this against the peer's reputation.
    Penalize {
        /// Points to take off.
        points: u32,
        /// Why.
        reason: String,
    },
    /// Close the link (a `Bye` was already queued when that makes sense).
    Close(String),
    /// An ephemeral notice from the peer, for this node's clients.
    Notice(Notice),
    /// An upstream link's scoped reconciliation (see [`Link::reconcile_rooms`]) finished;
    /// the driver decides what to send and what to ask for.
    Differences {
        /// The rooms the session covered.
        rooms: Vec<RoomId>,
        /// Ids this node holds that the peer lacks.
        have: Vec<EventId>,
        /// Ids the peer holds that this node lacks.
        need: Vec<EventId>,
    },
    /// The peer has stored the events of the `n`-th `Events` frame this node sent on the link
    /// (counting from 1); only a link that sent a `Scope` hears this.
    Delivered(u64),
    /// A file-transfer frame from the peer: for the fetch of its file, or (a `Want`) for this
    /// link's [`crate::Outbox`]. See [`crate::transfer`].
    File(FileFrame),
    /// (Upstream bridge only.) Serve the peer these parts of a file, which the bridge chose to
    /// send within the room's budget: queue them in the link's [`crate::Outbox`] (file data,
    /// after every message), read each from the blob store when its turn comes, and report
    /// each with [`crate::BridgeLink::file_served`].
    ServeFile {
        /// The file's content address.
        address: [u8; 32],
        /// Send its chunk list.
        list: bool,
        /// Send these chunks.
        ranges: Vec<crate::frame::ChunkRange>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Hello,
    Open,
    Closed,
}

/// Ids the peer is known to have, bounded, oldest forgotten first.
#[derive(Debug, Default)]
struct Recent {
    set: HashSet<EventId>,
    order: VecDeque<EventId>,
}

impl Recent {
    fn insert(&mut self, id: EventId) {
        if self.set.insert(id) {
            self.order.push_back(id);
            if self.order.len() > RECENT_IDS
                && let Some(old) = self.order.pop_front()
            {
                self.set.remove(&old);
            }
        }
    }

    fn contains(&self, id: &EventId) -> bool {
        self.set.contains(id)
    }
}

/// Counters of one link.
#[derive(Debug, Default, Clone)]
pub struct LinkStats {
    /// Events sent to the peer.
    pub events_sent: u64,
    /// Valid events received from the peer.
    pub events_received: u64,
    /// Invalid events received from the peer.
    pub invalid_received: u64,
    /// When the last reconciliation finished.
    pub last_reconciled: Option<Instant>,
    /// Reconciliation sessions finished.
    pub reconciliations: u64,
}

/// The protocol state of one link.
pub struct Link {
    config: LinkConfig,
    role: Role,
    peer: NodeId,
    exporter: [u8; 32],
    state: State,
    peer_name: String,
    initiator: Option<Initiator>,
    /// The session of `initiator`, on a LAN link (`None` for an upstream link's scoped one).
    session: Option<Session>,
    responder: Option<Responder>,
    /// The slice the peer set for its current `Recon` messages (`Frame::Slice`).
    peer_slice: Option<(u64, u64)>,
    /// The newest timestamp the peer holds, from its `CatchUp`: what is newer was sent
    /// whole, so the session leaves it out.
    peer_newest: Option<u64>,
    wanted: Vec<EventId>,
    recent: Recent,
    next_recon: Option<Instant>,
    stats: LinkStats,
    /// Start of the current second of notices and how many came in it.
    notices: Option<(Instant, u32)>,
    /// When the peer's last `CatchUp` came.
    last_catch_up: Option<Instant>,
    /// This node sent a `CatchUp` and the peer's `CatchUpEnd` has not come yet: no new
    /// session starts meanwhile.
    catching_up: bool,
    /// The dialler sent its `CatchUp` (of the newest timestamp held) and the accepting
    /// side's own has not come yet: no session starts meanwhile, and the first one starts
    /// with the answer (see [`Link::on_catch_up`]).
    answer_due: Option<Option<u64>>,
    /// Rooms the peer asked live pushes for (`None`: every room).
    subscription: Option<HashSet<RoomId>>,
    /// The scope the peer set for its next (or current) reconciliation session.
    peer_scope: Option<Vec<RoomId>>,
    /// The scope of this node's current session, on an upstream link.
    own_scope: Option<Vec<RoomId>>,
    /// Admission failed (see [`Link::refused`]).
    refused: bool,
    /// This node refused the peer's hello (rather than the peer refusing this node's).
    refused_by_me: bool,
    /// The boot and dial numbers of the peer's hello.
    peer_numbers: Option<(u64, u64)>,
    /// The peer was admitted (see [`Link::was_admitted`]).
    admitted: bool,
    /// `Events` frames received so far (the number of the last one).
    frames_in: u64,
    /// The peer sent a `Scope`: it wants a `Stored` frame for each `Events` frame.
    peer_wants_acks: bool,
    /// One entry per [`Action::Store`] the driver has not yet reported on, oldest first: the
    /// number of its `Events` frame when the peer wants an acknowledgement of it.
    storing: VecDeque<Option<u64>>,
    /// The nodes the peer said it is linked to, from its last `Peers` frame: an event that
    /// came from one of them was pushed to the peer by that node, so this link does not
    /// push it again (see [`Link::push`]).
    peer_links: HashSet<NodeId>,
    /// This node's newest timestamp when its last LAN session on this link started (0 when it
    /// held nothing; `None` before the first): the next session reconciles up to there.
    settled: Option<u64>,
}

/// A newly stored event offered to a link for live push.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'a> {
    /// Its room.
    pub room: RoomId,
    /// Its id.
    pub id: EventId,
    /// Its wire bytes.
    pub bytes: &'a [u8],
    /// The peer this node received it from; `None` when one of this node's clients posted it.
    pub from: Option<NodeId>,
}

impl Link {
    /// A new link to `peer` (its id as proven by TLS) on a session with this exporter value.
    /// Returns the link and the hello to send.
    pub fn new(
        config: LinkConfig,
        role: Role,
        peer: NodeId,
        exporter: [u8; 32],
    ) -> (Link, Vec<Action>) {
        let proof = config
            .federation
            .as_ref()
            .map(|k| k.prove(&exporter, role, &config.local))
            .unwrap_or([0; 32]);
        let hello = Frame::Hello {
            version: PROTOCOL_VERSION,
            node: config.local,
            name: config.name.clone(),
            proof,
            boot: config.boot,
            dial: if role == Role::Dialer { config.dial } else { 0 },
        };
        let link = Link {
            config,
            role,
            peer,
            exporter,
            state: State::Hello,
            peer_name: String::new(),
            initiator: None,
            session: None,
            responder: None,
            peer_slice: None,
            peer_newest: None,
            wanted: Vec::new(),
            recent: Recent::default(),
            next_recon: None,
            stats: LinkStats::default(),
            notices: None,
            last_catch_up: None,
            catching_up: false,
            answer_due: None,
            subscription: None,
            peer_scope: None,
            own_scope: None,
            refused: false,
            refused_by_me: false,
            peer_numbers: None,
            admitted: false,
            frames_in: 0,
            peer_wants_acks: false,
            storing: VecDeque::new(),
            peer_links: HashSet::new(),
            settled: None,
        };
        (link, vec![Action::Send(hello)])
    }

    /// The peer's node id.
    pub fn peer(&self) -> NodeId {
        self.peer
    }

    /// The peer's human name (empty before its hello).
    pub fn peer_name(&self) -> &str {
        &self.peer_name
    }

    /// Whether the peer was admitted and the link is open.
    pub fn is_open(&self) -> bool {
        self.state == State::Open
    }

    /// Whether the peer was admitted at some point (the link may have closed since).
    pub fn was_admitted(&self) -> bool {
        self.admitted
    }

    /// Whether admission failed: this node refused the peer's hello, or the peer refused
    /// this node's. A connection that merely broke before the hellos crossed is not a
    /// refusal, and the peer is worth dialling again.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Whether this node refused the peer's hello (the link must close with
    /// [`crate::CloseCode::NotAdmitted`]).
    pub fn refused_by_me(&self) -> bool {
        self.refused_by_me
    }

    /// The peer's boot and dial numbers, from its hello (`None` before it).
    pub fn peer_numbers(&self) -> Option<(u64, u64)> {
        self.peer_numbers
    }

    /// The facts [`crate::duplicate::keep`] needs about this link, once the peer's hello
    /// came; `age` is how long ago the driver admitted it.
    pub fn facts(&self, age: std::time::Duration) -> Option<crate::LinkFacts> {
        let (peer_boot, peer_dial) = self.peer_numbers?;
        Some(match self.role {
            Role::Dialer => crate::LinkFacts {
                end: crate::LinkEnd::Dialled,
                peer_boot,
                dial: self.config.dial,
                age,
            },
            Role::Acceptor => crate::LinkFacts {
                end: crate::LinkEnd::Accepted,
                peer_boot,
                dial: peer_dial,
                age,
            },
        })
    }

    /// Counters of this link.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }

    fn close(&mut self, reason: String, points: u32, out: &mut Vec<Action>) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.initiator = None;
        self.session = None;
        self.responder = None;
        self.wanted = Vec::new();
        out.push(Action::Send(Frame::Bye(reason.clone())));
        if points > 0 {
            out.push(Action::Penalize {
                points,
                reason: reason.clone(),
            });
        }
        out.push(Action::Close(reason));
    }

    /// Handles one frame from the peer.
    pub fn on_frame(
        &mut self,
        bytes: &[u8],
        now: Instant,
        source: &mut dyn ItemSource,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Closed {
            return out;
        }
        let frame = match Frame::decode(bytes) {
            Ok(f) => f,
            Err(e) => {
                self.close(e.to_string(), PENALTY_VIOLATION, &mut out);
                return out;
            }
        };
        match (self.state, frame) {
            (_, Frame::Bye(reason)) => {
                // Refused by the peer: its reason says so (see `on_hello`, and bans).
                self.refused = self.state == State::Hello
                    && ["not admitted", "banned", "speaks federation protocol"]
                        .iter()
                        .any(|r| reason.contains(r));
                self.state = State::Closed;
                let reason: String = reason.chars().take(200).collect();
                out.push(Action::Close(format!("the peer closed the link: {reason}")));
            }
            (
                State::Hello,
                Frame::Hello {
                    version,
                    node,
                    name,
                    proof,
                    boot,
                    dial,
                },
            ) => {
                self.peer_numbers = Some((boot, dial));
                self.on_hello(version, node, name, proof, now, source, &mut out);
            }
            (State::Hello, other) => self.close(
                format!("the peer sent {} before hello", other.name()),
                PENALTY_VIOLATION,
                &mut out,
            ),
            (State::Open, Frame::Hello { .. }) => {
                self.close("a second hello".into(), PENALTY_VIOLATION, &mut out)
            }
            (
                State::Open,
                Frame::Peers(_)
                | Frame::Want(_)
                | Frame::WantEnd
                | Frame::CatchUp(_)
                | Frame::Notice(_),
            ) if self.config.upstream => {
                // An upstream link shares, serves and relays nothing the driver did not choose.
            }
            (State::Open, Frame::Peers(peers)) => {
                let peers: Vec<PeerInfo> = peers
                    .into_iter()
                    .take(MAX_PEERS_SHARED)
                    .filter(|p| p.node != self.config.local)
                    .map(|mut p| {
                        p.addrs.truncate(MAX_ADDRS_PER_PEER);
                        p
                    })
                    .collect();
                self.peer_links = peers.iter().map(|p| p.node).collect();
                out.push(Action::Learned(peers));
            }
            (State::Open, Frame::Recon(message)) => self.on_recon(&message, now, source, &mut out),
            (State::Open, Frame::ReconEnd) => {
                self.responder = None;
                self.peer_scope = None;
                self.peer_slice = None;
                self.peer_newest = None;
            }
            (State::Open, Frame::Slice { from, to }) => {
                if self.role == Role::Dialer {
                    self.close(
                        "a reconciliation slice from the accepting side".into(),
                        PENALTY_VIOLATION,
                        &mut out,
                    );
                } else if from > to {
                    self.close(
                        format!(
                            "a reconciliation slice that ends ({to}) before it starts ({from})"
                        ),
                        PENALTY_VIOLATION,
                        &mut out,
                    );
                } else {
                    // The next `Recon` starts the slice's own negentropy session.
                    self.responder = None;
                    self.peer_slice = Some((from, to));
                }
            }
            (State::Open, Frame::Scope(rooms)) => {
                if rooms.len() > MAX_SCOPE_ROOMS {
                    self.close("scope too long".into(), PENALTY_VIOLATION, &mut out);
                } else {
                    // A new scope starts a new session.
                    self.responder = None;
                    self.peer_scope = Some(rooms);
                    self.peer_wants_acks = true;
                }
            }
            (State::Open, Frame::Subscribe(rooms)) => {
                if rooms.len() > MAX_SCOPE_ROOMS {
                    self.close("subscription too long".into(), PENALTY_VIOLATION, &mut out);
                } else {
                    self.subscription = Some(rooms.into_iter().collect());
                }
            }
            (State::Open, Frame::Want(ids)) => {
                if self.wanted.len() + ids.len() > MAX_WANTED {
                    self.close("want list too long".into(), PENALTY_VIOLATION, &mut out);
                } else {
                    self.wanted.extend(ids);
                }
            }
            (State::Open, Frame::WantEnd) => {
                let ids = std::mem::take(&mut self.wanted);
                if !ids.is_empty() {
                    out.push(Action::SendEvents(ids));
                }
            }
            (State::Open, Frame::CatchUp(newest)) => {
                self.on_catch_up(newest, now, source, &mut out)
            }
            (State::Open, Frame::CatchUpEnd) => self.catching_up = false,
            (State::Open, Frame::Events(events)) => self.on_events(events, source, &mut out),
            (State::Open, Frame::Stored(n)) => out.push(Action::Delivered(n)),
            (State::Open, Frame::File(file)) => match file.violation() {
                Some(reason) => self.close(reason, PENALTY_VIOLATION, &mut out),
                None => out.push(Action::File(file)),
            },
            (State::Open, Frame::Notice(notice)) => {
                if self.notice_allowed(now) {
                    out.push(Action::Notice(notice));
                }
            }
            (State::Closed, _) => {}
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn on_hello(
        &mut self,
        version: u16,
        node: NodeId,
        name: String,
        proof: [u8; 32],
        now: Instant,
        source: &mut dyn ItemSource,
        out: &mut Vec<Action>,
    ) {
        // Every early return below refuses the peer.
        self.refused = true;
        self.refused_by_me = true;
        if version != PROTOCOL_VERSION {
            let reason = format!(
                "the peer speaks federation protocol {version}, this node speaks {PROTOCOL_VERSION}"
            );
            return self.close(reason, 0, out);
        }
        if node != self.peer {
            let reason = format!(
                "the peer's hello names node {} but its TLS key is {}",
                node.short(),
                self.peer.short()
            );
            return self.close(reason, PENALTY_VIOLATION, out);
        }
        let by_secret = self
            .config
            .federation
            .as_ref()
            .is_some_and(|k| k.verify(&self.exporter, self.role.peer(), &node, &proof));
        let by_list = self.config.allow.contains(&node);
        if !(by_secret || by_list) {
            let reason = if self.config.federation.is_some() {
                "not admitted: the peer did not prove this federation's secret (a different secret?) and is not on the allow-list"
            } else {
                "not admitted: the peer is not on this node's allow-list"
            };
            return self.close(reason.into(), 0, out);
        }
        self.refused = false;
        self.refused_by_me = false;
        self.admitted = true;
        self.state = State::Open;
        self.peer_name = name.chars().take(64).collect();
        out.push(Action::Admitted {
            peer: node,
            name: self.peer_name.clone(),
        });
        if self.role == Role::Dialer && !self.config.upstream {
            self.start_recon(now, source, out);
        }
    }

    fn start_recon(&mut self, now: Instant, source: &mut dyn ItemSource, out: &mut Vec<Action>) {
        self.next_recon = Some(now + self.config.reconcile_every);
        // A scoped session (the bridge's) reconciles all of its scope at once: its driver
        // decides what crosses.
        if self.own_scope.is_some() {
            let items = match collect(source, self.own_scope.as_deref(), Items::default()) {
                Ok(items) => items,
                Err(reason) => return out.push(Action::Close(reason)),
            };
            return self.start_initiator(items, out);
        }
        // Negentropy would list every id this node lacks, 60 kB a round (about 550 rounds for
        // a node that holds nothing and a peer that holds a million events). What is newer
        // than this node's newest event it cannot hold, so it asks for all of that at once
        // and reconciles only the rest; a node that holds nothing asks for everything and
        // does not reconcile.
        let newest = match source.newest() {
            Ok(newest) => newest,
            Err(e) => {
                return out.push(Action::Close(format!(
                    "cannot read the store to reconcile: {e}"
                )));
            }
        };
        // A later session on a link that stayed up reconciles only up to this node's newest
        // event when the previous session started (nothing, if it held nothing then: the
        // catch-up brought everything), and asks for nothing newer: what is newer is still
        // arriving by live push on this link and others, and comparing it would send or ask
        // for copies of events on their way (at 50 nodes posting together, one more copy of
        // each event per node). What a push missed is found by the session after.
        if let Some(upto) = self.settled.replace(newest.unwrap_or(0)) {
            self.session = Some(Session {
                newest: upto,
                span: Span::PreviousSession,
                slice: (0, 0),
                have: 0,
                need: 0,
                rounds: 0,
            });
            return self.start_slice(0, source, out);
        }
        out.push(Action::Send(Frame::CatchUp(newest)));
        self.catching_up = true;
        self.answer_due = Some(newest);
        if newest.is_none() {
            self.stats.reconciliations += 1;
            self.stats.last_reconciled = Some(now);
            out.push(Action::CatchingUp);
        }
    }

    /// The first session of a LAN link, once both sides have sent their `CatchUp`: what
    /// either holds newer than the other's newest comes whole, so the session reconciles the
    /// events up to the older of the two (none, when either side held nothing).
    fn start_first_session(
        &mut self,
        own: Option<u64>,
        peer: Option<u64>,
        now: Instant,
        source: &mut dyn ItemSource,
        out: &mut Vec<Action>,
    ) {
        let (Some(own), Some(peer)) = (own, peer) else {
            if own.is_some() {
                self.stats.reconciliations += 1;
                self.stats.last_reconciled = Some(now);
            }
            return;
        };
        self.session = Some(Session {
            newest: own.min(peer),
            span: Span::Newest,
            slice: (0, 0),
            have: 0,
            need: 0,
            rounds: 0,
        });
        self.start_slice(0, source, out);
    }

    /// Starts the slice of the current session that begins at `from`: about
    /// [`LinkConfig::slice_items`] of this node's events, up to the session's newest.
    fn start_slice(&mut self, from: u64, source: &mut dyn ItemSource, out: &mut Vec<Action>) {
        let Some(newest) = self.session.as_ref().map(|s| s.newest) else {
            return;
        };
        let to = match source.nth_from(from, self.config.slice_items.max(1)) {
            // More events than a slice holds share the timestamp `from`: the slice takes
            // them all.
            Ok(Some(next)) if next <= from => from,
            Ok(Some(next)) => (next - 1).min(newest),
            Ok(None) => newest,
            Err(e) => {
                self.session = None;
                return out.push(Action::Close(format!(
                    "cannot read the store to reconcile: {e}"
                )));
            }
        };
        let items = match collect(source, None, Items::between(from, to)) {
            Ok(items) => items,
            Err(reason) => {
                self.session = None;
                return out.push(Action::Close(reason));
            }
        };
        if let Some(session) = self.session.as_mut() {
            session.slice = (from, to);
        }
        out.push(Action::Send(Frame::Slice { from, to }));
        self.start_initiator(items, out);
    }

    fn start_initiator(&mut self, items: Items, out: &mut Vec<Action>) {
        match Initiator::start(items) {
            Ok((init, first)) => {
                self.initiator = Some(init);
                out.push(Action::Send(Frame::Recon(first)));
            }
            Err(e) => {
                self.session = None;
                out.push(Action::Close(e.to_string()));
            }
        }
    }

    fn on_recon(
        &mut self,
        message: &[u8],
        now: Instant,
        source: &mut dyn ItemSource,
        out: &mut Vec<Action>,
    ) {
        if self.role == Role::Dialer {
            let Some(init) = self.initiator.as_mut() else {
                return self.close(
                    "an unexpected reconciliation reply".into(),
                    PENALTY_VIOLATION,
                    out,
                );
            };
            match init.step(message) {
                Ok(Step::Continue(next)) => out.push(Action::Send(Frame::Recon(next))),
                Ok(Step::Done { have, need }) => {
                    let rounds = init.rounds();
                    self.initiator = None;
                    if let Some(rooms) = self.own_scope.take() {
                        let (have_n, need_n) = (have.len(), need.len());
                        self.finish_session(have_n, need_n, rounds, Span::Scope, now, out);
                        out.push(Action::Differences { rooms, have, need });
                        return;
                    }
                    let (have_n, need_n) = (have.len(), need.len());
                    if !have.is_empty() {
                        out.push(Action::SendEvents(have));
                    }
                    if !need.is_empty() {
                        // Ask in reverse discovery order (roughly newest first); the peer
                        // sorts each want list by time, newest first, before sending.
                        let mut need = need;
                        need.reverse();
                        for chunk in need.chunks(WANT_FRAME_IDS) {
                            out.push(Action::Send(Frame::Want(chunk.to_vec())));
                        }
                        out.push(Action::Send(Frame::WantEnd));
                    }
                    let Some(session) = self.session.as_mut() else {
                        return self.finish_session(have_n, need_n, rounds, Span::Newest, now, out);
                    };
                    session.have += have_n;
                    session.need += need_n;
                    session.rounds += rounds;
                    let (to, newest) = (session.slice.1, session.newest);
                    if to < newest {
                        return self.start_slice(to + 1, source, out);
                    }
                    let (have, need, rounds) = (session.have, session.need, session.rounds);
                    let span = session.span;
                    self.session = None;
                    self.finish_session(have, need, rounds, span, now, out);
                }
                Err(e) => self.close(e.to_string(), PENALTY_VIOLATION, out),
            }
            return;
        }
        if self.responder.is_none() {
            // A slice's items, left out what is newer than the peer's newest (it was sent
            // whole, after its `CatchUp`); every item of the scope without a slice.
            let (from, to) = self.peer_slice.unwrap_or((0, u64::MAX));
            let to = to.min(self.peer_newest.unwrap_or(u64::MAX));
            let span = if self.peer_slice.is_some() || self.peer_newest.is_some() {
                Items::between(from, to)
            } else {
                Items::default()
            };
            let items = match collect(source, self.peer_scope.as_deref(), span) {
                Ok(items) => items,
                Err(reason) => return out.push(Action::Close(reason)),
            };
            match Responder::new(items) {
                Ok(r) => self.responder = Some(r),
                Err(e) => return out.push(Action::Close(e.to_string())),
            }
        }
        if let Some(resp) = self.responder.as_mut() {
            match resp.reply(message) {
                Ok(reply) => out.push(Action::Send(Frame::Recon(reply))),
                Err(e) => self.close(e.to_string(), PENALTY_VIOLATION, out),
            }
        }
        self.stats.last_reconciled = Some(now);
    }

    /// The session ended: the peer may drop its state, and the driver hears the totals.
    fn finish_session(
        &mut self,
        have: usize,
        need: usize,
        rounds: u32,
        span: Span,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.stats.reconciliations += 1;
        self.stats.last_reconciled = Some(now);
        out.push(Action::Send(Frame::ReconEnd));
        out.push(Action::Reconciled {
            have,
            need,
            rounds,
            span,
        });
    }

    /// The peer holds nothing newer than `newest` (nothing at all for `None`): every event
    /// newer goes, newest first, and the session that follows covers only the rest. Every
    /// event held counts, whatever the peer's scope: only LAN links send `CatchUp`, and they
    /// never send a scope.
    ///
    /// The dialler sends its `CatchUp` first; the accepting side answers with its own
    /// (protocol version 8), so that whichever side is behind, including one that holds
    /// nothing and happened to accept rather than dial, gets what is newer whole, newest
    /// first. The dialler then starts the session, up to the older of the two newest. From
    /// the accepting side a `CatchUp` is allowed only as that one answer.
    fn on_catch_up(
        &mut self,
        newest: Option<u64>,
        now: Instant,
        source: &mut dyn ItemSource,
        out: &mut Vec<Action>,
    ) {
        if self.role == Role::Dialer && self.answer_due.is_none() {
            return self.close(
                "a catch-up request from the accepting side that answers none".into(),
                PENALTY_VIOLATION,
                out,
            );
        }
        if self
            .last_catch_up
            .is_some_and(|t| now.saturating_duration_since(t) < CATCH_UP_MIN_GAP)
        {
            return self.close(
                "catch-up requests too close together".into(),
                PENALTY_VIOLATION,
                out,
            );
        }
        self.last_catch_up = Some(now);
        // The session that follows, slice by slice, reconciles only the events up to
        // `newest`; its first `Recon` reads them.
        self.responder = None;
        self.peer_slice = None;
        self.peer_newest = newest;
        out.push(Action::SendNewer(newest));
        match self.role {
            Role::Dialer => {
                let own = self.answer_due.take().flatten();
                self.start_first_session(own, newest, now, source, out);
            }
            Role::Acceptor => {
                let own = match source.newest() {
                    Ok(own) => own,
                    Err(e) => {
                        return out.push(Action::Close(format!(
                            "cannot read the store to catch up: {e}"
                        )));
                    }
                };
                out.push(Action::Send(Frame::CatchUp(own)));
                if own.is_none() {
                    out.push(Action::CatchingUp);
                }
            }
        }
    }

    fn on_events(
        &mut self,
        events: Vec<Vec<u8>>,
        source: &mut dyn ItemSource,
        out: &mut Vec<Action>,
    ) {
        let mut fresh = Vec::with_capacity(events.len());
        for raw in events {
            // The same bytes as an event held (its id is their SHA-256): valid, and stored.
            let id = basis_core::event::id_of(&raw);
            if source.holds(&id) {
                self.recent.insert(id);
                self.stats.events_received += 1;
                continue;
            }
            fresh.push(raw);
        }
        let mut valid = Vec::with_capacity(fresh.len());
        let mut invalid = 0u32;
        let mut first_error = None;
        for result in validate_all(&fresh) {
            match result {
                Ok(ev) => {
                    self.recent.insert(ev.id());
                    valid.push(ev);
                }
                Err(e) => {
                    invalid += 1;
                    first_error.get_or_insert(e);
                }
            }
        }
        self.stats.events_received += valid.len() as u64;
        self.stats.invalid_received += u64::from(invalid);
        self.frames_in += 1;
        let acks = self.peer_wants_acks && !self.config.upstream;
        if valid.is_empty() {
            // Nothing to store: the frame is done with at once.
            if acks {
                out.push(Action::Send(Frame::Stored(self.frames_in)));
            }
        } else {
            // On an upstream link the bridge takes the events and reports on nothing here.
            if !self.config.upstream {
                self.storing.push_back(acks.then_some(self.frames_in));
            }
            out.push(Action::Store(valid));
        }
        if let Some(e) = first_error {
            out.push(Action::Penalize {
                points: invalid.saturating_mul(PENALTY_INVALID_EVENT),
                reason: format!("sent {invalid} invalid events ({e})"),
            });
        }
    }

    /// The driver stored the events of the oldest [`Action::Store`] it had not reported on:
    /// the acknowledgement to send the peer, when it asked for them.
    pub fn stored(&mut self) -> Option<Action> {
        let n = self.storing.pop_front()??;
        (self.state == State::Open).then_some(Action::Send(Frame::Stored(n)))
    }

    /// The driver could not store the events of the oldest [`Action::Store`] it had not
    /// reported on: nothing is acknowledged for them (the next reconciliation asks again).
    pub fn store_failed(&mut self) {
        self.storing.pop_front();
    }

    /// How many stores the driver may keep under way while it goes on with later input: it
    /// waits for the oldest whenever more than this many are. [`STORES_UNDER_WAY`] on a LAN
    /// link; none on a link whose peer wants acknowledgements (an upstream bridge counts a
    /// `Stored` as confirming its frame and every earlier one it has not heard of as lost, so
    /// they must go in frame order, and a frame with nothing new is acknowledged at once).
    pub fn stores_allowed(&self) -> usize {
        if self.peer_wants_acks {
            0
        } else {
            STORES_UNDER_WAY
        }
    }

    /// How many [`Action::Store`]s the driver has not yet reported on (always 0 on an
    /// upstream link, whose stores its bridge handles).
    pub fn stores_pending(&self) -> usize {
        self.storing.len()
    }

    /// When [`Link::on_tick`] next has work to do (`None`: not before some other input).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Open
            && self.role == Role::Dialer
            && self.initiator.is_none()
            && !self.catching_up
            && self.answer_due.is_none()
            && !self.config.upstream
        {
            self.next_recon
        } else {
            None
        }
    }

    /// Time-driven work: starts the periodic reconciliation on the dialing side (not while a
    /// catch-up it asked for is still arriving).
    pub fn on_tick(&mut self, now: Instant, source: &mut dyn ItemSource) -> Vec<Action> {
        let mut out = Vec::new();
        let due = self.next_recon.is_some_and(|t| now >= t)
            && !self.config.upstream
            && !self.catching_up
            && self.answer_due.is_none();
        if self.state == State::Open && self.role == Role::Dialer && self.initiator.is_none() && due
        {
            self.start_recon(now, source, &mut out);
        }
        out
    }

    /// Offers a newly stored event for live push; returns the frame to send, unless the
    /// event goes no further on this link (see [`Link::push_batch`]).
    pub fn push(&mut self, offer: Offer<'_>) -> Option<Action> {
        self.pushes(&offer)
            .then(|| Action::Send(Frame::Events(vec![offer.bytes.to_vec()])))
    }

    /// Offers several newly stored events at once (those the driver found waiting together):
    /// the ones that go out are packed in as few `Events` frames as fit
    /// ([`EVENTS_FRAME_BYTES`] each), so the peer stores them in one commit rather than one
    /// commit each.
    ///
    /// An event goes out unless the link is not open or is an upstream link (its bridge
    /// decides what goes), the peer did not subscribe to its room, the link already carried
    /// it either way, it came from the peer, or it came from a node the peer is linked to
    /// itself. That node pushed it to the peer, so in a full mesh each node gets each event
    /// once, from the node its author posted it to; where two nodes are not linked, a node
    /// linked to both carries it across. A push lost to a link that broke meanwhile is found
    /// by the next reconciliation.
    pub fn push_batch<'a>(&mut self, offers: impl IntoIterator<Item = Offer<'a>>) -> Vec<Action> {
        let raws: Vec<Vec<u8>> = offers
            .into_iter()
            .filter(|offer| self.pushes(offer))
            .map(|offer| offer.bytes.to_vec())
            .collect();
        event_frames(raws).into_iter().map(Action::Send).collect()
    }

    /// Whether an event goes out by live push (see [`Link::push_batch`]); counts it as sent
    /// if so.
    fn pushes(&mut self, offer: &Offer<'_>) -> bool {
        let relayed_by_other = offer
            .from
            .is_some_and(|from| from == self.peer || self.peer_links.contains(&from));
        if self.state != State::Open
            || self.config.upstream
            || relayed_by_other
            || self.recent.contains(&offer.id)
            || self
                .subscription
                .as_ref()
                .is_some_and(|s| !s.contains(&offer.room))
        {
            return false;
        }
        self.recent.insert(offer.id);
        self.stats.events_sent += 1;
        true
    }

    /// A notice of this node's clients for the peer (nothing when the link is not open, and
    /// nothing on an upstream link: notices stay on the LAN).
    pub fn notice(&self, notice: Notice) -> Option<Action> {
        (self.state == State::Open && !self.config.upstream)
            .then_some(Action::Send(Frame::Notice(notice)))
    }

    /// Whether a reconciliation session this node started is still running.
    pub fn reconciling(&self) -> bool {
        self.initiator.is_some()
    }

    /// On an upstream link: reconciles the events of `rooms` only. Ends in
    /// [`Action::Differences`]; nothing is sent or asked for until the driver does it. Does
    /// nothing while the link is not open or a session is running.
    pub fn reconcile_rooms(
        &mut self,
        rooms: Vec<RoomId>,
        now: Instant,
        source: &mut dyn ItemSource,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state != State::Open || self.role != Role::Dialer || self.initiator.is_some() {
            return out;
        }
        out.push(Action::Send(Frame::Scope(rooms.clone())));
        self.own_scope = Some(rooms);
        self.start_recon(now, source, &mut out);
        if self.initiator.is_none() {
            self.own_scope = None;
        }
        out
    }

    /// Asks the peer for these events (it sends them newest first).
    pub fn want(&self, ids: &[EventId]) -> Vec<Action> {
        if self.state != State::Open || ids.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<Action> = ids
            .chunks(WANT_FRAME_IDS)
            .map(|chunk| Action::Send(Frame::Want(chunk.to_vec())))
            .collect();
        out.push(Action::Send(Frame::WantEnd));
        out
    }

    /// Asks the peer to push live only events of `rooms` from now on.
    pub fn subscribe(&self, rooms: Vec<RoomId>) -> Option<Action> {
        (self.state == State::Open).then_some(Action::Send(Frame::Subscribe(rooms)))
    }

    /// Counts an incoming notice; false when the peer is over [`NOTICES_PER_SEC`].
    fn notice_allowed(&mut self, now: Instant) -> bool {
        let (start, count) = match self.notices {
            Some((start, count)) if now.duration_since(start) < Duration::from_secs(1) => {
                (start, count)
            }
            _ => (now, 0),
        };
        self.notices = Some((start, count + 1));
        count < NOTICES_PER_SEC
    }

    /// Records events the driver sent for [`Action::SendEvents`].
    pub fn sent(&mut self, ids: &[EventId]) {
        for id in ids {
            self.recent.insert(*id);
        }
        self.stats.events_sent += ids.len() as u64;
    }

    /// The peer-exchange frame listing `peers` (without the peer itself): the nodes this
    /// node is linked to now, sent also when there are none, since the peer's live pushes
    /// rely on the list being current (see [`Link::push_batch`]).
    pub fn share_peers(&self, peers: &[PeerInfo]) -> Option<Action> {
        if self.state != State::Open || self.config.upstream {
            return None;
        }
        let list: Vec<PeerInfo> = peers
            .iter()
            .filter(|p| p.node != self.peer)
            .take(MAX_PEERS_SHARED)
            .cloned()
            .collect();
        Some(Action::Send(Frame::Peers(list)))
    }
}

/// Splits events (wire bytes) into `Events` frames of at most [`EVENTS_FRAME_BYTES`].
pub fn event_frames(events: Vec<Vec<u8>>) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut batch = EventsBatch::new(EVENTS_FRAME_BYTES);
    for ev in events {
        if !batch.fits(ev.len()) {
            frames.extend(batch.take());
        }
        batch.push(ev);
    }
    frames.extend(batch.take());
    frames
}
