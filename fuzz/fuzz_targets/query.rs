//! REST query strings as actix-web's `web::Query<HashMap<String, String>>`
//! decodes them (`serde_urlencoded`), then every parameter parser of the
//! API (`earshot::api`): the call-history filter, `types=` of /ws/events,
//! `include_segments=`, `format=`, `reason=`, call ids. The decoded map
//! must survive re-encoding.
#![no_main]

use earshot::api::{
    end_reason, export_format, parse_flag, parse_query, parse_types, valid_call_id, MAX_PAGE_SIZE,
    MAX_TYPES,
};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let Ok(qs) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(q) = serde_urlencoded::from_str::<HashMap<String, String>>(qs) else {
        return;
    };
    let again = serde_urlencoded::to_string(&q).expect("a map encodes");
    assert_eq!(
        serde_urlencoded::from_str::<HashMap<String, String>>(&again).as_ref(),
        Ok(&q),
        "{again}"
    );
    let get = |k: &str| q.get(k).map(String::as_str);

    match parse_query(&q) {
        Ok(s) => {
            assert!(s.page >= 1);
            assert!((1..=MAX_PAGE_SIZE).contains(&s.page_size));
            if let (Some(f), Some(t)) = (s.from, s.to) {
                assert!(f <= t);
            }
            if let Some(p) = &s.participant {
                assert!(!p.is_empty() && p.len() <= 256);
            }
        }
        Err(errs) => {
            assert!(!errs.is_empty());
            for e in errs {
                assert_eq!(e["loc"][0], "query");
                assert!(e["msg"].as_str().is_some_and(|m| !m.is_empty()));
            }
        }
    }
    if let Ok(Some(types)) = parse_types(get("types")) {
        assert!(!types.is_empty() && types.len() <= MAX_TYPES);
        for t in types {
            assert!(!t.is_empty() && t.len() <= 64);
            assert!(t.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'));
        }
    }
    if let Ok(r) = end_reason(get("reason")) {
        assert!(!r.is_empty() && r.len() <= 200 && !r.chars().any(char::is_control));
    }
    let flag = parse_flag(get("include_segments"));
    if get("include_segments").is_none() {
        assert_eq!(flag, Ok(false));
    }
    let _ = export_format(get("format"));
    if let Some(id) = get("call_id") {
        if valid_call_id(id) {
            assert!(!id.is_empty() && id.len() <= 256);
        }
    }
    let _ = get("leg");
});
