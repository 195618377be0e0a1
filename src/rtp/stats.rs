//! Receive statistics of one RTP stream and a MOS estimate.
//!
//! [`StreamStats`] is what the jitter buffer counts (RFC 3550 §6.4.1 style,
//! seen from the playout side) and what the call snapshot publishes.
//! [`estimate_mos`] is a simplified ITU-T G.107 E-model: it is an *estimate*
//! for dashboards and alerting, not a listening-quality measurement.

use crate::sdp::Codec;
use serde::{Deserialize, Serialize};

/// Counters of one stream (across SSRC changes and pauses).
///
/// * `packets`/`bytes`: every RTP packet handed to the buffer while not
///   paused, duplicates and late ones included (RFC 3550 "received"); bytes
///   are payload bytes.
/// * `expected`: sum over sequence runs (a run restarts on SSRC change,
///   resume or sequence resync) of highest − lowest extended sequence + 1.
/// * `lost`: sequence numbers concealed as [`Playout::Lost`] — network loss
///   plus packets discarded because they came too late (or did not fit the
///   buffer). This is the *effective* loss the listener hears, the one the
///   E-model wants. A gap at the very end of a run (nothing after it) is not
///   counted, as there is nothing to conceal up to.
/// * `late`: packets dropped because their playout instant had passed (or
///   that were out of the sequence window).
/// * `reordered`: packets that arrived after a higher sequence number.
/// * `jitter_ms`: RFC 3550 §6.4.1/A.8 interarrival jitter, in milliseconds.
/// * `ssrc_changes`: switches from one SSRC to another (not the first SSRC).
/// * `mos`: [`estimate_mos`] of the above; `0.0` while nothing has been
///   received (no data, not "bad").
///
/// [`Playout::Lost`]: super::jitter::Playout::Lost
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    pub packets: u64,
    pub bytes: u64,
    pub expected: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub jitter_ms: f64,
    pub ssrc_changes: u32,
    pub mos: f64,
}

impl StreamStats {
    /// Effective loss in percent: concealed / (played + concealed).
    pub fn loss_pct(&self, played: u64) -> f64 {
        let total = played.saturating_add(self.lost);
        if total == 0 {
            0.0
        } else {
            self.lost as f64 * 100.0 / total as f64
        }
    }
}

/// E-model codec parameters: equipment impairment `Ie` and packet-loss
/// robustness `Bpl` (random loss, BurstR = 1).
///
/// * G.711 (PCMU/PCMA): ITU-T G.113 Appendix I: Ie 0; Bpl 25.1 with packet
///   loss concealment (G.711 Appendix I), 4.3 without.
/// * G.722: on the narrowband scale used here a wideband codec is not rated
///   below G.711, so Ie 0; its PLC (G.722 Appendix III/IV) is weaker than
///   Opus', and we use Bpl 13 with PLC (4.3 without, like plain PCM).
/// * Opus: Ie 0 (narrowband scale), Bpl 20 with PLC (4.3 without). ITU-T
///   publishes no Opus values; these are our planning choices.
/// * telephone-event carries no speech; treated like G.711.
pub fn codec_impairment(codec: Codec, plc: bool) -> (f64, f64) {
    match (codec, plc) {
        (Codec::Pcmu | Codec::Pcma | Codec::TelephoneEvent, true) => (0.0, 25.1),
        (Codec::G722, true) => (0.0, 13.0),
        (Codec::Opus, true) => (0.0, 20.0),
        (_, false) => (0.0, 4.3),
    }
}

/// Default `Ro − Is` of the E-model (G.107 default values, A = 0).
const R_DEFAULT: f64 = 93.2;

/// MOS estimate assuming the decoder conceals lost frames (which the media
/// plane does for every [`Playout::Lost`]); see [`estimate_mos_with`].
///
/// [`Playout::Lost`]: super::jitter::Playout::Lost
pub fn estimate_mos(codec: Codec, loss_pct: f64, jitter_ms: f64, buffer_ms: f64) -> f64 {
    estimate_mos_with(codec, true, loss_pct, jitter_ms, buffer_ms)
}

/// Simplified ITU-T G.107 E-model:
///
/// * `R = 93.2 − Id − Ie,eff`
/// * `Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl + Bpl)` ([`codec_impairment`],
///   random loss)
/// * one-way delay `d = buffer + 2·jitter + 20 ms` (packetisation), and the
///   usual simplification of the delay impairment
///   `Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3)`
/// * `MOS = 1 + 0.035R + 7·10⁻⁶·R(R − 60)(100 − R)`, clamped to [1, 4.5].
///
/// Non-finite or negative inputs are treated as 0.
pub fn estimate_mos_with(
    codec: Codec,
    plc: bool,
    loss_pct: f64,
    jitter_ms: f64,
    buffer_ms: f64,
) -> f64 {
    let clean = |x: f64| if x.is_finite() && x > 0.0 { x } else { 0.0 };
    let ppl = clean(loss_pct).min(100.0);
    let delay = clean(buffer_ms) + 2.0 * clean(jitter_ms) + 20.0;
    let (ie, bpl) = codec_impairment(codec, plc);
    let ie_eff = ie + (95.0 - ie) * ppl / (ppl + bpl);
    let id = 0.024 * delay
        + if delay > 177.3 {
            0.11 * (delay - 177.3)
        } else {
            0.0
        };
    let r = R_DEFAULT - id - ie_eff;
    if !r.is_finite() || r <= 0.0 {
        return 1.0;
    }
    if r >= 100.0 {
        return 4.5;
    }
    let mos = 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r);
    mos.clamp(1.0, 4.5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_g711_is_about_4_4() {
        let m = estimate_mos(Codec::Pcmu, 0.0, 0.0, 60.0);
        assert!((4.35..=4.45).contains(&m), "{m}");
    }

    #[test]
    fn monotone_in_loss_jitter_and_delay() {
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus] {
            let mut prev = f64::INFINITY;
            for i in 0..=100 {
                let m = estimate_mos(codec, i as f64, 5.0, 60.0);
                assert!(m <= prev, "{codec:?} {i}");
                assert!((1.0..=4.5).contains(&m));
                prev = m;
            }
            assert!(estimate_mos(codec, 1.0, 50.0, 60.0) < estimate_mos(codec, 1.0, 5.0, 60.0));
            assert!(estimate_mos(codec, 1.0, 5.0, 400.0) < estimate_mos(codec, 1.0, 5.0, 60.0));
        }
        // PLC helps.
        assert!(
            estimate_mos_with(Codec::Pcmu, false, 3.0, 0.0, 60.0)
                < estimate_mos_with(Codec::Pcmu, true, 3.0, 0.0, 60.0)
        );
    }

    #[test]
    fn garbage_inputs_are_clamped() {
        for x in [f64::NAN, f64::INFINITY, -5.0, 1e300] {
            let m = estimate_mos(Codec::Opus, x, x, x);
            assert!((1.0..=4.5).contains(&m), "{x} -> {m}");
        }
    }

    #[test]
    fn loss_pct() {
        let s = StreamStats {
            lost: 5,
            ..Default::default()
        };
        assert_eq!(s.loss_pct(95), 5.0);
        assert_eq!(StreamStats::default().loss_pct(0), 0.0);
    }
}
