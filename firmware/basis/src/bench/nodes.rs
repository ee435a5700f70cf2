//! Nodes for the benchmarks: `basis run` processes (this same binary) on loopback, each in
//! its own temporary folder, federated through static peers (no mDNS).

use std::fmt::Write as _;
use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use basis_core::NodeId;

use crate::control::client::Client;
use basis_api::admin::Status;

const SECRET: &str = "benchmark federation secret";

/// A free local port for `udp` or TCP (bound and released; good enough on an idle host).
pub fn free_port(udp: bool) -> Result<u16> {
    Ok(if udp {
        UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port()
    } else {
        TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
    })
}

/// A running node.
pub struct BenchNode {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Its federation (UDP) port, when it federates.
    pub quic_port: u16,
    /// Its client API base URL.
    pub api: String,
}

/// How to start a node.
#[derive(Default, Clone)]
pub struct NodeSpec {
    /// Federate (with the benchmark secret).
    pub federate: bool,
    /// Static peers, `NODEID@127.0.0.1:PORT`.
    pub peers: Vec<String>,
}

impl BenchNode {
    /// Prepares the folder without starting the node (to fill its database first).
    pub fn prepare(spec: &NodeSpec) -> Result<BenchNode> {
        let dir = tempfile::Builder::new().prefix("basis-bench").tempdir()?;
        let quic_port = free_port(true)?;
        let api_port = free_port(false)?;
        let data = dir.path().join("data");
        let mut toml = format!(
            "[node]\ndata_dir = {:?}\nname = \"bench\"\n[api]\nlisten = \"127.0.0.1:{api_port}\"\nrate_per_sec = 100000\nrate_burst = 100000\n[log]\nlevel = \"info\"\n",
            data.display().to_string()
        );
        if spec.federate {
            let peers: Vec<String> = spec.peers.iter().map(|p| format!("{p:?}")).collect();
            let _ = write!(
                toml,
                "[federation]\nsecret = {SECRET:?}\nport = {quic_port}\nmdns = false\npeers = [{}]\n",
                peers.join(", ")
            );
        }
        fs::write(dir.path().join("basis.toml"), toml)?;
        Ok(BenchNode {
            dir,
            child: None,
            quic_port,
            api: format!("http://127.0.0.1:{api_port}"),
        })
    }

    /// Adds TOML to the node's configuration before it starts (tables not given yet).
    pub fn add_config(&self, toml: &str) -> Result<()> {
        let path = self.dir.path().join("basis.toml");
        let mut text = fs::read_to_string(&path)?;
        text.push_str(toml);
        fs::write(&path, text)?;
        Ok(())
    }

    /// The database file.
    pub fn db(&self) -> PathBuf {
        self.data().join("basis.db")
    }

    /// The node's data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    /// What the node logged so far (empty when the log cannot be read).
    pub fn log_text(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Starts `basis run` and waits until it is ready.
    pub fn start(&mut self) -> Result<()> {
        let exe = std::env::current_exe().context("cannot find this program")?;
        let log = fs::File::create(self.log())?;
        let mut cmd = Command::new(exe);
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(|n| {
                n.starts_with("BASIS_") || n == "NOTIFY_SOCKET" || n == "JOURNAL_STREAM"
            }) {
                cmd.env_remove(name);
            }
        }
        cmd.arg("--config")
            .arg(self.dir.path().join("basis.toml"))
            .arg("run")
            .env(
                "BASIS_FIRST_BOOT_FILE",
                self.dir.path().join("no-first-boot"),
            )
            // As the shipped systemd unit runs the node (two glibc arenas), unless the caller
            // chose otherwise to compare.
            .env(
                "MALLOC_ARENA_MAX",
                std::env::var_os("MALLOC_ARENA_MAX").unwrap_or_else(|| "2".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        self.child = Some(cmd.spawn().context("cannot start a node")?);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = fs::read_to_string(self.log()).unwrap_or_default();
            if text.lines().any(|l| l.ends_with("] ready")) {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                bail!("a benchmark node exited ({status}):\n{text}");
            }
            if Instant::now() > deadline {
                bail!("a benchmark node was not ready within 60 s:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The node's status over its control socket.
    pub async fn status(&self) -> Result<Status> {
        let mut c = Client::connect(&self.data().join("control.sock")).await?;
        c.status().await
    }

    /// The node's id.
    pub async fn id(&self) -> Result<NodeId> {
        Ok(self.status().await?.node_id.parse()?)
    }

    /// Stops the node (SIGTERM: it finishes its writes and folds its log into the database)
    /// and returns the bytes it caused to be written to storage over its whole life, read
    /// after it exited but before it is reaped, so its shutdown checkpoint counts.
    pub fn stop_counting_written(&mut self) -> Option<u64> {
        let mut c = self.child.take()?;
        let pid = c.id();
        // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut exited = false;
        while Instant::now() < deadline {
            // SAFETY: waitid writes only into `info`, a zeroed siginfo_t we own; WNOWAIT
            // leaves the child a zombie, so /proc/PID/io still answers.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let rc = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
                )
            };
            // SAFETY: si_pid is valid to read after waitid filled the struct.
            if rc == 0 && unsafe { info.si_pid() } == pid as i32 {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let written = exited.then(|| written_bytes(&pid.to_string())).flatten();
        if !exited {
            let _ = c.kill();
        }
        let _ = c.wait();
        written
    }

    /// `NODEID@127.0.0.1:PORT`, for another node's static peers.
    pub async fn peer_address(&self) -> Result<String> {
        Ok(format!("{}@127.0.0.1:{}", self.id().await?, self.quic_port))
    }
}

impl Drop for BenchNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A field of /proc/PID/status in KiB (`VmHWM`, `VmRSS`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// Bytes a process caused to be written to storage (/proc/PID/io `write_bytes`).
pub fn written_bytes(pid: &str) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines()
        .find(|l| l.starts_with("write_bytes:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
}

/// CPU time of a process so far (user + system), seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((utime + stime) / hz)
}

/// Fills a database with events before its node starts.
pub fn fill(db: &Path, events: &[basis_core::ValidEvent]) -> Result<()> {
    if let Some(dir) = db.parent() {
        fs::create_dir_all(dir)?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    let store = basis_store::Store::open(db, &basis_store::StoreOptions::default())?;
    let writer = store.writer();
    for chunk in events.chunks(10_000) {
        writer.insert_blocking(chunk.to_vec())?;
    }
    store.close()?;
    Ok(())
}
