//! A datagram server: one socket, and a peer for every address it hears from until that peer has
//! been silent for the idle timeout. Replies go out in batches at the end of each turn.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use log::debug;
use mio::Registry;

use super::{Core, DATAGRAM_BUDGET, Dgram, Outgoing, PeerKey, Side};
use crate::error::describe;
use crate::framing::strip_line_end;
use crate::net::hash::PeerHashing;
use crate::net::kernel::Account;
use crate::net::line_ends::LineEnds;
use crate::net::mmsg::{self, Local, Senders};
use crate::net::slots::Slots;
use crate::net::socket::UnixBound;
use crate::net::{Closed, Event, PeerId, Settings};
use crate::sys;
use crate::throttle::Throttle;

struct Peer {
    key: PeerKey,
    name: String,
    /// The line ends its datagrams had, given back on the replies (as `nc -u` users expect).
    line_ends: LineEnds,
    /// The server still owes it replies: not forgotten when idle.
    held: bool,
    /// The server's own address it last wrote to, for its replies to leave from.
    local: Option<Local>,
    last_active: Instant,
}

/// The server side of a datagram socket.
pub struct DatagramServer {
    core: Core,
    senders: Senders,
    peers: Slots<Peer>,
    by_key: HashMap<PeerKey, PeerId, PeerHashing>,
    max_peers: usize,
    full_reason: String,
    full: Throttle,
    dropped: Throttle,
    /// Replies not sent (too big, or the send queue full): throttled apart, so a flood of one kind of
    /// drop never hides the other.
    unsent: Throttle,
}

impl DatagramServer {
    pub(in crate::net) fn new(settings: &Settings, sock: Dgram, unix: Option<UnixBound>) -> Self {
        let core = Core::new(settings, sock, unix);
        DatagramServer {
            senders: Senders::new(core.inbox.capacity()),
            core,
            peers: Slots::new(),
            by_key: HashMap::default(),
            max_peers: settings.max_peers,
            full_reason: settings.full_reason("peer"),
            full: Throttle::default(),
            dropped: Throttle::default(),
            unsent: Throttle::default(),
        }
    }

    pub(in crate::net) fn register(&mut self, registry: &Registry) -> io::Result<()> {
        self.core.register(registry)
    }

    pub(in crate::net) fn ready(&mut self, registry: &Registry, event: &mio::event::Event, out: &mut Vec<Event>) {
        if event.is_writable() {
            self.flush(registry, out);
        }
        if event.is_readable() || event.is_error() {
            self.read(out);
        }
    }

    fn read(&mut self, out: &mut Vec<Event>) {
        self.core.unread = false;
        let mut budget = DATAGRAM_BUDGET;
        while budget > 0 {
            if self.core.hold_back() {
                return;
            }
            let want = self.core.inbox.capacity().min(budget);
            let got = match self.core.inbox.recv(&self.core.sock, want, &mut self.senders) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // An unconnected socket's errors (a vanished peer's ICMP) never stop the server.
                    debug!("receive failed: {e}");
                    budget -= 1;
                    continue;
                }
            };
            budget -= got;
            // One clock reading per batch: idle peers are looked for a few times a second.
            let now = Instant::now();
            for i in 0..got {
                self.take(i, now, out);
            }
            // A short batch: the queue is empty (see the module's epoll contract).
            if got < want {
                return;
            }
        }
        self.core.unread = true;
    }

    /// Turns the `i`th datagram of the batch just received into a message from its sender.
    fn take(&mut self, i: usize, now: Instant, out: &mut Vec<Event>) {
        let Some(key) = self.senders.get(i) else {
            self.dropped.warn(format_args!("datagram from a socket with no address dropped: no way to reply"));
            return;
        };
        let Some(id) = self.peer_for(PeerKey(key), out) else { return };
        let Some(peer) = self.peers.get_mut(id) else { return };
        peer.last_active = now;
        if let Some(local) = self.senders.local(i) {
            peer.local = Some(local);
        }
        let Ok(datagram) = self.core.inbox.get(i) else {
            let max = self.core.max_message;
            self.dropped
                .warn(format_args!("datagram of over {max} bytes from {} dropped (--max-message {max})", peer.name));
            return;
        };
        let (body, line_end) = strip_line_end(datagram);
        peer.line_ends.push(line_end);
        out.push(Event::Message(id, self.core.pool.message(body)));
    }

    fn peer_for(&mut self, key: PeerKey, out: &mut Vec<Event>) -> Option<PeerId> {
        if let Some(&id) = self.by_key.get(&key) {
            return Some(id);
        }
        if self.peers.len() >= self.max_peers {
            self.full.warn(format_args!("{}: datagram from {key} dropped", self.full_reason));
            return None;
        }
        let id = self.peers.insert(Peer {
            name: key.to_string(),
            key: key.clone(),
            line_ends: LineEnds::default(),
            held: false,
            local: None,
            last_active: Instant::now(),
        });
        self.by_key.insert(key, id);
        out.push(Event::Connected(id));
        Some(id)
    }

    pub(in crate::net) fn send(&mut self, id: PeerId, message: &[u8], out: &mut Vec<Event>) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let line_end = peer.line_ends.pop();
        let mut datagram = self.core.outbox.buffer(message);
        datagram.extend_from_slice(line_end);
        if datagram.len() > self.core.max_message {
            // Never send more than a peer may send us: the reply cap that stops amplification.
            self.unsent.warn(format_args!(
                "reply of {} bytes to {} not sent: over --max-message {}",
                datagram.len(),
                peer.name,
                self.core.max_message
            ));
            return;
        }
        let outgoing = Outgoing { peer: id, to: Some(peer.key.0.clone()), from: peer.local, datagram };
        if !self.core.outbox.offer(outgoing) {
            self.unsent.warn(format_args!("send queue full: reply to {} dropped", peer.name));
            return;
        }
        if self.core.outbox.batch_due() {
            self.send_queued(out);
        }
    }

    /// Sends queued replies, a batch per system call, until the queue is empty or the socket full.
    fn send_queued(&mut self, out: &mut Vec<Event>) {
        // A Unix datagram server's send that would block waits on that one peer's full queue (it is
        // not reading, and did not connect to the server), or on the server's own send buffer, which
        // holds every reply its peers have not read yet (and the only limit for a peer that connected).
        // Drop that reply, as a datagram may be dropped, rather than hold every other peer's replies
        // behind peers that do not read.
        let drop_when_full = matches!(self.core.sock, Dgram::Unix(_));
        while let Some((failed, err)) = self.core.outbox.send(&self.core.sock, mmsg::BATCH, drop_when_full) {
            self.send_error(failed.peer, err, out);
        }
    }

    /// What a reply that could not be sent does to its peer.
    fn send_error(&mut self, id: PeerId, err: io::Error, out: &mut Vec<Event>) {
        if err.kind() == io::ErrorKind::WouldBlock {
            let name = self.peer_name(id).to_string();
            if sys::send_buffer_full(&self.core.sock.borrowed()) {
                self.unsent.warn(format_args!(
                    "send buffer full (peers have not read the replies it holds): reply to {name} dropped"
                ));
            } else {
                self.unsent.warn(format_args!("{name} is not reading its replies (its queue is full): reply dropped"));
            }
        } else if err.raw_os_error() == Some(libc::EMSGSIZE) {
            out.push(Event::NotSent { peer: id, reason: err });
        } else {
            // A peer that we cannot send to (its socket file gone, say) is gone.
            debug!("reply to {} failed: {}", self.peer_name(id), describe(&err));
            self.forget(id, Closed::Failed(err), out);
        }
    }

    fn forget(&mut self, id: PeerId, reason: Closed, out: &mut Vec<Event>) {
        if let Some(peer) = self.peers.remove(id) {
            self.by_key.remove(&peer.key);
            out.push(Event::Closed { peer: id, name: peer.name, reason });
        }
    }

    pub(in crate::net) fn read_unread(&mut self, _registry: &Registry, out: &mut Vec<Event>) {
        if self.core.unread {
            self.read(out);
        }
    }

    pub(in crate::net) fn tick(&mut self, _registry: &Registry, idle: Option<Duration>, out: &mut Vec<Event>) {
        let Some(idle) = idle else { return };
        let now = Instant::now();
        for id in self.peers.matching(|p| !p.held && now.duration_since(p.last_active) > idle) {
            self.forget(id, Closed::Idle, out);
        }
    }

    /// Says that `peer`'s message after the `earlier` ones it still awaits replies to gets no reply.
    pub(in crate::net) fn unanswered(&mut self, id: PeerId, earlier: usize) {
        if let Some(peer) = self.peers.get_mut(id) {
            peer.line_ends.remove(earlier);
        }
    }

    pub(in crate::net) fn hold(&mut self, id: PeerId, held: bool) {
        if let Some(peer) = self.peers.get_mut(id) {
            peer.held = held;
        }
    }

    pub(in crate::net) fn peer_name(&self, id: PeerId) -> &str {
        self.peers.get(id).map_or("(gone)", |p| p.name.as_str())
    }

    pub(in crate::net) fn peer_count(&self) -> usize {
        self.peers.len()
    }

    pub(in crate::net) fn account(&self) -> Account {
        Account { dropped: self.core.dropped(&self.senders), ..Account::default() }
    }
}

impl Side for DatagramServer {
    fn core(&self) -> &Core {
        &self.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    fn send_queued(&mut self, out: &mut Vec<Event>) {
        DatagramServer::send_queued(self, out);
    }
}
