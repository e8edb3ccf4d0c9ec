//! A datagram client: a socket connected to its server, so that the kernel keeps other senders'
//! datagrams out and reports the server's ICMP refusal as an error on the next call. Its one peer is
//! the server ([`crate::net::Transport::server`]).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use log::{debug, info};
use mio::Registry;

use super::{Core, Dgram, Outgoing, Side};
use crate::framing::strip_line_end;
use crate::net::kernel::Account;
use crate::net::line_ends::LineEnds;
use crate::net::mmsg::Senders;
use crate::net::socket::{UnixBound, udp_connected};
use crate::net::{Closed, Event, PeerId, Settings, Transport};
use crate::throttle::Throttle;

/// The client side of a datagram socket.
pub struct DatagramClient {
    core: Core,
    server_name: String,
    /// The server went away (its socket refused, its file gone): nothing more is sent or read.
    gone: bool,
    /// The latest line end the server's replies had: the client's datagrams end the same way.
    line_ends: LineEnds,
    /// Addresses still to try, last first, while the server has not answered yet; the last datagram
    /// sent, to send again there; and whether the server has answered (then it is never left).
    fallback: Vec<SocketAddr>,
    last_sent: Vec<u8>,
    heard_back: bool,
    unsent: Throttle,
    /// Room for what the kernel says of each datagram: the drop count.
    senders: Senders,
    /// ICMP errors taken from the socket's error queue.
    account: Account,
}

impl DatagramClient {
    /// A client on `sock`, connected to the server named `server_name`; `own_file` is the path the
    /// socket is bound to, removed with it.
    pub(in crate::net) fn new(settings: &Settings, sock: Dgram, server_name: String, own: Option<UnixBound>) -> Self {
        if let Dgram::Udp(udp) = &sock {
            // ICMP errors queued with their sender, so that a refusal says who refused.
            let v6 = udp.local_addr().is_ok_and(|a| a.is_ipv6());
            let (level, name) =
                if v6 { (libc::IPPROTO_IPV6, libc::IPV6_RECVERR) } else { (libc::IPPROTO_IP, libc::IP_RECVERR) };
            if let Err(e) = crate::sys::turn_on(udp, level, name) {
                debug!("cannot ask for ICMP errors: {e}");
            }
        }
        let core = Core::new(settings, sock, own);
        DatagramClient {
            senders: Senders::new(core.inbox.capacity()),
            account: Account::default(),
            core,
            server_name,
            gone: false,
            line_ends: LineEnds::default(),
            fallback: Vec::new(),
            last_sent: Vec::new(),
            heard_back: false,
            unsent: Throttle::default(),
        }
    }

    /// Addresses to try next, in order, should the first refuse before any reply came.
    pub(in crate::net) fn set_fallback(&mut self, mut addrs: Vec<SocketAddr>) {
        addrs.reverse();
        self.fallback = addrs;
    }

    pub(in crate::net) fn register(&mut self, registry: &Registry) -> io::Result<()> {
        self.core.register(registry)
    }

    pub(in crate::net) fn ready(&mut self, registry: &Registry, event: &mio::event::Event, out: &mut Vec<Event>) {
        if event.is_writable() {
            self.flush(registry, out);
        }
        if event.is_readable() || event.is_error() {
            self.read(registry, out);
        }
    }

    fn read(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        self.core.unread = false;
        let mut budget = super::DATAGRAM_BUDGET;
        while budget > 0 && !self.gone {
            if self.core.hold_back() {
                return;
            }
            let want = self.core.inbox.capacity().min(budget);
            let got = match self.core.inbox.recv(&self.core.sock, want, &mut self.senders) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // "Fragmentation needed" for a datagram sent with don't-fragment: that one is lost
                // (its timeout says so), the kernel now knows the path's MTU, and the next is cut
                // to fit. News for the account, not the end of the conversation.
                Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    self.take_icmp_errors();
                    continue;
                }
                Err(e) => {
                    self.take_icmp_errors();
                    if e.kind() == io::ErrorKind::ConnectionRefused && self.try_next_address(registry) {
                        continue;
                    }
                    self.close(Closed::Failed(e), out);
                    return;
                }
            };
            budget -= got;
            for i in 0..got {
                self.take(i, out);
            }
            // Unlike a server, read on to WouldBlock: that is where a pending ICMP error shows.
        }
        self.core.unread = !self.gone;
    }

    fn take(&mut self, i: usize, out: &mut Vec<Event>) {
        self.heard_back = true;
        let Ok(datagram) = self.core.inbox.get(i) else {
            let max = self.core.max_message;
            self.unsent.warn(format_args!("reply of over {max} bytes from {} dropped", self.server_name));
            return;
        };
        let (body, line_end) = strip_line_end(datagram);
        self.line_ends.seen(line_end);
        out.push(Event::Message(Transport::server(), self.core.pool.message(body)));
    }

    pub(in crate::net) fn send(&mut self, message: &[u8], out: &mut Vec<Event>) {
        if self.gone {
            return;
        }
        let line_end = self.line_ends.latest();
        let mut datagram = Vec::with_capacity(message.len() + line_end.len());
        datagram.extend_from_slice(message);
        datagram.extend_from_slice(line_end);
        if !self.fallback.is_empty() {
            self.last_sent.clone_from(&datagram);
        }
        // At once, unless earlier datagrams still wait for room.
        if self.core.outbox.queue.is_empty() {
            match self.core.sock.send(&datagram) {
                Ok(_) => return,
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return self.send_error(e, out),
                Err(_) => {}
            }
        }
        let outgoing = Outgoing { peer: Transport::server(), to: None, from: None, datagram };
        if !self.core.outbox.offer(outgoing) {
            self.unsent.warn(format_args!("send queue full: datagram to {} dropped", self.server_name));
            return;
        }
        if self.core.outbox.batch_due() {
            self.send_queued(out);
        }
    }

    /// Sends queued datagrams one per call: on a connected socket a pending error (ICMP refused)
    /// would be lost if it met a datagram after the first one (sendmmsg then reports only the count).
    fn send_queued(&mut self, out: &mut Vec<Event>) {
        while let Some((_, err)) = self.core.outbox.send(&self.core.sock, 1, false) {
            self.send_error(err, out);
        }
    }

    /// Moves the ICMP errors the kernel queued on the socket into the account.
    fn take_icmp_errors(&mut self) {
        if let Dgram::Udp(udp) = &self.core.sock {
            while let Some(err) = crate::sys::take_icmp_error(udp) {
                self.account.add_icmp(err);
            }
        }
    }

    fn send_error(&mut self, err: io::Error, out: &mut Vec<Event>) {
        self.take_icmp_errors();
        if err.raw_os_error() == Some(libc::EMSGSIZE) {
            out.push(Event::NotSent { peer: Transport::server(), reason: err });
        } else {
            // Refused, or its socket file gone: the server is gone.
            self.close(Closed::Failed(err), out);
        }
    }

    /// After the server's address refused before any reply, moves to the next address the host name
    /// gave and sends the last datagram again there. False when none is left.
    fn try_next_address(&mut self, registry: &Registry) -> bool {
        while !self.heard_back {
            let Some(next) = self.fallback.pop() else { return false };
            let sock = match udp_connected(next) {
                Ok(sock) => sock,
                Err(e) => {
                    debug!("udp {next}: {e}");
                    continue;
                }
            };
            self.core.sock.deregister(registry);
            self.core.sock = Dgram::Udp(sock);
            self.core.outbox.wants_write = false;
            if let Err(e) = self.core.register(registry) {
                debug!("udp {next}: {e}");
                continue;
            }
            info!("{} refused; trying {next}", self.server_name);
            self.server_name = next.to_string();
            if self.core.sock.send(&self.last_sent).is_ok() {
                return true;
            }
        }
        false
    }

    fn close(&mut self, reason: Closed, out: &mut Vec<Event>) {
        if !std::mem::replace(&mut self.gone, true) {
            out.push(Event::Closed { peer: Transport::server(), name: self.server_name.clone(), reason });
        }
    }

    pub(in crate::net) fn read_unread(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        if self.core.unread {
            self.read(registry, out);
        }
    }

    pub(in crate::net) fn tick(&mut self, _registry: &Registry, _idle: Option<Duration>, _out: &mut Vec<Event>) {}

    pub(in crate::net) fn peer_name(&self, id: PeerId) -> &str {
        if id == Transport::server() && !self.gone { &self.server_name } else { "(gone)" }
    }

    pub(in crate::net) fn peer_count(&self) -> usize {
        usize::from(!self.gone)
    }

    pub(in crate::net) fn account(&self) -> Account {
        let mut account = self.account.clone();
        account.dropped = self.core.dropped(&self.senders);
        if let Dgram::Udp(udp) = &self.core.sock {
            let v6 = udp.local_addr().is_ok_and(|a| a.is_ipv6());
            account.path_mtu = crate::net::kernel::path_mtu(udp, v6);
        }
        account
    }
}

impl Side for DatagramClient {
    fn core(&self) -> &Core {
        &self.core
    }

    fn core_mut(&mut self) -> &mut Core {
        &mut self.core
    }

    fn send_queued(&mut self, out: &mut Vec<Event>) {
        DatagramClient::send_queued(self, out);
    }
}
