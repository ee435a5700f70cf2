//! Sealing and opening a file's chunks (`docs/E2EE.md` §13).
//!
//! Each file has its own random 32-byte key. Chunk `i` of `n` is ChaCha20-Poly1305 (RFC 8439)
//! of its plaintext under that key with
//!
//! - nonce = `00 00 00` ‖ `i` as a 64-bit big-endian integer ‖ `01` for the last chunk, `00`
//!   for every other (the nonce scheme of the STREAM construction, Hoang et al. 2015, with an
//!   empty prefix: the key is never used for another file, so the counter alone makes nonces
//!   unique);
//! - associated data = [`CHUNK_AAD`].
//!
//! So a chunk moved to another position does not open (the index is in the nonce), and a file
//! cut short is noticed (what is now the last chunk was sealed as "not last"); a longer file
//! cannot be made either, because chunk counts come from the size in the descriptor. The
//! AEAD is the `chacha20poly1305` crate's; nothing here is a primitive of its own.
//!
//! Nothing holds a whole file: [`ChunkSealer`] and [`ChunkOpener`] take one chunk at a time,
//! [`seal_reader`] and [`open_to_writer`] stream through a reader or writer with at most two
//! chunks in memory.

use std::io::{self, Read, Write};

use basis_core::file::{CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, TAG_BYTES, chunk_hash};
use basis_core::{BlobRef, ChunkList, FileDescriptor, FileError, Preview};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::{Zeroize, Zeroizing};

/// Associated data of every chunk: names what the key is for.
pub const CHUNK_AAD: &[u8] = b"basis/file-chunk/v1";

/// Why a file could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum FileCryptoError {
    /// The operating system gave no random bytes for a key.
    #[error("no randomness for a file key: {0}")]
    Random(getrandom::Error),
    /// The layout or a chunk is not what the file's reference says.
    #[error(transparent)]
    Layout(#[from] FileError),
    /// A chunk did not open with the file's key at its place (altered, moved, or the file
    /// was cut short).
    #[error("chunk {0} does not open: altered, out of place, or the file was cut short")]
    ChunkDoesNotOpen(u64),
    /// A chunk of plaintext of the wrong length for its place.
    #[error("chunk {index} has {got} bytes of plaintext, it must have {want}")]
    PlainLength {
        /// The chunk.
        index: u64,
        /// Its plaintext length.
        got: usize,
        /// The length its place requires.
        want: u64,
    },
    /// More chunks than the file has, or fewer than it has when finishing.
    #[error("chunk {index} out of order or past the end (expected {expected})")]
    OutOfOrder {
        /// The chunk given.
        index: u64,
        /// The one expected next.
        expected: u64,
    },
    /// The file is larger than one reference can describe.
    #[error("the file is too large: {0}")]
    TooLarge(u64),
    /// Reading the plaintext or writing the output failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// A file's key, wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct FileKey(Zeroizing<[u8; 32]>);

impl FileKey {
    /// A fresh random key.
    pub fn generate() -> Result<FileKey, FileCryptoError> {
        crate::random_array::<32>()
            .map(FileKey::from_bytes)
            .map_err(FileCryptoError::Random)
    }

    /// The key of a descriptor.
    pub fn from_bytes(bytes: [u8; 32]) -> FileKey {
        FileKey(Zeroizing::new(bytes))
    }

    /// The key's bytes (for the descriptor).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&Key::from(*self.0))
    }
}

impl std::fmt::Debug for FileKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileKey([hidden])")
    }
}

/// The nonce of chunk `index` (see the module docs).
pub fn chunk_nonce(index: u64, last: bool) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

fn seal(key: &FileKey, index: u64, last: bool, plain: &[u8]) -> Result<Vec<u8>, FileCryptoError> {
    let nonce = chunk_nonce(index, last);
    key.cipher()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plain,
                aad: CHUNK_AAD,
            },
        )
        // Encryption fails only for inputs beyond ChaCha20's 256 GiB; chunks are far smaller.
        .map_err(|_| FileCryptoError::ChunkDoesNotOpen(index))
}

fn open(key: &FileKey, index: u64, last: bool, cipher: &[u8]) -> Result<Vec<u8>, FileCryptoError> {
    let nonce = chunk_nonce(index, last);
    key.cipher()
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: cipher,
                aad: CHUNK_AAD,
            },
        )
        .map_err(|_| FileCryptoError::ChunkDoesNotOpen(index))
}

/// Seals a file chunk by chunk, in order, and collects the chunk list.
#[derive(Debug)]
pub struct ChunkSealer {
    key: FileKey,
    chunk_size: u32,
    size: u64,
    hashes: Vec<[u8; 32]>,
}

impl ChunkSealer {
    /// A sealer of a file of `size` bytes in chunks of `chunk_size` under `key`.
    pub fn new(key: FileKey, size: u64, chunk_size: u32) -> Result<ChunkSealer, FileCryptoError> {
        let layout = BlobRef {
            address: [0; 32],
            size,
            chunk_size,
        };
        layout.check()?;
        Ok(ChunkSealer {
            key,
            chunk_size,
            size,
            hashes: Vec::new(),
        })
    }

    fn layout(&self) -> BlobRef {
        BlobRef {
            address: [0; 32],
            size: self.size,
            chunk_size: self.chunk_size,
        }
    }

    /// Seals the next chunk; its plaintext must be exactly as long as its place requires.
    /// Returns the ciphertext chunk (to store or send) and its hash.
    pub fn seal_next(&mut self, plain: &[u8]) -> Result<(Vec<u8>, [u8; 32]), FileCryptoError> {
        let layout = self.layout();
        let index = self.hashes.len() as u64;
        let want = layout
            .plain_len(index)
            .map_err(|_| FileCryptoError::OutOfOrder {
                index,
                expected: layout.chunk_count(),
            })?;
        if plain.len() as u64 != want {
            return Err(FileCryptoError::PlainLength {
                index,
                got: plain.len(),
                want,
            });
        }
        let last = index + 1 == layout.chunk_count();
        let cipher = seal(&self.key, index, last, plain)?;
        let hash = chunk_hash(&cipher);
        self.hashes.push(hash);
        Ok((cipher, hash))
    }

    /// The chunk list once every chunk was sealed.
    pub fn finish(self) -> Result<ChunkList, FileCryptoError> {
        let count = self.layout().chunk_count();
        if self.hashes.len() as u64 != count {
            return Err(FileCryptoError::OutOfOrder {
                index: self.hashes.len() as u64,
                expected: count,
            });
        }
        Ok(ChunkList {
            chunk_size: self.chunk_size,
            size: self.size,
            hashes: self.hashes,
        })
    }
}

/// Seals chunk `index` of the file `blob` lays out under `key`, out of order: the same bytes
/// [`ChunkSealer`] made for that place (nonces come from the index, so sealing again gives
/// the same ciphertext). A client that sealed once for the chunk list seals again to send,
/// or to resend only the chunks a node is missing after a cut, without keeping ciphertext.
///
/// The nonce is the same for every sealing of a place: a caller must check the result against
/// the file's [`ChunkList`] before it lets the ciphertext out, so that other plaintext (a file
/// changed since the list was made) never leaves sealed under a nonce already used.
pub fn seal_chunk(
    key: &FileKey,
    blob: &BlobRef,
    index: u64,
    plain: &[u8],
) -> Result<Vec<u8>, FileCryptoError> {
    blob.check()?;
    let want = blob.plain_len(index)?;
    if plain.len() as u64 != want {
        return Err(FileCryptoError::PlainLength {
            index,
            got: plain.len(),
            want,
        });
    }
    seal(key, index, index + 1 == blob.chunk_count(), plain)
}

/// Opens the chunks of one file, in any order.
#[derive(Debug)]
pub struct ChunkOpener {
    key: FileKey,
    blob: BlobRef,
}

impl ChunkOpener {
    /// An opener of the file `descriptor` describes.
    pub fn new(descriptor: &FileDescriptor) -> Result<ChunkOpener, FileCryptoError> {
        descriptor.blob.check()?;
        Ok(ChunkOpener {
            key: FileKey::from_bytes(descriptor.key),
            blob: descriptor.blob,
        })
    }

    /// The plaintext of chunk `index`, checked for its place and for being (or not being) the
    /// last chunk.
    pub fn open(&self, index: u64, cipher: &[u8]) -> Result<Zeroizing<Vec<u8>>, FileCryptoError> {
        let want = self.blob.cipher_len(index)?;
        if cipher.len() as u64 != want {
            return Err(FileError::ChunkLength {
                index,
                got: cipher.len(),
                want,
            }
            .into());
        }
        let last = index + 1 == self.blob.chunk_count();
        Ok(Zeroizing::new(open(&self.key, index, last, cipher)?))
    }
}

/// What sealing a file gives: its key and chunk list (the descriptor is made from them).
#[derive(Debug)]
pub struct SealedFile {
    /// The file's fresh key.
    pub key: FileKey,
    /// Its chunk list; `list.blob_ref()` names the file.
    pub list: ChunkList,
}

impl SealedFile {
    /// The descriptor a file message carries.
    pub fn descriptor(
        &self,
        name: String,
        media_type: String,
        preview: Option<Preview>,
    ) -> FileDescriptor {
        FileDescriptor {
            blob: self.list.blob_ref(),
            name,
            media_type,
            key: *self.key.as_bytes(),
            preview,
        }
    }
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the input.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Seals a file of `size` bytes read from `reader` in chunks of `chunk_size` (clients use
/// [`CHUNK_SIZE`]) under a fresh key, handing each ciphertext chunk to `put(index, bytes)` as
/// it is made. At most one chunk is in memory. The reader must give exactly `size` bytes.
pub fn seal_reader(
    mut reader: impl Read,
    size: u64,
    chunk_size: u32,
    mut put: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> Result<SealedFile, FileCryptoError> {
    let key = FileKey::generate()?;
    let mut sealer = ChunkSealer::new(key.clone(), size, chunk_size)?;
    let layout = sealer.layout();
    let mut buf = Zeroizing::new(vec![0u8; chunk_size as usize]);
    for index in 0..layout.chunk_count() {
        let want = layout.plain_len(index)? as usize;
        let got = read_full(&mut reader, &mut buf[..want])?;
        if got != want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended {} bytes early",
                    size - index * u64::from(chunk_size) - got as u64
                ),
            )
            .into());
        }
        let (cipher, _) = sealer.seal_next(&buf[..want])?;
        put(index, &cipher)?;
    }
    let mut extra = [0u8; 1];
    if read_full(&mut reader, &mut extra)? != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file grew while it was read",
        )
        .into());
    }
    buf.zeroize();
    Ok(SealedFile {
        key,
        list: sealer.finish()?,
    })
}

/// Opens every chunk of the file `descriptor` names, in order, fetched with `get(index)`,
/// and writes the plaintext to `writer`. At most one chunk is in memory.
pub fn open_to_writer(
    descriptor: &FileDescriptor,
    mut get: impl FnMut(u64) -> io::Result<Vec<u8>>,
    mut writer: impl Write,
) -> Result<u64, FileCryptoError> {
    let opener = ChunkOpener::new(descriptor)?;
    let mut written = 0u64;
    for index in 0..descriptor.blob.chunk_count() {
        let cipher = get(index)?;
        let plain = opener.open(index, &cipher)?;
        writer.write_all(&plain)?;
        written += plain.len() as u64;
    }
    writer.flush()?;
    Ok(written)
}

/// The chunk size a client should use: [`CHUNK_SIZE`], clamped to what the protocol allows
/// (kept as a function so a later version can pick per file).
pub fn default_chunk_size() -> u32 {
    CHUNK_SIZE.clamp(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)
}

/// Bytes of ciphertext a chunk of `plain_len` bytes becomes.
pub fn sealed_len(plain_len: u64) -> u64 {
    plain_len + u64::from(TAG_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn seal_all(data: &[u8], chunk_size: u32) -> (SealedFile, Vec<Vec<u8>>) {
        let mut chunks = Vec::new();
        let sealed = seal_reader(data, data.len() as u64, chunk_size, |i, c| {
            assert_eq!(i as usize, chunks.len());
            chunks.push(c.to_vec());
            Ok(())
        })
        .unwrap();
        (sealed, chunks)
    }

    #[test]
    fn sealing_a_chunk_again_gives_the_same_bytes() {
        let data = pattern(2500);
        let (sealed, chunks) = seal_all(&data, 1024);
        let blob = sealed.list.blob_ref();
        for (i, c) in chunks.iter().enumerate() {
            let start = i * 1024;
            let plain = &data[start..(start + 1024).min(data.len())];
            assert_eq!(&seal_chunk(&sealed.key, &blob, i as u64, plain).unwrap(), c);
        }
        assert!(matches!(
            seal_chunk(&sealed.key, &blob, 0, &data[..10]),
            Err(FileCryptoError::PlainLength { .. })
        ));
        assert!(seal_chunk(&sealed.key, &blob, 3, &[]).is_err());
    }

    #[test]
    fn round_trip_through_reader_and_writer() {
        for len in [0usize, 1, 1023, 1024, 1025, 5000] {
            let data = pattern(len);
            let (sealed, chunks) = seal_all(&data, 1024);
            assert_eq!(chunks.len() as u64, sealed.list.blob_ref().chunk_count());
            for (i, c) in chunks.iter().enumerate() {
                sealed.list.verify_chunk(i as u64, c).unwrap();
            }
            let d = sealed.descriptor("f".into(), "application/octet-stream".into(), None);
            let mut out = Vec::new();
            let n = open_to_writer(&d, |i| Ok(chunks[i as usize].clone()), &mut out).unwrap();
            assert_eq!(n as usize, len);
            assert_eq!(out, data);
        }
    }

    #[test]
    fn keys_are_fresh_and_ciphertext_hides_the_plaintext() {
        let data = pattern(4096);
        let (a, ca) = seal_all(&data, 1024);
        let (b, cb) = seal_all(&data, 1024);
        assert_ne!(a.key, b.key);
        assert_ne!(a.list.address(), b.list.address());
        assert_ne!(ca[0], cb[0]);
        assert!(!ca[0].windows(64).any(|w| data.windows(64).any(|d| d == w)));
    }

    #[test]
    fn moved_altered_and_truncated_chunks_do_not_open() {
        let data = pattern(3000);
        let (sealed, chunks) = seal_all(&data, 1024);
        let d = sealed.descriptor("f".into(), "x/y".into(), None);
        let opener = ChunkOpener::new(&d).unwrap();
        // Swapped full chunks: right length, wrong place.
        assert!(matches!(
            opener.open(1, &chunks[0]),
            Err(FileCryptoError::ChunkDoesNotOpen(1))
        ));
        let mut bad = chunks[1].clone();
        bad[3] ^= 1;
        assert!(matches!(
            opener.open(1, &bad),
            Err(FileCryptoError::ChunkDoesNotOpen(1))
        ));
        // A file cut after two full chunks, presented as a 2048-byte file: chunk 1 was not
        // sealed as the last one, so it does not open as the last.
        let mut cut = d.clone();
        cut.blob.size = 2048;
        let opener = ChunkOpener::new(&cut).unwrap();
        assert!(opener.open(0, &chunks[0]).is_ok());
        assert!(matches!(
            opener.open(1, &chunks[1]),
            Err(FileCryptoError::ChunkDoesNotOpen(1))
        ));
        // Another key opens nothing.
        let mut other = d;
        other.key = [7; 32];
        assert!(
            ChunkOpener::new(&other)
                .unwrap()
                .open(0, &chunks[0])
                .is_err()
        );
    }

    #[test]
    fn the_sealer_refuses_wrong_lengths_and_extra_chunks() {
        let key = FileKey::from_bytes([1; 32]);
        let mut s = ChunkSealer::new(key.clone(), 1500, 1024).unwrap();
        assert!(matches!(
            s.seal_next(&[0; 1000]),
            Err(FileCryptoError::PlainLength { .. })
        ));
        s.seal_next(&[0; 1024]).unwrap();
        let s2 = ChunkSealer::new(key.clone(), 1500, 1024).unwrap();
        assert!(matches!(
            s2.finish(),
            Err(FileCryptoError::OutOfOrder { .. })
        ));
        s.seal_next(&[0; 476]).unwrap();
        assert!(matches!(
            s.seal_next(&[]),
            Err(FileCryptoError::OutOfOrder { .. })
        ));
        assert_eq!(s.finish().unwrap().hashes.len(), 2);
        assert!(ChunkSealer::new(key, 10, 100).is_err());
    }

    #[test]
    fn a_reader_shorter_or_longer_than_announced_is_refused() {
        let data = pattern(2000);
        let short = seal_reader(&data[..1500], 2000, 1024, |_, _| Ok(()));
        assert!(matches!(short, Err(FileCryptoError::Io(_))));
        let long = seal_reader(&data[..], 1500, 1024, |_, _| Ok(()));
        assert!(matches!(long, Err(FileCryptoError::Io(_))));
    }

    #[test]
    fn nonces_follow_the_documented_layout() {
        assert_eq!(chunk_nonce(0, false), [0; 12]);
        assert_eq!(
            chunk_nonce(0x0102, true),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1]
        );
    }
}
