//! The checked settings each command runs with: built by `cli` from the command line (or by
//! `compare` and `bench` for their in-process servers), read by the commands. No I/O.

use std::path::PathBuf;
use std::time::Duration;

use crate::framing::Framing;
use crate::proto::{Endpoint, Proto};

/// Largest UDP payload over IPv4 (65,535 − 20 − 8).
pub const UDP_MAX: usize = 65_507;
/// Largest UDP payload over IPv6 (65,535 − 8: the IPv6 header is not counted in its payload length).
pub const UDP6_MAX: usize = 65_527;

/// The largest UDP payload to an endpoint: more over IPv6, when the host is an IPv6 address.
pub fn udp_max(endpoint: &Endpoint) -> usize {
    match endpoint {
        Endpoint::Inet { host, .. } if host.parse::<std::net::Ipv6Addr>().is_ok() => UDP6_MAX,
        _ => UDP_MAX,
    }
}
/// Default bound for a line on a stream.
pub const LINE_MAX: usize = 1 << 20;

/// The default `--max-message` for a socket kind: a line's bound on streams, a UDP payload's otherwise.
pub fn default_max_message(proto: Proto) -> usize {
    if proto.is_stream() { LINE_MAX } else { UDP_MAX }
}

/// Default `--max-buffered`: what a server holds for all its peers together, at most (about).
pub const MAX_BUFFERED: usize = 256 << 20;

/// The server's reply policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// Reply with the message uppercased.
    Upper,
    /// Reply with the message unchanged.
    Echo,
    /// Reply with the next line read from stdin (the tutorial's server).
    Stdin,
}

/// What a reply to a message should be (`--expect`): the client and bench check each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// The message uppercased (a netpair server's default reply).
    Upper,
    /// The message unchanged (an echo server, `netpair server --reply echo`).
    Echo,
}

impl Expect {
    /// The flag's value for it.
    pub fn name(self) -> &'static str {
        match self {
            Expect::Upper => "upper",
            Expect::Echo => "echo",
        }
    }
}

/// What reaches stderr besides the transcript on stdout (`-q`, `-qq`); `--json` events are not affected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Quiet {
    /// Everything: warnings, the per-message notes (no reply, late reply, line not sent) and the
    /// closing summary.
    #[default]
    No,
    /// `-q`: no summary and no warnings; the per-message notes and errors stay.
    Summaries,
    /// `-qq`: nothing but the one line of a fatal error.
    AllButFatal,
}

impl Quiet {
    /// The level `-q` given `count` times asks for.
    pub fn from_count(count: u8) -> Quiet {
        match count {
            0 => Quiet::No,
            1 => Quiet::Summaries,
            _ => Quiet::AllButFatal,
        }
    }
}

/// Where and how to talk: what the server and the client share.
#[derive(Clone, Debug)]
pub struct Common {
    /// The socket kind.
    pub proto: Proto,
    /// Where to listen or connect.
    pub endpoint: Endpoint,
    /// How a stream is cut into messages.
    pub framing: Framing,
    /// The largest message, in bytes.
    pub max_message: usize,
    /// One JSON object per event on stdout, instead of the transcript.
    pub json: bool,
    /// Print the tutorial's ` ? ` prompt before reading a line.
    pub prompt: bool,
    /// What of the notes and summary reaches stderr.
    pub quiet: Quiet,
    /// TCP: TCP_NODELAY on the connections (Nagle's algorithm off), so a short message goes at once.
    pub nodelay: bool,
}

impl Common {
    /// Settings for a run inside this process (`compare`, `bench`): no JSON on stdout, no prompt
    /// (and reports that go nowhere, so nothing to make quiet).
    pub fn in_process(proto: Proto, endpoint: Endpoint, framing: Framing, max_message: usize) -> Common {
        Common { proto, endpoint, framing, max_message, json: false, prompt: false, quiet: Quiet::No, nodelay: true }
    }
}

/// One more socket kind for a server to serve, beside the first (`--proto tcp,udp`).
#[derive(Clone, Debug)]
pub struct Listen {
    /// The socket kind.
    pub proto: Proto,
    /// Where to listen.
    pub endpoint: Endpoint,
    /// The largest message, in bytes.
    pub max_message: usize,
}

/// Settings for `netpair server`.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The first (or only) kind served, and what every kind shares.
    pub common: Common,
    /// The other kinds served by the same event loop.
    pub also: Vec<Listen>,
    /// What goes back.
    pub reply: Reply,
    /// Serve one client, then stop.
    pub once: bool,
    /// Forget a peer silent for this long; `None` never does.
    pub idle_timeout: Option<Duration>,
    /// Most peers at once.
    pub max_clients: usize,
    /// Bytes held for all peers together, at most (about): see `net::Settings::max_buffered`.
    pub max_buffered: usize,
    /// Ask the kernel for each TCP connection's figures as it closes, for the summary's account
    /// (false for an in-process server, whose summary nobody reads).
    pub kernel_account: bool,
}

impl ServerConfig {
    /// An uppercasing server for `compare` and `bench`, at `endpoint` (port 0 for a free one), with the
    /// kind's default message bound.
    pub fn in_process(proto: Proto, endpoint: Endpoint, framing: Framing, max_clients: usize) -> ServerConfig {
        ServerConfig {
            common: Common::in_process(proto, endpoint, framing, default_max_message(proto)),
            also: Vec::new(),
            reply: Reply::Upper,
            once: false,
            idle_timeout: Some(Duration::from_secs(60)),
            max_clients,
            max_buffered: MAX_BUFFERED,
            kernel_account: false,
        }
    }
}

/// How a client ends its side of the conversation when its input ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Waits for the replies it awaits (each within --timeout), then closes.
    Wait,
    /// Shuts its sending side (SHUT_WR) at once, then reads the replies owed until the server closes.
    HalfClose,
    /// Closes at once: replies still on their way meet a closed socket.
    Close,
    /// SO_LINGER 0, then closes at once: the server is sent a reset (TCP).
    Reset,
}

/// Settings for `netpair client`.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Where, and how messages are framed and shown.
    pub common: Common,
    /// How long to wait for each reply; `None` waits as long as it takes (`--timeout none`).
    pub timeout: Option<Duration>,
    /// What each reply should be; `None` takes any reply (a person may be typing them).
    pub expect: Option<Expect>,
    /// How long a connect may take (TCP; the other kinds connect at once or not at all).
    pub connect_timeout: Duration,
    /// Write calls each message is sent in (2: its first half, then the rest); byte streams only.
    pub writes: usize,
    /// Messages sent ahead of their replies, at most.
    pub window: usize,
    /// What it does when its input ends.
    pub end: End,
}

/// The default `--connect-timeout`: it outlasts two lost SYNs (retried after 1 s, then 2 s more).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Settings for `netpair compare`.
#[derive(Clone, Debug)]
pub struct CompareConfig {
    /// The conversation's lines.
    pub lines: Vec<Vec<u8>>,
    /// One JSON document instead of the table.
    pub json: bool,
    /// Against a netpair server already running there (`--connect`), instead of in-process ones.
    pub connect: Option<Remote>,
    /// Where to draw the round trips' distribution as SVG (`--plot`).
    pub plot: Option<PathBuf>,
}

/// Where `compare --connect` finds the server: a host name, and each kind's endpoint there.
#[derive(Clone, Debug)]
pub struct Remote {
    /// The host, as given.
    pub host: String,
    /// Each kind compared, and where it is reached.
    pub targets: Vec<(Proto, Endpoint)>,
    /// How long each reply of the conversation may take before it counts as lost.
    pub timeout: Duration,
}

/// When the bench's clients stop sending.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// After this many messages per client, warm-up not counted.
    Messages(u64),
    /// After this long, warm-up not counted.
    Duration(Duration),
}

/// Settings for `netpair bench`, checked.
#[derive(Clone, Debug)]
pub struct BenchConfig {
    /// The socket kinds, measured one after the other.
    pub protos: Vec<Proto>,
    /// The server's host (`--connect`), or where the in-process one listens.
    pub host: String,
    /// The server's port (`--connect`).
    pub port: u16,
    /// The Unix kinds' socket file.
    pub path: Option<PathBuf>,
    /// Use the server already running there instead of one in-process.
    pub connect: bool,
    /// Clients, each with its own socket.
    pub clients: usize,
    /// When they stop.
    pub stop: Stop,
    /// Bytes per message.
    pub size: usize,
    /// Messages in flight per client.
    pub window: usize,
    /// Open loop: messages per second, all clients together.
    pub rate: Option<f64>,
    /// How long to send before measuring.
    pub warmup: Duration,
    /// How long each TCP connect may take.
    pub connect_timeout: Duration,
    /// A new connection (or datagram socket) for every message, as netperf's TCP_CRR.
    pub reconnect: bool,
    /// Client threads.
    pub threads: usize,
    /// What each reply should be: the in-process server replies so, and a server `--connect`ed to must.
    pub expect: Expect,
    /// TCP_NODELAY on the clients' connections and the in-process server's.
    pub nodelay: bool,
    /// Write calls each message is sent in (2: its first half, then the rest); byte streams only.
    pub writes: usize,
    /// One JSON document instead of the table.
    pub json: bool,
    /// Where to draw the round trips' distribution as SVG (`--plot`).
    pub plot: Option<PathBuf>,
    /// `-qq` leaves out the live progress line too.
    pub quiet: Quiet,
}

/// A checked command line: what to run, and with what.
#[derive(Debug)]
pub enum Config {
    /// `netpair server`.
    Server(ServerConfig),
    /// `netpair client`.
    Client(ClientConfig),
    /// `netpair compare`.
    Compare(CompareConfig),
    /// `netpair bench`.
    Bench(BenchConfig),
    /// `netpair lab`.
    Lab(LabConfig),
    /// Text made from the command line's own definitions (shell completions, the manual page), for stdout.
    Print(Vec<u8>),
}

/// What the lab's link does to the packets crossing it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Impairments {
    /// Packets dropped at random on the way to the server, in hundredths of a percent (0 to 10,000).
    pub loss_to_server: u32,
    /// The same, on the way back to the client.
    pub loss_to_client: u32,
    /// Packets duplicated at random, each way, in hundredths of a percent.
    pub dup: u32,
    /// The MTU of the link between the router and the server (the client's link keeps 1,500).
    pub mtu: Option<u32>,
    /// IP fragments dropped, each way.
    pub drop_fragments: bool,
    /// The ICMP errors that carry path-MTU news ("fragmentation needed", "packet too big") dropped.
    pub block_icmp: bool,
    /// A firewall on the path in front of the server's port.
    pub firewall: Option<Firewall>,
    /// A policer: packets per second let through each way, the rest dropped.
    pub rate: Option<u32>,
    /// Delay each way (needs the kernel's netem).
    pub delay: Option<Duration>,
    /// Variation of the delay (needs netem).
    pub jitter: Option<Duration>,
    /// Packets sent out of order, in hundredths of a percent (needs netem).
    pub reorder: u32,
}

/// What a firewall in front of the server's port does to what is sent to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firewall {
    /// Nothing comes back: the sender waits.
    Drop,
    /// A TCP reset, or an ICMP "port unreachable", comes back at once.
    Reject,
}

/// Settings for `netpair lab`.
#[derive(Debug)]
pub struct LabConfig {
    /// What the link does.
    pub impairments: Impairments,
    /// What to do in it.
    pub action: LabAction,
}

/// What `netpair lab` does once the network is built.
#[derive(Debug)]
pub enum LabAction {
    /// Leave it standing, with no server, for hands-on use.
    Up,
    /// Remove a standing lab and any left over from a killed run.
    Down,
    /// Run this command in the client's namespace against a server in the server's.
    Run {
        /// The command, checked, already pointed at the lab's server.
        command: Box<Config>,
        /// The command's own words, for the report.
        words: Vec<String>,
        /// The command's output is JSON (`--json`).
        json: bool,
    },
    /// Wait for stdin to close, then remove the lab of this process (the run's janitor).
    CleanAfter(u32),
}
