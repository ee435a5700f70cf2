//! Test vectors for the canonical encoding: fixed keys and inputs, and the exact bytes, ids
//! and signatures they give. The committed copy lives in `tests/vectors/events.json`; a second
//! implementation (a browser client) checks itself against that file.

use serde::{Deserialize, Serialize};

use crate::body::{
    Body, FileManifest, History, KeyShare, MembershipAction, MessageBody, Profile, ReceiptKind,
    RoomCreate, RoomSettings, SealedKey,
};
use crate::encoding::encode;
use crate::event::{EventContent, PROTOCOL_VERSION};
use crate::hlc::Timestamp;
use crate::ids::EventId;
use crate::keys::UserKey;

/// A valid event: inputs and the exact outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidVector {
    /// What the vector shows.
    pub name: String,
    /// The author's 32-byte ed25519 secret, hex.
    pub author_secret: String,
    /// The content that is signed.
    pub content: EventContent,
    /// Canonical encoding of the content, hex.
    pub content_hex: String,
    /// Signature over the signing context and the content bytes, hex.
    pub signature_hex: String,
    /// Complete wire bytes (content then signature), hex.
    pub event_hex: String,
    /// SHA-256 of the wire bytes.
    pub id: EventId,
}

/// Bytes every implementation must refuse, and the error code it refuses them with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidVector {
    /// What is wrong.
    pub name: String,
    /// The bytes, hex.
    pub event_hex: String,
    /// The error code ([`crate::EventError::code`]).
    pub error: String,
}

/// The whole vector file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vectors {
    /// Events that must be accepted, with their exact bytes.
    pub valid: Vec<ValidVector>,
    /// Bytes that must be refused.
    pub invalid: Vec<InvalidVector>,
}

/// Secret of the vectors' first author ("alice"): bytes 0x00..0x1f.
pub fn alice() -> UserKey {
    UserKey::from_secret(std::array::from_fn(|i| i as u8))
}

/// Secret of the vectors' second author ("bob"): bytes 0x20..0x3f.
pub fn bob() -> UserKey {
    UserKey::from_secret(std::array::from_fn(|i| 0x20 + i as u8))
}

fn make(name: &str, key: &UserKey, content: EventContent) -> ValidVector {
    let content_hex = hex::encode(encode(&content));
    let event = content.clone().sign(key);
    ValidVector {
        name: name.to_string(),
        author_secret: hex::encode(key.secret_bytes()),
        content,
        content_hex,
        signature_hex: hex::encode(event.signature),
        event_hex: hex::encode(event.to_bytes()),
        id: event.id(),
    }
}

const T0: u64 = 1_700_000_000_000;

/// Builds every vector from its fixed inputs.
pub fn all_vectors() -> Vectors {
    let (a, b) = (alice(), bob());
    let content = |author: &UserKey, room, parents, t: u64, body| EventContent {
        version: PROTOCOL_VERSION,
        room,
        author: author.id(),
        parents,
        time: Timestamp::new(T0 + t, 0),
        body,
    };
    let create = make(
        "room create",
        &a,
        content(
            &a,
            None,
            vec![],
            0,
            Body::Create(RoomCreate {
                name: "Field team".into(),
                encrypted: false,
                history: History::SinceJoin,
            }),
        ),
    );
    let room = Some(create.id.into());
    let invite = make(
        "membership invite",
        &a,
        content(
            &a,
            room,
            vec![create.id],
            1,
            Body::Membership {
                action: MembershipAction::Invite,
                target: b.id(),
            },
        ),
    );
    let join = make(
        "membership join",
        &b,
        content(
            &b,
            room,
            vec![invite.id],
            2,
            Body::Membership {
                action: MembershipAction::Join,
                target: b.id(),
            },
        ),
    );
    let text = make(
        "text message with non-ASCII text",
        &b,
        content(
            &b,
            room,
            vec![join.id],
            3,
            Body::Message(MessageBody::Text {
                text: "Water at the school, 14:00 \u{1f6b0}".into(),
            }),
        ),
    );
    let msg = |name: &str, key: &UserKey, t: u64, body: MessageBody| {
        make(
            name,
            key,
            content(key, room, vec![text.id], t, Body::Message(body)),
        )
    };
    let mut valid = vec![
        msg(
            "edit",
            &b,
            4,
            MessageBody::Edit {
                target: text.id,
                text: "Water at the school, 15:00".into(),
            },
        ),
        msg(
            "reaction",
            &a,
            5,
            MessageBody::Reaction {
                target: text.id,
                key: "\u{1f44d}".into(),
            },
        ),
        msg("delete", &b, 6, MessageBody::Delete { target: text.id }),
        msg(
            "file manifest",
            &a,
            7,
            MessageBody::File(FileManifest {
                name: "map.png".into(),
                media_type: "image/png".into(),
                size: 123_456,
                sha256: [0x5a; 32],
            }),
        ),
        msg(
            "encrypted message",
            &a,
            8,
            MessageBody::Encrypted {
                session_id: b"session-1".to_vec(),
                ciphertext: vec![1, 2, 3, 4, 5, 6, 7, 8, 9],
            },
        ),
        make(
            "receipt",
            &a,
            content(
                &a,
                room,
                vec![text.id],
                9,
                Body::Receipt {
                    kind: ReceiptKind::Read,
                    up_to: text.id,
                },
            ),
        ),
        make(
            "settings",
            &a,
            content(
                &a,
                room,
                vec![text.id],
                10,
                Body::Settings(RoomSettings {
                    name: Some("Field team north".into()),
                    retention_secs: Some(30 * 24 * 3600),
                    history: None,
                }),
            ),
        ),
        make(
            "key share",
            &a,
            content(
                &a,
                room,
                vec![text.id],
                11,
                Body::KeyShare(KeyShare {
                    session_id: b"session-1".to_vec(),
                    keys: vec![SealedKey {
                        recipient: b.id(),
                        recipient_key: [0x11; 32],
                        encapsulated: vec![0x22; 32],
                        ciphertext: vec![0x33; 48],
                    }],
                }),
            ),
        ),
        make(
            "profile",
            &b,
            content(
                &b,
                Some(crate::ids::profile_room(&b.id())),
                vec![],
                12,
                Body::Profile(Profile {
                    name: "Bob".into(),
                    agreement_key: [0x44; 32],
                }),
            ),
        ),
    ];
    valid.splice(0..0, [create, invite, join, text.clone()]);
    let mut invalid = invalid_vectors(&text, &a);
    let misplaced = content(
        &b,
        room,
        vec![],
        13,
        Body::Profile(Profile {
            name: "Bob".into(),
            agreement_key: [0x44; 32],
        }),
    );
    invalid.push(InvalidVector {
        name: "profile outside its profile room".into(),
        event_hex: hex::encode(misplaced.sign(&b).to_bytes()),
        error: "invalid_field".into(),
    });
    Vectors { valid, invalid }
}

fn invalid_vectors(text: &ValidVector, a: &UserKey) -> Vec<InvalidVector> {
    let good = hex::decode(&text.event_hex).unwrap_or_default();
    let bad = |name: &str, bytes: Vec<u8>, error: &str| InvalidVector {
        name: name.into(),
        event_hex: hex::encode(bytes),
        error: error.into(),
    };
    let mut trailing = good.clone();
    trailing.push(0);
    let mut flipped = good.clone();
    if let Some(last) = flipped.last_mut() {
        *last ^= 1;
    }
    // The text vector's room is `Some(..)`: byte 1 is the option tag 0x01. Replace the
    // one-byte parents count 0x01 (after version, tag, 32-byte room, 32-byte author) with the
    // overlong form 0x81 0x00.
    let mut overlong = good.clone();
    overlong.splice(66..67, [0x81, 0x00]);
    let mut v2 = text.content.clone();
    v2.version = 2;
    let forged_author = {
        let mut c = text.content.clone();
        c.author = a.id();
        // Signed by bob's key (text's author) but claims alice.
        c.sign(&bob()).to_bytes()
    };
    let mut oversize = text.content.clone();
    oversize.body = Body::Message(MessageBody::Text {
        text: "x".repeat(crate::limits::MAX_EVENT_BYTES),
    });
    vec![
        bad("trailing byte", trailing, "non_canonical"),
        bad("overlong varint", overlong, "non_canonical"),
        bad("signature bit flipped", flipped, "bad_signature"),
        bad("claims another author", forged_author, "bad_signature"),
        bad(
            "unknown version",
            v2.sign(&bob()).to_bytes(),
            "unknown_version",
        ),
        bad("oversize", oversize.sign(&bob()).to_bytes(), "oversize"),
        bad("truncated", good[..good.len() / 2].to_vec(), "malformed"),
        bad("empty", vec![], "malformed"),
    ]
}
