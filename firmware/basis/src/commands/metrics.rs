//! `basis metrics`: the running node's status in the Prometheus text exposition format
//! (version 0.0.4), for node_exporter's textfile collector or any scraper run on the board.
//! Not OpenMetrics: the textfile collector reads the Prometheus format, where a counter's
//! family is named with its `_total` suffix and there is no `# EOF` line.

use anyhow::{Context, Result};
use prometheus_client::encoding::prometheus_text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::control::client::Client;
use crate::settings::Settings;
use basis_api::admin::Status;

type Labels = Vec<(&'static str, String)>;

fn gauge(registry: &mut Registry, name: &str, help: &str, value: i64) {
    let g: Gauge = Gauge::default();
    g.set(value);
    registry.register(name, help, g);
}

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let c: Counter = Counter::default();
    c.inc_by(value);
    registry.register(name, help, c);
}

/// A labelled family of gauges, registered only when `present`: a family that will get no
/// sample would show a metric with no value.
fn family(registry: &mut Registry, name: &str, help: &str, present: bool) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    if present {
        registry.register(name, help, f.clone());
    }
    f
}

/// A labelled family of counters, registered only when `present` (see [`family`]).
fn counters(
    registry: &mut Registry,
    name: &str,
    help: &str,
    present: bool,
) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    if present {
        registry.register(name, help, f.clone());
    }
    f
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The metrics text for a status.
pub fn render(status: &Status) -> Result<String> {
    let mut r = Registry::default();
    gauge(&mut r, "basis_events", "Events held", as_i64(status.events));
    gauge(
        &mut r,
        "basis_event_bytes",
        "Bytes of the events held",
        as_i64(status.event_bytes),
    );
    gauge(
        &mut r,
        "basis_store_bytes",
        "Bytes of the database files",
        as_i64(status.store_bytes),
    );
    counter(
        &mut r,
        "basis_refused_events",
        "Events refused as invalid since start",
        status.refused,
    );
    gauge(
        &mut r,
        "basis_peers_linked",
        "LAN peers linked now",
        as_i64(status.peers_connected as u64),
    );
    gauge(
        &mut r,
        "basis_uptime_seconds",
        "Seconds since the node started",
        as_i64(status.uptime_secs),
    );
    if let Some(bridge) = &status.bridge {
        gauge(
            &mut r,
            "basis_wan_up",
            "1 when a route to an upstream node leaves by an interface that is up",
            i64::from(bridge.wan.up),
        );
        let upstreams = !bridge.upstreams.is_empty();
        let rooms = !bridge.rooms.is_empty();
        let linked = family(
            &mut r,
            "basis_upstream_linked",
            "1 when the upstream node is linked",
            upstreams,
        );
        let rtt: Family<Labels, Gauge<f64, AtomicU64>> = Family::default();
        if bridge.upstreams.iter().any(|up| up.rtt_ms.is_some()) {
            r.register(
                "basis_upstream_rtt_seconds",
                "Round-trip time to the upstream node",
                rtt.clone(),
            );
        }
        let up_sent = counters(
            &mut r,
            "basis_upstream_events_sent",
            "Events sent to the upstream node since start",
            upstreams,
        );
        let up_received = counters(
            &mut r,
            "basis_upstream_events_received",
            "Events received from the upstream node since start",
            upstreams,
        );
        for up in &bridge.upstreams {
            let l: Labels = vec![("node", up.node_id.clone())];
            linked.get_or_create(&l).set(i64::from(
                up.state == basis_api::node::UpstreamState::Linked,
            ));
            if let Some(ms) = up.rtt_ms {
                rtt.get_or_create(&l).set(ms / 1000.0);
            }
            up_sent.get_or_create(&l).inc_by(up.events_sent);
            up_received.get_or_create(&l).inc_by(up.events_received);
        }
        let backlog = family(
            &mut r,
            "basis_bridge_backlog_events",
            "Events of the room waiting to go upstream",
            rooms,
        );
        let backlog_bytes = family(
            &mut r,
            "basis_bridge_backlog_bytes",
            "Bytes of the events of the room waiting to go upstream",
            rooms,
        );
        let down = family(
            &mut r,
            "basis_bridge_downlink_backlog_events",
            "Events of the room upstream holds that have not come down yet",
            rooms,
        );
        let limit = family(
            &mut r,
            "basis_bridge_budget_bytes_per_hour",
            "The room's hourly byte budget (absent: no limit)",
            bridge
                .rooms
                .iter()
                .any(|room| room.budget_bytes_per_hour.is_some()),
        );
        let used = family(
            &mut r,
            "basis_bridge_budget_used_bytes",
            "Bytes of the room that crossed the WAN in the last hour",
            rooms,
        );
        let spent = family(
            &mut r,
            "basis_bridge_budget_exhausted",
            "1 when the budget stopped the room's traffic",
            rooms,
        );
        let sent = counters(
            &mut r,
            "basis_bridge_sent_bytes",
            "Bytes of the room's events sent upstream since start",
            rooms,
        );
        let received = counters(
            &mut r,
            "basis_bridge_received_bytes",
            "Bytes of the room's events received from upstream since start",
            rooms,
        );
        let waiting = family(
            &mut r,
            "basis_bridge_files_waiting",
            "Files of the room upstream asked for that the budget held back",
            rooms,
        );
        let file_sent = counters(
            &mut r,
            "basis_bridge_file_sent_bytes",
            "Bytes of the room's file chunks and lists sent upstream since start",
            rooms,
        );
        let file_received = counters(
            &mut r,
            "basis_bridge_file_received_bytes",
            "Bytes of the room's file chunks and lists received from upstream since start",
            rooms,
        );
        for room in &bridge.rooms {
            let l: Labels = vec![("room", room.room.clone())];
            backlog.get_or_create(&l).set(as_i64(room.backlog_events));
            backlog_bytes
                .get_or_create(&l)
                .set(as_i64(room.backlog_bytes));
            down.get_or_create(&l)
                .set(as_i64(room.downlink_backlog_events));
            if let Some(b) = room.budget_bytes_per_hour {
                limit.get_or_create(&l).set(as_i64(b));
            }
            used.get_or_create(&l).set(as_i64(room.budget_used_bytes));
            spent
                .get_or_create(&l)
                .set(i64::from(room.budget_exhausted));
            sent.get_or_create(&l).inc_by(room.sent_bytes);
            received.get_or_create(&l).inc_by(room.received_bytes);
            waiting.get_or_create(&l).set(as_i64(room.files_waiting));
            file_sent.get_or_create(&l).inc_by(room.file_bytes_sent);
            file_received
                .get_or_create(&l)
                .inc_by(room.file_bytes_received);
        }
    }
    let mut text = String::new();
    encode(&mut text, &r).context("cannot encode the metrics")?;
    Ok(text)
}

/// Asks the node for its status and prints it as metrics.
pub async fn run(settings: &Settings) -> Result<()> {
    let mut client = Client::connect(&settings.socket).await?;
    let status = client.status().await?;
    print!("{}", render(&status)?);
    Ok(())
}
