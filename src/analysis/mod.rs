//! Progressive analysis of a call's transcript, sans-IO: each analyser is
//! fed final segments one at a time and keeps its own running state, so
//! the cost of a new final is proportional to that final, not to the call.
//!
//! * [`sentiment`]: VADER per segment, per participant with trend and
//!   negative-streak alerts.
//! * [`keywords`]: configured phrase lists (compliance phrases that must be
//!   said, escalation/risk words), counts, first mention, speakers.
//! * [`pii`]: masking of card numbers, phone numbers, e-mails and national
//!   ids in stored/pushed text.
//!
//! (Entities, classification, summary, QA, translation and the analysis
//! actor are still to come: issue 5.)

pub mod keywords;
pub mod pii;
pub mod sentiment;
