//! Backfill: an empty node catching up with one that holds N events, over QUIC on loopback,
//! end to end (dial, admission, reconciliation, fetch, validation, durable store); beside the
//! rate this machine verifies signatures at (one core, and batched on all cores), a raw
//! batched insert of the same rows, and raw quinn throughput for the same bytes.
//! Also the peak memory of both nodes while they sync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use basis_core::NodeKey;
use basis_core::validate::{ValidEvent, validate};

use super::nodes::{BenchNode, NodeSpec, fill, status_kib, written_bytes};
use super::report::{Figure, Report};

/// Events per second the signature check (full validation) runs at on one core.
fn verify_rate(events: &[ValidEvent]) -> f64 {
    let start = Instant::now();
    let mut ok = 0usize;
    for e in events {
        ok += usize::from(validate(e.bytes()).is_ok());
    }
    ok as f64 / start.elapsed().as_secs_f64()
}

/// Events per batch in [`batch_verify_rate`].
const VERIFY_BATCH: usize = 64;

/// Events per second ed25519-dalek's batched signature check (`verify_batch`, 64 events a
/// batch) runs at on all cores: what a node could reach if it checked signatures that way.
/// Nodes check each event on its own (`basis_proto::validation` says why), so this is the
/// ceiling the goal is set against, not a path the node takes.
pub(super) fn batch_verify_rate(events: &[ValidEvent]) -> Result<f64> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let share = events.len().div_ceil(cores).max(1);
    let start = Instant::now();
    let verified = std::thread::scope(|scope| {
        let threads: Vec<_> = events
            .chunks(share)
            .map(|part| scope.spawn(move || verify_batches(part)))
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| anyhow::anyhow!("a verifying thread panicked"))?
            })
            .sum::<Result<usize>>()
    })?;
    Ok(verified as f64 / start.elapsed().as_secs_f64())
}

/// Checks `events` in batches of [`VERIFY_BATCH`] with `verify_batch`; the number checked.
fn verify_batches(events: &[ValidEvent]) -> Result<usize> {
    use basis_core::event::SIGNING_CONTEXT;
    use ed25519_dalek::{Signature, VerifyingKey};
    for batch in events.chunks(VERIFY_BATCH) {
        let mut messages = Vec::with_capacity(batch.len());
        let mut signatures = Vec::with_capacity(batch.len());
        let mut keys = Vec::with_capacity(batch.len());
        for e in batch {
            let bytes = e.bytes();
            let content = &bytes[..bytes.len().saturating_sub(64)];
            messages.push([SIGNING_CONTEXT, content].concat());
            signatures.push(Signature::from_bytes(&e.event().signature));
            keys.push(VerifyingKey::from_bytes(
                e.event().content.author.as_bytes(),
            )?);
        }
        let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
        ed25519_dalek::verify_batch(&messages, &signatures, &keys)
            .context("batched verification refused valid events")?;
    }
    Ok(events.len())
}

/// Bytes per second one quinn stream carries on loopback with the nodes' TLS setup.
pub async fn quinn_rate(total: usize) -> Result<f64> {
    let server_key = NodeKey::generate()?;
    let client_key = NodeKey::generate()?;
    let server_tls = basis_net::tls::configs(&server_key, basis_proto::ALPN)?;
    let client_tls = basis_net::tls::configs(&client_key, basis_proto::ALPN)?;
    let server = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(server_tls.server)),
        "127.0.0.1:0".parse()?,
    )?;
    let addr = server.local_addr()?;
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(client_tls.client)));
    let receiver = tokio::spawn(async move {
        let conn = server.accept().await.context("no connection")?.await?;
        let mut recv = conn.accept_uni().await?;
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        while let Some(n) = recv.read(&mut buf).await? {
            got += n;
        }
        anyhow::Ok(got)
    });
    let conn = client.connect(addr, "basis")?.await?;
    let mut send = conn.open_uni().await?;
    let chunk = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    let mut sent = 0;
    while sent < total {
        let n = chunk.len().min(total - sent);
        send.write_all(&chunk[..n]).await?;
        sent += n;
    }
    send.finish()?;
    let got = receiver.await??;
    let secs = start.elapsed().as_secs_f64();
    conn.close(0u32.into(), b"done");
    if got != total {
        bail!("quinn delivered {got} of {total} bytes");
    }
    Ok(total as f64 / secs)
}

/// Result of one backfill run.
pub struct Backfill {
    /// Events per second, start of the empty node to its last event stored.
    pub rate: f64,
    /// Peak resident memory of the full node and of the catching-up node, KiB, when the
    /// catching-up node held every event.
    pub caught_up_peak_kib: (u64, u64),
    /// The same, once it had also reconciled its whole store (`PeakAt::Reconciled`).
    pub reconciled_peak_kib: Option<(u64, u64)>,
    /// Of the two nodes' resident memory when the catching-up node held every event, KiB,
    /// what maps files (the binary's own pages, mostly): the same on any store size.
    pub file_kib: (u64, u64),
    /// Bytes the catching-up node wrote to storage per event.
    pub written_per_event: Option<f64>,
    /// Round trips of the catching-up node's first session with its peer, from its log.
    pub round_trips: Option<u32>,
}

/// The round trips of the first reconciliation (or catch-up) a node logged: the number in
/// "(N round trip…)" of its first such line.
fn first_session_round_trips(log: &str) -> Option<u32> {
    let line = log.lines().find(|l| l.contains(" round trip"))?;
    let before = line.split(" round trip").next()?;
    before
        .rsplit(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Round trips negentropy alone (60 kB messages) takes to tell a node holding
/// `events[..held]` what it lacks of `events`: what catching up cost before `CatchUp`,
/// measured on the same ids.
pub fn negentropy_round_trips(events: &[ValidEvent], held: usize) -> Result<u32> {
    let items = |evs: &[ValidEvent]| -> Vec<(u64, basis_core::EventId)> {
        evs.iter()
            .map(|e| (e.event().content.time.0, e.id()))
            .collect()
    };
    super::recon::rounds_to_reconcile(items(&events[..held]), items(events))
}

/// How long the two nodes' peak memory is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeakAt {
    /// Until the node catching up holds every event.
    CaughtUp,
    /// Also after that, until the node catching up has finished a reconciliation session
    /// with the other (both then hold every id of the store in memory at once); at most
    /// 90 s later, a session being due every 60 s.
    Reconciled,
}

/// Runs one backfill of `events` from a full node to an empty one.
pub async fn backfill(events: &[ValidEvent], peak_at: PeakAt) -> Result<Backfill> {
    backfill_holding(events, 0, peak_at).await
}

/// Runs one backfill of `events` from a full node to one that holds `events[..held]`.
pub async fn backfill_holding(
    events: &[ValidEvent],
    held: usize,
    peak_at: PeakAt,
) -> Result<Backfill> {
    let spec = NodeSpec {
        federate: true,
        peers: vec![],
    };
    let mut source = BenchNode::prepare(&spec)?;
    let to_fill = events.to_vec();
    let db = source.db();
    tokio::task::spawn_blocking(move || fill(&db, &to_fill)).await??;
    source.start()?;
    let mut sink = BenchNode::prepare(&NodeSpec {
        federate: true,
        peers: vec![source.peer_address().await?],
    })?;
    if held > 0 {
        let (db, to_fill) = (sink.db(), events[..held.min(events.len())].to_vec());
        tokio::task::spawn_blocking(move || fill(&db, &to_fill)).await??;
    }
    let n = events.len() as u64;
    let start = Instant::now();
    sink.start()?;
    let pid = sink.pid().to_string();
    let written_before = written_bytes(&pid);
    let deadline = start + Duration::from_secs(3600);
    loop {
        if sink.status().await?.events >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("the empty node did not catch up within an hour");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let peaks = || {
        (
            status_kib(source.pid(), "VmHWM:").unwrap_or(0),
            status_kib(sink.pid(), "VmHWM:").unwrap_or(0),
        )
    };
    let caught_up_peak_kib = peaks();
    let file_kib = (
        status_kib(source.pid(), "RssFile:").unwrap_or(0),
        status_kib(sink.pid(), "RssFile:").unwrap_or(0),
    );
    let mut reconciled_peak_kib = None;
    if peak_at == PeakAt::Reconciled {
        // The session after a catch-up compares what the node held when the catch-up began
        // (nothing); the one after that, every event it now holds, slice by slice: that one
        // is the reconciliation whose memory counts (`reconcile_secs` apart, 60 s).
        let settle = Instant::now() + Duration::from_secs(200);
        while sink.log_text().matches("reconciled with node").count() < 2 {
            if Instant::now() > settle {
                bail!("the node that caught up did not reconcile its store within 200 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        reconciled_peak_kib = Some(peaks());
    }
    // Count until the node stopped: its shutdown checkpoint writes what the log still held,
    // so a policy that checkpoints less often cannot hide bytes past the end of the window.
    let written = sink
        .stop_counting_written()
        .zip(written_before)
        .map(|(after, before)| after.saturating_sub(before) as f64 / n as f64);
    let round_trips = first_session_round_trips(&sink.log_text());
    Ok(Backfill {
        round_trips,
        rate: (n - held as u64) as f64 / secs,
        caught_up_peak_kib,
        reconciled_peak_kib,
        file_kib,
        written_per_event: written,
    })
}

/// The backfill figures over `events`.
pub async fn run(report: &mut Report, events: &[ValidEvent]) -> Result<Backfill> {
    let n = events.len();
    let b = backfill(events, PeakAt::CaughtUp).await?;
    let verify = verify_rate(events);
    let bytes: usize = events.iter().map(|e| e.bytes().len()).sum();
    let quinn = quinn_rate(bytes).await?;
    let per_event = bytes as f64 / n as f64;
    let mut references = vec![
        ("signature check rate, one core", verify),
        ("raw quinn stream, same bytes", quinn / per_event),
    ];
    references.extend(super::goal_references(events).await?);
    report.beside_each(
        "backfill",
        &format!("backfill of {n} events over QUIC, end to end"),
        b.rate,
        "events/s",
        &references,
    );
    round_trips(report, events, &b)?;
    // A node that was away: it holds the oldest tenth and lacks the rest.
    let held = n / 10;
    let away = backfill_holding(events, held, PeakAt::CaughtUp).await?;
    let Some(rounds) = away.round_trips else {
        bail!("the node that was away logged no reconciliation");
    };
    report.add(Figure::beside(
        "backfill",
        &format!("node holding the oldest {held} of {n} events catching up: round trips"),
        f64::from(rounds),
        "round trips",
        "negentropy over the same ids",
        f64::from(negentropy_round_trips(events, held)?),
    ));
    if let Some(w) = b.written_per_event {
        report.add(Figure::beside(
            "backfill",
            "bytes written to disk per event received",
            w,
            "bytes",
            "event wire size",
            per_event,
        ));
    }
    Ok(b)
}

/// The catching-up node's round trips beside negentropy's on the same ids.
pub fn round_trips(report: &mut Report, events: &[ValidEvent], b: &Backfill) -> Result<()> {
    let Some(rounds) = b.round_trips else {
        bail!("the catching-up node logged no reconciliation or catch-up");
    };
    report.add(Figure::beside(
        "backfill",
        &format!(
            "empty node catching up with {} events: round trips",
            events.len()
        ),
        f64::from(rounds),
        "round trips",
        "negentropy listing the same ids",
        f64::from(negentropy_round_trips(events, 0)?),
    ));
    Ok(())
}
