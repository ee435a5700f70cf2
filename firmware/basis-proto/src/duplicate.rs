//! One link per pair of nodes: which of two admitted links to the same peer a node keeps.
//!
//! Both ends of a pair apply [`keep`] to the same facts and so keep the same link without
//! talking about it. The facts come from the hellos: each side names its *boot* (a random
//! number drawn when its process starts) and the dialling side numbers its dials. The rule,
//! written out in `docs/FEDERATION.md`:
//!
//! 1. **The peer restarted** (the two links carry different peer boots): the new link wins at
//!    once. The old process is gone, so its link is dead however alive it looks.
//! 2. **Both links were dialled by the same node**: the later dial (the higher number) wins.
//!    A node dials a peer only while it has no live link to it, so a later dial means the
//!    dialler lost the earlier link (a WAN blip, a partition it noticed first); within one
//!    burst of dials to several addresses, both ends still agree on the highest number.
//! 3. **Dialled by different nodes**: when they were admitted within [`SIMULTANEOUS`] of each
//!    other, both nodes dialled at once and the link dialled by the smaller node id wins;
//!    later, the new link wins (its dialler lost the old one).
//!
//! No rule ever prefers an older link over a newer one from a peer that has lost it, so a
//! restarted or reconnecting peer is linked again at once, and no rule flips between two live
//! links: with equal facts, both ends and every repetition decide alike.

use std::time::Duration;

use basis_core::NodeId;

/// Links dialled from opposite ends that are admitted within this time of each other are one
/// simultaneous dial (a handshake takes at most 10 s, the dial timeout).
pub const SIMULTANEOUS: Duration = Duration::from_secs(10);

/// Which end of a link this node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkEnd {
    /// This node dialled the link.
    Dialled,
    /// The peer dialled and this node accepted.
    Accepted,
}

/// What a node knows about one admitted link when it has to choose between two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkFacts {
    /// Which end this node is.
    pub end: LinkEnd,
    /// The boot number the peer sent in its hello on this link.
    pub peer_boot: u64,
    /// The dialler's number for this dial: this node's own when it dialled, the one in the
    /// peer's hello otherwise.
    pub dial: u64,
    /// How long ago this node admitted the link (zero for the one being admitted).
    pub age: Duration,
}

/// Which of two links to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Keep the link already registered; close the new one.
    Existing,
    /// Keep the new link; close the one registered before.
    New,
}

/// Decides between a live `existing` link to `peer` and a `new` one being admitted, on node
/// `local`. Pure: the same facts give the same answer on both ends (see the module comment).
pub fn keep(local: NodeId, peer: NodeId, existing: &LinkFacts, new: &LinkFacts) -> Keep {
    if existing.peer_boot != new.peer_boot {
        return Keep::New;
    }
    if existing.end == new.end {
        return if new.dial > existing.dial {
            Keep::New
        } else {
            Keep::Existing
        };
    }
    if existing.age.saturating_sub(new.age) >= SIMULTANEOUS {
        return Keep::New;
    }
    // A simultaneous dial: the link dialled by the smaller node id wins.
    let smaller_dialled = if local < peer {
        LinkEnd::Dialled
    } else {
        LinkEnd::Accepted
    };
    if new.end == smaller_dialled {
        Keep::New
    } else {
        Keep::Existing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: NodeId = NodeId([1; 32]);
    const LARGE: NodeId = NodeId([2; 32]);

    fn facts(end: LinkEnd, peer_boot: u64, dial: u64, age_secs: u64) -> LinkFacts {
        LinkFacts {
            end,
            peer_boot,
            dial,
            age: Duration::from_secs(age_secs),
        }
    }

    /// The facts the other end of the same link has: the end flips, the boot is the other
    /// node's, the dial number is the same.
    fn seen_from_peer(f: &LinkFacts, peer_boot: u64) -> LinkFacts {
        LinkFacts {
            end: match f.end {
                LinkEnd::Dialled => LinkEnd::Accepted,
                LinkEnd::Accepted => LinkEnd::Dialled,
            },
            peer_boot,
            ..*f
        }
    }

    #[test]
    fn a_restarted_peer_replaces_its_dead_link_whoever_dialled_either_and_however_young() {
        for (local, peer) in [(SMALL, LARGE), (LARGE, SMALL)] {
            for old_end in [LinkEnd::Dialled, LinkEnd::Accepted] {
                for new_end in [LinkEnd::Dialled, LinkEnd::Accepted] {
                    for age in [0, 1, 9, 10, 60, 3600] {
                        for (old_dial, new_dial) in [(5, 1), (1, 5), (3, 3)] {
                            let old = facts(old_end, 111, old_dial, age);
                            let new = facts(new_end, 222, new_dial, 0);
                            assert_eq!(
                                keep(local, peer, &old, &new),
                                Keep::New,
                                "{local:?} {peer:?} {old:?} {new:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_same_dialler_keeps_its_latest_dial_at_any_age() {
        for (local, peer) in [(SMALL, LARGE), (LARGE, SMALL)] {
            for end in [LinkEnd::Dialled, LinkEnd::Accepted] {
                for age in [0, 2, 14, 15, 600] {
                    let old = facts(end, 7, 4, age);
                    let later = facts(end, 7, 5, 0);
                    let earlier = facts(end, 7, 3, 0);
                    assert_eq!(keep(local, peer, &old, &later), Keep::New);
                    assert_eq!(keep(local, peer, &old, &earlier), Keep::Existing);
                    // The same link offered twice is not a replacement.
                    assert_eq!(keep(local, peer, &old, &old), Keep::Existing);
                }
            }
        }
    }

    #[test]
    fn a_simultaneous_dial_keeps_the_link_dialled_by_the_smaller_id_on_both_ends() {
        // Two live processes, boots 10 (SMALL) and 20 (LARGE). SMALL dialled link a (its dial
        // 1), LARGE dialled link b (its dial 1), admitted 2 s apart, in either order.
        for age in [0, 2, 9] {
            // On SMALL: the peer is LARGE, whose boot is 20.
            let a_on_small = facts(LinkEnd::Dialled, 20, 1, age);
            let b_on_small = facts(LinkEnd::Accepted, 20, 1, 0);
            // On LARGE: the peer is SMALL, whose boot is 10.
            let a_on_large = seen_from_peer(&a_on_small, 10);
            let b_on_large = seen_from_peer(&b_on_small, 10);
            // a first, then b: both keep a.
            assert_eq!(keep(SMALL, LARGE, &a_on_small, &b_on_small), Keep::Existing);
            assert_eq!(keep(LARGE, SMALL, &a_on_large, &b_on_large), Keep::Existing);
            // b first, then a: both keep a.
            let b_first_small = LinkFacts {
                age: Duration::from_secs(age),
                ..b_on_small
            };
            let a_second_small = LinkFacts {
                age: Duration::ZERO,
                ..a_on_small
            };
            assert_eq!(
                keep(SMALL, LARGE, &b_first_small, &a_second_small),
                Keep::New
            );
            let b_first_large = seen_from_peer(&b_first_small, 10);
            let a_second_large = seen_from_peer(&a_second_small, 10);
            assert_eq!(
                keep(LARGE, SMALL, &b_first_large, &a_second_large),
                Keep::New
            );
        }
    }

    #[test]
    fn a_peer_that_lost_an_old_link_is_taken_back_whichever_end_dialled_it() {
        for (local, peer) in [(SMALL, LARGE), (LARGE, SMALL)] {
            for (old_end, new_end) in [
                (LinkEnd::Dialled, LinkEnd::Accepted),
                (LinkEnd::Accepted, LinkEnd::Dialled),
            ] {
                for age in [10, 11, 30, 86_400] {
                    let old = facts(old_end, 9, 1, age);
                    let new = facts(new_end, 9, 1, 0);
                    assert_eq!(keep(local, peer, &old, &new), Keep::New, "{old:?} {new:?}");
                }
            }
        }
    }

    #[test]
    fn deciding_again_never_flips_between_two_live_links() {
        // Whatever was kept, offering the loser again (same facts) keeps the winner.
        for (local, peer) in [(SMALL, LARGE), (LARGE, SMALL)] {
            for end_a in [LinkEnd::Dialled, LinkEnd::Accepted] {
                for end_b in [LinkEnd::Dialled, LinkEnd::Accepted] {
                    for (dial_a, dial_b) in [(1, 2), (2, 1)] {
                        let a = facts(end_a, 5, dial_a, 3);
                        let b = facts(end_b, 5, dial_b, 0);
                        let (winner, loser) = match keep(local, peer, &a, &b) {
                            Keep::Existing => (a, b),
                            Keep::New => (b, a),
                        };
                        let winner = LinkFacts {
                            age: Duration::from_secs(3),
                            ..winner
                        };
                        let loser = LinkFacts {
                            age: Duration::ZERO,
                            ..loser
                        };
                        assert_eq!(keep(local, peer, &winner, &loser), Keep::Existing);
                    }
                }
            }
        }
    }
}
