//! What an event says: one variant per event kind.
//!
//! The order of variants and fields is part of the wire format (see `docs/PROTOCOL.md`):
//! append new variants at the end, never reorder.

use serde::{Deserialize, Serialize};

use crate::file::{BlobRef, FileDescriptor};
use crate::ids::{EventId, UserId};

/// The body of an event, by kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Body {
    /// Creates a room; the room's id is this event's id.
    Create(RoomCreate),
    /// Invites, joins, leaves or removes a member.
    Membership {
        /// What happens.
        action: MembershipAction,
        /// The user it happens to (the author, for join and leave).
        target: UserId,
    },
    /// Changes room settings; fields left `None` keep their value.
    Settings(RoomSettings),
    /// Group-session keys sealed to members (end-to-end encryption).
    KeyShare(KeyShare),
    /// A message: text, edit, delete, reaction, file or an encrypted payload.
    Message(MessageBody),
    /// A delivery or read receipt up to an event.
    Receipt {
        /// Delivered or read.
        kind: ReceiptKind,
        /// The latest event the receipt covers.
        up_to: EventId,
    },
    /// The author's public profile: display name and key-agreement key. Lives in the
    /// author's profile room ([`crate::ids::profile_room`]); the newest one counts.
    Profile(Profile),
}

impl Body {
    /// The kind as a small number, stored beside the event for queries (the variant index).
    pub fn kind_code(&self) -> u8 {
        match self {
            Body::Create(_) => 0,
            Body::Membership { .. } => 1,
            Body::Settings(_) => 2,
            Body::KeyShare(_) => 3,
            Body::Message(_) => 4,
            Body::Receipt { .. } => 5,
            Body::Profile(_) => 6,
        }
    }

    /// A short name of the kind, for logs and listings.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Body::Create(_) => "create",
            Body::Membership { .. } => "membership",
            Body::Settings(_) => "settings",
            Body::KeyShare(_) => "key-share",
            Body::Message(_) => "message",
            Body::Receipt { .. } => "receipt",
            Body::Profile(_) => "profile",
        }
    }
}

/// Who may read history from before their join.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum History {
    /// Members read from the point they joined.
    SinceJoin,
    /// Members may be given the room's earlier history.
    Shared,
}

/// The content of a room-create event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomCreate {
    /// Human name of the room (may be empty; in encrypted rooms clients may leave it empty).
    pub name: String,
    /// Whether messages must be end-to-end encrypted.
    pub encrypted: bool,
    /// History visibility for newcomers.
    pub history: History,
}

/// Membership changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipAction {
    /// A member invites `target`.
    Invite,
    /// The author joins.
    Join,
    /// The author leaves.
    Leave,
    /// A member removes `target`.
    Remove,
}

/// Room settings changes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomSettings {
    /// New room name.
    pub name: Option<String>,
    /// New retention: events older than this many seconds may be expired (0: keep).
    pub retention_secs: Option<u64>,
    /// New history visibility.
    pub history: Option<History>,
}

/// One session key sealed to one member with HPKE.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    /// The member it is for.
    pub recipient: UserId,
    /// The member's key-agreement public key it was sealed to.
    pub recipient_key: [u8; 32],
    /// HPKE encapsulated key.
    pub encapsulated: Vec<u8>,
    /// HPKE ciphertext of the session key.
    pub ciphertext: Vec<u8>,
}

/// Group-session keys for members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyShare {
    /// Id of the sender's group session the keys belong to.
    pub session_id: Vec<u8>,
    /// The sealed keys, one per recipient.
    pub keys: Vec<SealedKey>,
}

/// A file described by a message; the bytes travel separately.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileManifest {
    /// File name as the sender gave it.
    pub name: String,
    /// Media type, such as `image/jpeg`.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the (encrypted) file bytes; when a timeline shows an `Attachment` this way,
    /// its content address.
    pub sha256: [u8; 32],
}

/// Message kinds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// Replaces the text of an earlier message by the same author.
    Edit {
        /// The message edited.
        target: EventId,
        /// The new text.
        text: String,
    },
    /// Withdraws an earlier message by the same author.
    Delete {
        /// The message deleted.
        target: EventId,
    },
    /// A reaction to a message.
    Reaction {
        /// The message reacted to.
        target: EventId,
        /// The reaction, such as an emoji.
        key: String,
    },
    /// A file.
    File(FileManifest),
    /// An end-to-end encrypted message: nodes see only this.
    Encrypted {
        /// The sender's group session.
        session_id: Vec<u8>,
        /// The ciphertext.
        ciphertext: Vec<u8>,
    },
    /// A file whose chunks are sealed with the key in the descriptor (`docs/PROTOCOL.md` §9).
    /// In an encrypted room it is only ever the inner body of an `EncryptedAttachment`.
    Attachment(FileDescriptor),
    /// A file in an encrypted room: nodes see which chunks it needs (`blob`) and nothing else;
    /// the ciphertext is a Megolm message whose inner body is the `Attachment` (with the same
    /// `blob`), like `Encrypted`.
    EncryptedAttachment {
        /// The file's chunks, for nodes to fetch, keep and expire with this message.
        blob: BlobRef,
        /// The sender's group session.
        session_id: Vec<u8>,
        /// The ciphertext of the inner `Attachment`.
        ciphertext: Vec<u8>,
    },
}

impl MessageBody {
    /// The chunks a node must hold for this message, if it names a file's.
    pub fn blob(&self) -> Option<&BlobRef> {
        match self {
            MessageBody::Attachment(d) => Some(&d.blob),
            MessageBody::EncryptedAttachment { blob, .. } => Some(blob),
            _ => None,
        }
    }

    /// Whether this is an end-to-end encrypted form (`Encrypted` or `EncryptedAttachment`).
    pub fn is_encrypted(&self) -> bool {
        matches!(
            self,
            MessageBody::Encrypted { .. } | MessageBody::EncryptedAttachment { .. }
        )
    }
}

/// Receipt kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReceiptKind {
    /// The reader's client received the events.
    Delivered,
    /// The reader has read the events.
    Read,
}

/// A user's public profile, published so others can name the user and seal keys to it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Display name chosen by the user (may be empty).
    pub name: String,
    /// The user's current X25519 key-agreement public key; key shares are sealed to it.
    pub agreement_key: [u8; 32],
}
