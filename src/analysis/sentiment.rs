//! Sentiment: VADER (Hutto & Gilbert 2014) scored per segment, and per
//! participant with a trend and negative-streak alerts.
//!
//! [`Vader`] is a Rust implementation of vaderSentiment 3.3.2's rules over
//! its own data: the lexicon (`vader_lexicon.txt`) and the rule tables
//! (negations, boosters, special cases, constants) that
//! `scripts/fetch-lexicons` takes from the PyPI package (MIT) into
//! `models/lexicons/`. It reproduces the reference scores (the test vectors
//! are sentences scored by the package itself), quirks included: the "but"
//! rule rescales by *value lookup* as the reference does. Emoji are not
//! translated (transcripts carry none). Cost: one pass over the words with
//! a three-word look-back — O(segment), independent of the call's length.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::path::Path;

/// Errors loading the lexicon or rules.
#[derive(Debug, thiserror::Error)]
pub enum SentimentError {
    #[error("{path}: {err} (run scripts/fetch-lexicons)")]
    Io { path: String, err: std::io::Error },
    #[error("VADER rules: {0}")]
    Rules(String),
}

/// The package's rule tables (`vader_rules.json`).
#[derive(Debug, Clone, Deserialize)]
#[allow(non_snake_case)]
struct Rules {
    C_INCR: f64,
    N_SCALAR: f64,
    NEGATE: Vec<String>,
    BOOSTER_DICT: HashMap<String, f64>,
    SPECIAL_CASES: HashMap<String, f64>,
}

/// VADER scores of one text.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Polarity {
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    /// Normalised sum in [-1, 1].
    pub compound: f64,
}

/// `positive` / `neutral` / `negative` by VADER's usual ±0.05 cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Positive,
    Neutral,
    Negative,
}

impl Polarity {
    pub fn label(&self) -> Label {
        if self.compound >= 0.05 {
            Label::Positive
        } else if self.compound <= -0.05 {
            Label::Negative
        } else {
            Label::Neutral
        }
    }
}

/// The VADER scorer.
#[derive(Debug, Clone)]
pub struct Vader {
    lexicon: HashMap<String, f64>,
    rules: Rules,
}

/// Python's `string.punctuation`.
fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation()
}

/// Python's `str.isupper()`: some cased characters, all upper case.
fn is_upper(w: &str) -> bool {
    let mut cased = false;
    for c in w.chars() {
        if c.is_lowercase() {
            return false;
        }
        if c.is_uppercase() {
            cased = true;
        }
    }
    cased
}

impl Vader {
    /// From the files `scripts/fetch-lexicons` writes.
    pub fn load(lexicon: &Path, rules: &Path) -> Result<Vader, SentimentError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|err| SentimentError::Io {
                path: p.display().to_string(),
                err,
            })
        };
        Vader::from_strs(&read(lexicon)?, &read(rules)?)
    }

    /// From the lexicon text and the rules JSON.
    pub fn from_strs(lexicon: &str, rules: &str) -> Result<Vader, SentimentError> {
        let rules: Rules =
            serde_json::from_str(rules).map_err(|e| SentimentError::Rules(e.to_string()))?;
        let lexicon = lexicon
            .lines()
            .filter_map(|l| {
                let mut f = l.trim().split('\t');
                let w = f.next()?;
                let v = f.next()?.parse::<f64>().ok()?;
                Some((w.to_string(), v))
            })
            .collect::<HashMap<_, _>>();
        if lexicon.is_empty() {
            return Err(SentimentError::Rules("empty lexicon".into()));
        }
        Ok(Vader { lexicon, rules })
    }

    /// Lexicon entries.
    pub fn lexicon_len(&self) -> usize {
        self.lexicon.len()
    }

    fn in_lex(&self, w: &str) -> bool {
        self.lexicon.contains_key(&w.to_lowercase())
    }

    fn negated(&self, w: &str) -> bool {
        let w = w.to_lowercase();
        self.rules.NEGATE.contains(&w) || w.contains("n't")
    }

    fn scalar_inc_dec(&self, word: &str, valence: f64, cap_diff: bool) -> f64 {
        let Some(&b) = self.rules.BOOSTER_DICT.get(&word.to_lowercase()) else {
            return 0.0;
        };
        let mut s = if valence < 0.0 { -b } else { b };
        if is_upper(word) && cap_diff {
            s += if valence > 0.0 {
                self.rules.C_INCR
            } else {
                -self.rules.C_INCR
            };
        }
        s
    }

    /// Score `text`.
    pub fn polarity(&self, text: &str) -> Polarity {
        let words: Vec<&str> = text
            .split_whitespace()
            .map(|t| {
                let s = t.trim_matches(is_punct);
                if s.chars().count() <= 2 {
                    t
                } else {
                    s
                }
            })
            .collect();
        let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
        let caps = words.iter().filter(|w| is_upper(w)).count();
        let cap_diff = caps > 0 && caps < words.len();

        let mut sentiments: Vec<f64> = Vec::with_capacity(words.len());
        for (i, item) in words.iter().enumerate() {
            let l = &lower[i];
            if self.rules.BOOSTER_DICT.contains_key(l)
                || (l == "kind" && lower.get(i + 1).is_some_and(|n| n == "of"))
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.valence(item, i, &words, &lower, cap_diff));
        }
        but_check(&lower, &mut sentiments);
        self.score(&sentiments, text)
    }

    fn valence(
        &self,
        item: &str,
        i: usize,
        words: &[&str],
        lower: &[String],
        cap_diff: bool,
    ) -> f64 {
        let Some(&base) = self.lexicon.get(&lower[i]) else {
            return 0.0;
        };
        let n = self.rules.N_SCALAR;
        let mut v = base;
        if lower[i] == "no" && i + 1 < words.len() && self.in_lex(&lower[i + 1]) {
            v = 0.0;
        }
        if (i > 0 && lower[i - 1] == "no")
            || (i > 1 && lower[i - 2] == "no")
            || (i > 2 && lower[i - 3] == "no" && (lower[i - 1] == "or" || lower[i - 1] == "nor"))
        {
            v = base * n;
        }
        if is_upper(item) && cap_diff {
            v += if v > 0.0 {
                self.rules.C_INCR
            } else {
                -self.rules.C_INCR
            };
        }
        for start in 0..3usize {
            if i > start && !self.in_lex(&lower[i - (start + 1)]) {
                let mut s = self.scalar_inc_dec(words[i - (start + 1)], v, cap_diff);
                if start == 1 && s != 0.0 {
                    s *= 0.95;
                }
                if start == 2 && s != 0.0 {
                    s *= 0.9;
                }
                v += s;
                v = self.negation_check(v, lower, start, i);
                if start == 2 {
                    v = self.special_idioms(v, lower, i);
                }
            }
        }
        // "least"
        if i > 1 && !self.in_lex(&lower[i - 1]) && lower[i - 1] == "least" {
            if lower[i - 2] != "at" && lower[i - 2] != "very" {
                v *= n;
            }
        } else if i > 0 && !self.in_lex(&lower[i - 1]) && lower[i - 1] == "least" {
            v *= n;
        }
        v
    }

    fn negation_check(&self, v: f64, w: &[String], start: usize, i: usize) -> f64 {
        let n = self.rules.N_SCALAR;
        match start {
            0 if self.negated(&w[i - 1]) => v * n,
            1 => {
                if w[i - 2] == "never" && (w[i - 1] == "so" || w[i - 1] == "this") {
                    v * 1.25
                } else if w[i - 2] == "without" && w[i - 1] == "doubt" {
                    v
                } else if self.negated(&w[i - 2]) {
                    v * n
                } else {
                    v
                }
            }
            2 => {
                // (As the reference parses it: `A and B or C`.)
                if (w[i - 3] == "never" && (w[i - 2] == "so" || w[i - 2] == "this"))
                    || (w[i - 1] == "so" || w[i - 1] == "this")
                {
                    v * 1.25
                } else if w[i - 3] == "without" && (w[i - 2] == "doubt" || w[i - 1] == "doubt") {
                    v
                } else if self.negated(&w[i - 3]) {
                    v * n
                } else {
                    v
                }
            }
            _ => v,
        }
    }

    fn special_idioms(&self, mut v: f64, w: &[String], i: usize) -> f64 {
        let sc = &self.rules.SPECIAL_CASES;
        let seqs = [
            format!("{} {}", w[i - 1], w[i]),
            format!("{} {} {}", w[i - 2], w[i - 1], w[i]),
            format!("{} {}", w[i - 2], w[i - 1]),
            format!("{} {} {}", w[i - 3], w[i - 2], w[i - 1]),
            format!("{} {}", w[i - 3], w[i - 2]),
        ];
        if let Some(x) = seqs.iter().find_map(|s| sc.get(s)) {
            v = *x;
        }
        if w.len() - 1 > i {
            if let Some(x) = sc.get(&format!("{} {}", w[i], w[i + 1])) {
                v = *x;
            }
        }
        if w.len() - 1 > i + 1 {
            if let Some(x) = sc.get(&format!("{} {} {}", w[i], w[i + 1], w[i + 2])) {
                v = *x;
            }
        }
        for g in [&seqs[3], &seqs[4], &seqs[2]] {
            if let Some(b) = self.rules.BOOSTER_DICT.get(g.as_str()) {
                v += b;
            }
        }
        v
    }

    fn score(&self, s: &[f64], text: &str) -> Polarity {
        if s.is_empty() {
            return Polarity::default();
        }
        let ep = text.matches('!').count().min(4) as f64 * 0.292;
        let qn = text.matches('?').count();
        let qm = match qn {
            0 | 1 => 0.0,
            2..=3 => qn as f64 * 0.18,
            _ => 0.96,
        };
        let punct = ep + qm;
        let mut sum: f64 = s.iter().sum();
        if sum > 0.0 {
            sum += punct;
        } else if sum < 0.0 {
            sum -= punct;
        }
        let compound = (sum / (sum * sum + 15.0).sqrt()).clamp(-1.0, 1.0);
        let (mut pos, mut neg, mut neu) = (0.0f64, 0.0f64, 0usize);
        for &x in s {
            if x > 0.0 {
                pos += x + 1.0;
            }
            if x < 0.0 {
                neg += x - 1.0;
            }
            if x == 0.0 {
                neu += 1;
            }
        }
        if pos > neg.abs() {
            pos += punct;
        } else if pos < neg.abs() {
            neg -= punct;
        }
        let total = pos + neg.abs() + neu as f64;
        Polarity {
            neg: (neg / total).abs(),
            neu: (neu as f64 / total).abs(),
            pos: (pos / total).abs(),
            compound,
        }
    }
}

/// Words before "but" count half, after it one and a half. Reproduces the
/// reference, which finds each value's position by *value* lookup (so a
/// value repeated before and after "but" is rescaled at its first place).
fn but_check(lower: &[String], s: &mut [f64]) {
    let Some(bi) = lower.iter().position(|w| w == "but") else {
        return;
    };
    for k in 0..s.len() {
        let v = s[k];
        let Some(si) = s.iter().position(|x| *x == v) else {
            continue;
        };
        if si < bi {
            s[si] = v * 0.5;
        } else if si > bi {
            s[si] = v * 1.5;
        }
    }
}

/// Sentiment of one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentSentiment {
    pub segment_id: u64,
    pub participant_id: String,
    pub score: f64,
    pub label: Label,
}

/// A participant's sentiment so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantSentiment {
    pub participant_id: String,
    pub segments: u64,
    /// Mean compound score over the call.
    pub average: f64,
    pub label: Label,
    /// Mean of the last [`SentimentTracker::TREND`] segments minus the mean
    /// of the ones before them (positive: improving).
    pub trend: f64,
    /// Negative segments in a row now.
    pub negative_streak: u32,
}

/// Raised once per streak when a participant's last `streak` segments were
/// all negative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentimentAlert {
    pub participant_id: String,
    pub segment_id: u64,
    pub streak: u32,
    pub average_of_streak: f64,
}

#[derive(Debug, Default, Clone)]
struct Who {
    n: u64,
    sum: f64,
    recent: VecDeque<f64>,
    earlier_sum: f64,
    earlier_n: u64,
    streak: u32,
    streak_sum: f64,
    alerted: bool,
}

/// Per-call sentiment state: O(1) per segment after scoring it.
#[derive(Debug)]
pub struct SentimentTracker {
    /// Negative segments in a row that raise an alert.
    pub streak: u32,
    who: HashMap<String, Who>,
    order: Vec<String>,
}

impl SentimentTracker {
    /// Segments in the trend's recent window.
    pub const TREND: usize = 3;

    pub fn new(streak: u32) -> Self {
        Self {
            streak: streak.max(1),
            who: HashMap::new(),
            order: vec![],
        }
    }

    /// Fold one scored segment in; an alert when a streak reaches the bar.
    pub fn push(&mut self, seg: &SegmentSentiment) -> Option<SentimentAlert> {
        if !self.who.contains_key(&seg.participant_id) {
            self.order.push(seg.participant_id.clone());
        }
        let w = self.who.entry(seg.participant_id.clone()).or_default();
        w.n += 1;
        w.sum += seg.score;
        w.recent.push_back(seg.score);
        if w.recent.len() > Self::TREND {
            let old = w.recent.pop_front().unwrap_or_default();
            w.earlier_sum += old;
            w.earlier_n += 1;
        }
        if seg.label == Label::Negative {
            w.streak += 1;
            w.streak_sum += seg.score;
        } else {
            w.streak = 0;
            w.streak_sum = 0.0;
            w.alerted = false;
        }
        if w.streak >= self.streak && !w.alerted {
            w.alerted = true;
            return Some(SentimentAlert {
                participant_id: seg.participant_id.clone(),
                segment_id: seg.segment_id,
                streak: w.streak,
                average_of_streak: w.streak_sum / f64::from(w.streak),
            });
        }
        None
    }

    /// Every participant, in order of first segment.
    pub fn participants(&self) -> Vec<ParticipantSentiment> {
        self.order
            .iter()
            .filter_map(|p| {
                let w = self.who.get(p)?;
                let average = w.sum / w.n.max(1) as f64;
                let recent = w.recent.iter().sum::<f64>() / w.recent.len().max(1) as f64;
                let trend = if w.earlier_n > 0 {
                    recent - w.earlier_sum / w.earlier_n as f64
                } else {
                    0.0
                };
                Some(ParticipantSentiment {
                    participant_id: p.clone(),
                    segments: w.n,
                    average,
                    label: Polarity {
                        compound: average,
                        ..Polarity::default()
                    }
                    .label(),
                    trend,
                    negative_streak: w.streak,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: u64, who: &str, score: f64) -> SegmentSentiment {
        SegmentSentiment {
            segment_id: id,
            participant_id: who.into(),
            score,
            label: Polarity {
                compound: score,
                ..Polarity::default()
            }
            .label(),
        }
    }

    #[test]
    fn streak_alerts_once_per_streak_and_trend_follows() {
        let mut t = SentimentTracker::new(3);
        assert!(t.push(&seg(0, "caller", -0.5)).is_none());
        assert!(t.push(&seg(1, "agent", 0.6)).is_none());
        assert!(t.push(&seg(2, "caller", -0.6)).is_none());
        let a = t
            .push(&seg(3, "caller", -0.7))
            .expect("third negative in a row");
        assert_eq!((a.segment_id, a.streak), (3, 3));
        assert!((a.average_of_streak + 0.6).abs() < 1e-9);
        assert!(
            t.push(&seg(4, "caller", -0.2)).is_none(),
            "one alert per streak"
        );
        assert!(t.push(&seg(5, "caller", 0.3)).is_none());
        for i in 6..9 {
            t.push(&seg(i, "caller", 0.8));
        }
        let p = t.participants();
        assert_eq!(p[0].participant_id, "caller");
        assert_eq!(p[0].segments, 8);
        assert!(p[0].trend > 0.5, "improving: {}", p[0].trend);
        assert_eq!(p[0].negative_streak, 0);
        assert_eq!(p[1].label, Label::Positive);
    }

    #[test]
    fn helpers_match_python() {
        assert!(is_upper("SUX"));
        assert!(is_upper("I'LL"));
        assert!(!is_upper("Sux"));
        assert!(!is_upper(":)"));
        // Positional: before "but" halved, after it × 1.5 ...
        let mut s = vec![1.0, 0.0, 2.0, 1.0];
        but_check(&["a", "x", "but", "b"].map(String::from), &mut s);
        assert_eq!(s, vec![0.5, 0.0, 2.0, 1.5]);
        // ... but by value lookup, as the reference does: the 0.5 at the
        // "but" position is found at index 0 (already halved) and halved
        // again there.
        let mut s = vec![1.0, 0.0, 0.5, 1.0];
        but_check(&["a", "x", "but", "b"].map(String::from), &mut s);
        assert_eq!(s, vec![0.25, 0.0, 0.5, 1.5]);
    }
}
