//! A file across the mesh: sent by a client of node 1, it reaches a client of node 3 through
//! node 2 (nodes 1 and 3 cannot reach each other), with and without 20 % packet loss at
//! node 2, opens to the same SHA-256, and no node's data directory holds any 4 KiB run of
//! its plaintext. A transfer cut at half resumes after the heal within 1.2x the file's size
//! on the wire; a node killed mid-transfer resumes after its restart; a lazy room's file
//! crosses only when a client asks (the other tests' rooms are eager: node 2 fetches at
//! once, before any client asks).

use crate::chat::{At, User, sees_joined, wait_until};
use crate::common::pseudo_random;
use crate::lab;
use crate::lab_node;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::Instant;

use lab::{Host, Lab, lab_or_skip, program};
use lab_node::LabNode;
use sha2::{Digest, Sha256};

const SECRET: &str = "orange harbour 7";
/// The size: 20 MiB.
const SIZE: usize = 20 * 1024 * 1024;
/// Plaintext runs this long must appear nowhere on a node.
const RUN: usize = 4096;

/// Drops every packet between `host` and `other` (IPv4), and `host`'s IPv6, so that the two
/// can only talk through a third node.
fn cut(host: &Host, other: &Host) {
    let nft = program("nft").expect("nft");
    let ip = other.ipv4();
    let script = format!(
        "table inet basis_cut {{\n\
         \tchain input {{ type filter hook input priority -300; policy accept; ip saddr {ip} drop; meta nfproto ipv6 drop; }}\n\
         \tchain output {{ type filter hook output priority -300; policy accept; ip daddr {ip} drop; meta nfproto ipv6 drop; }}\n\
         }}\n"
    );
    let path = std::env::temp_dir().join(format!("basis-cut-{}.nft", host.name()));
    fs::write(&path, script).expect("write the rules");
    let out = host
        .command(nft)
        .arg("-f")
        .arg(&path)
        .output()
        .expect("run nft");
    let _ = fs::remove_file(&path);
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Whether any `RUN`-byte run of `plain` appears in a file under `dir`. Any such run holds a
/// whole aligned block of `RUN / 2` bytes, so the blocks' first 16 bytes are looked up at
/// every offset, and a hit is compared in full.
fn holds_plaintext(dir: &Path, plain: &[u8]) -> Option<String> {
    let block = RUN / 2;
    let mut starts: HashMap<[u8; 16], Vec<usize>> = HashMap::new();
    for (i, b) in plain.chunks_exact(block).enumerate() {
        let key: [u8; 16] = b[..16].try_into().expect("16 bytes");
        starts.entry(key).or_default().push(i * block);
    }
    let mut files = Vec::new();
    files_under(dir, &mut files);
    for f in files {
        let Ok(bytes) = fs::read(&f) else { continue };
        for at in 0..bytes.len().saturating_sub(block - 1) {
            let key: [u8; 16] = bytes[at..at + 16].try_into().expect("16 bytes");
            if let Some(offsets) = starts.get(&key)
                && offsets
                    .iter()
                    .any(|&o| bytes[at..at + block] == plain[o..o + block])
            {
                return Some(format!("{} at byte {at}", f.display()));
            }
        }
    }
    None
}

/// Alice on `a` makes the room `field` and Bob on `b` joins it.
pub(crate) fn field_room(a: &At, b: &At) -> (User, User) {
    let (alice, bob) = (User::new(), User::new());
    alice.ok(a, &["user", "create", "--name", "Alice"]);
    bob.ok(b, &["user", "create", "--name", "Bob"]);
    let bob_id = bob.id(b);
    alice.ok(a, &["room", "create", "field"]);
    alice.ok(a, &["room", "invite", "field", &bob_id]);
    wait_until("bob sees the invitation", || {
        bob.run(b, &["room", "join", "field"]).status.success()
    });
    wait_until("alice sees bob joined", || {
        sees_joined(&alice, a, "field", &bob_id)
    });
    (alice, bob)
}

fn start_cut(lab: &Lab) -> [LabNode; 3] {
    let fed = format!("secret = \"{SECRET}\"");
    let mut nodes = [
        LabNode::new(lab, "f1", &fed),
        LabNode::new(lab, "f2", &fed),
        LabNode::new(lab, "f3", &fed),
    ];
    cut(&nodes[0].host, &nodes[2].host);
    cut(&nodes[2].host, &nodes[0].host);
    for n in &mut nodes {
        n.start();
    }
    nodes
}

#[test]
fn a_file_from_node_1_reaches_node_3_through_node_2_and_no_node_holds_its_plaintext() {
    let lab = lab_or_skip!();
    cross(&lab, 0);
}

#[test]
fn a_file_crosses_two_hops_that_lose_a_fifth_of_their_packets() {
    let lab = lab_or_skip!();
    cross(&lab, 20);
}

/// Sends the file from a client of node 1 to a client of node 3 with `loss` % of node 2's
/// packets dropped each way (both hops cross node 2's link), and checks what arrives and
/// what the nodes hold.
fn cross(lab: &Lab, loss: u8) {
    let nodes = start_cut(lab);
    let (at1, at3) = (At::Lab(&nodes[0]), At::Lab(&nodes[2]));
    let (alice, bob) = field_room(&at1, &at3);

    let files = tempfile::tempdir().expect("a folder");
    let plain = pseudo_random(SIZE, 11);
    let path = files.path().join("survey.bin");
    fs::write(&path, &plain).expect("write the file");
    let started = Instant::now();
    let sent = alice.json(
        &at1,
        &[
            "send",
            "field",
            "--file",
            path.to_str().expect("utf-8"),
            "--json",
        ],
    );
    let id = sent["id"].as_str().expect("an id")[..8].to_string();
    eprintln!("uploaded 20 MiB to node 1 in {:?}", started.elapsed());
    if loss > 0 {
        lab.set_loss(&nodes[1].host, loss);
    }

    let to = tempfile::tempdir().expect("a folder");
    wait_until("bob on node 3 sees the file message", || {
        bob.run(&at3, &["history", "field"])
            .stdout
            .windows(id.len())
            .any(|w| w == id.as_bytes())
    });
    bob.ok(
        &at3,
        &[
            "download",
            "field",
            &id,
            "--to",
            to.path().to_str().expect("utf-8"),
        ],
    );
    eprintln!(
        "node 1 to a client of node 3 with {loss} % loss at node 2 in {:?}",
        started.elapsed()
    );
    lab.set_loss(&nodes[1].host, 0);
    let got = fs::read(to.path().join("survey.bin")).expect("downloaded");
    assert_eq!(Sha256::digest(&got), Sha256::digest(&plain));
    // Node 2 carried it (eager room): it holds the file too.
    let relay_chunks = nodes[1].node.data.join("blobs/chunks");
    let mut relay = Vec::new();
    files_under(&relay_chunks, &mut relay);
    assert!(
        relay.len() >= SIZE / (256 * 1024),
        "node 2 holds the chunks"
    );

    for n in &nodes {
        if let Some(hit) = holds_plaintext(&n.node.data, &plain) {
            panic!("plaintext on {}: {hit}", n.host.name());
        }
    }
}

/// Bytes `host` has received on `eth0` so far (its namespace's sysfs).
pub(crate) fn rx_bytes(host: &Host) -> u64 {
    let out = host
        .command("cat")
        .arg("/sys/class/net/eth0/statistics/rx_bytes")
        .output()
        .expect("read the counter");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a byte count")
}

/// Chunks a node holds (files in its blob store's chunk folders).
pub(crate) fn chunks_held(node: &LabNode) -> usize {
    let mut all = Vec::new();
    files_under(&node.node.data.join("blobs/chunks"), &mut all);
    all.len()
}

#[test]
fn a_transfer_cut_at_half_resumes_after_the_heal_without_sending_much_twice() {
    let lab = lab_or_skip!();
    let fed = format!("secret = \"{SECRET}\"");
    let mut nodes = [
        LabNode::new(&lab, "h1", &fed),
        LabNode::new(&lab, "h2", &fed),
    ];
    for n in &mut nodes {
        n.start();
    }
    let (at1, at2) = (At::Lab(&nodes[0]), At::Lab(&nodes[1]));
    let (alice, bob) = field_room(&at1, &at2);
    let files = tempfile::tempdir().expect("a folder");
    let plain = pseudo_random(SIZE, 5);
    let path = files.path().join("plan.bin");
    fs::write(&path, &plain).expect("write the file");
    let chunks = SIZE / (256 * 1024);
    let before = rx_bytes(&nodes[1].host);
    alice.ok(
        &at1,
        &["send", "field", "--file", path.to_str().expect("utf-8")],
    );
    // Node 2 fetches at once (an eager room): cut its link once it holds half.
    wait_until("node 2 holds half the chunks", || {
        chunks_held(&nodes[1]) >= chunks / 2
    });
    lab.set_link(&nodes[1].host, false);
    let at_cut = chunks_held(&nodes[1]);
    std::thread::sleep(std::time::Duration::from_secs(3));
    lab.set_link(&nodes[1].host, true);
    wait_until("node 2 holds every chunk after the heal", || {
        chunks_held(&nodes[1]) >= chunks
    });
    let received = rx_bytes(&nodes[1].host) - before;
    let ratio = received as f64 / SIZE as f64;
    eprintln!(
        "cut at {at_cut} of {chunks} chunks; node 2 received {received} bytes on its link for a {SIZE}-byte file: {ratio:.3}x"
    );
    assert!(at_cut < chunks, "the cut came before the end");
    assert!(ratio <= 1.2, "{ratio:.3}x the file's size crossed the link");
    bob_downloads(&bob, &at2, &plain);
}

/// Two nodes with the room `field` between Alice (node 1) and Bob (node 2), node 2 with
/// `files` as its `[files]` table; Alice has sent a 20 MiB file. Returns the file's bytes.
fn sent_to_two(lab: &Lab, files: &str) -> ([LabNode; 2], User, Vec<u8>) {
    let fed = format!("secret = \"{SECRET}\"");
    let mut nodes = [
        LabNode::new(lab, "r1", &fed),
        LabNode::new(lab, "r2", &format!("{fed}\n[files]\n{files}")),
    ];
    for n in &mut nodes {
        n.start();
    }
    let (at1, at2) = (At::Lab(&nodes[0]), At::Lab(&nodes[1]));
    let (alice, bob) = field_room(&at1, &at2);
    let dir = tempfile::tempdir().expect("a folder");
    let plain = pseudo_random(SIZE, 9);
    let path = dir.path().join("plan.bin");
    fs::write(&path, &plain).expect("write the file");
    alice.ok(
        &at1,
        &["send", "field", "--file", path.to_str().expect("utf-8")],
    );
    (nodes, bob, plain)
}

/// Bob downloads the room's file on `at` and gets `plain`.
fn bob_downloads(bob: &User, at: &At, plain: &[u8]) {
    let to = tempfile::tempdir().expect("a folder");
    let history = bob.ok(at, &["history", "field"]);
    let id = history
        .lines()
        .find(|l| l.contains("plan.bin"))
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("the file's line")
        .to_string();
    bob.ok(
        at,
        &[
            "download",
            "field",
            &id,
            "--to",
            to.path().to_str().expect("utf-8"),
        ],
    );
    let got = fs::read(to.path().join("plan.bin")).expect("downloaded");
    assert_eq!(Sha256::digest(&got), Sha256::digest(plain));
}

#[test]
fn a_lazy_room_file_crosses_only_when_a_client_asks() {
    let lab = lab_or_skip!();
    // Node 2 makes every room lazy.
    let (nodes, bob, plain) = sent_to_two(&lab, "eager_max_members = 0");
    let chunks = SIZE / (256 * 1024);
    wait_until("the file message reaches node 2", || {
        nodes[1].ids().len() >= nodes[0].ids().len()
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(
        chunks_held(&nodes[1]),
        0,
        "a lazy room's file waits for a client"
    );
    bob_downloads(&bob, &At::Lab(&nodes[1]), &plain);
    assert!(chunks_held(&nodes[1]) >= chunks, "asked for, it crossed");
}

#[test]
fn a_node_restarted_mid_transfer_resumes() {
    let lab = lab_or_skip!();
    let (mut nodes, bob, plain) = sent_to_two(&lab, "eager_max_members = 64");
    let chunks = SIZE / (256 * 1024);
    wait_until("node 2 holds a quarter of the chunks", || {
        chunks_held(&nodes[1]) >= chunks / 4
    });
    nodes[1].node.kill9();
    let at_kill = chunks_held(&nodes[1]);
    nodes[1].start();
    wait_until("node 2 holds every chunk after its restart", || {
        chunks_held(&nodes[1]) >= chunks
    });
    eprintln!("killed at {at_kill} of {chunks} chunks; resumed after the restart");
    assert!(at_kill < chunks, "the kill came before the end");
    bob_downloads(&bob, &At::Lab(&nodes[1]), &plain);
}
