//! End-to-end encryption of one room in the browser: the user's outbound Megolm session, the
//! inbound sessions opened from key shares, and the room's timeline with what could be
//! decrypted. The decisions (who receives the key, when to rotate, how a message is sealed and
//! opened) are `basis-e2ee`'s, the same the command-line client makes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use basis_core::timeline::{Change, Item, Timeline};
use basis_core::validate::validate;
use basis_core::{Body, Event, EventId, FileDescriptor, MessageBody, RoomId};
use basis_e2ee::{OutboundSession, Plaintext, RoomKeys};
use serde_json::{Value, json};
use std::collections::HashMap;
use wasm_bindgen::prelude::*;

use crate::error::WebError;
use crate::event::{Draft, message_json};
use crate::file::{FileOpener, attachment_json};
use crate::reply::{self, RoomInfo};
use crate::user::User;

/// One encrypted room's keys for the user of this page. Keep its state between visits with
/// [`RoomCrypto::pickle_inbound`] and [`RoomCrypto::pickle_outbound`] (sealed with the state
/// key inside the user's key file) and [`RoomCrypto::restore`].
#[wasm_bindgen]
pub struct RoomCrypto {
    room: RoomId,
    keys: RoomKeys,
    outbound: Option<OutboundSession>,
    /// The file messages the last [`RoomCrypto::timeline`] could read, by event id: their
    /// keys stay here, JavaScript gets a [`FileOpener`].
    files: HashMap<EventId, FileDescriptor>,
}

/// What [`RoomCrypto::encrypt`] made: the encrypted draft to sign with
/// [`User::message`], and, when a new session started, the signed key-share event to post
/// first.
#[wasm_bindgen]
pub struct Sealed {
    key_share: Option<Vec<u8>>,
    draft: Draft,
    without_key: Vec<String>,
}

#[wasm_bindgen]
impl Sealed {
    /// The signed key-share event (bytes) to post before the message, when the session is new.
    /// If posting it fails, call [`RoomCrypto::forget_outbound`] and encrypt again.
    #[wasm_bindgen(getter, js_name = keyShareEvent)]
    pub fn key_share_event(&self) -> Option<Vec<u8>> {
        self.key_share.clone()
    }

    /// The encrypted message body, to sign with [`User::message`].
    #[wasm_bindgen(getter)]
    pub fn draft(&self) -> Draft {
        self.draft.clone()
    }

    /// Members (user ids, hex) who should receive the key but have published no agreement key
    /// yet; they get it with a later session, once they have.
    #[wasm_bindgen(getter, js_name = withoutKey)]
    pub fn without_key(&self) -> Vec<String> {
        self.without_key.clone()
    }
}

fn room_id(text: &str) -> Result<RoomId, WebError> {
    text.parse().map_err(|e| WebError::input("room id", e))
}

#[wasm_bindgen]
impl RoomCrypto {
    /// No keys yet for the room `room` (id, hex).
    #[wasm_bindgen(constructor)]
    pub fn new(room: &str) -> Result<RoomCrypto, WebError> {
        Ok(RoomCrypto {
            room: room_id(room)?,
            keys: RoomKeys::new(),
            outbound: None,
            files: HashMap::new(),
        })
    }

    /// The room's keys as saved by [`RoomCrypto::pickle_inbound`] and
    /// [`RoomCrypto::pickle_outbound`] (either may be absent), opened with `user`'s state key.
    pub fn restore(
        user: &User,
        room: &str,
        inbound: Option<Vec<u8>>,
        outbound: Option<Vec<u8>>,
    ) -> Result<RoomCrypto, WebError> {
        let state_key = user.secrets.state_key();
        let keys = match inbound {
            Some(bytes) => {
                RoomKeys::unpickle(&bytes, state_key).map_err(|e| WebError::State(e.to_string()))?
            }
            None => RoomKeys::new(),
        };
        let outbound = match outbound {
            Some(bytes) => Some(
                OutboundSession::unpickle(&bytes, state_key)
                    .map_err(|e| WebError::State(e.to_string()))?,
            ),
            None => None,
        };
        Ok(RoomCrypto {
            room: room_id(room)?,
            keys,
            outbound,
            files: HashMap::new(),
        })
    }

    /// The inbound sessions, sealed with `user`'s state key, to keep (for example in
    /// IndexedDB).
    #[wasm_bindgen(js_name = pickleInbound)]
    pub fn pickle_inbound(&self, user: &User) -> Result<Vec<u8>, WebError> {
        self.keys
            .pickle(user.secrets.state_key())
            .map_err(|e| WebError::State(e.to_string()))
    }

    /// The outbound session, sealed with `user`'s state key, if there is one.
    #[wasm_bindgen(js_name = pickleOutbound)]
    pub fn pickle_outbound(&self, user: &User) -> Result<Option<Vec<u8>>, WebError> {
        self.outbound
            .as_ref()
            .map(|s| s.pickle(user.secrets.state_key()))
            .transpose()
            .map_err(|e| WebError::State(e.to_string()))
    }

    /// How many inbound sessions are held.
    #[wasm_bindgen(getter, js_name = sessionCount)]
    pub fn session_count(&self) -> usize {
        self.keys.len()
    }

    /// Encrypts `draft` for the members of the room `room_info` describes (the node's
    /// `GET /v1/rooms/{room}` answer, as text). When there is no session yet, the members
    /// changed, or the session sent 100 messages or is 7 days old, a new session starts and
    /// its key is sealed with HPKE to every joined or invited member with a published key (and
    /// to the user): post [`Sealed::key_share_event`] first, then fetch the room again and sign
    /// [`Sealed::draft`] with [`User::message`].
    pub fn encrypt(
        &mut self,
        user: &mut User,
        room_info: &str,
        draft: &Draft,
    ) -> Result<Sealed, WebError> {
        let info: RoomInfo = reply::parse("room", room_info)?;
        self.check_room(info.room_id()?)?;
        let recipients = basis_e2ee::recipients(&user.secrets, info.key_members());
        let (mut session, share) = basis_e2ee::session_for(
            self.outbound.take(),
            self.room,
            &user.secrets,
            &recipients,
            crate::now_ms(),
        )
        .map_err(|e| WebError::Encrypt(e.to_string()))?;
        let key_share = match share {
            Some(share) => {
                let bytes = user.sign_with(&info, Body::KeyShare(share))?;
                // Our own copy, so our messages read back without a round trip.
                let event = validate(&bytes)?.event().clone();
                let _ = self.keys.absorb_event(self.room, &event, &user.secrets);
                Some(bytes)
            }
            None => None,
        };
        let body = session
            .encrypt(&Plaintext {
                room: self.room,
                sender: user.secrets.user_id(),
                body: draft.body.clone(),
            })
            .map_err(|e| WebError::Encrypt(e.to_string()))?;
        self.outbound = Some(session);
        Ok(Sealed {
            key_share,
            draft: Draft { body },
            without_key: recipients
                .without_key
                .iter()
                .map(ToString::to_string)
                .collect(),
        })
    }

    /// An opener of the file the message `event` (id, hex) carries, when the last
    /// [`RoomCrypto::timeline`] could read it.
    #[wasm_bindgen(js_name = fileOpener)]
    pub fn file_opener(&self, event: &str) -> Result<FileOpener, WebError> {
        let id: EventId = event
            .parse()
            .map_err(|e| WebError::input("the file message", e))?;
        let d = self
            .files
            .get(&id)
            .ok_or_else(|| WebError::File("this message holds no file that can be read".into()))?;
        FileOpener::new(d)
    }

    /// Drops the outbound session, so the next message starts a new one (after a key share
    /// could not be posted).
    #[wasm_bindgen(js_name = forgetOutbound)]
    pub fn forget_outbound(&mut self) {
        self.outbound = None;
    }

    /// Takes in a key-share event (bytes) of this room if it holds a key for `user`. Returns
    /// true when a session was opened, false for an event that is no key share or holds nothing
    /// for the user.
    pub fn absorb(&mut self, user: &User, event: &[u8]) -> Result<bool, WebError> {
        let event = self.room_event(event)?;
        self.keys
            .absorb_event(self.room, &event, &user.secrets)
            .map_err(|e| WebError::Unreadable(format!("key share cannot be opened: {e}")))
    }

    /// Decrypts an encrypted message event (bytes) of this room. Returns the inner message as
    /// JSON text (`{type: "text", text}` and so on, see [`crate::validate_event`]).
    pub fn decrypt(&mut self, event: &[u8]) -> Result<String, WebError> {
        let event = self.room_event(event)?;
        match self.keys.decrypt_event(self.room, &event) {
            Some(Ok(p)) => Ok(message_json(&p.body).to_string()),
            Some(Err(e)) => Err(WebError::Unreadable(e.reason())),
            None => Err(WebError::NotEncrypted),
        }
    }

    /// The room as a client shows it, from its events: `events` is JSON text of an array of
    /// base64 event bytes (the `raw` fields of the node's history and state answers). Key
    /// shares among them are taken in first; events that do not verify are left out and
    /// counted. Returns JSON text `{lines, receipts, ignored}` where each line has `id`,
    /// `author`, `time` (decimal string), `shown` and `reactions`.
    pub fn timeline(&mut self, user: &User, events: &str) -> Result<String, WebError> {
        let raw: Vec<String> = serde_json::from_str(events)
            .map_err(|e| WebError::input("events", format!("expected an array of base64: {e}")))?;
        let mut ignored = 0usize;
        let mut verified: Vec<Event> = Vec::with_capacity(raw.len());
        for r in &raw {
            match STANDARD
                .decode(r)
                .ok()
                .and_then(|b| validate(&b).ok())
                .filter(|v| v.room() == self.room)
            {
                Some(v) => verified.push(v.event().clone()),
                None => ignored += 1,
            }
        }
        for e in &verified {
            // A share that does not open for us is no reason to stop: its messages show why.
            let _ = self.keys.absorb_event(self.room, e, &user.secrets);
        }
        let items: Vec<Item> = verified
            .into_iter()
            .map(|event| {
                let decrypted = self
                    .keys
                    .decrypt_event(self.room, &event)
                    .map(|r| r.map(|p| p.body).map_err(|e| e.reason()));
                Item { event, decrypted }
            })
            .collect();
        // File messages: plain in a plain room, decrypted in an encrypted one.
        self.files = items
            .iter()
            .filter_map(|item| {
                let d = match (&item.event.content.body, &item.decrypted) {
                    (Body::Message(MessageBody::Attachment(d)), _)
                    | (_, Some(Ok(MessageBody::Attachment(d)))) => d,
                    _ => return None,
                };
                Some((item.event.id(), d.clone()))
            })
            .collect();
        let timeline = Timeline::build(&items);
        let mut value = serde_json::to_value(&timeline)
            .map_err(|e| WebError::input("events", format!("cannot describe them: {e}")))?;
        // Times exceed 2^53: hand them over as decimal strings. What the user may still
        // change is said by the same rules the timeline applies (`Timeline::may_change`).
        let me = user.secrets.user_id();
        if let Some(lines) = value.get_mut("lines").and_then(Value::as_array_mut) {
            for (line, shown) in lines.iter_mut().zip(&timeline.lines) {
                if let Some(t) = line.get_mut("time") {
                    *t = Value::String(t.to_string());
                }
                let may = |c| timeline.may_change(&shown.id, &me, c).is_ok();
                line["may_edit"] = Value::Bool(may(Change::Edit));
                line["may_delete"] = Value::Bool(may(Change::Delete));
                if matches!(shown.shown, basis_core::timeline::Shown::File { .. })
                    && let Some(d) = self.files.get(&shown.id)
                {
                    line["attachment"] = attachment_json(d);
                }
            }
        }
        Ok(json!({
            "lines": value["lines"],
            "receipts": value["receipts"],
            "ignored": ignored,
        })
        .to_string())
    }
}

impl RoomCrypto {
    fn check_room(&self, actual: RoomId) -> Result<(), WebError> {
        if actual != self.room {
            return Err(WebError::OtherRoom {
                expected: self.room.short(),
                actual: actual.short(),
            });
        }
        Ok(())
    }

    /// Validates event bytes and checks they belong to this room.
    fn room_event(&self, bytes: &[u8]) -> Result<Event, WebError> {
        let valid = validate(bytes)?;
        self.check_room(valid.room())?;
        Ok(valid.event().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The node's description of a room with these members (user, standing, key).
    fn info(room: &str, members: &[(&User, &str)]) -> String {
        let members: Vec<Value> = members
            .iter()
            .map(|(u, standing)| {
                json!({"user": u.user_id(), "standing": standing, "agreement_key": u.agreement_key()})
            })
            .collect();
        json!({"room": room, "encrypted": true, "members": members, "heads": [], "latest_time": 0})
            .to_string()
    }

    #[test]
    fn a_message_round_trips_between_two_members_and_not_to_an_outsider() {
        let mut ana = User::create().unwrap();
        let ben = User::create().unwrap();
        let eve = User::create().unwrap();
        let create = ana.create_room("garden".into(), true);
        let room = validate(&create).unwrap().room().to_string();
        let described = info(&room, &[(&ana, "joined"), (&ben, "invited")]);

        let mut sending = RoomCrypto::new(&room).unwrap();
        let sealed = sending
            .encrypt(&mut ana, &described, &Draft::text("hello ben".into()))
            .unwrap();
        let share = sealed
            .key_share_event()
            .expect("first message shares a key");
        assert!(sealed.without_key().is_empty());
        let message = ana.message(&described, &sealed.draft()).unwrap();
        // The sender reads its own message back.
        let mine: Value = serde_json::from_str(&sending.decrypt(&message).unwrap()).unwrap();
        assert_eq!(mine["text"], "hello ben");

        let mut receiving = RoomCrypto::new(&room).unwrap();
        let waiting = receiving.decrypt(&message).unwrap_err().to_string();
        assert!(waiting.contains("waiting for the key"), "{waiting}");
        assert!(receiving.absorb(&ben, &share).unwrap());
        let got: Value = serde_json::from_str(&receiving.decrypt(&message).unwrap()).unwrap();
        assert_eq!(got, json!({"type": "text", "text": "hello ben"}));

        let mut outsider = RoomCrypto::new(&room).unwrap();
        assert!(!outsider.absorb(&eve, &share).unwrap());
        assert!(outsider.decrypt(&message).is_err());

        // The same session goes on for the next message: no new share.
        let again = sending
            .encrypt(&mut ana, &described, &Draft::text("again".into()))
            .unwrap();
        assert!(again.key_share_event().is_none());

        // The timeline of the room, as ben sees it.
        let again_event = ana.message(&described, &again.draft()).unwrap();
        let events = json!([
            STANDARD.encode(&create),
            STANDARD.encode(&share),
            STANDARD.encode(&message),
            STANDARD.encode(&again_event),
            "not base64!",
        ])
        .to_string();
        let mut fresh = RoomCrypto::new(&room).unwrap();
        let view: Value = serde_json::from_str(&fresh.timeline(&ben, &events).unwrap()).unwrap();
        assert_eq!(view["ignored"], 1);
        let texts: Vec<&str> = view["lines"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["shown"]["text"].as_str())
            .collect();
        assert_eq!(texts, vec!["hello ben", "again"]);
        assert!(view["lines"][0]["time"].is_string());
    }

    #[test]
    fn a_file_message_is_encrypted_and_opens_for_a_member() {
        let mut ana = User::create().unwrap();
        let ben = User::create().unwrap();
        let create = ana.create_room("photos".into(), true);
        let room = validate(&create).unwrap().room().to_string();
        let described = info(&room, &[(&ana, "joined"), (&ben, "joined")]);
        let data = b"a small photo".to_vec();
        let mut sealer = crate::FileSealer::new(data.len() as f64).unwrap();
        sealer.hash_chunk(&data).unwrap();
        sealer.finish().unwrap();
        let cipher = sealer.seal_chunk(0, &data).unwrap();
        let draft = sealer
            .draft(
                "p.png".into(),
                "image/png".into(),
                Some("image/jpeg".into()),
                Some(vec![1, 2, 3]),
            )
            .unwrap();
        let draft = Draft::load(&draft.save()).unwrap();
        let mut sending = RoomCrypto::new(&room).unwrap();
        let sealed = sending.encrypt(&mut ana, &described, &draft).unwrap();
        let share = sealed.key_share_event().unwrap();
        let message = ana.message(&described, &sealed.draft()).unwrap();
        // The event names the chunks in the clear, and nothing else of the file.
        let outer: Value = serde_json::from_str(&crate::validate_event(&message).unwrap()).unwrap();
        assert_eq!(outer["body"]["message"]["type"], "encrypted_attachment");
        assert_eq!(
            outer["body"]["message"]["address"],
            sealer.address().unwrap()
        );

        let events = json!([
            STANDARD.encode(&create),
            STANDARD.encode(&share),
            STANDARD.encode(&message),
        ])
        .to_string();
        let mut reading = RoomCrypto::new(&room).unwrap();
        let view: Value = serde_json::from_str(&reading.timeline(&ben, &events).unwrap()).unwrap();
        let line = view["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["shown"]["type"] == "file")
            .unwrap();
        assert_eq!(line["attachment"]["name"], "p.png");
        assert_eq!(
            line["attachment"]["preview"]["data"],
            STANDARD.encode([1, 2, 3])
        );
        let opener = reading.file_opener(line["id"].as_str().unwrap()).unwrap();
        assert_eq!(opener.open(0, &cipher).unwrap(), data);
        assert!(reading.file_opener(&"00".repeat(32)).is_err());
    }

    #[test]
    fn state_survives_a_pickle_and_needs_the_same_user() {
        let mut ana = User::create().unwrap();
        let other = User::create().unwrap();
        let create = ana.create_room("r".into(), true);
        let room = validate(&create).unwrap().room().to_string();
        let described = info(&room, &[(&ana, "joined")]);
        let mut c = RoomCrypto::new(&room).unwrap();
        let sealed = c
            .encrypt(&mut ana, &described, &Draft::text("kept".into()))
            .unwrap();
        let message = ana.message(&described, &sealed.draft()).unwrap();
        let inbound = c.pickle_inbound(&ana).unwrap();
        let outbound = c.pickle_outbound(&ana).unwrap();
        let mut back =
            RoomCrypto::restore(&ana, &room, Some(inbound.clone()), outbound.clone()).unwrap();
        assert_eq!(back.session_count(), 1);
        assert!(back.decrypt(&message).unwrap().contains("kept"));
        let next = back
            .encrypt(&mut ana, &described, &Draft::text("more".into()))
            .unwrap();
        assert!(next.key_share_event().is_none());
        assert!(matches!(
            RoomCrypto::restore(&other, &room, Some(inbound), None),
            Err(WebError::State(_))
        ));
        let elsewhere = RoomCrypto::new(&"99".repeat(32)).unwrap().decrypt(&message);
        assert!(matches!(elsewhere, Err(WebError::OtherRoom { .. })));
    }
}
