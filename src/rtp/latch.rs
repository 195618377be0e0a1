//! Symmetric RTP latching for one stream.
//!
//! The SRC (usually an SBC) sends each recorded stream from an address we
//! only learn from the first packet. [`Latch`] remembers that source
//! (address and SSRC), follows a new SSRC — an SBC failover or a re-INVITE
//! that restarts the stream, from the same or another address — and tells
//! the caller so it can reset decoders. With `strict_source`, a packet from
//! another address is rejected while the latched source is still active
//! (sent within [`ACTIVE_WINDOW`]), so a stray or spoofed sender cannot
//! hijack a live stream; once the latched source has gone quiet the new one
//! is followed.

use crate::ids::Ssrc;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long after its last packet the latched source counts as active.
pub const ACTIVE_WINDOW: Duration = Duration::from_secs(2);

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchDecision {
    /// From the latched source (or the first packet, which latches; or the
    /// latched SSRC from a new address, which re-latches the address).
    Accept,
    /// A new SSRC was latched (from `from`); the packet is accepted.
    Switched {
        old: Ssrc,
        new: Ssrc,
        from: SocketAddr,
    },
    /// Strict mode: another address while the latched one is active.
    Reject,
}

/// Latching state of one stream.
#[derive(Debug, Clone)]
pub struct Latch {
    strict: bool,
    latched: Option<Latched>,
}

#[derive(Debug, Clone, Copy)]
struct Latched {
    addr: SocketAddr,
    ssrc: Ssrc,
    last: Instant,
}

impl Latch {
    pub fn new(strict_source: bool) -> Self {
        Self {
            strict: strict_source,
            latched: None,
        }
    }

    /// The latched source, if any packet has been accepted.
    pub fn source(&self) -> Option<(SocketAddr, Ssrc)> {
        self.latched.map(|l| (l.addr, l.ssrc))
    }

    /// Forget the latched source (e.g. the SRC renegotiated the stream).
    pub fn reset(&mut self) {
        self.latched = None;
    }

    /// Decide on a packet from `from` carrying `ssrc`, received at `now`.
    pub fn check(&mut self, now: Instant, from: SocketAddr, ssrc: Ssrc) -> LatchDecision {
        let Some(cur) = self.latched else {
            self.latched = Some(Latched {
                addr: from,
                ssrc,
                last: now,
            });
            return LatchDecision::Accept;
        };
        if from != cur.addr && self.strict {
            let idle = now.saturating_duration_since(cur.last);
            if idle < ACTIVE_WINDOW {
                return LatchDecision::Reject;
            }
        }
        self.latched = Some(Latched {
            addr: from,
            ssrc,
            last: if now > cur.last { now } else { cur.last },
        });
        if ssrc == cur.ssrc {
            LatchDecision::Accept
        } else {
            LatchDecision::Switched {
                old: cur.ssrc,
                new: ssrc,
                from,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }

    #[test]
    fn first_packet_latches_and_ssrc_change_is_followed() {
        let t = Instant::now();
        let mut l = Latch::new(false);
        assert_eq!(l.check(t, addr(4000), Ssrc(1)), LatchDecision::Accept);
        assert_eq!(l.check(t, addr(4000), Ssrc(1)), LatchDecision::Accept);
        assert_eq!(
            l.check(t, addr(4000), Ssrc(2)),
            LatchDecision::Switched {
                old: Ssrc(1),
                new: Ssrc(2),
                from: addr(4000)
            }
        );
        // failover to another SBC address, new SSRC
        assert_eq!(
            l.check(t, addr(5000), Ssrc(3)),
            LatchDecision::Switched {
                old: Ssrc(2),
                new: Ssrc(3),
                from: addr(5000)
            }
        );
        assert_eq!(l.source(), Some((addr(5000), Ssrc(3))));
        // non-strict: same SSRC from a new address re-latches the address
        assert_eq!(l.check(t, addr(6000), Ssrc(3)), LatchDecision::Accept);
        assert_eq!(l.source(), Some((addr(6000), Ssrc(3))));
    }

    #[test]
    fn strict_rejects_other_address_while_active() {
        let t = Instant::now();
        let mut l = Latch::new(true);
        assert_eq!(l.check(t, addr(4000), Ssrc(1)), LatchDecision::Accept);
        let t1 = t + Duration::from_millis(1000);
        assert_eq!(l.check(t1, addr(4000), Ssrc(1)), LatchDecision::Accept);
        assert_eq!(
            l.check(t1 + Duration::from_millis(1999), addr(9), Ssrc(7)),
            LatchDecision::Reject
        );
        // same address, new SSRC: still followed in strict mode
        assert_eq!(
            l.check(t1 + Duration::from_millis(20), addr(4000), Ssrc(2)),
            LatchDecision::Switched {
                old: Ssrc(1),
                new: Ssrc(2),
                from: addr(4000)
            }
        );
        // latched source idle for 2 s: the new one is followed
        let t2 = t1 + Duration::from_millis(20) + ACTIVE_WINDOW;
        assert_eq!(
            l.check(t2, addr(9), Ssrc(7)),
            LatchDecision::Switched {
                old: Ssrc(2),
                new: Ssrc(7),
                from: addr(9)
            }
        );
        // and now the old one is rejected
        assert_eq!(
            l.check(t2 + Duration::from_millis(20), addr(4000), Ssrc(2)),
            LatchDecision::Reject
        );
    }
}
