//! The user in the browser: secrets, the passphrase key file, the sign-in answer and signed
//! events, the same way the command-line client makes them.

use basis_core::auth::challenge_message;
use basis_core::{
    Body, Composer, Event, History, MembershipAction, NodeId, Profile, ReceiptKind, RoomCreate,
    Timestamp, UserId, profile_room,
};
use basis_e2ee::keyfile::{self, KdfParams};
use basis_e2ee::{KeyFileError, UserSecrets, open_state, seal_state};
use serde_json::json;
use wasm_bindgen::prelude::*;
use zeroize::Zeroizing;

use crate::error::WebError;
use crate::event::Draft;
use crate::reply::{self, ChallengeReply, NodeTime, RoomInfo};

/// Label of what [`User::seal_kept`] seals, so that it opens as nothing else.
const KEPT_AAD: &[u8] = b"basis/web-kept/v1";

/// A user whose secrets are open in this page: signs the sign-in challenge and events.
#[wasm_bindgen]
pub struct User {
    pub(crate) secrets: UserSecrets,
    composer: Composer,
}

/// Refuses an empty passphrase, as the command-line client does.
fn checked_passphrase(p: String) -> Result<Zeroizing<String>, WebError> {
    let p = Zeroizing::new(p);
    if p.is_empty() {
        return Err(WebError::EmptyPassphrase);
    }
    Ok(p)
}

fn key_file_error(e: KeyFileError) -> WebError {
    match e {
        KeyFileError::WrongPassphrase => WebError::WrongPassphrase,
        other => WebError::KeyFile(other.to_string()),
    }
}

fn hex32(what: &'static str, text: &str) -> Result<[u8; 32], WebError> {
    let bytes = hex::decode(text.trim())
        .map_err(|_| WebError::input(what, "expected 64 hex characters"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| WebError::input(what, "expected 64 hex characters"))
}

#[wasm_bindgen]
impl User {
    /// A new user: a fresh signing key (the user id), agreement key and state key, as
    /// `basis user create` makes them. Seal it with [`User::export_key_file`] to keep it.
    pub fn create() -> Result<User, WebError> {
        UserSecrets::generate(crate::now_ms())
            .map(User::from_secrets)
            .map_err(|e| WebError::NewUser(e.to_string()))
    }

    /// Opens a key file (the text `basis user export` writes) with its passphrase.
    #[wasm_bindgen(js_name = openKeyFile)]
    pub fn open_key_file(text: &str, passphrase: String) -> Result<User, WebError> {
        let pass = checked_passphrase(passphrase)?;
        keyfile::decrypt(text, pass.as_bytes())
            .map(User::from_secrets)
            .map_err(key_file_error)
    }

    /// The user id in a key file's public header, read without the passphrase (it is
    /// authenticated only once the file is opened).
    #[wasm_bindgen(js_name = keyFileUserId)]
    pub fn key_file_user_id(text: &str) -> Result<String, WebError> {
        keyfile::peek_user_id(text)
            .map(|u| u.to_string())
            .map_err(key_file_error)
    }

    /// Seals the secrets under `passphrase` into the key file format `basis user export`
    /// writes and `basis user import` reads (Argon2id with the recommended cost, then
    /// XChaCha20-Poly1305). Takes about a second.
    #[wasm_bindgen(js_name = exportKeyFile)]
    pub fn export_key_file(&self, passphrase: String) -> Result<String, WebError> {
        self.export_with(passphrase, KdfParams::RECOMMENDED)
    }

    /// Seals bytes the page keeps in the browser until the node has them (a message typed
    /// while the node is away), under the state key inside the key file: without the
    /// passphrase they cannot be read, and no other user's key opens them.
    #[wasm_bindgen(js_name = sealKept)]
    pub fn seal_kept(&self, plain: &[u8]) -> Result<Vec<u8>, WebError> {
        seal_state(self.secrets.state_key(), KEPT_AAD, plain)
            .map_err(|e| WebError::Kept(e.to_string()))
    }

    /// Opens what [`User::seal_kept`] sealed with this user's key; an error for anything
    /// else (another user's, altered, or not sealed at all).
    #[wasm_bindgen(js_name = openKept)]
    pub fn open_kept(&self, sealed: &[u8]) -> Result<Vec<u8>, WebError> {
        open_state(self.secrets.state_key(), KEPT_AAD, sealed)
            .map(|plain| plain.to_vec())
            .map_err(|e| WebError::Kept(e.to_string()))
    }

    /// The user id: the public signing key, hex.
    #[wasm_bindgen(getter, js_name = userId)]
    pub fn user_id(&self) -> String {
        self.secrets.user_id().to_string()
    }

    /// The first 8 hex characters of the user id, as the clients show it.
    #[wasm_bindgen(getter, js_name = shortId)]
    pub fn short_id(&self) -> String {
        self.secrets.user_id().short()
    }

    /// The current agreement public key (hex), the one the user's profile publishes.
    #[wasm_bindgen(getter, js_name = agreementKey)]
    pub fn agreement_key(&self) -> String {
        hex::encode(self.secrets.agreement_public())
    }

    /// Signs the node's sign-in challenge: `node_id` and `challenge` are hex as the node sent
    /// them. Returns the signature, hex (128 characters).
    #[wasm_bindgen(js_name = signChallenge)]
    pub fn sign_challenge(&self, node_id: &str, challenge: &str) -> Result<String, WebError> {
        let node = NodeId(hex32("node id", node_id)?);
        let challenge = hex32("challenge", challenge)?;
        let signature = self
            .secrets
            .signing_key()
            .sign(&challenge_message(&node, &challenge));
        Ok(hex::encode(signature))
    }

    /// The body of `POST /v1/auth/session` (JSON text) answering `challenge_reply`, the text
    /// of the node's answer to `POST /v1/auth/challenge`.
    #[wasm_bindgen(js_name = signInRequest)]
    pub fn sign_in_request(&self, challenge_reply: &str) -> Result<String, WebError> {
        let c: ChallengeReply = reply::parse("challenge", challenge_reply)?;
        let signature = self.sign_challenge(&c.node_id, &c.challenge)?;
        Ok(json!({
            "user": self.user_id(),
            "challenge": c.challenge,
            "signature": signature,
        })
        .to_string())
    }

    /// Lets the clock see the node's clock, from the text of the node's `GET /v1/status`
    /// answer, so the user's next events sort after the node's.
    #[wasm_bindgen(js_name = observeNodeStatus)]
    pub fn observe_node_status(&mut self, status_reply: &str) -> Result<(), WebError> {
        let t: NodeTime = reply::parse("status", status_reply)?;
        self.composer.observe(Timestamp(t.time));
        Ok(())
    }

    /// Lets the clock see a timestamp (a decimal string, such as an event's `time`).
    pub fn observe(&mut self, time: &str) -> Result<(), WebError> {
        let t = time
            .trim()
            .parse::<u64>()
            .map_err(|e| WebError::input("time", e))?;
        self.composer.observe(Timestamp(t));
        Ok(())
    }

    /// A signed event creating a room (`encrypted` as `basis room create` does unless told
    /// `--unencrypted`); history is readable from each member's join on.
    #[wasm_bindgen(js_name = createRoom)]
    pub fn create_room(&mut self, name: String, encrypted: bool) -> Vec<u8> {
        let body = Body::Create(RoomCreate {
            name,
            encrypted,
            history: History::SinceJoin,
        });
        self.sign(None, Vec::new(), body).to_bytes()
    }

    /// A signed membership change in the room `room_info` describes (the node's
    /// `GET /v1/rooms/{room}` answer, as text). `action` is `invite`, `join`, `leave` or
    /// `remove`; `target` (user id, hex) is needed to invite or remove, and is the user for
    /// join and leave.
    pub fn membership(
        &mut self,
        room_info: &str,
        action: &str,
        target: Option<String>,
    ) -> Result<Vec<u8>, WebError> {
        let action = match action {
            "invite" => MembershipAction::Invite,
            "join" => MembershipAction::Join,
            "leave" => MembershipAction::Leave,
            "remove" => MembershipAction::Remove,
            other => {
                return Err(WebError::input(
                    "membership action",
                    format!("{other:?} is not invite, join, leave or remove"),
                ));
            }
        };
        let target = match (action, target) {
            (MembershipAction::Join | MembershipAction::Leave, _) => self.secrets.user_id(),
            (_, Some(t)) => t
                .parse::<UserId>()
                .map_err(|e| WebError::input("the member", e))?,
            (_, None) => {
                return Err(WebError::input(
                    "the member",
                    "say whom to invite or remove",
                ));
            }
        };
        self.sign_in_room(room_info, Body::Membership { action, target })
    }

    /// A signed receipt in the room `room_info` describes: `kind` is `read` or `delivered`,
    /// up to the event `up_to` (hex), or the room's newest event when absent (as `basis read`).
    pub fn receipt(
        &mut self,
        room_info: &str,
        kind: &str,
        up_to: Option<String>,
    ) -> Result<Vec<u8>, WebError> {
        let kind = match kind {
            "read" => ReceiptKind::Read,
            "delivered" => ReceiptKind::Delivered,
            other => {
                return Err(WebError::input(
                    "receipt kind",
                    format!("{other:?} is not read or delivered"),
                ));
            }
        };
        let info: RoomInfo = reply::parse("room", room_info)?;
        let up_to = match up_to {
            Some(t) => t.parse().map_err(|e| WebError::input("up to", e))?,
            None => info
                .heads
                .first()
                .and_then(|h| h.parse().ok())
                .ok_or_else(|| WebError::input("up to", "the room has no events yet"))?,
        };
        self.sign_with(&info, Body::Receipt { kind, up_to })
    }

    /// The user's signed profile (display name and current agreement key), which lets
    /// others seal room keys to this user. It goes to the user's profile room.
    pub fn profile(&mut self, name: String) -> Vec<u8> {
        let me = self.secrets.user_id();
        let body = Body::Profile(Profile {
            name,
            agreement_key: self.secrets.agreement_public(),
        });
        self.sign(Some(profile_room(&me)), Vec::new(), body)
            .to_bytes()
    }

    /// A signed message event with `draft` in the room `room_info` describes. In an
    /// encrypted room the draft must come from [`crate::RoomCrypto::encrypt`].
    pub fn message(&mut self, room_info: &str, draft: &Draft) -> Result<Vec<u8>, WebError> {
        let info: RoomInfo = reply::parse("room", room_info)?;
        if info.encrypted && !draft.encrypted() {
            return Err(WebError::MustEncrypt);
        }
        self.sign_with(&info, Body::Message(draft.body.clone()))
    }
}

impl User {
    fn from_secrets(secrets: UserSecrets) -> User {
        User {
            secrets,
            composer: Composer::default(),
        }
    }

    /// Seals the secrets with explicit Argon2id costs.
    pub(crate) fn export_with(
        &self,
        passphrase: String,
        params: KdfParams,
    ) -> Result<String, WebError> {
        let pass = checked_passphrase(passphrase)?;
        keyfile::encrypt(&self.secrets, pass.as_bytes(), params)
            .map_err(|e| WebError::Seal(e.to_string()))
    }

    /// Signs an event now.
    pub(crate) fn sign(
        &mut self,
        room: Option<basis_core::RoomId>,
        parents: Vec<basis_core::EventId>,
        body: Body,
    ) -> Event {
        self.composer.sign(
            self.secrets.signing_key(),
            room,
            parents,
            body,
            crate::now_ms(),
        )
    }

    /// Signs an event for a described room, naming its heads as parents.
    pub(crate) fn sign_with(&mut self, info: &RoomInfo, body: Body) -> Result<Vec<u8>, WebError> {
        let room = info.room_id()?;
        let event = self.composer.sign_in_room(
            self.secrets.signing_key(),
            Some(room),
            info.parents(),
            info.latest(),
            body,
            crate::now_ms(),
        );
        Ok(event.to_bytes())
    }

    fn sign_in_room(&mut self, room_info: &str, body: Body) -> Result<Vec<u8>, WebError> {
        let info: RoomInfo = reply::parse("room", room_info)?;
        self.sign_with(&info, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basis_core::keys::verify;
    use basis_core::validate::validate;

    fn room_info(room: &str, encrypted: bool) -> String {
        json!({
            "room": room, "encrypted": encrypted, "members": [],
            "heads": [], "latest_time": 5_000_000_000_000_000u64,
        })
        .to_string()
    }

    #[test]
    fn what_the_page_keeps_opens_only_with_the_same_users_key() {
        let user = User::create().unwrap();
        let other = User::create().unwrap();
        let text = b"the spare key is under the blue crate";
        let sealed = user.seal_kept(text).unwrap();
        assert!(!sealed.windows(8).any(|w| text.windows(8).any(|t| t == w)));
        assert_eq!(user.open_kept(&sealed).unwrap(), text);
        assert!(matches!(other.open_kept(&sealed), Err(WebError::Kept(_))));
        let mut altered = sealed.clone();
        let last = altered.len() - 1;
        altered[last] ^= 1;
        assert!(matches!(user.open_kept(&altered), Err(WebError::Kept(_))));
        assert!(matches!(user.open_kept(b"short"), Err(WebError::Kept(_))));
        // A room key's sealed state is not a kept message (another label).
        let state = seal_state(user.secrets.state_key(), b"basis/room-keys/v1", text).unwrap();
        assert!(matches!(user.open_kept(&state), Err(WebError::Kept(_))));
    }

    #[test]
    fn the_key_file_round_trips_and_refuses_a_wrong_passphrase() {
        let user = User::create().unwrap();
        let text = user
            .export_with("correct horse".into(), KdfParams::INSECURE_FOR_TESTS)
            .unwrap();
        assert!(text.starts_with(keyfile::BEGIN_LINE));
        assert_eq!(User::key_file_user_id(&text).unwrap(), user.user_id());
        let back = User::open_key_file(&text, "correct horse".into()).unwrap();
        assert_eq!(back.user_id(), user.user_id());
        assert_eq!(back.agreement_key(), user.agreement_key());
        let wrong = User::open_key_file(&text, "battery staple".into()).err();
        assert_eq!(
            wrong.map(|e| e.to_string()),
            Some("wrong passphrase for this key file (or the file was altered)".into())
        );
        assert!(matches!(
            User::open_key_file(&text, String::new()),
            Err(WebError::EmptyPassphrase)
        ));
        assert!(matches!(
            User::open_key_file("hello", "x".into()),
            Err(WebError::KeyFile(_))
        ));
    }

    #[test]
    fn the_challenge_answer_verifies_for_that_node_only() {
        let user = User::create().unwrap();
        let node = "0a".repeat(32);
        let challenge = "0b".repeat(32);
        let reply = json!({"challenge": challenge, "node_id": node, "expires_in_secs": 60});
        let request: serde_json::Value =
            serde_json::from_str(&user.sign_in_request(&reply.to_string()).unwrap()).unwrap();
        let sig: [u8; 64] = hex::decode(request["signature"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let id = user.secrets.user_id();
        assert!(verify(
            id.as_bytes(),
            &challenge_message(&NodeId([0x0a; 32]), &[0x0b; 32]),
            &sig
        ));
        assert!(!verify(
            id.as_bytes(),
            &challenge_message(&NodeId([0x0c; 32]), &[0x0b; 32]),
            &sig
        ));
        assert!(user.sign_challenge("zz", &challenge).is_err());
    }

    #[test]
    fn events_of_every_kind_validate() {
        let mut user = User::create().unwrap();
        let create = user.create_room("garden".into(), false);
        let room = validate(&create).unwrap().room().to_string();
        let info = room_info(&room, false);
        let other = "cd".repeat(32);
        let mut all = vec![create, user.profile("Ana".into())];
        all.push(user.membership(&info, "invite", Some(other)).unwrap());
        all.push(user.membership(&info, "leave", None).unwrap());
        all.push(user.message(&info, &Draft::text("hi".into())).unwrap());
        all.push(user.receipt(&info, "read", Some("ef".repeat(32))).unwrap());
        for bytes in &all {
            let v = validate(bytes).unwrap();
            assert_eq!(v.event().content.author.to_string(), user.user_id());
        }
        // Room events sort after the room's newest time.
        let msg = validate(&all[4]).unwrap();
        assert!(msg.event().content.time.0 > 5_000_000_000_000_000);
        assert!(user.membership(&info, "invite", None).is_err());
        assert!(user.membership(&info, "ban", None).is_err());
        assert!(user.receipt(&info, "read", None).is_err());
        assert!(matches!(
            user.message(&room_info(&room, true), &Draft::text("x".into())),
            Err(WebError::MustEncrypt)
        ));
    }
}
