//! The configuration schema: what a node can be told, with its built-in defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The documented default configuration file, printed by `basis config defaults`.
///
/// Parsing it gives exactly [`Config::default()`]; a unit test keeps the two in step.
pub const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// The sections of the configuration, in the order the defaults file lists them.
pub const SECTIONS: [&str; 10] = [
    "node",
    "store",
    "files",
    "federation",
    "upstream",
    "api",
    "control",
    "log",
    "hotspot",
    "ssh",
];

/// Where the node's data lives when run as root outside systemd.
const ROOT_DATA_DIR: &str = "/var/lib/basis";

/// The whole configuration of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[node]`: identity and where data lives.
    pub node: NodeConfig,
    /// `[store]`: the event store.
    pub store: StoreConfig,
    /// `[files]`: files sent in rooms (their chunks, limits and replication).
    pub files: FilesConfig,
    /// `[federation]`: which nodes this node replicates with, and how.
    pub federation: FederationConfig,
    /// `[upstream]`: the bridge to upstream nodes over a WAN link, and which rooms cross it.
    pub upstream: UpstreamConfig,
    /// `[api]`: the client API (HTTP/JSON and WebSocket) phones and laptops use.
    pub api: ApiConfig,
    /// `[control]`: the local admin socket.
    pub control: ControlConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
    /// `[hotspot]`: the Wi-Fi access point of the Raspberry Pi image. Read by the image's
    /// own services (`packaging/image`), not by the node, which only checks it.
    pub hotspot: HotspotConfig,
    /// `[ssh]`: remote shell access on the Raspberry Pi image. Read by the image's own
    /// services, not by the node, which only checks it.
    pub ssh: SshConfig,
}

/// `[node]`: identity and where data lives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the node keeps its key, database and control socket; empty means the default
    /// (see [`Config::resolve_data_dir`]).
    pub data_dir: PathBuf,
    /// Human-readable name shown in status and to peers; empty means the host name (made
    /// unique with the start of the node id when the host name is a common default).
    pub name: String,
}

/// `[store]`: the event store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// Disk quota for stored events, MiB; the oldest events expire first when over it.
    pub quota_mib: u64,
    /// Default age limit of a room's events, days; 0 keeps them until the quota needs room.
    pub retention_days: u32,
    /// SQLite page cache per connection, MiB.
    pub cache_mib: u32,
    /// Number of reader connections.
    pub readers: usize,
    /// Most events committed in one transaction (group commit).
    pub write_batch: usize,
    /// Events waiting for the writer before callers have to wait.
    pub write_queue: usize,
    /// Least time between the starts of two commits while writes keep coming, ms: under
    /// load the writer waits out the rest of it to gather a larger group. 0: no waiting.
    pub commit_gap_ms: u64,
    /// How often expiry runs, seconds.
    pub expire_interval_secs: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            quota_mib: 1024,
            retention_days: 0,
            cache_mib: 2,
            readers: 2,
            write_batch: 256,
            write_queue: 1024,
            commit_gap_ms: 2,
            expire_interval_secs: 600,
        }
    }
}

/// `[files]`: files sent in rooms: their size limit, the disk quota of their chunks and
/// which rooms replicate them to every node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesConfig {
    /// Largest file a client may upload to this node, MiB.
    pub max_file_mib: u64,
    /// Disk quota for file chunks (complete and partial files), MiB.
    pub quota_mib: u64,
    /// Rooms (64 lowercase hex room ids) whose files are fetched only when a client asks.
    pub lazy_rooms: Vec<String>,
    /// Other rooms are eager (every node fetches every file) while they have at most this
    /// many members, lazy above.
    pub eager_max_members: usize,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            max_file_mib: 100,
            quota_mib: 4096,
            lazy_rooms: Vec::new(),
            eager_max_members: 64,
        }
    }
}

/// A secret string: shown as `<hidden>` by `Debug`, so it never reaches a log by accident.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "<unset>"
        } else {
            "<hidden>"
        })
    }
}

impl Secret {
    /// Whether a secret is set.
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
}

/// `[federation]`: which nodes this node replicates with, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// The federation's shared secret, like a Wi-Fi passphrase.
    pub secret: Secret,
    /// A file whose first line is the secret (instead of `secret`).
    pub secret_file: PathBuf,
    /// Node ids (64 hex characters) admitted without the secret.
    pub allow: Vec<String>,
    /// UDP port of the QUIC endpoint (0: any free port, shown by `basis status`).
    pub port: u16,
    /// Peers to dial at start: `host:port`, or `NODEID@host:port` to pin the key.
    pub peers: Vec<String>,
    /// Whether to announce and discover nodes on the LAN with mDNS.
    pub mdns: bool,
    /// How often a link reconciles again while it is up, seconds.
    pub reconcile_secs: u64,
    /// Most links at once.
    pub max_peers: usize,
    /// Most KiB per second read from one peer; a faster peer is slowed down, not dropped.
    pub peer_rate_kib: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            secret: Secret::default(),
            secret_file: PathBuf::new(),
            allow: Vec::new(),
            port: 7464,
            peers: Vec::new(),
            mdns: true,
            reconcile_secs: 60,
            max_peers: 64,
            peer_rate_kib: 8192,
        }
    }
}

/// `[upstream]`: the bridge to upstream nodes over a WAN link (satellite, LTE, a site's
/// Internet line), and which rooms cross it in which direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Upstream nodes, as `NODEID@host:port`: the key is required, since an upstream node is
    /// reached over networks this node does not control.
    pub peers: Vec<String>,
    /// The interface that counts as the WAN, or `auto`: whichever interface the route to the
    /// upstream nodes leaves by.
    pub wan_interface: String,
    /// How often the bridge reconciles its rooms again while linked, seconds.
    pub reconcile_secs: u64,
    /// The rooms bridged, by room id; a room not listed never leaves the LAN.
    pub rooms: BTreeMap<String, RoomPolicyConfig>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            peers: Vec::new(),
            wan_interface: "auto".into(),
            reconcile_secs: 30,
            rooms: BTreeMap::new(),
        }
    }
}

/// `[upstream.rooms.<room id>]`: what one room may do over the WAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoomPolicyConfig {
    /// Events written on the LAN go upstream.
    pub uplink: bool,
    /// Events written upstream come down to the LAN.
    pub downlink: bool,
    /// Most bytes of this room's events per hour over the WAN, both directions; 0: no limit.
    pub budget_bytes_per_hour: u64,
    /// Rooms with a higher priority go first when the link or the budget is short.
    pub priority: i32,
}

impl Default for RoomPolicyConfig {
    fn default() -> Self {
        Self {
            uplink: true,
            downlink: true,
            budget_bytes_per_hour: 0,
            priority: 0,
        }
    }
}

/// `[api]`: the client API that phones and laptops use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Whether the node serves the client API.
    pub enabled: bool,
    /// TCP address to listen on, `ip:port`.
    pub listen: String,
    /// How long a session token lasts, seconds.
    pub session_secs: u64,
    /// Largest request body, KiB.
    pub max_body_kib: u64,
    /// Requests per second allowed from one client address (sustained).
    pub rate_per_sec: u32,
    /// Requests a client address may make at once before the rate applies.
    pub rate_burst: u32,
    /// Web origins (`scheme://host[:port]`) whose pages may call the API from a browser
    /// (CORS). Empty: only the web client the node serves itself.
    pub cors_origins: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "[::]:7480".into(),
            session_secs: 86_400,
            max_body_kib: 256,
            rate_per_sec: 50,
            rate_burst: 200,
            cors_origins: Vec::new(),
        }
    }
}

/// `[control]`: the local admin socket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlConfig {
    /// Unix socket for local admin commands; empty means `<data_dir>/control.sock`.
    pub socket: PathBuf,
}

/// `[log]`: logging.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Least severe messages that are logged.
    pub level: LogLevel,
}

/// A log level, written in lowercase in the configuration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Only errors.
    Error,
    /// Errors and warnings.
    Warn,
    /// Errors, warnings and information (the default).
    #[default]
    Info,
    /// All of the above and debugging detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The name as written in the configuration, e.g. `"info"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

impl std::fmt::Display for LogLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[hotspot]`: the Wi-Fi access point the Raspberry Pi image runs for phones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HotspotConfig {
    /// When the board runs the access point.
    pub mode: HotspotMode,
    /// Network name; empty means `Basis-` and the first 4 characters of the node id.
    pub ssid: String,
    /// WPA2 passphrase, 8 to 63 printable ASCII characters; empty means one made on the
    /// board at first boot (unless `open`).
    pub passphrase: String,
    /// An open network, with no passphrase at all.
    pub open: bool,
    /// Two-letter country code for the Wi-Fi rules; empty means the world-wide rules.
    pub country: String,
    /// 2.4 GHz channel, 1 to 13.
    pub channel: u8,
}

impl Default for HotspotConfig {
    fn default() -> Self {
        Self {
            mode: HotspotMode::Auto,
            ssid: String::new(),
            passphrase: String::new(),
            open: false,
            country: String::new(),
            channel: 6,
        }
    }
}

/// When the Raspberry Pi image runs its Wi-Fi access point, written in lowercase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HotspotMode {
    /// When the board has Wi-Fi and its Ethernet has no link at start (the default).
    #[default]
    Auto,
    /// Whenever the board has Wi-Fi, Ethernet or not.
    On,
    /// Never.
    Off,
}

/// `[ssh]`: remote shell access on the Raspberry Pi image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SshConfig {
    /// Public keys (`authorized_keys` lines) allowed to log in as root; empty keeps the SSH
    /// server off.
    pub authorized_keys: Vec<String>,
}

impl Config {
    /// The data directory to use: `node.data_dir` when set, else `$STATE_DIRECTORY` (under
    /// systemd; its first entry), else `/var/lib/basis` for root, else
    /// `$XDG_DATA_HOME/basis`, else `$HOME/.local/share/basis`, else `/var/lib/basis`.
    ///
    /// `env` looks up an environment variable; pure so it can be tested.
    pub fn resolve_data_dir(&self, env: &dyn Fn(&str) -> Option<String>, is_root: bool) -> PathBuf {
        if !self.node.data_dir.as_os_str().is_empty() {
            return self.node.data_dir.clone();
        }
        let var = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(dirs) = var("STATE_DIRECTORY") {
            // systemd joins several StateDirectory= entries with ':'.
            if let Some(first) = dirs.split(':').find(|d| !d.is_empty()) {
                return PathBuf::from(first);
            }
        }
        if is_root {
            return PathBuf::from(ROOT_DATA_DIR);
        }
        // The XDG spec says a relative $XDG_DATA_HOME is invalid and must be ignored.
        if let Some(xdg) = var("XDG_DATA_HOME").filter(|d| Path::new(d).is_absolute()) {
            return Path::new(&xdg).join("basis");
        }
        match var("HOME") {
            Some(home) => Path::new(&home).join(".local/share/basis"),
            None => PathBuf::from(ROOT_DATA_DIR),
        }
    }

    /// The control socket path: `control.socket` when set, else `<data_dir>/control.sock`.
    pub fn control_socket(&self, data_dir: &Path) -> PathBuf {
        if self.control.socket.as_os_str().is_empty() {
            data_dir.join("control.sock")
        } else {
            self.control.socket.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::tests::leaf_keys;
    use std::collections::HashMap;

    #[test]
    fn defaults_file_parses_to_default_config() {
        let parsed: Config = toml::from_str(DEFAULTS_TOML).unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn defaults_file_lists_every_field() {
        let schema = toml::Table::try_from(Config::default()).unwrap();
        let file: toml::Table = toml::from_str(DEFAULTS_TOML).unwrap();
        let (mut want, mut got) = (leaf_keys(&schema), leaf_keys(&file));
        want.sort();
        got.sort();
        assert_eq!(want, got);
        let sections: Vec<&str> = schema.keys().map(String::as_str).collect();
        let mut known = SECTIONS.to_vec();
        known.sort();
        assert_eq!(sections, known);
    }

    #[test]
    fn every_key_in_defaults_file_has_a_comment() {
        let mut previous = "";
        for line in DEFAULTS_TOML.lines() {
            let line = line.trim();
            let is_key = !line.is_empty() && !line.starts_with('#') && !line.starts_with('[');
            if is_key {
                assert!(previous.starts_with('#'), "no comment above `{line}`");
            }
            previous = line;
        }
    }

    #[test]
    fn log_level_names_round_trip() {
        for level in [
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ] {
            let text = format!("[log]\nlevel = \"{}\"\n", level.as_str());
            let config: Config = toml::from_str(&text).unwrap();
            assert_eq!(config.log.level, level);
            assert_eq!(level.to_string(), level.as_str());
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn data_dir_rule() {
        let config = Config::default();
        let home = env_of(&[("HOME", "/home/pi")]);
        assert_eq!(
            config.resolve_data_dir(&home, false),
            PathBuf::from("/home/pi/.local/share/basis")
        );
        assert_eq!(
            config.resolve_data_dir(&home, true),
            PathBuf::from("/var/lib/basis")
        );

        let xdg = env_of(&[("HOME", "/home/pi"), ("XDG_DATA_HOME", "/data")]);
        assert_eq!(
            config.resolve_data_dir(&xdg, false),
            PathBuf::from("/data/basis")
        );
        let relative_xdg = env_of(&[("HOME", "/home/pi"), ("XDG_DATA_HOME", "rel")]);
        assert_eq!(
            config.resolve_data_dir(&relative_xdg, false),
            PathBuf::from("/home/pi/.local/share/basis")
        );

        let systemd = env_of(&[
            ("STATE_DIRECTORY", "/var/lib/basis-a:/var/lib/other"),
            ("HOME", "/root"),
        ]);
        assert_eq!(
            config.resolve_data_dir(&systemd, true),
            PathBuf::from("/var/lib/basis-a")
        );
        assert_eq!(
            config.resolve_data_dir(&env_of(&[]), false),
            PathBuf::from("/var/lib/basis")
        );

        let mut set = Config::default();
        set.node.data_dir = PathBuf::from("/srv/basis");
        assert_eq!(
            set.resolve_data_dir(&systemd, true),
            PathBuf::from("/srv/basis")
        );
    }

    #[test]
    fn control_socket_rule() {
        let mut config = Config::default();
        let dir = Path::new("/var/lib/basis");
        assert_eq!(
            config.control_socket(dir),
            PathBuf::from("/var/lib/basis/control.sock")
        );
        config.control.socket = PathBuf::from("/run/basis.sock");
        assert_eq!(config.control_socket(dir), PathBuf::from("/run/basis.sock"));
    }
}
