//! Sentence embeddings: all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0)
//! in pure Rust, for semantic scoring (taxonomy, summary, QA).
//!
//! [`MiniLm`] is a [`SentenceEncoder`]: HF `tokenizers` reads the model's
//! own `tokenizer.json` (BERT WordPiece, lower-casing, accent stripping),
//! a 6-layer, 384-dim BERT encoder written here on candle's CPU tensors
//! runs over the tokens, and the vectors are mean-pooled over the attention
//! mask and L2-normalised, as sentence-transformers does for this model
//! (`1_Pooling/config.json`: mean tokens; `2_Normalize`). Texts are cut to
//! the model's `max_seq_length` (256 word pieces, `[CLS]`/`[SEP]`
//! included). The weights come from PyPI through `scripts/fetch-embeddings`
//! into `models/all-minilm-l6-v2/`; `tests/embed.rs` checks the vectors
//! against an independent numpy implementation
//! (`scripts/embed_reference.py`, `tests/embed_vectors.json`).
//!
//! Cost: one encoder pass per text, O(tokens × layers × 384²) plus an
//! O(tokens²) attention term; nothing depends on the call's length, so a
//! caller that embeds each new final segment pays O(that segment). A batch
//! is sorted by length and run in chunks of [`MiniLmOptions::batch_size`],
//! padded only to the longest text of the chunk. Measured on the shared
//! 2-core VM, one thread (`cargo test --test embed -- --ignored timings`):
//! load ~0.15-0.3 s; a 13-word sentence (16 tokens) ~14 ms and a batch of
//! 8 script lines ~67 ms in a release build, ~35-45 ms and ~120-180 ms in
//! a test build (candle and gemm are built at opt-level 3 even there, see
//! Cargo.toml; at -O0 they take ~1 s and ~7.6 s). Memory: the f32
//! weights, ~91 MB.
//!
//! Threads: candle's CPU kernels (matrix products, softmax, layer norm) use
//! rayon. So that the encoder never fans out over the cores the ASR threads
//! need (and never spawns rayon's global, one-per-core pool), each
//! [`MiniLm`] owns a rayon pool of [`MiniLmOptions::threads`] workers
//! (default 1) and runs every encode inside it; the calling thread blocks
//! meanwhile, so an encode occupies exactly that many cores. This is the
//! one place the core crate owns a thread; it does no I/O after
//! [`MiniLm::load`] and reads no clock.
//!
//! Without the cargo feature `embeddings` (default on) this module keeps
//! its API, but [`MiniLm::load`] returns [`AnalysisError::Model`] saying the
//! feature is off, and no candle/tokenizers code is built.

use super::{AnalysisError, SentenceEncoder};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The model's name as reported by [`SentenceEncoder::name`] and in errors.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
/// Where `scripts/fetch-embeddings` puts the model, from the repository root.
pub const DEFAULT_DIR: &str = "models/all-minilm-l6-v2";

/// How a [`MiniLm`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MiniLmOptions {
    /// CPU threads one encode may use (its own rayon pool). 1 by default:
    /// the engine runs the analysis on one thread beside one ASR thread per
    /// core. 0 is taken as 1.
    pub threads: usize,
    /// Texts per forward pass (padded to the longest of them). 0 is taken
    /// as 1.
    pub batch_size: usize,
}

impl Default for MiniLmOptions {
    fn default() -> Self {
        MiniLmOptions {
            threads: 1,
            batch_size: 16,
        }
    }
}

/// What was loaded (for a status endpoint or logs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    /// Length of each vector.
    pub dim: usize,
    /// Longest input in word pieces, `[CLS]` and `[SEP]` included.
    pub max_tokens: usize,
    pub layers: usize,
    pub heads: usize,
    pub vocab_size: usize,
    pub threads: usize,
}

/// The model's `config.json` (Hugging Face BERT configuration), the
/// entries the encoder needs.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(not(feature = "embeddings"), allow(dead_code))]
struct BertConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    hidden_act: String,
    max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    type_vocab_size: usize,
    #[serde(default = "default_ln_eps")]
    layer_norm_eps: f64,
    #[serde(default = "default_pos_type")]
    position_embedding_type: String,
}

fn default_type_vocab() -> usize {
    2
}
fn default_ln_eps() -> f64 {
    1e-12
}
fn default_pos_type() -> String {
    "absolute".to_string()
}

/// `1_Pooling/config.json` of a sentence-transformers model.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(not(feature = "embeddings"), allow(dead_code))]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

/// `sentence_bert_config.json`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(not(feature = "embeddings"), allow(dead_code))]
struct SentenceBertConfig {
    max_seq_length: usize,
}

#[cfg_attr(not(feature = "embeddings"), allow(dead_code))]
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, AnalysisError> {
    let text = super::read_text(path)?;
    serde_json::from_str(&text).map_err(|e| AnalysisError::config(path.display(), e))
}

#[cfg(feature = "embeddings")]
pub use real::MiniLm;

#[cfg(not(feature = "embeddings"))]
pub use stub::MiniLm;

#[cfg(feature = "embeddings")]
mod real {
    use super::*;
    use candle_core::{DType, Device, Module, Tensor, D};
    use candle_nn::{Embedding, LayerNorm, Linear, VarBuilder};
    use std::collections::HashMap;

    fn model_err(e: impl std::fmt::Display) -> AnalysisError {
        AnalysisError::model(MODEL_NAME, e)
    }

    /// One transformer block (post-norm BERT).
    struct Layer {
        query: Linear,
        key: Linear,
        value: Linear,
        attn_out: Linear,
        attn_norm: LayerNorm,
        inter: Linear,
        out: Linear,
        out_norm: LayerNorm,
    }

    struct Bert {
        word: Embedding,
        position: Embedding,
        /// Row 0 of the token-type table: every token is of segment A.
        token_type0: Tensor,
        norm: LayerNorm,
        layers: Vec<Layer>,
        heads: usize,
        head_dim: usize,
    }

    fn linear(vb: &VarBuilder, name: &str, i: usize, o: usize) -> candle_core::Result<Linear> {
        candle_nn::linear(i, o, vb.pp(name))
    }

    fn norm(vb: &VarBuilder, name: &str, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
        candle_nn::layer_norm(size, eps, vb.pp(name))
    }

    impl Bert {
        fn load(vb: VarBuilder, c: &BertConfig) -> candle_core::Result<Bert> {
            let h = c.hidden_size;
            let e = vb.pp("embeddings");
            let word = candle_nn::embedding(c.vocab_size, h, e.pp("word_embeddings"))?;
            let position =
                candle_nn::embedding(c.max_position_embeddings, h, e.pp("position_embeddings"))?;
            let token_type = e
                .pp("token_type_embeddings")
                .get((c.type_vocab_size, h), "weight")?;
            let token_type0 = token_type.get(0)?;
            let norm0 = norm(&e, "LayerNorm", h, c.layer_norm_eps)?;
            let mut layers = Vec::with_capacity(c.num_hidden_layers);
            for i in 0..c.num_hidden_layers {
                let l = vb.pp(format!("encoder.layer.{i}"));
                let a = l.pp("attention");
                layers.push(Layer {
                    query: linear(&a, "self.query", h, h)?,
                    key: linear(&a, "self.key", h, h)?,
                    value: linear(&a, "self.value", h, h)?,
                    attn_out: linear(&a, "output.dense", h, h)?,
                    attn_norm: norm(&a, "output.LayerNorm", h, c.layer_norm_eps)?,
                    inter: linear(&l, "intermediate.dense", h, c.intermediate_size)?,
                    out: linear(&l, "output.dense", c.intermediate_size, h)?,
                    out_norm: norm(&l, "output.LayerNorm", h, c.layer_norm_eps)?,
                });
            }
            Ok(Bert {
                word,
                position,
                token_type0,
                norm: norm0,
                layers,
                heads: c.num_attention_heads,
                head_dim: h / c.num_attention_heads,
            })
        }

        /// `ids`: (batch, len) u32; `mask`: (batch, len) f32, 1 for real
        /// tokens, 0 for padding. Returns the last hidden states
        /// (batch, len, hidden).
        fn forward(&self, ids: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
            let (b, l) = ids.dims2()?;
            let positions = Tensor::arange(0u32, l as u32, ids.device())?;
            let x = self
                .word
                .forward(ids)?
                .broadcast_add(&self.position.forward(&positions)?)?
                .broadcast_add(&self.token_type0)?;
            let mut x = self.norm.forward(&x)?;
            // Additive attention bias: 0 over real keys, -1e4 over padding
            // (exp underflows to exactly 0 in f32), shape (b, 1, 1, l).
            let bias = ((mask - 1.0)? * 10_000.0)?.reshape((b, 1, 1, l))?;
            let scale = 1.0 / (self.head_dim as f64).sqrt();
            let split = |t: Tensor| -> candle_core::Result<Tensor> {
                t.reshape((b, l, self.heads, self.head_dim))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            for layer in &self.layers {
                let q = split(layer.query.forward(&x)?)?;
                let k = split(layer.key.forward(&x)?)?;
                let v = split(layer.value.forward(&x)?)?;
                let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&bias)?;
                let probs = candle_nn::ops::softmax_last_dim(&scores)?;
                let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((
                    b,
                    l,
                    self.heads * self.head_dim,
                ))?;
                let a = layer.attn_out.forward(&ctx)?;
                let x1 = layer.attn_norm.forward(&(a + &x)?)?;
                let m = layer.inter.forward(&x1)?.gelu_erf()?;
                let o = layer.out.forward(&m)?;
                x = layer.out_norm.forward(&(o + &x1)?)?;
            }
            Ok(x)
        }
    }

    /// all-MiniLM-L6-v2 sentence encoder (see the module doc).
    pub struct MiniLm {
        bert: Bert,
        tokenizer: tokenizers::Tokenizer,
        device: Device,
        pool: rayon::ThreadPool,
        info: ModelInfo,
        batch_size: usize,
    }

    impl std::fmt::Debug for MiniLm {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("MiniLm").field("info", &self.info).finish()
        }
    }

    impl MiniLm {
        /// Load the model from `dir` (as `scripts/fetch-embeddings` lays it
        /// out: `config.json`, `model.safetensors`, `tokenizer.json`,
        /// `sentence_bert_config.json`, `1_Pooling/config.json`), one thread.
        pub fn load(dir: &Path) -> Result<MiniLm, AnalysisError> {
            MiniLm::load_with(dir, MiniLmOptions::default())
        }

        /// [`MiniLm::load`] with explicit options.
        pub fn load_with(dir: &Path, opts: MiniLmOptions) -> Result<MiniLm, AnalysisError> {
            let weights = dir.join("model.safetensors");
            if !weights.is_file() {
                return Err(model_err(format!(
                    "{} not found (run scripts/fetch-embeddings)",
                    weights.display()
                )));
            }
            let cfg_path = dir.join("config.json");
            let cfg: BertConfig = read_json(&cfg_path)?;
            check_config(&cfg_path, &cfg)?;
            let pool_path = dir.join("1_Pooling").join("config.json");
            let pooling: PoolingConfig = read_json(&pool_path)?;
            if !pooling.pooling_mode_mean_tokens
                || pooling.pooling_mode_cls_token
                || pooling.pooling_mode_max_tokens
                || pooling.pooling_mode_mean_sqrt_len_tokens
            {
                return Err(AnalysisError::config(
                    pool_path.display(),
                    "only mean-token pooling is implemented (pooling_mode_mean_tokens alone)",
                ));
            }
            let sb_path = dir.join("sentence_bert_config.json");
            let sb: SentenceBertConfig = read_json(&sb_path)?;
            if sb.max_seq_length < 2 {
                return Err(AnalysisError::config(
                    sb_path.display(),
                    "max_seq_length: must be at least 2 ([CLS] and [SEP])",
                ));
            }
            let max_tokens = sb.max_seq_length.min(cfg.max_position_embeddings);

            let tok_path = dir.join("tokenizer.json");
            let tok_text = super::super::read_text(&tok_path)?;
            let mut tokenizer: tokenizers::Tokenizer = tok_text
                .parse()
                .map_err(|e| AnalysisError::config(tok_path.display(), e))?;
            // tokenizer.json carries its own truncation (128) and fixed
            // padding (128); sentence-transformers overrides both: cut at
            // max_seq_length, pad per batch (done here, not by the tokenizer).
            tokenizer
                .with_truncation(Some(tokenizers::TruncationParams {
                    max_length: max_tokens,
                    ..Default::default()
                }))
                .map_err(|e| AnalysisError::config(tok_path.display(), e))?;
            tokenizer.with_padding(None);
            let vocab = tokenizer.get_vocab_size(true);
            if vocab > cfg.vocab_size {
                return Err(AnalysisError::config(
                    tok_path.display(),
                    format!(
                        "{vocab} tokens but the model's vocab_size is {}",
                        cfg.vocab_size
                    ),
                ));
            }

            let device = Device::Cpu;
            let data = std::fs::read(&weights).map_err(|err| AnalysisError::Io {
                path: weights.display().to_string(),
                err,
            })?;
            let tensors: HashMap<String, Tensor> =
                candle_core::safetensors::load_buffer(&data, &device)
                    .map_err(|e| model_err(format!("{}: {e}", weights.display())))?;
            drop(data);
            let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
            let bert = Bert::load(vb, &cfg)
                .map_err(|e| model_err(format!("{}: {e}", weights.display())))?;

            let threads = opts.threads.max(1);
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("minilm-{i}"))
                .build()
                .map_err(|e| model_err(format!("thread pool: {e}")))?;
            Ok(MiniLm {
                bert,
                tokenizer,
                device,
                pool,
                info: ModelInfo {
                    name: MODEL_NAME.to_string(),
                    dim: cfg.hidden_size,
                    max_tokens,
                    layers: cfg.num_hidden_layers,
                    heads: cfg.num_attention_heads,
                    vocab_size: cfg.vocab_size,
                    threads,
                },
                batch_size: opts.batch_size.max(1),
            })
        }

        /// What was loaded.
        pub fn info(&self) -> &ModelInfo {
            &self.info
        }

        /// The word-piece ids the encoder sees for `text`: `[CLS]`, the
        /// pieces (cut to fit), `[SEP]`.
        pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, AnalysisError> {
            let enc = self.tokenizer.encode(text, true).map_err(model_err)?;
            let mut ids = enc.get_ids().to_vec();
            // Defensive: the truncation set at load time already bounds it.
            if ids.len() > self.info.max_tokens {
                let sep = ids.last().copied();
                ids.truncate(self.info.max_tokens - 1);
                ids.extend(sep);
            }
            let vocab = self.info.vocab_size as u32;
            if let Some(bad) = ids.iter().find(|&&id| id >= vocab) {
                return Err(model_err(format!("token id {bad} outside the vocabulary")));
            }
            Ok(ids)
        }

        /// One forward pass over texts already tokenised; returns one unit
        /// vector per text.
        fn run_batch(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, AnalysisError> {
            let b = batch.len();
            let l = batch.iter().map(|t| t.len()).max().unwrap_or(0);
            if b == 0 || l == 0 {
                return Ok(Vec::new());
            }
            let mut ids = vec![0u32; b * l];
            let mut mask = vec![0f32; b * l];
            for (row, toks) in batch.iter().enumerate() {
                ids[row * l..row * l + toks.len()].copy_from_slice(toks);
                mask[row * l..row * l + toks.len()].fill(1.0);
            }
            let run = || -> candle_core::Result<Vec<Vec<f32>>> {
                let ids = Tensor::from_vec(ids, (b, l), &self.device)?;
                let mask = Tensor::from_vec(mask, (b, l), &self.device)?;
                let hidden = self.bert.forward(&ids, &mask)?;
                // Mean over the real tokens, then L2 normalisation
                // (torch's F.normalize: divide by max(norm, 1e-12)).
                let m = mask.unsqueeze(2)?;
                let summed = hidden.broadcast_mul(&m)?.sum(1)?;
                let count = mask.sum_keepdim(1)?.clamp(1e-9, f64::MAX)?;
                let mean = summed.broadcast_div(&count)?;
                let norm = mean
                    .sqr()?
                    .sum_keepdim(D::Minus1)?
                    .sqrt()?
                    .clamp(1e-12, f64::MAX)?;
                mean.broadcast_div(&norm)?.to_vec2::<f32>()
            };
            run().map_err(model_err)
        }

        fn encode_all(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, AnalysisError> {
            let tokens = texts
                .iter()
                .map(|t| self.token_ids(t))
                .collect::<Result<Vec<_>, _>>()?;
            // Longest first, so each chunk pads to texts of similar length.
            let mut order: Vec<usize> = (0..texts.len()).collect();
            order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].len()));
            let mut out = vec![Vec::new(); texts.len()];
            for chunk in order.chunks(self.batch_size) {
                let batch: Vec<&[u32]> = chunk.iter().map(|&i| tokens[i].as_slice()).collect();
                let vecs = self.run_batch(&batch)?;
                if vecs.len() != chunk.len() {
                    return Err(model_err("forward pass returned a wrong number of vectors"));
                }
                for (&i, v) in chunk.iter().zip(vecs) {
                    out[i] = v;
                }
            }
            Ok(out)
        }
    }

    impl SentenceEncoder for MiniLm {
        fn name(&self) -> &str {
            MODEL_NAME
        }

        /// Batch encode. Empty texts are valid (they embed `[CLS] [SEP]`).
        fn encode(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, AnalysisError> {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let this = &*self;
            this.pool.install(|| this.encode_all(texts))
        }

        fn dim(&self) -> usize {
            self.info.dim
        }
    }

    fn check_config(path: &Path, c: &BertConfig) -> Result<(), AnalysisError> {
        let bad = |entry: &str, msg: String| {
            Err(AnalysisError::config(
                path.display(),
                format!("{entry}: {msg}"),
            ))
        };
        if c.hidden_act != "gelu" {
            return bad(
                "hidden_act",
                format!(
                    "{:?} (only \"gelu\", the erf form, is implemented)",
                    c.hidden_act
                ),
            );
        }
        if c.position_embedding_type != "absolute" {
            return bad(
                "position_embedding_type",
                format!(
                    "{:?} (only \"absolute\" is implemented)",
                    c.position_embedding_type
                ),
            );
        }
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return bad(
                "num_attention_heads",
                format!(
                    "{} does not divide hidden_size {}",
                    c.num_attention_heads, c.hidden_size
                ),
            );
        }
        if c.type_vocab_size == 0 || c.vocab_size == 0 || c.max_position_embeddings < 2 {
            return bad(
                "vocab_size/type_vocab_size/max_position_embeddings",
                "must be positive".into(),
            );
        }
        Ok(())
    }
}

#[cfg(not(feature = "embeddings"))]
mod stub {
    use super::*;

    #[derive(Debug)]
    enum Never {}

    /// all-MiniLM-L6-v2 sentence encoder; this build has no `embeddings`
    /// feature, so it cannot be loaded.
    #[derive(Debug)]
    pub struct MiniLm(Never);

    impl MiniLm {
        /// Always an error: the crate was built without `embeddings`.
        pub fn load(dir: &Path) -> Result<MiniLm, AnalysisError> {
            MiniLm::load_with(dir, MiniLmOptions::default())
        }

        /// Always an error: the crate was built without `embeddings`.
        pub fn load_with(_dir: &Path, _opts: MiniLmOptions) -> Result<MiniLm, AnalysisError> {
            Err(AnalysisError::model(
                MODEL_NAME,
                "sentence embeddings are off in this build (cargo feature `embeddings` of the earshot crate)",
            ))
        }

        pub fn info(&self) -> &ModelInfo {
            match self.0 {}
        }

        pub fn token_ids(&self, _text: &str) -> Result<Vec<u32>, AnalysisError> {
            match self.0 {}
        }
    }

    impl SentenceEncoder for MiniLm {
        fn name(&self) -> &str {
            match self.0 {}
        }
        fn encode(&mut self, _texts: &[&str]) -> Result<Vec<Vec<f32>>, AnalysisError> {
            match self.0 {}
        }
        fn dim(&self) -> usize {
            match self.0 {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_default_to_one_thread_and_parse_from_toml() {
        let d = MiniLmOptions::default();
        assert_eq!(d.threads, 1);
        let o: MiniLmOptions = toml::from_str("threads = 2").expect("options parse");
        assert_eq!(o.threads, 2);
        assert_eq!(o.batch_size, d.batch_size);
    }

    #[test]
    fn missing_model_is_a_clear_error() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("no/such/model/dir");
        let err = MiniLm::load(&dir).expect_err("no model there");
        let msg = err.to_string();
        assert!(msg.contains(MODEL_NAME), "{msg}");
        if cfg!(feature = "embeddings") {
            assert!(msg.contains("fetch-embeddings"), "{msg}");
        } else {
            assert!(msg.contains("feature"), "{msg}");
        }
    }

    /// Tests that need the model (they skip when it is not fetched).
    #[cfg(feature = "embeddings")]
    mod with_model {
        use super::*;
        use crate::analysis::cosine;
        use std::path::PathBuf;

        fn model_dir() -> PathBuf {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_DIR)
        }

        #[cfg(unix)]
        #[test]
        fn bad_config_names_file_and_entry() {
            let src = model_dir();
            if !src.join("model.safetensors").is_file() {
                eprintln!(
                    "SKIP: {} missing (run scripts/fetch-embeddings)",
                    src.display()
                );
                return;
            }
            let tmp =
                std::env::temp_dir().join(format!("earshot-embed-cfg-{}", std::process::id()));
            std::fs::create_dir_all(tmp.join("1_Pooling")).expect("tmp dir");
            // The real weights (linked, not copied) with a config that lies.
            let link = tmp.join("model.safetensors");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(src.join("model.safetensors"), &link).expect("symlink");
            let cfg = std::fs::read_to_string(src.join("config.json")).expect("config");
            std::fs::write(tmp.join("config.json"), cfg.replace("\"gelu\"", "\"relu\""))
                .expect("write");
            let err = MiniLm::load(&tmp)
                .expect_err("relu is not implemented")
                .to_string();
            assert!(
                err.contains("config.json") && err.contains("hidden_act"),
                "{err}"
            );
            // CLS pooling is refused, naming the pooling file.
            std::fs::write(tmp.join("config.json"), &cfg).expect("write");
            std::fs::write(
                tmp.join("1_Pooling/config.json"),
                r#"{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
            )
            .expect("write");
            let err = MiniLm::load(&tmp).expect_err("cls pooling").to_string();
            assert!(err.contains("1_Pooling") && err.contains("mean"), "{err}");
            let _ = std::fs::remove_dir_all(&tmp);
        }

        #[test]
        fn encodes_unit_vectors_and_ranks_by_meaning() {
            let dir = model_dir();
            if !dir.join("model.safetensors").is_file() {
                eprintln!(
                    "SKIP: {} missing (run scripts/fetch-embeddings)",
                    dir.display()
                );
                return;
            }
            let mut m = MiniLm::load(&dir).expect("load");
            assert_eq!(m.dim(), 384);
            assert_eq!(m.info().max_tokens, 256);
            let v = m
                .encode(&[
                    "I was charged twice on my bill",
                    "there is a duplicate payment on my invoice",
                    "my neighbour's daughter is being beaten at home",
                    "",
                ])
                .expect("encode");
            assert_eq!(v.len(), 4);
            for x in &v {
                assert_eq!(x.len(), 384);
                let n: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
                assert!((n - 1.0).abs() < 1e-4, "norm {n}");
            }
            assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2);
            assert!(m.encode(&[]).expect("empty batch").is_empty());
        }
    }
}
