//! `basis dev append`: sign test events and store them through the running node.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, anyhow};
use basis_core::body::{Body, History, MessageBody, RoomCreate};
use basis_core::{Clock, EventContent, PROTOCOL_VERSION, RoomId, UserKey};
use serde_json::json;

use crate::cli::AppendArgs;
use crate::control::client::{Appended, Client};
use crate::node::wall_millis;
use crate::settings::Settings;

struct Shared {
    key: UserKey,
    room: RoomId,
    clock: Mutex<Clock>,
    next: AtomicU64,
    failed: AtomicBool,
    args: AppendArgs,
}

fn load_user_key(args: &AppendArgs) -> Result<UserKey> {
    match &args.user_key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the user key {}", path.display()))?;
            UserKey::from_pem(&text)
                .with_context(|| format!("the user key {} is not usable", path.display()))
        }
        None => Ok(UserKey::generate()?),
    }
}

fn content(
    shared_clock: &Mutex<Clock>,
    key: &UserKey,
    room: Option<RoomId>,
    body: Body,
) -> EventContent {
    let time = shared_clock
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .tick(wall_millis());
    EventContent {
        version: PROTOCOL_VERSION,
        room,
        author: key.id(),
        parents: room
            .map(|r| vec![basis_core::EventId(r.0)])
            .unwrap_or_default(),
        time,
        body,
    }
}

async fn send(client: &mut Client, content: EventContent, key: &UserKey) -> Result<Appended> {
    client.append(&content.sign(key).to_bytes()).await
}

fn print_stored(reply: &Appended, json_out: bool) {
    let id = &reply.id;
    let mut out = std::io::stdout().lock();
    let _ = if json_out {
        writeln!(
            out,
            "{}",
            json!({"room": reply.room, "id": id, "new": reply.new})
        )
    } else {
        writeln!(out, "stored {id}")
    };
    let _ = out.flush();
}

/// Appends the messages the arguments ask for.
pub async fn append(settings: &Settings, args: AppendArgs) -> Result<()> {
    let key = load_user_key(&args)?;
    let clock = Mutex::new(Clock::new());
    let mut first = Client::connect(&settings.socket).await?;
    let room = match args.room {
        Some(room) => room,
        None => {
            let body = Body::Create(RoomCreate {
                name: "dev".into(),
                encrypted: false,
                history: History::SinceJoin,
            });
            let reply = send(&mut first, content(&clock, &key, None, body), &key)
                .await
                .context("the node refused the room")?;
            let id: RoomId = reply
                .id
                .parse()
                .map_err(|e| anyhow!("the node answered with a bad room id: {e}"))?;
            if !args.json {
                println!("room {id}");
            }
            print_stored(&reply, args.json);
            id
        }
    };
    let parallel = usize::from(args.parallel).min(args.count as usize).max(1);
    let shared = Arc::new(Shared {
        key,
        room,
        clock,
        next: AtomicU64::new(0),
        failed: AtomicBool::new(false),
        args,
    });
    let mut workers = tokio::task::JoinSet::new();
    let mut first = Some(first);
    for _ in 0..parallel {
        let shared = shared.clone();
        let client = first.take();
        let socket = settings.socket.clone();
        workers.spawn(async move {
            let mut client = match client {
                Some(c) => c,
                None => Client::connect(&socket).await?,
            };
            worker(&mut client, &shared).await
        });
    }
    let mut error = None;
    while let Some(done) = workers.join_next().await {
        let result = done
            .map_err(|e| anyhow!("a sender task failed: {e}"))
            .and_then(|r| r);
        if let Err(e) = result {
            shared.failed.store(true, Ordering::Relaxed);
            error.get_or_insert(e);
        }
    }
    match error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

async fn worker(client: &mut Client, shared: &Shared) -> Result<()> {
    let args = &shared.args;
    loop {
        if shared.failed.load(Ordering::Relaxed) {
            return Ok(());
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= args.count {
            return Ok(());
        }
        let text = if args.count > 1 {
            format!("{} #{}", args.text, i + 1)
        } else {
            args.text.clone()
        };
        let body = Body::Message(MessageBody::Text { text });
        let c = content(&shared.clock, &shared.key, Some(shared.room), body);
        let reply = send(client, c, &shared.key).await?;
        print_stored(&reply, args.json);
    }
}
