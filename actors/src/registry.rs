//! The `RegistryActor`: knows every live call, starts and supervises the
//! `CallActor`s, routes signalling events to them, and answers the HTTP
//! layer's questions from snapshots (live) or the store (ended). HTTP
//! handlers talk only to this actor.

use crate::call::{bind_port, CallActor, CallInit, CallUpdate};
use crate::media::MediaConfig;
use crate::sip_actor::{Control, EndAll, GetSipHealth, SipActor, SipHealth};
use crate::store::{Count, Find, List, StoreActor};
use actix::prelude::*;
use chrono::{DateTime, Utc};
use earshot::ids::CallId;
use earshot::metadata::OriginalCallId;
use earshot::session::{CallStatus, Page, SessionQuery, SessionRecord, SourceInfo};
use earshot::sip::{Headers, Method};
use earshot::uas::{EndReason, Offer, UasEvent};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;
use tokio::sync::oneshot;

struct LiveCall {
    addr: Addr<CallActor>,
    snapshot: SessionRecord,
}

/// Registry settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    pub answer_delay: Duration,
    /// Address RTP sockets bind to.
    pub rtp_bind_ip: IpAddr,
    /// Honour `X-Earshot-Fault` request headers (tests only).
    pub fault_injection: bool,
    pub media: MediaConfig,
    /// WebSocket hub the calls publish to.
    pub hub: Addr<crate::ws::Hub>,
    /// Media threads; calls are spread over them round-robin.
    pub arbiters: Vec<ArbiterHandle>,
    /// Progressive analysis and post-call pipeline (None: off).
    pub analysis: Option<crate::call::AnalysisInit>,
    /// New calls are refused while the recordings disk has less free (MB;
    /// 0 = never).
    pub min_free_disk_mb: u64,
}

/// Free space (MB, for an unprivileged writer) on the filesystem holding
/// `path`; `None` if it cannot be read.
fn disk_free_mb(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a plain-data
    // out-parameter that statvfs fills on success.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64) / (1024 * 1024))
}

pub struct RegistryActor {
    cfg: RegistryConfig,
    calls: HashMap<CallId, LiveCall>,
    sip: Option<Addr<SipActor>>,
    store: Addr<StoreActor>,
    started: DateTime<Utc>,
    http_ready: bool,
    /// Callers of `EndCall`/shutdown waiting for a call to be persisted.
    waiters: HashMap<CallId, Vec<oneshot::Sender<()>>>,
    /// Totals of the calls ended since start (`/metrics`).
    ended_metrics: crate::metrics::Scrape,
    next_arbiter: usize,
}

impl RegistryActor {
    pub fn new(cfg: RegistryConfig, store: Addr<StoreActor>) -> Self {
        Self {
            cfg,
            calls: HashMap::new(),
            sip: None,
            store,
            started: Utc::now(),
            http_ready: false,
            waiters: HashMap::new(),
            ended_metrics: crate::metrics::Scrape::default(),
            next_arbiter: 0,
        }
    }

    /// A call ended: its totals join the ended calls'.
    fn count_ended(&mut self, r: &SessionRecord) {
        add_record(&mut self.ended_metrics, r);
        let key = (
            r.status.as_str().to_string(),
            crate::metrics::reason_label(r.end_reason.as_deref().unwrap_or("")).to_string(),
        );
        *self.ended_metrics.ended.entry(key).or_default() += 1;
        for st in r.streams.iter().filter_map(|s| s.stats.as_ref()) {
            if st.packets > 0 {
                crate::metrics::get().rtp_jitter.observe(st.jitter_ms);
            }
        }
    }

    fn sip(&self, c: Control) {
        if let Some(s) = &self.sip {
            s.do_send(c);
        }
    }

    fn on_offer(&mut self, offer: Offer, ctx: &mut Context<Self>) {
        let call_id = offer.call_id.clone();
        // A full disk would lose the recording: refuse while one can.
        if self.cfg.min_free_disk_mb > 0 {
            let free = disk_free_mb(&self.cfg.media.recordings_dir);
            if free.is_some_and(|f| f < self.cfg.min_free_disk_mb) {
                tracing::warn!(
                    %call_id,
                    free_mb = free,
                    min_free_disk_mb = self.cfg.min_free_disk_mb,
                    "recordings disk nearly full; refusing call"
                );
                self.sip(Control::Reject(
                    call_id,
                    503,
                    "Service Unavailable - recording disk full".into(),
                ));
                return;
            }
        }
        let now = Utc::now();
        let mut source = SourceInfo {
            src_addr: offer.peer.addr.to_string(),
            transport: offer.peer.transport.name().to_owned(),
            user_agent: offer.user_agent.clone(),
            siprec: offer.siprec,
            vendor_hint: vendor_from_user_agent(offer.user_agent.as_deref()),
            original_call_ids: original_ids_from_headers(&offer.headers),
            has_metadata: false,
        };
        if source.vendor_hint.is_none() {
            source.vendor_hint = vendor_from_headers(&offer.headers);
        }
        let mut record = SessionRecord::new(call_id.clone(), now, source);
        record.apply(offer.metadata.as_ref(), &offer.streams);
        // Bind every answered RTP port before saying yes.
        let mut sockets = vec![];
        for s in offer.streams.iter().filter(|s| s.port != 0) {
            match bind_port(self.cfg.rtp_bind_ip, s.port) {
                Ok(bound) => sockets.push(bound),
                Err(e) => {
                    tracing::warn!(%call_id, port = s.port, %e, "RTP port busy; refusing call");
                    self.sip(Control::Reject(
                        call_id,
                        503,
                        "Service Unavailable - RTP port busy".into(),
                    ));
                    return;
                }
            }
        }
        let fault = self.cfg.fault_injection
            && offer
                .headers
                .get("X-Earshot-Fault")
                .is_some_and(|v| v.eq_ignore_ascii_case("panic"));
        tracing::info!(
            %call_id,
            src = %record.source.src_addr,
            participants = record.participants.len(),
            streams = record.streams.len(),
            "recording session offered"
        );
        let actor = CallActor::new(
            CallInit {
                record: record.clone(),
                metadata: offer.metadata,
                streams: offer.streams,
                sockets,
                bind_ip: self.cfg.rtp_bind_ip,
                media: self.cfg.media.clone(),
                hub: self.cfg.hub.clone(),
                analysis: self.cfg.analysis.clone(),
                arbiter: self.pick_arbiter(),
                fault,
            },
            ctx.address(),
            self.store.clone(),
        );
        let addr = actor.start();
        self.calls.insert(
            call_id.clone(),
            LiveCall {
                addr,
                snapshot: record,
            },
        );
        if self.cfg.answer_delay.is_zero() {
            self.sip(Control::Accept(call_id));
        } else {
            ctx.run_later(self.cfg.answer_delay, move |act, _| {
                act.sip(Control::Accept(call_id));
            });
        }
    }

    fn pick_arbiter(&mut self) -> ArbiterHandle {
        let n = self.cfg.arbiters.len();
        self.next_arbiter = self.next_arbiter.wrapping_add(1);
        match self.cfg.arbiters.get(self.next_arbiter % n.max(1)) {
            Some(a) => a.clone(),
            None => Arbiter::current(),
        }
    }

    fn forward(&self, call_id: &CallId, m: CallUpdate) {
        if let Some(c) = self.calls.get(call_id) {
            if c.addr.connected() {
                c.addr.do_send(m);
            }
        }
    }

    fn live_view(&self, c: &LiveCall) -> SessionRecord {
        let mut r = c.snapshot.clone();
        r.total_audio_duration = r.duration_secs(Utc::now());
        r
    }

    fn find_live(&self, key: &str) -> Option<&LiveCall> {
        self.calls.get(&CallId::from(key)).or_else(|| {
            self.calls
                .values()
                .find(|c| c.snapshot.lookup_keys().iter().any(|k| k == key))
        })
    }
}

/// Add a record's RTP, speech and end to metric totals.
fn add_record(into: &mut crate::metrics::Scrape, r: &SessionRecord) {
    for st in &r.streams {
        let codec = st.codec.clone().unwrap_or_else(|| "none".into());
        into.rtp.entry(codec).or_default().add(st);
    }
    into.speech_seconds += crate::metrics::speech_seconds(r);
}

impl Actor for RegistryActor {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        // Supervision: a CallActor that died without finishing (its mailbox
        // closed) is ended as failed from the registry's last snapshot.
        ctx.run_interval(Duration::from_secs(2), |act, ctx| {
            let dead: Vec<CallId> = act
                .calls
                .iter()
                .filter(|(_, c)| !c.addr.connected())
                .map(|(id, _)| id.clone())
                .collect();
            for id in dead {
                if let Some(c) = act.calls.remove(&id) {
                    let mut rec = c.snapshot;
                    rec.finish(
                        CallStatus::Failed,
                        "internal error: call actor died",
                        Utc::now(),
                    );
                    act.count_ended(&rec);
                    // A dead call actor's sockets went with it.
                    act.sip(Control::MediaReleased(id.clone()));
                    tracing::error!(call_id = %id, "call actor died; persisting as failed");
                    let store = act.store.clone();
                    ctx.spawn(
                        async move {
                            let _ = store
                                .send(crate::store::Put {
                                    record: rec,
                                    durable: true,
                                })
                                .await;
                        }
                        .into_actor(act),
                    );
                    act.sip(Control::End(id.clone(), "internal error".into()));
                    act.notify_waiters(&id);
                }
            }
        });
    }
}

impl RegistryActor {
    fn notify_waiters(&mut self, id: &CallId) {
        if let Some(ws) = self.waiters.remove(id) {
            for w in ws {
                let _ = w.send(());
            }
        }
    }
}

/// Give the registry the SIP actor (built after it).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetSip(pub Addr<SipActor>);

impl Handler<SetSip> for RegistryActor {
    type Result = ();
    fn handle(&mut self, m: SetSip, _: &mut Context<Self>) {
        self.sip = Some(m.0);
    }
}

/// The HTTP server is bound.
#[derive(Message)]
#[rtype(result = "()")]
pub struct HttpReady;

impl Handler<HttpReady> for RegistryActor {
    type Result = ();
    fn handle(&mut self, _: HttpReady, _: &mut Context<Self>) {
        self.http_ready = true;
    }
}

/// An event from the UAS.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SipEvent(pub UasEvent);

impl Handler<SipEvent> for RegistryActor {
    type Result = ();
    fn handle(&mut self, SipEvent(e): SipEvent, ctx: &mut Context<Self>) {
        match e {
            UasEvent::Offered(offer) => self.on_offer(*offer, ctx),
            UasEvent::Confirmed { call_id } => self.forward(&call_id, CallUpdate::Confirmed),
            UasEvent::Updated {
                call_id,
                method,
                streams,
                metadata,
            } => self.forward(
                &call_id,
                CallUpdate::Updated {
                    by_update: method == Method::Update,
                    streams,
                    metadata,
                },
            ),
            UasEvent::EndRequested { call_id } => {
                if self.calls.contains_key(&call_id) {
                    self.forward(
                        &call_id,
                        CallUpdate::Finish {
                            status: CallStatus::Completed,
                            reason: "bye".into(),
                            confirm: true,
                        },
                    );
                } else {
                    self.sip(Control::ConfirmEnd(call_id));
                }
            }
            UasEvent::Ended { call_id, reason } => {
                let status = match reason {
                    EndReason::Bye | EndReason::Local(_) | EndReason::Cancelled => {
                        CallStatus::Completed
                    }
                    _ => CallStatus::Failed,
                };
                self.forward(
                    &call_id,
                    CallUpdate::Finish {
                        status,
                        reason: reason.text(),
                        confirm: false,
                    },
                );
            }
        }
    }
}

/// A call's latest state.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Snapshot(pub SessionRecord);

impl Handler<Snapshot> for RegistryActor {
    type Result = ();
    fn handle(&mut self, m: Snapshot, _: &mut Context<Self>) {
        if let Some(c) = self.calls.get_mut(&m.0.call_id) {
            c.snapshot = m.0;
        }
    }
}

/// A call has ended and (if `persisted`) is durable in the store.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finished {
    pub record: SessionRecord,
    pub confirm: bool,
    pub hang_up: bool,
    pub persisted: bool,
}

impl Handler<Finished> for RegistryActor {
    type Result = ();
    fn handle(&mut self, m: Finished, _: &mut Context<Self>) {
        let id = m.record.call_id.clone();
        tracing::info!(
            call_id = %id,
            status = m.record.status.as_str(),
            reason = m.record.end_reason.as_deref().unwrap_or(""),
            duration = m.record.total_audio_duration,
            persisted = m.persisted,
            "recording session ended"
        );
        self.calls.remove(&id);
        self.count_ended(&m.record);
        // The call actor stopped its media (sockets closed) before this.
        self.sip(Control::MediaReleased(id.clone()));
        if m.confirm {
            self.sip(Control::ConfirmEnd(id.clone()));
        }
        if m.hang_up {
            self.sip(Control::End(
                id.clone(),
                m.record.end_reason.clone().unwrap_or_default(),
            ));
        }
        self.notify_waiters(&id);
    }
}

// ----- queries from HTTP ---------------------------------------------------

#[derive(Message)]
#[rtype(result = "Vec<SessionRecord>")]
pub struct GetActive;

impl Handler<GetActive> for RegistryActor {
    type Result = MessageResult<GetActive>;
    fn handle(&mut self, _: GetActive, _: &mut Context<Self>) -> Self::Result {
        let mut v: Vec<SessionRecord> = self.calls.values().map(|c| self.live_view(c)).collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.start_time));
        MessageResult(v)
    }
}

/// Errors the HTTP layer maps to status codes.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("Call session not found")]
    NotFound,
    #[error("store unavailable: {0}")]
    Store(String),
    #[error("SIP layer unavailable")]
    Unavailable,
}

#[derive(Message)]
#[rtype(result = "Result<SessionRecord, RegistryError>")]
pub struct GetCall(pub String);

impl Handler<GetCall> for RegistryActor {
    type Result = ResponseFuture<Result<SessionRecord, RegistryError>>;
    fn handle(&mut self, m: GetCall, _: &mut Context<Self>) -> Self::Result {
        if let Some(c) = self.find_live(&m.0) {
            let r = self.live_view(c);
            return Box::pin(async move { Ok(r) });
        }
        let store = self.store.clone();
        Box::pin(async move {
            match store.send(Find(m.0)).await {
                Ok(Ok(Some(r))) => Ok(r),
                Ok(Ok(None)) => Err(RegistryError::NotFound),
                Ok(Err(e)) => Err(RegistryError::Store(e.to_string())),
                Err(e) => Err(RegistryError::Store(e.to_string())),
            }
        })
    }
}

/// Why a manual post-call run was refused.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("the call is still live; its post-call pipeline runs when it ends")]
    Live,
    #[error("analysis is off on this engine")]
    Disabled,
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error("post-call pipeline unavailable")]
    Unavailable,
}

/// Re-run the post-call pipeline of an ended call.
#[derive(Message)]
#[rtype(result = "Result<String, TriggerError>")]
pub struct TriggerPipeline(pub String);

impl Handler<TriggerPipeline> for RegistryActor {
    type Result = ResponseFuture<Result<String, TriggerError>>;
    fn handle(&mut self, m: TriggerPipeline, _: &mut Context<Self>) -> Self::Result {
        if self.find_live(&m.0).is_some() {
            return Box::pin(async { Err(TriggerError::Live) });
        }
        let pipeline = self.cfg.analysis.as_ref().and_then(|a| a.pipeline.clone());
        let store = self.store.clone();
        Box::pin(async move {
            let pipeline = pipeline.ok_or(TriggerError::Disabled)?;
            let rec = match store.send(Find(m.0)).await {
                Ok(Ok(Some(r))) => r,
                Ok(Ok(None)) => return Err(RegistryError::NotFound.into()),
                Ok(Err(e)) => return Err(RegistryError::Store(e.to_string()).into()),
                Err(e) => return Err(RegistryError::Store(e.to_string()).into()),
            };
            if rec.status == CallStatus::Active {
                return Err(TriggerError::Live);
            }
            let id = rec.call_id.0.clone();
            pipeline
                .send(crate::pipeline::RunPipeline {
                    record: Box::new(rec),
                    trigger: "manual",
                })
                .await
                .map_err(|_| TriggerError::Unavailable)??;
            Ok(id)
        })
    }
}

#[derive(Message)]
#[rtype(result = "Result<Page<SessionRecord>, RegistryError>")]
pub struct ListCalls(pub SessionQuery);

impl Handler<ListCalls> for RegistryActor {
    type Result = ResponseFuture<Result<Page<SessionRecord>, RegistryError>>;
    fn handle(&mut self, m: ListCalls, _: &mut Context<Self>) -> Self::Result {
        let store = self.store.clone();
        // Live calls are journaled in the store; show their fresh view.
        let live: HashMap<CallId, SessionRecord> = self
            .calls
            .iter()
            .map(|(id, c)| (id.clone(), self.live_view(c)))
            .collect();
        Box::pin(async move {
            let mut page = match store.send(List(m.0)).await {
                Ok(Ok(p)) => p,
                Ok(Err(e)) => return Err(RegistryError::Store(e.to_string())),
                Err(e) => return Err(RegistryError::Store(e.to_string())),
            };
            for item in page.items.iter_mut() {
                if let Some(l) = live.get(&item.call_id) {
                    *item = l.clone();
                }
            }
            Ok(page)
        })
    }
}

/// Aggregates for `/api/v1/calls/stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub active_sessions: usize,
    pub total_audio_duration: f64,
    pub total_segments: u64,
    pub average_duration_per_session: f64,
    pub session_list: Vec<String>,
    pub stored_sessions: usize,
    pub ended_since_start: u64,
    /// RTP packets received by live calls.
    pub rtp_packets: u64,
    /// RTP packets live calls lost in the network (concealed).
    pub rtp_lost: u64,
    /// Datagrams live calls dropped because the engine could not keep up.
    pub rtp_dropped_by_engine: u64,
}

#[derive(Message)]
#[rtype(result = "Stats")]
pub struct GetStats;

impl Handler<GetStats> for RegistryActor {
    type Result = ResponseFuture<Stats>;
    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        let views: Vec<SessionRecord> = self.calls.values().map(|c| self.live_view(c)).collect();
        let total: f64 = views.iter().map(|r| r.total_audio_duration).sum();
        let n = views.len();
        let mut stats = Stats {
            active_sessions: n,
            total_audio_duration: total,
            total_segments: views.iter().map(|r| r.segment_count).sum(),
            average_duration_per_session: if n == 0 { 0.0 } else { total / n as f64 },
            session_list: views.iter().map(|r| r.call_id.0.clone()).collect(),
            stored_sessions: 0,
            ended_since_start: self.ended_metrics.ended.values().sum(),
            rtp_packets: views.iter().map(|r| r.counters.rtp_packets).sum(),
            rtp_lost: views
                .iter()
                .flat_map(|r| r.streams.iter())
                .filter_map(|s| s.stats.map(|st| st.lost))
                .sum(),
            rtp_dropped_by_engine: views
                .iter()
                .flat_map(|r| r.streams.iter())
                .map(|s| s.receive.dropped_by_engine)
                .sum(),
        };
        let store = self.store.clone();
        Box::pin(async move {
            stats.stored_sessions = store.send(Count).await.unwrap_or(0);
            stats
        })
    }
}

/// End a live call from our side (REST). Resolves once it is persisted.
#[derive(Message)]
#[rtype(result = "Result<(), RegistryError>")]
pub struct EndCall {
    pub key: String,
    pub reason: String,
}

impl Handler<EndCall> for RegistryActor {
    type Result = ResponseFuture<Result<(), RegistryError>>;
    fn handle(&mut self, m: EndCall, _: &mut Context<Self>) -> Self::Result {
        let Some(id) = self.find_live(&m.key).map(|c| c.snapshot.call_id.clone()) else {
            return Box::pin(async { Err(RegistryError::NotFound) });
        };
        let Some(sip) = self.sip.clone() else {
            return Box::pin(async { Err(RegistryError::Unavailable) });
        };
        let (tx, rx) = oneshot::channel();
        self.waiters.entry(id.clone()).or_default().push(tx);
        Box::pin(async move {
            let ended = sip.send(Control::End(id, m.reason)).await.unwrap_or(false);
            if !ended {
                return Err(RegistryError::NotFound);
            }
            match tokio::time::timeout(Duration::from_secs(10), rx).await {
                Ok(_) => Ok(()),
                Err(_) => Err(RegistryError::Unavailable),
            }
        })
    }
}

/// Readiness and subsystem health.
#[derive(Debug, Clone)]
pub struct Health {
    pub started: DateTime<Utc>,
    pub http_ready: bool,
    pub sip: Option<SipHealth>,
    pub store_ok: bool,
    pub active_calls: usize,
    /// The recogniser, when on.
    pub asr: Option<crate::asr::AsrStats>,
    pub ws: Option<crate::ws::HubStats>,
    /// Free MB on the recordings disk (None: unreadable) and the minimum.
    pub disk_free_mb: Option<u64>,
    pub min_free_disk_mb: u64,
}

#[derive(Message)]
#[rtype(result = "Health")]
pub struct GetHealth;

impl Handler<GetHealth> for RegistryActor {
    type Result = ResponseFuture<Health>;
    fn handle(&mut self, _: GetHealth, _: &mut Context<Self>) -> Self::Result {
        let sip = self.sip.clone();
        let store = self.store.clone();
        let mut h = Health {
            started: self.started,
            http_ready: self.http_ready,
            sip: None,
            store_ok: false,
            active_calls: self.calls.len(),
            asr: self.cfg.media.asr.as_ref().map(|p| p.stats()),
            ws: None,
            disk_free_mb: disk_free_mb(&self.cfg.media.recordings_dir),
            min_free_disk_mb: self.cfg.min_free_disk_mb,
        };
        let hub = self.cfg.hub.clone();
        Box::pin(async move {
            h.ws = hub.send(crate::ws::GetHubStats).await.ok();
            if let Some(s) = sip {
                h.sip = s.send(GetSipHealth).await.ok();
            }
            h.store_ok = store.send(Count).await.is_ok();
            h
        })
    }
}

/// Totals for `/metrics`: the ended calls' plus the live calls' now, and
/// the ASR pool's and WebSocket hub's figures.
#[derive(Message)]
#[rtype(result = "crate::metrics::Scrape")]
pub struct GetMetrics;

impl Handler<GetMetrics> for RegistryActor {
    type Result = ResponseFuture<crate::metrics::Scrape>;
    fn handle(&mut self, _: GetMetrics, _: &mut Context<Self>) -> Self::Result {
        let mut m = self.ended_metrics.clone();
        m.active_calls = self.calls.len();
        for c in self.calls.values() {
            add_record(&mut m, &c.snapshot);
        }
        m.asr = self.cfg.media.asr.as_ref().map(|p| p.stats());
        let hub = self.cfg.hub.clone();
        Box::pin(async move {
            m.ws = hub.send(crate::ws::GetHubStats).await.ok();
            m
        })
    }
}

/// Graceful shutdown: end every live call and wait (bounded) until all are persisted.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct Shutdown;

impl Handler<Shutdown> for RegistryActor {
    type Result = ResponseFuture<usize>;
    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) -> Self::Result {
        let mut rxs = vec![];
        for id in self.calls.keys() {
            let (tx, rx) = oneshot::channel();
            self.waiters.entry(id.clone()).or_default().push(tx);
            rxs.push(rx);
        }
        let n = rxs.len();
        let sip = self.sip.clone();
        Box::pin(async move {
            if let Some(s) = sip {
                let _ = s.send(EndAll("shutdown".into())).await;
            }
            let all = futures_util::future::join_all(rxs);
            let _ = tokio::time::timeout(Duration::from_secs(10), all).await;
            n
        })
    }
}

/// Vendor from the SRC's User-Agent/Server string.
pub fn vendor_from_user_agent(ua: Option<&str>) -> Option<String> {
    let ua = ua?.to_ascii_lowercase();
    const MARKERS: &[(&str, &str)] = &[
        ("cisco", "cisco"),
        ("cube", "cisco"),
        ("acme", "oracle"),
        ("oracle", "oracle"),
        ("audiocodes", "audiocodes"),
        ("mediant", "audiocodes"),
        ("sonus", "ribbon"),
        ("ribbon", "ribbon"),
        ("avaya", "avaya"),
        ("broadworks", "broadworks"),
        ("metaswitch", "metaswitch"),
        ("perimeta", "metaswitch"),
        ("opensips", "opensips"),
        ("freeswitch", "freeswitch"),
        ("genesys", "genesys"),
    ];
    MARKERS
        .iter()
        .find(|(m, _)| ua.contains(m))
        .map(|(_, v)| (*v).to_owned())
}

fn vendor_from_headers(h: &Headers) -> Option<String> {
    h.0.iter().find_map(|(name, _)| {
        let n = name.to_ascii_lowercase();
        if n.starts_with("x-cisco") || n == "cisco-guid" {
            Some("cisco".into())
        } else if n.starts_with("x-genesys") {
            Some("genesys".into())
        } else if n.starts_with("x-broadworks") {
            Some("broadworks".into())
        } else if n.starts_with("x-avaya") || n.starts_with("p-av-") {
            Some("avaya".into())
        } else {
            None
        }
    })
}

/// Identifiers of the original call carried in well-known SIP headers.
pub fn original_ids_from_headers(h: &Headers) -> Vec<OriginalCallId> {
    const KNOWN: &[(&str, &str)] = &[
        ("Cisco-Guid", "cisco_guid"),
        ("Session-ID", "session_id"),
        ("X-Genesys-CallUUID", "genesys_uuid"),
        ("X-UCID", "ucid"),
        ("X-BroadWorks-Correlation-Info", "broadworks_correlation"),
        ("X-Original-Call-ID", "call_id"),
    ];
    let mut out = vec![];
    for (header, kind) in KNOWN {
        if let Some(v) = h.get(header) {
            let value = v.split(';').next().unwrap_or(v).trim().to_owned();
            if !value.is_empty() {
                out.push(OriginalCallId {
                    kind: (*kind).to_owned(),
                    value,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_hints_from_user_agent() {
        assert_eq!(
            vendor_from_user_agent(Some("Cisco-SIPGateway/IOS-16.12")).as_deref(),
            Some("cisco")
        );
        assert_eq!(
            vendor_from_user_agent(Some("Oracle ESBC")).as_deref(),
            Some("oracle")
        );
        assert_eq!(vendor_from_user_agent(Some("sipp")), None);
        assert_eq!(vendor_from_user_agent(None), None);
    }
}
