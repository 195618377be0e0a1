//! Opus decoding (RFC 6716 / RFC 7587) through libopus.
//!
//! The decoder always runs mono at 48 kHz (the RTP clock of Opus); stereo
//! packets are downmixed by libopus. Loss is concealed with libopus's own
//! PLC (decoding "no data"), which must be asked for in multiples of 2.5 ms;
//! any surplus is kept and handed out by the next concealment so that
//! `conceal(n)` always produces exactly `n` samples.

use super::{CodecError, Decoder};

/// Decoder output rate.
pub const OPUS_RATE: u32 = 48_000;
/// Largest Opus packet duration: 120 ms at 48 kHz.
const MAX_FRAME: usize = 5_760;
/// PLC granularity: 2.5 ms at 48 kHz.
const PLC_QUANTUM: usize = 120;

/// Mono 48 kHz Opus decoder for one stream.
pub struct OpusDecoder {
    inner: ::opus::Decoder,
    /// Concealment produced beyond what was asked for, oldest first.
    plc_surplus: Vec<f32>,
}

fn opus_err(e: ::opus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

impl OpusDecoder {
    /// A new decoder (mono, 48 kHz).
    pub fn new() -> Result<Self, CodecError> {
        let inner = ::opus::Decoder::new(OPUS_RATE, ::opus::Channels::Mono).map_err(opus_err)?;
        Ok(OpusDecoder {
            inner,
            plc_surplus: Vec::new(),
        })
    }

    /// Samples (at 48 kHz) a packet will decode to, from its TOC.
    pub fn packet_samples(&self, payload: &[u8]) -> Result<usize, CodecError> {
        let n = ::opus::packet::get_nb_samples(payload, OPUS_RATE).map_err(opus_err)?;
        if n > MAX_FRAME {
            return Err(CodecError::Malformed("opus packet longer than 120 ms"));
        }
        Ok(n)
    }
}

impl Decoder for OpusDecoder {
    fn sample_rate(&self) -> u32 {
        OPUS_RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<(), CodecError> {
        self.plc_surplus.clear();
        if payload.is_empty() {
            // An empty RTP payload carries nothing (and libopus would take
            // it for a loss); there is nothing to decode.
            return Ok(());
        }
        let n = self.packet_samples(payload)?;
        let start = out.len();
        out.resize(start + n, 0.0);
        match self.inner.decode_float(payload, &mut out[start..], false) {
            Ok(got) => {
                out.truncate(start + got.min(n));
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(opus_err(e))
            }
        }
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<f32>) {
        let mut remaining = samples;
        // Surplus from the previous concealment first.
        let take = remaining.min(self.plc_surplus.len());
        out.extend(self.plc_surplus.drain(..take));
        remaining -= take;
        while remaining > 0 {
            let chunk = remaining.div_ceil(PLC_QUANTUM) * PLC_QUANTUM;
            let chunk = chunk.min(MAX_FRAME);
            let start = out.len();
            out.resize(start + chunk, 0.0);
            let got = match self.inner.decode_float(&[], &mut out[start..], false) {
                Ok(got) => got.min(chunk),
                Err(_) => 0,
            };
            if got == 0 {
                // libopus refused: conceal with silence.
                out.truncate(start);
                out.resize(start + remaining, 0.0);
                return;
            }
            out.truncate(start + got);
            if got > remaining {
                self.plc_surplus
                    .extend_from_slice(&out[start + remaining..]);
                out.truncate(start + remaining);
                remaining = 0;
            } else {
                remaining -= got;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut d = OpusDecoder::new().unwrap();
        let mut out = Vec::new();
        // TOC code 3 with a frame count of 0 is invalid.
        assert!(d.decode(&[0x03, 0x00], &mut out).is_err());
        assert!(out.is_empty());
        assert!(d.decode(&[], &mut out).is_ok());
    }

    #[test]
    fn conceal_lengths_are_exact() {
        let mut d = OpusDecoder::new().unwrap();
        let mut out = Vec::new();
        for n in [0usize, 1, 119, 960, 1000, 7000] {
            let before = out.len();
            d.conceal(n, &mut out);
            assert_eq!(out.len() - before, n);
        }
        assert!(out.iter().all(|x| x.is_finite()));
    }
}
