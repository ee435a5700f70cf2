//! The web client in a real browser: runs the node test files under `tests/web/` (Debian's
//! Chromium driven by playwright-core) against this build's `basis` binary: `chat.test.mjs`
//! (chat, keys, a restart, files on one node, screenshots and an accessibility audit) and
//! `files.test.mjs` (a photo and a voice note across three nodes, a partition made with
//! nftables on loopback, and a restart). Needs node, npm packages installed in tests/web
//! (`npm ci`, which tests/run does) and /usr/bin/chromium, and root with `nft` for the
//! partition; skips without them on a developer machine and fails when `CI` is set.

use std::path::Path;
use std::process::Command;

fn missing() -> Option<String> {
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/web");
    if Command::new("node").arg("--version").output().is_err() {
        return Some("node is not installed (Debian: apt-get install nodejs)".into());
    }
    if !web.join("node_modules/playwright-core").exists() {
        return Some("tests/web has no node_modules: run `npm ci` there (tests/run does)".into());
    }
    if !Path::new("/usr/bin/chromium").exists() {
        return Some("no /usr/bin/chromium (Debian: apt-get install chromium)".into());
    }
    None
}

#[test]
fn the_web_client_works_in_chromium() {
    if let Some(why) = missing() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser tests cannot run, and CI is set: {why}"
        );
        eprintln!("skipped: {why}");
        return;
    }
    let web = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/web");
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots");
    std::fs::create_dir_all(&shots).expect("a folder for screenshots");
    let out = Command::new("node")
        .args([
            "--test",
            "--test-concurrency=1",
            "chat.test.mjs",
            "files.test.mjs",
        ])
        .current_dir(&web)
        .env("BASIS_BIN", env!("CARGO_BIN_EXE_basis"))
        .env("BASIS_SCREENSHOTS", &shots)
        .output()
        .expect("run node --test");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The runner's summary, so the count of browser tests shows in the cargo output.
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("# ") || l.starts_with("ok ") || l.starts_with("not ok "))
    {
        eprintln!("{line}");
    }
    assert!(
        out.status.success(),
        "browser tests failed\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("# fail 0") && !stdout.contains("# pass 0"),
        "the browser tests did not all run:\n{stdout}"
    );
}
