//! What a room's set of events means: display order and membership.
//!
//! A room is a grow-only set of events; everything here is a deterministic function of that
//! set, so every node and client that holds the same events computes the same state, whatever
//! order the events arrived in.
//!
//! **Order.** Causal first (an event comes after every parent present in the set), then hybrid
//! timestamp, then id ([`display_order`]).
//!
//! **Membership rules**, applied in display order ([`RoomState`]):
//! - the creator is a member from the create event on, and is the room's admin;
//! - a member may invite anyone who is not a member;
//! - a user may join when invited (the creator needs no invite); a removed or departed user
//!   needs a new invite;
//! - a member or an invitee may leave (an invitee leaving declines the invite);
//! - only the creator may remove, and never themself;
//! - messages, key shares, settings and receipts count only from members.
//!
//! An event that breaks a rule stays in the set (the set only grows) but has no effect:
//! [`RoomState::apply`] says why it was ignored, and clients skip it when they show the room.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use crate::body::{Body, History, MembershipAction};
use crate::event::Event;
use crate::hlc::Timestamp;
use crate::ids::{EventId, RoomId, UserId};

/// Where a user stands in a room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Invited, not yet joined.
    Invited,
    /// A member.
    Joined,
    /// Left by their own choice (or declined an invite).
    Left,
    /// Removed by the admin.
    Removed,
}

impl Standing {
    /// The standing's name, as the client API writes it (`invited`, `joined`, `left`,
    /// `removed`).
    pub fn name(self) -> &'static str {
        match self {
            Standing::Invited => "invited",
            Standing::Joined => "joined",
            Standing::Left => "left",
            Standing::Removed => "removed",
        }
    }
}

/// A text that names no standing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown standing {0:?} (expected invited, joined, left or removed)")]
pub struct UnknownStanding(pub String);

impl std::str::FromStr for Standing {
    type Err = UnknownStanding;

    /// Reads what [`Standing::name`] writes.
    fn from_str(s: &str) -> Result<Standing, UnknownStanding> {
        [
            Standing::Invited,
            Standing::Joined,
            Standing::Left,
            Standing::Removed,
        ]
        .into_iter()
        .find(|st| st.name() == s)
        .ok_or_else(|| UnknownStanding(s.to_string()))
    }
}

/// Why an event had no effect on the room.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The event came before (or without) the room's create event.
    #[error("the room's create event is not known")]
    NoCreate,
    /// The author is not a member.
    #[error("the author is not a member of the room")]
    NotMember,
    /// A join without an invite.
    #[error("joining needs an invite")]
    NotInvited,
    /// Inviting someone who is already a member.
    #[error("the user is already a member")]
    AlreadyMember,
    /// Only the room's creator may remove members.
    #[error("only the room's creator may remove members")]
    NotAdmin,
    /// Removing someone who is not in the room, or the creator.
    #[error("the user cannot be removed")]
    CannotRemove,
    /// A second create event in the same room.
    #[error("the room already has a create event")]
    DuplicateCreate,
}

impl RuleError {
    /// Machine-readable reason.
    pub fn code(&self) -> &'static str {
        match self {
            RuleError::NoCreate => "unknown_room",
            RuleError::NotMember => "not_member",
            RuleError::NotInvited => "not_invited",
            RuleError::AlreadyMember => "already_member",
            RuleError::NotAdmin => "not_admin",
            RuleError::CannotRemove => "cannot_remove",
            RuleError::DuplicateCreate => "duplicate_create",
        }
    }
}

/// The state of a room after some of its events: creator, name, members.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoomState {
    /// The room, once its create event is applied.
    pub room: Option<RoomId>,
    /// The creator (admin).
    pub creator: Option<UserId>,
    /// Current name (from the create event and later settings).
    pub name: String,
    /// Whether messages must be end-to-end encrypted.
    pub encrypted: bool,
    /// History visibility for newcomers.
    pub history: Option<History>,
    /// Each user's standing and the time it began.
    pub members: BTreeMap<UserId, (Standing, Timestamp)>,
}

impl RoomState {
    /// Builds the state from a room's events in any order.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> RoomState {
        let events: Vec<&Event> = events.into_iter().collect();
        let mut state = RoomState::default();
        for e in display_order(&events) {
            let _ = state.apply(e);
        }
        state
    }

    /// The user's standing, if any.
    pub fn standing(&self, user: &UserId) -> Option<Standing> {
        self.members.get(user).map(|(s, _)| *s)
    }

    /// True when the user is a joined member.
    pub fn is_member(&self, user: &UserId) -> bool {
        self.standing(user) == Some(Standing::Joined)
    }

    /// The joined members.
    pub fn joined(&self) -> impl Iterator<Item = &UserId> {
        self.members
            .iter()
            .filter(|(_, (s, _))| *s == Standing::Joined)
            .map(|(u, _)| u)
    }

    /// Checks an event against the rules without changing the state.
    pub fn check(&self, event: &Event) -> Result<(), RuleError> {
        let c = &event.content;
        let author = c.author;
        if let Body::Create(_) = &c.body {
            return match self.room {
                Some(_) => Err(RuleError::DuplicateCreate),
                None => Ok(()),
            };
        }
        if self.room.is_none() {
            return Err(RuleError::NoCreate);
        }
        match &c.body {
            Body::Create(_) => Ok(()),
            Body::Membership { action, target } => match action {
                MembershipAction::Invite => {
                    if !self.is_member(&author) {
                        Err(RuleError::NotMember)
                    } else if self.is_member(target) {
                        Err(RuleError::AlreadyMember)
                    } else {
                        Ok(())
                    }
                }
                MembershipAction::Join => match self.standing(&author) {
                    Some(Standing::Invited) => Ok(()),
                    Some(Standing::Joined) => Err(RuleError::AlreadyMember),
                    _ if self.creator == Some(author) => Ok(()),
                    _ => Err(RuleError::NotInvited),
                },
                MembershipAction::Leave => match self.standing(&author) {
                    Some(Standing::Invited | Standing::Joined) => Ok(()),
                    _ => Err(RuleError::NotMember),
                },
                MembershipAction::Remove => {
                    if self.creator != Some(author) {
                        Err(RuleError::NotAdmin)
                    } else if *target == author
                        || !matches!(
                            self.standing(target),
                            Some(Standing::Invited | Standing::Joined)
                        )
                    {
                        Err(RuleError::CannotRemove)
                    } else {
                        Ok(())
                    }
                }
            },
            // Profiles live in profile rooms, which have no create event.
            Body::Profile(_) => Err(RuleError::NoCreate),
            Body::Settings(_) | Body::KeyShare(_) | Body::Message(_) | Body::Receipt { .. } => {
                if self.is_member(&author) {
                    Ok(())
                } else {
                    Err(RuleError::NotMember)
                }
            }
        }
    }

    /// Applies one event (the next in display order), or says why it has no effect.
    pub fn apply(&mut self, event: &Event) -> Result<(), RuleError> {
        self.check(event)?;
        let c = &event.content;
        match &c.body {
            Body::Create(create) => {
                self.room = Some(event.room_id());
                self.creator = Some(c.author);
                self.name = create.name.clone();
                self.encrypted = create.encrypted;
                self.history = Some(create.history);
                self.members.insert(c.author, (Standing::Joined, c.time));
            }
            Body::Membership { action, target } => {
                let standing = match action {
                    MembershipAction::Invite => Standing::Invited,
                    MembershipAction::Join => Standing::Joined,
                    MembershipAction::Leave => Standing::Left,
                    MembershipAction::Remove => Standing::Removed,
                };
                self.members.insert(*target, (standing, c.time));
            }
            Body::Settings(s) => {
                if let Some(name) = &s.name {
                    self.name = name.clone();
                }
                if let Some(h) = s.history {
                    self.history = Some(h);
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Sorts a room's events for display: causal (after every parent present), then timestamp,
/// then id. Parents that are not in the set are ignored. Deterministic for a given set.
pub fn display_order<'a>(events: &[&'a Event]) -> Vec<&'a Event> {
    let ids: Vec<EventId> = events.iter().map(|e| e.id()).collect();
    let index: HashMap<EventId, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut waiting = vec![0usize; events.len()];
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    for (i, e) in events.iter().enumerate() {
        let mut seen = HashSet::new();
        for p in &e.content.parents {
            if let Some(&j) = index.get(p)
                && j != i
                && seen.insert(j)
            {
                waiting[i] += 1;
                children[j].push(i);
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<(Timestamp, EventId, usize)>> = waiting
        .iter()
        .enumerate()
        .filter(|(_, w)| **w == 0)
        .map(|(i, _)| Reverse((events[i].content.time, ids[i], i)))
        .collect();
    let mut out = Vec::with_capacity(events.len());
    let mut done = vec![false; events.len()];
    while let Some(Reverse((_, _, i))) = ready.pop() {
        done[i] = true;
        out.push(events[i]);
        for &c in &children[i] {
            waiting[c] -= 1;
            if waiting[c] == 0 {
                ready.push(Reverse((events[c].content.time, ids[c], c)));
            }
        }
    }
    // Parent cycles cannot be built with content-addressed ids; should the set hold events
    // whose parents never resolve, they still appear, in time order, at the end.
    let mut rest: Vec<usize> = (0..events.len()).filter(|i| !done[*i]).collect();
    rest.sort_by_key(|&i| (events[i].content.time, ids[i]));
    out.extend(rest.into_iter().map(|i| events[i]));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::{MessageBody, RoomCreate};

    #[test]
    fn standing_names_read_back_and_match_serde() {
        for s in [
            Standing::Invited,
            Standing::Joined,
            Standing::Left,
            Standing::Removed,
        ] {
            assert_eq!(s.name().parse::<Standing>(), Ok(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.name()));
        }
        assert!("member".parse::<Standing>().is_err());
    }
    use crate::event::{EventContent, PROTOCOL_VERSION};
    use crate::keys::UserKey;

    struct Room {
        id: Option<RoomId>,
        events: Vec<Event>,
        t: u64,
    }

    impl Room {
        fn post(&mut self, key: &UserKey, body: Body) -> Event {
            self.t += 1;
            let parents = self.events.last().map(|e| vec![e.id()]).unwrap_or_default();
            let e = EventContent {
                version: PROTOCOL_VERSION,
                room: self.id,
                author: key.id(),
                parents,
                time: Timestamp::new(1_000 + self.t, 0),
                body,
            }
            .sign(key);
            if self.id.is_none() {
                self.id = Some(e.id().into());
            }
            self.events.push(e.clone());
            e
        }
    }

    fn member(action: MembershipAction, target: &UserKey) -> Body {
        Body::Membership {
            action,
            target: target.id(),
        }
    }

    fn text(t: &str) -> Body {
        Body::Message(MessageBody::Text { text: t.into() })
    }

    fn new_room(creator: &UserKey) -> Room {
        let mut r = Room {
            id: None,
            events: vec![],
            t: 0,
        };
        r.post(
            creator,
            Body::Create(RoomCreate {
                name: "ops".into(),
                encrypted: true,
                history: History::SinceJoin,
            }),
        );
        r
    }

    #[test]
    fn invite_join_remove_follow_the_rules() {
        let (a, b, c) = (
            UserKey::from_secret([1; 32]),
            UserKey::from_secret([2; 32]),
            UserKey::from_secret([3; 32]),
        );
        let mut r = new_room(&a);
        let mut s = RoomState::from_events(&r.events);
        assert!(s.is_member(&a.id()));
        // c cannot join uninvited, b cannot invite before being a member.
        let join_c = r.post(&c, member(MembershipAction::Join, &c));
        assert_eq!(s.check(&join_c), Err(RuleError::NotInvited));
        r.events.pop();
        let invite_by_b = r.post(&b, member(MembershipAction::Invite, &c));
        assert_eq!(s.check(&invite_by_b), Err(RuleError::NotMember));
        r.events.pop();
        for e in [
            r.post(&a, member(MembershipAction::Invite, &b)),
            r.post(&b, member(MembershipAction::Join, &b)),
            r.post(&b, member(MembershipAction::Invite, &c)),
            r.post(&c, member(MembershipAction::Join, &c)),
        ] {
            s.apply(&e).unwrap();
        }
        assert_eq!(s.joined().count(), 3);
        // Only the creator removes.
        let remove_by_b = r.post(&b, member(MembershipAction::Remove, &c));
        assert_eq!(s.check(&remove_by_b), Err(RuleError::NotAdmin));
        r.events.pop();
        let remove = r.post(&a, member(MembershipAction::Remove, &c));
        s.apply(&remove).unwrap();
        assert_eq!(s.standing(&c.id()), Some(Standing::Removed));
        let late = r.post(&c, text("still here?"));
        assert_eq!(s.check(&late), Err(RuleError::NotMember));
        // A removed user needs a new invite.
        let rejoin = r.post(&c, member(MembershipAction::Join, &c));
        assert_eq!(s.check(&rejoin), Err(RuleError::NotInvited));
    }

    #[test]
    fn state_is_the_same_whatever_the_arrival_order() {
        let (a, b) = (UserKey::from_secret([1; 32]), UserKey::from_secret([2; 32]));
        let mut r = new_room(&a);
        r.post(&a, member(MembershipAction::Invite, &b));
        r.post(&b, member(MembershipAction::Join, &b));
        r.post(&b, text("hello"));
        r.post(&b, member(MembershipAction::Leave, &b));
        let forward = RoomState::from_events(&r.events);
        let mut reversed = r.events.clone();
        reversed.reverse();
        assert_eq!(RoomState::from_events(&reversed), forward);
        assert_eq!(forward.standing(&b.id()), Some(Standing::Left));
    }

    #[test]
    fn parents_order_before_timestamps() {
        let a = UserKey::from_secret([1; 32]);
        let mut r = new_room(&a);
        let first = r.post(&a, text("first"));
        // A child whose clock claims an earlier time still sorts after its parent.
        let child = EventContent {
            version: PROTOCOL_VERSION,
            room: r.id,
            author: a.id(),
            parents: vec![first.id()],
            time: Timestamp::new(1, 0),
            body: text("second"),
        }
        .sign(&a);
        let events = vec![&child, &first, &r.events[0]];
        let order: Vec<EventId> = display_order(&events).iter().map(|e| e.id()).collect();
        assert_eq!(order, vec![r.events[0].id(), first.id(), child.id()]);
    }
}
