//! Progressive analysis of a call's transcript, sans-IO: each analyser is
//! fed final segments one at a time and keeps its own running state, so
//! the cost of a new final is proportional to that final, not to the call.
//!
//! * [`sentiment`]: VADER per segment, per participant with trend and
//!   negative-streak alerts.
//! * [`keywords`]: configured phrase lists (compliance phrases that must be
//!   said, escalation/risk words), counts, first mention, speakers.
//! * [`pii`]: masking of card numbers, phone numbers, e-mails and national
//!   ids in stored/pushed text.
//! * [`entities`]: rule, pattern and gazetteer entities (names, places,
//!   numbers, dates, amounts, ...), with an ONNX token-classification slot
//!   ([`onnx::OnnxNer`]; [`onnx::OnnxEncoder`] runs the sentence encoder
//!   on ONNX Runtime).
//! * [`taxonomy`]: call classification from a taxonomy file, with
//!   evidence, optionally helped by sentence embeddings ([`embed`]).
//! * [`summary`]: extractive, speaker-attributed summary.
//! * [`qa`]: agent QA scoring from a rubric over transcript and call events.
//! * [`translate`]: segment translation by an ONNX sequence-to-sequence
//!   model (MarianMT / OPUS-MT export), beside whisper's translate task.

pub mod call;
pub mod embed;
pub mod entities;
pub mod keywords;
pub mod onnx;
pub mod pii;
pub mod qa;
pub mod sentiment;
pub mod summary;
pub mod taxonomy;
pub mod translate;

/// Errors of the analysis layer (loading configuration, lexicons, models).
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error("{path}: {err}")]
    Io { path: String, err: std::io::Error },
    /// A configuration file that does not parse or makes no sense.
    #[error("{path}: {msg}")]
    Config { path: String, msg: String },
    /// A model that cannot be loaded or run.
    #[error("model {name}: {msg}")]
    Model { name: String, msg: String },
}

impl AnalysisError {
    pub fn config(path: impl std::fmt::Display, msg: impl std::fmt::Display) -> Self {
        AnalysisError::Config {
            path: path.to_string(),
            msg: msg.to_string(),
        }
    }

    pub fn model(name: impl std::fmt::Display, msg: impl std::fmt::Display) -> Self {
        AnalysisError::Model {
            name: name.to_string(),
            msg: msg.to_string(),
        }
    }
}

/// Read a text file, naming it in the error.
pub fn read_text(path: &std::path::Path) -> Result<String, AnalysisError> {
    std::fs::read_to_string(path).map_err(|err| AnalysisError::Io {
        path: path.display().to_string(),
        err,
    })
}

/// Turns text into unit-length sentence vectors (semantic scoring). The
/// real one is [`embed::MiniLm`]; tests may use a small double.
pub trait SentenceEncoder: Send {
    fn name(&self) -> &str;
    /// One vector per text, each of length `dim()`, L2-normalised.
    fn encode(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, AnalysisError>;
    fn dim(&self) -> usize;
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
