//! `netpair bench`: small runs over every transport, against its own in-process server and against
//! a separately started `netpair server`, with every reply checked and counted.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Output, Process, Proto, Server, netpair, run};
use serde_json::Value;

/// Runs `netpair ARGS` and parses its `--json` document.
fn bench_json(args: &[String]) -> (Output, Value) {
    let mut command = netpair(&[]);
    command.args(args).arg("--json");
    let out = run(command, b"");
    let doc = serde_json::from_str(out.stdout().trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}{out}"));
    (out, doc)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn num(result: &Value, key: &str) -> f64 {
    result[key].as_f64().unwrap_or_else(|| panic!("no number {key:?} in {result}"))
}

/// Every figure a clean run must show: all replies right, none lost, and numbers that make sense.
fn assert_clean(result: &Value, round_trips: f64, with_server_cpu: bool, out: &Output) {
    assert_eq!(num(result, "round_trips"), round_trips, "{result}{out}");
    // Warm-up messages are sent but not counted as round trips.
    assert!(num(result, "sent") >= round_trips, "{result}{out}");
    for key in ["lost", "late", "wrong", "failed_clients"] {
        assert_eq!(num(result, key), 0.0, "{key} in {result}{out}");
    }
    let latency: Vec<f64> =
        ["min", "p50", "p90", "p99", "p999", "max"].iter().map(|q| num(result, &format!("rtt_{q}_us"))).collect();
    assert!(latency[0] > 0.0, "{result}");
    assert!(latency.windows(2).all(|w| w[0] <= w[1]), "percentiles out of order: {latency:?}");
    assert!(latency[5] < 1_000_000.0, "a round trip over the 1 s timeout was timed: {result}");
    assert!(num(result, "elapsed_s") > 0.0 && num(result, "round_trips_per_s") > 0.0, "{result}");
    let expected_mb = num(result, "round_trips_per_s") * 64.0 / 1e6;
    assert!((num(result, "mb_per_s") - expected_mb).abs() < 1e-3, "{result}");
    assert!(num(result, "client_cpu_s") > 0.0, "{result}");
    if with_server_cpu {
        assert!(num(result, "server_cpu_s") > 0.0, "{result}");
        assert!(num(result, "round_trips_per_server_cpu_s") > 0.0, "{result}");
        assert!(num(result, "round_trips_per_cpu_s") > 0.0, "{result}");
    } else {
        assert!(result.get("server_cpu_s").is_none(), "{result}");
    }
}

#[test]
fn every_transport_against_the_in_process_server() {
    let (out, doc) = bench_json(&strings(&[
        "--proto",
        "tcp,udp,unix,unixgram,seqpacket",
        "bench",
        "--clients",
        "3",
        "--messages",
        "200",
        "--window",
        "2",
        "--warmup",
        "0",
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(doc["settings"]["clients"], 3, "{doc}");
    assert_eq!(doc["settings"]["server"], "in-process", "{doc}");
    for proto in Proto::ALL {
        assert_clean(&doc["results"][proto.name()], 600.0, true, &out);
        assert_eq!(num(&doc["results"][proto.name()], "sent"), 600.0, "{doc}");
    }
}

#[test]
fn a_table_with_one_column_per_transport() {
    let out = run(netpair(&["--proto", "tcp,udp", "bench", "--messages", "50", "--warmup", "0"]), b"");
    assert_eq!(out.code, Some(0), "{out}");
    let text = out.stdout();
    let header = text.lines().find(|l| l.contains("| ")).unwrap_or_else(|| panic!("no table{out}"));
    assert!(header.contains("tcp") && header.contains("udp"), "{out}");
    for row in ["round trips/s", "round trip p50", "round trip p99.9", "lost", "wrong replies", "server CPU"] {
        assert!(text.contains(row), "no {row:?} row{out}");
    }
    assert!(out.stderr().is_empty(), "stderr is not a terminal: no progress line expected{out}");
}

#[test]
fn duration_and_open_loop_rate() {
    let (out, doc) = bench_json(&strings(&[
        "--proto",
        "udp",
        "bench",
        "--clients",
        "2",
        "--duration",
        "400ms",
        "--rate",
        "1000",
        "--warmup",
        "100ms",
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    let result = &doc["results"]["udp"];
    // 1000/s for 0.4 s: 400 messages scheduled, give or take one at either edge; a stall of this
    // busy machine may leave a few not sent on time, but every one sent gets its reply.
    let scheduled = num(result, "scheduled");
    assert!((398.0..=402.0).contains(&scheduled), "{result}{out}");
    let not_sent = num(result, "not_sent_on_time");
    assert!(not_sent <= 20.0, "{result}{out}");
    assert_clean(result, scheduled - not_sent, true, &out);
    assert_eq!(num(result, "rate_achieved"), 1000.0 * (scheduled - not_sent) / scheduled, "{result}");
}

#[test]
fn a_rate_out_of_reach_ends_with_the_run_and_says_so() {
    // A million messages a second from one ping-pong client: far more than any machine replies to.
    let started = Instant::now();
    let (out, doc) = bench_json(&strings(&["bench", "--rate", "1000000", "--duration", "1s"]));
    let took = started.elapsed();
    // 0.5 s warm-up, 1 s measured, at most the 1 s reply timeout for what is in flight; generous
    // for a busy machine, but far from the minutes the whole schedule would take.
    assert!(took < Duration::from_secs(15), "took {took:?}{out}");
    assert_eq!(out.code, Some(0), "a rate not kept is no lost reply{out}");
    let result = &doc["results"]["tcp"];
    let (scheduled, not_sent) = (num(result, "scheduled"), num(result, "not_sent_on_time"));
    assert!((999_000.0..=1_001_000.0).contains(&scheduled), "{result}{out}");
    assert!(not_sent > 0.0 && not_sent < scheduled, "{result}{out}");
    // Every message sent on time got its reply, and nothing else was measured.
    assert_clean(result, scheduled - not_sent, true, &out);
    let achieved = num(result, "rate_achieved");
    assert!(achieved < 1_000_000.0 && achieved > 0.0, "{result}{out}");

    // The table says so too, in a row and in words.
    let out = run(netpair(&["bench", "--rate", "1000000", "--duration", "300ms", "--warmup", "0"]), b"");
    assert_eq!(out.code, Some(0), "{out}");
    let row = out.stdout().lines().find(|l| l.starts_with("not sent on time")).map(str::to_string);
    let row = row.unwrap_or_else(|| panic!("no `not sent on time` row{out}"));
    assert!(row.trim_end().ends_with("of 300,000"), "{row}{out}");
    assert!(out.stdout().contains("tcp did not keep the rate asked"), "{out}");
}

#[test]
fn many_clients_connect_in_batches() {
    let (out, doc) = bench_json(&strings(&["bench", "--clients", "300", "--messages", "5", "--warmup", "0"]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_clean(&doc["results"]["tcp"], 1500.0, true, &out);
}

#[test]
fn connect_loads_a_running_server() {
    for proto in [Proto::Tcp, Proto::Udp, Proto::Unixgram] {
        let server = Server::start(proto, &[]);
        let mut args = server.target();
        args.extend(strings(&["bench", "--connect", "--clients", "2", "--messages", "100", "--warmup", "0"]));
        let (out, doc) = bench_json(&args);
        assert_eq!(out.code, Some(0), "{out}");
        assert_eq!(doc["settings"]["server"], "connect", "{doc}");
        assert_clean(&doc["results"][proto.name()], 200.0, false, &out);
        let served = server.stop();
        assert!(served.stderr().contains("200 messages"), "the server did not see the bench's messages{served}");
    }
}

#[test]
fn replies_that_are_not_the_uppercase_are_counted_wrong() {
    for proto in [Proto::Tcp, Proto::Udp] {
        let server = Server::start(proto, &["--reply", "echo"]);
        let mut args = server.target();
        args.extend(strings(&["bench", "--connect", "--clients", "2", "--messages", "50", "--warmup", "0"]));
        let (out, doc) = bench_json(&args);
        assert_eq!(out.code, Some(3), "wrong replies must fail the run{out}");
        let result = &doc["results"][proto.name()];
        assert_eq!(num(result, "wrong"), 100.0, "{result}{out}");
        assert_eq!(num(result, "round_trips"), 0.0, "{result}{out}");
        assert_eq!(num(result, "lost"), 0.0, "{result}{out}");
        server.stop();
    }
}

#[test]
fn unanswered_messages_are_counted_lost() {
    // A server that replies only with lines typed on its stdin, and none come.
    for proto in [Proto::Tcp, Proto::Udp] {
        let server = Server::start(proto, &["--reply", "stdin"]);
        let mut args = server.target();
        args.extend(strings(&["bench", "--connect", "--messages", "2", "--window", "2", "--warmup", "0"]));
        let (out, doc) = bench_json(&args);
        assert_eq!(out.code, Some(3), "{out}");
        let result = &doc["results"][proto.name()];
        assert_eq!(num(result, "lost"), 2.0, "{result}{out}");
        assert_eq!(num(result, "round_trips"), 0.0, "{result}{out}");
        drop(server);
    }
}

#[test]
fn no_server_to_connect_to() {
    let port = common::free_port().to_string();
    let out = run(netpair(&["--port", &port, "bench", "--connect", "--messages", "5"]), b"");
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr().contains("cannot connect") && out.stderr().contains(&port), "{out}");
}

#[test]
fn flags_that_do_not_fit() {
    for args in [
        &["bench", "--size", "4"][..],
        &["bench", "--clients", "0"],
        &["bench", "--messages", "5", "--duration", "1s"],
        &["bench", "--rate", "0"],
        &["--proto", "unix", "bench", "--connect"],
        &["--proto", "unix,unixgram", "--path", "/tmp/x.sock", "bench", "--connect"],
        &["--proto", "udp", "bench", "--size", "70000"],
        &["bench", "--rate", "1e-300"],
        &["bench", "--rate", "1e10"],
        &["bench", "--connect-timeout", "0"],
        &["bench", "--reconnect", "--window", "2"],
        &["bench", "--window", "1000000"],
        &["bench", "--duration", "99999999h"],
    ] {
        let out = run(netpair(args), b"");
        assert_eq!(out.code, Some(2), "{out}");
        assert!(out.stdout().is_empty(), "{out}");
    }
}

#[test]
fn a_line_with_no_end_in_sight_is_one_wrong_reply() {
    use std::io::{BufRead, BufReader, Read, Write};
    // A server that answers the one message with 300 KiB and no line end, then holds on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port().to_string();
    // Not joined: if the bench never connects, the test fails on the bench's own output instead.
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accepting the bench's client");
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("a read timeout");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).expect("reading the message");
        let mut stream = reader.into_inner();
        stream.write_all(&vec![b'X'; 300 * 1024]).expect("writing the reply");
        // Until the bench closes its end (or the timeout).
        let _ = stream.read_to_end(&mut Vec::new());
    });
    let (out, doc) = bench_json(&strings(&[
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "bench",
        "--connect",
        "--messages",
        "1",
        "--warmup",
        "0",
    ]));
    assert_eq!(out.code, Some(3), "{out}");
    let result = &doc["results"]["tcp"];
    // Past the bound (256 KiB) it is one wrong reply; the 44 KiB after it are not a line yet.
    assert_eq!(num(result, "wrong"), 1.0, "{result}{out}");
    assert_eq!(num(result, "lost"), 1.0, "the message's own reply never came{result}{out}");
    assert_eq!(num(result, "failed_clients"), 0.0, "{result}{out}");
}

fn signal(process: &Process, signal: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(process.id() as i32).expect("a pid");
    rustix::process::kill_process(pid, signal).expect("kill");
}

/// `netpair ARGS` started with its own `$TMPDIR`, so that what it leaves there can be seen.
fn bench_in(tmp: &std::path::Path, args: &[String]) -> Process {
    let mut command = netpair(&[]);
    command.args(args).env("TMPDIR", tmp);
    Process::spawn(command, Stdio::null())
}

fn left_in(tmp: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(tmp).expect("reading the test's TMPDIR").map(|e| e.expect("an entry").path()).collect()
}

#[test]
fn a_signal_in_the_warm_up_measures_nothing_and_fails() {
    let server = Server::start(Proto::Tcp, &[]);
    let tmp = common::temp_dir();
    let mut args = server.target();
    args.extend(strings(&["bench", "--connect", "--warmup", "20s", "--duration", "1s"]));
    let bench = bench_in(tmp.path(), &args);
    // The bench's first message in the server's transcript: it is connected, and warming up.
    server.wait_for("from connected user: c0s0.");
    let started = Instant::now();
    signal(&bench, rustix::process::Signal::INT);
    let out = bench.wait();
    assert!(started.elapsed() < Duration::from_secs(10), "{out}");
    assert_eq!(out.code, Some(3), "nothing measured is no success{out}");
    let rows = out.stdout();
    let round_trips = rows.lines().find(|l| l.starts_with("round trips ")).unwrap_or_else(|| panic!("no table{out}"));
    assert_eq!(round_trips.rsplit('|').next().map(str::trim), Some("0"), "{out}");
    assert!(rows.contains("interrupted") && rows.contains("no round trip was measured over tcp"), "{out}");
    assert_eq!(left_in(tmp.path()), Vec::<std::path::PathBuf>::new(), "{out}");
}

#[test]
fn a_signal_while_measuring_reports_what_was_measured() {
    let server = Server::start(Proto::Tcp, &[]);
    let tmp = common::temp_dir();
    let mut args = server.target();
    args.extend(strings(&["bench", "--connect", "--warmup", "0", "--duration", "60s", "--json"]));
    let bench = bench_in(tmp.path(), &args);
    // Ten round trips in (the server has seen message 10), well inside the minute asked for.
    server.wait_for("from connected user: c0s10.");
    let started = Instant::now();
    signal(&bench, rustix::process::Signal::TERM);
    let out = bench.wait();
    assert!(started.elapsed() < Duration::from_secs(10), "{out}");
    assert_eq!(out.code, Some(0), "round trips measured, none lost: success{out}");
    let doc: Value = serde_json::from_str(out.stdout().trim()).unwrap_or_else(|e| panic!("{e}{out}"));
    assert_eq!(doc["interrupted"], true, "{doc}");
    let result = &doc["results"]["tcp"];
    assert!(num(result, "round_trips") >= 10.0, "{result}{out}");
    assert_clean(result, num(result, "round_trips"), false, &out);
    assert_eq!(left_in(tmp.path()), Vec::<std::path::PathBuf>::new(), "{out}");
}

#[test]
fn a_second_signal_stops_at_once_and_leaves_no_files() {
    // A server that never replies: after the first signal the bench waits for its replies (up to
    // the 1 s timeout), and the second comes during that wait. Its Unix datagram clients' own
    // socket files are in the bench's temporary directory.
    let server = Server::start(Proto::Unixgram, &["--reply", "stdin"]);
    let tmp = common::temp_dir();
    let mut args = server.target();
    args.extend(strings(&["bench", "--connect", "--clients", "2", "--warmup", "0", "--duration", "60s"]));
    let bench = bench_in(tmp.path(), &args);
    server.wait_for("from connected user: c1s0.");
    assert!(!left_in(tmp.path()).is_empty(), "the bench's directory should be there while it runs");
    signal(&bench, rustix::process::Signal::HUP);
    signal(&bench, rustix::process::Signal::INT);
    let out = bench.wait();
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stdout().is_empty(), "{out}");
    assert!(out.stderr().contains("interrupted again"), "{out}");
    assert_eq!(left_in(tmp.path()), Vec::<std::path::PathBuf>::new(), "{out}");
}

/// A TCP listener whose accept queue is full (backlog 0, one connection held unaccepted): the
/// kernel drops further SYNs, so a connect to it waits for TCP's retries. Returns the listener and
/// the connection that fills it.
fn full_listener() -> (std::net::TcpListener, Vec<std::net::TcpStream>) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("an address");
    socket.bind(&any.into()).expect("bind");
    socket.listen(0).expect("listen");
    let listener: std::net::TcpListener = socket.into();
    let addr = listener.local_addr().expect("local address");
    let mut held = Vec::new();
    // Connects until one times out: that one's SYN was dropped, so the queue is full.
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => held.push(stream),
            Err(_) => return (listener, held),
        }
    }
    panic!("the accept queue of a listener with backlog 0 never filled");
}

#[test]
fn a_connect_past_the_connect_timeout_fails_with_its_reason() {
    let (listener, _held) = full_listener();
    let port = listener.local_addr().expect("local address").port().to_string();
    let started = Instant::now();
    let out =
        run(netpair(&["--port", &port, "bench", "--connect", "--connect-timeout", "500ms", "--messages", "1"]), b"");
    let took = started.elapsed();
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr().contains("client 0 cannot connect to tcp") && out.stderr().contains(&port), "{out}");
    assert!(out.stderr().contains("not connected within --connect-timeout 500 ms"), "{out}");
    assert!(took >= Duration::from_millis(500) && took < Duration::from_secs(8), "took {took:?}{out}");
}

#[test]
fn a_connect_slower_than_the_reply_timeout_is_still_a_connect() {
    use std::io::{BufRead, BufReader, Write};
    let (listener, held) = full_listener();
    let port = listener.local_addr().expect("local address").port().to_string();
    // The queue frees up after 1.5 s, so the bench's SYN, dropped at first, gets through on one of
    // TCP's retries: a connect of 2 s or so, past the 1 s reply timeout but well within the default
    // --connect-timeout (10 s). Then an uppercasing server.
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        drop(held);
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(30))).expect("a read timeout");
                let mut writer = stream.try_clone().expect("a second handle");
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if writer.write_all(format!("{}\n", line.to_uppercase()).as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let started = Instant::now();
    let (out, doc) =
        bench_json(&strings(&["--port", &port, "bench", "--connect", "--messages", "20", "--warmup", "0"]));
    let took = started.elapsed();
    assert_eq!(out.code, Some(0), "{out}");
    // The queue freed up 1.5 s after the thread started, which was before this bench started.
    assert!(took > Duration::from_secs(1), "the connect was not slower than the reply timeout: {took:?}{out}");
    assert_clean(&doc["results"]["tcp"], 20.0, false, &out);
}

#[test]
fn reconnect_opens_a_connection_for_every_message() {
    let (out, doc) = bench_json(&strings(&[
        "--proto",
        "tcp,udp,unix,unixgram,seqpacket",
        "bench",
        "--reconnect",
        "--clients",
        "2",
        "--messages",
        "50",
        "--warmup",
        "0",
    ]));
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(doc["settings"]["reconnect"], true, "{doc}");
    for proto in Proto::ALL {
        let result = &doc["results"][proto.name()];
        assert_clean(result, 100.0, true, &out);
        assert_eq!(num(result, "connections"), 100.0, "{result}{out}");
        assert!(num(result, "connections_per_s") > 0.0, "{result}{out}");
        assert!(num(result, "connections_per_server_cpu_s") > 0.0, "{result}{out}");
    }
}

#[test]
fn reconnect_against_a_running_server_is_one_client_per_message() {
    let server = Server::start(Proto::Tcp, &[]);
    let mut args = server.target();
    args.extend(strings(&["bench", "--connect", "--reconnect", "--clients", "2", "--messages", "50", "--warmup", "0"]));
    let (out, doc) = bench_json(&args);
    assert_eq!(out.code, Some(0), "{out}");
    let result = &doc["results"]["tcp"];
    assert_clean(result, 100.0, false, &out);
    assert!(result.get("connections_per_server_cpu_s").is_none(), "no server clock over --connect{result}");
    let served = server.stop();
    // The two connections that showed the server was there, then one per message.
    assert_eq!(common::served(&served.stderr()), Some((102, 100)), "{served}");
}

#[test]
fn reconnect_says_what_its_latency_includes() {
    let out = run(netpair(&["--proto", "tcp,udp", "bench", "--reconnect", "--messages", "20", "--warmup", "0"]), b"");
    assert_eq!(out.code, Some(0), "{out}");
    let text = out.stdout();
    assert!(text.contains("a new connection per message (--reconnect)"), "{out}");
    for row in ["connections/s", "connections per server CPU-s", "round trip p50"] {
        assert!(text.lines().any(|l| l.starts_with(row)), "no {row:?} row{out}");
    }
    assert!(text.contains("counts from when its connect began") && text.contains("the handshake"), "{out}");
}
