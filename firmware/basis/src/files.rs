//! The node's files: the blob store beside the database, the rooms' file policy
//! (`[files]` in the configuration) and the retention that expires chunks with their
//! messages.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use basis_config::FilesConfig;
use basis_core::RoomId;
use basis_core::encoding::decode_event;
use basis_core::room::RoomState;
use basis_proto::FilePolicy;
use basis_store::{BlobStore, Readers};

use crate::node::NodeFiles;

/// How long a file no message names yet is kept: an upload is stored before the message that
/// names it, and an interrupted upload stays this long for its sender to resume.
pub const UPLOAD_GRACE: Duration = Duration::from_secs(24 * 3600);

const MIB: u64 = 1024 * 1024;

/// Opens (creating) the blob store in `<data_dir>/blobs` with the configured quota.
pub fn open(data_dir: &Path, config: &FilesConfig) -> Result<NodeFiles> {
    let dir = data_dir.join("blobs");
    let (blobs, report) = BlobStore::open(&dir, Some(config.quota_mib.saturating_mul(MIB)))
        .with_context(|| format!("cannot open the file store {}", dir.display()))?;
    if report.leftovers_removed > 0 {
        log::info!(
            "files: removed {} pieces of writes a stop interrupted",
            report.leftovers_removed
        );
    }
    log::info!(
        "files: {} holds {} bytes of {} MiB",
        dir.display(),
        report.used_bytes,
        config.quota_mib
    );
    Ok(NodeFiles {
        blobs: Arc::new(blobs),
        max_file_bytes: config.max_file_mib.saturating_mul(MIB),
    })
}

/// A room's file policy: lazy when listed in `files.lazy_rooms` or when it has more than
/// `files.eager_max_members` joined members, eager otherwise.
pub fn policy(config: &FilesConfig, room: RoomId, joined: usize) -> FilePolicy {
    let listed = config.lazy_rooms.iter().any(|r| *r == room.to_string());
    if listed || joined > config.eager_max_members {
        FilePolicy::Lazy
    } else {
        FilePolicy::Eager
    }
}

/// Joined members of `room` by the state events this node holds (0 when unreadable).
fn joined(readers: &Readers, room: &RoomId) -> usize {
    let Ok(raw) = readers.state_events(Some(room)) else {
        return 0;
    };
    let events: Vec<_> = raw.iter().filter_map(|b| decode_event(b).ok()).collect();
    RoomState::from_events(events.iter()).joined().count()
}

/// The policy function the federation asks, reading room membership from the store.
pub fn policy_fn(config: FilesConfig, readers: Arc<Readers>) -> Box<basis_net::PolicyFn> {
    Box::new(move |room| policy(&config, room, joined(&readers, &room)))
}

/// Removes the files no stored message names any more (after expiry removed messages),
/// sparing uploads younger than [`UPLOAD_GRACE`]. Returns the bytes freed.
pub fn retain(readers: &Readers, blobs: &BlobStore) -> Result<u64> {
    let live: HashSet<[u8; 32]> = readers
        .blob_refs()
        .context("cannot read which files messages name")?
        .into_iter()
        .map(|u| u.blob.address)
        .collect();
    blobs
        .retain(&live, UPLOAD_GRACE)
        .context("cannot remove expired files")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_and_big_rooms_are_lazy() {
        let room = RoomId([7; 32]);
        let mut config = FilesConfig::default();
        assert_eq!(policy(&config, room, 3), FilePolicy::Eager);
        assert_eq!(policy(&config, room, 65), FilePolicy::Lazy);
        config.lazy_rooms.push(room.to_string());
        assert_eq!(policy(&config, room, 3), FilePolicy::Lazy);
        config.lazy_rooms.clear();
        config.eager_max_members = 0;
        assert_eq!(policy(&config, room, 1), FilePolicy::Lazy);
    }
}
