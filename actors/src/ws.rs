//! Live pushes over WebSocket. The only module that uses actix-web-actors
//! (deprecated upstream in favour of actix-ws; swapping it touches nothing
//! else). Three endpoints, one hub, the same back-pressure rules:
//!
//! * `GET /ws/transcriptions?call_id=`: `call_started`, `transcript`
//!   partials and finals, `call_ended`.
//! * `GET /ws/analytics?call_id=`: analysis snapshots and events
//!   (`analysis_snapshot`, `sentiment_alert`, `entity_detected`,
//!   `classification_changed`, `keyword_detected`, `hold_started`,
//!   `hold_ended`, `analysis_completed`), plus `call_started`/`call_ended`.
//! * `GET /ws/events?call_id=&types=a,b`: every call event of every kind
//!   (media events such as `speech_started` or `dtmf`, transcript and
//!   analysis events), optionally only the listed `type`s.
//!
//! * [`Hub`] (one actor, on the system arbiter) knows every connected
//!   client and its filter. Calls publish to it (`call_started`,
//!   `transcript` partials and finals, `call_ended`); it never waits on a
//!   client.
//! * A slow client never slows a call. Each client has a bounded mailbox
//!   ([`MAILBOX`]); a WebSocket session actor runs inside its HTTP
//!   response, so a client that stops reading stops draining its mailbox.
//!   What does not fit waits in the hub in the client's [`ClientQueue`]:
//!   when that is full the oldest *partial* goes first; finals are never
//!   dropped, and a client whose backlog of finals passes [`MAX_FINALS`] is
//!   disconnected (it could never catch up). Drops are counted.
//! * Sessions ping every [`PING_EVERY`] and close a client silent for
//!   [`CLIENT_TIMEOUT`]. Client frames: `{"type":"ping"}` →
//!   `{"type":"pong"}`, `{"type":"subscribe","call_id":"…"|null}` changes
//!   the filter; anything else gets `{"type":"error","message":…}`.

use actix::prelude::*;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages a client's session actor may hold before the hub queues for it.
pub const MAILBOX: usize = 64;
/// Queued messages per client before partials are dropped.
pub const QUEUE: usize = 256;
/// Queued finals past which a client is disconnected.
pub const MAX_FINALS: usize = 5_000;
pub const PING_EVERY: Duration = Duration::from_secs(10);
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the hub retries clients with a backlog.
const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Largest client frame accepted.
const MAX_CLIENT_FRAME: usize = 64 * 1024;

/// Which endpoints a push goes to (`/ws/events` gets every push).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `/ws/transcriptions` and `/ws/analytics` (call start/end).
    Call,
    /// `/ws/transcriptions`.
    Transcript,
    /// `/ws/analytics`.
    Analytics,
    /// Only `/ws/events` (media events).
    Events,
}

/// What a client listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Transcriptions,
    Analytics,
    Events,
}

impl Endpoint {
    fn wants(self, c: Channel) -> bool {
        matches!(
            (self, c),
            (Endpoint::Events, _)
                | (
                    Endpoint::Transcriptions,
                    Channel::Call | Channel::Transcript
                )
                | (Endpoint::Analytics, Channel::Call | Channel::Analytics)
        )
    }
}

/// One push: JSON text, the call it is about, its `type`, where it goes,
/// and whether it may be dropped.
#[derive(Message, Clone, Debug)]
#[rtype(result = "()")]
pub struct Push {
    pub call_id: Arc<str>,
    pub json: Arc<str>,
    /// The body's `"type"`.
    pub kind: Arc<str>,
    pub channel: Channel,
    /// Partials and snapshots may be dropped for a slow client; finals and
    /// events not.
    pub droppable: bool,
}

impl Push {
    /// A push for `/ws/transcriptions` (and `/ws/events`).
    pub fn new(call_id: &str, body: Value, droppable: bool) -> Push {
        let channel = match body.get("type").and_then(Value::as_str) {
            Some("call_started" | "call_ended") => Channel::Call,
            _ => Channel::Transcript,
        };
        Push::on(channel, call_id, body, droppable)
    }

    /// A push for the given channel.
    pub fn on(channel: Channel, call_id: &str, body: Value, droppable: bool) -> Push {
        let kind = body
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("event")
            .into();
        Push {
            call_id: call_id.into(),
            json: body.to_string().into(),
            kind,
            channel,
            droppable,
        }
    }
}

/// Hand a push to the hub (every push goes this way): droppable pushes
/// (partials, analysis snapshots) only if its mailbox has room, counted
/// when not; the rest (finals, events) always. Under overload the hub falls
/// behind on what a newer push supersedes, not on what must arrive.
pub fn offer(hub: &Addr<Hub>, p: Push) {
    if !p.droppable {
        hub.do_send(p);
    } else if hub.try_send(p).is_err() {
        crate::metrics::get()
            .overload_dropped
            .with_label_values(&["ws_push"])
            .inc();
    }
}

/// A client's backlog in the hub: bounded for partials, never losing finals.
#[derive(Debug, Default)]
pub struct ClientQueue {
    q: VecDeque<Push>,
    finals: usize,
    pub dropped: u64,
}

impl ClientQueue {
    /// Queue `p`; when over [`QUEUE`], drop the oldest partial (or `p`
    /// itself if it is a partial and there is none older). Returns false
    /// when the client has too many finals waiting to ever catch up.
    pub fn push(&mut self, p: Push) -> bool {
        if self.q.len() >= QUEUE {
            if let Some(i) = self.q.iter().position(|m| m.droppable) {
                self.q.remove(i);
                self.dropped += 1;
            } else if p.droppable {
                self.dropped += 1;
                return true;
            }
        }
        if !p.droppable {
            self.finals += 1;
        }
        self.q.push_back(p);
        self.finals <= MAX_FINALS
    }

    pub fn front(&self) -> Option<&Push> {
        self.q.front()
    }

    pub fn pop(&mut self) -> Option<Push> {
        let p = self.q.pop_front()?;
        if !p.droppable {
            self.finals -= 1;
        }
        Some(p)
    }

    pub fn len(&self) -> usize {
        self.q.len()
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

struct Client {
    addr: Addr<WsSession>,
    call: Option<String>,
    endpoint: Endpoint,
    /// `/ws/events?types=`: only these types (None: all).
    types: Option<Arc<HashSet<String>>>,
    queue: ClientQueue,
}

impl Client {
    fn wants(&self, p: &Push) -> bool {
        self.call.as_deref().is_none_or(|f| f == &*p.call_id)
            && self.endpoint.wants(p.channel)
            && self.types.as_ref().is_none_or(|t| t.contains(&*p.kind))
    }
}

/// The hub's mailbox: droppable pushes beyond it are dropped ([`offer`]).
const HUB_MAILBOX: usize = 4096;

/// Every connected client.
#[derive(Default)]
pub struct Hub {
    clients: HashMap<u64, Client>,
    next: u64,
    dropped_partials: u64,
    pushed: u64,
    kicked: u64,
}

impl Hub {
    /// Deliver what fits; true if the client must be let go.
    fn flush(c: &mut Client) -> bool {
        while let Some(p) = c.queue.front() {
            match c.addr.try_send(p.clone()) {
                Ok(()) => {
                    c.queue.pop();
                }
                Err(SendError::Full(_)) => return false,
                Err(SendError::Closed(_)) => return true,
            }
        }
        false
    }
}

impl Actor for Hub {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(HUB_MAILBOX);
        ctx.run_interval(FLUSH_EVERY, |hub, _| {
            let mut gone = vec![];
            for (id, c) in hub.clients.iter_mut() {
                if !c.queue.is_empty() && Hub::flush(c) {
                    gone.push(*id);
                }
            }
            for id in gone {
                hub.clients.remove(&id);
            }
        });
    }
}

impl Handler<Push> for Hub {
    type Result = ();
    fn handle(&mut self, p: Push, _: &mut Context<Self>) {
        self.pushed += 1;
        let mut gone = vec![];
        for (id, c) in self.clients.iter_mut() {
            if !c.wants(&p) {
                continue;
            }
            let before = c.queue.dropped;
            if !c.queue.push(p.clone()) {
                tracing::warn!(
                    client = id,
                    "WebSocket client too slow for its finals; disconnecting"
                );
                c.addr.do_send(Kick("too slow: finals backlog".into()));
                gone.push(*id);
                continue;
            }
            self.dropped_partials += c.queue.dropped - before;
            if Hub::flush(c) {
                gone.push(*id);
            }
        }
        for id in gone {
            if self.clients.remove(&id).is_some() {
                self.kicked += 1;
            }
        }
    }
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Join {
    addr: Addr<WsSession>,
    call: Option<String>,
    endpoint: Endpoint,
    types: Option<Arc<HashSet<String>>>,
}

impl Handler<Join> for Hub {
    type Result = u64;
    fn handle(&mut self, j: Join, _: &mut Context<Self>) -> u64 {
        self.next += 1;
        self.clients.insert(
            self.next,
            Client {
                addr: j.addr,
                call: j.call,
                endpoint: j.endpoint,
                types: j.types,
                queue: ClientQueue::default(),
            },
        );
        self.next
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Leave(u64);

impl Handler<Leave> for Hub {
    type Result = ();
    fn handle(&mut self, m: Leave, _: &mut Context<Self>) {
        self.clients.remove(&m.0);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Filter(u64, Option<String>);

impl Handler<Filter> for Hub {
    type Result = ();
    fn handle(&mut self, m: Filter, _: &mut Context<Self>) {
        if let Some(c) = self.clients.get_mut(&m.0) {
            c.call = m.1;
        }
    }
}

/// Hub figures for `/status`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct HubStats {
    pub clients: usize,
    pub pushed: u64,
    pub dropped_partials: u64,
    pub disconnected_slow: u64,
}

#[derive(Message)]
#[rtype(result = "HubStats")]
pub struct GetHubStats;

impl Handler<GetHubStats> for Hub {
    type Result = MessageResult<GetHubStats>;
    fn handle(&mut self, _: GetHubStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(HubStats {
            clients: self.clients.len(),
            pushed: self.pushed,
            dropped_partials: self.dropped_partials,
            disconnected_slow: self.kicked,
        })
    }
}

/// Close a client with a reason.
#[derive(Message)]
#[rtype(result = "()")]
struct Kick(String);

/// One WebSocket client.
pub struct WsSession {
    hub: Addr<Hub>,
    id: u64,
    call: Option<String>,
    endpoint: Endpoint,
    types: Option<Arc<HashSet<String>>>,
    last_heard: Instant,
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        self.hub
            .send(Join {
                addr: ctx.address(),
                call: self.call.clone(),
                endpoint: self.endpoint,
                types: self.types.clone(),
            })
            .into_actor(self)
            .map(|r, act, ctx| match r {
                Ok(id) => act.id = id,
                Err(_) => ctx.stop(),
            })
            .wait(ctx);
        ctx.run_interval(PING_EVERY, |act, ctx| {
            if act.last_heard.elapsed() > CLIENT_TIMEOUT {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Away,
                    description: Some("no pong".into()),
                }));
                ctx.stop();
                return;
            }
            ctx.ping(b"earshot");
        });
        let mut types: Option<Vec<&String>> = self.types.as_ref().map(|t| t.iter().collect());
        if let Some(t) = types.as_mut() {
            t.sort();
        }
        let hello = json!({
            "type": "connected",
            "call_id": self.call,
            "endpoint": match self.endpoint {
                Endpoint::Transcriptions => "transcriptions",
                Endpoint::Analytics => "analytics",
                Endpoint::Events => "events",
            },
            "types": types,
            "timestamp": chrono::Utc::now(),
        });
        ctx.text(hello.to_string());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.hub.do_send(Leave(self.id));
    }
}

impl Handler<Push> for WsSession {
    type Result = ();
    fn handle(&mut self, p: Push, ctx: &mut Self::Context) {
        ctx.text(&*p.json);
    }
}

impl Handler<Kick> for WsSession {
    type Result = ();
    fn handle(&mut self, k: Kick, ctx: &mut Self::Context) {
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Policy,
            description: Some(k.0),
        }));
        ctx.stop();
    }
}

fn error(message: &str) -> String {
    json!({"type": "error", "message": message}).to_string()
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                ctx.text(error(&format!("protocol error: {e}")));
                ctx.close(Some(ws::CloseCode::Protocol.into()));
                ctx.stop();
                return;
            }
        };
        match msg {
            ws::Message::Ping(p) => ctx.pong(&p),
            ws::Message::Pong(_) | ws::Message::Nop => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
            ws::Message::Binary(_) | ws::Message::Continuation(_) => {
                ctx.text(error("binary frames are not accepted; send JSON text"))
            }
            ws::Message::Text(t) => match client_command(&t) {
                Ok(Command::Ping) => ctx.text(json!({"type": "pong"}).to_string()),
                Ok(Command::Subscribe(call)) => {
                    self.call = call.clone();
                    self.hub.do_send(Filter(self.id, call.clone()));
                    ctx.text(json!({"type": "subscribed", "call_id": call}).to_string());
                }
                Err(e) => ctx.text(error(&e)),
            },
        }
    }
}

pub use earshot::api::{client_command, parse_types, Command};

/// `GET /ws/transcriptions?call_id=`.
pub async fn transcriptions(
    req: HttpRequest,
    stream: web::Payload,
    hub: web::Data<Addr<Hub>>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, actix_web::Error> {
    open(Endpoint::Transcriptions, req, stream, hub, q)
}

/// `GET /ws/analytics?call_id=`.
pub async fn analytics(
    req: HttpRequest,
    stream: web::Payload,
    hub: web::Data<Addr<Hub>>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, actix_web::Error> {
    open(Endpoint::Analytics, req, stream, hub, q)
}

/// `GET /ws/events?call_id=&types=a,b`.
pub async fn events(
    req: HttpRequest,
    stream: web::Payload,
    hub: web::Data<Addr<Hub>>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, actix_web::Error> {
    open(Endpoint::Events, req, stream, hub, q)
}

fn open(
    endpoint: Endpoint,
    req: HttpRequest,
    stream: web::Payload,
    hub: web::Data<Addr<Hub>>,
    q: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, actix_web::Error> {
    let call = q.get("call_id").filter(|c| !c.is_empty()).cloned();
    if call
        .as_ref()
        .is_some_and(|c| c.len() > earshot::api::MAX_CALL_ID)
    {
        return Ok(crate::http::invalid(
            &["query", "call_id"],
            "call_id is at most 256 characters",
            "value_error",
        ));
    }
    let types = match endpoint {
        Endpoint::Events => match parse_types(q.get("types").map(String::as_str)) {
            Ok(t) => t.map(Arc::new),
            Err(e) => return Ok(crate::http::invalid(&["query", "types"], &e, "value_error")),
        },
        _ => None,
    };
    let session = WsSession {
        hub: hub.get_ref().clone(),
        id: 0,
        call,
        endpoint,
        types,
        last_heard: Instant::now(),
    };
    ws::WsResponseBuilder::new(session, &req, stream)
        .frame_size(MAX_CLIENT_FRAME)
        .start()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(droppable: bool, n: usize) -> Push {
        Push::new("c", json!({ "n": n }), droppable)
    }

    #[test]
    fn queue_drops_oldest_partials_never_finals() {
        let mut q = ClientQueue::default();
        for i in 0..QUEUE {
            assert!(q.push(p(i % 2 == 0, i)));
        }
        // Full: a new final evicts the oldest partial (n = 0).
        assert!(q.push(p(false, 1000)));
        assert_eq!(q.len(), QUEUE);
        assert_eq!(q.dropped, 1);
        assert_eq!(&*q.front().unwrap().json, "{\"n\":1}");
        // Only finals left after enough finals: partials are all gone, and
        // a new partial is dropped itself.
        for i in 0..QUEUE {
            q.push(p(false, 2000 + i));
        }
        assert!(q.q.iter().all(|m| !m.droppable));
        let before = q.dropped;
        assert!(q.push(p(true, 9)));
        assert_eq!(q.dropped, before + 1);
        // Finals are kept beyond the bound, up to MAX_FINALS.
        let mut ok = true;
        for i in 0..MAX_FINALS {
            ok = q.push(p(false, i));
        }
        assert!(!ok, "a client this far behind is let go");
        while q.pop().is_some() {}
        assert_eq!(q.finals, 0);
    }

    #[test]
    fn endpoints_get_their_channels_and_types() {
        use Channel::*;
        let t = Endpoint::Transcriptions;
        let a = Endpoint::Analytics;
        let e = Endpoint::Events;
        assert!(t.wants(Call) && t.wants(Transcript) && !t.wants(Analytics) && !t.wants(Events));
        assert!(a.wants(Call) && a.wants(Analytics) && !a.wants(Transcript) && !a.wants(Events));
        assert!([Call, Transcript, Analytics, Events]
            .iter()
            .all(|c| e.wants(*c)));
        let started = Push::new("c", json!({"type": "call_started"}), false);
        assert_eq!((started.channel, &*started.kind), (Call, "call_started"));
        let fin = Push::new("c", json!({"type": "transcript"}), false);
        assert_eq!(fin.channel, Transcript);
    }
}
