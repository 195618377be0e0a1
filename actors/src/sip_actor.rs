//! The SIP transport actor: owns the UDP socket, the TCP listener and its
//! connections, and the sans-IO [`Uas`]. It turns bytes into `Uas` input,
//! `Uas` transmits into socket writes, `Uas` events into messages to the
//! registry, and keeps one timer armed at the `Uas`'s next deadline.

use crate::registry::{RegistryActor, SipEvent};
use actix::prelude::*;
use earshot::ids::CallId;
use earshot::sip::{frame_datagram, Frame, Limits, StreamFramer};
use earshot::uas::{ConnId, Peer, Transport, Uas, UasOutput};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Bytes queued per TCP connection before writes are dropped (and counted).
const TCP_WRITE_QUEUE: usize = 256;

struct Conn {
    addr: SocketAddr,
    tx: mpsc::Sender<Vec<u8>>,
    framer: StreamFramer,
    reader: Option<tokio::task::JoinHandle<()>>,
}

pub struct SipActor {
    uas: Uas,
    udp: Arc<UdpSocket>,
    tcp: Option<TcpListener>,
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    registry: Addr<RegistryActor>,
    timer: Option<SpawnHandle>,
    limits: Limits,
    /// Datagrams/stream bytes we could not send (full queue, closed socket).
    pub send_failures: u64,
}

impl SipActor {
    pub fn new(uas: Uas, udp: UdpSocket, tcp: TcpListener, registry: Addr<RegistryActor>) -> Self {
        let limits = uas.config().limits;
        Self {
            uas,
            udp: Arc::new(udp),
            tcp: Some(tcp),
            conns: HashMap::new(),
            next_conn: 1,
            registry,
            timer: None,
            limits,
            send_failures: 0,
        }
    }

    /// Execute everything the UAS wants done, then re-arm the timer.
    fn drain(&mut self, ctx: &mut Context<Self>) {
        while let Some(out) = self.uas.poll_output() {
            match out {
                UasOutput::Transmit { peer, bytes } => self.send(ctx, peer, bytes),
                UasOutput::Event(e) => self.registry.do_send(SipEvent(e)),
            }
        }
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = self.uas.poll_timeout() {
            let delay = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(delay, |act, ctx| {
                act.timer = None;
                act.uas.handle_timeout(Instant::now());
                act.drain(ctx);
            }));
        }
    }

    fn send(&mut self, ctx: &mut Context<Self>, peer: Peer, bytes: Vec<u8>) {
        crate::metrics::sip_message("out", &bytes);
        match peer.transport {
            Transport::Udp => {
                if let Err(e) = self.udp.try_send_to(&bytes, peer.addr) {
                    self.send_failures += 1;
                    tracing::warn!(%e, to = %peer.addr, "UDP send failed");
                }
            }
            Transport::Tcp(id) => {
                if let Some(c) = self.conns.get(&id) {
                    if c.tx.try_send(bytes).is_err() {
                        self.send_failures += 1;
                        tracing::warn!(to = %peer.addr, "TCP write queue full or closed");
                    }
                } else {
                    // The SRC closed the connection: open a new one to it.
                    let addr = peer.addr;
                    let fut = async move { TcpStream::connect(addr).await };
                    ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| match res {
                        Ok(stream) => {
                            let id = act.register(ctx, stream, addr);
                            if let Some(c) = act.conns.get(&id) {
                                let _ = c.tx.try_send(bytes);
                            }
                        }
                        Err(e) => {
                            act.send_failures += 1;
                            tracing::warn!(%e, to = %addr, "TCP connect for outbound request failed");
                        }
                    }));
                }
            }
        }
    }

    fn register(&mut self, ctx: &mut Context<Self>, stream: TcpStream, addr: SocketAddr) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let (mut rd, mut wr) = stream.into_split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(TCP_WRITE_QUEUE);
        actix_rt::spawn(async move {
            while let Some(b) = rx.recv().await {
                if wr.write_all(&b).await.is_err() {
                    break;
                }
            }
        });
        let me = ctx.address();
        let reader = actix_rt::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = buf[..n].to_vec();
                        // `send` waits for mailbox room: back-pressure on the peer.
                        if me.send(TcpData { conn: id, data }).await.is_err() {
                            return;
                        }
                    }
                }
            }
            me.do_send(TcpClosed(id));
        });
        self.conns.insert(
            id,
            Conn {
                addr,
                tx,
                framer: StreamFramer::new(self.limits),
                reader: Some(reader),
            },
        );
        tracing::debug!(conn = id.0, %addr, "TCP connection");
        id
    }

    fn close(&mut self, id: ConnId) {
        if let Some(mut c) = self.conns.remove(&id) {
            if let Some(r) = c.reader.take() {
                r.abort();
            }
        }
    }
}

impl Actor for SipActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(1024);
        let udp = self.udp.clone();
        let datagrams =
            futures_util::stream::unfold((udp, vec![0u8; 65_535]), |(sock, mut buf)| async move {
                loop {
                    match sock.recv_from(&mut buf).await {
                        Ok((n, from)) => {
                            let d = Datagram {
                                from,
                                bytes: buf[..n].to_vec(),
                            };
                            return Some((d, (sock, buf)));
                        }
                        // ICMP errors surface here on some systems; keep reading.
                        Err(e) => tracing::debug!(%e, "UDP receive error"),
                    }
                }
            });
        ctx.add_stream(datagrams);
        if let Some(listener) = self.tcp.take() {
            let accepts = futures_util::stream::unfold(listener, |l| async move {
                loop {
                    match l.accept().await {
                        Ok((s, a)) => return Some((Accepted(s, a), l)),
                        Err(e) => {
                            tracing::warn!(%e, "TCP accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                }
            });
            ctx.add_stream(accepts);
        }
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Datagram {
    from: SocketAddr,
    bytes: Vec<u8>,
}

impl StreamHandler<Datagram> for SipActor {
    fn handle(&mut self, d: Datagram, ctx: &mut Context<Self>) {
        let peer = Peer {
            transport: Transport::Udp,
            addr: d.from,
        };
        match frame_datagram(&d.bytes, &self.limits) {
            Ok(Frame::Message(m)) => {
                crate::metrics::sip_message("in", &m);
                self.uas.handle_message(Instant::now(), peer, &m)
            }
            Ok(Frame::KeepAlive) => {}
            Err(e) => {
                crate::metrics::sip_message("in", &d.bytes);
                self.uas.handle_unframeable(peer, &d.bytes, &e)
            }
        }
        self.drain(ctx);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Accepted(TcpStream, SocketAddr);

impl StreamHandler<Accepted> for SipActor {
    fn handle(&mut self, Accepted(s, a): Accepted, ctx: &mut Context<Self>) {
        let _ = s.set_nodelay(true);
        self.register(ctx, s, a);
    }
    fn finished(&mut self, _: &mut Context<Self>) {
        tracing::error!("TCP listener stopped");
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct TcpData {
    conn: ConnId,
    data: Vec<u8>,
}

impl Handler<TcpData> for SipActor {
    type Result = ();
    fn handle(&mut self, m: TcpData, ctx: &mut Context<Self>) {
        let Some(c) = self.conns.get_mut(&m.conn) else {
            return;
        };
        c.framer.push(&m.data);
        let peer = Peer {
            transport: Transport::Tcp(m.conn),
            addr: c.addr,
        };
        let mut frames = vec![];
        let mut broken = None;
        loop {
            match c.framer.next_frame() {
                Ok(Some(f)) => frames.push(f),
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        for f in frames {
            match f {
                Frame::Message(b) => {
                    crate::metrics::sip_message("in", &b);
                    self.uas.handle_message(Instant::now(), peer, &b)
                }
                Frame::KeepAlive => {
                    if let Some(c) = self.conns.get(&m.conn) {
                        let _ = c.tx.try_send(b"\r\n".to_vec());
                    }
                }
            }
        }
        if let Some(e) = broken {
            tracing::info!(%e, from = %peer.addr, "closing TCP connection after framing error");
            self.uas.handle_unframeable(peer, &m.data, &e);
            self.drain(ctx);
            self.close(m.conn);
            return;
        }
        self.drain(ctx);
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct TcpClosed(ConnId);

impl Handler<TcpClosed> for SipActor {
    type Result = ();
    fn handle(&mut self, m: TcpClosed, _: &mut Context<Self>) {
        self.close(m.0);
    }
}

/// Runtime decisions fed back to the UAS.
#[derive(Message)]
#[rtype(result = "bool")]
pub enum Control {
    Accept(CallId),
    Reject(CallId, u16, String),
    ConfirmEnd(CallId),
    End(CallId, String),
    /// The call's RTP sockets are closed: its ports may be reused.
    MediaReleased(CallId),
}

impl Handler<Control> for SipActor {
    type Result = bool;
    fn handle(&mut self, m: Control, ctx: &mut Context<Self>) -> bool {
        let now = Instant::now();
        let ok = match m {
            Control::Accept(id) => self.uas.accept(now, &id),
            Control::Reject(id, code, reason) => self.uas.reject(now, &id, code, &reason),
            Control::ConfirmEnd(id) => self.uas.confirm_end(now, &id),
            Control::End(id, reason) => self.uas.end_call(now, &id, &reason),
            Control::MediaReleased(id) => self.uas.media_released(&id) > 0,
        };
        self.drain(ctx);
        ok
    }
}

/// End every live dialog (shutdown). Returns how many were ended.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct EndAll(pub String);

impl Handler<EndAll> for SipActor {
    type Result = usize;
    fn handle(&mut self, m: EndAll, ctx: &mut Context<Self>) -> usize {
        let now = Instant::now();
        let ids = self.uas.call_ids();
        let n = ids
            .iter()
            .filter(|id| self.uas.end_call(now, id, &m.0))
            .count();
        self.drain(ctx);
        n
    }
}

/// What `/health` reports about SIP.
#[derive(Debug, Clone, Copy)]
pub struct SipHealth {
    pub dialogs: usize,
    pub ports_free: usize,
    pub ports_total: usize,
    /// Ports of ended calls whose sockets are not closed yet.
    pub ports_held: usize,
    pub tcp_connections: usize,
    pub send_failures: u64,
}

#[derive(Message)]
#[rtype(result = "SipHealth")]
pub struct GetSipHealth;

impl Handler<GetSipHealth> for SipActor {
    type Result = MessageResult<GetSipHealth>;
    fn handle(&mut self, _: GetSipHealth, _: &mut Context<Self>) -> Self::Result {
        let (free, total) = self.uas.ports_available();
        MessageResult(SipHealth {
            dialogs: self.uas.call_count(),
            ports_free: free,
            ports_total: total,
            ports_held: self.uas.ports_held(),
            tcp_connections: self.conns.len(),
            send_failures: self.send_failures,
        })
    }
}
