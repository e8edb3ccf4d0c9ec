//! The client's event loop: each input line becomes one message, sent while fewer than `--window`
//! await their replies; replies are matched to their messages, late ones reported as late. When
//! input ends, the client ends its side as `--end` says.

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use log::warn;

use crate::config::{ClientConfig, End, Expect};
use crate::error::{Error, Result};
use crate::event_loop::{EventLoop, SIGNALS};
use crate::framing::Framing;
use crate::net::{Closed, Event, Settings, Tokens, Transport};
use crate::proto::Proto;
use crate::report::{Report, Summary};
use crate::stdin::Input;
use crate::text::grouped;
use crate::upper::{MAX_GROWTH, upper};

/// Timed-out messages remembered so their replies can still be recognised as late.
const OVERDUE_KEPT: usize = 1024;
/// Answered messages remembered so a second reply to one can be told from the awaited one's.
const ANSWERED_KEPT: usize = 64;

/// A message sent and not yet answered.
struct Pending {
    seq: u64,
    message: Vec<u8>,
    sent_at: Instant,
}

struct Client {
    config: ClientConfig,
    transport: Transport,
    event_loop: EventLoop,
    report: Report,
    lines: Receiver<Input>,
    /// An input line read ahead while the window was full, to see whether input had ended.
    ahead: Option<Input>,
    /// Messages awaiting replies, oldest first: at most `--window`.
    waiting: VecDeque<Pending>,
    overdue: VecDeque<Pending>,
    /// The last messages answered (datagrams only: a stream never duplicates).
    answered: VecDeque<Pending>,
    /// `--end half-close`: the sending side is shut; the conversation ends when the server closes
    /// (or, with no reply awaited, at this time).
    half_closed: Option<Instant>,
    /// Half-closed, the server has closed too: the conversation is over.
    server_done: bool,
    summary: Summary,
    line_no: u64,
    input_done: bool,
    prompted: bool,
    broken: Option<Error>,
    /// The hint that replies may lack line ends has been given (once a run is enough).
    hinted_raw: bool,
    /// Of the wrong replies (`--expect`), those that were their message unchanged.
    echoed: u64,
    /// The server said it was full: the one line that says so is the whole story.
    turned_away: bool,
}

/// [`run`] as the `client` command does: lines from stdin, the report on stdout and stderr (and,
/// under `--json`, a fatal error as an event too), signals caught.
pub fn run_on_stdin(config: ClientConfig) -> Result<Summary> {
    let common = config.common.clone();
    let stdin = Box::new(std::io::BufReader::new(std::io::stdin()));
    crate::report::with_json_error(&common, run(config, crate::report::report_for(&common), stdin, true))
}

/// Converses with the server: sends each line of `input`, prints replies, and returns what was seen.
/// A broken connection is an error (after the summary has been printed).
pub fn run(
    config: ClientConfig,
    report: Report,
    input: Box<dyn BufRead + Send>,
    catch_signals: bool,
) -> Result<Summary> {
    let settings = Settings {
        proto: config.common.proto,
        framing: config.common.framing,
        // A reply is the message uppercased, which can triple its bytes ("ΐ" becomes 3 characters):
        // what the client may send, the server may answer three times over.
        max_message: config.common.max_message.saturating_mul(MAX_GROWTH),
        max_peers: 1,
        tokens: Tokens::of(0),
        once: false,
        max_buffered: usize::MAX,
        nodelay: config.common.nodelay,
        writes: config.writes,
        kernel_account: true,
    };
    let mut transport = Transport::connect(&settings, &config.common.endpoint, config.connect_timeout)?;
    let mut event_loop = EventLoop::new(catch_signals)?;
    event_loop.watch(&mut transport)?;
    // Read ahead no more than a line can hold; longer lines are reported and skipped.
    let lines = event_loop.read_lines(input, config.common.max_message)?;
    let mut client = Client {
        config,
        transport,
        event_loop,
        report,
        lines,
        ahead: None,
        waiting: VecDeque::new(),
        overdue: VecDeque::new(),
        answered: VecDeque::new(),
        half_closed: None,
        server_done: false,
        summary: Summary::default(),
        line_no: 0,
        input_done: false,
        prompted: false,
        broken: None,
        hinted_raw: false,
        echoed: 0,
        turned_away: false,
    };
    let converse = client.converse();
    client.summary.kernel = client.transport.account();
    if client.config.end == End::Reset
        && let Err(e) = client.transport.reset_on_close()
    {
        warn!("cannot set SO_LINGER to 0 for a reset: {e}");
    }
    // A closed stdout ends the run quietly: no summary of a conversation nobody is reading.
    if converse.as_ref().is_err_and(Error::is_broken_pipe) {
        return converse.map(|()| client.summary);
    }
    if !client.turned_away {
        client.hint_expect()?;
        client.report.client_summary(&client.summary)?;
    }
    converse?;
    match client.broken {
        Some(err) => Err(err),
        None => Ok(client.summary),
    }
}

impl Client {
    fn converse(&mut self) -> Result<()> {
        let mut batch = Vec::new();
        self.next_message()?;
        while self.goes_on() {
            // No --timeout (`none`): wait as long as it takes, for a reply or for the server to close.
            let mut timeout = self.config.timeout.and_then(|limit| {
                self.waiting
                    .front()
                    .map(|w| w.sent_at + limit)
                    .or(self.half_closed.map(|at| at + limit))
                    .map(|due| due.saturating_duration_since(Instant::now()))
            });
            // A send can fail at once (a datagram too long, a dead unixgram server): say so now,
            // not after waiting --timeout for a reply that cannot come.
            if self.transport.has_unread() || self.broken.is_some() {
                timeout = Some(Duration::ZERO);
            }
            self.report.flush()?;
            self.event_loop.wait(timeout)?;
            let registry = self.event_loop.poll.registry();
            let mut stop = false;
            for event in self.event_loop.events.iter() {
                match event.token() {
                    SIGNALS => stop = true,
                    token if Tokens::owner(token).is_some() => self.transport.ready(registry, event, &mut batch),
                    _ => {}
                }
            }
            self.transport.read_unread(registry, &mut batch);
            self.transport.flush(registry, &mut batch);
            self.handle(&mut batch)?;
            let interrupted = stop && self.event_loop.stop_requested();
            if self.broken.is_some() || interrupted {
                // Interrupted, or nobody to talk to: what is still awaited is lost.
                self.summary.interrupted = interrupted;
                self.summary.lost += self.waiting.drain(..).count() as u64;
                return Ok(());
            }
            self.check_timeout()?;
            self.next_message()?;
            self.end_gracefully()?;
        }
        // Closing at once (--end close, reset): the replies still awaited will not be read.
        self.summary.lost += self.waiting.drain(..).count() as u64;
        Ok(())
    }

    /// Whether the conversation goes on: input is left, or (as `--end` says) replies are awaited
    /// or the server's end of file is.
    fn goes_on(&self) -> bool {
        if !self.input_done {
            return true;
        }
        let waited = self.half_closed.is_some_and(|at| self.config.timeout.is_some_and(|limit| at.elapsed() >= limit));
        let draining = self.half_closed.is_some() && self.broken.is_none() && !self.server_done;
        match self.config.end {
            // Half-closed to hear the replies still owed (see `end_gracefully`): one timeout more.
            End::Wait => !self.waiting.is_empty() || (draining && !waited),
            End::HalfClose => draining && (!self.waiting.is_empty() || !waited),
            End::Close | End::Reset => false,
        }
    }

    /// The default end over a stream, when every message has had its reply or timed out and some
    /// replies are still owed: shut the sending side and read on, for one more --timeout or until
    /// the server closes. Closing at once instead, with replies on their way (or unread), would make
    /// the kernel answer with a reset, which also throws away what it has not yet delivered of the
    /// last messages (over a lossy link, segments still being resent).
    fn end_gracefully(&mut self) -> Result<()> {
        let owed = !self.overdue.is_empty() && self.waiting.is_empty();
        if self.config.end != End::Wait || !self.input_done || !owed || self.half_closed.is_some() {
            return Ok(());
        }
        if !self.transport.is_ordered() || self.broken.is_some() {
            return Ok(());
        }
        self.half_closed = Some(Instant::now());
        let mut closed = Vec::new();
        self.transport.half_close(self.event_loop.poll.registry(), &mut closed);
        self.handle(&mut closed)
    }

    /// Input has ended: `--end half-close` shuts the sending side now.
    fn end_input(&mut self) -> Result<()> {
        self.input_done = true;
        if self.config.end == End::HalfClose && self.half_closed.is_none() {
            self.half_closed = Some(Instant::now());
            let mut closed = Vec::new();
            self.transport.half_close(self.event_loop.poll.registry(), &mut closed);
            self.handle(&mut closed)?;
        }
        Ok(())
    }

    fn handle(&mut self, batch: &mut Vec<Event>) -> Result<()> {
        for event in batch.drain(..) {
            match event {
                Event::Message(_, reply) => self.on_reply(reply)?,
                // Half-closed, the server's end after the replies owed is the conversation's end.
                Event::Closed { reason: Closed::ByPeer, .. } if self.half_closed.is_some() => {
                    self.summary.lost += self.waiting.drain(..).count() as u64;
                    self.server_done = true;
                }
                Event::Closed { name, reason, .. } if self.broken.is_none() => {
                    let proto = self.config.common.proto;
                    let (what, source) = match reason {
                        Closed::Failed(err) => (format!("connection to {proto} {name} failed"), err),
                        Closed::TooLong => {
                            let limit = self.config.common.max_message.saturating_mul(MAX_GROWTH);
                            let too_long =
                                format!("a reply was over {} bytes (3 x --max-message); closed", grouped(limit as u64));
                            (format!("{proto} {name}"), std::io::Error::new(std::io::ErrorKind::InvalidData, too_long))
                        }
                        _ => {
                            let closed = "the server closed the connection";
                            (
                                format!("{proto} {name}"),
                                std::io::Error::new(std::io::ErrorKind::ConnectionAborted, closed),
                            )
                        }
                    };
                    self.broken = Some(Error::Connect { what, source });
                }
                Event::NotSent { reason, .. } => {
                    // Too big for the kernel (a Unix datagram past its buffer size): a line not sent,
                    // not a lost reply, and the conversation goes on.
                    if self.waiting.pop_back().is_some() {
                        self.summary.sent -= 1;
                        self.skip(&format!("{} (the kernel refused it)", crate::error::describe(&reason)))?;
                    }
                }
                Event::Closed { .. } | Event::Connected(_) | Event::InputEnded(_) => {}
            }
        }
        Ok(())
    }

    /// Takes input lines and sends them until `--window` messages await replies, or input ends.
    fn next_message(&mut self) -> Result<()> {
        while !self.input_done && self.broken.is_none() {
            if self.waiting.len() >= self.config.window {
                // With an --end of its own, the end of input is acted on at once, replies awaited or not.
                if self.config.end != End::Wait && self.ahead.is_none() {
                    self.ahead = self.lines.try_recv().ok();
                    if matches!(self.ahead, Some(Input::End)) {
                        return self.end_input();
                    }
                }
                return Ok(());
            }
            if !self.prompted {
                self.report.prompt()?;
                self.prompted = true;
            }
            let line = match self.ahead.take().map_or_else(|| self.lines.try_recv(), Ok) {
                Ok(Input::Line(line)) => line,
                Ok(Input::TooLong { len }) => {
                    self.line_no += 1;
                    self.prompted = false;
                    self.report.answered();
                    let max = self.config.common.max_message as u64;
                    let why =
                        format!("{} bytes is over the limit of {} (--max-message)", grouped(len as u64), grouped(max));
                    self.skip(&why)?;
                    continue;
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Ok(Input::Failed(err)) => {
                    warn!("reading input failed: {err}");
                    return self.end_input();
                }
                Ok(Input::End) | Err(TryRecvError::Disconnected) => return self.end_input(),
            };
            self.line_no += 1;
            self.prompted = false;
            self.report.answered();
            if line == b"q" {
                return self.end_input();
            }
            if line.is_empty() && self.config.common.framing == Framing::Raw && self.config.common.proto.is_stream() {
                self.skip("an empty message cannot travel over a stream with --framing raw (it is zero bytes)")?;
                continue;
            }
            if line.is_empty() && self.config.common.proto == Proto::Seqpacket {
                self.skip(
                    "an empty message cannot travel over seqpacket (zero bytes read as the end of the connection)",
                )?;
                continue;
            }
            let sent_at = Instant::now();
            let mut closed = Vec::new();
            self.transport.send(Transport::server(), &line, &mut closed);
            self.transport.flush(self.event_loop.poll.registry(), &mut closed);
            self.summary.sent += 1;
            self.waiting.push_back(Pending { seq: self.summary.sent, message: line, sent_at });
            // Refused at once (too big for the kernel): on to the next line.
            self.handle(&mut closed)?;
        }
        Ok(())
    }

    /// `--expect upper` where every wrong reply was its message unchanged: an echo server.
    fn hint_expect(&mut self) -> Result<()> {
        if self.config.expect == Some(Expect::Upper) && self.summary.wrong > 0 && self.echoed == self.summary.wrong {
            return self
                .report
                .warning("every wrong reply was its message unchanged: for an echo server, use --expect echo");
        }
        Ok(())
    }

    fn skip(&mut self, why: &str) -> Result<()> {
        self.summary.not_sent += 1;
        self.report.not_sent(self.line_no, why)
    }

    fn check_timeout(&mut self) -> Result<()> {
        let Some(limit) = self.config.timeout else { return Ok(()) };
        // The oldest is due first.
        while let Some(waiting) = self.waiting.front() {
            if waiting.sent_at.elapsed() < limit {
                return Ok(());
            }
            self.report.timeout(waiting.seq, limit)?;
            // Bytes came, but no line end: the server may not end its replies with one (the tutorial's
            // server does not), and with --framing line they wait for one for ever.
            let held = self.transport.unfinished(Transport::server());
            if held > 0 && !self.hinted_raw {
                self.hinted_raw = true;
                self.report.warning(&format!(
                    "{} received with no line end within {}: if the server does not end its replies with \\n, \
                     try --framing raw",
                    crate::text::count(held as u64, "byte"),
                    crate::text::human(limit)
                ))?;
            }
            self.summary.lost += 1;
            if self.overdue.len() == OVERDUE_KEPT {
                self.overdue.pop_front();
            }
            self.overdue.extend(self.waiting.pop_front());
        }
        Ok(())
    }

    /// Keeps an answered message, to know a duplicate of its reply (datagrams only).
    fn remember(&mut self, pending: Pending) -> Result<()> {
        if !self.transport.is_ordered() {
            if self.answered.len() == ANSWERED_KEPT {
                self.answered.pop_front();
            }
            self.answered.push_back(pending);
        }
        Ok(())
    }

    /// Matches a reply to its message. Streams answer in order, so the oldest unanswered message is
    /// the one; datagrams may be lost or reordered, so a reply that fits an overdue message's content
    /// (its uppercase or echo) and not the awaited one's is taken as that message's late reply.
    fn on_reply(&mut self, reply: Vec<u8>) -> Result<()> {
        let fits = |p: &Pending| reply == p.message || reply == upper(&p.message);
        // A netpair server that is full says so, then closes: that is a refusal, not a reply (unless
        // it is the echo of a message that said the same).
        if let Some(why) = reply.strip_prefix(b"netpair: server full")
            && !self.waiting.iter().any(fits)
            && self.summary.received == 0
        {
            let proto = self.config.common.proto;
            let name = self.transport.peer_name(Transport::server()).to_string();
            let why = format!("turned away: server full{}", String::from_utf8_lossy(why));
            self.turned_away = true;
            self.broken = Some(Error::Connect { what: format!("{proto} {name}"), source: std::io::Error::other(why) });
            return Ok(());
        }
        // The awaited message it answers: in order on a stream, by content over datagrams.
        let awaited = if self.transport.is_ordered() { Some(0) } else { self.waiting.iter().position(fits) };
        let late_index = if self.transport.is_ordered() {
            (!self.overdue.is_empty()).then_some(0)
        } else if awaited.is_some() {
            None
        } else if let Some(i) = self.overdue.iter().position(fits) {
            Some(i)
        } else if let Some(seq) = self.answered.iter().rev().find(|p| fits(p)).map(|p| p.seq) {
            // It fits a message answered already: the network duplicated it (or its request).
            // Taken as the awaited reply, it would cross every reply after it over by one.
            self.summary.duplicates += 1;
            return self.report.duplicate(seq, &reply);
        } else {
            // A reply that fits no message by content (a typed `--reply stdin` line) is taken in
            // order: the oldest overdue message's, never the awaited one's while any is overdue.
            (!self.overdue.is_empty()).then_some(0)
        };
        if let Some(pending) = late_index.and_then(|i| self.overdue.remove(i)) {
            self.summary.late += 1;
            self.report.late(pending.seq, &reply, pending.sent_at.elapsed())?;
            return self.remember(pending);
        }
        match awaited.or(Some(0)).and_then(|i| self.waiting.remove(i)) {
            Some(pending) => {
                if let Some(at) = &mut self.half_closed {
                    *at = Instant::now();
                }
                let rtt = pending.sent_at.elapsed();
                self.summary.received += 1;
                self.summary.rtts.push(rtt);
                self.report.reply(pending.seq, &reply, rtt)?;
                let Some(expect) = self.config.expect else { return self.remember(pending) };
                let right = match expect {
                    Expect::Upper => upper(&pending.message),
                    Expect::Echo => pending.message.clone(),
                };
                if reply != right {
                    self.summary.wrong += 1;
                    self.echoed += u64::from(reply == pending.message);
                    self.report.wrong(pending.seq, expect)?;
                }
                self.remember(pending)
            }
            None => {
                self.summary.unexpected += 1;
                self.report.unexpected(&reply)
            }
        }
    }
}
