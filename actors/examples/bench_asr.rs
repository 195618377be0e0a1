//! ASR benchmark client (`scripts/bench-asr` drives it; sipp opens the
//! SIPREC sessions). For every call that becomes active it plays the
//! two-party test call (`tests/audio/call-<name>/{a,b}.wav`, real Asterisk
//! prompts at known times, `truth.json`) as real-pace PCMU RTP to the
//! answered ports, listens on `/ws/transcriptions`, and when every call's
//! transcript is complete prints figures as one JSON object:
//!
//! * WER over all finals against the placed prompts' texts;
//! * end-of-speech → final latency: arrival of the final (at this WebSocket
//!   client) minus the instant the prompt's last voiced sample was sent;
//!   p50/p95/max over every prompt;
//! * partial cadence (median interval between partials of an utterance);
//! * recogniser queue depth (max/mean of `/status` samples), lagging finals;
//! * engine CPU % (from /proc, `--pid`).
//!
//! cargo run --release --example bench_asr -- --http 127.0.0.1:8123 --calls 4 --pid <engine pid>

#[path = "../tests/common/rtp_send.rs"]
mod rtp_send;
#[path = "../tests/common/ws_client.rs"]
mod ws_client;

use clap::Parser;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8123")]
    http: SocketAddr,
    /// Calls to wait for.
    #[arg(long)]
    calls: usize,
    #[arg(long, default_value = "tests/audio/call-talk")]
    audio: PathBuf,
    /// Engine process id (for CPU %).
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

use ws_client::url_encode as enc;

fn cpu_ticks(pid: u32) -> Option<u64> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &st[st.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

struct Turn {
    who: String,
    text: String,
    start: f64,
    end: f64,
}

struct CallRun {
    /// Audio sample 0 left at this instant / wall time.
    start_at: Instant,
    start_wall: SystemTime,
    senders: Vec<rtp_send::RtpSender>,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(a.http.ip().is_loopback(), "loopback only");
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let base = format!("http://{}", a.http);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(a.audio.join("truth.json"))?)?;
    let turns: Vec<Turn> = truth["turns"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| Turn {
            who: s(&t["participant"]).to_string(),
            text: s(&t["text"]).to_string(),
            start: t["start_s"].as_f64().unwrap_or(0.0),
            end: t["end_s"].as_f64().unwrap_or(0.0),
        })
        .collect();
    let wavs = ["a", "b"].map(|w| rtp_send::read_wav_8k(&a.audio.join(format!("{w}.wav"))));

    // WebSocket recorder.
    let rec = ws_client::Recorder::start(ws_client::connect_url(
        &format!("ws://{}/ws/transcriptions", a.http),
        Duration::from_millis(50),
    )?);

    // Start senders for calls as they come up; sample /status meanwhile.
    let mut calls: HashMap<String, CallRun> = HashMap::new();
    let mut queue_samples: Vec<(usize, usize)> = vec![];
    let mut last_status = Instant::now() - Duration::from_secs(1);
    let mut cpu0: Option<(Instant, u64)> = None;
    let mut cpu_pct = f64::NAN;
    let mut seed = 1u64;
    loop {
        anyhow::ensure!(Instant::now() < deadline, "timed out waiting for calls");
        let live: Value = http
            .get(format!("{base}/api/v1/calls/active"))
            .send()?
            .json()?;
        for c in live.as_array().into_iter().flatten() {
            let id = s(&c["call_id"]).to_string();
            if calls.contains_key(&id) {
                continue;
            }
            let port = |label: &str| {
                c["streams"].as_array().and_then(|st| {
                    st.iter()
                        .find(|x| s(&x["label"]) == label)
                        .and_then(|x| x["local_port"].as_u64())
                        .filter(|p| *p > 0)
                })
            };
            let (Some(p1), Some(p2)) = (port("1"), port("2")) else {
                continue;
            };
            let start_at = Instant::now() + Duration::from_millis(30);
            let start_wall = SystemTime::now() + Duration::from_millis(30);
            let senders = [p1, p2]
                .iter()
                .zip(&wavs)
                .map(|(p, w)| {
                    seed += 1;
                    rtp_send::RtpSender::start(
                        w.clone(),
                        ([127, 0, 0, 1], *p as u16).into(),
                        vec![],
                        rtp_send::Impairment::clean(seed),
                        start_at,
                    )
                })
                .collect();
            calls.insert(
                id,
                CallRun {
                    start_at,
                    start_wall,
                    senders,
                },
            );
            if calls.len() == a.calls {
                if let Some(pid) = a.pid {
                    cpu0 = cpu_ticks(pid).map(|t| (Instant::now(), t));
                }
            }
        }
        if last_status.elapsed() > Duration::from_millis(500) {
            last_status = Instant::now();
            if let Ok(st) = http
                .get(format!("{base}/status"))
                .send()
                .and_then(|r| r.json::<Value>())
            {
                queue_samples.push((
                    st["asr"]["queued_finals"].as_u64().unwrap_or(0) as usize,
                    st["asr"]["queued_partials"].as_u64().unwrap_or(0) as usize,
                ));
            }
        }
        // All calls started and their audio sent?
        if calls.len() >= a.calls
            && calls
                .values()
                .all(|c| c.start_at.elapsed().as_secs_f64() > wavs[0].len() as f64 / 8000.0)
        {
            if let (Some(pid), Some((t0, c0))) = (a.pid, cpu0) {
                if let Some(c1) = cpu_ticks(pid) {
                    let hz = 100.0; // USER_HZ on Linux
                    cpu_pct = (c1 - c0) as f64 / hz / t0.elapsed().as_secs_f64() * 100.0;
                }
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for c in calls.values_mut() {
        for snd in c.senders.drain(..) {
            snd.finish();
        }
    }
    // Every transcript complete.
    let mut done: HashSet<String> = HashSet::new();
    let mut call_start: HashMap<String, f64> = HashMap::new();
    while done.len() < calls.len() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out waiting for transcripts"
        );
        for id in calls.keys() {
            if done.contains(id) {
                continue;
            }
            let t: Value = http
                .get(format!("{base}/api/v1/calls/{}/transcript", enc(id)))
                .send()?
                .json()?;
            if s(&t["transcription_status"]) == "complete" {
                let c: Value = http
                    .get(format!("{base}/api/v1/calls/{}", enc(id)))
                    .send()?
                    .json()?;
                let st = chrono::DateTime::parse_from_rfc3339(s(&c["start_time"]))?;
                call_start.insert(
                    id.clone(),
                    st.timestamp_nanos_opt().unwrap_or(0) as f64 / 1e9,
                );
                done.insert(id.clone());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(300));
    let frames = rec.stop();

    // Figures.
    let (mut errors, mut words) = (0usize, 0usize);
    let mut latencies: Vec<f64> = vec![];
    let mut cadence: Vec<f64> = vec![];
    let mut lagging = 0usize;
    let mut finals_n = 0usize;
    let mut partials_n = 0usize;
    let mut missing = 0usize;
    for (id, c) in &calls {
        let offset = c
            .start_wall
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_secs_f64()
            - call_start[id];
        let mine: Vec<&(Instant, Value)> = frames
            .iter()
            .filter(|(_, v)| s(&v["call_id"]) == id)
            .collect();
        let finals: Vec<&(Instant, Value)> = mine
            .iter()
            .copied()
            .filter(|(_, v)| v["is_final"] == Value::Bool(true))
            .collect();
        finals_n += finals.len();
        lagging += finals
            .iter()
            .filter(|(_, v)| v["lagging"] == Value::Bool(true))
            .count();
        // Partial cadence per utterance.
        let mut by_utt: HashMap<(String, u64), Vec<Instant>> = HashMap::new();
        for (t, v) in mine.iter().copied() {
            if s(&v["type"]) == "transcript" && v["is_final"] == Value::Bool(false) {
                partials_n += 1;
                by_utt
                    .entry((
                        s(&v["stream_label"]).to_string(),
                        v["utterance_id"].as_u64().unwrap_or(0),
                    ))
                    .or_default()
                    .push(*t);
            }
        }
        for ts in by_utt.values() {
            for w in ts.windows(2) {
                cadence.push((w[1] - w[0]).as_secs_f64());
            }
        }
        for who in ["a", "b"] {
            let label = if who == "a" { "1" } else { "2" };
            let mut mine_f: Vec<&(Instant, Value)> = finals
                .iter()
                .copied()
                .filter(|(_, v)| s(&v["stream_label"]) == label)
                .collect();
            mine_f.sort_by(|x, y| {
                x.1["start_time"]
                    .as_f64()
                    .unwrap_or(0.0)
                    .total_cmp(&y.1["start_time"].as_f64().unwrap_or(0.0))
            });
            let hyp = mine_f
                .iter()
                .map(|(_, v)| s(&v["text"]).to_string())
                .collect::<Vec<_>>()
                .join(" ");
            let reference = turns
                .iter()
                .filter(|t| t.who == who)
                .map(|t| t.text.clone())
                .collect::<Vec<_>>()
                .join(" ");
            let (e, n) = earshot::asr::wer::errors(&reference, &hyp);
            errors += e;
            words += n;
            // Latency per turn: the last final overlapping it.
            for t in turns.iter().filter(|t| t.who == who) {
                let (ts, te) = (t.start + offset, t.end + offset);
                let covering = mine_f.iter().filter(|(_, v)| {
                    let (a0, a1) = (
                        v["start_time"].as_f64().unwrap_or(0.0),
                        v["end_time"].as_f64().unwrap_or(0.0),
                    );
                    a0 < te + 0.5 && a1 > ts - 0.5
                });
                match covering.map(|(at, _)| *at).max() {
                    Some(at) => {
                        let spoken_end = c.start_at + Duration::from_secs_f64(t.end);
                        let lat = if at >= spoken_end {
                            (at - spoken_end).as_secs_f64()
                        } else {
                            -(spoken_end - at).as_secs_f64()
                        };
                        latencies.push(lat);
                    }
                    None => missing += 1,
                }
            }
        }
    }
    let nq = queue_samples.len().max(1) as f64;
    let out = json!({
        "calls": calls.len(),
        "wer": errors as f64 / words.max(1) as f64,
        "words": words,
        "finals": finals_n,
        "partials": partials_n,
        "turns_without_final": missing,
        "latency_p50_s": pct(&mut latencies.clone(), 0.5),
        "latency_p95_s": pct(&mut latencies.clone(), 0.95),
        "latency_max_s": latencies.iter().cloned().fold(f64::NAN, f64::max),
        "partial_interval_median_s": pct(&mut cadence, 0.5),
        "queued_finals_max": queue_samples.iter().map(|q| q.0).max().unwrap_or(0),
        "queued_finals_mean": queue_samples.iter().map(|q| q.0).sum::<usize>() as f64 / nq,
        "queued_partials_max": queue_samples.iter().map(|q| q.1).max().unwrap_or(0),
        "lagging_finals": lagging,
        "engine_cpu_pct": cpu_pct,
    });
    println!("{out}");
    Ok(())
}
