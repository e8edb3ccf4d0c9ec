//! What a client saw of its conversation, for its closing summary and its exit status.

use std::time::Duration;

use crate::net::kernel::Account;

/// What a client saw, for its closing summary.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Messages sent.
    pub sent: u64,
    /// Replies that came in time.
    pub received: u64,
    /// Messages whose reply did not come in time.
    pub lost: u64,
    /// Of those, replies that came after all.
    pub late: u64,
    /// Lines not sent (too long, or refused by the kernel).
    pub not_sent: u64,
    /// Replies that came when no message was waiting for one (a banner, an extra line).
    pub unexpected: u64,
    /// Replies that came again to a message already answered (datagrams: the network duplicated
    /// the message or its reply). They fail nothing: every message still has its one reply.
    pub duplicates: u64,
    /// Replies in time that were not what `--expect` said they should be.
    pub wrong: u64,
    /// SIGINT or SIGTERM ended the conversation.
    pub interrupted: bool,
    /// What the kernel says of the client's socket at the end.
    pub kernel: Account,
    /// Each reply's round trip, in order.
    pub rtts: Vec<Duration>,
}

impl Summary {
    /// The exit status the conversation earns: one reply to each message, or not. A reply nobody
    /// asked for fails it too, since replies can then no longer be told apart. Interrupted, it earns
    /// success only if it got at least one reply and lost none: nothing measured is no success.
    pub fn exit_status(&self) -> u8 {
        let nothing = self.interrupted && self.received == 0;
        let wrong = self.lost + self.not_sent + self.unexpected + self.wrong > 0;
        if wrong || nothing { crate::error::exit::LOST } else { crate::error::exit::OK }
    }
}

impl Summary {
    /// Round-trip times as (min, median, max), when any reply came.
    pub fn rtt_spread(&self) -> Option<(Duration, Duration, Duration)> {
        let sorted = self.sorted_rtts();
        Some((quantile(&sorted, 0.0)?, quantile(&sorted, 0.5)?, quantile(&sorted, 1.0)?))
    }

    /// The round trip at quantile `p` (0 to 1, nearest rank), when any reply came.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        quantile(&self.sorted_rtts(), p)
    }

    fn sorted_rtts(&self) -> Vec<Duration> {
        let mut sorted = self.rtts.clone();
        sorted.sort_unstable();
        sorted
    }
}

fn quantile(sorted: &[Duration], p: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * p).round() as usize).copied()
}
