//! Writing a user's new events: a hybrid clock that has seen the node's clock and the room's
//! newest events gives the timestamp; the room's heads become the parents.
//!
//! Pure: the caller passes the wall-clock reading in, so the command-line client and the
//! browser client (which reads the time from JavaScript) sign events the same way.

use crate::body::Body;
use crate::event::{Event, EventContent, PROTOCOL_VERSION};
use crate::hlc::{Clock, Timestamp};
use crate::ids::{EventId, RoomId};
use crate::keys::UserKey;

/// Signs events for one user, with timestamps that sort after everything the user has seen.
#[derive(Debug, Clone, Default)]
pub struct Composer {
    clock: Clock,
}

impl Composer {
    /// A composer whose clock has seen `seen` (typically the node's hybrid clock).
    pub fn new(seen: Timestamp) -> Composer {
        let mut clock = Clock::new();
        clock.observe(seen);
        Composer { clock }
    }

    /// Lets the clock see a timestamp (of an event the user has seen, or the node's clock).
    pub fn observe(&mut self, seen: Timestamp) {
        self.clock.observe(seen);
    }

    /// Signs an event with this body as the holder of `key`, at wall-clock `wall_millis`.
    pub fn sign(
        &mut self,
        key: &UserKey,
        room: Option<RoomId>,
        parents: Vec<EventId>,
        body: Body,
        wall_millis: u64,
    ) -> Event {
        let time = self.clock.tick(wall_millis);
        EventContent {
            version: PROTOCOL_VERSION,
            room,
            author: key.id(),
            parents,
            time,
            body,
        }
        .sign(key)
    }

    /// Signs an event for a room whose newest events are `heads` (the parents) and whose
    /// newest timestamp is `latest` (observed first, so the event sorts after it).
    pub fn sign_in_room(
        &mut self,
        key: &UserKey,
        room: Option<RoomId>,
        heads: Vec<EventId>,
        latest: Timestamp,
        body: Body,
        wall_millis: u64,
    ) -> Event {
        self.observe(latest);
        self.sign(key, room, heads, body, wall_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{MembershipAction, MessageBody};
    use crate::ids::UserId;
    use crate::validate::validate;

    #[test]
    fn signed_events_validate_and_sort_after_what_was_seen() {
        let key = UserKey::from_secret([5; 32]);
        let seen = Timestamp::new(2_000_000_000_000, 9);
        let mut c = Composer::new(seen);
        // A wall clock far behind the node's: the event still sorts after what was seen.
        let e = c.sign(
            &key,
            Some(RoomId([1; 32])),
            vec![EventId([2; 32])],
            Body::Message(MessageBody::Text { text: "hi".into() }),
            1_000,
        );
        assert!(e.content.time > seen);
        assert_eq!(e.content.author, key.id());
        assert_eq!(e.content.parents, vec![EventId([2; 32])]);
        let valid = validate(&e.to_bytes()).unwrap();
        assert_eq!(valid.id(), e.id());
    }

    #[test]
    fn room_events_observe_the_latest_time_and_keep_order() {
        let key = UserKey::from_secret([6; 32]);
        let mut c = Composer::default();
        let latest = Timestamp::new(3_000_000_000_000, 0);
        let body = Body::Membership {
            action: MembershipAction::Join,
            target: UserId(key.id().0),
        };
        let a = c.sign_in_room(&key, Some(RoomId([1; 32])), vec![], latest, body.clone(), 5);
        let b = c.sign_in_room(&key, Some(RoomId([1; 32])), vec![], latest, body, 5);
        assert!(a.content.time > latest);
        assert!(b.content.time > a.content.time);
    }
}
