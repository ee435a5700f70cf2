//! The single writer: a thread that owns the write connection and commits in groups.
//!
//! Requests queue on a bounded channel. The thread takes the first waiting request, then
//! everything else already queued up to `write_batch` events, writes them all in one
//! transaction and answers every caller after the commit returned (synchronous=FULL: the
//! data is on disk). One fsync serves many events, so throughput grows with load.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use basis_core::compact::compact;
use basis_core::{EventId, Timestamp, ValidEvent};
use rusqlite::{Connection, params};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::StoreError;
use crate::expiry::{self, ExpiryPolicy, ExpiryReport};
use crate::ids::{self, IdIndex};
use crate::numbers::{Keys, Numbers};
use crate::open::StoreOptions;
use crate::schema::STATE_KINDS;

/// Result of inserting one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// The event.
    pub id: EventId,
    /// False when the store already held it (nothing was written).
    pub new: bool,
}

/// Counters kept by the writer, readable at any time without touching the database.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Events held.
    pub events: AtomicU64,
    /// Bytes of the events' wire encodings held.
    pub event_bytes: AtomicU64,
    /// Bytes of database pages in use (tables and indexes, without free pages).
    pub used_bytes: AtomicU64,
    /// Events newly stored since start.
    pub inserted: AtomicU64,
    /// Events offered again that were already held, since start.
    pub duplicates: AtomicU64,
    /// Transactions committed since start.
    pub commits: AtomicU64,
    /// Events removed by expiry since start.
    pub expired: AtomicU64,
}

impl StoreStats {
    pub(crate) fn load(conn: &Connection) -> Result<StoreStats, StoreError> {
        let (events, bytes): (i64, i64) = conn.query_row(
            concat!(
                "SELECT count(*), coalesce(sum(",
                wire_len_of_row!(),
                "), 0) FROM events"
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let stats = StoreStats::default();
        stats.events.store(events as u64, Ordering::Relaxed);
        stats.event_bytes.store(bytes as u64, Ordering::Relaxed);
        stats.used_bytes.store(used_bytes(conn)?, Ordering::Relaxed);
        Ok(stats)
    }

    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Bytes of database pages in use: (page_count - freelist_count) * page_size.
pub(crate) fn used_bytes(conn: &Connection) -> Result<u64, StoreError> {
    let pragma = |name: &str| -> Result<i64, StoreError> {
        Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
    };
    let used = (pragma("page_count")? - pragma("freelist_count")?).max(0) as u64;
    Ok(used * pragma("page_size")?.max(0) as u64)
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Request {
    Insert {
        events: Vec<ValidEvent>,
        reply: Reply<Vec<Inserted>>,
    },
    Expire {
        policy: ExpiryPolicy,
        reply: Reply<ExpiryReport>,
    },
    /// Remember a peer this node was linked with.
    RememberPeer { node: [u8; 32], addr: String },
    /// Finish what was queued before this request, then stop.
    Shutdown,
}

/// A cheap, clonable handle for sending work to the writer.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Request>,
}

impl WriterHandle {
    /// Stores events; returns once they are durable (or refused). Events must already be
    /// validated. Duplicates are reported with `new: false`.
    pub async fn insert(&self, events: Vec<ValidEvent>) -> Result<Vec<Inserted>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Insert { events, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Like [`WriterHandle::insert`], for callers outside an async runtime.
    pub fn insert_blocking(&self, events: Vec<ValidEvent>) -> Result<Vec<Inserted>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .blocking_send(Request::Insert { events, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Runs expiry (retention by age, then the byte quota) in the writer.
    pub async fn expire(&self, policy: ExpiryPolicy) -> Result<ExpiryReport, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Expire { policy, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Like [`WriterHandle::expire`], for callers outside an async runtime.
    pub fn expire_blocking(&self, policy: ExpiryPolicy) -> Result<ExpiryReport, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .blocking_send(Request::Expire { policy, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Remembers a peer this node was linked with (at most one row per peer). Best effort:
    /// nothing waits for it.
    pub fn remember_peer(&self, node: [u8; 32], addr: String) {
        let _ = self.tx.try_send(Request::RememberPeer { node, addr });
    }

    /// Whether the writer thread is still running (for the service watchdog).
    pub fn is_alive(&self) -> bool {
        !self.tx.is_closed()
    }
}

/// The writer thread and its channel.
pub(crate) struct Writer {
    handle: WriterHandle,
    thread: JoinHandle<Result<(), StoreError>>,
    stats: Arc<StoreStats>,
    committed: watch::Receiver<u64>,
    state_committed: watch::Receiver<u64>,
}

impl Writer {
    pub(crate) fn start(
        conn: Connection,
        options: &StoreOptions,
        stats: Arc<StoreStats>,
        ids: Arc<IdIndex>,
    ) -> Result<Writer, StoreError> {
        let (tx, rx) = mpsc::channel(options.write_queue.max(1));
        let last: i64 = conn
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(StoreError::from_sqlite)?;
        let (committed_tx, committed) = watch::channel(last.max(0) as u64);
        let (state_committed_tx, state_committed) = watch::channel(last.max(0) as u64);
        let mut state = WriterState {
            rooms: Numbers::load(&conn, Keys::Rooms)?,
            authors: Numbers::load(&conn, Keys::Authors)?,
            committed: committed_tx,
            state_committed: state_committed_tx,
            conn,
            stats: stats.clone(),
            ids,
            batch_limit: options.write_batch.max(1),
            commit_gap: options.commit_gap,
            last_commit: None,
            last_received: 0,
            policy: None,
        };
        let thread = std::thread::Builder::new()
            .name("basis-writer".into())
            .spawn(move || state.run(rx))
            .map_err(StoreError::Thread)?;
        Ok(Writer {
            handle: WriterHandle { tx },
            thread,
            stats,
            committed,
            state_committed,
        })
    }

    pub(crate) fn committed(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    pub(crate) fn state_committed(&self) -> watch::Receiver<u64> {
        self.state_committed.clone()
    }

    pub(crate) fn handle(&self) -> WriterHandle {
        self.handle.clone()
    }

    pub(crate) fn stats(&self) -> Arc<StoreStats> {
        self.stats.clone()
    }

    /// Lets the thread finish what is queued, stops it and waits for it. Handles still held
    /// elsewhere get [`StoreError::Closed`] from then on.
    pub(crate) fn shutdown(self) -> Result<(), StoreError> {
        // If the thread is already gone the send fails and the join reports why.
        let _ = self.handle.tx.blocking_send(Request::Shutdown);
        drop(self.handle);
        match self.thread.join() {
            Ok(result) => result,
            Err(_) => Err(StoreError::Closed),
        }
    }
}

struct WriterState {
    conn: Connection,
    /// Each room's number in the `rooms` table (what event rows store).
    rooms: Numbers,
    /// Each author's number in the `authors` table (what event rows store).
    authors: Numbers,
    /// The highest `seq` committed, published after every commit that stored something.
    committed: watch::Sender<u64>,
    /// The highest `seq` of a committed event of a [`STATE_KINDS`] kind, published after
    /// every commit that stored one.
    state_committed: watch::Sender<u64>,
    stats: Arc<StoreStats>,
    /// Which row holds which id; updated after each commit, before anyone is answered.
    ids: Arc<IdIndex>,
    batch_limit: usize,
    /// Least time between the starts of two commits while writes keep coming.
    commit_gap: Duration,
    /// When the last commit began.
    last_commit: Option<Instant>,
    last_received: i64,
    /// The policy of the last expiry run, applied to the quota after each commit.
    policy: Option<ExpiryPolicy>,
}

/// How long the writer sleeps between looks at its queue while it gathers a group.
const GATHER_NAP: Duration = Duration::from_micros(200);

/// The requests the writer took for its next commit.
#[derive(Default)]
struct Group {
    /// Inserts, with the callers to answer once they are durable.
    inserts: Vec<(Vec<ValidEvent>, Reply<Vec<Inserted>>)>,
    /// Events in `inserts`.
    count: usize,
    /// Other requests, run after the commit.
    later: Vec<Request>,
}

impl Group {
    /// Adds a request; true when it asks the writer to stop (it is not kept).
    fn take(&mut self, request: Request) -> bool {
        match request {
            Request::Insert { events, reply } => {
                self.count += events.len();
                self.inserts.push((events, reply));
            }
            other @ (Request::Expire { .. } | Request::RememberPeer { .. }) => {
                self.later.push(other)
            }
            Request::Shutdown => return true,
        }
        false
    }
}

fn wall_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl WriterState {
    fn run(&mut self, mut rx: mpsc::Receiver<Request>) -> Result<(), StoreError> {
        // The thread ends when every handle is dropped and the queue is empty.
        let mut stopping = false;
        while !stopping {
            let Some(first) = rx.blocking_recv() else {
                break;
            };
            let mut group = Group::default();
            stopping = group.take(first);
            // Take what is queued. Under load (the last commit began less than `commit_gap`
            // ago), once the queue is empty wait out the rest of the gap for more events: one
            // larger commit instead of several small ones, each of which rewrites the last
            // page of the table and of every index.
            let deadline = self.last_commit.map(|last| last + self.commit_gap);
            while !stopping && group.count < self.batch_limit {
                match rx.try_recv() {
                    Ok(request) => stopping = group.take(request),
                    Err(mpsc::error::TryRecvError::Empty) => match deadline {
                        Some(deadline) if !group.inserts.is_empty() => {
                            let now = Instant::now();
                            if now >= deadline {
                                break;
                            }
                            std::thread::sleep((deadline - now).min(GATHER_NAP));
                        }
                        _ => break,
                    },
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            let Group { inserts, later, .. } = group;
            if !inserts.is_empty() {
                self.last_commit = Some(Instant::now());
                self.commit_group(inserts);
            }
            for request in later {
                match request {
                    Request::Expire { policy, reply } => {
                        let result = expiry::run(&mut self.conn, &policy, &self.stats, &self.ids);
                        self.policy = Some(policy);
                        let _ = reply.send(result);
                    }
                    Request::RememberPeer { node, addr } => {
                        let done = self.conn.execute(
                            "INSERT OR REPLACE INTO known_peers (node, addr, last_seen) VALUES (?1, ?2, ?3)",
                            params![node, addr, wall_millis()],
                        );
                        if let Err(e) = done {
                            log::warn!("store: cannot remember a peer: {e}");
                        }
                    }
                    // Inserts and shutdown never reach this list.
                    Request::Insert { .. } | Request::Shutdown => {}
                }
            }
        }
        // Fold the write-ahead log into the database so the file is complete on its own.
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(StoreError::from_sqlite)?;
        Ok(())
    }

    fn commit_group(&mut self, group: Vec<(Vec<ValidEvent>, Reply<Vec<Inserted>>)>) {
        let received = wall_millis().max(self.last_received);
        self.last_received = received;
        match self.write(&group, received) {
            Ok(results) => {
                for ((_, reply), result) in group.into_iter().zip(results) {
                    let _ = reply.send(Ok(result));
                }
            }
            Err(e) => {
                log::error!("store: a batch of {} writes failed: {e}", group.len());
                let disk_full = matches!(e, StoreError::DiskFull);
                for (_, reply) in group {
                    let _ = reply.send(Err(if disk_full {
                        StoreError::DiskFull
                    } else {
                        StoreError::WriteFailed(e.to_string())
                    }));
                }
            }
        }
        self.enforce_quota();
    }

    /// After a commit: if the database grew over the quota, expire the oldest events now
    /// rather than at the next periodic run.
    fn enforce_quota(&mut self) {
        let Some(policy) = self.policy.clone() else {
            return;
        };
        let over = policy
            .quota_bytes
            .is_some_and(|q| self.stats.used_bytes.load(Ordering::Relaxed) > q);
        if over
            && let Err(e) = expiry::enforce_quota(&mut self.conn, &policy, &self.stats, &self.ids)
        {
            log::error!("store: expiry for the quota failed: {e}");
        }
    }

    fn write(
        &mut self,
        group: &[(Vec<ValidEvent>, Reply<Vec<Inserted>>)],
        received: i64,
    ) -> Result<Vec<Vec<Inserted>>, StoreError> {
        let tx = self.conn.transaction().map_err(StoreError::from_sqlite)?;
        let mut results = Vec::with_capacity(group.len());
        let (mut new_events, mut new_bytes, mut dups) = (0u64, 0u64, 0u64);
        let mut added = Vec::new();
        let mut state_seq = 0;
        // Rooms and authors first seen in this group are numbered inside the transaction and
        // remembered only once it commits.
        self.rooms.begin();
        self.authors.begin();
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO events (id, room, author, kind, ts, received_at, raw)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(StoreError::from_sqlite)?;
            // Insert in time order: events arrive roughly in it (and a catching-up node gets
            // them newest first, batch by batch), and the indexes keyed by time then grow at
            // their end instead of splitting pages in their middle. Rows of one commit
            // become visible together, so their `seq` order within it promises nothing else.
            let mut order: Vec<(usize, usize)> = group
                .iter()
                .enumerate()
                .flat_map(|(r, (events, _))| (0..events.len()).map(move |e| (r, e)))
                .collect();
            order.sort_by_key(|&(r, e)| {
                let ev = &group[r].0[e];
                (ev.event().content.time, ev.id())
            });
            results.extend(group.iter().map(|(events, _)| {
                events
                    .iter()
                    .map(|ev| Inserted {
                        id: ev.id(),
                        new: false,
                    })
                    .collect::<Vec<_>>()
            }));
            for (r, e) in order {
                let ev = &group[r].0[e];
                let c = &ev.event().content;
                let room = ev.room();
                let room_n = self.rooms.number(&tx, room.as_bytes())?;
                // Kept without the room and author keys (64 bytes of every message), which
                // the row's numbers give back; whole should the layout ever not be this
                // version's (`compact` then declines).
                let (author_n, kept) = match compact(ev.bytes(), &room, &c.author) {
                    Some(small) => (
                        Some(self.authors.number(&tx, c.author.as_bytes())?),
                        Cow::Owned(small),
                    ),
                    None => (None, Cow::Borrowed(ev.bytes())),
                };
                let changed = stmt
                    .execute(params![
                        ev.id().as_bytes(),
                        room_n,
                        author_n,
                        c.body.kind_code(),
                        ts_sql(c.time),
                        received,
                        kept.as_ref(),
                    ])
                    .map_err(StoreError::from_sqlite)?;
                if changed == 1 {
                    let seq = tx.last_insert_rowid();
                    if STATE_KINDS.contains(&c.body.kind_code()) {
                        state_seq = state_seq.max(seq);
                    }
                    added.push((ids::key(&ev.id()), seq));
                    new_events += 1;
                    new_bytes += ev.bytes().len() as u64;
                    results[r][e].new = true;
                } else {
                    dups += 1;
                }
            }
        }
        tx.commit().map_err(StoreError::from_sqlite)?;
        self.rooms.committed();
        self.authors.committed();
        self.ids.add(&added);
        let s = &self.stats;
        s.add(&s.events, new_events);
        s.add(&s.event_bytes, new_bytes);
        s.add(&s.inserted, new_events);
        s.add(&s.duplicates, dups);
        s.add(&s.commits, 1);
        // Room state first: whoever wakes on `committed` and then reads `state_committed`
        // finds every room-defining event up to the seq it woke for.
        if state_seq > 0 {
            publish(&self.state_committed, state_seq);
        }
        if let Some(&(_, last)) = added.iter().max_by_key(|&&(_, seq)| seq) {
            publish(&self.committed, last);
        }
        if let Ok(used) = used_bytes(&self.conn) {
            s.used_bytes.store(used, Ordering::Relaxed);
        }
        Ok(results)
    }
}

/// Raises `watch` to `seq` (waking its followers) unless it is already there.
fn publish(watch: &watch::Sender<u64>, seq: i64) {
    let seq = seq.max(0) as u64;
    watch.send_if_modified(|last| {
        let grew = seq > *last;
        *last = (*last).max(seq);
        grew
    });
}

/// A timestamp as stored in SQLite (validation guarantees it fits an `i64`).
pub(crate) fn ts_sql(ts: Timestamp) -> i64 {
    i64::try_from(ts.0).unwrap_or(i64::MAX)
}
