//! End-to-end encryption of rooms on the client: the user's outbound Megolm session per room
//! (rotated when the members change, after 100 messages or 7 days), the inbound sessions
//! opened from key shares, and decryption of what the node returns.
//!
//! Session state is kept in `sessions/` of the client folder, sealed with the state key that
//! lives inside the encrypted user key.

use std::collections::BTreeSet;
use std::fs;

use anyhow::{Context, Result};
use basis_core::timeline::Item;
use basis_core::{Body, Event, MessageBody, RoomId, UserId};
use basis_e2ee::{DecryptError, OutboundSession, Plaintext, RoomKeys, UserSecrets};

use super::compose::Composer;
use super::node_client::NodeClient;
use super::profile::{ClientDir, write_private};
use crate::api::types::RoomInfo;
use crate::node::wall_millis;

/// Why an encrypted message shows no text.
pub const WAITING: &str =
    "waiting for the key (not synced to this node yet, or sent before you joined)";

/// Room encryption for one user on this computer.
pub struct RoomCrypto<'a> {
    dir: &'a ClientDir,
    secrets: &'a UserSecrets,
}

impl<'a> RoomCrypto<'a> {
    /// Encryption state under `dir` for the holder of `secrets`.
    pub fn new(dir: &'a ClientDir, secrets: &'a UserSecrets) -> RoomCrypto<'a> {
        RoomCrypto { dir, secrets }
    }

    /// The inbound sessions known for a room (empty when none were saved).
    pub fn load_keys(&self, room: &RoomId) -> RoomKeys {
        let path = self.dir.session_file(room, "in");
        match fs::read(&path) {
            Ok(bytes) => RoomKeys::unpickle(&bytes, self.secrets.state_key()).unwrap_or_else(|e| {
                log::warn!(
                    "{} cannot be read ({e}); the room's keys are fetched again",
                    path.display()
                );
                RoomKeys::new()
            }),
            Err(_) => RoomKeys::new(),
        }
    }

    /// Saves the inbound sessions of a room.
    pub fn save_keys(&self, room: &RoomId, keys: &RoomKeys) -> Result<()> {
        self.dir.ensure()?;
        let bytes = keys
            .pickle(self.secrets.state_key())
            .context("cannot seal the room keys")?;
        write_private(&self.dir.session_file(room, "in"), &bytes)
    }

    fn load_outbound(&self, room: &RoomId) -> Option<OutboundSession> {
        let path = self.dir.session_file(room, "out");
        let bytes = fs::read(&path).ok()?;
        match OutboundSession::unpickle(&bytes, self.secrets.state_key()) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!(
                    "{} cannot be read ({e}); starting a new session",
                    path.display()
                );
                None
            }
        }
    }

    fn save_outbound(&self, room: &RoomId, s: &OutboundSession) -> Result<()> {
        self.dir.ensure()?;
        let bytes = s
            .pickle(self.secrets.state_key())
            .context("cannot seal the room session")?;
        write_private(&self.dir.session_file(room, "out"), &bytes)
    }

    /// Encrypts a message for the room's members. Shares a new session first when there is
    /// none, when the members (with published keys) changed, after 100 messages or 7 days.
    pub async fn encrypt(
        &self,
        client: &NodeClient,
        composer: &mut Composer<'_>,
        info: &RoomInfo,
        body: MessageBody,
    ) -> Result<Body> {
        let room: RoomId = info.room.parse().context("the node sent a bad room id")?;
        let me = self.secrets.user_id();
        // Members we can seal to: joined or invited, with a published key (ourselves always).
        // Invitees get the keys from their invitation on, so the first messages of a direct
        // room are readable once the other person accepts.
        let mut recipients: Vec<(UserId, [u8; 32])> = vec![(me, self.secrets.agreement_public())];
        for m in info
            .members
            .iter()
            .filter(|m| m.standing == "joined" || m.standing == "invited")
        {
            let Ok(user) = m.user.parse::<UserId>() else {
                continue;
            };
            if user == me {
                continue;
            }
            match m
                .agreement_key
                .as_deref()
                .and_then(|k| hex::decode(k).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            {
                Some(key) => recipients.push((user, key)),
                None => eprintln!(
                    "note: {} has not published a key yet; they will get the room key once they have",
                    user.short()
                ),
            }
        }
        let members: BTreeSet<UserId> = recipients.iter().map(|(u, _)| *u).collect();
        let now = wall_millis();
        let mut session = match self.load_outbound(&room) {
            Some(s) if s.needs_rotation(&members, now).is_none() => s,
            _ => {
                let s = OutboundSession::new(now, members);
                let share = s
                    .key_share(room, me, &recipients)
                    .context("cannot seal the room key")?;
                let event = composer.sign_in_room(info, Body::KeyShare(share));
                client
                    .post_event(&event)
                    .await
                    .context("the node refused the room key share")?;
                // Our own copy, so our history reads back without a round trip.
                let mut keys = self.load_keys(&room);
                if let Body::KeyShare(share) = &event.content.body {
                    let _ = keys.absorb(room, me, share, self.secrets);
                }
                self.save_keys(&room, &keys)?;
                s
            }
        };
        let encrypted = session
            .encrypt(&Plaintext {
                room,
                sender: me,
                body,
            })
            .context("cannot encrypt the message")?;
        self.save_outbound(&room, &session)?;
        Ok(Body::Message(encrypted))
    }

    /// Absorbs every key share among `events` addressed to this user.
    pub fn absorb(&self, room: &RoomId, keys: &mut RoomKeys, events: &[Event]) {
        for e in events {
            if let Body::KeyShare(share) = &e.content.body
                && let Err(err) = keys.absorb(*room, e.content.author, share, self.secrets)
            {
                log::warn!(
                    "a key share from {} cannot be opened: {err}",
                    e.content.author.short()
                );
            }
        }
    }

    /// Pairs each event with its decrypted body (for encrypted messages).
    pub fn items(&self, room: &RoomId, keys: &mut RoomKeys, events: Vec<Event>) -> Vec<Item> {
        events
            .into_iter()
            .map(|event| {
                let decrypted = match &event.content.body {
                    Body::Message(MessageBody::Encrypted {
                        session_id,
                        ciphertext,
                    }) => Some(
                        keys.decrypt(*room, event.content.author, session_id, ciphertext)
                            .map(|p| p.body)
                            .map_err(|e| match e {
                                DecryptError::NoSession => WAITING.to_string(),
                                other => format!("cannot be decrypted: {other}"),
                            }),
                    ),
                    _ => None,
                };
                Item { event, decrypted }
            })
            .collect()
    }

    /// True when an encrypted message among `events` needs a session not in `keys`.
    pub fn missing(&self, room: &RoomId, keys: &RoomKeys, events: &[Event]) -> bool {
        events.iter().any(|e| match &e.content.body {
            Body::Message(MessageBody::Encrypted { session_id, .. }) => {
                !keys.has_session(*room, e.content.author, session_id)
            }
            _ => false,
        })
    }
}
