//! Building and signing the user's events: timestamps from a hybrid clock that has seen the
//! node's clock and the room's newest events, parents from the room's heads.

use basis_core::{Body, Clock, Event, EventContent, EventId, PROTOCOL_VERSION, RoomId, Timestamp};
use basis_e2ee::UserSecrets;

use crate::api::types::RoomInfo;
use crate::node::wall_millis;

/// Signs events as the user.
pub struct Composer<'a> {
    secrets: &'a UserSecrets,
    clock: Clock,
}

impl<'a> Composer<'a> {
    /// A composer whose clock has seen `node_time` (the node's hybrid clock).
    pub fn new(secrets: &'a UserSecrets, node_time: u64) -> Composer<'a> {
        let mut clock = Clock::new();
        clock.observe(Timestamp(node_time));
        Composer { secrets, clock }
    }

    /// Lets the clock see a timestamp (of an event the user has seen).
    pub fn observe(&mut self, t: u64) {
        self.clock.observe(Timestamp(t));
    }

    /// Signs an event with this body.
    pub fn sign(&mut self, room: Option<RoomId>, parents: Vec<EventId>, body: Body) -> Event {
        let time = self.clock.tick(wall_millis());
        EventContent {
            version: PROTOCOL_VERSION,
            room,
            author: self.secrets.user_id(),
            parents,
            time,
            body,
        }
        .sign(self.secrets.signing_key())
    }

    /// Signs an event for a room, naming its heads as parents.
    pub fn sign_in_room(&mut self, info: &RoomInfo, body: Body) -> Event {
        self.observe(info.latest_time);
        let parents = info
            .heads
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect::<Vec<EventId>>();
        let room = info.room.parse().ok();
        self.sign(room, parents, body)
    }
}
