//! One call's progressive analysis: every enabled analyser fed the call's
//! final segments one at a time, the analysis *windows* (one per final) and
//! the evolution of entities and classification over them, translation
//! windows, and the events an agent-assist screen reacts to
//! ([`AnalysisEvent`]). Sans-IO: the caller passes the wall-clock time of
//! each final in and measures latency itself ([`CallAnalysis::record_latency`]).
//!
//! Cost of a final: each analyser's own per-segment cost (all O(segment
//! words)) plus appending one window. [`CallAnalysis::snapshot`] clones
//! the state (O(call)); the runtime takes one at most once a second.
//! Summary and QA are O(call) and run only in [`CallAnalysis::post_call`]
//! (or on demand), never per final.
//!
//! [`Resources`] holds what every call shares read-only (lexicons, phrase
//! lists, gazetteers, taxonomy, rubric, models' configuration), loaded once
//! at start; [`AnalysisConfig`] switches each analyser on or off.

use super::entities::{Entity, EntityExtractor, EntityTracker, RuleEntities};
use super::keywords::{KeywordConfig, KeywordHit, KeywordSpotter, PhraseStats};
use super::pii::Redactor;
use super::qa::{QaInput, QaReport, Rubric};
use super::sentiment::{
    ParticipantSentiment, SegmentSentiment, SentimentAlert, SentimentTracker, Vader,
};
use super::summary::{Summarizer, Summary};
use super::taxonomy::{Classification, Classifier, SemanticIndex, Taxonomy};
use super::translate::Translator;
use super::{AnalysisError, SentenceEncoder};
use crate::asr::Segment;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// Which analysers run, and their settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalysisConfig {
    pub sentiment: bool,
    pub keywords: bool,
    pub entities: bool,
    pub classification: bool,
    /// Taxonomy file name under `config/taxonomy/` (without `.toml`).
    pub taxonomy: String,
    /// Sentence-embedding help for classification (needs the MiniLM model).
    pub semantic: bool,
    /// Which runtime runs the sentence encoder.
    pub semantic_runtime: EncoderRuntime,
    /// A token-classification (NER) model directory run through ONNX
    /// Runtime beside the rules (`model.onnx`, `tokenizer.json`,
    /// `labels.json`); None: rules only.
    pub ner_model: Option<std::path::PathBuf>,
    pub summary: bool,
    /// Sentences in the extractive summary.
    pub summary_sentences: usize,
    pub qa: bool,
    /// Translation windows (needs a multilingual recogniser or an ONNX
    /// translation model).
    pub translation: bool,
    /// An ONNX sequence-to-sequence translation model directory (see
    /// [`super::translate`]); the languages it covers are translated by it
    /// instead of whisper's translate task. None: whisper only.
    pub translation_model: Option<std::path::PathBuf>,
    /// Mask cards, phone numbers, e-mails and national ids in the text the
    /// analysis stores and pushes.
    pub redact_pii: bool,
    /// Negative segments in a row that raise a sentiment alert.
    pub negative_streak: u32,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            sentiment: true,
            keywords: true,
            entities: true,
            classification: true,
            taxonomy: "helpline".into(),
            semantic: false,
            semantic_runtime: EncoderRuntime::Candle,
            ner_model: None,
            summary: true,
            summary_sentences: 3,
            qa: true,
            translation: true,
            translation_model: None,
            redact_pii: false,
            negative_streak: 3,
        }
    }
}

/// The runtime of the sentence encoder (same model, same vectors: cosine
/// ≥ 0.9999 between them): candle needs nothing deployed; ONNX Runtime was
/// measured 2.4× faster for one sentence on this project's 2-core box
/// (6.2 vs 14.8 ms) but needs `libonnxruntime.so`
/// (`scripts/fetch-onnxruntime`) and the ONNX export
/// (`scripts/make-onnx-models`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderRuntime {
    Candle,
    Onnx,
}

impl std::str::FromStr for EncoderRuntime {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "candle" => Ok(EncoderRuntime::Candle),
            "onnx" => Ok(EncoderRuntime::Onnx),
            other => Err(format!("encoder runtime {other:?}: candle or onnx")),
        }
    }
}

/// Where and how to load the sentence encoder (each analysis thread loads
/// its own).
#[derive(Debug, Clone)]
pub struct EncoderSpec {
    pub runtime: EncoderRuntime,
    pub dir: std::path::PathBuf,
    pub onnx: super::onnx::OnnxOptions,
}

impl EncoderSpec {
    pub fn load(&self) -> Result<Box<dyn SentenceEncoder>, AnalysisError> {
        Ok(match self.runtime {
            EncoderRuntime::Candle => Box::new(super::embed::MiniLm::load(&self.dir)?),
            EncoderRuntime::Onnx => {
                Box::new(super::onnx::OnnxEncoder::load_with(&self.dir, &self.onnx)?)
            }
        })
    }
}

/// What every call's analysis shares, loaded once.
pub struct Resources {
    pub config: AnalysisConfig,
    pub vader: Option<Vader>,
    pub keywords: Option<KeywordConfig>,
    pub entities: Option<RuleEntities>,
    pub taxonomy: Option<Arc<Taxonomy>>,
    /// The taxonomy's examples embedded (semantic classification on).
    pub semantic: Option<Arc<SemanticIndex>>,
    /// The sentence encoder to load (each analysis thread loads its own).
    pub encoder: Option<EncoderSpec>,
    /// The NER model slot (each analysis thread loads its own session),
    /// with the ONNX Runtime library to load it with.
    pub ner: Option<(std::path::PathBuf, super::onnx::OnnxOptions)>,
    /// The translation model slot (each analysis thread loads its own
    /// session) and what it covers.
    pub translator: Option<(
        std::path::PathBuf,
        super::onnx::OnnxOptions,
        super::translate::TranslatorInfo,
    )>,
    pub rubric: Option<Rubric>,
    pub redactor: Option<Redactor>,
}

impl std::fmt::Debug for Resources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resources")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Resources {
    /// Load what `config` enables: phrase lists, gazetteers, taxonomy and
    /// rubric from `config_dir` (the repository's `config/`), the VADER
    /// lexicon from `models_dir/lexicons/`.
    pub fn load(
        config: AnalysisConfig,
        config_dir: &Path,
        models_dir: &Path,
    ) -> Result<Resources, AnalysisError> {
        let vader = if config.sentiment {
            let dir = models_dir.join("lexicons");
            Some(
                Vader::load(
                    &dir.join("vader_lexicon.txt"),
                    &dir.join("vader_rules.json"),
                )
                .map_err(|e| AnalysisError::model("vader", e))?,
            )
        } else {
            None
        };
        let keywords = if config.keywords {
            let p = config_dir.join("keywords.toml");
            let text = super::read_text(&p)?;
            Some(
                toml::from_str::<KeywordConfig>(&text)
                    .map_err(|e| AnalysisError::config(p.display(), e))?,
            )
        } else {
            None
        };
        let entities = if config.entities {
            Some(RuleEntities::load(config_dir)?)
        } else {
            None
        };
        let taxonomy = if config.classification {
            let p = config_dir
                .join("taxonomy")
                .join(format!("{}.toml", config.taxonomy));
            Some(Arc::new(Taxonomy::load(&p)?))
        } else {
            None
        };
        let onnx_opts = super::onnx::OnnxOptions {
            runtime: Some(models_dir.join("onnxruntime/libonnxruntime.so")),
            ..Default::default()
        };
        let (semantic, encoder) = match (&taxonomy, config.semantic) {
            (Some(t), true) => {
                let spec = EncoderSpec {
                    runtime: config.semantic_runtime,
                    dir: models_dir.join(match config.semantic_runtime {
                        EncoderRuntime::Candle => "all-minilm-l6-v2",
                        EncoderRuntime::Onnx => "minilm-onnx",
                    }),
                    onnx: onnx_opts.clone(),
                };
                let mut enc = spec.load()?;
                let index = SemanticIndex::build(t, enc.as_mut())?;
                (Some(Arc::new(index)), Some(spec))
            }
            _ => (None, None),
        };
        let ner = match &config.ner_model {
            Some(dir) => {
                // Load once now so a bad model is a start-up error.
                super::onnx::OnnxNer::load_with(dir, &onnx_opts)?;
                Some((dir.clone(), onnx_opts.clone()))
            }
            None => None,
        };
        let translator = match (&config.translation_model, config.translation) {
            (Some(dir), true) => {
                // Load once now so a bad model is a start-up error.
                let m = super::translate::OnnxTranslator::load_with(dir, &onnx_opts)?;
                Some((dir.clone(), onnx_opts.clone(), m.info().clone()))
            }
            _ => None,
        };
        let rubric = if config.qa {
            Some(Rubric::load(&config_dir.join("qa-rubric.toml"))?)
        } else {
            None
        };
        let redactor = if config.redact_pii {
            Some(
                Redactor::new(super::pii::DEFAULT_ID_PATTERNS)
                    .map_err(|e| AnalysisError::config("pii patterns", e))?,
            )
        } else {
            None
        };
        Ok(Resources {
            config,
            vader,
            keywords,
            entities,
            taxonomy,
            semantic,
            encoder,
            ner,
            translator,
            rubric,
            redactor,
        })
    }
}

/// One analysis window: what one final segment added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    pub window_id: u64,
    pub timestamp: DateTime<Utc>,
    pub segment_id: u64,
    pub participant_id: Option<String>,
    pub speaker: String,
    pub start_time: f64,
    pub end_time: f64,
    /// The segment's text (PII-masked when redaction is on).
    pub text: String,
    pub sentiment: Option<SegmentSentiment>,
    pub keywords: Vec<String>,
    pub new_entities: Vec<Entity>,
    pub entity_count: usize,
    pub main_category: Option<String>,
    pub classification_confidence: Option<f64>,
    pub classification_changed: bool,
}

/// A classification snapshot in the evolution (only when it changed, plus
/// the first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationPoint {
    pub window_id: u64,
    pub timestamp: DateTime<Utc>,
    pub classification: Classification,
}

/// One final's translation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranslationWindow {
    pub window_id: u64,
    pub segment_id: u64,
    pub speaker: String,
    pub start_time: f64,
    pub end_time: f64,
    pub source_language: Option<String>,
    pub language: String,
    pub original: String,
    pub translation: String,
    /// False when the segment was already in the target language.
    pub translated: bool,
    pub model: String,
}

/// How fast the analysis keeps up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessingStats {
    pub finals_analysed: u64,
    /// Milliseconds per final (analysis only).
    pub last_ms: f64,
    pub mean_ms: f64,
    pub max_ms: f64,
    /// Seconds from the end of speech to the analysis of its final
    /// (recognition included), last and worst.
    pub last_speech_to_analysis_s: Option<f64>,
    pub max_speech_to_analysis_s: Option<f64>,
    /// Finals that reached the analysis later than the call actor sent them
    /// because its queue was full (never dropped).
    pub deferred: u64,
}

/// An event for agent assist (`/ws/analytics`, webhooks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnalysisEvent {
    SentimentAlert {
        speaker: String,
        #[serde(flatten)]
        alert: SentimentAlert,
    },
    KeywordDetected {
        #[serde(flatten)]
        hit: KeywordHit,
    },
    EntityDetected {
        #[serde(flatten)]
        entity: Entity,
    },
    ClassificationChanged {
        window_id: u64,
        previous: Option<String>,
        #[serde(flatten)]
        classification: Classification,
    },
}

/// The progressive analysis as served (`/progressive-analysis`) and stored.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progressive {
    pub windows: Vec<Window>,
    pub entities: Vec<Entity>,
    pub classification_evolution: Vec<ClassificationPoint>,
    pub latest_classification: Option<Classification>,
    pub sentiment: Vec<ParticipantSentiment>,
    pub sentiment_alerts: Vec<SentimentAlert>,
    pub keywords: Vec<PhraseStats>,
    pub missing_compliance: Vec<String>,
    pub translation_windows: Vec<TranslationWindow>,
    pub processing_stats: ProcessingStats,
}

impl Progressive {
    /// Translations so far, in window order, joined.
    pub fn cumulative_translation(&self) -> String {
        let mut out = String::new();
        for t in &self.translation_windows {
            if !out.is_empty() && !t.translation.is_empty() {
                out.push(' ');
            }
            out.push_str(t.translation.trim());
        }
        out
    }

    /// The most frequent source language of the translated windows.
    pub fn source_language(&self) -> Option<String> {
        crate::asr::most_frequent_language(
            self.translation_windows
                .iter()
                .filter_map(|t| t.source_language.as_deref()),
        )
    }
}

/// Models a caller owns and lends to each push (one per analysis thread,
/// shared by the calls on it): the sentence encoder of semantic
/// classification, the NER model slot and the translation model slot.
#[derive(Default)]
pub struct Models<'a> {
    pub encoder: Option<&'a mut (dyn SentenceEncoder + 'static)>,
    pub ner: Option<&'a mut (dyn EntityExtractor + 'static)>,
    pub translator: Option<&'a mut (dyn Translator + 'static)>,
}

/// One call's analysers and state.
pub struct CallAnalysis {
    res: Arc<Resources>,
    sentiment: Option<SentimentTracker>,
    keywords: Option<KeywordSpotter>,
    extractor: Option<Box<dyn EntityExtractor>>,
    entities: EntityTracker,
    classifier: Option<Classifier>,
    summarizer: Summarizer,
    state: Progressive,
    total_ms: f64,
}

impl CallAnalysis {
    pub fn new(res: Arc<Resources>) -> Self {
        let c = &res.config;
        let sentiment = res
            .vader
            .as_ref()
            .map(|_| SentimentTracker::new(c.negative_streak));
        let keywords = res.keywords.as_ref().map(KeywordSpotter::new);
        let extractor = res
            .entities
            .as_ref()
            .map(|e| Box::new(e.clone()) as Box<dyn EntityExtractor>);
        let classifier = res.taxonomy.as_ref().map(|t| {
            let c = Classifier::new(t.clone());
            match &res.semantic {
                // Built from the same taxonomy at load: cannot mismatch.
                Some(ix) => c
                    .with_semantic(ix.clone())
                    .unwrap_or_else(|_| Classifier::new(t.clone())),
                None => c,
            }
        });
        let mut state = Progressive::default();
        if let Some(k) = &keywords {
            state.keywords = k.stats().to_vec();
            state.missing_compliance = k.missing_compliance();
        }
        Self {
            res,
            sentiment,
            keywords,
            extractor,
            entities: EntityTracker::default(),
            classifier,
            summarizer: Summarizer::default(),
            state,
            total_ms: 0.0,
        }
    }

    pub fn config(&self) -> &AnalysisConfig {
        &self.res.config
    }

    pub fn resources(&self) -> &Arc<Resources> {
        &self.res
    }

    /// The text as stored and pushed (masked when redaction is on).
    pub fn visible_text(&self, text: &str) -> String {
        match &self.res.redactor {
            Some(r) => r.redact(text).0,
            None => text.to_string(),
        }
    }

    /// Mask an entity's text and value when redaction is on (a phone or
    /// card number entity keeps its label, not its digits).
    fn mask_entity(&self, e: &mut Entity) {
        if self.res.redactor.is_none() {
            return;
        }
        let masked = self.visible_text(&e.text);
        let pii = masked != e.text || matches!(e.label.as_str(), "PHONE" | "EMAIL");
        if pii {
            e.text = if masked != e.text {
                masked
            } else {
                format!("[{}]", e.label)
            };
            e.normalized = None;
        }
    }

    /// Analyse one final; returns the events it raised.
    pub fn push(&mut self, seg: &Segment, at: DateTime<Utc>) -> Vec<AnalysisEvent> {
        self.push_with(seg, at, Models::default())
    }

    /// [`CallAnalysis::push`] with the models the caller owns (one per
    /// analysis thread): the sentence encoder semantic classification uses
    /// and the NER model, whose entities join the rules' (deduplicated).
    pub fn push_with(
        &mut self,
        seg: &Segment,
        at: DateTime<Utc>,
        models: Models<'_>,
    ) -> Vec<AnalysisEvent> {
        let Models {
            encoder,
            ner,
            translator,
        } = models;
        let window_id = self.state.windows.len() as u64;
        let who = seg
            .participant_id
            .clone()
            .unwrap_or_else(|| seg.speaker.clone());
        let mut events = vec![];
        let mut window = Window {
            window_id,
            timestamp: at,
            segment_id: seg.segment_id,
            participant_id: seg.participant_id.clone(),
            speaker: seg.speaker.clone(),
            start_time: seg.start_time,
            end_time: seg.end_time,
            text: self.visible_text(&seg.text),
            sentiment: None,
            keywords: vec![],
            new_entities: vec![],
            entity_count: 0,
            main_category: None,
            classification_confidence: None,
            classification_changed: false,
        };

        if let (Some(v), Some(t)) = (&self.res.vader, self.sentiment.as_mut()) {
            let p = v.polarity(&seg.text);
            let s = SegmentSentiment {
                segment_id: seg.segment_id,
                participant_id: who.clone(),
                score: p.compound,
                label: p.label(),
            };
            if let Some(alert) = t.push(&s) {
                self.state.sentiment_alerts.push(alert.clone());
                events.push(AnalysisEvent::SentimentAlert {
                    speaker: seg.speaker.clone(),
                    alert,
                });
            }
            self.state.sentiment = t.participants();
            window.sentiment = Some(s);
        }

        if let Some(k) = self.keywords.as_mut() {
            let hits = k.push(
                seg.segment_id,
                seg.participant_id.as_deref(),
                &seg.speaker,
                seg.start_time,
                &seg.text,
            );
            if !hits.is_empty() {
                window.keywords = hits.iter().map(|h| h.phrase.clone()).collect();
                // The spotter keeps the tallies; the state shows them.
                self.state.keywords = k.stats().to_vec();
                self.state.missing_compliance = k.missing_compliance();
                events.extend(
                    hits.into_iter()
                        .map(|hit| AnalysisEvent::KeywordDetected { hit }),
                );
            }
        }

        if self.extractor.is_some() || ner.is_some() {
            let mut found = self
                .extractor
                .as_mut()
                .map(|x| x.extract(seg))
                .unwrap_or_default();
            if let Some(m) = ner {
                found.extend(m.extract(seg));
            }
            let new = self.entities.add(found);
            for e in &new {
                let mut e = e.clone();
                self.mask_entity(&mut e);
                self.state.entities.push(e.clone());
                window.new_entities.push(e.clone());
                events.push(AnalysisEvent::EntityDetected { entity: e });
            }
            window.entity_count = self.state.entities.len();
        }

        if let Some(c) = self.classifier.as_mut() {
            let changed = match encoder {
                Some(enc) if self.res.semantic.is_some() => match c.push_encoded(seg, enc) {
                    Ok(ch) => ch.is_some(),
                    Err(_) => c.push(seg).is_some(),
                },
                _ => c.push(seg).is_some(),
            };
            let now = c.current();
            window.main_category = Some(now.main_category.clone());
            window.classification_confidence = Some(now.confidence);
            if changed || self.state.classification_evolution.is_empty() {
                let previous = self
                    .state
                    .latest_classification
                    .as_ref()
                    .map(|p| p.main_category.clone());
                window.classification_changed = changed;
                self.state
                    .classification_evolution
                    .push(ClassificationPoint {
                        window_id,
                        timestamp: at,
                        classification: now.clone(),
                    });
                if changed {
                    events.push(AnalysisEvent::ClassificationChanged {
                        window_id,
                        previous,
                        classification: now.clone(),
                    });
                }
            }
            self.state.latest_classification = Some(now);
        }

        if self.res.config.summary {
            self.summarizer.push(seg);
        }
        self.state.windows.push(window);
        if let Some(t) = translator {
            self.translate(seg, t);
        }
        events
    }

    /// Translate a final with the translation model when the model covers
    /// its language and translation is on (a failure is logged and gives
    /// no window). Returns whether a window was added.
    pub fn translate(&mut self, seg: &Segment, model: &mut dyn Translator) -> bool {
        let Some((_, _, info)) = self.res.translator.as_ref() else {
            return false;
        };
        if !self.res.config.translation || !info.covers(seg.language.as_deref()) {
            return false;
        }
        let target = info.target_language.clone();
        match model.translate(&seg.text) {
            Ok(text) => {
                let w = TranslationWindow {
                    window_id: seg.segment_id,
                    segment_id: seg.segment_id,
                    speaker: seg.speaker.clone(),
                    start_time: seg.start_time,
                    end_time: seg.end_time,
                    source_language: seg.language.clone(),
                    language: target,
                    original: self.visible_text(&seg.text),
                    translation: self.visible_text(&text),
                    translated: true,
                    model: format!("onnx:{}", model.name()),
                };
                self.push_translation(w);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, segment = seg.segment_id, "translation failed");
                false
            }
        }
    }

    /// The call is over: entities held back for a continuation (a number
    /// at the end of a segment) come out now.
    pub fn flush(&mut self) -> Vec<AnalysisEvent> {
        let Some(x) = self.extractor.as_mut() else {
            return vec![];
        };
        let new = self.entities.add(x.finish());
        let mut events = vec![];
        for mut e in new {
            self.mask_entity(&mut e);
            self.state.entities.push(e.clone());
            if let Some(w) = self
                .state
                .windows
                .iter_mut()
                .rev()
                .find(|w| w.segment_id == e.segment_id)
            {
                w.new_entities.push(e.clone());
            }
            events.push(AnalysisEvent::EntityDetected { entity: e });
        }
        if let Some(w) = self.state.windows.last_mut() {
            w.entity_count = self.state.entities.len();
        }
        events
    }

    /// A final's translation came back (from the recogniser's translate
    /// pass or a translation model).
    pub fn push_translation(&mut self, t: TranslationWindow) {
        self.state.translation_windows.push(t);
    }

    /// How long the last final took to analyse, and how long after its
    /// speech ended (recognition included) the analysis was done.
    pub fn record_latency(&mut self, analysis_ms: f64, speech_to_analysis_s: Option<f64>) {
        let st = &mut self.state.processing_stats;
        st.finals_analysed += 1;
        st.last_ms = analysis_ms;
        st.max_ms = st.max_ms.max(analysis_ms);
        self.total_ms += analysis_ms;
        st.mean_ms = self.total_ms / st.finals_analysed as f64;
        if let Some(s) = speech_to_analysis_s {
            st.last_speech_to_analysis_s = Some(s);
            st.max_speech_to_analysis_s =
                Some(st.max_speech_to_analysis_s.map_or(s, |m: f64| m.max(s)));
        }
    }

    pub fn count_deferred(&mut self) {
        self.state.processing_stats.deferred += 1;
    }

    /// The whole state (O(call) clone).
    pub fn snapshot(&self) -> Progressive {
        self.state.clone()
    }

    pub fn state(&self) -> &Progressive {
        &self.state
    }

    /// Distinct entity values by label (the export's entity lines).
    pub fn entities_by_label(&self) -> std::collections::BTreeMap<String, Vec<String>> {
        self.entities.by_label()
    }

    /// The extractive summary now (O(call)).
    pub fn summary(&self) -> Option<Summary> {
        self.res
            .config
            .summary
            .then(|| self.summarizer.summary(self.res.config.summary_sentences))
    }

    /// QA against the rubric now (O(call)).
    pub fn qa(&self, input: &QaInput) -> Option<QaReport> {
        self.res.rubric.as_ref().map(|r| r.score(input))
    }
}

/// What the post-call pipeline needs beyond the transcript.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallFacts {
    /// Seconds.
    pub duration: f64,
    /// The agent's speaker name (QA checks the agent's words); None: the
    /// participant who speaks first.
    pub agent: Option<String>,
    /// Hold periods, seconds from call start.
    pub holds: Vec<(f64, f64)>,
    /// Stretches where nobody spoke, seconds from call start.
    pub silence_gaps: Vec<(f64, f64)>,
    /// Times one participant started while the other was talking.
    pub overlap_instances: u32,
}

/// Stages of the post-call pipeline, in order.
pub const STAGES: &[&str] = &[
    "analysis",
    "translation",
    "summary",
    "qa",
    "store",
    "notify",
];

/// Headline figures a supervisor scans.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Insights {
    pub segments: usize,
    pub words: usize,
    /// The speaker with the most words.
    pub dominant_speaker: Option<String>,
    /// Mean compound sentiment over every segment.
    pub overall_sentiment: Option<f64>,
    pub sentiment_alerts: usize,
    pub holds: usize,
    pub hold_seconds: f64,
    /// Watched phrases heard (escalation, risk, ...), by list.
    pub watched_phrases: std::collections::BTreeMap<String, u64>,
    pub missing_compliance: Vec<String>,
    pub priority: Option<String>,
}

/// What the post-call pipeline produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PostCall {
    pub completed_at: DateTime<Utc>,
    pub progressive: Progressive,
    pub entities_by_label: std::collections::BTreeMap<String, Vec<String>>,
    pub classification: Option<Classification>,
    pub summary: Option<Summary>,
    pub qa: Option<QaReport>,
    pub insights: Insights,
    pub cumulative_translation: String,
}

/// A post-call run, one stage at a time (so a runtime can report progress
/// and interleave other work between stages).
pub struct PostCallRun {
    res: Arc<Resources>,
    segments: Vec<Segment>,
    translations: Vec<TranslationWindow>,
    facts: CallFacts,
    analysis: Option<CallAnalysis>,
    summary: Option<Summary>,
    qa: Option<QaReport>,
    next: usize,
}

impl PostCallRun {
    /// `translations`: what the live translation produced (kept; the
    /// pipeline does not re-decode audio).
    pub fn new(
        res: Arc<Resources>,
        segments: Vec<Segment>,
        translations: Vec<TranslationWindow>,
        facts: CallFacts,
    ) -> Self {
        Self {
            res,
            segments,
            translations,
            facts,
            analysis: None,
            summary: None,
            qa: None,
            next: 0,
        }
    }

    /// The stage [`PostCallRun::step`] runs next (None when the analysis
    /// stages are done; `store` and `notify` belong to the runtime).
    pub fn next_stage(&self) -> Option<&'static str> {
        (self.next < 4).then(|| STAGES[self.next])
    }

    /// Run the next analysis stage; `now` is the wall time.
    pub fn step(&mut self, now: DateTime<Utc>) -> Option<&'static str> {
        self.step_with(now, Models::default())
    }

    /// [`PostCallRun::step`] with the models the caller owns (see
    /// [`Models`]).
    pub fn step_with(&mut self, now: DateTime<Utc>, models: Models<'_>) -> Option<&'static str> {
        let Models {
            mut encoder,
            mut ner,
            translator,
        } = models;
        let stage = self.next_stage()?;
        match stage {
            "analysis" => {
                let mut a = CallAnalysis::new(self.res.clone());
                let mut order: Vec<&Segment> = self.segments.iter().collect();
                order.sort_by(|x, y| x.start_time.total_cmp(&y.start_time));
                for s in order {
                    a.push_with(
                        s,
                        now,
                        Models {
                            encoder: encoder.as_deref_mut(),
                            ner: ner.as_deref_mut(),
                            // The "translation" stage translates.
                            translator: None,
                        },
                    );
                }
                a.flush();
                self.analysis = Some(a);
            }
            "translation" => {
                if let Some(a) = self.analysis.as_mut() {
                    let mut t = std::mem::take(&mut self.translations);
                    t.sort_by(|x, y| x.start_time.total_cmp(&y.start_time));
                    let done: std::collections::HashSet<u64> =
                        t.iter().map(|w| w.segment_id).collect();
                    for w in t {
                        a.push_translation(w);
                    }
                    // Finals the live analysis did not translate (the
                    // model was added later, or a translation failed).
                    if let Some(m) = translator {
                        let mut order: Vec<&Segment> = self
                            .segments
                            .iter()
                            .filter(|s| !done.contains(&s.segment_id))
                            .collect();
                        order.sort_by(|x, y| x.start_time.total_cmp(&y.start_time));
                        for s in order {
                            a.translate(s, &mut *m);
                        }
                        let mut w = std::mem::take(&mut a.state.translation_windows);
                        w.sort_by(|x, y| x.start_time.total_cmp(&y.start_time));
                        a.state.translation_windows = w;
                    }
                }
            }
            "summary" => self.summary = self.analysis.as_ref().and_then(CallAnalysis::summary),
            "qa" => {
                if let Some(a) = self.analysis.as_ref() {
                    let caller_end = a
                        .state()
                        .windows
                        .iter()
                        .rev()
                        .find(|w| Some(&w.speaker) != self.facts.agent.as_ref())
                        .and_then(|w| w.sentiment.as_ref().map(|s| s.score));
                    let input = QaInput {
                        segments: &self.segments,
                        agent: self.facts.agent.as_deref(),
                        holds: self.facts.holds.clone(),
                        silence_gaps: self.facts.silence_gaps.clone(),
                        overlap_instances: self.facts.overlap_instances,
                        duration: self.facts.duration,
                        caller_end_sentiment: caller_end,
                    };
                    self.qa = a.qa(&input);
                }
            }
            _ => {}
        }
        self.next += 1;
        Some(stage)
    }

    /// Run every remaining analysis stage.
    pub fn run(mut self, now: DateTime<Utc>) -> PostCall {
        while self.step(now).is_some() {}
        self.finish(now)
    }

    /// The result (stages not run yet are simply absent).
    pub fn finish(self, now: DateTime<Utc>) -> PostCall {
        let Some(a) = self.analysis else {
            return PostCall {
                completed_at: now,
                progressive: Progressive::default(),
                entities_by_label: Default::default(),
                classification: None,
                summary: self.summary,
                qa: self.qa,
                insights: Insights::default(),
                cumulative_translation: String::new(),
            };
        };
        let p = a.snapshot();
        let mut words_by: std::collections::BTreeMap<&str, usize> = Default::default();
        let mut words = 0;
        for s in &self.segments {
            let n = s.text.split_whitespace().count();
            words += n;
            *words_by.entry(s.speaker.as_str()).or_default() += n;
        }
        let scores: Vec<f64> = p
            .windows
            .iter()
            .filter_map(|w| w.sentiment.as_ref().map(|s| s.score))
            .collect();
        let mut watched: std::collections::BTreeMap<String, u64> = Default::default();
        let compliance: std::collections::BTreeSet<&str> = self
            .res
            .keywords
            .iter()
            .flat_map(|c| c.lists.iter())
            .filter(|l| l.compliance)
            .map(|l| l.name.as_str())
            .collect();
        for k in &p.keywords {
            if k.count > 0 && !compliance.contains(k.list.as_str()) {
                *watched.entry(k.list.clone()).or_default() += k.count;
            }
        }
        let insights = Insights {
            segments: self.segments.len(),
            words,
            dominant_speaker: words_by
                .iter()
                .max_by_key(|(_, n)| **n)
                .map(|(s, _)| s.to_string()),
            overall_sentiment: (!scores.is_empty())
                .then(|| scores.iter().sum::<f64>() / scores.len() as f64),
            sentiment_alerts: p.sentiment_alerts.len(),
            holds: self.facts.holds.len(),
            hold_seconds: self.facts.holds.iter().map(|(a, b)| (b - a).max(0.0)).sum(),
            watched_phrases: watched,
            missing_compliance: p.missing_compliance.clone(),
            priority: p
                .latest_classification
                .as_ref()
                .map(|c| c.priority.to_string()),
        };
        PostCall {
            completed_at: now,
            entities_by_label: a.entities_by_label(),
            classification: p.latest_classification.clone(),
            cumulative_translation: p.cumulative_translation(),
            summary: self.summary,
            qa: self.qa,
            insights,
            progressive: p,
        }
    }
}

/// Where a session's post-call pipeline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessingStatus {
    /// Not run yet (the call is live, or the pipeline is queued).
    Pending,
    InProgress,
    Completed,
    Failed,
}

/// The post-call pipeline's progress, stored with the session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessingInfo {
    pub processing_status: ProcessingStatus,
    /// `auto` (call end) or `manual` (`POST .../trigger-ai-pipeline`).
    pub trigger: String,
    pub current_stage: Option<String>,
    pub stages_completed: Vec<String>,
    pub stages_remaining: Vec<String>,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub errors: Vec<String>,
    /// Wall time the run took, milliseconds.
    pub duration_ms: Option<f64>,
    /// Seconds of call audio it covered.
    pub audio_seconds: f64,
}

impl ProcessingInfo {
    pub fn queued(trigger: &str, at: DateTime<Utc>, audio_seconds: f64) -> Self {
        Self {
            processing_status: ProcessingStatus::Pending,
            trigger: trigger.into(),
            current_stage: None,
            stages_completed: vec![],
            stages_remaining: STAGES.iter().map(|s| s.to_string()).collect(),
            queued_at: at,
            started_at: None,
            completed_at: None,
            errors: vec![],
            duration_ms: None,
            audio_seconds,
        }
    }

    pub fn progress_percentage(&self) -> f64 {
        let done = self.stages_completed.len() as f64;
        let all = done + self.stages_remaining.len() as f64;
        if all == 0.0 {
            0.0
        } else {
            (done / all * 100.0 * 10.0).round() / 10.0
        }
    }

    /// Mark `stage` running (it leaves `stages_remaining`).
    pub fn begin(&mut self, stage: &str, at: DateTime<Utc>) {
        if self.started_at.is_none() {
            self.started_at = Some(at);
        }
        self.processing_status = ProcessingStatus::InProgress;
        self.current_stage = Some(stage.into());
        self.stages_remaining.retain(|s| s != stage);
    }

    /// Mark the current stage done.
    pub fn done(&mut self) {
        if let Some(s) = self.current_stage.take() {
            self.stages_completed.push(s);
        }
    }
}

/// A session's analysis: live (progressive) and post-call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalysisRecord {
    pub progressive: Option<Progressive>,
    pub post_call: Option<PostCall>,
    pub processing: Option<ProcessingInfo>,
}

impl AnalysisRecord {
    /// The freshest progressive view: the post-call one when it ran.
    pub fn latest(&self) -> Option<&Progressive> {
        self.post_call
            .as_ref()
            .map(|p| &p.progressive)
            .or(self.progressive.as_ref())
    }
}
