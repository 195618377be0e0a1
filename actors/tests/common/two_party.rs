//! Two-party test calls with KNOWN timings and words (`scripts/make-call`:
//! `tests/audio/call-<name>/{a,b}.wav` + `truth.json`): sipp sets up the
//! SIPREC session (`tests/sipp/media_call.xml`), the test sends the RTP
//! (optionally impaired) and reads everything back once the call is stored.

use super::rtp_send::{self, Dtmf, Impairment, RtpSender, SendReport};
use super::*;
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant, SystemTime};

// ---------------------------------------------------------------------------
// The test calls and their truth.

static CALLS: Once = Once::new();
static CALLS_ERR: Mutex<Option<String>> = Mutex::new(None);

/// Runs `scripts/make-call` once (it is idempotent and fast).
pub fn require_calls() {
    CALLS.call_once(|| {
        *CALLS_ERR.lock().unwrap() =
            run_in_repo(Command::new("python3").arg(repo_root().join("scripts/make-call")));
    });
    if let Some(e) = CALLS_ERR.lock().unwrap().as_ref() {
        panic!("scripts/make-call failed ({e}); run scripts/setup");
    }
}

pub fn call_dir(name: &str) -> PathBuf {
    repo_root().join("tests/audio").join(format!("call-{name}"))
}

pub fn load_truth(name: &str) -> Value {
    require_calls();
    let p = call_dir(name).join("truth.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

pub fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// `[[start, end], ...]` (seconds) as pairs.
pub fn intervals(v: &Value) -> Vec<(f64, f64)> {
    v.as_array()
        .map(|a| a.iter().map(|p| (f(&p[0]), f(&p[1]))).collect())
        .unwrap_or_default()
}

pub fn truth_talk(truth: &Value, who: &str) -> f64 {
    intervals(&truth["participants"][who]["speech"])
        .iter()
        .map(|(a, b)| b - a)
        .sum()
}

/// Silence gaps comparable with the engine's: at least 1 s long.
pub fn truth_gaps_total(truth: &Value) -> f64 {
    intervals(&truth["gaps"])
        .iter()
        .map(|(a, b)| b - a)
        .filter(|d| *d >= 1.0 - 1e-9)
        .sum()
}

pub fn truth_dtmf(truth: &Value, who: &str) -> Vec<Dtmf> {
    truth["dtmf"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| s(&d["participant"]) == who)
        .map(|d| Dtmf {
            digit: s(&d["digit"]).chars().next().expect("a DTMF digit"),
            at_ms: (f(&d["at_s"]) * 1000.0).round() as u64,
            duration_ms: (f(&d["duration_s"]) * 1000.0).round() as u64,
        })
        .collect()
}

/// What a participant said, in order (the truth).
pub fn truth_text(truth: &Value, who: &str) -> String {
    truth["turns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| s(&t["participant"]) == who)
        .map(|t| s(&t["text"]).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits until every final of the call is in the stored transcript: the
/// count stops changing and the session says transcription is complete.
/// Returns `GET .../transcript?include_segments=true`.
pub fn final_transcript(engine: &Engine, id: &str) -> Value {
    let mut last = (u64::MAX, 0u32);
    poll("the transcript to settle", Duration::from_secs(180), || {
        let r = engine.get(&format!(
            "/api/v1/calls/{}/transcript?include_segments=true",
            encode(id)
        ));
        assert_eq!(r.status, 200, "GET transcript: {}", r.text);
        let n = r.body["segment_count"].as_u64().unwrap_or(0);
        let pending = r.body["pending_finals"].as_u64().unwrap_or(1);
        if n == last.0 && pending == 0 {
            last.1 += 1;
        } else {
            last = (n, 0);
        }
        (last.1 >= 3).then_some(r.body)
    })
}

/// One participant's finals (by stream label) in time order, joined.
pub fn hypothesis(transcript: &Value, label: &str) -> String {
    let mut mine: Vec<&Value> = transcript["segments"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|g| s(&g["stream_label"]) == label)
        .collect();
    mine.sort_by(|x, y| f(&x["start_time"]).total_cmp(&f(&y["start_time"])));
    mine.iter()
        .map(|g| s(&g["text"]).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// One recorded call.

pub struct Run {
    pub engine: Engine,
    pub id: String,
    pub truth: Value,
    /// participant_id of "a" (label 1) and "b" (label 2).
    pub pid: [String; 2],
    pub reports: [SendReport; 2],
    /// Milliseconds from the session's start_time to the first audio sample.
    pub offset_ms: f64,
    pub call: Value,
    pub talk: Value,
    pub events: Value,
}

pub fn wall_ms(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        * 1000.0
}

pub fn rfc3339_ms(v: &Value) -> f64 {
    let t = chrono::DateTime::parse_from_rfc3339(s(v))
        .unwrap_or_else(|e| panic!("not an RFC 3339 time: {v} ({e})"));
    t.timestamp_nanos_opt().expect("a time in range") as f64 / 1e6
}

pub fn local_port(call: &Value, label: &str) -> Option<u16> {
    let p = stream(call, label)?["local_port"].as_u64()?;
    (p > 0).then_some(p as u16)
}

/// Sets up the SIPREC session with sipp, sends a.wav to label 1 and b.wav to
/// label 2 (starting together), waits for the BYE and reads everything back.
pub fn record(name: &str, imp: [Impairment; 2]) -> Run {
    record_with(name, imp, EngineOpts::default())
}

/// [`record`] on an engine started with `opts`.
pub fn record_with(name: &str, imp: [Impairment; 2], opts: EngineOpts) -> Run {
    record_on(Engine::start_with(opts), name, imp)
}

/// [`record`] on a running engine.
pub fn record_on(engine: Engine, name: &str, imp: [Impairment; 2]) -> Run {
    let truth = load_truth(name);
    let duration_ms = (f(&truth["duration_s"]) * 1000.0).round() as u64;
    // The call outlives the audio (and any sender stall) by a few seconds
    // (sender start-up included).
    let stall_ms = imp
        .iter()
        .filter_map(|i| i.stall.map(|(_, len)| len))
        .max()
        .unwrap_or(0);
    let pause = (duration_ms + stall_ms + 4000).to_string();
    let sipp = Sipp::start_args(&engine, "media_call.xml", Transport::Udp, &["-d", &pause]);
    let id = sipp.call_id.clone();
    let live = engine.wait_active(&id, "both streams answered with ports", |c| {
        participants(c).len() == 2 && local_port(c, "1").is_some() && local_port(c, "2").is_some()
    });
    let ports = [
        local_port(&live, "1").unwrap(),
        local_port(&live, "2").unwrap(),
    ];
    let pid = ["1", "2"].map(|l| s(&stream(&live, l).unwrap()["participant_id"]).to_owned());
    assert!(
        !pid[0].is_empty() && !pid[1].is_empty() && pid[0] != pid[1],
        "labels 1 and 2 must map to two participants: {}",
        pretty(&live)
    );

    let start_at = Instant::now() + Duration::from_millis(200);
    let senders: Vec<RtpSender> = ["a", "b"]
        .iter()
        .zip(ports)
        .zip(imp)
        .map(|((who, port), imp)| {
            let samples = rtp_send::read_wav_8k(&call_dir(name).join(format!("{who}.wav")));
            RtpSender::start(
                samples,
                ([127, 0, 0, 1], port).into(),
                truth_dtmf(&truth, who),
                imp,
                start_at,
            )
        })
        .collect();
    let mut it = senders.into_iter().map(RtpSender::finish);
    let reports = [it.next().unwrap(), it.next().unwrap()];
    sipp.expect_success(&engine);

    let call = engine.wait_call(&id, "the session stored as completed", |c| {
        s(&c["status"]) == "completed"
    });
    let offset_ms = wall_ms(reports[0].started_at.unwrap()) - rfc3339_ms(&call["start_time"]);
    eprintln!("[{name}] call {id} counters {}", call["counters"]);
    let talk = engine.get(&format!("/api/v1/calls/{}/talk-time", encode(&id)));
    assert_eq!(talk.status, 200, "GET talk-time: {}", talk.text);
    let events = engine.get(&format!("/api/v1/calls/{}/events", encode(&id)));
    assert_eq!(events.status, 200, "GET events: {}", events.text);
    Run {
        engine,
        id,
        truth,
        pid,
        reports,
        offset_ms,
        call,
        talk: talk.body,
        events: events.body,
    }
}

impl Run {
    pub fn speaker(&self, i: usize) -> &Value {
        self.talk["speakers"]
            .as_array()
            .and_then(|a| a.iter().find(|sp| s(&sp["id"]) == self.pid[i]))
            .unwrap_or_else(|| {
                panic!(
                    "no speaker {} in talk-time: {}",
                    self.pid[i],
                    pretty(&self.talk)
                )
            })
    }

    /// Events of the call (the /events endpoint), of one type.
    pub fn events_of(&self, ty: &str) -> Vec<&Value> {
        self.events["events"]
            .as_array()
            .unwrap_or_else(|| panic!("no events[]: {}", pretty(&self.events)))
            .iter()
            .filter(|e| s(&e["type"]) == ty)
            .collect()
    }

    /// Truth time (s, audio timeline) on the engine's call timeline (ms).
    pub fn at(&self, t_s: f64) -> f64 {
        self.offset_ms + t_s * 1000.0
    }

    pub fn call_duration_ms(&self) -> f64 {
        rfc3339_ms(&self.call["end_time"]) - rfc3339_ms(&self.call["start_time"])
    }

    pub fn print_speech(&self) {
        for (i, who) in ["a", "b"].iter().enumerate() {
            let st = stream(&self.call, &(i + 1).to_string()).unwrap();
            let measured: Vec<String> = st["speech"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    format!(
                        "{:.2}-{:.2}",
                        (f(&r["start_ms"]) - self.offset_ms) / 1000.0,
                        (f(&r["end_ms"]) - self.offset_ms) / 1000.0
                    )
                })
                .collect();
            let truth: Vec<String> = intervals(&self.truth["participants"][who]["speech"])
                .iter()
                .map(|(a, b)| format!("{a:.2}-{b:.2}"))
                .collect();
            eprintln!("  {who} speech truth    [{}]", truth.join(", "));
            eprintln!("  {who} speech measured [{}]", measured.join(", "));
        }
    }
}
