//! What a client saw of its conversation, for its closing summary and its exit status; the client's
//! and the server's closing lines.

use std::fmt::Write as _;
use std::time::Duration;

use super::Report;
use crate::error::Result;
use crate::json::Json;
use crate::net::kernel::Account;
use crate::text::{count, grouped, millis};

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

impl Report {
    /// The client's closing line.
    pub fn client_summary(&mut self, s: &Summary) -> Result<()> {
        let spread = s.rtt_spread();
        if self.json {
            return self.event("summary", |j| {
                j.int("sent", s.sent).int("received", s.received).int("lost", s.lost).int("late", s.late);
                j.int("not_sent", s.not_sent).int("unexpected", s.unexpected).int("wrong", s.wrong);
                j.int("duplicates", s.duplicates);
                j.bool("interrupted", s.interrupted);
                kernel_json(j, &s.kernel);
                if let Some((min, median, max)) = spread {
                    j.num("rtt_min_ms", millis(min))
                        .num("rtt_median_ms", millis(median))
                        .num("rtt_max_ms", millis(max));
                }
                j
            });
        }
        let mut text = format!(
            "sent {}, received {}, lost {}, late {}",
            grouped(s.sent),
            grouped(s.received),
            grouped(s.lost),
            grouped(s.late)
        );
        if s.not_sent > 0 {
            let _ = write!(text, ", not sent {}", grouped(s.not_sent));
        }
        if s.unexpected > 0 {
            let _ = write!(text, ", unexpected {}", grouped(s.unexpected));
        }
        if s.duplicates > 0 {
            let _ = write!(text, ", duplicates {}", grouped(s.duplicates));
        }
        if s.wrong > 0 {
            let _ = write!(text, ", wrong {}", grouped(s.wrong));
        }
        if s.interrupted {
            text.push_str(", interrupted");
        }
        if let Some((min, median, max)) = spread {
            let _ = write!(
                text,
                "; round trip min {:.3} ms, median {:.3} ms, max {:.3} ms",
                millis(min),
                millis(median),
                millis(max)
            );
        }
        if !s.kernel.is_empty() {
            let _ = write!(text, "; {}", s.kernel);
        }
        self.summary_note(format_args!("{text}"))
    }

    /// The server's closing line.
    pub fn server_summary(&mut self, clients: u64, messages: u64, kernel: &Account) -> Result<()> {
        if self.json {
            return self.event("summary", |j| kernel_json(j.int("clients", clients).int("messages", messages), kernel));
        }
        let kernel = if kernel.is_empty() { String::new() } else { format!("; {kernel}") };
        self.summary_note(format_args!("served {}, {}{kernel}", count(clients, "client"), count(messages, "message")))
    }
}

/// The kernel's account as the `kernel` object of a JSON summary (left out when the kernel said nothing).
fn kernel_json<'a>(j: &'a mut Json, kernel: &Account) -> &'a mut Json {
    if kernel.is_empty() {
        return j;
    }
    j.raw("kernel", &kernel.json())
}
