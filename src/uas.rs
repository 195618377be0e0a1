//! The SIPREC user-agent server (RFC 3261 UAS + RFC 7866 SRS), sans-IO.
//!
//! Feed it framed messages with [`Uas::handle_message`], the time with
//! [`Uas::handle_timeout`], and decisions of the runtime with [`Uas::accept`],
//! [`Uas::reject`], [`Uas::confirm_end`] and [`Uas::end_call`]. Drain
//! [`Uas::poll_output`] after each call: it yields bytes to send and
//! [`UasEvent`]s for the runtime. [`Uas::poll_timeout`] is the next deadline.
//!
//! What it does:
//! * Server transactions: retransmitted requests are answered from the
//!   transaction (never a second call); final non-2xx responses to INVITE are
//!   retransmitted on UDP until ACK; non-INVITE responses are cached for 64·T1.
//! * Dialogs: the 200 to INVITE is retransmitted on UDP until ACK (T1 doubling
//!   to T2), given up after 64·T1 (the call ends `no ack`); re-INVITE and
//!   UPDATE renegotiate streams (pause on `a=inactive`/`c=0.0.0.0`) and carry
//!   metadata updates; BYE is answered only after [`Uas::confirm_end`] so the
//!   runtime can persist first; CANCEL before the answer gets 487; our own BYE
//!   (manual end, shutdown) is retransmitted until answered.
//! * Session timers (RFC 4028): the SRC refreshes; a session not refreshed
//!   within its interval ends as `session expired`.
//! * Bad input: 400 with a reason phrase when the message can be answered at
//!   all, 415/488 when the body is unusable, 420 for unknown `Require`,
//!   481 for unknown dialogs, 503 with `Retry-After` when out of ports or
//!   over the call limit. Rejected INVITEs leave no state but the
//!   transaction that absorbs their retransmissions.

use crate::ids::CallId;
use crate::metadata::{self, MetadataLimits, RecordingMetadata};
use crate::ports::PortPool;
use crate::sdp::{self, AnswerConfig, Codec, SessionDescription, StreamAnswer};
use crate::sip::{self, body_parts, Headers, Limits, Method, Request, Response, SipMessage};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Methods we answer (the `Allow` header).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO";
/// Option tags we support.
pub const SUPPORTED: &str = "siprec, timer";
/// Bodies we accept.
pub const ACCEPT: &str =
    "application/sdp, application/rs-metadata+xml, application/rs-metadata, multipart/mixed";
const MIN_SE: u32 = 90;

/// A TCP connection, as numbered by the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

/// How a message reached us (and how to answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp(ConnId),
}

impl Transport {
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Transport::Udp)
    }
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp(_) => "tcp",
        }
    }
}

/// The far end of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    pub transport: Transport,
    pub addr: SocketAddr,
}

#[derive(Debug, Clone)]
pub struct UasConfig {
    pub limits: Limits,
    pub metadata_limits: MetadataLimits,
    /// Address written into SDP answers.
    pub media_ip: IpAddr,
    /// Our SIP address (for Contact and Via).
    pub sip_addr: SocketAddr,
    pub user_agent: String,
    /// RFC 3261 T1 / T2.
    pub t1: Duration,
    pub t2: Duration,
    /// Most live calls at once; more get 503.
    pub max_calls: usize,
    pub codec_preference: Vec<Codec>,
    /// Seconds for `Retry-After` on 503.
    pub retry_after_secs: u32,
    /// How long the runtime may take to confirm a BYE before we answer anyway.
    pub bye_confirm_timeout: Duration,
    /// An ended call's RTP ports go back to the pool when the runtime says
    /// its sockets are closed ([`Uas::media_released`]), or after this long
    /// if it never does.
    pub port_hold_max: Duration,
    /// Seed for tags and branches (tests pass a fixed one).
    pub seed: u64,
}

impl UasConfig {
    pub fn new(sip_addr: SocketAddr, media_ip: IpAddr) -> Self {
        Self {
            limits: Limits::default(),
            metadata_limits: MetadataLimits::default(),
            media_ip,
            sip_addr,
            user_agent: format!("Earshot/{}", env!("CARGO_PKG_VERSION")),
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            max_calls: 10_000,
            codec_preference: vec![Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma],
            retry_after_secs: 5,
            bye_confirm_timeout: Duration::from_secs(8),
            port_hold_max: Duration::from_secs(900),
            seed: 0x5eed,
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// The SRC sent BYE.
    Bye,
    /// The SRC cancelled before we answered.
    Cancelled,
    /// No ACK for our 200.
    NoAck,
    /// Session timer ran out.
    SessionExpired,
    /// We ended it (REST `end`, shutdown, media timeout...). The text is the reason.
    Local(String),
    /// The runtime rejected the offer with this status.
    Rejected(u16),
}

impl EndReason {
    /// Text stored as `end_reason`.
    pub fn text(&self) -> String {
        match self {
            EndReason::Bye => "bye".into(),
            EndReason::Cancelled => "cancelled".into(),
            EndReason::NoAck => "no ack".into(),
            EndReason::SessionExpired => "session expired".into(),
            EndReason::Local(r) => r.clone(),
            EndReason::Rejected(c) => format!("rejected {c}"),
        }
    }
    /// True when the ending is normal (`completed`), false for `failed`.
    pub fn is_normal(&self) -> bool {
        matches!(
            self,
            EndReason::Bye | EndReason::Local(_) | EndReason::Cancelled
        )
    }
}

/// What the INVITE told us, for the runtime to build the session.
#[derive(Debug, Clone)]
pub struct Offer {
    pub call_id: CallId,
    pub peer: Peer,
    pub from: Option<String>,
    pub to: Option<String>,
    pub user_agent: Option<String>,
    /// Declared itself a SIPREC session (`+sip.src`/`src`/`Require: siprec`).
    pub siprec: bool,
    pub metadata: Option<RecordingMetadata>,
    pub streams: Vec<StreamAnswer>,
    /// The INVITE's headers (for vendor identifiers such as `X-UCID`).
    pub headers: Headers,
}

/// Something the runtime must act on.
#[derive(Debug, Clone)]
pub enum UasEvent {
    /// A new recording session. Answer with [`Uas::accept`] or [`Uas::reject`].
    Offered(Box<Offer>),
    /// The SRC acknowledged our answer.
    Confirmed { call_id: CallId },
    /// A re-INVITE or UPDATE changed the session: new stream answers (when
    /// it carried SDP) and/or the whole current metadata (complete, or the
    /// merge of a partial update).
    Updated {
        call_id: CallId,
        method: Method,
        streams: Option<Vec<StreamAnswer>>,
        metadata: Option<RecordingMetadata>,
    },
    /// The SRC sent BYE: persist, then call [`Uas::confirm_end`].
    EndRequested { call_id: CallId },
    /// The session is over (no confirmation needed).
    Ended { call_id: CallId, reason: EndReason },
}

/// Output of the state machine.
#[derive(Debug, Clone)]
pub enum UasOutput {
    Transmit { peer: Peer, bytes: Vec<u8> },
    Event(UasEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DialogState {
    /// INVITE received, waiting for the runtime to accept.
    Offered,
    /// 200 sent, waiting for ACK.
    Answered,
    Confirmed,
    /// BYE received, waiting for `confirm_end`.
    Closing,
}

#[derive(Debug)]
struct Retransmit {
    bytes: Vec<u8>,
    interval: Duration,
    give_up: Instant,
}

#[derive(Debug)]
struct Dialog {
    peer: Peer,
    state: DialogState,
    local_tag: String,
    invite: Request,
    invite_branch: String,
    invite_cseq: u32,
    remote_cseq: u32,
    local_cseq: u32,
    remote_target: Option<String>,
    route_set: Vec<String>,
    offer: SessionDescription,
    streams: Vec<StreamAnswer>,
    answer_sdp: String,
    sdp_session_id: u64,
    sdp_version: u64,
    metadata: Option<RecordingMetadata>,
    ports: Vec<u16>,
    pending_2xx: Option<Retransmit>,
    session_expires: Option<u32>,
    /// When the session ends unless refreshed (RFC 4028).
    session_deadline: Option<Instant>,
    /// The BYE we must answer once the runtime confirms.
    pending_bye: Option<Request>,
    /// Our own BYE, until answered.
    our_bye: Option<(u32, Retransmit)>,
    /// Timer generation: timers of an older generation are stale.
    gen: u64,
}

#[derive(Debug)]
struct ServerTxn {
    peer: Peer,
    last_response: Option<Vec<u8>>,
    /// For INVITE transactions answered with a non-2xx: retransmit until ACK.
    retransmit: Option<Retransmit>,
    call_id: CallId,
    expires: Instant,
    gen: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct TxnKey {
    branch: String,
    method: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Retransmit2xx(CallId),
    OurBye(CallId),
    SessionExpiry(CallId),
    ByeConfirm(CallId),
    TxnRetransmit(TxnKey),
    TxnExpire(TxnKey),
    HeldPorts(CallId),
}

/// The SIPREC UAS state machine. See the module docs.
pub struct Uas {
    cfg: UasConfig,
    ports: PortPool,
    dialogs: HashMap<CallId, Dialog>,
    txns: HashMap<TxnKey, ServerTxn>,
    timers: BTreeSet<(Instant, u64, TimerKind)>,
    outputs: VecDeque<UasOutput>,
    rng: StdRng,
    next_gen: u64,
    /// The latest `now` any entry point was given.
    now: Instant,
    /// Ports of ended calls whose sockets the runtime may still hold, with
    /// the generation of their expiry timer.
    held: HashMap<CallId, (Vec<u16>, u64)>,
}

/// Why a request was refused, before any state exists.
struct Refusal {
    status: u16,
    reason: String,
    extra: Vec<(&'static str, String)>,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            extra: vec![],
        }
    }
    fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.extra.push((name, value.into()));
        self
    }
}

impl Uas {
    pub fn new(cfg: UasConfig, ports: PortPool) -> Self {
        let rng = StdRng::seed_from_u64(cfg.seed);
        Self {
            cfg,
            ports,
            dialogs: HashMap::new(),
            txns: HashMap::new(),
            timers: BTreeSet::new(),
            outputs: VecDeque::new(),
            rng,
            next_gen: 1,
            now: Instant::now(),
            held: HashMap::new(),
        }
    }

    pub fn config(&self) -> &UasConfig {
        &self.cfg
    }

    /// Live dialogs (offered, answered, confirmed or closing).
    pub fn call_count(&self) -> usize {
        self.dialogs.len()
    }

    /// The runtime has closed an ended call's RTP sockets: its ports may be
    /// handed out again. (Until then they are held, so a new call never gets
    /// a port an old call still has bound; [`UasConfig::port_hold_max`]
    /// bounds the wait.) Returns how many ports were released.
    pub fn media_released(&mut self, call_id: &CallId) -> usize {
        let Some((ports, _)) = self.held.remove(call_id) else {
            return 0;
        };
        for &p in &ports {
            self.ports.release(p);
        }
        ports.len()
    }

    /// Ports of ended calls not yet released by the runtime.
    pub fn ports_held(&self) -> usize {
        self.held.values().map(|(p, _)| p.len()).sum()
    }

    /// RTP ports free / total.
    pub fn ports_available(&self) -> (usize, usize) {
        (self.ports.available(), self.ports.capacity())
    }

    /// Call-IDs of live dialogs.
    pub fn call_ids(&self) -> Vec<CallId> {
        self.dialogs.keys().cloned().collect()
    }

    pub fn poll_output(&mut self) -> Option<UasOutput> {
        self.outputs.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _, _)| *t)
    }

    /// One framed SIP message from `peer`.
    pub fn handle_message(&mut self, now: Instant, peer: Peer, bytes: &[u8]) {
        self.now = now;
        match sip::parse_message(bytes, &self.cfg.limits) {
            Ok(SipMessage::Request(req)) => self.handle_request(now, peer, req),
            Ok(SipMessage::Response(resp)) => self.handle_response(resp),
            Err(e) => {
                tracing::debug!(%e, from = %peer.addr, "malformed SIP message");
                if let Some(resp) = salvage_400(bytes, &e.reason(), &self.cfg.user_agent) {
                    self.transmit(peer, resp);
                }
            }
        }
    }

    /// A framing error on a datagram or stream: answer 400 when possible.
    pub fn handle_unframeable(&mut self, peer: Peer, bytes: &[u8], err: &sip::SipError) {
        if let Some(resp) = salvage_400(bytes, &err.reason(), &self.cfg.user_agent) {
            self.transmit(peer, resp);
        }
    }

    /// Run due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        while let Some(first) = self.timers.first().cloned() {
            if first.0 > now {
                break;
            }
            self.timers.remove(&first);
            let (_, gen, kind) = first;
            self.fire(now, gen, kind);
        }
    }

    /// Answer an offered session with 200 OK and our SDP.
    /// Returns false when the call no longer waits for an answer (e.g. cancelled).
    pub fn accept(&mut self, now: Instant, call_id: &CallId) -> bool {
        self.now = now;
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return false;
        };
        if d.state != DialogState::Offered {
            return false;
        }
        d.state = DialogState::Answered;
        let resp = ok_with_sdp(
            &self.cfg,
            &d.invite,
            &d.local_tag,
            &d.answer_sdp,
            d.session_expires,
        );
        let bytes = resp.to_bytes();
        let peer = d.peer;
        let key = TxnKey {
            branch: d.invite_branch.clone(),
            method: "INVITE".into(),
        };
        // 2xx retransmission is the dialog's job; ACK timeout on every transport.
        let reliable = peer.transport.is_reliable();
        d.pending_2xx = Some(Retransmit {
            bytes: bytes.clone(),
            interval: self.cfg.t1,
            give_up: now + self.cfg.t1 * 64,
        });
        let gen = d.gen;
        let first = if reliable {
            self.cfg.t1 * 64
        } else {
            self.cfg.t1
        };
        if let Some(t) = self.txns.get_mut(&key) {
            t.last_response = Some(bytes.clone());
        }
        self.schedule(now + first, gen, TimerKind::Retransmit2xx(call_id.clone()));
        self.transmit(peer, bytes);
        true
    }

    /// Refuse an offered session (e.g. 503 when media ports cannot be bound).
    pub fn reject(&mut self, now: Instant, call_id: &CallId, status: u16, reason: &str) -> bool {
        self.now = now;
        let Some(d) = self.dialogs.get(call_id) else {
            return false;
        };
        if d.state != DialogState::Offered {
            return false;
        }
        let invite = d.invite.clone();
        let peer = d.peer;
        let tag = d.local_tag.clone();
        let mut resp = Response::to_request(&invite, status, reason, Some(&tag));
        self.decorate(&mut resp);
        if status == 503 {
            resp.headers
                .push("Retry-After", self.cfg.retry_after_secs.to_string());
        }
        self.final_invite_response(now, peer, &invite, resp);
        self.remove_dialog(call_id);
        // The runtime refusing the call holds none of its sockets.
        self.media_released(call_id);
        self.emit(UasEvent::Ended {
            call_id: call_id.clone(),
            reason: EndReason::Rejected(status),
        });
        true
    }

    /// The runtime has persisted a session whose BYE we hold: answer it.
    pub fn confirm_end(&mut self, now: Instant, call_id: &CallId) -> bool {
        self.now = now;
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return false;
        };
        let Some(bye) = d.pending_bye.take() else {
            return false;
        };
        let peer = d.peer;
        self.respond_cached(peer, &bye, 200, "OK", None);
        self.remove_dialog(call_id);
        true
    }

    /// End a session from our side: BYE to the SRC (or 487/480 if not yet
    /// answered). Emits `Ended` with `Local(reason)`.
    pub fn end_call(&mut self, now: Instant, call_id: &CallId, reason: &str) -> bool {
        self.now = now;
        self.end_with(now, call_id, EndReason::Local(reason.to_owned()))
    }

    fn end_with(&mut self, now: Instant, call_id: &CallId, reason: EndReason) -> bool {
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return false;
        };
        match d.state {
            DialogState::Offered => {
                let invite = d.invite.clone();
                let peer = d.peer;
                let tag = d.local_tag.clone();
                let mut resp =
                    Response::to_request(&invite, 480, "Temporarily Unavailable", Some(&tag));
                self.decorate(&mut resp);
                self.final_invite_response(now, peer, &invite, resp);
            }
            DialogState::Closing => {
                // The SRC is already hanging up; just answer its BYE.
                if let Some(bye) = d.pending_bye.take() {
                    let peer = d.peer;
                    self.respond_cached(peer, &bye, 200, "OK", None);
                }
            }
            DialogState::Answered | DialogState::Confirmed => {
                d.local_cseq += 1;
                let cseq = d.local_cseq;
                let bye = self.build_bye(call_id, cseq);
                if let Some((peer, bytes)) = bye {
                    let reliable = peer.transport.is_reliable();
                    let gen = self.dialogs.get(call_id).map(|d| d.gen).unwrap_or(0);
                    self.transmit(peer, bytes.clone());
                    // Keep retransmitting our BYE from a detached record.
                    self.pending_byes_insert(now, call_id, cseq, bytes, reliable, gen);
                }
            }
        }
        self.release_ports(call_id);
        let keep_for_bye = self
            .dialogs
            .get(call_id)
            .is_some_and(|d| d.our_bye.is_some());
        if !keep_for_bye {
            self.remove_dialog(call_id);
        }
        self.emit(UasEvent::Ended {
            call_id: call_id.clone(),
            reason,
        });
        true
    }

    // ----- requests -------------------------------------------------------

    fn handle_request(&mut self, now: Instant, peer: Peer, req: Request) {
        let Some(branch) = req.via_branch().map(str::to_owned) else {
            self.respond(peer, &req, 400, "Bad Request - Via without branch", None);
            return;
        };
        let Some((cseq_num, cseq_method)) = req.cseq() else {
            self.respond(peer, &req, 400, "Bad Request - malformed CSeq", None);
            return;
        };
        if cseq_method != req.method && req.method != Method::Ack && req.method != Method::Cancel {
            self.respond(peer, &req, 400, "Bad Request - CSeq method mismatch", None);
            return;
        }
        let key = TxnKey {
            branch: branch.clone(),
            method: txn_method(&req.method),
        };
        // Retransmission of a request we already have a transaction for.
        if req.method != Method::Ack {
            if let Some(t) = self.txns.get(&key) {
                if let Some(bytes) = t.last_response.clone() {
                    let p = t.peer;
                    self.transmit(p, bytes);
                }
                return;
            }
        }
        match req.method {
            Method::Invite => self.on_invite(now, peer, req, key, cseq_num),
            Method::Ack => self.on_ack(req, key, cseq_num),
            Method::Cancel => self.on_cancel(now, peer, req, &branch),
            Method::Bye => self.on_bye(now, peer, req, cseq_num),
            Method::Options => {
                let mut resp = Response::to_request(&req, 200, "OK", Some(&self.fresh_tag()));
                self.decorate(&mut resp);
                resp.headers.push("Allow", ALLOW);
                resp.headers.push("Accept", ACCEPT);
                resp.headers.push("Supported", SUPPORTED);
                self.send_final_cached(now, peer, &req, resp);
            }
            Method::Update => self.on_update(now, peer, req, cseq_num),
            Method::Info => {
                if self.in_dialog(&req).is_some() {
                    self.respond_cached(peer, &req, 200, "OK", None);
                } else {
                    self.respond_cached(peer, &req, 481, "Call/Transaction Does Not Exist", None);
                }
            }
            _ => {
                let mut resp = Response::to_request(&req, 405, "Method Not Allowed", None);
                self.decorate(&mut resp);
                resp.headers.push("Allow", ALLOW);
                self.send_final_cached(now, peer, &req, resp);
            }
        }
    }

    /// The dialog a request belongs to (Call-ID + our To tag).
    fn in_dialog(&self, req: &Request) -> Option<CallId> {
        let call_id = CallId::new(req.call_id()?);
        let d = self.dialogs.get(&call_id)?;
        (req.to_tag() == Some(d.local_tag.as_str())).then_some(call_id)
    }

    fn on_invite(&mut self, now: Instant, peer: Peer, req: Request, key: TxnKey, cseq: u32) {
        if req.to_tag().is_some() {
            return self.on_reinvite(now, peer, req, key, cseq);
        }
        let Some(call_id) = req.call_id().map(CallId::new) else {
            self.respond(peer, &req, 400, "Bad Request - missing Call-ID", None);
            return;
        };
        // Register the transaction first so retransmissions are absorbed.
        let gen = self.gen();
        let expires = now + self.cfg.t1 * 64;
        self.schedule(expires, gen, TimerKind::TxnExpire(key.clone()));
        self.txns.insert(
            key.clone(),
            ServerTxn {
                peer,
                last_response: None,
                retransmit: None,
                call_id: call_id.clone(),
                expires,
                gen,
            },
        );
        let trying = self.build_response(&req, 100, "Trying", None);
        if let Some(t) = self.txns.get_mut(&key) {
            t.last_response = Some(trying.clone());
        }
        self.transmit(peer, trying);

        if self.dialogs.contains_key(&call_id) {
            let r = Refusal::new(482, "Loop Detected - Call-ID already in use");
            return self.refuse_invite(now, peer, &req, r);
        }
        match self.prepare_offer(&req) {
            Ok((offer, md)) => self.open_dialog(now, peer, req, key, cseq, call_id, offer, md),
            Err(r) => self.refuse_invite(now, peer, &req, r),
        }
    }

    /// Check an initial INVITE and parse its bodies.
    fn prepare_offer(
        &self,
        req: &Request,
    ) -> Result<(SessionDescription, Option<RecordingMetadata>), Refusal> {
        let unsupported: Vec<String> = req
            .headers
            .tokens("Require")
            .into_iter()
            .filter(|t| t != "siprec" && t != "timer")
            .collect();
        if !unsupported.is_empty() {
            return Err(
                Refusal::new(420, "Bad Extension").with("Unsupported", unsupported.join(", "))
            );
        }
        if let Some(se) = req.session_expires() {
            if se < MIN_SE {
                return Err(Refusal::new(422, "Session Interval Too Small")
                    .with("Min-SE", MIN_SE.to_string()));
            }
        }
        if self.dialogs.len() >= self.cfg.max_calls {
            return Err(
                Refusal::new(503, "Service Unavailable - call limit reached")
                    .with("Retry-After", self.cfg.retry_after_secs.to_string()),
            );
        }
        let (sdp, md) = self.parse_bodies(req)?;
        let Some(sdp) = sdp else {
            return Err(
                Refusal::new(415, "Unsupported Media Type - no SDP offer").with("Accept", ACCEPT)
            );
        };
        Ok((sdp, md))
    }

    /// SDP and metadata from a request body. `Ok((None, _))` when no SDP part.
    fn parse_bodies(
        &self,
        req: &Request,
    ) -> Result<(Option<SessionDescription>, Option<RecordingMetadata>), Refusal> {
        let ct = req.content_type();
        if !req.body.is_empty() && ct.is_none() {
            return Err(Refusal::new(400, "Bad Request - body without Content-Type"));
        }
        let parts = body_parts(ct.as_ref(), &req.body, &self.cfg.limits)
            .map_err(|e| Refusal::new(400, e.reason()))?;
        let mut sdp = None;
        let mut md = None;
        let mut unknown = vec![];
        for part in parts {
            let mime = part
                .content_type
                .as_ref()
                .map(|m| m.mime.clone())
                .unwrap_or_default();
            match mime.as_str() {
                "application/sdp" if sdp.is_none() => {
                    let text = std::str::from_utf8(&part.body)
                        .map_err(|_| Refusal::new(400, "Bad Request - SDP is not UTF-8"))?;
                    let parsed = sdp::parse(text)
                        .map_err(|e| Refusal::new(400, clip(&format!("Bad Request - {e}"))))?;
                    sdp = Some(parsed);
                }
                "application/rs-metadata" | "application/rs-metadata+xml" if md.is_none() => {
                    let parsed = metadata::parse(&part.body, &self.cfg.metadata_limits)
                        .map_err(|e| Refusal::new(400, clip(&format!("Bad Request - {e}"))))?;
                    md = Some(parsed);
                }
                _ => unknown.push(mime),
            }
        }
        if sdp.is_none() && md.is_none() && !unknown.is_empty() {
            return Err(Refusal::new(
                415,
                clip(&format!("Unsupported Media Type - {}", unknown.join(", "))),
            )
            .with("Accept", ACCEPT));
        }
        Ok((sdp, md))
    }

    #[allow(clippy::too_many_arguments)]
    fn open_dialog(
        &mut self,
        now: Instant,
        peer: Peer,
        req: Request,
        key: TxnKey,
        cseq: u32,
        call_id: CallId,
        offer: SessionDescription,
        md: Option<RecordingMetadata>,
    ) {
        // One even port per audio m-line that is not already rejected.
        let mut ports = vec![0u16; offer.media.len()];
        let mut allocated = vec![];
        for (i, m) in offer.media.iter().enumerate() {
            if m.media.eq_ignore_ascii_case("audio") && m.port != 0 {
                match self.ports.allocate() {
                    Some(p) => {
                        ports[i] = p;
                        allocated.push(p);
                    }
                    None => {
                        for p in allocated {
                            self.ports.release(p);
                        }
                        let r = Refusal::new(503, "Service Unavailable - no RTP ports")
                            .with("Retry-After", self.cfg.retry_after_secs.to_string());
                        return self.refuse_invite(now, peer, &req, r);
                    }
                }
            }
        }
        let sdp_session_id: u64 = self.rng.gen_range(1..=u32::MAX as u64);
        let cfg = AnswerConfig {
            media_ip: self.cfg.media_ip,
            session_id: sdp_session_id,
            session_version: 1,
            preference: self.cfg.codec_preference.clone(),
        };
        let (answer_sdp, streams) = match sdp::answer(&offer, &ports, &cfg) {
            Ok(a) => a,
            Err(e) => {
                for p in allocated {
                    self.ports.release(p);
                }
                let status = if matches!(e, sdp::SdpError::NoCommonCodec | sdp::SdpError::NoMedia) {
                    488
                } else {
                    400
                };
                let reason = if status == 488 {
                    clip(&format!("Not Acceptable Here - {e}"))
                } else {
                    clip(&format!("Bad Request - {e}"))
                };
                let r = Refusal::new(status, reason)
                    .with("Warning", "304 earshot \"Media type not available\"");
                return self.refuse_invite(now, peer, &req, r);
            }
        };
        // Ports of lines the answer rejected go straight back.
        let mut kept = vec![];
        for p in allocated {
            if streams.iter().any(|s| s.port == p) {
                kept.push(p);
            } else {
                self.ports.release(p);
            }
        }
        let siprec = req.contact_has_feature("+sip.src")
            || req.contact_has_feature("src")
            || req.headers.tokens("Require").iter().any(|t| t == "siprec");
        let offer_event = Offer {
            call_id: call_id.clone(),
            peer,
            from: req.from_uri(),
            to: req.headers.get("To").map(|t| uri_of(t).to_owned()),
            user_agent: req.headers.get("User-Agent").map(str::to_owned),
            siprec,
            metadata: md.clone(),
            streams: streams.clone(),
            headers: req.headers.clone(),
        };
        let gen = self.gen();
        let local_tag = self.fresh_tag();
        let d = Dialog {
            peer,
            state: DialogState::Offered,
            local_tag,
            invite_branch: key.branch.clone(),
            invite_cseq: cseq,
            remote_cseq: cseq,
            local_cseq: 0,
            remote_target: req.contact_uri(),
            route_set: req.record_route(),
            offer,
            streams,
            answer_sdp,
            sdp_session_id,
            sdp_version: 1,
            metadata: md,
            ports: kept,
            pending_2xx: None,
            session_expires: req.session_expires(),
            session_deadline: req
                .session_expires()
                .map(|se| now + Duration::from_secs(se as u64)),
            pending_bye: None,
            our_bye: None,
            gen,
            invite: req,
        };
        if let Some(se) = d.session_expires {
            self.schedule(
                now + Duration::from_secs(se as u64),
                gen,
                TimerKind::SessionExpiry(call_id.clone()),
            );
        }
        self.dialogs.insert(call_id, d);
        self.emit(UasEvent::Offered(Box::new(offer_event)));
    }

    fn refuse_invite(&mut self, now: Instant, peer: Peer, req: &Request, r: Refusal) {
        // A 5xx is the engine's own limit (calls, ports): an operator must
        // see it; a 4xx is the peer's mistake.
        if r.status >= 500 {
            tracing::warn!(status = r.status, reason = %r.reason, call_id = ?req.call_id(), "INVITE refused");
        } else {
            tracing::info!(status = r.status, reason = %r.reason, call_id = ?req.call_id(), "INVITE refused");
        }
        let tag = self.fresh_tag();
        let mut resp = Response::to_request(req, r.status, &r.reason, Some(&tag));
        self.decorate(&mut resp);
        for (n, v) in r.extra {
            resp.headers.push(n, v);
        }
        self.final_invite_response(now, peer, req, resp);
    }

    /// Send a final non-2xx to an INVITE; retransmit on UDP until ACK.
    fn final_invite_response(&mut self, now: Instant, peer: Peer, req: &Request, resp: Response) {
        let bytes = resp.to_bytes();
        let branch = req.via_branch().unwrap_or_default().to_owned();
        let key = TxnKey {
            branch,
            method: "INVITE".into(),
        };
        let gen = self.gen();
        let call_id = CallId::new(req.call_id().unwrap_or_default());
        let expires = now + self.cfg.t1 * 64;
        let retransmit = (!peer.transport.is_reliable()).then(|| Retransmit {
            bytes: bytes.clone(),
            interval: self.cfg.t1,
            give_up: expires,
        });
        if retransmit.is_some() {
            self.schedule(
                now + self.cfg.t1,
                gen,
                TimerKind::TxnRetransmit(key.clone()),
            );
        }
        self.schedule(expires, gen, TimerKind::TxnExpire(key.clone()));
        self.txns.insert(
            key,
            ServerTxn {
                peer,
                last_response: Some(bytes.clone()),
                retransmit,
                call_id,
                expires,
                gen,
            },
        );
        self.transmit(peer, bytes);
    }

    fn on_reinvite(&mut self, now: Instant, peer: Peer, req: Request, key: TxnKey, cseq: u32) {
        let Some(call_id) = self.in_dialog(&req) else {
            self.respond_cached(peer, &req, 481, "Call/Transaction Does Not Exist", None);
            return;
        };
        let state = self.dialogs.get(&call_id).map(|d| (d.state, d.remote_cseq));
        match state {
            Some((DialogState::Closing, _)) => {
                self.respond_cached(peer, &req, 481, "Call/Transaction Does Not Exist", None);
                return;
            }
            Some((DialogState::Offered, _)) | Some((DialogState::Answered, _)) => {
                let mut resp = Response::to_request(&req, 491, "Request Pending", None);
                self.decorate(&mut resp);
                self.final_invite_response(now, peer, &req, resp);
                return;
            }
            Some((_, last)) if cseq <= last => {
                let mut resp = Response::to_request(
                    &req,
                    500,
                    "Server Internal Error - CSeq out of order",
                    None,
                );
                self.decorate(&mut resp);
                resp.headers.push("Retry-After", "1");
                self.final_invite_response(now, peer, &req, resp);
                return;
            }
            _ => {}
        }
        let (sdp, md) = match self.parse_bodies(&req) {
            Ok(x) => x,
            Err(r) => return self.refuse_invite(now, peer, &req, r),
        };
        let call = call_id.clone();
        if let Err(r) = self.renegotiate(&call, Method::Invite, sdp, md) {
            return self.refuse_invite(now, peer, &req, r);
        }
        let Some(d) = self.dialogs.get_mut(&call) else {
            return;
        };
        d.remote_cseq = cseq;
        d.invite = req.clone();
        d.invite_branch = key.branch.clone();
        d.invite_cseq = cseq;
        d.state = DialogState::Answered;
        if let Some(se) = req.session_expires() {
            d.session_expires = Some(se);
        }
        let resp = ok_with_sdp(
            &self.cfg,
            &req,
            &d.local_tag,
            &d.answer_sdp,
            d.session_expires,
        );
        let bytes = resp.to_bytes();
        d.pending_2xx = Some(Retransmit {
            bytes: bytes.clone(),
            interval: self.cfg.t1,
            give_up: now + self.cfg.t1 * 64,
        });
        let reliable = peer.transport.is_reliable();
        d.peer = peer;
        let gen = self.gen();
        if let Some(d) = self.dialogs.get_mut(&call) {
            d.gen = gen;
        }
        self.txns.insert(
            key,
            ServerTxn {
                peer,
                last_response: Some(bytes.clone()),
                retransmit: None,
                call_id: call.clone(),
                expires: now + self.cfg.t1 * 64,
                gen,
            },
        );
        let first = if reliable {
            self.cfg.t1 * 64
        } else {
            self.cfg.t1
        };
        self.schedule(now + first, gen, TimerKind::Retransmit2xx(call.clone()));
        self.refresh_session_timer(now, &call);
        self.transmit(peer, bytes);
    }

    /// Apply a new offer and/or metadata to a dialog, emitting the updates.
    fn renegotiate(
        &mut self,
        call_id: &CallId,
        method: Method,
        sdp: Option<SessionDescription>,
        md: Option<RecordingMetadata>,
    ) -> Result<(), Refusal> {
        let mut new_streams = None;
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return Err(Refusal::new(481, "Call/Transaction Does Not Exist"));
        };
        if let Some(offer) = sdp {
            // Keep each m-line's port; new audio lines get new ports.
            let mut ports = vec![0u16; offer.media.len()];
            let mut fresh = vec![];
            for (i, m) in offer.media.iter().enumerate() {
                if !m.media.eq_ignore_ascii_case("audio") || m.port == 0 {
                    continue;
                }
                if let Some(old) = d.streams.get(i).filter(|s| s.port != 0) {
                    ports[i] = old.port;
                } else if let Some(p) = self.ports.allocate() {
                    ports[i] = p;
                    fresh.push(p);
                } else {
                    for p in fresh {
                        self.ports.release(p);
                    }
                    return Err(Refusal::new(503, "Service Unavailable - no RTP ports")
                        .with("Retry-After", self.cfg.retry_after_secs.to_string()));
                }
            }
            let cfg = AnswerConfig {
                media_ip: self.cfg.media_ip,
                session_id: d.sdp_session_id,
                session_version: d.sdp_version + 1,
                preference: self.cfg.codec_preference.clone(),
            };
            match sdp::answer(&offer, &ports, &cfg) {
                Ok((text, streams)) => {
                    d.sdp_version += 1;
                    d.answer_sdp = text;
                    d.offer = offer;
                    // Ports no longer used (m-line removed/rejected) go back.
                    let used: Vec<u16> =
                        streams.iter().map(|s| s.port).filter(|p| *p != 0).collect();
                    let mut all = std::mem::take(&mut d.ports);
                    all.extend(fresh);
                    for p in all {
                        if used.contains(&p) {
                            d.ports.push(p);
                        } else {
                            self.ports.release(p);
                        }
                    }
                    d.streams = streams.clone();
                    new_streams = Some(streams);
                }
                Err(e) => {
                    for p in fresh {
                        self.ports.release(p);
                    }
                    return Err(Refusal::new(
                        488,
                        clip(&format!("Not Acceptable Here - {e}")),
                    ));
                }
            }
        }
        let mut new_md = None;
        if let Some(update) = md {
            if let Some(d) = self.dialogs.get_mut(call_id) {
                let merged = match d.metadata.take() {
                    Some(mut cur) => {
                        cur.merge(update);
                        cur
                    }
                    None => update,
                };
                d.metadata = Some(merged.clone());
                new_md = Some(merged);
            }
        }
        if new_streams.is_some() || new_md.is_some() {
            self.emit(UasEvent::Updated {
                call_id: call_id.clone(),
                method,
                streams: new_streams,
                metadata: new_md,
            });
        }
        Ok(())
    }

    fn on_update(&mut self, now: Instant, peer: Peer, req: Request, cseq: u32) {
        let Some(call_id) = self.in_dialog(&req) else {
            self.respond_cached(peer, &req, 481, "Call/Transaction Does Not Exist", None);
            return;
        };
        let (sdp, md) = match self.parse_bodies(&req) {
            Ok(x) => x,
            Err(r) => {
                let mut resp = Response::to_request(&req, r.status, &r.reason, None);
                self.decorate(&mut resp);
                for (n, v) in r.extra {
                    resp.headers.push(n, v);
                }
                self.send_final_cached(now, peer, &req, resp);
                return;
            }
        };
        let had_sdp = sdp.is_some();
        if let Err(r) = self.renegotiate(&call_id, Method::Update, sdp, md) {
            let mut resp = Response::to_request(&req, r.status, &r.reason, None);
            self.decorate(&mut resp);
            self.send_final_cached(now, peer, &req, resp);
            return;
        }
        let Some(d) = self.dialogs.get_mut(&call_id) else {
            return;
        };
        if cseq > d.remote_cseq {
            d.remote_cseq = cseq;
        }
        if let Some(se) = req.session_expires() {
            d.session_expires = Some(se);
        }
        let resp = if had_sdp {
            ok_with_sdp(
                &self.cfg,
                &req,
                &d.local_tag,
                &d.answer_sdp,
                d.session_expires,
            )
        } else {
            let mut r = Response::to_request(&req, 200, "OK", Some(&d.local_tag));
            if let Some(se) = d.session_expires {
                r.headers
                    .push("Session-Expires", format!("{se};refresher=uac"));
                r.headers.push("Require", "timer");
            }
            r
        };
        let mut resp = resp;
        self.decorate(&mut resp);
        self.refresh_session_timer(now, &call_id);
        self.send_final_cached(now, peer, &req, resp);
    }

    fn on_ack(&mut self, req: Request, key: TxnKey, cseq: u32) {
        // ACK to a non-2xx final: absorbed by the INVITE transaction.
        let invite_key = TxnKey {
            branch: key.branch,
            method: "INVITE".into(),
        };
        if let Some(t) = self.txns.get_mut(&invite_key) {
            if t.retransmit.take().is_some() {
                return;
            }
        }
        let Some(call_id) = self.in_dialog(&req) else {
            return;
        };
        let Some(d) = self.dialogs.get_mut(&call_id) else {
            return;
        };
        if d.state == DialogState::Answered && cseq == d.invite_cseq {
            d.pending_2xx = None;
            d.state = DialogState::Confirmed;
            self.emit(UasEvent::Confirmed { call_id });
        }
    }

    fn on_cancel(&mut self, now: Instant, peer: Peer, req: Request, branch: &str) {
        let invite_key = TxnKey {
            branch: branch.to_owned(),
            method: "INVITE".into(),
        };
        let Some(call_id) = self.txns.get(&invite_key).map(|t| t.call_id.clone()) else {
            self.respond_cached(peer, &req, 481, "Call/Transaction Does Not Exist", None);
            return;
        };
        self.respond_cached(peer, &req, 200, "OK", None);
        let offered = self
            .dialogs
            .get(&call_id)
            .filter(|d| d.state == DialogState::Offered && d.invite_branch == branch)
            .map(|d| (d.invite.clone(), d.local_tag.clone(), d.peer));
        if let Some((invite, tag, ipeer)) = offered {
            let mut resp = Response::to_request(&invite, 487, "Request Terminated", Some(&tag));
            self.decorate(&mut resp);
            self.final_invite_response(now, ipeer, &invite, resp);
            self.release_ports(&call_id);
            self.remove_dialog(&call_id);
            self.emit(UasEvent::Ended {
                call_id,
                reason: EndReason::Cancelled,
            });
        }
    }

    fn on_bye(&mut self, now: Instant, peer: Peer, req: Request, cseq: u32) {
        let Some(call_id) = self.in_dialog(&req) else {
            self.respond_cached(peer, &req, 481, "Call/Transaction Does Not Exist", None);
            return;
        };
        let Some(d) = self.dialogs.get_mut(&call_id) else {
            return;
        };
        if d.pending_bye.is_some() {
            // A retransmission with a new branch; the first is still pending.
            return;
        }
        d.remote_cseq = d.remote_cseq.max(cseq);
        d.state = DialogState::Closing;
        d.pending_2xx = None;
        d.pending_bye = Some(req);
        d.peer = peer;
        let gen = d.gen;
        self.release_ports(&call_id);
        self.schedule(
            now + self.cfg.bye_confirm_timeout,
            gen,
            TimerKind::ByeConfirm(call_id.clone()),
        );
        self.emit(UasEvent::EndRequested { call_id });
    }

    // ----- responses to our requests --------------------------------------

    fn handle_response(&mut self, resp: Response) {
        let Some(call_id) = resp.call_id().map(CallId::new) else {
            return;
        };
        let Some((cseq, method)) = resp.cseq() else {
            return;
        };
        if method != Method::Bye || resp.status < 200 {
            return;
        }
        let done = self
            .dialogs
            .get(&call_id)
            .and_then(|d| d.our_bye.as_ref())
            .is_some_and(|(n, _)| *n == cseq);
        if done {
            self.remove_dialog(&call_id);
        }
    }

    fn build_bye(&mut self, call_id: &CallId, cseq: u32) -> Option<(Peer, Vec<u8>)> {
        let branch = format!("z9hG4bK{}", self.token(16));
        let d = self.dialogs.get(call_id)?;
        let target = d
            .remote_target
            .clone()
            .or_else(|| d.invite.from_uri())
            .unwrap_or_else(|| format!("sip:{}", d.peer.addr));
        let mut h = Headers::default();
        let transport = match d.peer.transport {
            Transport::Udp => "UDP",
            Transport::Tcp(_) => "TCP",
        };
        h.push(
            "Via",
            format!(
                "SIP/2.0/{transport} {};branch={branch};rport",
                self.cfg.sip_addr
            ),
        );
        h.push("Max-Forwards", "70");
        // Our From is their To (with our tag); our To is their From.
        let their_to = d.invite.headers.get("To").unwrap_or_default();
        let our_from = if d.invite.to_tag().is_some() {
            their_to.to_owned()
        } else {
            format!("{their_to};tag={}", d.local_tag)
        };
        h.push("From", our_from);
        h.push("To", d.invite.headers.get("From").unwrap_or_default());
        h.push("Call-ID", call_id.as_str());
        h.push("CSeq", format!("{cseq} BYE"));
        for r in &d.route_set {
            h.push("Route", r.clone());
        }
        h.push("User-Agent", self.cfg.user_agent.clone());
        let req = Request {
            method: Method::Bye,
            uri: target,
            headers: h,
            body: vec![],
        };
        Some((d.peer, req.to_bytes()))
    }

    fn pending_byes_insert(
        &mut self,
        now: Instant,
        call_id: &CallId,
        cseq: u32,
        bytes: Vec<u8>,
        reliable: bool,
        gen: u64,
    ) {
        let t1 = self.cfg.t1;
        if let Some(d) = self.dialogs.get_mut(call_id) {
            d.pending_2xx = None;
            d.state = DialogState::Closing;
            d.our_bye = Some((
                cseq,
                Retransmit {
                    bytes,
                    interval: t1,
                    give_up: now + t1 * 64,
                },
            ));
        }
        let first = if reliable { t1 * 64 } else { t1 };
        self.schedule(now + first, gen, TimerKind::OurBye(call_id.clone()));
    }

    // ----- timers ----------------------------------------------------------

    fn fire(&mut self, now: Instant, gen: u64, kind: TimerKind) {
        match kind {
            TimerKind::Retransmit2xx(call_id) => {
                let Some(d) = self.dialogs.get_mut(&call_id) else {
                    return;
                };
                if d.gen != gen || d.state != DialogState::Answered {
                    return;
                }
                let Some(rt) = d.pending_2xx.as_mut() else {
                    return;
                };
                if now >= rt.give_up {
                    tracing::warn!(%call_id, "no ACK for 200 OK; ending the session");
                    self.end_with(now, &call_id, EndReason::NoAck);
                    return;
                }
                let bytes = rt.bytes.clone();
                rt.interval = (rt.interval * 2).min(self.cfg.t2);
                let next = (now + rt.interval).min(rt.give_up);
                let peer = d.peer;
                self.schedule(next, gen, TimerKind::Retransmit2xx(call_id));
                self.transmit(peer, bytes);
            }
            TimerKind::OurBye(call_id) => {
                let Some(d) = self.dialogs.get_mut(&call_id) else {
                    return;
                };
                if d.gen != gen {
                    return;
                }
                let peer = d.peer;
                let Some((_, rt)) = d.our_bye.as_mut() else {
                    return;
                };
                if now >= rt.give_up || peer.transport.is_reliable() {
                    self.remove_dialog(&call_id);
                    return;
                }
                let bytes = rt.bytes.clone();
                rt.interval = (rt.interval * 2).min(self.cfg.t2);
                let next = (now + rt.interval).min(rt.give_up);
                self.schedule(next, gen, TimerKind::OurBye(call_id));
                self.transmit(peer, bytes);
            }
            TimerKind::SessionExpiry(call_id) => {
                let Some(d) = self.dialogs.get(&call_id) else {
                    return;
                };
                let due = d.session_deadline.is_some_and(|t| t <= now);
                if !due || d.state == DialogState::Closing {
                    return;
                }
                tracing::warn!(%call_id, "session timer expired without refresh");
                self.end_with(now, &call_id, EndReason::SessionExpired);
            }
            TimerKind::HeldPorts(call_id) => {
                if self.held.get(&call_id).is_some_and(|(_, g)| *g == gen) {
                    let n = self.media_released(&call_id);
                    tracing::warn!(%call_id, ports = n, "media never reported closed; ports released after the hold limit");
                }
            }
            TimerKind::ByeConfirm(call_id) => {
                let pending = self
                    .dialogs
                    .get(&call_id)
                    .is_some_and(|d| d.gen == gen && d.pending_bye.is_some());
                if pending {
                    tracing::warn!(%call_id, "BYE not confirmed in time; answering anyway");
                    self.confirm_end(now, &call_id);
                }
            }
            TimerKind::TxnRetransmit(key) => {
                let t1 = self.cfg.t1;
                let t2 = self.cfg.t2;
                let Some(t) = self.txns.get_mut(&key) else {
                    return;
                };
                if t.gen != gen {
                    return;
                }
                let peer = t.peer;
                let Some(rt) = t.retransmit.as_mut() else {
                    return;
                };
                if now >= rt.give_up {
                    return;
                }
                let bytes = rt.bytes.clone();
                rt.interval = (rt.interval * 2).min(t2);
                let next = (now + rt.interval.max(t1)).min(rt.give_up);
                self.schedule(next, gen, TimerKind::TxnRetransmit(key));
                self.transmit(peer, bytes);
            }
            TimerKind::TxnExpire(key) => {
                if self
                    .txns
                    .get(&key)
                    .is_some_and(|t| t.gen == gen && t.expires <= now)
                {
                    self.txns.remove(&key);
                }
            }
        }
    }

    fn refresh_session_timer(&mut self, now: Instant, call_id: &CallId) {
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return;
        };
        if let Some(se) = d.session_expires {
            let at = now + Duration::from_secs(se as u64);
            d.session_deadline = Some(at);
            let gen = d.gen;
            self.schedule(at, gen, TimerKind::SessionExpiry(call_id.clone()));
        }
    }

    // ----- helpers ---------------------------------------------------------

    fn schedule(&mut self, at: Instant, gen: u64, kind: TimerKind) {
        self.timers.insert((at, gen, kind));
    }

    fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    fn emit(&mut self, e: UasEvent) {
        self.outputs.push_back(UasOutput::Event(e));
    }

    fn transmit(&mut self, peer: Peer, bytes: Vec<u8>) {
        self.outputs.push_back(UasOutput::Transmit { peer, bytes });
    }

    fn token(&mut self, n: usize) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..n)
            .map(|_| ALPHABET[self.rng.gen_range(0..ALPHABET.len())] as char)
            .collect()
    }

    fn fresh_tag(&mut self) -> String {
        format!("es{}", self.token(10))
    }

    fn decorate(&self, resp: &mut Response) {
        resp.headers.push("Server", self.cfg.user_agent.clone());
    }

    fn build_response(
        &self,
        req: &Request,
        status: u16,
        reason: &str,
        tag: Option<&str>,
    ) -> Vec<u8> {
        let mut resp = Response::to_request(req, status, reason, tag);
        self.decorate(&mut resp);
        resp.to_bytes()
    }

    /// Send a response that is not cached (no transaction).
    fn respond(&mut self, peer: Peer, req: &Request, status: u16, reason: &str, tag: Option<&str>) {
        let bytes = self.build_response(req, status, reason, tag);
        self.transmit(peer, bytes);
    }

    /// Send a final response to a non-INVITE request and cache it for
    /// retransmissions (Timer J = 64·T1).
    fn respond_cached(
        &mut self,
        peer: Peer,
        req: &Request,
        status: u16,
        reason: &str,
        tag: Option<&str>,
    ) {
        let mut resp = Response::to_request(req, status, reason, tag);
        self.decorate(&mut resp);
        self.send_final_cached(self.now, peer, req, resp);
    }

    fn send_final_cached(&mut self, now: Instant, peer: Peer, req: &Request, resp: Response) {
        let bytes = resp.to_bytes();
        if let Some(branch) = req.via_branch() {
            let key = TxnKey {
                branch: branch.to_owned(),
                method: txn_method(&req.method),
            };
            let gen = self.gen();
            let expires = now + self.cfg.t1 * 64;
            self.schedule(expires, gen, TimerKind::TxnExpire(key.clone()));
            self.txns.insert(
                key,
                ServerTxn {
                    peer,
                    last_response: Some(bytes.clone()),
                    retransmit: None,
                    call_id: CallId::new(req.call_id().unwrap_or_default()),
                    expires,
                    gen,
                },
            );
        }
        self.transmit(peer, bytes);
    }

    /// The call is over: its ports wait for [`Uas::media_released`].
    fn release_ports(&mut self, call_id: &CallId) {
        let Some(d) = self.dialogs.get_mut(call_id) else {
            return;
        };
        if d.ports.is_empty() {
            return;
        }
        let ports: Vec<u16> = d.ports.drain(..).collect();
        let gen = self.gen();
        let entry = self
            .held
            .entry(call_id.clone())
            .or_insert_with(|| (vec![], gen));
        entry.0.extend(ports);
        entry.1 = gen;
        let at = self.now + self.cfg.port_hold_max;
        self.schedule(at, gen, TimerKind::HeldPorts(call_id.clone()));
    }

    fn remove_dialog(&mut self, call_id: &CallId) {
        self.release_ports(call_id);
        self.dialogs.remove(call_id);
    }
}

/// The method a server transaction is keyed by (ACK and CANCEL have their own).
fn txn_method(m: &Method) -> String {
    m.as_str().to_owned()
}

/// 200 OK with our SDP, Contact `+sip.srs`, and session-timer headers.
fn ok_with_sdp(cfg: &UasConfig, req: &Request, tag: &str, sdp: &str, se: Option<u32>) -> Response {
    let mut resp = Response::to_request(req, 200, "OK", Some(tag));
    let transport = match req.via_transport().as_deref() {
        Some("TCP") => ";transport=tcp",
        _ => "",
    };
    resp.headers.push(
        "Contact",
        format!("<sip:earshot@{}{}>;+sip.srs", cfg.sip_addr, transport),
    );
    resp.headers.push("Allow", ALLOW);
    resp.headers.push("Supported", SUPPORTED);
    if let Some(se) = se {
        resp.headers
            .push("Session-Expires", format!("{se};refresher=uac"));
        resp.headers.push("Require", "timer");
    }
    resp.headers.push("Server", cfg.user_agent.clone());
    resp.headers.push("Content-Type", "application/sdp");
    resp.body = sdp.as_bytes().to_vec();
    resp
}

/// URI inside a name-addr (`"Bob" <sip:b@x>;tag=1` → `sip:b@x`).
fn uri_of(v: &str) -> &str {
    if let (Some(a), Some(b)) = (v.find('<'), v.find('>')) {
        if a < b {
            return &v[a + 1..b];
        }
    }
    v.split(';').next().unwrap_or(v).trim()
}

fn clip(s: &str) -> String {
    let mut s: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.len() > 120 {
        let mut cut = 120;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Build a 400 for a message that did not parse, when the headers needed to
/// answer (Via, From, To, Call-ID, CSeq) can still be found. Requests only.
fn salvage_400(bytes: &[u8], reason: &str, server: &str) -> Option<Vec<u8>> {
    let head_end = find(bytes, b"\r\n\r\n").unwrap_or(bytes.len().min(64 * 1024));
    let head = String::from_utf8_lossy(bytes.get(..head_end)?);
    let mut lines = head.split("\r\n").flat_map(|l| l.split('\n'));
    let start = lines.next()?;
    if start.starts_with("SIP/") || !start.contains("SIP/2.0") {
        return None;
    }
    let mut via = vec![];
    let mut wanted: [Option<String>; 4] = [None, None, None, None];
    for line in lines.take(256) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_owned();
        match name.as_str() {
            "via" | "v" => via.push(value),
            "from" | "f" => wanted[0] = wanted[0].take().or(Some(value)),
            "to" | "t" => wanted[1] = wanted[1].take().or(Some(value)),
            "call-id" | "i" => wanted[2] = wanted[2].take().or(Some(value)),
            "cseq" => wanted[3] = wanted[3].take().or(Some(value)),
            _ => {}
        }
    }
    if via.is_empty() || wanted.iter().any(|w| w.is_none()) {
        return None;
    }
    let mut out = format!("SIP/2.0 400 {}\r\n", clip(reason));
    for v in via {
        out.push_str(&format!("Via: {v}\r\n"));
    }
    let names = ["From", "To", "Call-ID", "CSeq"];
    for (n, v) in names.iter().zip(wanted.iter()) {
        out.push_str(&format!("{n}: {}\r\n", v.as_deref().unwrap_or_default()));
    }
    out.push_str(&format!("Server: {server}\r\nContent-Length: 0\r\n\r\n"));
    Some(out.into_bytes())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
