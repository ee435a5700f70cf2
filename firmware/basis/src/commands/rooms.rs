//! `basis rooms` and `basis room ...`.

use anyhow::{Context, Result};
use basis_core::{Body, History, MembershipAction, RoomCreate, UserId};

use crate::api::types::RoomInfo;
use crate::cli::RoomCommand;
use crate::client::resolve;
use crate::client::session::{ClientOptions, Session};
use crate::commands::print_json;

/// `basis rooms`.
pub async fn list(opts: &ClientOptions, json: bool) -> Result<()> {
    let s = Session::open(opts).await?;
    let rooms = s.client.rooms().await?;
    if json {
        print_json(&serde_json::to_value(&rooms)?);
        return Ok(());
    }
    if rooms.is_empty() {
        println!("no rooms yet: create one with `basis room create NAME`");
    }
    for r in &rooms {
        let joined = r.members.iter().filter(|m| m.standing == "joined").count();
        println!(
            "{}  {:<24} {:<8} {:>3} members{}",
            &r.room[..12],
            r.name,
            r.standing,
            joined,
            if r.encrypted { "  encrypted" } else { "" }
        );
    }
    Ok(())
}

/// Finds the room the user named.
pub async fn find(s: &Session, text: &str) -> Result<RoomInfo> {
    let rooms = s.client.rooms().await?;
    resolve::room(&rooms, text).cloned()
}

async fn membership(
    s: &Session,
    info: &RoomInfo,
    action: MembershipAction,
    target: UserId,
) -> Result<()> {
    let event = s
        .composer()
        .sign_in_room(info, Body::Membership { action, target });
    s.client.post_event(&event).await?;
    Ok(())
}

/// `basis room ...`.
pub async fn room(opts: &ClientOptions, command: RoomCommand) -> Result<()> {
    let s = Session::open(opts).await?;
    match command {
        RoomCommand::Create {
            name,
            unencrypted,
            json,
        } => {
            let event = s.composer().sign(
                None,
                Vec::new(),
                Body::Create(RoomCreate {
                    name: name.clone(),
                    encrypted: !unencrypted,
                    history: History::SinceJoin,
                }),
            );
            let posted = s.client.post_event(&event).await?;
            if json {
                print_json(&serde_json::to_value(&posted)?);
            } else {
                println!(
                    "created {}room {name:?}: {}",
                    if unencrypted { "" } else { "encrypted " },
                    posted.room
                );
            }
        }
        RoomCommand::Invite { room, users } => {
            let info = find(&s, &room).await?;
            for u in users {
                let target = s.contacts.resolve(&u)?;
                let info = s.client.room(&info.room.parse()?).await?;
                membership(&s, &info, MembershipAction::Invite, target)
                    .await
                    .with_context(|| format!("cannot invite {u}"))?;
                println!("invited {u} to {}", info.name);
            }
        }
        RoomCommand::Join { room } => {
            let info = find(&s, &room).await?;
            membership(&s, &info, MembershipAction::Join, s.secrets.user_id()).await?;
            println!("joined {}", info.name);
        }
        RoomCommand::Leave { room } => {
            let info = find(&s, &room).await?;
            membership(&s, &info, MembershipAction::Leave, s.secrets.user_id()).await?;
            println!("left {}", info.name);
        }
        RoomCommand::Remove { room, user } => {
            let info = find(&s, &room).await?;
            let target = s.contacts.resolve(&user)?;
            membership(&s, &info, MembershipAction::Remove, target).await?;
            println!(
                "removed {user} from {}; your next message there uses a new key they do not get",
                info.name
            );
        }
    }
    Ok(())
}
