//! One client thread: a mio loop over its share of the clients that sends up to each one's window,
//! reads and judges every reply, gives up on late ones and keeps the tally. Sockets are the bench's
//! own rather than `Transport`'s, which keeps one connection per loop and copies every message:
//! this side must cost no more than the server does.

mod receive;
mod reconnect;
mod send;

pub use send::SLACK;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};

use super::connect::{self, Client, State};
use super::plan::{Plan, Shared};
use super::schedule::Schedule;
use super::sockets::Timer;
use super::tally::{Published, Tally};
use super::window::Lost;
use crate::config::Stop;
use crate::error::{Error, Result, describe};
use crate::net::mmsg;
use crate::sys;

/// How often replies overdue are looked for.
const SCAN: Duration = Duration::from_millis(50);
/// How often the progress counters are brought up to date.
const PUBLISH: Duration = Duration::from_millis(100);
/// The `--rate` timer's token, above every client's (a client's token is its index).
const TIMER: Token = Token(usize::MAX);
/// Bytes taken from a stream socket per read.
const STREAM_READ: usize = 64 * 1024;

/// Runs client thread `index`: connects its share of the clients, waits for the others, then
/// sends, checks and times until its clients are done.
pub fn run_thread(plan: &Plan, index: usize, shared: &Shared) -> Result<Tally> {
    let worker = Worker::connect(plan, index, &shared.interrupted);
    if worker.is_err() {
        shared.abort.store(true, Ordering::SeqCst);
    }
    // Every thread passes the barrier, failed or not, or the others would wait for ever.
    shared.ready.wait();
    let mut worker = worker?;
    // Interrupted while connecting: nothing was sent, so nothing is owed.
    if shared.abort.load(Ordering::SeqCst) || shared.interrupted.load(Ordering::SeqCst) {
        return Ok(Tally::new());
    }
    worker.run(shared)
}

/// One thread's clients and its event loop.
struct Worker<'a> {
    plan: &'a Plan,
    poll: Poll,
    /// Indexed by token: client `i` is `Token(i)`.
    clients: Vec<Client>,
    /// What this thread counted; published to [`Shared`] in steps, handed back whole at the end.
    tally: Tally,
    /// Stream bytes, or [`mmsg::BATCH`] datagram slots of `slot` bytes each.
    read_buf: Vec<u8>,
    /// Each datagram's length in a batch.
    lens: Vec<usize>,
    /// Where a batch's datagrams came from (not looked at: each socket is connected to its server),
    /// and the batch's message headers, kept from one receive to the next.
    senders: mmsg::Senders,
    /// One byte more than a message, so that a reply longer than its message shows as a slot over-filled.
    slot: usize,
    /// The message a reply is checked against, kept so that no check allocates.
    expect: Vec<u8>,
    /// One client's datagrams to send, back to back.
    outgoing: Vec<u8>,
    /// With --rate: clients whose next message is due later, soonest first.
    due: BinaryHeap<Reverse<(Instant, usize)>>,
    /// The end of the warm-up: messages sent from here on are measured.
    measure_start: Instant,
    /// With --duration: no message is sent from here on.
    measure_end: Option<Instant>,
    /// Clients done: the loop ends when all are.
    done: usize,
}

/// The loop's own deadlines and what it has done once.
struct Turns {
    /// The thread's CPU time when the measurement began; `None` during the warm-up.
    cpu_start: Option<Duration>,
    /// Ctrl-C has been seen (and acted on, once).
    interrupted: bool,
    /// When to look for replies overdue.
    next_scan: Instant,
    /// When to bring the progress counters up to date.
    next_publish: Instant,
    /// What the progress counters already hold of this thread's tally.
    published: Published,
}

impl<'a> Worker<'a> {
    /// Opens this thread's clients and the buffers of its loop.
    fn connect(plan: &'a Plan, index: usize, interrupted: &AtomicBool) -> Result<Worker<'a>> {
        let mut poll = Poll::new().map_err(|e| Error::io("creating the event loop", e))?;
        let clients = connect::connect(plan, index, &mut poll, interrupted)?;
        // Allocated once per thread: the loop itself allocates nothing per message.
        let slot = plan.size + 1;
        let read_buf = if plan.proto.is_stream() { vec![0; STREAM_READ] } else { vec![0; slot * mmsg::BATCH] };
        Ok(Worker {
            plan,
            poll,
            clients,
            tally: Tally::new(),
            read_buf,
            lens: vec![0; mmsg::BATCH],
            senders: mmsg::Senders::new(mmsg::BATCH),
            slot,
            expect: Vec::with_capacity(plan.size),
            outgoing: Vec::new(),
            due: BinaryHeap::new(),
            measure_start: Instant::now(),
            measure_end: None,
            done: 0,
        })
    }

    /// Runs the clients until each is done (the run over, its replies in or given up on).
    fn run(&mut self, shared: &Shared) -> Result<Tally> {
        let plan = self.plan;
        let start = Instant::now();
        self.measure_start = start + plan.warmup;
        if let Stop::Duration(d) = plan.stop {
            self.measure_end = Some(self.measure_start + d);
        }
        let mut timer = match plan.interval {
            Some(_) => Some(Timer::new(self.poll.registry(), TIMER).map_err(|e| Error::io("creating a timer", e))?),
            None => None,
        };
        // One socket and no schedule: wait for each reply in the receive call itself, one system
        // call per reply where epoll takes two (the loop still wakes every SCAN for the timeouts).
        let direct = self.clients.len() == 1
            && plan.interval.is_none()
            && !plan.reconnect
            && self.clients[0].sock.wait_in_receive(SCAN).is_ok();
        self.start_clients(start);
        let mut turns = Turns {
            cpu_start: None,
            interrupted: false,
            next_scan: start + SCAN,
            next_publish: start + PUBLISH,
            published: Published::default(),
        };
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            if turns.cpu_start.is_none() && now >= self.measure_start {
                // The warm-up's CPU time is not the measurement's; the start itself is the planned
                // instant, the same in every thread, whenever this turn came.
                turns.cpu_start = Some(sys::thread_cpu_time());
                self.tally.start = Some((self.measure_start, plan.server_clock.and_then(sys::cpu_time)));
            }
            // A flag read once a turn: a turn late makes no difference to a Ctrl-C.
            if shared.interrupted.load(Ordering::Relaxed) && !turns.interrupted {
                turns.interrupted = true;
                self.drain_all(now);
            }
            if self.done == self.clients.len() {
                break;
            }
            let wake = self.next_wake(now, &turns, timer.as_mut());
            if direct && !self.clients[0].unwritten() && self.clients[0].state != State::Done {
                self.read(0, false, true);
            } else {
                self.wait(&mut events, wake.saturating_duration_since(now), timer.as_mut())?;
            }
            self.after_turn(&mut turns, shared);
        }
        // The last counts too, so that the progress line's final figures are the table's.
        turns.published.catch_up(&self.tally, shared);
        let mut tally = std::mem::take(&mut self.tally);
        if let Some(cpu_start) = turns.cpu_start {
            tally.cpu = sys::thread_cpu_time().saturating_sub(cpu_start);
            tally.end = Some((Instant::now(), plan.server_clock.and_then(sys::cpu_time)));
        }
        Ok(tally)
    }

    /// Sends each client's first messages; with --rate, spreads their schedules evenly over one
    /// interval, so that the server sees a steady rate rather than bursts of every client at once.
    fn start_clients(&mut self, start: Instant) {
        for i in 0..self.clients.len() {
            if let Some(every) = self.plan.interval {
                let client = &mut self.clients[i];
                let offset = every.mul_f64(client.id as f64 / self.plan.clients as f64);
                let schedule = Schedule::new(start + offset, every);
                client.first_measured = schedule.first_due_from(self.measure_start);
                client.schedule = Some(schedule);
            }
            self.refill(i, start);
        }
    }

    /// Ctrl-C: every client stops sending and waits for the replies it is owed.
    fn drain_all(&mut self, now: Instant) {
        for i in 0..self.clients.len() {
            // Connecting: --reconnect's next message, which now is never sent.
            if matches!(self.clients[i].state, State::Running | State::Connecting) {
                self.stop_sending(i, now);
                self.settle(i);
            }
        }
    }

    /// When the loop must wake at the latest; arms the timer for the next scheduled send.
    fn next_wake(&self, now: Instant, turns: &Turns, timer: Option<&mut Timer>) -> Instant {
        let mut wake = turns.next_scan.min(turns.next_publish);
        if turns.cpu_start.is_none() {
            wake = wake.min(self.measure_start);
        }
        if let Some(Reverse((due, _))) = self.due.peek() {
            match timer {
                _ if *due <= now => wake = now,
                Some(timer) => timer.arm(*due, now),
                // No --rate: a --reconnect retry, for which epoll's millisecond is fine.
                None => wake = wake.min(*due),
            }
        }
        wake
    }

    /// Waits up to `timeout` for readiness and handles what came.
    fn wait(&mut self, events: &mut Events, timeout: Duration, mut timer: Option<&mut Timer>) -> Result<()> {
        match self.poll.poll(events, Some(timeout)) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(Error::io("waiting for events", e)),
            _ => {}
        }
        for event in events.iter() {
            if event.token() == TIMER
                && let Some(timer) = timer.as_deref_mut()
            {
                timer.clear();
            }
            let i = event.token().0;
            // The timer's, or a spurious event for a token not ours.
            if i >= self.clients.len() {
                continue;
            }
            if event.is_writable() {
                self.flush(i);
            }
            // Closed or failed: read on until the socket says which itself (end of stream, or
            // the error), so that the failure is counted with its reason.
            if event.is_readable() || event.is_read_closed() || event.is_error() {
                self.read(i, event.is_read_closed() || event.is_error(), false);
            }
        }
        Ok(())
    }

    /// What follows every turn: scheduled sends now due, timeouts, the progress counters.
    fn after_turn(&mut self, turns: &mut Turns, shared: &Shared) {
        let now = Instant::now();
        while let Some(&Reverse((due, i))) = self.due.peek() {
            if due > now {
                break;
            }
            self.due.pop();
            self.clients[i].scheduled = false;
            self.refill(i, now);
        }
        if now >= turns.next_scan {
            self.expire(now);
            turns.next_scan = now + SCAN;
        }
        if now >= turns.next_publish {
            turns.published.catch_up(&self.tally, shared);
            turns.next_publish = now + PUBLISH;
        }
    }

    /// Counts replies overdue as lost and lets their clients send on: a lost reply must not shrink
    /// a client's window for good, or a lossy transport would measure ever fewer messages.
    fn expire(&mut self, now: Instant) {
        if self.plan.reconnect {
            self.expire_connects(now);
        }
        for i in 0..self.clients.len() {
            // Under --reconnect a message is timed from its connect, its reply from when it left.
            let client = &mut self.clients[i];
            let timeout = if self.plan.reconnect { self.plan.timeout + client.handshake } else { self.plan.timeout };
            let expired = client.window.expire(now, timeout);
            if expired != Lost::default() {
                self.tally.count_lost(expired);
                self.refill(i, now);
            }
        }
    }

    /// A client whose socket failed: what it awaited is lost, and it sends no more.
    fn fail(&mut self, i: usize, err: &io::Error) {
        match self.clients[i].state {
            State::Done => return,
            // What it was still to send under --rate was not sent on time either. (Connecting, during
            // the run, is --reconnect's: the client was running.)
            State::Running | State::Connecting => self.account_schedule(i, Instant::now()),
            State::Draining => {}
        }
        let client = &mut self.clients[i];
        self.tally.count_lost(client.window.abandon());
        self.tally.failed += 1;
        if self.tally.first_failure.is_none() {
            self.tally.first_failure = Some(format!("client {}: {}", client.id, describe(err)));
        }
        // A failed socket may stay readable (or in error) for ever: no more events from it.
        let _ = self.poll.registry().deregister(client.sock.source());
        client.state = State::Done;
        self.done += 1;
    }

    /// Marks client `i` done once it sends no more and awaits nothing.
    fn settle(&mut self, i: usize) {
        let client = &mut self.clients[i];
        if client.state == State::Draining && client.window.is_empty() && !client.unwritten() {
            client.state = State::Done;
            self.done += 1;
        }
    }
}
