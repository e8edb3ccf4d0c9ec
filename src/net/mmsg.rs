//! Many datagrams per system call: `recvmmsg` and `sendmmsg` (and towards loopback, several
//! datagrams per send that the kernel cuts apart, `UDP_SEGMENT`), with the peers' addresses as
//! `socket2::SockAddr`, the address each datagram was sent to (`IP_PKTINFO`, `IPV6_PKTINFO`) so that
//! a reply leaves from it, and the kernel's count of datagrams it dropped (`SO_RXQ_OVFL`). With
//! `sys`, the only module allowed `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;

use log::debug;
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
/// each datagram in control messages, and the message headers that point there.
pub struct Senders {
    storage: Vec<SockAddrStorage>,
    lens: Vec<libc::socklen_t>,
    control: Vec<[u64; CONTROL_WORDS]>,
    locals: Vec<Option<Local>>,
    /// The socket's count of datagrams dropped for want of room (`SO_RXQ_OVFL`), as of the last batch.
    dropped: Option<u32>,
    headers: Headers,
}

/// The message headers of a receive, written once and kept for the next receive into the same
/// buffers: writing a batch's 64 headers costs more than the rest of a ping-pong's turn, and the
/// kernel changes only the address and control lengths of the headers it fills.
struct Headers {
    iovs: Vec<libc::iovec>,
    msgs: Vec<libc::mmsghdr>,
    /// The buffers they point into: their address and slot size (0 for none yet).
    bufs: usize,
    slot: usize,
    /// How many of them the kernel filled last time, whose lengths are to be set again.
    filled: usize,
}

// SAFETY: the headers' pointers are never read here, only handed to the kernel by `recv_batch`,
// and only once it has checked that they point into the buffers it borrows for the call (and into
// the `Senders`' own vectors, which never grow).
unsafe impl Send for Headers {}

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
            headers: Headers { iovs: Vec::new(), msgs: Vec::new(), bufs: 0, slot: 0, filled: 0 },
        }
    }

    /// Headers for `count` datagrams into `slot`-byte slots of `bufs`, each with room for its
    /// sender's address and control messages: the kept ones when they point there, with the
    /// lengths the kernel changed set again, else new ones.
    fn headers(&mut self, bufs: &mut [u8], slot: usize, count: usize) -> &mut [libc::mmsghdr] {
        debug_assert!(count <= self.len() && count * slot <= bufs.len());
        let h = &mut self.headers;
        let fits = h.bufs == bufs.as_mut_ptr() as usize && h.slot == slot && count <= h.msgs.len();
        if !fits {
            let n = self.storage.len().min(bufs.len() / slot);
            h.iovs = bufs
                .chunks_exact_mut(slot)
                .take(n)
                .map(|c| libc::iovec { iov_base: c.as_mut_ptr().cast(), iov_len: slot })
                .collect();
            h.msgs = (0..n).map(|_| empty_header()).collect();
            for (i, msg) in h.msgs.iter_mut().enumerate() {
                msg.msg_hdr.msg_iov = &mut h.iovs[i];
                msg.msg_hdr.msg_iovlen = 1;
                msg.msg_hdr.msg_name = (&mut self.storage[i] as *mut SockAddrStorage).cast();
                msg.msg_hdr.msg_control = self.control[i].as_mut_ptr().cast();
            }
            (h.bufs, h.slot, h.filled) = (bufs.as_mut_ptr() as usize, slot, n);
        }
        for msg in &mut h.msgs[..h.filled] {
            msg.msg_hdr.msg_namelen = size_of::<SockAddrStorage>() as libc::socklen_t;
            msg.msg_hdr.msg_controllen = size_of::<[u64; CONTROL_WORDS]>();
        }
        h.filled = 0;
        &mut h.msgs[..count]
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
/// was cut short) and its sender in `from`. Returns how many came: fewer than asked for means the
/// socket's queue is empty.
pub fn recv_batch(
    fd: RawFd,
    bufs: &mut [u8],
    slot: usize,
    lens: &mut [usize],
    from: &mut Senders,
) -> io::Result<usize> {
    assert!(slot > 0, "a datagram slot holds at least one byte");
    let count = lens.len().min(BATCH).min(bufs.len() / slot).min(from.len());
    let msgs = from.headers(bufs, slot, count);
    // SAFETY: every header points at one iovec over `slot` bytes of `bufs` (checked by `headers`),
    // at one address storage and one control buffer of `from`, all of which outlive the call; the
    // kernel writes no more than that.
    let got = unsafe {
        libc::recvmmsg(fd, msgs.as_mut_ptr(), count as libc::c_uint, libc::MSG_DONTWAIT, std::ptr::null_mut())
    };
    if got < 0 {
        // Nothing was filled; all the lengths are set again all the same.
        from.headers.filled = count;
        return Err(io::Error::last_os_error());
    }
    let got = got as usize;
    debug_assert!(got <= count);
    from.headers.filled = got;
    let Senders { headers, lens: name_lens, locals, dropped, .. } = from;
    for (i, (msg, len)) in headers.msgs[..got].iter().zip(lens.iter_mut()).enumerate() {
        let truncated = msg.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        *len = if truncated { slot + 1 } else { msg.msg_len as usize };
        name_lens[i] = msg.msg_hdr.msg_namelen;
        locals[i] = None;
        // SAFETY: the kernel wrote msg_controllen bytes of control messages into this header's
        // buffer, which is still borrowed; the CMSG_* macros stay within that length.
        unsafe { read_control(&msg.msg_hdr, &mut locals[i], dropped) };
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

/// The most datagrams one send is cut into (the kernel's `UDP_MAX_SEGMENTS` is 64 before Linux 6.11).
const MAX_SEGMENTS: usize = 64;
/// The longest datagram sent as one segment of a larger send: 1,280 bytes (IPv6's smallest MTU)
/// less IPv6's and UDP's headers, so that no route's MTU refuses the segments.
const MAX_SEGMENT: usize = 1232;
/// The most bytes one send cut into segments carries, well inside a datagram's 65,507.
const MAX_SEGMENTED: usize = 60_000;

/// Where a datagram goes and the address it leaves from.
#[derive(Clone, Copy)]
struct Dest<'a> {
    to: Option<&'a SockAddr>,
    from: Option<Local>,
}

/// Consecutive datagrams of a batch that go in one message header: one datagram, or several cut
/// apart by the kernel (`UDP_SEGMENT`) of `size` bytes each, the last one perhaps shorter.
#[derive(Clone, Copy)]
struct Run {
    start: usize,
    count: usize,
    size: usize,
    bytes: usize,
}

impl Run {
    /// Whether the next datagram, `len` bytes to `dest`, can be one more segment of this run, whose
    /// first datagram went to `first`.
    fn takes(&self, len: usize, dest: Dest<'_>, first: Dest<'_>) -> bool {
        // Every segment but the last is `size` long: a shorter one closes the run.
        let open = self.bytes == self.size * self.count;
        open && self.count < MAX_SEGMENTS
            && (1..=self.size).contains(&len)
            && self.bytes + len <= MAX_SEGMENTED
            && dest.from == first.from
            // A run that grows began as one to a loopback address (`segments_to`), so this is one too.
            && dest.to == first.to
    }
}

/// Whether datagrams to `to` may go as segments of one send: only to a loopback address, where they
/// are cut apart before they are queued to the receiver. Towards another host a filter on the way (an
/// nftables rule on this host or in a lab's router) would see, and drop or copy, the whole send as
/// one packet, and loss that comes in bursts is not what a datagram's loss looks like.
fn segments_to(to: Option<&SockAddr>, len: usize) -> bool {
    (1..=MAX_SEGMENT).contains(&len)
        && to.and_then(SockAddr::as_socket).is_some_and(|a| a.ip().to_canonical().is_loopback())
}

/// Groups the datagrams (`lens`, `dests`) into runs, written into `runs`, as many datagrams per run
/// as may go as one send when `segment`, else one each; the runs.
fn group<'r>(
    lens: impl Iterator<Item = usize>,
    dests: &[Dest<'_>],
    segment: bool,
    runs: &'r mut [MaybeUninit<Run>; BATCH],
) -> &'r [Run] {
    let mut n = 0;
    let mut current: Option<Run> = None;
    for (i, len) in lens.enumerate() {
        if let Some(run) = current.as_mut()
            && run.takes(len, dests[i], dests[run.start])
        {
            run.count += 1;
            run.bytes += len;
            continue;
        }
        if let Some(run) = current {
            runs[n].write(run);
            n += 1;
        }
        let may = segment && segments_to(dests[i].to, len);
        // A run that may not grow is closed from the start (bytes past size * count).
        current = Some(Run { start: i, count: 1, size: if may { len } else { 0 }, bytes: len });
    }
    if let Some(run) = current {
        runs[n].write(run);
        n += 1;
    }
    // SAFETY: the first `n` runs were written just above.
    unsafe { std::slice::from_raw_parts(runs.as_ptr().cast::<Run>(), n) }
}

/// Writes a header's control messages into `buf`: the one that makes its datagrams leave from
/// `local`, and the one that has the kernel cut them into `segment`-byte datagrams.
fn write_control(local: Option<Local>, segment: Option<u16>, buf: &mut [u64; CONTROL_WORDS], hdr: &mut libc::msghdr) {
    let pktinfo = local.map(|local| match local {
        Local::V4 { .. } => (libc::IPPROTO_IP, libc::IP_PKTINFO, size_of::<libc::in_pktinfo>()),
        Local::V6 { .. } => (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, size_of::<libc::in6_pktinfo>()),
    });
    let space = |size: usize| {
        // SAFETY: CMSG_SPACE only computes a length.
        unsafe { libc::CMSG_SPACE(size as u32) as usize }
    };
    let total = pktinfo.map_or(0, |(_, _, size)| space(size)) + segment.map_or(0, |_| space(size_of::<u16>()));
    debug_assert!(total <= size_of::<[u64; CONTROL_WORDS]>());
    hdr.msg_control = buf.as_mut_ptr().cast();
    hdr.msg_controllen = total;
    // SAFETY: the control messages' total space fits the buffer (16 words: a pktinfo and a u16 take
    // at most 64 bytes); each header is written at the start of its own CMSG_SPACE.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        if let (Some(local), Some((level, kind, size))) = (local, pktinfo) {
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
            cmsg = cmsg.cast::<u8>().add(space(size)).cast();
        }
        if let Some(segment) = segment {
            (*cmsg).cmsg_level = libc::SOL_UDP;
            (*cmsg).cmsg_type = libc::UDP_SEGMENT;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as usize;
            libc::CMSG_DATA(cmsg).cast::<u16>().write_unaligned(segment);
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
    send_batch_from(fd, datagrams.into_iter().map(|(data, to)| (data, to, None)), &mut false)
}

/// [`send_batch`], each datagram leaving from the local address given with it (see [`Local`]).
///
/// With `segment` (a UDP socket), consecutive datagrams to one loopback peer from one address, of
/// one length but the last (which may be shorter), go through the kernel's stack as one send that it
/// cuts apart (`UDP_SEGMENT`, segmentation offload): the same datagrams arrive, for one trip through
/// the stack. A kernel that refuses (EINVAL, EIO) turns `segment` off, and they go one by one.
pub fn send_batch_from<'a>(
    fd: RawFd,
    datagrams: impl IntoIterator<Item = (&'a [u8], Option<&'a SockAddr>, Option<Local>)>,
    segment: &mut bool,
) -> io::Result<usize> {
    let mut iovs = [const { MaybeUninit::<libc::iovec>::uninit() }; BATCH];
    let mut dests = [const { MaybeUninit::<Dest<'a>>::uninit() }; BATCH];
    let mut count = 0;
    for (data, to, from) in datagrams.into_iter().take(BATCH) {
        // The kernel only reads through these pointers.
        iovs[count].write(libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() });
        dests[count].write(Dest { to, from });
        count += 1;
    }
    // SAFETY: the first `count` entries of both arrays were written just above.
    let (iovs, dests) = unsafe {
        (
            std::slice::from_raw_parts(iovs.as_ptr().cast::<libc::iovec>(), count),
            std::slice::from_raw_parts(dests.as_ptr().cast::<Dest<'a>>(), count),
        )
    };
    let mut runs = [const { MaybeUninit::<Run>::uninit() }; BATCH];
    let grouped = group(iovs.iter().map(|iov| iov.iov_len), dests, *segment, &mut runs);
    match send_runs(fd, iovs, dests, grouped) {
        Err(e)
            if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EIO))
                && grouped.first().is_some_and(|r| r.count > 1) =>
        {
            debug!("the kernel refused datagrams sent as segments of one send ({e}): they go one by one");
            *segment = false;
            let mut single = [const { MaybeUninit::<Run>::uninit() }; BATCH];
            send_runs(fd, iovs, dests, group(iovs.iter().map(|iov| iov.iov_len), dests, false, &mut single))
        }
        sent => sent,
    }
}

/// Sends the runs of datagrams, a message header each; how many datagrams went.
fn send_runs(fd: RawFd, iovs: &[libc::iovec], dests: &[Dest<'_>], runs: &[Run]) -> io::Result<usize> {
    let mut msgs = [const { MaybeUninit::<libc::mmsghdr>::uninit() }; BATCH];
    // Control messages only for the headers that carry one (zeroing all would cost more).
    let mut control = [const { MaybeUninit::<[u64; CONTROL_WORDS]>::uninit() }; BATCH];
    for (k, run) in runs.iter().enumerate() {
        let dest = dests[run.start];
        let hdr = &mut msgs[k].write(empty_header()).msg_hdr;
        hdr.msg_iov = iovs[run.start..].as_ptr().cast_mut();
        hdr.msg_iovlen = run.count;
        if let Some(to) = dest.to {
            hdr.msg_name = to.as_ptr().cast_mut().cast();
            hdr.msg_namelen = to.len();
        }
        // A run's size fits MAX_SEGMENT, so u16.
        let segment = (run.count > 1).then_some(run.size as u16);
        if dest.from.is_some() || segment.is_some() {
            write_control(dest.from, segment, control[k].write([0; CONTROL_WORDS]), hdr);
        }
    }
    let Some(first) = runs.first() else { return Ok(0) };
    if runs.len() == 1 {
        // SAFETY: the first header was written above, and points at its iovecs, address and control
        // messages, all alive for the call.
        let hdr = unsafe { &msgs[0].assume_init_ref().msg_hdr };
        let sent = if hdr.msg_controllen == 0 {
            // One datagram (a ping-pong's reply): sendto is the shorter path through the kernel.
            let iov = &iovs[first.start];
            // SAFETY: the datagram and its address (or none) are borrowed for the call.
            unsafe {
                libc::sendto(fd, iov.iov_base, iov.iov_len, libc::MSG_DONTWAIT, hdr.msg_name.cast(), hdr.msg_namelen)
            }
        } else {
            // SAFETY: as above.
            unsafe { libc::sendmsg(fd, hdr, libc::MSG_DONTWAIT) }
        };
        return if sent < 0 { Err(io::Error::last_os_error()) } else { Ok(first.count) };
    }
    // SAFETY: every header points at its iovecs, an address and its control messages, all borrowed
    // for the call.
    let sent = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr().cast(), runs.len() as libc::c_uint, libc::MSG_DONTWAIT) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(runs[..sent as usize].iter().map(|r| r.count).sum())
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
        let got = recv_batch(server.as_raw_fd(), &mut bufs, 8, &mut lens, &mut from).unwrap();
        assert_eq!((got, &lens[..3]), (3, &[3, 3, 5][..]));
        assert_eq!(&bufs[8..11], b"two");
        assert_eq!(from.get(0).and_then(|a| a.as_pathname().map(|p| p.to_path_buf())), Some(client_path));
        assert!(from.get(2).is_none(), "an unbound sender has no address");
        // A datagram longer than its slot is marked as such.
        client.send_to(b"123456789", &server_path).unwrap();
        assert_eq!(recv_batch(server.as_raw_fd(), &mut bufs, 8, &mut lens, &mut from).unwrap(), 1);
        assert_eq!(lens[0], 9);
    }

    #[test]
    fn kept_headers_follow_the_buffers_and_slots_of_each_receive() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        let mut from = Senders::new(8);
        let (mut a, mut b, mut lens) = (vec![0; 8 * 16], vec![0; 8 * 32], [0; 8]);
        // The same buffers again, other buffers, the same with another slot size, and fewer asked for.
        for (round, (in_b, slot, want)) in
            [(false, 16, 8), (true, 32, 8), (false, 16, 8), (false, 8, 8), (false, 8, 2)].into_iter().enumerate()
        {
            let bufs = if in_b { &mut b } else { &mut a };
            // Each round's datagrams are longer than the last's, so a stale length would show.
            let datagrams: Vec<Vec<u8>> = (0..3u8).map(|i| vec![b'a' + i; round + 3]).collect();
            for d in &datagrams {
                sender.send_to(d, to).unwrap();
            }
            // Loopback queues a datagram before its send returns.
            let got = recv_batch(receiver.as_raw_fd(), bufs, slot, &mut lens[..want], &mut from).unwrap();
            assert_eq!(got, want.min(3), "round {round}");
            for (i, d) in datagrams.iter().take(got).enumerate() {
                assert_eq!(&bufs[i * slot..][..lens[i]], &d[..], "round {round}, datagram {i}");
                assert_eq!(from.get(i).and_then(|a| a.as_socket()), Some(sender.local_addr().unwrap()));
            }
            while recv_batch(receiver.as_raw_fd(), bufs, slot, &mut lens, &mut from).unwrap_or(0) > 0 {}
        }
    }

    /// What `receiver` holds now, a datagram each, in order.
    fn drain(receiver: &std::net::UdpSocket) -> Vec<Vec<u8>> {
        receiver.set_read_timeout(Some(std::time::Duration::from_millis(200))).unwrap();
        let mut got = Vec::new();
        let mut buf = [0; 2048];
        while let Ok(n) = receiver.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
        got
    }

    #[test]
    fn datagrams_sent_as_segments_of_one_send_arrive_one_by_one_in_order() {
        for loopback in ["127.0.0.1:0", "[::1]:0"] {
            segments_arrive_one_by_one(loopback);
        }
    }

    fn segments_arrive_one_by_one(loopback: &str) {
        let bind = || std::net::UdpSocket::bind(loopback).unwrap();
        let (a, b, sender) = (bind(), bind(), bind());
        let (to_a, to_b) = (SockAddr::from(a.local_addr().unwrap()), SockAddr::from(b.local_addr().unwrap()));
        let big = vec![b'x'; MAX_SEGMENT + 1];
        // Three of one length and a shorter one close a run; b's breaks the next; an empty one and
        // one over the segment bound go alone.
        let batch: Vec<(&[u8], &SockAddr)> = vec![
            (b"aaaa1", &to_a),
            (b"aaaa2", &to_a),
            (b"aaaa3", &to_a),
            (b"a4", &to_a),
            (b"aaaa5", &to_a),
            (b"b1", &to_b),
            (b"aaaa6", &to_a),
            (b"", &to_a),
            (&big, &to_a),
            (b"aaaa7", &to_a),
            (b"aaaa8", &to_a),
        ];
        let dests: Vec<Dest<'_>> = batch.iter().map(|&(_, to)| Dest { to: Some(to), from: None }).collect();
        let mut runs = [const { MaybeUninit::<Run>::uninit() }; BATCH];
        let counts: Vec<usize> =
            group(batch.iter().map(|(d, _)| d.len()), &dests, true, &mut runs).iter().map(|r| r.count).collect();
        assert_eq!(counts, [4, 1, 1, 1, 1, 1, 2]);
        let mut segment = true;
        let sent = send_batch_from(sender.as_raw_fd(), batch.iter().map(|&(d, to)| (d, Some(to), None)), &mut segment);
        assert_eq!((sent.unwrap(), segment), (batch.len(), true));
        let want_a: Vec<&[u8]> = batch.iter().filter(|(_, to)| *to == &to_a).map(|(d, _)| *d).collect();
        assert_eq!(drain(&a), want_a);
        assert_eq!(drain(&b), [b"b1"]);
    }

    #[test]
    fn a_socket_that_cannot_send_segments_sends_one_by_one() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Without checksums the kernel refuses segmentation (EINVAL).
        crate::sys::turn_on(&sender, libc::SOL_SOCKET, libc::SO_NO_CHECK).unwrap();
        let to = SockAddr::from(receiver.local_addr().unwrap());
        let batch: [&[u8]; 3] = [b"one", b"two", b"six"];
        let mut segment = true;
        let sent = send_batch_from(sender.as_raw_fd(), batch.iter().map(|&d| (d, Some(&to), None)), &mut segment);
        assert_eq!((sent.unwrap(), segment), (3, false));
        assert_eq!(drain(&receiver), batch);
    }
}
