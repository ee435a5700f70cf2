//! Validation: what every node checks before it stores or forwards an event.
//!
//! These are the rules that depend on the event alone. Rules that depend on the room's other
//! events (membership, encryption required) are applied by the node on top of these.

use std::collections::HashSet;

use crate::body::{Body, MembershipAction, MessageBody};
use crate::encoding::decode_event;
use crate::error::EventError;
use crate::event::{Event, PROTOCOL_VERSION, id_of};
use crate::ids::{EventId, RoomId};
use crate::keys::verify;
use crate::limits::{MAX_NAME_BYTES, MAX_PARENTS, MAX_REACTION_BYTES, MAX_SEALED_KEYS};

/// An event that passed validation, with its wire bytes and id. Only [`validate`] and
/// [`validate_event`] make one, so holding one means the checks were done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidEvent {
    event: Event,
    bytes: Vec<u8>,
    id: EventId,
}

impl ValidEvent {
    /// The decoded event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The canonical wire bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The event id.
    pub fn id(&self) -> EventId {
        self.id
    }

    /// The room: the event's own id for a room-create event.
    pub fn room(&self) -> RoomId {
        self.event.content.room.unwrap_or(self.id.into())
    }
}

/// Validates wire bytes: size, canonical encoding, version, field rules, signature.
pub fn validate(bytes: &[u8]) -> Result<ValidEvent, EventError> {
    let event = decode_event(bytes)?;
    check(&event, bytes)?;
    Ok(ValidEvent {
        id: id_of(bytes),
        bytes: bytes.to_vec(),
        event,
    })
}

/// Validates an event built in memory (for example one just signed by a client).
pub fn validate_event(event: Event) -> Result<ValidEvent, EventError> {
    validate(&event.to_bytes())
}

fn invalid(field: &'static str, reason: impl Into<String>) -> EventError {
    EventError::InvalidField {
        field,
        reason: reason.into(),
    }
}

fn check_len(field: &'static str, text: &str, max: usize) -> Result<(), EventError> {
    if text.len() > max {
        return Err(invalid(
            field,
            format!("{} bytes, the limit is {max}", text.len()),
        ));
    }
    Ok(())
}

fn check(event: &Event, bytes: &[u8]) -> Result<(), EventError> {
    let c = &event.content;
    if c.version != PROTOCOL_VERSION {
        return Err(EventError::UnknownVersion(c.version));
    }
    if c.parents.len() > MAX_PARENTS {
        return Err(EventError::TooManyParents {
            count: c.parents.len(),
        });
    }
    let mut seen = HashSet::with_capacity(c.parents.len());
    if !c.parents.iter().all(|p| seen.insert(*p)) {
        return Err(invalid("parents", "the same parent is named twice"));
    }
    if !c.time.is_valid() {
        return Err(invalid("time", "the top bit must be clear"));
    }
    match (&c.body, c.room) {
        (Body::Create(_), Some(_)) => {
            return Err(invalid("room", "a create event names no room"));
        }
        (Body::Create(_), None) => {}
        (_, None) => return Err(invalid("room", "only a create event may omit the room")),
        (Body::Profile(_), Some(room)) => {
            if room != crate::ids::profile_room(&c.author) {
                return Err(invalid(
                    "room",
                    "a profile belongs in its author's profile room",
                ));
            }
        }
        (_, Some(room)) => {
            if room == crate::ids::profile_room(&c.author) {
                return Err(invalid("room", "a profile room holds only profile events"));
            }
        }
    }
    check_body(event)?;
    // The signed message is the context followed by the content bytes, which are the wire
    // bytes without the trailing 64-byte signature.
    let content_len = bytes.len().saturating_sub(64);
    let mut message = Vec::with_capacity(crate::event::SIGNING_CONTEXT.len() + content_len);
    message.extend_from_slice(crate::event::SIGNING_CONTEXT);
    message.extend_from_slice(&bytes[..content_len]);
    if !verify(c.author.as_bytes(), &message, &event.signature) {
        return Err(EventError::BadSignature {
            author: c.author.short(),
        });
    }
    Ok(())
}

fn check_body(event: &Event) -> Result<(), EventError> {
    let c = &event.content;
    match &c.body {
        Body::Create(create) => check_len("body.name", &create.name, MAX_NAME_BYTES)?,
        Body::Membership { action, target } => {
            let self_only = matches!(action, MembershipAction::Join | MembershipAction::Leave);
            if self_only && *target != c.author {
                return Err(invalid(
                    "body.target",
                    "join and leave are about the author only",
                ));
            }
        }
        Body::Settings(s) => {
            if let Some(name) = &s.name {
                check_len("body.name", name, MAX_NAME_BYTES)?;
            }
        }
        Body::KeyShare(share) => {
            if share.session_id.is_empty() {
                return Err(invalid("body.session_id", "empty"));
            }
            if share.keys.len() > MAX_SEALED_KEYS {
                return Err(invalid(
                    "body.keys",
                    format!("{} keys, the limit is {MAX_SEALED_KEYS}", share.keys.len()),
                ));
            }
        }
        Body::Message(MessageBody::Reaction { key, .. }) => {
            if key.is_empty() {
                return Err(invalid("body.key", "empty reaction"));
            }
            check_len("body.key", key, MAX_REACTION_BYTES)?;
        }
        Body::Message(MessageBody::Encrypted { session_id, .. }) => {
            if session_id.is_empty() {
                return Err(invalid("body.session_id", "empty"));
            }
        }
        Body::Message(MessageBody::Attachment(file)) => {
            file.check()
                .map_err(|e| invalid("body.file", e.to_string()))?;
        }
        Body::Message(MessageBody::EncryptedAttachment {
            blob, session_id, ..
        }) => {
            blob.check()
                .map_err(|e| invalid("body.blob", e.to_string()))?;
            if session_id.is_empty() {
                return Err(invalid("body.session_id", "empty"));
            }
        }
        Body::Profile(p) => check_len("body.name", &p.name, MAX_NAME_BYTES)?,
        Body::Message(_) | Body::Receipt { .. } => {}
    }
    Ok(())
}
