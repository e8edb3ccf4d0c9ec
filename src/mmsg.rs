//! Many datagrams per system call: `recvmmsg` and `sendmmsg`, with the peers' addresses as the kernel
//! writes and reads them.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Most datagrams taken in one `recvmmsg` or given to one `sendmmsg`.
pub const BATCH: usize = 64;

/// A socket address in the kernel's form: an IPv4, IPv6 or Unix socket address, or none.
#[derive(Clone, Copy)]
pub struct RawAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl RawAddr {
    /// No address: a datagram to a connected socket, or a sender without one.
    pub fn none() -> RawAddr {
        // SAFETY: sockaddr_storage is a plain C struct; all zeroes is AF_UNSPEC.
        RawAddr { storage: unsafe { std::mem::zeroed() }, len: 0 }
    }

    /// An IPv4 or IPv6 socket address.
    pub fn inet(addr: SocketAddr) -> RawAddr {
        let mut raw = RawAddr::none();
        let storage = (&raw mut raw.storage).cast::<u8>();
        match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(a.ip().octets()) },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than, and aligned for, every sockaddr.
                unsafe { storage.cast::<libc::sockaddr_in>().write(sin) };
                raw.len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    // As std passes it: the flow label is not swapped.
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: as above.
                unsafe { storage.cast::<libc::sockaddr_in6>().write(sin6) };
                raw.len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            }
        }
        raw
    }

    /// A Unix socket file's address; `None` when the path is too long for one.
    pub fn path(path: &Path) -> Option<RawAddr> {
        let bytes = path.as_os_str().as_bytes();
        let mut raw = RawAddr::none();
        // SAFETY: sockaddr_storage is larger than, and aligned for, sockaddr_un.
        let sun = unsafe { &mut *(&raw mut raw.storage).cast::<libc::sockaddr_un>() };
        // A path that fills sun_path has no terminating NUL (Linux allows it, the length tells);
        // a shorter one gets the NUL that the zeroed storage already holds.
        if bytes.is_empty() || bytes.len() > sun.sun_path.len() {
            return None;
        }
        sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (to, &from) in sun.sun_path.iter_mut().zip(bytes) {
            *to = from as libc::c_char;
        }
        let nul = usize::from(bytes.len() < sun.sun_path.len());
        raw.len = (std::mem::offset_of!(libc::sockaddr_un, sun_path) + bytes.len() + nul) as libc::socklen_t;
        Some(raw)
    }

    /// The IPv4 or IPv6 address, if it is one.
    pub fn to_inet(&self) -> Option<SocketAddr> {
        let storage = (&raw const self.storage).cast::<u8>();
        match i32::from(self.storage.ss_family) {
            libc::AF_INET if self.len as usize >= size_of::<libc::sockaddr_in>() => {
                // SAFETY: the kernel wrote a sockaddr_in here (family and length say so).
                let sin = unsafe { storage.cast::<libc::sockaddr_in>().read() };
                let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
                Some(SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(sin.sin_port))))
            }
            libc::AF_INET6 if self.len as usize >= size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, a sockaddr_in6.
                let sin6 = unsafe { storage.cast::<libc::sockaddr_in6>().read() };
                let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                let port = u16::from_be(sin6.sin6_port);
                Some(SocketAddr::V6(SocketAddrV6::new(ip, port, sin6.sin6_flowinfo, sin6.sin6_scope_id)))
            }
            _ => None,
        }
    }

    /// The socket file's path, if this is a Unix address with one (not unnamed, not abstract).
    pub fn to_path(&self) -> Option<PathBuf> {
        if i32::from(self.storage.ss_family) != libc::AF_UNIX {
            return None;
        }
        // SAFETY: the family says the kernel wrote a sockaddr_un, which fits in the storage.
        let sun = unsafe { &*(&raw const self.storage).cast::<libc::sockaddr_un>() };
        let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
        let len = (self.len as usize).saturating_sub(offset).min(sun.sun_path.len());
        let bytes: Vec<u8> = sun.sun_path[..len].iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
        // An unnamed socket has no path bytes; an abstract one starts with NUL: neither is a file.
        if bytes.is_empty() {
            return None;
        }
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)))
    }
}

/// A header with no buffers, no address and no flags. The arrays of them are left uninitialized past
/// the entries a call uses: zeroing all [`BATCH`] would cost more than the call itself for one datagram.
fn empty_header() -> libc::mmsghdr {
    // SAFETY: mmsghdr is a plain C struct for which all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Receives up to `lens.len()` datagrams (at most [`BATCH`]) of at most `slot` bytes each into
/// consecutive slots of `bufs`, never waiting. Each one's length goes in `lens` (`slot + 1` when it
/// was cut short) and, when `from` is given, its sender there. Returns how many came: fewer than
/// asked for means the socket's queue is empty.
pub fn recv_batch(
    fd: RawFd,
    bufs: &mut [u8],
    slot: usize,
    lens: &mut [usize],
    mut from: Option<&mut [RawAddr]>,
) -> io::Result<usize> {
    assert!(slot > 0, "a datagram slot holds at least one byte");
    let mut count = lens.len().min(BATCH).min(bufs.len() / slot);
    if let Some(from) = &from {
        count = count.min(from.len());
    }
    // One pointer into the senders' array for every header, taken once.
    let names = from.as_deref_mut().map(<[RawAddr]>::as_mut_ptr);
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    for (i, chunk) in bufs.chunks_exact_mut(slot).take(count).enumerate() {
        let iov = iovs[i].write(libc::iovec { iov_base: chunk.as_mut_ptr().cast(), iov_len: slot });
        let hdr = &mut msgs[i].write(empty_header()).msg_hdr;
        hdr.msg_iov = iov;
        hdr.msg_iovlen = 1;
        if let Some(names) = names {
            // SAFETY: i < count <= from.len().
            hdr.msg_name = unsafe { (&raw mut (*names.add(i)).storage).cast() };
            hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
    }
    // SAFETY: every header points at one iovec over `slot` bytes of `bufs` and, when given, at one
    // address storage of `from`, all of which outlive the call; the kernel writes no more than that.
    let got = unsafe {
        libc::recvmmsg(fd, msgs.as_mut_ptr().cast(), count as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    debug_assert!(got <= count);
    for (i, msg) in msgs[..got].iter().enumerate() {
        // SAFETY: the first `count` headers were written above, and got <= count.
        let msg = unsafe { msg.assume_init_ref() };
        let truncated = msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        lens[i] = if truncated { slot + 1 } else { msg.msg_len as usize };
        if let Some(from) = from.as_deref_mut() {
            from[i].len = msg.msg_hdr.msg_namelen;
        }
    }
    Ok(got)
}

/// Sends datagrams, each to its address (none: the socket's connected peer), as many as the socket
/// takes in one call, never waiting; at most [`BATCH`] of them. Returns how many were sent; an
/// error means the first one was not. Fewer sent than given (and than [`BATCH`]) means the next one
/// met an error, which the kernel does not report: sending it again tells.
pub fn send_batch<'a>(fd: RawFd, datagrams: impl IntoIterator<Item = (&'a [u8], &'a RawAddr)>) -> io::Result<usize> {
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    let mut count = 0;
    for (data, to) in datagrams.into_iter().take(BATCH) {
        // The kernel only reads through these pointers.
        let iov = iovs[count].write(libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() });
        let hdr = &mut msgs[count].write(empty_header()).msg_hdr;
        hdr.msg_iov = iov;
        hdr.msg_iovlen = 1;
        if to.len > 0 {
            hdr.msg_name = (&raw const to.storage).cast_mut().cast();
            hdr.msg_namelen = to.len;
        }
        count += 1;
    }
    if count == 0 {
        return Ok(0);
    }
    if count == 1 {
        // One datagram (a ping-pong's reply): sendto is the shorter path through the kernel.
        // SAFETY: the first entries were written above.
        let (iov, hdr) = unsafe { (iovs[0].assume_init_ref(), &msgs[0].assume_init_ref().msg_hdr) };
        // SAFETY: the datagram and its address (or none) are borrowed for the call, as for sendmmsg.
        let sent = unsafe {
            libc::sendto(fd, iov.iov_base, iov.iov_len, libc::MSG_DONTWAIT, hdr.msg_name.cast(), hdr.msg_namelen)
        };
        return if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(1) };
    }
    // SAFETY: every header points at one iovec over a datagram and at an address, all borrowed for
    // the call.
    let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr().cast(), count as libc::c_uint, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}

#[cfg(test)]
mod tests {
    use super::RawAddr;
    use std::path::Path;

    #[test]
    fn addresses_round_trip() {
        for text in ["127.0.0.1:5001", "[::1]:65535", "[fe80::1%2]:1", "0.0.0.0:0"] {
            let addr = text.parse().unwrap();
            assert_eq!(RawAddr::inet(addr).to_inet(), Some(addr));
            assert_eq!(RawAddr::inet(addr).to_path(), None);
        }
        for path in ["/tmp/netpair.sock".to_string(), format!("/{}", "x".repeat(107))] {
            let path = Path::new(&path);
            assert_eq!(RawAddr::path(path).and_then(|a| a.to_path()).as_deref(), Some(path));
        }
        assert!(RawAddr::path(Path::new(&format!("/{}", "x".repeat(108)))).is_none());
        assert_eq!(RawAddr::none().to_inet(), None);
        assert_eq!(RawAddr::none().to_path(), None);
    }

    #[test]
    fn unix_senders_without_a_file_have_no_path() {
        let offset = std::mem::offset_of!(libc::sockaddr_un, sun_path);
        let mut unnamed = RawAddr::path(Path::new("/x")).unwrap();
        unnamed.len = offset as libc::socklen_t;
        assert_eq!(unnamed.to_path(), None);
        // An abstract address: a NUL, then a name.
        let mut abstract_name = RawAddr::path(Path::new("/name")).unwrap();
        // SAFETY: the storage holds a sockaddr_un.
        unsafe { (*(&raw mut abstract_name.storage).cast::<libc::sockaddr_un>()).sun_path[0] = 0 };
        assert_eq!(abstract_name.to_path(), None);
    }
}
