//! Stream sockets, TCP and Unix: a listener and its connections (server) or one connection (client),
//! each cut into messages by the framing, with output buffered until the socket takes it.
//!
//! The epoll contract relied on (edge-triggered, as mio registers): a read shorter than the buffer,
//! on an event that reported no close or error, has emptied the socket, so the read that would only
//! say WouldBlock is skipped; anything arriving later raises a new edge.

mod accept;
mod conn;
mod write;

pub(super) use conn::{Listener, Stream};

use std::io::{self, Read};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::{Interest, Registry};

use super::kernel::Account;
use super::pool::Pool;
use super::slots::Slots;
use super::socket::{UnixBound, spare_file};
use super::{Closed, Event, HIGH_WATER, PeerId, Settings, Tokens};
use crate::framing::{Framing, strip_line_end};
use crate::proto::Proto;
use crate::text::count;
use crate::throttle::Throttle;
use conn::Conn;

/// Bytes read from one connection before others get a turn.
const READ_BUDGET: usize = 256 * 1024;
/// Over `--max-buffered`, a peer holding more than this is not read from, and others are read this
/// much at a time: all together then grow by at most twice this per peer.
const SMALL_HOLDING: usize = 4 * 1024;
/// The largest seqpacket message buffer kept, whatever --max-message says (a Unix socket's send
/// buffer, about 200 KiB by default, stops one long before).
const PACKET_CEILING: usize = 4 << 20;

/// The stream side: a listener and its connections (server), or one connection (client).
pub struct Streams {
    listener: Option<Listener>,
    conns: Slots<Conn>,
    framing: Framing,
    /// Seqpacket: each read is one whole message and each message one write, with no framing.
    packets: bool,
    /// A server's side (it has had a listener), not a client's.
    serving: bool,
    /// TCP_NODELAY on each TCP connection.
    nodelay: bool,
    /// Write calls per message on a byte stream (2: its first half, then the rest).
    writes: usize,
    /// TCP_INFO of each connection as it closes, for the account (see `Settings::kernel_account`).
    kernel_account: bool,
    max_message: usize,
    max_peers: usize,
    tokens: Tokens,
    /// What the log says of a peer turned away, and what that peer is told.
    full_reason: String,
    turned_away: String,
    scratch: Vec<u8>,
    pool: Pool,
    dirty: Vec<PeerId>,
    unread: Vec<PeerId>,
    accept_paused: bool,
    /// Shutting down: no more reading, from anyone, whatever backpressure would allow.
    stopped: bool,
    accepted: u64,
    /// What all connections hold together (see [`Conn::holding`]), and the most they may.
    buffered: usize,
    max_buffered: usize,
    /// What the kernel said of the TCP connections closed so far.
    account: Account,
    /// Connections not read from until `buffered` is back under three quarters of the bound.
    over_budget: Vec<PeerId>,
    /// A descriptor held only to be given up when accept runs out of them (see `turn_away_one`).
    spare: Option<std::fs::File>,
    unix: Option<UnixBound>,
    full: Throttle,
}

impl Streams {
    pub(super) fn new(settings: &Settings, listener: Option<Listener>, unix: Option<UnixBound>) -> Self {
        let packets = settings.proto == Proto::Seqpacket;
        let read_size = match settings.framing {
            // One byte more than allowed, so that a message over the bound shows as one.
            _ if packets => settings.max_message.min(PACKET_CEILING) + 1,
            Framing::Line => 64 * 1024,
            Framing::Raw => settings.max_message.min(64 * 1024),
        };
        Streams {
            spare: listener.as_ref().and_then(|_| spare_file()),
            serving: listener.is_some(),
            listener,
            conns: Slots::new(),
            framing: settings.framing,
            packets,
            nodelay: settings.nodelay,
            writes: settings.writes,
            kernel_account: settings.kernel_account,
            max_message: settings.max_message,
            max_peers: settings.max_peers,
            tokens: settings.tokens,
            full_reason: settings.full_reason("client"),
            turned_away: if settings.once {
                "netpair: server full (it serves one client: --once); try again later\n".into()
            } else {
                format!("netpair: server full ({}); try again later\n", count(settings.max_peers as u64, "client"))
            },
            scratch: vec![0; read_size],
            pool: Pool::default(),
            dirty: Vec::new(),
            unread: Vec::new(),
            accept_paused: false,
            stopped: false,
            accepted: 0,
            buffered: 0,
            max_buffered: settings.max_buffered,
            over_budget: Vec::new(),
            account: Account::default(),
            unix,
            full: Throttle::default(),
        }
    }

    pub(super) fn client(settings: &Settings, sock: Stream, name: String) -> Self {
        sock.set_nodelay(settings.nodelay);
        let mut side = Streams::new(settings, None, None);
        side.conns.insert(Conn::new(sock, name, settings.max_message));
        side
    }

    pub(super) fn register(&mut self, registry: &Registry) -> io::Result<()> {
        match &mut self.listener {
            Some(Listener::Tcp(l)) => registry.register(l, self.tokens.socket(), Interest::READABLE)?,
            Some(Listener::Unix(l)) => registry.register(l, self.tokens.socket(), Interest::READABLE)?,
            None => {}
        }
        for id in self.conns.ids() {
            if let Some(conn) = self.conns.get_mut(id) {
                registry.register(&mut conn.sock, self.tokens.peer(id), Interest::READABLE)?;
            }
        }
        Ok(())
    }

    pub(super) fn ready(&mut self, registry: &Registry, event: &mio::event::Event, out: &mut Vec<Event>) {
        let Some(slot) = Tokens::slot(event.token()) else {
            self.accept(registry, out);
            return;
        };
        // A late event for a slot whose peer is gone (or replaced) finds nothing, or the new peer,
        // whose readiness it then really is.
        let Some(id) = self.conns.at(slot) else { return };
        if event.is_writable() {
            self.flush(registry, id, out);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read(id, out, !(event.is_read_closed() || event.is_error()));
        }
        // Held for replies owed (`--reply stdin`) after its input ended, and now closed both ways
        // (a Unix peer gone, not one that only half-closed): nothing owed can reach it any more.
        if event.is_write_closed() && self.conns.get(id).is_some_and(|c| c.eof && c.held) {
            self.close(id, Closed::ByPeer, out);
        }
    }

    /// Reads what `id` sent. `short_read_drains`: the readiness event said nothing of a close or an
    /// error, so a read shorter than the buffer has emptied the socket (epoll(7)) and the read that
    /// would only say WouldBlock can be skipped: one system call fewer per message.
    fn read(&mut self, id: PeerId, out: &mut Vec<Event>, short_read_drains: bool) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.paused || conn.over_budget || conn.eof || self.stopped {
            return;
        }
        let mut budget = READ_BUDGET;
        let mut failed = None;
        loop {
            // (Not a client's: what it reads is what lets its server read what it sends. Were it
            // to stop too, each would wait for the other for ever.)
            if self.serving && conn.unwritten() > HIGH_WATER {
                // Backpressure: this peer is not reading its replies, so stop reading its messages.
                debug!("pausing {}: {} bytes of replies unread", conn.name, conn.unwritten());
                conn.paused = true;
                break;
            }
            if budget == 0 {
                if !std::mem::replace(&mut conn.unread, true) {
                    self.unread.push(id);
                }
                break;
            }
            // Over the bound for all peers: those holding the most wait, the rest go a little at a time.
            let over = self.buffered > self.max_buffered;
            if over && conn.holding() > SMALL_HOLDING {
                debug!("not reading from {} ({} bytes held) while over --max-buffered", conn.name, conn.holding());
                conn.over_budget = true;
                self.over_budget.push(id);
                break;
            }
            let room = if over { SMALL_HOLDING } else { self.scratch.len() };
            // A message is read whole or not at all: a seqpacket read is never cut to `room`.
            let read = if self.packets {
                conn.sock.recv_packet(&mut self.scratch)
            } else {
                conn.sock.read(&mut self.scratch[..room]).map(|n| (n, n))
            };
            let (n, whole) = match read {
                // On seqpacket too: an empty message cannot be told from the end (netpair sends none).
                Ok((0, 0)) => {
                    conn.eof = true;
                    break;
                }
                Ok(read) => read,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(Closed::Failed(e));
                    break;
                }
            };
            budget = budget.saturating_sub(n);
            conn.last_active = Instant::now();
            let drained = short_read_drains && n < room;
            let data = &self.scratch[..n];
            match self.framing {
                _ if self.packets => {
                    if whole > self.max_message {
                        warn!(
                            "{} sent a message of {} bytes, over --max-message {}; closing it",
                            conn.name, whole, self.max_message
                        );
                        failed = Some(Closed::TooLong);
                        break;
                    }
                    // As over unixgram: a line end is no part of the message, and its reply gets it back.
                    let (body, line_end) = strip_line_end(data);
                    if self.serving {
                        conn.line_ends.push(line_end)
                    } else {
                        conn.line_ends.seen(line_end)
                    }
                    out.push(Event::Message(id, self.pool.message(body)));
                    conn.recount(&mut self.buffered);
                    // One message per read: only WouldBlock says the socket is empty.
                    continue;
                }
                Framing::Raw => out.push(Event::Message(id, self.pool.message(data))),
                Framing::Line => {
                    let pool = &mut self.pool;
                    let pushed = conn.framer.push(data, |line| out.push(Event::Message(id, pool.message(line))));
                    if let Err(too_long) = pushed {
                        warn!(
                            "{} sent a line of {}+ bytes, over --max-message {}; closing it",
                            conn.name, too_long.seen, self.max_message
                        );
                        failed = Some(Closed::TooLong);
                        break;
                    }
                }
            }
            conn.recount(&mut self.buffered);
            if drained {
                break;
            }
        }
        if let Some(reason) = failed {
            self.close(id, reason, out);
            return;
        }
        if conn.eof {
            if let Some(rest) = conn.framer.finish() {
                out.push(Event::Message(id, rest));
            }
            out.push(Event::InputEnded(id));
            // Closed once every reply owed has been written (see flush).
            self.mark_dirty(id);
        }
    }

    pub(super) fn read_unread(&mut self, _registry: &Registry, out: &mut Vec<Event>) {
        for id in std::mem::take(&mut self.unread) {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.unread = false;
                self.read(id, out, false);
            }
        }
    }

    /// Reads again from the connections left unread over `--max-buffered`, once all peers together
    /// hold less than three quarters of it.
    fn resume_under_budget(&mut self) {
        if self.over_budget.is_empty() || self.buffered > self.max_buffered / 4 * 3 {
            return;
        }
        debug!("under --max-buffered again ({} bytes held): reading from everyone", self.buffered);
        for id in std::mem::take(&mut self.over_budget) {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.over_budget = false;
                if !std::mem::replace(&mut conn.unread, true) {
                    self.unread.push(id);
                }
            }
        }
    }

    pub(super) fn has_unread(&self) -> bool {
        !self.unread.is_empty()
    }

    pub(super) fn tick(&mut self, registry: &Registry, idle: Option<Duration>, out: &mut Vec<Event>) {
        if std::mem::take(&mut self.accept_paused) {
            self.accept(registry, out);
        }
        self.resume_under_budget();
        let Some(idle) = idle else { return };
        let now = Instant::now();
        // Idle: nothing read from it and nothing written to it (a peer that stopped reading too).
        for id in self.conns.matching(|c| !c.held && now.duration_since(c.last_active) > idle) {
            self.close(id, Closed::Idle, out);
        }
    }

    pub(super) fn stop_reading(&mut self, registry: &Registry) {
        match self.listener.take() {
            Some(Listener::Tcp(mut l)) => drop(registry.deregister(&mut l)),
            Some(Listener::Unix(mut l)) => drop(registry.deregister(&mut l)),
            None => {}
        }
        self.stopped = true;
        self.unread.clear();
    }

    pub(super) fn has_output(&self) -> bool {
        self.conns.iter().any(|(_, c)| c.unwritten() > 0 || c.sock.unacked() > 0)
    }

    /// A client's connection: its sending side is shut once its output is written.
    pub(super) fn half_close(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        for id in self.conns.ids() {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.closing = true;
                self.flush(registry, id, out);
            }
        }
    }

    /// A client's connection: SO_LINGER 0, so that closing it resets it.
    pub(super) fn reset_on_close(&self) -> io::Result<()> {
        self.conns.iter().try_for_each(|(_, conn)| conn.sock.linger_zero())
    }

    /// TCP_NODELAY on `id`'s connection, as the kernel has it (TCP only).
    pub(super) fn nodelay(&self, id: PeerId) -> Option<bool> {
        self.conns.get(id).and_then(|c| c.sock.nodelay())
    }

    pub(super) fn peer_name(&self, id: PeerId) -> &str {
        self.conns.get(id).map_or("(gone)", |c| c.name.as_str())
    }

    pub(super) fn unfinished(&self, id: PeerId) -> usize {
        self.conns.get(id).map_or(0, |c| c.framer.pending())
    }

    pub(super) fn peer_count(&self) -> usize {
        self.conns.len()
    }

    pub(super) fn local_name(&self) -> String {
        match &self.listener {
            Some(Listener::Tcp(l)) => l.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            Some(Listener::Unix(_)) => self.unix.as_ref().map_or_else(String::new, |u| u.name.clone()),
            None => String::new(),
        }
    }

    pub(super) fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.listener {
            Some(Listener::Tcp(l)) => l.local_addr().ok(),
            _ => None,
        }
    }

    /// The kernel's account of the connections closed so far and of those still open.
    pub(super) fn account(&self) -> Account {
        let mut account = self.account.clone();
        for (_, conn) in self.conns.iter() {
            if let Stream::Tcp(s) = &conn.sock {
                account.add_tcp(s);
            }
        }
        account
    }

    /// Keeps a connection past the end of its input and idle timeouts while replies are owed to it.
    pub(super) fn hold(&mut self, id: PeerId, held: bool) {
        if let Some(conn) = self.conns.get_mut(id) {
            conn.held = held;
            // A peer whose input ended is closed once released and written to (see flush).
            self.mark_dirty(id);
        }
    }

    /// Seqpacket: `id`'s message after the `earlier` ones still owed replies gets none, so its line
    /// end is not given to the next reply.
    pub(super) fn unanswered(&mut self, id: PeerId, earlier: usize) {
        if let Some(conn) = self.conns.get_mut(id)
            && self.packets
        {
            conn.line_ends.remove(earlier);
        }
    }

    /// Takes back a handled message's buffer.
    pub(super) fn recycle(&mut self, message: Vec<u8>) {
        self.pool.give(message);
    }
}
