//! The canonical binary encoding: postcard's wire format (specified in `docs/PROTOCOL.md`),
//! made canonical by refusing any input that does not re-encode to the same bytes.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::EventError;
use crate::event::Event;
use crate::limits::MAX_EVENT_BYTES;

/// Encodes a value. Infallible for the types of this crate (no maps, no unsized sequences).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // postcard only fails on serde types it does not support (maps of unknown size and the
    // like), which none of our types use; an empty vector would fail validation loudly.
    postcard::to_allocvec(value).unwrap_or_default()
}

/// Decodes a value and checks the bytes are its canonical encoding.
pub fn decode_canonical<T: Serialize + DeserializeOwned>(bytes: &[u8]) -> Result<T, EventError> {
    let value: T = postcard::from_bytes(bytes).map_err(|e| EventError::Malformed(e.to_string()))?;
    if encode(&value) != bytes {
        return Err(EventError::NonCanonical);
    }
    Ok(value)
}

/// Decodes an event's wire bytes (size limit first, then canonical decoding). The signature
/// and field rules are checked by [`crate::validate`].
pub fn decode_event(bytes: &[u8]) -> Result<Event, EventError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(EventError::Oversize { size: bytes.len() });
    }
    // The version is the first byte; checking it before decoding gives an event of a future
    // layout the right reason instead of "malformed".
    match bytes.first() {
        Some(&v) if v != crate::event::PROTOCOL_VERSION => Err(EventError::UnknownVersion(v)),
        _ => decode_canonical(bytes),
    }
}
