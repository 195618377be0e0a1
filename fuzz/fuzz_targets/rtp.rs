//! The RTP receive path below the pipeline: datagram parsing, every
//! decoder by payload type (PCMU, PCMA, G.722, Opus, telephone-event, CN),
//! and a jitter buffer fed with arrival times, whose playout (packets and
//! concealed losses) goes through the decoder and the resampler.
//!
//! Input: byte 0 picks the negotiated codec, byte 1 the jitter depth, then
//! records `[dt_ms][len_hi][len_lo][datagram...]` (a short last record
//! takes what is left).
#![no_main]

use bytes::Bytes;
use earshot::codec::{
    self, comfort_noise, comfort_noise_level, conceal_samples, decoder_for, dtmf,
    rtp_units_to_samples, Decoder, OpusDecoder, Resampler, SPEECH_RATE,
};
use earshot::rtp::{is_rtcp, parse_rtp, parse_rtp_bytes, JitterBuffer, JitterConfig, Playout};
use earshot::sdp::Codec;
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

const CODECS: [(Codec, u8); 4] = [
    (Codec::Pcmu, 0),
    (Codec::Pcma, 8),
    (Codec::G722, 9),
    (Codec::Opus, 111),
];
const DTMF_PT: u8 = 101;
/// Largest Opus packet: 120 ms at 48 kHz.
const OPUS_MAX: usize = 5_760;

/// Decode one payload and check the sample count against the codec.
fn decode(codec: Codec, dec: &mut dyn Decoder, payload: &[u8], out: &mut Vec<f32>) {
    let before = out.len();
    let res = dec.decode(payload, out);
    let n = out.len() - before;
    match codec {
        Codec::Pcmu | Codec::Pcma => assert_eq!(n, payload.len()),
        Codec::G722 => assert_eq!(n, 2 * payload.len()),
        Codec::Opus => {
            assert!(n <= OPUS_MAX);
            if res.is_err() {
                assert_eq!(n, 0);
            }
        }
        Codec::TelephoneEvent => unreachable!(),
    }
    if codec != Codec::Opus {
        assert!(res.is_ok());
    }
    for s in &out[before..] {
        assert!(s.is_finite());
        if codec != Codec::Opus {
            assert!((-1.0..=1.0).contains(s));
        }
    }
}

struct Playback {
    codec: Codec,
    decoder: Box<dyn Decoder>,
    resampler: Resampler,
    native: Vec<f32>,
    speech: Vec<f32>,
    native_total: u64,
    speech_total: u64,
}

impl Playback {
    fn play(&mut self, unit: Playout, pt: u8) {
        self.native.clear();
        match unit {
            Playout::Packet(p) if p.payload_type == pt => {
                decode(self.codec, &mut *self.decoder, &p.payload, &mut self.native);
            }
            Playout::Packet(_) => return,
            Playout::Lost { samples, .. } => {
                // What the pipeline conceals (capped; see codec::MAX_CONCEAL_MS).
                let n = conceal_samples(self.codec, samples);
                assert!(n <= rtp_units_to_samples(self.codec, samples));
                self.decoder.conceal(n, &mut self.native);
                assert_eq!(self.native.len(), n, "conceal({n})");
                assert!(self.native.iter().all(|s| s.is_finite()));
            }
        }
        self.speech.clear();
        self.resampler.process(&self.native, &mut self.speech);
        self.native_total += self.native.len() as u64;
        self.speech_total += self.speech.len() as u64;
        // Streaming resampling keeps the exact rate ratio (to a sample).
        let want = self.native_total * u64::from(SPEECH_RATE) / u64::from(self.resampler.in_rate());
        assert!(self.speech_total.abs_diff(want) <= 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let [sel, depth, rest @ ..] = data else {
        return;
    };
    let (codec, pt) = CODECS[usize::from(sel % 4)];
    let depth = Duration::from_millis(20 + u64::from(*depth));
    let mut direct = decoder_for(codec).expect("audio codec");
    let mut play = Playback {
        codec,
        decoder: decoder_for(codec).expect("audio codec"),
        resampler: Resampler::new(codec::decoder_rate(codec), SPEECH_RATE).expect("rate"),
        native: Vec::new(),
        speech: Vec::new(),
        native_total: 0,
        speech_total: 0,
    };
    let opus_probe = OpusDecoder::new().expect("opus");
    let mut jitter = JitterBuffer::new(JitterConfig {
        clock_rate: codec.clock_rate(),
        depth,
        max_packets: 500,
    });
    let start = Instant::now();
    let mut now = start;
    let mut out = Vec::new();
    let mut rest = rest;
    while let [dt, rest2 @ ..] = rest {
        let len = match rest2 {
            [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => 0,
        };
        let body = rest2.get(2..).unwrap_or_default();
        let (datagram, tail) = body.split_at(len.min(body.len()));
        rest = tail;
        now += Duration::from_millis(u64::from(*dt));

        let parsed = parse_rtp(datagram);
        assert_eq!(parsed, parse_rtp_bytes(Bytes::copy_from_slice(datagram)));
        if is_rtcp(datagram) {
            assert!(parsed.is_err());
        }
        let Ok(pkt) = parsed else {
            continue;
        };
        assert!(pkt.payload.len() + 12 <= datagram.len());
        assert!(pkt.payload_type < 128);
        out.clear();
        match pkt.payload_type {
            p if p == pt => {
                decode(codec, &mut *direct, &pkt.payload, &mut out);
                if codec == Codec::Opus {
                    if let Ok(n) = opus_probe.packet_samples(&pkt.payload) {
                        assert!(out.len() <= n);
                    }
                }
            }
            13 | 19 => {
                if let Some(level) = comfort_noise_level(&pkt.payload) {
                    assert!(level <= 127);
                }
                comfort_noise(codec, 160, &mut out);
                assert_eq!(out.len(), rtp_units_to_samples(codec, 160));
            }
            DTMF_PT => {
                if let Some(ev) = dtmf::parse_event(&pkt.payload) {
                    assert!(ev.volume <= 63);
                    let _ = dtmf::event_digit(ev.event);
                }
            }
            _ => {}
        }
        let _ = jitter.push(now, pkt);
        assert!(jitter.len() <= 500);
        while let Some(unit) = jitter.pop(now) {
            play.play(unit, pt);
        }
        let _ = jitter.next_deadline();
    }
    while let Some(unit) = jitter.flush() {
        play.play(unit, pt);
    }
    let stats = jitter.stats();
    assert!(stats.jitter_ms.is_finite() && stats.jitter_ms >= 0.0);
    assert!(stats.mos.is_finite());
});
