//! Turns the `[federation]` configuration into the settings of the federation service.

use std::io::ErrorKind;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;

use basis_core::{NodeId, NodeKey, RoomId};
use basis_net::{FederationSettings, StaticPeer, UpstreamSettings};
use basis_proto::FederationKey;
use basis_proto::bridge::RoomPolicy;

use crate::settings::Settings;

/// Reads the secret from the configuration or its file (first line, trimmed).
fn secret(settings: &Settings) -> Result<Option<String>> {
    let f = &settings.config.federation;
    if f.secret.is_set() {
        return Ok(Some(f.secret.0.clone()));
    }
    if f.secret_file.as_os_str().is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&f.secret_file).with_context(|| {
        format!(
            "cannot read federation.secret_file {}",
            f.secret_file.display()
        )
    })?;
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if line.len() < 8 {
        bail!(
            "the federation secret in {} must be at least 8 characters long",
            f.secret_file.display()
        );
    }
    Ok(Some(line))
}

/// Peers as `host:port` or `NODEID@host:port`, from the configuration key `key`.
fn parse_peers(list: &[String], key: &'static str) -> Result<Vec<StaticPeer>> {
    list.iter()
        .map(|p| p.parse::<StaticPeer>().map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()
        .context(key)
}

/// The upstream bridge settings, or `None` when no upstream peer is configured.
fn upstream(settings: &Settings) -> Result<Option<UpstreamSettings>> {
    let u = &settings.config.upstream;
    if u.peers.is_empty() {
        return Ok(None);
    }
    let peers = parse_peers(&u.peers, "upstream.peers")?;
    let mut rooms = BTreeMap::new();
    for (id, policy) in &u.rooms {
        let room: RoomId = id
            .parse()
            .with_context(|| format!("upstream.rooms: {id:?} is not a room id"))?;
        rooms.insert(
            room,
            RoomPolicy {
                uplink: policy.uplink,
                downlink: policy.downlink,
                budget_per_hour: (policy.budget_bytes_per_hour > 0)
                    .then_some(policy.budget_bytes_per_hour),
                priority: policy.priority,
            },
        );
    }
    Ok(Some(UpstreamSettings {
        peers,
        wan_interface: (u.wan_interface != "auto").then(|| u.wan_interface.clone()),
        reconcile_every: Duration::from_secs(u.reconcile_secs),
        rooms,
        state_file: Some(settings.data_dir.join("bridge.json")),
    }))
}

/// What the configuration asks of the federation, read and checked before the node makes its
/// key or database: the secret (from its file), the allow list, the static and upstream peers.
pub struct Plan {
    federation: Option<FederationKey>,
    allow: Vec<NodeId>,
    static_peers: Vec<StaticPeer>,
    upstream: Option<UpstreamSettings>,
}

/// The federation the configuration asks for, or `None` when the node has neither a secret,
/// nor an allow list, nor an upstream peer.
pub fn plan(settings: &Settings) -> Result<Option<Plan>> {
    for warning in basis_config::warnings(&settings.config) {
        log::warn!("configuration: {warning}");
    }
    let f = &settings.config.federation;
    let federation = secret(settings)?.map(|s| FederationKey::from_secret(s.as_bytes()));
    let allow = f
        .allow
        .iter()
        .map(|id| id.parse::<NodeId>())
        .collect::<Result<Vec<_>, _>>()
        .context("federation.allow holds something that is not a node id")?;
    let upstream = upstream(settings)?;
    if federation.is_none() && allow.is_empty() && upstream.is_none() {
        return Ok(None);
    }
    let static_peers = parse_peers(&f.peers, "federation.peers")?;
    Ok(Some(Plan {
        federation,
        allow,
        static_peers,
        upstream,
    }))
}

/// Checks that the federation's UDP port is free, the way `basis-net` binds it (`[::]`, else
/// `0.0.0.0` where IPv6 is off), so that a node that cannot federate says so before it makes
/// a key or a database. Port 0 (any) is always free.
pub fn check_port(settings: &Settings) -> Result<()> {
    let port = settings.config.federation.port;
    if port == 0 {
        return Ok(());
    }
    let v6 = std::net::UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, port));
    let result = match v6 {
        Err(e) if e.kind() != ErrorKind::AddrInUse => {
            std::net::UdpSocket::bind((std::net::Ipv4Addr::UNSPECIFIED, port))
        }
        other => other,
    };
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AddrInUse => bail!(
            "cannot listen for federation on UDP port {port}: the port is in use (by another basis node?); give this node another one with --set federation.port={}",
            port.wrapping_add(1).max(1)
        ),
        Err(e) => {
            Err(e).with_context(|| format!("cannot listen for federation on UDP port {port}"))
        }
    }
}

impl Plan {
    /// The settings of the federation service, for a node with this key and name.
    pub fn into_settings(
        self,
        settings: &Settings,
        key: NodeKey,
        name: &str,
    ) -> FederationSettings {
        let f = &settings.config.federation;
        FederationSettings {
            key,
            name: name.to_string(),
            federation: self.federation,
            allow: self.allow,
            port: f.port,
            static_peers: self.static_peers,
            mdns: f.mdns,
            reconcile_every: Duration::from_secs(f.reconcile_secs),
            max_peers: f.max_peers,
            peer_rate: f.peer_rate_kib.saturating_mul(1024),
            api_port: None,
            upstream: self.upstream,
        }
    }
}
