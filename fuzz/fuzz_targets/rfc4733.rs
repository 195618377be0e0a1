//! RFC 4733 telephone-events: payload parsing and the per-stream key-press
//! tracker, fed 9-byte records `[ts: u32 BE][ctl][event][E|R|volume][duration:
//! u16 BE]`. `ctl` bit 0 is the RTP marker, bit 1 polls the tracker after
//! the push, bit 2 cuts the payload short, bit 3 reuses the previous
//! record's timestamp (so key presses of several packets are likely).
#![no_main]

use earshot::codec::dtmf::{event_digit, parse_event};
use earshot::codec::DtmfTracker;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let mut t = DtmfTracker::new();
    // Start timestamp -> digits of the valid events pushed with it.
    let mut seen: HashMap<u32, Vec<char>> = HashMap::new();
    let mut events = Vec::new();
    let mut pushes = 0usize;
    let mut last_ts = 0u32;
    for rec in data.chunks_exact(9) {
        let ctl = rec[4];
        let ts = if ctl & 8 != 0 {
            last_ts
        } else {
            u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]])
        };
        last_ts = ts;
        let marker = ctl & 1 != 0;
        let payload = if ctl & 4 != 0 { &rec[5..8] } else { &rec[5..9] };
        if let Some(p) = parse_event(payload) {
            assert!(p.volume <= 63);
            assert_eq!(p.end, payload[1] & 0x80 != 0);
            assert_eq!(p.duration, u16::from_be_bytes([payload[2], payload[3]]));
            if let Some(d) = event_digit(p.event) {
                assert!("0123456789*#ABCDF".contains(d));
                seen.entry(ts).or_default().push(d);
            }
        } else {
            assert!(payload.len() < 4);
        }
        pushes += 1;
        if let Some(ev) = t.push(ts, marker, payload) {
            events.push(ev);
        }
        if ctl & 2 != 0 {
            if let Some(ev) = t.poll() {
                events.push(ev);
            }
        }
    }
    while let Some(ev) = t.flush() {
        events.push(ev);
    }
    assert!(!t.is_open());
    assert_eq!(t.poll(), None);
    // One event per key press at most, each from packets that were sent.
    assert!(events.len() <= pushes);
    for ev in &events {
        let digits = seen
            .get(&ev.start_ts)
            .expect("event from a pushed timestamp");
        assert!(digits.contains(&ev.digit));
        assert!(ev.volume <= 63);
        assert!(ev.duration <= u32::from(u16::MAX));
    }
});
