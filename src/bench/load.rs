//! The bench's clients: one mio loop per thread with many sockets each, every reply checked against
//! the message it answers. Sockets are opened here rather than through `Transport`, which keeps one
//! connection per loop and copies every message: this side must cost no more than the server does.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};
use mio::{Events, Interest, Poll, Token};

use crate::config::Stop;
use crate::error::{Error, Result, describe};
use crate::net::mmsg;
use crate::proto::Proto;
use crate::sys;

/// Connects in flight per thread at once, so the server's listen backlog is never overrun.
const CONNECT_BATCH: usize = 128;
/// How often replies overdue are looked for.
const SCAN: Duration = Duration::from_millis(50);
/// How often the progress counters are brought up to date.
const PUBLISH: Duration = Duration::from_millis(100);
/// Timed-out sequence numbers remembered per client, to tell a late reply from a wrong one.
const REMEMBER_GIVEN_UP: usize = 1024;
/// The `--rate` timer's token, above every client's.
const TIMER: Token = Token(usize::MAX);

/// Where the server is.
#[derive(Clone, Debug)]
pub enum Target {
    Inet(SocketAddr),
    Path(PathBuf),
}

/// What every client thread does, the same for all.
#[derive(Clone, Debug)]
pub struct Plan {
    pub proto: Proto,
    pub target: Target,
    pub clients: usize,
    pub threads: usize,
    pub size: usize,
    pub window: usize,
    pub stop: Stop,
    /// Open loop: each client's time between scheduled sends.
    pub interval: Option<Duration>,
    pub warmup: Duration,
    /// A reply later than this is counted lost.
    pub timeout: Duration,
    /// Where Unix datagram clients bind their own sockets.
    pub socket_dir: PathBuf,
    /// The in-process server thread's CPU clock, read at the start and end of the measurement.
    pub server_clock: Option<libc::clockid_t>,
}

/// What the client threads and the thread that started them share.
pub struct Shared {
    /// Passed once by every client thread when its clients are connected, and by the starter.
    pub ready: Barrier,
    /// Set by a thread whose clients could not connect: the others stop.
    pub abort: AtomicBool,
    /// Set on SIGINT or SIGTERM: the clients send no more, and the run ends with what it measured.
    pub interrupted: Arc<AtomicBool>,
    pub round_trips: AtomicU64,
    pub lost: AtomicU64,
    pub wrong: AtomicU64,
}

impl Shared {
    /// For `threads` client threads and the one thread that waits for them.
    pub fn new(threads: usize, interrupted: Arc<AtomicBool>) -> Self {
        Shared {
            ready: Barrier::new(threads + 1),
            abort: AtomicBool::new(false),
            interrupted,
            round_trips: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            wrong: AtomicU64::new(0),
        }
    }
}

/// What one client thread measured (or all of them, merged).
pub struct Tally {
    /// Round-trip times of measured right replies, in nanoseconds.
    pub histogram: Histogram<u64>,
    pub round_trips: u64,
    pub sent: u64,
    pub lost: u64,
    pub late: u64,
    pub wrong: u64,
    pub failed: u64,
    pub first_failure: Option<String>,
    /// When the measurement began, with the server thread's CPU time then.
    pub start: Option<(Instant, Option<Duration>)>,
    /// When it ended (the last client done), with the server thread's CPU time then.
    pub end: Option<(Instant, Option<Duration>)>,
    pub last_reply: Option<Instant>,
    /// CPU time of the client threads while measuring.
    pub cpu: Duration,
}

impl Tally {
    /// Nothing measured yet.
    pub fn new() -> Self {
        Tally {
            // 1 ns to 1 minute, three significant digits.
            histogram: Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("constant bounds are valid"),
            round_trips: 0,
            sent: 0,
            lost: 0,
            late: 0,
            wrong: 0,
            failed: 0,
            first_failure: None,
            start: None,
            end: None,
            last_reply: None,
            cpu: Duration::ZERO,
        }
    }

    /// Adds another thread's tally: counts add up, the window spans both.
    pub fn merge(&mut self, other: Tally) {
        let _ = self.histogram.add(&other.histogram);
        self.round_trips += other.round_trips;
        self.sent += other.sent;
        self.lost += other.lost;
        self.late += other.late;
        self.wrong += other.wrong;
        self.failed += other.failed;
        self.first_failure = self.first_failure.take().or(other.first_failure);
        self.cpu += other.cpu;
        self.start = match (self.start, other.start) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        self.end = match (self.end, other.end) {
            (Some(a), Some(b)) => Some(if b.0 > a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        self.last_reply = self.last_reply.max(other.last_reply);
    }

    /// From the start of the measurement to the last right reply.
    pub fn elapsed(&self) -> Duration {
        match (self.start, self.last_reply) {
            (Some((start, _)), Some(last)) => last.saturating_duration_since(start),
            _ => Duration::ZERO,
        }
    }

    /// The server thread's CPU time over the measurement, when it could be read.
    pub fn server_cpu(&self) -> Option<Duration> {
        Some(self.end?.1?.saturating_sub(self.start?.1?))
    }
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

/// Runs client thread `index`: connects its share of the clients, waits for the others, then
/// sends, checks and times until its clients are done.
pub fn run_thread(plan: Arc<Plan>, index: usize, shared: Arc<Shared>) -> Result<Tally> {
    let worker = Worker::connect(&plan, index);
    if worker.is_err() {
        shared.abort.store(true, Ordering::SeqCst);
    }
    shared.ready.wait();
    let mut worker = worker?;
    if shared.abort.load(Ordering::SeqCst) {
        return Ok(Tally::new());
    }
    worker.run(&shared)
}

/// The text of message `seq` from `client`: a tag that names both, then lowercase letters, `size`
/// bytes in all, so its uppercase reply can only be the answer to this one message.
pub fn write_message(out: &mut Vec<u8>, client: u64, seq: u64, size: usize) {
    let start = out.len();
    let _ = write!(out, "c{client}s{seq}.");
    let tag = out.len() - start;
    out.extend((tag..size).map(|i| b'a' + ((i as u64 + seq) % 26) as u8));
    out.truncate(start + size);
}

/// The longest tag [`write_message`] writes for `clients` clients that send fewer than 10^12 messages each.
pub fn tag_len(clients: usize) -> usize {
    format!("c{}s{}.", clients.saturating_sub(1), 999_999_999_999u64).len()
}

/// Reads the client and sequence number back from a reply (either case).
fn parse_tag(reply: &[u8]) -> Option<(u64, u64)> {
    fn number(text: &[u8]) -> Option<(u64, &[u8])> {
        let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 || digits > 19 {
            return None;
        }
        let value = text[..digits].iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        Some((value, &text[digits..]))
    }
    let rest = reply.strip_prefix(b"C").or_else(|| reply.strip_prefix(b"c"))?;
    let (client, rest) = number(rest)?;
    let rest = rest.strip_prefix(b"S").or_else(|| rest.strip_prefix(b"s"))?;
    let (seq, rest) = number(rest)?;
    rest.starts_with(b".").then_some((client, seq))
}

/// One client socket, stream or datagram.
enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
    Udp(UdpSocket),
    Unixgram(UnixDatagram),
}

impl Sock {
    /// Opens a socket to `target`; true when it is ready now (a TCP connect completes later).
    fn open(plan: &Plan, id: u64) -> io::Result<(Sock, Option<PathBuf>, bool)> {
        Ok(match (plan.proto, &plan.target) {
            (Proto::Tcp, Target::Inet(addr)) => (Sock::Tcp(TcpStream::connect(*addr)?), None, false),
            (Proto::Udp, Target::Inet(addr)) => {
                let any: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
                let sock = std::net::UdpSocket::bind(any)?;
                sock.connect(addr)?;
                sock.set_nonblocking(true)?;
                (Sock::Udp(UdpSocket::from_std(sock)), None, true)
            }
            (Proto::Unix, Target::Path(path)) => (Sock::Unix(UnixStream::connect(path)?), None, true),
            (Proto::Unixgram, Target::Path(path)) => {
                let own = plan.socket_dir.join(format!("c{id}.sock"));
                let sock = std::os::unix::net::UnixDatagram::bind(&own)?;
                let connected = sock.connect(path).and_then(|()| sock.set_nonblocking(true));
                if let Err(e) = connected {
                    let _ = std::fs::remove_file(&own);
                    return Err(e);
                }
                (Sock::Unixgram(UnixDatagram::from_std(sock)), Some(own), true)
            }
            _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "address does not fit the socket kind")),
        })
    }

    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Sock::Tcp(s) => s,
            Sock::Unix(s) => s,
            Sock::Udp(s) => s,
            Sock::Unixgram(s) => s,
        }
    }

    fn fd(&self) -> i32 {
        match self {
            Sock::Tcp(s) => s.as_raw_fd(),
            Sock::Unix(s) => s.as_raw_fd(),
            Sock::Udp(s) => s.as_raw_fd(),
            Sock::Unixgram(s) => s.as_raw_fd(),
        }
    }

    fn is_stream(&self) -> bool {
        matches!(self, Sock::Tcp(_) | Sock::Unix(_))
    }

    /// Reads bytes (stream) or one datagram; waits only when `wait` (and the socket blocks).
    fn read(&mut self, buf: &mut [u8], wait: bool) -> io::Result<usize> {
        let flags = if wait { 0 } else { libc::MSG_DONTWAIT };
        // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::recv(self.fd(), buf.as_mut_ptr().cast(), buf.len(), flags) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// Writes bytes (stream) or sends one datagram, never waiting.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // No SIGPIPE from a stream the server closed: the error says so instead.
        let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
        // SAFETY: the kernel reads at most `buf.len()` bytes from `buf`.
        let n = unsafe { libc::send(self.fd(), buf.as_ptr().cast(), buf.len(), flags) };
        if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
    }

    /// Makes receives wait (at most `timeout`) unless told not to: for a thread with one socket,
    /// which then waits in its receive call, as a plain blocking client does, instead of in epoll.
    fn wait_in_receive(&self, timeout: Duration) -> io::Result<()> {
        let fd = self.fd();
        let tv = libc::timeval { tv_sec: timeout.as_secs() as libc::time_t, tv_usec: timeout.subsec_micros() as _ };
        // SAFETY: fcntl and setsockopt on a descriptor we own; `tv` lives across the call.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) < 0 {
                return Err(io::Error::last_os_error());
            }
            let size = std::mem::size_of::<libc::timeval>() as libc::socklen_t;
            if libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, (&raw const tv).cast(), size) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }
}

/// Wakes the loop when the next scheduled send is due. epoll's own timeout counts whole
/// milliseconds, and every microsecond late would count as latency under `--rate`.
struct Timer {
    fd: std::os::fd::OwnedFd,
    armed: Option<Instant>,
}

impl Timer {
    fn new(registry: &mio::Registry) -> io::Result<Timer> {
        use std::os::fd::FromRawFd;
        // SAFETY: timerfd_create takes no pointers; a valid descriptor is owned from here on.
        let raw = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_NONBLOCK | libc::TFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor we just opened and nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        registry.register(&mut mio::unix::SourceFd(&fd.as_raw_fd()), TIMER, Interest::READABLE)?;
        Ok(Timer { fd, armed: None })
    }

    /// Sets the timer to fire at `at` (a no-op when it already will).
    fn arm(&mut self, at: Instant, now: Instant) {
        if self.armed == Some(at) {
            return;
        }
        let wait = at.saturating_duration_since(now).max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec { tv_sec: 0, tv_nsec: 0 },
            it_value: libc::timespec { tv_sec: wait.as_secs() as libc::time_t, tv_nsec: wait.subsec_nanos() as _ },
        };
        // SAFETY: the spec lives across the call; the old value is not asked for.
        if unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) } == 0 {
            self.armed = Some(at);
        }
    }

    /// Takes the expiry, so the next one is a new event.
    fn clear(&mut self) {
        let mut count = [0u8; 8];
        // SAFETY: reads at most 8 bytes into the buffer we own.
        let _ = unsafe { libc::read(self.fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
        self.armed = None;
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// A TCP connect under way.
    Connecting,
    Running,
    /// Sends no more; waits for the replies still due.
    Draining,
    Done,
}

/// A message awaiting its reply.
#[derive(Clone, Copy)]
struct InFlight {
    seq: u64,
    /// When it was sent, or with --rate when it was due to be: latency counts from here.
    since: Instant,
    measured: bool,
}

struct Client {
    id: u64,
    sock: Sock,
    own_path: Option<PathBuf>,
    state: State,
    in_flight: VecDeque<InFlight>,
    next_seq: u64,
    measured_sent: u64,
    /// With --rate: when message 0 is due.
    first_due: Instant,
    scheduled: bool,
    /// An unfinished reply line (streams).
    partial: Vec<u8>,
    /// Bytes not yet written (streams).
    out: Vec<u8>,
    written: usize,
    /// Datagrams the socket would not take yet.
    backlog: VecDeque<Vec<u8>>,
    wants_write: bool,
    given_up: VecDeque<u64>,
}

impl Client {
    fn unwritten(&self) -> bool {
        self.written < self.out.len() || !self.backlog.is_empty()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(path) = &self.own_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One thread's clients and its event loop.
struct Worker<'a> {
    plan: &'a Plan,
    poll: Poll,
    clients: Vec<Client>,
    tally: Tally,
    read_buf: Vec<u8>,
    lens: Vec<usize>,
    slot: usize,
    expect: Vec<u8>,
    outgoing: Vec<u8>,
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    measure_start: Instant,
    measure_end: Option<Instant>,
    done: usize,
}

impl<'a> Worker<'a> {
    /// Opens this thread's clients (every `threads`th, from `index`), a batch at a time.
    fn connect(plan: &'a Plan, index: usize) -> Result<Worker<'a>> {
        let poll = Poll::new().map_err(|e| Error::io("creating the event loop", e))?;
        let ids: Vec<u64> = (index..plan.clients).step_by(plan.threads).map(|i| i as u64).collect();
        // A datagram reply longer than what was sent shows as a slot over-filled.
        let slot = plan.size + 1;
        let read_buf = if plan.proto.is_stream() { vec![0; 64 * 1024] } else { vec![0; slot * mmsg::BATCH] };
        let now = Instant::now();
        let mut worker = Worker {
            plan,
            poll,
            clients: Vec::with_capacity(ids.len()),
            tally: Tally::new(),
            read_buf,
            lens: vec![0; mmsg::BATCH],
            slot,
            expect: Vec::with_capacity(plan.size),
            outgoing: Vec::new(),
            due: BinaryHeap::new(),
            measure_start: now,
            measure_end: None,
            done: 0,
        };
        let failed = |id: u64, e: io::Error| Error::Connect {
            what: format!("client {id} cannot connect to {} {}", plan.proto, target_name(&plan.target)),
            source: e,
        };
        let mut waiting: VecDeque<u64> = ids.into();
        let mut connecting = 0;
        let mut events = Events::with_capacity(1024);
        let deadline = Instant::now() + Duration::from_secs(10) + Duration::from_millis(plan.clients as u64);
        while !waiting.is_empty() || connecting > 0 {
            let mut backlog_full = false;
            while connecting < CONNECT_BATCH
                && let Some(id) = waiting.pop_front()
            {
                let (mut sock, own_path, ready) = match Sock::open(plan, id) {
                    Ok(opened) => opened,
                    // A Unix listener's backlog is full: try again once the server has accepted some.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        waiting.push_front(id);
                        backlog_full = true;
                        break;
                    }
                    Err(e) => return Err(failed(id, e)),
                };
                let token = Token(worker.clients.len());
                let interest = if ready { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
                worker.poll.registry().register(sock.source(), token, interest).map_err(|e| failed(id, e))?;
                if !ready {
                    connecting += 1;
                }
                worker.clients.push(Client {
                    id,
                    sock,
                    own_path,
                    state: if ready { State::Running } else { State::Connecting },
                    in_flight: VecDeque::with_capacity(plan.window.min(64)),
                    next_seq: 0,
                    measured_sent: 0,
                    first_due: now,
                    scheduled: false,
                    partial: Vec::new(),
                    out: Vec::new(),
                    written: 0,
                    backlog: VecDeque::new(),
                    wants_write: !ready,
                    given_up: VecDeque::new(),
                });
            }
            if connecting == 0 && !backlog_full {
                continue;
            }
            if Instant::now() >= deadline {
                let id = waiting.front().copied().unwrap_or_default();
                return Err(failed(id, io::ErrorKind::TimedOut.into()));
            }
            let wait = if backlog_full { Duration::from_millis(1) } else { Duration::from_millis(100) };
            match worker.poll.poll(&mut events, Some(wait)) {
                Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(Error::io("waiting for events", e)),
                _ => {}
            }
            for event in events.iter() {
                let Some(client) = worker.clients.get_mut(event.token().0) else { continue };
                let Sock::Tcp(stream) = &client.sock else { continue };
                if client.state != State::Connecting {
                    continue;
                }
                match stream.take_error() {
                    Ok(Some(e)) | Err(e) => return Err(failed(client.id, e)),
                    Ok(None) => {}
                }
                match stream.peer_addr() {
                    Ok(_) => {
                        let _ = stream.set_nodelay(true);
                        client.state = State::Running;
                        connecting -= 1;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                    Err(e) => return Err(failed(client.id, e)),
                }
            }
        }
        // Connected: from now on WRITABLE is asked for only while output waits.
        let registry = worker.poll.registry();
        for (i, client) in worker.clients.iter_mut().enumerate() {
            if client.wants_write {
                client.wants_write = false;
                registry
                    .reregister(client.sock.source(), Token(i), Interest::READABLE)
                    .map_err(|e| failed(client.id, e))?;
            }
        }
        Ok(worker)
    }

    fn run(&mut self, shared: &Shared) -> Result<Tally> {
        let plan = self.plan;
        let start = Instant::now();
        self.measure_start = start + plan.warmup;
        if let Stop::Duration(d) = plan.stop {
            self.measure_end = Some(self.measure_start + d);
        }
        let mut measuring = false;
        let mut interrupted = false;
        let mut cpu_start = Duration::ZERO;
        let mut published = (0, 0, 0);
        let mut next_scan = start + SCAN;
        let mut next_publish = start + PUBLISH;
        let mut events = Events::with_capacity(1024);
        let mut timer = match plan.interval {
            Some(_) => Some(Timer::new(self.poll.registry()).map_err(|e| Error::io("creating a timer", e))?),
            None => None,
        };
        // One socket and no schedule: wait for each reply in the receive call itself, one system
        // call per reply where epoll takes two (the loop still wakes every SCAN for the timeouts).
        let direct =
            self.clients.len() == 1 && plan.interval.is_none() && self.clients[0].sock.wait_in_receive(SCAN).is_ok();
        for i in 0..self.clients.len() {
            if let Some(every) = plan.interval {
                // Spread the clients' schedules evenly over one interval.
                let offset = every.mul_f64(self.clients[i].id as f64 / plan.clients as f64);
                self.clients[i].first_due = start + offset;
            }
            self.refill(i, start);
        }
        loop {
            let now = Instant::now();
            if !measuring && now >= self.measure_start {
                measuring = true;
                cpu_start = sys::thread_cpu_time();
                self.tally.start = Some((self.measure_start, plan.server_clock.and_then(sys::cpu_time)));
            }
            if shared.interrupted.load(Ordering::Relaxed) && !interrupted {
                interrupted = true;
                for i in 0..self.clients.len() {
                    if self.clients[i].state == State::Running {
                        self.clients[i].state = State::Draining;
                        self.settle(i);
                    }
                }
            }
            if self.done == self.clients.len() {
                break;
            }
            let mut wake = next_scan.min(next_publish);
            if !measuring {
                wake = wake.min(self.measure_start);
            }
            if let (Some(Reverse((due, _))), Some(timer)) = (self.due.peek(), timer.as_mut()) {
                if *due <= now {
                    wake = now;
                } else {
                    timer.arm(*due, now);
                }
            }
            if direct && !self.clients[0].unwritten() && self.clients[0].state != State::Done {
                self.read(0, false, true);
            } else {
                match self.poll.poll(&mut events, Some(wake.saturating_duration_since(now))) {
                    Err(e) if e.kind() != io::ErrorKind::Interrupted => {
                        return Err(Error::io("waiting for events", e));
                    }
                    _ => {}
                }
                for event in events.iter() {
                    let i = event.token().0;
                    if event.token() == TIMER
                        && let Some(timer) = timer.as_mut()
                    {
                        timer.clear();
                    }
                    if i >= self.clients.len() {
                        continue;
                    }
                    if event.is_writable() {
                        self.flush(i);
                    }
                    if event.is_readable() || event.is_read_closed() || event.is_error() {
                        self.read(i, event.is_read_closed() || event.is_error(), false);
                    }
                }
            }
            let now = Instant::now();
            while let Some(&Reverse((due, i))) = self.due.peek() {
                if due > now {
                    break;
                }
                self.due.pop();
                self.clients[i].scheduled = false;
                self.refill(i, now);
            }
            if now >= next_scan {
                self.expire(now);
                next_scan = now + SCAN;
            }
            if now >= next_publish {
                let t = &self.tally;
                shared.round_trips.fetch_add(t.round_trips - published.0, Ordering::Relaxed);
                shared.lost.fetch_add(t.lost - published.1, Ordering::Relaxed);
                shared.wrong.fetch_add(t.wrong - published.2, Ordering::Relaxed);
                published = (t.round_trips, t.lost, t.wrong);
                next_publish = now + PUBLISH;
            }
        }
        let t = &self.tally;
        shared.round_trips.fetch_add(t.round_trips - published.0, Ordering::Relaxed);
        shared.lost.fetch_add(t.lost - published.1, Ordering::Relaxed);
        shared.wrong.fetch_add(t.wrong - published.2, Ordering::Relaxed);
        let mut tally = std::mem::take(&mut self.tally);
        if measuring {
            let cpu_end = sys::thread_cpu_time();
            tally.cpu = cpu_end.saturating_sub(cpu_start);
            tally.end = Some((Instant::now(), plan.server_clock.and_then(sys::cpu_time)));
        }
        Ok(tally)
    }

    /// Sends what client `i` may send now: up to its window, within the run, on schedule with --rate.
    fn refill(&mut self, i: usize, now: Instant) {
        let plan = self.plan;
        let client = &mut self.clients[i];
        if client.state != State::Running {
            return self.settle(i);
        }
        let stream = client.sock.is_stream();
        self.outgoing.clear();
        while client.in_flight.len() < plan.window {
            let since = match plan.interval {
                Some(every) => {
                    let due = client.first_due + every.saturating_mul(client.next_seq.min(u32::MAX as u64) as u32);
                    if due > now {
                        if !client.scheduled {
                            client.scheduled = true;
                            self.due.push(Reverse((due, i)));
                        }
                        break;
                    }
                    due
                }
                None => now,
            };
            let measured = since >= self.measure_start;
            let more = match (plan.stop, self.measure_end) {
                (Stop::Messages(n), _) => !measured || client.measured_sent < n,
                (Stop::Duration(_), Some(end)) => since < end,
                (Stop::Duration(_), None) => true,
            };
            if !more {
                client.state = State::Draining;
                break;
            }
            let seq = client.next_seq;
            client.next_seq += 1;
            client.measured_sent += u64::from(measured);
            client.in_flight.push_back(InFlight { seq, since, measured });
            self.tally.sent += 1;
            if stream {
                write_message(&mut client.out, client.id, seq, plan.size);
                client.out.push(b'\n');
            } else {
                write_message(&mut self.outgoing, client.id, seq, plan.size);
            }
        }
        if stream {
            self.flush(i);
        } else if !self.outgoing.is_empty() {
            let outgoing = std::mem::take(&mut self.outgoing);
            self.send_datagrams(i, &outgoing);
            self.outgoing = outgoing;
        }
        self.settle(i);
    }

    /// Sends datagrams of `plan.size` bytes each, keeping what the socket will not take yet.
    fn send_datagrams(&mut self, i: usize, data: &[u8]) {
        let size = self.plan.size;
        let client = &mut self.clients[i];
        let mut rest = data;
        if client.backlog.is_empty() {
            while !rest.is_empty() {
                let sent = if rest.len() > size {
                    mmsg::send_batch(client.sock.fd(), rest.chunks_exact(size).map(|datagram| (datagram, None)))
                } else {
                    client.sock.write(rest).map(|_| 1)
                };
                match sent {
                    Ok(n) => rest = &rest[n * size..],
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return self.fail(i, &e),
                }
            }
        }
        client.backlog.extend(rest.chunks(size).map(<[u8]>::to_vec));
        self.want_write(i);
    }

    /// Writes what waits for client `i`: stream bytes or datagrams held back.
    fn flush(&mut self, i: usize) {
        let client = &mut self.clients[i];
        if client.state == State::Done {
            return;
        }
        while client.written < client.out.len() {
            match client.sock.write(&client.out[client.written..]) {
                Ok(n) => client.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, &e),
            }
        }
        if client.written == client.out.len() {
            client.out.clear();
            client.written = 0;
        }
        while let Some(datagram) = client.backlog.front() {
            match client.sock.write(datagram) {
                Ok(_) => drop(client.backlog.pop_front()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail(i, &e),
            }
        }
        self.want_write(i);
        self.settle(i);
    }

    /// Asks for WRITABLE only while output waits, so a client that keeps up costs no extra wake-ups.
    fn want_write(&mut self, i: usize) {
        let client = &mut self.clients[i];
        let wants = client.unwritten();
        if wants == client.wants_write || client.state == State::Done {
            return;
        }
        let interest = if wants { Interest::READABLE | Interest::WRITABLE } else { Interest::READABLE };
        match self.poll.registry().reregister(client.sock.source(), Token(i), interest) {
            Ok(()) => client.wants_write = wants,
            Err(e) => self.fail(i, &e),
        }
    }

    /// Reads and checks every reply waiting for client `i`, then sends what its window allows.
    /// With `wait`, the first receive waits for a reply (see [`Sock::wait_in_receive`]).
    fn read(&mut self, i: usize, closing: bool, wait: bool) {
        let plan = self.plan;
        let client = &mut self.clients[i];
        // A client that is done still takes what comes (late replies, counted): a reply left
        // unread in a Unix datagram socket holds the server's send buffer, and enough of them
        // stop a server from sending to anyone.
        if client.state == State::Connecting {
            return;
        }
        let stream = client.sock.is_stream();
        let mut now = Instant::now();
        loop {
            let got = if stream {
                client.sock.read(&mut self.read_buf, wait)
            } else if wait {
                // One datagram: whatever else is queued, the next wait returns at once.
                let got = client.sock.read(&mut self.read_buf[..self.slot], true);
                got.map(|n| {
                    self.lens[0] = n;
                    1
                })
            } else {
                mmsg::recv_batch(client.sock.fd(), &mut self.read_buf, self.slot, &mut self.lens, None)
            };
            let n = match got {
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
            let check = |client: &mut Client, reply: &[u8], tally: &mut Tally, expect: &mut Vec<u8>| {
                check_reply(client, reply, now, plan, tally, expect)
            };
            if stream {
                let mut data = &self.read_buf[..n];
                if !client.partial.is_empty() {
                    match memchr::memchr(b'\n', data) {
                        Some(end) => {
                            let mut line = std::mem::take(&mut client.partial);
                            line.extend_from_slice(&data[..end]);
                            check(client, &line, &mut self.tally, &mut self.expect);
                            line.clear();
                            client.partial = line;
                            data = &data[end + 1..];
                        }
                        None => {
                            client.partial.extend_from_slice(data);
                            data = &[];
                        }
                    }
                }
                while let Some(end) = memchr::memchr(b'\n', data) {
                    check(client, &data[..end], &mut self.tally, &mut self.expect);
                    data = &data[end + 1..];
                }
                client.partial.extend_from_slice(data);
                if client.partial.len() > plan.size.max(1 << 16) * 4 {
                    // No line end in sight: whatever this is, it is not a reply.
                    self.tally.wrong += 1;
                    client.partial.clear();
                }
                // A short read emptied the socket (epoll(7)): no need for a read that would block.
                // A waiting read takes one turn: what is left, the next wait returns at once.
                if wait || (n < self.read_buf.len() && !closing) {
                    break;
                }
            } else {
                for (j, &len) in self.lens[..n].iter().enumerate() {
                    let reply = &self.read_buf[j * self.slot..j * self.slot + len.min(self.slot)];
                    if len > self.slot {
                        self.tally.wrong += 1;
                    } else {
                        check(client, reply, &mut self.tally, &mut self.expect);
                    }
                }
                // Fewer datagrams than asked for: the queue is empty.
                if wait || n < mmsg::BATCH {
                    break;
                }
            }
        }
        self.refill(i, now);
    }

    /// Counts replies overdue as lost and lets their clients send on.
    fn expire(&mut self, now: Instant) {
        let timeout = self.plan.timeout;
        for i in 0..self.clients.len() {
            let client = &mut self.clients[i];
            let mut expired = false;
            while let Some(first) = client.in_flight.front() {
                if now.saturating_duration_since(first.since) < timeout {
                    break;
                }
                if client.given_up.len() == REMEMBER_GIVEN_UP {
                    client.given_up.pop_front();
                }
                client.given_up.push_back(first.seq);
                client.in_flight.pop_front();
                self.tally.lost += 1;
                expired = true;
            }
            if expired {
                self.refill(i, now);
            }
        }
    }

    /// A client whose socket failed: what it awaited is lost, and it sends no more.
    fn fail(&mut self, i: usize, err: &io::Error) {
        let client = &mut self.clients[i];
        if client.state == State::Done {
            return;
        }
        self.tally.lost += client.in_flight.len() as u64;
        client.in_flight.clear();
        self.tally.failed += 1;
        if self.tally.first_failure.is_none() {
            self.tally.first_failure = Some(format!("client {}: {}", client.id, describe(err)));
        }
        let _ = self.poll.registry().deregister(client.sock.source());
        client.state = State::Done;
        self.done += 1;
    }

    /// Marks client `i` done once it sends no more and awaits nothing.
    fn settle(&mut self, i: usize) {
        let client = &mut self.clients[i];
        if client.state == State::Draining && client.in_flight.is_empty() && !client.unwritten() {
            client.state = State::Done;
            self.done += 1;
        }
    }
}

/// Matches one reply to the message it answers; counts it right (and times it), wrong, or late.
fn check_reply(client: &mut Client, reply: &[u8], now: Instant, plan: &Plan, tally: &mut Tally, expect: &mut Vec<u8>) {
    let Some((from, seq)) = parse_tag(reply).filter(|&(from, _)| from == client.id) else {
        // Not one of this client's messages, uppercased or not.
        tally.wrong += 1;
        return;
    };
    debug_assert_eq!(from, client.id);
    let position = match client.in_flight.front() {
        Some(first) if first.seq == seq => Some(0),
        _ => client.in_flight.iter().position(|f| f.seq == seq),
    };
    let Some(position) = position else {
        if client.given_up.contains(&seq) {
            tally.late += 1;
        } else {
            // A second reply to one message, or one to a message never sent.
            tally.wrong += 1;
        }
        return;
    };
    let Some(sent) = client.in_flight.remove(position) else { return };
    expect.clear();
    write_message(expect, client.id, seq, plan.size);
    let right =
        reply.len() == expect.len() && reply.iter().zip(expect.iter()).all(|(r, e)| *r == e.to_ascii_uppercase());
    if !right {
        tally.wrong += 1;
        return;
    }
    if sent.measured {
        tally.round_trips += 1;
        let nanos = now.saturating_duration_since(sent.since).as_nanos().min(u64::MAX as u128) as u64;
        tally.histogram.saturating_record(nanos.max(1));
        tally.last_reply = Some(now);
    }
}

/// How a target is named in messages.
pub fn target_name(target: &Target) -> String {
    match target {
        Target::Inet(addr) => addr.to_string(),
        Target::Path(path) => path.display().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_unique_and_tagged() {
        let mut a = Vec::new();
        write_message(&mut a, 12, 345, 40);
        assert_eq!(a.len(), 40);
        assert!(a.starts_with(b"c12s345."));
        assert!(a.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.'));
        assert_eq!(parse_tag(&a.to_ascii_uppercase()), Some((12, 345)));
        assert_eq!(parse_tag(&a), Some((12, 345)));
        assert_eq!(parse_tag(b"C1S"), None);
        assert_eq!(parse_tag(b"hello"), None);
        let mut b = Vec::new();
        write_message(&mut b, 1, 2345, 40);
        assert_ne!(a, b);
        assert!(tag_len(10_000) >= "c9999s999999999999.".len());
    }
}
