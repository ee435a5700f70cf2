//! Two links wired back to back in memory, with in-memory stores: the protocol end to end
//! without sockets. `bridge` drives the upstream bridge's state machine the same way.

#[path = "link_pair/bridge.rs"]
mod bridge;
#[path = "link_pair/files.rs"]
mod files;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use basis_core::body::{Body, History, MessageBody, RoomCreate};
use basis_core::validate::{validate, validate_event};
use basis_core::{
    EventContent, EventId, NodeId, PROTOCOL_VERSION, RoomId, Timestamp, UserId, UserKey,
};
use basis_proto::frame::Frame;
use basis_proto::link::event_frames;
use basis_proto::recon::Items;
use basis_proto::{
    Action, FederationKey, ItemSource, Link, LinkConfig, Notice, NoticeKind, Offer, PeerInfo,
    Presence, Role,
};

#[derive(Default)]
struct Store {
    events: BTreeMap<EventId, (u64, Vec<u8>)>,
    /// The room of each event, once validated (a real store keeps it in a column).
    rooms: HashMap<EventId, RoomId>,
    /// How many items each set the link collected took: the most a side held at once.
    collected: Vec<usize>,
    /// `Action::Store`s carried out: a real store commits each in one transaction.
    commits: usize,
}

impl Store {
    /// The ids of the events newer than `after` (every event for `None`): a catch-up.
    fn newer(&self, after: Option<u64>) -> Vec<EventId> {
        self.events
            .iter()
            .filter(|(_, (ts, _))| after.is_none_or(|a| *ts > a))
            .map(|(id, _)| *id)
            .collect()
    }
}

impl ItemSource for Store {
    fn items(&mut self, scope: Option<&[RoomId]>, items: &mut Items) -> Result<(), String> {
        let (from, to) = items.span().unwrap_or((0, u64::MAX));
        let taken = self
            .events
            .values()
            .filter(|(ts, _)| (from..=to).contains(ts))
            .count();
        self.collected.push(taken);
        for (id, (ts, raw)) in &self.events {
            let room = match self.rooms.get(id) {
                Some(room) => *room,
                None => {
                    let room = validate(raw).map_err(|e| e.to_string())?.room();
                    self.rooms.insert(*id, room);
                    room
                }
            };
            if scope.is_none_or(|rooms| rooms.contains(&room)) {
                items.push(*ts, *id).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn holds(&mut self, id: &EventId) -> bool {
        self.events.contains_key(id)
    }

    // As a store with an index on the timestamp answers: without building a set.
    fn newest(&mut self) -> Result<Option<u64>, String> {
        Ok(self.events.values().map(|(ts, _)| *ts).max())
    }

    fn nth_from(&mut self, from: u64, n: usize) -> Result<Option<u64>, String> {
        let mut ts: Vec<(u64, EventId)> = self
            .events
            .iter()
            .filter(|(_, (t, _))| *t >= from)
            .map(|(id, (t, _))| (*t, *id))
            .collect();
        ts.sort();
        Ok(ts.get(n).map(|(t, _)| *t))
    }
}

struct Side {
    link: Link,
    store: Store,
    inbox: VecDeque<Vec<u8>>,
    closed: Option<String>,
    penalties: u32,
    admitted: bool,
    received_order: Vec<u64>,
    notices: Vec<Notice>,
    differences: Vec<(Vec<EventId>, Vec<EventId>)>,
    /// The names of the frames this side sent, in order.
    sent: Vec<&'static str>,
    /// How often the link said it asked for everything instead of reconciling.
    catching_up: u32,
}

fn config(node: u8, secret: Option<&str>) -> LinkConfig {
    LinkConfig {
        local: NodeId([node; 32]),
        name: format!("node-{node}"),
        federation: secret.map(|s| FederationKey::from_secret(s.as_bytes())),
        allow: vec![],
        reconcile_every: Duration::from_secs(60),
        upstream: false,
        boot: 1,
        dial: 1,
        slice_items: LinkConfig::SLICE_ITEMS,
    }
}

fn events(n: usize, seed: u8) -> Vec<(u64, EventId, Vec<u8>)> {
    events_with(n, seed, |i| format!("{seed}-{i}"))
}

/// A new room (its creation first) and `n` messages in it with the texts `text(i)`.
fn events_with(n: usize, seed: u8, text: impl Fn(usize) -> String) -> Vec<(u64, EventId, Vec<u8>)> {
    let key = UserKey::from_secret([seed; 32]);
    let create = EventContent {
        version: PROTOCOL_VERSION,
        room: None,
        author: key.id(),
        parents: vec![],
        time: Timestamp::new(1_700_000_000_000, 0),
        body: Body::Create(RoomCreate {
            name: "r".into(),
            encrypted: false,
            history: History::SinceJoin,
        }),
    };
    let create = validate_event(create.sign(&key)).unwrap();
    let room = create.room();
    let mut out = vec![(
        create.event().content.time.0,
        create.id(),
        create.bytes().to_vec(),
    )];
    for i in 0..n {
        let c = EventContent {
            version: PROTOCOL_VERSION,
            room: Some(room),
            author: key.id(),
            parents: vec![],
            time: Timestamp::new(1_700_000_000_000 + 1 + i as u64, 0),
            body: Body::Message(MessageBody::Text { text: text(i) }),
        };
        let v = validate_event(c.sign(&key)).unwrap();
        out.push((v.event().content.time.0, v.id(), v.bytes().to_vec()));
    }
    out
}

fn side(
    link: Link,
    initial: Vec<Action>,
    evs: &[(u64, EventId, Vec<u8>)],
    peer_inbox: &mut VecDeque<Vec<u8>>,
) -> Side {
    let mut store = Store::default();
    for (ts, id, raw) in evs {
        store.events.insert(*id, (*ts, raw.clone()));
    }
    let mut s = Side {
        link,
        store,
        inbox: VecDeque::new(),
        closed: None,
        penalties: 0,
        admitted: false,
        received_order: vec![],
        notices: vec![],
        differences: vec![],
        sent: vec![],
        catching_up: 0,
    };
    apply(&mut s, initial, peer_inbox);
    s
}

/// Sends the held events among `ids` to the peer, newest first, as the driver does.
fn send_events(s: &mut Side, ids: &[EventId], peer_inbox: &mut VecDeque<Vec<u8>>) {
    let mut raws: Vec<(u64, Vec<u8>)> = ids
        .iter()
        .filter_map(|id| s.store.events.get(id).cloned())
        .collect();
    raws.sort_by_key(|r| std::cmp::Reverse(r.0));
    for f in event_frames(raws.into_iter().map(|(_, r)| r).collect()) {
        peer_inbox.push_back(f.encode());
    }
    s.link.sent(ids);
}

fn apply(s: &mut Side, actions: Vec<Action>, peer_inbox: &mut VecDeque<Vec<u8>>) {
    for a in actions {
        match a {
            Action::Send(f) => {
                s.sent.push(f.name());
                peer_inbox.push_back(f.encode());
            }
            Action::Admitted { .. } => s.admitted = true,
            Action::Store(evs) => {
                s.store.commits += 1;
                for e in evs {
                    s.received_order.push(e.event().content.time.0);
                    s.store
                        .events
                        .insert(e.id(), (e.event().content.time.0, e.bytes().to_vec()));
                }
                if let Some(Action::Send(ack)) = s.link.stored() {
                    peer_inbox.push_back(ack.encode());
                }
            }
            Action::SendEvents(ids) => send_events(s, &ids, peer_inbox),
            Action::SendNewer(after) => {
                let ids = s.store.newer(after);
                send_events(s, &ids, peer_inbox);
                peer_inbox.push_back(Frame::CatchUpEnd.encode());
            }
            Action::Learned(_) | Action::Reconciled { .. } => {}
            Action::CatchingUp => s.catching_up += 1,
            Action::Penalize { points, .. } => s.penalties += points,
            Action::Close(reason) => s.closed = Some(reason),
            Action::Notice(n) => s.notices.push(n),
            Action::Differences { have, need, .. } => s.differences.push((have, need)),
            Action::Delivered(_) | Action::File(_) | Action::ServeFile { .. } => {}
        }
    }
}

fn pair(
    a_secret: Option<&str>,
    b_secret: Option<&str>,
    a_evs: &[(u64, EventId, Vec<u8>)],
    b_evs: &[(u64, EventId, Vec<u8>)],
) -> (Side, Side) {
    pair_with(config(1, a_secret), config(2, b_secret), a_evs, b_evs)
}

/// Node 1 (`a`, dialling) and node 2 (`b`) with these link configurations.
fn pair_with(
    a_config: LinkConfig,
    b_config: LinkConfig,
    a_evs: &[(u64, EventId, Vec<u8>)],
    b_evs: &[(u64, EventId, Vec<u8>)],
) -> (Side, Side) {
    let exporter = [42u8; 32];
    let (la, acts_a) = Link::new(a_config, Role::Dialer, NodeId([2; 32]), exporter);
    let (lb, acts_b) = Link::new(b_config, Role::Acceptor, NodeId([1; 32]), exporter);
    let mut to_b = VecDeque::new();
    let mut to_a = VecDeque::new();
    let mut a = side(la, acts_a, a_evs, &mut to_b);
    let mut b = side(lb, acts_b, b_evs, &mut to_a);
    a.inbox = to_a;
    b.inbox = to_b;
    (a, b)
}

fn run(a: &mut Side, b: &mut Side) {
    run_at(a, b, Instant::now());
}

/// Like [`run`], with both links told it is `now`.
fn run_at(a: &mut Side, b: &mut Side, now: Instant) {
    for _ in 0..10_000 {
        if a.inbox.is_empty() && b.inbox.is_empty() {
            return;
        }
        if let Some(bytes) = b.inbox.pop_front() {
            let acts = b.link.on_frame(&bytes, now, &mut b.store);
            apply(b, acts, &mut a.inbox);
        }
        if let Some(bytes) = a.inbox.pop_front() {
            let acts = a.link.on_frame(&bytes, now, &mut a.store);
            apply(a, acts, &mut b.inbox);
        }
    }
    panic!("the links never went quiet");
}

/// Like [`run_at`], except that the frame `held` is kept from `a` (the first time it comes)
/// and returned instead of delivered.
fn run_holding_back(a: &mut Side, b: &mut Side, held: &[u8], now: Instant) -> Option<Vec<u8>> {
    let mut kept = None;
    while !(a.inbox.is_empty() && b.inbox.is_empty()) {
        if let Some(bytes) = b.inbox.pop_front() {
            let acts = b.link.on_frame(&bytes, now, &mut b.store);
            apply(b, acts, &mut a.inbox);
        }
        if let Some(bytes) = a.inbox.pop_front() {
            if kept.is_none() && bytes == held {
                kept = Some(bytes);
                continue;
            }
            let acts = a.link.on_frame(&bytes, now, &mut a.store);
            apply(a, acts, &mut b.inbox);
        }
    }
    kept
}

#[test]
fn same_secret_admits_and_converges_both_ways() {
    let common = events(300, 1);
    let mut a_evs = common.clone();
    a_evs.extend(events(50, 2));
    let mut b_evs = common;
    b_evs.extend(events(70, 3));
    let (mut a, mut b) = pair(Some("s3cret"), Some("s3cret"), &a_evs, &b_evs);
    run(&mut a, &mut b);
    assert!(a.admitted && b.admitted);
    assert!(a.link.was_admitted() && !a.link.refused());
    assert!(
        a.closed.is_none() && b.closed.is_none(),
        "{:?} {:?}",
        a.closed,
        b.closed
    );
    assert_eq!(a.store.events.len(), 301 + 51 + 71);
    assert_eq!(
        a.store.events.keys().collect::<Vec<_>>(),
        b.store.events.keys().collect::<Vec<_>>()
    );
    // What a fetched from b arrived newest first.
    let got = &a.received_order;
    assert!(
        got.windows(2).all(|w| w[0] >= w[1]),
        "not newest first: {got:?}"
    );
    assert_eq!(a.penalties + b.penalties, 0);
}

#[test]
fn an_empty_node_asks_for_everything_once_and_gets_it_newest_first() {
    // 10 000 ids would take negentropy six 60 kB rounds to list.
    let b_evs = events(10_000, 4);
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &b_evs);
    run(&mut a, &mut b);
    assert!(a.closed.is_none() && b.closed.is_none());
    assert_eq!(
        a.store.events.len(),
        b_evs.len(),
        "the empty node holds everything"
    );
    assert_eq!(a.catching_up, 1);
    let asked: Vec<&str> = a.sent.iter().copied().filter(|n| *n != "hello").collect();
    assert_eq!(asked, ["catch-up"], "one request, no reconciliation rounds");
    assert!(!b.sent.contains(&"recon"));
    let got = &a.received_order;
    assert_eq!(got.len(), b_evs.len());
    assert!(got.windows(2).all(|w| w[0] >= w[1]), "not newest first");
    assert_eq!(a.penalties + b.penalties, 0);
    // The next session, now that the node holds events, reconciles as usual and finds
    // nothing missing.
    let later = Instant::now() + Duration::from_secs(61);
    let acts = a.link.on_tick(later, &mut a.store);
    apply(&mut a, acts, &mut b.inbox);
    run_at(&mut a, &mut b, later);
    assert_eq!(a.sent.last(), Some(&"recon-end"));
    assert_eq!(a.catching_up, 1);
    assert_eq!(a.store.events.len(), b_evs.len());
}

#[test]
fn an_empty_node_that_accepted_the_link_gets_everything_newest_first_in_one_round_trip() {
    // Two nodes that find each other at once both dial, and the link kept may be the one
    // the node holding the events dialled: the empty node is then the accepting side.
    let a_evs = events(10_000, 4);
    let (mut a, mut b) = pair(Some("s"), Some("s"), &a_evs, &[]);
    run(&mut a, &mut b);
    assert!(a.closed.is_none() && b.closed.is_none());
    assert_eq!(
        b.store.events.len(),
        a_evs.len(),
        "the empty node holds everything"
    );
    let got = &b.received_order;
    assert_eq!(got.len(), a_evs.len());
    assert!(got.windows(2).all(|w| w[0] >= w[1]), "not newest first");
    assert_eq!(b.catching_up, 1);
    // One request each way and no reconciliation rounds: the dialler said what it holds,
    // the empty side answered that it holds nothing.
    let sent =
        |s: &Side| -> Vec<&str> { s.sent.iter().copied().filter(|n| *n != "hello").collect() };
    assert_eq!(sent(&b), ["catch-up"]);
    assert_eq!(sent(&a), ["catch-up"]);
    assert_eq!(a.link.stats().reconciliations, 1);
    assert_eq!(a.penalties + b.penalties, 0);
    // The next session, now that both hold the events, finds nothing missing: nothing is
    // asked for and nothing more arrives.
    let later = Instant::now() + Duration::from_secs(61);
    let before = (a.sent.len(), b.sent.len());
    let acts = a.link.on_tick(later, &mut a.store);
    apply(&mut a, acts, &mut b.inbox);
    run_at(&mut a, &mut b, later);
    assert_eq!(a.sent.last(), Some(&"recon-end"));
    let asked = |s: &Side, from: usize| s.sent[from..].contains(&"want");
    assert!(!asked(&a, before.0) && !asked(&b, before.1));
    assert_eq!(b.received_order.len(), a_evs.len());
    assert_eq!(a.link.stats().reconciliations, 2);
}

#[test]
fn the_dialler_starts_its_first_session_only_when_the_answer_to_its_catch_up_has_come() {
    let shared = events(200, 4);
    let (mut a, mut b) = pair(Some("s"), Some("s"), &shared, &shared);
    let now = Instant::now();
    // Deliver everything to `a` but the accepting side's `CatchUp`, held back.
    let answer = Frame::CatchUp(shared.iter().map(|e| e.0).max()).encode();
    let answer = run_holding_back(&mut a, &mut b, &answer, now)
        .expect("the accepting side answers with its own CatchUp");
    assert!(
        !a.sent.contains(&"recon"),
        "a session began before the answer"
    );
    // Not even when a session falls due meanwhile.
    let later = now + Duration::from_secs(61);
    assert_eq!(a.link.poll_timeout(), None);
    assert!(a.link.on_tick(later, &mut a.store).is_empty());
    let acts = a.link.on_frame(&answer, later, &mut a.store);
    apply(&mut a, acts, &mut b.inbox);
    run_at(&mut a, &mut b, later);
    assert_eq!(a.sent.last(), Some(&"recon-end"));
    assert_eq!(a.penalties + b.penalties, 0);
    assert!(a.closed.is_none() && b.closed.is_none());
}

#[test]
fn a_later_session_compares_only_what_was_held_when_the_previous_one_began() {
    let shared = events(100, 4);
    let (mut a, mut b) = pair(Some("s"), Some("s"), &shared, &shared);
    run(&mut a, &mut b);
    let put = |side: &mut Side, ev: &(u64, EventId, Vec<u8>)| {
        side.store.events.insert(ev.1, (ev.0, ev.2.clone()));
    };
    // Since then: `b` got an old event `a` lacks (a push lost to a broken link), and each
    // got a new one, still on its way to the other by live push.
    let old = events(20, 5)[10].clone();
    let b_new = events(200, 6)[200].clone();
    let a_new = events(300, 7)[300].clone();
    assert!(old.0 < shared[100].0 && shared[100].0 < b_new.0 && b_new.0 < a_new.0);
    put(&mut b, &old);
    put(&mut b, &b_new);
    put(&mut a, &a_new);
    let sent_before = a.sent.len();
    let later = Instant::now() + Duration::from_secs(61);
    let acts = a.link.on_tick(later, &mut a.store);
    apply(&mut a, acts, &mut b.inbox);
    run_at(&mut a, &mut b, later);
    assert!(
        !a.sent[sent_before..].contains(&"catch-up"),
        "a later session asks for nothing newer: {:?}",
        &a.sent[sent_before..]
    );
    assert!(
        a.store.events.contains_key(&old.1),
        "the old event was found"
    );
    assert!(
        !a.store.events.contains_key(&b_new.1) && !b.store.events.contains_key(&a_new.1),
        "events newer than the previous session's start are left to live push"
    );
    // The session after compares up to where this one began: what a push missed arrives.
    let later = later + Duration::from_secs(61);
    let acts = a.link.on_tick(later, &mut a.store);
    apply(&mut a, acts, &mut b.inbox);
    run_at(&mut a, &mut b, later);
    assert!(a.store.events.contains_key(&b_new.1));
    assert!(b.store.events.contains_key(&a_new.1));
    assert_eq!(a.link.stats().reconciliations, 3);
    assert_eq!(a.penalties + b.penalties, 0);
}

#[test]
fn no_session_starts_while_a_catch_up_is_still_arriving() {
    let b_evs = events(300, 4);
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &b_evs);
    let now = Instant::now();
    // Everything is delivered but the end of the catch-up, which stays on the way.
    let end = run_holding_back(&mut a, &mut b, &Frame::CatchUpEnd.encode(), now)
        .expect("the peer ends its catch-up with CatchUpEnd");
    assert_eq!(a.store.events.len(), b_evs.len());
    // A session due meanwhile would find every event not yet received missing.
    let later = now + Duration::from_secs(61);
    assert_eq!(a.link.poll_timeout(), None);
    let acts = a.link.on_tick(later, &mut a.store);
    assert!(acts.is_empty(), "{acts:?}");
    // The end arrives: the next session is due, and finds nothing missing.
    let acts = a.link.on_frame(&end, later, &mut a.store);
    assert!(acts.is_empty(), "{acts:?}");
    assert!(a.link.poll_timeout().is_some_and(|t| t <= later));
    let acts = a.link.on_tick(later, &mut a.store);
    apply(&mut a, acts, &mut b.inbox);
    run_at(&mut a, &mut b, later);
    assert_eq!(a.sent.last(), Some(&"recon-end"));
    assert_eq!(a.link.stats().reconciliations, 2);
    assert_eq!(a.penalties + b.penalties, 0);
}

#[test]
fn a_node_that_was_away_gets_what_it_missed_in_one_request_and_reconciles_the_rest_in_one_round() {
    let b_evs = events(10_000, 4);
    // `a` holds the oldest 1 000 events and one that `b` lacks, written while it was away.
    let mut a_evs: Vec<_> = b_evs[..1000].to_vec();
    a_evs.push(events_with(1, 4, |_| "written while away".into())[1].clone());
    let (mut a, mut b) = pair(Some("s"), Some("s"), &a_evs, &b_evs);
    run(&mut a, &mut b);
    assert!(a.closed.is_none() && b.closed.is_none());
    assert_eq!(a.store.events.len(), b_evs.len() + 1);
    assert_eq!(b.store.events.len(), b_evs.len() + 1, "b got a's own event");
    assert_eq!(a.catching_up, 0);
    // Listing the 9 000 ids it lacks would take negentropy five 60 kB rounds at least; the
    // session only finds the one difference among the 1 000 older events.
    let rounds = a.sent.iter().filter(|n| **n == "recon").count();
    assert!(
        rounds <= 2,
        "the newer events came without reconciling them: {:?}",
        a.sent
    );
    let got = &a.received_order;
    assert!(got.windows(2).all(|w| w[0] >= w[1]), "not newest first");
    assert_eq!(a.penalties + b.penalties, 0);
}

#[test]
fn a_node_that_holds_the_newest_event_only_still_gets_everything_older() {
    let b_evs = events(10_000, 4);
    let newest = b_evs.iter().max_by_key(|e| e.0).unwrap().clone();
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[newest], &b_evs);
    run(&mut a, &mut b);
    assert!(a.closed.is_none() && b.closed.is_none());
    assert_eq!(a.store.events.len(), b_evs.len());
    // Nothing is newer than what it holds: negentropy lists all of it, 60 kB a round.
    assert!(a.sent.iter().filter(|n| **n == "recon").count() >= 5);
    assert_eq!(a.penalties + b.penalties, 0);
}

#[test]
fn a_node_holding_one_event_reconciles_and_catch_ups_too_close_or_unasked_from_the_acceptor_are_refused()
 {
    let b_evs = events(500, 4);
    let (mut a, mut b) = pair(Some("s"), Some("s"), &events(0, 1), &b_evs);
    run(&mut a, &mut b);
    assert_eq!(a.catching_up, 0);
    assert!(a.sent.contains(&"recon"));
    assert_eq!(a.store.events.len(), 1 + b_evs.len());
    // A session later, the dialler may ask again; asking again at once would have b read
    // its whole store again for two bytes: cut off.
    let later = Instant::now() + Duration::from_secs(5);
    let again = Frame::CatchUp(None).encode();
    let acts = b.link.on_frame(&again, later, &mut b.store);
    assert!(
        acts.iter().any(|x| matches!(x, Action::SendNewer(None))),
        "{acts:?}"
    );
    let acts = b
        .link
        .on_frame(&again, later + Duration::from_secs(1), &mut b.store);
    assert!(
        acts.iter().any(|x| matches!(x, Action::Close(_))),
        "{acts:?}"
    );
    assert!(!acts.iter().any(|x| matches!(x, Action::SendNewer(_))));
    // From the accepting side a `CatchUp` is only the one answer to the dialler's; another
    // breaks the protocol.
    let acts = a
        .link
        .on_frame(&Frame::CatchUp(None).encode(), Instant::now(), &mut a.store);
    assert!(acts.iter().any(|x| matches!(x, Action::Close(_))));
    assert!(
        acts.iter()
            .any(|x| matches!(x, Action::Penalize { points, .. } if *points > 0))
    );
}

/// Node 1 and node 2 with slices of `slice` events.
fn pair_sliced(
    slice: usize,
    a_evs: &[(u64, EventId, Vec<u8>)],
    b_evs: &[(u64, EventId, Vec<u8>)],
) -> (Side, Side) {
    let mut a_config = config(1, Some("s"));
    let mut b_config = config(2, Some("s"));
    a_config.slice_items = slice;
    b_config.slice_items = slice;
    pair_with(a_config, b_config, a_evs, b_evs)
}

#[test]
fn a_session_goes_slice_by_slice_and_neither_side_holds_more_than_a_slice() {
    let common = events(3_000, 4);
    // Each side lacks a few events of the other's, spread over the whole history.
    let all_but = |every: usize, at: usize| -> Vec<_> {
        let mut evs = common.clone();
        let mut i = 0;
        evs.retain(|_| {
            i += 1;
            (i - 1) % every != at
        });
        evs
    };
    let (a_evs, b_evs) = (all_but(701, 5), all_but(557, 9));
    let (mut a, mut b) = pair_sliced(500, &a_evs, &b_evs);
    run(&mut a, &mut b);
    assert!(
        a.closed.is_none() && b.closed.is_none(),
        "{:?} {:?}",
        a.closed,
        b.closed
    );
    assert_eq!(a.store.events.len(), common.len());
    assert_eq!(b.store.events.len(), common.len());
    assert_eq!(a.penalties + b.penalties, 0);
    // About 3 000 events of the dialler in slices of 500: six or seven slices, oldest first.
    let slices = a.sent.iter().filter(|n| **n == "slice").count();
    assert!((6..=7).contains(&slices), "{slices} slices: {:?}", a.sent);
    assert_eq!(a.sent.iter().filter(|n| **n == "recon-end").count(), 1);
    // Each side read one slice at a time: at most a slice and the few the other lacks.
    for (side, store) in [("dialler", &a.store), ("acceptor", &b.store)] {
        let most = store.collected.iter().max().copied().unwrap_or(0);
        assert!(
            most <= 510,
            "the {side} held {most} items at once: {:?}",
            store.collected
        );
    }
    // The session counts once, and the next one finds nothing to do.
    assert_eq!(a.link.stats().reconciliations, 1);
    let later = Instant::now() + Duration::from_secs(61);
    let acts = a.link.on_tick(later, &mut a.store);
    apply(&mut a, acts, &mut b.inbox);
    run_at(&mut a, &mut b, later);
    assert_eq!(a.link.stats().reconciliations, 2);
    assert_eq!(a.store.events.len(), common.len());
}

#[test]
fn a_slice_from_the_acceptor_or_ending_before_it_starts_is_refused() {
    let evs = events(10, 4);
    let (mut a, mut b) = pair(Some("s"), Some("s"), &evs, &evs);
    run(&mut a, &mut b);
    assert!(a.closed.is_none() && b.closed.is_none());
    let now = Instant::now();
    let backwards = Frame::Slice { from: 10, to: 9 }.encode();
    let acts = b.link.on_frame(&backwards, now, &mut b.store);
    assert!(
        acts.iter().any(|x| matches!(x, Action::Close(_))),
        "{acts:?}"
    );
    let slice = Frame::Slice { from: 0, to: 9 }.encode();
    let acts = a.link.on_frame(&slice, now, &mut a.store);
    assert!(
        acts.iter().any(|x| matches!(x, Action::Close(_))),
        "{acts:?}"
    );
    assert!(
        acts.iter()
            .any(|x| matches!(x, Action::Penalize { points, .. } if *points > 0))
    );
}

#[test]
fn wrong_secret_is_refused_and_nothing_is_exchanged() {
    let a_evs = events(20, 1);
    let b_evs = events(20, 2);
    let (mut a, mut b) = pair(Some("one"), Some("two"), &a_evs, &b_evs);
    run(&mut a, &mut b);
    assert!(!a.admitted && !b.admitted);
    assert!(
        a.closed.as_deref().unwrap_or("").contains("not admitted"),
        "{:?}",
        a.closed
    );
    assert!(b.closed.is_some());
    assert_eq!(a.store.events.len(), 21);
    assert_eq!(b.store.events.len(), 21);
    // Both know it was a refusal (not worth redialling), not a broken connection.
    assert!(a.link.refused() && b.link.refused());
    assert!(!a.link.was_admitted() && !b.link.was_admitted());
}

#[test]
fn a_goodbye_before_admission_for_another_reason_is_not_a_refusal() {
    let (mut a, _b) = pair(Some("s"), Some("s"), &[], &[]);
    let bye = Frame::Bye("the node is shutting down".into()).encode();
    let acts = a.link.on_frame(&bye, Instant::now(), &mut a.store);
    assert!(acts.iter().any(|x| matches!(x, Action::Close(_))));
    assert!(!a.link.refused() && !a.link.was_admitted());
}

#[test]
fn no_secret_and_no_allow_list_admits_nobody() {
    let (mut a, mut b) = pair(None, None, &events(1, 1), &events(1, 2));
    run(&mut a, &mut b);
    assert!(!a.admitted && !b.admitted);
}

#[test]
fn allow_list_admits_without_a_secret() {
    let exporter = [1u8; 32];
    let mut ca = config(1, None);
    ca.allow = vec![NodeId([2; 32])];
    let mut cb = config(2, None);
    cb.allow = vec![NodeId([1; 32])];
    let (la, acts_a) = Link::new(ca, Role::Dialer, NodeId([2; 32]), exporter);
    let (lb, acts_b) = Link::new(cb, Role::Acceptor, NodeId([1; 32]), exporter);
    let (mut to_a, mut to_b) = (VecDeque::new(), VecDeque::new());
    let mut a = side(la, acts_a, &events(3, 1), &mut to_b);
    let mut b = side(lb, acts_b, &[], &mut to_a);
    a.inbox = to_a;
    b.inbox = to_b;
    run(&mut a, &mut b);
    assert!(a.admitted && b.admitted);
    assert_eq!(b.store.events.len(), 4);
}

#[test]
fn forged_events_and_garbage_cost_reputation_and_store_nothing() {
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &[]);
    run(&mut a, &mut b);
    assert!(b.admitted);
    let mut forged = events(1, 9)[1].2.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let acts = b.link.on_frame(
        &Frame::Events(vec![forged]).encode(),
        Instant::now(),
        &mut b.store,
    );
    apply(&mut b, acts, &mut a.inbox);
    assert!(b.store.events.is_empty());
    assert!(b.penalties > 0);
    assert!(
        b.closed.is_none(),
        "one bad event does not cut an honest-looking link"
    );
    let acts = b
        .link
        .on_frame(&[0xff, 0xff, 0xff, 0x01], Instant::now(), &mut b.store);
    apply(&mut b, acts, &mut a.inbox);
    assert!(b.closed.is_some(), "garbage closes the link");
}

#[test]
fn a_copy_of_an_event_held_is_neither_checked_nor_stored_again() {
    // In a mesh each event reaches a node from several peers: b holds it already.
    let evs = events(2, 5);
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &evs);
    run(&mut a, &mut b);
    let received = b.link.stats().events_received;
    let acts = b.link.on_frame(
        &Frame::Events(evs.iter().map(|e| e.2.clone()).collect()).encode(),
        Instant::now(),
        &mut b.store,
    );
    assert!(
        !acts.iter().any(|a| matches!(a, Action::Store(_))),
        "nothing to store: {acts:?}"
    );
    apply(&mut b, acts, &mut a.inbox);
    assert_eq!(b.link.stats().events_received, received + evs.len() as u64);
    assert_eq!(b.penalties, 0);
    // And b does not push them to a, which holds them (it sent them to b and got b's in the
    // reconciliation above).
    let room = validate(&evs[1].2).unwrap().room();
    assert!(b.link.push(offer(room, &evs[1], None)).is_none());
    // A new event in the same frame is still checked and stored.
    let new = &events(2, 6)[2];
    let acts = b.link.on_frame(
        &Frame::Events(vec![evs[2].2.clone(), new.2.clone()]).encode(),
        Instant::now(),
        &mut b.store,
    );
    let stored: Vec<EventId> = acts
        .iter()
        .filter_map(|a| match a {
            Action::Store(evs) => Some(evs.iter().map(|e| e.id()).collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(stored, vec![new.1]);
}

#[test]
fn a_file_want_of_too_many_ranges_closes_the_link_with_a_penalty() {
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &[]);
    run(&mut a, &mut b);
    let ranges = vec![
        basis_proto::frame::ChunkRange { start: 0, end: 1 };
        basis_proto::limits::MAX_RANGES + 1
    ];
    let want = Frame::File(basis_proto::frame::FileFrame::Want {
        address: [7; 32],
        list: false,
        ranges,
    });
    let acts = b
        .link
        .on_frame(&want.encode(), Instant::now(), &mut b.store);
    assert!(
        !acts.iter().any(|a| matches!(a, Action::File(_))),
        "the driver is never handed it: {acts:?}"
    );
    apply(&mut b, acts, &mut a.inbox);
    assert!(b.closed.as_deref().unwrap_or("").contains("ranges"));
    assert!(b.penalties > 0);
}

#[test]
fn frames_before_hello_close_the_link() {
    let (_, mut b) = pair(Some("s"), Some("s"), &[], &[]);
    let acts = b.link.on_frame(
        &Frame::Events(vec![]).encode(),
        Instant::now(),
        &mut b.store,
    );
    let mut sink = VecDeque::new();
    apply(&mut b, acts, &mut sink);
    assert!(b.closed.as_deref().unwrap_or("").contains("before hello"));
    assert!(b.penalties > 0);
}

#[test]
fn live_push_is_not_echoed() {
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &[]);
    run(&mut a, &mut b);
    let ev = &events(0, 4)[0];
    let room = validate(&ev.2).unwrap().room();
    let push = a
        .link
        .push(offer(room, ev, None))
        .expect("first push goes out");
    apply(&mut a, vec![push], &mut b.inbox);
    run(&mut a, &mut b);
    assert_eq!(b.store.events.len(), 1);
    // b received it from a: b never pushes it back to a.
    assert!(b.link.push(offer(room, ev, None)).is_none());
    assert!(a.link.push(offer(room, ev, None)).is_none());
}

#[test]
fn a_peer_is_not_pushed_what_a_node_it_is_linked_to_sent_here() {
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &[]);
    run(&mut a, &mut b);
    let (node_a, c, d) = (NodeId([1; 32]), NodeId([3; 32]), NodeId([4; 32]));
    let at = |node| PeerInfo {
        node,
        addrs: vec!["192.0.2.3:7000".parse().unwrap()],
    };
    // a tells b it is linked to c.
    let share = a.link.share_peers(&[at(c)]).expect("a peer list");
    apply(&mut a, vec![share], &mut b.inbox);
    run(&mut a, &mut b);
    let evs = events(4, 4);
    let room = validate(&evs[0].2).unwrap().room();
    // Came from c: c pushed it to a itself.
    assert!(b.link.push(offer(room, &evs[0], Some(c))).is_none());
    // Came from a: never back.
    assert!(b.link.push(offer(room, &evs[1], Some(node_a))).is_none());
    // From d, which a is not linked to, and from b's own clients: b carries them to a.
    assert!(b.link.push(offer(room, &evs[2], Some(d))).is_some());
    assert!(b.link.push(offer(room, &evs[3], None)).is_some());
    // a lost its link to c and says so with an empty list: what comes from c goes to a now.
    let share = a.link.share_peers(&[]).expect("an empty list goes out too");
    apply(&mut a, vec![share], &mut b.inbox);
    run(&mut a, &mut b);
    assert!(b.link.push(offer(room, &evs[0], Some(c))).is_some());
}

/// `ev` of `room` as the driver offers it for live push, received from `from` (`None`: a
/// client of the node posted it).
fn offer(room: RoomId, ev: &(u64, EventId, Vec<u8>), from: Option<NodeId>) -> Offer<'_> {
    Offer {
        room,
        id: ev.1,
        bytes: &ev.2,
        from,
    }
}

/// `evs` as the driver offers them to [`Link::push_batch`]: all of `room`, posted by the
/// node's own clients.
fn offered(evs: &[(u64, EventId, Vec<u8>)], room: RoomId) -> impl Iterator<Item = Offer<'_>> {
    evs.iter().map(move |ev| offer(room, ev, None))
}

#[test]
fn events_waiting_together_go_in_one_frame_and_one_commit() {
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &[]);
    run(&mut a, &mut b);
    let evs = events(4, 6);
    let room = validate(&evs[0].2).unwrap().room();
    // The first went out on its own already: the batch leaves it out.
    let first = a
        .link
        .push(offer(room, &evs[0], None))
        .expect("first push goes out");
    let batch = a.link.push_batch(offered(&evs, room));
    let frames: Vec<_> = batch
        .iter()
        .map(|act| match act {
            Action::Send(Frame::Events(raws)) => raws.len(),
            other => panic!("not an events frame: {other:?}"),
        })
        .collect();
    assert_eq!(frames, vec![4], "the four not yet sent, in one frame");
    let commits_before = b.store.commits;
    apply(&mut a, vec![first], &mut b.inbox);
    apply(&mut a, batch, &mut b.inbox);
    run(&mut a, &mut b);
    assert_eq!(b.store.events.len(), 5);
    assert_eq!(b.store.commits - commits_before, 2, "one commit a frame");
    // Nothing goes back, and nothing twice.
    assert!(b.link.push_batch(offered(&evs, room)).is_empty());
    assert!(a.link.push_batch(offered(&evs, room)).is_empty());
}

#[test]
fn stores_under_way_together_are_acknowledged_in_order_and_a_failed_one_is_not() {
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &[]);
    run(&mut a, &mut b);
    let evs = events(3, 8);
    let room = validate(&evs[0].2).unwrap().room();
    let now = Instant::now();
    // A LAN link lets its driver keep stores under way; one whose peer wants
    // acknowledgements (an upstream bridge, with a scope) does not: they go in frame order.
    assert_eq!(
        b.link.stores_allowed(),
        basis_proto::limits::STORES_UNDER_WAY
    );
    let acts = b
        .link
        .on_frame(&Frame::Scope(vec![room]).encode(), now, &mut b.store);
    assert!(acts.is_empty(), "{acts:?}");
    assert_eq!(b.link.stores_allowed(), 0);
    // Three frames arrive before the driver has stored any of them.
    let mut stores = 0;
    for (_, _, raw) in &evs[..3] {
        let frame = Frame::Events(vec![raw.clone()]).encode();
        let acts = b.link.on_frame(&frame, now, &mut b.store);
        stores += acts
            .iter()
            .filter(|x| matches!(x, Action::Store(_)))
            .count();
    }
    assert_eq!(stores, 3);
    assert_eq!(b.link.stores_pending(), 3);
    // The first is stored, the second fails, the third is stored: acks for 1 and 3 only.
    let first = b.link.stored();
    b.link.store_failed();
    let third = b.link.stored();
    let acked: Vec<_> = [first, third]
        .into_iter()
        .map(|x| match x {
            Some(Action::Send(Frame::Stored(n))) => n,
            other => panic!("not an acknowledgement: {other:?}"),
        })
        .collect();
    assert_eq!(acked, vec![1, 3]);
    assert_eq!(b.link.stores_pending(), 0);
    assert!(b.link.stored().is_none(), "nothing left to acknowledge");
}

#[test]
fn a_batch_larger_than_a_frame_is_split_at_the_frame_limit() {
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &[]);
    run(&mut a, &mut b);
    let long = "x".repeat(3_000);
    let n = basis_proto::limits::EVENTS_FRAME_BYTES / 3_000 + 20;
    assert!(n < 300, "keep the test quick: {n} events");
    let evs = events_with(n, 7, |i| format!("{i} {long}"));
    let room = validate(&evs[0].2).unwrap().room();
    let batch = a.link.push_batch(offered(&evs, room));
    assert!(batch.len() >= 2, "{} frames", batch.len());
    for act in &batch {
        let Action::Send(frame) = act else {
            panic!("not a frame: {act:?}")
        };
        assert!(frame.encode().len() <= basis_proto::limits::EVENTS_FRAME_BYTES + 64);
    }
    apply(&mut a, batch, &mut b.inbox);
    run(&mut a, &mut b);
    assert_eq!(b.store.events.len(), n + 1);
}

#[test]
fn notices_cross_an_open_link_within_a_rate() {
    let (mut a, mut b) = pair(Some("s"), Some("s"), &[], &[]);
    let notice = Notice {
        user: UserId([5; 32]),
        room: Some(RoomId([6; 32])),
        kind: NoticeKind::Typing(true),
    };
    // Nothing goes out before admission.
    assert!(a.link.notice(notice.clone()).is_none());
    run(&mut a, &mut b);
    let send = a.link.notice(notice.clone()).expect("open link sends");
    apply(&mut a, vec![send], &mut b.inbox);
    run(&mut a, &mut b);
    assert_eq!(b.notices, vec![notice]);
    // A flood is cut down to the per-second limit, without closing the link.
    let presence = Notice {
        user: UserId([5; 32]),
        room: None,
        kind: NoticeKind::Presence(Presence::Online),
    };
    for _ in 0..200 {
        let send = a.link.notice(presence.clone()).unwrap();
        apply(&mut a, vec![send], &mut b.inbox);
    }
    run(&mut a, &mut b);
    assert_eq!(
        b.notices.len() as u32,
        basis_proto::limits::NOTICES_PER_SEC,
        "one notice before, the rest up to the limit"
    );
    assert!(b.closed.is_none());
    assert_eq!(b.penalties, 0);
}

fn upstream_pair(
    a_evs: &[(u64, EventId, Vec<u8>)],
    b_evs: &[(u64, EventId, Vec<u8>)],
) -> (Side, Side) {
    let mut bridge = config(1, Some("s"));
    bridge.upstream = true;
    pair_with(bridge, config(2, Some("s")), a_evs, b_evs)
}

fn room_of(evs: &[(u64, EventId, Vec<u8>)]) -> RoomId {
    validate(&evs[0].2).unwrap().room()
}

fn ids(evs: &[(u64, EventId, Vec<u8>)]) -> Vec<EventId> {
    let mut ids: Vec<EventId> = evs.iter().map(|e| e.1).collect();
    ids.sort();
    ids
}

#[test]
fn an_upstream_link_reconciles_only_its_scope_and_sends_nothing_by_itself() {
    let room1 = events(40, 1);
    let room2 = events(10, 2);
    let room3 = events(10, 3);
    // The bridge holds rooms 1 and 2; upstream holds the first half of room 1, and room 3.
    let a_evs: Vec<_> = room1.iter().chain(&room2).cloned().collect();
    let b_evs: Vec<_> = room1[..20].iter().chain(&room3).cloned().collect();
    let (mut a, mut b) = upstream_pair(&a_evs, &b_evs);
    run(&mut a, &mut b);
    assert!(a.admitted && b.admitted && a.closed.is_none() && b.closed.is_none());
    // Admission alone moves nothing.
    assert!(a.differences.is_empty());
    assert_eq!(b.store.events.len(), b_evs.len());
    assert_eq!(a.store.events.len(), a_evs.len());

    let acts = a
        .link
        .reconcile_rooms(vec![room_of(&room1)], Instant::now(), &mut a.store);
    apply(&mut a, acts, &mut b.inbox);
    run(&mut a, &mut b);
    assert_eq!(a.differences.len(), 1);
    let (mut have, need) = a.differences[0].clone();
    have.sort();
    assert_eq!(have, ids(&room1[20..]), "only room 1's missing half");
    assert!(need.is_empty(), "room 3 is outside the scope: {need:?}");
    // The driver decides what to send: nothing went yet.
    assert_eq!(b.store.events.len(), b_evs.len());

    // Room 3 only: the bridge learns what it lacks there, and room 1's surplus is not listed.
    let acts = a
        .link
        .reconcile_rooms(vec![room_of(&room3)], Instant::now(), &mut a.store);
    apply(&mut a, acts, &mut b.inbox);
    run(&mut a, &mut b);
    let (have, mut need) = a.differences[1].clone();
    need.sort();
    assert!(have.is_empty());
    assert_eq!(need, ids(&room3));
    assert_eq!(a.penalties + b.penalties, 0);
}

#[test]
fn an_upstream_link_serves_no_wants_and_a_subscription_limits_pushes() {
    let room1 = events(3, 1);
    let room2 = events(3, 2);
    let a_evs: Vec<_> = room1.iter().chain(&room2).cloned().collect();
    let (mut a, mut b) = upstream_pair(&a_evs, &[]);
    run(&mut a, &mut b);
    // The upstream asks the bridge for everything, by ids and by catch-up: the bridge sends
    // nothing.
    let wants = vec![
        Frame::Want(a_evs.iter().map(|e| e.1).collect()).encode(),
        Frame::WantEnd.encode(),
        Frame::CatchUp(None).encode(),
    ];
    for w in wants {
        let acts = a.link.on_frame(&w, Instant::now(), &mut a.store);
        assert!(
            !acts.iter().any(|x| matches!(x, Action::SendEvents(_))),
            "{acts:?}"
        );
    }
    // The bridge subscribes to room 1: upstream pushes only room 1's events.
    let sub = a.link.subscribe(vec![room_of(&room1)]).unwrap();
    apply(&mut a, vec![sub], &mut b.inbox);
    run(&mut a, &mut b);
    let fresh1 = &events(5, 1)[4];
    let fresh2 = &events(5, 2)[4];
    assert!(b.link.push(offer(room_of(&room2), fresh2, None)).is_none());
    assert!(b.link.push(offer(room_of(&room1), fresh1, None)).is_some());
    // The bridge never passes on notices.
    let notice = Notice {
        user: UserId([1; 32]),
        room: None,
        kind: NoticeKind::Presence(Presence::Online),
    };
    assert!(a.link.notice(notice).is_none());
}
