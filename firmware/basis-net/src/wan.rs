//! The WAN link monitor: is there a way out to the upstream nodes right now?
//!
//! It listens to the kernel's netlink notices of links, addresses and routes (rtnetlink) and
//! looks again only when one arrives, so an idle board spends nothing on it. Looking means:
//! resolve the upstream hosts, ask the kernel for a route to each (a UDP `connect` sends no
//! packet), find the interface the route leaves by and check that it is up (and, when
//! `upstream.wan_interface` names one, that it is that one). Whether the upstream node
//! answers is the dial's business: the QUIC handshake is the reachability probe.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use rtnetlink::MulticastGroup;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::addr::StaticPeer;

/// Quiet time after a netlink notice before looking: one change comes as a burst of notices.
const SETTLE: Duration = Duration::from_millis(200);
/// Longest wait for the upstream hosts to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(3);
/// When a look could not decide for a reason netlink does not announce (a name that did not
/// resolve), or netlink is unavailable, look again after this long.
const RECHECK: Duration = Duration::from_secs(30);

/// What the monitor concluded, for the bridge and for `basis status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WanView {
    /// A route to at least one upstream node leaves by an interface that is up.
    pub up: bool,
    /// The interface it leaves by.
    pub interface: Option<String>,
    /// Why it is down, or where it goes when up.
    pub detail: String,
    /// Unix time (seconds) of the last change of `up`.
    pub since: u64,
}

impl WanView {
    fn new(up: bool, interface: Option<String>, detail: String) -> WanView {
        WanView {
            up,
            interface,
            detail,
            since: unix_now(),
        }
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Starts the monitor; the receiver always holds the latest view.
pub(crate) fn start(
    peers: Vec<StaticPeer>,
    interface: Option<String>,
    stop: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> watch::Receiver<WanView> {
    let (tx, rx) = watch::channel(WanView::new(false, None, "not checked yet".into()));
    tasks.spawn(run(peers, interface, tx, stop));
    rx
}

async fn run(
    peers: Vec<StaticPeer>,
    interface: Option<String>,
    tx: watch::Sender<WanView>,
    stop: CancellationToken,
) {
    let groups = [
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv6Ifaddr,
        MulticastGroup::Ipv4Route,
        MulticastGroup::Ipv6Route,
    ];
    let mut notices = match rtnetlink::new_multicast_connection(&groups) {
        Ok((conn, _handle, messages)) => {
            tokio::spawn(conn);
            Some(messages)
        }
        Err(e) => {
            log::warn!(
                "cannot listen to netlink ({e}); the WAN state is checked every {} s instead",
                RECHECK.as_secs()
            );
            None
        }
    };
    loop {
        let Look {
            up,
            interface: iface,
            detail,
            decided,
        } = look(&peers, interface.as_deref()).await;
        tx.send_if_modified(|view| {
            if view.up == up && view.interface == iface && view.detail == detail {
                return false;
            }
            if view.up != up {
                if up {
                    log::info!("WAN up: {detail}");
                } else {
                    log::info!("WAN down: {detail}");
                }
                *view = WanView::new(up, iface, detail);
            } else {
                view.interface = iface;
                view.detail = detail;
            }
            true
        });
        let recheck = if decided && notices.is_some() {
            None
        } else {
            Some(RECHECK)
        };
        let waited = async {
            match (&mut notices, recheck) {
                (Some(n), None) => n.next().await.is_some(),
                (Some(n), Some(after)) => {
                    let _ = tokio::time::timeout(after, n.next()).await;
                    true
                }
                (None, Some(after)) => {
                    tokio::time::sleep(after).await;
                    true
                }
                (None, None) => true,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            alive = waited => {
                if !alive {
                    log::warn!("the netlink listener ended; the WAN state is checked every {} s instead", RECHECK.as_secs());
                    notices = None;
                }
            }
        }
        // Let the burst of notices of one change arrive, then look once.
        if let Some(n) = notices.as_mut() {
            let settle = tokio::time::sleep(SETTLE);
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    () = &mut settle => break,
                    more = n.next() => if more.is_none() { break },
                }
            }
        }
    }
}

/// What one look found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Look {
    /// A route to an upstream node leaves by an interface that is up.
    up: bool,
    /// That interface.
    interface: Option<String>,
    /// Where the route goes, or why there is none.
    detail: String,
    /// False when the answer may change without a netlink notice (a host name that did not
    /// resolve): look again after a while.
    decided: bool,
}

/// One look at the routes to the upstream nodes.
async fn look(peers: &[StaticPeer], want: Option<&str>) -> Look {
    let mut reasons = Vec::new();
    let mut decided = true;
    for peer in peers {
        let addrs: Vec<SocketAddr> = match tokio::time::timeout(
            RESOLVE_TIMEOUT,
            tokio::net::lookup_host((peer.host.as_str(), peer.port)),
        )
        .await
        {
            Ok(Ok(addrs)) => addrs.collect(),
            Ok(Err(e)) => {
                decided = false;
                reasons.push(format!("cannot resolve {}: {e}", peer.host));
                continue;
            }
            Err(_) => {
                decided = false;
                reasons.push(format!("resolving {} timed out", peer.host));
                continue;
            }
        };
        for addr in addrs {
            match route(addr, want) {
                Ok(iface) => {
                    return Look {
                        up: true,
                        detail: format!("{addr} is reached by {iface}"),
                        interface: Some(iface),
                        decided,
                    };
                }
                Err(reason) => reasons.push(reason),
            }
        }
    }
    if reasons.is_empty() {
        reasons.push("no upstream peers".into());
    }
    Look {
        up: false,
        interface: None,
        detail: reasons.join("; "),
        decided,
    }
}

/// The interface the kernel's route to `addr` leaves by, if it is up (and is `want`).
fn route(addr: SocketAddr, want: Option<&str>) -> Result<String, String> {
    let any: IpAddr = if addr.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind((any, 0)).map_err(|e| format!("{addr}: {e}"))?;
    // Connecting a UDP socket only picks a route and a source address; nothing is sent.
    socket
        .connect(addr)
        .map_err(|e| format!("no route to {addr}: {e}"))?;
    let source = socket
        .local_addr()
        .map_err(|e| format!("{addr}: {e}"))?
        .ip();
    let iface = interface_of(source).ok_or_else(|| {
        format!("the route to {addr} uses {source}, which no interface holds any more")
    })?;
    if let Some(want) = want
        && iface != want
    {
        return Err(format!(
            "the route to {addr} leaves by {iface}, not by the WAN interface {want}"
        ));
    }
    if !oper_up(&iface) {
        return Err(format!("{iface} (the way to {addr}) is down"));
    }
    Ok(iface)
}

fn interface_of(ip: IpAddr) -> Option<String> {
    if ip.is_loopback() {
        return Some("lo".into());
    }
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .find(|i| i.ip() == ip)
        .map(|i| i.name)
}

/// Whether the kernel says the interface can carry traffic (`operstate` up, or unknown as
/// for loopback and tunnels). Without sysfs, assume it can.
fn oper_up(iface: &str) -> bool {
    let path = format!("/sys/class/net/{iface}/operstate");
    match std::fs::read_to_string(path) {
        Ok(state) => matches!(state.trim(), "up" | "unknown"),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_a_route_that_is_up() {
        let addr: SocketAddr = "127.0.0.1:7464".parse().unwrap();
        assert_eq!(route(addr, None), Ok("lo".to_string()));
        let err = route(addr, Some("wwan0")).unwrap_err();
        assert!(err.contains("not by the WAN interface wwan0"), "{err}");
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_down_and_rechecked() {
        let peer: StaticPeer = "no-such-host.invalid:7464".parse().unwrap();
        let found = look(&[peer], None).await;
        assert!(!found.up && found.interface.is_none());
        assert!(
            found.detail.contains("no-such-host.invalid"),
            "{}",
            found.detail
        );
        assert!(!found.decided);
    }
}
