//! The kernel's own account of a run's sockets, which knows why a message was late or lost: TCP's
//! round-trip estimate and retransmissions (`TCP_INFO`), the datagrams a socket's full receive
//! buffer dropped (`SO_RXQ_OVFL`), and the ICMP errors that came back, with who sent them.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::time::Duration;

use crate::json::Json;
use crate::sys;

/// What the kernel says of one side's sockets. Each part is there only when the kernel gave it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Account {
    /// TCP's figures, for a side with TCP connections.
    pub tcp: Option<Tcp>,
    /// Datagrams dropped on arrival because this side's receive buffer was full.
    pub dropped: Option<u64>,
    /// ICMP errors the kernel reported to this side (a client's connected UDP socket).
    pub icmp: Vec<Icmp>,
    /// The path MTU to the peer, as the kernel knows it for a connected socket (`IP_MTU`).
    pub path_mtu: Option<u32>,
}

/// `TCP_INFO`, summed over the connections of a run (a server's) or of the one connection (a client's).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tcp {
    /// Connections the figures were read from.
    pub connections: u64,
    /// The smoothed round-trip time and its variance, of the last connection read.
    pub srtt: Duration,
    /// The variance of the round-trip estimate.
    pub rttvar: Duration,
    /// Segments sent again, in all.
    pub retransmitted: u64,
    /// Segments the kernel takes to be lost, at the time it was asked.
    pub lost: u64,
    /// The largest segment sent.
    pub mss: u32,
    /// The largest packet the path carries, as TCP knows it.
    pub path_mtu: u32,
}

/// One ICMP error: what it said and which host sent it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Icmp {
    /// What the error said, in words.
    pub what: &'static str,
    /// The host that sent it.
    pub from: Option<IpAddr>,
}

impl fmt::Display for Icmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.from {
            Some(from) => write!(f, "{} from {from}", self.what),
            None => f.write_str(self.what),
        }
    }
}

impl Account {
    /// Adds what `TCP_INFO` says of a TCP socket now (a connection about to close, or still open).
    pub(super) fn add_tcp(&mut self, sock: &impl AsFd) {
        let Some(info) = sys::tcp_info(sock) else { return };
        let tcp = self.tcp.get_or_insert_with(Tcp::default);
        tcp.connections += 1;
        tcp.srtt = Duration::from_micros(info.tcpi_rtt.into());
        tcp.rttvar = Duration::from_micros(info.tcpi_rttvar.into());
        tcp.retransmitted += u64::from(info.tcpi_total_retrans);
        tcp.lost += u64::from(info.tcpi_lost);
        tcp.mss = info.tcpi_snd_mss;
        tcp.path_mtu = info.tcpi_pmtu;
    }

    /// Notes an ICMP error taken from a socket's error queue.
    pub(super) fn add_icmp(&mut self, err: sys::IcmpError) {
        const KEPT: usize = 16;
        if self.icmp.len() < KEPT {
            self.icmp.push(Icmp { what: icmp_meaning(err), from: err.from });
        }
    }

    /// The account as a JSON object: every figure the kernel gave, under its own key.
    pub fn json(&self) -> String {
        let mut k = Json::default();
        if let Some(tcp) = &self.tcp {
            k.int("tcp_connections", tcp.connections)
                .num("srtt_ms", tcp.srtt.as_secs_f64() * 1e3)
                .num("rttvar_ms", tcp.rttvar.as_secs_f64() * 1e3)
                .int("retransmitted_segments", tcp.retransmitted)
                .int("lost_segments", tcp.lost)
                .int("mss", tcp.mss.into())
                .int("tcp_path_mtu", tcp.path_mtu.into());
        }
        if let Some(dropped) = self.dropped {
            k.int("receive_buffer_drops", dropped);
        }
        if let Some(mtu) = self.path_mtu {
            k.int("path_mtu", mtu.into());
        }
        if !self.icmp.is_empty() {
            let errors: Vec<String> = self.icmp.iter().map(Icmp::to_string).collect();
            k.str("icmp_errors", &errors.join(", "));
        }
        k.finish()
    }

    /// The path MTU to the peer, from TCP's figures or a connected socket's.
    pub fn mtu(&self) -> Option<u32> {
        self.tcp.as_ref().map(|t| t.path_mtu).filter(|&m| m > 0).or(self.path_mtu)
    }

    /// Whether there is anything to say.
    pub fn is_empty(&self) -> bool {
        *self == Account::default()
    }

    /// Both sides' accounts of one run side by side, or this side's with the other's added.
    pub fn merge(&mut self, other: Account) {
        match (&mut self.tcp, other.tcp) {
            (Some(mine), Some(theirs)) => {
                mine.connections += theirs.connections;
                mine.retransmitted += theirs.retransmitted;
                mine.lost += theirs.lost;
                (mine.srtt, mine.rttvar, mine.mss, mine.path_mtu) =
                    (theirs.srtt, theirs.rttvar, theirs.mss, theirs.path_mtu);
            }
            (mine @ None, theirs) => *mine = theirs,
            (Some(_), None) => {}
        }
        self.dropped = match (self.dropped, other.dropped) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        };
        self.icmp.extend(other.icmp);
        self.path_mtu = self.path_mtu.or(other.path_mtu);
    }
}

/// An ICMP error in words, for the kinds a socket tutorial meets.
fn icmp_meaning(err: sys::IcmpError) -> &'static str {
    match (err.v6, err.kind, err.code) {
        (false, 3, 0) | (true, 1, 0) => "no route to the network",
        (false, 3, 1) | (true, 1, 3) => "host unreachable",
        (false, 3, 3) | (true, 1, 4) => "port unreachable",
        (false, 3, 4) | (true, 2, _) => "fragmentation needed (packet too big)",
        (false, 3, 9 | 10 | 13) | (true, 1, 1) => "prohibited by a firewall",
        (false, 3, _) | (true, 1, _) => "destination unreachable",
        (false, 11, _) | (true, 3, _) => "time exceeded",
        _ => "ICMP error",
    }
}

/// The path MTU the kernel knows for a connected IP socket.
pub(super) fn path_mtu(sock: &impl AsFd, v6: bool) -> Option<u32> {
    let mtu = if v6 { rustix::net::sockopt::ipv6_mtu(sock) } else { rustix::net::sockopt::ip_mtu(sock) };
    mtu.ok()
}

impl fmt::Display for Account {
    /// One clause for a summary line: "kernel: tcp srtt 0.045 ms ±0.012, 23 segments retransmitted, …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(tcp) = &self.tcp {
            parts.push(format!(
                "tcp srtt {:.3} ms ±{:.3}, {} retransmitted, {} lost, mss {}, path mtu {}",
                tcp.srtt.as_secs_f64() * 1e3,
                tcp.rttvar.as_secs_f64() * 1e3,
                crate::text::count(tcp.retransmitted, "segment"),
                tcp.lost,
                tcp.mss,
                tcp.path_mtu
            ));
        }
        if let Some(dropped) = self.dropped {
            parts.push(format!("receive buffer dropped {}", crate::text::count(dropped, "datagram")));
        }
        if !self.icmp.is_empty() {
            let seen: Vec<String> = self.icmp.iter().map(Icmp::to_string).collect();
            parts.push(format!("icmp: {}", seen.join(", ")));
        }
        if let (None, Some(mtu)) = (&self.tcp, self.path_mtu) {
            parts.push(format!("path mtu {mtu}"));
        }
        write!(f, "kernel: {}", parts.join("; "))
    }
}
