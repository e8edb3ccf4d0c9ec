//! What the clients measured: counts and round-trip times per thread, merged into one per
//! transport, and the share of them published live for the progress line.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::plan::Shared;
use super::window::{Lost, Verdict};

/// What one client thread measured (or all of them, merged).
pub struct Tally {
    /// Round-trip times of measured right replies, in nanoseconds.
    pub histogram: Histogram<u64>,
    /// Measured right replies.
    pub round_trips: u64,
    /// Messages sent after the warm-up.
    pub sent: u64,
    /// Under --rate: measured messages due before the clients stopped sending.
    pub scheduled: u64,
    /// Of those, the ones not sent on time (skipped, or still unsent when the run ended).
    pub not_sent: u64,
    /// --reconnect: the connections (datagram sockets) that carried a measured message.
    pub connections: u64,
    /// Replies not come within the timeout, or awaited from a client whose socket failed.
    pub lost: u64,
    /// Of the lost, replies that came after all.
    pub late: u64,
    /// Replies that answer no message awaited, or not with its uppercased bytes.
    pub wrong: u64,
    /// Of the wrong replies (measured or not), those that were their message unchanged where its
    /// uppercase was expected.
    pub echoes: u64,
    /// What the warm-up's messages met, apart from the measured ones.
    pub warmup: Warmup,
    /// Clients whose socket failed.
    pub failed: u64,
    /// The first of those failures, in words.
    pub first_failure: Option<String>,
    /// When the measurement began, with the server thread's CPU time then.
    pub start: Option<(Instant, Option<Duration>)>,
    /// When it ended (the last client done), with the server thread's CPU time then.
    pub end: Option<(Instant, Option<Duration>)>,
    /// When the last measured right reply came: the measurement's true end, past which a client
    /// only waited for what would never come.
    pub last_reply: Option<Instant>,
    /// CPU time of the client threads while measuring.
    pub cpu: Duration,
}

/// The warm-up's counts: sent and checked like the measured messages, but kept apart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Warmup {
    /// Messages sent in the warm-up.
    pub sent: u64,
    /// Right replies to them.
    pub round_trips: u64,
    /// Their replies that did not come in time.
    pub lost: u64,
    /// Of those, the ones that came after all.
    pub late: u64,
    /// Wrong replies that came before the measurement began.
    pub wrong: u64,
}

impl Warmup {
    fn merge(&mut self, other: Warmup) {
        self.sent += other.sent;
        self.round_trips += other.round_trips;
        self.lost += other.lost;
        self.late += other.late;
        self.wrong += other.wrong;
    }
}

impl Tally {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Tally {
            // 1 ns to 1 minute, three significant digits.
            histogram: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid"),
            round_trips: 0,
            sent: 0,
            scheduled: 0,
            not_sent: 0,
            connections: 0,
            lost: 0,
            late: 0,
            wrong: 0,
            echoes: 0,
            warmup: Warmup::default(),
            failed: 0,
            first_failure: None,
            start: None,
            end: None,
            last_reply: None,
            cpu: Duration::ZERO,
        }
    }

    /// Counts a reply judged at `now`; a right one sent after the warm-up is timed.
    pub(crate) fn count(&mut self, verdict: Verdict, now: Instant) {
        match verdict {
            Verdict::Right(sent) if sent.measured => {
                self.round_trips += 1;
                let nanos = now.saturating_duration_since(sent.since).as_nanos().min(u64::MAX as u128) as u64;
                // The histogram starts at 1 ns; a clock that did not move still took a round trip.
                self.histogram.saturating_record(nanos.max(1));
                self.last_reply = Some(now);
            }
            Verdict::Right(_) => self.warmup.round_trips += 1,
            // A wrong reply answers no message for sure: it counts by when it came.
            Verdict::Wrong | Verdict::Echo => {
                self.echoes += u64::from(verdict == Verdict::Echo);
                if self.start.is_some() { self.wrong += 1 } else { self.warmup.wrong += 1 }
            }
            Verdict::Late { measured: true } => self.late += 1,
            Verdict::Late { measured: false } => self.warmup.late += 1,
        }
    }

    /// Counts a message sent now, in the warm-up or after it.
    pub(crate) fn count_sent(&mut self, measured: bool) {
        if measured { self.sent += 1 } else { self.warmup.sent += 1 }
    }

    /// Counts messages given up on.
    pub(crate) fn count_lost(&mut self, lost: Lost) {
        self.lost += lost.measured;
        self.warmup.lost += lost.warmup;
    }

    /// Every reply lost or wrong, measured or in the warm-up: any of them fails the run.
    pub fn trouble(&self) -> u64 {
        self.lost + self.wrong + self.warmup.lost + self.warmup.wrong
    }

    /// Adds another thread's tally: counts add up, the window spans both.
    pub fn merge(&mut self, other: Tally) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.histogram.add(&other.histogram);
        self.round_trips += other.round_trips;
        self.sent += other.sent;
        self.scheduled += other.scheduled;
        self.not_sent += other.not_sent;
        self.connections += other.connections;
        self.lost += other.lost;
        self.late += other.late;
        self.wrong += other.wrong;
        self.echoes += other.echoes;
        self.warmup.merge(other.warmup);
        self.failed += other.failed;
        self.first_failure = self.first_failure.take().or(other.first_failure);
        self.cpu += other.cpu;
        // The earliest start and the latest end, each with the server's CPU time read then.
        self.start = match (self.start, other.start) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        self.end = match (self.end, other.end) {
            (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        self.last_reply = self.last_reply.max(other.last_reply);
    }

    /// From the start of the measurement to the last right reply.
    pub fn elapsed(&self) -> Duration {
        match (self.start, self.last_reply) {
            (Some((start, _)), Some(last)) => last.saturating_duration_since(start),
            _ => Duration::ZERO,
        }
    }

    /// The server thread's CPU time over the measurement, when it could be read.
    pub fn server_cpu(&self) -> Option<Duration> {
        Some(self.end?.1?.saturating_sub(self.start?.1?))
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

/// The part of one thread's tally already added to the shared counters: each update adds only
/// what is new, so the hot loop never touches an atomic per reply.
#[derive(Default)]
pub(crate) struct Published {
    round_trips: u64,
    lost: u64,
    wrong: u64,
}

impl Published {
    /// Adds to `shared` what `tally` counted since the last call.
    pub(crate) fn catch_up(&mut self, tally: &Tally, shared: &Shared) {
        shared.round_trips.fetch_add(tally.round_trips - self.round_trips, Ordering::Relaxed);
        shared.lost.fetch_add(tally.lost - self.lost, Ordering::Relaxed);
        shared.wrong.fetch_add(tally.wrong - self.wrong, Ordering::Relaxed);
        *self = Published { round_trips: tally.round_trips, lost: tally.lost, wrong: tally.wrong };
    }
}

#[cfg(test)]
mod tests {
    use super::super::window::InFlight;
    use super::*;

    #[test]
    fn counting_and_merging() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut a = Tally::new();
        a.start = Some((at(10), Some(Duration::from_millis(100))));
        a.count(Verdict::Right(InFlight { seq: 0, since: at(10), measured: true }), at(12));
        a.count(Verdict::Right(InFlight { seq: 1, since: at(11), measured: false }), at(13));
        a.count(Verdict::Wrong, at(14));
        a.end = Some((at(20), Some(Duration::from_millis(150))));
        let mut b = Tally::new();
        b.start = Some((at(5), Some(Duration::from_millis(90))));
        b.count(Verdict::Late { measured: true }, at(6));
        b.count(Verdict::Right(InFlight { seq: 0, since: at(30), measured: true }), at(31));
        b.end = Some((at(40), Some(Duration::from_millis(160))));
        a.merge(b);
        assert_eq!((a.round_trips, a.wrong, a.late), (2, 1, 1), "the warm-up reply is not counted");
        // Before the measurement began: an echo is a wrong reply of the warm-up.
        let mut c = Tally::new();
        c.count(Verdict::Echo, at(1));
        c.count_lost(Lost { measured: 0, warmup: 2 });
        a.merge(c);
        assert_eq!((a.warmup.round_trips, a.warmup.wrong, a.warmup.lost, a.echoes), (1, 1, 2, 1), "kept apart");
        assert_eq!((a.wrong, a.lost, a.trouble()), (1, 0, 4));
        assert_eq!(a.histogram.len(), 2);
        assert_eq!(a.elapsed(), Duration::from_millis(26), "from the earliest start to the last reply");
        assert_eq!(a.server_cpu(), Some(Duration::from_millis(70)), "read at the earliest start and latest end");
        assert_eq!(Tally::new().elapsed(), Duration::ZERO);
        assert_eq!(Tally::new().server_cpu(), None);
    }
}
