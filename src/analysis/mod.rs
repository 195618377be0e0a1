//! Progressive analysis of a call's transcript, sans-IO: each analyser is
//! fed final segments one at a time and keeps its own running state, so
//! the cost of a new final is proportional to that final, not to the call.
//!
//! * [`sentiment`]: VADER per segment, per participant with trend and
//!   negative-streak alerts.
//!
//! (Entities, classification, keywords, summary, QA and translation are
//! still to come: issue 5.)

pub mod sentiment;
