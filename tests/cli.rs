//! The command line on the real binary: each subcommand takes only its own options, on either side
//! of its name, and says clearly which one it does not take.

mod common;

use std::process::Stdio;

use common::{Process, netpair, run, served};

#[test]
fn compare_takes_no_connection_or_framing_options() {
    let cases = [
        (&["compare", "--port", "5001"][..], "--port"),
        (&["compare", "--framing", "raw"], "--framing"),
        (&["compare", "--host", "localhost"], "--host"),
        (&["compare", "--path", "/tmp/x.sock"], "--path"),
        (&["compare", "--prompt", "never"], "--prompt"),
        (&["compare", "--max-message", "10"], "--max-message"),
        (&["--port", "5001", "compare"], "--port"),
        (&["--framing", "raw", "compare"], "--framing"),
    ];
    for (args, flag) in cases {
        let out = run(netpair(args), b"");
        assert_eq!(out.code, Some(2), "{out}");
        assert!(out.stderr().contains(flag), "{out}");
        assert_eq!(out.stdout(), "", "{out}");
    }
}

#[test]
fn a_client_cannot_connect_to_port_0() {
    for args in [&["client", "--port", "0"][..], &["--port", "0", "client"], &["client", "--port=0"]] {
        let out = run(netpair(args), b"hi\n");
        assert_eq!(out.code, Some(2), "{out}");
        assert!(out.stderr().contains("a client cannot connect to port 0"), "{out}");
    }
}

#[test]
fn an_option_before_a_subcommand_that_does_not_take_it_is_named_in_one_line() {
    let cases = [
        (&["--reply", "echo", "compare"][..], "compare takes no --reply"),
        (&["--framing=raw", "bench"], "bench takes no --framing"),
        (&["--proto", "udp", "--prompt", "never", "bench"], "bench takes no --prompt"),
    ];
    for (args, says) in cases {
        let out = run(netpair(args), b"");
        assert_eq!(out.code, Some(2), "{out}");
        let stderr = out.stderr();
        assert_eq!(stderr.lines().count(), 1, "{out}");
        assert!(stderr.starts_with(&format!("error: {says} ")), "{out}");
    }
}

#[test]
fn options_go_before_or_after_the_subcommand() {
    // First every option after `server`, then `--proto` before it and `--port` after.
    for (before, after) in
        [(&[][..], &["--proto", "udp", "--port", "0", "-v"][..]), (&["--proto", "udp"], &["--port", "0"])]
    {
        let mut command = netpair(before);
        command.arg("server").args(after);
        let server = Process::spawn(command, Stdio::piped());
        let first = server.wait_for("\n");
        let address = first.lines().next().and_then(|l| l.strip_prefix("Listening on udp ")).unwrap_or_default();
        let port = address.rsplit_once(':').map(|(_, port)| port.to_string()).unwrap_or_default();
        assert!(!port.is_empty(), "not listening on udp: {first:?}\n{}", server.stderr());

        for args in [
            &["client", "--proto", "udp", "--port", &port, "--timeout", "5s"][..],
            &["--proto", "udp", "--port", &port, "client", "--timeout", "5s"],
            &["--proto", "udp", "client", "--port", &port, "-q"],
        ] {
            let out = run(netpair(args), b"hi\n");
            assert_eq!(out.code, Some(0), "{out}");
            assert!(out.stdout().contains("Received from server: HI"), "{out}");
        }
        let out = server.stop();
        assert_eq!(served(&out.stderr()), Some((3, 3)), "{out}");
    }
}

#[test]
fn bench_takes_its_list_of_kinds_on_either_side() {
    for args in [
        &["bench", "--proto", "tcp,udp", "--messages", "5", "--warmup", "0"][..],
        &["--proto", "tcp,udp", "bench", "--messages", "5", "--warmup", "0"],
    ] {
        let out = run(netpair(args), b"");
        assert_eq!(out.code, Some(0), "{out}");
        let header = out.stdout().lines().find(|l| l.contains("| ")).map(str::to_string).unwrap_or_default();
        assert!(header.contains("tcp") && header.contains("udp"), "{out}");
    }
}
