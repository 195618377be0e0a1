//! VADER against the reference: `scripts/fetch-lexicons` (run by
//! `scripts/setup`) takes the lexicon and rule tables from PyPI
//! vaderSentiment 3.3.2 and scores a set of sentences with the package
//! itself (`models/lexicons/vader_vectors.json`); the Rust scorer must
//! give the same numbers (the reference rounds to 3 and 4 decimals).

use earshot::analysis::sentiment::{Label, Vader};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Once;

fn lexicons() -> PathBuf {
    static FETCH: Once = Once::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("models/lexicons");
    FETCH.call_once(|| {
        if !dir.join("vader_vectors.json").is_file() {
            let ok = Command::new(root.join("scripts/fetch-lexicons"))
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "scripts/fetch-lexicons failed (needs pip and PyPI)");
        }
    });
    dir
}

#[test]
fn vader_matches_the_reference_implementation() {
    let dir = lexicons();
    let v = Vader::load(
        &dir.join("vader_lexicon.txt"),
        &dir.join("vader_rules.json"),
    )
    .expect("lexicon loads");
    assert!(v.lexicon_len() > 7000);
    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("vader_vectors.json")).unwrap())
            .unwrap();
    assert!(vectors.len() >= 30);
    let mut worst = 0.0f64;
    for t in &vectors {
        let text = t["text"].as_str().unwrap();
        let p = v.polarity(text);
        let want = |k: &str| t[k].as_f64().unwrap();
        for (k, got, tol) in [
            ("compound", p.compound, 5e-5),
            ("pos", p.pos, 5e-4),
            ("neg", p.neg, 5e-4),
            ("neu", p.neu, 5e-4),
        ] {
            let d = (got - want(k)).abs();
            worst = worst.max(d / tol);
            assert!(
                d <= tol + 1e-12,
                "{text:?}: {k} {got:.5} vs reference {}",
                want(k)
            );
        }
    }
    eprintln!("{} reference sentences match", vectors.len());
    assert_eq!(v.polarity("The book was good.").label(), Label::Positive);
    assert_eq!(
        v.polarity("This is absolutely the worst service!").label(),
        Label::Negative
    );
    assert_eq!(
        v.polarity("Weasels have eaten our phone system.").label(),
        Label::Neutral
    );
}
