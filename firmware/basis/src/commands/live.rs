//! `basis tail` and `basis chat`: rooms followed live over the node's WebSocket stream.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, Result};
use basis_core::{
    Body, Event, EventId, MembershipAction, MessageBody, ReceiptKind, RoomId, UserId,
};
use basis_e2ee::RoomKeys;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

use crate::api::types::{ApiEvent, RoomInfo};
use crate::client::crypto::RoomCrypto;
use crate::client::node_client::Stream;
use crate::client::render;
use crate::client::resolve;
use crate::client::session::{ClientOptions, Session, verified};
use crate::client::view::RoomView;
use crate::commands::messages::post_message;
use crate::commands::print_json;
use crate::commands::rooms::find;

/// Messages shown when a room is opened.
const OPEN_LINES: u32 = 20;
/// Receipts are sent at most this often.
const RECEIPT_EVERY: Duration = Duration::from_secs(2);

/// What arrives on the stream.
enum Incoming {
    Event(ApiEvent),
    Notice(serde_json::Value),
    Closed,
    Other,
}

async fn next(ws: &mut Stream) -> Incoming {
    match ws.next().await {
        Some(Ok(Message::Text(text))) => {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                return Incoming::Other;
            };
            match v.get("type").and_then(|t| t.as_str()) {
                Some("event") => v
                    .get("event")
                    .and_then(|e| serde_json::from_value(e.clone()).ok())
                    .map_or(Incoming::Other, Incoming::Event),
                Some("notice") => Incoming::Notice(v.get("notice").cloned().unwrap_or_default()),
                _ => Incoming::Other,
            }
        }
        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Incoming::Closed,
        Some(Ok(_)) => Incoming::Other,
    }
}

/// A room being followed: its keys, the events seen and the names of its members.
struct Followed {
    info: RoomInfo,
    room: RoomId,
    keys: RoomKeys,
    seen: HashSet<EventId>,
    view: RoomView,
    /// Newest message of someone else not yet covered by a receipt.
    unacked: Option<EventId>,
}

impl Followed {
    async fn open(s: &Session, info: RoomInfo, json: bool) -> Result<Followed> {
        let room: RoomId = info.room.parse()?;
        let view = RoomView::load(s, info.clone(), None, OPEN_LINES).await?;
        if !json {
            println!(
                "── {} ({}{}) ──",
                info.name,
                &info.room[..12],
                if info.encrypted { ", encrypted" } else { "" }
            );
        }
        for l in view
            .timeline
            .lines
            .iter()
            .filter(|l| view.page.contains(&l.id))
        {
            if json {
                print_json(&serde_json::to_value(l)?);
            } else {
                println!("{}", render::line(s, &view, l));
            }
        }
        let seen = view.timeline.lines.iter().map(|l| l.id).collect();
        let keys = RoomCrypto::new(&s.dir, &s.secrets).load_keys(&room);
        Ok(Followed {
            info,
            room,
            keys,
            seen,
            view,
            unacked: None,
        })
    }

    fn who(&self, s: &Session, user: &UserId) -> String {
        render::who(s, &self.view, user)
    }

    /// Describes a new event of this room, or `None` for what is not shown.
    fn describe(&mut self, s: &Session, event: &Event) -> Option<(String, serde_json::Value)> {
        let id = event.id();
        if !self.seen.insert(id) {
            return None;
        }
        let crypto = RoomCrypto::new(&s.dir, &s.secrets);
        let author = event.content.author;
        let name = self.who(s, &author);
        let short = |id: &EventId| id.to_string()[..8].to_string();
        let head = format!("{} {}", render::time(event.content.time.0), short(&id));
        let body = match &event.content.body {
            Body::KeyShare(_) => {
                crypto.absorb(&self.room, &mut self.keys, std::slice::from_ref(event));
                let _ = crypto.save_keys(&self.room, &self.keys);
                return None;
            }
            Body::Message(MessageBody::Encrypted { .. }) => {
                let items = crypto.items(&self.room, &mut self.keys, vec![event.clone()]);
                match items.into_iter().next().and_then(|i| i.decrypted) {
                    Some(Ok(b)) => Ok(b),
                    Some(Err(reason)) => Err(reason),
                    None => return None,
                }
            }
            Body::Message(m) => Ok(m.clone()),
            Body::Membership { action, target } => {
                let t = self.who(s, target);
                let text = match action {
                    MembershipAction::Invite => format!("* {name} invited {t}"),
                    MembershipAction::Join => format!("* {t} joined"),
                    MembershipAction::Leave => format!("* {t} left"),
                    MembershipAction::Remove => format!("* {name} removed {t}"),
                };
                let json = serde_json::json!({"id": id, "author": author, "membership": text});
                return Some((format!("{head}  {text}"), json));
            }
            Body::Receipt { kind, up_to } => {
                let what = match kind {
                    ReceiptKind::Delivered => "received",
                    ReceiptKind::Read => "read",
                };
                let text = format!("✓ {name} {what} up to {}", short(up_to));
                let json = serde_json::json!({"id": id, "author": author, "receipt": what, "up_to": up_to});
                return Some((format!("{head}  {text}"), json));
            }
            _ => return None,
        };
        if author != s.secrets.user_id() {
            self.unacked = Some(id);
        }
        let (text, json_body) = match body {
            Err(reason) => (
                format!("{name}: [encrypted: {reason}]"),
                serde_json::json!({"unreadable": reason}),
            ),
            Ok(b) => {
                let json_body = serde_json::to_value(&b).unwrap_or_default();
                let text = match b {
                    MessageBody::Text { text } => format!("{name}: {text}"),
                    MessageBody::Edit { target, text } => {
                        format!("✎ {name} edited {}: {text}", short(&target))
                    }
                    MessageBody::Delete { target } => {
                        format!("✗ {name} deleted {}", short(&target))
                    }
                    MessageBody::Reaction { target, key } => {
                        format!("{name} reacted {key} to {}", short(&target))
                    }
                    MessageBody::File(f) => format!("{name} shared a file: {}", f.name),
                    MessageBody::Encrypted { .. } => format!("{name}: [nested encryption]"),
                };
                (text, json_body)
            }
        };
        let json = serde_json::json!({
            "id": id, "author": author, "time": event.content.time.0, "body": json_body
        });
        Some((format!("{head}  {text}"), json))
    }

    async fn receipt(&mut self, s: &Session, kind: ReceiptKind) {
        let Some(up_to) = self.unacked.take() else {
            return;
        };
        let Ok(info) = s.client.room(&self.room).await else {
            return;
        };
        let event = s
            .composer()
            .sign_in_room(&info, Body::Receipt { kind, up_to });
        // The receipt is shown when it comes back on the stream; mark it seen now.
        self.seen.insert(event.id());
        if let Err(e) = s.client.post_event(&event).await {
            eprintln!("note: the receipt was not sent: {e:#}");
        }
    }
}

/// `basis tail`.
pub async fn tail(opts: &ClientOptions, room: &str, json: bool) -> Result<()> {
    let s = Session::open(opts).await?;
    let info = find(&s, room).await?;
    // Open the stream before reading history so nothing falls between the two.
    let mut ws = s.client.stream(None).await?;
    let mut f = Followed::open(&s, info, json).await?;
    let mut tick = tokio::time::interval(RECEIPT_EVERY);
    loop {
        tokio::select! {
            incoming = next(&mut ws) => match incoming {
                Incoming::Event(e) if e.room == f.info.room => {
                    for event in verified(std::slice::from_ref(&e)) {
                        if let Some((text, value)) = f.describe(&s, &event) {
                            if json { print_json(&value) } else { println!("{text}") }
                        }
                    }
                }
                Incoming::Closed => {
                    eprintln!("the node closed the stream");
                    break;
                }
                _ => {}
            },
            _ = tick.tick() => f.receipt(&s, ReceiptKind::Delivered).await,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    f.receipt(&s, ReceiptKind::Delivered).await;
    s.client.sign_out().await;
    Ok(())
}

const HELP: &str = "\
Type a message and press Enter to send it to the open room. Commands:
  /rooms                 list your rooms          /open ROOM     open a room (number, name or id)
  /history               show older messages      /members       who is in the room
  /edit ID TEXT          change your message      /delete ID     delete your message
  /react ID KEY          react, e.g. /react 1a2b 👍
  /invite WHO            invite a contact         /join ROOM     accept an invitation
  /leave                 leave the open room      /quit          end (Ctrl-D too)
IDs are the 8 characters after the time; 4 are enough when unique.";

async fn send_notice(ws: &mut Stream, value: serde_json::Value) {
    let _ = ws.send(Message::Text(value.to_string().into())).await;
}

fn print_rooms(rooms: &[RoomInfo]) {
    if rooms.is_empty() {
        println!("no rooms yet: /quit and run `basis room create NAME`, or wait for an invitation");
    }
    for (i, r) in rooms.iter().enumerate() {
        println!(
            "  {:>2}. {:<24} {:<8} {}",
            i + 1,
            r.name,
            r.standing,
            &r.room[..12]
        );
    }
}

fn pick<'a>(rooms: &'a [RoomInfo], text: &str) -> Result<&'a RoomInfo> {
    if let Ok(n) = text.parse::<usize>()
        && n >= 1
        && n <= rooms.len()
    {
        return Ok(&rooms[n - 1]);
    }
    resolve::room(rooms, text)
}

/// `basis chat`.
pub async fn chat(opts: &ClientOptions, room: Option<&str>) -> Result<()> {
    let s = Session::open(opts).await?;
    let mut ws = s.client.stream(None).await?;
    send_notice(
        &mut ws,
        serde_json::json!({"type": "presence", "status": "online"}),
    )
    .await;
    let mut rooms = s.client.rooms().await?;
    println!(
        "signed in as {} — /help lists the commands",
        s.secrets.user_id().short()
    );
    print_rooms(&rooms);
    let first = match room {
        Some(r) => Some(pick(&rooms, r)?.clone()),
        None if rooms.len() == 1 => rooms.first().cloned(),
        None => None,
    };
    let mut current = match first {
        Some(info) => Some(Followed::open(&s, info, false).await?),
        None => {
            println!("open a room with /open NUMBER");
            None
        }
    };
    let mut older: Option<String> = current.as_ref().and_then(|f| f.view.older.clone());
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut tick = tokio::time::interval(RECEIPT_EVERY);
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line.context("cannot read the terminal")? else { break };
                let line = line.trim();
                if line.is_empty() { continue; }
                match command(&s, &mut ws, &mut rooms, &mut current, &mut older, line).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => println!("! {e:#}"),
                }
            }
            incoming = next(&mut ws) => match incoming {
                Incoming::Event(e) => {
                    match current.as_mut() {
                        Some(f) if e.room == f.info.room => {
                            for event in verified(std::slice::from_ref(&e)) {
                                if let Some((text, _)) = f.describe(&s, &event) {
                                    println!("{text}");
                                }
                            }
                        }
                        _ => {
                            if let Some(r) = rooms.iter().find(|r| r.room == e.room) {
                                println!("(new activity in {})", r.name);
                            } else if let Ok(fresh) = s.client.rooms().await {
                                rooms = fresh;
                                if let Some(r) = rooms.iter().find(|r| r.room == e.room) {
                                    println!("(new room: {} — {}; /join {} to accept an invitation)", r.name, r.standing, &r.room[..8]);
                                }
                            }
                        }
                    }
                }
                Incoming::Notice(n) => show_notice(&s, current.as_ref(), &n),
                Incoming::Closed => {
                    println!("the node closed the stream; bye");
                    break;
                }
                Incoming::Other => {}
            },
            _ = tick.tick() => {
                if let Some(f) = current.as_mut() {
                    f.receipt(&s, ReceiptKind::Read).await;
                }
            }
        }
    }
    if let Some(f) = current.as_mut() {
        f.receipt(&s, ReceiptKind::Read).await;
    }
    send_notice(
        &mut ws,
        serde_json::json!({"type": "presence", "status": "offline"}),
    )
    .await;
    let _ = ws.close(None).await;
    s.client.sign_out().await;
    Ok(())
}

/// Prints a typing notice for the open room, or a presence change.
fn show_notice(s: &Session, current: Option<&Followed>, n: &serde_json::Value) {
    let field = |k: &str| n.get(k).and_then(|v| v.as_str());
    let Some(user) = field("user").and_then(|u| u.parse::<UserId>().ok()) else {
        return;
    };
    let name = s.name_of(&user, None);
    match field("kind") {
        Some("typing") => {
            let here = current.is_some_and(|f| Some(f.info.room.as_str()) == field("room"));
            if here && n.get("typing").and_then(|t| t.as_bool()) == Some(true) {
                println!("… {name} is typing");
            }
        }
        Some("presence") => println!("• {name} is {}", field("status").unwrap_or("?")),
        _ => {}
    }
}

/// Runs one line typed in the chat; true means quit.
async fn command(
    s: &Session,
    ws: &mut Stream,
    rooms: &mut Vec<RoomInfo>,
    current: &mut Option<Followed>,
    older: &mut Option<String>,
    line: &str,
) -> Result<bool> {
    let (cmd, rest) = match line.strip_prefix('/') {
        Some(c) => c.split_once(' ').unwrap_or((c, "")),
        None => {
            let f = current
                .as_ref()
                .context("open a room first: /open NUMBER")?;
            let info = s.client.room(&f.room).await?;
            send_notice(
                ws,
                serde_json::json!({"type": "typing", "room": info.room, "typing": false}),
            )
            .await;
            post_message(
                s,
                &info,
                MessageBody::Text {
                    text: line.to_string(),
                },
            )
            .await?;
            return Ok(false);
        }
    };
    let rest = rest.trim();
    let open_room = || current.as_ref().context("open a room first: /open NUMBER");
    match cmd {
        "quit" | "q" | "exit" => return Ok(true),
        "help" | "h" => println!("{HELP}"),
        "rooms" => {
            *rooms = s.client.rooms().await?;
            print_rooms(rooms);
        }
        "open" => {
            *rooms = s.client.rooms().await?;
            let info = pick(rooms, rest)?.clone();
            let f = Followed::open(s, info, false).await?;
            *older = f.view.older.clone();
            *current = Some(f);
        }
        "join" => {
            *rooms = s.client.rooms().await?;
            let info = pick(rooms, rest)?.clone();
            let event = s.composer().sign_in_room(
                &info,
                Body::Membership {
                    action: MembershipAction::Join,
                    target: s.secrets.user_id(),
                },
            );
            s.client.post_event(&event).await?;
            let f = Followed::open(s, s.client.room(&info.room.parse()?).await?, false).await?;
            *older = f.view.older.clone();
            *current = Some(f);
        }
        "history" => {
            let f = open_room()?;
            let Some(cursor) = older.clone() else {
                println!("(this is the beginning of the room)");
                return Ok(false);
            };
            let view = RoomView::load(s, f.info.clone(), Some(&cursor), OPEN_LINES).await?;
            for l in view
                .timeline
                .lines
                .iter()
                .filter(|l| view.page.contains(&l.id))
            {
                println!("{}", render::line(s, &view, l));
            }
            *older = view.older.clone();
        }
        "members" => {
            let f = open_room()?;
            let info = s.client.room(&f.room).await?;
            for m in &info.members {
                let user: UserId = m.user.parse()?;
                println!(
                    "  {:<28} {}",
                    s.name_of(&user, m.name.as_deref()),
                    m.standing
                );
            }
        }
        "invite" | "leave" => {
            let f = open_room()?;
            let info = s.client.room(&f.room).await?;
            let (action, target) = if cmd == "invite" {
                (MembershipAction::Invite, s.contacts.resolve(rest)?)
            } else {
                (MembershipAction::Leave, s.secrets.user_id())
            };
            let event = s
                .composer()
                .sign_in_room(&info, Body::Membership { action, target });
            s.client.post_event(&event).await?;
        }
        "edit" | "delete" | "react" => {
            let f = open_room()?;
            let (id_text, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            let ids: Vec<EventId> = f.seen.iter().copied().collect();
            let target = resolve::event(&ids, id_text)?;
            let body = match cmd {
                "edit" if !arg.is_empty() => MessageBody::Edit {
                    target,
                    text: arg.to_string(),
                },
                "react" if !arg.is_empty() => MessageBody::Reaction {
                    target,
                    key: arg.to_string(),
                },
                "delete" => MessageBody::Delete { target },
                _ => anyhow::bail!(
                    "usage: /{cmd} ID {}",
                    if cmd == "edit" { "TEXT" } else { "KEY" }
                ),
            };
            let info = s.client.room(&f.room).await?;
            post_message(s, &info, body).await?;
        }
        other => println!("unknown command /{other}; /help lists them"),
    }
    Ok(false)
}
