//! Each subcommand's flags, one definition each: the `///` comment on a field is its `--help`.
//! A subcommand takes only the flags it uses; what two subcommands share word for word is a group
//! flattened into both ([`Talk`], [`Verbosity`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};

use super::examples;
use super::values::{
    Prompt, Switch, Timeout, parse_duration, parse_loss, parse_percent, parse_rate, parse_size, parse_timeout,
    port_to_connect,
};
use crate::config::{End, Expect, Firewall, Reply};
use crate::framing::Framing;
use crate::proto::Proto;

/// The tutorial's address, where a server listens and a client connects unless told otherwise.
const HOST: &str = "127.0.0.1";
const PORT: u16 = 5001;

/// What to run, with its own flags.
#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Listen, print each message and its uppercase form, and reply.
    #[command(after_help = examples::after_help("server"))]
    Server(ServerArgs),
    /// Send each stdin line as a message and print the replies; a line `q` ends.
    #[command(after_help = examples::after_help("client"))]
    Client(ClientArgs),
    /// Run one conversation over tcp, udp, unix, unixgram and seqpacket and show the differences side by side.
    #[command(after_help = examples::after_help("compare"))]
    Compare(CompareArgs),
    /// Measure round-trip latency and throughput, against an in-process server or a running one.
    #[command(after_help = examples::after_help("bench"))]
    Bench(BenchArgs),
    /// Run compare, bench or client across a network of namespaces that loses, duplicates, fragments
    /// or firewalls packets (root).
    ///
    /// The lab is three network namespaces on this machine: a client, a router and a server, joined by
    /// two veth links (10.88.1.0/24 and fd88:1::/64 on the client's side, 10.88.2.0/24 and fd88:2::/64
    /// on the server's). The router's nftables rules make the impairments and count what they did.
    /// netpair starts a tcp and udp server on 10.88.2.2 and fd88:2::2, port 5001, runs the command in
    /// the client's namespace against it, then prints what the router counted and whether that
    /// reconciles with netpair's own counts. Everything is removed at the end, on Ctrl-C or SIGTERM,
    /// and, after a kill, by the next run. Nothing outside the three namespaces is touched.
    #[command(after_help = examples::after_help("lab"))]
    Lab(LabArgs),
    /// Print a shell's completion script for netpair on stdout.
    #[command(after_help = examples::after_help("completions"))]
    Completions(CompletionsArgs),
    /// Print netpair's manual page (roff) on stdout.
    #[command(after_help = examples::after_help("man"))]
    Man,
}

/// `netpair server`.
#[derive(Debug, Args)]
pub(super) struct ServerArgs {
    /// Socket kinds to listen on: one, or a comma-separated list served together by one process
    /// (tcp,udp share the port number).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tcp")]
    pub(super) proto: Vec<Proto>,
    /// Host name or address to listen on.
    #[arg(long, default_value = HOST)]
    pub(super) host: String,
    /// Port to listen on; 0 asks the OS for a free one.
    #[arg(long, default_value_t = PORT)]
    pub(super) port: u16,
    /// Socket file (or @name, an abstract socket) to listen on, for --proto unix, unixgram and
    /// seqpacket; with several in --proto, as many comma-separated, in the order of --proto.
    #[arg(long, value_delimiter = ',')]
    pub(super) path: Vec<PathBuf>,
    #[command(flatten)]
    pub(super) talk: Talk,
    /// What goes back: the uppercased message, the message itself, or the next line typed on stdin.
    #[arg(long, value_enum, default_value_t = Reply::Upper)]
    pub(super) reply: Reply,
    /// Serve one client and exit when it is done.
    #[arg(long)]
    pub(super) once: bool,
    /// Forget a peer that has sent nothing, and taken none of its replies, for this long (0 = never).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub(super) idle_timeout: Duration,
    /// Most peers served at once; more are turned away.
    #[arg(long, default_value_t = 16384)]
    pub(super) max_clients: usize,
    /// Most bytes held for all peers together (unfinished lines, unwritten replies); past it, peers
    /// holding the most are not read from until it drops. K, M, G: powers of 1,024.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "256M")]
    pub(super) max_buffered: usize,
    #[command(flatten)]
    pub(super) verbosity: Verbosity,
}

/// `netpair client`.
#[derive(Debug, Args)]
pub(super) struct ClientArgs {
    /// Socket kind to connect with.
    #[arg(long, value_enum, default_value_t = Proto::Tcp)]
    pub(super) proto: Proto,
    /// Host name or address of the server.
    #[arg(long, default_value = HOST)]
    pub(super) host: String,
    /// Port of the server.
    #[arg(long, value_parser = port_to_connect, default_value_t = PORT)]
    pub(super) port: u16,
    /// Socket file of the server, for --proto unix, unixgram and seqpacket.
    #[arg(long)]
    pub(super) path: Option<PathBuf>,
    #[command(flatten)]
    pub(super) talk: Talk,
    /// How long to wait for each reply (e.g. 500ms, 2s), or none: as long as it takes (a person
    /// typing the replies at `server --reply stdin`).
    #[arg(long, value_name = "DURATION|none", value_parser = parse_timeout, default_value = "2s")]
    pub(super) timeout: Timeout,
    /// Check each reply: its message uppercased, or unchanged (an echo server); a reply that is
    /// not counts as wrong (exit status 3) [default: any reply is taken].
    #[arg(long, value_enum)]
    pub(super) expect: Option<Expect>,
    /// How long a TCP connect may take; longer than TCP's retries of a lost SYN (1 s, then 2 s more).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub(super) connect_timeout: Duration,
    #[command(flatten)]
    pub(super) writes: Writes,
    /// Messages sent ahead of their replies, at most: 1 waits for each reply before sending the next.
    /// With an --end other than wait, the end of input is acted on even while the window is full.
    #[arg(long, default_value_t = 1)]
    pub(super) window: usize,
    /// What the client does when its input ends (end of file, or a line `q`).
    #[arg(long, value_enum, default_value_t = End::Wait)]
    pub(super) end: End,
    #[command(flatten)]
    pub(super) verbosity: Verbosity,
}

/// How a client writes each message: the same flag on `client` and `bench`.
#[derive(Debug, Args)]
pub(super) struct Writes {
    /// Write each message in this many write() calls: 2 sends its first half, then the rest (TCP
    /// and unix only; a datagram or seqpacket write is a message of its own). With --nodelay off,
    /// Nagle's algorithm holds the second part back until the first is acknowledged, and the
    /// server delays that acknowledgement (about 40 ms on Linux), waiting for the rest.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub(super) writes: u8,
}

/// TCP_NODELAY: the same flag on `server`, `client` and `bench`.
#[derive(Debug, Args)]
pub(super) struct Nodelay {
    /// TCP_NODELAY on each TCP connection: on sends every write at once; off leaves Nagle's
    /// algorithm on, which holds a small write back while an earlier one is unacknowledged. On by
    /// default: a conversation of short requests and replies waits for each write to arrive.
    #[arg(long, value_enum, value_name = "ON|OFF", default_value_t = Switch::On)]
    pub(super) nodelay: Switch,
}

/// How the server and the client carry the conversation: the same flags, with the same meaning, on both.
#[derive(Debug, Args)]
pub(super) struct Talk {
    /// How a stream is cut into messages (datagrams are always one message each).
    #[arg(long, value_enum, default_value_t = Framing::Line)]
    pub(super) framing: Framing,
    /// Largest message in bytes, e.g. 1M or 64K (K, M, G: powers of 1,024) [default: 65,507 for
    /// datagrams, 1M for streams].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub(super) max_message: Option<usize>,
    /// One JSON object per line on stdout for each event, instead of the transcript.
    #[arg(long)]
    pub(super) json: bool,
    /// Print a ` ? ` prompt before reading each line of stdin: auto = when stdin is a terminal.
    #[arg(long, value_enum, default_value_t = Prompt::Auto)]
    pub(super) prompt: Prompt,
    #[command(flatten)]
    pub(super) nodelay: Nodelay,
}

/// `netpair compare`.
#[derive(Debug, Args)]
pub(super) struct CompareArgs {
    /// Messages in the conversation.
    #[arg(long, default_value_t = 20)]
    pub(super) messages: usize,
    /// Bytes per message (K: 1,024).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "32")]
    pub(super) size: usize,
    /// Use the lines of this file as the conversation instead.
    #[arg(long, value_name = "FILE")]
    pub(super) input: Option<PathBuf>,
    /// The table as one JSON object on stdout, for scripts.
    #[arg(long)]
    pub(super) json: bool,
    /// Also draw the round trips' distribution per transport as an SVG picture in FILE (percentile
    /// across, towards p99.9; latency up).
    #[arg(long, value_name = "FILE.svg")]
    pub(super) plot: Option<PathBuf>,
    /// Compare against the netpair server already running at --host (`netpair --proto tcp,udp server
    /// --host 0.0.0.0` there), over TCP and UDP, instead of servers in this process.
    #[arg(long)]
    pub(super) connect: bool,
    /// With --connect: the host the server runs on.
    #[arg(long, default_value = HOST, requires = "connect")]
    pub(super) host: String,
    /// With --connect: how long to wait for each reply of the conversation before counting it lost.
    #[arg(long, value_parser = parse_duration, default_value = "2s", requires = "connect")]
    pub(super) timeout: Duration,
    /// With --connect: the server's port, for TCP and UDP.
    #[arg(long, default_value_t = PORT, requires = "connect")]
    pub(super) port: u16,
    /// With --connect to this machine: the server's unix socket file, to compare that kind too.
    #[arg(long, value_name = "PATH", requires = "connect")]
    pub(super) unix: Option<PathBuf>,
    /// With --connect to this machine: the server's unixgram socket file, to compare that kind too.
    #[arg(long, value_name = "PATH", requires = "connect")]
    pub(super) unixgram: Option<PathBuf>,
    /// With --connect to this machine: the server's seqpacket socket file, to compare that kind too.
    #[arg(long, value_name = "PATH", requires = "connect")]
    pub(super) seqpacket: Option<PathBuf>,
    #[command(flatten)]
    pub(super) verbosity: Verbosity,
}

/// `netpair bench`.
#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    /// Socket kinds to measure, one after the other: a comma-separated list such as tcp,udp.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "tcp")]
    pub(super) proto: Vec<Proto>,
    /// Host name or address: where the in-process server listens, or with --connect the server's.
    #[arg(long, default_value = HOST)]
    pub(super) host: String,
    /// Port of the server to --connect to (the in-process server takes a free one).
    #[arg(long, default_value_t = PORT)]
    pub(super) port: u16,
    /// Socket file for --proto unix, unixgram and seqpacket: where the in-process server listens (default: in a
    /// temporary directory), or with --connect the server's.
    #[arg(long)]
    pub(super) path: Option<PathBuf>,
    /// Load the netpair server already running at --host/--port (or --path); without it, bench starts
    /// its own in-process, on a free port (or --path).
    #[arg(long)]
    pub(super) connect: bool,
    /// Clients, each with its own socket.
    #[arg(long, default_value_t = 1)]
    pub(super) clients: usize,
    /// Messages per client after the warm-up [default: run for --duration].
    #[arg(long, conflicts_with = "duration")]
    pub(super) messages: Option<u64>,
    /// How long to measure after the warm-up [default: 5s].
    #[arg(long, value_parser = parse_duration)]
    pub(super) duration: Option<Duration>,
    /// Bytes per message (K: 1,024).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "64")]
    pub(super) size: usize,
    /// Messages in flight per client: 1 is ping-pong.
    #[arg(long, default_value_t = 1)]
    pub(super) window: usize,
    /// Open loop: send this many messages per second in all, on a fixed schedule; latency counts from
    /// when each was due, so a stall is never hidden. A client over 10 ms behind skips ahead, and the
    /// messages skipped are reported as not sent on time, beside the rate achieved.
    #[arg(long, value_name = "PER_SECOND")]
    pub(super) rate: Option<f64>,
    /// Send for this long before measuring.
    #[arg(long, value_parser = parse_duration, default_value = "500ms")]
    pub(super) warmup: Duration,
    /// A new connection for every message, as netperf's TCP_CRR: connect, send one message, read its
    /// reply, close (needs --window 1); over udp and unixgram, a new socket per message. Latency then
    /// includes the connect, and connections per second are reported.
    #[arg(long)]
    pub(super) reconnect: bool,
    /// Client threads [default: one per core].
    #[arg(long)]
    pub(super) threads: Option<usize>,
    /// How long each TCP connect may take; longer than TCP's retries of a lost SYN (1 s, then 2 s
    /// more). A client not connected by then has failed. Replies have their own timeout, 1 s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub(super) connect_timeout: Duration,
    /// What each reply must be: the message uppercased, or unchanged (an echo server, for --connect;
    /// the in-process server then echoes).
    #[arg(long, value_enum, default_value_t = Expect::Upper)]
    pub(super) expect: Expect,
    /// The results as one JSON object on stdout, instead of the table.
    #[arg(long)]
    pub(super) json: bool,
    /// Also draw the round trips' distribution per transport as an SVG picture in FILE (percentile
    /// across, towards p99.9; latency up).
    #[arg(long, value_name = "FILE.svg")]
    pub(super) plot: Option<PathBuf>,
    #[command(flatten)]
    pub(super) nodelay: Nodelay,
    #[command(flatten)]
    pub(super) writes: Writes,
    #[command(flatten)]
    pub(super) verbosity: Verbosity,
}

/// `netpair lab`.
#[derive(Debug, Args)]
pub(super) struct LabArgs {
    /// Packets the router drops at random: one share for each way (10%), or two, to the server and
    /// back (5%,0%).
    #[arg(long, value_name = "PCT[,PCT]", value_parser = parse_loss)]
    pub(super) loss: Option<(u32, u32)>,
    /// Packets the router duplicates at random, each way.
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    pub(super) dup: Option<u32>,
    /// The MTU of the link between the router and the server (the client's link keeps 1500): larger
    /// packets are fragmented or, with the don't-fragment bit, refused with an ICMP error.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u32).range(1280..=65535))]
    pub(super) mtu: Option<u32>,
    /// The router drops every IP fragment, each way.
    #[arg(long)]
    pub(super) drop_fragments: bool,
    /// The router drops the ICMP errors that carry path-MTU news ("fragmentation needed", "packet too
    /// big"): a path-MTU black hole.
    #[arg(long)]
    pub(super) block_icmp: bool,
    /// A firewall on the router in front of the server's port.
    #[arg(long, value_enum)]
    pub(super) firewall: Option<Firewall>,
    /// The same as --firewall reject: the closed port answers at once instead of with silence.
    #[arg(long, conflicts_with = "firewall")]
    pub(super) reject: bool,
    /// A policer on the router: at most N packets per second each way, the rest dropped.
    #[arg(long, value_name = "N/s", value_parser = parse_rate)]
    pub(super) rate: Option<u32>,
    /// Delay each way (needs the kernel's netem queueing discipline).
    #[arg(long, value_parser = parse_duration)]
    pub(super) delay: Option<Duration>,
    /// Variation of the delay (needs netem).
    #[arg(long, value_parser = parse_duration)]
    pub(super) jitter: Option<Duration>,
    /// Packets sent out of order (needs netem).
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    pub(super) reorder: Option<u32>,
    /// The command reaches the server at its IPv6 address (fd88:2::2) instead of 10.88.2.2.
    #[arg(long)]
    pub(super) ipv6: bool,
    /// Wait for stdin to close, then remove the lab of process PID (the janitor of a run).
    #[arg(long, value_name = "PID", hide = true)]
    pub(super) clean_after: Option<u32>,
    #[command(flatten)]
    pub(super) verbosity: Verbosity,
    /// `up` (leave the lab standing), `down` (remove it and any leftovers), or the command to run in
    /// the client's namespace, with its own options: compare, bench or client. The lab points it at
    /// its server (tcp and udp on port 5001): do not give it --host, --port or --connect.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub(super) command: Vec<String>,
}

/// `netpair completions`.
#[derive(Debug, Args)]
pub(super) struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub(super) shell: clap_complete::Shell,
}

/// How much goes to stderr: every subcommand's.
#[derive(Debug, Args)]
pub(super) struct Verbosity {
    /// More diagnostics on stderr (-vv for debug).
    #[arg(short, long, action = ArgAction::Count, conflicts_with = "quiet")]
    pub(super) verbose: u8,
    /// Less on stderr: -q no summary, -qq nothing but a fatal error.
    ///
    /// -q leaves out the closing summary (`sent …`, `served …`) and the warnings; the notes on single
    /// messages (no reply, late reply, line not sent) stay. -qq leaves nothing but the one line of a
    /// fatal error (`netpair: error: …`) and no progress line from bench; the exit status still says
    /// how the run went. stdout (transcript, JSON events,
    /// tables) is the same at every level.
    #[arg(short, long, action = ArgAction::Count)]
    pub(super) quiet: u8,
}
