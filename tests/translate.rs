//! The ONNX translation slot (`earshot::analysis::translate`) on the
//! Swahili → English demonstration model of `scripts/make-onnx-models`
//! (`models/onnx-mt-demo-sw-en`: a Marian-shaped encoder/decoder pair
//! that glosses word for word from FreeDict; see scripts/make_onnx_mt.py).
//! It runs through ONNX Runtime exactly as a user's OPUS-MT export does:
//! tokenizer.json, the encoder once, the decoder once per output token,
//! detokenisation. Also: the errors a wrong directory gives.

use earshot::analysis::translate::{OnnxTranslator, Translator, TranslatorInfo};
use std::path::PathBuf;

const DEMO: &str = "models/onnx-mt-demo-sw-en";

mod common;
use common::{onnx_opts as opts, root};

fn demo() -> OnnxTranslator {
    let dir = root().join(DEMO);
    assert!(
        dir.join("decoder_model.onnx").is_file()
            && earshot::analysis::onnx::runtime_path(opts().runtime.as_deref()).exists(),
        "run scripts/fetch-onnxruntime and scripts/make-onnx-models (scripts/setup does)"
    );
    OnnxTranslator::load_with(&dir, &opts()).expect("demo model loads")
}

fn tmp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("earshot-mt-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}

#[test]
fn demo_model_glosses_swahili_sentences() {
    let mut m = demo();
    assert_eq!(
        m.info(),
        &TranslatorInfo {
            model: "earshot-lexical-sw-en-demo".into(),
            source_languages: vec!["sw".into()],
            target_language: "en".into(),
        }
    );
    // Glosses from FreeDict's first sense of each word; punctuation and
    // words the dictionary lacks (names) are dropped.
    for (sw, en) in [
        ("Habari, mtoto yangu shule.", "news child my school"),
        (
            "Tafadhali, msaada! Daktari na hospitali.",
            "please help doctor and hospital",
        ),
        ("Asante sana", "thank you very"),
        ("Mama na baba ni rafiki", "mother and father am friend"),
        ("Amina", ""),
        ("", ""),
        ("   ", ""),
    ] {
        assert_eq!(m.translate(sw).expect("translates"), en, "{sw:?}");
    }
    // English words inside Swahili speech come through.
    assert_eq!(m.translate("hospitali school").unwrap(), "hospital school");
}

#[test]
fn long_and_odd_input_is_bounded_and_never_panics() {
    let mut m = demo();
    let long = "habari ".repeat(400);
    let out = m.translate(&long).expect("translates");
    // Truncated at max_length (512) source tokens, and the output capped
    // at 2 x source + 16 tokens: here every word glosses to one.
    let n = out.split_whitespace().count();
    assert!(n > 100 && n <= 2 * 512 + 16, "{n}");
    for odd in ["\u{0}\u{1}", "🙂🙂", "<pad> </s> <unk>", "\n\t", "ḩabari"] {
        let _ = m.translate(odd).expect("no error on odd text");
    }
}

#[test]
fn wrong_directories_are_clear_errors() {
    // No pair in the name and no translation.json.
    let d = tmp_dir("nopair");
    let e = OnnxTranslator::load_with(&d, &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("translation.json"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
    // The pair from an OPUS-MT name, but no files.
    let d = tmp_dir("opus-mt-sw-en");
    let e = OnnxTranslator::load_with(&d, &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("config.json not found"), "{e}");
    // A config without the ids decoding needs.
    std::fs::write(d.join("config.json"), r#"{"eos_token_id": 0}"#).unwrap();
    let e = OnnxTranslator::load_with(&d, &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("decoder_start_token_id"), "{e}");
    // A garbled tokenizer names its file.
    std::fs::write(
        d.join("config.json"),
        r#"{"eos_token_id": 0, "pad_token_id": 3}"#,
    )
    .unwrap();
    std::fs::write(d.join("tokenizer.json"), "{not json").unwrap();
    let e = OnnxTranslator::load_with(&d, &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    // The demo's tokenizer but its graphs swapped: the encoder's inputs are
    // checked.
    let demo = root().join(DEMO);
    std::fs::copy(demo.join("tokenizer.json"), d.join("tokenizer.json")).unwrap();
    std::fs::copy(
        demo.join("decoder_model.onnx"),
        d.join("encoder_model.onnx"),
    )
    .unwrap();
    std::fs::copy(
        demo.join("encoder_model.onnx"),
        d.join("decoder_model.onnx"),
    )
    .unwrap();
    let e = OnnxTranslator::load_with(&d, &opts())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("encoder_model.onnx") && e.contains("inputs"),
        "{e}"
    );
    // Not a graph at all.
    std::fs::write(d.join("encoder_model.onnx"), b"not a graph").unwrap();
    let e = OnnxTranslator::load_with(&d, &opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("encoder_model.onnx"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}
