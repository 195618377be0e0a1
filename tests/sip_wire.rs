//! Integration tests of the SIP wire layer (`earshot::sip`): vendor-style
//! messages, every error path, and proptest properties (no panics,
//! serialise/parse round trips, stream reassembly).
//!
//! The vendor messages live in `fuzz/seeds/sip_message/` so that the fuzzers
//! start from the same inputs these tests check.

use earshot::sip::{
    body_parts, frame_datagram, parse_message, Frame, Headers, Limits, MediaType, Method, Request,
    Response, SipError, SipMessage, StreamFramer,
};
use proptest::prelude::*;

const CISCO: &[u8] = include_bytes!("../fuzz/seeds/sip_message/cisco_invite.sip");
const ACME: &[u8] = include_bytes!("../fuzz/seeds/sip_message/acme_compact_invite.sip");
const AUDIOCODES: &[u8] = include_bytes!("../fuzz/seeds/sip_message/audiocodes_invite.sip");
const FREESWITCH: &[u8] = include_bytes!("../fuzz/seeds/sip_message/freeswitch_invite.sip");
const FOLDED: &[u8] = include_bytes!("../fuzz/seeds/sip_message/folded_options.sip");
const ACME_200: &[u8] = include_bytes!("../fuzz/seeds/sip_message/acme_200_ok.sip");

fn limits() -> Limits {
    Limits::default()
}

fn request(bytes: &[u8]) -> Request {
    match parse_message(bytes, &limits()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("expected a request, got {other:?}"),
    }
}

fn parse_err(bytes: &[u8]) -> SipError {
    match parse_message(bytes, &limits()) {
        Err(e) => e,
        Ok(m) => panic!("expected an error, got {m:?}"),
    }
}

/// CRLF line ends and a correct Content-Length for `body`.
fn msg(head: &str, body: &str) -> Vec<u8> {
    let mut out = head.trim_matches('\n').replace('\n', "\r\n");
    out.push_str(&format!("\r\nContent-Length: {}\r\n\r\n", body.len()));
    out.push_str(body);
    out.into_bytes()
}

const MINIMAL: &str = "INVITE sip:srs@10.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-min
From: <sip:src@10.0.0.2>;tag=a1
To: <sip:srs@10.0.0.1>
Call-ID: min@10.0.0.2
CSeq: 1 INVITE";

fn minimal_with(extra: &str) -> Vec<u8> {
    msg(&format!("{MINIMAL}\n{extra}"), "")
}

fn datagram(bytes: &[u8]) -> Vec<u8> {
    match frame_datagram(bytes, &limits()) {
        Ok(Frame::Message(m)) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Vendor messages.

#[test]
fn cisco_cube_multipart_invite() {
    let framed = datagram(CISCO);
    assert_eq!(framed, CISCO);
    let req = request(&framed);
    assert_eq!(req.method, Method::Invite);
    assert_eq!(req.uri, "sip:srs@192.0.2.50:5060");
    assert_eq!(
        req.call_id(),
        Some("7F3C2E10-1DD211B2-8012E3A4-5A6B7C8D@192.0.2.10")
    );
    assert_eq!(req.from_tag(), Some("1A2B3C-4D5"));
    assert_eq!(req.to_tag(), None);
    assert_eq!(req.cseq(), Some((101, Method::Invite)));
    assert_eq!(req.via_branch(), Some("z9hG4bK2D1A3F"));
    assert_eq!(req.via_transport().as_deref(), Some("UDP"));
    assert_eq!(req.headers.get_all("Via").count(), 2);
    assert!(req.contact_has_feature("+sip.src"));
    assert!(req.contact_has_feature("+SIP.SRC"));
    assert!(!req.contact_has_feature("+sip.srs"));
    assert_eq!(
        req.contact_uri().as_deref(),
        Some("sip:+14085551234@192.0.2.10:5060")
    );
    assert_eq!(
        req.from_uri().as_deref(),
        Some("sip:+14085551234@192.0.2.10")
    );
    assert_eq!(req.session_expires(), Some(1800));
    assert_eq!(req.headers.tokens("Require"), vec!["siprec"]);
    assert!(req
        .headers
        .tokens("Supported")
        .contains(&"replaces".to_string()));
    assert_eq!(req.headers.get("Min-SE"), Some("1800"));
    // Unknown header names keep their spelling, well-known ones canonical.
    assert_eq!(req.headers.get("cisco-guid").map(str::len), Some(43));
    assert!(req.headers.0.iter().any(|(n, _)| n == "MIME-Version"));

    let ct = req.content_type().expect("content type");
    assert_eq!(ct.mime, "multipart/mixed");
    assert_eq!(ct.param("BOUNDARY"), Some("uniqueBoundary"));
    let parts = body_parts(Some(&ct), &req.body, &limits()).expect("parts");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].mime(), Some("application/sdp"));
    assert_eq!(parts[0].disposition().as_deref(), Some("session"));
    assert!(parts[0].body.starts_with(b"v=0\r\n"));
    assert!(parts[0].body.ends_with(b"a=label:2\r\n"));
    assert_eq!(parts[1].mime(), Some("application/rs-metadata+xml"));
    assert_eq!(parts[1].disposition().as_deref(), Some("recording-session"));
    assert!(parts[1].body.starts_with(b"<?xml"));
    assert!(parts[1].body.ends_with(b"</recording>"));
}

#[test]
fn oracle_acme_compact_headers() {
    let req = request(&datagram(ACME));
    assert_eq!(req.uri, "sip:siprec@198.51.100.20:5060;transport=tcp");
    // Compact names are stored in their long form, and accepted by `get`.
    let names: Vec<&str> = req.headers.0.iter().map(|(n, _)| n.as_str()).collect();
    for long in [
        "Via",
        "From",
        "To",
        "Call-ID",
        "Contact",
        "Supported",
        "Session-Expires",
        "Content-Type",
        "Content-Length",
    ] {
        assert!(names.contains(&long), "{long} missing from {names:?}");
    }
    assert_eq!(req.headers.get("i"), req.call_id());
    let len = req.body.len().to_string();
    assert_eq!(req.headers.get("l"), Some(len.as_str()));
    assert_eq!(req.via_transport().as_deref(), Some("TCP"));
    assert_eq!(req.via_branch(), Some("z9hG4bK0g6n8k30a8c0rc9v3fu0.1"));
    assert_eq!(req.session_expires(), Some(3600));
    assert!(req.contact_has_feature("+sip.src"));
    assert_eq!(
        req.contact_uri().as_deref(),
        Some("sip:198.51.100.5:5060;transport=tcp")
    );
    let ct = req.content_type().expect("ct");
    assert_eq!(ct.param("boundary"), Some("unique-boundary-1"));
    let parts = body_parts(Some(&ct), &req.body, &limits()).expect("parts");
    // Metadata first, then SDP; compact `c:` in a part header; preamble.
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].mime(), Some("application/rs-metadata+xml"));
    assert_eq!(parts[1].mime(), Some("application/sdp"));
    assert!(parts[1].body.ends_with(b"a=sendonly\r\n"));
}

#[test]
fn audiocodes_invite() {
    let req = request(&datagram(AUDIOCODES));
    assert_eq!(req.from_uri().as_deref(), Some("sip:SRC@203.0.113.4"));
    assert_eq!(req.from_tag(), Some("1c1809862318"));
    // Feature tag inside the URI.
    assert!(req.contact_has_feature("+sip.src"));
    assert_eq!(
        req.contact_uri().as_deref(),
        Some("sip:SRC@203.0.113.4:5060;+sip.src")
    );
    let parts = body_parts(req.content_type().as_ref(), &req.body, &limits()).expect("parts");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].mime(), Some("application/sdp"));
    assert!(parts[1].body.ends_with(b"</recording>\r\n"));
}

#[test]
fn freeswitch_invite_lf_body() {
    let req = request(&datagram(FREESWITCH));
    assert_eq!(req.cseq(), Some((83927162, Method::Invite)));
    assert_eq!(req.via_branch(), Some("z9hG4bKXm2Q9gK1v8cHe"));
    assert_eq!(
        req.headers.tokens("Allow-Events"),
        vec!["talk", "hold", "conference", "refer"]
    );
    let parts = body_parts(req.content_type().as_ref(), &req.body, &limits()).expect("parts");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].headers.get("Content-ID"), Some("<sdp@fs>"));
    assert_eq!(parts[0].mime(), Some("application/sdp"));
    assert!(parts[0].body.ends_with(b"a=label:caller\n"));
    assert_eq!(parts[1].headers.get("content-id"), Some("<meta@fs>"));
    assert!(parts[1].body.ends_with(b"</recording>\n"));
}

#[test]
fn folded_headers_and_case() {
    let req = request(&datagram(FOLDED));
    assert_eq!(req.method, Method::Options);
    // IPv6 Request-URI: rsip cannot parse it alone, we mask the literal.
    assert_eq!(req.uri, "sip:srs@[2001:db8::50]:5060");
    assert_eq!(req.via_branch(), Some("z9hG4bKfold1"));
    assert_eq!(req.call_id(), Some("fold-1@example.com"));
    assert_eq!(req.cseq(), Some((7, Method::Options)));
    assert_eq!(
        req.headers.get("Subject"),
        Some("a subject that spans three lines")
    );
    assert_eq!(
        req.headers.tokens("supported"),
        vec!["timer", "replaces", "100rel"]
    );
    assert_eq!(req.from_uri().as_deref(), Some("sip:probe@example.com"));
    assert_eq!(req.from_tag(), Some("ff01"));
    let names: Vec<&str> = req.headers.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        &names[..6],
        &["Via", "Max-Forwards", "From", "To", "Call-ID", "CSeq"]
    );
    assert!(req.body.is_empty());
    assert!(
        body_parts(req.content_type().as_ref(), &req.body, &limits())
            .expect("no parts")
            .is_empty()
    );
}

#[test]
fn acme_response() {
    match parse_message(&datagram(ACME_200), &limits()) {
        Ok(SipMessage::Response(r)) => {
            assert_eq!(r.status, 200);
            assert_eq!(r.reason, "OK");
            assert_eq!(r.cseq(), Some((2, Method::Bye)));
            assert_eq!(r.call_id(), Some("bye-test@198.51.100.20"));
            assert_eq!(r.to_tag(), Some("7bb2a1c0f1e9a3d4"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn odd_but_legal_start_lines() {
    let r = request(&msg(
        &MINIMAL.replace(
            "INVITE sip:srs@10.0.0.1",
            "INVITE tel:+15551234567;phone-context=example.com",
        ),
        "",
    ));
    assert_eq!(r.uri, "tel:+15551234567;phone-context=example.com");
    let r = request(&msg(
        &MINIMAL
            .replace(
                "INVITE sip:srs@10.0.0.1",
                "PUBLISH sips:srs@example.com;transport=tls",
            )
            .replace("1 INVITE", "1 PUBLISH"),
        "",
    ));
    assert_eq!(r.method, Method::Other("PUBLISH".into()));
    let r = request(&msg(
        &MINIMAL
            .replace("INVITE sip:srs@10.0.0.1", "X-RECORD sip:srs@10.0.0.1")
            .replace("1 INVITE", "1 X-RECORD"),
        "",
    ));
    assert_eq!(r.method.as_str(), "X-RECORD");
    // URI parameters rsip alone would reject (non-token values, transports
    // it does not know).
    for uri in [
        "sip:srs@10.0.0.1;transport=ws",
        "sip:srs@example.com;maddr=[2001:db8::9];x=a:b/c",
        "sip:+1555;phone-context=+1@example.com;user=phone",
        "sip:srs@example.com;lr?X-Foo=bar",
    ] {
        let r = request(&msg(&MINIMAL.replace("sip:srs@10.0.0.1", uri), ""));
        assert_eq!(r.uri, uri);
    }
    // Leading CRLFs are ignored, a missing reason phrase is tolerated.
    let mut bytes = b"\r\n\r\n".to_vec();
    bytes.extend(msg(MINIMAL, ""));
    assert_eq!(request(&bytes).method, Method::Invite);
    match parse_message(b"SIP/2.0 180\r\nContent-Length: 0\r\n\r\n", &limits()) {
        Ok(SipMessage::Response(r)) => {
            assert_eq!(r.status, 180);
            assert_eq!(r.reason, "");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn header_lookups_and_display_names() {
    let r = request(&minimal_with(
        "Contact: \"Rec, <Src>\" <sip:a@b;transport=tcp?X=1>;src;expires=60, <sip:c@d>\nRecord-Route: <sip:p1@x;lr>, <sip:p2@y;lr>\nRecord-Route: <sip:p3@z;lr>\nSession-Expires: 90;refresher=uas\nRequire: Siprec , TIMER",
    ));
    assert!(r.contact_has_feature("src"));
    assert!(r.contact_has_feature("SRC"));
    assert!(!r.contact_has_feature("+sip.src"));
    assert!(!r.contact_has_feature("X"));
    assert_eq!(
        r.contact_uri().as_deref(),
        Some("sip:a@b;transport=tcp?X=1")
    );
    assert_eq!(
        r.record_route(),
        vec!["<sip:p1@x;lr>", "<sip:p2@y;lr>", "<sip:p3@z;lr>"]
    );
    assert_eq!(r.session_expires(), Some(90));
    assert_eq!(r.headers.tokens("require"), vec!["siprec", "timer"]);

    let r = request(&minimal_with(
        "m: <sip:srs@1.2.3.4>;+sip.src=\"quoted value\"",
    ));
    assert!(r.contact_has_feature("+sip.src"));
    let r = request(&minimal_with("Contact: <sip:a@b;+SIP.SRC>"));
    assert!(r.contact_has_feature("+sip.src"));
    // addr-spec From: params belong to the header.
    let r = request(&msg(
        &MINIMAL.replace(
            "From: <sip:src@10.0.0.2>;tag=a1",
            "From: sip:src@10.0.0.2;tag=zz",
        ),
        "",
    ));
    assert_eq!(r.from_uri().as_deref(), Some("sip:src@10.0.0.2"));
    assert_eq!(r.from_tag(), Some("zz"));
    assert_eq!(r.headers.get("f"), Some("sip:src@10.0.0.2;tag=zz"));
}

#[test]
fn response_to_request_and_serialisation() {
    let req = request(CISCO);
    let resp = Response::to_request(&req, 200, "OK", Some("srs-tag-1"));
    let names: Vec<&str> = resp.headers.0.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["Via", "Via", "From", "To", "Call-ID", "CSeq"]);
    assert_eq!(
        resp.headers.get("To"),
        Some("<sip:srs@192.0.2.50>;tag=srs-tag-1")
    );
    assert_eq!(resp.to_tag(), Some("srs-tag-1"));
    assert_eq!(
        resp.headers.get_all("Via").collect::<Vec<_>>(),
        req.headers.get_all("Via").collect::<Vec<_>>()
    );
    let bytes = resp.to_bytes();
    let text = String::from_utf8(bytes.clone()).expect("utf8");
    assert!(text.starts_with(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK2D1A3F\r\n"
    ));
    assert!(text.ends_with("CSeq: 101 INVITE\r\nContent-Length: 0\r\n\r\n"));
    match parse_message(&bytes, &limits()) {
        Ok(SipMessage::Response(back)) => {
            assert_eq!(back.status, 200);
            assert_eq!(back.call_id(), req.call_id());
        }
        other => panic!("{other:?}"),
    }

    // An existing To tag is kept.
    let mut tagged = req.clone();
    tagged.headers.remove("To");
    tagged.headers.push("t", "<sip:srs@192.0.2.50>;tag=old");
    let resp = Response::to_request(&tagged, 180, "Ringing", Some("new"));
    assert_eq!(resp.headers.get("To"), Some("<sip:srs@192.0.2.50>;tag=old"));
    let resp = Response::to_request(&req, 100, "Trying", None);
    assert_eq!(resp.headers.get("To"), Some("<sip:srs@192.0.2.50>"));

    // Request::to_bytes: fresh Content-Length, last, CRLF, body.
    let mut r = request(&minimal_with("X-Custom: keep me"));
    r.headers
        .0
        .insert(5, ("Content-Length".into(), "99".into()));
    r.headers.0.insert(2, ("l".into(), "99".into()));
    r.body = b"hello".to_vec();
    let out = String::from_utf8(r.to_bytes()).expect("utf8");
    assert!(out.starts_with("INVITE sip:srs@10.0.0.1 SIP/2.0\r\n"));
    assert!(out.ends_with("X-Custom: keep me\r\nContent-Length: 5\r\n\r\nhello"));
    assert_eq!(out.matches("Content-Length").count(), 1);
    assert!(!out.replace("\r\n", "").contains('\n'));
}

#[test]
fn headers_api() {
    let mut h = Headers::default();
    h.push("i", "abc");
    h.push("call-id", "def");
    h.push("X-Thing", "1");
    assert_eq!(h.0[0].0, "Call-ID");
    assert_eq!(h.0[1].0, "Call-ID");
    assert_eq!(h.get("CALL-ID"), Some("abc"));
    assert_eq!(h.get_all("i").collect::<Vec<_>>(), ["abc", "def"]);
    h.remove("i");
    assert_eq!(h.get("Call-ID"), None);
    assert_eq!(h.get("x-thing"), Some("1"));
    assert_eq!(earshot::sip::canonical_header_name("cseq"), "CSeq");
    assert_eq!(earshot::sip::canonical_header_name("k"), "Supported");
    assert_eq!(earshot::sip::canonical_header_name("X-Foo"), "X-Foo");
}

#[test]
fn media_type_parsing() {
    let m = MediaType::parse("Multipart/Mixed ; boundary=\"a;b=c\" ; charset=UTF-8").expect("mt");
    assert_eq!(m.mime, "multipart/mixed");
    assert_eq!(m.param("boundary"), Some("a;b=c"));
    assert_eq!(m.param("CHARSET"), Some("UTF-8"));
    assert!(MediaType::parse("nonsense").is_none());
    assert!(MediaType::parse("a/").is_none());
    assert!(MediaType::parse("").is_none());
}

// ---------------------------------------------------------------------------
// Error paths.

#[test]
fn error_too_large() {
    let small = Limits {
        max_message_bytes: 100,
        ..Limits::default()
    };
    assert_eq!(parse_message(CISCO, &small), Err(SipError::TooLarge(100)));
    assert_eq!(frame_datagram(CISCO, &small), Err(SipError::TooLarge(100)));
    let mut f = StreamFramer::new(small);
    f.push(CISCO);
    assert_eq!(f.next_frame(), Err(SipError::TooLarge(100)));
    // Head fits, Content-Length does not.
    let mut f = StreamFramer::new(small);
    f.push(b"BYE sip:a@b SIP/2.0\r\nl: 5000\r\n\r\n");
    assert_eq!(f.next_frame(), Err(SipError::TooLarge(100)));
}

#[test]
fn error_too_many_headers() {
    let few = Limits {
        max_headers: 6,
        ..Limits::default()
    };
    assert_eq!(
        parse_message(&minimal_with("X-A: 1\nX-B: 2"), &few),
        Err(SipError::TooManyHeaders(6))
    );
    // Exactly at the limit is fine (5 mandatory + Content-Length).
    assert!(parse_message(&msg(MINIMAL, ""), &few).is_ok());
}

#[test]
fn error_not_utf8() {
    let mut bytes = msg(MINIMAL, "");
    let pos = bytes.iter().position(|&b| b == b'm').expect("m");
    bytes[pos] = 0xff;
    assert_eq!(parse_err(&bytes), SipError::NotUtf8);
    // A binary body is fine.
    let mut bin = msg(
        &format!("{MINIMAL}\nContent-Type: application/octet-stream"),
        "",
    );
    let cl = String::from_utf8(bin.clone())
        .expect("utf8")
        .replace("Content-Length: 0", "Content-Length: 3");
    bin = cl.into_bytes();
    bin.extend_from_slice(&[0xff, 0x00, 0xfe]);
    assert_eq!(request(&bin).body, [0xff, 0x00, 0xfe]);
}

#[test]
fn error_bad_content_length() {
    for bad in [
        "Content-Length: -1",
        "Content-Length: abc",
        "l: +5",
        "Content-Length: 99999999999999999999999",
    ] {
        let bytes = format!("{MINIMAL}\n{bad}\n\n").replace('\n', "\r\n");
        assert!(
            matches!(parse_err(bytes.as_bytes()), SipError::BadContentLength(_)),
            "{bad}"
        );
        assert!(
            matches!(
                frame_datagram(bytes.as_bytes(), &limits()),
                Err(SipError::BadContentLength(_))
            ),
            "{bad}"
        );
    }
    // Conflicting duplicates (one compact).
    let bytes = format!("{MINIMAL}\nContent-Length: 2\nl: 3\n\nabc").replace('\n', "\r\n");
    assert!(matches!(
        parse_err(bytes.as_bytes()),
        SipError::BadContentLength(_)
    ));
    let mut f = StreamFramer::new(limits());
    f.push(bytes.as_bytes());
    assert!(matches!(f.next_frame(), Err(SipError::BadContentLength(_))));
    // Equal duplicates are accepted.
    let bytes = format!("{MINIMAL}\nContent-Length: 3\nl: 3\n\nabc").replace('\n', "\r\n");
    assert_eq!(request(bytes.as_bytes()).body, b"abc");
}

#[test]
fn error_truncated() {
    let bytes = format!("{MINIMAL}\nContent-Length: 10\n\nabc").replace('\n', "\r\n");
    assert_eq!(parse_err(bytes.as_bytes()), SipError::Truncated);
    assert_eq!(
        frame_datagram(bytes.as_bytes(), &limits()),
        Err(SipError::Truncated)
    );
    // Datagram: bytes past Content-Length are dropped.
    let bytes = format!("{MINIMAL}\nContent-Length: 2\n\nabc").replace('\n', "\r\n");
    let framed = datagram(bytes.as_bytes());
    assert_eq!(request(&framed).body, b"ab");
    assert_eq!(request(bytes.as_bytes()).body, b"ab");
    // No Content-Length on UDP: the rest is the body.
    let bytes = format!("{MINIMAL}\n\nxyz").replace('\n', "\r\n");
    assert_eq!(request(&datagram(bytes.as_bytes())).body, b"xyz");
}

#[test]
fn error_missing_headers() {
    let lines: Vec<&str> = MINIMAL.lines().collect();
    for (i, name) in [
        (1, "Via"),
        (2, "From"),
        (3, "To"),
        (4, "Call-ID"),
        (5, "CSeq"),
    ] {
        let head: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, l)| *l)
            .collect();
        assert_eq!(
            parse_err(&msg(&head.join("\n"), "")),
            SipError::MissingHeader(name)
        );
    }
    // Responses need none of them.
    assert!(parse_message(b"SIP/2.0 200 OK\r\n\r\n", &limits()).is_ok());
}

#[test]
fn error_bad_start_line() {
    for bad in [
        "INVITE sip:srs@10.0.0.1 SIP/3.0",
        "INVITE sip:srs@10.0.0.1 SIP/1.0",
        "INVITE  sip:srs@10.0.0.1 SIP/2.0",
        "INVITE sip:srs@10.0.0.1 SIP/2.0 ",
        "INVITE sip:srs@10.0.0.1",
        "INVITE sip:srs@10.0.0.1 HTTP/1.1",
        "INVITE srs@10.0.0.1 SIP/2.0",
        "INVITE sip: SIP/2.0",
        "INVITE sip:srs@host:abc SIP/2.0",
        "INVITE sip:srs@host:99999 SIP/2.0",
        "INVITE sip:srs@[2001:db8::zz] SIP/2.0",
        "INVITE sip:srs@[2001:db8::1 SIP/2.0",
        "INV\"TE sip:srs@10.0.0.1 SIP/2.0",
        "SIP/2.0 20 OK",
        "SIP/2.0 +20 OK",
        "SIP/2.0 099 Low",
        "SIP/2.0 700 High",
        "SIP/1.0 200 OK",
        "HTTP/1.1 200 OK",
        "",
    ] {
        let head = MINIMAL.replacen("INVITE sip:srs@10.0.0.1 SIP/2.0", bad, 1);
        let err = parse_err(&msg(&head, ""));
        assert!(matches!(err, SipError::BadStartLine(_)), "{bad:?}: {err:?}");
        let reason = err.reason();
        assert!(reason.len() <= 120 && !reason.contains(['\r', '\n']));
    }
    assert!(matches!(parse_err(b""), SipError::BadStartLine(_)));
    assert!(matches!(parse_err(b"\r\n\r\n"), SipError::BadStartLine(_)));
}

#[test]
fn error_bad_header() {
    for bad in ["No colon here", "Bad Name: x", "[x]: y", ": empty name"] {
        let err = parse_err(&minimal_with(bad));
        assert!(matches!(err, SipError::BadHeader(_)), "{bad:?}: {err:?}");
    }
    // Continuation before any header.
    let bytes = b"INVITE sip:a@b SIP/2.0\r\n folded\r\n\r\n";
    assert!(matches!(parse_err(bytes), SipError::BadHeader(_)));
    // Mandatory values that make no sense.
    for (from, to) in [
        ("CSeq: 1 INVITE", "CSeq: x INVITE"),
        ("CSeq: 1 INVITE", "CSeq: 1 BYE"),
        ("CSeq: 1 INVITE", "CSeq: 4294967296 INVITE"),
        (
            "Via: SIP/2.0/UDP 10.0.0.2:5060;branch=z9hG4bK-min",
            "Via: garbage",
        ),
        ("From: <sip:src@10.0.0.2>;tag=a1", "From: <>;tag=a1"),
        ("To: <sip:srs@10.0.0.1>", "To: \"unterminated <sip:x@y>"),
    ] {
        let err = parse_err(&msg(&MINIMAL.replace(from, to), ""));
        assert!(matches!(err, SipError::BadHeader(_)), "{to:?}: {err:?}");
    }
    // Space before the colon is legal (HCOLON).
    assert!(parse_message(&minimal_with("Subject : hello"), &limits()).is_ok());
}

fn mt(s: &str) -> MediaType {
    MediaType::parse(s).expect("media type")
}

#[test]
fn multipart_errors_and_tolerance() {
    let l = limits();
    let ct = mt("multipart/mixed;boundary=XX");
    // Boundary never appears.
    assert!(matches!(
        body_parts(Some(&ct), b"v=0\r\n", &l),
        Err(SipError::BadMultipart(_))
    ));
    // No boundary parameter.
    assert!(matches!(
        body_parts(Some(&mt("multipart/mixed")), b"--XX\r\n\r\nx\r\n--XX--", &l),
        Err(SipError::BadMultipart(_))
    ));
    // Missing closing delimiter, parts otherwise complete: tolerated.
    let body = b"--XX\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--XX\r\nContent-Type: application/rs-metadata+xml\r\n\r\n<recording/>\r\n";
    let parts = body_parts(Some(&ct), body, &l).expect("tolerated");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].body, b"v=0\r\n");
    assert_eq!(parts[1].body, b"<recording/>\r\n");
    // ...but a last part cut inside its headers is not.
    let body =
        b"--XX\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--XX\r\nContent-Type: appl";
    assert!(matches!(
        body_parts(Some(&ct), body, &l),
        Err(SipError::BadMultipart(_))
    ));
    // A part header line without colon.
    let body = b"--XX\r\nnot a header\r\n\r\nx\r\n--XX--\r\n";
    assert!(matches!(
        body_parts(Some(&ct), body, &l),
        Err(SipError::BadMultipart(_))
    ));
    // max_parts.
    let mut body = String::new();
    for i in 0..5 {
        body.push_str(&format!(
            "--XX\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n"
        ));
    }
    body.push_str("--XX--\r\n");
    let three = Limits {
        max_parts: 3,
        ..Limits::default()
    };
    assert!(matches!(
        body_parts(Some(&ct), body.as_bytes(), &three),
        Err(SipError::BadMultipart(_))
    ));
    assert_eq!(
        body_parts(Some(&ct), body.as_bytes(), &l).expect("5").len(),
        5
    );
    // Nested multiparts too deep.
    let mut body = "leaf".to_string();
    let mut outer = "text/plain".to_string();
    for depth in 0..6 {
        let b = format!("b{depth}");
        body = format!("--{b}\r\nContent-Type: {outer}\r\n\r\n{body}\r\n--{b}--\r\n");
        outer = format!("multipart/mixed; boundary={b}");
    }
    assert!(matches!(
        body_parts(Some(&mt(&outer)), body.as_bytes(), &l),
        Err(SipError::BadMultipart(_))
    ));
}

#[test]
fn multipart_nested_quoted_padding() {
    let body = "preamble text\r\n--outer  \r\nContent-Type: multipart/related; boundary=\"in ner\"\r\n\r\n\
--in ner\r\nContent-Type: application/sdp\r\nContent-ID: <a>\r\n\r\nv=0\r\n\r\n\
--in ner\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition:\r\n recording-session\r\n\r\n<r/>\r\n--in ner--\r\n\
\r\n--outer\r\n\r\nno headers\r\n--outer--\r\nepilogue --outer\r\n";
    let parts = body_parts(
        Some(&mt("multipart/mixed;boundary=\"outer\"")),
        body.as_bytes(),
        &limits(),
    )
    .expect("parts");
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0].headers.get("Content-ID"), Some("<a>"));
    assert_eq!(parts[0].body, b"v=0\r\n");
    assert_eq!(parts[1].disposition().as_deref(), Some("recording-session"));
    assert_eq!(parts[1].body, b"<r/>");
    assert_eq!(parts[2].content_type, None);
    assert_eq!(parts[2].body, b"no headers");
    // A non-multipart body is one part.
    let sdp = mt("application/sdp");
    let p = body_parts(Some(&sdp), b"v=0\r\n", &limits()).expect("one");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].content_type.as_ref(), Some(&sdp));
    assert_eq!(body_parts(None, b"x", &limits()).expect("one").len(), 1);
}

// ---------------------------------------------------------------------------
// Framing.

fn drain(f: &mut StreamFramer) -> Result<Vec<Frame>, SipError> {
    let mut out = Vec::new();
    while let Some(frame) = f.next_frame()? {
        out.push(frame);
    }
    Ok(out)
}

fn three_messages() -> (Vec<u8>, Vec<Frame>) {
    let mut stream = Vec::new();
    let mut expected = Vec::new();
    for m in [ACME, ACME_200, CISCO] {
        stream.extend_from_slice(m);
        expected.push(Frame::Message(m.to_vec()));
    }
    (stream, expected)
}

#[test]
fn stream_three_messages_split_at_every_byte() {
    let (stream, expected) = three_messages();
    for split in 0..=stream.len() {
        let mut f = StreamFramer::new(limits());
        let mut got = Vec::new();
        f.push(&stream[..split]);
        got.extend(drain(&mut f).expect("first half"));
        f.push(&stream[split..]);
        got.extend(drain(&mut f).expect("second half"));
        assert_eq!(got, expected, "split at {split}");
    }
}

#[test]
fn stream_byte_by_byte_with_keepalives() {
    let mut stream = b"\r\n\r\n".to_vec();
    stream.extend_from_slice(ACME);
    stream.extend_from_slice(b"\r\n");
    stream.extend_from_slice(ACME_200);
    let mut f = StreamFramer::new(limits());
    let mut got = Vec::new();
    for b in &stream {
        f.push(std::slice::from_ref(b));
        got.extend(drain(&mut f).expect("frames"));
    }
    assert_eq!(
        got,
        vec![
            Frame::KeepAlive,
            Frame::Message(ACME.to_vec()),
            Frame::KeepAlive,
            Frame::Message(ACME_200.to_vec()),
        ]
    );
    // All in one read.
    let mut f = StreamFramer::new(limits());
    f.push(&stream);
    assert_eq!(drain(&mut f).expect("frames"), got);
}

#[test]
fn stream_missing_content_length_is_zero() {
    let mut f = StreamFramer::new(limits());
    f.push(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nOPTIONS sip:c@d SIP/2.0\r\n\r\n");
    let frames = drain(&mut f).expect("frames");
    assert_eq!(frames.len(), 2);
    assert_eq!(
        frames[0],
        Frame::Message(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n".to_vec())
    );
}

// ---------------------------------------------------------------------------
// Properties.

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,12}"
}

fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[!-~]([ -~]{0,40}[!-~])?",
        "[a-z]{1,8}(, [a-z]{1,8}){0,3}",
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Ack),
        Just(Method::Bye),
        Just(Method::Cancel),
        Just(Method::Options),
        Just(Method::Update),
        Just(Method::Info),
        Just(Method::Prack),
        Just(Method::Refer),
        Just(Method::Notify),
        Just(Method::Subscribe),
        Just(Method::Message),
        Just(Method::Register),
        token().prop_map(|s| Method::parse(&s)),
    ]
}

fn uri() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("sip"), Just("sips")],
        proptest::option::of("[a-z0-9+]{1,10}"),
        prop_oneof![
            "[a-z]{1,8}(\\.[a-z]{1,8}){0,2}",
            "(25[0-5]|1[0-9]{2}|[1-9]?[0-9])(\\.(25[0-5]|1[0-9]{2}|[1-9]?[0-9])){3}",
            Just("[2001:db8::1]".to_string()),
        ],
        proptest::option::of(1u16..),
        proptest::collection::vec(
            ("[a-z+.]{1,6}", proptest::option::of("[a-z0-9:/+$-]{1,6}")),
            0..3,
        ),
    )
        .prop_map(|(scheme, user, host, port, params)| {
            let mut s = format!("{scheme}:");
            if let Some(u) = user {
                s.push_str(&u);
                s.push('@');
            }
            s.push_str(&host);
            if let Some(p) = port {
                s.push_str(&format!(":{p}"));
            }
            for (n, v) in params {
                s.push(';');
                s.push_str(&n);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(&v);
                }
            }
            s
        })
}

prop_compose! {
    fn valid_request()(
        method in method(),
        uri in uri(),
        transport in prop_oneof![Just("UDP"), Just("TCP"), Just("TLS")],
        branch in "[a-zA-Z0-9]{1,20}",
        tag in "[a-z0-9]{1,10}",
        call_id in "[a-zA-Z0-9.@-]{1,30}",
        cseq in 0u32..0x7fff_ffff,
        extra in proptest::collection::vec(("X-[A-Za-z0-9-]{1,12}", header_value()), 0..8),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) -> Request {
        let mut headers = Headers::default();
        headers.push("Via", format!("SIP/2.0/{transport} 10.0.0.1:5060;branch=z9hG4bK{branch}"));
        headers.push("From", format!("<sip:a@example.com>;tag={tag}"));
        headers.push("To", "<sip:b@example.com>");
        headers.push("Call-ID", call_id);
        headers.push("CSeq", format!("{cseq} {method}"));
        for (n, v) in extra {
            headers.push(n, v);
        }
        Request { method, uri, headers, body }
    }
}

fn without_content_length(h: &Headers) -> Vec<(String, String)> {
    h.0.iter()
        .filter(|(n, _)| n != "Content-Length")
        .cloned()
        .collect()
}

fn chunked(data: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes
            .get(i % sizes.len().max(1))
            .copied()
            .unwrap_or(1)
            .clamp(1, rest.len());
        let (a, b) = rest.split_at(n);
        out.push(a.to_vec());
        rest = b;
        i += 1;
    }
    out
}

const CONTENT_TYPES: &[&str] = &[
    "multipart/mixed;boundary=XX",
    "multipart/mixed;boundary=\"unique-boundary-1\"",
    "multipart/related; boundary=b",
    "application/sdp",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600), ct in 0usize..4) {
        let l = Limits::default();
        let _ = frame_datagram(&data, &l);
        if let Ok(SipMessage::Request(r)) = parse_message(&data, &l) {
            let _ = (r.call_id(), r.from_tag(), r.to_tag(), r.cseq(), r.via_branch());
            let _ = (r.via_transport(), r.contact_uri(), r.from_uri(), r.record_route());
            let _ = (r.contact_has_feature("+sip.src"), r.session_expires(), r.to_bytes());
            let _ = Response::to_request(&r, 200, "OK", Some("t")).to_bytes();
        }
        let mt = MediaType::parse(CONTENT_TYPES[ct]);
        let _ = body_parts(mt.as_ref(), &data, &l);
        let mut f = StreamFramer::new(l);
        for chunk in data.chunks(7) {
            f.push(chunk);
            while let Ok(Some(_)) = f.next_frame() {}
        }
    }

    #[test]
    fn mutated_vendor_messages_never_panic(
        which in 0usize..5,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let base = [CISCO, ACME, AUDIOCODES, FREESWITCH, FOLDED][which];
        let mut data = base.to_vec();
        for (i, b) in edits {
            let i = i.index(data.len());
            data[i] = b;
        }
        data.truncate(cut.index(data.len() + 1));
        let l = Limits::default();
        if let Ok(Frame::Message(m)) = frame_datagram(&data, &l) {
            if let Ok(msg) = parse_message(&m, &l) {
                let _ = body_parts(msg.content_type().as_ref(), msg.body(), &l);
            }
        }
        let mut f = StreamFramer::new(l);
        f.push(&data);
        while let Ok(Some(_)) = f.next_frame() {}
    }

    #[test]
    fn valid_requests_round_trip(req in valid_request()) {
        let bytes = req.to_bytes();
        let parsed = match parse_message(&bytes, &Limits::default()) {
            Ok(SipMessage::Request(r)) => r,
            other => return Err(TestCaseError::fail(format!("{other:?} for {}", String::from_utf8_lossy(&bytes)))),
        };
        prop_assert_eq!(&parsed.method, &req.method);
        prop_assert_eq!(&parsed.uri, &req.uri);
        prop_assert_eq!(without_content_length(&parsed.headers), without_content_length(&req.headers));
        let len = req.body.len().to_string();
        prop_assert_eq!(parsed.headers.get("Content-Length"), Some(len.as_str()));
        prop_assert_eq!(&parsed.body, &req.body);
        // And once more through datagram framing.
        prop_assert_eq!(frame_datagram(&bytes, &Limits::default()), Ok(Frame::Message(bytes.clone())));
    }

    #[test]
    fn stream_yields_exactly_the_messages(
        reqs in proptest::collection::vec(valid_request(), 1..6),
        keepalives in proptest::collection::vec(any::<bool>(), 6),
        sizes in proptest::collection::vec(1usize..300, 1..10),
    ) {
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            if keepalives[i] {
                stream.extend_from_slice(b"\r\n\r\n");
                expected.push(Frame::KeepAlive);
            }
            let b = r.to_bytes();
            stream.extend_from_slice(&b);
            expected.push(Frame::Message(b));
        }
        let mut f = StreamFramer::new(Limits::default());
        let mut got = Vec::new();
        for chunk in chunked(&stream, &sizes) {
            f.push(&chunk);
            got.extend(drain(&mut f).map_err(|e| TestCaseError::fail(e.to_string()))?);
        }
        prop_assert_eq!(got.len(), expected.len());
        prop_assert_eq!(&got, &expected);
        for (frame, req) in got.iter().filter(|f| matches!(f, Frame::Message(_))).zip(&reqs) {
            let Frame::Message(bytes) = frame else { continue };
            match parse_message(bytes, &Limits::default()) {
                Ok(SipMessage::Request(r)) => {
                    prop_assert_eq!(&r.method, &req.method);
                    prop_assert_eq!(&r.body, &req.body);
                }
                other => return Err(TestCaseError::fail(format!("{other:?}"))),
            }
        }
    }
}
