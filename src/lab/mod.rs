//! `netpair lab`: a client and a server on two hosts of one machine, with a router between them
//! that loses, duplicates, fragments, polices or firewalls their packets; then what the network did,
//! from nftables' own counters, beside what netpair counted.
//!
//! The hosts are network namespaces ([`topology`]); the router's rules are made by [`rules`]; the
//! report reconciles the two accounts ([`account`]). The server and the command run in this process,
//! each on a thread moved into its host's namespace, so there is nothing to leave running: the
//! namespaces are removed when the run ends, and, should the process be killed, by a janitor
//! process that waits for it to die, or by the next run.

mod account;
mod rules;
mod topology;

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::thread;

use log::warn;

use self::topology::{SERVER_V4, SERVER_V6, Topology, lab_error};
use crate::config::{
    Config, Expect, Firewall, Impairments, LabAction, LabConfig, Listen, Reply, ServerConfig, default_max_message,
};
use crate::error::{Error, Result, exit};
use crate::framing::Framing;
use crate::proto::{Endpoint, Proto};
use crate::report::{self, Report, Summary};
use crate::server::Background;
use crate::{bench, client, compare, sys};

pub use self::topology::{PORT, SERVER_V4 as SERVER_ADDRESS, SERVER_V6 as SERVER_ADDRESS_V6};

/// Runs `netpair lab`.
pub fn run(config: LabConfig) -> Result<u8> {
    match config.action {
        LabAction::Down => down(),
        LabAction::CleanAfter(pid) => clean_after(pid),
        LabAction::Up => up(&config.impairments),
        LabAction::Run { command, words, json } => run_in(&config.impairments, *command, &words, json),
    }
}

/// What a lab needs of the machine: root, `ip` and `nft`. Checked before anything is built.
fn preflight() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(lab_error(
            "it needs root, to make network namespaces and nftables rules (run it with sudo)".into(),
        ));
    }
    for (program, package) in [("ip", "iproute2"), ("nft", "nftables")] {
        let found = Command::new(program).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if found.is_err() {
            return Err(lab_error(format!("`{program}` is not installed (Debian: apt-get install {package})")));
        }
    }
    if !std::path::Path::new("/proc/self/ns/net").exists() {
        return Err(lab_error("this kernel has no network namespaces".into()));
    }
    Ok(())
}

/// Removes the labs of runs that are gone, saying so.
fn sweep() {
    for tag in topology::leftovers() {
        let removed = topology::remove_namespaces(&tag);
        if !removed.is_empty() {
            warn!("removed what a lab run that is gone left behind: {}", removed.join(", "));
        }
    }
}

/// `netpair lab down`: the standing lab and every leftover.
fn down() -> Result<u8> {
    preflight()?;
    let mut removed = topology::remove_namespaces("up");
    for tag in topology::leftovers() {
        removed.extend(topology::remove_namespaces(&tag));
    }
    let said = if removed.is_empty() {
        "netpair lab: no lab to remove\n".to_string()
    } else {
        format!("netpair lab: removed {}\n", removed.join(", "))
    };
    io::stderr().write_all(said.as_bytes()).map_err(|e| Error::io("writing to stderr", e))?;
    Ok(exit::OK)
}

/// The janitor: waits for stdin to close (its run has ended, however it ended), then removes what
/// the run with process id `pid` may have left.
fn clean_after(pid: u32) -> Result<u8> {
    let _ = io::stdin().lock().read_to_end(&mut Vec::new());
    topology::remove_namespaces(&pid.to_string());
    Ok(exit::OK)
}

/// A janitor process for this run, in a process group of its own (a Ctrl-C for the run does not reach
/// it). Dropped, it is told the run is over.
struct Janitor(Option<Child>);

impl Janitor {
    fn start() -> Result<Janitor> {
        let exe = std::env::current_exe().map_err(|e| Error::io("finding netpair's own executable", e))?;
        let child = Command::new(exe)
            .args(["lab", "--clean-after", &std::process::id().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io("starting the lab's janitor", e))?;
        Ok(Janitor(Some(child)))
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

/// Builds the network and applies the impairments: the router's rules, and netem where asked for.
fn build(tag: &str, imp: &Impairments, keep: bool, probes: bool) -> Result<Topology> {
    let lab = Topology::build(tag, imp.mtu, keep)?;
    lab.exec("router", "nft", &["-f", "-"], Some(&rules::ruleset(imp, probes)))?;
    if let Some(netem) = netem_words(imp) {
        for device in [topology::ROUTER_TO_SERVER, topology::ROUTER_TO_CLIENT] {
            let mut args = vec!["qdisc", "add", "dev", device, "root", "netem"];
            args.extend(netem.iter().map(String::as_str));
            lab.exec("router", "tc", &args, None).map_err(|err| {
                let said = err.to_string();
                let tc = said.rsplit("`: ").next().unwrap_or(&said);
                lab_error(format!(
                    "--delay, --jitter and --reorder need the kernel's netem queueing discipline (sch_netem), \
                     which this kernel does not offer (tc: {tc})"
                ))
            })?;
        }
    }
    Ok(lab)
}

/// The arguments of `tc qdisc add … netem`, if any impairment needs netem.
fn netem_words(imp: &Impairments) -> Option<Vec<String>> {
    if imp.delay.is_none() && imp.jitter.is_none() && imp.reorder == 0 {
        return None;
    }
    let ms = |d: std::time::Duration| format!("{}us", d.as_micros());
    let mut words = vec!["delay".to_string(), ms(imp.delay.unwrap_or_default())];
    if let Some(jitter) = imp.jitter {
        words.push(ms(jitter));
    }
    if imp.reorder > 0 {
        words.extend(["reorder".to_string(), format!("{}.{:02}%", imp.reorder / 100, imp.reorder % 100)]);
    }
    Some(words)
}

/// `netpair lab up`: the network stands until `netpair lab down`; says how to use it.
fn up(imp: &Impairments) -> Result<u8> {
    preflight()?;
    sweep();
    let lab = build("up", imp, true, false)?;
    let exe = std::env::current_exe().map_or_else(|_| "netpair".to_string(), |p| p.display().to_string());
    let (c, r, s) = (lab.namespace("client"), lab.namespace("router"), lab.namespace("server"));
    let text = format!(
        "netpair lab: up: client {} ({}), router, server {SERVER_V4} ({SERVER_V6}); {}\n\
         \n  in one terminal:  ip netns exec {s} {exe} --proto tcp,udp server --host {SERVER_V4}\
         \n  in another:       ip netns exec {c} {exe} --proto tcp client --host {SERVER_V4}\
         \n  the router's counters:  ip netns exec {r} nft list counters\
         \n  when done:        netpair lab down   (it also stops what still runs in the lab)\n",
        topology::CLIENT_V4,
        topology::CLIENT_V6,
        describe(imp),
    );
    report::print(text.as_bytes())?;
    Ok(exit::OK)
}

/// Runs `command` in the client's namespace against a server in the server's, then reports.
fn run_in(imp: &Impairments, command: Config, words: &[String], json: bool) -> Result<u8> {
    preflight()?;
    sweep();
    let janitor = Janitor::start()?;
    let probes = matches!(command, Config::Compare(_));
    let lab = build(&std::process::id().to_string(), imp, false, probes)?;
    let server = start_server(&lab, &command)?;
    let before = counters(&lab)?;
    let outcome = in_namespace(&lab, "client", move || execute(command));
    let stopped = server.stop();
    let after = counters(&lab)?;
    // A command that failed (refused, timed out) still gets the network's account: it is often why.
    let (status, summaries) = match outcome {
        Ok((status, summaries)) => (Ok(status), summaries),
        Err(err) => (Err(err), Vec::new()),
    };
    let network = account::Network::between(&before, &after);
    let checks = account::reconcile(&network, &summaries, imp);
    let text = if json { account::json(&network, &checks, imp, words) } else { account::text(&network, &checks, imp) };
    report::print(text.as_bytes())?;
    drop(lab);
    drop(janitor);
    stopped?;
    status
}

/// The router's counters now.
fn counters(lab: &Topology) -> Result<Vec<(String, u64)>> {
    Ok(rules::parse_counters(&lab.exec("router", "nft", &["list", "counters"], None)?))
}

/// Runs `f` on a thread of its own inside `role`'s namespace, and returns what it returned.
fn in_namespace<T: Send + 'static>(
    lab: &Topology,
    role: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let path = lab.namespace(role);
    let enter = topology::Entry::open(&path)?;
    thread::Builder::new()
        .name(format!("netpair-lab-{role}"))
        .spawn(move || enter.enter().and_then(|()| f()))
        .map_err(|e| Error::io("starting a thread", e))?
        .join()
        .unwrap_or_else(|_| Err(Error::io(format!("the lab's {role}"), io::Error::other("it panicked"))))
}

/// The lab's server: TCP and UDP on the server's two addresses, port 5001, in its namespace.
fn start_server(lab: &Topology, command: &Config) -> Result<Background> {
    // The server the command expects: its framing, its largest message, replies as it checks them.
    let (framing, clients, max_message, expect) = match command {
        Config::Client(c) => (c.common.framing, 1, c.common.max_message, c.expect.unwrap_or(Expect::Upper)),
        Config::Bench(b) => (Framing::Line, b.clients, 0, b.expect),
        _ => (Framing::Line, 1, 0, Expect::Upper),
    };
    let at = |host: &str| Endpoint::Inet { host: host.to_string(), port: PORT };
    let mut config = ServerConfig::in_process(Proto::Tcp, at(SERVER_V4), framing, clients.saturating_add(64));
    config.idle_timeout = None;
    if expect == Expect::Echo {
        config.reply = Reply::Echo;
    }
    if let Config::Bench(bench) = command {
        config.common.nodelay = bench.nodelay;
        if bench.reconnect {
            // Each message from a socket of its own, never heard from again once answered (over UDP
            // a peer of its own): forget each soon, and count none against a limit meant for clients.
            config.idle_timeout = Some(std::time::Duration::from_secs(1));
            config.max_clients = usize::MAX;
        }
    }
    config.common.max_message = config.common.max_message.max(max_message);
    for (proto, host) in [(Proto::Udp, SERVER_V4), (Proto::Tcp, SERVER_V6), (Proto::Udp, SERVER_V6)] {
        let max_message = default_max_message(proto).max(max_message);
        config.also.push(Listen { proto, endpoint: at(host), max_message });
    }
    sys::raise_open_file_limit((clients as u64).saturating_mul(2).saturating_add(64));
    in_namespace(lab, "server", move || Background::start(config, Report::discard(Proto::Tcp)))
}

/// Runs the lab's command (already in the client's namespace): its exit status, and the
/// conversations whose counts the report reconciles.
fn execute(command: Config) -> Result<(u8, Vec<(Proto, Summary)>)> {
    match command {
        Config::Client(config) => {
            let proto = config.common.proto;
            let summary = client::run_on_stdin(config)?;
            Ok((summary.exit_status(), vec![(proto, summary)]))
        }
        Config::Compare(config) => compare::run(&config).map(|summaries| (exit::OK, summaries)),
        Config::Bench(config) => bench::run(&config).map(|status| (status, Vec::new())),
        Config::Print(text) => report::print(&text).map(|()| (exit::OK, Vec::new())),
        other => Err(Error::Usage(format!("the lab runs compare, bench or client, not {other:?}"))),
    }
}

/// The impairments in words, for the reports.
pub(crate) fn describe(imp: &Impairments) -> String {
    let pct = |h: u32| format!("{}%", account::percent(h));
    let mut said: Vec<String> = Vec::new();
    match (imp.loss_to_server, imp.loss_to_client) {
        (0, 0) => {}
        (a, b) if a == b => said.push(format!("loss {} each way", pct(a))),
        (a, b) => said.push(format!("loss {} to the server, {} back", pct(a), pct(b))),
    }
    if imp.dup > 0 {
        said.push(format!("{} duplicated each way", pct(imp.dup)));
    }
    if let Some(mtu) = imp.mtu {
        said.push(format!("MTU {mtu} between router and server"));
    }
    if imp.drop_fragments {
        said.push("fragments dropped".into());
    }
    if imp.block_icmp {
        said.push("path-MTU ICMP blocked".into());
    }
    match imp.firewall {
        Some(Firewall::Drop) => said.push(format!("a firewall drops port {PORT}")),
        Some(Firewall::Reject) => said.push(format!("a firewall rejects port {PORT}")),
        None => {}
    }
    if let Some(rate) = imp.rate {
        said.push(format!("policed to {rate} packets/s each way"));
    }
    if said.is_empty() { "a clean link".into() } else { said.join(", ") }
}
