//! End-to-end analysis: the real `earshot` binary, the real Whisper model
//! and a sipp-forked helpline call (Festival-synthesised, names, a place,
//! an age, a case number, a phone number, a hold; `scripts/make-call`).
//! While the call runs, the progressive analysis pushes entities,
//! classification changes, keyword and hold events on `/ws/analytics`; the
//! REST evolution endpoints show them appearing over the call; at the end
//! the post-call pipeline stores summary and QA; the export has every
//! section; a real local HTTP receiver gets the agent-service webhooks
//! (token auth, a retry after a 500, a dead letter that survives a
//! restart).
//!
//! Figures are printed with `eprintln!`: run with `--nocapture`.

mod common;

use common::http_receiver::Receiver;
use common::rtp_send::Impairment;
use common::two_party::*;
use common::ws_client::{self, Recorder};
use common::*;
use serde_json::Value;
use std::time::Duration;

fn lower(v: &Value) -> String {
    v.to_string().to_lowercase()
}

/// Waits until the post-call pipeline has completed for `id`.
fn processed(engine: &Engine, id: &str, trigger: &str) -> Value {
    poll("the post-call pipeline", Duration::from_secs(120), || {
        let r = engine.get(&format!("/api/v1/calls/{}/processing", encode(id)));
        assert_eq!(r.status, 200, "GET processing: {}", r.text);
        (s(&r.body["processing_status"]) == "completed" && s(&r.body["trigger"]) == trigger)
            .then_some(r.body)
    })
}

fn values(by_label: &Value, label: &str) -> Vec<String> {
    by_label[label]
        .as_array()
        .map(|a| a.iter().map(|v| s(v).to_lowercase()).collect())
        .unwrap_or_default()
}

#[test]
fn helpline_call_is_analysed_live_and_after() {
    let rx = Receiver::start();
    let mut engine = Engine::start_with(EngineOpts {
        asr: true,
        extra_args: [
            "--notify-urls",
            &format!("{},{}", rx.url("/hook"), rx.url("/dead")),
            "--notify-token-url",
            &rx.url("/token"),
            "--notify-client-id",
            "earshot",
            "--notify-client-secret",
            "s3cret&more",
            "--notify-attempts",
            "3",
            "--notify-backoff-ms",
            "200",
        ]
        .map(String::from)
        .to_vec(),
        ..EngineOpts::default()
    });

    // The agent service, before any call.
    let auth = engine.post("/api/v1/calls/agent-service/test-auth");
    assert_eq!(auth.status, 200, "{}", auth.text);
    assert_eq!(s(&auth.body["status"]), "success", "{}", auth.text);
    assert_eq!(auth.body["token_obtained"], Value::Bool(true));
    assert_eq!(auth.body["token_expires_in"].as_u64(), Some(3600));
    let grant = rx.to("/token");
    assert_eq!(grant.len(), 1);
    assert_eq!(
        grant[0].body,
        "grant_type=client_credentials&client_id=earshot&client_secret=s3cret%26more"
    );
    let r = engine.post("/api/v1/calls/agent-service/test-notification");
    assert_eq!(r.status, 422, "call_id is required: {}", r.text);
    let r = engine.post("/api/v1/calls/agent-service/test-notification?call_id=test_123");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s(&r.body["status"]), "success", "{}", r.text);
    assert_eq!(r.body["agent_response_code"].as_u64(), Some(200));
    let test = rx.to("/hook");
    assert_eq!(test.len(), 1);
    assert_eq!(test[0].header("authorization"), Some("Bearer tok-1"));
    assert_eq!(s(&test[0].json()["call_id"]), "test_123");
    let h = engine.get("/api/v1/calls/agent-service/health");
    assert_eq!(h.status, 200);
    assert_eq!(s(&h.body["service_name"]), "agent_notification_service");
    assert_eq!(
        h.body["checks"]["api_connectivity"],
        Value::Bool(true),
        "{}",
        h.text
    );

    // Live pushes: everything analytic, and only holds from /ws/events.
    let url = |q: &str| format!("ws://127.0.0.1:{}{q}", engine.http_port);
    let analytics = Recorder::start(
        ws_client::connect_url(&url("/ws/analytics"), Duration::from_millis(200)).unwrap(),
    );
    let holds = Recorder::start(
        ws_client::connect_url(
            &url("/ws/events?types=hold_started,hold_ended"),
            Duration::from_millis(200),
        )
        .unwrap(),
    );
    let bad = engine.get("/ws/events?types=a,%3Cb%3E");
    assert_eq!(bad.status, 422, "bad types filter: {}", bad.text);

    let run = record_on(
        engine,
        "helpline",
        [Impairment::clean(1), Impairment::clean(2)],
    );
    let id = run.id.clone();
    engine = run.engine;
    let p = processed(&engine, &id, "auto");
    eprintln!("processing: {}", pretty(&p));
    assert_eq!(
        p["progress_percentage"].as_f64(),
        Some(100.0),
        "{}",
        pretty(&p)
    );
    assert!(p["stages_remaining"]
        .as_array()
        .is_some_and(|a| a.is_empty()));
    assert!(p["errors"].as_array().is_some_and(|a| a.is_empty()));

    // Progressive analysis: every final analysed, entities and category.
    let pa = engine.get(&format!(
        "/api/v1/calls/{}/progressive-analysis",
        encode(&id)
    ));
    assert_eq!(pa.status, 200, "{}", pa.text);
    let b = &pa.body;
    let segs = engine.get(&format!("/api/v1/calls/{}/segments", encode(&id)));
    let n = segs.body.as_array().map_or(0, Vec::len);
    assert!(n >= 10, "segments: {}", segs.text);
    assert_eq!(b["windows"].as_array().map(Vec::len), Some(n));
    let ents = &b["latest_entities"];
    eprintln!("entities: {ents}");
    eprintln!("classification: {}", b["latest_classification"]);
    eprintln!("processing_stats: {}", b["processing_stats"]);
    let persons = values(ents, "PERSON");
    assert!(persons.iter().any(|p| p.contains("grace")), "{persons:?}");
    assert!(persons.iter().any(|p| p.contains("amina")), "{persons:?}");
    assert!(
        values(ents, "LOCATION")
            .iter()
            .any(|l| l.contains("mombasa")),
        "{ents}"
    );
    assert!(
        values(ents, "AGE").iter().any(|a| a.contains("12")),
        "{ents}"
    );
    // The case number is spoken digit by digit; whisper writes it as
    // "45721" on most runs, but under CPU contention the utterance cut can
    // differ and the digits come out otherwise. The extractor is held to
    // what the recogniser wrote: when the digits are in the transcript,
    // the entity must be found, also when a pause cuts "case number" from
    // the digits (CI saw the digits without the entity twice; the
    // extraction itself is tested on fixed text in tests/entities.rs and
    // src/analysis/entities.rs).
    let transcript = engine
        .get(&format!("/api/v1/calls/{}/transcript", encode(&id)))
        .body["cumulative_transcript"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let digits: String = transcript
        .chars()
        .filter(|c| c.is_ascii_digit() || c.is_alphabetic())
        .collect();
    if digits.contains("45721") {
        assert!(
            values(ents, "CASE_NUMBER")
                .iter()
                .any(|c| c.contains("45721")),
            "{ents}\ntranscript: {transcript}"
        );
    } else {
        eprintln!("case number not transcribed as digits this run: {transcript}");
    }
    let class = &b["latest_classification"];
    assert!(lower(&class["main_category"]).contains("child"), "{class}");
    assert_eq!(s(&class["priority"]), "high", "{class}");
    assert!(class["evidence"].as_array().is_some_and(|e| !e.is_empty()));
    assert_eq!(
        b["processing_stats"]["finals_analysed"].as_u64(),
        Some(n as u64)
    );

    // Evolution: entities appear over the call, the category changes once
    // the abuse is described.
    let ev = engine.get(&format!("/api/v1/calls/{}/entity-evolution", encode(&id)));
    assert_eq!(ev.status, 200);
    let ev = ev.body.as_array().cloned().unwrap_or_default();
    assert!(
        ev.len() >= 3,
        "entity windows: {}",
        pretty(&Value::from(ev.clone()))
    );
    let first_with = |needle: &str| {
        ev.iter()
            .position(|w| lower(&w["new_entities"]).contains(needle))
            .unwrap_or(usize::MAX)
    };
    assert!(
        first_with("grace") < first_with("45721"),
        "Grace before the case number"
    );
    assert!(ev.windows(2).all(|w| {
        w[0]["window_id"].as_u64() < w[1]["window_id"].as_u64()
            && w[0]["entity_count"].as_u64() < w[1]["entity_count"].as_u64()
    }));
    let last = ev.last().unwrap();
    assert_eq!(
        last["entities"].as_array().map(Vec::len),
        last["entity_count"].as_u64().map(|c| c as usize)
    );
    let ce = engine.get(&format!(
        "/api/v1/calls/{}/classification-evolution",
        encode(&id)
    ));
    let ce = ce.body.as_array().cloned().unwrap_or_default();
    eprintln!(
        "classification evolution: {:?}",
        ce.iter()
            .map(|c| (c["window_id"].as_u64(), s(&c["main_category"]).to_string()))
            .collect::<Vec<_>>()
    );
    assert!(ce.len() >= 2, "{}", pretty(&Value::from(ce.clone())));
    assert!(!lower(&ce[0]["main_category"]).contains("child"));
    assert!(ce.iter().any(|c| c["changed"] == Value::Bool(true)));

    // Pushed live.
    let frames = analytics.stop();
    let kinds: Vec<&str> = frames
        .iter()
        .filter(|(_, v)| s(&v["call_id"]) == id)
        .map(|(_, v)| s(&v["type"]))
        .collect();
    for k in [
        "call_started",
        "entity_detected",
        "classification_changed",
        "keyword_detected",
        "hold_started",
        "analysis_update",
        "call_ended",
        "analysis_completed",
    ] {
        assert!(kinds.contains(&k), "no {k} on /ws/analytics: {kinds:?}");
    }
    assert!(
        !kinds.contains(&"transcript"),
        "transcripts are not analytics"
    );
    let only_holds = holds.stop();
    let hk: Vec<&str> = only_holds
        .iter()
        .map(|(_, v)| s(&v["type"]))
        .filter(|t| *t != "connected")
        .collect();
    assert!(
        hk.contains(&"hold_started") && hk.contains(&"hold_ended"),
        "{hk:?}"
    );
    assert!(hk.iter().all(|t| t.starts_with("hold_")), "{hk:?}");

    // Export: JSON has every part, text every section.
    let ex = engine.get(&format!("/api/v1/calls/{}/export?format=json", encode(&id)));
    assert_eq!(ex.status, 200);
    for k in [
        "call_id",
        "metadata",
        "transcription",
        "translation",
        "entities",
        "classification",
        "summary",
        "insights",
        "qa",
        "talk_time",
        "processing_info",
    ] {
        assert!(!ex.body[k].is_null(), "export lacks {k}");
    }
    let qa = &ex.body["qa"];
    eprintln!("QA: {} {}", qa["overall_qa_score"], qa["grade"]);
    let passed = |metric: &str| {
        qa["detailed_scores"]
            .as_object()
            .into_iter()
            .flat_map(|g| g.values())
            .flat_map(|g| g["submetrics"].as_array().cloned().unwrap_or_default())
            .find(|m| s(&m["metric"]) == metric)
            .map(|m| m["passed"].clone())
    };
    let ids: Vec<String> = qa["detailed_scores"]
        .as_object()
        .into_iter()
        .flat_map(|g| g.values())
        .flat_map(|g| g["submetrics"].as_array().cloned().unwrap_or_default())
        .map(|m| format!("{}={}", s(&m["metric"]), m["passed"]))
        .collect();
    eprintln!("QA checks: {ids:?}");
    assert_eq!(ids.len(), 17);
    for m in ["greeting", "hold_announced", "hold_thanked", "closing"] {
        assert_eq!(passed(m), Some(Value::Bool(true)), "{m}: {ids:?}");
    }
    assert!(s(&ex.body["summary"]["text"]).len() > 20);
    let tx = engine.get(&format!("/api/v1/calls/{}/export?format=text", encode(&id)));
    assert_eq!(tx.status, 200);
    for section in [
        "=== CALL EXPORT ===",
        "--- ORIGINAL TRANSCRIPT (English) ---",
        "--- ENGLISH TRANSLATION ---",
        "--- NAMED ENTITIES ---",
        "Persons: ",
        "Locations: ",
        "--- CLASSIFICATION ---",
        "--- SUMMARY ---",
        "--- QUALITY ASSURANCE ---",
        "=== END OF EXPORT ===",
    ] {
        assert!(tx.text.contains(section), "no {section:?} in:\n{}", tx.text);
    }
    assert!(tx.text.to_lowercase().contains("mombasa"));
    let bad = engine.get(&format!("/api/v1/calls/{}/export?format=pdf", encode(&id)));
    assert_eq!(bad.status, 422);
    let tr = engine.get(&format!("/api/v1/calls/{}/translation", encode(&id)));
    assert_eq!(tr.status, 200);
    assert_eq!(s(&tr.body["source_language"]), "en");
    assert_eq!(tr.body["translation_enabled"], Value::Bool(false));

    // Re-run on demand: 404 for nobody, 200, then a completed manual run.
    let r = engine.post("/api/v1/calls/nobody/trigger-ai-pipeline");
    assert_eq!(r.status, 404, "{}", r.text);
    let r = engine.post(&format!(
        "/api/v1/calls/{}/trigger-ai-pipeline",
        encode(&id)
    ));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        Value::from("AI pipeline processing triggered successfully")
    );
    processed(&engine, &id, "manual");
    let st = engine.get("/api/v1/calls/processing/status");
    eprintln!("pipeline status: {}", st.body);
    assert!(st.body["completed"].as_u64() >= Some(2));
    assert!(st.body["average_latency_ms"]
        .as_f64()
        .is_some_and(|v| v > 0.0));

    // Webhooks: the alert retried after a 500, analysis_completed with a
    // bearer token, the always-failing target dead-lettered.
    let hooks = poll(
        "analysis_completed delivered",
        Duration::from_secs(30),
        || {
            let h = rx.to("/hook");
            h.iter()
                .any(|r| r.body.contains("\"analysis_completed\"") && r.answered == 200)
                .then_some(h)
        },
    );
    assert!(hooks.iter().all(|r| r
        .header("authorization")
        .is_some_and(|a| a.starts_with("Bearer tok-"))));
    let failed = hooks.iter().find(|r| r.answered == 500).expect("one 500");
    let fid = s(&failed.json()["id"]).to_string();
    assert!(
        hooks
            .iter()
            .any(|r| s(&r.json()["id"]) == fid && r.answered == 200),
        "the notification that got a 500 was retried and delivered"
    );
    let events: Vec<String> = hooks
        .iter()
        .map(|r| s(&r.json()["event"]).to_string())
        .collect();
    eprintln!("webhook events: {events:?}");
    assert!(events.iter().any(|e| e == "keyword_detected"));
    let health = poll("a dead letter", Duration::from_secs(30), || {
        let h = engine.get("/api/v1/calls/agent-service/health");
        (h.body["details"]["dead_letters_stored"].as_u64() >= Some(1)).then_some(h.body)
    });
    let dead = rx.to("/dead");
    let first = s(&dead[0].json()["id"]).to_string();
    assert_eq!(
        dead.iter().filter(|r| s(&r.json()["id"]) == first).count(),
        3,
        "3 attempts before the dead letter"
    );
    let stored = health["details"]["dead_letters_stored"].as_u64().unwrap();

    // After a restart: the analysis is read from sled, the dead letters kept.
    engine.restart();
    let pa2 = engine.get(&format!(
        "/api/v1/calls/{}/progressive-analysis",
        encode(&id)
    ));
    assert_eq!(pa2.status, 200);
    assert_eq!(pa2.body["latest_entities"], pa.body["latest_entities"]);
    let h = engine.get("/api/v1/calls/agent-service/health");
    assert!(h.body["details"]["dead_letters_stored"].as_u64() >= Some(stored));
}

#[test]
fn pipeline_status_and_errors_without_speech() {
    // With the ONNX NER slot configured (the demo model), semantic
    // classification on ONNX Runtime and the ONNX translation slot (the
    // Swahili demo model): the engine loads them at start and says so in
    // the pipeline configuration.
    let engine = Engine::start_with(EngineOpts {
        extra_args: vec![
            "--analysis-ner-model".into(),
            repo_root()
                .join("models/onnx-ner-demo")
                .display()
                .to_string(),
            "--analysis-semantic".into(),
            "true".into(),
            "--analysis-semantic-runtime".into(),
            "onnx".into(),
            "--analysis-translation-model".into(),
            repo_root()
                .join("models/onnx-mt-demo-sw-en")
                .display()
                .to_string(),
        ],
        ..EngineOpts::default()
    });
    let sipp = Sipp::start_args(&engine, "media_call.xml", Transport::Udp, &["-d", "3000"]);
    let id = sipp.call_id.clone();
    engine.wait_active(&id, "the call is live", |_| true);
    let r = engine.post(&format!(
        "/api/v1/calls/{}/trigger-ai-pipeline",
        encode(&id)
    ));
    assert_eq!(r.status, 409, "live call: {}", r.text);
    assert!(s(&r.body["detail"]).contains("live"));
    let p = engine.get(&format!("/api/v1/calls/{}/processing", encode(&id)));
    assert_eq!(p.status, 200);
    assert_eq!(s(&p.body["processing_status"]), "pending");
    assert!(p.body["estimated_completion"].is_null());
    assert!(s(&p.body["pipeline_config"]["ner_model"]).ends_with("onnx-ner-demo"));
    assert_eq!(s(&p.body["pipeline_config"]["semantic_runtime"]), "onnx");
    assert!(s(&p.body["pipeline_config"]["translation_model"]).ends_with("onnx-mt-demo-sw-en"));
    assert_eq!(
        p.body["pipeline_config"]["translation_model_languages"]["source_languages"],
        serde_json::json!(["sw"])
    );
    assert_eq!(p.body["pipeline_config"]["translation"], Value::Bool(true));
    assert_eq!(
        p.body["pipeline_config"]["semantic_classification"],
        Value::Bool(true)
    );
    let live = engine.get(&format!(
        "/api/v1/calls/{}/progressive-analysis",
        encode(&id)
    ));
    assert_eq!(live.status, 200);
    assert_eq!(s(&live.body["analysis_status"]), "live");
    sipp.expect_success(&engine);
    engine.wait_call(&id, "stored", |c| s(&c["status"]) == "completed");
    let p = processed(&engine, &id, "auto");
    assert_eq!(p["stages_completed"].as_array().map(Vec::len), Some(6));
    let tx = engine.get(&format!("/api/v1/calls/{}/export?format=text", encode(&id)));
    assert!(tx.text.contains("(no speech transcribed)"), "{}", tx.text);
    for (path, status) in [
        ("/api/v1/calls/nobody/progressive-analysis", 404),
        ("/api/v1/calls/nobody/entity-evolution", 404),
        ("/api/v1/calls/nobody/export", 404),
        ("/api/v1/calls/nobody/processing", 404),
    ] {
        assert_eq!(engine.get(path).status, status, "{path}");
    }
    let st = engine.get("/api/v1/calls/processing/status");
    assert_eq!(st.status, 200);
    assert_eq!(st.body["enabled"], Value::Bool(true));
    assert!(st.body["completed"].as_u64() >= Some(1));
    // No notifier configured: said clearly.
    let h = engine.get("/api/v1/calls/agent-service/health");
    assert_eq!(s(&h.body["status"]), "disabled");
    let a = engine.post("/api/v1/calls/agent-service/test-auth");
    assert_eq!(a.status, 503);
}

/// A French call with translation on (multilingual base model): the
/// transcript stays French, every final gets an English translation
/// window, and the export carries both.
#[test]
fn french_call_gets_translation_windows() {
    let base = repo_root().join("models/ggml-base-q8_0.bin");
    assert!(
        base.is_file(),
        "run scripts/fetch-model base (scripts/setup does)"
    );
    let engine = Engine::start_with(EngineOpts {
        asr: true,
        asr_model: Some(base),
        extra_args: ["--asr-translate", "true", "--asr-language", "fr"]
            .map(String::from)
            .to_vec(),
        ..EngineOpts::default()
    });
    let run = record_on(
        engine,
        "french",
        [Impairment::clean(1), Impairment::clean(2)],
    );
    let id = run.id.clone();
    processed(&run.engine, &id, "auto");
    let segs = run
        .engine
        .get(&format!("/api/v1/calls/{}/segments", encode(&id)))
        .body;
    let segs = segs.as_array().cloned().unwrap_or_default();
    assert!(segs.len() >= 5, "{segs:?}");
    assert!(segs.iter().all(|g| s(&g["language"]) == "fr"));
    let tr = run
        .engine
        .get(&format!("/api/v1/calls/{}/translation", encode(&id)));
    assert_eq!(tr.status, 200);
    let b = &tr.body;
    eprintln!("translation: {}", pretty(b));
    assert_eq!(b["translation_enabled"], Value::Bool(true));
    assert_eq!(s(&b["source_language"]), "fr");
    assert_eq!(s(&b["language"]), "en");
    assert!(s(&b["translation_model"]).contains("whisper"));
    let windows = b["translation_windows"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        windows.len(),
        segs.len(),
        "one translation window per final"
    );
    for w in &windows {
        assert!(segs
            .iter()
            .any(|g| g["segment_id"] == w["segment_id"] && g["text"] == w["original"]));
        assert_eq!(w["translated"], Value::Bool(true));
    }
    // English out of French audio: the prompts' words, translated.
    let english = s(&b["cumulative_translation"]).to_lowercase();
    let hits = [
        "please",
        "wait",
        "call",
        "sorry",
        "understand",
        "participant",
        "conference",
        "directory",
        "password",
        "system",
        "phone",
        "new",
    ]
    .iter()
    .filter(|w| english.contains(*w))
    .count();
    assert!(hits >= 4, "not English enough ({hits}): {english}");
    let french = segs
        .iter()
        .map(|g| s(&g["text"]).to_string())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        earshot::asr::wer::wer(&french, &english) > 0.6,
        "translation too close to the French: {english}"
    );
    let tx = run
        .engine
        .get(&format!("/api/v1/calls/{}/export?format=text", encode(&id)));
    assert!(
        tx.text.contains("--- ORIGINAL TRANSCRIPT (French) ---"),
        "{}",
        tx.text
    );
    let after = tx
        .text
        .split("--- ENGLISH TRANSLATION ---")
        .nth(1)
        .unwrap_or_default();
    assert!(
        after
            .to_lowercase()
            .contains(&english[..english.len().min(20)]),
        "{}",
        tx.text
    );
    let pa = run.engine.get(&format!(
        "/api/v1/calls/{}/progressive-analysis",
        encode(&id)
    ));
    assert_eq!(
        pa.body["translation_windows"].as_u64(),
        Some(segs.len() as u64)
    );
}
