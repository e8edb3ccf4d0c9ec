//! The core over all four transports: the tutorial conversation byte for byte, many clients at once,
//! big and odd messages, how a session ends, errors and exit codes, and `--json`.

mod common;

use std::os::unix::net::{UnixDatagram, UnixListener};
use std::thread;

use common::{Output, Peer, Proto, Server, netpair, run, run_with_file, temp_dir};
use serde_json::Value;

/// One test per transport, `NAME::tcp` … `NAME::unixgram`, each calling `NAME(Proto::…)`.
macro_rules! for_each_proto {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::Proto;
            #[test]
            fn tcp() { super::$name(Proto::Tcp) }
            #[test]
            fn udp() { super::$name(Proto::Udp) }
            #[test]
            fn unix() { super::$name(Proto::Unix) }
            #[test]
            fn unixgram() { super::$name(Proto::Unixgram) }
        }
    )*};
}

for_each_proto!(
    tutorial_conversation,
    reply_stdin_tutorial_transcript,
    many_clients_each_get_their_own_replies,
    non_utf8_and_empty_messages,
    q_ends_the_session,
    end_of_input_ends_the_session,
    client_reads_a_regular_file,
    no_reply_exits_3,
    json_events_parse,
    reply_echo,
);

const TUTORIAL_LINES: &[u8] = b"Hello TechBeamers\nYou posts are awesome :)\nq\n";
const TUTORIAL_REPLIES: &[u8] = b"Hello Dear Reader\nThank you very much. This is what keeps us motivated.\n";

/// The client's transcript for these replies.
fn received(replies: &[&str]) -> String {
    replies.iter().map(|reply| format!("Received from server: {reply}\n")).collect()
}

/// The peer named in the server's first `Connection from:` line.
fn first_peer(server_stdout: &str) -> String {
    let line = server_stdout.lines().find_map(|line| line.strip_prefix("Connection from: "));
    line.unwrap_or_else(|| panic!("no `Connection from:` in\n{server_stdout}")).to_string()
}

/// What the server's stdout should hold after serving `peer` alone: each message and its uppercase
/// form, each followed by `between` (the ` ? ` prompt of `--reply stdin --prompt always`), then `end`.
fn served(server: (Proto, &str), peer: &str, messages: &[(&str, &str)], between: &str, end: &str) -> String {
    let (proto, address) = server;
    let mut text = format!("Listening on {} {address}\nConnection from: {peer}\n", proto.name());
    for (message, upper) in messages {
        text += &format!("from connected user: {message}\nReceived from User: {upper}\n{between}");
    }
    text + end
}

const TUTORIAL_SAID: [(&str, &str); 2] =
    [("Hello TechBeamers", "HELLO TECHBEAMERS"), ("You posts are awesome :)", "YOU POSTS ARE AWESOME :)")];

fn assert_ok(out: &Output) {
    assert_eq!(out.code, Some(0), "{out}");
}

fn assert_summary(out: &Output, sent: u32, received: u32) {
    let summary = format!("netpair: sent {sent}, received {received}, lost 0, late 0; round trip min ");
    assert!(out.stderr().starts_with(&summary), "expected {summary:?} on stderr{out}");
    assert_eq!(out.stderr().lines().count(), 1, "one summary line on stderr{out}");
}

/// Stops the server and checks it stopped cleanly with the expected counts.
fn stop_cleanly(server: Server, clients: usize, messages: usize) -> Output {
    let out = server.stop();
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(common::served(&out.stderr()), Some((clients, messages)), "{out}");
    assert_eq!(out.stderr().lines().count(), 1, "the summary alone on stderr{out}");
    out
}

fn tutorial_conversation(proto: Proto) {
    let server = Server::start(proto, &[]);
    let client = server.client(TUTORIAL_LINES, &[]);
    assert_ok(&client);
    assert_eq!(client.stdout(), received(&["HELLO TECHBEAMERS", "YOU POSTS ARE AWESOME :)"]), "{client}");
    assert_summary(&client, 2, 2);

    let so_far = server.wait_for(if proto.is_stream() { "Disconnected: " } else { "AWESOME :)\n" });
    let peer = first_peer(&so_far);
    match proto {
        Proto::Tcp | Proto::Udp => {
            let addr: std::net::SocketAddr = peer.parse().unwrap_or_else(|_| panic!("peer {peer:?}"));
            assert!(addr.ip().is_loopback() && addr.port() != server.port(), "peer {peer:?}");
        }
        Proto::Unix | Proto::Seqpacket => assert_eq!(peer, "peer#1"),
        // The client's own abstract name: no file to leave behind, or to lack permission on.
        Proto::Unixgram => assert!(peer.starts_with("@netpair-client-"), "peer {peer:?}"),
    }
    let end = if proto.is_stream() { format!("Disconnected: {peer}\n") } else { String::new() };
    let expected = served((proto, &server.address), &peer, &TUTORIAL_SAID, "", &end);
    let out = stop_cleanly(server, 1, 2);
    assert_eq!(out.stdout(), expected, "{out}");
}

/// The tutorial's own session: the server's operator types the replies (`--reply stdin`).
fn reply_stdin_tutorial_transcript(proto: Proto) {
    // A datagram peer never closes: `--once` ends when it has been idle this long.
    let mut server =
        Server::start(proto, &["--reply", "stdin", "--prompt", "always", "--once", "--idle-timeout", "1s"]);
    server.feed(TUTORIAL_REPLIES);
    let client = server.client(TUTORIAL_LINES, &["--prompt", "always"]);
    assert_ok(&client);
    assert_eq!(
        client.stdout(),
        " ? Received from server: Hello Dear Reader\n ? Received from server: Thank you very much. This is what keeps us motivated.\n ? ",
        "{client}"
    );

    let address = server.address.clone();
    let out = server.wait();
    assert_eq!(out.code, Some(0), "{out}");
    let peer = first_peer(&out.stdout());
    let end = if proto.is_stream() {
        format!("Disconnected: {peer}\n")
    } else {
        format!("Disconnected: {peer} (idle timeout)\n")
    };
    let expected = served((proto, &address), &peer, &TUTORIAL_SAID, " ? ", &end);
    assert_eq!(out.stdout(), expected, "{out}");
    // One line: the counts, then what the kernel said of the sockets.
    assert!(out.stderr().starts_with("netpair: served 1 client, 2 messages"), "{out}");
    assert_eq!(out.stderr().lines().count(), 1, "{out}");
}

fn many_clients_each_get_their_own_replies(proto: Proto) {
    const CLIENTS: usize = 20;
    const LINES: usize = 10;
    let server = Server::start(proto, &[]);
    let lines = |client: usize| (0..LINES).map(move |line| format!("client {client} says {line}"));
    thread::scope(|scope| {
        let runs: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let input: String = lines(client).map(|line| line + "\n").collect();
                let server = &server;
                scope.spawn(move || server.client(input.as_bytes(), &[]))
            })
            .collect();
        for (client, run) in runs.into_iter().enumerate() {
            let out = run.join().expect("client thread");
            assert_ok(&out);
            let expected: Vec<String> = lines(client).map(|line| line.to_uppercase()).collect();
            let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
            assert_eq!(out.stdout(), received(&expected), "client {client}{out}");
        }
    });

    let out = stop_cleanly(server, CLIENTS, CLIENTS * LINES);
    // Every message shows once, and while several peers are connected both of its lines carry the
    // same peer tag, one tag per client: a reader can tell who said what.
    let stdout = out.stdout();
    let transcript: Vec<&str> = stdout.lines().collect();
    for client in 0..CLIENTS {
        let mut tags = Vec::new();
        for line in lines(client) {
            let said = format!("from connected user: {line}");
            let at: Vec<usize> = (0..transcript.len()).filter(|&i| transcript[i].ends_with(&said)).collect();
            assert_eq!(at.len(), 1, "{said:?} once in the server's transcript{out}");
            let tag = transcript[at[0]].strip_suffix(&said).unwrap_or_default();
            let upper = format!("{tag}Received from User: {}", line.to_uppercase());
            assert_eq!(transcript.get(at[0] + 1), Some(&upper.as_str()), "{out}");
            if !tag.is_empty() {
                tags.push(tag);
            }
        }
        tags.dedup();
        assert!(tags.len() <= 1, "client {client} appears under several peers: {tags:?}{out}");
    }
}

#[test]
fn a_100_kb_line_over_streams_is_intact() {
    let line: Vec<u8> = b"abcdefghijklmnopqrstuvwxyz0123456789".iter().copied().cycle().take(100_000).collect();
    for proto in [Proto::Tcp, Proto::Unix] {
        check_big_message(proto, &line);
    }
}

#[test]
fn a_60000_byte_datagram_is_intact() {
    let datagram: Vec<u8> = b"the quick brown fox ".iter().copied().cycle().take(60_000).collect();
    for proto in [Proto::Udp, Proto::Unixgram] {
        check_big_message(proto, &datagram);
    }
}

#[test]
fn a_burst_from_many_datagram_peers_gets_each_its_own_replies_in_order() {
    // More datagrams than one receive or send batch holds, from many peers, all sent before any
    // reply is read: each peer gets exactly its own replies, in its own order.
    const PEERS: usize = 24;
    const EACH: usize = 8;
    for proto in [Proto::Udp, Proto::Unixgram] {
        let server = Server::start(proto, &[]);
        let peers: Vec<Peer> = (0..PEERS).map(|_| Peer::open(&server)).collect();
        for seq in 0..EACH {
            for (i, peer) in peers.iter().enumerate() {
                peer.send(format!("peer {i} message {seq}\n").as_bytes());
            }
        }
        for (i, peer) in peers.iter().enumerate() {
            for seq in 0..EACH {
                let reply = peer.recv().unwrap_or_else(|e| panic!("{proto:?}: peer {i}, reply {seq}: {e}"));
                assert_eq!(reply, format!("PEER {i} MESSAGE {seq}\n").as_bytes(), "{proto:?}");
            }
        }
        stop_cleanly(server, PEERS, PEERS * EACH);
    }
}

fn check_big_message(proto: Proto, message: &[u8]) {
    let server = Server::start(proto, &[]);
    let client = server.client(&[message, b"\n"].concat(), &[]);
    assert_ok(&client);
    let expected = [b"Received from server: ", message.to_ascii_uppercase().as_slice(), b"\n"].concat();
    assert!(
        client.stdout == expected,
        "{proto:?}: reply of {} bytes, not the expected {}{client}",
        client.stdout.len(),
        expected.len()
    );
    let said = [b"from connected user: ", message, b"\n"].concat();
    let out = stop_cleanly(server, 1, 1);
    assert!(out.stdout.windows(said.len()).any(|w| w == said.as_slice()), "{proto:?}: message not shown whole{out}");
}

#[test]
fn a_70000_byte_udp_line_is_refused_and_the_server_goes_on() {
    let server = Server::start(Proto::Udp, &[]);
    let too_big = [vec![b'x'; 70_000].as_slice(), b"\nafter\n"].concat();
    let client = server.client(&too_big, &[]);
    assert_eq!(client.code, Some(3), "{client}");
    assert_eq!(client.stdout(), received(&["AFTER"]), "the next line still goes{client}");
    let refusal = client.stderr().lines().next().unwrap_or_default().to_string();
    assert!(refusal.starts_with("netpair: line 1 not sent: 70,000 bytes"), "{client}");

    let other = server.client(b"still here\n", &[]);
    assert_ok(&other);
    assert_eq!(other.stdout(), received(&["STILL HERE"]), "{other}");
    let out = stop_cleanly(server, 2, 2);
    assert!(!out.stdout().contains("xxxx"), "{out}");
}

fn non_utf8_and_empty_messages(proto: Proto) {
    let server = Server::start(proto, &[]);
    let client = server.client(b"caf\xc3\xa9 \xff\xfe ok\n\nstra\xc3\x9fe\n", &[]);
    assert_ok(&client);
    // Not UTF-8: only ASCII letters change. Empty: an empty reply. UTF-8: Unicode-aware, as Python's upper().
    // A byte that is not UTF-8 is shown as \xNN (terminal-safe); `--json` has the exact bytes.
    let expected =
        b"Received from server: CAF\xc3\xa9 \\xff\\xfe OK\nReceived from server: \nReceived from server: STRASSE\n";
    assert_eq!(client.stdout, expected, "{client}");
    let out = stop_cleanly(server, 1, 3);
    let shown = b"from connected user: caf\xc3\xa9 \\xff\\xfe ok\nReceived from User: CAF\xc3\xa9 \\xff\\xfe OK\n\
                  from connected user: \nReceived from User: \n";
    assert!(out.stdout.windows(shown.len()).any(|w| w == shown), "{out}");
}

#[test]
fn an_empty_line_is_not_sent_on_a_raw_stream() {
    let server = Server::start(Proto::Tcp, &["--framing", "raw"]);
    let client = server.client(b"\nhi\n", &["--framing", "raw"]);
    assert_eq!(client.code, Some(3), "{client}");
    assert_eq!(client.stdout(), received(&["HI"]), "{client}");
    assert!(client.stderr().starts_with("netpair: line 1 not sent: an empty message"), "{client}");
}

fn q_ends_the_session(proto: Proto) {
    let server = Server::start(proto, &[]);
    let client = server.client(b"one\nq\ntwo\n", &[]);
    assert_ok(&client);
    assert_eq!(client.stdout(), received(&["ONE"]), "{client}");
    assert_summary(&client, 1, 1);
    if proto.is_stream() {
        server.wait_for("Disconnected: ");
    }
    let out = stop_cleanly(server, 1, 1);
    assert!(!out.stdout().contains("two"), "{out}");
}

fn end_of_input_ends_the_session(proto: Proto) {
    let server = Server::start(proto, &[]);
    // The last line has no newline: it is still a line.
    let client = server.client(b"one\ntwo", &[]);
    assert_ok(&client);
    assert_eq!(client.stdout(), received(&["ONE", "TWO"]), "{client}");
    if proto.is_stream() {
        server.wait_for("Disconnected: ");
    }
    stop_cleanly(server, 1, 2);
}

fn client_reads_a_regular_file(proto: Proto) {
    let dir = temp_dir();
    let file = dir.path().join("lines.txt");
    std::fs::write(&file, "from a file\r\nsecond line\n").expect("writing the input file");
    let server = Server::start(proto, &[]);
    let client = run_with_file(server.client_command(&[]), &file);
    assert_ok(&client);
    assert_eq!(client.stdout(), received(&["FROM A FILE", "SECOND LINE"]), "{client}");
}

/// Exit status 3: a `--reply stdin` server with nothing on its stdin never answers.
fn no_reply_exits_3(proto: Proto) {
    let server = Server::start(proto, &["--reply", "stdin"]);
    let client = server.client(b"hello\n", &["--timeout", "300ms"]);
    assert_eq!(client.code, Some(3), "{client}");
    assert_eq!(client.stdout(), "", "{client}");
    let stderr = client.stderr();
    assert!(
        stderr.starts_with("netpair: no reply to message 1 within 300 ms\nnetpair: sent 1, received 0, lost 1"),
        "{client}"
    );

    // The same status with --json, and the timeout as an event.
    let client = server.client(b"hello\n", &["--timeout", "300ms", "--json"]);
    assert_eq!(client.code, Some(3), "{client}");
    let events = json_lines(&client);
    assert_eq!(names(&events), ["timeout", "summary"], "{client}");
    assert_eq!(events[0]["seq"], 1, "{client}");
    assert_eq!(events[1]["lost"], 1, "{client}");
}

#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &["--proto", "unix", "client"],
        &["--path", "/tmp/x.sock", "server"],
        &["client", "--timeout", "0"],
        &["client", "--timeout", "soon"],
        &["--proto", "udp", "--max-message", "70000", "server"],
        &["--no-such-flag", "client"],
        &[],
    ];
    for args in cases {
        let out = run(netpair(args), b"");
        assert_eq!(out.code, Some(2), "{out}");
        assert!(!out.stderr().contains("panicked"), "{out}");
    }
}

#[test]
fn tcp_connection_refused_exits_1() {
    let port = common::free_port().to_string();
    let out = run(netpair(&["--port", &port, "client"]), b"hello\n");
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(out.stdout(), "", "{out}");
    assert_eq!(
        out.stderr(),
        format!("netpair: error: cannot connect to tcp 127.0.0.1:{port}: connection refused\n"),
        "{out}"
    );
}

#[test]
fn udp_connection_refused_exits_1() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("binding udp");
    let port = socket.local_addr().expect("local address").port().to_string();
    drop(socket);
    let out = run(netpair(&["--proto", "udp", "--port", &port, "client"]), b"hello\n");
    assert_eq!(out.code, Some(1), "{out}");
    assert_eq!(out.stdout(), "", "{out}");
    let error = out.stderr().lines().last().unwrap_or_default().to_string();
    assert!(error.starts_with("netpair: error:") && error.ends_with("connection refused"), "{out}");
    assert!(error.contains(&format!("127.0.0.1:{port}")), "the error names the address{out}");
}

#[test]
fn unix_client_without_a_server_exits_1() {
    let dir = temp_dir();
    let path = dir.path().join("nobody.sock");
    for proto in [Proto::Unix, Proto::Unixgram] {
        let out =
            run(netpair(&["--proto", proto.name(), "--path", path.to_str().unwrap_or_default(), "client"]), b"hi\n");
        assert_eq!(out.code, Some(1), "{out}");
        let expected = format!(
            "netpair: error: cannot connect to {} {}: no such file or directory\n",
            proto.name(),
            path.display()
        );
        assert_eq!(out.stderr(), expected, "{out}");
    }
}

/// Parses every stdout line as JSON and checks the fields every event has.
fn json_lines(out: &Output) -> Vec<Value> {
    let events: Vec<Value> = out
        .stdout()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}{out}")))
        .collect();
    for event in &events {
        assert!(event["ts"].is_f64() && event["event"].is_string() && event["proto"].is_string(), "{event}");
    }
    events
}

fn names(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["event"].as_str().unwrap_or_default()).collect()
}

fn json_events_parse(proto: Proto) {
    let server = Server::start(proto, &["--json"]);
    let client = server.client(b"hi\n\xff\xfeok\n", &["--json"]);
    assert_ok(&client);
    let events = json_lines(&client);
    assert!(events.iter().all(|e| e["proto"] == proto.name()), "{client}");
    assert_eq!(names(&events), ["reply", "reply", "summary"], "{client}");
    assert_eq!(events[0]["seq"], 1, "{client}");
    assert_eq!(events[0]["reply"], "HI", "{client}");
    assert!(events[0]["rtt_ms"].is_f64(), "{client}");
    assert_eq!(events[1]["reply_hex"], "fffe4f4b", "invalid UTF-8 comes exact as hex{client}");
    assert_eq!(events[1]["reply"], "\u{fffd}\u{fffd}OK", "{client}");
    let summary = &events[2];
    assert_eq!([&summary["sent"], &summary["received"], &summary["lost"], &summary["late"]], [2, 2, 0, 0], "{client}");

    if proto.is_stream() {
        server.wait_for("\"disconnect\"");
    }
    let address = server.address.clone();
    let out = server.stop();
    assert_ok(&out);
    assert_eq!(out.stderr(), "", "{out}");
    let events = json_lines(&out);
    let mut expected = vec!["listening", "connect", "message", "reply", "message", "reply"];
    if proto.is_stream() {
        expected.push("disconnect");
    }
    expected.push("summary");
    assert_eq!(names(&events), expected, "{out}");
    assert_eq!(events[0]["address"], address.as_str(), "{out}");
    let peer = &events[1]["peer"];
    assert!(peer.is_string(), "{out}");
    assert!(events[2..events.len() - 1].iter().all(|e| &e["peer"] == peer), "every event names the peer{out}");
    assert_eq!([&events[2]["message"], &events[2]["upper"]], ["hi", "HI"], "{out}");
    assert_eq!([&events[4]["message_hex"], &events[4]["upper_hex"]], ["fffe6f6b", "fffe4f4b"], "{out}");
    assert_eq!(events[5]["reply_hex"], "fffe4f4b", "{out}");
    if proto.is_stream() {
        assert_eq!(events[6]["reason"], "closed", "{out}");
    }
    let summary = &events[events.len() - 1];
    assert_eq!([&summary["clients"], &summary["messages"]], [1, 2], "{out}");
}

fn reply_echo(proto: Proto) {
    let server = Server::start(proto, &["--reply", "echo"]);
    let client = server.client(b"Hello Echo\n", &[]);
    assert_ok(&client);
    assert_eq!(client.stdout(), received(&["Hello Echo"]), "{client}");
    let out = stop_cleanly(server, 1, 1);
    assert!(out.stdout().contains("from connected user: Hello Echo\nReceived from User: HELLO ECHO\n"), "{out}");
}

/// `netpair client | head -1`: the reader goes away, the client ends quietly.
#[test]
fn a_closed_stdout_ends_the_client_quietly() {
    let server = Server::start(Proto::Tcp, &[]);
    let dir = temp_dir();
    let input = dir.path().join("lines.txt");
    // Far more replies than a pipe holds, so the client must notice that nobody reads them.
    let lines: String = (0..5000).map(|i| format!("line {i}\n")).collect();
    std::fs::write(&input, lines).expect("writing the input file");
    let mut shell = std::process::Command::new("sh");
    shell.args(["-c", "{ \"$@\"; echo \"exit $?\" >&2; } | head -n 1", "sh"]).arg(env!("CARGO_BIN_EXE_netpair"));
    shell.args(server.target()).arg("client");
    let out = run_with_file(shell, &input);
    assert_eq!(out.stdout(), "Received from server: LINE 0\n", "{out}");
    let stderr = out.stderr();
    assert!(stderr.ends_with("exit 0\n"), "{out}");
    for noise in ["error", "warning", "panicked", "roken pipe"] {
        assert!(!stderr.contains(noise), "{noise:?} on stderr{out}");
    }
    // And the server saw an ordinary goodbye.
    server.wait_for("Disconnected: ");
}

#[test]
fn a_stale_socket_file_is_replaced() {
    for proto in [Proto::Unix, Proto::Unixgram] {
        let dir = temp_dir();
        let path = dir.path().join("stale.sock");
        // A socket file whose owner is gone, as a killed server leaves it.
        match proto {
            Proto::Unix => drop(UnixListener::bind(&path).expect("binding")),
            _ => drop(UnixDatagram::bind(&path).expect("binding")),
        }
        assert!(path.exists());
        let server = Server::start_at(proto, &path, &[]);
        let client = server.client(b"fresh\n", &[]);
        assert_ok(&client);
        assert_eq!(client.stdout(), received(&["FRESH"]), "{client}");
    }
}

#[test]
fn a_live_socket_is_never_stolen() {
    for proto in [Proto::Unix, Proto::Unixgram] {
        let server = Server::start(proto, &[]);
        let second = run(netpair(&["--proto", proto.name(), "--path", &server.address, "server"]), b"");
        assert_eq!(second.code, Some(1), "{second}");
        assert_eq!(second.stdout(), "", "{second}");
        let error = format!("netpair: error: cannot listen on {} {}: ", proto.name(), server.address);
        assert!(second.stderr().starts_with(&error), "{second}");
        assert_eq!(second.stderr().lines().count(), 1, "{second}");

        let client = server.client(b"still mine\n", &[]);
        assert_ok(&client);
        assert_eq!(client.stdout(), received(&["STILL MINE"]), "{client}");
    }
}
