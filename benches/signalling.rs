//! Signalling cost: parsing a SIPREC INVITE (multipart SDP + metadata) and a
//! whole call through the UAS (INVITE → 200 → ACK → BYE → 200).
//! Run: `cargo bench --bench signalling`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use earshot::ids::CallId;
use earshot::ports::PortPool;
use earshot::sip::{body_parts, parse_message, Limits, SipMessage};
use earshot::uas::{Peer, Transport, Uas, UasConfig, UasOutput};
use std::hint::black_box;
use std::time::Instant;

const SDP: &str = "v=0\r\no=SRC 1 1 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n\
m=audio 20000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=label:1\r\na=sendonly\r\n\
m=audio 20002 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=label:2\r\na=sendonly\r\n";

const MD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>complete</datamode>
<group group_id="g1"><associate-time>2026-01-01T00:00:00Z</associate-time></group>
<session session_id="s1"><group-ref>g1</group-ref><sipSessionID>abc;remote=def</sipSessionID></session>
<participant participant_id="p1"><nameID aor="sip:+15551230001@example.com"><name>Caller</name></nameID></participant>
<participant participant_id="p2"><nameID aor="sip:agent42@example.com"><name>Agent</name></nameID></participant>
<stream stream_id="st1" session_id="s1"><label>1</label></stream>
<stream stream_id="st2" session_id="s1"><label>2</label></stream>
<participantstreamassoc participant_id="p1"><send>st1</send><recv>st2</recv></participantstreamassoc>
<participantstreamassoc participant_id="p2"><send>st2</send><recv>st1</recv></participantstreamassoc>
</recording>"#;

fn invite(call_id: &str) -> Vec<u8> {
    let body = format!(
        "--b1\r\nContent-Type: application/sdp\r\n\r\n{SDP}--b1\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n{MD}\r\n--b1--\r\n"
    );
    format!(
        "INVITE sip:srs@10.2.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK{call_id}\r\nFrom: <sip:src@10.1.1.1>;tag=a1\r\nTo: <sip:srs@10.2.2.2>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContact: <sip:src@10.1.1.1>;+sip.src\r\nRequire: siprec\r\nContent-Type: multipart/mixed;boundary=b1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn in_dialog(method: &str, call_id: &str, tag: &str, cseq: u32) -> Vec<u8> {
    format!(
        "{method} sip:srs@10.2.2.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1:5060;branch=z9hG4bK{method}{call_id}\r\nFrom: <sip:src@10.1.1.1>;tag=a1\r\nTo: <sip:srs@10.2.2.2>;tag={tag}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let msg = invite("bench-1");
    let limits = Limits::default();
    let mut g = c.benchmark_group("signalling");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_invite_and_bodies", |b| {
        b.iter(|| {
            let Ok(SipMessage::Request(r)) = parse_message(black_box(&msg), &limits) else {
                panic!("bench input must parse")
            };
            let parts = body_parts(r.content_type().as_ref(), &r.body, &limits).unwrap();
            let sdp = earshot::sdp::parse(std::str::from_utf8(&parts[0].body).unwrap()).unwrap();
            let md = earshot::metadata::parse(&parts[1].body, &Default::default()).unwrap();
            black_box((sdp, md))
        })
    });
    let peer = Peer {
        transport: Transport::Udp,
        addr: "10.1.1.1:5060".parse().unwrap(),
    };
    let cfg = UasConfig::new(
        "10.2.2.2:5060".parse().unwrap(),
        "10.2.2.2".parse().unwrap(),
    );
    let mut uas = Uas::new(cfg, PortPool::new(40000, 49999).unwrap());
    let mut n = 0u64;
    g.bench_function("uas_whole_call", |b| {
        b.iter(|| {
            n += 1;
            let id = format!("call-{n}");
            let now = Instant::now();
            uas.handle_message(now, peer, &invite(&id));
            uas.accept(now, &CallId::new(id.clone()));
            let mut tag = String::new();
            while let Some(o) = uas.poll_output() {
                if let UasOutput::Transmit { bytes, .. } = o {
                    if let Ok(SipMessage::Response(r)) = parse_message(&bytes, &limits) {
                        if r.status == 200 {
                            tag = r.to_tag().unwrap_or_default().to_owned();
                        }
                    }
                }
            }
            uas.handle_message(now, peer, &in_dialog("ACK", &id, &tag, 1));
            uas.handle_message(now, peer, &in_dialog("BYE", &id, &tag, 2));
            uas.confirm_end(now, &CallId::new(id));
            while uas.poll_output().is_some() {}
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
