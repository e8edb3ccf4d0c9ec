//! Many datagrams per system call: `recvmmsg` and `sendmmsg`, with the peers' addresses as
//! `socket2::SockAddr`, the address each datagram was sent to (`IP_PKTINFO`, `IPV6_PKTINFO`) so that
//! a reply leaves from it, and the kernel's count of datagrams it dropped (`SO_RXQ_OVFL`). With
//! `sys`, the only module allowed `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

use socket2::{SockAddr, SockAddrStorage};

/// Most datagrams taken in one `recvmmsg` or given to one `sendmmsg`.
pub const BATCH: usize = 64;

/// The address a datagram came to, and the interface it came in on: on a socket bound to every
/// address (`0.0.0.0`, `::`), which of the host's addresses the sender used, and so the one a reply
/// must come from for a connected client to take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Local {
    /// An IPv4 address, and the interface the datagram came in on.
    V4 {
        /// The address.
        addr: Ipv4Addr,
        /// The interface.
        ifindex: i32,
    },
    /// An IPv6 address, and the interface the datagram came in on.
    V6 {
        /// The address.
        addr: Ipv6Addr,
        /// The interface.
        ifindex: u32,
    },
}

/// Room for one datagram's control messages: a pktinfo and a drop count, with headers and padding.
const CONTROL_WORDS: usize = 16;

/// Room for the senders' addresses of one batch as the kernel writes them, with what it says of
/// each datagram in control messages.
pub struct Senders {
    storage: Vec<SockAddrStorage>,
    lens: Vec<libc::socklen_t>,
    control: Vec<[u64; CONTROL_WORDS]>,
    locals: Vec<Option<Local>>,
    /// The socket's count of datagrams dropped for want of room (`SO_RXQ_OVFL`), as of the last batch.
    dropped: Option<u32>,
}

impl Senders {
    /// Room for `n` senders (at most [`BATCH`] are used).
    pub fn new(n: usize) -> Senders {
        let n = n.min(BATCH);
        Senders {
            storage: (0..n).map(|_| SockAddrStorage::zeroed()).collect(),
            lens: vec![0; n],
            control: vec![[0; CONTROL_WORDS]; n],
            locals: vec![None; n],
            dropped: None,
        }
    }

    /// The address the `i`th datagram of the last batch was sent to, when the socket asked for it.
    pub fn local(&self, i: usize) -> Option<Local> {
        self.locals.get(i).copied().flatten()
    }

    /// How many datagrams the kernel has dropped on this socket because its receive buffer was full,
    /// since the count was turned on (as of the last batch that carried it).
    pub fn dropped(&self) -> Option<u32> {
        self.dropped
    }

    /// The sender of the `i`th datagram of the last batch; `None` when it had no address (an
    /// unbound Unix socket) or `i` is past the batch.
    pub fn get(&self, i: usize) -> Option<SockAddr> {
        let (storage, &len) = (self.storage.get(i)?, self.lens.get(i)?);
        if len as usize <= size_of::<libc::sa_family_t>() {
            return None;
        }
        // SAFETY: the storage is plain data, copied bit for bit; recvmmsg wrote an address of its family
        // and `len` bytes into it (the rest is zeroed or left from an earlier, also valid, address).
        Some(unsafe { SockAddr::new(std::ptr::read(storage), len) })
    }

    fn len(&self) -> usize {
        self.storage.len()
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
    mut from: Option<&mut Senders>,
) -> io::Result<usize> {
    assert!(slot > 0, "a datagram slot holds at least one byte");
    let mut count = lens.len().min(BATCH).min(bufs.len() / slot);
    if let Some(from) = &from {
        count = count.min(from.len());
    }
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    let names = from.as_deref_mut().map(|f| (f.storage.as_mut_ptr(), f.control.as_mut_ptr()));
    for (i, chunk) in bufs.chunks_exact_mut(slot).take(count).enumerate() {
        let iov = iovs[i].write(libc::iovec { iov_base: chunk.as_mut_ptr().cast(), iov_len: slot });
        let hdr = &mut msgs[i].write(empty_header()).msg_hdr;
        hdr.msg_iov = iov;
        hdr.msg_iovlen = 1;
        if let Some((names, control)) = names {
            // SAFETY: i < count <= the senders' length, for both arrays.
            hdr.msg_name = unsafe { names.add(i) }.cast();
            hdr.msg_namelen = size_of::<SockAddrStorage>() as libc::socklen_t;
            hdr.msg_control = unsafe { control.add(i) }.cast();
            hdr.msg_controllen = size_of::<[u64; CONTROL_WORDS]>();
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
            from.lens[i] = msg.msg_hdr.msg_namelen;
            from.locals[i] = None;
            // SAFETY: the kernel wrote msg_controllen bytes of control messages into this header's
            // buffer, which is still borrowed; the CMSG_* macros stay within that length.
            unsafe { read_control(&msg.msg_hdr, &mut from.locals[i], &mut from.dropped) };
        }
    }
    Ok(got)
}

/// Reads the control messages of one received datagram: where it was sent to, and the drop count.
///
/// # Safety
/// `hdr.msg_control` points at `hdr.msg_controllen` bytes of control messages written by the kernel.
unsafe fn read_control(hdr: &libc::msghdr, local: &mut Option<Local>, dropped: &mut Option<u32>) {
    // SAFETY: as the caller promises; each CMSG_DATA is read as the type its level and kind name.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            let data = libc::CMSG_DATA(cmsg);
            match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let info = data.cast::<libc::in_pktinfo>().read_unaligned();
                    let addr = Ipv4Addr::from(info.ipi_addr.s_addr.to_ne_bytes());
                    *local = Some(Local::V4 { addr, ifindex: info.ipi_ifindex });
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info = data.cast::<libc::in6_pktinfo>().read_unaligned();
                    let addr = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                    *local = Some(Local::V6 { addr, ifindex: info.ipi6_ifindex });
                }
                (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => *dropped = Some(data.cast::<u32>().read_unaligned()),
                _ => {}
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
}

/// Writes the control message that makes a datagram leave from `local`, into `buf`; its length.
fn write_pktinfo(local: Local, buf: &mut [u64; CONTROL_WORDS], hdr: &mut libc::msghdr) {
    let (level, kind, size) = match local {
        Local::V4 { .. } => (libc::IPPROTO_IP, libc::IP_PKTINFO, size_of::<libc::in_pktinfo>()),
        Local::V6 { .. } => (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, size_of::<libc::in6_pktinfo>()),
    };
    hdr.msg_control = buf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE of a pktinfo fits the buffer (16 words); the header is then the first in it.
    unsafe {
        hdr.msg_controllen = libc::CMSG_SPACE(size as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(hdr);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size as u32) as usize;
        let data = libc::CMSG_DATA(cmsg);
        match local {
            Local::V4 { addr, .. } => data.cast::<libc::in_pktinfo>().write_unaligned(libc::in_pktinfo {
                // The interface is the routing table's choice; the source address is what matters.
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr { s_addr: u32::from_ne_bytes(addr.octets()) },
                ipi_addr: libc::in_addr { s_addr: 0 },
            }),
            Local::V6 { addr, ifindex } => data.cast::<libc::in6_pktinfo>().write_unaligned(libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr { s6_addr: addr.octets() },
                // A link-local address means nothing without its interface.
                ipi6_ifindex: if addr.is_unicast_link_local() { ifindex } else { 0 },
            }),
        }
    }
}

/// Sends datagrams, each to its address (none: the socket's connected peer), as many as the socket
/// takes in one call, never waiting; at most [`BATCH`] of them. Returns how many were sent; an
/// error means the first one was not. Fewer sent than given (and than [`BATCH`]) means the next one
/// met an error, which the kernel does not report: sending it again tells.
pub fn send_batch<'a>(
    fd: RawFd,
    datagrams: impl IntoIterator<Item = (&'a [u8], Option<&'a SockAddr>)>,
) -> io::Result<usize> {
    send_batch_from(fd, datagrams.into_iter().map(|(data, to)| (data, to, None)))
}

/// [`send_batch`], each datagram leaving from the local address given with it (see [`Local`]).
pub fn send_batch_from<'a>(
    fd: RawFd,
    datagrams: impl IntoIterator<Item = (&'a [u8], Option<&'a SockAddr>, Option<Local>)>,
) -> io::Result<usize> {
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    // Control messages only for the datagrams that carry one (zeroing all would cost more).
    let mut control = [const { MaybeUninit::<[u64; CONTROL_WORDS]>::uninit() }; BATCH];
    let mut count = 0;
    let mut any_local = false;
    for (data, to, local) in datagrams.into_iter().take(BATCH) {
        // The kernel only reads through these pointers.
        let iov = iovs[count].write(libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() });
        let hdr = &mut msgs[count].write(empty_header()).msg_hdr;
        hdr.msg_iov = iov;
        hdr.msg_iovlen = 1;
        if let Some(to) = to {
            hdr.msg_name = to.as_ptr().cast_mut().cast();
            hdr.msg_namelen = to.len();
        }
        if let Some(local) = local {
            write_pktinfo(local, control[count].write([0; CONTROL_WORDS]), hdr);
            any_local = true;
        }
        count += 1;
    }
    if count == 0 {
        return Ok(0);
    }
    if count == 1 && any_local {
        // SAFETY: the first header was written above, and points at its iovec, address and control
        // message, all alive for the call.
        let sent = unsafe { libc::sendmsg(fd, &msgs[0].assume_init_ref().msg_hdr, libc::MSG_DONTWAIT) };
        return if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(1) };
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
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn a_batch_carries_datagrams_and_their_senders() {
        let dir = tempfile::tempdir().unwrap();
        let (server_path, client_path) = (dir.path().join("s"), dir.path().join("c".repeat(80)));
        let server = UnixDatagram::bind(&server_path).unwrap();
        let client = UnixDatagram::bind(&client_path).unwrap();
        let unnamed = UnixDatagram::unbound().unwrap();
        let to = SockAddr::unix(&server_path).unwrap();
        assert_eq!(send_batch(client.as_raw_fd(), [(&b"one"[..], Some(&to)), (&b"two"[..], Some(&to))]).unwrap(), 2);
        unnamed.send_to(b"three", &server_path).unwrap();
        let (mut bufs, mut lens, mut from) = (vec![0; 4 * 8], [0; 4], Senders::new(4));
        let got = recv_batch(server.as_raw_fd(), &mut bufs, 8, &mut lens, Some(&mut from)).unwrap();
        assert_eq!((got, &lens[..3]), (3, &[3, 3, 5][..]));
        assert_eq!(&bufs[8..11], b"two");
        assert_eq!(from.get(0).and_then(|a| a.as_pathname().map(|p| p.to_path_buf())), Some(client_path));
        assert!(from.get(2).is_none(), "an unbound sender has no address");
        // A datagram longer than its slot is marked as such.
        client.send_to(b"123456789", &server_path).unwrap();
        assert_eq!(recv_batch(server.as_raw_fd(), &mut bufs, 8, &mut lens, None).unwrap(), 1);
        assert_eq!(lens[0], 9);
    }
}
