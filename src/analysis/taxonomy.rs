//! Call classification from a taxonomy file: main category, sub-category
//! (and a second one), the intervention taken and the call's priority, each
//! with a confidence and the evidence (phrase, segment, speaker, time) that
//! explains it. Operators write the taxonomy in TOML
//! (`config/taxonomy/helpline.toml`, `config/taxonomy/contact-centre.toml`);
//! [`Taxonomy::load`] validates it and names the entry at fault.
//!
//! **Matching.** Every phrase of the file (category phrases, priority and
//! intervention rule phrases) goes into one first-word index. A segment is
//! split into words ([`crate::asr::wer::normalize`]: case and punctuation
//! ignored, whole words only) and each word is looked up once, so the cost
//! of a segment is O(its words × the few phrases starting with that word),
//! independent of the call's length and of the taxonomy's size. Words are
//! compared after a light plural stemmer ("hits" = "hit", "charges" =
//! "charge", "neighbour's" = "neighbour", "parties" = "party"); other
//! inflections are written by the operator as alternatives
//! (`"beaten|beating"`) or with a trailing wildcard (`"frustrat*"`, at least
//! three letters before the `*`).
//!
//! **Scoring.** A phrase counts once per segment (the recogniser's
//! repetition loops, "the third time ... the third time ...", do not
//! multiply it); its k-th mention in the call counts `weight ×
//! repeat_decay^(k-1)`, so one phrase said again and again is bounded. A
//! main category's score is its own phrases plus all its sub-categories'.
//!
//! **Confidence** (documented, not fitted to data: treat it as an ordering,
//! not a probability). With `S1` the leading main category's score, `S2`
//! the runner-up's and `k = thresholds.evidence_scale`:
//!
//! ```text
//! confidence(main) = (1 - exp(-S1 / k)) × S1 / (S1 + S2)
//! ```
//!
//! The first factor grows with the amount of evidence (0.63 at `S1 = k`,
//! 0.95 at `3k`), the second is the leader's share against its nearest
//! rival (1 when uncontested, 0.5 when tied). The call stays
//! `unclassified` until `S1 >= min_score` and `confidence >=
//! min_confidence`. The sub-category's confidence is the same formula over
//! the sub-categories of the chosen main category, times the main
//! category's. A priority or intervention raised by phrases has `1 -
//! exp(-score / min_score)` (0.63 when just reached); one raised only by
//! the category has half the category's confidence; the default `low`
//! priority has at most 0.5 (absence of risk words in a transcript with
//! recognition errors is weak evidence) and less as risk phrases
//! accumulate below the threshold.
//!
//! **Progressive.** [`Classifier::push`] takes one final segment and
//! returns a [`ClassificationChange`] when the main or sub category, the
//! intervention or the priority changed: O(segment words) for matching plus
//! O(taxonomy entries) to re-decide, and only when the segment matched
//! something. Evidence is kept as bounded top lists (`max_evidence` per
//! category and rule), so memory does not grow with the call.
//! [`Classifier::current`] builds the snapshot: O(taxonomy + evidence cap).
//!
//! **Semantic scoring** (optional). [`SemanticIndex::build`] embeds the
//! sub-categories' `examples` once per taxonomy and encoder (share it with
//! an `Arc`); a classifier given the index ([`Classifier::with_semantic`])
//! and fed [`Classifier::push_encoded`] (or [`Classifier::push_embedded`]
//! with a vector the caller computed, e.g. in a batch) adds, for each
//! sub-category whose closest example is within `semantic_threshold`
//! cosine of the segment, `semantic_weight × cosine` (decayed like a
//! phrase), with evidence `semantic: <example>`. Cost: one encoding plus
//! O(examples × dim) per segment. Phrase scoring works without it.

use crate::analysis::{cosine, read_text, AnalysisError, SentenceEncoder};
use crate::asr::wer::normalize;
use crate::asr::Segment;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Output types (Call Sessions API shapes)

/// Priority of a call, lowest first (so `max` is the most urgent).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    #[default]
    Low,
    Medium,
    High,
}

impl std::fmt::Display for Priority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Priority::Low => "low",
            Priority::Medium => "medium",
            Priority::High => "high",
        })
    }
}

/// What a piece of evidence supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A main category (`category` = "Main") or sub-category ("Main / Sub").
    Category,
    /// A priority rule (`category` = "priority: high").
    Priority,
    /// An intervention rule (`category` = "intervention: <name>").
    Intervention,
}

/// One contribution to the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The words heard (as normalised), or `semantic: <example>`.
    pub phrase: String,
    /// What it counted for: "Main", "Main / Sub", "priority: high",
    /// "intervention: <name>".
    pub category: String,
    pub kind: EvidenceKind,
    /// Score it added (after repetition decay).
    pub weight: f64,
    pub segment_id: u64,
    pub speaker: String,
    /// Seconds from the call start (the segment's start).
    pub time: f64,
}

/// Confidence of each part of the decision, in [0, 1] (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ConfidenceBreakdown {
    pub main_category: f64,
    pub sub_category: f64,
    pub intervention: f64,
    pub priority: f64,
}

/// The classification of a call so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// The taxonomy's name.
    pub taxonomy: String,
    pub main_category: String,
    pub sub_category: String,
    pub sub_category_2: Option<String>,
    /// `None` until an intervention rule holds.
    pub intervention: Option<String>,
    pub priority: Priority,
    /// The main category's confidence (the headline figure).
    pub confidence: f64,
    pub confidence_breakdown: ConfidenceBreakdown,
    /// Top contributions to the (leading) category, then those of the
    /// priority and intervention rules that hold, each list capped at
    /// `max_evidence`.
    pub evidence: Vec<Evidence>,
    /// Final segments seen.
    pub segments: u64,
}

/// The parts of a classification whose change is reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub main_category: String,
    pub sub_category: String,
    pub intervention: Option<String>,
    pub priority: Priority,
}

/// Which part of the decision changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangedField {
    MainCategory,
    SubCategory,
    Intervention,
    Priority,
}

/// Returned by [`Classifier::push`] when the decision changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationChange {
    /// The segment that changed it.
    pub segment_id: u64,
    pub time: f64,
    pub changed: Vec<ChangedField>,
    pub previous: Decision,
    pub classification: Classification,
}

/// One step of the classification's evolution (kept for the whole call:
/// one entry per change, a handful per call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionPoint {
    pub segment_id: u64,
    pub time: f64,
    pub decision: Decision,
    pub confidence: f64,
}

// ---------------------------------------------------------------------------
// The file

/// Tunables of a taxonomy (`[thresholds]`); every one has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Score the leading main category needs before the call is classified.
    pub min_score: f64,
    /// Confidence it needs too (see the module doc).
    pub min_confidence: f64,
    /// Score at which the evidence factor of a confidence reaches 0.63.
    pub evidence_scale: f64,
    /// A second sub-category is reported when its score is at least this
    /// share of the first's ...
    pub secondary_ratio: f64,
    /// ... and at least this score.
    pub secondary_min_score: f64,
    /// Each further mention of a phrase in the call counts this times the
    /// previous one (1 = no decay).
    pub repeat_decay: f64,
    /// Evidence entries kept per category and per rule.
    pub max_evidence: usize,
    /// Semantic scoring: minimum cosine between a segment and an example.
    pub semantic_threshold: f64,
    /// Semantic scoring: score added is this × the cosine.
    pub semantic_weight: f64,
    /// Semantic scoring: shorter segments are not embedded ("Thank you.").
    pub semantic_min_words: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_score: 3.0,
            min_confidence: 0.3,
            evidence_scale: 4.0,
            secondary_ratio: 0.5,
            secondary_min_score: 2.0,
            repeat_decay: 0.5,
            max_evidence: 8,
            semantic_threshold: 0.6,
            semantic_weight: 2.0,
            semantic_min_words: 3,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTaxonomy {
    name: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    unclassified: Option<String>,
    #[serde(default)]
    thresholds: Thresholds,
    #[serde(default)]
    categories: Vec<RawCategory>,
    #[serde(default)]
    interventions: Vec<RawIntervention>,
    #[serde(default)]
    priority: Vec<RawPriority>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    phrases: Option<toml::Value>,
    #[serde(default)]
    subcategories: Vec<RawSub>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSub {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    phrases: Option<toml::Value>,
    #[serde(default)]
    examples: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntervention {
    name: String,
    phrases: Option<toml::Value>,
    min_score: Option<f64>,
    #[serde(default)]
    categories: Vec<String>,
    min_priority: Option<Priority>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriority {
    level: Priority,
    phrases: Option<toml::Value>,
    min_score: Option<f64>,
    #[serde(default)]
    categories: Vec<String>,
}

// ---------------------------------------------------------------------------
// The compiled taxonomy

/// One word of a phrase: the stemmed word, or a prefix (`word*`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum WordPat {
    Exact(String),
    Prefix(String),
}

/// What a phrase scores for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Main(usize),
    Sub(usize, usize),
    Priority(usize),
    Intervention(usize),
}

/// A configured phrase (with its alternatives) and its weight.
#[derive(Debug, Clone)]
struct Term {
    target: Target,
    weight: f64,
}

/// One alternative of a term, as words.
#[derive(Debug, Clone)]
struct Alt {
    term: usize,
    words: Vec<WordPat>,
}

/// A category named in a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CatRef {
    Main(usize),
    Sub(usize, usize),
}

#[derive(Debug, Clone)]
struct SubCategory {
    name: String,
    examples: Vec<String>,
}

#[derive(Debug, Clone)]
struct Category {
    name: String,
    subs: Vec<SubCategory>,
}

#[derive(Debug, Clone)]
struct InterventionRule {
    name: String,
    has_phrases: bool,
    min_score: f64,
    categories: Vec<CatRef>,
    min_priority: Option<Priority>,
}

#[derive(Debug, Clone)]
struct PriorityRule {
    level: Priority,
    has_phrases: bool,
    min_score: f64,
    categories: Vec<CatRef>,
}

/// A validated taxonomy with its phrase index; immutable, share it between
/// calls with an `Arc`.
#[derive(Debug, Clone)]
pub struct Taxonomy {
    name: String,
    unclassified: String,
    thresholds: Thresholds,
    categories: Vec<Category>,
    interventions: Vec<InterventionRule>,
    priorities: Vec<PriorityRule>,
    terms: Vec<Term>,
    alts: Vec<Alt>,
    /// stemmed first word → alternatives
    by_first: HashMap<String, Vec<usize>>,
    /// first-word prefix (`word*`) → alternatives
    by_prefix: HashMap<String, Vec<usize>>,
    /// distinct byte lengths of the keys of `by_prefix`
    prefix_lens: Vec<usize>,
}

/// Light plural/possessive stemmer, applied alike to the file's phrases and
/// to the transcript: "'s" dropped, "-ies" → "-y", "-sses/-shes/-ches/-xes"
/// lose "es", otherwise a final "s" goes (not after "s", "u" or "i").
fn stem(w: &str) -> String {
    let w = w.strip_suffix("'s").unwrap_or(w);
    let n = w.chars().count();
    if n > 4 && w.ends_with("ies") {
        return format!("{}y", &w[..w.len() - 3]);
    }
    if n > 4
        && ["sses", "shes", "ches", "xes"]
            .iter()
            .any(|s| w.ends_with(s))
    {
        return w[..w.len() - 2].to_string();
    }
    if n > 3 && w.ends_with('s') && !["ss", "us", "is"].iter().any(|s| w.ends_with(s)) {
        return w[..w.len() - 1].to_string();
    }
    w.to_string()
}

/// Parse one phrase pattern: `alt|alt|...`, each alternative words with an
/// optional trailing `*` on a word.
fn compile_pattern(pattern: &str) -> Result<Vec<Vec<WordPat>>, String> {
    let mut alts = vec![];
    for alt in pattern.split('|') {
        let mut words = vec![];
        for tok in alt.split_whitespace() {
            let wild = tok.ends_with('*');
            let body = tok.trim_end_matches('*');
            if body.contains('*') {
                return Err(format!(
                    "phrase {pattern:?}: '*' may only end a word ({tok:?})"
                ));
            }
            let ws = normalize(body);
            if ws.is_empty() {
                return Err(format!("phrase {pattern:?}: {tok:?} has no letters"));
            }
            let last = ws.len() - 1;
            for (i, w) in ws.into_iter().enumerate() {
                if wild && i == last {
                    if w.chars().count() < 3 {
                        return Err(format!(
                            "phrase {pattern:?}: wildcard {tok:?} needs at least 3 letters before '*'"
                        ));
                    }
                    words.push(WordPat::Prefix(w));
                } else {
                    words.push(WordPat::Exact(stem(&w)));
                }
            }
        }
        if words.is_empty() {
            return Err(format!("phrase {pattern:?}: empty alternative"));
        }
        alts.push(words);
    }
    Ok(alts)
}

/// Phrases of an entry: a list of strings (weight 1 each) or a table of
/// `"phrase" = weight`.
fn phrase_list(v: &toml::Value) -> Result<Vec<(String, f64)>, String> {
    match v {
        toml::Value::Array(a) => a
            .iter()
            .map(|x| match x {
                toml::Value::String(s) => Ok((s.clone(), 1.0)),
                other => Err(format!(
                    "phrases: expected strings, found {}",
                    other.type_str()
                )),
            })
            .collect(),
        toml::Value::Table(t) => t
            .iter()
            .map(|(k, x)| {
                let w = match x {
                    toml::Value::Integer(i) => *i as f64,
                    toml::Value::Float(f) => *f,
                    other => {
                        return Err(format!(
                            "phrase {k:?}: weight must be a number, found {}",
                            other.type_str()
                        ))
                    }
                };
                Ok((k.clone(), w))
            })
            .collect(),
        other => Err(format!(
            "phrases must be a list of strings or a table of \"phrase\" = weight, found {}",
            other.type_str()
        )),
    }
}

fn check_unit(name: &str, v: f64, lo_open: bool) -> Result<(), String> {
    let ok = v.is_finite() && v <= 1.0 && if lo_open { v > 0.0 } else { v >= 0.0 };
    if ok {
        Ok(())
    } else {
        let lo = if lo_open { "(0" } else { "[0" };
        Err(format!("thresholds.{name} = {v}: must be in {lo}, 1]"))
    }
}

impl Taxonomy {
    /// Load and validate a taxonomy file.
    pub fn load(path: &Path) -> Result<Taxonomy, AnalysisError> {
        let text = read_text(path)?;
        Taxonomy::from_toml(&text, &path.display().to_string())
    }

    /// Parse and validate taxonomy TOML; `source` names it in errors (the
    /// file's path) and is the taxonomy's name when the file has none.
    pub fn from_toml(text: &str, source: &str) -> Result<Taxonomy, AnalysisError> {
        let raw: RawTaxonomy = toml::from_str(text)
            .map_err(|e| AnalysisError::config(source, e.to_string().trim()))?;
        Taxonomy::compile(raw, source).map_err(|m| AnalysisError::config(source, m))
    }

    fn compile(raw: RawTaxonomy, source: &str) -> Result<Taxonomy, String> {
        let t = raw.thresholds;
        for (name, v) in [
            ("min_score", t.min_score),
            ("evidence_scale", t.evidence_scale),
            ("semantic_weight", t.semantic_weight),
            ("secondary_min_score", t.secondary_min_score),
        ] {
            if !v.is_finite() || v < 0.0 || (name == "evidence_scale" && v == 0.0) {
                return Err(format!(
                    "thresholds.{name} = {v}: must be a non-negative number{}",
                    if name == "evidence_scale" {
                        " above 0"
                    } else {
                        ""
                    }
                ));
            }
        }
        check_unit("min_confidence", t.min_confidence, false)?;
        check_unit("secondary_ratio", t.secondary_ratio, false)?;
        check_unit("repeat_decay", t.repeat_decay, true)?;
        if !(t.semantic_threshold.is_finite()
            && t.semantic_threshold > -1.0
            && t.semantic_threshold <= 1.0)
        {
            return Err(format!(
                "thresholds.semantic_threshold = {}: must be in (-1, 1]",
                t.semantic_threshold
            ));
        }
        if t.max_evidence == 0 {
            return Err("thresholds.max_evidence must be at least 1".into());
        }
        if raw.categories.is_empty() {
            return Err("no [[categories]]".into());
        }
        let unclassified = raw.unclassified.unwrap_or_else(|| "unclassified".into());
        if unclassified.trim().is_empty() {
            return Err("unclassified: empty name".into());
        }

        let mut tax = Taxonomy {
            name: raw.name.unwrap_or_else(|| source.to_string()),
            unclassified,
            thresholds: t,
            categories: vec![],
            interventions: vec![],
            priorities: vec![],
            terms: vec![],
            alts: vec![],
            by_first: HashMap::new(),
            by_prefix: HashMap::new(),
            prefix_lens: vec![],
        };

        let unc = tax.unclassified.clone();
        let check_name = |what: &str, name: &str| -> Result<(), String> {
            if name.trim().is_empty() {
                Err(format!("{what}: empty name"))
            } else if name.contains('/') {
                Err(format!("{what} {name:?}: a name may not contain '/'"))
            } else if name == unc {
                Err(format!(
                    "{what} {name:?}: that is the `unclassified` label, it needs no entry"
                ))
            } else {
                Ok(())
            }
        };

        // Categories and their phrases.
        for (ci, c) in raw.categories.iter().enumerate() {
            let what = format!("categories[{ci}]");
            check_name(&what, &c.name)?;
            if tax.categories.iter().any(|x| x.name == c.name) {
                return Err(format!("{what} {:?}: duplicate category name", c.name));
            }
            let entry = format!("category {:?}", c.name);
            let mut has_any = false;
            if let Some(p) = &c.phrases {
                has_any |= tax.add_phrases(&entry, p, Target::Main(ci))?;
            }
            let mut subs: Vec<SubCategory> = vec![];
            for (si, s) in c.subcategories.iter().enumerate() {
                let swhat = format!("category {:?} subcategories[{si}]", c.name);
                check_name(&swhat, &s.name)?;
                if subs.iter().any(|x| x.name == s.name) {
                    return Err(format!("{swhat} {:?}: duplicate sub-category name", s.name));
                }
                let sentry = format!("category {:?} / {:?}", c.name, s.name);
                let mut sub_any = false;
                if let Some(p) = &s.phrases {
                    sub_any |= tax.add_phrases(&sentry, p, Target::Sub(ci, si))?;
                }
                for (ei, e) in s.examples.iter().enumerate() {
                    if normalize(e).is_empty() {
                        return Err(format!("{sentry}: examples[{ei}] is empty"));
                    }
                }
                if !sub_any && s.examples.is_empty() {
                    return Err(format!("{sentry}: no phrases and no examples"));
                }
                has_any |= sub_any || !s.examples.is_empty();
                subs.push(SubCategory {
                    name: s.name.clone(),
                    examples: s.examples.clone(),
                });
            }
            if !has_any {
                return Err(format!("{entry}: no phrases and no sub-categories"));
            }
            tax.categories.push(Category {
                name: c.name.clone(),
                subs,
            });
        }

        // Rules.
        for (ri, r) in raw.priority.iter().enumerate() {
            let entry = format!("priority[{ri}] (level {})", r.level);
            let (has_phrases, categories, min_score) = tax.rule(
                &entry,
                r.phrases.as_ref(),
                &r.categories,
                r.min_score,
                Target::Priority(ri),
            )?;
            tax.priorities.push(PriorityRule {
                level: r.level,
                has_phrases,
                min_score,
                categories,
            });
        }
        for (ri, r) in raw.interventions.iter().enumerate() {
            let entry = format!("interventions[{ri}] {:?}", r.name);
            if r.name.trim().is_empty() {
                return Err(format!("interventions[{ri}]: empty name"));
            }
            let (has_phrases, categories, min_score) = tax.rule(
                &entry,
                r.phrases.as_ref(),
                &r.categories,
                r.min_score,
                Target::Intervention(ri),
            )?;
            tax.interventions.push(InterventionRule {
                name: r.name.clone(),
                has_phrases,
                min_score,
                categories,
                min_priority: r.min_priority,
            });
        }
        let mut lens: Vec<usize> = tax.by_prefix.keys().map(String::len).collect();
        lens.sort_unstable();
        lens.dedup();
        tax.prefix_lens = lens;
        Ok(tax)
    }

    /// Index an entry's phrases; false when it has none.
    /// What priority and intervention rules share: their phrases (indexed
    /// for `target`), the categories they name, and a `min_score` above 0
    /// (default 1); a rule needs phrases or categories.
    fn rule(
        &mut self,
        entry: &str,
        phrases: Option<&toml::Value>,
        categories: &[String],
        min_score: Option<f64>,
        target: Target,
    ) -> Result<(bool, Vec<CatRef>, f64), String> {
        let has_phrases = match phrases {
            Some(p) => self.add_phrases(entry, p, target)?,
            None => false,
        };
        let categories = self.resolve(entry, categories)?;
        if !has_phrases && categories.is_empty() {
            return Err(format!("{entry}: needs phrases or categories"));
        }
        let min_score = min_score.unwrap_or(1.0);
        if !(min_score.is_finite() && min_score > 0.0) {
            return Err(format!("{entry}: min_score = {min_score}: must be above 0"));
        }
        Ok((has_phrases, categories, min_score))
    }

    fn add_phrases(
        &mut self,
        entry: &str,
        v: &toml::Value,
        target: Target,
    ) -> Result<bool, String> {
        let list = phrase_list(v).map_err(|m| format!("{entry}: {m}"))?;
        for (pattern, weight) in &list {
            if !(weight.is_finite() && *weight > 0.0) {
                return Err(format!(
                    "{entry}: phrase {pattern:?}: weight {weight} must be above 0"
                ));
            }
            let alts = compile_pattern(pattern).map_err(|m| format!("{entry}: {m}"))?;
            let term = self.terms.len();
            self.terms.push(Term {
                target,
                weight: *weight,
            });
            for words in alts {
                let ai = self.alts.len();
                match &words[0] {
                    WordPat::Exact(w) => self.by_first.entry(w.clone()).or_default().push(ai),
                    WordPat::Prefix(p) => self.by_prefix.entry(p.clone()).or_default().push(ai),
                }
                self.alts.push(Alt { term, words });
            }
        }
        Ok(!list.is_empty())
    }

    /// "Main" or "Main / Sub" → indices.
    fn resolve(&self, entry: &str, names: &[String]) -> Result<Vec<CatRef>, String> {
        names
            .iter()
            .map(|n| {
                let (main, sub) = match n.split_once('/') {
                    Some((m, s)) => (m.trim(), Some(s.trim())),
                    None => (n.trim(), None),
                };
                let ci = self
                    .categories
                    .iter()
                    .position(|c| c.name == main)
                    .ok_or_else(|| format!("{entry}: unknown category {main:?}"))?;
                match sub {
                    None => Ok(CatRef::Main(ci)),
                    Some(s) => self.categories[ci]
                        .subs
                        .iter()
                        .position(|x| x.name == s)
                        .map(|si| CatRef::Sub(ci, si))
                        .ok_or_else(|| format!("{entry}: unknown sub-category {s:?} of {main:?}")),
                }
            })
            .collect()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The label used until the call is classified.
    pub fn unclassified(&self) -> &str {
        &self.unclassified
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Main categories with their sub-categories, in file order.
    pub fn categories(&self) -> Vec<(String, Vec<String>)> {
        self.categories
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.subs.iter().map(|s| s.name.clone()).collect(),
                )
            })
            .collect()
    }

    /// Number of configured phrases (after splitting alternatives).
    pub fn phrase_count(&self) -> usize {
        self.alts.len()
    }

    fn label(&self, r: CatRef) -> String {
        match r {
            CatRef::Main(c) => self.categories[c].name.clone(),
            CatRef::Sub(c, s) => format!(
                "{} / {}",
                self.categories[c].name, self.categories[c].subs[s].name
            ),
        }
    }

    fn target_label(&self, t: Target) -> (String, EvidenceKind) {
        match t {
            Target::Main(c) => (self.label(CatRef::Main(c)), EvidenceKind::Category),
            Target::Sub(c, s) => (self.label(CatRef::Sub(c, s)), EvidenceKind::Category),
            Target::Priority(r) => (
                format!("priority: {}", self.priorities[r].level),
                EvidenceKind::Priority,
            ),
            Target::Intervention(r) => (
                format!("intervention: {}", self.interventions[r].name),
                EvidenceKind::Intervention,
            ),
        }
    }

    /// Terms heard in `text`: (term, first word, word count) for the first
    /// occurrence of each term, in order. O(words).
    fn matches(&self, raw: &[String], stems: &[String], out: &mut Vec<(usize, usize, usize)>) {
        out.clear();
        let word_ok = |p: &WordPat, j: usize| match p {
            WordPat::Exact(s) => stems[j] == *s,
            WordPat::Prefix(p) => raw[j].starts_with(p.as_str()),
        };
        for i in 0..raw.len() {
            let exact = self.by_first.get(&stems[i]).into_iter().flatten();
            let prefixed = self
                .prefix_lens
                .iter()
                .filter_map(|&l| raw[i].get(..l))
                .filter_map(|p| self.by_prefix.get(p))
                .flatten();
            for &ai in exact.chain(prefixed) {
                let alt = &self.alts[ai];
                let n = alt.words.len();
                if raw.len() - i < n
                    || !alt.words.iter().enumerate().all(|(k, p)| word_ok(p, i + k))
                {
                    continue;
                }
                if out.iter().all(|&(t, _, _)| t != alt.term) {
                    out.push((alt.term, i, n));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Semantic index

/// The taxonomy's example sentences, embedded once by an encoder. Build it
/// once per (taxonomy, encoder) and share it.
#[derive(Debug, Clone)]
pub struct SemanticIndex {
    taxonomy: String,
    encoder: String,
    dim: usize,
    /// (main, sub, example, unit vector)
    examples: Vec<(usize, usize, String, Vec<f32>)>,
}

impl SemanticIndex {
    /// Embed every sub-category's `examples` (one batch).
    pub fn build(
        tax: &Taxonomy,
        encoder: &mut dyn SentenceEncoder,
    ) -> Result<SemanticIndex, AnalysisError> {
        let mut keys = vec![];
        for (ci, c) in tax.categories.iter().enumerate() {
            for (si, s) in c.subs.iter().enumerate() {
                for e in &s.examples {
                    keys.push((ci, si, e.as_str()));
                }
            }
        }
        let texts: Vec<&str> = keys.iter().map(|k| k.2).collect();
        let vecs = if texts.is_empty() {
            vec![]
        } else {
            encoder.encode(&texts)?
        };
        let dim = encoder.dim();
        if vecs.len() != texts.len() {
            return Err(AnalysisError::model(
                encoder.name(),
                format!("{} vectors for {} examples", vecs.len(), texts.len()),
            ));
        }
        let mut examples = Vec::with_capacity(keys.len());
        for ((ci, si, e), v) in keys.into_iter().zip(vecs) {
            if v.len() != dim || v.iter().any(|x| !x.is_finite()) {
                return Err(AnalysisError::model(
                    encoder.name(),
                    format!(
                        "bad vector for example {e:?} (length {}, dim {dim})",
                        v.len()
                    ),
                ));
            }
            examples.push((ci, si, e.to_string(), v));
        }
        Ok(SemanticIndex {
            taxonomy: tax.name.clone(),
            encoder: encoder.name().to_string(),
            dim,
            examples,
        })
    }

    pub fn encoder(&self) -> &str {
        &self.encoder
    }

    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

// ---------------------------------------------------------------------------
// The classifier

/// Best contributions, highest weight first (ties: earliest first).
#[derive(Debug, Clone, Default)]
struct TopK(Vec<Evidence>);

impl TopK {
    fn offer(&mut self, e: Evidence, cap: usize) {
        if self.0.len() >= cap && self.0.last().is_some_and(|l| l.weight >= e.weight) {
            return;
        }
        let at = self.0.partition_point(|x| x.weight >= e.weight);
        self.0.insert(at, e);
        self.0.truncate(cap);
    }
}

/// Everything decided at one moment (internal, with confidences).
#[derive(Debug, Clone)]
struct State {
    decision: Decision,
    /// Leading main category (even when unclassified) and whether it counts.
    lead: Option<usize>,
    classified: bool,
    sub2: Option<usize>,
    priority_rule: Option<usize>,
    intervention_rule: Option<usize>,
    conf: ConfidenceBreakdown,
}

/// Classifies one call progressively (see the module doc).
#[derive(Debug, Clone)]
pub struct Classifier {
    tax: Arc<Taxonomy>,
    semantic: Option<Arc<SemanticIndex>>,
    /// Mentions so far, per term (for the repetition decay).
    mentions: Vec<u32>,
    /// Semantic matches so far, per (main, sub).
    sem_mentions: Vec<Vec<u32>>,
    main_scores: Vec<f64>,
    sub_scores: Vec<Vec<f64>>,
    priority_scores: Vec<f64>,
    intervention_scores: Vec<f64>,
    main_ev: Vec<TopK>,
    priority_ev: Vec<TopK>,
    intervention_ev: Vec<TopK>,
    state: State,
    history: Vec<DecisionPoint>,
    segments: u64,
    scratch: Vec<(usize, usize, usize)>,
}

/// Evidence factor of a confidence: 1 - exp(-s / k).
fn saturate(s: f64, k: f64) -> f64 {
    if s <= 0.0 {
        0.0
    } else {
        1.0 - (-s / k).exp()
    }
}

/// Best and runner-up of `scores`: (index of best, best, runner-up).
fn top2(scores: &[f64]) -> Option<(usize, f64, f64)> {
    let mut best: Option<(usize, f64)> = None;
    let mut second = 0.0f64;
    for (i, &s) in scores.iter().enumerate() {
        match best {
            Some((_, b)) if s <= b => second = second.max(s),
            Some((_, b)) => {
                second = second.max(b);
                best = Some((i, s));
            }
            None => best = Some((i, s)),
        }
    }
    best.filter(|b| b.1 > 0.0).map(|(i, s)| (i, s, second))
}

fn margin_confidence(s1: f64, s2: f64, k: f64) -> f64 {
    if s1 <= 0.0 {
        0.0
    } else {
        saturate(s1, k) * s1 / (s1 + s2)
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl Classifier {
    pub fn new(tax: Arc<Taxonomy>) -> Classifier {
        let nm = tax.categories.len();
        let mut c = Classifier {
            mentions: vec![0; tax.terms.len()],
            sem_mentions: tax
                .categories
                .iter()
                .map(|c| vec![0; c.subs.len()])
                .collect(),
            main_scores: vec![0.0; nm],
            sub_scores: tax
                .categories
                .iter()
                .map(|c| vec![0.0; c.subs.len()])
                .collect(),
            priority_scores: vec![0.0; tax.priorities.len()],
            intervention_scores: vec![0.0; tax.interventions.len()],
            main_ev: vec![TopK::default(); nm],
            priority_ev: vec![TopK::default(); tax.priorities.len()],
            intervention_ev: vec![TopK::default(); tax.interventions.len()],
            state: State {
                decision: Decision {
                    main_category: tax.unclassified.clone(),
                    sub_category: tax.unclassified.clone(),
                    intervention: None,
                    priority: Priority::Low,
                },
                lead: None,
                classified: false,
                sub2: None,
                priority_rule: None,
                intervention_rule: None,
                conf: ConfidenceBreakdown::default(),
            },
            history: vec![],
            segments: 0,
            scratch: vec![],
            semantic: None,
            tax,
        };
        c.state = c.decide();
        c
    }

    /// Use semantic scoring with this index (built for this taxonomy).
    pub fn with_semantic(mut self, index: Arc<SemanticIndex>) -> Result<Self, AnalysisError> {
        if index.taxonomy != self.tax.name
            || index
                .examples
                .iter()
                .any(|&(c, s, _, _)| self.tax.categories.get(c).is_none_or(|x| x.subs.len() <= s))
        {
            return Err(AnalysisError::config(
                &self.tax.name,
                format!("semantic index was built for taxonomy {:?}", index.taxonomy),
            ));
        }
        self.semantic = Some(index);
        Ok(self)
    }

    pub fn taxonomy(&self) -> &Taxonomy {
        &self.tax
    }

    /// Feed one final segment (phrase scoring only). Non-final segments are
    /// ignored.
    pub fn push(&mut self, seg: &Segment) -> Option<ClassificationChange> {
        self.push_inner(seg, None)
    }

    /// Feed one final segment with its embedding (from the index's encoder)
    /// for semantic scoring; a vector of the wrong length is ignored.
    pub fn push_embedded(
        &mut self,
        seg: &Segment,
        embedding: &[f32],
    ) -> Option<ClassificationChange> {
        self.push_inner(seg, Some(embedding))
    }

    /// Feed one final segment, embedding it with `encoder` when semantic
    /// scoring is on and the segment is long enough.
    pub fn push_encoded(
        &mut self,
        seg: &Segment,
        encoder: &mut dyn SentenceEncoder,
    ) -> Result<Option<ClassificationChange>, AnalysisError> {
        let wanted = seg.is_final
            && self.semantic.as_ref().is_some_and(|ix| {
                !ix.is_empty()
                    && normalize(&seg.text).len() >= self.tax.thresholds.semantic_min_words
            });
        if !wanted {
            return Ok(self.push_inner(seg, None));
        }
        if let Some(ix) = &self.semantic {
            if ix.encoder != encoder.name() {
                return Err(AnalysisError::model(
                    encoder.name(),
                    format!("the semantic index was built with {:?}", ix.encoder),
                ));
            }
        }
        let mut v = encoder.encode(&[seg.text.as_str()])?;
        let v = v
            .pop()
            .ok_or_else(|| AnalysisError::model(encoder.name(), "no vector for a segment"))?;
        Ok(self.push_inner(seg, Some(&v)))
    }

    fn push_inner(&mut self, seg: &Segment, emb: Option<&[f32]>) -> Option<ClassificationChange> {
        if !seg.is_final {
            return None;
        }
        self.segments += 1;
        let tax = Arc::clone(&self.tax);
        let th = &tax.thresholds;
        let raw = normalize(&seg.text);
        let stems: Vec<String> = raw.iter().map(|w| stem(w)).collect();
        let mut found = std::mem::take(&mut self.scratch);
        tax.matches(&raw, &stems, &mut found);
        let mut any = !found.is_empty();
        for &(ti, at, n) in &found {
            let term = &tax.terms[ti];
            let w = term.weight * th.repeat_decay.powi(self.mentions[ti] as i32);
            self.mentions[ti] = self.mentions[ti].saturating_add(1);
            let phrase = raw[at..at + n].join(" ");
            self.add(term.target, w, phrase, seg);
        }
        self.scratch = found;

        if let (Some(ix), Some(v)) = (self.semantic.clone(), emb) {
            if v.len() == ix.dim && raw.len() >= th.semantic_min_words {
                // Closest example per sub-category.
                let mut best: HashMap<(usize, usize), (f32, usize)> = HashMap::new();
                for (ei, (c, s, _, ev)) in ix.examples.iter().enumerate() {
                    let cs = cosine(v, ev);
                    let e = best.entry((*c, *s)).or_insert((cs, ei));
                    if cs > e.0 {
                        *e = (cs, ei);
                    }
                }
                let mut hits: Vec<_> = best
                    .into_iter()
                    .filter(|(_, (cs, _))| {
                        cs.is_finite() && f64::from(*cs) >= th.semantic_threshold
                    })
                    .collect();
                hits.sort_by_key(|&((c, s), _)| (c, s));
                for ((c, s), (cs, ei)) in hits {
                    let m = &mut self.sem_mentions[c][s];
                    let w = th.semantic_weight * f64::from(cs) * th.repeat_decay.powi(*m as i32);
                    *m = m.saturating_add(1);
                    let phrase = format!("semantic: {}", ix.examples[ei].2);
                    self.add(Target::Sub(c, s), w, phrase, seg);
                    any = true;
                }
            }
        }

        if !any {
            return None;
        }
        let next = self.decide();
        let prev = &self.state.decision;
        let d = &next.decision;
        let mut changed = vec![];
        if prev.main_category != d.main_category {
            changed.push(ChangedField::MainCategory);
        }
        if prev.sub_category != d.sub_category {
            changed.push(ChangedField::SubCategory);
        }
        if prev.intervention != d.intervention {
            changed.push(ChangedField::Intervention);
        }
        if prev.priority != d.priority {
            changed.push(ChangedField::Priority);
        }
        let previous = std::mem::replace(&mut self.state, next).decision;
        if changed.is_empty() {
            return None;
        }
        self.history.push(DecisionPoint {
            segment_id: seg.segment_id,
            time: seg.start_time,
            decision: self.state.decision.clone(),
            confidence: round3(self.state.conf.main_category),
        });
        Some(ClassificationChange {
            segment_id: seg.segment_id,
            time: seg.start_time,
            changed,
            previous,
            classification: self.current(),
        })
    }

    /// Add a contribution and its evidence.
    fn add(&mut self, target: Target, w: f64, phrase: String, seg: &Segment) {
        let cap = self.tax.thresholds.max_evidence;
        let (category, kind) = self.tax.target_label(target);
        let ev = Evidence {
            phrase,
            category,
            kind,
            weight: round3(w),
            segment_id: seg.segment_id,
            speaker: seg.speaker.clone(),
            time: seg.start_time,
        };
        match target {
            Target::Main(c) => {
                self.main_scores[c] += w;
                self.main_ev[c].offer(ev, cap);
            }
            Target::Sub(c, s) => {
                self.main_scores[c] += w;
                self.sub_scores[c][s] += w;
                self.main_ev[c].offer(ev, cap);
            }
            Target::Priority(r) => {
                self.priority_scores[r] += w;
                self.priority_ev[r].offer(ev, cap);
            }
            Target::Intervention(r) => {
                self.intervention_scores[r] += w;
                self.intervention_ev[r].offer(ev, cap);
            }
        }
    }

    /// Decide from the tallies: O(taxonomy entries).
    fn decide(&self) -> State {
        let tax = &self.tax;
        let th = &tax.thresholds;
        let k = th.evidence_scale;
        let mut conf = ConfidenceBreakdown::default();
        let lead = top2(&self.main_scores);
        let mut classified = false;
        let (mut sub, mut sub2) = (None, None);
        if let Some((c, s1, s2)) = lead {
            conf.main_category = margin_confidence(s1, s2, k);
            classified = s1 >= th.min_score && conf.main_category >= th.min_confidence;
            if classified {
                if let Some((si, b1, b2)) = top2(&self.sub_scores[c]) {
                    sub = Some(si);
                    conf.sub_category = conf.main_category * margin_confidence(b1, b2, k);
                    sub2 = self.sub_scores[c]
                        .iter()
                        .enumerate()
                        .filter(|&(j, &v)| {
                            j != si && v >= th.secondary_min_score && v >= th.secondary_ratio * b1
                        })
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map(|(j, _)| j);
                }
            }
        }
        let main = lead.filter(|_| classified).map(|l| l.0);
        let cat_holds = |refs: &[CatRef]| -> Option<f64> {
            let m = main?;
            refs.iter()
                .filter_map(|r| match *r {
                    CatRef::Main(c) if c == m => Some(conf.main_category),
                    CatRef::Sub(c, s) if c == m && sub == Some(s) => Some(conf.sub_category),
                    _ => None,
                })
                .reduce(f64::max)
        };

        // Priority: the most urgent rule that holds (phrases reaching
        // min_score, or the category).
        let mut priority = Priority::Low;
        let mut priority_rule = None;
        let mut pconf = 0.0;
        let mut partial = 0.0f64;
        for (ri, r) in tax.priorities.iter().enumerate() {
            let s = self.priority_scores[ri];
            let by_phrase = (r.has_phrases && s >= r.min_score).then(|| saturate(s, r.min_score));
            let by_cat = cat_holds(&r.categories).map(|c| 0.5 * c);
            let held = match (by_phrase, by_cat) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            match held {
                Some(c) if r.level > priority || (r.level == priority && c > pconf) => {
                    priority = r.level;
                    priority_rule = Some(ri);
                    pconf = c;
                }
                Some(_) => {}
                None => partial = partial.max(s / r.min_score),
            }
        }
        conf.priority = if priority_rule.is_some() {
            pconf
        } else {
            0.5 * (1.0 - partial.min(1.0))
        };

        // Intervention: the first rule, in file order, that holds.
        let mut intervention_rule = None;
        for (ri, r) in tax.interventions.iter().enumerate() {
            let s = self.intervention_scores[ri];
            if r.has_phrases && s < r.min_score {
                continue;
            }
            let cat = if r.categories.is_empty() {
                None
            } else {
                match cat_holds(&r.categories) {
                    Some(c) => Some(c),
                    None => continue,
                }
            };
            if r.min_priority.is_some_and(|p| priority < p) {
                continue;
            }
            conf.intervention = if r.has_phrases {
                saturate(s, r.min_score)
            } else {
                0.5 * cat.unwrap_or(0.0)
            };
            intervention_rule = Some(ri);
            break;
        }

        let unc = || tax.unclassified.clone();
        let decision = Decision {
            main_category: main.map_or_else(unc, |c| tax.categories[c].name.clone()),
            sub_category: match (main, sub) {
                (Some(c), Some(s)) => tax.categories[c].subs[s].name.clone(),
                _ => unc(),
            },
            intervention: intervention_rule.map(|r| tax.interventions[r].name.clone()),
            priority,
        };
        State {
            decision,
            lead: lead.map(|l| l.0),
            classified,
            sub2,
            priority_rule,
            intervention_rule,
            conf,
        }
    }

    /// The classification so far: O(taxonomy + evidence cap).
    pub fn current(&self) -> Classification {
        let st = &self.state;
        let cap = self.tax.thresholds.max_evidence;
        let mut evidence: Vec<Evidence> = vec![];
        if let Some(c) = st.lead {
            evidence.extend(self.main_ev[c].0.iter().take(cap).cloned());
        }
        if let Some(r) = st.priority_rule {
            evidence.extend(self.priority_ev[r].0.iter().take(cap).cloned());
        }
        if let Some(r) = st.intervention_rule {
            evidence.extend(self.intervention_ev[r].0.iter().take(cap).cloned());
        }
        let c = &st.conf;
        Classification {
            taxonomy: self.tax.name.clone(),
            main_category: st.decision.main_category.clone(),
            sub_category: st.decision.sub_category.clone(),
            sub_category_2: match (st.classified, st.lead, st.sub2) {
                (true, Some(m), Some(s)) => Some(self.tax.categories[m].subs[s].name.clone()),
                _ => None,
            },
            intervention: st.decision.intervention.clone(),
            priority: st.decision.priority,
            confidence: round3(c.main_category),
            confidence_breakdown: ConfidenceBreakdown {
                main_category: round3(c.main_category),
                sub_category: round3(c.sub_category),
                intervention: round3(c.intervention),
                priority: round3(c.priority),
            },
            evidence,
            segments: self.segments,
        }
    }

    /// The decision as it is now.
    pub fn decision(&self) -> &Decision {
        &self.state.decision
    }

    /// Every change so far (the classification's evolution).
    pub fn history(&self) -> &[DecisionPoint] {
        &self.history
    }

    /// Score of each main category so far, in file order (for diagnostics).
    pub fn scores(&self) -> Vec<(String, f64)> {
        self.tax
            .categories
            .iter()
            .zip(&self.main_scores)
            .map(|(c, s)| (c.name.clone(), *s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(id: u64, speaker: &str, t: f64, text: &str) -> Segment {
        Segment {
            segment_id: id,
            utterance_id: id,
            participant_id: None,
            speaker: speaker.into(),
            stream_label: "1".into(),
            text: text.into(),
            start_time: t,
            end_time: t + 2.0,
            duration: 2.0,
            confidence: 0.9,
            words: vec![],
            language: Some("en".into()),
            is_final: true,
            lagging: false,
        }
    }

    fn err(text: &str) -> String {
        match Taxonomy::from_toml(text, "t.toml") {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    const SMALL: &str = r#"
name = "small"
[thresholds]
min_score = 3
[[categories]]
name = "Abuse"
[categories.phrases]
"abuse*" = 1
[[categories.subcategories]]
name = "Physical"
[categories.subcategories.phrases]
"beaten|beating" = 3
"hits her" = 3
"bruise" = 2
[[categories.subcategories]]
name = "Neglect"
[categories.subcategories.phrases]
"no food" = 1
"left alone" = 4
[[categories]]
name = "School"
[[categories.subcategories]]
name = "Bullying"
[categories.subcategories.phrases]
"bull*" = 3

[[priority]]
level = "high"
min_score = 3
[priority.phrases]
"not safe|unsafe" = 3
"danger" = 2
[[priority]]
level = "medium"
categories = ["Abuse"]

[[interventions]]
name = "Referral"
categories = ["Abuse"]
phrases = ["social worker"]
[[interventions]]
name = "Counselling"
categories = ["School / Bullying"]
"#;

    fn small() -> Arc<Taxonomy> {
        Arc::new(Taxonomy::from_toml(SMALL, "small.toml").expect("small taxonomy"))
    }

    #[test]
    fn loading_errors_name_the_file_and_entry() {
        let e = err("name = \"x\"\n[[categories]\nname = 1");
        assert!(e.starts_with("t.toml: "), "{e}");
        let e = err("name = \"x\"");
        assert!(e.contains("no [[categories]]"), "{e}");
        let e = err("[[categories]]\nname = \"A\"\nphrase = [\"x\"]");
        assert!(e.contains("phrase"), "unknown field is refused: {e}");
        let e = err("[[categories]]\nname = \"A\"\nphrases = [\"x\"]\n[[categories]]\nname = \"A\"\nphrases = [\"y\"]");
        assert!(e.contains("categories[1] \"A\": duplicate"), "{e}");
        let e = err("[[categories]]\nname = \"A\"\n[categories.phrases]\n\"be*\" = 2");
        assert!(
            e.contains("category \"A\"") && e.contains("wildcard"),
            "{e}"
        );
        let e = err("[[categories]]\nname = \"A\"\n[categories.phrases]\n\"x\" = 0");
        assert!(
            e.contains("category \"A\"") && e.contains("\"x\"") && e.contains("weight"),
            "{e}"
        );
        let e = err("[[categories]]\nname = \"A\"\n[categories.phrases]\n\"x\" = \"heavy\"");
        assert!(e.contains("must be a number"), "{e}");
        let e = err("[[categories]]\nname = \"A\"\nphrases = [\"a|\"]");
        assert!(e.contains("empty alternative"), "{e}");
        let e = err("[[categories]]\nname = \"A\"\nphrases = [\"x*y\"]");
        assert!(e.contains("may only end"), "{e}");
        let e = err("[[categories]]\nname = \"A\"\nphrases = 3");
        assert!(e.contains("category \"A\": phrases must be"), "{e}");
        let e = err("[[categories]]\nname = \"A\"\n[[categories.subcategories]]\nname = \"S\"");
        assert!(
            e.contains("category \"A\" / \"S\": no phrases and no examples"),
            "{e}"
        );
        let e = err("[[categories]]\nname = \"A/B\"\nphrases = [\"x\"]");
        assert!(e.contains("may not contain '/'"), "{e}");
        let e = err("[[categories]]\nname = \"A\"\nphrases = [\"x\"]\n[[interventions]]\nname = \"R\"\ncategories = [\"B\"]");
        assert!(
            e.contains("interventions[0] \"R\": unknown category \"B\""),
            "{e}"
        );
        let e = err("[[categories]]\nname = \"A\"\nphrases = [\"x\"]\n[[interventions]]\nname = \"R\"\ncategories = [\"A / Z\"]");
        assert!(e.contains("unknown sub-category \"Z\" of \"A\""), "{e}");
        let e = err("[[categories]]\nname = \"A\"\nphrases = [\"x\"]\n[[priority]]\nlevel = \"urgent\"\nphrases = [\"y\"]");
        assert!(e.contains("urgent"), "{e}");
        let e =
            err("[[categories]]\nname = \"A\"\nphrases = [\"x\"]\n[[priority]]\nlevel = \"high\"");
        assert!(
            e.contains("priority[0] (level high): needs phrases or categories"),
            "{e}"
        );
        let e =
            err("[thresholds]\nrepeat_decay = 0\n[[categories]]\nname = \"A\"\nphrases = [\"x\"]");
        assert!(e.contains("thresholds.repeat_decay"), "{e}");
        let e = err("[thresholds]\nmin_scor = 2\n[[categories]]\nname = \"A\"\nphrases = [\"x\"]");
        assert!(e.contains("min_scor"), "{e}");
        match Taxonomy::load(Path::new("/nonexistent/taxonomy.toml")) {
            Err(AnalysisError::Io { path, .. }) => assert!(path.contains("nonexistent")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stemmer_and_matching_are_word_exact_and_plural_tolerant() {
        assert_eq!(stem("hits"), "hit");
        assert_eq!(stem("charges"), "charge");
        assert_eq!(stem("injuries"), "injury");
        assert_eq!(stem("matches"), "match");
        assert_eq!(stem("neighbour's"), "neighbour");
        assert_eq!(stem("this"), "this");
        assert_eq!(stem("was"), "was");
        assert_eq!(stem("address"), "address");
        assert_eq!(stem("status"), "status");
        let tax = small();
        let found = |text: &str| {
            let raw = normalize(text);
            let stems: Vec<String> = raw.iter().map(|w| stem(w)).collect();
            let mut out = vec![];
            tax.matches(&raw, &stems, &mut out);
            out.iter()
                .map(|&(_, at, n)| raw[at..at + n].join(" "))
                .collect::<Vec<_>>()
        };
        assert_eq!(found("He HIT HER, again."), ["hit her"]);
        assert_eq!(
            found("She has bruises; she is being Beaten!"),
            ["bruises", "beaten"]
        );
        assert_eq!(
            found("They bullied him. Bullying!"),
            ["bullied"],
            "one per term"
        );
        assert!(found("the beatles played, whits, her").is_empty());
        assert!(found("ab abuse").contains(&"abuse".to_string()));
        assert!(found("").is_empty());
        assert!(found("... ?? --").is_empty());
    }

    #[test]
    fn unclassified_until_enough_evidence_then_changes_are_reported() {
        let mut c = Classifier::new(small());
        let first = c.current();
        assert_eq!(first.main_category, "unclassified");
        assert_eq!(first.sub_category, "unclassified");
        assert_eq!(first.priority, Priority::Low);
        assert!(first.evidence.is_empty());
        assert!(c
            .push(&seg(0, "A", 1.0, "Hello, how can I help?"))
            .is_none());
        // Weak evidence: a lead but not enough to classify.
        assert!(c
            .push(&seg(1, "B", 3.0, "There is no food at home."))
            .is_none());
        let cur = c.current();
        assert_eq!(cur.main_category, "unclassified");
        assert!(cur.confidence > 0.0 && cur.confidence < 0.3, "{cur:?}");
        assert_eq!(cur.evidence.len(), 1);
        let ch = c
            .push(&seg(2, "B", 6.0, "She is beaten every night."))
            .expect("classified now");
        assert_eq!(ch.segment_id, 2);
        assert_eq!(ch.previous.main_category, "unclassified");
        assert_eq!(
            ch.changed,
            [
                ChangedField::MainCategory,
                ChangedField::SubCategory,
                ChangedField::Priority
            ]
        );
        let k = &ch.classification;
        assert_eq!(
            (k.main_category.as_str(), k.sub_category.as_str()),
            ("Abuse", "Physical")
        );
        // Priority medium from the category rule, not from phrases.
        assert_eq!(k.priority, Priority::Medium);
        assert_eq!(k.evidence[0].phrase, "beaten");
        assert_eq!(k.evidence[0].segment_id, 2);
        assert_eq!(k.evidence[0].category, "Abuse / Physical");
        assert_eq!(k.evidence[0].kind, EvidenceKind::Category);
        // Expected confidence: S1 = 4, uncontested: 1 - e^-1.
        assert!(
            (k.confidence - (1.0 - (-1.0f64).exp())).abs() < 1e-3,
            "{k:?}"
        );
        let ch = c
            .push(&seg(
                3,
                "B",
                9.0,
                "I think she is not safe, she is in danger.",
            ))
            .expect("priority high");
        assert_eq!(ch.changed, [ChangedField::Priority]);
        assert_eq!(ch.classification.priority, Priority::High);
        assert!(ch
            .classification
            .evidence
            .iter()
            .any(|e| e.kind == EvidenceKind::Priority && e.phrase == "not safe"));
        let ch = c
            .push(&seg(4, "A", 12.0, "I will ask a social worker to visit."))
            .expect("intervention");
        assert_eq!(ch.classification.intervention.as_deref(), Some("Referral"));
        assert_eq!(c.history().len(), 3);
        assert_eq!(c.history()[0].segment_id, 2);
        // Nothing new: no change, and a non-final segment is ignored.
        assert!(c.push(&seg(5, "B", 14.0, "Thank you.")).is_none());
        let mut partial = seg(6, "B", 15.0, "He bullied me, bullying, bullies");
        partial.is_final = false;
        assert!(c.push(&partial).is_none());
        assert_eq!(c.current().segments, 6);
    }

    #[test]
    fn repetition_is_bounded_and_confidence_follows_margin_and_evidence() {
        let mut once = Classifier::new(small());
        once.push(&seg(0, "B", 0.0, "She was beaten. Beaten! beaten, beaten"));
        let mut twice = Classifier::new(small());
        twice.push(&seg(0, "B", 0.0, "She was beaten."));
        assert_eq!(once.scores()[0].1, 3.0, "once per segment");
        twice.push(&seg(1, "B", 2.0, "Yes beaten."));
        assert_eq!(twice.scores()[0].1, 4.5, "second mention decays by half");
        for i in 2..50 {
            twice.push(&seg(i, "B", i as f64, "beaten"));
        }
        assert!(
            twice.scores()[0].1 < 6.0 + 1e-9,
            "geometric bound weight/(1-decay)"
        );

        // More distinct evidence: higher confidence; a rival: lower.
        let mut a = Classifier::new(small());
        a.push(&seg(0, "B", 0.0, "He hits her."));
        let c1 = a.current().confidence;
        a.push(&seg(1, "B", 1.0, "She has a bruise and was beaten."));
        let c2 = a.current().confidence;
        assert!(c2 > c1, "{c1} {c2}");
        a.push(&seg(2, "B", 2.0, "And the other kids bully her."));
        let c3 = a.current();
        assert!(c3.confidence < c2, "{c2} {c3:?}");
        assert_eq!(c3.main_category, "Abuse");
        // Two sub-categories of the same main: the second is reported.
        a.push(&seg(3, "B", 3.0, "There is no food and she is left alone."));
        let c4 = a.current();
        assert_eq!(c4.sub_category, "Physical");
        assert_eq!(c4.sub_category_2.as_deref(), Some("Neglect"));
        assert!(c4.confidence_breakdown.sub_category <= c4.confidence_breakdown.main_category);
        for x in [
            c4.confidence_breakdown.main_category,
            c4.confidence_breakdown.sub_category,
            c4.confidence_breakdown.priority,
            c4.confidence_breakdown.intervention,
        ] {
            assert!((0.0..=1.0).contains(&x), "{c4:?}");
        }
    }

    #[test]
    fn evidence_is_capped_and_best_first() {
        let mut toml = String::from(
            "[thresholds]\nmax_evidence = 3\n[[categories]]\nname = \"A\"\n[categories.phrases]\n",
        );
        for i in 0..10 {
            toml.push_str(&format!("\"w{i}\" = {}\n", i + 1));
        }
        let tax = Arc::new(Taxonomy::from_toml(&toml, "cap").unwrap());
        let mut c = Classifier::new(tax);
        for i in 0..10 {
            c.push(&seg(i, "B", i as f64, &format!("w{i}")));
        }
        let ev = c.current().evidence;
        let ws: Vec<f64> = ev.iter().map(|e| e.weight).collect();
        assert_eq!(ws, [10.0, 9.0, 8.0]);
        assert_eq!(ev[0].segment_id, 9);
    }

    #[test]
    fn intervention_rules_go_in_order_with_category_defaults() {
        let mut c = Classifier::new(small());
        // Phrase before classification: the rule waits for its category.
        c.push(&seg(0, "A", 0.0, "A social worker can help."));
        assert_eq!(c.current().intervention, None);
        let ch = c
            .push(&seg(1, "B", 1.0, "They bully me every day."))
            .unwrap();
        assert_eq!(ch.classification.main_category, "School");
        // Category-only default, half the category's confidence.
        assert_eq!(
            ch.classification.intervention.as_deref(),
            Some("Counselling")
        );
        let b = ch.classification.confidence_breakdown;
        assert!(
            (b.intervention - 0.5 * b.sub_category).abs() < 2e-3,
            "{b:?}"
        );
    }

    #[test]
    fn classification_serialises_in_the_api_shape() {
        let mut c = Classifier::new(small());
        c.push(&seg(0, "B", 0.0, "He hits her and she is not safe."));
        let v = serde_json::to_value(c.current()).unwrap();
        for k in [
            "main_category",
            "sub_category",
            "sub_category_2",
            "intervention",
            "priority",
            "confidence",
            "confidence_breakdown",
            "evidence",
        ] {
            assert!(v.get(k).is_some(), "{k} in {v}");
        }
        assert_eq!(v["priority"], "high");
        assert_eq!(
            v["confidence_breakdown"]["priority"]
                .as_f64()
                .map(|x| x > 0.6),
            Some(true)
        );
        assert_eq!(v["evidence"][0]["kind"], "category");
        let back: Classification = serde_json::from_value(v).unwrap();
        assert_eq!(back, c.current());
    }

    /// Deterministic stand-in for a sentence encoder: hashed bag of
    /// (stemmed) words, L2-normalised.
    struct HashedBow {
        dim: usize,
    }

    impl SentenceEncoder for HashedBow {
        fn name(&self) -> &str {
            "hashed-bow"
        }
        fn dim(&self) -> usize {
            self.dim
        }
        fn encode(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, AnalysisError> {
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0f32; self.dim];
                    for w in normalize(t) {
                        let h = stem(&w).bytes().fold(0xcbf29ce484222325u64, |h, b| {
                            (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
                        });
                        v[(h % self.dim as u64) as usize] += 1.0;
                    }
                    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                    if n > 0.0 {
                        v.iter_mut().for_each(|x| *x /= n);
                    }
                    v
                })
                .collect())
        }
    }

    const SEM: &str = r#"
name = "sem"
[thresholds]
semantic_threshold = 0.55
semantic_weight = 4.0
[[categories]]
name = "Billing"
[[categories.subcategories]]
name = "Duplicate Charge"
phrases = ["charged twice"]
examples = ["the same amount was taken from my card two times"]
[[categories]]
name = "Technical"
[[categories.subcategories]]
name = "Outage"
phrases = ["power cut"]
examples = ["the lights went out in the whole street"]
"#;

    #[test]
    fn semantic_scoring_adds_evidence_from_examples() {
        let tax = Arc::new(Taxonomy::from_toml(SEM, "sem.toml").unwrap());
        let mut enc = HashedBow { dim: 256 };
        let ix = Arc::new(SemanticIndex::build(&tax, &mut enc).unwrap());
        assert_eq!((ix.len(), ix.encoder()), (2, "hashed-bow"));
        let text = "The same amount was taken from my card two times this month.";
        // Without an encoder the phrases find nothing here.
        let mut plain = Classifier::new(tax.clone());
        assert!(plain.push(&seg(0, "B", 0.0, text)).is_none());
        assert_eq!(plain.current().main_category, "unclassified");
        let mut c = Classifier::new(tax.clone())
            .with_semantic(ix.clone())
            .unwrap();
        assert!(c
            .push_encoded(&seg(0, "B", 0.0, "Thank you.",), &mut enc)
            .unwrap()
            .is_none());
        let ch = c
            .push_encoded(&seg(1, "B", 1.0, text), &mut enc)
            .unwrap()
            .expect("semantic match classifies");
        let k = ch.classification;
        assert_eq!(
            (k.main_category.as_str(), k.sub_category.as_str()),
            ("Billing", "Duplicate Charge")
        );
        assert_eq!(
            k.evidence[0].phrase,
            "semantic: the same amount was taken from my card two times"
        );
        // An unrelated sentence adds nothing.
        let before = c.scores();
        c.push_encoded(
            &seg(2, "B", 2.0, "Can I have your account number please"),
            &mut enc,
        )
        .unwrap();
        assert_eq!(c.scores(), before);
        // A vector of the wrong size is ignored, not a panic.
        assert!(c
            .push_embedded(&seg(3, "B", 3.0, text), &[0.5; 3])
            .is_none());
        // Another encoder than the index's is refused.
        let mut other_enc = HashedBow { dim: 256 };
        struct Renamed<'a>(&'a mut HashedBow);
        impl SentenceEncoder for Renamed<'_> {
            fn name(&self) -> &str {
                "other"
            }
            fn dim(&self) -> usize {
                self.0.dim()
            }
            fn encode(&mut self, t: &[&str]) -> Result<Vec<Vec<f32>>, AnalysisError> {
                self.0.encode(t)
            }
        }
        assert!(c
            .push_encoded(&seg(4, "B", 4.0, text), &mut Renamed(&mut other_enc))
            .is_err());
        // An index from another taxonomy is refused.
        let other = Arc::new(Taxonomy::from_toml(SMALL, "small.toml").unwrap());
        assert!(Classifier::new(other).with_semantic(ix).is_err());
    }

    #[test]
    fn shipped_taxonomies_load() {
        for (text, name, mains) in [
            (
                include_str!("../../config/taxonomy/helpline.toml"),
                "helpline",
                7,
            ),
            (
                include_str!("../../config/taxonomy/contact-centre.toml"),
                "contact-centre",
                5,
            ),
        ] {
            let t = Taxonomy::from_toml(text, name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(t.name(), name);
            let cats = t.categories();
            assert_eq!(cats.len(), mains, "{cats:?}");
            assert!(cats.iter().all(|(_, subs)| !subs.is_empty()));
            assert!(t.phrase_count() > 100, "{}", t.phrase_count());
        }
    }
}
