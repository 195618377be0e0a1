//! Audio-class detection (speech, silence, music, DTMF, call-progress tones)
//! and hold detection, on the same 20 ms / 16 kHz frames as [`crate::vad`].
//!
//! # How
//!
//! Every frame gets cheap features ([`FrameFeatures`]): energy (dBFS), zero
//! crossing rate, and from one 512-point real FFT of the Hann-windowed frame
//! (plan and buffers made once per classifier, nothing allocated per frame),
//! restricted to the telephone band 100–3800 Hz: spectral flatness, spectral
//! centroid, and the two strongest spectral peaks (frequency by parabolic
//! interpolation, and *tonality* = power within the peaks' main lobes over the
//! band's total power). Each frame is then marked:
//!
//! * *silent*: energy below [`SILENCE_DB`] (−45 dBFS);
//! * *dtmf*: the two peaks hold ≥ 80 % of the power, one within 3.5 % of a
//!   DTMF row frequency (697/770/852/941 Hz), the other of a column frequency
//!   (1209/1336/1477/1633 Hz), twist within 10 dB;
//!   the digit is kept ([`FrameFeatures::dtmf_digit`]);
//! * *tone*: not DTMF, and in this frame and the previous one the two peaks
//!   hold ≥ 95 % of the power, the spectrum is far from flat (flatness
//!   < 0.02) and hardly changed (flux < 0.05): ringback 440+480, busy
//!   480+620, dial 350+440, SIT 913.8/1370.6/1776.7, UK 400+450 and any other
//!   plain tone, including beats that a 20 ms frame cannot resolve. Voiced
//!   speech and music rarely pass all three.
//!
//! Frames are then judged over a window of [`WINDOW_FRAMES`] frames (1 s)
//! centred on the frame, so decisions lag the input by half a window
//! (500 ms):
//!
//! 1. DTMF if at least 3 frames are DTMF and they are at least half of the
//!    non-silent frames;
//! 2. tone if at least 10 frames are tone and they are at least 60 % of the
//!    non-silent frames (on/off cadences such as busy 0.5/0.5 s qualify);
//! 3. silence if fewer than 25 % of the frames are non-silent;
//! 4. otherwise music or speech. Speech is syllabic: its energy rises and
//!    falls several times a second, with near-pauses between syllables, it
//!    alternates voiced (peaky) and unvoiced (flat) spectra and its spectrum
//!    keeps changing. Music is steadier on all counts. A small logistic model
//!    ([`WindowStats::music_score`]) combines the energy envelope's spread
//!    and dips, the spread of spectral flatness and the mean spectral flux,
//!    fitted on windows of two of the five Asterisk music-on-hold files and
//!    a third of the English prompts (the tests score the rest). The score
//!    is smoothed over time (0.5 s time constant). The VAD's `speech_hint`
//!    only tips the balance when it mostly says *not* speech over non-silent
//!    audio: music fools it into saying speech, so "speech" proves nothing.
//!
//! A new class must win [`SWITCH_FRAMES`] consecutive decisions to replace
//! the current one; the span boundary is put at the first of them. During a
//! tone, silence of up to [`TONE_PAUSE_MAX_MS`] (ringback's 4 s off phase) is
//! part of the tone; a longer pause, or another class, ends the tone at the
//! start of the pause (the pause then becomes a silence span).
//!
//! A timestamp gap (a frame starting a frame or more after the previous one
//! ended) closes the current span at the end of the previous frame and starts
//! afresh; frames starting before the previous frame's end are ignored.
//! Frames of the wrong length are zero-padded or truncated; non-finite
//! samples count as 0. Nothing panics on any input.
//!
//! [`HoldDetector`]: music lasting at least `min_ms` (default 3 s) is hold.

use std::sync::Arc;

use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

/// Frames quieter than this are digital silence: no FFT for them.
const DIGITAL_SILENCE_DB: f32 = -80.0;

use crate::vad::{FRAME_MS, FRAME_SAMPLES};

/// What a stretch of audio is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioClass {
    /// Someone talking.
    Speech,
    /// Nothing (or only faint noise).
    Silence,
    /// Music (typically music on hold).
    Music,
    /// DTMF digits.
    Dtmf,
    /// Call-progress or other steady tones (ringback, busy, dial, SIT).
    Tone,
}

/// A finished stretch of one class, `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassSpan {
    /// The class.
    pub class: AudioClass,
    /// Start on the participant timeline.
    pub start_ms: u64,
    /// End on the participant timeline.
    pub end_ms: u64,
}

/// Frames under this energy (dBFS, mean square; a full-scale sine is −3) are silent.
pub const SILENCE_DB: f32 = -45.0;
/// Frames in the decision window (1 s).
pub const WINDOW_FRAMES: usize = 50;
/// How far classification lags the input (half a window).
pub const LAG_MS: u64 = (WINDOW_FRAMES as u64 / 2) * FRAME_MS as u64;
/// Consecutive decisions a new class needs to take over (200 ms).
pub const SWITCH_FRAMES: u32 = 10;
/// Longest silence inside a tone cadence (ringback is 2 s on, 4 s off).
pub const TONE_PAUSE_MAX_MS: u64 = 4500;

/// A tone frame: the two peaks hold this share of the power…
const TONE_TONALITY: f32 = 0.95;
/// …the spectrum is this far from flat (pure tones: ~1e-6)…
const TONE_FLATNESS: f32 = 0.02;
/// …and it hardly changed since the previous frame.
const TONE_FLUX: f32 = 0.05;
/// Time constant (decisions = frames) of the music-score smoothing.
const SCORE_SMOOTHING_FRAMES: f32 = 25.0;
const FFT_LEN: usize = 512;
const SAMPLE_RATE: f32 = 16_000.0;
const BIN_HZ: f32 = SAMPLE_RATE / FFT_LEN as f32;
const BAND_LO: usize = 3; // 93.75 Hz
const BAND_HI: usize = 121; // 3781 Hz
/// Half-width of a Hann main lobe (320-sample window) in 512-point bins.
const LOBE: usize = 3;
const DTMF_ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const DTMF_COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const DTMF_KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// Per-frame features (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct FrameFeatures {
    /// Mean-square energy in dBFS (floored at −100).
    pub energy_db: f32,
    /// Zero crossings per sample.
    pub zcr: f32,
    /// Spectral flatness over 100–3800 Hz, 0 (pure tone) ..= 1 (white noise).
    pub flatness: f32,
    /// Spectral centroid over 100–3800 Hz, Hz.
    pub centroid_hz: f32,
    /// Spectral change from the previous frame: 1 − cosine similarity of the
    /// band's magnitude spectra (0 = same spectrum).
    pub flux: f32,
    /// Share of band power in the strongest peak's main lobe.
    pub tonality1: f32,
    /// Share of band power in the two strongest peaks' main lobes.
    pub tonality2: f32,
    /// Frequency of the strongest peak, Hz.
    pub peak1_hz: f32,
    /// Frequency of the second peak, Hz.
    pub peak2_hz: f32,
    /// Energy below [`SILENCE_DB`].
    pub silent: bool,
    /// A DTMF digit, if this frame is one.
    pub dtmf_digit: Option<char>,
    /// A steady tone (not DTMF).
    pub tone: bool,
    /// The VAD's hint for this frame.
    pub speech_hint: bool,
}

/// Statistics of one decision window (exposed for diagnostics and tuning).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct WindowStats {
    /// Frames in the window.
    pub frames: u32,
    /// Non-silent frames.
    pub active: u32,
    /// DTMF frames.
    pub dtmf: u32,
    /// Tone frames.
    pub tone: u32,
    /// Share of non-silent frames the VAD called speech.
    pub hint_ratio: f32,
    /// Standard deviation of frame energy (dB, floored at −70) over the window.
    pub energy_std_db: f32,
    /// Share of frames more than 15 dB below the window's loudest frame.
    pub dip_ratio: f32,
    /// Standard deviation of spectral flatness over non-silent frames.
    pub flatness_std: f32,
    /// Mean spectral flux over non-silent frames.
    pub flux_mean: f32,
    /// Mean tonality (top two peaks) over non-silent frames.
    pub tonality_mean: f32,
    /// Music-versus-speech score: positive means music.
    pub music_score: f32,
}

/// What a decision reads of one frame of the window: 32 bytes instead of
/// 56 (a whole `FrameFeatures` and its time), as every stream keeps a
/// window of them and every frame's decision reads all of it again.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    t_ms: u64,
    energy_db: f32,
    flatness: f32,
    tonality2: f32,
    flux: f32,
    silent: bool,
    speech_hint: bool,
    dtmf: bool,
    tone: bool,
}

impl Slot {
    fn new(t_ms: u64, f: &FrameFeatures) -> Self {
        Slot {
            t_ms,
            energy_db: f.energy_db,
            flatness: f.flatness,
            tonality2: f.tonality2,
            flux: f.flux,
            silent: f.silent,
            speech_hint: f.speech_hint,
            dtmf: f.dtmf_digit.is_some(),
            tone: f.tone,
        }
    }
}

/// Turns frames into class spans. One per stream; `Send`.
pub struct AudioClassifier {
    /// Magnitudes of the previous frame's band (for the flux).
    prev_mag: Vec<f32>,
    /// Ring of the last `WINDOW_FRAMES` frames (oldest at `head`).
    ring: Vec<Slot>,
    head: usize,
    len: usize,
    next_expected: Option<u64>,
    prev_tonal: bool,
    /// Current class and the start of its span.
    current: Option<(AudioClass, u64)>,
    /// Candidate class, the time of its first decision, how many in a row.
    candidate: Option<(AudioClass, u64, u32)>,
    /// During a tone: when the present silence began.
    tone_pause: Option<u64>,
    last_features: FrameFeatures,
    last_stats: WindowStats,
    /// Start of the frame the last decision was about.
    decided_t: u64,
    /// Music score smoothed over decisions, and decisions since it was fed.
    score_ema: f32,
    since_scored: u32,
}

impl std::fmt::Debug for AudioClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioClassifier")
            .field("current", &self.current)
            .field("candidate", &self.candidate)
            .field("tone_pause", &self.tone_pause)
            .finish_non_exhaustive()
    }
}

impl Default for AudioClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl AudioClassifier {
    /// A classifier. The FFT plan, window and FFT buffers are shared by
    /// every classifier on the thread (thousands of streams share them);
    /// a classifier itself keeps only what must outlive a frame.
    pub fn new() -> Self {
        AudioClassifier {
            prev_mag: vec![0.0; FFT_LEN / 2 + 1],
            ring: vec![Slot::default(); WINDOW_FRAMES],
            head: 0,
            len: 0,
            next_expected: None,
            prev_tonal: false,
            current: None,
            candidate: None,
            tone_pause: None,
            last_features: FrameFeatures::default(),
            last_stats: WindowStats::default(),
            decided_t: 0,
            score_ema: 0.0,
            since_scored: u32::MAX,
        }
    }

    /// Feed one frame starting at `t_ms`; `speech_hint` is the VAD's raw
    /// verdict for it. Returns a finished span when the class changes (the
    /// decision lags the input by half a window).
    pub fn push(&mut self, t_ms: u64, frame: &[f32], speech_hint: bool) -> Option<ClassSpan> {
        let mut out = None;
        match self.next_expected {
            Some(next) if t_ms < next => return None,
            Some(next) if t_ms >= next.saturating_add(u64::from(FRAME_MS)) => {
                out = self.finish(next);
            }
            _ => {}
        }
        self.next_expected = Some(t_ms.saturating_add(u64::from(FRAME_MS)));
        let f = self.features(frame, speech_hint);
        self.last_features = f;
        // Ring: when full, overwrite the oldest.
        let slot = Slot::new(t_ms, &f);
        if self.len < WINDOW_FRAMES {
            let idx = (self.head + self.len) % WINDOW_FRAMES;
            self.ring[idx] = slot;
            self.len += 1;
        } else {
            self.ring[self.head] = slot;
            self.head = (self.head + 1) % WINDOW_FRAMES;
        }
        // Decide for the frame half a window back, from what surrounds it.
        let half = WINDOW_FRAMES / 2;
        if self.len > half {
            let center = self.len - 1 - half;
            let center_t = self.slot(center).t_ms;
            self.decided_t = center_t;
            let first_t = self.slot(0).t_ms;
            let (class, stats) = self.window_class();
            let class = self.smooth_active(class, &stats);
            self.last_stats = stats;
            if out.is_none() {
                out = self.decide(center_t, class, first_t);
            } else {
                // A gap span is already being returned; only initialise.
                let _ = self.decide(center_t, class, first_t);
            }
        }
        out
    }

    /// The class of the span in progress (`None` until the first decision).
    pub fn current(&self) -> Option<AudioClass> {
        self.current.map(|c| c.0)
    }

    /// End of input at `t_ms`: the span in progress, ending at `t_ms` (or at
    /// the start of a pause if it is a tone followed by silence). Frames not
    /// yet decided belong to it; if no decision was made yet, the frames seen
    /// so far decide.
    pub fn flush(&mut self, t_ms: u64) -> Option<ClassSpan> {
        self.finish(t_ms)
    }

    /// The class of the span in progress and its start (the start is put
    /// back to where the new class began, before it was confirmed).
    pub fn current_span(&self) -> Option<(AudioClass, u64)> {
        self.current
    }

    /// Start of the frame that [`current`](Self::current) describes: the
    /// classification lags the input by [`LAG_MS`]. Feed this time, with
    /// `current()`, to [`HoldDetector::update`].
    pub fn decided_ms(&self) -> u64 {
        self.decided_t
    }

    /// Features of the last frame pushed.
    pub fn last_features(&self) -> FrameFeatures {
        self.last_features
    }

    /// Statistics of the last decision window.
    pub fn last_window(&self) -> WindowStats {
        self.last_stats
    }

    fn slot(&self, i: usize) -> &Slot {
        &self.ring[(self.head + i) % WINDOW_FRAMES]
    }

    /// The window's frames, oldest first (`slot(0)`, `slot(1)`, ...).
    fn slots(&self) -> impl Iterator<Item = &Slot> {
        let first = (WINDOW_FRAMES - self.head).min(self.len);
        self.ring[self.head..self.head + first]
            .iter()
            .chain(&self.ring[..self.len - first])
    }

    fn finish(&mut self, t_ms: u64) -> Option<ClassSpan> {
        let span = match self.current.take() {
            Some((class, start)) => {
                let end = match (class, self.tone_pause) {
                    (AudioClass::Tone, Some(p)) => p,
                    _ => t_ms,
                };
                Some(ClassSpan {
                    class,
                    start_ms: start,
                    end_ms: end.max(start),
                })
            }
            None if self.len > 0 => {
                let (class, _) = self.window_class();
                let start = self.slot(0).t_ms;
                Some(ClassSpan {
                    class,
                    start_ms: start,
                    end_ms: t_ms.max(start),
                })
            }
            None => None,
        };
        self.len = 0;
        self.head = 0;
        self.candidate = None;
        self.tone_pause = None;
        self.prev_tonal = false;
        self.next_expected = None;
        self.since_scored = u32::MAX;
        span.filter(|s| s.end_ms > s.start_ms)
    }

    /// Hysteresis on window decisions. `t` is the decided frame's start.
    fn decide(&mut self, t: u64, class: AudioClass, first_t: u64) -> Option<ClassSpan> {
        let Some((cur, start)) = self.current else {
            self.current = Some((class, first_t));
            return None;
        };
        if class == cur {
            self.candidate = None;
            self.tone_pause = None;
            return None;
        }
        if cur == AudioClass::Tone && class == AudioClass::Silence {
            let pause = *self.tone_pause.get_or_insert(t);
            self.candidate = None;
            if t.saturating_sub(pause) <= TONE_PAUSE_MAX_MS {
                return None;
            }
            // The cadence stopped: the tone ended where the pause began.
            self.tone_pause = None;
            self.current = Some((AudioClass::Silence, pause));
            return Some(ClassSpan {
                class: AudioClass::Tone,
                start_ms: start,
                end_ms: pause,
            });
        }
        let cand = match self.candidate {
            Some((c, since, n)) if c == class => (c, since, n + 1),
            _ => (class, t, 1),
        };
        self.candidate = Some(cand);
        if cand.2 < SWITCH_FRAMES {
            return None;
        }
        if let (AudioClass::Tone, Some(pause)) = (cur, self.tone_pause.take()) {
            // Tone, then a pause, then something else: close the tone at the
            // pause; the pause becomes silence and the candidate (kept) takes
            // over on the next decision.
            if pause < cand.1 {
                self.current = Some((AudioClass::Silence, pause));
                return Some(ClassSpan {
                    class: AudioClass::Tone,
                    start_ms: start,
                    end_ms: pause,
                });
            }
        }
        self.candidate = None;
        let boundary = cand.1.max(start);
        self.current = Some((class, boundary));
        (boundary > start).then_some(ClassSpan {
            class: cur,
            start_ms: start,
            end_ms: boundary,
        })
    }

    fn window_class(&self) -> (AudioClass, WindowStats) {
        let n = self.len.max(1);
        let mut st = WindowStats {
            frames: self.len as u32,
            ..WindowStats::default()
        };
        let mut hint = 0u32;
        let mut e_sum = 0.0f32;
        let mut e_max = -100.0f32;
        let mut fl_sum = 0.0f32;
        let mut ton_sum = 0.0f32;
        let mut flux_sum = 0.0f32;
        for f in self.slots() {
            let e = f.energy_db.max(-70.0);
            e_sum += e;
            e_max = e_max.max(e);
            if !f.silent {
                st.active += 1;
                fl_sum += f.flatness;
                ton_sum += f.tonality2;
                flux_sum += f.flux;
                if f.speech_hint {
                    hint += 1;
                }
            }
            if f.dtmf {
                st.dtmf += 1;
            }
            if f.tone {
                st.tone += 1;
            }
        }
        let e_mean = e_sum / n as f32;
        let act = st.active.max(1) as f32;
        let fl_mean = fl_sum / act;
        st.tonality_mean = ton_sum / act;
        st.flux_mean = flux_sum / act;
        let mut e_var = 0.0f32;
        let mut fl_var = 0.0f32;
        let mut dips = 0u32;
        for f in self.slots() {
            let e = f.energy_db.max(-70.0);
            e_var += (e - e_mean) * (e - e_mean);
            if e < e_max - 15.0 {
                dips += 1;
            }
            if !f.silent {
                fl_var += (f.flatness - fl_mean) * (f.flatness - fl_mean);
            }
        }
        st.energy_std_db = (e_var / n as f32).sqrt();
        st.flatness_std = (fl_var / act).sqrt();
        st.dip_ratio = dips as f32 / n as f32;
        st.hint_ratio = hint as f32 / act;
        st.music_score = music_score(&st);

        let active = st.active as f32;
        let class = if st.dtmf >= 3 && st.dtmf as f32 >= 0.5 * active {
            AudioClass::Dtmf
        } else if st.tone >= 10 && st.tone as f32 >= 0.6 * active {
            AudioClass::Tone
        } else if active < 0.25 * n as f32 {
            AudioClass::Silence
        } else if st.music_score > 0.0 {
            AudioClass::Music
        } else {
            AudioClass::Speech
        };
        (class, st)
    }

    /// Music or speech from the window's score, smoothed over time.
    fn smooth_active(&mut self, class: AudioClass, st: &WindowStats) -> AudioClass {
        if !matches!(class, AudioClass::Music | AudioClass::Speech) {
            self.since_scored = self.since_scored.saturating_add(1);
            return class;
        }
        if self.since_scored > WINDOW_FRAMES as u32 {
            self.score_ema = st.music_score;
        } else {
            self.score_ema += (st.music_score - self.score_ema) / SCORE_SMOOTHING_FRAMES;
        }
        self.since_scored = 0;
        if self.score_ema > 0.0 {
            AudioClass::Music
        } else {
            AudioClass::Speech
        }
    }

    fn features(&mut self, frame: &[f32], speech_hint: bool) -> FrameFeatures {
        WORK.with(|w| self.features_with(&mut w.borrow_mut(), frame, speech_hint))
    }

    fn features_with(&mut self, w: &mut Work, frame: &[f32], speech_hint: bool) -> FrameFeatures {
        // Clean copy (wrong lengths padded/truncated, non-finite → 0), then
        // energy, zero crossings and the window in separate simple passes
        // the compiler vectorises.
        let n = frame.len().min(FRAME_SAMPLES);
        let (head, tail) = w.input.split_at_mut(FRAME_SAMPLES);
        for (d, &x) in head.iter_mut().zip(&frame[..n]) {
            *d = if x.is_finite() {
                x.clamp(-1.0, 1.0)
            } else {
                0.0
            };
        }
        head[n..].iter_mut().for_each(|v| *v = 0.0);
        tail.iter_mut().for_each(|v| *v = 0.0);
        let energy = f64::from(sum_squares(head));
        let crossings = head
            .windows(2)
            .filter(|w| (w[0] >= 0.0) != (w[1] >= 0.0))
            .count() as u32;
        for (v, &w) in head.iter_mut().zip(w.window.iter()) {
            *v *= w;
        }
        let energy_db = (10.0 * (energy / FRAME_SAMPLES as f64 + 1e-10).log10()) as f32;
        let mut f = FrameFeatures {
            energy_db: energy_db.max(-100.0),
            zcr: crossings as f32 / FRAME_SAMPLES as f32,
            speech_hint,
            silent: energy_db < SILENCE_DB,
            ..FrameFeatures::default()
        };
        if energy_db < DIGITAL_SILENCE_DB {
            // Silence fill (no RTP, paused stream): no spectrum to speak of.
            self.prev_mag.iter_mut().for_each(|m| *m = 0.0);
            return f;
        }
        let Work {
            fft,
            input,
            spectrum,
            scratch,
            ..
        } = w;
        if fft.process_with_scratch(input, spectrum, scratch).is_err() {
            return f;
        }
        let mut total = 1e-12f32;
        let mut log_sum = 0.0f32;
        let mut weighted = 0.0f32;
        let mut k1 = BAND_LO;
        for k in BAND_LO..=BAND_HI {
            let p = w.spectrum[k].norm_sqr() + 1e-12;
            w.power[k] = p;
            total += p;
            log_sum += fast_ln(p);
            weighted += p * k as f32 * BIN_HZ;
            if p > w.power[k1] {
                k1 = k;
            }
        }
        let (mut dot, mut n_prev) = (0.0f32, 0.0f32);
        for k in BAND_LO..=BAND_HI {
            let m = w.power[k].sqrt();
            dot += m * self.prev_mag[k];
            n_prev += self.prev_mag[k] * self.prev_mag[k];
            self.prev_mag[k] = m;
        }
        f.flux = if n_prev > 0.0 {
            (1.0 - dot / (total.sqrt() * n_prev.sqrt())).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let bins = (BAND_HI - BAND_LO + 1) as f32;
        f.flatness = ((log_sum / bins).exp() / (total / bins)).clamp(0.0, 1.0);
        f.centroid_hz = weighted / total;
        let lobe = |k: usize, power: &[f32]| -> f32 {
            let lo = k.saturating_sub(LOBE).max(BAND_LO);
            let hi = (k + LOBE).min(BAND_HI);
            power[lo..=hi].iter().sum()
        };
        let p1 = lobe(k1, &w.power);
        // Second peak: outside the first one's main lobe; its own lobe counts
        // only bins the first did not (two tones 50 Hz apart, such as UK
        // ringback 400+450, make one wide lobe).
        let mut k2 = None;
        for k in BAND_LO..=BAND_HI {
            if k.abs_diff(k1) <= LOBE {
                continue;
            }
            if k2.is_none_or(|b: usize| w.power[k] > w.power[b]) {
                k2 = Some(k);
            }
        }
        let p2 = k2.map_or(0.0, |k2| {
            let lo = k2.saturating_sub(LOBE).max(BAND_LO);
            let hi = (k2 + LOBE).min(BAND_HI);
            (lo..=hi)
                .filter(|k| k.abs_diff(k1) > LOBE)
                .map(|k| w.power[k])
                .sum()
        });
        f.tonality1 = (p1 / total).min(1.0);
        f.tonality2 = ((p1 + p2) / total).min(1.0);
        f.peak1_hz = interp(&w.power, k1);
        f.peak2_hz = k2.map_or(0.0, |k| interp(&w.power, k));

        if !f.silent {
            f.dtmf_digit = dtmf_digit(&f, p1, p2);
            let tonal =
                f.tonality2 >= TONE_TONALITY && f.flatness < TONE_FLATNESS && f.flux < TONE_FLUX;
            f.tone = f.dtmf_digit.is_none() && tonal && self.prev_tonal;
            self.prev_tonal = tonal;
        } else {
            self.prev_tonal = false;
        }
        f
    }
}

/// Peak frequency by parabolic interpolation on log power.
fn interp(power: &[f32], k: usize) -> f32 {
    if k <= BAND_LO || k >= BAND_HI {
        return k as f32 * BIN_HZ;
    }
    let a = power[k - 1].ln();
    let b = power[k].ln();
    let c = power[k + 1].ln();
    let den = a - 2.0 * b + c;
    let d = if den.abs() > 1e-12 {
        (0.5 * (a - c) / den).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    (k as f32 + d) * BIN_HZ
}

/// Per-thread FFT plan, window and buffers: a frame's features are computed
/// start to finish in one call, so every classifier on a thread shares them.
struct Work {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    input: Vec<f32>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
    power: Vec<f32>,
}

thread_local! {
    static WORK: std::cell::RefCell<Work> = std::cell::RefCell::new({
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(FFT_LEN);
        let window = (0..FRAME_SAMPLES)
            .map(|i| {
                let x = std::f32::consts::PI * 2.0 * i as f32 / FRAME_SAMPLES as f32;
                0.5 - 0.5 * x.cos()
            })
            .collect();
        Work {
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            power: vec![0.0; FFT_LEN / 2 + 1],
            fft,
            window,
        }
    });
}

fn near(f: f32, set: &[f32; 4]) -> Option<usize> {
    set.iter().position(|&g| (f - g).abs() <= g * 0.035)
}

fn dtmf_digit(f: &FrameFeatures, p1: f32, p2: f32) -> Option<char> {
    if f.tonality2 < 0.8 || p1 <= 0.0 || p2 <= 0.0 {
        return None;
    }
    let twist_db = 10.0 * (p1 / p2).log10();
    if twist_db.abs() > 10.0 {
        return None;
    }
    let (lo, hi) = if f.peak1_hz < f.peak2_hz {
        (f.peak1_hz, f.peak2_hz)
    } else {
        (f.peak2_hz, f.peak1_hz)
    };
    let r = near(lo, &DTMF_ROWS)?;
    let c = near(hi, &DTMF_COLS)?;
    Some(DTMF_KEYS[r][c])
}

/// Positive: music; negative: speech. A logistic model fitted on windows of
/// two of the Asterisk music-on-hold files and a third of the English
/// prompts (the tests use the others).
fn music_score(st: &WindowStats) -> f32 {
    // Speech: a wide energy envelope with dips between syllables, spectral
    // flatness swinging between voiced and unvoiced sounds, a spectrum that
    // keeps changing. Music: steadier on all three. A VAD that mostly says
    // "not speech" over non-silent audio tips towards music; it saying
    // "speech" proves nothing (music fools it).
    7.0 - 0.33 * st.energy_std_db
        - 0.8 * st.dip_ratio
        - 35.0 * st.flatness_std
        - 22.0 * st.flux_mean
        + 2.0 * (0.8 - st.hint_ratio).max(0.0)
}

/// What [`HoldDetector::update`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldEvent {
    /// Music has now lasted `min_ms`; `at_ms` is this moment (the hold began
    /// `min_ms` earlier; `Ended` carries that start).
    Started {
        /// When the hold was confirmed.
        at_ms: u64,
    },
    /// The music stopped.
    Ended {
        /// When the music began.
        start_ms: u64,
        /// When it stopped.
        end_ms: u64,
    },
}

/// Default for [`HoldDetector::with_grace`]: non-music shorter than this
/// inside hold music (a misjudged second, a short announcement gap) does not
/// end the hold.
pub const HOLD_GRACE_MS: u64 = 1000;

/// Hold = music for at least `min_ms`. Feed it the class over time: at each
/// class change with the new span's start ([`AudioClassifier::current_span`]),
/// and then every frame (or now and then) with [`AudioClassifier::decided_ms`].
///
/// Interruptions of the music up to the grace period ([`HOLD_GRACE_MS`] by
/// default) are bridged; so `Ended` is reported once the music has been
/// gone for the grace period (or at `flush`), with `end_ms` where it stopped.
#[derive(Debug, Clone)]
pub struct HoldDetector {
    min_ms: u64,
    grace_ms: u64,
    /// Start of the current music run (bridging short interruptions).
    music_since: Option<u64>,
    /// When the music stopped, if it is interrupted now.
    music_stop: Option<u64>,
    started: bool,
    last_t: u64,
}

impl HoldDetector {
    /// `min_ms`: how long music must last to be hold (3000 by default).
    pub fn new(min_ms: u64) -> Self {
        HoldDetector {
            min_ms,
            grace_ms: HOLD_GRACE_MS,
            music_since: None,
            music_stop: None,
            started: false,
            last_t: 0,
        }
    }

    /// Set the grace period for interruptions (0: any non-music ends hold).
    pub fn with_grace(mut self, grace_ms: u64) -> Self {
        self.grace_ms = grace_ms;
        self
    }

    /// The class at `t_ms`. Returns `Started` once music has lasted
    /// `min_ms`, `Ended` when a hold is over. Times should not go backwards
    /// (if they do, nothing panics and durations saturate at 0).
    pub fn update(&mut self, t_ms: u64, class: AudioClass) -> Option<HoldEvent> {
        let t = t_ms;
        self.last_t = self.last_t.max(t);
        let mut ev = None;
        if let Some(stop) = self.music_stop {
            if t.saturating_sub(stop) >= self.grace_ms {
                // Gone for the grace period (checked before this update's class).
                ev = self.end(stop);
            }
        }
        if class == AudioClass::Music {
            self.music_stop = None;
            let since = *self.music_since.get_or_insert(t);
            if ev.is_none() && !self.started && t.saturating_sub(since) >= self.min_ms {
                self.started = true;
                return Some(HoldEvent::Started { at_ms: t });
            }
        } else if self.music_since.is_some() && self.music_stop.is_none() {
            self.music_stop = Some(t);
            if self.grace_ms == 0 {
                return self.end(t);
            }
        }
        ev
    }

    /// End of input at `t_ms`: `Ended` if a hold is on.
    pub fn flush(&mut self, t_ms: u64) -> Option<HoldEvent> {
        let t = t_ms.max(self.last_t);
        self.last_t = t;
        let stop = self.music_stop.unwrap_or(t);
        self.end(stop)
    }

    /// Whether a hold is on (confirmed and not yet reported as ended).
    pub fn on_hold(&self) -> bool {
        self.started
    }

    fn end(&mut self, stop: u64) -> Option<HoldEvent> {
        let since = self.music_since.take();
        self.music_stop = None;
        let was = std::mem::replace(&mut self.started, false);
        match since {
            // Also when fed only at class changes, so Started was never seen.
            Some(start) if was || stop.saturating_sub(start) >= self.min_ms => {
                Some(HoldEvent::Ended {
                    start_ms: start,
                    end_ms: stop.max(start),
                })
            }
            _ => None,
        }
    }
}

/// Sum of squares in eight independent lanes (vectorises; f32 is plenty
/// for a 20 ms frame's energy).
fn sum_squares(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    let rest: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    acc.iter().sum::<f32>() + rest
}

/// Natural logarithm of a positive, finite `x` to within 2e-6 (absolute):
/// exponent bits plus a degree-6 polynomial for ln(1 + t) on [0, 1) (least
/// squares fit). Several times cheaper than `f32::ln`, which the spectral
/// flatness needs once per bin per frame.
fn fast_ln(x: f32) -> f32 {
    const C: [f32; 6] = [
        0.999_888_9,
        -0.497_702_8,
        0.316_877_2,
        -0.192_237_05,
        0.084_197_1,
        -0.017_877_325,
    ];
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let t = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000) - 1.0;
    let p = t * (C[0] + t * (C[1] + t * (C[2] + t * (C[3] + t * (C[4] + t * C[5])))));
    e as f32 * std::f32::consts::LN_2 + p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slots_run_oldest_first_and_stay_small() {
        assert!(std::mem::size_of::<Slot>() <= 32);
        let mut c = AudioClassifier::new();
        let frame: Vec<f32> = (0..FRAME_SAMPLES)
            .map(|i| (i as f32 * 0.3).sin() * 0.1)
            .collect();
        // Filling, full, wrapped many times over, and after a gap (which
        // resets the ring).
        for k in 0..(3 * WINDOW_FRAMES as u64 + 7) {
            let t = if k < 2 * WINDOW_FRAMES as u64 {
                k
            } else {
                k + 10
            } * 20;
            c.push(t, &frame, k % 2 == 0);
            let by_index: Vec<u64> = (0..c.len).map(|i| c.slot(i).t_ms).collect();
            let by_iter: Vec<u64> = c.slots().map(|s| s.t_ms).collect();
            assert_eq!(by_iter, by_index, "after frame {k}");
            assert!(by_iter.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn fast_ln_matches_ln() {
        let mut x = 1e-12f32;
        while x < 1e12 {
            let (a, b) = (fast_ln(x), x.ln());
            assert!((a - b).abs() < 1e-5, "{x}: {a} vs {b}");
            x *= 1.013;
        }
    }

    #[test]
    fn sum_squares_matches_the_plain_sum() {
        let v: Vec<f32> = (0..37).map(|i| i as f32 * 0.1 - 1.5).collect();
        let want: f32 = v.iter().map(|x| x * x).sum();
        assert!((sum_squares(&v) - want).abs() < 1e-4);
    }
}
