//! RTP receive path: jitter buffer table tests and properties, RFC 3550
//! jitter, MOS, and robustness of the RTP/RTCP parsers. Time is passed in.

use bytes::Bytes;
use earshot::ids::Ssrc;
use earshot::rtp::{
    estimate_mos, is_rtcp, parse_rtcp, parse_rtp, JitterBuffer, JitterConfig, Playout, PushOutcome,
    RtpPacket,
};
use earshot::sdp::Codec;
use proptest::prelude::*;
use std::time::{Duration, Instant};

const DEPTH: Duration = Duration::from_millis(60);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn pkt(ssrc: u32, seq: u16, ts: u32) -> RtpPacket {
    RtpPacket {
        payload_type: 0,
        marker: false,
        sequence: seq,
        timestamp: ts,
        ssrc: Ssrc(ssrc),
        payload: Bytes::from_static(&[0xff; 160]),
    }
}

fn jb(clock_rate: u32) -> JitterBuffer {
    JitterBuffer::new(JitterConfig {
        clock_rate,
        depth: DEPTH,
        max_packets: 500,
    })
}

fn drain(jb: &mut JitterBuffer, now: Instant, out: &mut Vec<Playout>) {
    while let Some(p) = jb.pop(now) {
        out.push(p);
    }
}

/// Sequence numbers of played packets and (timestamp, samples) of losses,
/// in playout order, as compact strings: "P5" / "L800+320".
fn summary(out: &[Playout]) -> Vec<String> {
    out.iter()
        .map(|p| match p {
            Playout::Packet(p) => format!("P{}", p.sequence),
            Playout::Lost { timestamp, samples } => format!("L{timestamp}+{samples}"),
        })
        .collect()
}

/// Drive a buffer with `(arrival_ms, seq, ts)` arrivals (any order), popping
/// before each arrival and at the end. Returns outcomes and playout.
fn run(
    jb: &mut JitterBuffer,
    t0: Instant,
    arrivals: &[(u64, u16, u32)],
) -> (Vec<PushOutcome>, Vec<Playout>) {
    let mut outcomes = Vec::new();
    let mut out = Vec::new();
    for &(at, seq, ts) in arrivals {
        let now = t0 + ms(at);
        drain(jb, now, &mut out);
        outcomes.push(jb.push(now, pkt(1, seq, ts)));
    }
    let end = arrivals.iter().map(|a| a.0).max().unwrap_or(0) + 10_000;
    drain(jb, t0 + ms(end), &mut out);
    (outcomes, out)
}

#[test]
fn in_order() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    let arrivals: Vec<_> = (0..20u16)
        .map(|i| (u64::from(i) * 20, 100 + i, u32::from(i) * 160))
        .collect();
    // Nothing is due before the depth has passed.
    assert_eq!(
        b.push(t0, pkt(1, 100, 0)),
        PushOutcome::NewSsrc {
            old: None,
            new: Ssrc(1)
        }
    );
    assert_eq!(b.pop(t0 + ms(59)), None);
    assert_eq!(b.next_deadline(), Some(t0 + DEPTH));
    let mut b = jb(8000);
    let (outcomes, out) = run(&mut b, t0, &arrivals);
    assert_eq!(
        outcomes[0],
        PushOutcome::NewSsrc {
            old: None,
            new: Ssrc(1)
        }
    );
    assert!(outcomes[1..].iter().all(|o| *o == PushOutcome::Accepted));
    let want: Vec<String> = (100..120).map(|s| format!("P{s}")).collect();
    assert_eq!(summary(&out), want);
    let s = b.stats();
    assert_eq!(
        (s.packets, s.bytes, s.expected, s.lost, s.late),
        (20, 3200, 20, 0, 0)
    );
    assert_eq!(s.jitter_ms, 0.0);
    assert!((4.3..=4.5).contains(&s.mos), "{}", s.mos);
}

#[test]
fn each_packet_is_due_depth_after_its_nominal_arrival() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    b.push(t0, pkt(1, 1, 0));
    // arrives 15 ms early relative to the anchor's clock: still due at 80 ms
    b.push(t0 + ms(5), pkt(1, 2, 160));
    assert!(matches!(b.pop(t0 + ms(60)), Some(Playout::Packet(p)) if p.sequence == 1));
    assert_eq!(b.pop(t0 + ms(79)), None);
    assert_eq!(b.next_deadline(), Some(t0 + ms(80)));
    assert!(matches!(b.pop(t0 + ms(80)), Some(Playout::Packet(p)) if p.sequence == 2));
    assert_eq!(b.next_deadline(), None);
}

#[test]
fn reorder_within_depth_is_absorbed() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    // seq 3 arrives 35 ms late, after 4 and 5; seq 7 before 6.
    let arrivals = [
        (0, 1, 0),
        (20, 2, 160),
        (60, 4, 480),
        (75, 3, 320),
        (80, 5, 640),
        (119, 7, 960),
        (121, 6, 800),
        (140, 8, 1120),
    ];
    let (outcomes, out) = run(&mut b, t0, &arrivals);
    assert!(
        outcomes[1..].iter().all(|o| *o == PushOutcome::Accepted),
        "{outcomes:?}"
    );
    assert_eq!(
        summary(&out),
        ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8"]
    );
    let s = b.stats();
    assert_eq!((s.lost, s.late, s.reordered, s.expected), (0, 0, 2, 8));
}

#[test]
fn reorder_beyond_depth_is_late_and_concealed() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    // seq 3 (due at 100 ms) arrives at 130 ms.
    let arrivals = [
        (0, 1, 0),
        (20, 2, 160),
        (60, 4, 480),
        (80, 5, 640),
        (130, 3, 320),
        (100, 6, 800),
    ];
    let mut arrivals = arrivals.to_vec();
    arrivals.sort_by_key(|a| a.0);
    let (outcomes, out) = run(&mut b, t0, &arrivals);
    assert_eq!(outcomes[5], PushOutcome::Late);
    assert_eq!(summary(&out), ["P1", "P2", "L320+160", "P4", "P5", "P6"]);
    let s = b.stats();
    assert_eq!((s.lost, s.late, s.reordered, s.packets), (1, 1, 1, 6));
}

#[test]
fn packet_behind_playout_is_late_even_if_its_time_has_not_come() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    b.push(t0, pkt(1, 10, 1600));
    assert!(b.pop(t0 + DEPTH).is_some());
    // seq 9 would be due at 40 ms under the anchor — it is behind what
    // played anyway.
    assert_eq!(b.push(t0 + ms(61), pkt(1, 9, 1440)), PushOutcome::Late);
    assert_eq!(b.stats().late, 1);
}

#[test]
fn duplicates_are_dropped_and_counted() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    assert!(matches!(
        b.push(t0, pkt(1, 1, 0)),
        PushOutcome::NewSsrc { .. }
    ));
    assert_eq!(b.push(t0 + ms(1), pkt(1, 1, 0)), PushOutcome::Duplicate);
    assert_eq!(b.push(t0 + ms(20), pkt(1, 2, 160)), PushOutcome::Accepted);
    let mut out = Vec::new();
    drain(&mut b, t0 + ms(100), &mut out);
    assert_eq!(summary(&out), ["P1", "P2"]);
    // again after playout
    assert_eq!(b.push(t0 + ms(101), pkt(1, 1, 0)), PushOutcome::Duplicate);
    assert_eq!(b.push(t0 + ms(102), pkt(1, 2, 160)), PushOutcome::Duplicate);
    let s = b.stats();
    assert_eq!(
        (s.duplicates, s.packets, s.expected, s.lost, s.late),
        (3, 5, 2, 0, 0)
    );
}

#[test]
fn loss_becomes_lost_with_samples_from_timestamps() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    let arrivals: Vec<_> = (0..10u16)
        .filter(|i| ![4, 5, 8].contains(i))
        .map(|i| (u64::from(i) * 20, i, 1000 + u32::from(i) * 160))
        .collect();
    let (_, out) = run(&mut b, t0, &arrivals);
    assert_eq!(
        summary(&out),
        [
            "P0",
            "P1",
            "P2",
            "P3",
            "L1640+320",
            "P6",
            "P7",
            "L2280+160",
            "P9"
        ]
    );
    let s = b.stats();
    assert_eq!((s.lost, s.expected, s.packets), (3, 10, 7));
    assert!(s.mos < estimate_mos(Codec::Pcmu, 0.0, 0.0, 60.0));
}

#[test]
fn lost_is_reported_only_when_the_next_packet_is_due() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    b.push(t0, pkt(1, 1, 0));
    b.push(t0 + ms(40), pkt(1, 3, 320));
    assert!(matches!(b.pop(t0 + ms(60)), Some(Playout::Packet(_))));
    assert_eq!(b.pop(t0 + ms(99)), None);
    assert_eq!(
        b.pop(t0 + ms(100)),
        Some(Playout::Lost {
            timestamp: 160,
            samples: 160
        })
    );
    assert!(matches!(b.pop(t0 + ms(100)), Some(Playout::Packet(p)) if p.sequence == 3));
}

#[test]
fn sequence_wrap() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    // 65530..=65535, 0..5, with 65535 and 0 lost
    let arrivals: Vec<_> = (0..12u16)
        .filter(|i| ![5, 6].contains(i))
        .map(|i| {
            (
                u64::from(i) * 20,
                65530u16.wrapping_add(i),
                u32::from(i) * 160,
            )
        })
        .collect();
    let (outcomes, out) = run(&mut b, t0, &arrivals);
    assert!(outcomes[1..].iter().all(|o| *o == PushOutcome::Accepted));
    assert_eq!(
        summary(&out),
        [
            "P65530", "P65531", "P65532", "P65533", "P65534", "L800+320", "P1", "P2", "P3", "P4",
            "P5"
        ]
    );
    assert_eq!(b.stats().lost, 2);
    assert_eq!(b.stats().expected, 12);
}

#[test]
fn timestamp_wrap() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    let base = u32::MAX - 479; // wraps between the 3rd and 4th packet
    let arrivals: Vec<_> = (0..8u16)
        .filter(|i| *i != 3)
        .map(|i| {
            (
                u64::from(i) * 20,
                7 + i,
                base.wrapping_add(u32::from(i) * 160),
            )
        })
        .collect();
    let (outcomes, out) = run(&mut b, t0, &arrivals);
    assert!(outcomes[1..].iter().all(|o| *o == PushOutcome::Accepted));
    assert_eq!(
        summary(&out),
        ["P7", "P8", "P9", "L0+160", "P11", "P12", "P13", "P14"]
    );
    // and the wrapped packets were not held back or re-anchored
    let mut b = jb(8000);
    b.push(t0, pkt(1, 1, u32::MAX - 159));
    b.push(t0 + ms(20), pkt(1, 2, 0));
    assert_eq!(b.next_deadline(), Some(t0 + DEPTH));
    b.pop(t0 + DEPTH);
    assert_eq!(b.next_deadline(), Some(t0 + ms(80)));
}

#[test]
fn ssrc_change_is_a_new_source() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    let mut out = Vec::new();
    for i in 0..5u16 {
        let now = t0 + ms(u64::from(i) * 20);
        drain(&mut b, now, &mut out);
        b.push(now, pkt(1, 100 + i, u32::from(i) * 160));
    }
    // SBC failover: new SSRC, unrelated sequence and timestamp
    let t1 = t0 + ms(100);
    assert_eq!(
        b.push(t1, pkt(2, 40_000, 9_999_999)),
        PushOutcome::NewSsrc {
            old: Some(Ssrc(1)),
            new: Ssrc(2)
        }
    );
    assert_eq!(b.ssrc(), Some(Ssrc(2)));
    // a straggler of the old source is not a switch back
    assert_eq!(b.push(t1 + ms(5), pkt(1, 105, 800)), PushOutcome::Late);
    for i in 1..4u16 {
        let now = t1 + ms(u64::from(i) * 20);
        drain(&mut b, now, &mut out);
        assert_eq!(
            b.push(now, pkt(2, 40_000 + i, 9_999_999 + u32::from(i) * 160)),
            PushOutcome::Accepted
        );
    }
    drain(&mut b, t1 + ms(10_000), &mut out);
    assert_eq!(
        summary(&out),
        ["P100", "P101", "P102", "P103", "P104", "P40000", "P40001", "P40002", "P40003"]
    );
    let s = b.stats();
    assert_eq!((s.ssrc_changes, s.lost, s.expected, s.late), (1, 0, 9, 1));
    // much later the old SSRC coming back is a real switch
    assert_eq!(
        b.push(t1 + ms(20_000), pkt(1, 7, 7)),
        PushOutcome::NewSsrc {
            old: Some(Ssrc(2)),
            new: Ssrc(1)
        }
    );
    assert_eq!(b.stats().ssrc_changes, 2);
}

#[test]
fn pause_resume_is_not_loss() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    let mut out = Vec::new();
    for i in 0..5u16 {
        let now = t0 + ms(u64::from(i) * 20);
        drain(&mut b, now, &mut out);
        b.push(now, pkt(1, i, u32::from(i) * 160));
    }
    drain(&mut b, t0 + ms(90), &mut out); // 0..=1 played, 2..=4 buffered
    b.pause();
    assert!(b.is_empty());
    assert_eq!(b.pop(t0 + ms(10_000)), None);
    assert_eq!(b.push(t0 + ms(200), pkt(1, 5, 800)), PushOutcome::Late);
    let t1 = t0 + ms(5_000);
    b.resume(t1);
    // The SRC kept counting while paused: 250 sequence numbers and 5 s of
    // timestamps later. None of that is loss.
    for i in 0..5u16 {
        let now = t1 + ms(u64::from(i) * 20);
        drain(&mut b, now, &mut out);
        assert_eq!(
            b.push(now, pkt(1, 255 + i, 40_800 + u32::from(i) * 160)),
            PushOutcome::Accepted
        );
        if i == 0 {
            assert_eq!(b.next_deadline(), Some(t1 + DEPTH));
        }
    }
    drain(&mut b, t1 + ms(10_000), &mut out);
    assert_eq!(
        summary(&out),
        ["P0", "P1", "P255", "P256", "P257", "P258", "P259"]
    );
    let s = b.stats();
    assert_eq!((s.lost, s.late, s.expected), (0, 0, 10));
    assert_eq!(s.packets, 10); // the packet pushed while paused is not counted
}

#[test]
fn ptimes_10_20_30_and_opus() {
    for (clock, ptime, per) in [
        (8000, 10, 80),
        (8000, 20, 160),
        (8000, 30, 240),
        (48000, 20, 960),
    ] {
        let t0 = Instant::now();
        let mut b = jb(clock);
        let arrivals: Vec<_> = (0..12u16)
            .filter(|i| ![3, 7, 8].contains(i))
            .map(|i| (u64::from(i) * ptime, i, 5 + u32::from(i) * per))
            .collect();
        let (_, out) = run(&mut b, t0, &arrivals);
        let want = vec![
            "P0".to_string(),
            "P1".into(),
            "P2".into(),
            format!("L{}+{}", 5 + 3 * per, per),
            "P4".into(),
            "P5".into(),
            "P6".into(),
            format!("L{}+{}", 5 + 7 * per, 2 * per),
            "P9".into(),
            "P10".into(),
            "P11".into(),
        ];
        assert_eq!(summary(&out), want, "clock {clock} ptime {ptime}");
        assert_eq!(b.stats().lost, 3);
        assert_eq!(b.stats().late, 0);
    }
}

#[test]
fn delay_step_reanchors_instead_of_dropping_everything() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    let mut arrivals: Vec<(u64, u16, u32)> = (0..10u16)
        .map(|i| (u64::from(i) * 20, i, u32::from(i) * 160))
        .collect();
    // the path gets 150 ms slower for good
    arrivals.extend((10..30u16).map(|i| (u64::from(i) * 20 + 150, i, u32::from(i) * 160)));
    let (outcomes, out) = run(&mut b, t0, &arrivals);
    assert!(
        outcomes.iter().all(|o| !matches!(o, PushOutcome::Late)),
        "{outcomes:?}"
    );
    assert_eq!(out.len(), 30);
    assert!(out.iter().all(|p| matches!(p, Playout::Packet(_))));
    let s = b.stats();
    assert_eq!((s.lost, s.late), (0, 0));
    assert!(s.jitter_ms > 0.0);
}

#[test]
fn timestamp_jump_reanchors() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    b.push(t0, pkt(1, 1, 0));
    b.push(t0 + ms(20), pkt(1, 2, 160));
    // the sender's clock jumps 10 s ahead without a real pause
    b.push(t0 + ms(40), pkt(1, 3, 80_320));
    b.push(t0 + ms(60), pkt(1, 4, 80_480));
    let mut out = Vec::new();
    drain(&mut b, t0 + ms(120), &mut out);
    assert_eq!(summary(&out), ["P1", "P2", "P3", "P4"]);
    assert_eq!(b.stats().lost, 0);
}

#[test]
fn sequence_jump_resyncs_after_two_packets() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    let mut out = Vec::new();
    for i in 0..3u16 {
        b.push(t0 + ms(u64::from(i) * 20), pkt(1, i, u32::from(i) * 160));
    }
    // the sender restarts its numbering (same SSRC)
    assert_eq!(b.push(t0 + ms(60), pkt(1, 30_000, 480)), PushOutcome::Late);
    assert_eq!(
        b.push(t0 + ms(80), pkt(1, 30_001, 640)),
        PushOutcome::Accepted
    );
    assert_eq!(
        b.push(t0 + ms(100), pkt(1, 30_002, 800)),
        PushOutcome::Accepted
    );
    drain(&mut b, t0 + ms(10_000), &mut out);
    assert_eq!(summary(&out), ["P0", "P1", "P2", "P30001", "P30002"]);
    assert_eq!(b.stats().lost, 0);
    // a single stray far-off sequence number is dropped, the stream goes on
    let mut b = jb(8000);
    b.push(t0, pkt(1, 0, 0));
    assert_eq!(b.push(t0 + ms(10), pkt(1, 40_000, 0)), PushOutcome::Late);
    assert_eq!(b.push(t0 + ms(20), pkt(1, 1, 160)), PushOutcome::Accepted);
}

#[test]
fn overflow_is_bounded() {
    let t0 = Instant::now();
    let mut b = JitterBuffer::new(JitterConfig {
        clock_rate: 8000,
        depth: DEPTH,
        max_packets: 4,
    });
    let outcomes: Vec<_> = (0..6u16)
        .map(|i| b.push(t0, pkt(1, i, u32::from(i) * 160)))
        .collect();
    assert_eq!(outcomes[4], PushOutcome::Overflow);
    assert_eq!(outcomes[5], PushOutcome::Overflow);
    assert_eq!(b.len(), 4);
    assert_eq!(b.overflows(), 2);
}

#[test]
fn flush_drains_regardless_of_time() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    b.push(t0, pkt(1, 1, 0));
    b.push(t0, pkt(1, 3, 320));
    let mut out = Vec::new();
    while let Some(p) = b.flush() {
        out.push(p);
    }
    assert_eq!(summary(&out), ["P1", "L160+160", "P3"]);
}

/// RFC 3550 A.8 by hand: 8 kHz, ts 0/160/320/480 arriving at 0/20/50/60 ms.
/// Arrival in ts units 0/160/400/480, transit 0/0/80/0, |D| 0/80/80;
/// J = 0 → 0 + 80/16 = 5 → 5 + (80 − 5)/16 = 9.6875 units = 1.2109375 ms.
#[test]
fn rfc3550_jitter_hand_computed() {
    let t0 = Instant::now();
    let mut b = jb(8000);
    for (at, seq, ts) in [(0, 1, 0), (20, 2, 160), (50, 3, 320), (60, 4, 480)] {
        b.push(t0 + ms(at), pkt(1, seq, ts));
    }
    let j = b.stats().jitter_ms;
    assert!((j - 1.2109375).abs() < 1e-9, "{j}");
}

#[test]
fn mos_monotone_and_clean_g711() {
    let clean = estimate_mos(Codec::Pcmu, 0.0, 0.0, 60.0);
    assert!((4.35..=4.45).contains(&clean), "{clean}");
    let mut prev = clean;
    for loss in 1..=50 {
        let m = estimate_mos(Codec::Pcma, f64::from(loss), 2.0, 60.0);
        assert!(m < prev);
        prev = m;
    }
    assert!(estimate_mos(Codec::Pcmu, 20.0, 0.0, 60.0) < 3.0);
}

#[test]
fn rtcp_demux_and_parse() {
    let rr = [0x80, 0xc9, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05];
    assert!(is_rtcp(&rr));
    assert_eq!(parse_rtp(&rr), Err(earshot::rtp::RtpError::IsRtcp));
    assert_eq!(
        parse_rtcp(&rr).unwrap(),
        vec![earshot::rtp::RtcpInfo::ReceiverReport {
            ssrc: Ssrc(5),
            reports: vec![]
        }]
    );
}

// ---------------------------------------------------------------- properties

/// A stream of `n` packets of `ptime_ms` at `clock`, starting at arbitrary
/// sequence/timestamp (so wraps happen).
#[derive(Debug, Clone)]
struct Stream {
    clock: u32,
    ptime_ms: u64,
    seq0: u16,
    ts0: u32,
    n: usize,
}

impl Stream {
    fn per(&self) -> u32 {
        (u64::from(self.clock) * self.ptime_ms / 1000) as u32
    }
    fn packet(&self, i: usize) -> RtpPacket {
        pkt(
            7,
            self.seq0.wrapping_add(i as u16),
            self.ts0.wrapping_add(self.per().wrapping_mul(i as u32)),
        )
    }
}

fn stream() -> impl Strategy<Value = Stream> {
    (
        prop_oneof![Just(8000u32), Just(16000), Just(48000)],
        prop_oneof![Just(10u64), Just(20), Just(30), Just(60)],
        any::<u16>(),
        any::<u32>(),
        2usize..300,
    )
        .prop_map(|(clock, ptime_ms, seq0, ts0, n)| Stream {
            clock,
            ptime_ms,
            seq0,
            ts0,
            n,
        })
}

/// Push `(arrival_us, index)` in arrival order, popping before each push and
/// at the end.
fn drive(
    b: &mut JitterBuffer,
    s: &Stream,
    t0: Instant,
    mut arrivals: Vec<(u64, usize)>,
) -> (Vec<PushOutcome>, Vec<Playout>) {
    arrivals.sort();
    let mut outcomes = Vec::new();
    let mut out = Vec::new();
    let mut last = 0;
    for (at, i) in arrivals {
        let now = t0 + Duration::from_micros(at);
        drain(b, now, &mut out);
        outcomes.push(b.push(now, s.packet(i)));
        last = at;
    }
    drain(
        b,
        t0 + Duration::from_micros(last) + Duration::from_secs(60),
        &mut out,
    );
    (outcomes, out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any arrival permutation within the depth plays out in order, no loss.
    #[test]
    fn permutation_within_depth_plays_in_order(
        s in stream(),
        delays in proptest::collection::vec(0u64..60_000, 300),
    ) {
        let t0 = Instant::now();
        let mut b = JitterBuffer::new(JitterConfig { clock_rate: s.clock, depth: DEPTH, max_packets: 500 });
        let arrivals: Vec<_> = (0..s.n)
            .map(|i| (i as u64 * s.ptime_ms * 1000 + delays[i], i))
            .collect();
        let (outcomes, out) = drive(&mut b, &s, t0, arrivals);
        prop_assert!(outcomes.iter().all(|o| matches!(o, PushOutcome::Accepted | PushOutcome::NewSsrc { .. })), "{:?}", outcomes);
        prop_assert_eq!(out.len(), s.n);
        for (i, p) in out.iter().enumerate() {
            match p {
                Playout::Packet(p) => prop_assert_eq!(p, &s.packet(i)),
                Playout::Lost { .. } => prop_assert!(false, "loss at {}", i),
            }
        }
        let st = b.stats();
        prop_assert_eq!((st.lost, st.late, st.duplicates, st.expected), (0, 0, 0, s.n as u64));
    }

    /// With random drops (not the first or last packet), lost = dropped and
    /// played + concealed samples = the timestamp span.
    #[test]
    fn drops_are_counted_and_concealed_exactly(
        s in stream(),
        drop in proptest::collection::vec(any::<bool>(), 300),
        delays in proptest::collection::vec(0u64..30_000, 300),
    ) {
        let t0 = Instant::now();
        let mut b = JitterBuffer::new(JitterConfig { clock_rate: s.clock, depth: DEPTH, max_packets: 500 });
        let kept: Vec<usize> = (0..s.n).filter(|&i| i == 0 || i == s.n - 1 || !drop[i]).collect();
        let dropped = s.n - kept.len();
        let arrivals: Vec<_> = kept.iter().map(|&i| (i as u64 * s.ptime_ms * 1000 + delays[i], i)).collect();
        let (_, out) = drive(&mut b, &s, t0, arrivals);
        let mut samples: u64 = 0;
        let mut expect_ts = s.ts0;
        for p in &out {
            match p {
                Playout::Packet(p) => {
                    prop_assert_eq!(p.timestamp, expect_ts);
                    samples += u64::from(s.per());
                    expect_ts = expect_ts.wrapping_add(s.per());
                }
                Playout::Lost { timestamp, samples: n } => {
                    prop_assert_eq!(*timestamp, expect_ts);
                    prop_assert_eq!(n % s.per(), 0);
                    samples += u64::from(*n);
                    expect_ts = expect_ts.wrapping_add(*n);
                }
            }
        }
        prop_assert_eq!(b.stats().lost, dropped as u64);
        prop_assert_eq!(b.played(), kept.len() as u64);
        prop_assert_eq!(samples, s.n as u64 * u64::from(s.per()));
    }

    /// Whatever arrives, whenever, the buffer neither panics nor grows past
    /// its cap, and playout never goes backwards within a source.
    #[test]
    fn arbitrary_input_never_panics(
        ops in proptest::collection::vec((0u64..200_000, any::<u16>(), any::<u32>(), 0u32..3, 0u8..20), 0..400),
    ) {
        let t0 = Instant::now();
        let mut b = JitterBuffer::new(JitterConfig { clock_rate: 8000, depth: DEPTH, max_packets: 32 });
        let mut now = t0;
        let mut out = Vec::new();
        for (dt, seq, ts, ssrc, op) in ops {
            now += Duration::from_micros(dt);
            match op {
                0 => b.pause(),
                1 => b.resume(now),
                2 => { while b.flush().is_some() {} }
                _ => { b.push(now, pkt(ssrc, seq, ts)); }
            }
            prop_assert!(b.len() <= 32);
            drain(&mut b, now, &mut out);
            if let Some(d) = b.next_deadline() {
                prop_assert!(d > now);
            }
        }
        let s = b.stats();
        prop_assert!(s.mos == 0.0 || (1.0..=4.5).contains(&s.mos));
        prop_assert!(s.jitter_ms.is_finite());
    }

    /// Arbitrary bytes never panic the parsers.
    #[test]
    fn parsers_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_rtp(&buf);
        let _ = parse_rtcp(&buf);
        let _ = is_rtcp(&buf);
    }

    /// Nor do well-framed headers with arbitrary CSRC/extension/padding bits
    /// and bodies (which get past the cheap checks).
    #[test]
    fn parsers_never_panic_on_plausible_headers(
        flags in 0u8..64,
        b1 in any::<u8>(),
        profile in prop_oneof![Just(0xBEDEu16), Just(0x1000), any::<u16>()],
        words in 0u16..6,
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut buf = vec![0x80 | flags, b1, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        buf.extend_from_slice(&profile.to_be_bytes());
        buf.extend_from_slice(&words.to_be_bytes());
        buf.extend_from_slice(&body);
        if let Ok(p) = parse_rtp(&buf) {
            prop_assert!(p.payload.len() <= buf.len());
        }
        let _ = parse_rtcp(&buf);
        // RTCP-looking compound packets too
        let mut rtcp = vec![0x80 | (flags & 0x3f), 200 + (b1 % 8), 0, (body.len() / 4) as u8];
        rtcp.extend_from_slice(&body[..body.len() / 4 * 4]);
        let _ = parse_rtcp(&rtcp);
    }
}

/// Cost smoke test (not a benchmark; the criterion bench lives elsewhere):
/// `cargo test --release -p earshot --test rtp_jitter -- --ignored --nocapture`.
#[test]
#[ignore]
fn cost_per_frame() {
    let streams = 2000usize;
    let frames = 500u32;
    let t0 = Instant::now();
    let mut bufs: Vec<JitterBuffer> = (0..streams).map(|_| jb(8000)).collect();
    let payload = Bytes::from_static(&[0xff; 160]);
    let start = std::time::Instant::now();
    let mut played = 0u64;
    for f in 0..frames {
        let now = t0 + ms(u64::from(f) * 20);
        for (k, b) in bufs.iter_mut().enumerate() {
            // mild reordering: swap every 7th pair
            let i = if f % 7 == 3 {
                f + 1
            } else if f % 7 == 4 {
                f - 1
            } else {
                f
            };
            let p = RtpPacket {
                payload_type: 0,
                marker: false,
                sequence: i as u16,
                timestamp: i * 160,
                ssrc: Ssrc(k as u32),
                payload: payload.clone(),
            };
            b.push(now, p);
            while let Some(out) = b.pop(now) {
                if matches!(out, Playout::Packet(_)) {
                    played += 1;
                }
            }
        }
    }
    let per = start.elapsed().as_nanos() as f64 / (f64::from(frames) * streams as f64);
    println!("{per:.0} ns per push+pop ({played} played)");
}
