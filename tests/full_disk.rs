//! A node on a tiny disk (a tmpfs of a few MiB): filling it gives clients a clear error, loses
//! nothing acknowledged, keeps the database intact and the node running, and the node takes
//! writes again once space is freed; a file it receives from another node while its disk is
//! full waits, says why, and completes, every chunk intact, once space is freed. Needs root
//! to mount the tmpfs (skips otherwise, and fails under `CI`).

use crate::api_client;
use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use api_client::{Api, create, rt, sign, text};
use basis_core::{MessageBody, RoomId, UserKey};
use common::{Node, open_db_ro, pseudo_random, toml_str, wait_until_with};

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root to mount a tmpfs".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("basis-full")
            .tempdir_in("/tmp")
            .map_err(|e| e.to_string())?
            .keep();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = fs::remove_dir(&self.0);
    }
}

/// A tmpfs of `size`, or `None` when the test may skip (no root, outside CI).
fn tmpfs_or_skip(size: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(size) {
        Ok(t) => Some(t),
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {why}");
            None
        }
        Err(why) => panic!("in CI this test must run: {why}"),
    }
}

/// Moves `node`'s data directory to `data` (on a tmpfs) in its configuration.
fn put_data_on(node: &Node, data: &Path) {
    let config = fs::read_to_string(&node.config).unwrap().replace(
        &format!("data_dir = {}", toml_str(&node.data)),
        &format!("data_dir = {}", toml_str(data)),
    );
    fs::write(&node.config, config).unwrap();
}

#[test]
fn a_full_disk_refuses_clearly_loses_nothing_and_recovers() {
    let Some(tmpfs) = tmpfs_or_skip("8m") else {
        return;
    };
    let data = tmpfs.path().join("data");
    // Space the test frees later to let the node recover.
    let ballast = tmpfs.path().join("ballast");
    fs::write(&ballast, vec![0u8; 2 * 1024 * 1024]).unwrap();
    let mut node = Node::new();
    // The data directory lives on the tmpfs.
    put_data_on(&node, &data);
    node.start();
    let db = data.join("basis.db");
    let (acked, refusals) = rt().block_on(async {
        let api = Api::new(&node);
        let alice = UserKey::from_secret([1; 32]);
        let token = api.sign_in(&alice).await;
        let c = create(&alice, false);
        let room = RoomId::from(c.id());
        assert_eq!(api.post_event(&token, &c).await.status, 201);
        let mut acked = vec![c.id()];
        let mut refusals = Vec::new();
        let words = "field report ".repeat(1200);
        for i in 1..10_000u64 {
            let e = text(&alice, room, i, &format!("{i} {words}"));
            let r = api.post_event(&token, &e).await;
            match r.status {
                201 => acked.push(e.id()),
                _ => {
                    refusals.push((r.status, r.code().to_string()));
                    if refusals.len() >= 5 {
                        break;
                    }
                }
            }
        }
        (acked, refusals)
    });
    assert!(
        acked.len() > 50,
        "only {} events fit before the disk filled",
        acked.len()
    );
    assert!(!refusals.is_empty(), "the disk never filled");
    for (status, code) in &refusals {
        assert_eq!(
            (*status, code.as_str()),
            (507, "disk_full"),
            "a full disk is a clear, specific error"
        );
    }
    assert!(node.is_running(), "the node survives a full disk");
    eprintln!(
        "{} events stored before the 8 MiB disk filled; then {:?}",
        acked.len(),
        refusals[0]
    );

    // Free space: writes work again.
    fs::remove_file(&ballast).unwrap();
    rt().block_on(async {
        let api = Api::new(&node);
        let alice = UserKey::from_secret([1; 32]);
        let token = api.sign_in(&alice).await;
        let room = RoomId::from(acked[0]);
        let e = text(&alice, room, 20_000, "space again");
        let r = api.post_event(&token, &e).await;
        assert_eq!(r.status, 201, "after space was freed: {}", r.body);
    });
    node.stop();

    // Everything acknowledged is there, and the database is intact.
    let conn = open_db_ro(&db);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mut missing = 0;
    for id in &acked {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM events WHERE id = ?1",
                [id.as_bytes().as_slice()],
                |r| r.get(0),
            )
            .unwrap();
        if n != 1 {
            missing += 1;
        }
    }
    assert_eq!(missing, 0, "acknowledged events lost");
}

#[test]
fn a_file_received_onto_a_full_disk_waits_says_why_and_completes_when_space_frees() {
    let Some(tmpfs) = tmpfs_or_skip("16m") else {
        return;
    };
    const SECRET: &str = "full disk files";
    let fed = |peer: Option<u16>| {
        let peers = peer
            .map(|p| format!("peers = [\"127.0.0.1:{p}\"]"))
            .unwrap_or_default();
        format!(
            "[federation]\nsecret = \"{SECRET}\"\nport = 0\nmdns = false\nreconcile_secs = 5\n{peers}\n"
        )
    };
    // The sender, on an ordinary disk, holds a 6 MiB file and the message naming it.
    let mut sender = Node::with_config_extra(&fed(None));
    sender.start();
    let plain = pseudo_random(6 * 1024 * 1024, 11);
    let (descriptor, list, chunks) = crate::files::seal(&plain);
    let address = hex::encode(list.address());
    let alice = UserKey::from_secret([1; 32]);
    rt().block_on(async {
        let api = Api::new(&sender);
        let token = api.sign_in(&alice).await;
        let c = create(&alice, false);
        let room = RoomId::from(c.id());
        assert_eq!(api.post_event(&token, &c).await.status, 201);
        let r = crate::files::put(
            &api,
            &token,
            &crate::files::list_path(&list),
            list.to_bytes(),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
        for (i, c) in chunks.iter().enumerate() {
            let path = format!("/v1/files/{address}/chunks/{i}");
            let r = crate::files::put(&api, &token, &path, c.clone()).await;
            assert!(r.status == 201 || r.status == 200, "chunk {i}: {}", r.body);
        }
        let m = sign(
            &alice,
            Some(room),
            2,
            basis_core::Body::Message(MessageBody::Attachment(descriptor)),
        );
        assert_eq!(api.post_event(&token, &m).await.status, 201);
    });

    // The receiver's disk has about 3 MiB free: half the file fits.
    let data = tmpfs.path().join("data");
    let ballast = tmpfs.path().join("ballast");
    let free = free_bytes(tmpfs.path()).saturating_sub(3 * 1024 * 1024);
    fs::write(&ballast, vec![0u8; free as usize]).unwrap();
    let mut receiver = Node::with_config_extra(&fed(Some(sender.quic_port())));
    put_data_on(&receiver, &data);
    receiver.start();

    // The file arrives in part, then waits: the API says the disk is full.
    let api_info = |node: &Node| {
        rt().block_on(async {
            let api = Api::new(node);
            let token = api.sign_in(&alice).await;
            api.get(&format!("/v1/files/{address}"), Some(&token)).await
        })
    };
    let last = std::cell::RefCell::new(serde_json::Value::Null);
    wait_until_with(
        Duration::from_secs(120),
        Duration::from_secs(1),
        "the fetch stalls on the full disk",
        || {
            let r = api_info(&receiver);
            *last.borrow_mut() = r.body.clone();
            r.status == 200 && r.body["stalled"] == "disk_full"
        },
        || format!("the file on the receiver: {}", last.borrow()),
    );
    let held = last.borrow()["held"].as_u64();
    assert!(
        held.is_some_and(|h| h > 0 && h < chunks.len() as u64),
        "part of the file arrived before the disk filled: {}",
        last.borrow()
    );
    assert!(receiver.is_running(), "the node survives a full disk");

    // Space again: the fetch goes on by itself and completes, every chunk the sender's.
    fs::remove_file(&ballast).unwrap();
    wait_until_with(
        Duration::from_secs(120),
        Duration::from_secs(1),
        "the file completes once space is freed",
        || {
            let r = api_info(&receiver);
            *last.borrow_mut() = r.body.clone();
            r.status == 200 && r.body["state"] == "complete"
        },
        || format!("the file on the receiver: {}", last.borrow()),
    );
    rt().block_on(async {
        let api = Api::new(&receiver);
        let token = api.sign_in(&alice).await;
        for (i, c) in chunks.iter().enumerate() {
            let (status, _, bytes) = crate::files::get_bytes(
                &api,
                &token,
                &format!("/v1/files/{address}/chunks/{i}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "chunk {i}");
            assert!(bytes == *c, "chunk {i} is the sender's, byte for byte");
        }
    });
    receiver.stop();
    let conn = open_db_ro(&data.join("basis.db"));
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

/// Free bytes on the file system holding `path`.
fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .expect("df runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df prints the free bytes")
}
