//! A file across the mesh: sent by a client of node 1, it reaches a client of node 3 through
//! node 2 (nodes 1 and 3 cannot reach each other), opens to the same SHA-256, and no node's
//! data directory holds any 4 KiB run of its plaintext.

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
    let nodes = start_cut(&lab);
    let (at1, at3) = (At::Lab(&nodes[0]), At::Lab(&nodes[2]));
    let (alice, bob) = (User::new(), User::new());
    alice.ok(&at1, &["user", "create", "--name", "Alice"]);
    bob.ok(&at3, &["user", "create", "--name", "Bob"]);
    let bob_id = bob.id(&at3);
    alice.ok(&at1, &["room", "create", "field"]);
    alice.ok(&at1, &["room", "invite", "field", &bob_id]);
    wait_until("bob on node 3 sees the invitation", || {
        bob.run(&at3, &["room", "join", "field"]).status.success()
    });
    wait_until("alice sees bob joined", || {
        sees_joined(&alice, &at1, "field", &bob_id)
    });

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
    eprintln!("node 1 to a client of node 3 in {:?}", started.elapsed());
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
