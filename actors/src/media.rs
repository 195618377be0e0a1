//! The `MediaActor`: one per call, on one of the media arbiters (threads
//! separate from signalling and HTTP). It owns the call's RTP/RTCP sockets
//! and one [`StreamPipeline`] per answered m-line.
//!
//! Every tick ([`MediaConfig::tick`], 40 ms by default) the actor drains
//! each RTP socket without waiting
//! ([`crate::udp::Receiver`]: one `recvmmsg` per socket, kernel arrival
//! times, no per-packet task, wake-up or allocation), pushes the datagrams
//! into the stream's pipeline, plays out what is due, writes the recordings
//! (one WAV per stream, plus a stereo WAV of the first two streams), and
//! sends what happened (speech, DTMF, hold, SSRC, pause events) to its
//! `CallActor`. The socket's kernel queue is the bounded queue in front of
//! the call: when the engine falls behind and it overflows, the kernel drops
//! and counts, and those drops are reported as `dropped_by_engine`. RTCP
//! sockets are drained every half second. Every second the actor
//! also reports the streams' statistics and flushes the WAV headers (so a
//! crash loses at most the last second of audio).
//!
//! Recordings of 8 kHz codecs (G.711) are written at 8 kHz (every other
//! sample of the 16 kHz speech path, whose upsampler leaves nothing above
//! 4 kHz); wideband codecs at 16 kHz. The stereo file is 8 kHz only when
//! both sides are.

use crate::asr::{AsrPool, Job};
use crate::call::{CallActor, MediaReport, StreamReport};
use crate::pagefile::PageWriter;
use crate::udp::Receiver;
use actix::prelude::*;
use earshot::asr::tracker::{JobKind, TrackerConfig, UtteranceTracker};
use earshot::codec::SPEECH_RATE;
use earshot::media::{MediaEvent, RtpTimeout, StreamConfig, StreamPipeline};
use earshot::sdp::{Codec, StreamAnswer};
use earshot::vad::VadConfig;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Statistics and WAV header flush period.
const REPORT_PERIOD: Duration = Duration::from_secs(1);
/// RTCP sockets are drained this often (RTCP comes every few seconds).
const RTCP_PERIOD: Duration = Duration::from_millis(500);
/// Most audio one stereo side may run ahead of the other before the other
/// is padded with silence.
const MAX_STEREO_SKEW: Duration = Duration::from_secs(1);
/// Audio buffers larger than this (100 ms) are shrunk after a tick (see
/// [`Cadence::kept_samples`]).
const MAX_KEPT_SAMPLES: usize = 1_600;

type Wav = hound::WavWriter<PageWriter>;

/// Media settings shared by every call.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Play-out period: how often each call's sockets are drained and its
    /// audio played out, analysed and recorded. Kernel arrival times keep
    /// the jitter buffer exact whatever it is; a longer tick adds up to a
    /// tick of latency and saves per-tick work (syscalls, timer wake-ups).
    pub tick: Duration,
    pub jitter_depth: Duration,
    pub vad_mode: u8,
    pub strict_source: bool,
    /// End the call when no stream has had RTP this long (`None`: off).
    pub rtp_timeout: Option<RtpTimeout>,
    /// Root of the recordings (`<data_dir>/recordings`).
    pub recordings_dir: PathBuf,
    /// The recogniser, when ASR is on.
    pub asr: Option<AsrPool>,
    pub tracker: TrackerConfig,
}

/// What a stream's RTCP port has told us.
#[derive(Debug, Clone, Copy, Default)]
pub struct RtcpSeen {
    pub packets: u64,
    pub malformed: u64,
    pub sender_reports: u64,
    /// Packet count of the SRC's latest sender report: what it says it sent.
    pub src_packets_sent: Option<u32>,
}

impl RtcpSeen {
    fn absorb(&mut self, datagram: &[u8]) {
        self.packets += 1;
        match earshot::rtp::parse_rtcp(datagram) {
            Ok(infos) => {
                for i in infos {
                    if let earshot::rtp::RtcpInfo::SenderReport(sr) = i {
                        self.sender_reports += 1;
                        self.src_packets_sent = Some(sr.packet_count);
                    }
                }
            }
            Err(_) => self.malformed += 1,
        }
    }
}

/// What the call hands its media actor for one stream.
pub struct StreamSetup {
    pub answer: StreamAnswer,
    /// RTP and (best effort) RTCP sockets; `None` for a stream whose
    /// sockets the media actor already reads.
    pub sockets: Option<(std::net::UdpSocket, Option<std::net::UdpSocket>)>,
}

struct Stream {
    index: usize,
    label: String,
    pipeline: StreamPipeline,
    rtp: Receiver,
    rtcp: Option<Receiver>,
    /// Datagrams the kernel dropped because the engine read too late.
    dropped: u64,
    rtcp_seen: RtcpSeen,
    wav: Option<Wav>,
    path: PathBuf,
    /// Recording sample rate (8 kHz for 8 kHz codecs, else 16 kHz).
    rec_rate: u32,
    /// 16 kHz samples played so far, mod 2 (which ones an 8 kHz recording
    /// keeps).
    rec_phase: usize,
    /// This tick's new audio (16 kHz), and at the recording rate.
    audio: Vec<f32>,
    rec: Vec<f32>,
    /// What of this participant's speech goes to the recogniser (ASR on).
    asr: Option<UtteranceTracker>,
}

/// What follows from the tick, worked out once per call.
#[derive(Debug, Clone, Copy)]
struct Cadence {
    /// Ticks between RTCP drains ([`RTCP_PERIOD`]).
    rtcp_ticks: u32,
    /// Ticks between reports and WAV header flushes ([`REPORT_PERIOD`]).
    report_ticks: u32,
    /// Audio buffer capacity kept from one tick to the next: 100 ms of 16
    /// kHz samples, or two and a half ticks if that is more (a buffer grown
    /// by one late tick is shrunk back).
    kept_samples: usize,
}

impl Cadence {
    fn new(tick: Duration) -> Self {
        let tick_ms = tick.as_millis().max(1);
        // How many ticks make `period` (at least one: it is a modulus).
        let ticks = |period: Duration| {
            u32::try_from(period.as_millis() / tick_ms)
                .unwrap_or(u32::MAX)
                .max(1)
        };
        let per_tick = SPEECH_RATE as usize * tick.as_millis() as usize / 1000;
        Cadence {
            rtcp_ticks: ticks(RTCP_PERIOD),
            report_ticks: ticks(REPORT_PERIOD),
            kept_samples: MAX_KEPT_SAMPLES.max(per_tick * 5 / 2),
        }
    }
}

/// This tick's audio at `rate`: the 16 kHz audio, or every other sample of
/// it for 8 kHz.
fn at_rate<'a>(audio: &'a [f32], rec: &'a [f32], rate: u32) -> &'a [f32] {
    if rate == SPEECH_RATE {
        audio
    } else {
        rec
    }
}

pub struct MediaActor {
    call: Addr<CallActor>,
    cfg: MediaConfig,
    start: Instant,
    dir: PathBuf,
    /// Sockets and answers waiting for `started` (they must be registered
    /// on this arbiter's runtime).
    pending: Vec<StreamSetup>,
    streams: Vec<Stream>,
    stereo: Option<Wav>,
    stereo_path: Option<PathBuf>,
    stereo_rate: u32,
    /// Left/right samples not yet written as stereo frames.
    left: Vec<f32>,
    right: Vec<f32>,
    ticks: u32,
    cadence: Cadence,
    events: Vec<(usize, MediaEvent)>,
    finished: bool,
    /// Finals the recogniser's queue had no room for, oldest first: offered
    /// again every tick, handed to the call at the end. Never dropped.
    deferred: VecDeque<Job>,
    /// Finals made so far (the call waits for this many results).
    finals_made: u64,
    /// The RTP timeout fired (once per call): how long the call had been
    /// without media; sent with the next report.
    no_media: Option<Duration>,
}

/// A directory name for a call: its Call-ID made path-safe, plus a hash so
/// two Call-IDs that clean up alike stay apart.
pub fn call_dir(root: &Path, call_id: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let clean: String = call_id
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    root.join(format!("{clean}-{:08x}", h.finish() as u32))
}

fn label_file(label: &str) -> String {
    let clean: String = label
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("leg-{clean}.wav")
}

fn wav_spec(channels: u16, sample_rate: u32) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// A recording, written page by page ([`PageWriter`]).
fn create_wav(path: &Path, spec: hound::WavSpec) -> hound::Result<Wav> {
    hound::WavWriter::new(PageWriter::new(File::create(path)?), spec)
}

fn to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0) as i16
}

/// Append samples to a mono 16-bit WAV (hound's bulk writer).
fn write_mono(w: &mut Wav, samples: &[f32]) {
    write_i16(w, samples.iter().map(|&x| to_i16(x)), "recording");
}

/// Samples per write to a WAV: hound keeps a writer's buffer at the
/// largest write it was ever asked for, so one late tick (a second of audio
/// played out at once under overload) would pin that much per file for the
/// rest of the call; at 2,000 overloaded calls that was ~0.7 GB of stereo
/// buffers alone.
const WRITE_CHUNK: usize = 1_600;

/// Write `samples` in chunks of at most [`WRITE_CHUNK`].
fn write_i16(w: &mut Wav, mut samples: impl ExactSizeIterator<Item = i16>, what: &str) {
    let mut left = samples.len();
    while left > 0 {
        let n = left.min(WRITE_CHUNK);
        let mut sw = w.get_i16_writer(n as u32);
        for x in samples.by_ref().take(n) {
            sw.write_sample(x);
        }
        if let Err(e) = sw.flush() {
            tracing::warn!(%e, "writing {what}");
            return;
        }
        left -= n;
    }
}

impl MediaActor {
    pub fn new(
        call: Addr<CallActor>,
        cfg: MediaConfig,
        call_id: &str,
        start: Instant,
        streams: Vec<StreamSetup>,
    ) -> Self {
        let dir = call_dir(&cfg.recordings_dir, call_id);
        Self {
            call,
            cadence: Cadence::new(cfg.tick),
            cfg,
            start,
            dir,
            pending: streams,
            streams: vec![],
            stereo: None,
            stereo_path: None,
            stereo_rate: SPEECH_RATE,
            left: vec![],
            right: vec![],
            ticks: 0,
            events: vec![],
            finished: false,
            deferred: VecDeque::new(),
            finals_made: 0,
            no_media: None,
        }
    }

    fn stream_config(&self, a: &StreamAnswer) -> Option<StreamConfig> {
        let codec = a.codec?;
        if codec == Codec::TelephoneEvent {
            return None;
        }
        Some(StreamConfig {
            codec,
            payload_type: a.payload_type?,
            dtmf_payload_type: a.dtmf_payload_type,
            jitter_depth: self.cfg.jitter_depth,
            vad: VadConfig {
                mode: self.cfg.vad_mode,
                ..VadConfig::default()
            },
            strict_source: self.cfg.strict_source,
        })
    }

    fn add_stream(&mut self, setup: StreamSetup) {
        let a = &setup.answer;
        let Some((rtp, rtcp)) = setup.sockets else {
            return;
        };
        let Some(scfg) = self.stream_config(a) else {
            return;
        };
        let mut pipeline = match StreamPipeline::new(scfg, self.start) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%e, port = a.port, "cannot decode stream; not recording it");
                return;
            }
        };
        // A stream added by a renegotiation expects media from now on.
        pipeline.expect_media_from(Instant::now());
        let label = a
            .label
            .as_ref()
            .map(|l| l.0.clone())
            .unwrap_or_else(|| a.index.to_string());
        let index = a.index;
        let rtp = match Receiver::new(rtp) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%e, port = a.port, "RTP socket; not recording the stream");
                return;
            }
        };
        let rtcp = rtcp.and_then(|s| {
            Receiver::new(s)
                .map_err(|e| tracing::warn!(%e, "RTCP socket; ignoring RTCP"))
                .ok()
        });
        let rec_rate = if pipeline.native_rate() <= 8000 {
            8000
        } else {
            SPEECH_RATE
        };
        let path = self.dir.join(label_file(&label));
        let wav = match std::fs::create_dir_all(&self.dir)
            .map_err(|e| e.to_string())
            .and_then(|_| create_wav(&path, wav_spec(1, rec_rate)).map_err(|e| e.to_string()))
        {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(%e, path = %path.display(), "cannot create recording");
                None
            }
        };
        self.streams.push(Stream {
            index,
            label,
            pipeline,
            rtp,
            rtcp,
            dropped: 0,
            rtcp_seen: RtcpSeen::default(),
            wav,
            path,
            rec_rate,
            rec_phase: 0,
            audio: Vec::with_capacity(320),
            rec: Vec::new(),
            asr: self
                .cfg
                .asr
                .as_ref()
                .map(|_| UtteranceTracker::new(self.cfg.tracker)),
        });
        if self.streams.len() == 2 && self.stereo.is_none() {
            let p = self.dir.join("stereo.wav");
            self.stereo_rate = self.streams[0].rec_rate.max(self.streams[1].rec_rate);
            match create_wav(&p, wav_spec(2, self.stereo_rate)) {
                Ok(w) => {
                    self.stereo = Some(w);
                    self.stereo_path = Some(p);
                }
                Err(e) => tracing::error!(%e, "cannot create stereo recording"),
            }
        }
    }

    /// Play out every stream (`last`: the call is over, close everything),
    /// write the legs' recordings and the stereo mix, collect events.
    fn play(&mut self, now: Instant, last: bool) {
        let mut events = vec![];
        for (i, s) in self.streams.iter_mut().enumerate() {
            s.audio.clear();
            if last {
                s.pipeline.finish(now, &mut s.audio, &mut events);
            } else {
                s.pipeline.poll(now, &mut s.audio, &mut events);
            }
            if let Some(t) = s.asr.as_mut() {
                t.push_audio(&s.audio);
                for e in &events {
                    match *e {
                        MediaEvent::SpeechStarted { at_ms } => t.speech_started(at_ms),
                        MediaEvent::SpeechEnded { start_ms, end_ms } => {
                            t.speech_ended(start_ms, end_ms)
                        }
                        MediaEvent::SpeechDiscarded { start_ms, end_ms } => {
                            t.speech_discarded(start_ms, end_ms)
                        }
                        MediaEvent::SpeechClosed {
                            start_ms,
                            end_ms,
                            likely_speech,
                        } => t.speech_closed(start_ms, end_ms, likely_speech),
                        _ => {}
                    }
                }
            }
            for e in events.drain(..) {
                if !matches!(
                    e,
                    MediaEvent::SpeechDiscarded { .. } | MediaEvent::SpeechClosed { .. }
                ) {
                    self.events.push((s.index, e));
                }
            }
            s.rec.clear();
            if s.rec_rate != SPEECH_RATE {
                let skip = s.rec_phase;
                s.rec.extend(s.audio.iter().skip(skip).step_by(2));
                s.rec_phase = (s.rec_phase + s.audio.len()) % 2;
            }
            if let Some(w) = s.wav.as_mut() {
                write_mono(w, at_rate(&s.audio, &s.rec, s.rec_rate));
            }
            match i {
                0 => self
                    .left
                    .extend_from_slice(at_rate(&s.audio, &s.rec, self.stereo_rate)),
                1 => self
                    .right
                    .extend_from_slice(at_rate(&s.audio, &s.rec, self.stereo_rate)),
                _ => {}
            }
        }
        self.write_stereo(last);
        self.submit_asr(now);
    }

    /// Hand the trackers' requests to the recogniser: deferred finals first
    /// (in order), then new ones. A partial without room is skipped (and
    /// the tracker may send the next); a final without room waits here.
    fn submit_asr(&mut self, now: Instant) {
        let Some(pool) = self.cfg.asr.clone() else {
            return;
        };
        pool.submit_deferred(&mut self.deferred);
        for s in self.streams.iter_mut() {
            let Some(t) = s.asr.as_mut() else {
                continue;
            };
            while let Some(req) = t.poll() {
                let kind = req.kind;
                let utterance = req.utterance;
                if kind == JobKind::Final {
                    self.finals_made += 1;
                }
                let job = Job {
                    call: self.call.clone(),
                    stream: s.index,
                    req,
                    queued_at: now,
                };
                if kind == JobKind::Final && !self.deferred.is_empty() {
                    self.deferred.push_back(job);
                    continue;
                }
                match pool.submit(job) {
                    Ok(true) => {}
                    Ok(false) => t.partial_done(utterance),
                    Err(job) => self.deferred.push_back(job),
                }
            }
        }
    }

    fn tick(&mut self, now: Instant) {
        // Everything the sockets queued since the last tick.
        let rtcp = self.ticks.is_multiple_of(self.cadence.rtcp_ticks);
        for s in self.streams.iter_mut() {
            let pipeline = &mut s.pipeline;
            match s
                .rtp
                .drain(now, |at, from, bytes| pipeline.push(at, from, bytes))
            {
                Ok(d) => s.dropped += d.dropped,
                Err(e) => tracing::debug!(%e, stream = s.index, "RTP receive"),
            }
            if let (true, Some(r)) = (rtcp, s.rtcp.as_mut()) {
                let seen = &mut s.rtcp_seen;
                if let Err(e) = r.drain(now, |_, _, bytes| seen.absorb(bytes)) {
                    tracing::debug!(%e, stream = s.index, "RTCP receive");
                }
            }
        }
        self.play(now, false);
        self.check_rtp_timeout(now);
        // A late tick (overload) produces a long chunk; don't keep its
        // capacity around for the rest of the call.
        let kept = self.cadence.kept_samples;
        for s in self.streams.iter_mut() {
            if s.audio.capacity() > kept {
                s.audio = Vec::new();
                s.rec = Vec::new();
            }
        }
        let skew = self.max_skew();
        for v in [&mut self.left, &mut self.right] {
            if v.capacity() > 2 * skew && v.len() < kept {
                v.shrink_to(kept);
            }
        }
    }

    /// No RTP on any stream expecting media for the RTP timeout: say so on
    /// each of them (a `no_media` event) and tell the call with the next
    /// report (it ends the call). Once per call.
    fn check_rtp_timeout(&mut self, now: Instant) {
        let Some(t) = self.cfg.rtp_timeout else {
            return;
        };
        if self.no_media.is_some() {
            return;
        }
        let Some(silent) = t.expired(now, self.streams.iter().map(|s| s.pipeline.idle_since()))
        else {
            return;
        };
        let silent_ms = silent.as_millis() as u64;
        for s in &self.streams {
            if s.pipeline.idle_since().is_some() {
                self.events.push((
                    s.index,
                    MediaEvent::NoMedia {
                        at_ms: s.pipeline.now_ms(),
                        silent_ms,
                    },
                ));
            }
        }
        self.no_media = Some(silent);
    }

    fn max_skew(&self) -> usize {
        (MAX_STEREO_SKEW.as_millis() as usize) * self.stereo_rate as usize / 1000
    }

    /// Write the aligned part of left/right; at the end pad the shorter side.
    fn write_stereo(&mut self, end: bool) {
        let skew = self.max_skew();
        let Some(w) = self.stereo.as_mut() else {
            self.left.clear();
            self.right.clear();
            return;
        };
        let (l, r) = (self.left.len(), self.right.len());
        // One side silent or far behind (e.g. its source stalled): pad it
        // rather than let the other side pile up.
        let n = if end || l.abs_diff(r) > skew {
            l.max(r)
        } else {
            l.min(r)
        };
        let (left, right) = (&self.left, &self.right);
        let side = |v: &Vec<f32>, i: usize| to_i16(v.get(i).copied().unwrap_or(0.0));
        let frames = (0..2 * n).map(|j| {
            if j % 2 == 0 {
                side(left, j / 2)
            } else {
                side(right, j / 2)
            }
        });
        write_i16(w, frames, "stereo recording");
        self.left.drain(..n.min(self.left.len()));
        self.right.drain(..n.min(self.right.len()));
    }

    fn report(&mut self, with_stats: bool) -> MediaReport {
        let streams = if with_stats {
            self.streams
                .iter()
                .map(|s| StreamReport {
                    index: s.index,
                    label: s.label.clone(),
                    stats: s.pipeline.stats(),
                    counters: s.pipeline.counters(),
                    dropped_by_engine: s.dropped,
                    rtcp: s.rtcp_seen,
                    regions: s.pipeline.regions().to_vec(),
                    class: s.pipeline.current_class(),
                    recording: s.wav.as_ref().map(|_| s.path.display().to_string()),
                    recorded_ms: s.pipeline.now_ms(),
                })
                .collect()
        } else {
            vec![]
        };
        MediaReport {
            events: std::mem::take(&mut self.events),
            streams,
            stereo: self.stereo_path.as_ref().map(|p| p.display().to_string()),
            asr_finals: self.finals_made,
            deferred_finals: vec![],
            no_media: self.no_media,
        }
    }

    fn flush_files(&mut self) {
        for s in self.streams.iter_mut() {
            if let Some(w) = s.wav.as_mut() {
                let _ = w.flush();
            }
        }
        if let Some(w) = self.stereo.as_mut() {
            let _ = w.flush();
        }
    }
}

impl Actor for MediaActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let now = Instant::now();
        for s in std::mem::take(&mut self.pending) {
            let paused = s.answer.paused;
            self.add_stream(s);
            if paused {
                if let Some(st) = self.streams.last_mut() {
                    st.pipeline.pause(now);
                }
            }
        }
        ctx.run_interval(self.cfg.tick, |act, _| {
            if act.finished {
                return;
            }
            act.tick(Instant::now());
            act.ticks += 1;
            let stats = act.ticks.is_multiple_of(act.cadence.report_ticks);
            if stats {
                act.flush_files();
            }
            if stats || !act.events.is_empty() {
                let r = act.report(stats);
                act.call.do_send(r);
            }
        });
    }
}

/// Streams renegotiated: pause/resume existing ones, start new ones.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Renegotiate(pub Vec<StreamSetup>);

impl Handler<Renegotiate> for MediaActor {
    type Result = ();
    fn handle(&mut self, m: Renegotiate, _: &mut Context<Self>) {
        let now = Instant::now();
        let mut by_index: HashMap<usize, StreamSetup> =
            m.0.into_iter().map(|s| (s.answer.index, s)).collect();
        for s in self.streams.iter_mut() {
            if let Some(setup) = by_index.remove(&s.index) {
                if setup.answer.paused {
                    s.pipeline.pause(now);
                } else {
                    s.pipeline.resume(now);
                }
            }
        }
        for (_, setup) in by_index {
            let paused = setup.answer.paused;
            self.add_stream(setup);
            if paused {
                if let Some(s) = self.streams.last_mut() {
                    s.pipeline.pause(now);
                }
            }
        }
    }
}

/// A partial of `utterance` on stream `stream` came back: the tracker may
/// send the next.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PartialDone {
    pub stream: usize,
    pub utterance: u64,
}

impl Handler<PartialDone> for MediaActor {
    type Result = ();
    fn handle(&mut self, m: PartialDone, _: &mut Context<Self>) {
        if let Some(t) = self
            .streams
            .iter_mut()
            .find(|s| s.index == m.stream)
            .and_then(|s| s.asr.as_mut())
        {
            t.partial_done(m.utterance);
        }
    }
}

/// End of call: play out, close everything, finalize the WAVs, and return
/// the final report.
#[derive(Message)]
#[rtype(result = "MediaReport")]
pub struct StopMedia;

impl Handler<StopMedia> for MediaActor {
    type Result = MessageResult<StopMedia>;
    fn handle(&mut self, _: StopMedia, ctx: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        self.tick(now);
        self.play(now, true);
        self.finished = true;
        let mut report = self.report(true);
        report.deferred_finals = self.deferred.drain(..).collect();
        for s in self.streams.iter_mut() {
            if let Some(w) = s.wav.take() {
                if let Err(e) = w.finalize() {
                    tracing::warn!(%e, "finalizing recording");
                }
            }
        }
        if let Some(w) = self.stereo.take() {
            if let Err(e) = w.finalize() {
                tracing::warn!(%e, "finalizing stereo recording");
            }
        }
        // Close the sockets now, before the reply: the call then tells the
        // UAS its ports may be handed out again.
        self.streams.clear();
        ctx.stop();
        MessageResult(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_in_ticks() {
        let at = |tick_ms| Cadence::new(Duration::from_millis(tick_ms));
        assert_eq!(at(20).report_ticks, 50);
        assert_eq!(at(40).report_ticks, 25);
        assert_eq!(at(40).rtcp_ticks, 12);
        assert_eq!(at(200).rtcp_ticks, 2);
        // Never 0 (a modulus), even for a tick longer than the period.
        assert_eq!(at(600).rtcp_ticks, 1);
        assert_eq!(Cadence::new(Duration::ZERO).report_ticks, 1000);
        assert_eq!(at(40).kept_samples, MAX_KEPT_SAMPLES);
        assert_eq!(at(200).kept_samples, 8_000);
        // A normal tick's audio (16 samples a ms) is never shrunk away, at
        // any tick the configuration allows.
        for tick_ms in 10..=200u64 {
            assert!(at(tick_ms).kept_samples >= 2 * 16 * tick_ms as usize);
        }
    }

    #[test]
    fn rtcp_sender_reports_are_read_and_junk_counted() {
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&0x1111_2222u32.to_be_bytes()); // SSRC
        sr.extend_from_slice(&[0; 8]); // NTP
        sr.extend_from_slice(&1234u32.to_be_bytes()); // RTP ts
        sr.extend_from_slice(&777u32.to_be_bytes()); // packets sent
        sr.extend_from_slice(&(777u32 * 160).to_be_bytes()); // octets
        let mut seen = RtcpSeen::default();
        seen.absorb(&sr);
        seen.absorb(b"\x80\xc8junk");
        assert_eq!(seen.packets, 2);
        assert_eq!(seen.sender_reports, 1);
        assert_eq!(seen.src_packets_sent, Some(777));
        assert_eq!(seen.malformed, 1);
    }

    #[test]
    fn long_writes_go_in_chunks_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = create_wav(&path, spec).unwrap();
        // 2.5 chunks, then an empty write, then a short one.
        let long: Vec<i16> = (0..(WRITE_CHUNK * 5 / 2) as i32)
            .map(|i| (i % 30_000) as i16)
            .collect();
        write_i16(&mut w, long.iter().copied(), "test");
        write_i16(&mut w, std::iter::empty::<i16>(), "test");
        write_i16(&mut w, [7i16, -7].into_iter(), "test");
        w.finalize().unwrap();
        let back: Vec<i16> = hound::WavReader::open(&path)
            .unwrap()
            .samples::<i16>()
            .map(Result::unwrap)
            .collect();
        assert_eq!(back.len(), long.len() + 2);
        assert_eq!(&back[..long.len()], &long[..]);
        assert_eq!(&back[long.len()..], &[7, -7]);
    }

    #[test]
    fn call_dirs_are_path_safe_and_distinct() {
        let root = Path::new("/rec");
        let a = call_dir(root, "a/../b@host");
        let b = call_dir(root, "a_.._b@host");
        // One component right under the root, whatever the Call-ID holds.
        for id in ["a/../b@host", "..", "/etc/passwd", ""] {
            let d = call_dir(root, id);
            assert_eq!(d.parent(), Some(root), "{id}");
            assert!(d.components().count() == root.components().count() + 1);
        }
        assert_ne!(a, b);
        assert_eq!(label_file("1"), "leg-1.wav");
        assert_eq!(label_file("../x"), "leg-___x.wav");
    }
}
