//! The bench client's own socket, one of five kinds, with the few calls its loop makes on it, and
//! the timer that wakes the loop for `--rate`. Opening goes through `net` (resolution done, UDP
//! bind-and-connect, socket files); sending and receiving are rustix calls on the descriptor, which
//! take flags per call (never wait, no SIGPIPE) where std's would need the socket's mode changed.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use mio::net::{TcpStream, UdpSocket, UnixDatagram, UnixStream};
use mio::{Interest, Registry, Token};
use rustix::net::sockopt::{Timeout, set_socket_timeout};
use rustix::net::{RecvFlags, SendFlags};
use rustix::time::{Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec};

use super::plan::{Plan, Target};
use crate::net::{SocketFile, seqpacket_connect, udp_connected};
use crate::proto::Proto;

/// One client socket, stream or datagram. A Unix datagram client binds a file of its own, which
/// the server replies to; the guard removes it when the socket goes.
pub enum Sock {
    /// A TCP connection (perhaps still connecting).
    Tcp(TcpStream),
    /// A Unix stream connection.
    Unix(UnixStream),
    /// A UDP socket connected to the server.
    Udp(UdpSocket),
    /// A Unix datagram socket connected to the server, and its own socket file, held only to be
    /// removed when the socket goes (after it, as fields drop in order).
    Unixgram { sock: UnixDatagram, _file: SocketFile },
    /// A Unix seqpacket connection (mio's Unix stream type carries it: the calls are the same), whose
    /// messages go as datagrams do, one per send.
    Seqpacket(UnixStream),
}

impl Sock {
    /// Opens client `id`'s non-blocking socket to the plan's target; true when it is ready now
    /// (a TCP connect completes later, and says so with WRITABLE).
    pub fn open(plan: &Plan, id: u64) -> io::Result<(Sock, bool)> {
        Sock::open_nth(plan, id, 0)
    }

    /// [`Sock::open`] for client `id`'s socket number `nth` (`--reconnect` opens one per message).
    /// A Unix datagram client's file alternates between two names, so that the new socket can be
    /// bound while the one before it is still open.
    pub fn open_nth(plan: &Plan, id: u64, nth: u64) -> io::Result<(Sock, bool)> {
        Ok(match (plan.proto, &plan.target) {
            (Proto::Tcp, Target::Inet(addr)) => (Sock::Tcp(TcpStream::connect(*addr)?), false),
            (Proto::Udp, Target::Inet(addr)) => (Sock::Udp(udp_connected(*addr)?), true),
            (Proto::Unix, Target::Path(path)) => (Sock::Unix(UnixStream::connect(path)?), true),
            (Proto::Seqpacket, Target::Path(path)) => {
                let addr = std::os::unix::net::SocketAddr::from_pathname(path)?;
                (Sock::Seqpacket(UnixStream::from_std(seqpacket_connect(&addr, true)?)), true)
            }
            (Proto::Unixgram, Target::Path(path)) => {
                let spare = if nth % 2 == 1 { "b" } else { "" };
                let own = plan.socket_dir.join(format!("c{id}{spare}.sock"));
                let sock = UnixDatagram::bind(&own)?;
                // Guarded from here on: a failed connect removes the file as it returns.
                let file = SocketFile::bound(&own);
                sock.connect(path)?;
                (Sock::Unixgram { sock, _file: file }, true)
            }
            _ => return Err(io::Error::new(io::ErrorKind::InvalidInput, "address does not fit the socket kind")),
        })
    }

    /// What mio registers.
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            Sock::Tcp(s) => s,
            Sock::Unix(s) => s,
            Sock::Udp(s) => s,
            Sock::Unixgram { sock, .. } => sock,
            Sock::Seqpacket(s) => s,
        }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Sock::Tcp(s) => s.as_fd(),
            Sock::Unix(s) => s.as_fd(),
            Sock::Udp(s) => s.as_fd(),
            Sock::Unixgram { sock, .. } => sock.as_fd(),
            Sock::Seqpacket(s) => s.as_fd(),
        }
    }

    /// The descriptor, for the batched datagram calls of `net::mmsg`.
    pub fn raw_fd(&self) -> RawFd {
        self.fd().as_raw_fd()
    }

    /// The TCP connection, while its connect may still be under way.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match self {
            Sock::Tcp(s) => Some(s),
            _ => None,
        }
    }

    /// True for a byte stream (TCP, Unix stream), whose replies are lines.
    pub fn is_stream(&self) -> bool {
        matches!(self, Sock::Tcp(_) | Sock::Unix(_))
    }

    /// True for a seqpacket connection, where an empty message is the server's end of file.
    pub fn is_seqpacket(&self) -> bool {
        matches!(self, Sock::Seqpacket(_))
    }

    /// Reads bytes (stream) or one datagram; waits only when `wait` (and the socket blocks).
    pub fn read(&mut self, buf: &mut [u8], wait: bool) -> io::Result<usize> {
        let flags = if wait { RecvFlags::empty() } else { RecvFlags::DONTWAIT };
        let (n, _) = rustix::net::recv(self.fd(), buf, flags)?;
        Ok(n)
    }

    /// Writes bytes (stream) or sends one datagram, never waiting.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // No SIGPIPE from a stream the server closed: the error says so instead.
        Ok(rustix::net::send(self.fd(), buf, SendFlags::DONTWAIT | SendFlags::NOSIGNAL)?)
    }

    /// Makes receives wait (at most `timeout`) unless told not to: for a thread with one socket,
    /// which then waits in its receive call, as a plain blocking client does, instead of in epoll.
    /// Sends stay non-blocking: they say so per call.
    pub fn wait_in_receive(&self, timeout: Duration) -> io::Result<()> {
        rustix::io::ioctl_fionbio(self.fd(), false)?;
        set_socket_timeout(self.fd(), Timeout::Recv, Some(timeout))?;
        Ok(())
    }
}

/// Wakes the loop when the next scheduled send is due. epoll's own timeout counts whole
/// milliseconds, and every microsecond late would count as latency under `--rate`.
pub struct Timer {
    fd: OwnedFd,
    /// When it is set to fire, so that an unchanged deadline costs no system call.
    armed: Option<Instant>,
}

impl Timer {
    /// A timer registered for READABLE under `token`, not yet armed.
    pub fn new(registry: &Registry, token: Token) -> io::Result<Timer> {
        let fd =
            rustix::time::timerfd_create(TimerfdClockId::Monotonic, TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC)?;
        registry.register(&mut mio::unix::SourceFd(&fd.as_raw_fd()), token, Interest::READABLE)?;
        Ok(Timer { fd, armed: None })
    }

    /// Sets the timer to fire at `at` (a no-op when it already will).
    pub fn arm(&mut self, at: Instant, now: Instant) {
        if self.armed == Some(at) {
            return;
        }
        // A zero value would disarm the timer instead: a deadline already past fires at once.
        let wait = at.saturating_duration_since(now).max(Duration::from_nanos(1));
        let zero = Timespec { tv_sec: 0, tv_nsec: 0 };
        let Ok(value) = Timespec::try_from(wait) else { return };
        let spec = Itimerspec { it_interval: zero, it_value: value };
        // Not armed, the loop still wakes on its own deadline (within a millisecond of this one).
        if rustix::time::timerfd_settime(&self.fd, TimerfdTimerFlags::empty(), &spec).is_ok() {
            self.armed = Some(at);
        }
    }

    /// Takes the expiry, so the next one is a new event.
    pub fn clear(&mut self) {
        let mut count = [0u8; 8];
        // Nothing to read (a spurious wake-up) is WouldBlock, and just as good.
        let _ = rustix::io::read(&self.fd, &mut count);
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Stop;

    fn plan_for(proto: Proto, target: Target, socket_dir: &std::path::Path) -> Plan {
        Plan {
            proto,
            target,
            clients: 1,
            threads: 1,
            size: 32,
            window: 1,
            stop: Stop::Messages(1),
            interval: None,
            warmup: Duration::ZERO,
            expect: crate::config::Expect::Upper,
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            reconnect: false,
            nodelay: true,
            writes: 1,
            socket_dir: socket_dir.to_path_buf(),
            server_clock: None,
        }
    }

    #[test]
    fn a_unixgram_client_file_lives_as_long_as_its_socket() {
        let dir = tempfile::tempdir().unwrap();
        let server_path = dir.path().join("server.sock");
        let server = std::os::unix::net::UnixDatagram::bind(&server_path).unwrap();
        let own = dir.path().join("c7.sock");

        let plan = plan_for(Proto::Unixgram, Target::Path(server_path.clone()), dir.path());
        let (mut sock, ready) = Sock::open(&plan, 7).unwrap();
        assert!(ready && !sock.is_stream() && own.exists());
        assert_eq!(sock.write(b"hello").unwrap(), 5);
        let mut buf = [0u8; 16];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!((&buf[..n], from.as_pathname()), (&b"hello"[..], Some(own.as_path())));
        server.send_to(b"HELLO", &own).unwrap();
        assert_eq!(sock.read(&mut buf, false).unwrap(), 5);
        assert_eq!(sock.read(&mut buf, false).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        drop(sock);
        assert!(!own.exists(), "the client's socket file outlived its socket");

        // No server there: the connect fails and the file just bound goes with it.
        let plan = plan_for(Proto::Unixgram, Target::Path(dir.path().join("nobody.sock")), dir.path());
        assert!(Sock::open(&plan, 7).is_err());
        assert!(!own.exists(), "a client that could not connect left its socket file");
    }

    #[test]
    fn a_receive_made_to_wait_gives_up_after_its_timeout() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let plan = plan_for(Proto::Udp, Target::Inet(server.local_addr().unwrap()), dir.path());
        let (mut sock, _) = Sock::open(&plan, 0).unwrap();
        sock.wait_in_receive(Duration::from_millis(20)).unwrap();
        let started = Instant::now();
        let err = sock.read(&mut [0u8; 8], true).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "SO_RCVTIMEO's EAGAIN");
        assert!(started.elapsed() >= Duration::from_millis(15), "it did wait");
        // Sends never wait, whatever the socket's mode.
        assert_eq!(sock.write(b"x").unwrap(), 1);
    }

    #[test]
    fn the_timer_fires_once_armed_and_clears() {
        let mut poll = mio::Poll::new().unwrap();
        let mut timer = Timer::new(poll.registry(), Token(1)).unwrap();
        let now = Instant::now();
        timer.arm(now + Duration::from_millis(2), now);
        let mut events = mio::Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(5))).unwrap();
        assert!(events.iter().any(|e| e.token() == Token(1)), "no timer event within 5 s");
        timer.clear();
        assert_eq!(timer.armed, None);
    }
}
