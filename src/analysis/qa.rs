//! Agent QA scoring: a rubric of checks (`config/qa-rubric.toml`) scored
//! over a call's final transcript and its media events (holds, silences,
//! overlapping speech), with evidence for every check, a score per group
//! and overall, a grade, strengths and areas for improvement.
//!
//! # Checks
//!
//! Each check has an id, a label (what good looks like, shown to people), a
//! group (`opening`, `listening`, `proactiveness`, `resolution`, `hold`,
//! `closing`), a weight and a rule of one of these kinds:
//!
//! * `agent_says` / `caller_says`: that party says one of `phrases`
//!   (whole words, case and punctuation ignored, `*` = any one word), in
//!   any final segment, or only in segments starting within the first
//!   `within_first_s` seconds of the call / ending within its last
//!   `within_last_s` seconds. Phrases are matched inside one segment.
//! * `hold_announced`: before *every* hold the agent says one of `phrases`
//!   in a segment that starts before the hold and ends at most `within_s`
//!   seconds before it. Not applicable without holds.
//! * `hold_thanked`: after every hold the agent says one of `phrases` in a
//!   segment starting after the hold began and at most `within_s` seconds
//!   after it ended. Not applicable without holds.
//! * `hold_length`: the longest hold lasts at most `max_s`. Not applicable
//!   without holds.
//! * `dead_air`: the longest silence gap, with hold time taken out (hold
//!   music is announced waiting, not dead air), lasts at most `max_s`.
//! * `overlaps`: at most `max` stretches of both parties talking at once.
//! * `caller_sentiment`: the caller's sentiment at the end of the call (an
//!   input, e.g. VADER compound of their last words) is at least `min`. Not
//!   applicable when the input has none.
//!
//! A check that is not applicable has `passed: None` and counts nowhere.
//! A group's `score_percent` and the `overall_qa_score` are the weighted
//! share of applicable checks passed, 0–100 (`None`/0 when nothing
//! applies). Grades: `excellent` ≥ 90, `good` ≥ 75, `fair` ≥ 60, else
//! `poor` (bands configurable in the rubric's `[grades]`).
//!
//! # Inputs
//!
//! [`QaInput`]: the final segments, who the agent is (a speaker label; when
//! absent, whoever speaks first), holds and silence gaps as `(start, end)`
//! seconds from the call start, the count of overlap stretches, the call
//! duration and the caller's end sentiment. [`MediaFacts::from_events`]
//! derives holds, gaps and overlaps from a session's media events.
//!
//! # Cost
//!
//! Scoring is on demand (snapshot or post-call), never per segment: it
//! normalises every final segment once (O(call words)), then each phrase
//! check is a first-word index lookup per word, and the hold checks look at
//! segments per hold: O(call words · checks + segments · holds + gaps ·
//! holds).

use super::summary::PhraseSet;
use super::{read_text, AnalysisError};
use crate::asr::wer::normalize;
use crate::asr::Segment;
use crate::media::MediaEvent;
use crate::session::{CallEvent, SessionRecord};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Rubric groups, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Opening,
    Listening,
    Proactiveness,
    Resolution,
    Hold,
    Closing,
}

impl Group {
    pub const ALL: [Group; 6] = [
        Group::Opening,
        Group::Listening,
        Group::Proactiveness,
        Group::Resolution,
        Group::Hold,
        Group::Closing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Opening => "opening",
            Group::Listening => "listening",
            Group::Proactiveness => "proactiveness",
            Group::Resolution => "resolution",
            Group::Hold => "hold",
            Group::Closing => "closing",
        }
    }

    pub fn parse(s: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// Phrase rule parameters (`agent_says`, `caller_says`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaysRule {
    pub phrases: Vec<String>,
    /// Only segments starting within this many seconds of the call start.
    pub within_first_s: Option<f64>,
    /// Only segments ending within this many seconds of the call end.
    pub within_last_s: Option<f64>,
}

/// What a check measures (see the module docs for each kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rule {
    AgentSays(SaysRule),
    CallerSays(SaysRule),
    HoldAnnounced { phrases: Vec<String>, within_s: f64 },
    HoldThanked { phrases: Vec<String>, within_s: f64 },
    HoldLength { max_s: f64 },
    DeadAir { max_s: f64 },
    Overlaps { max: u32 },
    CallerSentiment { min: f64 },
}

/// The rule kinds a rubric may use.
pub const RULE_KINDS: &[&str] = &[
    "agent_says",
    "caller_says",
    "hold_announced",
    "hold_thanked",
    "hold_length",
    "dead_air",
    "overlaps",
    "caller_sentiment",
];

/// One check of the rubric.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub id: String,
    pub label: String,
    pub group: Group,
    pub weight: f64,
    pub rule: Rule,
    /// The rule's phrases, compiled.
    #[serde(skip)]
    phrases: PhraseSet,
}

/// Score bands of the grades (lower bounds, percent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeBands {
    pub excellent: f64,
    pub good: f64,
    pub fair: f64,
}

impl Default for GradeBands {
    fn default() -> Self {
        Self {
            excellent: 90.0,
            good: 75.0,
            fair: 60.0,
        }
    }
}

/// Overall grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    Excellent,
    Good,
    Fair,
    Poor,
}

impl GradeBands {
    pub fn grade(&self, score: f64) -> Grade {
        if score >= self.excellent {
            Grade::Excellent
        } else if score >= self.good {
            Grade::Good
        } else if score >= self.fair {
            Grade::Fair
        } else {
            Grade::Poor
        }
    }
}

/// A loaded, validated rubric.
#[derive(Debug, Clone, Serialize)]
pub struct Rubric {
    pub checks: Vec<Check>,
    pub grades: GradeBands,
}

/// What a call offers the rubric. Times are seconds from the call start.
#[derive(Debug, Clone, Default)]
pub struct QaInput<'a> {
    /// Final segments, any order (non-finals are ignored).
    pub segments: &'a [Segment],
    /// The agent's speaker label (as in [`Segment::speaker`]); `None`: the
    /// speaker of the earliest segment. Every other speaker is the caller.
    pub agent: Option<&'a str>,
    /// Holds, `(start, end)`.
    pub holds: Vec<(f64, f64)>,
    /// Stretches where nobody talks, `(start, end)`.
    pub silence_gaps: Vec<(f64, f64)>,
    /// Stretches where both parties talk at once.
    pub overlap_instances: u32,
    /// Call duration; 0 or not finite: the last segment's end.
    pub duration: f64,
    /// The caller's sentiment at the end (e.g. VADER compound, −1..1).
    pub caller_end_sentiment: Option<f64>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submetric {
    /// The check id.
    pub metric: String,
    pub label: String,
    /// `None`: not applicable (excluded from the scores).
    pub passed: Option<bool>,
    pub weight: f64,
    /// A quote with its time, or the measured value against the limit.
    pub evidence: String,
    /// When the evidence happened (seconds from the call start).
    pub time: Option<f64>,
    /// The measured value, for measured checks.
    pub value: Option<f64>,
}

/// A group's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupScore {
    /// Weighted share of applicable checks passed, 0–100; `None` when no
    /// check of the group applies.
    pub score_percent: Option<f64>,
    pub submetrics: Vec<Submetric>,
}

/// The QA answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QaReport {
    /// Weighted share of applicable checks passed, 0–100 (0 when none applies).
    pub overall_qa_score: f64,
    pub grade: Grade,
    pub detailed_scores: BTreeMap<Group, GroupScore>,
    /// Labels of the checks passed.
    pub strengths: Vec<String>,
    /// Labels of the checks failed, with what was found.
    pub areas_for_improvement: Vec<String>,
    /// The speaker scored as the agent.
    pub agent: Option<String>,
    pub checks_applicable: usize,
    pub checks_passed: usize,
}

/// One `[[checks]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    id: String,
    label: String,
    group: String,
    #[serde(default = "one")]
    weight: f64,
    kind: String,
    #[serde(default)]
    phrases: Option<Vec<String>>,
    within_first_s: Option<f64>,
    within_last_s: Option<f64>,
    within_s: Option<f64>,
    max_s: Option<f64>,
    max: Option<u32>,
    min: Option<f64>,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRubric {
    #[serde(default)]
    grades: GradeBands,
    #[serde(default)]
    checks: Vec<RawCheck>,
}

impl RawCheck {
    /// Parameters given, by name (to reject those the kind does not use).
    fn given(&self) -> Vec<&'static str> {
        let mut v = vec![];
        let mut add = |name, set: bool| {
            if set {
                v.push(name)
            }
        };
        add("phrases", self.phrases.is_some());
        add("within_first_s", self.within_first_s.is_some());
        add("within_last_s", self.within_last_s.is_some());
        add("within_s", self.within_s.is_some());
        add("max_s", self.max_s.is_some());
        add("max", self.max.is_some());
        add("min", self.min.is_some());
        v
    }
}

/// A finite, non-negative number or an error naming the check and key.
fn seconds(id: &str, key: &str, v: Option<f64>) -> Result<f64, String> {
    match v {
        None => Err(format!("check {id:?}: kind needs `{key}`")),
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        Some(x) => Err(format!(
            "check {id:?}: `{key}` = {x} must be a number of seconds ≥ 0"
        )),
    }
}

fn opt_seconds(id: &str, key: &str, v: Option<f64>) -> Result<Option<f64>, String> {
    v.map(|x| seconds(id, key, Some(x))).transpose()
}

fn build_check(c: RawCheck) -> Result<Check, String> {
    let id = c.id.trim().to_string();
    if id.is_empty() {
        return Err("a check has an empty `id`".into());
    }
    let group = Group::parse(&c.group).ok_or_else(|| {
        format!(
            "check {id:?}: unknown group {:?} (expected one of {})",
            c.group,
            Group::ALL.map(Group::as_str).join(", ")
        )
    })?;
    if !(c.weight.is_finite() && c.weight > 0.0) {
        return Err(format!("check {id:?}: weight {} must be > 0", c.weight));
    }
    let allowed: &[&str] = match c.kind.as_str() {
        "agent_says" | "caller_says" => &["phrases", "within_first_s", "within_last_s"],
        "hold_announced" | "hold_thanked" => &["phrases", "within_s"],
        "hold_length" | "dead_air" => &["max_s"],
        "overlaps" => &["max"],
        "caller_sentiment" => &["min"],
        other => {
            return Err(format!(
                "check {id:?}: unknown rule kind {other:?} (expected one of {})",
                RULE_KINDS.join(", ")
            ))
        }
    };
    if let Some(extra) = c.given().into_iter().find(|k| !allowed.contains(k)) {
        return Err(format!(
            "check {id:?}: `{extra}` does not apply to kind {:?} (it takes {})",
            c.kind,
            allowed.join(", ")
        ));
    }
    let phrases = c.phrases.clone().unwrap_or_default();
    let compiled = if allowed.contains(&"phrases") {
        if phrases.is_empty() {
            return Err(format!("check {id:?}: kind {:?} needs `phrases`", c.kind));
        }
        PhraseSet::new(&phrases).map_err(|e| format!("check {id:?}: {e}"))?
    } else {
        PhraseSet::default()
    };
    let says = |c: &RawCheck| -> Result<SaysRule, String> {
        Ok(SaysRule {
            phrases: phrases.clone(),
            within_first_s: opt_seconds(&id, "within_first_s", c.within_first_s)?,
            within_last_s: opt_seconds(&id, "within_last_s", c.within_last_s)?,
        })
    };
    let rule = match c.kind.as_str() {
        "agent_says" => Rule::AgentSays(says(&c)?),
        "caller_says" => Rule::CallerSays(says(&c)?),
        "hold_announced" => Rule::HoldAnnounced {
            phrases: phrases.clone(),
            within_s: seconds(&id, "within_s", c.within_s)?,
        },
        "hold_thanked" => Rule::HoldThanked {
            phrases: phrases.clone(),
            within_s: seconds(&id, "within_s", c.within_s)?,
        },
        "hold_length" => Rule::HoldLength {
            max_s: seconds(&id, "max_s", c.max_s)?,
        },
        "dead_air" => Rule::DeadAir {
            max_s: seconds(&id, "max_s", c.max_s)?,
        },
        "overlaps" => Rule::Overlaps {
            max: c
                .max
                .ok_or_else(|| format!("check {id:?}: kind needs `max`"))?,
        },
        _ => Rule::CallerSentiment {
            min: match c.min {
                Some(m) if (-1.0..=1.0).contains(&m) => m,
                Some(m) => return Err(format!("check {id:?}: `min` = {m} must be in -1..1")),
                None => return Err(format!("check {id:?}: kind needs `min`")),
            },
        },
    };
    Ok(Check {
        id,
        label: c.label,
        group,
        weight: c.weight,
        rule,
        phrases: compiled,
    })
}

impl Rubric {
    /// Load and validate a rubric file; errors name the file and the check.
    pub fn load(path: &Path) -> Result<Rubric, AnalysisError> {
        Self::parse(&read_text(path)?, &path.display().to_string())
    }

    /// Parse and validate rubric text (errors name it "qa rubric").
    pub fn from_toml(text: &str) -> Result<Rubric, AnalysisError> {
        Self::parse(text, "qa rubric")
    }

    fn parse(text: &str, origin: &str) -> Result<Rubric, AnalysisError> {
        let raw: RawRubric = toml::from_str(text)
            .map_err(|e| AnalysisError::config(origin, e.to_string().trim()))?;
        let g = raw.grades;
        let bands_ok = [g.excellent, g.good, g.fair]
            .iter()
            .all(|x| x.is_finite() && (0.0..=100.0).contains(x))
            && g.excellent >= g.good
            && g.good >= g.fair;
        if !bands_ok {
            return Err(AnalysisError::config(
                origin,
                "[grades]: need 100 ≥ excellent ≥ good ≥ fair ≥ 0",
            ));
        }
        if raw.checks.is_empty() {
            return Err(AnalysisError::config(origin, "no [[checks]]"));
        }
        let mut checks: Vec<Check> = Vec::with_capacity(raw.checks.len());
        for c in raw.checks {
            let c = build_check(c).map_err(|m| AnalysisError::config(origin, m))?;
            if checks.iter().any(|x| x.id == c.id) {
                return Err(AnalysisError::config(
                    origin,
                    format!("check {:?}: duplicate id", c.id),
                ));
            }
            checks.push(c);
        }
        Ok(Rubric {
            checks,
            grades: raw.grades,
        })
    }

    /// Score a call (on demand; see the module docs for the cost).
    pub fn score(&self, input: &QaInput) -> QaReport {
        let call = Call::new(input);
        let mut groups: BTreeMap<Group, GroupScore> = BTreeMap::new();
        let mut strengths = vec![];
        let mut areas = vec![];
        let (mut w_pass, mut w_all) = (0.0, 0.0);
        let (mut applicable, mut passed) = (0, 0);
        for c in &self.checks {
            let o = call.evaluate(c);
            if let Some(p) = o.passed {
                applicable += 1;
                w_all += c.weight;
                if p {
                    passed += 1;
                    w_pass += c.weight;
                    strengths.push(c.label.clone());
                } else {
                    areas.push(format!("{} ({})", c.label, o.evidence));
                }
            }
            groups
                .entry(c.group)
                .or_insert_with(|| GroupScore {
                    score_percent: None,
                    submetrics: vec![],
                })
                .submetrics
                .push(Submetric {
                    metric: c.id.clone(),
                    label: c.label.clone(),
                    passed: o.passed,
                    weight: c.weight,
                    evidence: o.evidence,
                    time: o.time.map(|t| (t * 100.0).round() / 100.0),
                    value: o.value,
                });
        }
        for g in groups.values_mut() {
            let (mut p, mut a) = (0.0, 0.0);
            for s in &g.submetrics {
                if let Some(ok) = s.passed {
                    a += s.weight;
                    if ok {
                        p += s.weight;
                    }
                }
            }
            g.score_percent = (a > 0.0).then(|| percent(p, a));
        }
        let overall = if w_all > 0.0 {
            percent(w_pass, w_all)
        } else {
            0.0
        };
        QaReport {
            overall_qa_score: overall,
            grade: self.grades.grade(overall),
            detailed_scores: groups,
            strengths,
            areas_for_improvement: areas,
            agent: call.agent,
            checks_applicable: applicable,
            checks_passed: passed,
        }
    }
}

fn percent(part: f64, whole: f64) -> f64 {
    (part * 1000.0 / whole).round() / 10.0
}

/// Holds, silence gaps and overlaps of a call, from its media events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaFacts {
    /// `(start, end)` seconds, sorted.
    pub holds: Vec<(f64, f64)>,
    /// Stretches of at least [`crate::talktime::MIN_SILENCE_GAP_MS`] where
    /// no stream has speech, between the first and the last speech.
    pub silence_gaps: Vec<(f64, f64)>,
    /// Maximal stretches where two or more streams have speech.
    pub overlap_instances: u32,
}

impl MediaFacts {
    /// From a session's events: holds from `hold_ended` (its start and
    /// end; a `hold_started` never ended runs to `duration`), speech from
    /// `speech_ended` regions per stream label (a `speech_started` never
    /// ended is ignored). O(E log E) in the events: post-call or snapshot.
    pub fn from_events(events: &[CallEvent], duration: f64) -> MediaFacts {
        let mut regions: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
        for e in events {
            if let MediaEvent::SpeechEnded { start_ms, end_ms } = e.event {
                if end_ms > start_ms {
                    regions
                        .entry(e.label.as_str())
                        .or_default()
                        .push((start_ms, end_ms));
                }
            }
        }
        Self::build(holds_of(events, duration), regions)
    }

    /// From a session record: holds from its events (as
    /// [`MediaFacts::from_events`]), speech from each stream's complete
    /// speech regions (the event log is capped at
    /// [`crate::session::MAX_EVENTS`]; the regions are not).
    pub fn from_record(rec: &SessionRecord, duration: f64) -> MediaFacts {
        let regions: BTreeMap<&str, Vec<(u64, u64)>> = rec
            .streams
            .iter()
            .map(|s| {
                let r = s
                    .speech
                    .iter()
                    .filter(|r| r.end_ms > r.start_ms)
                    .map(|r| (r.start_ms, r.end_ms))
                    .collect();
                (s.label.as_str(), r)
            })
            .collect();
        Self::build(holds_of(&rec.events, duration), regions)
    }

    /// Gaps and overlaps from per-stream speech regions (ms).
    fn build(holds: Vec<(f64, f64)>, mut regions: BTreeMap<&str, Vec<(u64, u64)>>) -> MediaFacts {
        // +1 at a start, −1 at an end; at the same instant ends first, so
        // touching regions do not overlap.
        let mut edges: Vec<(u64, i32)> = vec![];
        for r in regions.values_mut() {
            r.sort_unstable();
            let mut merged: Vec<(u64, u64)> = vec![];
            for &(s, e) in r.iter() {
                match merged.last_mut() {
                    Some(last) if s <= last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            for (s, e) in merged {
                edges.push((s, 1));
                edges.push((e, -1));
            }
        }
        edges.sort_unstable();
        let mut active = 0i32;
        let mut overlap_instances = 0u32;
        let mut silence_gaps = vec![];
        let mut quiet_since: Option<u64> = None;
        for (t, d) in edges {
            let before = active;
            active += d;
            if before < 2 && active >= 2 {
                overlap_instances += 1;
            }
            if before == 0 && active > 0 {
                if let Some(q) = quiet_since.take() {
                    if t - q >= crate::talktime::MIN_SILENCE_GAP_MS {
                        silence_gaps.push((ms(q), ms(t)));
                    }
                }
            }
            if active == 0 {
                quiet_since = Some(t);
            }
        }
        MediaFacts {
            holds,
            silence_gaps,
            overlap_instances,
        }
    }
}

/// Holds from `hold_ended` (its start and end); a `hold_started` never
/// ended runs to `duration`. Sorted by start.
fn holds_of(events: &[CallEvent], duration: f64) -> Vec<(f64, f64)> {
    let mut holds = vec![];
    let mut open: BTreeMap<&str, u64> = BTreeMap::new();
    for e in events {
        match e.event {
            MediaEvent::HoldStarted { at_ms } => {
                open.insert(e.label.as_str(), at_ms);
            }
            MediaEvent::HoldEnded { start_ms, end_ms } => {
                open.remove(e.label.as_str());
                if end_ms >= start_ms {
                    holds.push((ms(start_ms), ms(end_ms)));
                }
            }
            _ => {}
        }
    }
    for at in open.into_values() {
        holds.push((ms(at), ms(at).max(duration)));
    }
    holds.sort_by(|a, b| a.0.total_cmp(&b.0));
    holds
}

fn ms(x: u64) -> f64 {
    x as f64 / 1000.0
}

/// What one check found.
struct Outcome {
    passed: Option<bool>,
    evidence: String,
    time: Option<f64>,
    value: Option<f64>,
}

impl Outcome {
    fn measured(passed: bool, evidence: String, time: Option<f64>, value: f64) -> Self {
        Outcome {
            passed: Some(passed),
            evidence,
            time,
            value: Some(value),
        }
    }

    fn not_applicable(why: &str) -> Self {
        Outcome {
            passed: None,
            evidence: why.to_string(),
            time: None,
            value: None,
        }
    }
}

/// A final segment, normalised once.
struct Utterance<'a> {
    seg: &'a Segment,
    agent: bool,
    words: Vec<String>,
}

/// The call as the checks see it.
struct Call<'a> {
    utts: Vec<Utterance<'a>>,
    agent: Option<String>,
    holds: Vec<(f64, f64)>,
    gaps: Vec<(f64, f64)>,
    overlaps: u32,
    duration: f64,
    sentiment: Option<f64>,
}

/// Quote of a segment for evidence.
fn quote(seg: &Segment) -> String {
    const MAX: usize = 160;
    let t = seg.text.trim();
    let t = if t.chars().count() > MAX {
        let cut: String = t.chars().take(MAX).collect();
        format!("{cut}…")
    } else {
        t.to_string()
    };
    format!("\"{t}\" ({}, {:.1} s)", seg.speaker, seg.start_time)
}

fn finite(x: f64) -> bool {
    x.is_finite()
}

impl<'a> Call<'a> {
    fn new(input: &QaInput<'a>) -> Self {
        let mut segs: Vec<&Segment> = input
            .segments
            .iter()
            .filter(|s| s.is_final && !s.text.trim().is_empty() && finite(s.start_time))
            .collect();
        segs.sort_by(|a, b| {
            a.start_time
                .total_cmp(&b.start_time)
                .then(a.segment_id.cmp(&b.segment_id))
        });
        let agent = input
            .agent
            .map(str::to_string)
            .or_else(|| segs.first().map(|s| s.speaker.clone()));
        let utts = segs
            .into_iter()
            .map(|s| Utterance {
                seg: s,
                agent: agent.as_deref() == Some(s.speaker.as_str()),
                words: normalize(&s.text),
            })
            .collect::<Vec<_>>();
        let last_end = utts
            .iter()
            .map(|u| u.seg.end_time)
            .filter(|x| finite(*x))
            .fold(0.0, f64::max);
        let duration = if finite(input.duration) && input.duration > 0.0 {
            input.duration
        } else {
            last_end
        };
        let clean = |v: &[(f64, f64)]| -> Vec<(f64, f64)> {
            let mut v: Vec<(f64, f64)> = v
                .iter()
                .copied()
                .filter(|(s, e)| finite(*s) && finite(*e) && e >= s)
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0));
            v
        };
        Call {
            utts,
            agent,
            holds: clean(&input.holds),
            gaps: clean(&input.silence_gaps),
            overlaps: input.overlap_instances,
            duration,
            sentiment: input.caller_end_sentiment.filter(|x| finite(*x)),
        }
    }

    /// First segment of the party within the time filter that says a phrase.
    fn find(
        &self,
        agent: bool,
        phrases: &PhraseSet,
        keep: impl Fn(&Segment) -> bool,
    ) -> Option<&Utterance<'a>> {
        self.utts
            .iter()
            .filter(|u| u.agent == agent && keep(u.seg))
            .find(|u| phrases.find(&u.words).is_some())
    }

    fn evaluate(&self, c: &Check) -> Outcome {
        match &c.rule {
            Rule::AgentSays(r) => self.says(true, r, &c.phrases),
            Rule::CallerSays(r) => self.says(false, r, &c.phrases),
            Rule::HoldAnnounced { within_s, .. } => {
                self.per_hold(&c.phrases, "announced", |u, (s, _)| {
                    u.seg.start_time <= s && u.seg.end_time >= s - within_s
                })
            }
            Rule::HoldThanked { within_s, .. } => {
                self.per_hold(&c.phrases, "followed up", |u, (s, e)| {
                    u.seg.start_time >= s && u.seg.start_time <= e + within_s
                })
            }
            Rule::HoldLength { max_s } => {
                let Some((s, e)) = self
                    .holds
                    .iter()
                    .copied()
                    .max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)))
                else {
                    return Outcome::not_applicable("no hold in the call");
                };
                let len = e - s;
                Outcome::measured(
                    len <= *max_s,
                    format!("longest hold {len:.1} s at {s:.1} s (limit {max_s} s)"),
                    Some(s),
                    round1(len),
                )
            }
            Rule::DeadAir { max_s } => {
                let (at, len) = self.longest_silence();
                let where_ = if len > 0.0 {
                    format!(" at {at:.1} s")
                } else {
                    String::new()
                };
                Outcome::measured(
                    len <= *max_s,
                    format!("longest silence outside holds {len:.1} s{where_} (limit {max_s} s)"),
                    (len > 0.0).then_some(at),
                    round1(len),
                )
            }
            Rule::Overlaps { max } => Outcome::measured(
                self.overlaps <= *max,
                format!(
                    "{} stretch(es) of both talking at once (limit {max})",
                    self.overlaps
                ),
                None,
                f64::from(self.overlaps),
            ),
            Rule::CallerSentiment { min } => match self.sentiment {
                None => Outcome::not_applicable("no caller sentiment"),
                Some(v) => Outcome::measured(
                    v >= *min,
                    format!("caller sentiment at the end {v:.2} (minimum {min})"),
                    None,
                    (v * 1000.0).round() / 1000.0,
                ),
            },
        }
    }

    fn says(&self, agent: bool, r: &SaysRule, phrases: &PhraseSet) -> Outcome {
        let first = r.within_first_s;
        let last = r.within_last_s.map(|l| self.duration - l);
        let found = self.find(agent, phrases, |s| {
            first.is_none_or(|f| s.start_time <= f) && last.is_none_or(|l| s.end_time >= l)
        });
        let who = if agent { "agent" } else { "caller" };
        match found {
            Some(u) => {
                let m = phrases.find(&u.words);
                let p = m.map(|m| phrases.phrase(m.phrase)).unwrap_or("");
                Outcome {
                    passed: Some(true),
                    evidence: format!("{} [{p}]", quote(u.seg)),
                    time: Some(u.seg.start_time),
                    value: None,
                }
            }
            None => {
                let mut when = String::new();
                if let Some(f) = r.within_first_s {
                    when.push_str(&format!(" in the first {f} s"));
                }
                if let Some(l) = r.within_last_s {
                    when.push_str(&format!(" in the last {l} s"));
                }
                let example = phrases.phrase(0);
                Outcome {
                    passed: Some(false),
                    evidence: format!("{who} never said e.g. \"{example}\"{when}"),
                    time: None,
                    value: None,
                }
            }
        }
    }

    fn per_hold(
        &self,
        phrases: &PhraseSet,
        what: &str,
        near: impl Fn(&Utterance, (f64, f64)) -> bool,
    ) -> Outcome {
        if self.holds.is_empty() {
            return Outcome::not_applicable("no hold in the call");
        }
        let mut ok = true;
        let mut notes = vec![];
        let mut time = None;
        for &h in &self.holds {
            let hit = self
                .utts
                .iter()
                .filter(|u| u.agent && near(u, h))
                .find(|u| phrases.find(&u.words).is_some());
            match hit {
                Some(u) => {
                    time.get_or_insert(u.seg.start_time);
                    notes.push(format!("hold at {:.1} s: {}", h.0, quote(u.seg)));
                }
                None => {
                    ok = false;
                    notes.push(format!("hold at {:.1} s not {what}", h.0));
                }
            }
        }
        Outcome {
            passed: Some(ok),
            evidence: notes.join("; "),
            time,
            value: None,
        }
    }

    /// Longest stretch of silence gaps with the holds taken out: (start, length).
    fn longest_silence(&self) -> (f64, f64) {
        let mut best = (0.0, 0.0);
        for &(gs, ge) in &self.gaps {
            let mut cur = gs;
            for &(hs, he) in &self.holds {
                if he <= cur || hs >= ge {
                    continue;
                }
                if hs > cur && hs - cur > best.1 {
                    best = (cur, hs - cur);
                }
                cur = cur.max(he);
            }
            if ge > cur && ge - cur > best.1 {
                best = (cur, ge - cur);
            }
        }
        best
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The caller's last words: texts of the final segments of every speaker
/// but the agent (as in [`QaInput::agent`]) starting within the last
/// `last_s` seconds of the call, in time order. Feed them to a sentiment
/// scorer for [`QaInput::caller_end_sentiment`].
pub fn caller_tail<'s>(
    segments: &'s [Segment],
    agent: Option<&str>,
    duration: f64,
    last_s: f64,
) -> Vec<&'s str> {
    let mut segs: Vec<&Segment> = segments
        .iter()
        .filter(|s| s.is_final && !s.text.trim().is_empty() && finite(s.start_time))
        .collect();
    segs.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    let agent = agent.or_else(|| segs.first().map(|s| s.speaker.as_str()));
    segs.iter()
        .filter(|s| Some(s.speaker.as_str()) != agent && s.start_time >= duration - last_s)
        .map(|s| s.text.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::Label;

    const SHIPPED: &str = include_str!("../../config/qa-rubric.toml");

    fn seg(id: u64, speaker: &str, start: f64, end: f64, text: &str) -> Segment {
        Segment {
            segment_id: id,
            utterance_id: id,
            participant_id: None,
            speaker: speaker.into(),
            stream_label: speaker.into(),
            text: text.into(),
            start_time: start,
            end_time: end,
            duration: end - start,
            confidence: 0.9,
            words: vec![],
            language: Some("en".into()),
            is_final: true,
            lagging: false,
        }
    }

    fn err(text: &str) -> String {
        Rubric::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn shipped_rubric_has_17_checks_in_the_6_groups() {
        let r = Rubric::from_toml(SHIPPED).unwrap();
        assert_eq!(r.checks.len(), 17);
        for g in Group::ALL {
            assert!(r.checks.iter().any(|c| c.group == g), "{g:?} has no check");
        }
        assert_eq!(r.grades, GradeBands::default());
        assert_eq!(r.grades.grade(90.0), Grade::Excellent);
        assert_eq!(r.grades.grade(89.9), Grade::Good);
        assert_eq!(r.grades.grade(60.0), Grade::Fair);
        assert_eq!(r.grades.grade(59.9), Grade::Poor);
    }

    #[test]
    fn bad_rubrics_are_errors_naming_the_check() {
        let check = |extra: &str| {
            format!("[[checks]]\nid = \"x1\"\nlabel = \"L\"\ngroup = \"opening\"\n{extra}\n")
        };
        let e = err(&check("kind = \"agent_shouts\"\nphrases = [\"hi\"]"));
        assert!(e.contains("\"x1\"") && e.contains("agent_shouts"), "{e}");
        assert!(e.starts_with("qa rubric: "), "{e}");
        let e = err(&check("kind = \"agent_says\"").replace("opening", "openning"));
        assert!(e.contains("\"x1\"") && e.contains("openning"), "{e}");
        let e = err(&check("kind = \"agent_says\""));
        assert!(e.contains("\"x1\"") && e.contains("phrases"), "{e}");
        let e = err(&check("kind = \"dead_air\"\nmax_s = 5\nwithin_s = 3"));
        assert!(e.contains("within_s") && e.contains("dead_air"), "{e}");
        let e = err(&check("kind = \"dead_air\"\nmax_s = -1"));
        assert!(e.contains("max_s"), "{e}");
        let e = err(&check("kind = \"caller_sentiment\"\nmin = 2"));
        assert!(e.contains("min"), "{e}");
        let e = err(&check("kind = \"agent_says\"\nphrases = [\"* hi\"]"));
        assert!(e.contains("wildcard"), "{e}");
        let e = err(&check("kind = \"overlaps\"\nmax = 1\nweight = 0"));
        assert!(e.contains("weight"), "{e}");
        let e = err(&check("kind = \"overlaps\"\nmax = 1\nphrasse = []"));
        assert!(e.contains("phrasse"), "{e}");
        let two = format!(
            "{}{}",
            check("kind = \"overlaps\"\nmax = 1"),
            check("kind = \"overlaps\"\nmax = 1")
        );
        assert!(err(&two).contains("duplicate"));
        assert!(err("[grades]\nexcellent = 50\ngood = 75\nfair = 60\n").contains("grades"));
        assert!(err("").contains("no [[checks]]"));
        assert!(err("checks = 3").starts_with("qa rubric"));
        let missing = Rubric::load(Path::new("/nonexistent/qa-rubric.toml")).unwrap_err();
        assert!(missing.to_string().contains("/nonexistent/qa-rubric.toml"));
    }

    fn ev(label: &str, event: MediaEvent) -> CallEvent {
        CallEvent {
            label: Label::new(label),
            participant_id: None,
            event,
        }
    }

    #[test]
    fn media_facts_from_events() {
        use MediaEvent::*;
        let events = [
            ev("1", SpeechStarted { at_ms: 1000 }),
            ev(
                "1",
                SpeechEnded {
                    start_ms: 1000,
                    end_ms: 4000,
                },
            ),
            // overlaps 3.5..4.0, then alone; touching at 6.0 is no overlap
            ev(
                "2",
                SpeechEnded {
                    start_ms: 3500,
                    end_ms: 6000,
                },
            ),
            ev(
                "1",
                SpeechEnded {
                    start_ms: 6000,
                    end_ms: 7000,
                },
            ),
            // 7.0..7.5: 0.5 s, not a gap; 7.5..8.0 speech; 8.0..12.0 gap
            ev(
                "2",
                SpeechEnded {
                    start_ms: 7500,
                    end_ms: 8000,
                },
            ),
            ev("1", HoldStarted { at_ms: 9000 }),
            ev(
                "1",
                HoldEnded {
                    start_ms: 8500,
                    end_ms: 11000,
                },
            ),
            ev(
                "2",
                SpeechEnded {
                    start_ms: 12000,
                    end_ms: 13000,
                },
            ),
            ev("2", SpeechStarted { at_ms: 14000 }),
            ev("1", HoldStarted { at_ms: 15000 }),
            // overlaps 12.5..12.8 (second instance)
            ev(
                "1",
                SpeechEnded {
                    start_ms: 12500,
                    end_ms: 12800,
                },
            ),
        ];
        let f = MediaFacts::from_events(&events, 20.0);
        assert_eq!(f.overlap_instances, 2);
        assert_eq!(f.silence_gaps, vec![(8.0, 12.0)]);
        assert_eq!(f.holds, vec![(8.5, 11.0), (15.0, 20.0)]);
        assert_eq!(MediaFacts::from_events(&[], 10.0), MediaFacts::default());
    }

    #[test]
    fn dead_air_leaves_hold_time_out() {
        let segs = [seg(0, "A", 0.0, 1.0, "hello")];
        let input = QaInput {
            segments: &segs,
            holds: vec![(10.0, 30.0)],
            silence_gaps: vec![(2.0, 9.0), (8.0, 33.0)],
            duration: 40.0,
            ..Default::default()
        };
        let call = Call::new(&input);
        // (8, 33) minus the hold: 8..10 and 30..33; (2, 9) is 7 s.
        assert_eq!(call.longest_silence(), (2.0, 7.0));
        let input = QaInput {
            silence_gaps: vec![(5.0, 36.0)],
            ..input
        };
        assert_eq!(Call::new(&input).longest_silence(), (30.0, 6.0));
    }

    #[test]
    fn scores_weigh_applicable_checks_only() {
        let r = Rubric::from_toml(
            r#"
[[checks]]
id = "greet"
label = "Greets"
group = "opening"
weight = 3
kind = "agent_says"
within_first_s = 5
phrases = ["hello"]

[[checks]]
id = "bye"
label = "Says bye"
group = "closing"
kind = "agent_says"
within_last_s = 5
phrases = ["bye"]

[[checks]]
id = "held"
label = "Short holds"
group = "hold"
kind = "hold_length"
max_s = 10

[[checks]]
id = "mood"
label = "Mood"
group = "resolution"
kind = "caller_sentiment"
min = 0.0
"#,
        )
        .unwrap();
        let segs = [
            seg(1, "Agent", 1.0, 2.0, "Hello there."),
            seg(2, "Caller", 2.5, 4.0, "Hi, bye."),
            seg(3, "Agent", 30.0, 31.0, "Right."),
        ];
        let input = QaInput {
            segments: &segs,
            duration: 32.0,
            ..Default::default()
        };
        let rep = r.score(&input);
        assert_eq!(rep.agent.as_deref(), Some("Agent"));
        assert_eq!((rep.checks_applicable, rep.checks_passed), (2, 1));
        assert_eq!(rep.overall_qa_score, 75.0);
        assert_eq!(rep.grade, Grade::Good);
        assert_eq!(rep.detailed_scores[&Group::Hold].score_percent, None);
        assert_eq!(
            rep.detailed_scores[&Group::Closing].score_percent,
            Some(0.0)
        );
        assert_eq!(rep.strengths, ["Greets"]);
        assert!(rep.areas_for_improvement[0].starts_with("Says bye ("));
        let greet = &rep.detailed_scores[&Group::Opening].submetrics[0];
        assert_eq!(greet.time, Some(1.0));
        assert!(
            greet.evidence.contains("\"Hello there.\""),
            "{}",
            greet.evidence
        );
        // The caller saying "bye" is not the agent closing; naming the
        // other speaker as agent swaps the outcome.
        let rep = r.score(&QaInput {
            agent: Some("Caller"),
            caller_end_sentiment: Some(-0.5),
            holds: vec![(10.0, 25.0)],
            ..input.clone()
        });
        assert_eq!((rep.checks_applicable, rep.checks_passed), (4, 0));
        assert_eq!(rep.grade, Grade::Poor);
        let held = &rep.detailed_scores[&Group::Hold].submetrics[0];
        assert_eq!(held.value, Some(15.0));
        // JSON shape: groups keyed by name, not applicable as null.
        let v = serde_json::to_value(r.score(&input)).unwrap();
        assert!(v["detailed_scores"]["hold"]["submetrics"][0]["passed"].is_null());
        assert_eq!(v["grade"], "good");
        let back: QaReport = serde_json::from_value(v).unwrap();
        assert_eq!(back, r.score(&input));
    }

    #[test]
    fn caller_tail_is_the_other_speakers_last_words() {
        let segs = [
            seg(0, "A", 0.0, 1.0, "Hello."),
            seg(1, "B", 2.0, 3.0, "I am upset."),
            seg(2, "B", 50.0, 51.0, "Thanks a lot."),
            seg(3, "A", 52.0, 53.0, "Bye."),
        ];
        assert_eq!(caller_tail(&segs, None, 55.0, 30.0), ["Thanks a lot."]);
        assert_eq!(caller_tail(&segs, Some("B"), 55.0, 30.0), ["Bye."]);
    }
}
