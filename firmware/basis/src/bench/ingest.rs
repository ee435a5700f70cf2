//! Durable ingest: events through the node's validate-and-store path (group commit, an
//! acknowledgement only once on disk), beside a plain batched rusqlite insert of the same
//! rows into the same schema with the same durability settings and ed25519-dalek's batched
//! signature check on all cores; and the same through a running node's HTTP API, beside the
//! in-process path.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use basis_core::compact::compact;
use basis_core::validate::{ValidEvent, validate};
use basis_core::{Body, MessageBody, RoomId, UserId};
use basis_e2ee::UserSecrets;
use basis_store::{Store, StoreOptions};

use super::events::Signer;
use super::nodes::{BenchNode, NodeSpec};
use super::proc_io_written;
use super::report::{Figure, Report};
use crate::client::node_client::NodeClient;
use crate::node::wall_millis;

/// Clients sending at once, each waiting for its acknowledgement before the next event.
const CLIENTS: usize = 64;

/// Events one client sends alone, each after the last is acknowledged: every event is its
/// own commit, as when a team chats at a few messages a minute.
const LONE: usize = 2_000;

/// Events per second `clients` clients store `events` at through the in-process path, the
/// bytes the process wrote to disk meanwhile (the last checkpoint included), and commits.
async fn real_path(
    dir: &Path,
    events: &[ValidEvent],
    clients: usize,
) -> Result<(f64, Option<u64>, u64)> {
    let store = Store::open(&dir.join("basis.db"), &StoreOptions::default())?;
    let writer = store.writer();
    let raws: Arc<Vec<Vec<u8>>> = Arc::new(events.iter().map(|e| e.bytes().to_vec()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let written_before = proc_io_written();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (writer, raws, next) = (writer.clone(), raws.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(raw) = raws.get(i) else { break };
                // What Node::append does: validate, then wait for the durable insert.
                let valid = validate(raw).map_err(|e| anyhow::anyhow!("{e}"))?;
                writer.insert(vec![valid]).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("an ingest task failed")??;
    }
    let secs = start.elapsed().as_secs_f64();
    let commits = store.stats().commits.load(Ordering::Relaxed);
    // Closing checkpoints what the log still holds: count it, so that a policy that
    // checkpoints less often cannot leave bytes outside the window.
    tokio::task::spawn_blocking(move || store.close()).await??;
    let written = proc_io_written()
        .zip(written_before)
        .map(|(after, before)| after.saturating_sub(before));
    Ok((events.len() as f64 / secs, written, commits))
}

/// Events per second `n` messages (~200-byte texts, signed before the clock starts) are
/// posted at through a node's HTTP API by [`CLIENTS`] clients, each waiting for its
/// acknowledgement (durable) before its next: the path a phone's post takes.
async fn http_path(n: usize) -> Result<f64> {
    let mut node = BenchNode::prepare(&NodeSpec {
        federate: false,
        peers: Vec::new(),
    })?;
    node.start()?;
    let user = UserSecrets::generate(wall_millis())?;
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        clients.push(Arc::new(NodeClient::sign_in(&node.api, &user).await?));
    }
    let mut signer = Signer::new(user.signing_key());
    let create = signer.create_room("ingest");
    let room: RoomId = clients[0].post_event(&create).await?.room.parse()?;
    let filler = "x".repeat(180);
    let events: Arc<Vec<basis_core::Event>> = Arc::new(
        (0..n)
            .map(|i| {
                signer.sign(
                    Some(room),
                    Body::Message(MessageBody::Text {
                        text: format!("{i} {filler}"),
                    }),
                )
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(CLIENTS);
    for client in &clients {
        let (client, events, next) = (client.clone(), events.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(event) = events.get(i) else { break };
                client
                    .post_event(event)
                    .await
                    .with_context(|| format!("posting event {i}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await.context("a posting task failed")??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Events per second a plain batched rusqlite insert of `events` runs at, into a new database
/// under `dir` with the store's schema and durability settings.
pub fn raw_path(dir: &Path, events: &[ValidEvent]) -> Result<f64> {
    let path = dir.join("raw.db");
    // The same schema and pragmas: let the store create the file, then write it directly.
    Store::open(&path, &StoreOptions::default())?.close()?;
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let batch = StoreOptions::default().write_batch;
    let start = Instant::now();
    // Rows name their room and author by number (`rooms`, `authors`), each numbered on its
    // first event, and keep the wire bytes without those two keys, as the store does.
    let mut rooms: HashMap<RoomId, i64> = HashMap::new();
    let mut authors: HashMap<UserId, i64> = HashMap::new();
    for chunk in events.chunks(batch) {
        let tx = conn.transaction()?;
        {
            for e in chunk {
                let author = e.event().content.author;
                if let Entry::Vacant(v) = rooms.entry(e.room()) {
                    tx.execute("INSERT INTO rooms (id) VALUES (?1)", [e.room().as_bytes()])?;
                    v.insert(tx.last_insert_rowid());
                }
                if let Entry::Vacant(v) = authors.entry(author) {
                    tx.execute("INSERT INTO authors (id) VALUES (?1)", [author.as_bytes()])?;
                    v.insert(tx.last_insert_rowid());
                }
            }
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO events (id, room, author, kind, ts, received_at, raw)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for e in chunk {
                let c = &e.event().content;
                let kept = compact(e.bytes(), &e.room(), &c.author)
                    .context("a bench event the store would keep whole")?;
                stmt.execute(rusqlite::params![
                    e.id().as_bytes(),
                    rooms.get(&e.room()).copied().unwrap_or_default(),
                    authors.get(&c.author).copied().unwrap_or_default(),
                    c.body.kind_code(),
                    i64::try_from(c.time.0).unwrap_or(i64::MAX),
                    0i64,
                    kept,
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(events.len() as f64 / start.elapsed().as_secs_f64())
}

/// The mean size of `events` on the wire, bytes.
fn mean_wire_size(events: &[ValidEvent]) -> f64 {
    events.iter().map(|e| e.bytes().len() as f64).sum::<f64>() / events.len().max(1) as f64
}

/// Runs the ingest figures over `events`.
pub async fn run(report: &mut Report, events: &[ValidEvent]) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (real, written, commits) = real_path(dir.path(), events, CLIENTS).await?;
    let n = events.len() as f64;
    report.beside_each(
        "ingest",
        &format!("durable ingest, {CLIENTS} clients, in process"),
        real,
        "events/s",
        &super::goal_references(events).await?,
    );
    let http = http_path(events.len()).await.context("ingest over HTTP")?;
    report.add(Figure::beside(
        "ingest",
        &format!("durable ingest, {CLIENTS} clients, through a node's HTTP API"),
        http,
        "events/s",
        "the same in process (goal: 0.5)",
        real,
    ));
    report.add(Figure::alone(
        "ingest",
        "events per commit (group commit)",
        n / commits.max(1) as f64,
        "events",
    ));
    let db_bytes: u64 = ["basis.db", "basis.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.path().join(f)).ok())
        .map(|m| m.len())
        .sum();
    let wire = mean_wire_size(events);
    report.add(Figure::beside(
        "ingest",
        "database bytes per event",
        db_bytes as f64 / n,
        "bytes",
        "event wire size",
        wire,
    ));
    if let Some(w) = written {
        report.add(Figure::beside(
            "ingest",
            "bytes written to disk per event",
            w as f64 / n,
            "bytes",
            "event wire size",
            wire,
        ));
    }
    let lone = &events[..LONE.min(events.len())];
    let dir = tempfile::tempdir()?;
    let (_, written, commits) = real_path(dir.path(), lone, 1).await?;
    let n = lone.len() as f64;
    report.add(Figure::alone(
        "ingest",
        "events per commit, one client",
        n / commits.max(1) as f64,
        "events",
    ));
    if let Some(w) = written {
        report.add(Figure::beside(
            "ingest",
            "bytes written to disk per event, one client",
            w as f64 / n,
            "bytes",
            "event wire size",
            mean_wire_size(lone),
        ));
    }
    Ok(())
}
