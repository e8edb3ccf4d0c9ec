//! Unix socket names: abstract `@names` for both Unix kinds, datagram clients that need no file of
//! their own (so they work across users and leave nothing behind), and socket files that belong to
//! the server that made them.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

use common::{Process, Proto, Server, netpair, run, temp_dir};

fn unique(what: &str) -> String {
    format!("@netpair-test-{what}-{}", std::process::id())
}

#[test]
fn an_at_name_is_an_abstract_socket_for_both_unix_kinds() {
    let dir = temp_dir();
    for proto in [Proto::Unix, Proto::Unixgram] {
        let name = unique(proto.name());
        let mut command = netpair(&["--proto", proto.name(), "--path", &name, "server"]);
        command.current_dir(dir.path());
        let server = Process::spawn(command, Stdio::piped());
        assert_eq!(server.wait_for("\n"), format!("Listening on {proto} {name}\n"));
        let mut client = netpair(&["--proto", proto.name(), "--path", &name, "client"]);
        client.current_dir(dir.path());
        let out = run(client, b"hello\nq\n");
        assert_eq!((out.code, out.stdout()), (Some(0), "Received from server: HELLO\n".to_string()), "{out}");
        let out = server.stop();
        assert_eq!(out.code, Some(0), "{out}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("the temp dir").collect();
        assert!(left.is_empty(), "{proto}: an abstract name made a file: {left:?}");
    }
}

#[test]
fn a_unixgram_client_of_another_user_gets_its_replies_and_leaves_no_file() {
    // The server runs as `nobody` when this test may arrange it (root): a client's reply socket must
    // then not depend on file permissions between the two users.
    let root = rustix::process::geteuid().is_root();
    let dir = temp_dir();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let path = dir.path().join("server.sock");
    let path = path.to_str().expect("UTF-8");
    let mut command = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups", env!("CARGO_BIN_EXE_netpair")]);
        c
    } else {
        println!("not root: the server runs as this user, so only the no-file half is checked");
        netpair(&[])
    };
    command.args(["--proto", "unixgram", "--path", path, "server"]);
    let server = Process::spawn(command, Stdio::piped());
    server.wait_for("Listening on");
    let client_tmp = temp_dir();
    let mut client = netpair(&["--proto", "unixgram", "--path", path, "client", "--timeout", "5s"]);
    client.env("TMPDIR", client_tmp.path());
    let out = run(client, b"hello\nq\n");
    assert_eq!((out.code, out.stdout()), (Some(0), "Received from server: HELLO\n".to_string()), "{out}");
    let left: Vec<_> = std::fs::read_dir(client_tmp.path()).expect("the client's TMPDIR").collect();
    assert!(left.is_empty(), "the client left files: {left:?}");
    let out = server.stop();
    assert!(!out.stderr().contains("permission denied"), "{out}");
}

#[test]
fn a_stopping_server_leaves_another_servers_socket_file_alone() {
    for proto in [Proto::Unix, Proto::Unixgram] {
        let dir = temp_dir();
        let path = dir.path().join("shared.sock");
        let first = Server::start_at(proto, &path, &[]);
        // Somebody removes the file; a second server takes the path.
        std::fs::remove_file(&path).expect("remove the first server's file");
        let second = Server::start_at(proto, &path, &[]);
        let out = first.stop();
        assert_eq!(out.code, Some(0), "{out}");
        assert!(path.exists(), "{proto}: the first server removed the second one's socket file");
        let client = second.client(b"still there\nq\n", &[]);
        assert_eq!(client.stdout(), "Received from server: STILL THERE\n", "{client}");
        let out = second.stop();
        assert!(!path.exists(), "{proto}: the second server did not remove its own file{out}");
    }
}

#[test]
fn a_live_server_is_found_without_being_connected_to() {
    for proto in [Proto::Unix, Proto::Unixgram] {
        let dir = temp_dir();
        let path = dir.path().join("live.sock");
        let live = Server::start_at(proto, &path, &[]);
        // Frozen, so that nothing it has queued would be answered.
        let pid = rustix::process::Pid::from_raw(live.process.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::STOP).expect("SIGSTOP");
        let second = run(netpair(&["--proto", proto.name(), "--path", path.to_str().expect("UTF-8"), "server"]), b"");
        rustix::process::kill_process(pid, rustix::process::Signal::CONT).expect("SIGCONT");
        assert_eq!(second.code, Some(1), "{second}");
        assert!(second.stderr().contains("another server is listening there"), "{second}");
        assert_eq!(second.stderr().lines().count(), 1, "one line{second}");
        let out = live.stop();
        assert!(!out.stdout().contains("Connection from"), "{proto}: the check showed up as a client{out}");
        assert!(!path.exists(), "{out}");
    }
}
