//! Analysis cost per final segment: VADER sentiment on a typical utterance
//! and on a long one, the per-participant tracker update, keyword spotting
//! with the shipped lists, PII redaction. Needs the lexicon
//! (`scripts/fetch-lexicons`, run by `scripts/setup`).
//! Run: `cargo bench --bench analysis`.

use criterion::{criterion_group, criterion_main, Criterion};
use earshot::analysis::keywords::KeywordSpotter;
use earshot::analysis::pii::Redactor;
use earshot::analysis::sentiment::{SegmentSentiment, SentimentTracker, Vader};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/lexicons");
    let v = Vader::load(
        &dir.join("vader_lexicon.txt"),
        &dir.join("vader_rules.json"),
    )
    .expect("run scripts/fetch-lexicons first");
    let short = "Sorry, but the user's mailbox can't accept more messages.";
    let long = "I am really not happy with this at all, I have called three times \
                and nobody helped me, but the lady yesterday was very kind and said \
                you would fix it, so please don't tell me again that it is not possible!";
    c.bench_function("vader/segment 10 words", |b| {
        b.iter(|| black_box(v.polarity(black_box(short))))
    });
    c.bench_function("vader/segment 45 words", |b| {
        b.iter(|| black_box(v.polarity(black_box(long))))
    });
    let mut t = SentimentTracker::new(3);
    let mut id = 0u64;
    c.bench_function("sentiment/score + tracker update", |b| {
        b.iter(|| {
            id += 1;
            let p = v.polarity(short);
            t.push(&SegmentSentiment {
                segment_id: id,
                participant_id: "caller".into(),
                score: p.compound,
                label: p.label(),
            })
        })
    });
    let mut k = KeywordSpotter::from_toml(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/keywords.toml"),
        )
        .unwrap(),
    )
    .unwrap();
    c.bench_function("keywords/segment 45 words", |b| {
        b.iter(|| black_box(k.push(1, None, "Caller", 0.0, black_box(long))))
    });
    let r = Redactor::default();
    let pii = "sure, my card is 4111 1111 1111 1111 and you can call me on 0 7 7 0 0 9 0 0 1 2 3";
    c.bench_function("pii/redact segment", |b| {
        b.iter(|| black_box(r.redact(black_box(pii))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
