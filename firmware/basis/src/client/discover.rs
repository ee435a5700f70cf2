//! Finding a node to talk to: `--node URL` (or `$BASIS_NODE`), else the first node that
//! announces a client API on the LAN over mDNS.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mdns_sd::{ServiceDaemon, ServiceEvent};

/// How long to look for a node on the LAN.
const BROWSE_FOR: Duration = Duration::from_secs(4);

/// The client API's port, when `--node` names a host without one.
const DEFAULT_PORT: u16 = 7480;

/// The node's base URL, such as `http://192.168.1.20:7480`.
pub fn node_url(flag: Option<&str>) -> Result<String> {
    match flag {
        Some(flag) => parse_node(flag),
        None => browse(),
    }
}

/// Reads `--node`: a URL, or `HOST:PORT` or `HOST` alone, which mean `http://HOST:PORT` and
/// `http://HOST:7480`.
fn parse_node(flag: &str) -> Result<String> {
    let text = flag.trim();
    let bad = || {
        anyhow::anyhow!(
            "--node takes a URL such as http://192.168.1.20:7480 (or 192.168.1.20:7480), not {flag:?}"
        )
    };
    let explicit = text.contains("://");
    let mut url = if explicit {
        reqwest::Url::parse(text)
    } else {
        reqwest::Url::parse(&format!("http://{text}"))
    }
    .map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    if !explicit && url.port().is_none() {
        url.set_port(Some(DEFAULT_PORT)).map_err(|()| bad())?;
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn browse() -> Result<String> {
    let daemon = ServiceDaemon::new().context("cannot start mDNS to look for a node")?;
    let events = daemon
        .browse(basis_net::SERVICE_TYPE)
        .context("cannot browse mDNS")?;
    let started = Instant::now();
    let mut found = None;
    while found.is_none() {
        let left = BROWSE_FOR.saturating_sub(started.elapsed());
        if left.is_zero() {
            break;
        }
        let Ok(event) = events.recv_timeout(left) else {
            break;
        };
        let ServiceEvent::ServiceResolved(service) = event else {
            continue;
        };
        let Some(port) = service
            .txt_properties
            .get_property_val_str("api")
            .and_then(|p| p.parse::<u16>().ok())
        else {
            continue;
        };
        let mut ips: Vec<std::net::IpAddr> = service
            .addresses
            .iter()
            .map(|a| a.to_ip_addr())
            .filter(|ip| ip.is_ipv4())
            .collect();
        ips.sort();
        if let Some(ip) = ips.first() {
            found = Some(format!("http://{ip}:{port}"));
        }
    }
    let _ = daemon.shutdown();
    found.with_context(|| {
        format!(
            "no Basis node announced itself on the LAN within {}s; name one with --node http://HOST:7480 (or BASIS_NODE)",
            BROWSE_FOR.as_secs()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::parse_node;

    #[test]
    fn node_takes_a_url_or_a_host_and_port() {
        for (given, url) in [
            ("http://192.168.1.20:7480", "http://192.168.1.20:7480"),
            ("http://192.168.1.20:7480/", "http://192.168.1.20:7480"),
            ("192.168.1.20:7480", "http://192.168.1.20:7480"),
            ("192.168.1.20", "http://192.168.1.20:7480"),
            ("school-gym.local:8080", "http://school-gym.local:8080"),
            ("[fd00::7]:7480", "http://[fd00::7]:7480"),
            ("https://node.example", "https://node.example"),
        ] {
            assert_eq!(parse_node(given).unwrap(), url, "{given}");
        }
        for bad in ["", "ftp://x:1", "http://", "a b:1", "host:port"] {
            let err = parse_node(bad).unwrap_err().to_string();
            assert!(err.contains("--node takes a URL"), "{bad:?}: {err}");
        }
    }
}
