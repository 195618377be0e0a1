//! One recording session: the supervised `CallActor`.
//!
//! It owns the session record and starts the call's `MediaActor` (on a
//! media arbiter) with the RTP/RTCP sockets the registry bound before the
//! 200 OK. It applies signalling updates the registry forwards, folds the
//! media actor's reports (events, statistics, speech regions, recordings)
//! into the record, journals the record to the store every few seconds, and
//! at the end stops the media (final playout, WAVs finalized), writes the
//! final record durably, and tells the registry. Every handler runs behind a panic guard:
//! a panic ends this call as `failed` with the panic message, persisted, and
//! touches nothing else.

use crate::analysis::{Analyse, AnalysisActor, TakeSnapshot};
use crate::asr::Job;
use crate::media::{MediaActor, MediaConfig, PartialDone, Renegotiate, StopMedia, StreamSetup};
use crate::pipeline::{PipelineActor, RunPipeline};
use crate::registry::{Finished, RegistryActor, Snapshot};
use crate::store::{Put, StoreActor};
use actix::prelude::*;
use earshot::asr::agreement::Agreement;
use earshot::asr::tracker::JobKind;
use earshot::asr::{Hypothesis, Segment, Word};
use earshot::classify::AudioClass;
use earshot::ids::Label;
use earshot::media::{MediaEvent, PipelineCounters};
use earshot::metadata::RecordingMetadata;
use earshot::rtp::stats::StreamStats;
use earshot::sdp::StreamAnswer;
use earshot::session::{CallStatus, ReceiveCounters, SessionRecord};
use earshot::vad::SpeechRegion;
use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// How often a live call refreshes the registry's view.
const TICK: Duration = Duration::from_secs(1);
/// A live call whose results changed (events, segments, analysis, state)
/// is journaled to the store at the next tick, so a crash loses at most the
/// last second of them (plus sled's flush interval, [`crate::store`]); one
/// whose only change is its RTP counters, every this many ticks.
const JOURNAL_TICKS: u32 = 5;
/// After the call ended, how long its transcript may still take to finish
/// (outstanding finals) before the record is closed without them.
const FINALS_GRACE: Duration = Duration::from_secs(300);
/// Finalized utterances remembered per stream (partials in flight are far
/// fewer: one per stream at a time).
const FINALIZED_KEPT: usize = 16;

/// What a live call changed since its record was last journaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Unsaved {
    Nothing,
    /// Only RTP counters: journaled every [`JOURNAL_TICKS`].
    Counters,
    /// Events, segments, analysis or state: journaled at the next tick.
    Results,
}

/// RTP socket (and RTCP socket on port+1, when it could be bound) of a port.
pub type BoundPort = (u16, std::net::UdpSocket, Option<std::net::UdpSocket>);

/// Bind the RTP port and, best effort, RTCP on port+1.
pub fn bind_port(ip: std::net::IpAddr, port: u16) -> std::io::Result<BoundPort> {
    let rtp = std::net::UdpSocket::bind((ip, port))?;
    let rtcp = port
        .checked_add(1)
        .and_then(|p| std::net::UdpSocket::bind((ip, p)).ok());
    Ok((port, rtp, rtcp))
}

pub struct CallActor {
    record: SessionRecord,
    metadata: Option<RecordingMetadata>,
    streams: Vec<StreamAnswer>,
    registry: Addr<RegistryActor>,
    store: Addr<StoreActor>,
    media: Option<Addr<MediaActor>>,
    /// Sockets not yet handed to the media actor.
    unbound: Vec<BoundPort>,
    /// Ports the media actor already reads.
    ports: HashSet<u16>,
    media_cfg: MediaConfig,
    arbiter: ArbiterHandle,
    start: Instant,
    bind_ip: std::net::IpAddr,
    /// What changed since the last journal write.
    unsaved: Unsaved,
    ticks: u32,
    finishing: bool,
    /// Test hook: panic on the first tick (from `X-Earshot-Fault: panic`
    /// when fault injection is enabled).
    fault: bool,
    /// Finals handed over at the end that the recogniser had no room for.
    deferred: VecDeque<Job>,
    /// Partial stabilisation per stream: (utterance, agreement).
    agreements: HashMap<usize, (u64, Agreement)>,
    /// The latest utterances per stream whose final came back: a partial
    /// of one of them that a second worker finishes later is stale.
    finalized: HashMap<usize, VecDeque<u64>>,
    /// The call has ended and its record is stored; waiting for finals.
    draining: Option<Instant>,
    hub: Addr<crate::ws::Hub>,
    /// Analysis services (None: analysis off).
    analysis_init: Option<AnalysisInit>,
    /// This call's analysis actor.
    analysis: Option<Addr<AnalysisActor>>,
    /// Finals its full mailbox could not take yet (sent on the next tick).
    analysis_backlog: VecDeque<Segment>,
}

/// What a call needs to run its analysis.
#[derive(Clone)]
pub struct AnalysisInit {
    /// Analysis threads; calls are spread over them.
    pub arbiters: Vec<ArbiterHandle>,
    pub resources: std::sync::Arc<earshot::analysis::call::Resources>,
    pub pipeline: Option<Addr<PipelineActor>>,
    pub notifier: Option<Addr<crate::notify::Notifier>>,
}

impl std::fmt::Debug for AnalysisInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalysisInit")
            .field("threads", &self.arbiters.len())
            .field("pipeline", &self.pipeline.is_some())
            .field("notifier", &self.notifier.is_some())
            .finish()
    }
}

/// Spread calls over the analysis threads.
static NEXT_ANALYSIS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// What a call starts with.
pub struct CallInit {
    pub record: SessionRecord,
    pub metadata: Option<RecordingMetadata>,
    pub streams: Vec<StreamAnswer>,
    /// Sockets bound before the 200 OK.
    pub sockets: Vec<BoundPort>,
    /// Address sockets for renegotiated streams bind to.
    pub bind_ip: std::net::IpAddr,
    pub media: MediaConfig,
    pub hub: Addr<crate::ws::Hub>,
    pub analysis: Option<AnalysisInit>,
    /// The media arbiter this call's audio runs on.
    pub arbiter: ArbiterHandle,
    /// Test hook (see `CallActor::fault`).
    pub fault: bool,
}

/// One stream's state in a media report.
#[derive(Debug, Clone)]
pub struct StreamReport {
    pub index: usize,
    pub label: String,
    pub stats: StreamStats,
    pub counters: PipelineCounters,
    pub dropped_by_engine: u64,
    pub rtcp: crate::media::RtcpSeen,
    pub regions: Vec<SpeechRegion>,
    pub class: Option<AudioClass>,
    pub recording: Option<String>,
    pub recorded_ms: u64,
}

/// What the media actor tells its call (events every tick that has some,
/// stream state every second and at the end).
#[derive(Message, Default)]
#[rtype(result = "()")]
pub struct MediaReport {
    /// (m-line index, event)
    pub events: Vec<(usize, MediaEvent)>,
    pub streams: Vec<StreamReport>,
    pub stereo: Option<String>,
    /// Finals made so far for the recogniser.
    pub asr_finals: u64,
    /// At the end: finals still waiting for room in the recogniser.
    pub deferred_finals: Vec<Job>,
    /// The RTP timeout fired: no stream expecting media has had RTP for
    /// this long. The call ends as failed, "no media".
    pub no_media: Option<Duration>,
}

/// A recogniser result for this call (from an ASR worker thread).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct AsrDone {
    pub stream: usize,
    pub utterance: u64,
    pub kind: JobKind,
    /// Timeline of the audio decoded, ms.
    pub start_ms: u64,
    pub end_ms: u64,
    pub result: Result<Hypothesis, String>,
    /// Waited in the queue longer than [`crate::asr::LAGGING_AFTER`].
    pub lagging: bool,
    pub decode_ms: u64,
}

/// Whisper's habit on non-speech: bracketed tags and the like.
fn is_noise(text: &str) -> bool {
    let t = text.trim();
    t.is_empty()
        || (t.starts_with('[') && t.ends_with(']'))
        || (t.starts_with('(') && t.ends_with(')'))
        || (t.starts_with('*') && t.ends_with('*'))
        || !t.chars().any(char::is_alphanumeric)
}

impl CallActor {
    pub fn new(init: CallInit, registry: Addr<RegistryActor>, store: Addr<StoreActor>) -> Self {
        let mut record = init.record;
        if init.media.asr.is_some() {
            record.asr.enabled = true;
            record.processing_plan["transcription"] = serde_json::json!(true);
        }
        if let Some(a) = &init.analysis {
            record.processing_plan["analysis"] = crate::pipeline::pipeline_config(&a.resources);
            record.processing_plan["post_call_pipeline"] = serde_json::json!(a.pipeline.is_some());
        }
        Self {
            record,
            metadata: init.metadata,
            streams: init.streams,
            registry,
            store,
            media: None,
            unbound: init.sockets,
            ports: HashSet::new(),
            media_cfg: init.media,
            arbiter: init.arbiter,
            start: Instant::now(),
            bind_ip: init.bind_ip,
            unsaved: Unsaved::Results,
            ticks: 0,
            finishing: false,
            fault: init.fault,
            deferred: VecDeque::new(),
            agreements: HashMap::new(),
            finalized: HashMap::new(),
            draining: None,
            hub: init.hub,
            analysis_init: init.analysis,
            analysis: None,
            analysis_backlog: VecDeque::new(),
        }
    }

    /// Hand a final to the analysis (or keep it until there is room).
    fn analyse(&mut self, segment: Segment) {
        let Some(a) = &self.analysis else {
            return;
        };
        if !self.analysis_backlog.is_empty() {
            self.analysis_backlog.push_back(segment);
            return;
        }
        match a.try_send(Analyse {
            segment,
            deferred: false,
        }) {
            Ok(()) => {}
            Err(SendError::Full(m)) => {
                tracing::debug!(call_id = %self.record.call_id, "analysis busy; final kept for the next tick");
                self.analysis_backlog.push_back(m.segment);
            }
            Err(SendError::Closed(_)) => {}
        }
    }

    /// Send kept finals while the analysis has room.
    fn flush_analysis(&mut self) {
        let Some(a) = &self.analysis else {
            return;
        };
        while let Some(segment) = self.analysis_backlog.pop_front() {
            match a.try_send(Analyse {
                segment,
                deferred: true,
            }) {
                Ok(()) => {}
                Err(SendError::Full(m)) => {
                    self.analysis_backlog.push_front(m.segment);
                    return;
                }
                Err(SendError::Closed(_)) => {
                    self.analysis_backlog.clear();
                    return;
                }
            }
        }
    }

    /// The transcript is complete: take the analysis's last state, hand the
    /// session to the post-call pipeline (which stores it) or store it, and
    /// stop.
    fn close_out(&mut self, ctx: &mut Context<Self>) {
        self.flush_analysis();
        let analysis = self.analysis.take();
        let pending: Vec<Segment> = self.analysis_backlog.drain(..).collect();
        async move {
            let a = analysis?;
            for segment in pending {
                let _ = a
                    .send(Analyse {
                        segment,
                        deferred: true,
                    })
                    .await;
            }
            a.send(TakeSnapshot).await.ok()
        }
        .into_actor(self)
        .map(|snapshot, act, ctx| {
            if let Some(p) = snapshot {
                act.record.analysis.progressive = Some(p);
            }
            let pipeline = act.analysis_init.as_ref().and_then(|a| a.pipeline.clone());
            let record = act.record.clone();
            let store = act.store.clone();
            async move {
                if let Some(p) = pipeline {
                    match p
                        .send(RunPipeline {
                            record: Box::new(record.clone()),
                            trigger: "auto",
                        })
                        .await
                    {
                        Ok(Ok(())) => return,
                        Ok(Err(e)) => {
                            tracing::warn!(call_id = %record.call_id, error = %e, "post-call pipeline not run")
                        }
                        Err(e) => {
                            tracing::warn!(call_id = %record.call_id, error = %e, "post-call pipeline unavailable")
                        }
                    }
                }
                let _ = store
                    .send(Put {
                        record,
                        durable: true,
                    })
                    .await;
            }
            .into_actor(act)
            .map(|_, _, ctx: &mut Context<Self>| ctx.stop())
            .wait(ctx);
        })
        .wait(ctx);
    }

    /// Run `f`; a panic inside ends the call as failed.
    fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>)) {
        let r = catch_unwind(AssertUnwindSafe(|| f(self, ctx)));
        if let Err(p) = r {
            let msg = crate::panic_message(p.as_ref());
            tracing::error!(call_id = %self.record.call_id, panic = %msg, "call failed");
            self.finish(
                ctx,
                CallStatus::Failed,
                &format!("internal error: {msg}"),
                false,
                true,
            );
        }
    }

    /// Stream setups for the current answers: sockets for ports not yet read.
    fn setups(&mut self) -> Vec<StreamSetup> {
        let mut out = vec![];
        for a in &self.streams {
            let sock = self
                .unbound
                .iter()
                .position(|(p, _, _)| *p == a.port && a.port != 0)
                .map(|i| self.unbound.swap_remove(i));
            if let Some((port, _, _)) = &sock {
                self.ports.insert(*port);
            }
            out.push(StreamSetup {
                answer: a.clone(),
                sockets: sock.map(|(_, rtp, rtcp)| (rtp, rtcp)),
            });
        }
        out
    }

    /// Bind sockets for ports a renegotiation added.
    fn bind_new_ports(&mut self) {
        let wanted: Vec<u16> = self
            .streams
            .iter()
            .map(|s| s.port)
            .filter(|p| *p != 0 && !self.ports.contains(p))
            .filter(|p| !self.unbound.iter().any(|(q, _, _)| q == p))
            .collect();
        for port in wanted {
            match bind_port(self.bind_ip, port) {
                Ok(b) => self.unbound.push(b),
                Err(e) => tracing::warn!(%e, port, "RTP bind failed"),
            }
        }
    }

    fn apply(&mut self) {
        let before: Vec<bool> = self.record.streams.iter().map(|s| s.paused).collect();
        self.record.apply(self.metadata.as_ref(), &self.streams);
        for (i, s) in self.record.streams.iter().enumerate() {
            match (before.get(i).copied(), s.paused) {
                (Some(false), true) => self.record.counters.pauses += 1,
                (Some(true), false) => self.record.counters.resumes += 1,
                _ => {}
            }
        }
        self.record.last_activity = chrono::Utc::now();
        self.unsaved = Unsaved::Results;
    }

    fn label_of(&self, index: usize) -> Label {
        self.streams
            .iter()
            .find(|a| a.index == index)
            .and_then(|a| a.label.clone())
            .unwrap_or_else(|| Label(index.to_string()))
    }

    fn absorb(&mut self, r: MediaReport) {
        if r.asr_finals > self.record.asr.finals_sent {
            self.record.asr.finals_sent = r.asr_finals;
            self.unsaved = Unsaved::Results;
        }
        self.deferred.extend(r.deferred_finals);
        for (index, e) in r.events {
            let label = self.label_of(index);
            self.push_media_event(&label, &e);
            self.record.push_event(label, e);
            self.unsaved = Unsaved::Results;
        }
        if !r.streams.is_empty() {
            let mut packets = 0;
            let mut bytes = 0;
            for s in &r.streams {
                packets += s.stats.packets;
                bytes += s.stats.bytes;
                let label = self.label_of(s.index);
                if let Some(info) = self.record.streams.iter_mut().find(|i| i.label == label) {
                    info.stats = Some(s.stats);
                    info.receive = ReceiveCounters {
                        dropped_by_engine: s.dropped_by_engine,
                        rtcp_packets: s.rtcp.packets,
                        rtcp_sender_reports: s.rtcp.sender_reports,
                        rtcp_malformed: s.rtcp.malformed,
                        src_reported_sent: s.rtcp.src_packets_sent,
                        pipeline: s.counters,
                    };
                    info.speech = s.regions.clone();
                    info.class = s.class;
                    info.recording = s.recording.clone();
                    info.recorded_ms = s.recorded_ms;
                }
            }
            self.record.counters.rtp_packets = packets;
            self.record.counters.rtp_bytes = bytes;
            self.record.recordings.stereo = r.stereo;
            self.unsaved = self.unsaved.max(Unsaved::Counters);
        }
    }

    /// A media event on `/ws/events` (holds also on `/ws/analytics`).
    fn push_media_event(&self, label: &Label, e: &MediaEvent) {
        let (participant_id, speaker) = self.record.speaker_of(label);
        let mut body = serde_json::to_value(e).unwrap_or_default();
        if let Some(o) = body.as_object_mut() {
            o.insert("call_id".into(), serde_json::json!(self.record.call_id));
            o.insert("stream_label".into(), serde_json::json!(label));
            o.insert("participant_id".into(), serde_json::json!(participant_id));
            o.insert("speaker".into(), serde_json::json!(speaker));
            o.insert("timestamp".into(), serde_json::json!(chrono::Utc::now()));
        }
        let channel = match e {
            MediaEvent::HoldStarted { .. } | MediaEvent::HoldEnded { .. } => {
                crate::ws::Channel::Analytics
            }
            _ => crate::ws::Channel::Events,
        };
        crate::ws::offer(
            &self.hub,
            crate::ws::Push::on(channel, &self.record.call_id.0, body, false),
        );
    }

    fn publish(&mut self) {
        if self.finishing {
            return;
        }
        let now = chrono::Utc::now();
        self.record.total_audio_duration = self.record.duration_secs(now);
        // Bounded: an overloaded registry misses this view and gets the
        // next tick's (the snapshot is only ever superseded).
        if self
            .registry
            .try_send(Snapshot(self.record.clone()))
            .is_err()
        {
            crate::metrics::get()
                .overload_dropped
                .with_label_values(&["registry_snapshot"])
                .inc();
        }
        self.ticks = self.ticks.wrapping_add(1);
        let due = match self.unsaved {
            Unsaved::Nothing => false,
            Unsaved::Counters => self.ticks == 1 || self.ticks.is_multiple_of(JOURNAL_TICKS),
            Unsaved::Results => true,
        };
        if due {
            self.unsaved = Unsaved::Nothing;
            self.store.do_send(Put {
                record: self.record.clone(),
                durable: false,
            });
        }
    }

    /// The RTP timeout fired: end the call as failed, "no media", and BYE
    /// the SRC (the path of internal errors). The `no_media` events are
    /// already in the record and on `/ws/events`.
    fn no_media(&mut self, ctx: &mut Context<Self>, silent: Duration) {
        if self.finishing {
            return;
        }
        let timeout = self
            .media_cfg
            .rtp_timeout
            .map_or(0.0, |t| t.after().as_secs_f64());
        tracing::warn!(
            call_id = %self.record.call_id,
            silent_s = silent.as_secs_f64(),
            timeout_s = timeout,
            rtp_packets = self.record.counters.rtp_packets,
            "no RTP on any stream for {:.1} s (RTP timeout {timeout} s): ending the call as failed: no media",
            silent.as_secs_f64()
        );
        self.finish(ctx, CallStatus::Failed, "no media", false, true);
    }

    /// Stop the media, close the record, persist it durably, tell the
    /// registry, stop.
    fn finish(
        &mut self,
        ctx: &mut Context<Self>,
        status: CallStatus,
        reason: &str,
        confirm: bool,
        hang_up: bool,
    ) {
        if self.finishing {
            return;
        }
        self.finishing = true;
        let reason = reason.to_owned();
        // Sockets never handed to the media actor close now.
        self.unbound.clear();
        let media = self.media.take();
        let stopped = async move {
            match media {
                Some(m) => m.send(StopMedia).await.ok(),
                None => None,
            }
        };
        stopped
            .into_actor(self)
            .then(move |report, act, _| {
                if let Some(r) = report {
                    act.absorb(r);
                }
                for c in act.record.streams.iter_mut() {
                    c.class = None;
                }
                act.record.finish(status, &reason, chrono::Utc::now());
                let record = act.record.clone();
                crate::ws::offer(&act.hub, crate::ws::Push::new(
                    &record.call_id.0,
                    serde_json::json!({
                        "type": "call_ended",
                        "call_id": record.call_id,
                        "status": record.status,
                        "reason": record.end_reason,
                        "pending_finals": record.asr.pending(),
                        "timestamp": chrono::Utc::now(),
                    }),
                    false,
                ));
                act.store
                    .send(Put {
                        record: record.clone(),
                        durable: true,
                    })
                    .into_actor(act)
                    .map(move |res, act, ctx| {
                        let persisted = matches!(res, Ok(Ok(())));
                        if !persisted {
                            tracing::error!(call_id = %record.call_id, ?res, "could not persist session");
                        }
                        act.registry.do_send(Finished {
                            record,
                            confirm,
                            hang_up,
                            persisted,
                        });
                        act.drain_finals(ctx);
                    })
            })
            .wait(ctx);
    }
}

impl CallActor {
    /// One recogniser result.
    fn on_asr(&mut self, m: AsrDone, ctx: &mut Context<Self>) {
        match m.kind {
            JobKind::Partial => {
                if let Some(media) = &self.media {
                    media.do_send(PartialDone {
                        stream: m.stream,
                        utterance: m.utterance,
                    });
                }
                let Ok(h) = m.result else {
                    return;
                };
                let stale = self
                    .finalized
                    .get(&m.stream)
                    .is_some_and(|done| done.contains(&m.utterance));
                if stale || is_noise(&h.text) {
                    return;
                }
                let entry = self
                    .agreements
                    .entry(m.stream)
                    .or_insert_with(|| (m.utterance, Agreement::new()));
                if entry.0 != m.utterance {
                    *entry = (m.utterance, Agreement::new());
                }
                let stable = entry.1.update(&h.text);
                let label = self.label_of(m.stream);
                let (participant_id, speaker) = self.record.speaker_of(&label);
                let push = serde_json::json!({
                    "type": "transcript",
                    "call_id": self.record.call_id,
                    "participant_id": participant_id,
                    "speaker": speaker,
                    "stream_label": label,
                    "text": stable.text(),
                    "stable_text": stable.stable,
                    "unstable_text": stable.unstable,
                    "is_final": false,
                    "utterance_id": m.utterance,
                    "start_time": m.start_ms as f64 / 1000.0,
                    "end_time": m.end_ms as f64 / 1000.0,
                    "segment_id": null,
                    "confidence": h.confidence,
                    "timestamp": chrono::Utc::now(),
                });
                crate::ws::offer(
                    &self.hub,
                    crate::ws::Push::new(&self.record.call_id.0, push, true),
                );
            }
            JobKind::Final => {
                self.record.asr.finals_done += 1;
                // End of speech (call start + end of the utterance) to now.
                let spoken = self.start + Duration::from_millis(m.end_ms);
                crate::metrics::get().asr_latency.observe(
                    Instant::now()
                        .saturating_duration_since(spoken)
                        .as_secs_f64(),
                );
                if m.lagging {
                    self.record.asr.lagging += 1;
                }
                self.unsaved = Unsaved::Results;
                let done = self.finalized.entry(m.stream).or_default();
                if done.len() == FINALIZED_KEPT {
                    done.pop_front();
                }
                done.push_back(m.utterance);
                if self.agreements.get(&m.stream).map(|a| a.0) == Some(m.utterance) {
                    self.agreements.remove(&m.stream);
                }
                match m.result {
                    Ok(mut h) if !is_noise(&h.text) => {
                        let translation = h.translation.take();
                        let seg =
                            self.segment(m.stream, m.utterance, m.start_ms, m.end_ms, h, m.lagging);
                        let id = self.record.push_segment(seg);
                        if let (Some(tr), Some(a), Some(s)) = (
                            translation,
                            &self.analysis,
                            self.record.transcript_segments.last(),
                        ) {
                            let model = self
                                .media_cfg
                                .asr
                                .as_ref()
                                .map(|p| format!("whisper:{} (translate)", p.model_name))
                                .unwrap_or_default();
                            // Bounded mailbox; a translation is small and
                            // rare, so one that finds it full waits in
                            // actix's queue rather than being lost.
                            a.do_send(crate::analysis::Translated(
                                earshot::analysis::call::TranslationWindow {
                                    window_id: id,
                                    segment_id: id,
                                    speaker: s.speaker.clone(),
                                    start_time: s.start_time,
                                    end_time: s.end_time,
                                    source_language: s.language.clone(),
                                    language: "en".into(),
                                    original: s.text.clone(),
                                    translation: tr,
                                    translated: true,
                                    model,
                                },
                            ));
                        }
                        self.unsaved = Unsaved::Results;
                        if let Some(s) = self.record.transcript_segments.last() {
                            self.analyse(s.clone());
                        }
                        if let Some(seg) = self.record.transcript_segments.last() {
                            let push = serde_json::json!({
                                "type": "transcript",
                                "call_id": self.record.call_id,
                                "participant_id": seg.participant_id,
                                "speaker": seg.speaker,
                                "stream_label": seg.stream_label,
                                "text": seg.text,
                                "is_final": true,
                                "utterance_id": seg.utterance_id,
                                "start_time": seg.start_time,
                                "end_time": seg.end_time,
                                "segment_id": id,
                                "confidence": seg.confidence,
                                "language": seg.language,
                                "lagging": seg.lagging,
                                "timestamp": chrono::Utc::now(),
                            });
                            crate::ws::offer(
                                &self.hub,
                                crate::ws::Push::new(&self.record.call_id.0, push, false),
                            );
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(call_id = %self.record.call_id, error = %e, "final not transcribed")
                    }
                }
                if self.draining.is_some() {
                    self.check_drained(ctx);
                }
            }
        }
    }

    /// A final segment from a hypothesis: word times moved onto the call
    /// timeline (and kept inside the audio sent), speaker from metadata.
    fn segment(
        &self,
        stream: usize,
        utterance: u64,
        start_ms: u64,
        end_ms: u64,
        h: Hypothesis,
        lagging: bool,
    ) -> Segment {
        let (a, b) = (start_ms as f64 / 1000.0, end_ms as f64 / 1000.0);
        let words: Vec<Word> = h
            .words
            .into_iter()
            .map(|w| Word {
                start: (a + w.start).clamp(a, b),
                end: (a + w.end).clamp(a, b),
                ..w
            })
            .collect();
        let start = words.first().map_or(a, |w| w.start);
        let end = words.last().map_or(b, |w| w.end).max(start);
        let label = self.label_of(stream);
        let (participant_id, speaker) = self.record.speaker_of(&label);
        Segment {
            segment_id: 0,
            utterance_id: utterance,
            participant_id,
            speaker,
            stream_label: label.0,
            text: h.text,
            start_time: start,
            end_time: end,
            duration: end - start,
            confidence: h.confidence,
            words,
            language: h.language,
            is_final: true,
            lagging,
        }
    }

    /// The call has ended and is stored: stop now, or wait (bounded) for
    /// the recogniser's outstanding finals and store again with them.
    fn drain_finals(&mut self, ctx: &mut Context<Self>) {
        if self.record.asr.pending() == 0 && self.deferred.is_empty() {
            self.close_out(ctx);
            return;
        }
        tracing::debug!(
            call_id = %self.record.call_id,
            outstanding = self.record.asr.pending(),
            "call ended; waiting for its last finals"
        );
        self.draining = Some(Instant::now());
        ctx.run_interval(Duration::from_millis(100), |act, ctx| {
            if let Some(pool) = &act.media_cfg.asr {
                pool.submit_deferred(&mut act.deferred);
            }
            act.check_drained(ctx);
        });
    }

    fn check_drained(&mut self, ctx: &mut Context<Self>) {
        let Some(since) = self.draining else {
            return;
        };
        let done = self.record.asr.pending() == 0 && self.deferred.is_empty();
        if !done && since.elapsed() < FINALS_GRACE {
            return;
        }
        if !done {
            tracing::warn!(call_id = %self.record.call_id, "closing the transcript without its last finals");
        }
        self.draining = None;
        self.close_out(ctx);
    }
}

impl Handler<AsrDone> for CallActor {
    type Result = ();
    fn handle(&mut self, m: AsrDone, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| act.on_asr(m, ctx));
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        // Whatever way the call ended, its analysis ends with it.
        if let Some(a) = self.analysis.take() {
            a.do_send(TakeSnapshot);
        }
    }

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        // Downstream first: the analysis exists before any audio flows.
        if let Some(a) = self.analysis_init.clone() {
            let me = ctx.address();
            let call_id = self.record.call_id.0.clone();
            let hub = self.hub.clone();
            let start = self.start;
            let n = NEXT_ANALYSIS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let arbiter = a
                .arbiters
                .get(n % a.arbiters.len().max(1))
                .cloned()
                .unwrap_or_else(Arbiter::current);
            self.analysis = Some(AnalysisActor::start_in_arbiter(&arbiter, move |_| {
                AnalysisActor::new(
                    call_id,
                    earshot::analysis::call::CallAnalysis::new(a.resources),
                    me,
                    hub,
                    a.notifier,
                    start,
                )
            }));
        }
        let setups = self.setups();
        let me = ctx.address();
        let cfg = self.media_cfg.clone();
        let call_id = self.record.call_id.0.clone();
        let start = self.start;
        self.media = Some(MediaActor::start_in_arbiter(&self.arbiter, move |_| {
            MediaActor::new(me, cfg, &call_id, start, setups)
        }));
        crate::ws::offer(
            &self.hub,
            crate::ws::Push::new(
                &self.record.call_id.0,
                serde_json::json!({
                    "type": "call_started",
                    "call_id": self.record.call_id,
                    "participants": self.record.participants,
                    "start_time": self.record.start_time,
                    "timestamp": chrono::Utc::now(),
                }),
                false,
            ),
        );
        self.publish();
        ctx.run_interval(TICK, |act, ctx| {
            act.guarded(ctx, |act, _| {
                if act.fault {
                    panic!("injected fault");
                }
                act.flush_analysis();
                act.publish();
            })
        });
    }
}

/// The analysis actor's latest state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AnalysisProgress(pub Box<earshot::analysis::call::Progressive>);

impl Handler<AnalysisProgress> for CallActor {
    type Result = ();
    fn handle(&mut self, m: AnalysisProgress, _: &mut Context<Self>) {
        self.record.analysis.progressive = Some(*m.0);
        self.unsaved = Unsaved::Results;
    }
}

impl Handler<MediaReport> for CallActor {
    type Result = ();
    fn handle(&mut self, r: MediaReport, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| {
            let no_media = r.no_media;
            act.absorb(r);
            if let Some(silent) = no_media {
                act.no_media(ctx, silent);
            }
        });
    }
}

/// Signalling updates for the call.
#[derive(Message)]
#[rtype(result = "()")]
pub enum CallUpdate {
    Confirmed,
    /// A re-INVITE (or UPDATE when `by_update`) changed streams and/or metadata.
    Updated {
        by_update: bool,
        streams: Option<Vec<StreamAnswer>>,
        metadata: Option<RecordingMetadata>,
    },
    /// End the call with this status and reason. `confirm`: the SRC's BYE
    /// waits for our persistence.
    Finish {
        status: CallStatus,
        reason: String,
        confirm: bool,
    },
}

impl Handler<CallUpdate> for CallActor {
    type Result = ();
    fn handle(&mut self, m: CallUpdate, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| match m {
            CallUpdate::Confirmed => {
                act.record.last_activity = chrono::Utc::now();
            }
            CallUpdate::Updated {
                by_update,
                streams,
                metadata,
            } => {
                if by_update {
                    act.record.counters.updates += 1;
                } else {
                    act.record.counters.reinvites += 1;
                }
                if let Some(streams) = streams {
                    act.streams = streams;
                    act.bind_new_ports();
                    let setups = act.setups();
                    if let Some(m) = &act.media {
                        m.do_send(Renegotiate(setups));
                    }
                }
                if let Some(md) = metadata {
                    act.record.counters.metadata_updates += 1;
                    act.metadata = Some(md);
                }
                act.apply();
                act.publish();
            }
            CallUpdate::Finish {
                status,
                reason,
                confirm,
            } => act.finish(ctx, status, &reason, confirm, false),
        });
    }
}
