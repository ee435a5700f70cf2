//! Text for people: timeline lines, times, room summaries.

use std::time::{Duration, UNIX_EPOCH};

use basis_core::timeline::{Line, Shown};
use basis_core::{Timestamp, UserId};

use super::session::Session;
use super::view::RoomView;

/// A hybrid timestamp as `YYYY-MM-DD HH:MM` (UTC).
pub fn time(t: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(Timestamp(t).millis());
    let text = humantime::format_rfc3339_seconds(at).to_string();
    text.get(..16).unwrap_or(&text).replace('T', " ")
}

/// A person in a room: nickname, profile name or short id.
pub fn who(s: &Session, view: &RoomView, user: &UserId) -> String {
    s.name_of(user, view.names.get(user).map(String::as_str))
}

/// One timeline line as text.
pub fn line(s: &Session, view: &RoomView, l: &Line) -> String {
    let head = format!("{} {}", time(l.time.0), &l.id.to_string()[..8]);
    let author = who(s, view, &l.author);
    let body = match &l.shown {
        Shown::Created { name } => format!("* {author} created the room {name:?}"),
        Shown::Membership { action, target } => {
            let target = who(s, view, target);
            match *action {
                "joined" | "left" => format!("* {target} {action}"),
                _ => format!("* {author} {action} {target}"),
            }
        }
        Shown::Text { text, edited } => {
            format!("{author}: {text}{}", if *edited { " (edited)" } else { "" })
        }
        Shown::File { file } => format!(
            "{author} shared a file: {} ({}, {} bytes)",
            file.name, file.media_type, file.size
        ),
        Shown::Deleted => format!("{author}: (message deleted)"),
        Shown::Unreadable { reason } => format!("{author}: [encrypted: {reason}]"),
    };
    let reactions: Vec<String> = l
        .reactions
        .iter()
        .map(|(k, users)| format!("{k} {}", users.len()))
        .collect();
    if reactions.is_empty() {
        format!("{head}  {body}")
    } else {
        format!("{head}  {body}  [{}]", reactions.join(", "))
    }
}

/// Receipts of other members, as lines such as `read by ana up to 1a2b3c4d`.
pub fn receipts(s: &Session, view: &RoomView) -> Vec<String> {
    view.timeline
        .receipts
        .iter()
        .filter(|(u, _)| **u != s.secrets.user_id())
        .map(|(u, r)| {
            let name = who(s, view, u);
            match (r.read, r.delivered) {
                (Some(read), _) => format!("read by {name} up to {}", &read.to_string()[..8]),
                (None, Some(d)) => format!("delivered to {name} up to {}", &d.to_string()[..8]),
                (None, None) => String::new(),
            }
        })
        .filter(|t| !t.is_empty())
        .collect()
}
