//! Building and signing the user's events: timestamps from a hybrid clock that has seen the
//! node's clock and the room's newest events, parents from the room's heads. The signing
//! itself is [`basis_core::Composer`], shared with the browser client.

use basis_core::{Body, Event, EventId, RoomId, Timestamp};
use basis_e2ee::UserSecrets;

use crate::node::wall_millis;
use basis_api::rooms::RoomInfo;

/// Signs events as the user.
pub struct Composer<'a> {
    secrets: &'a UserSecrets,
    inner: basis_core::Composer,
}

impl<'a> Composer<'a> {
    /// A composer whose clock has seen `node_time` (the node's hybrid clock).
    pub fn new(secrets: &'a UserSecrets, node_time: u64) -> Composer<'a> {
        Composer {
            secrets,
            inner: basis_core::Composer::new(Timestamp(node_time)),
        }
    }

    /// Lets the clock see a timestamp (of an event the user has seen).
    pub fn observe(&mut self, t: u64) {
        self.inner.observe(Timestamp(t));
    }

    /// Signs an event with this body.
    pub fn sign(&mut self, room: Option<RoomId>, parents: Vec<EventId>, body: Body) -> Event {
        self.inner.sign(
            self.secrets.signing_key(),
            room,
            parents,
            body,
            wall_millis(),
        )
    }

    /// Signs an event for a room, naming its heads as parents.
    pub fn sign_in_room(&mut self, info: &RoomInfo, body: Body) -> Event {
        let parents = info
            .heads
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect::<Vec<EventId>>();
        let room = info.room.parse().ok();
        self.inner.sign_in_room(
            self.secrets.signing_key(),
            room,
            parents,
            Timestamp(info.latest_time),
            body,
            wall_millis(),
        )
    }
}
