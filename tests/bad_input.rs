//! Bad input of every kind: broken configuration, unusable data directories and keys, events
//! the protocol refuses, a hostile control-socket client, a database from the future. Each is
//! refused with a clear message, changes nothing, and never crashes the daemon.

use crate::common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use basis_core::event::id_of;
use basis_core::limits::MAX_EVENT_BYTES;
use basis_core::validate::validate;
use basis_core::{
    Body, Event, EventContent, EventId, History, MessageBody, PROTOCOL_VERSION, RoomCreate, RoomId,
    Timestamp, UserKey,
};
use common::*;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Configuration

/// Writes a configuration file beside the node's and returns its path. The first two lines set
/// the data directory, so that a binary that wrongly went on could not touch a system one.
fn write_config(node: &Node, name: &str, rest: &str) -> std::path::PathBuf {
    let path = node.root().join(name);
    fs::write(
        &path,
        format!("[node]\ndata_dir = {}\n{rest}", toml_str(&node.data)),
    )
    .unwrap();
    path
}

/// `basis --config FILE --data-dir <data> run`, expected to refuse.
fn run_with_config(node: &Node, file: &Path) -> std::process::Output {
    let mut cmd = clean_command();
    cmd.arg("--config")
        .arg(file)
        .arg("--data-dir")
        .arg(&node.data)
        .arg("run");
    run_with_timeout(cmd, REFUSE_TIMEOUT)
}

/// Runs `basis run` and `basis config check FILE` (plain and JSON) on a bad file and checks
/// both point at it. Returns the JSON error object and the stderr of `config check`.
fn check_bad_config(node: &Node, file: &Path, line: usize) -> (Value, String) {
    let out = run_with_config(node, file);
    assert_error_exit(&out, "basis run with a bad config");
    let stderr = text(&out.stderr);
    assert!(
        names_file_and_line(&stderr, file),
        "basis run: the error does not name {}:<line>\n{}",
        file.display(),
        describe(&out)
    );
    assert!(
        names_file_at_line(&stderr, file, line),
        "basis run: the error does not point at line {line}\n{}",
        describe(&out)
    );
    assert!(
        !node.data.exists(),
        "basis run created the data directory despite the bad config"
    );

    let out = node.cli(&["config".as_ref(), "check".as_ref(), file.as_os_str()]);
    assert_error_exit(&out, "basis config check FILE");
    let check_stderr = text(&out.stderr);
    assert!(
        names_file_at_line(&check_stderr, file, line),
        "config check: the error does not name {}:{line}:\n{}",
        file.display(),
        describe(&out)
    );

    let out = node.cli(&[
        "config".as_ref(),
        "check".as_ref(),
        file.as_os_str(),
        "--json".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert_no_panic(&out, "config check --json");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("config check --json is not JSON ({e})\n{}", describe(&out)));
    assert_eq!(v["ok"], false, "{v}");
    let err = v["error"].clone();
    assert_eq!(err["source"], file.to_str().unwrap(), "{v}");
    assert_eq!(err["line"], line, "{v}");
    assert!(err["column"].as_u64().is_some(), "{v}");
    assert!(err["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    (err, check_stderr)
}

#[test]
fn broken_toml_names_the_file_and_line() {
    let node = Node::new();
    let file = write_config(&node, "bad.toml", "[store\nquota_mib = 1\n");
    let (err, _) = check_bad_config(&node, &file, 3);
    assert_eq!(err["kind"], "syntax", "{err}");
}

#[test]
fn unknown_field_is_named() {
    let node = Node::new();
    let file = write_config(&node, "bad.toml", "[store]\nquota = 5\n");
    let (err, stderr) = check_bad_config(&node, &file, 4);
    assert_eq!(err["kind"], "unknown_field", "{err}");
    // `quota` itself, not just the `quota_mib` a hint may suggest.
    let names_quota = |s: &str| {
        s.match_indices("quota")
            .any(|(i, _)| !s[i + "quota".len()..].starts_with('_'))
    };
    assert!(
        names_quota(&stderr),
        "the error does not name `quota`:\n{stderr}"
    );
    assert_eq!(err["field"], "store.quota", "{err}");
}

#[test]
fn wrong_type_names_the_dotted_field() {
    let node = Node::new();
    let file = write_config(&node, "bad.toml", "[store]\nquota_mib = \"lots\"\n");
    let (err, stderr) = check_bad_config(&node, &file, 4);
    assert_eq!(err["kind"], "wrong_type", "{err}");
    assert_eq!(err["field"], "store.quota_mib", "{err}");
    assert!(stderr.contains("store.quota_mib"), "{stderr}");
}

#[test]
fn missing_config_file_and_bad_overrides_are_errors() {
    let node = Node::new();
    let missing = node.root().join("nope.toml");
    let mut cmd = clean_command();
    cmd.arg("--config").arg(&missing).args(["config", "check"]);
    let out = run_with_timeout(cmd, CMD_TIMEOUT);
    assert_error_exit(&out, "--config of a missing file");
    assert!(
        text(&out.stderr).contains(missing.to_str().unwrap()),
        "{}",
        describe(&out)
    );

    let out = node.cli(&["--set", "store.nope=1", "config", "check"]);
    assert_error_exit(&out, "--set of an unknown key");
    assert!(text(&out.stderr).contains("nope"), "{}", describe(&out));

    let out = node.cli(&["--set", "store.quota_mib=lots", "config", "check"]);
    assert_error_exit(&out, "--set of a wrong type");
    assert!(
        text(&out.stderr).contains("store.quota_mib"),
        "{}",
        describe(&out)
    );

    node.cli_ok(&["--set", "store.quota_mib=64", "config", "check"]);
}

#[test]
fn a_bad_upstream_room_in_a_drop_in_names_the_drop_in_line_and_room() {
    let node = Node::new();
    let conf_d = node.root().join("conf.d");
    fs::create_dir_all(&conf_d).unwrap();
    let drop_in = conf_d.join("60-upstream.toml");
    let room = "ab".repeat(32);
    let peer = format!("{}@hq.example.org:7464", "cd".repeat(32));
    fs::write(
        &drop_in,
        format!(
            "[upstream]\npeers = [\"{peer}\"]\n\n[upstream.rooms.{room}]\nuplink = false\ndownlink = false\n"
        ),
    )
    .unwrap();
    let out = node.cli(&["config", "check"]);
    assert_error_exit(&out, "config check with both directions off");
    let stderr = text(&out.stderr);
    assert!(
        names_file_at_line(&stderr, &drop_in, 5),
        "the error does not name {}:5:\n{}",
        drop_in.display(),
        describe(&out)
    );
    assert!(
        stderr.contains(&format!(
            "upstream.rooms.{room}: uplink and downlink are both off"
        )),
        "the error does not name the room's table\n{}",
        describe(&out)
    );
    assert!(!stderr.contains("built-in defaults"), "{}", describe(&out));

    // A room id in capitals would be a second key for the same room: refused, likewise.
    fs::write(
        &drop_in,
        format!(
            "[upstream]\npeers = [\"{peer}\"]\n[upstream.rooms.{}]\npriority = 1\n",
            room.to_uppercase()
        ),
    )
    .unwrap();
    let out = node.cli(&["config", "check"]);
    assert_error_exit(&out, "config check with an uppercase room id");
    assert!(
        names_file_at_line(&text(&out.stderr), &drop_in, 4)
            && text(&out.stderr).contains("lowercase"),
        "{}",
        describe(&out)
    );

    // Rooms with no upstream node bridge nothing: allowed, with a warning.
    fs::write(&drop_in, format!("[upstream.rooms.{room}]\npriority = 1\n")).unwrap();
    let out = node.cli_ok(&["config", "check"]);
    assert!(
        text(&out.stderr).contains("warning: upstream.rooms:")
            && text(&out.stderr).contains("upstream.peers is empty"),
        "no warning\n{}",
        describe(&out)
    );
}

#[test]
fn usage_errors_exit_2() {
    let node = Node::new();
    for args in [
        &["frobnicate"][..],
        &["dev", "append", "--count", "many"],
        &["status", "--no-such-flag"],
    ] {
        let out = node.cli(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "basis {args:?}\n{}",
            describe(&out)
        );
        assert_no_panic(&out, "usage error");
    }
}

// ---------------------------------------------------------------------------------------------
// Data directory and node key

#[test]
fn unreadable_data_dir_is_refused() {
    let node = Node::new();
    fs::create_dir(&node.data).unwrap();
    set_mode(&node.data, 0o700);
    let as_root = unsafe { libc::geteuid() } == 0;
    let out = if as_root {
        // Root reads everything: run the daemon as nobody, with the config readable to it
        // and the data directory root's own, mode 0700.
        set_mode(node.root(), 0o755);
        set_mode(&node.config, 0o644);
        let mut cmd = node.command();
        cmd.arg("run");
        std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
        std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
        run_with_timeout(cmd, REFUSE_TIMEOUT)
    } else {
        set_mode(&node.data, 0o000);
        let out = node.run_refused(&[]);
        set_mode(&node.data, 0o700);
        out
    };
    assert_error_exit(&out, "basis run on an unreadable data directory");
    assert!(
        text(&out.stderr).contains(node.data.to_str().unwrap()),
        "the error does not name the data directory\n{}",
        describe(&out)
    );
    assert_eq!(
        fs::read_dir(&node.data).unwrap().count(),
        0,
        "files appeared in the data dir"
    );
}

#[test]
fn data_dir_that_is_a_file_is_refused() {
    let node = Node::new();
    fs::write(&node.data, "not a directory\n").unwrap();
    let out = node.run_refused(&[]);
    assert_error_exit(&out, "basis run with a file as data directory");
    assert!(
        text(&out.stderr).contains(node.data.to_str().unwrap()),
        "the error does not name {}\n{}",
        node.data.display(),
        describe(&out)
    );
    assert_eq!(fs::read_to_string(&node.data).unwrap(), "not a directory\n");
}

fn says_invalid_key(stderr: &str) -> bool {
    let s = stderr.to_lowercase();
    s.contains("is not a valid key")
}

/// Garbage node keys: text, and binary (not UTF-8) as a damaged SD card would give.
const GARBAGE_KEYS: &[(&str, &[u8])] = &[
    ("text garbage", b"this is not a key\n"),
    ("binary garbage", b"\x00\xff\xfe\x13\x37 not a key\n"),
];

/// A data directory with a garbage node key.
fn node_with_garbage_key(garbage: &[u8]) -> Node {
    let node = Node::new();
    fs::create_dir(&node.data).unwrap();
    set_mode(&node.data, 0o700);
    fs::write(node.key_path(), garbage).unwrap();
    set_mode(&node.key_path(), 0o600);
    node
}

fn assert_only_the_key(node: &Node) {
    let names: Vec<String> = fs::read_dir(&node.data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("key") && n != "node.key"),
        "another key file appeared: {names:?}"
    );
}

#[test]
fn corrupted_key_is_refused_and_left_alone() {
    for command in ["run", "id"] {
        for (what, garbage) in GARBAGE_KEYS {
            let node = node_with_garbage_key(garbage);
            let out = if command == "run" {
                node.run_refused(&[])
            } else {
                node.cli(&["id"])
            };
            assert_error_exit(&out, &format!("basis {command} with a key of {what}"));
            let stderr = text(&out.stderr);
            assert!(
                stderr.contains(node.key_path().to_str().unwrap()) && says_invalid_key(&stderr),
                "basis {command}, {what}: the error does not name the key file and say it is not a valid key\n{}",
                describe(&out)
            );
            assert_eq!(
                fs::read(node.key_path()).unwrap(),
                *garbage,
                "basis {command}, {what}: the key file was changed"
            );
            assert_only_the_key(&node);
        }
    }
}

#[test]
fn key_readable_by_others_is_refused() {
    let node = Node::new();
    node.node_id(); // creates the key, mode 0600
    set_mode(&node.key_path(), 0o644);
    let before = fs::read(node.key_path()).unwrap();
    let out = node.run_refused(&[]);
    assert_error_exit(&out, "basis run with a 0644 key");
    let stderr = text(&out.stderr);
    let lower = stderr.to_lowercase();
    assert!(
        stderr.contains(node.key_path().to_str().unwrap())
            && lower.contains("has permissions 0644"),
        "the error does not name the key file and its permissions\n{}",
        describe(&out)
    );
    assert_eq!(
        fs::read(node.key_path()).unwrap(),
        before,
        "the key file was changed"
    );
    assert_only_the_key(&node);
}

// ---------------------------------------------------------------------------------------------
// Events the protocol refuses

#[test]
fn oversize_text_is_refused_and_the_daemon_lives_on() {
    let mut node = Node::new();
    node.start();
    let before = node.status_json()["events"].as_u64().expect("events");

    let big = "x".repeat(70_000);
    let out = node.cli(&["dev", "append", "--text", &big, "--json"]);
    assert_error_exit(&out, "dev append of an oversize text");
    let stderr = text(&out.stderr).to_lowercase();
    assert!(
        stderr.contains("oversize") && stderr.contains("limit"),
        "the error does not give the reason\n{}",
        describe(&out)
    );
    // Only what was acknowledged (the room's create event, if it got that far) is stored.
    let acked = parse_acks(&out.stdout);
    assert!(acked.len() <= 1, "{acked:#?}");

    assert!(node.is_running(), "the daemon died:\n{}", node.log_text());
    let after = node.status_json()["events"].as_u64().expect("events");
    assert_eq!(
        after,
        before + acked.len() as u64,
        "events stored for a refused append"
    );
    let conn = open_db_ro(&node.db_path());
    let big_rows: i64 = conn
        .query_row(
            &format!(
                "SELECT count(*) FROM events WHERE {} > ?1",
                basis_store::wire::LEN
            ),
            [MAX_EVENT_BYTES as i64],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(big_rows, 0, "an oversize event was stored");
    drop(conn);
    node.store_check_ok();
    node.stop();
}

fn now_ts() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    Timestamp::new(ms, 0)
}

fn create_content(author: &UserKey, name: &str) -> EventContent {
    EventContent {
        version: PROTOCOL_VERSION,
        room: None,
        author: author.id(),
        parents: vec![],
        time: now_ts(),
        body: Body::Create(RoomCreate {
            name: name.into(),
            encrypted: false,
            history: History::Shared,
        }),
    }
}

fn text_event(author: &UserKey, room: RoomId, parents: Vec<EventId>, text: &str) -> Event {
    EventContent {
        version: PROTOCOL_VERSION,
        room: Some(room),
        author: author.id(),
        parents,
        time: now_ts(),
        body: Body::Message(MessageBody::Text { text: text.into() }),
    }
    .sign(author)
}

/// The code basis-core gives for these bytes; the test's own sanity check of its inputs.
fn core_code(bytes: &[u8]) -> &'static str {
    match validate(bytes) {
        Ok(_) => panic!("test bug: the hostile bytes are a valid event"),
        Err(e) => e.code(),
    }
}

fn assert_refused(resp: &Value, code: &str, what: &str) {
    assert_eq!(resp["ok"], false, "{what}: {resp}");
    assert_eq!(resp["code"], code, "{what}: {resp}");
    assert!(
        resp["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: no message: {resp}"
    );
}

#[test]
fn hostile_control_client_is_refused_and_harmless() {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);

    let mut node = Node::new();
    node.start();
    let a = UserKey::generate().unwrap();
    let b = UserKey::generate().unwrap();

    // Events that must not get in, with their ids.
    let mut rejected: Vec<(String, EventId)> = Vec::new();
    let mut c = Control::connect(&node.socket());

    // A signature by B on content claiming author A.
    let forged = create_content(&a, "forged").sign(&b);
    let bytes = forged.to_bytes();
    assert_eq!(core_code(&bytes), "bad_signature");
    assert_refused(&c.append(&bytes), "bad_signature", "forged signature");
    rejected.push(("forged".into(), forged.id()));

    // A valid event with one bit flipped: in the signature, in the text, in the version byte.
    let good = create_content(&a, "flip me").sign(&a);
    let good_bytes = good.to_bytes();
    let name_at = good_bytes
        .windows(7)
        .position(|w| w == b"flip me")
        .expect("the name is in the encoding");
    for (what, byte, bit, code) in [
        (
            "flipped signature bit",
            good_bytes.len() - 1,
            0u8,
            "bad_signature",
        ),
        ("flipped text bit", name_at + 2, 1, "bad_signature"),
        ("flipped version bit", 0, 1, "unknown_version"),
    ] {
        let mut bytes = good_bytes.clone();
        bytes[byte] ^= 1 << bit;
        assert_eq!(core_code(&bytes), code, "{what}");
        assert_refused(&c.append(&bytes), code, what);
        rejected.push((what.into(), id_of(&bytes)));
    }

    // A valid event with a trailing byte: not the canonical encoding.
    let mut trailing = good_bytes.clone();
    trailing.push(0);
    assert_eq!(core_code(&trailing), "non_canonical");
    assert_refused(&c.append(&trailing), "non_canonical", "trailing byte");
    rejected.push(("trailing byte".into(), id_of(&trailing)));

    // Valid base64 of bytes that do not decode as an event.
    let junk = [PROTOCOL_VERSION, 0xff, 0xff, 0xff, 0xff];
    assert_eq!(core_code(&junk), "malformed");
    assert_refused(&c.append(&junk), "malformed", "undecodable bytes");

    // Base64 that is not base64: a bad request (the event was never there to be malformed).
    let resp = c.request(&json!({"op": "append", "event": "!!! not base64 ###"}));
    assert_eq!(resp["ok"], false, "garbage base64: {resp}");
    assert_eq!(resp["code"], "bad_request", "garbage base64: {resp}");

    // Not JSON, not UTF-8, not an object, an unknown op: bad requests.
    assert_refused(
        &c.request_line(b"hello, is this JSON?"),
        "bad_request",
        "not JSON",
    );
    assert_refused(&c.request_line(b"[1,2,3]"), "bad_request", "a JSON array");
    assert_refused(
        &c.request(&json!({"op": "explode"})),
        "bad_request",
        "unknown op",
    );

    // An event over the size limit (but a line under the line limit).
    let room: RoomId = good.id().into();
    let oversize = text_event(
        &a,
        room,
        vec![good.id()],
        &"y".repeat(MAX_EVENT_BYTES + 4000),
    );
    let bytes = oversize.to_bytes();
    assert!(bytes.len() > MAX_EVENT_BYTES);
    assert_eq!(core_code(&bytes), "oversize");
    assert_refused(&c.append(&bytes), "oversize", "event over 64 KiB");
    rejected.push(("oversize".into(), oversize.id()));

    // The connection is still usable after all that.
    let resp = c.request(&json!({"op": "status"}));
    assert_eq!(resp["ok"], true, "status after bad requests: {resp}");
    assert!(resp["status"].is_object(), "{resp}");

    // And valid events still get in, once.
    let resp = c.append(&good_bytes);
    assert_eq!(resp["ok"], true, "valid create event: {resp}");
    assert_eq!(resp["id"], good.id().to_string(), "{resp}");
    assert_eq!(resp["room"], good.id().to_string(), "{resp}");
    assert_eq!(resp["new"], true, "{resp}");
    let message = text_event(&a, room, vec![good.id()], "still here");
    let resp = c.append(&message.to_bytes());
    assert_eq!(resp["ok"], true, "valid message: {resp}");
    assert_eq!(resp["id"], message.id().to_string(), "{resp}");
    assert_eq!(resp["new"], true, "{resp}");
    let resp = c.append(&good_bytes);
    assert_eq!(resp["ok"], true, "repeated create event: {resp}");
    assert_eq!(resp["new"], false, "a repeated event is not new: {resp}");
    drop(c);

    // A 300 KiB line: refused, then the connection is closed.
    let mut c = Control::connect(&node.socket());
    let mut writer = c.writer_clone();
    let line = format!(
        "{{\"op\":\"append\",\"event\":\"{}\"}}\n",
        "A".repeat(300 * 1024)
    );
    let sender = std::thread::spawn(move || {
        // The daemon may close before reading it all; a write error is fine then.
        let _ = writer.write_all(line.as_bytes());
    });
    assert_refused(&c.read_response(), "line_too_long", "300 KiB line");
    assert!(
        c.is_closed(),
        "the connection stayed open after line_too_long"
    );
    sender.join().unwrap();
    drop(c);

    // A client that goes away in the middle of a line.
    {
        let mut c = Control::connect(&node.socket());
        c.send_raw(format!("{{\"op\":\"append\",\"event\":\"{}", b64(&good_bytes)).as_bytes());
    }

    // A line that is not UTF-8 (so not JSON): a bad request, and the connection stays usable.
    let mut c = Control::connect(&node.socket());
    assert_refused(
        &c.request_line(b"\xff\xfe\xfd not utf-8"),
        "bad_request",
        "not UTF-8",
    );
    let resp = c.request(&json!({"op": "status"}));
    assert_eq!(resp["ok"], true, "status after a non-UTF-8 line: {resp}");
    drop(c);

    // The daemon is alive and well, and stored nothing it refused.
    let mut c = Control::connect(&node.socket());
    let resp = c.request(&json!({"op": "status"}));
    assert_eq!(resp["ok"], true, "status on a new connection: {resp}");
    drop(c);
    assert!(node.is_running(), "the daemon died:\n{}", node.log_text());
    let status = node.status_json();
    assert_eq!(status["events"], 2, "{status}");
    node.store_check_ok();
    let conn = open_db_ro(&node.db_path());
    for (what, id) in &rejected {
        assert_eq!(count_id(&conn, &id.0), 0, "the {what} event was stored");
    }
    assert_eq!(count_id(&conn, &good.id().0), 1);
    assert_eq!(count_id(&conn, &message.id().0), 1);
    assert_eq!(count_events(&conn), 2);
    drop(conn);
    let log = node.stop();
    assert!(!log.contains("panicked"), "{log}");
}

// ---------------------------------------------------------------------------------------------
// Database

#[test]
fn database_of_a_newer_schema_is_refused_untouched() {
    let mut node = Node::new();
    node.start();
    node.append_json(&["--count", "3"]);
    node.stop();

    {
        let conn = rusqlite::Connection::open(node.db_path()).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let v: i64 = open_db_ro(&node.db_path())
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, 99, "test setup: user_version not written");
    let before = fs::read(node.db_path()).unwrap();

    let out = node.run_refused(&[]);
    assert_error_exit(&out, "basis run on a database from a newer schema");
    assert!(
        text(&out.stderr).contains("newer"),
        "the error does not say the database is newer\n{}",
        describe(&out)
    );
    assert!(
        fs::read(node.db_path()).unwrap() == before,
        "the database file was changed"
    );
}

// ---------------------------------------------------------------------------------------------
// Chat client

/// `basis user create` in a fresh client folder with `passphrase`, and the folder.
fn user_create_with(passphrase: &str) -> (std::process::Output, tempfile::TempDir) {
    let profile = tempfile::Builder::new()
        .prefix("basis-user")
        .tempdir_in("/tmp")
        .unwrap();
    let mut cmd = clean_command();
    cmd.env("BASIS_CLIENT_DIR", profile.path())
        .env("BASIS_PASSPHRASE", passphrase)
        .env("BASIS_KDF", "fast")
        // Nothing listens there: the key is made, its profile is published later.
        .env("BASIS_NODE", "http://127.0.0.1:9")
        .args(["user", "create"]);
    (run_with_timeout(cmd, CMD_TIMEOUT), profile)
}

#[test]
fn a_short_passphrase_for_a_new_user_key_is_refused() {
    for short in ["x", "1234567"] {
        let (out, profile) = user_create_with(short);
        assert_error_exit(
            &out,
            &format!("basis user create with passphrase {short:?}"),
        );
        assert!(
            text(&out.stderr).contains("at least 8"),
            "the error does not say how long a passphrase must be\n{}",
            describe(&out)
        );
        assert!(
            !profile.path().join("user.key").exists()
                && fs::read_dir(profile.path()).unwrap().next().is_none(),
            "something was written for a refused passphrase"
        );
    }
    let (out, profile) = user_create_with("12345678");
    assert_success(&out, "basis user create with an 8-character passphrase");
    assert!(
        fs::read_dir(profile.path()).unwrap().next().is_some(),
        "no key file made"
    );
}

#[test]
fn node_may_be_given_as_host_and_port_and_an_unreachable_one_is_named() {
    let mut node = Node::new();
    node.start();
    let host_port = node.api_url().trim_start_matches("http://").to_string();
    let profile = tempfile::Builder::new()
        .prefix("basis-user")
        .tempdir_in("/tmp")
        .unwrap();
    let client = |args: &[&str]| {
        let mut cmd = clean_command();
        cmd.env("BASIS_CLIENT_DIR", profile.path())
            .env("BASIS_PASSPHRASE", "a long test passphrase")
            .env("BASIS_KDF", "fast")
            .args(args);
        run_with_timeout(cmd, CMD_TIMEOUT)
    };

    // HOST:PORT with no scheme means http://HOST:PORT.
    let out = client(&["user", "create", "--node", &host_port]);
    assert_success(&out, "basis user create --node HOST:PORT");
    assert!(
        text(&out.stdout).contains("profile published through the node"),
        "{}",
        describe(&out)
    );
    assert_success(
        &client(&["rooms", "--node", &host_port]),
        "basis rooms --node HOST:PORT",
    );

    // Nothing listens on the discard port: the error names the URL and asks the question.
    let out = client(&["rooms", "--node", "127.0.0.1:9"]);
    assert_error_exit(&out, "basis rooms --node <nothing there>");
    assert!(
        text(&out.stderr).contains("cannot reach the node at http://127.0.0.1:9: is it running?"),
        "{}",
        describe(&out)
    );
    node.stop();
}

// ---------------------------------------------------------------------------------------------
// Output

#[test]
fn output_into_a_pipe_that_closed_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // `basis config defaults | head -n 1`, with the reader gone before the first line.
    let mut cmd = clean_command();
    cmd.args(["config", "defaults"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("basis starts");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("basis ends");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe"),
        "a closed pipe is not an error to report: {err}"
    );
    assert!(
        out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
        "ends as `cat` would: {:?}",
        out.status
    );
}
