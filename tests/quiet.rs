//! `-q` and `-qq` on the real binary: `-q` drops the closing summaries (and warnings), `-qq` leaves
//! nothing on stderr but the one line of a fatal error. stdout is the same at every level.

mod common;

use common::{Proto, Server, free_port, netpair, run, served};

/// A conversation with every kind of note: a reply, a line too long to send, and a message the
/// server never answers (it waits for a reply typed on its stdin, and none is).
fn noisy_client(server: &Server, quiet: &[&str]) -> common::Output {
    let mut args = vec!["--max-message", "10", "--timeout", "200ms"];
    args.extend_from_slice(quiet);
    server.client(b"this line is far too long\nhi\nq\n", &args)
}

#[test]
fn the_client_drops_its_summary_with_q_and_every_note_with_qq() {
    let server = Server::start(Proto::Tcp, &["--reply", "stdin"]);
    let out = noisy_client(&server, &[]);
    assert_eq!(out.code, Some(3), "{out}");
    let stderr = out.stderr();
    for note in ["line 1 not sent", "no reply to message 1", "sent 1, received 0, lost 1"] {
        assert!(stderr.contains(note), "{note}: {out}");
    }

    let out = noisy_client(&server, &["-q"]);
    assert_eq!(out.code, Some(3), "{out}");
    let stderr = out.stderr();
    assert!(stderr.contains("line 1 not sent") && stderr.contains("no reply to message 1"), "{out}");
    assert!(!stderr.contains("sent 1,"), "-q keeps no summary: {out}");
    assert_eq!(stderr.lines().count(), 2, "{out}");

    let out = noisy_client(&server, &["-qq"]);
    assert_eq!(out.code, Some(3), "{out}");
    assert_eq!(out.stderr(), "", "{out}");
    server.stop();
}

#[test]
fn the_server_drops_its_summary_with_q() {
    for (quiet, summary) in [(&[][..], true), (&["-q"], false), (&["-qq"], false)] {
        let server = Server::start(Proto::Tcp, quiet);
        let reply = server.client(b"hi\nq\n", &[]);
        assert_eq!(reply.code, Some(0), "{reply}");
        let out = server.stop();
        assert_eq!(out.code, Some(0), "{out}");
        assert_eq!(served(&out.stderr()).is_some(), summary, "{quiet:?}: {out}");
        if !summary {
            assert_eq!(out.stderr(), "", "{quiet:?}: {out}");
        }
        assert!(out.stdout().contains("from connected user: hi"), "stdout is the same: {out}");
    }
}

#[test]
fn qq_leaves_the_fatal_error_alone() {
    // Nobody listening: the client's one line says so, and no summary comes before it.
    let port = free_port().to_string();
    let out = run(netpair(&["client", "--port", &port, "-qq"]), b"hi\n");
    assert_eq!(out.code, Some(1), "{out}");
    let stderr = out.stderr();
    assert_eq!(stderr.lines().count(), 1, "{out}");
    assert!(stderr.starts_with("netpair: error: ") && stderr.contains("refused"), "{out}");

    // A server that cannot listen (the address is taken).
    let server = Server::start(Proto::Tcp, &[]);
    let port = server.port().to_string();
    let out = run(netpair(&["server", "--port", &port, "-qq"]), b"");
    assert_eq!(out.code, Some(1), "{out}");
    let stderr = out.stderr();
    assert_eq!(stderr.lines().count(), 1, "{out}");
    assert!(stderr.starts_with("netpair: error: cannot listen"), "{out}");
    server.stop();
}
