//! Sending to an encrypted room: who receives the room key, and which outbound session the
//! next message uses (the current one, or a new one whose key must be shared first).
//!
//! Both clients (the command line and the browser) call these, so they seal keys to the same
//! members and rotate at the same moments.

use std::collections::BTreeSet;

use basis_core::{KeyShare, RoomId, Standing, UserId};

use crate::outbound::{OutboundError, OutboundSession};
use crate::secrets::UserSecrets;

/// Whether a member with this standing receives the room's keys: joined members and invitees
/// (so the first messages of a direct room are readable once the other person accepts).
pub fn receives_room_keys(standing: Standing) -> bool {
    matches!(standing, Standing::Joined | Standing::Invited)
}

/// One member as the node's client API describes it (user id hex, standing name, agreement
/// key hex if published), read for [`recipients`]: `None` when the member does not receive the
/// room's keys or the user id does not parse; the key is `None` when missing or not 32 bytes
/// of hex.
pub fn key_member(
    user: &str,
    standing: &str,
    agreement_key: Option<&str>,
) -> Option<(UserId, Option<[u8; 32]>)> {
    if !standing.parse::<Standing>().is_ok_and(receives_room_keys) {
        return None;
    }
    let user = user.parse::<UserId>().ok()?;
    let key = agreement_key
        .and_then(|k| hex::decode(k).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    Some((user, key))
}

/// Whom a room key is sealed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipients {
    /// User id and agreement key of each recipient; the sender comes first.
    pub sealed_to: Vec<(UserId, [u8; 32])>,
    /// Members who should receive the key but have published no agreement key yet.
    pub without_key: Vec<UserId>,
}

impl Recipients {
    /// The set of users the key is sealed to (what an outbound session remembers).
    pub fn members(&self) -> BTreeSet<UserId> {
        self.sealed_to.iter().map(|(u, _)| *u).collect()
    }
}

/// The recipients of a room key sent by the holder of `secrets`: the sender always (with its
/// current agreement key), then each of `members` (those who receive keys, see
/// [`receives_room_keys`]) that has a published agreement key. The sender's own entry among
/// `members`, if any, is skipped.
pub fn recipients(
    secrets: &UserSecrets,
    members: impl IntoIterator<Item = (UserId, Option<[u8; 32]>)>,
) -> Recipients {
    let me = secrets.user_id();
    let mut out = Recipients {
        sealed_to: vec![(me, secrets.agreement_public())],
        without_key: Vec::new(),
    };
    for (user, key) in members {
        if user == me {
            continue;
        }
        match key {
            Some(key) => out.sealed_to.push((user, key)),
            None => out.without_key.push(user),
        }
    }
    out
}

/// The outbound session for the next message in `room` at `now_ms`. `current` goes on when it
/// needs no rotation ([`OutboundSession::needs_rotation`]) for these recipients; otherwise a
/// new session is made and returned with the key share to post (signed by the sender) before
/// any message it encrypts.
pub fn session_for(
    current: Option<OutboundSession>,
    room: RoomId,
    secrets: &UserSecrets,
    recipients: &Recipients,
    now_ms: u64,
) -> Result<(OutboundSession, Option<KeyShare>), OutboundError> {
    let members = recipients.members();
    match current {
        Some(s) if s.needs_rotation(&members, now_ms).is_none() => Ok((s, None)),
        _ => {
            let s = OutboundSession::new(now_ms, members);
            let share = s.key_share(room, secrets.user_id(), &recipients.sealed_to)?;
            Ok((s, Some(share)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ROTATE_AFTER_MS;

    #[test]
    fn the_sender_comes_first_and_members_without_keys_are_named() {
        let me = UserSecrets::generate(0).unwrap();
        let other = UserSecrets::generate(0).unwrap();
        let r = recipients(
            &me,
            [
                (me.user_id(), Some([1; 32])),
                (other.user_id(), Some(other.agreement_public())),
                (UserId([9; 32]), None),
            ],
        );
        assert_eq!(
            r.sealed_to,
            vec![
                (me.user_id(), me.agreement_public()),
                (other.user_id(), other.agreement_public())
            ]
        );
        assert_eq!(r.without_key, vec![UserId([9; 32])]);
    }

    #[test]
    fn members_are_read_as_the_api_writes_them() {
        let user = "11".repeat(32);
        let key = "ab".repeat(32);
        assert_eq!(
            key_member(&user, "joined", Some(&key)),
            Some((UserId([0x11; 32]), Some([0xab; 32])))
        );
        assert_eq!(
            key_member(&user, "invited", Some("abcd")),
            Some((UserId([0x11; 32]), None))
        );
        assert_eq!(key_member(&user, "left", Some(&key)), None);
        assert_eq!(key_member(&user, "nonsense", None), None);
        assert_eq!(key_member("xyz", "joined", Some(&key)), None);
    }

    #[test]
    fn only_joined_and_invited_receive_keys() {
        assert!(receives_room_keys(Standing::Joined));
        assert!(receives_room_keys(Standing::Invited));
        assert!(!receives_room_keys(Standing::Left));
        assert!(!receives_room_keys(Standing::Removed));
    }

    #[test]
    fn a_session_goes_on_until_members_change_or_it_ages() {
        let me = UserSecrets::generate(0).unwrap();
        let other = UserSecrets::generate(0).unwrap();
        let room = RoomId([3; 32]);
        let alone = recipients(&me, []);
        let (s, share) = session_for(None, room, &me, &alone, 10).unwrap();
        let share = share.expect("a new session is shared");
        assert_eq!(share.session_id, s.session_id());
        assert_eq!(share.keys.len(), 1);
        let id = s.session_id();
        let (s, share) = session_for(Some(s), room, &me, &alone, 20).unwrap();
        assert!(share.is_none());
        assert_eq!(s.session_id(), id);
        let two = recipients(&me, [(other.user_id(), Some(other.agreement_public()))]);
        let (s, share) = session_for(Some(s), room, &me, &two, 30).unwrap();
        assert_eq!(share.map(|k| k.keys.len()), Some(2));
        assert_ne!(s.session_id(), id);
        let id = s.session_id();
        let (s, share) = session_for(Some(s), room, &me, &two, 30 + ROTATE_AFTER_MS).unwrap();
        assert!(share.is_some());
        assert_ne!(s.session_id(), id);
    }
}
