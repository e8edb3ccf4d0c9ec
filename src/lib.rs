//! netpair: the socket tutorial's conversation over TCP, UDP, Unix stream and Unix datagram sockets.
//!
//! - [`cli`] parses and checks the command line; [`error`] is the one error type.
//! - [`transport`] hides stream versus datagram sockets behind one enum; [`framing`] cuts streams
//!   into messages, [`mmsg`] moves datagrams in batches, and [`upper`] is the server's transformation.
//! - [`server`] and [`client`] are the two event loops, written once against the transport, with
//!   [`event_loop`] what they share, [`stdin`] the input thread and [`report`] every line shown.
//! - [`compare`] runs one conversation over every transport; [`bench`] measures round trips under load.
#![deny(rust_2018_idioms)]

pub mod bench;
pub mod cli;
pub mod client;
pub mod compare;
pub mod error;
pub mod event_loop;
pub mod framing;
pub mod mmsg;
pub mod report;
pub mod server;
pub mod stdin;
pub mod transport;
pub mod upper;

use std::io;

use log::warn;

use crate::cli::{Common, Config};
use crate::error::Result;
use crate::report::Report;

/// Exit status when some replies never came.
pub const EXIT_LOST: u8 = 3;

/// Runs a checked command line; returns the exit status.
pub fn run(config: Config) -> Result<u8> {
    let stdin = || Box::new(io::BufReader::new(io::stdin()));
    match config {
        Config::Server(config) => {
            let limit = server::raise_open_file_limit((config.max_clients as u64).saturating_add(32));
            if (config.max_clients as u64).saturating_add(32) > limit {
                warn!(
                    "open-file limit is {limit}: fewer than --max-clients {} clients can connect (raise ulimit -n)",
                    config.max_clients
                );
            }
            let common = config.common.clone();
            let result = server::Server::bind(config, report_for(&common), true).and_then(|server| server.run(stdin()));
            with_json_error(&common, result).map(|()| 0)
        }
        Config::Client(config) => {
            let common = config.common.clone();
            let summary = with_json_error(&common, client::run(config, report_for(&common), stdin(), true))?;
            Ok(if summary.lost + summary.not_sent > 0 { EXIT_LOST } else { 0 })
        }
        Config::Bench(config) => bench::run(&config),
        Config::Compare(config) => {
            // The in-process servers' warnings (an oversized probe dropped, say) are part of the
            // measurement, not news: keep them out of the table unless -v asked for them.
            if log::max_level() <= log::LevelFilter::Warn {
                log::set_max_level(log::LevelFilter::Error);
            }
            compare::run(&config).map(|()| 0)
        }
    }
}

fn report_for(common: &Common) -> Report {
    Report::new(common.proto, common.json, common.prompt)
}

/// With `--json`, a fatal error is also an event on stdout.
fn with_json_error<T>(common: &Common, result: Result<T>) -> Result<T> {
    if let Err(err) = &result
        && common.json
        && !err.is_broken_pipe()
    {
        let _ = report_for(common).error(err);
    }
    result
}
