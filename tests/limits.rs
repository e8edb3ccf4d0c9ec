//! What the server and client do at their limits: a full server's refusal, `--once` over datagrams,
//! the exit status after a signal, and the memory bound over all peers together (`--max-buffered`).

mod common;

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{DEADLINE, Process, Proto, Server, netpair, run};

fn signal(process: &Process, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(process.id() as i32).expect("a pid");
    rustix::process::kill_process(pid, signal).expect("kill");
}

/// The server's peak resident memory so far, in bytes (`VmHWM`).
fn peak_memory(process: &Process) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", process.id())).expect("/proc status");
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line");
    kib * 1024
}

#[test]
fn a_client_turned_away_by_a_full_server_says_so_in_one_line() {
    for proto in [Proto::Tcp, Proto::Unix] {
        let server = Server::start(proto, &["--max-clients", "1"]);
        let first = server.client_command(&[]);
        let mut first = Process::spawn(first, Stdio::piped());
        first.feed(b"first\n");
        first.wait_for("FIRST");
        for json in [false, true] {
            let args: &[&str] = if json { &["--json"] } else { &[] };
            let mut command = server.client_command(&[]);
            command.args(args);
            let out = run(command, b"hello\nq\n");
            assert_eq!(out.code, Some(1), "{out}");
            if json {
                let events: Vec<serde_json::Value> =
                    out.stdout().lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
                assert!(
                    events.iter().any(
                        |e| e["event"] == "error" && e["error"].as_str().is_some_and(|t| t.contains("server full"))
                    ),
                    "{out}"
                );
            } else {
                let stderr = out.stderr();
                assert_eq!(stderr.lines().count(), 1, "one line{out}");
                assert!(stderr.contains("turned away: server full (1 client); try again later"), "{out}");
                assert!(out.stdout().is_empty(), "{out}");
            }
        }
        first.feed(b"q\n");
        assert_eq!(first.wait().code, Some(0));
        server.stop();
    }
}

#[test]
fn once_over_datagrams_ends_when_the_client_is_done() {
    for proto in [Proto::Udp, Proto::Unixgram] {
        // Without --idle-timeout: the server must not wait its 60 s default (the deadline is 30 s).
        let server = Server::start(proto, &["--once"]);
        let client = server.client(b"one\ntwo\nq\n", &[]);
        assert_eq!(client.code, Some(0), "{client}");
        let second = server.client(b"late\nq\n", &["--timeout", "300ms"]);
        assert_eq!(second.code, Some(3), "the second client gets no reply{second}");
        let out = server.wait();
        assert_eq!(out.code, Some(0), "{out}");
        assert!(out.stderr().contains("--once: serving one client already"), "{out}");
        assert!(!out.stderr().contains("--max-clients"), "{out}");
        assert_eq!(common::served(&out.stderr()), Some((1, 2)), "{out}");
    }
}

#[test]
fn a_signal_ends_a_client_with_what_it_measured() {
    let server = Server::start(Proto::Tcp, &[]);
    // Nothing sent yet: nothing measured is no success.
    let mut idle = Process::spawn(server.client_command(&[]), Stdio::piped());
    // Its input stays open (an end of input would end it by itself): held here until it is done.
    let _input = idle.stdin.take();
    std::thread::sleep(Duration::from_millis(300));
    signal(&idle, rustix::process::Signal::INT);
    let out = idle.wait();
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr().contains("interrupted"), "{out}");
    // Every message answered, then interrupted while waiting for more input: success.
    let mut answered = Process::spawn(server.client_command(&[]), Stdio::piped());
    answered.feed(b"hello\n");
    answered.wait_for("HELLO");
    let _input = answered.stdin.take();
    signal(&answered, rustix::process::Signal::TERM);
    let out = answered.wait();
    assert_eq!(out.code, Some(0), "{out}");
    server.stop();
}

#[test]
fn a_signal_during_compare_leaves_no_temporary_directory() {
    let tmp = common::temp_dir();
    let mut command = netpair(&["compare"]);
    command.env("TMPDIR", tmp.path());
    let compare = Process::spawn(command, Stdio::null());
    let deadline = Instant::now() + DEADLINE;
    while std::fs::read_dir(tmp.path()).expect("tmp").next().is_none() {
        assert!(Instant::now() < deadline, "compare never made its directory");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&compare, rustix::process::Signal::TERM);
    let out = compare.wait();
    assert_eq!(out.code, Some(3), "{out}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).expect("tmp").collect();
    assert!(left.is_empty(), "left behind: {left:?}{out}");
}

#[test]
fn max_buffered_bounds_what_all_peers_together_hold() {
    const BUDGET: usize = 32 << 20;
    const HOGS: usize = 500;
    const LINE: usize = 1 << 20;
    let server = Server::start(Proto::Tcp, &["--max-buffered", &BUDGET.to_string()]);
    let before = peak_memory(&server.process);
    // 500 clients, each sending a 1 MiB line with no line end and reading nothing.
    let mut hogs: Vec<(TcpStream, usize)> = (0..HOGS)
        .map(|_| {
            let sock = TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
            sock.set_nonblocking(true).expect("nonblocking");
            (sock, 0)
        })
        .collect();
    let chunk = vec![b'x'; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && hogs.iter().any(|(_, sent)| *sent < LINE) {
        let mut progress = false;
        for (sock, sent) in hogs.iter_mut().filter(|(_, sent)| *sent < LINE) {
            match sock.write(&chunk[..chunk.len().min(LINE - *sent)]) {
                Ok(n) => {
                    *sent += n;
                    progress = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("a hog's write failed: {e}"),
            }
        }
        if !progress {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let sent: usize = hogs.iter().map(|(_, sent)| sent).sum();
    assert!(sent > 2 * BUDGET, "the hogs sent only {sent} bytes: the test did not press the server");
    // A normal client beside them still gets every reply.
    let client = server.client(b"one\ntwo\nthree\nq\n", &[]);
    assert_eq!(client.code, Some(0), "{client}");
    assert_eq!(client.stdout(), "Received from server: ONE\nReceived from server: TWO\nReceived from server: THREE\n");
    let peak = peak_memory(&server.process) - before;
    // Slack: two small reads per peer over the bound, and the allocator's rounding of 500 buffers.
    let slack = HOGS * 8 * 1024 + (16 << 20);
    println!("hogs sent {sent} bytes; server peak grew by {peak} bytes (budget {BUDGET}, slack {slack})");
    assert!(peak <= BUDGET + slack, "peak memory grew by {peak} bytes, over {BUDGET} + {slack}");
    drop(hogs);
    server.stop();
}
