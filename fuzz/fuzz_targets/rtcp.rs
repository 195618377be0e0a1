//! RTCP compound packets (SR, RR, SDES, BYE, APP, feedback, XR): the
//! framing walk and the SR/RR/BYE extraction. What parses is re-encoded
//! with the `rtcp` crate and must parse back to the same reports.
#![no_main]

use earshot::rtp::{is_rtcp, parse_rtcp, ReportBlock, RtcpInfo};
use libfuzzer_sys::fuzz_target;
use rtcp::goodbye::Goodbye;
use rtcp::receiver_report::ReceiverReport;
use rtcp::reception_report::ReceptionReport;
use rtcp::sender_report::SenderReport;
use webrtc_util::Marshal;

fn block(b: &ReportBlock) -> ReceptionReport {
    ReceptionReport {
        ssrc: b.ssrc.0,
        fraction_lost: b.fraction_lost,
        total_lost: (b.cumulative_lost as u32) & 0x00ff_ffff,
        last_sequence_number: b.extended_highest_seq,
        jitter: b.jitter,
        last_sender_report: b.last_sr,
        delay: b.delay_since_last_sr,
    }
}

fn encode(info: &RtcpInfo) -> Option<bytes::Bytes> {
    let res = match info {
        RtcpInfo::SenderReport(sr) => SenderReport {
            ssrc: sr.ssrc.0,
            ntp_time: sr.ntp,
            rtp_time: sr.rtp_timestamp,
            packet_count: sr.packet_count,
            octet_count: sr.octet_count,
            reports: sr.reports.iter().map(block).collect(),
            profile_extensions: Default::default(),
        }
        .marshal(),
        RtcpInfo::ReceiverReport { ssrc, reports } => ReceiverReport {
            ssrc: ssrc.0,
            reports: reports.iter().map(block).collect(),
            profile_extensions: Default::default(),
        }
        .marshal(),
        RtcpInfo::Bye { sources, reason } => {
            if reason.len() > 255 {
                // The lossy UTF-8 decoding grew it past what fits.
                return None;
            }
            Goodbye {
                sources: sources.iter().map(|s| s.0).collect(),
                reason: bytes::Bytes::copy_from_slice(reason.as_bytes()),
            }
            .marshal()
        }
    };
    Some(res.expect("a parsed report re-encodes"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(infos) = parse_rtcp(data) else {
        return;
    };
    // Every sub-packet is at least a 4-byte header.
    assert!(infos.len() <= data.len() / 4);
    if let [_, pt, ..] = data {
        if (200..=204).contains(pt) {
            assert!(is_rtcp(data));
        }
    }
    for info in &infos {
        match info {
            RtcpInfo::SenderReport(sr) => {
                assert!(sr.reports.len() <= 31);
                for r in &sr.reports {
                    assert!((-(1 << 23)..(1 << 23)).contains(&r.cumulative_lost));
                    assert!((0.0..1.0).contains(&r.fraction_lost_ratio()));
                }
            }
            RtcpInfo::ReceiverReport { reports, .. } => assert!(reports.len() <= 31),
            RtcpInfo::Bye { sources, .. } => assert!(sources.len() <= 31),
        }
    }
    let mut again = Vec::new();
    let mut kept = Vec::new();
    for info in &infos {
        if let Some(b) = encode(info) {
            again.extend_from_slice(&b);
            kept.push(info.clone());
        }
    }
    if !again.is_empty() {
        assert_eq!(parse_rtcp(&again).as_ref(), Ok(&kept));
    }
});
