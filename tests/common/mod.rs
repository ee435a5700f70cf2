//! Shared helpers of the integration tests: a `basis run` daemon in a temporary directory,
//! the other subcommands run against the same configuration, a raw control-socket client, and
//! read-only looks into the database.
//!
//! Every test isolates itself from /etc/basis: it passes `--config <tempdir>/basis.toml`, so the
//! drop-in directory is `<tempdir>/conf.d` (which does not exist), and strips `BASIS_*`
//! variables and the systemd ones from the children's environment.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use basis_core::EventId;
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_basis");
/// How long a daemon may take to print `ready` (generous: only there to avoid hanging).
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a client command may take before the test gives up on it.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a daemon may take to exit after a signal.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a `basis run` that is expected to refuse may take to exit.
pub const REFUSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Name written into the test configuration (checked in `status`).
pub const NODE_NAME: &str = "basis-test";

/// Environment variables a child must not inherit: configuration (`BASIS_*`) and systemd's
/// (a daemon that saw them could log to the journal or notify the test runner's manager).
const SYSTEMD_VARS: &[&str] = &[
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "STATE_DIRECTORY",
    "INVOCATION_ID",
];

/// How often [`wait_until`] looks again.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `check` every `every` until it holds and returns how long that took; fails with
/// `what`, and whatever `context` adds (such as a node's log), once `limit` has passed.
pub fn wait_until_with(
    limit: Duration,
    every: Duration,
    what: &str,
    mut check: impl FnMut() -> bool,
    context: impl Fn() -> String,
) -> Duration {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > limit {
            panic!("{what}: not within {limit:?}\n{}", context());
        }
        thread::sleep(every);
    }
    start.elapsed()
}

/// Polls `check` until it holds; fails with `what` once `limit` has passed.
pub fn wait_until(limit: Duration, what: &str, check: impl FnMut() -> bool) -> Duration {
    wait_until_with(limit, POLL, what, check, String::new)
}

/// A `basis` command with a clean environment and no stdin.
pub fn clean_command() -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if let Some(name) = name.to_str()
            && (name.starts_with("BASIS_") || SYSTEMD_VARS.contains(&name))
        {
            cmd.env_remove(name);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Lossy text of some output bytes.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A readable account of a finished command, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        truncate(&text(&out.stdout), 4000),
        truncate(&text(&out.stderr), 4000)
    )
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... [{} more bytes]", &s[..end], s.len() - end)
}

/// Runs a command to completion, capturing stdout and stderr, and fails the test if it does
/// not finish within `timeout` (after killing it).
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let t_out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let t_err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let status = child.wait().expect("wait");
                let out = Output {
                    status,
                    stdout: t_out.join().unwrap_or_default(),
                    stderr: t_err.join().unwrap_or_default(),
                };
                panic!(
                    "{desc} did not finish within {timeout:?}; killed it\n{}",
                    describe(&out)
                );
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    Output {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

/// Asserts the command succeeded (exit 0) and did not panic.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.code() == Some(0),
        "{what}: expected exit 0\n{}",
        describe(out)
    );
    assert_no_panic(out, what);
}

/// Asserts the command failed the way the contract says errors fail: exit 1, an `error:` line
/// on stderr, no panic.
pub fn assert_error_exit(out: &Output, what: &str) {
    assert!(
        out.status.code() == Some(1),
        "{what}: expected exit 1\n{}",
        describe(out)
    );
    let stderr = text(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.trim_start().starts_with("error:")),
        "{what}: expected a line starting with `error:` on stderr\n{}",
        describe(out)
    );
    assert_no_panic(out, what);
}

/// Asserts neither stream of the command shows a Rust panic.
pub fn assert_no_panic(out: &Output, what: &str) {
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !text(stream).contains("panicked"),
            "{what}: the program panicked\n{}",
            describe(out)
        );
    }
}

/// Whether a log has a line announcing readiness: the word `ready` on its own, so that an
/// error saying "already" does not count.
pub fn has_ready_line(log: &str) -> bool {
    log.lines().any(|line| {
        line.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w.eq_ignore_ascii_case("ready"))
    })
}

/// Whether `text` names `path` followed by `:<digit>` (a `file:line` position).
pub fn names_file_and_line(text: &str, path: &Path) -> bool {
    let p = path.to_string_lossy();
    text.match_indices(p.as_ref()).any(|(at, _)| {
        let rest = &text[at + p.len()..];
        rest.starts_with(':') && rest[1..].starts_with(|c: char| c.is_ascii_digit())
    })
}

/// Whether `text` names `path` followed by `:<line>:`.
pub fn names_file_at_line(text: &str, path: &Path, line: usize) -> bool {
    text.contains(&format!("{}:{line}:", path.display()))
}

/// The permission bits of a file.
pub fn mode_of(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Sets the permission bits of a file.
pub fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Escapes a path for a TOML basic string.
pub fn toml_str(path: &Path) -> String {
    let s = path.to_string_lossy();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Whether the text is an id: 64 lowercase hexadecimal characters.
pub fn is_hex_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// One acknowledged event from `basis dev append --json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub room: String,
    pub id: String,
    pub new: bool,
}

/// Parses one `dev append --json` line; fails the test on anything else.
pub fn parse_ack(line: &str) -> Ack {
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
        panic!("dev append --json printed a line that is not JSON ({e}): {line:?}")
    });
    let room = v["room"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"room\" string in {line:?}"))
        .to_owned();
    let id = v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no \"id\" string in {line:?}"))
        .to_owned();
    let new = v["new"]
        .as_bool()
        .unwrap_or_else(|| panic!("no \"new\" boolean in {line:?}"));
    assert!(is_hex_id(&room), "room is not a 64-hex id in {line:?}");
    assert!(is_hex_id(&id), "id is not a 64-hex id in {line:?}");
    Ack { room, id, new }
}

/// Parses all the lines of `dev append --json` output.
pub fn parse_acks(stdout: &[u8]) -> Vec<Ack> {
    text(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(parse_ack)
        .collect()
}

/// The 32 bytes of a hex id.
pub fn id_bytes(hex: &str) -> Vec<u8> {
    EventId::from_str(hex)
        .unwrap_or_else(|e| panic!("bad id {hex:?}: {e}"))
        .0
        .to_vec()
}

/// Opens a database read-only (works while a daemon has it open: WAL).
pub fn open_db_ro(path: &Path) -> Connection {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {} read-only: {e}", path.display()))
}

/// How many rows of `events` have this id (0 or 1).
pub fn count_id(conn: &Connection, id: &[u8]) -> i64 {
    conn.query_row("SELECT count(*) FROM events WHERE id = ?1", [id], |r| {
        r.get(0)
    })
    .expect("query events by id")
}

/// The ids (hex) among `ids` that the database does not hold.
pub fn missing_ids(conn: &Connection, ids: &[String]) -> Vec<String> {
    ids.iter()
        .filter(|id| count_id(conn, &id_bytes(id)) == 0)
        .cloned()
        .collect()
}

/// Number of rows in `events`.
pub fn count_events(conn: &Connection) -> i64 {
    conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .expect("count events")
}

/// A raw client of the control socket: newline-delimited JSON.
pub struct Control {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Control {
    /// Connects, with generous timeouts so that a stuck daemon fails the test instead of
    /// hanging it.
    pub fn connect(path: &Path) -> Control {
        let stream = UnixStream::connect(path)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", path.display()));
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let writer = stream.try_clone().unwrap();
        Control {
            reader: BufReader::new(stream),
            writer,
        }
    }

    /// A second handle on the socket for writing (e.g. from another thread).
    pub fn writer_clone(&self) -> UnixStream {
        self.writer.try_clone().unwrap()
    }

    /// Writes raw bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write to the control socket: {e}"));
    }

    /// Reads one response line as JSON; fails on end of stream or non-JSON.
    pub fn read_response(&mut self) -> Value {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("read a response from the control socket: {e}"));
        assert!(
            n > 0,
            "the daemon closed the control connection instead of answering"
        );
        serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}): {line:?}"))
    }

    /// Reads what follows; `true` when the daemon has closed the connection (end of stream or
    /// a reset), `false` when more data came. Fails when nothing happens before the timeout.
    pub fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 256];
        match self.reader.read(&mut buf) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("the daemon neither closed the connection nor sent anything: {e}")
            }
            Err(_) => true,
        }
    }

    /// Sends a line (a newline is added) and reads the response.
    pub fn request_line(&mut self, line: &[u8]) -> Value {
        let mut bytes = line.to_vec();
        bytes.push(b'\n');
        self.send_raw(&bytes);
        self.read_response()
    }

    /// Sends a JSON request and reads the response.
    pub fn request(&mut self, request: &Value) -> Value {
        self.request_line(request.to_string().as_bytes())
    }

    /// Sends `append` with these wire bytes.
    pub fn append(&mut self, event_bytes: &[u8]) -> Value {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(event_bytes);
        self.request(&serde_json::json!({"op": "append", "event": b64}))
    }
}

/// A node under test: a temporary directory with a configuration file and a data directory,
/// and at most one running `basis run`.
pub struct Node {
    /// The temporary directory (kept short: the socket path must fit 107 bytes).
    pub dir: tempfile::TempDir,
    /// `<dir>/basis.toml`.
    pub config: PathBuf,
    /// `<dir>/data`, the data directory named in the configuration.
    pub data: PathBuf,
    child: Option<Child>,
    log: PathBuf,
    runs: usize,
}

impl Node {
    /// A node whose configuration sets the data directory and the name.
    pub fn new() -> Node {
        Node::with_config_extra("")
    }

    /// Like [`Node::new`], with more TOML after the `[node]` table. Unless `extra` has an
    /// `[api]` table, the client API listens on an ephemeral loopback port (see
    /// [`Node::api_url`]), so nodes of one test never collide on 7480.
    pub fn with_config_extra(extra: &str) -> Node {
        let api = if extra.contains("[api]") {
            ""
        } else {
            "[api]\nlisten = \"127.0.0.1:0\"\nrate_per_sec = 100000\nrate_burst = 100000\n"
        };
        let dir = tempfile::Builder::new()
            .prefix("basis")
            .tempdir_in("/tmp")
            .expect("create a temporary directory");
        let config = dir.path().join("basis.toml");
        let data = dir.path().join("data");
        fs::write(
            &config,
            format!(
                "[node]\ndata_dir = {}\nname = \"{NODE_NAME}\"\n{extra}\n{api}",
                toml_str(&data)
            ),
        )
        .expect("write the configuration");
        let log = dir.path().join("run-0.log");
        Node {
            dir,
            config,
            data,
            child: None,
            log,
            runs: 0,
        }
    }

    /// The temporary directory.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn socket(&self) -> PathBuf {
        self.data.join("control.sock")
    }

    pub fn db_path(&self) -> PathBuf {
        self.data.join("basis.db")
    }

    pub fn key_path(&self) -> PathBuf {
        self.data.join("node.key")
    }

    /// `basis --config <config>`, ready for a subcommand.
    pub fn command(&self) -> Command {
        let mut cmd = clean_command();
        cmd.arg("--config").arg(&self.config);
        cmd
    }

    /// Runs a subcommand with this node's configuration.
    pub fn cli<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let mut cmd = self.command();
        cmd.args(args);
        run_with_timeout(cmd, CMD_TIMEOUT)
    }

    /// Runs a subcommand and asserts it succeeded.
    pub fn cli_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        let out = self.cli(args);
        let what = format!(
            "basis {}",
            args.iter()
                .map(|a| truncate(&a.as_ref().to_string_lossy(), 60))
                .collect::<Vec<_>>()
                .join(" ")
        );
        assert_success(&out, &what);
        out
    }

    /// Runs `basis run` expecting it to refuse: fails the test if it is still running after
    /// [`REFUSE_TIMEOUT`].
    pub fn run_refused(&self, extra: &[&str]) -> Output {
        let mut cmd = self.command();
        cmd.arg("run").args(extra);
        run_with_timeout(cmd, REFUSE_TIMEOUT)
    }

    /// `basis id`: the node id, checked to be 64 lowercase hex characters.
    pub fn node_id(&self) -> String {
        let out = self.cli_ok(&["id"]);
        let id = text(&out.stdout).trim().to_owned();
        assert!(is_hex_id(&id), "basis id printed {id:?}, not a 64-hex id");
        id
    }

    /// The UDP port the running daemon's federation endpoint bound (the configuration may say
    /// 0: any free port), from `basis status --json`.
    pub fn quic_port(&self) -> u16 {
        let status = self.status_json();
        status["listening"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l.as_str()?.strip_prefix("quic:"))
            .find_map(|a| a.parse::<std::net::SocketAddr>().ok())
            .map(|a| a.port())
            .unwrap_or_else(|| panic!("the node listens on no QUIC port: {status}"))
    }

    /// `basis status --json`, parsed.
    pub fn status_json(&self) -> Value {
        let out = self.cli_ok(&["status", "--json"]);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e})\n{}", describe(&out)))
    }

    /// `basis dev append <args> --json`, asserted to succeed, parsed.
    pub fn append_json(&self, args: &[&str]) -> Vec<Ack> {
        let mut all = vec!["dev", "append"];
        all.extend_from_slice(args);
        all.push("--json");
        let out = self.cli_ok(&all);
        parse_acks(&out.stdout)
    }

    /// `basis store check --json`, asserted to say ok.
    pub fn store_check_ok(&self) -> Value {
        let out = self.cli(&["store", "check", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("store check --json is not JSON ({e})\n{}", describe(&out)));
        assert_eq!(
            v["ok"],
            true,
            "store check found problems\n{}",
            describe(&out)
        );
        assert_success(&out, "basis store check --json");
        v
    }

    /// Starts `basis run` with this node's configuration and waits until it is ready.
    pub fn start(&mut self) -> &mut Node {
        let mut cmd = self.command();
        cmd.arg("run");
        self.start_command(cmd)
    }

    /// Starts a daemon from a prepared command (which must run `basis ... run ...`) and waits
    /// until its log says `ready`; fails with its log if it exits first or takes too long.
    pub fn start_command(&mut self, mut cmd: Command) -> &mut Node {
        assert!(
            self.child.is_none(),
            "a daemon of this node is already running"
        );
        self.runs += 1;
        self.log = self.dir.path().join(format!("run-{}.log", self.runs));
        let stderr = fs::File::create(&self.log).expect("create the daemon log");
        let stdout = fs::File::create(self.dir.path().join(format!("run-{}.out", self.runs)))
            .expect("create the daemon stdout file");
        cmd.stdout(stdout).stderr(stderr);
        let desc = format!("{cmd:?}");
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "{desc} exited before it was ready ({status:?})\n--- its stderr ---\n{}",
                    self.log_text()
                );
            }
            if has_ready_line(&self.log_text()) {
                break;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{desc} did not log `ready` within {READY_TIMEOUT:?}\n--- its stderr ---\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
        self.child = Some(child);
        self
    }

    /// The client API's base URL, from the running daemon's log (`client API on ...`).
    pub fn api_url(&self) -> String {
        let log = self.log_text();
        let line = log
            .lines()
            .find_map(|l| l.split("client API on ").nth(1))
            .unwrap_or_else(|| panic!("the node did not log its API address\n{log}"));
        line.split("/v1/")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string()
    }

    /// The stderr of the current (or last) daemon run.
    pub fn log_text(&self) -> String {
        fs::read(&self.log).map(|b| text(&b)).unwrap_or_default()
    }

    /// The process id of the running daemon.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("no daemon running").id() as i32
    }

    /// Whether the daemon is still running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill takes a pid and a signal number and touches no memory of ours.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Sends a signal and waits for the daemon to exit; fails if it takes longer than
    /// [`STOP_TIMEOUT`] (then kills it).
    pub fn signal_and_wait(&mut self, sig: libc::c_int) -> ExitStatus {
        self.signal(sig);
        let mut child = self.child.take().expect("no daemon running");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the daemon did not exit within {STOP_TIMEOUT:?} of signal {sig}\n--- its stderr ---\n{}",
                    self.log_text()
                );
            }
            thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGTERM, and asserts a clean exit (0). Returns the run's log.
    pub fn stop(&mut self) -> String {
        let status = self.signal_and_wait(libc::SIGTERM);
        let log = self.log_text();
        assert!(
            status.code() == Some(0),
            "after SIGTERM the daemon exited with {status:?}, expected 0\n--- its stderr ---\n{log}"
        );
        assert!(!log.contains("panicked"), "the daemon panicked\n{log}");
        log
    }

    /// SIGKILL: a crash or a power cut, as far as the files are concerned.
    pub fn kill9(&mut self) {
        let status = self.signal_and_wait(libc::SIGKILL);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL),
            "the daemon did not die of SIGKILL: {status:?}\n{}",
            self.log_text()
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Deterministic bytes that do not compress or repeat (file contents for tests).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
