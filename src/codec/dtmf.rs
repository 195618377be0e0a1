//! RFC 4733 telephone-events (DTMF digits carried out of band).
//!
//! A key press is sent as a run of packets sharing one RTP timestamp (the
//! event start), each carrying the growing duration; the last packets carry
//! the end bit and are usually sent three times. [`DtmfTracker`] turns that
//! into exactly one [`DtmfEvent`] per key press: when the first end packet
//! arrives, or — if every end packet was lost — when the next event starts
//! or the call ends ([`DtmfTracker::flush`]).

use std::collections::VecDeque;

/// One completed key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfEvent {
    /// `0`-`9`, `*`, `#`, `A`-`D`, or `F` for flash.
    pub digit: char,
    /// RTP timestamp of the event start.
    pub start_ts: u32,
    /// Duration in RTP clock units.
    pub duration: u32,
    /// Power level in -dBm0 (0..=63).
    pub volume: u8,
}

/// The digit of an RFC 4733 event code (0..=16), `None` for other events.
pub fn event_digit(code: u8) -> Option<char> {
    Some(match code {
        0..=9 => (b'0' + code) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + code - 12) as char,
        16 => 'F',
        _ => return None,
    })
}

/// One parsed telephone-event block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPayload {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    pub duration: u16,
}

/// Parse the first 4-byte block of a telephone-event payload.
pub fn parse_event(payload: &[u8]) -> Option<EventPayload> {
    let b = payload.get(..4)?;
    Some(EventPayload {
        event: b[0],
        end: b[1] & 0x80 != 0,
        volume: b[1] & 0x3f,
        duration: u16::from_be_bytes([b[2], b[3]]),
    })
}

#[derive(Debug, Clone, Copy)]
struct Open {
    event: DtmfEvent,
    /// The end bit was seen but the event is not reported yet (it ended in
    /// the same push that reported the previous one).
    ended: bool,
}

/// How many recently ended start timestamps are remembered to ignore late
/// or retransmitted packets of finished events.
const RECENT: usize = 4;

/// Per-stream telephone-event state.
#[derive(Debug, Clone, Default)]
pub struct DtmfTracker {
    open: Option<Open>,
    recent_ended: [Option<u32>; RECENT],
    recent_next: usize,
    ready: VecDeque<DtmfEvent>,
}

impl DtmfTracker {
    /// An idle tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one telephone-event payload with its RTP timestamp and marker
    /// bit. Returns an event exactly once per key press. When one push
    /// completes two presses at once (an event whose end was lost followed
    /// by a single-packet event), the second is returned by the next call of
    /// `push`, [`poll`](Self::poll) or [`flush`](Self::flush).
    pub fn push(&mut self, timestamp: u32, marker: bool, payload: &[u8]) -> Option<DtmfEvent> {
        self.ingest(timestamp, marker, payload);
        self.ready.pop_front()
    }

    /// An event completed earlier but not yet returned.
    pub fn poll(&mut self) -> Option<DtmfEvent> {
        self.ready.pop_front()
    }

    /// End of the stream: report the open event, if any (its end packets
    /// were lost), or anything still queued.
    pub fn flush(&mut self) -> Option<DtmfEvent> {
        if let Some(open) = self.open.take() {
            self.remember_ended(open.event.start_ts);
            self.ready.push_back(open.event);
        }
        self.ready.pop_front()
    }

    /// Whether a key press is in progress.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    fn remember_ended(&mut self, ts: u32) {
        self.recent_ended[self.recent_next] = Some(ts);
        self.recent_next = (self.recent_next + 1) % RECENT;
    }

    fn recently_ended(&self, ts: u32) -> bool {
        self.recent_ended.contains(&Some(ts))
    }

    fn ingest(&mut self, timestamp: u32, _marker: bool, payload: &[u8]) {
        let Some(p) = parse_event(payload) else {
            return;
        };
        let Some(digit) = event_digit(p.event) else {
            return;
        };
        let duration = u32::from(p.duration);

        if let Some(open) = self.open.as_mut() {
            if open.event.start_ts == timestamp {
                if open.ended {
                    // Retransmitted end of an event that is queued to report.
                    let ev = open.event;
                    self.open = None;
                    self.remember_ended(ev.start_ts);
                    self.ready.push_back(ev);
                    return;
                }
                open.event.duration = open.event.duration.max(duration);
                open.event.volume = p.volume;
                if p.end {
                    let ev = open.event;
                    self.open = None;
                    self.remember_ended(ev.start_ts);
                    self.ready.push_back(ev);
                }
                return;
            }
        }
        if self.recently_ended(timestamp) {
            // Retransmitted end packet or a late packet of a finished press.
            return;
        }
        // A new press: whatever was open lost its end packets.
        if let Some(prev) = self.open.take() {
            self.remember_ended(prev.event.start_ts);
            self.ready.push_back(prev.event);
        }
        let event = DtmfEvent {
            digit,
            start_ts: timestamp,
            duration,
            volume: p.volume,
        };
        if p.end {
            if self.ready.is_empty() {
                self.remember_ended(timestamp);
                self.ready.push_back(event);
            } else {
                self.open = Some(Open { event, ended: true });
            }
        } else {
            self.open = Some(Open {
                event,
                ended: false,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(event: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, (if end { 0x80 } else { 0 }) | volume, d[0], d[1]]
    }

    #[test]
    fn digits() {
        let all: String = (0..=16).filter_map(event_digit).collect();
        assert_eq!(all, "0123456789*#ABCDF");
        assert_eq!(event_digit(17), None);
    }

    #[test]
    fn short_payload_ignored() {
        let mut t = DtmfTracker::new();
        assert_eq!(t.push(1, true, &[1, 2, 3]), None);
        assert!(!t.is_open());
    }

    #[test]
    fn single_packet_event_after_lost_end() {
        let mut t = DtmfTracker::new();
        assert_eq!(t.push(100, true, &pkt(1, false, 10, 160)), None);
        // Next press is a single end packet: the previous is reported now,
        // this one on the next push (its retransmission).
        let first = t.push(900, true, &pkt(2, true, 10, 400)).unwrap();
        assert_eq!((first.digit, first.start_ts), ('1', 100));
        let second = t.push(900, false, &pkt(2, true, 10, 400)).unwrap();
        assert_eq!((second.digit, second.duration), ('2', 400));
        assert_eq!(t.push(900, false, &pkt(2, true, 10, 400)), None);
        assert_eq!(t.flush(), None);
    }
}
