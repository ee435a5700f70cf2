//! `basis user ...` and `basis contacts ...`: the user key and contacts on this computer.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};
use basis_e2ee::UserSecrets;
use basis_e2ee::keyfile;
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;

use crate::cli::{ContactsCommand, UserCommand};
use crate::client::contacts::{Contacts, parse_shared, share_text};
use crate::client::profile::{ClientDir, load_secrets, save_secrets, write_private};
use crate::client::session::{ClientOptions, Session};
use crate::commands::print_json;
use crate::node::wall_millis;

/// Fewest characters of a new passphrase. The key file can be copied and attacked offline;
/// Argon2id slows each guess, but a passphrase of a few characters falls anyway.
pub const MIN_PASSPHRASE_CHARS: usize = 8;

/// Refuses a passphrase too short to protect a new key file.
fn check_new_passphrase(pass: &str) -> Result<()> {
    let chars = pass.chars().count();
    if chars < MIN_PASSPHRASE_CHARS {
        bail!(
            "the passphrase has {chars} characters; a new user key needs at least {MIN_PASSPHRASE_CHARS} (a few words are easy to remember and hard to guess); nothing was written"
        );
    }
    Ok(())
}

/// Runs a `basis user` subcommand.
pub async fn user(opts: &ClientOptions, command: UserCommand) -> Result<()> {
    let dir = ClientDir::resolve(opts.profile.as_deref())?;
    match command {
        UserCommand::Create { name, .. } => {
            if dir.key_file().exists() {
                bail!(
                    "{} already holds a user key; use another --profile to make a second user",
                    dir.key_file().display()
                );
            }
            let pass = opts
                .passphrase
                .get("Passphrase to protect your new user key: ", true)?;
            check_new_passphrase(&pass)?;
            let secrets = UserSecrets::generate(wall_millis()).context("cannot make a key")?;
            save_secrets(&dir, &secrets, &pass)?;
            println!("made user {}", secrets.user_id());
            println!("key file: {} (encrypted)", dir.key_file().display());
            println!("share it as: {}", share_text(&secrets.user_id()));
            // Publish the profile now, so that others can seal room keys to this user even
            // before the user first opens a room.
            match Session::connect(opts, dir.clone(), secrets).await {
                Ok(s) => {
                    s.publish_profile_if_needed(name.as_deref()).await?;
                    println!("profile published through the node");
                }
                Err(e) => {
                    if let Some(n) = name.as_deref() {
                        write_private(&dir.pending_name_file(), n.as_bytes())?;
                    }
                    println!(
                        "the profile is not published yet ({e:#}); that happens at the first command that reaches a node"
                    );
                }
            }
            Ok(())
        }
        UserCommand::Show { qr, json, .. } => {
            let text = fs::read_to_string(dir.key_file()).with_context(|| {
                format!(
                    "no user key in {}: make one with `basis user create`",
                    dir.path().display()
                )
            })?;
            let user = keyfile::peek_user_id(&text).context("the user key file is damaged")?;
            let share = share_text(&user);
            if json {
                print_json(&serde_json::json!({"user": user.to_string(), "share": share}));
                return Ok(());
            }
            println!("user id: {user}");
            println!("share:   {share}");
            if qr {
                let code = QrCode::new(share.as_bytes()).context("cannot make a QR code")?;
                println!("{}", code.render::<Dense1x2>().quiet_zone(true).build());
            }
            Ok(())
        }
        UserCommand::Export { file, .. } => {
            let text = fs::read_to_string(dir.key_file())
                .with_context(|| format!("no user key in {}", dir.path().display()))?;
            match file {
                Some(f) => {
                    write_private(&f, text.as_bytes())?;
                    eprintln!(
                        "wrote {} (still encrypted with your passphrase)",
                        f.display()
                    );
                }
                None => print!("{text}"),
            }
            Ok(())
        }
        UserCommand::Import { file, .. } => import(&dir, opts, &file),
        UserCommand::Name { name, .. } => {
            let secrets = load_secrets(&dir, &opts.passphrase)?;
            // Kept until a node has it: published now, or at the next command that reaches
            // a node.
            write_private(&dir.pending_name_file(), name.as_bytes())?;
            match Session::connect(opts, dir.clone(), secrets).await {
                Ok(_) => println!("display name {name:?} published"),
                Err(e) => println!(
                    "display name {name:?} saved; it is published at the next command that reaches a node ({e:#})"
                ),
            }
            Ok(())
        }
    }
}

fn import(dir: &ClientDir, opts: &ClientOptions, file: &Path) -> Result<()> {
    let text =
        fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let user = keyfile::peek_user_id(&text)
        .with_context(|| format!("{} is not an exported Basis user key", file.display()))?;
    if dir.key_file().exists() {
        bail!(
            "{} already holds a user key; import into another --profile",
            dir.key_file().display()
        );
    }
    dir.ensure()?;
    // Check the passphrase opens it before taking it in.
    write_private(&dir.key_file(), text.as_bytes())?;
    if let Err(e) = load_secrets(dir, &opts.passphrase) {
        let _ = fs::remove_file(dir.key_file());
        return Err(e.context("nothing was imported"));
    }
    println!("imported user {user}");
    Ok(())
}

/// Runs a `basis contacts` subcommand.
pub fn contacts(opts: &ClientOptions, command: ContactsCommand) -> Result<()> {
    let dir = ClientDir::resolve(opts.profile.as_deref())?;
    let mut c = Contacts::load(&dir)?;
    match command {
        ContactsCommand::List { json } => {
            if json {
                print_json(&serde_json::to_value(&c.contacts)?);
            } else if c.contacts.is_empty() {
                println!("no contacts yet: add one with `basis contacts add NICKNAME KEY`");
            } else {
                for contact in &c.contacts {
                    println!("{:<20} {}", contact.name, contact.user);
                }
            }
            return Ok(());
        }
        ContactsCommand::Add { name, key } => {
            let user = parse_shared(&key)?;
            c.add(&name, user)?;
            println!("added {name} ({})", user.short());
        }
        ContactsCommand::Remove { name } => {
            let gone = c.remove(&name)?;
            println!("removed {} ({})", gone.name, gone.user.short());
        }
        ContactsCommand::Rename { old, new } => {
            c.rename(&old, &new)?;
            println!("renamed {old} to {new}");
        }
    }
    c.save(&dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_passphrase_needs_eight_characters() {
        let err = check_new_passphrase("x").unwrap_err().to_string();
        assert!(err.contains("at least 8"), "{err}");
        assert!(check_new_passphrase("seven c").is_err());
        assert!(check_new_passphrase("eight ch").is_ok());
        // Characters, not bytes: eight letters of any script will do, seven will not.
        assert!(check_new_passphrase("ñandúñan").is_ok());
        assert!(check_new_passphrase("ñandúña").is_err());
    }
}
