//! A fixed-depth jitter buffer for one received RTP stream.
//!
//! The buffer turns packets as they arrive (reordered, duplicated, late,
//! lost) into an in-order playout of [`Playout::Packet`]s and
//! [`Playout::Lost`] stretches that the decoder conceals, and counts what it
//! saw in [`StreamStats`]. It is sans-IO: every call takes `now`, and
//! [`JitterBuffer::next_deadline`] tells the caller when to call
//! [`JitterBuffer::pop`] again.
//!
//! # Timing
//!
//! Each *run* (the stream from its first packet, after an SSRC change, after
//! a resume, or after a sequence resync) is anchored on its first packet:
//! `playout(p) = anchor_arrival + (ts(p) − anchor_ts) / clock_rate + depth`.
//! A packet is due at its playout instant; a sequence gap becomes
//! [`Playout::Lost`] when the packet after it is due.
//!
//! * A reordered packet (older than the newest received) whose playout
//!   instant has already passed when it arrives is dropped as **late**, as is
//!   any packet at or behind what was already played out.
//! * The *newest* packet re-anchors the run when it arrives after its own
//!   playout instant (the path got slower: a delay step, or the sender's
//!   clock runs slow) or more than [`DISCONTINUITY`] before it (a timestamp
//!   jump, or the sender's clock runs fast). Re-anchoring never drops audio;
//!   it only moves the playout of what follows, so a permanent delay step
//!   costs one re-anchor instead of every later packet.
//!
//! # Sequencing
//!
//! Sequence numbers are extended RFC 3550 A.1 style: relative to the highest
//! received, a step forward below [`MAX_DROPOUT`] is in order (with a gap), a
//! step back up to [`MAX_MISORDER`] is reordering, anything else is a jump
//! that is dropped unless the next packet continues it, which resyncs (a new
//! run, no loss counted). Timestamps are extended the same way (signed 32-bit
//! steps), so both wraps are transparent. Extended sequence numbers keep
//! growing across runs, which keeps the buffer ordered when an old run's
//! packets are still queued while a new one starts.
//!
//! # Cost
//!
//! Entries live in a `VecDeque` sorted by extended sequence number: in-order
//! arrival is a push to the back, reordering a short binary-search insert
//! near the back, playout a pop from the front. The deque keeps its capacity,
//! so steady state allocates nothing. Memory is bounded by `max_packets`.

use super::stats::{estimate_mos, StreamStats};
use super::RtpPacket;
use crate::ids::Ssrc;
use crate::sdp::Codec;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A forward sequence step at or beyond this is a jump (RFC 3550 A.1).
pub const MAX_DROPOUT: u16 = 3000;
/// A backward sequence step beyond this is a jump (RFC 3550 A.1).
pub const MAX_MISORDER: u16 = 100;
/// A deque with more capacity than this is shrunk once it has drained
/// below an eighth of it (packets; a few hundred milliseconds of 20 ms
/// packets).
const SHRINK_ABOVE: usize = 64;
/// A timing discontinuity that re-anchors playout.
pub const DISCONTINUITY: Duration = Duration::from_secs(1);
/// Packets of the previous SSRC arriving this soon after a switch are
/// stragglers (dropped as late) rather than a switch back.
pub const STRAGGLER_WINDOW: Duration = Duration::from_millis(500);

/// Gap left in extended sequence numbers between runs, wider than
/// [`MAX_MISORDER`] so a new run's reordered first packets stay after the
/// previous run.
const RUN_GAP: i64 = 256;
/// Bits of receive history (for duplicate detection behind the newest).
const HISTORY: i64 = 128;

/// Jitter buffer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream's codec (8000 for G.711/G.722, 48000 for
    /// Opus). 0 is treated as 8000.
    pub clock_rate: u32,
    /// How long a packet is held after its nominal arrival (default 60 ms).
    pub depth: Duration,
    /// Hard cap on buffered packets (default 500); more are `Overflow`.
    pub max_packets: usize,
}

impl Default for JitterConfig {
    fn default() -> Self {
        Self {
            clock_rate: 8000,
            depth: Duration::from_millis(60),
            max_packets: 500,
        }
    }
}

impl JitterConfig {
    /// Defaults for a codec's clock rate.
    pub fn for_codec(codec: Codec) -> Self {
        Self {
            clock_rate: codec.clock_rate(),
            ..Self::default()
        }
    }
}

/// One unit of playout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    Packet(RtpPacket),
    /// A lost stretch: conceal `samples` (RTP clock units) starting at
    /// `timestamp`. It ends exactly where the next packet starts; its size
    /// assumes the packets around the gap had equal duration.
    Lost {
        timestamp: u32,
        samples: u32,
    },
}

/// What [`JitterBuffer::push`] did with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Buffered for playout.
    Accepted,
    /// Already received; dropped.
    Duplicate,
    /// Its playout instant had passed, it is behind what was played, it is
    /// out of the sequence window, a straggler of the previous SSRC, or the
    /// buffer is paused; dropped.
    Late,
    /// The first packet of a new source (`old` is `None` for the very first
    /// packet); the packet is accepted and starts a new run.
    NewSsrc { old: Option<Ssrc>, new: Ssrc },
    /// The buffer holds `max_packets` already; dropped.
    Overflow,
}

#[derive(Debug)]
struct Entry {
    ext: i64,
    ts_ext: i64,
    run: u32,
    due: Instant,
    pkt: RtpPacket,
}

/// Sequencing and timing state of the current run.
#[derive(Debug, Clone, Copy)]
struct Run {
    id: u32,
    min_ext: i64,
    max_ext: i64,
    max_seq: u16,
    ts_ref: u32,
    ts_ref_ext: i64,
    anchor: Instant,
    anchor_ts: i64,
    /// Bit i set: extended sequence `max_ext - i` was received.
    history: u128,
    /// RFC 3550 A.1 `bad_seq`: the sequence that would confirm a jump.
    bad_seq: Option<u16>,
    last_transit: Option<f64>,
}

impl Run {
    fn seen(&self, ext: i64) -> bool {
        let behind = self.max_ext - ext;
        (0..HISTORY).contains(&behind) && self.history & (1u128 << behind) != 0
    }

    fn mark(&mut self, ext: i64) {
        if ext > self.max_ext {
            let shift = ext - self.max_ext;
            self.history = if shift >= HISTORY {
                0
            } else {
                self.history << shift
            };
            self.history |= 1;
        } else {
            let behind = self.max_ext - ext;
            if behind < HISTORY {
                self.history |= 1u128 << behind;
            }
        }
    }

    fn expected(&self) -> u64 {
        u64::try_from(self.max_ext - self.min_ext + 1).unwrap_or(0)
    }
}

#[derive(Debug, Clone, Copy)]
struct Played {
    run: u32,
    ext: i64,
    ts_ext: i64,
}

/// Jitter buffer of one stream. See the module docs.
#[derive(Debug)]
pub struct JitterBuffer {
    clock_rate: u32,
    depth: Duration,
    max_packets: usize,
    codec: Codec,
    buf: VecDeque<Entry>,
    ssrc: Option<Ssrc>,
    prev_ssrc: Option<(Ssrc, Instant)>,
    run: Option<Run>,
    next_run_id: u32,
    /// Highest extended sequence ever assigned.
    ceiling: i64,
    last_played: Option<Played>,
    paused: bool,
    epoch: Option<Instant>,
    /// RFC 3550 interarrival jitter, in timestamp units.
    jitter: f64,
    stats: StreamStats,
    expected_closed: u64,
    played: u64,
    overflows: u64,
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        let clock_rate = if cfg.clock_rate == 0 {
            8000
        } else {
            cfg.clock_rate
        };
        let codec = if clock_rate == 48000 {
            Codec::Opus
        } else {
            Codec::Pcmu
        };
        Self {
            clock_rate,
            depth: cfg.depth,
            max_packets: cfg.max_packets.max(1),
            codec,
            buf: VecDeque::with_capacity(8),
            ssrc: None,
            prev_ssrc: None,
            run: None,
            next_run_id: 0,
            ceiling: -RUN_GAP,
            last_played: None,
            paused: false,
            epoch: None,
            jitter: 0.0,
            stats: StreamStats::default(),
            expected_closed: 0,
            played: 0,
            overflows: 0,
        }
    }

    /// The codec used for the MOS estimate (default: Opus at 48 kHz, G.711
    /// otherwise).
    pub fn set_codec(&mut self, codec: Codec) {
        self.codec = codec;
    }

    /// The current source, once a packet has been accepted.
    pub fn ssrc(&self) -> Option<Ssrc> {
        self.ssrc
    }

    /// Packets buffered.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Packets handed out by `pop`/`flush`.
    pub fn played(&self) -> u64 {
        self.played
    }

    /// Packets dropped because the buffer was full.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// A packet arrived at `now`. See [`PushOutcome`] and the module docs.
    pub fn push(&mut self, now: Instant, pkt: RtpPacket) -> PushOutcome {
        if self.paused {
            return PushOutcome::Late;
        }
        self.stats.packets += 1;
        self.stats.bytes += pkt.payload.len() as u64;
        if self.epoch.is_none() {
            self.epoch = Some(now);
        }

        match self.ssrc {
            None => {
                self.ssrc = Some(pkt.ssrc);
                let new = pkt.ssrc;
                self.start_run(now, pkt);
                return PushOutcome::NewSsrc { old: None, new };
            }
            Some(cur) if cur != pkt.ssrc => {
                if let Some((prev, at)) = self.prev_ssrc {
                    if prev == pkt.ssrc && now.saturating_duration_since(at) < STRAGGLER_WINDOW {
                        self.stats.late += 1;
                        return PushOutcome::Late;
                    }
                }
                if self.buf.len() >= self.max_packets {
                    self.overflows += 1;
                    return PushOutcome::Overflow;
                }
                self.prev_ssrc = Some((cur, now));
                self.ssrc = Some(pkt.ssrc);
                self.stats.ssrc_changes = self.stats.ssrc_changes.saturating_add(1);
                let new = pkt.ssrc;
                self.start_run(now, pkt);
                return PushOutcome::NewSsrc {
                    old: Some(cur),
                    new,
                };
            }
            Some(_) => {}
        }

        let Some(mut run) = self.run else {
            // First packet after a resume: a fresh baseline.
            if self.buf.len() >= self.max_packets {
                self.overflows += 1;
                return PushOutcome::Overflow;
            }
            self.start_run(now, pkt);
            return PushOutcome::Accepted;
        };

        // Extend the sequence number (RFC 3550 A.1).
        let udelta = pkt.sequence.wrapping_sub(run.max_seq);
        let ext = if udelta < MAX_DROPOUT {
            run.max_ext + i64::from(udelta)
        } else if udelta > u16::MAX - MAX_MISORDER {
            run.max_ext - (65536 - i64::from(udelta))
        } else if run.bad_seq == Some(pkt.sequence) {
            // Two sequential packets after a jump: the sender restarted.
            if self.buf.len() >= self.max_packets {
                self.overflows += 1;
                return PushOutcome::Overflow;
            }
            self.start_run(now, pkt);
            return PushOutcome::Accepted;
        } else {
            run.bad_seq = Some(pkt.sequence.wrapping_add(1));
            self.run = Some(run);
            self.stats.late += 1;
            return PushOutcome::Late;
        };
        run.bad_seq = None;

        if run.seen(ext) {
            self.run = Some(run);
            self.stats.duplicates += 1;
            return PushOutcome::Duplicate;
        }
        let ts_ext = run.ts_ref_ext + i64::from(pkt.timestamp.wrapping_sub(run.ts_ref) as i32);
        let newest = ext > run.max_ext;
        if !newest {
            self.stats.reordered += 1;
        }
        let behind_played = self.last_played.is_some_and(|lp| ext <= lp.ext);

        let nominal = offset(run.anchor, ts_ext - run.anchor_ts, self.clock_rate);
        let mut due = nominal.and_then(|t| t.checked_add(self.depth));
        if newest {
            let late = due.is_none_or(|d| d < now);
            let early_jump = nominal.is_none_or(|t| {
                t.checked_duration_since(now)
                    .is_some_and(|d| d > DISCONTINUITY)
            });
            if late || early_jump {
                let far = nominal.is_none_or(|t| {
                    let off = t
                        .checked_duration_since(now)
                        .or_else(|| now.checked_duration_since(t));
                    off.is_none_or(|d| d > DISCONTINUITY)
                });
                if far {
                    run.last_transit = None;
                }
                run.anchor = now;
                run.anchor_ts = ts_ext;
                due = Some(now.checked_add(self.depth).unwrap_or(now));
            }
        }
        let due = match due {
            Some(d) if d >= now && !behind_played => d,
            _ => {
                run.mark(ext);
                self.update_jitter(&mut run, now, ts_ext);
                self.run = Some(run);
                self.stats.late += 1;
                return PushOutcome::Late;
            }
        };
        if self.buf.len() >= self.max_packets {
            self.run = Some(run);
            self.overflows += 1;
            return PushOutcome::Overflow;
        }

        run.mark(ext);
        if newest {
            run.max_ext = ext;
            run.max_seq = pkt.sequence;
            run.ts_ref = pkt.timestamp;
            run.ts_ref_ext = ts_ext;
        }
        run.min_ext = run.min_ext.min(ext);
        self.ceiling = self.ceiling.max(ext);
        self.update_jitter(&mut run, now, ts_ext);
        let entry = Entry {
            ext,
            ts_ext,
            run: run.id,
            due,
            pkt,
        };
        self.run = Some(run);
        self.insert(entry);
        PushOutcome::Accepted
    }

    /// Next unit due for playout at `now`; call repeatedly until `None`.
    pub fn pop(&mut self, now: Instant) -> Option<Playout> {
        let Some(head) = self.buf.front() else {
            self.shrink_after_burst();
            return None;
        };
        if head.due > now {
            self.shrink_after_burst();
            return None;
        }
        self.next_unit()
    }

    /// After a burst (a late read under overload, a flood) the deque would
    /// keep the burst's capacity for the rest of the call; once it has
    /// drained to a small fraction of that, give the memory back. Steady
    /// state (a few packets in a small deque) never reaches this.
    fn shrink_after_burst(&mut self) {
        let cap = self.buf.capacity();
        if cap > SHRINK_ABOVE && self.buf.len() * 8 < cap {
            self.buf.shrink_to((self.buf.len() * 2).max(8));
        }
    }

    /// Next unit regardless of its playout instant (end of call: drain what
    /// is buffered). Gaps still come out as `Lost`.
    pub fn flush(&mut self) -> Option<Playout> {
        self.next_unit()
    }

    /// When `pop` would next return something.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.buf.front().map(|e| e.due)
    }

    /// Pause (re-INVITE `inactive`): drop what is buffered without counting
    /// it as loss; packets pushed while paused are dropped (`Late`, not
    /// counted).
    pub fn pause(&mut self) {
        if self.paused {
            return;
        }
        self.close_run();
        self.buf.clear();
        self.paused = true;
    }

    /// Resume after [`pause`](Self::pause): the next packet starts a fresh
    /// sequence and timing baseline, and the gap is not loss. A no-op when
    /// not paused.
    pub fn resume(&mut self, now: Instant) {
        if !self.paused {
            return;
        }
        self.paused = false;
        self.run = None;
        if self.epoch.is_none() {
            self.epoch = Some(now);
        }
    }

    /// Counters so far, with jitter in ms and the MOS estimate.
    pub fn stats(&self) -> StreamStats {
        let mut s = self.stats;
        s.expected = self.expected_closed + self.run.map_or(0, |r| r.expected());
        s.jitter_ms = self.jitter * 1000.0 / f64::from(self.clock_rate);
        s.mos = if s.packets == 0 {
            0.0
        } else {
            estimate_mos(
                self.codec,
                s.loss_pct(self.played),
                s.jitter_ms,
                self.depth.as_secs_f64() * 1000.0,
            )
        };
        s
    }

    fn next_unit(&mut self) -> Option<Playout> {
        let head = self.buf.front()?;
        if let Some(lp) = self.last_played {
            if lp.run == head.run && head.ext > lp.ext + 1 {
                let n = head.ext - lp.ext;
                let span = head.ts_ext - lp.ts_ext;
                let step = if span > 0 { span / n } else { 0 };
                let samples = (span - step).clamp(0, i64::from(u32::MAX)) as u32;
                self.stats.lost += (n - 1) as u64;
                self.last_played = Some(Played {
                    run: head.run,
                    ext: head.ext - 1,
                    ts_ext: head.ts_ext,
                });
                return Some(Playout::Lost {
                    // Truncation is the RTP timestamp's wrap.
                    timestamp: (lp.ts_ext + step) as u32,
                    samples,
                });
            }
        }
        let e = self.buf.pop_front()?;
        self.last_played = Some(Played {
            run: e.run,
            ext: e.ext,
            ts_ext: e.ts_ext,
        });
        self.played += 1;
        Some(Playout::Packet(e.pkt))
    }

    fn insert(&mut self, entry: Entry) {
        match self.buf.back() {
            Some(last) if last.ext >= entry.ext => {
                let pos = self.buf.partition_point(|e| e.ext < entry.ext);
                self.buf.insert(pos, entry);
            }
            _ => self.buf.push_back(entry),
        }
    }

    fn close_run(&mut self) {
        if let Some(r) = self.run.take() {
            self.expected_closed += r.expected();
        }
    }

    /// Start a new run with `pkt` as its first packet and anchor; the caller
    /// has checked there is room.
    fn start_run(&mut self, now: Instant, pkt: RtpPacket) {
        self.close_run();
        let ext = self.ceiling + RUN_GAP;
        self.ceiling = ext;
        let id = self.next_run_id;
        self.next_run_id = self.next_run_id.wrapping_add(1);
        let ts_ext = i64::from(pkt.timestamp);
        let mut run = Run {
            id,
            min_ext: ext,
            max_ext: ext,
            max_seq: pkt.sequence,
            ts_ref: pkt.timestamp,
            ts_ref_ext: ts_ext,
            anchor: now,
            anchor_ts: ts_ext,
            history: 1,
            bad_seq: None,
            last_transit: None,
        };
        self.update_jitter(&mut run, now, ts_ext);
        self.run = Some(run);
        let due = now.checked_add(self.depth).unwrap_or(now);
        self.insert(Entry {
            ext,
            ts_ext,
            run: id,
            due,
            pkt,
        });
    }

    /// RFC 3550 A.8: `J += (|D| − J) / 16` over successive arrivals.
    fn update_jitter(&mut self, run: &mut Run, now: Instant, ts_ext: i64) {
        let Some(epoch) = self.epoch else { return };
        let arrival =
            now.saturating_duration_since(epoch).as_secs_f64() * f64::from(self.clock_rate);
        let transit = arrival - ts_ext as f64;
        if let Some(prev) = run.last_transit {
            let d = (transit - prev).abs();
            self.jitter += (d - self.jitter) / 16.0;
        }
        run.last_transit = Some(transit);
    }
}

/// `base` shifted by `units` of a `rate` Hz clock, if representable.
fn offset(base: Instant, units: i64, rate: u32) -> Option<Instant> {
    let rate = u64::from(rate.max(1));
    let abs = units.unsigned_abs();
    let nanos = (abs % rate) * 1_000_000_000 / rate;
    let d = Duration::new(abs / rate, u32::try_from(nanos).ok()?);
    if units >= 0 {
        base.checked_add(d)
    } else {
        base.checked_sub(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn pkt(seq: u16, ts: u32) -> RtpPacket {
        RtpPacket {
            payload_type: 0,
            marker: false,
            sequence: seq,
            timestamp: ts,
            ssrc: Ssrc(1),
            payload: Bytes::from_static(&[0; 160]),
        }
    }

    #[test]
    fn offset_is_exact_and_signed() {
        let t = Instant::now();
        assert_eq!(offset(t, 8000, 8000), t.checked_add(Duration::from_secs(1)));
        assert_eq!(
            offset(t, 160, 8000),
            t.checked_add(Duration::from_millis(20))
        );
        assert_eq!(
            offset(t, -960, 48000),
            t.checked_sub(Duration::from_millis(20))
        );
        assert_eq!(offset(t, 0, 0), Some(t));
    }

    #[test]
    fn history_bits() {
        let t = Instant::now();
        let mut run = Run {
            id: 0,
            min_ext: 10,
            max_ext: 10,
            max_seq: 10,
            ts_ref: 0,
            ts_ref_ext: 0,
            anchor: t,
            anchor_ts: 0,
            history: 1,
            bad_seq: None,
            last_transit: None,
        };
        run.mark(12);
        run.max_ext = 12;
        assert!(run.seen(12) && run.seen(10) && !run.seen(11));
        run.mark(11);
        assert!(run.seen(11));
        run.mark(500);
        run.max_ext = 500;
        assert!(run.seen(500) && !run.seen(12) && !run.seen(501));
    }

    #[test]
    fn no_allocation_growth_in_steady_state() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut cap = 0;
        for i in 0..10_000u32 {
            let now = t0 + Duration::from_millis(u64::from(i) * 20);
            jb.push(now, pkt(i as u16, i.wrapping_mul(160)));
            while jb.pop(now).is_some() {}
            if i == 100 {
                cap = jb.buf.capacity();
            }
        }
        assert_eq!(jb.buf.capacity(), cap);
        assert!(jb.len() <= 4);
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn a_burst_does_not_pin_its_memory() {
        let t0 = Instant::now();
        let mut jb = JitterBuffer::new(JitterConfig::default());
        // 400 packets arrive at once (read late), then play out over time.
        for i in 0..400u32 {
            jb.push(t0, pkt(i as u16, i.wrapping_mul(160)));
        }
        assert!(jb.buf.capacity() >= 400);
        let mut played = 0;
        for k in 0..1_000u64 {
            while jb.pop(t0 + Duration::from_millis(k * 20)).is_some() {
                played += 1;
            }
        }
        assert_eq!(played, 400);
        assert!(jb.buf.capacity() <= SHRINK_ABOVE, "{}", jb.buf.capacity());
        // And it still works after shrinking.
        let t1 = t0 + Duration::from_secs(30);
        for i in 400..420u32 {
            jb.push(t1, pkt(i as u16, i.wrapping_mul(160)));
        }
        let mut more = 0;
        while jb.pop(t1 + Duration::from_secs(5)).is_some() {
            more += 1;
        }
        assert_eq!(more, 20);
    }
}
