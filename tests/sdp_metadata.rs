//! SDP offer/answer and RFC 7865 metadata: edge cases, dialects, limits and
//! "never panics" properties.

use earshot::ids::Label;
use earshot::metadata::{
    self, normalize_aor, DataMode, Dialect, MdParticipant, MdStream, MetadataError, MetadataLimits,
    OriginalCallId, RecordingMetadata,
};
use earshot::sdp::{self, AnswerConfig, Codec, Direction, SdpError};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

// ------------------------------------------------------------------ helpers

fn cfg() -> AnswerConfig {
    AnswerConfig {
        media_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
        session_id: 4242,
        session_version: 7,
        preference: vec![Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus],
    }
}

const TWO_STREAMS: &str = "v=0\r\n\
o=SRC 1 2 IN IP4 198.51.100.1\r\n\
s=-\r\n\
c=IN IP4 198.51.100.1\r\n\
t=0 0\r\n\
m=audio 10000 RTP/AVP 0 8 101\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n\
a=label:caller\r\n\
a=sendonly\r\n\
m=audio 10002 RTP/AVP 8\r\n\
a=label:callee\r\n\
a=sendonly\r\n";

fn parse_md(xml: &str) -> RecordingMetadata {
    metadata::parse(xml.as_bytes(), &MetadataLimits::default())
        .unwrap_or_else(|e| panic!("{e}: {xml}"))
}

fn attr<'a>(m: &'a sdp::MediaDescription, name: &str) -> Option<&'a str> {
    m.attributes
        .iter()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.as_deref())
}

// ------------------------------------------------------------------ SDP parse

#[test]
fn sdp_lf_and_crlf_parse_the_same() {
    let crlf = sdp::parse(TWO_STREAMS).unwrap();
    let lf = sdp::parse(&TWO_STREAMS.replace("\r\n", "\n")).unwrap();
    assert_eq!(crlf, lf);
    assert_eq!(crlf.media.len(), 2);
    assert_eq!(crlf.origin_username, "SRC");
    assert_eq!(crlf.session_id, "1");
    assert_eq!(crlf.session_version, 2);
    assert_eq!(crlf.media[0].formats, vec!["0", "8", "101"]);
    assert_eq!(crlf.media[0].label(), Some(Label::new("caller")));
}

#[test]
fn sdp_tolerates_whitespace_and_unknown_lines() {
    let text = "\n\n  v=0  \n\
        o=- 5 x IN IP4 198.51.100.1\n\
        garbage without equals\n\
        zz=ignored\n\
        x=unknown\n\
        b=AS:64\n\
        c = IN IP4  198.51.100.1 \n\
        t=0 0\n\
        \tm=audio   4000  RTP/AVP  0\n\
        a= label: 7 \n\
        a=sendonly\n\
        \n\n";
    let sd = sdp::parse(text).unwrap();
    assert_eq!(sd.session_version, 0, "non-numeric version tolerated");
    assert_eq!(
        sd.connection.as_ref().map(|c| c.addr),
        Some("198.51.100.1".parse().unwrap())
    );
    assert_eq!(sd.media[0].port, 4000);
    assert_eq!(sd.media[0].label(), Some(Label::new("7")));
    assert_eq!(sd.direction(0), Direction::SendOnly);
}

#[test]
fn sdp_errors() {
    assert!(matches!(
        sdp::parse("o=- 1 1 IN IP4 1.2.3.4\nm=audio 1 RTP/AVP 0\n"),
        Err(SdpError::Malformed { .. })
    ));
    assert_eq!(sdp::parse("v=0\ns=-\n"), Err(SdpError::NoMedia));
    assert_eq!(
        sdp::parse(""),
        Err(SdpError::Malformed {
            line: 1,
            reason: "no v= line".into()
        })
    );
    assert!(matches!(
        sdp::parse("v=0\nm=audio 70000 RTP/AVP 0\n"),
        Err(SdpError::Malformed { .. })
    ));
    assert!(matches!(
        sdp::parse("v=0\nm=audio\n"),
        Err(SdpError::Malformed { .. })
    ));
    assert!(matches!(
        sdp::parse("v=0\nm=audio 1000\n"),
        Err(SdpError::Malformed { .. })
    ));
    let huge = format!("v=0\nm=audio 1 RTP/AVP 0\n{}", "a=x\n".repeat(20_000));
    assert_eq!(sdp::parse(&huge), Err(SdpError::TooLarge));
    let many = format!("v=0\nm=audio 1 RTP/AVP 0\n{}", "a=x\n".repeat(1000));
    assert_eq!(sdp::parse(&many), Err(SdpError::TooLarge));
    let ok = format!("v=0\nm=audio 1 RTP/AVP 0\n{}", "a=x\n".repeat(990));
    assert!(sdp::parse(&ok).is_ok());
}

#[test]
fn sdp_connection_forms() {
    let sd = sdp::parse(
        "v=0\nc=IN IP4 233.252.0.1/127\nm=audio 5000/2 RTP/AVP 0\n\
         m=audio 5004 RTP/AVP 0\nc=IN IP6 2001:db8::7\n\
         m=audio 5006 RTP/AVP 0\nc=IN IP4 media.example.com\n",
    )
    .unwrap();
    assert_eq!(sd.media[0].port, 5000);
    assert_eq!(sd.connection_addr(0), Some("233.252.0.1".parse().unwrap()));
    assert_eq!(sd.connection_addr(1), Some("2001:db8::7".parse().unwrap()));
    // An FQDN is not usable: falls back to nothing at media level, session addr stays.
    assert_eq!(sd.media[2].connection, None);
    assert_eq!(sd.connection_addr(2), Some("233.252.0.1".parse().unwrap()));
    assert_eq!(sd.connection_addr(9), None);
}

#[test]
fn sdp_rtpmaps_and_direction_fallback() {
    let sd = sdp::parse(
        "v=0\na=inactive\nm=audio 1 RTP/AVP 96 97\na=rtpmap:96 OPUS/48000/2\n\
         a=rtpmap:97 telephone-event/48000\na=rtpmap:bad\na=rtpmap:98 x/notanumber\n\
         m=audio 2 RTP/AVP 0\na=sendonly\n",
    )
    .unwrap();
    let maps = sd.media[0].rtpmaps();
    assert_eq!(maps.len(), 2);
    assert_eq!(maps[0].encoding, "OPUS");
    assert_eq!(maps[0].clock_rate, 48000);
    assert_eq!(maps[0].channels, Some(2));
    assert_eq!(
        sd.direction(0),
        Direction::Inactive,
        "session level applies"
    );
    assert_eq!(sd.direction(1), Direction::SendOnly, "media level wins");
    assert_eq!(
        sd.direction(5),
        Direction::Inactive,
        "out of range: session level"
    );
}

#[test]
fn hold_detection() {
    let sd = sdp::parse(
        "v=0\nc=IN IP4 198.51.100.1\n\
         m=audio 1000 RTP/AVP 0\na=sendonly\n\
         m=audio 1002 RTP/AVP 0\na=inactive\n\
         m=audio 1004 RTP/AVP 0\nc=IN IP4 0.0.0.0\n\
         m=audio 0 RTP/AVP 0\n\
         m=audio 1008 RTP/AVP 0\nc=IN IP6 ::\n\
         m=audio 1010 RTP/AVP 0\na=sendrecv\n",
    )
    .unwrap();
    let held: Vec<bool> = (0..6).map(|i| sd.is_held(i)).collect();
    assert_eq!(held, vec![false, true, true, true, true, false]);
    assert!(!sd.is_held(99));
}

// ------------------------------------------------------------------ answer

#[test]
fn answer_shape() {
    let offer = sdp::parse(TWO_STREAMS).unwrap();
    let (text, res) = sdp::answer(&offer, &[20000, 20002], &cfg()).unwrap();
    assert!(text.starts_with(
        "v=0\r\no=- 4242 7 IN IP4 203.0.113.9\r\ns=Earshot\r\nc=IN IP4 203.0.113.9\r\nt=0 0\r\n"
    ));
    assert!(!text.replace("\r\n", "").contains('\n'), "CRLF only");
    assert!(text.ends_with("\r\n"));
    let ans = sdp::parse(&text).unwrap();
    assert_eq!(ans.media.len(), 2);
    let m0 = &ans.media[0];
    assert_eq!(m0.port, 20000);
    assert_eq!(m0.formats, vec!["0", "101"]);
    assert_eq!(attr(m0, "label"), Some("caller"));
    assert_eq!(attr(m0, "rtcp"), Some("20001"));
    assert_eq!(attr(m0, "ptime"), Some("20"));
    assert_eq!(attr(m0, "fmtp"), Some("101 0-15"));
    assert_eq!(ans.direction(0), Direction::RecvOnly);
    let m1 = &ans.media[1];
    assert_eq!(m1.formats, vec!["8"]);
    assert_eq!(attr(m1, "label"), Some("callee"));
    assert_eq!(attr(m1, "ptime"), None);
    assert_eq!(res[0].codec, Some(Codec::Pcmu));
    assert_eq!(res[0].payload_type, Some(0));
    assert_eq!(res[0].dtmf_payload_type, Some(101));
    assert_eq!(res[1].codec, Some(Codec::Pcma));
    assert_eq!(res[1].dtmf_payload_type, None);
    assert_eq!(res[0].remote, Some("198.51.100.1:10000".parse().unwrap()));
    assert_eq!(res[1].remote, Some("198.51.100.1:10002".parse().unwrap()));
    assert!(res
        .iter()
        .all(|r| !r.paused && r.direction == Direction::RecvOnly));
    assert_eq!(res[1].index, 1);
}

/// Found by the `sdp` fuzz target's answer check: a payload type mapped to
/// both an audio codec and telephone-event was answered twice
/// (`m=audio 20000 RTP/AVP 0 0`).
#[test]
fn answer_never_repeats_a_payload_type_for_dtmf() {
    let offer = sdp::parse(
        "v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:0 telephone-event/8000\r\n",
    )
    .unwrap();
    let (text, res) = sdp::answer(&offer, &[20000], &cfg()).unwrap();
    assert_eq!(res[0].codec, Some(Codec::Pcmu));
    assert_eq!(res[0].dtmf_payload_type, None);
    let ans = sdp::parse(&text).unwrap();
    assert_eq!(ans.media[0].formats, vec!["0"], "{text}");
}

/// Found by the `sdp` fuzz target: an m= line whose proto and format were
/// NUL characters was accepted, rejected in the answer with those tokens
/// echoed (`m=audio 0 \0\0 \0`), and that line no longer parsed (NULs at
/// a line's edges are trimmed). NUL now separates m= fields.
#[test]
fn nul_separates_m_line_fields() {
    assert!(matches!(
        sdp::parse("v=0\r\nm=audio 6000 \0\0 \0\r\nm=audio 6002 RTP/AVP 8\r\n"),
        Err(SdpError::Malformed { .. })
    ));
    let offer = sdp::parse("v=0\r\nm=audio 6000 RTP/AVP\0\0 0\r\n").unwrap();
    assert_eq!(offer.media[0].proto, "RTP/AVP");
    assert_eq!(offer.media[0].formats, vec!["0"]);
}

#[test]
fn answer_ipv6_session_lines() {
    let offer = sdp::parse(TWO_STREAMS).unwrap();
    let mut c = cfg();
    c.media_ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 5));
    let (text, _) = sdp::answer(&offer, &[20000, 20002], &c).unwrap();
    assert!(text.contains("o=- 4242 7 IN IP6 2001:db8::5\r\n"));
    assert!(text.contains("c=IN IP6 2001:db8::5\r\n"));
}

#[test]
fn answer_rejects_video_and_uncommon_codecs_in_place() {
    let offer = sdp::parse(
        "v=0\nc=IN IP4 198.51.100.1\n\
         m=video 7000 RTP/AVP 96\na=rtpmap:96 H264/90000\na=label:v\n\
         m=audio 7002 RTP/AVP 18\na=rtpmap:18 G729/8000\na=label:g729\n\
         m=audio 7004 RTP/SAVP 0\na=label:srtp\n\
         m=audio 7006 RTP/AVP 8\na=label:ok\n",
    )
    .unwrap();
    let (text, res) = sdp::answer(&offer, &[30000, 30002, 30004, 30006], &cfg()).unwrap();
    let ans = sdp::parse(&text).unwrap();
    assert_eq!(ans.media.len(), 4);
    assert_eq!(
        ans.media.iter().map(|m| m.port).collect::<Vec<_>>(),
        vec![0, 0, 0, 30006]
    );
    assert_eq!(ans.media[0].media, "video");
    assert!(
        !ans.media[0].formats.is_empty(),
        "rejected lines keep a format"
    );
    assert_eq!(res[0].codec, None);
    assert_eq!(res[1].port, 0);
    assert_eq!(res[3].codec, Some(Codec::Pcma));
    assert_eq!(res[3].label, Some(Label::new("ok")));
}

#[test]
fn answer_no_common_codec() {
    let offer = sdp::parse("v=0\nm=audio 7002 RTP/AVP 18\na=rtpmap:18 G729/8000\n").unwrap();
    assert_eq!(
        sdp::answer(&offer, &[30000], &cfg()).unwrap_err(),
        SdpError::NoCommonCodec
    );
    // A port 0 from the caller rejects the line too.
    let offer = sdp::parse("v=0\nm=audio 7002 RTP/AVP 0\n").unwrap();
    assert_eq!(
        sdp::answer(&offer, &[0], &cfg()).unwrap_err(),
        SdpError::NoCommonCodec
    );
    // Missing ports entries count as 0.
    assert_eq!(
        sdp::answer(&offer, &[], &cfg()).unwrap_err(),
        SdpError::NoCommonCodec
    );
}

#[test]
fn answer_codec_selection() {
    // Dynamic PTs by rtpmap, names case-insensitive; static PTs without rtpmap.
    let offer = sdp::parse(
        "v=0\nc=IN IP4 198.51.100.1\n\
         m=audio 1000 RTP/AVP 111 9 0 110 101\n\
         a=rtpmap:111 OPUS/48000/2\na=rtpmap:110 Telephone-Event/48000\n\
         a=rtpmap:101 telephone-event/8000\n",
    )
    .unwrap();
    let mut c = cfg();
    c.preference = vec![Codec::Opus, Codec::Pcmu];
    let (text, res) = sdp::answer(&offer, &[2000], &c).unwrap();
    assert_eq!(res[0].codec, Some(Codec::Opus));
    assert_eq!(res[0].payload_type, Some(111));
    assert_eq!(res[0].dtmf_payload_type, Some(110), "clock-matched DTMF");
    assert!(text.contains("a=rtpmap:111 opus/48000/2\r\n"));
    c.preference = vec![Codec::G722, Codec::Opus];
    let (text, res) = sdp::answer(&offer, &[2000], &c).unwrap();
    assert_eq!(res[0].codec, Some(Codec::G722));
    assert_eq!(res[0].dtmf_payload_type, Some(101));
    assert!(text.contains("a=rtpmap:9 G722/8000\r\n"));
    // An empty preference takes the first decodable codec in offer order.
    c.preference = vec![];
    let (_, res) = sdp::answer(&offer, &[2000], &c).unwrap();
    assert_eq!(res[0].codec, Some(Codec::Opus));
    // An rtpmap that re-maps a static number wins over the static meaning.
    let offer = sdp::parse("v=0\nm=audio 1000 RTP/AVP 0 8\na=rtpmap:0 G729/8000\n").unwrap();
    let (_, res) = sdp::answer(&offer, &[2000], &cfg()).unwrap();
    assert_eq!(
        (res[0].codec, res[0].payload_type),
        (Some(Codec::Pcma), Some(8))
    );
    // Lower-case pcmu via rtpmap on a dynamic number.
    let offer = sdp::parse("v=0\nm=audio 1000 RTP/AVP 100\na=rtpmap:100 pcmu/8000\n").unwrap();
    let (_, res) = sdp::answer(&offer, &[2000], &cfg()).unwrap();
    assert_eq!(
        (res[0].codec, res[0].payload_type),
        (Some(Codec::Pcmu), Some(100))
    );
}

#[test]
fn answer_on_hold_and_inactive() {
    let offer = sdp::parse(
        "v=0\nc=IN IP4 198.51.100.1\n\
         m=audio 1000 RTP/AVP 0\na=label:1\na=inactive\n\
         m=audio 1002 RTP/AVP 0\na=label:2\nc=IN IP4 0.0.0.0\na=sendonly\n\
         m=audio 0 RTP/AVP 0\na=label:3\n\
         m=audio 1006 RTP/AVP 0\na=label:4\na=recvonly\n",
    )
    .unwrap();
    let (text, res) = sdp::answer(&offer, &[2000, 2002, 2004, 2006], &cfg()).unwrap();
    let ans = sdp::parse(&text).unwrap();
    assert_eq!(
        res.iter().map(|r| r.paused).collect::<Vec<_>>(),
        vec![true, true, true, false]
    );
    assert_eq!(res[0].direction, Direction::Inactive);
    assert_eq!(ans.direction(0), Direction::Inactive);
    assert_eq!(
        res[1].direction,
        Direction::RecvOnly,
        "c=0.0.0.0 hold keeps recvonly"
    );
    assert_eq!(res[1].remote, None);
    assert_eq!(ans.media[2].port, 0, "port 0 offered → port 0 answered");
    assert_eq!(res[2].codec, Some(Codec::Pcmu));
    assert_eq!(
        res[3].direction,
        Direction::Inactive,
        "recvonly offer → inactive"
    );
    assert_eq!(attr(&ans.media[0], "label"), Some("1"));
    assert_eq!(attr(&ans.media[2], "label"), Some("3"));
}

#[test]
fn answer_session_level_ptime_and_no_media() {
    let offer = sdp::parse("v=0\na=ptime:30\nm=audio 1000 RTP/AVP 8\n").unwrap();
    let (text, _) = sdp::answer(&offer, &[2000], &cfg()).unwrap();
    assert!(text.contains("a=ptime:30\r\n"));
    let mut empty = offer.clone();
    empty.media.clear();
    assert_eq!(
        sdp::answer(&empty, &[], &cfg()).unwrap_err(),
        SdpError::NoMedia
    );
    // port 65535: no a=rtcp overflow.
    let (text, _) = sdp::answer(&offer, &[65535], &cfg()).unwrap();
    assert!(!text.contains("a=rtcp"));
}

// ------------------------------------------------------------------ metadata

const RFC: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <group group_id="g1"><associate-time>2024-01-01T00:00:00Z</associate-time></group>
  <session session_id="s1"><sipSessionID>abc;remote=def</sipSessionID></session>
  <participant participant_id="p2">
    <nameID aor="sip:bob@example.org"><name xml:lang="en">Bob</name></nameID>
  </participant>
  <participant participant_id="p1">
    <nameID aor="alice@example.com"><name>Alice</name></nameID>
    <nameID aor="tel:+15550100"/>
  </participant>
  <stream stream_id="st1" session_id="s1"><label>1</label></stream>
  <stream stream_id="st2" session_id="s1"><label>2</label></stream>
  <participantstreamassoc participant_id="p1"><send>st1</send><recv>st2</recv></participantstreamassoc>
  <participantstreamassoc participant_id="p2"><send>st2</send><recv>st1</recv></participantstreamassoc>
</recording>"#;

#[test]
fn rfc7865_document() {
    let md = parse_md(RFC);
    assert_eq!(md.dialect, Some(Dialect::Rfc7865));
    assert_eq!(md.data_mode, DataMode::Complete);
    assert_eq!(md.participants.len(), 2);
    let alice = &md.participants[1];
    assert_eq!(alice.id, "p1");
    assert_eq!(alice.aors, vec!["sip:alice@example.com", "tel:+15550100"]);
    assert_eq!(alice.name.as_deref(), Some("Alice"));
    assert_eq!(alice.sends, vec!["st1"]);
    assert_eq!(alice.receives, vec!["st2"]);
    assert_eq!(
        md.streams[0],
        MdStream {
            id: "st1".into(),
            label: Some("1".into()),
            session: Some("s1".into())
        }
    );
    assert_eq!(
        md.original_call_ids,
        vec![OriginalCallId {
            kind: "sipSessionID".into(),
            value: "abc;remote=def".into()
        }]
    );
    assert!(md.extensions.is_empty(), "{:?}", md.extensions);
    assert_eq!(md.vendor_hint, None);
}

#[test]
fn label_mapping_is_by_metadata_not_order() {
    let md = parse_md(RFC);
    // Bob is listed first but sends label 2.
    assert_eq!(md.sender_of_label("1").map(|p| p.id.as_str()), Some("p1"));
    assert_eq!(md.sender_of_label("2").map(|p| p.id.as_str()), Some("p2"));
    assert_eq!(md.sender_of_label("3"), None);
    assert_eq!(md.labels_sent_by("p1"), vec!["1"]);
    assert!(md.labels_sent_by("nobody").is_empty());
}

#[test]
fn dialect_table() {
    let cases = [
        ("urn:ietf:params:xml:ns:recording:1", Dialect::Rfc7865),
        ("urn:ietf:params:xml:ns:recording", Dialect::Draft),
        ("urn:ietf:params:xml:ns:siprec", Dialect::BroadWorks),
        ("urn:example:other", Dialect::Unknown),
    ];
    for (ns, d) in cases {
        let xml = format!(
            r#"<recording xmlns="{ns}"><participant participant_id="a"><aor>a@b</aor><send>s</send></participant><stream stream_id="s"><label>L</label></stream></recording>"#
        );
        let md = parse_md(&xml);
        assert_eq!(md.dialect, Some(d), "{ns}");
        assert_eq!(
            md.sender_of_label("L").map(|p| p.id.as_str()),
            Some("a"),
            "{ns}"
        );
    }
    let md = parse_md("<recording><participant id='x'/></recording>");
    assert_eq!(md.dialect, Some(Dialect::Unknown));
    assert_eq!(md.participants[0].id, "x");
    let bw = parse_md(r#"<recording xmlns="urn:ietf:params:xml:ns:siprec"/>"#);
    assert_eq!(bw.vendor_hint.as_deref(), Some("broadworks"));
}

#[test]
fn prefixed_and_undeclared_prefixes() {
    let md = parse_md(
        r#"<rs:recording xmlns:rs="urn:ietf:params:xml:ns:recording:1"><rs:datamode>partial</rs:datamode>
        <rs:participant rs:participant_id="p"><rs:nameID aor="sip:a@b"><rs:name>A</rs:name></rs:nameID>
        <rs:send>s</rs:send></rs:participant><rs:stream stream_id="s"><rs:label>9</rs:label></rs:stream></rs:recording>"#,
    );
    assert_eq!(md.data_mode, DataMode::Partial);
    assert_eq!(md.participants[0].name.as_deref(), Some("A"));
    assert_eq!(md.sender_of_label("9").map(|p| p.id.as_str()), Some("p"));
    // SBCs sometimes forget to declare the prefix.
    let md = parse_md(
        r#"<rs:recording><rs:participant participant_id="p"><rs:aor>x@y</rs:aor><rs:send>s</rs:send></rs:participant><rs:stream stream_id="s"><rs:label>1</rs:label></rs:stream><ext:foo>bar</ext:foo></rs:recording>"#,
    );
    assert_eq!(md.participants[0].aors, vec!["sip:x@y"]);
    assert_eq!(md.sender_of_label("1").map(|p| p.id.as_str()), Some("p"));
    assert_eq!(md.extensions.len(), 1);
}

#[test]
fn draft_dialect_attributes() {
    let md = parse_md(
        r#"<recording xmlns="urn:ietf:params:xml:ns:recording">
        <session id="S"/>
        <participant id="P1" session="S" name="Attr Name" aor="attr@host">
          <aor>bare@host</aor><send>A B</send><recv>C</recv>
        </participant>
        <stream id="A" session="S"><label>1</label><mode>separate</mode></stream>
        <stream id="B" session="S" label="2"/>
        </recording>"#,
    );
    assert_eq!(md.dialect, Some(Dialect::Draft));
    let p = &md.participants[0];
    assert_eq!(p.id, "P1");
    assert_eq!(p.name.as_deref(), Some("Attr Name"));
    assert_eq!(p.aors, vec!["sip:attr@host", "sip:bare@host"]);
    assert_eq!(p.sends, vec!["A", "B"]);
    assert_eq!(md.streams[0].session.as_deref(), Some("S"));
    assert_eq!(md.streams[1].label.as_deref(), Some("2"));
    assert_eq!(md.labels_sent_by("P1"), vec!["1", "2"]);
    assert!(md.extensions.is_empty(), "{:?}", md.extensions);
}

#[test]
fn aor_normalisation() {
    let cases = [
        ("alice@example.com", Some("sip:alice@example.com")),
        (" <sip:alice@example.com> ", Some("sip:alice@example.com")),
        ("sips:alice@example.com", Some("sips:alice@example.com")),
        ("tel:+15551234", Some("tel:+15551234")),
        (
            "+15551234@gw.example:5060",
            Some("sip:+15551234@gw.example:5060"),
        ),
        ("1001", Some("sip:1001")),
        ("SIP:Upper@x", Some("SIP:Upper@x")),
        ("  ", None),
        ("", None),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_aor(raw).as_deref(), want, "{raw:?}");
    }
}

#[test]
fn vendor_extensions_and_original_ids() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            r#"<extensiondata xmlns:apkt="http://acmepacket.com/siprec/extensiondata"><apkt:ucid>00FA0800;encoding=hex</apkt:ucid></extensiondata>"#,
            "oracle",
            "ucid",
            "00FA0800",
        ),
        ("<ucid>00FA0801</ucid>", "avaya", "ucid", "00FA0801"),
        (
            r#"<genesys:data xmlns:genesys="http://www.genesys.com/siprec"><genesys:CallUUID>0GL7</genesys:CallUUID></genesys:data>"#,
            "genesys",
            "genesys_uuid",
            "0GL7",
        ),
        (
            r#"<x:data xmlns:x="urn:vendor:x"><x:CallUUID>UU</x:CallUUID></x:data>"#,
            "genesys",
            "genesys_uuid",
            "UU",
        ),
        (
            r#"<extensiondata xmlns:ciscoext="http://www.cisco.com/siprec"><ciscoext:ccSessionId>cs-9</ciscoext:ccSessionId></extensiondata>"#,
            "cisco",
            "cisco_session_id",
            "cs-9",
        ),
        (
            r#"<extensiondata xmlns:bwext="http://schema.broadsoft.com/siprec"><bwext:trackingId>123:1</bwext:trackingId></extensiondata>"#,
            "broadworks",
            "broadworks_tracking_id",
            "123:1",
        ),
    ];
    for (ext, vendor, kind, value) in cases {
        let xml = format!(
            r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>{ext}</recording>"#
        );
        let md = parse_md(&xml);
        assert_eq!(md.vendor_hint.as_deref(), Some(*vendor), "{ext}");
        assert_eq!(
            md.original_call_ids,
            vec![OriginalCallId {
                kind: kind.to_string(),
                value: value.to_string()
            }],
            "{ext}"
        );
        assert_eq!(md.extensions, vec![ext.to_string()], "kept verbatim");
    }
}

#[test]
fn unknown_elements_are_kept_not_fatal() {
    let md = parse_md(
        r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1">
        <participant participant_id="p"><nameID aor="sip:a@b"/><vendorFlag>1</vendorFlag>
        <x:thing xmlns:x="urn:x">t</x:thing><send>s</send></participant>
        <stream stream_id="s"><label>1</label><x:codec xmlns:x="urn:x">g711</x:codec></stream>
        <session session_id="q"><mystery/></session>
        <somethingNew a="b"><deep><deeper/></deep></somethingNew>
        </recording>"#,
    );
    assert_eq!(md.extensions.len(), 5, "{:#?}", md.extensions);
    assert!(md.extensions.iter().any(|e| e.starts_with("<somethingNew")));
    assert!(md.extensions.iter().any(|e| e.contains("<deeper/>")));
    assert_eq!(md.sender_of_label("1").map(|p| p.id.as_str()), Some("p"));
}

#[test]
fn wrong_root_and_bad_xml() {
    assert!(matches!(
        metadata::parse(b"<html><body/></html>", &MetadataLimits::default()),
        Err(MetadataError::WrongRoot(r)) if r == "html"
    ));
    for bad in [
        &b"<recording>"[..],
        b"",
        b"not xml",
        b"<recording></other>",
        b"\xff\xfe<recording/>",
    ] {
        assert!(
            matches!(
                metadata::parse(bad, &MetadataLimits::default()),
                Err(MetadataError::Xml(_))
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn limits_size_depth_elements() {
    let limits = MetadataLimits {
        max_bytes: 200,
        max_depth: 4,
        max_elements: 10,
    };
    let big = format!("<recording>{}</recording>", " ".repeat(300));
    assert_eq!(
        metadata::parse(big.as_bytes(), &limits),
        Err(MetadataError::TooLarge(200))
    );
    let deep = "<recording><a><b><c><d/></c></b></a></recording>";
    assert_eq!(
        metadata::parse(deep.as_bytes(), &limits),
        Err(MetadataError::TooDeep(4))
    );
    let ok = "<recording><a><b><c/></b></a></recording>";
    assert!(metadata::parse(ok.as_bytes(), &limits).is_ok());
    let wide = format!("<recording>{}</recording>", "<x/>".repeat(20));
    assert!(matches!(
        metadata::parse(wide.as_bytes(), &limits),
        Err(MetadataError::Xml(_))
    ));
}

#[test]
fn very_deep_nesting_does_not_overflow() {
    let n = 20_000;
    let xml = format!(
        "<recording>{}{}</recording>",
        "<a>".repeat(n),
        "</a>".repeat(n)
    );
    let limits = MetadataLimits {
        max_bytes: 1 << 20,
        max_depth: 32,
        max_elements: 100_000,
    };
    assert_eq!(
        metadata::parse(xml.as_bytes(), &limits),
        Err(MetadataError::TooDeep(32))
    );
    // A generous configured depth is still capped before the parser recurses.
    let limits = MetadataLimits {
        max_depth: usize::MAX,
        ..limits
    };
    assert_eq!(
        metadata::parse(xml.as_bytes(), &limits),
        Err(MetadataError::TooDeep(metadata::HARD_MAX_DEPTH))
    );
    // Quoted '>' and comments/CDATA do not confuse the pre-scan.
    let tricky = "<recording a='>' b=\"/>\"><!-- <a><a><a> --><![CDATA[<a><a><a><a>]]><p participant_id='x'/></recording>";
    let limits = MetadataLimits {
        max_depth: 2,
        ..MetadataLimits::default()
    };
    assert!(metadata::parse(tricky.as_bytes(), &limits).is_ok());
}

#[test]
fn doctype_and_entities_rejected() {
    let docs = [
        "<!DOCTYPE recording><recording/>",
        "<?xml version=\"1.0\"?>\n<!doctype recording SYSTEM \"http://evil.example/x.dtd\"><recording/>",
        "<!DOCTYPE recording [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><recording><participant participant_id=\"&xxe;\"/></recording>",
        // billion laughs
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\"><!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\"><!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">]><recording>&lol4;</recording>",
    ];
    for d in docs {
        assert!(
            matches!(
                metadata::parse(d.as_bytes(), &MetadataLimits::default()),
                Err(MetadataError::Xml(_))
            ),
            "{d}"
        );
    }
    // An undefined entity reference without a DTD is not well-formed.
    assert!(metadata::parse(b"<recording>&lol;</recording>", &MetadataLimits::default()).is_err());
    // Predefined entities and character references are fine.
    let md = parse_md("<recording><participant participant_id=\"a&amp;b\"><name>A &lt;B&gt; &#x41;</name></participant></recording>");
    assert_eq!(md.participants[0].id, "a&b");
    assert_eq!(md.participants[0].name.as_deref(), Some("A <B> A"));
}

// ------------------------------------------------------------------ merge

fn participant(id: &str, aor: &str, sends: &[&str]) -> MdParticipant {
    MdParticipant {
        id: id.into(),
        aors: if aor.is_empty() {
            vec![]
        } else {
            vec![aor.into()]
        },
        name: None,
        sends: sends.iter().map(|s| s.to_string()).collect(),
        receives: vec![],
    }
}

#[test]
fn partial_merge() {
    let mut md = parse_md(
        r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>
        <session session_id="s"><sipSessionID>one</sipSessionID></session>
        <participant participant_id="a"><nameID aor="sip:a@x"><name>Old</name></nameID><send>s1</send></participant>
        <stream stream_id="s1"><label>1</label></stream><stream stream_id="s2"><label>2</label></stream>
        <ucid>U1</ucid></recording>"#,
    );
    let update = parse_md(
        r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>partial</datamode>
        <participant participant_id="a"><name>New</name><recv>s2</recv></participant>
        <participant participant_id="b"><aor>b@x</aor><send>s2</send></participant>
        <stream stream_id="s2"><label>2b</label></stream>
        <session session_id="s"><sipSessionID>one</sipSessionID><sipSessionID>two</sipSessionID></session>
        </recording>"#,
    );
    assert_eq!(update.data_mode, DataMode::Partial);
    md.merge(update);
    assert_eq!(md.data_mode, DataMode::Complete);
    assert_eq!(md.participants.len(), 2);
    let a = &md.participants[0];
    assert_eq!(a.name.as_deref(), Some("New"));
    assert_eq!(a.aors, vec!["sip:a@x"], "no aors in the update: kept");
    assert_eq!(a.sends, vec!["s1"]);
    assert_eq!(a.receives, vec!["s2"]);
    assert_eq!(md.streams.len(), 2);
    assert_eq!(md.streams[1].label.as_deref(), Some("2b"));
    assert_eq!(md.sender_of_label("2b").map(|p| p.id.as_str()), Some("b"));
    let ids: Vec<&str> = md
        .original_call_ids
        .iter()
        .map(|o| o.value.as_str())
        .collect();
    assert_eq!(ids, vec!["one", "U1", "two"]);
    assert_eq!(md.vendor_hint.as_deref(), Some("avaya"));
}

#[test]
fn complete_merge_replaces() {
    let mut md = RecordingMetadata {
        participants: vec![participant("a", "sip:a@x", &["s1"])],
        vendor_hint: Some("cisco".into()),
        ..Default::default()
    };
    let update = RecordingMetadata {
        data_mode: DataMode::Complete,
        participants: vec![participant("z", "sip:z@x", &[])],
        ..Default::default()
    };
    md.merge(update);
    assert_eq!(md.participants.len(), 1);
    assert_eq!(md.participants[0].id, "z");
    assert_eq!(md.vendor_hint.as_deref(), Some("cisco"));
}

#[test]
fn mixed_stream_senders() {
    let md = parse_md(
        r#"<recording xmlns="urn:ietf:params:xml:ns:recording:1">
        <participant participant_id="a"><send>m</send></participant>
        <participant participant_id="b"><send>m</send></participant>
        <participant participant_id="c"><recv>m</recv></participant>
        <stream stream_id="m"><label>0</label></stream></recording>"#,
    );
    let ids: Vec<&str> = md
        .senders_of_label("0")
        .iter()
        .map(|p| p.id.as_str())
        .collect();
    assert_eq!(ids, vec!["a", "b"]);
    assert_eq!(md.sender_of_label("0").map(|p| p.id.as_str()), Some("a"));
}

// ------------------------------------------------------------------ properties

fn sdp_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("v=0".to_string()),
        Just("c=IN IP4 0.0.0.0".to_string()),
        Just("a=inactive".to_string()),
        Just("a=sendonly".to_string()),
        (0u32..70000, prop::collection::vec(0u32..300, 0..4)).prop_map(|(p, f)| format!(
            "m=audio {p} RTP/AVP {}",
            f.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        )),
        (0u32..300, "[a-zA-Z-]{0,16}", 0u32..100_000)
            .prop_map(|(pt, e, r)| format!("a=rtpmap:{pt} {e}/{r}")),
        "[a-z]=[ -~]{0,40}",
        "[ -~]{0,40}",
        "a=label:[ -~]{0,10}",
        "c=IN IP6 [0-9a-f:]{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn sdp_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(sd) = sdp::parse(&text) {
            let ports: Vec<u16> = (0..sd.media.len()).map(|i| 20000 + i as u16 * 2).collect();
            let _ = sdp::answer(&sd, &ports, &cfg());
            for i in 0..sd.media.len() + 1 {
                let _ = sd.is_held(i);
            }
        }
    }

    #[test]
    fn sdp_structured_never_panics_and_answer_reparses(lines in prop::collection::vec(sdp_line(), 0..30), crlf in any::<bool>()) {
        let text = lines.join(if crlf { "\r\n" } else { "\n" });
        if let Ok(sd) = sdp::parse(&text) {
            let ports: Vec<u16> = (0..sd.media.len()).map(|i| 20000 + i as u16 * 2).collect();
            if let Ok((ans, res)) = sdp::answer(&sd, &ports, &cfg()) {
                let back = sdp::parse(&ans).expect("our answer parses");
                prop_assert_eq!(back.media.len(), sd.media.len());
                prop_assert_eq!(res.len(), sd.media.len());
            }
        }
    }

    #[test]
    fn metadata_arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = metadata::parse(&bytes, &MetadataLimits::default());
    }

    #[test]
    fn metadata_structured_never_panics(parts in prop::collection::vec(prop_oneof![
        Just("<participant participant_id=\"p\">".to_string()),
        Just("</participant>".to_string()),
        Just("<stream stream_id=\"s\"><label>1</label></stream>".to_string()),
        Just("<send>s</send>".to_string()),
        Just("<nameID aor=\"a@b\"><name>n</name></nameID>".to_string()),
        Just("<x:y xmlns:x=\"urn:cisco\"><x:sessionId>1</x:sessionId></x:y>".to_string()),
        Just("<ucid>u</ucid>".to_string()),
        Just("<rs:participant>".to_string()),
        Just("<!DOCTYPE x>".to_string()),
        Just("&amp;".to_string()),
        Just("<![CDATA[x]]>".to_string()),
        Just("<!-- c -->".to_string()),
        "[ -~]{0,12}",
    ], 0..40)) {
        let xml = format!("<recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">{}</recording>", parts.concat());
        if let Ok(md) = metadata::parse(xml.as_bytes(), &MetadataLimits::default()) {
            let _ = md.sender_of_label("1");
            let mut m2 = md.clone();
            m2.merge(md);
        }
    }
}
