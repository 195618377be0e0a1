//! Harness for end-to-end tests: the real `earshot` binary driven by sipp.
//!
//! * [`Engine`] starts `target/.../earshot` on free ports with its own data
//!   dir, waits for `/health/ready`, talks REST, stops it with SIGTERM or
//!   SIGKILL and restarts it on the same data dir.
//! * [`Sipp`] runs one sipp scenario (`tests/sipp/*.xml`) against it as a
//!   child process, over UDP (`-t u1`) or TCP (`-t t1`).
//!
//! Everything polls with generous deadlines instead of sleeping, and every
//! test gets its own ports and data dir, so tests can run in parallel on a
//! loaded 2-core machine. A missing sipp (or sox, for the test audio) FAILS
//! the test with a pointer to `scripts/setup`: never a silent pass.
#![allow(dead_code)]

pub mod http_receiver;
pub mod rtp_send;
pub mod two_party;
pub mod ws_client;

use serde_json::Value;
use std::fs;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// How long anything may take on a busy 2-core box before a test gives up.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
pub const POLL_TIMEOUT: Duration = Duration::from_secs(30);
pub const SIPP_TIMEOUT: Duration = Duration::from_secs(200);
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The ASR model the tests use (`scripts/fetch-model`); panics with a
/// pointer to the script when it is missing.
pub fn asr_model() -> PathBuf {
    let p = repo_root().join("models/ggml-tiny.en-q8_0.bin");
    assert!(
        p.is_file(),
        "{} missing: run scripts/fetch-model (scripts/setup does)",
        p.display()
    );
    p
}

/// An environment variable's value (trimmed), or `default` when unset or
/// unparsable: the knobs of the ignored long-running tests.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The repository root (sipp runs there: scenarios name `tests/audio/...`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("actors/ has a parent")
        .to_path_buf()
}

pub fn scenario_path(name: &str) -> PathBuf {
    repo_root().join("tests/sipp").join(name)
}

// ---------------------------------------------------------------------------
// Tools: sipp and the test audio.

/// Panics (fails the test) when sipp is not installed.
pub fn require_sipp() {
    let ok = Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(
        ok,
        "sipp is not installed (or not in PATH): these end-to-end tests need it. \
         Run scripts/setup (it installs sip-tester, sox and the audio prompts)."
    );
}

/// Run a command in the repository root: `None` on success, else what it
/// printed (or why it could not start).
pub fn run_in_repo(cmd: &mut Command) -> Option<String> {
    match cmd.current_dir(repo_root()).output() {
        Ok(o) if o.status.success() => None,
        Ok(o) => Some(format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Some(format!("{:?}: {e}", cmd.get_program())),
    }
}

static AUDIO: Once = Once::new();
static AUDIO_ERR: Mutex<Option<String>> = Mutex::new(None);

/// Makes sure tests/audio/*.ulaw exist (runs scripts/make-audio once).
pub fn require_audio() {
    AUDIO.call_once(|| {
        if repo_root().join("tests/audio/caller.ulaw").exists()
            && repo_root().join("tests/audio/monologue.ulaw").exists()
        {
            return;
        }
        *AUDIO_ERR.lock().unwrap() =
            run_in_repo(&mut Command::new(repo_root().join("scripts/make-audio")));
    });
    if let Some(e) = AUDIO_ERR.lock().unwrap().as_ref() {
        panic!("test audio missing and scripts/make-audio failed ({e}); run scripts/setup");
    }
}

// ---------------------------------------------------------------------------
// Ports.

static PORT_SEQ: AtomicU32 = AtomicU32::new(0);

/// A port free for both UDP and TCP on 127.0.0.1 right now.
pub fn free_udp_tcp_port() -> u16 {
    for _ in 0..200 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp :0");
        let port = udp.local_addr().unwrap().port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// Send one SIP request to the engine over UDP (`LOCAL` in it becomes the
/// sending socket's address) and return the first final answer, whole
/// (provisional answers skipped).
pub fn sip_final(engine: &Engine, request: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let req = request.replace("LOCAL", &sock.local_addr().unwrap().to_string());
    sock.send_to(req.as_bytes(), engine.sip_addr()).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).expect("an answer within 3 s");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 1") {
            return text;
        }
    }
}

pub fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind tcp :0")
        .local_addr()
        .unwrap()
        .port()
}

/// A block of `len` ports (even start) not handed out to another test of
/// this process and free for UDP at the moment. Ranges come from
/// 20000..31999 (engines' RTP) or 50000..59999 (sipp media, which retries
/// busy ports itself), spread by pid so that parallel test binaries rarely
/// meet.
pub fn port_block(base: u16, span: u16, len: u16) -> u16 {
    let slots = u32::from(span / len);
    let pid_off = std::process::id() % slots;
    for _ in 0..slots {
        let n = PORT_SEQ.fetch_add(1, Ordering::Relaxed);
        let slot = (pid_off + n * 7) % slots;
        let lo = base + (slot as u16) * len;
        let lo = lo & !1;
        let all_free = (lo..lo + len)
            .step_by(2)
            .all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok());
        if all_free {
            return lo;
        }
    }
    panic!("no free block of {len} UDP ports in {base}+{span}");
}

// ---------------------------------------------------------------------------
// Polling.

/// Calls `f` until it returns `Some` or `timeout` passes; panics with `what`.
pub fn poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

// ---------------------------------------------------------------------------
// The engine.

/// Options for starting the engine.
#[derive(Clone, Debug, Default)]
pub struct EngineOpts {
    pub answer_delay_ms: Option<u64>,
    pub max_calls: Option<usize>,
    /// Speech recognition on (the repository's tiny.en q8_0 model, one
    /// ggml thread per worker); off by default so that tests which do not
    /// need it do not pay for it.
    pub asr: bool,
    /// Another model than the default tiny.en (with `asr`).
    pub asr_model: Option<PathBuf>,
    /// More `--flag value` pairs.
    pub extra_args: Vec<String>,
}

/// A running `earshot` process with its own ports and data dir.
pub struct Engine {
    child: Option<Child>,
    pub sip_port: u16,
    pub http_port: u16,
    pub rtp_lo: u16,
    pub rtp_hi: u16,
    /// Holds the data dir (and logs) until the engine is dropped.
    tmp: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub opts: EngineOpts,
    http: reqwest::blocking::Client,
    /// Each start's log file: the engine's stdout+stderr.
    logs: Vec<PathBuf>,
}

/// A REST answer: status code and JSON body (Null when not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Engine {
    pub fn start() -> Engine {
        Self::start_with(EngineOpts::default())
    }

    pub fn start_with(opts: EngineOpts) -> Engine {
        let tmp = tempfile::Builder::new()
            .prefix("earshot-e2e-")
            .tempdir()
            .expect("tempdir");
        let data_dir = tmp.path().join("data");
        fs::create_dir_all(&data_dir).unwrap();
        // Below the kernel's ephemeral range (32768+), so that no client socket
        // of this machine lands in it between the probe and the engine's bind.
        let rtp_lo = port_block(20000, 12000, 40);
        let mut e = Engine {
            child: None,
            sip_port: 0,
            http_port: 0,
            rtp_lo,
            rtp_hi: rtp_lo + 39,
            tmp,
            data_dir,
            opts,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .no_proxy()
                .build()
                .unwrap(),
            logs: vec![],
        };
        e.spawn();
        e
    }

    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.sip_port))
    }

    pub fn tmp_path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Starts the binary on fresh SIP/HTTP ports (same data dir and RTP
    /// range) and waits for `/health/ready`. A port taken between probing
    /// and binding makes the engine exit: then it is tried again.
    fn spawn(&mut self) {
        let mut last_log = String::new();
        for attempt in 0..3 {
            self.sip_port = free_udp_tcp_port();
            self.http_port = free_tcp_port();
            let log = self
                .tmp
                .path()
                .join(format!("engine-{}-{attempt}.log", self.logs.len()));
            let out = fs::File::create(&log).unwrap();
            let err = out.try_clone().unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_earshot"));
            for (k, _) in std::env::vars() {
                if k.starts_with("EARSHOT_") {
                    cmd.env_remove(k);
                }
            }
            cmd.current_dir(self.tmp.path())
                .env(
                    "EARSHOT_LOG",
                    "info,earshot=debug,earshot_actors=debug,sled=warn",
                )
                .arg("--config")
                .arg(repo_root().join("config/default.toml"))
                .arg("--sip-listen")
                .arg(format!("127.0.0.1:{}", self.sip_port))
                .arg("--http-listen")
                .arg(format!("127.0.0.1:{}", self.http_port))
                .arg("--rtp-ports")
                .arg(format!("{}-{}", self.rtp_lo, self.rtp_hi))
                .arg("--media-ip")
                .arg("127.0.0.1")
                .arg("--data-dir")
                .arg(&self.data_dir)
                .arg("--analysis-config-dir")
                .arg(repo_root().join("config"))
                .arg("--models-dir")
                .arg(repo_root().join("models"));
            if let Some(d) = self.opts.answer_delay_ms {
                cmd.arg("--answer-delay-ms").arg(d.to_string());
            }
            if let Some(m) = self.opts.max_calls {
                cmd.arg("--max-calls").arg(m.to_string());
            }
            if self.opts.asr {
                cmd.arg("--asr")
                    .arg("true")
                    .arg("--asr-model")
                    .arg(self.opts.asr_model.clone().unwrap_or_else(asr_model))
                    .arg("--asr-threads")
                    .arg("1");
            } else {
                cmd.arg("--asr").arg("false");
            }
            cmd.args(&self.opts.extra_args);
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("spawn the earshot binary");
            self.child = Some(child);
            self.logs.push(log.clone());
            if self.wait_ready() {
                return;
            }
            last_log = fs::read_to_string(&log).unwrap_or_default();
            self.kill();
        }
        panic!("earshot never became ready (3 attempts); last log:\n{last_log}");
    }

    /// True once `/health/ready` answers 200; false if the process exits or
    /// the deadline passes.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                return false;
            }
            if let Ok(r) = self
                .http
                .get(self.url("/health/ready"))
                .timeout(Duration::from_secs(2))
                .send()
            {
                if r.status().as_u16() == 200 {
                    return true;
                }
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        false
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http_port, path)
    }

    fn reply(r: reqwest::blocking::Response) -> Reply {
        let status = r.status().as_u16();
        let text = r.text().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    pub fn get(&self, path: &str) -> Reply {
        let r = self
            .http
            .get(self.url(path))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log_tail()));
        Self::reply(r)
    }

    pub fn post(&self, path: &str) -> Reply {
        let r = self
            .http
            .post(self.url(path))
            .send()
            .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", self.log_tail()));
        Self::reply(r)
    }

    /// `GET /api/v1/calls/active` as an array.
    pub fn active(&self) -> Vec<Value> {
        let r = self.get("/api/v1/calls/active");
        assert_eq!(r.status, 200, "GET /api/v1/calls/active: {}", r.text);
        r.body
            .as_array()
            .unwrap_or_else(|| panic!("/active is not an array: {}", r.text))
            .clone()
    }

    /// The live session with this Call-ID, if listed in /active.
    pub fn active_call(&self, call_id: &str) -> Option<Value> {
        self.active()
            .into_iter()
            .find(|c| c["call_id"].as_str() == Some(call_id))
    }

    /// `GET /api/v1/calls/{id}` (id percent-encoded).
    pub fn call(&self, call_id: &str) -> Reply {
        self.get(&format!("/api/v1/calls/{}", encode(call_id)))
    }

    /// Polls until the call is listed in /active and `pred` holds for it.
    pub fn wait_active(&self, call_id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll(what, POLL_TIMEOUT, || {
                let c = self.active_call(call_id)?;
                last = c.clone();
                pred(&c).then_some(c)
            })
        }));
        match r {
            Ok(v) => v,
            Err(_) => panic!(
                "call {call_id}: timed out waiting for {what}; last seen in /active: {}\n{}",
                serde_json::to_string_pretty(&last).unwrap(),
                self.log_tail()
            ),
        }
    }

    /// Polls `GET /api/v1/calls/{id}` until it is 200 and `pred` holds.
    pub fn wait_call(&self, call_id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let mut last = String::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            poll(what, POLL_TIMEOUT, || {
                let r = self.call(call_id);
                last = format!("{} {}", r.status, r.text);
                (r.status == 200 && pred(&r.body)).then_some(r.body)
            })
        }));
        match r {
            Ok(v) => v,
            Err(_) => panic!(
                "call {call_id}: timed out waiting for {what}; last GET: {last}\n{}",
                self.log_tail()
            ),
        }
    }

    /// The process's exit status if it has exited (crashed) on its own;
    /// `None` while it runs (or after `kill`/`terminate`).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// SIGTERM, then wait (up to 30 s) for a graceful exit; SIGKILL after.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "earshot did not exit within 30 s of SIGTERM\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// SIGKILL (a crash, as far as the engine is concerned).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stops the engine gracefully (if running) and starts it again on the
    /// same data dir (new SIP/HTTP ports).
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        self.spawn();
    }

    /// Everything the engine logged so far (all starts).
    pub fn log(&self) -> String {
        let mut s = String::new();
        for l in &self.logs {
            s.push_str(&format!("---- {}\n", l.display()));
            s.push_str(&fs::read_to_string(l).unwrap_or_default());
        }
        s
    }

    /// The last lines of the log, for panic messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(60);
        format!(
            "---- engine log (last 60 lines) ----\n{}",
            lines[from..].join("\n")
        )
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() || std::env::var_os("EARSHOT_TEST_LOGS").is_some() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// Percent-encodes a path segment (Call-IDs contain '@').
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// sipp.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn flag(self) -> &'static str {
        match self {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

static CALL_SEQ: AtomicU32 = AtomicU32::new(0);

/// One sipp process running one call of a scenario.
pub struct Sipp {
    child: Option<Child>,
    pub scenario: String,
    pub transport: Transport,
    /// The SIP Call-ID sipp uses (set with -cid_str, so known in advance).
    pub call_id: String,
    pub local_port: u16,
    dir: tempfile::TempDir,
    started: Instant,
}

/// What a finished sipp run left behind.
#[derive(Debug)]
pub struct SippOutcome {
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub screen: String,
    pub errors: String,
    pub messages: String,
}

impl SippOutcome {
    pub fn success(&self) -> bool {
        !self.timed_out && self.status.map(|s| s.success()).unwrap_or(false)
    }

    pub fn describe(&self) -> String {
        let screen: Vec<&str> = self.screen.lines().collect();
        let from = screen.len().saturating_sub(40);
        format!(
            "sipp exit: {:?}{}\n---- sipp errors ----\n{}\n---- sipp messages ----\n{}\n---- sipp screen (tail) ----\n{}",
            self.status,
            if self.timed_out { " (killed: timed out)" } else { "" },
            self.errors,
            tail(&self.messages, 200),
            screen[from..].join("\n")
        )
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Sipp {
    /// Starts `tests/sipp/<scenario>` for one call against `engine`.
    pub fn start(engine: &Engine, scenario: &str, transport: Transport) -> Sipp {
        Self::start_args(engine, scenario, transport, &[])
    }

    pub fn start_args(
        engine: &Engine,
        scenario: &str,
        transport: Transport,
        extra: &[&str],
    ) -> Sipp {
        require_sipp();
        require_audio();
        let path = scenario_path(scenario);
        assert!(path.exists(), "no scenario {}", path.display());
        let dir = tempfile::Builder::new()
            .prefix("earshot-sipp-")
            .tempdir()
            .unwrap();
        let local_port = free_udp_tcp_port();
        let media_port = port_block(50000, 10000, 20);
        let stem = scenario.trim_end_matches(".xml").replace(['/', '.'], "-");
        let call_id = format!(
            "e2e-{stem}-{}-{}-{}",
            transport.name(),
            std::process::id(),
            CALL_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let screen = fs::File::create(dir.path().join("screen.txt")).unwrap();
        let screen_err = screen.try_clone().unwrap();
        let child = Command::new("sipp")
            .current_dir(repo_root())
            .arg("-sf")
            .arg(&path)
            .args(["-m", "1", "-l", "1"])
            .args(["-t", transport.flag()])
            .args(["-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .args(["-p", &local_port.to_string()])
            .args(["-mp", &media_port.to_string()])
            // sipp replaces %u with the call number (always 1 here).
            .args(["-cid_str", &format!("{call_id}-%u")])
            .args(["-nostdin", "-timeout", "180s", "-timeout_error"])
            .args(["-max_socket", "10"])
            .arg("-trace_err")
            .arg("-error_file")
            .arg(dir.path().join("errors.log"))
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(dir.path().join("messages.log"))
            .args(extra)
            .arg(engine.sip_addr().to_string())
            .stdin(Stdio::null())
            .stdout(screen)
            .stderr(screen_err)
            .spawn()
            .expect("spawn sipp (run scripts/setup)");
        Sipp {
            child: Some(child),
            scenario: scenario.to_owned(),
            transport,
            call_id: format!("{call_id}-1"),
            local_port,
            dir,
            started: Instant::now(),
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Waits for sipp to exit (killing it after [`SIPP_TIMEOUT`]).
    pub fn finish(mut self) -> SippOutcome {
        let mut child = self.child.take().expect("sipp already finished");
        let deadline = self.started + SIPP_TIMEOUT;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break Some(st),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    timed_out = true;
                    break child.wait().ok();
                }
                Ok(None) => std::thread::sleep(POLL_INTERVAL),
                Err(_) => break None,
            }
        };
        let read = |n: &str| {
            let mut s = String::new();
            if let Ok(mut f) = fs::File::open(self.dir.path().join(n)) {
                let mut b = vec![];
                let _ = f.read_to_end(&mut b);
                s = String::from_utf8_lossy(&b).into_owned();
            }
            s
        };
        SippOutcome {
            status,
            timed_out,
            screen: read("screen.txt"),
            errors: read("errors.log"),
            messages: read("messages.log"),
        }
    }

    /// Waits for sipp and fails the test (with sipp's and the engine's logs)
    /// unless the scenario passed.
    pub fn expect_success(self, engine: &Engine) -> SippOutcome {
        let what = format!("{} over {}", self.scenario, self.transport.name());
        let out = self.finish();
        assert!(
            out.success(),
            "sipp scenario {what} failed\n{}\n{}",
            out.describe(),
            engine.log_tail()
        );
        out
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Session JSON helpers.

/// `participants[]` as (participant_id, aor, name) — missing fields as "".
pub fn participants(call: &Value) -> Vec<(String, String, String)> {
    call["participants"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    (
                        p["participant_id"].as_str().unwrap_or_default().to_owned(),
                        p["aor"].as_str().unwrap_or_default().to_owned(),
                        p["name"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The stream with this label.
pub fn stream<'a>(call: &'a Value, label: &str) -> Option<&'a Value> {
    call["streams"]
        .as_array()?
        .iter()
        .find(|s| s["label"].as_str() == Some(label))
}

/// The participant a stream (by label) is mapped to.
pub fn participant_of_label<'a>(call: &'a Value, label: &str) -> Option<&'a Value> {
    let pid = stream(call, label)?["participant_id"].as_str()?;
    call["participants"]
        .as_array()?
        .iter()
        .find(|p| p["participant_id"].as_str() == Some(pid))
}

pub fn counter(call: &Value, name: &str) -> u64 {
    call["counters"][name].as_u64().unwrap_or(0)
}
