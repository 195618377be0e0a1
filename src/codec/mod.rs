//! Media-plane decoders: RTP payload bytes in, mono `f32` PCM out.
//!
//! Every audio stream of a recorded call gets one stateful [`Decoder`]
//! (chosen by [`decoder_for`] from the negotiated [`Codec`]) and one
//! [`Resampler`] that brings the decoder's native rate to [`SPEECH_RATE`].
//! Lost packets are filled with [`Decoder::conceal`]; comfort-noise packets
//! (RFC 3389, payload types 13/19) with [`comfort_noise`]; telephone-events
//! (RFC 4733) go to a [`DtmfTracker`] instead of a decoder.
//!
//! Like the rest of the core this is sans-IO and allocation-conscious: the
//! per-frame paths only grow the caller's `out` vector, filter taps and
//! lookup tables are computed once, and malformed payloads produce errors
//! (or are skipped), never panics.
//!
//! * [`g711`]: μ-law / A-law tables, encoders and the PCMU/PCMA decoder.
//! * [`g722`]: ITU-T G.722 SB-ADPCM (64 kbit/s) decoder and encoder.
//! * [`opus`]: Opus decoding through libopus, mono at 48 kHz.
//! * [`dtmf`]: RFC 4733 telephone-event key-press tracking.
//! * [`resample`]: streaming 8k→16k / 48k→16k resampling.
//! * [`plc`]: packet-loss concealment for the waveform codecs.

pub mod dtmf;
pub mod g711;
pub mod g722;
pub mod opus;
pub mod plc;
pub mod resample;

pub use dtmf::{DtmfEvent, DtmfTracker};
pub use g711::{G711Decoder, Law};
pub use g722::{G722Decoder, G722Encoder};
pub use opus::OpusDecoder;
pub use plc::Plc;
pub use resample::Resampler;

use crate::sdp::Codec;

/// Errors of the decoding path.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The codec carries no audio (telephone-event) and has no decoder.
    #[error("{0:?} is not an audio codec")]
    NotAudio(Codec),
    /// The resampler does not support this rate pair.
    #[error("unsupported resampling {from} Hz -> {to} Hz")]
    UnsupportedRate { from: u32, to: u32 },
    /// libopus refused to create a decoder or to decode a packet.
    #[error("opus: {0}")]
    Opus(String),
    /// The payload cannot be decoded (truncated, invalid framing).
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
}

/// Output rate of the speech path.
pub const SPEECH_RATE: u32 = 16_000;

/// A stateful audio decoder for one stream. Output: mono f32 in [-1, 1] at
/// `sample_rate()`.
pub trait Decoder: Send {
    /// Rate of the samples this decoder produces.
    fn sample_rate(&self) -> u32;
    /// Decode one RTP payload, appending samples to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<(), CodecError>;
    /// Conceal `samples` (at `sample_rate()`) of lost audio: Opus uses its
    /// PLC (decode with no data), G.711/G.722 repeat the last pitch period
    /// (at most 10 ms) and fade to silence over 60 ms (then silence).
    fn conceal(&mut self, samples: usize, out: &mut Vec<f32>);
}

/// A decoder for `codec`; `NotAudio` for telephone-event.
pub fn decoder_for(codec: Codec) -> Result<Box<dyn Decoder>, CodecError> {
    match codec {
        Codec::Pcmu => Ok(Box::new(G711Decoder::ulaw())),
        Codec::Pcma => Ok(Box::new(G711Decoder::alaw())),
        Codec::G722 => Ok(Box::new(G722Decoder::new())),
        Codec::Opus => Ok(Box::new(OpusDecoder::new()?)),
        Codec::TelephoneEvent => Err(CodecError::NotAudio(codec)),
    }
}

/// Sample rate of the decoder [`decoder_for`] returns for `codec` (for
/// telephone-event, its RTP clock rate).
pub fn decoder_rate(codec: Codec) -> u32 {
    match codec {
        Codec::Pcmu | Codec::Pcma | Codec::TelephoneEvent => 8_000,
        Codec::G722 => 16_000,
        Codec::Opus => 48_000,
    }
}

/// RTP clock units → decoder samples (G.722: ×2 since its RTP clock is
/// 8 kHz but it samples at 16 kHz; Opus: ×1 at 48 kHz; G.711 ×1).
pub fn rtp_units_to_samples(codec: Codec, units: u32) -> usize {
    let num = u64::from(decoder_rate(codec));
    let den = u64::from(codec.clock_rate().max(1));
    (u64::from(units) * num / den) as usize
}

/// Longest stretch a decoder is asked to conceal for one lost gap, in ms.
/// Concealment fades to silence within 60 ms (Opus's PLC decays too), and
/// whatever of a longer gap is not concealed becomes silence when the next
/// packet is placed on the timeline; without the cap one RTP packet with a
/// timestamp jump inside the sequence window (a `Lost` of up to 2^32 RTP
/// units) made the pipeline allocate and analyse hours of audio.
pub const MAX_CONCEAL_MS: u32 = 1000;

/// Decoder samples to conceal for a lost stretch of `units` RTP clock
/// units: [`rtp_units_to_samples`], at most [`MAX_CONCEAL_MS`].
pub fn conceal_samples(codec: Codec, units: u32) -> usize {
    let cap = (u64::from(decoder_rate(codec)) * u64::from(MAX_CONCEAL_MS) / 1000) as usize;
    rtp_units_to_samples(codec, units).min(cap)
}

/// Comfort noise (RFC 3389, PT 13 / 19): appends the samples (at the
/// decoder rate of `codec`) of a CN packet spanning `units` RTP clock units.
/// They are silence: the speech path treats CN periods as non-speech, and
/// digital silence keeps the recording and the analytics deterministic.
pub fn comfort_noise(codec: Codec, units: u32, out: &mut Vec<f32>) {
    let n = rtp_units_to_samples(codec, units);
    out.resize(out.len() + n, 0.0);
}

/// Noise level of an RFC 3389 CN payload in -dBov (0..=127); `None` for an
/// empty payload.
pub fn comfort_noise_level(payload: &[u8]) -> Option<u8> {
    payload.first().map(|b| b & 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_to_samples() {
        assert_eq!(rtp_units_to_samples(Codec::Pcmu, 160), 160);
        assert_eq!(rtp_units_to_samples(Codec::Pcma, 160), 160);
        assert_eq!(rtp_units_to_samples(Codec::G722, 160), 320);
        assert_eq!(rtp_units_to_samples(Codec::Opus, 960), 960);
        assert_eq!(
            rtp_units_to_samples(Codec::G722, u32::MAX),
            2 * u32::MAX as usize
        );
    }

    #[test]
    fn concealment_is_capped() {
        assert_eq!(conceal_samples(Codec::Pcmu, 160), 160);
        assert_eq!(conceal_samples(Codec::G722, 160), 320);
        // Fuzz finding (rtp): a gap with a 1.8e9-unit timestamp jump asked
        // G.722 for 3.6e9 samples (a 14 GB allocation).
        assert_eq!(conceal_samples(Codec::G722, 1_862_271_136), 16_000);
        assert_eq!(conceal_samples(Codec::Opus, u32::MAX), 48_000);
        assert_eq!(conceal_samples(Codec::Pcma, u32::MAX), 8_000);
    }

    #[test]
    fn decoders_exist_for_audio_codecs() {
        for (c, rate) in [
            (Codec::Pcmu, 8000),
            (Codec::Pcma, 8000),
            (Codec::G722, 16000),
            (Codec::Opus, 48000),
        ] {
            let d = decoder_for(c).unwrap();
            assert_eq!(d.sample_rate(), rate);
            assert_eq!(decoder_rate(c), rate);
        }
        assert_eq!(
            decoder_for(Codec::TelephoneEvent).err(),
            Some(CodecError::NotAudio(Codec::TelephoneEvent))
        );
    }

    #[test]
    fn comfort_noise_is_silence() {
        let mut out = vec![1.0];
        comfort_noise(Codec::G722, 160, &mut out);
        assert_eq!(out.len(), 321);
        assert!(out[1..].iter().all(|&s| s == 0.0));
        assert_eq!(comfort_noise_level(&[0x40, 1, 2]), Some(64));
        assert_eq!(comfort_noise_level(&[]), None);
    }
}
