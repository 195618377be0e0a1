//! Prometheus metrics, served as text at `GET /metrics`.
//!
//! Two kinds of source:
//!
//! * **recorded where they happen**, in this process's [`Metrics`]
//!   (prometheus' lock-free atomics; one set per process): SIP messages by
//!   direction, method and status code (the SIP actor classifies each
//!   message it frames or sends), ASR latency (end of speech → final, in
//!   the call actor), analysis time per final (analysis actor), session
//!   store write time (store actor), per-stream jitter at the end of each
//!   stream (registry).
//! * **read at scrape time** from the actors that own the state
//!   ([`Scrape`]: the registry's call totals, the ASR pool's queues, the
//!   WebSocket hub, the notifier) and from `/proc/self` (CPU, RSS). Totals
//!   that must only grow (RTP packets, calls ended, speech seconds) are
//!   "ended calls' sum + live calls' current values", which never goes
//!   down because a call's final record is at least its last live view;
//!   they are moved onto the counters by their increase.
//!
//! Label values are bounded: methods outside the SIP methods a recorder
//! meets are `other`, end reasons are mapped onto a fixed set
//! ([`reason_label`]), codecs are the engine's own names.

use earshot::sip::Method;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::BTreeMap;
use std::sync::LazyLock;

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    pub sip_requests: IntCounterVec,
    pub sip_responses: IntCounterVec,
    pub asr_latency: Histogram,
    pub analysis_latency: Histogram,
    pub store_write: HistogramVec,
    pub rtp_jitter: Histogram,
    /// Messages an overloaded internal queue refused (the sender keeps or
    /// regenerates the state: a call's next snapshot, the next partial).
    pub overload_dropped: IntCounterVec,
    active_calls: IntGauge,
    calls_ended: IntCounterVec,
    rtp_packets: IntCounterVec,
    speech_seconds: prometheus::Counter,
    asr_queue: IntGaugeVec,
    asr_workers: IntGaugeVec,
    asr_decodes: IntCounterVec,
    ws_clients: IntGauge,
    ws_dropped_partials: IntCounter,
    notifications: IntCounterVec,
    cpu_seconds: prometheus::Counter,
    rss_bytes: IntGauge,
    open_fds: IntGauge,
}

/// Seconds buckets from 5 ms to 60 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
];

/// Register a new metric (names and options are constants here: an error
/// is a programming error).
fn reg<T: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    m: Result<T, prometheus::Error>,
) -> T {
    let m = m.expect("valid metric");
    r.register(Box::new(m.clone())).expect("unique metric");
    m
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    reg(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())),
    )
}

impl Metrics {
    fn new() -> Metrics {
        let r = Registry::new();
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&r, IntCounterVec::new(Opts::new(name, help), labels))
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            reg(&r, IntGaugeVec::new(Opts::new(name, help), labels))
        };
        let gauge = |name: &str, help: &str| reg(&r, IntGauge::new(name, help));
        let counter = |name: &str, help: &str| reg(&r, prometheus::Counter::new(name, help));
        Metrics {
            sip_requests: counter_vec(
                "earshot_sip_requests_total",
                "SIP requests received (in) and sent (out), by method",
                &["direction", "method"],
            ),
            overload_dropped: counter_vec(
                "earshot_overload_dropped_total",
                "Internal messages dropped because the receiving actor's mailbox was full, by queue (registry_snapshot: a call's periodic state for the registry, superseded by the next; ws_push: a droppable WebSocket push, a partial or analysis snapshot)",
                &["queue"],
            ),
            sip_responses: counter_vec(
                "earshot_sip_responses_total",
                "SIP responses received (in) and sent (out), by CSeq method and status code",
                &["direction", "method", "code"],
            ),
            asr_latency: histogram(
                &r,
                "earshot_asr_final_latency_seconds",
                "End of speech to its final transcript",
                LATENCY_BUCKETS,
            ),
            analysis_latency: histogram(
                &r,
                "earshot_analysis_seconds",
                "Progressive analysis time per final",
                &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
            ),
            store_write: reg(
                &r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "earshot_store_write_seconds",
                        "Session store (sled) write time, by kind (durable = flushed, journal = live state)",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 1.0,
                    ]),
                    &["kind"],
                ),
            ),
            rtp_jitter: histogram(
                &r,
                "earshot_rtp_jitter_ms",
                "Interarrival jitter (RFC 3550) of each stream at its end, milliseconds",
                &[1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 500.0],
            ),
            active_calls: gauge("earshot_active_calls", "Live recording sessions"),
            calls_ended: counter_vec(
                "earshot_calls_ended_total",
                "Recording sessions ended since start, by status and reason",
                &["status", "reason"],
            ),
            rtp_packets: counter_vec(
                "earshot_rtp_packets_total",
                "RTP packets by codec and outcome (received; lost and late in the network; \
                 duplicate; dropped_by_engine = kernel queue overflow)",
                &["codec", "outcome"],
            ),
            speech_seconds: counter(
                "earshot_vad_speech_seconds_total",
                "Seconds of speech the VAD found, all streams",
            ),
            asr_queue: gauge_vec(
                "earshot_asr_queue_depth",
                "Utterances waiting for a recogniser, by kind",
                &["kind"],
            ),
            asr_workers: gauge_vec("earshot_asr_workers", "Recogniser workers, by state", &["state"]),
            asr_decodes: counter_vec(
                "earshot_asr_decodes_total",
                "Recogniser decodes by kind and outcome",
                &["kind"],
            ),
            ws_clients: gauge("earshot_ws_clients", "Connected WebSocket clients"),
            ws_dropped_partials: reg(
                &r,
                IntCounter::new(
                    "earshot_ws_dropped_partials_total",
                    "Partials and snapshots dropped for slow WebSocket clients",
                ),
            ),
            notifications: counter_vec(
                "earshot_notifications_total",
                "Agent notifications by outcome (delivered, failed_attempt, dead_lettered)",
                &["outcome"],
            ),
            cpu_seconds: counter(
                "process_cpu_seconds_total",
                "User and system CPU time of the engine process",
            ),
            rss_bytes: gauge(
                "process_resident_memory_bytes",
                "Resident set size of the engine process",
            ),
            open_fds: gauge("process_open_fds", "Open file descriptors"),
            registry: r,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// This process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// Move a counter up to `value` (never down).
fn raise<P: prometheus::core::Atomic>(c: &prometheus::core::GenericCounter<P>, value: P::T) {
    let now = c.get();
    if value > now {
        let mut up = value;
        up -= now;
        c.inc_by(up);
    }
}

/// A method as a bounded label: the core's [`Method`] names (case aside),
/// anything else `other`.
fn method_label(m: &str) -> String {
    match Method::parse(&m.to_ascii_uppercase()) {
        Method::Other(_) => "other".into(),
        known => known.as_str().to_string(),
    }
}

/// What a SIP message is, from its start line (and CSeq for responses).
#[derive(Debug, PartialEq, Eq)]
pub enum SipKind {
    Request(String),
    Response { method: String, code: u16 },
}

/// Classify a framed SIP message; None when it has no valid start line.
pub fn classify(bytes: &[u8]) -> Option<SipKind> {
    let head = &bytes[..bytes.len().min(2048)];
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n").flat_map(|l| l.split('\n'));
    let first = lines.next()?.trim();
    if let Some(rest) = first.strip_prefix("SIP/2.0 ") {
        let code: u16 = rest.get(..3)?.parse().ok()?;
        if !(100..=699).contains(&code) {
            return None;
        }
        let method = lines
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                let name = name.trim();
                (name.eq_ignore_ascii_case("CSeq")).then(|| value.split_whitespace().nth(1))?
            })
            .map_or_else(|| "other".into(), method_label);
        return Some(SipKind::Response { method, code });
    }
    // Method SP Request-URI SP SIP/2.0, the method an RFC 3261 token.
    let parts: Vec<&str> = first.split(' ').collect();
    let [method, uri, "SIP/2.0"] = parts[..] else {
        return None;
    };
    let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    if method.is_empty() || uri.is_empty() || !method.chars().all(token) {
        return None;
    }
    Some(SipKind::Request(method_label(method)))
}

/// Count one SIP message (`direction`: `in` or `out`).
pub fn sip_message(direction: &str, bytes: &[u8]) {
    let m = get();
    match classify(bytes) {
        Some(SipKind::Request(method)) => m
            .sip_requests
            .with_label_values(&[direction, &method])
            .inc(),
        Some(SipKind::Response { method, code }) => m
            .sip_responses
            .with_label_values(&[direction, &method, &code.to_string()])
            .inc(),
        None => m
            .sip_requests
            .with_label_values(&[direction, "unparseable"])
            .inc(),
    }
}

/// A call's end reason as a bounded label.
pub fn reason_label(reason: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "bye",
        "cancelled",
        "no ack",
        "session expired",
        "no media",
        "manual",
        "shutdown",
        "engine stopped while live",
    ];
    let r = reason.trim();
    if let Some(k) = KNOWN.iter().find(|k| r.eq_ignore_ascii_case(k)) {
        return k;
    }
    if r.starts_with("rejected") {
        "rejected"
    } else if r.starts_with("internal error") {
        "internal error"
    } else {
        "other"
    }
}

/// RTP totals of one codec.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RtpTotals {
    pub received: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicate: u64,
    pub dropped_by_engine: u64,
}

impl RtpTotals {
    pub fn add(&mut self, s: &earshot::session::StreamInfo) {
        if let Some(st) = &s.stats {
            self.received += st.packets;
            self.lost += st.lost;
            self.late += st.late;
            self.duplicate += st.duplicates;
        }
        self.dropped_by_engine += s.receive.dropped_by_engine;
    }
}

/// Speech seconds of a record's streams.
pub fn speech_seconds(r: &earshot::session::SessionRecord) -> f64 {
    r.streams
        .iter()
        .flat_map(|s| s.speech.iter())
        .map(|sp| sp.end_ms.saturating_sub(sp.start_ms) as f64 / 1000.0)
        .sum()
}

/// What the actors report at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub active_calls: usize,
    /// (status, reason label) → calls ended since start.
    pub ended: BTreeMap<(String, String), u64>,
    /// codec → totals (ended calls + live calls now).
    pub rtp: BTreeMap<String, RtpTotals>,
    pub speech_seconds: f64,
    pub asr: Option<crate::asr::AsrStats>,
    pub ws: Option<crate::ws::HubStats>,
    pub notify: Option<crate::notify::NotifyStats>,
}

/// Render everything as Prometheus text.
pub fn render(s: &Scrape) -> String {
    let m = get();
    m.active_calls.set(s.active_calls as i64);
    for ((status, reason), n) in &s.ended {
        raise(&m.calls_ended.with_label_values(&[status, reason]), *n);
    }
    for (codec, t) in &s.rtp {
        for (outcome, v) in [
            ("received", t.received),
            ("lost", t.lost),
            ("late", t.late),
            ("duplicate", t.duplicate),
            ("dropped_by_engine", t.dropped_by_engine),
        ] {
            raise(&m.rtp_packets.with_label_values(&[codec, outcome]), v);
        }
    }
    raise(&m.speech_seconds, s.speech_seconds);
    if let Some(a) = &s.asr {
        for (gauge, label, v) in [
            (&m.asr_queue, "final", a.queued_finals),
            (&m.asr_queue, "partial", a.queued_partials),
            (&m.asr_workers, "total", a.workers),
            (&m.asr_workers, "busy", a.busy_workers),
        ] {
            gauge.with_label_values(&[label]).set(v as i64);
        }
        for (kind, v) in [
            ("final", a.finals_decoded),
            ("partial", a.partials_decoded),
            ("error", a.errors),
        ] {
            raise(&m.asr_decodes.with_label_values(&[kind]), v);
        }
    }
    if let Some(w) = &s.ws {
        m.ws_clients.set(w.clients as i64);
        raise(&m.ws_dropped_partials, w.dropped_partials);
    }
    if let Some(n) = &s.notify {
        for (outcome, v) in [
            ("delivered", n.delivered),
            ("failed_attempt", n.failed_attempts),
            ("dead_lettered", n.dead_lettered),
        ] {
            raise(&m.notifications.with_label_values(&[outcome]), v);
        }
    }
    if let Some(p) = process() {
        raise(&m.cpu_seconds, p.cpu_seconds);
        m.rss_bytes.set(p.rss_bytes as i64);
        m.open_fds.set(p.open_fds as i64);
    }
    let mut out = vec![];
    // The text encoder only fails on a broken writer (a Vec is not).
    let _ = TextEncoder::new().encode(&m.registry.gather(), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The engine process's CPU time, RSS and open files (Linux `/proc`).
#[derive(Debug, Clone, Copy)]
pub struct Process {
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub open_fds: usize,
}

pub fn process() -> Option<Process> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command (which may hold spaces) in parentheses.
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: 11 and 12 here.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let rss_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0);
    Some(Process {
        cpu_seconds: ticks as f64 / hz,
        rss_bytes: rss_pages * page,
        open_fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_start_lines() {
        assert_eq!(
            classify(b"INVITE sip:rec@10.0.0.1 SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n"),
            Some(SipKind::Request("INVITE".into()))
        );
        assert_eq!(
            classify(b"SIP/2.0 200 OK\r\nVia: x\r\ncseq:  7 bye\r\n\r\n"),
            Some(SipKind::Response {
                method: "BYE".into(),
                code: 200
            })
        );
        assert_eq!(
            classify(b"SIP/2.0 488 Not Here\r\n\r\n"),
            Some(SipKind::Response {
                method: "other".into(),
                code: 488
            })
        );
        assert_eq!(
            classify(b"FOO sip:x SIP/2.0\r\n\r\n"),
            Some(SipKind::Request("other".into()))
        );
        for junk in [
            &b""[..],
            b"\r\n",
            b"SIP/2.0 99 x\r\n",
            b"SIP/2.0 abc\r\n",
            b"hello world\r\n",
            b"\xff\xfe SIP/2.0",
        ] {
            assert_eq!(classify(junk), None, "{junk:?}");
        }
    }

    #[test]
    fn reasons_are_bounded() {
        assert_eq!(reason_label("bye"), "bye");
        assert_eq!(reason_label("No Media"), "no media");
        assert_eq!(reason_label("rejected 488"), "rejected");
        assert_eq!(
            reason_label("internal error: index out of bounds"),
            "internal error"
        );
        assert_eq!(reason_label("the supervisor said so"), "other");
    }

    #[test]
    fn process_figures_are_read() {
        let p = process().expect("/proc/self");
        assert!(p.rss_bytes > 1 << 20, "{p:?}");
        assert!(p.open_fds >= 3, "{p:?}");
        assert!(p.cpu_seconds >= 0.0);
    }

    #[test]
    fn render_moves_counters_up_only() {
        let mut s = Scrape {
            active_calls: 2,
            ..Scrape::default()
        };
        s.ended.insert(("completed".into(), "bye".into()), 3);
        s.rtp.insert(
            "PCMU".into(),
            RtpTotals {
                received: 100,
                lost: 2,
                ..RtpTotals::default()
            },
        );
        let text = render(&s);
        assert!(text.contains("earshot_active_calls 2"), "{text}");
        assert!(
            text.contains(r#"earshot_calls_ended_total{reason="bye",status="completed"} 3"#),
            "{text}"
        );
        assert!(text.contains(r#"earshot_rtp_packets_total{codec="PCMU",outcome="received"} 100"#));
        assert!(text.contains("process_resident_memory_bytes"));
        // A lower value later (cannot happen, but) never lowers a counter.
        s.rtp.get_mut("PCMU").unwrap().received = 50;
        let text = render(&s);
        assert!(text.contains(r#"earshot_rtp_packets_total{codec="PCMU",outcome="received"} 100"#));
    }
}
