//! `netpair bench`: round-trip latency and throughput against an in-process server (or a running
//! one with `--connect`), one column per transport; the client threads live in [`load`].

mod load;

use std::fmt::Write as _;
use std::io::{self, IsTerminal, Write};
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::config::{BenchConfig, ServerConfig, Stop};
use crate::error::{Error, Result, exit};
use crate::framing::Framing;
use crate::json::Json;
use crate::net::SocketDir;
use crate::proto::{Endpoint, Proto};
use crate::report::Report;
use crate::server::Background;
use crate::sys::raise_open_file_limit;
use crate::text::{grouped, nanos};

use load::{Plan, Shared, Target};
pub use load::{Tally, tag_len};

/// A reply later than this is counted lost.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Files the process needs besides the sockets: poll instances, wakers, stdio, the binary's own.
const SPARE_FILES: u64 = 64;

/// What one transport measured.
struct Outcome {
    proto: Proto,
    tally: Tally,
}

/// Runs the bench for each transport in turn and prints one table (or one JSON object).
/// Returns the exit status: 3 when a reply was lost or wrong.
pub fn run(config: &BenchConfig) -> Result<u8> {
    // An in-process stream server holds one socket per client too; a datagram server holds one in all.
    let both_ends = !config.connect && config.protos.iter().any(|p| p.is_stream());
    let needed = config.clients as u64 * if both_ends { 2 } else { 1 } + SPARE_FILES;
    let limit = raise_open_file_limit(needed);
    if limit < needed {
        let hint = if both_ends {
            "; or start `netpair server` as a process of its own and use --connect, so each side needs half"
        } else {
            ""
        };
        return Err(Error::Usage(format!(
            "--clients {} needs about {needed} open files, but the limit is {limit} and this process may not \
             raise it (ulimit -Hn; with CAP_SYS_RESOURCE netpair raises it up to /proc/sys/fs/nr_open){hint}",
            config.clients,
        )));
    }
    let dir = SocketDir::new("bench")?;
    // Ctrl-C ends the run early with what it measured (and the socket files removed); a second
    // one ends the process at once.
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        let _ = signal_hook::flag::register_conditional_default(signal, interrupted.clone());
        let _ = signal_hook::flag::register(signal, interrupted.clone());
    }
    let mut outcomes = Vec::new();
    for &proto in &config.protos {
        if interrupted.load(Ordering::Relaxed) {
            break;
        }
        outcomes.push(Outcome { proto, tally: measure(config, proto, &dir, &interrupted)? });
    }
    if interrupted.load(Ordering::Relaxed) {
        log::warn!("interrupted: the figures are for the time measured until then");
    }
    let text = if config.json { json(config, &outcomes) } else { table(config, &outcomes) };
    let mut out = io::stdout();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| Error::io("writing to stdout", e))?;
    let trouble = outcomes.iter().any(|o| o.tally.lost + o.tally.wrong + o.tally.failed > 0);
    Ok(if trouble { exit::LOST } else { exit::OK })
}

fn measure(config: &BenchConfig, proto: Proto, dir: &SocketDir, interrupted: &Arc<AtomicBool>) -> Result<Tally> {
    let server = if config.connect { None } else { Some(start_server(config, proto, dir)?) };
    let endpoint = match &server {
        Some(server) => server.endpoint().clone(),
        None if proto.is_unix() => Endpoint::Path(config.path.clone().unwrap_or_default()),
        None => Endpoint::Inet { host: config.host.clone(), port: config.port },
    };
    let target = match &endpoint {
        Endpoint::Path(path) => Target::Path(path.clone()),
        Endpoint::Inet { host, port } => {
            let resolved = (host.as_str(), *port).to_socket_addrs();
            let resolved = resolved.map_err(|source| Error::Resolve { host: host.clone(), source })?;
            let addr = resolved.into_iter().next();
            Target::Inet(
                addr.ok_or_else(|| Error::Resolve { host: host.clone(), source: io::ErrorKind::NotFound.into() })?,
            )
        }
    };
    let plan = Arc::new(Plan {
        proto,
        target,
        clients: config.clients,
        threads: config.threads,
        size: config.size,
        window: config.window,
        stop: config.stop,
        interval: config.rate.map(|rate| Duration::from_secs_f64(config.clients as f64 / rate)),
        warmup: config.warmup,
        timeout: TIMEOUT,
        socket_dir: dir.path().to_path_buf(),
        server_clock: server.as_ref().and_then(Background::cpu_clock),
    });
    let shared = Arc::new(Shared::new(config.threads, interrupted.clone()));
    let mut handles: Vec<JoinHandle<Result<Tally>>> = Vec::new();
    for index in 0..config.threads {
        let (plan, shared) = (plan.clone(), shared.clone());
        let handle = thread::Builder::new()
            .name(format!("netpair-bench-{index}"))
            .spawn(move || load::run_thread(plan, index, shared))
            .map_err(|e| Error::io("starting a client thread", e))?;
        handles.push(handle);
    }
    shared.ready.wait();
    let started = Instant::now();
    let live = io::stderr().is_terminal() && !shared.abort.load(Ordering::SeqCst);
    while live && !handles.iter().all(JoinHandle::is_finished) {
        thread::sleep(Duration::from_millis(100));
        progress(proto, &shared, started.elapsed().saturating_sub(config.warmup));
    }
    if live {
        eprint!("\r\x1b[K");
    }
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
    if let Some(server) = server {
        server.stop()?;
    }
    if let Some(err) = first_error {
        return Err(err);
    }
    if tally.failed == config.clients as u64 && tally.round_trips == 0 {
        let why = tally.first_failure.clone().unwrap_or_default();
        return Err(Error::Connect {
            what: format!("no {proto} server answered at {endpoint}"),
            source: io::Error::other(why),
        });
    }
    Ok(tally)
}

fn start_server(config: &BenchConfig, proto: Proto, dir: &SocketDir) -> Result<Background> {
    let endpoint = if proto.is_unix() {
        Endpoint::Path(config.path.clone().unwrap_or_else(|| dir.path().join(format!("server-{proto}.sock"))))
    } else {
        Endpoint::Inet { host: config.host.clone(), port: 0 }
    };
    let mut server = ServerConfig::in_process(proto, endpoint, Framing::Line, config.clients + 64);
    server.idle_timeout = None;
    Background::start(server, Report::discard(proto))
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

/// The figures a column shows, computed once for the table and the JSON.
struct Figures {
    round_trips: u64,
    seconds: f64,
    per_second: f64,
    mb_per_second: f64,
    /// min, p50, p90, p99, p99.9, max in nanoseconds, when any reply was timed.
    latency: Option<[u64; 6]>,
    client_cpu: f64,
    server_cpu: Option<f64>,
}

impl Figures {
    fn of(tally: &Tally, size: usize) -> Figures {
        let seconds = tally.elapsed().as_secs_f64();
        let per_second = if seconds > 0.0 { tally.round_trips as f64 / seconds } else { 0.0 };
        let h = &tally.histogram;
        let latency = (!h.is_empty()).then(|| {
            let q = |quantile| h.value_at_quantile(quantile);
            [h.min(), q(0.5), q(0.9), q(0.99), q(0.999), h.max()]
        });
        Figures {
            round_trips: tally.round_trips,
            seconds,
            per_second,
            mb_per_second: per_second * size as f64 / 1e6,
            latency,
            client_cpu: tally.cpu.as_secs_f64(),
            server_cpu: tally.server_cpu().map(|d| d.as_secs_f64()),
        }
    }

    fn per_server_cpu(&self) -> Option<f64> {
        self.server_cpu.filter(|&s| s > 0.0).map(|s| self.round_trips as f64 / s)
    }

    fn per_cpu(&self) -> Option<f64> {
        let total = self.client_cpu + self.server_cpu?;
        (total > 0.0).then(|| self.round_trips as f64 / total)
    }
}

const LATENCY_ROWS: [&str; 6] = ["min", "p50", "p90", "p99", "p99.9", "max"];

fn settings_line(config: &BenchConfig) -> String {
    let clients = if config.clients == 1 {
        "1 client".to_string()
    } else {
        format!("{} clients", grouped(config.clients as u64))
    };
    let window = if config.window == 1 {
        "window 1 (ping-pong)".to_string()
    } else {
        format!("window {}", grouped(config.window as u64))
    };
    let run = match config.stop {
        Stop::Messages(n) => format!("{} messages each", grouped(n)),
        Stop::Duration(d) => format!("{} s", d.as_secs_f64()),
    };
    let rate = config.rate.map_or_else(String::new, |r| format!(", open loop at {}/s", grouped(r as u64)));
    format!(
        "{clients}, {window}, {}-byte messages, {run} after {} s warm-up{rate}",
        grouped(config.size as u64),
        config.warmup.as_secs_f64()
    )
}

fn server_line(config: &BenchConfig) -> String {
    if config.connect {
        let at = config
            .path
            .as_ref()
            .map_or_else(|| format!("{}:{}", config.host, config.port), |p| p.display().to_string());
        format!("netpair server at {at} (--connect: its CPU time is not seen from here)")
    } else {
        "in-process (netpair server --reply upper, one thread)".into()
    }
}

fn table(config: &BenchConfig, outcomes: &[Outcome]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let figures: Vec<Figures> = outcomes.iter().map(|o| Figures::of(&o.tally, config.size)).collect();
    let mut row = |label: &str, cell: &dyn Fn(&Outcome, &Figures) -> String| {
        rows.push((label.to_string(), outcomes.iter().zip(&figures).map(|(o, f)| cell(o, f)).collect()));
    };
    row("round trips", &|_, f| grouped(f.round_trips));
    row("time measured", &|_, f| format!("{:.3} s", f.seconds));
    row("round trips/s", &|_, f| grouped(f.per_second.round() as u64));
    row("MB/s each way", &|_, f| format!("{:.2}", f.mb_per_second));
    for (k, name) in LATENCY_ROWS.iter().enumerate() {
        row(&format!("round trip {name}"), &|_, f| f.latency.map_or_else(|| "-".into(), |l| nanos(l[k])));
    }
    row("lost (no reply in 1 s)", &|o, _| grouped(o.tally.lost));
    row("  of which came late", &|o, _| grouped(o.tally.late));
    row("wrong replies", &|o, _| grouped(o.tally.wrong));
    row("clients failed", &|o, _| match &o.tally.first_failure {
        Some(why) => format!("{} ({why})", grouped(o.tally.failed)),
        None => "0".into(),
    });
    row("client CPU", &|_, f| format!("{:.3} s", f.client_cpu));
    row("server CPU", &|_, f| f.server_cpu.map_or_else(|| "-".into(), |s| format!("{s:.3} s")));
    row("round trips per server CPU-s", &|_, f| f.per_server_cpu().map_or_else(|| "-".into(), |r| grouped(r as u64)));
    row("round trips per CPU-s, all", &|_, f| f.per_cpu().map_or_else(|| "-".into(), |r| grouped(r as u64)));

    let label_width = rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..outcomes.len())
        .map(|c| {
            rows.iter()
                .map(|(_, cells)| cells[c].chars().count())
                .max()
                .unwrap_or(0)
                .max(outcomes[c].proto.name().len())
        })
        .collect();
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = format!(
        "netpair bench: {}\nserver: {}; client threads: {}; cores: {cores}\n\n",
        settings_line(config),
        server_line(config),
        config.threads
    );
    let _ = write!(out, "{:label_width$}", "");
    for (o, width) in outcomes.iter().zip(&widths) {
        let _ = write!(out, " | {:>width$}", o.proto.name());
    }
    out.push('\n');
    for (label, cells) in &rows {
        let pad = label_width - label.chars().count();
        let _ = write!(out, "{label}{:pad$}", "");
        for (cell, width) in cells.iter().zip(&widths) {
            let pad = width - cell.chars().count();
            let _ = write!(out, " | {:pad$}{cell}", "");
        }
        out.push('\n');
    }
    out
}

fn json(config: &BenchConfig, outcomes: &[Outcome]) -> String {
    let mut settings = Json::default();
    settings.int("clients", config.clients as u64).int("window", config.window as u64).int("size", config.size as u64);
    match config.stop {
        Stop::Messages(n) => settings.int("messages", n),
        Stop::Duration(d) => settings.num("duration_s", d.as_secs_f64()),
    };
    settings.num("warmup_s", config.warmup.as_secs_f64());
    if let Some(rate) = config.rate {
        settings.num("rate", rate);
    }
    settings.int("threads", config.threads as u64);
    settings.int("cores", thread::available_parallelism().map_or(1, |n| n.get()) as u64);
    settings.str("server", if config.connect { "connect" } else { "in-process" });
    let mut out = format!("{{\"settings\":{},\"results\":{{", settings.finish());
    for (i, o) in outcomes.iter().enumerate() {
        let t = &o.tally;
        let f = Figures::of(t, config.size);
        let mut j = Json::default();
        j.int("round_trips", f.round_trips)
            .int("sent", t.sent)
            .num("elapsed_s", f.seconds)
            .num("round_trips_per_s", f.per_second)
            .num("mb_per_s", f.mb_per_second);
        if let Some(l) = f.latency {
            for (name, value) in ["min", "p50", "p90", "p99", "p999", "max"].iter().zip(l) {
                j.num(&format!("rtt_{name}_us"), value as f64 / 1000.0);
            }
        }
        j.int("lost", t.lost).int("late", t.late).int("wrong", t.wrong).int("failed_clients", t.failed);
        if let Some(why) = &t.first_failure {
            j.str("failure", why);
        }
        j.num("client_cpu_s", f.client_cpu);
        if let Some(s) = f.server_cpu {
            j.num("server_cpu_s", s);
        }
        if let Some(r) = f.per_server_cpu() {
            j.num("round_trips_per_server_cpu_s", r);
        }
        if let Some(r) = f.per_cpu() {
            j.num("round_trips_per_cpu_s", r);
        }
        let _ = write!(out, "{}\"{}\":{}", if i > 0 { "," } else { "" }, o.proto.name(), j.finish());
    }
    out.push_str("}}\n");
    out
}
