//! The command line: clap definitions, checked and turned into the settings each mode runs with.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::PossibleValue;
use clap::{Arg, ArgAction, ArgMatches, ValueEnum, value_parser};

use crate::compare;
use crate::config::{
    BenchConfig, ClientConfig, Common, CompareConfig, Config, Reply, ServerConfig, Stop, UDP_MAX, default_max_message,
};
use crate::error::{Error, Result};
use crate::framing::Framing;
use crate::proto::{Endpoint, Proto};

const EXIT_STATUS: &str = "\
Exit status:
  0  every message got its reply (server: stopped cleanly)
  1  could not listen or connect, or the connection broke (refused, reset, address in use, name not found)
  2  usage error
  3  some replies never came (timeout) or a line could not be sent; bench: replies lost or wrong";

/// Run the socket tutorial's conversation over TCP, UDP, Unix stream or Unix datagram sockets.
#[derive(Debug)]
pub struct Cli {
    /// Socket kind; `bench` takes a comma-separated list.
    pub proto: Vec<Proto>,
    /// Host name or address to listen on or connect to.
    pub host: String,
    /// Port to listen on or connect to; 0 asks the OS for a free one.
    pub port: u16,
    /// Socket file for --proto unix and unixgram.
    pub path: Option<PathBuf>,
    /// How a stream is cut into messages (datagrams are always one message each).
    pub framing: Framing,
    /// Largest message in bytes [default: 65507 for datagrams, 1 MiB for lines].
    pub max_message: Option<usize>,
    /// One JSON object per line on stdout for each event, instead of the transcript.
    pub json: bool,
    /// Print a ` ? ` prompt before reading each line: auto = when stdin is a terminal.
    pub prompt: Prompt,
    /// More diagnostics on stderr (-vv for debug).
    pub verbose: u8,
    /// Fewer diagnostics on stderr (-qq for none).
    pub quiet: u8,
    /// The subcommand, with its own options.
    pub command: Command,
}

/// What to run.
#[derive(Debug)]
pub enum Command {
    /// Listen, print each message and its uppercase form, and reply.
    Server(ServerArgs),
    /// Send each stdin line as a message and print the replies; a line `q` ends.
    Client(ClientArgs),
    /// Run one conversation over tcp, udp, unix and unixgram and show the differences side by side.
    Compare(CompareArgs),
    /// Measure round-trip latency and throughput, against an in-process server or a running one.
    Bench(BenchArgs),
}

/// `bench` options.
#[derive(Debug)]
pub struct BenchArgs {
    /// Load the netpair server already running at --host/--port (or --path); without it, bench starts
    /// its own in-process, on a free port (or --path).
    pub connect: bool,
    /// Clients, each with its own socket.
    pub clients: usize,
    /// Messages per client after the warm-up [default: run for --duration].
    pub messages: Option<u64>,
    /// How long to measure after the warm-up [default: 5s].
    pub duration: Option<Duration>,
    /// Bytes per message.
    pub size: usize,
    /// Messages in flight per client: 1 is ping-pong.
    pub window: usize,
    /// Open loop: send this many messages per second in all, on a fixed schedule; latency counts from
    /// when each was due, so a stall is never hidden.
    pub rate: Option<f64>,
    /// Send for this long before measuring.
    pub warmup: Duration,
    /// Client threads [default: one per core].
    pub threads: Option<usize>,
}

/// `compare` options.
#[derive(Debug)]
pub struct CompareArgs {
    /// Messages in the conversation.
    pub messages: usize,
    /// Bytes per message.
    pub size: usize,
    /// Use the lines of this file as the conversation instead.
    pub input: Option<PathBuf>,
}

/// Server-only options.
#[derive(Debug)]
pub struct ServerArgs {
    /// What goes back: the uppercased message, the message itself, or the next line typed on stdin.
    pub reply: Reply,
    /// Serve one client and exit when it is done.
    pub once: bool,
    /// Forget a peer that has sent nothing, and taken none of its replies, for this long (0 = never).
    pub idle_timeout: Duration,
    /// Most peers served at once; more are turned away.
    pub max_clients: usize,
    /// Most bytes held for all peers together.
    pub max_buffered: usize,
}

/// Client-only options.
#[derive(Debug)]
pub struct ClientArgs {
    /// How long to wait for each reply (e.g. 500ms, 2s).
    pub timeout: Duration,
}

/// When to print the ` ? ` prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prompt {
    Auto,
    Always,
    Never,
}

impl Prompt {
    /// Whether to prompt, given whether stdin is a terminal.
    pub fn enabled(self) -> bool {
        match self {
            Prompt::Always => true,
            Prompt::Never => false,
            Prompt::Auto => std::io::IsTerminal::is_terminal(&std::io::stdin()),
        }
    }
}

// The command line is built with clap's builder API rather than its derive macros: a proc-macro cannot be
// built when `.cargo/config.toml` asks for a static binary, and the static binary starts faster.
// Each type below is filled from the arguments its own `command()` declares, under the same ids.

impl Cli {
    /// Every flag netpair takes, with its help text and default.
    pub fn command() -> clap::Command {
        clap::Command::new("netpair")
            .version(env!("CARGO_PKG_VERSION"))
            .about("Run the socket tutorial's conversation over TCP, UDP, Unix stream or Unix datagram sockets")
            .after_help(EXIT_STATUS)
            .subcommand_required(true)
            .arg_required_else_help(true)
            .args(
                [
                    option("proto", "PROTO", "Socket kind; `bench` takes a comma-separated list")
                        .value_parser(value_parser!(Proto))
                        .action(ArgAction::Append)
                        .value_delimiter(',')
                        .default_value("tcp"),
                    option("host", "HOST", "Host name or address to listen on or connect to")
                        .default_value("127.0.0.1"),
                    option("port", "PORT", "Port to listen on or connect to; 0 asks the OS for a free one")
                        .value_parser(value_parser!(u16))
                        .default_value("5001"),
                    option("path", "PATH", "Socket file for --proto unix and unixgram")
                        .value_parser(value_parser!(PathBuf)),
                    option(
                        "framing",
                        "FRAMING",
                        "How a stream is cut into messages (datagrams are always one message each)",
                    )
                    .value_parser(value_parser!(Framing))
                    .default_value("line"),
                    option(
                        "max-message",
                        "BYTES",
                        "Largest message in bytes [default: 65507 for datagrams, 1 MiB for lines]",
                    )
                    .value_parser(value_parser!(usize)),
                    switch("json", "One JSON object per line on stdout for each event, instead of the transcript"),
                    option(
                        "prompt",
                        "PROMPT",
                        "Print a ` ? ` prompt before reading each line: auto = when stdin is a terminal",
                    )
                    .value_parser(value_parser!(Prompt))
                    .default_value("auto"),
                    count('v', "verbose", "More diagnostics on stderr (-vv for debug)"),
                    count('q', "quiet", "Fewer diagnostics on stderr (-qq for none)").conflicts_with("verbose"),
                ]
                // Global: accepted before or after the subcommand, and shown in its help.
                .map(|arg| arg.global(true)),
            )
            .subcommands([ServerArgs::command(), ClientArgs::command(), CompareArgs::command(), BenchArgs::command()])
    }

    /// Parses the process's arguments. `--help`, `--version` and usage errors are the `Err`, to be printed.
    pub fn try_parse() -> std::result::Result<Cli, clap::Error> {
        Cli::try_parse_from(std::env::args_os())
    }

    /// Parses `args`, the first being the program name.
    pub fn try_parse_from<I, T>(args: I) -> std::result::Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut matches = Cli::command().try_get_matches_from(args)?;
        let Some((name, mut sub)) = matches.remove_subcommand() else { unreachable!("clap requires a subcommand") };
        let command = match name.as_str() {
            "server" => Command::Server(ServerArgs::from_matches(&mut sub)),
            "client" => Command::Client(ClientArgs::from_matches(&mut sub)),
            "compare" => Command::Compare(CompareArgs::from_matches(&mut sub)),
            "bench" => Command::Bench(BenchArgs::from_matches(&mut sub)),
            _ => unreachable!("clap matched a subcommand that was not declared: {name}"),
        };
        // Global flags given after the subcommand have been copied up to these matches by clap.
        let m = &mut matches;
        Ok(Cli {
            proto: m.remove_many("proto").into_iter().flatten().collect(),
            host: take(m, "host"),
            port: take(m, "port"),
            path: m.remove_one("path"),
            framing: take(m, "framing"),
            max_message: m.remove_one("max-message"),
            json: take(m, "json"),
            prompt: take(m, "prompt"),
            verbose: take(m, "verbose"),
            quiet: take(m, "quiet"),
            command,
        })
    }
}

impl ServerArgs {
    fn command() -> clap::Command {
        clap::Command::new("server").about("Listen, print each message and its uppercase form, and reply").args([
            option(
                "reply",
                "REPLY",
                "What goes back: the uppercased message, the message itself, or the next line typed on stdin",
            )
            .value_parser(value_parser!(Reply))
            .default_value("upper"),
            switch("once", "Serve one client and exit when it is done"),
            option(
                "idle-timeout",
                "IDLE_TIMEOUT",
                "Forget a peer that has sent nothing, and taken none of its replies, for this long (0 = never)",
            )
            .value_parser(parse_duration)
            .default_value("60s"),
            option("max-clients", "MAX_CLIENTS", "Most peers served at once; more are turned away")
                .value_parser(value_parser!(usize))
                .default_value("16384"),
            option(
                "max-buffered",
                "BYTES",
                "Most bytes held for all peers together (unfinished lines, unwritten replies); past it, peers holding the most are not read from until it drops",
            )
            .value_parser(value_parser!(usize))
            .default_value("268435456"),
        ])
    }

    fn from_matches(m: &mut ArgMatches) -> ServerArgs {
        ServerArgs {
            reply: take(m, "reply"),
            once: take(m, "once"),
            idle_timeout: take(m, "idle-timeout"),
            max_clients: take(m, "max-clients"),
            max_buffered: take(m, "max-buffered"),
        }
    }
}

impl ClientArgs {
    fn command() -> clap::Command {
        clap::Command::new("client")
            .about("Send each stdin line as a message and print the replies; a line `q` ends")
            .arg(
                option("timeout", "TIMEOUT", "How long to wait for each reply (e.g. 500ms, 2s)")
                    .value_parser(parse_duration)
                    .default_value("2s"),
            )
    }

    fn from_matches(m: &mut ArgMatches) -> ClientArgs {
        ClientArgs { timeout: take(m, "timeout") }
    }
}

impl CompareArgs {
    fn command() -> clap::Command {
        clap::Command::new("compare")
            .about("Run one conversation over tcp, udp, unix and unixgram and show the differences side by side")
            .args([
                option("messages", "MESSAGES", "Messages in the conversation")
                    .value_parser(value_parser!(usize))
                    .default_value("20"),
                option("size", "BYTES", "Bytes per message").value_parser(value_parser!(usize)).default_value("32"),
                option("input", "FILE", "Use the lines of this file as the conversation instead")
                    .value_parser(value_parser!(PathBuf)),
            ])
    }

    fn from_matches(m: &mut ArgMatches) -> CompareArgs {
        CompareArgs { messages: take(m, "messages"), size: take(m, "size"), input: m.remove_one("input") }
    }
}

impl BenchArgs {
    fn command() -> clap::Command {
        clap::Command::new("bench")
            .about("Measure round-trip latency and throughput, against an in-process server or a running one")
            .args([
                switch(
                    "connect",
                    "Load the netpair server already running at --host/--port (or --path); without it, bench \
                     starts its own in-process, on a free port (or --path)",
                ),
                option("clients", "CLIENTS", "Clients, each with its own socket")
                    .value_parser(value_parser!(usize))
                    .default_value("1"),
                option("messages", "MESSAGES", "Messages per client after the warm-up [default: run for --duration]")
                    .value_parser(value_parser!(u64))
                    .conflicts_with("duration"),
                option("duration", "DURATION", "How long to measure after the warm-up [default: 5s]")
                    .value_parser(parse_duration),
                option("size", "BYTES", "Bytes per message").value_parser(value_parser!(usize)).default_value("64"),
                option("window", "WINDOW", "Messages in flight per client: 1 is ping-pong")
                    .value_parser(value_parser!(usize))
                    .default_value("1"),
                option(
                    "rate",
                    "PER_SECOND",
                    "Open loop: send this many messages per second in all, on a fixed schedule; latency counts \
                     from when each was due, so a stall is never hidden",
                )
                .value_parser(value_parser!(f64)),
                option("warmup", "WARMUP", "Send for this long before measuring")
                    .value_parser(parse_duration)
                    .default_value("500ms"),
                option("threads", "THREADS", "Client threads [default: one per core]")
                    .value_parser(value_parser!(usize)),
            ])
    }

    fn from_matches(m: &mut ArgMatches) -> BenchArgs {
        BenchArgs {
            connect: take(m, "connect"),
            clients: take(m, "clients"),
            messages: m.remove_one("messages"),
            duration: m.remove_one("duration"),
            size: take(m, "size"),
            window: take(m, "window"),
            rate: m.remove_one("rate"),
            warmup: take(m, "warmup"),
            threads: m.remove_one("threads"),
        }
    }
}

/// `--name VALUE`; the id is the long name, so `take(m, "max-message")` reads `--max-message`.
fn option(name: &'static str, value_name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).value_name(value_name).help(help).action(ArgAction::Set)
}

/// `--name`, false unless given.
fn switch(name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).long(name).help(help).action(ArgAction::SetTrue)
}

/// `-x` / `--name`, counted: `-xx` is 2.
fn count(short: char, name: &'static str, help: &'static str) -> Arg {
    Arg::new(name).short(short).long(name).help(help).action(ArgAction::Count)
}

/// The value of an argument that always has one once clap has matched: a switch, a count or a default.
fn take<T: Clone + Send + Sync + 'static>(m: &mut ArgMatches, id: &str) -> T {
    m.remove_one(id).unwrap_or_else(|| unreachable!("--{id} has a default"))
}

// How the value enums are spelled on the command line; `--help` shows each value's help.

impl ValueEnum for Proto {
    fn value_variants<'a>() -> &'a [Self] {
        &Proto::ALL
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(self.name()))
    }
}

impl ValueEnum for Framing {
    fn value_variants<'a>() -> &'a [Self] {
        &[Framing::Line, Framing::Raw]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Framing::Line => PossibleValue::new("line")
                .help(r"One line is one message; `\n` or `\r\n` ends it and is not part of it"),
            Framing::Raw => PossibleValue::new("raw")
                .help("One read is one message, as in the tutorial: TCP may merge or split them"),
        })
    }
}

impl ValueEnum for Reply {
    fn value_variants<'a>() -> &'a [Self] {
        &[Reply::Upper, Reply::Echo, Reply::Stdin]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Reply::Upper => PossibleValue::new("upper").help("Reply with the message uppercased"),
            Reply::Echo => PossibleValue::new("echo").help("Reply with the message unchanged"),
            Reply::Stdin => {
                PossibleValue::new("stdin").help("Reply with the next line read from stdin (the tutorial's server)")
            }
        })
    }
}

impl ValueEnum for Prompt {
    fn value_variants<'a>() -> &'a [Self] {
        &[Prompt::Auto, Prompt::Always, Prompt::Never]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            Prompt::Auto => "auto",
            Prompt::Always => "always",
            Prompt::Never => "never",
        }))
    }
}

impl Cli {
    /// Checks flags that clap cannot check alone and builds the settings.
    pub fn into_config(self) -> Result<Config> {
        if let Command::Bench(args) = &self.command {
            return Ok(Config::Bench(bench_config(&self, args)?));
        }
        if let Command::Compare(args) = &self.command {
            let lines =
                compare::conversation(args.input.as_deref(), positive(args.messages, "--messages")?, args.size)?;
            return Ok(Config::Compare(CompareConfig { lines, json: self.json }));
        }
        let common = self.common()?;
        Ok(match self.command {
            Command::Compare(_) | Command::Bench(_) => unreachable!("handled above"),
            Command::Server(args) => Config::Server(ServerConfig {
                common,
                also: Vec::new(),
                reply: args.reply,
                once: args.once,
                idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
                max_clients: positive(args.max_clients, "--max-clients")?,
                max_buffered: positive(args.max_buffered, "--max-buffered")?,
            }),
            Command::Client(args) => {
                if args.timeout.is_zero() {
                    return Err(Error::Usage("--timeout must be more than 0".into()));
                }
                Config::Client(ClientConfig { common, timeout: args.timeout })
            }
        })
    }

    fn common(&self) -> Result<Common> {
        let proto = match self.proto.as_slice() {
            [one] => *one,
            _ => {
                return Err(Error::Usage("--proto takes one value here (a list is for bench)".into()));
            }
        };
        Ok(Common {
            proto,
            endpoint: endpoint(proto, &self.host, self.port, self.path.as_ref())?,
            framing: self.framing,
            max_message: max_message(proto, self.max_message)?,
            json: self.json,
            prompt: self.prompt.enabled(),
        })
    }
}

/// The longest --duration or --warmup (and time between scheduled sends) taken.
const MAX_RUN: Duration = Duration::from_secs(30 * 86_400);
/// The most messages in flight per client.
const MAX_WINDOW: usize = 1 << 16;

/// Checks the bench's flags together with the global ones.
fn bench_config(cli: &Cli, args: &BenchArgs) -> Result<BenchConfig> {
    let usage = |text: String| Err(Error::Usage(text));
    let mut protos = cli.proto.clone();
    protos.dedup();
    if cli.framing != Framing::Line {
        return usage("bench always frames stream messages by lines; drop --framing".into());
    }
    for (value, flag) in [(args.clients, "--clients"), (args.window, "--window"), (args.size, "--size")] {
        if value == 0 {
            return usage(format!("{flag} must be more than 0"));
        }
    }
    let stop = match (args.messages, args.duration) {
        (Some(0), _) => return usage("--messages must be more than 0".into()),
        (Some(n), _) => Stop::Messages(n),
        (None, Some(d)) if d.is_zero() => return usage("--duration must be more than 0".into()),
        (None, Some(d)) => Stop::Duration(d),
        (None, None) => Stop::Duration(Duration::from_secs(5)),
    };
    for (d, flag) in [(Some(args.warmup), "--warmup"), (args.duration, "--duration")] {
        if d.is_some_and(|d| d > MAX_RUN) {
            return usage(format!("{flag} is over {} days", MAX_RUN.as_secs() / 86_400));
        }
    }
    if let Some(rate) = args.rate {
        // Each client's time between sends must be a time this run can reach.
        let every = Duration::try_from_secs_f64(args.clients as f64 / rate).ok().filter(|&d| d <= MAX_RUN);
        if !(rate.is_finite() && rate > 0.0) || every.is_none() {
            return usage(
                "--rate must be messages per second above 0, enough for each client to send within 30 days".into(),
            );
        }
    }
    if args.window > MAX_WINDOW {
        return usage(format!("--window {} is over {MAX_WINDOW} messages in flight per client", args.window));
    }
    let tag = crate::bench::tag_len(args.clients);
    if args.size < tag {
        return usage(format!(
            "--size {} is too small: with --clients {} each message needs {tag} bytes to name its client and number",
            args.size, args.clients
        ));
    }
    let datagrams = protos.iter().any(|p| !p.is_stream());
    let ceiling = if datagrams { UDP_MAX } else { crate::config::LINE_MAX };
    if args.size > ceiling {
        let why = if datagrams { "the largest UDP message" } else { "the server's line limit" };
        return usage(format!("--size {} is over {why} ({ceiling} bytes)", args.size));
    }
    let unix = protos.iter().filter(|p| p.is_unix()).count();
    if args.connect && unix > 0 && cli.path.is_none() {
        return usage("--connect with --proto unix or unixgram needs --path SOCKET_FILE".into());
    }
    if args.connect && unix > 1 {
        return usage("--connect can reach unix and unixgram only one at a time (one --path)".into());
    }
    if let Some(path) = &cli.path
        && path.as_os_str().is_empty()
    {
        return usage("--path must not be empty".into());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match args.threads {
        Some(0) => return usage("--threads must be more than 0".into()),
        Some(n) => n,
        None => cores,
    };
    Ok(BenchConfig {
        protos,
        host: cli.host.clone(),
        port: cli.port,
        path: cli.path.clone(),
        connect: args.connect,
        clients: args.clients,
        stop,
        size: args.size,
        window: args.window,
        rate: args.rate,
        warmup: args.warmup,
        threads: threads.min(args.clients),
        json: cli.json,
    })
}

fn endpoint(proto: Proto, host: &str, port: u16, path: Option<&PathBuf>) -> Result<Endpoint> {
    match (proto.is_unix(), path) {
        (true, Some(path)) if path.as_os_str().is_empty() => Err(Error::Usage("--path must not be empty".into())),
        (true, Some(path)) => Ok(Endpoint::Path(path.clone())),
        (true, None) => Err(Error::Usage(format!("--proto {proto} needs --path SOCKET_FILE"))),
        (false, Some(_)) => {
            Err(Error::Usage(format!("--path is for --proto unix or unixgram, not {proto} (use --host and --port)")))
        }
        (false, None) => Ok(Endpoint::Inet { host: host.to_string(), port }),
    }
}

fn max_message(proto: Proto, given: Option<usize>) -> Result<usize> {
    let max = positive(given.unwrap_or(default_max_message(proto)), "--max-message")?;
    if proto == Proto::Udp && max > UDP_MAX {
        return Err(Error::Usage(format!(
            "--max-message {max} is over the largest UDP payload on IPv4 ({UDP_MAX} bytes)"
        )));
    }
    Ok(max)
}

fn positive(value: usize, flag: &str) -> Result<usize> {
    if value == 0 {
        return Err(Error::Usage(format!("{flag} must be more than 0")));
    }
    Ok(value)
}

/// Parses `500ms`, `2s`, `1.5s`, `1m`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a duration (try 500ms, 2s or 1m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => {
            return Err(format!("{text:?}: unknown unit {unit:?} (use ms, s, m or h)"));
        }
    };
    // Long enough for any timeout, short enough that adding it to the clock cannot overflow.
    const LONGEST: Duration = Duration::from_secs(366 * 24 * 3600);
    match Duration::try_from_secs_f64(value * scale) {
        Ok(duration) if duration <= LONGEST => Ok(duration),
        _ => Err(format!("{text:?} is too long (at most a year)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("18000000000000000000").is_err());
    }

    #[test]
    fn global_flags_go_either_side() {
        let a = Cli::try_parse_from(["netpair", "--proto", "udp", "client"]).unwrap();
        let b = Cli::try_parse_from(["netpair", "client", "--proto", "udp"]).unwrap();
        assert_eq!(a.proto, vec![Proto::Udp]);
        assert_eq!(b.proto, vec![Proto::Udp]);
    }

    #[test]
    fn defaults_are_filled_in() {
        let cli = Cli::try_parse_from(["netpair", "bench"]).unwrap();
        assert_eq!(
            (cli.proto, cli.port, cli.framing, cli.prompt),
            (vec![Proto::Tcp], 5001, Framing::Line, Prompt::Auto)
        );
        let Command::Bench(bench) = cli.command else { panic!("expected bench") };
        assert_eq!((bench.clients, bench.window, bench.warmup), (1, 1, Duration::from_millis(500)));
        let cli = Cli::try_parse_from(["netpair", "compare"]).unwrap();
        let Command::Compare(compare) = cli.command else { panic!("expected compare") };
        assert_eq!((compare.messages, compare.size, compare.input), (20, 32, None));
    }

    #[test]
    fn unix_needs_path_and_udp_has_a_ceiling() {
        let cfg = |args: &[&str]| Cli::try_parse_from(args).unwrap().into_config();
        assert!(matches!(cfg(&["netpair", "--proto", "unix", "server"]), Err(Error::Usage(_))));
        assert!(matches!(cfg(&["netpair", "--path", "/tmp/x", "server"]), Err(Error::Usage(_))));
        assert!(matches!(
            cfg(&["netpair", "--proto", "udp", "--max-message", "70000", "server"]),
            Err(Error::Usage(_))
        ));
        assert!(cfg(&["netpair", "--proto", "unixgram", "--path", "/tmp/x", "client"]).is_ok());
    }
}
