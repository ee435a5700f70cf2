//! `basis bench`: the figures that matter, each beside its limit measured in the same run,
//! printed as a table and written as JSON. Quick mode (default) takes a couple of minutes;
//! `--full` takes the sizes of docs/BENCHMARKS.md. Nothing here asserts a timing: these are
//! figures, for people.

pub mod backfill;
pub mod events;
pub mod files;
pub mod ingest;
pub mod latency;
pub mod mesh;
pub mod nodes;
pub mod recon;
pub mod report;
pub mod resources;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use report::{Figure, Report};

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Full sizes instead of the quick ones.
    pub full: bool,
    /// Where to write the JSON report.
    pub json: Option<PathBuf>,
    /// Only these groups (empty: all).
    pub only: Vec<String>,
}

/// Bytes this process caused to be written to storage so far.
pub fn proc_io_written() -> Option<u64> {
    nodes::written_bytes("self")
}

/// The groups, in the order they run.
pub const GROUPS: [&str; 7] = [
    "ingest",
    "recon",
    "backfill",
    "latency",
    "files",
    "mesh",
    "resources",
];

fn wanted(opts: &BenchOptions, group: &str) -> bool {
    opts.only.is_empty() || opts.only.iter().any(|g| g == group)
}

/// Runs the benchmarks.
pub async fn run(opts: BenchOptions) -> Result<()> {
    if let Some(unknown) = opts.only.iter().find(|g| !GROUPS.contains(&g.as_str())) {
        anyhow::bail!(
            "no benchmark group '{unknown}' (the groups: {})",
            GROUPS.join(", ")
        );
    }
    let mode = if opts.full { "full" } else { "quick" };
    let mut report = Report {
        mode: mode.into(),
        machine: report::machine(),
        figures: Vec::new(),
    };
    println!("basis bench, {mode} mode, on {}", report.machine);
    println!("{}", report::header());
    let started = Instant::now();
    let sizes = if opts.full {
        (100_000, 100_000)
    } else {
        (10_000, 10_000)
    };
    if wanted(&opts, "ingest") {
        let evs = tokio::task::spawn_blocking(move || events::room(sizes.0)).await?;
        ingest::run(&mut report, &evs).await.context("ingest")?;
    }
    if wanted(&opts, "recon") {
        let list: &'static [usize] = if opts.full {
            &[10_000, 100_000, 1_000_000]
        } else {
            &[10_000]
        };
        let mut r = std::mem::take(&mut report);
        r = tokio::task::spawn_blocking(move || recon::run(&mut r, list).map(|()| r))
            .await?
            .context("reconciliation")?;
        report = r;
    }
    if wanted(&opts, "backfill") {
        let evs = tokio::task::spawn_blocking(move || events::room(sizes.1)).await?;
        let b = backfill::run(&mut report, &evs).await.context("backfill")?;
        if !opts.full {
            peak(&mut report, sizes.1, &b);
        }
    }
    if opts.full && wanted(&opts, "resources") {
        println!("(making 1 000 000 signed events for the memory figure; this takes a while)");
        let evs = tokio::task::spawn_blocking(|| events::room(1_000_000)).await?;
        let b = backfill::backfill(&evs, backfill::PeakAt::Reconciled)
            .await
            .context("1M backfill")?;
        peak(&mut report, evs.len(), &b);
        backfill::round_trips(&mut report, &evs, &b)?;
    }
    if wanted(&opts, "latency") {
        let (rates, secs): (&[u32], u64) = if opts.full {
            (&[100, 1000], 10)
        } else {
            (&[100], 3)
        };
        latency::run(&mut report, rates, secs)
            .await
            .context("latency")?;
    }
    if wanted(&opts, "files") {
        let mib = if opts.full { 1024 } else { 64 };
        files::run(&mut report, mib).await.context("files")?;
    }
    if wanted(&opts, "mesh") {
        let (n, messages) = if opts.full { (16, 2000) } else { (8, 500) };
        mesh::run(&mut report, n, messages).await.context("mesh")?;
    }
    if wanted(&opts, "resources") {
        let window = Duration::from_secs(if opts.full { 60 } else { 10 });
        resources::idle_cpu(&mut report, window)
            .await
            .context("idle CPU")?;
        resources::binary_size(&mut report)?;
    }
    println!(
        "done in {:.0} s; ratio = value / reference, both measured in this run",
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = &opts.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The two references the issue sets event rates against, measured now over `events`:
/// ed25519-dalek's batched signature check on all cores, the raw batched insert of the same
/// rows, and the lower of the two (the goals are fractions of it).
pub async fn goal_references(
    events: &[basis_core::validate::ValidEvent],
) -> Result<[(&'static str, f64); 3]> {
    let owned = events.to_vec();
    let dir = tempfile::tempdir()?;
    let raw_dir = dir.path().to_path_buf();
    let (batched, raw) = tokio::task::spawn_blocking(move || {
        anyhow::Ok((
            backfill::batch_verify_rate(&owned)?,
            ingest::raw_path(&raw_dir, &owned)?,
        ))
    })
    .await??;
    Ok([
        ("batched signature check, all cores", batched),
        ("raw rusqlite batched insert, same rows", raw),
        ("the lower of those two (goal: 0.6)", batched.min(raw)),
    ])
}

fn peak(report: &mut Report, n: usize, b: &backfill::Backfill) {
    let mut add = |until: &str, (source, sink): (u64, u64)| {
        report.add(Figure::beside(
            "resources",
            &format!("peak RSS, node holding {n} events, {until}"),
            source as f64 / 1024.0,
            "MiB",
            "peak RSS of the node catching up",
            sink as f64 / 1024.0,
        ));
    };
    add("until the other caught up", b.caught_up_peak_kib);
    if let Some(p) = b.reconciled_peak_kib {
        add("through a catch-up and the reconciliation after it", p);
    }
    report.add(Figure::beside(
        "resources",
        &format!("of it mapping files (the binary), node holding {n} events"),
        b.file_kib.0 as f64 / 1024.0,
        "MiB",
        "the same of the node catching up",
        b.file_kib.1 as f64 / 1024.0,
    ));
}
