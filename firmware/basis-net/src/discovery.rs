//! mDNS: announce this node as `_basis._udp.local.` and report the nodes others announce.
//!
//! TXT records: `id` (node id, hex), `fed` (federation tag, never the secret; empty when the
//! node does not federate), `proto` (protocol version), `port`, `name` and, when the node
//! serves the client API, `api` (its TCP port), so clients on the LAN can find a node. A node
//! that does not federate still announces itself when it serves the client API, with an
//! empty `fed` and no `port`; it does not browse.

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

/// The mDNS announcement of a node.
struct Announcement<'a> {
    local: NodeId,
    name: &'a str,
    tag: &'a str,
    /// The federation's UDP port; `None` for a node that does not federate.
    port: Option<u16>,
    api_port: Option<u16>,
    /// The one address to announce; `None`: every address of the machine.
    only: Option<IpAddr>,
}

impl Announcement<'_> {
    /// Starts an mDNS daemon (quiet on `quiet_on`) and registers the announcement.
    fn register(&self, quiet_on: Option<&str>) -> Result<(ServiceDaemon, String), NetError> {
        let mdns = NetError::Mdns;
        let daemon = ServiceDaemon::new().map_err(mdns)?;
        if let Some(iface) = quiet_on {
            daemon
                .disable_interface(IfKind::Name(iface.to_string()))
                .map_err(mdns)?;
        }
        let instance = format!("basis-{}", self.local.short());
        let host = format!("basis-{}.local.", self.local.short());
        let id = self.local.to_string();
        let port_text = self.port.map(|p| p.to_string()).unwrap_or_default();
        let proto = basis_proto::PROTOCOL_VERSION.to_string();
        let api_text = self.api_port.map(|p| p.to_string()).unwrap_or_default();
        let mut props = vec![
            ("id", id.as_str()),
            ("fed", self.tag),
            ("proto", proto.as_str()),
        ];
        if self.port.is_some() {
            props.push(("port", port_text.as_str()));
        }
        props.push(("name", self.name));
        if self.api_port.is_some() {
            props.push(("api", api_text.as_str()));
        }
        // The service's own port: the federation's, else the client API's.
        let port = self.port.or(self.api_port).unwrap_or(0);
        let info = match self.only {
            Some(ip) => ServiceInfo::new(SERVICE_TYPE, &instance, &host, ip, port, &props[..]),
            None => ServiceInfo::new(SERVICE_TYPE, &instance, &host, "", port, &props[..])
                .map(ServiceInfo::enable_addr_auto),
        }
        .map_err(mdns)?;
        let fullname = info.get_fullname().to_string();
        daemon.register(info).map_err(mdns)?;
        Ok((daemon, fullname))
    }
}

impl Discovery {
    /// Announces a node that does not federate but serves the client API at `api` (an
    /// unspecified address: every address of the machine), so that chat clients on the LAN
    /// find it. It does not browse: it has no use for other nodes, and nodes of a federation
    /// see it as one that has no federation secret.
    pub fn announce_api(local: NodeId, name: &str, api: SocketAddr) -> Result<Discovery, NetError> {
        let (daemon, fullname) = Announcement {
            local,
            name,
            tag: "",
            port: None,
            api_port: Some(api.port()),
            only: (!api.ip().is_unspecified()).then_some(api.ip()),
        }
        .register(None)?;
        Ok(Discovery { daemon, fullname })
    }

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
        let mdns = NetError::Mdns;
        let (daemon, fullname) = Announcement {
            local,
            name,
            tag,
            port: Some(port),
            api_port,
            only: None,
        }
        .register(quiet_on)?;
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
                        .filter(|ip| !ip.is_loopback() && !is_link_local_v6(ip))
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
            .map_err(|source| NetError::Thread {
                name: "mDNS browse",
                source,
            })?;
        Ok((Discovery { daemon, fullname }, rx))
    }

    /// The addresses clients on the LAN can reach this machine at: every address of every
    /// interface but loopback, IPv4 first; IPv6 link-local ones are left out (they need an
    /// interface name to be used).
    pub fn lan_addresses() -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .map(|i| i.ip())
            .filter(|ip| !ip.is_loopback() && !is_link_local_v6(ip))
            .collect();
        ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
        ips.dedup();
        ips
    }

    /// Withdraws the announcement and stops the daemon.
    pub fn stop(self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(std::time::Duration::from_secs(1));
        }
        let _ = self.daemon.shutdown();
    }
}

/// An IPv6 link-local address (fe80::/10), which is of no use without its interface.
fn is_link_local_v6(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}
