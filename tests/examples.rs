//! Every example at the end of a command's `--help` is run as written, in bash, and must succeed.
//! What a test machine needs is added behind the example's back: a free port (the `netpair` on
//! PATH is a wrapper that appends `--port N`, a later flag winning), a temporary directory for
//! `/tmp/np.sock` and `~`, and a running server for the client's and `bench --connect`'s examples.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{Process, Proto, Server, netpair, run};

/// The examples of `netpair COMMAND --help`, as shown: the command lines of its `Examples:` block.
fn examples(command: &str) -> Vec<String> {
    let out = run(netpair(&[command, "--help"]), b"");
    assert_eq!(out.code, Some(0), "{out}");
    let text = out.stdout();
    let block = text.split_once("\nExamples:\n").unwrap_or_else(|| panic!("no examples: {out}")).1;
    let found: Vec<String> = block
        .lines()
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix("  ").filter(|rest| !rest.starts_with(' ')))
        .map(str::to_string)
        .collect();
    assert!((2..=4).contains(&found.len()), "{command}: two to four examples, not {}: {out}", found.len());
    found
}

/// A directory to run examples in: `bin/netpair` (the wrapper), a `lines.txt`, and room for `~`.
struct Place {
    dir: tempfile::TempDir,
}

impl Place {
    fn new() -> Place {
        let dir = common::temp_dir();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        let wrapper = bin.join("netpair");
        std::fs::write(&wrapper, "#!/bin/sh\nexec \"$NETPAIR_BIN\" \"$@\" $NETPAIR_EXTRA\n").expect("write wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(dir.path().join("lines.txt"), "hello\nstraße\n").expect("write lines.txt");
        Place { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn socket(&self) -> String {
        self.path().join("np.sock").to_str().expect("UTF-8 temporary path").to_string()
    }

    /// `bash -c EXAMPLE` here, with the wrapper first on PATH appending `extra`; with `exec`, bash
    /// becomes the example's one command, so that a signal for it reaches netpair itself.
    fn command(&self, example: &str, extra: &str, exec: bool) -> Command {
        let example = example.replace("/tmp/np.sock", &self.socket());
        let path = format!("{}:{}", self.path().join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let mut command = Command::new("bash");
        let script = if exec { format!("exec {example}") } else { example };
        command.args(["--norc", "--noprofile", "-c", &script]);
        command
            .current_dir(self.path())
            .env("PATH", path)
            .env("HOME", self.path())
            .env("MANPAGER", "cat")
            .env("NETPAIR_BIN", env!("CARGO_BIN_EXE_netpair"))
            .env("NETPAIR_EXTRA", extra);
        command
    }

    /// Runs an example that ends by itself; it must exit 0.
    fn run(&self, example: &str, extra: &str) {
        let out = run(self.command(example, extra, false), b"hello\nq\n");
        assert_eq!(out.code, Some(0), "example `{example}` failed:{out}");
    }
}

#[test]
fn server_examples_listen() {
    let place = Place::new();
    for example in examples("server") {
        let process = Process::spawn(place.command(&example, "--port 0", true), Stdio::piped());
        process.wait_for("Listening on");
        let out = process.stop();
        assert_eq!(out.code, Some(0), "example `{example}` failed:{out}");
    }
}

#[test]
fn client_and_bench_examples_talk_to_a_server() {
    let place = Place::new();
    let socket = place.socket();
    let server = Server::start_with(Proto::Tcp, &["--port", "0"], &["--proto", "tcp,udp,unix", "--path", &socket]);
    let port = format!("--port {}", server.port());
    for example in examples("client").into_iter().chain(examples("bench")) {
        place.run(&example, &port);
    }
    server.stop();
}

#[test]
fn compare_completions_and_man_examples_succeed() {
    let place = Place::new();
    for example in examples("compare").into_iter().chain(examples("completions")) {
        place.run(&example, "");
    }
    let has_man = Command::new("sh").args(["-c", "command -v man"]).output().is_ok_and(|o| o.status.success());
    if !has_man {
        assert!(!std::env::var("CI").is_ok_and(|v| v == "true"), "man is needed here (CI=true)");
        eprintln!("skipped the man examples: man is not installed (.ci/run installs man-db)");
        return;
    }
    for example in examples("man") {
        place.run(&example, "");
    }
    assert!(place.path().join(".local/share/man/man1/netpair.1").exists());
}
