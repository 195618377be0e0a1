//! Multipart body splitting on its own: the first line of the input is the
//! Content-Type header value, the rest the body.
#![no_main]

use earshot::sip::{body_parts, Limits, MediaType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (ct_line, body) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => (&data[..nl], &data[nl + 1..]),
        None => (data, &[][..]),
    };
    let Ok(ct_text) = std::str::from_utf8(ct_line) else {
        return;
    };
    let ct = MediaType::parse(ct_text.trim_end_matches('\r'));
    if let Some(mt) = &ct {
        // What we print is what we parse.
        let again = MediaType::parse(&mt.to_string());
        assert_eq!(again.as_ref(), Some(mt), "Display of {mt:?}");
    }
    let limits = Limits::default();
    let Ok(parts) = body_parts(ct.as_ref(), body, &limits) else {
        return;
    };
    assert!(parts.len() <= limits.max_parts);
    if body.is_empty() {
        assert!(parts.is_empty());
    }
    if !ct.as_ref().is_some_and(MediaType::is_multipart) && !body.is_empty() {
        // A single part: the body itself, with the message's type.
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body, body);
        assert_eq!(parts[0].content_type, ct);
    }
    // Parts are disjoint pieces of the body (nested ones flattened), none
    // of them a multipart any more.
    let total: usize = parts.iter().map(|p| p.body.len()).sum();
    assert!(total <= body.len());
    for p in &parts {
        assert!(!p.content_type.as_ref().is_some_and(MediaType::is_multipart));
        let _ = (p.mime(), p.disposition());
        if let Some(d) = p.disposition() {
            assert!(!d.is_empty() && !d.contains(';'));
        }
    }
});
