//! netpair: the socket tutorial's conversation over TCP, UDP, Unix stream and Unix datagram sockets.
//!
//! The modules form layers; each imports only from the layers below it (`tests/layers.rs` checks):
//!
//! 1. leaves: [`error`] (with the exit statuses), [`proto`] (names of kinds and endpoints),
//!    [`framing`], [`upper`], [`text`] (number formats), [`json`], [`plot`] (the latency picture),
//!    [`throttle`], [`stdin`], and [`sys`], the raw OS calls;
//! 2. [`net`]: the `Transport` façade over stream and datagram sockets, batched datagram calls,
//!    resolution and socket files;
//! 3. [`config`]: the checked settings of each command;
//! 4. [`event_loop`]: the poll, its fixed tokens, signals and the stdin waker;
//! 5. [`report`]: every line the user sees;
//! 6. [`server`] and [`client`]: the two event loops, written once against `net`;
//! 7. [`compare`] and [`bench`]: commands built on the server and the client; [`lab`], which builds
//!    a network of namespaces and runs the server and one of the others across it;
//! 8. [`cli`]: the command line, the only user of clap; it builds a [`config::Config`] for [`run`].
#![deny(rust_2018_idioms)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod compare;
pub mod config;
pub mod error;
pub mod event_loop;
pub mod framing;
pub mod json;
pub mod lab;
pub mod net;
pub mod plot;
pub mod proto;
pub mod report;
pub mod server;
pub mod stdin;
pub mod sys;
pub mod text;
pub mod throttle;
pub mod upper;

use std::io;

use log::warn;

use crate::config::Config;
use crate::error::{Result, exit};
use crate::report::{report_for, with_json_error};

/// Runs a checked command line; returns the exit status.
pub fn run(config: Config) -> Result<u8> {
    let stdin = || Box::new(io::BufReader::new(io::stdin()));
    match config {
        Config::Server(config) => {
            let want = (config.max_clients as u64).saturating_add(32);
            let limit = sys::raise_open_file_limit(want);
            if want > limit {
                warn!(
                    "open-file limit is {}: fewer than --max-clients {} clients can connect (raise ulimit -n)",
                    text::grouped(limit),
                    text::grouped(config.max_clients as u64)
                );
            }
            let common = config.common.clone();
            let result = server::Server::bind(config, report_for(&common), true).and_then(|server| server.run(stdin()));
            with_json_error(&common, result).map(|()| exit::OK)
        }
        Config::Client(config) => Ok(client::run_on_stdin(config)?.exit_status()),
        Config::Bench(config) => bench::run(&config),
        Config::Lab(config) => lab::run(config),
        Config::Compare(config) => compare::run(&config).map(|_| exit::OK),
        Config::Print(text) => report::print(&text).map(|()| exit::OK),
    }
}
