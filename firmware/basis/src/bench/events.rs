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

/// Signs a user's events as a client would, each a millisecond of clock after the last,
/// starting now: for benchmarks that post through a node's API.
pub struct Signer<'a> {
    key: &'a UserKey,
    t: u64,
}

impl<'a> Signer<'a> {
    /// A signer for `key`, its clock starting now.
    pub fn new(key: &'a UserKey) -> Signer<'a> {
        Signer {
            key,
            t: crate::node::wall_millis(),
        }
    }

    /// The next event of `room` (`None`: a room's create event) with `body`.
    pub fn sign(&mut self, room: Option<basis_core::RoomId>, body: Body) -> basis_core::Event {
        self.t += 1;
        EventContent {
            version: PROTOCOL_VERSION,
            room,
            author: self.key.id(),
            parents: vec![],
            time: Timestamp::new(self.t, 0),
            body,
        }
        .sign(self.key)
    }

    /// The create event of an unencrypted room named `name`.
    pub fn create_room(&mut self, name: &str) -> basis_core::Event {
        self.sign(
            None,
            Body::Create(RoomCreate {
                name: name.into(),
                encrypted: false,
                history: History::SinceJoin,
            }),
        )
    }
}
