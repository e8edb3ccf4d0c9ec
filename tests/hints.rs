//! Hints where a user is stuck, on the real binary against real servers: replies with no line end
//! (a server that never sends `\n`) point to `--framing raw`; an echo server met with the default
//! `--expect upper` points to `--expect echo`. And bench's JSON keeps the warm-up's counts apart,
//! and `-qq` leaves out its progress line on a terminal.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::thread;

use common::{Proto, Server, netpair, run};
use serde_json::Value;

/// A TCP server on a free port that, like the tutorial's, answers each read (its line end taken
/// off) with `answer(text)` written as is (no line end added), until its client closes. Returns the port.
fn line_server(answer: fn(&str) -> String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else { return };
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = conn.read(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            if conn.write_all(answer(text.trim_end_matches('\n')).as_bytes()).is_err() {
                return;
            }
        }
    });
    port
}

fn json_lines(out: &common::Output) -> Vec<Value> {
    let stdout = out.stdout();
    let lines = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}{out}")));
    lines.collect()
}

#[test]
fn replies_without_a_line_end_point_to_raw_framing() {
    // The tutorial's server replies with the typed line and no newline: this one likewise.
    let port = line_server(|line| line.to_uppercase()).to_string();
    let out = run(netpair(&["--port", &port, "client", "--timeout", "300ms"]), b"hello\nq\n");
    assert_eq!(out.code, Some(3), "{out}");
    let stderr = out.stderr();
    assert!(stderr.contains("netpair: no reply to message 1 within 300 ms\n"), "{out}");
    let hint = "netpair: warning: 5 bytes received with no line end within 300 ms: if the server does not end \
                its replies with \\n, try --framing raw\n";
    assert!(stderr.contains(hint), "{out}");

    let port = line_server(|line| line.to_uppercase()).to_string();
    let out = run(netpair(&["--port", &port, "client", "--timeout", "300ms", "--json"]), b"hello\nq\n");
    assert_eq!(out.code, Some(3), "{out}");
    let events = json_lines(&out);
    let warning = events.iter().find(|e| e["event"] == "warning").unwrap_or_else(|| panic!("no warning{out}"));
    assert!(warning["warning"].as_str().is_some_and(|w| w.ends_with("try --framing raw")), "{out}");
    assert!(warning.get("line").is_none(), "about no input line: {out}");

    // The advice works: raw framing takes each read as the reply.
    let port = line_server(|line| line.to_uppercase()).to_string();
    let out = run(netpair(&["--port", &port, "--framing", "raw", "client", "--timeout", "5s"]), b"hello\nq\n");
    assert_eq!((out.code, out.stdout().as_str()), (Some(0), "Received from server: HELLO\n"), "{out}");
    assert!(!out.stderr().contains("warning"), "{out}");
}

#[test]
fn a_silent_server_gets_no_framing_hint() {
    let port = line_server(|_| String::new()).to_string();
    let out = run(netpair(&["--port", &port, "client", "--timeout", "200ms"]), b"hello\nq\n");
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr().contains("no reply to message 1") && !out.stderr().contains("--framing"), "{out}");
}

#[test]
fn the_client_checks_replies_with_expect() {
    let echo = |line: &str| format!("{line}\n");
    // Without --expect any reply is taken (a person may be typing them).
    let port = line_server(echo).to_string();
    let out = run(netpair(&["--port", &port, "client"]), b"hi there\nq\n");
    assert_eq!(out.code, Some(0), "{out}");

    let port = line_server(echo).to_string();
    let out = run(netpair(&["--port", &port, "client", "--expect", "upper"]), b"hi there\nq\n");
    assert_eq!(out.code, Some(3), "{out}");
    let stderr = out.stderr();
    assert!(stderr.contains("netpair: reply to message 1 is not its message uppercased (--expect upper)\n"), "{out}");
    assert!(
        stderr.contains("warning: every wrong reply was its message unchanged: for an echo server, use --expect echo")
    );
    assert!(stderr.contains("sent 1, received 1, lost 0, late 0, wrong 1"), "{out}");

    let port = line_server(echo).to_string();
    let out = run(netpair(&["--port", &port, "client", "--expect", "upper", "--json"]), b"hi there\nq\n");
    assert_eq!(out.code, Some(3), "{out}");
    let events = json_lines(&out);
    let wrong = events.iter().find(|e| e["event"] == "wrong").unwrap_or_else(|| panic!("no wrong event{out}"));
    assert_eq!((wrong["seq"].as_u64(), wrong["expected"].as_str()), (Some(1), Some("upper")), "{out}");
    assert_eq!(events.last().map(|e| e["wrong"].as_u64()), Some(Some(1)), "the summary counts it: {out}");

    let port = line_server(echo).to_string();
    let out = run(netpair(&["--port", &port, "client", "--expect", "echo"]), b"hi there\nq\n");
    assert_eq!((out.code, out.stdout().as_str()), (Some(0), "Received from server: hi there\n"), "{out}");
}

/// `netpair bench --connect` at `server` with `args`.
fn bench_at(server: &Server, args: &[&str]) -> common::Output {
    let port = server.port().to_string();
    let mut all = vec!["--port", &port, "bench", "--connect", "--messages", "20", "--warmup", "50ms"];
    all.extend_from_slice(args);
    run(netpair(&all), b"")
}

#[test]
fn bench_against_an_echo_server_suggests_expect_echo() {
    let server = Server::start(Proto::Tcp, &["--reply", "echo"]);
    let out = bench_at(&server, &[]);
    assert_eq!(out.code, Some(3), "{out}");
    let note = "note: tcp: every wrong reply was its message unchanged: for an echo server, use --expect echo";
    assert!(out.stdout().contains(note), "{out}");

    let out = bench_at(&server, &["--json"]);
    assert_eq!(out.code, Some(3), "{out}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}{out}"));
    assert!(doc["results"]["tcp"]["hint"].as_str().is_some_and(|h| h.contains("--expect echo")), "{out}");
    assert_eq!(doc["results"]["tcp"]["round_trips"], 0, "{out}");

    let out = bench_at(&server, &["--expect", "echo", "--json"]);
    assert_eq!(out.code, Some(0), "{out}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}{out}"));
    let tcp = &doc["results"]["tcp"];
    assert_eq!((tcp["round_trips"].as_u64(), tcp["wrong"].as_u64()), (Some(20), Some(0)), "{out}");
    assert!(tcp.get("hint").is_none(), "{out}");
    assert_eq!(doc["settings"]["expect"], "echo", "{out}");

    // An uppercasing server is no echo server: no hint, whatever is wrong.
    let server = Server::start(Proto::Tcp, &[]);
    let out = bench_at(&server, &["--expect", "echo"]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(!out.stdout().contains("use --expect"), "{out}");
}

#[test]
fn bench_json_keeps_the_warm_up_apart() {
    let args = ["--proto", "tcp,udp", "bench", "--messages", "100", "--clients", "2", "--warmup", "200ms", "--json"];
    let out = run(netpair(&args), b"");
    assert_eq!(out.code, Some(0), "{out}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}{out}"));
    for proto in ["tcp", "udp"] {
        let r = &doc["results"][proto];
        // 100 measured messages per client, and the warm-up's counted on their own.
        assert_eq!((r["sent"].as_u64(), r["round_trips"].as_u64()), (Some(200), Some(200)), "{proto}: {out}");
        let warmup = &r["warmup"];
        assert!(warmup["sent"].as_u64().is_some_and(|n| n > 0), "{proto}: {out}");
        assert_eq!(warmup["round_trips"], warmup["sent"], "{proto}: on loopback every warm-up reply comes: {out}");
        assert_eq!((warmup["lost"].as_u64(), warmup["wrong"].as_u64()), (Some(0), Some(0)), "{proto}: {out}");
    }
}

/// Runs `command` (a shell command line) on a terminal of its own, `script`'s; None without it.
fn on_a_terminal(command: &str) -> Option<common::Output> {
    if !Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success()) {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "script (util-linux) is needed under CI");
        println!("SKIP: script (util-linux) is not installed");
        return None;
    }
    let mut script = Command::new("script");
    script.args(["-qec", command, "/dev/null"]);
    Some(run(script, b""))
}

#[test]
fn qq_leaves_out_the_bench_progress_line() {
    let bench = format!("{} bench --duration 600ms --warmup 100ms", env!("CARGO_BIN_EXE_netpair"));
    let Some(out) = on_a_terminal(&bench) else { return };
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout().contains("\x1b[Ktcp: ") && out.stdout().contains(" round trips ("), "a progress line{out}");
    let Some(out) = on_a_terminal(&format!("{bench} -qq")) else { return };
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stdout().contains('\x1b') && !out.stdout().contains("tcp: "), "no progress line with -qq{out}");
    assert!(out.stdout().contains("round trip p50"), "the table still comes{out}");
}
