//! A client thread's sending: each client's next messages up to its window (on schedule with
//! `--rate`), written at once where the socket takes them and kept for WRITABLE where it does not.

use std::cmp::Reverse;
use std::io;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::Worker;
use crate::bench::codec::write_message;
use crate::bench::connect::State;
use crate::bench::window::InFlight;
use crate::config::Stop;
use crate::net::mmsg;

/// How late a scheduled message may be sent. A client further behind its schedule than this skips
/// ahead to the message due last, and the ones skipped count as not sent on time: a rate the machine
/// cannot keep shows as a shortfall, not as latency that grows for as long as the run lasts (nor as
/// losses, once the lag passes the reply timeout). A stall shorter than this still counts, as latency.
pub const SLACK: Duration = Duration::from_millis(10);

/// What a client is to do next.
pub(super) enum Next {
    /// Send a message, timed from `since` (now, or when it was due).
    Send { since: Instant, measured: bool },
    /// Its next message is due later; it is in the thread's schedule.
    Later,
    /// Send no more: the run is over for it.
    Stop,
}

impl Worker<'_> {
    /// Sends what client `i` may send now: up to its window, within the run, on schedule with --rate.
    pub(super) fn refill(&mut self, i: usize, now: Instant) {
        let plan = self.plan;
        if plan.reconnect {
            return self.refill_reconnect(i, now);
        }
        // Connecting, draining or done: nothing to send, but a draining client may be done now.
        if self.clients[i].state != State::Running {
            return self.settle(i);
        }
        let stream = self.clients[i].sock.is_stream();
        self.outgoing.clear();
        while self.clients[i].window.len() < plan.window {
            let (since, measured) = match self.next(i, now) {
                Next::Send { since, measured } => (since, measured),
                Next::Later => break,
                Next::Stop => {
                    self.stop_sending(i, now);
                    break;
                }
            };
            let client = &mut self.clients[i];
            let seq = client.next_seq;
            client.next_seq += 1;
            client.measured_sent += u64::from(measured);
            client.window.push(InFlight { seq, since, measured });
            self.tally.count_sent(measured);
            // A stream's messages are lines; a datagram is a message, so the batch is cut by size.
            if stream {
                client.queue_line(seq, plan.size, plan.writes);
            } else {
                write_message(&mut self.outgoing, client.id, seq, plan.size);
            }
        }
        // All of one refill in one system call where the socket takes it.
        if stream {
            self.flush(i);
        } else if !self.outgoing.is_empty() {
            // Taken out and put back: it is borrowed while `send_datagrams` needs `self`.
            let outgoing = std::mem::take(&mut self.outgoing);
            self.send_datagrams(i, &outgoing);
            self.outgoing = outgoing;
        }
        self.settle(i);
    }

    /// Whether client `i` sends a message now, and timed from when; under --rate, skips ahead past
    /// messages more than [`SLACK`] overdue.
    pub(super) fn next(&mut self, i: usize, now: Instant) -> Next {
        let plan = self.plan;
        let client = &mut self.clients[i];
        // --duration ends by the clock: what was not sent by then is not sent.
        if self.measure_end.is_some_and(|end| now >= end) {
            return Next::Stop;
        }
        let since = match client.schedule {
            Some(schedule) => {
                let mut due = schedule.due(client.next_seq);
                // Past the end of the run: not part of the schedule.
                if self.measure_end.is_some_and(|end| due >= end) {
                    return Next::Stop;
                }
                if due > now {
                    if !client.scheduled {
                        client.scheduled = true;
                        self.due.push(Reverse((due, i)));
                    }
                    return Next::Later;
                }
                if now.duration_since(due) > SLACK
                    && let Some(last) = schedule.last_due_by(now)
                {
                    client.next_seq = last;
                    due = schedule.due(last);
                }
                // Late sends keep the time they were due: the wait counts as latency.
                due
            }
            None => now,
        };
        // Measured by when it was sent (or due), so no warm-up message is ever timed.
        let measured = since >= self.measure_start;
        // Warm-up messages do not count towards --messages; under --rate, skipped ones do.
        if let Stop::Messages(n) = plan.stop {
            let taken = match client.schedule {
                Some(_) => client.next_seq.saturating_sub(client.first_measured),
                None => client.measured_sent,
            };
            if measured && taken >= n {
                return Next::Stop;
            }
        }
        Next::Send { since, measured }
    }

    /// Client `i` sends no more and waits for the replies it is owed.
    pub(super) fn stop_sending(&mut self, i: usize, now: Instant) {
        self.account_schedule(i, now);
        let client = &mut self.clients[i];
        client.state = State::Draining;
        client.pending = None;
    }

    /// Under --rate, counts client `i`'s measured messages due before it stopped sending (at `now`,
    /// or the end of the run), and those of them it did not send.
    pub(super) fn account_schedule(&mut self, i: usize, now: Instant) {
        let client = &self.clients[i];
        let Some(schedule) = client.schedule else { return };
        let until = self.measure_end.map_or(now, |end| now.min(end));
        let mut due = schedule.first_due_from(until).saturating_sub(client.first_measured);
        if let Stop::Messages(n) = self.plan.stop {
            due = due.min(n);
        }
        self.tally.scheduled += due;
        self.tally.not_sent += due.saturating_sub(client.measured_sent);
    }

    /// Sends datagrams of `plan.size` bytes each, keeping what the socket will not take yet.
    pub(super) fn send_datagrams(&mut self, i: usize, data: &[u8]) {
        let size = self.plan.size;
        let client = &mut self.clients[i];
        let mut rest = data;
        // Datagrams held back go first: sending new ones past them would reorder the messages.
        if client.backlog.is_empty() {
            while !rest.is_empty() {
                // Several datagrams: one sendmmsg. One: a plain send, the shorter path.
                let sent = if rest.len() > size {
                    mmsg::send_batch(client.sock.raw_fd(), rest.chunks_exact(size).map(|datagram| (datagram, None)))
                } else {
                    client.sock.write(rest).map(|_| 1)
                };
                match sent {
                    Ok(n) => rest = &rest[n * size..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return self.fail(i, &e),
                }
            }
        }
        // Held one by one, as the socket will take them: a datagram is never split or merged.
        client.backlog.extend(rest.chunks(size).map(<[u8]>::to_vec));
        self.want_write(i);
    }

    /// Writes what waits for client `i`: stream bytes or datagrams held back.
    pub(super) fn flush(&mut self, i: usize) {
        let client = &mut self.clients[i];
        match client.state {
            State::Done => return,
            // --reconnect's new TCP socket: writable means connected (or failed).
            State::Connecting => return self.finish_connect(i),
            State::Running | State::Draining => {}
        }
        // A short write is not an error: the rest waits for WRITABLE.
        while client.written < client.out.len() {
            let end = client.writes.front().map_or(client.out.len(), |len| client.written + len);
            match client.sock.write(&client.out[client.written..end]) {
                Ok(n) => {
                    client.written += n;
                    // A stream may take part of a write: the rest of it is the next one.
                    match client.writes.front_mut() {
                        Some(len) if *len > n => *len -= n,
                        Some(_) => drop(client.writes.pop_front()),
                        None => {}
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, &e),
            }
        }
        // All written: start the buffer over rather than let it grow by what was already sent.
        if client.written == client.out.len() {
            client.out.clear();
            client.written = 0;
        }
        while let Some(datagram) = client.backlog.front() {
            match client.sock.write(datagram) {
                Ok(_) => drop(client.backlog.pop_front()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, &e),
            }
        }
        self.want_write(i);
        self.settle(i);
    }

    /// Asks for WRITABLE only while output waits, so a client that keeps up costs no extra wake-ups.
    fn want_write(&mut self, i: usize) {
        let client = &mut self.clients[i];
        let wants = client.unwritten();
        if wants == client.wants_write || client.state == State::Done {
            return;
        }
        let interest = if wants { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        match self.poll.registry().reregister(client.sock.source(), Token(i), interest) {
            Ok(()) => client.wants_write = wants,
            Err(e) => self.fail(i, &e),
        }
    }
}
