//! Property tests of the encoding and validation.

use basis_core::body::{Body, History, MembershipAction, MessageBody, ReceiptKind, RoomCreate};
use basis_core::encoding::decode_event;
use basis_core::validate::validate;
use basis_core::{EventContent, EventId, PROTOCOL_VERSION, RoomId, Timestamp, UserKey};
use proptest::prelude::*;

fn arb_id() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

fn arb_message() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        ".{0,200}".prop_map(|text| MessageBody::Text { text }),
        (arb_id(), ".{0,100}").prop_map(|(t, text)| MessageBody::Edit {
            target: EventId(t),
            text
        }),
        arb_id().prop_map(|t| MessageBody::Delete { target: EventId(t) }),
        (arb_id(), ".{1,8}").prop_map(|(t, key)| MessageBody::Reaction {
            target: EventId(t),
            key
        }),
        (
            prop::collection::vec(any::<u8>(), 1..16),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(session_id, ciphertext)| MessageBody::Encrypted {
                session_id,
                ciphertext
            }),
    ]
}

/// A body together with whether it is a create event (which must name no room).
fn arb_body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (".{0,40}", any::<bool>()).prop_map(|(name, encrypted)| Body::Create(RoomCreate {
            name,
            encrypted,
            history: History::SinceJoin
        })),
        arb_id().prop_map(|t| Body::Membership {
            action: MembershipAction::Invite,
            target: basis_core::UserId(t)
        }),
        arb_message().prop_map(Body::Message),
        arb_id().prop_map(|t| Body::Receipt {
            kind: ReceiptKind::Delivered,
            up_to: EventId(t)
        }),
    ]
}

fn arb_content(key: &UserKey) -> impl Strategy<Value = EventContent> {
    let author = key.id();
    (
        arb_id(),
        prop::collection::hash_set(arb_id(), 0..8),
        0u64..(1 << 47),
        any::<u16>(),
        arb_body(),
    )
        .prop_map(move |(room, parents, millis, counter, body)| {
            let room = match body {
                Body::Create(_) => None,
                _ => Some(RoomId(room)),
            };
            EventContent {
                version: PROTOCOL_VERSION,
                room,
                author,
                parents: parents.into_iter().map(EventId).collect(),
                time: Timestamp::new(millis, counter),
                body,
            }
        })
}

fn key() -> UserKey {
    UserKey::from_secret([9; 32])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_decode_round_trips(content in arb_content(&key())) {
        let event = content.sign(&key());
        let bytes = event.to_bytes();
        let decoded = decode_event(&bytes).expect("decodes");
        prop_assert_eq!(&decoded, &event);
        let valid = validate(&bytes).expect("valid");
        prop_assert_eq!(valid.id(), event.id());
        prop_assert_eq!(valid.bytes(), &bytes[..]);
    }

    #[test]
    fn any_single_bit_flip_fails_validation(content in arb_content(&key()), pick in any::<prop::sample::Index>()) {
        let bytes = content.sign(&key()).to_bytes();
        let bit = pick.index(bytes.len() * 8);
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(validate(&flipped).is_err(), "flip of bit {} was accepted", bit);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = validate(&bytes);
    }
}

#[test]
fn every_bit_flip_of_one_event_fails() {
    // Exhaustive over one event, beside the sampled property above.
    let content = EventContent {
        version: PROTOCOL_VERSION,
        room: Some(RoomId([3; 32])),
        author: key().id(),
        parents: vec![EventId([4; 32])],
        time: Timestamp::new(1_700_000_000_000, 1),
        body: Body::Message(MessageBody::Text {
            text: "hello".into(),
        }),
    };
    let bytes = content.sign(&key()).to_bytes();
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(
            validate(&flipped).is_err(),
            "flip of bit {bit} was accepted"
        );
    }
}
