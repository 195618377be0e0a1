//! Which audio of one participant goes to the recogniser, and when.
//!
//! The tracker is fed the participant's 16 kHz timeline audio as it is
//! played out (contiguous from 0) and the media pipeline's speech events:
//!
//! * `speech_started(at)` (the VAD's onset, immediate) opens an
//!   *utterance*. While the newest utterance is open, a **partial** request
//!   (audio from its start, minus a short pre-roll, to now) is issued at
//!   most every `partial_interval_ms`, only once it holds `min_partial_ms`
//!   of audio and only when the previous partial of this stream has come
//!   back ([`UtteranceTracker::partial_done`]): one partial in flight per
//!   participant is the per-call fairness and the first thing to give under
//!   load (a slow recogniser simply gets fewer partials).
//! * `speech_ended(start, end)` is a *confirmed* speech region (the
//!   classifier has ruled out music, tones and DTMF): its audio (with pre-
//!   and post-roll) becomes one **final** request, decoded once. Audio the
//!   classifier called music never gets a final, and `speech_discarded`
//!   drops the utterance it opened.
//! * An utterance longer than `max_utterance_ms` is cut: the part so far
//!   becomes a final and the rest goes on as a new utterance.
//!
//! Requests come out of [`UtteranceTracker::poll`]. Audio is kept only as
//! far back as an open utterance or the last `keep_ms` need.

use std::collections::VecDeque;

/// Samples per millisecond of the timeline (16 kHz).
const PER_MS: u64 = 16;

/// Scheduling settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Issue partials at all.
    pub partials: bool,
    /// Least time between two partials of one participant.
    pub partial_interval_ms: u64,
    /// An utterance gets partials once it is this long.
    pub min_partial_ms: u64,
    /// Longest utterance before it is cut into a final.
    pub max_utterance_ms: u64,
    /// Audio kept before a region's start and after its end.
    pub preroll_ms: u64,
    pub postroll_ms: u64,
    /// Finals shorter than this (after roll) are not sent.
    pub min_final_ms: u64,
    /// Audio kept when no utterance is open (covers the VAD's onset delay
    /// and the classifier's lag before a region is confirmed).
    pub keep_ms: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            partials: true,
            partial_interval_ms: 500,
            min_partial_ms: 700,
            max_utterance_ms: 15_000,
            preroll_ms: 200,
            postroll_ms: 200,
            min_final_ms: 300,
            keep_ms: 3_000,
        }
    }
}

/// Partial or final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    Partial,
    Final,
}

/// Audio for the recogniser.
#[derive(Debug, Clone, PartialEq)]
pub struct AsrRequest {
    pub utterance: u64,
    pub kind: JobKind,
    /// Timeline position of the audio's first and last sample, ms.
    pub start_ms: u64,
    pub end_ms: u64,
    /// 16 kHz mono.
    pub audio: Vec<f32>,
}

#[derive(Debug, Clone, Copy)]
struct Utt {
    id: u64,
    start_ms: u64,
}

/// Per-participant ASR scheduling state.
#[derive(Debug)]
pub struct UtteranceTracker {
    cfg: TrackerConfig,
    /// Audio from sample `buf_start` on.
    buf: Vec<f32>,
    buf_start: u64,
    /// Utterances opened and not yet closed by a confirmed region, oldest
    /// first; partials go to the newest.
    open: Vec<Utt>,
    /// Audio before this (ms) has been sent as a final.
    finalized_until: u64,
    last_partial_ms: Option<u64>,
    partial_in_flight: Option<u64>,
    next_id: u64,
    out: VecDeque<AsrRequest>,
}

impl UtteranceTracker {
    pub fn new(cfg: TrackerConfig) -> Self {
        Self {
            cfg,
            buf: Vec::new(),
            buf_start: 0,
            open: Vec::new(),
            finalized_until: 0,
            last_partial_ms: None,
            partial_in_flight: None,
            next_id: 0,
            out: VecDeque::new(),
        }
    }

    /// Timeline position after the last sample pushed, ms.
    pub fn now_ms(&self) -> u64 {
        (self.buf_start + self.buf.len() as u64) / PER_MS
    }

    /// Utterances open now.
    pub fn open_utterances(&self) -> usize {
        self.open.len()
    }

    /// Samples held.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next stretch of the timeline.
    pub fn push_audio(&mut self, samples: &[f32]) {
        self.buf.extend_from_slice(samples);
        let now = self.now_ms();
        // Cut an over-long utterance.
        if let Some(u) = self.open.last().copied() {
            let from = u.start_ms.max(self.finalized_until);
            if now.saturating_sub(from) >= self.cfg.max_utterance_ms {
                self.emit_final(u.id, from, now);
                // Everything older is covered now; the rest goes on.
                let id = self.new_id();
                self.open.clear();
                self.open.push(Utt { id, start_ms: now });
                self.last_partial_ms = None;
            }
        }
        self.maybe_partial(now);
        self.trim(now);
    }

    /// The VAD heard speech start at `at_ms`.
    pub fn speech_started(&mut self, at_ms: u64) {
        let id = self.new_id();
        self.open.push(Utt {
            id,
            start_ms: at_ms,
        });
        self.last_partial_ms = None;
    }

    /// A confirmed speech region: send it as a final.
    pub fn speech_ended(&mut self, start_ms: u64, end_ms: u64) {
        // The utterance this region closes: the oldest opened before its
        // end (a region may also close several onsets the VAD merged).
        let covered = self
            .open
            .iter()
            .take_while(|u| u.start_ms <= end_ms)
            .count();
        let id = match covered {
            0 => self.new_id(),
            _ => self.open[0].id,
        };
        self.open.drain(..covered);
        let from = start_ms
            .saturating_sub(self.cfg.preroll_ms)
            .max(self.finalized_until);
        let to = (end_ms + self.cfg.postroll_ms).min(self.now_ms());
        self.emit_final(id, from, to);
        if self.open.is_empty() {
            self.last_partial_ms = None;
        }
    }

    /// The VAD closed a region the classifier has not confirmed yet. When
    /// it likely is speech, its final goes now (the confirmation would come
    /// half a second later); the confirmed region then adds nothing new.
    pub fn speech_closed(&mut self, start_ms: u64, end_ms: u64, likely_speech: bool) {
        if likely_speech {
            self.speech_ended(start_ms, end_ms);
        }
    }

    /// A region the VAD opened turned out not to be speech (music, tone):
    /// forget the utterances it opened.
    pub fn speech_discarded(&mut self, _start_ms: u64, end_ms: u64) {
        let n = self
            .open
            .iter()
            .take_while(|u| u.start_ms <= end_ms)
            .count();
        self.open.drain(..n);
    }

    /// The partial of `utterance` came back (or was dropped): another may go.
    pub fn partial_done(&mut self, utterance: u64) {
        if self.partial_in_flight == Some(utterance) {
            self.partial_in_flight = None;
        }
    }

    /// Whether a partial is outstanding.
    pub fn partial_in_flight(&self) -> bool {
        self.partial_in_flight.is_some()
    }

    /// The next request, finals and partials in the order they were made.
    pub fn poll(&mut self) -> Option<AsrRequest> {
        self.out.pop_front()
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn maybe_partial(&mut self, now: u64) {
        if !self.cfg.partials || self.partial_in_flight.is_some() {
            return;
        }
        let Some(u) = self.open.last().copied() else {
            return;
        };
        let from = u
            .start_ms
            .saturating_sub(self.cfg.preroll_ms)
            .max(self.finalized_until);
        if now.saturating_sub(from) < self.cfg.min_partial_ms {
            return;
        }
        if let Some(t) = self.last_partial_ms {
            if now < t + self.cfg.partial_interval_ms {
                return;
            }
        }
        let audio = self.slice(from, now).to_vec();
        if audio.is_empty() {
            return;
        }
        self.last_partial_ms = Some(now);
        self.partial_in_flight = Some(u.id);
        self.out.push_back(AsrRequest {
            utterance: u.id,
            kind: JobKind::Partial,
            start_ms: from,
            end_ms: now,
            audio,
        });
    }

    fn emit_final(&mut self, id: u64, from: u64, to: u64) {
        if to <= from || to - from < self.cfg.min_final_ms {
            return;
        }
        let audio = self.slice(from, to).to_vec();
        if audio.is_empty() {
            return;
        }
        let start_ms = from.max(self.buf_start / PER_MS);
        self.finalized_until = self.finalized_until.max(to);
        // A partial still queued for this utterance is now pointless.
        self.out
            .retain(|r| !(r.kind == JobKind::Partial && r.utterance == id));
        self.out.push_back(AsrRequest {
            utterance: id,
            kind: JobKind::Final,
            start_ms,
            end_ms: to,
            audio,
        });
    }

    fn slice(&self, from_ms: u64, to_ms: u64) -> &[f32] {
        let a = (from_ms * PER_MS).max(self.buf_start) - self.buf_start;
        let b = (to_ms * PER_MS).max(self.buf_start) - self.buf_start;
        let (a, b) = (a as usize, (b as usize).min(self.buf.len()));
        if a >= b {
            &[]
        } else {
            &self.buf[a..b]
        }
    }

    /// Drop audio nothing can need any more (in steps of a second).
    fn trim(&mut self, now: u64) {
        let mut keep_from = now.saturating_sub(self.cfg.keep_ms);
        if let Some(u) = self.open.first() {
            keep_from = keep_from.min(
                u.start_ms
                    .saturating_sub(self.cfg.preroll_ms)
                    .max(self.finalized_until),
            );
        }
        let keep = keep_from * PER_MS;
        if keep > self.buf_start + 16_000 {
            let n = ((keep - self.buf_start) as usize).min(self.buf.len());
            self.buf.drain(..n);
            self.buf_start += n as u64;
            if self.buf.capacity() > 4 * self.buf.len().max(16_000) {
                self.buf.shrink_to(2 * self.buf.len().max(16_000));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Push `ms` of audio whose samples encode their own timeline position.
    fn feed(t: &mut UtteranceTracker, ms: u64) {
        let start = t.buf_start + t.buf.len() as u64;
        let v: Vec<f32> = (start..start + ms * PER_MS).map(|i| i as f32).collect();
        t.push_audio(&v);
    }

    fn drain(t: &mut UtteranceTracker) -> Vec<AsrRequest> {
        std::iter::from_fn(|| t.poll()).collect()
    }

    #[test]
    fn partials_every_interval_one_in_flight_then_one_final() {
        let mut t = UtteranceTracker::new(TrackerConfig::default());
        feed(&mut t, 1000);
        assert!(drain(&mut t).is_empty());
        t.speech_started(1000);
        let mut partials = vec![];
        for _ in 0..100 {
            feed(&mut t, 20);
            for r in drain(&mut t) {
                assert_eq!(r.kind, JobKind::Partial);
                // Audio is exactly the timeline from the start (pre-roll).
                assert_eq!(r.start_ms, 800);
                assert_eq!(r.audio[0], (800 * PER_MS) as f32);
                assert_eq!(r.audio.len() as u64, (r.end_ms - r.start_ms) * PER_MS);
                partials.push(r.end_ms);
                t.partial_done(r.utterance);
            }
        }
        // First once 700 ms are there (800 + 700), then every 500 ms.
        assert_eq!(partials, [1500, 2000, 2500, 3000]);
        // Without the reply, no further partial.
        feed(&mut t, 20);
        let r = drain(&mut t);
        assert_eq!(r.len(), 0, "{r:?}");
        feed(&mut t, 600);
        let r = drain(&mut t);
        assert_eq!(r.len(), 1);
        // (still in flight: nothing more)
        feed(&mut t, 600);
        assert!(drain(&mut t).is_empty());
        // The region is confirmed 2 s later: one final with roll.
        t.speech_ended(1000, 3200);
        let r = drain(&mut t);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, JobKind::Final);
        assert_eq!((r[0].start_ms, r[0].end_ms), (800, 3400));
        assert_eq!(r[0].audio[0], (800 * PER_MS) as f32);
        assert_eq!(r[0].audio.len(), 2600 * PER_MS as usize);
        assert_eq!(t.open_utterances(), 0);
        // Nothing open: no partials, and old audio is let go.
        feed(&mut t, 5000);
        assert!(drain(&mut t).is_empty());
        assert!(t.buffered() <= ((3000 + 1000) * PER_MS) as usize);
    }

    #[test]
    fn overlapping_onsets_and_discarded_music() {
        let cfg = TrackerConfig {
            partials: false,
            ..TrackerConfig::default()
        };
        let mut t = UtteranceTracker::new(cfg);
        feed(&mut t, 500);
        t.speech_started(500);
        feed(&mut t, 2000);
        // The next onset comes before the classifier confirms the first.
        t.speech_started(2300);
        feed(&mut t, 600);
        t.speech_ended(500, 2100);
        let r = drain(&mut t);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].start_ms, r[0].end_ms), (300, 2300));
        assert_eq!(t.open_utterances(), 1);
        // The second turns out to be music.
        t.speech_discarded(2300, 3000);
        assert_eq!(t.open_utterances(), 0);
        feed(&mut t, 1000);
        assert!(drain(&mut t).is_empty());
        // A region the tracker never saw start still gets its final, and a
        // final never repeats audio already sent.
        t.speech_ended(2200, 3500);
        let r = drain(&mut t);
        assert_eq!((r[0].start_ms, r[0].end_ms), (2300, 3700));
    }

    #[test]
    fn early_finals_are_not_repeated_by_the_confirmation() {
        let cfg = TrackerConfig {
            partials: false,
            ..TrackerConfig::default()
        };
        let mut t = UtteranceTracker::new(cfg);
        feed(&mut t, 1000);
        t.speech_started(1000);
        feed(&mut t, 2500);
        t.speech_closed(1000, 3200, true);
        let r = drain(&mut t);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].start_ms, r[0].end_ms), (800, 3400));
        feed(&mut t, 500);
        t.speech_ended(1000, 3200);
        assert!(drain(&mut t).is_empty());
        // Not likely speech: wait for the classifier.
        t.speech_started(4100);
        feed(&mut t, 2000);
        t.speech_closed(4100, 5500, false);
        assert!(drain(&mut t).is_empty());
        feed(&mut t, 600);
        t.speech_ended(4100, 5000);
        let r = drain(&mut t);
        assert_eq!((r[0].start_ms, r[0].end_ms), (3900, 5200));
    }

    #[test]
    fn long_utterances_are_cut_into_finals() {
        let cfg = TrackerConfig {
            partials: false,
            max_utterance_ms: 5000,
            ..TrackerConfig::default()
        };
        let mut t = UtteranceTracker::new(cfg);
        t.speech_started(0);
        let mut finals = vec![];
        for _ in 0..(12_000 / 20) {
            feed(&mut t, 20);
            finals.extend(drain(&mut t).into_iter().map(|r| (r.start_ms, r.end_ms)));
        }
        assert_eq!(finals, [(0, 5000), (5000, 10000)]);
        t.speech_ended(0, 11_900);
        let r = drain(&mut t);
        assert_eq!((r[0].start_ms, r[0].end_ms), (10_000, 12_000));
        // Memory stays bounded by the cut.
        assert!(t.buffered() <= 8000 * PER_MS as usize);
    }

    #[test]
    fn a_final_removes_a_queued_partial_of_its_utterance() {
        let mut t = UtteranceTracker::new(TrackerConfig::default());
        t.speech_started(0);
        feed(&mut t, 800);
        t.speech_ended(0, 600);
        let r = drain(&mut t);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].kind, JobKind::Final);
    }
}
