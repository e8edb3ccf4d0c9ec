//! The server's event loop: peers come and go; each message is printed with its uppercase form and
//! answered by the reply policy; SIGINT/SIGTERM stop it after the replies already due are written.

mod background;

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
use crate::net::{Event, PeerId, Settings, Transport};
use crate::proto::Endpoint;
use crate::report::Report;
use crate::stdin::Input;
use crate::throttle::Throttle;
use crate::upper::upper_into;

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

/// A bound server, ready to run.
pub struct Server {
    config: ServerConfig,
    transport: Transport,
    event_loop: EventLoop,
    report: Report,
    stop_flag: Arc<AtomicBool>,
    stop_waker: Arc<Waker>,
    /// Replies owed from stdin, oldest first (`--reply stdin`).
    owed: VecDeque<PeerId>,
    unanswerable: Throttle,
    /// The uppercase of the message being answered, reused from one message to the next.
    upper: Vec<u8>,
    lines: Option<Receiver<Input>>,
    first_peer: Option<PeerId>,
    clients: u64,
    messages: u64,
    done: bool,
}

/// The transport settings a server config implies.
pub fn settings(config: &ServerConfig) -> Settings {
    Settings {
        proto: config.common.proto,
        framing: config.common.framing,
        max_message: config.common.max_message,
        max_peers: if config.once { 1 } else { config.max_clients },
        once: config.once,
        max_buffered: config.max_buffered,
    }
}

impl Server {
    /// Binds the configured address. `catch_signals` makes SIGINT/SIGTERM stop it (the binary's case).
    pub fn bind(config: ServerConfig, report: Report, catch_signals: bool) -> Result<Server> {
        let mut transport = Transport::listen(&settings(&config), &config.common.endpoint)?;
        let event_loop = EventLoop::new(&mut transport, catch_signals)?;
        let stop_waker = event_loop.waker();
        Ok(Server {
            config,
            transport,
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

    /// The bound address, as `Listening on` prints it.
    pub fn local_name(&self) -> String {
        self.transport.local_name()
    }

    /// Where clients reach this server: the configured endpoint with the port the OS gave for port 0.
    pub fn endpoint(&self) -> Endpoint {
        match (&self.config.common.endpoint, self.transport.local_addr()) {
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
        self.report.listening(&self.transport.local_name())?;
        let mut batch = Vec::new();
        let mut next_tick = Instant::now() + TICK;
        let mut draining_until = None;
        loop {
            let now = Instant::now();
            let mut timeout = next_tick.saturating_duration_since(now);
            if self.transport.has_unread() {
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
                    token if Transport::owns(token) => self.transport.ready(registry, event, &mut batch),
                    _ => {}
                }
            }
            self.handle(&mut batch)?;
            self.answer_from_stdin()?;
            self.transport.read_unread(self.event_loop.poll.registry(), &mut batch);
            self.handle(&mut batch)?;
            self.transport.flush(self.event_loop.poll.registry(), &mut batch);
            self.handle(&mut batch)?;
            if Instant::now() >= next_tick {
                let idle = self.idle_timeout();
                self.transport.tick(self.event_loop.poll.registry(), idle, &mut batch);
                self.handle(&mut batch)?;
                next_tick = Instant::now() + TICK;
            }

            let stop = stop && (self.event_loop.stop_requested() || self.stop_flag.load(Ordering::SeqCst));
            if (stop || self.done) && draining_until.is_none() {
                debug!("stopping: writing the replies already due");
                self.transport.stop_reading(self.event_loop.poll.registry());
                draining_until = Some(Instant::now() + DRAIN);
            }
            if let Some(deadline) = draining_until {
                if !self.transport.has_output() {
                    break;
                }
                if Instant::now() >= deadline {
                    warn!("stopping with replies still unwritten: the peers were not reading");
                    break;
                }
            }
        }
        self.report.server_summary(self.clients, self.messages)
    }

    /// How long a silent peer is kept: `--idle-timeout`, or less for `--once` over datagrams.
    fn idle_timeout(&self) -> Option<Duration> {
        let idle = self.config.idle_timeout;
        if self.config.once && !self.config.common.proto.is_stream() {
            return Some(idle.map_or(ONCE_GRACE, |idle| idle.min(ONCE_GRACE)));
        }
        idle
    }

    fn handle(&mut self, batch: &mut Vec<Event>) -> Result<()> {
        for event in batch.drain(..) {
            match event {
                Event::Connected(peer) => {
                    self.clients += 1;
                    self.first_peer.get_or_insert(peer);
                    self.report.connected(self.transport.peer_name(peer))?;
                }
                Event::Message(peer, message) => {
                    self.answer(peer, &message)?;
                    self.transport.recycle(message);
                }
                Event::NotSent { peer, reason } => {
                    warn!("reply to {} not sent: {}", self.transport.peer_name(peer), describe(&reason));
                }
                Event::Closed { peer, name, reason } => {
                    self.owed.retain(|&owed| owed != peer);
                    self.report.disconnected(&name, &reason)?;
                    if self.config.once && self.first_peer == Some(peer) {
                        self.done = true;
                    }
                }
            }
        }
        Ok(())
    }

    fn answer(&mut self, peer: PeerId, message: &[u8]) -> Result<()> {
        self.messages += 1;
        // One buffer for every message's uppercase form, rather than an allocation each.
        let mut upper = std::mem::take(&mut self.upper);
        upper.clear();
        upper_into(message, &mut upper);
        let answered = self.reply(peer, message, &upper);
        self.upper = upper;
        answered
    }

    fn reply(&mut self, peer: PeerId, message: &[u8], upper: &[u8]) -> Result<()> {
        let name = self.transport.peer_name(peer);
        self.report.message(name, self.transport.peer_count() > 1, message, upper)?;
        let reply = match self.config.reply {
            Reply::Upper => upper,
            Reply::Echo => message,
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
                    self.transport.unanswered(peer, earlier);
                    return Ok(());
                }
                self.owed.push_back(peer);
                self.transport.hold(peer, true);
                if self.owed.len() == 1 {
                    self.report.prompt()?;
                }
                return Ok(());
            }
        };
        self.report.replied(name, reply)?;
        self.send(peer, reply)
    }

    /// Queues a reply, and handles what sending it may have shown (a peer gone).
    fn send(&mut self, peer: PeerId, reply: &[u8]) -> Result<()> {
        let mut gone = Vec::new();
        self.transport.send(peer, reply, &mut gone);
        self.handle(&mut gone)
    }

    /// Pairs lines typed (or piped) on stdin with the oldest messages still owed a reply.
    fn answer_from_stdin(&mut self) -> Result<()> {
        while let (Some(&peer), Some(lines)) = (self.owed.front(), &self.lines) {
            let line = match lines.try_recv() {
                Ok(Input::Line(line)) => line,
                Ok(Input::TooLong { len }) => {
                    warn!(
                        "stdin line of {len} bytes is over --max-message {}; skipped",
                        self.config.common.max_message
                    );
                    continue;
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Ok(Input::End) | Ok(Input::Failed(_)) | Err(TryRecvError::Disconnected) => {
                    warn!("stdin has ended: {} message(s) will get no reply", self.owed.len());
                    for peer in std::mem::take(&mut self.owed) {
                        self.transport.hold(peer, false);
                    }
                    self.lines = None;
                    return Ok(());
                }
            };
            if line.is_empty() && self.config.common.framing == Framing::Raw && self.config.common.proto.is_stream() {
                // Zero bytes are no message on a raw stream: the reply is still owed, to the next line.
                warn!(
                    "an empty line cannot be sent over a raw stream: type the reply to {}",
                    self.transport.peer_name(peer)
                );
                continue;
            }
            self.owed.pop_front();
            if !self.owed.contains(&peer) {
                self.transport.hold(peer, false);
            }
            self.report.replied(self.transport.peer_name(peer), &line)?;
            self.send(peer, &line)?;
            if !self.owed.is_empty() {
                self.report.prompt()?;
            }
        }
        Ok(())
    }
}
