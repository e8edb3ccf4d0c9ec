//! The comparison as a table for a terminal, or as one JSON document.

use std::fmt::Write as _;

use super::{BURST, Measured};
use crate::json::{Json, object_of};
use crate::net::kernel::Account;
use crate::proto::Proto;
use crate::text::{count, grouped, millis, ms};

/// What a row that needs the server's own view says against a remote server.
const NOT_FROM_HERE: &str = "not measurable from the client";

fn cells(m: &Measured) -> Vec<String> {
    if let Some(why) = &m.unanswered {
        let mut cells = vec![format!("no answer: {why}")];
        cells.resize(ROWS.len(), "-".into());
        return cells;
    }
    let s = &m.summary;
    let boundaries = if m.burst_intact { "kept" } else { "not kept" };
    let unit = if m.burst_reads == 1 { "read" } else { "reads" };
    let server_view = |cell: String| if m.remote { NOT_FROM_HERE.to_string() } else { cell };
    vec![
        server_view(if m.seen_at_connect { "at connect".into() } else { "at its first datagram".into() }),
        format!("{} of {}", s.received, s.sent),
        format!("{} lost, {} late", s.lost, s.late),
        server_view(format!("{boundaries}: {BURST} writes, {} {unit}", m.burst_reads)),
        format!("{} B", grouped(m.largest_intact as u64)),
        m.first_refused.as_ref().map_or_else(|| "-".into(), |(n, why)| format!("{} B: {why}", grouped(*n as u64))),
        server_view(format!("{} ({})", m.no_server, ms(Some(m.no_server_after)))),
        server_view(
            m.quit_seen
                .as_ref()
                .map_or_else(|| "nothing (until --idle-timeout)".into(), |r| format!("disconnect ({r})")),
        ),
        ms(s.percentile(0.5)),
        ms(s.percentile(0.99)),
        kernel_cell(&m.kernel),
    ]
}

/// The kernel's account of the client's socket in the conversation, in a few words.
fn kernel_cell(kernel: &Account) -> String {
    let mut parts = Vec::new();
    if let Some(tcp) = &kernel.tcp {
        parts.push(format!("{} retransmitted, path mtu {}", count(tcp.retransmitted, "segment"), tcp.path_mtu));
    }
    if let Some(dropped) = kernel.dropped {
        parts.push(format!("buffer dropped {dropped}"));
    }
    if let (None, Some(mtu)) = (&kernel.tcp, kernel.path_mtu) {
        parts.push(format!("path mtu {mtu}"));
    }
    if let Some(icmp) = kernel.icmp.first() {
        parts.push(format!("icmp: {icmp}"));
    }
    if parts.is_empty() { "-".into() } else { parts.join(", ") }
}

const ROWS: [&str; 11] = [
    "server sees a new client",
    "replies received",
    "replies lost",
    "boundaries (raw framing)",
    "largest intact message",
    "first size refused",
    "no server listening",
    "client quits, server sees",
    "round trip median",
    "round trip p99",
    "client's kernel says",
];

/// The table, transports as columns.
pub(super) fn table(results: &[(Proto, Measured)], messages: usize, place: &str) -> String {
    let columns: Vec<Vec<String>> = results.iter().map(|(_, m)| cells(m)).collect();
    let label_width = ROWS.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = columns.iter().map(|c| c.iter().map(String::len).max().unwrap_or(0)).collect();
    let mut out = format!("netpair compare: {messages} messages per transport, {place}\n");
    if let Some(mtu) = results.iter().find_map(|(_, m)| m.remote.then(|| m.kernel.mtu()).flatten()) {
        let _ = writeln!(out, "path MTU to it: {mtu} bytes (the kernel's, for a connected socket)");
    }
    out.push('\n');
    let _ = write!(out, "{:label_width$}", "");
    for ((proto, _), width) in results.iter().zip(&widths) {
        let _ = write!(out, " | {:width$}", proto.name());
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    for (row, label) in ROWS.iter().enumerate() {
        let _ = write!(out, "{label:label_width$}");
        for (column, width) in columns.iter().zip(&widths) {
            let _ = write!(out, " | {:width$}", column[row]);
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
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
