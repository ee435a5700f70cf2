//! A network-namespace lab for integration tests: hosts on one LAN, each in its own network
//! namespace, joined by veth pairs to a Linux bridge that lives in a "switch" namespace of its
//! own, so the root namespace's network is never touched.
//!
//! ```ignore
//! #[path = "lab/mod.rs"]
//! mod lab;
//! use lab::{Lab, lab_or_skip};
//!
//! #[test]
//! fn something() {
//!     let lab = lab_or_skip!(); // prints `skipped: <reason>` and returns when it cannot run
//!     let a = lab.add_host("a");
//!     let b = lab.add_host("b");
//!     let ok = a.command("ping").args(["-c1", &b.ipv4().to_string()]).status().unwrap();
//!     lab.set_link(&b, false); // partition b; `true` heals it
//!     lab.set_loss(&b, 30); // 30 % random loss both ways on b's eth0; 0 removes it
//!     lab.set_rate(&b, 512); // b sends at most 512 kbit/s; 0 removes it
//! }
//! ```
//!
//! Each lab has a random 16-bit id. Its namespaces are named `blab-<id>-<pid>-sw` (the switch)
//! and `blab-<id>-<pid>-<host>`, its interfaces in the switch namespace `b<id>br` (the bridge)
//! and `b<id>v<n>` (one per host), and its hosts get 10.X.Y.n/24 with X.Y the id's two bytes.
//! Ids are unique among the labs present on the machine, so tests running in parallel (in
//! threads or processes) never collide. Inside a host the interface is `eth0`, with IPv6
//! link-local on (DAD is off so it is usable at once); multicast, so mDNS, crosses the bridge.
//!
//! Dropping the [`Lab`] kills the processes started with [`Host::spawn`] and every other
//! process running in its namespaces, then deletes the namespaces (the veth pairs and the bridge go with them). A new lab also
//! removes namespaces left by labs of processes that no longer exist (a crashed run).
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); `set_rate` also needs `tc` (iproute2).
//! `tc netem` is not used: not every kernel has it.

#![allow(dead_code)]

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/var/run/netns";
/// Start of every lab namespace name (then `<id>-<pid>-`).
const NAME_START: &str = "blab-";
/// The nftables table `set_loss` manages in a host's namespace.
const LOSS_TABLE: &str = "basislab_loss";
/// How long `Drop` waits for killed processes to leave the namespaces.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// Serialises id choice and switch creation among the labs of this process.
static CREATE: Mutex<()> = Mutex::new(());

/// Gets a lab or skips the calling test: evaluates to a [`Lab`], or prints `skipped: <reason>`
/// on stderr and returns from the calling function when [`Lab::new`] fails or one of the extra
/// checks (expressions of type `Result<_, String>`, such as [`program`] or [`python_module`])
/// does. When the `CI` variable is set it fails instead of skipping. Expects the lab module at
/// the crate root as `lab`.
macro_rules! lab_or_skip {
    ($($check:expr),* $(,)?) => {
        match (|| -> ::std::result::Result<$crate::lab::Lab, ::std::string::String> {
            let lab = $crate::lab::Lab::new()?;
            $($check?;)*
            Ok(lab)
        })() {
            Ok(lab) => lab,
            Err(reason) => {
                // In CI every lab test must run: a skip there would be a green check that
                // checked nothing.
                if ::std::env::var_os("CI").is_some() {
                    panic!("the network lab cannot run, and CI is set: {reason}");
                }
                eprintln!("skipped: {reason}");
                return;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use lab_or_skip;

/// What a lab shares with its hosts: the absolute paths of the tools it runs, and pidfds of
/// the processes started with [`Host::spawn`].
#[derive(Debug)]
struct Tools {
    ip: PathBuf,
    nft: PathBuf,
    spawned: Mutex<Vec<OwnedFd>>,
}

/// What grows as hosts are added: the namespaces to delete and the hosts' names.
#[derive(Debug, Default)]
struct State {
    /// Every namespace made, the switch first.
    namespaces: Vec<String>,
    /// Host names taken.
    hosts: HashSet<String>,
}

/// A lab: a switch namespace holding a bridge, and hosts added with [`Lab::add_host`].
/// Dropping it kills every process in its namespaces and deletes them.
#[derive(Debug)]
pub struct Lab {
    id: u16,
    prefix: String,
    switch: String,
    bridge: String,
    tools: Arc<Tools>,
    state: Mutex<State>,
}

/// One host of a [`Lab`]: a network namespace whose `eth0` is plugged into the lab's bridge.
#[derive(Clone, Debug)]
pub struct Host {
    name: String,
    netns: String,
    ipv4: Ipv4Addr,
    /// The switch-side end of the veth pair, in the switch namespace.
    port: String,
    /// The interface inside the host: `eth0`, or the one [`Lab::attach`] made.
    iface: String,
    tools: Arc<Tools>,
}

impl Lab {
    /// Makes a lab (a switch namespace with a bridge in it), or says why it cannot run here:
    /// not root, `ip` or `nft` missing, or network namespaces unavailable.
    pub fn new() -> Result<Lab, String> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Err("the network lab needs root".into());
        }
        let tools = Arc::new(Tools {
            ip: program("ip").map_err(|e| format!("{e} (Debian package iproute2)"))?,
            nft: program("nft").map_err(|e| format!("{e} (Debian package nftables)"))?,
            spawned: Mutex::new(Vec::new()),
        });
        reap_stale_labs(&tools.ip);

        let guard = CREATE.lock().unwrap_or_else(|e| e.into_inner());
        let mut tries = 0;
        let lab = loop {
            let id: u16 = rand::random();
            let start = format!("{NAME_START}{id:04x}-");
            if namespace_names().iter().any(|n| n.starts_with(&start)) {
                tries += 1; // taken by another lab: draw again
                if tries > 100 {
                    return Err("no free lab id".into());
                }
                continue;
            }
            let prefix = format!("{start}{}-", std::process::id());
            let switch = format!("{prefix}sw");
            match run(Command::new(&tools.ip).args(["netns", "add", &switch])) {
                Ok(_) => {
                    break Lab {
                        id,
                        prefix,
                        bridge: format!("b{id:04x}br"),
                        state: Mutex::new(State {
                            namespaces: vec![switch.clone()],
                            hosts: HashSet::new(),
                        }),
                        switch,
                        tools,
                    };
                }
                Err(e) if tries >= 100 => {
                    return Err(format!("cannot create a network namespace: {e}"));
                }
                Err(_) => tries += 1,
            }
        };
        drop(guard);

        // On failure from here on, dropping `lab` deletes the switch namespace.
        let ip = |args: &[&str]| {
            run(Command::new(&lab.tools.ip)
                .arg("-n")
                .arg(&lab.switch)
                .args(args))
        };
        ip(&["link", "set", "lo", "up"])?;
        ip(&[
            "link",
            "add",
            "name",
            &lab.bridge,
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ])
        .map_err(|e| format!("cannot create a bridge: {e}"))?;
        ip(&["link", "set", &lab.bridge, "up"])?;
        Ok(lab)
    }

    /// The start of every namespace name of this lab, such as `blab-1f2e-4242-`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lab's random id (also in its names and its subnet).
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The namespace holding the bridge.
    pub fn switch_netns(&self) -> &str {
        &self.switch
    }

    /// The lab's IPv4 subnet's address (10.X.Y.0; the prefix length is 24).
    pub fn subnet(&self) -> Ipv4Addr {
        let [x, y] = self.id.to_be_bytes();
        Ipv4Addr::new(10, x, y, 0)
    }

    /// Every namespace the lab has made so far, the switch first.
    pub fn namespaces(&self) -> Vec<String> {
        self.state().namespaces.clone()
    }

    /// Adds a host named `name` (lowercase letters, digits and `-`, at most 32 characters,
    /// unique in the lab, not `sw`): a namespace with `lo` and `eth0` up, `eth0` plugged into the bridge
    /// and holding the next address of the lab's /24 plus an IPv6 link-local address. Panics if
    /// the name is bad or taken, the lab is full (253 hosts), or a command fails.
    pub fn add_host(&self, name: &str) -> Host {
        assert!(
            !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "bad lab host name {name:?}"
        );
        assert_ne!(name, "sw", "the name sw is the switch's");
        let (netns, index) = {
            let mut state = self.state();
            assert!(
                state.hosts.insert(name.to_owned()),
                "lab host {name:?} added twice"
            );
            let index = state.hosts.len();
            assert!(index <= 253, "a lab holds at most 253 hosts");
            let netns = format!("{}{name}", self.prefix);
            // Recorded before it exists, so that Drop deletes it whatever happens next.
            state.namespaces.push(netns.clone());
            (netns, index as u8)
        };
        let [x, y] = self.id.to_be_bytes();
        let host = Host {
            name: name.to_owned(),
            ipv4: Ipv4Addr::new(10, x, y, index),
            port: format!("b{:04x}v{index}", self.id),
            iface: "eth0".into(),
            netns,
            tools: self.tools.clone(),
        };
        let ip = &self.tools.ip;
        let step = |what: &str, result: Result<String, String>| {
            if let Err(e) = result {
                panic!("lab host {name}: {what}: {e}");
            }
        };
        step(
            "creating the namespace",
            run(Command::new(ip).args(["netns", "add", &host.netns])),
        );
        // No duplicate address detection: IPv6 link-local addresses are usable at once instead
        // of after a second or two (absent when IPv6 is off, hence the `|| true`).
        step(
            "turning IPv6 DAD off",
            run(host.command("sh").args([
                "-c",
                "echo 0 2>/dev/null >/proc/sys/net/ipv6/conf/default/accept_dad || true",
            ])),
        );
        step(
            "creating the veth pair",
            run(Command::new(ip).args(["-n", &host.netns]).args([
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &host.port,
                "netns",
                &self.switch,
            ])),
        );
        step(
            "plugging into the bridge",
            run(Command::new(ip).args(["-n", &self.switch]).args([
                "link",
                "set",
                &host.port,
                "master",
                &self.bridge,
                "up",
            ])),
        );
        for args in [
            &["link", "set", "lo", "up"][..],
            &["link", "set", "eth0", "up"],
            &["addr", "add", &format!("{}/24", host.ipv4), "dev", "eth0"],
        ] {
            step(
                "configuring eth0",
                run(Command::new(ip).args(["-n", &host.netns]).args(args)),
            );
        }
        host
    }

    /// Plugs a host of another lab into this lab's bridge too, as interface `iface` holding
    /// the next address of this lab's /24: a host on two networks, such as a gateway with a
    /// WAN side. Returns the host as this lab sees it: [`Host::ipv4`] is the new address, and
    /// [`Lab::set_link`], [`Lab::set_loss`] and [`Lab::set_rate`] act on `iface` and its port.
    /// Its namespace stays the other lab's. Panics if a command fails.
    pub fn attach(&self, host: &Host, iface: &str) -> Host {
        let name = format!("{}-{iface}", host.name);
        let index = {
            let mut state = self.state();
            assert!(state.hosts.insert(name.clone()), "{name} attached twice");
            let index = state.hosts.len();
            assert!(index <= 253, "a lab holds at most 253 hosts");
            index as u8
        };
        let [x, y] = self.id.to_be_bytes();
        let attached = Host {
            name,
            netns: host.netns.clone(),
            ipv4: Ipv4Addr::new(10, x, y, index),
            port: format!("b{:04x}v{index}", self.id),
            iface: iface.to_owned(),
            tools: self.tools.clone(),
        };
        let ip = &self.tools.ip;
        let steps: [(&str, Vec<String>); 4] = [
            (
                host.netns.as_str(),
                [
                    "link",
                    "add",
                    iface,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &attached.port,
                ]
                .iter()
                .map(|s| s.to_string())
                .chain(["netns".to_string(), self.switch.clone()])
                .collect(),
            ),
            (
                self.switch.as_str(),
                ["link", "set", &attached.port, "master", &self.bridge, "up"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            (
                host.netns.as_str(),
                ["link", "set", iface, "up"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
            ),
            (
                host.netns.as_str(),
                vec![
                    "addr".into(),
                    "add".into(),
                    format!("{}/24", attached.ipv4),
                    "dev".into(),
                    iface.into(),
                ],
            ),
        ];
        for (netns, args) in steps {
            if let Err(e) = run(Command::new(ip).args(["-n", netns]).args(&args)) {
                panic!("attaching {} to lab {}: {e}", host.name, self.prefix);
            }
        }
        attached
    }

    /// Plugs (`up`) or unplugs (`!up`) `host` from the bridge by setting the switch-side end
    /// of its veth pair up or down: a partition and its healing. Panics if a command fails.
    pub fn set_link(&self, host: &Host, up: bool) {
        self.check_host(host);
        let state = if up { "up" } else { "down" };
        let cmd = Command::new(&self.tools.ip)
            .args(["-n", &self.switch, "link", "set", &host.port, state])
            .output();
        expect_ok(cmd, &format!("setting {}'s link {state}", host.name));
    }

    /// Drops `percent` % of the IP packets entering and leaving `host`'s `eth0`, at random,
    /// with nftables in its namespace (`numgen random mod 100 < N drop`); 100 drops them all,
    /// 0 removes the rules. ARP is not affected. Panics if `percent > 100` or `nft` fails.
    pub fn set_loss(&self, host: &Host, percent: u8) {
        self.check_host(host);
        assert!(percent <= 100, "loss of {percent} %");
        // Declaring the table before deleting it makes the delete succeed when it is absent;
        // `nft -f` applies the whole script atomically.
        let iface = &host.iface;
        let mut script = format!("table inet {LOSS_TABLE}\ndelete table inet {LOSS_TABLE}\n");
        if percent > 0 {
            let drop = if percent >= 100 {
                "drop".to_owned()
            } else {
                format!("numgen random mod 100 < {percent} drop")
            };
            script.push_str(&format!(
                "table inet {LOSS_TABLE} {{\n\
                 \tchain input {{\n\
                 \t\ttype filter hook input priority -300; policy accept;\n\
                 \t\tiifname \"{iface}\" {drop}\n\
                 \t}}\n\
                 \tchain output {{\n\
                 \t\ttype filter hook output priority -300; policy accept;\n\
                 \t\toifname \"{iface}\" {drop}\n\
                 \t}}\n\
                 }}\n"
            ));
        }
        self.nft(
            host,
            &script,
            &format!("setting {}'s loss to {percent} %", host.name),
        );
    }

    /// What `nft ARGS` prints in `host`'s namespace; panics naming `what` if it fails.
    pub fn nft_output(&self, host: &Host, args: &[&str], what: &str) -> String {
        self.check_host(host);
        expect_ok(host.command(&self.tools.nft).args(args).output(), what)
    }

    /// Applies the nftables `script` in `host`'s namespace, atomically (`nft -f`); panics
    /// naming `what` if nft refuses it.
    pub fn nft(&self, host: &Host, script: &str, what: &str) {
        self.check_host(host);
        let result = host
            .command(&self.tools.nft)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(script.as_bytes())?;
                }
                child.wait_with_output()
            });
        expect_ok(result, what);
    }

    /// Limits what `host` sends on `eth0` (or its attached interface) to `kbit` kbit/s with a token-bucket filter
    /// (`tc qdisc replace dev eth0 root tbf ...`); 0 removes the limit. Panics if `tc` is
    /// missing or fails.
    pub fn set_rate(&self, host: &Host, kbit: u32) {
        self.check_host(host);
        let tc = program("tc").unwrap_or_else(|e| panic!("{e} (Debian package iproute2)"));
        let what = format!("setting {}'s rate to {kbit} kbit/s", host.name);
        if kbit == 0 {
            let shown = host
                .command(&tc)
                .args(["qdisc", "show", "dev", &host.iface])
                .output();
            if expect_ok(shown, &what).contains("tbf") {
                let deleted = host
                    .command(&tc)
                    .args(["qdisc", "del", "dev", &host.iface, "root"])
                    .output();
                expect_ok(deleted, &what);
            }
            return;
        }
        // The bucket holds 20 ms of traffic, and at least a few full-size packets.
        let burst = (u64::from(kbit) * 1000 / 8 / 50).max(4500);
        let set = host
            .command(&tc)
            .args(["qdisc", "replace", "dev", &host.iface, "root", "tbf"])
            .args(["rate", &format!("{kbit}kbit"), "burst", &burst.to_string()])
            .args(["latency", "400ms"])
            .output();
        expect_ok(set, &what);
    }

    fn check_host(&self, host: &Host) {
        assert!(
            host.netns.starts_with(&self.prefix) || self.state().hosts.contains(&host.name),
            "host {} ({}) is not of the lab {}",
            host.name,
            host.netns,
            self.prefix
        );
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Lab {
    /// Kills every process in the lab's namespaces, then deletes them, hosts first. Never
    /// panics; what cannot be removed is reported on stderr.
    fn drop(&mut self) {
        let namespaces = std::mem::take(
            &mut self
                .state
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .namespaces,
        );
        // Processes from Host::spawn first: they may not have entered their namespace yet.
        let spawned =
            std::mem::take(&mut *self.tools.spawned.lock().unwrap_or_else(|e| e.into_inner()));
        for pidfd in &spawned {
            kill_pidfd(pidfd);
        }
        remove_namespaces(&self.tools.ip, &namespaces);
    }
}

impl Host {
    /// The name given to [`Lab::add_host`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The host's network namespace (for `ip netns exec` and `ip -n`).
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The host's IPv4 address on `eth0` (in a /24).
    pub fn ipv4(&self) -> Ipv4Addr {
        self.ipv4
    }

    /// A command running `program` inside the host's namespace (`ip netns exec <netns>
    /// <program>`); add arguments, I/O and environment as usual. Start long-running processes
    /// with [`Host::spawn`], so that dropping the lab surely kills them.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(&self.tools.ip);
        cmd.args(["netns", "exec", &self.netns]).arg(program);
        cmd
    }

    /// Spawns `cmd`, a command from [`Host::command`] of this host, and registers the child so
    /// that dropping the lab kills it even if it has not yet entered the namespace (a process
    /// started with a plain `spawn` is killed by the lab only once it is inside). The caller
    /// keeps the [`Child`] to talk to it, wait for it or kill it earlier.
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<Child> {
        let args: Vec<&OsStr> = cmd.get_args().take(3).collect();
        assert!(
            cmd.get_program() == self.tools.ip.as_os_str()
                && args
                    == [
                        OsStr::new("netns"),
                        OsStr::new("exec"),
                        OsStr::new(&self.netns)
                    ],
            "Host::spawn takes a command from Host::command of the same host, not {cmd:?}"
        );
        let child = cmd.spawn()?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1. The
        // child is not reaped yet, so its pid cannot have been reused.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
        if fd >= 0 {
            // SAFETY: `fd` is a descriptor that pidfd_open just returned to us alone.
            let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
            self.tools
                .spawned
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(fd);
        }
        Ok(child)
    }
}

/// The absolute path of `name`, searched in `PATH` and then the usual system directories
/// (root's tools live in sbin, which a test's `PATH` may lack), or an error saying it is missing.
pub fn program(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let fallback = [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ];
    std::env::split_paths(&path)
        .chain(fallback.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
        .ok_or_else(|| format!("{name} is not installed"))
}

/// `Ok` when `python3` can import `module`, or an error saying what is missing.
pub fn python_module(module: &str) -> Result<(), String> {
    let python = program("python3")?;
    let status = Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "the python module {module} is missing (tests/run installs it: python3 -m pip install {module})"
        ))
    }
}

/// The path of a helper script of the lab, such as `mdns_browse.py`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/lab")
        .join(name)
}

/// Runs `cmd` with no stdin and returns its stdout, or an error with its stderr.
fn run(cmd: &mut Command) -> Result<String, String> {
    let output = cmd.stdin(Stdio::null()).output();
    match output {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {cmd:?}: {e}")),
    }
}

/// The stdout of a finished command, or a panic saying what failed.
fn expect_ok(output: std::io::Result<std::process::Output>, what: &str) -> String {
    match output {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => panic!(
            "{what}: {} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The names of the namespaces `ip netns` knows.
fn namespace_names() -> Vec<String> {
    fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the namespaces of labs whose process is gone (a run that crashed or was killed).
fn reap_stale_labs(ip: &Path) {
    let stale: Vec<String> = namespace_names()
        .into_iter()
        .filter(|name| {
            // blab-<id>-<pid>-<rest>
            let mut parts = name.strip_prefix(NAME_START).unwrap_or("").splitn(3, '-');
            let (Some(_id), Some(pid), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
                return false;
            };
            pid.parse::<u32>().is_ok_and(|pid| {
                pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
            })
        })
        .collect();
    if !stale.is_empty() {
        eprintln!(
            "lab: removing namespaces left by earlier runs: {}",
            stale.join(" ")
        );
        remove_namespaces(ip, &stale);
    }
}

/// Kills every process in `namespaces`, waits (a while) for them to be gone, then deletes the
/// namespaces in reverse order. Never panics.
fn remove_namespaces(ip: &Path, namespaces: &[String]) {
    let keys: Vec<(u64, u64)> = namespaces
        .iter()
        .filter_map(|ns| fs::metadata(Path::new(NETNS_DIR).join(ns)).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect();
    let deadline = Instant::now() + KILL_TIMEOUT;
    loop {
        let pids = pids_in(&keys);
        if pids.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            eprintln!("lab: processes {pids:?} are still running in the lab's namespaces");
            break;
        }
        for (pid, key) in pids {
            kill_if_in(pid, key);
        }
        thread::sleep(Duration::from_millis(20));
    }
    for ns in namespaces.iter().rev() {
        if !Path::new(NETNS_DIR).join(ns).exists() {
            continue;
        }
        if let Err(e) = run(Command::new(ip).args(["netns", "delete", ns])) {
            eprintln!("lab: cannot delete namespace {ns}: {e}");
        }
    }
}

/// The network namespace (device, inode) of process `pid`, if it still runs.
fn netns_of(pid: i32) -> Option<(u64, u64)> {
    let m = fs::metadata(format!("/proc/{pid}/ns/net")).ok()?;
    Some((m.dev(), m.ino()))
}

/// The processes whose network namespace is one of `keys`, with that namespace.
fn pids_in(keys: &[(u64, u64)]) -> Vec<(i32, (u64, u64))> {
    if keys.is_empty() {
        return Vec::new();
    }
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| Some((pid, netns_of(pid)?)))
        .filter(|(_, key)| keys.contains(key))
        .collect()
}

/// Sends SIGKILL to `pid` if it is (still) in namespace `key`. A pidfd pins the process first,
/// so a pid reused meanwhile by another process is never signalled.
fn kill_if_in(pid: i32, key: (u64, u64)) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return; // already gone
    }
    // SAFETY: `fd` is a descriptor that pidfd_open just returned to us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    if netns_of(pid) == Some(key) {
        kill_pidfd(&fd);
    }
}

/// Sends SIGKILL to the process of `pidfd` (nothing happens if it has exited).
fn kill_pidfd(pidfd: &OwnedFd) {
    // SAFETY: a valid pidfd, a signal number, no siginfo, no flags.
    unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            libc::SIGKILL,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        );
    }
}
