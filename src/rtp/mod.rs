//! The RTP receive path of the media plane (sans-IO).
//!
//! A datagram read from a stream's socket goes through these steps, all fed
//! bytes and a `now` by the call actor:
//!
//! 1. [`is_rtcp`] demultiplexes RTP from RTCP on one port (RFC 5761 §4);
//!    RTCP goes to [`rtcp::parse_rtcp`], RTP to [`parse_rtp`].
//! 2. [`latch::Latch`] applies symmetric latching: it remembers the source
//!    address and SSRC, follows an SBC failover (new SSRC) and, in strict
//!    mode, rejects a second sender while the first is still active.
//! 3. [`jitter::JitterBuffer`] absorbs reordering and jitter within a fixed
//!    depth, drops duplicates and late packets, turns sequence gaps into
//!    [`jitter::Playout::Lost`] stretches (sized from RTP timestamps) for the
//!    decoder to conceal, handles sequence/timestamp wrap, SSRC changes and
//!    pauses, and keeps RFC 3550 receive statistics ([`stats::StreamStats`],
//!    with an E-model MOS estimate from [`stats::estimate_mos`]).
//!
//! Parsing uses the `rtp` and `rtcp` crates, but only after the datagram's
//! framing has been checked here, so hostile input can neither panic them nor
//! make them read past a header block.

pub mod jitter;
pub mod latch;
pub mod rtcp;
pub mod stats;

pub use jitter::{JitterBuffer, JitterConfig, Playout, PushOutcome};
pub use latch::{Latch, LatchDecision};
pub use rtcp::{parse_rtcp, ReportBlock, RtcpInfo, SenderInfo};
pub use stats::{estimate_mos, StreamStats};

use crate::ids::Ssrc;
use bytes::Bytes;
use webrtc_util::Unmarshal;

/// Why a datagram is not a usable RTP (or RTCP) packet.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RtpError {
    #[error("datagram too short ({len} bytes)")]
    TooShort { len: usize },
    #[error("unsupported RTP/RTCP version {0}")]
    BadVersion(u8),
    #[error("datagram is RTCP, not RTP")]
    IsRtcp,
    #[error("header extension overruns the packet")]
    BadExtension,
    #[error("bad padding length")]
    BadPadding,
    #[error("malformed RTP header: {0}")]
    BadHeader(String),
    #[error("malformed RTCP: {0}")]
    BadRtcp(String),
}

/// One parsed RTP packet: the fields the media plane uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: Ssrc,
    /// The payload, with padding (if any) removed.
    pub payload: Bytes,
}

/// Size of the fixed RTP header.
const FIXED_HEADER: usize = 12;

/// True when the datagram looks like RTCP (for RTP/RTCP multiplexed on one
/// port, RFC 5761 §4): version 2 and a second byte in 192..=223, i.e. RTCP
/// packet types SR/RR/SDES/BYE/APP (200-204) and the feedback/XR types,
/// which as RTP would be payload types 64-95 with the marker bit set — a range
/// RFC 5761 forbids for RTP on a muxed port.
pub fn is_rtcp(buf: &[u8]) -> bool {
    match buf {
        [b0, b1, _, _, ..] => b0 >> 6 == 2 && (192..=223).contains(b1),
        _ => false,
    }
}

/// Parse an RTP datagram (version 2 only; padding, header extensions and
/// CSRCs handled), rejecting RTCP and garbage. Copies the payload; see
/// [`parse_rtp_bytes`] for the zero-copy form.
pub fn parse_rtp(buf: &[u8]) -> Result<RtpPacket, RtpError> {
    let (pkt, range) = parse_header(buf)?;
    let payload = buf
        .get(range)
        .map(Bytes::copy_from_slice)
        .ok_or(RtpError::BadPadding)?;
    Ok(RtpPacket { payload, ..pkt })
}

/// [`parse_rtp`] on an owned datagram: the payload is a slice of `buf`.
pub fn parse_rtp_bytes(buf: Bytes) -> Result<RtpPacket, RtpError> {
    let (pkt, range) = parse_header(&buf)?;
    if range.start > range.end || range.end > buf.len() {
        return Err(RtpError::BadPadding);
    }
    let payload = buf.slice(range);
    Ok(RtpPacket { payload, ..pkt })
}

/// Validate framing, parse the header block with the `rtp` crate, and return
/// the packet (with an empty payload) and the payload's byte range.
fn parse_header(buf: &[u8]) -> Result<(RtpPacket, std::ops::Range<usize>), RtpError> {
    let len = buf.len();
    if is_rtcp(buf) {
        return Err(RtpError::IsRtcp);
    }
    let b0 = match buf {
        [b0, ..] if len >= FIXED_HEADER => *b0,
        _ => return Err(RtpError::TooShort { len }),
    };
    let version = b0 >> 6;
    if version != 2 {
        return Err(RtpError::BadVersion(version));
    }
    let padding = b0 & 0x20 != 0;
    let extension = b0 & 0x10 != 0;
    let cc = usize::from(b0 & 0x0f);
    let mut header_end = FIXED_HEADER + 4 * cc;
    if len < header_end {
        return Err(RtpError::TooShort { len });
    }
    if extension {
        header_end = check_extension(buf, header_end)?;
    }
    let payload_end = if padding {
        // RFC 3550 §5.1: the last octet counts the padding, itself included.
        let pad = usize::from(*buf.last().ok_or(RtpError::BadPadding)?);
        if pad == 0 || header_end + pad > len {
            return Err(RtpError::BadPadding);
        }
        len - pad
    } else {
        len
    };
    // The header block is known well-formed, so the crate cannot run past it.
    let mut head = buf.get(..header_end).ok_or(RtpError::TooShort { len })?;
    let header = ::rtp::header::Header::unmarshal(&mut head)
        .map_err(|e| RtpError::BadHeader(e.to_string()))?;
    let pkt = RtpPacket {
        payload_type: header.payload_type,
        marker: header.marker,
        sequence: header.sequence_number,
        timestamp: header.timestamp,
        ssrc: Ssrc(header.ssrc),
        payload: Bytes::new(),
    };
    Ok((pkt, header_end..payload_end))
}

/// Check the header extension starting at `at` and return where it ends.
/// For the RFC 8285 one- and two-byte profiles every element must fit inside
/// the extension block (the `rtp` crate reads them without bounds checks).
fn check_extension(buf: &[u8], at: usize) -> Result<usize, RtpError> {
    let word =
        |i: usize| -> Option<u16> { Some(u16::from_be_bytes([*buf.get(i)?, *buf.get(i + 1)?])) };
    let profile = word(at).ok_or(RtpError::BadExtension)?;
    let words = word(at + 2).ok_or(RtpError::BadExtension)?;
    let start = at + 4;
    let end = start + 4 * usize::from(words);
    if end > buf.len() {
        return Err(RtpError::BadExtension);
    }
    let byte = |i: usize| buf.get(i).copied().ok_or(RtpError::BadExtension);
    let mut i = start;
    match profile {
        0xBEDE => {
            while i < end {
                let b = byte(i)?;
                i += 1;
                if b == 0 {
                    continue;
                }
                if b >> 4 == 0x0f {
                    // ID 15: stop processing (the crate stops here too).
                    break;
                }
                i += usize::from(b & 0x0f) + 1;
                if i > end {
                    return Err(RtpError::BadExtension);
                }
            }
        }
        0x1000 => {
            while i < end {
                let b = byte(i)?;
                i += 1;
                if b == 0 {
                    continue;
                }
                if i >= end {
                    return Err(RtpError::BadExtension);
                }
                let l = usize::from(byte(i)?);
                i += 1 + l;
                if i > end {
                    return Err(RtpError::BadExtension);
                }
            }
        }
        _ => {}
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(b0: u8, b1: u8, rest: &[u8]) -> Vec<u8> {
        let mut v = vec![b0, b1, 0x12, 0x34, 0, 0, 0x03, 0x20, 0xde, 0xad, 0xbe, 0xef];
        v.extend_from_slice(rest);
        v
    }

    #[test]
    fn parses_plain_packet() {
        let buf = packet(0x80, 0x80, &[1, 2, 3]);
        let p = parse_rtp(&buf).unwrap();
        assert_eq!(p.payload_type, 0);
        assert!(p.marker);
        assert_eq!(p.sequence, 0x1234);
        assert_eq!(p.timestamp, 800);
        assert_eq!(p.ssrc, Ssrc(0xdeadbeef));
        assert_eq!(&p.payload[..], &[1, 2, 3]);
        assert_eq!(parse_rtp_bytes(Bytes::from(buf)).unwrap(), p);
    }

    #[test]
    fn csrc_extension_padding() {
        // CC=1, X=1, P=1
        let mut rest = vec![0, 0, 0, 9]; // CSRC
        rest.extend_from_slice(&[0xBE, 0xDE, 0, 1, 0x11, 0xAA, 0xBB, 0x00]); // one-byte ext, id 1 len 2
        rest.extend_from_slice(&[7, 8, 9, 0, 0, 3]); // payload 7 8 9 + 3 padding
        let buf = packet(0x80 | 0x20 | 0x10 | 1, 8, &rest);
        let p = parse_rtp(&buf).unwrap();
        assert_eq!(p.payload_type, 8);
        assert_eq!(&p.payload[..], &[7, 8, 9]);
    }

    #[test]
    fn extension_id_15_stops_but_payload_starts_after_block() {
        let mut rest = vec![0xBE, 0xDE, 0, 1, 0xF0, 0x11, 0x22, 0x33];
        rest.extend_from_slice(&[5, 6]);
        let p = parse_rtp(&packet(0x90, 0, &rest)).unwrap();
        assert_eq!(&p.payload[..], &[5, 6]);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_rtp(&[]), Err(RtpError::TooShort { len: 0 }));
        assert_eq!(
            parse_rtp(&packet(0x40, 0, &[])),
            Err(RtpError::BadVersion(1))
        );
        assert_eq!(parse_rtp(&packet(0x80, 200, &[])), Err(RtpError::IsRtcp));
        // CSRC count beyond the datagram
        assert!(matches!(
            parse_rtp(&packet(0x8f, 0, &[])),
            Err(RtpError::TooShort { .. })
        ));
        // one-byte element longer than its block
        assert_eq!(
            parse_rtp(&packet(
                0x90,
                0,
                &[0xBE, 0xDE, 0, 1, 0x1F, 0, 0, 0, 1, 2, 3]
            )),
            Err(RtpError::BadExtension)
        );
        // two-byte element longer than its block
        assert_eq!(
            parse_rtp(&packet(0x90, 0, &[0x10, 0x00, 0, 1, 0x01, 0xff, 0, 0])),
            Err(RtpError::BadExtension)
        );
        // extension length beyond the datagram
        assert_eq!(
            parse_rtp(&packet(0x90, 0, &[0xBE, 0xDE, 0, 9])),
            Err(RtpError::BadExtension)
        );
        // padding longer than the payload / zero padding
        assert_eq!(
            parse_rtp(&packet(0xa0, 0, &[1, 9])),
            Err(RtpError::BadPadding)
        );
        assert_eq!(
            parse_rtp(&packet(0xa0, 0, &[1, 0])),
            Err(RtpError::BadPadding)
        );
    }

    #[test]
    fn rtcp_demux() {
        assert!(is_rtcp(&[0x81, 200, 0, 6]));
        assert!(is_rtcp(&[0x81, 201, 0, 1, 0, 0, 0, 0]));
        assert!(is_rtcp(&[0x80, 206, 0, 2]));
        assert!(!is_rtcp(&[0x80, 0, 0, 1]));
        assert!(!is_rtcp(&[0x80, 0x80 | 111, 0, 1]));
        assert!(!is_rtcp(&[0x81, 200]));
        assert!(!is_rtcp(&[0x01, 200, 0, 1]));
    }
}
