//! What the analysis test files share: the repository root, the stored
//! call fixtures (`tests/analysis/*.session.json`, real engine output) and
//! the ONNX Runtime options. Each test file uses a part of it.
#![allow(dead_code)]

use earshot::analysis::onnx::{OnnxOptions, DEFAULT_RUNTIME};
use earshot::session::SessionRecord;
use std::path::Path;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A stored call (`helpline`, `billing`).
pub fn session(name: &str) -> SessionRecord {
    let path = root().join(format!("tests/analysis/{name}.session.json"));
    let text = std::fs::read_to_string(&path).expect("session fixture");
    serde_json::from_str(&text).expect("SessionRecord parses")
}

/// Every segment text of both stored calls.
pub fn real_texts() -> Vec<String> {
    ["helpline", "billing"]
        .into_iter()
        .flat_map(|name| session(name).transcript_segments)
        .map(|s| s.text)
        .collect()
}

/// ONNX Runtime from where `scripts/fetch-onnxruntime` puts it.
pub fn onnx_opts() -> OnnxOptions {
    OnnxOptions {
        runtime: Some(root().join(DEFAULT_RUNTIME)),
        ..OnnxOptions::default()
    }
}
