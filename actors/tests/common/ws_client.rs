//! A WebSocket client for the tests (and the demo/bench examples, which
//! include this file): connects to the engine's `/ws/transcriptions`, and a
//! background thread records every text frame (parsed JSON, with its arrival
//! instant) until stopped.
#![allow(dead_code)]

use serde_json::Value;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub type Socket = WebSocket<MaybeTlsStream<TcpStream>>;

/// Connect (`query` e.g. `""` or `"?call_id=x"`).
pub fn connect(http_port: u16, query: &str) -> Socket {
    let url = format!("ws://127.0.0.1:{http_port}/ws/transcriptions{query}");
    connect_url(&url, Duration::from_millis(200)).unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// Connect to `url`; reads give up after `read_timeout` (see [`is_timeout`]).
pub fn connect_url(url: &str, read_timeout: Duration) -> Result<Socket, Box<tungstenite::Error>> {
    let (ws, resp) = tungstenite::connect(url)?;
    assert_eq!(resp.status().as_u16(), 101);
    if let MaybeTlsStream::Plain(s) = ws.get_ref() {
        s.set_read_timeout(Some(read_timeout))
            .map_err(|e| Box::new(e.into()))?;
    }
    Ok(ws)
}

/// A read that only timed out (nothing arrived yet).
pub fn is_timeout(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(e)
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// Percent-encode a query/path value.
pub fn url_encode(x: &str) -> String {
    x.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Reads the next text frame as JSON (waiting up to `timeout`).
pub fn next_json(ws: &mut Socket, timeout: Duration) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match ws.read() {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(e) => panic!("WebSocket read: {e}"),
        }
    }
    None
}

/// Records every frame in the background.
pub struct Recorder {
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<(Instant, Value)>>>,
    thread: Option<JoinHandle<()>>,
}

impl Recorder {
    pub fn start(mut ws: Socket) -> Recorder {
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(vec![]));
        let (s, f) = (stop.clone(), frames.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match ws.read() {
                    Ok(Message::Text(t)) => {
                        if let Ok(v) = serde_json::from_str::<Value>(&t) {
                            f.lock().unwrap().push((Instant::now(), v));
                        }
                    }
                    Ok(Message::Close(_)) => break,
                    Ok(_) => {}
                    Err(e) if is_timeout(&e) => {}
                    Err(_) => break,
                }
            }
            let _ = ws.close(None);
        });
        Recorder {
            stop,
            frames,
            thread: Some(thread),
        }
    }

    pub fn frames(&self) -> Vec<(Instant, Value)> {
        self.frames.lock().unwrap().clone()
    }

    pub fn stop(mut self) -> Vec<(Instant, Value)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.frames()
    }
}
