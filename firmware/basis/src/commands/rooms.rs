//! `basis rooms` and `basis room ...`.

use anyhow::{Context, Result, bail};
use basis_core::{Body, History, MembershipAction, RoomCreate, UserId};

use crate::cli::RoomCommand;
use crate::client::directory;
use crate::client::render;
use crate::client::session::{ClientOptions, Session};
use crate::commands::print_json;
use basis_api::rooms::{RoomInfo, Standing};

/// `basis rooms`.
pub async fn list(opts: &ClientOptions, json: bool) -> Result<()> {
    let s = Session::open(opts).await?;
    let rooms = s.client.rooms().await?;
    let me = s.secrets.user_id();
    let shown: Vec<&RoomInfo> = rooms
        .iter()
        .filter(|r| !directory::is_superseded(&rooms, &me, r))
        .collect();
    if json {
        let list: Vec<serde_json::Value> = shown
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "display_name".into(),
                        directory::display_name(&s.contacts, &me, r).into(),
                    );
                    o.insert(
                        "direct".into(),
                        directory::dm_partner(r, &me).is_some().into(),
                    );
                }
                v
            })
            .collect();
        print_json(&serde_json::Value::Array(list));
        return Ok(());
    }
    if shown.is_empty() {
        println!("no rooms yet: create one with `basis room create NAME`");
    }
    for r in &shown {
        let joined = r
            .members
            .iter()
            .filter(|m| m.standing == Standing::Joined)
            .count();
        let name = directory::display_name(&s.contacts, &me, r);
        let kind = if directory::dm_partner(r, &me).is_some() {
            "direct"
        } else if r.encrypted {
            "encrypted"
        } else {
            ""
        };
        let members = if joined == 1 { "member " } else { "members" };
        println!(
            "{}  {:<24} {:<8} {:>3} {members}  {kind}",
            render::prefix(&r.room, 12),
            name,
            r.standing,
            joined,
        );
        if r.standing == Standing::Invited {
            println!("{:<14}{}", "", answer_hint(&s, r));
        }
    }
    Ok(())
}

/// How to accept an invitation, in the words the user types.
pub fn answer_hint(s: &Session, r: &RoomInfo) -> String {
    let me = s.secrets.user_id();
    match directory::dm_partner(r, &me) {
        Some(other) => {
            let name = s.contacts.name_of(&other).map(str::to_string);
            match name {
                Some(n) => format!("{n} wrote to you directly: answer with `basis dm {n} TEXT`"),
                None => format!(
                    "{} wrote to you directly: answer with `basis dm {} TEXT` (or add them: `basis contacts add NAME {}`)",
                    directory::display_name(&s.contacts, &me, r),
                    &other.to_string()[..8],
                    other
                ),
            }
        }
        None => format!(
            "you are invited: accept with `basis room join {}`",
            render::prefix(&r.room, 12)
        ),
    }
}

/// Finds the room the user named (a name, an id or prefix, or a contact for a direct
/// conversation).
pub async fn find(s: &Session, text: &str) -> Result<RoomInfo> {
    let rooms = s.client.rooms().await?;
    directory::find(&s.contacts, &s.secrets.user_id(), &rooms, text).cloned()
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
            let rooms = s.client.rooms().await?;
            if let Some(same) = rooms.iter().find(|r| {
                r.name == name
                    && (r.standing == Standing::Joined || r.standing == Standing::Invited)
            }) {
                bail!(
                    "you already have a room named {name:?} ({}): choose another name, so that `basis send {name}` knows which room you mean",
                    render::prefix(&same.room, 12)
                );
            }
            if name == directory::DM_NAME {
                bail!(
                    "{name:?} is kept for direct conversations: use `basis dm CONTACT TEXT` for one, or choose another name"
                );
            }
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
            let target = directory::member(&s.contacts, &info, &user)?;
            membership(&s, &info, MembershipAction::Remove, target).await?;
            println!(
                "removed {user} from {}; your next message there uses a new key they do not get",
                info.name
            );
        }
    }
    Ok(())
}
