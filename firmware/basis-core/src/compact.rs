//! An event's wire bytes without its room and author keys: the form a store keeps.
//!
//! Every event but a room's create event carries its room's 32-byte id, and every event
//! carries its author's 32-byte key, both at fixed places near the start (`docs/PROTOCOL.md`
//! §3: version, room tag, room, author). A store that already files events by room and can
//! number authors need not write those 64 bytes with each event. [`compact`] takes them out;
//! [`expand`] puts them back, byte for byte, so the wire bytes (and with them the event id and
//! the signature) are exactly what they were.
//!
//! Both work on the layout of [`PROTOCOL_VERSION`] only, and [`compact`] refuses (returns
//! `None`) unless the bytes it would drop are exactly the keys given: whatever it returns,
//! [`expand`] restores whole.

use crate::event::PROTOCOL_VERSION;
use crate::ids::{RoomId, UserId};

/// Length of a room id or an author key.
const KEY: usize = 32;

/// Room tag of a create event (`room` = None) and of every other event (`room` = Some).
const NO_ROOM: u8 = 0;
const ROOM: u8 = 1;

/// The wire bytes `wire` of an event of `room` by `author`, without those two keys: the
/// version and room tag, then everything after the author. `None` if `wire` is not laid out
/// as [`PROTOCOL_VERSION`] lays it out with exactly these keys in place (the caller then
/// keeps the wire bytes whole). A create event has no room field, so only its author goes.
pub fn compact(wire: &[u8], room: &RoomId, author: &UserId) -> Option<Vec<u8>> {
    let (&version, rest) = wire.split_first()?;
    let (&tag, rest) = rest.split_first()?;
    if version != PROTOCOL_VERSION {
        return None;
    }
    let rest = match tag {
        NO_ROOM => rest,
        ROOM => rest.strip_prefix(room.as_bytes().as_slice())?,
        _ => return None,
    };
    let rest = rest.strip_prefix(author.as_bytes().as_slice())?;
    let mut out = Vec::with_capacity(2 + rest.len());
    out.extend_from_slice(&[version, tag]);
    out.extend_from_slice(rest);
    Some(out)
}

/// The wire bytes of an event kept as `compact` (from [`compact`]) in `room` by `author`.
/// `None` if `compact` is not something [`compact`] returns.
pub fn expand(compact: &[u8], room: &RoomId, author: &UserId) -> Option<Vec<u8>> {
    let (&version, rest) = compact.split_first()?;
    let (&tag, rest) = rest.split_first()?;
    if version != PROTOCOL_VERSION {
        return None;
    }
    let mut out = Vec::with_capacity(compact.len() + 2 * KEY);
    out.extend_from_slice(&[version, tag]);
    match tag {
        NO_ROOM => {}
        ROOM => out.extend_from_slice(room.as_bytes()),
        _ => return None,
    }
    out.extend_from_slice(author.as_bytes());
    out.extend_from_slice(rest);
    Some(out)
}

/// How many bytes [`expand`] adds to `compact`: the wire size of an event kept compact is
/// its stored size plus this. 0 for bytes [`expand`] refuses.
pub fn keys_len(compact: &[u8]) -> usize {
    match compact.get(..2) {
        Some(&[PROTOCOL_VERSION, NO_ROOM]) => KEY,
        Some(&[PROTOCOL_VERSION, ROOM]) => 2 * KEY,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{Body, History, MessageBody, RoomCreate};
    use crate::event::EventContent;
    use crate::hlc::Timestamp;
    use crate::keys::UserKey;
    use crate::validate::{ValidEvent, validate_event};

    fn event(room: Option<RoomId>, body: Body) -> ValidEvent {
        let key = UserKey::from_secret([5; 32]);
        let content = EventContent {
            version: PROTOCOL_VERSION,
            room,
            author: key.id(),
            parents: vec![],
            time: Timestamp::new(1_700_000_000_000, 3),
            body,
        };
        validate_event(content.sign(&key)).unwrap()
    }

    fn create() -> ValidEvent {
        event(
            None,
            Body::Create(RoomCreate {
                name: "ops".into(),
                encrypted: false,
                history: History::Shared,
            }),
        )
    }

    #[test]
    fn a_compacted_event_expands_to_its_exact_wire_bytes_and_is_64_bytes_shorter() {
        let create = create();
        let message = event(
            Some(create.room()),
            Body::Message(MessageBody::Text {
                text: "water at the school".into(),
            }),
        );
        for (ev, saved) in [(&create, 32), (&message, 64)] {
            let author = ev.event().content.author;
            let small = compact(ev.bytes(), &ev.room(), &author).unwrap();
            assert_eq!(small.len() + saved, ev.bytes().len());
            assert_eq!(keys_len(&small), saved);
            let whole = expand(&small, &ev.room(), &author).unwrap();
            assert_eq!(whole, ev.bytes());
            assert_eq!(validate_event_bytes(&whole).id(), ev.id());
        }
    }

    fn validate_event_bytes(bytes: &[u8]) -> ValidEvent {
        validate_event(crate::encoding::decode_event(bytes).unwrap()).unwrap()
    }

    #[test]
    fn compact_refuses_bytes_that_do_not_hold_the_keys_it_is_given() {
        let create = create();
        let message = event(
            Some(create.room()),
            Body::Message(MessageBody::Text { text: "hi".into() }),
        );
        let author = message.event().content.author;
        let other_room = RoomId([7; 32]);
        let other_author = UserId([8; 32]);
        assert_eq!(compact(message.bytes(), &other_room, &author), None);
        assert_eq!(
            compact(message.bytes(), &message.room(), &other_author),
            None
        );
        let mut future = message.bytes().to_vec();
        future[0] = PROTOCOL_VERSION + 1;
        assert_eq!(compact(&future, &message.room(), &author), None);
        let mut bad_tag = message.bytes().to_vec();
        bad_tag[1] = 2;
        assert_eq!(compact(&bad_tag, &message.room(), &author), None);
        for short in [&[][..], &[PROTOCOL_VERSION], &message.bytes()[..40]] {
            assert_eq!(compact(short, &message.room(), &author), None);
        }
    }

    #[test]
    fn expand_refuses_what_compact_never_returns() {
        let (room, author) = (RoomId([1; 32]), UserId([2; 32]));
        for bad in [
            &[][..],
            &[PROTOCOL_VERSION][..],
            &[PROTOCOL_VERSION + 1, ROOM][..],
            &[PROTOCOL_VERSION, 9, 0][..],
        ] {
            assert_eq!(expand(bad, &room, &author), None);
            assert_eq!(keys_len(bad), 0);
        }
    }
}
