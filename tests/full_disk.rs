//! A node on a tiny disk (a 8 MiB tmpfs): filling it gives clients a clear error, loses
//! nothing acknowledged, keeps the database intact and the node running, and the node takes
//! writes again once space is freed. Needs root to mount the tmpfs (skips otherwise).

use crate::api_client;
use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use api_client::{Api, create, rt, text};
use basis_core::{RoomId, UserKey};
use common::{Node, open_db_ro, toml_str};

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

#[test]
fn a_full_disk_refuses_clearly_loses_nothing_and_recovers() {
    let tmpfs = match Tmpfs::mount("8m") {
        Ok(t) => t,
        Err(why) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {why}");
            return;
        }
        Err(why) => panic!("in CI this test must run: {why}"),
    };
    let data = tmpfs.path().join("data");
    // Space the test frees later to let the node recover.
    let ballast = tmpfs.path().join("ballast");
    fs::write(&ballast, vec![0u8; 2 * 1024 * 1024]).unwrap();
    let mut node = Node::new();
    // The data directory lives on the tmpfs.
    let config = fs::read_to_string(&node.config).unwrap().replace(
        &format!("data_dir = {}", toml_str(&node.data)),
        &format!("data_dir = {}", toml_str(&data)),
    );
    fs::write(&node.config, config).unwrap();
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
