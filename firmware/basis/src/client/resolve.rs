//! Naming rooms and events on the command line: a full id, a unique prefix of at least four
//! hex characters, or (for rooms) the room's exact name.

use anyhow::{Result, bail};
use basis_core::{EventId, RoomId};

use basis_api::rooms::RoomInfo;

/// The room `text` names among `rooms`.
pub fn room<'a>(rooms: &'a [RoomInfo], text: &str) -> Result<&'a RoomInfo> {
    if let Ok(id) = text.parse::<RoomId>() {
        let id = id.to_string();
        if let Some(r) = rooms.iter().find(|r| r.room == id) {
            return Ok(r);
        }
        bail!("you have no room {text} on this node (not invited, or not synced here yet)");
    }
    let by_name: Vec<&RoomInfo> = rooms.iter().filter(|r| r.name == text).collect();
    let lower = text.to_ascii_lowercase();
    let by_prefix: Vec<&RoomInfo> =
        if text.len() >= 4 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            rooms
                .iter()
                .filter(|r| r.room.starts_with(&lower))
                .collect()
        } else {
            Vec::new()
        };
    match (by_name.as_slice(), by_prefix.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one),
        ([], []) => bail!("no room of yours is named or starts with {text:?} (see `basis rooms`)"),
        _ => bail!("{text:?} matches more than one room; give more of the id (see `basis rooms`)"),
    }
}

/// The event `text` names among `ids` (a full id is taken as is).
pub fn event(ids: &[EventId], text: &str) -> Result<EventId> {
    if let Ok(id) = text.parse::<EventId>() {
        return Ok(id);
    }
    let lower = text.to_ascii_lowercase();
    if text.len() < 4 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!(
            "{text:?} is not an event id: give at least 4 hex characters of the id `basis history` shows"
        );
    }
    let found: Vec<&EventId> = ids
        .iter()
        .filter(|id| id.to_string().starts_with(&lower))
        .collect();
    match found.as_slice() {
        [one] => Ok(**one),
        [] => bail!("no recent event of this room starts with {text:?}"),
        _ => bail!("{text:?} matches more than one event; give more of the id"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room_info(id: &str, name: &str) -> RoomInfo {
        RoomInfo {
            room: id.into(),
            name: name.into(),
            encrypted: true,
            history: basis_api::rooms::History::SinceJoin,
            creator: String::new(),
            standing: basis_api::rooms::Standing::Joined,
            members: vec![],
            heads: vec![],
            latest_time: 0,
        }
    }

    #[test]
    fn rooms_by_name_prefix_or_id() {
        let a = format!("abcd{}", "0".repeat(60));
        let b = format!("abce{}", "1".repeat(60));
        let rooms = vec![room_info(&a, "ops"), room_info(&b, "logistics")];
        assert_eq!(room(&rooms, "ops").unwrap().room, a);
        assert_eq!(room(&rooms, "abce").unwrap().room, b);
        assert_eq!(room(&rooms, &a).unwrap().room, a);
        assert!(room(&rooms, "abc").is_err(), "too short");
        assert!(room(&rooms, "ab").is_err());
        assert!(room(&rooms, "nothing").is_err());
        let twins = vec![room_info(&a, "x"), room_info(&b, "x")];
        assert!(room(&twins, "x").is_err(), "ambiguous name");
    }

    #[test]
    fn events_by_prefix() {
        let ids = vec![EventId([0xab; 32]), EventId([0xac; 32])];
        assert_eq!(event(&ids, "abab").unwrap(), ids[0]);
        assert!(event(&ids, "a").is_err());
        assert!(event(&ids, "ffff").is_err());
    }
}
