//! SIP on the wire: framing, parsing and building messages.
//!
//! `rsip` 0.4 parses start lines, URIs and headers, but it does not frame by
//! Content-Length, does not know the compact header forms (`i: v: m: l: c: f:
//! t: k: s:` and the rest of the IANA list) and does not split multipart
//! bodies. This module wraps it: [`framing`] cuts messages out of datagrams
//! and TCP streams, [`message`] normalises compact forms and folded lines
//! before handing the head to rsip and exposes the few fields a UAS needs, and
//! [`multipart`] splits bodies. Where rsip rejects legal input that SBCs send
//! (IPv6 references, `transport=ws`, non-token URI parameter values, `tel:`
//! URIs) [`message`] checks that piece itself and lets rsip validate the rest.
//!
//! Everything here is bounded by [`Limits`]; bad input yields a [`SipError`]
//! whose [`SipError::reason`] is fit for a `400` reason phrase. Nothing panics.

pub mod framing;
pub mod message;
pub mod multipart;

pub use framing::{frame_datagram, Frame, StreamFramer};
pub use message::{
    canonical_header_name, parse_message, Headers, MediaType, Method, Request, Response, SipMessage,
};
pub use multipart::{body_parts, BodyPart};

/// Caps on what a peer may send us.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Whole message (head + body), bytes.
    pub max_message_bytes: usize,
    /// Number of header lines.
    pub max_headers: usize,
    /// Number of parts in a multipart body.
    pub max_parts: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_headers: 128,
            max_parts: 16,
        }
    }
}

/// Everything that can be wrong with a SIP message from the wire.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SipError {
    #[error("message exceeds {0} bytes")]
    TooLarge(usize),
    #[error("more than {0} header lines")]
    TooManyHeaders(usize),
    #[error("malformed start line: {0}")]
    BadStartLine(String),
    #[error("malformed header: {0}")]
    BadHeader(String),
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    #[error("bad Content-Length: {0}")]
    BadContentLength(String),
    #[error("body shorter than Content-Length")]
    Truncated,
    #[error("malformed multipart body: {0}")]
    BadMultipart(String),
    #[error("not valid UTF-8 in the message head")]
    NotUtf8,
}

impl SipError {
    /// A short reason phrase for a `400` response (no CR/LF, ≤ 100 chars).
    pub fn reason(&self) -> String {
        let mut s: String = self
            .to_string()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        s.truncate(100);
        format!("Bad Request - {s}")
    }
}
