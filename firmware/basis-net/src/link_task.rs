//! Drives one QUIC connection: moves frames between the stream and the link state machine and
//! carries out its actions (store, stream events, penalize, close).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use basis_core::{EventId, NodeId, RoomId};
use basis_proto::admission::EXPORTER_LABEL;
use basis_proto::frame::Frame;
use basis_proto::limits::MAX_FRAME;
use basis_proto::link::{Action, Link, event_frames};
use basis_proto::recon::Items;
use basis_proto::{CloseCode, ItemSource, LinkFacts, Role};
use basis_store::Readers;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::closing::{Outcome, close, read_close, refusal_by_peer};
use crate::peers::Refusal;
use crate::service::{NewEvent, Shared};

/// How often a link shares the node's peers when nothing changed (it also shares at once
/// whenever this node gains or loses a link, so a node linked through a hub meets the others).
const SHARE_PEERS_EVERY: Duration = Duration::from_secs(30);
/// Events per store read while streaming.
const STREAM_CHUNK: usize = 500;

/// Per-peer rate limit on bytes read: a token bucket holding one second of the rate. A peer
/// that reads ahead is made to wait, and QUIC flow control holds it back in turn.
struct RateLimit {
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl RateLimit {
    fn new(bytes_per_sec: u64) -> RateLimit {
        let rate = bytes_per_sec.max(1) as f64;
        RateLimit {
            rate,
            tokens: rate.max(MAX_FRAME as f64),
            updated: Instant::now(),
        }
    }

    /// How long to wait before `bytes` more may be read.
    fn take(&mut self, bytes: usize) -> Duration {
        let now = Instant::now();
        let burst = self.rate.max(MAX_FRAME as f64);
        self.tokens =
            (self.tokens + now.duration_since(self.updated).as_secs_f64() * self.rate).min(burst);
        self.updated = now;
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

/// The store as the set a link reconciles over.
pub(crate) struct StoreItems(pub Arc<Readers>);

impl ItemSource for StoreItems {
    fn items(&mut self, scope: Option<&[RoomId]>, items: &mut Items) -> Result<(), String> {
        // Pushing fails only on a sealed set; this one is being built.
        let visit = |ts, id| {
            let _ = items.push(ts, id);
        };
        // Reading the whole set blocks; tell the runtime so other tasks move elsewhere.
        tokio::task::block_in_place(|| match scope {
            Some(rooms) => self.0.for_each_item_in(rooms, visit),
            None => self.0.for_each_item(visit),
        })
        .map_err(|e| e.to_string())
    }
}

pub(crate) fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Writes frames to the stream: small control frames first, bulk event frames when idle.
pub(crate) async fn writer(
    send: SendStream,
    mut control: mpsc::UnboundedReceiver<Vec<u8>>,
    mut bulk: mpsc::Receiver<Vec<u8>>,
) {
    let mut sink = FramedWrite::new(send, codec());
    loop {
        let next = tokio::select! {
            biased;
            frame = control.recv() => frame,
            frame = bulk.recv() => match frame {
                Some(f) => Some(f),
                None => control.recv().await,
            },
        };
        let Some(frame) = next else { break };
        if sink.send(Bytes::from(frame)).await.is_err() {
            return;
        }
    }
    let mut send = sink.into_inner();
    let _ = send.finish();
}

/// Streams held events to the peer, newest first, reporting what went out.
async fn stream_events(
    readers: Arc<Readers>,
    ids: Vec<EventId>,
    bulk: mpsc::Sender<Vec<u8>>,
    sent: mpsc::UnboundedSender<Vec<EventId>>,
) {
    let ordered = {
        let readers = readers.clone();
        tokio::task::spawn_blocking(move || readers.newest_first(&ids)).await
    };
    let Ok(Ok(ordered)) = ordered else {
        log::warn!("cannot read events a peer asked for");
        return;
    };
    for chunk in ordered.chunks(STREAM_CHUNK) {
        let ids: Vec<EventId> = chunk.iter().map(|(_, id)| *id).collect();
        let raw = {
            let readers = readers.clone();
            let ids = ids.clone();
            tokio::task::spawn_blocking(move || readers.raw_many(&ids)).await
        };
        let Ok(Ok(raw)) = raw else {
            log::warn!("cannot read events a peer asked for");
            return;
        };
        for frame in event_frames(raw) {
            if bulk.send(frame.encode()).await.is_err() {
                return;
            }
        }
        let _ = sent.send(ids);
    }
}

/// Runs a link until it closes.
pub(crate) async fn run(
    shared: Arc<Shared>,
    conn: Connection,
    role: Role,
    peer: NodeId,
    send: SendStream,
    recv: RecvStream,
) {
    let remote = crate::service::canonical(conn.remote_address());
    let mut exporter = [0u8; 32];
    if conn
        .export_keying_material(&mut exporter, EXPORTER_LABEL, b"")
        .is_err()
    {
        close(&conn, CloseCode::Unusable, "no keying material");
        return;
    }
    let mut config = shared.link_config.clone();
    if role == Role::Dialer {
        config.dial = shared.next_dial();
    }
    let (mut link, first) = Link::new(config, role, peer, exporter);
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let (bulk_tx, bulk_rx) = mpsc::channel(8);
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel();
    let writer_task = tokio::spawn(writer(send, control_rx, bulk_rx));
    let mut frames = FramedRead::new(recv, codec());
    let mut events = shared.events.subscribe();
    let mut notices = shared.notices_out.subscribe();
    let mut source = StoreItems(shared.readers.clone());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut next_share = Instant::now();
    let mut shared_generation = u64::MAX;
    let mut rate = RateLimit::new(shared.peer_rate);
    let stop = shared.stop.clone();
    let mut ctx = Ctx {
        shared: &shared,
        conn: &conn,
        peer,
        remote,
        control: &control_tx,
        bulk: &bulk_tx,
        sent: &sent_tx,
        facts: None,
        closed: None,
        duplicate: false,
        banned: false,
    };
    ctx.apply(first, &mut link).await;

    while ctx.closed.is_none() {
        let actions = tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(bytes)) => {
                    let wait = rate.take(bytes.len());
                    if !wait.is_zero() {
                        ctx.shared.note_throttled(peer, wait);
                        tokio::time::sleep(wait).await;
                    }
                    let out = link.on_frame(&bytes, Instant::now(), &mut source);
                    ctx.facts = link.facts(Duration::ZERO);
                    out
                }
                // A frame over the size limit is the peer's fault; a connection that broke
                // (a partition, a peer that went away) is nobody's and costs no score.
                Some(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    let reason = format!("unreadable frame from the peer: {e}");
                    let mut out = vec![Action::Send(Frame::Bye(reason.clone()))];
                    out.push(Action::Penalize { points: basis_proto::link::PENALTY_VIOLATION, reason: reason.clone() });
                    out.push(Action::Close(reason));
                    out
                }
                Some(Err(e)) => vec![Action::Close(match conn.close_reason() {
                    Some(reason) => read_close(&reason).0,
                    None => format!("the link broke: {e}"),
                })],
                None => vec![Action::Close(match conn.close_reason() {
                    Some(reason) => read_close(&reason).0,
                    None => "the peer ended the stream".into(),
                })],
            },
            event = events.recv() => match event {
                Ok(ev) => push(&mut link, &ev, peer),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    log::debug!("link {}: {n} live events skipped; reconciliation will catch up", peer.short());
                    Vec::new()
                }
                Err(_) => Vec::new(),
            },
            notice = notices.recv() => match notice {
                Ok(n) => link.notice(n).into_iter().collect(),
                Err(_) => Vec::new(),
            },
            Some(ids) = sent_rx.recv() => {
                link.sent(&ids);
                Vec::new()
            }
            _ = tick.tick() => {
                ctx.shared.note_rtt(peer, conn.rtt());
                let mut out = link.on_tick(Instant::now(), &mut source);
                let generation = ctx.shared.links_changed.load(std::sync::atomic::Ordering::Relaxed);
                if link.is_open() && (Instant::now() >= next_share || generation != shared_generation) {
                    next_share = Instant::now() + SHARE_PEERS_EVERY;
                    shared_generation = generation;
                    out.extend(link.share_peers(&ctx.shared.connected_peers()));
                }
                out
            }
            reason = conn.closed() => vec![Action::Close(read_close(&reason).0)],
            () = stop.cancelled() => {
                vec![Action::Send(Frame::Bye("the node is shutting down".into())), Action::Close("this node is shutting down".into())]
            }
        };
        ctx.apply(actions, &mut link).await;
        ctx.shared.note_stats(peer, link.stats());
    }
    let reason = ctx.closed.take().unwrap_or_default();
    let (duplicate, banned) = (ctx.duplicate, ctx.banned);
    drop(ctx);
    drop(control_tx);
    drop(bulk_tx);
    let (outcome, code) = ending(&conn, &link, duplicate, banned, stop.is_cancelled());
    if outcome != Outcome::Duplicate {
        // Let a Bye reach the peer before the connection goes.
        let _ = tokio::time::timeout(Duration::from_secs(2), writer_task).await;
    }
    close(&conn, code, &reason);
    shared.link_ended(peer, &conn, &reason, outcome);
}

/// What a finished link's end means, and the close code to send for it.
fn ending(
    conn: &Connection,
    link: &Link,
    duplicate: bool,
    banned: bool,
    stopping: bool,
) -> (Outcome, CloseCode) {
    let closed = conn.close_reason();
    let peer_code = closed.as_ref().and_then(|e| read_close(e).1);
    // Closed here while the link ran: another link to the same peer replaced this one.
    let replaced = !stopping && matches!(closed, Some(quinn::ConnectionError::LocallyClosed));
    if duplicate || replaced || peer_code == Some(CloseCode::Duplicate) {
        return (Outcome::Duplicate, CloseCode::Duplicate);
    }
    if link.refused_by_me() {
        return (
            Outcome::Refused(Refusal::NotAdmittedHere),
            CloseCode::NotAdmitted,
        );
    }
    if banned {
        return (Outcome::Refused(Refusal::Banned), CloseCode::Banned);
    }
    if let Some(refusal) = peer_code.and_then(refusal_by_peer) {
        return (Outcome::Refused(refusal), CloseCode::Ended);
    }
    if link.refused() {
        return (
            Outcome::Refused(Refusal::NotAdmittedThere),
            CloseCode::Ended,
        );
    }
    let code = if stopping {
        CloseCode::Shutdown
    } else {
        CloseCode::Ended
    };
    if link.was_admitted() {
        (Outcome::Ended, code)
    } else {
        (Outcome::Broke, code)
    }
}

fn push(link: &mut Link, ev: &NewEvent, peer: NodeId) -> Vec<Action> {
    if ev.origin == Some(peer) {
        return Vec::new();
    }
    link.push(ev.room, ev.id, &ev.bytes).into_iter().collect()
}

struct Ctx<'a> {
    shared: &'a Arc<Shared>,
    conn: &'a Connection,
    peer: NodeId,
    remote: SocketAddr,
    control: &'a mpsc::UnboundedSender<Vec<u8>>,
    bulk: &'a mpsc::Sender<Vec<u8>>,
    sent: &'a mpsc::UnboundedSender<Vec<EventId>>,
    /// The link's facts for the duplicate rule, once the peer's hello came.
    facts: Option<LinkFacts>,
    closed: Option<String>,
    /// Another link to the same peer was kept; this one closes as a duplicate.
    duplicate: bool,
    /// This node banned the peer on this link.
    banned: bool,
}

impl Ctx<'_> {
    async fn apply(&mut self, actions: Vec<Action>, link: &mut Link) {
        for action in actions {
            match action {
                Action::Send(frame) => {
                    let _ = self.control.send(frame.encode());
                }
                Action::Admitted { peer, name } => {
                    // One link per pair: a live link to the same peer may win over this one.
                    let kept = self
                        .facts
                        .is_some_and(|f| self.shared.register(peer, self.conn, f));
                    if !kept {
                        self.duplicate = true;
                        if self.closed.is_none() {
                            self.closed = Some("another link to this node was kept".into());
                        }
                        continue;
                    }
                    log::info!(
                        "linked with node {} ({name}) at {}",
                        peer.short(),
                        self.remote
                    );
                    self.shared.admitted(peer, &name, self.remote);
                }
                Action::Store(events) => {
                    if self.store(events).await
                        && let Some(Action::Send(ack)) = link.stored()
                    {
                        let _ = self.control.send(ack.encode());
                    }
                }
                Action::SendEvents(ids) => {
                    tokio::spawn(stream_events(
                        self.shared.readers.clone(),
                        ids,
                        self.bulk.clone(),
                        self.sent.clone(),
                    ));
                }
                Action::Learned(peers) => self.shared.learned(self.peer, peers),
                Action::Reconciled { have, need, rounds } => {
                    log::info!(
                        "reconciled with node {}: it lacked {have}, this node lacked {need} ({rounds} round trips)",
                        self.peer.short()
                    );
                    self.shared.note_reconciled(self.peer, SystemTime::now());
                }
                Action::Penalize { points, reason } => {
                    let (banned, score) = self.shared.penalize(self.peer, points, &reason);
                    log::warn!(
                        "node {} at {}: {reason} (score now {score})",
                        self.peer.short(),
                        self.remote
                    );
                    if banned && self.closed.is_none() {
                        self.banned = true;
                        let why = format!("banned for misbehaving: {reason}");
                        let _ = self.control.send(Frame::Bye(why.clone()).encode());
                        self.closed = Some(why);
                    }
                }
                Action::Notice(n) => {
                    let _ = self.shared.notices_in.send((self.peer, n));
                }
                // Only an upstream link reconciles by scope and counts acknowledgements; its
                // driver is `upstream`.
                Action::Differences { .. } | Action::Delivered(_) => {}
                Action::Close(reason) => {
                    if self.closed.is_none() {
                        self.closed = Some(reason);
                    }
                }
            }
        }
    }

    /// Stores events from the peer; false when the store failed.
    async fn store(&mut self, events: Vec<basis_core::ValidEvent>) -> bool {
        match store_from(self.shared, self.peer, events).await {
            Ok(()) => true,
            Err(e) => {
                log::error!("cannot store events from node {}: {e}", self.peer.short());
                false
            }
        }
    }
}

/// Stores valid events from `peer` and offers the new ones to the other links.
pub(crate) async fn store_from(
    shared: &Shared,
    peer: NodeId,
    events: Vec<basis_core::ValidEvent>,
) -> Result<(), basis_store::StoreError> {
    let keep: Vec<(EventId, RoomId, Vec<u8>)> = events
        .iter()
        .map(|e| (e.id(), e.room(), e.bytes().to_vec()))
        .collect();
    let results = shared.writer.insert(events).await?;
    for (inserted, (id, room, bytes)) in results.iter().zip(keep) {
        if inserted.new {
            let _ = shared.events.send(Arc::new(NewEvent {
                id,
                room,
                bytes,
                origin: Some(peer),
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_lets_a_burst_through_then_paces() {
        let mut r = RateLimit::new(2 * MAX_FRAME as u64);
        // A full second's worth passes at once.
        assert!(r.take(2 * MAX_FRAME).is_zero());
        // The next second's worth must wait about a second.
        let wait = r.take(2 * MAX_FRAME);
        assert!(
            wait > Duration::from_millis(900) && wait <= Duration::from_millis(1000),
            "{wait:?}"
        );
    }

    #[test]
    fn slow_rates_still_admit_one_whole_frame() {
        let mut r = RateLimit::new(1024);
        assert!(r.take(MAX_FRAME).is_zero());
        assert!(!r.take(1).is_zero());
    }
}
