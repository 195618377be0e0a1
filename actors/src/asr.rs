//! The speech recogniser: a pool of worker threads running whisper.cpp
//! (whisper-rs), off the actix event loop.
//!
//! * One model (`WhisperContext`) shared by all workers, one `WhisperState`
//!   per worker, `threads` ggml threads each (default 1: on a busy box
//!   ggml's spinning threads cost more than they give), `workers` threads
//!   (default: one per core).
//! * Two bounded crossbeam queues: finals and partials. A worker always
//!   takes a final first. Media actors submit with `try_send`; a partial
//!   that does not fit is simply skipped (fewer partials is the first
//!   degradation), a final that does not fit stays with its call and is
//!   offered again every tick (never dropped; it is decoded late and marked
//!   `lagging`). A partial that waited longer than [`STALE_PARTIAL`] is
//!   not decoded at all.
//! * Each result goes straight to the call's `CallActor` (`do_send`; the
//!   worker never waits on an actor).
//! * `audio_ctx`: whisper's encoder normally processes a 30 s window
//!   whatever the utterance length. [`AudioCtx::Auto`] sizes the window to
//!   the utterance (plus a margin), many times cheaper; `Full` keeps 30 s.
//! * Degradation under load, in order: fewer partials (skipped when their
//!   queue is full or stale, aborted when a final waits), packed windows
//!   (several waiting finals in one decode; on by default only with the
//!   full window, see [`AsrSettings::pack`]), then finals decoded late and
//!   marked `lagging`. Audio is never dropped and no actor ever waits.

use crate::call::{AsrDone, CallActor};
use actix::Addr;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use earshot::asr::tracker::{AsrRequest, JobKind};
use earshot::asr::{Hypothesis, Word};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

/// Under backlog a worker packs waiting finals into one decode of at most
/// this much audio (whisper's window is 30 s), at most this many, with
/// this much silence between them.
pub const PACK_MAX: Duration = Duration::from_secs(28);
pub const PACK_MAX_JOBS: usize = 8;
pub const PACK_GAP: Duration = Duration::from_millis(1000);
/// Partials older than this when a worker gets to them are skipped.
pub const STALE_PARTIAL: Duration = Duration::from_millis(1500);
/// Finals that waited longer than this are marked `lagging`.
pub const LAGGING_AFTER: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("ASR model {0} not found (run scripts/fetch-model, or set --asr-model / --asr false)")]
    ModelMissing(PathBuf),
    #[error("loading ASR model {path}: {err}")]
    Load { path: PathBuf, err: String },
    #[error("ASR worker: {0}")]
    Worker(String),
}

/// Encoder window sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCtx {
    /// The utterance plus a margin (fast).
    Auto,
    /// Whisper's full 30 s window (slowest, the reference accuracy).
    Full,
}

impl std::str::FromStr for AudioCtx {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(AudioCtx::Auto),
            "full" => Ok(AudioCtx::Full),
            other => Err(format!("asr_audio_ctx must be auto or full, got {other:?}")),
        }
    }
}

/// Recogniser settings.
#[derive(Debug, Clone)]
pub struct AsrSettings {
    pub model: PathBuf,
    pub workers: usize,
    pub threads: usize,
    /// ISO 639-1 code, or `None` to detect per utterance (multilingual
    /// models; English-only models always say `en`).
    pub language: Option<String>,
    /// Also translate non-English finals to English (multilingual models;
    /// a second decode per such final). The transcript stays in the
    /// language spoken.
    pub translate: bool,
    /// The languages a translation model translates instead (whisper's
    /// translate pass is skipped for them); set at start-up from the
    /// analysis' model.
    pub model_translates: Option<earshot::analysis::translate::TranslatorInfo>,
    /// Capacity of each queue.
    pub queue: usize,
    pub audio_ctx: AudioCtx,
    /// Pack waiting finals into one decode when behind. Pays off with the
    /// full 30 s window (whose cost is the same for 2 s or 28 s of audio);
    /// with utterance-sized windows it was measured slower and less
    /// accurate (scripts/bench-asr, N = 24: p50 1.2 s → 7.2 s), so its
    /// default follows `audio_ctx`.
    pub pack: bool,
    /// Silence each pool worker decodes before it takes any job: the
    /// longest audio one job carries (set by the configuration: the
    /// tracker's longest utterance plus its rolls, at least [`PACK_MAX`]
    /// when packing). whisper.cpp grows a state's buffers to the largest
    /// window it has decoded and keeps them (tiny.en q8_0: 79 MB loaded,
    /// 126 MB after windows of 1 to 15 s; `scripts/bench-asr-memory`), so a
    /// cold worker's memory grows as it meets longer utterances. Warmed,
    /// the state's footprint is there from the start and flat after, and no
    /// call pays for the growth. 0: no warm-up.
    pub warm_up_ms: u64,
}

/// Audio for one decode, and where its result goes.
#[derive(Debug)]
pub struct Job {
    pub call: Addr<CallActor>,
    pub stream: usize,
    pub req: AsrRequest,
    pub queued_at: Instant,
}

impl Job {
    /// Send the result to the call (never waits).
    fn reply(self, result: Result<Hypothesis, String>, lagging: bool, decode_ms: u64) {
        self.call.do_send(AsrDone {
            stream: self.stream,
            utterance: self.req.utterance,
            kind: self.req.kind,
            start_ms: self.req.start_ms,
            end_ms: self.req.end_ms,
            result,
            lagging,
            decode_ms,
        });
    }
}

/// Load a ggml Whisper model (whisper.cpp's own logging silenced).
fn load_context(model: &std::path::Path) -> Result<WhisperContext, AsrError> {
    if !model.is_file() {
        return Err(AsrError::ModelMissing(model.to_path_buf()));
    }
    whisper_rs::install_logging_hooks();
    WhisperContext::new_with_params(model, WhisperContextParameters::default()).map_err(|e| {
        AsrError::Load {
            path: model.to_path_buf(),
            err: e.to_string(),
        }
    })
}

/// Counters visible through the registry (`/status`, `/metrics` later).
#[derive(Debug, Default)]
pub struct AsrCounters {
    /// Finals queued and not yet taken by a worker. A partial being decoded
    /// is abandoned as soon as this is non-zero (whisper's abort callback):
    /// a final never waits behind a partial.
    pub finals_waiting: AtomicUsize,
    pub partials_preempted: AtomicU64,
    /// Finals decoded in packed windows.
    pub packed: AtomicU64,
    pub finals_decoded: AtomicU64,
    pub partials_decoded: AtomicU64,
    pub partials_skipped_full: AtomicU64,
    pub partials_skipped_stale: AtomicU64,
    pub finals_deferred: AtomicU64,
    pub errors: AtomicU64,
    pub busy: AtomicUsize,
    /// Audio decoded and CPU time spent, for the real-time factor.
    pub audio_ms: AtomicU64,
    pub decode_ms: AtomicU64,
}

/// Snapshot of the pool.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct AsrStats {
    pub workers: usize,
    pub busy_workers: usize,
    pub queued_finals: usize,
    pub queued_partials: usize,
    pub finals_decoded: u64,
    pub partials_decoded: u64,
    pub partials_skipped: u64,
    pub finals_deferred: u64,
    pub errors: u64,
    pub partials_preempted: u64,
    pub finals_packed: u64,
    /// Decode time over audio time (lower is faster; 0.1 = 10x real time).
    pub real_time_factor: f64,
}

/// Handle to the pool; cheap to clone.
#[derive(Clone)]
pub struct AsrPool {
    finals: Sender<Job>,
    partials: Sender<Job>,
    counters: Arc<AsrCounters>,
    workers: usize,
    pub model_name: String,
}

impl std::fmt::Debug for AsrPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsrPool")
            .field("model", &self.model_name)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl AsrPool {
    /// Load the model and start the workers.
    pub fn start(s: AsrSettings) -> Result<AsrPool, AsrError> {
        let ctx = load_context(&s.model)?;
        let english_only = !ctx.is_multilingual();
        let ctx = Arc::new(ctx);
        let (finals, finals_rx) = crossbeam_channel::bounded::<Job>(s.queue.max(1));
        let (partials, partials_rx) = crossbeam_channel::bounded::<Job>(s.queue.max(1));
        let counters = Arc::new(AsrCounters::default());
        let workers = s.workers.max(1);
        for i in 0..workers {
            let state = ctx
                .create_state()
                .map_err(|e| AsrError::Worker(e.to_string()))?;
            let w = Recognizer {
                state,
                eot: ctx.token_eot(),
                english_only,
                settings: s.clone(),
                counters: counters.clone(),
            };
            let (f, p) = (finals_rx.clone(), partials_rx.clone());
            std::thread::Builder::new()
                .name(format!("asr-{i}"))
                .spawn(move || w.run(f, p))
                .map_err(|e| AsrError::Worker(e.to_string()))?;
        }
        let model_name = s
            .model
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        tracing::info!(
            model = %s.model.display(), workers, threads = s.threads, audio_ctx = ?s.audio_ctx,
            multilingual = !english_only, "ASR ready"
        );
        Ok(AsrPool {
            finals,
            partials,
            counters,
            workers,
            model_name,
        })
    }

    /// Queue a job without waiting. A final that does not fit comes back
    /// (`Err`) for the caller to offer again; a partial that does not fit
    /// is dropped (`Ok(false)`).
    pub fn submit(&self, job: Job) -> Result<bool, Job> {
        match job.req.kind {
            JobKind::Final => match self.finals.try_send(job) {
                Ok(()) => {
                    self.counters.finals_waiting.fetch_add(1, Ordering::AcqRel);
                    Ok(true)
                }
                Err(TrySendError::Full(j)) | Err(TrySendError::Disconnected(j)) => {
                    self.counters
                        .finals_deferred
                        .fetch_add(1, Ordering::Relaxed);
                    Err(j)
                }
            },
            JobKind::Partial => match self.partials.try_send(job) {
                Ok(()) => Ok(true),
                Err(_) => {
                    self.counters
                        .partials_skipped_full
                        .fetch_add(1, Ordering::Relaxed);
                    Ok(false)
                }
            },
        }
    }

    /// Offer finals that found no room before, oldest first, until the
    /// queue is full again (what is left stays in `waiting`, in order).
    pub fn submit_deferred(&self, waiting: &mut std::collections::VecDeque<Job>) {
        while let Some(job) = waiting.pop_front() {
            if let Err(job) = self.submit(job) {
                waiting.push_front(job);
                break;
            }
        }
    }

    pub fn stats(&self) -> AsrStats {
        let c = &self.counters;
        let audio = c.audio_ms.load(Ordering::Relaxed) as f64;
        AsrStats {
            workers: self.workers,
            busy_workers: c.busy.load(Ordering::Relaxed),
            queued_finals: self.finals.len(),
            queued_partials: self.partials.len(),
            finals_decoded: c.finals_decoded.load(Ordering::Relaxed),
            partials_decoded: c.partials_decoded.load(Ordering::Relaxed),
            partials_skipped: c.partials_skipped_full.load(Ordering::Relaxed)
                + c.partials_skipped_stale.load(Ordering::Relaxed),
            finals_deferred: c.finals_deferred.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            partials_preempted: c.partials_preempted.load(Ordering::Relaxed),
            finals_packed: c.packed.load(Ordering::Relaxed),
            real_time_factor: if audio > 0.0 {
                c.decode_ms.load(Ordering::Relaxed) as f64 / audio
            } else {
                0.0
            },
        }
    }
}

/// One whisper state and the settings to decode with: what each pool
/// worker runs, usable on its own too (offline tools, tests).
pub struct Recognizer {
    state: whisper_rs::WhisperState,
    eot: i32,
    english_only: bool,
    settings: AsrSettings,
    counters: Arc<AsrCounters>,
}

impl Recognizer {
    /// Load `settings.model` on its own and make one recogniser.
    pub fn load(settings: AsrSettings) -> Result<Recognizer, AsrError> {
        let ctx = load_context(&settings.model)?;
        let state = ctx
            .create_state()
            .map_err(|e| AsrError::Worker(e.to_string()))?;
        Ok(Recognizer {
            state,
            eot: ctx.token_eot(),
            english_only: !ctx.is_multilingual(),
            settings,
            counters: Arc::default(),
        })
    }

    /// Decode 16 kHz mono audio (a final: full decoding with fallback).
    pub fn recognize(&mut self, audio: &[f32]) -> Result<Hypothesis, String> {
        self.decode(audio, JobKind::Final)
    }

    /// Decode `audio_ms` of silence so that the whisper state's buffers
    /// reach the size a window of that length needs (see
    /// [`AsrSettings::warm_up_ms`]). Counts nothing in the pool's figures.
    pub fn warm_up(&mut self, audio_ms: u64) -> Result<(), String> {
        let silence = vec![0.0f32; usize::try_from(audio_ms * 16).unwrap_or(usize::MAX)];
        self.decode(&silence, JobKind::Final).map(|_| ())
    }

    fn run(mut self, finals: Receiver<Job>, partials: Receiver<Job>) {
        let warm_ms = self.settings.warm_up_ms;
        if warm_ms > 0 {
            let t0 = Instant::now();
            match self.warm_up(warm_ms) {
                Ok(()) => tracing::info!(
                    audio_ms = warm_ms,
                    took_ms = t0.elapsed().as_millis() as u64,
                    "ASR worker warmed up (buffers sized for the longest window)"
                ),
                Err(e) => tracing::warn!(error = %e, "ASR worker warm-up failed; going on"),
            }
        }
        loop {
            // Finals first; otherwise whichever comes.
            let job = match finals.try_recv() {
                Ok(j) => j,
                Err(_) => match partials.try_recv() {
                    Ok(j) => j,
                    Err(_) => {
                        crossbeam_channel::select! {
                            recv(finals) -> j => match j { Ok(j) => j, Err(_) => return },
                            recv(partials) -> j => match j { Ok(j) => j, Err(_) => return },
                        }
                    }
                },
            };
            if job.req.kind == JobKind::Final && !self.settings.pack {
                self.counters.finals_waiting.fetch_sub(1, Ordering::AcqRel);
            } else if job.req.kind == JobKind::Final {
                self.counters.finals_waiting.fetch_sub(1, Ordering::AcqRel);
                // Behind: pack more waiting finals into this decode.
                let mut pack = vec![job];
                let mut secs = pack[0].req.audio.len() as f64 / 16_000.0;
                while !finals.is_empty() && pack.len() < PACK_MAX_JOBS {
                    let Ok(next) = finals.try_recv() else { break };
                    self.counters.finals_waiting.fetch_sub(1, Ordering::AcqRel);
                    secs += next.req.audio.len() as f64 / 16_000.0 + PACK_GAP.as_secs_f64();
                    pack.push(next);
                    if secs > PACK_MAX.as_secs_f64() {
                        // Over: the last one goes alone next time round.
                        break;
                    }
                }
                let mut rest = vec![];
                if pack.len() > 1 && secs > PACK_MAX.as_secs_f64() {
                    rest.push(pack.pop().expect("len > 1"));
                }
                if pack.len() > 1 {
                    self.handle_packed(pack);
                } else {
                    self.handle(pack.pop().expect("one job"));
                }
                for j in rest {
                    self.handle(j);
                }
                continue;
            }
            self.handle(job);
        }
    }

    /// Run one decode as busy, counting its time against `audio_ms` of
    /// audio; a panic inside whisper-rs becomes an error, never a dead
    /// worker.
    fn timed<T>(
        &mut self,
        audio_ms: u64,
        f: impl FnOnce(&mut Self) -> Result<T, String>,
    ) -> (Result<T, String>, u64) {
        self.counters.busy.fetch_add(1, Ordering::Relaxed);
        let t0 = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self)))
            .unwrap_or_else(|_| Err("recogniser panicked".into()));
        let decode_ms = t0.elapsed().as_millis() as u64;
        self.counters.busy.fetch_sub(1, Ordering::Relaxed);
        self.counters
            .decode_ms
            .fetch_add(decode_ms, Ordering::Relaxed);
        self.counters
            .audio_ms
            .fetch_add(audio_ms, Ordering::Relaxed);
        (result, decode_ms)
    }

    fn handle_packed(&mut self, jobs: Vec<Job>) {
        self.counters
            .packed
            .fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let audios: Vec<&[f32]> = jobs.iter().map(|j| j.req.audio.as_slice()).collect();
        let audio_ms: u64 = audios.iter().map(|a| a.len() as u64 / 16).sum();
        let (result, decode_ms) = self.timed(audio_ms, |r| r.recognize_packed(&audios));
        tracing::debug!(
            finals = jobs.len(),
            audio_ms,
            decode_ms,
            "packed finals decoded"
        );
        let mut results: Vec<Result<Hypothesis, String>> = match result {
            Ok(v) => v.into_iter().map(Ok).collect(),
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "packed ASR decode failed");
                jobs.iter().map(|_| Err(e.clone())).collect()
            }
        };
        for (job, result) in jobs.into_iter().zip(results.drain(..)) {
            if result.is_ok() {
                self.counters.finals_decoded.fetch_add(1, Ordering::Relaxed);
            }
            let lagging = job.queued_at.elapsed() > LAGGING_AFTER;
            job.reply(result, lagging, decode_ms);
        }
    }

    fn handle(&mut self, job: Job) {
        let waited = job.queued_at.elapsed();
        let kind = job.req.kind;
        if kind == JobKind::Partial && waited > STALE_PARTIAL {
            self.counters
                .partials_skipped_stale
                .fetch_add(1, Ordering::Relaxed);
            job.reply(Err("stale".into()), true, 0);
            return;
        }
        let audio_ms = job.req.audio.len() as u64 / 16;
        let (result, decode_ms) = self.timed(audio_ms, |r| r.decode(&job.req.audio, kind));
        match (&result, kind) {
            (Err(e), JobKind::Partial) if e.starts_with("preempted") => {}
            (Err(e), _) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, ?kind, "ASR decode failed");
            }
            (Ok(_), JobKind::Final) => {
                self.counters.finals_decoded.fetch_add(1, Ordering::Relaxed);
            }
            (Ok(_), JobKind::Partial) => {
                self.counters
                    .partials_decoded
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        job.reply(result, waited > LAGGING_AFTER, decode_ms);
    }

    /// A final also gets an English translation when translation is on,
    /// the model is multilingual and the speech is not English (a second
    /// decode of the same audio with whisper's `translate` task, told the
    /// language the first pass found).
    fn decode(&mut self, audio: &[f32], kind: JobKind) -> Result<Hypothesis, String> {
        let (toks, language) = self.decode_tokens(audio, kind, None)?;
        let mut h = assemble(toks, language);
        if kind == JobKind::Final
            && self.settings.translate
            && !self.english_only
            && !h.text.trim().is_empty()
        {
            let by_model = |l: &str| {
                self.settings
                    .model_translates
                    .as_ref()
                    .is_some_and(|m| m.covers(Some(l)))
            };
            if let Some(l) = h.language.clone().filter(|l| l != "en" && !by_model(l)) {
                match self.decode_tokens(audio, kind, Some(&l)) {
                    Ok((t, _)) => h.translation = Some(assemble(t, None).text),
                    Err(e) => tracing::warn!(error = %e, "translation pass failed"),
                }
            }
        }
        Ok(h)
    }

    /// `translate_from`: run whisper's translate task on speech in that
    /// language (else transcribe).
    fn decode_tokens(
        &mut self,
        audio: &[f32],
        kind: JobKind,
        translate_from: Option<&str>,
    ) -> Result<(Vec<Tok>, Option<String>), String> {
        let s = &self.settings;
        let mut p = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        p.set_n_threads(s.threads.max(1) as i32);
        p.set_translate(translate_from.is_some());
        let language = if self.english_only {
            Some("en")
        } else {
            translate_from.or(s.language.as_deref())
        };
        p.set_language(language);
        p.set_no_context(true);
        p.set_print_special(false);
        p.set_print_progress(false);
        p.set_print_realtime(false);
        p.set_print_timestamps(false);
        p.set_suppress_blank(true);
        p.set_suppress_nst(true);
        p.set_token_timestamps(true);
        if kind == JobKind::Partial {
            // Partials are disposable: no temperature fallback, and dropped
            // the moment a final is waiting for a worker.
            p.set_temperature_inc(0.0);
            let flag: *const AtomicUsize = &self.counters.finals_waiting;
            // SAFETY: `abort_if_finals_waiting` only reads the atomic, which
            // lives in `self.counters` (an Arc held by this worker) for the
            // whole `full()` call below.
            unsafe {
                p.set_abort_callback(Some(abort_if_finals_waiting));
                p.set_abort_callback_user_data(flag as *mut std::ffi::c_void);
            }
        }
        // Whisper wants at least a second; pad short audio with silence.
        let mut padded;
        let mut samples = audio;
        if audio.len() < 16_000 + 1_600 {
            padded = audio.to_vec();
            padded.resize(16_000 + 1_600, 0.0);
            samples = &padded;
        }
        if s.audio_ctx == AudioCtx::Auto {
            p.set_audio_ctx(audio_ctx_for(samples.len()));
        }
        // Hallucination guard: fast speech is ~4 tokens/s; a loop would run
        // to the 224-token limit.
        let secs = audio.len() as f64 / 16_000.0;
        p.set_max_tokens((secs * 8.0 + 12.0).min(224.0) as i32);
        if let Err(e) = self.state.full(p, samples) {
            if kind == JobKind::Partial && self.counters.finals_waiting.load(Ordering::Acquire) > 0
            {
                self.counters
                    .partials_preempted
                    .fetch_add(1, Ordering::Relaxed);
                return Err("preempted by a final".into());
            }
            return Err(e.to_string());
        }
        let mut toks = vec![];
        for seg in self.state.as_iter() {
            let seg_mid = (seg.start_timestamp() + seg.end_timestamp()).max(0) as f64 / 200.0;
            for i in 0..seg.n_tokens() {
                let Some(tok) = seg.get_token(i) else {
                    continue;
                };
                let data = tok.token_data();
                if data.id >= self.eot {
                    continue; // special / timestamp tokens
                }
                let Ok(piece) = tok.to_str_lossy() else {
                    continue;
                };
                toks.push(Tok {
                    piece: piece.into_owned(),
                    p: f64::from(data.p),
                    t0: data.t0.max(0) as f64 / 100.0,
                    t1: data.t1.max(0) as f64 / 100.0,
                    seg_mid,
                });
            }
        }
        let lang_id = self.state.full_lang_id_from_state();
        let language = whisper_rs::get_lang_str(lang_id)
            .map(str::to_string)
            .or(language.map(str::to_string));
        Ok((toks, language))
    }

    /// Several finals in one decode (overload): their audio joined with
    /// [`PACK_GAP`] of silence, each token given back to the utterance its
    /// time falls in.
    pub fn recognize_packed(&mut self, audios: &[&[f32]]) -> Result<Vec<Hypothesis>, String> {
        let gap = (PACK_GAP.as_secs_f64() * 16_000.0) as usize;
        let mut joined = Vec::with_capacity(audios.iter().map(|a| a.len() + gap).sum());
        let mut offsets = vec![];
        for a in audios {
            offsets.push(joined.len() as f64 / 16_000.0);
            joined.extend_from_slice(a);
            joined.extend(std::iter::repeat_n(0.0, gap));
        }
        let (toks, language) = self.decode_tokens(&joined, JobKind::Final, None)?;
        let mut parts: Vec<Vec<Tok>> = vec![vec![]; audios.len()];
        // By segment (whisper's segment times come from its timestamp
        // tokens and follow the pauses; token times lag): the silence
        // between utterances makes them separate segments.
        for t in toks {
            let i = offsets.iter().rposition(|o| *o <= t.seg_mid).unwrap_or(0);
            parts[i].push(Tok {
                t0: (t.t0 - offsets[i]).max(0.0),
                t1: (t.t1 - offsets[i]).max(0.0),
                ..t
            });
        }
        Ok(parts
            .into_iter()
            .map(|p| assemble(p, language.clone()))
            .collect())
    }
}

/// A decoded text token; times in seconds from the audio's start.
#[derive(Debug, Clone)]
struct Tok {
    piece: String,
    p: f64,
    t0: f64,
    t1: f64,
    /// Middle of the token's segment.
    seg_mid: f64,
}

/// Tokens → text, words (sub-word pieces joined; a word's probability is
/// its weakest piece's), mean-probability confidence; repetition loops cut.
fn assemble(toks: Vec<Tok>, language: Option<String>) -> Hypothesis {
    let mut text = String::new();
    let mut words: Vec<Word> = vec![];
    let (mut psum, mut pn) = (0.0f64, 0usize);
    for t in toks {
        psum += t.p;
        pn += 1;
        text.push_str(&t.piece);
        let starts_word = t.piece.starts_with(' ') || words.is_empty();
        let trimmed = t.piece.trim();
        if trimmed.is_empty() {
            continue;
        }
        match words.last_mut() {
            Some(w) if !starts_word => {
                w.word.push_str(trimmed);
                w.end = t.t1.max(w.end);
                w.probability = w.probability.min(t.p);
            }
            _ => words.push(Word {
                word: trimmed.to_string(),
                start: t.t0,
                end: t.t1.max(t.t0),
                probability: t.p,
            }),
        }
    }
    let text = earshot::asr::trim_repetitions(text.trim());
    let n = text.split_whitespace().count();
    if n < words.len() {
        words.truncate(n);
    }
    Hypothesis {
        text,
        words,
        confidence: if pn > 0 { psum / pn as f64 } else { 0.0 },
        language,
        translation: None,
    }
}

/// whisper.cpp's abort callback for partials: stop when a final waits.
unsafe extern "C" fn abort_if_finals_waiting(data: *mut std::ffi::c_void) -> bool {
    // SAFETY: `data` is the `finals_waiting` counter (see `Worker::decode`).
    let waiting = unsafe { &*(data as *const AtomicUsize) };
    waiting.load(Ordering::Acquire) > 0
}

/// Encoder positions for `samples` of 16 kHz audio: 50 per second, plus a
/// one-second margin, rounded up to a multiple of 64, within whisper's 1500.
pub fn audio_ctx_for(samples: usize) -> i32 {
    let secs = samples as f64 / 16_000.0 + 1.0;
    let ctx = ((secs * 50.0 / 64.0).ceil() * 64.0) as i32;
    ctx.clamp(128, 1500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_ctx_follows_the_utterance() {
        assert_eq!(audio_ctx_for(16_000), 128); // 2 s → 100 → 128
        assert_eq!(audio_ctx_for(16_000 * 5), 320); // 6 s → 300 → 320
        assert_eq!(audio_ctx_for(16_000 * 40), 1500);
        assert!("auto".parse::<AudioCtx>().is_ok());
        assert!("half".parse::<AudioCtx>().is_err());
    }
}
