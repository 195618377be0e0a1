//! Earshot's runtime: actix actors around the sans-IO core.
//!
//! * [`sip_actor`]: SIP sockets (UDP + TCP) and the UAS state machine.
//! * [`registry`]: every live call; starts and supervises `CallActor`s;
//!   answers the HTTP layer.
//! * [`call`]: one recording session.
//! * [`asr`]: the whisper.cpp worker pool.
//! * [`media`]: one call's RTP receive, decode, analysis and recordings.
//! * [`udp`]: batched non-blocking RTP receive with kernel timestamps and
//!   drop counts.
//! * [`store`]: sled persistence on its own thread.
//! * [`recovery`]: start-up repair of recordings after a crash.
//! * [`http`]: the REST API ([`analysis_http`]: its analysis endpoints).
//! * [`ws`]: WebSocket pushes (the only actix-web-actors user).
//! * [`analysis`]: one call's progressive analysis actor.
//! * [`pipeline`]: the post-call pipeline (whole-call analysis, stored).
//! * [`notify`]: webhook notifications to the agent service.
//! * [`metrics`]: Prometheus metrics (`GET /metrics`).
//! * [`config`]: CLI / env / TOML settings.
//! * [`engine`]: wiring it all together.

pub mod analysis;
pub mod analysis_http;
pub mod asr;
pub mod call;
pub mod config;
pub mod engine;
pub mod http;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod pagefile;
pub mod pipeline;
pub mod recovery;
pub mod registry;
pub mod sip_actor;
pub mod store;
pub mod udp;
pub mod ws;

/// The message a caught panic carried (`panic!` with a literal or a
/// formatted string), else "panic".
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}
