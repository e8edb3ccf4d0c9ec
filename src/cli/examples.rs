//! The examples that end each command's `--help` (before its exit statuses) and its part of the
//! manual page. Each is a command that works as written (`tests/examples.rs` runs every one).

use crate::error::exit;

/// One example: a shell command line, and what it does.
pub(super) struct Example {
    pub(super) command: &'static str,
    pub(super) does: &'static str,
}

const fn example(command: &'static str, does: &'static str) -> Example {
    Example { command, does }
}

const SERVER: &[Example] = &[
    example("netpair server", "The tutorial's server: TCP on 127.0.0.1:5001, replying in uppercase"),
    example(
        "netpair server --proto tcp,udp --port 0 --reply echo",
        "TCP and UDP on one free port (the first lines say which), replying with each message unchanged",
    ),
    example("netpair server --proto unix --path /tmp/np.sock --once", "A Unix stream socket; exit after one client"),
    example(
        "netpair server --reply stdin --max-message 64K",
        "Type each reply yourself, as in the tutorial; lines up to 64 KiB",
    ),
];

const CLIENT: &[Example] = &[
    example("printf 'Hello TechBeamers\\nq\\n' | netpair client", "The tutorial's conversation, from a script"),
    example(
        "netpair client --proto udp --timeout 500ms < lines.txt",
        "Each line of a file as a message over UDP, waiting at most 500 ms for each reply",
    ),
    example(
        "netpair client --proto unix --path /tmp/np.sock --json",
        "Over a Unix stream socket, every event as a line of JSON (a line q ends)",
    ),
];

const COMPARE: &[Example] = &[
    example("netpair compare", "The conversation over tcp, udp, unix, unixgram and seqpacket, side by side"),
    example("netpair compare --messages 100 --size 1K", "100 messages of 1,024 bytes each"),
    example("netpair compare --json > compare.json", "The same measurements as one JSON object, for a script"),
];

const LAB: &[Example] = &[
    example(
        "netpair lab --loss 10% compare --messages 200",
        "As root: TCP and UDP across a link losing 1 packet in 10 each way; then what the router counted",
    ),
    example(
        "netpair lab --mtu 1280 --drop-fragments client --proto udp < lines.txt",
        "A UDP client across a link that drops fragments: lines over 1,252 bytes get no reply",
    ),
    example(
        "netpair lab --firewall drop up",
        "Leave the lab standing, a firewall dropping port 5001; it says what to type",
    ),
    example("netpair lab down", "Remove a standing lab, and anything a killed run left behind"),
];

const BENCH: &[Example] = &[
    example(
        "netpair bench --duration 1s",
        "One client in ping-pong over TCP for 1 s, against a server in this process",
    ),
    example(
        "netpair --proto tcp,udp bench --clients 8 --window 4 --messages 1000",
        "8 clients with 4 messages in flight each, over TCP, then over UDP",
    ),
    example(
        "netpair bench --connect --clients 100 --messages 20 --json",
        "100 clients against the netpair server running at 127.0.0.1:5001; the results as JSON",
    ),
];

const COMPLETIONS: &[Example] = &[
    example(
        "source <(netpair completions bash)",
        "Complete netpair's commands and options in this bash (add the line to ~/.bashrc to keep it)",
    ),
    example("mkdir -p ~/.zfunc && netpair completions zsh > ~/.zfunc/_netpair", "For zsh, with ~/.zfunc on $fpath"),
    example(
        "mkdir -p ~/.config/fish/completions && netpair completions fish > ~/.config/fish/completions/netpair.fish",
        "For fish",
    ),
];

const MAN: &[Example] = &[
    example("netpair man | man -l -", "Read the manual"),
    example(
        "mkdir -p ~/.local/share/man/man1 && netpair man > ~/.local/share/man/man1/netpair.1",
        "Install it for `man netpair` (man-db looks there when ~/.local/bin is on PATH)",
    ),
];

/// The examples of the command `name`.
pub(super) fn of(name: &str) -> &'static [Example] {
    match name {
        "server" => SERVER,
        "client" => CLIENT,
        "compare" => COMPARE,
        "bench" => BENCH,
        "lab" => LAB,
        "completions" => COMPLETIONS,
        "man" => MAN,
        _ => &[],
    }
}

/// The end of the command's `--help`: its examples, then its exit statuses.
pub(super) fn after_help(name: &str) -> String {
    let mut text = String::from("Examples:\n");
    for example in of(name) {
        text.push_str(&format!("  {}\n      {}\n", example.command, example.does));
    }
    let statuses = if matches!(name, "completions" | "man") { exit::PRINT_HELP } else { exit::HELP };
    text + "\n" + statuses
}
