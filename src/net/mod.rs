//! The network layer: sockets behind one enum. Stream sockets (TCP, Unix) are cut into messages by
//! the framing; datagram sockets (UDP, Unix datagram) carry one message per datagram; Unix seqpacket
//! sockets are connections (on the stream side) that carry one message per read. The server and
//! the client see only peers, messages and events; this file holds the one `match` between stream
//! and datagram sockets.
//!
//! Every readiness handler follows mio's rules: drain until `WouldBlock` (or until the kind's own
//! sign that the socket is empty, stated in `stream` and `datagram`), retry `Interrupted`, and take
//! a spurious event for what it is. WRITABLE is asked for only while output waits.

mod datagram;
mod hash;
pub mod kernel;
mod line_ends;
pub mod mmsg;
mod plain;
mod pool;
mod slots;
mod socket;
mod stream;

pub use datagram::{DatagramClient, DatagramServer};
pub use plain::{Plain, nobody_at};
pub use socket::{SocketDir, SocketFile, resolve, seqpacket_connect, udp_connected};
pub use stream::Streams;

use std::fmt;
use std::io;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::error::{Error, Result};
use crate::framing::Framing;
use crate::proto::{Endpoint, Proto};
use datagram::Dgram;
use datagram::Side as _;
use socket::{Buffer, UnixName, bind_unix, client_name, deepen_backlog, first_ok, seqpacket_listener, widen_buffer};
use stream::{Listener, Stream};

/// How a transport is to behave, whichever its kind.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The socket kind.
    pub proto: Proto,
    /// How a stream is cut into messages (datagrams are one each).
    pub framing: Framing,
    /// The largest message, in bytes.
    pub max_message: usize,
    /// Most peers at once (stream connections or datagram addresses).
    pub max_peers: usize,
    /// Which of the event loop's transports this is: its tokens are apart from the others'.
    pub tokens: Tokens,
    /// Serving one client only (`--once`): said so to the others that are turned away.
    pub once: bool,
    /// Most bytes held for all peers together (unfinished lines and unwritten replies): past it the
    /// server reads only from peers that hold (almost) nothing.
    pub max_buffered: usize,
    /// TCP: TCP_NODELAY on each connection (Nagle's algorithm off).
    pub nodelay: bool,
    /// Byte streams: write calls each message is sent in (2: its first half, then the rest).
    pub writes: usize,
    /// TCP: ask the kernel for each connection's figures (`TCP_INFO`) as it closes, for the account;
    /// a server whose summary nobody reads (in-process) saves that system call per connection.
    pub kernel_account: bool,
}

impl Settings {
    /// Why a new peer is turned away, as the log says it; `noun` is what the kind calls a peer.
    fn full_reason(&self, noun: &str) -> String {
        if self.once {
            "--once: serving one client already".into()
        } else {
            format!("server full ({}, --max-clients)", crate::text::count(self.max_peers as u64, noun))
        }
    }
}

/// Most transports one event loop serves (`--proto tcp,udp,unix,unixgram` on several addresses).
pub const MAX_TRANSPORTS: usize = 16;
/// Event loops keep the tokens below this for themselves; transport `i`'s own socket (listening or
/// datagram) is `FIRST_SOCKET + i`, and its peer in slot `s` is `FIRST_PEER + s * MAX_TRANSPORTS + i`.
const FIRST_SOCKET: usize = 8;
const FIRST_PEER: usize = FIRST_SOCKET + MAX_TRANSPORTS;

/// The tokens of one transport among the others on the same poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tokens {
    index: usize,
}

impl Tokens {
    /// The tokens of transport `index` (below [`MAX_TRANSPORTS`]).
    pub fn of(index: usize) -> Tokens {
        assert!(index < MAX_TRANSPORTS, "at most {MAX_TRANSPORTS} transports in one event loop");
        Tokens { index }
    }

    /// Its own socket's token.
    fn socket(self) -> Token {
        Token(FIRST_SOCKET + self.index)
    }

    fn peer(self, id: PeerId) -> Token {
        Token(FIRST_PEER + id.slot * MAX_TRANSPORTS + self.index)
    }

    /// The slot of the peer a token of this transport names, or `None` for its own socket.
    fn slot(token: Token) -> Option<usize> {
        token.0.checked_sub(FIRST_PEER).map(|t| t / MAX_TRANSPORTS)
    }

    /// Which transport registered `token`, if one did.
    pub fn owner(token: Token) -> Option<usize> {
        match token.0 {
            t if t >= FIRST_PEER => Some((t - FIRST_PEER) % MAX_TRANSPORTS),
            t if t >= FIRST_SOCKET => Some(t - FIRST_SOCKET),
            _ => None,
        }
    }
}

/// Reading from a peer stops while this much output to it waits, and resumes below `LOW_WATER`.
const HIGH_WATER: usize = 256 * 1024;
const LOW_WATER: usize = 64 * 1024;

/// A peer: one stream connection, or one datagram address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PeerId {
    slot: usize,
    /// How many peers the slot had before this one: an id kept after its peer left (in a batch of
    /// events, or a queue of owed replies) never reaches the next peer in the same slot.
    generation: u32,
}

/// What happened on the sockets, in the order it happened.
#[derive(Debug)]
pub enum Event {
    /// A new peer: a connection accepted, or a datagram from a new address.
    Connected(PeerId),
    /// A whole message from a peer.
    Message(PeerId, Vec<u8>),
    /// A connected peer closed its sending side (end of file): it is closed once every reply owed
    /// to it has been written.
    InputEnded(PeerId),
    /// A peer is gone; `name` is how it was shown.
    Closed {
        /// The peer; its id is never given to another peer.
        peer: PeerId,
        /// Its name as output showed it.
        name: String,
        /// Why it went.
        reason: Closed,
    },
    /// A datagram the kernel refused as too big (EMSGSIZE): not sent, and the peer is still there.
    NotSent {
        /// The peer it was for.
        peer: PeerId,
        /// What the kernel said.
        reason: io::Error,
    },
}

/// Why a peer went away.
#[derive(Debug)]
pub enum Closed {
    /// The peer closed its side (stream) after every reply owed was sent.
    ByPeer,
    /// Nothing from the peer for the idle timeout.
    Idle,
    /// The peer sent a line (or a seqpacket message) over the size bound.
    TooLong,
    /// The socket failed: reset, refused, or another error.
    Failed(io::Error),
}

impl Closed {
    /// What the socket said, as the manual pages name it: `EOF` (a read of 0 bytes) or the errno
    /// (`ECONNRESET`, `EPIPE`…); none for what netpair decided itself (idle, too long).
    pub fn cause(&self) -> Option<&'static str> {
        let errno = match self {
            Closed::ByPeer => return Some("EOF"),
            Closed::Failed(err) => err.raw_os_error()?,
            Closed::Idle | Closed::TooLong => return None,
        };
        Some(match errno {
            libc::ECONNRESET => "ECONNRESET",
            libc::EPIPE => "EPIPE",
            libc::ETIMEDOUT => "ETIMEDOUT",
            libc::ECONNREFUSED => "ECONNREFUSED",
            libc::ECONNABORTED => "ECONNABORTED",
            libc::EHOSTUNREACH => "EHOSTUNREACH",
            libc::ENETUNREACH => "ENETUNREACH",
            libc::ENOENT => "ENOENT",
            _ => return None,
        })
    }
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::ByPeer => f.write_str("closed"),
            Closed::Idle => f.write_str("idle timeout"),
            Closed::TooLong => f.write_str("message too long"),
            Closed::Failed(err) => f.write_str(&crate::error::describe(err)),
        }
    }
}

/// Runs `$body` with `$side` bound to whichever kind of transport `$self` is.
macro_rules! either {
    ($self:expr, $side:ident => $body:expr) => {
        match $self {
            Transport::Stream($side) => $body,
            Transport::DatagramServer($side) => $body,
            Transport::DatagramClient($side) => $body,
        }
    };
}

/// A server's or a client's sockets: streams (either side), or a datagram server or client.
pub enum Transport {
    /// Stream sockets, TCP or Unix: a listener and its connections, or one connection.
    Stream(Streams),
    /// A datagram socket serving every peer that writes to it.
    DatagramServer(DatagramServer),
    /// A datagram socket connected to its server.
    DatagramClient(DatagramClient),
}

impl Transport {
    /// Binds a server socket at `endpoint`.
    pub fn listen(settings: &Settings, endpoint: &Endpoint) -> Result<Transport> {
        let proto = settings.proto;
        let named = |what: &dyn fmt::Display| format!("{proto} {what}");
        Ok(match (proto, endpoint) {
            (Proto::Tcp, Endpoint::Inet { host, port }) => {
                let listener = first_ok(resolve(host, *port)?, named, TcpListener::bind)
                    .map_err(|(what, source)| Error::Bind { what, source })?;
                deepen_backlog(&listener);
                Transport::Stream(Streams::new(settings, Some(Listener::Tcp(listener)), None))
            }
            (Proto::Udp, Endpoint::Inet { host, port }) => {
                let sock = first_ok(resolve(host, *port)?, named, UdpSocket::bind)
                    .map_err(|(what, source)| Error::Bind { what, source })?;
                widen_buffer(&sock, Buffer::Receive);
                datagram::ask_for_local_addresses(&sock);
                Transport::DatagramServer(DatagramServer::new(settings, Dgram::Udp(sock), None))
            }
            (Proto::Unix, Endpoint::Path(path)) => {
                let (listener, bound) = bind_unix(proto, path, UnixListener::bind_addr)?;
                deepen_backlog(&listener);
                Transport::Stream(Streams::new(settings, Some(Listener::Unix(listener)), Some(bound)))
            }
            (Proto::Seqpacket, Endpoint::Path(path)) => {
                let (listener, bound) = bind_unix(proto, path, seqpacket_listener)?;
                let listener = UnixListener::from_std(listener);
                deepen_backlog(&listener);
                Transport::Stream(Streams::new(settings, Some(Listener::Unix(listener)), Some(bound)))
            }
            (Proto::Unixgram, Endpoint::Path(path)) => {
                let (sock, bound) = bind_unix(proto, path, UnixDatagram::bind_addr)?;
                // A Unix datagram stays charged to its sender until its receiver reads it: the send
                // buffer is what all peers' unread replies together may hold.
                widen_buffer(&sock, Buffer::Send);
                Transport::DatagramServer(DatagramServer::new(settings, Dgram::Unix(sock), Some(bound)))
            }
            _ => {
                return Err(Error::Usage(format!("--proto {proto} does not go with {endpoint}")));
            }
        })
    }

    /// Connects a client to `endpoint`, trying every address a host name resolves to (streams)
    /// within `timeout` each. The server is the transport's only peer, [`Transport::server`].
    pub fn connect(settings: &Settings, endpoint: &Endpoint, timeout: Duration) -> Result<Transport> {
        let proto = settings.proto;
        let failed =
            |what: String, source| Error::Connect { what: format!("cannot connect to {proto} {what}"), source };
        Ok(match (proto, endpoint) {
            (Proto::Tcp, Endpoint::Inet { host, port }) => {
                let stream = first_ok(
                    resolve(host, *port)?,
                    |a| a.to_string(),
                    |addr| std::net::TcpStream::connect_timeout(&addr, timeout),
                )
                .map_err(|(what, source)| failed(what, source))?;
                let name = stream.peer_addr().map_or_else(|_| endpoint.to_string(), |a| a.to_string());
                stream.set_nonblocking(true).map_err(|e| failed(name.clone(), e))?;
                Transport::Stream(Streams::client(settings, Stream::Tcp(TcpStream::from_std(stream)), name))
            }
            (Proto::Unix | Proto::Seqpacket, Endpoint::Path(path)) => {
                let name = path.display().to_string();
                let addr = UnixName::of(path).addr().map_err(|e| failed(name.clone(), e))?;
                let stream = if proto == Proto::Seqpacket {
                    seqpacket_connect(&addr, false)
                } else {
                    std::os::unix::net::UnixStream::connect_addr(&addr)
                };
                let stream = stream.map_err(|e| failed(name.clone(), e))?;
                stream.set_nonblocking(true).map_err(|e| failed(name.clone(), e))?;
                Transport::Stream(Streams::client(settings, Stream::Unix(UnixStream::from_std(stream)), name))
            }
            (Proto::Udp, Endpoint::Inet { host, port }) => {
                // connect() on UDP always succeeds: the other addresses are tried when the first
                // refuses (ICMP port unreachable) before any reply came.
                let mut addrs = resolve(host, *port)?.into_iter();
                let server =
                    addrs.next().ok_or_else(|| failed(endpoint.to_string(), io::ErrorKind::NotFound.into()))?;
                let sock = udp_connected(server).map_err(|e| failed(server.to_string(), e))?;
                let mut side = DatagramClient::new(settings, Dgram::Udp(sock), server.to_string(), None);
                side.set_fallback(addrs.collect());
                Transport::DatagramClient(side)
            }
            (Proto::Unixgram, Endpoint::Path(path)) => {
                let name = path.display().to_string();
                let server = UnixName::of(path).addr().map_err(|e| failed(name.clone(), e))?;
                // An abstract name of its own for the server to reply to: no file, so no permission for
                // another user's server to lack, and nothing left behind by a client that is killed.
                let own = client_name();
                let sock = std::os::unix::net::UnixDatagram::bind_addr(&own)
                    .and_then(|sock| sock.set_nonblocking(true).map(|()| sock))
                    .map_err(|e| failed(format!("{name} (binding its own name)"), e))?;
                sock.connect_addr(&server).map_err(|e| failed(name.clone(), e))?;
                let sock = UnixDatagram::from_std(sock);
                Transport::DatagramClient(DatagramClient::new(settings, Dgram::Unix(sock), name, None))
            }
            _ => {
                return Err(Error::Usage(format!("--proto {proto} does not go with {endpoint}")));
            }
        })
    }

    /// Registers every socket with the event loop.
    pub fn register(&mut self, registry: &Registry) -> io::Result<()> {
        either!(self, side => side.register(registry))
    }

    /// Handles one readiness event for a token this transport owns, appending what happened to `out`.
    pub fn ready(&mut self, registry: &Registry, event: &mio::event::Event, out: &mut Vec<Event>) {
        either!(self, side => side.ready(registry, event, out))
    }

    /// Queues `message` for `peer`; it is written by [`Transport::flush`] at the latest.
    pub fn send(&mut self, peer: PeerId, message: &[u8], out: &mut Vec<Event>) {
        match self {
            Transport::Stream(side) => side.send(peer, message, out),
            Transport::DatagramServer(side) => side.send(peer, message, out),
            Transport::DatagramClient(side) => side.send(message, out),
        }
    }

    /// Writes what was queued and closes peers that are done: call after handling each batch of events.
    pub fn flush(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        either!(self, side => side.flush_all(registry, out))
    }

    /// Says that `peer`'s message after the `earlier` ones it still awaits replies to will get no
    /// reply, so that a datagram peer's later replies keep their own messages' line ends.
    pub fn unanswered(&mut self, peer: PeerId, earlier: usize) {
        match self {
            Transport::Stream(side) => side.unanswered(peer, earlier),
            Transport::DatagramServer(side) => side.unanswered(peer, earlier),
            Transport::DatagramClient(_) => {}
        }
    }

    /// Takes back a message's buffer once it has been handled, for a later message to reuse.
    pub fn recycle(&mut self, message: Vec<u8>) {
        either!(self, side => side.recycle(message))
    }

    /// Reads input that an earlier turn left unread (read budget spent, or reading resumed).
    pub fn read_unread(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        either!(self, side => side.read_unread(registry, out))
    }

    /// True when input is known to be waiting that no readiness event will announce again.
    pub fn has_unread(&self) -> bool {
        either!(self, side => side.has_unread())
    }

    /// Forgets peers silent for longer than `idle`, and retries what waits on time.
    pub fn tick(&mut self, registry: &Registry, idle: Option<Duration>, out: &mut Vec<Event>) {
        either!(self, side => side.tick(registry, idle, out))
    }

    /// Keeps `peer` (or stops keeping it) past the end of its input and idle timeouts, while the
    /// server still owes it replies that are not written yet (`--reply stdin`).
    pub fn hold(&mut self, peer: PeerId, held: bool) {
        match self {
            Transport::Stream(side) => side.hold(peer, held),
            Transport::DatagramServer(side) => side.hold(peer, held),
            Transport::DatagramClient(_) => {}
        }
    }

    /// Stops taking new peers and new input (shutdown): replies already queued are still written.
    pub fn stop_reading(&mut self, registry: &Registry) {
        either!(self, side => side.stop_reading(registry))
    }

    /// True while any reply is waiting to be written or, on TCP, to be acknowledged by its peer.
    pub fn has_output(&self) -> bool {
        either!(self, side => side.has_output())
    }

    /// TCP_NODELAY on `peer`'s connection, read back from the kernel (TCP only).
    pub fn nodelay(&self, peer: PeerId) -> Option<bool> {
        match self {
            Transport::Stream(side) => side.nodelay(peer),
            _ => None,
        }
    }

    /// A client's stream: shuts its sending side (SHUT_WR) once what is queued is written; replies
    /// are still read, until the server closes too. Datagram sockets have no sending side to shut.
    pub fn half_close(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        if let Transport::Stream(side) = self {
            side.half_close(registry, out);
        }
    }

    /// A client's TCP connection: SO_LINGER 0, so that closing it sends a reset (RST) instead of the
    /// orderly end (FIN), throwing away whatever is unsent or unread.
    pub fn reset_on_close(&self) -> io::Result<()> {
        match self {
            Transport::Stream(side) => side.reset_on_close(),
            _ => Ok(()),
        }
    }

    /// How a peer is named in output.
    pub fn peer_name(&self, peer: PeerId) -> &str {
        either!(self, side => side.peer_name(peer))
    }

    /// Peers known now.
    pub fn peer_count(&self) -> usize {
        either!(self, side => side.peer_count())
    }

    /// The address this side is bound to, as `Listening on` shows it.
    pub fn local_name(&self) -> String {
        either!(self, side => side.local_name())
    }

    /// What the kernel says of this side's sockets so far (see [`kernel::Account`]).
    pub fn account(&self) -> kernel::Account {
        either!(self, side => side.account())
    }

    /// The IP address and port this side is bound to (none for Unix sockets).
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        either!(self, side => side.local_addr())
    }

    /// A client's one peer: the server.
    pub fn server() -> PeerId {
        PeerId { slot: 0, generation: 0 }
    }

    /// Bytes of an unfinished line held for `peer`: it sent them with no line end yet (line framing
    /// on a stream; 0 for datagrams and raw framing).
    pub fn unfinished(&self, peer: PeerId) -> usize {
        match self {
            Transport::Stream(side) => side.unfinished(peer),
            Transport::DatagramServer(_) | Transport::DatagramClient(_) => 0,
        }
    }

    /// Streams deliver replies in order and never lose one; datagrams may do either.
    pub fn is_ordered(&self) -> bool {
        matches!(self, Transport::Stream(_))
    }
}

/// Always readable; writable too only while output waits, so an idle socket costs no wake-ups.
fn interest(wants_write: bool) -> Interest {
    if wants_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE }
}
