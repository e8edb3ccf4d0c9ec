//! `netpair compare`: its cells must say what the transports really do.

mod common;

use common::{netpair, run};
use serde_json::Value;

fn compare(args: &[&str]) -> (Value, common::Output) {
    let mut all = vec!["compare", "--json"];
    all.extend_from_slice(args);
    let out = run(netpair(&all), b"");
    assert_eq!(out.code, Some(0), "{out}");
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"));
    (doc, out)
}

#[test]
fn cells_match_what_the_transports_do() {
    let (doc, out) = compare(&["--messages", "10", "--size", "100"]);
    for proto in ["tcp", "udp", "unix", "unixgram", "seqpacket"] {
        let t = &doc[proto];
        assert_eq!(t["sent"], 10, "{proto}: {out}");
        assert_eq!(t["received"], 10, "{proto}: {out}");
        assert_eq!(t["lost"], 0, "{proto}: {out}");
        assert!(t["rtt_median_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{proto}: {out}");
    }
    // Streams announce a client at connect and its leaving; datagrams do neither.
    for (proto, seen, quits) in
        [("tcp", "connect", "closed"), ("unix", "connect", "closed"), ("udp", "first_datagram", "nothing")]
            .into_iter()
            .chain([("seqpacket", "connect", "closed")])
    {
        assert_eq!(doc[proto]["server_sees_client"], seen, "{proto}: {out}");
        assert_eq!(doc[proto]["client_quits"], quits, "{proto}: {out}");
    }
    // A datagram is a message; 200 quick raw writes on a stream merge into fewer reads.
    // Seqpacket has both: a connection, and each message whole.
    for proto in ["udp", "unixgram", "seqpacket"] {
        assert_eq!(doc[proto]["boundaries_kept"], "yes", "{proto}: {out}");
        assert_eq!(doc[proto]["burst_reads"], 200, "{proto}: {out}");
    }
    for proto in ["tcp", "unix"] {
        assert_eq!(doc[proto]["boundaries_kept"], "no", "{proto}: {out}");
        assert!(doc[proto]["burst_reads"].as_u64().is_some_and(|n| n < 200), "{proto}: {out}");
    }
    // Size limits: UDP stops at 65,507 bytes on IPv4; lines stop at the 1 MiB default.
    assert_eq!(doc["udp"]["largest_intact"], 65_507, "{out}");
    assert_eq!(doc["udp"]["first_refused"], 65_508, "{out}");
    assert_eq!(doc["tcp"]["largest_intact"], 1 << 20, "{out}");
    assert_eq!(doc["tcp"]["first_refused"], (1 << 20) + 1, "{out}");
    // Nobody listening: refused on TCP at connect and on UDP by ICMP (the client connects its socket).
    assert_eq!(doc["tcp"]["no_server"], "connection refused", "{out}");
    assert_eq!(doc["udp"]["no_server"], "connection refused", "{out}");
    assert_eq!(doc["unix"]["no_server"], "no such file or directory", "{out}");
}

#[test]
fn the_table_fits_100_columns_and_explains_itself() {
    let out = run(netpair(&["compare", "--messages", "3"]), b"");
    assert_eq!(out.code, Some(0), "{out}");
    let text = out.stdout();
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "{} columns: {line:?}{out}", line.chars().count());
    }
    let header =
        text.lines().find(|l| l.trim_start().starts_with("tcp ")).unwrap_or_else(|| panic!("no header: {out}"));
    for proto in ["tcp", "udp", "unix", "unixgram"] {
        assert!(header.split_whitespace().any(|word| word == proto), "{out}");
    }
    let (table, legend) = text.split_once("\nWhat each row measures:\n").unwrap_or_else(|| panic!("no legend: {out}"));
    // Every row's label starts a line of the legend, in plain words: no bare percentile names.
    let rows: Vec<&str> =
        table.lines().skip_while(|l| l.trim().is_empty() || l.starts_with("netpair")).skip(1).collect();
    assert!(rows.len() >= 8, "{out}");
    for row in &rows {
        let label = row.split("  ").next().unwrap_or_default();
        assert!(legend.lines().any(|l| l.starts_with(label) && l.len() > label.len() + 10), "{label:?}: {out}");
    }
    assert!(!text.contains("p99") && !text.contains("p50"), "{out}");
    assert!(rows.iter().any(|r| r.starts_with("replies received") && r.contains("3 of 3")), "{out}");
    // Each footnote a cell points to is there.
    for n in 1..10 {
        let mark = format!("[{n}]");
        if table.contains(&mark) {
            assert!(legend.lines().any(|l| l.starts_with(&format!("{mark} "))), "{mark}: {out}");
        }
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let out = run(netpair(&["compare", "--input", "/nonexistent/lines.txt"]), b"");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr().contains("cannot read --input /nonexistent/lines.txt"), "{out}");
    let out = run(netpair(&["compare", "--size", "70000"]), b"");
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr().contains("--size 70,000 is over the largest UDP message (65,507 bytes)"), "{out}");
}

#[test]
fn input_file_lines_are_the_conversation() {
    let dir = common::temp_dir();
    let path = dir.path().join("lines.txt");
    std::fs::write(&path, "hello\nstraße\n\nq\nnot sent\n").expect("write input");
    let (doc, out) = compare(&["--input", path.to_str().expect("utf-8 path")]);
    // Three lines before the `q` the conversation stops at.
    assert_eq!(doc["tcp"]["sent"], 3, "{out}");
    assert_eq!(doc["unixgram"]["received"], 3, "{out}");
}
