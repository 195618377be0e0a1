//! RTCP parsing: the parts of a compound packet the media plane uses.
//!
//! SRCs send sender reports (for lip-sync/NTP mapping and the sender's own
//! counts), receiver reports (the far end's view of loss and jitter, useful
//! for the quality panel) and BYE (the stream ends). [`parse_rtcp`] walks the
//! compound packet's framing itself and hands only SR, RR and BYE
//! sub-packets — each cut to its own declared length — to the `rtcp` crate;
//! other types (SDES, APP, feedback, XR) are skipped. It never panics.

use super::RtpError;
use crate::ids::Ssrc;
use webrtc_util::Unmarshal;

/// One report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source this block reports on.
    pub ssrc: Ssrc,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed: duplicates can make it < 0).
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    /// `fraction_lost` as a fraction in [0, 1).
    pub fn fraction_lost_ratio(&self) -> f64 {
        f64::from(self.fraction_lost) / 256.0
    }
}

/// A sender report's sender info plus its report blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderInfo {
    pub ssrc: Ssrc,
    /// 64-bit NTP timestamp (seconds since 1900 in the high word).
    pub ntp: u64,
    /// The RTP timestamp corresponding to `ntp`.
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
    pub reports: Vec<ReportBlock>,
}

/// The parts of an RTCP compound packet we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpInfo {
    SenderReport(SenderInfo),
    ReceiverReport {
        ssrc: Ssrc,
        reports: Vec<ReportBlock>,
    },
    Bye {
        sources: Vec<Ssrc>,
        /// Reason text, lossily decoded as UTF-8.
        reason: String,
    },
}

const SR: u8 = 200;
const RR: u8 = 201;
const BYE: u8 = 203;

/// Parse a (compound) RTCP datagram. Errors on bad framing (wrong version,
/// a length running past the datagram, trailing bytes) or a malformed SR/RR/
/// BYE; `Ok` may be empty when the datagram holds only other packet types.
pub fn parse_rtcp(buf: &[u8]) -> Result<Vec<RtcpInfo>, RtpError> {
    if buf.len() < 4 {
        return Err(RtpError::TooShort { len: buf.len() });
    }
    let mut out = Vec::new();
    let mut rest = buf;
    while !rest.is_empty() {
        let (b0, pt, words) = match rest {
            [b0, pt, l0, l1, ..] => (*b0, *pt, u16::from_be_bytes([*l0, *l1])),
            _ => return Err(RtpError::BadRtcp("truncated header".into())),
        };
        if b0 >> 6 != 2 {
            return Err(RtpError::BadVersion(b0 >> 6));
        }
        let size = 4 + 4 * usize::from(words);
        let Some((mut one, tail)) = rest.split_at_checked(size) else {
            return Err(RtpError::BadRtcp(format!(
                "packet type {pt} declares {size} bytes, {} left",
                rest.len()
            )));
        };
        rest = tail;
        let err = |e: webrtc_util::Error| RtpError::BadRtcp(format!("packet type {pt}: {e}"));
        match pt {
            SR => {
                let sr = ::rtcp::sender_report::SenderReport::unmarshal(&mut one).map_err(err)?;
                out.push(RtcpInfo::SenderReport(SenderInfo {
                    ssrc: Ssrc(sr.ssrc),
                    ntp: sr.ntp_time,
                    rtp_timestamp: sr.rtp_time,
                    packet_count: sr.packet_count,
                    octet_count: sr.octet_count,
                    reports: sr.reports.iter().map(block).collect(),
                }));
            }
            RR => {
                let rr =
                    ::rtcp::receiver_report::ReceiverReport::unmarshal(&mut one).map_err(err)?;
                out.push(RtcpInfo::ReceiverReport {
                    ssrc: Ssrc(rr.ssrc),
                    reports: rr.reports.iter().map(block).collect(),
                });
            }
            BYE => {
                let bye = ::rtcp::goodbye::Goodbye::unmarshal(&mut one).map_err(err)?;
                out.push(RtcpInfo::Bye {
                    sources: bye.sources.iter().map(|s| Ssrc(*s)).collect(),
                    reason: String::from_utf8_lossy(&bye.reason).into_owned(),
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

fn block(r: &::rtcp::reception_report::ReceptionReport) -> ReportBlock {
    // 24-bit two's complement → i32.
    let lost = r.total_lost & 0x00ff_ffff;
    let cumulative_lost = if lost & 0x0080_0000 != 0 {
        (lost | 0xff00_0000) as i32
    } else {
        lost as i32
    };
    ReportBlock {
        ssrc: Ssrc(r.ssrc),
        fraction_lost: r.fraction_lost,
        cumulative_lost,
        extended_highest_seq: r.last_sequence_number,
        jitter: r.jitter,
        last_sr: r.last_sender_report,
        delay_since_last_sr: r.delay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RR_SDES_BYE: &[u8] = &[
        // RR, 1 block
        0x81, 0xc9, 0x00, 0x07, 0x90, 0x2f, 0x9e, 0x2e, // sender
        0xbc, 0x5e, 0x9a, 0x40, // source
        0x10, 0xff, 0xff, 0xfe, // fraction 16/256, cumulative -2
        0x00, 0x01, 0x46, 0xe1, // ext highest seq
        0x00, 0x00, 0x01, 0x11, // jitter 273
        0x09, 0xf3, 0x64, 0x32, // LSR
        0x00, 0x02, 0x4a, 0x79, // DLSR
        // SDES, one chunk with CNAME "ab"
        0x81, 0xca, 0x00, 0x02, 0x90, 0x2f, 0x9e, 0x2e, 0x01, 0x02, b'a', b'b', //
        // BYE with reason "bye" (+ pad)
        0x81, 0xcb, 0x00, 0x02, 0x90, 0x2f, 0x9e, 0x2e, 0x03, b'b', b'y', b'e',
    ];

    #[test]
    fn compound_rr_sdes_bye() {
        let info = parse_rtcp(RR_SDES_BYE).unwrap();
        assert_eq!(
            info,
            vec![
                RtcpInfo::ReceiverReport {
                    ssrc: Ssrc(0x902f9e2e),
                    reports: vec![ReportBlock {
                        ssrc: Ssrc(0xbc5e9a40),
                        fraction_lost: 16,
                        cumulative_lost: -2,
                        extended_highest_seq: 0x146e1,
                        jitter: 273,
                        last_sr: 0x09f36432,
                        delay_since_last_sr: 0x24a79,
                    }],
                },
                RtcpInfo::Bye {
                    sources: vec![Ssrc(0x902f9e2e)],
                    reason: "bye".into(),
                },
            ]
        );
    }

    #[test]
    fn sender_report() {
        let buf = [
            0x80, 0xc8, 0x00, 0x06, // SR, no blocks
            0x00, 0x00, 0x00, 0x2a, // ssrc 42
            0xe6, 0x00, 0x00, 0x00, 0x80, 0x00, 0x00, 0x00, // NTP
            0x00, 0x00, 0x03, 0x20, // rtp ts 800
            0x00, 0x00, 0x00, 0x0a, // packets 10
            0x00, 0x00, 0x06, 0x40, // octets 1600
        ];
        assert_eq!(
            parse_rtcp(&buf).unwrap(),
            vec![RtcpInfo::SenderReport(SenderInfo {
                ssrc: Ssrc(42),
                ntp: 0xe600_0000_8000_0000,
                rtp_timestamp: 800,
                packet_count: 10,
                octet_count: 1600,
                reports: vec![],
            })]
        );
    }

    #[test]
    fn bad_framing_is_an_error() {
        assert!(parse_rtcp(&[]).is_err());
        assert!(parse_rtcp(&[0x81, 0xc9, 0x00]).is_err());
        // length past the end
        assert!(parse_rtcp(&[0x81, 0xc9, 0x00, 0x09, 0, 0, 0, 0]).is_err());
        // RR claiming a block it does not have
        assert!(parse_rtcp(&[0x81, 0xc9, 0x00, 0x01, 0, 0, 0, 1]).is_err());
        // trailing partial header
        let mut v = RR_SDES_BYE.to_vec();
        v.extend_from_slice(&[0x80, 0xc9]);
        assert!(parse_rtcp(&v).is_err());
        // version 1
        assert_eq!(
            parse_rtcp(&[0x41, 0xc9, 0x00, 0x00]),
            Err(RtpError::BadVersion(1))
        );
    }
}
