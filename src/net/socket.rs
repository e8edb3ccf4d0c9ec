//! Opening sockets: name resolution, the socket options netpair sets, and the files that name Unix
//! sockets (a stale one cleared, a live one never taken, each removed by the process that made it).

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use log::{debug, info};
use mio::net::UdpSocket;
use rustix::net::sockopt;

use crate::error::{Error, Result};
use crate::proto::Proto;

/// Every address `host` names, or a clear error.
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> =
        (host, port).to_socket_addrs().map_err(|source| Error::Resolve { host: host.to_string(), source })?.collect();
    if addrs.is_empty() {
        return Err(Error::Resolve { host: host.to_string(), source: io::ErrorKind::NotFound.into() });
    }
    Ok(addrs)
}

/// Tries `attempt` on each address in turn; on failure, the first failing address and its error.
pub(super) fn first_ok<T>(
    addrs: Vec<SocketAddr>,
    name: impl Fn(&dyn fmt::Display) -> String,
    mut attempt: impl FnMut(SocketAddr) -> io::Result<T>,
) -> std::result::Result<T, (String, io::Error)> {
    let mut first_err = None;
    for addr in addrs {
        match attempt(addr) {
            Ok(value) => return Ok(value),
            Err(e) => {
                debug!("{}: {e}", name(&addr));
                first_err.get_or_insert((name(&addr), e));
            }
        }
    }
    Err(first_err.unwrap_or_else(|| (String::new(), io::ErrorKind::NotFound.into())))
}

/// A non-blocking UDP socket of the address's family, connected to it: a client's, so that the
/// kernel keeps other senders' datagrams out and reports an ICMP refusal as an error.
pub fn udp_connected(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let sock = UdpSocket::bind(local)?;
    sock.connect(addr)?;
    Ok(sock)
}

/// What a datagram server asks of the kernel for its receive queue (UDP) or its send buffer (Unix),
/// which Linux doubles: room for a datagram from or to each of 10,000 clients at once, where the
/// default (net.core.rmem_default and wmem_default, about 200 KiB) holds a few hundred.
const DATAGRAM_BUFFER: usize = 8 << 20;

/// Which of a socket's buffers [`widen_buffer`] widens.
pub(super) enum Buffer {
    Receive,
    Send,
}

/// Widens a socket buffer to [`DATAGRAM_BUFFER`]: past net.core.rmem_max or wmem_max where this
/// process may (CAP_NET_ADMIN), else as far as that maximum.
pub(super) fn widen_buffer(sock: &impl AsFd, which: Buffer) {
    let widened = match which {
        Buffer::Receive => sockopt::set_socket_recv_buffer_size_force(sock, DATAGRAM_BUFFER)
            .or_else(|_| sockopt::set_socket_recv_buffer_size(sock, DATAGRAM_BUFFER)),
        Buffer::Send => sockopt::set_socket_send_buffer_size_force(sock, DATAGRAM_BUFFER)
            .or_else(|_| sockopt::set_socket_send_buffer_size(sock, DATAGRAM_BUFFER)),
    };
    if let Err(e) = widened {
        debug!("cannot widen a socket buffer: {e}");
    }
}

/// Lets a burst of thousands of connects wait in the kernel instead of being dropped
/// (mio listens with a backlog of 1024; the kernel caps this at net.core.somaxconn).
pub(super) fn deepen_backlog(listener: &impl AsFd) {
    // listen(2) on a socket that is already listening only changes its backlog.
    if let Err(e) = rustix::net::listen(listener, 4096) {
        debug!("cannot deepen the listen backlog: {e}");
    }
}

/// A descriptor to hold in reserve, given up to turn a client away when accept runs out of them.
pub(super) fn spare_file() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// A Unix socket's file, removed when dropped, but only while it is still the file this process
/// made (the same device and inode): never another server's that has taken the path since.
pub struct SocketFile {
    path: PathBuf,
    made: Option<(u64, u64)>,
}

impl SocketFile {
    /// Takes charge of the socket file just bound at `path`.
    pub fn bound(path: &Path) -> SocketFile {
        let made = std::fs::symlink_metadata(path).ok().map(|m| (m.dev(), m.ino()));
        SocketFile { path: path.to_path_buf(), made }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        let now = std::fs::symlink_metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        if now.is_some() && now == self.made {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// How a Unix socket is named: a file path, or a Linux abstract name, written `@name` (as `ss` shows
/// them), which no file stands for and which vanishes with the last socket bound to it.
pub(super) enum UnixName<'a> {
    File(&'a Path),
    Abstract(&'a [u8]),
}

impl UnixName<'_> {
    pub(super) fn of(path: &Path) -> UnixName<'_> {
        use std::os::unix::ffi::OsStrExt;
        match path.as_os_str().as_bytes().strip_prefix(b"@") {
            Some(name) => UnixName::Abstract(name),
            None => UnixName::File(path),
        }
    }

    /// The address to bind or connect to.
    pub(super) fn addr(&self) -> io::Result<std::os::unix::net::SocketAddr> {
        use std::os::linux::net::SocketAddrExt;
        match self {
            UnixName::File(path) => std::os::unix::net::SocketAddr::from_pathname(path),
            UnixName::Abstract(name) => std::os::unix::net::SocketAddr::from_abstract_name(name),
        }
    }
}

/// A Unix server's name as `Listening on` shows it, and the file it made (none for an abstract name).
pub(super) struct UnixBound {
    pub(super) name: String,
    pub(super) _file: Option<SocketFile>,
}

/// Binds a Unix socket with `bind` at `path`: a stale file from a dead server is cleared first, a live
/// server's is never taken; an abstract name needs neither.
pub(super) fn bind_unix<T>(
    proto: Proto,
    path: &Path,
    bind: impl FnOnce(&std::os::unix::net::SocketAddr) -> io::Result<T>,
) -> Result<(T, UnixBound)> {
    let what = format!("{proto} {}", path.display());
    let name = UnixName::of(path);
    if let UnixName::File(file) = name {
        clear_stale_socket(proto, file)?;
    }
    let addr = name.addr().map_err(|source| Error::Bind { what: what.clone(), source })?;
    let sock = bind(&addr).map_err(|source| Error::Bind { what, source })?;
    let file = matches!(name, UnixName::File(_)).then(|| SocketFile::bound(path));
    Ok((sock, UnixBound { name: path.display().to_string(), _file: file }))
}

/// Removes a socket file left by a dead server; refuses to touch a live one or anything not a socket.
fn clear_stale_socket(proto: Proto, path: &Path) -> Result<()> {
    let what = format!("{proto} {}", path.display());
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::Bind { what, source }),
    };
    if !meta.file_type().is_socket() {
        let source =
            io::Error::new(io::ErrorKind::AlreadyExists, "the file exists and is not a socket; not removing it");
        return Err(Error::Bind { what, source });
    }
    let live = || Error::Bind {
        what: what.clone(),
        source: io::Error::new(io::ErrorKind::AddrInUse, "another server is listening there"),
    };
    // The kernel's list of bound sockets says so without connecting, which a live stream server would
    // see (and print) as a client.
    if bound_in_this_namespace(path) {
        return Err(live());
    }
    match probe(proto, path) {
        Ok(()) => Err(live()),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            info!("removing stale socket file {} (no server behind it)", path.display());
            std::fs::remove_file(path).map_err(|source| Error::Bind { what, source })
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Error::Bind {
            what,
            source: io::Error::new(
                io::ErrorKind::AddrInUse,
                "a server is there but not answering (its queue of connections is full); not taking its path",
            ),
        }),
        Err(source) => Err(Error::Bind { what, source }),
    }
}

/// Whether `/proc/net/unix` lists a socket bound at `path` (as given, or as an absolute path): a live
/// server. A server in another network namespace is not listed there; [`probe`] finds it.
fn bound_in_this_namespace(path: &Path) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else { return false };
    let absolute = std::fs::canonicalize(path).ok();
    let wanted: Vec<String> =
        [Some(path.to_path_buf()), absolute].into_iter().flatten().map(|p| p.display().to_string()).collect();
    // Columns: Num RefCount Protocol Flags Type St Inode Path (the path may hold spaces).
    table.lines().skip(1).filter_map(|line| line.splitn(8, ' ').nth(7)).any(|bound| wanted.iter().any(|w| w == bound))
}

/// Connects to the socket at `path` without waiting: a stream connect to a full queue says
/// WouldBlock instead of hanging; a datagram socket is only connected, nothing is sent.
fn probe(proto: Proto, path: &Path) -> io::Result<()> {
    use socket2::{Domain, SockAddr, Socket};
    let sock = Socket::new(Domain::UNIX, unix_type(proto).nonblocking(), None)?;
    sock.connect(&SockAddr::unix(path)?)
}

/// The socket type of a Unix kind: a socket of another type is refused at its file (EPROTOTYPE).
fn unix_type(proto: Proto) -> socket2::Type {
    match proto {
        Proto::Seqpacket => socket2::Type::SEQPACKET,
        _ if proto.is_stream() => socket2::Type::STREAM,
        _ => socket2::Type::DGRAM,
    }
}

/// A Unix address as socket2 takes it: a path, or an abstract name (a leading NUL byte).
fn unix_sockaddr(addr: &std::os::unix::net::SocketAddr) -> io::Result<socket2::SockAddr> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    match (addr.as_pathname(), addr.as_abstract_name()) {
        (Some(path), _) => socket2::SockAddr::unix(path),
        (_, Some(name)) => socket2::SockAddr::unix(std::ffi::OsStr::from_bytes(&[&[0], name].concat())),
        _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "an unnamed Unix address")),
    }
}

/// A listening Unix seqpacket socket at `addr`. std has no type for one, and needs none: it accepts
/// like a stream listener, and each connection reads and writes with the same calls as a stream's
/// (where each read takes one message and each write sends one), so they are std's Unix types.
pub(super) fn seqpacket_listener(
    addr: &std::os::unix::net::SocketAddr,
) -> io::Result<std::os::unix::net::UnixListener> {
    let sock = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::SEQPACKET, None)?;
    sock.bind(&unix_sockaddr(addr)?)?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    Ok(std::os::fd::OwnedFd::from(sock).into())
}

/// A Unix seqpacket socket connected to `addr`; with `nonblocking`, a full listen queue says
/// WouldBlock instead of waiting (as mio's Unix stream connect does).
pub fn seqpacket_connect(
    addr: &std::os::unix::net::SocketAddr,
    nonblocking: bool,
) -> io::Result<std::os::unix::net::UnixStream> {
    let kind = if nonblocking { socket2::Type::SEQPACKET.nonblocking() } else { socket2::Type::SEQPACKET };
    let sock = socket2::Socket::new(socket2::Domain::UNIX, kind, None)?;
    sock.connect(&unix_sockaddr(addr)?)?;
    Ok(std::os::fd::OwnedFd::from(sock).into())
}

/// A fresh abstract name for a Unix datagram client's own socket, which the server replies to.
pub(super) fn client_name() -> std::os::unix::net::SocketAddr {
    use std::os::linux::net::SocketAddrExt;
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = format!("netpair-client-{}-{n}-{nanos:08x}", std::process::id());
    std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap_or_else(|_| unreachable!("a short name fits"))
}

/// A private directory for the socket files of in-process runs (`compare`, `bench`), removed on drop.
pub struct SocketDir(PathBuf);

impl SocketDir {
    /// Where [`SocketDir::new`] makes its directory: `$TMPDIR/netpair-PURPOSE-PID`.
    pub fn path_for(purpose: &str) -> PathBuf {
        std::env::temp_dir().join(format!("netpair-{purpose}-{}", std::process::id()))
    }

    /// Creates `$TMPDIR/netpair-PURPOSE-PID`.
    pub fn new(purpose: &str) -> Result<SocketDir> {
        let path = SocketDir::path_for(purpose);
        std::fs::create_dir_all(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(SocketDir(path))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path in it not handed out before, named after `what`.
    pub fn fresh(&self, what: &str) -> PathBuf {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        self.0.join(format!("{what}-{}.sock", COUNT.fetch_add(1, Ordering::Relaxed)))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
