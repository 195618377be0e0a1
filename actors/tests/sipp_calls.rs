//! End-to-end: the real `earshot` binary against sipp SRC scenarios
//! (`tests/sipp/*.xml`, `tests/sipp/vendors/*.xml`), checked through the
//! REST API. Needs sipp and the test audio: `scripts/setup`.

mod common;

use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Helpers.

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

/// basic_call.xml's metadata: label 1 = Alice, label 2 = Bob.
fn assert_basic_participants(call: &Value) {
    let ps = participants(call);
    assert_eq!(ps.len(), 2, "participants: {}", pretty(call));
    let a = participant_of_label(call, "1")
        .unwrap_or_else(|| panic!("label 1 not mapped to a participant: {}", pretty(call)));
    assert_eq!(s(&a["aor"]), "sip:alice@example.com", "{}", pretty(call));
    assert_eq!(s(&a["name"]), "Alice Caller");
    let b = participant_of_label(call, "2")
        .unwrap_or_else(|| panic!("label 2 not mapped to a participant: {}", pretty(call)));
    assert_eq!(s(&b["aor"]), "sip:bob@example.com", "{}", pretty(call));
    assert_eq!(s(&b["name"]), "Bob Callee");
}

fn history_ids(engine: &Engine, query: &str) -> Vec<String> {
    let r = engine.get(&format!("/api/v1/calls?{query}"));
    assert_eq!(r.status, 200, "GET /api/v1/calls?{query}: {}", r.text);
    r.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items: {}", r.text))
        .iter()
        .map(|c| s(&c["call_id"]).to_owned())
        .collect()
}

// ---------------------------------------------------------------------------
// A full recording session.

fn full_call(transport: Transport) {
    let engine = Engine::start();
    let sipp = Sipp::start(&engine, "basic_call.xml", transport);
    let id = sipp.call_id.clone();

    // Live: listed in /active with participants mapped to labels.
    let live = engine.wait_active(&id, "the call in /active", |c| {
        participants(c).len() == 2 && stream(c, "1").is_some() && stream(c, "2").is_some()
    });
    assert_eq!(s(&live["status"]), "active");
    assert_basic_participants(&live);
    assert_eq!(
        s(&live["source"]["transport"]),
        transport.name(),
        "{}",
        pretty(&live)
    );
    assert_eq!(live["source"]["siprec"], Value::Bool(true));
    assert_eq!(live["source"]["has_metadata"], Value::Bool(true));
    assert_eq!(s(&live["source"]["user_agent"]), "sipp-earshot-src");
    for label in ["1", "2"] {
        let st = stream(&live, label).unwrap();
        assert_eq!(s(&st["codec"]), "PCMU", "{}", pretty(st));
        assert_eq!(st["paused"], Value::Bool(false));
        let port = st["local_port"].as_u64().unwrap_or(0) as u16;
        assert!(
            (engine.rtp_lo..=engine.rtp_hi).contains(&port),
            "stream {label} local_port {port} outside --rtp-ports {}-{}",
            engine.rtp_lo,
            engine.rtp_hi
        );
    }
    let stats = engine.get("/api/v1/calls/stats");
    assert_eq!(stats.status, 200);
    assert_eq!(
        stats.body["active_sessions"].as_u64(),
        Some(1),
        "{}",
        stats.text
    );
    let status = engine.get("/status");
    assert_eq!(
        status.body["active_calls"].as_u64(),
        Some(1),
        "{}",
        status.text
    );

    // RTP (real speech, PCMU) is streamed to the first answered m-line: the
    // engine counts what it receives.
    engine.wait_active(&id, "counters.rtp_packets > 0 while the call is up", |c| {
        counter(c, "rtp_packets") > 0
    });

    sipp.expect_success(&engine);

    // Ended by the SRC's BYE: persisted as completed/bye.
    let done = engine.wait_call(&id, "status completed", |c| s(&c["status"]) == "completed");
    assert_eq!(s(&done["end_reason"]), "bye", "{}", pretty(&done));
    assert!(
        !done["end_time"].is_null(),
        "end_time missing: {}",
        pretty(&done)
    );
    assert_basic_participants(&done);
    assert!(counter(&done, "rtp_packets") > 0, "{}", pretty(&done));
    assert!(counter(&done, "rtp_bytes") > 0, "{}", pretty(&done));
    assert!(
        engine.active_call(&id).is_none(),
        "still in /active after BYE"
    );
    assert!(history_ids(&engine, "status=completed").contains(&id));
    // Findable by the original call's id from the metadata, too.
    let by_orig =
        engine.call("ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2");
    assert_eq!(
        by_orig.status, 200,
        "lookup by sipSessionID: {}",
        by_orig.text
    );
    assert_eq!(s(&by_orig.body["call_id"]), id);

    // The metrics say what happened: SIP both ways, the call ended by BYE,
    // its RTP by codec, store writes, and the process.
    let m = engine.get("/metrics");
    assert_eq!(m.status, 200);
    let v = |series: &str| metric(&m.text, series);
    assert!(v(r#"earshot_sip_requests_total{direction="in",method="INVITE"}"#) >= 1.0);
    assert!(v(r#"earshot_sip_requests_total{direction="in",method="BYE"}"#) >= 1.0);
    assert!(
        v(r#"earshot_sip_responses_total{code="200",direction="out",method="INVITE"}"#) >= 1.0,
        "{}",
        m.text
    );
    assert_eq!(
        v(r#"earshot_calls_ended_total{reason="bye",status="completed"}"#),
        1.0
    );
    assert_eq!(v("earshot_active_calls"), 0.0);
    let rtp = v(r#"earshot_rtp_packets_total{codec="PCMU",outcome="received"}"#);
    assert_eq!(rtp, counter(&done, "rtp_packets") as f64, "{}", m.text);
    assert!(v(r#"earshot_store_write_seconds_count{kind="durable"}"#) >= 1.0);
    assert!(v("earshot_rtp_jitter_ms_count") >= 1.0);
    assert!(v("earshot_vad_speech_seconds_total") > 0.0, "{}", m.text);
    assert!(v("process_resident_memory_bytes") > 1e6);
    assert!(v("process_cpu_seconds_total") > 0.0);
    // The call's RTP ports are back in the pool once its sockets closed.
    let h = poll("ports released", std::time::Duration::from_secs(10), || {
        let h = engine.get("/health");
        let p = &h.body["checks"]["rtp_ports"];
        (p["held_by_ending_calls"] == 0 && p["free"] == p["total"]).then_some(h)
    });
    assert_eq!(h.status, 200, "{}", h.text);
    for check in [
        "sip",
        "rtp_ports",
        "store",
        "asr_workers",
        "notifier",
        "http",
    ] {
        assert_eq!(
            s(&h.body["checks"][check]["status"]),
            "healthy",
            "{check}: {}",
            h.text
        );
    }
}

/// The value of one series (name with its labels, as Prometheus prints
/// them) in a text exposition; panics when absent.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
}

#[test]
fn full_call_over_udp() {
    full_call(Transport::Udp);
}

#[test]
fn full_call_over_tcp() {
    full_call(Transport::Tcp);
}

// ---------------------------------------------------------------------------
// Pause / resume by re-INVITE.

#[test]
fn pause_and_resume() {
    let engine = Engine::start();
    let sipp = Sipp::start(&engine, "pause_resume.xml", Transport::Udp);
    let id = sipp.call_id.clone();

    let all_paused = |c: &Value, want: bool| {
        c["streams"].as_array().is_some_and(|ss| {
            ss.len() == 2 && ss.iter().all(|st| st["paused"] == Value::Bool(want))
        })
    };
    engine.wait_active(&id, "the call live and not paused", |c| {
        all_paused(c, false)
    });
    let paused = engine.wait_active(&id, "both streams paused after a=inactive", |c| {
        all_paused(c, true)
    });
    assert!(counter(&paused, "pauses") >= 1, "{}", pretty(&paused));
    let resumed = engine.wait_active(&id, "both streams resumed after a=sendonly", |c| {
        all_paused(c, false) && counter(c, "resumes") >= 1
    });
    assert!(counter(&resumed, "reinvites") >= 2, "{}", pretty(&resumed));

    sipp.expect_success(&engine);
    let done = engine.wait_call(&id, "status completed", |c| s(&c["status"]) == "completed");
    assert_eq!(s(&done["end_reason"]), "bye");
    assert_eq!(counter(&done, "reinvites"), 2, "{}", pretty(&done));
    // One pause and one resume of two streams: the engine counts per
    // stream (2 and 2); one per re-INVITE would be 1 and 1.
    let (pauses, resumes) = (counter(&done, "pauses"), counter(&done, "resumes"));
    assert!(
        (1..=2).contains(&pauses),
        "pauses {pauses}: {}",
        pretty(&done)
    );
    assert_eq!(pauses, resumes, "{}", pretty(&done));
    assert!(all_paused(&done, false), "{}", pretty(&done));
    assert_basic_participants(&done);
}

// ---------------------------------------------------------------------------
// Metadata-only UPDATE (datamode partial).

#[test]
fn metadata_update_adds_a_participant() {
    let engine = Engine::start();
    let sipp = Sipp::start(&engine, "metadata_update.xml", Transport::Tcp);
    let id = sipp.call_id.clone();

    let first = engine.wait_active(&id, "the call in /active", |c| participants(c).len() >= 2);
    assert_basic_participants_or_updated(&first);
    let updated = engine.wait_active(&id, "Carol added by the UPDATE", |c| {
        participants(c)
            .iter()
            .any(|p| p.1 == "sip:carol@example.com")
    });
    let ps = participants(&updated);
    assert_eq!(ps.len(), 3, "{}", pretty(&updated));
    let carol = ps.iter().find(|p| p.1 == "sip:carol@example.com").unwrap();
    assert_eq!(carol.2, "Carol Transfer");
    let bob = ps.iter().find(|p| p.1 == "sip:bob@example.com").unwrap();
    assert_eq!(
        bob.2,
        "Robert Callee",
        "partial update renames Bob: {}",
        pretty(&updated)
    );
    // Streams keep their senders: the update only adds a receiver.
    assert_eq!(
        s(&participant_of_label(&updated, "1").unwrap()["aor"]),
        "sip:alice@example.com"
    );
    assert_eq!(
        s(&participant_of_label(&updated, "2").unwrap()["aor"]),
        "sip:bob@example.com"
    );
    assert!(
        counter(&updated, "metadata_updates") >= 1,
        "{}",
        pretty(&updated)
    );

    sipp.expect_success(&engine);
    let done = engine.wait_call(&id, "status completed", |c| s(&c["status"]) == "completed");
    assert_eq!(participants(&done).len(), 3, "{}", pretty(&done));
    assert_eq!(counter(&done, "metadata_updates"), 1, "{}", pretty(&done));
}

fn assert_basic_participants_or_updated(call: &Value) {
    // The first sighting may already include the update on a slow box.
    if participants(call).len() == 2 {
        assert_basic_participants(call);
    }
}

// ---------------------------------------------------------------------------
// CANCEL before the answer.

fn cancel(transport: Transport) {
    let engine = Engine::start_with(EngineOpts {
        answer_delay_ms: Some(2000),
        ..Default::default()
    });
    let sipp = Sipp::start(&engine, "cancel.xml", transport);
    let id = sipp.call_id.clone();
    sipp.expect_success(&engine); // 200 to CANCEL, 487 to INVITE, ACK

    let done = engine.wait_call(&id, "the cancelled call persisted", |c| {
        s(&c["status"]) != "active"
    });
    assert_eq!(s(&done["end_reason"]), "cancelled", "{}", pretty(&done));
    // The engine records a cancelled call as completed/cancelled.
    assert_eq!(s(&done["status"]), "completed", "{}", pretty(&done));
    assert!(history_ids(&engine, "status=completed").contains(&id));
    assert!(engine.active().is_empty(), "{:?}", engine.active());
}

#[test]
fn cancel_before_answer_over_udp() {
    cancel(Transport::Udp);
}

#[test]
fn cancel_before_answer_over_tcp() {
    cancel(Transport::Tcp);
}

// ---------------------------------------------------------------------------
// Out-of-dialog requests.

#[test]
fn options_unknown_bye_and_malformed_requests() {
    let engine = Engine::start();
    for transport in [Transport::Udp, Transport::Tcp] {
        // OPTIONS -> 200 with Supported: siprec (checked by the scenario).
        Sipp::start(&engine, "options.xml", transport).expect_success(&engine);
        // BYE for a dialog we never had -> 481.
        Sipp::start(&engine, "bye_unknown.xml", transport).expect_success(&engine);
        // Broken requests -> 400 each.
        Sipp::start(&engine, "malformed.xml", transport).expect_success(&engine);
    }
    // None of it made a session, and the engine is still fine.
    assert!(engine.active().is_empty(), "{:?}", engine.active());
    assert_eq!(engine.get("/health/ready").status, 200);
    let hist = engine.get("/api/v1/calls");
    assert_eq!(hist.body["total"].as_u64(), Some(0), "{}", hist.text);
}

/// With less free disk than `--min-free-disk-mb`, a new call is refused
/// with 503 and Retry-After (its recording could not be kept), `/health`
/// says why, and no session is made.
#[test]
fn full_disk_refuses_new_calls_with_503() {
    let engine = Engine::start_with(EngineOpts {
        // More than any disk here has free.
        extra_args: vec!["--min-free-disk-mb".into(), "1000000000".into()],
        ..EngineOpts::default()
    });
    let target = engine.sip_addr();
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 40000 RTP/AVP 0\r\na=label:1\r\na=sendonly\r\n";
    let invite = format!(
        "INVITE sip:srs@{target} SIP/2.0\r\nVia: SIP/2.0/UDP LOCAL;branch=z9hG4bK-disk-1\r\n\
         From: <sip:src@127.0.0.1>;tag=src-disk\r\nTo: <sip:srs@{target}>\r\n\
         Call-ID: disk-full-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n\
         Contact: <sip:src@LOCAL>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let answer = sip_final(&engine, &invite);
    assert!(
        answer.starts_with("SIP/2.0 503 Service Unavailable - recording disk full\r\n"),
        "{answer}"
    );
    assert!(answer.contains("\r\nRetry-After: "), "{answer}");
    let h = engine.get("/health");
    assert_eq!(h.status, 503, "{}", h.text);
    assert_eq!(
        h.body["checks"]["disk"]["status"], "unhealthy",
        "{}",
        h.text
    );
    assert!(h.body["checks"]["disk"]["free_mb"].as_u64().is_some());
    assert!(engine.active().is_empty());
    assert_eq!(engine.get("/api/v1/calls").body["total"].as_u64(), Some(0));
    assert!(
        engine
            .log()
            .contains("recordings disk nearly full; refusing call"),
        "{}",
        engine.log_tail()
    );
}

// ---------------------------------------------------------------------------
// The SRS ends the call: POST /end, and SIGTERM.

#[test]
fn post_end_sends_bye_to_the_src() {
    let engine = Engine::start();
    let sipp = Sipp::start(&engine, "end_by_srs.xml", Transport::Udp);
    let id = sipp.call_id.clone();
    engine.wait_active(&id, "the call in /active", |c| participants(c).len() == 2);

    let r = engine.post(&format!("/api/v1/calls/{}/end?reason=manual", encode(&id)));
    assert_eq!(r.status, 200, "POST /end: {}", r.text);
    assert_eq!(
        r.body,
        Value::String("Call ended successfully".into()),
        "{}",
        r.text
    );

    // The scenario only passes if our BYE reached sipp (and it answered 200).
    sipp.expect_success(&engine);
    let done = engine.wait_call(&id, "status completed", |c| s(&c["status"]) == "completed");
    assert_eq!(s(&done["end_reason"]), "manual", "{}", pretty(&done));
    assert!(engine.active_call(&id).is_none());

    let missing = engine.post("/api/v1/calls/no-such-call/end?reason=manual");
    assert_eq!(missing.status, 404, "{}", missing.text);
    assert_eq!(
        s(&missing.body["detail"]),
        "Call session not found",
        "{}",
        missing.text
    );
}

#[test]
fn sigterm_ends_live_calls_with_bye_and_persists_them() {
    let mut engine = Engine::start();
    let udp = Sipp::start(&engine, "end_by_srs.xml", Transport::Udp);
    let tcp = Sipp::start(&engine, "end_by_srs.xml", Transport::Tcp);
    for sipp in [&udp, &tcp] {
        engine.wait_active(&sipp.call_id, "the call in /active", |c| {
            participants(c).len() == 2
        });
    }

    let st = engine.terminate().expect("engine was running");
    assert!(
        st.success(),
        "earshot exit status after SIGTERM: {st:?}\n{}",
        engine.log_tail()
    );
    let (udp_id, tcp_id) = (udp.call_id.clone(), tcp.call_id.clone());
    // Both SRCs got a BYE from us before the engine went away.
    udp.expect_success(&engine);
    tcp.expect_success(&engine);

    engine.restart();
    for id in [&udp_id, &tcp_id] {
        let c = engine.call(id);
        assert_eq!(c.status, 200, "{id} after restart: {}", c.text);
        assert_eq!(s(&c.body["status"]), "completed", "{}", pretty(&c.body));
        assert_eq!(s(&c.body["end_reason"]), "shutdown", "{}", pretty(&c.body));
        assert_basic_participants(&c.body);
    }
    assert!(engine.active().is_empty());
}

#[test]
fn restart_on_the_same_data_dir_keeps_ended_sessions() {
    let mut engine = Engine::start();
    let sipp = Sipp::start(&engine, "basic_call.xml", Transport::Udp);
    let id = sipp.call_id.clone();
    sipp.expect_success(&engine);
    let before = engine.wait_call(&id, "status completed", |c| s(&c["status"]) == "completed");

    // A crash (SIGKILL) after the call ended must not lose it either.
    engine.kill();
    engine.restart();
    let after = engine.call(&id);
    assert_eq!(after.status, 200, "after restart: {}", after.text);
    for key in [
        "call_id",
        "status",
        "end_reason",
        "start_time",
        "end_time",
        "participants",
        "streams",
    ] {
        assert_eq!(after.body[key], before[key], "{key} changed across restart");
    }
    assert_eq!(
        counter(&after.body, "rtp_packets"),
        counter(&before, "rtp_packets")
    );
    assert!(history_ids(&engine, "").contains(&id));
    assert!(history_ids(&engine, "participant=sip%3Aalice%40example.com").contains(&id));

    let missing = engine.call("no-such-call");
    assert_eq!(missing.status, 404);
    assert_eq!(
        s(&missing.body["detail"]),
        "Call session not found",
        "{}",
        missing.text
    );
    let bad = engine.get("/api/v1/calls?page=0");
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert_eq!(
        bad.body["detail"][0]["loc"],
        serde_json::json!(["query", "page"]),
        "{}",
        bad.text
    );
}

// ---------------------------------------------------------------------------
// Vendor-style SRCs (tests/sipp/vendors/*.xml vs expect.json).

/// What the engine must show for one vendor scenario.
struct VendorCheck {
    name: String,
    expect: Value,
    sipp: Option<Sipp>,
    /// First time the call was seen in /active.
    first: Option<Value>,
    /// Last time the call was seen in /active.
    last: Option<Value>,
    /// Empty once a sighting matched everything.
    problems: Vec<String>,
    ok: bool,
}

/// Every problem with a live session against its expect.json entry.
fn vendor_problems(exp: &Value, call: &Value) -> Vec<String> {
    let mut p = vec![];
    let labels: Vec<String> = call["streams"]
        .as_array()
        .map(|ss| ss.iter().map(|st| s(&st["label"]).to_owned()).collect())
        .unwrap_or_default();
    let want_labels: Vec<String> = exp["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| s(l).to_owned())
        .collect();
    if labels != want_labels {
        p.push(format!(
            "stream labels {labels:?}, expected {want_labels:?}"
        ));
    }
    // expect.json describes the metadata alone; the session's source also
    // learns from SIP headers (User-Agent, Cisco-Guid, Session-ID, ...), so
    // a null hint there may be filled in, and header ids may be added.
    if !exp["vendor_hint"].is_null() && exp["vendor_hint"] != call["source"]["vendor_hint"] {
        p.push(format!(
            "vendor_hint {}, expected {}",
            call["source"]["vendor_hint"], exp["vendor_hint"]
        ));
    }
    let want_ids: BTreeSet<(String, String)> = exp["original_call_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (s(&o["kind"]).to_owned(), s(&o["value"]).to_owned()))
        .collect();
    let got_ids: BTreeSet<(String, String)> = call["source"]["original_call_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| (s(&o["kind"]).to_owned(), s(&o["value"]).to_owned()))
                .collect()
        })
        .unwrap_or_default();
    if !want_ids.is_subset(&got_ids) {
        p.push(format!(
            "original_call_ids {got_ids:?}, expected at least {want_ids:?}"
        ));
    }
    let got = call["participants"].as_array().cloned().unwrap_or_default();
    let want = exp["participants"].as_array().unwrap();
    if got.len() != want.len() {
        p.push(format!(
            "{} participants, expected {}",
            got.len(),
            want.len()
        ));
    }
    for w in want {
        let aor = s(&w["aor"]);
        let Some(g) = got.iter().find(|g| s(&g["aor"]) == aor) else {
            p.push(format!("no participant with aor {aor}"));
            continue;
        };
        let name = g["name"].as_str().filter(|n| !n.is_empty());
        if name != w["name"].as_str() {
            p.push(format!(
                "{aor}: name {:?}, expected {:?}",
                name,
                w["name"].as_str()
            ));
        }
        let pid = s(&g["participant_id"]);
        let sends: BTreeSet<String> = call["streams"]
            .as_array()
            .map(|ss| {
                ss.iter()
                    .filter(|st| {
                        s(&st["participant_id"]) == pid
                            || st["participant_ids"]
                                .as_array()
                                .is_some_and(|ids| ids.iter().any(|i| s(i) == pid))
                    })
                    .map(|st| s(&st["label"]).to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let want_sends: BTreeSet<String> = w["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| s(l).to_owned())
            .collect();
        if sends != want_sends {
            p.push(format!(
                "{aor}: sends labels {sends:?}, expected {want_sends:?}"
            ));
        }
    }
    p
}

fn vendor_suite(transport: Transport) {
    let dir = repo_root().join("tests/sipp/vendors");
    let expect_path = dir.join("expect.json");
    let mut xmls: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".xml"))
                .collect()
        })
        .unwrap_or_default();
    xmls.sort();
    assert!(
        xmls.len() >= 10,
        "expected the 10 vendor scenarios in {}, found {xmls:?}",
        dir.display()
    );
    let expect: BTreeMap<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(&expect_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expect_path.display())),
    )
    .expect("expect.json is a JSON object");
    for x in &xmls {
        let stem = x.trim_end_matches(".xml");
        assert!(expect.contains_key(stem), "{x} has no entry in expect.json");
    }

    // All vendors at once against one engine: also a concurrency check.
    let mut engine = Engine::start();
    let mut checks: Vec<VendorCheck> = xmls
        .iter()
        .map(|x| {
            let name = x.trim_end_matches(".xml").to_owned();
            VendorCheck {
                expect: expect[&name].clone(),
                sipp: Some(Sipp::start(&engine, &format!("vendors/{x}"), transport)),
                name,
                first: None,
                last: None,
                problems: vec!["never seen in /api/v1/calls/active".into()],
                ok: false,
            }
        })
        .collect();

    // Poll /active while the scenarios hold their calls up.
    let deadline = Instant::now() + SIPP_TIMEOUT;
    loop {
        let active = engine.active();
        for c in checks.iter_mut().filter(|c| !c.ok) {
            let id = &c.sipp.as_ref().unwrap().call_id;
            let Some(call) = active.iter().find(|a| s(&a["call_id"]) == id.as_str()) else {
                continue;
            };
            if c.first.is_none() {
                c.first = Some(call.clone());
            }
            c.last = Some(call.clone());
            c.problems = vendor_problems(&c.expect, call);
            c.ok = c.problems.is_empty();
        }
        let mut running = 0;
        for c in checks.iter_mut() {
            if c.sipp.as_mut().unwrap().is_running() {
                running += 1;
            }
        }
        if checks.iter().all(|c| c.ok) || running == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }

    let mut failures = vec![];
    for c in checks.iter_mut() {
        // First sighting: hold state and participants before any UPDATE.
        if let Some(first) = &c.first {
            let want_paused = c.expect["paused"].as_bool().unwrap_or(false);
            let paused: Vec<bool> = first["streams"]
                .as_array()
                .map(|ss| {
                    ss.iter()
                        .map(|st| st["paused"].as_bool().unwrap_or(false))
                        .collect()
                })
                .unwrap_or_default();
            if paused.iter().any(|p| *p != want_paused) {
                c.problems.push(format!(
                    "first offer: streams paused {paused:?}, expected all {want_paused}"
                ));
                c.ok = false;
            }
            if let Some(n) = c.expect["initial_participants"].as_u64() {
                let got = participants(first).len() as u64;
                if counter(first, "metadata_updates") == 0 && got != n {
                    c.problems.push(format!(
                        "after the INVITE: {got} participants, expected {n}"
                    ));
                    c.ok = false;
                }
            }
        }
        let sipp = c.sipp.take().unwrap();
        let id = sipp.call_id.clone();
        let out = sipp.finish();
        if !out.success() {
            failures.push(format!("{}: sipp failed\n{}", c.name, out.describe()));
            continue;
        }
        if !c.ok {
            failures.push(format!(
                "{}: {}\nlast seen: {}",
                c.name,
                c.problems.join("; "),
                c.last.as_ref().map(pretty).unwrap_or_default()
            ));
            continue;
        }
        let r = engine.call(&id);
        if !(r.status == 200
            && s(&r.body["status"]) == "completed"
            && s(&r.body["end_reason"]) == "bye")
        {
            // The BYE may still be in flight: give it a moment.
            let ok = (0..100).any(|_| {
                std::thread::sleep(Duration::from_millis(100));
                let r = engine.call(&id);
                r.status == 200
                    && s(&r.body["status"]) == "completed"
                    && s(&r.body["end_reason"]) == "bye"
            });
            if !ok {
                failures.push(format!(
                    "{}: not completed/bye after BYE: {} {}",
                    c.name, r.status, r.text
                ));
            }
        }
    }
    // Every ended session is readable after a restart, participants intact.
    if failures.is_empty() {
        engine.restart();
        for c in &checks {
            let Some(last) = &c.last else { continue };
            let id = s(&last["call_id"]).to_owned();
            let r = engine.call(&id);
            if r.status != 200 {
                failures.push(format!("{}: after restart GET gave {}", c.name, r.status));
                continue;
            }
            if r.body["participants"] != last["participants"] || s(&r.body["status"]) != "completed"
            {
                failures.push(format!(
                    "{}: after restart: {} (live view was {})",
                    c.name,
                    pretty(&r.body),
                    pretty(last)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vendor scenarios failed over {}:\n\n{}\n{}",
        failures.len(),
        checks.len(),
        transport.name(),
        failures.join("\n\n"),
        engine.log_tail()
    );
}

#[test]
fn vendor_scenarios_over_udp() {
    vendor_suite(Transport::Udp);
}

#[test]
fn vendor_scenarios_over_tcp() {
    vendor_suite(Transport::Tcp);
}
