//! Each subcommand's flags, one definition each: the `///` comment on a field is its `--help`.
//! A subcommand takes only the flags it uses; what two subcommands share word for word is a group
//! flattened into both ([`Talk`], [`Verbosity`]).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};

use super::examples;
use super::values::{Prompt, Switch, parse_duration, parse_size, port_to_connect};
use crate::config::{End, Reply};
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
    /// How long to wait for each reply (e.g. 500ms, 2s).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pub(super) timeout: Duration,
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
    /// The results as one JSON object on stdout, instead of the table.
    #[arg(long)]
    pub(super) json: bool,
    #[command(flatten)]
    pub(super) nodelay: Nodelay,
    #[command(flatten)]
    pub(super) writes: Writes,
    #[command(flatten)]
    pub(super) verbosity: Verbosity,
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
    /// fatal error (`netpair: error: …`); the exit status still says how the run went (bench's progress
    /// line, shown on a terminal only and erased at the end, stays). stdout (transcript, JSON events,
    /// tables) is the same at every level.
    #[arg(short, long, action = ArgAction::Count)]
    pub(super) quiet: u8,
}
