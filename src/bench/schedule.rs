//! One client's open-loop schedule under `--rate`: when each of its messages is due, and which
//! message is due at a given time. Pure; the worker decides what to send and when to skip ahead.

use std::time::{Duration, Instant};

/// Due times are kept within this of the first: past any run (`--duration` and `--warmup` are at
/// most 30 days each), and far from the end of `Instant`'s range.
const HORIZON: Duration = Duration::from_secs(1000 * 86_400);

/// Message `seq` is due at `first + seq × every`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    first: Instant,
    /// Nanoseconds between two messages, at least 1 (`cli` refuses rates that would need less).
    every: u128,
}

impl Schedule {
    /// Message 0 due at `first`, one more every `every`.
    pub fn new(first: Instant, every: Duration) -> Schedule {
        Schedule { first, every: every.as_nanos().max(1) }
    }

    /// When message `seq` is due.
    pub fn due(&self, seq: u64) -> Instant {
        let nanos = self.every.saturating_mul(u128::from(seq));
        let offset = if nanos >= HORIZON.as_nanos() { HORIZON } else { Duration::from_nanos(nanos as u64) };
        self.first + offset
    }

    /// The first message due at `t` or later: as many messages are due before `t`.
    pub fn first_due_from(&self, t: Instant) -> u64 {
        let since = t.saturating_duration_since(self.first).as_nanos();
        since.div_ceil(self.every).min(u128::from(u64::MAX)) as u64
    }

    /// The last message due at `t` or earlier; `None` before the first is due.
    pub fn last_due_by(&self, t: Instant) -> Option<u64> {
        let since = t.checked_duration_since(self.first)?.as_nanos();
        Some((since / self.every).min(u128::from(u64::MAX)) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn due_times_step_by_the_interval() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 2 * MS);
        assert_eq!(s.due(0), t0);
        assert_eq!(s.due(3), t0 + 6 * MS);
        assert_eq!(s.due(u64::MAX), t0 + HORIZON, "kept within the horizon, no overflow");
    }

    #[test]
    fn which_message_is_due_when() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, 2 * MS);
        assert_eq!(s.first_due_from(t0), 0);
        assert_eq!(s.first_due_from(t0 + MS), 1, "message 0 was due before, message 1 is next");
        assert_eq!(s.first_due_from(t0 + 2 * MS), 1, "due exactly then");
        assert_eq!(s.first_due_from(t0 + 5 * MS), 3);
        assert_eq!(s.first_due_from(t0 - MS), 0, "before the first");
        assert_eq!(s.last_due_by(t0 - MS), None);
        assert_eq!(s.last_due_by(t0), Some(0));
        assert_eq!(s.last_due_by(t0 + 5 * MS), Some(2));
        assert_eq!(s.last_due_by(t0 + 6 * MS), Some(3));
        for seq in [0, 1, 7, 1000] {
            assert_eq!(s.first_due_from(s.due(seq)), seq);
            assert_eq!(s.last_due_by(s.due(seq)), Some(seq));
        }
    }

    #[test]
    fn the_shortest_interval_is_a_nanosecond() {
        let t0 = Instant::now();
        let s = Schedule::new(t0, Duration::ZERO);
        assert_eq!(s.due(5), t0 + Duration::from_nanos(5));
        assert_eq!(s.first_due_from(t0 + MS), 1_000_000);
    }
}
