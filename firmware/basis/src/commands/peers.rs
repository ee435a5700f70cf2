//! `basis peers`: the other nodes this node knows.

use anyhow::Result;
use basis_api::node::PeerState;

use crate::client::render;
use crate::control::client::Client;
use crate::settings::Settings;

fn ago(unix_secs: Option<u64>) -> String {
    unix_secs.map_or_else(|| "never".into(), super::status::ago)
}

/// Asks the node for its peers and prints them.
pub async fn run(settings: &Settings, json: bool) -> Result<()> {
    let mut client = Client::connect(&settings.socket).await?;
    let peers = client.peers().await?;
    if json {
        println!("{}", serde_json::to_string(&peers)?);
        return Ok(());
    }
    if peers.is_empty() {
        println!("no peers known yet");
        return Ok(());
    }
    println!(
        "{:<10} {:<16} {:<12} {:>8} {:>12} {:>8} {:>8} {:>5}  {:<22} found",
        "node", "name", "state", "rtt", "reconciled", "sent", "recv", "score", "address"
    );
    for p in &peers {
        let found: Vec<String> = p
            .found
            .iter()
            .map(|f| format!("{f:?}").to_lowercase())
            .collect();
        println!(
            "{:<10} {:<16} {:<12} {:>8} {:>12} {:>8} {:>8} {:>5}  {:<22} {}",
            render::prefix(&p.node_id, 8),
            p.name.chars().take(16).collect::<String>(),
            p.state.as_str(),
            p.rtt_ms.map_or("-".into(), |ms| format!("{ms:.1}ms")),
            ago(p.last_reconciled),
            p.events_sent,
            p.events_received,
            p.score,
            p.addresses.first().map(String::as_str).unwrap_or("-"),
            found.join(",")
        );
        if let Some(hint) = &p.hint {
            println!("{:<10} {hint}", "");
        }
        if let Some(e) = &p.last_error
            && p.state != PeerState::Connected
        {
            println!("{:<10} last error: {e}", "");
        }
    }
    Ok(())
}
