//! The one error type, every failure a user can cause named with the flag or address involved, and
//! the exit statuses it maps to.

use std::fmt;
use std::io;

/// Exit statuses, the same with or without `--json`.
pub mod exit {
    /// Every message got its reply (server: stopped cleanly).
    pub const OK: u8 = 0;
    /// Could not listen or connect, or the connection broke.
    pub const FAILED: u8 = 1;
    /// A usage error.
    pub const USAGE: u8 = 2;
    /// Some replies never came (timeout), a line could not be sent, or a reply came that no message
    /// asked for; bench: replies lost or wrong, or a transport measured no round trip (interrupted).
    pub const LOST: u8 = 3;

    /// The table that ends every `--help`.
    pub const HELP: &str = "\
Exit status:
  0  every message got its reply (server: stopped cleanly)
  1  could not listen or connect, or the connection broke (refused, reset, address in use, name not found)
  2  usage error
  3  some replies never came (timeout), a line could not be sent, or a reply came that no message
     asked for; bench: replies lost or wrong, or none measured";

    /// The table that ends the `--help` of a command that only prints text (`completions`, `man`).
    pub const PRINT_HELP: &str = "\
Exit status:
  0  the text was written to stdout (or stdout was closed before the end)
  1  it could not be written
  2  usage error";
}

/// Why netpair stopped. `Display` is the one line the user sees.
#[derive(Debug)]
pub enum Error {
    /// Flags that do not fit together (exit 2).
    Usage(String),
    /// A host name that does not resolve.
    Resolve {
        /// The name as given.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// Could not bind or listen on an address.
    Bind {
        /// The kind and address.
        what: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// Could not connect, or the connection broke.
    Connect {
        /// What was being reached, and how.
        what: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// Any other I/O failure, with what was being done.
    Io {
        /// What was being done.
        what: String,
        /// What the kernel said.
        source: io::Error,
    },
}

impl Error {
    /// The process exit status for this error, as documented in `--help`.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => exit::USAGE,
            _ => exit::FAILED,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io { what: what.into(), source }
    }

    /// True when the error is a closed stdout, which ends quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::BrokenPipe)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) => write!(f, "{msg}"),
            Error::Resolve { host, source } => {
                write!(f, "cannot resolve host {host:?}: {}", describe(source))
            }
            Error::Bind { what, source } => {
                write!(f, "cannot listen on {what}: {}", describe(source))
            }
            Error::Connect { what, source } => write!(f, "{what}: {}", describe(source)),
            Error::Io { what, source } => write!(f, "{what}: {}", describe(source)),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Usage(_) => None,
            Error::Resolve { source, .. }
            | Error::Bind { source, .. }
            | Error::Connect { source, .. }
            | Error::Io { source, .. } => Some(source),
        }
    }
}

/// An I/O error in plain words, without Rust's "(os error N)" suffix.
pub fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error") {
        Some(cut) => text[..cut].to_lowercase(),
        None => text,
    }
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, Error>;
