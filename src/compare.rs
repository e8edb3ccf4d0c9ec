//! `netpair compare`: the same conversation over every transport against in-process servers, and a
//! table of what differed. Every cell is measured in the run that prints it.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::cli::{Common, LINE_MAX, Reply, ServerConfig, UDP_MAX};
use crate::client;
use crate::error::{Error, Result, describe};
use crate::framing::Framing;
use crate::report::{Json, Report, Summary};
use crate::server::{Background, SocketDir};
use crate::transport::{Endpoint, Proto};

/// What to compare with.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// The conversation's lines.
    pub lines: Vec<Vec<u8>>,
    pub json: bool,
}

/// Small writes sent back to back to see whether message boundaries survive.
const BURST: usize = 200;
/// Message sizes tried, smallest first, to find the largest that gets through intact.
const SIZES: [usize; 6] = [1_000, 8_192, UDP_MAX, UDP_MAX + 1, LINE_MAX, LINE_MAX + 1];
/// How long a probe waits for a reply that may never come.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Builds the conversation: the lines of `input`, or `messages` lines of `size` bytes.
pub fn conversation(input: Option<&Path>, messages: usize, size: usize) -> Result<Vec<Vec<u8>>> {
    if let Some(path) = input {
        let text = std::fs::read(path).map_err(|e| Error::io(format!("cannot read --input {}", path.display()), e))?;
        // Lines as the client reads them: the last line end closes a line, and `q` ends the conversation.
        let text = text.strip_suffix(b"\n").unwrap_or(&text);
        let lines: Vec<Vec<u8>> = text
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .take_while(|l| l != b"q")
            .collect();
        if text.is_empty() {
            return Err(Error::Usage(format!("--input {} has no lines", path.display())));
        }
        if let Some((n, long)) = lines.iter().enumerate().find(|(_, l)| l.len() > UDP_MAX) {
            return Err(Error::Usage(format!(
                "--input line {} is {} bytes, over the largest UDP message ({UDP_MAX}); compare runs every transport",
                n + 1,
                long.len()
            )));
        }
        return Ok(lines);
    }
    if size > UDP_MAX {
        return Err(Error::Usage(format!(
            "--size {size} is over the largest UDP message ({UDP_MAX} bytes); compare runs every transport"
        )));
    }
    Ok((1..=messages).map(|n| numbered(n, size)).collect())
}

fn numbered(n: usize, size: usize) -> Vec<u8> {
    let mut line = format!("message {n} ").into_bytes();
    line.resize(size.max(line.len()), b'x');
    line.truncate(size);
    line
}

/// What one transport did.
#[derive(Default)]
struct Measured {
    /// Whether the server saw the client before it sent anything.
    seen_at_connect: bool,
    summary: Summary,
    burst_reads: usize,
    burst_intact: bool,
    largest_intact: usize,
    first_refused: Option<(usize, String)>,
    no_server: String,
    no_server_after: Duration,
    quit_seen: Option<String>,
}

/// Runs the comparison and prints the table (or one JSON document).
pub fn run(config: &CompareConfig) -> Result<()> {
    let dir = SocketDir::new("compare")?;
    let mut results = Vec::new();
    for proto in Proto::ALL {
        results.push((proto, measure(proto, &config.lines, &dir)?));
    }
    let text = if config.json { json(&results) } else { table(&results, config.lines.len()) };
    let mut out = io::stdout();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| Error::io("writing to stdout", e))
}

fn measure(proto: Proto, lines: &[Vec<u8>], dir: &SocketDir) -> Result<Measured> {
    let mut m = Measured::default();

    // Set-up: connect, send nothing, and see whether the server noticed.
    let server = Running::start(proto, dir, Framing::Line)?;
    let silent = server.open_silent()?;
    m.seen_at_connect = server.wait_for(|log| log.count("connect") > 0, Duration::from_millis(200));
    drop(silent);
    server.stop();

    // The conversation, then what the server sees when the client leaves.
    let server = Running::start(proto, dir, Framing::Line)?;
    m.summary = server.converse(lines, Duration::from_secs(2), LINE_MAX)?;
    let quit = server.wait_for(|log| log.count("disconnect") > 0, Duration::from_millis(300));
    m.quit_seen = quit.then(|| server.log().field("disconnect", "reason").unwrap_or_default());
    server.stop();

    // Boundaries: a burst of small writes with raw framing.
    let server = Running::start(proto, dir, Framing::Raw)?;
    let sent: Vec<Vec<u8>> = (0..BURST).map(|n| format!("m{n:03};").into_bytes()).collect();
    server.burst(&sent)?;
    let total: usize = sent.iter().map(Vec::len).sum();
    server.wait_for(|log| log.message_bytes() >= total, Duration::from_secs(2));
    let log = server.log();
    m.burst_reads = log.count("message");
    m.burst_intact = log.messages() == sent;
    server.stop();

    // Sizes: the largest message that comes back intact, and what stops the next one.
    let server = Running::start(proto, dir, Framing::Line)?;
    for size in SIZES {
        let line = numbered(1, size);
        match server.converse_once(&line) {
            Ok(summary) if summary.received == 1 => m.largest_intact = size,
            Ok(summary) if summary.not_sent > 0 => {
                m.first_refused = Some((size, "too long (refused by the sending kernel)".into()));
                break;
            }
            Ok(_) => {
                m.first_refused = Some((size, format!("no reply in {} ms", PROBE_TIMEOUT.as_millis())));
                break;
            }
            Err(err) => {
                m.first_refused = Some((size, short_error(&err)));
                break;
            }
        }
    }
    server.stop();

    // Nobody listening.
    let nobody = nobody_listening(proto, dir)?;
    let started = Instant::now();
    let outcome = client::run(
        client_config(proto, &nobody, LINE_MAX, PROBE_TIMEOUT),
        quiet_report(proto),
        Box::new(io::Cursor::new(b"hello\n".to_vec())),
        false,
    );
    m.no_server_after = started.elapsed();
    m.no_server = match outcome {
        Err(err) => short_error(&err),
        Ok(s) if s.lost > 0 => format!("silence: no reply within {}ms", PROBE_TIMEOUT.as_millis()),
        Ok(_) => "a reply (something is listening)".into(),
    };
    Ok(m)
}

/// An error's last clause, the part that differs between transports.
fn short_error(err: &Error) -> String {
    match err {
        Error::Connect { source, .. } if source.kind() == io::ErrorKind::ConnectionAborted => {
            "server closed the connection".into()
        }
        Error::Connect { source, .. } | Error::Io { source, .. } => describe(source),
        other => other.to_string(),
    }
}

fn client_config(proto: Proto, endpoint: &Endpoint, max_message: usize, timeout: Duration) -> crate::cli::ClientConfig {
    crate::cli::ClientConfig { common: common(proto, endpoint.clone(), Framing::Line, max_message), timeout }
}

fn common(proto: Proto, endpoint: Endpoint, framing: Framing, max_message: usize) -> Common {
    Common { proto, endpoint, framing, max_message, json: false, prompt: false }
}

fn quiet_report(proto: Proto) -> Report {
    Report::to(proto, true, false, Box::new(io::sink()), Box::new(io::sink()))
}

/// A free address with nobody behind it.
fn nobody_listening(proto: Proto, dir: &SocketDir) -> Result<Endpoint> {
    let free = |port: io::Result<u16>| port.map_err(|e| Error::io("finding a free port", e));
    Ok(match proto {
        Proto::Tcp => {
            endpoint_port(free(TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()))?)
        }
        Proto::Udp => {
            endpoint_port(free(UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).map(|a| a.port()))?)
        }
        Proto::Unix | Proto::Unixgram => Endpoint::Path(dir.fresh("nobody")),
    })
}

fn endpoint_port(port: u16) -> Endpoint {
    Endpoint::Inet { host: "127.0.0.1".into(), port }
}

/// An in-process server whose JSON events are captured.
struct Running {
    proto: Proto,
    endpoint: Endpoint,
    events: Capture,
    server: Background,
}

impl Running {
    fn start(proto: Proto, dir: &SocketDir, framing: Framing) -> Result<Running> {
        let endpoint = if proto.is_unix() { Endpoint::Path(dir.fresh("server")) } else { endpoint_port(0) };
        let max_message = if proto.is_stream() { LINE_MAX } else { UDP_MAX };
        let config = ServerConfig {
            common: common(proto, endpoint, framing, max_message),
            reply: Reply::Upper,
            once: false,
            idle_timeout: Some(Duration::from_secs(60)),
            max_clients: 1024,
        };
        let events = Capture::default();
        let report = Report::to(proto, true, false, Box::new(events.clone()), Box::new(io::sink()));
        let server = Background::start(config, report)?;
        Ok(Running { proto, endpoint: server.endpoint().clone(), events, server })
    }

    fn log(&self) -> Log {
        Log(self.events.text())
    }

    /// Waits until `done` holds for the server's events, at most `limit`; says whether it did.
    fn wait_for(&self, done: impl Fn(&Log) -> bool, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.log()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn converse(&self, lines: &[Vec<u8>], timeout: Duration, max_message: usize) -> Result<Summary> {
        let mut input = Vec::new();
        for line in lines {
            input.extend_from_slice(line);
            input.push(b'\n');
        }
        let config = client_config(self.proto, &self.endpoint, max_message, timeout);
        client::run(config, quiet_report(self.proto), Box::new(io::Cursor::new(input)), false)
    }

    fn converse_once(&self, line: &[u8]) -> Result<Summary> {
        // The client is let past its own checks, so that each transport's own limit shows.
        self.converse(&[line.to_vec()], PROBE_TIMEOUT, 2 * LINE_MAX)
    }

    /// A client socket that connects (where the kind has connections) and sends nothing.
    fn open_silent(&self) -> Result<Box<dyn Send>> {
        let fail = |e| Error::io(format!("connecting to {}", self.endpoint), e);
        Ok(match (&self.endpoint, self.proto) {
            (Endpoint::Inet { host, port }, Proto::Tcp) => {
                Box::new(TcpStream::connect((host.as_str(), *port)).map_err(fail)?)
            }
            (Endpoint::Inet { host, port }, _) => {
                let sock = UdpSocket::bind("127.0.0.1:0").map_err(fail)?;
                sock.connect((host.as_str(), *port)).map_err(fail)?;
                Box::new(sock)
            }
            (Endpoint::Path(path), Proto::Unix) => Box::new(UnixStream::connect(path).map_err(fail)?),
            (Endpoint::Path(path), _) => {
                let sock = UnixDatagram::unbound().map_err(fail)?;
                sock.connect(path).map_err(fail)?;
                Box::new(sock)
            }
        })
    }

    /// Sends `messages` back to back, as separate writes or datagrams, without reading replies.
    fn burst(&self, messages: &[Vec<u8>]) -> Result<()> {
        let fail = |e| Error::io(format!("sending a burst to {}", self.endpoint), e);
        match (&self.endpoint, self.proto) {
            (Endpoint::Inet { host, port }, Proto::Tcp) => {
                let mut sock = TcpStream::connect((host.as_str(), *port)).map_err(fail)?;
                messages.iter().try_for_each(|m| sock.write_all(m)).map_err(fail)
            }
            (Endpoint::Inet { host, port }, _) => {
                let sock = UdpSocket::bind("127.0.0.1:0").map_err(fail)?;
                sock.connect((host.as_str(), *port)).map_err(fail)?;
                messages.iter().try_for_each(|m| sock.send(m).map(drop)).map_err(fail)
            }
            (Endpoint::Path(path), Proto::Unix) => {
                let mut sock = UnixStream::connect(path).map_err(fail)?;
                messages.iter().try_for_each(|m| sock.write_all(m)).map_err(fail)
            }
            (Endpoint::Path(path), _) => {
                // Bound to a path of its own, so the server has somewhere to send its replies.
                let own = path.with_extension("burst");
                let sock = UnixDatagram::bind(&own).map_err(fail)?;
                let sent = messages.iter().try_for_each(|m| sock.send_to(m, path).map(drop)).map_err(fail);
                let _ = std::fs::remove_file(own);
                sent
            }
        }
    }

    fn stop(self) {
        // How the server ended is not a measurement: a failure here already showed in the cells.
        let _ = self.server.stop();
    }
}

/// A writer whose bytes can be read back while it is still being written to.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Ok(mut bytes) = self.0.lock() {
            bytes.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A server's JSON event lines. Quotes inside values are escaped, so `"event":"x"` only ever
/// matches the event name itself.
struct Log(String);

impl Log {
    fn events<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let tag = format!("\"event\":\"{event}\"");
        self.0.lines().filter(move |l| l.contains(&tag))
    }

    fn count(&self, event: &str) -> usize {
        self.events(event).count()
    }

    /// A plain string field of the first such event (the values read here hold no escapes).
    fn field(&self, event: &str, key: &str) -> Option<String> {
        let tag = format!("\"{key}\":\"");
        let line = self.events(event).next()?;
        let start = line.find(&tag)? + tag.len();
        Some(line[start..].split('"').next()?.to_string())
    }

    /// The `message` field of each message event (burst messages are plain ASCII).
    fn messages(&self) -> Vec<Vec<u8>> {
        let tag = "\"message\":\"";
        self.events("message")
            .filter_map(|l| Some(l[l.find(tag)? + tag.len()..].split('"').next()?.as_bytes().to_vec()))
            .collect()
    }

    fn message_bytes(&self) -> usize {
        self.messages().iter().map(Vec::len).sum()
    }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.3} ms", d.as_secs_f64() * 1000.0))
}

fn bytes(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cells(m: &Measured) -> Vec<String> {
    let s = &m.summary;
    let boundaries = if m.burst_intact { "kept" } else { "not kept" };
    let unit = if m.burst_reads == 1 { "read" } else { "reads" };
    vec![
        if m.seen_at_connect { "at connect".into() } else { "at its first datagram".into() },
        format!("{} of {}", s.received, s.sent),
        format!("{} lost, {} late", s.lost, s.late),
        format!("{boundaries}: {BURST} writes, {} {unit}", m.burst_reads),
        format!("{} B", bytes(m.largest_intact)),
        m.first_refused.as_ref().map_or_else(|| "-".into(), |(n, why)| format!("{} B: {why}", bytes(*n))),
        format!("{} ({})", m.no_server, ms(Some(m.no_server_after))),
        m.quit_seen.as_ref().map_or_else(|| "nothing (until --idle-timeout)".into(), |r| format!("disconnect ({r})")),
        ms(s.percentile(0.5)),
        ms(s.percentile(0.99)),
    ]
}

const ROWS: [&str; 10] = [
    "server sees a new client",
    "replies received",
    "replies lost",
    "boundaries (raw framing)",
    "largest intact message",
    "first size refused",
    "no server listening",
    "client quits, server sees",
    "round trip median",
    "round trip p99",
];

fn table(results: &[(Proto, Measured)], messages: usize) -> String {
    let columns: Vec<Vec<String>> = results.iter().map(|(_, m)| cells(m)).collect();
    let label_width = ROWS.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = columns.iter().map(|c| c.iter().map(String::len).max().unwrap_or(0)).collect();
    let mut out = format!("netpair compare: {messages} messages per transport, in-process servers on loopback\n\n");
    let _ = write!(out, "{:label_width$}", "");
    for ((proto, _), width) in results.iter().zip(&widths) {
        let _ = write!(out, " | {:width$}", proto.name());
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for (row, label) in ROWS.iter().enumerate() {
        let _ = write!(out, "{label:label_width$}");
        for (column, width) in columns.iter().zip(&widths) {
            let _ = write!(out, " | {:width$}", column[row]);
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

fn json(results: &[(Proto, Measured)]) -> String {
    let mut out = String::from("{");
    for (i, (proto, m)) in results.iter().enumerate() {
        let s = &m.summary;
        let mut j = Json::default();
        j.str("server_sees_client", if m.seen_at_connect { "connect" } else { "first_datagram" })
            .int("sent", s.sent)
            .int("received", s.received)
            .int("lost", s.lost)
            .int("late", s.late)
            .int("burst_writes", BURST as u64)
            .int("burst_reads", m.burst_reads as u64)
            .str("boundaries_kept", if m.burst_intact { "yes" } else { "no" })
            .int("largest_intact", m.largest_intact as u64);
        if let Some((size, why)) = &m.first_refused {
            j.int("first_refused", *size as u64).str("first_refused_why", why);
        }
        j.str("no_server", &m.no_server).num("no_server_ms", m.no_server_after.as_secs_f64() * 1000.0);
        j.str("client_quits", m.quit_seen.as_deref().unwrap_or("nothing"));
        for (key, p) in [("rtt_median_ms", 0.5), ("rtt_p99_ms", 0.99)] {
            if let Some(d) = s.percentile(p) {
                j.num(key, d.as_secs_f64() * 1000.0);
            }
        }
        let _ = write!(out, "{}\"{}\":{}", if i > 0 { "," } else { "" }, proto.name(), j.finish());
    }
    out.push_str("}\n");
    out
}
