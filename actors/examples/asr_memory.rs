//! A whisper state's memory against the length of what it decodes
//! (`scripts/bench-asr-memory` drives it, one process per mode).
//!
//! Loads one recogniser, optionally warms it up as a pool worker does
//! (`--warm-up-ms`, see `AsrSettings::warm_up_ms`), then decodes real
//! speech (tests/audio/monologue.wav, 8 kHz, upsampled) in windows of
//! growing length, twice over, and prints the process RSS after each
//! decode as tab-separated `round seconds rss_mb decode_ms`.
//!
//! cargo run --release -p earshot-actors --example asr_memory -- --warm-up-ms 15400

use clap::Parser;
use earshot::codec::Resampler;
use earshot_actors::asr::{AsrSettings, AudioCtx, Recognizer};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "models/ggml-tiny.en-q8_0.bin")]
    model: PathBuf,
    #[arg(long, default_value = "tests/audio/monologue.wav")]
    audio: PathBuf,
    /// Silence decoded first (0: none).
    #[arg(long, default_value_t = 0)]
    warm_up_ms: u64,
    /// Window lengths in seconds, in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,12,15,3,15")]
    seconds: Vec<f64>,
}

fn rss_mb() -> f64 {
    earshot_actors::metrics::process().map_or(0.0, |p| p.rss_bytes as f64 / (1024.0 * 1024.0))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut wav = hound::WavReader::open(&args.audio)?;
    let rate = wav.spec().sample_rate;
    let x: Vec<f32> = wav
        .samples::<i16>()
        .map(|s| s.map(|s| f32::from(s) / 32768.0))
        .collect::<Result<_, _>>()?;
    let mut speech = vec![];
    Resampler::new(rate, 16_000)?.process(&x, &mut speech);
    let mut rec = Recognizer::load(AsrSettings {
        model: args.model,
        workers: 1,
        threads: 1,
        language: None,
        translate: false,
        model_translates: None,
        queue: 1,
        audio_ctx: AudioCtx::Auto,
        pack: false,
        warm_up_ms: args.warm_up_ms,
    })?;
    println!("loaded\t-\t{:.0}\t-", rss_mb());
    if args.warm_up_ms > 0 {
        let t0 = Instant::now();
        rec.warm_up(args.warm_up_ms).map_err(anyhow::Error::msg)?;
        let ms = t0.elapsed().as_millis();
        println!(
            "warm-up\t{:.1}\t{:.0}\t{ms}",
            args.warm_up_ms as f64 / 1000.0,
            rss_mb()
        );
    }
    for round in 1..=2 {
        for &secs in &args.seconds {
            let n = ((secs * 16_000.0) as usize).min(speech.len());
            let t0 = Instant::now();
            rec.recognize(&speech[..n]).map_err(anyhow::Error::msg)?;
            let ms = t0.elapsed().as_millis();
            println!("{round}\t{secs}\t{:.0}\t{ms}", rss_mb());
        }
    }
    Ok(())
}
