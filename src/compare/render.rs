//! The comparison as a table for a terminal, or as one JSON document.

use std::fmt::Write as _;

use super::{BURST, Measured};
use crate::json::{Json, object_of};
use crate::proto::Proto;
use crate::text::{grouped, millis, ms};

fn cells(m: &Measured) -> Vec<String> {
    let s = &m.summary;
    let boundaries = if m.burst_intact { "kept" } else { "not kept" };
    let unit = if m.burst_reads == 1 { "read" } else { "reads" };
    vec![
        if m.seen_at_connect { "at connect".into() } else { "at its first datagram".into() },
        format!("{} of {}", grouped(s.received), grouped(s.sent)),
        format!("{} lost, {} late", grouped(s.lost), grouped(s.late)),
        format!("{boundaries}: {BURST} writes, {} {unit}", grouped(m.burst_reads as u64)),
        format!("{} B", grouped(m.largest_intact as u64)),
        m.first_refused.as_ref().map_or_else(|| "-".into(), |(n, why)| format!("{} B: {why}", grouped(*n as u64))),
        format!("{} ({})", m.no_server, ms(Some(m.no_server_after))),
        m.quit_seen.as_ref().map_or_else(|| "nothing (until --idle-timeout)".into(), |r| format!("disconnect ({r})")),
        ms(s.percentile(0.5)),
        ms(s.percentile(0.99)),
    ]
}

const ROWS: [&str; 10] = [
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
];

/// The table, transports as columns.
pub(super) fn table(results: &[(Proto, Measured)], messages: usize) -> String {
    let columns: Vec<Vec<String>> = results.iter().map(|(_, m)| cells(m)).collect();
    let label_width = ROWS.iter().map(|r| r.len()).max().unwrap_or(0);
    let widths: Vec<usize> = columns.iter().map(|c| c.iter().map(String::len).max().unwrap_or(0)).collect();
    let mut out = format!(
        "netpair compare: {} per transport, in-process servers on loopback\n\n",
        crate::text::count(messages as u64, "message")
    );
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
pub(super) fn json(results: &[(Proto, Measured)]) -> String {
    let members = results.iter().map(|(proto, m)| {
        let s = &m.summary;
        let mut j = Json::default();
        j.str("server_sees_client", if m.seen_at_connect { "connect" } else { "first_datagram" })
            .int("sent", s.sent)
            .int("received", s.received)
            .int("lost", s.lost)
            .int("late", s.late)
            .int("burst_writes", BURST as u64)
            .int("burst_reads", m.burst_reads as u64)
            .str("boundaries_kept", if m.burst_intact { "yes" } else { "no" })
            .int("largest_intact", m.largest_intact as u64);
        if let Some((size, why)) = &m.first_refused {
            j.int("first_refused", *size as u64).str("first_refused_why", why);
        }
        j.str("no_server", &m.no_server).num("no_server_ms", millis(m.no_server_after));
        j.str("client_quits", m.quit_seen.as_deref().unwrap_or("nothing"));
        for (key, p) in [("rtt_median_ms", 0.5), ("rtt_p99_ms", 0.99)] {
            if let Some(d) = s.percentile(p) {
                j.num(key, millis(d));
            }
        }
        (proto.name().to_string(), j.finish())
    });
    object_of(members) + "\n"
}
