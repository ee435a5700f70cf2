//! Crash durability: an event acknowledged to a client survives the daemon being killed at
//! any moment (SIGKILL stands in for a power cut as far as the process is concerned), and the
//! node comes back on the crashed database.
//!
//! Two tests: clients on the control socket; and clients on the HTTP API while a federated
//! peer keeps sending events by sync. `BASIS_CRASH_ROUNDS` sets the number of rounds of each
//! (default 5; the full run is `BASIS_CRASH_ROUNDS=50`), `BASIS_CRASH_SEED` replays a run (the
//! seed is printed).

use crate::api_client;
use crate::common;

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

/// Posts events to the API from `tasks` concurrent clients until the node dies; returns the
/// ids of every event acknowledged (201 or 200).
fn post_until_dead(node: &Node, room: basis_core::RoomId, tasks: usize, start: u64) -> Vec<String> {
    use api_client::{Api, rt, text};
    let api = Api::new(node);
    rt().block_on(async move {
        let key = basis_core::UserKey::from_secret([1; 32]);
        let token = api.sign_in(&key).await;
        let api = std::sync::Arc::new(api);
        let mut handles = Vec::new();
        for t in 0..tasks as u64 {
            let (api, token, key) = (
                api.clone(),
                token.clone(),
                basis_core::UserKey::from_secret([1; 32]),
            );
            handles.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0.. {
                    let e = text(&key, room, start + t * 1_000_000 + i, "crash probe");
                    let req = api
                        .http
                        .post(format!("{}/v1/events", api.base))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"event": base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            e.to_bytes()
                        )}));
                    match req.send().await {
                        Ok(r) if r.status().is_success() => acked.push(e.id().to_string()),
                        Ok(r) if r.status().is_server_error() => break,
                        Ok(r) => panic!("a live node refused a good event: {}", r.status()),
                        Err(_) => break,
                    }
                }
                acked
            }));
        }
        let mut all = Vec::new();
        for h in handles {
            all.extend(h.await.expect("a posting task"));
        }
        all
    })
}

#[test]
fn api_posts_and_synced_events_survive_sigkill() {
    let rounds = env_u64("BASIS_CRASH_ROUNDS").unwrap_or(5);
    let seed = env_u64("BASIS_CRASH_SEED").unwrap_or_else(rand::random);
    println!("API and sync crash test: {rounds} rounds, BASIS_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let secret = "secret = \"crash and sync 5\"\nmdns = false\n";
    // The peer that keeps running and keeps sending, on a port it picks and reports.
    let mut peer = Node::with_config_extra(&format!("[federation]\n{secret}port = 0\n"));
    peer.start();
    let port_b = peer.quic_port();
    let peer_id = peer.node_id();
    let mut node = Node::with_config_extra(&format!(
        "[federation]\n{secret}port = 0\npeers = [\"{peer_id}@127.0.0.1:{port_b}\"]\n"
    ));
    node.start();
    // A room of the API user, created (and acknowledged) before the first crash.
    let key = basis_core::UserKey::from_secret([1; 32]);
    let create = api_client::create(&key, false);
    let room = basis_core::RoomId::from(create.id());
    api_client::rt().block_on(async {
        let api = api_client::Api::new(&node);
        let token = api.sign_in(&key).await;
        assert_eq!(api.post_event(&token, &create).await.status, 201);
    });
    let mut all_acked: Vec<String> = vec![create.id().to_string()];
    let mut synced = 0usize;
    for round in 1..=rounds {
        if !node.is_running() {
            node.start();
        }
        // The peer sends a batch now: it reaches this node by live push and sync.
        synced += peer.append_json(&["--count", "200"]).len();
        let delay = rng.random_range(150..1500u64);
        let killer = {
            let pid = node.pid();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(delay));
                // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            })
        };
        let ids = post_until_dead(&node, room, 4, 10_000_000 * round);
        killer.join().unwrap();
        node.kill9();
        let check = node.store_check_ok();
        node.start();
        let conn = open_db_ro(&node.db_path());
        let missing = missing_ids(&conn, &ids);
        let earlier = missing_ids(&conn, &all_acked);
        drop(conn);
        println!(
            "round {round}: killed after {delay} ms, {} API posts acked (store check: {} events)",
            ids.len(),
            check["events"]
        );
        assert!(
            missing.is_empty() && earlier.is_empty(),
            "round {round} (seed {seed}): acknowledged events lost: {:?} {:?}",
            &missing[..missing.len().min(5)],
            &earlier[..earlier.len().min(5)]
        );
        all_acked.extend(ids);
        // It serves again, through the API.
        let again = post_until_dead_once(&node, room, round);
        all_acked.push(again);
    }
    // Whatever the peer sent is here in the end: sync makes up for what a crash interrupted.
    let peer_ids: Vec<String> = {
        let conn = open_db_ro(&peer.db_path());
        let mut stmt = conn.prepare("SELECT hex(id) FROM events").unwrap();
        stmt.query_map([], |r| r.get::<_, String>(0))
            .unwrap()
            .map(|r| r.unwrap().to_lowercase())
            .collect()
    };
    assert!(peer_ids.len() > synced, "the peer holds what it sent");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let conn = open_db_ro(&node.db_path());
        let missing = missing_ids(&conn, &peer_ids);
        drop(conn);
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "(seed {seed}) {} of the peer's {} events never arrived",
            missing.len(),
            peer_ids.len()
        );
        thread::sleep(Duration::from_millis(250));
    }
    node.stop();
    node.store_check_ok();
    peer.stop();
}

/// One post to a running node, asserted to be acknowledged.
fn post_until_dead_once(node: &Node, room: basis_core::RoomId, round: u64) -> String {
    use api_client::{Api, rt, text};
    rt().block_on(async {
        let api = Api::new(node);
        let key = basis_core::UserKey::from_secret([1; 32]);
        let token = api.sign_in(&key).await;
        let e = text(&key, room, 900_000_000 + round, "after the restart");
        let r = api.post_event(&token, &e).await;
        assert_eq!(
            r.status, 201,
            "round {round}: the restarted node refused: {}",
            r.body
        );
        e.id().to_string()
    })
}
