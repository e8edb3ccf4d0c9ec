//! One stream connection: the socket (TCP or Unix), a listener's accept, and what is buffered for
//! the connection (its unfinished line, its unwritten replies, its reading state).
//!
//! A Unix seqpacket connection is a `Stream::Unix` too: accept, read and write are the same calls,
//! and what differs (a read is one message, a write sends one) is the owner's to know.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::Instant;

use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::framing::LineFramer;
use crate::net::line_ends::LineEnds;
use crate::sys;

pub(in crate::net) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Accepts one connection: its socket and the peer's name ("" for an unnamed Unix peer).
    pub(super) fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, addr)| (Stream::Tcp(s), addr.to_string())),
            Listener::Unix(l) => l.accept().map(|(s, addr)| {
                use std::os::linux::net::SocketAddrExt;
                let name = match (addr.as_pathname(), addr.as_abstract_name()) {
                    (Some(path), _) => path.display().to_string(),
                    (_, Some(name)) => format!("@{}", String::from_utf8_lossy(name)),
                    _ => String::new(),
                };
                (Stream::Unix(s), name)
            }),
        }
    }
}

/// One connected stream socket, TCP or Unix.
pub(in crate::net) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Bytes written that the peer has not acknowledged yet (TCP). Closing a socket with input unread
    /// sends a reset and throws these away, so a stopping server waits for them. A Unix stream hands
    /// data straight to the peer's queue, where it outlives our socket.
    pub(super) fn unacked(&self) -> usize {
        match self {
            Stream::Tcp(s) => sys::unsent(s),
            Stream::Unix(_) => 0,
        }
    }
}

impl Stream {
    /// Sets TCP_NODELAY on a TCP connection as asked (a Unix socket has no such option).
    pub(super) fn set_nodelay(&self, on: bool) {
        if let Stream::Tcp(s) = self
            && let Err(e) = s.set_nodelay(on)
        {
            log::debug!("cannot set TCP_NODELAY: {e}");
        }
    }

    /// Shuts the sending side: the peer reads the end of file, and can still write back.
    pub(super) fn shut_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
            Stream::Unix(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }

    /// SO_LINGER 0 (TCP): closing sends a reset. A Unix socket has no reset to send.
    pub(super) fn linger_zero(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                rustix::net::sockopt::set_socket_linger(s, Some(std::time::Duration::ZERO)).map_err(io::Error::from)
            }
            Stream::Unix(_) => Err(io::Error::new(io::ErrorKind::Unsupported, "a Unix socket has no reset")),
        }
    }

    /// TCP_NODELAY as the kernel has it (TCP only).
    pub(super) fn nodelay(&self) -> Option<bool> {
        match self {
            Stream::Tcp(s) => s.nodelay().ok(),
            Stream::Unix(_) => None,
        }
    }

    /// Seqpacket: receives one message into `buf`, returning the bytes kept and the message's real
    /// length (MSG_TRUNC), larger when `buf` could not hold it all. (0, 0) is the end of the connection.
    pub(super) fn recv_packet(&self, buf: &mut [u8]) -> io::Result<(usize, usize)> {
        let flags = rustix::net::RecvFlags::TRUNC;
        let received = match self {
            Stream::Tcp(s) => rustix::net::recv(s, buf, flags),
            Stream::Unix(s) => rustix::net::recv(s, buf, flags),
        };
        Ok(received?)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for Stream {
    fn register(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interest),
            Stream::Unix(s) => s.register(registry, token, interest),
        }
    }

    fn reregister(&mut self, registry: &Registry, token: Token, interest: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interest),
            Stream::Unix(s) => s.reregister(registry, token, interest),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
        }
    }
}

/// A stream connection and what is buffered for it.
pub(super) struct Conn {
    pub(super) sock: Stream,
    pub(super) name: String,
    pub(super) framer: LineFramer,
    pub(super) output: Vec<u8>,
    pub(super) written: usize,
    /// Where the writes of `output[written..]` end, as lengths, oldest first: each seqpacket message
    /// is one write, and with `--writes 2` each half of a stream message. Empty: write all at once.
    pub(super) packets: VecDeque<usize>,
    /// Seqpacket: the line ends of its messages, which their replies go back with (as over unixgram).
    pub(super) line_ends: LineEnds,
    pub(super) wants_write: bool,
    pub(super) paused: bool,
    pub(super) eof: bool,
    pub(super) dirty: bool,
    /// Listed in `Streams::unread`; once only, or each turn would read it once more than the last.
    pub(super) unread: bool,
    /// The server still owes it replies (`--reply stdin`): kept past end of input and idle timeouts.
    pub(super) held: bool,
    /// Its sending side is to be shut (SHUT_WR) once its output is written.
    pub(super) closing: bool,
    /// Bytes of this connection in `Streams::buffered`.
    pub(super) counted: usize,
    /// Not read from while all peers together hold more than `--max-buffered`.
    pub(super) over_budget: bool,
    pub(super) last_active: Instant,
}

impl Conn {
    pub(super) fn new(sock: Stream, name: String, max_message: usize) -> Self {
        Conn {
            sock,
            name,
            framer: LineFramer::new(max_message),
            output: Vec::new(),
            written: 0,
            packets: VecDeque::new(),
            line_ends: LineEnds::default(),
            wants_write: false,
            paused: false,
            eof: false,
            dirty: false,
            unread: false,
            held: false,
            closing: false,
            counted: 0,
            over_budget: false,
            last_active: Instant::now(),
        }
    }

    pub(super) fn unwritten(&self) -> usize {
        self.output.len() - self.written
    }

    /// What the server holds for it: an unfinished line and replies not written yet.
    pub(super) fn holding(&self) -> usize {
        self.framer.pending() + self.unwritten()
    }

    /// Brings `total` (all connections' holdings) up to date with this one's.
    pub(super) fn recount(&mut self, total: &mut usize) {
        let now = self.holding();
        *total = *total - self.counted + now;
        self.counted = now;
    }
}
