//! Splitting `multipart/mixed` (and `multipart/related`) SIP bodies.
//!
//! A SIPREC INVITE usually carries `multipart/mixed` with an SDP part and an
//! `application/rs-metadata+xml` part. This module splits such bodies per
//! RFC 2046 §5.1, with the tolerance real SBCs need: quoted or bare
//! boundaries, CRLF or bare-LF line ends, transport padding after a
//! delimiter, a missing closing delimiter, and nested multiparts (flattened).
//! Part headers are parsed like message headers (folding, compact names).

use super::message::{find_head_end, parse_header_block, Headers, MediaType};
use super::{Limits, SipError};

/// How deep multiparts may nest inside each other.
const MAX_DEPTH: usize = 4;
/// RFC 2046 allows 70 characters; be a little generous.
const MAX_BOUNDARY: usize = 200;

/// One part of a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPart {
    pub content_type: Option<MediaType>,
    /// Part headers (Content-Type, Content-Disposition, Content-ID, ...).
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl BodyPart {
    /// Lower-case MIME type of the part (`application/sdp`), if known.
    pub fn mime(&self) -> Option<&str> {
        self.content_type.as_ref().map(|c| c.mime.as_str())
    }
    /// Disposition type (`session`, `recording-session`, ...), lower-case,
    /// from the part's Content-Disposition.
    pub fn disposition(&self) -> Option<String> {
        let v = self.headers.get("Content-Disposition")?;
        let d = v.split(';').next()?.trim();
        (!d.is_empty()).then(|| d.to_ascii_lowercase())
    }
}

/// The parts of a message body. A non-multipart body is one part with the
/// message's content type; an empty body is no part. Multipart boundaries
/// are taken from the `boundary` parameter (quoted or not); preamble and
/// epilogue are ignored; nested multipart parts are flattened; parts in any
/// order. At most `limits.max_parts` parts.
///
/// The single part of a non-multipart body has no part headers. A part with
/// no Content-Type header has `content_type: None` (RFC 2046 would default
/// it to `text/plain`). Empty parts (delimiter directly followed by the next
/// delimiter) are skipped.
pub fn body_parts(
    content_type: Option<&MediaType>,
    body: &[u8],
    limits: &Limits,
) -> Result<Vec<BodyPart>, SipError> {
    let mut out = Vec::new();
    split_into(content_type, body, limits, 0, &mut out)?;
    Ok(out)
}

fn bad(msg: &str) -> SipError {
    SipError::BadMultipart(msg.to_string())
}

fn split_into(
    content_type: Option<&MediaType>,
    body: &[u8],
    limits: &Limits,
    depth: usize,
    out: &mut Vec<BodyPart>,
) -> Result<(), SipError> {
    if body.is_empty() {
        return Ok(());
    }
    let multipart = content_type.filter(|c| c.is_multipart());
    let Some(ct) = multipart else {
        if out.len() >= limits.max_parts {
            return Err(SipError::BadMultipart(format!(
                "more than {} parts",
                limits.max_parts
            )));
        }
        out.push(BodyPart {
            content_type: content_type.cloned(),
            headers: Headers::default(),
            body: body.to_vec(),
        });
        return Ok(());
    };
    if depth >= MAX_DEPTH {
        return Err(bad("multiparts nested too deep"));
    }
    let boundary = ct.param("boundary").ok_or_else(|| bad("no boundary"))?;
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY {
        return Err(bad("bad boundary length"));
    }
    let mut delim = Vec::with_capacity(boundary.len() + 2);
    delim.extend_from_slice(b"--");
    delim.extend_from_slice(boundary.as_bytes());

    let delimiters = find_delimiters(body, &delim);
    if delimiters.is_empty() {
        return Err(bad("boundary not found in body"));
    }
    for (i, d) in delimiters.iter().enumerate() {
        if d.closing {
            break;
        }
        let (content, terminated) = match delimiters.get(i + 1) {
            Some(next) => (body.get(d.content_start..next.content_end), true),
            // No closing delimiter: SBCs do this; the part runs to the end.
            None => (body.get(d.content_start..), false),
        };
        let content = content.unwrap_or_default();
        if content.is_empty() {
            continue;
        }
        let part = parse_part(content, terminated, limits)?;
        match part.content_type.as_ref().filter(|c| c.is_multipart()) {
            Some(inner) => {
                let inner = inner.clone();
                split_into(Some(&inner), &part.body, limits, depth + 1, out)?;
            }
            None => {
                if out.len() >= limits.max_parts {
                    return Err(SipError::BadMultipart(format!(
                        "more than {} parts",
                        limits.max_parts
                    )));
                }
                out.push(part);
            }
        }
    }
    Ok(())
}

struct Delimiter {
    /// Where the preceding part's content ends (before the CRLF/LF that
    /// belongs to this delimiter).
    content_end: usize,
    /// Where the following part's content starts (after the delimiter line).
    content_start: usize,
    /// `--boundary--`
    closing: bool,
}

/// Delimiter lines: `--boundary` at the start of a line, followed by `--`
/// (close), or by optional white space and the line end.
fn find_delimiters(body: &[u8], delim: &[u8]) -> Vec<Delimiter> {
    let mut found = Vec::new();
    let mut line_start = 0usize;
    loop {
        if let Some(d) = delimiter_at(body, line_start, delim) {
            let closing = d.closing;
            found.push(d);
            if closing {
                break;
            }
        }
        let Some(rest) = body.get(line_start..) else {
            break;
        };
        match rest.iter().position(|&b| b == b'\n') {
            Some(nl) => line_start += nl + 1,
            None => break,
        }
    }
    found
}

fn delimiter_at(body: &[u8], at: usize, delim: &[u8]) -> Option<Delimiter> {
    let rest = body.get(at..)?;
    if !rest.starts_with(delim) {
        return None;
    }
    // The line end before the delimiter belongs to it.
    let mut content_end = at;
    if content_end > 0 && body.get(content_end - 1) == Some(&b'\n') {
        content_end -= 1;
        if content_end > 0 && body.get(content_end - 1) == Some(&b'\r') {
            content_end -= 1;
        }
    }
    let after = at + delim.len();
    let tail = body.get(after..).unwrap_or_default();
    if tail.starts_with(b"--") {
        return Some(Delimiter {
            content_end,
            content_start: body.len(),
            closing: true,
        });
    }
    // Transport padding, then the line end (or the end of the body).
    let pad = tail
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    let tail = tail.get(pad..).unwrap_or_default();
    let eol = if tail.starts_with(b"\r\n") {
        2
    } else if tail.starts_with(b"\n") {
        1
    } else if tail.is_empty() {
        0
    } else {
        // `--boundaryX...`: not a delimiter.
        return None;
    };
    Some(Delimiter {
        content_end,
        content_start: after + pad + eol,
        closing: false,
    })
}

fn parse_part(content: &[u8], terminated: bool, limits: &Limits) -> Result<BodyPart, SipError> {
    // A part starting with a blank line has no headers.
    let (head, body) = if content.starts_with(b"\r\n") {
        (&[][..], content.get(2..).unwrap_or_default())
    } else if content.starts_with(b"\n") {
        (&[][..], content.get(1..).unwrap_or_default())
    } else {
        match find_head_end(content, 0) {
            Some(end) => (
                content.get(..end).unwrap_or_default(),
                content.get(end..).unwrap_or_default(),
            ),
            None if !terminated => return Err(bad("last part truncated in its headers")),
            None => return Err(bad("part headers not terminated by a blank line")),
        }
    };
    let head = std::str::from_utf8(head).map_err(|_| bad("part headers not UTF-8"))?;
    let headers = parse_header_block(head, limits.max_headers).map_err(|e| match e {
        SipError::BadHeader(m) => SipError::BadMultipart(format!("part header: {m}")),
        SipError::TooManyHeaders(n) => {
            SipError::BadMultipart(format!("more than {n} part headers"))
        }
        other => other,
    })?;
    let content_type = headers.get("Content-Type").and_then(MediaType::parse);
    Ok(BodyPart {
        content_type,
        headers,
        body: body.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mt(s: &str) -> MediaType {
        MediaType::parse(s).expect("test media type")
    }

    #[test]
    fn simple_two_parts_lf() {
        let body = b"preamble\n--b\nContent-Type: application/sdp\n\nv=0\n\n--b\nContent-Type: application/rs-metadata+xml\n\n<x/>\n--b--\nepilogue";
        let parts = body_parts(
            Some(&mt("multipart/mixed;boundary=b")),
            body,
            &Limits::default(),
        )
        .expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].mime(), Some("application/sdp"));
        assert_eq!(parts[0].body, b"v=0\n");
        assert_eq!(parts[1].body, b"<x/>");
    }

    #[test]
    fn boundary_prefix_is_not_a_delimiter() {
        let body = b"--b\r\nContent-Type: text/plain\r\n\r\n--bb\r\n--b--\r\n";
        let parts = body_parts(
            Some(&mt("multipart/mixed;boundary=b")),
            body,
            &Limits::default(),
        )
        .expect("parts");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].body, b"--bb");
    }

    #[test]
    fn empty_and_plain() {
        let l = Limits::default();
        assert!(body_parts(None, b"", &l).expect("empty").is_empty());
        let p = body_parts(Some(&mt("application/sdp")), b"v=0\r\n", &l).expect("plain");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].body, b"v=0\r\n");
    }
}
