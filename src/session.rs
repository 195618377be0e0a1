//! The recording-session record: what the REST API serves (the Call Session
//! object of the Call Sessions API plus SIPREC participants, streams and
//! source) and what the store persists. Also the [`SessionStore`] trait that
//! keeps the store replaceable, its query type, and an in-memory double.

use crate::asr::{cumulative_transcript, Segment};
use crate::classify::AudioClass;
use crate::ids::{CallId, Label, ParticipantId};
use crate::media::{MediaEvent, PipelineCounters};
use crate::metadata::{OriginalCallId, RecordingMetadata};
use crate::rtp::stats::StreamStats;
use crate::sdp::{Direction, StreamAnswer};
use crate::vad::SpeechRegion;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Lifecycle of a recording session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallStatus {
    /// Live.
    Active,
    /// Ended by BYE or by `POST .../end`.
    Completed,
    /// Ended abnormally (no media, internal error, no ACK, ...); see `end_reason`.
    Failed,
    /// The engine stopped while the session was live.
    Interrupted,
}

impl CallStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            CallStatus::Active => "active",
            CallStatus::Completed => "completed",
            CallStatus::Failed => "failed",
            CallStatus::Interrupted => "interrupted",
        }
    }
    pub fn parse(s: &str) -> Option<CallStatus> {
        match s {
            "active" => Some(CallStatus::Active),
            "completed" => Some(CallStatus::Completed),
            "failed" => Some(CallStatus::Failed),
            "interrupted" => Some(CallStatus::Interrupted),
            _ => None,
        }
    }
}

/// A participant of the recorded call, from the metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub participant_id: ParticipantId,
    pub aor: Option<String>,
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// One recorded media stream (an answered m-line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamInfo {
    /// SDP `a=label` (the m-line index as text when the SRC sent none).
    pub label: Label,
    /// The participant sending this stream, from metadata; `None` when the
    /// metadata is absent or does not say. A mixed stream names its first
    /// sender here and every sender in `participant_ids`.
    pub participant_id: Option<ParticipantId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participant_ids: Vec<ParticipantId>,
    pub codec: Option<String>,
    pub payload_type: Option<u8>,
    pub direction: Direction,
    pub paused: bool,
    /// Our RTP port (0 when the m-line was rejected).
    pub local_port: u16,
    /// The SRC's RTP address, when known.
    pub remote: Option<String>,
    /// Metadata stream id, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<String>,
    /// RTP receive quality (packets, loss, jitter, MOS...).
    #[serde(default)]
    pub stats: Option<StreamStats>,
    /// What the receive path discarded and why.
    #[serde(default)]
    pub receive: ReceiveCounters,
    /// Speech regions on the participant timeline (ms since call start).
    #[serde(default)]
    pub speech: Vec<SpeechRegion>,
    /// Audio class being heard now (live only).
    #[serde(default)]
    pub class: Option<AudioClass>,
    /// This stream's recording (16 kHz mono WAV).
    #[serde(default)]
    pub recording: Option<String>,
    /// Milliseconds of audio on this stream's timeline.
    #[serde(default)]
    pub recorded_ms: u64,
}

/// Datagrams the engine discarded on a stream, and what RTCP said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ReceiveCounters {
    /// Dropped because the call's media queue was full.
    pub dropped_by_engine: u64,
    pub rtcp_packets: u64,
    /// RTCP sender reports from the SRC, malformed RTCP datagrams.
    #[serde(default)]
    pub rtcp_sender_reports: u64,
    #[serde(default)]
    pub rtcp_malformed: u64,
    /// Packets the SRC says (latest RTCP SR) it sent on this stream.
    #[serde(default)]
    pub src_reported_sent: Option<u32>,
    /// What the stream's pipeline discarded (malformed, unknown payload
    /// type, rejected source, ...).
    #[serde(flatten)]
    pub pipeline: PipelineCounters,
}

/// Where the recordings are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Recordings {
    /// Two-channel WAV: first stream left, second right (two or more streams).
    pub stereo: Option<String>,
}

/// A media event with the stream it happened on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    pub label: Label,
    pub participant_id: Option<ParticipantId>,
    #[serde(flatten)]
    pub event: MediaEvent,
}

/// Most events kept in a session record.
pub const MAX_EVENTS: usize = 2000;

/// Where the recording came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SourceInfo {
    pub vendor_hint: Option<String>,
    /// `ip:port` of the SRC's signalling.
    pub src_addr: String,
    pub transport: String,
    pub user_agent: Option<String>,
    /// Identifiers of the original call (metadata and well-known headers).
    pub original_call_ids: Vec<OriginalCallId>,
    /// True when the INVITE declared itself a SIPREC session (`+sip.src`,
    /// `src` or `Require: siprec`).
    pub siprec: bool,
    /// True when the SRC sent recording metadata.
    pub has_metadata: bool,
}

/// Connection info in the shape of the Call Sessions API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    pub client_addr: (String, u16),
    pub temp_connection_id: String,
    pub start_time: DateTime<Utc>,
}

/// Signalling counters of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Counters {
    pub reinvites: u32,
    pub updates: u32,
    pub metadata_updates: u32,
    pub pauses: u32,
    pub resumes: u32,
    pub rtp_packets: u64,
    pub rtp_bytes: u64,
}

/// The whole session: served by `GET /api/v1/calls/{id}` and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub call_id: CallId,
    pub status: CallStatus,
    /// Why the session ended (`bye`, `cancelled`, `manual`, `no ack`, ...).
    pub end_reason: Option<String>,
    pub start_time: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
    pub connection_info: ConnectionInfo,
    pub participants: Vec<Participant>,
    pub streams: Vec<StreamInfo>,
    pub source: SourceInfo,
    /// Raw vendor extension elements from the metadata.
    pub metadata_extensions: Vec<String>,
    pub counters: Counters,
    /// Final transcript segments, in the order they were decoded (each
    /// participant's in time order).
    pub transcript_segments: Vec<Segment>,
    pub cumulative_transcript: String,
    /// Seconds of recorded audio (call duration until media lands).
    pub total_audio_duration: f64,
    pub segment_count: u64,
    pub processing_mode: String,
    pub processing_plan: serde_json::Value,
    #[serde(default)]
    pub recordings: Recordings,
    /// Media events (speech, DTMF, hold, SSRC, pause), oldest first, at
    /// most [`MAX_EVENTS`] (`events_dropped` counts the rest).
    #[serde(default)]
    pub events: Vec<CallEvent>,
    #[serde(default)]
    pub events_dropped: u64,
    /// Speech recognition progress of this session.
    #[serde(default)]
    pub asr: AsrProgress,
    /// Progressive (live) and post-call analysis.
    #[serde(default)]
    pub analysis: crate::analysis::call::AnalysisRecord,
}

/// How far the transcript is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsrProgress {
    pub enabled: bool,
    /// Finals sent to the recogniser / come back.
    pub finals_sent: u64,
    pub finals_done: u64,
    /// Finals decoded late because the recogniser was behind.
    pub lagging: u64,
}

impl AsrProgress {
    pub fn pending(&self) -> u64 {
        self.finals_sent.saturating_sub(self.finals_done)
    }

    /// `off`, `live` (call active), `finishing` (ended, finals pending) or
    /// `complete`.
    pub fn status(&self, call_active: bool) -> &'static str {
        match (self.enabled, call_active, self.pending()) {
            (false, _, _) => "off",
            (true, true, _) => "live",
            (true, false, 0) => "complete",
            (true, false, _) => "finishing",
        }
    }
}

impl SessionRecord {
    /// Who speaks on the stream labelled `label`: its participant id and a
    /// display name (participant name, else AOR, else the label).
    pub fn speaker_of(&self, label: &Label) -> (Option<String>, String) {
        let Some(st) = self.streams.iter().find(|s| &s.label == label) else {
            return (None, label.0.clone());
        };
        let Some(pid) = st.participant_id.as_ref() else {
            return (None, label.0.clone());
        };
        let p = self.participants.iter().find(|p| &p.participant_id == pid);
        let name = p
            .and_then(|p| p.name.clone().or_else(|| p.aor.clone()))
            .unwrap_or_else(|| label.0.clone());
        (Some(pid.0.clone()), name)
    }

    /// Add a final segment (its `segment_id` is assigned here) and keep the
    /// cumulative transcript and count in step.
    pub fn push_segment(&mut self, mut seg: Segment) -> u64 {
        let id = self.transcript_segments.len() as u64;
        seg.segment_id = id;
        let last_start = self
            .transcript_segments
            .iter()
            .map(|s| s.start_time)
            .fold(f64::NEG_INFINITY, f64::max);
        let in_order = seg.start_time >= last_start;
        self.transcript_segments.push(seg);
        if in_order {
            let s = self.transcript_segments.last().expect("just pushed");
            if !s.text.is_empty() {
                if !self.cumulative_transcript.is_empty() {
                    self.cumulative_transcript.push('\n');
                }
                self.cumulative_transcript
                    .push_str(&format!("{}: {}", s.speaker, s.text));
            }
        } else {
            self.cumulative_transcript = cumulative_transcript(&self.transcript_segments);
        }
        self.segment_count = self.transcript_segments.len() as u64;
        id
    }

    /// A fresh active session.
    pub fn new(call_id: CallId, now: DateTime<Utc>, source: SourceInfo) -> Self {
        let (ip, port) = split_host_port(&source.src_addr);
        SessionRecord {
            connection_info: ConnectionInfo {
                client_addr: (ip, port),
                temp_connection_id: call_id.0.clone(),
                start_time: now,
            },
            call_id,
            status: CallStatus::Active,
            end_reason: None,
            start_time: now,
            last_activity: now,
            end_time: None,
            participants: vec![],
            streams: vec![],
            source,
            metadata_extensions: vec![],
            counters: Counters::default(),
            transcript_segments: vec![],
            cumulative_transcript: String::new(),
            total_audio_duration: 0.0,
            segment_count: 0,
            processing_mode: "realtime".into(),
            processing_plan: serde_json::json!({
                "recording": true,
                "transcription": false,
                "analysis": false
            }),
            recordings: Recordings::default(),
            events: vec![],
            events_dropped: 0,
            asr: AsrProgress::default(),
            analysis: Default::default(),
        }
    }

    /// Recompute participants and streams from the metadata and the
    /// negotiated m-lines. Streams map to participants only through the
    /// metadata (label → stream → sender), never by m-line order.
    pub fn apply(&mut self, metadata: Option<&RecordingMetadata>, answers: &[StreamAnswer]) {
        if let Some(md) = metadata {
            self.participants = md
                .participants
                .iter()
                .map(|p| Participant {
                    participant_id: ParticipantId(p.id.clone()),
                    aor: p.aors.first().cloned(),
                    name: p.name.clone(),
                    role: None,
                })
                .collect();
            for id in &md.original_call_ids {
                if !self.source.original_call_ids.contains(id) {
                    self.source.original_call_ids.push(id.clone());
                }
            }
            if md.vendor_hint.is_some() {
                self.source.vendor_hint = md.vendor_hint.clone();
            }
            self.metadata_extensions = md.extensions.clone();
            self.source.has_metadata = true;
        }
        let old = std::mem::take(&mut self.streams);
        self.streams = answers
            .iter()
            .map(|a| {
                let label = a
                    .label
                    .clone()
                    .unwrap_or_else(|| Label(a.index.to_string()));
                // Only a label the SRC sent can name a metadata stream; the
                // index stand-in never does.
                let (stream_id, senders) = match (metadata, &a.label) {
                    (Some(md), Some(l)) => senders_of(md, l.as_str()),
                    _ => (None, vec![]),
                };
                let prev = old.iter().find(|s| s.label == label);
                StreamInfo {
                    stats: prev.and_then(|p| p.stats),
                    receive: prev.map(|p| p.receive).unwrap_or_default(),
                    speech: prev.map(|p| p.speech.clone()).unwrap_or_default(),
                    class: prev.and_then(|p| p.class),
                    recording: prev.and_then(|p| p.recording.clone()),
                    recorded_ms: prev.map(|p| p.recorded_ms).unwrap_or_default(),
                    participant_id: senders.first().cloned(),
                    participant_ids: if senders.len() > 1 { senders } else { vec![] },
                    label,
                    codec: a.codec.map(|c| c.name().to_owned()),
                    payload_type: a.payload_type,
                    direction: a.direction,
                    paused: a.paused,
                    local_port: a.port,
                    remote: a.remote.map(|r| r.to_string()),
                    stream_id,
                }
            })
            .collect();
    }

    /// Append a media event of the stream with m-line `index`.
    pub fn push_event(&mut self, stream_label: Label, event: MediaEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events_dropped += 1;
            return;
        }
        let participant_id = self
            .streams
            .iter()
            .find(|s| s.label == stream_label)
            .and_then(|s| s.participant_id.clone());
        self.events.push(CallEvent {
            label: stream_label,
            participant_id,
            event,
        });
    }

    /// Close the session.
    pub fn finish(&mut self, status: CallStatus, reason: &str, now: DateTime<Utc>) {
        self.status = status;
        self.end_reason = Some(reason.to_owned());
        self.end_time = Some(now);
        self.last_activity = now;
        self.total_audio_duration = self.duration_secs(now);
    }

    /// Seconds from start to `now` (or to the end).
    pub fn duration_secs(&self, now: DateTime<Utc>) -> f64 {
        let end = self.end_time.unwrap_or(now);
        ((end - self.start_time).num_milliseconds().max(0) as f64) / 1000.0
    }

    /// Every identifier this session can be found by: its Call-ID and the
    /// original call's identifiers.
    pub fn lookup_keys(&self) -> Vec<String> {
        let mut keys = vec![self.call_id.0.clone()];
        keys.extend(
            self.source
                .original_call_ids
                .iter()
                .map(|o| o.value.clone()),
        );
        keys
    }

    /// What a participant filter looks in: each participant's id, AOR and
    /// name, lowercased.
    pub fn participant_keys(&self) -> Vec<String> {
        self.participants
            .iter()
            .flat_map(|p| {
                std::iter::once(p.participant_id.0.as_str())
                    .chain(p.aor.as_deref())
                    .chain(p.name.as_deref())
            })
            .map(str::to_lowercase)
            .collect()
    }
}

/// What `GET /api/v1/calls` filters on. A store keeps one beside each
/// record, so a list reads whole records only for the page it returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListingEntry {
    pub status: CallStatus,
    pub start_time: DateTime<Utc>,
    /// [`SessionRecord::participant_keys`].
    pub participants: Vec<String>,
}

impl ListingEntry {
    pub fn of(r: &SessionRecord) -> ListingEntry {
        ListingEntry {
            status: r.status,
            start_time: r.start_time,
            participants: r.participant_keys(),
        }
    }
}

/// Metadata stream id and the participants that send the stream with this label.
fn senders_of(md: &RecordingMetadata, label: &str) -> (Option<String>, Vec<ParticipantId>) {
    let stream_id = md
        .streams
        .iter()
        .find(|s| s.label.as_deref() == Some(label.trim()))
        .map(|s| s.id.clone());
    let senders = md
        .senders_of_label(label)
        .into_iter()
        .map(|p| ParticipantId(p.id.clone()))
        .collect();
    (stream_id, senders)
}

fn split_host_port(s: &str) -> (String, u16) {
    match s.parse::<std::net::SocketAddr>() {
        Ok(a) => (a.ip().to_string(), a.port()),
        Err(_) => (s.to_owned(), 0),
    }
}

/// Filters and paging of `GET /api/v1/calls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionQuery {
    pub status: Option<CallStatus>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub participant: Option<String>,
    /// 1-based.
    pub page: usize,
    pub page_size: usize,
}

impl Default for SessionQuery {
    fn default() -> Self {
        Self {
            status: None,
            from: None,
            to: None,
            participant: None,
            page: 1,
            page_size: 50,
        }
    }
}

impl SessionQuery {
    /// No filter: every session [`matches`](Self::matches).
    pub fn is_unfiltered(&self) -> bool {
        self.status.is_none() && !self.filters_beyond_status()
    }

    /// The status asked for, when it is the only filter.
    pub fn status_only(&self) -> Option<CallStatus> {
        self.status.filter(|_| !self.filters_beyond_status())
    }

    fn filters_beyond_status(&self) -> bool {
        self.from.is_some() || self.to.is_some() || self.participant.is_some()
    }

    /// Page number (1-based), page size and how many matches come before
    /// the page.
    fn bounds(&self) -> (usize, usize, usize) {
        let page = self.page.max(1);
        let size = self.page_size.max(1);
        (page, size, (page - 1).saturating_mul(size))
    }

    pub fn matches(&self, e: &ListingEntry) -> bool {
        self.status.is_none_or(|s| s == e.status)
            && self.from.is_none_or(|f| e.start_time >= f)
            && self.to.is_none_or(|t| e.start_time <= t)
            && self.participant.as_deref().is_none_or(|p| {
                let needle = p.to_lowercase();
                e.participants.iter().any(|k| k.contains(&needle))
            })
    }
}

/// One page of results, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: usize,
    pub page: usize,
    pub page_size: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store I/O: {0}")]
    Io(String),
    #[error("stored session {0} is corrupt: {1}")]
    Corrupt(String, String),
}

/// Durable storage of sessions. `put` returns only once the record is durable.
pub trait SessionStore: Send {
    fn put(&mut self, rec: &SessionRecord) -> Result<(), StoreError>;
    /// Like `put` but without waiting for durability (journal of live state).
    fn put_lazy(&mut self, rec: &SessionRecord) -> Result<(), StoreError>;
    fn get(&self, call_id: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Find by Call-ID or by an original call identifier.
    fn find(&self, key: &str) -> Result<Option<SessionRecord>, StoreError>;
    /// Newest first.
    fn list(&self, q: &SessionQuery) -> Result<Page<SessionRecord>, StoreError>;
    /// Number of stored sessions.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The query's page of the items that match it, already sorted newest
/// first, and how many match in all.
pub fn paginate<T>(matching_newest_first: impl Iterator<Item = T>, q: &SessionQuery) -> Page<T> {
    let (page, size, skip) = q.bounds();
    let mut total = 0;
    let mut items = vec![];
    for r in matching_newest_first {
        if total >= skip && items.len() < size {
            items.push(r);
        }
        total += 1;
    }
    Page {
        items,
        total,
        page,
        page_size: size,
    }
}

/// [`paginate`] when the number of matches is already known (a store that
/// keeps counts): reads `matching_newest_first` only as far as the page's
/// last item.
pub fn paginate_counted<T>(
    matching_newest_first: impl Iterator<Item = T>,
    total: usize,
    q: &SessionQuery,
) -> Page<T> {
    let (page, size, skip) = q.bounds();
    Page {
        items: matching_newest_first.skip(skip).take(size).collect(),
        total,
        page,
        page_size: size,
    }
}

/// An in-memory store: a fast double for unit tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    by_id: BTreeMap<String, SessionRecord>,
}

impl SessionStore for MemoryStore {
    fn put(&mut self, rec: &SessionRecord) -> Result<(), StoreError> {
        self.by_id.insert(rec.call_id.0.clone(), rec.clone());
        Ok(())
    }
    fn put_lazy(&mut self, rec: &SessionRecord) -> Result<(), StoreError> {
        self.put(rec)
    }
    fn get(&self, call_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.by_id.get(call_id).cloned())
    }
    fn find(&self, key: &str) -> Result<Option<SessionRecord>, StoreError> {
        if let Some(r) = self.by_id.get(key) {
            return Ok(Some(r.clone()));
        }
        Ok(self
            .by_id
            .values()
            .find(|r| r.lookup_keys().iter().any(|k| k == key))
            .cloned())
    }
    fn list(&self, q: &SessionQuery) -> Result<Page<SessionRecord>, StoreError> {
        let mut all: Vec<SessionRecord> = self.by_id.values().cloned().collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.start_time));
        let matching = all.into_iter().filter(|r| q.matches(&ListingEntry::of(r)));
        Ok(paginate(matching, q))
    }
    fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rec(id: &str, secs: i64, status: CallStatus) -> SessionRecord {
        let t = Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap();
        let mut r = SessionRecord::new(
            CallId::from(id),
            t,
            SourceInfo {
                src_addr: "10.0.0.1:5060".into(),
                ..Default::default()
            },
        );
        r.status = status;
        r.participants.push(Participant {
            participant_id: ParticipantId::from("p1"),
            aor: Some(format!("sip:{id}@example.com")),
            name: Some("Alice Agent".into()),
            role: None,
        });
        r
    }

    #[test]
    fn query_filters_and_pages_newest_first() {
        let mut s = MemoryStore::default();
        for i in 0..7 {
            let st = if i % 2 == 0 {
                CallStatus::Completed
            } else {
                CallStatus::Failed
            };
            s.put(&rec(&format!("c{i}"), i, st)).unwrap();
        }
        let p = s
            .list(&SessionQuery {
                status: Some(CallStatus::Completed),
                page: 1,
                page_size: 3,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(p.total, 4);
        let ids: Vec<_> = p.items.iter().map(|r| r.call_id.0.as_str()).collect();
        assert_eq!(ids, ["c6", "c4", "c2"]);
        let p2 = s
            .list(&SessionQuery {
                status: Some(CallStatus::Completed),
                page: 2,
                page_size: 3,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(p2.items.len(), 1);
        assert_eq!(p2.items[0].call_id.0, "c0");
        let by_participant = s
            .list(&SessionQuery {
                participant: Some("C3@EXAMPLE".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(by_participant.total, 1);
    }

    #[test]
    fn find_by_original_id() {
        let mut s = MemoryStore::default();
        let mut r = rec("x", 0, CallStatus::Completed);
        r.source.original_call_ids.push(OriginalCallId {
            kind: "ucid".into(),
            value: "00001002121635786112".into(),
        });
        s.put(&r).unwrap();
        assert_eq!(
            s.find("00001002121635786112").unwrap().unwrap().call_id.0,
            "x"
        );
        assert!(s.find("nope").unwrap().is_none());
    }

    #[test]
    fn record_round_trips_through_json() {
        let r = rec("y", 5, CallStatus::Active);
        let j = serde_json::to_string(&r).unwrap();
        let back: SessionRecord = serde_json::from_str(&j).unwrap();
        assert_eq!(back, r);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        for k in [
            "call_id",
            "start_time",
            "last_activity",
            "connection_info",
            "transcript_segments",
            "cumulative_transcript",
            "total_audio_duration",
            "segment_count",
            "status",
            "processing_mode",
            "processing_plan",
            "participants",
            "streams",
            "source",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
    }

    #[test]
    fn streams_map_to_participants_through_metadata_not_order() {
        use crate::metadata::{MdParticipant, MdStream};
        use crate::sdp::{Codec, StreamAnswer};
        let md = RecordingMetadata {
            participants: vec![
                MdParticipant {
                    id: "agent".into(),
                    aors: vec!["sip:agent@x".into()],
                    sends: vec!["s2".into()],
                    ..Default::default()
                },
                MdParticipant {
                    id: "caller".into(),
                    aors: vec!["sip:caller@x".into()],
                    sends: vec!["s1".into(), "mix".into()],
                    ..Default::default()
                },
            ],
            streams: vec![
                MdStream {
                    id: "s1".into(),
                    label: Some("1".into()),
                    session: None,
                },
                MdStream {
                    id: "s2".into(),
                    label: Some("2".into()),
                    session: None,
                },
            ],
            ..Default::default()
        };
        let answer = |index: usize, label: Option<&str>| StreamAnswer {
            index,
            label: label.map(Label::from),
            port: 40000 + 2 * index as u16,
            codec: Some(Codec::Pcmu),
            payload_type: Some(0),
            dtmf_payload_type: None,
            direction: Direction::RecvOnly,
            paused: false,
            remote: None,
        };
        let mut r = rec("m", 0, CallStatus::Active);
        r.apply(
            Some(&md),
            &[answer(0, Some("1")), answer(1, Some("2")), answer(2, None)],
        );
        let who: Vec<Option<&str>> = r
            .streams
            .iter()
            .map(|s| s.participant_id.as_ref().map(|p| p.as_str()))
            .collect();
        // The first m-line is the caller's although the agent is listed first.
        assert_eq!(who, [Some("caller"), Some("agent"), None]);
        // No a=label: the m-line index stands in.
        assert_eq!(r.streams[2].label.as_str(), "2");
        assert_eq!(r.participants.len(), 2);
        assert!(r.source.has_metadata);
    }
}
