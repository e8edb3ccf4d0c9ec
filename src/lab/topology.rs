//! The lab's network: three namespaces (client, router, server), two veth links, their addresses
//! and routes, built with `ip` and torn down again; and the leftovers of runs that were killed.
//!
//! ```text
//!  client ── lab0 10.88.1.2 ─── to-client 10.88.1.1  router  to-server 10.88.2.1 ─── lab0 10.88.2.2 ── server
//!                 fd88:1::2              fd88:1::1          fd88:2::1  (--mtu here)       fd88:2::2
//! ```
//! Nothing is made or changed outside the three namespaces: the veth pairs are created in them, and
//! the rules live in the router's. A run's namespaces are named after its process id
//! (`nplab-PID-client`); the next run, or `netpair lab down`, removes those whose process is gone.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The server's port in the lab (its namespace is new and empty, so the tutorial's port is free).
pub const PORT: u16 = 5001;
/// The client's addresses.
pub const CLIENT_V4: &str = "10.88.1.2";
/// The client's IPv6 address.
pub const CLIENT_V6: &str = "fd88:1::2";
/// The server's addresses.
pub const SERVER_V4: &str = "10.88.2.2";
/// The server's IPv6 address.
pub const SERVER_V6: &str = "fd88:2::2";
/// The router's device on the client's link.
pub const ROUTER_TO_CLIENT: &str = "to-client";
/// The router's device on the server's link.
pub const ROUTER_TO_SERVER: &str = "to-server";
/// The name of each end host's device.
const HOST_DEVICE: &str = "lab0";
/// What every lab namespace's name starts with.
const PREFIX: &str = "nplab-";

/// The three roles, in the order they are built.
pub const ROLES: [&str; 3] = ["client", "router", "server"];

/// A lab's namespaces: removed on drop unless it is meant to stand (`netpair lab up`).
pub struct Topology {
    /// What comes between `nplab-` and the role: the process id, or `up` for a standing lab.
    tag: String,
    /// Whether dropping it removes it.
    keep: bool,
}

impl Topology {
    /// The name of one role's namespace.
    pub fn namespace(&self, role: &str) -> String {
        namespace(&self.tag, role)
    }

    /// Builds the network: namespaces, links, addresses, routes, forwarding. Whatever was built
    /// when a step fails is removed again before the error is returned.
    pub fn build(tag: &str, mtu: Option<u32>, keep: bool) -> Result<Topology> {
        let mut lab = Topology { tag: tag.to_string(), keep: false };
        for role in ROLES {
            if Path::new("/run/netns").join(lab.namespace(role)).exists() {
                return Err(lab_error(format!(
                    "namespace {} exists already (`netpair lab down` removes a standing lab)",
                    lab.namespace(role)
                )));
            }
        }
        let (c, r, s) = (lab.namespace("client"), lab.namespace("router"), lab.namespace("server"));
        let mut steps: Vec<Vec<String>> = Vec::new();
        let mut step = |words: &[&str]| steps.push(words.iter().map(|w| w.to_string()).collect());
        for ns in [&c, &r, &s] {
            step(&["netns", "add", ns]);
        }
        for ns in [&c, &r, &s] {
            step(&["-n", ns, "link", "set", "lo", "up"]);
            // No duplicate address detection on links that are new and private: without it the
            // link-local addresses work at once, not a second or two later (losing what was sent).
            step(&["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
            step(&["netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
        }
        step(&["-n", &c, "link", "add", HOST_DEVICE, "type", "veth", "peer", "name", ROUTER_TO_CLIENT, "netns", &r]);
        step(&["-n", &s, "link", "add", HOST_DEVICE, "type", "veth", "peer", "name", ROUTER_TO_SERVER, "netns", &r]);
        let mtu = mtu.map(|m| m.to_string());
        if let Some(mtu) = &mtu {
            step(&["-n", &s, "link", "set", HOST_DEVICE, "mtu", mtu]);
            step(&["-n", &r, "link", "set", ROUTER_TO_SERVER, "mtu", mtu]);
        }
        let links = [
            (&c, HOST_DEVICE, "10.88.1.2/24", "fd88:1::2/64"),
            (&r, ROUTER_TO_CLIENT, "10.88.1.1/24", "fd88:1::1/64"),
            (&r, ROUTER_TO_SERVER, "10.88.2.1/24", "fd88:2::1/64"),
            (&s, HOST_DEVICE, "10.88.2.2/24", "fd88:2::2/64"),
        ];
        for (ns, dev, v4, v6) in links {
            step(&["-n", ns, "addr", "add", v4, "dev", dev]);
            step(&["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            step(&["-n", ns, "link", "set", dev, "up"]);
        }
        for (ns, v4, v6) in [(&c, "10.88.1.1", "fd88:1::1"), (&s, "10.88.2.1", "fd88:2::1")] {
            step(&["-n", ns, "route", "add", "default", "via", v4]);
            step(&["-n", ns, "-6", "route", "add", "default", "via", v6]);
        }
        step(&["netns", "exec", &r, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
        for words in steps {
            if let Err(err) = run_ip(&words) {
                lab.remove();
                return Err(err);
            }
        }
        let ends = [(&c, HOST_DEVICE), (&r, ROUTER_TO_CLIENT), (&r, ROUTER_TO_SERVER), (&s, HOST_DEVICE)];
        for (ns, dev) in ends {
            if let Err(err) = wait_until_up(ns, dev) {
                lab.remove();
                return Err(err);
            }
        }
        lab.keep = keep;
        Ok(lab)
    }

    /// Runs `program` with `args` in one role's namespace and returns its stdout.
    pub fn exec(&self, role: &str, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let ns = self.namespace(role);
        let mut words = vec!["netns", "exec", &ns, program];
        words.extend_from_slice(args);
        output(&words, stdin)
    }

    /// Removes the namespaces (and with them the links and rules); what is already gone is fine.
    fn remove(&self) {
        remove_namespaces(&self.tag);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if !self.keep {
            self.remove();
        }
    }
}

/// Waits for a link the kernel has been told to bring up to carry packets. Until the kernel's
/// link watcher gives it a queue, a few hundred milliseconds later, what is sent on it is dropped.
fn wait_until_up(ns: &str, dev: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = output(&["-n", ns, "-o", "link", "show", "dev", dev], None)?;
        if state.contains("state UP") && !state.contains("qdisc noop") {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(lab_error(format!("{dev} in {ns} did not come up within 5 s: {}", state.trim())));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The name of `role`'s namespace in the lab tagged `tag`.
pub fn namespace(tag: &str, role: &str) -> String {
    format!("{PREFIX}{tag}-{role}")
}

/// Removes the lab tagged `tag`: stops what still runs in its namespaces, then deletes them.
/// Returns the namespaces it removed.
pub fn remove_namespaces(tag: &str) -> Vec<String> {
    let mut removed = Vec::new();
    for role in ROLES {
        let ns = namespace(tag, role);
        if !Path::new("/run/netns").join(&ns).exists() {
            continue;
        }
        // Processes a user started in a standing lab: a namespace with them in it would outlive its
        // name, holding its links.
        if let Ok(pids) = output(&["netns", "pids", &ns], None) {
            for pid in pids.split_whitespace().filter_map(|p| p.parse::<i32>().ok()) {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
        }
        if run_ip(&["netns", "del", &ns]).is_ok() {
            removed.push(ns);
        }
    }
    removed
}

/// The tags of labs whose runs are gone: `nplab-PID-…` namespaces whose process has ended.
pub fn leftovers() -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let Ok(entries) = std::fs::read_dir("/run/netns") else { return tags };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((tag, _role)) = name.strip_prefix(PREFIX).and_then(|rest| rest.rsplit_once('-')) else { continue };
        let Ok(pid) = tag.parse::<u32>() else { continue };
        if !tags.iter().any(|t| t == tag) && !alive(pid) {
            tags.push(tag.to_string());
        }
    }
    tags
}

/// Whether process `pid` still runs. (Any process: a lab is never taken from a run that may still
/// be using it, whatever its binary is called; a reused pid only delays the sweep until it ends or
/// `netpair lab down`.)
fn alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Runs `ip WORDS`; its stderr's first line is the error.
fn run_ip<S: AsRef<str>>(words: &[S]) -> Result<()> {
    output(words, None).map(drop)
}

/// Runs `ip WORDS` (with `stdin` fed in), returning its stdout; a failure says which command and why.
fn output<S: AsRef<str>>(words: &[S], stdin: Option<&str>) -> Result<String> {
    let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
    let shown = format!("ip {}", words.join(" "));
    let mut child = Command::new("ip")
        .args(&words)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => lab_error("`ip` is not installed (Debian: apt-get install iproute2)".into()),
            _ => Error::io("running ip", e),
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| Error::io(format!("feeding {shown}"), e))?;
    }
    let out = child.wait_with_output().map_err(|e| Error::io(format!("running {shown}"), e))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(lab_error(format!("`{shown}`: {}", first_line(&out.stderr))))
}

/// A failure to build or run the lab (exit 1): `netpair: error: the lab: WHY`.
pub fn lab_error(why: String) -> Error {
    Error::io("the lab", io::Error::other(why))
}

/// An open namespace, for a thread to move into.
pub struct Entry {
    file: File,
    name: String,
}

impl Entry {
    /// Opens the namespace called `name`.
    pub fn open(name: &str) -> Result<Entry> {
        let path = Path::new("/run/netns").join(name);
        let file = File::open(&path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok(Entry { file, name: name.to_string() })
    }

    /// Moves the calling thread into it: the sockets it opens from now on, and the threads it
    /// starts, are that host's.
    pub fn enter(&self) -> Result<()> {
        use rustix::thread::{LinkNameSpaceType, move_into_link_name_space};
        move_into_link_name_space(std::os::fd::AsFd::as_fd(&self.file), Some(LinkNameSpaceType::Network))
            .map_err(|e| Error::io(format!("entering namespace {}", self.name), e.into()))
    }
}

/// The first line with something on it of what a program said, or that it said nothing.
pub fn first_line(said: &[u8]) -> String {
    let said = String::from_utf8_lossy(said);
    said.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("it failed, saying nothing").to_string()
}
