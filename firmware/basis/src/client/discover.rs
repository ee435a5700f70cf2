//! Finding a node to talk to: `--node URL` (or `$BASIS_NODE`), else the first node that
//! announces a client API on the LAN over mDNS.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mdns_sd::{ServiceDaemon, ServiceEvent};

/// How long to look for a node on the LAN.
const BROWSE_FOR: Duration = Duration::from_secs(4);

/// The node's base URL, such as `http://192.168.1.20:7480`.
pub fn node_url(flag: Option<&str>) -> Result<String> {
    if let Some(url) = flag {
        let url = url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--node takes a URL such as http://192.168.1.20:7480, not {url:?}");
        }
        return Ok(url.to_string());
    }
    browse()
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
