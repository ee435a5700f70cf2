//! Nodes whose wall clocks are years apart (boards with no real-time clock and no NTP):
//! events still sort the same on both, and retention drops nothing as too old or from the
//! future. Each node runs under libfaketime (Debian package faketime; tests/run installs it).

use crate::common;

use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::Duration;

use common::{
    Node, clean_command, count_events, describe, open_db_ro, run_with_timeout, wait_until,
};
use serde_json::Value;

const PASSPHRASE: &str = "clock test passphrase";

fn libfaketime() -> Option<PathBuf> {
    let dirs = std::fs::read_dir("/usr/lib").ok()?;
    dirs.filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists())
}

/// A node whose wall clock starts at `start` ("YYYY-MM-DD HH:MM:SS") and runs from there.
fn node_at(lib: &PathBuf, start: &str, extra: &str) -> Node {
    let mut node = Node::with_config_extra(&format!(
        "[store]\nretention_days = 30\nexpire_interval_secs = 10\n{extra}"
    ));
    let mut cmd = node.command();
    cmd.arg("run")
        .env("LD_PRELOAD", lib)
        .env("FAKETIME", format!("@{start}"))
        // Timers (QUIC, tokio) keep the real monotonic clock; only the wall clock is off.
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    node.start_command(cmd);
    node
}

fn client(node: &Node, dir: &std::path::Path, args: &[&str]) -> String {
    let mut cmd: Command = clean_command();
    cmd.env("BASIS_NODE", node.api_url())
        .env("BASIS_CLIENT_DIR", dir)
        .env("BASIS_PASSPHRASE", PASSPHRASE)
        .env("BASIS_KDF", "fast")
        .args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert!(out.status.success(), "basis {args:?}: {}", describe(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn texts(node: &Node, dir: &std::path::Path, room: &str) -> Vec<String> {
    let h: Value =
        serde_json::from_str(client(node, dir, &["history", room, "--json"]).trim()).unwrap();
    h["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["shown"]["type"] == "text")
        .map(|l| l["shown"]["text"].as_str().unwrap().to_string())
        .collect()
}

/// How long a change may take to cross between the two nodes.
const SYNC: Duration = Duration::from_secs(60);

#[test]
fn clocks_years_apart_keep_order_and_retention_sane() {
    let Some(lib) = libfaketime() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "libfaketime is missing in CI: tests/run installs the faketime package"
        );
        eprintln!("skipped: libfaketime is not installed (apt install faketime)");
        return;
    };
    let secret = "[federation]\nsecret = \"skewed clocks 99\"\nmdns = false\n";
    // A board stuck in 2019, and one that believes it is 2031; each binds a free port.
    let past = node_at(&lib, "2019-03-01 00:00:00", &format!("{secret}port = 0\n"));
    let past_port = past.quic_port();
    let past_id = past.node_id();
    let future = node_at(
        &lib,
        "2031-09-01 00:00:00",
        &format!("{secret}port = 0\npeers = [\"{past_id}@127.0.0.1:{past_port}\"]\n"),
    );
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    client(&past, a.path(), &["user", "create"]);
    client(&future, b.path(), &["user", "create"]);
    let bob: Value =
        serde_json::from_str(client(&future, b.path(), &["user", "show", "--json"]).trim())
            .unwrap();
    let bob = bob["user"].as_str().unwrap().to_string();
    client(&past, a.path(), &["room", "create", "field"]);
    client(&past, a.path(), &["room", "invite", "field", &bob]);
    wait_until(SYNC, "the invitation reaches the 2031 node", || {
        client(&future, b.path(), &["rooms"]).contains("field")
    });
    client(&future, b.path(), &["room", "join", "field"]);
    wait_until(SYNC, "the join reaches the 2019 node", || {
        let rooms: Value =
            serde_json::from_str(client(&past, a.path(), &["rooms", "--json"]).trim()).unwrap();
        rooms[0]["members"].as_array().is_some_and(|ms| {
            ms.iter()
                .any(|m| m["user"] == bob && m["standing"] == "joined")
        })
    });
    client(&past, a.path(), &["send", "field", "first, from 2019"]);
    wait_until(SYNC, "bob reads the first", || {
        texts(&future, b.path(), "field").len() == 1
    });
    client(&future, b.path(), &["send", "field", "second, from 2031"]);
    wait_until(SYNC, "alice reads the second", || {
        texts(&past, a.path(), "field").len() == 2
    });
    client(
        &past,
        a.path(),
        &["send", "field", "third, from 2019 again"],
    );
    let order = vec![
        "first, from 2019".to_string(),
        "second, from 2031".to_string(),
        "third, from 2019 again".to_string(),
    ];
    wait_until(
        SYNC,
        "both show the three in the order they were written",
        || texts(&past, a.path(), "field") == order && texts(&future, b.path(), "field") == order,
    );
    // Retention (30 days, checked every 10 s) runs a few times on both: nothing goes, though
    // by the other's clock every event is 12 years old or 12 years ahead.
    let held = count_events(&open_db_ro(&past.db_path()));
    thread::sleep(Duration::from_secs(25));
    for (name, node) in [("2019 node", &past), ("2031 node", &future)] {
        let n = count_events(&open_db_ro(&node.db_path()));
        assert!(n >= held, "{name} expired events: {n} of {held} left");
    }
    assert_eq!(texts(&past, a.path(), "field"), order);
    assert_eq!(texts(&future, b.path(), "field"), order);
}
