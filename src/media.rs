//! One participant stream's media pipeline, sans-IO: datagrams in, a
//! wall-clock-aligned 16 kHz mono timeline out, with speech regions, audio
//! classes, DTMF, hold and source events along the way.
//!
//! ```text
//! datagram ─ parse_rtp ─ Latch ─ JitterBuffer ─ pop(now) ─┬─ audio PT: decode ─┐
//!                                                         ├─ Lost: conceal ────┤
//!                                                         ├─ telephone-event: DtmfTracker
//!                                                         └─ CN: nothing (silence fill)
//!        Resampler → 16 kHz → placed on the timeline by RTP timestamp ─┘
//!        → 20 ms frames → SpeechDetector (VAD) + AudioClassifier + HoldDetector
//! ```
//!
//! The timeline starts at the call's start. Each played-out unit is placed
//! by its RTP timestamp relative to an anchor (re-anchored on SSRC change,
//! resume, or a timestamp jump); what overlaps audio already produced is
//! trimmed, a hole before it is concealed. When nothing arrives (RTP not yet
//! started, stopped, or the stream is paused) the timeline is filled with
//! silence up to `now - depth`, so every participant's audio — and the
//! recordings made from it — stays aligned with wall time.

use crate::classify::{AudioClass, AudioClassifier, ClassSpan, HoldDetector, HoldEvent};
use crate::codec::{self, CodecError, Decoder, DtmfTracker, Resampler, SPEECH_RATE};
use crate::ids::Ssrc;
use crate::rtp::jitter::{JitterBuffer, JitterConfig, Playout, PushOutcome};
use crate::rtp::latch::{Latch, LatchDecision};
use crate::rtp::stats::{estimate_mos, StreamStats};
use crate::rtp::{is_rtcp, parse_rtp, RtpPacket};
use crate::sdp::Codec;
use crate::vad::{SpeechDetector, SpeechEvent, SpeechRegion, VadConfig, FRAME_SAMPLES};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Classes that are never talk time.
/// Silence after which the recogniser treats an utterance as finished
/// (shorter than the VAD's hangover, which decides talk-time regions: a
/// pause between the two splits the transcript, not the talk time).
pub const ASR_ENDPOINT_MS: u64 = 200;

fn not_speech(c: AudioClass) -> bool {
    matches!(c, AudioClass::Music | AudioClass::Tone | AudioClass::Dtmf)
}

/// Samples per millisecond on the speech timeline.
const PER_MS: u64 = (SPEECH_RATE / 1000) as u64;
/// A timestamp jump larger than this re-anchors the stream instead of
/// concealing or trimming (SBC restarts, clock resets).
const MAX_JUMP_SAMPLES: i64 = 10 * SPEECH_RATE as i64;
/// Furthest an RTP timestamp may place audio ahead of the instant being
/// played out before it counts as a jump (2 s: far beyond any jitter depth
/// or sender clock drift over a call).
const MAX_AHEAD_SAMPLES: i64 = 2 * SPEECH_RATE as i64;
/// How far the timeline may lag `now - depth` before silence is filled in
/// while nothing is buffered.
const FILL_SLACK_SAMPLES: u64 = 3 * FRAME_SAMPLES as u64;
/// Speech slivers shorter than this at the edge of a region that is mostly
/// music are music too.
const MUSIC_EDGE_MS: u64 = 1000;
/// Most class spans kept per stream (the oldest half goes beyond it).
const MAX_SPANS: usize = 10_000;
/// Decode/resample scratch kept between ticks (samples; 100 ms at 16 kHz,
/// more than any packet's worth).
const SCRATCH_KEEP: usize = 1_600;

/// How one answered m-line is to be received.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    pub codec: Codec,
    pub payload_type: u8,
    pub dtmf_payload_type: Option<u8>,
    pub jitter_depth: Duration,
    pub vad: VadConfig,
    /// Reject packets from another address than the latched one.
    pub strict_source: bool,
}

/// Something that happened on a stream, on the participant timeline (ms
/// since the call started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MediaEvent {
    SpeechStarted {
        at_ms: u64,
    },
    SpeechEnded {
        start_ms: u64,
        end_ms: u64,
    },
    /// The VAD closed a region (after its hangover), before the classifier
    /// has ruled on it; `likely_speech`: the classifier hears speech there
    /// so far. Lets the recogniser start on the region without waiting for
    /// the classifier's lag. Internal to the media plane.
    SpeechClosed {
        start_ms: u64,
        end_ms: u64,
        likely_speech: bool,
    },
    /// A VAD region the classifier ruled out entirely (music, tone, DTMF):
    /// whatever its `SpeechStarted` opened is not speech. Internal to the
    /// media plane (the runtime does not log it).
    SpeechDiscarded {
        start_ms: u64,
        end_ms: u64,
    },
    Dtmf {
        digit: char,
        at_ms: u64,
        duration_ms: u64,
    },
    HoldStarted {
        at_ms: u64,
    },
    HoldEnded {
        start_ms: u64,
        end_ms: u64,
    },
    SsrcChanged {
        old: Ssrc,
        new: Ssrc,
        from: String,
    },
    StreamPaused {
        at_ms: u64,
    },
    StreamResumed {
        at_ms: u64,
        gap_ms: u64,
    },
    /// No RTP on any stream of the call for `silent_ms` (at least the RTP
    /// timeout): the call is ended as failed, "no media". Reported for
    /// every stream that was expecting media.
    NoMedia {
        at_ms: u64,
        silent_ms: u64,
    },
}

/// The RTP timeout of a call, sans-IO: the runtime asks it with `now` and
/// every stream's [`StreamPipeline::idle_since`].
///
/// A call has no media when every stream that expects media (not paused
/// by a re-INVITE/UPDATE) has been without RTP for at least `after`,
/// counted from its last RTP packet, or from when it was answered or
/// resumed if none came since. The same rule covers media that never
/// starts and media that stops mid-call. A call whose streams are all
/// paused (or that has none it can receive) never times out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpTimeout {
    after: Duration,
}

impl RtpTimeout {
    /// `None` for a zero timeout (off).
    pub fn new(after: Duration) -> Option<RtpTimeout> {
        (!after.is_zero()).then_some(RtpTimeout { after })
    }

    pub fn after(&self) -> Duration {
        self.after
    }

    /// How long the call has been without media, once that is at least the
    /// timeout; `None` while some stream had RTP more recently (or nothing
    /// expects media). `idle_since`: per stream, `None` when paused.
    pub fn expired(
        &self,
        now: Instant,
        idle_since: impl IntoIterator<Item = Option<Instant>>,
    ) -> Option<Duration> {
        let latest = idle_since.into_iter().flatten().max()?;
        let silent = now.saturating_duration_since(latest);
        (silent >= self.after).then_some(silent)
    }
}

/// Per-stream receive counters beyond the jitter buffer's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineCounters {
    pub malformed: u64,
    pub unknown_payload_type: u64,
    pub rejected_source: u64,
    pub dtmf_packets: u64,
    pub comfort_noise: u64,
    pub ignored_while_paused: u64,
    pub decode_errors: u64,
}

/// The receive/decode/analyse state of one stream. Not `Send` (webrtc-vad):
/// create it on the thread that drives it.
pub struct StreamPipeline {
    cfg: StreamConfig,
    clock_rate: u32,
    jitter: JitterBuffer,
    latch: Latch,
    decoder: Box<dyn Decoder>,
    resampler: Resampler,
    dtmf: DtmfTracker,
    vad: SpeechDetector,
    classifier: AudioClassifier,
    hold: HoldDetector,
    start: Instant,
    /// Samples on the timeline so far.
    produced: u64,
    /// RTP timestamp ↔ timeline sample of the current source.
    anchor: Option<(u32, u64)>,
    /// Samples of the current, incomplete 20 ms frame.
    frame: Vec<f32>,
    native: Vec<f32>,
    speech: Vec<f32>,
    paused_at: Option<u64>,
    /// Where the timeline should be at the instant being played out; a new
    /// anchor is placed here, so re-anchored audio lands at wall time.
    anchor_target: u64,
    counters: PipelineCounters,
    regions: Vec<SpeechRegion>,
    /// VAD regions waiting for the (lagging) classifier to rule on them.
    pending: Vec<SpeechRegion>,
    spans: Vec<ClassSpan>,
    events: Vec<MediaEvent>,
    /// The open VAD region (start, last voiced end) already announced to the
    /// recogniser as closed.
    asr_closed: Option<(u64, u64)>,
    /// Arrival of the last RTP packet accepted from the stream's source.
    last_rtp: Option<Instant>,
    /// Since when the stream expects media: created, answered or resumed.
    expecting_since: Instant,
}

impl StreamPipeline {
    /// `start` is the instant the call started (timeline zero).
    pub fn new(cfg: StreamConfig, start: Instant) -> Result<Self, CodecError> {
        let decoder = codec::decoder_for(cfg.codec)?;
        let resampler = Resampler::new(decoder.sample_rate(), SPEECH_RATE)?;
        let clock_rate = cfg.codec.clock_rate();
        Ok(Self {
            jitter: JitterBuffer::new(JitterConfig {
                clock_rate,
                depth: cfg.jitter_depth,
                max_packets: 500,
            }),
            latch: Latch::new(cfg.strict_source),
            decoder,
            resampler,
            dtmf: DtmfTracker::new(),
            vad: SpeechDetector::new(cfg.vad),
            classifier: AudioClassifier::new(),
            hold: HoldDetector::new(3000),
            clock_rate,
            cfg,
            start,
            produced: 0,
            anchor: None,
            frame: Vec::with_capacity(FRAME_SAMPLES),
            native: Vec::new(),
            speech: Vec::new(),
            paused_at: None,
            anchor_target: 0,
            counters: PipelineCounters::default(),
            regions: vec![],
            pending: vec![],
            spans: vec![],
            events: vec![],
            asr_closed: None,
            last_rtp: None,
            expecting_since: start,
        })
    }

    /// The stream expects media from `now` on (it was just answered, e.g.
    /// added by a re-INVITE): the RTP timeout counts from here at the
    /// earliest.
    pub fn expect_media_from(&mut self, now: Instant) {
        self.expecting_since = self.expecting_since.max(now);
    }

    /// For the RTP timeout: since when the stream has been without RTP (its
    /// last packet, or when it started expecting media if later); `None`
    /// while paused (no media expected).
    pub fn idle_since(&self) -> Option<Instant> {
        if self.paused_at.is_some() {
            return None;
        }
        Some(match self.last_rtp {
            Some(t) => t.max(self.expecting_since),
            None => self.expecting_since,
        })
    }

    /// Arrival time of the last RTP packet accepted from the source.
    pub fn last_rtp(&self) -> Option<Instant> {
        self.last_rtp
    }

    /// Sample rate of the stream's decoded audio before resampling.
    pub fn native_rate(&self) -> u32 {
        self.decoder.sample_rate()
    }

    /// One datagram from the stream's RTP socket.
    pub fn push(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if is_rtcp(datagram) {
            return;
        }
        let pkt = match parse_rtp(datagram) {
            Ok(p) => p,
            Err(_) => {
                self.counters.malformed += 1;
                return;
            }
        };
        if self.paused_at.is_some() {
            self.counters.ignored_while_paused += 1;
            return;
        }
        match self.latch.check(now, from, pkt.ssrc) {
            LatchDecision::Accept => {}
            LatchDecision::Reject => {
                self.counters.rejected_source += 1;
                return;
            }
            LatchDecision::Switched { old, new, from } => {
                self.events.push(MediaEvent::SsrcChanged {
                    old,
                    new,
                    from: from.to_string(),
                });
            }
        }
        self.last_rtp = Some(self.last_rtp.map_or(now, |t| t.max(now)));
        let pt = pkt.payload_type;
        let known = pt == self.cfg.payload_type
            || Some(pt) == self.cfg.dtmf_payload_type
            || pt == 13
            || pt == 19;
        if !known {
            self.counters.unknown_payload_type += 1;
            return;
        }
        if let PushOutcome::NewSsrc { .. } = self.jitter.push(now, pkt) {
            self.anchor = None;
        }
    }

    /// Play out everything due at `now`: appends the new 16 kHz timeline
    /// samples to `audio` and what happened to `events`.
    pub fn poll(&mut self, now: Instant, audio: &mut Vec<f32>, events: &mut Vec<MediaEvent>) {
        self.anchor_target = self.target(now);
        self.play_due(now, audio);
        let target = self.target(now);
        let idle = self.jitter.next_deadline().is_none();
        if (idle || self.paused_at.is_some()) && self.produced + FILL_SLACK_SAMPLES < target {
            let n = target - self.produced;
            self.emit_silence(n, audio);
        }
        events.append(&mut self.events);
        self.trim_scratch();
    }

    /// The decode and resample scratch buffers grow to the largest unit
    /// ever placed (up to a second of concealment); after such a unit give
    /// the memory back instead of holding it for the rest of the call.
    fn trim_scratch(&mut self) {
        for v in [&mut self.native, &mut self.speech] {
            if v.capacity() > SCRATCH_KEEP {
                v.clear();
                v.shrink_to(SCRATCH_KEEP);
            }
        }
        self.resampler.trim(SCRATCH_KEEP);
    }

    /// The call is over: play out what is buffered, fill to `now`, close
    /// open speech/class/hold/DTMF state.
    pub fn finish(&mut self, now: Instant, audio: &mut Vec<f32>, events: &mut Vec<MediaEvent>) {
        let far = now + self.cfg.jitter_depth + Duration::from_secs(1);
        self.anchor_target = self.target(now);
        self.play_due(far, audio);
        let end = self.elapsed_samples(now);
        if self.produced < end {
            self.emit_silence(end - self.produced, audio);
        }
        let t = self.now_ms();
        if let Some(ev) = self.dtmf.flush() {
            self.on_dtmf(ev);
        }
        if let Some(SpeechEvent::Ended(r)) = self.vad.flush(t) {
            self.pending.push(r);
        }
        if let Some(span) = self.classifier.flush(t) {
            self.push_span(span);
        }
        self.resolve_pending(true);
        if let Some(HoldEvent::Ended { start_ms, end_ms }) = self.hold.flush(t) {
            self.events.push(MediaEvent::HoldEnded { start_ms, end_ms });
        }
        events.append(&mut self.events);
    }

    /// Re-INVITE put the stream on hold: no audio expected, no loss counted.
    pub fn pause(&mut self, now: Instant) {
        if self.paused_at.is_none() {
            let _ = now;
            self.jitter.pause();
            let at = self.now_ms();
            self.paused_at = Some(at);
            self.events.push(MediaEvent::StreamPaused { at_ms: at });
        }
    }

    /// The stream is back: same timeline, the gap recorded.
    pub fn resume(&mut self, now: Instant) {
        if let Some(at) = self.paused_at.take() {
            self.expect_media_from(now);
            self.jitter.resume(now);
            self.anchor = None;
            let now_ms = self.elapsed_samples(now) / PER_MS;
            self.events.push(MediaEvent::StreamResumed {
                at_ms: now_ms,
                gap_ms: now_ms.saturating_sub(at),
            });
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused_at.is_some()
    }

    /// Receive statistics with a MOS estimate.
    pub fn stats(&self) -> StreamStats {
        let mut s = self.jitter.stats();
        let loss = if s.expected > 0 {
            100.0 * s.lost as f64 / s.expected as f64
        } else {
            0.0
        };
        s.mos = if s.packets == 0 {
            0.0
        } else {
            estimate_mos(
                self.cfg.codec,
                loss,
                s.jitter_ms,
                self.cfg.jitter_depth.as_secs_f64() * 1000.0,
            )
        };
        s
    }

    pub fn counters(&self) -> PipelineCounters {
        self.counters
    }

    /// Closed speech regions so far.
    pub fn regions(&self) -> &[SpeechRegion] {
        &self.regions
    }

    /// Finished audio-class spans so far.
    pub fn class_spans(&self) -> &[ClassSpan] {
        &self.spans
    }

    /// The class of the audio being heard now.
    pub fn current_class(&self) -> Option<AudioClass> {
        self.classifier.current()
    }

    /// Milliseconds of timeline produced.
    pub fn now_ms(&self) -> u64 {
        self.produced / PER_MS
    }

    fn elapsed_samples(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_millis() as u64 * PER_MS
    }

    /// Where the timeline should be: `now - depth`.
    fn target(&self, now: Instant) -> u64 {
        let depth = self.cfg.jitter_depth.as_millis() as u64 * PER_MS;
        self.elapsed_samples(now).saturating_sub(depth)
    }

    /// Timeline position of an RTP timestamp. A new anchor (first packet,
    /// new source, resume, or a jump) is placed at the wall-clock position
    /// of the instant being played out, never before what is produced.
    fn position(&mut self, ts: u32) -> u64 {
        let fresh = self.produced.max(self.anchor_target);
        let per_unit = SPEECH_RATE as i64;
        match self.anchor {
            Some((ats, apos)) => {
                let delta_units = ts.wrapping_sub(ats) as i32 as i64;
                let delta = delta_units * per_unit / self.clock_rate as i64;
                let pos = apos as i64 + delta;
                // A jump (either way), or a position running ahead of the
                // wall clock: repeated forward jumps each under the limit
                // would otherwise stretch the timeline without bound (9 s of
                // audio to classify and record per 20 ms packet).
                if pos < 0
                    || (pos - self.produced as i64).abs() > MAX_JUMP_SAMPLES
                    || pos > self.anchor_target as i64 + MAX_AHEAD_SAMPLES
                {
                    self.anchor = Some((ts, fresh));
                    fresh
                } else {
                    pos as u64
                }
            }
            None => {
                self.anchor = Some((ts, fresh));
                fresh
            }
        }
    }

    /// Play everything the jitter buffer releases by `at`.
    fn play_due(&mut self, at: Instant, audio: &mut Vec<f32>) {
        while let Some(unit) = self.jitter.pop(at) {
            match unit {
                Playout::Packet(p) => self.play_packet(p, audio),
                Playout::Lost { timestamp, samples } => self.play_lost(timestamp, samples, audio),
            }
        }
    }

    fn play_packet(&mut self, p: RtpPacket, audio: &mut Vec<f32>) {
        let pt = p.payload_type;
        if Some(pt) == self.cfg.dtmf_payload_type {
            self.counters.dtmf_packets += 1;
            let _ = self.position(p.timestamp);
            if let Some(ev) = self.dtmf.push(p.timestamp, p.marker, &p.payload) {
                self.on_dtmf(ev);
            }
            return;
        }
        if pt != self.cfg.payload_type {
            // Comfort noise: silence until the next audio packet's position.
            self.counters.comfort_noise += 1;
            let _ = self.position(p.timestamp);
            return;
        }
        let pos = self.position(p.timestamp);
        self.native.clear();
        if self.decoder.decode(&p.payload, &mut self.native).is_err() {
            self.counters.decode_errors += 1;
            return;
        }
        self.place(pos, audio);
    }

    fn play_lost(&mut self, timestamp: u32, units: u32, audio: &mut Vec<f32>) {
        let pos = self.position(timestamp);
        let span = units as u64 * SPEECH_RATE as u64 / self.clock_rate as u64;
        if pos + span <= self.produced {
            return; // entirely covered by silence already placed
        }
        self.native.clear();
        // At most MAX_CONCEAL_MS: the rest of a longer gap is the silence
        // `place` puts before the next packet (or a re-anchor).
        let n = codec::conceal_samples(self.cfg.codec, units);
        self.decoder.conceal(n, &mut self.native);
        self.place(pos, audio);
    }

    /// Resample `self.native` and put it on the timeline at `pos`.
    fn place(&mut self, pos: u64, audio: &mut Vec<f32>) {
        self.speech.clear();
        let native = std::mem::take(&mut self.native);
        self.resampler.process(&native, &mut self.speech);
        self.native = native;
        if pos > self.produced {
            // A hole before this unit (e.g. CN, DTMF, or a stretch the
            // jitter buffer never reported): silence.
            let gap = pos - self.produced;
            self.emit_silence(gap, audio);
        }
        let skip = (self.produced - pos.min(self.produced)) as usize;
        if skip < self.speech.len() {
            let samples = std::mem::take(&mut self.speech);
            self.emit(&samples[skip..], audio);
            self.speech = samples;
        }
    }

    fn emit_silence(&mut self, n: u64, audio: &mut Vec<f32>) {
        const ZEROS: [f32; FRAME_SAMPLES] = [0.0; FRAME_SAMPLES];
        let mut left = n;
        while left > 0 {
            let k = left.min(FRAME_SAMPLES as u64) as usize;
            self.emit(&ZEROS[..k], audio);
            left -= k as u64;
        }
    }

    fn emit(&mut self, samples: &[f32], audio: &mut Vec<f32>) {
        audio.extend_from_slice(samples);
        let mut rest = samples;
        while !rest.is_empty() {
            let take = (FRAME_SAMPLES - self.frame.len()).min(rest.len());
            self.frame.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            self.produced += take as u64;
            if self.frame.len() == FRAME_SAMPLES {
                self.analyse();
                self.frame.clear();
            }
        }
    }

    /// One complete 20 ms frame ending at `produced`.
    fn analyse(&mut self) {
        let t = (self.produced - FRAME_SAMPLES as u64) / PER_MS;
        match self.vad.push(t, &self.frame) {
            // webrtc-vad fires on music too: no start while the classifier
            // already hears music or a tone.
            Some(SpeechEvent::Started { at_ms }) if !matches!(self.classifier.current(), Some(c) if not_speech(c)) => {
                self.events.push(MediaEvent::SpeechStarted { at_ms })
            }
            Some(SpeechEvent::Ended(r)) => {
                self.events.push(MediaEvent::SpeechClosed {
                    start_ms: r.start_ms,
                    end_ms: r.end_ms,
                    likely_speech: self.classifier.current() == Some(AudioClass::Speech),
                });
                self.pending.push(r)
            }
            _ => {}
        }
        // The recogniser's end of utterance comes sooner than the VAD's
        // hangover: after ASR_ENDPOINT_MS without voice, once per region.
        if let Some((start, last)) = self.vad.open_region() {
            let now = t + u64::from(crate::vad::FRAME_MS);
            if now.saturating_sub(last) >= ASR_ENDPOINT_MS && self.asr_closed != Some((start, last))
            {
                self.asr_closed = Some((start, last));
                self.events.push(MediaEvent::SpeechClosed {
                    start_ms: start,
                    end_ms: last,
                    likely_speech: self.classifier.current() == Some(AudioClass::Speech),
                });
            }
        }
        let hint = self.vad.last_frame_voiced();
        let changed = self.classifier.push(t, &self.frame, hint);
        let Some(class) = self.classifier.current() else {
            return;
        };
        // Classes are decided with a lag; feed the hold detector the
        // decided time (and the exact start of a new class).
        let mut hold = vec![];
        if let Some(span) = changed {
            let start = span.end_ms;
            self.push_span(span);
            hold.extend(self.hold.update(start, class));
        }
        hold.extend(self.hold.update(self.classifier.decided_ms(), class));
        self.resolve_pending(false);
        for h in hold {
            self.events.push(match h {
                HoldEvent::Started { at_ms } => MediaEvent::HoldStarted { at_ms },
                HoldEvent::Ended { start_ms, end_ms } => MediaEvent::HoldEnded { start_ms, end_ms },
            });
        }
    }

    /// Turn VAD regions the classifier has ruled on into speech regions:
    /// what it heard as music, tone or DTMF is cut out (hold music is not
    /// talk time); pieces shorter than the VAD's minimum are dropped.
    fn resolve_pending(&mut self, all: bool) {
        if self.pending.is_empty() {
            return;
        }
        let decided = self.classifier.decided_ms();
        let current = self.classifier.current_span();
        let min = self.vad.config().min_speech_ms as u64;
        let mut i = 0;
        while i < self.pending.len() {
            let r = self.pending[i];
            if !all && r.end_ms > decided {
                i += 1;
                continue;
            }
            self.pending.remove(i);
            // Non-speech intervals overlapping r, from the finished spans
            // (newest last) and the current one.
            let mut cuts: Vec<(u64, u64)> = self
                .spans
                .iter()
                .rev()
                .take_while(|s| s.end_ms > r.start_ms)
                .filter(|s| not_speech(s.class))
                .map(|s| (s.start_ms, s.end_ms))
                .collect();
            if let Some((c, start)) = current {
                if not_speech(c) {
                    cuts.push((start, decided.max(r.end_ms)));
                }
            }
            cuts.sort_unstable();
            let mut pieces: Vec<(u64, u64)> = vec![];
            let mut from = r.start_ms;
            for (a, b) in cuts {
                if b <= from || a >= r.end_ms {
                    continue;
                }
                if a > from {
                    pieces.push((from, a));
                }
                from = from.max(b);
            }
            if from < r.end_ms {
                pieces.push((from, r.end_ms));
            }
            // A region that is mostly music is music: the classifier
            // notices an onset late (its window is 1 s), so short slivers
            // left at the edges of a long cut go too.
            let kept: u64 = pieces.iter().map(|(a, b)| b - a).sum();
            let mostly_cut = 2 * kept < r.end_ms - r.start_ms;
            let mut any = false;
            for (a, b) in pieces {
                if mostly_cut && b - a < MUSIC_EDGE_MS {
                    continue;
                }
                any |= self.keep_region(a, b, min);
            }
            if !any {
                self.events.push(MediaEvent::SpeechDiscarded {
                    start_ms: r.start_ms,
                    end_ms: r.end_ms,
                });
            }
        }
    }

    fn keep_region(&mut self, start_ms: u64, end_ms: u64, min: u64) -> bool {
        if end_ms.saturating_sub(start_ms) < min {
            return false;
        }
        self.regions.push(SpeechRegion { start_ms, end_ms });
        self.events
            .push(MediaEvent::SpeechEnded { start_ms, end_ms });
        true
    }

    fn push_span(&mut self, span: ClassSpan) {
        if self.spans.len() >= MAX_SPANS {
            // Keep the recent half: old spans matter to nothing pending.
            self.spans.drain(..MAX_SPANS / 2);
        }
        self.spans.push(span);
    }

    fn on_dtmf(&mut self, ev: codec::DtmfEvent) {
        let at = match self.anchor {
            Some((ats, apos)) => {
                let d = ev.start_ts.wrapping_sub(ats) as i32 as i64 * SPEECH_RATE as i64
                    / self.clock_rate as i64;
                (apos as i64 + d).max(0) as u64 / PER_MS
            }
            None => self.now_ms(),
        };
        self.events.push(MediaEvent::Dtmf {
            digit: ev.digit,
            at_ms: at,
            duration_ms: ev.duration as u64 * 1000 / self.clock_rate.max(1) as u64,
        });
    }
}
