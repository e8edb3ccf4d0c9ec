//! `compare --connect`: the rows a client can measure on its own, against a netpair server already
//! running elsewhere. The rows that need the server's own view (what it saw, and when) are marked
//! as not measurable from here rather than guessed.

use std::io;
use std::time::Duration;

use super::{Measured, client_config, input_of, probe_sizes, quiet_report, short_error};
use crate::client;
use crate::config::{CONNECT_TIMEOUT, LINE_MAX};
use crate::proto::{Endpoint, Proto};
use crate::report::Summary;

/// How long a probe of one large message waits: TCP may need several retransmissions for it.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Measures `proto` against the server at `endpoint`; a kind the server does not answer is a column
/// that says why.
pub(super) fn measure(proto: Proto, endpoint: &Endpoint, lines: &[Vec<u8>], reply_timeout: Duration) -> Measured {
    let mut m = Measured { remote: true, ..Measured::default() };
    let talk = |lines: &[Vec<u8>], timeout: Duration, max_message: usize| -> crate::error::Result<Summary> {
        let mut config = client_config(proto, endpoint, max_message, timeout);
        config.connect_timeout = CONNECT_TIMEOUT;
        client::run(config, quiet_report(proto), Box::new(io::Cursor::new(input_of(lines))), false)
    };
    match talk(lines, reply_timeout, LINE_MAX) {
        Ok(summary) if summary.received == 0 && summary.sent > 0 => {
            m.unanswered = Some(format!("no reply within {}", crate::text::human(reply_timeout)));
            m.kernel = summary.kernel.clone();
            m.summary = summary;
            return m;
        }
        Ok(summary) => {
            m.kernel = summary.kernel.clone();
            m.summary = summary;
        }
        Err(err) => {
            m.unanswered = Some(short_error(&err));
            return m;
        }
    }
    probe_sizes(&mut m, |line| talk(&[line.to_vec()], PROBE_TIMEOUT, 2 * LINE_MAX), PROBE_TIMEOUT);
    m
}
