//! Translation of final segments by a text model: the ONNX
//! sequence-to-sequence slot ([`OnnxTranslator`]), beside whisper's own
//! `translate` task (which the ASR runtime runs on the audio).
//!
//! The slot takes a Hugging Face Optimum export of a MarianMT (OPUS-MT)
//! model, without past key values (`optimum-cli export onnx --task
//! text2text-generation`, or the `onnx/` folder of a Transformers.js
//! repository):
//!
//! * `encoder_model.onnx`: `input_ids`, `attention_mask` (int64 `[1, src]`)
//!   → `last_hidden_state` (`[1, src, d]`);
//! * `decoder_model.onnx`: `input_ids` (`[1, tgt]`), `encoder_hidden_states`,
//!   `encoder_attention_mask` (optional) → `logits` (`[1, tgt, vocab]`);
//! * `tokenizer.json` (HF tokenizers; one vocabulary for both sides, as
//!   Marian's is);
//! * `config.json`: `decoder_start_token_id` (else `pad_token_id`),
//!   `eos_token_id`, `pad_token_id`, `max_length`;
//! * `translation.json` (optional): `{"model", "source_languages",
//!   "target_language"}`; without it the directory's name says the pair
//!   (`opus-mt-sw-en`: Swahili → English; `mul` as source: any language).
//!
//! Decoding is greedy: the encoder runs once, then the decoder once per
//! output token over the whole prefix (no key/value cache: O(n²) in the
//! output length, which for a segment of a call is a few dozen tokens),
//! never emitting the pad token, until `</s>` or `min(max_length, 2 × source
//! tokens + 16)` tokens.
//!
//! Which segments go to it: those whose detected language
//! ([`crate::asr::Segment::language`]) the model covers
//! ([`TranslatorInfo::covers`]); the runtime then skips whisper's translate
//! pass for those languages. `scripts/make-onnx-models` builds a Swahili →
//! English demonstration model in this layout (`models/onnx-mt-demo-sw-en`,
//! a word-for-word lexical graph; no trained sequence-to-sequence model is
//! on a package registry this project can reach; `scripts/make_onnx_mt.py`
//! says how it is built).

use super::AnalysisError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Turns a segment's text into the target language.
pub trait Translator: Send {
    fn name(&self) -> &str;
    fn translate(&mut self, text: &str) -> Result<String, AnalysisError>;
}

/// What a translation model translates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranslatorInfo {
    pub model: String,
    /// ISO 639-1 codes; empty: any language but the target.
    #[serde(default)]
    pub source_languages: Vec<String>,
    #[serde(default = "english")]
    pub target_language: String,
}

fn english() -> String {
    "en".into()
}

impl TranslatorInfo {
    /// `translation.json` in `dir`, else the pair in the directory's name
    /// (`...opus-mt-<src>-<tgt>`).
    pub fn read(dir: &Path) -> Result<TranslatorInfo, AnalysisError> {
        let p = dir.join("translation.json");
        if p.is_file() {
            let text = super::read_text(&p)?;
            let info: TranslatorInfo =
                serde_json::from_str(&text).map_err(|e| AnalysisError::config(p.display(), e))?;
            if info.target_language.is_empty() {
                return Err(AnalysisError::config(
                    p.display(),
                    "target_language is empty",
                ));
            }
            return Ok(info);
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::from_name(&name).ok_or_else(|| {
            AnalysisError::config(
                p.display(),
                "not found, and the directory's name does not say the language pair \
                 (opus-mt-<src>-<tgt>): write {\"model\": ..., \"source_languages\": [...], \
                 \"target_language\": ...}",
            )
        })
    }

    /// The pair in an OPUS-MT name: `opus-mt-sw-en`, `onnx-opus-mt-fr-en`,
    /// `opus-mt-sw-en-int8`.
    pub fn from_name(name: &str) -> Option<TranslatorInfo> {
        let rest = &name[name.find("opus-mt-")? + "opus-mt-".len()..];
        // Suffixes after the pair (`opus-mt-sw-en-onnx`) are allowed.
        let mut parts = rest.split('-');
        let (src, tgt) = (parts.next()?, parts.next()?);
        let ok = |l: &str| (2..=3).contains(&l.len()) && l.chars().all(|c| c.is_ascii_lowercase());
        if !ok(src) || !ok(tgt) {
            return None;
        }
        Some(TranslatorInfo {
            model: name.to_string(),
            source_languages: if src == "mul" {
                vec![]
            } else {
                vec![src.to_string()]
            },
            target_language: tgt.to_string(),
        })
    }

    /// Does the model translate speech detected as `language`?
    pub fn covers(&self, language: Option<&str>) -> bool {
        match language {
            None => false,
            Some(l) => {
                l != self.target_language
                    && (self.source_languages.is_empty()
                        || self.source_languages.iter().any(|s| s == l))
            }
        }
    }
}

/// An ONNX sequence-to-sequence translation model (see the module docs).
pub struct OnnxTranslator {
    inner: imp::Mt,
    info: TranslatorInfo,
}

impl std::fmt::Debug for OnnxTranslator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxTranslator")
            .field("info", &self.info)
            .finish()
    }
}

impl OnnxTranslator {
    pub fn load(dir: &Path) -> Result<OnnxTranslator, AnalysisError> {
        Self::load_with(dir, &super::onnx::OnnxOptions::default())
    }

    pub fn load_with(
        dir: &Path,
        opts: &super::onnx::OnnxOptions,
    ) -> Result<OnnxTranslator, AnalysisError> {
        let info = TranslatorInfo::read(dir)?;
        Ok(OnnxTranslator {
            inner: imp::load(dir, &info.model, opts)?,
            info,
        })
    }

    pub fn info(&self) -> &TranslatorInfo {
        &self.info
    }
}

impl Translator for OnnxTranslator {
    fn name(&self) -> &str {
        &self.info.model
    }

    fn translate(&mut self, text: &str) -> Result<String, AnalysisError> {
        if text.trim().is_empty() {
            return Ok(String::new());
        }
        #[cfg(feature = "onnx")]
        return self.inner.translate(text);
        #[cfg(not(feature = "onnx"))]
        match self.inner {}
    }
}

/// `config.json` of a Marian export (the ids decoding needs).
#[cfg(feature = "onnx")]
#[derive(Debug, Deserialize)]
struct SeqConfig {
    decoder_start_token_id: Option<i64>,
    eos_token_id: i64,
    pad_token_id: Option<i64>,
    max_length: Option<usize>,
}

#[cfg(feature = "onnx")]
mod imp {
    use super::*;
    use crate::analysis::onnx::imp::{session, tokenizer};
    use ort::session::Session;
    use ort::value::Tensor;

    pub struct Mt {
        encoder: Session,
        decoder: Session,
        decoder_mask: bool,
        tokenizer: tokenizers::Tokenizer,
        start: i64,
        eos: i64,
        pad: Option<i64>,
        max_length: usize,
        name: String,
    }

    fn inputs_of(s: &Session) -> Vec<String> {
        s.inputs().iter().map(|i| i.name().to_string()).collect()
    }

    pub(super) fn load(
        dir: &Path,
        name: &str,
        opts: &crate::analysis::onnx::OnnxOptions,
    ) -> Result<Mt, AnalysisError> {
        let file = |f: &str| {
            let p = dir.join(f);
            if p.is_file() {
                Ok(p)
            } else {
                Err(AnalysisError::model(
                    name,
                    format!(
                        "{} not found (an Optimum export of a Marian model without past: \
                         encoder_model.onnx, decoder_model.onnx, tokenizer.json, config.json)",
                        p.display()
                    ),
                ))
            }
        };
        let cfg_path = file("config.json")?;
        let cfg: SeqConfig = serde_json::from_str(&super::super::read_text(&cfg_path)?)
            .map_err(|e| AnalysisError::config(cfg_path.display(), e))?;
        let start = cfg
            .decoder_start_token_id
            .or(cfg.pad_token_id)
            .ok_or_else(|| {
                AnalysisError::config(
                    cfg_path.display(),
                    "neither decoder_start_token_id nor pad_token_id",
                )
            })?;
        let max_length = cfg.max_length.unwrap_or(512).clamp(2, 4096);
        let tokenizer = tokenizer(&file("tokenizer.json")?, max_length)?;
        let enc_path = file("encoder_model.onnx")?;
        let dec_path = file("decoder_model.onnx")?;
        let encoder = session(name, &enc_path, opts)?;
        let decoder = session(name, &dec_path, opts)?;
        let enc_in = inputs_of(&encoder);
        if enc_in
            .iter()
            .any(|i| i != "input_ids" && i != "attention_mask")
            || !enc_in.iter().any(|i| i == "input_ids")
        {
            return Err(AnalysisError::model(
                name,
                format!(
                    "{}: inputs {enc_in:?}, expected input_ids and attention_mask",
                    enc_path.display()
                ),
            ));
        }
        if !encoder
            .outputs()
            .iter()
            .any(|o| o.name() == "last_hidden_state")
        {
            return Err(AnalysisError::model(
                name,
                format!("{}: no output last_hidden_state", enc_path.display()),
            ));
        }
        let dec_in = inputs_of(&decoder);
        for need in ["input_ids", "encoder_hidden_states"] {
            if !dec_in.iter().any(|i| i == need) {
                return Err(AnalysisError::model(
                    name,
                    format!(
                        "{}: no input {need} (inputs {dec_in:?})",
                        dec_path.display()
                    ),
                ));
            }
        }
        if let Some(other) = dec_in.iter().find(|i| {
            !matches!(
                i.as_str(),
                "input_ids" | "encoder_hidden_states" | "encoder_attention_mask"
            )
        }) {
            return Err(AnalysisError::model(
                name,
                format!(
                    "{}: input {other:?} is not supported: export the decoder without past \
                     key values (decoder_model.onnx, not decoder_with_past / merged)",
                    dec_path.display()
                ),
            ));
        }
        if !decoder.outputs().iter().any(|o| o.name() == "logits") {
            return Err(AnalysisError::model(
                name,
                format!("{}: no output logits", dec_path.display()),
            ));
        }
        let decoder_mask = dec_in.iter().any(|i| i == "encoder_attention_mask");
        let enc_mask = enc_in.iter().any(|i| i == "attention_mask");
        if !enc_mask {
            return Err(AnalysisError::model(
                name,
                format!("{}: no input attention_mask", enc_path.display()),
            ));
        }
        Ok(Mt {
            encoder,
            decoder,
            decoder_mask,
            tokenizer,
            start,
            eos: cfg.eos_token_id,
            pad: cfg.pad_token_id,
            max_length,
            name: name.to_string(),
        })
    }

    impl Mt {
        pub(super) fn translate(&mut self, text: &str) -> Result<String, AnalysisError> {
            let name = self.name.clone();
            let err = move |e: ort::Error| AnalysisError::model(&name, e);
            let enc = self
                .tokenizer
                .encode(text, true)
                .map_err(|e| AnalysisError::model(&self.name, e))?;
            let src: Vec<i64> = enc.get_ids().iter().map(|&i| i64::from(i)).collect();
            if src.is_empty() {
                return Ok(String::new());
            }
            let n = src.len();
            let s = n as i64;
            let mask = Tensor::from_array((vec![1, s], vec![1i64; n])).map_err(&err)?;
            let hidden = {
                let out = self
                    .encoder
                    .run(ort::inputs![
                        "input_ids" => Tensor::from_array((vec![1, s], src)).map_err(&err)?,
                        "attention_mask" => &mask,
                    ])
                    .map_err(&err)?;
                let (shape, data) = out["last_hidden_state"]
                    .try_extract_tensor::<f32>()
                    .map_err(&err)?;
                if shape.len() != 3 || shape[0] != 1 || shape[1] != s {
                    return Err(AnalysisError::model(
                        &self.name,
                        format!(
                            "encoder output shape {:?}, expected [1, {s}, d]",
                            &shape[..]
                        ),
                    ));
                }
                // Built once: every decoder step reads the same states.
                Tensor::from_array((shape.to_vec(), data.to_vec())).map_err(&err)?
            };
            let limit = self.max_length.min(2 * n + 16);
            let mut out: Vec<i64> = vec![self.start];
            while out.len() <= limit {
                let t = out.len() as i64;
                let mut inputs = ort::inputs![
                    "input_ids" => Tensor::from_array((vec![1, t], out.clone())).map_err(&err)?,
                    "encoder_hidden_states" => &hidden,
                ];
                if self.decoder_mask {
                    inputs.push(("encoder_attention_mask".into(), (&mask).into()));
                }
                let res = self.decoder.run(inputs).map_err(&err)?;
                let (shape, logits) = res["logits"].try_extract_tensor::<f32>().map_err(&err)?;
                if shape.len() != 3 || shape[0] != 1 || shape[1] != t || shape[2] <= 0 {
                    return Err(AnalysisError::model(
                        &self.name,
                        format!(
                            "decoder logits shape {:?}, expected [1, {t}, vocab]",
                            &shape[..]
                        ),
                    ));
                }
                let v = shape[2] as usize;
                let last = &logits[(t as usize - 1) * v..t as usize * v];
                let next = last
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| Some(*i as i64) != self.pad)
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i as i64)
                    .unwrap_or(self.eos);
                if next == self.eos {
                    break;
                }
                out.push(next);
            }
            let ids: Vec<u32> = out[1..]
                .iter()
                .filter_map(|&i| u32::try_from(i).ok())
                .collect();
            let text = self
                .tokenizer
                .decode(&ids, true)
                .map_err(|e| AnalysisError::model(&self.name, e))?;
            Ok(text.trim().to_string())
        }
    }
}

#[cfg(not(feature = "onnx"))]
mod imp {
    use super::*;

    #[derive(Debug)]
    pub enum Mt {}

    pub(super) fn load(
        _dir: &Path,
        name: &str,
        _opts: &crate::analysis::onnx::OnnxOptions,
    ) -> Result<Mt, AnalysisError> {
        Err(AnalysisError::model(
            name,
            "ONNX models are off in this build (cargo feature `onnx` of the earshot crate)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_from_opus_mt_names() {
        let i = TranslatorInfo::from_name("opus-mt-sw-en").expect("pair");
        assert_eq!(i.source_languages, vec!["sw".to_string()]);
        assert_eq!(i.target_language, "en");
        let i = TranslatorInfo::from_name("onnx-opus-mt-mul-en").expect("pair");
        assert!(i.source_languages.is_empty());
        assert!(TranslatorInfo::from_name("minilm-onnx").is_none());
        assert!(TranslatorInfo::from_name("opus-mt-EN-x").is_none());
        assert!(TranslatorInfo::from_name("opus-mt-").is_none());
    }

    #[test]
    fn covers_only_its_sources_and_never_the_target() {
        let sw = TranslatorInfo::from_name("opus-mt-sw-en").expect("pair");
        assert!(sw.covers(Some("sw")));
        assert!(!sw.covers(Some("fr")));
        assert!(!sw.covers(Some("en")));
        assert!(!sw.covers(None));
        let any = TranslatorInfo::from_name("opus-mt-mul-en").expect("pair");
        assert!(any.covers(Some("fr")) && any.covers(Some("sw")));
        assert!(!any.covers(Some("en")));
    }

    #[test]
    fn missing_pair_is_a_config_error() {
        let dir = std::env::temp_dir().join(format!("earshot-mt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let e = TranslatorInfo::read(&dir).expect_err("no pair").to_string();
        assert!(e.contains("translation.json"), "{e}");
        std::fs::write(dir.join("translation.json"), "{\"model\": 1}").expect("write");
        assert!(TranslatorInfo::read(&dir).is_err());
        std::fs::write(
            dir.join("translation.json"),
            r#"{"model": "m", "source_languages": ["sw"]}"#,
        )
        .expect("write");
        let i = TranslatorInfo::read(&dir).expect("info");
        assert_eq!((i.model.as_str(), i.target_language.as_str()), ("m", "en"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
