//! Partition chaos in the netns lab: five nodes, clients writing on every node, while a
//! seeded schedule cuts links, flaps them, adds 20-30 % loss and slows hosts to a trickle.
//! Then everything heals and every node must hold exactly the union of what was
//! acknowledged. Prints the seed and the time to converge.
//!
//! `BASIS_CHAOS_SEED` replays a schedule; `BASIS_CHAOS_SECS` sets how long the chaos lasts
//! (default 30 s; the full run is 240). Needs root (skips otherwise).

use crate::lab;
use crate::lab_node;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use lab::lab_or_skip;
use lab_node::LabNode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SECRET: &str = "chaos monkey 12345";

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn five_nodes_through_partitions_flaps_loss_and_slow_links_converge_to_the_union() {
    let lab = lab_or_skip!();
    let seed = env_u64("BASIS_CHAOS_SEED").unwrap_or_else(rand::random);
    let secs = env_u64("BASIS_CHAOS_SECS").unwrap_or(30);
    println!("chaos: {secs} s, BASIS_CHAOS_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let fed = format!("secret = \"{SECRET}\"\nreconcile_secs = 5");
    let mut nodes: Vec<LabNode> = (1..=5)
        .map(|i| LabNode::new(&lab, &format!("c{i}"), &fed))
        .collect();
    for n in &mut nodes {
        n.start();
    }
    let nodes = Arc::new(nodes);

    // Clients on every node append small batches for as long as the chaos lasts; only
    // acknowledged events count.
    let acked: Arc<Mutex<BTreeSet<Vec<u8>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..nodes.len())
        .map(|i| {
            let (nodes, acked, stop) = (nodes.clone(), acked.clone(), stop.clone());
            thread::spawn(move || {
                let mut batch = 0;
                while !stop.load(Ordering::Relaxed) {
                    batch += 1;
                    let ids = nodes[i].append(10, &format!("node {i} batch {batch}"));
                    let mut set = acked.lock().unwrap();
                    for id in ids {
                        set.insert(hex::decode(id).unwrap());
                    }
                    drop(set);
                    thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();

    // The schedule.
    let start = Instant::now();
    let mut down = vec![false; nodes.len()];
    while start.elapsed() < Duration::from_secs(secs) {
        let i = rng.random_range(0..nodes.len());
        let host = &nodes[i].host;
        let at = start.elapsed().as_secs_f32();
        match rng.random_range(0..5) {
            0 => {
                down[i] = !down[i];
                println!(
                    "{at:6.1} s  {} link {}",
                    host.name(),
                    if down[i] { "down" } else { "up" }
                );
                lab.set_link(host, !down[i]);
            }
            1 => {
                println!("{at:6.1} s  {} flaps", host.name());
                lab.set_link(host, false);
                thread::sleep(Duration::from_millis(rng.random_range(100..800)));
                lab.set_link(host, !down[i]);
            }
            2 => {
                let loss = rng.random_range(20..=30);
                println!("{at:6.1} s  {} loses {loss} %", host.name());
                lab.set_loss(host, loss);
            }
            3 => {
                let kbit = rng.random_range(64..512);
                println!("{at:6.1} s  {} limited to {kbit} kbit/s", host.name());
                lab.set_rate(host, kbit);
            }
            _ => {
                println!("{at:6.1} s  {} clean again", host.name());
                lab.set_loss(host, 0);
                lab.set_rate(host, 0);
            }
        }
        thread::sleep(Duration::from_millis(rng.random_range(1000..4000)));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("a writer thread");
    }
    // Heal everything.
    for n in nodes.iter() {
        lab.set_link(&n.host, true);
        lab.set_loss(&n.host, 0);
        lab.set_rate(&n.host, 0);
    }
    let healed = Instant::now();
    let union = acked.lock().unwrap().clone();
    println!(
        "healed; {} events acknowledged across the 5 nodes",
        union.len()
    );
    let limit = Duration::from_secs(180);
    loop {
        let sets: Vec<BTreeSet<Vec<u8>>> = nodes.iter().map(|n| n.ids()).collect();
        // Every node holds every acknowledged event, and all hold the same set (room create
        // events of each `dev append` run are in it too).
        if sets.iter().all(|s| s.is_superset(&union) && *s == sets[0]) {
            println!(
                "converged {:.2} s after healing (seed {seed}): each node holds {} events",
                healed.elapsed().as_secs_f64(),
                sets[0].len()
            );
            break;
        }
        if healed.elapsed() > limit {
            let counts: Vec<String> = sets
                .iter()
                .zip(nodes.iter())
                .map(|(s, n)| {
                    format!(
                        "{}: {} events, {} acknowledged missing",
                        n.host.name(),
                        s.len(),
                        union.difference(s).count()
                    )
                })
                .collect();
            panic!(
                "no convergence {limit:?} after healing (seed {seed}):\n{}",
                counts.join("\n")
            );
        }
        thread::sleep(Duration::from_millis(250));
    }
}
