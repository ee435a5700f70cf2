//! mDNS: announce this node as `_basis._udp.local.` and report the nodes others announce.
//!
//! TXT records: `id` (node id, hex), `fed` (federation tag, never the secret), `proto`
//! (protocol version), `port`, `name` and, when the node serves the client API, `api` (its
//! TCP port), so clients on the LAN can find a node.

use std::net::{IpAddr, SocketAddr};

use basis_core::NodeId;
use mdns_sd::{IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use tokio::sync::mpsc;

use crate::error::NetError;

/// The mDNS service type of Basis nodes.
pub const SERVICE_TYPE: &str = "_basis._udp.local.";

/// A node seen on the LAN.
#[derive(Debug, Clone)]
pub struct Sighting {
    /// Its node id.
    pub node: NodeId,
    /// Its federation tag (empty when it has none).
    pub tag: String,
    /// Its human name, as announced.
    pub name: String,
    /// Where to dial it.
    pub addrs: Vec<SocketAddr>,
}

/// The running mDNS responder and browser.
pub struct Discovery {
    daemon: ServiceDaemon,
    fullname: String,
}

impl Discovery {
    /// Announces this node and starts browsing, on every interface but `quiet_on` (the WAN:
    /// a node is not announced to the networks beyond its LAN); sightings of other nodes
    /// arrive on the returned channel.
    pub fn start(
        local: NodeId,
        name: &str,
        tag: &str,
        port: u16,
        api_port: Option<u16>,
        quiet_on: Option<&str>,
    ) -> Result<(Discovery, mpsc::Receiver<Sighting>), NetError> {
        let mdns = |e: mdns_sd::Error| NetError::Mdns(e.to_string());
        let daemon = ServiceDaemon::new().map_err(mdns)?;
        if let Some(iface) = quiet_on {
            daemon
                .disable_interface(IfKind::Name(iface.to_string()))
                .map_err(mdns)?;
        }
        let instance = format!("basis-{}", local.short());
        let host = format!("basis-{}.local.", local.short());
        let id = local.to_string();
        let port_text = port.to_string();
        let proto = basis_proto::PROTOCOL_VERSION.to_string();
        let api_text = api_port.map(|p| p.to_string()).unwrap_or_default();
        let mut props = vec![
            ("id", id.as_str()),
            ("fed", tag),
            ("proto", proto.as_str()),
            ("port", port_text.as_str()),
            ("name", name),
        ];
        if api_port.is_some() {
            props.push(("api", api_text.as_str()));
        }
        let info = ServiceInfo::new(SERVICE_TYPE, &instance, &host, "", port, &props[..])
            .map_err(mdns)?
            .enable_addr_auto();
        let fullname = info.get_fullname().to_string();
        daemon.register(info).map_err(mdns)?;
        let events = daemon.browse(SERVICE_TYPE).map_err(mdns)?;
        let (tx, rx) = mpsc::channel(64);
        std::thread::Builder::new()
            .name("basis-mdns".into())
            .spawn(move || {
                while let Ok(event) = events.recv() {
                    let ServiceEvent::ServiceResolved(service) = event else {
                        continue;
                    };
                    let Some(node) = service
                        .txt_properties
                        .get_property_val_str("id")
                        .and_then(|id| id.parse::<NodeId>().ok())
                    else {
                        continue;
                    };
                    if node == local {
                        continue;
                    }
                    let tag = service
                        .txt_properties
                        .get_property_val_str("fed")
                        .unwrap_or_default()
                        .to_string();
                    let name = service
                        .txt_properties
                        .get_property_val_str("name")
                        .unwrap_or_default()
                        .to_string();
                    // IPv4 first; IPv6 only when global (link-local needs a scope id).
                    let mut ips: Vec<IpAddr> = service
                        .addresses
                        .iter()
                        .map(|a| a.to_ip_addr())
                        .filter(|ip| match ip {
                            IpAddr::V4(v4) => !v4.is_loopback(),
                            IpAddr::V6(v6) => {
                                !v6.is_loopback() && (v6.segments()[0] & 0xffc0) != 0xfe80
                            }
                        })
                        .collect();
                    ips.sort_by_key(|ip| ip.is_ipv6());
                    let addrs = ips
                        .into_iter()
                        .map(|ip| SocketAddr::new(ip, service.port))
                        .collect();
                    if tx
                        .blocking_send(Sighting {
                            node,
                            tag,
                            name,
                            addrs,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            })
            .map_err(|e| NetError::Mdns(e.to_string()))?;
        Ok((Discovery { daemon, fullname }, rx))
    }

    /// Withdraws the announcement and stops the daemon.
    pub fn stop(self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(std::time::Duration::from_secs(1));
        }
        let _ = self.daemon.shutdown();
    }
}
