//! Start-up and shutdown: open the store, bind SIP and HTTP, start the
//! actors downstream-first (store → registry → SIP → HTTP), and on SIGTERM
//! or Ctrl-C end every live call, persist it, then stop.

use crate::config::Settings;
use crate::http;
use crate::media::MediaConfig;
use crate::registry::{HttpReady, RegistryActor, RegistryConfig, SetSip, Shutdown};
use crate::sip_actor::SipActor;
use crate::store::{SledStore, StoreActor};
use actix::prelude::*;
use actix_web::{web, App, HttpServer};
use anyhow::Context as _;
use earshot::ports::PortPool;
use earshot::uas::{Uas, UasConfig};
use std::net::SocketAddr;
use std::time::Duration;

/// Run the engine until a termination signal.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    raise_fd_limit();
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    let mut store = SledStore::open(&settings.data_dir.join("sessions.sled"))
        .context("opening the session store")?;
    let interrupted = store
        .mark_interrupted(chrono::Utc::now())
        .context("recovering sessions")?;
    if !interrupted.is_empty() {
        tracing::warn!(
            interrupted = interrupted.len(),
            "sessions that were live when the engine stopped are now interrupted"
        );
        let (repaired, failed) = crate::recovery::repair_calls(
            &settings.data_dir.join("recordings"),
            interrupted.iter().map(String::as_str),
        );
        tracing::info!(
            repaired,
            failed,
            "recordings of interrupted sessions checked"
        );
    }
    {
        use earshot::session::SessionStore;
        tracing::info!(stored = store.len(), "session store open");
    }
    let dead_letters = if settings.notify.enabled() {
        Some(
            store
                .tree("dead_letters")
                .context("opening the notifier's dead-letter queue")?,
        )
    } else {
        None
    };
    let store_addr = SyncArbiter::start(1, move || StoreActor::new(Box::new(store.clone())));

    let udp = tokio::net::UdpSocket::bind(settings.sip_listen)
        .await
        .with_context(|| format!("binding SIP UDP {}", settings.sip_listen))?;
    let tcp = tokio::net::TcpListener::bind(settings.sip_listen)
        .await
        .with_context(|| format!("binding SIP TCP {}", settings.sip_listen))?;
    let sip_addr: SocketAddr = SocketAddr::new(settings.media_ip, settings.sip_listen.port());

    if settings.fault_injection {
        tracing::warn!(
            "fault injection is ON (X-Earshot-Fault headers are honoured): testing only"
        );
    }
    let media_threads: Vec<Arbiter> = (0..settings.media_threads)
        .map(|_| Arbiter::new())
        .collect();
    let recordings_dir = settings.data_dir.join("recordings");
    std::fs::create_dir_all(&recordings_dir)
        .with_context(|| format!("creating {}", recordings_dir.display()))?;
    let hub = crate::ws::Hub::default().start();
    let notifier = dead_letters.map(|dead| {
        tracing::info!(targets = ?settings.notify.urls, dead_letters = dead.len(), "agent notifications on");
        crate::notify::Notifier::new(settings.notify.clone(), Some(dead)).start()
    });
    let mut analysis_threads = vec![];
    let analysis = match settings.analysis.clone() {
        Some(a) => {
            let res = earshot::analysis::call::Resources::load(
                a.config.clone(),
                &a.config_dir,
                &a.models_dir,
            )
            .with_context(|| {
                format!(
                    "loading the analysis resources (config {}, models {}); run scripts/setup or pass --analysis false",
                    a.config_dir.display(),
                    a.models_dir.display()
                )
            })?;
            let res = std::sync::Arc::new(res);
            analysis_threads = (0..a.threads).map(|_| Arbiter::new()).collect();
            let pipeline_thread = Arbiter::new();
            let pipeline = {
                let (res, store, hub, notifier) = (
                    res.clone(),
                    store_addr.clone(),
                    hub.clone(),
                    notifier.clone(),
                );
                let q = a.pipeline_queue;
                crate::pipeline::PipelineActor::start_in_arbiter(
                    &pipeline_thread.handle(),
                    move |_| crate::pipeline::PipelineActor::new(res, store, hub, notifier, q),
                )
            };
            analysis_threads.push(pipeline_thread);
            tracing::info!(config = ?a.config, threads = a.threads, "analysis on");
            Some(crate::call::AnalysisInit {
                arbiters: analysis_threads[..a.threads]
                    .iter()
                    .map(|a| a.handle())
                    .collect(),
                resources: res,
                pipeline: Some(pipeline),
                notifier: notifier.clone(),
            })
        }
        None => {
            tracing::info!("analysis off");
            None
        }
    };
    // After the analysis: whisper skips translating what its model does.
    let asr = match settings.asr.clone() {
        Some(mut a) => {
            a.model_translates = analysis
                .as_ref()
                .and_then(|x| x.resources.translator.as_ref())
                .map(|(_, _, info)| info.clone());
            if let Some(m) = &a.model_translates {
                tracing::info!(model = %m.model, sources = ?m.source_languages, target = %m.target_language, "translation model on");
            }
            Some(crate::asr::AsrPool::start(a)?)
        }
        None => {
            tracing::info!("ASR off");
            None
        }
    };
    let registry = RegistryActor::new(
        RegistryConfig {
            hub: hub.clone(),
            media: MediaConfig {
                tick: Duration::from_millis(settings.media_tick_ms),
                jitter_depth: Duration::from_millis(settings.jitter_ms),
                vad_mode: settings.vad_mode,
                strict_source: settings.strict_rtp_source,
                rtp_timeout: earshot::media::RtpTimeout::new(Duration::from_secs(
                    settings.rtp_timeout_secs,
                )),
                recordings_dir,
                asr,
                tracker: settings.tracker,
            },
            arbiters: media_threads.iter().map(|a| a.handle()).collect(),
            analysis: analysis.clone(),
            answer_delay: Duration::from_millis(settings.answer_delay_ms),
            rtp_bind_ip: settings.sip_listen.ip(),
            fault_injection: settings.fault_injection,
            min_free_disk_mb: settings.min_free_disk_mb,
        },
        store_addr,
    )
    .start();

    let pool = PortPool::new(settings.rtp_ports.0, settings.rtp_ports.1)?;
    let mut ucfg = UasConfig::new(sip_addr, settings.media_ip);
    ucfg.max_calls = settings.max_calls;
    ucfg.seed = rand::random();
    let sip = SipActor::new(Uas::new(ucfg, pool), udp, tcp, registry.clone()).start();
    registry.do_send(SetSip(sip));
    tracing::info!(
        sip = %settings.sip_listen,
        media_ip = %settings.media_ip,
        rtp = ?settings.rtp_ports,
        "SIP listening on UDP and TCP"
    );

    let reg_data = web::Data::new(registry.clone());
    let hub_data = web::Data::new(hub.clone());
    let services = web::Data::new(http::Services {
        pipeline: analysis.as_ref().and_then(|a| a.pipeline.clone()),
        notifier: notifier.clone(),
        analysis: analysis.as_ref().map(|a| a.resources.clone()),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(reg_data.clone())
            .app_data(hub_data.clone())
            .app_data(services.clone())
            .app_data(web::QueryConfig::default().error_handler(|e, _| {
                let resp = http::invalid(&["query"], &e.to_string(), "value_error");
                actix_web::error::InternalError::from_response(e, resp).into()
            }))
            .app_data(web::PathConfig::default().error_handler(|e, _| {
                let resp = http::invalid(&["path"], &e.to_string(), "value_error");
                actix_web::error::InternalError::from_response(e, resp).into()
            }))
            .configure(http::configure)
            .default_service(web::to(http::not_found))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(2)
    .bind(settings.http_listen)
    .with_context(|| format!("binding HTTP {}", settings.http_listen))?
    .run();
    let handle = server.handle();
    registry.do_send(HttpReady);
    tracing::info!(http = %settings.http_listen, "REST API listening");

    let server_task = actix_rt::spawn(server);
    wait_for_signal().await;
    tracing::info!("shutting down: ending live calls");
    let ended = registry.send(Shutdown).await.unwrap_or(0);
    tracing::info!(ended, "live calls ended and persisted");
    handle.stop(true).await;
    let _ = server_task.await;
    for a in media_threads.into_iter().chain(analysis_threads) {
        a.stop();
    }
    System::current().stop();
    Ok(())
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%e, "cannot listen for SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// Thousands of calls need thousands of sockets: raise the soft open-file
/// limit to the hard limit.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::info!(open_files = n, "open-file limit"),
        Err(e) => tracing::warn!(%e, "could not raise the open-file limit"),
    }
}
