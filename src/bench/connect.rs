//! One client's state, and opening one thread's share of the clients: a batch of connects at a
//! time, so that the server's listen backlog is never overrun, all within a deadline.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::plan::Plan;
use super::schedule::Schedule;
use super::sockets::Sock;
use super::window::Window;
use crate::bench::codec::write_message;
use crate::error::{Error, Result};
use crate::framing::LineFramer;
use crate::text::human;

/// Connects in flight per thread at once, so the server's listen backlog is never overrun.
const CONNECT_BATCH: usize = 128;

/// Where a client is in its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// A TCP connect under way.
    Connecting,
    /// Sending and checking.
    Running,
    /// Sends no more; waits for the replies still due.
    Draining,
    /// Awaits nothing more, or its socket failed; its replies are still read (and counted late).
    Done,
}

/// One client: its socket, its messages in flight and its output not yet taken by the socket.
pub struct Client {
    /// Its number, which every message it sends carries.
    pub id: u64,
    /// Its socket; its token is the client's index in the thread.
    pub sock: Sock,
    /// Where it is in its run.
    pub state: State,
    /// Its messages awaiting replies.
    pub window: Window,
    /// The sequence number of its next message.
    pub next_seq: u64,
    /// Messages sent after the warm-up, for `--messages`.
    pub measured_sent: u64,
    /// With --rate: when each of its messages is due.
    pub schedule: Option<Schedule>,
    /// With --rate: its first message due after the warm-up, the first measured.
    pub first_measured: u64,
    /// When its connect began (the first try, when a Unix listener's backlog was full).
    pub connect_started: Instant,
    /// --reconnect: its socket has carried its message, and the next needs a new one.
    pub used: bool,
    /// --reconnect: sockets opened before the one it has, for [`Sock::open_nth`].
    pub opened: u64,
    /// --reconnect: the message waiting for its new socket to connect: when it is timed from, and
    /// whether it is measured.
    pub pending: Option<(Instant, bool)>,
    /// --reconnect: the time from when the message in flight is timed to when it left (the connect):
    /// its reply is given the reply timeout from when it left.
    pub handshake: Duration,
    /// With --rate: its next send is in the thread's schedule already.
    pub scheduled: bool,
    /// Cuts the reply stream into lines (streams only).
    pub framer: LineFramer,
    /// Bytes not yet written (streams): `out[written..]`.
    pub out: Vec<u8>,
    /// How much of `out` the socket took.
    pub written: usize,
    /// `--writes 2`: where the writes of `out[written..]` end, as lengths, oldest first.
    pub writes: VecDeque<usize>,
    /// Datagrams the socket would not take yet.
    pub backlog: VecDeque<Vec<u8>>,
    /// WRITABLE is asked for.
    pub wants_write: bool,
}

impl Client {
    /// Appends a stream message (a line) to `out`; with `writes` 2, as two writes: its first half,
    /// then the rest.
    pub fn queue_line(&mut self, seq: u64, size: usize, writes: usize) {
        let start = self.out.len();
        write_message(&mut self.out, self.id, seq, size);
        self.out.push(b'\n');
        if writes > 1 {
            let queued = start - self.written - self.writes.iter().sum::<usize>();
            let first = (self.out.len() - start) / 2;
            self.writes.extend([queued, first, self.out.len() - start - first].into_iter().filter(|&n| n > 0));
        }
    }

    /// True while output waits for the socket to take it.
    pub fn unwritten(&self) -> bool {
        self.written < self.out.len() || !self.backlog.is_empty()
    }
}

/// Opens thread `index`'s clients (every `threads`th, from `index`) and registers them with `poll`,
/// READABLE only once connected. Fails when any client cannot connect: a bench with fewer clients
/// than asked for would measure something else. Returns early, with some clients still connecting,
/// once `interrupted` is set.
pub fn connect(plan: &Plan, index: usize, poll: &mut Poll, interrupted: &AtomicBool) -> Result<Vec<Client>> {
    let ids: VecDeque<u64> = (index..plan.clients).step_by(plan.threads).map(|i| i as u64).collect();
    let mut opening =
        Opening { plan, clients: Vec::with_capacity(ids.len()), waiting: ids, connecting: 0, backlog_since: None };
    let mut events = Events::with_capacity(1024);
    while !opening.waiting.is_empty() || opening.connecting > 0 {
        if interrupted.load(Ordering::Relaxed) {
            return Ok(opening.clients);
        }
        let backlog_full = opening.open_batch(poll)?;
        if opening.connecting == 0 && !backlog_full {
            continue;
        }
        // Each connect has --connect-timeout from when it began, however many wait their turn.
        let oldest = opening.clients.iter().filter(|c| c.state == State::Connecting).map(|c| (c.connect_started, c.id));
        let oldest = oldest.chain(opening.backlog_since.zip(opening.waiting.front().copied())).min();
        let now = Instant::now();
        let mut wait = Duration::from_millis(100);
        if let Some((since, id)) = oldest {
            let left = (since + plan.connect_timeout).saturating_duration_since(now);
            if left.is_zero() {
                return Err(failed(plan, id, timed_out(plan.connect_timeout)));
            }
            wait = wait.min(left);
        }
        // A full Unix backlog gives no event when it drains: look again soon.
        if backlog_full {
            wait = wait.min(Duration::from_millis(1));
        }
        match poll.poll(&mut events, Some(wait)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(Error::io("waiting for events", e)),
            _ => {}
        }
        for event in events.iter() {
            opening.connected(event.token())?;
        }
    }
    // Connected: from now on WRITABLE is asked for only while output waits.
    for (i, client) in opening.clients.iter_mut().enumerate() {
        if client.wants_write {
            client.wants_write = false;
            let result = poll.registry().reregister(client.sock.source(), Token(i), Interest::READABLE);
            result.map_err(|e| failed(plan, client.id, e))?;
        }
    }
    Ok(opening.clients)
}

/// The clients of one thread while they connect.
struct Opening<'a> {
    plan: &'a Plan,
    clients: Vec<Client>,
    /// Ids not opened yet.
    waiting: VecDeque<u64>,
    /// TCP connects under way.
    connecting: usize,
    /// Since when the first of `waiting` has found the Unix listener's backlog full.
    backlog_since: Option<Instant>,
}

impl Opening<'_> {
    /// Opens clients until [`CONNECT_BATCH`] connects are under way; true when a Unix listener's
    /// backlog is full, so the rest wait until the server has accepted some.
    fn open_batch(&mut self, poll: &Poll) -> Result<bool> {
        while self.connecting < CONNECT_BATCH
            && let Some(id) = self.waiting.pop_front()
        {
            let started = Instant::now();
            let (mut sock, ready) = match Sock::open(self.plan, id) {
                Ok(opened) => opened,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.waiting.push_front(id);
                    self.backlog_since.get_or_insert(started);
                    return Ok(true);
                }
                Err(e) => return Err(failed(self.plan, id, e)),
            };
            let started = self.backlog_since.take().unwrap_or(started);
            let token = Token(self.clients.len());
            // A TCP connect is done when the socket turns writable.
            let interest = if ready { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
            poll.registry().register(sock.source(), token, interest).map_err(|e| failed(self.plan, id, e))?;
            self.connecting += usize::from(!ready);
            self.clients.push(Client {
                id,
                sock,
                state: if ready { State::Running } else { State::Connecting },
                window: Window::with_capacity(self.plan.window.min(64)),
                next_seq: 0,
                measured_sent: 0,
                schedule: None,
                first_measured: 0,
                connect_started: started,
                // The connection made here shows the server is there; every message has one of its own.
                used: self.plan.reconnect,
                opened: 0,
                pending: None,
                handshake: Duration::ZERO,
                scheduled: false,
                // A line with no end in sight (four times the longest reply, at least 256 KiB):
                // whatever it is, it is not a reply, and it counts as one wrong one.
                framer: LineFramer::new(self.plan.size.max(1 << 16) * 4),
                out: Vec::new(),
                written: 0,
                writes: VecDeque::new(),
                backlog: VecDeque::new(),
                wants_write: !ready,
            });
        }
        Ok(false)
    }

    /// Takes a readiness event during the connects: a TCP connect that finished, or failed.
    fn connected(&mut self, token: Token) -> Result<()> {
        let Some(client) = self.clients.get_mut(token.0) else { return Ok(()) };
        let Some(stream) = client.sock.as_tcp() else { return Ok(()) };
        if client.state != State::Connecting {
            return Ok(());
        }
        if !finished(stream).map_err(|e| failed(self.plan, client.id, e))? {
            return Ok(());
        }
        // Small messages go out at once, as a latency bench needs (unless --nodelay off asks for Nagle).
        let _ = stream.set_nodelay(self.plan.nodelay);
        client.state = State::Running;
        self.connecting -= 1;
        Ok(())
    }
}

/// Whether a TCP connect said to be done (WRITABLE, or an error) is: `Ok(false)` for a spurious
/// event, the error when it failed.
pub fn finished(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    // Writable and no error may still be spurious: connected means the peer is known.
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// Why a connect failed when it took too long.
pub fn timed_out(limit: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("not connected within --connect-timeout {}", human(limit)))
}

/// The error for client `id`, which could not connect.
fn failed(plan: &Plan, id: u64, source: io::Error) -> Error {
    Error::Connect { what: format!("client {id} cannot connect to {} {}", plan.proto, plan.target), source }
}
