//! The post-call pipeline: when a call has ended and its last finals are
//! in, the whole analysis runs once more over the whole call (the core's
//! [`PostCallRun`]: analysis, translation, summary, QA), the result is
//! stored with the session, and the agent service is told.
//!
//! One actor on its own arbiter (a dedicated thread: the stages are CPU
//! work). Jobs wait in a bounded queue ([`RunPipeline`] answers
//! `Overloaded` past `max_queue`, `AlreadyQueued` for a call already
//! waiting or running); each stage runs in its own message, so status
//! requests are answered between stages and progress is real. The
//! per-call [`ProcessingInfo`] travels with the session record (stored at
//! the `store` stage), so `/processing` is right after a restart too.

use crate::notify::{Alert, Notifier};
use crate::store::{Put, StoreActor};
use crate::ws::{Channel, Hub, Push};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use earshot::analysis::call::{
    CallFacts, PostCallRun, ProcessingInfo, ProcessingStatus, Resources, STAGES,
};
use earshot::analysis::qa::MediaFacts;
use earshot::session::SessionRecord;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

/// Completed runs remembered for the rate and averages.
const HISTORY: usize = 200;

struct Job {
    record: Box<SessionRecord>,
    info: ProcessingInfo,
    run: Option<PostCallRun>,
    t0: Option<Instant>,
}

pub struct PipelineActor {
    res: Arc<Resources>,
    store: Addr<StoreActor>,
    hub: Addr<Hub>,
    notifier: Option<Addr<Notifier>>,
    max_queue: usize,
    queue: VecDeque<Job>,
    running: Option<Job>,
    /// Finished runs: (when, wall ms, audio seconds, ok).
    history: VecDeque<(DateTime<Utc>, f64, f64, bool)>,
    completed: u64,
    failed: u64,
    /// Last status of runs this process did (for calls no longer queued).
    recent: HashMap<String, ProcessingInfo>,
}

impl PipelineActor {
    pub fn new(
        res: Arc<Resources>,
        store: Addr<StoreActor>,
        hub: Addr<Hub>,
        notifier: Option<Addr<Notifier>>,
        max_queue: usize,
    ) -> Self {
        Self {
            res,
            store,
            hub,
            notifier,
            max_queue,
            queue: VecDeque::new(),
            running: None,
            history: VecDeque::new(),
            completed: 0,
            failed: 0,
            recent: HashMap::new(),
        }
    }

    /// Mean wall milliseconds per second of audio over recent runs.
    fn ms_per_audio_second(&self) -> Option<f64> {
        let (ms, audio) = self
            .history
            .iter()
            .filter(|h| h.3)
            .fold((0.0, 0.0), |(m, a), h| (m + h.1, a + h.2));
        (audio > 0.0).then(|| ms / audio)
    }

    fn estimate(&self, info: &ProcessingInfo) -> Option<DateTime<Utc>> {
        let per = self.ms_per_audio_second()?;
        let start = info.started_at?;
        Some(start + chrono::Duration::milliseconds((per * info.audio_seconds).ceil() as i64))
    }

    fn start_next(&mut self, ctx: &mut Context<Self>) {
        if self.running.is_some() {
            return;
        }
        let Some(mut job) = self.queue.pop_front() else {
            return;
        };
        let facts = facts_of(&job.record);
        let translations = job
            .record
            .analysis
            .progressive
            .as_ref()
            .map(|p| p.translation_windows.clone())
            .unwrap_or_default();
        job.run = Some(PostCallRun::new(
            self.res.clone(),
            job.record.transcript_segments.clone(),
            translations,
            facts,
        ));
        job.t0 = Some(Instant::now());
        self.running = Some(job);
        ctx.notify(Step);
    }

    fn finish(&mut self, mut job: Job, ok: bool, ctx: &mut Context<Self>) {
        let ms = job.t0.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1000.0);
        job.info.duration_ms = Some(ms);
        job.info.completed_at = Some(Utc::now());
        job.info.current_stage = None;
        job.info.processing_status = if ok {
            ProcessingStatus::Completed
        } else {
            ProcessingStatus::Failed
        };
        if ok {
            self.completed += 1;
        } else {
            self.failed += 1;
        }
        self.history
            .push_back((Utc::now(), ms, job.info.audio_seconds, ok));
        while self.history.len() > HISTORY {
            self.history.pop_front();
        }
        let id = job.record.call_id.0.clone();
        tracing::info!(call_id = %id, ok, ms = format!("{ms:.1}"), audio_s = job.info.audio_seconds, "post-call pipeline finished");
        self.recent.insert(id, job.info);
        if self.recent.len() > 10 * HISTORY {
            self.recent.clear();
        }
        self.start_next(ctx);
    }
}

/// QA and insight facts from a session record: the agent (metadata role,
/// else the first speaker), and holds, silence gaps and overlaps
/// ([`MediaFacts::from_record`]).
pub fn facts_of(rec: &SessionRecord) -> CallFacts {
    let now = rec.end_time.unwrap_or_else(Utc::now);
    let duration = rec.duration_secs(now);
    let agent = rec
        .participants
        .iter()
        .find(|p| {
            p.role
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case("agent"))
        })
        .and_then(|p| {
            rec.streams
                .iter()
                .find(|s| s.participant_id.as_ref() == Some(&p.participant_id))
                .map(|s| rec.speaker_of(&s.label).1)
        });
    let m = MediaFacts::from_record(rec, duration);
    CallFacts {
        duration,
        agent,
        holds: m.holds,
        silence_gaps: m.silence_gaps,
        overlap_instances: m.overlap_instances,
    }
}

impl Actor for PipelineActor {
    type Context = Context<Self>;
}

/// Why a run was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    #[error("the post-call pipeline is already queued or running for this call")]
    AlreadyQueued,
    #[error("the post-call pipeline queue is full; try again later")]
    Overloaded,
}

/// Queue a run for an ended call.
#[derive(Message)]
#[rtype(result = "Result<(), PipelineError>")]
pub struct RunPipeline {
    pub record: Box<SessionRecord>,
    /// `auto` or `manual`.
    pub trigger: &'static str,
}

impl Handler<RunPipeline> for PipelineActor {
    type Result = Result<(), PipelineError>;
    fn handle(&mut self, m: RunPipeline, ctx: &mut Context<Self>) -> Self::Result {
        let id = &m.record.call_id;
        if self
            .running
            .as_ref()
            .is_some_and(|j| &j.record.call_id == id)
            || self.queue.iter().any(|j| &j.record.call_id == id)
        {
            return Err(PipelineError::AlreadyQueued);
        }
        if self.queue.len() >= self.max_queue {
            return Err(PipelineError::Overloaded);
        }
        let audio = m.record.total_audio_duration;
        self.queue.push_back(Job {
            info: ProcessingInfo::queued(m.trigger, Utc::now(), audio),
            record: m.record,
            run: None,
            t0: None,
        });
        self.start_next(ctx);
        Ok(())
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Step;

impl Handler<Step> for PipelineActor {
    type Result = ();
    fn handle(&mut self, _: Step, ctx: &mut Context<Self>) {
        let Some(job) = self.running.as_mut() else {
            return;
        };
        let now = Utc::now();
        let stage = job.run.as_ref().and_then(PostCallRun::next_stage);
        if let Some(stage) = stage {
            job.info.begin(stage, now);
            let run = job.run.as_mut();
            let res = self.res.clone();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run.map(|r| crate::analysis::with_models(&res, |m| r.step_with(now, m)))
            }));
            match result {
                Ok(_) => {
                    job.info.done();
                    ctx.notify(Step);
                }
                Err(p) => {
                    let msg = crate::panic_message(p.as_ref());
                    tracing::error!(call_id = %job.record.call_id, stage, error = %msg, "post-call stage failed");
                    job.info.errors.push(format!("{stage}: {msg}"));
                    let job = self.running.take();
                    if let Some(job) = job {
                        self.finish(job, false, ctx);
                    }
                }
            }
            return;
        }
        // Analysis stages done: store, then notify.
        let Some(mut job) = self.running.take() else {
            return;
        };
        let mut post = job.run.take().map(|r| r.finish(now));
        // The live figures (latency per final as it happened) stay.
        if let (Some(p), Some(live)) = (post.as_mut(), job.record.analysis.progressive.as_ref()) {
            p.progressive.processing_stats = live.processing_stats.clone();
        }
        job.info.begin("store", now);
        let mut record = job.record.clone();
        record.analysis.post_call = post;
        let mut info = job.info.clone();
        info.done();
        info.begin("notify", now);
        record.analysis.processing = Some(info);
        self.running = Some(job);
        self.store
            .send(Put {
                record: (*record).clone(),
                durable: true,
            })
            .into_actor(self)
            .map(move |res, act, ctx| {
                let Some(mut job) = act.running.take() else {
                    return;
                };
                match res {
                    Ok(Ok(())) => {
                        job.info.done();
                        job.info.begin("notify", Utc::now());
                        let summary = record.analysis.post_call.as_ref().map(|p| {
                            serde_json::json!({
                                "summary": p.summary.as_ref().map(|s| &s.text),
                                "classification": p.classification,
                                "qa_score": p.qa.as_ref().map(|q| q.overall_qa_score),
                                "qa_grade": p.qa.as_ref().map(|q| &q.grade),
                                "entities": p.entities_by_label,
                                "insights": p.insights,
                            })
                        });
                        let body = serde_json::json!({
                            "type": "analysis_completed",
                            "call_id": record.call_id,
                            "status": record.status,
                            "trigger": job.info.trigger,
                            "analysis": summary,
                            "timestamp": Utc::now(),
                        });
                        if let Some(n) = &act.notifier {
                            n.do_send(Alert {
                                event: "analysis_completed".into(),
                                call_id: record.call_id.0.clone(),
                                data: body.clone(),
                            });
                        }
                        crate::ws::offer(&act.hub, Push::on(
                            Channel::Analytics,
                            &record.call_id.0,
                            body,
                            false,
                        ));
                        job.info.done();
                        act.finish(job, true, ctx);
                    }
                    other => {
                        let msg = format!("store: {other:?}");
                        tracing::error!(call_id = %record.call_id, error = %msg, "post-call result not stored");
                        job.info.errors.push(msg);
                        act.finish(job, false, ctx);
                    }
                }
            })
            .wait(ctx);
    }
}

/// A call's pipeline status, when this process knows it (queued, running,
/// or finished since start).
#[derive(Message)]
#[rtype(result = "Option<ProcessingView>")]
pub struct GetProcessing(pub String);

/// `/processing` body.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessingView {
    #[serde(flatten)]
    pub info: ProcessingInfo,
    pub progress_percentage: f64,
    pub estimated_completion: Option<DateTime<Utc>>,
    /// Jobs ahead of this one.
    pub queue_position: Option<usize>,
}

impl PipelineActor {
    pub fn view(&self, info: &ProcessingInfo, pos: Option<usize>) -> ProcessingView {
        let estimated_completion = match info.processing_status {
            ProcessingStatus::Completed | ProcessingStatus::Failed => info.completed_at,
            _ => self.estimate(info),
        };
        ProcessingView {
            info: info.clone(),
            progress_percentage: info.progress_percentage(),
            estimated_completion,
            queue_position: pos,
        }
    }
}

impl Handler<GetProcessing> for PipelineActor {
    type Result = Option<ProcessingView>;
    fn handle(&mut self, m: GetProcessing, _: &mut Context<Self>) -> Self::Result {
        if let Some(j) = self.running.as_ref().filter(|j| j.record.call_id.0 == m.0) {
            return Some(self.view(&j.info, Some(0)));
        }
        if let Some((i, j)) = self
            .queue
            .iter()
            .enumerate()
            .find(|(_, j)| j.record.call_id.0 == m.0)
        {
            return Some(self.view(&j.info, Some(i + 1)));
        }
        self.recent.get(&m.0).map(|i| self.view(i, None))
    }
}

/// `/api/v1/calls/processing/status` body.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineStatus {
    pub queue_size: usize,
    pub max_queue: usize,
    pub active_processors: usize,
    pub processors: usize,
    pub completed: u64,
    pub failed: u64,
    /// Runs finished in the last minute.
    pub rate_per_minute: usize,
    pub average_latency_ms: Option<f64>,
    /// Pipeline wall time per minute of call audio.
    pub average_ms_per_audio_minute: Option<f64>,
    pub stages: Vec<&'static str>,
    pub pipeline_config: serde_json::Value,
    pub running: Option<String>,
}

#[derive(Message)]
#[rtype(result = "PipelineStatus")]
pub struct GetPipelineStatus;

impl Handler<GetPipelineStatus> for PipelineActor {
    type Result = MessageResult<GetPipelineStatus>;
    fn handle(&mut self, _: GetPipelineStatus, _: &mut Context<Self>) -> Self::Result {
        let minute_ago = Utc::now() - chrono::Duration::seconds(60);
        let ok: Vec<f64> = self.history.iter().filter(|h| h.3).map(|h| h.1).collect();
        MessageResult(PipelineStatus {
            queue_size: self.queue.len(),
            max_queue: self.max_queue,
            active_processors: usize::from(self.running.is_some()),
            processors: 1,
            completed: self.completed,
            failed: self.failed,
            rate_per_minute: self.history.iter().filter(|h| h.0 >= minute_ago).count(),
            average_latency_ms: (!ok.is_empty()).then(|| ok.iter().sum::<f64>() / ok.len() as f64),
            average_ms_per_audio_minute: self.ms_per_audio_second().map(|v| v * 60.0),
            stages: STAGES.to_vec(),
            pipeline_config: pipeline_config(&self.res),
            running: self.running.as_ref().map(|j| j.record.call_id.0.clone()),
        })
    }
}

/// What the pipeline is configured to do (for `/processing`).
pub fn pipeline_config(res: &Resources) -> serde_json::Value {
    let c = &res.config;
    serde_json::json!({
        "stages": STAGES,
        "sentiment": c.sentiment,
        "keywords": c.keywords,
        "entities": c.entities,
        "classification": c.classification,
        "taxonomy": c.taxonomy,
        "semantic_classification": c.semantic,
        "semantic_runtime": c.semantic_runtime,
        "ner_model": c.ner_model,
        "summary": c.summary,
        "summary_sentences": c.summary_sentences,
        "qa": c.qa,
        "translation": c.translation,
        "translation_model": c.translation_model,
        "translation_model_languages": res.translator.as_ref().map(|(_, _, i)| i),
        "redact_pii": c.redact_pii,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Find;
    use earshot::analysis::call::{AnalysisConfig, Resources};
    use earshot::ids::CallId;
    use earshot::session::{CallStatus, MemoryStore, SourceInfo};
    use std::time::Duration;

    fn resources() -> Arc<Resources> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        Arc::new(
            Resources::load(
                AnalysisConfig::default(),
                &root.join("config"),
                &root.join("models"),
            )
            .expect("analysis resources (scripts/setup fetches the lexicons)"),
        )
    }

    fn ended(id: &str) -> Box<SessionRecord> {
        let mut r = SessionRecord::new(CallId::from(id), Utc::now(), SourceInfo::default());
        r.finish(CallStatus::Completed, "bye", Utc::now());
        Box::new(r)
    }

    #[actix_rt::test]
    async fn queue_is_bounded_and_runs_are_stored_with_their_status() {
        let store = SyncArbiter::start(1, || StoreActor::new(Box::new(MemoryStore::default())));
        let hub = Hub::default().start();
        let p = PipelineActor::new(resources(), store.clone(), hub, None, 1).start();
        let run = |id: &str| {
            p.send(RunPipeline {
                record: ended(id),
                trigger: "manual",
            })
        };
        // Sent together: the first runs, the second waits, the third finds
        // the queue full, the first again is a duplicate.
        let (a, b, c, d) = tokio::join!(run("a"), run("b"), run("c"), run("a"));
        assert_eq!(a.unwrap(), Ok(()));
        assert_eq!(b.unwrap(), Ok(()));
        assert_eq!(c.unwrap(), Err(PipelineError::Overloaded));
        assert_eq!(d.unwrap(), Err(PipelineError::AlreadyQueued));
        // Both finish and are stored with a completed status and results.
        for id in ["a", "b"] {
            let mut stored = None;
            for _ in 0..100 {
                stored = store
                    .send(Find(id.into()))
                    .await
                    .unwrap()
                    .unwrap()
                    .filter(|r| r.analysis.post_call.is_some());
                if stored.is_some() {
                    break;
                }
                actix_rt::time::sleep(Duration::from_millis(20)).await;
            }
            let r = stored.expect("stored with the post-call result");
            let info = r.analysis.processing.expect("processing info");
            assert_eq!(info.trigger, "manual");
            assert_eq!(
                info.stages_completed,
                ["analysis", "translation", "summary", "qa", "store"]
            );
        }
        let mut st = p.send(GetPipelineStatus).await.unwrap();
        for _ in 0..100 {
            if st.completed == 2 {
                break;
            }
            actix_rt::time::sleep(Duration::from_millis(20)).await;
            st = p.send(GetPipelineStatus).await.unwrap();
        }
        assert_eq!((st.completed, st.failed, st.queue_size), (2, 0, 0));
        let v = p.send(GetProcessing("a".into())).await.unwrap().unwrap();
        assert_eq!(v.info.processing_status, ProcessingStatus::Completed);
        assert_eq!(v.progress_percentage, 100.0);
        assert!(v.info.duration_ms.is_some());
    }

    #[test]
    fn facts_from_a_recorded_call() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/analysis/helpline.session.json"),
        )
        .unwrap();
        let rec: SessionRecord = serde_json::from_str(&text).unwrap();
        let f = facts_of(&rec);
        // One hold (music on hold, ~6 s), the gaps between turns (the
        // QA's dead-air check takes hold time out of them itself).
        assert_eq!(f.holds.len(), 1, "{f:?}");
        let (h0, h1) = f.holds[0];
        assert!((5.0..8.0).contains(&(h1 - h0)), "{f:?}");
        assert!(!f.silence_gaps.is_empty());
        assert!(f
            .silence_gaps
            .iter()
            .all(|(a, b)| b - a >= earshot::talktime::MIN_SILENCE_GAP_MS as f64 / 1000.0));
        assert!(f.duration > 70.0);
    }
}
