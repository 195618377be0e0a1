//! Batched, non-blocking UDP receive for the media plane.
//!
//! A media actor drains each of its RTP sockets once per tick with one
//! `recvmmsg(MSG_DONTWAIT)` call (up to [`BATCH`] datagrams, repeated while
//! batches come back full). Nothing ever waits on a socket, no task is woken
//! per packet and nothing is allocated per packet: datagrams land in one
//! buffer shared by every call on the media thread and are handed to the
//! caller as borrowed slices.
//!
//! The socket's kernel receive queue is the bounded queue between the
//! network and the call (its size is `SO_RCVBUF`). When the engine falls
//! behind and that queue overflows, the kernel drops the datagram and counts
//! it; `SO_RXQ_OVFL` makes it report the running count with every datagram
//! and [`Drained::dropped`] turns it into this drain's new drops, which the
//! media actor reports as `dropped_by_engine`. Arrival times come from the
//! kernel (`SO_TIMESTAMPNS`), so interarrival jitter is measured to the
//! microsecond even though the socket is read only every tick.
//!
//! Linux switches receive timestamping on lazily: the first socket asking
//! for it schedules the switch on a work queue, and datagrams that arrive
//! before it takes effect are stamped when they are read instead (the time
//! they would have had without kernel stamps). The process therefore keeps
//! one stamping socket open for its lifetime ([`Receiver::new`] opens it),
//! so the switch does not flip off and on again between calls.
//!
//! Linux only (`recvmmsg`, `SO_RXQ_OVFL`).

use std::cell::RefCell;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Datagrams per `recvmmsg` call.
pub const BATCH: usize = 16;
/// Largest datagram kept whole (RTP over UDP stays well below the MTU).
pub const MAX_DATAGRAM: usize = 2048;
/// Control buffer per datagram: room for a timespec and a u32 counter.
const CMSG_SPACE: usize = 64;

/// Receive state of one socket: the kernel's overflow counter as last seen.
#[derive(Debug)]
pub struct Receiver {
    sock: UdpSocket,
    ovfl: Option<u32>,
}

/// What one drain brought.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Datagrams handed to the callback.
    pub received: u64,
    /// Datagrams the kernel dropped since the previous drain because the
    /// socket's receive queue was full.
    pub dropped: u64,
}

impl Receiver {
    /// Prepare a bound socket: non-blocking, kernel arrival timestamps and
    /// overflow counting switched on.
    pub fn new(sock: UdpSocket) -> io::Result<Self> {
        keep_kernel_stamping_on();
        sock.set_nonblocking(true)?;
        let fd = sock.as_raw_fd();
        set_opt(fd, libc::SO_TIMESTAMPNS)?;
        set_opt(fd, libc::SO_RXQ_OVFL)?;
        Ok(Self { sock, ovfl: None })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Read every datagram queued on the socket without waiting, calling
    /// `f(arrival, source, bytes)` for each. `now` is the caller's current
    /// instant (arrival times are never later than it). Errors other than
    /// "nothing queued" end the drain and are returned after what was read.
    pub fn drain(
        &mut self,
        now: Instant,
        mut f: impl FnMut(Instant, SocketAddr, &[u8]),
    ) -> io::Result<Drained> {
        // The wall clock is read once per drain, and only if something came.
        let mut wall_now: Option<SystemTime> = None;
        let mut out = Drained::default();
        SCRATCH
            .with(|s| {
                let mut s = s.borrow_mut();
                loop {
                    let n = s.recv(self.sock.as_raw_fd())?;
                    for i in 0..n {
                        let (bytes, from, ts, ovfl) = s.datagram(i);
                        if let Some(c) = ovfl {
                            // The counter is cumulative per socket (wrapping).
                            let before = self.ovfl.unwrap_or(0);
                            out.dropped += u64::from(c.wrapping_sub(before));
                            self.ovfl = Some(c);
                        }
                        let at = ts.map_or(now, |t| {
                            arrival(now, *wall_now.get_or_insert_with(SystemTime::now), t)
                        });
                        out.received += 1;
                        if let Some(from) = from {
                            f(at, from, bytes);
                        }
                    }
                    if n < BATCH {
                        return Ok(out);
                    }
                }
            })
            .or_else(|e: io::Error| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    Ok(out)
                } else {
                    Err(e)
                }
            })
    }
}

/// Kernel wall-clock arrival → the monotonic clock: how long before `wall_now`
/// it arrived, subtracted from `now` (clamped to the last two seconds, so a
/// wall-clock step cannot throw times far off).
fn arrival(now: Instant, wall_now: SystemTime, ts: Duration) -> Instant {
    let wall = wall_now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let age = wall.saturating_sub(ts).min(Duration::from_secs(2));
    now.checked_sub(age).unwrap_or(now)
}

/// Open (once) a socket that asks for receive timestamps and is never
/// closed, so the kernel's global stamping switch stays on.
fn keep_kernel_stamping_on() {
    static SENTINEL: std::sync::OnceLock<Option<UdpSocket>> = std::sync::OnceLock::new();
    SENTINEL.get_or_init(|| {
        let s = UdpSocket::bind("127.0.0.1:0").ok()?;
        set_opt(s.as_raw_fd(), libc::SO_TIMESTAMPNS).ok()?;
        Some(s)
    });
}

fn set_opt(fd: libc::c_int, opt: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a pointer to a c_int of the stated size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            (&one as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

thread_local! {
    /// One batch buffer per media thread, shared by every call on it (a
    /// drain runs to completion before the next one starts).
    static SCRATCH: RefCell<Box<Scratch>> = RefCell::new(Scratch::new());
}

struct Scratch {
    data: [[u8; MAX_DATAGRAM]; BATCH],
    names: [libc::sockaddr_storage; BATCH],
    control: [[u8; CMSG_SPACE]; BATCH],
    iov: [libc::iovec; BATCH],
    msgs: [libc::mmsghdr; BATCH],
}

impl Scratch {
    fn new() -> Box<Self> {
        // SAFETY: all-zero is a valid value for these plain C structs and
        // byte arrays; the pointers are filled in before each use.
        Box::new(unsafe { zeroed() })
    }

    /// One `recvmmsg`; returns how many datagrams arrived.
    fn recv(&mut self, fd: libc::c_int) -> io::Result<usize> {
        for i in 0..BATCH {
            self.iov[i] = libc::iovec {
                iov_base: self.data[i].as_mut_ptr().cast(),
                iov_len: MAX_DATAGRAM,
            };
            // SAFETY: zeroed msghdr is valid; fields set below.
            let mut h: libc::msghdr = unsafe { zeroed() };
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iov[i];
            h.msg_iovlen = 1;
            h.msg_control = self.control[i].as_mut_ptr().cast();
            h.msg_controllen = CMSG_SPACE as _;
            self.msgs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
        // SAFETY: every msghdr points into `self`, which outlives the call;
        // lengths match the buffers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// Datagram `i` of the last batch: bytes, source, kernel timestamp
    /// (since the epoch) and the socket's overflow counter.
    fn datagram(&self, i: usize) -> (&[u8], Option<SocketAddr>, Option<Duration>, Option<u32>) {
        let m = &self.msgs[i];
        let len = (m.msg_len as usize).min(MAX_DATAGRAM);
        let from = sockaddr(&self.names[i], m.msg_hdr.msg_namelen);
        let (mut ts, mut ovfl) = (None, None);
        // SAFETY: the kernel filled msg_control/msg_controllen; the CMSG
        // macros walk it within those bounds.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&m.msg_hdr);
            while !c.is_null() {
                let h = &*c;
                if h.cmsg_level == libc::SOL_SOCKET {
                    let data = libc::CMSG_DATA(c);
                    if h.cmsg_type == libc::SCM_TIMESTAMPNS {
                        let t: libc::timespec = std::ptr::read_unaligned(data.cast());
                        if t.tv_sec >= 0 && (0..1_000_000_000).contains(&t.tv_nsec) {
                            ts = Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32));
                        }
                    } else if h.cmsg_type == libc::SO_RXQ_OVFL {
                        ovfl = Some(std::ptr::read_unaligned(data.cast::<u32>()));
                    }
                }
                c = libc::CMSG_NXTHDR(&m.msg_hdr, c);
            }
        }
        (&self.data[i][..len], from, ts, ovfl)
    }
}

fn sockaddr(s: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match s.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: family and length say this is a sockaddr_in.
            let a: &libc::sockaddr_in = unsafe { &*(s as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: family and length say this is a sockaddr_in6.
            let a: &libc::sockaddr_in6 = unsafe { &*(s as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (Receiver, UdpSocket) {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        (Receiver::new(rx).unwrap(), tx)
    }

    /// Wait until the kernel stamps datagrams on arrival (its switch is
    /// flipped by a work item after the first stamping socket appears).
    fn wait_for_kernel_stamps(rx: &mut Receiver, tx: &UdpSocket) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            tx.send(b"probe").unwrap();
            std::thread::sleep(Duration::from_millis(30));
            let now = Instant::now();
            let mut stamped = false;
            rx.drain(now, |at, _, _| {
                stamped |= at + Duration::from_millis(20) <= now
            })
            .unwrap();
            if stamped {
                return;
            }
            assert!(Instant::now() < deadline, "kernel never stamped a datagram");
        }
    }

    #[test]
    fn drains_everything_queued_with_sources_and_kernel_times() {
        let (mut rx, tx) = pair();
        wait_for_kernel_stamps(&mut rx, &tx);
        let before = Instant::now();
        // More than two batches, of different sizes.
        for i in 0..(2 * BATCH + 3) {
            tx.send(&vec![i as u8; 12 + i]).unwrap();
        }
        std::thread::sleep(Duration::from_millis(30));
        let now = Instant::now();
        let mut got = vec![];
        let d = rx
            .drain(now, |at, from, bytes| got.push((at, from, bytes.to_vec())))
            .unwrap();
        assert_eq!(d.received, (2 * BATCH + 3) as u64);
        assert_eq!(d.dropped, 0);
        assert_eq!(got.len(), 2 * BATCH + 3);
        for (i, (at, from, bytes)) in got.iter().enumerate() {
            assert_eq!(*from, tx.local_addr().unwrap());
            assert_eq!(bytes, &vec![i as u8; 12 + i]);
            // Kernel arrival: after we started sending, well before `now`
            // (we slept 30 ms after sending).
            assert!(*at <= now);
            assert!(
                *at + Duration::from_millis(20) <= now,
                "arrival not from the kernel"
            );
            assert!(*at + Duration::from_millis(50) >= before);
        }
        // Nothing more: an empty drain is not an error.
        assert_eq!(
            rx.drain(Instant::now(), |_, _, _| panic!()).unwrap(),
            Drained::default()
        );
    }

    #[test]
    fn kernel_queue_overflow_is_counted_as_dropped() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Smallest receive queue the kernel allows.
        let small: libc::c_int = 1;
        // SAFETY: valid fd, pointer to a c_int.
        unsafe {
            libc::setsockopt(
                rx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&small as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let mut rx = Receiver::new(rx).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let mut total = Drained::default();
        let sent = 3000u64;
        for round in 0..3 {
            for _ in 0..sent / 3 {
                tx.send(&[0x80u8; 172]).unwrap();
            }
            let d = rx.drain(Instant::now(), |_, _, _| {}).unwrap();
            total.received += d.received;
            total.dropped += d.dropped;
            assert!(d.received > 0, "round {round}");
        }
        assert!(total.dropped > 0, "{total:?}");
        // The last drops are reported with the next datagram that arrives.
        tx.send(&[0x80u8; 172]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let d = rx.drain(Instant::now(), |_, _, _| {}).unwrap();
        total.received += d.received;
        total.dropped += d.dropped;
        assert_eq!(total.received + total.dropped, sent + 1, "{total:?}");
    }

    #[test]
    fn ipv6_sources_are_decoded() {
        let Ok(rx) = UdpSocket::bind("[::1]:0") else {
            return; // no IPv6 loopback on this machine
        };
        let tx = UdpSocket::bind("[::1]:0").unwrap();
        let mut rx = Receiver::new(rx).unwrap();
        tx.send_to(b"hello", rx.local_addr().unwrap()).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let mut from = None;
        rx.drain(Instant::now(), |_, f, b| {
            assert_eq!(b, b"hello");
            from = Some(f);
        })
        .unwrap();
        assert_eq!(from, Some(tx.local_addr().unwrap()));
    }

    #[test]
    fn arrival_is_clamped() {
        let now = Instant::now();
        let wall = SystemTime::now();
        let w = wall.duration_since(UNIX_EPOCH).unwrap();
        // A timestamp from the future (clock stepped back) → now.
        assert_eq!(arrival(now, wall, w + Duration::from_secs(5)), now);
        // Far in the past (clock stepped forward) → at most 2 s back.
        let a = arrival(now, wall, w - Duration::from_secs(3600));
        assert_eq!(now - a, Duration::from_secs(2));
        let a = arrival(now, wall, w - Duration::from_millis(7));
        assert_eq!(now - a, Duration::from_millis(7));
    }
}
