//! A call's progressive analysis actor.
//!
//! The `CallActor` starts one per call on an *analysis arbiter* (its own
//! thread, apart from the SIP/HTTP/call loop and the media threads) and
//! hands it every final segment ([`Analyse`], bounded mailbox, `try_send`;
//! what does not fit waits in the call actor and is counted, never
//! dropped). The actor runs the core's [`CallAnalysis`] on it, pushes the
//! events an agent-assist screen reacts to on `/ws/analytics` (and
//! `/ws/events`) at once, forwards alerts to the notifier, and sends the
//! call actor a snapshot at most once a second, which the call stores with
//! the session (so REST reads it through the registry like everything
//! else). At the end the call asks for the last snapshot ([`TakeSnapshot`])
//! and stops it.

use crate::call::{AnalysisProgress, CallActor};
use crate::notify::{Alert, Notifier};
use crate::ws::{Channel, Hub, Push};
use actix::prelude::*;
use earshot::analysis::call::{AnalysisEvent, CallAnalysis, Progressive, TranslationWindow};
use earshot::asr::Segment;
use std::time::{Duration, Instant};

/// One model of an analysis thread: loaded on first use; a load that
/// failed is said once in the log and not tried again on this thread.
enum Slot<T> {
    Untried,
    Ready(T),
    Failed,
}

impl<T> Slot<T> {
    /// The model, when configured (`spec`) and loadable.
    fn get<S>(
        &mut self,
        spec: Option<S>,
        load: impl FnOnce(S) -> Result<T, earshot::analysis::AnalysisError>,
        without: &str,
    ) -> Option<&mut T> {
        let spec = spec?;
        if let Slot::Untried = self {
            *self = match load(spec) {
                Ok(m) => Slot::Ready(m),
                Err(e) => {
                    tracing::error!(error = %e, "{without}");
                    Slot::Failed
                }
            };
        }
        match self {
            Slot::Ready(m) => Some(m),
            _ => None,
        }
    }
}

/// This analysis thread's models: one per thread, shared by the calls on
/// it (a model is tens of MB; neither the encoder nor an ONNX session is
/// `Sync`).
struct ThreadModels {
    encoder: Slot<Box<dyn earshot::analysis::SentenceEncoder>>,
    ner: Slot<earshot::analysis::onnx::OnnxNer>,
    translator: Slot<earshot::analysis::translate::OnnxTranslator>,
}

thread_local! {
    static MODELS: std::cell::RefCell<ThreadModels> = const {
        std::cell::RefCell::new(ThreadModels {
            encoder: Slot::Untried,
            ner: Slot::Untried,
            translator: Slot::Untried,
        })
    };
}

/// Run `f` with this thread's models (each None when off or when it could
/// not load).
pub fn with_models<R>(
    res: &earshot::analysis::call::Resources,
    f: impl FnOnce(earshot::analysis::call::Models<'_>) -> R,
) -> R {
    MODELS.with(|m| {
        let m = &mut *m.borrow_mut();
        let models = earshot::analysis::call::Models {
            encoder: m
                .encoder
                .get(
                    res.encoder.as_ref(),
                    |spec| spec.load(),
                    "sentence encoder not loaded; semantic scoring off on this thread",
                )
                .map(|m| m.as_mut() as &mut (dyn earshot::analysis::SentenceEncoder + 'static)),
            ner: m
                .ner
                .get(
                    res.ner.as_ref(),
                    |(dir, opts)| earshot::analysis::onnx::OnnxNer::load_with(dir, opts),
                    "NER model not loaded; rules only on this thread",
                )
                .map(|m| m as &mut (dyn earshot::analysis::entities::EntityExtractor + 'static)),
            translator: m
                .translator
                .get(
                    res.translator.as_ref(),
                    |(dir, opts, _)| {
                        earshot::analysis::translate::OnnxTranslator::load_with(dir, opts)
                    },
                    "translation model not loaded; no model translation on this thread",
                )
                .map(|m| m as &mut (dyn earshot::analysis::translate::Translator + 'static)),
        };
        f(models)
    })
}

/// Finals an analysis actor may hold before the call keeps them.
pub const MAILBOX: usize = 256;
/// How often a changed analysis is sent to the call.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

pub struct AnalysisActor {
    call_id: String,
    analysis: CallAnalysis,
    call: Addr<CallActor>,
    hub: Addr<Hub>,
    notifier: Option<Addr<Notifier>>,
    /// When the call started (segment times are relative to it).
    call_start: Instant,
    dirty: bool,
}

impl AnalysisActor {
    pub fn new(
        call_id: String,
        analysis: CallAnalysis,
        call: Addr<CallActor>,
        hub: Addr<Hub>,
        notifier: Option<Addr<Notifier>>,
        call_start: Instant,
    ) -> Self {
        Self {
            call_id,
            analysis,
            call,
            hub,
            notifier,
            call_start,
            dirty: false,
        }
    }

    fn send_snapshot(&mut self, ctx: &mut Context<Self>) {
        if !self.dirty {
            return;
        }
        match self
            .call
            .try_send(AnalysisProgress(Box::new(self.analysis.snapshot())))
        {
            Ok(()) => self.dirty = false,
            // Full: the next tick tries again; closed: the call is gone.
            Err(SendError::Full(_)) => {}
            Err(SendError::Closed(_)) => ctx.stop(),
        }
    }

    /// Push an event (and alert the notifier); `speaker` when the event
    /// does not name one.
    fn publish(&self, e: &AnalysisEvent, speaker: &str) {
        let mut body = serde_json::to_value(e).unwrap_or_default();
        if let Some(o) = body.as_object_mut() {
            o.insert("call_id".into(), serde_json::json!(self.call_id));
            o.insert("timestamp".into(), serde_json::json!(chrono::Utc::now()));
            o.entry("speaker")
                .or_insert_with(|| serde_json::json!(speaker));
        }
        if let Some(n) = &self.notifier {
            if let Some(alert) = Alert::from_event(&self.call_id, e, &body) {
                n.do_send(alert);
            }
        }
        crate::ws::offer(
            &self.hub,
            Push::on(Channel::Analytics, &self.call_id, body, false),
        );
    }
}

impl Actor for AnalysisActor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        ctx.run_interval(SNAPSHOT_EVERY, |act, ctx| act.send_snapshot(ctx));
    }
}

/// Analyse one final segment. `deferred`: it waited in the call actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Analyse {
    pub segment: Segment,
    pub deferred: bool,
}

impl Handler<Analyse> for AnalysisActor {
    type Result = ();
    fn handle(&mut self, m: Analyse, _: &mut Context<Self>) {
        let t0 = Instant::now();
        let seg = m.segment;
        let res = self.analysis.resources().clone();
        let analysis = &mut self.analysis;
        let translated_before = analysis.state().translation_windows.len();
        let events = with_models(&res, |m| analysis.push_with(&seg, chrono::Utc::now(), m));
        let ms = t0.elapsed().as_secs_f64() * 1000.0;
        crate::metrics::get().analysis_latency.observe(ms / 1000.0);
        // The translation model's windows go out like whisper's.
        for t in &self.analysis.state().translation_windows[translated_before..] {
            self.publish_translation(t);
        }
        // Speech ended at call start + end_time; the analysis is done now.
        let since_speech = t0.saturating_duration_since(self.call_start).as_secs_f64()
            - seg.end_time
            + ms / 1000.0;
        self.analysis
            .record_latency(ms, Some(since_speech.max(0.0)));
        if m.deferred {
            self.analysis.count_deferred();
        }
        for e in &events {
            self.publish(e, &seg.speaker);
        }
        if let Some(w) = self.analysis.state().windows.last() {
            let st = self.analysis.state();
            let update = serde_json::json!({
                "type": "analysis_update",
                "call_id": self.call_id,
                "window": w,
                "latest_classification": st.latest_classification,
                "sentiment": st.sentiment,
                "entity_count": st.entities.len(),
                "analysis_ms": ms,
                "timestamp": chrono::Utc::now(),
            });
            crate::ws::offer(
                &self.hub,
                Push::on(Channel::Analytics, &self.call_id, update, true),
            );
        }
        self.dirty = true;
    }
}

/// A final's translation (from the recogniser's translate pass; the
/// translation model's are made in [`Analyse`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Translated(pub TranslationWindow);

impl Handler<Translated> for AnalysisActor {
    type Result = ();
    fn handle(&mut self, m: Translated, _: &mut Context<Self>) {
        let t = m.0;
        self.publish_translation(&t);
        self.analysis.push_translation(t);
        self.dirty = true;
    }
}

impl AnalysisActor {
    fn publish_translation(&self, t: &TranslationWindow) {
        let body = serde_json::json!({
            "type": "translation",
            "call_id": self.call_id,
            "window": t,
            "timestamp": chrono::Utc::now(),
        });
        crate::ws::offer(
            &self.hub,
            Push::on(Channel::Analytics, &self.call_id, body, false),
        );
    }
}

/// The last snapshot; the actor stops after answering.
#[derive(Message)]
#[rtype(result = "Progressive")]
pub struct TakeSnapshot;

impl Handler<TakeSnapshot> for AnalysisActor {
    type Result = MessageResult<TakeSnapshot>;
    fn handle(&mut self, _: TakeSnapshot, ctx: &mut Context<Self>) -> Self::Result {
        ctx.stop();
        for e in self.analysis.flush() {
            self.publish(&e, "");
        }
        MessageResult(self.analysis.snapshot())
    }
}

#[cfg(test)]
mod tests {
    use super::Slot;
    use earshot::analysis::AnalysisError;

    #[test]
    fn a_model_slot_loads_once_and_never_retries_a_failure() {
        let mut tries = 0;
        let mut broken: Slot<u32> = Slot::Untried;
        for _ in 0..3 {
            let got = broken.get(
                Some(()),
                |_| {
                    tries += 1;
                    Err(AnalysisError::model("m", "broken"))
                },
                "m not loaded",
            );
            assert!(got.is_none());
        }
        assert_eq!(tries, 1, "one load attempt per thread");

        let mut ok: Slot<u32> = Slot::Untried;
        assert_eq!(ok.get(None::<()>, |_| Ok(1), "x"), None, "not configured");
        assert_eq!(ok.get(Some(()), |_| Ok(7), "x").copied(), Some(7));
        assert_eq!(ok.get(Some(()), |_| Ok(8), "x").copied(), Some(7), "kept");
    }
}
