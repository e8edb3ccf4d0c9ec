//! What the server's and the client's event loops share: the poll and its fixed tokens, SIGINT and
//! SIGTERM as events, and the waker through which the stdin thread hands over lines.

use std::io::{self, BufRead};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::error::{Error, Result};
use crate::net::Transport;
use crate::stdin::{self, Input};

/// The one waker a poll may have (mio allows no more): the stdin thread and an in-process stop share it.
pub const WAKER: Token = Token(1);
/// SIGINT and SIGTERM.
pub const SIGNALS: Token = Token(2);

/// Runs `each` on a thread of its own for every one of `signals` that comes, from now on: for the
/// commands that run no event loop of their own on the main thread (`compare`, `bench`).
pub fn on_signals(signals: &[i32], mut each: impl FnMut() + Send + 'static) -> Result<()> {
    let mut caught = signal_hook::iterator::Signals::new(signals).map_err(|e| Error::io("catching signals", e))?;
    std::thread::Builder::new()
        .name("netpair-signals".into())
        .spawn(move || caught.forever().for_each(|_| each()))
        .map_err(|e| Error::io("starting the signal thread", e))?;
    Ok(())
}

/// A poll with a transport, stdin and signals registered on it.
pub struct EventLoop {
    /// The poll itself, for the loop to wait on and register with.
    pub poll: Poll,
    /// Room for the events of one wait.
    pub events: Events,
    signals: Option<Signals>,
    /// Held here as well as by the input thread: were the thread to end first and close the waker,
    /// the kernel would drop its last, still unread, wake-up with it.
    waker: Arc<Waker>,
}

impl EventLoop {
    /// A poll watching, when `catch_signals`, SIGINT and SIGTERM.
    pub fn new(catch_signals: bool) -> Result<Self> {
        let poll = Poll::new().map_err(|e| Error::io("creating the event loop", e))?;
        let signals = if catch_signals {
            let mut signals = Signals::new([SIGINT, SIGTERM]).map_err(|e| Error::io("catching signals", e))?;
            poll.registry()
                .register(&mut signals, SIGNALS, Interest::READABLE)
                .map_err(|e| Error::io("catching signals", e))?;
            Some(signals)
        } else {
            None
        };
        let waker = Waker::new(poll.registry(), WAKER).map_err(|e| Error::io("creating a waker", e))?;
        Ok(EventLoop { poll, events: Events::with_capacity(1024), signals, waker: Arc::new(waker) })
    }

    /// Watches a transport's sockets.
    pub fn watch(&mut self, transport: &mut Transport) -> Result<()> {
        transport.register(self.poll.registry()).map_err(|e| Error::io("watching the socket", e))
    }

    /// Starts reading lines of at most `max` bytes from `input` on a thread that wakes this loop.
    pub fn read_lines(&mut self, input: Box<dyn BufRead + Send>, max: usize) -> Result<Receiver<Input>> {
        Ok(stdin::spawn(input, max, self.waker.clone()))
    }

    /// The loop's waker, for another thread to interrupt a wait.
    pub fn waker(&self) -> Arc<Waker> {
        self.waker.clone()
    }

    /// Waits for events, at most `timeout`; a signal interrupting the wait is not an error.
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(Error::io("waiting for events", e)),
            _ => Ok(()),
        }
    }

    /// Takes the signals caught since the last call: true if SIGINT or SIGTERM came.
    pub fn stop_requested(&mut self) -> bool {
        self.signals.as_mut().is_some_and(|s| s.pending().count() > 0)
    }
}
