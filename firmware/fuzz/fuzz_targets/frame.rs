//! Fuzz target `frame`: decoding federation frames (`basis_proto::Frame::decode`) from
//! arbitrary bytes.
//!
//! Checks, beyond "never panics": a frame that decodes re-encodes to at most as many bytes
//! (the encoder writes the shortest form, so it never makes a frame the limit would refuse),
//! decodes again to the same frame, and that second encoding is a fixed point.
#![no_main]

use basis_proto::frame::Frame;
use libfuzzer_sys::fuzz_target;

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
});
