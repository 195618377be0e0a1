//! ONNX model slots, run by ONNX Runtime through the `ort` crate (cargo
//! feature `onnx`):
//!
//! * [`OnnxNer`]: a token-classification model (BIO tags) as an
//!   [`EntityExtractor`]: `model.onnx`, `tokenizer.json` (HF tokenizers) and
//!   `labels.json` (or a Hugging Face `config.json`) with `id2label`.
//! * [`OnnxEncoder`]: a BERT sentence encoder (all-MiniLM-L6-v2 exported to
//!   ONNX) as a [`SentenceEncoder`], mean-pooled and L2-normalised like
//!   [`super::embed::MiniLm`], so the two runtimes can be compared.
//!
//! The models take `input_ids` and `attention_mask` (int64, `[batch,
//! seq]`; `token_type_ids` too if the graph has it, all zero) and give one
//! float tensor `[batch, seq, n]`: the label logits (`logits`) or the last
//! hidden state (`last_hidden_state`); the first output is used when no
//! output has that name. `scripts/make-onnx-models` builds both from
//! registry material (`models/minilm-onnx/`, `models/onnx-ner-demo/`).
//!
//! The runtime is not linked: `libonnxruntime.so` is loaded when the first
//! model is, from `ORT_DYLIB_PATH` if set, else [`OnnxOptions::runtime`],
//! else [`DEFAULT_RUNTIME`] (`scripts/fetch-onnxruntime` puts ONNX Runtime
//! 1.31 there, the C API version this build asks for). One runtime per
//! process: the first successful load wins and later loads reuse it.
//!
//! Threads: every session runs with [`OnnxOptions::threads`] intra-op
//! threads (default 1) and one inter-op thread, so a model occupies the
//! cores it is given and no more (the ASR threads need the rest).
//!
//! Measured (`cargo test -p earshot --release --test onnx -- --ignored
//! --nocapture timings`; shared 2-core AMD EPYC VM, idle, one thread each,
//! user time = wall time): all-MiniLM-L6-v2 on ONNX Runtime 1.31 vs
//! [`super::embed::MiniLm`] on candle gives the same vectors (worst cosine
//! 0.9999994 over the 49 segments of the two test calls) and
//!
//! | | ort | candle |
//! |---|---|---|
//! | load (first: runtime library + session) | 190-240 ms (a second session ~150 ms) | 120-150 ms |
//! | one 12-word sentence (16 tokens) | 6.2 ms | 14.8 ms |
//! | batch of 8 real segments | 32.7 ms | 49 ms |
//! | same in a test (debug) build | 7.0 / 35 ms | 34.7 / 108 ms |
//!
//! ort is 2.4x faster on one sentence and 1.5x on a batch, and does not
//! care about the Rust profile (the runtime is a prebuilt, optimised C++
//! library); its cost is deployment: a 29 MB `libonnxruntime.so` that must
//! be fetched (x86_64 Linux wheel pinned) and match the C API version.
//! Build cost of the feature: `ort`, `ort-sys` and `libloading` compile in
//! ~7 s on a cold target (tokenizers is shared with `embeddings`), so it is
//! on by default.
//!
//! Without the feature the types keep their API but `load` returns
//! [`AnalysisError::Model`] saying the feature is off.

use super::entities::{Entity, EntityExtractor};
use super::{AnalysisError, SentenceEncoder};
use crate::asr::Segment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where `scripts/fetch-onnxruntime` puts the runtime, from the repository root.
pub const DEFAULT_RUNTIME: &str = "models/onnxruntime/libonnxruntime.so";
/// Where `scripts/make-onnx-models` puts the demo NER model.
pub const NER_DEFAULT_DIR: &str = "models/onnx-ner-demo";
/// Where `scripts/make-onnx-models` puts all-MiniLM-L6-v2 as ONNX.
pub const ENCODER_DEFAULT_DIR: &str = "models/minilm-onnx";
/// [`SentenceEncoder::name`] of an [`OnnxEncoder`].
pub const ENCODER_NAME: &str = "all-MiniLM-L6-v2 (onnx)";

/// How the ONNX models run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OnnxOptions {
    /// `libonnxruntime.so` to load when `ORT_DYLIB_PATH` is not set; None:
    /// [`DEFAULT_RUNTIME`] (relative to the working directory).
    pub runtime: Option<PathBuf>,
    /// Intra-op threads of each session; 0 is taken as 1.
    pub threads: usize,
    /// Texts per forward pass for [`OnnxEncoder`] (padded to the longest);
    /// 0 is taken as 1.
    pub batch_size: usize,
}

impl Default for OnnxOptions {
    fn default() -> Self {
        OnnxOptions {
            runtime: None,
            threads: 1,
            batch_size: 16,
        }
    }
}

/// The runtime library a load would use: `ORT_DYLIB_PATH` if set and not
/// empty, else `configured`, else [`DEFAULT_RUNTIME`].
pub fn runtime_path(configured: Option<&Path>) -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => configured
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_RUNTIME)),
    }
}

/// Our label for a model's entity type (the part after `B-`/`I-`):
/// PER → PERSON, LOC/GPE → LOCATION, ORG → ORGANIZATION; anything else
/// (MISC, ...) kept, upper-cased.
pub fn map_label(kind: &str) -> String {
    use super::entities::label;
    match kind.to_ascii_uppercase().as_str() {
        "PER" | "PERSON" => label::PERSON.to_string(),
        "LOC" | "LOCATION" | "GPE" => label::LOCATION.to_string(),
        "ORG" | "ORGANIZATION" | "ORGANISATION" => label::ORGANIZATION.to_string(),
        other => other.to_string(),
    }
}

/// One BIO tag of a model's label set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tag {
    Outside,
    Begin(String),
    Inside(String),
}

impl Tag {
    /// "O", "B-PER", "I-LOC" (also "B_PER"); the type is mapped with
    /// [`map_label`]. None for anything else.
    pub fn parse(s: &str) -> Option<Tag> {
        if s == "O" {
            return Some(Tag::Outside);
        }
        let (prefix, kind) = (s.get(..2)?, s.get(2..)?);
        if kind.is_empty() {
            return None;
        }
        match prefix {
            "B-" | "B_" => Some(Tag::Begin(map_label(kind))),
            "I-" | "I_" => Some(Tag::Inside(map_label(kind))),
            _ => None,
        }
    }

    fn kind(&self) -> Option<&str> {
        match self {
            Tag::Outside => None,
            Tag::Begin(k) | Tag::Inside(k) => Some(k),
        }
    }
}

/// `labels.json` (or a Hugging Face `config.json`): the model's labels.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(not(feature = "onnx"), allow(dead_code))]
struct LabelsFile {
    id2label: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    max_tokens: Option<usize>,
}

/// The tags of a labels file, by id; errors name the file.
#[cfg_attr(not(feature = "onnx"), allow(dead_code))]
fn parse_labels(path: &Path, f: &LabelsFile) -> Result<Vec<Tag>, AnalysisError> {
    let bad = |msg: String| Err(AnalysisError::config(path.display(), msg));
    let mut by_id = Vec::new();
    for (k, v) in &f.id2label {
        let Ok(id) = k.parse::<usize>() else {
            return bad(format!("id2label: key {k:?} is not a number"));
        };
        let Some(tag) = Tag::parse(v) else {
            return bad(format!(
                "id2label: {v:?} is not a BIO tag (\"O\", \"B-<type>\", \"I-<type>\")"
            ));
        };
        by_id.push((id, tag));
    }
    by_id.sort_by_key(|(id, _)| *id);
    if by_id.is_empty() {
        return bad("id2label: empty".into());
    }
    for (i, (id, _)) in by_id.iter().enumerate() {
        if *id != i {
            return bad(format!(
                "id2label: ids must be 0..{}, {i} missing",
                by_id.len()
            ));
        }
    }
    if !by_id.iter().any(|(_, t)| *t == Tag::Outside) {
        return bad("id2label: no \"O\" label".into());
    }
    Ok(by_id.into_iter().map(|(_, t)| t).collect())
}

/// Seconds from the call start for a mention starting at byte `start` of
/// the segment: the time of the recogniser's word holding its first letter
/// or digit (letters and digits counted through both), else the segment's
/// start.
#[cfg_attr(not(feature = "onnx"), allow(dead_code))]
fn time_at(seg: &Segment, start: usize) -> f64 {
    let before = seg
        .text
        .get(..start)
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_alphanumeric())
        .count();
    let mut acc = 0usize;
    for w in &seg.words {
        let n = w.word.chars().filter(|c| c.is_alphanumeric()).count();
        if n > 0 && before < acc + n && w.start.is_finite() {
            return w.start;
        }
        acc += n;
    }
    seg.start_time
}

/// One decoded mention: byte span, our label, mean probability.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub label: String,
    pub confidence: f64,
}

/// Decode per-token BIO predictions into spans. `tokens` are the text's
/// word pieces in order, special tokens left out: (word index, byte start,
/// byte end, predicted tag, probability of the predicted type). A word
/// takes the tag of its first piece; its other pieces extend whatever that
/// piece decided. `I-X` after a mention of X continues it; `I-X` anywhere
/// else starts a mention (lenient, as most decoders). Confidence: the mean
/// over the mention's pieces of P(B-X) + P(I-X).
pub fn decode_bio(tokens: &[(u32, usize, usize, Tag, f64)]) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    let mut cur: Option<(Span, f64, usize)> = None; // span, prob sum, pieces
    let mut last_word: Option<u32> = None;
    let mut word_in_entity = false;
    let close = |cur: &mut Option<(Span, f64, usize)>, out: &mut Vec<Span>| {
        if let Some((mut s, sum, n)) = cur.take() {
            s.confidence = sum / n.max(1) as f64;
            out.push(s);
        }
    };
    for (word, start, end, tag, p) in tokens {
        let continues_word = last_word == Some(*word);
        last_word = Some(*word);
        if continues_word {
            if word_in_entity {
                if let Some((s, sum, n)) = cur.as_mut() {
                    s.end = (*end).max(s.end);
                    *sum += p;
                    *n += 1;
                }
            }
            continue;
        }
        match tag {
            Tag::Outside => {
                close(&mut cur, &mut out);
                word_in_entity = false;
            }
            Tag::Inside(k) if cur.as_ref().is_some_and(|(s, _, _)| s.label == *k) => {
                let (s, sum, n) = cur.as_mut().expect("checked");
                s.end = (*end).max(s.end);
                *sum += p;
                *n += 1;
                word_in_entity = true;
            }
            Tag::Begin(_) | Tag::Inside(_) => {
                close(&mut cur, &mut out);
                let label = tag.kind().unwrap_or_default().to_string();
                cur = Some((
                    Span {
                        start: *start,
                        end: *end,
                        label,
                        confidence: 0.0,
                    },
                    *p,
                    1,
                ));
                word_in_entity = true;
            }
        }
    }
    close(&mut cur, &mut out);
    out
}

#[cfg(feature = "onnx")]
pub(crate) mod imp {
    use super::*;
    use ort::environment::Environment;
    use ort::session::builder::GraphOptimizationLevel;
    use ort::session::Session;
    use ort::value::Tensor;
    use std::sync::Mutex;

    /// The process's one ONNX Runtime environment and the library it came from.
    static ENV: Mutex<Option<(Environment, PathBuf)>> = Mutex::new(None);

    /// Load the runtime library (once per process) and give the environment.
    pub(super) fn environment(
        model: &str,
        configured: Option<&Path>,
    ) -> Result<Environment, AnalysisError> {
        let mut g = ENV.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((env, _)) = g.as_ref() {
            return Ok(env.clone());
        }
        let lib = runtime_path(configured);
        if !lib.exists() {
            return Err(AnalysisError::model(
                model,
                format!(
                    "ONNX Runtime library {} not found (run scripts/fetch-onnxruntime, or set ORT_DYLIB_PATH)",
                    lib.display()
                ),
            ));
        }
        let env = ort::init_from(&lib)
            .map_err(|e| {
                AnalysisError::model(
                    model,
                    format!("loading ONNX Runtime {}: {e}", lib.display()),
                )
            })?
            .with_name("earshot")
            .with_telemetry(false)
            .build()
            .map_err(|e| {
                AnalysisError::model(model, format!("ONNX Runtime {}: {e}", lib.display()))
            })?;
        *g = Some((env.clone(), lib));
        Ok(env)
    }

    /// A session over one graph file, with the configured threads.
    pub(crate) fn session(
        name: &str,
        path: &Path,
        opts: &OnnxOptions,
    ) -> Result<Session, AnalysisError> {
        let env = environment(name, opts.runtime.as_deref())?;
        let err = |e: String| AnalysisError::model(name, format!("{}: {e}", path.display()));
        Session::builder(&env)
            .map_err(|e| err(e.to_string()))?
            .with_optimization_level(GraphOptimizationLevel::Level3)
            .map_err(|e| err(e.to_string()))?
            .with_intra_threads(opts.threads.max(1))
            .map_err(|e| err(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| err(e.to_string()))?
            .commit_from_file(path)
            .map_err(|e| err(e.to_string()))
    }

    /// The tokenizer of a model directory, cut at `max_tokens`, unpadded.
    pub(crate) fn tokenizer(
        path: &Path,
        max_tokens: usize,
    ) -> Result<tokenizers::Tokenizer, AnalysisError> {
        let text = super::super::read_text(path)?;
        let mut tok: tokenizers::Tokenizer = text
            .parse()
            .map_err(|e| AnalysisError::config(path.display(), e))?;
        tok.with_truncation(Some(tokenizers::TruncationParams {
            max_length: max_tokens,
            ..Default::default()
        }))
        .map_err(|e| AnalysisError::config(path.display(), e))?;
        tok.with_padding(None);
        Ok(tok)
    }

    /// A session over a BERT-style graph: `[batch, seq]` ids and mask in,
    /// one `[batch, seq, n]` float tensor out.
    pub(super) struct Runner {
        session: Session,
        token_types: bool,
        output: String,
        /// Last dimension of the output when the graph states it.
        pub(super) width: Option<usize>,
        name: String,
    }

    impl Runner {
        pub(super) fn load(
            name: &str,
            path: &Path,
            opts: &OnnxOptions,
            want_output: &str,
        ) -> Result<Runner, AnalysisError> {
            if !path.is_file() {
                return Err(AnalysisError::model(
                    name,
                    format!(
                        "{} not found (run scripts/make-onnx-models)",
                        path.display()
                    ),
                ));
            }
            let err = |e: String| AnalysisError::model(name, format!("{}: {e}", path.display()));
            let session = session(name, path, opts)?;
            let inputs: Vec<String> = session
                .inputs()
                .iter()
                .map(|i| i.name().to_string())
                .collect();
            for need in ["input_ids", "attention_mask"] {
                if !inputs.iter().any(|i| i == need) {
                    return Err(err(format!(
                        "the graph has no input {need:?} (inputs: {inputs:?})"
                    )));
                }
            }
            if let Some(other) = inputs.iter().find(|i| {
                !matches!(
                    i.as_str(),
                    "input_ids" | "attention_mask" | "token_type_ids"
                )
            }) {
                return Err(err(format!("unknown graph input {other:?}")));
            }
            let outlets = session.outputs();
            let out = outlets
                .iter()
                .find(|o| o.name() == want_output)
                .or_else(|| outlets.first())
                .ok_or_else(|| err("the graph has no output".into()))?;
            let shape = out.dtype().tensor_shape();
            if let Some(s) = shape {
                if s.len() != 3 {
                    return Err(err(format!(
                        "output {:?} has rank {}, expected [batch, seq, n]",
                        out.name(),
                        s.len()
                    )));
                }
            }
            let width = shape.and_then(|s| usize::try_from(s[2]).ok());
            let output = out.name().to_string();
            let token_types = inputs.iter().any(|i| i == "token_type_ids");
            Ok(Runner {
                session,
                token_types,
                output,
                width,
                name: name.to_string(),
            })
        }

        /// One pass over texts already tokenised (padded here with id 0,
        /// mask 0). Returns the output, row-major `[b, l, n]`, and `n`.
        pub(super) fn run(&mut self, batch: &[&[u32]]) -> Result<(Vec<f32>, usize), AnalysisError> {
            let b = batch.len();
            let l = batch.iter().map(|t| t.len()).max().unwrap_or(0);
            if b == 0 || l == 0 {
                return Ok((Vec::new(), self.width.unwrap_or(0)));
            }
            let mut ids = vec![0i64; b * l];
            let mut mask = vec![0i64; b * l];
            for (row, toks) in batch.iter().enumerate() {
                for (j, &t) in toks.iter().enumerate() {
                    ids[row * l + j] = i64::from(t);
                    mask[row * l + j] = 1;
                }
            }
            let name = self.name.clone();
            let err = move |e: ort::Error| AnalysisError::model(&name, e);
            let shape = vec![b as i64, l as i64];
            let mut inputs = ort::inputs![
                "input_ids" => Tensor::from_array((shape.clone(), ids)).map_err(&err)?,
                "attention_mask" => Tensor::from_array((shape.clone(), mask)).map_err(&err)?,
            ];
            if self.token_types {
                inputs.push((
                    "token_type_ids".into(),
                    Tensor::from_array((shape, vec![0i64; b * l]))
                        .map_err(&err)?
                        .into(),
                ));
            }
            let outputs = self.session.run(inputs).map_err(&err)?;
            let (s, data) = outputs[self.output.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(&err)?;
            if s.len() != 3 || s[0] != b as i64 || s[1] != l as i64 || s[2] <= 0 {
                return Err(AnalysisError::model(
                    &self.name,
                    format!("output shape {:?}, expected [{b}, {l}, n]", &s[..]),
                ));
            }
            Ok((data.to_vec(), s[2] as usize))
        }
    }

    /// The model's token-classification slot; see [`super::OnnxNer`].
    pub struct Ner {
        pub(super) runner: Runner,
        pub(super) tokenizer: tokenizers::Tokenizer,
        pub(super) tags: Vec<Tag>,
        pub(super) name: String,
        pub(super) source: String,
    }

    pub(super) fn load_ner(dir: &Path, opts: &OnnxOptions) -> Result<Ner, AnalysisError> {
        let fallback = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "onnx-ner".into());
        let model = dir.join("model.onnx");
        if !model.is_file() {
            return Err(AnalysisError::model(
                &fallback,
                format!(
                    "{} not found (run scripts/make-onnx-models)",
                    model.display()
                ),
            ));
        }
        let labels_path = ["labels.json", "config.json"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                AnalysisError::model(
                    &fallback,
                    format!(
                        "{} not found (nor config.json): the model's id2label",
                        dir.join("labels.json").display()
                    ),
                )
            })?;
        let text = super::super::read_text(&labels_path)?;
        let lf: LabelsFile = serde_json::from_str(&text)
            .map_err(|e| AnalysisError::config(labels_path.display(), e))?;
        let tags = parse_labels(&labels_path, &lf)?;
        let name = lf.model.clone().unwrap_or(fallback);
        let tokenizer = tokenizer(
            &dir.join("tokenizer.json"),
            lf.max_tokens.unwrap_or(256).max(2),
        )?;
        let runner = Runner::load(&name, &model, opts, "logits")?;
        if let Some(w) = runner.width {
            if w != tags.len() {
                return Err(AnalysisError::config(
                    labels_path.display(),
                    format!(
                        "{} labels but the model gives {w} logits per token",
                        tags.len()
                    ),
                ));
            }
        }
        Ok(Ner {
            runner,
            tokenizer,
            tags,
            source: format!("onnx:{name}"),
            name,
        })
    }

    impl Ner {
        pub(super) fn spans(&mut self, text: &str) -> Result<Vec<Span>, AnalysisError> {
            if text.trim().is_empty() {
                return Ok(Vec::new());
            }
            let enc = self
                .tokenizer
                .encode(text, true)
                .map_err(|e| AnalysisError::model(&self.name, e))?;
            let ids = enc.get_ids();
            let (logits, n) = self.runner.run(&[ids])?;
            if n != self.tags.len() {
                return Err(AnalysisError::model(
                    &self.name,
                    format!("{n} logits per token, {} labels", self.tags.len()),
                ));
            }
            let special = enc.get_special_tokens_mask();
            let words = enc.get_word_ids();
            let offsets = enc.get_offsets();
            let mut toks = Vec::with_capacity(ids.len());
            for i in 0..ids.len() {
                let (start, end) = offsets[i];
                if special.get(i) == Some(&1) || start >= end || end > text.len() {
                    continue;
                }
                if !text.is_char_boundary(start) || !text.is_char_boundary(end) {
                    continue;
                }
                let row = &logits[i * n..(i + 1) * n];
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let exp: Vec<f64> = row.iter().map(|&x| f64::from(x - max).exp()).collect();
                let total: f64 = exp.iter().sum();
                let best = (0..n)
                    .max_by(|&a, &b| exp[a].total_cmp(&exp[b]))
                    .unwrap_or(0);
                let tag = self.tags[best].clone();
                // P(B-X) + P(I-X) for the predicted type X.
                let p = match tag.kind() {
                    None => exp[best] / total,
                    Some(k) => {
                        self.tags
                            .iter()
                            .zip(&exp)
                            .filter(|(t, _)| t.kind() == Some(k))
                            .map(|(_, e)| e)
                            .sum::<f64>()
                            / total
                    }
                };
                let word = words[i].unwrap_or(u32::MAX - i as u32);
                toks.push((word, start, end, tag, p));
            }
            Ok(decode_bio(&toks))
        }
    }

    /// The sentence encoder; see [`super::OnnxEncoder`].
    pub struct Encoder {
        pub(super) runner: Runner,
        pub(super) tokenizer: tokenizers::Tokenizer,
        pub(super) dim: usize,
        pub(super) batch_size: usize,
    }

    #[derive(Deserialize)]
    struct SentenceBertConfig {
        max_seq_length: usize,
    }

    pub(super) fn load_encoder(dir: &Path, opts: &OnnxOptions) -> Result<Encoder, AnalysisError> {
        let model = dir.join("model.onnx");
        if !model.is_file() {
            return Err(AnalysisError::model(
                ENCODER_NAME,
                format!(
                    "{} not found (run scripts/make-onnx-models)",
                    model.display()
                ),
            ));
        }
        let sb_path = dir.join("sentence_bert_config.json");
        let max_tokens = if sb_path.is_file() {
            let text = super::super::read_text(&sb_path)?;
            let sb: SentenceBertConfig = serde_json::from_str(&text)
                .map_err(|e| AnalysisError::config(sb_path.display(), e))?;
            if sb.max_seq_length < 2 {
                return Err(AnalysisError::config(
                    sb_path.display(),
                    "max_seq_length: must be at least 2 ([CLS] and [SEP])",
                ));
            }
            sb.max_seq_length
        } else {
            256
        };
        let tokenizer = tokenizer(&dir.join("tokenizer.json"), max_tokens)?;
        let mut runner = Runner::load(ENCODER_NAME, &model, opts, "last_hidden_state")?;
        let dim = match runner.width {
            Some(d) => d,
            None => {
                // Dynamic width: ask the model once.
                let enc = tokenizer
                    .encode("", true)
                    .map_err(|e| AnalysisError::model(ENCODER_NAME, e))?;
                runner.run(&[enc.get_ids()])?.1
            }
        };
        Ok(Encoder {
            runner,
            tokenizer,
            dim,
            batch_size: opts.batch_size.max(1),
        })
    }

    impl Encoder {
        pub(super) fn encode(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, AnalysisError> {
            let tokens = texts
                .iter()
                .map(|t| {
                    self.tokenizer
                        .encode(*t, true)
                        .map(|e| e.get_ids().to_vec())
                        .map_err(|e| AnalysisError::model(ENCODER_NAME, e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            // Longest first, so each chunk pads to texts of similar length.
            let mut order: Vec<usize> = (0..texts.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].len()));
            let mut out = vec![Vec::new(); texts.len()];
            for chunk in order.chunks(self.batch_size) {
                let batch: Vec<&[u32]> = chunk.iter().map(|&i| tokens[i].as_slice()).collect();
                let l = batch.iter().map(|t| t.len()).max().unwrap_or(0);
                let (hidden, d) = self.runner.run(&batch)?;
                if d != self.dim {
                    return Err(AnalysisError::model(
                        ENCODER_NAME,
                        format!("hidden size {d}, expected {}", self.dim),
                    ));
                }
                for (row, &i) in chunk.iter().enumerate() {
                    // Mean over the real tokens, then L2 (norm clamped at 1e-12).
                    let n = batch[row].len();
                    let mut v = vec![0f32; d];
                    for j in 0..n {
                        let h = &hidden[(row * l + j) * d..(row * l + j + 1) * d];
                        for (a, x) in v.iter_mut().zip(h) {
                            *a += x;
                        }
                    }
                    let count = n.max(1) as f32;
                    v.iter_mut().for_each(|a| *a /= count);
                    let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt().max(1e-12);
                    v.iter_mut().for_each(|a| *a /= norm);
                    out[i] = v;
                }
            }
            Ok(out)
        }
    }
}

#[cfg(not(feature = "onnx"))]
mod imp {
    use super::*;

    #[derive(Debug)]
    pub enum Never {}
    pub type Ner = Never;
    pub type Encoder = Never;

    fn off(name: &str) -> AnalysisError {
        AnalysisError::model(
            name,
            "ONNX models are off in this build (cargo feature `onnx` of the earshot crate)",
        )
    }

    pub(super) fn load_ner(_dir: &Path, _opts: &OnnxOptions) -> Result<Ner, AnalysisError> {
        Err(off("onnx-ner"))
    }

    pub(super) fn load_encoder(_dir: &Path, _opts: &OnnxOptions) -> Result<Encoder, AnalysisError> {
        Err(off(ENCODER_NAME))
    }
}

/// A token-classification model as an [`EntityExtractor`].
///
/// Loads `model.onnx`, `tokenizer.json` and `labels.json` (else
/// `config.json`) from a directory. `labels.json`: `{"id2label": {"0": "O",
/// "1": "B-PER", ...}, "model": "<name>", "max_tokens": 256}` (only
/// `id2label` is required). Each segment's text runs through the model on
/// its own; BIO tags become [`Entity`]s with byte offsets from the
/// tokenizer's (`&seg.text[start..end]`), labels mapped by [`map_label`],
/// `confidence` the mean over the mention's word pieces of P(B-X) + P(I-X)
/// (the model's, not multiplied by the recogniser's), `source`
/// `"onnx:<model>"`, `normalized` None. A text longer than `max_tokens`
/// word pieces is cut (its tail is not tagged). A forward pass that fails
/// on a segment is logged (`tracing::warn!`) and gives no entities.
pub struct OnnxNer {
    inner: imp::Ner,
}

impl std::fmt::Debug for OnnxNer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxNer")
            .field("name", &self.name())
            .finish()
    }
}

impl OnnxNer {
    /// Load with [`OnnxOptions::default`].
    pub fn load(dir: &Path) -> Result<OnnxNer, AnalysisError> {
        OnnxNer::load_with(dir, &OnnxOptions::default())
    }

    pub fn load_with(dir: &Path, opts: &OnnxOptions) -> Result<OnnxNer, AnalysisError> {
        Ok(OnnxNer {
            inner: imp::load_ner(dir, opts)?,
        })
    }

    /// The mentions the model finds in a text (no segment needed).
    pub fn spans(&mut self, text: &str) -> Result<Vec<Span>, AnalysisError> {
        #[cfg(feature = "onnx")]
        return self.inner.spans(text);
        #[cfg(not(feature = "onnx"))]
        {
            let _ = text;
            match self.inner {}
        }
    }

    /// The entity labels the model can give (ours, mapped), in id order,
    /// each once.
    pub fn labels(&self) -> Vec<String> {
        #[cfg(feature = "onnx")]
        {
            let mut out: Vec<String> = Vec::new();
            for t in &self.inner.tags {
                if let Some(k) = t.kind() {
                    if !out.iter().any(|o| o == k) {
                        out.push(k.to_string());
                    }
                }
            }
            out
        }
        #[cfg(not(feature = "onnx"))]
        match self.inner {}
    }
}

impl EntityExtractor for OnnxNer {
    fn name(&self) -> &str {
        #[cfg(feature = "onnx")]
        return &self.inner.name;
        #[cfg(not(feature = "onnx"))]
        match self.inner {}
    }

    fn extract(&mut self, seg: &Segment) -> Vec<Entity> {
        let spans = match self.spans(&seg.text) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(segment = seg.segment_id, "onnx entities: {e}");
                return Vec::new();
            }
        };
        #[cfg(feature = "onnx")]
        let source = self.inner.source.clone();
        #[cfg(not(feature = "onnx"))]
        let source = String::new();
        spans
            .into_iter()
            .map(|s| Entity {
                text: seg.text[s.start..s.end].to_string(),
                label: s.label,
                start: s.start,
                end: s.end,
                confidence: s.confidence,
                segment_id: seg.segment_id,
                participant_id: seg.participant_id.clone(),
                speaker: seg.speaker.clone(),
                time: time_at(seg, s.start),
                normalized: None,
                source: source.clone(),
            })
            .collect()
    }
}

/// A BERT sentence encoder in ONNX (all-MiniLM-L6-v2 from
/// `scripts/make-onnx-models`) as a [`SentenceEncoder`]: `tokenizer.json`
/// and `sentence_bert_config.json` (`max_seq_length`, default 256) from the
/// same directory; the last hidden state mean-pooled over the attention
/// mask and L2-normalised; batches sorted by length and run in chunks of
/// [`OnnxOptions::batch_size`].
pub struct OnnxEncoder {
    inner: imp::Encoder,
}

impl std::fmt::Debug for OnnxEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxEncoder")
            .field("dim", &self.dim())
            .finish()
    }
}

impl OnnxEncoder {
    /// Load with [`OnnxOptions::default`].
    pub fn load(dir: &Path) -> Result<OnnxEncoder, AnalysisError> {
        OnnxEncoder::load_with(dir, &OnnxOptions::default())
    }

    pub fn load_with(dir: &Path, opts: &OnnxOptions) -> Result<OnnxEncoder, AnalysisError> {
        Ok(OnnxEncoder {
            inner: imp::load_encoder(dir, opts)?,
        })
    }
}

impl SentenceEncoder for OnnxEncoder {
    fn name(&self) -> &str {
        ENCODER_NAME
    }

    fn encode(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, AnalysisError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        #[cfg(feature = "onnx")]
        return self.inner.encode(texts);
        #[cfg(not(feature = "onnx"))]
        match self.inner {}
    }

    fn dim(&self) -> usize {
        #[cfg(feature = "onnx")]
        return self.inner.dim;
        #[cfg(not(feature = "onnx"))]
        match self.inner {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tok(word: u32, s: usize, e: usize, tag: &str, p: f64) -> (u32, usize, usize, Tag, f64) {
        (word, s, e, Tag::parse(tag).expect("tag"), p)
    }

    #[test]
    fn tags_parse_and_map_to_our_labels() {
        assert_eq!(Tag::parse("O"), Some(Tag::Outside));
        assert_eq!(Tag::parse("B-PER"), Some(Tag::Begin("PERSON".into())));
        assert_eq!(Tag::parse("I-LOC"), Some(Tag::Inside("LOCATION".into())));
        assert_eq!(Tag::parse("B-ORG"), Some(Tag::Begin("ORGANIZATION".into())));
        assert_eq!(Tag::parse("I-MISC"), Some(Tag::Inside("MISC".into())));
        assert_eq!(Tag::parse("PER"), None);
        assert_eq!(Tag::parse("B-"), None);
        assert_eq!(Tag::parse(""), None);
    }

    #[test]
    fn bio_decoding() {
        // "my name is Amina Yusuf from Mombasa ." with "Yusuf" as two pieces.
        let toks = vec![
            tok(0, 0, 2, "O", 0.9),
            tok(1, 3, 7, "O", 0.9),
            tok(2, 8, 10, "O", 0.9),
            tok(3, 11, 16, "B-PER", 0.8),
            tok(4, 17, 19, "I-PER", 0.6),
            tok(4, 19, 22, "O", 0.7), // continuation piece follows its word
            tok(5, 23, 27, "O", 0.9),
            tok(6, 28, 35, "I-LOC", 0.5), // I- without B- starts a mention
            tok(7, 35, 36, "O", 0.9),
        ];
        let spans = decode_bio(&toks);
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!((spans[0].start, spans[0].end), (11, 22));
        assert_eq!(spans[0].label, "PERSON");
        assert!((spans[0].confidence - 0.7).abs() < 1e-9);
        assert_eq!(
            (spans[1].start, spans[1].end, spans[1].label.as_str()),
            (28, 35, "LOCATION")
        );
        // B after B of the same type: two mentions.
        let spans = decode_bio(&[tok(0, 0, 3, "B-PER", 1.0), tok(1, 4, 7, "B-PER", 1.0)]);
        assert_eq!(spans.len(), 2);
        // I of another type: a new mention.
        let spans = decode_bio(&[tok(0, 0, 3, "B-PER", 1.0), tok(1, 4, 7, "I-LOC", 1.0)]);
        assert_eq!(spans.len(), 2);
        assert!(decode_bio(&[]).is_empty());
    }

    #[test]
    fn labels_file_errors_name_the_file() {
        let p = Path::new("/x/labels.json");
        let lf: LabelsFile =
            serde_json::from_str(r#"{"id2label": {"0": "O", "1": "PERSON"}}"#).expect("json");
        let e = parse_labels(p, &lf).expect_err("not BIO").to_string();
        assert!(e.contains("/x/labels.json") && e.contains("PERSON"), "{e}");
        let lf: LabelsFile =
            serde_json::from_str(r#"{"id2label": {"0": "O", "2": "B-PER"}}"#).expect("json");
        let e = parse_labels(p, &lf).expect_err("gap").to_string();
        assert!(e.contains("missing"), "{e}");
        let lf: LabelsFile =
            serde_json::from_str(r#"{"id2label": {"0": "B-PER", "1": "I-PER"}}"#).expect("json");
        assert!(parse_labels(p, &lf).is_err());
    }

    #[test]
    fn word_times_give_the_mention_time() {
        let seg = Segment {
            segment_id: 1,
            utterance_id: 1,
            participant_id: None,
            speaker: "caller".into(),
            stream_label: "1".into(),
            text: "Hello. My name is Amina.".into(),
            start_time: 3.0,
            end_time: 6.0,
            duration: 3.0,
            confidence: 0.9,
            words: ["Hello.", "My", "name", "is", "Amina."]
                .iter()
                .enumerate()
                .map(|(i, w)| crate::asr::Word {
                    word: w.to_string(),
                    start: 3.0 + i as f64 * 0.5,
                    end: 3.4 + i as f64 * 0.5,
                    probability: 0.9,
                })
                .collect(),
            language: None,
            is_final: true,
            lagging: false,
        };
        assert_eq!(time_at(&seg, 18), 5.0);
        let bare = Segment {
            words: vec![],
            ..seg
        };
        assert_eq!(time_at(&bare, 18), 3.0);
    }

    #[test]
    fn runtime_path_prefers_the_environment() {
        // Only reads: the test does not set ORT_DYLIB_PATH (tests run in
        // threads of one process).
        match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => assert_eq!(runtime_path(None), PathBuf::from(p)),
            _ => {
                assert_eq!(runtime_path(None), PathBuf::from(DEFAULT_RUNTIME));
                assert_eq!(
                    runtime_path(Some(Path::new("/a/lib.so"))),
                    PathBuf::from("/a/lib.so")
                );
            }
        }
    }
}
