//! `basis send`, `edit`, `delete`, `react`, `read` and `history`.

use anyhow::{Context, Result};
use basis_core::timeline::Shown;
use basis_core::{Body, EventId, MessageBody, ReceiptKind, RoomId};

use crate::api::types::RoomInfo;
use crate::client::crypto::RoomCrypto;
use crate::client::render;
use crate::client::resolve;
use crate::client::session::{ClientOptions, Session, verified};
use crate::client::view::RoomView;
use crate::commands::print_json;
use crate::commands::rooms::find;

/// How many recent events an event prefix is looked up in.
const RECENT: u32 = 500;

/// Posts a message body to a room, encrypting it when the room is encrypted.
pub async fn post_message(s: &Session, info: &RoomInfo, body: MessageBody) -> Result<String> {
    let mut composer = s.composer();
    let body = if info.encrypted {
        RoomCrypto::new(&s.dir, &s.secrets)
            .encrypt(&s.client, &mut composer, info, body)
            .await?
    } else {
        Body::Message(body)
    };
    // The key share (if any) changed the room's heads: name it as a parent.
    let info = s.client.room(&info.room.parse()?).await?;
    let event = composer.sign_in_room(&info, body);
    Ok(s.client.post_event(&event).await?.id)
}

async fn recent_ids(s: &Session, room: &RoomId) -> Result<Vec<EventId>> {
    let page = s.client.history(room, None, RECENT).await?;
    Ok(verified(&page.events).iter().map(|e| e.id()).collect())
}

async fn target(s: &Session, info: &RoomInfo, text: &str) -> Result<EventId> {
    let ids = recent_ids(s, &info.room.parse()?).await?;
    resolve::event(&ids, text)
}

/// `basis send`.
pub async fn send(opts: &ClientOptions, room: &str, text: String, json: bool) -> Result<()> {
    let s = Session::open(opts).await?;
    let info = find(&s, room).await?;
    let id = post_message(&s, &info, MessageBody::Text { text }).await?;
    if json {
        print_json(&serde_json::json!({"id": id, "room": info.room}));
    } else {
        println!("sent {} to {}", &id[..8], info.name);
    }
    Ok(())
}

/// `basis dm`: the direct room with `who` is an encrypted room named `dm` holding exactly
/// the two of you (invited or joined); made on first use.
pub async fn dm(opts: &ClientOptions, who: &str, text: String) -> Result<()> {
    let s = Session::open(opts).await?;
    let other = s.contacts.resolve(who)?;
    let (me, other_hex) = (s.secrets.user_id().to_string(), other.to_string());
    let pair = |r: &RoomInfo| {
        let active: Vec<&str> = r
            .members
            .iter()
            .filter(|m| m.standing == "joined" || m.standing == "invited")
            .map(|m| m.user.as_str())
            .collect();
        r.name == "dm"
            && r.standing == "joined"
            && active.len() == 2
            && active.contains(&me.as_str())
            && active.contains(&other_hex.as_str())
    };
    let existing = s.client.rooms().await?.into_iter().find(pair);
    let info = match existing {
        Some(r) => r,
        None => {
            let create = s.composer().sign(
                None,
                Vec::new(),
                Body::Create(basis_core::RoomCreate {
                    name: "dm".into(),
                    encrypted: true,
                    history: basis_core::History::SinceJoin,
                }),
            );
            let room: RoomId = s.client.post_event(&create).await?.room.parse()?;
            let info = s.client.room(&room).await?;
            let invite = s.composer().sign_in_room(
                &info,
                Body::Membership {
                    action: basis_core::MembershipAction::Invite,
                    target: other,
                },
            );
            s.client.post_event(&invite).await?;
            println!(
                "started a direct room with {who} ({}); they join it with `basis room join {}`",
                other.short(),
                &room.to_string()[..12]
            );
            s.client.room(&room).await?
        }
    };
    let id = post_message(&s, &info, MessageBody::Text { text }).await?;
    println!("sent {} to {who}", &id[..8]);
    Ok(())
}

/// `basis edit`, `delete` and `react`.
pub async fn change(
    opts: &ClientOptions,
    room: &str,
    event: &str,
    make: impl FnOnce(EventId) -> MessageBody,
) -> Result<()> {
    let s = Session::open(opts).await?;
    let info = find(&s, room).await?;
    let target = target(&s, &info, event).await?;
    let id = post_message(&s, &info, make(target)).await?;
    println!("sent {} to {}", &id[..8], info.name);
    Ok(())
}

/// `basis read`: a read receipt up to the newest event.
pub async fn read(opts: &ClientOptions, room: &str) -> Result<()> {
    let s = Session::open(opts).await?;
    let info = find(&s, room).await?;
    let up_to = info
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
    println!("marked {} read", info.name);
    Ok(())
}

/// `basis history`.
pub async fn history(
    opts: &ClientOptions,
    room: &str,
    before: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<()> {
    let s = Session::open(opts).await?;
    let info = find(&s, room).await?;
    let view = RoomView::load(&s, info, before, limit).await?;
    let lines: Vec<_> = view
        .timeline
        .lines
        .iter()
        .filter(|l| view.page.contains(&l.id))
        .collect();
    if json {
        print_json(&serde_json::json!({
            "room": view.info.room,
            "name": view.info.name,
            "lines": lines,
            "receipts": view.timeline.receipts,
            "older": view.older,
        }));
        return Ok(());
    }
    println!(
        "{} ({}{})",
        view.info.name,
        &view.info.room[..12],
        if view.info.encrypted {
            ", encrypted"
        } else {
            ""
        }
    );
    for l in &lines {
        println!("{}", render::line(&s, &view, l));
    }
    for r in render::receipts(&s, &view) {
        println!("  {r}");
    }
    if let Some(older) = &view.older {
        println!(
            "older: basis history {} --before {older}",
            &view.info.room[..12]
        );
    }
    let unreadable = lines
        .iter()
        .filter(|l| matches!(l.shown, Shown::Unreadable { .. }))
        .count();
    if unreadable > 0 {
        eprintln!("{unreadable} message(s) cannot be read by you (yet)");
    }
    Ok(())
}
