//! Resources: idle CPU of a node linked with three peers, beside a node with no federation
//! over the same minutes; and the size of this binary.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use super::nodes::{BenchNode, NodeSpec, cpu_secs};
use super::report::{Figure, Report};

/// Idle CPU over `window`.
pub async fn idle_cpu(report: &mut Report, window: Duration) -> Result<()> {
    let mut hub = BenchNode::prepare(&NodeSpec {
        federate: true,
        peers: vec![],
    })?;
    hub.start()?;
    let address = hub.peer_address().await?;
    let mut others = Vec::new();
    for _ in 0..3 {
        let mut n = BenchNode::prepare(&NodeSpec {
            federate: true,
            peers: vec![address.clone()],
        })?;
        n.start()?;
        others.push(n);
    }
    let mut alone = BenchNode::prepare(&NodeSpec::default())?;
    alone.start()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while hub.status().await?.peers_connected < 3 {
        if Instant::now() > deadline {
            bail!("the node did not link with its 3 peers within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the first reconciliations and peer exchange settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (h0, a0) = (cpu_secs(hub.pid()), cpu_secs(alone.pid()));
    tokio::time::sleep(window).await;
    let (h1, a1) = (cpu_secs(hub.pid()), cpu_secs(alone.pid()));
    let secs = window.as_secs_f64();
    if let (Some(h0), Some(h1), Some(a0), Some(a1)) = (h0, h1, a0, a1) {
        report.add(Figure::beside(
            "resources",
            &format!("idle CPU, node with 3 peers, {secs:.0} s"),
            (h1 - h0) / secs * 100.0,
            "% of a core",
            "node without federation",
            (a1 - a0) / secs * 100.0,
        ));
    }
    Ok(())
}

/// The size of this program's file.
pub fn binary_size(report: &mut Report) -> Result<()> {
    let exe = std::env::current_exe()?;
    let len = std::fs::metadata(&exe)?.len();
    report.add(Figure::alone(
        "resources",
        &format!(
            "binary size ({})",
            if cfg!(debug_assertions) {
                "debug build"
            } else {
                "release build, stripped"
            }
        ),
        len as f64 / 1024.0 / 1024.0,
        "MiB",
    ));
    Ok(())
}
