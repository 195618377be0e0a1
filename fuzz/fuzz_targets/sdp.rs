//! SDP offers: the tolerant parser, the accessors the UAS uses, and the
//! SIPREC answer, which must itself parse back to what was negotiated.
#![no_main]

use earshot::sdp::{self, AnswerConfig, Codec, Direction, MAX_SDP_BYTES};
use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(offer) = sdp::parse(text) else {
        return;
    };
    assert!(text.len() <= MAX_SDP_BYTES);
    assert!(!offer.media.is_empty());
    let n = offer.media.len();
    for (i, m) in offer.media.iter().enumerate() {
        let _ = (offer.direction(i), offer.connection_addr(i), m.label());
        let _ = offer.is_held(i);
        for (_, pt) in m.decodable_formats() {
            let _ = m.fmtp(pt);
        }
        let _ = m.rtpmaps();
    }
    assert!(!offer.is_held(n));
    let _ = offer.session_attr("group");

    let ports: Vec<u16> = (0..n)
        .map(|i| 20_000u16.wrapping_add(2 * i as u16))
        .collect();
    for preference in [
        vec![],
        vec![Codec::Opus, Codec::G722, Codec::Pcma, Codec::Pcmu],
    ] {
        let cfg = AnswerConfig {
            media_ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
            session_id: 42,
            session_version: 1,
            preference,
        };
        let Ok((answer_text, results)) = sdp::answer(&offer, &ports, &cfg) else {
            continue;
        };
        assert_eq!(results.len(), n);
        let answer = match sdp::parse(&answer_text) {
            Ok(a) => a,
            Err(e) => panic!("our answer does not parse ({e}):\n{answer_text}"),
        };
        // RFC 3264 §6: one answer m-line per offered m-line, in order.
        assert_eq!(answer.media.len(), n, "{answer_text}");
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.index, i);
            let m = &answer.media[i];
            assert_eq!(m.port, r.port);
            let Some(codec) = r.codec else {
                assert_eq!(m.port, 0);
                continue;
            };
            assert_ne!(codec, Codec::TelephoneEvent);
            assert!(matches!(
                r.direction,
                Direction::RecvOnly | Direction::Inactive
            ));
            assert_eq!(answer.direction(i), r.direction, "{answer_text}");
            let pt = r.payload_type.expect("accepted stream has a payload type");
            assert!(
                m.decodable_formats().contains(&(codec, pt)),
                "{codec:?}/{pt} not in answer m-line {i}:\n{answer_text}"
            );
            if let Some(dpt) = r.dtmf_payload_type {
                assert!(m
                    .decodable_formats()
                    .contains(&(Codec::TelephoneEvent, dpt)));
            }
            assert_eq!(m.label(), r.label, "{answer_text}");
            assert_eq!(m.label(), offer.media[i].label());
        }
    }
});
