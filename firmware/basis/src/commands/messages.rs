//! `basis send`, `dm`, `edit`, `delete`, `react`, `read` and `history`.

use anyhow::{Context, Result, bail};
use basis_core::timeline::{Change, Line, Shown};
use basis_core::{Body, EventId, MembershipAction, MessageBody, ReceiptKind, RoomId};

use crate::client::crypto::RoomCrypto;
use crate::client::directory;
use crate::client::node_client::Refused;
use crate::client::render;
use crate::client::session::{ClientOptions, Session};
use crate::client::view::{Position, RoomView, is_message};
use crate::commands::print_json;
use crate::commands::rooms::find;
use basis_api::rooms::{RoomInfo, Standing};

/// Refuses to post in a room the user is not joined to, saying what to do instead.
pub fn must_be_joined(info: &RoomInfo, shown_name: &str) -> Result<()> {
    match info.standing {
        Standing::Joined => Ok(()),
        Standing::Invited => bail!(
            "join first: basis room join {} (you are invited to {shown_name} but have not joined)",
            render::prefix(&info.room, 12)
        ),
        Standing::Left => bail!("you left {shown_name}; ask a member to invite you again"),
        Standing::Removed => {
            bail!("you were removed from {shown_name}; ask a member to invite you again")
        }
        Standing::None => bail!("you are not a member of {shown_name}"),
    }
}

/// The node's refusal of a post, in the user's words where the code says more than the
/// node's sentence.
fn explain(e: anyhow::Error, info: &RoomInfo, shown_name: &str) -> anyhow::Error {
    let Some(refused) = e.downcast_ref::<Refused>() else {
        return e;
    };
    match refused.code.as_str() {
        "not_member" | "not_invited" => match must_be_joined(info, shown_name) {
            Err(words) => words,
            Ok(()) => anyhow::anyhow!("the node says you are not a member of {shown_name}"),
        },
        _ => anyhow::anyhow!("{}", refused.message),
    }
}

/// Posts a message body to a room, encrypting it when the room is encrypted.
pub async fn post_message(s: &Session, info: &RoomInfo, body: MessageBody) -> Result<String> {
    let shown_name = directory::display_name(&s.contacts, &s.secrets.user_id(), info);
    must_be_joined(info, &shown_name)?;
    let mut composer = s.composer();
    let body = if info.encrypted {
        RoomCrypto::new(&s.dir, &s.secrets)
            .encrypt(&s.client, &mut composer, info, body)
            .await
            .map_err(|e| explain(e, info, &shown_name))?
    } else {
        Body::Message(body)
    };
    // The key share (if any) changed the room's heads: name it as a parent.
    let info = s.client.room(&info.room.parse()?).await?;
    let event = composer.sign_in_room(&info, body);
    let posted = s
        .client
        .post_event(&event)
        .await
        .map_err(|e| explain(e, &info, &shown_name))?;
    Ok(posted.id)
}

/// `basis send`.
pub async fn send(opts: &ClientOptions, room: &str, text: String, json: bool) -> Result<()> {
    let s = Session::open(opts).await?;
    let info = find(&s, room).await?;
    let id = post_message(&s, &info, MessageBody::Text { text }).await?;
    if json {
        print_json(&serde_json::json!({"id": id, "room": info.room}));
    } else {
        let name = directory::display_name(&s.contacts, &s.secrets.user_id(), &info);
        println!("sent {} to {name}", render::prefix(&id, 8));
    }
    Ok(())
}

/// `basis dm`: writes in the direct conversation with `who`: the room of the two of you that
/// either started (joining it first when the other started it), or a new one.
pub async fn dm(opts: &ClientOptions, who: &str, text: String) -> Result<()> {
    let s = Session::open(opts).await?;
    let me = s.secrets.user_id();
    let rooms = s.client.rooms().await?;
    // The person: a contact, a key, or the id prefix of someone who wrote to you directly.
    let other = match s.contacts.resolve(who) {
        Ok(u) => u,
        Err(e) => rooms
            .iter()
            .filter_map(|r| directory::dm_partner(r, &me))
            .find(|p| {
                who.len() >= 4
                    && who.chars().all(|c| c.is_ascii_hexdigit())
                    && p.to_string().starts_with(&who.to_ascii_lowercase())
            })
            .ok_or(e)?,
    };
    if other == me {
        bail!("that is your own key: a direct message goes to someone else");
    }
    let existing = directory::dm_rooms(&rooms, &me, &other)
        .first()
        .map(|r| (*r).clone());
    let info = match existing {
        Some(r) if r.standing == Standing::Invited => {
            let join = s.composer().sign_in_room(
                &r,
                Body::Membership {
                    action: MembershipAction::Join,
                    target: me,
                },
            );
            s.client.post_event(&join).await?;
            s.client.room(&r.room.parse()?).await?
        }
        Some(r) => r,
        None => {
            let create = s.composer().sign(
                None,
                Vec::new(),
                Body::Create(basis_core::RoomCreate {
                    name: directory::DM_NAME.into(),
                    encrypted: true,
                    history: basis_core::History::SinceJoin,
                }),
            );
            let room: RoomId = s.client.post_event(&create).await?.room.parse()?;
            let info = s.client.room(&room).await?;
            let invite = s.composer().sign_in_room(
                &info,
                Body::Membership {
                    action: MembershipAction::Invite,
                    target: other,
                },
            );
            s.client.post_event(&invite).await?;
            println!(
                "started a direct conversation with {who} ({}); they see it in `basis rooms` and answer with `basis dm`",
                other.short()
            );
            s.client.room(&room).await?
        }
    };
    let id = post_message(&s, &info, MessageBody::Text { text }).await?;
    // Named as `basis rooms` names the conversation, whatever was typed to find the person.
    let name = directory::display_name(&s.contacts, &me, &info);
    println!("sent {} to {name}", render::prefix(&id, 8));
    Ok(())
}

/// What `basis edit`, `delete` and `react` do to their target.
pub enum Act {
    /// Replace the text.
    Edit(String),
    /// Delete the message.
    Delete,
    /// React with a key.
    React(String),
}

/// `basis edit`, `delete` and `react`: checked against the room as it is now, by the rules
/// every reader applies, before anything is sent.
pub async fn change(opts: &ClientOptions, room: &str, event: &str, act: Act) -> Result<()> {
    let s = Session::open(opts).await?;
    let info = find(&s, room).await?;
    let shown_name = directory::display_name(&s.contacts, &s.secrets.user_id(), &info);
    let mut view = RoomView::open(&s, info.clone()).await?;
    let target = view.message(&s, event).await?;
    let me = s.secrets.user_id();
    let body = match act {
        Act::Edit(text) => {
            view.timeline
                .may_change(&target, &me, Change::Edit)
                .with_context(|| format!("cannot edit {}", &target.to_string()[..8]))?;
            MessageBody::Edit { target, text }
        }
        Act::Delete => {
            view.timeline
                .may_change(&target, &me, Change::Delete)
                .with_context(|| format!("cannot delete {}", &target.to_string()[..8]))?;
            MessageBody::Delete { target }
        }
        Act::React(key) => {
            let line = view.timeline.lines.iter().find(|l| l.id == target);
            if !line.is_some_and(|l| matches!(l.shown, Shown::Text { .. } | Shown::File { .. })) {
                bail!("only messages that can be read take reactions");
            }
            MessageBody::Reaction { target, key }
        }
    };
    let id = post_message(&s, &info, body).await?;
    println!("sent {} to {shown_name}", render::prefix(&id, 8));
    Ok(())
}

/// `basis read`: a read receipt up to the newest event.
pub async fn read(opts: &ClientOptions, room: &str) -> Result<()> {
    let s = Session::open(opts).await?;
    let info = find(&s, room).await?;
    let shown_name = directory::display_name(&s.contacts, &s.secrets.user_id(), &info);
    must_be_joined(&info, &shown_name)?;
    let up_to: EventId = info
        .heads
        .first()
        .context("the room has no events yet")?
        .parse()?;
    let event = s.composer().sign_in_room(
        &info,
        Body::Receipt {
            kind: ReceiptKind::Read,
            up_to,
        },
    );
    s.client.post_event(&event).await?;
    println!("marked {shown_name} read");
    Ok(())
}

/// `basis history`: the newest `limit` messages (or those before `before`), each as it is
/// now, with the room events between them. A direct conversation that two rooms carry (both
/// people started one) is shown as one.
pub async fn history(
    opts: &ClientOptions,
    room: &str,
    before: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let s = Session::open(opts).await?;
    let before = before.map(Position::parse).transpose()?;
    let info = find(&s, room).await?;
    let me = s.secrets.user_id();
    let rooms: Vec<RoomInfo> = match directory::dm_partner(&info, &me) {
        Some(other) => {
            let all = s.client.rooms().await?;
            directory::dm_rooms(&all, &me, &other)
                .into_iter()
                .cloned()
                .collect()
        }
        None => vec![info.clone()],
    };
    let mut views = Vec::new();
    let mut lines: Vec<(Line, usize)> = Vec::new();
    let mut more = false;
    for (i, r) in rooms.into_iter().enumerate() {
        let mut view = RoomView::open(&s, r).await?;
        let (page, older) = view.page(&s, before, limit as usize).await?;
        more |= older;
        lines.extend(page.into_iter().map(|l| (l, i)));
        views.push(view);
    }
    if views.len() > 1 {
        // Several rooms of one conversation: one page across them, by time.
        lines.sort_by_key(|(l, _)| Position::of(l));
        let messages = lines.iter().filter(|(l, _)| is_message(l)).count();
        if messages > limit as usize {
            let mut seen = 0;
            let start = lines
                .iter()
                .rposition(|(l, _)| {
                    if is_message(l) {
                        seen += 1;
                    }
                    seen == limit as usize
                })
                .unwrap_or(0);
            lines.drain(..start);
            more = true;
        }
    }
    let next = if more {
        lines.first().map(|(l, _)| Position::of(l).to_string())
    } else {
        None
    };
    let shown_name = directory::display_name(&s.contacts, &me, &info);
    let mut files = std::collections::HashMap::new();
    for (l, _) in &lines {
        if let Shown::File { file } = &l.shown
            && !files.contains_key(&file.sha256)
        {
            // Asking also starts the node fetching a file it lacks (a lazy room's).
            let info = s.client.file(&file.sha256).await.ok().flatten();
            files.insert(file.sha256, info);
        }
    }
    if json {
        let receipts: serde_json::Map<String, serde_json::Value> = views
            .iter()
            .flat_map(|v| v.timeline.receipts.iter())
            .map(|(u, r)| (u.to_string(), serde_json::to_value(r).unwrap_or_default()))
            .collect();
        print_json(&serde_json::json!({
            "room": info.room,
            "name": info.name,
            "display_name": shown_name,
            "lines": lines
                .iter()
                .map(|(l, _)| {
                    let mut v = render::line_json(l);
                    // A file's state on this node (null: not even its chunk list is here).
                    if let (Shown::File { file }, Some(obj)) = (&l.shown, v.as_object_mut()) {
                        let on_node = files.get(&file.sha256).and_then(Option::as_ref);
                        obj.insert(
                            "on_node".into(),
                            serde_json::to_value(on_node).unwrap_or_default(),
                        );
                    }
                    v
                })
                .collect::<Vec<_>>(),
            "receipts": receipts,
            "older": next,
        }));
        return Ok(());
    }
    println!(
        "{shown_name} ({}{}), times in {}",
        render::prefix(&info.room, 12),
        if info.encrypted { ", encrypted" } else { "" },
        render::zone_label()
    );
    for (l, i) in &lines {
        let mut shown = render::line(&s, &views[*i], l);
        if let Shown::File { file } = &l.shown {
            let info = files.get(&file.sha256).and_then(Option::as_ref);
            shown.push_str(&format!("  [{}]", super::files::state_text(info)));
        }
        println!("{shown}");
    }
    for view in &views {
        for r in render::receipts(&s, view) {
            println!("  {r}");
        }
    }
    if let Some(next) = &next {
        println!("older: basis history {room} --before {next}");
    }
    let unreadable: Vec<&str> = lines
        .iter()
        .filter_map(|(l, _)| match &l.shown {
            Shown::Unreadable { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    let before_join = unreadable
        .iter()
        .filter(|r| **r == crate::client::view::BEFORE_JOIN)
        .count();
    if before_join > 0 {
        eprintln!(
            "{before_join} message(s) were sent before you joined: this room's history starts at each member's invitation"
        );
    }
    if unreadable.len() > before_join {
        eprintln!(
            "{} message(s) cannot be read by you yet: the key has not reached this node",
            unreadable.len() - before_join
        );
    }
    Ok(())
}
