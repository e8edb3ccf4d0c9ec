//! The operator's mode, `server --reply stdin`, where a person types each reply: driven through a
//! pipe with two real clients. The prompt names the peer the next typed line answers when several
//! wait; a peer that leaves has its unanswered messages dropped, with a line saying so, and the
//! next typed line goes to the peer still there; `client --timeout none` waits as long as it takes;
//! on a terminal a late reply does not mangle the client's prompt.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Process, Proto, Server, netpair, run};

/// Closes `conn` with a reset (SO_LINGER 0), as a peer that is gone at once.
fn reset(conn: TcpStream) {
    let sock = socket2::SockRef::from(&conn);
    sock.set_linger(Some(Duration::ZERO)).expect("SO_LINGER 0");
    drop(conn);
}

#[test]
fn typed_lines_go_only_to_peers_still_there() {
    let mut server = Server::start(Proto::Tcp, &["--reply", "stdin", "--prompt", "always"]);
    let mut a = TcpStream::connect(&server.address).expect("connect a");
    let a_name = a.local_addr().expect("a's address").to_string();
    a.write_all(b"a1\na2\n").expect("write a");
    server.wait_for("Received from User: A2\n");

    let started = Instant::now();
    let mut b = Process::spawn(server.client_command(&["--timeout", "none"]), Stdio::piped());
    b.feed(b"b1\nq\n");
    // Three messages wait, two peers': the prompt says whose the next typed line is.
    let stdout = server.wait_for(&format!("[{a_name}] ? "));
    assert!(stdout.contains("] Received from User: B1\n"), "{stdout}");

    reset(a);
    let dropped = format!("No reply will go to {a_name}: it left with 2 messages unanswered\n");
    server.wait_for(&dropped);
    // Longer than the client's default --timeout (2 s): with none it still waits.
    std::thread::sleep(Duration::from_millis(2200).saturating_sub(started.elapsed()));
    server.feed(b"for b\n");
    let b = b.wait();
    assert_eq!((b.code, b.stdout().as_str()), (Some(0), "Received from server: for b\n"), "{b}");
    assert!(!b.stderr().contains("no reply"), "{b}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{b}");

    let out = server.stop();
    assert_eq!(out.code, Some(0), "{out}");
    // One line typed, one reply: to B, the peer still there.
    assert!(out.stdout().contains(&format!("Disconnected: {a_name} (connection reset by peer)\n{dropped}")), "{out}");
}

#[test]
fn a_unix_client_that_quits_takes_its_messages_with_it() {
    // Two netpair clients; the first is stopped while it waits. A Unix stream peer that closed is
    // seen to be gone (not half-closed), so the line typed next goes to the second.
    let mut server = Server::start(Proto::Unix, &["--reply", "stdin"]);
    let mut a = Process::spawn(server.client_command(&["--timeout", "none"]), Stdio::piped());
    a.feed(b"from a\n");
    server.wait_for("Received from User: FROM A\n");
    let mut b = Process::spawn(server.client_command(&["--timeout", "none"]), Stdio::piped());
    b.feed(b"from b\nq\n");
    server.wait_for("Received from User: FROM B\n");
    let a = a.stop();
    assert_eq!(a.code, Some(3), "interrupted with nothing received: {a}");
    server.wait_for(": it left with 1 message unanswered\n");
    server.feed(b"for b\n");
    let b = b.wait();
    assert_eq!((b.code, b.stdout().as_str()), (Some(0), "Received from server: for b\n"), "{b}");
    assert_eq!(a.stdout(), "", "{a}");
    server.stop();
}

#[test]
fn a_peer_gone_is_an_unanswered_event_in_json() {
    let server = Server::start(Proto::Tcp, &["--reply", "stdin", "--json"]);
    let mut a = TcpStream::connect(&server.address).expect("connect a");
    a.write_all(b"a1\n").expect("write a");
    server.wait_for("\"event\":\"message\"");
    reset(a);
    server.wait_for("\"event\":\"unanswered\"");
    let out = server.stop();
    let events: Vec<serde_json::Value> =
        out.stdout().lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}{out}"))).collect();
    let gone = events.iter().find(|e| e["event"] == "unanswered").expect("an unanswered event");
    assert_eq!(gone["messages"], 1, "{out}");
    assert!(gone["peer"].as_str().is_some_and(|p| p.starts_with("127.0.0.1:")), "{out}");
}

#[test]
fn timeout_zero_is_refused_and_points_at_none() {
    let out = run(netpair(&["client", "--timeout", "0"]), b"");
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr().contains("must be more than 0 (--timeout none waits as long as it takes)"), "{out}");
}

/// Whether `script` (util-linux) is here to give a command a terminal; under CI=true it must be.
fn have_script() -> bool {
    if Command::new("script").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    assert!(std::env::var("CI").as_deref() != Ok("true"), "script (util-linux) is needed under CI");
    println!("SKIP: script (util-linux) is not installed");
    false
}

#[test]
fn a_late_reply_on_a_terminal_redraws_the_prompt() {
    if !have_script() {
        return;
    }
    let mut server = Server::start(Proto::Tcp, &["--reply", "stdin"]);
    let client =
        format!("{} --port {} client --timeout 300ms --prompt always", env!("CARGO_BIN_EXE_netpair"), server.port());
    let mut script = Command::new("script");
    script.args(["-qec", &client, "/dev/null"]);
    let mut terminal = Process::spawn(script, Stdio::piped());
    terminal.feed(b"hello\n");
    terminal.wait_for("no reply to message 1 within 300 ms");
    // The client now shows its prompt for the next line; the reply comes while it does.
    terminal.wait_for("\n ? ");
    server.feed(b"late one\n");
    terminal.wait_for("late one");
    // On its own line (the prompt erased first), then the prompt again.
    let shown = terminal.wait_for("late one\r\n ? ");
    assert!(shown.contains(" ? \r\x1b[Knetpair: late reply to message 1, after "), "{shown:?}");
    terminal.feed(b"q\n");
    let out = terminal.wait();
    assert_eq!(out.code, Some(3), "{out}");
    drop(server);

    // Through a pipe nothing is redrawn: no terminal codes.
    let server = Server::start(Proto::Tcp, &["--reply", "stdin"]);
    let out = server.client(b"hello\nq\n", &["--timeout", "200ms", "--prompt", "always"]);
    assert!(!out.stdout().contains('\x1b'), "{out}");
}
