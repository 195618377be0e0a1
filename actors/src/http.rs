//! The REST API (actix-web). Handlers only ask the registry; they never
//! reach into calls. Errors are `{"detail": "..."}`; validation errors are
//! 422 with `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`.

use crate::registry::{
    EndCall, GetActive, GetCall, GetHealth, GetStats, ListCalls, RegistryActor, RegistryError,
};
use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::HashMap;

pub type Registry = web::Data<Addr<RegistryActor>>;

/// Services beside the registry the handlers may ask (not calls).
pub struct Services {
    pub pipeline: Option<actix::Addr<crate::pipeline::PipelineActor>>,
    pub notifier: Option<actix::Addr<crate::notify::Notifier>>,
    pub analysis: Option<std::sync::Arc<earshot::analysis::call::Resources>>,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::analysis_http::configure(cfg);
    cfg.route("/health", web::get().to(health))
        .route("/metrics", web::get().to(metrics))
        .route("/health/live", web::get().to(live))
        .route("/health/ready", web::get().to(ready))
        .route("/status", web::get().to(status))
        .route("/api/v1/calls", web::get().to(list_calls))
        .route("/api/v1/calls/active", web::get().to(active))
        .route("/api/v1/calls/stats", web::get().to(stats))
        .route("/api/v1/calls/{call_id}", web::get().to(get_call))
        .route("/api/v1/calls/{call_id}/end", web::post().to(end_call))
        .route(
            "/api/v1/calls/{call_id}/recording",
            web::get().to(recording),
        )
        .route(
            "/api/v1/calls/{call_id}/talk-time",
            web::get().to(talk_time),
        )
        .route("/api/v1/calls/{call_id}/events", web::get().to(events))
        .route(
            "/api/v1/calls/{call_id}/transcript",
            web::get().to(transcript),
        )
        .route("/api/v1/calls/{call_id}/segments", web::get().to(segments))
        .route(
            "/ws/transcriptions",
            web::get().to(crate::ws::transcriptions),
        )
        .route("/ws/analytics", web::get().to(crate::ws::analytics))
        .route("/ws/events", web::get().to(crate::ws::events));
}

/// JSON 404/405 for anything unrouted.
pub async fn not_found() -> HttpResponse {
    detail(StatusCode::NOT_FOUND, "Not Found")
}

pub fn detail(status: StatusCode, msg: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "detail": msg }))
}

/// One validation error item.
pub fn invalid(loc: &[&str], msg: &str, kind: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY).json(json!({
        "detail": [{ "loc": loc, "msg": msg, "type": kind }]
    }))
}

pub(crate) fn registry_error(e: RegistryError) -> HttpResponse {
    match e {
        RegistryError::NotFound => detail(StatusCode::NOT_FOUND, "Call session not found"),
        RegistryError::Store(m) => detail(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("store unavailable: {m}"),
        ),
        RegistryError::Unavailable => {
            detail(StatusCode::SERVICE_UNAVAILABLE, "SIP layer unavailable")
        }
    }
}

pub(crate) fn mailbox_error() -> HttpResponse {
    detail(StatusCode::SERVICE_UNAVAILABLE, "engine is shutting down")
}

/// The 422 for a call id that cannot be one, if it cannot.
fn call_id_error(id: &str) -> Option<HttpResponse> {
    if !earshot::api::valid_call_id(id) {
        return Some(invalid(
            &["path", "call_id"],
            "Invalid call_id format",
            "value_error",
        ));
    }
    None
}

/// Prometheus text exposition (see [`crate::metrics`]).
async fn metrics(reg: Registry, services: web::Data<Services>) -> HttpResponse {
    let Ok(mut scrape) = reg.send(crate::registry::GetMetrics).await else {
        return mailbox_error();
    };
    if let Some(n) = &services.notifier {
        scrape.notify = n.send(crate::notify::GetNotifyStats).await.ok();
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(&scrape))
}

async fn health(reg: Registry, services: web::Data<Services>) -> HttpResponse {
    let Ok(h) = reg.send(GetHealth).await else {
        return mailbox_error();
    };
    let notifier = match &services.notifier {
        None => json!({"status": "healthy", "message": "notifications off"}),
        Some(n) => match n.send(crate::notify::GetNotifyStats).await {
            Ok(st) => notifier_check(&st),
            Err(_) => json!({"status": "unhealthy", "message": "notifier not answering"}),
        },
    };
    let now = Utc::now();
    let sip = match h.sip {
        Some(s) => {
            json!({"status": "healthy", "message": "SIP service is running", "dialogs": s.dialogs, "tcp_connections": s.tcp_connections, "send_failures": s.send_failures})
        }
        None => json!({"status": "unhealthy", "message": "SIP service not started"}),
    };
    let ports = match h.sip {
        Some(s) => {
            let st = if s.ports_free == 0 {
                "unhealthy"
            } else if s.ports_free * 10 < s.ports_total {
                "degraded"
            } else {
                "healthy"
            };
            json!({"status": st, "free": s.ports_free, "total": s.ports_total, "held_by_ending_calls": s.ports_held})
        }
        None => json!({"status": "unhealthy"}),
    };
    let store = if h.store_ok {
        json!({"status": "healthy"})
    } else {
        json!({"status": "unhealthy", "message": "store not answering"})
    };
    let asr = match &h.asr {
        None => json!({"status": "healthy", "message": "ASR off"}),
        Some(a) => {
            // Finals waiting for more than a few seconds of work per worker
            // means transcripts are lagging.
            let st = if a.queued_finals > 4 * a.workers {
                "degraded"
            } else {
                "healthy"
            };
            json!({"status": st, "workers": a.workers, "busy": a.busy_workers,
                   "queued_finals": a.queued_finals, "queued_partials": a.queued_partials})
        }
    };
    // New calls are refused below the minimum; degraded below twice it.
    let disk = match h.disk_free_mb {
        None => json!({"status": "degraded", "message": "free space unreadable"}),
        Some(free) => {
            let min = h.min_free_disk_mb;
            let st = if min > 0 && free < min {
                "unhealthy"
            } else if min > 0 && free < 2 * min {
                "degraded"
            } else {
                "healthy"
            };
            json!({"status": st, "free_mb": free, "min_free_mb": min})
        }
    };
    let statuses = [&sip, &ports, &store, &asr, &notifier, &disk];
    let overall = if statuses.iter().any(|s| s["status"] == "unhealthy") {
        "unhealthy"
    } else if statuses.iter().any(|s| s["status"] == "degraded") {
        "degraded"
    } else {
        "healthy"
    };
    let code = if overall == "unhealthy" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    HttpResponse::build(code).json(json!({
        "status": overall,
        "timestamp": now,
        "uptime_seconds": (now - h.started).num_seconds(),
        "version": env!("CARGO_PKG_VERSION"),
        "checks": {"sip": sip, "rtp_ports": ports, "store": store, "asr_workers": asr, "notifier": notifier, "disk": disk, "http": {"status": if h.http_ready {"healthy"} else {"unhealthy"}}},
        "system": {"active_calls": h.active_calls, "cpu_count": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)},
    }))
}

/// The notifier is degraded when its last delivery attempt failed or its
/// queue is half full; never unhealthy (calls are recorded regardless).
fn notifier_check(st: &crate::notify::NotifyStats) -> serde_json::Value {
    let last_failed = st.recent.first().is_some_and(|d| !d.ok); // newest first
    let backlog = st.queued * 2 >= crate::notify::QUEUE;
    let status = if last_failed || backlog {
        "degraded"
    } else {
        "healthy"
    };
    json!({"status": status, "queued": st.queued, "delivered": st.delivered,
           "failed_attempts": st.failed_attempts, "dead_lettered": st.dead_lettered,
           "last_error": st.last_error})
}

async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "alive"}))
}

async fn ready(reg: Registry) -> HttpResponse {
    let Ok(h) = reg.send(GetHealth).await else {
        return mailbox_error();
    };
    let mut missing = vec![];
    if h.sip.is_none() {
        missing.push("sip");
    }
    if !h.http_ready {
        missing.push("http");
    }
    if !h.store_ok {
        missing.push("store");
    }
    if missing.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        detail(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("not ready: {}", missing.join(", ")),
        )
    }
}

async fn status(reg: Registry) -> HttpResponse {
    let Ok(h) = reg.send(GetHealth).await else {
        return mailbox_error();
    };
    let now = Utc::now();
    HttpResponse::Ok().json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": h.started,
        "uptime_seconds": (now - h.started).num_seconds(),
        "active_calls": h.active_calls,
        "asr": h.asr,
        "websocket": h.ws,
    }))
}

async fn active(reg: Registry) -> HttpResponse {
    match reg.send(GetActive).await {
        Ok(v) => HttpResponse::Ok().json(v),
        Err(_) => mailbox_error(),
    }
}

async fn stats(reg: Registry) -> HttpResponse {
    match reg.send(GetStats).await {
        Ok(s) => HttpResponse::Ok().json(s),
        Err(_) => mailbox_error(),
    }
}

async fn get_call(reg: Registry, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    if let Some(r) = call_id_error(&id) {
        return r;
    }
    match reg.send(GetCall(id)).await {
        Ok(Ok(r)) => HttpResponse::Ok().json(r),
        Ok(Err(e)) => registry_error(e),
        Err(_) => mailbox_error(),
    }
}

async fn end_call(
    reg: Registry,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let id = path.into_inner();
    if let Some(r) = call_id_error(&id) {
        return r;
    }
    let reason = match earshot::api::end_reason(q.get("reason").map(String::as_str)) {
        Ok(r) => r,
        Err(msg) => return invalid(&["query", "reason"], msg, "value_error"),
    };
    match reg.send(EndCall { key: id, reason }).await {
        Ok(Ok(())) => HttpResponse::Ok().json("Call ended successfully"),
        Ok(Err(e)) => registry_error(e),
        Err(_) => mailbox_error(),
    }
}

pub use earshot::api::parse_query;

async fn list_calls(reg: Registry, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let query = match parse_query(&q) {
        Ok(q) => q,
        Err(errs) => {
            return HttpResponse::build(StatusCode::UNPROCESSABLE_ENTITY)
                .json(json!({ "detail": errs }))
        }
    };
    match reg.send(ListCalls(query)).await {
        Ok(Ok(page)) => HttpResponse::Ok().json(page),
        Ok(Err(e)) => registry_error(e),
        Err(_) => mailbox_error(),
    }
}

pub(crate) async fn lookup(
    reg: &Registry,
    id: String,
) -> Result<earshot::session::SessionRecord, HttpResponse> {
    if let Some(r) = call_id_error(&id) {
        return Err(r);
    }
    match reg.send(GetCall(id)).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(registry_error(e)),
        Err(_) => Err(mailbox_error()),
    }
}

/// `GET /api/v1/calls/{id}/recording?leg=<label|participant_id|stereo>`:
/// the WAV (16 kHz, 16-bit). Default leg: stereo when there is one, else the
/// single stream. 404 before any audio, 410 once the file is gone.
async fn recording(
    req: actix_web::HttpRequest,
    reg: Registry,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let rec = match lookup(&reg, path.into_inner()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let leg = q.get("leg").cloned();
    let stereo_wanted =
        leg.as_deref() == Some("stereo") || (leg.is_none() && rec.recordings.stereo.is_some());
    let (file, audio_ms) = if stereo_wanted {
        let ms = rec.streams.iter().map(|s| s.recorded_ms).max().unwrap_or(0);
        (rec.recordings.stereo.clone(), ms)
    } else {
        let stream = match leg.as_deref() {
            None => rec.streams.iter().find(|s| s.recording.is_some()),
            Some(l) => rec.streams.iter().find(|s| {
                s.label.as_str() == l || s.participant_id.as_ref().is_some_and(|p| p.as_str() == l)
            }),
        };
        match stream {
            Some(s) => (s.recording.clone(), s.recorded_ms),
            None => {
                let legs: Vec<String> = rec
                    .streams
                    .iter()
                    .map(|s| s.label.0.clone())
                    .chain(rec.recordings.stereo.iter().map(|_| "stereo".to_owned()))
                    .collect();
                return detail(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "no leg {:?} in this call; legs: {}",
                        leg.unwrap_or_default(),
                        legs.join(", ")
                    ),
                );
            }
        }
    };
    let Some(file) = file else {
        return detail(StatusCode::NOT_FOUND, "no recording for this leg");
    };
    if audio_ms == 0 {
        return detail(StatusCode::NOT_FOUND, "no audio recorded yet");
    }
    match actix_files::NamedFile::open(&file) {
        Ok(f) => f
            .set_content_type("audio/wav".parse().expect("static mime"))
            .into_response(&req),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            detail(StatusCode::GONE, "recording deleted (retention)")
        }
        Err(e) => detail(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("recording unreadable: {e}"),
        ),
    }
}

/// `GET /api/v1/calls/{id}/talk-time`: talk-time analytics from the speech
/// regions of each stream, live or final.
async fn talk_time(reg: Registry, path: web::Path<String>) -> HttpResponse {
    let rec = match lookup(&reg, path.into_inner()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    HttpResponse::Ok().json(talk_time_of(&rec, Utc::now()))
}

/// The talk-time answer of a session record.
pub fn talk_time_of(
    rec: &earshot::session::SessionRecord,
    now: DateTime<Utc>,
) -> serde_json::Value {
    let duration_ms = (rec.duration_secs(now) * 1000.0) as u64;
    let audio: Vec<&earshot::session::StreamInfo> = rec
        .streams
        .iter()
        .filter(|s| s.codec.is_some() && s.local_port != 0)
        .collect();
    let roles: Vec<Option<&str>> = audio
        .iter()
        .map(|s| {
            s.participant_id.as_ref().and_then(|p| {
                rec.participants
                    .iter()
                    .find(|x| &x.participant_id == p)
                    .and_then(|x| x.role.as_deref())
            })
        })
        .collect();
    let speakers: Vec<earshot::talktime::SpeakerInput> = audio
        .iter()
        .zip(roles.iter())
        .map(|(s, role)| earshot::talktime::SpeakerInput {
            id: s
                .participant_id
                .as_ref()
                .map(|p| p.as_str())
                .unwrap_or(s.label.as_str()),
            role: *role,
            label: s.label.as_str(),
            regions: &s.speech,
            words: words_of(rec, &s.label),
        })
        .collect();
    let mixed = audio.len() == 1;
    let mut v = earshot::talktime::talk_time(duration_ms, &speakers, mixed);
    if let Some(o) = v.as_object_mut() {
        o.insert("call_id".into(), json!(rec.call_id));
        o.insert("status".into(), json!(rec.status));
    }
    v
}

/// Words transcribed on a stream (`None` without any transcript, so
/// wordsPerMinute stays null when ASR is off).
fn words_of(rec: &earshot::session::SessionRecord, label: &earshot::ids::Label) -> Option<u64> {
    if rec.transcript_segments.is_empty() {
        return None;
    }
    Some(
        rec.transcript_segments
            .iter()
            .filter(|s| s.stream_label == label.0)
            .map(|s| s.text.split_whitespace().count() as u64)
            .sum(),
    )
}

/// `GET /api/v1/calls/{id}/transcript?include_segments=`: the final
/// transcript so far (live) or of the ended call.
async fn transcript(
    reg: Registry,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let include = match earshot::api::parse_flag(q.get("include_segments").map(String::as_str)) {
        Ok(b) => b,
        Err(msg) => return invalid(&["query", "include_segments"], &msg, "bool_parsing"),
    };
    let rec = match lookup(&reg, path.into_inner()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut body = json!({
        "call_id": rec.call_id,
        "status": rec.status,
        "cumulative_transcript": rec.cumulative_transcript,
        "language": earshot::asr::main_language(&rec.transcript_segments),
        "segment_count": rec.segment_count,
        "total_duration": rec.duration_secs(Utc::now()),
        "transcription_status": rec.asr.status(rec.status == earshot::session::CallStatus::Active),
        "pending_finals": rec.asr.pending(),
    });
    if include {
        body["segments"] = json!(rec.transcript_segments);
    }
    HttpResponse::Ok().json(body)
}

/// `GET /api/v1/calls/{id}/segments`: every final segment, in time order.
async fn segments(reg: Registry, path: web::Path<String>) -> HttpResponse {
    let rec = match lookup(&reg, path.into_inner()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let mut segs = rec.transcript_segments;
    segs.sort_by(|a, b| {
        a.start_time
            .total_cmp(&b.start_time)
            .then(a.segment_id.cmp(&b.segment_id))
    });
    HttpResponse::Ok().json(segs)
}

/// `GET /api/v1/calls/{id}/events`: the call's media events so far.
async fn events(reg: Registry, path: web::Path<String>) -> HttpResponse {
    let rec = match lookup(&reg, path.into_inner()).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    HttpResponse::Ok().json(json!({
        "call_id": rec.call_id,
        "events": rec.events,
        "events_dropped": rec.events_dropped,
    }))
}
