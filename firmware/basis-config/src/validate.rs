//! Checks on values that have the right type but may still be unusable.

use std::fmt::Display;
use std::ops::RangeInclusive;

use crate::schema::Config;

/// Most MiB `store.quota_mib` may be (16 TiB), so that the quota in bytes fits a `u64`.
pub(crate) const MAX_QUOTA_MIB: u64 = 1 << 24;
/// Most MiB `files.max_file_mib` may be: 4 GiB, within what a chunk list can lay out.
pub(crate) const MAX_FILE_MIB: u64 = 4096;
/// Most events `store.write_queue` may hold.
pub(crate) const MAX_WRITE_QUEUE: usize = 1_000_000;
/// Most characters in `node.name`.
pub(crate) const MAX_NAME_CHARS: usize = 64;
/// Most bytes in a Unix socket path (`sun_path` less its terminating NUL).
pub(crate) const MAX_SOCKET_PATH_BYTES: usize = 107;

/// A value that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// Dotted path of the bad field.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
    /// Another field the rule depends on, blamed when `field` was left at its default.
    pub related: Option<&'static str>,
    /// The table at fault, when the rule is about one entry of `field` (such as one room of
    /// `upstream.rooms`): named in the error, and its settings are blamed.
    pub within: Option<String>,
}

/// The first rule `config` breaks, if any.
pub(crate) fn validate(config: &Config) -> Result<(), Invalid> {
    let store = &config.store;
    in_range("store.quota_mib", store.quota_mib, 1..=MAX_QUOTA_MIB)?;
    in_range("store.cache_mib", store.cache_mib, 1..=1024)?;
    in_range("store.readers", store.readers, 1..=64)?;
    in_range("store.write_batch", store.write_batch, 1..=10_000)?;
    if store.write_queue < store.write_batch {
        return Err(Invalid {
            field: "store.write_queue",
            reason: format!(
                "must be at least store.write_batch ({}), got {}",
                store.write_batch, store.write_queue
            ),
            related: Some("store.write_batch"),
            within: None,
        });
    }
    in_range("store.write_queue", store.write_queue, 1..=MAX_WRITE_QUEUE)?;
    in_range("store.commit_gap_ms", store.commit_gap_ms, 0..=100)?;
    if store.expire_interval_secs < 10 {
        return Err(invalid(
            "store.expire_interval_secs",
            format!("must be at least 10, got {}", store.expire_interval_secs),
        ));
    }
    validate_files(config)?;
    let name = &config.node.name;
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            "node.name",
            format!(
                "must be at most {MAX_NAME_CHARS} characters, got {}",
                name.chars().count()
            ),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid(
            "node.name",
            "must not contain control characters".into(),
        ));
    }
    validate_federation(config)?;
    validate_upstream(config)?;
    validate_api(config)?;
    validate_hotspot(config)?;
    validate_ssh(config)?;
    let socket = config.control.socket.as_os_str().len();
    if socket > MAX_SOCKET_PATH_BYTES {
        return Err(invalid(
            "control.socket",
            format!("must be at most {MAX_SOCKET_PATH_BYTES} bytes long, got {socket}"),
        ));
    }
    Ok(())
}

fn is_node_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks a peer address: `host:port` or `NODEID@host:port`.
fn check_peer(text: &str) -> Result<(), String> {
    let (id, address) = match text.split_once('@') {
        Some((id, address)) => (Some(id), address),
        None => (None, text),
    };
    if let Some(id) = id
        && !is_node_id(id)
    {
        return Err(format!(
            "{text:?}: the part before '@' must be a node id (64 hex characters)"
        ));
    }
    let Some((host, port)) = address.rsplit_once(':') else {
        return Err(format!("{text:?}: expected host:port"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
        return Err(format!(
            "{text:?}: expected host:port with a port from 1 to 65535"
        ));
    }
    Ok(())
}

fn validate_federation(config: &Config) -> Result<(), Invalid> {
    let f = &config.federation;
    if f.secret.is_set() && !f.secret_file.as_os_str().is_empty() {
        return Err(invalid(
            "federation.secret_file",
            "set either secret or secret_file, not both".into(),
        ));
    }
    if f.secret.is_set() && f.secret.0.len() < 8 {
        return Err(invalid(
            "federation.secret",
            "must be at least 8 characters long".into(),
        ));
    }
    if let Some(bad) = f.allow.iter().find(|id| !is_node_id(id)) {
        return Err(invalid(
            "federation.allow",
            format!("{bad:?} is not a node id (64 hex characters, see `basis id`)"),
        ));
    }
    // Any u16 will do: 0 asks the kernel for a free port, which `basis status` then shows.
    for peer in &f.peers {
        check_peer(peer).map_err(|reason| invalid("federation.peers", reason))?;
    }
    in_range("federation.reconcile_secs", f.reconcile_secs, 5..=86_400)?;
    in_range("federation.max_peers", f.max_peers, 1..=1024)?;
    in_range("federation.peer_rate_kib", f.peer_rate_kib, 64..=1_048_576)?;
    Ok(())
}

/// Most characters in an interface name (`IFNAMSIZ` less its NUL).
const MAX_IFNAME: usize = 15;

fn validate_upstream(config: &Config) -> Result<(), Invalid> {
    let u = &config.upstream;
    for peer in &u.peers {
        check_peer(peer).map_err(|reason| invalid("upstream.peers", reason))?;
        if !peer.contains('@') {
            return Err(invalid(
                "upstream.peers",
                format!(
                    "{peer:?}: an upstream peer needs its node id, as NODEID@host:port \
                     (run `basis id` on the upstream node)"
                ),
            ));
        }
    }
    let name = &u.wan_interface;
    if name.is_empty()
        || name.len() > MAX_IFNAME
        || name.contains(['/', ' ', '\0'])
        || name == "."
        || name == ".."
    {
        return Err(invalid(
            "upstream.wan_interface",
            format!("{name:?}: expected \"auto\" or an interface name such as \"wwan0\""),
        ));
    }
    in_range("upstream.reconcile_secs", u.reconcile_secs, 5..=86_400)?;
    if let Some(bad) = u.rooms.keys().find(|id| !is_room_id(id)) {
        let reason = if is_node_id(bad) {
            format!("{bad:?}: write the room id in lowercase, as `basis store rooms` prints it")
        } else {
            format!("{bad:?} is not a room id (64 hex characters, see `basis store rooms`)")
        };
        return Err(Invalid {
            within: Some(format!("upstream.rooms.{bad}")),
            ..invalid("upstream.rooms", reason)
        });
    }
    if let Some((room, _)) = u.rooms.iter().find(|(_, p)| !p.uplink && !p.downlink) {
        return Err(Invalid {
            within: Some(format!("upstream.rooms.{room}")),
            ..invalid(
                "upstream.rooms",
                "uplink and downlink are both off; remove the room to keep it on the LAN".into(),
            )
        });
    }
    Ok(())
}

fn validate_files(config: &Config) -> Result<(), Invalid> {
    let f = &config.files;
    in_range("files.max_file_mib", f.max_file_mib, 1..=MAX_FILE_MIB)?;
    in_range("files.quota_mib", f.quota_mib, 1..=MAX_QUOTA_MIB)?;
    if let Some(bad) = f.lazy_rooms.iter().find(|r| !is_room_id(r)) {
        return Err(invalid(
            "files.lazy_rooms",
            format!(
                "{bad:?} is not a room id (64 lowercase hex characters, see `basis store rooms`)"
            ),
        ));
    }
    Ok(())
}

fn validate_api(config: &Config) -> Result<(), Invalid> {
    let a = &config.api;
    if a.listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(invalid(
            "api.listen",
            format!(
                "{:?}: expected ip:port, such as \"[::]:7480\" or \"0.0.0.0:7480\"",
                a.listen
            ),
        ));
    }
    in_range("api.session_secs", a.session_secs, 1..=2_592_000)?;
    in_range("api.max_body_kib", a.max_body_kib, 80..=65_536)?;
    in_range("api.rate_per_sec", a.rate_per_sec, 1..=100_000)?;
    in_range("api.rate_burst", a.rate_burst, 1..=100_000)?;
    for origin in &a.cors_origins {
        if !is_origin(origin) {
            return Err(invalid(
                "api.cors_origins",
                format!(
                    "{origin:?}: expected an origin such as \"http://chat.example.lan:8080\" (scheme, host and port, no path); \"*\" is not taken"
                ),
            ));
        }
    }
    Ok(())
}

fn validate_hotspot(config: &Config) -> Result<(), Invalid> {
    let h = &config.hotspot;
    if h.ssid.len() > 32 || h.ssid.chars().any(char::is_control) {
        return Err(invalid(
            "hotspot.ssid",
            format!(
                "{:?}: must be at most 32 bytes with no control characters",
                h.ssid
            ),
        ));
    }
    let printable = h.passphrase.bytes().all(|b| (b' '..=b'~').contains(&b));
    if !h.passphrase.is_empty() && (!(8..=63).contains(&h.passphrase.len()) || !printable) {
        return Err(invalid(
            "hotspot.passphrase",
            format!(
                "must be 8 to 63 printable ASCII characters (WPA2), got {} characters",
                h.passphrase.chars().count()
            ),
        ));
    }
    if h.open && !h.passphrase.is_empty() {
        return Err(Invalid {
            field: "hotspot.open",
            reason:
                "an open network takes no passphrase: set open = false or remove the passphrase"
                    .into(),
            related: Some("hotspot.passphrase"),
            within: None,
        });
    }
    let country_ok = h.country.len() == 2 && h.country.bytes().all(|b| b.is_ascii_uppercase());
    if !h.country.is_empty() && !country_ok {
        return Err(invalid(
            "hotspot.country",
            format!(
                "{:?}: expected two capital letters, such as \"DE\"",
                h.country
            ),
        ));
    }
    in_range("hotspot.channel", h.channel, 1..=13)
}

fn validate_ssh(config: &Config) -> Result<(), Invalid> {
    for key in &config.ssh.authorized_keys {
        let fields: Vec<&str> = key.split_whitespace().collect();
        if key.contains(['\n', '\r']) || fields.len() < 2 {
            return Err(invalid(
                "ssh.authorized_keys",
                format!(
                    "{key:?}: expected one public key line, such as \"ssh-ed25519 AAAA... me@laptop\""
                ),
            ));
        }
    }
    Ok(())
}

/// `http://host[:port]` or `https://host[:port]`, nothing after.
fn is_origin(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
    else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    !host.is_empty()
        && !rest.contains('/')
        && !rest.contains('?')
        && !rest.contains('#')
        && !rest.contains('@')
        && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0))
}

fn invalid(field: &'static str, reason: String) -> Invalid {
    Invalid {
        field,
        reason,
        related: None,
        within: None,
    }
}

/// Whether a room id is written as `basis store rooms` prints it: 64 lowercase hex
/// characters (an uppercase one would be a second key for the same room).
fn is_room_id(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What is allowed but probably not meant; `basis config check` and `basis run` say so.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let u = &config.upstream;
    if u.peers.is_empty() && !u.rooms.is_empty() {
        out.push(format!(
            "upstream.rooms: {} room(s) are listed but upstream.peers is empty, so nothing is \
             bridged; add the upstream node as NODEID@host:port",
            u.rooms.len()
        ));
    }
    out
}

fn in_range<T: PartialOrd + Display>(
    field: &'static str,
    value: T,
    range: RangeInclusive<T>,
) -> Result<(), Invalid> {
    if range.contains(&value) {
        Ok(())
    } else {
        let (low, high) = range.into_inner();
        Err(invalid(
            field,
            format!("must be between {low} and {high}, got {value}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(edit: impl FnOnce(&mut Config)) -> Result<(), Invalid> {
        let mut config = Config::default();
        edit(&mut config);
        validate(&config)
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(validate(&Config::default()), Ok(()));
    }

    #[test]
    fn upstream_needs_pinned_peers_and_room_ids() {
        let id = "ab".repeat(32);
        assert_eq!(
            check(|c| c.upstream.peers = vec![format!("{id}@sat.example.org:7464")]),
            Ok(())
        );
        let err = check(|c| c.upstream.peers = vec!["sat.example.org:7464".into()]).unwrap_err();
        assert_eq!(err.field, "upstream.peers");
        assert!(err.reason.contains("needs its node id"), "{}", err.reason);
        let err = check(|c| c.upstream.wan_interface = "eth0/../x".into()).unwrap_err();
        assert_eq!(err.field, "upstream.wan_interface");
        let err = check(|c| {
            c.upstream
                .rooms
                .insert("general".into(), crate::RoomPolicyConfig::default());
        })
        .unwrap_err();
        assert_eq!(err.field, "upstream.rooms");
        assert!(err.reason.contains("\"general\" is not a room id"));
        let err = check(|c| {
            c.upstream.rooms.insert(
                id.clone(),
                crate::RoomPolicyConfig {
                    uplink: false,
                    downlink: false,
                    ..Default::default()
                },
            );
        })
        .unwrap_err();
        assert!(err.reason.contains("both off"), "{}", err.reason);
        assert_eq!(err.within, Some(format!("upstream.rooms.{id}")));
        // The same room in capitals would be a second key for it.
        let err = check(|c| {
            c.upstream
                .rooms
                .insert(id.to_uppercase(), crate::RoomPolicyConfig::default());
        })
        .unwrap_err();
        assert!(err.reason.contains("lowercase"), "{}", err.reason);
    }

    #[test]
    fn rooms_without_an_upstream_peer_are_a_warning() {
        let mut c = Config::default();
        assert!(warnings(&c).is_empty());
        c.upstream
            .rooms
            .insert("ab".repeat(32), crate::RoomPolicyConfig::default());
        let w = warnings(&c);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("upstream.peers is empty"), "{w:?}");
        c.upstream.peers = vec![format!("{}@hq.example.org:7464", "cd".repeat(32))];
        assert!(warnings(&c).is_empty());
    }

    #[test]
    fn ranges_are_enforced() {
        let err = check(|c| c.store.readers = 0).unwrap_err();
        assert_eq!(err.field, "store.readers");
        assert_eq!(err.reason, "must be between 1 and 64, got 0");
        assert_eq!(check(|c| c.store.readers = 64), Ok(()));
        assert_eq!(
            check(|c| c.store.quota_mib = 0).unwrap_err().field,
            "store.quota_mib"
        );
        assert_eq!(
            check(|c| c.store.cache_mib = 1025).unwrap_err().field,
            "store.cache_mib"
        );
        assert_eq!(
            check(|c| c.store.write_batch = 0).unwrap_err().field,
            "store.write_batch"
        );
        assert_eq!(
            check(|c| c.store.commit_gap_ms = 101).unwrap_err().field,
            "store.commit_gap_ms"
        );
        assert_eq!(
            check(|c| c.store.expire_interval_secs = 9)
                .unwrap_err()
                .field,
            "store.expire_interval_secs"
        );
        assert_eq!(
            check(|c| c.store.write_queue = MAX_WRITE_QUEUE + 1)
                .unwrap_err()
                .field,
            "store.write_queue"
        );
    }

    #[test]
    fn write_queue_must_hold_a_batch() {
        let err = check(|c| c.store.write_batch = 2000).unwrap_err();
        assert_eq!(err.field, "store.write_queue");
        assert_eq!(err.related, Some("store.write_batch"));
        assert_eq!(
            err.reason,
            "must be at least store.write_batch (2000), got 1024"
        );
    }

    #[test]
    fn federation_rules() {
        let err = check(|c| c.federation.secret.0 = "short".into()).unwrap_err();
        assert_eq!(err.field, "federation.secret");
        let err = check(|c| c.federation.allow = vec!["nope".into()]).unwrap_err();
        assert_eq!(err.field, "federation.allow");
        for bad in ["nohost", "h:0", ":7464", "abc@h:1"] {
            let err = check(|c| c.federation.peers = vec![bad.into()]).unwrap_err();
            assert_eq!(err.field, "federation.peers", "{bad}");
        }
        let id = "ab".repeat(32);
        for good in [
            "10.0.0.2:7464".to_string(),
            "[fe80::1]:7464".into(),
            format!("{id}@base.example:7464"),
        ] {
            assert_eq!(
                check(|c| c.federation.peers = vec![good.clone()]),
                Ok(()),
                "{good}"
            );
        }
        let err = check(|c| {
            c.federation.secret.0 = "long enough".into();
            c.federation.secret_file = "/x".into();
        })
        .unwrap_err();
        assert_eq!(err.field, "federation.secret_file");
        assert_eq!(
            check(|c| c.federation.reconcile_secs = 4)
                .unwrap_err()
                .field,
            "federation.reconcile_secs"
        );
    }

    #[test]
    fn api_rules() {
        for bad in ["7480", "localhost:7480", ""] {
            let err = check(|c| c.api.listen = bad.into()).unwrap_err();
            assert_eq!(err.field, "api.listen", "{bad}");
        }
        assert!(check(|c| c.api.listen = "127.0.0.1:9000".into()).is_ok());
        let err = check(|c| c.api.max_body_kib = 10).unwrap_err();
        assert_eq!(err.field, "api.max_body_kib");
        let err = check(|c| c.api.rate_per_sec = 0).unwrap_err();
        assert_eq!(err.field, "api.rate_per_sec");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let mut c = Config::default();
        c.federation.secret.0 = "correct horse battery".into();
        assert!(!format!("{c:?}").contains("horse"));
    }

    #[test]
    fn hotspot_rules() {
        assert!(check(|c| c.hotspot.passphrase = "eight ch".into()).is_ok());
        let short = check(|c| c.hotspot.passphrase = "seven c".into()).unwrap_err();
        assert_eq!(short.field, "hotspot.passphrase");
        assert!(check(|c| c.hotspot.passphrase = "x".repeat(64)).is_err());
        assert!(check(|c| c.hotspot.passphrase = "tab\there!".into()).is_err());
        let both = check(|c| {
            c.hotspot.open = true;
            c.hotspot.passphrase = "eight ch".into();
        })
        .unwrap_err();
        assert_eq!(both.field, "hotspot.open");
        assert!(check(|c| c.hotspot.open = true).is_ok());
        assert!(check(|c| c.hotspot.ssid = "s".repeat(33)).is_err());
        assert!(check(|c| c.hotspot.country = "DE".into()).is_ok());
        assert!(check(|c| c.hotspot.country = "de".into()).is_err());
        assert!(check(|c| c.hotspot.channel = 0).is_err());
        assert!(check(|c| c.hotspot.channel = 14).is_err());
    }

    #[test]
    fn ssh_keys_are_single_lines() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA me@laptop";
        assert!(check(|c| c.ssh.authorized_keys = vec![key.into()]).is_ok());
        assert!(check(|c| c.ssh.authorized_keys = vec!["ssh-ed25519".into()]).is_err());
        assert!(check(|c| c.ssh.authorized_keys = vec![format!("{key}\n{key}")]).is_err());
    }

    #[test]
    fn name_and_socket_limits() {
        assert_eq!(
            check(|c| c.node.name = "x".repeat(65)).unwrap_err().field,
            "node.name"
        );
        assert_eq!(
            check(|c| c.node.name = "a\nb".into()).unwrap_err().field,
            "node.name"
        );
        assert_eq!(check(|c| c.node.name = "Feldlager Süd".into()), Ok(()));
        for good in [
            "http://chat.lan",
            "https://10.0.0.5:8443",
            "http://[fd00::1]:8080",
        ] {
            assert_eq!(
                check(|c| c.api.cors_origins = vec![good.into()]),
                Ok(()),
                "{good}"
            );
        }
        for bad in [
            "*",
            "chat.lan",
            "http://chat.lan/app",
            "http://",
            "http://x:0",
            "ftp://x",
        ] {
            assert_eq!(
                check(|c| c.api.cors_origins = vec![bad.into()])
                    .unwrap_err()
                    .field,
                "api.cors_origins",
                "{bad}"
            );
        }
        let long = format!("/{}", "s".repeat(107));
        assert_eq!(
            check(|c| c.control.socket = long.into()).unwrap_err().field,
            "control.socket"
        );
    }
}
