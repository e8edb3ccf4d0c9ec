//! The client's event loop: each input line becomes one message, sent when the previous one has its
//! reply or timed out; replies are matched to their messages, late ones reported as late.

use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use log::warn;

use crate::config::ClientConfig;
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
    waiting: Option<Pending>,
    overdue: VecDeque<Pending>,
    summary: Summary,
    line_no: u64,
    input_done: bool,
    prompted: bool,
    broken: Option<Error>,
    /// The server said it was full: the one line that says so is the whole story.
    turned_away: bool,
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
        waiting: None,
        overdue: VecDeque::new(),
        summary: Summary::default(),
        line_no: 0,
        input_done: false,
        prompted: false,
        broken: None,
        turned_away: false,
    };
    let converse = client.converse();
    client.summary.kernel = client.transport.account();
    // A closed stdout ends the run quietly: no summary of a conversation nobody is reading.
    if converse.as_ref().is_err_and(Error::is_broken_pipe) {
        return converse.map(|()| client.summary);
    }
    if !client.turned_away {
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
        while self.waiting.is_some() || !self.input_done {
            let mut timeout = self
                .waiting
                .as_ref()
                .map(|w| (w.sent_at + self.config.timeout).saturating_duration_since(Instant::now()));
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
                if self.waiting.take().is_some() {
                    self.summary.lost += 1;
                }
                return Ok(());
            }
            self.check_timeout()?;
            if self.waiting.is_none() {
                self.next_message()?;
            }
        }
        Ok(())
    }

    fn handle(&mut self, batch: &mut Vec<Event>) -> Result<()> {
        for event in batch.drain(..) {
            match event {
                Event::Message(_, reply) => self.on_reply(reply)?,
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
                    if self.waiting.take().is_some() {
                        self.summary.sent -= 1;
                        self.skip(&format!("{} (the kernel refused it)", crate::error::describe(&reason)))?;
                    }
                }
                Event::Closed { .. } | Event::Connected(_) => {}
            }
        }
        Ok(())
    }

    /// Takes input lines until one is sent as a message, or input ends.
    fn next_message(&mut self) -> Result<()> {
        while !self.input_done {
            if !self.prompted {
                self.report.prompt()?;
                self.prompted = true;
            }
            let line = match self.lines.try_recv() {
                Ok(Input::Line(line)) => line,
                Ok(Input::TooLong { len }) => {
                    self.line_no += 1;
                    self.prompted = false;
                    let max = self.config.common.max_message as u64;
                    let why =
                        format!("{} bytes is over the limit of {} (--max-message)", grouped(len as u64), grouped(max));
                    self.skip(&why)?;
                    continue;
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Ok(Input::Failed(err)) => {
                    warn!("reading input failed: {err}");
                    self.input_done = true;
                    return Ok(());
                }
                Ok(Input::End) | Err(TryRecvError::Disconnected) => {
                    self.input_done = true;
                    return Ok(());
                }
            };
            self.line_no += 1;
            self.prompted = false;
            if line == b"q" {
                self.input_done = true;
                return Ok(());
            }
            if line.is_empty() && self.config.common.framing == Framing::Raw && self.config.common.proto.is_stream() {
                self.skip("an empty message cannot travel over a stream with --framing raw (it is zero bytes)")?;
                continue;
            }
            if line.is_empty() && self.config.common.proto == Proto::Seqpacket {
                self.skip("an empty message cannot travel over seqpacket (zero bytes read as the end of the connection)")?;
                continue;
            }
            let sent_at = Instant::now();
            let mut closed = Vec::new();
            self.transport.send(Transport::server(), &line, &mut closed);
            self.transport.flush(self.event_loop.poll.registry(), &mut closed);
            self.summary.sent += 1;
            self.waiting = Some(Pending { seq: self.summary.sent, message: line, sent_at });
            self.handle(&mut closed)?;
            if self.waiting.is_some() || self.broken.is_some() {
                return Ok(());
            }
            // Refused at once (too big for the kernel): on to the next line.
        }
        Ok(())
    }

    fn skip(&mut self, why: &str) -> Result<()> {
        self.summary.not_sent += 1;
        self.report.not_sent(self.line_no, why)
    }

    fn check_timeout(&mut self) -> Result<()> {
        let Some(waiting) = &self.waiting else {
            return Ok(());
        };
        let waited = waiting.sent_at.elapsed();
        if waited < self.config.timeout {
            return Ok(());
        }
        self.report.timeout(waiting.seq, self.config.timeout)?;
        self.summary.lost += 1;
        if self.overdue.len() == OVERDUE_KEPT {
            self.overdue.pop_front();
        }
        self.overdue.extend(self.waiting.take());
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
            && !self.waiting.as_ref().is_some_and(fits)
            && self.summary.received == 0
        {
            let proto = self.config.common.proto;
            let name = self.transport.peer_name(Transport::server()).to_string();
            let why = format!("turned away: server full{}", String::from_utf8_lossy(why));
            self.turned_away = true;
            self.broken = Some(Error::Connect { what: format!("{proto} {name}"), source: std::io::Error::other(why) });
            return Ok(());
        }
        let late_index = if self.transport.is_ordered() {
            (!self.overdue.is_empty()).then_some(0)
        } else if self.waiting.as_ref().is_some_and(fits) {
            None
        } else {
            // A reply that fits no message by content (a typed `--reply stdin` line) is taken in
            // order: the oldest overdue message's, never the awaited one's while any is overdue.
            self.overdue.iter().position(fits).or((!self.overdue.is_empty()).then_some(0))
        };
        if let Some(pending) = late_index.and_then(|i| self.overdue.remove(i)) {
            self.summary.late += 1;
            return self.report.late(pending.seq, &reply, pending.sent_at.elapsed());
        }
        match self.waiting.take() {
            Some(pending) => {
                let rtt = pending.sent_at.elapsed();
                self.summary.received += 1;
                self.summary.rtts.push(rtt);
                self.report.reply(pending.seq, &reply, rtt)
            }
            None => {
                self.summary.unexpected += 1;
                self.report.unexpected(&reply)
            }
        }
    }
}
