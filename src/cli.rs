//! The command line: clap definitions, checked and turned into the settings each mode runs with.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

use crate::bench::BenchConfig;
use crate::compare::{self, CompareConfig};
use crate::error::{Error, Result};
use crate::framing::Framing;
use crate::transport::{Endpoint, Proto};

const EXIT_STATUS: &str = "\
Exit status:
  0  every message got its reply (server: stopped cleanly)
  1  could not listen or connect, or the connection broke (refused, reset, address in use, name not found)
  2  usage error
  3  some replies never came (timeout) or a line could not be sent; bench: replies lost or wrong";

/// Run the socket tutorial's conversation over TCP, UDP, Unix stream or Unix datagram sockets.
#[derive(Parser, Debug)]
#[command(name = "netpair", version, after_help = EXIT_STATUS)]
pub struct Cli {
    /// Socket kind; `bench` takes a comma-separated list.
    #[arg(long, global = true, value_enum, value_delimiter = ',', default_value = "tcp")]
    pub proto: Vec<Proto>,
    /// Host name or address to listen on or connect to.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on or connect to; 0 asks the OS for a free one.
    #[arg(long, global = true, default_value_t = 5001)]
    pub port: u16,
    /// Socket file for --proto unix and unixgram.
    #[arg(long, global = true)]
    pub path: Option<PathBuf>,
    /// How a stream is cut into messages (datagrams are always one message each).
    #[arg(long, global = true, value_enum, default_value_t = Framing::Line)]
    pub framing: Framing,
    /// Largest message in bytes [default: 65507 for datagrams, 1 MiB for lines].
    #[arg(long, global = true, value_name = "BYTES")]
    pub max_message: Option<usize>,
    /// One JSON object per line on stdout for each event, instead of the transcript.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print a ` ? ` prompt before reading each line: auto = when stdin is a terminal.
    #[arg(long, global = true, value_enum, default_value_t = Prompt::Auto)]
    pub prompt: Prompt,
    /// More diagnostics on stderr (-vv for debug).
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Fewer diagnostics on stderr (-qq for none).
    #[arg(short, long, global = true, action = ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// What to run.
#[derive(Subcommand, Debug)]
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
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Load the netpair server already running at --host/--port (or --path); without it, bench starts
    /// its own in-process, on a free port (or --path).
    #[arg(long)]
    pub connect: bool,
    /// Clients, each with its own socket.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Messages per client after the warm-up [default: run for --duration].
    #[arg(long, conflicts_with = "duration")]
    pub messages: Option<u64>,
    /// How long to measure after the warm-up [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Bytes per message.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    pub size: usize,
    /// Messages in flight per client: 1 is ping-pong.
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Open loop: send this many messages per second in all, on a fixed schedule; latency counts from
    /// when each was due, so a stall is never hidden.
    #[arg(long, value_name = "PER_SECOND")]
    pub rate: Option<f64>,
    /// Send for this long before measuring.
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    pub warmup: Duration,
    /// Client threads [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `compare` options.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Messages in the conversation.
    #[arg(long, default_value_t = 20)]
    pub messages: usize,
    /// Bytes per message.
    #[arg(long, value_name = "BYTES", default_value_t = 32)]
    pub size: usize,
    /// Use the lines of this file as the conversation instead.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
}

/// Server-only options.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// What goes back: the uppercased message, the message itself, or the next line typed on stdin.
    #[arg(long, value_enum, default_value_t = Reply::Upper)]
    pub reply: Reply,
    /// Serve one client and exit when it is done.
    #[arg(long)]
    pub once: bool,
    /// Forget a peer that has sent nothing, and taken none of its replies, for this long (0 = never).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// Most peers served at once; more are turned away.
    #[arg(long, default_value_t = 16384)]
    pub max_clients: usize,
}

/// Client-only options.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// How long to wait for each reply (e.g. 500ms, 2s).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub timeout: Duration,
}

/// The server's reply policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Reply {
    /// Reply with the message uppercased.
    Upper,
    /// Reply with the message unchanged.
    Echo,
    /// Reply with the next line read from stdin (the tutorial's server).
    Stdin,
}

/// When to print the ` ? ` prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
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

/// Where and how to talk: what every mode shares.
#[derive(Clone, Debug)]
pub struct Common {
    pub proto: Proto,
    pub endpoint: Endpoint,
    pub framing: Framing,
    pub max_message: usize,
    pub json: bool,
    pub prompt: bool,
}

/// Settings for `netpair server`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub common: Common,
    pub reply: Reply,
    pub once: bool,
    pub idle_timeout: Option<Duration>,
    pub max_clients: usize,
}

/// Settings for `netpair client`.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    pub common: Common,
    pub timeout: Duration,
}

/// A checked command line.
#[derive(Debug)]
pub enum Config {
    Server(ServerConfig),
    Client(ClientConfig),
    Compare(CompareConfig),
    Bench(BenchConfig),
}

/// Largest UDP payload over IPv4 (65,535 − 20 − 8).
pub const UDP_MAX: usize = 65_507;
/// Default bound for a line on a stream.
pub const LINE_MAX: usize = 1 << 20;

impl Cli {
    /// Checks flags that clap cannot check alone and builds the settings.
    pub fn into_config(self) -> Result<Config> {
        if let Command::Bench(args) = &self.command {
            return Ok(Config::Bench(BenchConfig::new(&self, args)?));
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
                reply: args.reply,
                once: args.once,
                idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
                max_clients: positive(args.max_clients, "--max-clients")?,
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
    let default = if proto.is_stream() { LINE_MAX } else { UDP_MAX };
    let max = positive(given.unwrap_or(default), "--max-message")?;
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
    use clap::CommandFactory;

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
