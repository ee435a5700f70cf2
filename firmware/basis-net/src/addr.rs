//! Addresses: peers named in the configuration, and socket addresses as this crate shows them.

use std::net::SocketAddr;

use basis_core::NodeId;

/// A peer named in the configuration.
#[derive(Debug, Clone)]
pub struct StaticPeer {
    /// The node id it must have, if pinned.
    pub expected: Option<NodeId>,
    /// Host name or address.
    pub host: String,
    /// UDP port.
    pub port: u16,
}

impl std::str::FromStr for StaticPeer {
    type Err = String;
    /// Reads `host:port` or `NODEID@host:port`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (expected, address) = match s.split_once('@') {
            Some((id, rest)) => (Some(id.parse::<NodeId>().map_err(|e| e.to_string())?), rest),
            None => (None, s),
        };
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| format!("{s:?}: expected host:port"))?;
        let port = port.parse().map_err(|_| format!("{s:?}: bad port"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(StaticPeer {
            expected,
            host,
            port,
        })
    }
}

/// An address with IPv4-mapped IPv6 shown as plain IPv4.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_peers_read_with_or_without_a_pinned_id() {
        let id = "ab".repeat(32);
        let p: StaticPeer = format!("{id}@[fe80::1]:7464")
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.expected.map(|n| n.to_string()), Some(id));
        assert_eq!((p.host.as_str(), p.port), ("fe80::1", 7464));
        let p: StaticPeer = "hq.example.org:1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(p.expected.is_none());
        assert!("hq.example.org".parse::<StaticPeer>().is_err());
        assert!("hq:port".parse::<StaticPeer>().is_err());
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:7464"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(canonical(mapped).to_string(), "10.0.0.1:7464");
    }
}
