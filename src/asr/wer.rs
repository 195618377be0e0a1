//! Word error rate: (substitutions + deletions + insertions) / reference
//! words, after the usual normalisation (lower case, punctuation dropped
//! except inner apostrophes, hyphens split words).

/// Lower-cased words without punctuation.
pub fn normalize(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '-' || c == '/')
        .map(|w| {
            let w: String = w
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .flat_map(char::to_lowercase)
                .collect();
            w.trim_matches('\'').to_string()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Edit distance between word sequences.
pub fn word_errors(reference: &[String], hypothesis: &[String]) -> usize {
    let mut prev: Vec<usize> = (0..=hypothesis.len()).collect();
    let mut cur = vec![0; hypothesis.len() + 1];
    for (i, r) in reference.iter().enumerate() {
        cur[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let sub = prev[j] + usize::from(r != h);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[hypothesis.len()]
}

/// Errors and reference length for one pair of texts.
pub fn errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalize(reference);
    let h = normalize(hypothesis);
    (word_errors(&r, &h), r.len())
}

/// WER of one pair (0 when the reference is empty and the hypothesis too).
pub fn wer(reference: &str, hypothesis: &str) -> f64 {
    let (e, n) = errors(reference, hypothesis);
    if n == 0 {
        if e == 0 {
            0.0
        } else {
            1.0
        }
    } else {
        e as f64 / n as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_and_distance() {
        assert_eq!(
            normalize("Hello, World! It's a well-known 'test'."),
            ["hello", "world", "it's", "a", "well", "known", "test"]
        );
        assert_eq!(wer("the cat sat", "the cat sat"), 0.0);
        assert_eq!(errors("the cat sat", "the bat sat down"), (2, 3));
        assert_eq!(errors("the cat sat", ""), (3, 3));
        assert_eq!(errors("", "noise"), (1, 0));
        assert_eq!(wer("", ""), 0.0);
        assert!((wer("a b c d", "a x c") - 0.5).abs() < 1e-12);
    }
}
