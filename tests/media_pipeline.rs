//! The per-stream media pipeline, driven with hand-built RTP and a fake
//! clock: timeline alignment with wall time, loss concealment, DTMF,
//! pause/resume, SSRC changes, bad input.

use earshot::codec::g711::linear_to_ulaw;
use earshot::media::{MediaEvent, RtpTimeout, StreamConfig, StreamPipeline};
use earshot::sdp::Codec;
use earshot::vad::VadConfig;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SRC: &str = "10.0.0.1:4000";

fn cfg() -> StreamConfig {
    StreamConfig {
        codec: Codec::Pcmu,
        payload_type: 0,
        dtmf_payload_type: Some(101),
        jitter_depth: Duration::from_millis(60),
        vad: VadConfig::default(),
        strict_source: false,
    }
}

fn rtp(pt: u8, seq: u16, ts: u32, ssrc: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0x80, pt | if marker { 0x80 } else { 0 }];
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&ssrc.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// 20 ms of a 440 Hz tone (or silence) as μ-law, starting at sample `n0`.
fn tone(n0: u32, amp: f32) -> Vec<u8> {
    (0..160)
        .map(|i| {
            let t = (n0 + i) as f32 / 8000.0;
            let x = (2.0 * std::f32::consts::PI * 440.0 * t).sin() * amp;
            linear_to_ulaw((x * 32767.0) as i16)
        })
        .collect()
}

struct Run {
    p: StreamPipeline,
    t0: Instant,
    audio: Vec<f32>,
    events: Vec<MediaEvent>,
}

impl Run {
    fn new() -> Self {
        let t0 = Instant::now();
        Run {
            p: StreamPipeline::new(cfg(), t0).unwrap(),
            t0,
            audio: vec![],
            events: vec![],
        }
    }
    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }
    fn push(&mut self, ms: u64, bytes: &[u8]) {
        let now = self.at(ms);
        self.p.push(now, SRC.parse::<SocketAddr>().unwrap(), bytes);
    }
    fn poll(&mut self, ms: u64) {
        let now = self.at(ms);
        self.p.poll(now, &mut self.audio, &mut self.events);
    }
}

#[test]
fn timeline_follows_wall_time_before_during_and_after_rtp() {
    let mut r = Run::new();
    // RTP starts 500 ms into the call, runs 2 s, then stops.
    for k in 0..100u32 {
        let ms = 500 + 20 * k as u64;
        r.push(
            ms,
            &rtp(
                0,
                1000 + k as u16,
                5000 + 160 * k,
                7,
                k == 0,
                &tone(160 * k, 0.3),
            ),
        );
        r.poll(ms);
    }
    for ms in (2500..5000).step_by(20) {
        r.poll(ms);
    }
    // now - depth = 4940 ms at the last poll; within a few frames.
    let produced_ms = r.audio.len() as f64 / 16.0;
    assert!(
        (produced_ms - 4940.0).abs() <= 80.0,
        "timeline {produced_ms} ms, expected ≈4940"
    );
    // The tone sits where it was sent: silence before 500 ms, tone after.
    let rms = |a: &[f32]| (a.iter().map(|x| x * x).sum::<f32>() / a.len() as f32).sqrt();
    assert!(rms(&r.audio[..16 * 400]) < 1e-4);
    assert!(rms(&r.audio[16 * 700..16 * 2300]) > 0.1);
    assert!(rms(&r.audio[16 * 2700..16 * 4800]) < 1e-4);
    let s = r.p.stats();
    assert_eq!((s.packets, s.lost), (100, 0));
    assert!(s.mos > 4.0);
}

#[test]
fn lost_packets_are_concealed_and_counted_and_time_stays_aligned() {
    let mut r = Run::new();
    for k in 0..150u32 {
        let ms = 20 * k as u64;
        if k % 10 != 3 {
            r.push(
                ms,
                &rtp(0, k as u16, 160 * k, 9, k == 0, &tone(160 * k, 0.3)),
            );
        }
        r.poll(ms);
    }
    let mut end = Vec::new();
    let mut ev = Vec::new();
    r.p.finish(r.at(3000), &mut end, &mut ev);
    r.audio.extend(end);
    let s = r.p.stats();
    assert_eq!(s.lost, 15, "{s:?}");
    let ms = r.audio.len() as f64 / 16.0;
    assert!((ms - 3000.0).abs() <= 20.0, "timeline {ms} ms");
    assert!(r.audio.iter().all(|x| x.is_finite()));
}

#[test]
fn dtmf_is_reported_once_at_its_time() {
    let mut r = Run::new();
    let mut seq = 0u16;
    let mut ms = 0u64;
    let send_audio = |r: &mut Run, seq: &mut u16, ms: &mut u64, n: u32| {
        for _ in 0..n {
            let ts = 160 * *seq as u32;
            r.push(*ms, &rtp(0, *seq, ts, 5, false, &tone(ts, 0.0)));
            r.poll(*ms);
            *seq += 1;
            *ms += 20;
        }
    };
    send_audio(&mut r, &mut seq, &mut ms, 50); // 1 s
                                               // Digit '5' (event 5) starting at ts of seq 50, 5 updates, 3 end packets.
    let start_ts = 160 * seq as u32;
    for i in 0..8u32 {
        let end = i >= 5;
        let dur = (160 * (i.min(4) + 1)) as u16;
        let payload = [
            5u8,
            if end { 0x80 | 10 } else { 10 },
            (dur >> 8) as u8,
            dur as u8,
        ];
        r.push(ms, &rtp(101, seq, start_ts, 5, i == 0, &payload));
        r.poll(ms);
        seq += 1;
        if i < 5 {
            ms += 20;
        }
    }
    // Audio resumes after the event.
    let resume_seq = seq;
    for k in 0..50u32 {
        let s = resume_seq + k as u16;
        let ts = start_ts + 800 + 160 * k;
        r.push(ms, &rtp(0, s, ts, 5, false, &tone(ts, 0.0)));
        r.poll(ms);
        ms += 20;
    }
    let digits: Vec<(char, u64, u64)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Dtmf {
                digit,
                at_ms,
                duration_ms,
            } => Some((*digit, *at_ms, *duration_ms)),
            _ => None,
        })
        .collect();
    assert_eq!(digits.len(), 1, "{:?}", r.events);
    let (d, at, dur) = digits[0];
    assert_eq!(d, '5');
    assert!((980..=1060).contains(&at), "at {at} ms");
    assert_eq!(dur, 100);
    assert_eq!(r.p.stats().lost, 0, "DTMF packets are not loss");
}

#[test]
fn pause_counts_no_loss_and_resume_records_the_gap() {
    let mut r = Run::new();
    for k in 0..50u32 {
        let ms = 20 * k as u64;
        r.push(
            ms,
            &rtp(0, k as u16, 160 * k, 3, false, &tone(160 * k, 0.2)),
        );
        r.poll(ms);
    }
    r.p.pause(r.at(1000));
    for ms in (1000..4000).step_by(20) {
        r.poll(ms);
    }
    r.p.resume(r.at(4000));
    // The SRC resumes with a jump in seq and ts (as after a real hold).
    for k in 0..50u32 {
        let ms = 4000 + 20 * k as u64;
        r.push(
            ms,
            &rtp(
                0,
                900 + k as u16,
                900_000 + 160 * k,
                3,
                k == 0,
                &tone(160 * k, 0.2),
            ),
        );
        r.poll(ms);
    }
    assert_eq!(r.p.stats().lost, 0);
    let ms = r.audio.len() as f64 / 16.0;
    assert!((ms - 4940.0).abs() <= 80.0, "timeline {ms}");
    let gap = r.events.iter().find_map(|e| match e {
        MediaEvent::StreamResumed { gap_ms, .. } => Some(*gap_ms),
        _ => None,
    });
    assert!(
        gap.is_some_and(|g| (2900..=3100).contains(&g)),
        "{:?}",
        r.events
    );
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, MediaEvent::StreamPaused { .. })));
}

#[test]
fn ssrc_change_is_followed_and_reported() {
    let mut r = Run::new();
    for k in 0..100u32 {
        let ms = 20 * k as u64;
        let (ssrc, seq, ts) = if k < 50 {
            (1, k as u16, 160 * k)
        } else {
            (2, 40_000 + k as u16, 3_000_000 + 160 * k)
        };
        r.push(ms, &rtp(0, seq, ts, ssrc, false, &tone(160 * k, 0.2)));
        r.poll(ms);
    }
    assert!(r
        .events
        .iter()
        .any(|e| matches!(e, MediaEvent::SsrcChanged { .. })));
    assert_eq!(r.p.stats().lost, 0);
    let ms = r.audio.len() as f64 / 16.0;
    assert!((ms - 1940.0).abs() <= 80.0, "timeline {ms}");
}

#[test]
fn junk_and_unknown_payload_types_are_counted_not_fatal() {
    let mut r = Run::new();
    r.push(0, b"\x00\x01junk");
    r.push(0, &rtp(18, 1, 160, 4, false, &[0u8; 20]));
    r.push(0, &[0x80, 0xc8, 0, 1, 0, 0, 0, 0]); // RTCP on the RTP port: ignored
    r.poll(100);
    let c = r.p.counters();
    assert_eq!((c.malformed, c.unknown_payload_type), (1, 1));
}

/// The RTP timeout decision: media that never comes, media that stops, a
/// paused stream (never times out), a resumed one (counts from the resume),
/// one live stream keeping a call with a silent one alive, and off.
#[test]
fn rtp_timeout_counts_from_answer_last_packet_or_resume_and_skips_paused() {
    let t = RtpTimeout::new(Duration::from_secs(30)).unwrap();
    assert_eq!(RtpTimeout::new(Duration::ZERO), None, "0 = off");
    let s = |ms: u64| Duration::from_millis(ms);

    // Never arrives: idle since the answer (timeline zero).
    let mut never = Run::new();
    never.poll(29_990);
    assert_eq!(t.expired(never.at(29_999), [never.p.idle_since()]), None);
    assert_eq!(
        t.expired(never.at(30_000), [never.p.idle_since()]),
        Some(s(30_000))
    );

    // RTP for 5 s, then nothing: idle since the last packet.
    let mut stops = Run::new();
    for k in 0..250u32 {
        let ms = 20 * k as u64;
        stops.push(
            ms,
            &rtp(0, k as u16, 160 * k, 9, k == 0, &tone(160 * k, 0.2)),
        );
        stops.poll(ms);
    }
    assert_eq!(stops.p.last_rtp(), Some(stops.at(4_980)));
    assert_eq!(t.expired(stops.at(34_979), [stops.p.idle_since()]), None);
    assert_eq!(
        t.expired(stops.at(34_980), [stops.p.idle_since()]),
        Some(s(30_000))
    );
    // ...unless another stream of the call still has media (its own clock).
    let mut live = Run::new();
    live.push(34_000, &rtp(0, 1, 160, 7, true, &tone(0, 0.2)));
    assert_eq!(
        t.expired(live.at(40_000), [stops.p.idle_since(), live.p.idle_since()]),
        None
    );
    assert_eq!(
        t.expired(live.at(64_000), [stops.p.idle_since(), live.p.idle_since()]),
        Some(s(30_000))
    );

    // Paused (re-INVITE a=inactive) at 1 s: no media expected, no timeout,
    // however long; a call whose only streams are paused never times out.
    let mut paused = Run::new();
    paused.p.pause(paused.at(1_000));
    assert_eq!(paused.p.idle_since(), None);
    assert_eq!(
        t.expired(paused.at(3_600_000), [paused.p.idle_since()]),
        None
    );
    assert_eq!(t.expired(paused.at(3_600_000), []), None);
    // Packets while paused do not count as media either.
    paused.push(2_000, &rtp(0, 1, 160, 5, true, &tone(0, 0.2)));
    assert_eq!(paused.p.last_rtp(), None);
    // Resumed at 100 s: the timeout counts from the resume.
    paused.p.resume(paused.at(100_000));
    assert_eq!(t.expired(paused.at(129_999), [paused.p.idle_since()]), None);
    assert_eq!(
        t.expired(paused.at(130_000), [paused.p.idle_since()]),
        Some(s(30_000))
    );
    // A stream answered later (re-INVITE adding it) counts from then.
    let mut added = Run::new();
    added.p.expect_media_from(added.at(50_000));
    assert_eq!(added.p.idle_since(), Some(added.at(50_000)));
}

/// Fuzz finding (`fuzz/` target `rtp`): a packet 33 sequence numbers on
/// whose timestamp jumps by 1.86e9 units made the jitter buffer report a
/// `Lost` of ~1.8e9 units, and the pipeline asked the G.722 decoder to
/// conceal 3.6e9 samples (a 14 GB allocation). Concealment is capped at
/// `codec::MAX_CONCEAL_MS`; the timeline stays at wall time.
#[test]
fn timestamp_jump_inside_a_gap_conceals_a_bounded_stretch() {
    let t0 = Instant::now();
    let cfg = StreamConfig {
        codec: Codec::G722,
        payload_type: 9,
        ..cfg()
    };
    let mut p = StreamPipeline::new(cfg, t0).unwrap();
    let src: SocketAddr = SRC.parse().unwrap();
    let (mut audio, mut events) = (vec![], vec![]);
    let at = |ms| t0 + Duration::from_millis(ms);
    p.push(
        at(19),
        src,
        &rtp(9, 200, 0, 0x5ec0_0001, true, &[0x55; 160]),
    );
    p.push(
        at(38),
        src,
        &rtp(9, 201, 160, 0x5ec0_0001, false, &[0x55; 160]),
    );
    p.push(
        at(57),
        src,
        &rtp(9, 234, 1_862_271_296, 0x5ec0_0001, false, &[0x55; 160]),
    );
    p.poll(at(1000), &mut audio, &mut events);
    p.finish(at(1000), &mut audio, &mut events);
    assert_eq!(p.stats().lost, 32);
    let ms = audio.len() as u64 / 16;
    assert!(
        (1000..3000).contains(&ms),
        "timeline {ms} ms after 1 s of wall time"
    );
}

/// A source whose every packet jumps its timestamp forward by 9 s (under
/// the 10 s re-anchor limit, so each one looks like a plausible gap) must
/// not push the participant's timeline ahead of wall-clock time: that was
/// a CPU and disk amplification (each 20 ms packet made 9 s of audio to
/// classify and record).
#[test]
fn repeated_forward_jumps_do_not_run_the_timeline_ahead_of_wall_time() {
    let mut r = Run::new();
    let step = 9 * 8000u32;
    for i in 0..100u32 {
        let ms = 20 + u64::from(i) * 20;
        let ts = i.wrapping_mul(step);
        r.push(
            ms,
            &rtp(0, i as u16, ts, 0x1234_5678, i == 0, &tone(0, 0.3)),
        );
        r.poll(ms);
    }
    r.poll(2_100);
    let ms = r.audio.len() as u64 / 16;
    assert!(
        ms <= 2_100 + 2_000,
        "timeline {ms} ms after 2.1 s of wall time"
    );
    // Every packet was still received and played (none were lost to the
    // guard): the audio is there, just not stretched.
    assert_eq!(r.p.stats().packets, 100);
}
