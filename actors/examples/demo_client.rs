//! The demo's other side (`scripts/demo`): while sipp holds a SIPREC
//! session open (the SBC's signalling), this plays the two participants'
//! audio as RTP to the ports Earshot answered with, and prints what Earshot
//! pushes over its WebSocket as it arrives: partials (rewritten in place)
//! and finals, then waits until the transcript is complete.
//!
//! cargo run --example demo_client -- --http 127.0.0.1:8123 \
//!     --call-id <Call-ID> --audio tests/audio/call-talk
//!
//! Loopback only. Uses the test suite's RTP sender (PCMU, 20 ms, real pace).

#[path = "../tests/common/rtp_send.rs"]
mod rtp_send;
#[path = "../tests/common/ws_client.rs"]
mod ws_client;

use clap::Parser;
use serde_json::Value;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// Earshot's REST/WebSocket address.
    #[arg(long, default_value = "127.0.0.1:8123")]
    http: SocketAddr,
    /// The SIPREC session's Call-ID (sipp's -cid_str).
    #[arg(long)]
    call_id: String,
    /// Directory with a.wav (label 1) and b.wav (label 2), 8 kHz mono.
    #[arg(long, default_value = "tests/audio/call-talk")]
    audio: PathBuf,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 180)]
    timeout: u64,
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(a.http.ip().is_loopback(), "loopback only");
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let base = format!("http://{}", a.http);
    let enc = ws_client::url_encode;

    // Listen first, so nothing is missed.
    // One socket for everything: /ws/events with the types the demo shows.
    let types = "call_started,transcript,call_ended,entity_detected,classification_changed,\
                 keyword_detected,sentiment_alert,hold_started,hold_ended,translation,\
                 analysis_completed";
    let url = format!(
        "ws://{}/ws/events?call_id={}&types={}",
        a.http,
        enc(&a.call_id),
        types
    );
    let mut ws = ws_client::connect_url(&url, Duration::from_millis(100))?;

    // The session's RTP ports, once sipp has set it up.
    let ports = loop {
        anyhow::ensure!(Instant::now() < deadline, "the call never became active");
        let live: Value = http
            .get(format!("{base}/api/v1/calls/active"))
            .send()?
            .json()?;
        let call = live
            .as_array()
            .and_then(|l| l.iter().find(|c| s(&c["call_id"]) == a.call_id).cloned());
        let port = |c: &Value, label: &str| {
            c["streams"].as_array().and_then(|st| {
                st.iter()
                    .find(|x| s(&x["label"]) == label)
                    .and_then(|x| x["local_port"].as_u64())
                    .filter(|p| *p > 0)
            })
        };
        if let Some(c) = call {
            if let (Some(p1), Some(p2)) = (port(&c, "1"), port(&c, "2")) {
                break [p1 as u16, p2 as u16];
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!(
        "demo: call {} is live; sending participant a to port {} and b to port {}",
        a.call_id, ports[0], ports[1]
    );
    println!(
        "demo: live transcript and analysis from the WebSocket (partials in grey, finals in bold, analysis in cyan):\n"
    );
    let start_at = Instant::now() + Duration::from_millis(100);
    let senders: Vec<rtp_send::RtpSender> = ["a", "b"]
        .iter()
        .zip(ports)
        .enumerate()
        .map(|(i, (who, port))| {
            let samples = rtp_send::read_wav_8k(&a.audio.join(format!("{who}.wav")));
            rtp_send::RtpSender::start(
                samples,
                ([127, 0, 0, 1], port).into(),
                vec![],
                rtp_send::Impairment::clean(i as u64 + 1),
                start_at,
            )
        })
        .collect();

    let t0 = Instant::now();
    let mut ended = false;
    let mut analysed = false;
    let mut partial_shown = false;
    let mut out = std::io::stdout();
    loop {
        anyhow::ensure!(Instant::now() < deadline, "timed out");
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(&t)?;
                let clock = t0.elapsed().as_secs_f64();
                match s(&v["type"]) {
                    "transcript" if v["is_final"] == Value::Bool(true) => {
                        if partial_shown {
                            write!(out, "\r\x1b[2K")?;
                        }
                        writeln!(
                            out,
                            "[{clock:6.1}s] \x1b[1m{}: {}\x1b[0m   ({:.1}-{:.1} s, confidence {:.2})",
                            s(&v["speaker"]),
                            s(&v["text"]),
                            v["start_time"].as_f64().unwrap_or(0.0),
                            v["end_time"].as_f64().unwrap_or(0.0),
                            v["confidence"].as_f64().unwrap_or(0.0)
                        )?;
                        partial_shown = false;
                    }
                    "transcript" => {
                        write!(
                            out,
                            "\r\x1b[2K[{clock:6.1}s] \x1b[2m{}: {} \x1b[0m\x1b[2;3m{}\x1b[0m",
                            s(&v["speaker"]),
                            s(&v["stable_text"]),
                            s(&v["unstable_text"])
                        )?;
                        partial_shown = true;
                    }
                    "call_started" => writeln!(out, "[{clock:6.1}s] call_started")?,
                    kind @ ("entity_detected"
                    | "classification_changed"
                    | "keyword_detected"
                    | "sentiment_alert"
                    | "hold_started"
                    | "hold_ended"
                    | "translation"
                    | "analysis_completed") => {
                        if partial_shown {
                            write!(out, "\r\x1b[2K")?;
                            partial_shown = false;
                        }
                        let what = match kind {
                            "entity_detected" => format!(
                                "{} {:?}{}",
                                s(&v["label"]),
                                s(&v["text"]),
                                v["normalized"]
                                    .as_str()
                                    .filter(|n| *n != s(&v["text"]))
                                    .map(|n| format!(" = {n}"))
                                    .unwrap_or_default()
                            ),
                            "classification_changed" => format!(
                                "{} / {} (priority {}, intervention {}, confidence {:.2})",
                                s(&v["main_category"]),
                                s(&v["sub_category"]),
                                s(&v["priority"]),
                                v["intervention"].as_str().unwrap_or("-"),
                                v["confidence"].as_f64().unwrap_or(0.0)
                            ),
                            "keyword_detected" => {
                                format!(
                                    "{}: {:?} by {}",
                                    s(&v["list"]),
                                    s(&v["phrase"]),
                                    s(&v["speaker"])
                                )
                            }
                            "sentiment_alert" => format!(
                                "{} negative {} times in a row",
                                s(&v["speaker"]),
                                v["streak"]
                            ),
                            "hold_started" | "hold_ended" => s(&v["speaker"]).to_string(),
                            "translation" => s(&v["window"]["translation"]).to_string(),
                            _ => {
                                analysed = true;
                                format!(
                                    "QA {} ({}), summary: {}",
                                    v["analysis"]["qa_score"],
                                    s(&v["analysis"]["qa_grade"]),
                                    s(&v["analysis"]["summary"])
                                )
                            }
                        };
                        writeln!(out, "[{clock:6.1}s] \x1b[36m{kind}: {what}\x1b[0m")?;
                    }
                    "call_ended" => {
                        if partial_shown {
                            writeln!(out)?;
                            partial_shown = false;
                        }
                        writeln!(
                            out,
                            "[{clock:6.1}s] call_ended ({}, {} finals still being decoded)",
                            s(&v["reason"]),
                            v["pending_finals"]
                        )?;
                        ended = true;
                    }
                    _ => {}
                }
                out.flush()?;
            }
            Ok(_) => {}
            Err(e) if ws_client::is_timeout(&e) => {}
            Err(e) => anyhow::bail!("WebSocket: {e}"),
        }
        if ended {
            let t: Value = http
                .get(format!(
                    "{base}/api/v1/calls/{}/transcript",
                    enc(&a.call_id)
                ))
                .send()?
                .json()?;
            let p: Value = http
                .get(format!(
                    "{base}/api/v1/calls/{}/processing",
                    enc(&a.call_id)
                ))
                .send()?
                .json()?;
            let analysis_off = p["pipeline_config"]["analysis"] == Value::Bool(false);
            if s(&t["transcription_status"]) == "complete" && (analysed || analysis_off) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for snd in senders {
        snd.finish();
    }
    println!("\ndemo: transcript and post-call analysis complete");
    Ok(())
}
