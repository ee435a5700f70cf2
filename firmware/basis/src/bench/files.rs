//! Files: one file crossing from one node to another on loopback (two `basis run` processes,
//! an eager room): its rate beside raw quinn moving the same bytes, the bytes the receiving
//! node wrote to disk per byte of file, and how much the receiving node's memory grew while
//! it crossed. The file is uploaded through the client API of the first node, sealed as a
//! client seals it, and never held whole in memory anywhere.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use basis_api::files::FileState;
use basis_core::file::CHUNK_SIZE;
use basis_core::{BlobRef, Body, ChunkList, FileDescriptor, History, MessageBody, RoomCreate};
use basis_e2ee::UserSecrets;
use basis_e2ee::file::{ChunkSealer, FileKey};

use super::backfill::quinn_rate;
use super::nodes::{BenchNode, NodeSpec, status_kib, written_bytes};
use super::report::{Figure, Report};
use crate::client::compose::Composer;
use crate::client::node_client::NodeClient;
use crate::node::wall_millis;

const MIB: u64 = 1024 * 1024;

/// Plaintext chunk `index` of the benchmark file: bytes that neither repeat nor compress.
fn plain_chunk(layout: &BlobRef, index: u64, buf: &mut Vec<u8>) -> Result<()> {
    let len = layout.plain_len(index)? as usize;
    buf.resize(len, 0);
    let mut x = index.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in buf.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    Ok(())
}

/// Seals the file once for its chunk list.
fn chunk_list(key: &FileKey, size: u64) -> Result<ChunkList> {
    let layout = BlobRef {
        address: [0; 32],
        size,
        chunk_size: CHUNK_SIZE,
    };
    let mut sealer = ChunkSealer::new(key.clone(), size, CHUNK_SIZE)?;
    let mut buf = Vec::new();
    for i in 0..layout.chunk_count() {
        plain_chunk(&layout, i, &mut buf)?;
        sealer.seal_next(&buf)?;
    }
    Ok(sealer.finish()?)
}

/// The file figures for a file of `size_mib` MiB.
pub async fn run(report: &mut Report, size_mib: u64) -> Result<()> {
    let size = size_mib * MIB;
    let limit = format!(
        "[files]\nmax_file_mib = {}\nquota_mib = {}\n",
        size_mib.max(1),
        size_mib * 2 + 64
    );
    let mut a = BenchNode::prepare(&NodeSpec {
        federate: true,
        peers: vec![],
    })?;
    a.add_config(&limit)?;
    a.start()?;
    let mut b = BenchNode::prepare(&NodeSpec {
        federate: true,
        peers: vec![a.peer_address().await?],
    })?;
    b.add_config(&limit)?;
    b.start()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while b.status().await?.peers_connected < 1 {
        if Instant::now() > deadline {
            bail!("the nodes did not link within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A user makes a room on node a and uploads the file there, sealed.
    let user = UserSecrets::generate(wall_millis())?;
    let on_a = NodeClient::sign_in(&a.api, &user).await?;
    let mut composer = Composer::new(&user, on_a.status().await?.time);
    let create = composer.sign(
        None,
        Vec::new(),
        Body::Create(RoomCreate {
            name: "bench".into(),
            encrypted: false,
            history: History::SinceJoin,
        }),
    );
    on_a.post_event(&create).await?;
    let key = FileKey::generate()?;
    let list = {
        let key = key.clone();
        tokio::task::spawn_blocking(move || chunk_list(&key, size)).await??
    };
    let blob = list.blob_ref();
    on_a.put_file_list(&list).await?;
    let mut sealer = ChunkSealer::new(key.clone(), size, CHUNK_SIZE)?;
    let mut buf = Vec::new();
    for i in 0..blob.chunk_count() {
        plain_chunk(&blob, i, &mut buf)?;
        let (cipher, _) = sealer.seal_next(&buf)?;
        on_a.put_file_chunk(&blob.address, i, cipher).await?;
    }
    let room = on_a
        .rooms()
        .await?
        .into_iter()
        .next()
        .context("the room is not on node a")?;

    // Node b: its memory and disk writes before the message that makes it fetch the file.
    let on_b = NodeClient::sign_in(&b.api, &user).await?;
    let pid = b.pid();
    let rss_before = status_kib(pid, "VmRSS:").unwrap_or(0);
    let written_before = written_bytes(&pid.to_string());
    let message = composer.sign_in_room(
        &room,
        Body::Message(MessageBody::Attachment(FileDescriptor {
            blob,
            name: "bench.bin".into(),
            media_type: "application/octet-stream".into(),
            key: *key.as_bytes(),
            preview: None,
        })),
    );
    let start = Instant::now();
    on_a.post_event(&message).await?;
    let mut peak = rss_before;
    let deadline = Instant::now() + Duration::from_secs(600 + size_mib * 2);
    loop {
        peak = peak.max(status_kib(pid, "VmRSS:").unwrap_or(0));
        // Node b fetches on its own (an eager room); asking only reads where it stands.
        if let Some(info) = on_b.file(&blob.address).await.ok().flatten()
            && info.state == FileState::Complete
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the file did not cross within {:?}", start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = start.elapsed().as_secs_f64();
    let written = written_bytes(&pid.to_string())
        .zip(written_before)
        .map(|(after, before)| after.saturating_sub(before));
    let quinn = quinn_rate(blob.stored_bytes() as usize).await?;
    report.add(Figure::beside(
        "files",
        &format!("a {size_mib} MiB file node to node on loopback"),
        size as f64 / MIB as f64 / secs,
        "MiB/s",
        "raw quinn stream, same bytes",
        quinn / MIB as f64,
    ));
    if let Some(w) = written {
        report.add(Figure::beside(
            "files",
            "bytes the receiving node wrote to disk per byte of file",
            w as f64 / size as f64,
            "bytes",
            "goal",
            1.1,
        ));
    }
    report.add(Figure::beside(
        "files",
        &format!("RSS growth of the receiving node while {size_mib} MiB cross"),
        peak.saturating_sub(rss_before) as f64 / 1024.0,
        "MiB",
        "goal (for 1 GiB)",
        32.0,
    ));
    Ok(())
}
