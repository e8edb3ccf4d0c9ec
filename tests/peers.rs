//! Other tools as peers: what `nc` and `socat` users do against a netpair server works.

mod common;

use std::process::Command;

use common::{Proto, Server, run};

/// The program, or None (the test then says it skipped).
fn tool(name: &str) -> Option<&str> {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).output();
    if found.is_ok_and(|o| o.status.success()) {
        return Some(name);
    }
    eprintln!("skipped: {name} is not installed (apt-get install netcat-openbsd socat)");
    None
}

fn host_port(server: &Server) -> (String, String) {
    let (host, port) = server.address.rsplit_once(':').expect("host:port");
    (host.to_string(), port.to_string())
}

#[test]
fn nc_over_tcp_gets_uppercase_lines() {
    let Some(nc) = tool("nc") else { return };
    let server = Server::start(Proto::Tcp, &[]);
    let (host, port) = host_port(&server);
    // -N: shut down the write side at end of input, then read until the server closes.
    let mut command = Command::new(nc);
    command.args(["-N", &host, &port]);
    let out = run(command, "hello\nstra\u{df}e\n".as_bytes());
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout(), "HELLO\nSTRASSE\n", "{out}");
    server.wait_for("Disconnected: ");
}

#[test]
fn nc_over_udp_gets_its_line_end_back() {
    let Some(nc) = tool("nc") else { return };
    let server = Server::start(Proto::Udp, &[]);
    let (host, port) = host_port(&server);
    // nc -u sends each line as a datagram with its newline; the reply carries the newline back.
    let mut command = Command::new(nc);
    command.args(["-u", "-w", "1", &host, &port]);
    let out = run(command, b"hello\n");
    assert_eq!(out.stdout(), "HELLO\n", "{out}");
    let transcript = server.wait_for("Received from User: HELLO");
    assert!(
        transcript.contains("from connected user: hello\n"),
        "the newline is not part of the message: {transcript}"
    );
}

#[test]
fn socat_over_unix_stream_and_datagram() {
    let Some(socat) = tool("socat") else { return };
    let server = Server::start(Proto::Unix, &[]);
    let mut command = Command::new(socat);
    command.args(["-", &format!("UNIX-CONNECT:{}", server.address)]);
    let out = run(command, b"hi there\n");
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout(), "HI THERE\n", "{out}");

    let server = Server::start(Proto::Unixgram, &[]);
    let dir = common::temp_dir();
    let own = dir.path().join("socat.sock");
    let mut command = Command::new(socat);
    command.args(["-t", "1", "-", &format!("UNIX-SENDTO:{},bind={}", server.address, own.display())]);
    let out = run(command, b"datagram\n");
    assert_eq!(out.stdout(), "DATAGRAM\n", "{out}");
}
