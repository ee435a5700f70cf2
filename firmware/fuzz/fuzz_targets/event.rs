//! Fuzz target `event`: event decoding and validation (`basis_core::encoding::decode_event`,
//! `basis_core::validate::validate`) on arbitrary bytes, and the room rules on what decodes.
//!
//! Checks, beyond "never panics":
//! - validation refuses whatever decoding refuses, with the same error;
//! - a decoded event re-encodes to exactly the input (the canonical check holds);
//! - an accepted event has id = SHA-256 of the bytes, keeps the bytes, and equals the decoded
//!   event;
//! - the room rules (`RoomState::check`, `apply`) and the client's timeline
//!   (`Timeline::build`) take any decoded event, against an empty room and against the room
//!   of the test vectors (signatures are not what they look at, so a decoded event is enough);
//! - the form a store keeps (`basis_core::compact`): any bytes with any keys compact to
//!   something that expands back to exactly them, or to nothing; a decoded event always
//!   compacts, 64 bytes shorter (32 for a create event).
#![no_main]

use std::sync::OnceLock;

use basis_core::compact::{compact, expand, keys_len};
use basis_core::encoding::{decode_event, encode};
use basis_core::room::RoomState;
use basis_core::timeline::{Item, Timeline};
use basis_core::validate::validate;
use basis_core::{Event, RoomId, UserId, vectors};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// The valid test vectors, decoded: a room with a creator, an invitee who joined, messages.
fn vector_events() -> &'static [Event] {
    static EVENTS: OnceLock<Vec<Event>> = OnceLock::new();
    EVENTS.get_or_init(|| {
        vectors::all_vectors()
            .valid
            .iter()
            .map(|v| {
                let bytes = decode_hex(&v.event_hex);
                validate(&bytes)
                    .expect("the valid vectors validate")
                    .event()
                    .clone()
            })
            .collect()
    })
}

fn vector_room() -> &'static RoomState {
    static ROOM: OnceLock<RoomState> = OnceLock::new();
    ROOM.get_or_init(|| RoomState::from_events(vector_events()))
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("vectors are hex"))
        .collect()
}

fn room_rules(event: &Event) {
    let empty = RoomState::default();
    let _ = empty.check(event);
    let _ = empty.clone().apply(event);
    let room = vector_room();
    let _ = room.check(event);
    let mut after = room.clone();
    if after.apply(event).is_ok() {
        assert_eq!(
            room.check(event),
            Ok(()),
            "apply accepted what check refused"
        );
    }
    let _ = RoomState::from_events([event]);
    let items: Vec<Item> = vector_events()
        .iter()
        .chain([event])
        .map(|e| Item {
            event: e.clone(),
            decrypted: None,
        })
        .collect();
    let _ = Timeline::build(&items);
}

/// Compacting `data` as an event of `room` by `author` either declines or gives bytes that
/// expand to exactly `data`, as long as it says.
fn compacts_whole(data: &[u8], room: &RoomId, author: &UserId) -> bool {
    let Some(small) = compact(data, room, author) else {
        return false;
    };
    assert_eq!(small.len() + keys_len(&small), data.len(), "keys_len");
    let back = expand(&small, room, author);
    assert_eq!(back.as_deref(), Some(data), "compact then expand changed the bytes");
    true
}

fuzz_target!(|data: &[u8]| {
    // Keys taken from the input itself, where a real event keeps them, and keys of nothing.
    let key_at = |at: usize| data.get(at..at + 32).and_then(RoomId::from_slice);
    let (room, author) = (key_at(2).unwrap_or(RoomId([0; 32])), UserId([1; 32]));
    compacts_whole(data, &room, &author);
    let _ = expand(data, &room, &author);
    let decoded = decode_event(data);
    let validated = validate(data);
    match (&decoded, &validated) {
        (Err(d), Err(v)) => assert_eq!(d, v, "decoding and validation refuse differently"),
        (Err(d), Ok(_)) => panic!("validation accepted bytes that do not decode: {d}"),
        (Ok(_), _) => {}
    }
    if let Ok(event) = &decoded {
        assert_eq!(encode(event), data, "a decoded event is not canonical");
        assert_eq!(event.to_bytes(), data);
        let room = event.content.room.unwrap_or(RoomId([0; 32]));
        assert!(
            compacts_whole(data, &room, &event.content.author),
            "a decoded event does not compact"
        );
        room_rules(event);
    }
    if let Ok(valid) = &validated {
        let id: [u8; 32] = Sha256::digest(data).into();
        assert_eq!(valid.id().0, id, "the id is not SHA-256 of the bytes");
        assert_eq!(valid.bytes(), data);
        assert_eq!(encode(valid.event()), data);
        assert_eq!(Ok(valid.event()), decoded.as_ref());
        let _ = valid.room();
        let _ = valid.event().content.body.kind_code();
        let _ = RoomState::default().check(valid.event());
    }
});
