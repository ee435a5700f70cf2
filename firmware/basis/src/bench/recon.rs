//! Reconciliation: bytes both ways and round trips to find the difference between two sets,
//! beside the naive full id list (32 bytes per event) and beside the negentropy crate used
//! directly on the same sets with its own vector storage.

use std::time::Instant;

use anyhow::{Result, anyhow};
use basis_core::EventId;
use basis_core::event::id_of;
use basis_proto::recon::{Initiator, Responder, Step};
use negentropy::{Id, Negentropy, NegentropyStorageVector};

use super::report::{Figure, Report};

fn items(n: usize) -> Vec<(u64, EventId)> {
    (0..n)
        .map(|i| {
            let ts = (1_700_000_000_000u64 + 250 * i as u64) << 16;
            (ts, id_of(&(i as u64).to_le_bytes()))
        })
        .collect()
}

fn status_kib(field: &str) -> f64 {
    super::nodes::status_kib(std::process::id(), field).unwrap_or(0) as f64
}

struct Outcome {
    bytes: usize,
    rounds: u32,
    found: usize,
    secs: f64,
}

fn ours(lacking: Vec<(u64, EventId)>, all: Vec<(u64, EventId)>) -> Result<Outcome> {
    let start = Instant::now();
    let (mut init, mut msg) = Initiator::start(lacking)?;
    let mut resp = Responder::new(all)?;
    let mut bytes = 0;
    loop {
        bytes += msg.len();
        let reply = resp.reply(&msg)?;
        bytes += reply.len();
        match init.step(&reply)? {
            Step::Continue(next) => msg = next,
            Step::Done { need, .. } => {
                return Ok(Outcome {
                    bytes,
                    rounds: init.rounds(),
                    found: need.len(),
                    secs: start.elapsed().as_secs_f64(),
                });
            }
        }
    }
}

fn storage(list: &[(u64, EventId)]) -> Result<NegentropyStorageVector> {
    let mut s = NegentropyStorageVector::with_capacity(list.len());
    for (ts, id) in list {
        s.insert(*ts, Id::from_byte_array(id.0))
            .map_err(|e| anyhow!("{e}"))?;
    }
    s.seal().map_err(|e| anyhow!("{e}"))?;
    Ok(s)
}

fn plain(lacking: &[(u64, EventId)], all: &[(u64, EventId)]) -> Result<Outcome> {
    let start = Instant::now();
    let limit = basis_proto::limits::RECON_FRAME_BYTES;
    let mut a = Negentropy::owned(storage(lacking)?, limit).map_err(|e| anyhow!("{e}"))?;
    let mut b = Negentropy::owned(storage(all)?, limit).map_err(|e| anyhow!("{e}"))?;
    let mut msg = a.initiate().map_err(|e| anyhow!("{e}"))?;
    let (mut have, mut need) = (Vec::new(), Vec::new());
    let (mut bytes, mut rounds) = (0, 0);
    loop {
        bytes += msg.len();
        let reply = b.reconcile(&msg).map_err(|e| anyhow!("{e}"))?;
        bytes += reply.len();
        rounds += 1;
        match a
            .reconcile_with_ids(&reply, &mut have, &mut need)
            .map_err(|e| anyhow!("{e}"))?
        {
            Some(next) => msg = next,
            None => {
                return Ok(Outcome {
                    bytes,
                    rounds,
                    found: need.len(),
                    secs: start.elapsed().as_secs_f64(),
                });
            }
        }
    }
}

/// Round trips negentropy (as the links run it) takes to tell a node holding `held` (a
/// subset of `all`) every item of `all` it lacks.
pub fn rounds_to_reconcile(held: Vec<(u64, EventId)>, all: Vec<(u64, EventId)>) -> Result<u32> {
    let lacking = all.len() - held.len().min(all.len());
    let o = ours(held, all)?;
    if o.found != lacking {
        return Err(anyhow!("reconciling found {} of {lacking} ids", o.found));
    }
    Ok(o.rounds)
}

/// Runs every case for each set size in `sizes`.
pub fn run(report: &mut Report, sizes: &[usize]) -> Result<()> {
    for &n in sizes {
        let all = items(n);
        let cases: Vec<(&str, Vec<(u64, EventId)>)> = vec![
            ("none", all.clone()),
            ("1 newest", all[..n - 1].to_vec()),
            ("1000 newest", all[..n - 1000].to_vec()),
            (
                "1000 scattered",
                all.iter()
                    .enumerate()
                    .filter(|(i, _)| i % (n / 1000) != 0)
                    .map(|(_, x)| *x)
                    .collect(),
            ),
        ];
        for (name, lacking) in cases {
            let expected = n - lacking.len();
            let p = plain(&lacking, &all)?;
            let responder = all.clone();
            // Reset the peak-memory mark (Linux: 5 > clear_refs) so the peak is this session's.
            let _ = std::fs::write("/proc/self/clear_refs", "5");
            let before = status_kib("VmRSS:");
            let o = ours(lacking, responder)?;
            let session_kib = (status_kib("VmHWM:") - before).max(0.0);
            if o.found != expected || p.found != expected {
                return Err(anyhow!(
                    "reconciliation of n={n}, {name} found {} (negentropy alone {}), expected {expected}",
                    o.found,
                    p.found
                ));
            }
            let label = format!("n={n} diff={name}");
            report.add(Figure::beside(
                "recon",
                &format!("{label}: bytes both ways"),
                o.bytes as f64,
                "bytes",
                "naive id list, 32 B x n",
                (32 * n) as f64,
            ));
            report.add(Figure::beside(
                "recon",
                &format!("{label}: bytes both ways"),
                o.bytes as f64,
                "bytes",
                "negentropy alone, same sets",
                p.bytes as f64,
            ));
            report.add(Figure::beside(
                "recon",
                &format!("{label}: round trips"),
                f64::from(o.rounds),
                "rounds",
                "negentropy alone, same sets",
                f64::from(p.rounds),
            ));
            report.add(Figure::beside(
                "recon",
                &format!("{label}: session memory beyond the input"),
                session_kib / 1024.0,
                "MiB",
                "two sorted vectors, 40 B x n each",
                (80 * n) as f64 / 1024.0 / 1024.0,
            ));
            report.add(Figure::beside(
                "recon",
                &format!("{label}: time"),
                o.secs * 1000.0,
                "ms",
                "negentropy alone, same sets",
                p.secs * 1000.0,
            ));
        }
    }
    Ok(())
}
