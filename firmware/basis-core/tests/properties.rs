//! Property tests of the encoding and validation.

use basis_core::body::{Body, History, MembershipAction, MessageBody, ReceiptKind, RoomCreate};
use basis_core::encoding::decode_event;
use basis_core::validate::validate;
use basis_core::{
    BlobRef, EventContent, EventId, FileDescriptor, PROTOCOL_VERSION, Preview, RoomId, Timestamp,
    UserKey,
};
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
        (
            arb_blob(),
            ".{0,40}",
            arb_id(),
            prop::option::of(arb_preview())
        )
            .prop_map(|(blob, name, key, preview)| MessageBody::Attachment(
                FileDescriptor {
                    blob,
                    name,
                    media_type: "image/jpeg".into(),
                    key,
                    preview,
                }
            )),
        (
            arb_blob(),
            prop::collection::vec(any::<u8>(), 1..16),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(blob, session_id, ciphertext)| {
                MessageBody::EncryptedAttachment {
                    blob,
                    session_id,
                    ciphertext,
                }
            }),
    ]
}

/// A file reference the protocol allows (`docs/PROTOCOL.md` §9.3).
fn arb_blob() -> impl Strategy<Value = BlobRef> {
    // At most 16 384 chunks: n whole chunks (n < 16 384) and a part of one more.
    (arb_id(), 1024u32..=512 * 1024, 0u64..16_384, any::<u32>()).prop_map(
        |(address, chunk_size, n, tail)| BlobRef {
            address,
            size: n * u64::from(chunk_size) + u64::from(tail % chunk_size),
            chunk_size,
        },
    )
}

fn arb_preview() -> impl Strategy<Value = Preview> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|bytes| Preview::Image {
            media_type: "image/png".into(),
            bytes
        }),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(
            |(duration_ms, levels)| Preview::Waveform {
                duration_ms,
                levels
            }
        ),
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

#[test]
fn file_messages_naming_an_impossible_layout_are_refused() {
    let blob = BlobRef {
        address: [1; 32],
        size: 10,
        chunk_size: 100,
    };
    let descriptor = FileDescriptor {
        blob,
        name: "a".into(),
        media_type: "b".into(),
        key: [2; 32],
        preview: None,
    };
    let bodies = [
        (MessageBody::Attachment(descriptor.clone()), "body.file"),
        (
            MessageBody::EncryptedAttachment {
                blob,
                session_id: vec![1],
                ciphertext: vec![],
            },
            "body.blob",
        ),
        (
            MessageBody::EncryptedAttachment {
                blob: BlobRef {
                    chunk_size: 1024,
                    ..blob
                },
                session_id: vec![],
                ciphertext: vec![],
            },
            "body.session_id",
        ),
        (
            MessageBody::Attachment(FileDescriptor {
                name: "x".repeat(256),
                blob: BlobRef {
                    chunk_size: 1024,
                    ..blob
                },
                ..descriptor
            }),
            "body.file",
        ),
    ];
    for (body, field) in bodies {
        let event = EventContent {
            version: PROTOCOL_VERSION,
            room: Some(RoomId([7; 32])),
            author: key().id(),
            parents: vec![],
            time: Timestamp::new(1_700_000_000_000, 0),
            body: Body::Message(body),
        }
        .sign(&key());
        match validate(&event.to_bytes()) {
            Err(basis_core::EventError::InvalidField { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}
