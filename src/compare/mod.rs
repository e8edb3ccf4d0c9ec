//! `netpair compare`: the same conversation over every transport against in-process servers, and a
//! table of what differed. Every cell is measured in the run that prints it.

mod remote;
mod render;

use std::io::{self, Write};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use crate::client;
use crate::config::{ClientConfig, Common, CompareConfig, LINE_MAX, ServerConfig, UDP_MAX};
use crate::error::{Error, Result, describe};
use crate::framing::Framing;
use crate::net::{Plain, SocketDir, nobody_at};
use crate::plot::PlotFile;
use crate::proto::{Endpoint, Proto};
use crate::report::{Recording, Report, Summary};
use crate::server::Background;
use crate::stdin::read_line;
use crate::text::{grouped, human};

/// Small writes sent back to back to see whether message boundaries survive.
const BURST: usize = 200;
/// Message sizes tried, smallest first, to find the largest that gets through intact.
const SIZES: [usize; 6] = [1_000, 8_192, UDP_MAX, UDP_MAX + 1, LINE_MAX, LINE_MAX + 1];
/// How long the conversation's client waits for each reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a probe waits for a reply that may never come.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// Builds the conversation: the lines of `input`, or `messages` lines of `size` bytes.
pub fn conversation(input: Option<&Path>, messages: usize, size: usize) -> Result<Vec<Vec<u8>>> {
    if let Some(path) = input {
        let file =
            std::fs::File::open(path).map_err(|e| Error::io(format!("cannot read --input {}", path.display()), e))?;
        // Lines as the client reads them (the same reader), up to the `q` that ends a conversation.
        let mut reader = io::BufReader::new(file);
        let mut lines = Vec::new();
        while let Some(line) = read_line(&mut reader, UDP_MAX)
            .map_err(|e| Error::io(format!("cannot read --input {}", path.display()), e))?
        {
            let line = line.map_err(|len| {
                Error::Usage(format!(
                    "--input line {} is {} bytes, over the largest UDP message ({} bytes); compare runs every transport",
                    grouped(lines.len() as u64 + 1),
                    grouped(len as u64),
                    grouped(UDP_MAX as u64)
                ))
            })?;
            if line == b"q" {
                break;
            }
            lines.push(line);
        }
        if lines.is_empty() {
            return Err(Error::Usage(format!("--input {} has no lines", path.display())));
        }
        return Ok(lines);
    }
    if size > UDP_MAX {
        return Err(Error::Usage(format!(
            "--size {} is over the largest UDP message ({} bytes); compare runs every transport",
            grouped(size as u64),
            grouped(UDP_MAX as u64)
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
    /// Measured against a server elsewhere: the rows that need the server's own view are not.
    remote: bool,
    /// Why a remote server did not answer over this kind, when it did not.
    unanswered: Option<String>,
    /// What the client's kernel said of its socket in the conversation.
    kernel: crate::net::kernel::Account,
}

/// Runs the comparison and prints the table (or one JSON document); returns each kind's conversation.
pub fn run(config: &CompareConfig) -> Result<Vec<(Proto, Summary)>> {
    // The in-process servers' warnings (an oversized probe dropped, say) are part of the
    // measurement, not news: keep them out of the table unless -v asked for them.
    if log::max_level() <= log::LevelFilter::Warn {
        log::set_max_level(log::LevelFilter::Error);
    }
    // Signals first: from the moment the directory exists, a signal must not leave it behind.
    on_signal_remove(&SocketDir::path_for("compare"))?;
    // Before the run, not after it: a plot that cannot be written must not cost a whole run.
    let plot = config.plot.as_deref().map(PlotFile::open).transpose()?;
    let dir = SocketDir::new("compare")?;
    let mut results = Vec::new();
    let place = match &config.connect {
        Some(remote) => {
            for (proto, endpoint) in &remote.targets {
                results.push((*proto, remote::measure(*proto, endpoint, &config.lines, remote.timeout)));
            }
            format!("against the netpair server at {}", remote.host)
        }
        None => {
            for proto in Proto::ALL {
                results.push((proto, measure(proto, &config.lines, &dir)?));
            }
            "in-process servers on loopback".to_string()
        }
    };
    let text =
        if config.json { render::json(&results, &place) } else { render::table(&results, config.lines.len(), &place) };
    crate::report::print(text.as_bytes())?;
    if let Some(plot) = plot {
        plot.write(&render::plot(&results, config.lines.len(), &place))?;
    }
    Ok(results.into_iter().map(|(proto, m)| (proto, m.summary)).collect())
}

/// SIGINT or SIGTERM mid-run: the table is not finished, so nothing was measured that could be
/// shown. Removes the run's socket directory and exits with the status for that (3), at once.
fn on_signal_remove(dir: &Path) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let dir = dir.to_path_buf();
    crate::event_loop::on_signals(&[SIGINT, SIGTERM], move || {
        let _ = std::fs::remove_dir_all(&dir);
        let _ = io::stderr().write_all(b"netpair: interrupted: the comparison was not finished\n");
        std::process::exit(i32::from(crate::error::exit::LOST));
    })
}

fn measure(proto: Proto, lines: &[Vec<u8>], dir: &SocketDir) -> Result<Measured> {
    let mut m = Measured::default();

    // Set-up: connect, send nothing, and see whether the server noticed.
    let server = Running::start(proto, dir, Framing::Line)?;
    let silent = server.open(None)?;
    m.seen_at_connect = server.wait_for(|seen| seen.connects() > 0, Duration::from_millis(200));
    drop(silent);
    server.stop();

    // The conversation, then what the server sees when the client leaves.
    let server = Running::start(proto, dir, Framing::Line)?;
    m.summary = server.converse(lines, REPLY_TIMEOUT, LINE_MAX)?;
    m.kernel = m.summary.kernel.clone();
    let quit = server.wait_for(|seen| seen.first_disconnect().is_some(), Duration::from_millis(300));
    m.quit_seen = quit.then(|| server.seen.first_disconnect().unwrap_or_default());
    server.stop();

    // Boundaries: a burst of small writes with raw framing.
    let server = Running::start(proto, dir, Framing::Raw)?;
    let sent: Vec<Vec<u8>> = (0..BURST).map(|n| format!("m{n:03};").into_bytes()).collect();
    // Open until the server has read it all: a connection whose replies meet a closed socket is
    // closed by the server, with what it had not read yet.
    let sock = server.burst(&sent, dir)?;
    let total: usize = sent.iter().map(Vec::len).sum();
    server.wait_for(|seen| seen.messages().iter().map(Vec::len).sum::<usize>() >= total, Duration::from_secs(2));
    drop(sock);
    let received = server.seen.messages();
    m.burst_reads = received.len();
    m.burst_intact = received == sent;
    server.stop();

    // Sizes: the largest message that comes back intact, and what stops the next one.
    let server = Running::start(proto, dir, Framing::Line)?;
    probe_sizes(&mut m, |line| server.converse_once(line), PROBE_TIMEOUT);
    server.stop();

    // Nobody listening.
    let nobody = nobody_at(proto, dir).map_err(|e| Error::io("finding a free address", e))?;
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
        Ok(s) if s.lost > 0 => format!("silence: no reply within {}", human(PROBE_TIMEOUT)),
        Ok(_) => "a reply (something is listening)".into(),
    };
    Ok(m)
}

/// Sends one message of each size in turn: the largest that comes back intact, and what stops the
/// next one. `converse_once` runs a client with that one line, waiting `timeout` for its reply.
fn probe_sizes(m: &mut Measured, converse_once: impl Fn(&[u8]) -> Result<Summary>, timeout: Duration) {
    for size in SIZES {
        let line = numbered(1, size);
        match converse_once(&line) {
            Ok(summary) if summary.received == 1 => m.largest_intact = size,
            Ok(summary) if summary.not_sent > 0 => {
                m.first_refused = Some((size, "too long (refused by the sending kernel)".into()));
                return;
            }
            Ok(_) => {
                m.first_refused = Some((size, format!("no reply in {}", human(timeout))));
                return;
            }
            Err(err) => {
                m.first_refused = Some((size, short_error(&err)));
                return;
            }
        }
    }
}

/// The conversation's lines as a client reads them from its input.
fn input_of(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut input = Vec::new();
    for line in lines {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    input
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

fn client_config(proto: Proto, endpoint: &Endpoint, max_message: usize, timeout: Duration) -> ClientConfig {
    ClientConfig {
        common: Common::in_process(proto, endpoint.clone(), Framing::Line, max_message),
        timeout: Some(timeout),
        expect: Some(crate::config::Expect::Upper),
        connect_timeout: timeout,
        writes: 1,
        window: 1,
        end: crate::config::End::Wait,
    }
}

fn quiet_report(proto: Proto) -> Report {
    Report::to(proto, true, false, Box::new(io::sink()), Box::new(io::sink()))
}

/// An in-process server, and what it has seen so far.
struct Running {
    proto: Proto,
    endpoint: Endpoint,
    seen: Recording,
    server: Background,
}

impl Running {
    fn start(proto: Proto, dir: &SocketDir, framing: Framing) -> Result<Running> {
        let endpoint = if proto.is_unix() { Endpoint::Path(dir.fresh("server")) } else { Endpoint::loopback(0) };
        let (report, seen) = Report::recording(proto);
        let server = Background::start(ServerConfig::in_process(proto, endpoint, framing, 1024), report)?;
        Ok(Running { proto, endpoint: server.endpoint().clone(), seen, server })
    }

    /// Waits until `done` holds for what the server has seen, at most `limit`; says whether it did.
    fn wait_for(&self, done: impl Fn(&Recording) -> bool, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done(&self.seen) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn converse(&self, lines: &[Vec<u8>], timeout: Duration, max_message: usize) -> Result<Summary> {
        let config = client_config(self.proto, &self.endpoint, max_message, timeout);
        client::run(config, quiet_report(self.proto), Box::new(io::Cursor::new(input_of(lines))), false)
    }

    fn converse_once(&self, line: &[u8]) -> Result<Summary> {
        // The client is let past its own checks, so that each transport's own limit shows.
        self.converse(&[line.to_vec()], PROBE_TIMEOUT, 2 * LINE_MAX)
    }

    /// A plain socket to the server: connected where the kind has connections, sending nothing yet.
    fn open(&self, own: Option<&Path>) -> Result<Plain> {
        Plain::connect(self.proto, &self.endpoint, own)
            .map_err(|e| Error::io(format!("connecting to {}", self.endpoint), e))
    }

    /// Sends `messages` back to back, as separate writes or datagrams, without reading replies;
    /// returns the socket, still open.
    fn burst(&self, messages: &[Vec<u8>], dir: &SocketDir) -> Result<Plain> {
        // A datagram socket of its own address, so the server has somewhere to send its replies.
        let own = dir.fresh("burst");
        let mut sock = self.open(Some(&own))?;
        messages
            .iter()
            .try_for_each(|m| sock.send(m))
            .map_err(|e| Error::io(format!("sending a burst to {}", self.endpoint), e))?;
        Ok(sock)
    }

    fn stop(self) {
        // How the server ended is not a measurement: a failure here already showed in the cells.
        let _ = self.server.stop();
    }
}
