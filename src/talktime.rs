//! Talk-time analytics: the whole `GET /api/v1/calls/{id}/talk-time` answer,
//! computed from each participant's speech regions (see [`crate::vad`]).
//!
//! It is recomputed on every REST call, so it is one sort of all regions plus
//! linear sweeps: `O(R log R + R·S + B)` for `R` regions, `S` speakers and `B`
//! timeline buckets.
//!
//! # Definitions
//!
//! * Each speaker's regions are sorted, clipped to `[0, duration]` and merged
//!   (overlapping or touching regions of one speaker become one segment).
//! * **talkTime** (per speaker): total length of the speaker's segments.
//!   **totalTalkTime**: time during which *anyone* talks (union over
//!   speakers), so `totalTalkTime + totalSilence == duration`.
//! * **talkOverlap**: time during which two or more speakers talk;
//!   `instances` counts maximal overlapping stretches.
//! * **silenceGaps**: stretches where nobody talks, counted when they last at
//!   least [`MIN_SILENCE_GAP_MS`] (1 s) and lie *between* speech: the leading
//!   silence before the first word (ringing, IVR, recording start) and the
//!   trailing silence after the last word (the live "now", or hang-up) are not
//!   gaps. They still count in `totalSilence`.
//! * **turnTaking**: all segments in start order; a turn is a maximal run of
//!   consecutive segments of one speaker. `totalTurns` is the number of runs,
//!   `speakerSwitches = totalTurns − 1`, `averageTurnLength` the mean talk time
//!   per turn (sum of the turn's segments), `turnsPerMinute` over `duration`.
//! * **interruptionRate**: interruptions per minute of call. An interruption
//!   is a segment of speaker B that *starts strictly inside* a segment of
//!   another speaker A and overlaps it by at least [`MIN_INTERRUPTION_MS`]
//!   (0.5 s), so short back-channels ("mm-hm") do not count. At most one per
//!   segment. The count is also given as `interruptions`.
//! * **averageResponseTime**: over speaker switches, the mean time from the
//!   end of the previous turn's last segment to the start of the next turn;
//!   a next turn starting before the previous one ended counts as 0. `null`
//!   without switches.
//! * **listenToTalkRatio**: for the "agent" (the first speaker whose role is
//!   `agent`, case-insensitive, else the first speaker): the other speakers'
//!   talk time divided by the agent's. `null` with fewer than two speakers,
//!   for a mixed call, or when the agent never talked.
//! * **deadAirPercentage**: silence-gap time as a percentage of `duration`.
//! * **wordsPerMinute**: words over the speaker's *talk time* in minutes (the
//!   speaking rate); `null` when the word count is unknown or talk time is 0.
//! * **timeline**: 60 s buckets (`[start, end)` in seconds, the last one cut
//!   at `duration`), each with every speaker's talk seconds, overlap and
//!   silence (non-talk) seconds. Very long calls get wider buckets so that
//!   there are at most [`MAX_TIMELINE_BUCKETS`].
//! * A **mixed** call is a single stream with every party on it: the regions
//!   say when *someone* talks but not who, so overlap, turn-taking,
//!   interruptions and listen/talk are not measurable (reported as 0/`null`),
//!   and the output says `"mixed": true` with a `note`.
//!
//! Times are seconds (`f64`, rounded to 2 decimals), percentages 0–100
//! (rounded to 2 decimals), keys camelCase. Never panics, never emits NaN.

use serde_json::{json, Map, Value};

use crate::vad::SpeechRegion;

/// Shortest silence counted as a gap (ms).
pub const MIN_SILENCE_GAP_MS: u64 = 1000;
/// Least overlap for a barge-in to count as an interruption (ms).
pub const MIN_INTERRUPTION_MS: u64 = 500;
/// Timeline bucket length (ms) for calls up to [`MAX_TIMELINE_BUCKETS`] minutes.
pub const TIMELINE_BUCKET_MS: u64 = 60_000;
/// Most timeline entries; longer calls get wider buckets.
pub const MAX_TIMELINE_BUCKETS: u64 = 1440;

/// One participant's input.
#[derive(Debug, Clone, Copy)]
pub struct SpeakerInput<'a> {
    /// Participant id (the key in `timeline[].speakers`).
    pub id: &'a str,
    /// Role, if known (`agent`, `customer`, …).
    pub role: Option<&'a str>,
    /// Display label.
    pub label: &'a str,
    /// Speech regions in any order (they are sorted and merged).
    pub regions: &'a [SpeechRegion],
    /// Words spoken, when a transcript exists.
    pub words: Option<u64>,
}

fn secs(ms: u64) -> f64 {
    round2(ms as f64 / 1000.0)
}

fn round2(x: f64) -> f64 {
    if x.is_finite() {
        (x * 100.0).round() / 100.0
    } else {
        0.0
    }
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        round2(part as f64 * 100.0 / whole as f64)
    }
}

fn per_minute(count: u64, duration_ms: u64) -> f64 {
    if duration_ms == 0 {
        0.0
    } else {
        round2(count as f64 * 60_000.0 / duration_ms as f64)
    }
}

/// Sort, clip to `[0, duration]` and merge one speaker's regions.
fn merge(regions: &[SpeechRegion], duration_ms: u64) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = regions
        .iter()
        .map(|r| (r.start_ms.min(duration_ms), r.end_ms.min(duration_ms)))
        .filter(|(s, e)| e > s)
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Add `[s, e)` to the buckets' slot chosen by `add`.
fn spread(s: u64, e: u64, bucket_ms: u64, nb: usize, mut add: impl FnMut(usize, u64)) {
    let mut cur = s;
    while cur < e {
        let b = (cur / bucket_ms) as usize;
        if b >= nb {
            break;
        }
        let bucket_end = (b as u64 + 1).saturating_mul(bucket_ms);
        let stop = e.min(bucket_end);
        add(b, stop - cur);
        cur = stop;
    }
}

/// The talk-time answer. `duration_ms` is the call duration so far; `mixed`
/// marks a single-stream call (see the module docs for every definition).
pub fn talk_time(duration_ms: u64, speakers: &[SpeakerInput], mixed: bool) -> Value {
    let dur = duration_ms;
    let merged: Vec<Vec<(u64, u64)>> = speakers.iter().map(|s| merge(s.regions, dur)).collect();
    let talk: Vec<u64> = merged
        .iter()
        .map(|m| m.iter().map(|(s, e)| e - s).sum())
        .collect();

    // Sweep over all boundaries: +1 at a start, −1 at an end.
    let mut edges: Vec<(u64, i32)> = Vec::with_capacity(merged.iter().map(|m| m.len() * 2).sum());
    for m in &merged {
        for &(s, e) in m {
            edges.push((s, 1));
            edges.push((e, -1));
        }
    }
    // Ends before starts at the same instant: touching is not overlapping.
    edges.sort_unstable();
    // Elementary intervals with their number of active speakers.
    let mut intervals: Vec<(u64, u64, i32)> = Vec::with_capacity(edges.len());
    let mut active = 0i32;
    let mut prev = 0u64;
    for &(t, d) in &edges {
        if t > prev {
            intervals.push((prev, t, active));
        }
        active += d;
        prev = t;
    }
    if dur > prev {
        intervals.push((prev, dur, 0));
    }

    let mut union_ms = 0u64;
    let mut overlap_ms = 0u64;
    let mut overlap_instances = 0u64;
    let mut in_overlap = false;
    for &(s, e, n) in &intervals {
        if n >= 1 {
            union_ms += e - s;
        }
        if n >= 2 {
            overlap_ms += e - s;
            if !in_overlap {
                overlap_instances += 1;
            }
        }
        in_overlap = n >= 2;
    }
    if mixed {
        overlap_ms = 0;
        overlap_instances = 0;
    }
    let silence_ms = dur.saturating_sub(union_ms);

    // Silence gaps: zero-activity stretches between the first and last speech.
    let first_speech = intervals.iter().find(|i| i.2 >= 1).map(|i| i.0);
    let last_speech = intervals.iter().rev().find(|i| i.2 >= 1).map(|i| i.1);
    let mut gaps: Vec<u64> = Vec::new();
    if let (Some(first), Some(last)) = (first_speech, last_speech) {
        for &(s, e, n) in &intervals {
            if n == 0 && s >= first && e <= last && e - s >= MIN_SILENCE_GAP_MS {
                gaps.push(e - s);
            }
        }
    }
    let gap_total: u64 = gaps.iter().sum();
    let gap_longest = gaps.iter().copied().max().unwrap_or(0);
    let gap_avg = if gaps.is_empty() {
        0
    } else {
        gap_total / gaps.len() as u64
    };

    // Turn-taking over all segments in start order.
    let mut segs: Vec<(u64, u64, usize)> = Vec::with_capacity(edges.len() / 2);
    for (i, m) in merged.iter().enumerate() {
        segs.extend(m.iter().map(|&(s, e)| (s, e, i)));
    }
    segs.sort_unstable();
    let mut turns = 0u64;
    let mut turn_talk_total = 0u64;
    let mut switches = 0u64;
    let mut response_total = 0u64;
    let mut cur_speaker: Option<usize> = None;
    let mut cur_turn_end = 0u64;
    // Interruptions: per speaker, the latest segment started so far.
    let mut latest: Vec<Option<(u64, u64)>> = vec![None; merged.len()];
    let mut interruptions = 0u64;
    for &(s, e, who) in &segs {
        turn_talk_total += e - s;
        if cur_speaker == Some(who) {
            cur_turn_end = cur_turn_end.max(e);
        } else {
            if cur_speaker.is_some() {
                switches += 1;
                response_total += s.saturating_sub(cur_turn_end);
            }
            turns += 1;
            cur_speaker = Some(who);
            cur_turn_end = e;
        }
        let interrupted = latest.iter().enumerate().any(|(other, seg)| {
            other != who
                && matches!(seg, Some((os, oe)) if *os < s && s < *oe
                    && (*oe).min(e) - s >= MIN_INTERRUPTION_MS)
        });
        if interrupted {
            interruptions += 1;
        }
        latest[who] = Some((s, e));
    }
    if mixed {
        switches = 0;
        response_total = 0;
        interruptions = 0;
    }
    let avg_turn = turn_talk_total.checked_div(turns).unwrap_or(0);

    // Agent for listen/talk.
    let agent = speakers
        .iter()
        .position(|s| s.role.is_some_and(|r| r.eq_ignore_ascii_case("agent")))
        .or(if speakers.is_empty() { None } else { Some(0) });
    let listen_to_talk = match agent {
        Some(a) if !mixed && speakers.len() >= 2 && talk[a] > 0 => {
            let others: u64 = talk
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != a)
                .map(|(_, t)| *t)
                .sum();
            json!(round2(others as f64 / talk[a] as f64))
        }
        _ => Value::Null,
    };

    // Speakers.
    let speakers_json: Vec<Value> = speakers
        .iter()
        .zip(&merged)
        .zip(&talk)
        .map(|((sp, m), &t)| {
            let count = m.len() as u64;
            let longest = m.iter().map(|(s, e)| e - s).max().unwrap_or(0);
            let shortest = m.iter().map(|(s, e)| e - s).min().unwrap_or(0);
            let avg = t.checked_div(count).unwrap_or(0);
            let wpm = match sp.words {
                Some(w) if t > 0 => json!(round2(w as f64 * 60_000.0 / t as f64)),
                _ => Value::Null,
            };
            json!({
                "id": sp.id,
                "role": sp.role,
                "label": sp.label,
                "metrics": {
                    "talkTime": secs(t),
                    "talkTimePercentage": pct(t, dur),
                    "averageSegmentLength": secs(avg),
                    "longestSegment": secs(longest),
                    "shortestSegment": secs(shortest),
                    "segmentCount": count,
                    "wordsPerMinute": wpm,
                }
            })
        })
        .collect();

    // Timeline.
    let bucket_ms = {
        let n = dur.div_ceil(TIMELINE_BUCKET_MS);
        if n > MAX_TIMELINE_BUCKETS {
            dur.div_ceil(MAX_TIMELINE_BUCKETS)
                .div_ceil(TIMELINE_BUCKET_MS)
                .saturating_mul(TIMELINE_BUCKET_MS)
        } else {
            TIMELINE_BUCKET_MS
        }
    };
    let nb = dur.div_ceil(bucket_ms) as usize;
    let mut per_speaker = vec![vec![0u64; nb]; speakers.len()];
    let mut b_overlap = vec![0u64; nb];
    let mut b_silence = vec![0u64; nb];
    for (i, m) in merged.iter().enumerate() {
        for &(s, e) in m {
            spread(s, e, bucket_ms, nb, |b, d| per_speaker[i][b] += d);
        }
    }
    for &(s, e, n) in &intervals {
        if n == 0 {
            spread(s, e, bucket_ms, nb, |b, d| b_silence[b] += d);
        } else if n >= 2 && !mixed {
            spread(s, e, bucket_ms, nb, |b, d| b_overlap[b] += d);
        }
    }
    let timeline: Vec<Value> = (0..nb)
        .map(|b| {
            let start = b as u64 * bucket_ms;
            let end = start.saturating_add(bucket_ms).min(dur);
            let mut sp = Map::new();
            for (i, s) in speakers.iter().enumerate() {
                sp.insert(s.id.to_string(), json!(secs(per_speaker[i][b])));
            }
            json!({
                "start": secs(start),
                "end": secs(end),
                "speakers": sp,
                "overlap": secs(b_overlap[b]),
                "silence": secs(b_silence[b]),
            })
        })
        .collect();

    let mut out = json!({
        "duration": secs(dur),
        "totalTalkTime": secs(union_ms),
        "totalSilence": secs(silence_ms),
        "mixed": mixed,
        "speakers": speakers_json,
        "interaction": {
            "talkOverlap": {
                "totalTime": secs(overlap_ms),
                "percentage": pct(overlap_ms, dur),
                "instances": overlap_instances,
            },
            "silenceGaps": {
                "totalTime": secs(gap_total),
                "percentage": pct(gap_total, dur),
                "averageLength": secs(gap_avg),
                "instances": gaps.len(),
                "longestGap": secs(gap_longest),
            },
            "turnTaking": {
                "totalTurns": turns,
                "averageTurnLength": secs(avg_turn),
                "turnsPerMinute": per_minute(turns, dur),
                "speakerSwitches": switches,
            },
        },
        "timeline": timeline,
        "qualityIndicators": {
            "listenToTalkRatio": listen_to_talk,
            "deadAirPercentage": pct(gap_total, dur),
            "interruptionRate": if mixed { Value::Null } else { json!(per_minute(interruptions, dur)) },
            "interruptions": interruptions,
            "averageResponseTime": if switches == 0 {
                Value::Null
            } else {
                json!(round2(response_total as f64 / switches as f64 / 1000.0))
            },
        },
    });
    if mixed {
        out["note"] = json!(
            "single mixed stream: talk time is the time anyone is talking; speakers cannot be \
             separated, so overlap, turn-taking, interruptions and listen/talk ratio are not measured"
        );
    }
    out
}
