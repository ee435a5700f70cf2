//! Checks the committed end-to-end encryption vectors (`tests/vectors/e2ee.json`,
//! `docs/E2EE.md` §10) through the crate's public API, the way a reader uses it: secrets are
//! read from their bytes, key files opened with their passphrase, key shares absorbed and
//! messages decrypted from the signed events, refusals refused for the stated reason.
//!
//! The unit test `vectors::committed_file_matches_the_generator` checks the other direction:
//! the code, given the same fixed inputs, writes exactly this file.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use basis_core::validate::validate;
use basis_core::{Body, Event, MessageBody, RoomId, UserId};
use basis_e2ee::seal::KEY_SHARE_INFO_PREFIX;
use basis_e2ee::{
    AbsorbError, Binding, DecryptError, KdfParams, Plaintext, PlaintextError, RoomKeys, SealError,
    UserSecrets, keyfile, open_session_key, open_state,
};
use serde_json::Value;
use vodozemac::megolm::{InboundGroupSession, MegolmMessage, SessionConfig, SessionKey};

fn committed() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/vectors/e2ee.json");
    let text = std::fs::read_to_string(path).expect("tests/vectors/e2ee.json is readable");
    serde_json::from_str(&text).expect("tests/vectors/e2ee.json parses")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(s(v)).unwrap_or_else(|_| panic!("not hex: {v}"))
}

fn array32(v: &Value) -> [u8; 32] {
    bytes(v).try_into().expect("32 bytes")
}

fn list(v: &Value) -> &Vec<Value> {
    v.as_array().unwrap_or_else(|| panic!("not a list: {v}"))
}

fn room(v: &Value) -> RoomId {
    s(v).parse().expect("room id")
}

fn user_id(v: &Value) -> UserId {
    s(v).parse().expect("user id")
}

fn number(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The secrets of the user called `name` in the file.
fn secrets(file: &Value, name: &str) -> UserSecrets {
    let user = list(&file["users"])
        .iter()
        .find(|u| u["name"] == name)
        .unwrap_or_else(|| panic!("no user {name}"));
    UserSecrets::from_bytes(&bytes(&user["secrets_hex"])).expect("secrets read")
}

/// A valid signed event from its hex.
fn event(v: &Value) -> Event {
    validate(&bytes(v))
        .expect("the vector's event validates")
        .event()
        .clone()
}

fn hex_of(b: &[u8]) -> String {
    hex::encode(b)
}

#[test]
fn user_secrets_read_to_the_stated_keys() {
    let file = committed();
    let users = list(&file["users"]);
    assert_eq!(users.len(), 2);
    for u in users {
        let raw = bytes(&u["secrets_hex"]);
        let secrets = UserSecrets::from_bytes(&raw).expect("secrets read");
        assert_eq!(secrets.user_id(), user_id(&u["user_id"]));
        assert_eq!(
            hex_of(&secrets.signing_key().secret_bytes()),
            s(&u["signing_secret"])
        );
        assert_eq!(hex_of(secrets.state_key()), s(&u["state_key"]));
        let keys: Vec<_> = secrets.agreement_keys().collect();
        let expected = list(&u["agreement_keys"]);
        assert_eq!(keys.len(), expected.len());
        for (key, want) in keys.iter().zip(expected) {
            assert_eq!(hex_of(&key.public()), s(&want["public"]));
            assert_eq!(key.created_ms(), number(&want["created_ms"]));
        }
        assert_eq!(
            hex_of(&secrets.agreement_public()),
            s(&expected.last().unwrap()["public"])
        );
        // The documented layout, rebuilt from the parts.
        let mut layout = vec![1];
        layout.extend(bytes(&u["signing_secret"]));
        layout.extend(bytes(&u["state_key"]));
        layout.extend(postcard::to_allocvec(&(expected.len() as u64)).unwrap());
        for k in expected {
            layout.extend(bytes(&k["secret"]));
            layout.extend(postcard::to_allocvec(&number(&k["created_ms"])).unwrap());
        }
        assert_eq!(layout, raw);
        assert_eq!(secrets.to_bytes().unwrap().as_slice(), raw.as_slice());
    }
}

#[test]
fn key_files_open_with_their_passphrase() {
    let file = committed();
    let files = list(&file["key_files"]);
    assert_eq!(files.len(), 2);
    for k in files {
        let text = s(&k["text"]);
        let passphrase = s(&k["passphrase"]);
        assert_eq!(hex_of(passphrase.as_bytes()), s(&k["passphrase_hex"]));
        let opened = keyfile::decrypt(text, passphrase.as_bytes()).expect("opens");
        assert_eq!(opened.user_id(), user_id(&k["user_id"]));
        let owner = secrets(&file, s(&k["user"]));
        assert_eq!(
            opened.to_bytes().unwrap().as_slice(),
            owner.to_bytes().unwrap().as_slice()
        );
        assert_eq!(keyfile::peek_user_id(text).unwrap(), opened.user_id());
        let params = KdfParams {
            memory_kib: number(&k["memory_kib"]) as u32,
            iterations: number(&k["iterations"]) as u32,
            parallelism: number(&k["parallelism"]) as u32,
        };
        assert_eq!(keyfile::peek_params(text).unwrap(), params);

        // Armour: BEGIN line, base64 lines of 64 characters, END line, each ending in \n.
        let lines: Vec<&str> = text.split_terminator('\n').collect();
        assert_eq!(lines.first(), Some(&keyfile::BEGIN_LINE));
        assert_eq!(lines.last(), Some(&keyfile::END_LINE));
        assert!(text.ends_with('\n'));
        let body = &lines[1..lines.len() - 1];
        assert!(body[..body.len() - 1].iter().all(|l| l.len() == 64));
        let blob = STANDARD.decode(body.concat()).unwrap();
        assert_eq!(hex_of(&blob), s(&k["blob_hex"]));

        // Header: version, three u32 LE, salt, user id, nonce; all of it is the AAD.
        let header = bytes(&k["header_hex"]);
        assert_eq!(header.len(), keyfile::HEADER_LEN);
        assert_eq!(&blob[..keyfile::HEADER_LEN], header.as_slice());
        assert_eq!(header[0], keyfile::FORMAT_VERSION);
        let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().unwrap());
        assert_eq!(u32_at(1), params.memory_kib);
        assert_eq!(u32_at(5), params.iterations);
        assert_eq!(u32_at(9), params.parallelism);
        assert_eq!(hex_of(&header[13..29]), s(&k["salt"]));
        assert_eq!(&header[29..61], opened.user_id().as_bytes());
        assert_eq!(hex_of(&header[61..85]), s(&k["nonce"]));
        assert_eq!(
            blob.len(),
            keyfile::HEADER_LEN + owner.to_bytes().unwrap().len() + 16
        );

        // The wrong passphrase does not open it.
        assert!(matches!(
            keyfile::decrypt(text, b"not the passphrase"),
            Err(basis_e2ee::KeyFileError::WrongPassphrase)
        ));
    }
}

#[test]
fn plaintexts_encode_to_the_stated_bytes() {
    let file = committed();
    let plaintexts = list(&file["plaintexts"]);
    assert_eq!(plaintexts.len(), 5);
    for p in plaintexts {
        let body: MessageBody = serde_json::from_value(p["body"].clone()).expect("body");
        let plaintext = Plaintext {
            room: room(&p["room"]),
            sender: user_id(&p["sender"]),
            body,
        };
        let raw = bytes(&p["hex"]);
        assert_eq!(plaintext.to_bytes().unwrap(), raw, "{}", p["name"]);
        assert_eq!(Plaintext::from_bytes(&raw).unwrap(), plaintext);
        // Version byte, room, sender, then the body exactly as in events.
        assert_eq!(raw[0], 1);
        assert_eq!(&raw[1..33], plaintext.room.as_bytes());
        assert_eq!(&raw[33..65], plaintext.sender.as_bytes());
        assert_eq!(raw[65..], basis_core::encoding::encode(&plaintext.body));
    }
    for bad in list(&file["bad_plaintexts"]) {
        let err = Plaintext::from_bytes(&bytes(&bad["hex"])).expect_err("refused");
        let code = match err {
            PlaintextError::NestedEncrypted => "nested_encrypted",
            PlaintextError::UnsupportedVersion(_) => "unsupported_version",
            PlaintextError::Malformed(_) => "malformed",
        };
        assert_eq!(code, s(&bad["error"]), "{}", bad["name"]);
    }
}

#[test]
fn the_session_key_is_the_stated_export() {
    let file = committed();
    let session = &file["session"];
    let key = bytes(&session["session_key"]);
    // 02 ‖ index (u32 BE) ‖ ratchet (128) ‖ ed25519 public key (32) ‖ signature (64).
    assert_eq!(key.len(), 229);
    assert_eq!(key[0], 2);
    let index = number(&session["ratchet_index"]) as u32;
    assert_eq!(key[1..5], index.to_be_bytes());
    assert_eq!(hex_of(&key[5..133]), s(&session["ratchet"]));
    assert_eq!(hex_of(&key[133..165]), s(&session["session_id"]));
    let seed = array32(&session["signing_secret"]);
    let signer = basis_core::UserKey::from_secret(seed);
    assert_eq!(hex_of(signer.id().as_bytes()), s(&session["session_id"]));
    assert_eq!(hex_of(&signer.sign(&key[..165])), hex_of(&key[165..]));
    let session_key = SessionKey::from_bytes(&key).expect("a valid session key");
    // The ratchet at later indices, as an inbound session reaches them.
    let mut inbound = InboundGroupSession::new(&session_key, SessionConfig::version_1());
    let later = list(&session["later_ratchets"]);
    assert!(later.len() >= 5);
    for r in later {
        let index = number(&r["index"]) as u32;
        let export = inbound.export_at(index).expect("a later index").to_bytes();
        assert_eq!(hex_of(&export[5..133]), s(&r["ratchet"]), "index {index}");
    }
    assert_eq!(
        vodozemac::base64_decode(s(&session["session_id_base64"])).unwrap(),
        bytes(&session["session_id"])
    );
}

#[test]
fn key_share_slots_open_to_the_session_key() {
    let file = committed();
    let share = &file["key_share"];
    let the_room = room(&file["room"]);
    let ev = event(&share["event_hex"]);
    assert_eq!(ev.id().to_string(), s(&share["event_id"]));
    assert_eq!(
        hex_of(&basis_core::encoding::encode(&ev.content.body)),
        s(&share["body_hex"])
    );
    let Body::KeyShare(body) = &ev.content.body else {
        panic!("not a key share")
    };
    assert_eq!(hex_of(&body.session_id), s(&share["session_id"]));
    assert_eq!(hex_of(&body.session_id), s(&file["session"]["session_id"]));
    let binding = Binding {
        room: the_room,
        sender: ev.content.author,
        session_id: body.session_id.clone(),
    };
    let mut info = KEY_SHARE_INFO_PREFIX.to_vec();
    info.extend_from_slice(the_room.as_bytes());
    info.extend_from_slice(ev.content.author.as_bytes());
    info.extend_from_slice(&body.session_id);
    assert_eq!(binding.info(), info);

    let slots = list(&share["slots"]);
    assert_eq!(slots.len(), body.keys.len());
    for (slot, sealed) in slots.iter().zip(&body.keys) {
        let reader = secrets(&file, s(&slot["recipient"]));
        assert_eq!(sealed.recipient, user_id(&slot["recipient_user_id"]));
        assert_eq!(sealed.recipient, reader.user_id());
        assert_eq!(hex_of(&sealed.recipient_key), s(&slot["recipient_key"]));
        assert_eq!(sealed.recipient_key, reader.agreement_public());
        assert_eq!(hex_of(&sealed.encapsulated), s(&slot["encapsulated"]));
        assert_eq!(hex_of(&sealed.ciphertext), s(&slot["ciphertext"]));
        assert_eq!(hex_of(&info), s(&slot["info_hex"]));
        assert_eq!(hex_of(reader.user_id().as_bytes()), s(&slot["aad_hex"]));
        let opened = open_session_key(sealed, &reader, &binding).expect("opens");
        assert_eq!(hex_of(&opened), s(&file["session"]["session_key"]));
        // The same slot under another room does not open.
        let mut elsewhere = binding.clone();
        elsewhere.room = room(&file["other_room"]);
        assert!(matches!(
            open_session_key(sealed, &reader, &elsewhere),
            Err(SealError::Open)
        ));
    }
}

#[test]
fn messages_decrypt_to_their_plaintexts_for_every_member() {
    let file = committed();
    let the_room = room(&file["room"]);
    let share = event(&file["key_share"]["event_hex"]);
    let messages = list(&file["messages"]);
    assert_eq!(messages.len(), 3);
    for reader in ["alice", "bob"] {
        let me = secrets(&file, reader);
        let mut keys = RoomKeys::new();
        assert!(keys.absorb_event(the_room, &share, &me).expect("absorbs"));
        for m in messages {
            let ev = event(&m["event_hex"]);
            assert_eq!(ev.id().to_string(), s(&m["event_id"]));
            assert_eq!(
                hex_of(&basis_core::encoding::encode(&ev.content.body)),
                s(&m["body_hex"])
            );
            let Body::Message(MessageBody::Encrypted {
                session_id,
                ciphertext,
            }) = &ev.content.body
            else {
                panic!("not an encrypted message")
            };
            assert_eq!(hex_of(session_id), s(&file["session"]["session_id"]));
            assert_eq!(hex_of(ciphertext), s(&m["megolm_hex"]));
            let megolm = MegolmMessage::from_bytes(ciphertext).expect("a Megolm message");
            assert_eq!(ciphertext[0], 3, "Megolm v1 message version");
            assert_eq!(
                u64::from(megolm.message_index()),
                number(&m["message_index"])
            );
            let plaintext = keys
                .decrypt_event(the_room, &ev)
                .expect("an encrypted message")
                .unwrap_or_else(|e| panic!("{reader} cannot read {}: {e}", m["name"]));
            assert_eq!(plaintext.to_bytes().unwrap(), bytes(&m["plaintext_hex"]));
            assert_eq!(plaintext.sender, ev.content.author);
            assert_eq!(plaintext.room, the_room);
        }
    }
}

#[test]
fn refusals_are_refused_for_their_reason() {
    let file = committed();
    let the_room = room(&file["room"]);
    let share = event(&file["key_share"]["event_hex"]);
    let refusals = list(&file["refusals"]);
    assert_eq!(refusals.len(), 4);
    for r in refusals {
        let me = secrets(&file, s(&r["reader"]));
        let mut keys = RoomKeys::new();
        keys.absorb_event(the_room, &share, &me).expect("absorbs");
        let ev = event(&r["event_hex"]);
        let code = match &ev.content.body {
            Body::KeyShare(_) => {
                let in_room = ev.content.room.expect("a room");
                let mut fresh = RoomKeys::new();
                match fresh.absorb_event(in_room, &ev, &me) {
                    Err(AbsorbError::Open(SealError::Open)) => "sealed_key_does_not_open",
                    other => panic!("{}: unexpected {other:?}", r["name"]),
                }
            }
            _ => match keys.decrypt_event(the_room, &ev).expect("encrypted") {
                Err(DecryptError::WrongSender) => "wrong_sender",
                Err(DecryptError::WrongRoom) => "wrong_room",
                Err(DecryptError::Megolm(_)) => "megolm",
                other => panic!("{}: unexpected {other:?}", r["name"]),
            },
        };
        assert_eq!(code, s(&r["error"]), "{}", r["name"]);
    }
}

#[test]
fn state_files_open_with_the_state_key() {
    let file = committed();
    for v in list(&file["state_files"]) {
        let owner = secrets(&file, s(&v["user"]));
        let sealed = bytes(&v["sealed_hex"]);
        assert_eq!(hex_of(&sealed[..24]), s(&v["nonce"]));
        let label = s(&v["label"]).as_bytes();
        let opened = open_state(owner.state_key(), label, &sealed).expect("opens");
        assert_eq!(hex_of(&opened), s(&v["plaintext_hex"]));
        assert!(open_state(owner.state_key(), b"basis/other/v1", &sealed).is_err());
    }
}

#[test]
fn the_file_opens_chunk_by_chunk_and_its_message_decrypts_to_its_descriptor() {
    use basis_core::{ChunkList, safe_file_name};
    use basis_e2ee::file::{CHUNK_AAD, chunk_nonce};
    use basis_e2ee::{ChunkOpener, open_to_writer};

    let file = committed();
    let f = &file["file"];
    assert_eq!(hex_of(CHUNK_AAD), s(&f["aad_hex"]));
    let chunk_list = ChunkList::from_bytes(&bytes(&f["list_hex"])).expect("the list reads");
    assert_eq!(hex_of(&chunk_list.address()), s(&f["address"]));
    assert_eq!(u64::from(chunk_list.chunk_size), number(&f["chunk_size"]));
    assert_eq!(chunk_list.size, number(&f["size"]));
    let chunks: Vec<Vec<u8>> = list(&f["chunks"])
        .iter()
        .map(|c| bytes(&c["ciphertext_hex"]))
        .collect();
    for (i, c) in list(&f["chunks"]).iter().enumerate() {
        let index = i as u64;
        assert_eq!(number(&c["index"]), index);
        let last = c["last"].as_bool().expect("a bool");
        assert_eq!(hex_of(&chunk_nonce(index, last)), s(&c["nonce"]));
        assert_eq!(hex_of(&chunk_list.hashes[i]), s(&c["sha256"]));
        chunk_list
            .verify_chunk(index, &chunks[i])
            .expect("the chunk verifies");
    }

    // bob reads the message that carries the file, and opens the file with its descriptor.
    let the_room = room(&file["room"]);
    let share = event(&file["key_share"]["event_hex"]);
    let bob = secrets(&file, "bob");
    let mut keys = RoomKeys::new();
    assert!(keys.absorb_event(the_room, &share, &bob).expect("absorbs"));
    let ev = event(&f["event_hex"]);
    assert_eq!(ev.id().to_string(), s(&f["event_id"]));
    let Body::Message(MessageBody::EncryptedAttachment { blob, .. }) = &ev.content.body else {
        panic!("not an encrypted attachment")
    };
    assert_eq!(hex_of(&blob.address), s(&f["address"]));
    let plaintext = keys
        .decrypt_event(the_room, &ev)
        .expect("an encrypted message")
        .expect("bob reads it");
    assert_eq!(
        plaintext.to_bytes().unwrap(),
        bytes(&f["descriptor_plaintext_hex"])
    );
    let MessageBody::Attachment(descriptor) = plaintext.body else {
        panic!("the inner body is not an attachment")
    };
    assert_eq!(hex_of(&descriptor.key), s(&f["key"]));
    let mut out = Vec::new();
    open_to_writer(&descriptor, |i| Ok(chunks[i as usize].clone()), &mut out).expect("opens");
    assert_eq!(out, bytes(&f["plaintext_hex"]));
    // Chunk 0 in chunk 1's place does not open.
    let opener = ChunkOpener::new(&descriptor).unwrap();
    assert!(opener.open(1, &chunks[0]).is_err());

    for n in list(&f["safe_names"]) {
        assert_eq!(safe_file_name(s(&n["given"])), s(&n["safe"]));
    }
}
