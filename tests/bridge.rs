//! The upstream bridge in the netns lab: a LAN of nodes, one of which (the gateway) also has
//! an interface on a "WAN" network where an upstream node runs. The WAN comes and goes by
//! unplugging the gateway's WAN port. Checks that allowed rooms end identical on both sides,
//! rooms not allowed stay where they were written, a sync cut halfway completes without
//! duplicates, the hourly byte budget holds with messages going before files, a restarted
//! upstream node is found again quickly, and a file sent on the LAN reaches a client upstream
//! after the messages, within its room's budget. Needs root (skips otherwise, and fails
//! under `CI`).

use crate::chat::{At, User, room_entry};
use crate::common;
use crate::common::pseudo_random;
use crate::files_lab::{chunks_held, field_room, rx_bytes};
use crate::lab;
use crate::lab_node;

use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant};

use common::{id_bytes, open_db_ro};
use lab::{Host, Lab, lab_or_skip};
use lab_node::LabNode;
use serde_json::Value;
use sha2::{Digest, Sha256};

const SECRET: &str = "the lan secret 123";
const PORT: u16 = 7464;

/// Ids of the events of `room` a node holds.
fn room_ids(node: &LabNode, room: &str) -> BTreeSet<Vec<u8>> {
    let Ok(conn) = std::panic::catch_unwind(|| open_db_ro(&node.node.db_path())) else {
        return BTreeSet::new();
    };
    let Ok(mut stmt) =
        conn.prepare("SELECT id FROM events WHERE room = (SELECT n FROM rooms WHERE id = ?1)")
    else {
        return BTreeSet::new();
    };
    stmt.query_map([id_bytes(room)], |r| r.get::<_, Vec<u8>>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Bytes of the events of `room` a node holds, as they go on the wire.
fn room_bytes(node: &LabNode, room: &str) -> i64 {
    let conn = open_db_ro(&node.node.db_path());
    conn.query_row(
        &format!(
            "SELECT coalesce(sum({}), 0) FROM events WHERE room = (SELECT n FROM rooms WHERE id = ?1)",
            basis_store::wire::LEN
        ),
        [id_bytes(room)],
        |r| r.get(0),
    )
    .expect("sum the room's bytes")
}

/// Appends `count` messages with `text` to `room` (a new room when `None`); returns the room
/// and the acknowledged ids (the create event first for a new room).
fn append(node: &LabNode, room: Option<&str>, count: usize, text: &str) -> (String, Vec<String>) {
    let n = count.to_string();
    let mut args = vec!["--count", &n, "--text", text];
    if let Some(room) = room {
        args.extend(["--room", room]);
    }
    let acks = node.node.append_json(&args);
    let room = acks.first().expect("acknowledged events").room.clone();
    (room, acks.into_iter().map(|a| a.id).collect())
}

fn bridge_status(node: &LabNode) -> Value {
    node.node.status_json()["bridge"].clone()
}

fn room_status(status: &Value, room: &str) -> Value {
    status["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|r| r["room"] == room))
        .cloned()
        .unwrap_or_else(|| panic!("room {room} not in the bridge status: {status}"))
}

/// Waits until `done` holds, polling; fails with `what` and the gateway's log after `limit`.
fn wait_until(
    limit: Duration,
    what: &str,
    gateway: &LabNode,
    done: impl FnMut() -> bool,
) -> Duration {
    common::wait_until_with(limit, common::POLL, what, done, || {
        format!("--- gateway log ---\n{}", gateway.node.log_text())
    })
}

/// The upstream node: in its own host on the WAN lab, admitting the gateway by id.
fn upstream_node(wan: &Lab, gateway_id: &str) -> LabNode {
    LabNode::new(
        wan,
        "up",
        &format!("allow = [\"{gateway_id}\"]\nport = {PORT}\nmdns = false"),
    )
}

/// A gateway node on `lan` (on the LAN's federation) with a second interface `eth1` on
/// `wan`, unplugged. Its key exists at once (the upstream node pins it); its `[upstream]`
/// table comes later with [`bridge_to`].
fn gateway(lan: &Lab, wan: &Lab) -> (LabNode, Host, String) {
    let gw = LabNode::new(lan, "gw", &format!("secret = \"{SECRET}\"\nport = {PORT}"));
    let port = wan.attach(&gw.host, "eth1");
    wan.set_link(&port, false);
    // The kernel reports a lost carrier up to a second later (linkwatch).
    let deadline = Instant::now() + Duration::from_secs(5);
    while operstate(&gw.host, "eth1") != "down" {
        assert!(Instant::now() < deadline, "eth1 never went down");
        thread::sleep(Duration::from_millis(50));
    }
    let id = gw.node.node_id();
    (gw, port, id)
}

/// The kernel's `operstate` of an interface in a lab host.
fn operstate(host: &Host, iface: &str) -> String {
    let out = host
        .command("cat")
        .arg(format!("/sys/class/net/{iface}/operstate"))
        .output()
        .expect("read operstate");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Adds the `[upstream]` table to the gateway's configuration: bridge `rooms` (TOML tables)
/// to `upstream` over `eth1`.
fn bridge_to(gw: &LabNode, upstream_id: &str, upstream: &Host, rooms: &str) {
    let mut text = std::fs::read_to_string(&gw.node.config).expect("read the gateway's config");
    text.push_str(&format!(
        "\n[upstream]\npeers = [\"{upstream_id}@{}:{PORT}\"]\n\
         wan_interface = \"eth1\"\nreconcile_secs = 5\n{rooms}",
        upstream.ipv4()
    ));
    std::fs::write(&gw.node.config, text).expect("write the gateway's config");
}

/// The lab site: LAN nodes (started), a gateway (not started yet) whose WAN port is
/// unplugged, and the upstream node on the WAN (started). Nodes drop before the labs.
struct Site {
    nodes: Vec<LabNode>,
    gw: LabNode,
    wan_port: Host,
    gw_id: String,
    up: LabNode,
    up_id: String,
    wan: Lab,
    _lan: Lab,
}

fn site(lan: Lab, lan_nodes: usize) -> Site {
    let wan = Lab::new().expect("a second lab for the WAN");
    let fed = format!("secret = \"{SECRET}\"\nport = {PORT}");
    let nodes: Vec<LabNode> = (1..=lan_nodes)
        .map(|i| {
            let mut n = LabNode::new(&lan, &format!("n{i}"), &fed);
            n.start();
            n
        })
        .collect();
    let (gw, wan_port, gw_id) = gateway(&lan, &wan);
    let mut up = upstream_node(&wan, &gw_id);
    let up_id = up.node.node_id();
    up.start();
    Site {
        nodes,
        gw,
        wan_port,
        gw_id,
        up,
        up_id,
        wan,
        _lan: lan,
    }
}

#[test]
fn allowed_rooms_cross_when_the_wan_comes_up_and_survive_cuts_and_restarts() {
    let Site {
        nodes,
        mut gw,
        wan_port,
        gw_id,
        mut up,
        up_id,
        wan,
        _lan,
    } = site(lab_or_skip!(lab::python_module("zeroconf")), 2);
    let (n1, n2) = (&nodes[0], &nodes[1]);

    // Rooms: A (LAN, both ways), U (upstream, both ways), P (LAN, not listed), X (upstream,
    // not listed).
    let (room_a, _) = append(n1, None, 50, "lan message in A");
    append(n2, Some(&room_a), 30, "more from n2 in A");
    let (room_p, _) = append(n1, None, 50, "private LAN message");
    let (room_u, _) = append(&up, None, 40, "upstream message in U");
    let (room_x, _) = append(&up, None, 20, "upstream-only message");

    let rooms = format!("[upstream.rooms.{room_a}]\npriority = 1\n[upstream.rooms.{room_u}]\n");
    bridge_to(&gw, &up_id, &up.host, &rooms);
    gw.start();

    // WAN down: the LAN syncs; the bridge waits and shows a backlog.
    // Room A: its creation, 50 messages from n1 and 30 from n2; room P: 51.
    wait_until(
        Duration::from_secs(30),
        "the gateway gets the LAN's rooms",
        &gw,
        || room_ids(&gw, &room_a).len() == 81 && room_ids(&gw, &room_p).len() == 51,
    );
    let a_lan = room_ids(&gw, &room_a);
    let status = bridge_status(&gw);
    assert_eq!(status["wan"]["up"], false, "{status}");
    assert_eq!(
        status["upstreams"][0]["state"], "waiting for the WAN",
        "{status}"
    );
    let a_status = room_status(&status, &room_a);
    assert!(
        a_status["backlog_events"].as_u64().unwrap_or(0) >= a_lan.len() as u64,
        "room A's backlog while the WAN is down: {a_status}"
    );
    assert!(room_ids(&up, &room_a).is_empty());

    // WAN up: within seconds, A and U are identical on both sides; P and X stay put.
    wan.set_link(&wan_port, true);
    let took = wait_until(
        Duration::from_secs(30),
        "allowed rooms identical",
        &gw,
        || {
            let a_up = room_ids(&up, &room_a);
            let u_up = room_ids(&up, &room_u);
            a_up == room_ids(n1, &room_a)
                && a_up == room_ids(n2, &room_a)
                && !u_up.is_empty()
                && u_up == room_ids(n1, &room_u)
                && u_up == room_ids(n2, &room_u)
        },
    );
    println!("bridge: WAN up to allowed rooms identical on both sides: {took:?}");
    thread::sleep(Duration::from_secs(2));
    assert!(
        room_ids(&up, &room_p).is_empty(),
        "a room not allowed went upstream"
    );
    for n in [n1, n2, &gw] {
        assert!(
            room_ids(n, &room_x).is_empty(),
            "a room not allowed came down"
        );
    }
    // mDNS announces the gateway on the LAN and not on the WAN (an independent browser on
    // each side, for the same 4 seconds).
    let browse = |host: &Host| {
        host.command("python3")
            .arg(lab::script("mdns_browse.py"))
            .args(["--ipv4-only", "_basis._udp.local.", "4"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run mdns_browse.py")
    };
    let (on_lan, on_wan) = (browse(&n1.host), browse(&up.host));
    let seen = |child: std::process::Child| {
        let out = child.wait_with_output().expect("mdns_browse.py output");
        String::from_utf8_lossy(&out.stdout).contains(&gw_id)
    };
    assert!(seen(on_lan), "the gateway is not announced on the LAN");
    assert!(!seen(on_wan), "the gateway announced itself on the WAN");

    let status = bridge_status(&gw);
    assert_eq!(status["wan"]["up"], true, "{status}");
    assert_eq!(status["wan"]["interface"], "eth1", "{status}");
    assert_eq!(status["upstreams"][0]["state"], "linked", "{status}");

    // Live: a new message on n2 in A reaches upstream, and one upstream in U reaches n2.
    let (_, fresh) = append(n2, Some(&room_a), 1, "live up");
    let (_, fresh_down) = append(&up, Some(&room_u), 1, "live down");
    let took = wait_until(Duration::from_secs(20), "live events cross", &gw, || {
        room_ids(&up, &room_a).contains(&id_bytes(&fresh[0]))
            && room_ids(n2, &room_u).contains(&id_bytes(&fresh_down[0]))
    });
    println!("bridge: live events crossed both ways in {took:?}");

    // Cut the WAN in the middle of a large backlog, then bring it back.
    wan.set_rate(&wan_port, 1000);
    let before = room_ids(&up, &room_a).len();
    append(n1, Some(&room_a), 4000, "backlog");
    wait_until(
        Duration::from_secs(60),
        "the backlog starts going up",
        &gw,
        || room_ids(&up, &room_a).len() > before + 200,
    );
    wan.set_link(&wan_port, false);
    thread::sleep(Duration::from_secs(2));
    let at_cut = room_ids(&up, &room_a).len();
    let total = room_ids(n1, &room_a).len();
    println!(
        "bridge: WAN cut with {} of {} backlog events up",
        at_cut - before,
        total - before
    );
    assert!(
        at_cut < total,
        "the backlog finished before the cut; nothing was tested"
    );
    let status = bridge_status(&gw);
    assert_eq!(status["wan"]["up"], false, "{status}");
    wan.set_rate(&wan_port, 0);
    wan.set_link(&wan_port, true);
    let took = wait_until(
        Duration::from_secs(60),
        "the backlog completes",
        &gw,
        || room_ids(&up, &room_a) == room_ids(n1, &room_a),
    );
    println!("bridge: the rest of the backlog went up in {took:?} after the WAN came back");
    let up_conn = open_db_ro(&up.node.db_path());
    let (rows, distinct): (i64, i64) = up_conn
        .query_row(
            "SELECT count(*), count(DISTINCT id) FROM events WHERE room = (SELECT n FROM rooms WHERE id = ?1)",
            [id_bytes(&room_a)],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("count upstream's events");
    assert_eq!(rows, distinct);
    assert_eq!(
        rows as usize, total,
        "upstream holds exactly room A's events"
    );
    wait_until(
        Duration::from_secs(20),
        "the backlog shows empty",
        &gw,
        || {
            let a = room_status(&bridge_status(&gw), &room_a);
            a["backlog_exact"] == true && a["backlog_events"] == 0
        },
    );

    // Upstream restarts while the WAN is up: the bridge is linked again within seconds.
    up.node.stop();
    wait_until(Duration::from_secs(20), "the bridge notices", &gw, || {
        bridge_status(&gw)["upstreams"][0]["state"] != "linked"
    });
    let restarted = Instant::now();
    up.start();
    wait_until(
        Duration::from_secs(20),
        "the bridge links again",
        &gw,
        || bridge_status(&gw)["upstreams"][0]["state"] == "linked",
    );
    println!(
        "bridge: linked again {:?} after upstream restarted",
        restarted.elapsed()
    );
    let (_, after) = append(n1, Some(&room_a), 1, "after the restart");
    wait_until(
        Duration::from_secs(20),
        "events cross after the restart",
        &gw,
        || room_ids(&up, &room_a).contains(&id_bytes(&after[0])),
    );
    assert!(
        room_ids(&up, &room_p).is_empty(),
        "a room not allowed went upstream"
    );
    let text = String::from_utf8_lossy(&gw.node.cli_ok(&["status"]).stdout).to_string();
    assert!(text.contains("wan         up"), "{text}");
    assert!(text.contains("linked"), "{text}");
    let metrics = String::from_utf8_lossy(&gw.node.cli_ok(&["metrics"]).stdout).to_string();
    let linked = format!("basis_upstream_linked{{node=\"{up_id}\"}} 1");
    assert!(
        metrics.lines().any(|l| l == linked),
        "no `{linked}` in\n{metrics}"
    );
    // Phones see it too: the node page of the web client reads GET /v1/status.
    let url = format!("{}/v1/status", gw.node.api_url());
    let out = gw
        .host
        .command("python3")
        .args([
            "-c",
            "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
            &url,
        ])
        .output()
        .expect("run python3 in the gateway's namespace");
    let info: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        info["wan"].as_str().is_some_and(|w| w.starts_with("up")),
        "{info}"
    );
    assert_eq!(info["upstreams"][0]["node_id"], up_id.as_str(), "{info}");
    assert_eq!(info["upstreams"][0]["state"], "linked", "{info}");
}

#[test]
fn the_hourly_budget_holds_and_messages_go_before_files() {
    let Site {
        nodes,
        mut gw,
        wan_port,
        up,
        up_id,
        wan,
        _lan,
        ..
    } = site(lab_or_skip!(), 1);
    let n1 = &nodes[0];

    // Messages first, then file-sized events (newer, so newest-first alone would send them
    // first): 40 messages of ~300 bytes, then 20 events of ~5 KiB.
    let (room, messages) = append(n1, None, 40, "a short message");
    let big = "file ".repeat(1000);
    let (_, files) = append(n1, Some(&room), 20, &big);
    const BUDGET: i64 = 30_000;
    let rooms = format!("[upstream.rooms.{room}]\nbudget_bytes_per_hour = {BUDGET}\n");
    bridge_to(&gw, &up_id, &up.host, &rooms);
    gw.start();
    wait_until(
        Duration::from_secs(30),
        "the gateway gets the room",
        &gw,
        || room_ids(&gw, &room).len() == 61,
    );
    wan.set_link(&wan_port, true);

    // Every message (and the room's creation) goes up; then files until the budget is spent.
    wait_until(Duration::from_secs(30), "the messages go up", &gw, || {
        let held = room_ids(&up, &room);
        messages.iter().all(|m| held.contains(&id_bytes(m)))
    });
    wait_until(
        Duration::from_secs(30),
        "the bridge says the budget is spent",
        &gw,
        || room_status(&bridge_status(&gw), &room)["budget_exhausted"] == true,
    );
    // Give it time to overspend if it were going to.
    thread::sleep(Duration::from_secs(6));
    let held = room_ids(&up, &room);
    let files_up = files.iter().filter(|f| held.contains(&id_bytes(f))).count();
    let bytes_up = room_bytes(&up, &room);
    println!(
        "bridge: budget {BUDGET} B/h: {bytes_up} B went up: the room's creation, {} messages, {files_up} of {} files",
        messages.len() - 1,
        files.len()
    );
    assert!(
        bytes_up <= BUDGET,
        "{bytes_up} bytes went up, over the budget of {BUDGET}"
    );
    assert!(
        files_up < files.len(),
        "every file went up despite the budget"
    );
    let status = room_status(&bridge_status(&gw), &room);
    let used = status["budget_used_bytes"].as_i64().unwrap_or(-1);
    assert!(
        used <= BUDGET && used >= bytes_up,
        "budget used {used}, bytes up {bytes_up}: {status}"
    );
    assert_eq!(
        status["backlog_events"].as_u64(),
        Some((files.len() - files_up) as u64),
        "the files left wait in the backlog: {status}"
    );
    assert!(
        status["budget_frees_in_secs"]
            .as_u64()
            .is_some_and(|s| s <= 3600),
        "{status}"
    );
    let text = String::from_utf8_lossy(&gw.node.cli_ok(&["status"]).stdout).to_string();
    assert!(text.contains("SPENT"), "{text}");
    let metrics = String::from_utf8_lossy(&gw.node.cli_ok(&["metrics"]).stdout).to_string();
    for line in [
        format!("basis_bridge_budget_exhausted{{room=\"{room}\"}} 1"),
        format!("basis_bridge_budget_bytes_per_hour{{room=\"{room}\"}} {BUDGET}"),
        format!(
            "basis_bridge_backlog_events{{room=\"{room}\"}} {}",
            files.len() - files_up
        ),
        "basis_wan_up 1".to_string(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in\n{metrics}"
        );
    }

    // A restart does not reset the budget: still nothing more goes up.
    gw.node.stop();
    gw.start();
    wait_until(
        Duration::from_secs(30),
        "the bridge links again",
        &gw,
        || bridge_status(&gw)["upstreams"][0]["state"] == "linked",
    );
    thread::sleep(Duration::from_secs(7));
    assert_eq!(
        room_bytes(&up, &room),
        bytes_up,
        "a restart reset the budget"
    );
}

#[test]
fn a_cut_backlog_stays_an_upper_bound_and_costs_its_budget_once() {
    let Site {
        nodes,
        mut gw,
        wan_port,
        up,
        up_id,
        wan,
        _lan,
        ..
    } = site(lab_or_skip!(), 1);
    let n1 = &nodes[0];
    let (room, _) = append(n1, None, 2000, "a message of the backlog");
    let total = room_ids(n1, &room).len();
    // Enough for every event once, and not for the whole room twice.
    let budget = room_bytes(n1, &room) * 13 / 10;
    let rooms =
        format!("[upstream.rooms.{room}]\ndownlink = false\nbudget_bytes_per_hour = {budget}\n");
    bridge_to(&gw, &up_id, &up.host, &rooms);
    gw.start();
    wait_until(
        Duration::from_secs(60),
        "the gateway gets the room",
        &gw,
        || room_ids(&gw, &room).len() == total,
    );

    // The WAN at 1 Mbit/s, cut while the backlog crosses.
    wan.set_rate(&wan_port, 1000);
    wan.set_link(&wan_port, true);
    wait_until(
        Duration::from_secs(60),
        "the backlog starts going up",
        &gw,
        || room_ids(&up, &room).len() > 200,
    );
    wan.set_link(&wan_port, false);
    wait_until(
        Duration::from_secs(10),
        "the gateway sees the WAN down",
        &gw,
        || bridge_status(&gw)["wan"]["up"] == false,
    );
    thread::sleep(Duration::from_secs(1));
    let lacking = total - room_ids(&up, &room).len();
    assert!(
        lacking > 0,
        "the backlog finished before the cut; nothing was tested"
    );
    let status = room_status(&bridge_status(&gw), &room);
    println!(
        "bridge: WAN down with {lacking} events not up; status says at most {}",
        status["backlog_events"]
    );
    assert!(
        status["backlog_events"].as_u64().unwrap_or(0) >= lacking as u64,
        "the backlog reads less than upstream lacks ({lacking}): {status}"
    );

    // Back: every event crosses within the hour's first window, each charged once.
    wan.set_rate(&wan_port, 0);
    wan.set_link(&wan_port, true);
    let took = wait_until(Duration::from_secs(60), "every event crosses", &gw, || {
        room_ids(&up, &room).len() == total
    });
    println!("bridge: the rest crossed {took:?} after the WAN came back");
    wait_until(
        Duration::from_secs(20),
        "the backlog shows empty",
        &gw,
        || {
            let s = room_status(&bridge_status(&gw), &room);
            s["backlog_exact"] == true && s["backlog_events"] == 0
        },
    );
    let status = room_status(&bridge_status(&gw), &room);
    let used = status["budget_used_bytes"].as_i64().unwrap_or(-1);
    let crossed = room_bytes(&up, &room);
    println!("bridge: budget used {used} B for {crossed} B that crossed");
    // An acknowledgement lost in the cut leaves at most the frame it was for uncharged.
    const FRAME: i64 = 64 * 1024;
    assert!(
        used <= crossed && crossed - used <= FRAME,
        "budget used {used} B, but {crossed} B crossed: {status}"
    );
    assert_eq!(status["budget_exhausted"], false, "{status}");
}

#[test]
fn a_short_wan_blip_is_linked_again_within_seconds_and_a_stop_is_a_stop() {
    let Site {
        nodes,
        mut gw,
        wan_port,
        up,
        up_id,
        wan,
        _lan,
        ..
    } = site(lab_or_skip!(), 1);
    let n1 = &nodes[0];
    let (room, _) = append(n1, None, 10, "before the blip");
    bridge_to(&gw, &up_id, &up.host, &format!("[upstream.rooms.{room}]\n"));
    gw.start();
    wan.set_link(&wan_port, true);
    let linked = || bridge_status(&gw)["upstreams"][0]["state"] == "linked";
    wait_until(Duration::from_secs(30), "the bridge links", &gw, linked);

    // Three seconds without the WAN: the gateway notices, and links again at once after.
    let blip = Instant::now();
    wan.set_link(&wan_port, false);
    wait_until(
        Duration::from_secs(3),
        "the gateway notices the blip",
        &gw,
        || !linked(),
    );
    thread::sleep(Duration::from_secs(3).saturating_sub(blip.elapsed()));
    wan.set_link(&wan_port, true);
    let took = wait_until(
        Duration::from_secs(3),
        "linked again after a 3 s blip",
        &gw,
        linked,
    );
    println!("bridge: linked again {took:?} after a 3 s WAN blip");
    let (_, after) = append(n1, Some(&room), 1, "after the blip");
    wait_until(
        Duration::from_secs(10),
        "events cross after the blip",
        &gw,
        || room_ids(&up, &room).contains(&id_bytes(&after[0])),
    );

    // A plain stop with the WAN up is a stop, not a WAN failure.
    let log = gw.node.stop();
    let last_link = log
        .rfind("bridged with upstream node")
        .expect("the log says the bridge linked");
    let tail = &log[last_link..];
    assert!(
        !tail.contains("WAN went down"),
        "a stop was logged as the WAN going down:\n{tail}"
    );
    assert!(
        tail.contains("unlinked: this node is stopping"),
        "the stop is not logged as one:\n{tail}"
    );
}

/// The id of the room `name` as `user` sees it on `at`.
fn room_id(user: &User, at: &At, name: &str) -> String {
    room_entry(user, at, name).expect("the room")["room"]
        .as_str()
        .expect("a room id")
        .to_string()
}

/// Sends `file` (pseudo-random, `size` bytes, named `name`) to `room` as `user` after `texts`
/// short messages; returns the file's bytes.
fn messages_then_file(
    user: &User,
    at: &At,
    room: &str,
    texts: usize,
    name: &str,
    size: usize,
) -> Vec<u8> {
    for i in 0..texts {
        user.ok(at, &["send", room, &format!("message {i} of {room}")]);
    }
    let dir = tempfile::tempdir().expect("a folder");
    let plain = pseudo_random(size, size as u64 + texts as u64);
    let path = dir.path().join(name);
    std::fs::write(&path, &plain).expect("write the file");
    user.ok(at, &["send", room, "--file", path.to_str().expect("utf-8")]);
    plain
}

#[test]
fn the_bridge_carries_a_file_within_its_budget_after_the_messages() {
    let Site {
        nodes,
        mut gw,
        wan_port,
        up,
        up_id,
        wan,
        _lan,
        ..
    } = site(lab_or_skip!(), 1);
    let n1 = &nodes[0];
    let (at1, at_up) = (At::Lab(n1), At::Lab(&up));
    // Alice and Bob share two rooms on the LAN; Bob will read on the upstream node. Room
    // `field` may spend 10 MB an hour; room `small` 100 kB, less than its file.
    let (alice, bob) = field_room(&at1, &at1);
    let bob_id = bob.id(&at1);
    alice.ok(&at1, &["room", "create", "small"]);
    alice.ok(&at1, &["room", "invite", "small", &bob_id]);
    bob.ok(&at1, &["room", "join", "small"]);
    const FILE: usize = 2 * 1024 * 1024;
    let plain = messages_then_file(&alice, &at1, "field", 10, "survey.bin", FILE);
    messages_then_file(&alice, &at1, "small", 10, "too-big.bin", FILE);
    let (field, small) = (
        room_id(&alice, &at1, "field"),
        room_id(&alice, &at1, "small"),
    );
    const SMALL_BUDGET: u64 = 100_000;
    // Alice's profile room crosses too: Bob, writing on the upstream node, seals his room
    // key to the members whose profiles that node holds.
    let alice_id: basis_core::UserId = alice.id(&at1).parse().expect("a user id");
    let alice_profile = basis_core::profile_room(&alice_id);
    let rooms = format!(
        "[upstream.rooms.{field}]\nbudget_bytes_per_hour = 10_000_000\n\
         [upstream.rooms.{small}]\nbudget_bytes_per_hour = {SMALL_BUDGET}\n\
         [upstream.rooms.{alice_profile}]\n"
    );
    bridge_to(&gw, &up_id, &up.host, &rooms);
    gw.start();
    // The gateway gets both rooms and, the rooms being eager, both files from the LAN.
    let chunks = FILE / (256 * 1024);
    wait_until(
        Duration::from_secs(60),
        "the gateway holds the rooms and their files",
        &gw,
        || {
            room_ids(&gw, &field) == room_ids(n1, &field)
                && room_ids(&gw, &small) == room_ids(n1, &small)
                && chunks_held(&gw) >= 2 * chunks
        },
    );
    let field_events = room_ids(n1, &field);
    let small_events = room_ids(n1, &small);

    // The WAN at 4 Mbit/s: the file takes seconds, the messages a moment.
    wan.set_rate(&wan_port, 4000);
    wan.set_link(&wan_port, true);
    let started = Instant::now();
    // The first chunk upstream stores finds every event of both rooms there already.
    wait_until_with_poll(
        Duration::from_secs(60),
        "a chunk reaches upstream",
        &gw,
        || chunks_held(&up) > 0,
    );
    let (field_up, small_up) = (room_ids(&up, &field), room_ids(&up, &small));
    assert!(
        field_up.is_superset(&field_events) && small_up.is_superset(&small_events),
        "file data crossed before the messages: {} of {} and {} of {} events up",
        field_up.intersection(&field_events).count(),
        field_events.len(),
        small_up.intersection(&small_events).count(),
        small_events.len()
    );
    println!(
        "bridge: every message up before the first chunk, {:?} after the WAN came up",
        started.elapsed()
    );

    // Bob, on the upstream node, opens the file: the same bytes.
    opens_the_same(&bob, &at_up, "field", "survey.bin", &plain);
    println!(
        "bridge: a {FILE}-byte file on the LAN opened upstream {:?} after the WAN came up",
        started.elapsed()
    );

    // Down: Bob sends a file upstream; Alice, on the LAN node, opens the same bytes (the
    // gateway fetched it through the bridge, node 1 from the gateway).
    let down = messages_then_file(&bob, &at_up, "field", 3, "report.bin", FILE / 2);
    let down_started = Instant::now();
    opens_the_same(&alice, &at1, "field", "report.bin", &down);
    println!(
        "bridge: a {}-byte file written upstream opened on the LAN {:?} after it was sent",
        FILE / 2,
        down_started.elapsed()
    );
    let f = room_status(&bridge_status(&gw), &field);
    assert!(
        f["file_bytes_received"].as_u64().unwrap_or(0) >= FILE as u64 / 2,
        "{f}"
    );

    // Room `small`: its messages crossed, its file did not, and the status says so. (The
    // upstream node holds both files of room `field`, and nothing of room `small`'s.)
    assert_eq!(
        chunks_held(&up),
        chunks + chunks / 2,
        "no chunk of room small's file is upstream"
    );
    let status = bridge_status(&gw);
    assert_eq!(status["upstreams"][0]["state"], "linked", "{status}");
    let s = room_status(&status, &small);
    assert_eq!(s["files_waiting"], 1, "{s}");
    assert_eq!(s["budget_exhausted"], true, "{s}");
    assert!(
        s["budget_used_bytes"].as_u64().unwrap_or(u64::MAX) <= SMALL_BUDGET,
        "{s}"
    );
    let f = room_status(&status, &field);
    assert_eq!(f["files_waiting"], 0, "{f}");
    assert!(
        f["file_bytes_sent"].as_u64().unwrap_or(0) >= FILE as u64,
        "{f}"
    );
    let text = String::from_utf8_lossy(&gw.node.cli_ok(&["status"]).stdout).to_string();
    assert!(text.contains("1 file held back by the budget"), "{text}");
    // Bob upstream sees the file's message, and that none of the file is there.
    let line = wait_for_line(&bob, &at_up, "small", "too-big.bin");
    assert!(
        line.contains("[fetching 0%") || line.ends_with("[not yet on this node]"),
        "{line}"
    );
}

/// Polls quickly (every 20 ms), so that what is seen first is seen when it happens.
fn wait_until_with_poll(
    limit: Duration,
    what: &str,
    gateway: &LabNode,
    done: impl FnMut() -> bool,
) -> Duration {
    common::wait_until_with(limit, Duration::from_millis(20), what, done, || {
        format!("--- gateway log ---\n{}", gateway.node.log_text())
    })
}

/// Waits until `user` sees a line naming `name` in `room`'s history on `at`; returns it.
fn wait_for_line(user: &User, at: &At, room: &str, name: &str) -> String {
    let mut found = String::new();
    crate::chat::wait_until(&format!("{name} shows in {room}"), || {
        let out = user.run(at, &["history", room]);
        match String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.contains(&format!("shared a file: {name}")))
        {
            Some(l) => {
                found = l.to_string();
                true
            }
            None => false,
        }
    });
    found
}

#[test]
fn a_file_cut_by_the_wan_resumes_over_the_bridge_and_crosses_about_once() {
    let Site {
        nodes,
        mut gw,
        wan_port,
        up,
        up_id,
        wan,
        _lan,
        ..
    } = site(lab_or_skip!(), 1);
    let n1 = &nodes[0];
    let (at1, at_up) = (At::Lab(n1), At::Lab(&up));
    let (alice, bob) = field_room(&at1, &at1);
    const FILE: usize = 8 * 1024 * 1024;
    let plain = messages_then_file(&alice, &at1, "field", 3, "map.bin", FILE);
    let field = room_id(&alice, &at1, "field");
    bridge_to(
        &gw,
        &up_id,
        &up.host,
        &format!("[upstream.rooms.{field}]\n"),
    );
    gw.start();
    let chunks = FILE / (256 * 1024);
    wait_until(
        Duration::from_secs(60),
        "the gateway holds the room and its file",
        &gw,
        || room_ids(&gw, &field) == room_ids(n1, &field) && chunks_held(&gw) >= chunks,
    );

    // 4 Mbit/s: the file takes about 17 s. The WAN goes for 3 s once a third is up.
    let before = rx_bytes(&up.host);
    wan.set_rate(&wan_port, 4000);
    wan.set_link(&wan_port, true);
    wait_until(
        Duration::from_secs(60),
        "a third of the file is upstream",
        &gw,
        || chunks_held(&up) >= chunks / 3,
    );
    wan.set_link(&wan_port, false);
    let at_cut = chunks_held(&up);
    thread::sleep(Duration::from_secs(3));
    wan.set_link(&wan_port, true);
    let took = wait_until(
        Duration::from_secs(90),
        "every chunk is upstream after the WAN came back",
        &gw,
        || chunks_held(&up) >= chunks,
    );
    let received = rx_bytes(&up.host) - before;
    let ratio = received as f64 / FILE as f64;
    println!(
        "bridge: WAN cut at {at_cut} of {chunks} chunks; the rest crossed in {took:?} after it came back; \
         the upstream node received {received} bytes for an {FILE}-byte file: {ratio:.3}x"
    );
    assert!(at_cut < chunks, "the cut came before the end");
    assert!(ratio <= 1.2, "{ratio:.3}x the file's size crossed the WAN");
    opens_the_same(&bob, &at_up, "field", "map.bin", &plain);
}

/// `user` on `at` waits for the file `name` in `room`, downloads it, and gets `plain`.
fn opens_the_same(user: &User, at: &At, room: &str, name: &str, plain: &[u8]) {
    let line = wait_for_line(user, at, room, name);
    let id = line
        .split_whitespace()
        .nth(2)
        .expect("a message id")
        .to_string();
    let to = tempfile::tempdir().expect("a folder");
    user.ok(
        at,
        &[
            "download",
            room,
            &id,
            "--to",
            to.path().to_str().expect("utf-8"),
        ],
    );
    let got = std::fs::read(to.path().join(name)).expect("downloaded");
    assert_eq!(Sha256::digest(&got), Sha256::digest(plain));
}
