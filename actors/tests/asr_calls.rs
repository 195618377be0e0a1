//! End-to-end streaming ASR: the real `earshot` binary with the real
//! whisper.cpp model (tiny.en q8_0 from `scripts/fetch-model`) transcribes
//! a sipp-forked two-party call of Asterisk prompts whose words and timings
//! are known (`scripts/make-call`), live; a WebSocket client receives the
//! partials and finals as they come; the finals are checked against the
//! truth per participant, read over REST, and again after a restart (from
//! sled).
//!
//! Figures are printed with `eprintln!`: run with `--nocapture`.

mod common;

use common::rtp_send::Impairment;
use common::two_party::*;
use common::ws_client::{self, Recorder};
use common::*;
use earshot::asr::wer;
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;

/// The WebSocket saw call_started, partials before each final, every final
/// (the same as REST), and call_ended, in that order.
fn check_pushes(frames: &[(std::time::Instant, Value)], run: &Run, t: &Value) {
    let mine: Vec<&Value> = frames
        .iter()
        .map(|(_, v)| v)
        .filter(|v| s(&v["call_id"]) == run.id)
        .collect();
    let kinds: Vec<String> = mine
        .iter()
        .map(|v| match (s(&v["type"]), v["is_final"].as_bool()) {
            ("transcript", Some(true)) => "final".to_string(),
            ("transcript", _) => "partial".to_string(),
            (other, _) => other.to_string(),
        })
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("call_started"),
        "{kinds:?}"
    );
    let finals: Vec<&&Value> = mine
        .iter()
        .filter(|v| v["is_final"] == Value::Bool(true))
        .collect();
    let partials: Vec<&&Value> = mine
        .iter()
        .filter(|v| s(&v["type"]) == "transcript" && v["is_final"] == Value::Bool(false))
        .collect();
    eprintln!(
        "WebSocket: {} partials, {} finals",
        partials.len(),
        finals.len()
    );
    assert!(!partials.is_empty(), "no partials pushed: {kinds:?}");
    // Every final pushed is a stored segment (same id and text).
    let stored: HashMap<u64, String> = t["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["segment_id"].as_u64().unwrap(), s(&g["text"]).to_string()))
        .collect();
    assert_eq!(finals.len(), stored.len(), "finals pushed vs stored");
    for f in &finals {
        let id = f["segment_id"].as_u64().expect("segment_id");
        assert_eq!(stored.get(&id).map(String::as_str), Some(s(&f["text"])));
        for k in [
            "participant_id",
            "speaker",
            "start_time",
            "end_time",
            "confidence",
            "timestamp",
        ] {
            assert!(!f[k].is_null(), "final lacks {k}: {f}");
        }
    }
    // Partials of an utterance come before its final, never after.
    let pos = |pred: &dyn Fn(&Value) -> bool| mine.iter().position(|v| pred(v));
    let mut with_partials = 0;
    for f in &finals {
        let (label, utt) = (s(&f["stream_label"]), f["utterance_id"].as_u64());
        let final_at = pos(&|v| v == **f).unwrap();
        let after = mine[final_at..].iter().any(|v| {
            v["is_final"] == Value::Bool(false)
                && s(&v["stream_label"]) == label
                && v["utterance_id"].as_u64() == utt
        });
        assert!(!after, "a partial of utterance {utt:?} after its final");
        if mine[..final_at].iter().any(|v| {
            v["is_final"] == Value::Bool(false)
                && s(&v["stream_label"]) == label
                && v["utterance_id"].as_u64() == utt
        }) {
            with_partials += 1;
        }
    }
    eprintln!(
        "{with_partials} of {} finals had partials first",
        finals.len()
    );
    assert!(
        with_partials * 2 >= finals.len(),
        "most utterances (2-4 s) get partials"
    );
    let ended = kinds
        .iter()
        .position(|k| k == "call_ended")
        .expect("call_ended pushed");
    assert!(ended > kinds.iter().position(|k| k == "call_started").unwrap());
}

#[test]
fn live_call_is_transcribed_per_participant() {
    let engine = Engine::start_with(EngineOpts {
        asr: true,
        ..EngineOpts::default()
    });
    // A client for every call, and one that speaks nonsense first.
    let ws = ws_client::connect(engine.http_port, "");
    let mut bad = ws_client::connect(engine.http_port, "?call_id=nobody");
    let hello = ws_client::next_json(&mut bad, Duration::from_secs(5)).expect("a hello");
    assert_eq!(s(&hello["type"]), "connected");
    bad.send(tungstenite::Message::Text("{not json".into()))
        .unwrap();
    let err = ws_client::next_json(&mut bad, Duration::from_secs(5)).expect("an error frame");
    assert_eq!(s(&err["type"]), "error", "{err}");
    assert!(s(&err["message"]).contains("invalid JSON"), "{err}");
    bad.send(tungstenite::Message::Text(r#"{"type":"ping"}"#.into()))
        .unwrap();
    let pong = ws_client::next_json(&mut bad, Duration::from_secs(5)).expect("a pong");
    assert_eq!(s(&pong["type"]), "pong");
    let rec = Recorder::start(ws);
    let other = Recorder::start(bad);

    let run = record_on(engine, "talk", [Impairment::clean(1), Impairment::clean(2)]);
    let t = final_transcript(&run.engine, &run.id);
    let frames = rec.stop();
    check_pushes(&frames, &run, &t);
    // The filtered client (kept alive by its pongs) saw nothing of this call.
    let got = other.stop();
    assert!(
        got.iter().all(|(_, v)| s(&v["call_id"]) != run.id),
        "a client filtered to another call got {got:?}"
    );
    let segs = t["segments"].as_array().expect("segments[]").clone();
    eprintln!("transcript:\n{}", s(&t["cumulative_transcript"]));
    assert!(!segs.is_empty(), "no segments: {}", pretty(&t));
    assert_eq!(t["segment_count"].as_u64(), Some(segs.len() as u64));
    assert_eq!(s(&t["language"]), "en");

    for (i, who) in ["a", "b"].iter().enumerate() {
        let label = (i + 1).to_string();
        let mine: Vec<&Value> = segs
            .iter()
            .filter(|g| s(&g["stream_label"]) == label)
            .collect();
        let hyp = hypothesis(&t, &label);
        let reference = truth_text(&run.truth, who);
        let (errors, n) = wer::errors(&reference, &hyp);
        let w = errors as f64 / n as f64;
        eprintln!(
            "[{who}] WER {:.1} % ({errors}/{n})\n  ref: {reference}\n  hyp: {hyp}",
            w * 100.0
        );
        assert!(w <= 0.15, "[{who}] WER {:.1} % over 15 %", w * 100.0);
        // Every final lies in this participant's speech (call timeline vs
        // the truth placed on it), and carries who spoke.
        let speech = intervals(&run.truth["participants"][who]["speech"]);
        for g in &mine {
            assert_eq!(s(&g["participant_id"]), run.pid[i], "{}", pretty(g));
            assert_eq!(g["is_final"], Value::Bool(true));
            let (a, b) = (
                (f(&g["start_time"]) * 1000.0 - run.offset_ms) / 1000.0,
                (f(&g["end_time"]) * 1000.0 - run.offset_ms) / 1000.0,
            );
            let inside = speech
                .iter()
                .any(|(s0, s1)| a >= s0 - 1.0 && b <= s1 + 1.0 && a <= b);
            assert!(
                inside,
                "[{who}] segment {a:.2}-{b:.2} s is not within its speech {speech:?}: {}",
                pretty(g)
            );
            let c = f(&g["confidence"]);
            assert!((0.0..=1.0).contains(&c) && c > 0.3, "confidence {c}");
            assert!(g["words"].as_array().is_some_and(|w| !w.is_empty()));
        }
    }

    // /segments: the same finals, in time order, Call Sessions API fields.
    let r = run
        .engine
        .get(&format!("/api/v1/calls/{}/segments", encode(&run.id)));
    assert_eq!(r.status, 200);
    let list = r.body.as_array().expect("a JSON array").clone();
    assert_eq!(list.len(), segs.len());
    for w in list.windows(2) {
        assert!(f(&w[0]["start_time"]) <= f(&w[1]["start_time"]));
    }
    for k in [
        "segment_id",
        "text",
        "start_time",
        "end_time",
        "duration",
        "confidence",
        "speaker",
    ] {
        assert!(list[0].get(k).is_some(), "segment lacks {k}");
    }
    // Without include_segments: no segments, same text; bad values → 422.
    let r = run
        .engine
        .get(&format!("/api/v1/calls/{}/transcript", encode(&run.id)));
    assert!(r.body.get("segments").is_none());
    assert_eq!(r.body["cumulative_transcript"], t["cumulative_transcript"]);
    let r = run.engine.get(&format!(
        "/api/v1/calls/{}/transcript?include_segments=maybe",
        encode(&run.id)
    ));
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.body["detail"][0]["loc"].is_array());
    let r = run.engine.get("/api/v1/calls/no-such-call/transcript");
    assert_eq!(r.status, 404);
    assert!(r.body["detail"].is_string());

    // talk-time now counts words.
    let talk = run
        .engine
        .get(&format!("/api/v1/calls/{}/talk-time", encode(&run.id)));
    let wpm = &talk.body["speakers"][0]["metrics"]["wordsPerMinute"];
    assert!(
        wpm.as_f64().is_some_and(|v| v > 0.0),
        "{}",
        pretty(&talk.body)
    );

    // After a restart the transcript comes from sled, unchanged.
    let mut engine = run.engine;
    engine.restart();
    let r = engine.get(&format!(
        "/api/v1/calls/{}/transcript?include_segments=true",
        encode(&run.id)
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.body["segments"], t["segments"]);
    assert_eq!(r.body["cumulative_transcript"], t["cumulative_transcript"]);
}
