//! The SIPREC UAS state machine driven with real messages and a fake clock:
//! transactions, retransmissions, dialogs, offer/answer, errors.

use earshot::ids::CallId;
use earshot::ports::PortPool;
use earshot::sdp::Direction;
use earshot::sip::{parse_message, Limits, SipMessage};
use earshot::uas::{EndReason, Peer, Transport, Uas, UasConfig, UasEvent, UasOutput};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const SRC: &str = "10.1.1.1:5060";

fn peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: SRC.parse().unwrap(),
    }
}

fn uas_with_ports(lo: u16, hi: u16) -> Uas {
    let cfg = UasConfig::new(
        "10.2.2.2:5060".parse::<SocketAddr>().unwrap(),
        "10.2.2.2".parse().unwrap(),
    );
    Uas::new(cfg, PortPool::new(lo, hi).unwrap())
}

fn uas() -> Uas {
    uas_with_ports(40000, 40099)
}

const SDP: &str = "v=0\r\no=SRC 1 1 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n\
m=audio 20000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=label:1\r\na=sendonly\r\n\
m=audio 20002 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=label:2\r\na=sendonly\r\n";

const METADATA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="s1"><sipSessionID>orig-call-123@pbx</sipSessionID></session>
  <participant participant_id="pA"><nameID aor="sip:alice@example.com"><name>Alice</name></nameID></participant>
  <participant participant_id="pB"><nameID aor="sip:bob@example.com"><name>Bob</name></nameID></participant>
  <stream stream_id="st2" session_id="s1"><label>2</label></stream>
  <stream stream_id="st1" session_id="s1"><label>1</label></stream>
  <participantstreamassoc participant_id="pA"><send>st2</send><recv>st1</recv></participantstreamassoc>
  <participantstreamassoc participant_id="pB"><send>st1</send><recv>st2</recv></participantstreamassoc>
</recording>"#;

fn multipart(sdp: &str, md: &str) -> (String, String) {
    let body = format!(
        "--XyZ\r\nContent-Type: application/sdp\r\n\r\n{sdp}--XyZ\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{md}\r\n--XyZ--\r\n"
    );
    ("multipart/mixed;boundary=XyZ".into(), body)
}

struct Msg {
    method: &'static str,
    call_id: String,
    branch: String,
    cseq: u32,
    to_tag: Option<String>,
    extra: Vec<String>,
    ctype: Option<String>,
    body: String,
}

impl Msg {
    fn new(method: &'static str, call_id: &str, branch: &str, cseq: u32) -> Self {
        Msg {
            method,
            call_id: call_id.into(),
            branch: branch.into(),
            cseq,
            to_tag: None,
            extra: vec![],
            ctype: None,
            body: String::new(),
        }
    }
    fn tag(mut self, t: &str) -> Self {
        self.to_tag = Some(t.into());
        self
    }
    fn header(mut self, h: &str) -> Self {
        self.extra.push(h.into());
        self
    }
    fn body(mut self, ctype: &str, body: &str) -> Self {
        self.ctype = Some(ctype.into());
        self.body = body.into();
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let to = match &self.to_tag {
            Some(t) => format!("<sip:srs@10.2.2.2>;tag={t}"),
            None => "<sip:srs@10.2.2.2>".into(),
        };
        let mut s = format!(
            "{} sip:srs@10.2.2.2:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1:5060;branch={}\r\nFrom: <sip:src@10.1.1.1>;tag=src1\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {} {}\r\nMax-Forwards: 70\r\nContact: <sip:src@10.1.1.1:5060>;+sip.src\r\n",
            self.method, self.branch, self.call_id, self.cseq, self.method
        );
        for h in &self.extra {
            s.push_str(h);
            s.push_str("\r\n");
        }
        if let Some(ct) = &self.ctype {
            s.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        s.push_str(&format!(
            "Content-Length: {}\r\n\r\n{}",
            self.body.len(),
            self.body
        ));
        s.into_bytes()
    }
}

fn invite(call_id: &str, branch: &str) -> Msg {
    let (ct, body) = multipart(SDP, METADATA);
    Msg::new("INVITE", call_id, branch, 1)
        .header("Require: siprec")
        .body(&ct, &body)
}

/// Everything the UAS produced, split into sent responses and events.
#[derive(Default, Debug)]
struct Out {
    sent: Vec<earshot::sip::Response>,
    requests: Vec<earshot::sip::Request>,
    events: Vec<UasEvent>,
}

fn drain(u: &mut Uas) -> Out {
    let mut o = Out::default();
    while let Some(x) = u.poll_output() {
        match x {
            UasOutput::Transmit { bytes, .. } => {
                match parse_message(&bytes, &Limits::default()).expect("we send parseable SIP") {
                    SipMessage::Response(r) => o.sent.push(r),
                    SipMessage::Request(r) => o.requests.push(r),
                }
            }
            UasOutput::Event(e) => o.events.push(e),
        }
    }
    o
}

fn statuses(o: &Out) -> Vec<u16> {
    o.sent.iter().map(|r| r.status).collect()
}

/// INVITE → accept → ACK; returns our To tag.
fn establish(u: &mut Uas, t0: Instant, call_id: &str) -> String {
    u.handle_message(
        t0,
        peer(),
        &invite(call_id, &format!("z9hG4bK-{call_id}")).bytes(),
    );
    let o = drain(u);
    assert_eq!(statuses(&o), vec![100]);
    assert!(u.accept(t0, &CallId::from(call_id)));
    let o = drain(u);
    assert_eq!(statuses(&o), vec![200]);
    let tag = o.sent[0].to_tag().unwrap().to_owned();
    let ack = Msg::new("ACK", call_id, &format!("z9hG4bK-ack-{call_id}"), 1).tag(&tag);
    u.handle_message(t0, peer(), &ack.bytes());
    drain(u);
    tag
}

#[test]
fn invite_is_answered_with_recvonly_sdp_and_labels() {
    let mut u = uas();
    let t0 = Instant::now();
    u.handle_message(t0, peer(), &invite("c1", "z9hG4bK-1").bytes());
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![100]);
    let offer = match &o.events[..] {
        [UasEvent::Offered(off)] => off.clone(),
        other => panic!("expected one Offered, got {other:?}"),
    };
    assert!(offer.siprec);
    assert_eq!(offer.streams.len(), 2);
    let md = offer.metadata.as_ref().unwrap();
    assert_eq!(md.participants.len(), 2);
    // Label 1 is sent by Bob, not by the first participant listed.
    assert_eq!(md.sender_of_label("1").unwrap().id, "pB");

    assert!(u.accept(t0, &CallId::from("c1")));
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![200]);
    let ok = &o.sent[0];
    let contact = ok.headers.get("Contact").unwrap();
    assert!(contact.contains("+sip.srs"), "{contact}");
    assert_eq!(
        ok.headers
            .get("Content-Type")
            .map(|c| c.to_ascii_lowercase()),
        Some("application/sdp".into())
    );
    let sdp = earshot::sdp::parse(std::str::from_utf8(&ok.body).unwrap()).unwrap();
    assert_eq!(sdp.media.len(), 2);
    for (i, label) in ["1", "2"].iter().enumerate() {
        assert_eq!(sdp.media[i].label().unwrap().as_str(), *label);
        assert_eq!(sdp.direction(i), Direction::RecvOnly);
        assert!(sdp.media[i].port >= 40000 && sdp.media[i].port.is_multiple_of(2));
    }
    assert_ne!(sdp.media[0].port, sdp.media[1].port);
    assert_eq!(u.ports_available().0, u.ports_available().1 - 2);
}

#[test]
fn retransmitted_invite_never_creates_a_second_call() {
    let mut u = uas();
    let t0 = Instant::now();
    let inv = invite("c2", "z9hG4bK-2").bytes();
    u.handle_message(t0, peer(), &inv);
    u.handle_message(t0, peer(), &inv);
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![100, 100]);
    assert_eq!(
        o.events
            .iter()
            .filter(|e| matches!(e, UasEvent::Offered(_)))
            .count(),
        1
    );
    u.accept(t0, &CallId::from("c2"));
    drain(&mut u);
    u.handle_message(t0 + Duration::from_millis(100), peer(), &inv);
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![200], "retransmission gets the 200 again");
    assert!(o.events.is_empty());
    assert_eq!(u.call_count(), 1);
}

#[test]
fn ok_is_retransmitted_until_ack_then_stops() {
    let mut u = uas();
    let t0 = Instant::now();
    u.handle_message(t0, peer(), &invite("c3", "z9hG4bK-3").bytes());
    u.accept(t0, &CallId::from("c3"));
    let o = drain(&mut u);
    let tag = o.sent.last().unwrap().to_tag().unwrap().to_owned();
    // T1 = 500 ms, then 1 s, 2 s.
    let mut t = t0;
    let mut resent = 0;
    for _ in 0..3 {
        t = u.poll_timeout().unwrap();
        u.handle_timeout(t);
        resent += statuses(&drain(&mut u))
            .iter()
            .filter(|s| **s == 200)
            .count();
    }
    assert_eq!(resent, 3);
    assert_eq!(t - t0, Duration::from_millis(500 + 1000 + 2000));
    let ack = Msg::new("ACK", "c3", "z9hG4bK-ack3", 1).tag(&tag);
    u.handle_message(t, peer(), &ack.bytes());
    let o = drain(&mut u);
    assert!(matches!(o.events[..], [UasEvent::Confirmed { .. }]));
    // Nothing more is sent for this dialog.
    let later = t + Duration::from_secs(40);
    u.handle_timeout(later);
    assert!(statuses(&drain(&mut u)).is_empty());
    assert_eq!(u.call_count(), 1);
}

#[test]
fn missing_ack_ends_the_call_as_no_ack_with_a_bye() {
    let mut u = uas();
    let t0 = Instant::now();
    u.handle_message(t0, peer(), &invite("c4", "z9hG4bK-4").bytes());
    u.accept(t0, &CallId::from("c4"));
    drain(&mut u);
    u.handle_timeout(t0 + Duration::from_secs(33));
    let o = drain(&mut u);
    assert!(o.events.iter().any(|e| matches!(
        e,
        UasEvent::Ended {
            reason: EndReason::NoAck,
            ..
        }
    )));
    assert_eq!(o.requests.len(), 1);
    assert_eq!(o.requests[0].method.as_str(), "BYE");
    ports_wait_for_the_runtime(&mut u);
}

/// An ended call's ports are held until the runtime says its sockets are
/// closed, then all are free again.
fn ports_wait_for_the_runtime(u: &mut Uas) {
    let (free, total) = u.ports_available();
    assert!(u.ports_held() > 0, "ports held for the runtime");
    assert_eq!(free + u.ports_held(), total);
    let held_ids: Vec<CallId> = (0..100)
        .map(|i| CallId::new(format!("c{i}")))
        .filter(|id| u.media_released(id) > 0)
        .collect();
    assert!(!held_ids.is_empty());
    assert_eq!(u.ports_held(), 0);
    assert_eq!(u.ports_available().0, total);
}

#[test]
fn bye_waits_for_persistence_and_retransmissions_are_absorbed() {
    let mut u = uas();
    let t0 = Instant::now();
    let tag = establish(&mut u, t0, "c5");
    let bye = Msg::new("BYE", "c5", "z9hG4bK-bye5", 2).tag(&tag).bytes();
    u.handle_message(t0, peer(), &bye);
    let o = drain(&mut u);
    assert!(o.sent.is_empty(), "no 200 before the session is persisted");
    assert!(matches!(o.events[..], [UasEvent::EndRequested { .. }]));
    u.handle_message(t0, peer(), &bye);
    assert!(drain(&mut u).sent.is_empty());
    assert!(u.confirm_end(t0, &CallId::from("c5")));
    assert_eq!(statuses(&drain(&mut u)), vec![200]);
    u.handle_message(t0 + Duration::from_millis(500), peer(), &bye);
    assert_eq!(
        statuses(&drain(&mut u)),
        vec![200],
        "answered from the transaction"
    );
    assert_eq!(u.call_count(), 0);
    ports_wait_for_the_runtime(&mut u);
}

#[test]
fn unconfirmed_bye_is_answered_after_a_timeout() {
    let mut u = uas();
    let t0 = Instant::now();
    let tag = establish(&mut u, t0, "c5b");
    let bye = Msg::new("BYE", "c5b", "z9hG4bK-bye5b", 2).tag(&tag).bytes();
    u.handle_message(t0, peer(), &bye);
    drain(&mut u);
    u.handle_timeout(t0 + Duration::from_secs(9));
    assert_eq!(statuses(&drain(&mut u)), vec![200]);
}

#[test]
fn cancel_before_answer_gives_487_and_no_call() {
    let mut u = uas();
    let t0 = Instant::now();
    u.handle_message(t0, peer(), &invite("c6", "z9hG4bK-6").bytes());
    drain(&mut u);
    let cancel = Msg::new("CANCEL", "c6", "z9hG4bK-6", 1);
    u.handle_message(t0, peer(), &cancel.bytes());
    let o = drain(&mut u);
    let got: Vec<(u16, String)> = o
        .sent
        .iter()
        .map(|r| (r.status, r.cseq().unwrap().1.as_str().to_owned()))
        .collect();
    assert_eq!(
        got,
        vec![(200, "CANCEL".to_owned()), (487, "INVITE".to_owned())]
    );
    assert!(matches!(
        o.events[..],
        [UasEvent::Ended {
            reason: EndReason::Cancelled,
            ..
        }]
    ));
    assert!(!u.accept(t0, &CallId::from("c6")), "too late to answer");
    assert_eq!(u.call_count(), 0);
    // 487 is retransmitted until the ACK, then not any more.
    u.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(statuses(&drain(&mut u)), vec![487]);
    let tag = o.sent[1].to_tag().unwrap().to_owned();
    let ack = Msg::new("ACK", "c6", "z9hG4bK-6", 1).tag(&tag);
    u.handle_message(t0 + Duration::from_millis(600), peer(), &ack.bytes());
    u.handle_timeout(t0 + Duration::from_secs(5));
    assert!(statuses(&drain(&mut u)).is_empty());
    ports_wait_for_the_runtime(&mut u);
}

#[test]
fn options_advertises_siprec() {
    let mut u = uas();
    u.handle_message(
        Instant::now(),
        peer(),
        &Msg::new("OPTIONS", "o1", "z9hG4bK-o1", 1).bytes(),
    );
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![200]);
    let r = &o.sent[0];
    assert!(r.headers.tokens("Supported").contains(&"siprec".to_owned()));
    assert!(r.headers.tokens("Allow").contains(&"invite".to_owned()));
}

#[test]
fn requests_for_unknown_dialogs_get_481() {
    let mut u = uas();
    let t0 = Instant::now();
    for m in ["BYE", "UPDATE", "INFO"] {
        u.handle_message(
            t0,
            peer(),
            &Msg::new(m, "nope", &format!("z9hG4bK-{m}"), 5)
                .tag("x")
                .bytes(),
        );
    }
    let reinvite = invite("nope", "z9hG4bK-re").tag("x");
    u.handle_message(t0, peer(), &reinvite.bytes());
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![481, 481, 481, 481]);
    u.handle_message(
        t0,
        peer(),
        &Msg::new("CANCEL", "nope", "z9hG4bK-zz", 1).bytes(),
    );
    assert_eq!(statuses(&drain(&mut u)), vec![481]);
    assert_eq!(u.call_count(), 0);
}

#[test]
fn malformed_requests_get_400_with_a_reason_and_leave_no_state() {
    let mut u = uas();
    let t0 = Instant::now();
    let bad = b"INVITE sip:srs@10.2.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK-bad\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: bad1\r\nCSeq: 1 INVITE\r\nContent-Length: abc\r\n\r\n";
    u.handle_message(t0, peer(), bad);
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![400]);
    assert!(
        o.sent[0].reason.to_lowercase().contains("content-length"),
        "{}",
        o.sent[0].reason
    );
    // Bad metadata XML.
    let (ct, body) = multipart(SDP, "<recording><participant></recording>");
    let m = Msg::new("INVITE", "bad2", "z9hG4bK-bad2", 1).body(&ct, &body);
    u.handle_message(t0, peer(), &m.bytes());
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![100, 400]);
    assert!(o.events.is_empty());
    // A DOCTYPE (entity expansion attempt) is refused.
    let evil = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaa\">]><recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">&a;</recording>";
    let (ct, body) = multipart(SDP, evil);
    let m = Msg::new("INVITE", "bad3", "z9hG4bK-bad3", 1).body(&ct, &body);
    u.handle_message(t0, peer(), &m.bytes());
    assert_eq!(statuses(&drain(&mut u)), vec![100, 400]);
    // Garbage: nothing to answer, nothing kept.
    u.handle_message(t0, peer(), b"\x00\x01garbage");
    assert!(statuses(&drain(&mut u)).is_empty());
    assert_eq!(u.call_count(), 0);
    assert_eq!(u.ports_available().0, u.ports_available().1);
}

#[test]
fn unusable_bodies_get_415_and_488_and_unknown_extensions_420() {
    let mut u = uas();
    let t0 = Instant::now();
    let m = Msg::new("INVITE", "b1", "z9hG4bK-b1", 1).body("text/plain", "hello");
    u.handle_message(t0, peer(), &m.bytes());
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![100, 415]);
    assert!(o.sent[1].headers.get("Accept").is_some());

    let g729 = "v=0\r\no=- 1 1 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let m = Msg::new("INVITE", "b2", "z9hG4bK-b2", 1).body("application/sdp", g729);
    u.handle_message(t0, peer(), &m.bytes());
    assert_eq!(statuses(&drain(&mut u)), vec![100, 488]);

    let m = invite("b3", "z9hG4bK-b3").header("Require: 100rel");
    u.handle_message(t0, peer(), &m.bytes());
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![100, 420]);
    assert_eq!(o.sent[1].headers.get("Unsupported"), Some("100rel"));
    assert_eq!(u.call_count(), 0);
    assert_eq!(u.ports_available().0, u.ports_available().1);
}

#[test]
fn out_of_ports_is_503_with_retry_after() {
    // Room for exactly one two-stream call.
    let mut u = uas_with_ports(40000, 40003);
    let t0 = Instant::now();
    u.handle_message(t0, peer(), &invite("p1", "z9hG4bK-p1").bytes());
    assert!(drain(&mut u).events.len() == 1);
    u.handle_message(t0, peer(), &invite("p2", "z9hG4bK-p2").bytes());
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![100, 503]);
    assert!(o.sent[1].headers.get("Retry-After").is_some());
    assert_eq!(u.call_count(), 1);
}

#[test]
fn reinvite_inactive_pauses_and_a_later_one_resumes() {
    let mut u = uas();
    let t0 = Instant::now();
    let tag = establish(&mut u, t0, "r1");
    let held = SDP.replace("a=sendonly", "a=inactive");
    let m = Msg::new("INVITE", "r1", "z9hG4bK-r1-2", 2)
        .tag(&tag)
        .body("application/sdp", &held);
    u.handle_message(t0, peer(), &m.bytes());
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![200]);
    let sdp = earshot::sdp::parse(std::str::from_utf8(&o.sent[0].body).unwrap()).unwrap();
    assert_eq!(sdp.direction(0), Direction::Inactive);
    let streams = match &o.events[..] {
        [UasEvent::Updated {
            streams: Some(streams),
            method,
            ..
        }] => {
            assert_eq!(method.as_str(), "INVITE");
            streams.clone()
        }
        other => panic!("{other:?}"),
    };
    assert!(streams.iter().all(|s| s.paused));
    let ack = Msg::new("ACK", "r1", "z9hG4bK-r1-ack2", 2).tag(&tag);
    u.handle_message(t0, peer(), &ack.bytes());
    drain(&mut u);
    // c=0.0.0.0 also holds; then resume.
    let m = Msg::new("INVITE", "r1", "z9hG4bK-r1-3", 3)
        .tag(&tag)
        .body("application/sdp", SDP);
    u.handle_message(t0, peer(), &m.bytes());
    let o = drain(&mut u);
    let streams = match &o.events[..] {
        [UasEvent::Updated {
            streams: Some(streams),
            method,
            ..
        }] => {
            assert_eq!(method.as_str(), "INVITE");
            streams.clone()
        }
        other => panic!("{other:?}"),
    };
    assert!(streams.iter().all(|s| !s.paused));
    // Same ports as before: the SRC keeps sending where it was.
    let sdp = earshot::sdp::parse(std::str::from_utf8(&o.sent[0].body).unwrap()).unwrap();
    assert_eq!(sdp.direction(0), Direction::RecvOnly);
    assert!(sdp.session_version > 1);
}

#[test]
fn update_with_partial_metadata_merges_participants() {
    let mut u = uas();
    let t0 = Instant::now();
    let tag = establish(&mut u, t0, "m1");
    let partial = r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>partial</datamode>
      <participant participant_id="pC"><nameID aor="sip:carol@example.com"><name>Carol</name></nameID></participant>
    </recording>"#;
    let m = Msg::new("UPDATE", "m1", "z9hG4bK-m1-u", 2)
        .tag(&tag)
        .body("application/rs-metadata+xml", partial);
    u.handle_message(t0, peer(), &m.bytes());
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![200]);
    let md = match &o.events[..] {
        [UasEvent::Updated {
            metadata: Some(metadata),
            streams: None,
            method,
            ..
        }] => {
            assert_eq!(method.as_str(), "UPDATE");
            metadata.clone()
        }
        other => panic!("{other:?}"),
    };
    let ids: Vec<&str> = md.participants.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert!(ids.contains(&"pC") && ids.contains(&"pA"));
}

#[test]
fn ending_a_call_from_our_side_sends_a_well_formed_bye() {
    let mut u = uas();
    let t0 = Instant::now();
    let tag = establish(&mut u, t0, "e1");
    assert!(u.end_call(t0, &CallId::from("e1"), "manual"));
    let o = drain(&mut u);
    assert_eq!(o.requests.len(), 1);
    let bye = &o.requests[0];
    assert_eq!(bye.method.as_str(), "BYE");
    assert_eq!(bye.uri, "sip:src@10.1.1.1:5060");
    assert_eq!(bye.from_tag(), Some(tag.as_str()));
    assert_eq!(bye.to_tag(), Some("src1"));
    assert_eq!(bye.call_id(), Some("e1"));
    assert!(matches!(
        &o.events[..],
        [UasEvent::Ended { reason: EndReason::Local(r), .. }] if r == "manual"
    ));
    // Retransmitted until answered.
    u.handle_timeout(t0 + Duration::from_millis(500));
    assert_eq!(drain(&mut u).requests.len(), 1);
    let ok = format!(
        "SIP/2.0 200 OK\r\n{}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: e1\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        format_args!("Via: {}", bye.headers.get("Via").unwrap()),
        bye.headers.get("From").unwrap(),
        bye.headers.get("To").unwrap(),
        bye.headers.get("CSeq").unwrap()
    );
    u.handle_message(t0 + Duration::from_millis(600), peer(), ok.as_bytes());
    assert_eq!(u.call_count(), 0);
    u.handle_timeout(t0 + Duration::from_secs(5));
    assert!(drain(&mut u).requests.is_empty());
}

#[test]
fn session_timer_expiry_ends_the_call() {
    let mut u = uas();
    let t0 = Instant::now();
    let m = invite("s1", "z9hG4bK-s1")
        .header("Session-Expires: 90;refresher=uac")
        .header("Supported: timer");
    u.handle_message(t0, peer(), &m.bytes());
    u.accept(t0, &CallId::from("s1"));
    let o = drain(&mut u);
    let ok = o.sent.last().unwrap();
    assert!(ok.headers.get("Session-Expires").unwrap().starts_with("90"));
    let tag = ok.to_tag().unwrap().to_owned();
    u.handle_message(
        t0,
        peer(),
        &Msg::new("ACK", "s1", "z9hG4bK-s1a", 1).tag(&tag).bytes(),
    );
    drain(&mut u);
    // A refresh at 60 s keeps it alive past 90 s.
    let t60 = t0 + Duration::from_secs(60);
    u.handle_message(
        t60,
        peer(),
        &Msg::new("UPDATE", "s1", "z9hG4bK-s1u", 2)
            .tag(&tag)
            .header("Session-Expires: 90")
            .bytes(),
    );
    assert_eq!(statuses(&drain(&mut u)), vec![200]);
    u.handle_timeout(t0 + Duration::from_secs(100));
    assert!(drain(&mut u).events.is_empty());
    u.handle_timeout(t60 + Duration::from_secs(91));
    let o = drain(&mut u);
    assert!(o.events.iter().any(|e| matches!(
        e,
        UasEvent::Ended {
            reason: EndReason::SessionExpired,
            ..
        }
    )));
    // Too small an interval is refused.
    let m = invite("s2", "z9hG4bK-s2").header("Session-Expires: 30");
    u.handle_message(t0, peer(), &m.bytes());
    let o = drain(&mut u);
    assert_eq!(statuses(&o), vec![100, 422]);
    assert_eq!(o.sent[1].headers.get("Min-SE"), Some("90"));
}

#[test]
fn invite_without_metadata_is_still_recorded() {
    let mut u = uas();
    let m = Msg::new("INVITE", "n1", "z9hG4bK-n1", 1).body("application/sdp", SDP);
    u.handle_message(Instant::now(), peer(), &m.bytes());
    let o = drain(&mut u);
    match &o.events[..] {
        [UasEvent::Offered(off)] => assert!(off.metadata.is_none()),
        other => panic!("{other:?}"),
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Whatever arrives, in whatever order, the UAS neither panics nor
        /// leaks ports once every call is over.
        #[test]
        fn random_message_sequences_never_panic(ops in proptest::collection::vec((0u8..9, 0u8..3, any::<u16>()), 1..30)) {
            let mut u = uas_with_ports(40000, 40009);
            let t0 = Instant::now();
            let mut t = t0;
            let mut tags: std::collections::HashMap<u8, String> = Default::default();
            for (op, call, noise) in ops {
                t += Duration::from_millis(noise as u64 % 3000);
                let cid = format!("p{call}");
                let tag = tags.get(&call).cloned().unwrap_or_else(|| "none".into());
                let bytes = match op {
                    0 => invite(&cid, &format!("z9hG4bK-{cid}")).bytes(),
                    1 => Msg::new("ACK", &cid, "z9hG4bK-a", 1).tag(&tag).bytes(),
                    2 => Msg::new("BYE", &cid, &format!("z9hG4bK-b{noise}"), 2).tag(&tag).bytes(),
                    3 => Msg::new("CANCEL", &cid, &format!("z9hG4bK-{cid}"), 1).bytes(),
                    4 => Msg::new("INVITE", &cid, &format!("z9hG4bK-r{noise}"), 2 + noise as u32).tag(&tag).body("application/sdp", &SDP.replace("sendonly", "inactive")).bytes(),
                    5 => { u.accept(t, &CallId::new(cid.clone())); vec![] }
                    6 => { u.confirm_end(t, &CallId::new(cid.clone())); vec![] }
                    7 => { u.end_call(t, &CallId::new(cid.clone()), "x"); vec![] }
                    _ => { let mut b = invite(&cid, "z9hG4bK-x").bytes(); let n = noise as usize % b.len(); b.truncate(n); b }
                };
                if !bytes.is_empty() {
                    u.handle_message(t, peer(), &bytes);
                }
                u.handle_timeout(t);
                while let Some(out) = u.poll_output() {
                    if let UasOutput::Transmit { bytes, .. } = out {
                        if let Ok(SipMessage::Response(r)) = parse_message(&bytes, &Limits::default()) {
                            if r.status == 200 && r.cseq().map(|c| c.1.as_str() == "INVITE").unwrap_or(false) {
                                if let Some(tg) = r.to_tag() { tags.insert(call, tg.to_owned()); }
                            }
                        }
                    }
                }
            }
            for id in u.call_ids() {
                u.end_call(t, &id, "cleanup");
                u.confirm_end(t, &id);
            }
            u.handle_timeout(t + Duration::from_secs(120));
            while u.poll_output().is_some() {}
            prop_assert_eq!(u.call_count(), 0);
            let (free, total) = u.ports_available();
            prop_assert_eq!(free + u.ports_held(), total);
            // A runtime that never says the media closed: the hold limit
            // frees them.
            u.handle_timeout(t + Duration::from_secs(120) + u.config().port_hold_max);
            prop_assert_eq!(u.ports_held(), 0);
            prop_assert_eq!(u.ports_available().0, total);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut u = uas();
            u.handle_message(Instant::now(), peer(), &b);
            while u.poll_output().is_some() {}
        }
    }
}
