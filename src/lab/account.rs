//! What the network did during a lab run, from the router's counters, and whether it reconciles
//! with what netpair counted at the client: every UDP message accounted for by a packet the router
//! saw, lost or duplicated; every TCP reply delivered.

use std::fmt::Write as _;

use super::rules::{self, COUNTERS, SHARED_COUNTERS, Way};
use crate::config::Impairments;
use crate::json::{Json, object_of};
use crate::proto::Proto;
use crate::report::Summary;
use crate::text::grouped;

/// The router's counters over one run (after less before).
pub struct Network {
    counts: Vec<(String, u64)>,
}

impl Network {
    /// What the counters rose by between two readings.
    pub fn between(before: &[(String, u64)], after: &[(String, u64)]) -> Network {
        let was = |name: &str| before.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v);
        Network { counts: after.iter().map(|(name, v)| (name.clone(), v.saturating_sub(was(name)))).collect() }
    }

    fn get(&self, name: &str) -> u64 {
        self.counts.iter().find(|(n, _)| n == name).map_or(0, |(_, v)| *v)
    }

    /// One way's counter.
    pub fn way(&self, way: Way, what: &str) -> u64 {
        self.get(&rules::counter(way, what))
    }
}

/// One sum that holds, or by how much it does not.
pub struct Check {
    /// The sum, in words and figures.
    pub said: String,
    /// How far the two sides are apart (0: it holds).
    pub off_by: i64,
    /// Why a small difference may be no fault (shown only when it does not hold).
    pub excuse: Option<String>,
}

/// A percentage given in hundredths, as text: `10`, `0.5`.
pub fn percent(hundredths: u32) -> String {
    if hundredths.is_multiple_of(100) {
        (hundredths / 100).to_string()
    } else {
        format!("{}.{:02}", hundredths / 100, hundredths % 100).trim_end_matches('0').to_string()
    }
}

/// The sums that say whether netpair's counts and the network's agree, for each conversation.
pub fn reconcile(n: &Network, conversations: &[(Proto, Summary)], imp: &Impairments) -> Vec<Check> {
    let mut checks = Vec::new();
    for (proto, s) in conversations {
        match proto {
            Proto::Udp => udp(&mut checks, n, s, imp),
            Proto::Tcp => tcp(&mut checks, n, s),
            _ => {}
        }
    }
    checks
}

fn udp(checks: &mut Vec<Check>, n: &Network, s: &Summary, imp: &Impairments) {
    let (to_s, to_c) = (Way::ToServer, Way::ToClient);
    let requests = n.way(to_s, "udp");
    let (requests_lost, requests_duplicated) = (n.way(to_s, "udp_lost"), n.way(to_s, "udp_duplicated"));
    let requests_policed = n.way(to_s, "udp_policed");
    let replies = n.way(to_c, "udp");
    let (replies_lost, replies_duplicated) = (n.way(to_c, "udp_lost"), n.way(to_c, "udp_duplicated"));
    let replies_policed = n.way(to_c, "udp_policed");
    let diff = |a: u64, b: u64| a as i64 - b as i64;
    checks.push(Check {
        said: format!(
            "udp: {} messages sent = {} the router saw going to the server",
            grouped(s.sent),
            grouped(requests)
        ),
        off_by: diff(s.sent, requests),
        excuse: None,
    });
    let policing = imp.rate.is_some();
    let reached = (requests + requests_duplicated).saturating_sub(requests_lost + requests_policed);
    let stopped_elsewhere = imp.firewall.is_some() || imp.drop_fragments;
    checks.push(Check {
        said: format!(
            "udp: {} replies the server sent = {}",
            grouped(replies),
            on_the_way(requests, requests_lost, policing.then_some(requests_policed), requests_duplicated)
        ),
        off_by: diff(replies, reached),
        excuse: Some(match n.get("too_big") {
            0 if stopped_elsewhere => "the firewall or the fragment rule also dropped packets".into(),
            0 => "the server's receive buffer overflowed, a reply was still on its way, or a fragment was lost".into(),
            too_big => format!("the router refused {} packets as too big for its link to the server", grouped(too_big)),
        }),
    });
    let arrived = (replies + replies_duplicated).saturating_sub(replies_lost + replies_policed);
    let buffer = s.kernel.dropped.unwrap_or(0);
    let taken = s.received + s.late + s.duplicates + s.unexpected + buffer;
    checks.push(Check {
        said: format!(
            "udp: {} replies in time + {} late + {} duplicates + {} unasked-for + {} the client's full buffer dropped = {}",
            grouped(s.received),
            grouped(s.late),
            grouped(s.duplicates),
            grouped(s.unexpected),
            grouped(buffer),
            on_the_way(replies, replies_lost, policing.then_some(replies_policed), replies_duplicated)
        ),
        off_by: diff(taken, arrived),
        excuse: Some("the client had ended before its last reply came, or a fragment was lost".into()),
    });
    checks.push(Check {
        said: format!(
            "udp: {} sent = {} answered in time + {} lost (no reply within the timeout)",
            grouped(s.sent),
            grouped(s.received),
            grouped(s.lost)
        ),
        off_by: diff(s.sent, s.received + s.lost),
        excuse: None,
    });
}

/// `N sent - N lost [- N policed] + N duplicated on the way`: what of `sent` crossed the router.
fn on_the_way(sent: u64, lost: u64, policed: Option<u64>, duplicated: u64) -> String {
    let policed = policed.map_or(String::new(), |p| format!(" - {} policed", grouped(p)));
    format!("{} - {} lost{policed} + {} duplicated on the way", grouped(sent), grouped(lost), grouped(duplicated))
}

fn tcp(checks: &mut Vec<Check>, n: &Network, s: &Summary) {
    let dropped = n.way(Way::ToServer, "tcp_lost") + n.way(Way::ToClient, "tcp_lost");
    let resent = s.kernel.tcp.as_ref().map_or(0, |t| t.retransmitted);
    checks.push(Check {
        said: format!(
            "tcp: {} replies in time + {} late = {} sent (the link lost {} segments; the client's kernel resent {})",
            grouped(s.received),
            grouped(s.late),
            grouped(s.sent),
            grouped(dropped),
            grouped(resent)
        ),
        off_by: (s.received + s.late) as i64 - s.sent as i64,
        excuse: Some("the client had ended before its last reply came".into()),
    });
}

/// The network's account and the sums, as text.
pub fn text(n: &Network, checks: &[Check], imp: &Impairments) -> String {
    let mut out = format!("\nthe network, as the router's nftables counters saw it ({}):\n", super::describe(imp));
    let _ = writeln!(out, "  {:<52} {:>13} {:>13}", "", "to the server", "to the client");
    for (what, said) in COUNTERS {
        let (a, b) = (n.way(Way::ToServer, what), n.way(Way::ToClient, what));
        if what == "packets" || what == "udp" || a + b > 0 {
            let label = if said.starts_with("of them") { format!("  {said}") } else { said.to_string() };
            let _ = writeln!(out, "  {label:<52} {:>13} {:>13}", grouped(a), grouped(b));
        }
    }
    for (what, said) in SHARED_COUNTERS {
        if n.get(what) > 0 {
            let _ = writeln!(out, "  {said}: {}", grouped(n.get(what)));
        }
    }
    if !checks.is_empty() {
        out.push_str("\nreconciled with netpair's counts:\n");
    }
    for check in checks {
        match check.off_by {
            0 => {
                let _ = writeln!(out, "  ok   {}", check.said);
            }
            off => {
                let _ = writeln!(out, "  OFF  {} (off by {off:+})", check.said);
                if let Some(excuse) = &check.excuse {
                    let _ = writeln!(out, "       possible reasons: {excuse}");
                }
            }
        }
    }
    out
}

/// The network's account and the sums, as one line of JSON (`"event":"lab"`).
pub fn json(n: &Network, checks: &[Check], imp: &Impairments, words: &[String]) -> String {
    let way = |w: Way| object_of(COUNTERS.iter().map(|(what, _)| (what.to_string(), n.way(w, what).to_string())));
    let shared = object_of(SHARED_COUNTERS.iter().map(|(what, _)| (what.to_string(), n.get(what).to_string())));
    let network = object_of([
        ("to_server".to_string(), way(Way::ToServer)),
        ("to_client".to_string(), way(Way::ToClient)),
        ("shared".to_string(), shared),
    ]);
    let checks_json: Vec<String> = checks
        .iter()
        .map(|c| {
            let mut j = Json::default();
            j.str("sum", &c.said).bool("holds", c.off_by == 0).num("off_by", c.off_by as f64);
            j.finish()
        })
        .collect();
    let mut j = Json::default();
    j.str("event", "lab")
        .str("impairments", &super::describe(imp))
        .str("command", &words.join(" "))
        .raw("network", &network)
        .raw("checks", &format!("[{}]", checks_json.join(",")))
        .bool("reconciled", checks.iter().all(|c| c.off_by == 0));
    j.finish() + "\n"
}
