//! The server's event loop: peers come and go; each message is printed with its uppercase form and
//! answered by the reply policy; SIGINT/SIGTERM stop it after the replies already due are written.

mod background;
mod bind;

pub use background::Background;

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::Waker;

use crate::config::{Reply, ServerConfig};
use crate::error::{Result, describe};
use crate::event_loop::{EventLoop, SIGNALS, WAKER};
use crate::framing::Framing;
use crate::net::{Event, PeerId, Tokens, Transport};
use crate::proto::{Endpoint, Proto};
use crate::report::Report;
use crate::stdin::Input;
use crate::text::{count, grouped};
use crate::throttle::Throttle;
use crate::upper::Uppercased;

/// How often idle peers are looked for.
const TICK: Duration = Duration::from_millis(250);
/// Messages waiting at most for a reply typed on stdin (`--reply stdin`).
const OWED_MAX: usize = 1024;
/// How long a stopping server keeps writing replies already due.
const DRAIN: Duration = Duration::from_secs(2);
/// `--once` over datagrams, where no peer ever says it is done: the server ends once its client has
/// been silent this long (or for `--idle-timeout`, when that is shorter).
pub const ONCE_GRACE: Duration = Duration::from_secs(3);

/// Stops a server running on another thread, as SIGTERM would.
#[derive(Clone)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl Stopper {
    /// Asks the server to stop; it finishes writing what is due and returns.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

/// A peer of one of the server's transports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Peer {
    transport: usize,
    id: PeerId,
}

/// One socket the server serves, and its kind.
struct Served {
    proto: Proto,
    transport: Transport,
    /// Events it reported, handled after each step of the loop.
    events: Vec<Event>,
}

/// A bound server, ready to run.
pub struct Server {
    config: ServerConfig,
    served: Vec<Served>,
    event_loop: EventLoop,
    report: Report,
    stop_flag: Arc<AtomicBool>,
    stop_waker: Arc<Waker>,
    /// Replies owed from stdin, oldest first (`--reply stdin`).
    owed: VecDeque<Peer>,
    unanswerable: Throttle,
    /// The uppercase of the message being answered, reused from one message to the next.
    upper: Vec<u8>,
    lines: Option<Receiver<Input>>,
    first_peer: Option<Peer>,
    clients: u64,
    messages: u64,
    done: bool,
}

impl Server {
    /// Binds every configured transport. `catch_signals` makes SIGINT/SIGTERM stop it (the binary's case).
    pub fn bind(config: ServerConfig, mut report: Report, catch_signals: bool) -> Result<Server> {
        let mut event_loop = EventLoop::new(catch_signals)?;
        let mut served = Vec::new();
        for (proto, mut transport) in bind::all(&config)? {
            event_loop.watch(&mut transport)?;
            served.push(Served { proto, transport, events: Vec::new() });
        }
        // Several kinds at once: every line says which one its peer came over.
        report.name_kinds(served.iter().any(|s| s.proto != served[0].proto));
        let stop_waker = event_loop.waker();
        Ok(Server {
            config,
            served,
            event_loop,
            report,
            stop_flag: Arc::new(AtomicBool::new(false)),
            stop_waker,
            owed: VecDeque::new(),
            unanswerable: Throttle::default(),
            upper: Vec::new(),
            lines: None,
            first_peer: None,
            clients: 0,
            messages: 0,
            done: false,
        })
    }

    /// The first transport's bound address, as `Listening on` prints it.
    pub fn local_name(&self) -> String {
        self.served[0].transport.local_name()
    }

    /// Where clients reach the first transport: the configured endpoint with the port the OS gave for port 0.
    pub fn endpoint(&self) -> Endpoint {
        match (&self.config.common.endpoint, self.served[0].transport.local_addr()) {
            (Endpoint::Inet { host, .. }, Some(bound)) => Endpoint::Inet { host: host.clone(), port: bound.port() },
            (endpoint, _) => endpoint.clone(),
        }
    }

    /// A handle that stops this server from another thread.
    pub fn stopper(&self) -> Stopper {
        Stopper { flag: self.stop_flag.clone(), waker: self.stop_waker.clone() }
    }

    /// Serves until `--once` is done or a stop is asked for; replies come from `input` with `--reply stdin`.
    pub fn run(mut self, input: Box<dyn BufRead + Send>) -> Result<()> {
        if self.config.reply == Reply::Stdin {
            self.lines = Some(self.event_loop.read_lines(input, self.config.common.max_message)?);
        }
        for served in &self.served {
            self.report.set_kind(served.proto);
            self.report.listening(&served.transport.local_name())?;
        }
        let mut next_tick = Instant::now() + TICK;
        let mut draining_until = None;
        loop {
            let now = Instant::now();
            let mut timeout = next_tick.saturating_duration_since(now);
            if self.served.iter().any(|s| s.transport.has_unread()) {
                timeout = Duration::ZERO;
            }
            self.report.flush()?;
            self.event_loop.wait(Some(timeout))?;
            let registry = self.event_loop.poll.registry();
            let mut stop = false;
            for event in self.event_loop.events.iter() {
                match event.token() {
                    // A wake-up comes from stdin or from a stopper; the checks below tell which.
                    SIGNALS | WAKER => stop = true,
                    token => {
                        if let Some(served) = Tokens::owner(token).and_then(|t| self.served.get_mut(t)) {
                            served.transport.ready(registry, event, &mut served.events);
                        }
                    }
                }
            }
            self.handle_all()?;
            self.answer_from_stdin()?;
            self.each(|transport, registry, events| transport.read_unread(registry, events))?;
            self.each(|transport, registry, events| transport.flush(registry, events))?;
            if Instant::now() >= next_tick {
                let (idle, once_grace) = (self.config.idle_timeout, self.config.once.then_some(ONCE_GRACE));
                for served in &mut self.served {
                    let idle = idle_timeout(served.proto, idle, once_grace);
                    served.transport.tick(self.event_loop.poll.registry(), idle, &mut served.events);
                }
                self.handle_all()?;
                next_tick = Instant::now() + TICK;
            }

            let stop = stop && (self.event_loop.stop_requested() || self.stop_flag.load(Ordering::SeqCst));
            if (stop || self.done) && draining_until.is_none() {
                debug!("stopping: writing the replies already due");
                for served in &mut self.served {
                    served.transport.stop_reading(self.event_loop.poll.registry());
                }
                draining_until = Some(Instant::now() + DRAIN);
            }
            if let Some(deadline) = draining_until {
                if !self.served.iter().any(|s| s.transport.has_output()) {
                    break;
                }
                if Instant::now() >= deadline {
                    warn!("stopping with replies still unwritten: the peers were not reading");
                    break;
                }
            }
        }
        let mut kernel = crate::net::kernel::Account::default();
        for served in &self.served {
            kernel.merge(served.transport.account());
        }
        self.report.server_summary(self.clients, self.messages, &kernel)
    }

    /// Runs `step` on every transport, then handles what each reported.
    fn each(&mut self, mut step: impl FnMut(&mut Transport, &mio::Registry, &mut Vec<Event>)) -> Result<()> {
        for served in &mut self.served {
            step(&mut served.transport, self.event_loop.poll.registry(), &mut served.events);
        }
        self.handle_all()
    }

    fn handle_all(&mut self) -> Result<()> {
        for t in 0..self.served.len() {
            let mut events = std::mem::take(&mut self.served[t].events);
            let handled = self.handle(t, &mut events);
            // Hand the (empty) vector back, so that its room is reused.
            self.served[t].events = events;
            handled?;
        }
        Ok(())
    }

    fn handle(&mut self, t: usize, events: &mut Vec<Event>) -> Result<()> {
        self.report.set_kind(self.served[t].proto);
        for event in events.drain(..) {
            let transport = &mut self.served[t].transport;
            match event {
                Event::Connected(id) => {
                    self.clients += 1;
                    self.first_peer.get_or_insert(Peer { transport: t, id });
                    self.report.connected(transport.peer_name(id), || transport.nodelay(id))?;
                }
                Event::Message(id, message) => {
                    self.answer(Peer { transport: t, id }, &message)?;
                    self.served[t].transport.recycle(message);
                }
                Event::InputEnded(id) => {
                    // Said only while replies are owed: otherwise `Disconnected` follows at once.
                    let peer = Peer { transport: t, id };
                    let owed = self.owed.iter().filter(|&&owed| owed == peer).count();
                    if owed > 0 {
                        self.report.input_ended(self.served[t].transport.peer_name(id), owed)?;
                    }
                }
                Event::NotSent { peer, reason } => {
                    warn!("reply to {} not sent: {}", transport.peer_name(peer), describe(&reason));
                }
                Event::Closed { peer, name, reason } => {
                    let peer = Peer { transport: t, id: peer };
                    // Its messages still owed a typed reply: no line typed goes to a peer gone.
                    let unanswered = self.owed.iter().filter(|&&owed| owed == peer).count();
                    self.owed.retain(|&owed| owed != peer);
                    self.update_prompt();
                    self.report.disconnected(&name, &reason)?;
                    if unanswered > 0 {
                        self.report.unanswered(&name, unanswered as u64)?;
                    }
                    if self.config.once && self.first_peer == Some(peer) {
                        self.done = true;
                    }
                }
            }
        }
        Ok(())
    }

    fn transport(&mut self, peer: Peer) -> &mut Transport {
        &mut self.served[peer.transport].transport
    }

    fn peer_name(&self, peer: Peer) -> &str {
        self.served[peer.transport].transport.peer_name(peer.id)
    }

    fn answer(&mut self, peer: Peer, message: &[u8]) -> Result<()> {
        self.messages += 1;
        // One buffer for every message's uppercase form, rather than an allocation each.
        let mut buf = std::mem::take(&mut self.upper);
        let answered = self.reply(peer, &Uppercased::new(message, &mut buf));
        self.upper = buf;
        answered
    }

    fn reply(&mut self, peer: Peer, text: &Uppercased<'_>) -> Result<()> {
        let several = self.served.iter().map(|s| s.transport.peer_count()).sum::<usize>() > 1;
        let owed = self.config.reply == Reply::Stdin && self.lines.is_some() && self.owed.len() < OWED_MAX;
        if owed {
            // Queued first, so that a prompt shown again under the message names who is next.
            self.owed.push_back(peer);
            self.transport(peer).hold(peer.id, true);
            self.update_prompt();
        }
        let name = self.served[peer.transport].transport.peer_name(peer.id);
        self.report.message(name, several, text)?;
        if owed {
            if self.owed.len() == 1 {
                self.report.prompt()?;
            }
            return Ok(());
        }
        let reply = match self.config.reply {
            Reply::Upper => text.upper,
            Reply::Echo => text.message,
            Reply::Stdin => {
                if self.lines.is_none() {
                    debug!("no reply to {name}: stdin has ended");
                    return Ok(());
                }
                if self.owed.len() >= OWED_MAX {
                    // Bounded: a peer sending faster than anyone types gets no reply for the excess.
                    self.unanswerable.warn(format_args!(
                        "{OWED_MAX} messages already wait for a reply typed on stdin: no reply to this one from {name}"
                    ));
                    let earlier = self.owed.iter().filter(|&&owed| owed == peer).count();
                    self.transport(peer).unanswered(peer.id, earlier);
                }
                return Ok(());
            }
        };
        self.report.replied(name, reply)?;
        self.send(peer, reply)
    }

    /// Queues a reply, and handles what sending it may have shown (a peer gone).
    fn send(&mut self, peer: Peer, reply: &[u8]) -> Result<()> {
        let mut gone = Vec::new();
        self.transport(peer).send(peer.id, reply, &mut gone);
        // Nearly always nothing: not worth a pass through `handle` per message.
        if gone.is_empty() {
            return Ok(());
        }
        self.handle(peer.transport, &mut gone)
    }

    /// Makes the prompt name the peer the next typed line answers, when others wait too.
    fn update_prompt(&mut self) {
        let next = self.owed.front().copied();
        let others = next.is_some_and(|next| self.owed.iter().any(|&p| p != next));
        let named = next.filter(|_| others).map(|p| (self.served[p.transport].proto, self.peer_name(p).to_string()));
        self.report.set_prompt(next.is_some(), named.as_ref().map(|(proto, name)| (*proto, name.as_str())));
    }

    /// Pairs lines typed (or piped) on stdin with the oldest messages still owed a reply.
    fn answer_from_stdin(&mut self) -> Result<()> {
        while let (Some(&peer), Some(lines)) = (self.owed.front(), &self.lines) {
            let line = match lines.try_recv() {
                Ok(Input::Line(line)) => line,
                Ok(Input::TooLong { len }) => {
                    warn!(
                        "stdin line of {} bytes is over --max-message {}; skipped",
                        grouped(len as u64),
                        grouped(self.config.common.max_message as u64)
                    );
                    continue;
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Ok(Input::End) | Ok(Input::Failed(_)) | Err(TryRecvError::Disconnected) => {
                    warn!("stdin has ended: {} will get no reply", count(self.owed.len() as u64, "message"));
                    for peer in std::mem::take(&mut self.owed) {
                        self.transport(peer).hold(peer.id, false);
                    }
                    self.lines = None;
                    self.update_prompt();
                    return Ok(());
                }
            };
            let proto = self.served[peer.transport].proto;
            if line.is_empty() && self.config.common.framing == Framing::Raw && proto.is_stream() {
                // Zero bytes are no message on a raw stream: the reply is still owed, to the next line.
                warn!("an empty line cannot be sent over a raw stream: type the reply to {}", self.peer_name(peer));
                continue;
            }
            if line.is_empty() && proto == Proto::Seqpacket {
                // Zero bytes would read as the end of the connection.
                warn!("an empty line cannot be sent over seqpacket: type the reply to {}", self.peer_name(peer));
                continue;
            }
            self.owed.pop_front();
            self.report.answered();
            self.update_prompt();
            if !self.owed.contains(&peer) {
                self.transport(peer).hold(peer.id, false);
            }
            self.report.set_kind(proto);
            self.report.replied(self.served[peer.transport].transport.peer_name(peer.id), &line)?;
            self.send(peer, &line)?;
            if !self.owed.is_empty() {
                self.report.prompt()?;
            }
        }
        Ok(())
    }
}

/// How long a silent peer of a `proto` transport is kept: `--idle-timeout`, or less for `--once` over
/// datagrams, where no peer ever says it is done.
fn idle_timeout(proto: Proto, idle: Option<Duration>, once_grace: Option<Duration>) -> Option<Duration> {
    match once_grace {
        Some(grace) if !proto.is_connected() => Some(idle.map_or(grace, |idle| idle.min(grace))),
        _ => idle,
    }
}
