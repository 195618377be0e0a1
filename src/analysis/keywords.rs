//! Keywords and compliance phrases: configured lists of phrases (e.g. the
//! recording disclosure an agent must say, escalation words, risk words on
//! a helpline), matched per final segment at word boundaries, ignoring case
//! and punctuation. Keeps, per phrase, how often it was said, its first
//! mention and who said it. Cost per segment: its words × the phrases'
//! first words (a map lookup), not the call.

use crate::asr::wer::normalize as words;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// One configured list (`config/keywords.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeywordList {
    pub name: String,
    /// `compliance` lists are phrases that *should* be said (reported as
    /// missing until they are); others are phrases to watch for.
    #[serde(default)]
    pub compliance: bool,
    pub phrases: Vec<String>,
}

/// The file: `[[lists]]` tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeywordConfig {
    #[serde(default)]
    pub lists: Vec<KeywordList>,
}

/// A phrase heard in a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeywordHit {
    pub list: String,
    pub phrase: String,
    pub segment_id: u64,
    pub participant_id: Option<String>,
    pub speaker: String,
    /// Seconds from the call start (the segment's start).
    pub time: f64,
}

/// A phrase's tally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhraseStats {
    pub list: String,
    pub phrase: String,
    pub count: u64,
    pub first_mention: Option<KeywordHit>,
    pub speakers: BTreeSet<String>,
}

/// Matches configured phrases in segments and keeps the tallies.
#[derive(Debug, Clone)]
pub struct KeywordSpotter {
    /// (list, phrase as written, phrase words)
    phrases: Vec<(String, String, Vec<String>, bool)>,
    /// first word → indices into `phrases`
    by_first: HashMap<String, Vec<usize>>,
    stats: Vec<PhraseStats>,
}

impl KeywordSpotter {
    pub fn new(cfg: &KeywordConfig) -> Self {
        let mut phrases = vec![];
        let mut by_first: HashMap<String, Vec<usize>> = HashMap::new();
        let mut stats = vec![];
        for l in &cfg.lists {
            for p in &l.phrases {
                let w = words(p);
                let Some(first) = w.first().cloned() else {
                    continue;
                };
                by_first.entry(first).or_default().push(phrases.len());
                stats.push(PhraseStats {
                    list: l.name.clone(),
                    phrase: p.clone(),
                    count: 0,
                    first_mention: None,
                    speakers: BTreeSet::new(),
                });
                phrases.push((l.name.clone(), p.clone(), w, l.compliance));
            }
        }
        Self {
            phrases,
            by_first,
            stats,
        }
    }

    /// Parse `config/keywords.toml`-style text.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        Ok(Self::new(&toml::from_str::<KeywordConfig>(text)?))
    }

    /// Phrases said in this segment (each occurrence once).
    pub fn push(
        &mut self,
        segment_id: u64,
        participant_id: Option<&str>,
        speaker: &str,
        time: f64,
        text: &str,
    ) -> Vec<KeywordHit> {
        let w = words(text);
        let mut hits = vec![];
        for i in 0..w.len() {
            let Some(cands) = self.by_first.get(&w[i]) else {
                continue;
            };
            for &k in cands {
                let p = &self.phrases[k].2;
                if w.len() - i >= p.len() && w[i..i + p.len()] == p[..] {
                    let hit = KeywordHit {
                        list: self.phrases[k].0.clone(),
                        phrase: self.phrases[k].1.clone(),
                        segment_id,
                        participant_id: participant_id.map(str::to_string),
                        speaker: speaker.to_string(),
                        time,
                    };
                    let st = &mut self.stats[k];
                    st.count += 1;
                    st.speakers.insert(speaker.to_string());
                    if st.first_mention.is_none() {
                        st.first_mention = Some(hit.clone());
                    }
                    hits.push(hit);
                }
            }
        }
        hits
    }

    /// Every phrase's tally, in configuration order.
    pub fn stats(&self) -> &[PhraseStats] {
        &self.stats
    }

    /// Compliance lists none of whose phrases (alternative wordings of one
    /// requirement) has been said yet, by name.
    pub fn missing_compliance(&self) -> Vec<String> {
        let mut out: Vec<String> = vec![];
        for (s, p) in self.stats.iter().zip(&self.phrases) {
            if p.3 && !out.contains(&s.list) {
                out.push(s.list.clone());
            }
        }
        out.retain(|l| !self.stats.iter().any(|s| &s.list == l && s.count > 0));
        out
    }

    /// Whether `list` is a compliance list.
    pub fn is_compliance(&self, list: &str) -> bool {
        self.phrases.iter().any(|p| p.0 == list && p.3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[[lists]]
name = "disclosure"
compliance = true
phrases = ["this call may be recorded", "this call is being recorded"]

[[lists]]
name = "further_help"
compliance = true
phrases = ["is there anything else"]

[[lists]]
name = "escalation"
phrases = ["supervisor", "speak to a manager", "complaint"]
"#;

    #[test]
    fn phrases_are_found_at_word_boundaries_with_tallies() {
        let mut k = KeywordSpotter::from_toml(CFG).unwrap();
        assert_eq!(k.missing_compliance(), ["disclosure", "further_help"]);
        let h = k.push(
            0,
            Some("p1"),
            "Agent",
            1.0,
            "Hello, this call may be RECORDED for quality.",
        );
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].phrase, "this call may be recorded");
        let h = k.push(
            1,
            Some("p2"),
            "Caller",
            5.0,
            "I want to speak to a manager. A manager! Supervisors?",
        );
        // "supervisors" is not "supervisor"; "a manager" alone is not the phrase.
        assert_eq!(
            h.iter().map(|x| x.phrase.as_str()).collect::<Vec<_>>(),
            ["speak to a manager"]
        );
        let h = k.push(
            2,
            Some("p2"),
            "Caller",
            9.0,
            "This is a complaint, a formal complaint.",
        );
        assert_eq!(h.len(), 2);
        let s = k.stats().iter().find(|s| s.phrase == "complaint").unwrap();
        assert_eq!(s.count, 2);
        assert_eq!(s.first_mention.as_ref().unwrap().segment_id, 2);
        assert_eq!(s.speakers.iter().collect::<Vec<_>>(), ["Caller"]);
        // One wording of the disclosure satisfies it.
        assert_eq!(k.missing_compliance(), ["further_help"]);
        assert!(KeywordSpotter::from_toml("lists = 5").is_err());
    }

    #[test]
    fn shipped_lists_parse_and_catch_helpline_risk() {
        let mut k = KeywordSpotter::from_toml(include_str!("../../config/keywords.toml")).unwrap();
        assert!(k.stats().len() >= 10);
        let h = k.push(
            3,
            None,
            "Caller",
            12.0,
            "I am scared. He hit me again and I'm not safe at home.",
        );
        let got: Vec<&str> = h.iter().map(|x| x.phrase.as_str()).collect();
        assert_eq!(got, ["he hit me", "not safe"]);
        assert!(h.iter().all(|x| x.list == "risk"));
    }
}
