//! Message drafts, event validation, and the JSON views of events the module hands to
//! JavaScript.
//!
//! Ids, keys and hashes are lowercase hex; 64-bit times are decimal strings (they exceed
//! 2^53, which a JavaScript number cannot hold exactly).

use basis_core::validate::validate;
use basis_core::{Body, Event, EventId, History, MembershipAction, MessageBody, ReceiptKind};
use serde_json::{Value, json};
use wasm_bindgen::prelude::*;

use crate::error::WebError;

/// A message body before it is signed: sign it as is in a plain room
/// ([`crate::User::message`]), or encrypt it first in an encrypted room
/// ([`crate::RoomCrypto::encrypt`]).
#[wasm_bindgen]
#[derive(Debug, Clone)]
pub struct Draft {
    pub(crate) body: MessageBody,
}

fn event_id(what: &'static str, text: &str) -> Result<EventId, WebError> {
    text.parse().map_err(|e| WebError::input(what, e))
}

#[wasm_bindgen]
impl Draft {
    /// A text message.
    pub fn text(text: String) -> Draft {
        Draft {
            body: MessageBody::Text { text },
        }
    }

    /// A new text for the user's own earlier message `target` (event id, hex).
    pub fn edit(target: &str, text: String) -> Result<Draft, WebError> {
        Ok(Draft {
            body: MessageBody::Edit {
                target: event_id("the edited message", target)?,
                text,
            },
        })
    }

    /// Withdraws the user's own earlier message `target` (event id, hex).
    pub fn deletion(target: &str) -> Result<Draft, WebError> {
        Ok(Draft {
            body: MessageBody::Delete {
                target: event_id("the deleted message", target)?,
            },
        })
    }

    /// A reaction `key` (such as an emoji) to the message `target` (event id, hex).
    pub fn reaction(target: &str, key: String) -> Result<Draft, WebError> {
        Ok(Draft {
            body: MessageBody::Reaction {
                target: event_id("the message reacted to", target)?,
                key,
            },
        })
    }

    /// The draft as bytes to keep in the outbox until it is sent (a file message holds its
    /// key: the outbox keeps it only until the node has the message); [`Draft::load`] reads
    /// them. The encoding is the one events use for bodies (postcard).
    pub fn save(&self) -> Vec<u8> {
        basis_core::encoding::encode(&self.body)
    }

    /// A draft kept with [`Draft::save`].
    pub fn load(bytes: &[u8]) -> Result<Draft, WebError> {
        let body: MessageBody = basis_core::encoding::decode_canonical(bytes)
            .map_err(|e| WebError::input("the saved draft", e))?;
        Ok(Draft { body })
    }

    /// Whether the draft is already encrypted (made by [`crate::RoomCrypto::encrypt`]).
    #[wasm_bindgen(getter)]
    pub fn encrypted(&self) -> bool {
        self.body.is_encrypted()
    }

    /// The draft as JSON text (see [`validate_event`] for the shape of message bodies).
    pub fn describe(&self) -> String {
        message_json(&self.body).to_string()
    }
}

/// Decodes event bytes and checks them as a node does (size, canonical encoding, version,
/// signature, field rules). Returns the event as JSON:
/// `{id, room, author, time, parents, kind, body}`, where `body.type` names the kind
/// (`create`, `membership`, `settings`, `key_share`, `message`, `receipt`, `profile`) and a
/// message body has its own `type` (`text`, `edit`, `delete`, `reaction`, `file`,
/// `encrypted`).
#[wasm_bindgen(js_name = validateEvent)]
pub fn validate_event(bytes: &[u8]) -> Result<String, WebError> {
    Ok(event_json(validate(bytes)?.event()).to_string())
}

/// The JSON view of a (validated) event.
pub(crate) fn event_json(e: &Event) -> Value {
    json!({
        "id": e.id().to_string(),
        "room": e.room_id().to_string(),
        "author": e.content.author.to_string(),
        "time": e.content.time.0.to_string(),
        "parents": e.content.parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "kind": e.content.body.kind_name(),
        "body": body_json(&e.content.body),
    })
}

fn history_name(h: History) -> &'static str {
    match h {
        History::SinceJoin => "since_join",
        History::Shared => "shared",
    }
}

/// The JSON view of an event body.
pub(crate) fn body_json(body: &Body) -> Value {
    match body {
        Body::Create(c) => json!({
            "type": "create",
            "name": c.name,
            "encrypted": c.encrypted,
            "history": history_name(c.history),
        }),
        Body::Membership { action, target } => json!({
            "type": "membership",
            "action": match action {
                MembershipAction::Invite => "invite",
                MembershipAction::Join => "join",
                MembershipAction::Leave => "leave",
                MembershipAction::Remove => "remove",
            },
            "target": target.to_string(),
        }),
        Body::Settings(s) => json!({
            "type": "settings",
            "name": s.name,
            "retention_secs": s.retention_secs.map(|r| r.to_string()),
            "history": s.history.map(history_name),
        }),
        Body::KeyShare(k) => json!({
            "type": "key_share",
            "session_id": hex::encode(&k.session_id),
            "recipients": k.keys.iter().map(|s| s.recipient.to_string()).collect::<Vec<_>>(),
        }),
        Body::Message(m) => json!({"type": "message", "message": message_json(m)}),
        Body::Receipt { kind, up_to } => json!({
            "type": "receipt",
            "kind": match kind {
                ReceiptKind::Delivered => "delivered",
                ReceiptKind::Read => "read",
            },
            "up_to": up_to.to_string(),
        }),
        Body::Profile(p) => json!({
            "type": "profile",
            "name": p.name,
            "agreement_key": hex::encode(p.agreement_key),
        }),
    }
}

/// The JSON view of a message body.
pub(crate) fn message_json(m: &MessageBody) -> Value {
    match m {
        MessageBody::Text { text } => json!({"type": "text", "text": text}),
        MessageBody::Edit { target, text } => {
            json!({"type": "edit", "target": target.to_string(), "text": text})
        }
        MessageBody::Delete { target } => json!({"type": "delete", "target": target.to_string()}),
        MessageBody::Reaction { target, key } => {
            json!({"type": "reaction", "target": target.to_string(), "key": key})
        }
        MessageBody::File(f) => json!({
            "type": "file",
            "name": f.name,
            "media_type": f.media_type,
            "size": f.size.to_string(),
            "sha256": hex::encode(f.sha256),
        }),
        MessageBody::Encrypted {
            session_id,
            ciphertext,
        } => json!({
            "type": "encrypted",
            "session_id": hex::encode(session_id),
            "ciphertext_bytes": ciphertext.len(),
        }),
        MessageBody::Attachment(f) => json!({
            "type": "attachment",
            "name": f.name,
            "safe_name": basis_core::safe_file_name(&f.name),
            "media_type": f.media_type,
            "size": f.blob.size.to_string(),
            "address": hex::encode(f.blob.address),
            "chunk_size": f.blob.chunk_size,
        }),
        MessageBody::EncryptedAttachment {
            blob,
            session_id,
            ciphertext,
        } => json!({
            "type": "encrypted_attachment",
            "size": blob.size.to_string(),
            "address": hex::encode(blob.address),
            "session_id": hex::encode(session_id),
            "ciphertext_bytes": ciphertext.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basis_core::{Composer, RoomId, Timestamp, UserKey};

    #[test]
    fn a_signed_event_validates_and_tampering_is_refused() {
        let key = UserKey::from_secret([3; 32]);
        let e = Composer::new(Timestamp(0)).sign(
            &key,
            Some(RoomId([1; 32])),
            vec![],
            Body::Message(Draft::text("hi".into()).body),
            1,
        );
        let mut bytes = e.to_bytes();
        let v: Value = serde_json::from_str(&validate_event(&bytes).unwrap()).unwrap();
        assert_eq!(v["body"]["message"]["text"], "hi");
        assert_eq!(v["kind"], "message");
        assert_eq!(v["time"], e.content.time.0.to_string());
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = validate_event(&bytes).unwrap_err().to_string();
        assert!(err.starts_with("the event does not verify"), "{err}");
    }

    #[test]
    fn drafts_need_event_ids() {
        assert!(Draft::deletion("abc").is_err());
        let d = Draft::reaction(&"ab".repeat(32), "+1".into()).unwrap();
        assert!(!d.encrypted());
        assert!(d.describe().contains("reaction"));
        let back = Draft::load(&d.save()).unwrap();
        assert_eq!(back.body, d.body);
        assert!(Draft::load(&[0xff]).is_err());
    }
}
