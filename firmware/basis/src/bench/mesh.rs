//! Many boards on one LAN: `n` nodes on loopback, each linked to every other (static peers,
//! a full mesh), and a client posting messages to each node in turn. Figures: how many
//! copies of each event a node receives, beside its number of links (plain flooding's
//! count); the CPU each node spends per event, beside one event's full check (id and
//! signature) measured in this process; and how long until every node holds every message.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use basis_core::validate::validate;
use basis_core::{Body, MessageBody, RoomId};
use basis_e2ee::UserSecrets;

use super::events::Signer;
use super::nodes::{BenchNode, NodeSpec, cpu_secs};
use super::report::{Figure, Report};
use crate::client::node_client::NodeClient;
use crate::control::client::Client;
use crate::node::wall_millis;

/// How long the mesh may take to link, and then to converge.
const LIMIT: Duration = Duration::from_secs(180);

/// Events received from all peers so far, by the node's own count.
async fn received(node: &BenchNode) -> Result<u64> {
    let mut c = Client::connect(&node.data().join("control.sock")).await?;
    Ok(c.peers().await?.iter().map(|p| p.events_received).sum())
}

/// Total CPU seconds of the nodes so far.
fn cpu(nodes: &[BenchNode]) -> f64 {
    nodes.iter().filter_map(|n| cpu_secs(n.pid())).sum()
}

/// Waits until `done` holds for every node, polling every 50 ms.
async fn every_node(
    nodes: &[BenchNode],
    what: &str,
    done: impl Fn(&basis_api::admin::Status) -> bool,
) -> Result<()> {
    let deadline = Instant::now() + LIMIT;
    loop {
        let mut all = true;
        for n in nodes {
            if !done(&n.status().await?) {
                all = false;
                break;
            }
        }
        if all {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{what}: not within {} s", LIMIT.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Microseconds one event's full check takes here (id and signature), over `events`.
fn check_micros(events: &[Vec<u8>]) -> f64 {
    let rounds = (2000 / events.len().max(1)).max(1);
    let start = Instant::now();
    let mut ok = 0usize;
    for _ in 0..rounds {
        for raw in events {
            ok += usize::from(validate(raw).is_ok());
        }
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / (rounds * events.len()).max(1) as f64;
    std::hint::black_box(ok);
    per
}

/// Runs `n` nodes in a full mesh and posts `messages` messages across them.
pub async fn run(report: &mut Report, n: usize, messages: usize) -> Result<()> {
    println!("(starting {n} nodes in a full mesh)");
    let mut nodes: Vec<BenchNode> = Vec::with_capacity(n);
    for _ in 0..n {
        let mut peers = Vec::with_capacity(nodes.len());
        for other in &nodes {
            peers.push(other.peer_address().await?);
        }
        let mut node = BenchNode::prepare(&NodeSpec {
            federate: true,
            peers,
        })?;
        node.start()?;
        nodes.push(node);
    }
    every_node(&nodes, "every node linked to every other", |s| {
        s.peers_connected + 1 >= n
    })
    .await?;

    let user = UserSecrets::generate(wall_millis())?;
    let mut clients = Vec::with_capacity(n);
    for node in &nodes {
        clients.push(NodeClient::sign_in(&node.api, &user).await?);
    }
    let mut signer = Signer::new(user.signing_key());
    let create = signer.create_room("mesh");
    let room: RoomId = clients[0].post_event(&create).await?.room.parse()?;
    let events: Vec<_> = (0..messages)
        .map(|i| {
            signer.sign(
                Some(room),
                Body::Message(MessageBody::Text {
                    text: format!("mesh message {i}: the north road is open again"),
                }),
            )
        })
        .collect();
    let raws: Vec<Vec<u8>> = events.iter().map(|e| e.to_bytes()).collect();
    let held = nodes[0].status().await?.events;
    every_node(&nodes, "the room reaches every node", |s| s.events >= held).await?;

    let mut before = Vec::with_capacity(n);
    for node in &nodes {
        before.push(received(node).await?);
    }
    let cpu_before = cpu(&nodes);
    let start = Instant::now();
    for (i, e) in events.iter().enumerate() {
        clients[i % n]
            .post_event(e)
            .await
            .with_context(|| format!("posting message {i}"))?;
    }
    let expected = held + messages as u64;
    every_node(&nodes, "every message reaches every node", |s| {
        s.events >= expected
    })
    .await?;
    let converged = start.elapsed().as_secs_f64();
    // Copies still in flight when the last node got the last message arrive now.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_spent = cpu(&nodes) - cpu_before;
    let mut copies = 0u64;
    for (node, b) in nodes.iter().zip(&before) {
        copies += received(node).await?.saturating_sub(*b);
    }
    let deliveries = (messages * n) as f64;
    let check = tokio::task::spawn_blocking(move || check_micros(&raws)).await?;

    report.add(Figure::beside(
        "mesh",
        &format!("copies of each event a node receives, {n} nodes in full mesh"),
        copies as f64 / deliveries,
        "copies",
        "links per node (flooding)",
        (n - 1) as f64,
    ));
    report.add(Figure::beside(
        "mesh",
        &format!("CPU per event per node, {n} nodes"),
        cpu_spent * 1e6 / deliveries,
        "µs",
        "one event's full check (id, signature)",
        check,
    ));
    report.add(Figure::alone(
        "mesh",
        &format!("{messages} messages posted across {n} nodes, until all nodes hold them"),
        converged,
        "s",
    ));
    Ok(())
}
