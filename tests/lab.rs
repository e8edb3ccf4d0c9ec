//! `netpair lab`, run as a user would: the impairments really happen (the router's counters say so),
//! the figures reconcile, the errors are one clear line, and no namespace or nft table is left after
//! any run, interrupted ones included. The tests that build a lab need root, `ip` and `nft`:
//! elsewhere they say SKIP; under CI=true their absence is a failure. They run one at a time (a
//! lock), so that `ip netns list` before and after each is that test's own account.

mod common;

use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{Process, netpair, run, run_within};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn can_run() -> bool {
    common::can_build_namespaces("lab test")
}

fn text_of(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect("run a command");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The lab's namespaces and every nft table, as the host sees them.
fn host_state() -> (Vec<String>, String) {
    let spaces =
        text_of("ip", &["netns", "list"]).lines().filter(|l| l.starts_with("nplab-")).map(String::from).collect();
    (spaces, text_of("nft", &["list", "tables"]))
}

/// Holds the lock and checks, when dropped, that the host is as it was (waiting a little for the
/// janitor of a killed run).
struct Clean {
    before: (Vec<String>, String),
    _lock: std::sync::MutexGuard<'static, ()>,
}

impl Clean {
    fn start() -> Clean {
        let lock = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Clean { before: host_state(), _lock: lock }
    }

    fn check(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut now = host_state();
        while now != self.before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            now = host_state();
        }
        assert_eq!(now, self.before, "the lab left something behind");
    }
}

fn lab(args: &[&str], stdin: &[u8]) -> common::Output {
    let mut all = vec!["lab"];
    all.extend_from_slice(args);
    run(netpair(&all), stdin)
}

fn lines(n: usize) -> Vec<u8> {
    (1..=n).map(|i| format!("message {i}\n")).collect::<String>().into_bytes()
}

#[test]
fn a_lossy_link_compare_delivers_every_tcp_reply_and_reconciles_udp_with_the_routers_counters() {
    if !can_run() {
        return;
    }
    let clean = Clean::start();
    // compare's size probes take long across a lossy link (TCP resends 1 MiB segment by segment).
    let out =
        run_within(netpair(&["lab", "--loss", "10%", "compare", "--messages", "200"]), b"", Duration::from_secs(400));
    assert_eq!(out.code, Some(0), "{out}");
    let text = out.stdout();
    // Every TCP reply comes, some perhaps after compare's 2 s (a segment lost twice waits out two
    // retransmission timeouts): in time and late together are all 200.
    let tcp = text.lines().find(|l| l.starts_with("  ok   tcp: ")).unwrap_or_else(|| panic!("no tcp sum holds: {out}"));
    assert!(tcp.contains(" late = 200 sent"), "TCP delivers every reply: {tcp}\n{out}");
    assert!(text.contains("loss 10% each way"), "{out}");
    let dropped =
        text.lines().find(|l| l.trim_start().starts_with("dropped at random")).unwrap_or_else(|| panic!("{out}"));
    let figures: Vec<u64> = dropped.split_whitespace().filter_map(|w| w.replace(',', "").parse().ok()).collect();
    assert!(figures.len() == 2 && figures.iter().all(|&f| f > 0), "the router really dropped, each way: {dropped}");
    let sums: Vec<&str> = text.lines().filter(|l| l.starts_with("  ok ") || l.starts_with("  OFF ")).collect();
    assert_eq!(sums.iter().filter(|l| l.contains("udp:")).count(), 4, "{out}");
    assert!(sums.iter().all(|l| l.starts_with("  ok ")), "every sum holds: {out}");
    clean.check();
}

#[test]
fn json_ends_with_the_networks_account_and_duplicates_are_counted_for_udp_never_for_tcp() {
    if !can_run() {
        return;
    }
    let clean = Clean::start();
    let out = lab(&["--dup", "25%", "client", "--proto", "udp", "--timeout", "500ms", "--json"], &lines(100));
    assert_eq!(out.code, Some(0), "duplicates fail nothing: {out}");
    let stdout = out.stdout();
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("{\"event\":\"lab\""), "{out}");
    assert!(last.contains("\"reconciled\":true"), "{last}");
    let dups = stdout.lines().filter(|l| l.contains("\"event\":\"duplicate\"")).count();
    assert!(dups > 0, "25% duplicated each way, and no duplicate seen: {out}");
    let summary = stdout.lines().find(|l| l.contains("\"event\":\"summary\"")).unwrap_or_else(|| panic!("{out}"));
    assert!(summary.contains(&format!("\"duplicates\":{dups}")), "{summary}");
    assert!(summary.contains("\"received\":100"), "each message still has its one reply: {summary}");

    let out = lab(&["--dup", "25%", "client", "--proto", "tcp"], &lines(100));
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout().lines().filter(|l| l.starts_with("Received from server: MESSAGE ")).count() == 100, "{out}");
    assert!(!out.stderr().contains("duplicate"), "TCP never hands over a duplicate: {out}");
    assert!(out.stdout().contains("duplicated (--dup)"), "the router did duplicate TCP's packets: {out}");
    clean.check();
}

#[test]
fn a_firewall_that_rejects_fails_at_once_and_one_that_drops_makes_the_client_wait() {
    if !can_run() {
        return;
    }
    let clean = Clean::start();
    let timed = |args: &[&str]| {
        let started = Instant::now();
        let out = lab(args, b"hello\n");
        (out, started.elapsed())
    };
    let (out, took) = timed(&["--reject", "client", "--proto", "tcp", "--connect-timeout", "2s"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr().contains("refused"), "{out}");
    assert!(took < Duration::from_secs(2), "a reset comes at once, not after the connect timeout ({took:?})");
    let (out, took) = timed(&["--firewall", "drop", "client", "--proto", "tcp", "--connect-timeout", "2s"]);
    assert_eq!(out.code, Some(1), "{out}");
    assert!(out.stderr().contains("timed out") || out.stderr().contains("time"), "{out}");
    assert!(took >= Duration::from_secs(2), "silence makes the connect wait its timeout ({took:?})");
    let (out, _) = timed(&["--reject", "client", "--proto", "udp", "--timeout", "2s"]);
    assert_ne!(out.code, Some(0), "{out}");
    assert!(out.stderr().contains("refused"), "ICMP port unreachable reaches a connected UDP socket: {out}");
    let (out, _) = timed(&["--firewall", "drop", "client", "--proto", "udp", "--timeout", "300ms"]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(out.stderr().contains("no reply to message 1"), "{out}");
    assert!(out.stdout().contains("sent to the server's port and stopped by the firewall"), "{out}");
    clean.check();
}

#[test]
fn an_interrupted_or_killed_run_leaves_nothing() {
    if !can_run() {
        return;
    }
    let clean = Clean::start();
    for signal in [rustix::process::Signal::TERM, rustix::process::Signal::INT, rustix::process::Signal::KILL] {
        let mut command = netpair(&["lab", "--loss", "20%", "client", "--proto", "udp", "--timeout", "5s"]);
        command.stdin(Stdio::piped());
        let mut lab = Process::spawn(command, Stdio::piped());
        lab.feed(b"hello\n");
        // The lab is built and the client talking once its first reply (or loss) comes; any time
        // after the namespaces exist is a fair time to stop it.
        let deadline = Instant::now() + common::DEADLINE;
        while !text_of("ip", &["netns", "list"]).contains(&format!("nplab-{}-client", lab.id())) {
            assert!(Instant::now() < deadline, "the lab never came up: {}", lab.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = rustix::process::Pid::from_raw(lab.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, signal).expect("signal the lab");
        let out = lab.wait();
        assert!(out.code != Some(2), "{signal:?}: {out}");
        clean.check();
    }
}

#[test]
fn lab_up_stands_until_lab_down_and_leftovers_of_a_dead_run_are_removed() {
    if !can_run() {
        return;
    }
    let clean = Clean::start();
    // A dead run's leftover: a namespace named for a process that does not exist.
    let stale = "nplab-4000000-client";
    assert!(Command::new("ip").args(["netns", "add", stale]).status().expect("ip").success());
    let out = lab(&["--mtu", "1400", "up"], b"");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr().contains(stale), "the sweep says what it removed: {out}");
    assert!(!text_of("ip", &["netns", "list"]).contains(stale), "{out}");
    // The two commands it prints work as printed.
    let said = out.stdout();
    let command = |role: &str| -> Vec<String> {
        let line = said.lines().find(|l| l.contains(&format!("nplab-up-{role} "))).unwrap_or_else(|| panic!("{said}"));
        line.split_once(':').map_or(line, |(_, c)| c).split_whitespace().map(String::from).collect()
    };
    let server = command("server");
    let server = Process::spawn(
        {
            let mut c = Command::new(&server[0]);
            c.args(&server[1..]);
            c
        },
        Stdio::null(),
    );
    server.wait_for("Listening on udp");
    let client = command("client");
    let out = run(
        {
            let mut c = Command::new(&client[0]);
            c.args(&client[1..]);
            c
        },
        b"across the lab\nq\n",
    );
    assert!(out.stdout().contains("Received from server: ACROSS THE LAB"), "{out}");
    let mtu = text_of("ip", &["-n", "nplab-up-server", "link", "show", "lab0"]);
    assert!(mtu.contains("mtu 1400"), "{mtu}");
    let out = lab(&["down"], b"");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stderr().contains("removed nplab-up-client"), "{out}");
    drop(server);
    let out = lab(&["down"], b"");
    assert!(out.stderr().contains("no lab to remove"), "{out}");
    clean.check();
}

#[test]
fn what_the_kernel_cannot_do_here_and_what_a_user_gets_wrong_is_one_line() {
    // Usage errors need no root.
    for (args, says) in [
        (&["lab"][..], "lab needs a command"),
        (&["lab", "server"], "lab runs compare, bench or client"),
        (&["lab", "client", "--host", "10.0.0.1"], "leave out --host"),
        (&["lab", "--loss", "101%", "compare"], "over 100%"),
        (&["lab", "--loss", "ten", "compare"], "not a percentage"),
        (&["lab", "--mtu", "500", "up"], "1280"),
        (&["lab", "client", "--proto", "unix"], "Unix sockets do not cross"),
        (&["lab", "up", "now"], "takes no words"),
        (&["lab", "--jitter", "5ms", "compare"], "--jitter varies a --delay"),
        (&["lab", "compare", "--bogus"], "--bogus"),
    ] {
        let out = run(netpair(args), b"");
        assert_eq!(out.code, Some(2), "{args:?}: {out}");
        assert!(out.stderr().contains(says), "{args:?}: {out}");
        assert!(out.stdout().is_empty(), "{args:?}: {out}");
    }
    if !can_run() {
        return;
    }
    let clean = Clean::start();
    // Without root: refused before anything is built.
    let nobody = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_netpair"), "lab", "compare"])
        .output()
        .expect("setpriv");
    let stderr = String::from_utf8_lossy(&nobody.stderr);
    assert_eq!(nobody.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
    // netem: this kernel may lack it (this machine's does); either it works, or one line says so.
    let netem = netem_works();
    let out = lab(&["--delay", "20ms", "client", "--proto", "udp"], b"hello\n");
    if netem {
        assert_eq!(out.code, Some(0), "{out}");
    } else {
        println!("note: this kernel has no netem: checking that --delay says so");
        assert_eq!(out.code, Some(1), "{out}");
        assert!(out.stderr().contains("netem"), "{out}");
        assert_eq!(out.stderr().lines().count(), 1, "{out}");
    }
    clean.check();
}

/// Whether `tc qdisc … netem` works here, tried in a namespace of this test's own.
fn netem_works() -> bool {
    let ns = format!("nplab-netem-probe-{}", std::process::id());
    let _ = Command::new("ip").args(["netns", "add", &ns]).status();
    let works = Command::new("ip")
        .args(["netns", "exec", &ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    works
}

#[test]
fn a_path_mtu_black_hole_and_a_policer_do_what_they_say_and_the_router_counts_it() {
    if !can_run() {
        return;
    }
    let clean = Clean::start();
    let big = format!("{}\n", "x".repeat(1400)).repeat(3).into_bytes();
    // The router's link to the server has an MTU of 1,280: the first 1,400-byte datagram (sent with
    // don't-fragment) is refused with "fragmentation needed", after which the client's kernel cuts
    // the others to fit, and they arrive.
    let out = lab(&["--mtu", "1280", "client", "--proto", "udp", "--timeout", "300ms"], &big);
    assert!(out.stderr().contains("sent 3, received 2, lost 1"), "{out}");
    assert!(out.stdout().contains("refused with an ICMP error"), "{out}");
    // The same with that ICMP error dropped: the client's kernel never learns, and none arrives.
    let out = lab(&["--mtu", "1280", "--block-icmp", "client", "--proto", "udp", "--timeout", "300ms"], &big);
    assert!(out.stderr().contains("sent 3, received 0, lost 3"), "a black hole: {out}");
    assert!(out.stdout().contains("path-MTU ICMP errors dropped: 3"), "{out}");
    // TCP is not caught: its segments are cut to the MSS the server announced, which fits.
    let out = lab(&["--mtu", "1280", "--block-icmp", "client", "--proto", "tcp"], &big);
    assert!(out.stderr().contains("sent 3, received 3, lost 0"), "{out}");
    // A policer of 20 packets a second, against a client that sends faster: what it dropped is
    // what the client lost, and the sums say so.
    let out = lab(&["--rate", "20/s", "client", "--proto", "udp", "--timeout", "200ms"], &lines(60));
    let policed = out.stdout().lines().find(|l| l.trim_start().starts_with("dropped by the policer")).map(String::from);
    assert!(policed.is_some(), "the policer dropped nothing: {out}");
    assert!(!out.stdout().contains("  OFF "), "{out}");
    clean.check();
}

#[test]
fn the_labs_server_is_the_one_the_command_expects() {
    if !can_run() {
        return;
    }
    let clean = Clean::start();
    // --expect echo: the lab's server echoes, so every reply is right.
    let out = lab(&["client", "--proto", "udp", "--expect", "echo"], b"straight back\n");
    assert_eq!(out.code, Some(0), "{out}");
    assert!(out.stdout().contains("Received from server: straight back\n"), "{out}");
    // A client's --max-message over the server's default: the server takes as much.
    let line = format!("{}\n", "y".repeat(1_500_000));
    let out = lab(&["client", "--proto", "tcp", "--max-message", "2M"], line.as_bytes());
    assert!(out.stderr().contains("sent 1, received 1, lost 0"), "{out}");
    clean.check();
}
