//! Turns the `[federation]` configuration into the settings of the federation service.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use basis_core::{NodeId, NodeKey};
use basis_net::{FederationSettings, StaticPeer};
use basis_proto::FederationKey;

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

/// The federation settings, or `None` when the node has neither a secret nor an allow list.
pub fn settings(
    settings: &Settings,
    key: NodeKey,
    name: &str,
) -> Result<Option<FederationSettings>> {
    let f = &settings.config.federation;
    let federation = secret(settings)?.map(|s| FederationKey::from_secret(s.as_bytes()));
    let allow = f
        .allow
        .iter()
        .map(|id| id.parse::<NodeId>())
        .collect::<Result<Vec<_>, _>>()
        .context("federation.allow holds something that is not a node id")?;
    if federation.is_none() && allow.is_empty() {
        return Ok(None);
    }
    let static_peers = f
        .peers
        .iter()
        .map(|p| p.parse::<StaticPeer>().map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()
        .context("federation.peers")?;
    Ok(Some(FederationSettings {
        key,
        name: name.to_string(),
        federation,
        allow,
        port: f.port,
        static_peers,
        mdns: f.mdns,
        reconcile_every: Duration::from_secs(f.reconcile_secs),
        max_peers: f.max_peers,
        peer_rate: f.peer_rate_kib.saturating_mul(1024),
        api_port: None,
    }))
}
