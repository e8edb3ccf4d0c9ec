//! `netpair bench`: round-trip latency and throughput against an in-process server (or a running
//! one with `--connect`), one column per transport. This file runs one transport after another:
//! it starts the server and the client threads, shows progress while they run, and joins them.
//!
//! The rest, by concern: [`plan`] (what the threads are told and share), [`codec`] (the messages
//! as bytes), [`window`] (which message a reply answers), [`tally`] (the counts), [`sockets`] and
//! [`connect`] (the clients' own sockets), [`worker`] (one thread's loop), [`render`] (the table
//! and the JSON).

mod codec;
mod connect;
mod plan;
mod render;
mod schedule;
mod signals;
mod sockets;
mod tally;
mod window;
mod worker;

use std::io::{self, IsTerminal};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::{BenchConfig, Expect, Quiet, Reply, ServerConfig};
use crate::error::{Error, Result, exit};
use crate::framing::Framing;
use crate::net::{SocketDir, resolve};
use crate::plot::PlotFile;
use crate::proto::{Endpoint, Proto};
use crate::report::Report;
use crate::server::Background;
use crate::sys::raise_open_file_limit;
use crate::text::grouped;

pub use codec::tag_len;
use plan::{Plan, Shared, Target};
use render::Outcome;
use signals::Signals;
pub use tally::Tally;

/// A reply later than this is counted lost.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Files the process needs besides the sockets: poll instances, wakers, stdio, the binary's own.
const SPARE_FILES: u64 = 64;
/// How often the live progress line is redrawn.
const PROGRESS: Duration = Duration::from_millis(100);

/// Runs the bench for each transport in turn and prints one table (or one JSON object).
/// Returns the exit status: 0 when every transport measured at least one round trip and no reply
/// was lost or wrong; 3 otherwise, interrupted or not (nothing measured is no success).
pub fn run(config: &BenchConfig) -> Result<u8> {
    check_open_files(config)?;
    // Before the run, not after it: a plot that cannot be written must not cost a whole run.
    let plot = config.plot.as_deref().map(PlotFile::open).transpose()?;
    // Signals first: from the moment the directory exists, a signal must not leave it behind.
    let signals = Signals::catch(&SocketDir::path_for("bench"))?;
    let dir = SocketDir::new("bench")?;
    let mut outcomes = Vec::new();
    for &proto in &config.protos {
        if signals.interrupted() {
            break;
        }
        // A transport that cannot be measured ends the run with its error.
        outcomes.push(Outcome { proto, tally: measure(config, proto, &dir, &signals)? });
    }
    let interrupted = signals.interrupted();
    let text = if config.json {
        render::json(config, &outcomes, interrupted)
    } else {
        render::table(config, &outcomes, interrupted)
    };
    crate::report::print(text.as_bytes())?;
    if let Some(plot) = plot {
        plot.write(&render::plot(config, &outcomes))?;
    }
    // Late replies are among the lost already.
    let trouble = outcomes.iter().any(|o| o.tally.trouble() + o.tally.failed > 0);
    let unmeasured = outcomes.len() < config.protos.len() || outcomes.iter().any(|o| o.tally.round_trips == 0);
    Ok(if trouble || unmeasured { exit::LOST } else { exit::OK })
}

/// Raises the open-file limit to what `--clients` needs, or says why it cannot be: failing here
/// beats failing at the 1,021st connect.
fn check_open_files(config: &BenchConfig) -> Result<()> {
    // An in-process stream server holds one socket per client too (with --reconnect, up to two: the
    // one just closed may not be gone yet); a datagram server holds one in all.
    let both_ends = !config.connect && config.protos.iter().any(|p| p.is_connected());
    let per_client = match (both_ends, config.reconnect) {
        (false, _) => 1,
        (true, false) => 2,
        (true, true) => 3,
    };
    let needed = config.clients as u64 * per_client + SPARE_FILES;
    let limit = raise_open_file_limit(needed);
    if limit >= needed {
        return Ok(());
    }
    let hint = if both_ends {
        "; or start `netpair server` as a process of its own and use --connect, so each side needs half"
    } else {
        ""
    };
    Err(Error::Usage(format!(
        "--clients {} needs about {needed} open files, but the limit is {limit} and this process may not \
         raise it (ulimit -Hn; with CAP_SYS_RESOURCE netpair raises it up to /proc/sys/fs/nr_open){hint}",
        config.clients,
    )))
}

/// Measures one transport: starts its server (unless `--connect`), runs the client threads to the
/// end and merges what they counted.
fn measure(config: &BenchConfig, proto: Proto, dir: &SocketDir, signals: &Signals) -> Result<Tally> {
    let server = if config.connect { None } else { Some(start_server(config, proto, dir)?) };
    // A socket file outside the temporary directory, removed by a second signal too.
    if let Some(Endpoint::Path(path)) = server.as_ref().map(Background::endpoint)
        && !path.starts_with(dir.path())
    {
        signals.guard(path);
    }
    let endpoint = match &server {
        Some(server) => server.endpoint().clone(),
        None if proto.is_unix() => Endpoint::Path(config.path.clone().unwrap_or_default()),
        None => Endpoint::Inet { host: config.host.clone(), port: config.port },
    };
    let target = match &endpoint {
        Endpoint::Path(path) => Target::Path(path.clone()),
        // The first address only: every client must talk to the same server. `resolve` fails
        // rather than return no address.
        Endpoint::Inet { host, port } => Target::Inet(resolve(host, *port)?[0]),
    };
    let plan = Arc::new(Plan {
        proto,
        target,
        clients: config.clients,
        threads: config.threads,
        size: config.size,
        expect: config.expect,
        window: config.window,
        stop: config.stop,
        // --rate is for all clients together; each client sends 1/clients of it.
        interval: config.rate.map(|rate| Duration::from_secs_f64(config.clients as f64 / rate)),
        warmup: config.warmup,
        timeout: TIMEOUT,
        connect_timeout: config.connect_timeout,
        reconnect: config.reconnect,
        nodelay: config.nodelay,
        writes: config.writes,
        socket_dir: dir.path().to_path_buf(),
        server_clock: server.as_ref().and_then(Background::cpu_clock),
    });
    let shared = Arc::new(Shared::new(config.threads, signals.interrupted.clone()));
    let joined = start_threads(&plan, &shared).and_then(|handles| {
        shared.ready.wait();
        if config.quiet < Quiet::AllButFatal {
            show_progress(proto, config.warmup, &shared, &handles);
        }
        join(handles)
    });
    // The server stops whatever the clients did: its socket file must not outlive the run.
    if let Some(server) = server {
        let stopped = server.stop();
        signals.release();
        stopped?;
    }
    let tally = joined?;
    // Every client failed and nothing was measured: that is no server, not a lossy one.
    if tally.failed == config.clients as u64 && tally.round_trips == 0 {
        let why = tally.first_failure.clone().unwrap_or_default();
        return Err(Error::Connect {
            what: format!("no {proto} server answered at {endpoint}"),
            source: io::Error::other(why),
        });
    }
    Ok(tally)
}

/// Starts the in-process server for `proto`: on a port the kernel picks, or a file in `dir`.
fn start_server(config: &BenchConfig, proto: Proto, dir: &SocketDir) -> Result<Background> {
    let endpoint = if proto.is_unix() {
        Endpoint::Path(config.path.clone().unwrap_or_else(|| dir.path().join(format!("server-{proto}.sock"))))
    } else {
        Endpoint::Inet { host: config.host.clone(), port: 0 }
    };
    // Room for every client and a few more, so that none is turned away.
    let mut server = ServerConfig::in_process(proto, endpoint, Framing::Line, config.clients + 64);
    // `--expect echo` measures an echo server: this one then is one.
    if config.expect == Expect::Echo {
        server.reply = Reply::Echo;
    }
    // A client between messages (a slow --rate) is not idle in the sense of the timeout.
    server.idle_timeout = None;
    server.common.nodelay = config.nodelay;
    if config.reconnect {
        if proto.is_connected() {
            // A connection the client has just closed is served until the server reads its end.
            server.max_clients = 2 * config.clients + 64;
        } else if proto == Proto::Udp {
            // Every message comes from a socket (a port) of its own, never heard from again once
            // answered: forget each soon, and do not count them against a limit meant for clients.
            server.idle_timeout = Some(TIMEOUT);
            server.max_clients = usize::MAX;
        }
    }
    Background::start(server, Report::discard(proto))
}

/// Starts every client thread. When one cannot start, those already started stay at the barrier
/// until the process exits with the error.
fn start_threads(plan: &Arc<Plan>, shared: &Arc<Shared>) -> Result<Vec<JoinHandle<Result<Tally>>>> {
    let mut handles = Vec::with_capacity(plan.threads);
    for index in 0..plan.threads {
        let (plan, shared) = (plan.clone(), shared.clone());
        let handle = thread::Builder::new()
            .name(format!("netpair-bench-{index}"))
            .spawn(move || worker::run_thread(&plan, index, &shared))
            .map_err(|e| Error::io("starting a client thread", e))?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Redraws the progress line on a terminal until every thread is done, then clears it.
fn show_progress(proto: Proto, warmup: Duration, shared: &Shared, handles: &[JoinHandle<Result<Tally>>]) {
    let started = Instant::now();
    // Not on a pipe (tests, scripts), and not when a thread has already given up.
    let live = io::stderr().is_terminal() && !shared.abort.load(Ordering::SeqCst);
    if !live {
        return;
    }
    while !handles.iter().all(JoinHandle::is_finished) {
        thread::sleep(PROGRESS);
        progress(proto, shared, started.elapsed().saturating_sub(warmup));
    }
    eprint!("\r\x1b[K");
}

/// Waits for every thread and merges their tallies; the first error wins.
fn join(handles: Vec<JoinHandle<Result<Tally>>>) -> Result<Tally> {
    let mut tally = Tally::new();
    let mut first_error = None;
    for handle in handles {
        match handle.join() {
            Ok(Ok(part)) => tally.merge(part),
            Ok(Err(err)) => {
                first_error.get_or_insert(err);
            }
            Err(_) => {
                first_error.get_or_insert(Error::io("a client thread", io::Error::other("it panicked")));
            }
        }
    }
    first_error.map_or(Ok(tally), Err)
}

/// The live line: round trips measured so far, over the time measured so far (after the warm-up).
fn progress(proto: Proto, shared: &Shared, elapsed: Duration) {
    let done = shared.round_trips.load(Ordering::Relaxed);
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
    eprint!(
        "\r\x1b[K{proto}: {:.1} s, {} round trips ({}/s), lost {}, wrong {}",
        elapsed.as_secs_f64(),
        grouped(done),
        grouped(rate as u64),
        grouped(shared.lost.load(Ordering::Relaxed)),
        grouped(shared.wrong.load(Ordering::Relaxed)),
    );
}
