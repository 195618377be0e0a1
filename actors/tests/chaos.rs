//! Chaos: a sipp-forked two-party call of real prompts (`scripts/make-call`,
//! default `talk`), transcribed live by the real engine (tiny.en q8_0, one
//! ggml thread), while our own sender (`common::rtp_send`) impairs the RTP.
//! Each level runs on a fresh engine and gives one row: WER against the
//! placed prompts' texts, talk-time error against the truth, what the
//! engine counted (lost, late, duplicates, SSRC changes), how the call
//! ended, and whether the engine survived (alive after the call, clean
//! exit on SIGTERM).
//!
//! Levels: `clean`, `loss1` (1 % loss), `mixed5` (5 % loss + 2 % reorder +
//! 1 % duplicates + 0-40 ms jitter), `bursty15` (15 % Gilbert-Elliott
//! loss), `ssrc` (SSRC change mid-call on both streams), `stall` (both
//! streams stop for 10 s, then go on), `never` (no RTP ever: the engine,
//! run with `--rtp-timeout-secs 5`, must end the call as `failed: no
//! media` and BYE the SRC).
//!
//! * `chaos_levels` (ignored; `scripts/chaos-call` runs it in release):
//!   the levels in `CHAOS_LEVELS` (comma/space separated; default all),
//!   the call in `CHAOS_CALL` (default `talk`), the impairments' draw in
//!   `CHAOS_SEED` (default 0); prints the table.
//! * `chaos_mixed5_short`: the CI version, the `mixed5` level alone.
//!
//! Needs sipp, python3, the Asterisk prompts and the model: `scripts/setup`.

mod common;

use common::rtp_send::{self, GilbertElliott, Impairment, RtpSender};
use common::two_party::*;
use common::*;
use earshot::asr::wer;
use serde_json::Value;
use std::time::Instant;

/// `CHAOS_SEED` (default 0): another draw of every level's impairment
/// (which packets are lost, reordered, duplicated, delayed), to see how
/// much WER moves with the draw alone.
fn seed_offset() -> u64 {
    env_or("CHAOS_SEED", 0)
}

/// The RTP timeout of the `never` level's engine.
const NEVER_TIMEOUT_SECS: u64 = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Level {
    Clean,
    Loss1,
    Mixed5,
    Bursty15,
    Ssrc,
    Stall,
    Never,
}

const ALL: [Level; 7] = [
    Level::Clean,
    Level::Loss1,
    Level::Mixed5,
    Level::Bursty15,
    Level::Ssrc,
    Level::Stall,
    Level::Never,
];

/// 15 % loss in bursts: 20 % of the time in the Bad state (mean stay 5
/// packets, 100 ms), 75 % loss there, none in Good.
const BURSTY: GilbertElliott = GilbertElliott {
    p_good_bad: 0.05,
    p_bad_good: 0.2,
    loss_good: 0.0,
    loss_bad: 0.75,
};

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Clean => "clean",
            Level::Loss1 => "loss1",
            Level::Mixed5 => "mixed5",
            Level::Bursty15 => "bursty15",
            Level::Ssrc => "ssrc",
            Level::Stall => "stall",
            Level::Never => "never",
        }
    }

    fn what(self) -> String {
        match self {
            Level::Clean => "clean".into(),
            Level::Loss1 => "1 % loss".into(),
            Level::Mixed5 => "5 % loss+2 % reord+1 % dup+40 ms jit".into(),
            Level::Bursty15 => format!(
                "{:.0} % bursty loss (GE, bad run {:.0} pkts)",
                BURSTY.mean_loss() * 100.0,
                BURSTY.mean_bad_run()
            ),
            Level::Ssrc => "SSRC change mid-call".into(),
            Level::Stall => "RTP stops 10 s, resumes".into(),
            Level::Never => format!("RTP never arrives (timeout {NEVER_TIMEOUT_SECS} s)"),
        }
    }

    fn parse(s: &str) -> Option<Level> {
        ALL.into_iter().find(|l| l.name() == s)
    }

    /// The impairment of participant `i` (0 = a, 1 = b).
    fn impairment(self, i: usize) -> Impairment {
        let seed = 31_000 + 1_000 * seed_offset() + 10 * self as u64 + i as u64;
        let clean = Impairment::clean(seed);
        match self {
            Level::Clean => clean,
            Level::Loss1 => Impairment {
                loss: 0.01,
                ..clean
            },
            Level::Mixed5 => Impairment {
                loss: 0.05,
                reorder: 0.02,
                duplicate: 0.01,
                jitter_ms: 40,
                ..clean
            },
            Level::Bursty15 => Impairment {
                burst: Some(BURSTY),
                ..clean
            },
            // An SBC failover on each leg, at different moments.
            Level::Ssrc => Impairment {
                ssrc_change_at_ms: Some([15_000, 22_000][i]),
                ..clean
            },
            // Both legs come from one SBC: they stall together.
            Level::Stall => Impairment {
                stall: Some((12_000, 10_000)),
                ..clean
            },
            Level::Never => Impairment {
                silent: true,
                ..clean
            },
        }
    }
}

/// One level's outcome.
#[derive(Debug, Default)]
struct Row {
    level: String,
    what: String,
    /// (errors, reference words), both participants.
    wer: Option<(usize, usize)>,
    /// Talk-time error of a and b, %.
    talk_err: Option<[f64; 2]>,
    lost: u64,
    late: u64,
    dups: u64,
    ssrc_changes: u64,
    /// "completed: bye", "failed: no media", ...
    end: String,
    /// Seconds from the session's start to its end.
    ended_after_s: f64,
    /// The engine still ran after the call.
    alive: bool,
    /// Its exit on SIGTERM.
    exit: String,
    /// A panic of the level (harness assertion or engine trouble).
    error: Option<String>,
}

impl Row {
    fn wer_pct(&self) -> Option<f64> {
        self.wer.map(|(e, n)| 100.0 * e as f64 / n.max(1) as f64)
    }

    fn crashed(&self) -> bool {
        !self.alive || self.exit != "0"
    }
}

fn engine_opts(extra: &[&str]) -> EngineOpts {
    EngineOpts {
        asr: true,
        extra_args: extra.iter().map(|s| s.to_string()).collect(),
        ..EngineOpts::default()
    }
}

/// Engine-counted receive figures, summed over the streams.
fn fill_stats(row: &mut Row, call: &Value) {
    for st in call["streams"].as_array().into_iter().flatten() {
        let n = |k: &str| st["stats"][k].as_u64().unwrap_or(0);
        row.lost += n("lost");
        row.late += n("late");
        row.dups += n("duplicates");
        row.ssrc_changes += n("ssrc_changes");
    }
    row.end = format!("{}: {}", s(&call["status"]), s(&call["end_reason"]));
    row.ended_after_s = (rfc3339_ms(&call["end_time"]) - rfc3339_ms(&call["start_time"])) / 1000.0;
}

fn finish_engine(row: &mut Row, engine: &mut Engine) {
    row.alive = engine.exited().is_none() && engine.get("/health/ready").status == 200;
    row.exit = match engine.terminate() {
        Some(st) => st
            .code()
            .map(|c| c.to_string())
            .unwrap_or_else(|| format!("{st}")),
        None => "gone".into(),
    };
}

/// A level with media: the two-party call, then WER and talk time.
fn run_call(level: Level, call: &str) -> Row {
    let mut row = Row {
        level: level.name().into(),
        what: level.what(),
        ..Row::default()
    };
    let engine = Engine::start_with(engine_opts(&[]));
    let imp = [level.impairment(0), level.impairment(1)];
    let mut run = record_on(engine, call, imp);
    let t = final_transcript(&run.engine, &run.id);
    let (mut errors, mut words) = (0, 0);
    let mut talk = [0.0; 2];
    for (i, who) in ["a", "b"].iter().enumerate() {
        let reference = truth_text(&run.truth, who);
        let hyp = hypothesis(&t, &(i + 1).to_string());
        let (e, n) = wer::errors(&reference, &hyp);
        eprintln!(
            "[{}] {who}: {e}/{n} word errors\n  ref: {reference}\n  hyp: {hyp}",
            level.name()
        );
        errors += e;
        words += n;
        let m = f(&run.speaker(i)["metrics"]["talkTime"]);
        let tt = truth_talk(&run.truth, who);
        talk[i] = (m - tt) / tt * 100.0;
    }
    row.wer = Some((errors, words));
    row.talk_err = Some(talk);
    // The stored session, now that the transcript is complete.
    let stored = run.engine.call(&run.id).body;
    fill_stats(&mut row, &stored);
    for (i, r) in run.reports.iter().enumerate() {
        eprintln!(
            "[{}] sender {i}: {} packets, {} datagrams, dropped {} ({} in bursts), \
             duplicated {}, swapped {}, stalled {}, new SSRC {:?}",
            level.name(),
            r.packets,
            r.sent,
            r.dropped,
            r.burst_dropped,
            r.duplicated,
            r.swapped,
            r.stalled,
            r.new_ssrc
        );
    }
    finish_engine(&mut row, &mut run.engine);
    row
}

/// RTP never arrives: the engine must end the call itself.
fn run_never(call: &str) -> Row {
    let level = Level::Never;
    let mut row = Row {
        level: level.name().into(),
        what: level.what(),
        ..Row::default()
    };
    let timeout = NEVER_TIMEOUT_SECS.to_string();
    let mut engine = Engine::start_with(engine_opts(&["--rtp-timeout-secs", &timeout]));
    let sipp = Sipp::start(&engine, "no_media_call.xml", Transport::Udp);
    let id = sipp.call_id.clone();
    let live = engine.wait_active(&id, "both streams answered with ports", |c| {
        local_port(c, "1").is_some() && local_port(c, "2").is_some()
    });
    // Our sender, told never to send, "sends" to both ports.
    let start_at = Instant::now();
    let senders: Vec<RtpSender> = ["a", "b"]
        .iter()
        .enumerate()
        .map(|(i, who)| {
            let samples = rtp_send::read_wav_8k(&call_dir(call).join(format!("{who}.wav")));
            let port = local_port(&live, &(i + 1).to_string()).unwrap();
            RtpSender::start(
                samples,
                ([127, 0, 0, 1], port).into(),
                vec![],
                level.impairment(i),
                start_at,
            )
        })
        .collect();
    let out = sipp.expect_success(&engine);
    for r in senders.into_iter().map(RtpSender::finish) {
        assert_eq!(r.sent, 0, "the silent sender sent something");
    }
    assert!(
        out.messages.contains("BYE sip:"),
        "sipp got no BYE: {}",
        out.describe()
    );
    let stored = engine.wait_call(&id, "the session stored as ended", |c| {
        s(&c["status"]) != "active"
    });
    fill_stats(&mut row, &stored);
    let warned = engine.log().contains("failed: no media");
    if !warned {
        row.error = Some("no 'failed: no media' warn line in the log".into());
    }
    finish_engine(&mut row, &mut engine);
    row
}

fn run_level(level: Level, call: &str) -> Row {
    let t0 = Instant::now();
    let r = std::panic::catch_unwind(|| match level {
        Level::Never => run_never(call),
        l => run_call(l, call),
    });
    let row = r.unwrap_or_else(|p| Row {
        level: level.name().into(),
        what: level.what(),
        error: Some(
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into())
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        ..Row::default()
    });
    eprintln!("[{}] done in {:.0?}: {row:?}", level.name(), t0.elapsed());
    row
}

fn print_table(call: &str, rows: &[Row]) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "==== chaos-call: call `{call}`, seed {}, tiny.en q8_0, 1 ggml thread, {cores}-core machine ====",
        seed_offset()
    );
    println!(
        "{:<9} {:<40} {:>13} {:>13} {:>5} {:>4} {:>4} {:>4}  {:<28} {:>6}  crash",
        "level", "impairment", "WER", "talk err a/b", "lost", "late", "dup", "ssrc", "end", "after"
    );
    for r in rows {
        let wer = r
            .wer
            .map(|(e, n)| format!("{:.1} % {e}/{n}", r.wer_pct().unwrap_or(0.0)))
            .unwrap_or_else(|| "-".into());
        let talk = r
            .talk_err
            .map(|[a, b]| format!("{a:+.1}/{b:+.1} %"))
            .unwrap_or_else(|| "-".into());
        let crash = match (&r.error, r.crashed()) {
            (Some(e), _) => format!("ERROR: {e}"),
            (None, true) => format!("YES (alive {}, exit {})", r.alive, r.exit),
            (None, false) => format!("no (exit {})", r.exit),
        };
        println!(
            "{:<9} {:<40} {:>13} {:>13} {:>5} {:>4} {:>4} {:>4}  {:<28} {:>5.1}s  {crash}",
            r.level,
            r.what,
            wer,
            talk,
            r.lost,
            r.late,
            r.dups,
            r.ssrc_changes,
            r.end,
            r.ended_after_s
        );
    }
    println!("==== end ====");
}

/// What each level must show: no crash, the right end, and (at mixed5)
/// WER within 3 points of clean when clean ran too.
fn verdicts(rows: &[Row]) -> Vec<String> {
    let mut bad = vec![];
    for r in rows {
        if let Some(e) = &r.error {
            bad.push(format!("{}: {e}", r.level));
            continue;
        }
        if r.crashed() {
            bad.push(format!(
                "{}: engine alive {}, exit {}",
                r.level, r.alive, r.exit
            ));
        }
        let want = if r.level == "never" {
            "failed: no media"
        } else {
            "completed: bye"
        };
        if r.end != want {
            bad.push(format!("{}: ended {:?}, want {want:?}", r.level, r.end));
        }
    }
    let wer = |l: &str| rows.iter().find(|r| r.level == l).and_then(Row::wer_pct);
    if let (Some(clean), Some(m)) = (wer("clean"), wer("mixed5")) {
        let verdict = if m <= clean + 3.0 { "met" } else { "MISSED" };
        println!("goal: WER at mixed5 {m:.1} % vs clean {clean:.1} % + 3 points: {verdict}");
        if m > clean + 3.0 {
            bad.push(format!(
                "mixed5 WER {m:.1} % is more than 3 points over clean {clean:.1} %"
            ));
        }
    }
    bad
}

#[test]
#[ignore = "minutes per level; scripts/chaos-call runs it (release)"]
fn chaos_levels() {
    require_calls();
    let call = std::env::var("CHAOS_CALL").unwrap_or_else(|_| "talk".into());
    let levels: Vec<Level> = match std::env::var("CHAOS_LEVELS") {
        Ok(v) if !v.trim().is_empty() => v
            .split([',', ' '])
            .filter(|x| !x.is_empty())
            .map(|x| {
                Level::parse(x).unwrap_or_else(|| {
                    panic!(
                        "unknown level {x:?}; levels: {}",
                        ALL.map(Level::name).join(" ")
                    )
                })
            })
            .collect(),
        _ => ALL.to_vec(),
    };
    let rows: Vec<Row> = levels.iter().map(|&l| run_level(l, &call)).collect();
    print_table(&call, &rows);
    let bad = verdicts(&rows);
    assert!(bad.is_empty(), "chaos: {}", bad.join("; "));
}

/// The CI version: the 5 % level alone (loss, reordering, duplicates,
/// jitter) on the `talk` call: no crash, the call completes, and the WER
/// stays under an absolute bound. Measured on the 2-core VM: clean 2.6 %
/// (2/76 words), mixed5 5.3 % (4/76) in release and in a debug build
/// alike; the bound allows 3 more word errors than measured. ~47 s in a
/// debug build (the call is 44 s).
#[test]
fn chaos_mixed5_short() {
    require_calls();
    let row = run_level(Level::Mixed5, "talk");
    print_table("talk", std::slice::from_ref(&row));
    let bad = verdicts(std::slice::from_ref(&row));
    assert!(bad.is_empty(), "chaos mixed5: {}", bad.join("; "));
    let w = row.wer_pct().unwrap();
    assert!(
        w <= MIXED5_MAX_WER,
        "mixed5 WER {w:.1} % over {MIXED5_MAX_WER} %"
    );
    let [a, b] = row.talk_err.unwrap();
    assert!(
        a.abs() <= 10.0 && b.abs() <= 10.0,
        "talk-time error {a:+.1}/{b:+.1} % (limit 10 %)"
    );
}

/// See `chaos_mixed5_short`: measured 5.3 %, one word is 1.3 points.
const MIXED5_MAX_WER: f64 = 10.0;
