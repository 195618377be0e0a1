//! One UDP datagram through the whole SIP wire layer: framing, parsing,
//! the request accessors, multipart splitting, and the SDP / recording
//! metadata parsers on the parts that carry them.
#![no_main]

use earshot::sip::{
    body_parts, frame_datagram, parse_message, Frame, Limits, Response, SipMessage,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let Ok(Frame::Message(bytes)) = frame_datagram(data, &limits) else {
        return;
    };
    let Ok(msg) = parse_message(&bytes, &limits) else {
        return;
    };
    if let SipMessage::Request(req) = &msg {
        let _ = (req.call_id(), req.from_tag(), req.to_tag(), req.cseq());
        let _ = (req.via_branch(), req.via_transport(), req.contact_uri());
        let _ = (req.contact_has_feature("+sip.src"), req.from_uri());
        let _ = (req.record_route(), req.session_expires());
        // What we send back must parse again.
        let relaxed = Limits {
            max_message_bytes: usize::MAX,
            max_headers: usize::MAX,
            ..limits
        };
        let resp = Response::to_request(req, 200, "OK", Some("fuzz"));
        assert!(parse_message(&resp.to_bytes(), &relaxed).is_ok());
        match parse_message(&req.to_bytes(), &relaxed) {
            Ok(SipMessage::Request(again)) => {
                assert_eq!(again.method, req.method);
                assert_eq!(again.uri, req.uri);
                assert_eq!(again.body, req.body);
            }
            other => panic!("re-parse failed: {other:?}"),
        }
    }
    let Ok(parts) = body_parts(msg.content_type().as_ref(), msg.body(), &limits) else {
        return;
    };
    for part in parts {
        match part.content_type.as_ref().map(|c| c.mime.as_str()) {
            Some("application/rs-metadata+xml") | Some("application/rs-metadata") => {
                let _ = earshot::metadata::parse(
                    &part.body,
                    &earshot::metadata::MetadataLimits::default(),
                );
            }
            Some("application/sdp") => {
                if let Ok(text) = std::str::from_utf8(&part.body) {
                    let _ = earshot::sdp::parse(text);
                }
            }
            _ => {}
        }
    }
});
