//! Faults and hostile input: clients that die, reset, half-close, never read, or send garbage; signals;
//! full servers. In every test a well-behaved client is served alongside, exactly, and the server never
//! panics and stays within its memory bounds.
#![allow(unsafe_code)] // a test drives its children with raw calls (kill, pre_exec, SO_LINGER)

mod common;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::{DEADLINE, Output, Peer, Process, Proto, Server};
use netpair::upper::upper;

/// The longest a well-behaved client may wait for any one reply while others misbehave.
const PROMPT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------------
// Clients that die, reset or half-close

#[test]
fn clients_killed_mid_line_and_mid_reply_cost_only_themselves() {
    if !bash_has_dev_tcp() {
        eprintln!("skipped: bash with /dev/tcp is needed to run a client that can be killed");
        return;
    }
    let server = Server::start(Proto::Tcp, &[]);
    let steady = Steady::start(&server);
    let (host, port) = server.address.rsplit_once(':').expect("host:port");
    let open = format!("exec 3<>/dev/tcp/{host}/{port} || exit 1; ");

    // Half a line, then SIGKILL.
    let mid_line =
        Process::spawn(bash(&format!("{open} printf 'half a li' >&3; echo sent; exec sleep 60")), Stdio::null());
    mid_line.wait_for("sent");
    kill(mid_line.id(), libc::SIGKILL);

    // Lines sent as fast as they go and no reply ever read: killed while the server owes it replies.
    let mid_reply = Process::spawn(
        bash(&format!("{open} for i in $(seq 1 200000); do echo \"mid reply $i\"; done >&3; exec sleep 60")),
        Stdio::null(),
    );
    server.wait_for("mid reply 5000\n");
    kill(mid_reply.id(), libc::SIGKILL);

    wait_until("both killed clients are disconnected", || count(&server.process.stdout(), "Disconnected: ") >= 2);
    steady.finish();
    assert_served_exactly(&server);
    stop_cleanly(server);
}

#[test]
fn connections_reset_mid_line_and_with_replies_owed() {
    let server = Server::start(Proto::Tcp, &[]);
    let steady = Steady::start(&server);
    for i in 0..100 {
        let mut stream = TcpStream::connect(&server.address).expect("connect");
        if i % 2 == 0 {
            stream.write_all(b"an unfinished li").expect("write");
        } else {
            for _ in 0..200 {
                stream.write_all(b"a reply is owed for this line\n").expect("write");
            }
        }
        reset(stream);
    }
    wait_until("100 reset connections are disconnected", || count(&server.process.stdout(), "Disconnected: ") >= 100);
    steady.finish();
    assert_served_exactly(&server);
    stop_cleanly(server);
}

#[test]
fn half_closed_clients_get_every_reply_then_eof() {
    for proto in [Proto::Tcp, Proto::Unix] {
        let server = Server::start(proto, &[]);
        let steady = Steady::start(&server);

        // Small: everything fits in the socket buffers, so read only after shutting down.
        let mut conn = Conn::open(&server);
        conn.write_all(b"first\r\nsecond\n\nno line end").expect("write");
        conn.shutdown_write();
        assert_eq!(read_to_eof(&mut conn), b"FIRST\nSECOND\n\nNO LINE END\n", "{proto:?}");

        // Large: 2,000 lines of 1 KB, read while writing, then every reply and EOF after the shutdown.
        let conn = Conn::open(&server);
        let mut writer = conn.try_clone();
        let lines: Vec<Vec<u8>> = (0..2000).map(|i| format!("line {i:04} {}", "x".repeat(1000)).into_bytes()).collect();
        let input: Vec<u8> = lines.iter().flat_map(|l| l.iter().chain(b"\n")).copied().collect();
        let sender = thread::spawn(move || {
            writer.write_all(&input).expect("write");
            writer.shutdown_write();
        });
        let expected: Vec<u8> = lines.iter().flat_map(|l| upper(l).into_iter().chain(*b"\n")).collect();
        let mut conn = conn;
        let got = read_to_eof(&mut conn);
        sender.join().expect("sender");
        assert!(got == expected, "{proto:?}: {} bytes of replies, expected {}", got.len(), expected.len());

        steady.finish();
        stop_cleanly(server);
    }
}

#[test]
fn udp_peers_that_vanished_do_not_stop_the_server() {
    let server = Server::start(Proto::Udp, &[]);
    let steady = Steady::start(&server);
    // Each sends and closes at once: the reply meets a closed port and comes back as ICMP unreachable.
    for i in 0..200 {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        sock.send_to(format!("gone {i}").as_bytes(), &server.address).expect("send");
    }
    wait_until("200 vanished peers are answered", || {
        count(&server.process.stdout(), "Received from User: GONE ") >= 200
    });
    steady.finish();
    assert_served_exactly(&server);
    stop_cleanly(server);

    // A unix datagram peer whose socket file is gone cannot be replied to; it is forgotten, not fatal.
    let server = Server::start(Proto::Unixgram, &[]);
    let steady = Steady::start(&server);
    for i in 0..50 {
        let dir = common::temp_dir();
        let sock = UnixDatagram::bind(dir.path().join("gone.sock")).expect("bind");
        sock.send_to(format!("gone {i}").as_bytes(), &server.address).expect("send");
    }
    wait_until("50 vanished peers are answered", || count(&server.process.stdout(), "Received from User: GONE ") >= 50);
    steady.finish();
    assert_served_exactly(&server);
    stop_cleanly(server);
}

#[test]
fn a_unix_datagram_peer_that_never_reads_stalls_nobody_else() {
    // Its receive queue fills (net.unix.max_dgram_qlen is small), so sends to it would block: that
    // must cost only its own replies, never the other peers'.
    let server = Server::start(Proto::Unixgram, &[]);
    let dir = common::temp_dir();
    let deaf = UnixDatagram::bind(dir.path().join("deaf.sock")).expect("bind");
    for i in 0..2_000 {
        deaf.send_to(format!("deaf {i}").as_bytes(), &server.address).expect("send");
    }
    wait_until("the deaf peer's messages are read", || {
        count(&server.process.stdout(), "Received from User: DEAF ") >= 100
    });
    assert_served_exactly(&server);
    drop(deaf);
    stop_cleanly(server);
}

// ---------------------------------------------------------------------------------------------------
// Signals

#[test]
fn sigterm_and_sigint_deliver_the_replies_due_then_exit_0() {
    let cases = [(Proto::Tcp, libc::SIGTERM, 0), (Proto::Tcp, libc::SIGINT, 500), (Proto::Unix, libc::SIGTERM, 500)];
    for (proto, signal, delay) in cases {
        let server = Server::start(proto, &[]);
        let mut conn = Conn::open(&server);
        let mut writer = conn.try_clone();
        writer.set_write_timeout(Duration::from_secs(2));
        // Sends until the server stops reading (its replies pile up unread), then until it is gone.
        let sender = thread::spawn(move || {
            let mut sent = 0;
            while writer.write_all(format!("due {sent}\n").as_bytes()).is_ok() {
                sent += 1;
            }
            sent
        });
        server.wait_for("from connected user: due 20000\n");
        kill(server.process.id(), signal);
        // A client slow to come back for its replies still gets them (within the server's grace time).
        thread::sleep(Duration::from_millis(delay));
        let got = read_to_eof(&mut conn);
        let out = server.process.wait();
        let sent = sender.join().expect("sender");
        assert_eq!(out.code, Some(0), "{out}");
        let (_, messages) = common::served(&out.stderr()).unwrap_or_else(|| panic!("no summary{out}"));
        let replies: Vec<&[u8]> = got.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(replies.len(), messages, "{proto:?} signal {signal}: {sent} lines sent{out}");
        for (i, reply) in replies.iter().enumerate() {
            assert_eq!(*reply, format!("DUE {i}").as_bytes(), "reply {i}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Slow, greedy and silent clients

#[test]
fn a_client_that_never_reads_cannot_grow_the_server() {
    for proto in [Proto::Tcp, Proto::Unix] {
        let server = Server::start(proto, &[]);
        let before = memory_kib(server.process.id(), "VmRSS");
        let steady = Steady::start(&server);
        let mut greedy = Conn::open(&server);
        greedy.set_write_timeout(Duration::from_millis(500));
        let line = format!("{}\n", "never read ".repeat(100));
        let started = Instant::now();
        let mut sent = 0usize;
        // Writes until the server stops reading from it (a write times out), and some more.
        while started.elapsed() < Duration::from_secs(3) {
            if greedy.write_all(line.as_bytes()).is_ok() {
                sent += line.len();
            }
        }
        let peak = memory_kib(server.process.id(), "VmHWM");
        let stats = steady.finish();
        assert!(sent > 256 * 1024, "{proto:?}: only {sent} bytes sent");
        assert!(
            peak < before + 16 * 1024,
            "{proto:?}: server RSS rose from {before} KiB to {peak} KiB while a client sent {sent} bytes and read none"
        );
        eprintln!(
            "{proto:?}: {sent} bytes sent unread; server RSS {before} -> {peak} KiB; steady client {} rounds, slowest {:?}",
            stats.rounds, stats.slowest
        );
        assert_served_exactly(&server);
        drop(greedy);
        stop_cleanly(server);
    }
}

#[test]
fn a_slow_reader_is_served_in_order_and_cannot_grow_the_server() {
    let server = Server::start(Proto::Tcp, &[]);
    let before = memory_kib(server.process.id(), "VmRSS");
    let steady = Steady::start(&server);
    let mut conn = Conn::open(&server);
    let mut writer = conn.try_clone();
    let sender = thread::spawn(move || {
        let mut sent = 0;
        while writer.write_all(format!("slow reader {sent}\n").as_bytes()).is_ok() {
            sent += 1;
        }
    });
    // Reads 64 KiB every 2 ms for 3 s: slower than the server could write, so it is always behind
    // and the server pauses and resumes reading from it again and again.
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    while started.elapsed() < Duration::from_secs(3) {
        let n = conn.read(&mut buf).expect("read");
        got.extend_from_slice(&buf[..n]);
        thread::sleep(Duration::from_millis(2));
    }
    let peak = memory_kib(server.process.id(), "VmHWM");
    conn.shutdown_write();
    got.extend(read_to_eof(&mut conn));
    sender.join().expect("sender");
    let stats = steady.finish();
    let replies: Vec<&[u8]> = got.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    for (i, reply) in replies.iter().enumerate() {
        let expected = format!("SLOW READER {i}");
        // The last line may have been cut short by the shutdown; its reply is what the server got.
        let whole = *reply == expected.as_bytes();
        assert!(whole || (i + 1 == replies.len() && expected.as_bytes().starts_with(reply)), "reply {i}: {reply:?}");
    }
    eprintln!(
        "slow reader: {} bytes of replies in order; server RSS {before} -> peak {peak} KiB; steady client {} \
         rounds, slowest {:?}",
        got.len(),
        stats.rounds,
        stats.slowest
    );
    assert!(got.len() > 4 << 20, "only {} bytes of replies", got.len());
    assert!(peak < before + 16 * 1024, "server RSS rose from {before} KiB to {peak} KiB for a slow reader");
    stop_cleanly(server);
}

#[test]
fn thousands_of_silent_connections_do_not_starve_a_normal_client() {
    const SILENT: usize = 2000;
    // Up to the hard limit (0: never asks to raise the hard limit itself).
    let limit = netpair::sys::raise_open_file_limit(0);
    assert!(limit >= SILENT as u64 + 100, "open-file limit {limit} is too low for {SILENT} connections (ulimit -Hn)");
    let server = Server::start(Proto::Tcp, &[]);
    let before = memory_kib(server.process.id(), "VmRSS");
    let steady = Steady::start(&server);
    let mut silent = Vec::with_capacity(SILENT);
    for i in 0..SILENT {
        let mut stream = TcpStream::connect(&server.address).expect("connect");
        // A tenth send a few bytes of a line that never ends (slowloris).
        if i % 10 == 0 {
            stream.write_all(b"GET / HTTP/1.1\r\nHost: x").expect("write");
        }
        silent.push(stream);
    }
    wait_until("every silent connection is accepted", || count(&server.process.stdout(), "Connection from: ") > SILENT);
    let after = memory_kib(server.process.id(), "VmRSS");
    let stats = steady.finish();
    assert_served_exactly(&server);
    eprintln!(
        "{SILENT} silent connections: server RSS {before} -> {after} KiB; steady client {} rounds, slowest {:?}",
        stats.rounds, stats.slowest
    );
    assert!(after < before + 8 * 1024, "{SILENT} idle connections took the server from {before} to {after} KiB");
    drop(silent);
    stop_cleanly(server);
}

#[test]
fn buffers_shrink_back_once_written() {
    const CLIENTS: usize = 200;
    let server = Server::start(Proto::Tcp, &[]);
    let before = memory_kib(server.process.id(), "VmRSS");
    // 30 KB: big enough to have been kept whole before buffers were shrunk back.
    let line = format!("{}\n", "big".repeat(10_000));
    let expected = upper(line.as_bytes());
    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        let mut conn = Conn::open(&server);
        conn.write_all(line.as_bytes()).expect("write");
        let mut reply = vec![0; expected.len()];
        conn.read_exact(&mut reply).expect("reply");
        assert!(reply == expected);
        conns.push(conn);
    }
    let after = memory_kib(server.process.id(), "VmRSS");
    let per_connection = (after.saturating_sub(before) * 1024) / CLIENTS as u64;
    eprintln!("{CLIENTS} idle connections after a 30 KB reply each: {before} -> {after} KiB, {per_connection} B each");
    assert!(per_connection < 8 * 1024, "{per_connection} bytes kept per idle connection");
    drop(conns);
    stop_cleanly(server);
}

#[test]
fn idle_timeout_closes_silent_and_stalled_stream_clients_only() {
    for proto in [Proto::Tcp, Proto::Unix] {
        let server = Server::start(proto, &["--idle-timeout", "1s"]);
        let started = Instant::now();
        let mut silent = Conn::open(&server);
        let mut unfinished = Conn::open(&server);
        unfinished.write_all(b"never finish").expect("write");
        // Sends 2 MB and reads nothing: once the server can neither read from it nor write to it, it is idle.
        let mut stalled = Conn::open(&server);
        stalled.set_write_timeout(Duration::from_millis(300));
        let _ = stalled.write_all(&b"stalled\n".repeat(256 * 1024));
        let mut active = Conn::open(&server);
        let mut active_reader = BufReader::new(active.try_clone());
        // The active client talks every 300 ms for 2.5 s: well past the timeout, never idle that long.
        let mut round = 0;
        while started.elapsed() < Duration::from_millis(2500) {
            active.write_all(format!("still here {round}\n").as_bytes()).expect("write");
            let mut reply = String::new();
            active_reader.read_line(&mut reply).expect("reply");
            assert_eq!(reply, format!("STILL HERE {round}\n"), "{proto:?}");
            round += 1;
            thread::sleep(Duration::from_millis(300));
        }
        assert_eq!(read_to_eof(&mut silent), b"", "{proto:?}");
        // The unfinished line is the last message of a stream that ends (like any other stream end).
        let _ = read_to_eof(&mut unfinished);
        let _ = read_to_eof(&mut stalled);
        let closed_after = started.elapsed();
        assert!(closed_after < Duration::from_secs(10), "{proto:?}: idle clients closed after {closed_after:?}");
        let stdout = server.process.stdout();
        assert_eq!(count(&stdout, "(idle timeout)"), 3, "{proto:?}{stdout}");
        drop(active);
        stop_cleanly(server);
    }
}

// ---------------------------------------------------------------------------------------------------
// Hostile input

#[test]
fn random_bytes_nuls_and_invalid_utf8_get_exact_replies_on_streams() {
    for proto in [Proto::Tcp, Proto::Unix] {
        let server = Server::start(proto, &[]);
        let steady = Steady::start(&server);
        let mut rng = Rng(0x5eed_0000 + proto as u64);
        let mut input = Vec::new();
        // Every byte value but the line end, NUL runs, truncated UTF-8, then raw random bytes (which
        // include line ends and carriage returns anywhere).
        input.extend((0..=255u8).filter(|&b| b != b'\n'));
        input.extend_from_slice(b"\n\0\0\0\nnul\0inside\n\xff\xfe\xc3\n\xe2\x82\nstra\xc3\x9fe\n");
        for _ in 0..200_000 {
            input.push(rng.byte());
        }
        let expected = model_stream_replies(&input);
        let conn = Conn::open(&server);
        let mut writer = conn.try_clone();
        let sender = thread::spawn(move || {
            writer.write_all(&input).expect("write");
            writer.shutdown_write();
        });
        let mut conn = conn;
        let got = read_to_eof(&mut conn);
        sender.join().expect("sender");
        assert!(got == expected, "{proto:?}: replies differ ({} bytes, expected {})", got.len(), expected.len());
        steady.finish();
        stop_cleanly(server);
    }
}

#[test]
fn random_zero_length_and_nul_datagrams_get_exact_replies() {
    for proto in [Proto::Udp, Proto::Unixgram] {
        let server = Server::start(proto, &[]);
        let steady = Steady::start(&server);
        let peer = Peer::open(&server);
        let mut rng = Rng(0xda7a + proto as u64);
        let mut datagrams: Vec<Vec<u8>> = vec![b"".to_vec(), b"\n".to_vec(), b"\r\n".to_vec(), b"\0".to_vec()];
        datagrams.push(b"\0\xff\xfe invalid \xc3 utf-8 stra\xc3\x9fe\n".to_vec());
        for _ in 0..300 {
            let len = rng.below(1500);
            datagrams.push((0..len).map(|_| rng.byte()).collect());
        }
        for datagram in &datagrams {
            peer.send(datagram);
            let reply = peer.recv().unwrap_or_else(|e| panic!("{proto:?}: no reply to {datagram:?}: {e}"));
            let (body, end) = netpair::framing::strip_line_end(datagram);
            let mut expected = upper(body);
            expected.extend_from_slice(end);
            assert_eq!(reply, expected, "{proto:?}");
        }
        steady.finish();
        stop_cleanly(server);
    }
}

#[test]
fn datagrams_read_together_keep_their_own_line_ends() {
    // While the server is stopped they queue up, so that it reads them in one batch: each reply must
    // end as its own message did, not as the batch's last one.
    for proto in [Proto::Udp, Proto::Unixgram] {
        let server = Server::start(proto, &[]);
        let peer = Peer::open(&server);
        let datagrams: [&[u8]; 4] = [b"one\n", b"two", b"three\r\n", b"four\n"];
        kill(server.process.id(), libc::SIGSTOP);
        for datagram in datagrams {
            peer.send(datagram);
        }
        kill(server.process.id(), libc::SIGCONT);
        for datagram in datagrams {
            let reply = peer.recv().unwrap_or_else(|e| panic!("{proto:?}: no reply to {datagram:?}: {e}"));
            let (body, end) = netpair::framing::strip_line_end(datagram);
            assert_eq!(reply, [upper(body).as_slice(), end].concat(), "{proto:?}");
        }
        stop_cleanly(server);
    }
}

#[test]
fn a_100_mb_line_without_newline_is_cut_off_and_memory_stays_bounded() {
    let server = Server::start(Proto::Tcp, &[]);
    let before = memory_kib(server.process.id(), "VmRSS");
    let steady = Steady::start(&server);
    let mut flood = TcpStream::connect(&server.address).expect("connect");
    flood.set_write_timeout(Some(DEADLINE)).expect("timeout");
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0;
    let failed = (0..100).find_map(|_| match flood.write_all(&chunk) {
        Ok(()) => {
            sent += chunk.len();
            None
        }
        Err(e) => Some(e),
    });
    let peak = memory_kib(server.process.id(), "VmHWM");
    steady.finish();
    eprintln!("a line cut off after {sent} bytes: server RSS {before} -> peak {peak} KiB");
    assert!(failed.is_some(), "the server took all {sent} bytes of one line");
    assert!(peak < before + 16 * 1024, "server RSS rose from {before} KiB to {peak} KiB");
    server.wait_for("(message too long)");
    assert_served_exactly(&server);
    let out = stop_cleanly(server);
    assert!(closed_for_length(&out, 1_048_576), "{out}");
}

#[test]
fn max_message_is_enforced_on_every_path() {
    // Stream: a line of exactly the limit is a message; one byte more closes the connection.
    for proto in [Proto::Tcp, Proto::Unix] {
        let server = Server::start(proto, &["--max-message", "1000"]);
        let mut conn = Conn::open(&server);
        conn.write_all(format!("{}\r\n", "a".repeat(1000)).as_bytes()).expect("write");
        let mut reply = vec![0; 1001];
        conn.read_exact(&mut reply).expect("reply");
        assert_eq!(reply, format!("{}\n", "A".repeat(1000)).as_bytes());
        conn.write_all(format!("{}\n", "b".repeat(1001)).as_bytes()).expect("write");
        assert_eq!(read_to_eof(&mut conn), b"", "{proto:?}");
        assert_served_exactly(&server);
        let out = stop_cleanly(server);
        assert!(closed_for_length(&out, 1000), "{out}");
    }
    // Datagram: at the limit is answered; over it is dropped with a log line; so is a reply that
    // uppercasing made bigger than the limit (the server never sends more than it accepts).
    for proto in [Proto::Udp, Proto::Unixgram] {
        let server = Server::start(proto, &["--max-message", "1000"]);
        let peer = Peer::open(&server);
        peer.send("a".repeat(1000).as_bytes());
        assert_eq!(peer.recv().expect("reply"), "A".repeat(1000).as_bytes(), "{proto:?}");
        peer.send("b".repeat(1001).as_bytes());
        peer.send("\u{390}".repeat(300).as_bytes()); // 600 bytes, 1,800 once uppercased
        peer.send(b"after");
        assert_eq!(peer.recv().expect("reply"), b"AFTER", "{proto:?}: only the last datagram is answered");
        let out = stop_cleanly(server);
        let stderr = out.stderr();
        assert!(stderr.contains("datagram of over 1000 bytes"), "{out}");
        assert!(stderr.contains("reply of 1800 bytes"), "{out}");
    }
    // The default datagram limit is the largest UDP payload: at it answered, over it (unix) dropped.
    for proto in [Proto::Udp, Proto::Unixgram] {
        let server = Server::start(proto, &[]);
        let peer = Peer::open(&server);
        peer.send(&vec![b'z'; 65507]);
        assert_eq!(peer.recv().expect("reply"), vec![b'Z'; 65507], "{proto:?}");
        if proto == Proto::Unixgram {
            peer.send(&vec![b'z'; 65508]);
            peer.send(b"after");
            assert_eq!(peer.recv().expect("reply"), b"AFTER");
        }
        stop_cleanly(server);
    }
}

// ---------------------------------------------------------------------------------------------------
// Full servers

#[test]
fn max_clients_turns_stream_clients_away_with_a_message() {
    for proto in [Proto::Tcp, Proto::Unix] {
        let server = Server::start(proto, &["--max-clients", "2"]);
        let mut first = Conn::open(&server);
        let second = Conn::open(&server);
        assert_eq!(exchange(&mut first, "one"), "ONE\n");
        server.wait_for("Connection from");
        wait_until("both clients accepted", || count(&server.process.stdout(), "Connection from") == 2);
        let mut third = Conn::open(&server);
        let refusal = String::from_utf8_lossy(&read_to_eof(&mut third)).into_owned();
        assert_eq!(refusal, "netpair: server full (2 clients); try again later\n", "{proto:?}");
        drop(second);
        wait_until("the second client's departure", || count(&server.process.stdout(), "Disconnected") == 1);
        let mut fourth = Conn::open(&server);
        assert_eq!(exchange(&mut fourth, "four"), "FOUR\n", "{proto:?}: served once there is room");
        assert_eq!(exchange(&mut first, "still"), "STILL\n");
        let out = stop_cleanly(server);
        assert!(out.stderr().contains("server full (2 clients, --max-clients)"), "{out}");
    }
}

#[test]
fn max_clients_leaves_new_datagram_peers_unanswered_until_there_is_room() {
    for proto in [Proto::Udp, Proto::Unixgram] {
        let server = Server::start(proto, &["--max-clients", "2", "--idle-timeout", "1s"]);
        let (a, b, c) = (Peer::open(&server), Peer::open(&server), Peer::open(&server));
        a.send(b"a");
        assert_eq!(a.recv().expect("reply"), b"A");
        b.send(b"b");
        assert_eq!(b.recv().expect("reply"), b"B");
        c.set_read_timeout(Duration::from_millis(500));
        c.send(b"c");
        assert!(c.recv().is_err(), "{proto:?}: a third peer was answered by a full server");
        // Once the first two are forgotten for being idle, the third is served.
        wait_until("the idle peers are forgotten", || count(&server.process.stdout(), "(idle timeout)") == 2);
        c.set_read_timeout(DEADLINE);
        c.send(b"c again");
        assert_eq!(c.recv().expect("reply"), b"C AGAIN", "{proto:?}");
        let out = stop_cleanly(server);
        assert!(out.stderr().contains("server full (2 peers, --max-clients)"), "{out}");
    }
}

#[test]
fn at_the_open_file_limit_clients_are_turned_away_and_served_again_later() {
    // A server allowed 64 open files, far below its --max-clients.
    let mut command = common::netpair(&["--port", "0", "server"]);
    limit_open_files(&mut command, 64);
    let process = Process::spawn(command, Stdio::null());
    let first = process.wait_for("\n");
    let address = first.lines().next().and_then(|l| l.strip_prefix("Listening on tcp ")).expect("address");
    let mut conns: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(address).expect("connect")).collect();
    // Some are served, the rest told why they are not: none is left hanging.
    let mut served = 0;
    let mut refused = 0;
    for conn in &mut conns {
        conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
        if conn.write_all(b"hi\n").is_err() {
            refused += 1;
            continue;
        }
        let mut reply = String::new();
        match BufReader::new(&*conn).read_line(&mut reply) {
            Ok(_) if reply == "HI\n" => served += 1,
            Ok(_) if reply.starts_with("netpair: server full") => refused += 1,
            other => panic!("neither served nor turned away: {other:?} {reply:?}{}", stop(process)),
        }
    }
    assert!(served >= 40 && refused >= 20, "served {served}, refused {refused}");
    conns.clear();
    wait_until("the server to see them go", || count(&process.stdout(), "Disconnected") >= served);
    let mut again = TcpStream::connect(address).expect("connect");
    again.set_read_timeout(Some(DEADLINE)).expect("timeout");
    again.write_all(b"again\n").expect("write");
    let mut reply = String::new();
    BufReader::new(&again).read_line(&mut reply).expect("reply");
    assert_eq!(reply, "AGAIN\n");
    let out = stop(process);
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stderr().contains("panicked"), "{out}");
}

#[test]
fn writes_to_dead_peers_never_kill_the_server_even_with_sigpipe_default() {
    for proto in [Proto::Tcp, Proto::Unix] {
        let dir = common::temp_dir();
        let path = dir.path().join("server.sock");
        let mut command = common::netpair(&["--proto", proto.name()]);
        match proto {
            Proto::Tcp => command.args(["--port", "0"]),
            _ => command.args(["--path", path.to_str().expect("utf-8 path")]),
        };
        command.arg("server");
        restore_sigpipe(&mut command);
        let process = Process::spawn(command, Stdio::null());
        let first = process.wait_for("\n");
        let address = first.lines().next().and_then(|l| l.split(' ').nth(3)).expect("address").to_string();
        for _ in 0..20 {
            // Replies are owed when the peer goes: the server's next write meets a closed socket.
            let mut conn = match proto {
                Proto::Tcp => Conn::Tcp(TcpStream::connect(&address).expect("connect")),
                _ => Conn::Unix(UnixStream::connect(&address).expect("connect")),
            };
            for _ in 0..2000 {
                conn.write_all(b"write to me after I am gone\n").expect("write");
            }
        }
        wait_until("all 20 are gone", || count(&process.stdout(), "Disconnected") >= 20);
        let mut conn = match proto {
            Proto::Tcp => Conn::Tcp(TcpStream::connect(&address).expect("connect")),
            _ => Conn::Unix(UnixStream::connect(&address).expect("connect")),
        };
        conn.set_read_timeout(Some(DEADLINE));
        assert_eq!(exchange(&mut conn, "alive"), "ALIVE\n", "{proto:?}");
        let out = stop(process);
        assert_eq!(out.code, Some(0), "{proto:?}: the server died{out}");
    }
}

// ---------------------------------------------------------------------------------------------------
// Helpers

/// A stream connection to the server, TCP or Unix, blocking with deadlines.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn open(server: &Server) -> Conn {
        let conn = match server.proto {
            Proto::Tcp => Conn::Tcp(TcpStream::connect(&server.address).expect("connect")),
            Proto::Unix => Conn::Unix(UnixStream::connect(&server.address).expect("connect")),
            other => panic!("{other:?} is not a stream"),
        };
        conn.set_read_timeout(Some(DEADLINE));
        conn.set_write_timeout(DEADLINE);
        conn
    }

    fn try_clone(&self) -> Conn {
        match self {
            Conn::Tcp(s) => Conn::Tcp(s.try_clone().expect("clone")),
            Conn::Unix(s) => Conn::Unix(s.try_clone().expect("clone")),
        }
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(Shutdown::Write),
            Conn::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) {
        let _ = match self {
            Conn::Tcp(s) => s.set_read_timeout(timeout),
            Conn::Unix(s) => s.set_read_timeout(timeout),
        };
    }

    fn set_write_timeout(&self, timeout: Duration) {
        let _ = match self {
            Conn::Tcp(s) => s.set_write_timeout(Some(timeout)),
            Conn::Unix(s) => s.set_write_timeout(Some(timeout)),
        };
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends one line and reads its reply line.
fn exchange(conn: &mut Conn, line: &str) -> String {
    conn.write_all(format!("{line}\n").as_bytes()).expect("write");
    let mut reply = Vec::new();
    let mut byte = [0];
    while reply.last() != Some(&b'\n') {
        match conn.read(&mut byte) {
            Ok(1) => reply.push(byte[0]),
            other => panic!("no reply to {line:?}: {other:?} after {reply:?}"),
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

/// Everything until the server closes (a reset after the data counts as the end too).
fn read_to_eof(conn: &mut Conn) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("reading to the end: {e} after {} bytes", got.len()),
        }
    }
}

/// A well-behaved client on its own thread, one message at a time, each reply checked byte for byte
/// and waited for at most `PROMPT`, while the test does harm elsewhere.
struct Steady {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Result<SteadyStats, String>>,
}

/// Sends one message and returns its reply.
type Exchange = Box<dyn FnMut(&[u8]) -> io::Result<Vec<u8>> + Send>;

#[derive(Debug)]
struct SteadyStats {
    rounds: usize,
    slowest: Duration,
}

impl Steady {
    fn start(server: &Server) -> Steady {
        // Connected here, so the server has this peer before the harm starts.
        let mut exchange: Exchange = if server.proto.is_stream() {
            let mut conn = Conn::open(server);
            conn.set_read_timeout(Some(PROMPT));
            let mut reader = BufReader::new(conn.try_clone());
            Box::new(move |message| {
                conn.write_all(&[message, b"\n"].concat())?;
                let mut reply = Vec::new();
                reader.read_until(b'\n', &mut reply)?;
                Ok(reply.strip_suffix(b"\n").unwrap_or(&reply).to_vec())
            })
        } else {
            let peer = Peer::open(server);
            peer.set_read_timeout(PROMPT);
            Box::new(move |message| {
                peer.send(message);
                peer.recv()
            })
        };
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = thread::spawn(move || {
            let mut stats = SteadyStats { rounds: 0, slowest: Duration::ZERO };
            while !stopping.load(Ordering::SeqCst) || stats.rounds < 3 {
                let message = format!("steady message {} ÿ", stats.rounds);
                let started = Instant::now();
                let reply = exchange(message.as_bytes()).map_err(|e| format!("round {}: {e}", stats.rounds))?;
                stats.slowest = stats.slowest.max(started.elapsed());
                if reply != upper(message.as_bytes()) {
                    return Err(format!(
                        "round {}: sent {message:?}, got {:?}",
                        stats.rounds,
                        String::from_utf8_lossy(&reply)
                    ));
                }
                stats.rounds += 1;
                // A pace, not a wait for readiness: leave the CPU to the misbehaving side.
                thread::sleep(Duration::from_millis(10));
            }
            Ok(stats)
        });
        Steady { stop, thread }
    }

    fn finish(self) -> SteadyStats {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.join() {
            Ok(Ok(stats)) => stats,
            Ok(Err(e)) => panic!("the well-behaved client was not served: {e}"),
            Err(_) => panic!("the well-behaved client's thread panicked"),
        }
    }
}

/// A real `netpair client` gets exactly its replies from this server.
fn assert_served_exactly(server: &Server) {
    let out = server.client("hello\nstra\u{df}e\n\nq\n".as_bytes(), &[]);
    assert_eq!(out.code, Some(0), "{out}");
    assert_eq!(
        out.stdout(),
        "Received from server: HELLO\nReceived from server: STRASSE\nReceived from server: \n",
        "{out}"
    );
}

/// SIGTERM; the server must exit 0 with its summary and no panic.
fn stop_cleanly(server: Server) -> Output {
    let out = server.stop();
    assert_eq!(out.code, Some(0), "{out}");
    assert!(!out.stderr().contains("panicked"), "{out}");
    assert!(common::served(&out.stderr()).is_some(), "no summary{out}");
    out
}

fn stop(process: Process) -> Output {
    process.stop()
}

/// The server's log says it closed a stream for a line over `--max-message max`.
fn closed_for_length(out: &Output, max: usize) -> bool {
    let bound = format!("--max-message {max}");
    out.stderr().lines().any(|l| l.contains("sent a line of") && l.contains(&bound) && l.ends_with("closing it"))
}

/// What the server must send back for a byte stream: each line (a final unfinished one included)
/// without its `\n` or `\r\n`, uppercased, then `\n`.
fn model_stream_replies(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for line in lines {
        out.extend(upper(line.strip_suffix(b"\r").unwrap_or(line)));
        out.push(b'\n');
    }
    out
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// Polls `done` until it holds; fails the test at the deadline.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// The server's resident memory in KiB: `VmRSS` now, or `VmHWM` for the most it has ever held.
fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok())
        .unwrap_or(0)
}

/// Closes with SO_LINGER 0: the kernel sends RST instead of FIN.
fn reset(stream: TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER: {}", io::Error::last_os_error());
    drop(stream);
}

fn kill(pid: u32, signal: libc::c_int) {
    // SAFETY: kill(2) on a child of ours that has not been reaped yet.
    unsafe { libc::kill(pid as libc::pid_t, signal) };
}

fn bash(script: &str) -> Command {
    let mut command = Command::new("bash");
    command.args(["-c", script]);
    command
}

fn bash_has_dev_tcp() -> bool {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let status = bash(&format!("exec 3<>/dev/tcp/127.0.0.1/{port}")).stderr(Stdio::null()).status();
    status.is_ok_and(|s| s.success())
}

/// Makes the child start with at most `files` open files, hard limit included.
fn limit_open_files(command: &mut Command, files: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches only the child about to exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit { rlim_cur: files, rlim_max: files };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Makes the child start with SIGPIPE at its default (death), as a shell may hand it over.
fn restore_sigpipe(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2) is async-signal-safe and touches only the child about to exec.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            Ok(())
        });
    }
}

/// A small deterministic generator (xorshift): the same bytes on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------------------------------------------------------------------------------------------------
// Found in review: ids reused within a turn, and `--reply stdin` peers dropped while owed a reply

#[test]
fn a_reply_never_reaches_the_next_peer_in_a_reused_slot() {
    // A's message, A's close (its next line is too long) and B's connect all land in one turn.
    let server = Server::start(Proto::Tcp, &["--max-message", "10"]);
    let mut a = TcpStream::connect(&server.address).expect("connect a");
    server.wait_for("Connection from: ");
    kill(server.process.id(), libc::SIGSTOP);
    a.write_all(format!("hi-a\n{}", "X".repeat(50)).as_bytes()).expect("write a");
    let mut b = TcpStream::connect(&server.address).expect("connect b");
    kill(server.process.id(), libc::SIGCONT);
    b.set_read_timeout(Some(DEADLINE)).expect("timeout");
    b.write_all(b"b\n").expect("write b");
    let mut got = [0u8; 16];
    let n = b.read(&mut got).expect("read b");
    assert_eq!(&got[..n], b"B\n", "B got {:?}", String::from_utf8_lossy(&got[..n]));
    drop((a, b));
    stop_cleanly(server);
}

#[test]
fn reply_stdin_keeps_a_half_closed_or_idle_peer_until_it_is_answered() {
    let mut server = Server::start(Proto::Tcp, &["--reply", "stdin", "--idle-timeout", "1s"]);
    // Half-closed right after its message.
    let mut half = TcpStream::connect(&server.address).expect("connect");
    half.write_all(b"hi\n").expect("write");
    half.shutdown(Shutdown::Write).expect("shutdown");
    server.wait_for("Received from User: HI");
    // Longer than the idle timeout before the operator answers.
    thread::sleep(Duration::from_millis(1500));
    server.feed(b"typed later\n");
    half.set_read_timeout(Some(DEADLINE)).expect("timeout");
    let mut reply = Vec::new();
    half.read_to_end(&mut reply).expect("read to the close");
    assert_eq!(reply, b"typed later\n");
    server.wait_for("Disconnected: ");
    stop_cleanly(server);
}

#[test]
fn reply_stdin_over_raw_framing_keeps_owing_after_an_empty_line() {
    let mut server = Server::start(Proto::Tcp, &["--reply", "stdin", "--framing", "raw"]);
    let mut conn = TcpStream::connect(&server.address).expect("connect");
    conn.set_read_timeout(Some(DEADLINE)).expect("timeout");
    conn.write_all(b"one").expect("write");
    server.wait_for("Received from User: ONE");
    // An empty typed line cannot travel over a raw stream: the next line is the reply.
    server.feed(b"\nreply one\n");
    let mut got = [0u8; 64];
    let n = conn.read(&mut got).expect("read");
    assert_eq!(&got[..n], b"reply one");
    drop(conn);
    let out = stop_cleanly(server);
    assert!(out.stderr().contains("an empty line cannot be sent over a raw stream"), "{out}");
}

#[test]
fn a_peer_cannot_forge_transcript_lines() {
    // A datagram may hold line ends; the transcript shows them as \n and \r, one line per message.
    let server = Server::start(Proto::Udp, &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.send_to(b"x\nConnection from: 6.6.6.6:1\rz", &server.address).expect("send");
    let out = server.wait_for("Received from User: ");
    assert!(out.contains("from connected user: x\\nConnection from: 6.6.6.6:1\\rz\n"), "{out}");
    assert_eq!(count(&out, "Connection from: "), 2, "one real, one shown inside a message: {out}");
    assert!(!out.lines().any(|l| l.starts_with("Connection from: 6.6.6.6")), "{out}");
    stop_cleanly(server);
}

#[test]
fn a_client_whose_server_stopped_reading_still_reads_its_replies_when_it_reads_again() {
    // 300 messages of 100,000 bytes, more than the kernel's buffers hold, to a stopped TCP server:
    // the client keeps the rest. When the server reads again it answers while the client still
    // has bytes to send; were the client to stop reading while it cannot send (backpressure, as a
    // server does), each would wait for the other for ever.
    let server = Server::start(Proto::Tcp, &[]);
    kill(server.process.id(), libc::SIGSTOP);
    let mut command = server.client_command(&["--timeout", "2ms"]);
    command.stdin(Stdio::piped());
    let mut client = Process::spawn(command, Stdio::piped());
    let lines: Vec<u8> =
        (1..=300).flat_map(|i| format!("message {i:03} {}\n", "x".repeat(100_000)).into_bytes()).collect();
    let mut pipe = client.stdin.take().expect("the client's stdin");
    let feeder = thread::spawn(move || pipe.write_all(&lines).map(|()| pipe));
    let waited = |what: &str, done: &dyn Fn(&str) -> bool, client: &Process| {
        let deadline = Instant::now() + DEADLINE;
        while !done(&client.stderr()) {
            assert!(Instant::now() < deadline, "{what}: {}", client.stderr().lines().last().unwrap_or_default());
            thread::sleep(Duration::from_millis(20));
        }
    };
    waited("the client never gave up on message 300", &|e| e.contains("no reply to message 300 "), &client);
    kill(server.process.id(), libc::SIGCONT);
    waited("not every reply came", &|e| e.matches("late reply to message").count() == 300, &client);
    drop(feeder.join().expect("the feeder"));
    let out = client.wait();
    assert!(out.stderr().contains("sent 300, received 0, lost 300, late 300"), "{out}");
    stop_cleanly(server);
}
