//! A client thread's sending: each client's next messages up to its window (on schedule with
//! `--rate`), written at once where the socket takes them and kept for WRITABLE where it does not.

use std::cmp::Reverse;
use std::io;
use std::time::Instant;

use mio::{Interest, Token};

use super::Worker;
use crate::bench::codec::write_message;
use crate::bench::connect::State;
use crate::bench::window::InFlight;
use crate::config::Stop;
use crate::net::mmsg;

impl Worker<'_> {
    /// Sends what client `i` may send now: up to its window, within the run, on schedule with --rate.
    pub(super) fn refill(&mut self, i: usize, now: Instant) {
        let plan = self.plan;
        let client = &mut self.clients[i];
        // Connecting, draining or done: nothing to send, but a draining client may be done now.
        if client.state != State::Running {
            return self.settle(i);
        }
        let stream = client.sock.is_stream();
        self.outgoing.clear();
        while client.window.len() < plan.window {
            let since = match plan.interval {
                Some(every) => {
                    // Duration multiplies by a u32 only; 4 billion intervals on is past any run.
                    let due = client.first_due + every.saturating_mul(client.next_seq.min(u32::MAX as u64) as u32);
                    if due > now {
                        if !client.scheduled {
                            client.scheduled = true;
                            self.due.push(Reverse((due, i)));
                        }
                        break;
                    }
                    // Late sends keep the time they were due: the wait counts as latency.
                    due
                }
                None => now,
            };
            // Measured by when it was sent (or due), so no warm-up message is ever timed.
            let measured = since >= self.measure_start;
            // Warm-up messages do not count towards --messages; --duration ends by send time.
            let more = match (plan.stop, self.measure_end) {
                (Stop::Messages(n), _) => !measured || client.measured_sent < n,
                (Stop::Duration(_), Some(end)) => since < end,
                (Stop::Duration(_), None) => true,
            };
            if !more {
                client.state = State::Draining;
                break;
            }
            let seq = client.next_seq;
            client.next_seq += 1;
            client.measured_sent += u64::from(measured);
            client.window.push(InFlight { seq, since, measured });
            self.tally.sent += 1;
            // A stream's messages are lines; a datagram is a message, so the batch is cut by size.
            if stream {
                write_message(&mut client.out, client.id, seq, plan.size);
                client.out.push(b'\n');
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

    /// Sends datagrams of `plan.size` bytes each, keeping what the socket will not take yet.
    fn send_datagrams(&mut self, i: usize, data: &[u8]) {
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
        if client.state == State::Done {
            return;
        }
        // A short write is not an error: the rest waits for WRITABLE.
        while client.written < client.out.len() {
            match client.sock.write(&client.out[client.written..]) {
                Ok(n) => client.written += n,
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
