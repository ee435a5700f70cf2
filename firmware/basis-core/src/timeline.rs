//! What a client shows for a room: lines of messages with edits, deletes, reactions and
//! receipts applied. A deterministic function of the room's events (and, in encrypted rooms,
//! of what the client could decrypt).
//!
//! Rules: only the author of a message may edit or delete it; the newest edit in display
//! order wins; a deleted message stays as a marker with no text; each user counts once per
//! reaction key; a receipt covers its event and everything before it. Events that break the
//! room's membership rules ([`crate::room`]) are not shown.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::body::{Body, FileManifest, MembershipAction, MessageBody, ReceiptKind};
use crate::event::Event;
use crate::hlc::Timestamp;
use crate::ids::{EventId, UserId};
use crate::room::{RoomState, display_order};

/// One event of a room with, for an encrypted message, what the client made of it.
#[derive(Clone, Debug)]
pub struct Item {
    /// The event.
    pub event: Event,
    /// For an encrypted message: the decrypted inner body, or why it could not be read.
    pub decrypted: Option<Result<MessageBody, String>>,
}

/// What a line shows.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Shown {
    /// The room was created.
    Created {
        /// The room's name.
        name: String,
    },
    /// A membership change.
    Membership {
        /// What happened.
        action: &'static str,
        /// To whom.
        target: UserId,
    },
    /// A text message (after edits).
    Text {
        /// The text.
        text: String,
        /// True when an edit replaced the original text.
        edited: bool,
    },
    /// A file.
    File {
        /// The file's manifest.
        file: FileManifest,
    },
    /// A message its author deleted.
    Deleted,
    /// An encrypted message this client cannot read (yet).
    Unreadable {
        /// Why, for example "waiting for the key".
        reason: String,
    },
}

/// One line of the timeline.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Line {
    /// The event shown.
    pub id: EventId,
    /// Its author.
    pub author: UserId,
    /// Its timestamp.
    pub time: Timestamp,
    /// What it shows.
    pub shown: Shown,
    /// Reactions: key → users.
    pub reactions: BTreeMap<String, BTreeSet<UserId>>,
}

/// Receipts of one user.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Receipts {
    /// The newest event the user's client received.
    pub delivered: Option<EventId>,
    /// The newest event the user read.
    pub read: Option<EventId>,
}

/// A room as a client shows it.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timeline {
    /// Lines in display order.
    pub lines: Vec<Line>,
    /// Receipts by user.
    pub receipts: BTreeMap<UserId, Receipts>,
}

/// Why a user may not edit or delete a line (see [`Timeline::may_change`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// No message with that id is in the timeline.
    #[error("there is no message with that id in this room (as far as this client has read)")]
    Unknown,
    /// The line is a room event (creation, membership), not a message.
    #[error("that is not a message: only messages can be edited or deleted")]
    NotAMessage,
    /// Someone else wrote it.
    #[error("that message was written by someone else: only its author can change it")]
    NotYours,
    /// It was deleted already.
    #[error("that message was deleted")]
    Deleted,
    /// It cannot be read, so it cannot be edited.
    #[error("that message cannot be read by you, so it cannot be edited")]
    Unreadable,
    /// Only text messages can be edited (a file can be deleted).
    #[error("only text messages can be edited")]
    NotText,
}

/// What a user wants to do to a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Replace its text.
    Edit,
    /// Delete it.
    Delete,
}

fn action_name(action: MembershipAction) -> &'static str {
    match action {
        MembershipAction::Invite => "invited",
        MembershipAction::Join => "joined",
        MembershipAction::Leave => "left",
        MembershipAction::Remove => "removed",
    }
}

impl Timeline {
    /// Builds the timeline of one room from its events, in any order.
    pub fn build(items: &[Item]) -> Timeline {
        let by_id: HashMap<EventId, &Item> = items.iter().map(|i| (i.event.id(), i)).collect();
        let events: Vec<&Event> = items.iter().map(|i| &i.event).collect();
        let mut state = RoomState::default();
        let mut t = Timeline::default();
        let mut line_of: HashMap<EventId, usize> = HashMap::new();
        for event in display_order(&events) {
            if state.apply(event).is_err() {
                continue;
            }
            let id = event.id();
            let c = &event.content;
            let body = match &c.body {
                Body::Message(MessageBody::Encrypted { .. })
                | Body::Message(MessageBody::EncryptedAttachment { .. }) => {
                    match by_id.get(&id).and_then(|i| i.decrypted.clone()) {
                        Some(Ok(inner)) => Ok(inner),
                        Some(Err(reason)) => Err(reason),
                        None => Err("not decrypted".to_string()),
                    }
                }
                Body::Message(m) => Ok(m.clone()),
                Body::Create(create) => {
                    t.push(
                        &mut line_of,
                        id,
                        event,
                        Shown::Created {
                            name: create.name.clone(),
                        },
                    );
                    continue;
                }
                Body::Membership { action, target } => {
                    t.push(
                        &mut line_of,
                        id,
                        event,
                        Shown::Membership {
                            action: action_name(*action),
                            target: *target,
                        },
                    );
                    continue;
                }
                Body::Receipt { kind, up_to } => {
                    let r = t.receipts.entry(c.author).or_default();
                    match kind {
                        ReceiptKind::Delivered => r.delivered = Some(*up_to),
                        ReceiptKind::Read => {
                            r.read = Some(*up_to);
                            r.delivered.get_or_insert(*up_to);
                        }
                    }
                    continue;
                }
                Body::Settings(_) | Body::KeyShare(_) | Body::Profile(_) => continue,
            };
            let body = match body {
                Ok(b) => b,
                Err(reason) => {
                    t.push(&mut line_of, id, event, Shown::Unreadable { reason });
                    continue;
                }
            };
            match body {
                MessageBody::Text { text } => {
                    t.push(
                        &mut line_of,
                        id,
                        event,
                        Shown::Text {
                            text,
                            edited: false,
                        },
                    );
                }
                MessageBody::File(file) => {
                    t.push(&mut line_of, id, event, Shown::File { file });
                }
                MessageBody::Attachment(d) => {
                    // Shown as a file line: name, type, size and the content address (the
                    // key stays with the client's decrypted body).
                    let file = FileManifest {
                        name: d.name,
                        media_type: d.media_type,
                        size: d.blob.size,
                        sha256: d.blob.address,
                    };
                    t.push(&mut line_of, id, event, Shown::File { file });
                }
                MessageBody::Edit { target, text } => {
                    if let Some(line) = t.own_line(&line_of, &target, &c.author)
                        && matches!(line.shown, Shown::Text { .. })
                    {
                        line.shown = Shown::Text { text, edited: true };
                    }
                }
                MessageBody::Delete { target } => {
                    if let Some(line) = t.own_line(&line_of, &target, &c.author)
                        && matches!(line.shown, Shown::Text { .. } | Shown::File { .. })
                    {
                        line.shown = Shown::Deleted;
                        line.reactions.clear();
                    }
                }
                MessageBody::Reaction { target, key } => {
                    if let Some(&i) = line_of.get(&target)
                        && matches!(t.lines[i].shown, Shown::Text { .. } | Shown::File { .. })
                    {
                        t.lines[i]
                            .reactions
                            .entry(key)
                            .or_default()
                            .insert(c.author);
                    }
                }
                // An encrypted body inside an encrypted message is refused by the decryptor.
                MessageBody::Encrypted { .. } | MessageBody::EncryptedAttachment { .. } => {}
            }
        }
        t
    }

    /// Whether `author` may make `change` to the message `target`: the same rules
    /// [`Timeline::build`] applies when it reads the room, so a client can refuse before it
    /// sends a change every reader would ignore.
    pub fn may_change(
        &self,
        target: &EventId,
        author: &UserId,
        change: Change,
    ) -> Result<(), ChangeError> {
        let line = self
            .lines
            .iter()
            .find(|l| l.id == *target)
            .ok_or(ChangeError::Unknown)?;
        match (&line.shown, change) {
            (Shown::Created { .. } | Shown::Membership { .. }, _) => Err(ChangeError::NotAMessage),
            (_, _) if line.author != *author => Err(ChangeError::NotYours),
            (Shown::Deleted, _) => Err(ChangeError::Deleted),
            (Shown::Unreadable { .. }, _) => Err(ChangeError::Unreadable),
            (Shown::File { .. }, Change::Edit) => Err(ChangeError::NotText),
            (Shown::Text { .. } | Shown::File { .. }, _) => Ok(()),
        }
    }

    fn push(
        &mut self,
        line_of: &mut HashMap<EventId, usize>,
        id: EventId,
        event: &Event,
        shown: Shown,
    ) {
        line_of.insert(id, self.lines.len());
        self.lines.push(Line {
            id,
            author: event.content.author,
            time: event.content.time,
            shown,
            reactions: BTreeMap::new(),
        });
    }

    fn own_line(
        &mut self,
        line_of: &HashMap<EventId, usize>,
        target: &EventId,
        author: &UserId,
    ) -> Option<&mut Line> {
        let i = *line_of.get(target)?;
        let line = &mut self.lines[i];
        (line.author == *author).then_some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{History, RoomCreate};
    use crate::event::{EventContent, PROTOCOL_VERSION};
    use crate::ids::RoomId;
    use crate::keys::UserKey;

    fn post(items: &mut Vec<Item>, room: Option<RoomId>, key: &UserKey, body: Body) -> EventId {
        let parents = items.last().map(|i| vec![i.event.id()]).unwrap_or_default();
        let event = EventContent {
            version: PROTOCOL_VERSION,
            room,
            author: key.id(),
            parents,
            time: Timestamp::new(10 + items.len() as u64, 0),
            body,
        }
        .sign(key);
        let id = event.id();
        items.push(Item {
            event,
            decrypted: None,
        });
        id
    }

    #[test]
    fn edits_deletes_reactions_and_receipts() {
        let (a, b) = (UserKey::from_secret([1; 32]), UserKey::from_secret([2; 32]));
        let mut items = Vec::new();
        let create = post(
            &mut items,
            None,
            &a,
            Body::Create(RoomCreate {
                name: "r".into(),
                encrypted: false,
                history: History::SinceJoin,
            }),
        );
        let room = Some(RoomId::from(create));
        let m = |action, t: &UserKey| Body::Membership {
            action,
            target: t.id(),
        };
        let msg = |b: MessageBody| Body::Message(b);
        post(&mut items, room, &a, m(MembershipAction::Invite, &b));
        post(&mut items, room, &b, m(MembershipAction::Join, &b));
        let hello = post(
            &mut items,
            room,
            &a,
            msg(MessageBody::Text {
                text: "helo".into(),
            }),
        );
        let bye = post(
            &mut items,
            room,
            &b,
            msg(MessageBody::Text { text: "bye".into() }),
        );
        // b may not edit a's message; a's own edit counts.
        post(
            &mut items,
            room,
            &b,
            msg(MessageBody::Edit {
                target: hello,
                text: "forged".into(),
            }),
        );
        post(
            &mut items,
            room,
            &a,
            msg(MessageBody::Edit {
                target: hello,
                text: "hello".into(),
            }),
        );
        for _ in 0..2 {
            post(
                &mut items,
                room,
                &b,
                msg(MessageBody::Reaction {
                    target: hello,
                    key: "👍".into(),
                }),
            );
        }
        post(
            &mut items,
            room,
            &b,
            msg(MessageBody::Delete { target: bye }),
        );
        post(
            &mut items,
            room,
            &b,
            Body::Receipt {
                kind: ReceiptKind::Read,
                up_to: hello,
            },
        );
        let t = Timeline::build(&items);
        let line = |id| t.lines.iter().find(|l| l.id == id).unwrap();
        assert_eq!(
            line(hello).shown,
            Shown::Text {
                text: "hello".into(),
                edited: true
            }
        );
        assert_eq!(line(hello).reactions["👍"].len(), 1);
        assert_eq!(line(bye).shown, Shown::Deleted);
        assert_eq!(t.receipts[&b.id()].read, Some(hello));
        // Two membership lines, the create line and two messages.
        assert_eq!(t.lines.len(), 5);
        // What a client may still change is what a reader would apply.
        assert_eq!(t.may_change(&hello, &a.id(), Change::Edit), Ok(()));
        assert_eq!(t.may_change(&hello, &a.id(), Change::Delete), Ok(()));
        assert_eq!(
            t.may_change(&hello, &b.id(), Change::Edit),
            Err(ChangeError::NotYours)
        );
        assert_eq!(
            t.may_change(&hello, &b.id(), Change::Delete),
            Err(ChangeError::NotYours)
        );
        assert_eq!(
            t.may_change(&create, &a.id(), Change::Delete),
            Err(ChangeError::NotAMessage)
        );
        assert_eq!(
            t.may_change(&bye, &b.id(), Change::Edit),
            Err(ChangeError::Deleted)
        );
        assert_eq!(
            t.may_change(&EventId([9; 32]), &a.id(), Change::Delete),
            Err(ChangeError::Unknown)
        );
    }
}
