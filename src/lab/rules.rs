//! The router's nftables rules for a set of impairments, and the counters they keep, as text: what
//! `nft -f -` is given and what `nft list counters` answers. Pure, so every rule is unit-tested.
//!
//! Where each impairment acts, and why there:
//! - loss, the policer and dropped fragments act at the router's `ingress` hook of each link (the
//!   `netdev` family), which sees every packet as it came off the wire: each IP fragment on its own,
//!   before anything reassembles it, so a lost fragment loses its whole datagram as on a real link;
//! - duplication acts in `prerouting` (the `ip` and `ip6` families: `dup to ADDR device DEV` is not
//!   allowed in `inet`), after loss: a packet lost is never duplicated;
//! - the firewall and the blocked ICMP act where the router forwards (and, for the ICMP errors it
//!   makes itself, where they leave it).

use std::fmt::Write;

use super::topology::{CLIENT_V4, CLIENT_V6, PORT, ROUTER_TO_CLIENT, ROUTER_TO_SERVER, SERVER_V4, SERVER_V6};
use crate::config::{Firewall, Impairments};

/// Under `compare`, a UDP packet shorter than this (the IP packet's length) is the conversation's:
/// the size probes it sends after it are 1,000 bytes and more. (A fragment after a datagram's first
/// carries no UDP header, so a fragmented datagram counts once, by its first fragment.)
pub const SMALL: u32 = 1000;

/// The mark the loss rule gives a packet it has chosen, so that the rules after it can count what
/// kind of packet it was before dropping it.
const CHOSEN: u32 = 0x4e50;
/// The mark of a packet over the policer's rate, for the same purpose.
const POLICED: u32 = 0x4e51;

/// The two ways across the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// Client to server.
    ToServer,
    /// Server to client.
    ToClient,
}

impl Way {
    /// Both, in the order reports show them.
    pub const BOTH: [Way; 2] = [Way::ToServer, Way::ToClient];

    /// The prefix of this way's counters.
    pub fn name(self) -> &'static str {
        match self {
            Way::ToServer => "to_server",
            Way::ToClient => "to_client",
        }
    }

    /// The router's device this way's packets come in on.
    fn ingress(self) -> &'static str {
        match self {
            Way::ToServer => ROUTER_TO_CLIENT,
            Way::ToClient => ROUTER_TO_SERVER,
        }
    }

    /// The device they leave on, and the address of the host behind it (IPv4, IPv6).
    fn egress(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Way::ToServer => (ROUTER_TO_SERVER, SERVER_V4, SERVER_V6),
            Way::ToClient => (ROUTER_TO_CLIENT, CLIENT_V4, CLIENT_V6),
        }
    }

    /// The match for the server's port on this way: its destination port going, source port back.
    fn port(self, l4: &str) -> String {
        match self {
            Way::ToServer => format!("{l4} dport {PORT}"),
            Way::ToClient => format!("{l4} sport {PORT}"),
        }
    }
}

/// What each way counts, in the order reports show them: (name, what it counts).
pub const COUNTERS: [(&str, &str); 10] = [
    ("packets", "IP packets that came to the router"),
    ("udp", "of them, the conversation's UDP datagrams"),
    ("lost", "dropped at random (--loss)"),
    ("udp_lost", "of them, the conversation's UDP datagrams"),
    ("tcp_lost", "of them, TCP segments"),
    ("fragments_dropped", "IP fragments dropped (--drop-fragments)"),
    ("policed", "dropped by the policer (--rate)"),
    ("udp_policed", "of them, the conversation's UDP datagrams"),
    ("duplicated", "duplicated (--dup)"),
    ("udp_duplicated", "of them, the conversation's UDP datagrams"),
];

/// The counters no way owns.
pub const SHARED_COUNTERS: [(&str, &str); 3] = [
    ("firewall", "sent to the server's port and stopped by the firewall"),
    ("too_big", "packets too big for the next link, refused with an ICMP error (rate-limited)"),
    ("icmp_blocked", "path-MTU ICMP errors dropped"),
];

/// The name of a way's counter.
pub fn counter(way: Way, what: &str) -> String {
    format!("{}_{what}", way.name())
}

/// Hundredths of a percent as nft's `numgen` test: true for that share of packets.
fn chance(hundredths: u32) -> String {
    format!("numgen random mod 10000 < {hundredths}")
}

/// The whole ruleset for the router's namespace. `probes`: the command sends large probes after
/// its conversation (`compare`), to be told apart by size.
pub fn ruleset(imp: &Impairments, probes: bool) -> String {
    let conversation = |way: Way| {
        if probes { format!("{} meta length < {SMALL}", way.port("udp")) } else { way.port("udp") }
    };
    let mut out = String::new();
    out.push_str(&ingress_table(imp, &conversation));
    for family in ["ip", "ip6"] {
        out.push_str(&dup_table(family, imp, &conversation));
    }
    out.push_str(&forward_table(imp));
    out
}

/// `netdev`: counting, loss, fragments, the policer; one chain per way, on the device it comes in on.
fn ingress_table(imp: &Impairments, conversation: &dyn Fn(Way) -> String) -> String {
    let mut t = String::from("table netdev netpair_lab {\n");
    for way in Way::BOTH {
        for (what, _) in COUNTERS.iter().filter(|(what, _)| !what.contains("duplicated")) {
            let _ = writeln!(t, "  counter {} {{ }}", counter(way, what));
        }
    }
    for way in Way::BOTH {
        let c = |what: &str| counter(way, what);
        let udp = conversation(way);
        let _ = writeln!(t, "  chain {} {{", way.name());
        let _ = writeln!(t, "    type filter hook ingress device \"{}\" priority 0; policy accept;", way.ingress());
        // ARP and IPv6's neighbour discovery keep the link up: nothing impairs them.
        t.push_str("    meta protocol != { ip, ip6 } accept\n");
        t.push_str(
            "    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept\n",
        );
        let _ = writeln!(t, "    counter name {}", c("packets"));
        let _ = writeln!(t, "    {udp} counter name {}", c("udp"));
        if imp.drop_fragments {
            let _ = writeln!(t, "    ip frag-off & 0x3fff != 0 counter name {} drop", c("fragments_dropped"));
            let _ = writeln!(t, "    exthdr frag exists counter name {} drop", c("fragments_dropped"));
        }
        if let Some(rate) = imp.rate {
            let _ = writeln!(t, "    limit rate over {rate}/second meta mark set {POLICED:#x}");
            let _ = writeln!(t, "    meta mark {POLICED:#x} {udp} counter name {}", c("udp_policed"));
            let _ = writeln!(t, "    meta mark {POLICED:#x} counter name {} drop", c("policed"));
        }
        let loss = match way {
            Way::ToServer => imp.loss_to_server,
            Way::ToClient => imp.loss_to_client,
        };
        if loss > 0 {
            let _ = writeln!(t, "    {} meta mark set {CHOSEN:#x}", chance(loss));
            let _ = writeln!(t, "    meta mark {CHOSEN:#x} {udp} counter name {}", c("udp_lost"));
            let _ = writeln!(t, "    meta mark {CHOSEN:#x} meta l4proto tcp counter name {}", c("tcp_lost"));
            let _ = writeln!(t, "    meta mark {CHOSEN:#x} counter name {} drop", c("lost"));
        }
        t.push_str("  }\n");
    }
    t.push_str("}\n");
    t
}

/// `ip` or `ip6`: duplication, in prerouting, by sending a copy straight to the host behind the
/// other link.
fn dup_table(family: &str, imp: &Impairments, conversation: &dyn Fn(Way) -> String) -> String {
    let mut t = format!("table {family} netpair_lab_dup {{\n");
    for way in Way::BOTH {
        for what in ["duplicated", "udp_duplicated"] {
            let _ = writeln!(t, "  counter {} {{ }}", counter(way, what));
        }
    }
    t.push_str("  chain prerouting {\n    type filter hook prerouting priority 0; policy accept;\n");
    if imp.dup > 0 {
        for way in Way::BOTH {
            let (device, v4, v6) = way.egress();
            let to = if family == "ip" { v4 } else { v6 };
            let small = conversation(way);
            let _ = writeln!(t, "    iifname \"{}\" {} meta mark set {CHOSEN:#x}", way.ingress(), chance(imp.dup));
            let _ = writeln!(t, "    meta mark {CHOSEN:#x} {small} counter name {}", counter(way, "udp_duplicated"));
            let _ = writeln!(
                t,
                "    iifname \"{}\" meta mark {CHOSEN:#x} counter name {} meta mark set 0 dup to {to} device \"{device}\"",
                way.ingress(),
                counter(way, "duplicated")
            );
        }
    }
    t.push_str("  }\n}\n");
    t
}

/// `inet`: the firewall in front of the server's port, and the blocked path-MTU errors, whether
/// forwarded or made by the router itself.
fn forward_table(imp: &Impairments) -> String {
    let mut t = String::from("table inet netpair_lab_filter {\n");
    for (what, _) in SHARED_COUNTERS {
        let _ = writeln!(t, "  counter {what} {{ }}");
    }
    let mut icmp = String::new();
    if imp.block_icmp {
        icmp.push_str("    icmp type destination-unreachable icmp code frag-needed counter name icmp_blocked drop\n");
        icmp.push_str("    icmpv6 type packet-too-big counter name icmp_blocked drop\n");
    }
    t.push_str("  chain forward {\n    type filter hook forward priority 0; policy accept;\n");
    t.push_str(&icmp);
    let to_port = format!("oifname \"{ROUTER_TO_SERVER}\"");
    match imp.firewall {
        Some(Firewall::Drop) => {
            let _ = writeln!(t, "    {to_port} meta l4proto {{ tcp, udp }} th dport {PORT} counter name firewall drop");
        }
        Some(Firewall::Reject) => {
            let _ = writeln!(t, "    {to_port} tcp dport {PORT} counter name firewall reject with tcp reset");
            let _ =
                writeln!(t, "    {to_port} udp dport {PORT} counter name firewall reject with icmpx port-unreachable");
        }
        None => {}
    }
    t.push_str("  }\n  chain output {\n    type filter hook output priority 0; policy accept;\n");
    // The router's own "fragmentation needed" and "packet too big": each a packet it could not
    // forward (the kernel drops it before any forward hook sees it).
    t.push_str("    icmp type destination-unreachable icmp code frag-needed counter name too_big\n");
    t.push_str("    icmpv6 type packet-too-big counter name too_big\n");
    t.push_str(&icmp);
    t.push_str("  }\n}\n");
    t
}

/// The counters in `nft list counters` output, by name, summed over the tables that have one of
/// that name (the `ip` and `ip6` duplication tables both do).
pub fn parse_counters(listing: &str) -> Vec<(String, u64)> {
    let mut found: Vec<(String, u64)> = Vec::new();
    let mut name: Option<String> = None;
    for line in listing.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("counter ") {
            name = rest.split_whitespace().next().map(str::to_string);
        }
        if let (Some(n), Some(rest)) = (&name, line.strip_prefix("packets ")) {
            let packets = rest.split_whitespace().next().and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
            match found.iter_mut().find(|(have, _)| have == n) {
                Some((_, sum)) => *sum += packets,
                None => found.push((n.clone(), packets)),
            }
            name = None;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_impairment_still_counts_both_ways() {
        let rules = ruleset(&Impairments::default(), false);
        for way in Way::BOTH {
            assert!(rules.contains(&format!("counter name {}", counter(way, "packets"))), "{rules}");
        }
        assert!(!rules.contains(" drop\n"), "nothing is dropped: {rules}");
        assert!(!rules.contains("dup to"), "{rules}");
    }

    #[test]
    fn loss_is_per_way_in_hundredths() {
        let imp = Impairments { loss_to_server: 1000, loss_to_client: 0, ..Impairments::default() };
        let rules = ruleset(&imp, true);
        let to_server = rules.split("chain to_client").next().unwrap_or_default();
        assert!(to_server.contains("numgen random mod 10000 < 1000 meta mark set"), "{rules}");
        let to_client = rules.split("chain to_client").nth(1).unwrap_or_default();
        assert!(!to_client.split("table ip ").next().unwrap_or_default().contains("numgen"), "{rules}");
        assert!(to_server.contains("udp dport 5001 meta length < 1000 counter name to_server_udp_lost"));
    }

    #[test]
    fn dup_sends_each_way_to_the_host_behind_the_other_link() {
        let rules = ruleset(&Impairments { dup: 500, ..Impairments::default() }, false);
        assert!(rules.contains(&format!("dup to {SERVER_V4} device \"{ROUTER_TO_SERVER}\"")), "{rules}");
        assert!(rules.contains(&format!("dup to {CLIENT_V6} device \"{ROUTER_TO_CLIENT}\"")), "{rules}");
    }

    #[test]
    fn the_firewall_drops_or_rejects_only_the_servers_port() {
        let drop = ruleset(&Impairments { firewall: Some(Firewall::Drop), ..Impairments::default() }, false);
        assert!(drop.contains("th dport 5001 counter name firewall drop"), "{drop}");
        let reject = ruleset(&Impairments { firewall: Some(Firewall::Reject), ..Impairments::default() }, false);
        assert!(reject.contains("tcp dport 5001 counter name firewall reject with tcp reset"), "{reject}");
        assert!(reject.contains("reject with icmpx port-unreachable"), "{reject}");
    }

    #[test]
    fn counters_parse_and_sum_across_tables() {
        let listing = "table ip netpair_lab_dup {\n\tcounter to_server_duplicated {\n\t\tpackets 3 bytes 120\n\t}\n}\n\
                       table ip6 netpair_lab_dup {\n\tcounter to_server_duplicated {\n\t\tpackets 2 bytes 80\n\t}\n\
                       \tcounter to_client_duplicated {\n\t\tpackets 0 bytes 0\n\t}\n}\n";
        assert_eq!(
            parse_counters(listing),
            vec![("to_server_duplicated".to_string(), 5), ("to_client_duplicated".to_string(), 0)]
        );
    }
}
