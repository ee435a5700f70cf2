//! The network-namespace lab (tests/lab) does what the other tests rely on: hosts reach each
//! other, partitions and packet loss cut them off and heal, rate limits install and go, mDNS
//! crosses the bridge, and nothing is left once the lab is dropped. Every test skips (printing
//! `skipped: <reason>`) where the lab cannot run: not root, or a tool missing.

use crate::lab;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use lab::{Host, lab_or_skip};
use serde_json::Value;

/// One ping from `from` to `to`, waiting at most 2 s for the reply.
fn ping(from: &Host, to: &Host) -> bool {
    from.command("ping")
        .args(["-c1", "-W2", &to.ipv4().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Pings until one gets through, at most 10 times (a link just set up may lose the first).
fn ping_eventually(from: &Host, to: &Host) -> bool {
    (0..10).any(|_| ping(from, to))
}

/// Names of the root namespace's network interfaces.
fn root_links() -> String {
    let out = Command::new(lab::program("ip").unwrap())
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names `ip netns list` shows.
fn netns_list() -> String {
    let out = Command::new(lab::program("ip").unwrap())
        .args(["netns", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ip netns list: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn hosts_ping_and_partition_heals() {
    let lab = lab_or_skip!(lab::program("ping"));
    let a = lab.add_host("a");
    let b = lab.add_host("b");
    assert_ne!(a.ipv4(), b.ipv4());
    assert!(ping_eventually(&a, &b), "a cannot ping b");
    assert!(ping_eventually(&b, &a), "b cannot ping a");

    lab.set_link(&b, false);
    assert!(!ping(&a, &b), "a pings b across a partition");
    assert!(!ping(&b, &a), "b pings a across a partition");

    lab.set_link(&b, true);
    assert!(ping_eventually(&a, &b), "a cannot ping b after healing");
    assert!(ping_eventually(&b, &a), "b cannot ping a after healing");
}

#[test]
fn loss_drops_and_heals() {
    let lab = lab_or_skip!(lab::program("ping"));
    let a = lab.add_host("a");
    let b = lab.add_host("b");
    assert!(ping_eventually(&a, &b), "a cannot ping b");

    lab.set_loss(&b, 100);
    assert!(!ping(&a, &b), "a pings b through 100 % loss");
    assert!(!ping(&b, &a), "b pings a through 100 % loss");

    // Partial loss installs the random rule (its effect is random, so only its presence is
    // checked), and setting it again replaces the rules rather than adding to them.
    lab.set_loss(&b, 30);
    lab.set_loss(&b, 30);
    let rules = b
        .command(lab::program("nft").unwrap())
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert_eq!(
        rules.matches("numgen random mod 100").count(),
        2,
        "ruleset: {rules}"
    );

    lab.set_loss(&b, 0);
    assert!(ping_eventually(&a, &b), "a cannot ping b once loss is off");
    assert!(ping_eventually(&b, &a), "b cannot ping a once loss is off");
    let rules = b
        .command(lab::program("nft").unwrap())
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&rules.stdout).contains("numgen"),
        "loss rules left after set_loss(0)"
    );
    lab.set_loss(&b, 0); // removing when there is nothing to remove is fine
}

#[test]
fn rate_limit_installs_and_goes() {
    let lab = lab_or_skip!(lab::program("ping"), lab::program("tc"));
    let a = lab.add_host("a");
    let b = lab.add_host("b");
    let qdisc = || {
        let out = b
            .command("tc")
            .args(["qdisc", "show", "dev", "eth0"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    lab.set_rate(&b, 512);
    assert!(
        qdisc().contains("tbf"),
        "no tbf after set_rate: {}",
        qdisc()
    );
    assert!(ping_eventually(&a, &b), "a cannot ping a rate-limited b");
    lab.set_rate(&b, 0);
    assert!(
        !qdisc().contains("tbf"),
        "tbf left after set_rate(0): {}",
        qdisc()
    );
    lab.set_rate(&b, 0); // removing when there is nothing to remove is fine
}

#[test]
fn mdns_crosses_the_bridge() {
    let lab = lab_or_skip!(lab::program("python3"), lab::python_module("zeroconf"));
    let a = lab.add_host("a");
    let b = lab.add_host("b");
    let instance = format!("smoke-{:04x}", lab.id());

    let mut announcer = a
        .spawn(
            a.command("python3")
                .arg(lab::script("mdns_announce.py"))
                .args([&instance, "4242", "id=node-a", "v=1"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .expect("starting mdns_announce.py");
    let mut line = String::new();
    BufReader::new(announcer.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.trim() != "registered" {
        let out = announcer.wait_with_output().unwrap();
        panic!(
            "mdns_announce.py did not register: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The browser gives up by itself after 20 s, which ends its output.
    let mut browser = b
        .spawn(
            b.command("python3")
                .arg(lab::script("mdns_browse.py"))
                .args(["_basis._udp.local.", "20"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped()),
        )
        .expect("starting mdns_browse.py");
    let wanted = format!("{instance}._basis._udp.local.");
    let mut seen = Vec::new();
    let mut found = None;
    for line in BufReader::new(browser.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let record: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("mdns_browse.py printed {line:?}: {e}"));
        if record["name"] == wanted.as_str() {
            found = Some(record);
            break;
        }
        seen.push(record);
    }
    let _ = browser.kill();
    let status = browser.wait().unwrap();
    let record =
        found.unwrap_or_else(|| panic!("{wanted} not seen from b ({status}); saw {seen:#?}"));
    assert_eq!(record["port"], 4242, "{record:#}");
    assert_eq!(record["server"], format!("{instance}.local."), "{record:#}");
    assert_eq!(record["txt"]["id"], "node-a", "{record:#}");
    assert_eq!(record["txt"]["v"], "1", "{record:#}");
    let addresses = record["addresses"].as_array().unwrap();
    assert!(
        addresses.iter().any(|x| x == &a.ipv4().to_string()),
        "a's address {} not in {record:#}",
        a.ipv4()
    );
    let _ = announcer.kill();
    let _ = announcer.wait();
}

#[test]
fn dropping_the_lab_removes_everything() {
    let lab = lab_or_skip!(lab::program("sleep"));
    let prefix = lab.prefix().to_owned();
    let port_prefix = format!("b{:04x}", lab.id());
    let a = lab.add_host("a");
    let b = lab.add_host("b");
    assert_eq!(
        netns_list().matches(prefix.as_str()).count(),
        3,
        "expected the switch and two hosts: {}",
        netns_list()
    );
    assert!(
        !root_links().contains(&port_prefix),
        "the lab added interfaces to the root namespace: {}",
        root_links()
    );
    // One process through Host::spawn, dropped at once (it may not be in its namespace yet),
    // and one through a plain spawn, once it is in its namespace.
    let mut spawned = a.spawn(a.command("sleep").arg("600")).unwrap();
    let mut plain = b.command("sleep").arg("600").spawn().unwrap();
    let own_netns = fs::metadata("/proc/self/ns/net").unwrap().ino();
    let deadline = Instant::now() + Duration::from_secs(10);
    while fs::metadata(format!("/proc/{}/ns/net", plain.id()))
        .unwrap()
        .ino()
        == own_netns
    {
        assert!(
            Instant::now() < deadline,
            "sleep never entered b's namespace"
        );
        thread::sleep(Duration::from_millis(10));
    }

    drop(lab);

    let list = netns_list();
    assert!(!list.contains(&prefix), "namespaces left: {list}");
    // Both processes were killed (poll: do not hang if they were not).
    for (what, child) in [("spawned", &mut spawned), ("plain", &mut plain)] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(!status.success(), "{what} sleep exited normally: {status}");
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                panic!("the {what} process started in the lab survived its drop");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}
