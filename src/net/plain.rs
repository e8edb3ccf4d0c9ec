//! Plain blocking client sockets of every kind, for probes that go around the event loop: `compare`
//! opens one to connect and stay silent, or to send a burst of writes without reading.

use std::io::{self, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;

use super::SocketFile;
use crate::proto::{Endpoint, Proto};

/// A connected socket (for a datagram kind: one with its peer set).
pub enum Plain {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A UDP socket connected to the server.
    Udp(UdpSocket),
    /// A Unix stream connection.
    Unix(UnixStream),
    /// With the file it is bound to, if any, removed with it.
    Unixgram(UnixDatagram, Option<SocketFile>),
    /// A Unix seqpacket connection (std's stream type: the calls are the same).
    Seqpacket(UnixStream),
}

impl Plain {
    /// Connects to `endpoint` over `proto`. A Unix datagram socket is bound to `own` when given, so
    /// that the server has an address to reply to (it drops datagrams from unnamed sockets).
    pub fn connect(proto: Proto, endpoint: &Endpoint, own: Option<&Path>) -> io::Result<Plain> {
        let mismatch = || io::Error::new(io::ErrorKind::InvalidInput, format!("{proto} does not go with {endpoint}"));
        Ok(match (proto, endpoint) {
            (Proto::Tcp, Endpoint::Inet { host, port }) => Plain::Tcp(TcpStream::connect((host.as_str(), *port))?),
            (Proto::Udp, Endpoint::Inet { host, port }) => {
                let addr = super::resolve(host, *port)
                    .map_err(|e| io::Error::new(io::ErrorKind::NotFound, e.to_string()))?
                    .remove(0);
                let sock = UdpSocket::bind(if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })?;
                sock.connect(addr)?;
                Plain::Udp(sock)
            }
            (Proto::Unix, Endpoint::Path(path)) => Plain::Unix(UnixStream::connect(path)?),
            (Proto::Seqpacket, Endpoint::Path(path)) => {
                Plain::Seqpacket(super::seqpacket_connect(&super::socket::UnixName::of(path).addr()?, false)?)
            }
            (Proto::Unixgram, Endpoint::Path(path)) => {
                let (sock, file) = match own {
                    Some(own) => (UnixDatagram::bind(own)?, Some(SocketFile::bound(own))),
                    None => (UnixDatagram::unbound()?, None),
                };
                sock.connect(path)?;
                Plain::Unixgram(sock, file)
            }
            _ => return Err(mismatch()),
        })
    }

    /// Sends one message: a write on a stream (which may merge with the next), a datagram otherwise.
    pub fn send(&mut self, message: &[u8]) -> io::Result<()> {
        match self {
            Plain::Tcp(s) => s.write_all(message),
            Plain::Unix(s) => s.write_all(message),
            Plain::Udp(s) => s.send(message).map(drop),
            Plain::Unixgram(s, _) => s.send(message).map(drop),
            // One write is one message, whole.
            Plain::Seqpacket(s) => s.write(message).map(drop),
        }
    }
}

/// An address where nobody listens: a port that was free a moment ago, or a path never bound in `dir`.
pub fn nobody_at(proto: Proto, dir: &super::SocketDir) -> io::Result<Endpoint> {
    let port = match proto {
        Proto::Tcp => std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        Proto::Udp => UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port(),
        Proto::Unix | Proto::Unixgram | Proto::Seqpacket => return Ok(Endpoint::Path(dir.fresh("nobody"))),
    };
    Ok(Endpoint::loopback(port))
}
