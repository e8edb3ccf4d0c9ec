//! The tutorial's own Python programs (kept in `tests/tutorial/`) against netpair with `--framing raw`,
//! and the Python pair's transcript against netpair's pair, byte for byte. Without python3 these tests
//! are ignored, which the summary shows ("N ignored"); under `CI=true` they run and fail instead.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{DEADLINE, Output, Process, Proto, Server, free_port, netpair, run};

/// The tutorial's sample session: what the client types, and what the server's operator types.
const CLIENT_LINES: &[u8] = b"Hello TechBeamers\nYou posts are awesome :)\nq\n";
const SERVER_LINES: &[u8] = b"Hello Dear Reader\nThank you very much. This is what keeps us motivated.\n";

/// The Python client's transcript for that session: its ` ? ` prompts and the replies.
const CLIENT_TRANSCRIPT: &str = " ? Received from server: Hello Dear Reader\n \
    ? Received from server: Thank you very much. This is what keeps us motivated.\n ? ";

/// What the Python server prints per message of that session, after its `Connection from:` line.
const SERVER_MESSAGES: &str = "from connected user: Hello TechBeamers\nReceived from User: HELLO TECHBEAMERS\n \
    ? from connected user: You posts are awesome :)\nReceived from User: YOU POSTS ARE AWESOME :)\n ? ";

/// `python3 tests/tutorial/NAME PORT`: the tutorial's own program, kept in this repository.
fn python(name: &str, port: u16) -> Command {
    let program = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/tutorial").join(name);
    assert!(program.is_file(), "the tutorial's {name} is missing from {}", program.display());
    let found = Command::new("python3").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    // Reached without python3 only under CI=true (see build.rs): there a missing python3 is a failure.
    assert!(found.is_ok_and(|status| status.success()), "python3 is needed to run the tutorial's {name}");
    let mut command = Command::new("python3");
    command.arg(program).arg(port.to_string());
    command
}

/// Starts the Python server on a free port with `replies` on its stdin, and runs `client` (a command
/// for a port) against it, retrying while the server is not listening yet. A port someone else took
/// meanwhile makes the Python server exit; then another port is tried.
fn against_python_server(client: impl Fn(u16) -> Command) -> (Output, Output) {
    for _attempt in 0..5 {
        let port = free_port();
        let mut server = Process::spawn(python("Python-Server.py", port), Stdio::piped());
        server.feed(SERVER_LINES);
        let deadline = Instant::now() + DEADLINE;
        loop {
            let out = run(client(port), CLIENT_LINES);
            let refused = out.code != Some(0) && out.stderr().to_lowercase().contains("refused");
            if !refused {
                return (out, server.wait());
            }
            if server.has_exited() {
                break;
            }
            assert!(Instant::now() < deadline, "the Python server never listened on {port}{out}");
            thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("the Python server could not listen on any of 5 free ports");
}

/// Checks a Python server's stdout: its `Connection from: ('127.0.0.1', N)` line, then `SERVER_MESSAGES`.
fn assert_python_server(out: &Output) {
    assert_eq!(out.code, Some(0), "{out}");
    let stdout = out.stdout();
    let (connection, messages) = stdout.split_once('\n').unwrap_or_default();
    assert!(connection.starts_with("Connection from: ('127.0.0.1', ") && connection.ends_with(')'), "{out}");
    assert_eq!(messages, SERVER_MESSAGES, "{out}");
}

#[test]
#[cfg_attr(not(tutorial_python), ignore = "python3 is not installed (CI=true makes this a failure)")]
fn the_tutorial_client_talks_to_a_netpair_raw_server() {
    let server = Server::start(Proto::Tcp, &["--framing", "raw"]);
    let client = python("Python-Client.py", server.port());
    let client = run(client, CLIENT_LINES);
    assert_eq!(client.code, Some(0), "{client}");
    assert_eq!(
        client.stdout(),
        " ? Received from server: HELLO TECHBEAMERS\n ? Received from server: YOU POSTS ARE AWESOME :)\n ? ",
        "{client}"
    );

    server.wait_for("Disconnected: ");
    let address = server.address.clone();
    let out = server.stop();
    let peer = out.stdout().lines().find_map(|l| l.strip_prefix("Connection from: ")).unwrap_or_default().to_string();
    let expected = format!(
        "Listening on tcp {address}\nConnection from: {peer}\n\
         from connected user: Hello TechBeamers\nReceived from User: HELLO TECHBEAMERS\n\
         from connected user: You posts are awesome :)\nReceived from User: YOU POSTS ARE AWESOME :)\n\
         Disconnected: {peer}\n"
    );
    assert_eq!(out.stdout(), expected, "{out}");
    assert_eq!(out.code, Some(0), "{out}");
}

#[test]
#[cfg_attr(not(tutorial_python), ignore = "python3 is not installed (CI=true makes this a failure)")]
fn the_tutorial_server_talks_to_a_netpair_raw_client() {
    let client = |port: u16| netpair(&["--framing", "raw", "--port", &port.to_string(), "client"]);
    let (client, server) = against_python_server(client);
    assert_eq!(client.code, Some(0), "{client}");
    assert_eq!(
        client.stdout(),
        "Received from server: Hello Dear Reader\n\
         Received from server: Thank you very much. This is what keeps us motivated.\n",
        "{client}"
    );
    assert_python_server(&server);
}

/// The Python pair and netpair's pair, given the tutorial's sample lines, print the same transcripts.
#[test]
#[cfg_attr(not(tutorial_python), ignore = "python3 is not installed (CI=true makes this a failure)")]
fn netpair_repeats_the_python_pair_byte_for_byte() {
    let python_client = |port| python("Python-Client.py", port);
    let (python_client, python_server) = against_python_server(python_client);
    assert_eq!(python_client.code, Some(0), "{python_client}");
    assert_eq!(python_client.stdout(), CLIENT_TRANSCRIPT, "{python_client}");
    assert_python_server(&python_server);

    let mut server =
        Server::start(Proto::Tcp, &["--framing", "raw", "--reply", "stdin", "--prompt", "always", "--once"]);
    server.feed(SERVER_LINES);
    let client = server.client(CLIENT_LINES, &["--framing", "raw", "--prompt", "always"]);
    assert_eq!(client.code, Some(0), "{client}");
    assert_eq!(client.stdout(), python_client.stdout(), "netpair's client differs from the tutorial's{client}");

    // netpair's server says the same per message; it adds `Listening on` and `Disconnected:` lines.
    let out = server.wait();
    assert_eq!(out.code, Some(0), "{out}");
    let stdout = out.stdout();
    let start = stdout.find("from connected user: ").unwrap_or(0);
    let end = stdout.rfind("Disconnected: ").unwrap_or(stdout.len());
    assert_eq!(&stdout[start..end], SERVER_MESSAGES, "netpair's server differs from the tutorial's{out}");
}
