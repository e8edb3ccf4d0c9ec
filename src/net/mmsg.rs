//! Many datagrams per system call: `recvmmsg` and `sendmmsg`, with the peers' addresses as
//! `socket2::SockAddr`. With `sys`, the only module allowed `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

use socket2::{SockAddr, SockAddrStorage};

/// Most datagrams taken in one `recvmmsg` or given to one `sendmmsg`.
pub const BATCH: usize = 64;

/// Room for the senders' addresses of one batch, as the kernel writes them.
pub struct Senders {
    storage: Vec<SockAddrStorage>,
    lens: Vec<libc::socklen_t>,
}

impl Senders {
    /// Room for `n` senders (at most [`BATCH`] are used).
    pub fn new(n: usize) -> Senders {
        let n = n.min(BATCH);
        Senders { storage: (0..n).map(|_| SockAddrStorage::zeroed()).collect(), lens: vec![0; n] }
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
    let names = from.as_deref_mut().map(|f| f.storage.as_mut_ptr());
    for (i, chunk) in bufs.chunks_exact_mut(slot).take(count).enumerate() {
        let iov = iovs[i].write(libc::iovec { iov_base: chunk.as_mut_ptr().cast(), iov_len: slot });
        let hdr = &mut msgs[i].write(empty_header()).msg_hdr;
        hdr.msg_iov = iov;
        hdr.msg_iovlen = 1;
        if let Some(names) = names {
            // SAFETY: i < count <= the senders' length.
            hdr.msg_name = unsafe { names.add(i) }.cast();
            hdr.msg_namelen = size_of::<SockAddrStorage>() as libc::socklen_t;
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
        }
    }
    Ok(got)
}

/// Sends datagrams, each to its address (none: the socket's connected peer), as many as the socket
/// takes in one call, never waiting; at most [`BATCH`] of them. Returns how many were sent; an
/// error means the first one was not. Fewer sent than given (and than [`BATCH`]) means the next one
/// met an error, which the kernel does not report: sending it again tells.
pub fn send_batch<'a>(
    fd: RawFd,
    datagrams: impl IntoIterator<Item = (&'a [u8], Option<&'a SockAddr>)>,
) -> io::Result<usize> {
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    let mut count = 0;
    for (data, to) in datagrams.into_iter().take(BATCH) {
        // The kernel only reads through these pointers.
        let iov = iovs[count].write(libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() });
        let hdr = &mut msgs[count].write(empty_header()).msg_hdr;
        hdr.msg_iov = iov;
        hdr.msg_iovlen = 1;
        if let Some(to) = to {
            hdr.msg_name = to.as_ptr().cast_mut().cast();
            hdr.msg_namelen = to.len();
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
