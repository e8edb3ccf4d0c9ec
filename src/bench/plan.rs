//! What every client thread is told (the plan and the server's address) and what the threads share
//! while they run (the start barrier, the stop flags and the live counters).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use crate::config::{Expect, Stop};
use crate::proto::Proto;

/// Where the server is: resolved once by the starting thread, so that no client thread resolves.
#[derive(Clone, Debug)]
pub enum Target {
    /// A TCP or UDP server.
    Inet(SocketAddr),
    /// A Unix stream or datagram server's socket file.
    Path(PathBuf),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Inet(addr) => addr.fmt(f),
            Target::Path(path) => path.display().fmt(f),
        }
    }
}

/// What every client thread does, the same for all; read-only once the threads start.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The socket kind every client opens.
    pub proto: Proto,
    /// The server every client talks to.
    pub target: Target,
    /// Clients in all threads together; client ids run from 0 to `clients - 1`.
    pub clients: usize,
    /// Client threads: thread `i` takes clients `i`, `i + threads`, `i + 2 * threads`…
    pub threads: usize,
    /// Bytes in each message, line end excluded.
    pub size: usize,
    /// What each reply must be: its message uppercased, or unchanged.
    pub expect: Expect,
    /// Most messages one client has awaiting replies at once.
    pub window: usize,
    /// When the clients stop sending.
    pub stop: Stop,
    /// Open loop: each client's time between scheduled sends.
    pub interval: Option<Duration>,
    /// Sent and checked but not counted, so that caches, buffers and the server's slots are warm.
    pub warmup: Duration,
    /// A reply later than this is counted lost.
    pub timeout: Duration,
    /// A TCP connect that takes longer than this has failed.
    pub connect_timeout: Duration,
    /// A new connection (datagrams: a new socket) for every message; the window is 1.
    pub reconnect: bool,
    /// TCP_NODELAY on the clients' TCP connections.
    pub nodelay: bool,
    /// Write calls per message on a byte stream (2: its first half, then the rest).
    pub writes: usize,
    /// Where Unix datagram clients bind their own sockets, which the server replies to.
    pub socket_dir: PathBuf,
    /// The in-process server thread's CPU clock, read at the start and end of the measurement.
    pub server_clock: Option<libc::clockid_t>,
}

/// What the client threads and the thread that started them share.
pub struct Shared {
    /// Passed once by every client thread when its clients are connected, and by the starter: no
    /// thread starts sending while another is still connecting, so connects are not measured.
    pub ready: Barrier,
    /// Set by a thread whose clients could not connect: the others stop.
    pub abort: AtomicBool,
    /// Set on SIGINT, SIGTERM or SIGHUP: the clients send no more, and the run ends with what it measured.
    pub interrupted: Arc<AtomicBool>,
    /// Measured right replies so far, for the progress line (brought up to date every 100 ms).
    pub round_trips: AtomicU64,
    /// Replies given up on so far, for the progress line.
    pub lost: AtomicU64,
    /// Wrong replies so far, for the progress line.
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
