//! WebSocket client frames as the server receives them: actix-http's
//! `ws::Codec` in server mode (masked frames required, 64 KiB frame limit,
//! as `actors/src/ws.rs` configures it), continuation frames assembled the
//! way actix-web-actors does, and every complete text message through
//! `earshot::api::client_command`. Each decoded frame, re-encoded by a
//! client-mode codec (masked), must decode to the same frame.
#![no_main]

use actix_http::ws::{Codec, Frame, Item, Message};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use earshot::api::{client_command, Command, MAX_CALL_ID};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

/// `MAX_CLIENT_FRAME` in actors/src/ws.rs.
const MAX_FRAME: usize = 64 * 1024;

fn to_message(f: &Frame) -> Message {
    match f {
        Frame::Text(b) => {
            // The encoder takes a ByteString; the decoder hands out bytes
            // that need not be UTF-8. Binary carries the same payload.
            match bytestring_of(b) {
                Some(s) => Message::Text(s),
                None => Message::Binary(b.clone()),
            }
        }
        Frame::Binary(b) => Message::Binary(b.clone()),
        Frame::Continuation(i) => Message::Continuation(match i {
            Item::FirstText(b) => Item::FirstText(b.clone()),
            Item::FirstBinary(b) => Item::FirstBinary(b.clone()),
            Item::Continue(b) => Item::Continue(b.clone()),
            Item::Last(b) => Item::Last(b.clone()),
        }),
        Frame::Ping(b) => Message::Ping(b.clone()),
        Frame::Pong(b) => Message::Pong(b.clone()),
        Frame::Close(r) => Message::Close(r.clone()),
    }
}

fn bytestring_of(b: &Bytes) -> Option<ByteString> {
    ByteString::try_from(b.clone()).ok()
}

fn command(text: &str) {
    match client_command(text) {
        Ok(Command::Ping) => {}
        Ok(Command::Subscribe(Some(id))) => assert!(!id.is_empty() && id.len() <= MAX_CALL_ID),
        Ok(Command::Subscribe(None)) => {}
        Err(e) => assert!(!e.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut server = Codec::new().max_size(MAX_FRAME);
    let mut client = Codec::new().max_size(MAX_FRAME).client_mode();
    let mut check = Codec::new().max_size(MAX_FRAME);
    let mut buf = BytesMut::from(data);
    let mut text: Option<Vec<u8>> = None;
    loop {
        let frame = match server.decode(&mut buf) {
            Ok(Some(f)) => f,
            Ok(None) | Err(_) => break,
        };
        // Round trip through a masking client codec.
        let mut wire = BytesMut::new();
        let was_text = matches!(frame, Frame::Text(_));
        let msg = to_message(&frame);
        let is_text = matches!(msg, Message::Text(_));
        client
            .encode(msg, &mut wire)
            .expect("a decoded frame re-encodes");
        let back = check
            .decode(&mut wire)
            .expect("re-encoded frame decodes")
            .expect("re-encoded frame is complete");
        assert!(wire.is_empty());
        match (&frame, &back) {
            (Frame::Text(a), Frame::Binary(b)) if was_text && !is_text => assert_eq!(a, b),
            _ => assert_eq!(frame, back),
        }
        // What the session does with it.
        match frame {
            Frame::Text(b) => {
                if let Ok(s) = std::str::from_utf8(&b) {
                    command(s);
                }
            }
            Frame::Continuation(Item::FirstText(b)) => text = Some(b.to_vec()),
            Frame::Continuation(Item::FirstBinary(_)) => text = None,
            Frame::Continuation(Item::Continue(b)) => {
                if let Some(t) = text.as_mut() {
                    t.extend_from_slice(&b);
                }
            }
            Frame::Continuation(Item::Last(b)) => {
                if let Some(mut t) = text.take() {
                    t.extend_from_slice(&b);
                    if let Ok(s) = std::str::from_utf8(&t) {
                        command(s);
                    }
                }
            }
            Frame::Close(_) => break,
            _ => {}
        }
    }
});
