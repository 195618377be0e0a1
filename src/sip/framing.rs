//! Cutting SIP messages out of UDP datagrams and TCP byte streams.
//!
//! A message is its head (start line and headers up to the first blank line)
//! followed by exactly `Content-Length` body bytes; the long and the compact
//! (`l:`) forms count, several equal values are fine, differing ones are an
//! error. CRLF keep-alives (RFC 5626) come out as [`Frame::KeepAlive`].
//! Nothing here looks at more than the head's Content-Length; the full parse
//! is [`super::parse_message`].

use super::message::{find_head_end, leading_crlf, scan_content_length};
use super::{Limits, SipError};

/// One unit read off a transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole message: head and exactly Content-Length bytes of body.
    Message(Vec<u8>),
    /// A CRLF keep-alive (RFC 5626 `CRLFCRLF` ping); a stream peer expects a
    /// single CRLF back.
    KeepAlive,
}

/// A UDP datagram holds one message; bytes past Content-Length are dropped,
/// a body shorter than Content-Length is an error; a missing Content-Length
/// means the rest of the datagram is the body. Blank datagrams (`\r\n\r\n`,
/// NAT keep-alives) are `KeepAlive`.
pub fn frame_datagram(buf: &[u8], limits: &Limits) -> Result<Frame, SipError> {
    if buf.len() > limits.max_message_bytes {
        return Err(SipError::TooLarge(limits.max_message_bytes));
    }
    let skip = leading_crlf(buf);
    let msg = buf.get(skip..).unwrap_or_default();
    if msg.is_empty() {
        return Ok(Frame::KeepAlive);
    }
    let Some(head_end) = find_head_end(msg, 0) else {
        // No blank line: all head, no body (parse_message tolerates this).
        return Ok(Frame::Message(msg.to_vec()));
    };
    let head = msg.get(..head_end).unwrap_or_default();
    match scan_content_length(head)? {
        Some(len) => {
            let end = head_end.checked_add(len).ok_or(SipError::Truncated)?;
            let whole = msg.get(..end).ok_or(SipError::Truncated)?;
            Ok(Frame::Message(whole.to_vec()))
        }
        None => Ok(Frame::Message(msg.to_vec())),
    }
}

/// Reassembles messages from a stream: feed whatever `read` returned, then
/// call `next_frame` until it returns `Ok(None)`. On TCP a Content-Length is
/// mandatory (missing = 0 per RFC 3261 18.3). Compact `l:` counts. A head
/// larger than `limits.max_message_bytes` without a blank line is an error
/// (the connection should be closed).
///
/// After an error the framer keeps returning that error: the byte stream
/// can no longer be trusted to be in sync.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limits: Option<Limits>,
    /// Where to resume looking for the blank line ending the head.
    scanned: usize,
    /// Length of the head and body of the message at the front of `buf`,
    /// once its head is complete.
    pending: Option<usize>,
    /// Sticky error.
    failed: Option<SipError>,
}

impl StreamFramer {
    pub fn new(limits: Limits) -> Self {
        StreamFramer {
            limits: Some(limits),
            ..Default::default()
        }
    }
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_none() {
            self.buf.extend_from_slice(data);
        }
    }
    /// Bytes received but not yet returned as a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
    pub fn next_frame(&mut self) -> Result<Option<Frame>, SipError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.next_inner() {
            Ok(f) => Ok(f),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                Err(e)
            }
        }
    }

    fn consume(&mut self, n: usize) -> Vec<u8> {
        let n = n.min(self.buf.len());
        let rest = self.buf.split_off(n);
        let taken = std::mem::replace(&mut self.buf, rest);
        self.scanned = 0;
        self.pending = None;
        taken
    }

    fn next_inner(&mut self) -> Result<Option<Frame>, SipError> {
        let limits = self.limits.unwrap_or_default();
        if self.pending.is_none() {
            // Keep-alives between messages: CRLFCRLF (ping) or CRLF (pong).
            match self.buf.as_slice() {
                [] => return Ok(None),
                [b'\r', b'\n', b'\r', b'\n', ..] => {
                    self.consume(4);
                    return Ok(Some(Frame::KeepAlive));
                }
                // Could still become CRLFCRLF: wait for more.
                [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => return Ok(None),
                [b'\r', b'\n', ..] => {
                    self.consume(2);
                    return Ok(Some(Frame::KeepAlive));
                }
                [b'\n', ..] => {
                    self.consume(1);
                    return Ok(Some(Frame::KeepAlive));
                }
                _ => {}
            }
            let Some(head_end) = find_head_end(&self.buf, self.scanned) else {
                if self.buf.len() > limits.max_message_bytes {
                    return Err(SipError::TooLarge(limits.max_message_bytes));
                }
                self.scanned = self.buf.len().saturating_sub(3);
                return Ok(None);
            };
            if head_end > limits.max_message_bytes {
                return Err(SipError::TooLarge(limits.max_message_bytes));
            }
            let head = self.buf.get(..head_end).unwrap_or_default();
            let len = scan_content_length(head)?.unwrap_or(0);
            let total = head_end
                .checked_add(len)
                .filter(|t| *t <= limits.max_message_bytes)
                .ok_or(SipError::TooLarge(limits.max_message_bytes))?;
            self.pending = Some(total);
        }
        match self.pending {
            Some(total) if self.buf.len() >= total => Ok(Some(Frame::Message(self.consume(total)))),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:srs@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 10.0.0.2;branch=z9hG4bK1\r\nl: 4\r\n\r\nabcd";

    #[test]
    fn datagram_keepalive_and_trailing_bytes() {
        let l = Limits::default();
        assert_eq!(frame_datagram(b"\r\n\r\n", &l), Ok(Frame::KeepAlive));
        assert_eq!(frame_datagram(b"", &l), Ok(Frame::KeepAlive));
        let mut d = OPTIONS.to_vec();
        d.extend_from_slice(b"garbage");
        assert_eq!(frame_datagram(&d, &l), Ok(Frame::Message(OPTIONS.to_vec())));
        assert_eq!(
            frame_datagram(&OPTIONS[..OPTIONS.len() - 1], &l),
            Err(SipError::Truncated)
        );
    }

    #[test]
    fn stream_keepalives_and_pong() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(None));
        f.push(b"\r\n");
        assert_eq!(f.next_frame(), Ok(Some(Frame::KeepAlive)));
        f.push(b"\r\n");
        f.push(OPTIONS);
        assert_eq!(f.next_frame(), Ok(Some(Frame::KeepAlive)));
        assert_eq!(f.next_frame(), Ok(Some(Frame::Message(OPTIONS.to_vec()))));
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn stream_head_never_ends() {
        let limits = Limits {
            max_message_bytes: 100,
            ..Limits::default()
        };
        let mut f = StreamFramer::new(limits);
        f.push(b"INVITE sip:a@b SIP/2.0\r\n");
        assert_eq!(f.next_frame(), Ok(None));
        f.push(&[b'x'; 100]);
        assert_eq!(f.next_frame(), Err(SipError::TooLarge(100)));
        // Sticky.
        assert_eq!(f.next_frame(), Err(SipError::TooLarge(100)));
    }
}
