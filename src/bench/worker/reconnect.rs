//! A client thread under `--reconnect` (netperf's TCP_CRR): every message on a connection of its
//! own, over UDP and Unix datagrams a socket of its own. Connect, send the one message, read its
//! reply, close, repeat; the message is timed from when its connect began (or was due, with
//! `--rate`), so its latency includes the connect. Without `--reconnect` none of this runs.

use std::io;
use std::time::{Duration, Instant};

use mio::{Interest, Token};

use super::Worker;
use super::send::Next;
use crate::bench::codec::write_message;
use crate::bench::connect::{State, finished, timed_out};
use crate::bench::sockets::Sock;
use crate::bench::window::InFlight;

/// How soon a connect that found a Unix listener's backlog full is tried again: no event says
/// when the backlog has room.
const BACKLOG_RETRY: Duration = Duration::from_millis(1);

/// What opening a client's next socket came to.
enum Opened {
    /// Connected: the message can go now.
    Ready,
    /// A TCP connect under way, or a full backlog to try again: the message waits.
    Later,
    /// The client failed.
    Failed,
}

impl Worker<'_> {
    /// Sends client `i`'s next message on a new socket, once its reply to the last is in (or
    /// given up on), within the run and on schedule with --rate.
    pub(super) fn refill_reconnect(&mut self, i: usize, now: Instant) {
        let client = &mut self.clients[i];
        if client.state != State::Running || !client.window.is_empty() {
            return self.settle(i);
        }
        let slot = match client.pending.take() {
            Some(slot) => slot,
            None => match self.next(i, now) {
                Next::Send { since, measured } => {
                    self.clients[i].connect_started = now;
                    (since, measured)
                }
                Next::Later => return,
                Next::Stop => {
                    self.stop_sending(i, now);
                    return self.settle(i);
                }
            },
        };
        if self.clients[i].used {
            match self.reopen(i, slot, now) {
                Opened::Ready => {}
                Opened::Later | Opened::Failed => return,
            }
        }
        self.send_one(i, slot, now);
    }

    /// Replaces client `i`'s socket by a new one; the old one closes here (a TCP client closes
    /// first, so the TIME_WAIT is this side's, as in TCP_CRR).
    fn reopen(&mut self, i: usize, slot: (Instant, bool), now: Instant) -> Opened {
        let plan = self.plan;
        let client = &mut self.clients[i];
        let (mut sock, ready) = match Sock::open_nth(plan, client.id, client.opened + 1) {
            Ok(opened) => opened,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if now.saturating_duration_since(client.connect_started) >= plan.connect_timeout {
                    self.fail(i, &timed_out(plan.connect_timeout));
                    return Opened::Failed;
                }
                client.pending = Some(slot);
                if !client.scheduled {
                    client.scheduled = true;
                    self.due.push(std::cmp::Reverse((now + BACKLOG_RETRY, i)));
                }
                return Opened::Later;
            }
            Err(e) => {
                self.fail(i, &e);
                return Opened::Failed;
            }
        };
        let interest = if ready { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
        if let Err(e) = self.poll.registry().register(sock.source(), Token(i), interest) {
            self.fail(i, &e);
            return Opened::Failed;
        }
        let mut old = std::mem::replace(&mut client.sock, sock);
        let _ = self.poll.registry().deregister(old.source());
        drop(old);
        client.opened += 1;
        client.used = false;
        client.wants_write = !ready;
        // Nothing of the old connection carries over: a line it left unfinished, output not taken.
        let _ = client.framer.finish();
        client.out.clear();
        client.written = 0;
        client.writes.clear();
        client.backlog.clear();
        if ready {
            return Opened::Ready;
        }
        client.state = State::Connecting;
        client.pending = Some(slot);
        Opened::Later
    }

    /// A readiness event for client `i` while its new TCP socket connects: sends the message that
    /// waited for it, or fails the client with the reason the connect failed.
    pub(super) fn finish_connect(&mut self, i: usize) {
        let Some(stream) = self.clients[i].sock.as_tcp() else { return };
        match finished(stream) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return self.fail(i, &e),
        }
        // TCP_NODELAY only for --writes 2: one write per connection Nagle never holds back (nothing
        // before it is unacknowledged), and a system call fewer per connection.
        if self.plan.nodelay && self.plan.writes > 1 {
            let _ = stream.set_nodelay(true);
        }
        let client = &mut self.clients[i];
        client.state = State::Running;
        let Some(slot) = client.pending.take() else { return self.refill_reconnect(i, Instant::now()) };
        self.send_one(i, slot, Instant::now());
    }

    /// Sends client `i`'s message on the socket just opened for it.
    fn send_one(&mut self, i: usize, (since, measured): (Instant, bool), now: Instant) {
        let plan = self.plan;
        let client = &mut self.clients[i];
        let seq = client.next_seq;
        client.next_seq += 1;
        client.measured_sent += u64::from(measured);
        client.handshake = now.saturating_duration_since(since);
        client.window.push(InFlight { seq, since, measured });
        client.used = true;
        self.tally.count_sent(measured);
        self.tally.connections += u64::from(measured);
        if client.sock.is_stream() {
            client.queue_line(seq, plan.size, plan.writes);
            self.flush(i);
        } else {
            let mut outgoing = std::mem::take(&mut self.outgoing);
            outgoing.clear();
            write_message(&mut outgoing, client.id, seq, plan.size);
            self.send_datagrams(i, &outgoing);
            self.outgoing = outgoing;
        }
        self.settle(i);
    }

    /// Fails the clients whose connect has taken longer than --connect-timeout.
    pub(super) fn expire_connects(&mut self, now: Instant) {
        let limit = self.plan.connect_timeout;
        for i in 0..self.clients.len() {
            let client = &self.clients[i];
            if client.state == State::Connecting && now.saturating_duration_since(client.connect_started) >= limit {
                self.fail(i, &timed_out(limit));
            }
        }
    }
}
