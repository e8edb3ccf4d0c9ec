//! The names of things: the socket kinds netpair speaks and where to listen or connect. No I/O.

use std::fmt;
use std::path::PathBuf;

/// The socket kinds netpair speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proto {
    /// TCP: a stream of bytes over IP.
    Tcp,
    /// UDP: datagrams over IP.
    Udp,
    /// A Unix stream socket, named by a path.
    Unix,
    /// A Unix datagram socket, named by a path.
    Unixgram,
    /// A Unix seqpacket socket, named by a path: connected like a stream, each message kept whole
    /// like a datagram.
    Seqpacket,
}

impl Proto {
    /// Every kind, in the order tables show them.
    pub const ALL: [Proto; 5] = [Proto::Tcp, Proto::Udp, Proto::Unix, Proto::Unixgram, Proto::Seqpacket];

    /// Stream sockets carry bytes; datagram and seqpacket sockets carry whole messages.
    pub fn is_stream(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Unix)
    }

    /// Connection-oriented kinds: a peer connects, is accepted, and its leaving is seen (end of file).
    pub fn is_connected(self) -> bool {
        matches!(self, Proto::Tcp | Proto::Unix | Proto::Seqpacket)
    }

    /// Unix-domain sockets are named by a file path, not a host and port.
    pub fn is_unix(self) -> bool {
        matches!(self, Proto::Unix | Proto::Unixgram | Proto::Seqpacket)
    }

    /// The name used on the command line and in output.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Unix => "unix",
            Proto::Unixgram => "unixgram",
            Proto::Seqpacket => "seqpacket",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where to listen or connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A host name or IP address, and a port.
    Inet {
        /// A name or an address.
        host: String,
        /// The port; 0 asks the OS for a free one (servers only).
        port: u16,
    },
    /// A Unix socket's path, or `@name` for an abstract one.
    Path(PathBuf),
}

impl Endpoint {
    /// The loopback address at `port`: where in-process servers listen and probes connect.
    pub fn loopback(port: u16) -> Endpoint {
        Endpoint::Inet { host: "127.0.0.1".into(), port }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Inet { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Inet { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Path(path) => write!(f, "{}", path.display()),
        }
    }
}
