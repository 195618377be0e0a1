//! Recording cost: what the media actor's WAV writes cost per call-second,
//! kernel time included (the page-cache copy, and the zeroing of pages a
//! write ends inside), for `hound` over a plain `BufWriter<File>` against
//! the [`PageWriter`] the engine uses. One call-second is what the actor
//! writes for a G.711 call: two 8 kHz mono legs and the 8 kHz stereo file,
//! in 50 writes each (one per 20 ms tick), and a header update per file.
//! Every 60 call-seconds the files are closed and new ones made (calls
//! end), so the bench writes into a bounded directory under `target/`.
//! Run: `cargo bench -p earshot-actors --bench recording`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use earshot_actors::pagefile::PageWriter;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

/// Calls written side by side per iteration.
const CALLS: usize = 50;
/// Call length, in iterations (call-seconds), before its files are made anew.
const CALL_SECONDS: u32 = 60;

fn spec(channels: u16) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

struct Call<W: Write + Seek> {
    legs: [hound::WavWriter<W>; 2],
    stereo: hound::WavWriter<W>,
}

fn open<W: Write + Seek>(dir: &Path, i: usize, mk: fn(File) -> W) -> Call<W> {
    let f = |name: &str, ch| {
        let file = File::create(dir.join(format!("{i}-{name}.wav"))).unwrap();
        hound::WavWriter::new(mk(file), spec(ch)).unwrap()
    };
    Call {
        legs: [f("a", 1), f("b", 1)],
        stereo: f("stereo", 2),
    }
}

/// One call-second of every call: 50 ticks of 160 samples per leg and 160
/// frames of stereo, then the per-second header update.
fn second<W: Write + Seek>(calls: &mut [Call<W>], pcm: &[i16]) {
    for tick in pcm.chunks_exact(160).take(50) {
        for c in calls.iter_mut() {
            for leg in c.legs.iter_mut() {
                let mut w = leg.get_i16_writer(160);
                for &x in tick {
                    w.write_sample(x);
                }
                w.flush().unwrap();
            }
            let mut w = c.stereo.get_i16_writer(320);
            for &x in tick {
                w.write_sample(x);
                w.write_sample(x / 2);
            }
            w.flush().unwrap();
        }
    }
    for c in calls.iter_mut() {
        for w in c.legs.iter_mut().chain([&mut c.stereo]) {
            w.flush().unwrap();
        }
    }
}

fn bench_with<W: Write + Seek>(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    dir: &Path,
    mk: fn(File) -> W,
) {
    let pcm: Vec<i16> = (0..8000).map(|n| ((n * 37) % 4000 - 2000) as i16).collect();
    std::fs::create_dir_all(dir).unwrap();
    let mut calls: Vec<Call<W>> = (0..CALLS).map(|i| open(dir, i, mk)).collect();
    let mut seconds = 0;
    g.bench_function(BenchmarkId::new(name, CALLS), |b| {
        b.iter(|| {
            second(&mut calls, &pcm);
            seconds += 1;
            if seconds % CALL_SECONDS == 0 {
                calls = (0..CALLS).map(|i| open(dir, i, mk)).collect();
            }
        })
    });
    drop(calls);
    let _ = std::fs::remove_dir_all(dir);
}

fn recording(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-recording");
    let mut g = c.benchmark_group("recording_call_second");
    // Bytes per iteration: two mono legs and a stereo file, 8 kHz 16-bit.
    g.throughput(Throughput::Bytes((CALLS * 4 * 16_000) as u64));
    g.sample_size(20);
    bench_with(&mut g, "bufwriter", &root.join("bufwriter"), BufWriter::new);
    bench_with(
        &mut g,
        "pagewriter",
        &root.join("pagewriter"),
        PageWriter::new,
    );
    g.finish();
}

criterion_group!(benches, recording);
criterion_main!(benches);
