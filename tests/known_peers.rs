//! A node remembers the peers it was linked with (in its database) and dials them again after
//! a restart, even when nothing else (mDNS, static peers) would introduce them. Loopback only.

use crate::common;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use common::{Node, count_events, open_db_ro};

fn config(port: u16, peers: &str) -> String {
    format!(
        "[federation]\nsecret = \"blue river 42\"\nport = {port}\nmdns = false\nreconcile_secs = 5\npeers = [{peers}]\n"
    )
}

#[test]
fn a_restarted_node_dials_the_peers_it_remembers() {
    // Port 0: each node binds a free port and says which.
    let mut a = Node::with_config_extra(&config(0, ""));
    a.start();
    let pa = a.quic_port();
    let mut b = Node::with_config_extra(&config(0, &format!("\"127.0.0.1:{pa}\"")));
    b.start();
    a.append_json(&["--count", "3"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_events(&open_db_ro(&b.db_path())) < 4 {
        assert!(Instant::now() < deadline, "b never linked with a");
        thread::sleep(Duration::from_millis(100));
    }
    b.stop();

    // b forgets its static peer; only its database remembers a.
    let text = fs::read_to_string(&b.config).unwrap();
    fs::write(&b.config, text.replace(&format!("\"127.0.0.1:{pa}\""), "")).unwrap();
    a.append_json(&["--count", "5"]);
    b.start();
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_events(&open_db_ro(&b.db_path())) < 10 {
        assert!(
            Instant::now() < deadline,
            "b did not dial the peer it remembered:\n{}",
            b.log_text()
        );
        thread::sleep(Duration::from_millis(100));
    }
    let peers: serde_json::Value =
        serde_json::from_slice(&b.cli_ok(&["peers", "--json"]).stdout).unwrap();
    let found = &peers[0]["found"];
    assert!(
        found.as_array().unwrap().iter().any(|f| f == "known"),
        "{peers}"
    );
}
