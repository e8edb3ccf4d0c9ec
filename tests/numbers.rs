//! One number format in text output (thousands separators), and sizes on the command line as
//! people type them (`--max-message 1M`, `--size 64K`), on the real binary.

mod common;

use common::{Proto, Server, netpair, run, served};

#[test]
fn counts_have_thousands_separators() {
    let server = Server::start(Proto::Tcp, &[]);
    let input: String = (0..1000).map(|n| format!("m{n}\n")).collect();
    let out = server.client(input.as_bytes(), &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr().contains("netpair: sent 1,000, received 1,000, lost 0, late 0;"), "{out}");
    let out = server.stop();
    assert!(out.stderr().contains("netpair: served 1 client, 1,000 messages"), "{out}");
    assert_eq!(served(&out.stderr()), Some((1, 1000)), "{out}");
}

#[test]
fn sizes_take_the_suffixes_people_type() {
    // 1K is 1,024 bytes: a line of 1,024 goes, one of 1,025 does not, and the note says so grouped.
    let server = Server::start(Proto::Tcp, &["--max-message", "1M", "--max-buffered", "256M"]);
    let input = format!("{}\n{}\nq\n", "a".repeat(1024), "b".repeat(1025));
    let out = server.client(input.as_bytes(), &["--max-message", "1K"]);
    assert_eq!(out.code, Some(3), "{out}");
    assert_eq!(out.stdout().matches("Received from server: ").count(), 1, "{out}");
    assert!(out.stderr().contains("line 2 not sent: 1,025 bytes is over the limit of 1,024 (--max-message)"), "{out}");
    server.stop();

    for spelling in ["1KiB", "1k", "1 K", "0.5K", "1024", "1024B"] {
        let out = run(netpair(&["bench", "--size", spelling, "--messages", "5", "--warmup", "0", "--json"]), b"");
        assert_eq!(out.code, Some(0), "{spelling}: {out}");
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
        let size = if spelling == "0.5K" { 512 } else { 1024 };
        assert_eq!(doc["settings"]["size"], size, "{spelling}: {out}");
    }

    // What is checked after parsing names the size as it came to, grouped.
    let out = run(netpair(&["compare", "--size", "64K"]), b"");
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr().contains("--size 65,536 is over the largest UDP message (65,507 bytes)"), "{out}");
}

#[test]
fn a_size_that_means_nothing_is_a_clear_usage_error() {
    for (args, says) in [
        (&["server", "--max-message", "1MB"][..], "could mean 1,000 or 1,024"),
        (&["server", "--max-buffered", "lots"], "is not a size in bytes"),
        (&["client", "--max-message", "1.5"], "is not a whole number of bytes"),
        (&["compare", "--size", "12 parsecs"], "unknown unit \"parsecs\""),
        (&["bench", "--size", "99999999999G"], "is too large"),
    ] {
        let out = run(netpair(args), b"");
        assert_eq!(out.code, Some(2), "{out}");
        let stderr = out.stderr();
        assert!(stderr.contains(says) && stderr.contains(&format!("'{}'", args[2])), "{says}: {out}");
    }
}
