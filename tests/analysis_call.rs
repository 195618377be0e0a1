//! One call's progressive analysis and post-call run (`earshot::analysis::
//! call`) over real transcripts: the helpline and billing calls as the
//! engine's ASR path transcribed them (`tests/analysis/*.session.json`),
//! fed final by final as a live call would. Checks the windows, the events
//! an agent-assist screen gets, the evolution of entities and
//! classification, PII redaction, the post-call summary/QA/insights, and
//! semantic classification with the real MiniLM encoder.

use earshot::analysis::call::{
    AnalysisConfig, AnalysisEvent, CallAnalysis, CallFacts, EncoderRuntime, Models, PostCallRun,
    Resources,
};
use earshot::asr::Segment;
use earshot::session::SessionRecord;
use std::path::Path;
use std::sync::Arc;

mod common;
use common::{root, session as record};

fn resources(cfg: AnalysisConfig) -> Arc<Resources> {
    let lex = root().join("models/lexicons/vader_lexicon.txt");
    assert!(
        lex.is_file(),
        "run scripts/fetch-lexicons (scripts/setup does)"
    );
    Arc::new(Resources::load(cfg, &root().join("config"), &root().join("models")).unwrap())
}

fn in_time_order(rec: &SessionRecord) -> Vec<Segment> {
    let mut s = rec.transcript_segments.clone();
    s.sort_by(|a, b| a.start_time.total_cmp(&b.start_time));
    s
}

fn run(res: &Arc<Resources>, segs: &[Segment]) -> (CallAnalysis, Vec<AnalysisEvent>) {
    let mut a = CallAnalysis::new(res.clone());
    let now = chrono::Utc::now();
    let mut events = vec![];
    for s in segs {
        events.extend(a.push(s, now));
    }
    events.extend(a.flush());
    (a, events)
}

#[test]
fn helpline_call_live() {
    let res = resources(AnalysisConfig::default());
    let rec = record("helpline");
    let segs = in_time_order(&rec);
    let (a, events) = run(&res, &segs);
    let st = a.state();
    assert_eq!(st.windows.len(), segs.len(), "one window per final");
    // Entities appear over the call, each once, each announced once.
    let detected: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            AnalysisEvent::EntityDetected { entity } => Some(entity.label.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(detected.len(), st.entities.len());
    let by = a.entities_by_label();
    for (label, want) in [
        ("PERSON", "Grace"),
        ("LOCATION", "Mombasa"),
        ("AGE", "12"),
        ("CASE_NUMBER", "45721"),
    ] {
        assert!(
            by.get(label)
                .is_some_and(|v| v.iter().any(|x| x.contains(want))),
            "{label} {want}: {by:?}"
        );
    }
    let with_new: Vec<u64> = st
        .windows
        .iter()
        .filter(|w| !w.new_entities.is_empty())
        .map(|w| w.window_id)
        .collect();
    assert!(
        with_new.len() >= 4,
        "entities found over several windows: {with_new:?}"
    );
    // Classification: unclassified at first, child protection once the
    // abuse is told, one change event per change, high priority.
    let evo = &st.classification_evolution;
    assert!(evo.len() >= 2);
    assert_eq!(evo[0].window_id, 0);
    assert_eq!(evo[0].classification.main_category, "unclassified");
    let changes = events
        .iter()
        .filter(|e| matches!(e, AnalysisEvent::ClassificationChanged { .. }))
        .count();
    assert_eq!(changes, evo.len() - 1);
    let last = st.latest_classification.as_ref().unwrap();
    assert_eq!(last.main_category, "Child Protection");
    assert_eq!(last.priority.to_string(), "high");
    // Keywords: the caller's "not safe" is a risk phrase, heard live.
    assert!(events.iter().any(|e| matches!(e,
        AnalysisEvent::KeywordDetected { hit } if hit.list == "risk" && hit.phrase == "not safe")));
    // Sentiment per participant.
    assert_eq!(st.sentiment.len(), 2);
    assert!(st.windows.iter().all(|w| w.sentiment.is_some()));
}

#[test]
fn post_call_run_has_summary_qa_and_insights() {
    let res = resources(AnalysisConfig::default());
    let rec = record("billing");
    let facts = CallFacts {
        duration: rec.total_audio_duration,
        agent: None,
        holds: vec![(36.5, 43.5)],
        silence_gaps: vec![],
        overlap_instances: 0,
    };
    let mut run = PostCallRun::new(res.clone(), rec.transcript_segments.clone(), vec![], facts);
    let now = chrono::Utc::now();
    let mut stages = vec![];
    while let Some(s) = run.step(now) {
        stages.push(s);
    }
    assert_eq!(stages, ["analysis", "translation", "summary", "qa"]);
    let p = run.finish(now);
    let c = p.classification.as_ref().unwrap();
    assert_eq!(
        c.main_category, "unclassified",
        "helpline taxonomy on a billing call"
    );
    let summary = p.summary.as_ref().unwrap();
    assert!(summary.text.contains("charged twice"), "{}", summary.text);
    let qa = p.qa.as_ref().unwrap();
    assert!(qa.overall_qa_score > 80.0, "{}", qa.overall_qa_score);
    assert_eq!(p.insights.segments, rec.transcript_segments.len());
    assert_eq!(p.insights.holds, 1);
    assert!(
        p.insights.missing_compliance.is_empty(),
        "{:?}",
        p.insights.missing_compliance
    );
    assert!(p.entities_by_label["ACCOUNT_NUMBER"].contains(&"773419".to_string()));

    // The same call with the contact-centre taxonomy.
    let cc = resources(AnalysisConfig {
        taxonomy: "contact-centre".into(),
        ..AnalysisConfig::default()
    });
    let p = PostCallRun::new(
        cc,
        rec.transcript_segments.clone(),
        vec![],
        CallFacts::default(),
    )
    .run(now);
    let c = p.classification.unwrap();
    assert_eq!(
        (c.main_category.as_str(), c.sub_category.as_str()),
        ("Billing", "Duplicate Charge")
    );
}

#[test]
fn redaction_masks_stored_and_pushed_text() {
    let res = resources(AnalysisConfig {
        redact_pii: true,
        ..AnalysisConfig::default()
    });
    let rec = record("helpline");
    let mut segs = in_time_order(&rec);
    // A caller reading out a card number and an e-mail.
    let mut extra = segs[1].clone();
    extra.segment_id = 999;
    extra.start_time = 200.0;
    extra.end_time = 204.0;
    extra.text = "My card is 4111 1111 1111 1111 and my email is amina@example.org".into();
    segs.push(extra);
    let (a, events) = run(&res, &segs);
    let w = a
        .state()
        .windows
        .iter()
        .find(|w| w.segment_id == 999)
        .unwrap();
    assert_eq!(w.text, "My card is [CARD] and my email is [EMAIL]");
    let phone = a
        .state()
        .windows
        .iter()
        .find(|w| w.text.contains("call me back"))
        .unwrap();
    assert!(phone.text.contains("[PHONE]"), "{}", phone.text);
    let pushed = serde_json::to_string(&events).unwrap();
    assert!(!pushed.contains("4111"), "{pushed}");
    assert!(!pushed.contains("amina@example.org"));
}

/// Semantic scoring with the real encoder: an adult caller's account of
/// domestic violence, in words none of the taxonomy's phrases for it match,
/// is classified through the examples (phrase scoring alone calls it child
/// abuse from "beat me").
#[test]
fn semantic_scoring_with_minilm() {
    for runtime in [EncoderRuntime::Candle, EncoderRuntime::Onnx] {
        semantic_scoring(runtime);
    }
}

fn semantic_scoring(runtime: EncoderRuntime) {
    let dir = root().join("models/all-minilm-l6-v2");
    if !Path::new(&dir).join("model.safetensors").is_file() {
        panic!("run scripts/fetch-embeddings (scripts/setup does)");
    }
    let plain = resources(AnalysisConfig::default());
    let semantic = resources(AnalysisConfig {
        semantic: true,
        semantic_runtime: runtime,
        ..AnalysisConfig::default()
    });
    let mut enc = semantic
        .encoder
        .as_ref()
        .expect("encoder spec")
        .load()
        .unwrap();
    assert_eq!(enc.dim(), 384);
    let v = enc
        .encode(&[
            "My husband comes home drunk and he hurts me, I am scared of him",
            "My husband beats me when he is drunk",
        ])
        .unwrap();
    eprintln!("cosine {}", earshot::analysis::cosine(&v[0], &v[1]));
    let rec = record("helpline");
    let lines = [
        "My husband comes home drunk and he hurts me",
        "Last night he beat me again in front of the children",
        "I am afraid of my husband, he says he will kill me",
    ];
    let now = chrono::Utc::now();
    let mut a = CallAnalysis::new(plain);
    let mut b = CallAnalysis::new(semantic);
    for (i, text) in lines.iter().enumerate() {
        let mut seg = rec.transcript_segments[0].clone();
        seg.segment_id = i as u64;
        seg.speaker = "Party B".into();
        seg.text = text.to_string();
        a.push(&seg, now);
        b.push_with(
            &seg,
            now,
            Models {
                encoder: Some(enc.as_mut()),
                ner: None,
                translator: None,
            },
        );
    }
    let without = a.state().latest_classification.clone().unwrap();
    let with = b.state().latest_classification.clone().unwrap();
    eprintln!("without: {:?}\nwith: {:?}", without.evidence, with.evidence);
    eprintln!(
        "{runtime:?} — without embeddings: {} ({:.2}); with: {} / {} ({:.2})",
        without.main_category,
        without.confidence,
        with.main_category,
        with.sub_category,
        with.confidence
    );
    // Phrases alone read "beat me" as child abuse; the examples recognise
    // an adult's domestic violence.
    assert_eq!(without.main_category, "Child Protection");
    assert_eq!(
        (with.main_category.as_str(), with.sub_category.as_str()),
        ("Gender-Based Violence", "Domestic Violence")
    );
    assert!(
        with.evidence
            .iter()
            .any(|e| e.phrase.starts_with("semantic: ")),
        "{:?}",
        with.evidence
    );
}

/// The NER model slot: a token-classification model run through ONNX
/// Runtime (the demo model of `scripts/make-onnx-models`) beside the rules;
/// its entities join the call's, deduplicated, marked with their source.
#[test]
fn onnx_ner_slot_adds_model_entities() {
    let dir = root().join(earshot::analysis::onnx::NER_DEFAULT_DIR);
    let rt = root().join(earshot::analysis::onnx::DEFAULT_RUNTIME);
    assert!(
        dir.join("model.onnx").is_file() && rt.exists(),
        "run scripts/fetch-onnxruntime and scripts/make-onnx-models (scripts/setup does)"
    );
    let res = resources(AnalysisConfig {
        ner_model: Some(dir.clone()),
        ..AnalysisConfig::default()
    });
    let (path, opts) = res.ner.clone().expect("the slot is configured");
    let mut ner = earshot::analysis::onnx::OnnxNer::load_with(&path, &opts).unwrap();
    let rec = record("billing");
    let mut a = CallAnalysis::new(res.clone());
    let now = chrono::Utc::now();
    for s in in_time_order(&rec) {
        a.push_with(
            &s,
            now,
            Models {
                encoder: None,
                ner: Some(&mut ner),
                translator: None,
            },
        );
    }
    let st = a.state();
    let sources: Vec<(&str, &str, &str)> = st
        .entities
        .iter()
        .map(|e| (e.source.as_str(), e.label.as_str(), e.text.as_str()))
        .collect();
    eprintln!("{sources:?}");
    // Rules and model both contribute; one entry per entity.
    assert!(
        sources.iter().any(|(s, _, _)| s.starts_with("onnx:")),
        "{sources:?}"
    );
    assert!(sources.iter().any(|(s, _, _)| !s.starts_with("onnx:")));
    let persons: Vec<&str> = st
        .entities
        .iter()
        .filter(|e| e.label == "PERSON")
        .map(|e| e.normalized.as_deref().unwrap_or(&e.text))
        .collect();
    assert_eq!(
        persons
            .iter()
            .filter(|p| p.eq_ignore_ascii_case("david"))
            .count(),
        1,
        "David once though both found him: {persons:?}"
    );
    // A bad model directory is a load error, not a silent fallback.
    let bad = Resources::load(
        AnalysisConfig {
            ner_model: Some(root().join("tests/analysis")),
            ..AnalysisConfig::default()
        },
        &root().join("config"),
        &root().join("models"),
    );
    assert!(bad.is_err());
}

/// The translation model slot in a call: finals in a language the model
/// covers get a translation window from it (the demo Swahili → English
/// model of `scripts/make-onnx-models`), others do not; a post-call run
/// keeps the live windows and translates the finals the live analysis did
/// not (a model added after the call).
#[test]
fn onnx_translation_slot_in_a_call() {
    let dir = root().join("models/onnx-mt-demo-sw-en");
    assert!(
        dir.join("decoder_model.onnx").is_file(),
        "run scripts/make-onnx-models (scripts/setup does)"
    );
    let res = resources(AnalysisConfig {
        translation_model: Some(dir.clone()),
        redact_pii: true,
        ..AnalysisConfig::default()
    });
    let (path, opts, info) = res.translator.clone().expect("the slot is configured");
    assert_eq!(info.source_languages, vec!["sw".to_string()]);
    let mut m = earshot::analysis::translate::OnnxTranslator::load_with(&path, &opts).unwrap();
    let base = record("helpline").transcript_segments[0].clone();
    let seg = |id: u64, t: f64, lang: Option<&str>, text: &str| Segment {
        segment_id: id,
        start_time: t,
        end_time: t + 2.0,
        language: lang.map(str::to_string),
        text: text.to_string(),
        words: vec![],
        ..base.clone()
    };
    let segs = vec![
        seg(1, 0.0, Some("sw"), "Habari, tafadhali msaada."),
        seg(2, 3.0, Some("en"), "How can I help you today?"),
        seg(3, 6.0, Some("fr"), "Bonjour, je voudrais de l'aide."),
        seg(
            4,
            9.0,
            Some("sw"),
            "Mtoto yangu ni mgonjwa, namba 0712 345 678.",
        ),
        seg(5, 12.0, None, "Okay."),
    ];
    let mut a = CallAnalysis::new(res.clone());
    let now = chrono::Utc::now();
    for s in &segs {
        a.push_with(
            s,
            now,
            Models {
                translator: Some(&mut m),
                ..Models::default()
            },
        );
    }
    let tw = &a.state().translation_windows;
    let got: Vec<(u64, &str, &str)> = tw
        .iter()
        .map(|w| {
            (
                w.segment_id,
                w.source_language.as_deref().unwrap_or(""),
                w.translation.as_str(),
            )
        })
        .collect();
    eprintln!("{got:?}");
    assert_eq!(got.len(), 2, "only the Swahili finals: {got:?}");
    assert_eq!(got[0], (1, "sw", "news please help"));
    assert_eq!(got[1].0, 4);
    assert!(got[1].2.starts_with("child my am"), "{got:?}");
    // Redaction covers the original and the translation alike.
    assert!(!tw[1].original.contains("345 678"), "{}", tw[1].original);
    assert!(tw
        .iter()
        .all(|w| w.model == "onnx:earshot-lexical-sw-en-demo"
            && w.language == "en"
            && w.translated));
    assert_eq!(
        a.state().cumulative_translation(),
        format!("news please help {}", got[1].2)
    );
    assert_eq!(a.state().windows.len(), segs.len());

    // Post-call with no live translation (the model was configured after
    // the call): the translation stage translates the Swahili finals.
    let mut post_call = |live: Vec<_>| {
        let mut run = PostCallRun::new(res.clone(), segs.clone(), live, CallFacts::default());
        while run.next_stage().is_some() {
            run.step_with(
                now,
                Models {
                    translator: Some(&mut m),
                    ..Models::default()
                },
            );
        }
        run.finish(now)
    };
    let post = post_call(vec![]);
    let ids: Vec<u64> = post
        .progressive
        .translation_windows
        .iter()
        .map(|w| w.segment_id)
        .collect();
    assert_eq!(ids, vec![1, 4]);
    assert_eq!(
        post.cumulative_translation,
        a.state().cumulative_translation()
    );
    // With the live windows given, nothing is translated twice.
    let live = a.state().translation_windows.clone();
    assert_eq!(post_call(live).progressive.translation_windows.len(), 2);
}
