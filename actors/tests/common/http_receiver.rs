//! A real local HTTP server standing in for a helpline's agent service:
//! an OAuth2 token endpoint (`POST /token`, client-credentials) and webhook
//! endpoints that record what they get. `/hook` answers 500 to the first
//! notification that is not a test (so the engine's retry is exercised),
//! 200 after; `/dead` always answers 500 (dead-letter path). Plain
//! HTTP/1.1 over std sockets, keep-alive honoured, one thread per
//! connection.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The status the receiver answered.
    pub answered: u16,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct State {
    requests: Vec<Request>,
    tokens: u32,
    failed_once: bool,
}

pub struct Receiver {
    pub port: u16,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(c) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(c, st));
            }
        });
        Receiver { port, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests to `path`.
    pub fn to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

fn serve(c: TcpStream, st: Arc<Mutex<State>>) {
    let mut w = match c.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(c);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = vec![];
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        let (status, reply) = {
            let mut s = st.lock().unwrap();
            let (status, reply) = match path.as_str() {
                "/token" => {
                    s.tokens += 1;
                    (
                        200,
                        format!(
                            r#"{{"access_token":"tok-{}","token_type":"Bearer","expires_in":3600}}"#,
                            s.tokens
                        ),
                    )
                }
                "/hook" => {
                    let test = body.contains("\"test_notification\"");
                    if !test && !s.failed_once {
                        s.failed_once = true;
                        (500, r#"{"error":"try again"}"#.to_string())
                    } else {
                        (200, r#"{"ok":true}"#.to_string())
                    }
                }
                "/dead" => (500, r#"{"error":"always"}"#.to_string()),
                _ => (404, r#"{"error":"no such path"}"#.to_string()),
            };
            s.requests.push(Request {
                at: Instant::now(),
                method: method.clone(),
                path: path.clone(),
                headers: headers.clone(),
                body: body.clone(),
                answered: status,
            });
            (status, reply)
        };
        let text = if status == 200 { "OK" } else { "Error" };
        let resp = format!(
            "HTTP/1.1 {status} {text}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}
