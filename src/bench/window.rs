//! The messages one client awaits replies to, and those it gave up on: what each reply answers,
//! and whether it is right, wrong or late. Pure; the worker does the I/O and the counting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::codec::{is_reply_to, reply_seq};
use crate::config::Expect;

/// Timed-out sequence numbers remembered per client, to tell a late reply from a wrong one.
const REMEMBER_GIVEN_UP: usize = 1024;

/// A message awaiting its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Its sequence number, which its reply's tag repeats.
    pub seq: u64,
    /// When it was sent, or with --rate when it was due to be: latency counts from here, so that
    /// a client that falls behind its schedule shows it (no coordinated omission).
    pub since: Instant,
    /// Sent after the warm-up: its round trip is counted.
    pub measured: bool,
}

/// What a reply turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The uppercased message it answers, which is no longer awaited.
    Right(InFlight),
    /// Garbage, another client's reply, a second reply to one message, or a reply to a message
    /// awaited whose bytes are not that message's uppercased (it is no longer awaited either).
    Wrong,
    /// Wrong, and the message unchanged where its uppercase was expected: the server echoes.
    Echo,
    /// A reply to a message already counted lost (sent after the warm-up, or in it).
    Late {
        /// The message was sent after the warm-up.
        measured: bool,
    },
}

/// Messages given up on, by when they were sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// Sent after the warm-up.
    pub measured: u64,
    /// Sent in the warm-up.
    pub warmup: u64,
}

impl Lost {
    fn of(message: &InFlight) -> Lost {
        Lost { measured: u64::from(message.measured), warmup: u64::from(!message.measured) }
    }

    fn add(&mut self, other: Lost) {
        self.measured += other.measured;
        self.warmup += other.warmup;
    }
}

/// One client's messages in flight, oldest first, and the last few it gave up on.
#[derive(Debug, Default)]
pub struct Window {
    in_flight: VecDeque<InFlight>,
    /// Sequence numbers, and whether each was measured.
    given_up: VecDeque<(u64, bool)>,
}

impl Window {
    /// Room for `n` messages in flight before the queue grows.
    pub fn with_capacity(n: usize) -> Self {
        Window { in_flight: VecDeque::with_capacity(n), given_up: VecDeque::new() }
    }

    /// Messages awaiting replies.
    pub fn len(&self) -> usize {
        self.in_flight.len()
    }

    /// True when no reply is awaited.
    pub fn is_empty(&self) -> bool {
        self.in_flight.is_empty()
    }

    /// Awaits a reply to a message just sent. Messages are sent in order of `since`, which
    /// [`Window::expire`] relies on.
    pub fn push(&mut self, message: InFlight) {
        self.in_flight.push_back(message);
    }

    /// Judges `reply` for client `client`, whose messages are `size` bytes and answered as `expect`
    /// says; `scratch` is the caller's buffer for the message expected.
    pub fn judge(&mut self, client: u64, reply: &[u8], size: usize, scratch: &mut Vec<u8>, expect: Expect) -> Verdict {
        let Some(seq) = reply_seq(reply, client) else { return Verdict::Wrong };
        // Replies come in order on a stream and nearly always on a datagram socket too: the first
        // one is the one answered, and the search is for the rest.
        let position = match self.in_flight.front() {
            Some(first) if first.seq == seq => Some(0),
            _ => self.in_flight.iter().position(|f| f.seq == seq),
        };
        let Some(sent) = position.and_then(|p| self.in_flight.remove(p)) else {
            return match self.given_up.iter().find(|&&(given_up, _)| given_up == seq) {
                Some(&(_, measured)) => Verdict::Late { measured },
                None => Verdict::Wrong,
            };
        };
        if is_reply_to(reply, client, seq, size, scratch, expect) {
            Verdict::Right(sent)
        } else if expect == Expect::Upper && reply == scratch.as_slice() {
            Verdict::Echo
        } else {
            Verdict::Wrong
        }
    }

    /// Gives up on messages sent `timeout` or longer before `now`; returns how many.
    pub fn expire(&mut self, now: Instant, timeout: Duration) -> Lost {
        let mut expired = Lost::default();
        while let Some(first) = self.in_flight.front() {
            if now.saturating_duration_since(first.since) < timeout {
                break;
            }
            if self.given_up.len() == REMEMBER_GIVEN_UP {
                self.given_up.pop_front();
            }
            self.given_up.push_back((first.seq, first.measured));
            expired.add(Lost::of(first));
            self.in_flight.pop_front();
        }
        expired
    }

    /// Forgets every message in flight (its socket failed); returns how many.
    pub fn abandon(&mut self) -> Lost {
        let mut lost = Lost::default();
        self.in_flight.drain(..).for_each(|m| lost.add(Lost::of(&m)));
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::write_message;
    use super::*;

    const SIZE: usize = 24;

    fn reply(client: u64, seq: u64) -> Vec<u8> {
        let mut out = Vec::new();
        write_message(&mut out, client, seq, SIZE);
        out.make_ascii_uppercase();
        out
    }

    fn window(start: Instant, seqs: &[u64]) -> Window {
        let mut w = Window::with_capacity(4);
        for &seq in seqs {
            w.push(InFlight { seq, since: start + Duration::from_millis(seq), measured: true });
        }
        w
    }

    #[test]
    fn replies_in_any_order_are_right_once() {
        let (start, mut scratch) = (Instant::now(), Vec::new());
        let mut w = window(start, &[0, 1, 2]);
        let second = InFlight { seq: 1, since: start + Duration::from_millis(1), measured: true };
        assert_eq!(w.judge(5, &reply(5, 1), SIZE, &mut scratch, Expect::Upper), Verdict::Right(second));
        assert_eq!(w.judge(5, &reply(5, 1), SIZE, &mut scratch, Expect::Upper), Verdict::Wrong, "a second reply");
        assert!(matches!(w.judge(5, &reply(5, 0), SIZE, &mut scratch, Expect::Upper), Verdict::Right(m) if m.seq == 0));
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn wrong_replies() {
        let (start, mut scratch) = (Instant::now(), Vec::new());
        let mut w = window(start, &[0, 1]);
        assert_eq!(w.judge(5, &reply(6, 0), SIZE, &mut scratch, Expect::Upper), Verdict::Wrong, "another client's");
        assert_eq!(w.judge(5, &reply(5, 9), SIZE, &mut scratch, Expect::Upper), Verdict::Wrong, "never sent");
        assert_eq!(w.judge(5, b"", SIZE, &mut scratch, Expect::Upper), Verdict::Wrong);
        assert_eq!(w.len(), 2, "none of those touched the window");
        let mut lowercase = reply(5, 0);
        lowercase.make_ascii_lowercase();
        assert_eq!(w.judge(5, &lowercase, SIZE, &mut scratch, Expect::Upper), Verdict::Echo, "an echo, not uppercased");
        assert_eq!(w.len(), 1, "a wrong reply to an awaited message uses it up");
        assert_eq!(
            w.judge(5, &reply(5, 1)[..SIZE - 1], SIZE, &mut scratch, Expect::Upper),
            Verdict::Wrong,
            "cut short"
        );
        assert!(w.is_empty());
    }

    #[test]
    fn expired_messages_come_late_not_wrong() {
        let (start, mut scratch) = (Instant::now(), Vec::new());
        let mut w = window(start, &[0, 1, 2]);
        // Sent at 0, 1 and 2 ms; a 1 ms timeout at 2 ms gives up the first two only.
        let two = Lost { measured: 2, warmup: 0 };
        assert_eq!(w.expire(start + Duration::from_millis(2), Duration::from_millis(1)), two);
        assert_eq!(w.len(), 1);
        assert_eq!(w.judge(5, &reply(5, 0), SIZE, &mut scratch, Expect::Upper), Verdict::Late { measured: true });
        assert_eq!(w.judge(5, &reply(5, 1), SIZE, &mut scratch, Expect::Upper), Verdict::Late { measured: true });
        assert!(matches!(w.judge(5, &reply(5, 2), SIZE, &mut scratch, Expect::Upper), Verdict::Right(_)));
        assert_eq!(w.expire(start + Duration::from_secs(9), Duration::from_millis(1)), Lost::default());
    }

    #[test]
    fn only_the_last_given_up_are_remembered() {
        let (start, mut scratch) = (Instant::now(), Vec::new());
        let seqs: Vec<u64> = (0..REMEMBER_GIVEN_UP as u64 + 1).collect();
        let mut w = window(start, &seqs);
        assert_eq!(w.expire(start + Duration::from_secs(60), Duration::from_millis(1)).measured, seqs.len() as u64);
        assert_eq!(w.judge(5, &reply(5, 0), SIZE, &mut scratch, Expect::Upper), Verdict::Wrong, "forgotten");
        assert_eq!(w.judge(5, &reply(5, 1), SIZE, &mut scratch, Expect::Upper), Verdict::Late { measured: true });
    }

    #[test]
    fn abandoning_counts_what_was_awaited() {
        let mut w = window(Instant::now(), &[3, 4]);
        w.push(InFlight { seq: 5, since: Instant::now(), measured: false });
        assert_eq!(w.abandon(), Lost { measured: 2, warmup: 1 });
        assert!(w.is_empty());
        assert_eq!(w.abandon(), Lost::default());
    }
}
