//! The daemon's life cycle as a user sees it: identity, storage across restarts, signals,
//! the data-directory lock, `status`, `dev append`, `config defaults`.

use crate::common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::FileTypeExt;

use basis_core::{NodeKey, UserKey};
use basis_store::wire;
use common::*;
use serde_json::Value;

fn ids_of(acks: &[Ack]) -> Vec<String> {
    acks.iter().map(|a| a.id.clone()).collect()
}

/// All acks are new, in one room, with distinct ids, and the room's create event (whose id is
/// the room id) is among them.
fn check_acks_of_new_room(acks: &[Ack], expected: usize) {
    assert_eq!(acks.len(), expected, "acks: {acks:#?}");
    let room = &acks[0].room;
    assert!(
        acks.iter().all(|a| &a.room == room),
        "acks in several rooms: {acks:#?}"
    );
    assert!(
        acks.iter().all(|a| a.new),
        "an ack of a fresh event says new=false: {acks:#?}"
    );
    let distinct: HashSet<&String> = acks.iter().map(|a| &a.id).collect();
    assert_eq!(distinct.len(), acks.len(), "duplicate ids in acks");
    assert!(
        distinct.contains(room),
        "the room's create event (id = room id {room}) was not acknowledged"
    );
}

#[test]
fn restart_keeps_identity_and_events() {
    let mut node = Node::new();
    node.start();
    let id = node.node_id();

    let acks = node.append_json(&["--count", "20"]);
    // 20 messages and the room's create event.
    check_acks_of_new_room(&acks, 21);
    let ids = ids_of(&acks);

    node.stop();
    node.start();

    assert_eq!(node.node_id(), id, "the node id changed across a restart");
    let status = node.status_json();
    assert_eq!(status["node_id"], id.as_str(), "status: {status}");
    assert_eq!(status["events"], 21, "status: {status}");

    let conn = open_db_ro(&node.db_path());
    let missing = missing_ids(&conn, &ids);
    assert!(
        missing.is_empty(),
        "acknowledged events lost across a restart: {missing:?}"
    );
    assert_eq!(count_events(&conn), 21);
    drop(conn);
    node.stop();
}

#[test]
fn status_reports_the_node() {
    let mut node = Node::new();
    node.start();
    let id = node.node_id();
    node.append_json(&["--count", "3"]);
    let s = node.status_json();
    assert_eq!(s["node_id"], id.as_str(), "status: {s}");
    assert_eq!(
        s["name"], NODE_NAME,
        "the configured name is not reported: {s}"
    );
    assert!(
        s["version"].as_str().is_some_and(|v| !v.is_empty()),
        "no version in status: {s}"
    );
    let data_dir = s["data_dir"].as_str().expect("data_dir string");
    assert_eq!(
        fs::canonicalize(data_dir).ok(),
        fs::canonicalize(&node.data).ok(),
        "status data_dir is not the configured one: {s}"
    );
    assert_eq!(s["events"], 4, "status: {s}");
    assert!(
        s["event_bytes"].as_u64().is_some_and(|b| b > 0),
        "status: {s}"
    );
    assert!(s["store_bytes"].as_u64().is_some(), "status: {s}");
    assert!(s["listening"].is_array(), "status: {s}");
    assert!(s["uptime_secs"].as_u64().is_some(), "status: {s}");

    // The human form works too and names the node.
    let out = node.cli_ok(&["status"]);
    let plain = text(&out.stdout);
    assert!(
        plain.contains(&id),
        "plain status does not show the node id:\n{plain}"
    );
    node.stop();
}

#[test]
fn first_start_creates_a_private_key_and_data_dir() {
    let mut node = Node::new();
    assert!(!node.data.exists());
    node.start();

    assert_eq!(mode_of(&node.data), 0o700, "data directory mode");
    assert_eq!(mode_of(&node.key_path()), 0o600, "node key mode");
    assert!(
        node.db_path().is_file(),
        "no database at {}",
        node.db_path().display()
    );
    let sock = fs::symlink_metadata(node.socket()).expect("control socket exists");
    assert!(sock.file_type().is_socket(), "control.sock is not a socket");

    let pem = fs::read_to_string(node.key_path()).unwrap();
    let key = NodeKey::from_pem(&pem).expect("node.key is a PKCS#8 PEM ed25519 key");
    let id = node.node_id();
    assert_eq!(
        key.id().to_string(),
        id,
        "the node id is not the key's public key"
    );

    let out = node.cli_ok(&["id", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("id --json is JSON");
    assert_eq!(v["node_id"], id.as_str(), "{v}");
    assert_eq!(v["short"], &id[..8], "{v}");
    assert_eq!(
        fs::canonicalize(v["key_file"].as_str().expect("key_file")).ok(),
        fs::canonicalize(node.key_path()).ok(),
        "{v}"
    );

    let log = node.stop();
    assert!(
        log.contains(&node.data.display().to_string()),
        "the log does not show the data directory:\n{log}"
    );
    assert!(
        log.contains(&node.socket().display().to_string()),
        "the log does not show the control socket:\n{log}"
    );
    // The secret never reaches the log.
    for line in pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!log.contains(line), "the log shows the node key");
    }
}

#[test]
fn id_creates_the_key_without_a_daemon() {
    let node = Node::new();
    let id = node.node_id();
    assert_eq!(mode_of(&node.key_path()), 0o600);
    assert_eq!(mode_of(&node.data), 0o700);
    assert_eq!(
        node.node_id(),
        id,
        "basis id changed the key on its second run"
    );
}

#[test]
fn second_daemon_on_the_same_data_dir_is_refused() {
    let mut node = Node::new();
    node.start();
    let before = node.append_json(&[]);
    check_acks_of_new_room(&before, 2);

    let out = node.run_refused(&[]);
    assert_error_exit(&out, "second basis run");
    let stderr = text(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("already using the data directory"),
        "the refusal does not say the data directory is locked:\n{}",
        describe(&out)
    );

    // The first daemon is unharmed: it still answers on its socket and stores events.
    assert!(
        node.is_running(),
        "the first daemon died:\n{}",
        node.log_text()
    );
    let after = node.append_json(&["--count", "5"]);
    check_acks_of_new_room(&after, 6);
    let status = node.status_json();
    assert_eq!(status["events"], 8, "status: {status}");
    let check = node.store_check_ok();
    assert_eq!(check["events"], 8, "{check}");
    assert_eq!(check["rooms"], 2, "{check}");
    node.stop();
}

#[test]
fn sigint_also_stops_cleanly() {
    let mut node = Node::new();
    node.start();
    let acks = node.append_json(&["--count", "2"]);
    let status = node.signal_and_wait(libc::SIGINT);
    assert_eq!(
        status.code(),
        Some(0),
        "after SIGINT the daemon exited with {status:?}\n{}",
        node.log_text()
    );
    // The lock is released and the events are there.
    node.start();
    let conn = open_db_ro(&node.db_path());
    assert!(missing_ids(&conn, &ids_of(&acks)).is_empty());
    drop(conn);
    node.stop();
}

#[test]
fn status_without_a_daemon_says_so() {
    let mut node = Node::new();
    let socket = node.socket().display().to_string();
    let check = |node: &Node, when: &str| {
        let out = node.cli(&["status"]);
        assert_error_exit(&out, &format!("basis status {when}"));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&socket) && stderr.to_lowercase().contains("running"),
            "basis status {when}: expected an error saying no node is running at {socket}\n{}",
            describe(&out)
        );
    };
    check(&node, "before any start");

    // After a crash the socket file is left behind, with nobody listening.
    node.start();
    node.kill9();
    check(&node, "after the daemon was killed");
}

#[test]
fn parallel_appends_are_all_acknowledged_and_kept() {
    let mut node = Node::new();
    node.start();
    let acks = node.append_json(&["--count", "200", "--parallel", "8"]);
    check_acks_of_new_room(&acks, 201);
    let ids = ids_of(&acks);
    node.stop();

    node.start();
    let conn = open_db_ro(&node.db_path());
    let missing = missing_ids(&conn, &ids);
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost: {missing:?}",
        missing.len()
    );
    drop(conn);
    assert_eq!(node.status_json()["events"], 201);
    node.stop();
}

#[test]
fn store_rooms_lists_the_rooms_the_node_holds() {
    let mut node = Node::new();
    node.start();
    let acks = node.append_json(&["--count", "3"]);
    let room = acks[0].room.clone();
    let out = node.cli_ok(&["store", "rooms", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("store rooms --json is not JSON ({e})\n{}", describe(&out)));
    let rooms = v["rooms"].as_array().cloned().unwrap_or_default();
    assert_eq!(rooms.len(), 1, "{v}");
    assert_eq!(rooms[0]["room"], room.as_str(), "{v}");
    assert_eq!(rooms[0]["name"], "dev", "{v}");
    assert_eq!(
        rooms[0]["events"], 4,
        "the creation and three messages: {v}"
    );
    assert!(rooms[0]["bytes"].as_u64().is_some_and(|b| b > 0), "{v}");
    // The plain listing starts each line with the id `[upstream.rooms.<room id>]` takes.
    let plain = text(&node.cli_ok(&["store", "rooms"]).stdout);
    assert!(
        plain
            .lines()
            .any(|l| l.starts_with(&format!("{room}  dev  4 events"))),
        "{plain}"
    );
    node.stop();
}

#[test]
fn dev_append_plain_output() {
    let mut node = Node::new();
    node.start();
    let out = node.cli_ok(&["dev", "append", "--count", "3", "--text", "hi there"]);
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    let room_lines: Vec<&&str> = lines.iter().filter(|l| l.starts_with("room ")).collect();
    assert_eq!(room_lines.len(), 1, "expected one `room` line:\n{stdout}");
    assert!(
        lines[0].starts_with("room "),
        "the `room` line is not first:\n{stdout}"
    );
    let room = lines[0]["room ".len()..].trim();
    assert!(is_hex_id(room), "bad room id in {:?}", lines[0]);
    let stored: Vec<&str> = lines[1..]
        .iter()
        .map(|l| {
            l.strip_prefix("stored ")
                .unwrap_or_else(|| panic!("unexpected line {l:?}:\n{stdout}"))
                .trim()
        })
        .collect();
    // The room's creation, then three messages.
    assert_eq!(
        stored.len(),
        4,
        "expected 4 `stored` lines (the create event and three messages):\n{stdout}"
    );
    assert!(stored.iter().all(|id| is_hex_id(id)), "{stdout}");
    assert_eq!(stored.iter().collect::<HashSet<_>>().len(), stored.len());

    let conn = open_db_ro(&node.db_path());
    let mut with_text = 0;
    for id in &stored {
        let raw: Vec<u8> = conn
            .query_row(
                &format!("SELECT {} FROM events WHERE id = ?1", wire::COLUMNS),
                [id_bytes(id)],
                |r| wire::wire(r, 0),
            )
            .unwrap_or_else(|e| panic!("stored event {id} not in the database: {e}"));
        if String::from_utf8_lossy(&raw).contains("hi there") {
            with_text += 1;
        }
    }
    assert_eq!(
        with_text, 3,
        "expected 3 stored messages carrying --text:\n{stdout}"
    );
    drop(conn);
    node.stop();
}

#[test]
fn dev_append_with_a_user_key_and_an_existing_room() {
    let mut node = Node::new();
    node.start();
    let key = UserKey::generate().unwrap();
    let key_file = node.root().join("user.pem");
    fs::write(&key_file, key.to_pem().unwrap()).unwrap();
    set_mode(&key_file, 0o600);
    let key_arg = key_file.to_str().unwrap();

    let first = node.append_json(&["--user-key", key_arg, "--text", "one"]);
    check_acks_of_new_room(&first, 2);
    let room = first[0].room.clone();

    let more = node.append_json(&["--user-key", key_arg, "--room", &room, "--count", "2"]);
    assert_eq!(
        more.len(),
        2,
        "with --room no create event is sent: {more:#?}"
    );
    assert!(more.iter().all(|a| a.room == room && a.new), "{more:#?}");

    let conn = open_db_ro(&node.db_path());
    for ack in first.iter().chain(&more) {
        let (raw, event_room): (Vec<u8>, Vec<u8>) = conn
            .query_row(
                &format!(
                    "SELECT {}, (SELECT id FROM rooms WHERE n = events.room) FROM events
                     WHERE id = ?1",
                    wire::COLUMNS
                ),
                [id_bytes(&ack.id)],
                |r| Ok((wire::wire(r, 0)?, r.get(4)?)),
            )
            .unwrap_or_else(|e| panic!("event {} not stored: {e}", ack.id));
        let author = basis_core::encoding::decode_event(&raw)
            .unwrap_or_else(|e| panic!("event {} stored undecodable: {e}", ack.id))
            .content
            .author;
        assert_eq!(
            author,
            key.id(),
            "event {} not signed by --user-key",
            ack.id
        );
        assert_eq!(
            event_room,
            id_bytes(&room),
            "event {} in the wrong room",
            ack.id
        );
    }
    drop(conn);
    node.stop();
}

#[test]
fn config_defaults_parse_and_check_ok() {
    let node = Node::new();
    let out = node.cli_ok(&["config", "defaults"]);
    let defaults = text(&out.stdout);
    assert!(
        defaults.lines().any(|l| l.trim() == "[store]"),
        "no [store] table in the defaults:\n{defaults}"
    );
    assert!(
        defaults.lines().any(|l| l
            .split('#')
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            == ["quota_mib", "=", "1024"]),
        "no `quota_mib = 1024` in the defaults:\n{defaults}"
    );
    let file = node.root().join("defaults.toml");
    fs::write(&file, &defaults).unwrap();

    let out = node.cli_ok(&["config".as_ref(), "check".as_ref(), file.as_os_str()]);
    assert!(text(&out.stdout).contains("ok"), "{}", describe(&out));

    let out = node.cli_ok(&[
        "config".as_ref(),
        "check".as_ref(),
        file.as_os_str(),
        "--json".as_ref(),
    ]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("config check --json is JSON");
    assert_eq!(v["ok"], true, "{v}");

    // As the main file of a layered configuration, too.
    let mut cmd = clean_command();
    cmd.arg("--config").arg(&file).args(["config", "check"]);
    let out = run_with_timeout(cmd, CMD_TIMEOUT);
    assert_success(&out, "basis --config defaults.toml config check");
}

#[test]
fn global_flags_work_after_the_subcommand() {
    let mut node = Node::new();
    let other = node.root().join("other");
    let mut cmd = clean_command();
    cmd.arg("run")
        .arg("--config")
        .arg(&node.config)
        .arg("--data-dir")
        .arg(&other);
    node.start_command(cmd);
    assert!(other.join("node.key").is_file(), "--data-dir was not used");
    assert!(
        !node.data.exists(),
        "the configured data_dir was used despite --data-dir"
    );

    let mut cmd = clean_command();
    cmd.args(["status", "--json", "--config"])
        .arg(&node.config)
        .arg("--data-dir")
        .arg(&other);
    let out = run_with_timeout(cmd, CMD_TIMEOUT);
    assert_success(&out, "basis status --json --config .. --data-dir ..");
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        fs::canonicalize(s["data_dir"].as_str().unwrap()).ok(),
        fs::canonicalize(&other).ok(),
        "{s}"
    );

    // --set node.data_dir=... is the same thing.
    let mut cmd = clean_command();
    cmd.arg("--config")
        .arg(&node.config)
        .arg("--set")
        .arg(format!("node.data_dir={}", other.display()))
        .args(["id", "--json"]);
    let out = run_with_timeout(cmd, CMD_TIMEOUT);
    assert_success(&out, "basis --set node.data_dir=.. id --json");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["node_id"], s["node_id"], "id {v} vs status {s}");
    node.stop();
}

/// Reads Prometheus text with the reference Python parser (`prometheus_client`, as
/// node_exporter's textfile collector would read the file): each family as
/// `{"name", "type", "samples": [[name, labels, value], ...]}`. `None` when python3 or the
/// module is missing (tests/run installs it); then the test is skipped, or fails under CI.
fn parse_prometheus_text(metrics: &str) -> Option<Vec<Value>> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    const SCRIPT: &str = "import json, sys\n\
from prometheus_client.parser import text_string_to_metric_families\n\
print(json.dumps([{'name': f.name, 'type': f.type,\n\
  'samples': [[s.name, s.labels, s.value] for s in f.samples]}\n\
  for f in text_string_to_metric_families(sys.stdin.read())]))\n";
    let has_module = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_module {
        let reason = "python3 with the module prometheus_client is missing (tests/run installs it)";
        assert!(std::env::var_os("CI").is_none(), "{reason}, and CI is set");
        eprintln!("skipped: {reason}");
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(metrics.as_bytes())
        .expect("write the metrics to python3");
    let out = child.wait_with_output().expect("python3 ran");
    assert!(
        out.status.success(),
        "the Prometheus text parser refused the metrics\n{}\n--- metrics ---\n{metrics}",
        describe(&out)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the parser's JSON"))
}

#[test]
fn metrics_are_valid_prometheus_text_that_agrees_with_status() {
    let mut node = Node::new();
    node.start();
    node.append_json(&["--count", "3"]);
    // One event refused as invalid, so that the counter is not zero.
    let reply = Control::connect(&node.socket()).append(b"not an event");
    assert_eq!(reply["ok"], false, "{reply}");

    let status = node.status_json();
    let metrics = text(&node.cli_ok(&["metrics"]).stdout);
    assert!(
        !metrics.lines().any(|l| l.trim() == "# EOF"),
        "`# EOF` belongs to OpenMetrics, not to the Prometheus text format:\n{metrics}"
    );
    let Some(families) = parse_prometheus_text(&metrics) else {
        return;
    };
    let mut values = std::collections::HashMap::new();
    for family in &families {
        let samples = family["samples"].as_array().expect("samples");
        assert!(
            !samples.is_empty(),
            "family {} has no samples: its TYPE line names another metric than its samples\n{metrics}",
            family["name"]
        );
        assert_ne!(
            family["type"], "unknown",
            "family {} has no TYPE of its own\n{metrics}",
            family["name"]
        );
        for s in samples {
            values.insert(s[0].as_str().unwrap().to_string(), s[2].as_f64().unwrap());
        }
    }
    let expect = |metric: &str, key: &str| {
        let want = status[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} in {status}"));
        assert_eq!(
            values.get(metric).copied(),
            Some(want),
            "{metric} vs status {key}\n{metrics}\n{status}"
        );
    };
    expect("basis_events", "events");
    expect("basis_event_bytes", "event_bytes");
    expect("basis_store_bytes", "store_bytes");
    expect("basis_refused_events_total", "refused");
    expect("basis_peers_linked", "peers_connected");
    assert_eq!(status["refused"], 1, "{status}");
    let uptime = values["basis_uptime_seconds"];
    let status_uptime = status["uptime_secs"].as_f64().unwrap();
    assert!(
        (status_uptime..status_uptime + 60.0).contains(&uptime),
        "uptime {uptime} vs status {status_uptime}"
    );
    node.stop();
}

#[test]
fn a_second_node_on_a_busy_port_says_so_before_making_anything() {
    let secret = "secret = \"busy port test 42\"";
    // The first node takes any free ports; the second is told to use the same ones.
    let mut first = Node::with_config_extra(&format!(
        "[api]\nlisten = \"[::]:0\"\n[federation]\n{secret}\nport = 0\nmdns = false\n"
    ));
    first.start();
    let api_port = first
        .api_url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("the first node's API port");
    let fed_port = first.quic_port();

    let cases = [
        (
            format!("[api]\nlisten = \"[::]:{api_port}\"\n"),
            "--set api.listen=",
            "the client API's port",
        ),
        (
            format!("[federation]\n{secret}\nport = {fed_port}\nmdns = false\n"),
            "--set federation.port=",
            "the federation's UDP port",
        ),
    ];
    for (config, flag, what) in cases {
        let second = Node::with_config_extra(&config);
        fs::create_dir(&second.data).unwrap();
        let out = second.run_refused(&[]);
        assert_error_exit(&out, &format!("a second node on {what}"));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("in use") && stderr.contains(flag),
            "{what}: the error should say the port is in use and name {flag}\n{}",
            describe(&out)
        );
        assert!(
            !stderr.contains("IPv6"),
            "{what}: a busy port is not IPv6 being off\n{}",
            describe(&out)
        );
        assert!(
            !second.key_path().exists() && !second.db_path().exists(),
            "{what}: a node that could not start made a key or a database"
        );
    }
    first.stop();
}

/// `basis <args> --help`, asserted to succeed.
fn help_of(args: &[&str]) -> String {
    let mut cmd = clean_command();
    cmd.args(args).arg("--help");
    let out = run_with_timeout(cmd, CMD_TIMEOUT);
    assert_success(&out, &format!("basis {} --help", args.join(" ")));
    text(&out.stdout)
}

const NODE_FLAGS: [&str; 4] = ["--config", "--conf-d", "--set", "--data-dir"];
const CHAT_FLAGS: [&str; 3] = ["--node", "--profile", "--passphrase-file"];

#[test]
fn each_command_shows_only_the_flags_it_takes() {
    let takes = |args: &[&str], has: &[&str], lacks: &[&str]| {
        let help = help_of(args);
        for flag in has {
            assert!(
                help.contains(flag),
                "basis {args:?} --help lacks {flag}:\n{help}"
            );
        }
        for flag in lacks {
            assert!(
                !help.contains(flag),
                "basis {args:?} --help shows {flag}, which it does not take:\n{help}"
            );
        }
    };
    for chat in [
        &["send"][..],
        &["history"],
        &["room", "create"],
        &["user", "create"],
    ] {
        takes(chat, &CHAT_FLAGS, &NODE_FLAGS);
    }
    for admin in [
        &["status"][..],
        &["metrics"],
        &["peers"],
        &["run"],
        &["config", "check"],
    ] {
        takes(admin, &NODE_FLAGS, &CHAT_FLAGS);
    }
    // Commands on this computer's files take --profile alone.
    let profile_only = [
        &CHAT_FLAGS[0],
        &CHAT_FLAGS[2],
        &NODE_FLAGS[0],
        &NODE_FLAGS[3],
    ];
    for local in [&["user", "show"][..], &["contacts", "add"]] {
        takes(local, &["--profile"], &profile_only.map(|f| *f));
    }
    takes(&["bench"], &[], &NODE_FLAGS);
    // The top level lists commands, not the flags of some of them.
    takes(&[], &["status", "send"], &["--data-dir", "--profile"]);

    // A flag given before a command that does not take it is refused by name, not ignored.
    let node = Node::new();
    let mut cmd = clean_command();
    cmd.args(["--node", "http://127.0.0.1:9", "--config"])
        .arg(&node.config)
        .arg("status");
    let out = run_with_timeout(cmd, CMD_TIMEOUT);
    assert!(!out.status.success(), "{}", describe(&out));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--node") && stderr.contains("basis status"),
        "{}",
        describe(&out)
    );
}

#[test]
fn contacts_alone_lists_the_contacts() {
    let profile = tempfile::Builder::new()
        .prefix("basis-user")
        .tempdir_in("/tmp")
        .unwrap();
    let contacts = |args: &[&str]| {
        let mut cmd = clean_command();
        cmd.env("BASIS_CLIENT_DIR", profile.path())
            .arg("contacts")
            .args(args);
        let out = run_with_timeout(cmd, CMD_TIMEOUT);
        assert_success(&out, &format!("basis contacts {}", args.join(" ")));
        text(&out.stdout)
    };
    assert!(contacts(&[]).contains("no contacts yet"));
    let ben = UserKey::generate().unwrap().id().to_string();
    contacts(&["add", "ben", &ben]);
    let listed = contacts(&[]);
    assert!(
        listed.contains("ben") && listed.contains(&ben),
        "basis contacts: {listed}"
    );
    assert_eq!(listed, contacts(&["list"]));
}

#[test]
fn admin_commands_find_a_node_run_with_another_data_directory() {
    let default_socket = std::path::Path::new("/var/lib/basis/control.sock");
    if unsafe { libc::geteuid() } == 0 && default_socket.exists() {
        eprintln!("skipped: a node runs at the default data directory of this machine");
        return;
    }
    let mut node = Node::new();
    let runtime = node.root().join("runtime");
    fs::create_dir(&runtime).unwrap();
    // Flags only, no configuration file: the way one tries a node by hand.
    let mut cmd = clean_command();
    cmd.env("XDG_RUNTIME_DIR", &runtime)
        .env("BASIS_FIRST_BOOT_FILE", "")
        .args(["run", "--set", "api.listen=127.0.0.1:0", "--data-dir"])
        .arg(&node.data);
    node.start_command(cmd);
    let id = node.node_id();

    let admin = |args: &[&str]| {
        let mut cmd = clean_command();
        cmd.env("XDG_RUNTIME_DIR", &runtime)
            .env("BASIS_FIRST_BOOT_FILE", "")
            .args(args);
        run_with_timeout(cmd, CMD_TIMEOUT)
    };
    let out = admin(&["status", "--json"]);
    assert_success(&out, "basis status --json, no flags");
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["node_id"], id.as_str(), "{s}");
    assert_eq!(
        fs::canonicalize(s["data_dir"].as_str().unwrap()).ok(),
        fs::canonicalize(&node.data).ok(),
        "{s}"
    );
    for args in [&["metrics"][..], &["peers"], &["store", "check"]] {
        assert_success(&admin(args), &format!("basis {}, no flags", args.join(" ")));
    }
    let out = admin(&["id"]);
    assert_success(&out, "basis id, no flags");
    assert_eq!(text(&out.stdout).trim(), id);

    // A clean stop takes the pointer away; then the command says which flag would help.
    node.stop();
    assert_eq!(fs::read_dir(runtime.join("basis")).unwrap().count(), 0);
    let out = admin(&["status"]);
    assert_error_exit(&out, "basis status after the node stopped");
    assert!(
        text(&out.stderr).contains("--data-dir"),
        "{}",
        describe(&out)
    );
}
