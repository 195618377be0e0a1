//! Entities in a call's transcript: people, places, organisations, phone,
//! case and account numbers, ages, dates, amounts and e-mail addresses,
//! found progressively, one final segment at a time.
//!
//! [`EntityExtractor`] is the slot: [`RuleEntities`] (rules, patterns and
//! gazetteers from `config/entities.toml` and `config/gazetteer/`) is one
//! implementation, a token-classification model run by the caller is
//! another. [`EntityTracker`] keeps a call's distinct entities.
//!
//! The rules read a transcript the way a recogniser writes it: names are
//! usually capitalised (but so is every sentence's first word), numbers are
//! digits or spoken words ("seven seven three", "oh"), places are
//! misheard ("Mambasa", "Mount Basa" for Mombasa) and a phone number may be
//! cut over segments. What each rule does is documented on
//! [`RuleEntities`].
//!
//! Cost per segment: one tokenisation, then per token a few hash lookups
//! (trigger phrases and gazetteer entries are indexed by their first
//! word), so O(the segment's words). Approximate place matching compares
//! a candidate with every fuzzy gazetteer spelling (a few hundred short
//! strings), but only for a capitalised word right after a place word
//! ("from", "in", ...), which is rare. The state kept across segments is
//! small and bounded by the call's distinct names: known names, one
//! pending question ("can I have your account number?"), one number
//! held back in case it continues in the speaker's next segment, and one
//! trigger phrase that ended a segment ("I have opened case number" ...).

use super::{read_text, AnalysisError};
use crate::asr::wer::normalize as words;
use crate::asr::Segment;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// Entity labels (upper-case strings, as token-classification models and
/// the Call Sessions API name them).
pub mod label {
    pub const PERSON: &str = "PERSON";
    pub const LOCATION: &str = "LOCATION";
    pub const ORGANIZATION: &str = "ORGANIZATION";
    pub const PHONE: &str = "PHONE";
    pub const AGE: &str = "AGE";
    pub const DATE: &str = "DATE";
    pub const AMOUNT: &str = "AMOUNT";
    pub const EMAIL: &str = "EMAIL";
    pub const CASE_NUMBER: &str = "CASE_NUMBER";
    pub const ACCOUNT_NUMBER: &str = "ACCOUNT_NUMBER";
    /// Every label, in a fixed order.
    pub const ALL: [&str; 10] = [
        PERSON,
        LOCATION,
        ORGANIZATION,
        PHONE,
        AGE,
        DATE,
        AMOUNT,
        EMAIL,
        CASE_NUMBER,
        ACCOUNT_NUMBER,
    ];
}

/// One entity mention in one segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// The words as transcribed. For a number continued over segments
    /// (see [`RuleEntities`]) the parts of every segment, joined by a space.
    pub text: String,
    /// One of [`label::ALL`].
    pub label: String,
    /// Byte offsets of the mention in the segment's `text` (always on char
    /// boundaries: `&seg.text[start..end]`). For a continued number they
    /// cover its part in the first segment (`segment_id`).
    pub start: usize,
    pub end: usize,
    /// 0..1: the rule's strength times the recogniser's confidence (see
    /// [`RuleEntities`]).
    pub confidence: f64,
    pub segment_id: u64,
    pub participant_id: Option<String>,
    pub speaker: String,
    /// Seconds from the call start: the first word's time when the segment
    /// has word times, else the segment's start.
    pub time: f64,
    /// Canonical value: digits for numbers ("773419"), the gazetteer's
    /// spelling for places and organisations ("Mombasa"), "MM-DD" or
    /// "YYYY-MM-DD" for dates (relative words as said: "today"), "85 USD"
    /// for amounts, the full name for a later mention of a person.
    pub normalized: Option<String>,
    /// The rule (or model) that found it, e.g. "name_phrase",
    /// "gazetteer_fuzzy", "answer".
    pub source: String,
}

impl Entity {
    /// What two mentions of the same entity share: the normalized value,
    /// else the text, lower-cased.
    pub fn key(&self) -> String {
        self.normalized
            .as_deref()
            .unwrap_or(&self.text)
            .to_lowercase()
    }
}

/// Finds entities in final segments, in call order. Implementations keep
/// state across segments (names already heard, questions asked, numbers
/// that may continue), so one instance serves one call.
pub trait EntityExtractor: Send {
    fn name(&self) -> &str;
    /// Entities in this segment (and any held back from earlier segments
    /// that this one settles).
    fn extract(&mut self, seg: &Segment) -> Vec<Entity>;
    /// The call ended: anything still held back.
    fn finish(&mut self) -> Vec<Entity> {
        Vec::new()
    }
}

// ---------------------------------------------------------------------------
// Configuration (config/entities.toml)

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    common_words: Vec<String>,
    #[serde(default)]
    gazetteer: Vec<GazetteerConfig>,
    #[serde(default)]
    person: PersonConfig,
    #[serde(default)]
    organization: OrgConfig,
    #[serde(default)]
    numbers: NumbersConfig,
    #[serde(default)]
    amounts: AmountsConfig,
    #[serde(default)]
    dates: DatesConfig,
    #[serde(default)]
    email: EmailConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GazetteerConfig {
    label: String,
    files: Vec<String>,
    #[serde(default)]
    fuzzy: bool,
    #[serde(default)]
    context: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct PersonConfig {
    name_phrases: Vec<String>,
    introductions: Vec<String>,
    announcements: Vec<String>,
    announcement_followers: Vec<String>,
    vocatives: Vec<String>,
    titles: Vec<String>,
    max_words: usize,
}

impl Default for PersonConfig {
    fn default() -> Self {
        Self {
            name_phrases: vec![],
            introductions: vec![],
            announcements: vec![],
            announcement_followers: vec![],
            vocatives: vec![],
            titles: vec![],
            max_words: 3,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct OrgConfig {
    triggers: Vec<String>,
    suffixes: Vec<String>,
    max_words: usize,
}

impl Default for OrgConfig {
    fn default() -> Self {
        Self {
            triggers: vec![],
            suffixes: vec![],
            max_words: 5,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerConfig {
    label: String,
    phrases: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct NumbersConfig {
    fillers: Vec<String>,
    continue_seconds: f64,
    answer_seconds: f64,
    ask_words: Vec<String>,
    phone_digits: [usize; 2],
    triggers: Vec<TriggerConfig>,
}

impl Default for NumbersConfig {
    fn default() -> Self {
        Self {
            fillers: vec![],
            continue_seconds: 4.0,
            answer_seconds: 30.0,
            ask_words: vec![],
            phone_digits: [7, 15],
            triggers: vec![],
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AmountsConfig {
    prefixes: BTreeMap<String, String>,
    suffixes: BTreeMap<String, String>,
    minor: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct DatesConfig {
    numeric_order: String,
    relative: Vec<String>,
}

impl Default for DatesConfig {
    fn default() -> Self {
        Self {
            numeric_order: "dmy".into(),
            relative: vec![],
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct EmailConfig {
    tlds: Vec<String>,
}

// ---------------------------------------------------------------------------
// Compiled rules (shared, read-only; cloned per call through an Arc)

/// Phrases indexed by their first word; matched longest first.
#[derive(Debug, Clone, Default)]
struct PhraseSet {
    by_first: HashMap<String, Vec<(Vec<String>, usize)>>,
}

impl PhraseSet {
    fn new<'a>(phrases: impl IntoIterator<Item = (&'a str, usize)>) -> Self {
        let mut by_first: HashMap<String, Vec<(Vec<String>, usize)>> = HashMap::new();
        for (p, tag) in phrases {
            let w = words(p);
            if let Some(first) = w.first().cloned() {
                by_first.entry(first).or_default().push((w, tag));
            }
        }
        for v in by_first.values_mut() {
            v.sort_by_key(|(w, _)| std::cmp::Reverse(w.len()));
        }
        Self { by_first }
    }

    fn plain(phrases: &[String]) -> Self {
        Self::new(phrases.iter().map(|p| (p.as_str(), 0)))
    }

    /// The longest phrase starting at token `i`: (its length in tokens,
    /// its tag). A phrase does not run across a sentence end.
    fn match_at(&self, toks: &[Tok], i: usize) -> Option<(usize, usize)> {
        let cands = self.by_first.get(&toks.get(i)?.norm)?;
        'next: for (w, tag) in cands {
            if toks.len() - i < w.len() {
                continue;
            }
            for (k, word) in w.iter().enumerate() {
                let t = &toks[i + k];
                if t.norm != *word || (k + 1 < w.len() && t.brk >= Brk::Stop) {
                    continue 'next;
                }
            }
            return Some((w.len(), *tag));
        }
        None
    }
}

/// A gazetteer entry: canonical spelling, label, ambiguous ("?" or a
/// common word: taken only capitalised in context, never approximately).
#[derive(Debug, Clone)]
struct GazEntry {
    canonical: String,
    label: String,
}

/// A gazetteer spelling: its words, the entry, whether this spelling is
/// ambiguous.
#[derive(Debug, Clone)]
struct GazSpelling {
    words: Vec<String>,
    entry: usize,
    ambiguous: bool,
}

/// Everything loaded from the configuration, compiled.
#[derive(Debug)]
struct Rules {
    common: HashSet<String>,
    entries: Vec<GazEntry>,
    /// first word → spellings, longest first
    gaz: HashMap<String, Vec<GazSpelling>>,
    /// (letters of a spelling, entry) for approximate matching
    fuzzy: Vec<(Vec<char>, usize)>,
    /// place words (a name right after one is in a place context)
    place_context: HashSet<String>,
    name_phrases: PhraseSet,
    introductions: PhraseSet,
    announcements: PhraseSet,
    announcement_followers: HashSet<String>,
    vocatives: PhraseSet,
    titles: HashSet<String>,
    person_max_words: usize,
    org_triggers: PhraseSet,
    org_suffixes: HashSet<String>,
    org_max_words: usize,
    fillers: HashSet<String>,
    continue_seconds: f64,
    answer_seconds: f64,
    ask_words: HashSet<String>,
    phone_digits: (usize, usize),
    /// tag = index into `number_labels`
    number_triggers: PhraseSet,
    number_labels: Vec<String>,
    amount_prefixes: HashMap<String, String>,
    amount_suffixes: HashMap<String, String>,
    amount_minor: HashMap<String, String>,
    day_first: bool,
    relative_dates: HashSet<String>,
    tlds: HashSet<String>,
    email_re: Regex,
    numeric_date_re: Regex,
}

const CONFIG_FILE: &str = "entities.toml";
const GAZETTEER_DIR: &str = "gazetteer";

fn lower_set(v: &[String]) -> HashSet<String> {
    v.iter()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Lines of a list file without comments and blanks, with line numbers.
fn list_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(n, l)| {
        let l = l.split('#').next().unwrap_or("").trim();
        (!l.is_empty()).then_some((n + 1, l))
    })
}

impl Rules {
    /// `files` maps a file name used in the configuration to its text.
    fn build(
        cfg_name: &str,
        cfg_text: &str,
        file: &dyn Fn(&str) -> Result<String, AnalysisError>,
    ) -> Result<Rules, AnalysisError> {
        let cfg: Config =
            toml::from_str(cfg_text).map_err(|e| AnalysisError::config(cfg_name, e))?;
        let mut common = HashSet::new();
        for f in &cfg.common_words {
            for (_, l) in list_lines(&file(f)?) {
                common.insert(l.to_lowercase());
            }
        }
        let mut entries = vec![];
        let mut gaz: HashMap<String, Vec<GazSpelling>> = HashMap::new();
        let mut fuzzy = vec![];
        let mut place_context = HashSet::new();
        for (gi, g) in cfg.gazetteer.iter().enumerate() {
            let lab = g.label.trim().to_uppercase();
            if !label::ALL.contains(&lab.as_str()) {
                return Err(AnalysisError::config(
                    cfg_name,
                    format!("gazetteer {}: unknown label {:?}", gi + 1, g.label),
                ));
            }
            place_context.extend(lower_set(&g.context));
            for f in &g.files {
                let text = file(f)?;
                for (n, line) in list_lines(&text) {
                    let (ambiguous, line) = match line.strip_prefix('?') {
                        Some(rest) => (true, rest),
                        None => (false, line),
                    };
                    let spellings: Vec<&str> = line
                        .split('|')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .collect();
                    let first_empty = line.split('|').next().is_none_or(|s| s.trim().is_empty());
                    let Some(canonical) = spellings.first().filter(|_| !first_empty) else {
                        return Err(AnalysisError::config(
                            format!("{f}:{n}"),
                            "no canonical name before \"|\"",
                        ));
                    };
                    let entry = entries.len();
                    entries.push(GazEntry {
                        canonical: canonical.to_string(),
                        label: lab.clone(),
                    });
                    for s in spellings {
                        let w = words(s);
                        let Some(first) = w.first().cloned() else {
                            return Err(AnalysisError::config(
                                format!("{f}:{n}"),
                                format!("no letters in {s:?}"),
                            ));
                        };
                        let amb = ambiguous || (w.len() == 1 && common.contains(&w[0]));
                        if g.fuzzy && !amb {
                            let letters: Vec<char> = w.concat().chars().collect();
                            if letters.len() >= 5 {
                                fuzzy.push((letters, entry));
                            }
                        }
                        gaz.entry(first).or_default().push(GazSpelling {
                            words: w,
                            entry,
                            ambiguous: amb,
                        });
                    }
                }
            }
        }
        for v in gaz.values_mut() {
            v.sort_by_key(|s| std::cmp::Reverse(s.words.len()));
        }
        let p = &cfg.person;
        let o = &cfg.organization;
        let nb = &cfg.numbers;
        let [lo, hi] = nb.phone_digits;
        if lo == 0 || lo > hi {
            return Err(AnalysisError::config(
                cfg_name,
                format!("numbers.phone_digits: {lo}..{hi} is not a range"),
            ));
        }
        let mut number_labels = vec![];
        let mut trig = vec![];
        for (k, t) in nb.triggers.iter().enumerate() {
            let lab = t.label.trim().to_uppercase();
            if !label::ALL.contains(&lab.as_str()) {
                return Err(AnalysisError::config(
                    cfg_name,
                    format!("numbers.triggers {}: unknown label {:?}", k + 1, t.label),
                ));
            }
            for ph in &t.phrases {
                trig.push((ph.clone(), number_labels.len()));
            }
            number_labels.push(lab);
        }
        let day_first = match cfg.dates.numeric_order.trim().to_lowercase().as_str() {
            "dmy" => true,
            "mdy" => false,
            other => {
                return Err(AnalysisError::config(
                    cfg_name,
                    format!("dates.numeric_order: {other:?} is neither \"dmy\" nor \"mdy\""),
                ))
            }
        };
        let lower_map = |m: &BTreeMap<String, String>| -> HashMap<String, String> {
            m.iter()
                .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_uppercase()))
                .collect()
        };
        let re = |p: &str| Regex::new(p).map_err(|e| AnalysisError::config(cfg_name, e));
        Ok(Rules {
            common,
            entries,
            gaz,
            fuzzy,
            place_context,
            name_phrases: PhraseSet::plain(&p.name_phrases),
            introductions: PhraseSet::plain(&p.introductions),
            announcements: PhraseSet::plain(&p.announcements),
            announcement_followers: lower_set(&p.announcement_followers),
            vocatives: PhraseSet::plain(&p.vocatives),
            titles: lower_set(&p.titles),
            person_max_words: p.max_words.max(1),
            org_triggers: PhraseSet::plain(&o.triggers),
            org_suffixes: lower_set(&o.suffixes),
            org_max_words: o.max_words.max(1),
            fillers: lower_set(&nb.fillers),
            continue_seconds: nb.continue_seconds,
            answer_seconds: nb.answer_seconds,
            ask_words: lower_set(&nb.ask_words),
            phone_digits: (lo, hi),
            number_triggers: PhraseSet::new(trig.iter().map(|(p, k)| (p.as_str(), *k))),
            number_labels,
            amount_prefixes: lower_map(&cfg.amounts.prefixes),
            amount_suffixes: lower_map(&cfg.amounts.suffixes),
            amount_minor: lower_map(&cfg.amounts.minor),
            day_first,
            relative_dates: lower_set(&cfg.dates.relative),
            tlds: lower_set(&cfg.email.tlds),
            email_re: re(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")?,
            numeric_date_re: re(r"\b\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\b")?,
        })
    }
}

// ---------------------------------------------------------------------------
// Tokens

/// Punctuation right after a token, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Brk {
    None,
    Comma,
    Stop,
    Question,
}

/// A word of a segment's text.
#[derive(Debug, Clone)]
struct Tok {
    /// Byte span of the word without surrounding punctuation.
    start: usize,
    end: usize,
    /// Byte offset of a currency or plus sign right before it ("$85").
    sign: Option<(char, usize)>,
    /// The word as written, without surrounding punctuation.
    raw: String,
    /// Letters, digits and inner apostrophes, lower-cased.
    norm: String,
    /// First letter upper-case.
    cap: bool,
    /// First word of a sentence.
    sent_start: bool,
    brk: Brk,
    /// Seconds from the call start, from the segment's word times.
    time: Option<f64>,
}

fn is_sign(c: char) -> bool {
    matches!(c, '$' | '£' | '€' | '+')
}

/// Split a text into words (at white space and hyphens) with their spans,
/// punctuation and, when `words` (the recogniser's word times) is given,
/// their times: a token gets the time of the word holding its first letter
/// or digit, counting letters and digits through both (robust to the
/// recogniser splitting words differently).
fn tokenize(text: &str, word_times: &[crate::asr::Word]) -> Vec<Tok> {
    let mut starts: Vec<(usize, f64)> = Vec::with_capacity(word_times.len());
    let mut acc = 0usize;
    for w in word_times {
        if w.start.is_finite() {
            starts.push((acc, w.start));
        }
        acc += w.word.chars().filter(|c| c.is_alphanumeric()).count();
    }
    let mut toks: Vec<Tok> = vec![];
    let mut alnum_before = 0usize;
    let mut counted_to = 0usize;
    let mut pieces: Vec<(usize, usize)> = vec![];
    let mut piece_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() || c == '-' || c == '–' || c == '—' {
            if let Some(s) = piece_start.take() {
                pieces.push((s, i));
            }
        } else if piece_start.is_none() {
            piece_start = Some(i);
        }
    }
    if let Some(s) = piece_start {
        pieces.push((s, text.len()));
    }
    for (ps, pe) in pieces {
        let piece = &text[ps..pe];
        let core_start = piece
            .char_indices()
            .find(|(_, c)| c.is_alphanumeric())
            .map(|(i, _)| ps + i);
        let Some(cs) = core_start else {
            // Punctuation alone: it ends the previous word's sentence.
            if let Some(prev) = toks.last_mut() {
                prev.brk = prev.brk.max(brk_of(piece));
            }
            continue;
        };
        let ce = piece
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_alphanumeric())
            .map(|(i, c)| ps + i + c.len_utf8())
            .unwrap_or(pe);
        let core = &text[cs..ce];
        let sign = text[ps..cs]
            .char_indices()
            .rev()
            .find(|(_, c)| is_sign(*c))
            .map(|(i, c)| (c, ps + i));
        let norm: String = core
            .chars()
            .map(|c| if c == '’' { '\'' } else { c })
            .filter(|c| c.is_alphanumeric() || *c == '\'')
            .flat_map(char::to_lowercase)
            .collect::<String>()
            .trim_matches('\'')
            .to_string();
        alnum_before += text[counted_to..cs]
            .chars()
            .filter(|c| c.is_alphanumeric())
            .count();
        counted_to = cs;
        let time = if starts.is_empty() {
            None
        } else {
            let k = starts.partition_point(|(o, _)| *o <= alnum_before);
            Some(starts[k.saturating_sub(1)].1)
        };
        let sent_start = toks.last().is_none_or(|p| p.brk >= Brk::Stop);
        toks.push(Tok {
            start: cs,
            end: ce,
            sign,
            raw: core.to_string(),
            cap: core.chars().next().is_some_and(char::is_uppercase),
            norm,
            sent_start,
            brk: brk_of(&text[ce..pe]),
            time,
        });
    }
    toks
}

fn brk_of(punct: &str) -> Brk {
    let mut b = Brk::None;
    for c in punct.chars() {
        b = b.max(match c {
            '?' => Brk::Question,
            '.' | '!' | '…' => Brk::Stop,
            ',' | ';' | ':' => Brk::Comma,
            _ => Brk::None,
        });
    }
    b
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

// ---------------------------------------------------------------------------
// Numbers said in words, written once for every numeric rule

/// "zero".."nine" (and "oh"/"o" for 0: only inside digit strings).
fn digit_word(w: &str) -> Option<u8> {
    Some(match w {
        "zero" | "oh" | "o" | "nil" | "nought" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        _ => return None,
    })
}

/// "ten".."nineteen", "twenty".."ninety".
fn tens_word(w: &str) -> Option<u64> {
    Some(match w {
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        "twenty" => 20,
        "thirty" => 30,
        "forty" | "fourty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

/// "first".."thirty-first" as words (the last word: "first" of
/// "twenty first"), and "1st", "22nd", "3rd", "4th".
fn ordinal_word(w: &str) -> Option<u64> {
    let v = match w {
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "sixth" => 6,
        "seventh" => 7,
        "eighth" => 8,
        "ninth" => 9,
        "tenth" => 10,
        "eleventh" => 11,
        "twelfth" => 12,
        "thirteenth" => 13,
        "fourteenth" => 14,
        "fifteenth" => 15,
        "sixteenth" => 16,
        "seventeenth" => 17,
        "eighteenth" => 18,
        "nineteenth" => 19,
        "twentieth" => 20,
        "thirtieth" => 30,
        _ => {
            let n = w
                .strip_suffix("st")
                .or_else(|| w.strip_suffix("nd"))
                .or_else(|| w.strip_suffix("rd"))
                .or_else(|| w.strip_suffix("th"))?;
            return if is_digits(n) && n.len() <= 2 {
                n.parse().ok()
            } else {
                None
            };
        }
    };
    Some(v)
}

/// A day of the month at token `i`: "3", "3rd", "third", "twenty first",
/// "twenty-first" (the hyphen splits it). Returns (day, tokens used).
fn read_day(toks: &[Tok], i: usize) -> Option<(u32, usize)> {
    let t = toks.get(i)?;
    let (d, n) = if let Some(v) = ordinal_word(&t.norm) {
        (v, 1)
    } else if is_digits(&t.norm) && t.norm.len() <= 2 {
        (t.norm.parse().ok()?, 1)
    } else if let (Some(tens @ (20 | 30)), Some(next)) = (tens_word(&t.norm), toks.get(i + 1)) {
        let u = ordinal_word(&next.norm).filter(|u| *u < 10)?;
        (tens + u, 2)
    } else {
        return None;
    };
    (1..=31).contains(&d).then_some((d as u32, n))
}

/// A cardinal number at token `i`: written ("85", "1,500", "85.50") or
/// said ("eighty five", "two hundred and fifty", "a thousand", "1.5
/// million"). Two digit words in a row ("seven seven") are not one
/// number. Returns (value, tokens used).
fn read_cardinal(toks: &[Tok], i: usize) -> Option<(f64, usize)> {
    let t = toks.get(i)?;
    let scale = |w: &str| match w {
        "hundred" => Some(100.0),
        "thousand" | "k" => Some(1e3),
        "million" => Some(1e6),
        "billion" => Some(1e9),
        _ => None,
    };
    let core_digits = t.norm.bytes().any(|b| b.is_ascii_digit());
    if core_digits {
        // The written form: digits, thousands commas, one decimal point.
        let v: f64 = written_number(t)?;
        let mut used = 1;
        let mut v = v;
        if t.brk == Brk::None {
            if let Some(m) = toks.get(i + 1).and_then(|n| scale(&n.norm)) {
                if m >= 1e3 {
                    v *= m;
                    used = 2;
                }
            }
        }
        return Some((v, used));
    }
    let mut total = 0.0f64;
    let mut current = 0.0f64;
    let mut j = i;
    let mut any = false;
    // what the previous word was: 0 none, 1 unit, 2 tens, 3 teen, 4 scale
    let mut prev = 0u8;
    while let Some(t) = toks.get(j) {
        let w = t.norm.as_str();
        let mut took = true;
        if let Some(u) = digit_word(w).filter(|_| w != "o" && w != "oh" && w != "nought") {
            if prev == 1 || prev == 3 {
                break;
            }
            current += f64::from(u);
            prev = 1;
        } else if let Some(v) = tens_word(w) {
            if prev != 0 && prev != 4 {
                break;
            }
            current += v as f64;
            prev = if v < 20 { 3 } else { 2 };
        } else if let Some(m) = scale(w) {
            if !any && w != "hundred" {
                break;
            }
            if m == 100.0 {
                current = current.max(1.0) * 100.0;
            } else {
                total += current.max(1.0) * m;
                current = 0.0;
            }
            prev = 4;
        } else if (w == "a" && !any) || (w == "and" && prev == 4) {
            // "a hundred", "two hundred and five": only if a number follows
            let next = toks.get(j + 1).map(|n| n.norm.as_str()).unwrap_or("");
            let ok = if w == "a" {
                scale(next).is_some()
            } else {
                digit_word(next).is_some() || tens_word(next).is_some()
            };
            if !ok || t.brk != Brk::None {
                break;
            }
            if w == "a" {
                current = 1.0;
                prev = 1;
            } else {
                took = false;
            }
        } else {
            break;
        }
        if took {
            any = true;
        }
        j += 1;
        if t.brk != Brk::None {
            break;
        }
    }
    any.then_some((total + current, j - i))
}

/// The value of a written number token: "85", "1,500", "85.50".
fn written_number(t: &Tok) -> Option<f64> {
    let raw = t.raw.as_str();
    let (int, frac) = match raw.split_once('.') {
        Some((a, b)) if is_digits(b) => (a, Some(b)),
        Some(_) => return None,
        None => (raw, None),
    };
    let groups: Vec<&str> = int.split(',').collect();
    let grouped_ok = groups.len() == 1
        || (groups[0].len() <= 3
            && !groups[0].is_empty()
            && groups[1..].iter().all(|g| g.len() == 3));
    if !grouped_ok || !groups.iter().all(|g| is_digits(g)) {
        return None;
    }
    let mut s: String = groups.concat();
    if let Some(f) = frac {
        s.push('.');
        s.push_str(f);
    }
    s.parse().ok()
}

/// One item of a digit string at token `i`: a digit group ("0712", "7"),
/// a digit word ("seven", "oh"), "double"/"triple" + a digit, a number
/// word read as its digits ("twenty three" → "23", "ten" → "10").
/// Returns (digits, tokens used).
fn digit_item(toks: &[Tok], i: usize) -> Option<(String, usize)> {
    let t = toks.get(i)?;
    let w = t.norm.as_str();
    if is_digits(w) && t.raw.chars().all(|c| c.is_ascii_digit() || c == ',') {
        return Some((w.to_string(), 1));
    }
    if matches!(w, "double" | "triple") && t.brk == Brk::None {
        let n = if w == "double" { 2 } else { 3 };
        let next = toks.get(i + 1)?;
        let d = digit_word(&next.norm)
            .map(|d| char::from(b'0' + d))
            .or_else(|| {
                (next.norm.len() == 1 && is_digits(&next.norm))
                    .then(|| next.norm.chars().next().unwrap_or('0'))
            })?;
        return Some((std::iter::repeat_n(d, n).collect(), 2));
    }
    if let Some(d) = digit_word(w) {
        return Some((char::from(b'0' + d).to_string(), 1));
    }
    if let Some(v) = tens_word(w) {
        if v >= 20 && t.brk == Brk::None {
            if let Some(u) = toks
                .get(i + 1)
                .and_then(|n| digit_word(&n.norm))
                .filter(|u| *u > 0)
            {
                return Some(((v + u64::from(u)).to_string(), 2));
            }
        }
        return Some((v.to_string(), 1));
    }
    None
}

/// A digit string from token `i`: digit items separated by spaces, commas
/// or hyphens, ending at a full stop or question mark, at a word that is
/// not a digit, or at a token already taken. "oh"/"o" count as 0 only
/// next to other digits. Returns (digits, end token, exclusive).
fn read_digits(toks: &[Tok], i: usize, taken: &[bool]) -> Option<(String, usize)> {
    let mut digits = String::new();
    let mut j = i;
    while j < toks.len() && !taken.get(j).copied().unwrap_or(true) {
        let Some((d, n)) = digit_item(toks, j) else {
            break;
        };
        let w = toks[j].norm.as_str();
        if (w == "oh" || w == "o") && digits.is_empty() && digit_item(toks, j + 1).is_none() {
            break;
        }
        if (j..j + n).any(|k| taken.get(k).copied().unwrap_or(true)) {
            break;
        }
        digits.push_str(&d);
        j += n;
        if toks[j - 1].brk >= Brk::Stop {
            break;
        }
    }
    // A trailing lone "oh"/"o" is an interjection, not a 0.
    if j > i && matches!(toks[j - 1].norm.as_str(), "oh" | "o") && digits.len() > 1 {
        let prev_digit = j >= 2 && digit_item(toks, j - 2).is_some();
        if !prev_digit {
            digits.pop();
            j -= 1;
        }
    }
    (!digits.is_empty()).then_some((digits, j))
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// 1..12 for a month name or its usual short form ("Sept", "Dec").
fn month_of(w: &str) -> Option<u32> {
    if let Some(k) = MONTHS.iter().position(|m| *m == w) {
        return Some(k as u32 + 1);
    }
    Some(match w {
        "jan" => 1,
        "feb" => 2,
        "apr" => 4,
        "aug" => 8,
        "sep" | "sept" => 9,
        "oct" => 10,
        "nov" => 11,
        "dec" => 12,
        _ => return None,
    })
}

fn days_in_month(m: u32) -> u32 {
    match m {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// "YYYY-MM-DD" or, without a year, "MM-DD".
fn iso_date(y: Option<i32>, m: u32, d: u32) -> Option<String> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(m) {
        return None;
    }
    Some(match y {
        Some(y) => format!("{y:04}-{m:02}-{d:02}"),
        None => format!("{m:02}-{d:02}"),
    })
}

/// A year written as digits right after a date (1900..=2100).
fn read_year(toks: &[Tok], i: usize) -> Option<i32> {
    let t = toks.get(i)?;
    if t.norm.len() == 4 && is_digits(&t.norm) {
        let y: i32 = t.norm.parse().ok()?;
        return (1900..=2100).contains(&y).then_some(y);
    }
    None
}

fn format_amount(v: f64, cur: &str) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{} {cur}", v.round() as i64)
    } else {
        format!("{v:.2} {cur}")
    }
}

// ---------------------------------------------------------------------------
// The rules engine

/// A question for a number, waiting for the other party's answer.
#[derive(Debug, Clone)]
struct Asked {
    label: String,
    speaker: String,
    time: f64,
    /// The other party's segments that may still answer.
    left: u8,
}

/// A trigger phrase that ended its segment ("I have opened case number" /
/// "4 5 7 2 1 for you."): the same speaker's next digits may be its number.
#[derive(Debug, Clone)]
struct Pending {
    label: String,
    speaker: String,
    end_time: f64,
}

/// A number that ended its segment, held in case it continues.
#[derive(Debug, Clone)]
struct Held {
    entity: Entity,
    /// None: a bare digit string, a PHONE if its length fits.
    label: Option<String>,
    digits: String,
    plus: bool,
    end_time: f64,
}

/// Entities from rules, patterns and gazetteers (`config/entities.toml`,
/// `config/gazetteer/`). Cloning is cheap (the compiled rules are shared):
/// load once, clone per call.
///
/// Rules, in the order they claim words (a word is in one entity at most,
/// except a place inside an organisation's name):
///
/// * EMAIL: written addresses; spoken ones, "jo dot smith at example dot
///   co dot uk" (the last part one of `email.tlds`).
/// * DATE written "3/3/2025", "2025-03-03" (`dates.numeric_order`).
/// * CASE_NUMBER, ACCOUNT_NUMBER, PHONE after a trigger phrase
///   (`numbers.triggers`, fillers such as "is", "um" skipped), as digits
///   or digit words ("oh"/"zero" = 0, "double seven"); a code of letters
///   and digits counts too. When the trigger is a question ("can I have
///   your account number?", `numbers.ask_words` or "?"), the other
///   party's next digits (within `answer_seconds`, two segments) are that
///   number (source "answer"). A pause between the phrase and the digits
///   is allowed: a full stop there ("case number. 4 5 7 2 1"), or the
///   phrase ending the segment when the same speaker's next segment
///   starts with the digits (within `numbers.continue_seconds`).
/// * AMOUNT: "$85", "KSh 500", "eighty five dollars", "ten dollars and
///   fifty cents", "50 pence", normalized "85 USD", "10.50 USD".
/// * AGE: "12 years old", "twelve year old", "aged 12", "age of 12".
/// * DATE: "the 3rd of March", "third of March 2025", "March 3",
///   "March the third" (normalized "03-03", "2025-03-03"); weekdays
///   ("Monday"); `dates.relative` words as said ("today").
/// * PHONE: any other string of 7 to 15 digits (`numbers.phone_digits`).
/// * PERSON: after `person.name_phrases` ("my name is", any case), a
///   capitalised name after `introductions` ("I'm", "call me"),
///   `announcements` when the sentence ends or an
///   `announcement_followers` word comes next ("This is David speaking"),
///   `vocatives` ("Thank you, Amina", "Hi David"), `titles` ("Mrs
///   Wanjiru"). Common words (`common_words`) are never names. Every later
///   capitalised mention of a known name (or of one of its words, or one
///   letter off: "Amin" for "Amina") is that person, normalized to the
///   full name first heard.
/// * ORGANIZATION: gazetteer names; capitalised words after
///   `organization.triggers` ("thank you for calling Acme Energy");
///   capitalised words ending in one of `organization.suffixes` ("Equity
///   Bank", "Mombasa Children's Office").
/// * LOCATION: gazetteer names (capitalised, or in a place context: right
///   after one of the gazetteer's `context` words, "the" allowed
///   between); ambiguous names ("?" entries, common words: Reading, Bath)
///   only capitalised in a place context; approximate matches (one or two
///   capitalised words in a place context, joined: "Mambasa", "Mount
///   Basa" → Mombasa) for `fuzzy` gazetteers, by an edit distance where
///   vowel-for-vowel and m/n swaps cost half, bounded relative to length.
///
/// A digit string that ends a segment is held back: when the same
/// speaker's next segment starts with digits within
/// `numbers.continue_seconds`, the two are one number (a lone
/// low-confidence word between, the recogniser's noise, is skipped: the
/// helpline fixture's "0 7 1 2 3 4 5." / "x" / "7, 8, 7" is one PHONE).
/// Any other segment, or [`EntityExtractor::finish`], releases it, so
/// such a number is reported one segment late.
///
/// Confidence = the rule's strength (0.95 written e-mail .. 0.5 for a weak
/// approximate place) × (0.5 + 0.5 × the segment's ASR confidence): a
/// poorly recognised segment halves it at most.
#[derive(Debug, Clone)]
pub struct RuleEntities {
    rules: Arc<Rules>,
    /// Full names heard, in order.
    names: Vec<String>,
    /// A known name's words (lower-case) → index in `names`.
    name_parts: HashMap<String, usize>,
    asked: Option<Asked>,
    held: Option<Held>,
    pending: Option<Pending>,
}

/// One segment being read.
struct Cur<'a> {
    seg: &'a Segment,
    toks: Vec<Tok>,
    taken: Vec<bool>,
    /// 0.5 + 0.5 × ASR confidence
    asr: f64,
    out: Vec<Entity>,
    /// Places found: (first token, end token, canonical name); an
    /// organisation's name may hold one.
    places: Vec<(usize, usize, String)>,
}

impl Cur<'_> {
    fn free(&self, i: usize, j: usize) -> bool {
        j <= self.toks.len() && i < j && !self.taken[i..j].iter().any(|t| *t)
    }

    /// An entity over tokens `i..j` (the sign before `i` included).
    fn make(
        &self,
        i: usize,
        j: usize,
        lab: &str,
        norm: Option<String>,
        source: &str,
        strength: f64,
    ) -> Entity {
        let first = &self.toks[i];
        let start = first.sign.map(|(_, s)| s).unwrap_or(first.start);
        let end = self.toks[j - 1].end;
        self.make_span(start, end, first.time, lab, norm, source, strength)
    }

    #[allow(clippy::too_many_arguments)]
    fn make_span(
        &self,
        start: usize,
        end: usize,
        time: Option<f64>,
        lab: &str,
        norm: Option<String>,
        source: &str,
        strength: f64,
    ) -> Entity {
        Entity {
            text: self.seg.text.get(start..end).unwrap_or("").to_string(),
            label: lab.to_string(),
            start,
            end,
            confidence: (strength * self.asr).clamp(0.0, 1.0),
            segment_id: self.seg.segment_id,
            participant_id: self.seg.participant_id.clone(),
            speaker: self.seg.speaker.clone(),
            time: time.unwrap_or(self.seg.start_time),
            normalized: norm,
            source: source.to_string(),
        }
    }

    /// Report tokens `i..j` as an entity and take them.
    fn emit(
        &mut self,
        i: usize,
        j: usize,
        lab: &str,
        norm: Option<String>,
        source: &str,
        strength: f64,
    ) {
        let e = self.make(i, j, lab, norm, source, strength);
        self.take(i, j);
        self.out.push(e);
    }

    fn take(&mut self, i: usize, j: usize) {
        for t in &mut self.taken[i..j.min(self.toks.len())] {
            *t = true;
        }
    }

    /// Tokens overlapping the byte range.
    fn tokens_in(&self, start: usize, end: usize) -> (usize, usize) {
        let i = self.toks.partition_point(|t| t.end <= start);
        let j = self.toks.partition_point(|t| t.start < end);
        (i, j.max(i))
    }
}

impl RuleEntities {
    /// Load `config_dir/entities.toml` and the lists it names from
    /// `config_dir/gazetteer/`.
    pub fn load(config_dir: &Path) -> Result<RuleEntities, AnalysisError> {
        let cfg_path = config_dir.join(CONFIG_FILE);
        let cfg = read_text(&cfg_path)?;
        let dir = config_dir.join(GAZETTEER_DIR);
        let file = |name: &str| read_text(&dir.join(name));
        Ok(Self::from_rules(Rules::build(
            &cfg_path.display().to_string(),
            &cfg,
            &file,
        )?))
    }

    /// From the configuration's text and the lists' texts by file name
    /// (`("locations.txt", "...")`).
    pub fn from_strs(config: &str, files: &[(&str, &str)]) -> Result<RuleEntities, AnalysisError> {
        let file = |name: &str| {
            files
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, t)| t.to_string())
                .ok_or_else(|| AnalysisError::config(name, "no such list given"))
        };
        Ok(Self::from_rules(Rules::build(CONFIG_FILE, config, &file)?))
    }

    fn from_rules(rules: Rules) -> Self {
        Self {
            rules: Arc::new(rules),
            names: vec![],
            name_parts: HashMap::new(),
            asked: None,
            held: None,
            pending: None,
        }
    }

    /// The same rules with no call state (names, questions, held numbers).
    pub fn fresh(&self) -> Self {
        Self {
            rules: Arc::clone(&self.rules),
            names: vec![],
            name_parts: HashMap::new(),
            asked: None,
            held: None,
            pending: None,
        }
    }

    /// Gazetteer entries loaded (every list).
    pub fn gazetteer_len(&self) -> usize {
        self.rules.entries.len()
    }

    fn release(&self, h: Held) -> Option<Entity> {
        let mut e = h.entity;
        let lab = match h.label {
            Some(l) => l,
            None => {
                let (lo, hi) = self.rules.phone_digits;
                if !(lo..=hi).contains(&h.digits.len()) {
                    return None;
                }
                label::PHONE.to_string()
            }
        };
        e.normalized = Some(if h.plus {
            format!("+{}", h.digits)
        } else {
            h.digits
        });
        e.label = lab;
        Some(e)
    }

    /// Settle the held number against this segment (before any rule).
    fn settle_held(&mut self, c: &mut Cur) {
        let Some(mut h) = self.held.take() else {
            return;
        };
        let seg = c.seg;
        let gap = seg.start_time - h.end_time;
        let same = h.entity.speaker == seg.speaker && gap <= self.rules.continue_seconds;
        if same && c.toks.len() <= 1 && seg.confidence < 0.5 && digit_item(&c.toks, 0).is_none() {
            // Recogniser noise between two parts of a number.
            h.end_time = seg.end_time;
            c.take(0, c.toks.len());
            self.held = Some(h);
            return;
        }
        let max = if h.label.as_deref().is_none_or(|l| l == label::PHONE) {
            self.rules.phone_digits.1
        } else {
            32
        };
        if same {
            if let Some((d, j)) = read_digits(&c.toks, 0, &c.taken) {
                if h.digits.len() + d.len() <= max {
                    h.digits.push_str(&d);
                    let part = &seg.text[c.toks[0].start..c.toks[j - 1].end];
                    h.entity.text.push(' ');
                    h.entity.text.push_str(part);
                    h.end_time = seg.end_time;
                    c.take(0, j);
                    if j == c.toks.len() {
                        self.held = Some(h);
                    } else if let Some(e) = self.release(h) {
                        c.out.push(e);
                    }
                    return;
                }
            }
        }
        if let Some(e) = self.release(h) {
            c.out.push(e);
        }
    }

    /// A trigger phrase that ended the speaker's previous segment takes the
    /// digits this segment starts with (same speaker, within
    /// `numbers.continue_seconds`).
    fn settle_pending(&mut self, c: &mut Cur) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let seg = c.seg;
        if p.speaker != seg.speaker || seg.start_time - p.end_time > self.rules.continue_seconds {
            return;
        }
        let mut j = 0;
        while j < c.toks.len() && self.rules.fillers.contains(&c.toks[j].norm) {
            j += 1;
        }
        if let Some((d, k)) = read_digits(&c.toks, j, &c.taken) {
            if d.len() >= 3 {
                self.number(c, j, k, d, Some(&p.label), "trigger", 0.85);
                // The number is given: nobody is asked for it any more.
                if self
                    .asked
                    .as_ref()
                    .is_some_and(|a| a.label == p.label && a.speaker == p.speaker)
                {
                    self.asked = None;
                }
            }
        }
    }

    /// Report a digit string at `i..j` (or hold it if it ends the segment).
    #[allow(clippy::too_many_arguments)]
    fn number(
        &mut self,
        c: &mut Cur,
        i: usize,
        j: usize,
        digits: String,
        lab: Option<&str>,
        source: &str,
        strength: f64,
    ) {
        let plus = c.toks[i].sign.is_some_and(|(s, _)| s == '+');
        let e = c.make(i, j, lab.unwrap_or(label::PHONE), None, source, strength);
        c.take(i, j);
        let h = Held {
            entity: e,
            label: lab.map(str::to_string),
            digits,
            plus,
            end_time: c.seg.end_time,
        };
        if j == c.toks.len() {
            if let Some(old) = self.held.replace(h) {
                if let Some(e) = self.release(old) {
                    c.out.push(e);
                }
            }
        } else if let Some(e) = self.release(h) {
            c.out.push(e);
        }
    }

    /// Is the sentence holding token `i` a question, or asking ("can I
    /// have ...")?
    fn asking(&self, toks: &[Tok], i: usize) -> bool {
        let mut s = i;
        while s > 0 && toks[s - 1].brk < Brk::Stop {
            s -= 1;
        }
        let mut e = i;
        while e + 1 < toks.len() && toks[e].brk < Brk::Stop {
            e += 1;
        }
        toks[e].brk == Brk::Question
            || toks[s..i]
                .iter()
                .any(|t| self.rules.ask_words.contains(&t.norm))
    }

    fn triggered_numbers(&mut self, c: &mut Cur) {
        let mut i = 0;
        while i < c.toks.len() {
            let Some((n, tag)) = self.rules.number_triggers.match_at(&c.toks, i) else {
                i += 1;
                continue;
            };
            let lab = self.rules.number_labels[tag].clone();
            let mut j = i + n;
            while j < c.toks.len()
                && c.toks[j - 1].brk < Brk::Stop
                && self.rules.fillers.contains(&c.toks[j].norm)
            {
                j += 1;
            }
            // Digits right after the phrase, or after the recogniser's full
            // stop at a pause ("case number. 4, 5, 7, 2, 1", less sure); a
            // question is left to `answers`.
            let brk = c.toks[j - 1].brk;
            let free = j < c.toks.len() && !c.taken[j];
            if free && brk <= Brk::Stop {
                if let Some((d, k)) = read_digits(&c.toks, j, &c.taken) {
                    if d.len() >= 3 {
                        let strength = if brk == Brk::Stop { 0.85 } else { 0.9 };
                        self.number(c, j, k, d, Some(&lab), "trigger", strength);
                        i = k;
                        continue;
                    }
                }
            }
            if free && brk < Brk::Stop {
                // Letters then digits: "RF 88123", "CS-4572".
                let t = &c.toks[j];
                let letters = (1..=3).contains(&t.raw.len())
                    && t.raw.chars().all(|ch| ch.is_ascii_uppercase())
                    && t.brk == Brk::None;
                if letters && lab != label::PHONE {
                    if let Some((d, k)) = read_digits(&c.toks, j + 1, &c.taken) {
                        if d.len() >= 3 {
                            let code = format!("{}{d}", t.raw);
                            self.number(c, j, k, code, Some(&lab), "trigger", 0.85);
                            i = k;
                            continue;
                        }
                    }
                }
                // A code of letters and digits in one word: "KE2031".
                let t = &c.toks[j];
                let nd = t.norm.bytes().filter(u8::is_ascii_digit).count();
                if nd >= 3 && nd < t.norm.len() && lab != label::PHONE {
                    let code = t.norm.to_uppercase();
                    c.emit(j, j + 1, &lab, Some(code), "trigger", 0.85);
                    i = j + 1;
                    continue;
                }
            }
            if self.asking(&c.toks, i) {
                self.asked = Some(Asked {
                    label: lab.clone(),
                    speaker: c.seg.speaker.clone(),
                    time: c.seg.end_time,
                    left: 2,
                });
            }
            // Said to the other party or not ("I have opened case number"
            // is not a question), the speaker may go on with the digits.
            if j == c.toks.len() && c.toks[j - 1].brk != Brk::Question {
                self.pending = Some(Pending {
                    label: lab,
                    speaker: c.seg.speaker.clone(),
                    end_time: c.seg.end_time,
                });
            }
            i += n;
        }
    }

    fn answers(&mut self, c: &mut Cur) {
        let Some(mut a) = self.asked.take() else {
            return;
        };
        if c.seg.start_time - a.time > self.rules.answer_seconds {
            return;
        }
        if a.speaker == c.seg.speaker {
            self.asked = Some(a);
            return;
        }
        // Answered with the phrase itself ("my account number is ...").
        let held_here = self.held.as_ref().is_some_and(|h| {
            h.entity.segment_id == c.seg.segment_id && h.label.as_deref() == Some(&a.label)
        });
        if held_here
            || c.out
                .iter()
                .any(|e| e.label == a.label && e.segment_id == c.seg.segment_id)
        {
            return;
        }
        for i in 0..c.toks.len() {
            if c.taken[i] {
                continue;
            }
            if let Some((d, k)) = read_digits(&c.toks, i, &c.taken) {
                if d.len() >= 3 {
                    self.number(c, i, k, d, Some(&a.label), "answer", 0.8);
                    return;
                }
            }
        }
        a.left = a.left.saturating_sub(1);
        if a.left > 0 {
            self.asked = Some(a);
        }
    }

    fn bare_phones(&mut self, c: &mut Cur) {
        let mut i = 0;
        while i < c.toks.len() {
            if c.taken[i] {
                i += 1;
                continue;
            }
            let Some((d, k)) = read_digits(&c.toks, i, &c.taken) else {
                i += 1;
                continue;
            };
            let (lo, hi) = self.rules.phone_digits;
            if (lo..=hi).contains(&d.len()) || (k == c.toks.len() && d.len() >= 3 && d.len() < lo) {
                self.number(c, i, k, d, None, "digits", 0.6);
            }
            i = k;
        }
    }
}

impl RuleEntities {
    fn emails(&self, c: &mut Cur) {
        // Written addresses first.
        let found: Vec<(usize, usize)> = self
            .rules
            .email_re
            .find_iter(&c.seg.text)
            .map(|m| (m.start(), m.end()))
            .collect();
        for (s, e) in found {
            let (i, j) = c.tokens_in(s, e);
            if i >= j {
                continue;
            }
            let norm = c.seg.text[s..e].to_lowercase();
            let ent = c.make_span(
                s,
                e,
                c.toks[i].time,
                label::EMAIL,
                Some(norm),
                "email",
                0.95,
            );
            c.take(i, j);
            c.out.push(ent);
        }
        // Spoken: "<local> at <domain> dot <tld>", "jo at example.com".
        let email_said = c
            .toks
            .iter()
            .any(|t| matches!(t.norm.as_str(), "email" | "mail" | "address"));
        let mut k = 1;
        while k + 1 < c.toks.len() {
            if c.toks[k].norm != "at" || c.taken[k] || c.toks[k - 1].brk != Brk::None {
                k += 1;
                continue;
            }
            // The domain: label (dot label)* with a known last label.
            let mut parts: Vec<String> = vec![];
            let mut j = k + 1;
            while let Some(t) = c.toks.get(j) {
                if c.taken[j]
                    || !t
                        .raw
                        .chars()
                        .all(|ch| ch.is_alphanumeric() || ch == '.' || ch == '-')
                {
                    break;
                }
                parts.extend(
                    t.raw
                        .to_lowercase()
                        .split('.')
                        .filter(|p| !p.is_empty())
                        .map(str::to_string),
                );
                j += 1;
                if t.brk == Brk::None
                    && c.toks.get(j).is_some_and(|n| n.norm == "dot")
                    && j + 1 < c.toks.len()
                {
                    j += 1;
                    continue;
                }
                break;
            }
            let good_domain =
                parts.len() >= 2 && parts.last().is_some_and(|t| self.rules.tlds.contains(t));
            if !good_domain {
                k += 1;
                continue;
            }
            // The local part: word (dot|underscore word)* before "at".
            let mut i = k - 1;
            let mut local = vec![c.toks[i].norm.clone()];
            while i >= 2
                && matches!(c.toks[i - 1].norm.as_str(), "dot" | "underscore")
                && c.toks[i - 2].brk == Brk::None
                && !c.taken[i - 2]
            {
                let sep = if c.toks[i - 1].norm == "dot" {
                    "."
                } else {
                    "_"
                };
                local.insert(0, sep.to_string());
                local.insert(0, c.toks[i - 2].norm.clone());
                i -= 2;
            }
            let plain_word = local.len() == 1 && self.rules.common.contains(&local[0]);
            if c.taken[i..k].iter().any(|t| *t)
                || local[0].is_empty()
                || (plain_word && !email_said)
            {
                k += 1;
                continue;
            }
            let addr = format!("{}@{}", local.concat(), parts.join("."));
            c.emit(i, j, label::EMAIL, Some(addr), "email_spoken", 0.8);
            k = j;
        }
    }

    fn numeric_dates(&self, c: &mut Cur) {
        let found: Vec<(usize, usize)> = self
            .rules
            .numeric_date_re
            .find_iter(&c.seg.text)
            .map(|m| (m.start(), m.end()))
            .collect();
        for (s, e) in found {
            let parts: Vec<&str> = c.seg.text[s..e].split(['/', '.', '-']).collect();
            let [a, b, y] = parts[..] else { continue };
            let n = |x: &str| x.parse::<u32>().ok();
            let (Some(a), Some(b), Some(yv)) = (n(a), n(b), n(y)) else {
                continue;
            };
            let iso = if parts[0].len() == 4 {
                // 2025-03-04
                iso_date(Some(a as i32), b, yv)
            } else {
                let year = match y.len() {
                    2 => Some(2000 + yv as i32),
                    4 => Some(yv as i32),
                    _ => None,
                };
                let Some(year) = year else { continue };
                let (d, m) = if a > 12 || (self.rules.day_first && b <= 12) {
                    (a, b)
                } else {
                    (b, a)
                };
                iso_date(Some(year), m, d)
            };
            let Some(iso) = iso else { continue };
            let (i, j) = c.tokens_in(s, e);
            if i >= j || !c.free(i, j) {
                continue;
            }
            let ent = c.make_span(
                s,
                e,
                c.toks[i].time,
                label::DATE,
                Some(iso),
                "date_numeric",
                0.9,
            );
            c.take(i, j);
            c.out.push(ent);
        }
    }

    fn amounts(&self, c: &mut Cur) {
        let r = &self.rules;
        let mut i = 0;
        while i < c.toks.len() {
            if c.taken[i] {
                i += 1;
                continue;
            }
            // Prefix: "$85", "KSh 500".
            let sign_cur = c.toks[i]
                .sign
                .and_then(|(s, _)| r.amount_prefixes.get(&s.to_string()).cloned());
            let (cur, at) = match sign_cur {
                Some(cur) => (Some(cur), i),
                None => match r.amount_prefixes.get(&c.toks[i].norm) {
                    Some(cur) if c.toks[i].brk <= Brk::Stop => (Some(cur.clone()), i + 1),
                    _ => (None, i),
                },
            };
            if let Some(cur) = cur {
                if let Some((v, n)) = read_cardinal(&c.toks, at).filter(|_| at < c.toks.len()) {
                    if c.free(i, at + n) {
                        c.emit(
                            i,
                            at + n,
                            label::AMOUNT,
                            Some(format_amount(v, &cur)),
                            "amount_prefix",
                            0.9,
                        );
                        i = at + n;
                        continue;
                    }
                }
            }
            // Suffix: "85 dollars", "eighty five dollars and fifty cents".
            let Some((v, n)) = read_cardinal(&c.toks, i) else {
                i += 1;
                continue;
            };
            let j = i + n;
            let last_brk = c.toks[j - 1].brk;
            let unit = c.toks.get(j).map(|t| t.norm.clone()).unwrap_or_default();
            if last_brk == Brk::None && c.free(i, j + 1) {
                if let Some(cur) = r.amount_suffixes.get(&unit) {
                    let mut value = v;
                    let mut end = j + 1;
                    // "and fifty cents"
                    if c.toks[j].brk == Brk::None
                        && c.toks.get(end).is_some_and(|t| t.norm == "and")
                    {
                        if let Some((cents, m)) = read_cardinal(&c.toks, end + 1) {
                            let e2 = end + 1 + m;
                            if c.toks[e2 - 1].brk == Brk::None
                                && c.toks
                                    .get(e2)
                                    .is_some_and(|t| r.amount_minor.contains_key(&t.norm))
                                && c.free(end, e2 + 1)
                                && cents < 100.0
                            {
                                value += cents / 100.0;
                                end = e2 + 1;
                            }
                        }
                    }
                    c.emit(
                        i,
                        end,
                        label::AMOUNT,
                        Some(format_amount(value, cur)),
                        "amount_suffix",
                        0.9,
                    );
                    i = end;
                    continue;
                }
                if let Some(cur) = r.amount_minor.get(&unit) {
                    c.emit(
                        i,
                        j + 1,
                        label::AMOUNT,
                        Some(format_amount(v / 100.0, cur)),
                        "amount_suffix",
                        0.85,
                    );
                    i = j + 1;
                    continue;
                }
            }
            i += 1;
        }
    }

    fn ages(&self, c: &mut Cur) {
        let mut i = 0;
        let age_ok = |v: f64| v.fract() == 0.0 && v > 0.0 && v <= 120.0;
        while i < c.toks.len() {
            if c.taken[i] {
                i += 1;
                continue;
            }
            let w = c.toks[i].norm.as_str();
            // "aged 12", "age 12", "age of 12", "age is 12"
            if matches!(w, "aged" | "age") {
                let mut j = i + 1;
                if w == "age"
                    && c.toks
                        .get(j)
                        .is_some_and(|t| matches!(t.norm.as_str(), "of" | "is"))
                    && c.toks[i].brk == Brk::None
                {
                    j += 1;
                }
                if c.toks[j - 1].brk == Brk::None {
                    if let Some((v, n)) = read_cardinal(&c.toks, j).filter(|(v, _)| age_ok(*v)) {
                        if c.free(i, j + n) {
                            c.emit(i, j + n, label::AGE, Some(format!("{v}")), "age", 0.9);
                            i = j + n;
                            continue;
                        }
                    }
                }
            }
            // "12 years old", "twelve year old", "12-year-old"
            if let Some((v, n)) = read_cardinal(&c.toks, i).filter(|(v, _)| age_ok(*v)) {
                let j = i + n;
                let unit = c.toks.get(j).map(|t| t.norm.as_str()).unwrap_or("");
                if c.toks[j - 1].brk == Brk::None
                    && matches!(unit, "year" | "years" | "yr" | "yrs")
                    && c.toks[j].brk == Brk::None
                    && c.toks.get(j + 1).is_some_and(|t| t.norm == "old")
                    && c.free(i, j + 2)
                {
                    c.emit(i, j + 2, label::AGE, Some(format!("{v}")), "age", 0.9);
                    i = j + 2;
                    continue;
                }
            }
            i += 1;
        }
    }

    fn dates(&self, c: &mut Cur) {
        let r = &self.rules;
        let mut i = 0;
        while i < c.toks.len() {
            if c.taken[i] {
                i += 1;
                continue;
            }
            // "the 3rd of March [2025]", "3 March", "third March"
            if let Some((d, n)) = read_day(&c.toks, i) {
                let mut j = i + n;
                let of =
                    c.toks.get(j).is_some_and(|t| t.norm == "of") && c.toks[j - 1].brk == Brk::None;
                if of {
                    j += 1;
                }
                if let Some(m) = c
                    .toks
                    .get(j)
                    .filter(|_| c.toks[j - 1].brk == Brk::None)
                    .and_then(|t| {
                        let m = month_of(&t.norm)?;
                        // "may", "march" are words too: capitalised or after "of"
                        (of || t.cap || !matches!(t.norm.as_str(), "may" | "march")).then_some(m)
                    })
                {
                    let mut end = j + 1;
                    let year = if c.toks[j].brk <= Brk::Comma {
                        read_year(&c.toks, end)
                    } else {
                        None
                    };
                    if year.is_some() {
                        end += 1;
                    }
                    if let Some(iso) = iso_date(year, m, d).filter(|_| c.free(i, end)) {
                        c.emit(i, end, label::DATE, Some(iso), "date", 0.9);
                        i = end;
                        continue;
                    }
                }
            }
            let t = &c.toks[i];
            // "March 3", "March the third", "March 3rd, 2025"
            if let Some(m) = month_of(&t.norm).filter(|_| t.cap && t.brk == Brk::None) {
                let mut j = i + 1;
                if c.toks
                    .get(j)
                    .is_some_and(|t| t.norm == "the" && t.brk == Brk::None)
                {
                    j += 1;
                }
                if let Some((d, n)) = read_day(&c.toks, j) {
                    let mut end = j + n;
                    let year = if c.toks[end - 1].brk <= Brk::Comma {
                        read_year(&c.toks, end)
                    } else {
                        None
                    };
                    if year.is_some() {
                        end += 1;
                    }
                    if let Some(iso) = iso_date(year, m, d).filter(|_| c.free(i, end)) {
                        c.emit(i, end, label::DATE, Some(iso), "date", 0.9);
                        i = end;
                        continue;
                    }
                }
            }
            let t = &c.toks[i];
            if let Some(day) = WEEKDAYS.iter().find(|d| d.to_lowercase() == t.norm) {
                let day = day.to_string();
                c.emit(i, i + 1, label::DATE, Some(day), "weekday", 0.8);
            } else if r.relative_dates.contains(&t.norm) {
                let n = t.norm.clone();
                c.emit(i, i + 1, label::DATE, Some(n), "relative_date", 0.7);
            }
            i += 1;
        }
    }
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// Edit distance where a vowel for a vowel, m for n, c for k, s for z
/// and i for y cost half: the confusions a recogniser makes on a name it
/// does not know ("Mambasa" for "Mombasa": 0.5).
fn name_distance(a: &[char], b: &[char]) -> f64 {
    let sub = |x: char, y: char| -> f64 {
        if x == y {
            0.0
        } else if (is_vowel(x) && is_vowel(y))
            || matches!(
                (x, y),
                ('m', 'n')
                    | ('n', 'm')
                    | ('c', 'k')
                    | ('k', 'c')
                    | ('s', 'z')
                    | ('z', 's')
                    | ('i', 'y')
                    | ('y', 'i')
            )
        {
            0.5
        } else {
            1.0
        }
    };
    let mut prev: Vec<f64> = (0..=b.len()).map(|j| j as f64).collect();
    let mut cur = vec![0.0; b.len() + 1];
    for (i, &x) in a.iter().enumerate() {
        cur[0] = (i + 1) as f64;
        for (j, &y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + sub(x, y))
                .min(prev[j + 1] + 1.0)
                .min(cur[j] + 1.0);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Plain edit distance is at most one (known names: "Amin" for "Amina").
fn one_edit(a: &str, b: &str) -> bool {
    let (mut a, mut b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len() > b.len() {
        std::mem::swap(&mut a, &mut b);
    }
    if b.len() - a.len() > 1 {
        return false;
    }
    let p = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if p == a.len() {
        return true;
    }
    if a.len() == b.len() {
        a[p + 1..] == b[p + 1..]
    } else {
        a[p..] == b[p + 1..]
    }
}

/// "amina" → "Amina", keeping the rest as written.
fn capitalise(w: &str) -> String {
    let mut cs = w.chars();
    match cs.next() {
        Some(f) => f.to_uppercase().chain(cs).collect(),
        None => String::new(),
    }
}

impl RuleEntities {
    /// Could this word be (part of) a name?
    fn name_like(&self, t: &Tok) -> bool {
        let w = t.norm.as_str();
        w.chars().count() >= 2
            && t.raw
                .chars()
                .all(|c| c.is_alphabetic() || c == '\'' || c == '’' || c == '.')
            && !self.rules.common.contains(w)
            && !self.rules.titles.contains(w)
            && month_of(w).is_none()
            && !WEEKDAYS.iter().any(|d| d.eq_ignore_ascii_case(w))
            && digit_word(w).is_none()
            && tens_word(w).is_none()
    }

    /// A place or organisation that is not also a first name.
    fn unambiguous_gazetteer_word(&self, w: &str) -> bool {
        self.rules
            .gaz
            .get(w)
            .is_some_and(|v| v.iter().any(|s| s.words.len() == 1 && !s.ambiguous))
    }

    /// A name at token `i`: capitalised words (the first may be lower-case
    /// when `lower_first`, then it is taken alone). Returns the end token.
    fn read_name(&self, c: &Cur, i: usize, lower_first: bool) -> Option<usize> {
        let t = c.toks.get(i)?;
        if c.taken[i] || !self.name_like(t) || !(t.cap || lower_first) {
            return None;
        }
        // A lower-case name closes its clause: "her name is amina, ...",
        // "my name is jo and ..."; not "my name is hard to spell".
        if !t.cap {
            let closes = t.brk >= Brk::Comma
                || c.toks.get(i + 1).is_none_or(|n| {
                    matches!(
                        n.norm.as_str(),
                        "and" | "but" | "from" | "i" | "i'm" | "calling" | "speaking" | "here"
                    )
                });
            if !closes {
                return None;
            }
        }
        let mut j = i + 1;
        if t.cap {
            while j < c.toks.len()
                && j - i < self.rules.person_max_words
                && c.toks[j - 1].brk == Brk::None
                && c.toks[j].cap
                && !c.taken[j]
                && self.name_like(&c.toks[j])
            {
                j += 1;
            }
        }
        Some(j)
    }

    /// The name's canonical form; registers new names. A single word that
    /// is (or is one letter off) a word of a known name is that person.
    fn person_norm(&mut self, words_: &[String], fuzzy: bool) -> String {
        let key: Vec<String> = words_.iter().map(|w| w.to_lowercase()).collect();
        if key.len() == 1 {
            if let Some(&k) = self.name_parts.get(&key[0]) {
                return self.names[k].clone();
            }
            if fuzzy && key[0].chars().count() >= 4 {
                let hit = self
                    .name_parts
                    .iter()
                    .filter(|(p, _)| p.chars().count() >= 4 && one_edit(p, &key[0]))
                    .map(|(_, &k)| k)
                    .min();
                if let Some(k) = hit {
                    return self.names[k].clone();
                }
            }
        } else if let Some(k) = self
            .names
            .iter()
            .position(|n| n.to_lowercase() == key.join(" "))
        {
            return self.names[k].clone();
        }
        let full = words_
            .iter()
            .map(|w| capitalise(w))
            .collect::<Vec<_>>()
            .join(" ");
        let k = self.names.len();
        self.names.push(full.clone());
        for p in key {
            if p.chars().count() >= 3 {
                self.name_parts.entry(p).or_insert(k);
            }
        }
        full
    }

    #[allow(clippy::too_many_arguments)]
    fn person(
        &mut self,
        c: &mut Cur,
        i: usize,
        j: usize,
        name_from: usize,
        source: &str,
        strength: f64,
        fuzzy: bool,
    ) {
        let ws: Vec<String> = c.toks[name_from..j]
            .iter()
            .map(|t| t.raw.trim_end_matches('.').to_string())
            .collect();
        let norm = self.person_norm(&ws, fuzzy);
        c.emit(i, j, label::PERSON, Some(norm), source, strength);
    }

    fn persons(&mut self, c: &mut Cur) {
        let rules = Arc::clone(&self.rules);
        let r = &*rules;
        let mut i = 0;
        while i < c.toks.len() {
            if c.taken[i] {
                i += 1;
                continue;
            }
            let ends_ok = |c: &Cur, n: usize| c.toks[i + n - 1].brk <= Brk::Comma;
            // "my name is Grace", "her name's amina"
            if let Some((n, _)) = r
                .name_phrases
                .match_at(&c.toks, i)
                .filter(|&(n, _)| ends_ok(c, n))
            {
                let mut j = i + n;
                while j < c.toks.len()
                    && matches!(c.toks[j].norm.as_str(), "um" | "uh" | "er" | "erm")
                    && c.toks[j].brk <= Brk::Comma
                {
                    j += 1;
                }
                if let Some(end) = self.read_name(c, j, true) {
                    self.person(c, j, end, j, "name_phrase", 0.9, false);
                    i = end;
                    continue;
                }
            }
            // "This is David speaking"
            if let Some((n, _)) = r
                .announcements
                .match_at(&c.toks, i)
                .filter(|&(n, _)| ends_ok(c, n))
            {
                let j = i + n;
                if let Some(end) = self.read_name(c, j, false) {
                    let closes = end == c.toks.len()
                        || c.toks[end - 1].brk >= Brk::Stop
                        || r.announcement_followers.contains(&c.toks[end].norm);
                    if closes && !self.unambiguous_gazetteer_word(&c.toks[j].norm) {
                        self.person(c, j, end, j, "announcement", 0.85, false);
                        i = end;
                        continue;
                    }
                }
            }
            // "I'm Grace", "call me Jo"; "Thank you, Amina", "Hi David"
            for (set, source, strength) in [
                (&r.introductions, "introduction", 0.75),
                (&r.vocatives, "vocative", 0.7),
            ] {
                if let Some((n, _)) = set.match_at(&c.toks, i).filter(|&(n, _)| ends_ok(c, n)) {
                    let j = i + n;
                    if let Some(end) = self.read_name(c, j, false) {
                        if !self.unambiguous_gazetteer_word(&c.toks[j].norm) {
                            self.person(c, j, end, j, source, strength, true);
                            i = end;
                            break;
                        }
                    }
                }
            }
            if i >= c.toks.len() || c.taken[i] {
                continue;
            }
            let t = &c.toks[i];
            // "Mrs Wanjiru", "Dr. Otieno"
            if r.titles.contains(&t.norm)
                && t.cap
                && (t.brk == Brk::None || (t.brk == Brk::Stop && t.norm.len() <= 4))
            {
                if let Some(end) = self.read_name(c, i + 1, false) {
                    self.person(c, i, end, i + 1, "title", 0.8, false);
                    i = end;
                    continue;
                }
            }
            // A known name again (capitalised): "Amina", "Amina Yousas".
            let t = &c.toks[i];
            if t.cap && !r.common.contains(&t.norm) {
                let known = self.name_parts.contains_key(&t.norm)
                    || (!t.sent_start
                        && t.norm.chars().count() >= 4
                        && self
                            .name_parts
                            .keys()
                            .any(|p| p.chars().count() >= 4 && one_edit(p, &t.norm)));
                if known && self.name_like(t) {
                    let mut end = i + 1;
                    while end < c.toks.len()
                        && c.toks[end - 1].brk == Brk::None
                        && c.toks[end].cap
                        && !c.taken[end]
                        && self.name_parts.contains_key(&c.toks[end].norm)
                    {
                        end += 1;
                    }
                    let ws: Vec<String> = c.toks[i..end].iter().map(|t| t.raw.clone()).collect();
                    let norm = if end - i > 1 {
                        self.person_norm(&ws, false)
                    } else {
                        self.person_norm(&ws, true)
                    };
                    c.emit(i, end, label::PERSON, Some(norm), "known_name", 0.8);
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
    }

    /// Is token `i` right after a place word ("from", "in the", ...)?
    fn place_context(&self, toks: &[Tok], i: usize) -> bool {
        let ctx =
            |k: usize| toks[k].brk == Brk::None && self.rules.place_context.contains(&toks[k].norm);
        (i >= 1 && ctx(i - 1))
            || (i >= 2 && toks[i - 1].norm == "the" && toks[i - 1].brk == Brk::None && ctx(i - 2))
    }

    fn gazetteer(&self, c: &mut Cur) {
        let r = &*self.rules;
        let mut i = 0;
        'tok: while i < c.toks.len() {
            if c.taken[i] {
                i += 1;
                continue;
            }
            let t = &c.toks[i];
            let context = self.place_context(&c.toks, i);
            if let Some(spellings) = r.gaz.get(&t.norm) {
                for s in spellings {
                    let n = s.words.len();
                    if i + n > c.toks.len() || !c.free(i, i + n) {
                        continue;
                    }
                    let same = (0..n).all(|k| {
                        c.toks[i + k].norm == s.words[k]
                            && (k + 1 == n || c.toks[i + k].brk == Brk::None)
                    });
                    if !same {
                        continue;
                    }
                    let e = &r.entries[s.entry];
                    let ok = if s.ambiguous {
                        t.cap && !t.sent_start && (context || e.label != label::LOCATION)
                    } else {
                        t.cap || context
                    };
                    if !ok {
                        continue;
                    }
                    let strength = if s.ambiguous { 0.6 } else { 0.9 };
                    let canonical = e.canonical.clone();
                    if e.label == label::LOCATION {
                        c.places.push((i, i + n, canonical.clone()));
                    }
                    let lab = e.label.clone();
                    c.emit(i, i + n, &lab, Some(canonical), "gazetteer", strength);
                    i += n;
                    continue 'tok;
                }
            }
            // Approximate: a capitalised word or two in a place context.
            if context
                && t.cap
                && !r.fuzzy.is_empty()
                && self.name_like(t)
                && !self.name_parts.contains_key(&t.norm)
            {
                let one: Vec<char> = t.norm.chars().filter(|c| c.is_alphabetic()).collect();
                let mut cands = vec![(one.clone(), 1usize, 0.85f64, 1.0f64)];
                if let Some(u) = c.toks.get(i + 1) {
                    if t.brk == Brk::None && u.cap && !c.taken[i + 1] && self.name_like(u) {
                        let mut two = one.clone();
                        two.extend(u.norm.chars().filter(|c| c.is_alphabetic()));
                        cands.push((two, 2, 0.7, 2.5));
                    }
                }
                let mut best: Option<(f64, usize, usize)> = None;
                for (letters, n, min_sim, max_d) in &cands {
                    if letters.len() < 4 {
                        continue;
                    }
                    for (g, entry) in &r.fuzzy {
                        if g[0] != letters[0] || g.len().abs_diff(letters.len()) > 3 {
                            continue;
                        }
                        let d = name_distance(letters, g);
                        let sim = 1.0 - d / g.len().max(letters.len()) as f64;
                        if d > 0.0
                            && d <= *max_d
                            && sim >= *min_sim
                            && best.is_none_or(|(s, _, _)| sim > s)
                        {
                            best = Some((sim, *n, *entry));
                        }
                    }
                }
                if let Some((sim, n, entry)) = best {
                    let e = &r.entries[entry];
                    let canonical = e.canonical.clone();
                    let lab = e.label.clone();
                    if lab == label::LOCATION {
                        c.places.push((i, i + n, canonical.clone()));
                    }
                    c.emit(
                        i,
                        i + n,
                        &lab,
                        Some(canonical),
                        "gazetteer_fuzzy",
                        0.7 * sim,
                    );
                    i += n;
                    continue;
                }
            }
            i += 1;
        }
    }

    /// May token `k` be part of an organisation's name? Free, or a place.
    fn org_word(&self, c: &Cur, k: usize) -> bool {
        !c.taken[k] || c.places.iter().any(|&(a, b, _)| a <= k && k < b)
    }

    /// The organisation's words `i..j` as a name, places respelled.
    fn org_name(&self, c: &Cur, i: usize, j: usize) -> String {
        let mut out: Vec<String> = vec![];
        let mut k = i;
        while k < j {
            if let Some((_, b, name)) = c.places.iter().find(|(a, _, _)| *a == k) {
                out.push(name.clone());
                k = *b;
            } else {
                out.push(c.toks[k].raw.clone());
                k += 1;
            }
        }
        out.join(" ")
    }

    fn organizations(&self, c: &mut Cur) {
        let r = &*self.rules;
        let connector = |w: &str| matches!(w, "of" | "and" | "for" | "&");
        // "thank you for calling Acme Energy", "welcome to Kenya Power"
        let mut i = 0;
        while i < c.toks.len() {
            let Some((n, _)) = r.org_triggers.match_at(&c.toks, i) else {
                i += 1;
                continue;
            };
            let mut j = i + n;
            if c.toks[j - 1].brk != Brk::None {
                i = j;
                continue;
            }
            if c.toks
                .get(j)
                .is_some_and(|t| t.norm == "the" && t.brk == Brk::None)
            {
                j += 1;
            }
            let start = j;
            let mut end = j;
            while end < c.toks.len() && end - start < r.org_max_words && self.org_word(c, end) {
                let t = &c.toks[end];
                let ok = if t.cap {
                    end > start || !r.common.contains(&t.norm)
                } else {
                    connector(&t.norm) && end > start && c.toks.get(end + 1).is_some_and(|u| u.cap)
                };
                if !ok || (end > start && c.toks[end - 1].brk != Brk::None) {
                    break;
                }
                end += 1;
            }
            let all_place = (start..end).all(|k| c.taken[k]);
            if end > start
                && !all_place
                && !(end - start == 1 && self.name_parts.contains_key(&c.toks[start].norm))
            {
                let name = self.org_name(c, start, end);
                let norm = self.lookup_org(&name).unwrap_or(name);
                self.emit_org(c, start, end, norm, "org_trigger", 0.8);
                i = end;
                continue;
            }
            i = j;
        }
        // "Equity Bank", "Mombasa Children's Office"
        for k in 1..c.toks.len() {
            let t = &c.toks[k];
            if !t.cap || c.taken[k] || !r.org_suffixes.contains(&t.norm) {
                continue;
            }
            let mut s = k;
            while s > 0
                && c.toks[s - 1].brk == Brk::None
                && c.toks[s - 1].cap
                && self.org_word(c, s - 1)
                && k - s + 1 < r.org_max_words
            {
                s -= 1;
            }
            while s < k && r.common.contains(&c.toks[s].norm) && !c.taken[s] {
                s += 1;
            }
            if s == k {
                continue;
            }
            let name = self.org_name(c, s, k + 1);
            let norm = self.lookup_org(&name).unwrap_or(name);
            self.emit_org(c, s, k + 1, norm, "org_suffix", 0.7);
        }
    }

    fn lookup_org(&self, name: &str) -> Option<String> {
        let w = words(name);
        let first = w.first()?;
        self.rules
            .gaz
            .get(first)?
            .iter()
            .find(|s| s.words == w)
            .map(|s| self.rules.entries[s.entry].canonical.clone())
    }

    fn emit_org(&self, c: &mut Cur, i: usize, j: usize, norm: String, source: &str, strength: f64) {
        let e = c.make(i, j, label::ORGANIZATION, Some(norm), source, strength);
        // The place inside stays reported.
        c.take(i, j);
        c.out.push(e);
    }
}

impl EntityExtractor for RuleEntities {
    fn name(&self) -> &str {
        "rules"
    }

    fn extract(&mut self, seg: &Segment) -> Vec<Entity> {
        let toks = tokenize(&seg.text, &seg.words);
        let asr = if seg.confidence.is_finite() {
            seg.confidence.clamp(0.0, 1.0)
        } else {
            1.0
        };
        let mut c = Cur {
            seg,
            taken: vec![false; toks.len()],
            toks,
            asr: 0.5 + 0.5 * asr,
            out: vec![],
            places: vec![],
        };
        self.settle_held(&mut c);
        self.settle_pending(&mut c);
        self.emails(&mut c);
        self.numeric_dates(&mut c);
        self.triggered_numbers(&mut c);
        self.amounts(&mut c);
        self.ages(&mut c);
        self.dates(&mut c);
        self.answers(&mut c);
        self.bare_phones(&mut c);
        self.persons(&mut c);
        self.gazetteer(&mut c);
        self.organizations(&mut c);
        let mut out = c.out;
        out.sort_by_key(|e| (e.segment_id, e.start, e.end));
        out
    }

    fn finish(&mut self) -> Vec<Entity> {
        self.asked = None;
        self.pending = None;
        self.held
            .take()
            .and_then(|h| self.release(h))
            .into_iter()
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The call's entities

/// A call's distinct entities (by label and normalized value), in the
/// order first heard, with how often each was mentioned. Cost per add:
/// a hash lookup per entity.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EntityTracker {
    entities: Vec<Entity>,
    mentions: Vec<u32>,
    /// "LABEL\u{1f}key" → index
    index: HashMap<String, usize>,
}

impl EntityTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add what a segment yielded; returns the entities not seen before.
    pub fn add(&mut self, found: Vec<Entity>) -> Vec<Entity> {
        let mut new = vec![];
        for e in found {
            let key = format!("{}\u{1f}{}", e.label, e.key());
            match self.index.get(&key) {
                Some(&k) => self.mentions[k] += 1,
                None => {
                    self.index.insert(key, self.entities.len());
                    self.entities.push(e.clone());
                    self.mentions.push(1);
                    new.push(e);
                }
            }
        }
        new
    }

    /// Distinct entities, first mention of each, in call order.
    pub fn all(&self) -> &[Entity] {
        &self.entities
    }

    /// Each distinct entity with its number of mentions.
    pub fn with_mentions(&self) -> impl Iterator<Item = (&Entity, u32)> {
        self.entities.iter().zip(self.mentions.iter().copied())
    }

    /// Label → distinct values (normalized, else text), first heard first.
    pub fn by_label(&self) -> BTreeMap<String, Vec<String>> {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &self.entities {
            m.entry(e.label.clone())
                .or_default()
                .push(e.normalized.clone().unwrap_or_else(|| e.text.clone()));
        }
        m
    }

    /// Label → number of distinct entities.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for e in &self.entities {
            *m.entry(e.label.clone()).or_insert(0) += 1;
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shipped() -> RuleEntities {
        RuleEntities::from_strs(
            include_str!("../../config/entities.toml"),
            &[
                (
                    "common_words.txt",
                    include_str!("../../config/gazetteer/common_words.txt"),
                ),
                (
                    "locations.txt",
                    include_str!("../../config/gazetteer/locations.txt"),
                ),
                (
                    "organizations.txt",
                    include_str!("../../config/gazetteer/organizations.txt"),
                ),
            ],
        )
        .expect("shipped configuration loads")
    }

    fn seg(id: u64, speaker: &str, t: f64, text: &str) -> Segment {
        let dur = 0.3 * text.split_whitespace().count().max(1) as f64;
        Segment {
            segment_id: id,
            utterance_id: id,
            participant_id: Some(speaker.to_lowercase()),
            speaker: speaker.into(),
            stream_label: speaker.into(),
            text: text.into(),
            start_time: t,
            end_time: t + dur,
            duration: dur,
            confidence: 0.9,
            words: vec![],
            language: Some("en".into()),
            is_final: true,
            lagging: false,
        }
    }

    /// (label, normalized) of everything found in one segment, held
    /// numbers included.
    fn found(x: &mut RuleEntities, text: &str) -> Vec<(String, String)> {
        let mut v = x.extract(&seg(0, "A", 0.0, text));
        v.extend(x.finish());
        v.into_iter()
            .map(|e| (e.label, e.normalized.unwrap_or(e.text)))
            .collect()
    }

    fn one(text: &str) -> Vec<(String, String)> {
        found(&mut shipped(), text)
    }

    fn of(text: &str, lab: &str) -> Vec<String> {
        one(text)
            .into_iter()
            .filter(|(l, _)| l == lab)
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn spoken_numbers() {
        let t = |s: &str| tokenize(s, &[]);
        assert_eq!(
            read_cardinal(&t("two hundred and fifty"), 0),
            Some((250.0, 4))
        );
        assert_eq!(read_cardinal(&t("a thousand"), 0), Some((1000.0, 2)));
        assert_eq!(read_cardinal(&t("eighty-five"), 0), Some((85.0, 2)));
        assert_eq!(read_cardinal(&t("seven seven"), 0), Some((7.0, 1)));
        assert_eq!(read_cardinal(&t("1.5 million"), 0), Some((1.5e6, 2)));
        assert_eq!(read_cardinal(&t("1,500"), 0), Some((1500.0, 1)));
        assert_eq!(read_cardinal(&t("hello"), 0), None);
        let none = [false; 16];
        assert_eq!(
            read_digits(&t("oh seven double two, 3 4 5."), 0, &none),
            Some(("0722345".to_string(), 7))
        );
        assert_eq!(read_digits(&t("oh I see"), 0, &none), None);
        assert_eq!(read_day(&t("twenty-first"), 0), Some((21, 2)));
        assert_eq!(read_day(&t("3rd"), 0), Some((3, 1)));
    }

    #[test]
    fn persons() {
        assert_eq!(of("My name is Grace.", "PERSON"), ["Grace"]);
        assert_eq!(of("her name is amina", "PERSON"), ["Amina"]);
        assert_eq!(of("my name is jo and I need help", "PERSON"), ["Jo"]);
        assert_eq!(
            of("Good morning, this is David speaking.", "PERSON"),
            ["David"]
        );
        assert_eq!(of("Hi David.", "PERSON"), ["David"]);
        assert_eq!(of("Hello, is this Jane?", "PERSON"), ["Jane"]);
        assert_eq!(of("Thank you, Amina.", "PERSON"), ["Amina"]);
        assert_eq!(of("I'm Peter and I need help", "PERSON"), ["Peter"]);
        assert_eq!(of("Please call me Jo", "PERSON"), ["Jo"]);
        assert_eq!(
            of("I spoke to Mrs Wanjiru yesterday", "PERSON"),
            ["Wanjiru"]
        );
        for no in [
            "I am fine.",
            "I am Fine.",
            "this is great",
            "This is Monday.",
            "Thank you. Sorry about that.",
            "Hello Sir, how are you?",
            "Reading the letter was hard.",
            "I am calling about my bill.",
            "Thank you for calling.",
            "I'm Kenyan.",
            "my name is hard to spell",
        ] {
            assert!(of(no, "PERSON").is_empty(), "{no}: {:?}", one(no));
        }
    }

    #[test]
    fn a_known_name_is_that_person_again() {
        let mut x = shipped();
        let a = x.extract(&seg(0, "B", 0.0, "My name is Amina Yusuf."));
        assert_eq!(a[0].normalized.as_deref(), Some("Amina Yusuf"));
        // Capitalised, later, even sentence-initial, or cut by one letter.
        for (k, text) in [
            "Amina, are you safe?",
            "Thank you, Amin",
            "I will tell Yusuf.",
        ]
        .iter()
        .enumerate()
        {
            let v = x.extract(&seg(k as u64 + 1, "A", 5.0, text));
            assert_eq!(v.len(), 1, "{text}: {v:?}");
            assert_eq!(v[0].normalized.as_deref(), Some("Amina Yusuf"), "{text}");
        }
        // Lower case is a word, not the name.
        assert!(x.extract(&seg(9, "A", 9.0, "she said amina")).is_empty());
        // A fresh copy forgets the call.
        assert!(x
            .fresh()
            .extract(&seg(0, "A", 0.0, "and Amina said"))
            .is_empty());
    }

    #[test]
    fn places() {
        assert_eq!(of("I live in nairobi", "LOCATION"), ["Nairobi"]);
        assert_eq!(of("Kenya is far.", "LOCATION"), ["Kenya"]);
        assert_eq!(
            of("She moved to Dar es Salaam", "LOCATION"),
            ["Dar es Salaam"]
        );
        assert_eq!(of("I am calling from Mambasa.", "LOCATION"), ["Mombasa"]);
        assert_eq!(of("I am calling from Mount Basa.", "LOCATION"), ["Mombasa"]);
        assert_eq!(
            of("We moved to Reading last year.", "LOCATION"),
            ["Reading"]
        );
        assert_eq!(of("a flight to Greece", "LOCATION"), ["Greece"]);
        assert_eq!(of("a nice day in Bath", "LOCATION"), ["Bath"]);
        assert_eq!(
            of("She went to Mumbai, then to Mabel.", "LOCATION"),
            ["Mumbai"]
        );
        for no in [
            "Reading the letter was hard.",
            "I was reading in bed.",
            "Bath time is at six.",
            "I want to talk to Grace.",
            "in danger right now",
            "go to school",
            "I am going to Georgina's house",
        ] {
            let v = of(no, "LOCATION");
            assert!(v.is_empty(), "{no}: {v:?}");
        }
    }

    #[test]
    fn organisations() {
        assert_eq!(
            of("Welcome to Kenya Power.", "ORGANIZATION"),
            ["Kenya Power"]
        );
        assert_eq!(
            of(
                "Thank you for calling Acme Energy, this is David.",
                "ORGANIZATION"
            ),
            ["Acme Energy"]
        );
        assert_eq!(
            of("I bank with Equity Bank", "ORGANIZATION"),
            ["Equity Bank"]
        );
        assert_eq!(of("I paid with M-Pesa", "ORGANIZATION"), ["M-Pesa"]);
        assert!(of("Thank you for calling. Take care.", "ORGANIZATION").is_empty());
        assert!(of("I went to the bank", "ORGANIZATION").is_empty());
        assert!(of("Who is calling?", "ORGANIZATION").is_empty());
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(of("call me on 0712 345 678", "PHONE"), ["0712345678"]);
        assert_eq!(of("My number is 0712-345-678.", "PHONE"), ["0712345678"]);
        assert_eq!(
            of("oh seven one two three four five six seven eight", "PHONE"),
            ["0712345678"]
        );
        assert_eq!(
            of("reach me on +254 712 345 678 please", "PHONE"),
            ["+254712345678"]
        );
        for no in [
            "Oh, I see.",
            "I have 3 kids and 2 dogs",
            "one two three",
            "in 2024 and 2025",
        ] {
            assert!(of(no, "PHONE").is_empty(), "{no}: {:?}", one(no));
        }
    }

    #[test]
    fn a_number_continues_in_the_speakers_next_segment() {
        let mut x = shipped();
        // Held back: the number ends the segment.
        assert!(x
            .extract(&seg(0, "B", 10.0, "You can call me back on 0 7 1 2 3 4 5."))
            .is_empty());
        // The recogniser's noise in between is skipped.
        let mut noise = seg(1, "B", 14.2, "x");
        noise.confidence = 0.28;
        assert!(x.extract(&noise).is_empty());
        assert!(x.extract(&seg(2, "B", 14.8, "6, 7, 8")).is_empty());
        let v = x.extract(&seg(3, "A", 17.0, "Thank you."));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].normalized.as_deref(), Some("0712345678"));
        assert_eq!(v[0].segment_id, 0);
        assert_eq!(v[0].text, "0 7 1 2 3 4 5 6, 7, 8");
        // Another speaker's digits, or a long pause, do not continue it.
        let mut x = shipped();
        assert!(x
            .extract(&seg(0, "B", 0.0, "call me on 0712 345"))
            .is_empty());
        let v = x.extract(&seg(1, "A", 2.0, "678 is your case"));
        assert_eq!(v[0].normalized.as_deref(), Some("0712345"));
        let mut x = shipped();
        assert!(x
            .extract(&seg(0, "B", 0.0, "call me on 0712 345"))
            .is_empty());
        let v = x.extract(&seg(1, "B", 20.0, "678 or later"));
        assert_eq!(v[0].normalized.as_deref(), Some("0712345"));
        // The end of the call releases it.
        let mut x = shipped();
        assert!(x
            .extract(&seg(0, "B", 0.0, "call me on 0712 345 678"))
            .is_empty());
        assert_eq!(x.finish().len(), 1);
    }

    #[test]
    fn case_and_account_numbers() {
        assert_eq!(
            of("I have opened case number 45721 for you.", "CASE_NUMBER"),
            ["45721"]
        );
        assert_eq!(
            of(
                "Your reference number is four five seven two one, okay?",
                "CASE_NUMBER"
            ),
            ["45721"]
        );
        assert_eq!(
            of("the ticket number is KE2031 now", "CASE_NUMBER"),
            ["KE2031"]
        );
        assert_eq!(of("the reference is RF 88123.", "CASE_NUMBER"), ["RF88123"]);
        assert_eq!(of("case number CS-4572", "CASE_NUMBER"), ["CS4572"]);
        assert_eq!(
            of("My account number is 7 7 3 4 1 9", "ACCOUNT_NUMBER"),
            ["773419"]
        );
        assert!(of("the case is closed", "CASE_NUMBER").is_empty());
    }

    #[test]
    fn a_trigger_at_a_pause_takes_the_digits_after_it() {
        // Cut by the recogniser's full stop, or by the end of the segment.
        assert_eq!(
            of(
                "I have opened case number. 4, 5, 7, 2, 1 for you.",
                "CASE_NUMBER"
            ),
            ["45721"]
        );
        for first in [
            "Thank you for holding. I have opened case number.",
            "Thank you for holding. I have opened case number",
        ] {
            let mut x = shipped();
            assert!(x.extract(&seg(0, "A", 48.6, first)).is_empty());
            let mut v = x.extract(&seg(1, "A", 52.0, "4, 5, 7, 2, 1 for you."));
            v.extend(x.finish());
            assert_eq!(v.len(), 1, "{first}: {v:?}");
            assert_eq!(v[0].label, "CASE_NUMBER");
            assert_eq!(v[0].normalized.as_deref(), Some("45721"));
            assert_eq!(v[0].segment_id, 1);
            // The other party's digits next are not taken as an answer.
            let v = x.extract(&seg(2, "B", 54.5, "Thank you. 3 4 5 6"));
            assert!(v.iter().all(|e| e.label != "CASE_NUMBER"), "{v:?}");
        }
        // Not after a question, another speaker's turn, or a long pause;
        // nor digits later in the next segment.
        let cases: [(&str, &str, f64, &str); 4] = [
            ("What is your case number?", "A", 3.0, "12345 is mine"),
            ("I have opened case number", "B", 3.0, "3 people called"),
            ("I have opened case number", "A", 20.0, "12345 is mine"),
            ("I have opened case number", "A", 3.0, "wait, 12345"),
        ];
        for (first, who, t, next) in cases {
            let mut x = shipped();
            x.extract(&seg(0, "A", 0.0, first));
            let mut v = x.extract(&seg(1, who, t, next));
            v.extend(x.finish());
            assert!(
                v.iter()
                    .all(|e| e.label != "CASE_NUMBER" || e.source == "answer"),
                "{first} / {next}: {v:?}"
            );
            if who == "A" {
                assert!(v.iter().all(|e| e.label != "CASE_NUMBER"), "{v:?}");
            }
        }
        // A sentence after the stop that does not start with digits.
        assert!(of(
            "I have opened a case number. Call 12345 today",
            "CASE_NUMBER"
        )
        .is_empty());
    }

    #[test]
    fn an_answer_to_a_question_for_a_number() {
        let mut x = shipped();
        assert!(x
            .extract(&seg(
                0,
                "Agent",
                0.0,
                "Can I have your account number please?"
            ))
            .is_empty());
        // The asker's own digits are not the answer.
        let v = x.extract(&seg(1, "Agent", 3.0, "It has 6 digits."));
        assert!(v.iter().all(|e| e.label != "ACCOUNT_NUMBER"));
        let mut v = x.extract(&seg(
            2,
            "Caller",
            5.0,
            "Yes it is seven seven three four one nine",
        ));
        v.extend(x.finish());
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].label, "ACCOUNT_NUMBER");
        assert_eq!(v[0].normalized.as_deref(), Some("773419"));
        assert_eq!(v[0].source, "answer");
        // Answered with the phrase: the question is settled.
        let mut x = shipped();
        x.extract(&seg(0, "Agent", 0.0, "Can I have your account number?"));
        let v = x.extract(&seg(1, "Caller", 2.0, "My account number is 773419, yes."));
        assert_eq!(v.len(), 1);
        let mut v = x.extract(&seg(2, "Caller", 4.0, "And my other one is 5 5 5"));
        v.extend(x.finish());
        assert!(v.is_empty(), "{v:?}");
        // Too late, or after two unrelated answers: bare digits only.
        let mut x = shipped();
        x.extract(&seg(0, "Agent", 0.0, "What is your case number?"));
        let mut v = x.extract(&seg(1, "Caller", 60.0, "it is 4 5 7"));
        v.extend(x.finish());
        assert!(v.is_empty(), "{v:?}");
        let mut x = shipped();
        x.extract(&seg(0, "Agent", 0.0, "What is your case number?"));
        x.extract(&seg(1, "Caller", 2.0, "Let me look."));
        x.extract(&seg(2, "Caller", 4.0, "Hmm, one moment."));
        let mut v = x.extract(&seg(3, "Caller", 6.0, "it is 4 5 7"));
        v.extend(x.finish());
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn ages() {
        assert_eq!(of("My daughter is 12 years old.", "AGE"), ["12"]);
        assert_eq!(of("she is twelve years old", "AGE"), ["12"]);
        assert_eq!(of("a 12-year-old boy", "AGE"), ["12"]);
        assert_eq!(of("a boy aged 9", "AGE"), ["9"]);
        assert_eq!(of("at the age of fifteen he left", "AGE"), ["15"]);
        assert!(of("12 years ago", "AGE").is_empty());
        assert!(of("the age is unknown", "AGE").is_empty());
    }

    #[test]
    fn dates() {
        assert_eq!(of("a payment on the 3rd of March.", "DATE"), ["03-03"]);
        assert_eq!(of("on the third of march", "DATE"), ["03-03"]);
        assert_eq!(
            of("on the twenty first of June 2024", "DATE"),
            ["2024-06-21"]
        );
        assert_eq!(of("since March 3, 2025", "DATE"), ["2025-03-03"]);
        assert_eq!(of("by March the fifth", "DATE"), ["03-05"]);
        assert_eq!(of("on 3/4/2025", "DATE"), ["2025-04-03"]);
        assert_eq!(of("on 2025-04-03", "DATE"), ["2025-04-03"]);
        assert_eq!(of("see you on Monday", "DATE"), ["Monday"]);
        assert_eq!(of("I will do it tomorrow", "DATE"), ["tomorrow"]);
        for no in [
            "May I help you?",
            "the 31st of February",
            "March on, soldiers",
            "one second please",
        ] {
            assert!(of(no, "DATE").is_empty(), "{no}: {:?}", one(no));
        }
    }

    #[test]
    fn amounts() {
        for (text, want) in [
            ("a payment of $85 today", "85 USD"),
            ("it was 85 dollars", "85 USD"),
            ("eighty five dollars", "85 USD"),
            ("I sent KSh 500", "500 KES"),
            ("I sent Ksh. 500", "500 KES"),
            ("500 shillings", "500 KES"),
            ("£20 a week", "20 GBP"),
            ("twenty pounds", "20 GBP"),
            ("€15", "15 EUR"),
            ("fifteen euros", "15 EUR"),
            ("ten dollars and fifty cents", "10.50 USD"),
            ("$1,500", "1500 USD"),
            ("$85.50", "85.50 USD"),
            ("50 cents", "0.50 USD"),
            ("two thousand shillings", "2000 KES"),
        ] {
            assert_eq!(of(text, "AMOUNT"), [want], "{text}");
        }
        assert!(of("I have 85 problems", "AMOUNT").is_empty());
    }

    #[test]
    fn emails() {
        assert_eq!(of("write to Jo@Example.com.", "EMAIL"), ["jo@example.com"]);
        assert_eq!(
            of("it is jo dot smith at example dot co dot uk", "EMAIL"),
            ["jo.smith@example.co.uk"]
        );
        assert_eq!(of("grace at helpline.org", "EMAIL"), ["grace@helpline.org"]);
        assert!(of("I am at home", "EMAIL").is_empty());
        assert!(of("look at the dot com era", "EMAIL").is_empty());
    }

    #[test]
    fn entity_fields() {
        fn send_clone<T: Send + Clone>(_: &T) {}
        send_clone(&shipped());
        // The slot takes any extractor.
        let mut x: Box<dyn EntityExtractor> = Box::new(shipped());
        assert_eq!(x.name(), "rules");
        let mut s = seg(7, "Caller", 10.0, "Hello. My name is Amina.");
        s.words = "Hello. My name is Amina."
            .split(' ')
            .enumerate()
            .map(|(k, w)| crate::asr::Word {
                word: format!(" {w}"),
                start: 10.0 + k as f64 * 0.5,
                end: 10.4 + k as f64 * 0.5,
                probability: 0.9,
            })
            .collect();
        let v = x.extract(&s);
        assert_eq!(v.len(), 1);
        let e = &v[0];
        assert_eq!((e.label.as_str(), e.text.as_str()), ("PERSON", "Amina"));
        assert_eq!(&s.text[e.start..e.end], "Amina");
        assert_eq!(e.time, 12.0);
        assert_eq!(e.segment_id, 7);
        assert_eq!(e.participant_id.as_deref(), Some("caller"));
        assert!((e.confidence - 0.9 * 0.95).abs() < 1e-9);
        let json = serde_json::to_string(e).unwrap();
        assert_eq!(serde_json::from_str::<Entity>(&json).unwrap(), *e);
    }

    #[test]
    fn the_tracker_keeps_distinct_entities() {
        let mut x = shipped();
        let mut t = EntityTracker::default();
        let new = t.add(x.extract(&seg(0, "B", 0.0, "My name is Amina, I live in Nairobi.")));
        assert_eq!(new.len(), 2);
        let new = t.add(x.extract(&seg(
            1,
            "A",
            3.0,
            "Thank you, Amina. Nairobi is far, and Kisumu?",
        )));
        assert_eq!(new.len(), 1);
        assert_eq!(new[0].normalized.as_deref(), Some("Kisumu"));
        assert_eq!(t.all().len(), 3);
        assert_eq!(t.by_label()["LOCATION"], ["Nairobi", "Kisumu"]);
        assert_eq!(t.counts()["PERSON"], 1);
        let mentions: Vec<u32> = t.with_mentions().map(|(_, n)| n).collect();
        assert_eq!(mentions, [2, 2, 1]);
    }

    #[test]
    fn configuration_errors_name_the_file_and_entry() {
        let err = |cfg: &str, files: &[(&str, &str)]| {
            RuleEntities::from_strs(cfg, files)
                .err()
                .unwrap_or_else(|| panic!("no error for {cfg:?}"))
                .to_string()
        };
        let e = err("[person]\nname_phrase = [\"x\"]\n", &[]);
        assert!(
            e.contains("entities.toml") && e.contains("name_phrase"),
            "{e}"
        );
        let e = err("[[gazetteer]]\nlabel = \"PLACE\"\nfiles = []\n", &[]);
        assert!(e.contains("PLACE"), "{e}");
        let e = err(
            "[[gazetteer]]\nlabel = \"LOCATION\"\nfiles = [\"x.txt\"]\n",
            &[],
        );
        assert!(e.contains("x.txt"), "{e}");
        let e = err(
            "[[gazetteer]]\nlabel = \"LOCATION\"\nfiles = [\"x.txt\"]\n",
            &[("x.txt", "Nairobi\n| Nai\n")],
        );
        assert!(e.contains("x.txt:2"), "{e}");
        let e = err("[dates]\nnumeric_order = \"ymd\"\n", &[]);
        assert!(e.contains("numeric_order"), "{e}");
        let dir = std::env::temp_dir().join("earshot-entities-missing");
        let e = RuleEntities::load(&dir).expect_err("missing").to_string();
        assert!(e.contains("entities.toml"), "{e}");
        // The shipped lists are a few hundred entries.
        assert!(shipped().gazetteer_len() > 400);
    }

    const VOCAB: &[&str] = &[
        "my",
        "name",
        "is",
        "Grace",
        "call",
        "me",
        "on",
        "0712",
        "seven",
        "oh",
        "double",
        "$",
        "$85",
        "dollars",
        "the",
        "3rd",
        "of",
        "March",
        "from",
        "Mambasa",
        "Mount",
        "Basa",
        "at",
        "dot",
        "com",
        "case",
        "number",
        "years",
        "old",
        "aged",
        "thank",
        "you,",
        "Amina.",
        "?",
        "-",
        "twenty",
        "hundred",
        "and",
        "cents",
        "£",
        "é",
        "Ünïcode",
        "日本",
        "3/3/2025",
        "x@y.co",
        "account",
        "Can",
        "I",
        "have",
        "your",
        "Bank",
        "for",
        "calling",
        "Acme",
        "Energy,",
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn never_panics_and_offsets_are_char_boundaries(
            texts in proptest::collection::vec(
                prop_oneof![
                    "\\PC{0,60}",
                    proptest::collection::vec(proptest::sample::select(VOCAB), 0..25)
                        .prop_map(|w| w.join(" ")),
                ],
                1..5,
            ),
            speakers in proptest::collection::vec(0u8..2, 5),
        ) {
            let mut x = shipped();
            let mut t = EntityTracker::default();
            for (k, text) in texts.iter().enumerate() {
                let who = if speakers[k % speakers.len()] == 0 { "A" } else { "B" };
                let s = seg(k as u64, who, k as f64 * 2.0, text);
                let found = x.extract(&s);
                for e in &found {
                    let seg_text = &texts[e.segment_id as usize];
                    prop_assert!(e.start <= e.end && e.end <= seg_text.len());
                    prop_assert!(seg_text.is_char_boundary(e.start) && seg_text.is_char_boundary(e.end));
                    prop_assert!(e.text.starts_with(&seg_text[e.start..e.end]));
                    prop_assert!(label::ALL.contains(&e.label.as_str()));
                    prop_assert!((0.0..=1.0).contains(&e.confidence));
                }
                t.add(found);
            }
            x.finish();
        }
    }
}
