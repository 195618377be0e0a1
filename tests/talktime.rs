//! Talk-time analytics: hand-computed examples and properties.

use earshot::talktime::{talk_time, SpeakerInput};
use earshot::vad::SpeechRegion;
use proptest::prelude::*;
use serde_json::Value;

fn r(s: u64, e: u64) -> SpeechRegion {
    SpeechRegion {
        start_ms: s,
        end_ms: e,
    }
}

fn sp<'a>(id: &'a str, role: Option<&'a str>, regions: &'a [SpeechRegion]) -> SpeakerInput<'a> {
    SpeakerInput {
        id,
        role,
        label: id,
        regions,
        words: None,
    }
}

fn f(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for k in path.split('.') {
        cur = match k.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[k],
        };
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} not a number: {cur}"))
}

#[test]
fn two_speakers_with_overlap_and_gaps() {
    // agent: 0–10 s, 20–30 s; customer: 9–15 s (1 s overlap, starts inside
    // the agent's segment), 31–40 s. Duration 45 s.
    let a = [r(0, 10_000), r(20_000, 30_000)];
    let c = [r(9_000, 15_000), r(31_000, 40_000)];
    let mut agent = sp("a", Some("agent"), &a);
    agent.words = Some(50);
    let v = talk_time(45_000, &[agent, sp("c", Some("customer"), &c)], false);
    println!("{}", serde_json::to_string_pretty(&v).unwrap());
    assert_eq!(f(&v, "duration"), 45.0);
    // union: 0–15, 20–30, 31–40 = 15 + 10 + 9 = 34
    assert_eq!(f(&v, "totalTalkTime"), 34.0);
    assert_eq!(f(&v, "totalSilence"), 11.0);
    assert_eq!(v["mixed"], false);
    assert!(v.get("note").is_none());
    let m = &v["speakers"][0]["metrics"];
    assert_eq!(v["speakers"][0]["id"], "a");
    assert_eq!(v["speakers"][0]["role"], "agent");
    assert_eq!(f(m, "talkTime"), 20.0);
    assert_eq!(f(m, "talkTimePercentage"), 44.44);
    assert_eq!(f(m, "averageSegmentLength"), 10.0);
    assert_eq!(f(m, "segmentCount"), 2.0);
    // 50 words in 20 s of talk
    assert_eq!(f(m, "wordsPerMinute"), 150.0);
    let m = &v["speakers"][1]["metrics"];
    assert_eq!(f(m, "talkTime"), 15.0);
    assert_eq!(f(m, "longestSegment"), 9.0);
    assert_eq!(f(m, "shortestSegment"), 6.0);
    assert_eq!(m["wordsPerMinute"], Value::Null);

    let i = &v["interaction"];
    assert_eq!(f(i, "talkOverlap.totalTime"), 1.0);
    assert_eq!(f(i, "talkOverlap.instances"), 1.0);
    assert_eq!(f(i, "talkOverlap.percentage"), 2.22);
    // gaps between speech: 15–20 (5 s), 30–31 (1 s, counted: ≥ 1 s);
    // the trailing 40–45 is not a gap.
    assert_eq!(f(i, "silenceGaps.instances"), 2.0);
    assert_eq!(f(i, "silenceGaps.totalTime"), 6.0);
    assert_eq!(f(i, "silenceGaps.longestGap"), 5.0);
    assert_eq!(f(i, "silenceGaps.averageLength"), 3.0);
    assert_eq!(f(i, "silenceGaps.percentage"), 13.33);
    // turns: a(0), c(9), a(20), c(31)
    assert_eq!(f(i, "turnTaking.totalTurns"), 4.0);
    assert_eq!(f(i, "turnTaking.speakerSwitches"), 3.0);
    assert_eq!(f(i, "turnTaking.averageTurnLength"), 8.75);
    assert_eq!(f(i, "turnTaking.turnsPerMinute"), 5.33);

    let q = &v["qualityIndicators"];
    assert_eq!(f(q, "listenToTalkRatio"), 0.75);
    assert_eq!(f(q, "deadAirPercentage"), 13.33);
    // c at 9 s starts inside a's 0–10 and overlaps 1 s ≥ 0.5 s: 1 interruption
    assert_eq!(f(q, "interruptions"), 1.0);
    assert_eq!(f(q, "interruptionRate"), 1.33);
    // responses: a→c at 9 (-1 → 0), c→a 15→20 (5), a→c 30→31 (1): 6/3 = 2
    assert_eq!(f(q, "averageResponseTime"), 2.0);

    let tl = v["timeline"].as_array().unwrap();
    assert_eq!(tl.len(), 1);
    assert_eq!(f(&tl[0], "start"), 0.0);
    assert_eq!(f(&tl[0], "end"), 45.0);
    assert_eq!(f(&tl[0], "speakers.a"), 20.0);
    assert_eq!(f(&tl[0], "speakers.c"), 15.0);
    assert_eq!(f(&tl[0], "overlap"), 1.0);
    assert_eq!(f(&tl[0], "silence"), 11.0);
}

#[test]
fn regions_crossing_minute_boundaries() {
    // a: 50–70 s and 110–130 s, b: 65–125 s; duration 150 s.
    let a = [r(50_000, 70_000), r(110_000, 130_000)];
    let b = [r(65_000, 125_000)];
    let v = talk_time(150_000, &[sp("a", None, &a), sp("b", None, &b)], false);
    let tl = v["timeline"].as_array().unwrap();
    assert_eq!(tl.len(), 3);
    assert_eq!(f(&tl[0], "speakers.a"), 10.0);
    assert_eq!(f(&tl[0], "speakers.b"), 0.0);
    assert_eq!(f(&tl[0], "silence"), 50.0);
    assert_eq!(f(&tl[1], "speakers.a"), 20.0); // 60–70 and 110–120
    assert_eq!(f(&tl[1], "speakers.b"), 55.0); // 65–120
    assert_eq!(f(&tl[1], "overlap"), 15.0); // 65–70 and 110–120
    assert_eq!(f(&tl[1], "silence"), 0.0);
    assert_eq!(f(&tl[2], "start"), 120.0);
    assert_eq!(f(&tl[2], "end"), 150.0);
    assert_eq!(f(&tl[2], "speakers.a"), 10.0);
    assert_eq!(f(&tl[2], "speakers.b"), 5.0);
    assert_eq!(f(&tl[2], "overlap"), 5.0);
    assert_eq!(f(&tl[2], "silence"), 20.0);
    // b interrupts a at 65 s (5 s overlap); a's 110 s start is inside b's
    // segment too (15 s overlap): 2 interruptions.
    assert_eq!(f(&v, "qualityIndicators.interruptions"), 2.0);
    assert_eq!(f(&v, "interaction.talkOverlap.instances"), 2.0);
    // No agent role: the first speaker is the agent: 60 / 40.
    assert_eq!(f(&v, "qualityIndicators.listenToTalkRatio"), 1.5);
}

#[test]
fn backchannel_is_not_an_interruption_and_unsorted_input_is_merged() {
    // b says "mm-hm" (300 ms) inside a's turn; a's regions come unsorted
    // and overlapping.
    let a = [r(5_000, 12_000), r(0, 6_000)];
    let b = [r(3_000, 3_300), r(13_000, 14_000)];
    let v = talk_time(14_000, &[sp("a", None, &a), sp("b", None, &b)], false);
    assert_eq!(f(&v, "speakers.0.metrics.segmentCount"), 1.0);
    assert_eq!(f(&v, "speakers.0.metrics.talkTime"), 12.0);
    assert_eq!(f(&v, "qualityIndicators.interruptions"), 0.0);
    assert_eq!(f(&v, "interaction.talkOverlap.totalTime"), 0.3);
    // turns: a, b (back-channel), b? no: start order is a(0), b(3), b(13) → 2 turns
    assert_eq!(f(&v, "interaction.turnTaking.totalTurns"), 2.0);
    // the 1 s gap 12–13 counts (≥ 1 s)
    assert_eq!(f(&v, "interaction.silenceGaps.instances"), 1.0);
}

#[test]
fn single_speaker_and_mixed() {
    let a = [r(1_000, 4_000), r(4_500, 6_000), r(8_000, 9_000)];
    let v = talk_time(10_000, &[sp("a", None, &a)], false);
    assert_eq!(f(&v, "totalTalkTime"), 5.5);
    assert_eq!(f(&v, "totalSilence"), 4.5);
    // gaps: 4.0–4.5 too short; 6–8 counts; leading 0–1 and trailing 9–10 don't
    assert_eq!(f(&v, "interaction.silenceGaps.instances"), 1.0);
    assert_eq!(f(&v, "interaction.silenceGaps.totalTime"), 2.0);
    assert_eq!(f(&v, "interaction.turnTaking.totalTurns"), 1.0);
    assert_eq!(f(&v, "interaction.turnTaking.speakerSwitches"), 0.0);
    assert_eq!(v["qualityIndicators"]["listenToTalkRatio"], Value::Null);
    assert_eq!(v["qualityIndicators"]["averageResponseTime"], Value::Null);

    let m = talk_time(10_000, &[sp("mix", None, &a)], true);
    assert_eq!(m["mixed"], true);
    assert!(m["note"].as_str().unwrap().contains("mixed"));
    assert_eq!(f(&m, "totalTalkTime"), 5.5);
    assert_eq!(m["qualityIndicators"]["interruptionRate"], Value::Null);
}

#[test]
fn empty_call_and_nothing_said() {
    let v = talk_time(0, &[], false);
    assert_eq!(f(&v, "duration"), 0.0);
    assert_eq!(f(&v, "totalTalkTime"), 0.0);
    assert_eq!(v["speakers"].as_array().unwrap().len(), 0);
    assert_eq!(v["timeline"].as_array().unwrap().len(), 0);
    assert_eq!(f(&v, "qualityIndicators.deadAirPercentage"), 0.0);

    let none: [SpeechRegion; 0] = [];
    let v = talk_time(90_000, &[sp("a", None, &none), sp("b", None, &none)], false);
    assert_eq!(f(&v, "totalSilence"), 90.0);
    assert_eq!(f(&v, "speakers.0.metrics.talkTime"), 0.0);
    assert_eq!(f(&v, "speakers.0.metrics.averageSegmentLength"), 0.0);
    assert_eq!(f(&v, "interaction.silenceGaps.instances"), 0.0);
    assert_eq!(v["timeline"].as_array().unwrap().len(), 2);
    assert_eq!(f(&v, "timeline.1.silence"), 30.0);
    // Regions past the duration (a call still being measured) are clipped.
    let late = [r(80_000, 200_000)];
    let v = talk_time(90_000, &[sp("a", None, &late)], false);
    assert_eq!(f(&v, "totalTalkTime"), 10.0);
}

#[test]
fn very_long_call_has_bounded_timeline() {
    let a = [r(0, 1000), r(u64::MAX - 10, u64::MAX)];
    let v = talk_time(u64::MAX, &[sp("a", None, &a)], false);
    assert!(v["timeline"].as_array().unwrap().len() <= 1440);
    let v = talk_time(48 * 3_600_000, &[sp("a", None, &a)], false);
    let tl = v["timeline"].as_array().unwrap();
    assert_eq!(tl.len(), 1440);
    assert_eq!(f(&tl[0], "end"), 120.0);
}

proptest! {
    #[test]
    fn properties(
        duration in 0u64..400_000,
        speakers in prop::collection::vec(
            prop::collection::vec((0u64..450_000, 0u64..30_000), 0..30), 0..4),
        mixed in any::<bool>(),
    ) {
        let regions: Vec<Vec<SpeechRegion>> = speakers.iter()
            .map(|v| v.iter().map(|&(s, l)| r(s, s + l)).collect())
            .collect();
        let ids: Vec<String> = (0..regions.len()).map(|i| format!("p{i}")).collect();
        let inputs: Vec<SpeakerInput> = regions.iter().zip(&ids)
            .map(|(rg, id)| SpeakerInput { id, role: None, label: id, regions: rg, words: Some(100) })
            .collect();
        let v = talk_time(duration, &inputs, mixed);
        let text = serde_json::to_string(&v).unwrap();
        prop_assert!(!text.contains("NaN") && !text.contains("inf"));
        let d = f(&v, "duration");
        let total = f(&v, "totalTalkTime");
        prop_assert!(total <= d + 1e-9);
        prop_assert!((total + f(&v, "totalSilence") - d).abs() <= 0.011);
        let mut sum_talk = 0.0;
        let mut max_talk: f64 = 0.0;
        let mut min_talk = f64::MAX;
        for (i, _) in inputs.iter().enumerate() {
            let t = f(&v, &format!("speakers.{i}.metrics.talkTime"));
            let p = f(&v, &format!("speakers.{i}.metrics.talkTimePercentage"));
            prop_assert!(t <= d + 1e-9 && t <= total + 1e-9);
            prop_assert!((0.0..=100.0).contains(&p));
            sum_talk += t;
            max_talk = max_talk.max(t);
            min_talk = min_talk.min(t);
            let n = f(&v, &format!("speakers.{i}.metrics.segmentCount"));
            if n > 0.0 {
                let shortest = f(&v, &format!("speakers.{i}.metrics.shortestSegment"));
                let longest = f(&v, &format!("speakers.{i}.metrics.longestSegment"));
                prop_assert!(shortest <= longest);
            }
        }
        // union ≥ the largest talker, ≤ the sum
        prop_assert!(total + 0.011 >= max_talk && total <= sum_talk + 0.011 * inputs.len() as f64);
        let overlap = f(&v, "interaction.talkOverlap.totalTime");
        if inputs.len() >= 2 && !mixed {
            // With two speakers, union = sum − overlap.
            if inputs.len() == 2 {
                prop_assert!((sum_talk - overlap - total).abs() <= 0.03);
            }
            let talks: Vec<f64> = (0..inputs.len()).map(|i| f(&v, &format!("speakers.{i}.metrics.talkTime"))).collect();
            // overlap ≤ everyone's talk but the largest talker's
            prop_assert!(overlap <= sum_talk - max_talk + 0.011 * talks.len() as f64);
        }
        prop_assert!(overlap <= total + 1e-9);
        let gaps = f(&v, "interaction.silenceGaps.totalTime");
        prop_assert!(gaps <= f(&v, "totalSilence") + 1e-9);
        prop_assert!((0.0..=100.0).contains(&f(&v, "qualityIndicators.deadAirPercentage")));
        let turns = f(&v, "interaction.turnTaking.totalTurns");
        let switches = f(&v, "interaction.turnTaking.speakerSwitches");
        prop_assert!(switches <= turns);
        // Timeline buckets add up to the totals.
        let tl = v["timeline"].as_array().unwrap();
        let mut tl_sil = 0.0;
        let mut tl_len = 0.0;
        for b in tl {
            tl_sil += f(b, "silence");
            tl_len += f(b, "end") - f(b, "start");
            prop_assert!(f(b, "silence") <= f(b, "end") - f(b, "start") + 0.011);
        }
        prop_assert!((tl_len - d).abs() <= 0.011 * (tl.len() as f64 + 1.0));
        prop_assert!((tl_sil - f(&v, "totalSilence")).abs() <= 0.011 * (tl.len() as f64 + 1.0));
    }
}
