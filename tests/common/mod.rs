//! Test harness: run the real `netpair` binary (and other programs) as child processes with every wait
//! under a deadline, start a server on port 0 or a temporary socket path, and read its bound address.
#![allow(unsafe_code)] // a test drives its children with raw calls (kill, pre_exec, SO_LINGER)
#![allow(dead_code)] // each test file uses a different part of it

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The counts in a server's closing line, `netpair: served N client(s), M message(s)` (numbers
/// grouped by thousands: `1,000 messages`).
pub fn served(stderr: &str) -> Option<(usize, usize)> {
    let line = stderr.lines().find_map(|l| l.strip_prefix("netpair: served "))?;
    // What the kernel said of the sockets follows, after a `;`.
    let line = line.split(';').next()?;
    let (clients, messages) = line.split_once(", ")?;
    let number = |part: &str, noun: &str| {
        let (n, word) = part.split_once(' ')?;
        (word == noun || word == format!("{noun}s")).then_some(())?;
        n.replace(',', "").parse().ok()
    };
    Some((number(clients, "client")?, number(messages, "message")?))
}

/// How long any one wait may take before the test fails (the machine may be busy: be generous).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The four socket kinds, as `--proto` names them: the crate's own.
pub use netpair::proto::Proto;

/// A `Command` for the netpair binary under test.
pub fn netpair(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_netpair"));
    command.args(args);
    command
}

/// How a finished process ended and what it wrote.
pub struct Output {
    pub command: String,
    /// The exit status; `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Everything a failing assertion should show: `assert_eq!(out.code, Some(0), "{out}")`.
impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "\ncommand: {}\nexit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n---",
            self.command,
            self.code,
            clip(&self.stdout()),
            clip(&self.stderr())
        )
    }
}

/// The head and tail of a long text, so a failure with a 100 KB message stays readable.
fn clip(text: &str) -> String {
    const END: usize = 2000;
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 2 * END {
        return text.to_string();
    }
    let head: String = chars[..END].iter().collect();
    let tail: String = chars[chars.len() - END..].iter().collect();
    format!("{head}\n[... {} characters ...]\n{tail}", chars.len() - 2 * END)
}

/// Runs `command` to the end with `stdin` as its input; kills it and fails the test at the deadline.
pub fn run(command: Command, stdin: &[u8]) -> Output {
    run_within(command, stdin, DEADLINE)
}

/// [`run`], for a command that may take up to `deadline` (a long run across a lossy link).
pub fn run_within(command: Command, stdin: &[u8], deadline: Duration) -> Output {
    let mut process = Process::spawn(command, Stdio::piped());
    process.deadline = deadline;
    let input = stdin.to_vec();
    if let Some(mut pipe) = process.stdin.take() {
        // On a thread: a child that stops reading must not block the test past its deadline.
        // A child that exits before reading everything makes this write fail, which is fine.
        thread::spawn(move || pipe.write_all(&input));
    }
    process.wait()
}

/// Runs `command` to the end with the file at `path` as its stdin (a regular file, not a pipe).
pub fn run_with_file(command: Command, path: &Path) -> Output {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    Process::spawn(command, Stdio::from(file)).wait()
}

/// A running child whose stdout and stderr are collected as they come; killed when dropped.
pub struct Process {
    child: std::process::Child,
    pub command: String,
    /// The child's stdin when it is a pipe; dropping it closes the child's input.
    pub stdin: Option<ChildStdin>,
    stdout: Arc<Captured>,
    stderr: Arc<Captured>,
    /// How long [`Process::wait`] waits for it to exit.
    pub deadline: Duration,
}

/// Bytes read from one of the child's pipes, and whether the pipe has closed.
#[derive(Default)]
struct Captured {
    state: Mutex<(Vec<u8>, bool)>,
    grew: Condvar,
}

impl Captured {
    fn collect(pipe: impl Read + Send + 'static) -> Arc<Captured> {
        let captured = Arc::new(Captured::default());
        let sink = captured.clone();
        thread::spawn(move || {
            let mut pipe = pipe;
            let mut buf = [0u8; 8192];
            loop {
                let n = pipe.read(&mut buf).unwrap_or(0);
                let mut state = sink.state.lock().unwrap();
                state.0.extend_from_slice(&buf[..n]);
                state.1 = n == 0;
                sink.grew.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        captured
    }

    fn bytes(&self) -> Vec<u8> {
        self.state.lock().unwrap().0.clone()
    }

    /// Waits until `done(bytes, closed)` holds; false if the deadline passed first.
    fn wait_until(&self, deadline: Instant, done: impl Fn(&[u8], bool) -> bool) -> bool {
        let mut state = self.state.lock().unwrap();
        loop {
            if done(&state.0, state.1) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self.grew.wait_timeout(state, left).unwrap().0;
        }
    }
}

impl Process {
    /// Starts `command` with `stdin`, stdout and stderr piped and collected.
    pub fn spawn(mut command: Command, stdin: Stdio) -> Process {
        let line = describe(&command);
        let mut child = command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {line}: {e}"));
        let stdout = Captured::collect(child.stdout.take().expect("stdout is piped"));
        let stderr = Captured::collect(child.stderr.take().expect("stderr is piped"));
        Process { stdin: child.stdin.take(), child, command: line, stdout, stderr, deadline: DEADLINE }
    }

    /// The child's pid, for signals.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Everything on stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.bytes()).into_owned()
    }

    /// Everything on stderr so far.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.bytes()).into_owned()
    }

    /// Writes `bytes` to the child's stdin (keep it small: this blocks while the pipe is full).
    pub fn feed(&mut self, bytes: &[u8]) {
        let pipe = self.stdin.as_mut().expect("this child's stdin is not a pipe");
        pipe.write_all(bytes).unwrap_or_else(|e| panic!("writing to the stdin of {}: {e}", self.command));
        pipe.flush().ok();
    }

    /// Waits until stdout contains `text`; returns all of stdout. Fails the test at the deadline.
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let found =
            self.stdout.wait_until(deadline, |bytes, closed| closed || String::from_utf8_lossy(bytes).contains(text));
        let stdout = self.stdout();
        if !found || !stdout.contains(text) {
            panic!("{text:?} never appeared on stdout{}", self.snapshot());
        }
        stdout
    }

    /// True once the child has ended (it is then still waited for by `wait`).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits for the child to end.
    pub fn stop(self) -> Output {
        // SAFETY: kill(2) on our own child's pid, which stays ours until we reap it in wait().
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        self.wait()
    }

    /// Closes the child's stdin, waits for it to end (killing it at the deadline, which fails the
    /// test) and for its output pipes to close.
    pub fn wait(mut self) -> Output {
        self.stdin = None;
        let deadline = Instant::now() + self.deadline;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("still running after {:?}, killed{}", self.deadline, self.snapshot());
                }
                Err(e) => panic!("waiting for {}: {e}", self.command),
            }
        };
        // A grandchild could hold the pipes open; never wait for that past the deadline.
        for pipe in [&self.stdout, &self.stderr] {
            pipe.wait_until(deadline, |_, closed| closed);
        }
        Output {
            command: self.command.clone(),
            code: status.code(),
            stdout: self.stdout.bytes(),
            stderr: self.stderr.bytes(),
        }
    }

    fn snapshot(&self) -> String {
        let output = Output {
            command: self.command.clone(),
            code: None,
            stdout: self.stdout.bytes(),
            stderr: self.stderr.bytes(),
        };
        output.to_string()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running `netpair server` and the address it reported in its `Listening on` line.
pub struct Server {
    pub process: Process,
    pub proto: Proto,
    /// The bound address as printed: `127.0.0.1:PORT` or the socket path.
    pub address: String,
    /// Holds the socket file of a unix server; removed when the server is dropped.
    pub dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `netpair --proto P (--port 0 | --path TMP/server.sock) server ARGS` and waits until it listens.
    pub fn start(proto: Proto, args: &[&str]) -> Server {
        if proto.is_unix() {
            let dir = temp_dir();
            let path = dir.path().join("server.sock");
            let mut server = Server::start_at(proto, &path, args);
            server.dir = Some(dir);
            server
        } else {
            Server::start_with(proto, &["--port", "0"], args)
        }
    }

    /// Starts a unix or unixgram server on the socket file `path`.
    pub fn start_at(proto: Proto, path: &Path, args: &[&str]) -> Server {
        let path = path.to_str().expect("temporary paths are UTF-8");
        Server::start_with(proto, &["--path", path], args)
    }

    /// Starts `netpair --proto P WHERE server ARGS`; stdin is an open, empty pipe (see `Process::feed`).
    pub fn start_with(proto: Proto, place: &[&str], args: &[&str]) -> Server {
        let mut command = netpair(&["--proto", proto.name()]);
        command.args(place).arg("server").args(args);
        let process = Process::spawn(command, Stdio::piped());
        let deadline = Instant::now() + DEADLINE;
        process.stdout.wait_until(deadline, |bytes, closed| closed || bytes.contains(&b'\n'));
        let stdout = process.stdout();
        let first = stdout.lines().next().unwrap_or("");
        let address = listening_address(proto, first)
            .unwrap_or_else(|| panic!("no `Listening on` line from the server{}", process.snapshot()));
        Server { process, proto, address, dir: None }
    }

    /// The global flags that reach this server: `--proto P --host H --port N` or `--proto P --path F`.
    pub fn target(&self) -> Vec<String> {
        let mut args = vec!["--proto".to_string(), self.proto.name().to_string()];
        if self.proto.is_unix() {
            args.extend(["--path".to_string(), self.address.clone()]);
        } else {
            let (host, port) = self.address.rsplit_once(':').expect("host:port");
            let host = host.trim_start_matches('[').trim_end_matches(']');
            args.extend(["--host".to_string(), host.to_string(), "--port".to_string(), port.to_string()]);
        }
        args
    }

    /// A `netpair ... client ARGS` command aimed at this server.
    pub fn client_command(&self, args: &[&str]) -> Command {
        let mut command = netpair(&[]);
        command.args(self.target()).arg("client").args(args);
        command
    }

    /// Runs a client against this server with `stdin` as its input.
    pub fn client(&self, stdin: &[u8], args: &[&str]) -> Output {
        run(self.client_command(args), stdin)
    }

    /// The port of a tcp or udp server.
    pub fn port(&self) -> u16 {
        let port = self.address.rsplit_once(':').map(|(_, port)| port);
        port.and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {:?}", self.address))
    }

    pub fn wait_for(&self, text: &str) -> String {
        self.process.wait_for(text)
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.process.feed(bytes)
    }

    /// SIGTERM, then the server's whole output.
    pub fn stop(self) -> Output {
        self.process.stop()
    }

    /// Waits for a server that ends by itself (`--once`).
    pub fn wait(self) -> Output {
        self.process.wait()
    }
}

/// The address in a `Listening on PROTO ADDRESS` line, or in its `--json` form.
fn listening_address(proto: Proto, line: &str) -> Option<String> {
    if line.starts_with('{') {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        return Some(event["address"].as_str()?.to_string());
    }
    let prefix = format!("Listening on {} ", proto.name());
    Some(line.strip_prefix(&prefix)?.to_string())
}

/// A datagram socket of its own (its own port or socket file), connected to the server.
pub enum Peer {
    Udp(std::net::UdpSocket),
    /// The socket file lives in the directory, removed with it.
    Unix(std::os::unix::net::UnixDatagram, #[allow(dead_code)] tempfile::TempDir),
}

impl Peer {
    /// A socket connected to `server`, with a deadline on every receive and send.
    pub fn open(server: &Server) -> Peer {
        let peer = match server.proto {
            Proto::Udp => {
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
                sock.connect(&server.address).expect("connect");
                Peer::Udp(sock)
            }
            Proto::Unixgram => {
                let dir = temp_dir();
                let sock = std::os::unix::net::UnixDatagram::bind(dir.path().join("peer.sock")).expect("bind");
                sock.connect(&server.address).expect("connect");
                Peer::Unix(sock, dir)
            }
            other => panic!("{other:?} is not a datagram socket"),
        };
        peer.set_read_timeout(DEADLINE);
        // A Unix datagram server's queue holds ten: a send may wait, never past the deadline.
        let _ = match &peer {
            Peer::Udp(s) => s.set_write_timeout(Some(DEADLINE)),
            Peer::Unix(s, _) => s.set_write_timeout(Some(DEADLINE)),
        };
        peer
    }

    pub fn send(&self, datagram: &[u8]) {
        let sent = match self {
            Peer::Udp(s) => s.send(datagram),
            Peer::Unix(s, _) => s.send(datagram),
        };
        sent.unwrap_or_else(|e| panic!("sending {} bytes: {e}", datagram.len()));
    }

    pub fn recv(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0; 70_000];
        let n = match self {
            Peer::Udp(s) => s.recv(&mut buf)?,
            Peer::Unix(s, _) => s.recv(&mut buf)?,
        };
        buf.truncate(n);
        Ok(buf)
    }

    pub fn set_read_timeout(&self, timeout: Duration) {
        let _ = match self {
            Peer::Udp(s) => s.set_read_timeout(Some(timeout)),
            Peer::Unix(s, _) => s.set_read_timeout(Some(timeout)),
        };
    }
}

/// A fresh temporary directory, removed when dropped.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("netpair-test").tempdir().expect("creating a temporary directory")
}

/// A TCP port that was free a moment ago (bind port 0, read it, close). Others may take it meanwhile:
/// callers that need it must retry.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// A shell-like rendering of a command, for failure messages.
fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Whether this machine can build hosts of network namespaces (root, `ip`, `nft`). Where it cannot,
/// says SKIP and why, and under CI=true fails instead: there the tests that need it must run.
pub fn can_build_namespaces(what: &str) -> bool {
    let root = rustix::process::geteuid().is_root();
    let tools = ["ip", "nft"].iter().all(|t| Command::new(t).arg("-V").output().is_ok_and(|o| o.status.success()));
    if root && tools {
        return true;
    }
    let why = if root { "ip and nft are needed" } else { "root is needed (network namespaces, nftables)" };
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{what} cannot run under CI: {why}");
    println!("SKIP: {why}");
    false
}
