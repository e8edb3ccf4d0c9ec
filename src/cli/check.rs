//! The checks clap cannot make alone (flags that must fit together, limits that depend on the socket
//! kind), turning parsed flags into the [`Config`] a command runs with.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Cli;
use super::args::{BenchArgs, ClientArgs, Command, CompareArgs, LabArgs, ServerArgs, Talk};
use crate::compare;
use crate::config::{
    BenchConfig, ClientConfig, Common, CompareConfig, Config, End, Firewall, Impairments, LINE_MAX, LabAction,
    LabConfig, Listen, Quiet, Remote, ServerConfig, Stop, UDP_MAX, default_max_message, udp_max,
};
use crate::error::{Error, Result};
use crate::proto::{Endpoint, Proto};
use crate::text::grouped;

/// The longest --duration or --warmup (and time between scheduled sends) taken.
const MAX_RUN: Duration = Duration::from_secs(30 * 86_400);
/// The most messages in flight per client.
const MAX_WINDOW: usize = 1 << 16;

impl Cli {
    /// Checks what clap could not and builds the settings; a flag that does not fit is [`Error::Usage`].
    pub fn into_config(self) -> Result<Config> {
        Ok(match self.command {
            Command::Server(args) => Config::Server(server(args)?),
            Command::Client(args) => Config::Client(client(args)?),
            Command::Compare(args) => Config::Compare(compare(args)?),
            Command::Bench(args) => Config::Bench(bench(args)?),
            Command::Lab(args) => lab(args)?,
            Command::Completions(args) => Config::Print(super::generate::completions(args.shell)),
            Command::Man => Config::Print(super::generate::man()),
        })
    }
}

fn server(args: ServerArgs) -> Result<ServerConfig> {
    // Each kind once, in the order first given.
    let mut protos: Vec<Proto> = Vec::new();
    for proto in &args.proto {
        if !protos.contains(proto) {
            protos.push(*proto);
        }
    }
    let unix = protos.iter().filter(|p| p.is_unix()).count();
    if args.path.len() > unix.max(1) || (unix > 0 && args.path.len() != unix) {
        return Err(Error::Usage(match unix {
            0 | 1 => format!("--path takes one socket file here, not {}", args.path.len()),
            _ => format!(
                "--proto has {unix} Unix kinds: --path takes as many socket files, comma-separated, in that order"
            ),
        }));
    }
    let Some((&first, rest)) = protos.split_first() else {
        return Err(Error::Usage("--proto needs a socket kind".into()));
    };
    if unix == 0
        && let Some(path) = args.path.first()
    {
        // The single-kind message: --path is for the Unix kinds.
        endpoint(first, &args.host, args.port, Some(path.clone()))?;
    }
    // Each Unix kind takes the next path, in the order of --proto.
    let mut paths = args.path.into_iter();
    let mut place =
        |proto: Proto| endpoint(proto, &args.host, args.port, proto.is_unix().then(|| paths.next()).flatten());
    let first_endpoint = place(first)?;
    let given = args.talk.max_message;
    let mut also = Vec::new();
    for &proto in rest {
        let endpoint = place(proto)?;
        let max_message = max_message(proto, &endpoint, given)?;
        also.push(Listen { proto, endpoint, max_message });
    }
    Ok(ServerConfig {
        common: common(first, first_endpoint, args.talk, args.verbosity.quiet)?,
        also,
        reply: args.reply,
        once: args.once,
        idle_timeout: (!args.idle_timeout.is_zero()).then_some(args.idle_timeout),
        max_clients: positive(args.max_clients, "--max-clients")?,
        max_buffered: positive(args.max_buffered, "--max-buffered")?,
        kernel_account: true,
    })
}

fn client(args: ClientArgs) -> Result<ClientConfig> {
    let endpoint = endpoint(args.proto, &args.host, args.port, args.path)?;
    if args.connect_timeout.is_zero() {
        return Err(Error::Usage("--connect-timeout must be more than 0".into()));
    }
    let connected = args.proto.is_connected();
    match args.end {
        End::HalfClose | End::Reset if !connected => {
            return Err(Error::Usage(format!(
                "--end {} needs a connection (tcp, unix, seqpacket): over {} there is none to shut or reset",
                clap::ValueEnum::to_possible_value(&args.end).map_or_else(String::new, |v| v.get_name().to_string()),
                args.proto
            )));
        }
        End::Reset if args.proto != Proto::Tcp => {
            return Err(Error::Usage(format!(
                "--end reset needs tcp: a {} socket has no reset to send (SO_LINGER 0 changes nothing there)",
                args.proto
            )));
        }
        _ => {}
    }
    if args.window == 0 || args.window > MAX_WINDOW {
        return Err(Error::Usage(format!("--window must be 1 to {} messages", grouped(MAX_WINDOW as u64))));
    }
    Ok(ClientConfig {
        writes: writes(&[args.proto], args.writes.writes)?,
        window: args.window,
        end: args.end,
        common: common(args.proto, endpoint, args.talk, args.verbosity.quiet)?,
        timeout: args.timeout.0,
        expect: args.expect,
        connect_timeout: args.connect_timeout,
    })
}

/// What the server and the client share: where, and how messages are framed and shown.
fn common(proto: Proto, endpoint: Endpoint, talk: Talk, quiet: u8) -> Result<Common> {
    let max_message = max_message(proto, &endpoint, talk.max_message)?;
    Ok(Common {
        proto,
        endpoint,
        framing: talk.framing,
        max_message,
        json: talk.json,
        prompt: talk.prompt.enabled(),
        nodelay: talk.nodelay.nodelay.on(),
        quiet: Quiet::from_count(quiet),
    })
}

fn compare(args: CompareArgs) -> Result<CompareConfig> {
    let messages = positive(args.messages, "--messages")?;
    let lines = compare::conversation(args.input.as_deref(), messages, args.size)?;
    let connect = args.connect.then(|| {
        let host = args.host.clone();
        let mut targets = vec![
            (Proto::Tcp, Endpoint::Inet { host: host.clone(), port: args.port }),
            (Proto::Udp, Endpoint::Inet { host: host.clone(), port: args.port }),
        ];
        targets.extend(args.unix.map(|path| (Proto::Unix, Endpoint::Path(path))));
        targets.extend(args.unixgram.map(|path| (Proto::Unixgram, Endpoint::Path(path))));
        targets.extend(args.seqpacket.map(|path| (Proto::Seqpacket, Endpoint::Path(path))));
        Remote { host, targets, timeout: args.timeout }
    });
    Ok(CompareConfig { lines, json: args.json, connect, plot: args.plot })
}

fn bench(args: BenchArgs) -> Result<BenchConfig> {
    let usage = |text: String| Err(Error::Usage(text));
    let mut protos = args.proto;
    protos.dedup();
    for (value, flag) in [(args.clients, "--clients"), (args.window, "--window"), (args.size, "--size")] {
        positive(value, flag)?;
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
        let every = Duration::try_from_secs_f64(args.clients as f64 / rate).ok();
        if !(rate.is_finite() && rate > 0.0 && every.is_some_and(|d| !d.is_zero() && d <= MAX_RUN)) {
            return usage(
                "--rate must be messages per second above 0, enough for each client to send within 30 days, \
                 and at most one a nanosecond per client"
                    .into(),
            );
        }
    }
    if args.window > MAX_WINDOW {
        return usage(format!(
            "--window {} is over {} messages in flight per client",
            grouped(args.window as u64),
            grouped(MAX_WINDOW as u64)
        ));
    }
    let tag = crate::bench::tag_len(args.clients);
    if args.size < tag {
        return usage(format!(
            "--size {} is too small: with --clients {} each message needs {tag} bytes to name its client and number",
            args.size,
            grouped(args.clients as u64)
        ));
    }
    let datagrams = protos.iter().any(|p| !p.is_stream());
    let ceiling = if datagrams { UDP_MAX } else { LINE_MAX };
    if args.size > ceiling {
        let why = if datagrams { "the largest UDP message" } else { "the server's line limit" };
        return usage(format!(
            "--size {} is over {why} ({} bytes)",
            grouped(args.size as u64),
            grouped(ceiling as u64)
        ));
    }
    let unix = protos.iter().filter(|p| p.is_unix()).count();
    if args.connect && unix > 0 && args.path.is_none() {
        return usage("--connect with --proto unix, unixgram or seqpacket needs --path SOCKET_FILE".into());
    }
    if args.connect && unix > 1 {
        return usage("--connect can reach one Unix kind at a time (one --path)".into());
    }
    if args.path.as_deref().is_some_and(|path| path.as_os_str().is_empty()) {
        return usage("--path must not be empty".into());
    }
    if args.connect_timeout.is_zero() {
        return usage("--connect-timeout must be more than 0".into());
    }
    if args.reconnect && args.window != 1 {
        return usage(format!("--reconnect sends one message per connection: --window must be 1, not {}", args.window));
    }
    let threads = match args.threads {
        Some(n) => positive(n, "--threads")?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let writes = writes(&protos, args.writes.writes)?;
    Ok(BenchConfig {
        protos,
        host: args.host,
        port: args.port,
        path: args.path,
        connect: args.connect,
        clients: args.clients,
        stop,
        size: args.size,
        window: args.window,
        rate: args.rate,
        warmup: args.warmup,
        connect_timeout: args.connect_timeout,
        reconnect: args.reconnect,
        threads: threads.min(args.clients),
        expect: args.expect,
        json: args.json,
        plot: args.plot,
        quiet: Quiet::from_count(args.verbosity.quiet),
        nodelay: args.nodelay.nodelay.on(),
        writes,
    })
}

/// `--writes`, for byte streams only: over a kind that keeps message boundaries, each write would
/// be a message of its own.
fn writes(protos: &[Proto], writes: u8) -> Result<usize> {
    match protos.iter().find(|p| !p.is_stream()) {
        Some(proto) if writes > 1 => Err(Error::Usage(format!(
            "--writes {writes} splits each message into {writes} writes, which only a byte stream (tcp, unix) \
             joins again: over --proto {proto} each write is a message of its own"
        ))),
        _ => Ok(usize::from(writes)),
    }
}

/// A path for the Unix kinds, a host and port for the others; either given where it does not belong is an error.
fn endpoint(proto: Proto, host: &str, port: u16, path: Option<PathBuf>) -> Result<Endpoint> {
    match (proto.is_unix(), path) {
        (true, Some(path)) if path == Path::new("") => Err(Error::Usage("--path must not be empty".into())),
        (true, Some(path)) => Ok(Endpoint::Path(path)),
        (true, None) => Err(Error::Usage(format!("--proto {proto} needs --path SOCKET_FILE"))),
        (false, Some(_)) => Err(Error::Usage(format!(
            "--path is for --proto unix, unixgram or seqpacket, not {proto} (use --host and --port)"
        ))),
        (false, None) => Ok(Endpoint::Inet { host: host.to_string(), port }),
    }
}

/// `--max-message`, or the kind's default; never past what one UDP datagram can carry to `endpoint`
/// (65,507 bytes over IPv4, 65,527 over IPv6).
fn max_message(proto: Proto, endpoint: &Endpoint, given: Option<usize>) -> Result<usize> {
    let ceiling = udp_max(endpoint);
    let default = if proto == Proto::Udp { ceiling } else { default_max_message(proto) };
    let max = positive(given.unwrap_or(default), "--max-message")?;
    if proto == Proto::Udp && max > ceiling {
        let family = if ceiling == UDP_MAX { "IPv4" } else { "IPv6" };
        return Err(Error::Usage(format!(
            "--max-message {} is over the largest UDP payload on {family} ({} bytes)",
            grouped(max as u64),
            grouped(ceiling as u64)
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

/// `netpair lab`: the impairments, and what to do with the lab (the command's own words checked as
/// that command's, pointed at the lab's server).
fn lab(args: LabArgs) -> Result<Config> {
    let (loss_to_server, loss_to_client) = args.loss.unwrap_or((0, 0));
    let impairments = Impairments {
        loss_to_server,
        loss_to_client,
        dup: args.dup.unwrap_or(0),
        mtu: args.mtu,
        drop_fragments: args.drop_fragments,
        block_icmp: args.block_icmp,
        firewall: if args.reject { Some(Firewall::Reject) } else { args.firewall },
        rate: args.rate,
        delay: args.delay,
        jitter: args.jitter,
        reorder: args.reorder.unwrap_or(0),
    };
    if impairments.jitter.is_some() && impairments.delay.is_none() {
        return usage("--jitter varies a --delay: give --delay too".into());
    }
    let action = match (args.clean_after, args.command.split_first()) {
        (Some(pid), _) => LabAction::CleanAfter(pid),
        (None, None) => {
            return usage("lab needs a command: up, down, or compare, bench or client to run in it".into());
        }
        (None, Some((first, rest))) => match first.as_str() {
            "up" | "down" if !rest.is_empty() => {
                return usage(format!("lab {first} takes no words after it, not `{}`", rest.join(" ")));
            }
            "up" => LabAction::Up,
            "down" => LabAction::Down,
            "compare" | "bench" | "client" => lab_command(first, rest, args.ipv6)?,
            other => {
                return usage(format!(
                    "lab runs compare, bench or client (it starts the server itself), or up or down; not `{other}`"
                ));
            }
        },
    };
    if matches!(action, LabAction::Down) && impairments != Impairments::default() {
        return usage("lab down takes no impairments".into());
    }
    Ok(Config::Lab(LabConfig { impairments, action }))
}

/// The command to run in the lab, parsed as `netpair COMMAND WORDS…` would be, with the lab's
/// server as its destination.
fn lab_command(command: &str, words: &[String], ipv6: bool) -> Result<LabAction> {
    for word in words {
        let flag = word.split('=').next().unwrap_or(word);
        if ["--host", "--port", "--connect", "--path"].contains(&flag) {
            return usage(format!(
                "the lab points {command} at its own server: leave out {flag} (--ipv6 picks the server's IPv6 address)"
            ));
        }
    }
    let mut kinds =
        words.iter().zip(words.iter().skip(1)).filter(|(flag, _)| *flag == "--proto").map(|(_, v)| v.as_str());
    let given: Vec<&str> = kinds.by_ref().chain(words.iter().filter_map(|w| w.strip_prefix("--proto="))).collect();
    if given.iter().flat_map(|v| v.split(',')).any(|kind| kind.starts_with("unix") || kind == "seqpacket") {
        return usage("Unix sockets do not cross the lab's network: the lab runs tcp and udp".into());
    }
    let host = if ipv6 { crate::lab::SERVER_ADDRESS_V6 } else { crate::lab::SERVER_ADDRESS };
    let port = crate::lab::PORT.to_string();
    let target: Vec<&str> = match command {
        "compare" | "bench" => vec!["--connect", "--host", host, "--port", &port],
        _ => vec!["--host", host, "--port", &port],
    };
    let all = ["netpair", command].into_iter().chain(target).map(str::to_string).chain(words.iter().cloned());
    let config = match Cli::from_args(all) {
        Ok(cli) => cli.into_config()?,
        Err(err) if err.use_stderr() => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or_default();
            return usage(format!("lab {command}: {}", first.strip_prefix("error: ").unwrap_or(first)));
        }
        // --help or --version of the command: printed as it would be outside the lab.
        Err(err) => Config::Print(err.render().ansi().to_string().into_bytes()),
    };
    let (unix, json) = match &config {
        Config::Client(c) => (c.common.proto.is_unix(), c.common.json),
        Config::Bench(b) => (b.protos.iter().any(|p| p.is_unix()), b.json),
        Config::Compare(c) => (false, c.json),
        _ => (false, false),
    };
    if unix {
        return usage("Unix sockets do not cross the lab's network: the lab runs tcp and udp".into());
    }
    let words = [command.to_string()].into_iter().chain(words.iter().cloned()).collect();
    Ok(LabAction::Run { command: Box::new(config), words, json })
}

fn usage<T>(text: String) -> Result<T> {
    Err(Error::Usage(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Result<Config> {
        let mut all = vec!["netpair"];
        all.extend_from_slice(args);
        Cli::from_args(all).unwrap_or_else(|e| panic!("{args:?}: {e}")).into_config()
    }

    #[test]
    fn unix_needs_path_and_udp_has_a_ceiling() {
        assert!(matches!(config(&["--proto", "unix", "server"]), Err(Error::Usage(_))));
        assert!(matches!(config(&["--path", "/tmp/x", "server"]), Err(Error::Usage(_))));
        assert!(matches!(config(&["--proto", "udp", "--max-message", "70000", "server"]), Err(Error::Usage(_))));
        assert!(config(&["--proto", "unixgram", "--path", "/tmp/x", "client"]).is_ok());
    }

    #[test]
    fn defaults_are_filled_in() {
        let Ok(Config::Bench(bench)) = config(&["bench"]) else { panic!("expected bench") };
        assert_eq!((bench.protos, bench.port, bench.clients, bench.window), (vec![Proto::Tcp], 5001, 1, 1));
        assert_eq!((bench.stop, bench.warmup), (Stop::Duration(Duration::from_secs(5)), Duration::from_millis(500)));
        let Ok(Config::Client(client)) = config(&["client"]) else { panic!("expected client") };
        assert_eq!(client.common.endpoint, Endpoint::loopback(5001));
        assert_eq!((client.common.max_message, client.timeout), (LINE_MAX, Some(Duration::from_secs(2))));
        let Ok(Config::Server(server)) = config(&["--proto", "udp", "server"]) else { panic!("expected server") };
        assert_eq!((server.common.max_message, server.max_clients), (UDP_MAX, 16384));
        assert_eq!(server.idle_timeout, Some(Duration::from_secs(60)));
        // Its --help default, "256M", is the constant the in-process servers use.
        assert_eq!(server.max_buffered, crate::config::MAX_BUFFERED);
    }

    #[test]
    fn flags_go_either_side_of_the_subcommand() {
        for args in [&["--proto", "udp", "--port", "0", "server"], &["server", "--proto", "udp", "--port", "0"]] {
            let Ok(Config::Server(server)) = config(args) else { panic!("{args:?}: expected server") };
            assert_eq!((server.common.proto, server.common.endpoint), (Proto::Udp, Endpoint::loopback(0)), "{args:?}");
        }
        // One after the subcommand wins over one before it.
        let Ok(Config::Client(client)) = config(&["--port", "1", "client", "--port", "2"]) else { panic!() };
        assert_eq!(client.common.endpoint, Endpoint::loopback(2));
    }
}
