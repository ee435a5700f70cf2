//! Crash durability: an event acknowledged to a client survives the daemon being killed at
//! any moment (SIGKILL stands in for a power cut as far as the process is concerned), and the
//! node comes back on the crashed database.
//!
//! `BASIS_CRASH_ROUNDS` sets the number of rounds (default 5), `BASIS_CRASH_SEED` replays a
//! run (the seed is printed).

#[path = "common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How long the client may take to notice the daemon died and exit.
const CLIENT_EXIT_TIMEOUT: Duration = Duration::from_secs(60);

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}"))
    })
}

#[test]
fn acknowledged_events_survive_sigkill() {
    let rounds = env_u64("BASIS_CRASH_ROUNDS").unwrap_or(5);
    let seed = env_u64("BASIS_CRASH_SEED").unwrap_or_else(rand::random);
    println!("crash test: {rounds} rounds, BASIS_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut node = Node::new();
    let mut all_acked: Vec<String> = Vec::new();
    let mut rounds_with_acks = 0;

    for round in 1..=rounds {
        if !node.is_running() {
            node.start();
        }

        // The client: many events over several connections, one ack per stdout line.
        let client_log = node.root().join(format!("client-{round}.log"));
        let mut cmd = node.command();
        cmd.args([
            "dev",
            "append",
            "--count",
            "100000",
            "--parallel",
            "4",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(fs::File::create(&client_log).unwrap());
        let mut client = cmd.spawn().expect("start dev append");
        let stdout = client.stdout.take().unwrap();
        let reader = thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });

        let delay = rng.random_range(150..1500u64);
        thread::sleep(Duration::from_millis(delay));
        node.kill9();

        // The client notices and exits; collect everything it printed.
        let deadline = Instant::now() + CLIENT_EXIT_TIMEOUT;
        let client_status = loop {
            if let Some(status) = client.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = client.kill();
                let _ = client.wait();
                panic!(
                    "round {round}: dev append did not exit within {CLIENT_EXIT_TIMEOUT:?} of the daemon's death\n{}",
                    fs::read_to_string(&client_log).unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        let lines = reader.join().expect("reader thread");
        let client_stderr = fs::read_to_string(&client_log).unwrap_or_default();
        assert!(
            !client_stderr.contains("panicked"),
            "round {round}: dev append panicked\n{client_stderr}"
        );
        let acks: Vec<Ack> = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse_ack(l))
            .collect();
        if acks.len() < 100_001 {
            assert_eq!(
                client_status.code(),
                Some(1),
                "round {round}: dev append lost its daemon but did not exit 1\n{client_stderr}"
            );
        }
        let ids: Vec<String> = acks.iter().map(|a| a.id.clone()).collect();
        let distinct: HashSet<&String> = ids.iter().collect();
        assert_eq!(
            distinct.len(),
            ids.len(),
            "round {round}: an event was acked twice"
        );

        // The crashed database is consistent, even before a daemon opens it again.
        let check = node.store_check_ok();

        // A daemon starts on it and has everything that was acknowledged.
        node.start();
        let conn = open_db_ro(&node.db_path());
        let missing = missing_ids(&conn, &ids);
        let in_db = count_events(&conn);
        drop(conn);
        println!(
            "round {round}: killed after {delay} ms, {} acked, {in_db} events in the database \
             (store check before restart: {} events)",
            ids.len(),
            check["events"]
        );
        assert!(
            missing.is_empty(),
            "round {round} (seed {seed}): {} of {} acknowledged events lost, e.g. {:?}",
            missing.len(),
            ids.len(),
            &missing[..missing.len().min(5)]
        );
        if !ids.is_empty() {
            rounds_with_acks += 1;
        }
        all_acked.extend(ids);

        // Earlier rounds' events are all still there too.
        let conn = open_db_ro(&node.db_path());
        let missing = missing_ids(&conn, &all_acked);
        drop(conn);
        assert!(
            missing.is_empty(),
            "round {round} (seed {seed}): events acknowledged in earlier rounds lost: {:?}",
            &missing[..missing.len().min(5)]
        );

        // It serves again.
        let acks = node.append_json(&["--count", "2"]);
        assert_eq!(acks.len(), 3, "round {round}: {acks:#?}");
        all_acked.extend(acks.into_iter().map(|a| a.id));
        let status = node.status_json();
        assert!(
            status["events"].as_u64().unwrap_or(0) >= all_acked.len() as u64,
            "round {round}: status counts fewer events than were acknowledged: {status}"
        );
    }

    assert!(
        rounds_with_acks > 0,
        "no round got any event acknowledged before the kill: the test proved nothing (seed {seed})"
    );
    node.stop();
    node.store_check_ok();
}
