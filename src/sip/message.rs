//! Parsed SIP messages and the builders for the ones we send.
//!
//! [`parse_message`] takes one framed message (see [`super::framing`]) and
//! turns it into a [`Request`] or [`Response`]:
//!
//! 1. the head is cut at the first blank line and must be UTF-8;
//! 2. it is normalised: continuation lines are unfolded, compact header names
//!    (`i:`, `v:`, `l:` ...) are expanded and well-known names get their
//!    canonical spelling (`call-id` → `Call-ID`);
//! 3. the body is cut to `Content-Length` (which rsip ignores);
//! 4. the normalised head is validated by `rsip` (method, Request-URI,
//!    version, status line, header names), plus the stricter checks rsip
//!    skips (single spaces, `SIP/2.0` only, three-digit status);
//! 5. header values are kept as the peer sent them (trimmed, unfolded).
//!
//! rsip cannot parse IPv6 references in a SIP URI, nor non-SIP URIs such as
//! `tel:`; both are legal and SBCs do send the former. For those the
//! `[v6]` literal is checked with [`std::net::Ipv6Addr`] and replaced by an
//! IPv4 placeholder before rsip validates the rest, and a non-SIP URI gets a
//! simple character-level check of its own.
//!
//! The accessors on [`Request`] (tags, top Via, Contact feature tags, ...)
//! parse header values on demand and never panic on odd input.

use super::{Limits, SipError};
use std::fmt;

/// SIP request methods. Unknown methods are kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Update,
    Info,
    Prack,
    Refer,
    Notify,
    Subscribe,
    Message,
    Register,
    Other(String),
}

impl Method {
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Prack => "PRACK",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Register => "REGISTER",
            Method::Other(s) => s,
        }
    }
    /// Case-sensitive per RFC 3261; anything unknown becomes `Other`.
    pub fn parse(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "UPDATE" => Method::Update,
            "INFO" => Method::Info,
            "PRACK" => Method::Prack,
            "REFER" => Method::Refer,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "REGISTER" => Method::Register,
            other => Method::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compact header forms (RFC 3261 7.3.3 and later RFCs) → long names.
const COMPACT: &[(char, &str)] = &[
    ('a', "Accept-Contact"),
    ('b', "Referred-By"),
    ('c', "Content-Type"),
    ('d', "Request-Disposition"),
    ('e', "Content-Encoding"),
    ('f', "From"),
    ('i', "Call-ID"),
    ('j', "Reject-Contact"),
    ('k', "Supported"),
    ('l', "Content-Length"),
    ('m', "Contact"),
    ('n', "Identity-Info"),
    ('o', "Event"),
    ('r', "Refer-To"),
    ('s', "Subject"),
    ('t', "To"),
    ('u', "Allow-Events"),
    ('v', "Via"),
    ('x', "Session-Expires"),
    ('y', "Identity"),
];

/// Well-known header names in their canonical spelling.
const CANONICAL: &[&str] = &[
    "Accept",
    "Accept-Contact",
    "Accept-Encoding",
    "Accept-Language",
    "Accept-Resource-Priority",
    "Alert-Info",
    "Allow",
    "Allow-Events",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Description",
    "Content-Disposition",
    "Content-Encoding",
    "Content-ID",
    "Content-Language",
    "Content-Length",
    "Content-Transfer-Encoding",
    "Content-Type",
    "CSeq",
    "Date",
    "Diversion",
    "Error-Info",
    "Event",
    "Expires",
    "From",
    "History-Info",
    "Identity",
    "Identity-Info",
    "In-Reply-To",
    "Max-Forwards",
    "MIME-Version",
    "Min-Expires",
    "Min-SE",
    "Organization",
    "P-Asserted-Identity",
    "P-Charging-Vector",
    "P-Preferred-Identity",
    "Path",
    "Priority",
    "Privacy",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "RAck",
    "Reason",
    "Record-Route",
    "Recv-Info",
    "Refer-To",
    "Referred-By",
    "Reject-Contact",
    "Remote-Party-ID",
    "Replaces",
    "Reply-To",
    "Request-Disposition",
    "Require",
    "Resource-Priority",
    "Retry-After",
    "Route",
    "RSeq",
    "Security-Client",
    "Security-Server",
    "Security-Verify",
    "Server",
    "Service-Route",
    "Session-Expires",
    "Session-ID",
    "SIP-ETag",
    "SIP-If-Match",
    "Subject",
    "Subscription-State",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "User-to-User",
    "Via",
    "Warning",
    "WWW-Authenticate",
];

/// Canonical long spelling of a header name: compact forms are expanded and
/// well-known names get their usual capitalisation (`call-id` → `Call-ID`,
/// `i` → `Call-ID`); anything else is returned unchanged.
pub fn canonical_header_name(name: &str) -> &str {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        let c = c.to_ascii_lowercase();
        if let Some((_, long)) = COMPACT.iter().find(|(k, _)| *k == c) {
            return long;
        }
    }
    CANONICAL
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name))
        .copied()
        .unwrap_or(name)
}

/// RFC 3261 `token` character.
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// Header lines in wire order, names expanded from compact forms and stored
/// in their canonical long spelling (`Call-ID`, `Via`, `Content-Type`, ...).
/// Look-ups are case-insensitive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// First value of a header (case-insensitive name; compact names accepted too).
    pub fn get(&self, name: &str) -> Option<&str> {
        let name = canonical_header_name(name);
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// All values in order. Comma-separated values are NOT split here.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let name = canonical_header_name(name);
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let name = match canonical_header_name(&name) {
            canon if canon == name => name,
            canon => canon.to_string(),
        };
        self.0.push((name, value.into()));
    }
    /// Remove every header of that name.
    pub fn remove(&mut self, name: &str) {
        let name = canonical_header_name(name);
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
    /// Tokens of a list header such as Require/Supported/Allow, lower-cased,
    /// split on commas across all its lines.
    pub fn tokens(&self, name: &str) -> Vec<String> {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    }
    /// Every comma-separated element of a header across all its lines
    /// (commas inside quotes or `<>` do not split), trimmed, in order.
    /// Handy for Via, Contact, Route and Record-Route.
    pub fn elements(&self, name: &str) -> Vec<&str> {
        let name = canonical_header_name(name);
        self.0
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| split_commas(v))
            .collect()
    }
    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Header lines as `(name, value)` pairs in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// A parsed `type/subtype; param=value` (Content-Type). `mime` is lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    pub mime: String,
    pub params: Vec<(String, String)>,
}

impl MediaType {
    pub fn parse(s: &str) -> Option<MediaType> {
        let mut pieces = split_outside_quotes(s, ';').into_iter();
        let mime = pieces.next()?.trim();
        let (ty, sub) = mime.split_once('/')?;
        let (ty, sub) = (ty.trim(), sub.trim());
        if !is_token(ty) || !is_token(sub) {
            return None;
        }
        let mut params = Vec::new();
        for p in pieces {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (name, value) = match p.split_once('=') {
                Some((n, v)) => (n.trim(), unquote(v.trim())),
                None => (p, String::new()),
            };
            if !is_token(name) {
                return None;
            }
            params.push((name.to_ascii_lowercase(), value));
        }
        Some(MediaType {
            mime: format!("{}/{}", ty, sub).to_ascii_lowercase(),
            params,
        })
    }
    /// Parameter value (name case-insensitive, quotes removed).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| strip_quotes(v))
    }
    /// `true` for `multipart/*`.
    pub fn is_multipart(&self) -> bool {
        self.mime.starts_with("multipart/")
    }
}

impl fmt::Display for MediaType {
    /// `type/subtype;name=value` with values quoted when they need it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.mime)?;
        for (n, v) in &self.params {
            if v.is_empty() {
                write!(f, ";{n}")?;
            } else if is_token(v) {
                write!(f, ";{n}={v}")?;
            } else {
                let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
                write!(f, ";{n}=\"{escaped}\"")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Request-URI as text.
    pub uri: String,
    pub headers: Headers,
    /// Body, exactly Content-Length bytes.
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    Request(Request),
    Response(Response),
}

// ---------------------------------------------------------------------------
// Low-level helpers shared with framing and multipart.

/// Position just past the first blank line (`\n\n` or `\n\r\n`) in `buf`,
/// searching from `from`: the end of the head, where the body starts.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        let rel = buf.get(i..)?.iter().position(|&b| b == b'\n')?;
        let nl = i + rel;
        match (buf.get(nl + 1), buf.get(nl + 2)) {
            (Some(b'\n'), _) => return Some(nl + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// Number of leading CR/LF bytes.
pub(crate) fn leading_crlf(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Parse a Content-Length value: digits only, no sign.
fn parse_content_length(v: &str) -> Result<usize, SipError> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SipError::BadContentLength(truncate(v, 40)));
    }
    v.parse::<usize>()
        .map_err(|_| SipError::BadContentLength(truncate(v, 40)))
}

/// Content-Length of a raw head (long or compact `l:` form). Several equal
/// values are accepted, differing ones are an error. Works on bytes so that
/// framing does not depend on the head being UTF-8.
pub(crate) fn scan_content_length(head: &[u8]) -> Result<Option<usize>, SipError> {
    let mut found: Option<usize> = None;
    // Skip the start line.
    for line in head.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        let name = trim_bytes(name);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = value.get(1..).unwrap_or_default();
        let value = std::str::from_utf8(value)
            .map_err(|_| SipError::BadContentLength("not ASCII".into()))?;
        let n = parse_content_length(value)?;
        match found {
            Some(prev) if prev != n => {
                return Err(SipError::BadContentLength(format!(
                    "conflicting values {prev} and {n}"
                )))
            }
            _ => found = Some(n),
        }
    }
    Ok(found)
}

fn trim_bytes(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace());
    let Some(start) = start else { return &[] };
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(b.len(), |e| e + 1);
    b.get(start..end).unwrap_or_default()
}

fn truncate(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Parse a block of header lines (no start line), unfolding continuation
/// lines and canonicalising names. `max` caps the number of header fields.
pub(crate) fn parse_header_block(text: &str, max: usize) -> Result<Headers, SipError> {
    let mut headers = Headers::default();
    for raw in text.split('\n') {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(SipError::BadHeader("control character in header".into()));
        }
        if line.starts_with([' ', '\t']) {
            // Continuation of the previous header (RFC 3261 7.3.1).
            let Some((_, value)) = headers.0.last_mut() else {
                return Err(SipError::BadHeader(
                    "continuation line before any header".into(),
                ));
            };
            let more = line.trim();
            if !more.is_empty() {
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(more);
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(SipError::BadHeader(format!(
                "no colon in {:?}",
                truncate(line, 40)
            )));
        };
        let name = name.trim_end_matches([' ', '\t']);
        if !is_token(name) {
            return Err(SipError::BadHeader(format!(
                "bad header name {:?}",
                truncate(name, 40)
            )));
        }
        if headers.len() >= max {
            return Err(SipError::TooManyHeaders(max));
        }
        headers.push(name, value.trim());
    }
    Ok(headers)
}

// ---------------------------------------------------------------------------
// Parsing.

/// Parse one framed message (as returned by the framing functions).
/// Validates with rsip, expands compact header names, unfolds continuation
/// lines, enforces `limits`, and requires the mandatory headers of a request
/// (Via, From, To, Call-ID, CSeq) — a missing one is `MissingHeader`.
pub fn parse_message(bytes: &[u8], limits: &Limits) -> Result<SipMessage, SipError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(SipError::TooLarge(limits.max_message_bytes));
    }
    // RFC 3261 7.5: CRLFs before the start line are ignored.
    let bytes = bytes.get(leading_crlf(bytes)..).unwrap_or_default();
    if bytes.is_empty() {
        return Err(SipError::BadStartLine("empty message".into()));
    }
    // A missing blank line is tolerated: the whole thing is the head.
    let head_end = find_head_end(bytes, 0).unwrap_or(bytes.len());
    let (head, rest) = bytes.split_at(head_end);
    let head = std::str::from_utf8(head).map_err(|_| SipError::NotUtf8)?;

    let (start, header_text) = match head.find('\n') {
        Some(i) => (
            head.get(..i).unwrap_or_default(),
            head.get(i + 1..).unwrap_or_default(),
        ),
        None => (head, ""),
    };
    let start = start.strip_suffix('\r').unwrap_or(start);
    let headers = parse_header_block(header_text, limits.max_headers)?;

    // Content-Length: every value must agree.
    let mut content_length: Option<usize> = None;
    for v in headers.get_all("Content-Length") {
        let n = parse_content_length(v)?;
        match content_length {
            Some(prev) if prev != n => {
                return Err(SipError::BadContentLength(format!(
                    "conflicting values {prev} and {n}"
                )))
            }
            _ => content_length = Some(n),
        }
    }
    let body = match content_length {
        Some(n) => rest.get(..n).ok_or(SipError::Truncated)?,
        None => rest,
    };

    let start = StartLine::parse(start)?;
    validate_with_rsip(&start, &headers)?;

    match start {
        StartLine::Request { method, uri } => {
            for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
                match headers.get(name) {
                    Some(v) if !v.is_empty() => {}
                    _ => return Err(SipError::MissingHeader(name)),
                }
            }
            let req = Request {
                method: Method::parse(method),
                uri: uri.to_string(),
                headers,
                body: body.to_vec(),
            };
            validate_request_headers(&req)?;
            Ok(SipMessage::Request(req))
        }
        StartLine::Response { status, reason } => Ok(SipMessage::Response(Response {
            status,
            reason: reason.to_string(),
            headers,
            body: body.to_vec(),
        })),
    }
}

enum StartLine<'a> {
    Request { method: &'a str, uri: &'a str },
    Response { status: u16, reason: &'a str },
}

impl<'a> StartLine<'a> {
    /// The strict checks rsip does not make (it tolerates double spaces,
    /// `SIP/1.0`, `+20` as a status code, a URI without scheme ...).
    fn parse(line: &'a str) -> Result<StartLine<'a>, SipError> {
        let bad = |what: &str| SipError::BadStartLine(what.to_string());
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(bad("control character"));
        }
        if line.len() >= 4
            && line
                .get(..4)
                .is_some_and(|p| p.eq_ignore_ascii_case("SIP/"))
        {
            let mut it = line.splitn(3, ' ');
            let version = it.next().unwrap_or_default();
            let code = it.next().unwrap_or_default();
            let reason = it.next().unwrap_or_default();
            if !version.eq_ignore_ascii_case("SIP/2.0") {
                return Err(bad("unsupported SIP version"));
            }
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("status code is not three digits"));
            }
            let status: u16 = code.parse().map_err(|_| bad("status code"))?;
            if !(100..=699).contains(&status) {
                return Err(bad("status code out of range"));
            }
            return Ok(StartLine::Response {
                status,
                reason: reason.trim(),
            });
        }
        let parts: Vec<&str> = line.split(' ').collect();
        let [method, uri, version] = parts.as_slice() else {
            return Err(bad("request line is not METHOD SP URI SP VERSION"));
        };
        if !is_token(method) {
            return Err(bad("bad method"));
        }
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(bad("unsupported SIP version"));
        }
        let Some((scheme, rest)) = uri.split_once(':') else {
            return Err(bad("Request-URI has no scheme"));
        };
        let scheme_ok = scheme
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        if !scheme_ok || rest.is_empty() || uri.chars().any(|c| c.is_whitespace()) {
            return Err(bad("malformed Request-URI"));
        }
        Ok(StartLine::Request { method, uri })
    }
}

/// Methods rsip 0.4 knows (it matches them case-insensitively).
const RSIP_METHODS: &[&str] = &[
    "ACK",
    "BYE",
    "CANCEL",
    "INFO",
    "INVITE",
    "MESSAGE",
    "NOTIFY",
    "OPTIONS",
    "PRACK",
    "PUBLISH",
    "REFER",
    "REGISTER",
    "SUBSCRIBE",
    "UPDATE",
];

/// Replace every `[IPv6]` reference in a SIP URI by an IPv4 placeholder so
/// that rsip (which splits host and port on the first `:`) can check the
/// rest. An invalid literal is an error.
fn mask_ipv6(uri: &str) -> Result<String, SipError> {
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(open) = rest.find('[') {
        let (before, after) = rest.split_at(open);
        out.push_str(before);
        let after = after.get(1..).unwrap_or_default();
        let Some(close) = after.find(']') else {
            return Err(SipError::BadStartLine("unterminated IPv6 reference".into()));
        };
        let literal = after.get(..close).unwrap_or_default();
        if literal.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(SipError::BadStartLine("bad IPv6 reference".into()));
        }
        out.push_str("192.0.2.1");
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out.push_str(rest);
    Ok(out)
}

/// What rsip gets to see of a `sip:`/`sips:` Request-URI: IPv6 references
/// masked, and the `;params` / `?headers` cut off after a character check of
/// our own. rsip only accepts token characters in parameter values and a
/// closed list of `transport=` values, while RFC 3261 allows `[]/:&+$` and
/// any token (`transport=ws`, `maddr=[::1]`...). rsip still checks scheme,
/// user part, host and port.
fn sip_uri_for_rsip(uri: &str) -> Result<String, SipError> {
    let uri = mask_ipv6(uri)?;
    // Parameters start at the first ';' after the user part.
    let host_start = uri.rfind('@').map_or(0, |i| i + 1);
    let tail_start = uri
        .get(host_start..)
        .and_then(|h| h.find([';', '?']))
        .map_or(uri.len(), |i| host_start + i);
    let (base, tail) = uri.split_at(tail_start);
    let (params, headers) = match tail.split_once('?') {
        Some((p, h)) => (p, Some(h)),
        None => (tail, None),
    };
    let param_ok = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()[]/:&+$%".contains(c);
    for p in params.split(';').skip(1) {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        let value_ok = value.is_none_or(|v| v.chars().all(param_ok));
        if name.is_empty() || !name.chars().all(param_ok) || !value_ok {
            return Err(SipError::BadStartLine("bad Request-URI parameter".into()));
        }
    }
    if let Some(h) = headers {
        let ok = h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()[]/?:+$%=&".contains(c));
        if !ok {
            return Err(SipError::BadStartLine("bad Request-URI header".into()));
        }
    }
    Ok(base.to_string())
}

/// Let rsip validate what it can: the method token, a `sip:`/`sips:`
/// Request-URI, the version, the status line and the header names.
fn validate_with_rsip(start: &StartLine<'_>, headers: &Headers) -> Result<(), SipError> {
    use std::convert::TryFrom;
    let start_text = match start {
        StartLine::Request { method, uri } => {
            let method = if RSIP_METHODS.contains(method) {
                method
            } else {
                // Already checked to be a token; rsip has no `Other` method.
                "OPTIONS"
            };
            let scheme = uri.split(':').next().unwrap_or_default();
            let uri = if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
                sip_uri_for_rsip(uri)?
            } else {
                // rsip knows only SIP URIs; tel:/urn: got our own check.
                non_sip_uri_check(uri)?;
                "sip:placeholder.invalid".to_string()
            };
            format!("{method} {uri} SIP/2.0")
        }
        StartLine::Response { status, .. } => format!("SIP/2.0 {status} R"),
    };
    let mut full = String::with_capacity(start_text.len() + 64 * headers.len());
    full.push_str(&start_text);
    full.push_str("\r\n");
    for (n, v) in headers.iter() {
        full.push_str(n);
        full.push_str(": ");
        full.push_str(v);
        full.push_str("\r\n");
    }
    full.push_str("\r\n");
    if rsip::SipMessage::try_from(full.as_str()).is_ok() {
        return Ok(());
    }
    // Work out which part rsip disliked.
    let alone = format!("{start_text}\r\n\r\n");
    match (rsip::SipMessage::try_from(alone.as_str()), start) {
        (Ok(_), _) => Err(SipError::BadHeader("rejected by the SIP parser".into())),
        (Err(_), StartLine::Request { .. }) => {
            Err(SipError::BadStartLine("bad Request-URI".into()))
        }
        (Err(_), StartLine::Response { .. }) => {
            Err(SipError::BadStartLine("bad status line".into()))
        }
    }
}

fn non_sip_uri_check(uri: &str) -> Result<(), SipError> {
    // RFC 3986-ish: unreserved / reserved / pct-encoded, nothing else.
    let ok = uri
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c));
    if ok {
        Ok(())
    } else {
        Err(SipError::BadStartLine("malformed Request-URI".into()))
    }
}

/// Value-level checks of the headers the UAS relies on.
fn validate_request_headers(req: &Request) -> Result<(), SipError> {
    let Some((_, cseq_method)) = req.cseq() else {
        return Err(SipError::BadHeader("CSeq".into()));
    };
    if cseq_method != req.method {
        return Err(SipError::BadHeader(
            "CSeq method differs from request".into(),
        ));
    }
    if req.via_transport().is_none() {
        return Err(SipError::BadHeader("Via".into()));
    }
    if req.from_uri().is_none() {
        return Err(SipError::BadHeader("From".into()));
    }
    match req.headers.get("To").and_then(|v| name_addr_uri(v)) {
        Some(_) => Ok(()),
        None => Err(SipError::BadHeader("To".into())),
    }
}

// ---------------------------------------------------------------------------
// Value helpers.

/// Split on `sep` outside double quotes (with backslash escapes).
fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if in_quotes && c == '\\' {
            escaped = true;
        } else if c == '"' {
            in_quotes = !in_quotes;
        } else if !in_quotes && c == sep {
            out.push(s.get(start..i).unwrap_or_default());
            start = i + c.len_utf8();
        }
    }
    out.push(s.get(start..).unwrap_or_default());
    out
}

/// Split a header value into its comma-separated elements, ignoring commas
/// inside quotes and `<...>`. Elements are trimmed; empty ones dropped.
fn split_commas(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut in_angle = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' if !in_angle => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                let piece = s.get(start..i).unwrap_or_default().trim();
                if !piece.is_empty() {
                    out.push(piece);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let piece = s.get(start..).unwrap_or_default().trim();
    if !piece.is_empty() {
        out.push(piece);
    }
    out
}

fn strip_quotes(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// Remove surrounding quotes and backslash escapes.
fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut escaped = false;
            for c in inner.chars() {
                if escaped {
                    out.push(c);
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    }
}

/// Split a `name-addr` / `addr-spec` element into its URI (no `<>`) and
/// the header-parameter text after it (starting at the first `;`, or empty).
fn split_name_addr(value: &str) -> Option<(&str, &str)> {
    let v = value.trim();
    // Skip a quoted display name, which may contain '<' or ';'.
    let mut in_quotes = false;
    let mut escaped = false;
    let mut open = None;
    for (i, c) in v.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => {
                open = Some(i);
                break;
            }
            _ => {}
        }
    }
    match open {
        Some(open) => {
            let after = v.get(open + 1..)?;
            let close = after.find('>')?;
            let uri = after.get(..close)?.trim();
            let params = after.get(close + 1..)?.trim();
            Some((uri, params))
        }
        None => {
            if in_quotes {
                return None;
            }
            // addr-spec: parameters after the URI belong to the header.
            match v.find(';') {
                Some(i) => Some((v.get(..i)?.trim(), v.get(i..)?)),
                None => Some((v, "")),
            }
        }
    }
}

fn name_addr_uri(value: &str) -> Option<&str> {
    let (uri, _) = split_name_addr(split_commas(value).into_iter().next()?)?;
    if uri.is_empty() {
        None
    } else {
        Some(uri)
    }
}

/// Iterate `name[=value]` pairs of a `;`-separated parameter list.
fn params(text: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    split_outside_quotes(text, ';').into_iter().filter_map(|p| {
        let p = p.trim();
        if p.is_empty() {
            return None;
        }
        Some(match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(strip_quotes(v.trim()))),
            None => (p, None),
        })
    })
}

fn find_param<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    params(text)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.unwrap_or(""))
}

fn header_param<'a>(headers: &'a Headers, header: &str, name: &str) -> Option<&'a str> {
    let value = headers.get(header)?;
    let first = split_commas(value).into_iter().next()?;
    let (_, params) = split_name_addr(first)?;
    find_param(params, name)
}

fn parse_cseq(v: &str) -> Option<(u32, Method)> {
    let mut it = v.split_whitespace();
    let num = it.next()?;
    let method = it.next()?;
    if it.next().is_some() || !num.bytes().all(|b| b.is_ascii_digit()) || !is_token(method) {
        return None;
    }
    let n: u32 = num.parse().ok()?;
    if n > 0x7fff_ffff {
        return None;
    }
    Some((n, Method::parse(method)))
}

fn sanitize(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['\r', '\n']) {
        std::borrow::Cow::Owned(s.replace(['\r', '\n'], " "))
    } else {
        std::borrow::Cow::Borrowed(s)
    }
}

fn write_message(start: &str, headers: &Headers, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(start.len() + 64 * headers.len() + body.len() + 32);
    out.extend_from_slice(sanitize(start).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers.iter() {
        if name.eq_ignore_ascii_case("Content-Length") || name.eq_ignore_ascii_case("l") {
            continue;
        }
        out.extend_from_slice(sanitize(name).as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(sanitize(value).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

impl Request {
    pub fn call_id(&self) -> Option<&str> {
        self.headers.get("Call-ID")
    }
    /// `tag` parameter of From.
    pub fn from_tag(&self) -> Option<&str> {
        header_param(&self.headers, "From", "tag").filter(|t| !t.is_empty())
    }
    /// `tag` parameter of To.
    pub fn to_tag(&self) -> Option<&str> {
        header_param(&self.headers, "To", "tag").filter(|t| !t.is_empty())
    }
    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, Method)> {
        parse_cseq(self.headers.get("CSeq")?)
    }
    /// `branch` of the top Via.
    pub fn via_branch(&self) -> Option<&str> {
        let top = *self.headers.elements("Via").first()?;
        let (_, params) = top.split_once(';')?;
        find_param(params, "branch").filter(|b| !b.is_empty())
    }
    /// Transport token of the top Via (`UDP`, `TCP`, ...), upper-case.
    pub fn via_transport(&self) -> Option<String> {
        let top = *self.headers.elements("Via").first()?;
        let sent = top.split(';').next()?;
        let mut parts = sent.splitn(3, '/');
        let proto = parts.next()?.trim();
        let version = parts.next()?.trim();
        let rest = parts.next()?.trim_start();
        let transport = rest.split_whitespace().next()?;
        if !proto.eq_ignore_ascii_case("SIP") || !is_token(version) || !is_token(transport) {
            return None;
        }
        Some(transport.to_ascii_uppercase())
    }
    pub fn content_type(&self) -> Option<MediaType> {
        MediaType::parse(self.headers.get("Content-Type")?)
    }
    /// URI inside the first Contact (without `<>` and without header params).
    pub fn contact_uri(&self) -> Option<String> {
        let first = *self.headers.elements("Contact").first()?;
        let (uri, _) = split_name_addr(first)?;
        (!uri.is_empty()).then(|| uri.to_string())
    }
    /// True when Contact carries this feature tag, either as a Contact header
    /// parameter (`;+sip.src`) or as a parameter inside the URI
    /// (`<sip:a@b;+sip.src>`). Name compared case-insensitively.
    pub fn contact_has_feature(&self, tag: &str) -> bool {
        let tag = tag.trim();
        if tag.is_empty() {
            return false;
        }
        self.headers.elements("Contact").into_iter().any(|c| {
            let Some((uri, hparams)) = split_name_addr(c) else {
                return false;
            };
            let uri = uri.split('?').next().unwrap_or_default();
            let uparams = uri.split_once(';').map(|(_, p)| p).unwrap_or_default();
            params(hparams)
                .chain(params(uparams))
                .any(|(n, _)| n.eq_ignore_ascii_case(tag))
        })
    }
    /// Address-of-record URI of From (no display name, no params outside `<>`).
    pub fn from_uri(&self) -> Option<String> {
        name_addr_uri(self.headers.get("From")?).map(str::to_string)
    }
    /// Every Record-Route value, in order (for the dialog's route set).
    pub fn record_route(&self) -> Vec<String> {
        self.headers
            .elements("Record-Route")
            .into_iter()
            .map(str::to_string)
            .collect()
    }
    /// Session-Expires delta-seconds, if present.
    pub fn session_expires(&self) -> Option<u32> {
        let v = self.headers.get("Session-Expires")?;
        let delta = v.split(';').next()?.trim();
        if delta.is_empty() || !delta.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        delta.parse().ok()
    }

    /// Serialise (recomputes Content-Length).
    pub fn to_bytes(&self) -> Vec<u8> {
        let start = format!("{} {} SIP/2.0", self.method, self.uri);
        write_message(&start, &self.headers, &self.body)
    }
}

impl Response {
    /// A response to `req`: copies every Via, From, To, Call-ID and CSeq; when
    /// `to_tag` is given and To has no tag, adds `;tag=<to_tag>`.
    pub fn to_request(req: &Request, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
        let mut headers = Headers::default();
        for via in req.headers.get_all("Via") {
            headers.push("Via", via);
        }
        if let Some(from) = req.headers.get("From") {
            headers.push("From", from);
        }
        if let Some(to) = req.headers.get("To") {
            let to = match to_tag {
                Some(tag) if req.to_tag().is_none() && !tag.is_empty() => {
                    format!("{to};tag={tag}")
                }
                _ => to.to_string(),
            };
            headers.push("To", to);
        }
        if let Some(call_id) = req.call_id() {
            headers.push("Call-ID", call_id);
        }
        if let Some(cseq) = req.headers.get("CSeq") {
            headers.push("CSeq", cseq);
        }
        Response {
            status,
            reason: reason.to_string(),
            headers,
            body: Vec::new(),
        }
    }
    /// CSeq number and method.
    pub fn cseq(&self) -> Option<(u32, Method)> {
        parse_cseq(self.headers.get("CSeq")?)
    }
    pub fn call_id(&self) -> Option<&str> {
        self.headers.get("Call-ID")
    }
    /// `tag` parameter of To.
    pub fn to_tag(&self) -> Option<&str> {
        header_param(&self.headers, "To", "tag").filter(|t| !t.is_empty())
    }
    /// Serialise (recomputes Content-Length).
    pub fn to_bytes(&self) -> Vec<u8> {
        let start = format!("SIP/2.0 {} {}", self.status, self.reason);
        write_message(&start, &self.headers, &self.body)
    }
}

impl SipMessage {
    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }
    pub fn body(&self) -> &[u8] {
        match self {
            SipMessage::Request(r) => &r.body,
            SipMessage::Response(r) => &r.body,
        }
    }
    /// Content-Type of the message, parsed.
    pub fn content_type(&self) -> Option<MediaType> {
        MediaType::parse(self.headers().get("Content-Type")?)
    }
    /// Serialise (recomputes Content-Length).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_addr_forms() {
        assert_eq!(
            split_name_addr("\"A <b>; c\" <sip:x@y;lr>;tag=1"),
            Some(("sip:x@y;lr", ";tag=1"))
        );
        assert_eq!(
            split_name_addr("sip:x@y;tag=2"),
            Some(("sip:x@y", ";tag=2"))
        );
        assert_eq!(split_name_addr("<sip:x@y"), None);
        assert_eq!(split_name_addr("\"open <sip:x@y>"), None);
        assert_eq!(find_param(";tag=1;lr;x=\"a;b\"", "X"), Some("a;b"));
        assert_eq!(find_param(";tag=1;lr", "lr"), Some(""));
    }

    #[test]
    fn comma_splitting() {
        assert_eq!(
            split_commas("\"a,b\" <sip:x@y;p=1,2>;q=1 , <sip:z@w>,,"),
            vec!["\"a,b\" <sip:x@y;p=1,2>;q=1", "<sip:z@w>"]
        );
    }

    #[test]
    fn head_end_and_content_length_scan() {
        assert_eq!(find_head_end(b"A\r\nB: c\r\n\r\nbody", 0), Some(11));
        assert_eq!(find_head_end(b"A\nB: c\n\nbody", 0), Some(8));
        assert_eq!(find_head_end(b"A\r\nB: c\r\n", 0), None);
        assert_eq!(
            scan_content_length(b"X sip:a SIP/2.0\r\nl : 12\r\nContent-length: 12\r\n"),
            Ok(Some(12))
        );
        assert_eq!(scan_content_length(b"X\r\nFoo: 1\r\n"), Ok(None));
        assert!(scan_content_length(b"X\r\nl: 1\r\nl: 2\r\n").is_err());
    }

    #[test]
    fn uri_masking() {
        assert_eq!(
            sip_uri_for_rsip("sip:a@[2001:db8::1]:5060;maddr=[::1];transport=ws?h=v"),
            Ok("sip:a@192.0.2.1:5060".to_string())
        );
        assert_eq!(
            sip_uri_for_rsip("sip:a;b=c@h;x"),
            Ok("sip:a;b=c@h".to_string())
        );
        assert!(sip_uri_for_rsip("sip:a@h;x=\"q\"").is_err());
        assert!(sip_uri_for_rsip("sip:a@[zz]").is_err());
    }

    #[test]
    fn method_names() {
        for m in [
            "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO", "PRACK",
        ] {
            assert_eq!(Method::parse(m).as_str(), m);
            assert!(!matches!(Method::parse(m), Method::Other(_)));
        }
        for m in ["REFER", "NOTIFY", "SUBSCRIBE", "MESSAGE", "REGISTER"] {
            assert_eq!(Method::parse(m).to_string(), m);
        }
        assert_eq!(Method::parse("invite"), Method::Other("invite".into()));
    }

    #[test]
    fn media_type_display_round_trips() {
        let m = MediaType::parse("multipart/mixed;boundary=\"a b\";x").expect("mt");
        assert_eq!(m.to_string(), "multipart/mixed;boundary=\"a b\";x");
        assert_eq!(MediaType::parse(&m.to_string()), Some(m));
    }
}
