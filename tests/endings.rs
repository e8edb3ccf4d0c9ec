//! How a conversation ends (`client --end`), as the server sees it, and the TCP options a lesson
//! turns: `--nodelay`, and `--writes 2` (each message in two writes).

mod common;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{DEADLINE, Process, Proto, Server, netpair, run, temp_dir};
use serde_json::Value;

/// A client of `server` with `args`, its input the file holding `lines` (so it ends by itself).
fn client_with_input(server: &Server, lines: &[u8], args: &[&str]) -> (Process, tempfile::TempDir) {
    let dir = temp_dir();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, lines).expect("writing the input");
    let file = std::fs::File::open(&input).expect("opening the input");
    (Process::spawn(server.client_command(args), Stdio::from(file)), dir)
}

/// The server's JSON events of one kind.
fn events(stdout: &str, kind: &str) -> Vec<Value> {
    let all = stdout.lines().map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")));
    all.filter(|e| e["event"] == kind).collect()
}

#[test]
fn half_close_the_server_sees_eof_and_the_client_still_gets_its_reply() {
    for proto in [Proto::Tcp, Proto::Unix, Proto::Seqpacket] {
        let mut server = Server::start(proto, &["--reply", "stdin", "--json", "--once"]);
        let (client, _dir) = client_with_input(&server, b"hello\n", &["--window", "2", "--end", "half-close"]);
        // The end of file comes while the reply is still owed: nothing has been typed yet.
        let seen = server.wait_for("\"event\":\"eof\"");
        assert_eq!(events(&seen, "eof")[0]["owed"], 1, "{proto:?}: {seen}");
        server.feed(b"the reply\n");
        let out = client.wait();
        assert_eq!(out.code, Some(0), "{proto:?}: {out}");
        assert_eq!(out.stdout(), "Received from server: the reply\n", "{proto:?}: {out}");
        let done = server.wait();
        let disconnect = &events(&done.stdout(), "disconnect")[0];
        assert_eq!((&disconnect["reason"], &disconnect["cause"]), (&"closed".into(), &"EOF".into()), "{done}");
    }
}

#[test]
fn half_close_in_text_says_end_of_input_and_how_many_are_owed() {
    let mut server = Server::start(Proto::Tcp, &["--reply", "stdin", "--once"]);
    let (client, _dir) = client_with_input(&server, b"one\ntwo\n", &["--window", "2", "--end", "half-close"]);
    let seen = server.wait_for("(EOF); 2 messages still owed a reply\n");
    assert!(seen.contains("End of input from: 127.0.0.1:"), "{seen}");
    server.feed(b"A\nB\n");
    let out = client.wait();
    assert_eq!((out.code, out.stdout()), (Some(0), "Received from server: A\nReceived from server: B\n".into()));
    server.wait();
}

#[test]
fn close_the_servers_writes_meet_a_closed_socket() {
    // TCP: the first write is taken and answered by a reset, and the peer is gone (the operator's
    // mode then drops the reply still owed, so no second write is made to meet EPIPE).
    let mut server = Server::start(Proto::Tcp, &["--reply", "stdin", "--json", "--once"]);
    let (client, _dir) = client_with_input(&server, b"one\ntwo\n", &["--window", "2", "--end", "close"]);
    let out = client.wait();
    // Closed at once: the two replies never came.
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr().contains("sent 2, received 0, lost 2"), "{out}");
    let seen = server.wait_for("\"event\":\"eof\"");
    assert_eq!(events(&seen, "eof")[0]["owed"], 2, "{seen}");
    server.feed(b"first\n");
    server.wait_for("\"reply\":\"first\"");
    let done = server.wait_for("\"event\":\"unanswered\"");
    assert_eq!(events(&done, "unanswered")[0]["messages"], 1, "{done}");
    server.stop();
}

#[test]
fn close_over_a_unix_stream_the_server_learns_at_once_or_at_its_first_write() {
    // A Unix stream has no reset. Closed both ways, the peer hangs up; whether the server sees
    // that before the typed reply is written is a race, and each outcome is right: it drops the
    // two replies owed at once, or its first write says EPIPE.
    let mut server = Server::start(Proto::Unix, &["--reply", "stdin", "--json", "--once"]);
    let (client, _dir) = client_with_input(&server, b"one\ntwo\n", &["--window", "2", "--end", "close"]);
    let out = client.wait();
    assert_eq!(out.code, Some(3), "{out}");
    let seen = server.wait_for("\"event\":\"eof\"");
    assert_eq!(events(&seen, "eof")[0]["owed"], 2, "{seen}");
    // Typed without the harness's feed, which fails the test if the server has already exited.
    if let Some(stdin) = server.process.stdin.as_mut() {
        let _ = stdin.write_all(b"first\n").and_then(|()| stdin.flush());
    }
    // Either way the server ends by dropping what it still owed.
    let deadline = Instant::now() + DEADLINE;
    let done = loop {
        let now = server.process.stdout();
        if now.contains("\"event\":\"unanswered\"") {
            break now;
        }
        assert!(Instant::now() < deadline, "the server never let the peer go: {now}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let dropped = &events(&done, "unanswered")[0]["messages"];
    if done.contains("\"cause\":\"EPIPE\"") {
        // It wrote first: that write said EPIPE, and the second reply was dropped.
        assert_eq!(events(&done, "disconnect")[0]["reason"], "broken pipe", "{done}");
        assert_eq!(*dropped, 1, "{done}");
    } else {
        // The hang-up came first: both replies were dropped, none written.
        assert_eq!(*dropped, 2, "{done}");
        assert!(events(&done, "reply").is_empty(), "{done}");
    }
    server.stop();
}

#[test]
fn reset_the_server_sees_connection_reset_by_peer() {
    // The reply is owed until typed: the client resets with it still on its way.
    let server = Server::start(Proto::Tcp, &["--reply", "stdin", "--once"]);
    let out = server.client(b"one\n", &["--end", "reset"]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr().contains("sent 1, received 0, lost 1"), "{out}");
    let seen = server.wait_for("Disconnected: ");
    assert!(seen.contains("from connected user: one\n"), "{seen}");
    assert!(seen.contains(" (connection reset by peer)\n"), "{seen}");
    server.wait();
}

#[test]
fn the_default_end_waits_for_the_reply_then_closes() {
    let server = Server::start(Proto::Tcp, &["--json", "--once"]);
    let out = server.client(b"one\n", &[]);
    assert_eq!(out.code, Some(0), "{out}");
    let done = server.wait();
    let disconnect = &events(&done.stdout(), "disconnect")[0];
    assert_eq!(disconnect["cause"], "EOF", "{done}");
}

#[test]
fn ends_without_meaning_for_a_kind_are_usage_errors() {
    for (proto, end, says) in [
        ("udp", "half-close", "--end half-close needs a connection (tcp, unix, seqpacket): over udp"),
        ("unixgram", "reset", "--end reset needs a connection (tcp, unix, seqpacket): over unixgram"),
        ("unix", "reset", "--end reset needs tcp: a unix socket has no reset to send"),
    ] {
        let place: &[&str] = if proto.starts_with("unix") { &["--path", "/nonexistent.sock"] } else { &[] };
        let mut args = vec!["--proto", proto];
        args.extend_from_slice(place);
        args.extend_from_slice(&["client", "--end", end]);
        let out = run(netpair(&args), b"");
        assert_eq!(out.code, Some(2), "{out}");
        assert!(out.stderr().contains(says), "{out}");
    }
}

#[test]
fn nodelay_off_leaves_nagle_on_as_the_kernel_says() {
    for (flag, want) in [(None, true), (Some("off"), false), (Some("on"), true)] {
        let mut args = vec!["--json", "--once"];
        if let Some(value) = flag {
            args.extend_from_slice(&["--nodelay", value]);
        }
        let server = Server::start(Proto::Tcp, &args);
        let out = server.client(b"one\n", &[]);
        assert_eq!(out.code, Some(0), "{out}");
        let done = server.wait();
        // Read back from the accepted socket with getsockopt(TCP_NODELAY).
        assert_eq!(events(&done.stdout(), "connect")[0]["nodelay"], want, "--nodelay {flag:?}: {done}");
    }
}

#[test]
fn two_writes_per_message_still_get_every_reply_right() {
    // Replies are checked byte for byte: a message split in two and joined again by the stream.
    let out = run(
        netpair(&["--proto", "tcp,unix", "bench", "--writes", "2", "--messages", "50", "--window", "4", "--json"]),
        b"",
    );
    assert_eq!(out.code, Some(0), "{out}");
    // Exit 0: every reply came, and right (a wrong or lost one is exit 3).
    assert!(serde_json::from_slice::<Value>(&out.stdout).is_ok(), "{out}");
    let server = Server::start(Proto::Tcp, &["--json"]);
    let out = server.client(b"first message\nsecond\nq\n", &["--writes", "2", "--nodelay", "off"]);
    assert_eq!(out.stdout(), "Received from server: FIRST MESSAGE\nReceived from server: SECOND\n", "{out}");
    let done = server.stop();
    let messages: Vec<Value> = events(&done.stdout(), "message").iter().map(|e| e["message"].clone()).collect();
    assert_eq!(messages, ["first message", "second"], "{done}");
}

#[test]
fn two_writes_are_refused_where_each_write_is_a_message() {
    for proto in ["udp", "unixgram", "seqpacket"] {
        let out = run(netpair(&["--proto", proto, "bench", "--writes", "2"]), b"");
        assert_eq!(out.code, Some(2), "{out}");
        let says = format!(
            "--writes 2 splits each message into 2 writes, which only a byte stream (tcp, unix) joins again: over --proto {proto}"
        );
        assert!(out.stderr().contains(&says), "{out}");
    }
}
