//! The upstream bridge's shared state: the bridged rooms (their budgets and sync marks, kept
//! on disk), each upstream node's state as `basis status` shows it, and the decision which
//! state a node is in after an attempt to link with it. The upstream links update it
//! (`driver`); `upstream` dials; `basis status` reads it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use basis_core::{NodeId, RoomId};
use basis_proto::BridgeRooms;
use basis_proto::bridge::RoomPolicy;
use basis_proto::bridge_link::{BridgeStats, RoomSnapshot, SavedRoom};
use quinn::Connection;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::addr::StaticPeer;
use crate::wan::{WanView, unix_now};

/// What the bridge needs from the node's configuration.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Upstream nodes; each must have its node id pinned.
    pub peers: Vec<StaticPeer>,
    /// The WAN interface (`None`: whichever the route to the upstream nodes leaves by).
    pub wan_interface: Option<String>,
    /// Reconcile the rooms again after this long while linked.
    pub reconcile_every: Duration,
    /// The rooms bridged and what each may do.
    pub rooms: BTreeMap<RoomId, RoomPolicy>,
    /// Where budgets and sync marks are kept across restarts (`None`: not kept).
    pub state_file: Option<PathBuf>,
}

/// The bridge as `basis status` shows it.
#[derive(Debug, Clone)]
pub struct BridgeSnapshot {
    /// The WAN link.
    pub wan: WanView,
    /// Each upstream node.
    pub upstreams: Vec<UpstreamSnapshot>,
    /// Each bridged room.
    pub rooms: Vec<RoomSnapshot>,
}

/// Where the bridge stands with one upstream node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamState {
    /// The WAN is down; nothing is dialled until it is up.
    WaitingForWan,
    /// Dialling, or admitted-to-be: the WAN is up and the node has not failed to answer.
    Linking,
    /// Admitted and linked now.
    Linked,
    /// The last dial found no answer (see `last_error` for why); dialled again.
    Unreachable,
    /// The node answered and did not admit this one (see `last_error`); dialled again.
    Refused,
}

/// One upstream node as `basis status` shows it.
#[derive(Debug, Clone)]
pub struct UpstreamSnapshot {
    /// Its node id (hex).
    pub node_id: String,
    /// Host and port as configured.
    pub host: String,
    /// The address it is linked at.
    pub address: Option<String>,
    /// Where the bridge stands with it.
    pub state: UpstreamState,
    /// Unix time (seconds) the state began.
    pub since: u64,
    /// Round-trip time, milliseconds, while linked.
    pub rtt_ms: Option<f64>,
    /// Unix time (seconds) of the last finished reconciliation of every room.
    pub last_reconciled: Option<u64>,
    /// Events it acknowledged since the node started.
    pub events_sent: u64,
    /// Events received from it since the node started.
    pub events_received: u64,
    /// Why the last link ended or the last dial failed.
    pub last_error: Option<String>,
}

/// How one attempt to link with an upstream node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// No connection: the dial got no answer, the name did not resolve, another key answered.
    NoAnswer(String),
    /// Connected, and the node did not admit this one.
    NotAdmitted(String),
    /// Connected, and the link ended (before or after admission) for this reason.
    Ended(String),
    /// This node is stopping.
    Stopped,
}

/// The state to show after an attempt while the WAN is still up: only a node that did not
/// answer is unreachable; one that answered is dialled again as `linking`.
pub(crate) fn state_after(attempt: &Attempt) -> UpstreamState {
    match attempt {
        Attempt::NoAnswer(_) => UpstreamState::Unreachable,
        Attempt::NotAdmitted(_) => UpstreamState::Refused,
        Attempt::Ended(_) | Attempt::Stopped => UpstreamState::Linking,
    }
}

#[derive(Debug)]
struct UpstreamEntry {
    host: String,
    address: Option<String>,
    state: UpstreamState,
    since: u64,
    /// The live connection, for its round-trip time.
    conn: Option<Connection>,
    last_reconciled: Option<u64>,
    /// Counters of the links that ended, and of the live one.
    events_sent: u64,
    events_received: u64,
    live_sent: u64,
    live_received: u64,
    last_error: Option<String>,
}

impl UpstreamEntry {
    fn set(&mut self, state: UpstreamState, error: Option<String>) {
        if self.state != state {
            self.state = state;
            self.since = unix_now();
        }
        if error.is_some() {
            self.last_error = error;
        }
    }
}

/// What is kept on disk across restarts.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    rooms: BTreeMap<String, SavedRoom>,
}

/// The bridge shared by the upstream links and `basis status`.
pub(crate) struct Bridge {
    settings: UpstreamSettings,
    pub(crate) wan: watch::Receiver<WanView>,
    rooms: Mutex<BridgeRooms>,
    upstreams: Mutex<BTreeMap<NodeId, UpstreamEntry>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads the saved budgets and sync marks; a file that is missing or unreadable gives none.
fn load(path: Option<&PathBuf>) -> BTreeMap<RoomId, SavedRoom> {
    let Some(path) = path else {
        return BTreeMap::new();
    };
    let saved = match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
            Ok(saved) => saved,
            Err(e) => {
                log::warn!(
                    "{} is unreadable ({e}); budgets start empty",
                    path.display()
                );
                Saved::default()
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
        Err(e) => {
            log::warn!("cannot read {}: {e}; budgets start empty", path.display());
            Saved::default()
        }
    };
    saved
        .rooms
        .into_iter()
        .filter_map(|(id, room)| Some((id.parse::<RoomId>().ok()?, room)))
        .collect()
}

impl Bridge {
    pub(crate) fn new(settings: UpstreamSettings, wan: watch::Receiver<WanView>) -> Bridge {
        let rooms = BridgeRooms::new(settings.rooms.clone(), load(settings.state_file.as_ref()));
        let upstreams = settings
            .peers
            .iter()
            .filter_map(|peer| {
                let entry = UpstreamEntry {
                    host: format!("{}:{}", peer.host, peer.port),
                    address: None,
                    state: UpstreamState::WaitingForWan,
                    since: unix_now(),
                    conn: None,
                    last_reconciled: None,
                    events_sent: 0,
                    events_received: 0,
                    live_sent: 0,
                    live_received: 0,
                    last_error: None,
                };
                Some((peer.expected?, entry))
            })
            .collect();
        Bridge {
            settings,
            wan,
            rooms: Mutex::new(rooms),
            upstreams: Mutex::new(upstreams),
        }
    }

    fn upstream<T>(&self, id: NodeId, f: impl FnOnce(&mut UpstreamEntry) -> T) -> Option<T> {
        lock(&self.upstreams).get_mut(&id).map(f)
    }

    /// The upstream nodes to link with.
    pub(crate) fn peers(&self) -> &[StaticPeer] {
        &self.settings.peers
    }

    /// Sets the state of upstream node `id`, and why when `error` says.
    pub(crate) fn set_state(&self, id: NodeId, state: UpstreamState, error: Option<String>) {
        self.upstream(id, |e| e.set(state, error));
    }

    /// The bridged rooms, locked (briefly: the bridge's machine runs under it).
    pub(crate) fn rooms(&self) -> MutexGuard<'_, BridgeRooms> {
        lock(&self.rooms)
    }

    /// How often the rooms are reconciled again while linked.
    pub(crate) fn reconcile_every(&self) -> Duration {
        self.settings.reconcile_every
    }

    /// The upstream node `id` was admitted on `conn`.
    pub(crate) fn linked(&self, id: NodeId, remote: SocketAddr, conn: Connection) {
        self.upstream(id, |e| {
            e.address = Some(remote.to_string());
            e.conn = Some(conn);
            e.set(UpstreamState::Linked, None);
        });
    }

    /// The counters of the live link to `id`.
    pub(crate) fn note_stats(&self, id: NodeId, stats: BridgeStats) {
        self.upstream(id, |e| {
            e.live_sent = stats.events_sent;
            e.live_received = stats.events_received;
            if stats.last_reconciled.is_some() {
                e.last_reconciled = stats.last_reconciled;
            }
        });
    }

    /// The link to `id` ended: its counters join the totals.
    pub(crate) fn unlinked(&self, id: NodeId) {
        self.upstream(id, |e| {
            e.events_sent += std::mem::take(&mut e.live_sent);
            e.events_received += std::mem::take(&mut e.live_received);
            e.conn = None;
        });
    }

    /// Writes budgets and sync marks to the state file when they changed.
    pub(crate) fn save(&self) {
        let Some(path) = &self.settings.state_file else {
            return;
        };
        let Some(rooms) = lock(&self.rooms).take_changes() else {
            return;
        };
        let saved = Saved {
            rooms: rooms
                .into_iter()
                .map(|(id, room)| (id.to_string(), room))
                .collect(),
        };
        let tmp = path.with_extension("json.tmp");
        let result = serde_json::to_vec(&saved)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = result {
            log::warn!("cannot save the bridge state to {}: {e}", path.display());
            lock(&self.rooms).keep_changes();
        }
    }

    /// The snapshot for `basis status`; estimates the backlog of rooms not reconciled on a
    /// live link from the store (a blocking read).
    pub(crate) fn snapshot(&self, readers: &basis_store::Readers) -> BridgeSnapshot {
        let now = unix_now();
        let wan = self.wan.borrow().clone();
        let marks = lock(&self.rooms).marks();
        let mut estimates = HashMap::new();
        for (room, synced) in marks {
            match readers.room_since(&room, synced) {
                Ok(found) => {
                    estimates.insert(room, found);
                }
                Err(e) => log::warn!("cannot count the backlog of room {}: {e}", room.short()),
            }
        }
        let rooms = lock(&self.rooms).snapshot(now, &estimates);
        let upstreams = lock(&self.upstreams)
            .iter()
            .map(|(id, e)| UpstreamSnapshot {
                node_id: id.to_string(),
                host: e.host.clone(),
                address: e.address.clone(),
                state: e.state,
                since: e.since,
                rtt_ms: e
                    .conn
                    .as_ref()
                    .filter(|_| e.state == UpstreamState::Linked)
                    .map(|c| c.rtt().as_secs_f64() * 1000.0),
                last_reconciled: e.last_reconciled,
                events_sent: e.events_sent + e.live_sent,
                events_received: e.events_received + e.live_received,
                last_error: e.last_error.clone(),
            })
            .collect();
        BridgeSnapshot {
            wan,
            upstreams,
            rooms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_node_that_did_not_answer_is_unreachable() {
        assert_eq!(
            state_after(&Attempt::NoAnswer(
                "192.0.2.1:7464: no answer within 10 s".into()
            )),
            UpstreamState::Unreachable
        );
        // It answered: refused is not unreachable, and a link that ended is dialled again.
        assert_eq!(
            state_after(&Attempt::NotAdmitted("not admitted".into())),
            UpstreamState::Refused
        );
        assert_eq!(
            state_after(&Attempt::Ended(
                "the peer closed the link: duplicate link".into()
            )),
            UpstreamState::Linking
        );
    }

    #[test]
    fn saved_state_survives_a_round_trip_and_a_bad_file_is_ignored() {
        let dir = std::env::temp_dir().join(format!("basis-bridge-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok();
        let path = dir.join("bridge.json");
        let room = RoomId([3; 32]);
        let mut saved = SavedRoom {
            synced_seq: 42,
            last_synced: Some(7),
            ..SavedRoom::default()
        };
        saved.budget.spend(100, 500);
        let file = Saved {
            rooms: BTreeMap::from([(room.to_string(), saved.clone())]),
        };
        std::fs::write(&path, serde_json::to_vec(&file).unwrap_or_default()).ok();
        assert_eq!(load(Some(&path)).get(&room), Some(&saved));
        std::fs::write(&path, b"{not json").ok();
        assert!(load(Some(&path)).is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}
