//! Analysis latency per final and post-call pipeline time, on one thread
//! (what one analysis arbiter does), from real transcripts: the helpline
//! and billing calls as the engine transcribed them
//! (`tests/analysis/*.session.json`).
//!
//! `N` concurrent calls are simulated by N independent `CallAnalysis`
//! states fed in round-robin (finals interleaved as they would reach one
//! analysis thread), each call replaying one of the transcripts. Prints
//! p50/p99/max per final, then the post-call pipeline time per minute of
//! audio.
//!
//! cargo run --release --example bench_analysis -- 1 100

use earshot::analysis::call::{AnalysisConfig, CallAnalysis, PostCallRun, Resources};
use earshot::session::SessionRecord;
use std::sync::Arc;
use std::time::Instant;

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let res = Arc::new(
        Resources::load(
            AnalysisConfig::default(),
            &root.join("config"),
            &root.join("models"),
        )
        .expect("analysis resources (run scripts/setup)"),
    );
    let calls: Vec<SessionRecord> = ["helpline", "billing"]
        .iter()
        .map(|n| {
            let p = root.join(format!("tests/analysis/{n}.session.json"));
            serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture")).expect("record")
        })
        .collect();
    let ns: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let ns = if ns.is_empty() { vec![1, 100] } else { ns };
    let now = chrono::Utc::now();
    println!("analysis per final (one thread; all analysers on, default config):");
    for n in ns {
        let mut states: Vec<CallAnalysis> =
            (0..n).map(|_| CallAnalysis::new(res.clone())).collect();
        let mut lat = vec![];
        let rounds = calls
            .iter()
            .map(|c| c.transcript_segments.len())
            .max()
            .unwrap_or(0);
        // Warm-up call (first-use costs) not counted.
        for s in &calls[0].transcript_segments {
            CallAnalysis::new(res.clone()).push(s, now);
        }
        let t_all = Instant::now();
        for r in 0..rounds {
            for (i, st) in states.iter_mut().enumerate() {
                let call = &calls[i % calls.len()];
                if let Some(seg) = call.transcript_segments.get(r) {
                    let t0 = Instant::now();
                    st.push(seg, now);
                    lat.push(t0.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
        let total = t_all.elapsed().as_secs_f64();
        let finals = lat.len();
        println!(
            "  {n:>4} calls: {finals} finals, p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs ({:.0} finals/s)",
            pct(&mut lat, 0.5),
            pct(&mut lat, 0.99),
            pct(&mut lat, 1.0),
            finals as f64 / total
        );
    }
    println!("post-call pipeline (analysis, translation, summary, QA; store/notify not included):");
    for c in &calls {
        let audio_min = c.total_audio_duration / 60.0;
        let reps = 20;
        let t0 = Instant::now();
        for _ in 0..reps {
            let run = PostCallRun::new(
                res.clone(),
                c.transcript_segments.clone(),
                vec![],
                Default::default(),
            );
            std::hint::black_box(run.run(now));
        }
        let ms = t0.elapsed().as_secs_f64() * 1000.0 / reps as f64;
        println!(
            "  {}: {:.1} s of audio, {} segments: {ms:.2} ms per run = {:.2} ms per minute of audio",
            c.call_id,
            c.total_audio_duration,
            c.transcript_segments.len(),
            ms / audio_min.max(1e-9)
        );
    }
}
