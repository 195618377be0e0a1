//! One recording session: the supervised `CallActor`.
//!
//! It owns the session record and the call's RTP sockets (counting packets
//! for now; the media plane hangs off here), applies signalling updates the
//! registry forwards, journals its state to the store, and on the end writes
//! the final record durably before telling the registry. Every handler runs
//! behind a panic guard: a panic ends this call as `failed` with the panic
//! message, persisted, and touches nothing else.

use crate::registry::{Finished, RegistryActor, Snapshot};
use crate::store::{Put, StoreActor};
use actix::prelude::*;
use earshot::metadata::RecordingMetadata;
use earshot::sdp::StreamAnswer;
use earshot::session::{CallStatus, SessionRecord};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

/// How often a live call journals itself and refreshes the registry's view.
const TICK: Duration = Duration::from_secs(1);

pub struct CallActor {
    record: SessionRecord,
    metadata: Option<RecordingMetadata>,
    streams: Vec<StreamAnswer>,
    registry: Addr<RegistryActor>,
    store: Addr<StoreActor>,
    /// RTP sockets by local port (bound by the registry before we answer).
    sockets: HashMap<u16, std::net::UdpSocket>,
    bind_ip: std::net::IpAddr,
    dirty: bool,
    finishing: bool,
    /// Test hook: panic on the first tick (from `X-Earshot-Fault: panic`
    /// when fault injection is enabled).
    fault: bool,
}

/// What a call starts with.
pub struct CallInit {
    pub record: SessionRecord,
    pub metadata: Option<RecordingMetadata>,
    pub streams: Vec<StreamAnswer>,
    /// RTP sockets by local port, bound before the 200 OK.
    pub sockets: Vec<(u16, std::net::UdpSocket)>,
    /// Address sockets for renegotiated streams bind to.
    pub bind_ip: std::net::IpAddr,
    /// Test hook (see `CallActor::fault`).
    pub fault: bool,
}

impl CallActor {
    pub fn new(init: CallInit, registry: Addr<RegistryActor>, store: Addr<StoreActor>) -> Self {
        Self {
            record: init.record,
            metadata: init.metadata,
            streams: init.streams,
            registry,
            store,
            sockets: init.sockets.into_iter().collect(),
            bind_ip: init.bind_ip,
            dirty: true,
            finishing: false,
            fault: init.fault,
        }
    }

    /// Run `f`; a panic inside ends the call as failed.
    fn guarded(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut Context<Self>)) {
        let r = catch_unwind(AssertUnwindSafe(|| f(self, ctx)));
        if let Err(p) = r {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            tracing::error!(call_id = %self.record.call_id, panic = %msg, "call failed");
            self.finish(
                ctx,
                CallStatus::Failed,
                &format!("internal error: {msg}"),
                false,
                true,
            );
        }
    }

    fn start_rtp(&mut self, ctx: &mut Context<Self>, port: u16) {
        let Some(sock) = self.sockets.get(&port) else {
            return;
        };
        let Ok(std_sock) = sock.try_clone() else {
            return;
        };
        if std_sock.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(sock) = tokio::net::UdpSocket::from_std(std_sock) else {
            return;
        };
        let packets =
            futures_util::stream::unfold((sock, vec![0u8; 2048]), move |(s, mut buf)| async move {
                loop {
                    if let Ok((n, from)) = s.recv_from(&mut buf).await {
                        return Some((Rtp { port, len: n, from }, (s, buf)));
                    }
                }
            });
        ctx.add_stream(packets);
    }

    /// Bind sockets for ports a renegotiation added.
    fn bind_new_ports(&mut self, ctx: &mut Context<Self>, streams: &[StreamAnswer]) {
        for s in streams {
            if s.port != 0 && !self.sockets.contains_key(&s.port) {
                match std::net::UdpSocket::bind((self.bind_ip, s.port)) {
                    Ok(sock) => {
                        self.sockets.insert(s.port, sock);
                        self.start_rtp(ctx, s.port);
                    }
                    Err(e) => tracing::warn!(%e, port = s.port, "RTP bind failed"),
                }
            }
        }
    }

    fn apply(&mut self) {
        let before: Vec<bool> = self.record.streams.iter().map(|s| s.paused).collect();
        self.record.apply(self.metadata.as_ref(), &self.streams);
        for (i, s) in self.record.streams.iter().enumerate() {
            match (before.get(i).copied(), s.paused) {
                (Some(false), true) => self.record.counters.pauses += 1,
                (Some(true), false) => self.record.counters.resumes += 1,
                _ => {}
            }
        }
        self.record.last_activity = chrono::Utc::now();
        self.dirty = true;
    }

    fn publish(&mut self) {
        let now = chrono::Utc::now();
        self.record.total_audio_duration = self.record.duration_secs(now);
        self.registry.do_send(Snapshot(self.record.clone()));
        if self.dirty {
            self.dirty = false;
            self.store.do_send(Put {
                record: self.record.clone(),
                durable: false,
            });
        }
    }

    /// Close the record, persist it durably, tell the registry, stop.
    fn finish(
        &mut self,
        ctx: &mut Context<Self>,
        status: CallStatus,
        reason: &str,
        confirm: bool,
        hang_up: bool,
    ) {
        if self.finishing {
            return;
        }
        self.finishing = true;
        self.record.finish(status, reason, chrono::Utc::now());
        self.sockets.clear();
        let record = self.record.clone();
        let put = self.store.send(Put {
            record: record.clone(),
            durable: true,
        });
        put.into_actor(self)
            .map(move |res, act, ctx| {
                let persisted = matches!(res, Ok(Ok(())));
                if !persisted {
                    tracing::error!(call_id = %record.call_id, ?res, "could not persist session");
                }
                act.registry.do_send(Finished {
                    record,
                    confirm,
                    hang_up,
                    persisted,
                });
                ctx.stop();
            })
            .wait(ctx);
    }
}

impl Actor for CallActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(256);
        let ports: Vec<u16> = self.sockets.keys().copied().collect();
        for p in ports {
            self.start_rtp(ctx, p);
        }
        self.publish();
        ctx.run_interval(TICK, |act, ctx| {
            act.guarded(ctx, |act, _| {
                if act.fault {
                    panic!("injected fault");
                }
                act.publish();
            })
        });
    }
}

struct Rtp {
    #[allow(dead_code)]
    port: u16,
    len: usize,
    #[allow(dead_code)]
    from: SocketAddr,
}

impl StreamHandler<Rtp> for CallActor {
    fn handle(&mut self, p: Rtp, _: &mut Context<Self>) {
        self.record.counters.rtp_packets += 1;
        self.record.counters.rtp_bytes += p.len as u64;
    }
    fn finished(&mut self, _: &mut Context<Self>) {}
}

/// Signalling updates for the call.
#[derive(Message)]
#[rtype(result = "()")]
pub enum CallUpdate {
    Confirmed,
    /// A re-INVITE (or UPDATE when `by_update`) changed streams and/or metadata.
    Updated {
        by_update: bool,
        streams: Option<Vec<StreamAnswer>>,
        metadata: Option<RecordingMetadata>,
    },
    /// End the call with this status and reason. `confirm`: the SRC's BYE
    /// waits for our persistence. `hang_up`: we must BYE the SRC.
    Finish {
        status: CallStatus,
        reason: String,
        confirm: bool,
    },
}

impl Handler<CallUpdate> for CallActor {
    type Result = ();
    fn handle(&mut self, m: CallUpdate, ctx: &mut Context<Self>) {
        self.guarded(ctx, |act, ctx| match m {
            CallUpdate::Confirmed => {
                act.record.last_activity = chrono::Utc::now();
            }
            CallUpdate::Updated {
                by_update,
                streams,
                metadata,
            } => {
                if by_update {
                    act.record.counters.updates += 1;
                } else {
                    act.record.counters.reinvites += 1;
                }
                if let Some(streams) = streams {
                    act.bind_new_ports(ctx, &streams);
                    act.streams = streams;
                }
                if let Some(md) = metadata {
                    act.record.counters.metadata_updates += 1;
                    act.metadata = Some(md);
                }
                act.apply();
                act.publish();
            }
            CallUpdate::Finish {
                status,
                reason,
                confirm,
            } => act.finish(ctx, status, &reason, confirm, false),
        });
    }
}
