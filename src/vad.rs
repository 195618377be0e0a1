//! Voice-activity detection: WebRTC's VAD on 20 ms frames, smoothed into
//! speech regions.
//!
//! Frames are 20 ms of 16 kHz mono `f32` in `[-1, 1]` ([`FRAME_SAMPLES`]
//! samples), stamped with the start of the frame on the participant's audio
//! timeline in milliseconds. The raw per-frame verdict of `webrtc-vad` is
//! smoothed by a small state machine:
//!
//! * **onset**: a region opens after [`VadConfig::start_frames`] consecutive
//!   voiced frames; its start is the start of the first of them;
//! * **hangover**: an open region stays open through unvoiced frames until
//!   [`VadConfig::hangover_ms`] have passed since the end of the last voiced
//!   frame; the region ends at the end of that last voiced frame;
//! * **minimum length**: regions shorter than [`VadConfig::min_speech_ms`]
//!   (start to end of the last voiced frame) are dropped silently. A region
//!   is therefore only announced with [`SpeechEvent::Started`] once it has
//!   reached that length (the event carries the region's real, earlier,
//!   start), so every `Started` is followed by exactly one `Ended`;
//! * **gaps**: a frame stamped later than the end of the previous frame
//!   (by a frame or more) means audio is missing (packet loss, a paused
//!   stream): an open region is closed at the gap start (that is, at the end
//!   of its last voiced frame, which is never after the gap start) and the
//!   onset count restarts. Frames stamped before the end of the previous
//!   frame (duplicates, reordering) are ignored, which keeps regions ordered
//!   and disjoint whatever the input.
//!
//! [`SpeechEvent::Ended`] always carries the whole region and is the
//! authoritative output (talk-time analytics are computed from it);
//! `Started` is for live displays.
//!
//! Frames of the wrong length are zero-padded or truncated to
//! [`FRAME_SAMPLES`]; non-finite samples count as 0 and samples are clipped
//! to `[-1, 1]`. Nothing here panics on any input.
//!
//! [`SpeechDetector`] is **not `Send`**: `webrtc_vad::Vad` holds a raw pointer
//! to its C state. Create the detector on the thread (actor) that uses it.

use serde::{Deserialize, Serialize};
use webrtc_vad::{SampleRate, Vad, VadMode};

/// Frames quieter than this are never speech (and skip webrtc-vad).
const DIGITAL_SILENCE_DB: f32 = -80.0;

/// Length of one analysis frame in milliseconds.
pub const FRAME_MS: u32 = 20;
/// Samples in one frame at 16 kHz.
pub const FRAME_SAMPLES: usize = 320;

/// Voiced frames this far (dB) below the loudest frame of their region do
/// not extend it: WebRTC keeps saying "voice" for up to ~100 ms of its own
/// hangover after a phrase, over the fading tail.
pub const TAIL_DB: f32 = 35.0;

/// Smoothing parameters of the [`SpeechDetector`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VadConfig {
    /// WebRTC aggressiveness, 0 (quality) ..= 3 (very aggressive); larger
    /// values are clamped to 3. Default 2.
    pub mode: u8,
    /// Consecutive voiced frames needed to open a region (default 3 = 60 ms;
    /// 0 is treated as 1).
    pub start_frames: u32,
    /// How long an open region survives unvoiced frames (default 300 ms).
    pub hangover_ms: u32,
    /// Regions shorter than this are dropped (default 100 ms).
    pub min_speech_ms: u32,
}

impl Default for VadConfig {
    fn default() -> Self {
        VadConfig {
            mode: 2,
            start_frames: 3,
            hangover_ms: 300,
            min_speech_ms: 100,
        }
    }
}

/// One stretch of speech on the participant timeline, `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SpeechRegion {
    /// Start of the first voiced frame.
    pub start_ms: u64,
    /// End of the last voiced frame.
    pub end_ms: u64,
}

impl SpeechRegion {
    /// Length in milliseconds (0 if malformed).
    pub fn duration_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

/// What [`SpeechDetector::push`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechEvent {
    /// A region is confirmed (it reached `min_speech_ms`); `at_ms` is its
    /// start, which may be a few frames in the past.
    Started {
        /// Start of the region's first voiced frame.
        at_ms: u64,
    },
    /// A region is over; this is the final region.
    Ended(SpeechRegion),
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// No region; `run` consecutive voiced frames so far, the first at
    /// `run_start`, the loudest `peak_db`.
    Idle {
        run: u32,
        run_start: u64,
        peak_db: f32,
    },
    /// A region is open.
    Open {
        start: u64,
        last_voiced_end: u64,
        announced: bool,
        /// Loudest voiced frame so far (dBFS).
        peak_db: f32,
    },
}

/// WebRTC VAD on 20 ms frames with onset/hangover smoothing.
///
/// **`!Send`**: it owns a `webrtc_vad::Vad` (a raw pointer to C state), so it
/// must be created on the thread that uses it.
pub struct SpeechDetector {
    vad: Vad,
    cfg: VadConfig,
    state: State,
    /// End of the last accepted frame (`None` before the first).
    next_expected: Option<u64>,
    /// The frame at 8 kHz: webrtc-vad analyses 8 kHz internally, so giving
    /// it 8 kHz skips its own (costlier) 16 → 8 kHz split filter.
    pcm: [i16; FRAME_SAMPLES / 2],
    last_voiced: bool,
}

impl std::fmt::Debug for SpeechDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechDetector")
            .field("cfg", &self.cfg)
            .field("state", &self.state)
            .field("next_expected", &self.next_expected)
            .finish_non_exhaustive()
    }
}

impl SpeechDetector {
    /// A detector with the given smoothing (see [`VadConfig`]).
    pub fn new(cfg: VadConfig) -> Self {
        let mode = match cfg.mode {
            0 => VadMode::Quality,
            1 => VadMode::LowBitrate,
            2 => VadMode::Aggressive,
            _ => VadMode::VeryAggressive,
        };
        SpeechDetector {
            vad: Vad::new_with_rate_and_mode(SampleRate::Rate8kHz, mode),
            cfg,
            state: State::Idle {
                run: 0,
                run_start: 0,
                peak_db: -100.0,
            },
            next_expected: None,
            pcm: [0; FRAME_SAMPLES / 2],
            last_voiced: false,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> VadConfig {
        self.cfg
    }

    /// Feed one frame starting at `t_ms` on the participant timeline.
    ///
    /// Gaps are allowed (an open region closes at the gap start); frames
    /// starting before the end of the previous frame are ignored. Returns at
    /// most one event per frame.
    pub fn push(&mut self, t_ms: u64, frame: &[f32]) -> Option<SpeechEvent> {
        let mut event = None;
        match self.next_expected {
            Some(next) if t_ms < next => return None,
            Some(next) if t_ms >= next.saturating_add(u64::from(FRAME_MS)) => {
                // Audio is missing from `next` on: close whatever is open.
                event = self.close(next);
            }
            _ => {}
        }
        let end = t_ms.saturating_add(u64::from(FRAME_MS));
        self.next_expected = Some(end);

        let (voiced, energy_db) = self.classify(frame);
        self.last_voiced = voiced;
        let start_frames = self.cfg.start_frames.max(1);
        let min_speech = u64::from(self.cfg.min_speech_ms);
        let hangover = u64::from(self.cfg.hangover_ms);

        match &mut self.state {
            State::Idle {
                run,
                run_start,
                peak_db,
            } => {
                if voiced {
                    if *run == 0 {
                        *run_start = t_ms;
                        *peak_db = energy_db;
                    }
                    *run += 1;
                    *peak_db = peak_db.max(energy_db);
                    if *run >= start_frames {
                        self.state = State::Open {
                            start: *run_start,
                            last_voiced_end: end,
                            announced: false,
                            peak_db: *peak_db,
                        };
                    }
                } else {
                    *run = 0;
                }
            }
            State::Open {
                start,
                last_voiced_end,
                announced,
                peak_db,
            } => {
                *peak_db = peak_db.max(if voiced { energy_db } else { -100.0 });
                if voiced && energy_db >= *peak_db - TAIL_DB {
                    *last_voiced_end = end;
                } else if end.saturating_sub(*last_voiced_end) >= hangover {
                    let region = SpeechRegion {
                        start_ms: *start,
                        end_ms: *last_voiced_end,
                    };
                    let announced = *announced;
                    self.state = State::Idle {
                        run: 0,
                        run_start: 0,
                        peak_db: -100.0,
                    };
                    // (After a gap the state is Idle, so no event is pending
                    // here.) An unannounced region is a blip unless it is long
                    // enough, which only happens if its announcement was
                    // crowded out by a gap event; it is still reported.
                    if announced || region.duration_ms() >= min_speech {
                        return Some(SpeechEvent::Ended(region));
                    }
                    return None;
                }
            }
        }

        if let State::Open {
            start,
            last_voiced_end,
            announced,
            ..
        } = &mut self.state
        {
            if !*announced
                && event.is_none()
                && last_voiced_end.saturating_sub(*start) >= min_speech
            {
                *announced = true;
                event = Some(SpeechEvent::Started { at_ms: *start });
            }
        }
        event
    }

    /// End of input at `t_ms`: close an open region (at the end of its last
    /// voiced frame, never after `t_ms`). Returns `Ended` if a region long
    /// enough was open.
    pub fn flush(&mut self, t_ms: u64) -> Option<SpeechEvent> {
        let ev = self.close(t_ms);
        self.last_voiced = false;
        ev
    }

    /// Whether an announced region is open (between `Started` and `Ended`).
    pub fn in_speech(&self) -> bool {
        matches!(
            self.state,
            State::Open {
                announced: true,
                ..
            }
        )
    }

    /// The raw WebRTC verdict for the last accepted frame (before smoothing):
    /// the `speech_hint` for [`crate::classify::AudioClassifier::push`].
    pub fn last_frame_voiced(&self) -> bool {
        self.last_voiced
    }

    /// The region open now, if any: its start and the end of its last
    /// voiced frame (ms).
    pub fn open_region(&self) -> Option<(u64, u64)> {
        match self.state {
            State::Open {
                start,
                last_voiced_end,
                ..
            } => Some((start, last_voiced_end)),
            State::Idle { .. } => None,
        }
    }

    /// Close at `at`: an open region long enough becomes `Ended`.
    fn close(&mut self, at: u64) -> Option<SpeechEvent> {
        let state = std::mem::replace(
            &mut self.state,
            State::Idle {
                run: 0,
                run_start: 0,
                peak_db: -100.0,
            },
        );
        match state {
            State::Open {
                start,
                last_voiced_end,
                ..
            } => {
                let end = last_voiced_end.min(at).max(start);
                let region = SpeechRegion {
                    start_ms: start,
                    end_ms: end,
                };
                (region.duration_ms() >= u64::from(self.cfg.min_speech_ms))
                    .then_some(SpeechEvent::Ended(region))
            }
            State::Idle { .. } => None,
        }
    }

    /// WebRTC's verdict and the frame's energy (dBFS).
    fn classify(&mut self, frame: &[f32]) -> (bool, f32) {
        let clean = |x: f32| {
            if x.is_finite() {
                x.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        };
        let mut energy = 0.0f32;
        let frame = &frame[..frame.len().min(FRAME_SAMPLES)];
        let n = frame.len() / 2;
        for (out, pair) in self.pcm.iter_mut().zip(frame.chunks_exact(2)) {
            let (a, b) = (clean(pair[0]), clean(pair[1]));
            energy += a * a + b * b;
            // Pairwise mean: a cheap low-pass before halving the rate (the
            // speech path above 4 kHz carries little for a VAD).
            *out = ((a + b) * 0.5 * 32767.0) as i16;
        }
        // Short frame: the missing samples are zeros (an odd last sample is
        // dropped).
        self.pcm[n..].iter_mut().for_each(|v| *v = 0);
        let energy = f64::from(energy);
        let db = (10.0 * (energy / FRAME_SAMPLES as f64 + 1e-10).log10()) as f32;
        if db < DIGITAL_SILENCE_DB {
            // Silence fill (no RTP, paused streams): nothing to ask webrtc.
            return (false, db);
        }
        (self.vad.is_voice_segment(&self.pcm).unwrap_or(false), db)
    }
}
