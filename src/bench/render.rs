//! What the user sees at the end of a bench: one table with a column per transport, or one JSON
//! object, both from the same figures.

use std::fmt::Write as _;
use std::thread;

use super::tally::Tally;
use super::worker::SLACK;
use crate::config::{BenchConfig, Expect, Stop};
use crate::json::Json;
use crate::plot::{Series, svg};
use crate::proto::Proto;
use crate::text::{grouped, nanos};

/// What one transport measured.
pub struct Outcome {
    /// The transport measured.
    pub proto: Proto,
    /// All its client threads' tallies, merged.
    pub tally: Tally,
}

/// The figures a column shows, computed once for the table and the JSON.
struct Figures {
    round_trips: u64,
    /// From the start of the measurement to the last right reply, not to the end of the run: a
    /// client still waiting for a lost reply's timeout is not sending, and would dilute the rate.
    seconds: f64,
    per_second: f64,
    mb_per_second: f64,
    /// min, p50, p90, p99, p99.9, max in nanoseconds, when any reply was timed.
    latency: Option<[u64; 6]>,
    client_cpu: f64,
    /// Only an in-process server's thread has a clock this process can read.
    server_cpu: Option<f64>,
    /// Under --rate: the messages per second sent on schedule, all clients together (the rate asked
    /// times the share of the scheduled messages sent on time).
    rate_achieved: Option<f64>,
    /// --reconnect: the connections that carried a measured message, per second measured.
    connections_per_second: f64,
}

impl Figures {
    /// The figures of one transport's tally, for messages of `size` bytes.
    fn of(tally: &Tally, config: &BenchConfig) -> Figures {
        let size = config.size;
        let seconds = tally.elapsed().as_secs_f64();
        // No reply timed: no time measured, and a rate of 0 rather than NaN.
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
            connections_per_second: if seconds > 0.0 { tally.connections as f64 / seconds } else { 0.0 },
            rate_achieved: config
                .rate
                .filter(|_| tally.scheduled > 0)
                .map(|rate| rate * tally.scheduled.saturating_sub(tally.not_sent) as f64 / tally.scheduled as f64),
        }
    }

    /// The server's efficiency, which unlike round trips per second does not depend on how many
    /// cores the client threads took from it.
    fn per_server_cpu(&self) -> Option<f64> {
        self.server_cpu.filter(|&s| s > 0.0).map(|s| self.round_trips as f64 / s)
    }

    /// --reconnect: what a connection (connect, one round trip, close) costs the server.
    fn connections_per_server_cpu(&self, connections: u64) -> Option<f64> {
        self.server_cpu.filter(|&s| s > 0.0).map(|s| connections as f64 / s)
    }

    /// Client and server together: what one round trip costs the machine.
    fn per_cpu(&self) -> Option<f64> {
        let total = self.client_cpu + self.server_cpu?;
        (total > 0.0).then(|| self.round_trips as f64 / total)
    }
}

/// The table's names for the six latency figures, in [`Figures::latency`]'s order.
const LATENCY_ROWS: [&str; 6] = ["min", "p50", "p90", "p99", "p99.9", "max"];
/// The JSON's names for them: keys cannot hold the dot of "p99.9".
const LATENCY_KEYS: [&str; 6] = ["min", "p50", "p90", "p99", "p999", "max"];

/// The heading's first line: what each client did.
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
    let reconnect = if config.reconnect { ", a new connection per message (--reconnect)" } else { "" };
    format!(
        "{clients}, {window}, {}-byte messages, {run} after {} s warm-up{rate}{reconnect}",
        grouped(config.size as u64),
        config.warmup.as_secs_f64()
    )
}

/// The heading's second line: which server answered.
fn server_line(config: &BenchConfig) -> String {
    if config.connect {
        let at = config
            .path
            .as_ref()
            .map_or_else(|| format!("{}:{}", config.host, config.port), |p| p.display().to_string());
        format!("netpair server at {at} (--connect: its CPU time is not seen from here)")
    } else {
        format!("in-process (netpair server --reply {}, one thread)", config.expect.name())
    }
}

/// The table: a heading that says what was run, then one row per figure and a column per transport.
pub fn table(config: &BenchConfig, outcomes: &[Outcome], interrupted: bool) -> String {
    let rows = rows(config, outcomes);
    let label_width = rows.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
    // Each column as wide as its widest cell or its heading; figures are right-aligned.
    let widths: Vec<usize> = (0..outcomes.len())
        .map(|c| {
            rows.iter()
                .map(|(_, cells)| cells[c].chars().count())
                .max()
                .unwrap_or(0)
                .max(outcomes[c].proto.name().len())
        })
        .collect();
    let mut out = format!(
        "netpair bench: {}\nserver: {}; client threads: {}; cores: {}\n\n",
        settings_line(config),
        server_line(config),
        config.threads,
        cores()
    );
    // Writing into a String cannot fail.
    let _ = write!(out, "{:label_width$}", "");
    for (o, width) in outcomes.iter().zip(&widths) {
        let _ = write!(out, " | {:>width$}", o.proto.name());
    }
    out.push('\n');
    for (label, cells) in &rows {
        // Padding by characters, not bytes: "µs" is one column wide and two bytes long.
        let pad = label_width - label.chars().count();
        let _ = write!(out, "{label}{:pad$}", "");
        for (cell, width) in cells.iter().zip(&widths) {
            let pad = width - cell.chars().count();
            let _ = write!(out, " | {:pad$}{cell}", "");
        }
        out.push('\n');
    }
    for note in notes(config, outcomes, interrupted) {
        let _ = write!(out, "\nnote: {note}");
    }
    out
}

/// What the figures alone would not say: a run cut short, a rate not kept.
fn notes(config: &BenchConfig, outcomes: &[Outcome], interrupted: bool) -> Vec<String> {
    let mut notes = Vec::new();
    if config.reconnect {
        notes.push(
            "--reconnect: each message had a connection of its own (over udp and unixgram, a socket of its \
             own), and its round trip counts from when its connect began: socket, connect (over tcp the \
             handshake), the message and its reply. Connections per second count those that carried a \
             measured message.\n"
                .to_string(),
        );
    }
    if interrupted {
        let unmeasured: Vec<&str> = config
            .protos
            .iter()
            .filter(|&&p| !outcomes.iter().any(|o| o.proto == p && o.tally.round_trips > 0))
            .map(|p| p.name())
            .collect();
        notes.push(if unmeasured.is_empty() {
            "interrupted: the figures are for the time measured until then.\n".to_string()
        } else {
            format!(
                "interrupted: the figures are for the time measured until then, and no round trip was measured \
                 over {} (so the exit status is 3).\n",
                unmeasured.join(", ")
            )
        });
    }
    for o in outcomes {
        if let Some(hint) = echo_hint(config, &o.tally) {
            notes.push(format!("{}: {hint}\n", o.proto));
        }
    }
    for o in outcomes {
        let t = &o.tally;
        if let (Some(rate), true) = (config.rate, t.not_sent > 0) {
            let achieved = Figures::of(t, config).rate_achieved.unwrap_or(0.0);
            notes.push(format!(
                "{} did not keep the rate asked: {}/s of {}/s. {} of the {} messages scheduled were not sent on \
                 time (a client over {} ms behind skips ahead), and latency counts from when each message sent was due.\n",
                o.proto,
                grouped(achieved.round() as u64),
                grouped(rate.round() as u64),
                grouped(t.not_sent),
                grouped(t.scheduled),
                SLACK.as_millis(),
            ));
        }
    }
    notes
}

/// `--expect upper` (the default) and every wrong reply was its message unchanged: an echo server.
fn echo_hint(config: &BenchConfig, t: &Tally) -> Option<&'static str> {
    let wrong = t.wrong + t.warmup.wrong;
    (config.expect == Expect::Upper && wrong > 0 && t.echoes == wrong)
        .then_some("every wrong reply was its message unchanged: for an echo server, use --expect echo")
}

/// Each row's label and its cells, one per outcome; "-" where a figure is not known.
fn rows(config: &BenchConfig, outcomes: &[Outcome]) -> Vec<(String, Vec<String>)> {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let figures: Vec<Figures> = outcomes.iter().map(|o| Figures::of(&o.tally, config)).collect();
    let mut row = |label: &str, cell: &dyn Fn(&Outcome, &Figures) -> String| {
        rows.push((label.to_string(), outcomes.iter().zip(&figures).map(|(o, f)| cell(o, f)).collect()));
    };
    row("round trips", &|_, f| grouped(f.round_trips));
    row("time measured", &|_, f| format!("{:.3} s", f.seconds));
    row("round trips/s", &|_, f| grouped(f.per_second.round() as u64));
    row("MB/s each way", &|_, f| format!("{:.2}", f.mb_per_second));
    if config.reconnect {
        row("connections", &|o, _| grouped(o.tally.connections));
        row("connections/s", &|_, f| grouped(f.connections_per_second.round() as u64));
    }
    if let Some(rate) = config.rate {
        row("rate asked (messages/s)", &|_, _| grouped(rate.round() as u64));
        row("rate achieved (messages/s)", &|_, f| {
            f.rate_achieved.map_or_else(|| "-".into(), |r| grouped(r.round() as u64))
        });
        row("not sent on time", &|o, _| format!("{} of {}", grouped(o.tally.not_sent), grouped(o.tally.scheduled)));
    }
    for (k, name) in LATENCY_ROWS.iter().enumerate() {
        row(&format!("round trip {name}"), &|_, f| f.latency.map_or_else(|| "-".into(), |l| nanos(l[k])));
    }
    // "1 s" is the bench's reply timeout (`TIMEOUT` in mod.rs).
    row("lost (no reply in 1 s)", &|o, _| grouped(o.tally.lost));
    row("  of which came late", &|o, _| grouped(o.tally.late));
    row("wrong replies", &|o, _| grouped(o.tally.wrong));
    row("warm-up, not measured", &|o, _| {
        let w = o.tally.warmup;
        let mut cell = format!("{} sent", grouped(w.sent));
        if w.lost + w.wrong > 0 {
            let _ = write!(cell, ", {} lost, {} wrong", grouped(w.lost), grouped(w.wrong));
        }
        cell
    });
    // The first failure's reason is usually every failure's (a server gone, a limit reached).
    row("clients failed", &|o, _| match &o.tally.first_failure {
        Some(why) => format!("{} ({why})", grouped(o.tally.failed)),
        None => "0".into(),
    });
    row("client CPU", &|_, f| format!("{:.3} s", f.client_cpu));
    row("server CPU", &|_, f| f.server_cpu.map_or_else(|| "-".into(), |s| format!("{s:.3} s")));
    row("round trips per server CPU-s", &|_, f| f.per_server_cpu().map_or_else(|| "-".into(), |r| grouped(r as u64)));
    row("round trips per CPU-s, all", &|_, f| f.per_cpu().map_or_else(|| "-".into(), |r| grouped(r as u64)));
    if config.reconnect {
        row("connections per server CPU-s", &|o, f| {
            f.connections_per_server_cpu(o.tally.connections).map_or_else(|| "-".into(), |r| grouped(r as u64))
        });
    }
    rows
}

/// The cores this process may run on, which bounds what client and server threads can do at once.
fn cores() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// The `--plot` picture: each transport's round trips, read from its histogram at quantiles spread
/// evenly across the plot's stretched axis.
pub fn plot(config: &BenchConfig, outcomes: &[Outcome]) -> String {
    const STEPS: u32 = 300;
    let series: Vec<Series> = outcomes
        .iter()
        .map(|o| {
            let h = &o.tally.histogram;
            let points = if h.is_empty() {
                Vec::new()
            } else {
                // x = -log10(1 - p) from 0 to 3: p0 to p99.9.
                (0..=STEPS)
                    .map(|i| 1.0 - 10f64.powf(-3.0 * f64::from(i) / f64::from(STEPS)))
                    .map(|p| (p, h.value_at_quantile(p) as f64))
                    .collect()
            };
            Series { name: o.proto.name().to_string(), points }
        })
        .collect();
    svg(&format!("netpair bench: {}", settings_line(config)), &series)
}

/// The JSON document: the settings, whether a signal cut the run short, then one object of figures
/// per transport, keyed by its name.
/// Figures not known (no reply timed, no server CPU clock) are left out rather than given as 0.
pub fn json(config: &BenchConfig, outcomes: &[Outcome], interrupted: bool) -> String {
    let mut settings = Json::default();
    settings.int("clients", config.clients as u64).int("window", config.window as u64).int("size", config.size as u64);
    match config.stop {
        Stop::Messages(n) => settings.int("messages", n),
        Stop::Duration(d) => settings.num("duration_s", d.as_secs_f64()),
    };
    settings.num("warmup_s", config.warmup.as_secs_f64());
    settings.bool("reconnect", config.reconnect);
    if let Some(rate) = config.rate {
        settings.num("rate", rate);
    }
    settings.int("threads", config.threads as u64);
    settings.int("cores", cores() as u64);
    settings.str("server", if config.connect { "connect" } else { "in-process" });
    settings.str("expect", config.expect.name());
    let mut out = format!("{{\"settings\":{},\"interrupted\":{interrupted},\"results\":{{", settings.finish());
    for (i, o) in outcomes.iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(out, "{comma}\"{}\":{}", o.proto.name(), result_json(&o.tally, config));
    }
    out.push_str("}}\n");
    out
}

/// One transport's figures as a JSON object.
fn result_json(t: &Tally, config: &BenchConfig) -> String {
    let f = Figures::of(t, config);
    let mut j = Json::default();
    j.int("round_trips", f.round_trips)
        .int("sent", t.sent)
        .num("elapsed_s", f.seconds)
        .num("round_trips_per_s", f.per_second)
        .num("mb_per_s", f.mb_per_second);
    if let Some(l) = f.latency {
        // Microseconds, as people read them; the table picks its unit per figure instead.
        for (name, value) in LATENCY_KEYS.iter().zip(l) {
            j.num(&format!("rtt_{name}_us"), value as f64 / 1000.0);
        }
    }
    if let Some(r) = f.rate_achieved {
        j.int("scheduled", t.scheduled).int("not_sent_on_time", t.not_sent).num("rate_achieved", r);
    }
    j.int("lost", t.lost).int("late", t.late).int("wrong", t.wrong).int("failed_clients", t.failed);
    let w = t.warmup;
    let mut warmup = Json::default();
    warmup.int("sent", w.sent).int("round_trips", w.round_trips).int("lost", w.lost).int("late", w.late);
    j.raw("warmup", &warmup.int("wrong", w.wrong).finish());
    if let Some(hint) = echo_hint(config, t) {
        j.str("hint", hint);
    }
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
    if config.reconnect {
        j.int("connections", t.connections).num("connections_per_s", f.connections_per_second);
        if let Some(r) = f.connections_per_server_cpu(t.connections) {
            j.num("connections_per_server_cpu_s", r);
        }
    }
    j.finish()
}
