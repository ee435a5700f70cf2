//! A room as the client shows it: every event read so far (newest pages first, then older
//! ones on demand, then live ones), decrypted where this user can, and the timeline built
//! from all of them, so that a line always shows its message as it is now: edits, deletes,
//! reactions and receipts applied by the same rules everywhere ([`Timeline::build`]).

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::{Context, Result};
use basis_core::timeline::{Item, Line, Receipts, Shown, Timeline};
use basis_core::{Body, Event, EventId, FileDescriptor, MessageBody, RoomId, Timestamp, UserId};
use basis_e2ee::RoomKeys;

use super::crypto::RoomCrypto;
use super::session::{Session, verified};
use basis_api::rooms::RoomInfo;

/// Events asked for per page.
const PAGE: u32 = 200;
/// Older pages read at most to find the key shares the loaded messages need.
const KEY_SEARCH_PAGES: usize = 50;
/// Why a message sent before this user was in the room cannot be read.
pub const BEFORE_JOIN: &str = "sent before you joined";

/// A position in a room's history: `(timestamp, event id)`, as `basis history --before`
/// takes it (`<timestamp>-<event id>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position(pub Timestamp, pub EventId);

impl Position {
    /// The position of a timeline line.
    pub fn of(line: &Line) -> Position {
        Position(line.time, line.id)
    }

    /// Reads `<timestamp>-<event id>`.
    pub fn parse(text: &str) -> Result<Position> {
        let bad = || {
            anyhow::anyhow!(
                "{text:?} is not a history position: use the `--before` value `basis history` printed"
            )
        };
        let (time, id) = text.split_once('-').ok_or_else(bad)?;
        Ok(Position(
            Timestamp(time.parse().map_err(|_| bad())?),
            id.parse().map_err(|_| bad())?,
        ))
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0.0, self.1)
    }
}

/// Whether a line is a message (what `--limit` counts), not a room event.
pub fn is_message(line: &Line) -> bool {
    matches!(
        line.shown,
        Shown::Text { .. } | Shown::File { .. } | Shown::Deleted | Shown::Unreadable { .. }
    )
}

/// Something that changed in a room's timeline when events arrived, for a live view.
#[derive(Clone, Debug)]
pub enum Update {
    /// A new line (message, membership, creation).
    New(Line),
    /// A message's text was edited by its author.
    Edited(Line),
    /// A message was deleted by its author.
    Deleted(Line),
    /// Someone reacted to a message.
    Reacted {
        /// The message as it is now.
        line: Line,
        /// The reaction.
        key: String,
        /// Who reacted.
        by: UserId,
    },
    /// A member's receipt now covers a message of this user's that it did not cover before.
    Receipt {
        /// Whose receipt.
        by: UserId,
        /// Read (true) or only received.
        read: bool,
        /// The newest event it covers.
        up_to: EventId,
    },
}

/// A room as the client shows it (see the module comment).
pub struct RoomView {
    /// The room.
    pub info: RoomInfo,
    /// Its id.
    pub room: RoomId,
    /// The timeline of every event read so far.
    pub timeline: Timeline,
    /// Cursor of the next older page on the node (`None`: the beginning was read).
    pub older: Option<String>,
    /// Profile names of the members.
    pub names: HashMap<UserId, String>,
    keys: RoomKeys,
    events: Vec<Event>,
    ids: HashSet<EventId>,
    /// Decrypted bodies (successes only; failures are tried again when keys arrive).
    plain: HashMap<EventId, MessageBody>,
    me: UserId,
}

impl RoomView {
    /// Reads the room's state and newest page (and older pages while keys are missing).
    pub async fn open(s: &Session, info: RoomInfo) -> Result<RoomView> {
        let room: RoomId = info.room.parse().context("the node sent a bad room id")?;
        let keys = RoomCrypto::new(&s.dir, &s.secrets).load_keys(&room);
        let mut view = RoomView {
            names: names_of(&info),
            info,
            room,
            timeline: Timeline::default(),
            older: None,
            keys,
            events: Vec::new(),
            ids: HashSet::new(),
            plain: HashMap::new(),
            me: s.secrets.user_id(),
        };
        let state = verified(&s.client.room_state(&room).await?);
        view.take(s, state);
        let page = s.client.history(&room, None, PAGE).await?;
        view.older = page.older.clone();
        view.take(s, verified(&page.events));
        let mut pages = 0;
        while view.missing_keys(s) && pages < KEY_SEARCH_PAGES && view.older.is_some() {
            view.load_older(s).await?;
            pages += 1;
        }
        view.rebuild(s)?;
        Ok(view)
    }

    /// Reads one more older page; false when the beginning of the room was already read.
    pub async fn load_older(&mut self, s: &Session) -> Result<bool> {
        let Some(cursor) = self.older.take() else {
            return Ok(false);
        };
        let page = s.client.history(&self.room, Some(&cursor), PAGE).await?;
        self.older = page.older.clone();
        self.take(s, verified(&page.events));
        self.rebuild(s)?;
        Ok(true)
    }

    /// Reads older pages until at least `count` messages lie before `before` (or the
    /// beginning is reached); returns those lines, oldest first, with the room events among
    /// them, and whether older messages remain.
    pub async fn page(
        &mut self,
        s: &Session,
        before: Option<Position>,
        count: usize,
    ) -> Result<(Vec<Line>, bool)> {
        loop {
            let lines: Vec<&Line> = self
                .timeline
                .lines
                .iter()
                .filter(|l| before.is_none_or(|b| Position::of(l) < b))
                .collect();
            let messages = lines.iter().filter(|l| is_message(l)).count();
            if messages >= count || self.older.is_none() {
                // From the count-th message from the end on.
                let mut seen = 0;
                let mut start = 0;
                for (i, l) in lines.iter().enumerate().rev() {
                    if is_message(l) {
                        seen += 1;
                        if seen == count {
                            start = i;
                            break;
                        }
                    }
                }
                let more = lines[..start].iter().any(|l| is_message(l)) || self.older.is_some();
                let shown = lines[start..].iter().map(|l| (*l).clone()).collect();
                return Ok((shown, more));
            }
            self.load_older(s).await?;
        }
    }

    /// Takes events that arrived live (or after a reconnection) and says what changed.
    pub fn add(&mut self, s: &Session, events: Vec<Event>) -> Result<Vec<Update>> {
        let before = self.timeline.clone();
        if !self.take(s, events) {
            return Ok(Vec::new());
        }
        self.rebuild(s)?;
        Ok(diff(&before, &self.timeline, &self.me))
    }

    /// After a lost connection: reads the newest pages until they meet what was read before,
    /// and says what changed.
    pub async fn catch_up(&mut self, s: &Session) -> Result<Vec<Update>> {
        self.info = s.client.room(&self.room).await?;
        self.names = names_of(&self.info);
        let mut fresh = verified(&s.client.room_state(&self.room).await?);
        let mut cursor: Option<String> = None;
        for _ in 0..KEY_SEARCH_PAGES {
            let page = s
                .client
                .history(&self.room, cursor.as_deref(), PAGE)
                .await?;
            let events = verified(&page.events);
            let met = events.iter().any(|e| self.ids.contains(&e.id()));
            fresh.extend(events);
            cursor = page.older;
            if met || cursor.is_none() {
                break;
            }
        }
        self.add(s, fresh)
    }

    /// The file a message shares, with its key: the decrypted `Attachment` of an encrypted
    /// room's `EncryptedAttachment`, or a plain `Attachment`.
    pub fn attachment(&self, id: &EventId) -> Option<FileDescriptor> {
        if let Some(MessageBody::Attachment(d)) = self.plain.get(id) {
            return Some(d.clone());
        }
        self.events
            .iter()
            .find(|e| e.id() == *id)
            .and_then(|e| match &e.content.body {
                Body::Message(MessageBody::Attachment(d)) => Some(d.clone()),
                _ => None,
            })
    }

    /// Ids of every event read, for naming one by a prefix.
    pub fn event_ids(&self) -> Vec<EventId> {
        self.timeline.lines.iter().map(|l| l.id).collect()
    }

    /// Adds events not seen before; absorbs key shares. True when any was new.
    fn take(&mut self, s: &Session, events: Vec<Event>) -> bool {
        let new: Vec<Event> = events
            .into_iter()
            .filter(|e| self.ids.insert(e.id()))
            .collect();
        if new.is_empty() {
            return false;
        }
        RoomCrypto::new(&s.dir, &s.secrets).absorb(&self.room, &mut self.keys, &new);
        self.events.extend(new);
        true
    }

    fn missing_keys(&self, s: &Session) -> bool {
        let unread: Vec<Event> = self
            .events
            .iter()
            .filter(|e| !self.plain.contains_key(&e.id()))
            .cloned()
            .collect();
        RoomCrypto::new(&s.dir, &s.secrets).missing(&self.room, &self.keys, &unread)
    }

    /// Decrypts what can be, rebuilds the timeline, saves the keys.
    fn rebuild(&mut self, s: &Session) -> Result<()> {
        let crypto = RoomCrypto::new(&s.dir, &s.secrets);
        let mut items = Vec::with_capacity(self.events.len());
        for event in &self.events {
            let id = event.id();
            // `Encrypted` and `EncryptedAttachment` (a file: its descriptor and key inside).
            let encrypted = matches!(&event.content.body, Body::Message(m) if m.is_encrypted());
            let decrypted = match (encrypted, self.plain.get(&id)) {
                (true, Some(body)) => Some(Ok(body.clone())),
                (true, None) => {
                    let item = crypto
                        .items(&self.room, &mut self.keys, vec![event.clone()])
                        .into_iter()
                        .next();
                    let result = item.and_then(|i| i.decrypted);
                    if let Some(Ok(body)) = &result {
                        self.plain.insert(id, body.clone());
                    }
                    result
                }
                _ => None,
            };
            items.push(Item {
                event: event.clone(),
                decrypted,
            });
        }
        crypto.save_keys(&self.room, &self.keys)?;
        self.timeline = Timeline::build(&items);
        self.explain_unreadable();
        Ok(())
    }

    /// Messages shown before this user was invited cannot be read in a room whose history
    /// starts at the join: say so instead of "waiting for the key".
    fn explain_unreadable(&mut self) {
        let me = self.me;
        let Some(first_mine) = self.timeline.lines.iter().position(|l| {
            matches!(&l.shown, Shown::Membership { target, .. } if *target == me)
                || (l.author == me && !matches!(l.shown, Shown::Membership { .. }))
        }) else {
            return;
        };
        for line in &mut self.timeline.lines[..first_mine] {
            if let Shown::Unreadable { reason } = &mut line.shown {
                *reason = BEFORE_JOIN.to_string();
            }
        }
    }
}

fn names_of(info: &RoomInfo) -> HashMap<UserId, String> {
    info.members
        .iter()
        .filter_map(|m| Some((m.user.parse().ok()?, m.name.clone()?)))
        .collect()
}

/// What changed from `old` to `new`, for a live view of user `me`.
fn diff(old: &Timeline, new: &Timeline, me: &UserId) -> Vec<Update> {
    let before: HashMap<EventId, &Line> = old.lines.iter().map(|l| (l.id, l)).collect();
    let mut out = Vec::new();
    for line in &new.lines {
        let Some(was) = before.get(&line.id) else {
            out.push(Update::New(line.clone()));
            continue;
        };
        if was.shown != line.shown {
            match &line.shown {
                Shown::Deleted => out.push(Update::Deleted(line.clone())),
                Shown::Text { edited: true, .. } => out.push(Update::Edited(line.clone())),
                // A message that became readable (its key arrived) is new to the reader.
                _ => out.push(Update::New(line.clone())),
            }
        }
        for (key, users) in &line.reactions {
            let had: BTreeSet<UserId> = was.reactions.get(key).cloned().unwrap_or_default();
            for by in users.difference(&had) {
                out.push(Update::Reacted {
                    line: line.clone(),
                    key: key.clone(),
                    by: *by,
                });
            }
        }
    }
    out.extend(receipt_updates(old, new, me));
    out
}

/// Receipts of others that newly cover one of `me`'s messages: one update per member and
/// kind, for the newest message covered, not one per receipt event.
fn receipt_updates(old: &Timeline, new: &Timeline, me: &UserId) -> Vec<Update> {
    let position: HashMap<EventId, usize> = new
        .lines
        .iter()
        .enumerate()
        .map(|(i, l)| (l.id, i))
        .collect();
    let mine: Vec<usize> = new
        .lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.author == *me && is_message(l))
        .map(|(i, _)| i)
        .collect();
    let reach = |up_to: Option<EventId>| -> Option<usize> {
        let at = *position.get(&up_to?)?;
        mine.iter().copied().filter(|&i| i <= at).max()
    };
    let mut out = Vec::new();
    for (user, r) in &new.receipts {
        if user == me {
            continue;
        }
        let was: Receipts = old.receipts.get(user).cloned().unwrap_or_default();
        let (read_now, read_was) = (reach(r.read), reach(was.read));
        if read_now > read_was
            && let Some(i) = read_now
        {
            out.push(Update::Receipt {
                by: *user,
                read: true,
                up_to: new.lines[i].id,
            });
            continue;
        }
        let (got_now, got_was) = (reach(r.delivered), reach(was.delivered));
        if got_now > got_was
            && got_now > read_now
            && let Some(i) = got_now
        {
            out.push(Update::Receipt {
                by: *user,
                read: false,
                up_to: new.lines[i].id,
            });
        }
    }
    out
}
