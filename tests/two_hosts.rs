//! Two hosts on one machine: network namespaces this test makes itself, joined by a veth pair with
//! IPv4 and IPv6 addresses, nftables dropping 1 packet in 10 each way. `netpair --proto tcp,udp
//! server` runs in one, `netpair compare --connect` in the other, and the figures must reconcile:
//! TCP delivers every reply and its kernel retransmitted; UDP's sent = received + lost, and nft's
//! own drop counters (and the client's receive buffer) account for every message lost.
//! Needs root, `ip` and `nft`: elsewhere it says SKIP; under CI=true their absence is a failure.

mod common;

use std::process::{Command, Stdio};

use common::Process;

fn can_run() -> bool {
    common::can_build_namespaces("two-host test")
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("run a command");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Two namespaces and a veth pair between them, removed when dropped.
struct Hosts {
    server: String,
    client: String,
}

impl Hosts {
    fn new() -> Hosts {
        let id = std::process::id();
        let hosts = Hosts { server: format!("np-two-s-{id}"), client: format!("np-two-c-{id}") };
        for ns in [&hosts.server, &hosts.client] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let (s, c) = (format!("nps{id}"), format!("npc{id}"));
        sh(&[
            "ip",
            "link",
            "add",
            &s,
            "netns",
            &hosts.server,
            "type",
            "veth",
            "peer",
            "name",
            &c,
            "netns",
            &hosts.client,
        ]);
        for (ns, dev, v4, v6) in
            [(&hosts.server, &s, "10.78.0.1/24", "fd00:78::1/64"), (&hosts.client, &c, "10.78.0.2/24", "fd00:78::2/64")]
        {
            sh(&["ip", "-n", ns, "addr", "add", v4, "dev", dev]);
            sh(&["ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        hosts
    }

    fn exec(&self, ns: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_netpair")]).args(args);
        command
    }

    /// One of nft's named counters in the server's namespace: its packets.
    fn counter(&self, name: &str) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.server, "nft", "list", "counter", "ip", "netpair_two", name])
            .output()
            .expect("nft");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("packets ").nth(1).and_then(|t| t.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

#[test]
fn compare_across_a_lossy_link_reconciles_with_the_kernel_and_nft() {
    if !can_run() {
        return;
    }
    let before = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list").stdout;
    {
        let hosts = Hosts::new();
        let server = Process::spawn(
            hosts.exec(&hosts.server, &["--proto", "tcp,udp", "--host", "0.0.0.0", "--port", "0", "server"]),
            Stdio::piped(),
        );
        let listening = server.wait_for("udp");
        let port = listening.lines().next().and_then(|l| l.rsplit(':').next()).expect("a port").to_string();
        // 1 in 10 of the conversation's small packets dropped each way, counted; the probes' big ones
        // (over 200 bytes) dropped as often but counted apart.
        let rules = format!(
            "table ip netpair_two {{
               counter small_in {{ }}
               counter small_out {{ }}
               counter tcp_dropped {{ }}
               chain input {{ type filter hook input priority 0; policy accept;
                 udp dport {port} meta length < 200 numgen random mod 10 == 0 counter name small_in drop
                 tcp dport {port} numgen random mod 10 == 0 counter name tcp_dropped drop
               }}
               chain output {{ type filter hook output priority 0; policy accept;
                 udp sport {port} meta length < 200 numgen random mod 10 == 0 counter name small_out drop
                 tcp sport {port} numgen random mod 10 == 0 counter name tcp_dropped drop
               }}
             }}"
        );
        let mut nft = Command::new("ip");
        nft.args(["netns", "exec", &hosts.server, "nft", "-f", "-"]).stdin(Stdio::piped());
        let mut child = nft.spawn().expect("nft");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), rules.as_bytes()).expect("rules");
        drop(child.stdin.take());
        assert!(child.wait().expect("nft").success(), "nft rules refused");

        let compare = hosts.exec(
            &hosts.client,
            &[
                "compare",
                "--connect",
                "--host",
                "10.78.0.1",
                "--port",
                &port,
                "--messages",
                "100",
                "--timeout",
                "300ms",
                "--json",
            ],
        );
        let out = common::run(compare, b"");
        assert_eq!(out.code, Some(0), "{out}");
        let doc: serde_json::Value = serde_json::from_str(&out.stdout()).expect("compare's JSON");
        let (tcp, udp) = (&doc["tcp"], &doc["udp"]);
        println!("tcp: {tcp}\nudp: {udp}");
        // TCP: every reply came (some after the 300 ms timeout, counted late), and the kernel resent.
        assert_eq!(tcp["sent"], 100, "{tcp}");
        // (The client ends at its input's end: a reply to the last message still on its way is not seen.)
        let seen = tcp["received"].as_u64().unwrap_or(0) + tcp["late"].as_u64().unwrap_or(0);
        assert!(seen >= 99, "TCP lost a reply for good: {tcp}");
        assert!(hosts.counter("tcp_dropped") > 0, "the link dropped no TCP packet");
        assert!(tcp["kernel"]["retransmitted_segments"].as_u64().unwrap_or(0) > 0, "no retransmission: {tcp}");
        // UDP: sent = received + lost, and each loss is a packet nft dropped (a request or its reply),
        // or one the client's own receive buffer dropped.
        let (sent, received, lost) = (udp["sent"].as_u64(), udp["received"].as_u64(), udp["lost"].as_u64());
        let (sent, received, lost) = (sent.expect("sent"), received.expect("received"), lost.expect("lost"));
        assert_eq!(sent, received + lost, "{udp}");
        let dropped = hosts.counter("small_in") + hosts.counter("small_out");
        let buffer = udp["kernel"]["receive_buffer_drops"].as_u64().expect("the kernel's drop count");
        assert!(lost > 0, "the link lost no UDP message: {udp}");
        assert_eq!(lost, dropped + buffer, "lost {lost} = nft dropped {dropped} + receive buffer {buffer}: {udp}");
        let out = server.stop();
        assert_eq!(out.code, Some(0), "{out}");
    }
    let after = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list").stdout;
    assert_eq!(String::from_utf8_lossy(&before), String::from_utf8_lossy(&after), "namespaces left behind");
}
