//! Streaming speech recognition, sans-IO: which audio goes to the
//! recogniser and when ([`tracker::UtteranceTracker`]), how consecutive
//! partial hypotheses are held stable ([`agreement::Agreement`], the
//! LocalAgreement policy of whisper_streaming), what a transcript segment
//! is ([`Segment`]), and word error rate ([`wer`]) for tests and benchmarks.
//!
//! The recogniser itself (whisper.cpp through whisper-rs) runs in the
//! runtime crate on dedicated worker threads; nothing here blocks, spawns
//! or reads a clock: time is the participant timeline in milliseconds.

pub mod agreement;
pub mod tracker;
pub mod wer;

use serde::{Deserialize, Serialize};

/// One recognised word, times in seconds from the start of the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    pub probability: f64,
}

/// A recogniser's answer for one piece of audio.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Hypothesis {
    pub text: String,
    /// Words with times relative to the start of the audio sent, seconds.
    pub words: Vec<Word>,
    /// Mean token probability, 0..1.
    pub confidence: f64,
    /// ISO 639-1 code of the language spoken (detected or configured).
    pub language: Option<String>,
    /// English translation (finals of non-English speech, when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub translation: Option<String>,
}

/// A final transcript segment, as stored and served (Call Sessions API
/// shape plus words, language and the participant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    pub segment_id: u64,
    /// Utterance the segment closes (partials carry the same id).
    pub utterance_id: u64,
    pub participant_id: Option<String>,
    /// Who spoke: the participant's name or AOR, else the stream label.
    pub speaker: String,
    /// Label of the stream (m-line) the audio came from.
    pub stream_label: String,
    pub text: String,
    /// Seconds from the start of the call.
    pub start_time: f64,
    pub end_time: f64,
    pub duration: f64,
    pub confidence: f64,
    #[serde(default)]
    pub words: Vec<Word>,
    pub language: Option<String>,
    pub is_final: bool,
    /// The recogniser was behind when it decoded this (overload).
    #[serde(default)]
    pub lagging: bool,
}

/// A word's letters and digits, lower-cased (what repetition checks compare).
fn letters(w: &str) -> String {
    w.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Cut a recogniser's repetition loops (whisper does this on audio cut
/// mid-word, "I don't know. I don't know. I don't know. ..."):
///
/// * a run of 1 to 12 words repeated three or more times in a row is kept
///   once (ordinary speech rarely says the same phrase three times);
/// * a run of 4 to 12 words said twice in a row is kept once ("Let me put
///   you on hold. Let me put you on hold."): people repeat a word or two
///   ("no no", "thank you, thank you"), not a whole clause;
/// * a sentence of 3+ words followed by the start of itself at the very end
///   ("How can I help? How can") loses that tail;
/// * a text that is one phrase however spaced, three or more times, is
///   kept once.
pub fn trim_repetitions(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let key: Vec<String> = words.iter().map(|w| letters(w)).collect();
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    let mut kept: Vec<&str> = Vec::with_capacity(words.len());
    let mut i = 0;
    while i < words.len() {
        let mut skipped = false;
        for n in 1..=12usize {
            if i + 2 * n > words.len() {
                break;
            }
            let unit = &key[i..i + n];
            if unit.iter().all(String::is_empty) {
                continue;
            }
            let mut reps = 1;
            while i + (reps + 1) * n <= words.len()
                && &key[i + reps * n..i + (reps + 1) * n] == unit
            {
                reps += 1;
            }
            if reps >= 3 || (reps >= 2 && n >= 4) {
                out.extend_from_slice(&words[i..i + n]);
                kept.extend(unit.iter().map(String::as_str));
                i += reps * n;
                skipped = true;
                break;
            }
        }
        if !skipped {
            out.push(words[i]);
            kept.push(&key[i]);
            i += 1;
        }
    }
    let cut = cut_restarted_tail(&out, &kept);
    out.truncate(cut);
    collapse_whole_repeat(&out).join(" ")
}

/// How many words to keep when the text ends by restarting its last
/// sentence: the last `k` (2..=6) words repeat the first `k` words of the
/// sentence of 3+ words right before them, which starts the text or
/// follows a `.`, `?` or `!`.
fn cut_restarted_tail(words: &[&str], keys: &[&str]) -> usize {
    let n = words.len();
    for k in 2..=6usize.min(n / 2) {
        let tail = &keys[n - k..];
        if tail.iter().any(|t| t.is_empty()) {
            continue;
        }
        // Sentences ending right before the tail.
        if !words[n - k - 1].ends_with(['.', '?', '!']) {
            continue;
        }
        let starts = (0..n - k).filter(|&p| p == 0 || words[p - 1].ends_with(['.', '?', '!']));
        for p in starts {
            let len = n - k - p;
            if len >= 3 && len > k && keys[p..p + k] == *tail {
                return n - k;
            }
        }
    }
    n
}

/// The whole text is one phrase said three or more times, however the
/// recogniser spaced it ("Goodbye. Good bye. Goodbye."): keep it once.
fn collapse_whole_repeat<'a>(words: &[&'a str]) -> Vec<&'a str> {
    let keys: Vec<String> = words.iter().map(|w| letters(w)).collect();
    let joined: String = keys.concat();
    let n = joined.chars().count();
    if n == 0 {
        return words.to_vec();
    }
    let chars: Vec<char> = joined.chars().collect();
    for unit in 1..=n / 3 {
        if !n.is_multiple_of(unit) || chars.chunks(unit).any(|c| c != &chars[..unit]) {
            continue;
        }
        // Keep the leading words that spell the unit once.
        let mut len = 0;
        for (i, k) in keys.iter().enumerate() {
            len += k.chars().count();
            if len == unit {
                return words[..=i].to_vec();
            }
            if len > unit {
                break;
            }
        }
    }
    words.to_vec()
}

/// The most frequent of some language codes (ties: the first
/// alphabetically); None when there is none.
pub fn most_frequent_language<'a>(langs: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in langs {
        *counts.entry(l).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(l, _)| l.to_string())
}

/// The language most of these segments are in.
pub fn main_language(segs: &[Segment]) -> Option<String> {
    most_frequent_language(segs.iter().filter_map(|s| s.language.as_deref()))
}

/// Time-ordered transcript across participants, one line per segment,
/// each prefixed by its speaker (`speaker: text`).
pub fn cumulative_transcript(segments: &[Segment]) -> String {
    let mut order: Vec<&Segment> = segments.iter().filter(|s| !s.text.is_empty()).collect();
    order.sort_by(|a, b| {
        a.start_time
            .total_cmp(&b.start_time)
            .then(a.segment_id.cmp(&b.segment_id))
    });
    order
        .iter()
        .map(|s| format!("{}: {}", s.speaker, s.text))
        .collect::<Vec<_>>()
        .join("\n")
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
            end_time: start + 1.0,
            duration: 1.0,
            confidence: 0.9,
            words: vec![],
            language: Some("en".into()),
            is_final: true,
            lagging: false,
        }
    }

    #[test]
    fn repetition_loops_are_cut() {
        assert_eq!(
            trim_repetitions("I'm afraid I don't know. I'm afraid I don't know. I'm afraid I don't know. I'm afraid"),
            "I'm afraid I don't know."
        );
        // Clause-long runs said twice, and a sentence restarted at the end
        // (both seen in finals of the billing call).
        assert_eq!(
            trim_repetitions("Let me put you on hold. Let me put you on hold."),
            "Let me put you on hold."
        );
        assert_eq!(
            trim_repetitions("this is the third time I have called about it, this is the third time I have called about it, this is the third time I have called about it,"),
            "this is the third time I have called about it,"
        );
        assert_eq!(
            trim_repetitions("How can I help? How can"),
            "How can I help?"
        );
        assert_eq!(
            trim_repetitions("Have a great day. Have a"),
            "Have a great day."
        );
        // Not restarts: a different sentence, a short one, mid-text.
        assert_eq!(
            trim_repetitions("How can I help? How are you"),
            "How can I help? How are you"
        );
        assert_eq!(
            trim_repetitions("Thank you. Thank you"),
            "Thank you. Thank you"
        );
        assert_eq!(
            trim_repetitions("I can see it. I can do it today."),
            "I can see it. I can do it today."
        );
        assert_eq!(
            trim_repetitions("thank you, thank you so much"),
            "thank you, thank you so much"
        );
        assert_eq!(
            trim_repetitions("Weasel, Weasel, Weasel, Weasel,"),
            "Weasel,"
        );
        assert_eq!(
            trim_repetitions("have be be be be be be the phone"),
            "have be the phone"
        );
        // Twice is speech, not a loop.
        assert_eq!(trim_repetitions("no no I said"), "no no I said");
        assert_eq!(trim_repetitions("very very good"), "very very good");
        assert_eq!(trim_repetitions(""), "");
        assert_eq!(trim_repetitions("Goodbye. Good bye. Goodbye."), "Goodbye.");
        assert_eq!(trim_repetitions("ha ha"), "ha ha");
        assert_eq!(trim_repetitions("one two three"), "one two three");
    }

    #[test]
    fn cumulative_transcript_is_time_ordered_across_speakers() {
        let s = vec![
            seg(0, "agent", 5.0, "How can I help?"),
            seg(1, "caller", 1.0, "Hello."),
            seg(2, "caller", 9.0, ""),
            seg(3, "caller", 7.5, "My card is lost."),
        ];
        assert_eq!(
            cumulative_transcript(&s),
            "caller: Hello.\nagent: How can I help?\ncaller: My card is lost."
        );
    }
}
