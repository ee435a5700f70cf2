//! Reputation: peers that send invalid data lose score; at zero they are refused for a while.
//! Pure: the caller passes the time in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use basis_core::NodeId;

/// Score a peer starts with.
pub const START_SCORE: i32 = 100;
/// How long a peer whose score reached zero is refused.
pub const BAN: Duration = Duration::from_secs(600);
/// Points regained per minute of good behaviour, up to the start score.
const RECOVERY_PER_MIN: i32 = 5;

#[derive(Debug, Clone)]
struct Entry {
    score: i32,
    updated: Instant,
    banned_until: Option<Instant>,
    last_reason: String,
}

/// Scores of peers, by node id.
#[derive(Debug, Default)]
pub struct Reputation {
    peers: HashMap<NodeId, Entry>,
}

impl Reputation {
    /// An empty table: every peer starts at [`START_SCORE`].
    pub fn new() -> Self {
        Self::default()
    }

    fn entry(&mut self, peer: NodeId, now: Instant) -> &mut Entry {
        let e = self.peers.entry(peer).or_insert(Entry {
            score: START_SCORE,
            updated: now,
            banned_until: None,
            last_reason: String::new(),
        });
        let minutes = now.saturating_duration_since(e.updated).as_secs() / 60;
        if minutes > 0 {
            let regained = RECOVERY_PER_MIN.saturating_mul(minutes.min(1000) as i32);
            e.score = (e.score + regained).min(START_SCORE);
            e.updated = now;
        }
        e
    }

    /// Takes points off a peer; returns true when this bans it.
    pub fn penalize(&mut self, peer: NodeId, points: u32, reason: &str, now: Instant) -> bool {
        let e = self.entry(peer, now);
        e.score = e.score.saturating_sub(points.min(i32::MAX as u32) as i32);
        e.last_reason = reason.to_string();
        if e.score <= 0 && e.banned_until.is_none_or(|t| t <= now) {
            e.banned_until = Some(now + BAN);
            return true;
        }
        false
    }

    /// Whether the peer is refused now, and why.
    pub fn banned(&mut self, peer: &NodeId, now: Instant) -> Option<String> {
        let e = self.peers.get_mut(peer)?;
        match e.banned_until {
            Some(until) if until > now => Some(e.last_reason.clone()),
            Some(_) => {
                // The ban ran out: a fresh start, at half score.
                e.banned_until = None;
                e.score = START_SCORE / 2;
                e.updated = now;
                None
            }
            None => None,
        }
    }

    /// The peer's score now.
    pub fn score(&mut self, peer: NodeId, now: Instant) -> i32 {
        self.entry(peer, now).score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_peer_is_banned_then_forgiven() {
        let mut r = Reputation::new();
        let p = NodeId([1; 32]);
        let t = Instant::now();
        assert!(!r.penalize(p, 60, "invalid events", t));
        assert!(r.banned(&p, t).is_none());
        assert!(r.penalize(p, 60, "invalid events", t));
        assert_eq!(r.banned(&p, t).as_deref(), Some("invalid events"));
        assert!(r.banned(&p, t + BAN + Duration::from_secs(1)).is_none());
        assert_eq!(
            r.score(p, t + BAN + Duration::from_secs(1)),
            START_SCORE / 2
        );
    }

    #[test]
    fn honest_peers_are_untouched() {
        let mut r = Reputation::new();
        let t = Instant::now();
        assert_eq!(r.score(NodeId([2; 32]), t), START_SCORE);
        assert!(r.banned(&NodeId([2; 32]), t).is_none());
    }
}
