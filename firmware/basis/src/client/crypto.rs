//! End-to-end encryption of rooms on the client: the user's outbound Megolm session per room
//! (rotated when the members change, after 100 messages or 7 days), the inbound sessions
//! opened from key shares, and decryption of what the node returns.
//!
//! Session state is kept in `sessions/` of the client folder, sealed with the state key that
//! lives inside the encrypted user key.

use std::fs;

use anyhow::{Context, Result};
use basis_core::timeline::Item;
use basis_core::{Body, Event, MessageBody, RoomId};
use basis_e2ee::{OutboundSession, Plaintext, RoomKeys, UserSecrets};

use super::compose::Composer;
use super::node_client::NodeClient;
use super::profile::{ClientDir, write_private};
use crate::node::wall_millis;
use basis_api::rooms::RoomInfo;

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
        let members = info.members.iter().filter_map(|m| {
            basis_e2ee::key_member(&m.user, m.standing.as_str(), m.agreement_key.as_deref())
        });
        let recipients = basis_e2ee::recipients(self.secrets, members);
        for user in &recipients.without_key {
            eprintln!(
                "note: {} has not published a key yet; they will get the room key once they have",
                user.short()
            );
        }
        let (mut session, share) = basis_e2ee::session_for(
            self.load_outbound(&room),
            room,
            self.secrets,
            &recipients,
            wall_millis(),
        )
        .context("cannot seal the room key")?;
        if let Some(share) = share {
            let event = composer.sign_in_room(info, Body::KeyShare(share));
            client
                .post_event(&event)
                .await
                .context("the node refused the room key share")?;
            // Our own copy, so our history reads back without a round trip.
            let mut keys = self.load_keys(&room);
            let _ = keys.absorb_event(room, &event, self.secrets);
            self.save_keys(&room, &keys)?;
        }
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
            if let Err(err) = keys.absorb_event(*room, e, self.secrets) {
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
                let decrypted = keys
                    .decrypt_event(*room, &event)
                    .map(|r| r.map(|p| p.body).map_err(|e| e.reason()));
                Item { event, decrypted }
            })
            .collect()
    }

    /// True when an encrypted message among `events` needs a session not in `keys`.
    pub fn missing(&self, room: &RoomId, keys: &RoomKeys, events: &[Event]) -> bool {
        events.iter().any(|e| keys.lacks_session_for(*room, e))
    }
}
