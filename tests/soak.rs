//! Scale: thousands of TCP connections and distinct UDP peers against one server, every client getting
//! exactly its own replies. The 10,000-client run is `scripts/soak.sh`; 1,000 run here on every test.
//!
//! The load generator is one single-threaded mio loop in this process; the server is the real binary in
//! another, so each has its own open-file limit.

mod common;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Proto, Server};

use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token};

/// Connects in progress at once: the listen backlog (and SYN queue) never overflows.
const CONNECT_WINDOW: usize = 500;
/// Datagrams awaiting their reply at once: what the server's receive buffer holds without dropping.
const DATAGRAM_WINDOW: usize = 64;
/// How long one datagram's reply may take before it counts as lost.
const DATAGRAM_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn tcp_1000_clients_each_get_their_own_replies() {
    let load = Load::new(1000, 3, Duration::from_secs(90));
    let outcome = run(Proto::Tcp, &load);
    outcome.assert_clean(&load);
}

#[test]
fn udp_1000_peers_each_get_their_own_replies() {
    let load = Load::new(1000, 3, Duration::from_secs(90));
    let outcome = run(Proto::Udp, &load);
    outcome.assert_clean(&load);
}

/// The 10,000-client soak: `SOAK_CLIENTS`, `SOAK_MESSAGES` and `SOAK_PROTO` (tcp, udp or both)
/// change it. Run by `scripts/soak.sh`, in release mode.
#[test]
#[ignore = "heavy: run by scripts/soak.sh"]
fn soak() {
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let load = Load::new(env("SOAK_CLIENTS", 10_000), env("SOAK_MESSAGES", 5), Duration::from_secs(300));
    let protos = std::env::var("SOAK_PROTO").unwrap_or_else(|_| "tcp,udp".into());
    let mut failed = false;
    for proto in [Proto::Tcp, Proto::Udp] {
        if protos.split(',').any(|p| p == proto.name()) {
            let outcome = run(proto, &load);
            outcome.print();
            failed |= !outcome.is_clean(&load);
        }
    }
    assert!(!failed, "soak lost or crossed replies: see above");
}

struct Load {
    clients: usize,
    messages: usize,
    time_limit: Duration,
}

impl Load {
    fn new(clients: usize, messages: usize, time_limit: Duration) -> Self {
        Load { clients, messages, time_limit }
    }
}

/// What one run saw. Memory figures are the server's, in KiB, from /proc/PID/status.
#[derive(Debug, Default)]
struct Outcome {
    proto: &'static str,
    clients: usize,
    sent: usize,
    replies: usize,
    lost: usize,
    wrong: usize,
    failures: Vec<String>,
    elapsed: Duration,
    rss_before: u64,
    rss_all_idle: u64,
    rss_after_use: u64,
    peak: u64,
    summary: Option<(usize, usize)>,
    server_exit: Option<i32>,
    server_panicked: bool,
}

impl Outcome {
    fn print(&self) {
        let per = |rss: u64| (rss.saturating_sub(self.rss_before) * 1024) / self.clients.max(1) as u64;
        let (what, idle) =
            if self.proto == "tcp" { ("connection", "idle connected") } else { ("peer", "all peers known") };
        println!(
            "soak {}: clients {}, messages {}, replies {}, lost {}, wrong {}, time {:.1}s",
            self.proto,
            self.clients,
            self.sent,
            self.replies,
            self.lost,
            self.wrong,
            self.elapsed.as_secs_f64()
        );
        println!(
            "soak {}: server RSS {} KiB at start, {} KiB {} ({} bytes per {what}), {} KiB after every \
             message ({} bytes per {what}), peak (VmHWM) {} KiB",
            self.proto,
            self.rss_before,
            self.rss_all_idle,
            idle,
            per(self.rss_all_idle),
            self.rss_after_use,
            per(self.rss_after_use),
            self.peak,
        );
        if let Some((clients, messages)) = self.summary {
            println!("soak {}: server summary: served {clients} clients, {messages} messages", self.proto);
        }
        for failure in self.failures.iter().take(10) {
            println!("soak {}: {failure}", self.proto);
        }
    }

    fn is_clean(&self, load: &Load) -> bool {
        let total = load.clients * load.messages;
        self.failures.is_empty()
            && self.lost == 0
            && self.wrong == 0
            && self.replies == total
            && self.summary == Some((load.clients, total))
            && self.server_exit == Some(0)
            && !self.server_panicked
    }

    fn assert_clean(&self, load: &Load) {
        self.print();
        assert!(self.is_clean(load), "{self:#?}");
    }
}

fn run(proto: Proto, load: &Load) -> Outcome {
    let needed = load.clients as u64 + 64;
    // Up to the hard limit (0: never asks to raise the hard limit itself).
    let limit = netpair::sys::raise_open_file_limit(0);
    assert!(limit >= needed, "open-file limit {limit} is below the {needed} this run needs (ulimit -Hn)");
    let server = Target::start(proto, load);
    let mut outcome = Outcome {
        proto: proto.name(),
        clients: load.clients,
        rss_before: server.status_kib("VmRSS"),
        ..Outcome::default()
    };
    let started = Instant::now();
    let deadline = started + load.time_limit;
    let result = match proto {
        Proto::Tcp => tcp_load(&server, load, deadline, &mut outcome),
        Proto::Udp => udp_load(&server, load, deadline, &mut outcome),
        other => Err(io::Error::other(format!("the load generator speaks tcp and udp, not {}", other.name()))),
    };
    if let Err(e) = result {
        outcome.failures.push(format!("load generator: {e}"));
    }
    outcome.elapsed = started.elapsed();
    outcome.peak = server.status_kib("VmHWM");
    let out = server.server.stop();
    let stderr = out.stderr();
    outcome.server_exit = out.code;
    outcome.server_panicked = stderr.contains("panicked");
    outcome.summary = common::served(&stderr);
    if outcome.summary.is_none() || outcome.server_panicked {
        outcome.failures.push(format!("server stderr:\n{stderr}"));
    }
    outcome
}

fn message(client: usize, seq: usize) -> String {
    format!("client {client} says hello {seq}")
}

/// Every TCP client connects (at most `CONNECT_WINDOW` at a time) and stays connected; once the server
/// has them all, each sends its messages one at a time, waiting for each reply.
fn tcp_load(server: &Target, load: &Load, deadline: Instant, outcome: &mut Outcome) -> io::Result<()> {
    struct Client {
        sock: TcpStream,
        connected: bool,
        sent: usize,
        received: usize,
        output: Vec<u8>,
        input: Vec<u8>,
    }
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4096);
    let mut clients: Vec<Client> = Vec::with_capacity(load.clients);
    let mut connecting = 0;
    let mut connected = 0;
    while connected < load.clients {
        while clients.len() < load.clients && connecting < CONNECT_WINDOW {
            let mut sock = TcpStream::connect(server.addr)?;
            let token = Token(clients.len());
            poll.registry().register(&mut sock, token, Interest::READABLE | Interest::WRITABLE)?;
            clients.push(Client {
                sock,
                connected: false,
                sent: 0,
                received: 0,
                output: Vec::new(),
                input: Vec::new(),
            });
            connecting += 1;
        }
        check_deadline(deadline, || format!("{connected} of {} connected", load.clients))?;
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            let client = &mut clients[event.token().0];
            if client.connected {
                continue;
            }
            if let Some(e) = client.sock.take_error()? {
                return Err(io::Error::new(e.kind(), format!("connect failed: {e}")));
            }
            match client.sock.peer_addr() {
                Ok(_) => {
                    client.connected = true;
                    connecting -= 1;
                    connected += 1;
                }
                // Spurious: still connecting.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {}
                Err(e) => return Err(e),
            }
        }
    }
    server.wait_for_peers(load.clients, deadline)?;
    outcome.rss_all_idle = server.settled_rss();

    let queue = |client: &mut Client, id: usize| {
        client.output.extend_from_slice(message(id, client.sent).as_bytes());
        client.output.push(b'\n');
        client.sent += 1;
    };
    let mut done = 0;
    for (id, client) in clients.iter_mut().enumerate() {
        queue(client, id);
        write_out(&mut client.sock, &mut client.output)?;
    }
    let mut buf = vec![0; 64 * 1024];
    while done < load.clients {
        check_deadline(deadline, || format!("{done} of {} clients done", load.clients))?;
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            let id = event.token().0;
            let client = &mut clients[id];
            if event.is_writable() {
                write_out(&mut client.sock, &mut client.output)?;
            }
            if !event.is_readable() {
                continue;
            }
            // Edge-triggered: read until the socket says it is empty.
            loop {
                match client.sock.read(&mut buf) {
                    Ok(0) => {
                        outcome.failures.push(format!("client {id}: server closed the connection"));
                        break;
                    }
                    Ok(n) => client.input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io::Error::new(e.kind(), format!("client {id}: {e}"))),
                }
            }
            while let Some(end) = client.input.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = client.input.drain(..=end).collect();
                let expected = message(id, client.received).to_uppercase();
                if line[..end] == *expected.as_bytes() {
                    outcome.replies += 1;
                } else {
                    outcome.wrong += 1;
                    outcome
                        .failures
                        .push(format!("client {id} expected {expected:?}, got {:?}", String::from_utf8_lossy(&line)));
                }
                client.received += 1;
                if client.received == load.messages {
                    done += 1;
                } else {
                    queue(client, id);
                }
            }
            write_out(&mut client.sock, &mut client.output)?;
        }
    }
    outcome.sent = clients.iter().map(|c| c.sent).sum();
    outcome.lost = outcome.sent - outcome.replies - outcome.wrong;
    outcome.rss_after_use = server.settled_rss();
    drop(clients);
    server.wait_for_peers_gone(load.clients, deadline)
}

fn write_out(sock: &mut TcpStream, output: &mut Vec<u8>) -> io::Result<()> {
    while !output.is_empty() {
        match sock.write(output) {
            Ok(n) => drop(output.drain(..n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Every UDP peer has its own socket (its own source port), connected to the server. Peers take turns
/// in rounds, one message each, with at most `DATAGRAM_WINDOW` awaiting a reply at once.
fn udp_load(server: &Target, load: &Load, deadline: Instant, outcome: &mut Outcome) -> io::Result<()> {
    struct Peer {
        sock: UdpSocket,
        sent: usize,
        waiting_since: Option<Instant>,
    }
    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4096);
    let mut peers = Vec::with_capacity(load.clients);
    for id in 0..load.clients {
        let mut sock = UdpSocket::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
        sock.connect(server.addr)?;
        poll.registry().register(&mut sock, Token(id), Interest::READABLE)?;
        peers.push(Peer { sock, sent: 0, waiting_since: None });
    }
    let mut turns: VecDeque<usize> = (0..load.clients).collect();
    let mut in_flight = 0;
    let mut first_round = 0;
    let mut buf = vec![0; 64 * 1024];
    let mut last_scan = Instant::now();
    while in_flight > 0 || !turns.is_empty() {
        check_deadline(deadline, || format!("{} replies of {}", outcome.replies, load.clients * load.messages))?;
        while in_flight < DATAGRAM_WINDOW {
            let Some(id) = turns.pop_front() else { break };
            let peer = &mut peers[id];
            match peer.sock.send(message(id, peer.sent).as_bytes()) {
                Ok(_) => {
                    peer.sent += 1;
                    peer.waiting_since = Some(Instant::now());
                    in_flight += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    turns.push_front(id);
                    break;
                }
                Err(e) => return Err(io::Error::new(e.kind(), format!("peer {id}: {e}"))),
            }
        }
        poll.poll(&mut events, Some(Duration::from_millis(20)))?;
        for event in events.iter() {
            let id = event.token().0;
            let peer = &mut peers[id];
            loop {
                let n = match peer.sock.recv(&mut buf) {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io::Error::new(e.kind(), format!("peer {id}: {e}"))),
                };
                let expected = message(id, peer.sent - 1).to_uppercase();
                if peer.waiting_since.is_none() || buf[..n] != *expected.as_bytes() {
                    outcome.wrong += 1;
                    outcome
                        .failures
                        .push(format!("peer {id} expected {expected:?}, got {:?}", String::from_utf8_lossy(&buf[..n])));
                    continue;
                }
                outcome.replies += 1;
                peer.waiting_since = None;
                in_flight -= 1;
                if peer.sent == 1 {
                    first_round += 1;
                    if first_round == load.clients {
                        server.wait_for_peers(load.clients, deadline)?;
                        outcome.rss_all_idle = server.settled_rss();
                    }
                }
                if peer.sent < load.messages {
                    turns.push_back(id);
                }
            }
        }
        if last_scan.elapsed() > Duration::from_millis(250) {
            last_scan = Instant::now();
            for (id, peer) in peers.iter_mut().enumerate() {
                if peer.waiting_since.is_some_and(|t| t.elapsed() > DATAGRAM_TIMEOUT) {
                    outcome.lost += 1;
                    outcome.failures.push(format!("peer {id}: no reply to message {}", peer.sent - 1));
                    peer.waiting_since = None;
                    in_flight -= 1;
                }
            }
        }
    }
    outcome.sent = peers.iter().map(|p| p.sent).sum();
    outcome.rss_after_use = server.settled_rss();
    Ok(())
}

fn check_deadline(deadline: Instant, progress: impl FnOnce() -> String) -> io::Result<()> {
    if Instant::now() > deadline {
        return Err(io::Error::new(io::ErrorKind::TimedOut, format!("out of time: {}", progress())));
    }
    Ok(())
}

/// The server under load, with what the load generator needs to know about it.
struct Target {
    server: Server,
    addr: SocketAddr,
}

impl Target {
    fn start(proto: Proto, load: &Load) -> Target {
        let max_clients = (load.clients + 16).to_string();
        let server = Server::start(proto, &["--max-clients", &max_clients, "--idle-timeout", "0"]);
        let addr = server.address.parse().unwrap_or_else(|e| panic!("address {:?}: {e}", server.address));
        Target { server, addr }
    }

    /// A field of /proc/PID/status, in KiB (0 once the server is gone).
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.server.process.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Resident memory once it has stopped moving (the server may still be printing).
    fn settled_rss(&self) -> u64 {
        let mut last = self.status_kib("VmRSS");
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.status_kib("VmRSS");
            if now == last {
                break;
            }
            last = now;
        }
        last
    }

    /// Lines of the server's transcript that start with `prefix`.
    fn lines(&self, prefix: &str) -> usize {
        self.server.process.stdout().lines().filter(|l| l.starts_with(prefix)).count()
    }

    fn wait_for_peers(&self, count: usize, deadline: Instant) -> io::Result<()> {
        self.wait_for_lines("Connection from: ", count, deadline)
    }

    fn wait_for_peers_gone(&self, count: usize, deadline: Instant) -> io::Result<()> {
        self.wait_for_lines("Disconnected: ", count, deadline)
    }

    fn wait_for_lines(&self, prefix: &str, count: usize, deadline: Instant) -> io::Result<()> {
        loop {
            let seen = self.lines(prefix);
            if seen >= count {
                return Ok(());
            }
            check_deadline(deadline, || format!("{seen} of {count} {prefix:?} lines from the server"))?;
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
