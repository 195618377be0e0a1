//! The analysis endpoints of the REST API (Call Sessions API names and
//! shapes): progressive analysis, translation, entity and classification
//! evolution, export, the post-call pipeline (trigger, per-call and global
//! processing status) and the agent notification service. Handlers ask the
//! registry (sessions, live or stored), the pipeline actor and the notifier;
//! never a call.

use crate::http::{detail, invalid, lookup, mailbox_error, registry_error, Registry, Services};
use crate::pipeline::{GetPipelineStatus, GetProcessing, PipelineError};
use crate::registry::{TriggerError, TriggerPipeline};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use chrono::Utc;
use earshot::analysis::call::{PostCall, PostCallRun, ProcessingInfo, Progressive, STAGES};
use earshot::session::{CallStatus, SessionRecord};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

type Svc = web::Data<Services>;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/api/v1/calls/processing/status",
        web::get().to(processing_status),
    )
    .route(
        "/api/v1/calls/agent-service/health",
        web::get().to(agent_health),
    )
    .route(
        "/api/v1/calls/agent-service/test-auth",
        web::post().to(test_auth),
    )
    .route(
        "/api/v1/calls/agent-service/test-notification",
        web::post().to(test_notification),
    )
    .route(
        "/api/v1/calls/{call_id}/progressive-analysis",
        web::get().to(progressive),
    )
    .route(
        "/api/v1/calls/{call_id}/translation",
        web::get().to(translation),
    )
    .route(
        "/api/v1/calls/{call_id}/entity-evolution",
        web::get().to(entity_evolution),
    )
    .route(
        "/api/v1/calls/{call_id}/classification-evolution",
        web::get().to(classification_evolution),
    )
    .route("/api/v1/calls/{call_id}/export", web::get().to(export))
    .route(
        "/api/v1/calls/{call_id}/trigger-ai-pipeline",
        web::post().to(trigger),
    )
    .route(
        "/api/v1/calls/{call_id}/processing",
        web::get().to(processing),
    );
}

/// `live`, `post_call` or `off`.
fn analysis_status(rec: &SessionRecord) -> &'static str {
    if rec.analysis.post_call.is_some() {
        "post_call"
    } else if rec.analysis.progressive.is_some() || rec.status == CallStatus::Active {
        "live"
    } else {
        "none"
    }
}

fn latest(rec: &SessionRecord) -> Progressive {
    rec.analysis.latest().cloned().unwrap_or_default()
}

/// Entities grouped by label: distinct values, in discovery order.
fn grouped(p: &Progressive) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &p.entities {
        let v = e.normalized.clone().unwrap_or_else(|| e.text.clone());
        let list = out.entry(e.label.clone()).or_default();
        if !list.contains(&v) {
            list.push(v);
        }
    }
    out
}

fn entity_windows(p: &Progressive, cumulative: bool) -> Vec<Value> {
    let mut seen = 0usize;
    let mut out = vec![];
    for w in p.windows.iter().filter(|w| !w.new_entities.is_empty()) {
        seen += w.new_entities.len();
        let mut v = json!({
            "window_id": w.window_id,
            "timestamp": w.timestamp,
            "segment_id": w.segment_id,
            "speaker": w.speaker,
            "start_time": w.start_time,
            "new_entities": w.new_entities,
            "entity_count": seen,
        });
        if cumulative {
            v["entities"] = json!(p.entities[..seen.min(p.entities.len())]);
        }
        out.push(v);
    }
    out
}

fn classification_windows(p: &Progressive) -> Vec<Value> {
    let mut prev: Option<&str> = None;
    p.classification_evolution
        .iter()
        .map(|c| {
            let main = c.classification.main_category.as_str();
            let changed = prev.is_some_and(|p| p != main);
            prev = Some(main);
            json!({
                "window_id": c.window_id,
                "timestamp": c.timestamp,
                "classification": c.classification,
                "main_category": main,
                "sub_category": c.classification.sub_category,
                "priority": c.classification.priority,
                "confidence": c.classification.confidence,
                "changed": changed,
            })
        })
        .collect()
}

async fn record(reg: &Registry, path: web::Path<String>) -> Result<SessionRecord, HttpResponse> {
    lookup(reg, path.into_inner()).await
}

/// `GET /api/v1/calls/{id}/progressive-analysis`.
async fn progressive(reg: Registry, path: web::Path<String>) -> HttpResponse {
    let rec = match record(&reg, path).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let p = latest(&rec);
    let latest_sentiment = json!({
        "participants": p.sentiment,
        "alerts": p.sentiment_alerts,
        "last": p.windows.iter().rev().find_map(|w| w.sentiment.clone()),
    });
    HttpResponse::Ok().json(json!({
        "call_id": rec.call_id,
        "status": rec.status,
        "analysis_status": analysis_status(&rec),
        "windows": p.windows,
        "cumulative_translation": p.cumulative_translation(),
        "translation_windows": p.translation_windows.len(),
        "latest_entities": grouped(&p),
        "entities": p.entities,
        "latest_classification": p.latest_classification,
        "latest_sentiment": latest_sentiment,
        "keywords": p.keywords.iter().filter(|k| k.count > 0).collect::<Vec<_>>(),
        "missing_compliance": p.missing_compliance,
        "entity_evolution": entity_windows(&p, false),
        "classification_evolution": classification_windows(&p),
        "evolution_data": {
            "windows": p.windows.len(),
            "entity_windows": p.windows.iter().filter(|w| !w.new_entities.is_empty()).count(),
            "classification_changes": p.classification_evolution.len().saturating_sub(1),
        },
        "processing_stats": p.processing_stats,
    }))
}

/// `GET /api/v1/calls/{id}/translation`.
async fn translation(reg: Registry, svc: Svc, path: web::Path<String>) -> HttpResponse {
    let rec = match record(&reg, path).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let p = latest(&rec);
    let enabled = svc.analysis.as_ref().is_some_and(|r| r.config.translation);
    HttpResponse::Ok().json(json!({
        "call_id": rec.call_id,
        "cumulative_translation": p.cumulative_translation(),
        "language": "en",
        "source_language": p.source_language()
            .or_else(|| earshot::asr::main_language(&rec.transcript_segments)),
        "translation_model": p.translation_windows.last().map(|t| t.model.clone()),
        "translation_enabled": enabled,
        "translation_windows": p.translation_windows,
    }))
}

/// `GET /api/v1/calls/{id}/entity-evolution`.
async fn entity_evolution(reg: Registry, path: web::Path<String>) -> HttpResponse {
    let rec = match record(&reg, path).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    HttpResponse::Ok().json(entity_windows(&latest(&rec), true))
}

/// `GET /api/v1/calls/{id}/classification-evolution`.
async fn classification_evolution(reg: Registry, path: web::Path<String>) -> HttpResponse {
    let rec = match record(&reg, path).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    HttpResponse::Ok().json(classification_windows(&latest(&rec)))
}

/// The post-call result of a record: stored, or computed now (a live call,
/// or a session whose pipeline has not run).
fn post_call_of(rec: &SessionRecord, svc: &Services) -> Option<PostCall> {
    if let Some(p) = &rec.analysis.post_call {
        return Some(p.clone());
    }
    let res = svc.analysis.clone()?;
    let translations = rec
        .analysis
        .progressive
        .as_ref()
        .map(|p| p.translation_windows.clone())
        .unwrap_or_default();
    Some(
        PostCallRun::new(
            res,
            rec.transcript_segments.clone(),
            translations,
            crate::pipeline::facts_of(rec),
        )
        .run(Utc::now()),
    )
}

/// `GET /api/v1/calls/{id}/export?format=json|text`.
async fn export(
    reg: Registry,
    svc: Svc,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let format = match earshot::api::export_format(q.get("format").map(String::as_str)) {
        Ok(f) => f,
        Err(msg) => return invalid(&["query", "format"], msg, "literal_error"),
    };
    let rec = match record(&reg, path).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let post = post_call_of(&rec, &svc);
    let now = Utc::now();
    let language = earshot::asr::main_language(&rec.transcript_segments);
    let mut segs = rec.transcript_segments.clone();
    segs.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    if format == earshot::api::ExportFormat::Text {
        let text = export_text(&rec, post.as_ref(), &segs, language.as_deref(), now);
        return HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .insert_header((
                "content-disposition",
                format!(
                    "attachment; filename=\"call-{}.txt\"",
                    safe_name(&rec.call_id.0)
                ),
            ))
            .body(text);
    }
    let p = post.as_ref();
    HttpResponse::Ok().json(json!({
        "call_id": rec.call_id,
        "metadata": {
            "start_time": rec.start_time,
            "end_time": rec.end_time,
            "duration": rec.duration_secs(now),
            "status": rec.status,
            "end_reason": rec.end_reason,
            "participants": rec.participants,
            "source": rec.source,
        },
        "transcription": {
            "original": rec.cumulative_transcript,
            "language": language,
            "segments": segs,
        },
        "translation": {
            "translated": p.map(|p| p.cumulative_translation.clone()).unwrap_or_default(),
            "language": "en",
            "source_language": p.and_then(|p| p.progressive.source_language()).or(language.clone()),
            "windows": p.map(|p| p.progressive.translation_windows.clone()).unwrap_or_default(),
        },
        "entities": {
            "by_label": p.map(|p| p.entities_by_label.clone()).unwrap_or_default(),
            "items": p.map(|p| p.progressive.entities.clone()).unwrap_or_default(),
        },
        "classification": p.and_then(|p| p.classification.clone()),
        "summary": p.and_then(|p| p.summary.clone()),
        "insights": p.map(|p| json!({
            "headline": p.insights,
            "sentiment": p.progressive.sentiment,
            "sentiment_alerts": p.progressive.sentiment_alerts,
            "keywords": p.progressive.keywords.iter().filter(|k| k.count > 0).collect::<Vec<_>>(),
        })),
        "qa": p.and_then(|p| p.qa.clone()),
        "talk_time": crate::http::talk_time_of(&rec, now),
        "processing_info": {
            "analysis_status": analysis_status(&rec),
            "post_call_completed_at": rec.analysis.post_call.as_ref().map(|p| p.completed_at),
            "computed_on_request": rec.analysis.post_call.is_none() && post.is_some(),
            "processing": rec.analysis.processing,
            "transcription_status": rec.asr.status(rec.status == CallStatus::Active),
            "segments": rec.transcript_segments.len(),
            "exported_at": now,
        },
    }))
}

fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn language_name(code: Option<&str>) -> String {
    match code {
        Some("en") => "English".into(),
        Some("fr") => "French".into(),
        Some("es") => "Spanish".into(),
        Some("it") => "Italian".into(),
        Some("de") => "German".into(),
        Some("ru") => "Russian".into(),
        Some("sw") => "Swahili".into(),
        Some(c) => c.to_string(),
        None => "unknown language".into(),
    }
}

/// The sectioned plain-text export.
fn export_text(
    rec: &SessionRecord,
    post: Option<&PostCall>,
    segs: &[earshot::asr::Segment],
    language: Option<&str>,
    now: chrono::DateTime<Utc>,
) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let _ = writeln!(t, "=== CALL EXPORT ===");
    let _ = writeln!(t, "Call ID: {}", rec.call_id);
    let _ = writeln!(t, "Date: {}", rec.start_time.to_rfc3339());
    let _ = writeln!(t, "Duration: {:.1} seconds", rec.duration_secs(now));
    let _ = writeln!(t, "Status: {}", rec.status.as_str());
    let names: Vec<String> = rec
        .participants
        .iter()
        .map(|p| {
            p.name
                .clone()
                .or(p.aor.clone())
                .unwrap_or_else(|| p.participant_id.to_string())
        })
        .collect();
    let _ = writeln!(t, "Participants: {}", names.join(", "));
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "--- ORIGINAL TRANSCRIPT ({}) ---",
        language_name(language)
    );
    if segs.is_empty() {
        let _ = writeln!(t, "(no speech transcribed)");
    }
    for s in segs {
        let _ = writeln!(
            t,
            "[{:>7.1}s] {}: {}",
            s.start_time,
            s.speaker,
            s.text.trim()
        );
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "--- ENGLISH TRANSLATION ---");
    match post.map(|p| p.cumulative_translation.as_str()) {
        Some(tr) if !tr.is_empty() => {
            let _ = writeln!(t, "{tr}");
        }
        _ if language == Some("en") || language.is_none() => {
            let _ = writeln!(t, "(the call is in English; no translation needed)");
        }
        _ => {
            let _ = writeln!(
                t,
                "(no translation: translation is off or the recogniser cannot translate)"
            );
        }
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "--- NAMED ENTITIES ---");
    let by = post
        .map(|p| p.entities_by_label.clone())
        .unwrap_or_default();
    let names = [
        ("PERSON", "Persons"),
        ("LOCATION", "Locations"),
        ("ORGANIZATION", "Organizations"),
        ("PHONE", "Phone numbers"),
        ("AGE", "Ages"),
        ("DATE", "Dates"),
        ("AMOUNT", "Amounts"),
        ("EMAIL", "E-mails"),
        ("CASE_NUMBER", "Case numbers"),
        ("ACCOUNT_NUMBER", "Account numbers"),
    ];
    for (label, title) in names {
        let v = by.get(label).map(|v| v.join(", ")).unwrap_or_default();
        let _ = writeln!(t, "{title}: {}", if v.is_empty() { "-" } else { &v });
    }
    for (label, v) in by
        .iter()
        .filter(|(l, _)| !names.iter().any(|(n, _)| n == l))
    {
        let _ = writeln!(t, "{label}: {}", v.join(", "));
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "--- CLASSIFICATION ---");
    match post.and_then(|p| p.classification.as_ref()) {
        Some(c) => {
            let _ = writeln!(
                t,
                "Category: {} / {}{}",
                c.main_category,
                c.sub_category,
                c.sub_category_2
                    .as_ref()
                    .map(|s| format!(" / {s}"))
                    .unwrap_or_default()
            );
            let _ = writeln!(
                t,
                "Intervention: {}",
                c.intervention.as_deref().unwrap_or("-")
            );
            let _ = writeln!(t, "Priority: {}", c.priority);
            let _ = writeln!(t, "Confidence: {:.2}", c.confidence);
        }
        None => {
            let _ = writeln!(t, "(classification off)");
        }
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "--- SUMMARY ---");
    match post.and_then(|p| p.summary.as_ref()) {
        Some(s) if !s.text.is_empty() => {
            let _ = writeln!(t, "{}", s.text);
        }
        _ => {
            let _ = writeln!(t, "(nothing to summarise)");
        }
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "--- QUALITY ASSURANCE ---");
    match post.and_then(|p| p.qa.as_ref()) {
        Some(q) => {
            let grade = serde_json::to_value(q.grade).unwrap_or_default();
            let _ = writeln!(
                t,
                "Score: {:.0}/100 ({})",
                q.overall_qa_score,
                grade.as_str().unwrap_or("-")
            );
            for s in &q.strengths {
                let _ = writeln!(t, "+ {s}");
            }
            for s in &q.areas_for_improvement {
                let _ = writeln!(t, "- {s}");
            }
        }
        None => {
            let _ = writeln!(t, "(QA off)");
        }
    }
    let _ = writeln!(t);
    let _ = writeln!(t, "=== END OF EXPORT ===");
    t
}

/// `POST /api/v1/calls/{id}/trigger-ai-pipeline`.
async fn trigger(reg: Registry, path: web::Path<String>) -> HttpResponse {
    let id = path.into_inner();
    if let Err(r) = lookup(&reg, id.clone()).await {
        return r;
    }
    match reg.send(TriggerPipeline(id)).await {
        Ok(Ok(_)) => HttpResponse::Ok().json("AI pipeline processing triggered successfully"),
        Ok(Err(TriggerError::Registry(e))) => registry_error(e),
        Ok(Err(e @ TriggerError::Live)) => detail(StatusCode::CONFLICT, &e.to_string()),
        Ok(Err(TriggerError::Pipeline(e @ PipelineError::AlreadyQueued))) => {
            detail(StatusCode::CONFLICT, &e.to_string())
        }
        Ok(Err(e)) => HttpResponse::ServiceUnavailable()
            .insert_header(("retry-after", "5"))
            .json(json!({ "detail": e.to_string() })),
        Err(_) => mailbox_error(),
    }
}

/// `GET /api/v1/calls/{id}/processing`.
async fn processing(reg: Registry, svc: Svc, path: web::Path<String>) -> HttpResponse {
    let rec = match record(&reg, path).await {
        Ok(r) => r,
        Err(e) => return e,
    };
    let config = svc
        .analysis
        .as_ref()
        .map(|r| crate::pipeline::pipeline_config(r))
        .unwrap_or(json!({"analysis": false}));
    let view = match &svc.pipeline {
        Some(p) => p
            .send(GetProcessing(rec.call_id.0.clone()))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let mut body = match (view, &rec.analysis.processing) {
        (Some(v), _) => serde_json::to_value(v).unwrap_or_default(),
        (None, Some(info)) => {
            let mut v = serde_json::to_value(info).unwrap_or_default();
            v["progress_percentage"] = json!(info.progress_percentage());
            v["estimated_completion"] = json!(info.completed_at);
            v
        }
        (None, None) => {
            let info = ProcessingInfo::queued("auto", rec.start_time, rec.total_audio_duration);
            let mut v = serde_json::to_value(&info).unwrap_or_default();
            v["progress_percentage"] = json!(0.0);
            v["estimated_completion"] = Value::Null;
            v["queued_at"] = Value::Null;
            v["detail"] = json!(if svc.pipeline.is_none() {
                "analysis is off on this engine"
            } else if rec.status == CallStatus::Active {
                "the post-call pipeline runs when the call ends (progressive analysis is live)"
            } else {
                "the post-call pipeline has not run for this session; POST .../trigger-ai-pipeline runs it"
            });
            v
        }
    };
    body["call_id"] = json!(rec.call_id);
    body["call_status"] = json!(rec.status);
    body["pipeline_config"] = config;
    if body.get("stages_remaining").is_none() {
        body["stages_remaining"] = json!(STAGES);
    }
    HttpResponse::Ok().json(body)
}

/// `GET /api/v1/calls/processing/status`.
async fn processing_status(reg: Registry, svc: Svc) -> HttpResponse {
    let live = reg.send(crate::registry::GetStats).await.ok();
    let Some(p) = &svc.pipeline else {
        return HttpResponse::Ok().json(json!({
            "enabled": false,
            "detail": "analysis is off on this engine",
        }));
    };
    match p.send(GetPipelineStatus).await {
        Ok(s) => {
            let mut v = serde_json::to_value(s).unwrap_or_default();
            v["enabled"] = json!(true);
            v["live_calls"] = json!(live.map(|s| s.active_sessions));
            v["timestamp"] = json!(Utc::now());
            HttpResponse::Ok().json(v)
        }
        Err(_) => mailbox_error(),
    }
}

/// `GET /api/v1/calls/agent-service/health`.
async fn agent_health(svc: Svc) -> HttpResponse {
    let now = Utc::now();
    let Some(n) = &svc.notifier else {
        return HttpResponse::Ok().json(json!({
            "status": "disabled",
            "service_name": "agent_notification_service",
            "timestamp": now,
            "checks": { "api_connectivity": false, "authentication": false },
            "details": { "detail": "no notify_urls configured" },
        }));
    };
    let Ok(stats) = n.send(crate::notify::GetNotifyStats).await else {
        return mailbox_error();
    };
    // Connectivity: every target accepts a TCP connection now.
    let mut reachable = true;
    let mut targets = vec![];
    for u in &stats.targets {
        let ok = tcp_reachable(u).await;
        reachable &= ok;
        targets.push(json!({ "url": u, "reachable": ok }));
    }
    let recent_ok = stats.recent.first().map(|d| d.ok);
    let auth = stats.token_cached
        || !stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("token"));
    let status = if reachable && auth && recent_ok != Some(false) {
        "healthy"
    } else if reachable {
        "degraded"
    } else {
        "unhealthy"
    };
    HttpResponse::Ok().json(json!({
        "status": status,
        "service_name": "agent_notification_service",
        "timestamp": now,
        "checks": { "api_connectivity": reachable, "authentication": auth },
        "details": {
            "targets": targets,
            "queued": stats.queued,
            "delivered": stats.delivered,
            "failed_attempts": stats.failed_attempts,
            "dead_lettered": stats.dead_lettered,
            "dead_letters_stored": stats.dead_letters_stored,
            "token_cached": stats.token_cached,
            "last_error": stats.last_error,
            "recent_deliveries": stats.recent,
        },
    }))
}

/// Host and port of an http(s) URL (the port the scheme implies when
/// none is written).
fn host_port(url: &str) -> Option<(String, u16)> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), u.port_or_known_default()?))
}

async fn tcp_reachable(url: &str) -> bool {
    let Some((h, p)) = host_port(url) else {
        return false;
    };
    matches!(
        tokio::time::timeout(
            std::time::Duration::from_secs(2),
            tokio::net::TcpStream::connect((h.as_str(), p))
        )
        .await,
        Ok(Ok(_))
    )
}

/// `POST /api/v1/calls/agent-service/test-auth`.
async fn test_auth(svc: Svc) -> HttpResponse {
    let Some(n) = &svc.notifier else {
        return detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "agent notification service is not configured (notify_urls)",
        );
    };
    match n.send(crate::notify::TestAuth).await {
        Ok(Ok(secs)) => HttpResponse::Ok().json(json!({
            "status": "success", "token_obtained": true, "token_expires_in": secs,
        })),
        Ok(Err(crate::notify::NotifyError::NoTokenUrl)) => HttpResponse::Ok().json(json!({
            "status": "success", "token_obtained": false, "token_expires_in": null,
            "detail": "no token endpoint configured: notifications are sent without a bearer token",
        })),
        Ok(Err(e)) => HttpResponse::Ok().json(json!({
            "status": "failed", "token_obtained": false, "token_expires_in": null,
            "error": e.to_string(),
        })),
        Err(_) => mailbox_error(),
    }
}

/// `POST /api/v1/calls/agent-service/test-notification?call_id=`.
async fn test_notification(
    reg: Registry,
    svc: Svc,
    q: web::Query<HashMap<String, String>>,
) -> HttpResponse {
    let Some(call_id) = q.get("call_id").filter(|c| !c.is_empty()).cloned() else {
        return invalid(&["query", "call_id"], "Field required", "missing");
    };
    if call_id.len() > 256 {
        return invalid(
            &["query", "call_id"],
            "call_id is at most 256 characters",
            "value_error",
        );
    }
    let Some(n) = &svc.notifier else {
        return detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "agent notification service is not configured (notify_urls)",
        );
    };
    // A known call is described; an unknown id still tests the channel.
    let data = match reg.send(crate::registry::GetCall(call_id.clone())).await {
        Ok(Ok(rec)) => json!({
            "call_found": true,
            "status": rec.status,
            "start_time": rec.start_time,
            "segments": rec.transcript_segments.len(),
            "classification": rec.analysis.latest().and_then(|p| p.latest_classification.clone()),
        }),
        _ => json!({ "call_found": false }),
    };
    match n
        .send(crate::notify::TestNotification { call_id, data })
        .await
    {
        Ok(Ok((ok, code, err))) => HttpResponse::Ok().json(json!({
            "status": if ok { "success" } else { "failed" },
            "notification_sent": ok,
            "agent_response_code": code,
            "error": err,
        })),
        Ok(Err(e)) => HttpResponse::Ok().json(json!({
            "status": "failed", "notification_sent": false, "agent_response_code": null,
            "error": e.to_string(),
        })),
        Err(_) => mailbox_error(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ports() {
        assert_eq!(
            host_port("http://127.0.0.1:9000/hook"),
            Some(("127.0.0.1".into(), 9000))
        );
        assert_eq!(
            host_port("https://agent.example/x?y"),
            Some(("agent.example".into(), 443))
        );
        assert_eq!(host_port("http://u:p@h/x"), Some(("h".into(), 80)));
        assert_eq!(host_port("http://[::1]:81/"), Some(("::1".into(), 81)));
        assert_eq!(host_port("nonsense"), None);
    }
}
