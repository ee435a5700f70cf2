//! Checks the committed test vectors (`tests/vectors/events.json`): signing each input with its
//! key must give exactly the committed bytes, id and signature; every invalid vector must be
//! refused with the committed error code.

use basis_core::validate::validate;
use basis_core::vectors::{Vectors, all_vectors};
use basis_core::{UserKey, encoding::encode};

fn committed() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/vectors/events.json"
    );
    let text = std::fs::read_to_string(path).expect("tests/vectors/events.json is readable");
    serde_json::from_str(&text).expect("tests/vectors/events.json parses")
}

fn secret(hex_text: &str) -> [u8; 32] {
    let bytes = hex::decode(hex_text).expect("secret is hex");
    bytes.try_into().expect("secret is 32 bytes")
}

#[test]
fn every_valid_vector_gives_the_committed_bytes() {
    let vectors = committed();
    assert!(vectors.valid.len() >= 12, "vector file lost entries");
    for v in &vectors.valid {
        let key = UserKey::from_secret(secret(&v.author_secret));
        assert_eq!(hex::encode(encode(&v.content)), v.content_hex, "{}", v.name);
        let event = v.content.clone().sign(&key);
        assert_eq!(hex::encode(event.signature), v.signature_hex, "{}", v.name);
        assert_eq!(hex::encode(event.to_bytes()), v.event_hex, "{}", v.name);
        assert_eq!(event.id(), v.id, "{}", v.name);
        let bytes = hex::decode(&v.event_hex).expect("hex");
        let valid = validate(&bytes).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(valid.event().content, v.content, "{}", v.name);
        assert_eq!(valid.id(), v.id, "{}", v.name);
    }
}

#[test]
fn every_invalid_vector_is_refused_with_its_code() {
    let vectors = committed();
    assert!(vectors.invalid.len() >= 8, "vector file lost entries");
    for v in &vectors.invalid {
        let bytes = hex::decode(&v.event_hex).expect("hex");
        let err = validate(&bytes).expect_err(&v.name);
        assert_eq!(err.code(), v.error, "{}: {err}", v.name);
    }
}

#[test]
fn committed_file_matches_the_generator() {
    assert_eq!(
        committed(),
        all_vectors(),
        "regenerate with: cargo run -p basis-core --example gen_vectors > tests/vectors/events.json"
    );
}
