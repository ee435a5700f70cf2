//! Files as the protocol sees them: the chunk layout of an encrypted file, its content
//! address, and the descriptor a message carries (`docs/PROTOCOL.md` §9).
//!
//! A file travels as ciphertext chunks. Chunk `i` holds plaintext bytes
//! `i·chunk_size .. min((i+1)·chunk_size, size)` sealed with the file's key (the sealing is
//! `basis-e2ee`'s); every chunk is its plaintext plus a [`TAG_BYTES`] tag. A chunk is named
//! by the SHA-256 of its ciphertext ([`chunk_hash`]); the [`ChunkList`] (the layout and every
//! chunk's hash, in order) is named by its [`ChunkList::address`], the file's **content
//! address**. A node holding the address fetches the list, checks it against the address, then
//! checks each chunk against the list as it arrives: it never needs the file's key.
//!
//! Nothing here reads a disk or touches a key: this is the layout both the node (to verify and
//! store) and the clients (to seal and open) agree on.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Plaintext bytes per chunk that clients write: 256 KiB (see `docs/PROTOCOL.md` §9.1 for why).
pub const CHUNK_SIZE: u32 = 256 * 1024;
/// Smallest chunk size a descriptor may name.
pub const MIN_CHUNK_SIZE: u32 = 1024;
/// Largest chunk size a descriptor may name: a chunk must fit one federation frame with room
/// to spare.
pub const MAX_CHUNK_SIZE: u32 = 512 * 1024;
/// Most chunks of one file, so the chunk list stays below 512 KiB (16 384 chunks of 256 KiB
/// are 4 GiB).
pub const MAX_CHUNKS: u64 = 16_384;
/// Bytes the authentication tag adds to each chunk.
pub const TAG_BYTES: u32 = 16;
/// Largest preview (thumbnail or waveform) a descriptor may carry: it travels inside an event.
pub const MAX_PREVIEW_BYTES: usize = 16 * 1024;
/// Longest file name or media type in a descriptor, in bytes of UTF-8.
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// Version byte in front of an encoded [`ChunkList`].
pub const CHUNK_LIST_VERSION: u8 = 1;
/// What SHA-256 reads before a chunk list to give its address (keeps a list's address apart
/// from any chunk's hash in meaning).
pub const ADDRESS_CONTEXT: &[u8] = b"basis/file-chunks/v1\n";

/// Why a file reference, list or chunk is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The chunk size is outside [`MIN_CHUNK_SIZE`]..=[`MAX_CHUNK_SIZE`].
    #[error("chunk size {0} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}")]
    ChunkSize(u32),
    /// The file has more chunks than [`MAX_CHUNKS`].
    #[error("{0} chunks, the limit is {MAX_CHUNKS}")]
    TooManyChunks(u64),
    /// The bytes are not an encoded chunk list.
    #[error("malformed chunk list: {0}")]
    MalformedList(String),
    /// The chunk list's size, chunk size or number of hashes disagree with each other or with
    /// the reference it was fetched for.
    #[error("the chunk list does not match the file it was fetched for")]
    ListMismatch,
    /// The chunk list does not hash to the address it was fetched for.
    #[error("the chunk list does not hash to its content address")]
    WrongAddress,
    /// A chunk index past the last chunk.
    #[error("chunk {index} of a file of {count} chunks")]
    NoSuchChunk {
        /// The index asked for.
        index: u64,
        /// The file's number of chunks.
        count: u64,
    },
    /// A chunk's bytes are not as long as its place in the file says.
    #[error("chunk {index} is {got} bytes, it must be {want}")]
    ChunkLength {
        /// The chunk.
        index: u64,
        /// Its length.
        got: usize,
        /// The length it must have.
        want: u64,
    },
    /// A chunk's bytes do not hash to the hash the list gives for it.
    #[error("chunk {0} does not match its hash")]
    ChunkHash(u64),
    /// A descriptor's preview is larger than [`MAX_PREVIEW_BYTES`].
    #[error("preview of {0} bytes, the limit is {MAX_PREVIEW_BYTES}")]
    PreviewTooLarge(usize),
    /// A descriptor's name or media type is longer than [`MAX_FILE_NAME_BYTES`].
    #[error("{0} is longer than {MAX_FILE_NAME_BYTES} bytes")]
    NameTooLong(&'static str),
}

/// SHA-256 of a chunk's ciphertext: its name in stores and transfers.
pub fn chunk_hash(ciphertext: &[u8]) -> [u8; 32] {
    Sha256::digest(ciphertext).into()
}

/// What a node needs to know of a file to fetch, verify and keep its chunks: travels in the
/// clear (an encrypted room's `EncryptedAttachment`) so nodes can replicate and expire a file
/// with its message without ever holding its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlobRef {
    /// Content address: [`ChunkList::address`] of the file's chunk list.
    pub address: [u8; 32],
    /// Plaintext size in bytes.
    pub size: u64,
    /// Plaintext bytes per chunk (the last chunk may be shorter).
    pub chunk_size: u32,
}

impl BlobRef {
    /// Checks the layout is one the protocol allows.
    pub fn check(&self) -> Result<(), FileError> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&self.chunk_size) {
            return Err(FileError::ChunkSize(self.chunk_size));
        }
        let count = self.chunk_count();
        if count > MAX_CHUNKS {
            return Err(FileError::TooManyChunks(count));
        }
        Ok(())
    }

    /// Number of chunks: at least one (an empty file is one empty chunk, so its end is
    /// authenticated too).
    pub fn chunk_count(&self) -> u64 {
        chunk_count(self.size, self.chunk_size)
    }

    /// Plaintext bytes of chunk `index`.
    pub fn plain_len(&self, index: u64) -> Result<u64, FileError> {
        plain_len(self.size, self.chunk_size, index)
    }

    /// Ciphertext bytes of chunk `index` (its plaintext and the tag).
    pub fn cipher_len(&self, index: u64) -> Result<u64, FileError> {
        Ok(self.plain_len(index)? + u64::from(TAG_BYTES))
    }

    /// Total ciphertext bytes of all chunks: what a node stores for the file.
    pub fn stored_bytes(&self) -> u64 {
        self.size + self.chunk_count() * u64::from(TAG_BYTES)
    }
}

fn chunk_count(size: u64, chunk_size: u32) -> u64 {
    if chunk_size == 0 {
        return u64::MAX;
    }
    size.div_ceil(u64::from(chunk_size)).max(1)
}

fn plain_len(size: u64, chunk_size: u32, index: u64) -> Result<u64, FileError> {
    let count = chunk_count(size, chunk_size);
    if index >= count {
        return Err(FileError::NoSuchChunk { index, count });
    }
    let start = index * u64::from(chunk_size);
    Ok((size - start).min(u64::from(chunk_size)))
}

/// The layout and chunk hashes of one file; its hash is the file's content address.
///
/// Encoding ([`ChunkList::to_bytes`]): [`CHUNK_LIST_VERSION`], then postcard of
/// `(chunk_size: u32, size: u64, hashes: Vec<[u8; 32]>)`, nothing after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkList {
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Plaintext size of the file.
    pub size: u64,
    /// SHA-256 of each ciphertext chunk, in order.
    pub hashes: Vec<[u8; 32]>,
}

impl ChunkList {
    /// The encoded list (what is stored and sent, and what the address hashes).
    pub fn to_bytes(&self) -> Vec<u8> {
        // postcard fails only on serde features this type does not use.
        postcard::to_extend(self, vec![CHUNK_LIST_VERSION]).unwrap_or_default()
    }

    /// Decodes a list and checks it is canonical and self-consistent (a layout the protocol
    /// allows, one hash per chunk).
    pub fn from_bytes(bytes: &[u8]) -> Result<ChunkList, FileError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or_else(|| FileError::MalformedList("empty".into()))?;
        if version != CHUNK_LIST_VERSION {
            return Err(FileError::MalformedList(format!("version {version}")));
        }
        let list: ChunkList =
            postcard::from_bytes(rest).map_err(|e| FileError::MalformedList(e.to_string()))?;
        if list.to_bytes() != bytes {
            return Err(FileError::MalformedList("not canonical".into()));
        }
        list.blob_ref().check()?;
        if list.hashes.len() as u64 != list.blob_ref().chunk_count() {
            return Err(FileError::ListMismatch);
        }
        Ok(list)
    }

    /// The content address: SHA-256 of [`ADDRESS_CONTEXT`] and the encoded list.
    pub fn address(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(ADDRESS_CONTEXT);
        h.update(self.to_bytes());
        h.finalize().into()
    }

    /// The reference to this file.
    pub fn blob_ref(&self) -> BlobRef {
        BlobRef {
            address: self.address(),
            size: self.size,
            chunk_size: self.chunk_size,
        }
    }

    /// Decodes a list fetched for `blob` and checks it is the one `blob` names.
    pub fn for_blob(bytes: &[u8], blob: &BlobRef) -> Result<ChunkList, FileError> {
        let list = ChunkList::from_bytes(bytes)?;
        if list.size != blob.size || list.chunk_size != blob.chunk_size {
            return Err(FileError::ListMismatch);
        }
        if list.address() != blob.address {
            return Err(FileError::WrongAddress);
        }
        Ok(list)
    }

    /// Checks chunk `index`'s ciphertext: its length for its place, and its hash.
    pub fn verify_chunk(&self, index: u64, ciphertext: &[u8]) -> Result<(), FileError> {
        let want = plain_len(self.size, self.chunk_size, index)? + u64::from(TAG_BYTES);
        if ciphertext.len() as u64 != want {
            return Err(FileError::ChunkLength {
                index,
                got: ciphertext.len(),
                want,
            });
        }
        let expected = usize::try_from(index)
            .ok()
            .and_then(|i| self.hashes.get(i))
            .ok_or(FileError::ListMismatch)?;
        if chunk_hash(ciphertext) != *expected {
            return Err(FileError::ChunkHash(index));
        }
        Ok(())
    }
}

/// A small preview shown before the file is fetched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preview {
    /// A small image (a JPEG or PNG thumbnail of a photo or a document's first page).
    Image {
        /// Its media type, such as `image/jpeg`.
        media_type: String,
        /// The image.
        bytes: Vec<u8>,
    },
    /// The loudness outline of a voice note.
    Waveform {
        /// Length of the recording in milliseconds.
        duration_ms: u32,
        /// Loudness at even intervals, 0 (silence) to 255 (loudest).
        levels: Vec<u8>,
    },
}

impl Preview {
    fn len(&self) -> usize {
        match self {
            Preview::Image { media_type, bytes } => media_type.len() + bytes.len(),
            Preview::Waveform { levels, .. } => levels.len(),
        }
    }
}

/// Everything a reader needs to show, fetch and open a file: what a file message says. In an
/// encrypted room it travels only inside the end-to-end encryption (it holds the key).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDescriptor {
    /// Where the chunks are and how they are laid out.
    pub blob: BlobRef,
    /// File name as the sender gave it: for display only, never a path as it is (see
    /// [`safe_file_name`]).
    pub name: String,
    /// Media type, such as `image/jpeg` or `audio/ogg`.
    pub media_type: String,
    /// The key the chunks are sealed with (fresh for every file).
    pub key: [u8; 32],
    /// A thumbnail or waveform.
    pub preview: Option<Preview>,
}

impl FileDescriptor {
    /// Checks the rules of `docs/PROTOCOL.md` §6.1 for a descriptor.
    pub fn check(&self) -> Result<(), FileError> {
        self.blob.check()?;
        if self.name.len() > MAX_FILE_NAME_BYTES {
            return Err(FileError::NameTooLong("name"));
        }
        if self.media_type.len() > MAX_FILE_NAME_BYTES {
            return Err(FileError::NameTooLong("media type"));
        }
        match &self.preview {
            Some(p) if p.len() > MAX_PREVIEW_BYTES => Err(FileError::PreviewTooLarge(p.len())),
            _ => Ok(()),
        }
    }
}

impl std::fmt::Debug for FileDescriptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never goes to a log.
        f.debug_struct("FileDescriptor")
            .field("blob", &self.blob)
            .field("name", &self.name)
            .field("media_type", &self.media_type)
            .field("key", &"[hidden]")
            .field("preview", &self.preview)
            .finish()
    }
}

/// Longest name [`safe_file_name`] returns, in bytes.
pub const MAX_SAFE_NAME_BYTES: usize = 128;

/// A name that is safe to show and to save under, made from a sender's file name: never a
/// path, never hidden, never empty.
///
/// Keeps the part after the last `/` or `\`; replaces control characters (C0, DEL, C1),
/// Unicode bidirectional controls and the characters Windows forbids (`<>:"|?*`) with `_`;
/// trims spaces and dots from both ends (so `..`, `.` and names that would hide themselves
/// become `file`); shortens to [`MAX_SAFE_NAME_BYTES`] at a character boundary, keeping the
/// extension where it is short; and gives `file` when nothing is left.
pub fn safe_file_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = last
        .chars()
        .map(|c| {
            let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi || "<>:\"|?*".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches(|c: char| c == '.' || c.is_whitespace());
    if trimmed.is_empty() {
        return "file".into();
    }
    if trimmed.len() <= MAX_SAFE_NAME_BYTES {
        return trimmed.into();
    }
    let ext = match trimmed.rfind('.') {
        Some(dot) if trimmed.len() - dot <= 16 => &trimmed[dot..],
        _ => "",
    };
    let mut stem_end = MAX_SAFE_NAME_BYTES - ext.len();
    while !trimmed.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    format!("{}{ext}", &trimmed[..stem_end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn list(size: u64, chunk_size: u32) -> ChunkList {
        let count = chunk_count(size, chunk_size);
        ChunkList {
            chunk_size,
            size,
            hashes: (0..count).map(|i| [i as u8; 32]).collect(),
        }
    }

    #[test]
    fn layout_of_chunks() {
        let b = BlobRef {
            address: [0; 32],
            size: 2 * 1024 + 100,
            chunk_size: 1024,
        };
        assert_eq!(b.chunk_count(), 3);
        assert_eq!(b.plain_len(0), Ok(1024));
        assert_eq!(b.plain_len(2), Ok(100));
        assert_eq!(b.cipher_len(2), Ok(116));
        assert!(matches!(b.plain_len(3), Err(FileError::NoSuchChunk { .. })));
        assert_eq!(b.stored_bytes(), 2 * 1024 + 100 + 3 * 16);
        let empty = BlobRef { size: 0, ..b };
        assert_eq!(empty.chunk_count(), 1);
        assert_eq!(empty.plain_len(0), Ok(0));
        let exact = BlobRef { size: 2048, ..b };
        assert_eq!(exact.chunk_count(), 2);
        assert_eq!(exact.plain_len(1), Ok(1024));
    }

    #[test]
    fn limits_of_a_reference() {
        let ok = BlobRef {
            address: [0; 32],
            size: 100 << 20,
            chunk_size: CHUNK_SIZE,
        };
        assert_eq!(ok.check(), Ok(()));
        assert_eq!(
            BlobRef {
                chunk_size: 512,
                ..ok
            }
            .check(),
            Err(FileError::ChunkSize(512))
        );
        assert_eq!(
            BlobRef {
                chunk_size: 0,
                ..ok
            }
            .check(),
            Err(FileError::ChunkSize(0))
        );
        let huge = BlobRef {
            size: u64::MAX,
            ..ok
        };
        assert!(matches!(huge.check(), Err(FileError::TooManyChunks(_))));
    }

    #[test]
    fn list_round_trip_address_and_refusals() {
        let l = list(3000, 1024);
        let bytes = l.to_bytes();
        assert_eq!(bytes[0], CHUNK_LIST_VERSION);
        assert_eq!(ChunkList::from_bytes(&bytes), Ok(l.clone()));
        let blob = l.blob_ref();
        assert_eq!(ChunkList::for_blob(&bytes, &blob), Ok(l.clone()));
        let mut other = blob;
        other.address[0] ^= 1;
        assert_eq!(
            ChunkList::for_blob(&bytes, &other),
            Err(FileError::WrongAddress)
        );
        let mut longer = l.clone();
        longer.hashes.push([9; 32]);
        assert_eq!(
            ChunkList::from_bytes(&longer.to_bytes()),
            Err(FileError::ListMismatch)
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(ChunkList::from_bytes(&trailing).is_err());
        for len in 0..bytes.len() {
            assert!(ChunkList::from_bytes(&bytes[..len]).is_err());
        }
    }

    #[test]
    fn chunks_are_checked_by_length_and_hash() {
        let chunks: Vec<Vec<u8>> = vec![vec![1; 1040], vec![2; 1040], vec![3; 116]];
        let l = ChunkList {
            chunk_size: 1024,
            size: 2148,
            hashes: chunks.iter().map(|c| chunk_hash(c)).collect(),
        };
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(l.verify_chunk(i as u64, c), Ok(()));
        }
        let mut bad = chunks[1].clone();
        bad[7] ^= 0x80;
        assert_eq!(l.verify_chunk(1, &bad), Err(FileError::ChunkHash(1)));
        assert!(matches!(
            l.verify_chunk(2, &chunks[1]),
            Err(FileError::ChunkLength { .. })
        ));
        assert!(matches!(
            l.verify_chunk(3, &chunks[2]),
            Err(FileError::NoSuchChunk { .. })
        ));
    }

    #[test]
    fn descriptor_limits() {
        let d = FileDescriptor {
            blob: list(10, 1024).blob_ref(),
            name: "a.txt".into(),
            media_type: "text/plain".into(),
            key: [1; 32],
            preview: Some(Preview::Waveform {
                duration_ms: 1000,
                levels: vec![0; MAX_PREVIEW_BYTES],
            }),
        };
        assert_eq!(d.check(), Ok(()));
        let mut big = d.clone();
        big.preview = Some(Preview::Image {
            media_type: "image/jpeg".into(),
            bytes: vec![0; MAX_PREVIEW_BYTES],
        });
        assert!(matches!(big.check(), Err(FileError::PreviewTooLarge(_))));
        let mut long = d;
        long.name = "x".repeat(256);
        assert_eq!(long.check(), Err(FileError::NameTooLong("name")));
    }

    #[test]
    fn unsafe_names_become_safe_ones() {
        for (given, safe) in [
            ("map.png", "map.png"),
            ("../../etc/passwd", "passwd"),
            ("C:\\Users\\x\\report.pdf", "report.pdf"),
            ("..", "file"),
            ("", "file"),
            ("/", "file"),
            (".bashrc", "bashrc"),
            ("a\nb\u{7}c.txt", "a_b_c.txt"),
            ("photo\u{202e}gpj.exe", "photo_gpj.exe"),
            ("what?<x>.txt", "what__x_.txt"),
            ("  notes.txt. ", "notes.txt"),
        ] {
            assert_eq!(safe_file_name(given), safe, "{given:?}");
        }
        let long = format!("{}.jpeg", "é".repeat(100));
        let s = safe_file_name(&long);
        assert!(
            s.len() <= MAX_SAFE_NAME_BYTES && s.ends_with(".jpeg"),
            "{s}"
        );
    }

    proptest! {
        #[test]
        fn any_name_is_safe(name in any::<String>()) {
            let s = safe_file_name(&name);
            prop_assert!(!s.is_empty() && s.len() <= MAX_SAFE_NAME_BYTES);
            prop_assert!(!s.contains(['/', '\\']) && !s.chars().any(char::is_control));
            prop_assert!(!s.starts_with('.') && s != "..");
        }

        #[test]
        fn any_bytes_as_a_list_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ChunkList::from_bytes(&bytes);
        }
    }
}
