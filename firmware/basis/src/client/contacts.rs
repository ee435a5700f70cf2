//! Contacts: people you know by a nickname, kept on this computer only.
//!
//! A user's key is shared as text, `basis:user:<64 hex>` (or the bare hex), or as a QR code
//! of that text (`basis user show --qr`).

use std::fs;

use anyhow::{Context, Result, bail};
use basis_core::UserId;
use serde::{Deserialize, Serialize};

use super::profile::{ClientDir, write_private};

/// Prefix of a shared user key.
pub const SHARE_PREFIX: &str = "basis:user:";

/// One contact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Contact {
    /// Nickname, unique in the list.
    pub name: String,
    /// Their user id.
    pub user: UserId,
}

/// The contact list.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Contacts {
    /// Contacts, sorted by nickname.
    pub contacts: Vec<Contact>,
}

/// The text form of a user's key for sharing.
pub fn share_text(user: &UserId) -> String {
    format!("{SHARE_PREFIX}{user}")
}

/// Reads a shared key: `basis:user:<hex>` or bare hex.
pub fn parse_shared(text: &str) -> Result<UserId> {
    let t = text.trim();
    let hex = t.strip_prefix(SHARE_PREFIX).unwrap_or(t);
    hex.parse().with_context(|| {
        format!("{t:?} is not a user key: expected {SHARE_PREFIX}<64 hex characters>")
    })
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && !name.chars().any(|c| c.is_control() || c.is_whitespace());
    if !ok {
        bail!("a nickname is 1 to 64 characters without spaces: {name:?}");
    }
    Ok(())
}

impl Contacts {
    /// Loads the list (empty when there is none yet).
    pub fn load(dir: &ClientDir) -> Result<Contacts> {
        let path = dir.contacts_file();
        match fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("{} is damaged; fix or remove it", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contacts::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Writes the list.
    pub fn save(&self, dir: &ClientDir) -> Result<()> {
        dir.ensure()?;
        let text = serde_json::to_string_pretty(self)?;
        write_private(&dir.contacts_file(), text.as_bytes())
    }

    /// Adds a contact; the nickname and the key must both be new.
    pub fn add(&mut self, name: &str, user: UserId) -> Result<()> {
        check_name(name)?;
        if self.by_name(name).is_some() {
            bail!("there is already a contact named {name:?}");
        }
        if let Some(c) = self.contacts.iter().find(|c| c.user == user) {
            bail!("that key is already your contact {:?}", c.name);
        }
        self.contacts.push(Contact {
            name: name.to_string(),
            user,
        });
        self.contacts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }

    /// Removes a contact by nickname.
    pub fn remove(&mut self, name: &str) -> Result<Contact> {
        let i = self
            .contacts
            .iter()
            .position(|c| c.name == name)
            .with_context(|| format!("no contact named {name:?}"))?;
        Ok(self.contacts.remove(i))
    }

    /// Renames a contact.
    pub fn rename(&mut self, old: &str, new: &str) -> Result<()> {
        check_name(new)?;
        if self.by_name(new).is_some() {
            bail!("there is already a contact named {new:?}");
        }
        let c = self
            .contacts
            .iter_mut()
            .find(|c| c.name == old)
            .with_context(|| format!("no contact named {old:?}"))?;
        c.name = new.to_string();
        self.contacts.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(())
    }

    /// The contact with this nickname.
    pub fn by_name(&self, name: &str) -> Option<&Contact> {
        self.contacts.iter().find(|c| c.name == name)
    }

    /// The nickname of a user, if a contact.
    pub fn name_of(&self, user: &UserId) -> Option<&str> {
        self.contacts
            .iter()
            .find(|c| c.user == *user)
            .map(|c| c.name.as_str())
    }

    /// A user named on the command line: a nickname, a shared key or a user id.
    pub fn resolve(&self, text: &str) -> Result<UserId> {
        if let Some(c) = self.by_name(text) {
            return Ok(c.user);
        }
        let looks_like_key = text.len() >= 64 || text.starts_with(SHARE_PREFIX);
        parse_shared(text).map_err(|e| {
            if looks_like_key {
                e
            } else {
                anyhow::anyhow!(
                    "no contact named {text:?} (see `basis contacts list`; add one with `basis contacts add NAME KEY`)"
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_rename_remove_and_resolve() {
        let mut c = Contacts::default();
        let (a, b) = (UserId([1; 32]), UserId([2; 32]));
        c.add("ana", a).unwrap();
        assert!(c.add("ana", b).is_err(), "duplicate nickname");
        assert!(c.add("other", a).is_err(), "duplicate key");
        assert!(c.add("two words", b).is_err());
        c.add("ben", b).unwrap();
        c.rename("ben", "benjamin").unwrap();
        assert_eq!(c.resolve("benjamin").unwrap(), b);
        assert_eq!(c.resolve(&share_text(&a)).unwrap(), a);
        assert_eq!(c.resolve(&a.to_string()).unwrap(), a);
        assert!(c.resolve("nobody").is_err());
        c.remove("ana").unwrap();
        assert_eq!(c.name_of(&a), None);
    }
}
