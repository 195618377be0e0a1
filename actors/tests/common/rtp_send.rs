//! An RTP sender for end-to-end tests: plays an 8 kHz WAV as PCMU (20 ms
//! packets, real pace) to one engine port, with RFC 4733 telephone-events
//! for DTMF and a deterministic network [`Impairment`] (loss, duplicates,
//! jitter, reordering).
//!
//! * SSRC, first sequence number and first timestamp come from the seeded
//!   RNG (so two senders need two seeds); the first audio packet carries the
//!   marker bit.
//! * A DTMF key press replaces the audio packets of its span: one
//!   telephone-event packet (PT 101) per 20 ms slot, all with the event's
//!   start timestamp and a growing duration, the first with the marker bit,
//!   then the end packet (E bit, final duration) sent three times. The
//!   sequence numbers stay contiguous, so nothing is "lost" there.
//! * The impairment works on the packet list before anything is sent: each
//!   packet is dropped with `p = loss`, delayed by a uniform `0..jitter_ms`
//!   (which reorders neighbours naturally), swapped with its successor with
//!   `p = reorder`, and (when not dropped) sent a second time with
//!   `p = duplicate`. Everything is decided by a `StdRng` seeded with `seed`.
//! * Chaos levels on top (`scripts/chaos-call`), decided by a second RNG
//!   (seeded from `seed` too) so that the draws above stay the same:
//!   bursty loss ([`GilbertElliott`], a two-state Markov chain per packet),
//!   an SSRC change mid-call (new SSRC, sequence and timestamp base, as an
//!   SBC failover does), a stall (nothing sent for a while, then the rest
//!   of the audio; sequence numbers contiguous, timestamps advanced by the
//!   stall as a sender's sampling clock would), and a sender that never
//!   sends anything.
//!
//! [`RtpSender::start`] runs the schedule in its own thread, starting at a
//! given [`Instant`] so that several senders can begin together;
//! [`RtpSender::finish`] joins it and returns a [`SendReport`].
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Samples per 20 ms packet at 8 kHz.
pub const SAMPLES_PER_PACKET: usize = 160;
/// Packet interval.
pub const PTIME_MS: u64 = 20;
/// PCMU.
pub const PT_PCMU: u8 = 0;
/// telephone-event/8000, as offered by `tests/sipp/media_call.xml`.
pub const PT_EVENT: u8 = 101;

/// What the network does to the packets (all probabilities in `0..=1`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Impairment {
    pub loss: f64,
    pub reorder: f64,
    pub duplicate: f64,
    pub jitter_ms: u64,
    pub seed: u64,
    /// Bursty loss (on top of `loss`).
    pub burst: Option<GilbertElliott>,
    /// From this point of the audio on (ms, rounded down to the packet
    /// grid), another SSRC with a new random sequence and timestamp base.
    pub ssrc_change_at_ms: Option<u64>,
    /// `(at_ms, for_ms)`: at this point of the audio the sender stops for
    /// `for_ms`, then goes on with the rest of it (the audio arrives late;
    /// nothing is lost).
    pub stall: Option<(u64, u64)>,
    /// Sends nothing at all (RTP never arrives).
    pub silent: bool,
}

/// Gilbert-Elliott bursty loss: a Good and a Bad state, a transition
/// drawn before each packet, then a loss drawn with the state's rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GilbertElliott {
    /// Per packet, Good -> Bad.
    pub p_good_bad: f64,
    /// Per packet, Bad -> Good (mean stay in Bad: `1 / p_bad_good` packets).
    pub p_bad_good: f64,
    pub loss_good: f64,
    pub loss_bad: f64,
}

impl GilbertElliott {
    /// Long-run share of time in the Bad state.
    pub fn bad_share(&self) -> f64 {
        self.p_good_bad / (self.p_good_bad + self.p_bad_good)
    }

    /// Long-run loss rate.
    pub fn mean_loss(&self) -> f64 {
        let b = self.bad_share();
        (1.0 - b) * self.loss_good + b * self.loss_bad
    }

    /// Mean stay in the Bad state, packets.
    pub fn mean_bad_run(&self) -> f64 {
        1.0 / self.p_bad_good
    }
}

impl Impairment {
    /// A clean network; `seed` still chooses SSRC, sequence and timestamp.
    pub fn clean(seed: u64) -> Impairment {
        Impairment {
            seed,
            ..Impairment::default()
        }
    }
}

/// One key press, sent as RFC 4733 telephone-events.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dtmf {
    /// `0-9`, `*`, `#`, `A-D`.
    pub digit: char,
    /// Start, in ms from the first sample of the audio (rounded down to the
    /// 20 ms packet grid).
    pub at_ms: u64,
    /// Key-press length in ms (rounded up to whole packets, at least 3).
    pub duration_ms: u64,
}

/// What a sender did.
#[derive(Clone, Debug, Default)]
pub struct SendReport {
    /// Distinct RTP packets made (audio + telephone-event).
    pub packets: u64,
    pub audio_packets: u64,
    pub event_packets: u64,
    /// Datagrams that left the socket (duplicates included).
    pub sent: u64,
    /// Packets never sent (loss).
    pub dropped: u64,
    /// Lost packets whose sequence number lies between the first and the
    /// last packet sent: the ones a receiver can notice as lost.
    pub dropped_inside: u64,
    /// Packets sent twice.
    pub duplicated: u64,
    /// Explicit swaps with the next packet.
    pub swapped: u64,
    /// Packets sent before one with a lower sequence number (after jitter and
    /// swaps), as a receiver would count reordering.
    pub out_of_order: u64,
    /// `send_to` failures.
    pub send_errors: u64,
    pub ssrc: u32,
    pub first_seq: u16,
    pub first_ts: u32,
    /// Wall-clock time of the audio's first sample (slot 0's nominal send time).
    pub started_at: Option<SystemTime>,
    /// How late the last datagram left compared with its schedule.
    pub max_lateness: Duration,
    /// Of `dropped`, packets the bursty loss took.
    pub burst_dropped: u64,
    /// The SSRC after the change (`ssrc_change_at_ms`).
    pub new_ssrc: Option<u32>,
    /// Packets held back by the stall (sent late, not lost).
    pub stalled: u64,
}

/// A sender thread.
pub struct RtpSender {
    handle: Option<JoinHandle<SendReport>>,
    pub dest: SocketAddr,
}

/// Reads a mono 16-bit 8 kHz WAV.
pub fn read_wav_8k(path: &Path) -> Vec<i16> {
    let r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("open {}: {e} (run scripts/make-call)", path.display()));
    let spec = r.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (1, 8000, 16),
        "{} must be 8 kHz mono 16-bit",
        path.display()
    );
    r.into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// G.711 μ-law encoding of one linear sample (the classic biased-segment
/// encoder; 0 encodes as 0xFF).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut x = i32::from(sample);
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    let x = x.min(CLIP) + BIAS;
    // Highest set bit is 7..=14: the segment is its distance from 7.
    let exponent = (31 - x.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (x >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

fn event_code(digit: char) -> u8 {
    match digit {
        '0'..='9' => digit as u8 - b'0',
        '*' => 10,
        '#' => 11,
        'A'..='D' => digit as u8 - b'A' + 12,
        'a'..='d' => digit as u8 - b'a' + 12,
        _ => panic!("not a DTMF digit: {digit:?}"),
    }
}

fn rtp_packet(marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push(if marker { 0x80 } else { 0 } | (pt & 0x7F));
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn set_seq(p: &mut [u8], seq: u16) {
    p[2..4].copy_from_slice(&seq.to_be_bytes());
}

fn ts_of(p: &[u8]) -> u32 {
    u32::from_be_bytes([p[4], p[5], p[6], p[7]])
}

fn set_ts(p: &mut [u8], ts: u32) {
    p[4..8].copy_from_slice(&ts.to_be_bytes());
}

fn set_ssrc(p: &mut [u8], ssrc: u32) {
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// One packet of the nominal stream: slot (20 ms index) and bytes.
struct Packet {
    slot: u64,
    seq: u16,
    bytes: Vec<u8>,
}

/// The stream as a clean sender would send it, slot by slot.
fn build_stream(
    samples: &[i16],
    dtmf: &[Dtmf],
    ssrc: u32,
    seq0: u16,
    ts0: u32,
) -> (Vec<Packet>, u64, u64) {
    let slots = samples.len().div_ceil(SAMPLES_PER_PACKET) as u64;
    // slot -> (event code, event start slot, packets of the event incl. 3 ends, index)
    let mut event_at: Vec<Option<(u8, u64, u64, u64)>> = vec![None; slots as usize];
    for d in dtmf {
        let start = d.at_ms / PTIME_MS;
        let n = d.duration_ms.div_ceil(PTIME_MS).max(3);
        // n update packets (the last one is the first end packet) + 2 more ends.
        for i in 0..n + 2 {
            let s = start + i;
            assert!(
                s < slots,
                "DTMF {d:?} runs past the end of the audio ({slots} packets)"
            );
            assert!(
                event_at[s as usize].is_none(),
                "DTMF {d:?} overlaps another key press"
            );
            event_at[s as usize] = Some((event_code(d.digit), start, n, i));
        }
    }
    let mut out = Vec::with_capacity(slots as usize);
    let (mut audio, mut events) = (0u64, 0u64);
    let mut seq = seq0;
    let mut first_audio = true;
    for slot in 0..slots {
        let bytes = match event_at[slot as usize] {
            Some((code, start, n, i)) => {
                let ts = ts0.wrapping_add((start * SAMPLES_PER_PACKET as u64) as u32);
                let end = i + 1 >= n;
                let dur = ((i.min(n - 1) + 1) * SAMPLES_PER_PACKET as u64).min(0xFFFF) as u16;
                let mut payload = [0u8; 4];
                payload[0] = code;
                payload[1] = if end { 0x80 } else { 0 } | 10; // E bit, volume -10 dBm0
                payload[2..4].copy_from_slice(&dur.to_be_bytes());
                events += 1;
                rtp_packet(i == 0, PT_EVENT, seq, ts, ssrc, &payload)
            }
            None => {
                let from = slot as usize * SAMPLES_PER_PACKET;
                let mut payload = [0xFFu8; SAMPLES_PER_PACKET];
                for (k, s) in samples[from..(from + SAMPLES_PER_PACKET).min(samples.len())]
                    .iter()
                    .enumerate()
                {
                    payload[k] = linear_to_ulaw(*s);
                }
                let ts = ts0.wrapping_add((slot * SAMPLES_PER_PACKET as u64) as u32);
                audio += 1;
                let m = std::mem::replace(&mut first_audio, false);
                rtp_packet(m, PT_PCMU, seq, ts, ssrc, &payload)
            }
        };
        out.push(Packet { slot, seq, bytes });
        seq = seq.wrapping_add(1);
    }
    (out, audio, events)
}

impl RtpSender {
    /// Starts a thread that sends `samples` (8 kHz) to `dest`, slot 0 at
    /// `start_at` (or right away if that has passed).
    pub fn start(
        samples: Vec<i16>,
        dest: SocketAddr,
        dtmf: Vec<Dtmf>,
        imp: Impairment,
        start_at: Instant,
    ) -> RtpSender {
        let handle = std::thread::Builder::new()
            .name(format!("rtp-send-{dest}"))
            .spawn(move || run(&samples, dest, &dtmf, imp, start_at))
            .expect("spawn the RTP sender thread");
        RtpSender {
            handle: Some(handle),
            dest,
        }
    }

    /// Waits for the sender to finish.
    pub fn finish(mut self) -> SendReport {
        self.handle
            .take()
            .expect("finished twice")
            .join()
            .expect("the RTP sender thread panicked")
    }
}

impl Drop for RtpSender {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run(
    samples: &[i16],
    dest: SocketAddr,
    dtmf: &[Dtmf],
    imp: Impairment,
    start_at: Instant,
) -> SendReport {
    let mut rng = StdRng::seed_from_u64(imp.seed);
    let ssrc: u32 = rng.gen();
    let seq0: u16 = rng.gen();
    let ts0: u32 = rng.gen();
    let (mut packets, audio, events) = build_stream(samples, dtmf, ssrc, seq0, ts0);
    let mut rep = SendReport {
        packets: packets.len() as u64,
        audio_packets: audio,
        event_packets: events,
        ssrc,
        first_seq: seq0,
        first_ts: ts0,
        ..SendReport::default()
    };
    // The chaos levels draw from their own RNG: the draws of `rng` stay
    // what they were without them.
    let mut chaos = StdRng::seed_from_u64(imp.seed ^ 0x9E37_79B9_7F4A_7C15);
    if let Some(at_ms) = imp.ssrc_change_at_ms {
        let from = (at_ms / PTIME_MS) as usize;
        let (ssrc2, seq2, ts2): (u32, u16, u32) = (chaos.gen(), chaos.gen(), chaos.gen());
        let ssrc2 = if ssrc2 == ssrc { ssrc2 ^ 1 } else { ssrc2 };
        if let Some(base) = packets.get(from).map(|p| ts_of(&p.bytes)) {
            for (k, p) in packets[from..].iter_mut().enumerate() {
                let seq = seq2.wrapping_add(k as u16);
                let ts = ts2.wrapping_add(ts_of(&p.bytes).wrapping_sub(base));
                p.seq = seq;
                set_seq(&mut p.bytes, seq);
                set_ts(&mut p.bytes, ts);
                set_ssrc(&mut p.bytes, ssrc2);
                if k == 0 {
                    p.bytes[1] |= 0x80; // marker: a new talkspurt
                }
            }
            rep.new_ssrc = Some(ssrc2);
        }
    }
    // Stall: packets from `at` on leave `for` later, their timestamps
    // moved on by as much.
    let (stall_slot, stall_us) = match imp.stall {
        Some((at_ms, for_ms)) => (at_ms / PTIME_MS, for_ms * 1000),
        None => (u64::MAX, 0),
    };
    if imp.stall.is_some() {
        let units = (stall_us / 1000 * SAMPLES_PER_PACKET as u64 / PTIME_MS) as u32;
        for p in packets.iter_mut().filter(|p| p.slot >= stall_slot) {
            let ts = ts_of(&p.bytes).wrapping_add(units);
            set_ts(&mut p.bytes, ts);
            rep.stalled += 1;
        }
    }
    let mut bad = false;

    // Schedule: (send offset in µs, packet index), after loss/jitter/dups.
    let mut sched: Vec<(u64, usize)> = Vec::with_capacity(packets.len() + 16);
    let mut kept: Vec<bool> = vec![false; packets.len()];
    for (i, p) in packets.iter().enumerate() {
        let nominal = p.slot * PTIME_MS * 1000 + if p.slot >= stall_slot { stall_us } else { 0 };
        let jitter = if imp.jitter_ms > 0 {
            rng.gen_range(0..imp.jitter_ms * 1000)
        } else {
            0
        };
        let lost = imp.loss > 0.0 && rng.gen_bool(imp.loss.min(1.0));
        let dup = imp.duplicate > 0.0 && rng.gen_bool(imp.duplicate.min(1.0));
        let burst_lost = match imp.burst {
            Some(ge) => {
                let flip = if bad { ge.p_bad_good } else { ge.p_good_bad };
                if chaos.gen_bool(flip.clamp(0.0, 1.0)) {
                    bad = !bad;
                }
                let rate = if bad { ge.loss_bad } else { ge.loss_good };
                chaos.gen_bool(rate.clamp(0.0, 1.0))
            }
            None => false,
        };
        if lost || burst_lost || imp.silent {
            rep.dropped += 1;
            if burst_lost && !lost {
                rep.burst_dropped += 1;
            }
            continue;
        }
        kept[i] = true;
        sched.push((nominal + jitter, i));
        if dup {
            rep.duplicated += 1;
            // The copy trails the original by up to a packet interval.
            let extra = rng.gen_range(0..PTIME_MS * 1000);
            sched.push((nominal + jitter + extra, i));
        }
    }
    sched.sort_by_key(|&(t, i)| (t, i));
    // Explicit swaps with the next datagram (times are swapped, so the
    // pacing stays the same).
    if imp.reorder > 0.0 {
        let mut k = 0;
        while k + 1 < sched.len() {
            if rng.gen_bool(imp.reorder.min(1.0)) && sched[k].1 != sched[k + 1].1 {
                let (a, b) = (sched[k].1, sched[k + 1].1);
                sched[k].1 = b;
                sched[k + 1].1 = a;
                rep.swapped += 1;
                k += 2;
            } else {
                k += 1;
            }
        }
    }
    if let (Some(first), Some(last)) = (kept.iter().position(|&k| k), kept.iter().rposition(|&k| k))
    {
        rep.dropped_inside = kept[first..=last].iter().filter(|&&k| !k).count() as u64;
    }
    let mut highest: Option<usize> = None;
    for &(_, i) in &sched {
        match highest {
            Some(h) if i < h => rep.out_of_order += 1,
            Some(h) if i == h => {}
            _ => highest = Some(i),
        }
    }

    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind the RTP sender socket");
    let now = Instant::now();
    let (t0, wall0) = if start_at > now {
        (start_at, SystemTime::now() + (start_at - now))
    } else {
        (now, SystemTime::now())
    };
    rep.started_at = Some(wall0);
    for &(at_us, i) in &sched {
        let due = t0 + Duration::from_micros(at_us);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else {
            rep.max_lateness = rep.max_lateness.max(now - due);
        }
        match sock.send_to(&packets[i].bytes, dest) {
            Ok(_) => rep.sent += 1,
            Err(_) => rep.send_errors += 1,
        }
    }
    rep
}
