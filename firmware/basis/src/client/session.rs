//! One client command's context: the client folder, the unlocked user key, the contacts and
//! a signed-in connection to a node whose copy of the user's profile is current.

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use basis_core::validate::validate;
use basis_core::{Body, Event, Profile, profile_room};
use basis_e2ee::UserSecrets;

use super::compose::Composer;
use super::contacts::Contacts;
use super::discover::node_url;
use super::node_client::NodeClient;
use super::profile::{ClientDir, PassphraseSource, load_secrets};
use crate::api::types::ApiEvent;

/// What the client commands are told on the command line.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// `--node URL`.
    pub node: Option<String>,
    /// `--profile DIR`.
    pub profile: Option<std::path::PathBuf>,
    /// `--passphrase-file FILE`.
    pub passphrase: PassphraseSource,
}

/// A signed-in client.
pub struct Session {
    /// The client folder.
    pub dir: ClientDir,
    /// The user's secrets.
    pub secrets: UserSecrets,
    /// The contacts.
    pub contacts: Contacts,
    /// The node connection.
    pub client: NodeClient,
    /// The node's clock when we connected.
    pub node_time: u64,
}

impl Session {
    /// Unlocks the user key, finds the node, signs in and publishes the user's profile there
    /// when the node lacks the current one.
    pub async fn open(opts: &ClientOptions) -> Result<Session> {
        let dir = ClientDir::resolve(opts.profile.as_deref())?;
        let secrets = load_secrets(&dir, &opts.passphrase)?;
        Session::connect(opts, dir, secrets).await
    }

    /// Like [`Session::open`], with the user key already unlocked.
    pub async fn connect(
        opts: &ClientOptions,
        dir: ClientDir,
        secrets: UserSecrets,
    ) -> Result<Session> {
        let contacts = Contacts::load(&dir)?;
        let url = node_url(opts.node.as_deref())?;
        let client = NodeClient::sign_in(&url, &secrets).await?;
        let node_time = client.status().await?.time;
        let session = Session {
            dir,
            secrets,
            contacts,
            client,
            node_time,
        };
        session.publish_profile_if_needed(None).await?;
        Ok(session)
    }

    /// A composer whose clock has seen the node's.
    pub fn composer(&self) -> Composer<'_> {
        Composer::new(&self.secrets, self.node_time)
    }

    /// Posts a profile when the node has none of ours, or an outdated key (or `name` is new).
    pub async fn publish_profile_if_needed(&self, name: Option<&str>) -> Result<()> {
        let me = self.secrets.user_id();
        let current = self.client.user_info(&me).await?;
        let key = hex::encode(self.secrets.agreement_public());
        let keep_name = current.as_ref().map(|c| c.name.clone()).unwrap_or_default();
        let up_to_date = current.as_ref().is_some_and(|c| c.agreement_key == key);
        if up_to_date && name.is_none_or(|n| n == keep_name) {
            return Ok(());
        }
        let mut composer = self.composer();
        if let Some(c) = &current {
            composer.observe(c.time);
        }
        let event = composer.sign(
            Some(profile_room(&me)),
            Vec::new(),
            Body::Profile(Profile {
                name: name.map(str::to_string).unwrap_or(keep_name),
                agreement_key: self.secrets.agreement_public(),
            }),
        );
        self.client
            .post_event(&event)
            .await
            .context("the node refused your profile")?;
        Ok(())
    }

    /// A person's display name: your nickname for them, their profile name, or a short id.
    pub fn name_of(&self, user: &basis_core::UserId, profile_name: Option<&str>) -> String {
        if *user == self.secrets.user_id() {
            return "you".into();
        }
        if let Some(n) = self.contacts.name_of(user) {
            return n.to_string();
        }
        match profile_name.filter(|n| !n.is_empty()) {
            Some(n) => format!("{n} ({})", user.short()),
            None => user.short(),
        }
    }
}

/// Decodes and verifies events the node returned; drops (and reports) any that do not verify:
/// the client trusts signatures, not the node.
pub fn verified(events: &[ApiEvent]) -> Vec<Event> {
    events
        .iter()
        .filter_map(|e| {
            let raw = STANDARD.decode(&e.raw).ok()?;
            match validate(&raw) {
                Ok(v) => Some(v.event().clone()),
                Err(err) => {
                    eprintln!(
                        "warning: the node sent an event that does not verify ({err}); ignored"
                    );
                    None
                }
            }
        })
        .collect()
}
