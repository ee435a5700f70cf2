//! The generator of the end-to-end encryption test vectors, `tests/vectors/e2ee.json`
//! (`docs/E2EE.md` §10).
//!
//! Every input is fixed: user secrets, salts and nonces, the Megolm ratchet and signing key,
//! the HPKE ephemeral keying material. Everything else follows deterministically (Argon2id,
//! XChaCha20-Poly1305, HPKE with a given ephemeral key, Megolm, Ed25519), so the file is
//! reproduced byte for byte. Test-only: the fixed-randomness helpers it calls exist only in
//! test builds.
//!
//! `committed_file_matches_the_generator` fails when the code and the committed file
//! disagree; after a deliberate change, regenerate with
//! `BASIS_REGENERATE_VECTORS=1 cargo test -p basis-e2ee --lib vectors::committed_file` and review the diff.
//! `firmware/basis-e2ee/tests/vectors.rs` reads the file back through the public API.

use std::collections::BTreeSet;
use std::convert::Infallible;

use basis_core::encoding::encode;
use basis_core::{
    Body, Event, EventContent, EventId, FileManifest, MessageBody, PROTOCOL_VERSION, RoomId,
    Timestamp, UserId, UserKey,
};
use serde::Serialize;
use vodozemac::megolm::{GroupSession, InboundGroupSession, SessionKey};

use crate::keyfile::{self, KdfParams};
use crate::outbound::OutboundSession;
use crate::plaintext::Plaintext;
use crate::seal::{Binding, seal_session_key_with_rng};
use crate::secrets::UserSecrets;
use crate::state::seal_state_with_nonce;

/// Where the committed file lives, from this crate's directory.
const PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/e2ee.json");

/// Wall-clock base of the vectors: the same as `tests/vectors/events.json`.
const T0: u64 = 1_700_000_000_000;

/// The whole file.
#[derive(Serialize)]
struct VectorFile {
    about: String,
    room: RoomId,
    other_room: RoomId,
    users: Vec<UserVector>,
    key_files: Vec<KeyFileVector>,
    plaintexts: Vec<PlaintextVector>,
    bad_plaintexts: Vec<BadBytes>,
    session: SessionVector,
    key_share: KeyShareVector,
    messages: Vec<MessageVector>,
    refusals: Vec<Refusal>,
    state_files: Vec<StateVector>,
    file: FileVector,
}

/// A small file sealed in chunks (§13), and the message that carries it.
#[derive(Serialize)]
struct FileVector {
    key: String,
    chunk_size: u32,
    size: u64,
    aad_hex: String,
    plaintext_hex: String,
    chunks: Vec<FileChunkVector>,
    list_hex: String,
    address: String,
    descriptor_plaintext_hex: String,
    event_body_hex: String,
    event_hex: String,
    event_id: EventId,
    safe_names: Vec<SafeName>,
}

#[derive(Serialize)]
struct FileChunkVector {
    index: u64,
    last: bool,
    nonce: String,
    ciphertext_hex: String,
    sha256: String,
}

#[derive(Serialize)]
struct SafeName {
    given: String,
    safe: String,
}

#[derive(Serialize)]
struct UserVector {
    name: String,
    signing_secret: String,
    user_id: UserId,
    state_key: String,
    agreement_keys: Vec<AgreementVector>,
    secrets_hex: String,
}

#[derive(Serialize)]
struct AgreementVector {
    secret: String,
    public: String,
    created_ms: u64,
}

#[derive(Serialize)]
struct KeyFileVector {
    name: String,
    user: String,
    user_id: UserId,
    passphrase: String,
    passphrase_hex: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
    nonce: String,
    derived_key: String,
    header_hex: String,
    blob_hex: String,
    text: String,
}

#[derive(Serialize)]
struct PlaintextVector {
    name: String,
    room: RoomId,
    sender: UserId,
    body: MessageBody,
    hex: String,
}

#[derive(Serialize)]
struct BadBytes {
    name: String,
    hex: String,
    error: String,
}

#[derive(Serialize)]
struct SessionVector {
    sender: String,
    ratchet: String,
    ratchet_index: u32,
    signing_secret: String,
    session_id: String,
    session_id_base64: String,
    session_key: String,
    later_ratchets: Vec<RatchetVector>,
}

#[derive(Serialize)]
struct RatchetVector {
    index: u32,
    ratchet: String,
}

#[derive(Serialize)]
struct KeyShareVector {
    author: String,
    session_id: String,
    slots: Vec<SlotVector>,
    body_hex: String,
    event_hex: String,
    event_id: EventId,
}

#[derive(Serialize)]
struct SlotVector {
    recipient: String,
    recipient_user_id: UserId,
    recipient_key: String,
    ikm_e: String,
    info_hex: String,
    aad_hex: String,
    encapsulated: String,
    ciphertext: String,
}

#[derive(Serialize)]
struct MessageVector {
    name: String,
    message_index: u32,
    plaintext_hex: String,
    megolm_hex: String,
    body_hex: String,
    event_hex: String,
    event_id: EventId,
}

#[derive(Serialize)]
struct Refusal {
    name: String,
    reader: String,
    event_hex: String,
    error: String,
}

#[derive(Serialize)]
struct StateVector {
    name: String,
    user: String,
    label: String,
    nonce: String,
    plaintext_hex: String,
    sealed_hex: String,
}

/// `count` bytes `start, start + 1, …` (wrapping).
fn run<const N: usize>(start: u8) -> [u8; N] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

/// An RNG that yields exactly the 32 given bytes, then panics: HPKE draws its ephemeral
/// keying material (`ikmE`) from it in one call.
struct FixedIkm {
    bytes: [u8; 32],
    used: bool,
}

impl hpke::rand_core::TryRng for FixedIkm {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        unreachable!("HPKE asks for bytes only")
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        unreachable!("HPKE asks for bytes only")
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        assert!(!self.used && dst.len() == 32, "HPKE draws 32 bytes once");
        dst.copy_from_slice(&self.bytes);
        self.used = true;
        Ok(())
    }
}

impl hpke::rand_core::TryCryptoRng for FixedIkm {}

/// One user's fixed secrets.
struct Fixed {
    name: &'static str,
    signing: UserKey,
    state_key: [u8; 32],
    agreement: Vec<([u8; 32], u64)>,
}

impl Fixed {
    fn alice() -> Self {
        Self {
            name: "alice",
            signing: basis_core::vectors::alice(),
            state_key: run(0x40),
            agreement: vec![(run(0x60), T0)],
        }
    }

    fn bob() -> Self {
        Self {
            name: "bob",
            signing: basis_core::vectors::bob(),
            state_key: run(0x80),
            agreement: vec![(run(0xa0), T0 - 86_400_000), (run(0xc0), T0)],
        }
    }

    /// The secrets bytes, written by hand from the layout (`docs/E2EE.md` §2.1), then read by
    /// the crate: so the vector checks the reader against the documented layout.
    fn secrets_bytes(&self) -> Vec<u8> {
        let mut out = vec![1];
        out.extend_from_slice(&self.signing.secret_bytes());
        out.extend_from_slice(&self.state_key);
        assert!(self.agreement.len() < 128, "a one-byte count");
        out.push(self.agreement.len() as u8);
        for (secret, created_ms) in &self.agreement {
            out.extend_from_slice(secret);
            out.extend(postcard::to_allocvec(created_ms).unwrap());
        }
        out
    }

    fn secrets(&self) -> UserSecrets {
        UserSecrets::from_bytes(&self.secrets_bytes()).unwrap()
    }

    fn vector(&self) -> UserVector {
        let secrets = self.secrets();
        assert_eq!(secrets.to_bytes().unwrap().as_slice(), self.secrets_bytes());
        UserVector {
            name: self.name.into(),
            signing_secret: hex::encode(self.signing.secret_bytes()),
            user_id: secrets.user_id(),
            state_key: hex::encode(self.state_key),
            agreement_keys: self
                .agreement
                .iter()
                .zip(secrets.agreement_keys())
                .map(|((secret, created_ms), key)| AgreementVector {
                    secret: hex::encode(secret),
                    public: hex::encode(key.public()),
                    created_ms: *created_ms,
                })
                .collect(),
            secrets_hex: hex::encode(self.secrets_bytes()),
        }
    }
}

fn key_file(
    name: &str,
    user: &Fixed,
    passphrase: &str,
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
) -> KeyFileVector {
    let secrets = user.secrets();
    let text = keyfile::encrypt_with(&secrets, passphrase.as_bytes(), params, salt, nonce).unwrap();
    let blob = keyfile::unarmor(&text).unwrap();
    let derived = params.derive(passphrase.as_bytes(), &salt).unwrap();
    KeyFileVector {
        name: name.into(),
        user: user.name.into(),
        user_id: secrets.user_id(),
        passphrase: passphrase.into(),
        passphrase_hex: hex::encode(passphrase),
        memory_kib: params.memory_kib,
        iterations: params.iterations,
        parallelism: params.parallelism,
        salt: hex::encode(salt),
        nonce: hex::encode(nonce),
        derived_key: hex::encode(derived.as_slice()),
        header_hex: hex::encode(&blob[..keyfile::HEADER_LEN]),
        blob_hex: hex::encode(&blob),
        text,
    }
}

fn plaintext(name: &str, room: RoomId, sender: UserId, body: MessageBody) -> PlaintextVector {
    let hex = hex::encode(
        Plaintext {
            room,
            sender,
            body: body.clone(),
        }
        .to_bytes()
        .unwrap(),
    );
    PlaintextVector {
        name: name.into(),
        room,
        sender,
        body,
        hex,
    }
}

/// The Megolm session of the vectors: vodozemac's own serde pickle of a fresh session, with
/// the ratchet, counter and signing seed replaced by the fixed ones.
fn fixed_group_session(ratchet: &[u8; 128], index: u32, seed: &[u8; 32]) -> GroupSession {
    let fresh = GroupSession::new(crate::megolm_config()).pickle();
    let mut pickle = serde_json::to_value(&fresh).unwrap();
    pickle["ratchet"]["inner"] = serde_json::json!(ratchet.to_vec());
    pickle["ratchet"]["counter"] = serde_json::json!(index);
    pickle["signing_key"] = serde_json::json!({ "Normal": seed.to_vec() });
    GroupSession::from_pickle(serde_json::from_value(pickle).unwrap())
}

/// The ratchet at indices that advance each of its four parts (§4.2), as vodozemac's inbound
/// session exports it: 1 byte of version, 4 of index, then the 128 ratchet bytes.
fn later_ratchets(session_key: &[u8]) -> Vec<RatchetVector> {
    let key = SessionKey::from_bytes(session_key).unwrap();
    let mut inbound = InboundGroupSession::new(&key, crate::megolm_config());
    [1, 2, 255, 256, 257, 65_535, 65_536, 65_793, 16_777_216]
        .into_iter()
        .map(|index| {
            let export = inbound.export_at(index).unwrap().to_bytes();
            assert_eq!(export[1..5], index.to_be_bytes());
            RatchetVector {
                index,
                ratchet: hex::encode(&export[5..133]),
            }
        })
        .collect()
}

fn sign(key: &UserKey, room: RoomId, parent: EventId, offset_ms: u64, body: Body) -> Event {
    EventContent {
        version: PROTOCOL_VERSION,
        room: Some(room),
        author: key.id(),
        parents: vec![parent],
        time: Timestamp::new(T0 + offset_ms, 0),
        body,
    }
    .sign(key)
}

fn encrypted_parts(body: &MessageBody) -> (Vec<u8>, Vec<u8>) {
    match body {
        MessageBody::Encrypted {
            session_id,
            ciphertext,
        } => (session_id.clone(), ciphertext.clone()),
        other => panic!("not encrypted: {other:?}"),
    }
}

/// Builds the whole vector file from its fixed inputs.
fn generate() -> VectorFile {
    let events = basis_core::vectors::all_vectors();
    let create = &events.valid[0];
    let room: RoomId = create.id.into();
    // Any other 32 bytes: a room the messages were not written for.
    let other_room = RoomId([0x0e; 32]);
    let (alice_fixed, bob_fixed) = (Fixed::alice(), Fixed::bob());
    let (alice, bob) = (alice_fixed.secrets(), bob_fixed.secrets());

    let key_files = vec![
        key_file(
            "alice, cheapest accepted parameters, one agreement key",
            &alice_fixed,
            "correct horse battery staple",
            KdfParams::INSECURE_FOR_TESTS,
            run(0x00),
            run(0x10),
        ),
        key_file(
            "bob, recommended parameters, two agreement keys, non-ASCII passphrase",
            &bob_fixed,
            "Brücke über den Fluss, 14:00 ✓",
            KdfParams::RECOMMENDED,
            run(0x30),
            run(0x50),
        ),
    ];

    let target = events.valid[3].id;
    let plaintexts = vec![
        plaintext(
            "text",
            room,
            alice.user_id(),
            MessageBody::Text {
                text: "Water at the school, 14:00 🚰".into(),
            },
        ),
        plaintext(
            "edit",
            room,
            alice.user_id(),
            MessageBody::Edit {
                target,
                text: "Water at the school, 15:00".into(),
            },
        ),
        plaintext(
            "delete",
            room,
            bob.user_id(),
            MessageBody::Delete { target },
        ),
        plaintext(
            "reaction",
            room,
            bob.user_id(),
            MessageBody::Reaction {
                target,
                key: "👍".into(),
            },
        ),
        plaintext(
            "file",
            room,
            alice.user_id(),
            MessageBody::File(FileManifest {
                name: "map.png".into(),
                media_type: "image/png".into(),
                size: 123_456,
                sha256: [0x5a; 32],
            }),
        ),
    ];

    let mut nested = vec![1];
    nested.extend_from_slice(room.as_bytes());
    nested.extend_from_slice(alice.user_id().as_bytes());
    nested.extend(encode(&MessageBody::Encrypted {
        session_id: vec![1],
        ciphertext: vec![2],
    }));
    let mut trailing = hex::decode(&plaintexts[0].hex).unwrap();
    trailing.push(0);
    let mut version_2 = hex::decode(&plaintexts[0].hex).unwrap();
    version_2[0] = 2;
    let bad_plaintexts = vec![
        BadBytes {
            name: "nested encrypted body".into(),
            hex: hex::encode(nested),
            error: "nested_encrypted".into(),
        },
        BadBytes {
            name: "trailing byte".into(),
            hex: hex::encode(trailing),
            error: "malformed".into(),
        },
        BadBytes {
            name: "unknown version".into(),
            hex: hex::encode(version_2),
            error: "unsupported_version".into(),
        },
    ];

    // Alice's Megolm session, shared at index 0 to herself and bob.
    let ratchet: [u8; 128] = run(0x80);
    let seed: [u8; 32] = [0x5e; 32];
    let group = fixed_group_session(&ratchet, 0, &seed);
    let session_id_base64 = group.session_id();
    let mut outbound = OutboundSession::from_group_session(
        group,
        T0,
        BTreeSet::from([alice.user_id(), bob.user_id()]),
    );
    let session_id = outbound.session_id();
    let session_key = outbound.session_key_bytes();
    let session = SessionVector {
        sender: "alice".into(),
        ratchet: hex::encode(ratchet),
        ratchet_index: 0,
        signing_secret: hex::encode(seed),
        session_id: hex::encode(&session_id),
        session_id_base64,
        session_key: hex::encode(session_key.as_slice()),
        later_ratchets: later_ratchets(&session_key),
    };

    let binding = Binding {
        room,
        sender: alice.user_id(),
        session_id: session_id.clone(),
    };
    let mut slots = Vec::new();
    let mut sealed_keys = Vec::new();
    for (name, user, ikm) in [("alice", &alice, [0x01; 32]), ("bob", &bob, [0x02; 32])] {
        let mut rng = FixedIkm {
            bytes: ikm,
            used: false,
        };
        let sealed = seal_session_key_with_rng(
            user.user_id(),
            user.agreement_public(),
            &binding,
            &session_key,
            &mut rng,
        )
        .unwrap();
        slots.push(SlotVector {
            recipient: name.into(),
            recipient_user_id: user.user_id(),
            recipient_key: hex::encode(user.agreement_public()),
            ikm_e: hex::encode(ikm),
            info_hex: hex::encode(binding.info()),
            aad_hex: hex::encode(user.user_id().as_bytes()),
            encapsulated: hex::encode(&sealed.encapsulated),
            ciphertext: hex::encode(&sealed.ciphertext),
        });
        sealed_keys.push(sealed);
    }
    let share = basis_core::KeyShare {
        session_id: session_id.clone(),
        keys: sealed_keys,
    };
    let share_body = Body::KeyShare(share.clone());
    let share_event = sign(
        &alice_fixed.signing,
        room,
        create.id,
        100,
        share_body.clone(),
    );
    let key_share = KeyShareVector {
        author: "alice".into(),
        session_id: hex::encode(&session_id),
        slots,
        body_hex: hex::encode(encode(&share_body)),
        event_hex: hex::encode(share_event.to_bytes()),
        event_id: share_event.id(),
    };

    // Three messages at indices 0, 1, 2, then one whose plaintext names another room.
    let mut messages = Vec::new();
    let mut parent = share_event.id();
    for (i, p) in [&plaintexts[0], &plaintexts[1], &plaintexts[4]]
        .into_iter()
        .enumerate()
    {
        let inner = Plaintext::from_bytes(&hex::decode(&p.hex).unwrap()).unwrap();
        let body = outbound.encrypt(&inner).unwrap();
        let (_, megolm) = encrypted_parts(&body);
        let event_body = Body::Message(body);
        let event = sign(
            &alice_fixed.signing,
            room,
            parent,
            101 + i as u64,
            event_body.clone(),
        );
        parent = event.id();
        messages.push(MessageVector {
            name: p.name.clone(),
            message_index: i as u32,
            plaintext_hex: p.hex.clone(),
            megolm_hex: hex::encode(megolm),
            body_hex: hex::encode(encode(&event_body)),
            event_hex: hex::encode(event.to_bytes()),
            event_id: event.id(),
        });
    }

    let first_body = Body::Message(MessageBody::Encrypted {
        session_id: session_id.clone(),
        ciphertext: hex::decode(&messages[0].megolm_hex).unwrap(),
    });
    let replayed = sign(&bob_fixed.signing, room, parent, 110, first_body);
    let wrong_room_body = outbound
        .encrypt(&Plaintext {
            room: other_room,
            sender: alice.user_id(),
            body: MessageBody::Text {
                text: "meant for another room".into(),
            },
        })
        .unwrap();
    let wrong_room = sign(
        &alice_fixed.signing,
        room,
        parent,
        111,
        Body::Message(wrong_room_body),
    );
    let moved_share = sign(&alice_fixed.signing, other_room, create.id, 112, share_body);
    let mut flipped = hex::decode(&messages[0].megolm_hex).unwrap();
    // A byte of the AES ciphertext (after version 03, tag 08, index 00, tag 12, length).
    flipped[6] ^= 0x01;
    let tampered = sign(
        &alice_fixed.signing,
        room,
        parent,
        113,
        Body::Message(MessageBody::Encrypted {
            session_id: session_id.clone(),
            ciphertext: flipped,
        }),
    );
    let refusals = vec![
        Refusal {
            name: "bob posts alice's first ciphertext as his own".into(),
            reader: "bob".into(),
            event_hex: hex::encode(replayed.to_bytes()),
            error: "wrong_sender".into(),
        },
        Refusal {
            name: "alice's message whose plaintext names another room".into(),
            reader: "bob".into(),
            event_hex: hex::encode(wrong_room.to_bytes()),
            error: "wrong_room".into(),
        },
        Refusal {
            name: "alice's key share copied into another room".into(),
            reader: "bob".into(),
            event_hex: hex::encode(moved_share.to_bytes()),
            error: "sealed_key_does_not_open".into(),
        },
        Refusal {
            name: "alice's first message with one ciphertext bit flipped".into(),
            reader: "bob".into(),
            event_hex: hex::encode(tampered.to_bytes()),
            error: "megolm".into(),
        },
    ];

    let state_nonce: [u8; 24] = run(0xe0);
    let state_plain = b"any bytes: what a state file holds is the client's own business";
    let state_files = vec![StateVector {
        name: "alice's received sessions file".into(),
        user: "alice".into(),
        label: "basis/room-keys/v1".into(),
        nonce: hex::encode(state_nonce),
        plaintext_hex: hex::encode(state_plain),
        sealed_hex: hex::encode(
            seal_state_with_nonce(
                alice.state_key(),
                &state_nonce,
                b"basis/room-keys/v1",
                state_plain,
            )
            .unwrap(),
        ),
    }];

    let file = file_vector(&alice_fixed, &alice, &mut outbound, room, parent);

    VectorFile {
        about: "Test vectors of docs/E2EE.md (§10). Hex is lowercase; ids are hex. \
                Regenerate: BASIS_REGENERATE_VECTORS=1 cargo test -p basis-e2ee --lib vectors::committed_file"
            .into(),
        room,
        other_room,
        users: vec![alice_fixed.vector(), bob_fixed.vector()],
        key_files,
        plaintexts,
        bad_plaintexts,
        session,
        key_share,
        messages,
        refusals,
        state_files,
        file,
    }
}

/// The file of the vectors: 2 148 bytes (two full chunks of 1 024 and one of 100) sealed under
/// a fixed key, described in a plaintext, and sent as alice's Megolm message at index 4.
fn file_vector(
    alice_fixed: &Fixed,
    alice: &UserSecrets,
    outbound: &mut OutboundSession,
    room: RoomId,
    parent: EventId,
) -> FileVector {
    use basis_core::{FileDescriptor, Preview, safe_file_name};

    use crate::file::{CHUNK_AAD, ChunkSealer, FileKey, chunk_nonce};

    let key: [u8; 32] = run(0x70);
    let chunk_size = 1024;
    let data: Vec<u8> = (0..2148u32).map(|i| (i % 251) as u8).collect();
    let mut sealer =
        ChunkSealer::new(FileKey::from_bytes(key), data.len() as u64, chunk_size).unwrap();
    let mut chunks = Vec::new();
    let pieces: Vec<&[u8]> = data.chunks(chunk_size as usize).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let (cipher, hash) = sealer.seal_next(piece).unwrap();
        let last = i + 1 == pieces.len();
        chunks.push(FileChunkVector {
            index: i as u64,
            last,
            nonce: hex::encode(chunk_nonce(i as u64, last)),
            ciphertext_hex: hex::encode(&cipher),
            sha256: hex::encode(hash),
        });
    }
    let list = sealer.finish().unwrap();
    let descriptor = FileDescriptor {
        blob: list.blob_ref(),
        name: "Karte Nord.png".into(),
        media_type: "image/png".into(),
        key,
        preview: Some(Preview::Image {
            media_type: "image/png".into(),
            bytes: vec![0x89, 0x50, 0x4e, 0x47],
        }),
    };
    let inner = Plaintext {
        room,
        sender: alice.user_id(),
        body: MessageBody::Attachment(descriptor),
    };
    let body = Body::Message(outbound.encrypt(&inner).unwrap());
    let event = sign(&alice_fixed.signing, room, parent, 120, body.clone());
    FileVector {
        key: hex::encode(key),
        chunk_size,
        size: data.len() as u64,
        aad_hex: hex::encode(CHUNK_AAD),
        plaintext_hex: hex::encode(&data),
        chunks,
        list_hex: hex::encode(list.to_bytes()),
        address: hex::encode(list.address()),
        descriptor_plaintext_hex: hex::encode(inner.to_bytes().unwrap()),
        event_body_hex: hex::encode(encode(&body)),
        event_hex: hex::encode(event.to_bytes()),
        event_id: event.id(),
        safe_names: [
            "Karte Nord.png",
            "../../etc/passwd",
            "C:\\Users\\x\\report.pdf",
            "..",
            "a\nb\u{7}.txt",
            "photo\u{202e}gnp.exe",
        ]
        .into_iter()
        .map(|given| SafeName {
            given: given.into(),
            safe: safe_file_name(given),
        })
        .collect(),
    }
}

fn generated_text() -> String {
    let mut text = serde_json::to_string_pretty(&generate()).unwrap();
    text.push('\n');
    text
}

#[test]
fn committed_file_matches_the_generator() {
    // After a deliberate format change, BASIS_REGENERATE_VECTORS=1 writes the file instead of
    // checking it; never in CI, where this test must check.
    if std::env::var_os("BASIS_REGENERATE_VECTORS").is_some() {
        assert!(
            std::env::var_os("CI").is_none(),
            "BASIS_REGENERATE_VECTORS is for a developer's machine, not CI"
        );
        std::fs::write(PATH, generated_text()).expect("tests/vectors/e2ee.json is writable");
        return;
    }
    let committed = std::fs::read_to_string(PATH).expect("tests/vectors/e2ee.json is readable");
    let committed: serde_json::Value = serde_json::from_str(&committed).expect("it is JSON");
    let generated: serde_json::Value = serde_json::from_str(&generated_text()).unwrap();
    assert!(
        committed == generated,
        "tests/vectors/e2ee.json differs from what the code makes; after a deliberate change \
         regenerate with: BASIS_REGENERATE_VECTORS=1 cargo test -p basis-e2ee --lib vectors::committed_file"
    );
}

#[test]
fn generation_is_deterministic() {
    assert_eq!(generated_text(), generated_text());
}
