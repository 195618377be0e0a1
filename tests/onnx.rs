//! The ONNX slots (earshot::analysis::onnx) on real models and real
//! transcripts: the all-MiniLM-L6-v2 encoder exported to ONNX must give the
//! candle encoder's vectors, and the demo token-classification model must
//! find the helpline call's caller, agent and place.
//!
//! Needs the runtime (scripts/fetch-onnxruntime) and the models
//! (scripts/fetch-embeddings, scripts/make-onnx-models); a test that needs
//! one that is absent says SKIP and what to run, and passes. The error
//! tests need nothing.
//!
//! Timings (ort vs candle, one thread): `cargo test -p earshot --release
//! --test onnx -- --ignored --nocapture timings`.

use earshot::analysis::embed::{self, MiniLm, MiniLmOptions};
use earshot::analysis::entities::{Entity, EntityExtractor};
use earshot::analysis::onnx::{
    OnnxEncoder, OnnxNer, OnnxOptions, ENCODER_DEFAULT_DIR, NER_DEFAULT_DIR,
};
use earshot::analysis::{cosine, SentenceEncoder};
use std::path::PathBuf;
use std::time::Instant;

mod common;
use common::{onnx_opts as opts, real_texts, root, session};

/// The runtime library this test process would load.
fn runtime() -> PathBuf {
    earshot::analysis::onnx::runtime_path(opts().runtime.as_deref())
}

/// Whether everything `test` needs is there; prints SKIP when not.
fn have(test: &str, files: &[PathBuf]) -> bool {
    let mut need = vec![runtime()];
    need.extend_from_slice(files);
    for f in &need {
        if !f.exists() {
            eprintln!(
                "SKIP {test}: {} missing (run scripts/fetch-onnxruntime, scripts/fetch-embeddings, scripts/make-onnx-models)",
                f.display()
            );
            return false;
        }
    }
    true
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("earshot-onnx-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

#[test]
fn missing_model_dir_is_a_clear_error() {
    let dir = root().join("no/such/model/dir");
    let e = OnnxNer::load_with(&dir, &opts())
        .expect_err("no model")
        .to_string();
    assert!(
        e.contains("no/such/model/dir/model.onnx") && e.contains("make-onnx-models"),
        "{e}"
    );
    let e = OnnxEncoder::load_with(&dir, &opts())
        .expect_err("no model")
        .to_string();
    assert!(e.contains("no/such/model/dir/model.onnx"), "{e}");
}

#[test]
fn garbled_labels_name_the_file() {
    let d = tmp_dir("labels");
    std::fs::write(d.join("model.onnx"), b"not a model").expect("write");
    // No labels at all.
    let e = OnnxNer::load_with(&d, &opts())
        .expect_err("no labels")
        .to_string();
    assert!(e.contains("labels.json") && e.contains("id2label"), "{e}");
    // Not JSON.
    std::fs::write(d.join("labels.json"), "{ id2label: ").expect("write");
    let e = OnnxNer::load_with(&d, &opts())
        .expect_err("bad json")
        .to_string();
    assert!(
        e.contains(&d.join("labels.json").display().to_string()),
        "{e}"
    );
    // Not BIO.
    std::fs::write(
        d.join("labels.json"),
        r#"{"id2label": {"0": "O", "1": "NAME"}}"#,
    )
    .expect("write");
    let e = OnnxNer::load_with(&d, &opts())
        .expect_err("not bio")
        .to_string();
    assert!(e.contains("labels.json") && e.contains("\"NAME\""), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn garbled_model_or_tokenizer_names_the_file() {
    let ner = root().join(NER_DEFAULT_DIR);
    if !have(
        "garbled_model_or_tokenizer_names_the_file",
        &[ner.join("model.onnx")],
    ) {
        return;
    }
    let d = tmp_dir("garbled");
    std::fs::copy(ner.join("labels.json"), d.join("labels.json")).expect("copy");
    std::fs::write(d.join("model.onnx"), b"\x08\x07garbage, not protobuf").expect("write");
    // A tokenizer that does not parse.
    std::fs::write(d.join("tokenizer.json"), "{\"model\": 3}").expect("write");
    let e = OnnxNer::load_with(&d, &opts())
        .expect_err("bad tokenizer")
        .to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    // The real tokenizer, a garbled graph: ONNX Runtime's error, naming the file.
    std::fs::copy(ner.join("tokenizer.json"), d.join("tokenizer.json")).expect("copy");
    let e = OnnxNer::load_with(&d, &opts())
        .expect_err("bad model")
        .to_string();
    assert!(
        e.contains(&d.join("model.onnx").display().to_string()),
        "{e}"
    );
    // The real graph with a label set of the wrong size.
    std::fs::remove_file(d.join("model.onnx")).expect("rm");
    #[cfg(unix)]
    std::os::unix::fs::symlink(ner.join("model.onnx"), d.join("model.onnx")).expect("symlink");
    #[cfg(not(unix))]
    std::fs::copy(ner.join("model.onnx"), d.join("model.onnx")).expect("copy");
    std::fs::write(
        d.join("labels.json"),
        r#"{"id2label": {"0": "O", "1": "B-PER", "2": "I-PER"}}"#,
    )
    .expect("write");
    let e = OnnxNer::load_with(&d, &opts())
        .expect_err("3 labels")
        .to_string();
    assert!(e.contains("labels.json") && e.contains("3 labels"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn onnx_encoder_equals_candle_minilm_on_real_segments() {
    let onnx_dir = root().join(ENCODER_DEFAULT_DIR);
    let candle_dir = root().join(embed::DEFAULT_DIR);
    if !have(
        "onnx_encoder_equals_candle_minilm_on_real_segments",
        &[
            onnx_dir.join("model.onnx"),
            candle_dir.join("model.safetensors"),
        ],
    ) {
        return;
    }
    let mut onnx = OnnxEncoder::load_with(&onnx_dir, &opts()).expect("onnx encoder");
    let mut candle = MiniLm::load(&candle_dir).expect("candle encoder");
    assert_eq!(onnx.dim(), 384);
    let texts = real_texts();
    assert!(texts.len() > 40);
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let a = onnx.encode(&refs).expect("onnx batch");
    let b = candle.encode(&refs).expect("candle batch");
    let mut worst = 1.0f32;
    for ((t, x), y) in refs.iter().zip(&a).zip(&b) {
        let n: f32 = x.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-4, "{t:?}: norm {n}");
        let c = cosine(x, y);
        worst = worst.min(c);
        assert!(c >= 0.9999, "{t:?}: cosine onnx vs candle {c}");
    }
    // One at a time (no padding) gives the same as in a batch.
    for (t, x) in refs.iter().zip(&a).take(8) {
        let alone = onnx.encode(&[t]).expect("alone");
        assert!(cosine(x, &alone[0]) >= 0.99999, "{t:?}: batched vs alone");
    }
    // Empty text and over-long text are encoded, not refused.
    let long = "help ".repeat(400);
    let v = onnx.encode(&["", &long]).expect("edge cases");
    let w = candle.encode(&["", &long]).expect("edge cases");
    assert!(cosine(&v[0], &w[0]) >= 0.9999 && cosine(&v[1], &w[1]) >= 0.9999);
    eprintln!(
        "onnx vs candle: {} real segments, worst cosine {worst:.7}",
        refs.len()
    );
}

fn extract_all(ner: &mut OnnxNer, name: &str) -> Vec<(String, Entity)> {
    let rec = session(name);
    let mut out = Vec::new();
    for seg in &rec.transcript_segments {
        for e in ner.extract(seg) {
            // Offsets valid: on char boundaries, and the text is the span.
            assert!(e.start < e.end && e.end <= seg.text.len(), "{e:?}");
            assert_eq!(seg.text.get(e.start..e.end), Some(e.text.as_str()), "{e:?}");
            assert!(e.confidence > 0.0 && e.confidence <= 1.0 + 1e-9, "{e:?}");
            assert_eq!(e.segment_id, seg.segment_id);
            assert_eq!(e.speaker, seg.speaker);
            assert!(e.time >= seg.start_time - 1e-9 && e.time <= seg.end_time + 1e-9);
            assert!(e.source.starts_with("onnx:"), "{e:?}");
            out.push((seg.text.clone(), e));
        }
    }
    for (text, e) in &out {
        eprintln!(
            "{name} #{:<2} {:<12} {:<16} {:.2}  in {text:?}",
            e.segment_id, e.label, e.text, e.confidence
        );
    }
    out
}

fn has(found: &[(String, Entity)], seg: u64, label: &str, text: &str) -> bool {
    found
        .iter()
        .any(|(_, e)| e.segment_id == seg && e.label == label && e.text == text)
}

#[test]
fn onnx_ner_finds_the_helpline_people_and_place() {
    let dir = root().join(NER_DEFAULT_DIR);
    if !have(
        "onnx_ner_finds_the_helpline_people_and_place",
        &[dir.join("model.onnx")],
    ) {
        return;
    }
    let mut ner = OnnxNer::load_with(&dir, &opts()).expect("ner");
    assert_eq!(ner.name(), "earshot-ner-demo");
    assert_eq!(ner.labels(), ["PERSON", "LOCATION", "ORGANIZATION"]);
    let found = extract_all(&mut ner, "helpline");
    // "Thank you for calling the child helpline. My name is Grace."
    assert!(has(&found, 0, "PERSON", "Grace"), "Grace");
    // "My name is Amina Yousas and I am calling from Mount Basa."
    // (Whisper's spellings of "Amina Yusuf" and "Mombasa"; none of these
    // names is in the model's training corpus.)
    assert!(
        has(&found, 3, "PERSON", "Amina Yousas") || has(&found, 3, "PERSON", "Amina"),
        "Amina"
    );
    assert!(
        found
            .iter()
            .any(|(_, e)| e.segment_id == 3 && e.label == "LOCATION" && e.text.contains("Basa")),
        "Mount Basa"
    );
    // "A social worker from the Mambasa Children's Office."
    assert!(
        found
            .iter()
            .any(|(_, e)| e.segment_id == 20 && e.text.contains("Mambasa")),
        "Mambasa"
    );
    // It is a demo model (a linear head on frozen MiniLM features, trained
    // on a few templates): it also tags some common words. Bound that, as a
    // guard against a worse model, rather than pin today's mistakes.
    let expected = |e: &Entity| {
        (e.label == "PERSON" && (e.text.starts_with("Amin") || e.text == "Grace"))
            || (e.label == "LOCATION"
                && ["Mount", "Basa", "Mount Basa", "Mambasa"].contains(&e.text.as_str()))
    };
    let extra: Vec<&str> = found
        .iter()
        .filter(|(_, e)| !expected(e))
        .map(|(_, e)| e.text.as_str())
        .collect();
    eprintln!(
        "helpline: {} expected mentions, {} others: {extra:?}",
        found.len() - extra.len(),
        extra.len()
    );
    assert!(extra.len() <= 8, "too many spurious entities: {extra:?}");
    let billing = extract_all(&mut ner, "billing");
    // "Good morning, thank you for calling Acme Energy. This is David speaking."
    assert!(has(&billing, 0, "PERSON", "David"), "David");
}

#[test]
fn onnx_ner_on_edge_case_texts() {
    let dir = root().join(NER_DEFAULT_DIR);
    if !have("onnx_ner_on_edge_case_texts", &[dir.join("model.onnx")]) {
        return;
    }
    let mut ner = OnnxNer::load_with(&dir, &opts()).expect("ner");
    for text in [
        "",
        "   ",
        "x",
        "Café NAÏVE résumé — Ünïcödé déjà-vu!!! 电话号码 my name is Zoë Müller",
        &"my name is Wanjiru and I live in Kisumu. ".repeat(60),
    ] {
        let spans = ner.spans(text).expect("runs");
        for s in &spans {
            assert!(text.get(s.start..s.end).is_some(), "{text:?} {s:?}");
        }
    }
}

/// ort vs candle: load time and one-thread latency of one ~12-word
/// sentence and a batch of 8. Run it in release for figures worth quoting.
#[test]
#[ignore]
fn timings() {
    let onnx_dir = root().join(ENCODER_DEFAULT_DIR);
    let candle_dir = root().join(embed::DEFAULT_DIR);
    if !have(
        "timings",
        &[
            onnx_dir.join("model.onnx"),
            candle_dir.join("model.safetensors"),
        ],
    ) {
        return;
    }
    let sentence = "Hello, my name is Amina and I am calling from Mombasa today.";
    let batch: Vec<&str> = real_texts()
        .into_iter()
        .filter(|t| t.split_whitespace().count() >= 5)
        .take(8)
        .map(|t| &*Box::leak(t.into_boxed_str()))
        .collect();
    assert_eq!(batch.len(), 8);
    fn time(label: &str, enc: &mut dyn SentenceEncoder, one: &str, batch: &[&str]) {
        enc.encode(&[one]).expect("warm");
        enc.encode(batch).expect("warm");
        let reps = 20;
        let mut ones = Vec::new();
        let mut batches = Vec::new();
        for _ in 0..reps {
            let t = Instant::now();
            enc.encode(&[one]).expect("one");
            ones.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            enc.encode(batch).expect("batch");
            batches.push(t.elapsed().as_secs_f64() * 1e3);
        }
        ones.sort_by(f64::total_cmp);
        batches.sort_by(f64::total_cmp);
        eprintln!(
            "{label:<7} one sentence: median {:.1} ms (min {:.1}); batch of 8: median {:.1} ms (min {:.1})",
            ones[reps / 2], ones[0], batches[reps / 2], batches[0]
        );
    }
    let t = Instant::now();
    let mut onnx = OnnxEncoder::load_with(
        &onnx_dir,
        &OnnxOptions {
            threads: 1,
            ..opts()
        },
    )
    .expect("onnx");
    eprintln!(
        "ort     load {:.0} ms (runtime library + session)",
        t.elapsed().as_secs_f64() * 1e3
    );
    let t = Instant::now();
    let mut candle = MiniLm::load_with(
        &candle_dir,
        MiniLmOptions {
            threads: 1,
            ..MiniLmOptions::default()
        },
    )
    .expect("candle");
    eprintln!("candle  load {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let t = Instant::now();
    let _again = OnnxEncoder::load_with(&onnx_dir, &opts()).expect("onnx");
    eprintln!(
        "ort     second session load {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    eprintln!(
        "sentence: {sentence:?} ({} words)",
        sentence.split_whitespace().count()
    );
    time("ort", &mut onnx, sentence, &batch);
    time("candle", &mut candle, sentence, &batch);
}
