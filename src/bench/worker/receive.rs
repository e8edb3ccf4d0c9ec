//! A client thread's receiving: draining a client's socket (stream bytes, or datagrams a batch at
//! a time) and judging every reply in it against the messages the client awaits.

use std::io;
use std::time::Instant;

use super::Worker;
use crate::bench::connect::{Client, State};
use crate::bench::window::Verdict;
use crate::net::mmsg;

impl Worker<'_> {
    /// Reads and checks every reply waiting for client `i`, then sends what its window allows.
    /// With `wait`, the first receive waits for a reply (see `Sock::wait_in_receive`); `closing`
    /// (the peer closed or the socket failed) reads until the socket says so itself.
    pub(super) fn read(&mut self, i: usize, closing: bool, wait: bool) {
        // A client that is done still takes what comes (late replies, counted): a reply left
        // unread in a Unix datagram socket holds the server's send buffer, and enough of them
        // stop a server from sending to anyone.
        if self.clients[i].state == State::Connecting {
            // --reconnect's new TCP socket: an error or a hang-up while it connects.
            return self.finish_connect(i);
        }
        let stream = self.clients[i].sock.is_stream();
        let mut now = Instant::now();
        loop {
            let n = match self.receive(i, stream, wait) {
                // On a stream, 0 bytes is the end; for datagrams `n` counts them, and an empty
                // one is just a (wrong) reply.
                Ok(0) if stream => {
                    let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection");
                    return self.fail(i, &closed);
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.fail(i, &e),
            };
            now = Instant::now();
            // A waiting read takes one turn: whatever else is queued, the next wait returns at once.
            if stream {
                self.check_stream(i, n, now);
                // A short read emptied the socket (epoll(7)): no need for a read that would block.
                if wait || (n < self.read_buf.len() && !closing) {
                    break;
                }
            } else {
                // Seqpacket: the end of the connection reads as an empty message.
                if self.clients[i].sock.is_seqpacket() && self.lens[..n].contains(&0) {
                    let closed = io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection");
                    return self.fail(i, &closed);
                }
                self.check_datagrams(i, n, now);
                // Fewer datagrams than asked for: the queue is empty.
                if wait || n < mmsg::BATCH {
                    break;
                }
            }
        }
        self.refill(i, now);
    }

    /// One receive into the read buffer: stream bytes, or datagrams (their count; lengths in `lens`).
    fn receive(&mut self, i: usize, stream: bool, wait: bool) -> io::Result<usize> {
        let sock = &mut self.clients[i].sock;
        if stream {
            sock.read(&mut self.read_buf, wait)
        } else if wait {
            // `recv_batch` never waits: a waiting receive takes one datagram, and if more are
            // queued, the next turn's wait returns at once.
            let n = sock.read(&mut self.read_buf[..self.slot], true)?;
            self.lens[0] = n;
            Ok(1)
        } else {
            mmsg::recv_batch(sock.raw_fd(), &mut self.read_buf, self.slot, &mut self.lens, &mut self.senders)
        }
    }

    /// Judges the lines in the `n` stream bytes just read, and any line they finish.
    fn check_stream(&mut self, i: usize, n: usize, now: Instant) {
        let Worker { plan, clients, tally, read_buf, expect, .. } = self;
        let Client { id, window, framer, .. } = &mut clients[i];
        let framed = framer
            .push(&read_buf[..n], |line| tally.count(window.judge(*id, line, plan.size, expect, plan.expect), now));
        // A line with no end in sight is one wrong reply; the framer has dropped it, and with
        // it the rest of this read (whose replies then count lost).
        if framed.is_err() {
            tally.count(Verdict::Wrong, now);
        }
    }

    /// Judges the `n` datagrams just received.
    fn check_datagrams(&mut self, i: usize, n: usize, now: Instant) {
        let Worker { plan, clients, tally, read_buf, lens, slot, expect, .. } = self;
        let client = &mut clients[i];
        for (j, &len) in lens[..n].iter().enumerate() {
            // Longer than its slot: longer than any right reply.
            if len > *slot {
                tally.count(Verdict::Wrong, now);
                continue;
            }
            let reply = &read_buf[j * *slot..j * *slot + len];
            tally.count(client.window.judge(client.id, reply, plan.size, expect, plan.expect), now);
        }
    }
}
