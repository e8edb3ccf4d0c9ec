//! A server on a thread of this process, as `compare` and `bench` use one; stopped on drop.

use std::thread::{self, JoinHandle};

use super::{Server, Stopper};
use crate::config::ServerConfig;
use crate::error::{Error, Result};
use crate::proto::Endpoint;
use crate::report::Report;
use crate::sys;

/// A server serving on a thread of this process, as `compare` and `bench` use one; stopped on drop.
pub struct Background {
    endpoint: Endpoint,
    stopper: Stopper,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Background {
    /// Binds `config` and serves on a new thread. The endpoint is the real bound one (port 0 resolved).
    pub fn start(config: ServerConfig, report: Report) -> Result<Background> {
        let server = Server::bind(config, report, false)?;
        let endpoint = server.endpoint();
        let stopper = server.stopper();
        let thread = thread::Builder::new()
            .name("netpair-server".into())
            .spawn(move || server.run(Box::new(std::io::empty())))
            .map_err(|e| Error::io("starting the server thread", e))?;
        Ok(Background { endpoint, stopper, thread: Some(thread) })
    }

    /// Where the server listens.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The server thread's CPU-time clock, for `clock_gettime`.
    pub fn cpu_clock(&self) -> Option<libc::clockid_t> {
        sys::thread_cpu_clock(self.thread.as_ref()?)
    }

    /// Stops the server, waits for it, and returns how its run ended.
    pub fn stop(mut self) -> Result<()> {
        self.stopper.stop();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::io("the server thread", std::io::Error::other("it panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
