//! A TCP byte stream cut into reads of fuzzer-chosen sizes: the framer must
//! never panic, and must yield the same frames however the stream is cut.
#![no_main]

use earshot::sip::{parse_message, Frame, Limits, SipError, StreamFramer};
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8], chunk: usize) -> (Vec<Frame>, Option<SipError>) {
    let limits = Limits::default();
    let mut framer = StreamFramer::new(limits);
    let mut frames = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        framer.push(piece);
        loop {
            match framer.next_frame() {
                Ok(Some(frame)) => {
                    if let Frame::Message(bytes) = &frame {
                        let _ = parse_message(bytes, &limits);
                    }
                    frames.push(frame);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    // First byte picks a read size, the rest is the stream.
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let whole = run(stream, stream.len());
    let cut = run(stream, usize::from(first % 64) + 1);
    // Frames before an error must not depend on how the stream was cut.
    // (Only a trailing lone CRLF, which waits for a possible CRLFCRLF, may
    // differ; compare the messages.)
    let msgs = |f: &[Frame]| -> Vec<Vec<u8>> {
        f.iter()
            .filter_map(|x| match x {
                Frame::Message(m) => Some(m.clone()),
                Frame::KeepAlive => None,
            })
            .collect()
    };
    if whole.1.is_none() && cut.1.is_none() {
        assert_eq!(msgs(&whole.0), msgs(&cut.0));
    }
});
