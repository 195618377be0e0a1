//! RFC 7865 recording metadata (and its vendor dialects): parse, the
//! label/participant lookups, the update merge, and a serde round trip of
//! what is stored.
#![no_main]

use earshot::metadata::{self, DataMode, MetadataLimits, RecordingMetadata};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = MetadataLimits::default();
    let Ok(md) = metadata::parse(data, &limits) else {
        return;
    };
    assert!(data.len() <= limits.max_bytes);
    assert!(md.participants.len() + md.streams.len() <= limits.max_elements);
    for s in &md.streams {
        if let Some(l) = &s.label {
            let senders = md.senders_of_label(l);
            assert_eq!(md.sender_of_label(l), senders.first().copied());
        }
    }
    for p in &md.participants {
        for l in md.labels_sent_by(&p.id) {
            assert!(md.streams.iter().any(|s| s.label.as_ref() == Some(&l)));
        }
        for aor in &p.aors {
            assert!(!aor.is_empty());
        }
    }
    // What the session record stores survives JSON.
    let json = serde_json::to_string(&md).expect("metadata serialises");
    let back: RecordingMetadata = serde_json::from_str(&json).expect("metadata deserialises");
    assert_eq!(back, md);
    // A complete document replaces what was there; a partial one is merged
    // and never changes the data mode.
    let mut state = RecordingMetadata {
        vendor_hint: Some("earlier".into()),
        ..RecordingMetadata::default()
    };
    state.merge(md.clone());
    match md.data_mode {
        DataMode::Complete => {
            let mut want = md.clone();
            want.vendor_hint = md.vendor_hint.clone().or(Some("earlier".into()));
            assert_eq!(state, want);
        }
        DataMode::Partial => {
            assert_eq!(state.data_mode, DataMode::Complete);
            assert!(state.participants.len() >= md.participants.len().min(1));
        }
    }
    // Merging the same partial update twice adds nothing the second time
    // except participants and streams without an id.
    let mut twice = state.clone();
    if md.data_mode == DataMode::Partial {
        twice.merge(md.clone());
        assert_eq!(twice.original_call_ids, state.original_call_ids);
        assert_eq!(twice.extensions, state.extensions);
    }
});
