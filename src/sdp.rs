//! SDP (RFC 4566) parsing and the SIPREC offer/answer (RFC 7866 §7).
//!
//! [`parse`] is deliberately tolerant, because SRCs are: LF or CRLF line
//! ends, stray whitespace, unknown line types and unusable `c=` addresses are
//! all accepted; it is bounded by [`MAX_SDP_BYTES`] and [`MAX_SDP_LINES`].
//!
//! [`answer`] builds the SRS side of RFC 7866 §7: exactly one answer m-line
//! per offered m-line in the same order, every accepted audio line
//! `a=recvonly` (or `a=inactive` when the SRC offered it inactive, i.e. a
//! pause), the offered `a=label` echoed so the metadata can map the stream to
//! its sender, and one codec we decode (PCMU/PCMA/G.722/Opus) plus
//! telephone-event when offered. Hold is detected per RFC 3264 and RFC 2543
//! style: `a=inactive`, `c=0.0.0.0` or port 0 (see
//! [`SessionDescription::is_held`]); `a=sendonly` is the normal SIPREC offer.

use crate::ids::Label;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SdpError {
    #[error("malformed SDP line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("SDP has no media line")]
    NoMedia,
    #[error("no offered audio stream uses a codec we decode")]
    NoCommonCodec,
    #[error("SDP too large or too many lines")]
    TooLarge,
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(&self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

/// Codecs the engine decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Codec {
    #[serde(rename = "PCMU")]
    Pcmu,
    #[serde(rename = "PCMA")]
    Pcma,
    #[serde(rename = "G722")]
    G722,
    #[serde(rename = "opus")]
    Opus,
    #[serde(rename = "telephone-event")]
    TelephoneEvent,
}

impl Codec {
    /// rtpmap encoding name as we write it.
    pub fn name(&self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
            Codec::TelephoneEvent => "telephone-event",
        }
    }
    /// RTP clock rate (G.722 is 8000 by RFC 3551 quirk, Opus 48000).
    pub fn clock_rate(&self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 | Codec::TelephoneEvent => 8000,
            Codec::Opus => 48000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub addr: IpAddr,
}

/// A format's `a=rtpmap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub payload_type: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u8>,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`, ...
    pub media: String,
    pub port: u16,
    pub proto: String,
    /// Format tokens as offered (payload types for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=`, if any.
    pub connection: Option<Connection>,
    /// Media-level attributes in order: `a=name[:value]`.
    pub attributes: Vec<(String, Option<String>)>,
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin_username: String,
    pub session_id: String,
    pub session_version: u64,
    pub connection: Option<Connection>,
    /// Session-level attributes.
    pub attributes: Vec<(String, Option<String>)>,
    pub media: Vec<MediaDescription>,
}

/// Largest SDP body we accept.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Most lines we accept in one SDP body.
pub const MAX_SDP_LINES: usize = 1000;

/// Finds an attribute by name (case-insensitive) in a list.
fn find_attr<'a>(
    attrs: &'a [(String, Option<String>)],
    name: &str,
) -> Option<&'a (String, Option<String>)> {
    attrs.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
}

/// The direction attribute in a list, if any (the last one wins).
fn direction_attr(attrs: &[(String, Option<String>)]) -> Option<Direction> {
    attrs.iter().rev().find_map(|(n, _)| {
        let n = n.to_ascii_lowercase();
        match n.as_str() {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    })
}

/// Parses `<pt> <encoding>/<rate>[/<channels>]`.
fn parse_rtpmap(value: &str) -> Option<RtpMap> {
    let mut it = value.split_whitespace();
    let payload_type: u8 = it.next()?.parse().ok()?;
    let spec = it.next()?;
    let mut parts = spec.split('/');
    let encoding = parts.next()?.trim();
    if encoding.is_empty() {
        return None;
    }
    let clock_rate: u32 = parts.next()?.trim().parse().ok()?;
    let channels = match parts.next() {
        Some(c) => Some(c.trim().parse::<u8>().ok()?),
        None => None,
    };
    Some(RtpMap {
        payload_type,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

impl MediaDescription {
    /// `a=label` value.
    pub fn label(&self) -> Option<Label> {
        find_attr(&self.attributes, "label")
            .and_then(|(_, v)| v.as_deref())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(Label::new)
    }

    /// Every well-formed `a=rtpmap` of this m-line, in order (malformed ones
    /// are skipped).
    pub fn rtpmaps(&self) -> Vec<RtpMap> {
        self.attributes
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("rtpmap"))
            .filter_map(|(_, v)| v.as_deref().and_then(parse_rtpmap))
            .collect()
    }

    /// `a=fmtp` parameters of payload type `pt`, if offered.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("fmtp"))
            .filter_map(|(_, v)| v.as_deref())
            .find_map(|v| {
                let v = v.trim_start();
                let (p, rest) = v.split_once(|c: char| c.is_ascii_whitespace())?;
                (p.parse::<u8>().ok()? == pt).then_some(rest.trim())
            })
    }

    /// The codecs of this m-line we can decode, in offer order, with the
    /// payload type that carries them. Static payload types 0, 8 and 9 are
    /// recognised without an rtpmap; an rtpmap always wins.
    pub fn decodable_formats(&self) -> Vec<(Codec, u8)> {
        let maps = self.rtpmaps();
        let mut out = Vec::new();
        for f in &self.formats {
            let Ok(pt) = f.trim().parse::<u8>() else {
                continue;
            };
            let codec = match maps.iter().find(|m| m.payload_type == pt) {
                Some(m) => codec_of_rtpmap(m),
                None => match pt {
                    0 => Some(Codec::Pcmu),
                    8 => Some(Codec::Pcma),
                    9 => Some(Codec::G722),
                    _ => None,
                },
            };
            if let Some(c) = codec {
                if !out.iter().any(|(_, p)| *p == pt) {
                    out.push((c, pt));
                }
            }
        }
        out
    }
}

/// Which of our codecs an rtpmap names (encoding compared case-insensitively).
fn codec_of_rtpmap(m: &RtpMap) -> Option<Codec> {
    let e = m.encoding.to_ascii_lowercase();
    match (e.as_str(), m.clock_rate) {
        ("pcmu", 8000) => Some(Codec::Pcmu),
        ("pcma", 8000) => Some(Codec::Pcma),
        ("g722", 8000) => Some(Codec::G722),
        ("opus", 48000) if matches!(m.channels, None | Some(2)) => Some(Codec::Opus),
        ("telephone-event", 8000) | ("telephone-event", 48000) => Some(Codec::TelephoneEvent),
        _ => None,
    }
}

impl SessionDescription {
    /// Effective direction of m-line `i` (media attribute, else session
    /// attribute, else sendrecv).
    pub fn direction(&self, i: usize) -> Direction {
        self.media
            .get(i)
            .and_then(|m| direction_attr(&m.attributes))
            .or_else(|| direction_attr(&self.attributes))
            .unwrap_or(Direction::SendRecv)
    }

    /// Effective connection address of m-line `i` (media, else session).
    pub fn connection_addr(&self, i: usize) -> Option<IpAddr> {
        let m = self.media.get(i)?;
        m.connection
            .as_ref()
            .or(self.connection.as_ref())
            .map(|c| c.addr)
    }

    /// True when m-line `i` is on hold: direction inactive, connection
    /// 0.0.0.0 (RFC 2543 hold) or port 0. An index past the last m-line is
    /// not held.
    pub fn is_held(&self, i: usize) -> bool {
        let Some(m) = self.media.get(i) else {
            return false;
        };
        m.port == 0
            || self.direction(i) == Direction::Inactive
            || self.connection_addr(i).is_some_and(|a| a.is_unspecified())
    }

    /// Session-level attribute value by name (case-insensitive).
    pub fn session_attr(&self, name: &str) -> Option<&str> {
        find_attr(&self.attributes, name).and_then(|(_, v)| v.as_deref())
    }
}

fn malformed(line: usize, reason: &str) -> SdpError {
    SdpError::Malformed {
        line,
        reason: reason.to_owned(),
    }
}

/// `c=IN IP4 <addr>[/ttl[/n]]`; `None` when the address is not an IP literal
/// (an FQDN, say), which we cannot use but tolerate.
fn parse_connection(value: &str) -> Option<Connection> {
    let mut it = value.split_whitespace();
    let _net = it.next()?;
    let _addrtype = it.next()?;
    let addr = it.next()?;
    let addr = addr.split('/').next()?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    addr.parse::<IpAddr>().ok().map(|addr| Connection { addr })
}

/// Tolerant parser: accepts `\n` or `\r\n`, ignores unknown line types,
/// requires at least `v=` and one `m=`. Bounded (≤ 64 KiB, ≤ 1000 lines).
///
/// Leading/trailing whitespace (and NUL) on a line and around the `=` is
/// tolerated, NUL separates `m=` fields like white space,
/// as are lines that are not `<letter>=` at all (skipped). An `m=` line
/// without a numeric port or a proto is `Malformed`; a `c=` whose address is
/// not an IP literal is ignored.
pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    if text.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge);
    }
    let mut sd = SessionDescription {
        origin_username: String::new(),
        session_id: String::new(),
        session_version: 0,
        connection: None,
        attributes: Vec::new(),
        media: Vec::new(),
    };
    let mut saw_version = false;
    let mut count = 0usize;
    for (idx, raw) in text.split(['\n', '\r']).enumerate() {
        let lineno = idx + 1;
        let line = raw.trim_matches(|c: char| c.is_whitespace() || c == '\0');
        if line.is_empty() {
            continue;
        }
        count += 1;
        if count > MAX_SDP_LINES {
            return Err(SdpError::TooLarge);
        }
        let Some((kind, value)) = line.split_once('=') else {
            continue;
        };
        let kind = kind.trim();
        let mut kc = kind.chars();
        let (Some(k), None) = (kc.next(), kc.next()) else {
            continue;
        };
        let value = value.trim();
        match k.to_ascii_lowercase() {
            'v' => saw_version = true,
            'o' => {
                let f: Vec<&str> = value.split_whitespace().collect();
                sd.origin_username = f.first().copied().unwrap_or_default().to_owned();
                sd.session_id = f.get(1).copied().unwrap_or_default().to_owned();
                sd.session_version = f.get(2).and_then(|v| v.parse().ok()).unwrap_or(0);
            }
            'c' => {
                let conn = parse_connection(value);
                match sd.media.last_mut() {
                    Some(m) => m.connection = conn,
                    None => sd.connection = conn,
                }
            }
            'm' => {
                // NUL separates like white space here, as at the line's
                // edges: a NUL-only token echoed into the answer's rejected
                // m-line would be trimmed away when that is parsed.
                let mut it = value
                    .split(|c: char| c.is_whitespace() || c == '\0')
                    .filter(|t| !t.is_empty());
                let media = it
                    .next()
                    .ok_or_else(|| malformed(lineno, "m= has no media type"))?;
                let port_s = it
                    .next()
                    .ok_or_else(|| malformed(lineno, "m= has no port"))?;
                let port_s = port_s.split('/').next().unwrap_or_default();
                let port: u16 = port_s
                    .parse()
                    .map_err(|_| malformed(lineno, "m= port is not a number 0-65535"))?;
                let proto = it
                    .next()
                    .ok_or_else(|| malformed(lineno, "m= has no proto"))?;
                sd.media.push(MediaDescription {
                    media: media.to_owned(),
                    port,
                    proto: proto.to_owned(),
                    formats: it.map(str::to_owned).collect(),
                    connection: None,
                    attributes: Vec::new(),
                });
            }
            'a' => {
                let (name, val) = match value.split_once(':') {
                    Some((n, v)) => (n.trim(), Some(v.trim().to_owned())),
                    None => (value, None),
                };
                if name.is_empty() {
                    continue;
                }
                let attr = (name.to_owned(), val);
                match sd.media.last_mut() {
                    Some(m) => m.attributes.push(attr),
                    None => sd.attributes.push(attr),
                }
            }
            _ => {}
        }
    }
    if !saw_version {
        return Err(malformed(1, "no v= line"));
    }
    if sd.media.is_empty() {
        return Err(SdpError::NoMedia);
    }
    Ok(sd)
}

/// What we answer with.
#[derive(Debug, Clone)]
pub struct AnswerConfig {
    /// Address for `o=` and `c=`.
    pub media_ip: IpAddr,
    /// `o=` session id (stable over a dialog).
    pub session_id: u64,
    /// `o=` version (incremented by the caller for each new answer).
    pub session_version: u64,
    /// Preference order among offered codecs.
    pub preference: Vec<Codec>,
}

/// The negotiated result of one offered m-line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAnswer {
    /// Index of the m-line in the offer (and in the answer).
    pub index: usize,
    pub label: Option<Label>,
    /// Our receive port; 0 when the m-line is rejected (non-audio or no codec).
    pub port: u16,
    /// Chosen audio codec and its payload type (None when rejected).
    pub codec: Option<Codec>,
    pub payload_type: Option<u8>,
    /// telephone-event payload type, when offered.
    pub dtmf_payload_type: Option<u8>,
    /// Direction we answered (`recvonly`, or `inactive` when offered inactive).
    pub direction: Direction,
    /// True when the offer puts this stream on hold (see `is_held`).
    pub paused: bool,
    /// The SRC's address for this stream (c= + m= port), if not held.
    pub remote: Option<SocketAddr>,
}

/// Media protocols we can receive (plain RTP; no SRTP).
fn proto_supported(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

fn ip_kind(ip: &IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// Picks the codec for one offered audio m-line.
fn choose_codec(m: &MediaDescription, preference: &[Codec]) -> Option<(Codec, u8)> {
    let offered: Vec<(Codec, u8)> = m
        .decodable_formats()
        .into_iter()
        .filter(|(c, _)| *c != Codec::TelephoneEvent)
        .collect();
    if preference.is_empty() {
        return offered.first().copied();
    }
    preference
        .iter()
        .filter(|c| **c != Codec::TelephoneEvent)
        .find_map(|want| offered.iter().find(|(c, _)| c == want).copied())
}

/// Picks the telephone-event payload type matching `codec`'s clock (else
/// any), never `codec_pt` itself (an offer mapping one payload type to both
/// would otherwise be answered `m=audio <port> RTP/AVP 0 0`).
fn choose_dtmf(m: &MediaDescription, codec: Codec, codec_pt: u8) -> Option<(u8, u32)> {
    let maps = m.rtpmaps();
    let offered: Vec<(u8, u32)> = m
        .formats
        .iter()
        .filter_map(|f| f.trim().parse::<u8>().ok())
        .filter(|pt| *pt != codec_pt)
        .filter_map(|pt| {
            maps.iter()
                .find(|r| {
                    r.payload_type == pt && r.encoding.eq_ignore_ascii_case("telephone-event")
                })
                .map(|r| (pt, r.clock_rate))
        })
        .filter(|(_, rate)| *rate == 8000 || *rate == 48000)
        .collect();
    offered
        .iter()
        .find(|(_, rate)| *rate == codec.clock_rate())
        .or_else(|| offered.first())
        .copied()
}

/// Build the answer: one m-line per offered m-line in the same order;
/// `ports[i]` is our RTP port for m-line `i` (callers pass 0 for lines they
/// will reject; non-audio lines are rejected with port 0 whatever is passed).
/// Audio lines get `a=recvonly` (or `a=inactive` if offered inactive), the
/// offered `a=label` echoed unchanged, `a=rtcp:<port+1>`, the chosen codec by
/// `preference` (static PTs 0/8/9 recognised without rtpmap), plus
/// telephone-event when offered. An audio line with no common codec is
/// rejected (port 0); if no audio line survives: `NoCommonCodec` (→ 488).
/// Returns the SDP text (CRLF line ends) and the per-line result.
///
/// Further rules: an offered `a=ptime` (media, else session level) is echoed;
/// an offered `a=recvonly` (the SRC wants to receive, which we never send)
/// is answered `a=inactive`; a non-RTP/AVP(F) proto (SRTP) is rejected; an
/// m-line offered with port 0 is answered with port 0 (RFC 3264 §6) but still
/// counts as a surviving, paused stream when its codec is acceptable.
/// An empty `preference` means "the first decodable codec in offer order".
pub fn answer(
    offer: &SessionDescription,
    ports: &[u16],
    cfg: &AnswerConfig,
) -> Result<(String, Vec<StreamAnswer>), SdpError> {
    use std::fmt::Write as _;
    if offer.media.is_empty() {
        return Err(SdpError::NoMedia);
    }
    let ipk = ip_kind(&cfg.media_ip);
    let mut sdp = String::with_capacity(256 + 160 * offer.media.len());
    let _ = write!(
        sdp,
        "v=0\r\no=- {} {} IN {} {}\r\ns=Earshot\r\nc=IN {} {}\r\nt=0 0\r\n",
        cfg.session_id, cfg.session_version, ipk, cfg.media_ip, ipk, cfg.media_ip
    );
    let session_ptime = offer.session_attr("ptime").map(str::to_owned);
    let mut results = Vec::with_capacity(offer.media.len());
    let mut survivors = 0usize;
    for (i, m) in offer.media.iter().enumerate() {
        let label = m.label();
        let paused = offer.is_held(i);
        let offered_dir = offer.direction(i);
        let our_port = ports.get(i).copied().unwrap_or(0);
        let is_audio = m.media.eq_ignore_ascii_case("audio") && proto_supported(&m.proto);
        let choice = if is_audio {
            choose_codec(m, &cfg.preference)
        } else {
            None
        };
        let accepted = match choice {
            Some(_) if m.port == 0 => true, // disabled by the offerer: paused
            Some(_) => our_port != 0,
            None => false,
        };
        let Some((codec, pt)) = choice.filter(|_| accepted) else {
            let first_fmt = m.formats.first().map(String::as_str).unwrap_or("0");
            let _ = write!(sdp, "m={} 0 {} {}\r\n", m.media, m.proto, first_fmt);
            results.push(StreamAnswer {
                index: i,
                label,
                port: 0,
                codec: None,
                payload_type: None,
                dtmf_payload_type: None,
                direction: Direction::Inactive,
                paused,
                remote: None,
            });
            continue;
        };
        survivors += 1;
        let port = if m.port == 0 { 0 } else { our_port };
        let direction = match offered_dir {
            Direction::Inactive | Direction::RecvOnly => Direction::Inactive,
            _ if m.port == 0 => Direction::Inactive,
            _ => Direction::RecvOnly,
        };
        let dtmf = choose_dtmf(m, codec, pt);
        let _ = write!(sdp, "m=audio {} {} {}", port, m.proto, pt);
        if let Some((dpt, _)) = dtmf {
            let _ = write!(sdp, " {dpt}");
        }
        sdp.push_str("\r\n");
        match codec {
            Codec::Opus => {
                let _ = write!(sdp, "a=rtpmap:{pt} opus/48000/2\r\n");
            }
            c => {
                let _ = write!(sdp, "a=rtpmap:{pt} {}/{}\r\n", c.name(), c.clock_rate());
            }
        }
        if let Some((dpt, rate)) = dtmf {
            let _ = write!(sdp, "a=rtpmap:{dpt} telephone-event/{rate}\r\n");
            let fmtp = m.fmtp(dpt).unwrap_or("0-15");
            let _ = write!(sdp, "a=fmtp:{dpt} {fmtp}\r\n");
        }
        if let Some(l) = &label {
            let _ = write!(sdp, "a=label:{l}\r\n");
        }
        if port != 0 {
            if let Some(rtcp) = port.checked_add(1) {
                let _ = write!(sdp, "a=rtcp:{rtcp}\r\n");
            }
        }
        let ptime = find_attr(&m.attributes, "ptime")
            .and_then(|(_, v)| v.clone())
            .or_else(|| session_ptime.clone());
        if let Some(p) = ptime.filter(|p| !p.is_empty()) {
            let _ = write!(sdp, "a=ptime:{p}\r\n");
        }
        let _ = write!(sdp, "a={}\r\n", direction.as_str());
        let remote = if paused {
            None
        } else {
            offer
                .connection_addr(i)
                .map(|ip| SocketAddr::new(ip, m.port))
        };
        results.push(StreamAnswer {
            index: i,
            label,
            port,
            codec: Some(codec),
            payload_type: Some(pt),
            dtmf_payload_type: dtmf.map(|(p, _)| p),
            direction,
            paused,
            remote,
        });
    }
    if survivors == 0 {
        return Err(SdpError::NoCommonCodec);
    }
    Ok((sdp, results))
}
