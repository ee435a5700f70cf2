//! Signed test events for the benchmarks, made before any timing starts.

use basis_core::validate::{ValidEvent, validate_event};
use basis_core::{
    Body, EventContent, History, MessageBody, PROTOCOL_VERSION, RoomCreate, Timestamp, UserKey,
};

/// A room of `n` text messages (plus its create event) by a few authors, ~200-byte bodies,
/// one message every 10 ms of author time.
pub fn room(n: usize) -> Vec<ValidEvent> {
    let keys: Vec<UserKey> = (1..=4u8).map(|i| UserKey::from_secret([i; 32])).collect();
    let t0 = 1_800_000_000_000u64;
    let sign = |key: &UserKey, room, t: u64, body| {
        let c = EventContent {
            version: PROTOCOL_VERSION,
            room,
            author: key.id(),
            parents: vec![],
            time: Timestamp::new(t0 + t, 0),
            body,
        };
        validate_event(c.sign(key))
    };
    let Ok(create) = sign(
        &keys[0],
        None,
        0,
        Body::Create(RoomCreate {
            name: "bench".into(),
            encrypted: false,
            history: History::SinceJoin,
        }),
    ) else {
        return Vec::new();
    };
    let room = Some(create.room());
    let mut out = Vec::with_capacity(n + 1);
    out.push(create);
    let filler = "x".repeat(180);
    for i in 0..n {
        let key = &keys[i % keys.len()];
        let body = Body::Message(MessageBody::Text {
            text: format!("{i} {filler}"),
        });
        if let Ok(e) = sign(key, room, 10 + 10 * i as u64, body) {
            out.push(e);
        }
    }
    out
}
