//! Hybrid logical clock.
//!
//! Boards have no real-time clock and no NTP when offline, so wall time alone cannot order
//! events. A [`Timestamp`] packs wall-clock milliseconds (upper 48 bits) and a logical counter
//! (lower 16 bits) into one `u64`; a [`Clock`] never goes backwards and moves past every
//! timestamp it observes.

use serde::{Deserialize, Serialize};

/// Bits of a timestamp that hold the logical counter.
const COUNTER_BITS: u32 = 16;
const COUNTER_MASK: u64 = (1 << COUNTER_BITS) - 1;
/// Largest valid timestamp: the top bit stays clear so a timestamp fits SQLite's signed
/// integers and sorts the same there.
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// A hybrid logical clock reading: `millis << 16 | counter`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Builds a timestamp from milliseconds since the Unix epoch and a counter. Milliseconds
    /// beyond the representable range (year 6429) saturate.
    pub fn new(millis: u64, counter: u16) -> Self {
        let millis = millis.min(MAX_TIMESTAMP >> COUNTER_BITS);
        Timestamp((millis << COUNTER_BITS) | u64::from(counter))
    }

    /// Milliseconds since the Unix epoch, as the author's clock saw them.
    pub fn millis(self) -> u64 {
        self.0 >> COUNTER_BITS
    }

    /// The logical counter that orders readings within one millisecond.
    pub fn counter(self) -> u16 {
        (self.0 & COUNTER_MASK) as u16
    }

    /// Whether the value can be stored and compared everywhere (top bit clear).
    pub fn is_valid(self) -> bool {
        self.0 <= MAX_TIMESTAMP
    }
}

/// A hybrid logical clock. Pure: the caller passes the wall-clock reading in.
#[derive(Debug, Default, Clone)]
pub struct Clock {
    last: Timestamp,
}

impl Clock {
    /// A clock that has seen nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The latest reading this clock has given or observed.
    pub fn last(&self) -> Timestamp {
        self.last
    }

    /// A new reading, later than every reading given or observed before.
    pub fn tick(&mut self, wall_millis: u64) -> Timestamp {
        let wall = Timestamp::new(wall_millis, 0);
        self.last = if wall > self.last {
            wall
        } else {
            Timestamp(self.last.0.saturating_add(1).min(MAX_TIMESTAMP))
        };
        self.last
    }

    /// Moves the clock past a timestamp seen on an event, so that the next reading sorts after it.
    pub fn observe(&mut self, seen: Timestamp) {
        if seen.is_valid() && seen > self.last {
            self.last = seen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_millis_and_counter() {
        let t = Timestamp::new(1_700_000_000_000, 7);
        assert_eq!(t.millis(), 1_700_000_000_000);
        assert_eq!(t.counter(), 7);
        assert!(t.is_valid());
    }

    #[test]
    fn never_goes_backwards_when_wall_clock_does() {
        let mut c = Clock::new();
        let a = c.tick(1000);
        let b = c.tick(900);
        let d = c.tick(900);
        assert!(a < b && b < d);
        assert_eq!(b.millis(), 1000);
    }

    #[test]
    fn moves_past_observed_timestamps() {
        let mut c = Clock::new();
        c.tick(10);
        // A board that booted at the epoch sees an event from a phone with a good clock.
        let seen = Timestamp::new(1_700_000_000_000, 3);
        c.observe(seen);
        let next = c.tick(12);
        assert!(next > seen);
    }

    #[test]
    fn ignores_invalid_observations() {
        let mut c = Clock::new();
        c.observe(Timestamp(u64::MAX));
        assert_eq!(c.last(), Timestamp(0));
    }
}
