//! Keeping partial transcripts stable (LocalAgreement-2, as in
//! whisper_streaming): a word is *committed* once two consecutive
//! hypotheses of the same growing utterance agree on it and on everything
//! before it. Committed words are never taken back; what follows them in
//! the newest hypothesis is the unstable tail a client may show greyed out.

use super::wer::normalize;

/// Stability state of one utterance's partials.
#[derive(Debug, Clone, Default)]
pub struct Agreement {
    committed: Vec<String>,
    last: Vec<String>,
}

/// A partial, split into its stable prefix and unstable tail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stabilized {
    /// Committed words, joined by spaces (only ever grows).
    pub stable: String,
    /// The rest of the newest hypothesis.
    pub unstable: String,
}

impl Stabilized {
    /// Stable and unstable text together.
    pub fn text(&self) -> String {
        match (self.stable.is_empty(), self.unstable.is_empty()) {
            (true, _) => self.unstable.clone(),
            (_, true) => self.stable.clone(),
            _ => format!("{} {}", self.stable, self.unstable),
        }
    }
}

fn same(a: &str, b: &str) -> bool {
    normalize(a) == normalize(b)
}

impl Agreement {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed the newest hypothesis of the utterance (its whole text so far).
    pub fn update(&mut self, text: &str) -> Stabilized {
        let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        // Newly agreed: the common prefix of the last two hypotheses, past
        // what is already committed.
        let n = self.committed.len();
        let mut k = n;
        while k < words.len() && k < self.last.len() && same(&words[k], &self.last[k]) {
            k += 1;
        }
        // Only extend if the hypotheses also agree with what was committed
        // (position by position); otherwise wait for them to settle.
        let consistent = (0..n.min(words.len())).all(|i| same(&words[i], &self.committed[i]))
            && (0..n.min(self.last.len())).all(|i| same(&self.last[i], &self.committed[i]));
        if consistent && k > n {
            self.committed.extend(words[n..k].iter().cloned());
        }
        self.last = words;
        let tail: Vec<&str> = self
            .last
            .iter()
            .skip(self.committed.len())
            .map(String::as_str)
            .collect();
        Stabilized {
            stable: self.committed.join(" "),
            unstable: tail.join(" "),
        }
    }

    /// Committed words so far.
    pub fn committed(&self) -> &[String] {
        &self.committed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_what_two_hypotheses_agree_on_and_never_retracts() {
        // (Agreement ignores case and punctuation; committed words are
        // spelled as the hypothesis that confirmed them.)
        let mut a = Agreement::new();
        let s = a.update("please hold");
        assert_eq!(s.stable, "");
        assert_eq!(s.unstable, "please hold");
        let s = a.update("Please hold the line");
        assert_eq!(s.stable, "Please hold");
        assert_eq!(s.unstable, "the line");
        // The recogniser changes its mind about an early word: committed
        // words stay, the disagreement waits.
        let s = a.update("Peas hold the line while");
        assert_eq!(s.stable, "Please hold");
        assert_eq!(s.unstable, "the line while");
        let s = a.update("Please hold the line while I transfer");
        assert_eq!(s.stable, "Please hold");
        let s = a.update("please hold the line while I transfer you");
        assert_eq!(s.stable, "Please hold the line while I transfer");
        assert_eq!(s.unstable, "you");
        assert_eq!(s.text(), "Please hold the line while I transfer you");
        assert_eq!(a.committed().len(), 7);
        // A shorter hypothesis never shrinks the committed prefix.
        let s = a.update("please");
        assert_eq!(s.stable, "Please hold the line while I transfer");
        assert_eq!(s.unstable, "");
    }
}
