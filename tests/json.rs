//! `--json` a script can trust, on the real binary: in every failure mode each stdout line is a JSON
//! object, the first carries `version`, per-line problems are `warning`s and fatal ones `error`s, a
//! reply nobody asked for is an `unexpected` event (exit status 3), and every event and field seen
//! is in the README's table.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use common::{DEADLINE, Output, Process, Proto, Server, free_port, netpair, run};
use serde_json::Value;

/// Every line of stdout parsed (failing the test on any that is not a JSON object with the common
/// fields); the first, and only the first, has netpair's version.
fn parsed(out: &Output) -> Vec<Value> {
    let stdout = out.stdout();
    let events: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}{out}")))
        .collect();
    for (n, event) in events.iter().enumerate() {
        assert!(event.is_object(), "{event}{out}");
        for key in ["ts", "event", "proto"] {
            assert!(event.get(key).is_some(), "no {key}: {event}{out}");
        }
        let version = event.get("version");
        if n == 0 {
            assert_eq!(version.and_then(Value::as_str), Some(env!("CARGO_PKG_VERSION")), "{out}");
        } else {
            assert!(version.is_none(), "version only in the first event: {event}{out}");
        }
    }
    events
}

fn names(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["event"].as_str().unwrap_or("?")).collect()
}

/// The README's event table: each event's name with the fields its rows name.
fn documented() -> Vec<(String, BTreeSet<String>)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let table = readme.split_once("| event | written by |").expect("the README's event table").1;
    table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let name = cells.first()?.trim_start_matches("| ").trim_matches('`').to_string();
            let fields = cells.get(2)?.split('`').skip(1).step_by(2).map(str::to_string).collect();
            Some((name, fields))
        })
        .collect()
}

/// Every event and key of `events` has its row and field in the README (a `KEY_hex` goes with `KEY`).
fn assert_documented(events: &[Value]) {
    let table = documented();
    assert!(table.len() >= 12 && table.iter().all(|(_, fields)| !fields.is_empty()), "the table as read: {table:?}");
    for event in events {
        let name = event["event"].as_str().unwrap_or_default();
        let rows: Vec<&BTreeSet<String>> = table.iter().filter(|(n, _)| n == name).map(|(_, f)| f).collect();
        assert!(!rows.is_empty(), "event {name} is not in the README's table");
        for key in event.as_object().into_iter().flat_map(|o| o.keys()) {
            let key = key.strip_suffix("_hex").unwrap_or(key);
            let common = ["ts", "event", "proto", "version"].contains(&key);
            assert!(common || rows.iter().any(|f| f.contains(key)), "{name}.{key} is not in the README's table");
        }
    }
}

fn client_json(server: &Server, input: &[u8], args: &[&str]) -> Output {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    server.client(input, &all)
}

#[test]
fn every_failure_is_json_and_fatal_ones_are_the_last_event() {
    let mut seen = Vec::new();

    // Refused, and a host name that does not resolve: one error event.
    let port = free_port().to_string();
    for (args, says) in [
        (vec!["client", "--json", "--port", &port], "refused"),
        (vec!["client", "--json", "--host", "no-such-host.invalid"], "no-such-host.invalid"),
    ] {
        let out = run(netpair(&args), b"hi\n");
        assert_eq!(out.code, Some(1), "{out}");
        let events = parsed(&out);
        assert_eq!(names(&events), ["error"], "{out}");
        assert!(events[0]["error"].as_str().is_some_and(|e| e.contains(says)), "{out}");
        seen.extend(events);
    }

    // A timeout: the server owes a reply it never gets typed.
    let server = Server::start(Proto::Tcp, &["--reply", "stdin"]);
    let out = client_json(&server, b"hi\nq\n", &["--timeout", "200ms"]);
    assert_eq!(out.code, Some(3), "{out}");
    let events = parsed(&out);
    assert_eq!(names(&events), ["timeout", "summary"], "{out}");
    assert_eq!((events[0]["seq"].as_u64(), events[1]["lost"].as_u64()), (Some(1), Some(1)), "{out}");
    seen.extend(events);
    server.stop();

    // A line too long to send: a warning, and the conversation goes on.
    let server = Server::start(Proto::Udp, &[]);
    let out = client_json(&server, b"far too long a line\nhi\n", &["--max-message", "5"]);
    assert_eq!(out.code, Some(3), "{out}");
    let events = parsed(&out);
    assert_eq!(names(&events), ["warning", "reply", "summary"], "{out}");
    assert_eq!(events[0]["line"], 1, "{out}");
    assert_eq!((events[1]["reply"].as_str(), events[2]["not_sent"].as_u64()), (Some("HI"), Some(1)), "{out}");
    seen.extend(events);
    let out = server.stop();
    assert_eq!(out.code, Some(0), "{out}");

    // A full server: the client is turned away, an error and nothing else.
    let server = Server::start(Proto::Tcp, &["--max-clients", "1"]);
    let mut first = Process::spawn(server.client_command(&[]), Stdio::piped());
    first.feed(b"first\n");
    first.wait_for("FIRST");
    let out = client_json(&server, b"hello\nq\n", &[]);
    assert_eq!(out.code, Some(1), "{out}");
    let events = parsed(&out);
    assert_eq!(names(&events), ["error"], "{out}");
    assert!(events[0]["error"].as_str().is_some_and(|e| e.contains("server full")), "{out}");
    seen.extend(events);
    first.feed(b"q\n");
    assert_eq!(first.wait().code, Some(0));
    server.stop();

    assert_documented(&seen);
}

#[test]
fn the_servers_events_are_json_from_listening_to_summary_or_error() {
    let server = Server::start(Proto::Tcp, &["--json"]);
    let reply = server.client(b"hi\xff\nq\n", &[]);
    assert_eq!(reply.code, Some(0), "{reply}");
    let out = server.stop();
    assert_eq!(out.code, Some(0), "{out}");
    let events = parsed(&out);
    assert_eq!(names(&events), ["listening", "connect", "message", "reply", "disconnect", "summary"], "{out}");
    assert_eq!(events[2]["message_hex"], "6869ff", "{out}");
    assert_documented(&events);

    // Another server on the same address cannot listen: its one event is the error.
    let server = Server::start(Proto::Tcp, &[]);
    let port = server.port().to_string();
    let out = run(netpair(&["server", "--json", "--port", &port]), b"");
    assert_eq!(out.code, Some(1), "{out}");
    let events = parsed(&out);
    assert_eq!(names(&events), ["error"], "{out}");
    assert!(events[0]["error"].as_str().is_some_and(|e| e.starts_with("cannot listen")), "{out}");
    server.stop();
}

/// A server that answers the first line with its uppercase and then a line nobody asked for, in one
/// write, and closes: the client sees the extra line while no message waits.
fn chatty_server() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        reader.read_line(&mut line).expect("a line");
        let mut stream = stream;
        stream.write_all(format!("{}extra\n", line.to_uppercase()).as_bytes()).expect("write");
        // Until the client closes.
        let _ = reader.read_line(&mut line);
    });
    (port, handle)
}

#[test]
fn a_reply_nobody_asked_for_is_an_event_and_fails_the_run() {
    let (port, server) = chatty_server();
    let port = port.to_string();
    let out = run(netpair(&["client", "--json", "--port", &port]), b"hi\n");
    assert_eq!(out.code, Some(3), "{out}");
    let events = parsed(&out);
    assert_eq!(names(&events), ["reply", "unexpected", "summary"], "{out}");
    assert_eq!(events[1]["reply"], "extra", "{out}");
    assert_eq!(events[2]["unexpected"], 1, "{out}");
    assert_documented(&events);
    server.join().expect("the test's server");

    // In text, a note on stderr and the count in the summary.
    let (port, server) = chatty_server();
    let port = port.to_string();
    let out = run(netpair(&["client", "--port", &port]), b"hi\n");
    assert_eq!(out.code, Some(3), "{out}");
    let stderr = out.stderr();
    assert!(stderr.contains("netpair: unexpected reply (no message was waiting for one): extra"), "{out}");
    assert!(stderr.contains(", unexpected 1;"), "{out}");
    server.join().expect("the test's server");
}
