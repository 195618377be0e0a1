//! The agent notification service: webhook deliveries of what a helpline's
//! or contact centre's own systems act on (live alerts, the finished
//! analysis of a call).
//!
//! * Targets are HTTP or HTTPS URLs (`notify_urls`); each notification is a
//!   JSON POST `{id, event, call_id, timestamp, data}`.
//! * Authentication: with a token endpoint configured (`notify_token_url`,
//!   `notify_client_id`, `notify_client_secret`) the OAuth2
//!   client-credentials grant fetches a bearer token, cached until 30 s
//!   before it expires and fetched again after a 401.
//! * Delivery: up to `notify_attempts` tries per target with exponential
//!   backoff (1 s, 2 s, 4 s, ... capped at 60 s). A notification that never
//!   got through is written to the sled tree `dead_letters` (it survives a
//!   restart and is listed by `/agent-service/health`). The queue is
//!   bounded ([`QUEUE`]); past it new notifications go straight to the dead
//!   letters, counted.
//! * A delivery log keeps the last [`LOG`] attempts.
//!
//! Runs on the system arbiter; HTTP is async (reqwest on actix's tokio
//! runtime), so nothing here blocks a thread.

use actix::prelude::*;
use chrono::{DateTime, Utc};
use earshot::analysis::call::AnalysisEvent;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Notifications waiting or in flight, at most.
pub const QUEUE: usize = 1000;
/// Delivery attempts remembered.
pub const LOG: usize = 100;
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the service is configured with.
#[derive(Debug, Clone, Default)]
pub struct NotifyConfig {
    pub urls: Vec<String>,
    pub token_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    /// Event types delivered (`analysis_completed`, `sentiment_alert`,
    /// `keyword_detected`, `classification_changed`, `call_ended`).
    pub events: Vec<String>,
    pub attempts: u32,
    pub timeout: Duration,
    /// First retry delay (doubles each time).
    pub backoff: Duration,
}

impl NotifyConfig {
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }
}

/// A live alert worth telling the agent service about, or `None`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Alert {
    pub event: String,
    pub call_id: String,
    pub data: Value,
}

impl Alert {
    /// Alerts from analysis events: sentiment streaks, risk/escalation
    /// phrases, and a classification that became high priority.
    pub fn from_event(call_id: &str, e: &AnalysisEvent, body: &Value) -> Option<Alert> {
        let event = match e {
            AnalysisEvent::SentimentAlert { .. } => "sentiment_alert",
            AnalysisEvent::KeywordDetected { hit } if hit.list != "disclosure" => {
                "keyword_detected"
            }
            AnalysisEvent::ClassificationChanged { classification, .. }
                if classification.priority == earshot::analysis::taxonomy::Priority::High =>
            {
                "classification_changed"
            }
            _ => return None,
        };
        Some(Alert {
            event: event.into(),
            call_id: call_id.into(),
            data: body.clone(),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
struct Notification {
    id: String,
    event: String,
    call_id: String,
    timestamp: DateTime<Utc>,
    data: Value,
}

/// One delivery attempt, for the log.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: String,
    pub event: String,
    pub call_id: String,
    pub url: String,
    pub attempt: u32,
    pub ok: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone)]
struct Token {
    value: String,
    expires: Instant,
    expires_in: u64,
}

/// Counters for health and `/status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NotifyStats {
    pub enabled: bool,
    pub targets: Vec<String>,
    pub queued: usize,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub dead_lettered: u64,
    pub dead_letters_stored: usize,
    pub token_cached: bool,
    pub last_error: Option<String>,
    pub recent: Vec<Delivery>,
}

pub struct Notifier {
    cfg: NotifyConfig,
    http: reqwest::Client,
    token: Option<Token>,
    dead: Option<sled::Tree>,
    in_flight: usize,
    seq: u64,
    delivered: u64,
    failed_attempts: u64,
    dead_lettered: u64,
    last_error: Option<String>,
    log: VecDeque<Delivery>,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("agent notification service is not configured (notify_urls)")]
    NotConfigured,
    #[error("no token endpoint configured")]
    NoTokenUrl,
    #[error("token endpoint: {0}")]
    Token(String),
    #[error("{0}")]
    Http(String),
}

impl Notifier {
    pub fn new(cfg: NotifyConfig, dead: Option<sled::Tree>) -> Notifier {
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .no_proxy()
            .build()
            .unwrap_or_default();
        Notifier {
            cfg,
            http,
            token: None,
            dead,
            in_flight: 0,
            seq: 0,
            delivered: 0,
            failed_attempts: 0,
            dead_lettered: 0,
            last_error: None,
            log: VecDeque::new(),
        }
    }

    fn wants(&self, event: &str) -> bool {
        self.cfg.enabled()
            && (self.cfg.events.is_empty() || self.cfg.events.iter().any(|e| e == event))
    }

    fn cached_token(&self) -> Option<String> {
        self.token
            .as_ref()
            .filter(|t| t.expires > Instant::now() + Duration::from_secs(30))
            .map(|t| t.value.clone())
    }

    /// Client-credentials grant.
    fn fetch_token(&self) -> impl std::future::Future<Output = Result<Token, NotifyError>> {
        let http = self.http.clone();
        let url = self.cfg.token_url.clone();
        let id = self.cfg.client_id.clone().unwrap_or_default();
        let secret = self.cfg.client_secret.clone().unwrap_or_default();
        async move {
            let url = url.ok_or(NotifyError::NoTokenUrl)?;
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
            ];
            let r = http
                .post(&url)
                .form(&form)
                .send()
                .await
                .map_err(|e| NotifyError::Token(e.to_string()))?;
            let status = r.status();
            let v: Value = r
                .json()
                .await
                .map_err(|e| NotifyError::Token(format!("HTTP {status}: {e}")))?;
            if !status.is_success() {
                return Err(NotifyError::Token(format!("HTTP {status}: {v}")));
            }
            let value = v
                .get("access_token")
                .and_then(Value::as_str)
                .ok_or_else(|| NotifyError::Token("no access_token in the answer".into()))?
                .to_string();
            let expires_in = v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
            Ok(Token {
                value,
                expires: Instant::now() + Duration::from_secs(expires_in),
                expires_in,
            })
        }
    }

    fn enqueue(&mut self, event: &str, call_id: &str, data: Value, ctx: &mut Context<Self>) {
        if !self.wants(event) {
            return;
        }
        self.seq += 1;
        let n = Notification {
            id: format!("{}-{}", Utc::now().format("%Y%m%dT%H%M%S%.3f"), self.seq),
            event: event.into(),
            call_id: call_id.into(),
            timestamp: Utc::now(),
            data,
        };
        for url in self.cfg.urls.clone() {
            if self.in_flight >= QUEUE {
                self.dead_letter(&n, &url, 0, "queue full");
                continue;
            }
            self.in_flight += 1;
            self.attempt(n.clone(), url, 1, ctx);
        }
    }

    /// POST `n` to `url` with a bearer token when one is configured
    /// (cached, else fetched first): the status code, a freshly fetched
    /// token, and how long it took.
    fn post(
        &self,
        n: &Notification,
        url: &str,
    ) -> impl std::future::Future<Output = Result<(u16, Option<Token>, Duration), NotifyError>>
    {
        let http = self.http.clone();
        let token = self.cached_token();
        let fetch = (self.cfg.token_url.is_some() && token.is_none()).then(|| self.fetch_token());
        let body = serde_json::to_value(n).unwrap_or_default();
        let url = url.to_string();
        async move {
            let t0 = Instant::now();
            let (token, fresh) = match (token, fetch) {
                (Some(t), _) => (Some(t), None),
                (None, Some(f)) => {
                    let t = f.await?;
                    (Some(t.value.clone()), Some(t))
                }
                (None, None) => (None, None),
            };
            let mut req = http.post(&url).json(&body);
            if let Some(t) = &token {
                req = req.bearer_auth(t);
            }
            let r = req
                .send()
                .await
                .map_err(|e| NotifyError::Http(e.to_string()))?;
            Ok((r.status().as_u16(), fresh, t0.elapsed()))
        }
    }

    /// Take a delivery's outcome in: keep a fresh token, drop one the
    /// target refused (401), log the attempt. Returns (ok, code, error).
    fn record(
        &mut self,
        n: &Notification,
        url: &str,
        attempt: u32,
        res: Result<(u16, Option<Token>, Duration), NotifyError>,
    ) -> (bool, Option<u16>, Option<String>) {
        let (ok, code, err, elapsed) = match res {
            Ok((code, fresh, el)) => {
                if let Some(t) = fresh {
                    self.token = Some(t);
                }
                if code == 401 {
                    self.token = None;
                }
                let ok = (200..300).contains(&code);
                (ok, Some(code), (!ok).then(|| format!("HTTP {code}")), el)
            }
            Err(e) => (false, None, Some(e.to_string()), Duration::ZERO),
        };
        self.log.push_back(Delivery {
            id: n.id.clone(),
            event: n.event.clone(),
            call_id: n.call_id.clone(),
            url: url.to_string(),
            attempt,
            ok,
            status_code: code,
            error: err.clone(),
            at: Utc::now(),
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
        });
        while self.log.len() > LOG {
            self.log.pop_front();
        }
        (ok, code, err)
    }

    fn attempt(&mut self, n: Notification, url: String, attempt: u32, ctx: &mut Context<Self>) {
        let fut = self.post(&n, &url);
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            let (ok, code, err) = act.record(&n, &url, attempt, res);
            if ok {
                act.delivered += 1;
                act.in_flight -= 1;
                return;
            }
            act.failed_attempts += 1;
            act.last_error = err.clone();
            let client_error = code.is_some_and(|c| (400..500).contains(&c) && c != 401 && c != 429);
            if attempt >= act.cfg.attempts.max(1) || client_error {
                tracing::warn!(id = %n.id, event = %n.event, call_id = %n.call_id, %url, attempt, error = ?err, "notification not delivered; dead-lettered");
                act.dead_letter(&n, &url, attempt, err.as_deref().unwrap_or("failed"));
                act.in_flight -= 1;
                return;
            }
            let delay = act
                .cfg
                .backoff
                .saturating_mul(1 << (attempt - 1).min(16))
                .min(MAX_BACKOFF);
            tracing::debug!(id = %n.id, %url, attempt, ?delay, error = ?err, "notification failed; retrying");
            ctx.run_later(delay, move |act, ctx| act.attempt(n, url, attempt + 1, ctx));
        }));
    }

    fn dead_letter(&mut self, n: &Notification, url: &str, attempts: u32, error: &str) {
        self.dead_lettered += 1;
        let Some(tree) = &self.dead else {
            return;
        };
        let v = json!({
            "notification": n,
            "url": url,
            "attempts": attempts,
            "error": error,
            "dead_lettered_at": Utc::now(),
        });
        let key = format!("{}|{}", n.id, url);
        if let Err(e) = tree.insert(key.as_bytes(), v.to_string().as_bytes()) {
            tracing::error!(error = %e, "could not store a dead letter");
        }
    }

    fn stats(&self) -> NotifyStats {
        NotifyStats {
            enabled: self.cfg.enabled(),
            targets: self.cfg.urls.clone(),
            queued: self.in_flight,
            delivered: self.delivered,
            failed_attempts: self.failed_attempts,
            dead_lettered: self.dead_lettered,
            dead_letters_stored: self.dead.as_ref().map_or(0, |t| t.len()),
            token_cached: self.cached_token().is_some(),
            last_error: self.last_error.clone(),
            recent: self.log.iter().rev().take(20).cloned().collect(),
        }
    }
}

impl Actor for Notifier {
    type Context = Context<Self>;
}

impl Handler<Alert> for Notifier {
    type Result = ();
    fn handle(&mut self, a: Alert, ctx: &mut Context<Self>) {
        self.enqueue(&a.event, &a.call_id, a.data, ctx);
    }
}

/// Figures for health/status.
#[derive(Message)]
#[rtype(result = "NotifyStats")]
pub struct GetNotifyStats;

impl Handler<GetNotifyStats> for Notifier {
    type Result = MessageResult<GetNotifyStats>;
    fn handle(&mut self, _: GetNotifyStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats())
    }
}

/// Fetch a fresh token now (`POST /agent-service/test-auth`).
#[derive(Message)]
#[rtype(result = "Result<u64, NotifyError>")]
pub struct TestAuth;

impl Handler<TestAuth> for Notifier {
    type Result = ResponseActFuture<Self, Result<u64, NotifyError>>;
    fn handle(&mut self, _: TestAuth, _: &mut Context<Self>) -> Self::Result {
        if !self.cfg.enabled() {
            return Box::pin(fut::ready(Err(NotifyError::NotConfigured)));
        }
        Box::pin(self.fetch_token().into_actor(self).map(|r, act, _| {
            let t = r?;
            let secs = t.expires_in;
            act.token = Some(t);
            Ok(secs)
        }))
    }
}

/// Send one test notification to the first target, once, and say how it
/// went (`POST /agent-service/test-notification`).
#[derive(Message)]
#[rtype(result = "Result<(bool, Option<u16>, Option<String>), NotifyError>")]
pub struct TestNotification {
    pub call_id: String,
    pub data: Value,
}

impl Handler<TestNotification> for Notifier {
    type Result = ResponseActFuture<Self, Result<(bool, Option<u16>, Option<String>), NotifyError>>;
    fn handle(&mut self, m: TestNotification, _: &mut Context<Self>) -> Self::Result {
        let Some(url) = self.cfg.urls.first().cloned() else {
            return Box::pin(fut::ready(Err(NotifyError::NotConfigured)));
        };
        self.seq += 1;
        let n = Notification {
            id: format!("test-{}", self.seq),
            event: "test_notification".into(),
            call_id: m.call_id,
            timestamp: Utc::now(),
            data: m.data,
        };
        let fut = self.post(&n, &url);
        Box::pin(
            fut.into_actor(self)
                .map(move |res, act, _| Ok(act.record(&n, &url, 1, res))),
        )
    }
}
