//! Sockets behind one enum: stream sockets (TCP, Unix) cut into messages by framing, datagram sockets
//! (UDP, Unix datagram) one message per datagram. The server and client see only peers and messages.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use mio::{Interest, Registry, Token};

use crate::error::{Error, Result};
use crate::framing::{Framing, LineFramer, strip_line_end};
use crate::mmsg::{self, RawAddr};
use crate::report::count;

/// The socket kinds netpair speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Unix,
    Unixgram,
}

impl Proto {
    /// Every kind, in the order tables show them.
    pub const ALL: [Proto; 4] = [Proto::Tcp, Proto::Udp, Proto::Unix, Proto::Unixgram];

    /// Stream sockets carry bytes, datagram sockets carry whole messages.
    pub fn is_stream(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Unix)
    }

    /// Unix-domain sockets are named by a file path, not a host and port.
    pub fn is_unix(self) -> bool {
        matches!(self, Proto::Unix | Proto::Unixgram)
    }

    /// The name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Unix => "unix",
            Proto::Unixgram => "unixgram",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where to listen or connect.
#[derive(Clone, Debug)]
pub enum Endpoint {
    Inet { host: String, port: u16 },
    Path(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Inet { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Inet { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

/// How a transport is to behave, whichever its kind.
#[derive(Clone, Debug)]
pub struct Settings {
    pub proto: Proto,
    pub framing: Framing,
    pub max_message: usize,
    /// Most peers at once (stream connections or datagram addresses).
    pub max_peers: usize,
}

/// The token of the listening or datagram socket; event loops keep the tokens below `FIRST_PEER`
/// that are not this one for themselves.
pub const SOCKET: Token = Token(0);
const FIRST_PEER: usize = 16;

/// Reading from a peer stops while this much output to it waits, and resumes below `LOW_WATER`.
const HIGH_WATER: usize = 256 * 1024;
const LOW_WATER: usize = 64 * 1024;
/// Bytes read from one connection (or datagrams from one socket) before others get a turn.
const READ_BUDGET: usize = 256 * 1024;
const DATAGRAM_BUDGET: usize = 256;
/// The most buffer space a datagram socket receives a batch into (`recvmmsg`).
const DATAGRAM_BATCH_BYTES: usize = 2 << 20;
/// The largest datagram buffer kept, whatever --max-message says (Linux's Unix datagrams stop near 200 KiB).
const DATAGRAM_CEILING: usize = 4 << 20;
/// What a connection's output buffer keeps once empty: enough for a few ordinary replies, so a talkative
/// peer does not allocate for each, while an idle one holds no more than this.
const KEEP_CAPACITY: usize = 4 * 1024;

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
    Connected(PeerId),
    Message(PeerId, Vec<u8>),
    Closed {
        peer: PeerId,
        name: String,
        reason: Closed,
    },
    /// A datagram the kernel refused as too big (EMSGSIZE): not sent, and the peer is still there.
    NotSent {
        peer: PeerId,
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
    /// The peer sent a line over the size bound (stream only).
    TooLong,
    /// The socket failed: reset, refused, or another error.
    Failed(io::Error),
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
            Transport::Datagram($side) => $body,
        }
    };
}

/// A server's or a client's sockets, stream or datagram.
pub enum Transport {
    Stream(Streams),
    Datagram(Datagrams),
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
                widen_buffer(&sock, [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF]);
                Transport::Datagram(Datagrams::new(settings, Dgram::Udp(sock), None, None))
            }
            (Proto::Unix, Endpoint::Path(path)) => {
                clear_stale_socket(proto, path)?;
                let listener =
                    UnixListener::bind(path).map_err(|source| Error::Bind { what: named(&path.display()), source })?;
                deepen_backlog(&listener);
                Transport::Stream(Streams::new(settings, Some(Listener::Unix(listener)), Some(path.clone())))
            }
            (Proto::Unixgram, Endpoint::Path(path)) => {
                clear_stale_socket(proto, path)?;
                let sock =
                    UnixDatagram::bind(path).map_err(|source| Error::Bind { what: named(&path.display()), source })?;
                // A Unix datagram stays charged to its sender until its receiver reads it: the send
                // buffer is what all peers' unread replies together may hold.
                widen_buffer(&sock, [libc::SO_SNDBUFFORCE, libc::SO_SNDBUF]);
                Transport::Datagram(Datagrams::new(settings, Dgram::Unix(sock), None, Some(path.clone())))
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
            (Proto::Unix, Endpoint::Path(path)) => {
                let name = path.display().to_string();
                let stream = std::os::unix::net::UnixStream::connect(path).map_err(|e| failed(name.clone(), e))?;
                stream.set_nonblocking(true).map_err(|e| failed(name.clone(), e))?;
                Transport::Stream(Streams::client(settings, Stream::Unix(UnixStream::from_std(stream)), name))
            }
            (Proto::Udp, Endpoint::Inet { host, port }) => {
                // connect() on UDP always succeeds: the other addresses are tried when the first
                // refuses (ICMP port unreachable) before any reply came.
                let mut fallback = resolve(host, *port)?;
                fallback.reverse();
                let server =
                    fallback.pop().ok_or_else(|| failed(endpoint.to_string(), io::ErrorKind::NotFound.into()))?;
                let sock = udp_connected(server).map_err(|e| failed(server.to_string(), e))?;
                let mut side = Datagrams::new(settings, Dgram::Udp(sock), Some(PeerKey::Inet(server)), None);
                side.fallback = fallback;
                Transport::Datagram(side)
            }
            (Proto::Unixgram, Endpoint::Path(path)) => {
                let name = path.display().to_string();
                let own = private_socket_path();
                let sock =
                    UnixDatagram::bind(&own).map_err(|e| failed(format!("{name} (binding {})", own.display()), e));
                let sock = sock?;
                // From here the private path is removed on drop, whatever happens next.
                let side = Datagrams::new(settings, Dgram::Unix(sock), Some(PeerKey::Path(path.clone())), Some(own));
                if let Dgram::Unix(sock) = &side.sock {
                    sock.connect(path).map_err(|e| failed(name, e))?;
                }
                Transport::Datagram(side)
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

    /// True for the tokens this transport registered.
    pub fn owns(token: Token) -> bool {
        token == SOCKET || token.0 >= FIRST_PEER
    }

    /// Handles one readiness event for a token this transport owns, appending what happened to `out`.
    pub fn ready(&mut self, registry: &Registry, event: &mio::event::Event, out: &mut Vec<Event>) {
        either!(self, side => side.ready(registry, event, out))
    }

    /// Queues `message` for `peer`; it is written by [`Transport::flush`] at the latest.
    pub fn send(&mut self, peer: PeerId, message: &[u8], out: &mut Vec<Event>) {
        either!(self, side => side.send(peer, message, out))
    }

    /// Writes what was queued and closes peers that are done: call after handling each batch of events.
    pub fn flush(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        either!(self, side => side.flush_all(registry, out))
    }

    /// Says that `peer`'s message after the `earlier` ones it still awaits replies to will get no
    /// reply, so that a datagram peer's later replies keep their own messages' line ends.
    pub fn unanswered(&mut self, peer: PeerId, earlier: usize) {
        if let Transport::Datagram(side) = self
            && let Some(peer) = side.peers.get_mut(peer)
        {
            peer.line_ends.remove(earlier);
        }
    }

    /// Takes back a message's buffer once it has been handled, for a later message to reuse.
    pub fn recycle(&mut self, message: Vec<u8>) {
        either!(self, side => side.pool.give(message))
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
            Transport::Stream(side) => {
                if let Some(conn) = side.conns.get_mut(peer) {
                    conn.held = held;
                    // A peer whose input ended is closed once released and written to (see flush).
                    side.mark_dirty(peer);
                }
            }
            Transport::Datagram(side) => {
                if let Some(known) = side.peers.get_mut(peer) {
                    known.held = held;
                }
            }
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

    /// A client's one peer: the server.
    pub fn server() -> PeerId {
        PeerId { slot: 0, generation: 0 }
    }

    /// Streams deliver replies in order and never lose one; datagrams may do either.
    pub fn is_ordered(&self) -> bool {
        matches!(self, Transport::Stream(_))
    }
}

/// A table of items named by small integers, reused after removal under a new generation.
struct Slots<T> {
    items: Vec<(u32, Option<T>)>,
    free: Vec<usize>,
    len: usize,
}

impl<T> Slots<T> {
    fn new() -> Self {
        Slots { items: Vec::new(), free: Vec::new(), len: 0 }
    }

    fn insert(&mut self, item: T) -> PeerId {
        self.len += 1;
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.items.push((0, None));
                self.items.len() - 1
            }
        };
        let (generation, place) = &mut self.items[slot];
        *place = Some(item);
        PeerId { slot, generation: *generation }
    }

    fn remove(&mut self, id: PeerId) -> Option<T> {
        let (generation, place) = self.items.get_mut(id.slot).filter(|(g, _)| *g == id.generation)?;
        let item = place.take()?;
        *generation = generation.wrapping_add(1);
        self.free.push(id.slot);
        self.len -= 1;
        Some(item)
    }

    fn get(&self, id: PeerId) -> Option<&T> {
        self.items.get(id.slot).filter(|(g, _)| *g == id.generation)?.1.as_ref()
    }

    fn get_mut(&mut self, id: PeerId) -> Option<&mut T> {
        self.items.get_mut(id.slot).filter(|(g, _)| *g == id.generation)?.1.as_mut()
    }

    /// The id of whatever holds `slot` now.
    fn at(&self, slot: usize) -> Option<PeerId> {
        let (generation, item) = self.items.get(slot)?;
        item.as_ref().map(|_| PeerId { slot, generation: *generation })
    }

    fn ids(&self) -> Vec<PeerId> {
        (0..self.items.len()).filter_map(|slot| self.at(slot)).collect()
    }

    fn iter(&self) -> impl Iterator<Item = (PeerId, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(slot, (generation, item))| Some((PeerId { slot, generation: *generation }, item.as_ref()?)))
    }
}

/// Always readable; writable too only while output waits, so an idle socket costs no wake-ups.
fn interest(wants_write: bool) -> Interest {
    if wants_write { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE }
}

fn token(id: PeerId) -> Token {
    Token(FIRST_PEER + id.slot)
}

fn slot_of(token: Token) -> usize {
    token.0 - FIRST_PEER
}

/// Logs a repeated warning at most once a second, with how many were held back.
#[derive(Default)]
pub struct Throttle {
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    /// Logs `text` as a warning, unless one was logged less than a second ago.
    pub fn warn(&mut self, text: fmt::Arguments<'_>) {
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < Duration::from_secs(1)) {
            self.held += 1;
            return;
        }
        match std::mem::take(&mut self.held) {
            0 => warn!("{text}"),
            held => warn!("{text} (and {held} more like it in the last second)"),
        }
        self.last = Some(now);
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Accepts one connection: its socket and the peer's name ("" for an unnamed Unix peer).
    fn accept(&self) -> io::Result<(Stream, String)> {
        match self {
            Listener::Tcp(l) => l.accept().map(|(s, addr)| {
                let _ = s.set_nodelay(true);
                (Stream::Tcp(s), addr.to_string())
            }),
            Listener::Unix(l) => l.accept().map(|(s, addr)| {
                let name = addr.as_pathname().map(|p| p.display().to_string());
                (Stream::Unix(s), name.unwrap_or_default())
            }),
        }
    }
}

/// One connected stream socket, TCP or Unix.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Bytes written that the peer has not acknowledged yet (TCP). Closing a socket with input unread
    /// sends a reset and throws these away, so a stopping server waits for them. A Unix stream hands
    /// data straight to the peer's queue, where it outlives our socket.
    fn unacked(&self) -> usize {
        match self {
            Stream::Tcp(s) => {
                let mut queued: libc::c_int = 0;
                // SAFETY: SIOCOUTQ (same number as TIOCOUTQ) writes one int for a TCP socket we own.
                let rc = unsafe { libc::ioctl(s.as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
                if rc == 0 { usize::try_from(queued).unwrap_or(0) } else { 0 }
            }
            Stream::Unix(_) => 0,
        }
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
struct Conn {
    sock: Stream,
    name: String,
    framer: LineFramer,
    output: Vec<u8>,
    written: usize,
    wants_write: bool,
    paused: bool,
    eof: bool,
    dirty: bool,
    /// Listed in `Streams::unread`; once only, or each turn would read it once more than the last.
    unread: bool,
    /// The server still owes it replies (`--reply stdin`): kept past end of input and idle timeouts.
    held: bool,
    last_active: Instant,
}

impl Conn {
    fn new(sock: Stream, name: String, max_message: usize) -> Self {
        Conn {
            sock,
            name,
            framer: LineFramer::new(max_message),
            output: Vec::new(),
            written: 0,
            wants_write: false,
            paused: false,
            eof: false,
            dirty: false,
            unread: false,
            held: false,
            last_active: Instant::now(),
        }
    }

    fn unwritten(&self) -> usize {
        self.output.len() - self.written
    }
}

/// The stream side: a listener and its connections (server), or one connection (client).
pub struct Streams {
    listener: Option<Listener>,
    conns: Slots<Conn>,
    framing: Framing,
    max_message: usize,
    max_peers: usize,
    scratch: Vec<u8>,
    pool: Pool,
    dirty: Vec<PeerId>,
    unread: Vec<PeerId>,
    accept_paused: bool,
    /// Shutting down: no more reading, from anyone, whatever backpressure would allow.
    stopped: bool,
    accepted: u64,
    /// A descriptor held only to be given up when accept runs out of them (see `turn_away_one`).
    spare: Option<std::fs::File>,
    socket_file: Option<PathBuf>,
    full: Throttle,
}

impl Streams {
    fn new(settings: &Settings, listener: Option<Listener>, socket_file: Option<PathBuf>) -> Self {
        let read_size = match settings.framing {
            Framing::Line => 64 * 1024,
            Framing::Raw => settings.max_message.min(64 * 1024),
        };
        Streams {
            spare: listener.as_ref().and_then(|_| spare_file()),
            listener,
            conns: Slots::new(),
            framing: settings.framing,
            max_message: settings.max_message,
            max_peers: settings.max_peers,
            scratch: vec![0; read_size],
            pool: Pool::default(),
            dirty: Vec::new(),
            unread: Vec::new(),
            accept_paused: false,
            stopped: false,
            accepted: 0,
            socket_file,
            full: Throttle::default(),
        }
    }

    fn client(settings: &Settings, sock: Stream, name: String) -> Self {
        if let Stream::Tcp(s) = &sock {
            let _ = s.set_nodelay(true);
        }
        let mut side = Streams::new(settings, None, None);
        side.conns.insert(Conn::new(sock, name, settings.max_message));
        side
    }

    fn register(&mut self, registry: &Registry) -> io::Result<()> {
        match &mut self.listener {
            Some(Listener::Tcp(l)) => registry.register(l, SOCKET, Interest::READABLE)?,
            Some(Listener::Unix(l)) => registry.register(l, SOCKET, Interest::READABLE)?,
            None => {}
        }
        for id in self.conns.ids() {
            if let Some(conn) = self.conns.get_mut(id) {
                registry.register(&mut conn.sock, token(id), Interest::READABLE)?;
            }
        }
        Ok(())
    }

    fn ready(&mut self, registry: &Registry, event: &mio::event::Event, out: &mut Vec<Event>) {
        if event.token() == SOCKET {
            self.accept(registry, out);
            return;
        }
        // A late event for a slot whose peer is gone (or replaced) finds nothing, or the new peer,
        // whose readiness it then really is.
        let Some(id) = self.conns.at(slot_of(event.token())) else { return };
        if event.is_writable() {
            self.flush(registry, id, out);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read(registry, id, out, !(event.is_read_closed() || event.is_error()));
        }
    }

    fn accept(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            let (mut sock, mut name) = match listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)) =>
                {
                    if e.raw_os_error() == Some(libc::EMFILE) && self.turn_away_one() {
                        continue;
                    }
                    // The connection stays in the backlog; try again on the next tick rather than spin.
                    self.full.warn(format_args!(
                        "cannot accept: {} (raise ulimit -n or lower --max-clients)",
                        crate::error::describe(&e)
                    ));
                    self.accept_paused = true;
                    return;
                }
                Err(e) => {
                    debug!("accept failed: {e}");
                    continue;
                }
            };
            self.accepted += 1;
            if name.is_empty() {
                name = format!("peer#{}", self.accepted);
            }
            if self.conns.len >= self.max_peers {
                self.full.warn(format_args!(
                    "server full ({}, --max-clients): turned away {name}",
                    count(self.max_peers as u64, "client")
                ));
                let _ = sock.write(
                    format!("netpair: server full ({}); try again later\n", count(self.max_peers as u64, "client"))
                        .as_bytes(),
                );
                continue;
            }
            let id = self.conns.insert(Conn::new(sock, name, self.max_message));
            let conn = self.conns.get_mut(id).expect("just inserted");
            if let Err(e) = registry.register(&mut conn.sock, token(id), Interest::READABLE) {
                warn!("cannot watch connection from {}: {e}", conn.name);
                self.conns.remove(id);
                continue;
            }
            out.push(Event::Connected(id));
        }
    }

    /// Out of file descriptors: gives up the spare one to accept a waiting client, tells it the server is
    /// full and closes it, so clients are turned away with a reason instead of hanging in the backlog.
    /// False when there is no spare or the accept fails anyway.
    fn turn_away_one(&mut self) -> bool {
        let (Some(listener), Some(spare)) = (&self.listener, self.spare.take()) else {
            return false;
        };
        drop(spare);
        let turned_away = match listener.accept() {
            Ok((mut sock, name)) => {
                self.full.warn(format_args!(
                    "out of open files (ulimit -n): turned away {}",
                    if name.is_empty() { "a client" } else { &name }
                ));
                let _ = sock.write(b"netpair: server full (out of open files); try again later\n");
                true
            }
            Err(_) => false,
        };
        self.spare = spare_file();
        turned_away
    }

    /// Reads what `id` sent. `short_read_drains`: the readiness event said nothing of a close or an
    /// error, so a read shorter than the buffer has emptied the socket (epoll(7)) and the read that
    /// would only say WouldBlock can be skipped: one system call fewer per message.
    fn read(&mut self, registry: &Registry, id: PeerId, out: &mut Vec<Event>, short_read_drains: bool) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.paused || conn.eof || self.stopped {
            return;
        }
        let mut budget = READ_BUDGET;
        let mut failed = None;
        loop {
            if conn.unwritten() > HIGH_WATER {
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
            let n = match conn.sock.read(&mut self.scratch) {
                Ok(0) => {
                    conn.eof = true;
                    break;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    failed = Some(Closed::Failed(e));
                    break;
                }
            };
            budget = budget.saturating_sub(n);
            conn.last_active = Instant::now();
            let drained = short_read_drains && n < self.scratch.len();
            let data = &self.scratch[..n];
            match self.framing {
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
            if drained {
                break;
            }
        }
        if let Some(reason) = failed {
            self.close(registry, id, reason, out);
            return;
        }
        if conn.eof {
            if let Some(rest) = conn.framer.finish() {
                out.push(Event::Message(id, rest));
            }
            // Closed once every reply owed has been written (see flush).
            self.mark_dirty(id);
        }
    }

    fn send(&mut self, id: PeerId, message: &[u8], _out: &mut Vec<Event>) {
        let Some(conn) = self.conns.get_mut(id) else {
            debug!("reply to a peer already gone dropped");
            return;
        };
        if self.framing == Framing::Raw && message.is_empty() {
            debug!("empty reply to {} not sent: a raw stream cannot carry an empty message", conn.name);
            return;
        }
        conn.output.extend_from_slice(message);
        if self.framing == Framing::Line {
            conn.output.push(b'\n');
        }
        self.mark_dirty(id);
    }

    fn mark_dirty(&mut self, id: PeerId) {
        if let Some(conn) = self.conns.get_mut(id)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(id);
        }
    }

    fn flush_all(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        while let Some(id) = self.dirty.pop() {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.dirty = false;
                self.flush(registry, id, out);
            }
        }
    }

    fn read_unread(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        for id in std::mem::take(&mut self.unread) {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.unread = false;
                self.read(registry, id, out, false);
            }
        }
    }

    fn flush(&mut self, registry: &Registry, id: PeerId, out: &mut Vec<Event>) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        while conn.unwritten() > 0 {
            match conn.sock.write(&conn.output[conn.written..]) {
                Ok(0) => {
                    return self.close(registry, id, Closed::Failed(io::ErrorKind::WriteZero.into()), out);
                }
                Ok(n) => {
                    conn.written += n;
                    conn.last_active = Instant::now();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.close(registry, id, Closed::Failed(e), out),
            }
        }
        if conn.unwritten() == 0 {
            conn.output.clear();
            conn.written = 0;
            if conn.output.capacity() > KEEP_CAPACITY {
                conn.output = Vec::new();
            }
            if conn.eof && !conn.held {
                return self.close(registry, id, Closed::ByPeer, out);
            }
        } else if conn.written >= conn.unwritten() {
            // A reader that keeps up only partly never lets the buffer empty: drop what was written
            // (moving no more bytes than were written since the last time) or it grows without end.
            conn.output.drain(..conn.written);
            conn.written = 0;
        }
        // Ask for WRITABLE only while output waits, so an idle connection costs no wake-ups.
        let wants_write = conn.unwritten() > 0;
        if wants_write != conn.wants_write {
            if let Err(e) = registry.reregister(&mut conn.sock, token(id), interest(wants_write)) {
                return self.close(registry, id, Closed::Failed(e), out);
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

    fn close(&mut self, registry: &Registry, id: PeerId, reason: Closed, out: &mut Vec<Event>) {
        if let Some(mut conn) = self.conns.remove(id) {
            let _ = registry.deregister(&mut conn.sock);
            out.push(Event::Closed { peer: id, name: conn.name, reason });
        }
    }

    fn has_unread(&self) -> bool {
        !self.unread.is_empty()
    }

    fn tick(&mut self, registry: &Registry, idle: Option<Duration>, out: &mut Vec<Event>) {
        if std::mem::take(&mut self.accept_paused) {
            self.accept(registry, out);
        }
        let Some(idle) = idle else { return };
        let now = Instant::now();
        let stale: Vec<PeerId> = self
            .conns
            .iter()
            // Idle: nothing read from it and nothing written to it (a peer that stopped reading too).
            .filter(|(_, c)| !c.held && now.duration_since(c.last_active) > idle)
            .map(|(id, _)| id)
            .collect();
        for id in stale {
            self.close(registry, id, Closed::Idle, out);
        }
    }

    fn stop_reading(&mut self, registry: &Registry) {
        match self.listener.take() {
            Some(Listener::Tcp(mut l)) => drop(registry.deregister(&mut l)),
            Some(Listener::Unix(mut l)) => drop(registry.deregister(&mut l)),
            None => {}
        }
        self.stopped = true;
        self.unread.clear();
    }

    fn has_output(&self) -> bool {
        self.conns.iter().any(|(_, c)| c.unwritten() > 0 || c.sock.unacked() > 0)
    }

    fn peer_name(&self, id: PeerId) -> &str {
        self.conns.get(id).map_or("(gone)", |c| c.name.as_str())
    }

    fn peer_count(&self) -> usize {
        self.conns.len
    }

    fn local_name(&self) -> String {
        match &self.listener {
            Some(Listener::Tcp(l)) => l.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            Some(Listener::Unix(_)) => {
                self.socket_file.as_deref().map_or_else(String::new, |p| p.display().to_string())
            }
            None => String::new(),
        }
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        if let Some(path) = &self.socket_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A datagram socket, UDP or Unix.
enum Dgram {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

/// A datagram peer's address, usable as a map key and as a destination.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum PeerKey {
    Inet(SocketAddr),
    Path(PathBuf),
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerKey::Inet(addr) => write!(f, "{addr}"),
            PeerKey::Path(path) => write!(f, "{}", path.display()),
        }
    }
}

impl PeerKey {
    /// The address in the kernel's form.
    fn raw(&self) -> RawAddr {
        match self {
            PeerKey::Inet(addr) => RawAddr::inet(*addr),
            // The path came from the kernel, so it fits; if not, the send fails with that peer alone.
            PeerKey::Path(path) => RawAddr::path(path).unwrap_or(RawAddr::none()),
        }
    }
}

impl Dgram {
    fn fd(&self) -> RawFd {
        match self {
            Dgram::Udp(s) => s.as_raw_fd(),
            Dgram::Unix(s) => s.as_raw_fd(),
        }
    }

    /// Sends on a connected socket.
    fn send(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Dgram::Udp(s) => s.send(buf),
            Dgram::Unix(s) => s.send(buf),
        }
    }

    /// Whether the socket's own send buffer is (about) full, rather than a receiver's queue: a Unix
    /// datagram stays charged to its sender until it is read.
    fn send_buffer_full(&self) -> bool {
        let fd = self.fd();
        let (mut queued, mut size): (libc::c_int, libc::c_int) = (0, 0);
        let mut len = size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: SIOCOUTQ (TIOCOUTQ) and getsockopt(SO_SNDBUF) each write one c_int into a local.
        unsafe {
            libc::ioctl(fd, libc::TIOCOUTQ, &mut queued) == 0
                && libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, (&raw mut size).cast(), &mut len) == 0
                // Full is `queued >= size` to the kernel; some may have been read since it said so.
                && queued >= size - size / 8
        }
    }

    /// The sender's key; `None` when it has no address (an unbound Unix socket).
    fn key_of(&self, from: &RawAddr) -> Option<PeerKey> {
        match self {
            Dgram::Udp(_) => from.to_inet().map(PeerKey::Inet),
            Dgram::Unix(_) => from.to_path().map(PeerKey::Path),
        }
    }

    fn reregister(&mut self, registry: &Registry, interest: Interest) -> io::Result<()> {
        match self {
            Dgram::Udp(s) => registry.reregister(s, SOCKET, interest),
            Dgram::Unix(s) => registry.reregister(s, SOCKET, interest),
        }
    }
}

struct DatagramPeer {
    key: PeerKey,
    name: String,
    /// The line ends its datagrams had, given back on the replies (as `nc -u` users expect).
    line_ends: LineEnds,
    /// The server still owes it replies: not forgotten when idle.
    held: bool,
    last_active: Instant,
}

/// The datagram side: one socket and the peers seen on it (server), or connected to one (client).
pub struct Datagrams {
    sock: Dgram,
    connected: bool,
    peers: Slots<DatagramPeer>,
    by_key: HashMap<PeerKey, PeerId>,
    /// Replies not sent yet: a server sends a turn's replies together, in `flush` (or as soon as a
    /// batch is full); and what they cost ([`Outgoing::cost`]).
    queue: VecDeque<Outgoing>,
    queued_bytes: usize,
    wants_write: bool,
    paused: bool,
    unread: bool,
    stopped: bool,
    max_message: usize,
    max_peers: usize,
    /// Room for a batch of datagrams, `slot` bytes each, with their lengths and senders.
    slots: Vec<u8>,
    slot: usize,
    lens: Vec<usize>,
    senders: Vec<RawAddr>,
    socket_file: Option<PathBuf>,
    pool: Pool,
    full: Throttle,
    dropped: Throttle,
    /// Replies not sent (too big, or the send queue full): throttled apart, so a flood of one kind of
    /// drop never hides the other.
    unsent: Throttle,
    /// Client only: addresses still to try, last first; the last datagram sent, to send again
    /// there; and whether the server has answered yet (then it is never left).
    fallback: Vec<SocketAddr>,
    last_sent: Vec<u8>,
    heard_back: bool,
}

/// The line ends of a server's peer's datagrams not answered yet, oldest first, two bits each: every
/// reply goes back with its own message's line end, even when one turn brings several messages.
#[derive(Default)]
struct LineEnds {
    codes: u64,
    len: u8,
    /// The latest line end seen.
    last: u8,
}

impl LineEnds {
    const KINDS: [&'static [u8]; 3] = [b"", b"\n", b"\r\n"];
    /// Line ends kept in order, at most: the messages past these get the latest one seen.
    const MAX: u8 = 32;

    /// Notes the line end of a message that will be answered.
    fn push(&mut self, end: &[u8]) {
        self.seen(end);
        if self.len < LineEnds::MAX {
            self.codes |= u64::from(self.last) << (2 * self.len);
            self.len += 1;
        }
    }

    /// Notes the latest line end only (a client's: its messages answer nothing).
    fn seen(&mut self, end: &[u8]) {
        self.last = LineEnds::KINDS.iter().position(|&kind| kind == end).unwrap_or(0) as u8;
    }

    /// The line end for the next reply: the oldest unanswered message's, or the latest seen.
    fn pop(&mut self) -> &'static [u8] {
        if self.len == 0 {
            return self.latest();
        }
        let code = (self.codes & 3) as usize;
        self.codes >>= 2;
        self.len -= 1;
        LineEnds::KINDS[code]
    }

    fn latest(&self) -> &'static [u8] {
        LineEnds::KINDS[usize::from(self.last)]
    }

    /// Forgets the line end at `index` (0 is the oldest), that of a message that gets no reply.
    fn remove(&mut self, index: usize) {
        if index >= usize::from(self.len) {
            return;
        }
        let below = (1u64 << (2 * index)) - 1;
        self.codes = (self.codes & below) | ((self.codes >> 2) & !below);
        self.len -= 1;
    }
}

/// A reply waiting to be sent.
struct Outgoing {
    peer: PeerId,
    to: RawAddr,
    datagram: Vec<u8>,
}

impl Outgoing {
    /// What it counts for in the queue's bound: its bytes and its bookkeeping, so that even empty
    /// datagrams fill the queue and pause reading.
    fn cost(&self) -> usize {
        self.datagram.len() + size_of::<Outgoing>()
    }
}

impl Datagrams {
    fn new(settings: &Settings, sock: Dgram, server: Option<PeerKey>, socket_file: Option<PathBuf>) -> Self {
        // One byte more than allowed, so an oversized datagram shows as one that filled its slot.
        let slot = settings.max_message.min(DATAGRAM_CEILING) + 1;
        let batch = (DATAGRAM_BATCH_BYTES / slot).clamp(1, mmsg::BATCH);
        let mut side = Datagrams {
            sock,
            connected: server.is_some(),
            peers: Slots::new(),
            by_key: HashMap::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            wants_write: false,
            paused: false,
            unread: false,
            stopped: false,
            max_message: settings.max_message,
            max_peers: settings.max_peers,
            // Zeroed pages are the kernel's until written: a batch of small datagrams costs a page each.
            slots: vec![0; slot * batch],
            slot,
            lens: vec![0; batch],
            senders: vec![RawAddr::none(); batch],
            socket_file,
            pool: Pool::default(),
            full: Throttle::default(),
            dropped: Throttle::default(),
            unsent: Throttle::default(),
            fallback: Vec::new(),
            last_sent: Vec::new(),
            heard_back: false,
        };
        if let Some(key) = server {
            side.peers.insert(DatagramPeer {
                name: key.to_string(),
                key,
                line_ends: LineEnds::default(),
                held: false,
                last_active: Instant::now(),
            });
        }
        side
    }

    fn register(&mut self, registry: &Registry) -> io::Result<()> {
        match &mut self.sock {
            Dgram::Udp(s) => registry.register(s, SOCKET, Interest::READABLE),
            Dgram::Unix(s) => registry.register(s, SOCKET, Interest::READABLE),
        }
    }

    fn ready(&mut self, registry: &Registry, event: &mio::event::Event, out: &mut Vec<Event>) {
        if event.is_writable() {
            self.flush(registry, out);
        }
        if event.is_readable() || event.is_error() {
            self.read(registry, out);
        }
    }

    fn read(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        self.unread = false;
        if self.paused || self.stopped {
            return;
        }
        let mut budget = DATAGRAM_BUDGET;
        while budget > 0 {
            if self.queued_bytes > HIGH_WATER {
                // Backpressure: leave datagrams in the kernel (which drops what it cannot hold)
                // until the replies already owed are out.
                self.paused = true;
                return;
            }
            let want = self.lens.len().min(budget);
            let from = (!self.connected).then_some(&mut self.senders[..want]);
            let got = match mmsg::recv_batch(self.sock.fd(), &mut self.slots, self.slot, &mut self.lens[..want], from) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if self.connected => {
                    if e.kind() == io::ErrorKind::ConnectionRefused && self.try_next_address(registry) {
                        continue;
                    }
                    self.forget(Transport::server(), Closed::Failed(e), out);
                    return;
                }
                Err(e) => {
                    // An unconnected socket's errors (a vanished peer's ICMP) never stop the server.
                    debug!("receive failed: {e}");
                    budget -= 1;
                    continue;
                }
            };
            budget -= got;
            for i in 0..got {
                self.take(i, out);
            }
            // recvmmsg stops short only at an empty queue (or an error, kept for the next call), and
            // every datagram that arrives after raises a new edge: no need for a receive that would
            // block. A connected socket reads on to WouldBlock, where an ICMP error it holds shows.
            if got < want && !self.connected {
                return;
            }
        }
        self.unread = true;
    }

    /// Turns the `i`th datagram of the batch just received into a message from its sender.
    fn take(&mut self, i: usize, out: &mut Vec<Event>) {
        let id = if self.connected {
            self.heard_back = true;
            Transport::server()
        } else {
            let Some(key) = self.sock.key_of(&self.senders[i]) else {
                self.dropped.warn(format_args!("datagram from a socket with no address dropped: no way to reply"));
                return;
            };
            match self.peer_for(key, out) {
                Some(id) => id,
                None => return,
            }
        };
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        peer.last_active = Instant::now();
        let n = self.lens[i];
        if n > self.max_message || n >= self.slot {
            self.dropped.warn(format_args!(
                "datagram of over {} bytes from {} dropped (--max-message {})",
                self.max_message, peer.name, self.max_message
            ));
            return;
        }
        let (body, line_end) = strip_line_end(&self.slots[i * self.slot..][..n]);
        if self.connected {
            peer.line_ends.seen(line_end);
        } else {
            peer.line_ends.push(line_end);
        }
        out.push(Event::Message(id, self.pool.message(body)));
    }

    fn peer_for(&mut self, key: PeerKey, out: &mut Vec<Event>) -> Option<PeerId> {
        if let Some(&id) = self.by_key.get(&key) {
            return Some(id);
        }
        if self.peers.len >= self.max_peers {
            self.full.warn(format_args!(
                "server full ({}, --max-clients): datagram from {key} dropped",
                count(self.max_peers as u64, "peer")
            ));
            return None;
        }
        let id = self.peers.insert(DatagramPeer {
            name: key.to_string(),
            key: key.clone(),
            line_ends: LineEnds::default(),
            held: false,
            last_active: Instant::now(),
        });
        self.by_key.insert(key, id);
        out.push(Event::Connected(id));
        Some(id)
    }

    fn send(&mut self, id: PeerId, message: &[u8], out: &mut Vec<Event>) {
        let Some(peer) = self.peers.get_mut(id) else {
            return;
        };
        let line_end = if self.connected { peer.line_ends.latest() } else { peer.line_ends.pop() };
        let mut datagram = Vec::with_capacity(message.len() + line_end.len());
        datagram.extend_from_slice(message);
        datagram.extend_from_slice(line_end);
        if datagram.len() > self.max_message {
            // Never send more than a peer may send us: the reply cap that stops amplification.
            self.unsent.warn(format_args!(
                "reply of {} bytes to {} not sent: over --max-message {}",
                datagram.len(),
                peer.name,
                self.max_message
            ));
            return;
        }
        if self.connected && !self.fallback.is_empty() {
            self.last_sent.clone_from(&datagram);
        }
        // A client sends at once; a server keeps a turn's replies and sends them together (flush).
        if self.connected && self.queue.is_empty() {
            match self.sock.send(&datagram) {
                Ok(_) => return,
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return self.send_error(id, e, out),
                Err(_) => {}
            }
        }
        // A client's socket is connected: its datagrams need no address.
        let to = if self.connected { RawAddr::none() } else { peer.key.raw() };
        let outgoing = Outgoing { peer: id, to, datagram };
        if self.queued_bytes + outgoing.cost() > 4 * HIGH_WATER {
            self.unsent.warn(format_args!("send queue full: reply to {} dropped", peer.name));
            return;
        }
        self.queued_bytes += outgoing.cost();
        self.queue.push_back(outgoing);
        // A full batch goes now, unless the socket said it is full: then it waits for WRITABLE.
        if !self.wants_write && (self.queue.len() >= mmsg::BATCH || self.queued_bytes >= LOW_WATER) {
            self.send_queued(out);
        }
    }

    /// Client only: after the server's address refused before any reply, moves to the next address
    /// the host name gave and sends the last datagram again there. False when none is left.
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
            if let Dgram::Udp(old) = &mut self.sock {
                let _ = registry.deregister(old);
            }
            self.sock = Dgram::Udp(sock);
            self.wants_write = false;
            if let Err(e) = self.register(registry) {
                debug!("udp {next}: {e}");
                continue;
            }
            if let Some(server) = self.peers.get_mut(Transport::server()) {
                info!("{} refused; trying {next}", server.name);
                server.key = PeerKey::Inet(next);
                server.name = next.to_string();
            }
            if self.sock.send(&self.last_sent).is_ok() {
                return true;
            }
        }
        false
    }

    fn send_failed(&mut self, id: PeerId, err: io::Error, out: &mut Vec<Event>) {
        // A client's server, or a server's peer, that we cannot send to (refused, its socket file
        // gone) is gone.
        self.forget(id, Closed::Failed(err), out);
    }

    fn forget(&mut self, id: PeerId, reason: Closed, out: &mut Vec<Event>) {
        if let Some(peer) = self.peers.remove(id) {
            self.by_key.remove(&peer.key);
            out.push(Event::Closed { peer: id, name: peer.name, reason });
        }
    }

    /// Sends queued replies, a batch per system call, until the queue is empty or the socket full.
    fn send_queued(&mut self, out: &mut Vec<Event>) {
        // A Unix datagram server's send that would block waits on that one peer's full queue (it is
        // not reading, and did not connect to the server), or on the server's own send buffer, which
        // holds every reply its peers have not read yet (and the only limit for a peer that connected).
        // Drop that reply, as a datagram may be dropped, rather than hold every other peer's replies
        // behind peers that do not read.
        let per_peer_queues = !self.connected && matches!(self.sock, Dgram::Unix(_));
        // A connected socket's pending error (ICMP refused) would be lost if a datagram after the
        // first one met it (sendmmsg then reports only the count): a client sends one at a time.
        let batch = if self.connected { 1 } else { mmsg::BATCH };
        while !self.queue.is_empty() {
            let batch = self.queue.iter().take(batch).map(|o| (o.datagram.as_slice(), &o.to));
            let sent = match mmsg::send_batch(self.sock.fd(), batch) {
                Ok(sent) => sent,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !per_peer_queues => return,
                Err(e) => {
                    // The first one failed: that reply alone is given up.
                    let Some(failed) = self.queue.pop_front() else { return };
                    self.queued_bytes -= failed.cost();
                    self.send_error(failed.peer, e, out);
                    continue;
                }
            };
            for sent in self.queue.drain(..sent) {
                self.queued_bytes -= sent.cost();
            }
        }
    }

    /// What a reply that could not be sent does to its peer.
    fn send_error(&mut self, id: PeerId, err: io::Error, out: &mut Vec<Event>) {
        if err.kind() == io::ErrorKind::WouldBlock {
            let name = self.peer_name(id).to_string();
            if self.sock.send_buffer_full() {
                self.unsent.warn(format_args!(
                    "send buffer full (peers have not read the replies it holds): reply to {name} dropped"
                ));
            } else {
                self.unsent.warn(format_args!("{name} is not reading its replies (its queue is full): reply dropped"));
            }
        } else if err.raw_os_error() == Some(libc::EMSGSIZE) {
            out.push(Event::NotSent { peer: id, reason: err });
        } else {
            self.send_failed(id, err, out);
        }
    }

    fn flush(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        self.send_queued(out);
        let wants_write = !self.queue.is_empty();
        if wants_write != self.wants_write {
            match self.sock.reregister(registry, interest(wants_write)) {
                Ok(()) => self.wants_write = wants_write,
                Err(e) => warn!("cannot watch the socket for writing: {e}"),
            }
        }
        if self.paused && self.queued_bytes <= LOW_WATER {
            self.paused = false;
            self.unread = true;
        }
    }

    fn flush_all(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        if !self.queue.is_empty() && !self.wants_write {
            self.flush(registry, out);
        }
    }

    fn read_unread(&mut self, registry: &Registry, out: &mut Vec<Event>) {
        if self.unread {
            self.read(registry, out);
        }
    }

    fn has_unread(&self) -> bool {
        self.unread && !self.paused && !self.stopped
    }

    fn tick(&mut self, _registry: &Registry, idle: Option<Duration>, out: &mut Vec<Event>) {
        let Some(idle) = idle.filter(|_| !self.connected) else {
            return;
        };
        let now = Instant::now();
        let stale: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, p)| !p.held && now.duration_since(p.last_active) > idle)
            .map(|(id, _)| id)
            .collect();
        for id in stale {
            self.forget(id, Closed::Idle, out);
        }
    }

    fn stop_reading(&mut self, _registry: &Registry) {
        self.stopped = true;
    }

    fn has_output(&self) -> bool {
        !self.queue.is_empty()
    }

    fn peer_name(&self, id: PeerId) -> &str {
        self.peers.get(id).map_or("(gone)", |p| p.name.as_str())
    }

    fn peer_count(&self) -> usize {
        self.peers.len
    }

    fn local_name(&self) -> String {
        match &self.sock {
            Dgram::Udp(s) => s.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
            Dgram::Unix(_) => self.socket_file.as_deref().map_or_else(String::new, |p| p.display().to_string()),
        }
    }
}

impl Drop for Datagrams {
    fn drop(&mut self) {
        if let Some(path) = &self.socket_file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Message buffers given back once handled: a busy peer's messages then cost no allocation each.
#[derive(Default)]
struct Pool {
    spare: Vec<Vec<u8>>,
}

impl Pool {
    /// Buffers kept, at most: as many messages as a busy turn brings.
    const MAX: usize = 1024;
    /// The largest buffer kept, so that the pool holds at most 1 MiB (a big message's allocation is
    /// small beside copying it anyway).
    const KEEP: usize = 1024;

    /// `bytes` in a buffer of their own.
    fn message(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut message = self.spare.pop().unwrap_or_default();
        message.extend_from_slice(bytes);
        message
    }

    fn give(&mut self, mut message: Vec<u8>) {
        if self.spare.len() < Pool::MAX && message.capacity() <= Pool::KEEP {
            message.clear();
            self.spare.push(message);
        }
    }
}

/// A descriptor to hold in reserve (see `Streams::turn_away_one`).
fn spare_file() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Every address `host` names, or a clear error.
fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|source| Error::Resolve { host: host.to_string(), source })?.collect();
    if addrs.is_empty() {
        return Err(Error::Resolve { host: host.to_string(), source: io::ErrorKind::NotFound.into() });
    }
    Ok(addrs)
}

/// Tries `attempt` on each address in turn; on failure, the first failing address and its error.
fn first_ok<T>(
    addrs: Vec<SocketAddr>,
    name: impl Fn(&dyn fmt::Display) -> String,
    mut attempt: impl FnMut(SocketAddr) -> io::Result<T>,
) -> std::result::Result<T, (String, io::Error)> {
    let mut first_err = None;
    for addr in addrs {
        match attempt(addr) {
            Ok(value) => return Ok(value),
            Err(e) => {
                debug!("{}: {e}", name(&addr));
                first_err.get_or_insert((name(&addr), e));
            }
        }
    }
    Err(first_err.unwrap_or_else(|| (String::new(), io::ErrorKind::NotFound.into())))
}

/// Removes a socket file left by a dead server; refuses to touch a live one or anything not a socket.
fn clear_stale_socket(proto: Proto, path: &Path) -> Result<()> {
    let what = format!("{proto} {}", path.display());
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::Bind { what, source }),
    };
    if !meta.file_type().is_socket() {
        let source =
            io::Error::new(io::ErrorKind::AlreadyExists, "the file exists and is not a socket; not removing it");
        return Err(Error::Bind { what, source });
    }
    let probe = if proto.is_stream() {
        std::os::unix::net::UnixStream::connect(path).map(drop)
    } else {
        std::os::unix::net::UnixDatagram::unbound().and_then(|s| s.connect(path))
    };
    match probe {
        Ok(()) => Err(Error::Bind {
            what,
            source: io::Error::new(io::ErrorKind::AddrInUse, "another server is listening there"),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            info!("removing stale socket file {} (no server behind it)", path.display());
            std::fs::remove_file(path).map_err(|source| Error::Bind { what, source })
        }
        Err(source) => Err(Error::Bind { what, source }),
    }
}

/// A UDP socket of the address's family, connected to it.
fn udp_connected(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let sock = UdpSocket::bind(local)?;
    sock.connect(addr)?;
    Ok(sock)
}

/// A fresh path for a Unix datagram client's own socket, which the server replies to.
fn private_socket_path() -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("netpair-client-{}-{n}.sock", std::process::id()))
}

/// What a datagram server asks of the kernel for its receive queue (UDP) or its send buffer (Unix),
/// which Linux doubles: room for a datagram from or to each of 10,000 clients at once, where the
/// default (net.core.rmem_default and wmem_default, about 200 KiB) holds a few hundred.
const DATAGRAM_BUFFER: libc::c_int = 8 << 20;

/// Widens a socket buffer to [`DATAGRAM_BUFFER`] with the first of `options` (the FORCE one, past
/// net.core.rmem_max or wmem_max, where this process may: CAP_NET_ADMIN), else the second, which the
/// kernel caps at that maximum.
fn widen_buffer(sock: &impl AsRawFd, options: [libc::c_int; 2]) {
    let want = DATAGRAM_BUFFER;
    for option in options {
        let size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: setsockopt on a socket we own, reading one c_int that lives across the call.
        let set =
            unsafe { libc::setsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, option, (&raw const want).cast(), size) };
        if set == 0 {
            return;
        }
    }
}

/// Lets a burst of thousands of connects wait in the kernel instead of being dropped
/// (mio listens with a backlog of 1024; the kernel caps this at net.core.somaxconn).
fn deepen_backlog(listener: &impl AsRawFd) {
    // SAFETY: listen(2) on a socket we own and that is already listening only changes its backlog.
    unsafe {
        libc::listen(listener.as_raw_fd(), 4096);
    }
}

#[cfg(test)]
mod tests {
    use super::LineEnds;

    #[test]
    fn line_ends_come_back_in_order_and_stay_bounded() {
        let mut ends = LineEnds::default();
        assert_eq!(ends.pop(), b"");
        for end in [&b"\n"[..], b"", b"\r\n"] {
            ends.push(end);
        }
        assert_eq!([ends.pop(), ends.pop(), ends.pop()], [&b"\n"[..], b"", b"\r\n"]);
        // None waiting: the latest seen.
        assert_eq!(ends.pop(), b"\r\n");
        // Past MAX the first MAX still come back in order; the rest get the latest seen.
        let kinds = [&b"\n"[..], b"\r\n", b""];
        for i in 0..40 {
            ends.push(kinds[i % 3]);
        }
        for i in 0..40 {
            let want = if i < usize::from(LineEnds::MAX) { kinds[i % 3] } else { kinds[39 % 3] };
            assert_eq!(ends.pop(), want, "message {i}");
        }
        // One in the middle that gets no reply.
        for end in [&b"\n"[..], b"", b"\r\n"] {
            ends.push(end);
        }
        ends.remove(1);
        assert_eq!([ends.pop(), ends.pop(), ends.pop()], [&b"\n"[..], b"\r\n", b"\r\n"]);
        // A client's: the latest only.
        ends.seen(b"\r\n");
        assert_eq!((ends.latest(), ends.pop()), (&b"\r\n"[..], &b"\r\n"[..]));
    }
}
