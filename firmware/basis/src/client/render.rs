//! Text for people: timeline lines, times, room summaries.

use basis_core::timeline::{Line, Shown};
use basis_core::{Timestamp, UserId};

use super::directory::dm_partner;
use super::session::Session;
use super::view::RoomView;

/// The local time zone's name as views label their times with, e.g. `CET (UTC+01:00)`.
pub fn zone_label() -> String {
    let now = jiff::Zoned::now();
    now.strftime("%Z (UTC%:z)").to_string()
}

/// The first `n` characters of an id the node sent (all of it when shorter, or when `n`
/// falls inside a character): what a line shows of a room or message id.
pub fn prefix(id: &str, n: usize) -> &str {
    id.get(..n).unwrap_or(id)
}

/// A hybrid timestamp in the local time zone (`TZ`, else the system's), as
/// `YYYY-MM-DD HH:MM` (views say which zone once, with [`zone_label`]).
pub fn time(t: u64) -> String {
    let millis = i64::try_from(Timestamp(t).millis()).unwrap_or(i64::MAX);
    match jiff::Timestamp::from_millisecond(millis) {
        Ok(at) => at
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => format!("(time {millis} ms)"),
    }
}

/// A hybrid timestamp as RFC 3339 with the local offset, for `--json`.
pub fn rfc3339(t: u64) -> String {
    let millis = i64::try_from(Timestamp(t).millis()).unwrap_or(i64::MAX);
    match jiff::Timestamp::from_millisecond(millis) {
        Ok(at) => at
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
            .to_string(),
        Err(_) => String::new(),
    }
}

/// A timeline line as JSON: the line with `at`, its time as RFC 3339, beside the raw `time`.
pub fn line_json(l: &Line) -> serde_json::Value {
    let mut v = serde_json::to_value(l).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("at".into(), rfc3339(l.time.0).into());
    }
    v
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
        // A direct conversation's room is named `dm` by convention: not a name to show.
        Shown::Created { name } => match dm_partner(&view.info, &s.secrets.user_id()) {
            Some(_) => format!("* {author} started this direct conversation"),
            None => format!("* {author} created the room {name:?}"),
        },
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
        // The sender's name and type, made safe to print (no control characters).
        Shown::File { file } => format!(
            "{author} shared a file: {} ({}, {})",
            basis_core::safe_file_name(&file.name),
            file.media_type
                .chars()
                .map(|c| if c.is_control() { '_' } else { c })
                .collect::<String>(),
            crate::commands::files::human(file.size)
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

#[cfg(test)]
mod tests {
    use super::prefix;

    #[test]
    fn a_prefix_of_a_short_or_odd_id_is_the_id_itself() {
        assert_eq!(prefix("aa943b7b91cce5d6", 12), "aa943b7b91cc");
        assert_eq!(prefix("ab12", 8), "ab12");
        assert_eq!(prefix("", 8), "");
        // A node sending something that is not hex never splits a character.
        assert_eq!(prefix("ééééé", 3), "ééééé");
    }
}
