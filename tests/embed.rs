//! Sentence embeddings (earshot::analysis::embed) against an independent
//! numpy implementation and on the real transcripts.
//!
//! Needs the model: `scripts/fetch-embeddings` (models/all-minilm-l6-v2/).
//! Without it every test prints a SKIP line and passes; without the cargo
//! feature `embeddings` only the "feature is off" error is checked.
//!
//! tests/embed_vectors.json is made by scripts/embed_reference.py: the same
//! safetensors and vocabulary read with numpy, each sentence run alone
//! (no padding) in float64.

use earshot::analysis::embed::{MiniLm, MiniLmOptions, DEFAULT_DIR, MODEL_NAME};
use earshot::analysis::{cosine, SentenceEncoder};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Instant;

mod common;
use common::{real_texts, root, session};

fn model_dir() -> PathBuf {
    root().join(DEFAULT_DIR)
}

/// The model, or None (with a SKIP line) when it is not fetched.
fn load(test: &str) -> Option<MiniLm> {
    let dir = model_dir();
    if !cfg!(feature = "embeddings") {
        let err = MiniLm::load(&dir).expect_err("the feature is off");
        assert!(err.to_string().contains("embeddings"), "{err}");
        eprintln!("SKIP {test}: built without the `embeddings` feature");
        return None;
    }
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "SKIP {test}: {} missing (run scripts/fetch-embeddings)",
            dir.display()
        );
        return None;
    }
    Some(MiniLm::load(&dir).expect("the fetched model loads"))
}

#[derive(Deserialize)]
struct Reference {
    max_tokens: usize,
    vectors: Vec<RefVector>,
}

#[derive(Deserialize)]
struct RefVector {
    text: String,
    ids: Vec<u32>,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let path = root().join("tests/embed_vectors.json");
    let text = std::fs::read_to_string(&path).expect("tests/embed_vectors.json");
    serde_json::from_str(&text).expect("reference vectors parse")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Asserts cosine >= 0.9999 and max abs diff <= 1e-4; returns both.
fn assert_close(what: &str, text: &str, got: &[f32], want: &[f32]) -> (f32, f32) {
    assert_eq!(got.len(), want.len(), "{what}: length, {text:?}");
    let c = cosine(got, want);
    let d = max_abs_diff(got, want);
    assert!(
        c >= 0.9999 && d <= 1e-4,
        "{what}: {text:?}: cosine {c}, max abs diff {d}"
    );
    (c, d)
}

#[test]
fn tokens_match_the_reference_tokeniser() {
    let Some(m) = load("tokens_match_the_reference_tokeniser") else {
        return;
    };
    let r = reference();
    assert_eq!(m.info().max_tokens, r.max_tokens);
    let mut truncated = 0;
    for v in &r.vectors {
        let ids = m.token_ids(&v.text).expect("tokenise");
        assert_eq!(ids, v.ids, "word pieces of {:?}", v.text);
        assert_eq!(ids.first(), Some(&101), "[CLS] first");
        assert_eq!(ids.last(), Some(&102), "[SEP] last");
        if ids.len() == r.max_tokens {
            truncated += 1;
        }
    }
    assert!(truncated >= 1, "the reference set has an over-long text");
}

#[test]
fn vectors_match_the_numpy_reference_alone_and_batched() {
    let Some(mut m) = load("vectors_match_the_numpy_reference_alone_and_batched") else {
        return;
    };
    let r = reference();
    assert!(r.vectors.len() >= 8);
    // One at a time: no padding.
    let (mut worst_cos, mut worst_diff) = (1.0f32, 0.0f32);
    for v in &r.vectors {
        let got = m.encode(&[v.text.as_str()]).expect("encode");
        assert_eq!(got.len(), 1);
        let (c, d) = assert_close("alone", &v.text, &got[0], &v.embedding);
        worst_cos = worst_cos.min(c);
        worst_diff = worst_diff.max(d);
    }
    // All at once, in chunks of 4 of mixed lengths: padding must not leak
    // into the vectors.
    let mut m4 = MiniLm::load_with(
        &model_dir(),
        MiniLmOptions {
            threads: 1,
            batch_size: 4,
        },
    )
    .expect("load");
    let texts: Vec<&str> = r.vectors.iter().map(|v| v.text.as_str()).collect();
    for enc in [&mut m, &mut m4] {
        let got = enc.encode(&texts).expect("batch encode");
        assert_eq!(got.len(), texts.len());
        for (g, v) in got.iter().zip(&r.vectors) {
            let (c, d) = assert_close("batched", &v.text, g, &v.embedding);
            worst_cos = worst_cos.min(c);
            worst_diff = worst_diff.max(d);
        }
    }
    eprintln!(
        "{} reference vectors: worst cosine {worst_cos:.7}, worst max abs diff {worst_diff:.2e}",
        r.vectors.len()
    );
}

#[test]
fn semantic_sanity() {
    let Some(mut m) = load("semantic_sanity") else {
        return;
    };
    assert_eq!(m.name(), MODEL_NAME);
    let v = m
        .encode(&[
            "I was charged twice on my bill",
            "there is a duplicate payment on my invoice",
            "my neighbour's daughter is being beaten at home",
        ])
        .expect("encode");
    let billing = cosine(&v[0], &v[1]);
    let abuse = cosine(&v[0], &v[2]);
    eprintln!("charged twice ~ duplicate payment {billing:.3}, ~ beaten at home {abuse:.3}");
    assert!(billing > abuse, "{billing} <= {abuse}");
}

// ---- the real transcripts ------------------------------------------------

/// The scripted lines of scripts/make-call (CALLS "helpline" and
/// "billing"), one sentence each: the ground truth the calls were
/// synthesised from.
const HELPLINE_SCRIPT: &[&str] = &[
    "Thank you for calling the child helpline, my name is Grace.",
    "How can I help you today?",
    "Hello.",
    "My name is Amina Yusuf and I am calling from Mombasa.",
    "Thank you Amina.",
    "I am here to listen.",
    "Can you tell me what happened?",
    "My neighbour's daughter is twelve years old.",
    "She is being beaten at home and she is not going to school.",
    "I understand, that sounds very difficult.",
    "Is the child in danger right now?",
    "Yes, I think she is not safe.",
    "Her father hits her every night.",
    "Please hold for a moment while I contact the child protection officer.",
    "Thank you for holding.",
    "I have opened case number four five seven two one for you.",
    "Thank you.",
    "You can call me back on zero seven one two, three four five, six seven eight.",
    "A social worker from the Mombasa children's office will visit the family tomorrow.",
    "Is there anything else I can help you with?",
    "No, thank you so much for your help.",
    "Thank you for calling.",
    "Take care, goodbye.",
];

const BILLING_SCRIPT: &[&str] = &[
    "Good morning, thank you for calling Acme Energy, this is David speaking.",
    "This call may be recorded for quality and training purposes.",
    "How can I help?",
    "Hi David.",
    "I was charged twice on my last bill and I am really frustrated.",
    "This is the third time I have called about it.",
    "I am sorry to hear that, I understand how annoying that must be.",
    "Can I have your account number please?",
    "Yes, it is seven seven three four one nine.",
    "Thank you.",
    "Let me put you on hold for a moment while I look into this.",
    "Thanks for waiting.",
    "I can see a duplicate payment of eighty five dollars on the third of March.",
    "I will refund it today.",
    "Great, that is excellent news.",
    "Thank you.",
    "You will see the refund within five working days.",
    "Is there anything else I can help you with today?",
    "No, that is all.",
    "Thank you for calling Acme Energy.",
    "Have a great day, goodbye.",
];

/// What Whisper heard (a segment of the fixture, verbatim) and the
/// scripted sentence it was said from. The ASR errors are the point:
/// misheard names and places, a misheard verb, digits for words, a
/// repetition loop, "knows" for "No,".
const HEARD_AS: &[(&str, &str, &str)] = &[
    (
        "helpline",
        "My name is Amina Yousas and I am calling from Mount Basa.",
        "My name is Amina Yusuf and I am calling from Mombasa.",
    ),
    (
        "helpline",
        "My neighbor's daughter is 12 years old.",
        "My neighbour's daughter is twelve years old.",
    ),
    (
        "helpline",
        "She is being beaten at home and she is not going to school.",
        "She is being beaten at home and she is not going to school.",
    ),
    (
        "helpline",
        "her father had her every night.",
        "Her father hits her every night.",
    ),
    (
        "helpline",
        "I have open case number 45721 for you.",
        "I have opened case number four five seven two one for you.",
    ),
    (
        "helpline",
        "You can call me back on 0 7 1 2 3 4 5.",
        "You can call me back on zero seven one two, three four five, six seven eight.",
    ),
    (
        "helpline",
        "A social worker from the Mambasa Children's Office.",
        "A social worker from the Mombasa children's office will visit the family tomorrow.",
    ),
    (
        "helpline",
        "Please hold for a moment while I contact the Child Protection Officer.",
        "Please hold for a moment while I contact the child protection officer.",
    ),
    (
        "billing",
        "this is the third time I have called about it, this is the third time I have called about it, this is the third time I have called about it, this",
        "This is the third time I have called about it.",
    ),
    (
        "billing",
        "I was charged twice on my last bill and I am really frustrated.",
        "I was charged twice on my last bill and I am really frustrated.",
    ),
    (
        "billing",
        "Yes it is 7 7 3 4 1 9",
        "Yes, it is seven seven three four one nine.",
    ),
    (
        "billing",
        "I can see a duplicate payment of $85 on the 3rd of March.",
        "I can see a duplicate payment of eighty five dollars on the third of March.",
    ),
    (
        "billing",
        "knows that is all.",
        "No, that is all.",
    ),
];

#[test]
fn real_transcripts_batch_equals_one_at_a_time() {
    let Some(mut m) = load("real_transcripts_batch_equals_one_at_a_time") else {
        return;
    };
    let texts = real_texts();
    assert!(texts.len() > 40, "both fixtures' segments");
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batched = m.encode(&refs).expect("batch");
    for (t, b) in refs.iter().zip(&batched) {
        let alone = m.encode(&[t]).expect("alone");
        assert_close("real segment batched vs alone", t, b, &alone[0]);
    }
}

#[test]
fn real_asr_segments_find_their_scripted_sentence() {
    let Some(mut m) = load("real_asr_segments_find_their_scripted_sentence") else {
        return;
    };
    let helpline = session("helpline");
    let billing = session("billing");
    let script: Vec<(&str, &str)> = HELPLINE_SCRIPT
        .iter()
        .map(|s| ("helpline", *s))
        .chain(BILLING_SCRIPT.iter().map(|s| ("billing", *s)))
        .collect();
    let script_texts: Vec<&str> = script.iter().map(|(_, s)| *s).collect();
    let script_vecs = m.encode(&script_texts).expect("script");
    let heard: Vec<&str> = HEARD_AS.iter().map(|(_, h, _)| *h).collect();
    let heard_vecs = m.encode(&heard).expect("heard");
    let mut report = Vec::new();
    for ((call, asr, truth), hv) in HEARD_AS.iter().zip(&heard_vecs) {
        let rec = if *call == "helpline" {
            &helpline
        } else {
            &billing
        };
        assert!(
            rec.transcript_segments.iter().any(|s| s.text == *asr),
            "{call} fixture has the segment {asr:?}"
        );
        let (best, score) = script_vecs
            .iter()
            .enumerate()
            .map(|(i, sv)| (i, cosine(hv, sv)))
            .fold((0, f32::MIN), |a, b| if b.1 > a.1 { b } else { a });
        report.push(format!("{score:.3} {asr:?} -> {:?}", script[best].1));
        assert_eq!(
            script[best],
            (*call, *truth),
            "{asr:?} best matches {:?} ({score:.3})",
            script[best].1
        );
    }
    eprintln!("{}", report.join("\n"));
}

/// Timings for the report (not a pass/fail check): `cargo test --test
/// embed -- --ignored --nocapture timings`.
#[test]
#[ignore]
fn timings() {
    let t = Instant::now();
    let Some(mut m) = load("timings") else {
        return;
    };
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let one = ["I was charged twice on my last bill and I am really frustrated."];
    let eight: Vec<&str> = BILLING_SCRIPT[..8].to_vec();
    m.encode(&one).expect("warm up");
    let time = |m: &mut MiniLm, texts: &[&str]| {
        let n = 10;
        let t = Instant::now();
        for _ in 0..n {
            m.encode(texts).expect("encode");
        }
        t.elapsed().as_secs_f64() * 1e3 / n as f64
    };
    let one_ms = time(&mut m, &one);
    let eight_ms = time(&mut m, &eight);
    let mut m2 = MiniLm::load_with(
        &model_dir(),
        MiniLmOptions {
            threads: 2,
            ..MiniLmOptions::default()
        },
    )
    .expect("load");
    m2.encode(&one).expect("warm up");
    let one2 = time(&mut m2, &one);
    let eight2 = time(&mut m2, &eight);
    eprintln!(
        "load {load_ms:.0} ms; 1 thread: one sentence {one_ms:.1} ms, batch of 8 {eight_ms:.1} ms; \
         2 threads: {one2:.1} ms, {eight2:.1} ms"
    );
}
