//! Extractive, speaker-attributed call summary: the few sentences of the
//! transcript that carry most of the call's content, each with who said it
//! and when, returned in time order.
//!
//! # How it works
//!
//! * [`Summarizer::push`] takes one final segment, splits it into sentences
//!   (at `.`, `?`, `!` ending a word), collapses a recogniser's in-sentence
//!   repetition loop ("this is the third time I have called about it, this
//!   is the third time ..." → once), and drops sentences already heard: the
//!   same words said earlier in the call, or a cut-off copy of one of the
//!   speaker's last few sentences ("How can I help you today? How can I help
//!   you"). Each new sentence's content terms (words that are not stop
//!   words, not numbers spelled out, not part of a courtesy formula; a run
//!   of digits counts as one term; plural/possessive `s` folded) update the
//!   call's running term and sentence frequencies. Cost: O(words of the
//!   segment) (the repetition check looks at units of at most
//!   [`MAX_REPEAT_UNIT`] words and at the speaker's last [`RECENT`]
//!   sentences).
//! * [`Summarizer::summary`] scores every kept sentence on demand: the sum,
//!   over its distinct content terms, of `(1 + ln tf) · ln(1 + N / df)` (the
//!   call's term frequency, damped by how many of the call's `N` sentences
//!   use the term, so a word said in every other sentence weighs little),
//!   divided by `sqrt(max(words, 10) / 10)` so a long run-on sentence does
//!   not win by length alone. Courtesy formulas (greetings, closings, hold
//!   courtesies, recording disclosure, "is there anything else") are not
//!   content and multiply the score by 0.25; introductions and empathy
//!   formulas ("my name is", "I understand") by 0.5. A sentence with no
//!   content word left (greeting-only, closing-only, numbers only) or
//!   shorter than `min_words` is never picked. The best `n` are taken, skipping one whose
//!   content terms are mostly (≥ 70 %) those of a sentence already taken,
//!   and returned in time order. Cost: O(call sentences · log), so it runs
//!   on snapshots and post-call only, never per segment.
//!
//! The stop-word and courtesy lists ship in code ([`STOP_WORDS`],
//! [`COURTESY_PHRASES`], [`SOFT_PHRASES`]); [`SummaryConfig`] can extend
//! them. Deterministic: ties are broken by time order.

use crate::asr::wer::normalize;
use crate::asr::Segment;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};

/// Sentences in a summary unless configured otherwise.
pub const DEFAULT_SENTENCES: usize = 3;
/// Longest repeated unit (words) the in-sentence repetition collapse looks for.
pub const MAX_REPEAT_UNIT: usize = 24;
/// How many of a speaker's latest sentences a new one is compared with for
/// cut-off copies.
pub const RECENT: usize = 4;

/// Function words, conversational fillers and spelled-out numbers,
/// whitespace-separated: never content.
pub const STOP_WORDS: &str = "\
a about above after again against all am an and any are aren't as at be because been \
before being below between both but by can can't cannot could couldn't did didn't do \
does doesn't doing don't down during each few for from further had hadn't has hasn't \
have haven't having he he'd he'll he's her here here's hers herself him himself his how \
how's i i'd i'll i'm i've if in into is isn't it it's its itself let's me more most \
mustn't my myself no nor not of off on once only or other ought our ours ourselves out \
over own same shan't she she'd she'll she's should shouldn't so some such than that \
that's the their theirs them themselves then there there's these they they'd they'll \
they're they've this those through to too under until up very was wasn't we we'd we'll \
we're we've were weren't what what's when when's where where's which while who who's \
whom why why's with won't would wouldn't you you'd you'll you're you've your yours \
yourself yourselves will just also may might must shall us let get got gonna wanna okay \
ok yes yeah yep no nope oh ah uh um umm er erm hmm mm mhm like well right sure really \
actually basically please thank thanks hello hi hey bye goodbye sorry great good fine \
alright excellent perfect lot much many one thing something anything everything know \
think see say said tell told help today now moment zero two three four five six seven \
eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen \
nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand million \
first second third";

/// Courtesy formulas: their words are not content, and a sentence holding
/// one scores ×0.25 (`*` stands for any one word).
pub const COURTESY_PHRASES: &[&str] = &[
    "thank you for calling",
    "thanks for calling",
    "thank you for contacting",
    "good morning",
    "good afternoon",
    "good evening",
    "how can i help",
    "how may i help",
    "what can i do for you",
    "welcome to",
    "this call may be recorded",
    "this call is being recorded",
    "recorded for quality",
    "quality and training purposes",
    "is there anything else",
    "anything else i can",
    "thank you for holding",
    "thanks for holding",
    "thank you for waiting",
    "thanks for waiting",
    "thank you for your patience",
    "please hold",
    "put you on hold",
    "bear with me",
    "take care",
    "have a great day",
    "have a nice day",
    "have a good day",
    "have a lovely day",
    "thank you",
    "that is all",
    "that's all",
    "you're welcome",
    "you are welcome",
];

/// Introduction and empathy formulas: a sentence holding one scores ×0.5
/// (its words still count: "my name is Amina, calling from Mombasa").
pub const SOFT_PHRASES: &[&str] = &[
    "my name is",
    "my name's",
    "this is * speaking",
    "calling from",
    "i understand",
    "sorry to hear",
    "that sounds",
    "here to listen",
    "i can imagine",
    "that must be",
];

const COURTESY_FACTOR: f64 = 0.25;
const SOFT_FACTOR: f64 = 0.5;
/// Content overlap (share of the smaller sentence's terms) above which a
/// sentence is redundant with one already picked.
const REDUNDANT: f64 = 0.7;

/// Tunables (all optional in a TOML table; unknown keys are errors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SummaryConfig {
    /// Sentences in a summary when the caller does not say.
    pub sentences: usize,
    /// Shortest sentence (words) that may be picked.
    pub min_words: usize,
    /// Added to [`STOP_WORDS`] (e.g. the organisation's name).
    pub extra_stop_words: Vec<String>,
    /// Added to [`COURTESY_PHRASES`].
    pub extra_courtesy_phrases: Vec<String>,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        Self {
            sentences: DEFAULT_SENTENCES,
            min_words: 3,
            extra_stop_words: vec![],
            extra_courtesy_phrases: vec![],
        }
    }
}

/// One picked sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummarySentence {
    /// The segment's speaker label.
    pub speaker: String,
    pub text: String,
    pub segment_id: u64,
    /// The segment's start, seconds from the call start.
    pub start_time: f64,
    /// Relative weight within this call (not comparable across calls).
    pub score: f64,
}

/// The summary, as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `"Speaker: sentence. Speaker: sentence."`, in time order.
    pub text: String,
    pub sentences: Vec<SummarySentence>,
    /// Always `"extractive"`.
    pub method: String,
    /// Sentences in this summary (`sentences.len()`).
    pub sentence_count: usize,
    /// Distinct sentences of the call the summary was chosen from.
    pub source_sentences: usize,
}

/// A phrase list matched on [`normalize`]d words, with `*` standing for any
/// one word; indexed by first word so a lookup costs O(words of the text).
#[derive(Debug, Clone, Default)]
pub struct PhraseSet {
    /// (as written, words; `*` = any word)
    phrases: Vec<(String, Vec<String>)>,
    by_first: HashMap<String, Vec<usize>>,
}

/// Where a phrase matched: `words[start..start + len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhraseMatch {
    pub phrase: usize,
    pub start: usize,
    pub len: usize,
}

/// Words of a phrase as written: normalised, `*` kept as the wildcard.
fn phrase_words(p: &str) -> Vec<String> {
    p.split_whitespace()
        .flat_map(|t| {
            if t == "*" {
                vec!["*".to_string()]
            } else {
                normalize(t)
            }
        })
        .collect()
}

impl PhraseSet {
    /// Build from phrases; an empty phrase or one starting with `*` is an
    /// error naming it.
    pub fn new<S: AsRef<str>>(phrases: impl IntoIterator<Item = S>) -> Result<Self, String> {
        let mut set = PhraseSet::default();
        for p in phrases {
            set.add(p.as_ref())?;
        }
        Ok(set)
    }

    fn add(&mut self, p: &str) -> Result<(), String> {
        let w = phrase_words(p);
        let Some(first) = w.first().cloned() else {
            return Err(format!("phrase {p:?} has no words"));
        };
        if first == "*" {
            return Err(format!("phrase {p:?} starts with the wildcard `*`"));
        }
        self.by_first
            .entry(first)
            .or_default()
            .push(self.phrases.len());
        self.phrases.push((p.to_string(), w));
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty()
    }

    pub fn len(&self) -> usize {
        self.phrases.len()
    }

    /// The phrase as written.
    pub fn phrase(&self, i: usize) -> &str {
        self.phrases.get(i).map(|p| p.0.as_str()).unwrap_or("")
    }

    fn matches_at(&self, k: usize, words: &[String], i: usize) -> bool {
        let p = &self.phrases[k].1;
        words.len() - i >= p.len() && p.iter().zip(&words[i..]).all(|(a, b)| a == "*" || a == b)
    }

    /// Every match, in text order (overlapping ones included).
    pub fn find_all(&self, words: &[String]) -> Vec<PhraseMatch> {
        let mut out = vec![];
        for (i, w) in words.iter().enumerate() {
            let Some(cands) = self.by_first.get(w) else {
                continue;
            };
            for &k in cands {
                if self.matches_at(k, words, i) {
                    out.push(PhraseMatch {
                        phrase: k,
                        start: i,
                        len: self.phrases[k].1.len(),
                    });
                }
            }
        }
        out
    }

    /// The first match, if any.
    pub fn find(&self, words: &[String]) -> Option<PhraseMatch> {
        for (i, w) in words.iter().enumerate() {
            if let Some(cands) = self.by_first.get(w) {
                for &k in cands {
                    if self.matches_at(k, words, i) {
                        return Some(PhraseMatch {
                            phrase: k,
                            start: i,
                            len: self.phrases[k].1.len(),
                        });
                    }
                }
            }
        }
        None
    }
}

/// A kept sentence with what scoring needs.
#[derive(Debug, Clone)]
struct Candidate {
    speaker: String,
    text: String,
    segment_id: u64,
    start_time: f64,
    /// Push order (tie-break after time).
    order: usize,
    words: usize,
    /// Distinct content terms.
    terms: Vec<String>,
    factor: f64,
}

/// Running state of one call's summary.
#[derive(Debug, Clone)]
pub struct Summarizer {
    cfg: SummaryConfig,
    stop: HashSet<String>,
    courtesy: PhraseSet,
    soft: PhraseSet,
    /// Term → occurrences in kept sentences.
    tf: HashMap<String, u32>,
    /// Term → kept sentences holding it.
    df: HashMap<String, u32>,
    /// Normalised text of every kept sentence.
    seen: HashSet<String>,
    /// Speaker → words of their latest sentences.
    recent: HashMap<String, VecDeque<Vec<String>>>,
    candidates: Vec<Candidate>,
}

impl Default for Summarizer {
    fn default() -> Self {
        Self::new(SummaryConfig::default())
    }
}

/// Letters and digits of a token, lower-cased (repetition keys).
fn key(token: &str) -> String {
    token
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Keep one copy of a unit of 2..=[`MAX_REPEAT_UNIT`] tokens repeated back
/// to back, and drop a cut-off copy of it ending the sentence.
fn collapse_repeats(tokens: &[&str]) -> Vec<String> {
    let keys: Vec<String> = tokens.iter().map(|t| key(t)).collect();
    let n_tok = tokens.len();
    let mut out: Vec<String> = Vec::with_capacity(n_tok);
    let mut i = 0;
    while i < n_tok {
        let max_unit = ((n_tok - i) / 2).min(MAX_REPEAT_UNIT);
        let unit = (2..=max_unit)
            .rev()
            .find(|&n| keys[i..i + n] == keys[i + n..i + 2 * n]);
        match unit {
            Some(n) => {
                let mut reps = 2;
                while i + (reps + 1) * n <= n_tok
                    && keys[i + reps * n..i + (reps + 1) * n] == keys[i..i + n]
                {
                    reps += 1;
                }
                out.extend(tokens[i..i + n].iter().map(|t| t.to_string()));
                i += reps * n;
                let rest = &keys[i..];
                if !rest.is_empty() && rest.len() < n && rest == &keys[i - n..i - n + rest.len()] {
                    i = n_tok;
                }
            }
            None => {
                out.push(tokens[i].to_string());
                i += 1;
            }
        }
    }
    out
}

/// Sentences of a text: token runs ending at a token whose last character
/// (closing quotes aside) is `.`, `?` or `!`.
fn sentences(text: &str) -> Vec<Vec<&str>> {
    let mut out = vec![];
    let mut cur = vec![];
    for t in text.split_whitespace() {
        cur.push(t);
        let end = t.trim_end_matches(['"', '\'', ')', ']']);
        let abbrev = matches!(key(end).as_str(), "mr" | "mrs" | "ms" | "dr" | "st" | "vs")
            && end.ends_with('.')
            && end.len() <= 4;
        if end.ends_with(['.', '?', '!']) && !abbrev {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Display text of a sentence: trailing commas dropped, first letter
/// capitalised, a full stop added when it has no end mark.
fn display(tokens: &[String]) -> String {
    let mut s = tokens.join(" ");
    while s.ends_with([',', ';', ':', ' ', '-']) {
        s.pop();
    }
    if !s.ends_with(['.', '?', '!']) {
        s.push('.');
    }
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => s,
    }
}

/// Fold a word to its term: possessive and plural `s` dropped.
fn fold(w: &str) -> String {
    let w = w.strip_suffix("'s").unwrap_or(w);
    let w = w.trim_end_matches('\'');
    let n = w.chars().count();
    if n >= 4 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is")
    {
        w[..w.len() - 1].to_string()
    } else {
        w.to_string()
    }
}

/// `new` is a cut-off copy of `old`: same words, the last one possibly cut
/// (two words at least: "No." is not a cut "Nobody came.").
fn cut_copy(new: &[String], old: &[String]) -> bool {
    let Some((last, head)) = new.split_last() else {
        return false;
    };
    !head.is_empty()
        && new.len() <= old.len()
        && old[..head.len()] == *head
        && old[head.len()].starts_with(last)
}

impl Summarizer {
    pub fn new(cfg: SummaryConfig) -> Self {
        let stop = STOP_WORDS
            .split_whitespace()
            .map(str::to_string)
            .chain(cfg.extra_stop_words.iter().flat_map(|s| normalize(s)))
            .collect();
        // The shipped phrases are valid; a bad configured one is skipped
        // (it cannot match anything anyway).
        let mut courtesy = PhraseSet::new(COURTESY_PHRASES).unwrap_or_default();
        for p in &cfg.extra_courtesy_phrases {
            let _ = courtesy.add(p);
        }
        let soft = PhraseSet::new(SOFT_PHRASES).unwrap_or_default();
        Self {
            cfg,
            stop,
            courtesy,
            soft,
            tf: HashMap::new(),
            df: HashMap::new(),
            seen: HashSet::new(),
            recent: HashMap::new(),
            candidates: vec![],
        }
    }

    pub fn config(&self) -> &SummaryConfig {
        &self.cfg
    }

    /// Add a final segment (non-finals and empty texts are ignored).
    /// Returns how many new sentences it brought. O(segment words).
    pub fn push(&mut self, seg: &Segment) -> usize {
        if !seg.is_final {
            return 0;
        }
        let mut added = 0;
        for raw in sentences(&seg.text) {
            let tokens = collapse_repeats(&raw);
            let words: Vec<String> = tokens.iter().flat_map(|t| normalize(t)).collect();
            if words.is_empty() {
                continue;
            }
            let recent = self.recent.entry(seg.speaker.clone()).or_default();
            let norm = words.join(" ");
            if self.seen.contains(&norm) || recent.iter().any(|old| cut_copy(&words, old)) {
                continue;
            }
            self.seen.insert(norm);
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(words.clone());

            // Courtesy words are masked out of the content.
            let courtesy = self.courtesy.find_all(&words);
            let mut masked = vec![false; words.len()];
            for m in &courtesy {
                for x in &mut masked[m.start..m.start + m.len] {
                    *x = true;
                }
            }
            let mut terms: Vec<String> = vec![];
            let mut digits = String::new();
            for (w, &mask) in words.iter().zip(&masked) {
                if w.starts_with(|c: char| c.is_ascii_digit()) {
                    digits.push_str(w);
                    continue;
                }
                if !digits.is_empty() {
                    terms.push(format!("#{}", std::mem::take(&mut digits)));
                }
                if mask || self.stop.contains(w) {
                    continue;
                }
                let t = fold(w);
                if t.chars().count() >= 2 && !self.stop.contains(&t) {
                    terms.push(t);
                }
            }
            if !digits.is_empty() {
                terms.push(format!("#{digits}"));
            }
            for t in &terms {
                *self.tf.entry(t.clone()).or_default() += 1;
            }
            terms.sort();
            terms.dedup();
            for t in &terms {
                *self.df.entry(t.clone()).or_default() += 1;
            }
            let mut factor = 1.0;
            if !courtesy.is_empty() {
                factor *= COURTESY_FACTOR;
            }
            if self.soft.find(&words).is_some() {
                factor *= SOFT_FACTOR;
            }
            self.candidates.push(Candidate {
                speaker: seg.speaker.clone(),
                text: display(&tokens),
                segment_id: seg.segment_id,
                start_time: seg.start_time,
                order: self.candidates.len(),
                words: words.len(),
                terms,
                factor,
            });
            added += 1;
        }
        added
    }

    /// Distinct sentences kept so far.
    pub fn sentence_count(&self) -> usize {
        self.candidates.len()
    }

    /// How often a term (a normalised word, plural folded) was said in the
    /// distinct sentences; repeats of a sentence count once.
    pub fn term_count(&self, word: &str) -> u32 {
        let w = normalize(word);
        match w.as_slice() {
            [one] => self.tf.get(&fold(one)).copied().unwrap_or(0),
            _ => 0,
        }
    }

    fn score(&self, c: &Candidate) -> f64 {
        // Numbers alone ("7, 8, 7.") say nothing without a word around them.
        if c.words < self.cfg.min_words || c.terms.iter().all(|t| t.starts_with('#')) {
            return 0.0;
        }
        let n = self.candidates.len() as f64;
        let sum: f64 = c
            .terms
            .iter()
            .map(|t| {
                let tf = f64::from(self.tf.get(t).copied().unwrap_or(1).max(1));
                let df = f64::from(self.df.get(t).copied().unwrap_or(1).max(1));
                (1.0 + tf.ln()) * (1.0 + n / df).ln()
            })
            .sum();
        let len = (c.words.max(10) as f64 / 10.0).sqrt();
        sum / len * c.factor
    }

    /// The configured number of sentences.
    pub fn summary_default(&self) -> Summary {
        self.summary(self.cfg.sentences)
    }

    /// The best `n` sentences in time order. O(call sentences · log): call
    /// it on a snapshot or after the call, not per segment.
    pub fn summary(&self, n: usize) -> Summary {
        let mut scored: Vec<(f64, &Candidate)> = self
            .candidates
            .iter()
            .map(|c| (self.score(c), c))
            .filter(|(s, _)| *s > 0.0 && s.is_finite())
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.order.cmp(&b.1.order)));
        let mut picked: Vec<(f64, &Candidate)> = vec![];
        for (s, c) in scored {
            if picked.len() >= n {
                break;
            }
            let redundant = picked.iter().any(|(_, p)| {
                let common = c.terms.iter().filter(|t| p.terms.contains(t)).count();
                let smaller = c.terms.len().min(p.terms.len()).max(1);
                common as f64 / smaller as f64 >= REDUNDANT
            });
            if !redundant {
                picked.push((s, c));
            }
        }
        picked.sort_by(|a, b| {
            a.1.start_time
                .total_cmp(&b.1.start_time)
                .then(a.1.order.cmp(&b.1.order))
        });
        let sentences: Vec<SummarySentence> = picked
            .into_iter()
            .map(|(s, c)| SummarySentence {
                speaker: c.speaker.clone(),
                text: c.text.clone(),
                segment_id: c.segment_id,
                start_time: c.start_time,
                score: (s * 1000.0).round() / 1000.0,
            })
            .collect();
        let text = sentences
            .iter()
            .map(|s| format!("{}: {}", s.speaker, s.text))
            .collect::<Vec<_>>()
            .join(" ");
        Summary {
            text,
            sentence_count: sentences.len(),
            sentences,
            method: "extractive".into(),
            source_sentences: self.candidates.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: u64, speaker: &str, start: f64, text: &str) -> Segment {
        Segment {
            segment_id: id,
            utterance_id: id,
            participant_id: None,
            speaker: speaker.into(),
            stream_label: speaker.into(),
            text: text.into(),
            start_time: start,
            end_time: start + 2.0,
            duration: 2.0,
            confidence: 0.9,
            words: vec![],
            language: Some("en".into()),
            is_final: true,
            lagging: false,
        }
    }

    #[test]
    fn repetition_loops_collapse_to_one_copy() {
        let t = "this is the third time I have called about it, this is the third time I \
                 have called about it, this is the third time I have called about it, this";
        let tokens: Vec<&str> = t.split_whitespace().collect();
        assert_eq!(
            display(&collapse_repeats(&tokens)),
            "This is the third time I have called about it."
        );
        // A single repeated word is speech, not a loop; nothing else changes.
        let t: Vec<&str> = "it was very very cold".split_whitespace().collect();
        assert_eq!(collapse_repeats(&t).join(" "), "it was very very cold");
        let t: Vec<&str> = "Let me put you on hold. Let me put you on hold."
            .split_whitespace()
            .collect();
        assert_eq!(collapse_repeats(&t).join(" "), "Let me put you on hold.");
    }

    #[test]
    fn sentences_split_at_end_marks_not_abbreviations_or_decimals() {
        let s = sentences("Hello. Dr. Smith paid $3.50 today? Yes! and then");
        let s: Vec<String> = s.iter().map(|v| v.join(" ")).collect();
        assert_eq!(
            s,
            ["Hello.", "Dr. Smith paid $3.50 today?", "Yes!", "and then"]
        );
        assert!(sentences("   ").is_empty());
    }

    #[test]
    fn cut_off_copies_are_recognised() {
        let w = |t: &str| normalize(t);
        assert!(cut_copy(
            &w("How can I help you"),
            &w("How can I help you today?")
        ));
        assert!(cut_copy(&w("Thank you, Amin"), &w("Thank you, Amina.")));
        assert!(!cut_copy(&w("Thank you, Bob"), &w("Thank you, Amina.")));
        assert!(!cut_copy(&w("a b c d"), &w("a b c")));
        assert!(!cut_copy(&[], &w("a")));
        assert!(!cut_copy(&w("No."), &w("Nobody came.")));
    }

    #[test]
    fn phrase_sets_match_whole_words_with_wildcards() {
        let p = PhraseSet::new(["this is * speaking", "goodbye"]).unwrap();
        let w = normalize("Good morning, this is David speaking. Goodbye!");
        let m = p.find_all(&w);
        assert_eq!(m.len(), 2);
        assert_eq!(p.phrase(m[0].phrase), "this is * speaking");
        assert_eq!((m[0].start, m[0].len), (2, 4));
        assert!(p.find(&normalize("this is speaking")).is_none());
        assert!(p.find(&normalize("goodbyes")).is_none());
        assert!(PhraseSet::new(["* speaking"]).is_err());
        assert!(PhraseSet::new(["  ", "x"]).is_err());
    }

    #[test]
    fn terms_fold_plurals_and_numbers_run_together() {
        assert_eq!(fold("days"), "day");
        assert_eq!(fold("neighbor's"), "neighbor");
        assert_eq!(fold("address"), "address");
        assert_eq!(fold("status"), "status");
        let mut s = Summarizer::default();
        s.push(&seg(0, "B", 0.0, "Call me back on 0 7 1 2 3 4 5 please."));
        assert_eq!(s.tf.get("#0712345"), Some(&1));
        assert_eq!(s.term_count("back"), 1);
        s.push(&seg(1, "B", 3.0, "7, 8, 7."));
        assert_eq!(s.sentence_count(), 2);
        assert_eq!(
            s.summary(5)
                .sentences
                .iter()
                .map(|x| x.segment_id)
                .collect::<Vec<_>>(),
            [0]
        );
    }

    #[test]
    fn repeats_count_once_and_courtesy_is_never_picked() {
        let mut s = Summarizer::default();
        s.push(&seg(
            0,
            "A",
            0.0,
            "Thank you for calling. How can I help you today? How can I help you",
        ));
        s.push(&seg(1, "B", 3.0, "My boiler broke and the heating is off."));
        s.push(&seg(2, "B", 6.0, "My boiler broke and the heating is off."));
        s.push(&seg(
            3,
            "A",
            9.0,
            "An engineer will visit your boiler tomorrow morning.",
        ));
        let mut partial = seg(4, "B", 10.0, "boiler boiler boiler heating");
        partial.is_final = false;
        assert_eq!(s.push(&partial), 0);
        s.push(&seg(
            5,
            "A",
            12.0,
            "Take care, goodbye. Have a great day. Have a",
        ));
        // "Thank you for calling.", "How can I help you today?", the boiler
        // sentence once, the engineer, "Take care, goodbye.", "Have a great day."
        assert_eq!(s.sentence_count(), 6);
        assert_eq!(s.term_count("boiler"), 2);
        assert_eq!(s.term_count("heating"), 1);
        let all = s.summary(10);
        let texts: Vec<&str> = all.sentences.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "My boiler broke and the heating is off.",
                "An engineer will visit your boiler tomorrow morning."
            ]
        );
        assert_eq!(all.sentence_count, 2);
        assert_eq!(all.source_sentences, 6);
        assert_eq!(all.method, "extractive");
        assert_eq!(
            all.text,
            "B: My boiler broke and the heating is off. A: An engineer will visit your \
             boiler tomorrow morning."
        );
        let one = s.summary(1);
        assert_eq!(one.sentences.len(), 1);
        assert!(s.summary(0).sentences.is_empty());
        assert_eq!(s.summary(10), all);
        assert!(Summarizer::default().summary(3).text.is_empty());
    }
}
