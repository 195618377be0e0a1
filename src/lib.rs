//! Earshot core: the sans-IO half of the engine.
//!
//! Everything here is a plain data structure or a state machine fed bytes and
//! a `now`; nothing opens a socket, spawns a thread or reads the clock. The
//! `earshot-actors` crate (in `actors/`) owns the runtime, the sockets, the
//! HTTP/WebSocket server and the sled store, and drives these machines.
//!
//! * [`sip`]: SIP framing (UDP datagrams, TCP streams by Content-Length),
//!   parsing on top of `rsip` with compact forms and multipart bodies.
//! * [`sdp`]: SDP parsing and the SIPREC offer/answer (recvonly, labels).
//! * [`metadata`]: RFC 7865 recording metadata in its vendor dialects.
//! * [`uas`]: the SIPREC user-agent server: transactions, dialogs, timers.
//! * [`session`]: the recording-session record served over REST and stored.
//! * [`ids`]: identifier newtypes.
//! * [`wav`]: WAV header repair after a crash.
//! * [`api`]: REST query parameters and WebSocket client commands.

pub mod analysis;
pub mod api;
pub mod asr;
pub mod classify;
pub mod codec;
pub mod ids;
pub mod media;
pub mod metadata;
pub mod ports;
pub mod rtp;
pub mod sdp;
pub mod session;
pub mod sip;
pub mod talktime;
pub mod uas;
pub mod vad;
pub mod wav;
