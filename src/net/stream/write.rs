//! A stream's writing half: replies queued per connection, written as the socket takes them, and
//! connections closed once what they owe is written (or their peer is gone).

use std::io::{self, Write};
use std::time::Instant;

use log::debug;
use mio::Registry;

use super::{Stream, Streams};
use crate::framing::Framing;
use crate::net::{Closed, Event, LOW_WATER, PeerId, interest};

/// What a connection's output buffer keeps once empty: enough for a few ordinary replies, so a talkative
/// peer does not allocate for each, while an idle one holds no more than this.
const KEEP_CAPACITY: usize = 4 * 1024;

impl Streams {
    pub(in crate::net) fn send(&mut self, id: PeerId, message: &[u8], _out: &mut Vec<Event>) {
        let Some(conn) = self.conns.get_mut(id) else {
            debug!("reply to a peer already gone dropped");
            return;
        };
        if self.packets {
            let line_end = if self.serving { conn.line_ends.pop() } else { conn.line_ends.latest() };
            if message.is_empty() && line_end.is_empty() {
                debug!("empty message to {} not sent: over seqpacket it would read as the end", conn.name);
                return;
            }
            conn.output.extend_from_slice(message);
            conn.output.extend_from_slice(line_end);
            conn.packets.push_back(message.len() + line_end.len());
            conn.recount(&mut self.buffered);
            return self.mark_dirty(id);
        }
        if self.framing == Framing::Raw && message.is_empty() {
            debug!("empty reply to {} not sent: a raw stream cannot carry an empty message", conn.name);
            return;
        }
        let start = conn.output.len();
        conn.output.extend_from_slice(message);
        if self.framing == Framing::Line {
            conn.output.push(b'\n');
        }
        if self.writes > 1 {
            // The first half, then the rest, each a write of its own (after what was queued before).
            let queued = start - conn.written - conn.packets.iter().sum::<usize>();
            let first = (conn.output.len() - start) / 2;
            conn.packets.extend([queued, first, conn.output.len() - start - first].into_iter().filter(|&n| n > 0));
        }
        conn.recount(&mut self.buffered);
        self.mark_dirty(id);
    }

    pub(super) fn mark_dirty(&mut self, id: PeerId) {
        if let Some(conn) = self.conns.get_mut(id)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(id);
        }
    }

    pub(in crate::net) fn flush_all(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        while let Some(id) = self.dirty.pop() {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.dirty = false;
                self.flush(registry, id, out);
            }
        }
    }

    pub(super) fn flush(&mut self, registry: &Registry, id: PeerId, out: &mut Vec<Event>) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        while conn.unwritten() > 0 {
            // A seqpacket write sends one message, whole (or nothing: WouldBlock).
            let end = conn.packets.front().map_or(conn.output.len(), |len| conn.written + len);
            match conn.sock.write(&conn.output[conn.written..end]) {
                Ok(0) => {
                    return self.close(id, Closed::Failed(io::ErrorKind::WriteZero.into()), out);
                }
                Ok(n) => {
                    conn.written += n;
                    // A stream may take part of a write: the rest of it is the next one.
                    match conn.packets.front_mut() {
                        Some(len) if *len > n => *len -= n,
                        Some(_) => drop(conn.packets.pop_front()),
                        None => {}
                    }
                    conn.last_active = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) && self.packets => {
                    // Too big for the socket's buffer: that message is not sent, the connection stays.
                    conn.written = end;
                    conn.packets.pop_front();
                    out.push(Event::NotSent { peer: id, reason: e });
                }
                Err(e) => {
                    // A peer that closed may have said why first (a full server's refusal): read
                    // what it sent before the write's error ends the connection.
                    self.read(id, out, false);
                    return self.close(id, Closed::Failed(e), out);
                }
            }
        }
        if conn.unwritten() == 0 {
            conn.output.clear();
            conn.written = 0;
            if std::mem::take(&mut conn.closing)
                && let Err(e) = conn.sock.shut_write()
            {
                return self.close(id, Closed::Failed(e), out);
            }
            if conn.output.capacity() > KEEP_CAPACITY {
                conn.output = Vec::new();
            }
            if conn.eof && !conn.held {
                return self.close(id, Closed::ByPeer, out);
            }
        } else if conn.written >= conn.unwritten() {
            // A reader that keeps up only partly never lets the buffer empty: drop what was written
            // (moving no more bytes than were written since the last time) or it grows without end.
            conn.output.drain(..conn.written);
            conn.written = 0;
        }
        conn.recount(&mut self.buffered);
        // Ask for WRITABLE only while output waits, so an idle connection costs no wake-ups.
        let wants_write = conn.unwritten() > 0;
        if wants_write != conn.wants_write {
            if let Err(e) = registry.reregister(&mut conn.sock, self.tokens.peer(id), interest(wants_write)) {
                return self.close(id, Closed::Failed(e), out);
            }
            conn.wants_write = wants_write;
        }
        if conn.paused && !self.stopped && conn.unwritten() <= LOW_WATER {
            debug!("resuming {}", conn.name);
            conn.paused = false;
            if !std::mem::replace(&mut conn.unread, true) {
                self.unread.push(id);
            }
        }
    }

    pub(super) fn close(&mut self, id: PeerId, reason: Closed, out: &mut Vec<Event>) {
        if let Some(conn) = self.conns.remove(id) {
            if let Stream::Tcp(s) = &conn.sock
                && self.kernel_account
            {
                self.account.add_tcp(s);
            }
            // Dropped without `deregister`: one system call fewer per connection. mio asks for it
            // because some systems' pollers keep state per source; epoll keeps none that closing
            // does not remove (epoll(7)), as this descriptor is the file's only one (CLOEXEC, never
            // duplicated). Were a spawned child to hold it for a moment, a late event would only
            // find another peer in the slot, which `ready` already takes as it comes.
            self.buffered -= conn.counted;
            out.push(Event::Closed { peer: id, name: conn.name, reason });
        }
    }
}
