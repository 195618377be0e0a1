//! One participant stream's whole receive pipeline (`StreamPipeline`):
//! latching, RTP parsing, jitter buffer, decode/conceal, resampling onto
//! the wall-clock timeline, VAD, classifier, hold and DTMF, with pauses
//! and source changes.
//!
//! Input: byte 0 picks the codec, byte 1 the jitter depth, then records
//! `[dt_ms (0-63)][ctl][len][datagram...]`: `ctl` bit 0 sends from a second
//! address, bit 1 pauses, bit 2 resumes, bit 3 polls after the push.
#![no_main]

use earshot::media::{MediaEvent, StreamConfig, StreamPipeline};
use earshot::sdp::Codec;
use earshot::vad::VadConfig;
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const CODECS: [(Codec, u8); 4] = [
    (Codec::Pcmu, 0),
    (Codec::Pcma, 8),
    (Codec::G722, 9),
    (Codec::Opus, 111),
];

fuzz_target!(|data: &[u8]| {
    let [sel, depth, rest @ ..] = data else {
        return;
    };
    let (codec, pt) = CODECS[usize::from(sel % 4)];
    let cfg = StreamConfig {
        codec,
        payload_type: pt,
        dtmf_payload_type: Some(101),
        jitter_depth: Duration::from_millis(20 + u64::from(depth % 128)),
        vad: VadConfig::default(),
        strict_source: sel & 4 != 0,
    };
    let start = Instant::now();
    let mut p = StreamPipeline::new(cfg, start).expect("audio codec");
    let a: SocketAddr = "192.0.2.200:6000".parse().unwrap();
    let b: SocketAddr = "198.51.100.7:40000".parse().unwrap();
    let mut now = start;
    let mut audio = Vec::new();
    let mut events = Vec::new();
    let mut rest = rest;
    while let [dt, ctl, len, rest2 @ ..] = rest {
        let (datagram, tail) = rest2.split_at(usize::from(*len).min(rest2.len()));
        rest = tail;
        now += Duration::from_millis(u64::from(dt & 0x3f));
        if ctl & 2 != 0 {
            p.pause(now);
        }
        if ctl & 4 != 0 {
            p.resume(now);
        }
        p.push(now, if ctl & 1 != 0 { b } else { a }, datagram);
        if ctl & 8 != 0 {
            p.poll(now, &mut audio, &mut events);
        }
    }
    p.finish(now, &mut audio, &mut events);
    // The timeline is what was produced, and reaches at least `now`.
    assert_eq!(audio.len() as u64 / 16, p.now_ms());
    let elapsed = now.duration_since(start).as_millis() as u64;
    assert!(p.now_ms() >= elapsed, "{} < {elapsed}", p.now_ms());
    assert!(audio.iter().all(|s| s.is_finite()));
    for e in &events {
        if let MediaEvent::SpeechEnded { start_ms, end_ms } = e {
            assert!(start_ms <= end_ms && *end_ms <= p.now_ms());
        }
    }
    let s = p.stats();
    assert!(s.mos.is_finite() && s.jitter_ms.is_finite());
});
