//! The node's view of rooms and users, for access checks: each room's membership state and
//! each user's newest profile, kept current from the store's feed of new events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use basis_core::encoding::decode_event;
use basis_core::room::{RoomState, Standing};
use basis_core::{Body, Event, EventId, Profile, RoomId, Timestamp, UserId};
use basis_store::{Readers, StoreError};
use tokio::sync::watch;

/// A user's newest profile.
#[derive(Clone, Debug)]
pub struct ProfileEntry {
    /// The profile.
    pub profile: Profile,
    /// Its event's timestamp.
    pub time: Timestamp,
    /// Its event.
    pub id: EventId,
}

/// Rooms and profiles as the node's store holds them.
pub struct RoomIndex {
    readers: Arc<Readers>,
    /// The `seq` of the store's newest room-defining event (`Node::state_committed`).
    state: watch::Receiver<u64>,
    rooms: RwLock<HashMap<RoomId, RoomState>>,
    profiles: RwLock<HashMap<UserId, ProfileEntry>>,
    /// Highest `seq` folded in; the mutex also serialises catching up.
    applied: Mutex<u64>,
}

impl RoomIndex {
    /// An empty index over the store; fill it with [`RoomIndex::catch_up`]. `state`
    /// follows the `seq` of the newest room-defining event committed
    /// (`Node::state_committed`).
    pub fn new(readers: Arc<Readers>, state: watch::Receiver<u64>) -> RoomIndex {
        RoomIndex {
            readers,
            state,
            rooms: RwLock::new(HashMap::new()),
            profiles: RwLock::new(HashMap::new()),
            applied: Mutex::new(0),
        }
    }

    /// Whether every room-defining event committed so far is folded in, so that
    /// [`RoomIndex::catch_up`] would read nothing. Does not block on the store.
    pub fn is_current(&self) -> bool {
        let upto = *self.state.borrow();
        upto <= *self.applied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Folds in every room-defining event committed since the last call. Cheap when nothing
    /// is new; call it before answering from the index. Blocking (reads SQLite).
    pub fn catch_up(&self) -> Result<(), StoreError> {
        let mut applied = self.applied.lock().unwrap_or_else(|p| p.into_inner());
        let upto = *self.state.borrow();
        if upto <= *applied {
            return Ok(());
        }
        let raws = self.readers.state_since(*applied, upto)?;
        let mut touched = Vec::new();
        for raw in raws {
            // Stored events were validated on the way in; a row that does not decode can only
            // come from outside tampering and is skipped.
            let Ok(event) = decode_event(&raw) else {
                continue;
            };
            match &event.content.body {
                Body::Profile(p) => self.note_profile(&event, p),
                _ => touched.push(event.room_id()),
            }
        }
        touched.sort();
        touched.dedup();
        for room in touched {
            self.refresh(room)?;
        }
        *applied = upto;
        Ok(())
    }

    fn note_profile(&self, event: &Event, profile: &Profile) {
        let entry = ProfileEntry {
            profile: profile.clone(),
            time: event.content.time,
            id: event.id(),
        };
        let mut profiles = self.profiles.write().unwrap_or_else(|p| p.into_inner());
        let newer = profiles
            .get(&event.content.author)
            .is_none_or(|old| (entry.time, entry.id) > (old.time, old.id));
        if newer {
            profiles.insert(event.content.author, entry);
        }
    }

    /// Recomputes one room's state from all its room-defining events.
    pub fn refresh(&self, room: RoomId) -> Result<(), StoreError> {
        let events: Vec<Event> = self
            .readers
            .state_events(Some(&room))?
            .iter()
            .filter_map(|raw| decode_event(raw).ok())
            .collect();
        let state = RoomState::from_events(&events);
        if state.room.is_some() {
            self.rooms
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(room, state);
        }
        Ok(())
    }

    /// A room's state, if its create event is held.
    pub fn room(&self, room: &RoomId) -> Option<RoomState> {
        self.rooms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(room)
            .cloned()
    }

    /// The rooms where `user` has a standing (invited, joined, left or removed).
    pub fn rooms_of(&self, user: &UserId) -> Vec<(RoomId, RoomState)> {
        let rooms = self.rooms.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(RoomId, RoomState)> = rooms
            .iter()
            .filter(|(_, s)| s.members.contains_key(user))
            .map(|(id, s)| (*id, s.clone()))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// A user's newest profile.
    pub fn profile(&self, user: &UserId) -> Option<ProfileEntry> {
        self.profiles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(user)
            .cloned()
    }
}

/// How much of a room a user may read: everything while invited or joined; after leaving or
/// removal, up to the moment they left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visible {
    /// The whole room.
    All,
    /// Events up to this timestamp.
    Until(Timestamp),
}

/// What `user` may read of a room with state `state`, or `None`.
pub fn visible(state: &RoomState, user: &UserId) -> Option<Visible> {
    match state.members.get(user)? {
        (Standing::Invited | Standing::Joined, _) => Some(Visible::All),
        (Standing::Left | Standing::Removed, at) => Some(Visible::Until(*at)),
    }
}

impl Visible {
    /// Whether an event with this timestamp is readable.
    pub fn allows(self, time: Timestamp) -> bool {
        match self {
            Visible::All => true,
            Visible::Until(t) => time <= t,
        }
    }
}
