//! Analysis cost per final segment: VADER sentiment on a typical utterance
//! and on a long one, plus the per-participant tracker update. Needs the
//! lexicon (`scripts/fetch-lexicons`, run by `scripts/setup`).
//! Run: `cargo bench --bench analysis`.

use criterion::{criterion_group, criterion_main, Criterion};
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
