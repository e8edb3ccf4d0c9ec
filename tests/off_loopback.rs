//! What a server must do once it is reachable at more than one address or over more than one kind:
//! replies that leave from the address the request came to, one server for several transports, and
//! the datagram limit of each address family. (Two real hosts: `tests/lab.rs` and `scripts/`.)

mod common;

use std::process::Stdio;

use common::{Process, netpair, run};

/// Starts `netpair ARGS server` and returns it with its `Listening on` lines.
fn server(args: &[&str], listening: usize) -> (Process, Vec<String>) {
    let mut command = netpair(args);
    command.arg("server");
    let process = Process::spawn(command, Stdio::piped());
    let deadline = std::time::Instant::now() + common::DEADLINE;
    loop {
        let lines: Vec<String> = process.stdout().lines().map(str::to_string).collect();
        if lines.len() >= listening {
            return (process, lines[..listening].to_vec());
        }
        assert!(std::time::Instant::now() < deadline, "{listening} listening lines never came: {lines:?}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn port_of(line: &str) -> String {
    line.rsplit(':').next().expect("a port").to_string()
}

#[test]
fn a_udp_server_on_every_address_replies_from_the_one_asked() {
    // A client's connected socket takes replies from the address it sent to, and no other.
    for (any, clients) in [("0.0.0.0", &["127.0.0.2", "127.0.0.1"][..]), ("::", &["::1", "127.0.0.2"][..])] {
        let (process, lines) = server(&["--proto", "udp", "--host", any, "--port", "0"], 1);
        let port = port_of(&lines[0]);
        for client in clients {
            let out = run(netpair(&["--proto", "udp", "--host", client, "--port", &port, "client"]), b"hello\nq\n");
            assert_eq!(out.code, Some(0), "{any} server, client to {client}{out}");
            assert_eq!(out.stdout(), "Received from server: HELLO\n", "{out}");
        }
        let out = process.stop();
        assert_eq!(common::served(&out.stderr()), Some((clients.len(), clients.len())), "{out}");
    }
}

#[test]
fn one_server_serves_tcp_and_udp_on_one_port() {
    let (process, lines) = server(&["--proto", "tcp,udp", "--port", "0"], 2);
    assert!(lines[0].starts_with("Listening on tcp 127.0.0.1:"), "{lines:?}");
    assert!(lines[1].starts_with("Listening on udp 127.0.0.1:"), "{lines:?}");
    let port = port_of(&lines[0]);
    assert_eq!(port, port_of(&lines[1]), "TCP and UDP share the port: {lines:?}");
    for proto in ["tcp", "udp"] {
        let out = run(netpair(&["--proto", proto, "--port", &port, "client"]), format!("via {proto}\nq\n").as_bytes());
        assert_eq!(out.stdout(), format!("Received from server: VIA {}\n", proto.to_uppercase()), "{out}");
    }
    let out = process.stop();
    let transcript = out.stdout();
    // Each line says which kind its peer came over.
    assert!(transcript.lines().any(|l| l.starts_with("Connection from: tcp 127.0.0.1:")), "{out}");
    assert!(transcript.lines().any(|l| l.starts_with("Connection from: udp 127.0.0.1:")), "{out}");
    assert!(
        transcript.lines().any(|l| l.starts_with("[tcp 127.0.0.1:") && l.ends_with("] from connected user: via tcp")),
        "{out}"
    );
    assert!(
        transcript.lines().any(|l| l.starts_with("[udp 127.0.0.1:") && l.ends_with("] Received from User: VIA UDP")),
        "{out}"
    );
    assert_eq!(common::served(&out.stderr()), Some((2, 2)), "{out}");
}

#[test]
fn json_events_carry_the_kind_of_their_peer() {
    let (process, lines) = server(&["--proto", "udp,tcp", "--port", "0", "--json"], 2);
    let port =
        lines[0].split("\"address\":\"").nth(1).and_then(|a| a.split('"').next()).map(port_of).expect("an address");
    for proto in ["tcp", "udp"] {
        run(netpair(&["--proto", proto, "--port", &port, "client"]), b"x\nq\n");
    }
    let out = process.stop();
    let events: Vec<serde_json::Value> = out.stdout().lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    for proto in ["tcp", "udp"] {
        for kind in ["listening", "connect", "message", "reply"] {
            assert!(events.iter().any(|e| e["event"] == kind && e["proto"] == proto), "no {kind} over {proto}{out}");
        }
    }
}

#[test]
fn one_server_serves_both_unix_kinds_with_a_path_each() {
    let dir = common::temp_dir();
    let (stream, gram) = (dir.path().join("s.sock"), dir.path().join("g.sock"));
    let paths = format!("{},{}", stream.display(), gram.display());
    let (process, lines) = server(&["--proto", "unix,unixgram", "--path", &paths], 2);
    assert_eq!(
        lines,
        [format!("Listening on unix {}", stream.display()), format!("Listening on unixgram {}", gram.display())]
    );
    for (proto, path) in [("unix", &stream), ("unixgram", &gram)] {
        let path = path.to_str().expect("UTF-8");
        let out = run(netpair(&["--proto", proto, "--path", path, "client"]), b"hi\nq\n");
        assert_eq!(out.stdout(), "Received from server: HI\n", "{out}");
    }
    process.stop();
    assert!(!stream.exists() && !gram.exists(), "both socket files removed");
    // One path for two Unix kinds is a usage error that says what is needed.
    let out = run(netpair(&["--proto", "unix,unixgram", "--path", "/tmp/x.sock", "server"]), b"");
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr().contains("--path takes as many socket files"), "{out}");
}

#[test]
fn a_udp_datagram_carries_more_over_ipv6() {
    let (process, lines) = server(&["--proto", "udp", "--host", "::1", "--port", "0"], 1);
    let port = port_of(&lines[0]);
    let client = |size: usize| {
        let mut input = vec![b'x'; size];
        input.extend_from_slice(b"\nq\n");
        run(netpair(&["--proto", "udp", "--host", "::1", "--port", &port, "client"]), &input)
    };
    let out = client(65_527);
    assert_eq!(out.code, Some(0), "65,527 bytes cross IPv6{}", out.stderr());
    assert_eq!(out.stdout().len(), "Received from server: \n".len() + 65_527);
    let out = client(65_528);
    assert_eq!(out.code, Some(3), "{}", out.stderr());
    assert!(out.stderr().contains("over the limit of 65,527"), "{}", out.stderr());
    process.stop();
    // Over IPv4 the bound stays 65,507.
    let out = run(netpair(&["--proto", "udp", "--max-message", "65508", "client"]), b"");
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr().contains("largest UDP payload on IPv4 (65,507 bytes)"), "{out}");
}

#[test]
fn the_summaries_carry_the_kernels_account() {
    // A UDP client to a port nobody listens on: the ICMP error, and the host that sent it.
    let port = common::free_port().to_string();
    let out = run(netpair(&["--proto", "udp", "--port", &port, "client"]), b"anyone?\nq\n");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr().contains("icmp: port unreachable from 127.0.0.1"), "{out}");
    let out = run(netpair(&["--proto", "udp", "--port", &port, "client", "--json"]), b"anyone?\nq\n");
    let summary: serde_json::Value = out
        .stdout()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .find(|e| e["event"] == "summary")
        .expect("a summary event");
    assert_eq!(summary["kernel"]["icmp_errors"], "port unreachable from 127.0.0.1", "{out}");
    assert_eq!(summary["kernel"]["receive_buffer_drops"], 0, "{out}");
    // TCP: the connection's own figures, on both sides.
    let (process, lines) = server(&["--port", "0"], 1);
    let port = port_of(&lines[0]);
    let out = run(netpair(&["--port", &port, "client"]), b"hello\nq\n");
    assert!(out.stderr().contains("; kernel: tcp srtt "), "{out}");
    assert!(out.stderr().contains(" retransmitted, 0 lost, mss "), "{out}");
    let out = process.stop();
    assert!(out.stderr().contains("served 1 client, 1 message; kernel: tcp srtt "), "{out}");
}
