//! A SIPREC SRC load generator for Earshot, over UDP on loopback.
//!
//! Places `--calls` recording sessions at `--cps` attempts per second. Each
//! INVITE carries SDP with two `sendonly` PCMU streams (`a=label:1` and
//! `a=label:2`) and RFC 7865 metadata with two participants, each sending one
//! of the streams. Once a call is answered (ACKed), both streams send PCMU
//! in 20 ms packets at real pace (the audio file, μ-law encoded, looping)
//! until `--hold` seconds after the answer; then BYE. With `--audio-b` the
//! second stream plays that file instead, in step with the first from the
//! same random offset (a two-party conversation such as
//! `tests/audio/call-talk/{a,b}.wav`); with one file the two streams play
//! it half its length apart (both legs talking all the time).
//!
//! RTP comes from 1–4 sender threads (`--rtp-threads`): every stream is
//! aligned to the same 20 ms tick and every tick sends one packet per
//! stream with `sendmmsg` batches from one non-blocking socket per thread.
//! Payloads are pre-encoded and sent in place (header and payload are two
//! iovecs). The sender measures its own lateness (how long after its due
//! time each tick started), so the figures say whether the generator kept
//! real pace.
//!
//! ```sh
//! cargo run --release -p earshot-actors --example loadgen -- \
//!     --target 127.0.0.1:5060 --calls 100 --cps 50 --hold 20 --json
//! ```
//!
//! Only loopback targets are accepted.

use clap::Parser;
use earshot::sip::{body_parts, parse_message, Limits, Method, Request, Response, SipMessage};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

/// RTP packet period.
const PTIME: Duration = Duration::from_millis(20);
/// Samples (and μ-law bytes) per packet at 8 kHz.
const SAMPLES: usize = 160;
/// SIP timers (RFC 3261): T1, T2 and the transaction timeout (64·T1).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
const TIMEOUT: Duration = Duration::from_secs(32);
/// Most messages handed to one `sendmmsg`.
const BATCH: usize = 1024;
/// Time between stopping a call's RTP and its BYE.
const RTP_DRAIN: Duration = Duration::from_millis(60);
/// A sender this far behind skips ticks instead of bursting them.
const MAX_BEHIND: Duration = Duration::from_millis(500);

#[derive(Parser, Debug)]
#[command(about = "SIPREC SRC load generator (UDP, loopback only)")]
struct Args {
    /// The engine's SIP address (must be a loopback address).
    #[arg(long, default_value = "127.0.0.1:5060")]
    target: SocketAddr,
    /// Calls to place.
    #[arg(long, default_value_t = 100)]
    calls: usize,
    /// Call attempts per second.
    #[arg(long, default_value_t = 100.0)]
    cps: f64,
    /// Seconds each call lasts after it is answered.
    #[arg(long, default_value_t = 30.0)]
    hold: f64,
    /// 8 kHz mono 16-bit WAV to stream (default: tests/audio/monologue.wav,
    /// else a synthetic speech-like signal).
    #[arg(long)]
    audio: Option<PathBuf>,
    /// The second participant's audio (same format), played in step with
    /// `--audio` on the second stream.
    #[arg(long, requires = "audio")]
    audio_b: Option<PathBuf>,
    /// Our address, for SIP and RTP (must be a loopback address).
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: IpAddr,
    /// RTP sender threads (1–4).
    #[arg(long, default_value_t = 1)]
    rtp_threads: usize,
    /// Print one JSON summary line at the end.
    #[arg(long)]
    json: bool,
    /// Percent of calls that also carry bad input: a malformed SIP request
    /// to the engine when the call starts, and junk UDP (random bytes,
    /// wrong RTP version, unknown payload type) to its RTP ports once a
    /// second while it lasts. The good calls must not notice.
    #[arg(long, default_value_t = 0.0)]
    junk_pct: f64,
}

/// Malformed SIP requests sent with `--junk-pct` (each must get a 4xx or
/// be dropped, never disturb another call).
const JUNK_SIP: &[&[u8]] = &[
    b"INVITE sip:srs@127.0.0.1 SIP/2.0\r\nVia: \r\nCSeq: x\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"INVITE sip:srs@127.0.0.1 SIP/2.0\r\nContent-Length: 99999\r\n\r\nv=0",
    b"BYE sip:srs@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKjunk\r\nCall-ID: junk\r\n\r\n",
    b"\x00\x01\x02\xff\xfe",
];

// ---------------------------------------------------------------------------
// Audio

/// The audio to stream, μ-law encoded, a whole number of packets long.
fn load_audio(path: Option<&Path>) -> anyhow::Result<(Vec<u8>, String)> {
    let candidates: Vec<PathBuf> = match path {
        Some(p) => vec![p.to_path_buf()],
        None => vec![
            PathBuf::from("tests/audio/monologue.wav"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/audio/monologue.wav"),
        ],
    };
    for p in &candidates {
        if !p.exists() {
            continue;
        }
        let mut r =
            hound::WavReader::open(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        let spec = r.spec();
        if spec.sample_rate != 8000
            || spec.channels != 1
            || spec.bits_per_sample != 16
            || spec.sample_format != hound::SampleFormat::Int
        {
            anyhow::bail!(
                "{}: need 8 kHz mono 16-bit PCM, got {} Hz, {} channel(s), {} bits",
                p.display(),
                spec.sample_rate,
                spec.channels,
                spec.bits_per_sample
            );
        }
        let samples: Vec<i16> = r.samples::<i16>().collect::<Result<_, _>>()?;
        if samples.len() < SAMPLES {
            anyhow::bail!("{}: shorter than one packet", p.display());
        }
        return Ok((encode(&samples), p.display().to_string()));
    }
    if path.is_some() {
        anyhow::bail!("{}: not found", candidates[0].display());
    }
    Ok((encode(&synthetic()), "synthetic".to_string()))
}

/// Ten seconds of something VAD calls speech: a voiced harmonic tone with a
/// syllable-rate envelope, in phrases separated by pauses.
fn synthetic() -> Vec<i16> {
    let rate = 8000.0f32;
    (0..80_000)
        .map(|n| {
            let t = n as f32 / rate;
            let phrase = (t % 3.0) < 2.2;
            if !phrase {
                return 0;
            }
            let f0 = 140.0 + 20.0 * (2.0 * std::f32::consts::PI * 0.5 * t).sin();
            let voiced: f32 = (1..=6)
                .map(|k| (2.0 * std::f32::consts::PI * f0 * k as f32 * t).sin() / k as f32)
                .sum();
            let env = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * 4.0 * t).cos();
            (voiced * env * 6000.0) as i16
        })
        .collect()
}

fn encode(samples: &[i16]) -> Vec<u8> {
    let whole = samples.len() / SAMPLES * SAMPLES;
    samples[..whole]
        .iter()
        .map(|&s| earshot::codec::g711::linear_to_ulaw(s))
        .collect()
}

// ---------------------------------------------------------------------------
// RTP senders

enum Cmd {
    /// Start streams of call `key` to these addresses.
    Add {
        key: usize,
        dests: Vec<SocketAddrV4>,
    },
    /// Stop every stream of call `key`.
    Remove {
        key: usize,
    },
    Stop,
}

struct Tx {
    key: usize,
    dest: libc::sockaddr_in,
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// Which audio track this stream plays.
    track: usize,
    /// Offset of the next payload in the track.
    off: usize,
    first: bool,
    live: bool,
}

#[derive(Debug, Default, Clone)]
struct SenderStats {
    packets: u64,
    ticks: u64,
    /// Ticks that started a whole period (20 ms) or more after their due time.
    late_ticks: u64,
    /// Ticks skipped because the sender was more than `MAX_BEHIND` behind.
    skipped_ticks: u64,
    skipped_packets: u64,
    /// Lateness histogram, 1 ms buckets (last bucket: ≥ 999 ms).
    lateness_ms: Vec<u64>,
    max_lateness: Duration,
    /// Longest time one tick's sending took.
    max_tick_work: Duration,
    /// Total time spent sending (to average per tick).
    tick_work: Duration,
    would_block: u64,
    send_errors: u64,
    first_packet: Option<Instant>,
    last_packet: Option<Instant>,
    /// Packets sent in each second since the epoch.
    per_second: Vec<u64>,
}

fn sockaddr(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is a valid value.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as libc::sa_family_t;
    s.sin_port = a.port().to_be();
    s.sin_addr = libc::in_addr {
        s_addr: u32::from(*a.ip()).to_be(),
    };
    s
}

fn rtp_sender(
    local: Ipv4Addr,
    epoch: Instant,
    audio: std::sync::Arc<Vec<Vec<u8>>>,
    cmds: Receiver<Cmd>,
) -> anyhow::Result<SenderStats> {
    use std::os::fd::AsRawFd;
    // Every track has this length, a whole number of packets.
    let len = audio[0].len();
    let sock = UdpSocket::bind(SocketAddrV4::new(local, 0))?;
    sock.set_nonblocking(true)?;
    let size: libc::c_int = 4 << 20;
    // SAFETY: valid fd, option value points to a c_int of the given size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    let fd = sock.as_raw_fd();
    let mut st = SenderStats {
        lateness_ms: vec![0; 1000],
        ..Default::default()
    };
    let mut txs: Vec<Tx> = Vec::new();
    let mut headers: Vec<[u8; 12]> = Vec::new();
    let mut iovs: Vec<libc::iovec> = Vec::new();
    let mut msgs: Vec<libc::mmsghdr> = Vec::new();
    let mut tick: u64 = 0;
    loop {
        // Commands first, so a stream starts on the next tick after its ACK.
        let mut stop = false;
        let mut removed = false;
        loop {
            match cmds.try_recv() {
                Ok(Cmd::Add { key, dests }) => {
                    let frames = len / SAMPLES;
                    let at = rand::random::<usize>() % frames;
                    for (i, d) in dests.into_iter().enumerate() {
                        let track = i % audio.len();
                        // One track: the streams half its length apart;
                        // one per stream: in step (a conversation).
                        let start = if audio.len() == 1 {
                            (at + i * frames / 2) % frames
                        } else {
                            at
                        };
                        txs.push(Tx {
                            key,
                            dest: sockaddr(d),
                            ssrc: rand::random(),
                            seq: rand::random(),
                            ts: rand::random(),
                            track,
                            off: start * SAMPLES,
                            first: true,
                            live: true,
                        });
                    }
                }
                Ok(Cmd::Remove { key }) => {
                    for t in txs.iter_mut().filter(|t| t.key == key) {
                        t.live = false;
                        removed = true;
                    }
                }
                Ok(Cmd::Stop) | Err(TryRecvError::Disconnected) => {
                    stop = true;
                    break;
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        if stop {
            break;
        }
        if removed {
            txs.retain(|t| t.live);
        }

        // Wait for this tick's due time.
        let due = epoch + PTIME * (tick as u32);
        let now = Instant::now();
        if now < due {
            thread::sleep(due - now);
        }
        let now = Instant::now();
        let late = now.saturating_duration_since(due);
        if late > MAX_BEHIND {
            // Too far behind: skip to the current tick; the skipped packets
            // are never sent (the engine will count them lost).
            let behind = (late.as_micros() / PTIME.as_micros()) as u64;
            st.skipped_ticks += behind;
            st.skipped_packets += behind * txs.len() as u64;
            for t in txs.iter_mut() {
                t.seq = t.seq.wrapping_add(behind as u16);
                t.ts =
                    t.ts.wrapping_add((behind as u32).wrapping_mul(SAMPLES as u32));
                t.off = (t.off + behind as usize * SAMPLES) % len;
            }
            tick += behind;
            continue;
        }
        st.ticks += 1;
        if late >= PTIME {
            st.late_ticks += 1;
        }
        st.max_lateness = st.max_lateness.max(late);
        let bucket = (late.as_millis() as usize).min(999);
        st.lateness_ms[bucket] += 1;
        tick += 1;
        if txs.is_empty() {
            continue;
        }

        // Headers for every stream, then one message of two iovecs each.
        headers.clear();
        for t in txs.iter_mut() {
            let mut h = [0u8; 12];
            h[0] = 0x80;
            h[1] = if t.first { 0x80 } else { 0x00 }; // marker, PT 0 (PCMU)
            h[2..4].copy_from_slice(&t.seq.to_be_bytes());
            h[4..8].copy_from_slice(&t.ts.to_be_bytes());
            h[8..12].copy_from_slice(&t.ssrc.to_be_bytes());
            headers.push(h);
        }
        iovs.clear();
        for (t, h) in txs.iter().zip(headers.iter()) {
            iovs.push(libc::iovec {
                iov_base: h.as_ptr() as *mut libc::c_void,
                iov_len: h.len(),
            });
            iovs.push(libc::iovec {
                iov_base: audio[t.track][t.off..t.off + SAMPLES].as_ptr() as *mut libc::c_void,
                iov_len: SAMPLES,
            });
        }
        msgs.clear();
        for (i, t) in txs.iter_mut().enumerate() {
            // SAFETY: plain old data.
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_name = &mut t.dest as *mut libc::sockaddr_in as *mut libc::c_void;
            m.msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            m.msg_hdr.msg_iov = &mut iovs[2 * i] as *mut libc::iovec;
            m.msg_hdr.msg_iovlen = 2;
            msgs.push(m);
        }
        let work_start = Instant::now();
        let mut sent = 0usize;
        let mut blocked_spins = 0u32;
        while sent < msgs.len() {
            let n = (msgs.len() - sent).min(BATCH);
            // SAFETY: msgs[sent..sent + n] are initialised mmsghdrs whose
            // pointers (dest, iovecs, headers, audio) outlive the call.
            let r =
                unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr().add(sent), n as libc::c_uint, 0) };
            if r > 0 {
                sent += r as usize;
                continue;
            }
            let err = std::io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EAGAIN) => {
                    st.would_block += 1;
                    blocked_spins += 1;
                    if blocked_spins > 200 {
                        // 200 × 50 µs: give up on the rest of this tick.
                        st.send_errors += (msgs.len() - sent) as u64;
                        break;
                    }
                    thread::sleep(Duration::from_micros(50));
                }
                Some(libc::EINTR) => {}
                _ => {
                    // This one message fails; skip it.
                    st.send_errors += 1;
                    sent += 1;
                }
            }
        }
        let done = Instant::now();
        st.max_tick_work = st.max_tick_work.max(done - work_start);
        st.tick_work += done - work_start;
        st.packets += sent as u64;
        let sec = due.duration_since(epoch).as_secs() as usize;
        if st.per_second.len() <= sec {
            st.per_second.resize(sec + 1, 0);
        }
        st.per_second[sec] += sent as u64;
        if sent > 0 {
            st.first_packet.get_or_insert(work_start);
            st.last_packet = Some(done);
        }
        for t in txs.iter_mut() {
            t.first = false;
            t.seq = t.seq.wrapping_add(1);
            t.ts = t.ts.wrapping_add(SAMPLES as u32);
            t.off += SAMPLES;
            if t.off + SAMPLES > len {
                t.off = 0;
            }
        }
    }
    Ok(st)
}

// ---------------------------------------------------------------------------
// Signalling

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Inviting,
    Answered,
    /// RTP stopped; BYE after the sender's next tick, so no packet of the
    /// call reaches the engine after its BYE.
    Stopping,
    Byeing,
    Done,
}

struct Call {
    call_id: String,
    from_tag: String,
    invite_branch: String,
    invite: Vec<u8>,
    first_sent: Instant,
    next_retx: Instant,
    retx: Duration,
    provisional: bool,
    phase: Phase,
    /// ACK sent for the final response (re-sent on retransmissions).
    ack: Option<Vec<u8>>,
    bye: Option<Vec<u8>>,
    bye_at: Instant,
    bye_sent: Instant,
    rtp: bool,
    /// `--junk-pct`: send junk to this call's RTP ports.
    junk: bool,
    junk_dests: Vec<SocketAddrV4>,
    next_junk: Instant,
}

#[derive(Debug, Default)]
struct SipStats {
    attempted: usize,
    answered: usize,
    failed_status: usize,
    failed_timeout: usize,
    no_media: usize,
    bye_ok: usize,
    bye_failed: usize,
    bye_timeout: usize,
    ended_by_engine: usize,
    options_answered: usize,
    invite_retransmits: u64,
    bye_retransmits: u64,
    unparsable: u64,
    response_ms: Vec<f64>,
    statuses: HashMap<u16, usize>,
    junk_sip_sent: u64,
    junk_rtp_sent: u64,
}

fn token() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Something that looks like an RFC 7865 id (base64 of 16 bytes).
fn b64_id() -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s: String = (0..22)
        .map(|_| A[rand::random::<usize>() % 64] as char)
        .collect();
    s.push_str("==");
    s
}

fn invite(
    local: SocketAddr,
    target: SocketAddr,
    call_id: &str,
    from_tag: &str,
    branch: &str,
    n: usize,
) -> Vec<u8> {
    let ip = local.ip();
    let boundary = "earshot-loadgen-boundary";
    let sdp = format!(
        "v=0\r\n\
         o=LoadGen {sess} {sess} IN IP4 {ip}\r\n\
         s=SIPREC\r\n\
         c=IN IP4 {ip}\r\n\
         t=0 0\r\n\
         m=audio {p1} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ptime:20\r\n\
         a=label:1\r\n\
         a=sendonly\r\n\
         m=audio {p2} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\n\
         a=fmtp:101 0-15\r\n\
         a=ptime:20\r\n\
         a=label:2\r\n\
         a=sendonly\r\n",
        sess = 1_000_000 + n,
        p1 = 20_000 + 4 * (n % 10_000),
        p2 = 20_002 + 4 * (n % 10_000),
    );
    let (group, session) = (b64_id(), b64_id());
    let (alice, bob) = (b64_id(), b64_id());
    let (s1, s2) = (b64_id(), b64_id());
    let (a1, a2) = (b64_id(), b64_id());
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    let metadata = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
         <recording xmlns=\"urn:ietf:params:xml:ns:recording:1\">\r\n\
         <datamode>complete</datamode>\r\n\
         <group group_id=\"{group}\"><associate-time>{now}</associate-time></group>\r\n\
         <session session_id=\"{session}\"><sipSessionID>{orig};remote=lg{n}</sipSessionID>\
         <group-ref>{group}</group-ref><start-time>{now}</start-time></session>\r\n\
         <participant participant_id=\"{alice}\"><nameID aor=\"sip:caller{n}@example.com\">\
         <name xml:lang=\"en\">Caller {n}</name></nameID></participant>\r\n\
         <participant participant_id=\"{bob}\"><nameID aor=\"sip:callee{n}@example.com\">\
         <name xml:lang=\"en\">Callee {n}</name></nameID></participant>\r\n\
         <stream stream_id=\"{s1}\" session_id=\"{session}\"><label>1</label></stream>\r\n\
         <stream stream_id=\"{s2}\" session_id=\"{session}\"><label>2</label></stream>\r\n\
         <participantstreamassoc participantstreamassoc_id=\"{a1}\" participant_id=\"{alice}\">\
         <send>{s1}</send><recv>{s2}</recv></participantstreamassoc>\r\n\
         <participantstreamassoc participantstreamassoc_id=\"{a2}\" participant_id=\"{bob}\">\
         <send>{s2}</send><recv>{s1}</recv></participantstreamassoc>\r\n\
         </recording>\r\n",
        orig = token(),
    );
    let body = format!(
        "--{boundary}\r\n\
         Content-Type: application/sdp\r\n\r\n\
         {sdp}\r\n\
         --{boundary}\r\n\
         Content-Type: application/rs-metadata+xml\r\n\
         Content-Disposition: recording-session\r\n\r\n\
         {metadata}\r\n\
         --{boundary}--\r\n"
    );
    format!(
        "INVITE sip:srs@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"LoadGen SRC\" <sip:src@{local}>;tag={from_tag}\r\n\
         To: <sip:srs@{target}>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:src@{local};transport=udp>;+sip.src\r\n\
         Require: siprec\r\n\
         Allow: INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE\r\n\
         User-Agent: earshot-loadgen\r\n\
         Content-Type: multipart/mixed;boundary={boundary}\r\n\
         Content-Length: {len}\r\n\r\n\
         {body}",
        len = body.len(),
    )
    .into_bytes()
}

/// An in-dialog request (ACK for a 2xx, BYE) to the engine's Contact.
#[allow(clippy::too_many_arguments)]
fn in_dialog(
    method: &str,
    cseq: u32,
    uri: &str,
    local: SocketAddr,
    target: SocketAddr,
    call: &Call,
    to_tag: &str,
    branch: &str,
) -> Vec<u8> {
    format!(
        "{method} {uri} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"LoadGen SRC\" <sip:src@{local}>;tag={from}\r\n\
         To: <sip:srs@{target}>;tag={to_tag}\r\n\
         Call-ID: {cid}\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n",
        from = call.from_tag,
        cid = call.call_id,
    )
    .into_bytes()
}

/// ACK for a non-2xx final response: same branch as the INVITE, To as in
/// the response.
fn ack_non2xx(local: SocketAddr, target: SocketAddr, call: &Call, resp: &Response) -> Vec<u8> {
    let to = resp
        .headers
        .get("To")
        .map(str::to_string)
        .unwrap_or_else(|| format!("<sip:srs@{target}>"));
    format!(
        "ACK sip:srs@{target} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"LoadGen SRC\" <sip:src@{local}>;tag={from}\r\n\
         To: {to}\r\n\
         Call-ID: {cid}\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n",
        branch = call.invite_branch,
        from = call.from_tag,
        cid = call.call_id,
    )
    .into_bytes()
}

/// The URI inside a Contact header value (`<uri>;params` or bare `uri`).
fn contact_uri(v: &str) -> Option<String> {
    let v = v.trim();
    if let Some(start) = v.find('<') {
        let end = v[start..].find('>')? + start;
        return Some(v[start + 1..end].to_string());
    }
    Some(v.split(';').next()?.trim().to_string()).filter(|s| !s.is_empty())
}

/// RTP destinations of label 1 and label 2 from the answer (missing or
/// port-0 streams are left out).
fn answer_dests(resp: &Response, target: SocketAddr) -> Vec<SocketAddrV4> {
    let limits = Limits::default();
    let ct = resp
        .headers
        .get("Content-Type")
        .and_then(earshot::sip::MediaType::parse);
    let Ok(parts) = body_parts(ct.as_ref(), &resp.body, &limits) else {
        return vec![];
    };
    let Some(sdp) = parts.iter().find(|p| p.mime() == Some("application/sdp")) else {
        return vec![];
    };
    let Ok(text) = std::str::from_utf8(&sdp.body) else {
        return vec![];
    };
    let Ok(sd) = earshot::sdp::parse(text) else {
        return vec![];
    };
    let fallback = match target.ip() {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(_) => Ipv4Addr::LOCALHOST,
    };
    let mut out = vec![];
    for label in ["1", "2"] {
        let (i, m) = match sd
            .media
            .iter()
            .enumerate()
            .find(|(_, m)| m.label().is_some_and(|l| l.0 == label))
        {
            Some(x) => x,
            None => match sd.media.get(out.len()) {
                Some(m) => (out.len(), m),
                None => continue,
            },
        };
        if m.port == 0 {
            continue;
        }
        // Loopback only: anything else in c= is replaced by the target's IP.
        let ip = match sd.connection_addr(i) {
            Some(IpAddr::V4(a)) if a.is_loopback() => a,
            _ => fallback,
        };
        out.push(SocketAddrV4::new(ip, m.port));
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Gen {
    sock: UdpSocket,
    local: SocketAddr,
    target: SocketAddr,
    hold: Duration,
    calls: Vec<Call>,
    by_id: HashMap<String, usize>,
    senders: Vec<Sender<Cmd>>,
    stats: SipStats,
    limits: Limits,
    /// Every this many calls is a junk call (`--junk-pct`); 0: none.
    junk_every: usize,
    rng: u64,
}

impl Gen {
    fn send(&self, bytes: &[u8], to: SocketAddr) {
        // A full socket buffer loses this message; SIP retransmits.
        let _ = self.sock.send_to(bytes, to);
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// One junk datagram for an RTP port: random bytes, an RTP header with
    /// the wrong version, or a valid header with an unknown payload type.
    fn junk_datagram(&mut self) -> Vec<u8> {
        let r = self.random();
        let len = 1 + (r >> 8) as usize % 300;
        let mut b: Vec<u8> = (0..len).map(|_| self.random() as u8).collect();
        match r % 3 {
            0 => {}
            1 => b[0] = 0x00, // version 0
            _ => {
                b.resize(b.len().max(12 + 20), 0);
                b[0] = 0x80;
                b[1] = 99; // not negotiated
            }
        }
        b
    }

    fn send_junk_rtp(&mut self, i: usize) {
        let dests = self.calls[i].junk_dests.clone();
        for d in dests {
            let b = self.junk_datagram();
            self.send(&b, SocketAddr::V4(d));
            self.stats.junk_rtp_sent += 1;
        }
    }

    fn start_call(&mut self, n: usize, now: Instant) {
        let junk = self.junk_every > 0 && n % self.junk_every == self.junk_every / 2;
        if junk {
            let bad = JUNK_SIP[(n / self.junk_every) % JUNK_SIP.len()];
            self.send(bad, self.target);
            self.stats.junk_sip_sent += 1;
        }
        let call_id = format!("lg-{}-{n}@{}", token(), self.local.ip());
        let from_tag = token();
        let branch = format!("z9hG4bK{}", token());
        let bytes = invite(self.local, self.target, &call_id, &from_tag, &branch, n);
        self.send(&bytes, self.target);
        self.by_id.insert(call_id.clone(), self.calls.len());
        self.calls.push(Call {
            call_id,
            from_tag,
            invite_branch: branch,
            invite: bytes,
            first_sent: now,
            next_retx: now + T1,
            retx: T1,
            provisional: false,
            phase: Phase::Inviting,
            ack: None,
            bye: None,
            bye_at: now,
            bye_sent: now,
            rtp: false,
            junk,
            junk_dests: vec![],
            next_junk: now,
        });
        self.stats.attempted += 1;
    }

    fn stop_rtp(&mut self, i: usize) {
        if self.calls[i].rtp {
            self.calls[i].rtp = false;
            let _ = self.senders[i % self.senders.len()].send(Cmd::Remove { key: i });
        }
    }

    fn timers(&mut self, now: Instant) {
        for i in 0..self.calls.len() {
            match self.calls[i].phase {
                Phase::Inviting => {
                    if now.duration_since(self.calls[i].first_sent) > TIMEOUT {
                        self.calls[i].phase = Phase::Done;
                        self.stats.failed_timeout += 1;
                    } else if !self.calls[i].provisional && now >= self.calls[i].next_retx {
                        let c = &mut self.calls[i];
                        c.retx *= 2;
                        c.next_retx = now + c.retx;
                        self.stats.invite_retransmits += 1;
                        self.send(&self.calls[i].invite, self.target);
                    }
                }
                Phase::Answered
                    if self.calls[i].junk
                        && now >= self.calls[i].next_junk
                        && now < self.calls[i].bye_at =>
                {
                    self.calls[i].next_junk = now + Duration::from_secs(1);
                    self.send_junk_rtp(i);
                }
                Phase::Answered if now >= self.calls[i].bye_at => {
                    self.stop_rtp(i);
                    self.calls[i].phase = Phase::Stopping;
                    self.calls[i].next_retx = now + RTP_DRAIN;
                }
                Phase::Stopping if now >= self.calls[i].next_retx => {
                    let c = &mut self.calls[i];
                    c.phase = Phase::Byeing;
                    c.bye_sent = now;
                    c.retx = T1;
                    c.next_retx = now + T1;
                    if let Some(b) = &self.calls[i].bye {
                        self.send(b, self.target);
                    }
                }
                Phase::Byeing => {
                    if now.duration_since(self.calls[i].bye_sent) > TIMEOUT {
                        self.calls[i].phase = Phase::Done;
                        self.stats.bye_timeout += 1;
                    } else if now >= self.calls[i].next_retx {
                        let c = &mut self.calls[i];
                        c.retx = (c.retx * 2).min(T2);
                        c.next_retx = now + c.retx;
                        self.stats.bye_retransmits += 1;
                        if let Some(b) = &self.calls[i].bye {
                            self.send(b, self.target);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr, now: Instant) {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive
        }
        match parse_message(bytes, &self.limits) {
            Ok(SipMessage::Response(r)) => self.on_response(r, now),
            Ok(SipMessage::Request(r)) => self.on_request(r, from),
            Err(_) => self.stats.unparsable += 1,
        }
    }

    fn on_request(&mut self, req: Request, from: SocketAddr) {
        match req.method {
            Method::Ack => {}
            Method::Bye => {
                let resp = Response::to_request(&req, 200, "OK", None);
                self.send(&resp.to_bytes(), from);
                if let Some(&i) = req.call_id().and_then(|c| self.by_id.get(c)) {
                    if matches!(
                        self.calls[i].phase,
                        Phase::Answered | Phase::Stopping | Phase::Byeing
                    ) {
                        self.stop_rtp(i);
                        self.calls[i].phase = Phase::Done;
                        self.stats.ended_by_engine += 1;
                    }
                }
            }
            Method::Options => {
                self.stats.options_answered += 1;
                let resp = Response::to_request(&req, 200, "OK", None);
                self.send(&resp.to_bytes(), from);
            }
            Method::Invite => {
                let resp = Response::to_request(&req, 488, "Not Acceptable Here", None);
                self.send(&resp.to_bytes(), from);
            }
            _ => {
                let resp = Response::to_request(&req, 200, "OK", None);
                self.send(&resp.to_bytes(), from);
            }
        }
    }

    fn on_response(&mut self, r: Response, now: Instant) {
        let Some(&i) = r.call_id().and_then(|c| self.by_id.get(c)) else {
            return;
        };
        let Some((_, method)) = r.cseq() else {
            return;
        };
        match method {
            Method::Invite => self.on_invite_response(i, r, now),
            Method::Bye if r.status >= 200 && self.calls[i].phase == Phase::Byeing => {
                self.calls[i].phase = Phase::Done;
                if (200..300).contains(&r.status) {
                    self.stats.bye_ok += 1;
                } else {
                    self.stats.bye_failed += 1;
                }
            }
            _ => {}
        }
    }

    fn on_invite_response(&mut self, i: usize, r: Response, now: Instant) {
        if r.status < 200 {
            self.calls[i].provisional = true;
            return;
        }
        if self.calls[i].phase != Phase::Inviting {
            // A retransmitted final response: ACK again.
            if let Some(a) = &self.calls[i].ack {
                self.send(a, self.target);
            }
            return;
        }
        *self.stats.statuses.entry(r.status).or_default() += 1;
        if r.status >= 300 {
            let ack = ack_non2xx(self.local, self.target, &self.calls[i], &r);
            self.send(&ack, self.target);
            let c = &mut self.calls[i];
            c.ack = Some(ack);
            c.phase = Phase::Done;
            self.stats.failed_status += 1;
            return;
        }
        let ms = now.duration_since(self.calls[i].first_sent).as_secs_f64() * 1000.0;
        self.stats.response_ms.push(ms);
        self.stats.answered += 1;
        let to_tag = r.to_tag().unwrap_or_default().to_string();
        let uri = r
            .headers
            .get("Contact")
            .and_then(contact_uri)
            .unwrap_or_else(|| format!("sip:srs@{}", self.target));
        let ack_branch = format!("z9hG4bK{}", token());
        let bye_branch = format!("z9hG4bK{}", token());
        let c = &self.calls[i];
        let ack = in_dialog(
            "ACK",
            1,
            &uri,
            self.local,
            self.target,
            c,
            &to_tag,
            &ack_branch,
        );
        let bye = in_dialog(
            "BYE",
            2,
            &uri,
            self.local,
            self.target,
            c,
            &to_tag,
            &bye_branch,
        );
        self.send(&ack, self.target);
        let dests = answer_dests(&r, self.target);
        let c = &mut self.calls[i];
        c.ack = Some(ack);
        c.bye = Some(bye);
        c.phase = Phase::Answered;
        c.bye_at = now + self.hold;
        if c.junk {
            c.junk_dests = dests.clone();
        }
        if dests.is_empty() {
            self.stats.no_media += 1;
        } else {
            c.rtp = true;
            let _ = self.senders[i % self.senders.len()].send(Cmd::Add { key: i, dests });
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.target.ip().is_loopback() {
        anyhow::bail!("--target must be a loopback address (got {})", args.target);
    }
    let local_v4 = match args.local_ip {
        IpAddr::V4(a) if a.is_loopback() => a,
        other => anyhow::bail!("--local-ip must be an IPv4 loopback address (got {other})"),
    };
    if args.calls == 0 || args.cps <= 0.0 || args.hold < 0.0 || !args.hold.is_finite() {
        anyhow::bail!("need --calls > 0, --cps > 0 and --hold >= 0");
    }
    let threads = args.rtp_threads.clamp(1, 4);
    let (audio, mut audio_name) = load_audio(args.audio.as_deref())?;
    let mut tracks = vec![audio];
    if let Some(b) = &args.audio_b {
        let (b, name) = load_audio(Some(b))?;
        tracks.push(b);
        audio_name = format!("{audio_name} + {name}");
        // Same length, so both streams wrap together (silence pads).
        let n = tracks.iter().map(Vec::len).max().unwrap_or(0);
        let silence = earshot::codec::g711::linear_to_ulaw(0);
        for t in &mut tracks {
            t.resize(n, silence);
        }
    }
    let audio = std::sync::Arc::new(tracks);

    let sock = UdpSocket::bind(SocketAddrV4::new(local_v4, 0))?;
    sock.set_read_timeout(Some(Duration::from_millis(2)))?;
    let local = sock.local_addr()?;

    let epoch = Instant::now() + Duration::from_millis(50);
    let mut senders = vec![];
    let mut handles = vec![];
    for t in 0..threads {
        let (tx, rx) = mpsc::channel();
        let audio = audio.clone();
        senders.push(tx);
        handles.push(
            thread::Builder::new()
                .name(format!("rtp-send-{t}"))
                .spawn(move || rtp_sender(local_v4, epoch, audio, rx))?,
        );
    }

    let mut g = Gen {
        sock,
        local,
        target: args.target,
        hold: Duration::from_secs_f64(args.hold),
        calls: Vec::with_capacity(args.calls),
        by_id: HashMap::with_capacity(args.calls),
        senders,
        stats: SipStats::default(),
        limits: Limits::default(),
        junk_every: if args.junk_pct > 0.0 {
            (100.0 / args.junk_pct.min(100.0)).round().max(1.0) as usize
        } else {
            0
        },
        rng: 0x9e37_79b9_7f4a_7c15,
    };

    let t0 = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / args.cps);
    let ramp = gap.mul_f64(args.calls as f64);
    // Hard bound on the run: ramp, INVITE timeout, hold, BYE timeout.
    let deadline = t0 + ramp + TIMEOUT * 2 + g.hold + Duration::from_secs(10);
    let mut buf = vec![0u8; 65_536];
    let mut next_call = 0usize;
    let mut last_timers = t0;
    loop {
        let now = Instant::now();
        while next_call < args.calls && t0 + gap.mul_f64(next_call as f64) <= now {
            g.start_call(next_call, now);
            next_call += 1;
        }
        // Drain what is there (bounded), then timers.
        for _ in 0..256 {
            match g.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let now = Instant::now();
                    g.on_datagram(&buf[..n], from, now);
                    g.sock.set_read_timeout(Some(Duration::from_millis(1)))?;
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    break
                }
                Err(e) => {
                    // ICMP errors and the like: note and carry on.
                    g.stats.unparsable += 1;
                    tracing_free_warn(&e);
                    break;
                }
            }
        }
        let now = Instant::now();
        if now.duration_since(last_timers) >= Duration::from_millis(10) {
            g.timers(now);
            last_timers = now;
        }
        if next_call >= args.calls && g.calls.iter().all(|c| c.phase == Phase::Done) {
            break;
        }
        if now >= deadline {
            eprintln!("loadgen: run deadline reached; stopping");
            break;
        }
    }
    let elapsed = t0.elapsed();
    for s in &g.senders {
        let _ = s.send(Cmd::Stop);
    }
    let mut rtp = SenderStats {
        lateness_ms: vec![0; 1000],
        ..Default::default()
    };
    for h in handles {
        let s = h
            .join()
            .map_err(|_| anyhow::anyhow!("RTP sender panicked"))??;
        rtp.packets += s.packets;
        rtp.ticks += s.ticks;
        rtp.late_ticks += s.late_ticks;
        rtp.skipped_ticks += s.skipped_ticks;
        rtp.skipped_packets += s.skipped_packets;
        rtp.would_block += s.would_block;
        rtp.send_errors += s.send_errors;
        rtp.max_lateness = rtp.max_lateness.max(s.max_lateness);
        rtp.max_tick_work = rtp.max_tick_work.max(s.max_tick_work);
        rtp.tick_work += s.tick_work;
        if rtp.per_second.len() < s.per_second.len() {
            rtp.per_second.resize(s.per_second.len(), 0);
        }
        for (a, b) in rtp.per_second.iter_mut().zip(s.per_second.iter()) {
            *a += b;
        }
        for (a, b) in rtp.lateness_ms.iter_mut().zip(s.lateness_ms.iter()) {
            *a += b;
        }
        rtp.first_packet = match (rtp.first_packet, s.first_packet) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        rtp.last_packet = match (rtp.last_packet, s.last_packet) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    report(&args, &audio_name, &mut g.stats, &rtp, elapsed);
    Ok(())
}

fn tracing_free_warn(e: &std::io::Error) {
    eprintln!("loadgen: SIP socket: {e}");
}

fn lateness_percentile(hist: &[u64], p: f64) -> u64 {
    let total: u64 = hist.iter().sum();
    if total == 0 {
        return 0;
    }
    let want = ((total as f64) * p).ceil() as u64;
    let mut acc = 0;
    for (ms, &n) in hist.iter().enumerate() {
        acc += n;
        if acc >= want {
            return ms as u64;
        }
    }
    hist.len() as u64 - 1
}

/// User + system CPU time of this process so far, seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    ((t(u.ru_utime) + t(u.ru_stime)) * 100.0).round() / 100.0
}

fn report(args: &Args, audio: &str, s: &mut SipStats, rtp: &SenderStats, elapsed: Duration) {
    s.response_ms.sort_by(|a, b| a.total_cmp(b));
    let p50 = percentile(&s.response_ms, 0.50);
    let p99 = percentile(&s.response_ms, 0.99);
    let span = match (rtp.first_packet, rtp.last_packet) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let pps = if span > 0.0 {
        rtp.packets as f64 / span
    } else {
        0.0
    };
    let failed = s.failed_status + s.failed_timeout;
    // Busiest whole second: the steady rate once every call is up.
    let peak = rtp.per_second.iter().copied().max().unwrap_or(0);
    // Share of wall time the sender threads spent inside sendmmsg.
    let busy = if rtp.ticks > 0 {
        rtp.tick_work.as_secs_f64() * 100.0 / (rtp.ticks as f64 * PTIME.as_secs_f64())
    } else {
        0.0
    };
    let late_p99 = lateness_percentile(&rtp.lateness_ms, 0.99);
    let mut statuses: Vec<_> = s.statuses.iter().map(|(k, v)| (*k, *v)).collect();
    statuses.sort();
    if args.json {
        let v = serde_json::json!({
            "calls": args.calls,
            "cps": args.cps,
            "hold_s": args.hold,
            "audio": audio,
            "attempted": s.attempted,
            "answered": s.answered,
            "failed": failed,
            "failed_status": s.failed_status,
            "failed_timeout": s.failed_timeout,
            "no_media": s.no_media,
            "final_statuses": statuses.iter().map(|(k, v)| (k.to_string(), *v)).collect::<HashMap<_, _>>(),
            "bye_ok": s.bye_ok,
            "bye_failed": s.bye_failed,
            "bye_timeout": s.bye_timeout,
            "ended_by_engine": s.ended_by_engine,
            "junk_sip_sent": s.junk_sip_sent,
            "junk_rtp_sent": s.junk_rtp_sent,
            "invite_retransmits": s.invite_retransmits,
            "bye_retransmits": s.bye_retransmits,
            "cpu_s": cpu_seconds(),
            "sip_p50_ms": (p50 * 100.0).round() / 100.0,
            "sip_p99_ms": (p99 * 100.0).round() / 100.0,
            "rtp_packets_sent": rtp.packets,
            "rtp_pps": pps.round(),
            "rtp_pps_peak_1s": peak,
            "rtp_span_s": (span * 100.0).round() / 100.0,
            "sender_ticks": rtp.ticks,
            "sender_late_ticks": rtp.late_ticks,
            "sender_skipped_ticks": rtp.skipped_ticks,
            "sender_skipped_packets": rtp.skipped_packets,
            "sender_lateness_p99_ms": late_p99,
            "sender_lateness_max_ms": rtp.max_lateness.as_millis() as u64,
            "sender_max_tick_work_ms": (rtp.max_tick_work.as_secs_f64() * 1e4).round() / 10.0,
            "sender_busy_pct": (busy * 10.0).round() / 10.0,
            "send_would_block": rtp.would_block,
            "send_errors": rtp.send_errors,
            "elapsed_s": (elapsed.as_secs_f64() * 100.0).round() / 100.0,
        });
        println!("{v}");
        return;
    }
    println!(
        "calls: attempted {} answered {} failed {} (status {}, timeout {}), no media {}",
        s.attempted, s.answered, failed, s.failed_status, s.failed_timeout, s.no_media
    );
    println!("final statuses: {statuses:?}");
    println!(
        "BYE: ok {} failed {} timeout {}; ended by engine {}; retransmits INVITE {} BYE {}",
        s.bye_ok,
        s.bye_failed,
        s.bye_timeout,
        s.ended_by_engine,
        s.invite_retransmits,
        s.bye_retransmits
    );
    println!("SIP INVITE→200: p50 {p50:.2} ms, p99 {p99:.2} ms");
    println!(
        "RTP: {} packets sent over {span:.1} s = {pps:.0} packets/s, busiest second {peak} (audio: {audio})",
        rtp.packets
    );
    println!(
        "sender: {} ticks, {} late (≥ 20 ms), {} skipped ({} packets), lateness p99 {late_p99} ms max {} ms, longest tick {:.1} ms, sending {busy:.1}% of the time, would-block {}, send errors {}",
        rtp.ticks,
        rtp.late_ticks,
        rtp.skipped_ticks,
        rtp.skipped_packets,
        rtp.max_lateness.as_millis(),
        rtp.max_tick_work.as_secs_f64() * 1000.0,
        rtp.would_block,
        rtp.send_errors
    );
    println!("elapsed {:.1} s", elapsed.as_secs_f64());
}
