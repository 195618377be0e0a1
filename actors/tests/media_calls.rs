//! End-to-end media plane: the real `earshot` binary records two-party calls
//! whose timings are KNOWN, and its analytics are checked against that truth.
//!
//! The calls come from `scripts/make-call` (`tests/audio/call-<name>/`:
//! `a.wav`, `b.wav`, `truth.json`, built from Asterisk prompts trimmed to
//! their voiced extent). sipp (`tests/sipp/media_call.xml`) sets up the
//! SIPREC session and holds it; the test itself sends the RTP (PCMU 20 ms +
//! RFC 4733 DTMF, optionally over an impaired network: `common::rtp_send`)
//! to the ports the engine answered, then checks the stored session, the
//! events, `/talk-time` and the recordings.
//!
//! Measured figures are printed with `eprintln!`: run with `--nocapture`.
//! Needs sipp, python3 and the Asterisk prompts: `scripts/setup`.

mod common;

use common::rtp_send::Impairment;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::two_party::*;

// ---------------------------------------------------------------------------
// Checks.

/// Talk time, overlap and gaps from /talk-time against the truth.
fn check_talk_time(run: &Run, label: &str) {
    let t = &run.truth;
    eprintln!(
        "[{label}] call {} offset {:.0} ms (session start -> first audio sample)",
        run.id, run.offset_ms
    );
    run.print_speech();
    let mut failures = vec![];
    for (i, who) in ["a", "b"].iter().enumerate() {
        let m = f(&run.speaker(i)["metrics"]["talkTime"]);
        let tt = truth_talk(t, who);
        let err = (m - tt) / tt * 100.0;
        eprintln!("[{label}] talk time {who}: measured {m:.2} s, truth {tt:.2} s ({err:+.1} %)");
        if err.abs() > 5.0 || !m.is_finite() {
            failures.push(format!(
                "talk time {who}: measured {m:.2} s vs truth {tt:.2} s ({err:+.1} %, limit 5 %)"
            ));
        }
    }
    let overlap = f(&run.talk["interaction"]["talkOverlap"]["totalTime"]);
    let t_overlap = f(&t["overlap_s"]);
    eprintln!("[{label}] overlap: measured {overlap:.2} s, truth {t_overlap:.2} s");
    if (overlap - t_overlap).abs() > 0.5 || !overlap.is_finite() {
        failures.push(format!(
            "overlap: measured {overlap:.2} s vs truth {t_overlap:.2} s (limit 0.5 s)"
        ));
    }
    let gaps = f(&run.talk["interaction"]["silenceGaps"]["totalTime"]);
    let t_gaps = truth_gaps_total(t);
    eprintln!(
        "[{label}] silence gaps (>= 1 s): measured {gaps:.2} s in {} instances, truth {t_gaps:.2} s in {}",
        run.talk["interaction"]["silenceGaps"]["instances"],
        intervals(&t["gaps"])
            .iter()
            .filter(|(a, b)| b - a >= 1.0 - 1e-9)
            .count()
    );
    if (gaps - t_gaps).abs() > 0.5 || !gaps.is_finite() {
        failures.push(format!(
            "silence gaps: measured {gaps:.2} s vs truth {t_gaps:.2} s (limit 0.5 s)"
        ));
    }
    assert!(
        failures.is_empty(),
        "[{label}] talk-time differs from the truth:\n  {}\ntalk-time: {}",
        failures.join("\n  "),
        pretty(&run.talk)
    );
}

/// The DTMF digits of a's stream: exactly the truth's, in order, on time.
fn check_dtmf(run: &Run, label: &str) {
    let want: Vec<&Value> = run.truth["dtmf"].as_array().unwrap().iter().collect();
    let got = run.events_of("dtmf");
    let fmt = |d: &Value| format!("{}@{:.0}ms", s(&d["digit"]), f(&d["at_ms"]) - run.offset_ms);
    eprintln!(
        "[{label}] dtmf: measured [{}], truth [{}]",
        got.iter().map(|d| fmt(d)).collect::<Vec<_>>().join(" "),
        want.iter()
            .map(|d| format!("{}@{:.0}ms", s(&d["digit"]), f(&d["at_s"]) * 1000.0))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let digits: String = got.iter().map(|d| s(&d["digit"])).collect();
    let want_digits: String = want.iter().map(|d| s(&d["digit"])).collect();
    assert_eq!(
        digits,
        want_digits,
        "[{label}] DTMF digits; events: {}",
        pretty(&run.events)
    );
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            s(&g["participant_id"]),
            run.pid[0],
            "[{label}] DTMF must be a's (label 1): {g}"
        );
        let expect = run.at(f(&w["at_s"]));
        let at = f(&g["at_ms"]);
        assert!(
            (at - expect).abs() <= 300.0,
            "[{label}] DTMF {} at {at:.0} ms on the call timeline, truth {expect:.0} ms \
             ({:.0} ms off, limit 300): {g}",
            s(&g["digit"]),
            at - expect
        );
    }
    // The stored session carries the same events.
    let stored: String = run.call["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| s(&e["type"]) == "dtmf")
        .map(|e| s(&e["digit"]))
        .collect();
    assert_eq!(stored, want_digits, "[{label}] DTMF in the stored session");
}

/// RTP statistics of each stream against what the senders did.
fn check_stats(run: &Run, label: &str, slack: i64) {
    for (i, who) in ["a", "b"].iter().enumerate() {
        let st = stream(&run.call, &(i + 1).to_string()).unwrap();
        let stats = &st["stats"];
        let rep = &run.reports[i];
        eprintln!(
            "[{label}] {who} sender: {} packets ({} audio, {} events), {} datagrams, \
             dropped {} ({} detectable), duplicated {}, swapped {}, out of order {}, \
             max lateness {:?}",
            rep.packets,
            rep.audio_packets,
            rep.event_packets,
            rep.sent,
            rep.dropped,
            rep.dropped_inside,
            rep.duplicated,
            rep.swapped,
            rep.out_of_order,
            rep.max_lateness
        );
        eprintln!(
            "[{label}] {who} engine stats: {} receive: {}",
            stats, st["receive"]
        );
        assert_eq!(rep.send_errors, 0, "[{label}] {who}: send errors");
        let lost = stats["lost"].as_i64().unwrap_or(-1);
        assert!(
            (lost - rep.dropped_inside as i64).abs() <= slack,
            "[{label}] {who}: stats.lost {lost}, the sender dropped {} (limit ±{slack}): {stats}",
            rep.dropped_inside
        );
        let dups = stats["duplicates"].as_i64().unwrap_or(-1);
        assert!(
            (dups - rep.duplicated as i64).abs() <= slack,
            "[{label}] {who}: stats.duplicates {dups}, the sender duplicated {} (limit ±{slack}): {stats}",
            rep.duplicated
        );
        let packets = stats["packets"].as_i64().unwrap_or(-1);
        let distinct = (rep.packets - rep.dropped) as i64;
        assert!(
            packets >= distinct - slack && packets <= rep.sent as i64,
            "[{label}] {who}: stats.packets {packets}, {distinct} distinct packets arrived \
             ({} datagrams): {stats}",
            rep.sent
        );
        assert_eq!(
            stats["ssrc_changes"].as_u64(),
            Some(0),
            "[{label}] {who}: one SSRC: {stats}"
        );
    }
}

/// WAV header facts: (channels, sample rate, bits, duration in ms).
fn wav_info(path: &Path) -> (u16, u32, u16, f64) {
    let r = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("recording {} unreadable: {e}", path.display()));
    let sp = r.spec();
    let ms = r.duration() as f64 * 1000.0 / f64::from(sp.sample_rate);
    (sp.channels, sp.sample_rate, sp.bits_per_sample, ms)
}

/// Per-leg and stereo recordings: exist, 8 kHz 16-bit (the legs are PCMU,
/// recorded at their own rate), as long as the call.
fn check_recordings(run: &Run, label: &str) {
    let call_ms = run.call_duration_ms();
    let check = |what: &str, path: &str, channels: u16| {
        assert!(
            !path.is_empty(),
            "[{label}] no {what} recording path: {}",
            pretty(&run.call)
        );
        let p = PathBuf::from(path);
        let p = if p.is_relative() {
            run.engine.tmp_path().join(p)
        } else {
            p
        };
        let (ch, rate, bits, ms) = wav_info(&p);
        eprintln!(
            "[{label}] recording {what}: {ch} ch {rate} Hz {bits} bit {ms:.0} ms; call {call_ms:.0} ms ({:+.0} ms)",
            ms - call_ms
        );
        assert_eq!(
            (ch, rate, bits),
            (channels, 8000, 16),
            "[{label}] {what} recording format"
        );
        assert!(
            (ms - call_ms).abs() <= 100.0,
            "[{label}] {what} recording lasts {ms:.0} ms, the call {call_ms:.0} ms (limit 100 ms)"
        );
    };
    for l in ["1", "2"] {
        let st = stream(&run.call, l).unwrap();
        check(&format!("leg {l}"), s(&st["recording"]), 1);
        let rec_ms = f(&st["recorded_ms"]);
        eprintln!("[{label}] leg {l} recorded_ms {rec_ms}");
    }
    check("stereo", s(&run.call["recordings"]["stereo"]), 2);

    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .no_proxy()
        .build()
        .unwrap();
    for leg in ["stereo", "1", run.pid[1].as_str()] {
        let url = run.engine.url(&format!(
            "/api/v1/calls/{}/recording?leg={}",
            encode(&run.id),
            encode(leg)
        ));
        let r = http
            .get(&url)
            .send()
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = r.bytes().unwrap_or_default();
        assert_eq!(status, 200, "[{label}] GET recording?leg={leg}");
        assert!(
            ctype.starts_with("audio/wav") || ctype.starts_with("audio/x-wav"),
            "[{label}] recording?leg={leg} content-type {ctype:?}"
        );
        assert!(
            body.len() > 44 && &body[..4] == b"RIFF" && &body[8..12] == b"WAVE",
            "[{label}] recording?leg={leg}: not a WAV ({} bytes)",
            body.len()
        );
    }
}

fn check_alive(run: &Run) {
    let r = run.engine.get("/health/ready");
    assert_eq!(r.status, 200, "engine not ready after the call: {}", r.text);
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn talk_over_impaired_network() {
    let imp = |seed| Impairment {
        loss: 0.05,
        reorder: 0.02,
        duplicate: 0.01,
        jitter_ms: 40,
        seed,
        ..Impairment::default()
    };
    let run = record("talk", [imp(5_001), imp(5_002)]);
    let label = "talk/impaired";
    check_stats(&run, label, 3);
    check_dtmf(&run, label);
    check_recordings(&run, label);
    check_talk_time(&run, label);
    check_alive(&run);
}

#[test]
fn talk_clean() {
    let run = record("talk", [Impairment::clean(7_001), Impairment::clean(7_002)]);
    let label = "talk/clean";
    check_stats(&run, label, 0);
    check_dtmf(&run, label);
    check_recordings(&run, label);
    check_talk_time(&run, label);
    check_alive(&run);
}

#[test]
fn hold_music_is_detected() {
    let run = record("hold", [Impairment::clean(9_001), Impairment::clean(9_002)]);
    let label = "hold";
    eprintln!(
        "[{label}] call {} offset {:.0} ms (session start -> first audio sample)",
        run.id, run.offset_ms
    );
    run.print_speech();
    let truth = &run.truth["hold"][0];
    let (t_start, t_end) = (f(&truth["start_s"]), f(&truth["end_s"]));
    let started = run.events_of("hold_started");
    let ended = run.events_of("hold_ended");
    eprintln!(
        "[{label}] truth hold {t_start:.2}-{t_end:.2} s; events started {:?} ended {:?}",
        started
            .iter()
            .map(|e| (f(&e["at_ms"]) - run.offset_ms) / 1000.0)
            .collect::<Vec<_>>(),
        ended
            .iter()
            .map(|e| (
                (f(&e["start_ms"]) - run.offset_ms) / 1000.0,
                (f(&e["end_ms"]) - run.offset_ms) / 1000.0
            ))
            .collect::<Vec<_>>()
    );
    for (i, who) in ["a", "b"].iter().enumerate() {
        eprintln!(
            "[{label}] talk time {who}: measured {:.2} s, truth {:.2} s (music not speech)",
            f(&run.speaker(i)["metrics"]["talkTime"]),
            truth_talk(&run.truth, who)
        );
    }
    assert_eq!(
        started.len(),
        1,
        "[{label}] one hold_started: {}",
        pretty(&run.events)
    );
    assert_eq!(
        ended.len(),
        1,
        "[{label}] one hold_ended: {}",
        pretty(&run.events)
    );
    for e in started.iter().chain(&ended) {
        assert_eq!(
            s(&e["participant_id"]),
            run.pid[0],
            "[{label}] hold is on a's stream (label 1): {e}"
        );
    }
    let at = f(&started[0]["at_ms"]);
    let want = run.at(t_start + 3.0);
    assert!(
        (at - want).abs() <= 1000.0,
        "[{label}] hold_started at {at:.0} ms, truth start + 3 s = {want:.0} ms ({:+.0} ms, limit 1 s)",
        at - want
    );
    let end = f(&ended[0]["end_ms"]);
    let want_end = run.at(t_end);
    assert!(
        (end - want_end).abs() <= 1000.0,
        "[{label}] hold_ended end {end:.0} ms, truth {want_end:.0} ms ({:+.0} ms, limit 1 s)",
        end - want_end
    );
    check_recordings(&run, label);
    check_alive(&run);
}

/// Music on hold is not speech: a's talk time in the `hold` call is its
/// three prompts, not the 8 s of music on its stream.
#[test]
fn hold_music_is_not_talk_time() {
    let run = record("hold", [Impairment::clean(9_101), Impairment::clean(9_102)]);
    let label = "hold/talk-time";
    run.print_speech();
    let music: f64 = run.truth["hold"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| f(&h["end_s"]) - f(&h["start_s"]))
        .sum();
    let mut failures = vec![];
    for (i, who) in ["a", "b"].iter().enumerate() {
        let m = f(&run.speaker(i)["metrics"]["talkTime"]);
        let tt = truth_talk(&run.truth, who);
        let err = (m - tt) / tt * 100.0;
        eprintln!(
            "[{label}] talk time {who}: measured {m:.2} s, truth {tt:.2} s ({err:+.1} %; \
             {music:.2} s of music on a's stream)"
        );
        if err.abs() > 5.0 || !m.is_finite() {
            failures.push(format!(
                "talk time {who}: measured {m:.2} s vs truth {tt:.2} s ({err:+.1} %, limit 5 %)"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "[{label}] hold music counted as talk:\n  {}\ntalk-time: {}",
        failures.join("\n  "),
        pretty(&run.talk)
    );
    check_alive(&run);
}

/// RTP timeout: sipp sets up a call and sends no RTP at all; with
/// `--rtp-timeout-secs 2` the engine ends it as failed, "no media", says so
/// (log, `no_media` events on both streams), and BYEs the SRC (the scenario
/// waits for that BYE and answers it).
#[test]
fn no_rtp_ends_the_call_as_failed_no_media() {
    let engine = Engine::start_with(EngineOpts {
        extra_args: vec!["--rtp-timeout-secs".into(), "2".into()],
        ..EngineOpts::default()
    });
    let t0 = std::time::Instant::now();
    let sipp = Sipp::start(&engine, "no_media_call.xml", Transport::Udp);
    let id = sipp.call_id.clone();
    let out = sipp.expect_success(&engine);
    let took = t0.elapsed();
    assert!(
        out.messages.contains("BYE sip:"),
        "sipp got no BYE: {}",
        out.describe()
    );
    let call = engine.wait_call(&id, "the session stored as failed", |c| {
        s(&c["status"]) == "failed"
    });
    assert_eq!(s(&call["end_reason"]), "no media", "{}", pretty(&call));
    let ms = rfc3339_ms(&call["end_time"]) - rfc3339_ms(&call["start_time"]);
    eprintln!("[no-media] ended after {ms:.0} ms (sipp ran {took:?})");
    assert!(
        (2000.0..6000.0).contains(&ms),
        "ended {ms:.0} ms after the start, timeout 2 s"
    );
    let events = engine.get(&format!("/api/v1/calls/{}/events", encode(&id)));
    let no_media: Vec<&Value> = events.body["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| s(&e["type"]) == "no_media")
        .collect();
    assert_eq!(
        no_media.len(),
        2,
        "one per stream: {}",
        pretty(&events.body)
    );
    assert!(no_media.iter().all(|e| f(&e["silent_ms"]) >= 2000.0));
    assert!(
        engine.log().contains("failed: no media"),
        "no warn line in the log:\n{}",
        engine.log_tail()
    );
    assert_eq!(engine.get("/health/ready").status, 200);
}

#[test]
fn ulaw_encoder_reference_points() {
    use common::rtp_send::linear_to_ulaw;
    assert_eq!(linear_to_ulaw(0), 0xFF);
    assert_eq!(linear_to_ulaw(-1), 0x7F);
    assert_eq!(linear_to_ulaw(32767), 0x80);
    assert_eq!(linear_to_ulaw(-32768), 0x00);
    assert_eq!(linear_to_ulaw(1000), 0xCE);
}
