//! ITU-T G.711 companding (PCMU = μ-law, PCMA = A-law).
//!
//! Decoding is a lookup in 256-entry tables built at compile time by
//! `const fn`; the encoders exist for tests and tone generation. Values are
//! 16-bit linear PCM (the 14-bit μ-law / 13-bit A-law ranges of the
//! recommendation scaled up by 4 and 8).

use super::plc::Plc;
use super::{CodecError, Decoder};

const fn ulaw_decode_formula(byte: u8) -> i16 {
    let u = !byte;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0f) as i32;
    // Bias 0x84 (= 33 << 2) added before the shift and removed after.
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode_formula(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    // In A-law a set sign bit means positive.
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_formula(i as u8)
        } else {
            ulaw_decode_formula(i as u8)
        };
        i += 1;
    }
    t
}

/// μ-law byte → linear sample.
pub static ULAW_TABLE: [i16; 256] = build_table(false);
/// A-law byte → linear sample.
pub static ALAW_TABLE: [i16; 256] = build_table(true);

/// Decode one μ-law byte.
#[inline]
pub fn ulaw_to_linear(byte: u8) -> i16 {
    ULAW_TABLE[byte as usize]
}

/// Decode one A-law byte.
#[inline]
pub fn alaw_to_linear(byte: u8) -> i16 {
    ALAW_TABLE[byte as usize]
}

/// Encode one sample to μ-law (clipped at ±32635, the format's range).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let x = sample as i32;
    let (sign, magnitude) = if x < 0 { (0x80u8, -x) } else { (0u8, x) };
    let biased = magnitude.min(CLIP) + BIAS; // 132 ..= 32767
                                             // Exponent: position of the leading one above bit 7.
    let exponent = (31 - biased.leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (biased >> (exponent + 3)) & 0x0f;
    !(sign | ((exponent as u8) << 4) | mantissa as u8)
}

/// Encode one sample to A-law.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let x = sample as i32;
    let (sign, magnitude) = if x < 0 { (0u8, -x) } else { (0x80u8, x) };
    let magnitude = magnitude.min(32767);
    let (exponent, mantissa) = if magnitude < 256 {
        (0, magnitude >> 4)
    } else {
        // magnitude in [2^(e+7), 2^(e+8)) → exponent e in 1..=7
        let e = 31 - magnitude.leading_zeros() as i32 - 7;
        (e, (magnitude >> (e + 3)) & 0x0f)
    };
    (sign | ((exponent as u8) << 4) | mantissa as u8) ^ 0x55
}

const SCALE: f32 = 1.0 / 32768.0;

/// Which G.711 law a [`G711Decoder`] decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Ulaw,
    Alaw,
}

/// Stateless-by-nature G.711 decoder at 8 kHz; the state is the PLC history.
pub struct G711Decoder {
    law: Law,
    table: &'static [i16; 256],
    plc: Plc,
}

impl G711Decoder {
    /// A decoder for `law`.
    pub fn with_law(law: Law) -> Self {
        let table = match law {
            Law::Ulaw => &ULAW_TABLE,
            Law::Alaw => &ALAW_TABLE,
        };
        G711Decoder {
            law,
            table,
            plc: Plc::new(8_000),
        }
    }
}

impl G711Decoder {
    /// PCMU decoder (μ-law).
    pub fn ulaw() -> Self {
        Self::with_law(Law::Ulaw)
    }
    /// PCMA decoder (A-law).
    pub fn alaw() -> Self {
        Self::with_law(Law::Alaw)
    }
    /// The law this decoder decodes.
    pub fn law(&self) -> Law {
        self.law
    }
}

impl Decoder for G711Decoder {
    fn sample_rate(&self) -> u32 {
        8_000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<(), CodecError> {
        let start = out.len();
        let table = self.table;
        out.extend(payload.iter().map(|&b| table[b as usize] as f32 * SCALE));
        self.plc.record(&out[start..]);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<f32>) {
        self.plc.conceal(samples, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
        assert_eq!(linear_to_ulaw(0), 0xff);
        assert_eq!(linear_to_alaw(0), 0xd5);
    }

    #[test]
    fn encode_decode_fixed_points() {
        // Every decoded value encodes back to a byte decoding to itself.
        for b in 0..=255u8 {
            let u = ulaw_to_linear(b);
            assert_eq!(ulaw_to_linear(linear_to_ulaw(u)), u, "ulaw {b:#x}");
            let a = alaw_to_linear(b);
            assert_eq!(alaw_to_linear(linear_to_alaw(a)), a, "alaw {b:#x}");
        }
    }

    #[test]
    fn decoder_scales_to_unit_range() {
        let mut d = G711Decoder::alaw();
        let mut out = Vec::new();
        d.decode(&[0xaa, 0x2a, 0xd5], &mut out).unwrap();
        assert!((out[0] - 32256.0 / 32768.0).abs() < 1e-7);
        assert!((out[1] + 32256.0 / 32768.0).abs() < 1e-7);
        assert_eq!(out.len(), 3);
    }
}
