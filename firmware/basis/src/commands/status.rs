//! `basis status`: what the running node says about itself.

use anyhow::Result;

use crate::client::render;
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
    let status = client.status().await?;
    if json {
        println!("{}", serde_json::to_string(&status)?);
        return Ok(());
    }
    println!("node        {} ({})", status.node_id, status.name);
    println!("version     {}", status.version);
    println!("uptime      {}", span(status.uptime_secs));
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
    for p in &status.peers_refused {
        println!(
            "refused     node {} ({}) at {}: {}",
            render::prefix(&p.node_id, 8),
            p.name,
            p.addresses.first().map(String::as_str).unwrap_or("?"),
            p.hint.as_deref().unwrap_or("not admitted")
        );
    }
    for address in &status.listening {
        println!("listening   {address}");
    }
    for url in &status.api_urls {
        println!("client API  {url}");
    }
    if let Some(bridge) = &status.bridge {
        print_bridge(bridge);
    }
    Ok(())
}

/// A length of time in whole seconds as people read it: `45s`, `3m 9s`, `27h 46m 40s`.
pub(crate) fn span(secs: u64) -> String {
    let secs = i64::try_from(secs).unwrap_or(i64::MAX);
    format!("{:#}", jiff::SignedDuration::from_secs(secs))
}

/// How long ago a wall-clock time (Unix seconds) was, as [`span`] writes it.
pub(crate) fn ago(unix: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(unix);
    format!("{} ago", span(now.saturating_sub(unix)))
}

fn print_bridge(bridge: &basis_api::admin::Bridge) {
    let wan = &bridge.wan;
    println!(
        "wan         {} since {} ({})",
        if wan.up { "up" } else { "down" },
        ago(wan.since),
        wan.detail
    );
    for up in &bridge.upstreams {
        // An unreachable or refused node says why in the state itself.
        let state = match (&up.last_error, up.state.has_reason()) {
            (Some(why), true) => format!("{}: {why}", up.state.as_str()),
            _ => up.state.as_str().to_string(),
        };
        let mut line = format!(
            "upstream    {} {} {state} since {}",
            render::prefix(&up.node_id, 8),
            up.host,
            ago(up.since)
        );
        if let Some(rtt) = up.rtt_ms {
            line.push_str(&format!(", rtt {rtt:.0} ms"));
        }
        line.push_str(&format!(
            ", {} events sent, {} received",
            up.events_sent, up.events_received
        ));
        if !up.state.has_reason()
            && up.state != basis_api::node::UpstreamState::Linked
            && let Some(e) = &up.last_error
        {
            line.push_str(&format!(" (last error: {e})"));
        }
        println!("{line}");
    }
    if bridge.rooms.is_empty() {
        println!("bridged     no rooms (add [upstream.rooms.<room id>] to the configuration)");
    }
    for room in &bridge.rooms {
        let direction = match (room.uplink, room.downlink) {
            (true, true) => "up+down",
            (true, false) => "up only",
            _ => "down only",
        };
        let budget = match room.budget_bytes_per_hour {
            Some(limit) => {
                let mut b = format!(
                    "budget {} of {}/h used",
                    human_bytes(room.budget_used_bytes),
                    human_bytes(limit)
                );
                if room.budget_exhausted {
                    b.push_str(", SPENT");
                    if let Some(secs) = room.budget_frees_in_secs {
                        b.push_str(&format!(", more in {secs} s"));
                    }
                }
                b
            }
            None => format!(
                "no budget, {} in the last hour",
                human_bytes(room.budget_used_bytes)
            ),
        };
        let backlog = if room.uplink {
            format!(
                "{}{} events ({}) waiting to go up",
                if room.backlog_exact { "" } else { "at most " },
                room.backlog_events,
                human_bytes(room.backlog_bytes)
            )
        } else {
            "nothing goes up".into()
        };
        let files = match room.files_waiting {
            0 => String::new(),
            1 => "; 1 file held back by the budget".into(),
            n => format!("; {n} files held back by the budget"),
        };
        println!(
            "bridged     room {} {direction}, priority {}, {budget}; {backlog}{files}; {} to come down",
            &room.room[..room.room.len().min(8)],
            room.priority,
            room.downlink_backlog_events
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{human_bytes, span};

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn spans_read_as_people_write_them() {
        assert_eq!(span(0), "0s");
        assert_eq!(span(45), "45s");
        assert_eq!(span(189), "3m 9s");
        assert_eq!(span(100_000), "27h 46m 40s");
        assert!(!span(u64::MAX).is_empty());
    }
}
