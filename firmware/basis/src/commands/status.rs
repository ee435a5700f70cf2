//! `basis status`: what the running node says about itself.

use anyhow::{Context, Result};

use crate::control::Request;
use crate::control::client::Client;
use crate::settings::Settings;

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Asks the node for its status and prints it.
pub async fn run(settings: &Settings, json: bool) -> Result<()> {
    let mut client = Client::connect(&settings.socket).await?;
    let reply = client.call_ok(&Request::Status).await?;
    let status = reply.status.context("the node sent no status")?;
    if json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
    println!("node        {} ({})", status.node_id, status.name);
    println!("version     {}", status.version);
    println!("uptime      {} s", status.uptime_secs);
    println!("data        {}", status.data_dir);
    println!(
        "events      {} ({} of events, {} on disk)",
        status.events,
        human_bytes(status.event_bytes),
        human_bytes(status.store_bytes)
    );
    println!("refused     {}", status.refused);
    if status.federation_tag.is_empty() {
        println!("federation  off (no federation.secret and no federation.allow)");
    } else {
        println!(
            "federation  tag {} ({} peers linked)",
            status.federation_tag, status.peers_connected
        );
    }
    for address in &status.listening {
        println!("listening   {address}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
