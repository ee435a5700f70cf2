//! Files in the browser (`docs/PROTOCOL.md` §9, `docs/E2EE.md` §13): sealing a file the user
//! picked chunk by chunk into the chunk list, content address and descriptor of a file
//! message, and opening a downloaded file chunk by chunk. The chunk layout and the sealing are
//! `basis-core`'s and `basis-e2ee`'s; JavaScript only slices the `File` and moves bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use basis_core::file::CHUNK_SIZE;
use basis_core::{BlobRef, ChunkList, FileDescriptor, MessageBody, Preview, safe_file_name};
use basis_e2ee::{ChunkOpener, ChunkSealer, FileKey};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

use crate::error::WebError;
use crate::event::Draft;

/// Largest whole number a JavaScript number holds exactly (2^53 − 1).
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A JavaScript number that must be a whole, non-negative count of bytes.
fn byte_count(what: &'static str, n: f64) -> Result<u64, WebError> {
    if !(0.0..=MAX_SAFE_INTEGER).contains(&n) || n.fract() != 0.0 {
        return Err(WebError::input(
            what,
            format!("{n} is not a whole number of bytes"),
        ));
    }
    Ok(n as u64)
}

fn file_error(e: impl ToString) -> WebError {
    WebError::File(e.to_string())
}

/// Seals one file for upload. Sealing is deterministic for a given key and chunk index, so
/// the page seals in two passes over the `File` (one chunk in memory at a time):
///
/// 1. [`FileSealer::hash_chunk`] for every chunk in order, then [`FileSealer::finish`]: the
///    chunk list ([`FileSealer::list_bytes`]) and the content address are known;
/// 2. [`FileSealer::seal_chunk`] for each chunk the node does not hold yet (all of them, or
///    only the missing ones after a cut), each checked against the list before it is sent.
///
/// Then [`FileSealer::draft`] is the file message, encrypted like a text message.
#[wasm_bindgen]
pub struct FileSealer {
    key: FileKey,
    blob: BlobRef,
    first_pass: Option<ChunkSealer>,
    list: Option<ChunkList>,
}

#[wasm_bindgen]
impl FileSealer {
    /// A sealer for a file of `size` bytes under a fresh random key, in chunks of 256 KiB.
    #[wasm_bindgen(constructor)]
    pub fn new(size: f64) -> Result<FileSealer, WebError> {
        let size = byte_count("the file size", size)?;
        let key = FileKey::generate().map_err(file_error)?;
        let first_pass = ChunkSealer::new(key.clone(), size, CHUNK_SIZE).map_err(file_error)?;
        Ok(FileSealer {
            key,
            blob: BlobRef {
                address: [0; 32],
                size,
                chunk_size: CHUNK_SIZE,
            },
            first_pass: Some(first_pass),
            list: None,
        })
    }

    /// Plaintext bytes per chunk: slice the file at multiples of this.
    #[wasm_bindgen(getter, js_name = chunkSize)]
    pub fn chunk_size(&self) -> u32 {
        self.blob.chunk_size
    }

    /// Number of chunks (at least one; an empty file is one empty chunk).
    #[wasm_bindgen(getter, js_name = chunkCount)]
    pub fn chunk_count(&self) -> u32 {
        // At most MAX_CHUNKS (16 384), checked by the layout.
        u32::try_from(self.blob.chunk_count()).unwrap_or(u32::MAX)
    }

    /// First pass: seals the next chunk's plaintext (in order) and keeps only its hash.
    #[wasm_bindgen(js_name = hashChunk)]
    pub fn hash_chunk(&mut self, plain: &[u8]) -> Result<(), WebError> {
        let sealer = self
            .first_pass
            .as_mut()
            .ok_or_else(|| WebError::File("the chunk list is already complete".into()))?;
        sealer.seal_next(plain).map_err(file_error)?;
        Ok(())
    }

    /// Ends the first pass: every chunk was hashed; the list and address are now known.
    pub fn finish(&mut self) -> Result<(), WebError> {
        let sealer = self
            .first_pass
            .take()
            .ok_or_else(|| WebError::File("the chunk list is already complete".into()))?;
        let list = sealer.finish().map_err(file_error)?;
        self.blob = list.blob_ref();
        self.list = Some(list);
        Ok(())
    }

    fn list(&self) -> Result<&ChunkList, WebError> {
        self.list
            .as_ref()
            .ok_or_else(|| WebError::File("hash every chunk and call finish first".into()))
    }

    /// The content address (hex), once [`FileSealer::finish`] was called.
    #[wasm_bindgen(getter)]
    pub fn address(&self) -> Result<String, WebError> {
        Ok(hex::encode(self.list()?.address()))
    }

    /// The encoded chunk list, the body of `PUT /v1/files/{address}/list`.
    #[wasm_bindgen(js_name = listBytes)]
    pub fn list_bytes(&self) -> Result<Vec<u8>, WebError> {
        Ok(self.list()?.to_bytes())
    }

    /// Second pass: the ciphertext of chunk `index` from its plaintext, checked against the
    /// chunk list (a file changed since the first pass is refused here).
    #[wasm_bindgen(js_name = sealChunk)]
    pub fn seal_chunk(&self, index: u32, plain: &[u8]) -> Result<Vec<u8>, WebError> {
        let list = self.list()?;
        let index = u64::from(index);
        let cipher =
            basis_e2ee::seal_chunk(&self.key, &self.blob, index, plain).map_err(file_error)?;
        list.verify_chunk(index, &cipher).map_err(|_| {
            WebError::File("the file changed since it was picked: pick it again".into())
        })?;
        Ok(cipher)
    }

    /// The file message: name and media type as the browser gave them, and an optional
    /// thumbnail (`preview` bytes of the image type `preview_type`, at most 16 KiB). Encrypt it
    /// with `RoomCrypto.encrypt` in an encrypted room (it becomes an `EncryptedAttachment`).
    pub fn draft(
        &self,
        name: String,
        media_type: String,
        preview_type: Option<String>,
        preview: Option<Vec<u8>>,
    ) -> Result<Draft, WebError> {
        let list = self.list()?;
        let preview = match (preview_type, preview) {
            (Some(media_type), Some(bytes)) => Some(Preview::Image { media_type, bytes }),
            _ => None,
        };
        let descriptor = FileDescriptor {
            blob: list.blob_ref(),
            name,
            media_type,
            key: *self.key.as_bytes(),
            preview,
        };
        descriptor.check().map_err(file_error)?;
        Ok(Draft {
            body: MessageBody::Attachment(descriptor),
        })
    }
}

/// Opens a downloaded file chunk by chunk: made by `RoomCrypto.fileOpener` from a file
/// message the user can read.
#[wasm_bindgen]
pub struct FileOpener {
    opener: ChunkOpener,
    blob: BlobRef,
    media_type: String,
    safe_name: String,
}

impl FileOpener {
    pub(crate) fn new(descriptor: &FileDescriptor) -> Result<FileOpener, WebError> {
        Ok(FileOpener {
            opener: ChunkOpener::new(descriptor).map_err(file_error)?,
            blob: descriptor.blob,
            media_type: descriptor.media_type.clone(),
            safe_name: safe_file_name(&descriptor.name),
        })
    }
}

#[wasm_bindgen]
impl FileOpener {
    /// The content address (hex).
    #[wasm_bindgen(getter)]
    pub fn address(&self) -> String {
        hex::encode(self.blob.address)
    }

    /// Plaintext size in bytes.
    #[wasm_bindgen(getter)]
    pub fn size(&self) -> f64 {
        self.blob.size as f64
    }

    /// Number of chunks.
    #[wasm_bindgen(getter, js_name = chunkCount)]
    pub fn chunk_count(&self) -> u32 {
        u32::try_from(self.blob.chunk_count()).unwrap_or(u32::MAX)
    }

    /// The media type the sender gave.
    #[wasm_bindgen(getter, js_name = mediaType)]
    pub fn media_type(&self) -> String {
        self.media_type.clone()
    }

    /// A name safe to save the file under (never a path).
    #[wasm_bindgen(getter, js_name = safeName)]
    pub fn safe_name(&self) -> String {
        self.safe_name.clone()
    }

    /// The plaintext of ciphertext chunk `index`; refused when the chunk was altered, is out
    /// of place, or the file was cut short.
    pub fn open(&self, index: u32, cipher: &[u8]) -> Result<Vec<u8>, WebError> {
        let plain = self
            .opener
            .open(u64::from(index), cipher)
            .map_err(file_error)?;
        Ok(plain.to_vec())
    }
}

/// What a timeline line shows of a file the user can open (no key): `{address, size,
/// chunk_size, chunks, name, safe_name, media_type, preview}`, the preview as
/// `{type: "image", media_type, data}` (base64) or `{type: "waveform", duration_ms, levels}`.
pub(crate) fn attachment_json(d: &FileDescriptor) -> Value {
    let preview = match &d.preview {
        Some(Preview::Image { media_type, bytes }) => json!({
            "type": "image",
            "media_type": media_type,
            "data": STANDARD.encode(bytes),
        }),
        Some(Preview::Waveform {
            duration_ms,
            levels,
        }) => json!({"type": "waveform", "duration_ms": duration_ms, "levels": levels}),
        None => Value::Null,
    };
    json!({
        "address": hex::encode(d.blob.address),
        "size": d.blob.size,
        "chunk_size": d.blob.chunk_size,
        "chunks": d.blob.chunk_count(),
        "name": d.name,
        "safe_name": safe_file_name(&d.name),
        "media_type": d.media_type,
        "preview": preview,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor_of(draft: &Draft) -> FileDescriptor {
        match &draft.body {
            MessageBody::Attachment(d) => d.clone(),
            other => panic!("not an attachment: {other:?}"),
        }
    }

    #[test]
    fn a_file_seals_in_two_passes_and_opens() {
        let size = CHUNK_SIZE as usize * 2 + 1000;
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let chunk = CHUNK_SIZE as usize;
        let mut sealer = FileSealer::new(size as f64).unwrap();
        assert_eq!(sealer.chunk_count(), 3);
        assert!(sealer.address().is_err());
        for part in data.chunks(chunk) {
            sealer.hash_chunk(part).unwrap();
        }
        sealer.finish().unwrap();
        assert!(sealer.hash_chunk(&[]).is_err());
        let list = ChunkList::from_bytes(&sealer.list_bytes().unwrap()).unwrap();
        assert_eq!(hex::encode(list.address()), sealer.address().unwrap());
        let ciphers: Vec<Vec<u8>> = data
            .chunks(chunk)
            .enumerate()
            .map(|(i, p)| sealer.seal_chunk(i as u32, p).unwrap())
            .collect();
        // A changed file is noticed in the second pass.
        let mut changed = data[..chunk].to_vec();
        changed[0] ^= 1;
        assert!(sealer.seal_chunk(0, &changed).is_err());

        let preview = vec![0xff; 100];
        let draft = sealer
            .draft(
                "../photo.jpg".into(),
                "image/jpeg".into(),
                Some("image/jpeg".into()),
                Some(preview),
            )
            .unwrap();
        let d = descriptor_of(&draft);
        let opener = FileOpener::new(&d).unwrap();
        assert_eq!(opener.safe_name(), "photo.jpg");
        let mut back = Vec::new();
        for (i, c) in ciphers.iter().enumerate() {
            back.extend(opener.open(i as u32, c).unwrap());
        }
        assert_eq!(back, data);
        assert!(opener.open(1, &ciphers[0]).is_err());
        let shown = attachment_json(&d);
        assert_eq!(shown["chunks"], 3);
        assert_eq!(shown["preview"]["type"], "image");
        assert!(shown.get("key").is_none());

        // Too large a preview is refused.
        assert!(
            sealer
                .draft(
                    "a".into(),
                    "image/png".into(),
                    Some("image/png".into()),
                    Some(vec![0; 20_000])
                )
                .is_err()
        );
    }

    #[test]
    fn sizes_must_be_whole_bytes() {
        assert!(FileSealer::new(-1.0).is_err());
        assert!(FileSealer::new(1.5).is_err());
        assert!(FileSealer::new(f64::NAN).is_err());
        assert_eq!(FileSealer::new(0.0).unwrap().chunk_count(), 1);
    }
}
