//! The fifth kind, Unix seqpacket: connected like a stream (a connect, a disconnect), each message
//! kept whole like a datagram; its socket files handled as unix's are.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{Proto, Server, netpair, run, temp_dir};
use serde_json::Value;

/// A raw seqpacket connection to `path`, with reads bounded by a deadline.
fn connect(path: &str) -> UnixStream {
    let addr = std::os::unix::net::SocketAddr::from_pathname(path).expect("a path");
    let sock = netpair::net::seqpacket_connect(&addr, false).expect("seqpacket connect");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("read timeout");
    sock
}

/// One message read whole (a seqpacket read is one message).
fn recv(sock: &mut UnixStream) -> Vec<u8> {
    let mut buf = vec![0; 4096];
    let n = sock.read(&mut buf).expect("a message");
    buf.truncate(n);
    buf
}

fn events(stdout: &str) -> Vec<Value> {
    stdout.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))).collect()
}

#[test]
fn conversation_connects_replies_and_disconnects() {
    let server = Server::start(Proto::Seqpacket, &[]);
    let out = server.client(b"Hello TechBeamers\nsecond line\nq\n", &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(out.stdout(), "Received from server: HELLO TECHBEAMERS\nReceived from server: SECOND LINE\n", "{out}");
    server.wait_for("Disconnected: peer#1\n");
    let done = server.stop();
    let stdout = done.stdout();
    assert!(
        stdout.starts_with(&format!("Listening on seqpacket {}\nConnection from: peer#1\n", done_address(&stdout)))
    );
    assert!(stdout.contains("from connected user: second line\nReceived from User: SECOND LINE\n"), "{done}");
}

fn done_address(stdout: &str) -> &str {
    stdout.lines().next().and_then(|l| l.strip_prefix("Listening on seqpacket ")).unwrap_or("")
}

#[test]
fn two_messages_back_to_back_arrive_as_two() {
    let server = Server::start(Proto::Seqpacket, &["--json", "--framing", "raw"]);
    let mut sock = connect(&server.address);
    // No line ends, written at once: a byte stream would be free to read "abcd" in one go.
    sock.write_all(b"ab").expect("send");
    sock.write_all(b"cd").expect("send");
    assert_eq!(recv(&mut sock), b"AB");
    assert_eq!(recv(&mut sock), b"CD");
    // A line end is no part of the message; its reply gets it back (as over unixgram).
    sock.write_all(b"ef\n").expect("send");
    assert_eq!(recv(&mut sock), b"EF\n");
    drop(sock);
    server.wait_for("\"event\":\"disconnect\"");
    let out = server.stop();
    let messages: Vec<String> = events(&out.stdout())
        .iter()
        .filter(|e| e["event"] == "message")
        .map(|e| e["message"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(messages, ["ab", "cd", "ef"], "{out}");
}

#[test]
fn a_message_over_the_bound_closes_the_connection() {
    let server = Server::start(Proto::Seqpacket, &["--max-message", "10"]);
    let mut sock = connect(&server.address);
    sock.write_all(b"0123456789").expect("send");
    assert_eq!(recv(&mut sock), b"0123456789");
    // Eleven bytes: the kernel would cut it to the buffer silently; the server learns its real length.
    sock.write_all(b"0123456789A").expect("send");
    assert_eq!(recv(&mut sock), b"", "the server closes the connection");
    server.wait_for("Disconnected: peer#1 (message too long)\n");
    let out = server.stop();
    assert!(out.stderr().contains("peer#1 sent a message of 11 bytes, over --max-message 10; closing it"), "{out}");
}

#[test]
fn empty_lines_are_not_sent_and_a_server_gone_is_an_error() {
    let mut server = Server::start(Proto::Seqpacket, &["--reply", "stdin"]);
    // Zero bytes would read as the end of the connection: not sent, and said so.
    let client = server.client_command(&["--timeout", "5s"]);
    let client = common::Process::spawn(client, std::process::Stdio::piped());
    server.wait_for("Connection from: peer#1\n");
    let mut client = client;
    client.feed(b"\nhello\n");
    server.wait_for("from connected user: hello\n");
    server.feed(b"first\n");
    client.wait_for("Received from server: first\n");
    client.feed(b"again\n");
    server.wait_for("from connected user: again\n");
    // The server goes with the reply still owed: the client is told the connection ended.
    let stopped = server.stop();
    let out = client.wait();
    assert_eq!(out.code, Some(1), "{out}\n{stopped}");
    assert!(out.stderr().contains("line 1 not sent: an empty message cannot travel over seqpacket"), "{out}");
    assert!(out.stderr().contains("the server closed the connection"), "{out}");
}

#[test]
fn a_stale_socket_file_is_cleared_and_a_live_one_kept() {
    let dir = temp_dir();
    let path = dir.path().join("sq.sock");
    let path_str = path.to_str().expect("UTF-8");
    // A seqpacket socket bound there and closed: the file stays, nobody behind it.
    let stale = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None).expect("socket");
    stale.bind(&socket2::SockAddr::unix(&path).expect("address")).expect("bind");
    stale.listen(1).expect("listen");
    drop(stale);
    assert!(path.exists());
    let server = Server::start_at(Proto::Seqpacket, &path, &["-v"]);
    // A second server is refused the live one's path, and leaves it alone.
    let second = run(netpair(&["--proto", "seqpacket", "--path", path_str, "server"]), b"");
    assert_eq!(second.code, Some(1), "{second}");
    assert!(second.stderr().contains("another server is listening there"), "{second}");
    let out = server.stop();
    assert!(out.stderr().contains(&format!("removing stale socket file {path_str}")), "{out}");
    assert!(!path.exists(), "the server removes its own file");
}
