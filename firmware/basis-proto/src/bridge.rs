//! The rules of the upstream bridge, without IO: what each room may do over the WAN, the
//! hourly byte budget, and the order a backlog goes in (room state and keys first, then
//! messages, then files; higher-priority rooms first; newest first).

use std::collections::VecDeque;

use basis_core::body::{Body, MessageBody};
use basis_core::encoding::decode_event;
use basis_core::{BlobRef, EventId, RoomId};
use serde::{Deserialize, Serialize};

/// Length of the budget window, seconds.
pub const BUDGET_WINDOW_SECS: u64 = 3600;
/// A message event of at least this many bytes counts as bulk (a file), not as a message.
pub const BULK_BYTES: usize = 4096;

/// What one room may do over the upstream link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomPolicy {
    /// Events written on the LAN go upstream.
    pub uplink: bool,
    /// Events written upstream come down to the LAN.
    pub downlink: bool,
    /// Most bytes of events per hour, both directions together (`None`: no limit).
    pub budget_per_hour: Option<u64>,
    /// Rooms with a higher priority go first.
    pub priority: i32,
}

/// Bytes spent in a rolling window of the last hour, by second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// `(unix second, bytes spent in it)`, oldest first.
    spent: VecDeque<(u64, u64)>,
}

impl Budget {
    fn prune(&mut self, now: u64) {
        while self
            .spent
            .front()
            .is_some_and(|(t, _)| t + BUDGET_WINDOW_SECS <= now)
        {
            self.spent.pop_front();
        }
    }

    /// Bytes spent in the hour before `now` (unix seconds).
    pub fn used(&mut self, now: u64) -> u64 {
        self.prune(now);
        self.spent.iter().map(|(_, b)| b).sum()
    }

    /// Whether `bytes` more fit under `limit` now (always, without a limit).
    pub fn allows(&mut self, limit: Option<u64>, now: u64, bytes: u64) -> bool {
        limit.is_none_or(|l| self.used(now).saturating_add(bytes) <= l)
    }

    /// Bytes left under `limit` now (`None`: no limit).
    pub fn remaining(&mut self, limit: Option<u64>, now: u64) -> Option<u64> {
        limit.map(|l| l.saturating_sub(self.used(now)))
    }

    /// Counts `bytes` spent at `now`.
    pub fn spend(&mut self, now: u64, bytes: u64) {
        self.prune(now);
        match self.spent.back_mut() {
            Some((t, b)) if *t == now => *b = b.saturating_add(bytes),
            _ => self.spent.push_back((now, bytes)),
        }
    }

    /// When the oldest spending leaves the window (unix seconds), if anything was spent.
    pub fn frees_at(&mut self, now: u64) -> Option<u64> {
        self.prune(now);
        self.spent.front().map(|(t, _)| t + BUDGET_WINDOW_SECS)
    }
}

/// What an event is, for the order of a backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Room state, membership, keys and profiles: needed to read anything else.
    State,
    /// Messages, receipts, reactions (small).
    Message,
    /// Files and any message of [`BULK_BYTES`] or more.
    File,
}

/// The class of an event from its wire bytes (bytes that do not decode count as bulk).
pub fn classify(raw: &[u8]) -> Class {
    let Ok(event) = decode_event(raw) else {
        return Class::File;
    };
    match event.content.body {
        Body::Create(_)
        | Body::Membership { .. }
        | Body::Settings(_)
        | Body::KeyShare(_)
        | Body::Profile(_) => Class::State,
        Body::Message(MessageBody::File(_)) => Class::File,
        Body::Message(_) | Body::Receipt { .. } if raw.len() >= BULK_BYTES => Class::File,
        Body::Message(_) | Body::Receipt { .. } => Class::Message,
    }
}

/// The file an event names in the clear (an `Attachment` or `EncryptedAttachment` message),
/// if any: what the bridge may carry after the event (bytes that do not decode name none).
pub fn file_of(raw: &[u8]) -> Option<BlobRef> {
    let event = decode_event(raw).ok()?;
    match event.content.body {
        Body::Message(m) => m.blob().copied(),
        _ => None,
    }
}

/// Bytes a file's chunk list is counted for against a budget before it is read: the most its
/// encoding can take (`docs/PROTOCOL.md` §9.2: a version byte, two varints of at most 5 and
/// 10 bytes, a count of at most 3 and 32 bytes a chunk). What crossed is charged exactly.
pub fn list_cost(blob: &BlobRef) -> u64 {
    19u64.saturating_add(blob.chunk_count().saturating_mul(32))
}

/// An event waiting to cross the WAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Its room.
    pub room: RoomId,
    /// Its id.
    pub id: EventId,
    /// Its timestamp.
    pub ts: u64,
    /// What it is.
    pub class: Class,
    /// Its size on the wire.
    pub bytes: u64,
}

/// Sorts a backlog into sending order: class first (state, messages, files), then the room's
/// priority (higher first), then newest first.
pub fn send_order(items: &mut [Pending], priority: impl Fn(&RoomId) -> i32) {
    items.sort_by(|a, b| {
        (
            a.class,
            std::cmp::Reverse(priority(&a.room)),
            std::cmp::Reverse(a.ts),
            a.id,
        )
            .cmp(&(
                b.class,
                std::cmp::Reverse(priority(&b.room)),
                std::cmp::Reverse(b.ts),
                b.id,
            ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_a_rolling_hour() {
        let mut b = Budget::default();
        let limit = Some(1000);
        assert!(b.allows(limit, 100, 1000));
        b.spend(100, 600);
        b.spend(100, 300);
        assert_eq!(b.used(100), 900);
        assert!(b.allows(limit, 200, 100));
        assert!(!b.allows(limit, 200, 101));
        b.spend(2000, 100);
        assert_eq!(b.remaining(limit, 2000), Some(0));
        assert_eq!(b.frees_at(2000), Some(100 + BUDGET_WINDOW_SECS));
        // An hour after the first spending it no longer counts; the later one still does.
        assert_eq!(b.used(100 + BUDGET_WINDOW_SECS), 100);
        assert!(b.allows(None, 0, u64::MAX));
        assert_eq!(b.remaining(None, 0), None);
    }

    fn pending(room: u8, ts: u64, class: Class) -> Pending {
        Pending {
            room: RoomId([room; 32]),
            id: EventId([ts as u8; 32]),
            ts,
            class,
            bytes: 10,
        }
    }

    #[test]
    fn state_then_messages_then_files_by_priority_newest_first() {
        let mut items = vec![
            pending(1, 5, Class::File),
            pending(1, 1, Class::Message),
            pending(2, 2, Class::Message),
            pending(1, 3, Class::Message),
            pending(2, 9, Class::File),
            pending(1, 0, Class::State),
        ];
        send_order(&mut items, |room| if room.0[0] == 2 { 10 } else { 0 });
        let order: Vec<(u8, u64)> = items.iter().map(|p| (p.room.0[0], p.ts)).collect();
        assert_eq!(order, vec![(1, 0), (2, 2), (1, 3), (1, 1), (2, 9), (1, 5)]);
    }

    #[test]
    fn garbage_counts_as_bulk() {
        assert_eq!(classify(&[1, 2, 3]), Class::File);
    }

    fn wire(body: Body) -> Vec<u8> {
        use basis_core::{EventContent, PROTOCOL_VERSION, Timestamp, UserKey};
        let key = UserKey::from_secret([7; 32]);
        EventContent {
            version: PROTOCOL_VERSION,
            room: Some(RoomId([1; 32])),
            author: key.id(),
            parents: vec![],
            time: Timestamp::new(1_700_000_000_000, 0),
            body,
        }
        .sign(&key)
        .to_bytes()
    }

    #[test]
    fn state_messages_and_files_are_told_apart() {
        use basis_core::body::{FileManifest, MembershipAction};
        let join = wire(Body::Membership {
            action: MembershipAction::Join,
            target: basis_core::UserKey::from_secret([7; 32]).id(),
        });
        assert_eq!(classify(&join), Class::State);
        let line = wire(Body::Message(MessageBody::Text { text: "hi".into() }));
        assert_eq!(classify(&line), Class::Message);
        let file = wire(Body::Message(MessageBody::File(FileManifest {
            name: "map.png".into(),
            media_type: "image/png".into(),
            size: 1 << 20,
            sha256: [0; 32],
        })));
        assert_eq!(classify(&file), Class::File);
        // An encrypted message is opaque to a node: a large one counts as a file.
        let big = wire(Body::Message(MessageBody::Encrypted {
            session_id: vec![1; 32],
            ciphertext: vec![0; BULK_BYTES],
        }));
        assert_eq!(classify(&big), Class::File);
    }
}
