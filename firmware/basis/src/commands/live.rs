//! `basis tail` and `basis chat`: rooms followed live over the node's WebSocket stream.
//!
//! A followed room is a [`RoomView`]: events that arrive are added to it and the timeline is
//! built again, so a live view applies exactly the rules `basis history` applies (an edit of
//! someone else's message changes nothing here either). When the node goes away (a restart, a
//! Wi-Fi that drops) both commands sign in again with a growing pause and catch up on what
//! they missed. On a terminal, `chat` reads the line being typed with rustyline, and what
//! arrives meanwhile is printed above it instead of over it.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, Result};
use basis_core::timeline::{Change, Line, Shown};
use basis_core::{Body, Event, EventId, MembershipAction, MessageBody, ReceiptKind, UserId};
use futures_util::{SinkExt, StreamExt};
use rustyline::ExternalPrinter;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::client::directory;
use crate::client::node_client::Stream;
use crate::client::render;
use crate::client::resolve;
use crate::client::session::{ClientOptions, Session, verified};
use crate::client::view::{Position, RoomView, Update};
use crate::commands::messages::{must_be_joined, post_message};
use crate::commands::print_json;
use crate::commands::rooms::answer_hint;
use basis_api::events::ApiEvent;
use basis_api::rooms::{RoomInfo, Standing};
use basis_api::stream::{Notice, NoticeKind, Presence, StreamMessage, StreamRequest};

/// Messages shown when a room is opened, and per `/history`.
const OPEN_LINES: usize = 20;
/// Receipts are sent at most this often.
const RECEIPT_EVERY: Duration = Duration::from_secs(2);
/// First pause before signing in again after the node went away; it doubles up to
/// [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest pause between attempts to reach the node again.
const MAX_RETRY: Duration = Duration::from_secs(15);

/// Where lines for the user go: above the line being typed on a terminal, else stdout.
enum Out {
    /// rustyline's printer, which keeps the typed line intact.
    Printer(Box<dyn ExternalPrinter + Send>),
    /// Plain stdout (a pipe, a test, `tail`).
    Plain,
    /// Standard error, for notices beside JSON lines on stdout (`tail --json`).
    Stderr,
}

impl Out {
    fn say(&mut self, text: impl Into<String>) {
        let text = text.into();
        match self {
            Out::Printer(p) => {
                if p.print(format!("{text}\n")).is_err() {
                    println!("{text}");
                }
            }
            Out::Plain => println!("{text}"),
            Out::Stderr => eprintln!("{text}"),
        }
    }
}

/// What arrives on the stream.
enum Incoming {
    Event(ApiEvent),
    Notice(Notice),
    Closed,
    Other,
}

async fn next(ws: &mut Stream) -> Incoming {
    match ws.next().await {
        Some(Ok(Message::Text(text))) => {
            match serde_json::from_str::<StreamMessage>(text.as_str()) {
                Ok(StreamMessage::Event { event }) => Incoming::Event(event),
                Ok(StreamMessage::Notice { notice }) => Incoming::Notice(notice),
                Ok(StreamMessage::Error { .. }) | Err(_) => Incoming::Other,
            }
        }
        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Incoming::Closed,
        Some(Ok(_)) => Incoming::Other,
    }
}

/// Signs in again and opens a new stream, pausing longer after each failure. Returns `None`
/// when the user pressed Ctrl-C meanwhile.
async fn reconnect(s: &mut Session, out: &mut Out) -> Option<Stream> {
    let mut pause = FIRST_RETRY;
    out.say(format!(
        "! lost the node at {}; reconnecting (Ctrl-C to stop)",
        s.url
    ));
    loop {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = tokio::signal::ctrl_c() => return None,
        }
        let attempt = async {
            s.reconnect().await?;
            s.client.stream(None).await
        };
        match attempt.await {
            Ok(ws) => {
                out.say("! reconnected");
                return Some(ws);
            }
            Err(_) => pause = (pause * 2).min(MAX_RETRY),
        }
    }
}

/// A room being followed live.
struct Followed {
    view: RoomView,
    /// How the user calls it.
    name: String,
    /// The oldest position shown so far (for `/history`).
    oldest: Option<Position>,
    /// Newest message of someone else not yet covered by a receipt.
    unacked: Option<EventId>,
    json: bool,
}

impl Followed {
    async fn open(s: &Session, info: RoomInfo, json: bool, out: &mut Out) -> Result<Followed> {
        let name = directory::display_name(&s.contacts, &s.secrets.user_id(), &info);
        let mut view = RoomView::open(s, info.clone()).await?;
        let (lines, _) = view.page(s, None, OPEN_LINES).await?;
        if !json {
            out.say(format!(
                "── {name} ({}{}) ── times in {}",
                render::prefix(&info.room, 12),
                if info.encrypted { ", encrypted" } else { "" },
                render::zone_label()
            ));
            if info.standing == Standing::Invited {
                out.say(format!("   {}", answer_hint(s, &info)));
            }
        }
        for l in &lines {
            if json {
                print_json(&render::line_json(l));
            } else {
                out.say(render::line(s, &view, l));
            }
        }
        Ok(Followed {
            oldest: lines.first().map(Position::of),
            view,
            name,
            unacked: None,
            json,
        })
    }

    fn who(&self, s: &Session, user: &UserId) -> String {
        render::who(s, &self.view, user)
    }

    /// Takes new events of this room and shows what changed.
    fn take(&mut self, s: &Session, events: Vec<Event>, out: &mut Out) {
        match self.view.add(s, events) {
            Ok(updates) => self.show(s, updates, out),
            Err(e) => out.say(format!("! {e:#}")),
        }
    }

    fn show(&mut self, s: &Session, updates: Vec<Update>, out: &mut Out) {
        let me = s.secrets.user_id();
        for u in updates {
            if let Update::New(l) = &u
                && l.author != me
                && crate::client::view::is_message(l)
            {
                self.unacked = Some(l.id);
            }
            if self.json {
                print_json(&update_json(&u));
            } else {
                out.say(self.text(s, &u));
            }
        }
    }

    fn text(&self, s: &Session, u: &Update) -> String {
        let short = |id: &EventId| id.to_string()[..8].to_string();
        let head = |l: &Line| format!("{} {}", render::time(l.time.0), short(&l.id));
        match u {
            Update::New(l) => render::line(s, &self.view, l),
            Update::Edited(l) => match &l.shown {
                Shown::Text { text, .. } => format!(
                    "{}  ✎ {} edited {}: {text}",
                    head(l),
                    self.who(s, &l.author),
                    short(&l.id)
                ),
                _ => render::line(s, &self.view, l),
            },
            Update::Deleted(l) => format!(
                "{}  ✗ {} deleted {}",
                head(l),
                self.who(s, &l.author),
                short(&l.id)
            ),
            Update::Reacted { line, key, by } => format!(
                "{}  {} reacted {key} to {}",
                head(line),
                self.who(s, by),
                short(&line.id)
            ),
            Update::Receipt { by, read, up_to } => format!(
                "  ✓ {} {} up to {}",
                self.who(s, by),
                if *read { "read" } else { "received" },
                short(up_to)
            ),
        }
    }

    async fn receipt(&mut self, s: &Session, kind: ReceiptKind) {
        let Some(up_to) = self.unacked.take() else {
            return;
        };
        let Ok(info) = s.client.room(&self.view.room).await else {
            return;
        };
        if info.standing != Standing::Joined {
            return;
        }
        let event = s
            .composer()
            .sign_in_room(&info, Body::Receipt { kind, up_to });
        if let Err(e) = s.client.post_event(&event).await {
            eprintln!("note: the receipt was not sent: {e:#}");
        }
    }
}

/// A live change as one JSON line for `tail --json`.
fn update_json(u: &Update) -> serde_json::Value {
    let line = |kind: &str, l: &Line| {
        let mut v = render::line_json(l);
        if let Some(o) = v.as_object_mut() {
            o.insert("update".into(), kind.into());
            if let Shown::Text { text, .. } = &l.shown {
                o.insert("body".into(), serde_json::json!({"Text": {"text": text}}));
            }
        }
        v
    };
    match u {
        Update::New(l) => line("new", l),
        Update::Edited(l) => line("edited", l),
        Update::Deleted(l) => line("deleted", l),
        Update::Reacted { line: l, key, by } => {
            let mut v = line("reacted", l);
            if let Some(o) = v.as_object_mut() {
                o.insert("key".into(), key.clone().into());
                o.insert("by".into(), by.to_string().into());
            }
            v
        }
        Update::Receipt { by, read, up_to } => serde_json::json!({
            "update": "receipt",
            "by": by,
            "receipt": if *read { "read" } else { "received" },
            "up_to": up_to,
        }),
    }
}

/// `basis tail`.
pub async fn tail(opts: &ClientOptions, room: &str, json: bool) -> Result<()> {
    let mut s = Session::open(opts).await?;
    let info = crate::commands::rooms::find(&s, room).await?;
    let mut out = if json { Out::Stderr } else { Out::Plain };
    // Open the stream before reading history so nothing falls between the two.
    let mut ws = s.client.stream(None).await?;
    let mut f = Followed::open(&s, info, json, &mut out).await?;
    let mut tick = tokio::time::interval(RECEIPT_EVERY);
    loop {
        tokio::select! {
            incoming = next(&mut ws) => match incoming {
                Incoming::Event(e) if e.room == f.view.info.room => {
                    f.take(&s, verified(std::slice::from_ref(&e)), &mut out);
                }
                Incoming::Closed => {
                    let Some(fresh) = reconnect(&mut s, &mut out).await else { break };
                    ws = fresh;
                    match f.view.catch_up(&s).await {
                        Ok(updates) => f.show(&s, updates, &mut out),
                        Err(e) => out.say(format!("! cannot catch up: {e:#}")),
                    }
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

async fn send_notice(ws: &mut Stream, request: StreamRequest) {
    if let Ok(text) = serde_json::to_string(&request) {
        let _ = ws.send(Message::Text(text.into())).await;
    }
}

/// The user's presence, as a stream request.
fn presence(status: Presence) -> StreamRequest {
    StreamRequest::Presence { status }
}

/// The user's rooms in a numbering that stays put: rooms keep their number while the chat
/// runs, new ones are added at the end.
#[derive(Default)]
struct Rooms {
    list: Vec<RoomInfo>,
}

impl Rooms {
    fn refresh(&mut self, s: &Session, fresh: Vec<RoomInfo>) {
        let me = s.secrets.user_id();
        let keep: Vec<RoomInfo> = fresh
            .iter()
            .filter(|r| !directory::is_superseded(&fresh, &me, r))
            .cloned()
            .collect();
        for r in &mut self.list {
            if let Some(new) = keep.iter().find(|n| n.room == r.room) {
                *r = new.clone();
            }
        }
        for r in keep {
            if !self.list.iter().any(|o| o.room == r.room) {
                self.list.push(r);
            }
        }
    }

    fn print(&self, s: &Session, out: &mut Out) {
        if self.list.is_empty() {
            out.say(
                "no rooms yet: /quit and run `basis room create NAME`, or wait for an invitation",
            );
        }
        let me = s.secrets.user_id();
        for (i, r) in self.list.iter().enumerate() {
            out.say(format!(
                "  {:>2}. {:<24} {:<8} {}",
                i + 1,
                directory::display_name(&s.contacts, &me, r),
                r.standing,
                render::prefix(&r.room, 12)
            ));
        }
    }

    fn pick(&self, s: &Session, text: &str) -> Result<RoomInfo> {
        if let Ok(n) = text.parse::<usize>()
            && n >= 1
            && n <= self.list.len()
        {
            return Ok(self.list[n - 1].clone());
        }
        directory::find(&s.contacts, &s.secrets.user_id(), &self.list, text).cloned()
    }

    fn number_of(&self, room: &str) -> Option<usize> {
        self.list.iter().position(|r| r.room == room).map(|i| i + 1)
    }
}

/// Reads typed lines: with rustyline on a terminal, plainly otherwise. `None` at the end.
fn typed_lines(out: &mut Out) -> Result<mpsc::Receiver<String>> {
    let (tx, rx) = mpsc::channel(16);
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        let mut editor = rustyline::DefaultEditor::new().context("cannot use the terminal")?;
        if let Ok(printer) = editor.create_external_printer() {
            *out = Out::Printer(Box::new(printer));
        }
        std::thread::Builder::new()
            .name("basis-chat-input".into())
            .spawn(move || {
                while let Ok(line) = editor.readline("> ") {
                    let _ = editor.add_history_entry(line.as_str());
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
            })
            .context("cannot start reading the terminal")?;
    } else {
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).await.is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}

/// What the chat holds while it runs.
struct Chat {
    rooms: Rooms,
    current: Option<Followed>,
    out: Out,
}

/// `basis chat`.
pub async fn chat(opts: &ClientOptions, room: Option<&str>) -> Result<()> {
    let mut s = Session::open(opts).await?;
    let mut ws = s.client.stream(None).await?;
    send_notice(&mut ws, presence(Presence::Online)).await;
    let mut c = Chat {
        rooms: Rooms::default(),
        current: None,
        out: Out::Plain,
    };
    let mut lines = typed_lines(&mut c.out)?;
    c.rooms.refresh(&s, s.client.rooms().await?);
    c.out.say(format!(
        "signed in as {} — /help lists the commands",
        s.secrets.user_id().short()
    ));
    c.rooms.print(&s, &mut c.out);
    let first = match room {
        Some(r) => Some(c.rooms.pick(&s, r)?),
        None if c.rooms.list.len() == 1 => c.rooms.list.first().cloned(),
        None => None,
    };
    match first {
        Some(info) => c.current = Some(Followed::open(&s, info, false, &mut c.out).await?),
        None => c.out.say("open a room with /open NUMBER"),
    }
    let mut tick = tokio::time::interval(RECEIPT_EVERY);
    loop {
        tokio::select! {
            line = lines.recv() => {
                let Some(line) = line else { break };
                let line = line.trim();
                if line.is_empty() { continue; }
                match command(&s, &mut ws, &mut c, line).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(e) => c.out.say(format!("! {e:#}")),
                }
            }
            incoming = next(&mut ws) => match incoming {
                Incoming::Event(e) => arrived(&s, &mut c, e).await,
                Incoming::Notice(n) => {
                    if let Some(text) = notice_text(&s, c.current.as_ref(), &n) {
                        c.out.say(text);
                    }
                }
                Incoming::Closed => {
                    let Some(fresh) = reconnect(&mut s, &mut c.out).await else { break };
                    ws = fresh;
                    send_notice(&mut ws, presence(Presence::Online)).await;
                    if let Some(f) = c.current.as_mut() {
                        match f.view.catch_up(&s).await {
                            Ok(updates) => f.show(&s, updates, &mut c.out),
                            Err(e) => c.out.say(format!("! cannot catch up: {e:#}")),
                        }
                    }
                }
                Incoming::Other => {}
            },
            _ = tick.tick() => {
                if let Some(f) = c.current.as_mut() {
                    f.receipt(&s, ReceiptKind::Read).await;
                }
            }
        }
    }
    if let Some(f) = c.current.as_mut() {
        f.receipt(&s, ReceiptKind::Read).await;
    }
    send_notice(&mut ws, presence(Presence::Offline)).await;
    let _ = ws.close(None).await;
    s.client.sign_out().await;
    Ok(())
}

/// An event on the stream: shown in the open room, or announced for another one.
async fn arrived(s: &Session, c: &mut Chat, e: ApiEvent) {
    if let Some(f) = c.current.as_mut()
        && e.room == f.view.info.room
    {
        f.take(s, verified(std::slice::from_ref(&e)), &mut c.out);
        return;
    }
    let Some(event) = verified(std::slice::from_ref(&e)).into_iter().next() else {
        return;
    };
    let me = s.secrets.user_id();
    if !c.rooms.list.iter().any(|r| r.room == e.room)
        || matches!(event.content.body, Body::Membership { .. })
    {
        match s.client.rooms().await {
            Ok(fresh) => c.rooms.refresh(s, fresh),
            Err(_) => return,
        }
    }
    let Some(r) = c.rooms.list.iter().find(|r| r.room == e.room) else {
        return;
    };
    let n = c.rooms.number_of(&r.room).unwrap_or(0);
    let name = directory::display_name(&s.contacts, &me, r);
    let profile = |u: &UserId| {
        r.members
            .iter()
            .find(|m| m.user == u.to_string())
            .and_then(|m| m.name.clone())
    };
    let who = s.name_of(
        &event.content.author,
        profile(&event.content.author).as_deref(),
    );
    match &event.content.body {
        Body::Membership {
            action: MembershipAction::Invite,
            target,
        } if *target == me => c.out.say(format!(
            "({who} invited you to {name}: /join {n} to accept)"
        )),
        Body::Message(_) if event.content.author != me => {
            if directory::dm_partner(r, &me).is_some() {
                c.out
                    .say(format!("(new message from {name}: /open {n} to read it)"));
            } else {
                c.out.say(format!(
                    "(new message in {name} from {who}: /open {n} to read it)"
                ));
            }
        }
        _ => {}
    }
}

/// A typing notice for the open room, or a presence change, as a line.
fn notice_text(s: &Session, current: Option<&Followed>, n: &Notice) -> Option<String> {
    let user = n.user.parse::<UserId>().ok()?;
    let name = s.name_of(&user, None);
    match n.kind {
        NoticeKind::Typing => {
            let here = current.is_some_and(|f| Some(&f.view.info.room) == n.room.as_ref());
            (here && n.typing == Some(true)).then(|| format!("… {name} is typing"))
        }
        NoticeKind::Presence => Some(format!("• {name} is {}", n.status?.as_str())),
    }
}

/// Runs one line typed in the chat; true means quit.
async fn command(s: &Session, ws: &mut Stream, c: &mut Chat, line: &str) -> Result<bool> {
    let (cmd, rest) = match line.strip_prefix('/') {
        Some(cmd) => cmd.split_once(' ').unwrap_or((cmd, "")),
        None => {
            let f = c
                .current
                .as_ref()
                .context("open a room first: /open NUMBER")?;
            let info = s.client.room(&f.view.room).await?;
            must_be_joined(&info, &f.name)?;
            send_notice(
                ws,
                StreamRequest::Typing {
                    room: info.room.clone(),
                    typing: false,
                },
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
    match cmd {
        "quit" | "q" | "exit" => return Ok(true),
        "help" | "h" => c.out.say(HELP),
        "rooms" => {
            c.rooms.refresh(s, s.client.rooms().await?);
            c.rooms.print(s, &mut c.out);
        }
        "open" => {
            c.rooms.refresh(s, s.client.rooms().await?);
            let info = c.rooms.pick(s, rest)?;
            c.current = Some(Followed::open(s, info, false, &mut c.out).await?);
        }
        "join" => {
            c.rooms.refresh(s, s.client.rooms().await?);
            let info = c.rooms.pick(s, rest)?;
            let event = s.composer().sign_in_room(
                &info,
                Body::Membership {
                    action: MembershipAction::Join,
                    target: s.secrets.user_id(),
                },
            );
            s.client.post_event(&event).await?;
            let info = s.client.room(&info.room.parse()?).await?;
            c.rooms.refresh(s, s.client.rooms().await?);
            c.current = Some(Followed::open(s, info, false, &mut c.out).await?);
        }
        "history" => {
            let f = c
                .current
                .as_mut()
                .context("open a room first: /open NUMBER")?;
            let Some(oldest) = f.oldest else {
                c.out.say("(this is the beginning of the room)");
                return Ok(false);
            };
            let (lines, _) = f.view.page(s, Some(oldest), OPEN_LINES).await?;
            if lines.is_empty() {
                c.out.say("(this is the beginning of the room)");
            }
            for l in &lines {
                c.out.say(render::line(s, &f.view, l));
            }
            if let Some(first) = lines.first() {
                f.oldest = Some(Position::of(first));
            }
        }
        "members" => {
            let f = c
                .current
                .as_ref()
                .context("open a room first: /open NUMBER")?;
            let info = s.client.room(&f.view.room).await?;
            for m in &info.members {
                let user: UserId = m.user.parse()?;
                c.out.say(format!(
                    "  {:<28} {}",
                    s.name_of(&user, m.name.as_deref()),
                    m.standing
                ));
            }
        }
        "invite" | "leave" => {
            let f = c
                .current
                .as_ref()
                .context("open a room first: /open NUMBER")?;
            let info = s.client.room(&f.view.room).await?;
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
            let f = c
                .current
                .as_ref()
                .context("open a room first: /open NUMBER")?;
            let (id_text, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            let target = resolve::event(&f.view.event_ids(), id_text)?;
            let me = s.secrets.user_id();
            let body = match cmd {
                "edit" if !arg.is_empty() => {
                    f.view.timeline.may_change(&target, &me, Change::Edit)?;
                    MessageBody::Edit {
                        target,
                        text: arg.to_string(),
                    }
                }
                "react" if !arg.is_empty() => MessageBody::Reaction {
                    target,
                    key: arg.to_string(),
                },
                "delete" => {
                    f.view.timeline.may_change(&target, &me, Change::Delete)?;
                    MessageBody::Delete { target }
                }
                _ => anyhow::bail!(
                    "usage: /{cmd} ID {}",
                    if cmd == "edit" { "TEXT" } else { "KEY" }
                ),
            };
            let info = s.client.room(&f.view.room).await?;
            post_message(s, &info, body).await?;
        }
        other => c
            .out
            .say(format!("unknown command /{other}; /help lists them")),
    }
    Ok(false)
}
