//! Media cost per 20 ms frame of one stream: RTP parse + latch + jitter
//! buffer + G.711 decode + resample to 16 kHz + VAD + audio classifier (the
//! whole `StreamPipeline`), on real speech from the Asterisk prompts when
//! installed (a synthetic vowel-like signal otherwise).
//! `pipeline_pcmu_2000_streams` is the same work taking turns over 2,000
//! pipelines, as a media thread does, so what a stream's state costs to
//! bring back shows as the difference from `pipeline_pcmu_full`.
//! Run: `cargo bench --bench media`.

use criterion::{criterion_group, criterion_main, Bencher, Criterion, Throughput};
use earshot::codec::g711::linear_to_ulaw;
use earshot::codec::{decoder_for, Resampler, SPEECH_RATE};
use earshot::media::{StreamConfig, StreamPipeline};
use earshot::sdp::Codec;
use earshot::vad::{SpeechDetector, VadConfig};
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn speech_8k() -> Vec<i16> {
    let path = "/usr/share/asterisk/sounds/en/demo-congrats.wav";
    if let Ok(mut r) = hound::WavReader::open(path) {
        let v: Vec<i16> = r.samples::<i16>().filter_map(Result::ok).collect();
        if v.len() > 8000 {
            return v;
        }
    }
    (0..8000 * 10)
        .map(|n| {
            let t = n as f32 / 8000.0;
            let env = (2.0 * std::f32::consts::PI * 4.0 * t).sin().abs();
            ((2.0 * std::f32::consts::PI * 220.0 * t).sin() * env * 8000.0) as i16
        })
        .collect()
}

fn packets(pcm: &[i16]) -> Vec<Vec<u8>> {
    pcm.chunks_exact(160)
        .enumerate()
        .map(|(k, c)| {
            let mut b = vec![0x80, 0];
            b.extend_from_slice(&(k as u16).to_be_bytes());
            b.extend_from_slice(&(160 * k as u32).to_be_bytes());
            b.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            b.extend(c.iter().map(|&s| linear_to_ulaw(s)));
            b
        })
        .collect()
}

/// A PCMU m-line as the engine receives it by default.
fn pcmu_stream() -> StreamConfig {
    StreamConfig {
        codec: Codec::Pcmu,
        payload_type: 0,
        dtmf_payload_type: Some(101),
        jitter_depth: Duration::from_millis(60),
        vad: VadConfig::default(),
        strict_source: false,
    }
}

/// One 20 ms frame through a whole pipeline per iteration, `streams`
/// pipelines taking turns (stream s plays the speech from its own offset;
/// sequence numbers and timestamps keep moving across loops of the file).
fn pipelines(b: &mut Bencher, pkts: &[Vec<u8>], src: SocketAddr, streams: usize) {
    let t0 = Instant::now();
    let mut ps: Vec<StreamPipeline> = (0..streams)
        .map(|_| StreamPipeline::new(pcmu_stream(), t0).unwrap())
        .collect();
    let mut audio = Vec::with_capacity(4096);
    let mut events = vec![];
    let mut k = 0usize;
    b.iter(|| {
        let (s, n) = (k % streams, k / streams);
        let mut pkt = pkts[(n + 37 * s) % pkts.len()].clone();
        pkt[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        pkt[4..8].copy_from_slice(&(160 * n as u32).to_be_bytes());
        let now = t0 + Duration::from_millis(20 * n as u64);
        let p = &mut ps[s];
        p.push(now, src, &pkt);
        audio.clear();
        p.poll(now, &mut audio, &mut events);
        events.clear();
        k += 1;
        black_box(audio.len())
    })
}

fn bench(c: &mut Criterion) {
    let pcm = speech_8k();
    let pkts = packets(&pcm);
    let src = "10.0.0.1:4000".parse().unwrap();
    let mut g = c.benchmark_group("media_per_20ms_frame");
    g.throughput(Throughput::Elements(1));

    g.bench_function("pipeline_pcmu_full", |b| pipelines(b, &pkts, src, 1));
    g.bench_function("pipeline_pcmu_2000_streams", |b| {
        pipelines(b, &pkts, src, 2000)
    });

    g.bench_function("decode_resample_only", |b| {
        let mut d = decoder_for(Codec::Pcmu).unwrap();
        let mut r = Resampler::new(8000, SPEECH_RATE).unwrap();
        let mut native = Vec::with_capacity(160);
        let mut out = Vec::with_capacity(320);
        let mut k = 0usize;
        b.iter(|| {
            let pkt = &pkts[k % pkts.len()];
            native.clear();
            out.clear();
            d.decode(&pkt[12..], &mut native).unwrap();
            r.process(&native, &mut out);
            k += 1;
            black_box(out.len())
        })
    });

    // The speech as 20 ms frames at 16 kHz, for the analysis-only benches.
    let up = {
        let mut r = Resampler::new(8000, SPEECH_RATE).unwrap();
        let f: Vec<f32> = pcm.iter().map(|&s| s as f32 / 32768.0).collect();
        let mut up = vec![];
        r.process(&f, &mut up);
        up
    };
    let frames: Vec<&[f32]> = up.chunks_exact(320).collect();

    g.bench_function("vad_only", |b| {
        let mut v = SpeechDetector::new(VadConfig::default());
        let mut k = 0usize;
        b.iter(|| {
            let e = v.push(20 * k as u64, frames[k % frames.len()]);
            k += 1;
            black_box(e.is_some())
        })
    });

    g.bench_function("classifier_only", |b| {
        let mut cl = earshot::classify::AudioClassifier::new();
        let mut k = 0usize;
        b.iter(|| {
            let e = cl.push(
                20 * k as u64,
                frames[k % frames.len()],
                !k.is_multiple_of(3),
            );
            k += 1;
            black_box(e.is_some())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
