//! Reconciliation figures: bytes both ways and round trips to find the difference between two
//! event sets, beside the naive full id list (32 bytes per event).
//!
//! `cargo run --release -p basis-proto --example recon_bench` runs n = 10k and 100k;
//! add `-- --full` for 1M too. Prints a table; figures, not assertions.

use std::time::Instant;

use basis_core::EventId;
use basis_core::event::id_of;
use basis_proto::recon::{Initiator, Responder, Step};

fn items(n: usize) -> Vec<(u64, EventId)> {
    // One event every 250 ms of author time, ids as real event ids are: SHA-256 outputs.
    (0..n)
        .map(|i| {
            let ts = (1_700_000_000_000u64 + 250 * i as u64) << 16;
            (ts, id_of(&(i as u64).to_le_bytes()))
        })
        .collect()
}

struct Outcome {
    up: usize,
    down: usize,
    rounds: u32,
    have: usize,
    need: usize,
    millis: u128,
}

fn reconcile(
    initiator_items: Vec<(u64, EventId)>,
    responder_items: Vec<(u64, EventId)>,
) -> Outcome {
    let start = Instant::now();
    let (mut init, mut msg) = Initiator::start(initiator_items).expect("start");
    let mut resp = Responder::new(responder_items).expect("responder");
    let (mut up, mut down) = (0, 0);
    loop {
        up += msg.len();
        let reply = resp.reply(&msg).expect("reply");
        down += reply.len();
        match init.step(&reply).expect("step") {
            Step::Continue(next) => msg = next,
            Step::Done { have, need } => {
                return Outcome {
                    up,
                    down,
                    rounds: init.rounds(),
                    have: have.len(),
                    need: need.len(),
                    millis: start.elapsed().as_millis(),
                };
            }
        }
    }
}

fn status_mib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(0.0)
}

/// Resets the peak-RSS mark (Linux: writing 5 to clear_refs), so the next peak is one case's.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn main() {
    let full = std::env::args().any(|a| a == "--full");
    let sizes: &[usize] = if full {
        &[10_000, 100_000, 1_000_000]
    } else {
        &[10_000, 100_000]
    };
    println!(
        "{:>9} {:>18} {:>10} {:>10} {:>7} {:>9} {:>12} {:>8} {:>8} {:>10}",
        "n",
        "difference",
        "bytes up",
        "bytes down",
        "rounds",
        "found",
        "naive list",
        "ratio",
        "ms",
        "+MiB peak"
    );
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
            let responder = all.clone();
            reset_peak();
            let before = status_mib("VmRSS:");
            let o = reconcile(lacking, responder);
            let extra = status_mib("VmHWM:") - before;
            assert_eq!(o.need, expected, "reconciliation missed events");
            assert_eq!(o.have, 0);
            let naive = 32 * n;
            let total = o.up + o.down;
            println!(
                "{:>9} {:>18} {:>10} {:>10} {:>7} {:>9} {:>12} {:>7.4} {:>8} {:>10.1}",
                n,
                name,
                o.up,
                o.down,
                o.rounds,
                o.need,
                naive,
                total as f64 / naive as f64,
                o.millis,
                extra
            );
        }
    }
    println!(
        "+MiB peak: memory both sides of one session took beyond the input lists (negentropy's sorted vectors and messages)"
    );
}
