//! Latency, client to client across two nodes: a message posted to node 1's API, until it
//! arrives on a WebSocket of node 2; beside the same message's arrival on a WebSocket of
//! node 1 itself (no federation hop), and two stages of it apart: until the post is
//! acknowledged, and the hop from node 1's stream to node 2's. The room is unencrypted: nodes relay ciphertext and
//! plaintext alike, so encryption (done by clients) does not change this path.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use basis_core::{Body, MessageBody, RoomId};
use basis_e2ee::UserSecrets;
use futures_util::StreamExt;

use super::events::Signer;
use super::nodes::{BenchNode, NodeSpec};
use super::report::{Figure, Report};
use crate::client::node_client::{NodeClient, Stream};
use crate::node::wall_millis;

type Arrivals = Arc<Mutex<HashMap<String, Instant>>>;

fn follow(mut ws: Stream, arrivals: Arrivals) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(Ok(msg)) = ws.next().await {
            let at = Instant::now();
            let Ok(text) = msg.to_text() else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
                continue;
            };
            if let Some(id) = v["event"]["id"].as_str() {
                arrivals
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.to_string(), at);
            }
        }
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn millis(sent: &HashMap<String, Instant>, arrivals: &Arrivals) -> Vec<f64> {
    let got = arrivals.lock().unwrap_or_else(|p| p.into_inner());
    let mut v: Vec<f64> = sent
        .iter()
        .filter_map(|(id, t)| {
            got.get(id)
                .map(|a| a.duration_since(*t).as_secs_f64() * 1000.0)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

/// Posts `rate` messages a second for `secs` seconds; reports latency percentiles.
pub async fn run(report: &mut Report, rates: &[u32], secs: u64) -> Result<()> {
    let mut a = BenchNode::prepare(&NodeSpec {
        federate: true,
        peers: vec![],
    })?;
    a.start()?;
    let mut b = BenchNode::prepare(&NodeSpec {
        federate: true,
        peers: vec![a.peer_address().await?],
    })?;
    b.start()?;
    let user = UserSecrets::generate(wall_millis())?;
    let ca = Arc::new(NodeClient::sign_in(&a.api, &user).await?);
    let cb = NodeClient::sign_in(&b.api, &user).await?;
    let mut signer = Signer::new(user.signing_key());
    let create = signer.create_room("latency");
    let room: RoomId = ca.post_event(&create).await?.room.parse()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while cb.room(&room).await.is_err() {
        if Instant::now() > deadline {
            bail!("the room did not reach the second node within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for &rate in rates {
        let count = (u64::from(rate) * secs) as usize;
        let events: Vec<_> = (0..count)
            .map(|i| {
                signer.sign(
                    Some(room),
                    Body::Message(MessageBody::Text {
                        text: format!("latency probe {i}"),
                    }),
                )
            })
            .collect();
        let (near, far): (Arrivals, Arrivals) = Default::default();
        let near_task = follow(ca.stream(None).await?, near.clone());
        let far_task = follow(cb.stream(None).await?, far.clone());
        let (sent, acked): (Arrivals, Arrivals) = Default::default();
        let start = Instant::now();
        let mut posts = Vec::with_capacity(count);
        for (i, e) in events.into_iter().enumerate() {
            let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
            tokio::time::sleep_until(due.into()).await;
            let (client, sent, acked) = (ca.clone(), sent.clone(), acked.clone());
            posts.push(tokio::spawn(async move {
                let id = e.id().to_string();
                sent.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id.clone(), Instant::now());
                client.post_event(&e).await?;
                acked
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, Instant::now());
                anyhow::Ok(())
            }));
        }
        for p in posts {
            p.await.context("a post task failed")??;
        }
        let wait_until = Instant::now() + Duration::from_secs(60);
        while far.lock().unwrap_or_else(|p| p.into_inner()).len() < count
            && Instant::now() < wait_until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        near_task.abort();
        far_task.abort();
        let sent = sent.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // Where the time goes, stage by stage: the post acknowledged (validated and durable
        // on node 1), and the hop from node 1's stream to node 2's (federation push and
        // node 2's own commit).
        let ack = millis(&sent, &acked);
        let near_at = near.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let hop = millis(&near_at, &far);
        let (near, far) = (millis(&sent, &near), millis(&sent, &far));
        if far.len() < count {
            bail!(
                "only {} of {count} messages reached the second node",
                far.len()
            );
        }
        for (name, p) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
            report.add(Figure::beside(
                "latency",
                &format!("{rate} msg/s, node 1 -> node 2 stream, {name}"),
                percentile(&far, p),
                "ms",
                "node 1 -> node 1 stream (no hop)",
                percentile(&near, p),
            ));
        }
        for (stage, values) in [
            ("posted -> acknowledged by node 1", &ack),
            ("node 1 stream -> node 2 stream (the hop)", &hop),
        ] {
            for (name, p) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
                report.add(Figure::alone(
                    "latency",
                    &format!("{rate} msg/s, stage {stage}, {name}"),
                    percentile(values, p),
                    "ms",
                ));
            }
        }
    }
    Ok(())
}
