//! Files: uploading a file's chunk list and ciphertext chunks, and reading where a file
//! stands on a node and its chunks back (`docs/CLIENT-API.md` "Files").
//!
//! The node only ever sees ciphertext: clients seal a file with `basis_e2ee::file` before the
//! upload and open it after the download; the key travels inside the room's encryption.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Most missing chunk indices a [`FileInfo`] lists.
pub const MAX_MISSING_LISTED: usize = 64;

/// Where a file stands on the node that answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// Every chunk is here: `GET …/data` serves the whole file.
    Complete,
    /// Some chunks (possibly none) are here and nothing is fetching the rest: an upload to
    /// resume, or a file no linked node can serve now.
    Partial,
    /// The node is fetching the file from other nodes; ask again to follow its progress.
    Fetching,
    /// Not even the file's chunk list is here (a message names the file).
    Absent,
}

/// Why a fetch makes no progress now (it goes on by itself once the cause is gone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stalled {
    /// No linked node holds the missing chunks (yet): it goes on when one does.
    NoPeer,
    /// This node's file quota (`files.quota_mib`) is reached: it goes on when expiry frees
    /// room.
    QuotaFull,
    /// This node's disk is full.
    DiskFull,
    /// This node could not write the chunks for another reason (see its log).
    StoreFailed,
}

/// A file as one node holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FileInfo {
    /// The file's content address, 64 lowercase hex characters.
    pub address: String,
    /// Plaintext size in bytes.
    pub size: u64,
    /// Plaintext bytes per chunk (each ciphertext chunk is 16 bytes longer).
    pub chunk_size: u32,
    /// Number of chunks.
    pub chunks: u64,
    /// Chunks held by this node.
    pub held: u64,
    /// Where the file stands here.
    pub state: FileState,
    /// The first missing chunk indices, in order, at most 64 of them (empty when complete).
    pub missing: Vec<u64>,
    /// While `fetching`: why the fetch makes no progress now, if it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled: Option<Stalled>,
}

impl FileInfo {
    /// Ciphertext bytes the node holds when the file is complete (the size of `…/data`).
    pub fn stored_bytes(&self) -> u64 {
        self.size + self.chunks * 16
    }
}

/// The layout of a chunk list being uploaded.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Plaintext size of the file in bytes.
    pub size: u64,
    /// Plaintext bytes per chunk (1024 to 524288; clients use 262144).
    #[param(minimum = 1024, maximum = 524288)]
    pub chunk_size: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_the_documented_words() {
        let words: Vec<String> = [
            FileState::Complete,
            FileState::Partial,
            FileState::Fetching,
            FileState::Absent,
        ]
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
        assert_eq!(
            words,
            ["\"complete\"", "\"partial\"", "\"fetching\"", "\"absent\""]
        );
    }
}
