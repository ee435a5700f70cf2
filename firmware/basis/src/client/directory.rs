//! The user's rooms as the user names them: group rooms by their name, direct conversations
//! by the other person's name, and members by nickname, key or id prefix.
//!
//! A direct conversation is an encrypted room named `dm` whose active members (joined or
//! invited) are exactly two: this user and one other. When both people started one at the
//! same time (or on two nodes cut apart), there are two such rooms; both clients then use the
//! one with the smaller room id, so the conversation converges on one room, and `history`
//! shows the messages of all of them together.

use anyhow::{Result, bail};
use basis_core::UserId;

use super::contacts::Contacts;
use super::resolve;
use basis_api::rooms::{RoomInfo, Standing};

/// The name in the create event of a direct conversation's room.
pub const DM_NAME: &str = "dm";

/// The user ids of the room's members who are joined or invited.
fn active(r: &RoomInfo) -> Vec<UserId> {
    r.members
        .iter()
        .filter(|m| m.standing == Standing::Joined || m.standing == Standing::Invited)
        .filter_map(|m| m.user.parse().ok())
        .collect()
}

/// The other person of a direct conversation, when `r` is one `me` takes part in.
pub fn dm_partner(r: &RoomInfo, me: &UserId) -> Option<UserId> {
    if r.name != DM_NAME || !r.encrypted {
        return None;
    }
    if r.standing != Standing::Joined && r.standing != Standing::Invited {
        return None;
    }
    let people = active(r);
    if people.len() != 2 || !people.contains(me) {
        return None;
    }
    people.into_iter().find(|u| u != me)
}

/// The direct-conversation rooms with `partner`, the one to use first.
pub fn dm_rooms<'a>(rooms: &'a [RoomInfo], me: &UserId, partner: &UserId) -> Vec<&'a RoomInfo> {
    let mut found: Vec<&RoomInfo> = rooms
        .iter()
        .filter(|r| dm_partner(r, me).as_ref() == Some(partner))
        .collect();
    found.sort_by(|a, b| a.room.cmp(&b.room));
    found
}

/// How a person is called: the nickname, else the profile name with a short id, else the
/// short id.
pub fn person(contacts: &Contacts, user: &UserId, profile_name: Option<&str>) -> String {
    if let Some(n) = contacts.name_of(user) {
        return n.to_string();
    }
    match profile_name.filter(|n| !n.is_empty()) {
        Some(n) => format!("{n} ({})", user.short()),
        None => user.short(),
    }
}

/// The room's name as the user sees it: a direct conversation is called by the other person.
pub fn display_name(contacts: &Contacts, me: &UserId, r: &RoomInfo) -> String {
    match dm_partner(r, me) {
        Some(other) => {
            let profile = r
                .members
                .iter()
                .find(|m| m.user == other.to_string())
                .and_then(|m| m.name.as_deref());
            person(contacts, &other, profile)
        }
        None => r.name.clone(),
    }
}

/// Whether `r` is a direct conversation that another, preferred room of the same pair
/// replaces (see the module comment).
pub fn is_superseded(rooms: &[RoomInfo], me: &UserId, r: &RoomInfo) -> bool {
    dm_partner(r, me).is_some_and(|p| {
        dm_rooms(rooms, me, &p)
            .first()
            .is_some_and(|first| first.room != r.room)
    })
}

/// The room `text` names: a room id, a unique id prefix, a room's name, or the name (contact
/// nickname) of the other person of a direct conversation.
pub fn find<'a>(
    contacts: &Contacts,
    me: &UserId,
    rooms: &'a [RoomInfo],
    text: &str,
) -> Result<&'a RoomInfo> {
    // A direct conversation by the person's nickname or key.
    if let Ok(user) = contacts.resolve(text)
        && let Some(first) = dm_rooms(rooms, me, &user).first()
    {
        return Ok(first);
    }
    let visible: Vec<RoomInfo> = rooms
        .iter()
        .filter(|r| !is_superseded(rooms, me, r))
        .map(|r| RoomInfo {
            name: display_name(contacts, me, r),
            ..r.clone()
        })
        .collect();
    match resolve::room(&visible, text) {
        Ok(found) => rooms
            .iter()
            .find(|r| r.room == found.room)
            .ok_or_else(|| anyhow::anyhow!("no room {text:?}")),
        // An id of a superseded direct room still names it.
        Err(e) => match resolve::room(rooms, text) {
            Ok(found) if text.chars().all(|c| c.is_ascii_hexdigit()) => Ok(found),
            _ => Err(e),
        },
    }
}

/// A member of `r` named on the command line: a contact's nickname, a user key, an id
/// prefix of at least 4 hex characters (as `<name> (5f7862fa)` shows it), or the member's
/// profile name when only one member has it.
pub fn member(contacts: &Contacts, r: &RoomInfo, text: &str) -> Result<UserId> {
    if let Ok(user) = contacts.resolve(text) {
        return Ok(user);
    }
    let lower = text.to_ascii_lowercase();
    let by_prefix: Vec<&str> = if text.len() >= 4 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        r.members
            .iter()
            .filter(|m| m.user.starts_with(&lower))
            .map(|m| m.user.as_str())
            .collect()
    } else {
        Vec::new()
    };
    let by_name: Vec<&str> = r
        .members
        .iter()
        .filter(|m| m.name.as_deref() == Some(text))
        .map(|m| m.user.as_str())
        .collect();
    match (by_prefix.as_slice(), by_name.as_slice()) {
        ([one], _) | ([], [one]) => Ok(one.parse()?),
        ([], []) => bail!(
            "no member of {} is named or starts with {text:?}, and no contact is named so (see `basis contacts list`)",
            r.name
        ),
        _ => bail!(
            "{text:?} matches more than one member of {}; give more of the id",
            r.name
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use basis_api::rooms::{History, MemberInfo};

    fn member_info(user: &UserId, standing: Standing, name: Option<&str>) -> MemberInfo {
        MemberInfo {
            user: user.to_string(),
            standing,
            name: name.map(str::to_string),
            agreement_key: None,
        }
    }

    fn room(id: u8, name: &str, members: Vec<MemberInfo>) -> RoomInfo {
        RoomInfo {
            room: hex::encode([id; 32]),
            name: name.into(),
            encrypted: true,
            history: History::SinceJoin,
            creator: String::new(),
            standing: Standing::Joined,
            members,
            heads: vec![],
            latest_time: 0,
        }
    }

    #[test]
    fn two_direct_rooms_of_one_pair_are_one_conversation_named_by_the_contact() {
        let (me, bob, eve) = (UserId([1; 32]), UserId([2; 32]), UserId([3; 32]));
        let mut contacts = Contacts::default();
        contacts.add("bob", bob).unwrap();
        let pair = |id| {
            room(
                id,
                DM_NAME,
                vec![
                    member_info(&me, Standing::Joined, None),
                    member_info(&bob, Standing::Invited, Some("Bob")),
                ],
            )
        };
        let rooms = vec![
            pair(0x9a),
            pair(0x3c),
            room(
                0x44,
                DM_NAME,
                vec![
                    member_info(&me, Standing::Joined, None),
                    member_info(&eve, Standing::Joined, Some("Eve")),
                ],
            ),
            room(0x55, "ops", vec![member_info(&me, Standing::Joined, None)]),
        ];
        // Both people pick the smaller room id.
        assert_eq!(
            find(&contacts, &me, &rooms, "bob").unwrap().room,
            hex::encode([0x3c; 32])
        );
        assert!(is_superseded(&rooms, &me, &rooms[0]));
        assert!(!is_superseded(&rooms, &me, &rooms[1]));
        assert_eq!(display_name(&contacts, &me, &rooms[1]), "bob");
        assert_eq!(
            display_name(&contacts, &me, &rooms[2]),
            format!("Eve ({})", eve.short())
        );
        assert_eq!(find(&contacts, &me, &rooms, "ops").unwrap().name, "ops");
        // "dm" is no longer a name anyone has to type, and not ambiguous.
        assert!(find(&contacts, &me, &rooms, "dm").is_err());
        // The other person's id prefix works for their conversation's member too.
        let bob_prefix = &bob.to_string()[..6];
        assert_eq!(member(&contacts, &rooms[1], bob_prefix).unwrap(), bob);
        assert_eq!(member(&contacts, &rooms[1], "Bob").unwrap(), bob);
        assert!(member(&contacts, &rooms[1], "0000").is_err());
    }
}
