//! VAD and audio-class detection on real audio: Asterisk prompts (speech) and
//! music on hold, plus synthetic DTMF, call-progress tones, silence and noise.
//!
//! `cargo test -p earshot --test vad_classify -- --nocapture` prints the
//! figures (VAD boundary errors, classifier confusion table).

use std::collections::BTreeMap;

use earshot::classify::{AudioClass, AudioClassifier, ClassSpan, HoldDetector, HoldEvent};
use earshot::vad::{SpeechDetector, SpeechEvent, SpeechRegion, VadConfig, FRAME_SAMPLES};
use proptest::prelude::*;

const SOUNDS: &str = "/usr/share/asterisk/sounds/en";
const MOH: &str = "/usr/share/asterisk/moh";
/// MOH files the music score was fitted on; the tests use the other three.
const MOH_TRAINING: [&str; 2] = ["macroform-cold_day.wav", "macroform-robot_dity.wav"];

/// An 8 kHz 16-bit mono WAV as 16 kHz f32 (linear interpolation).
fn load16k(path: &str) -> Vec<f32> {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(r.spec().sample_rate, 8000, "{path}");
    let s: Vec<f32> = r
        .samples::<i16>()
        .map(|x| f32::from(x.unwrap()) / 32768.0)
        .collect();
    let mut out = Vec::with_capacity(s.len() * 2);
    for (i, &a) in s.iter().enumerate() {
        let b = s.get(i + 1).copied().unwrap_or(a);
        out.push(a);
        out.push((a + b) * 0.5);
    }
    out
}

/// Deterministic white noise with RMS `rms`.
struct Noise(u64);
impl Noise {
    fn next(&mut self, rms: f32) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0; // uniform, rms 1/sqrt(3)
        u * rms * 3f32.sqrt()
    }
    fn fill(&mut self, n: usize, rms: f32) -> Vec<f32> {
        (0..n).map(|_| self.next(rms)).collect()
    }
}

fn db(x: f32) -> f32 {
    10f32.powf(x / 20.0)
}

/// Sum of sines, each of peak amplitude `amp`, from sample `phase0` on.
fn sines(freqs: &[f32], n: usize, amp: f32, phase0: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let t = (i + phase0) as f32 / 16000.0;
            freqs
                .iter()
                .map(|f| (std::f32::consts::TAU * f * t).sin())
                .sum::<f32>()
                * amp
        })
        .collect()
}

/// On/off cadence of a tone for `secs`.
fn cadence(freqs: &[f32], on_ms: &[u32], off_ms: &[u32], secs: f32, amp: f32) -> Vec<f32> {
    let total = (secs * 16000.0) as usize;
    let mut out = Vec::with_capacity(total);
    let mut i = 0;
    while out.len() < total {
        let on = (on_ms[i % on_ms.len()] * 16) as usize;
        out.extend(sines(freqs, on, amp, out.len()));
        out.extend(std::iter::repeat_n(
            0.0,
            (off_ms[i % off_ms.len()] * 16) as usize,
        ));
        i += 1;
    }
    out.truncate(total);
    out
}

fn add_noise(a: &mut [f32], noise: &mut Noise, rms: f32) {
    for x in a.iter_mut() {
        *x += noise.next(rms);
    }
}

/// Start and end (samples) of the part of `a` above -45 dBFS in 10 ms blocks.
fn trim_bounds(a: &[f32]) -> Option<(usize, usize)> {
    let thr = db(-45.0).powi(2);
    let loud: Vec<bool> = a
        .chunks(160)
        .map(|c| c.iter().map(|x| x * x).sum::<f32>() / c.len() as f32 > thr)
        .collect();
    let first = loud.iter().position(|&l| l)?;
    let last = loud.iter().rposition(|&l| l)?;
    Some((first * 160, ((last + 1) * 160).min(a.len())))
}

fn run_vad(audio: &[f32]) -> Vec<SpeechRegion> {
    let mut vad = SpeechDetector::new(VadConfig::default());
    let mut out = Vec::new();
    let mut started: Option<u64> = None;
    let mut t = 0;
    for (i, fr) in audio.chunks_exact(FRAME_SAMPLES).enumerate() {
        t = i as u64 * 20;
        match vad.push(t, fr) {
            Some(SpeechEvent::Started { at_ms }) => {
                assert!(started.is_none());
                started = Some(at_ms);
                assert!(vad.in_speech());
            }
            Some(SpeechEvent::Ended(r)) => {
                assert_eq!(started.take(), Some(r.start_ms));
                out.push(r);
            }
            None => {}
        }
    }
    if let Some(SpeechEvent::Ended(r)) = vad.flush(t + 20) {
        out.push(r);
    }
    out
}

#[test]
fn vad_finds_prompts_on_a_known_timeline() {
    let prompts = [
        "hello-world",
        "conf-now-recording",
        "tt-weasels",
        "queue-thankyou",
        "vm-nobodyavail",
        "agent-pass",
    ];
    let gaps_ms = [1000u32, 1500, 800, 2000, 1200, 900, 1000];
    for (gain_db, noise_db) in [(0.0f32, -65.0f32), (-12.0, -55.0)] {
        vad_timeline(&prompts, &gaps_ms, gain_db, noise_db);
    }
}

/// The prompts, trimmed at -45 dBFS (before the gain), separated by known
/// silences, scaled by `gain_db`, over white noise at `noise_db` dBFS.
fn vad_timeline(prompts: &[&str], gaps_ms: &[u32], gain_db: f32, noise_db: f32) {
    let mut noise = Noise(7);
    let mut audio: Vec<f32> = Vec::new();
    let mut truth = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        audio.extend(std::iter::repeat_n(0.0, gaps_ms[i] as usize * 16));
        let a = load16k(&format!("{SOUNDS}/{p}.wav"));
        let (s, e) = trim_bounds(&a).unwrap();
        let start = audio.len();
        audio.extend(a[s..e].iter().map(|x| x * db(gain_db)));
        truth.push(((start / 16) as u64, (audio.len() / 16) as u64));
    }
    audio.extend(std::iter::repeat_n(0.0, gaps_ms[6] as usize * 16));
    add_noise(&mut audio, &mut noise, db(noise_db));
    println!("VAD timeline: gain {gain_db} dB, noise {noise_db} dBFS");

    let found = run_vad(&audio);
    println!("VAD truth    {truth:?}");
    println!(
        "VAD detected {:?}",
        found
            .iter()
            .map(|r| (r.start_ms, r.end_ms))
            .collect::<Vec<_>>()
    );
    // Each truth region is covered by the detected regions that overlap it,
    // whose outer bounds are within 250 ms of the truth.
    let mut worst = 0i64;
    for &(ts, te) in &truth {
        let hits: Vec<&SpeechRegion> = found
            .iter()
            .filter(|r| r.start_ms < te && r.end_ms > ts)
            .collect();
        assert!(!hits.is_empty(), "missed {ts}..{te}");
        let ds = hits[0].start_ms as i64 - ts as i64;
        let de = hits[hits.len() - 1].end_ms as i64 - te as i64;
        println!(
            "  truth {ts:>6}..{te:>6}  start err {ds:>5} ms  end err {de:>5} ms  pieces {}",
            hits.len()
        );
        worst = worst.max(ds.abs()).max(de.abs());
        assert!(ds.abs() <= 250 && de.abs() <= 250, "{ts}..{te}: {ds} {de}");
    }
    // Nothing detected outside the truth.
    for r in &found {
        assert!(
            truth
                .iter()
                .any(|&(ts, te)| r.start_ms < te && r.end_ms > ts),
            "false region {r:?}"
        );
    }
    let t_total: u64 = truth.iter().map(|(s, e)| e - s).sum();
    let f_total: u64 = found.iter().map(|r| r.duration_ms()).sum();
    let err = (f_total as f64 - t_total as f64) / t_total as f64 * 100.0;
    println!("VAD total speech: truth {t_total} ms, detected {f_total} ms ({err:+.1} %), worst boundary error {worst} ms");
    assert!(err.abs() <= 5.0);
}

#[test]
fn vad_ignores_silence_and_low_noise() {
    let n = 10 * 16000;
    assert!(run_vad(&vec![0.0; n]).is_empty());
    for (seed, level) in [(1u64, -60.0f32), (2, -55.0), (3, -50.0)] {
        let a = Noise(seed).fill(n, db(level));
        let r = run_vad(&a);
        println!("VAD on {level} dBFS white noise: {} regions", r.len());
        assert!(r.is_empty(), "{level} dB noise: {r:?}");
    }
}

#[test]
fn vad_gap_closes_region_and_late_frames_are_ignored() {
    let a = load16k(&format!("{SOUNDS}/tt-weasels.wav"));
    let (s, _) = trim_bounds(&a).unwrap();
    let speech = &a[s..];
    let mut vad = SpeechDetector::new(VadConfig::default());
    let mut events = Vec::new();
    // One second of speech, then a 5 s gap in the timestamps, then speech.
    for (i, fr) in speech.chunks_exact(FRAME_SAMPLES).take(50).enumerate() {
        events.extend(vad.push(i as u64 * 20, fr));
    }
    assert!(vad.in_speech());
    // A duplicate (late) frame is ignored.
    assert_eq!(vad.push(500, &speech[..FRAME_SAMPLES]), None);
    for (i, fr) in speech.chunks_exact(FRAME_SAMPLES).take(50).enumerate() {
        events.extend(vad.push(6000 + i as u64 * 20, fr));
    }
    events.extend(vad.flush(7000));
    let regions: Vec<SpeechRegion> = events
        .iter()
        .filter_map(|e| match e {
            SpeechEvent::Ended(r) => Some(*r),
            _ => None,
        })
        .collect();
    println!("gap events: {events:?}");
    assert_eq!(regions.len(), 2, "{events:?}");
    assert!(regions[0].end_ms <= 1000);
    assert!(regions[1].start_ms >= 6000 && regions[1].end_ms <= 7000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn vad_never_panics_and_regions_are_ordered(
        frames in prop::collection::vec(
            (0u64..3, prop::collection::vec(prop_oneof![
                Just(0.0f32), Just(f32::NAN), Just(f32::INFINITY), -2.0f32..2.0,
            ], 0..400), any::<bool>()),
            1..120),
        mode in 0u8..6, start_frames in 0u32..5, hangover in 0u32..500, min_speech in 0u32..300,
    ) {
        let mut vad = SpeechDetector::new(VadConfig { mode, start_frames, hangover_ms: hangover, min_speech_ms: min_speech });
        let mut cls = AudioClassifier::new();
        let mut t = 0u64;
        let mut regions = Vec::new();
        let mut spans = Vec::new();
        for (step, samples, loud) in frames {
            // step 0: a late/duplicate frame, 1: contiguous, 2: a gap
            t = match step { 0 => t.saturating_sub(10), 1 => t + 20, _ => t + 20 + 137 };
            let frame: Vec<f32> = if loud {
                // Loud periodic content so that the VAD does fire sometimes.
                (0..FRAME_SAMPLES).map(|i| samples.get(i % samples.len().max(1)).copied().unwrap_or(0.5) * ((i % 40) as f32 / 40.0)).collect()
            } else { samples };
            if let Some(SpeechEvent::Ended(r)) = vad.push(t, &frame) { regions.push(r); }
            spans.extend(cls.push(t, &frame, vad.last_frame_voiced()));
        }
        if let Some(SpeechEvent::Ended(r)) = vad.flush(t + 20) { regions.push(r); }
        spans.extend(cls.flush(t + 20));
        for r in &regions { prop_assert!(r.start_ms < r.end_ms || min_speech == 0); }
        for w in regions.windows(2) { prop_assert!(w[0].end_ms <= w[1].start_ms, "{:?}", w); }
        for s in &spans { prop_assert!(s.start_ms < s.end_ms); }
        for w in spans.windows(2) { prop_assert!(w[0].end_ms <= w[1].start_ms, "{:?}", w); }
    }
}

// ---------------------------------------------------------------- classifier

/// Run the VAD + classifier over `audio`; all spans, flushed at the end.
fn classify(audio: &[f32]) -> Vec<ClassSpan> {
    let mut vad = SpeechDetector::new(VadConfig::default());
    let mut c = AudioClassifier::new();
    let mut spans = Vec::new();
    let mut t = 0;
    for (i, fr) in audio.chunks_exact(FRAME_SAMPLES).enumerate() {
        t = i as u64 * 20;
        let _ = vad.push(t, fr);
        spans.extend(c.push(t, fr, vad.last_frame_voiced()));
    }
    spans.extend(c.flush(t + 20));
    for w in spans.windows(2) {
        assert_eq!(
            w[0].end_ms, w[1].start_ms,
            "spans are contiguous: {spans:?}"
        );
    }
    spans
}

/// The class covering most of each whole second.
fn per_second(spans: &[ClassSpan], secs: u64) -> Vec<AudioClass> {
    (0..secs)
        .map(|k| {
            let (ws, we) = (k * 1000, k * 1000 + 1000);
            let mut cover: BTreeMap<u8, (u64, AudioClass)> = BTreeMap::new();
            for s in spans {
                let o = s.end_ms.min(we).saturating_sub(s.start_ms.max(ws));
                if o > 0 {
                    cover.entry(s.class as u8).or_insert((0, s.class)).0 += o;
                }
            }
            cover
                .values()
                .max_by_key(|(o, _)| *o)
                .map(|(_, c)| *c)
                .unwrap_or(AudioClass::Silence)
        })
        .collect()
}

const CLASSES: [AudioClass; 5] = [
    AudioClass::Speech,
    AudioClass::Silence,
    AudioClass::Music,
    AudioClass::Dtmf,
    AudioClass::Tone,
];

fn idx(c: AudioClass) -> usize {
    CLASSES.iter().position(|&x| x == c).unwrap()
}

/// Held-out prompts (the music score was fitted on every third prompt in
/// name order, 0-based index 2, 5, 8, …), trimmed and joined by 200 ms pauses.
fn held_out_speech() -> Vec<f32> {
    let mut names: Vec<String> = std::fs::read_dir(SOUNDS)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".wav"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if i % 3 == 2 {
            continue;
        }
        let a = load16k(&format!("{SOUNDS}/{n}"));
        if let Some((s, e)) = trim_bounds(&a) {
            // Skip non-speech "prompts" (beeps, tones) by name.
            if n.contains("beep") || n.contains("tone") || n.contains("jingle") {
                continue;
            }
            out.extend_from_slice(&a[s..e]);
            out.extend(std::iter::repeat_n(0.0, 3200));
        }
    }
    out
}

fn held_out_music() -> Vec<Vec<f32>> {
    let mut names: Vec<String> = std::fs::read_dir(MOH)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".wav") && !MOH_TRAINING.contains(&n.as_str()))
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    names
        .iter()
        .map(|n| load16k(&format!("{MOH}/{n}")))
        .collect()
}

/// Random DTMF dialling: digits of 70–200 ms, pauses of 60–400 ms, levels
/// -8..-20 dBFS per tone with up to 4 dB twist, over -50 dBFS noise.
fn dtmf_dialling(secs: f32, seed: u64) -> Vec<f32> {
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let mut rng = Noise(seed);
    let mut u = |lo: f32, hi: f32| lo + (rng.next(1.0 / 3f32.sqrt()) * 0.5 + 0.5) * (hi - lo);
    let total = (secs * 16000.0) as usize;
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let r = rows[(u(0.0, 3.999)) as usize];
        let c = cols[(u(0.0, 3.999)) as usize];
        let on = (u(70.0, 200.0) * 16.0) as usize;
        let lvl = db(u(-20.0, -8.0));
        let twist = db(u(-4.0, 4.0));
        let base = out.len();
        out.extend(sines(&[r], on, lvl, base));
        for (i, x) in sines(&[c], on, lvl * twist, base).into_iter().enumerate() {
            out[base + i] += x;
        }
        out.extend(std::iter::repeat_n(0.0, (u(60.0, 400.0) * 16.0) as usize));
    }
    out.truncate(total);
    let mut n = Noise(seed ^ 0xabc);
    add_noise(&mut out, &mut n, db(-55.0));
    out
}

fn tones() -> Vec<(&'static str, Vec<f32>)> {
    let amp = db(-16.0);
    let mut v = vec![
        (
            "ringback",
            cadence(&[440.0, 480.0], &[2000], &[4000], 30.0, amp),
        ),
        ("busy", cadence(&[480.0, 620.0], &[500], &[500], 20.0, amp)),
        (
            "reorder",
            cadence(&[480.0, 620.0], &[250], &[250], 10.0, amp),
        ),
        ("dial", cadence(&[350.0, 440.0], &[10_000], &[0], 10.0, amp)),
        (
            "uk-ringback",
            cadence(&[400.0, 450.0], &[400, 400], &[200, 2000], 20.0, amp),
        ),
    ];
    // SIT: three 330 ms tones in a row, then a second of silence.
    let mut sit = Vec::new();
    while sit.len() < 10 * 16000 {
        for f in [913.8, 1370.6, 1776.7] {
            let base = sit.len();
            sit.extend(sines(&[f], 330 * 16, amp, base));
        }
        sit.extend(std::iter::repeat_n(0.0, 16000));
    }
    sit.truncate(10 * 16000);
    v.push(("sit", sit));
    let mut n = Noise(99);
    for (_, a) in v.iter_mut() {
        add_noise(a, &mut n, db(-55.0));
    }
    v
}

#[test]
fn classifier_confusion_on_held_out_audio() {
    // (truth, name, audio)
    let mut sets: Vec<(AudioClass, String, Vec<f32>)> = Vec::new();
    sets.push((AudioClass::Speech, "prompts".into(), held_out_speech()));
    for (i, m) in held_out_music().into_iter().enumerate() {
        sets.push((AudioClass::Music, format!("moh{i}"), m));
    }
    for seed in 1..=4 {
        sets.push((
            AudioClass::Dtmf,
            format!("dtmf{seed}"),
            dtmf_dialling(8.0, seed),
        ));
    }
    for (name, a) in tones() {
        sets.push((AudioClass::Tone, name.into(), a));
    }
    sets.push((AudioClass::Silence, "zero".into(), vec![0.0; 10 * 16000]));
    for (seed, level) in [(5u64, -60.0f32), (6, -50.0)] {
        sets.push((
            AudioClass::Silence,
            format!("noise{level}"),
            Noise(seed).fill(10 * 16000, db(level)),
        ));
    }

    let mut confusion = [[0u32; 5]; 5];
    for (truth, name, audio) in &sets {
        let spans = classify(audio);
        let secs = (audio.len() / 16000) as u64;
        let got = per_second(&spans, secs);
        let mut row = [0u32; 5];
        for g in &got {
            row[idx(*g)] += 1;
        }
        println!("{name:>12} ({truth:?}, {secs} s): {row:?}");
        for (i, n) in row.iter().enumerate() {
            confusion[idx(*truth)][i] += n;
        }
    }
    println!("\nconfusion over 1 s windows (rows: truth, columns: detected)");
    print!("{:>10}", "");
    for c in CLASSES {
        print!("{:>9}", format!("{c:?}"));
    }
    println!("{:>9}", "recall");
    let mut recalls = [0f64; 5];
    for (i, row) in confusion.iter().enumerate() {
        print!("{:>10}", format!("{:?}", CLASSES[i]));
        for n in row {
            print!("{n:>9}");
        }
        let total: u32 = row.iter().sum();
        recalls[i] = f64::from(row[i]) / f64::from(total.max(1)) * 100.0;
        println!("{:>8.1}%", recalls[i]);
    }
    for (i, r) in recalls.iter().enumerate() {
        let min = MIN_RECALL[i];
        assert!(*r >= min, "{:?}: {r:.1} % < {min} %", CLASSES[i]);
    }
}

/// Per-class minimum recall on 1 s windows (measured, then set a little
/// below what the current model reaches).
const MIN_RECALL: [f64; 5] = [97.0, 95.0, 92.0, 95.0, 95.0];

#[test]
fn hold_detector_on_music_between_speech() {
    let speech = held_out_speech();
    let music = &held_out_music()[0];
    let mut audio = Vec::new();
    audio.extend_from_slice(&speech[..3 * 16000]);
    let music_start = audio.len() as u64 / 16;
    audio.extend_from_slice(&music[30 * 16000..35 * 16000]);
    let music_end = audio.len() as u64 / 16;
    audio.extend_from_slice(&speech[3 * 16000..6 * 16000]);

    let mut vad = SpeechDetector::new(VadConfig::default());
    let mut c = AudioClassifier::new();
    let mut hold = HoldDetector::new(3000);
    let mut events = Vec::new();
    let mut last_since = None;
    let mut t = 0;
    for (i, fr) in audio.chunks_exact(FRAME_SAMPLES).enumerate() {
        t = i as u64 * 20;
        let _ = vad.push(t, fr);
        if let Some(span) = c.push(t, fr, vad.last_frame_voiced()) {
            println!("  span {span:?}");
        }
        if let Some((cur, since)) = c.current_span() {
            if last_since != Some(since) {
                last_since = Some(since);
                events.extend(hold.update(since, cur));
            }
            events.extend(hold.update(c.decided_ms(), cur));
        }
    }
    events.extend(hold.flush(t + 20));
    println!("music {music_start}..{music_end}: hold events {events:?}");
    assert_eq!(events.len(), 2, "{events:?}");
    let HoldEvent::Started { at_ms } = events[0] else {
        panic!("{events:?}")
    };
    println!(
        "hold: Started {} ms after the music began, start error {} ms, end error {} ms",
        at_ms as i64 - music_start as i64,
        match events[1] {
            HoldEvent::Ended { start_ms, .. } => start_ms as i64 - music_start as i64,
            _ => 0,
        },
        match events[1] {
            HoldEvent::Ended { end_ms, .. } => end_ms as i64 - music_end as i64,
            _ => 0,
        },
    );
    assert!(at_ms.abs_diff(music_start + 3000) <= 800, "{at_ms}");
    let HoldEvent::Ended { start_ms, end_ms } = events[1] else {
        panic!("{events:?}")
    };
    assert!(start_ms.abs_diff(music_start) <= 800, "{start_ms}");
    assert!(end_ms.abs_diff(music_end) <= 800, "{end_ms}");
}

#[test]
fn hold_detector_unit() {
    let mut h = HoldDetector::new(3000).with_grace(0);
    assert_eq!(h.update(0, AudioClass::Speech), None);
    let mut ev = Vec::new();
    for t in (1000..6000).step_by(20) {
        ev.extend(h.update(t, AudioClass::Music));
    }
    assert_eq!(ev, vec![HoldEvent::Started { at_ms: 4000 }]);
    assert!(h.on_hold());
    assert_eq!(
        h.update(6000, AudioClass::Speech),
        Some(HoldEvent::Ended {
            start_ms: 1000,
            end_ms: 6000
        })
    );
    // Short music is not hold.
    assert_eq!(h.update(7000, AudioClass::Music), None);
    assert_eq!(h.update(9000, AudioClass::Silence), None);
    // Fed only at class changes: still reported when it ends.
    assert_eq!(h.update(10_000, AudioClass::Music), None);
    assert_eq!(
        h.update(20_000, AudioClass::Speech),
        Some(HoldEvent::Ended {
            start_ms: 10_000,
            end_ms: 20_000
        })
    );
    // Time going backwards does not panic.
    assert_eq!(h.update(5, AudioClass::Music), None);
    assert_eq!(h.update(0, AudioClass::Speech), None);
    assert_eq!(h.flush(0), None);

    // With the default grace, a 600 ms interruption does not end the hold.
    let mut h = HoldDetector::new(3000);
    let mut ev = Vec::new();
    for t in (0..10_000u64).step_by(20) {
        let class = if (2000..2600).contains(&t) || t >= 8000 {
            AudioClass::Speech
        } else {
            AudioClass::Music
        };
        ev.extend(h.update(t, class));
    }
    assert_eq!(
        ev,
        vec![
            HoldEvent::Started { at_ms: 3000 },
            HoldEvent::Ended {
                start_ms: 0,
                end_ms: 8000
            }
        ]
    );
    // Fed at class changes only, with grace: music 0..5000, then speech.
    let mut h = HoldDetector::new(3000);
    assert_eq!(h.update(0, AudioClass::Music), None);
    assert_eq!(h.update(5000, AudioClass::Speech), None);
    assert_eq!(
        h.update(9000, AudioClass::Silence),
        Some(HoldEvent::Ended {
            start_ms: 0,
            end_ms: 5000
        })
    );
    assert_eq!(h.flush(10_000), None);
}

#[test]
fn dtmf_digits_are_recognised_per_frame() {
    let keys = "123A456B789C*0#D";
    let rows = [697.0, 770.0, 852.0, 941.0];
    let cols = [1209.0, 1336.0, 1477.0, 1633.0];
    let mut c = AudioClassifier::new();
    let mut t = 0;
    for (k, key) in keys.chars().enumerate() {
        let a = sines(&[rows[k / 4], cols[k % 4]], 100 * 16, 0.2, 0);
        let mut seen = BTreeMap::new();
        for fr in a.chunks_exact(FRAME_SAMPLES) {
            let _ = c.push(t, fr, false);
            t += 20;
            *seen.entry(c.last_features().dtmf_digit).or_insert(0) += 1;
        }
        assert_eq!(seen.get(&Some(key)), Some(&5), "{key}: {seen:?}");
    }
}
