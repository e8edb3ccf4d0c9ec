//! Datagram sockets, UDP and Unix: one message per datagram. A server answers every peer from one
//! socket ([`DatagramServer`]); a client's socket is connected to its server ([`DatagramClient`]).
//! What both do with the socket, its receive batch and its queue of datagrams to send is here.
//!
//! The epoll contract relied on: `recvmmsg` on mio's (edge-triggered) descriptor stops short only
//! at an empty queue or an error, and every datagram that arrives after raises a new edge.

mod client;
mod server;

pub use client::DatagramClient;
pub use server::DatagramServer;

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use log::{debug, warn};
use mio::net::{UdpSocket, UnixDatagram};
use mio::{Interest, Registry};
use socket2::SockAddr;

use super::mmsg::{self, Local, Senders};
use super::pool::Pool;
use super::socket::UnixBound;
use super::{Event, HIGH_WATER, LOW_WATER, PeerId, Settings, Tokens, interest};
use crate::sys;

/// On a UDP socket bound to every address (`0.0.0.0`, `::`), asks the kernel to say which address
/// each datagram came to, so that its reply leaves from that address: a client that connected its
/// socket to the server's second address takes replies from that address only. And on every
/// datagram socket, asks for the count of datagrams dropped for want of room in its buffer.
pub(super) fn ask_for_local_addresses(sock: &UdpSocket) {
    let Ok(local) = sock.local_addr() else { return };
    let on = |level, name, what: &str| {
        if let Err(e) = sys::turn_on(sock, level, name) {
            debug!("cannot ask for {what}: {e}");
        }
    };
    if local.ip().is_unspecified() {
        on(libc::IPPROTO_IP, libc::IP_PKTINFO, "IPv4 destination addresses");
        if local.is_ipv6() {
            on(libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, "IPv6 destination addresses");
        }
    }
}

/// Asks for the count of datagrams the kernel drops on `sock` because its receive buffer is full;
/// whether it will say.
pub(super) fn count_drops(sock: &impl std::os::fd::AsFd) -> bool {
    match sys::turn_on(sock, libc::SOL_SOCKET, libc::SO_RXQ_OVFL) {
        Ok(()) => true,
        Err(e) => {
            debug!("cannot count dropped datagrams: {e}");
            false
        }
    }
}

/// Datagrams read from one socket before the loop's other work gets a turn.
const DATAGRAM_BUDGET: usize = 256;
/// The most buffer space a datagram socket receives a batch into (`recvmmsg`).
const DATAGRAM_BATCH_BYTES: usize = 2 << 20;
/// The largest datagram buffer kept, whatever --max-message says (Linux's Unix datagrams stop near 200 KiB).
const DATAGRAM_CEILING: usize = 4 << 20;
/// Bytes of replies waiting to be sent past which new ones are dropped (a datagram may be).
const QUEUE_MAX: usize = 4 * HIGH_WATER;

/// A datagram socket, UDP or Unix.
pub(super) enum Dgram {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl Dgram {
    fn fd(&self) -> RawFd {
        match self {
            Dgram::Udp(s) => s.as_raw_fd(),
            Dgram::Unix(s) => s.as_raw_fd(),
        }
    }

    fn borrowed(&self) -> BorrowedFd<'_> {
        match self {
            Dgram::Udp(s) => std::os::fd::AsFd::as_fd(s),
            Dgram::Unix(s) => std::os::fd::AsFd::as_fd(s),
        }
    }

    /// Sends on a connected socket.
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Dgram::Udp(s) => s.send(buf),
            Dgram::Unix(s) => s.send(buf),
        }
    }

    fn register(&mut self, registry: &Registry, tokens: Tokens, interest: Interest) -> io::Result<()> {
        match self {
            Dgram::Udp(s) => registry.register(s, tokens.socket(), interest),
            Dgram::Unix(s) => registry.register(s, tokens.socket(), interest),
        }
    }

    fn reregister(&mut self, registry: &Registry, tokens: Tokens, interest: Interest) -> io::Result<()> {
        match self {
            Dgram::Udp(s) => registry.reregister(s, tokens.socket(), interest),
            Dgram::Unix(s) => registry.reregister(s, tokens.socket(), interest),
        }
    }

    fn deregister(&mut self, registry: &Registry) {
        let _ = match self {
            Dgram::Udp(s) => registry.deregister(s),
            Dgram::Unix(s) => registry.deregister(s),
        };
    }
}

/// A datagram peer's address, usable as a map key and as a destination.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct PeerKey(SockAddr);

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(addr) = self.0.as_socket() {
            return write!(f, "{addr}");
        }
        if let Some(path) = self.0.as_pathname() {
            return write!(f, "{}", path.display());
        }
        if let Some(name) = self.0.as_abstract_namespace() {
            return write!(f, "@{}", String::from_utf8_lossy(name));
        }
        f.write_str("(unnamed)")
    }
}

/// Room for a batch of received datagrams, `slot` bytes each, and their lengths.
struct Inbox {
    slots: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
    max_message: usize,
}

impl Inbox {
    fn new(max_message: usize) -> Inbox {
        // One byte more than allowed, so an oversized datagram shows as one that filled its slot.
        let slot = max_message.min(DATAGRAM_CEILING) + 1;
        let batch = (DATAGRAM_BATCH_BYTES / slot).clamp(1, mmsg::BATCH);
        // Zeroed pages are the kernel's until written: a batch of small datagrams costs a page each.
        Inbox { slots: vec![0; slot * batch], slot, lens: vec![0; batch], max_message }
    }

    /// Receives at most `want` datagrams, and their senders into `from`; how many came.
    fn recv(&mut self, sock: &Dgram, want: usize, from: &mut Senders) -> io::Result<usize> {
        let want = want.min(self.lens.len());
        mmsg::recv_batch(sock.fd(), &mut self.slots, self.slot, &mut self.lens[..want], from)
    }

    /// The most a call to [`Inbox::recv`] can take.
    fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// The `i`th datagram of the batch, or `Err(())` when it was over the bound (and cut short).
    fn get(&self, i: usize) -> Result<&[u8], ()> {
        let n = self.lens[i];
        if n > self.max_message || n >= self.slot {
            return Err(());
        }
        Ok(&self.slots[i * self.slot..][..n])
    }
}

/// A datagram waiting to be sent, and whom it is for.
struct Outgoing {
    peer: PeerId,
    /// None on a connected socket.
    to: Option<SockAddr>,
    /// The address it leaves from, when the socket is bound to every address.
    from: Option<Local>,
    datagram: Vec<u8>,
}

impl Outgoing {
    /// What it counts for in the queue's bound: its bytes and its bookkeeping, so that even empty
    /// datagrams fill the queue and pause reading.
    fn cost(&self) -> usize {
        self.datagram.len() + size_of::<Outgoing>()
    }
}

/// Datagrams not sent yet, oldest first: a server sends a turn's replies together, at the end of the
/// turn or as soon as a batch is full.
#[derive(Default)]
struct Outbox {
    queue: VecDeque<Outgoing>,
    bytes: usize,
    /// The buffers of datagrams sent, for the next ones: a reply then costs no allocation.
    spare: Pool,
    /// WRITABLE is asked for: the socket said it was full.
    wants_write: bool,
    /// A UDP socket's replies to one loopback peer may go as segments of one send (see
    /// [`mmsg::send_batch_from`]); off for Unix sockets, and once the kernel refuses.
    segment: bool,
}

impl Outbox {
    /// A buffer for a datagram to queue, holding `bytes` to begin with.
    fn buffer(&mut self, bytes: &[u8]) -> Vec<u8> {
        self.spare.message(bytes)
    }

    /// Queues a datagram; false (and the datagram dropped) when the queue is full.
    fn offer(&mut self, outgoing: Outgoing) -> bool {
        if self.bytes + outgoing.cost() > QUEUE_MAX {
            return false;
        }
        self.bytes += outgoing.cost();
        self.queue.push_back(outgoing);
        true
    }

    /// A full batch waits, and the socket has not said it is full: send now rather than at the turn's end.
    fn batch_due(&self) -> bool {
        !self.wants_write && (self.queue.len() >= mmsg::BATCH || self.bytes >= LOW_WATER)
    }

    /// Sends what waits, `per_call` datagrams per system call, until the queue is empty, the socket is
    /// full (`Ok`; unless `drop_when_full`), or a datagram fails: that one is taken off the queue and
    /// returned with its error, for the caller to deal with and call again.
    fn send(&mut self, sock: &Dgram, per_call: usize, drop_when_full: bool) -> Option<(Outgoing, io::Error)> {
        while !self.queue.is_empty() {
            let batch = self.queue.iter().take(per_call).map(|o| (o.datagram.as_slice(), o.to.as_ref(), o.from));
            match mmsg::send_batch_from(sock.fd(), batch, &mut self.segment) {
                Ok(sent) => {
                    for sent in self.queue.drain(..sent) {
                        self.bytes -= sent.cost();
                        self.spare.give(sent.datagram);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !drop_when_full => return None,
                Err(e) => {
                    // The first one failed: that datagram alone is given up.
                    let failed = self.queue.pop_front()?;
                    self.bytes -= failed.cost();
                    return Some((failed, e));
                }
            }
        }
        None
    }

    /// Asks for WRITABLE while datagrams wait, and stops asking once they are gone.
    fn watch(&mut self, sock: &mut Dgram, registry: &Registry, tokens: Tokens) {
        let wants_write = !self.queue.is_empty();
        if wants_write != self.wants_write {
            match sock.reregister(registry, tokens, interest(wants_write)) {
                Ok(()) => self.wants_write = wants_write,
                Err(e) => warn!("cannot watch the socket for writing: {e}"),
            }
        }
    }
}

/// What a datagram server and a client do alike with their [`Core`]; each names its core and how it
/// sends what is queued, and has the rest from here.
pub(in crate::net) trait Side {
    fn core(&self) -> &Core;
    fn core_mut(&mut self) -> &mut Core;
    /// Sends the queued datagrams, dealing with the errors the way this side does.
    fn send_queued(&mut self, out: &mut Vec<Event>);

    /// Sends what is queued and asks for WRITABLE while some is left.
    fn flush(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        self.send_queued(out);
        self.core_mut().watch(registry);
    }

    /// At the end of a turn: sends the turn's datagrams, unless the socket said it is full.
    fn flush_all(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        let outbox = &self.core().outbox;
        if !outbox.queue.is_empty() && !outbox.wants_write {
            self.flush(registry, out);
        }
    }

    fn has_unread(&self) -> bool {
        self.core().has_unread()
    }

    fn recycle(&mut self, message: Vec<u8>) {
        self.core_mut().pool.give(message);
    }

    fn stop_reading(&mut self, _registry: &Registry) {
        self.core_mut().stopped = true;
    }

    fn has_output(&self) -> bool {
        !self.core().outbox.queue.is_empty()
    }

    fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.core().local_addr()
    }

    fn local_name(&self) -> String {
        self.core().local_name()
    }
}

/// What a datagram server and client share: the socket, its buffers, and the reading state.
pub(in crate::net) struct Core {
    sock: Dgram,
    tokens: Tokens,
    /// The kernel tells of drops (with each datagram after one; none told means none).
    counts_drops: bool,
    inbox: Inbox,
    outbox: Outbox,
    pool: Pool,
    max_message: usize,
    /// Backpressure: not reading while too many replies wait to be sent.
    paused: bool,
    /// Input is known to be waiting that no readiness event will announce again.
    unread: bool,
    stopped: bool,
    unix: Option<UnixBound>,
}

impl Core {
    fn new(settings: &Settings, sock: Dgram, unix: Option<UnixBound>) -> Core {
        let counts_drops = match &sock {
            Dgram::Udp(s) => count_drops(s),
            Dgram::Unix(s) => count_drops(s),
        };
        let segment = matches!(sock, Dgram::Udp(_));
        Core {
            counts_drops,
            sock,
            tokens: settings.tokens,
            inbox: Inbox::new(settings.max_message),
            outbox: Outbox { segment, ..Outbox::default() },
            pool: Pool::default(),
            max_message: settings.max_message,
            paused: false,
            unread: false,
            stopped: false,
            unix,
        }
    }

    fn register(&mut self, registry: &Registry) -> io::Result<()> {
        self.sock.register(registry, self.tokens, Interest::READABLE)
    }

    /// After a send: WRITABLE asked for as needed, and reading resumed once the queue is short.
    fn watch(&mut self, registry: &Registry) {
        self.outbox.watch(&mut self.sock, registry, self.tokens);
        if self.paused && self.outbox.bytes <= LOW_WATER {
            self.paused = false;
            self.unread = true;
        }
    }

    /// Whether reading should stop for now, pausing when the queue is too long.
    fn hold_back(&mut self) -> bool {
        if self.outbox.bytes > HIGH_WATER {
            // Leave datagrams in the kernel (which drops what it cannot hold) until the replies
            // already owed are out.
            self.paused = true;
        }
        self.paused || self.stopped
    }

    fn has_unread(&self) -> bool {
        self.unread && !self.paused && !self.stopped
    }

    /// The kernel's count of datagrams dropped on this socket: as it is now, or else as the last
    /// batch told it.
    fn dropped(&self, senders: &Senders) -> Option<u64> {
        let now = match &self.sock {
            Dgram::Udp(s) => crate::sys::socket_drops(s),
            Dgram::Unix(s) => crate::sys::socket_drops(s),
        };
        self.counts_drops.then(|| now.unwrap_or_else(|| u64::from(senders.dropped().unwrap_or(0))))
    }

    fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.sock {
            Dgram::Udp(s) => s.local_addr().ok(),
            Dgram::Unix(_) => None,
        }
    }

    fn local_name(&self) -> String {
        match &self.sock {
            Dgram::Udp(s) => s.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            Dgram::Unix(_) => self.unix.as_ref().map_or_else(String::new, |u| u.name.clone()),
        }
    }
}
