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
use basis_api::events::ApiEvent;

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
    /// The node's base URL.
    pub url: String,
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
            url,
        };
        // A name chosen while no node could be reached goes out now.
        let pending_file = session.dir.pending_name_file();
        let pending = std::fs::read_to_string(&pending_file)
            .ok()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty());
        session
            .publish_profile_if_needed(pending.as_deref())
            .await?;
        if pending.is_some() {
            let _ = std::fs::remove_file(&pending_file);
        }
        Ok(session)
    }

    /// Signs in to the same node again (after it restarted or the network came back).
    pub async fn reconnect(&mut self) -> Result<()> {
        self.client = NodeClient::sign_in(&self.url, &self.secrets).await?;
        self.node_time = self.client.status().await?.time;
        Ok(())
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
        super::directory::person(&self.contacts, user, profile_name)
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
