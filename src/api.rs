//! What API clients send, parsed without the runtime: REST query parameters
//! and WebSocket client commands.
//!
//! The HTTP/WebSocket server (`earshot-actors`) decodes a query string into
//! a `HashMap<String, String>` (actix-web's `web::Query`, i.e.
//! `serde_urlencoded`) and a client text frame into a `&str`; everything
//! after that lives here, so it is unit-tested and fuzzed (`fuzz/`, targets
//! `query` and `ws_frame`) without an actix system.

use crate::session::{CallStatus, SessionQuery};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// Longest call id accepted in a path or query.
pub const MAX_CALL_ID: usize = 256;
/// Largest `page_size` of the call history.
pub const MAX_PAGE_SIZE: usize = 500;
/// Most entries in `types=` of `/ws/events`.
pub const MAX_TYPES: usize = 64;

/// Parse the call-history query (`status`, `from`, `to`, `participant`,
/// `page`, `page_size`; others ignored). Every bad parameter becomes one
/// 422 item `{"loc": ["query", name], "msg": ..., "type": ...}`.
pub fn parse_query(q: &HashMap<String, String>) -> Result<SessionQuery, Vec<Value>> {
    let mut errs = vec![];
    let mut out = SessionQuery::default();
    let err = |name: &str, msg: String, kind: &str| json!({"loc": ["query", name], "msg": msg, "type": kind});
    for (k, v) in q {
        match k.as_str() {
            "status" => match CallStatus::parse(v) {
                Some(s) => out.status = Some(s),
                None => errs.push(err(
                    "status",
                    "must be one of active, completed, failed, interrupted".into(),
                    "enum",
                )),
            },
            "from" | "to" => match parse_time(v) {
                Some(t) if k == "from" => out.from = Some(t),
                Some(t) => out.to = Some(t),
                None => errs.push(err(
                    k,
                    "must be an RFC 3339 timestamp or a YYYY-MM-DD date".into(),
                    "datetime_parsing",
                )),
            },
            "participant" => {
                if v.is_empty() || v.len() > 256 {
                    errs.push(err(
                        "participant",
                        "must be 1-256 characters".into(),
                        "string_too_long",
                    ));
                } else {
                    out.participant = Some(v.clone());
                }
            }
            "page" => match v.parse::<usize>() {
                Ok(p) if p >= 1 => out.page = p,
                _ => errs.push(err("page", "must be an integer >= 1".into(), "int_parsing")),
            },
            "page_size" => match v.parse::<usize>() {
                Ok(p) if (1..=MAX_PAGE_SIZE).contains(&p) => out.page_size = p,
                _ => errs.push(err(
                    "page_size",
                    format!("must be an integer between 1 and {MAX_PAGE_SIZE}"),
                    "int_parsing",
                )),
            },
            _ => {}
        }
    }
    if let (Some(f), Some(t)) = (out.from, out.to) {
        if f > t {
            errs.push(err("from", "must not be after `to`".into(), "value_error"));
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// An RFC 3339 timestamp or a `YYYY-MM-DD` date (midnight UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc())
}

/// True when `id` can be a call id: 1-256 characters, no control
/// characters.
pub fn valid_call_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_CALL_ID && !id.chars().any(|c| c.is_control())
}

/// `reason=` of ending a call (default `manual`): 1-200 printable
/// characters, else the 422 message.
pub fn end_reason(q: Option<&str>) -> Result<String, &'static str> {
    let reason = q.unwrap_or("manual");
    if reason.is_empty() || reason.len() > 200 || reason.chars().any(|c| c.is_control()) {
        return Err("reason must be 1-200 printable characters");
    }
    Ok(reason.to_owned())
}

/// A boolean query flag (`include_segments=`): absent is `false`;
/// `true/1/yes/on` and `false/0/no/off` in any case; anything else is the
/// 422 message.
pub fn parse_flag(q: Option<&str>) -> Result<bool, String> {
    let Some(v) = q.map(str::to_ascii_lowercase) else {
        return Ok(false);
    };
    match v.as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!(
            "Input should be a valid boolean, unable to interpret input {v:?}"
        )),
    }
}

/// How `/export` renders a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Json,
    Text,
}

/// `format=json|text` (any case; default json).
pub fn export_format(q: Option<&str>) -> Result<ExportFormat, &'static str> {
    match q.map(str::to_ascii_lowercase).as_deref() {
        None | Some("json") => Ok(ExportFormat::Json),
        Some("text") => Ok(ExportFormat::Text),
        Some(_) => Err("Input should be 'json' or 'text'"),
    }
}

/// Parse `types=a,b` of `/ws/events` (None when absent or empty).
pub fn parse_types(q: Option<&str>) -> Result<Option<HashSet<String>>, String> {
    let Some(q) = q.filter(|q| !q.trim().is_empty()) else {
        return Ok(None);
    };
    let mut out = HashSet::new();
    for t in q.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if t.len() > 64 || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!(
                "invalid event type {t:?} (letters, digits and _ only, at most 64)"
            ));
        }
        out.insert(t.to_string());
    }
    if out.len() > MAX_TYPES {
        return Err(format!("at most {MAX_TYPES} types"));
    }
    Ok((!out.is_empty()).then_some(out))
}

/// What a WebSocket client may ask.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Ping,
    /// Only this call (`None`: every call).
    Subscribe(Option<String>),
}

/// Parse a WebSocket client text frame: `{"type":"ping"}` or
/// `{"type":"subscribe","call_id":"…"|null}`; anything else is the error
/// message sent back.
pub fn client_command(text: &str) -> Result<Command, String> {
    let v: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Some(ty) = v.get("type").and_then(Value::as_str) else {
        return Err("a JSON object with a string \"type\" is expected".into());
    };
    match ty {
        "ping" => Ok(Command::Ping),
        "subscribe" => match v.get("call_id") {
            None | Some(Value::Null) => Ok(Command::Subscribe(None)),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_CALL_ID => {
                Ok(Command::Subscribe(Some(s.clone())))
            }
            Some(_) => Err("call_id must be a non-empty string (at most 256) or null".into()),
        },
        other => Err(format!(
            "unknown type {other:?} (expected \"ping\" or \"subscribe\")"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn query_validation() {
        let ok = parse_query(&q(&[
            ("status", "completed"),
            ("from", "2026-01-01"),
            ("to", "2026-02-01T00:00:00Z"),
            ("page", "2"),
            ("page_size", "10"),
        ]))
        .unwrap();
        assert_eq!(ok.status, Some(CallStatus::Completed));
        assert_eq!(ok.page, 2);
        let errs = parse_query(&q(&[
            ("status", "done"),
            ("page", "0"),
            ("page_size", "9999"),
        ]))
        .unwrap_err();
        assert_eq!(errs.len(), 3);
        let errs = parse_query(&q(&[("from", "2026-03-01"), ("to", "2026-02-01")])).unwrap_err();
        assert_eq!(errs[0]["loc"][1], "from");
    }

    #[test]
    fn small_parameters() {
        assert!(valid_call_id("abc") && !valid_call_id("") && !valid_call_id("a\nb"));
        assert!(!valid_call_id(&"x".repeat(MAX_CALL_ID + 1)));
        assert_eq!(end_reason(None).as_deref(), Ok("manual"));
        assert_eq!(
            end_reason(Some("agent hung up")).as_deref(),
            Ok("agent hung up")
        );
        assert!(end_reason(Some("")).is_err() && end_reason(Some("a\u{7}")).is_err());
        assert_eq!(parse_flag(None), Ok(false));
        assert_eq!(parse_flag(Some("ON")), Ok(true));
        assert_eq!(parse_flag(Some("0")), Ok(false));
        assert!(parse_flag(Some("maybe")).unwrap_err().contains("\"maybe\""));
        assert_eq!(export_format(None), Ok(ExportFormat::Json));
        assert_eq!(export_format(Some("TEXT")), Ok(ExportFormat::Text));
        assert!(export_format(Some("xml")).is_err());
    }

    #[test]
    fn event_types() {
        assert_eq!(parse_types(None), Ok(None));
        assert_eq!(parse_types(Some(" , ")), Ok(None));
        let ty = parse_types(Some("dtmf, hold_started,dtmf"))
            .unwrap()
            .unwrap();
        assert_eq!(ty.len(), 2);
        assert!(ty.contains("hold_started"));
        assert!(parse_types(Some("dtmf,<script>")).is_err());
    }

    #[test]
    fn client_commands() {
        assert_eq!(client_command(r#"{"type":"ping"}"#), Ok(Command::Ping));
        assert_eq!(
            client_command(r#"{"type":"subscribe","call_id":"abc"}"#),
            Ok(Command::Subscribe(Some("abc".into())))
        );
        assert_eq!(
            client_command(r#"{"type":"subscribe","call_id":null}"#),
            Ok(Command::Subscribe(None))
        );
        assert!(client_command("not json")
            .unwrap_err()
            .contains("invalid JSON"));
        assert!(client_command("[1,2]").is_err());
        assert!(client_command(r#"{"type":"subscribe","call_id":5}"#).is_err());
        assert!(client_command(r#"{"type":"dance"}"#)
            .unwrap_err()
            .contains("unknown type"));
    }
}
