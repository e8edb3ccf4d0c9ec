//! A peer cannot write to the operator's terminal: every byte value sent over a stream and in a
//! datagram reaches the server's transcript and the client's output escaped, never raw.

mod common;

use common::{Peer, Proto, Server};

/// The offending bytes in `text`: any control character but `\n` (which ends transcript lines) and
/// tab, any C1 control, and any byte that is not UTF-8.
fn raw_controls(text: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    for chunk in text.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() && c != '\n' && c != '\t' {
                found.push(format!("{:?}", c));
            }
        }
        found.extend(chunk.invalid().iter().map(|b| format!("byte {b:#04x}")));
    }
    found
}

/// Every byte value but the line end, with a C1 control and a forged transcript line among them.
fn every_byte() -> Vec<u8> {
    let mut line: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n').collect();
    line.extend_from_slice("\u{9b}31m\x1bEConnection from: 10.9.9.9:4444".as_bytes());
    line
}

#[test]
fn every_byte_over_a_stream_is_shown_escaped_on_both_sides() {
    for proto in [Proto::Tcp, Proto::Unix] {
        let server = Server::start(proto, &[]);
        let mut input = every_byte();
        input.extend_from_slice(b"\nback\\slash and \\n literal\nq\n");
        let client = server.client(&input, &[]);
        assert_eq!(client.code, Some(0), "{client}");
        let out = server.stop();
        for (who, bytes) in [("server", &out.stdout), ("client", &client.stdout)] {
            assert!(
                raw_controls(bytes).is_empty(),
                "{proto}: raw controls on the {who}'s stdout: {:?}{out}{client}",
                raw_controls(bytes)
            );
        }
        let transcript = out.stdout();
        // The forged line stays inside the message's line; only the real peer starts a line.
        assert_eq!(transcript.lines().filter(|l| l.starts_with("Connection from:")).count(), 1, "{out}");
        assert!(transcript.contains("\\eEConnection from: 10.9.9.9:4444"), "{out}");
        assert!(transcript.contains("\\u{9b}31m"), "{out}");
        assert!(transcript.contains("\\x00\\x01"), "{out}");
        // A backslash is shown doubled, so `\n` typed by a peer differs from a line end inside a message.
        assert!(transcript.contains("from connected user: back\\\\slash and \\\\n literal"), "{out}");
        assert!(client.stdout().contains("Received from server: BACK\\\\SLASH AND \\\\N LITERAL"), "{client}");
    }
}

#[test]
fn every_byte_in_a_datagram_is_shown_escaped() {
    for proto in [Proto::Udp, Proto::Unixgram] {
        let server = Server::start(proto, &[]);
        let peer = Peer::open(&server);
        // Line ends inside a datagram are part of the message; only a last one is stripped.
        let mut datagram: Vec<u8> = (0..=255u8).collect();
        datagram.extend_from_slice(b"\x1b]0;title\x07tail");
        peer.send(&datagram);
        let reply = peer.recv().expect("a reply");
        assert_eq!(reply.len(), datagram.len(), "the reply is the exact uppercase, unescaped");
        let out = server.stop();
        assert!(raw_controls(&out.stdout).is_empty(), "{proto}: {:?}{out}", raw_controls(&out.stdout));
        assert!(out.stdout().contains("\\n\\x0b\\x0c\\r"), "{out}");
        assert!(out.stdout().contains("\\e]0;title\\x07tail"), "{out}");
    }
}
