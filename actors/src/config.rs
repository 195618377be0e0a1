//! Settings: clap flags, each also an environment variable and a key of the
//! TOML config file. Precedence: flag > env > file > built-in default.

use anyhow::Context;
use clap::Parser;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "earshot",
    version,
    about = "Earshot: SIPREC recording and live speech analytics engine"
)]
pub struct Cli {
    /// TOML config file.
    #[arg(long, env = "EARSHOT_CONFIG", default_value = "config/default.toml")]
    pub config: PathBuf,
    /// SIP listen address (UDP and TCP).
    #[arg(long, env = "EARSHOT_SIP_LISTEN")]
    pub sip_listen: Option<SocketAddr>,
    /// HTTP listen address (REST and WebSocket).
    #[arg(long, env = "EARSHOT_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// RTP port range LO-HI.
    #[arg(long, env = "EARSHOT_RTP_PORTS")]
    pub rtp_ports: Option<String>,
    /// Address put in SDP answers.
    #[arg(long, env = "EARSHOT_MEDIA_IP")]
    pub media_ip: Option<IpAddr>,
    /// Data directory (sessions store, recordings).
    #[arg(long, env = "EARSHOT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Most live calls; more get 503.
    #[arg(long, env = "EARSHOT_MAX_CALLS")]
    pub max_calls: Option<usize>,
    /// Delay before the 200 OK to an INVITE, in milliseconds.
    #[arg(long, env = "EARSHOT_ANSWER_DELAY_MS")]
    pub answer_delay_ms: Option<u64>,
    /// Jitter buffer depth in milliseconds.
    #[arg(long, env = "EARSHOT_JITTER_MS")]
    pub jitter_ms: Option<u64>,
    /// webrtc-vad aggressiveness, 0 (least) to 3 (most).
    #[arg(long, env = "EARSHOT_VAD_MODE")]
    pub vad_mode: Option<u8>,
    /// Drop RTP from other addresses than the latched source.
    #[arg(long, env = "EARSHOT_STRICT_RTP_SOURCE")]
    pub strict_rtp_source: Option<bool>,
    /// End a call as failed ("no media") when no stream has had RTP for
    /// this many seconds (after answer, or mid-call; paused streams are not
    /// waited for). 0 = off.
    #[arg(long, env = "EARSHOT_RTP_TIMEOUT_SECS")]
    pub rtp_timeout_secs: Option<u64>,
    /// Refuse new calls (503) while the recordings disk has less than this
    /// many MB free; 0 = never refuse.
    #[arg(long, env = "EARSHOT_MIN_FREE_DISK_MB")]
    pub min_free_disk_mb: Option<u64>,
    /// Media threads (default: one per CPU core).
    #[arg(long, env = "EARSHOT_MEDIA_THREADS")]
    pub media_threads: Option<usize>,
    /// Media play-out tick in milliseconds, 10 to 200 (default 40): how
    /// often each call's RTP is drained and its audio processed.
    #[arg(long, env = "EARSHOT_MEDIA_TICK_MS")]
    pub media_tick_ms: Option<u64>,
    /// Speech recognition on or off (true/false, on/off).
    #[arg(long, env = "EARSHOT_ASR", value_parser = clap::builder::BoolishValueParser::new())]
    pub asr: Option<bool>,
    /// whisper.cpp (ggml) model file.
    #[arg(long, env = "EARSHOT_ASR_MODEL")]
    pub asr_model: Option<PathBuf>,
    /// Recogniser worker threads (default: one per CPU core).
    #[arg(long, env = "EARSHOT_ASR_WORKERS")]
    pub asr_workers: Option<usize>,
    /// ggml threads per worker.
    #[arg(long, env = "EARSHOT_ASR_THREADS")]
    pub asr_threads: Option<usize>,
    /// Spoken language (ISO 639-1) or "auto" (multilingual models).
    #[arg(long, env = "EARSHOT_ASR_LANGUAGE")]
    pub asr_language: Option<String>,
    /// Translate to English (multilingual models).
    #[arg(long, env = "EARSHOT_ASR_TRANSLATE", value_parser = clap::builder::BoolishValueParser::new())]
    pub asr_translate: Option<bool>,
    /// Encoder window: "auto" (utterance-sized, fast) or "full" (30 s).
    #[arg(long, env = "EARSHOT_ASR_AUDIO_CTX")]
    pub asr_audio_ctx: Option<String>,
    /// Pack waiting finals into one decode when behind (default: on with
    /// `--asr-audio-ctx full`, off with `auto`).
    #[arg(long, env = "EARSHOT_ASR_PACK", value_parser = clap::builder::BoolishValueParser::new())]
    pub asr_pack: Option<bool>,
    /// Send partial hypotheses (true/false).
    #[arg(long, env = "EARSHOT_ASR_PARTIALS", value_parser = clap::builder::BoolishValueParser::new())]
    pub asr_partials: Option<bool>,
    /// Least time between two partials of one participant, ms.
    #[arg(long, env = "EARSHOT_ASR_PARTIAL_MS")]
    pub asr_partial_ms: Option<u64>,
    /// Longest utterance before it is cut into a final, ms.
    #[arg(long, env = "EARSHOT_ASR_MAX_UTTERANCE_MS")]
    pub asr_max_utterance_ms: Option<u64>,
    /// Progressive and post-call analysis on or off.
    #[arg(long, env = "EARSHOT_ANALYSIS", value_parser = clap::builder::BoolishValueParser::new())]
    pub analysis: Option<bool>,
    /// Directory with keywords.toml, entities.toml, gazetteer/, taxonomy/, qa-rubric.toml.
    #[arg(long, env = "EARSHOT_ANALYSIS_CONFIG_DIR")]
    pub analysis_config_dir: Option<PathBuf>,
    /// Directory with fetched models and lexicons (lexicons/, all-minilm-l6-v2/).
    #[arg(long, env = "EARSHOT_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
    /// Taxonomy (file name under <analysis_config_dir>/taxonomy/, no .toml).
    #[arg(long, env = "EARSHOT_ANALYSIS_TAXONOMY")]
    pub analysis_taxonomy: Option<String>,
    /// Mask cards, phone numbers, e-mails and ids in analysis text.
    #[arg(long, env = "EARSHOT_ANALYSIS_REDACT_PII", value_parser = clap::builder::BoolishValueParser::new())]
    pub analysis_redact_pii: Option<bool>,
    /// Semantic classification with sentence embeddings (all-MiniLM-L6-v2
    /// from scripts/fetch-embeddings; ~14 ms per final on one core).
    #[arg(long, env = "EARSHOT_ANALYSIS_SEMANTIC", value_parser = clap::builder::BoolishValueParser::new())]
    pub analysis_semantic: Option<bool>,
    /// The sentence encoder's runtime: `candle` (pure Rust, nothing to
    /// deploy) or `onnx` (ONNX Runtime from scripts/fetch-onnxruntime and
    /// the export from scripts/make-onnx-models; ~2.4x faster).
    #[arg(long, env = "EARSHOT_ANALYSIS_SEMANTIC_RUNTIME")]
    pub analysis_semantic_runtime: Option<String>,
    /// A token-classification (NER) model directory run through ONNX
    /// Runtime beside the rules (model.onnx, tokenizer.json, labels.json);
    /// the runtime is <models_dir>/onnxruntime/libonnxruntime.so
    /// (scripts/fetch-onnxruntime).
    #[arg(long, env = "EARSHOT_ANALYSIS_NER_MODEL")]
    pub analysis_ner_model: Option<PathBuf>,
    /// A translation model directory (an Optimum export of a MarianMT /
    /// OPUS-MT model: encoder_model.onnx, decoder_model.onnx,
    /// tokenizer.json, config.json) run through ONNX Runtime; finals in
    /// the languages it covers are translated by it instead of whisper.
    #[arg(long, env = "EARSHOT_ANALYSIS_TRANSLATION_MODEL")]
    pub analysis_translation_model: Option<PathBuf>,
    /// Sentences in the extractive summary.
    #[arg(long, env = "EARSHOT_ANALYSIS_SUMMARY_SENTENCES")]
    pub analysis_summary_sentences: Option<usize>,
    /// Analysis threads (default 1).
    #[arg(long, env = "EARSHOT_ANALYSIS_THREADS")]
    pub analysis_threads: Option<usize>,
    /// Post-call runs waiting at most; more get 503.
    #[arg(long, env = "EARSHOT_PIPELINE_QUEUE")]
    pub pipeline_queue: Option<usize>,
    /// Webhook targets of the agent notification service, comma-separated.
    #[arg(long, env = "EARSHOT_NOTIFY_URLS")]
    pub notify_urls: Option<String>,
    /// OAuth2 token endpoint (client-credentials grant).
    #[arg(long, env = "EARSHOT_NOTIFY_TOKEN_URL")]
    pub notify_token_url: Option<String>,
    #[arg(long, env = "EARSHOT_NOTIFY_CLIENT_ID")]
    pub notify_client_id: Option<String>,
    #[arg(long, env = "EARSHOT_NOTIFY_CLIENT_SECRET")]
    pub notify_client_secret: Option<String>,
    /// Event types notified, comma-separated (default: all).
    #[arg(long, env = "EARSHOT_NOTIFY_EVENTS")]
    pub notify_events: Option<String>,
    /// Delivery attempts per notification and target.
    #[arg(long, env = "EARSHOT_NOTIFY_ATTEMPTS")]
    pub notify_attempts: Option<u32>,
    /// First retry delay in milliseconds (doubles each retry).
    #[arg(long, env = "EARSHOT_NOTIFY_BACKOFF_MS")]
    pub notify_backoff_ms: Option<u64>,
    /// HTTP timeout per delivery, milliseconds.
    #[arg(long, env = "EARSHOT_NOTIFY_TIMEOUT_MS")]
    pub notify_timeout_ms: Option<u64>,
    /// Testing only: honour `X-Earshot-Fault: panic` in INVITEs (the call's
    /// actor panics, proving one call's failure stays in that call).
    #[arg(long, env = "EARSHOT_FAULT_INJECTION", hide = true)]
    pub fault_injection: bool,
}

/// Keys of the config file (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub sip_listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub rtp_ports: Option<String>,
    pub media_ip: Option<IpAddr>,
    pub data_dir: Option<PathBuf>,
    pub max_calls: Option<usize>,
    pub answer_delay_ms: Option<u64>,
    pub fault_injection: Option<bool>,
    pub jitter_ms: Option<u64>,
    pub vad_mode: Option<u8>,
    pub strict_rtp_source: Option<bool>,
    pub rtp_timeout_secs: Option<u64>,
    pub min_free_disk_mb: Option<u64>,
    pub media_threads: Option<usize>,
    pub media_tick_ms: Option<u64>,
    pub asr: Option<bool>,
    pub asr_model: Option<PathBuf>,
    pub asr_workers: Option<usize>,
    pub asr_threads: Option<usize>,
    pub asr_language: Option<String>,
    pub asr_translate: Option<bool>,
    pub asr_audio_ctx: Option<String>,
    pub asr_partials: Option<bool>,
    pub asr_pack: Option<bool>,
    pub asr_partial_ms: Option<u64>,
    pub asr_max_utterance_ms: Option<u64>,
    pub analysis: Option<bool>,
    pub analysis_config_dir: Option<PathBuf>,
    pub models_dir: Option<PathBuf>,
    pub analysis_taxonomy: Option<String>,
    pub analysis_redact_pii: Option<bool>,
    pub analysis_summary_sentences: Option<usize>,
    pub analysis_semantic: Option<bool>,
    pub analysis_semantic_runtime: Option<String>,
    pub analysis_ner_model: Option<PathBuf>,
    pub analysis_translation_model: Option<PathBuf>,
    pub analysis_threads: Option<usize>,
    pub pipeline_queue: Option<usize>,
    pub notify_urls: Option<String>,
    pub notify_token_url: Option<String>,
    pub notify_client_id: Option<String>,
    pub notify_client_secret: Option<String>,
    pub notify_events: Option<String>,
    pub notify_attempts: Option<u32>,
    pub notify_backoff_ms: Option<u64>,
    pub notify_timeout_ms: Option<u64>,
}

/// The merged settings the engine runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sip_listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub rtp_ports: (u16, u16),
    pub media_ip: IpAddr,
    pub data_dir: PathBuf,
    pub max_calls: usize,
    pub answer_delay_ms: u64,
    pub fault_injection: bool,
    pub jitter_ms: u64,
    pub vad_mode: u8,
    pub strict_rtp_source: bool,
    /// Seconds without RTP on any stream before a call fails as "no
    /// media"; 0 = off.
    pub rtp_timeout_secs: u64,
    /// New calls are refused while the recordings disk has less free (MB);
    /// 0 = never.
    pub min_free_disk_mb: u64,
    pub media_threads: usize,
    /// Media play-out tick (ms).
    pub media_tick_ms: u64,
    /// `None`: ASR off.
    pub asr: Option<crate::asr::AsrSettings>,
    pub tracker: earshot::asr::tracker::TrackerConfig,
    /// `None`: analysis off.
    pub analysis: Option<AnalysisSettings>,
    pub notify: crate::notify::NotifyConfig,
}

/// Analysis settings.
#[derive(Debug, Clone)]
pub struct AnalysisSettings {
    pub config: earshot::analysis::call::AnalysisConfig,
    pub config_dir: PathBuf,
    pub models_dir: PathBuf,
    pub threads: usize,
    pub pipeline_queue: usize,
}

fn list(s: Option<String>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

impl Settings {
    /// Merge flags/env with the config file. A missing file is an error only
    /// when it was named explicitly (not the default path).
    pub fn load(cli: Cli) -> anyhow::Result<Settings> {
        let file = match std::fs::read_to_string(&cli.config) {
            Ok(text) => toml::from_str::<FileConfig>(&text)
                .with_context(|| format!("config file {}", cli.config.display()))?,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && cli.config.as_path() == std::path::Path::new("config/default.toml") =>
            {
                FileConfig::default()
            }
            Err(e) => {
                return Err(e).with_context(|| format!("config file {}", cli.config.display()))
            }
        };
        let sip_listen = cli
            .sip_listen
            .or(file.sip_listen)
            .unwrap_or_else(|| "0.0.0.0:5060".parse().expect("literal"));
        let http_listen = cli
            .http_listen
            .or(file.http_listen)
            .unwrap_or_else(|| "0.0.0.0:8123".parse().expect("literal"));
        let ports = cli
            .rtp_ports
            .or(file.rtp_ports)
            .unwrap_or_else(|| "40000-49999".into());
        let rtp_ports = earshot::ports::parse_range(&ports).context("rtp_ports")?;
        let jitter_ms = cli.jitter_ms.or(file.jitter_ms).unwrap_or(60);
        if !(10..=1000).contains(&jitter_ms) {
            anyhow::bail!("jitter_ms must be between 10 and 1000, got {jitter_ms}");
        }
        let media_tick_ms = cli.media_tick_ms.or(file.media_tick_ms).unwrap_or(40);
        if !(10..=200).contains(&media_tick_ms) {
            anyhow::bail!("media_tick_ms must be between 10 and 200, got {media_tick_ms}");
        }
        let rtp_timeout_secs = cli.rtp_timeout_secs.or(file.rtp_timeout_secs).unwrap_or(30);
        if rtp_timeout_secs > 86_400 {
            anyhow::bail!("rtp_timeout_secs must be 0 (off) to 86400, got {rtp_timeout_secs}");
        }
        let vad_mode = cli.vad_mode.or(file.vad_mode).unwrap_or(2);
        if vad_mode > 3 {
            anyhow::bail!("vad_mode must be 0..=3, got {vad_mode}");
        }
        let media_ip = match cli.media_ip.or(file.media_ip) {
            Some(ip) => ip,
            None if !sip_listen.ip().is_unspecified() => sip_listen.ip(),
            None => {
                tracing::warn!(
                    "no media_ip set and SIP listens on {}: SDP answers will say 127.0.0.1; set --media-ip for real SBCs",
                    sip_listen
                );
                IpAddr::from([127, 0, 0, 1])
            }
        };
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let asr_on = cli.asr.or(file.asr).unwrap_or(true);
        let audio_ctx = cli
            .asr_audio_ctx
            .or(file.asr_audio_ctx)
            .unwrap_or_else(|| "auto".into())
            .parse::<crate::asr::AudioCtx>()
            .map_err(anyhow::Error::msg)?;
        let language = cli
            .asr_language
            .or(file.asr_language)
            .filter(|l| l != "auto");
        if let Some(l) = &language {
            if whisper_rs::get_lang_id(l).is_none() {
                anyhow::bail!("asr_language {l:?} is not a language whisper knows");
            }
        }
        let mut asr = asr_on.then(|| crate::asr::AsrSettings {
            model: cli
                .asr_model
                .clone()
                .or(file.asr_model.clone())
                .unwrap_or_else(|| PathBuf::from("models/ggml-tiny.en-q8_0.bin")),
            workers: cli.asr_workers.or(file.asr_workers).unwrap_or(cores).max(1),
            threads: cli.asr_threads.or(file.asr_threads).unwrap_or(1).max(1),
            language,
            translate: cli.asr_translate.or(file.asr_translate).unwrap_or(false),
            model_translates: None,
            queue: 64,
            audio_ctx,
            pack: cli
                .asr_pack
                .or(file.asr_pack)
                .unwrap_or(audio_ctx == crate::asr::AudioCtx::Full),
            warm_up_ms: 0, // set from the tracker below
        });
        let defaults = earshot::asr::tracker::TrackerConfig::default();
        let partial_ms = cli
            .asr_partial_ms
            .or(file.asr_partial_ms)
            .unwrap_or(defaults.partial_interval_ms);
        let max_utt = cli
            .asr_max_utterance_ms
            .or(file.asr_max_utterance_ms)
            .unwrap_or(defaults.max_utterance_ms);
        if !(100..=60_000).contains(&partial_ms) {
            anyhow::bail!("asr_partial_ms must be between 100 and 60000, got {partial_ms}");
        }
        if !(2_000..=28_000).contains(&max_utt) {
            anyhow::bail!("asr_max_utterance_ms must be between 2000 and 28000, got {max_utt}");
        }
        let tracker = earshot::asr::tracker::TrackerConfig {
            partials: cli.asr_partials.or(file.asr_partials).unwrap_or(true),
            partial_interval_ms: partial_ms,
            max_utterance_ms: max_utt,
            ..defaults
        };
        if let Some(a) = asr.as_mut() {
            // The longest audio one decode gets (see AsrSettings::warm_up_ms).
            let longest = tracker.max_utterance_ms + tracker.preroll_ms + tracker.postroll_ms;
            a.warm_up_ms = if a.pack {
                longest.max(crate::asr::PACK_MAX.as_millis() as u64)
            } else {
                longest
            };
        }
        let analysis = if cli.analysis.or(file.analysis).unwrap_or(true) {
            let d = earshot::analysis::call::AnalysisConfig::default();
            let sentences = cli
                .analysis_summary_sentences
                .or(file.analysis_summary_sentences)
                .unwrap_or(d.summary_sentences);
            if !(1..=50).contains(&sentences) {
                anyhow::bail!(
                    "analysis_summary_sentences must be between 1 and 50, got {sentences}"
                );
            }
            let translation_model = cli
                .analysis_translation_model
                .or(file.analysis_translation_model);
            Some(AnalysisSettings {
                config: earshot::analysis::call::AnalysisConfig {
                    taxonomy: cli
                        .analysis_taxonomy
                        .or(file.analysis_taxonomy)
                        .unwrap_or(d.taxonomy.clone()),
                    redact_pii: cli
                        .analysis_redact_pii
                        .or(file.analysis_redact_pii)
                        .unwrap_or(d.redact_pii),
                    summary_sentences: sentences,
                    semantic: cli
                        .analysis_semantic
                        .or(file.analysis_semantic)
                        .unwrap_or(d.semantic),
                    semantic_runtime: match cli
                        .analysis_semantic_runtime
                        .or(file.analysis_semantic_runtime)
                    {
                        Some(r) => r.parse().map_err(anyhow::Error::msg)?,
                        None => d.semantic_runtime,
                    },
                    ner_model: cli.analysis_ner_model.or(file.analysis_ner_model),
                    translation: asr.as_ref().is_some_and(|a| a.translate)
                        || translation_model.is_some(),
                    translation_model,
                    ..d
                },
                config_dir: cli
                    .analysis_config_dir
                    .or(file.analysis_config_dir)
                    .unwrap_or_else(|| PathBuf::from("config")),
                models_dir: cli
                    .models_dir
                    .or(file.models_dir)
                    .unwrap_or_else(|| PathBuf::from("models")),
                threads: cli
                    .analysis_threads
                    .or(file.analysis_threads)
                    .unwrap_or(1)
                    .max(1),
                pipeline_queue: cli
                    .pipeline_queue
                    .or(file.pipeline_queue)
                    .unwrap_or(100)
                    .max(1),
            })
        } else {
            None
        };
        let notify = crate::notify::NotifyConfig {
            urls: list(cli.notify_urls.or(file.notify_urls)),
            token_url: cli.notify_token_url.or(file.notify_token_url),
            client_id: cli.notify_client_id.or(file.notify_client_id),
            client_secret: cli.notify_client_secret.or(file.notify_client_secret),
            events: list(cli.notify_events.or(file.notify_events)),
            attempts: cli
                .notify_attempts
                .or(file.notify_attempts)
                .unwrap_or(5)
                .max(1),
            backoff: std::time::Duration::from_millis(
                cli.notify_backoff_ms
                    .or(file.notify_backoff_ms)
                    .unwrap_or(1000),
            ),
            timeout: std::time::Duration::from_millis(
                cli.notify_timeout_ms
                    .or(file.notify_timeout_ms)
                    .unwrap_or(5000)
                    .max(100),
            ),
        };
        for u in &notify.urls {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                anyhow::bail!("notify_urls: {u:?} is not an http:// or https:// URL");
            }
        }
        Ok(Settings {
            analysis,
            notify,
            asr,
            tracker,
            sip_listen,
            http_listen,
            rtp_ports,
            media_ip,
            data_dir: cli
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            max_calls: cli.max_calls.or(file.max_calls).unwrap_or(2000),
            answer_delay_ms: cli.answer_delay_ms.or(file.answer_delay_ms).unwrap_or(0),
            fault_injection: cli.fault_injection || file.fault_injection.unwrap_or(false),
            jitter_ms,
            vad_mode,
            rtp_timeout_secs,
            min_free_disk_mb: cli
                .min_free_disk_mb
                .or(file.min_free_disk_mb)
                .unwrap_or(256),
            strict_rtp_source: cli
                .strict_rtp_source
                .or(file.strict_rtp_source)
                .unwrap_or(false),
            media_threads: cli
                .media_threads
                .or(file.media_threads)
                .unwrap_or(cores)
                .max(1),
            media_tick_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut v = vec!["earshot"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v).unwrap()
    }

    #[test]
    fn flags_override_file_and_defaults_apply() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "sip_listen = \"127.0.0.1:5070\"\nmax_calls = 7\n").unwrap();
        let s = Settings::load(cli(&[
            "--config",
            f.to_str().unwrap(),
            "--max-calls",
            "9",
            "--rtp-ports",
            "30000-30100",
        ]))
        .unwrap();
        assert_eq!(s.sip_listen, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(s.max_calls, 9);
        assert_eq!(s.rtp_ports, (30000, 30100));
        assert_eq!(s.media_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(s.http_listen, "0.0.0.0:8123".parse().unwrap());
        assert_eq!(s.rtp_timeout_secs, 30, "default RTP timeout");
    }

    #[test]
    fn asr_warm_up_covers_the_longest_window() {
        let warm = |args: &[&str]| {
            let mut a = vec!["--asr", "true"];
            a.extend_from_slice(args);
            Settings::load(cli(&a)).unwrap().asr.unwrap().warm_up_ms
        };
        // The longest utterance plus the tracker's 200 ms pre- and post-roll.
        assert_eq!(warm(&[]), 15_400);
        assert_eq!(warm(&["--asr-max-utterance-ms", "10000"]), 10_400);
        // Packed finals join up to PACK_MAX of audio.
        assert_eq!(
            warm(&["--asr-pack", "true", "--asr-max-utterance-ms", "10000"]),
            28_000
        );
    }

    #[test]
    fn rtp_timeout_from_file_flag_and_off() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "rtp_timeout_secs = 12\n").unwrap();
        let conf = f.to_str().unwrap();
        let s = Settings::load(cli(&["--config", conf])).unwrap();
        assert_eq!(s.rtp_timeout_secs, 12);
        let s = Settings::load(cli(&["--config", conf, "--rtp-timeout-secs", "0"])).unwrap();
        assert_eq!(s.rtp_timeout_secs, 0, "0 = off");
        assert!(Settings::load(cli(&["--rtp-timeout-secs", "999999"])).is_err());
    }

    #[test]
    fn media_tick_from_file_flag_and_bounds() {
        assert_eq!(Settings::load(cli(&[])).unwrap().media_tick_ms, 40);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "media_tick_ms = 20\n").unwrap();
        let conf = f.to_str().unwrap();
        assert_eq!(
            Settings::load(cli(&["--config", conf]))
                .unwrap()
                .media_tick_ms,
            20
        );
        let s = Settings::load(cli(&["--config", conf, "--media-tick-ms", "100"])).unwrap();
        assert_eq!(s.media_tick_ms, 100);
        for bad in ["0", "9", "201"] {
            let e = Settings::load(cli(&["--media-tick-ms", bad])).unwrap_err();
            assert!(e.to_string().contains("media_tick_ms"), "{e}");
        }
    }

    #[test]
    fn bad_config_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "sip_lisen = \"x\"\n").unwrap();
        assert!(Settings::load(cli(&["--config", f.to_str().unwrap()])).is_err());
        assert!(Settings::load(cli(&["--config", "/nonexistent.toml"])).is_err());
        assert!(Settings::load(cli(&["--rtp-ports", "9-1"])).is_err());
    }
}
