//! The vendor vectors in `tests/sipp/vendors/`, run offline through the whole
//! sans-IO pipeline: sipp rendering → UDP framing → SIP parsing → multipart →
//! SDP offer/answer → recording metadata, checked against `expect.json`.
//!
//! The rendering mimics sipp 3.6: leading whitespace of every line removed,
//! blank lines at both ends dropped, a line that expands to nothing (an empty
//! `[routes]`) removed, CRLF line ends with a final CRLF, and `[len]` = the
//! number of bytes after the first blank line.

use earshot::metadata::{self, MetadataLimits, RecordingMetadata};
use earshot::sdp::{self, AnswerConfig, Codec, Direction};
use earshot::sip::{self, Frame, Limits, SipMessage};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

const SCENARIOS: &[&str] = &[
    "rfc7865",
    "cisco_cube",
    "oracle_acme",
    "audiocodes_legacy",
    "ribbon_sonus",
    "avaya_sbce",
    "broadworks",
    "metaswitch_mixed",
    "opensips_sparse",
    "freeswitch_single",
];

fn vendors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/vendors")
}

fn expectations() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(vendors_dir().join("expect.json")).expect("expect.json");
    match serde_json::from_str(&text).expect("expect.json is JSON") {
        Value::Object(m) => m,
        _ => panic!("expect.json must be an object"),
    }
}

/// The CDATA of every `<send>` in a sipp scenario, in order.
fn sends(scenario: &str) -> Vec<String> {
    let path = vendors_dir().join(format!("{scenario}.xml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    // sipp scenarios carry `<!DOCTYPE scenario SYSTEM "sipp.dtd">`; this is
    // our own trusted file, so the DTD is allowed here (never for metadata).
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, opts)
        .unwrap_or_else(|e| panic!("{scenario}.xml is not well-formed: {e}"));
    doc.root_element()
        .children()
        .filter(|n| n.has_tag_name("send"))
        .map(|n| {
            n.children()
                .filter(|c| c.is_text())
                .filter_map(|c| c.text())
                .collect::<String>()
        })
        .collect()
}

/// Fixed values for the sipp keywords used by the scenarios.
fn keywords() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("call_id", "1-4242@192.0.2.200"),
        ("call_number", "1"),
        ("pid", "4242"),
        ("service", "sipp"),
        ("transport", "UDP"),
        ("local_ip", "192.0.2.200"),
        ("local_port", "5062"),
        ("remote_ip", "192.0.2.10"),
        ("remote_port", "5060"),
        ("media_ip", "192.0.2.200"),
        ("media_ip_type", "4"),
        ("media_port", "6000"),
        ("media_port+2", "6002"),
        ("branch", "z9hG4bK-4242-1-0"),
        ("next_url", "sip:srs@192.0.2.10:5060"),
        ("routes", ""),
        ("peer_tag_param", ";tag=srs-77"),
        (
            "last_From:",
            "From: <sip:src@192.0.2.200>;tag=4242SIPpTag001",
        ),
        ("last_To:", "To: <sip:srs@192.0.2.10>;tag=srs-77"),
        ("last_Call-ID:", "Call-ID: 1-4242@192.0.2.200"),
        (
            "last_Via:",
            "Via: SIP/2.0/UDP 192.0.2.200:5062;branch=z9hG4bK-4242-1-0",
        ),
    ])
}

/// Expand keywords in one line; `[len]` is left for later.
fn expand(line: &str, kw: &BTreeMap<&str, &str>) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find(']') {
            Some(close) if !after[..close].contains(char::is_whitespace) => {
                let key = &after[..close];
                if key == "len" {
                    out.push_str("[len]");
                } else if let Some(v) = kw.get(key) {
                    out.push_str(v);
                } else {
                    panic!("unknown sipp keyword [{key}] in line {line:?}");
                }
                rest = &after[close + 1..];
            }
            _ => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Render a `<send>` CDATA the way sipp puts it on the wire.
fn render(cdata: &str) -> Vec<u8> {
    let kw = keywords();
    let lines: Vec<&str> = cdata
        .split('\n')
        .map(|l| l.trim_end_matches('\r').trim_start())
        .collect();
    let first = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(0);
    let last = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .unwrap_or(0);
    let mut out = String::new();
    for l in &lines[first..=last] {
        let e = expand(l, &kw);
        if !l.is_empty() && e.is_empty() {
            continue; // e.g. an empty [routes]
        }
        out.push_str(&e);
        out.push_str("\r\n");
    }
    let body_len = match out.find("\r\n\r\n") {
        Some(p) => out.len() - (p + 4),
        None => 0,
    };
    // `[len]` is in the head; its own digits do not change the body length.
    out.replacen("[len]", &body_len.to_string(), 1).into_bytes()
}

struct Parsed {
    sdp: Option<String>,
    metadata: Option<Vec<u8>>,
    parts: Vec<String>,
    request: sip::Request,
}

fn run_sip(bytes: &[u8], what: &str) -> Parsed {
    let limits = Limits::default();
    let frame =
        sip::frame_datagram(bytes, &limits).unwrap_or_else(|e| panic!("{what}: frame: {e}"));
    let Frame::Message(msg) = frame else {
        panic!("{what}: not a message")
    };
    assert_eq!(msg.len(), bytes.len(), "{what}: framing cut the datagram");
    let req = match sip::parse_message(&msg, &limits) {
        Ok(SipMessage::Request(r)) => r,
        Ok(SipMessage::Response(_)) => panic!("{what}: parsed as a response"),
        Err(e) => panic!("{what}: parse_message: {e}"),
    };
    let ct = req.content_type();
    let parts = sip::body_parts(ct.as_ref(), &req.body, &limits)
        .unwrap_or_else(|e| panic!("{what}: body_parts: {e}"));
    let mut p = Parsed {
        sdp: None,
        metadata: None,
        parts: Vec::new(),
        request: req.clone(),
    };
    for part in parts {
        let mime = part.mime().unwrap_or_default().to_owned();
        if mime == "application/sdp" {
            p.sdp = Some(String::from_utf8(part.body.clone()).expect("SDP is UTF-8"));
        } else if mime.starts_with("application/rs-metadata") {
            p.metadata = Some(part.body.clone());
        }
        p.parts.push(mime);
    }
    p
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn check_scenario(name: &str, exp: &Value) {
    let sends = sends(name);
    assert!(sends.len() >= 3, "{name}: INVITE, ACK, BYE at least");
    let invite = render(&sends[0]);
    let updates: Vec<Vec<u8>> = sends
        .iter()
        .skip(1)
        .map(|s| render(s))
        .filter(|m| m.starts_with(b"UPDATE "))
        .collect();
    check_messages(name, exp, &invite, &updates);
}

/// Run one INVITE (and any metadata UPDATEs) through the pipeline and
/// compare with the expectations.
fn check_messages(name: &str, exp: &Value, invite_bytes: &[u8], updates: &[Vec<u8>]) {
    let invite = run_sip(invite_bytes, &format!("{name} INVITE"));
    assert_eq!(invite.request.method, sip::Method::Invite, "{name}");
    assert!(
        invite.request.contact_has_feature("+sip.src") || invite.request.contact_has_feature("src"),
        "{name}: Contact carries the SRC feature tag"
    );

    // ---- SDP offer/answer
    let offer_text = invite
        .sdp
        .as_deref()
        .unwrap_or_else(|| panic!("{name}: no SDP part in {:?}", invite.parts));
    let offer = sdp::parse(offer_text).unwrap_or_else(|e| panic!("{name}: SDP: {e}"));
    let streams = exp["streams"].as_u64().expect("streams") as usize;
    assert_eq!(offer.media.len(), streams, "{name}: offered m-lines");
    let labels: Vec<String> = offer
        .media
        .iter()
        .map(|m| m.label().map(|l| l.0).unwrap_or_default())
        .collect();
    assert_eq!(labels, strs(&exp["labels"]), "{name}: offered labels");

    let ports: Vec<u16> = (0..offer.media.len())
        .map(|i| 40000 + 2 * i as u16)
        .collect();
    let cfg = AnswerConfig {
        media_ip: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
        session_id: 77,
        session_version: 1,
        preference: vec![Codec::Opus, Codec::G722, Codec::Pcmu, Codec::Pcma],
    };
    let (text, results) =
        sdp::answer(&offer, &ports, &cfg).unwrap_or_else(|e| panic!("{name}: answer: {e}"));
    let ans =
        sdp::parse(&text).unwrap_or_else(|e| panic!("{name}: our answer does not parse: {e}"));
    assert_eq!(
        ans.media.len(),
        offer.media.len(),
        "{name}: one answer line per offer line"
    );
    assert_eq!(results.len(), offer.media.len());
    assert_eq!(ans.connection.as_ref().map(|c| c.addr), Some(cfg.media_ip));
    assert!(text.contains("s=Earshot\r\n") && text.contains("t=0 0\r\n"));
    let paused = exp["paused"].as_bool().unwrap_or(false);
    for (i, (m, r)) in ans.media.iter().zip(&results).enumerate() {
        assert_eq!(
            m.label(),
            offer.media[i].label(),
            "{name}: label echoed on line {i}"
        );
        assert_eq!(r.label, offer.media[i].label());
        assert_eq!(r.paused, paused, "{name}: paused on line {i}");
        let want_dir = if paused {
            Direction::Inactive
        } else {
            Direction::RecvOnly
        };
        assert_eq!(ans.direction(i), want_dir, "{name}: direction of line {i}");
        assert_eq!(r.direction, want_dir);
        assert_eq!(m.port, ports[i], "{name}: our port on line {i}");
        let pt = r.payload_type.expect("accepted line has a payload type");
        assert!(r.codec.is_some());
        assert_eq!(m.formats.first(), Some(&pt.to_string()));
        let rtcp = m
            .attributes
            .iter()
            .find(|(n, _)| n == "rtcp")
            .and_then(|(_, v)| v.clone());
        assert_eq!(rtcp, Some((ports[i] + 1).to_string()), "{name}: a=rtcp");
        if !paused {
            assert!(r.remote.is_some(), "{name}: remote address known");
        }
    }

    // ---- metadata (INVITE, then an UPDATE if the scenario has one)
    let limits = MetadataLimits::default();
    let md_bytes = invite
        .metadata
        .unwrap_or_else(|| panic!("{name}: no metadata part in {:?}", invite.parts));
    let mut md: RecordingMetadata =
        metadata::parse(&md_bytes, &limits).unwrap_or_else(|e| panic!("{name}: metadata: {e}"));
    if let Some(n) = exp.get("initial_participants").and_then(Value::as_u64) {
        assert_eq!(
            md.participants.len() as u64,
            n,
            "{name}: participants after INVITE"
        );
    }
    for (i, rendered) in updates.iter().enumerate() {
        let upd = run_sip(rendered, &format!("{name} UPDATE #{i}"));
        let body = upd
            .metadata
            .unwrap_or_else(|| panic!("{name}: UPDATE without metadata: {:?}", upd.parts));
        let delta = metadata::parse(&body, &limits)
            .unwrap_or_else(|e| panic!("{name}: UPDATE metadata: {e}"));
        assert_eq!(
            delta.data_mode,
            metadata::DataMode::Partial,
            "{name}: UPDATE is partial"
        );
        md.merge(delta);
    }
    check_metadata(name, &md, exp);
}

fn check_metadata(name: &str, md: &RecordingMetadata, exp: &Value) {
    assert_eq!(
        md.vendor_hint.as_deref(),
        exp["vendor_hint"].as_str(),
        "{name}: vendor_hint"
    );
    if let Some(d) = exp.get("dialect") {
        assert_eq!(
            serde_json::to_value(md.dialect).unwrap(),
            *d,
            "{name}: dialect"
        );
    }
    let want = exp["participants"].as_array().expect("participants");
    assert_eq!(
        md.participants.len(),
        want.len(),
        "{name}: participants {:#?}",
        md.participants
    );
    for (p, w) in md.participants.iter().zip(want) {
        assert_eq!(
            p.aors.first().map(String::as_str),
            w["aor"].as_str(),
            "{name}: aor"
        );
        assert_eq!(
            p.name.as_deref(),
            w["name"].as_str(),
            "{name}: name of {}",
            p.id
        );
        let labels = md.labels_sent_by(&p.id);
        assert_eq!(
            labels,
            strs(&w["labels"]),
            "{name}: labels sent by {}",
            p.id
        );
        for l in &labels {
            assert!(
                md.senders_of_label(l).iter().any(|s| s.id == p.id),
                "{name}: senders_of_label({l}) misses {}",
                p.id
            );
            assert!(md.sender_of_label(l).is_some());
        }
    }
    let mut got: Vec<(String, String)> = md
        .original_call_ids
        .iter()
        .map(|o| (o.kind.clone(), o.value.clone()))
        .collect();
    let mut exp_ids: Vec<(String, String)> = exp["original_call_ids"]
        .as_array()
        .expect("original_call_ids")
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_owned(),
                o["value"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    got.sort();
    exp_ids.sort();
    assert_eq!(got, exp_ids, "{name}: original call ids");
}

#[test]
fn every_scenario_has_expectations_and_vice_versa() {
    let exp = expectations();
    let mut files: Vec<String> = std::fs::read_dir(vendors_dir())
        .expect("vendors dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter_map(|f| f.strip_suffix(".xml").map(str::to_owned))
        .collect();
    files.sort();
    let mut keys: Vec<String> = exp.keys().cloned().collect();
    keys.sort();
    assert_eq!(files, keys);
    let mut listed: Vec<String> = SCENARIOS.iter().map(|s| s.to_string()).collect();
    listed.sort();
    assert_eq!(listed, keys);
}

#[test]
fn render_matches_sipp_conventions() {
    let msg = render(
        "\n\n      INVITE sip:a@b SIP/2.0\n      [routes]\n      Content-Length: [len]\n\n      x\n        y\n\n    ",
    );
    assert_eq!(
        msg,
        b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 6\r\n\r\nx\r\ny\r\n".to_vec()
    );
}

macro_rules! vendor_test {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let exp = expectations();
            let e = exp
                .get(stringify!($name))
                .unwrap_or_else(|| panic!("no expectation for {}", stringify!($name)));
            check_scenario(stringify!($name), e);
        }
    )*};
}

vendor_test!(
    rfc7865,
    cisco_cube,
    oracle_acme,
    audiocodes_legacy,
    ribbon_sonus,
    avaya_sbce,
    broadworks,
    metaswitch_mixed,
    opensips_sparse,
    freeswitch_single,
);

#[test]
fn mixed_stream_maps_to_both_participants() {
    let sends = sends("metaswitch_mixed");
    let invite = run_sip(&render(&sends[0]), "metaswitch_mixed");
    let md = metadata::parse(
        &invite.metadata.expect("metadata"),
        &MetadataLimits::default(),
    )
    .expect("metadata parses");
    let senders = md.senders_of_label("mix0");
    assert_eq!(senders.len(), 2);
    assert_eq!(
        md.sender_of_label("mix0").map(|p| p.id.as_str()),
        Some(senders[0].id.as_str())
    );
}

#[test]
fn ribbon_gtd_part_is_carried_but_ignored() {
    let sends = sends("ribbon_sonus");
    let invite = run_sip(&render(&sends[0]), "ribbon_sonus");
    assert!(
        invite.parts.iter().any(|p| p == "application/gtd"),
        "{:?}",
        invite.parts
    );
}

/// Optional: messages captured from a real sipp run (one directory per
/// scenario holding the datagrams sipp sent, `01.bin`, `02.bin`, ...; e.g.
/// written by a throw-away UDP responder). Set `EARSHOT_SIPP_CAPTURES` to
/// that directory's parent to check sipp's own rendering, not just ours.
#[test]
fn sipp_captures_when_available() {
    let Some(dir) = std::env::var_os("EARSHOT_SIPP_CAPTURES") else {
        return;
    };
    let exp = expectations();
    for name in SCENARIOS {
        let sdir = PathBuf::from(&dir).join(name);
        let Ok(entries) = std::fs::read_dir(&sdir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        let msgs: Vec<Vec<u8>> = files.iter().filter_map(|f| std::fs::read(f).ok()).collect();
        let Some(invite) = msgs.iter().find(|m| m.starts_with(b"INVITE ")) else {
            continue;
        };
        let updates: Vec<Vec<u8>> = msgs
            .iter()
            .filter(|m| m.starts_with(b"UPDATE "))
            .cloned()
            .collect();
        check_messages(name, &exp[*name], invite, &updates);
    }
}
