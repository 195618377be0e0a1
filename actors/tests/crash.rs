//! Crash safety: a sipp-forked two-party call of real speech (ASR and
//! analysis on) is killed with SIGKILL at a chosen moment (mid-INVITE,
//! mid-RTP with finals being decoded, right after the BYE while the call
//! is persisted and the post-call pipeline runs, ...), the engine is
//! restarted on the same data directory, and then:
//!
//! * it starts without a panic and is ready;
//! * no session is left `active`; every session reads back (record,
//!   segments, export), an interrupted one too;
//! * every session that had ended before the crash is unchanged;
//! * every WAV under the recordings directory reads whole, and its header
//!   matches its length (repaired at start-up);
//! * a late BYE and a re-INVITE for the interrupted call get 481 (the
//!   engine does not re-attach a dialog it lost in the crash: ARCHITECTURE.md);
//! * every final pushed on `/ws/transcriptions` before the kill is among
//!   the call's stored segments, unless it was pushed within the last
//!   moments ([`LOSS_BOUND`]); each round prints how many finals were pushed
//!   and how long before the kill each lost one was, which measures the
//!   journal's loss window.
//!
//! `crash_rounds_short` (CI) runs 3 rounds at fixed moments;
//! `scripts/crash-test ROUNDS` runs `crash_rounds` (ignored here) with
//! random moments and prints the rounds passed.

mod common;
use common::rtp_send::{self, Impairment, RtpSender};
use common::two_party;
use common::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Seconds of the helpline call's audio each round sends.
const AUDIO_S: u64 = 12;

/// A final pushed this long before the kill must have survived it: the
/// call journals results at its next 1 s tick and sled makes them durable
/// within 200 ms, so anything older than this lost is a bug, not timing
/// (the measured ages are printed; scripts/crash-test sums them up).
const LOSS_BOUND: Duration = Duration::from_secs(5);

/// The finals pushed on the WebSocket before the kill, by whether the
/// restarted engine has them: the age at the kill of each.
struct Loss {
    kept_ages: Vec<Duration>,
    lost_ages: Vec<Duration>,
}

/// When a round kills the engine.
#[derive(Clone, Copy)]
enum Kill {
    /// This long after sipp started.
    At(Duration),
    /// `.0` after the call's first final is pushed (or at the end of the
    /// audio if none is), the audio starting `.1` after the call is up
    /// (which moves the finals against the call's journal tick).
    AfterFirstFinal(Duration, Duration),
}

/// What a terminal session looked like (must not change after a crash).
fn fingerprint(c: &Value) -> String {
    format!(
        "{} | {} | {} | {} | {}",
        c["status"], c["end_reason"], c["end_time"], c["segment_count"], c["cumulative_transcript"]
    )
}

fn sessions(engine: &Engine) -> Vec<Value> {
    let r = engine.get("/api/v1/calls?page_size=500");
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

fn late_requests_get_481(engine: &Engine, call_id: &str) {
    let target = engine.sip_addr();
    let bye = format!(
        "BYE sip:srs@{target} SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-late-bye\r\n\
         From: <sip:src@127.0.0.1>;tag=src-late\r\nTo: <sip:srs@{target}>;tag=srs-late\r\n\
         Call-ID: {call_id}\r\nCSeq: 9 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    let line = sip_final(engine, &bye);
    assert!(line.starts_with("SIP/2.0 481"), "late BYE: {line}");
    let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n";
    let reinvite = format!(
        "INVITE sip:srs@{target} SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-late-inv\r\n\
         From: <sip:src@127.0.0.1>;tag=src-late\r\nTo: <sip:srs@{target}>;tag=srs-late\r\n\
         Call-ID: {call_id}\r\nCSeq: 10 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:src@LOCAL>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let line = sip_final(engine, &reinvite);
    assert!(line.starts_with("SIP/2.0 481"), "re-INVITE: {line}");
}

/// Every WAV under `dir` reads whole and its header matches its length.
fn check_wavs(dir: &Path) -> usize {
    let mut n = 0;
    let Ok(calls) = std::fs::read_dir(dir) else {
        return 0;
    };
    for call in calls.flatten() {
        for f in std::fs::read_dir(call.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = f.path();
            if p.extension().is_none_or(|x| x != "wav") {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            let fix = earshot::wav::header_fix(&bytes, bytes.len() as u64)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert!(
                !fix.changed,
                "{}: header does not match the file",
                p.display()
            );
            let mut r =
                hound::WavReader::open(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let want = r.len() as usize;
            let got = r
                .samples::<i16>()
                .inspect(|s| assert!(s.is_ok(), "{}", p.display()))
                .count();
            assert_eq!(got, want, "{}", p.display());
            n += 1;
        }
    }
    n
}

/// One round: start a call, kill the engine when `kill` says, restart,
/// check. Returns a one-line summary and what the kill lost.
fn round(
    engine: &mut Engine,
    n: usize,
    kill: Kill,
    before: &mut BTreeMap<String, String>,
) -> (String, Loss) {
    two_party::require_calls();
    let pause = ((AUDIO_S + 2) * 1000).to_string();
    let sipp = Sipp::start_args(engine, "media_call.xml", Transport::Udp, &["-d", &pause]);
    let t0 = Instant::now();
    let id = sipp.call_id.clone();
    // RTP to the answered ports, if the call gets that far before the kill,
    // and a WebSocket client taking the call's finals as they are pushed.
    let mut senders = vec![];
    let mut pushes = None;
    let deadline = t0
        + match kill {
            Kill::At(d) => d,
            Kill::AfterFirstFinal(..) => Duration::from_secs(5),
        };
    while Instant::now() < deadline {
        if let Some(c) = engine.active_call(&id) {
            let ports = ["1", "2"].map(|l| two_party::local_port(&c, l));
            if let [Some(a), Some(b)] = ports {
                if let Kill::AfterFirstFinal(_, delay) = kill {
                    std::thread::sleep(delay);
                }
                for (who, port) in [("a", a), ("b", b)] {
                    let mut samples = rtp_send::read_wav_8k(
                        &two_party::call_dir("helpline").join(format!("{who}.wav")),
                    );
                    samples.truncate((AUDIO_S * 8000) as usize);
                    senders.push(RtpSender::start(
                        samples,
                        ([127, 0, 0, 1], port).into(),
                        vec![],
                        Impairment::clean(n as u64 + 1),
                        Instant::now(),
                    ));
                }
                let query = format!("?call_id={}", ws_client::url_encode(&id));
                pushes = Some(ws_client::Recorder::start(ws_client::connect(
                    engine.http_port,
                    &query,
                )));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    match (kill, &pushes) {
        (Kill::AfterFirstFinal(d, _), Some(p)) => {
            let give_up = t0 + Duration::from_secs(AUDIO_S + 2);
            while Instant::now() < give_up && !p.frames().iter().any(|(_, v)| is_final(v)) {
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(d);
        }
        _ => {
            if let Some(left) = deadline.checked_duration_since(Instant::now()) {
                std::thread::sleep(left);
            }
        }
    }
    let kill_at = t0.elapsed();
    let state = engine
        .active_call(&id)
        .map(|c| format!("live ({} segments)", c["segment_count"]))
        .unwrap_or_else(|| "not live".into());
    let killed = Instant::now();
    engine.kill();
    let finals: Vec<(Instant, u64)> = pushes
        .map(|p| p.stop())
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| is_final(v))
        .filter_map(|(at, v)| Some((at, v["segment_id"].as_u64()?)))
        .collect();
    drop(sipp);
    drop(senders); // the rest of the audio goes nowhere
    engine.restart();

    // No panic in any start so far.
    let log = engine.log();
    assert!(!log.contains("panicked"), "a panic in the log:\n{log}");
    let all = sessions(engine);
    for c in &all {
        let cid = c["call_id"].as_str().unwrap_or_default().to_string();
        let status = c["status"].as_str().unwrap_or_default();
        assert_ne!(status, "active", "{cid} still active after restart");
        for path in ["", "/segments", "/export?format=json", "/talk-time"] {
            let r = engine.get(&format!("/api/v1/calls/{}{path}", encode(&cid)));
            assert_eq!(r.status, 200, "{cid}{path}: {}", r.text);
        }
        if let Some(old) = before.get(&cid) {
            assert_eq!(&fingerprint(c), old, "{cid} changed across the crash");
        }
    }
    let this = all
        .iter()
        .find(|c| c["call_id"] == id.as_str())
        .map(|c| c["status"].as_str().unwrap_or_default().to_string());
    if this.as_deref() == Some("interrupted") {
        let r = engine.get(&format!(
            "/api/v1/calls/{}/recording?leg=stereo",
            encode(&id)
        ));
        assert!(
            r.status == 200 || r.status == 404,
            "recording: {} {}",
            r.status,
            r.text
        );
        late_requests_get_481(engine, &id);
    }
    // Results pushed before the kill and not kept: only the last moments.
    let stored: Vec<u64> = match this {
        Some(_) => {
            let r = engine.get(&format!("/api/v1/calls/{}/segments", encode(&id)));
            assert_eq!(r.status, 200, "segments: {}", r.text);
            let segs = r.body.as_array().cloned().unwrap_or_default();
            segs.iter()
                .filter_map(|g| g["segment_id"].as_u64())
                .collect()
        }
        None => vec![],
    };
    let (kept, lost): (Vec<_>, Vec<_>) = finals.iter().partition(|(_, seg)| stored.contains(seg));
    let age = |f: &&(Instant, u64)| killed.saturating_duration_since(f.0);
    let loss = Loss {
        kept_ages: kept.iter().map(age).collect(),
        lost_ages: lost.iter().map(age).collect(),
    };
    for age in &loss.lost_ages {
        assert!(
            *age < LOSS_BOUND,
            "round {n}: a final pushed {:.2} s before the kill was lost",
            age.as_secs_f64()
        );
    }
    let wavs = check_wavs(&engine.data_dir.join("recordings"));
    before.clear();
    for c in &all {
        before.insert(
            c["call_id"].as_str().unwrap_or_default().to_string(),
            fingerprint(c),
        );
    }
    let ages: Vec<String> = loss.lost_ages.iter().map(|a| secs(Some(a))).collect();
    let line = format!(
        "round {n}: killed at {:.2} s ({state}); after restart: this call {}, {} sessions, {wavs} WAVs readable; finals pushed {}, lost {} [{}]",
        kill_at.as_secs_f64(),
        this.as_deref().unwrap_or("never stored"),
        all.len(),
        loss.kept_ages.len() + loss.lost_ages.len(),
        loss.lost_ages.len(),
        ages.join(", ")
    );
    (line, loss)
}

/// A duration in seconds, or "-".
fn secs(d: Option<&Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()))
}

fn is_final(v: &Value) -> bool {
    v["type"] == "transcript" && v["is_final"] == true
}

fn engine() -> Engine {
    Engine::start_with(EngineOpts {
        asr: true,
        answer_delay_ms: Some(400),
        ..EngineOpts::default()
    })
}

#[test]
fn crash_rounds_short() {
    let mut e = engine();
    let mut before = BTreeMap::new();
    // Mid-INVITE (answer delayed 400 ms), mid-RTP with finals in flight,
    // and right after the BYE (persisting, post-call pipeline).
    for (n, at) in [0.2, 7.0, AUDIO_S as f64 + 2.6].into_iter().enumerate() {
        let kill = Kill::At(Duration::from_secs_f64(at));
        let (line, _) = round(&mut e, n + 1, kill, &mut before);
        eprintln!("{line}");
    }
}

/// `CRASH_ROUNDS` rounds (default 20) at random moments from 0 to the
/// call's end + 3 s (`CRASH_SEED` picks them); prints each round and the
/// count passed. Run by `scripts/crash-test`.
#[test]
#[ignore]
fn crash_rounds() {
    let rounds: usize = env_or("CRASH_ROUNDS", 20);
    let mut seed: u64 = env_or("CRASH_SEED", 0x5eed_cafe);
    eprintln!("crash-test: {rounds} rounds, seed {seed}");
    let mut e = engine();
    let mut before = BTreeMap::new();
    let span = (AUDIO_S + 5) as f64;
    let mut passed = 0;
    let (mut pushed, mut lost_ages) = (0, vec![]);
    for n in 1..=rounds {
        // xorshift64*
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let r = (seed.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
        let kill = Kill::At(Duration::from_secs_f64(r * span));
        let (line, loss) = round(&mut e, n, kill, &mut before);
        passed += 1;
        pushed += loss.kept_ages.len() + loss.lost_ages.len();
        lost_ages.extend(loss.lost_ages);
        eprintln!("{line}");
    }
    eprintln!(
        "crash-test: finals pushed before a kill {pushed}, lost {}, the oldest lost pushed {} before its kill",
        lost_ages.len(),
        secs(lost_ages.iter().max())
    );
    eprintln!("crash-test: {passed}/{rounds} rounds passed");
}

/// The journal's loss window, measured: `LOSS_ROUNDS` rounds (default 21),
/// each killing the engine d after the call's first final was pushed, d
/// from 0 to 2 s in even steps, the audio starting 0 to 1 s late (spread
/// by the golden ratio) so that the finals fall at different moments of
/// the call's 1 s journal tick, with every check of a crash round. Prints
/// per round whether that final survived, and the longest a lost final had
/// been pushed before its kill against the shortest a kept one had. Run by
/// `scripts/crash-test --loss-window`.
#[test]
#[ignore]
fn loss_window() {
    let rounds = env_or::<usize>("LOSS_ROUNDS", 21).max(2);
    let mut e = engine();
    let mut before = BTreeMap::new();
    let (mut kept, mut lost) = (vec![], vec![]);
    for n in 1..=rounds {
        let d = Duration::from_secs_f64(2.0 * (n - 1) as f64 / (rounds - 1) as f64);
        let delay = Duration::from_secs_f64((n as f64 * 0.618_034).fract());
        let (line, loss) = round(&mut e, n, Kill::AfterFirstFinal(d, delay), &mut before);
        eprintln!("{line}");
        kept.extend(loss.kept_ages);
        lost.extend(loss.lost_ages);
    }
    eprintln!(
        "loss-window: {} finals kept, {} lost; oldest lost pushed {} before the kill, newest kept {}",
        kept.len(),
        lost.len(),
        secs(lost.iter().max()),
        secs(kept.iter().min())
    );
}
