//! Fuzz target `frame`: decoding federation frames (`basis_proto::Frame::decode`) from
//! arbitrary bytes.
//!
//! Checks, beyond "never panics": a frame that decodes re-encodes to at most as many bytes
//! (the encoder writes the shortest form, so it never makes a frame the limit would refuse),
//! decodes again to the same frame, and that second encoding is a fixed point. A file frame
//! is also fed to an `Outbox` (as a peer's want) and to a `Fetch` of a fixed file (as a
//! peer's answer), which must take it without panicking.
#![no_main]

use std::time::Instant;

use basis_core::{BlobRef, ChunkList};
use basis_proto::frame::{FileFrame, Frame};
use basis_proto::{Fetch, Outbox};
use libfuzzer_sys::fuzz_target;

/// The fetched file: three chunks of 1 024 bytes (one short), whose list says every chunk
/// is 26 or 1 040 zero bytes long. A `Fetch` of it, the list already held, and the same
/// fetch still waiting for its list.
fn fetches() -> (Fetch, Fetch) {
    let list = ChunkList {
        chunk_size: 1024,
        size: 2058,
        hashes: vec![[0; 32]; 3],
    };
    let blob: BlobRef = list.blob_ref();
    let resumed = Fetch::resume(blob, list, &[0, 1, 2]).expect("a valid fixture");
    let fresh = Fetch::new(blob).expect("a valid fixture");
    (resumed, fresh)
}

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = Frame::decode(data) else {
        return;
    };
    let _ = frame.name();
    let encoded = frame.encode();
    assert!(
        encoded.len() <= data.len(),
        "re-encoding grew the frame from {} to {} bytes",
        data.len(),
        encoded.len()
    );
    let again = Frame::decode(&encoded).expect("a re-encoded frame decodes");
    assert_eq!(again, frame, "the frame changed in a round trip");
    assert_eq!(again.encode(), encoded, "encoding is not a fixed point");

    if let Frame::File(file) = &frame {
        if let FileFrame::Want {
            address,
            list,
            ranges,
        } = file
        {
            let mut outbox = Outbox::new();
            if outbox.on_want(*address, *list, ranges).is_ok() {
                while let Some(next) = outbox.pop() {
                    let _ = next.answer(None);
                }
            }
        }
        let now = Instant::now();
        let peer = basis_fuzz::PEER;
        let (mut resumed, mut fresh) = fetches();
        for fetch in [&mut resumed, &mut fresh] {
            let _ = fetch.add_peer(peer, None, now);
            let _ = fetch.on_frame(peer, file, now);
            let _ = fetch.on_tick(now + basis_proto::transfer::REQUEST_TIMEOUT);
            let _ = fetch.state();
        }
    }
});
