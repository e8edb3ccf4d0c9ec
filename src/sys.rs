//! Raw OS calls that std, mio, socket2 and rustix do not wrap: with `net::mmsg`, the only module
//! allowed `unsafe`. Each function is safe to call; each `unsafe` block says why it is sound.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::thread::JoinHandle;
use std::time::Duration;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Bytes queued on a socket that its peer has not taken yet: for TCP, written and not acknowledged
/// (SIOCOUTQ); for a Unix datagram socket, sent and not read. 0 when the kernel does not say.
pub fn unsent(sock: &impl AsFd) -> usize {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (same number as TIOCOUTQ) writes one int into `queued`, which outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_fd().as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc == 0 { usize::try_from(queued).unwrap_or(0) } else { 0 }
}

/// Whether a socket's own send buffer is (about) full, rather than a receiver's queue: a Unix
/// datagram stays charged to its sender until it is read.
pub fn send_buffer_full(sock: &impl AsFd) -> bool {
    let Ok(size) = rustix::net::sockopt::socket_send_buffer_size(sock) else { return false };
    // Full is `queued >= size` to the kernel; some may have been read since it said so.
    unsent(sock) >= size - size / 8
}

/// Turns on a socket option that takes an int (`setsockopt(level, name, 1)`), for the options no
/// safe wrapper offers: `IP_PKTINFO`, `IPV6_RECVPKTINFO`, `SO_RXQ_OVFL`, `IP_RECVERR`.
pub fn turn_on(sock: &impl AsFd, level: libc::c_int, name: libc::c_int) -> std::io::Result<()> {
    let one: libc::c_int = 1;
    let size = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: setsockopt reads one c_int that lives across the call, on a socket the caller owns.
    let rc = unsafe { libc::setsockopt(sock.as_fd().as_raw_fd(), level, name, (&raw const one).cast(), size) };
    if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// The kernel's `TCP_INFO` of a TCP socket: its round-trip estimate, retransmissions, MSS, path MTU.
pub fn tcp_info(sock: &impl AsFd) -> Option<libc::tcp_info> {
    let mut info = MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which is that large and zeroed, so
    // fields an older kernel leaves unwritten read as 0.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    // SAFETY: zeroed, then filled by the kernel: every bit pattern is a valid tcp_info.
    (rc == 0).then(|| unsafe { info.assume_init() })
}

/// The kernel's count of packets dropped on a socket (`SO_MEMINFO`'s `SK_MEMINFO_DROPS`): for a
/// datagram socket, those its full receive buffer had no room for. Live, unlike `SO_RXQ_OVFL`, which
/// a datagram only carries if it was queued after the drops.
pub fn socket_drops(sock: &impl AsFd) -> Option<u64> {
    const VARS: usize = libc::SK_MEMINFO_DROPS as usize + 1;
    let mut info = [0u32; 16];
    let mut len = size_of_val(&info) as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `info`, which is that large.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (rc == 0 && len as usize >= VARS * size_of::<u32>()).then(|| u64::from(info[VARS - 1]))
}

/// An ICMP error the kernel queued on a socket with `IP_RECVERR` (or `IPV6_RECVERR`) set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpError {
    /// An ICMPv6 error (else ICMP over IPv4).
    pub v6: bool,
    /// The ICMP type.
    pub kind: u8,
    /// The ICMP code.
    pub code: u8,
    /// The host that sent it (a router on the way, or the destination itself).
    pub from: Option<std::net::IpAddr>,
}

/// Takes the oldest error from a socket's error queue (`MSG_ERRQUEUE`), if it is an ICMP one.
pub fn take_icmp_error(sock: &impl AsFd) -> Option<IcmpError> {
    let mut data = [0u8; 64];
    let mut control = [0u64; 32];
    let mut iov = libc::iovec { iov_base: data.as_mut_ptr().cast(), iov_len: data.len() };
    // SAFETY: an all-zero msghdr is valid; its buffers are set below and outlive the call.
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.as_mut_ptr().cast();
    hdr.msg_controllen = size_of_val(&control);
    let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
    // SAFETY: recvmsg writes into the buffers the header points at, within their lengths.
    if unsafe { libc::recvmsg(sock.as_fd().as_raw_fd(), &mut hdr, flags) } < 0 {
        return None;
    }
    // SAFETY: the kernel wrote msg_controllen bytes of control messages; each is read as its level
    // and type say, the offender address right after the extended error (SO_EE_OFFENDER).
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&hdr);
        while !cmsg.is_null() {
            let level = (*cmsg).cmsg_level;
            let recverr = (level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_RECVERR)
                || (level == libc::IPPROTO_IPV6 && (*cmsg).cmsg_type == libc::IPV6_RECVERR);
            if recverr {
                let err = libc::CMSG_DATA(cmsg).cast::<libc::sock_extended_err>();
                let ee = err.read_unaligned();
                if ee.ee_origin != libc::SO_EE_ORIGIN_ICMP && ee.ee_origin != libc::SO_EE_ORIGIN_ICMP6 {
                    return None;
                }
                let offender = err.add(1).cast::<libc::sockaddr_storage>();
                let from = match i32::from((*offender).ss_family) {
                    libc::AF_INET => {
                        let sin = offender.cast::<libc::sockaddr_in>().read_unaligned();
                        Some(std::net::IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()))
                    }
                    libc::AF_INET6 => {
                        let sin6 = offender.cast::<libc::sockaddr_in6>().read_unaligned();
                        Some(std::net::IpAddr::from(sin6.sin6_addr.s6_addr))
                    }
                    _ => None,
                };
                let v6 = ee.ee_origin == libc::SO_EE_ORIGIN_ICMP6;
                return Some(IcmpError { v6, kind: ee.ee_type, code: ee.ee_code, from });
            }
            cmsg = libc::CMSG_NXTHDR(&hdr, cmsg);
        }
    }
    None
}

/// The CPU-time clock of a thread of this process that is still running (its handle is held).
pub fn thread_cpu_clock<T>(thread: &JoinHandle<T>) -> Option<libc::clockid_t> {
    use std::os::unix::thread::JoinHandleExt;
    let mut clock: libc::clockid_t = 0;
    // SAFETY: the thread is alive until joined (the caller holds its handle); the call only writes `clock`.
    let status = unsafe { libc::pthread_getcpuclockid(thread.as_pthread_t(), &mut clock) };
    (status == 0).then_some(clock)
}

/// A CPU-time clock's reading, from [`thread_cpu_clock`].
pub fn cpu_time(clock: libc::clockid_t) -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the struct we pass; a stale clock id is an error, not UB.
    let status = unsafe { libc::clock_gettime(clock, &mut ts) };
    (status == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// The calling thread's CPU time so far.
pub fn thread_cpu_time() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Raises the open-file limit so that `want` files can be open, as far as this process may: the soft
/// limit up to the hard one, and, when that is still short of `want`, the hard limit itself up to the
/// kernel's ceiling (`/proc/sys/fs/nr_open`), which only root may do. Returns the soft limit in force.
pub fn raise_open_file_limit(want: u64) -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let (Some(soft), hard) = (limit.current, limit.maximum) else {
        return u64::MAX;
    };
    let Some(hard) = hard else {
        // No hard limit: the soft one may go anywhere.
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(want.max(soft)), maximum: None });
        return getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    };
    if hard < want {
        let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(hard);
        let target = want.min(ceiling);
        // Without CAP_SYS_RESOURCE this fails with EPERM and changes nothing.
        if target > hard && setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: Some(target) }).is_ok()
        {
            return target;
        }
    }
    if soft < hard && setrlimit(Resource::Nofile, Rlimit { current: Some(hard), maximum: Some(hard) }).is_ok() {
        return hard;
    }
    soft
}
