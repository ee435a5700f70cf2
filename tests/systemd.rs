//! `basis run` under systemd's notify protocol: READY=1 once it serves, watchdog pings while
//! its writer answers, STOPPING=1 on SIGTERM. The test plays systemd's side of the socket.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn messages_until(
    sock: &UnixDatagram,
    deadline: Instant,
    want: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline && !want(&seen) {
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            seen.extend(text.lines().map(str::to_string));
        }
    }
    seen
}

#[test]
fn notifies_ready_pings_watchdog_and_says_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("basis.toml");
    std::fs::write(
        &config,
        format!("[node]\ndata_dir = \"{}/data\"\n", tmp.path().display()),
    )
    .unwrap();
    let notify_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_basis"))
        .args(["--config", config.to_str().unwrap(), "run"])
        .env("NOTIFY_SOCKET", &notify_path)
        // 600 ms watchdog: the node pings every 300 ms while its writer answers.
        .env("WATCHDOG_USEC", "600000")
        .env_remove("JOURNAL_STREAM")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let pings_after_ready = |m: &[String]| {
        m.iter()
            .skip_while(|l| *l != "READY=1")
            .filter(|l| *l == "WATCHDOG=1")
            .count()
    };
    let seen = messages_until(&sock, Instant::now() + Duration::from_secs(30), |m| {
        pings_after_ready(m) >= 3
    });
    assert!(
        seen.iter().any(|l| l == "READY=1"),
        "no READY=1 in {seen:?}"
    );
    assert!(
        pings_after_ready(&seen) >= 3,
        "watchdog pings after ready: {seen:?}"
    );
    // The status line tells systemctl what the node serves.
    assert!(seen.iter().any(|l| l.starts_with("STATUS=")), "{seen:?}");

    // SAFETY: plain kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let seen = messages_until(&sock, Instant::now() + Duration::from_secs(30), |m| {
        m.iter().any(|l| l == "STOPPING=1")
    });
    assert!(seen.iter().any(|l| l == "STOPPING=1"), "{seen:?}");
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
}
