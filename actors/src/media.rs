//! The `MediaActor`: one per call, on one of the media arbiters (threads
//! separate from signalling and HTTP). It owns the call's RTP/RTCP sockets
//! and one [`StreamPipeline`] per answered m-line.
//!
//! Socket readers are futures on the same arbiter that hand each datagram
//! to the call's bounded crossbeam channel with `try_send`; a full channel
//! drops the datagram and counts it (`dropped_by_engine`). The actor drains
//! the channel on its 20 ms tick (no actor message per packet). Every 20 ms the actor plays
//! out what is due, writes the recordings (one WAV per stream, plus a
//! stereo WAV of the first two streams), and sends what happened (speech,
//! DTMF, hold, SSRC, pause events) to its `CallActor`; every second also
//! the streams' statistics and a WAV header flush (so a crash loses at most
//! the last second of audio).

use crate::call::{CallActor, MediaReport, StreamReport};
use actix::prelude::*;
use earshot::media::{MediaEvent, StreamConfig, StreamPipeline};
use earshot::sdp::{Codec, StreamAnswer};
use earshot::vad::VadConfig;
use std::cell::Cell;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufWriter;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Play-out period.
const TICK: Duration = Duration::from_millis(20);
/// Statistics and WAV header flush period, in ticks.
const REPORT_TICKS: u32 = 50;
/// Datagrams queued per call before the engine drops them (1.3 s of two
/// 20 ms streams; the queue is drained every tick).
pub const QUEUE: usize = 128;
/// Most audio one stereo side may run ahead of the other before the other
/// is padded with silence (1 s at 16 kHz).
const MAX_STEREO_SKEW: usize = 16_000;
/// Audio buffers larger than this (100 ms) are shrunk after a tick.
const MAX_KEPT_SAMPLES: usize = 1_600;

type Wav = hound::WavWriter<BufWriter<File>>;

/// Media settings shared by every call.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    pub jitter_depth: Duration,
    pub vad_mode: u8,
    pub strict_source: bool,
    /// Root of the recordings (`<data_dir>/recordings`).
    pub recordings_dir: PathBuf,
}

/// What a stream's RTCP port has told us.
#[derive(Debug, Clone, Copy, Default)]
pub struct RtcpSeen {
    pub packets: u64,
    pub malformed: u64,
    pub sender_reports: u64,
    /// Packet count of the SRC's latest sender report: what it says it sent.
    pub src_packets_sent: Option<u32>,
}

impl RtcpSeen {
    fn absorb(&mut self, datagram: &[u8]) {
        self.packets += 1;
        match earshot::rtp::parse_rtcp(datagram) {
            Ok(infos) => {
                for i in infos {
                    if let earshot::rtp::RtcpInfo::SenderReport(sr) = i {
                        self.sender_reports += 1;
                        self.src_packets_sent = Some(sr.packet_count);
                    }
                }
            }
            Err(_) => self.malformed += 1,
        }
    }
}

/// What the call hands its media actor for one stream.
pub struct StreamSetup {
    pub answer: StreamAnswer,
    /// RTP and (best effort) RTCP sockets; `None` for a stream whose
    /// sockets the media actor already reads.
    pub sockets: Option<(std::net::UdpSocket, Option<std::net::UdpSocket>)>,
}

struct Stream {
    index: usize,
    label: String,
    pipeline: StreamPipeline,
    dropped: Rc<Cell<u64>>,
    rtcp: Rc<Cell<RtcpSeen>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    wav: Option<Wav>,
    path: PathBuf,
    /// This tick's new audio.
    audio: Vec<f32>,
}

pub struct MediaActor {
    call: Addr<CallActor>,
    cfg: MediaConfig,
    start: Instant,
    dir: PathBuf,
    /// Sockets and answers waiting for `started` (they must be registered
    /// on this arbiter's runtime).
    pending: Vec<StreamSetup>,
    streams: Vec<Stream>,
    stereo: Option<Wav>,
    stereo_path: Option<PathBuf>,
    /// Left/right samples not yet written as stereo frames.
    left: Vec<f32>,
    right: Vec<f32>,
    ticks: u32,
    events: Vec<(usize, MediaEvent)>,
    finished: bool,
    tx: crossbeam_channel::Sender<Datagram>,
    rx: crossbeam_channel::Receiver<Datagram>,
}

/// A directory name for a call: its Call-ID made path-safe, plus a hash so
/// two Call-IDs that clean up alike stay apart.
pub fn call_dir(root: &Path, call_id: &str) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let clean: String = call_id
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    call_id.hash(&mut h);
    root.join(format!("{clean}-{:08x}", h.finish() as u32))
}

fn label_file(label: &str) -> String {
    let clean: String = label
        .chars()
        .take(40)
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("leg-{clean}.wav")
}

fn wav_spec(channels: u16) -> hound::WavSpec {
    hound::WavSpec {
        channels,
        sample_rate: earshot::codec::SPEECH_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

fn to_i16(x: f32) -> i16 {
    (x.clamp(-1.0, 1.0) * 32767.0) as i16
}

/// Append samples to a mono 16-bit WAV (hound's bulk writer).
fn write_mono(w: &mut Wav, samples: &[f32]) {
    if samples.is_empty() {
        return;
    }
    let mut sw = w.get_i16_writer(samples.len() as u32);
    for &x in samples {
        sw.write_sample(to_i16(x));
    }
    if let Err(e) = sw.flush() {
        tracing::warn!(%e, "writing recording");
    }
}

impl MediaActor {
    pub fn new(
        call: Addr<CallActor>,
        cfg: MediaConfig,
        call_id: &str,
        start: Instant,
        streams: Vec<StreamSetup>,
    ) -> Self {
        let dir = call_dir(&cfg.recordings_dir, call_id);
        let (tx, rx) = crossbeam_channel::bounded(QUEUE);
        Self {
            tx,
            rx,
            call,
            cfg,
            start,
            dir,
            pending: streams,
            streams: vec![],
            stereo: None,
            stereo_path: None,
            left: vec![],
            right: vec![],
            ticks: 0,
            events: vec![],
            finished: false,
        }
    }

    fn stream_config(&self, a: &StreamAnswer) -> Option<StreamConfig> {
        let codec = a.codec?;
        if codec == Codec::TelephoneEvent {
            return None;
        }
        Some(StreamConfig {
            codec,
            payload_type: a.payload_type?,
            dtmf_payload_type: a.dtmf_payload_type,
            jitter_depth: self.cfg.jitter_depth,
            vad: VadConfig {
                mode: self.cfg.vad_mode,
                ..VadConfig::default()
            },
            strict_source: self.cfg.strict_source,
        })
    }

    fn add_stream(&mut self, setup: StreamSetup) {
        let a = &setup.answer;
        let Some((rtp, rtcp)) = setup.sockets else {
            return;
        };
        let Some(scfg) = self.stream_config(a) else {
            return;
        };
        let pipeline = match StreamPipeline::new(scfg, self.start) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(%e, port = a.port, "cannot decode stream; not recording it");
                return;
            }
        };
        let label = a
            .label
            .as_ref()
            .map(|l| l.0.clone())
            .unwrap_or_else(|| a.index.to_string());
        let index = a.index;
        let dropped = Rc::new(Cell::new(0u64));
        let rtcp_seen = Rc::new(Cell::new(RtcpSeen::default()));
        let mut readers = vec![];
        if let Some(h) = spawn_reader(self.tx.clone(), rtp, index, false, dropped.clone(), None) {
            readers.push(h);
        }
        if let Some(rtcp) = rtcp {
            if let Some(h) = spawn_reader(
                self.tx.clone(),
                rtcp,
                index,
                true,
                dropped.clone(),
                Some(rtcp_seen.clone()),
            ) {
                readers.push(h);
            }
        }
        let path = self.dir.join(label_file(&label));
        let wav = match std::fs::create_dir_all(&self.dir)
            .map_err(|e| e.to_string())
            .and_then(|_| hound::WavWriter::create(&path, wav_spec(1)).map_err(|e| e.to_string()))
        {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(%e, path = %path.display(), "cannot create recording");
                None
            }
        };
        self.streams.push(Stream {
            index,
            label,
            pipeline,
            dropped,
            rtcp: rtcp_seen,
            readers,
            wav,
            path,
            audio: Vec::with_capacity(640),
        });
        if self.streams.len() == 2 && self.stereo.is_none() {
            let p = self.dir.join("stereo.wav");
            match hound::WavWriter::create(&p, wav_spec(2)) {
                Ok(w) => {
                    self.stereo = Some(w);
                    self.stereo_path = Some(p);
                }
                Err(e) => tracing::error!(%e, "cannot create stereo recording"),
            }
        }
    }

    /// Play out every stream (`last`: the call is over, close everything),
    /// write the legs' recordings and the stereo mix, collect events.
    fn play(&mut self, now: Instant, last: bool) {
        let mut events = vec![];
        for (i, s) in self.streams.iter_mut().enumerate() {
            s.audio.clear();
            if last {
                s.pipeline.finish(now, &mut s.audio, &mut events);
            } else {
                s.pipeline.poll(now, &mut s.audio, &mut events);
            }
            for e in events.drain(..) {
                self.events.push((s.index, e));
            }
            if let Some(w) = s.wav.as_mut() {
                write_mono(w, &s.audio);
            }
            match i {
                0 => self.left.extend_from_slice(&s.audio),
                1 => self.right.extend_from_slice(&s.audio),
                _ => {}
            }
        }
        self.write_stereo(last);
    }

    fn tick(&mut self, now: Instant) {
        // Everything the readers queued since the last tick.
        while let Ok(d) = self.rx.try_recv() {
            if let Some(s) = self.streams.iter_mut().find(|s| s.index == d.index) {
                s.pipeline.push(d.at, d.from, &d.bytes);
            }
        }
        self.play(now, false);
        // A late tick (overload) produces a long chunk; don't keep its
        // capacity around for the rest of the call.
        for s in self.streams.iter_mut() {
            if s.audio.capacity() > MAX_KEPT_SAMPLES {
                s.audio = Vec::with_capacity(640);
            }
        }
        for v in [&mut self.left, &mut self.right] {
            if v.capacity() > 2 * MAX_STEREO_SKEW && v.len() < MAX_KEPT_SAMPLES {
                v.shrink_to(MAX_KEPT_SAMPLES);
            }
        }
    }

    /// Write the aligned part of left/right; at the end pad the shorter side.
    fn write_stereo(&mut self, end: bool) {
        let Some(w) = self.stereo.as_mut() else {
            self.left.clear();
            self.right.clear();
            return;
        };
        let (l, r) = (self.left.len(), self.right.len());
        // One side silent or far behind (e.g. its source stalled): pad it
        // rather than let the other side pile up.
        let n = if end || l.abs_diff(r) > MAX_STEREO_SKEW {
            l.max(r)
        } else {
            l.min(r)
        };
        if n > 0 {
            let mut sw = w.get_i16_writer(2 * n as u32);
            for i in 0..n {
                sw.write_sample(to_i16(self.left.get(i).copied().unwrap_or(0.0)));
                sw.write_sample(to_i16(self.right.get(i).copied().unwrap_or(0.0)));
            }
            if let Err(e) = sw.flush() {
                tracing::warn!(%e, "writing stereo recording");
            }
        }
        self.left.drain(..n.min(self.left.len()));
        self.right.drain(..n.min(self.right.len()));
    }

    fn report(&mut self, with_stats: bool) -> MediaReport {
        let streams = if with_stats {
            self.streams
                .iter()
                .map(|s| StreamReport {
                    index: s.index,
                    label: s.label.clone(),
                    stats: s.pipeline.stats(),
                    counters: s.pipeline.counters(),
                    dropped_by_engine: s.dropped.get(),
                    rtcp: s.rtcp.get(),
                    regions: s.pipeline.regions().to_vec(),
                    class: s.pipeline.current_class(),
                    recording: s.wav.as_ref().map(|_| s.path.display().to_string()),
                    recorded_ms: s.pipeline.now_ms(),
                })
                .collect()
        } else {
            vec![]
        };
        MediaReport {
            events: std::mem::take(&mut self.events),
            streams,
            stereo: self.stereo_path.as_ref().map(|p| p.display().to_string()),
        }
    }

    fn flush_files(&mut self) {
        for s in self.streams.iter_mut() {
            if let Some(w) = s.wav.as_mut() {
                let _ = w.flush();
            }
        }
        if let Some(w) = self.stereo.as_mut() {
            let _ = w.flush();
        }
    }
}

/// Read one socket on this arbiter; queue datagrams for the actor with
/// `try_send`, counting drops when the queue is full.
fn spawn_reader(
    tx: crossbeam_channel::Sender<Datagram>,
    sock: std::net::UdpSocket,
    index: usize,
    rtcp: bool,
    dropped: Rc<Cell<u64>>,
    rtcp_seen: Option<Rc<Cell<RtcpSeen>>>,
) -> Option<tokio::task::JoinHandle<()>> {
    if let Err(e) = sock.set_nonblocking(true) {
        tracing::warn!(%e, "RTP socket");
        return None;
    }
    let sock = match tokio::net::UdpSocket::from_std(sock) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%e, "RTP socket");
            return None;
        }
    };
    Some(actix_rt::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                continue;
            };
            if rtcp {
                if let Some(c) = &rtcp_seen {
                    let mut seen = c.get();
                    seen.absorb(&buf[..n]);
                    c.set(seen);
                }
                continue;
            }
            let msg = Datagram {
                index,
                from,
                at: Instant::now(),
                bytes: buf[..n].to_vec(),
            };
            if tx.try_send(msg).is_err() {
                dropped.set(dropped.get() + 1);
            }
        }
    }))
}

impl Actor for MediaActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let now = Instant::now();
        for s in std::mem::take(&mut self.pending) {
            let paused = s.answer.paused;
            self.add_stream(s);
            if paused {
                if let Some(st) = self.streams.last_mut() {
                    st.pipeline.pause(now);
                }
            }
        }
        ctx.run_interval(TICK, |act, _| {
            if act.finished {
                return;
            }
            act.tick(Instant::now());
            act.ticks += 1;
            let stats = act.ticks.is_multiple_of(REPORT_TICKS);
            if stats {
                act.flush_files();
            }
            if stats || !act.events.is_empty() {
                let r = act.report(stats);
                act.call.do_send(r);
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        for s in &self.streams {
            for r in &s.readers {
                r.abort();
            }
        }
    }
}

/// A datagram as the reader saw it.
struct Datagram {
    index: usize,
    from: SocketAddr,
    at: Instant,
    bytes: Vec<u8>,
}

/// Streams renegotiated: pause/resume existing ones, start new ones.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Renegotiate(pub Vec<StreamSetup>);

impl Handler<Renegotiate> for MediaActor {
    type Result = ();
    fn handle(&mut self, m: Renegotiate, _: &mut Context<Self>) {
        let now = Instant::now();
        let mut by_index: HashMap<usize, StreamSetup> =
            m.0.into_iter().map(|s| (s.answer.index, s)).collect();
        for s in self.streams.iter_mut() {
            if let Some(setup) = by_index.remove(&s.index) {
                if setup.answer.paused {
                    s.pipeline.pause(now);
                } else {
                    s.pipeline.resume(now);
                }
            }
        }
        for (_, setup) in by_index {
            let paused = setup.answer.paused;
            self.add_stream(setup);
            if paused {
                if let Some(s) = self.streams.last_mut() {
                    s.pipeline.pause(now);
                }
            }
        }
    }
}

/// End of call: play out, close everything, finalize the WAVs, and return
/// the final report.
#[derive(Message)]
#[rtype(result = "MediaReport")]
pub struct StopMedia;

impl Handler<StopMedia> for MediaActor {
    type Result = MessageResult<StopMedia>;
    fn handle(&mut self, _: StopMedia, ctx: &mut Context<Self>) -> Self::Result {
        let now = Instant::now();
        self.tick(now);
        self.play(now, true);
        self.finished = true;
        let report = self.report(true);
        for s in self.streams.iter_mut() {
            if let Some(w) = s.wav.take() {
                if let Err(e) = w.finalize() {
                    tracing::warn!(%e, "finalizing recording");
                }
            }
        }
        if let Some(w) = self.stereo.take() {
            if let Err(e) = w.finalize() {
                tracing::warn!(%e, "finalizing stereo recording");
            }
        }
        ctx.stop();
        MessageResult(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtcp_sender_reports_are_read_and_junk_counted() {
        let mut sr = vec![0x80, 200, 0, 6];
        sr.extend_from_slice(&0x1111_2222u32.to_be_bytes()); // SSRC
        sr.extend_from_slice(&[0; 8]); // NTP
        sr.extend_from_slice(&1234u32.to_be_bytes()); // RTP ts
        sr.extend_from_slice(&777u32.to_be_bytes()); // packets sent
        sr.extend_from_slice(&(777u32 * 160).to_be_bytes()); // octets
        let mut seen = RtcpSeen::default();
        seen.absorb(&sr);
        seen.absorb(b"\x80\xc8junk");
        assert_eq!(seen.packets, 2);
        assert_eq!(seen.sender_reports, 1);
        assert_eq!(seen.src_packets_sent, Some(777));
        assert_eq!(seen.malformed, 1);
    }

    #[test]
    fn call_dirs_are_path_safe_and_distinct() {
        let root = Path::new("/rec");
        let a = call_dir(root, "a/../b@host");
        let b = call_dir(root, "a_.._b@host");
        // One component right under the root, whatever the Call-ID holds.
        for id in ["a/../b@host", "..", "/etc/passwd", ""] {
            let d = call_dir(root, id);
            assert_eq!(d.parent(), Some(root), "{id}");
            assert!(d.components().count() == root.components().count() + 1);
        }
        assert_ne!(a, b);
        assert_eq!(label_file("1"), "leg-1.wav");
        assert_eq!(label_file("../x"), "leg-___x.wav");
    }
}
