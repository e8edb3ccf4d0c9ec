//! The comparison as a table for a terminal, or as one JSON document.

use std::fmt::Write as _;

use super::{BURST, Measured, REPLY_TIMEOUT, SIZES};
use crate::json::{Json, object_of};
use crate::net::kernel::Account;
use crate::plot::{Series, svg};
use crate::proto::Proto;
use crate::text::{count, grouped, human, millis, ms};

/// The widest a cell may be: with the widest label (18) and two spaces between columns, a table of
/// the five transports takes 98 columns.
const CELL: usize = 14;
/// Lines of the table, the legend and the footnotes are at most this wide.
const WIDTH: usize = 100;
const GAP: &str = "  ";

/// The rows: a short label, what it measures in plain words (the legend), and each transport's cell.
type Cell = fn(&Measured, &mut Notes) -> String;

fn rows() -> Vec<(String, String, Cell)> {
    let (first, last) = (SIZES[0] as u64, SIZES[SIZES.len() - 1] as u64);
    vec![
        (
            "new client seen".into(),
            "when the server first knows of a client: as it connects (a stream or seqpacket), or only \
             when its first datagram arrives (a datagram socket has no connection)"
                .into(),
            |m, _| if m.seen_at_connect { "at connect".into() } else { "1st datagram".into() },
        ),
        ("replies received".into(), "replies that came back, of the messages sent one at a time".into(), |m, _| {
            format!("{} of {}", grouped(m.summary.received), grouped(m.summary.sent))
        }),
        (
            "lost / late".into(),
            format!("replies that did not come within {} / that came after that", human(REPLY_TIMEOUT)),
            |m, _| format!("{} / {}", grouped(m.summary.lost), grouped(m.summary.late)),
        ),
        (
            format!("{BURST} writes read as"),
            format!(
                "{BURST} quick writes of 5 bytes (--framing raw), as the server's reads got them: a stream \
                 may merge them into fewer reads; each datagram (and seqpacket message) stays one message"
            ),
            |m, _| count(m.burst_reads as u64, "read"),
        ),
        (
            "largest intact".into(),
            format!(
                "the largest message that came back whole (sizes from {} B to {} B tried)",
                grouped(first),
                grouped(last)
            ),
            |m, _| format!("{} B", grouped(m.largest_intact as u64)),
        ),
        ("one size more".into(), "the next size tried, and what stopped it".into(), |m, notes| {
            match &m.first_refused {
                Some((size, why)) => {
                    let size = format!("{} B", grouped(*size as u64));
                    notes.fit(&format!("{size}: {why}"), &size)
                }
                None => "-".into(),
            }
        }),
        ("no server: error".into(), "what a client is told when nobody listens at the address".into(), |m, notes| {
            notes.fit(&m.no_server, &brief(&m.no_server))
        }),
        ("no server: after".into(), "how long the client took to be told".into(), |m, _| ms(Some(m.no_server_after))),
        (
            "client quits".into(),
            "what the server notices when the client leaves: a disconnect (a stream or seqpacket), or \
             nothing (a datagram server forgets the peer only after --idle-timeout)"
                .into(),
            |m, notes| match &m.quit_seen {
                Some(reason) => notes.fit(&format!("disconnect: {reason}"), "disconnect"),
                None => "nothing".into(),
            },
        ),
        (
            "median round trip".into(),
            "the time from sending a message to having its reply: half the messages took less".into(),
            |m, _| ms(m.summary.percentile(0.5)),
        ),
        (
            "99% within".into(),
            "99 of every 100 round trips took at most this long (the slowest 1% took longer)".into(),
            |m, _| ms(m.summary.percentile(0.99)),
        ),
        (
            "kernel says".into(),
            "what the client's kernel counted in the conversation: TCP segments it sent again (each a \
             packet lost or delayed on the way), datagrams its full receive buffer dropped, ICMP errors"
                .into(),
            |m, notes| notes.fit(&kernel_cell(&m.kernel), &kernel_brief(&m.kernel)),
        ),
    ]
}

/// The rows that need the server's own view: not measurable against a server elsewhere.
const SERVER_VIEW: [usize; 5] = [0, 3, 6, 7, 8];
/// What such a row says against a remote server (the legend explains it).
const NOT_FROM_HERE: &str = "n/a from client";

/// The kernel's account of the client's socket in the conversation, in a few words.
fn kernel_cell(kernel: &Account) -> String {
    let mut parts = Vec::new();
    if let Some(tcp) = &kernel.tcp {
        parts.push(format!("{} retransmitted", count(tcp.retransmitted, "segment")));
    }
    if let Some(dropped) = kernel.dropped {
        parts.push(format!("receive buffer dropped {}", grouped(dropped)));
    }
    if let Some(icmp) = kernel.icmp.first() {
        parts.push(format!("icmp: {icmp}"));
    }
    if parts.is_empty() { "-".into() } else { parts.join(", ") }
}

/// [`kernel_cell`] short enough for a cell.
fn kernel_brief(kernel: &Account) -> String {
    match (&kernel.tcp, kernel.dropped) {
        (Some(tcp), _) => format!("{} resent", grouped(tcp.retransmitted)),
        (None, Some(dropped)) => format!("{} dropped", grouped(dropped)),
        (None, None) => "-".into(),
    }
}

/// Cell texts too long for a cell, each said once under the table and pointed to by number.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    /// `full` when it fits a cell; otherwise `short` with the number of a footnote that says `full`.
    fn fit(&mut self, full: &str, short: &str) -> String {
        if full.chars().count() <= CELL {
            return full.to_string();
        }
        let n = match self.0.iter().position(|note| note == full) {
            Some(at) => at + 1,
            None => {
                self.0.push(full.to_string());
                self.0.len()
            }
        };
        format!("{short} [{n}]")
    }
}

/// The start of an error's text, short enough for a cell with a footnote number: up to its first
/// `:` or `(`, then as many whole words as fit.
fn brief(text: &str) -> String {
    let head = text.split([':', '(']).next().unwrap_or(text).trim_end();
    let mut out = String::new();
    for word in head.split(' ') {
        if out.chars().count() + 1 + word.chars().count() > CELL - 4 {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.is_empty() { head.chars().take(CELL - 4).collect() } else { out }
}

/// `text` in lines of at most `width` characters, broken between words.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("never empty");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

/// The table, transports as columns, then a legend saying what each row measures and the
/// footnotes of cells too long to show; no line is wider than 100 columns.
pub(super) fn table(results: &[(Proto, Measured)], messages: usize, place: &str) -> String {
    let rows = rows();
    let mut notes = Notes::default();
    let cell = |row: usize, cell: Cell, m: &Measured, notes: &mut Notes| match &m.unanswered {
        Some(why) if row == 0 => notes.fit(&format!("no answer: {why}"), "no answer"),
        Some(_) => "-".into(),
        None if m.remote && SERVER_VIEW.contains(&row) => NOT_FROM_HERE.into(),
        None => cell(m, notes),
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .enumerate()
        .map(|(row, (_, _, f))| results.iter().map(|(_, m)| cell(row, *f, m, &mut notes)).collect())
        .collect();

    let label = rows.iter().map(|(label, ..)| label.chars().count()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..results.len())
        .map(|c| cells.iter().map(|row| row[c].chars().count()).max().unwrap_or(0).max(results[c].0.name().len()))
        .collect();
    let line = |first: &str, rest: &mut dyn Iterator<Item = &str>| {
        let mut out = format!("{first:label$}");
        for (text, width) in rest.zip(&widths) {
            let _ = write!(out, "{GAP}{text:width$}");
        }
        out.truncate(out.trim_end().len());
        out + "\n"
    };
    let mut out = format!("netpair compare: {} per transport, {place}\n", count(messages as u64, "message"));
    if let Some(mtu) = results.iter().find_map(|(_, m)| m.remote.then(|| m.kernel.mtu()).flatten()) {
        let _ = writeln!(out, "path MTU to it: {} bytes (the kernel's, for a connected socket)", grouped(mtu.into()));
    }
    out.push('\n');
    out += &line("", &mut results.iter().map(|(proto, _)| proto.name()));
    for ((name, ..), row) in rows.iter().zip(&cells) {
        out += &line(name, &mut row.iter().map(String::as_str));
    }
    out.push_str("\nWhat each row measures:\n");
    if results.iter().any(|(_, m)| m.remote) {
        let text = format!(
            "{NOT_FROM_HERE}: a row that needs the server's own view, which a client cannot measure against \
             a server elsewhere"
        );
        for line in wrap(&text, WIDTH) {
            let _ = writeln!(out, "{line}");
        }
    }
    for (name, legend, _) in &rows {
        for (n, text) in wrap(legend, WIDTH - label - GAP.len()).iter().enumerate() {
            let name = if n == 0 { name.as_str() } else { "" };
            let _ = writeln!(out, "{name:label$}{GAP}{text}");
        }
    }
    if !notes.0.is_empty() {
        out.push('\n');
        for (n, note) in notes.0.iter().enumerate() {
            let mark = format!("[{}] ", n + 1);
            for (k, text) in wrap(note, WIDTH - mark.len()).iter().enumerate() {
                let lead = if k == 0 { mark.clone() } else { " ".repeat(mark.len()) };
                let _ = writeln!(out, "{lead}{text}");
            }
        }
    }
    out
}

/// One JSON object, a member per transport.
pub(super) fn json(results: &[(Proto, Measured)], place: &str) -> String {
    let members = results.iter().map(|(proto, m)| {
        let s = &m.summary;
        let mut j = Json::default();
        j.str("where", place).bool("remote", m.remote);
        if let Some(why) = &m.unanswered {
            j.str("no_answer", why);
            return (proto.name().to_string(), j.finish());
        }
        if !m.kernel.is_empty() {
            j.raw("kernel", &m.kernel.json());
        }
        j.int("sent", s.sent).int("received", s.received).int("lost", s.lost).int("late", s.late);
        j.int("largest_intact", m.largest_intact as u64);
        if let Some((size, why)) = &m.first_refused {
            j.int("first_refused", *size as u64).str("first_refused_why", why);
        }
        // What only the server saw is measured in-process only; against a remote server it is left out.
        if !m.remote {
            j.str("server_sees_client", if m.seen_at_connect { "connect" } else { "first_datagram" })
                .int("burst_writes", BURST as u64)
                .int("burst_reads", m.burst_reads as u64)
                .str("boundaries_kept", if m.burst_intact { "yes" } else { "no" })
                .str("no_server", &m.no_server)
                .num("no_server_ms", millis(m.no_server_after))
                .str("client_quits", m.quit_seen.as_deref().unwrap_or("nothing"));
        }
        for (key, p) in [("rtt_median_ms", 0.5), ("rtt_p99_ms", 0.99)] {
            if let Some(d) = s.percentile(p) {
                j.num(key, millis(d));
            }
        }
        (proto.name().to_string(), j.finish())
    });
    object_of(members) + "\n"
}

/// The `--plot` picture: each transport's round trips in the conversation, sorted.
pub(super) fn plot(results: &[(Proto, Measured)], messages: usize, place: &str) -> String {
    let series: Vec<Series> = results
        .iter()
        .map(|(proto, m)| {
            let mut sorted: Vec<u64> =
                m.summary.rtts.iter().map(|d| d.as_nanos().min(u128::from(u64::MAX)) as u64).collect();
            sorted.sort_unstable();
            Series::of_sorted(proto.name(), &sorted)
        })
        .collect();
    svg(&format!("netpair compare: {} per transport, {place}", count(messages as u64, "message")), &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_go_to_footnotes_and_no_line_passes_100_columns() {
        let long = "a very long error message from some kernel that goes on and on: ".repeat(3);
        let quit = Some("connection reset by peer".to_string());
        let each = || Measured { no_server: long.clone(), quit_seen: quit.clone(), ..Measured::default() };
        let mut results: Vec<(Proto, Measured)> = Proto::ALL.into_iter().map(|p| (p, each())).collect();
        let m = &mut results[0].1;
        m.first_refused = Some((1 << 20, long.clone()));
        m.summary.sent = 50_000;
        m.summary.received = 50_000;
        let text = table(&results, 50_000, "in-process servers on loopback");
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        assert!(text.contains("[1] ") && text.contains("50,000 of 50,000"), "{text}");
        assert_eq!(brief("no such file or directory"), "no such");
        assert_eq!(brief("silence: no reply within 500 ms"), "silence");
    }
}
