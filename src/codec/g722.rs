//! ITU-T G.722 (7 kHz audio, sub-band ADPCM) at 64 kbit/s.
//!
//! Written from the structure of the recommendation: a 24-tap quadrature
//! mirror filter bank splits 16 kHz audio into two 8 kHz sub-bands; the lower
//! band is coded with 6-bit ADPCM (of which the 4 most significant bits form
//! the embedded core used for predictor adaptation), the upper band with
//! 2-bit ADPCM. Each band has the same adaptive predictor (two poles, six
//! zeros, sign-sign adaptation) and a logarithmic scale-factor adaptation.
//!
//! Octets follow RFC 3551: the upper-band code in the two most significant
//! bits, the lower-band code in the six least significant. One octet is two
//! output samples at 16 kHz. Samples are 16-bit linear (the QMF maps them to
//! 15-bit sub-band signals).

use super::plc::Plc;
use super::{CodecError, Decoder};

/// QMF coefficients h0..h23 (symmetric), scaled by 2^13.
const QMF: [i32; 24] = [
    3, -11, -11, 53, 12, -156, 32, 362, -210, -805, 951, 3876, 3876, 951, -805, -210, 362, 32,
    -156, 12, 53, -11, -11, 3,
];

/// Even- and odd-indexed QMF coefficients (h0, h2, ... / h1, h3, ...).
const QMF_EVEN: [i32; 12] = split_qmf(0);
const QMF_ODD: [i32; 12] = split_qmf(1);

const fn split_qmf(phase: usize) -> [i32; 12] {
    let mut t = [0i32; 12];
    let mut i = 0;
    while i < 12 {
        t[i] = QMF[2 * i + phase];
        i += 1;
    }
    t
}

/// Lower-band quantiser decision levels (interval index 1..=29), before
/// scaling by the step size.
const Q6: [i32; 30] = [
    0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940,
    1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919,
];

/// Lower-band inverse quantiser outputs for interval index 1..=30.
const QQ6: [i32; 31] = [
    0, 17, 54, 91, 130, 170, 211, 254, 300, 347, 396, 447, 501, 558, 618, 682, 750, 822, 899, 982,
    1072, 1170, 1279, 1399, 1535, 1689, 1873, 2088, 2376, 2738, 3101,
];

/// Interval index (1..=30) → 6-bit code for negative differences.
const fn iln(mil: usize) -> u8 {
    match mil {
        1 => 63,
        2 => 62,
        _ => (34 - mil) as u8, // 3 → 31 ... 30 → 4
    }
}

/// Interval index (1..=30) → 6-bit code for positive differences.
const fn ilp(mil: usize) -> u8 {
    (62 - mil) as u8 // 1 → 61 ... 30 → 32
}

/// 6-bit code → signed inverse-quantiser output (×8, i.e. Q15 against the
/// step size). Codes 0..=3 are not produced by an encoder; they decode like
/// the smallest negative level.
const QM6: [i32; 64] = build_qm6();

const fn build_qm6() -> [i32; 64] {
    let mut t = [0i32; 64];
    let mut mil = 1;
    while mil <= 30 {
        t[iln(mil) as usize] = -QQ6[mil] * 8;
        t[ilp(mil) as usize] = QQ6[mil] * 8;
        mil += 1;
    }
    t[0] = -QQ6[1] * 8;
    t[1] = -QQ6[1] * 8;
    t[2] = -QQ6[1] * 8;
    t[3] = -QQ6[1] * 8;
    t
}

/// 4-bit embedded code (6-bit code >> 2) → signed inverse-quantiser output.
const QM4: [i32; 16] = [
    0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584,
    1200, 0,
];

/// Lower-band log scale-factor multipliers, indexed through [`RL42`].
const WL: [i32; 8] = [-60, -30, 58, 172, 334, 538, 1198, 3042];
/// 4-bit code → magnitude class for [`WL`].
const RL42: [usize; 16] = [0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0];

/// Upper-band inverse quantiser outputs by 2-bit code.
const QM2: [i32; 4] = [-7408, -1616, 7408, 1616];
/// Upper-band log scale-factor multipliers by 2-bit code.
const WH_BY_CODE: [i32; 4] = [798, -214, 798, -214];

/// 2^(i/32) in Q11: the inverse-log table of the scale factor computation.
const ILB: [i32; 32] = [
    2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
    2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008,
];

#[inline]
fn sat16(x: i32) -> i32 {
    x.clamp(-32768, 32767)
}

/// Adaptive predictor and scale factor of one sub-band.
#[derive(Debug, Clone)]
struct Band {
    /// Predicted signal for the current sample.
    s: i32,
    /// Zero-section part of `s`.
    sz: i32,
    /// Reconstructed signal r(n-1), r(n-2) at [1], [2].
    r: [i32; 3],
    /// Partially reconstructed signal p(n-1), p(n-2) at [1], [2].
    p: [i32; 3],
    /// Pole coefficients a1, a2 at [1], [2].
    a: [i32; 3],
    /// Zero coefficients b1..b6 at [1..=6].
    b: [i32; 7],
    /// Quantised differences d(n-1)..d(n-6) at [1..=6].
    d: [i32; 7],
    /// Log scale factor.
    nb: i32,
    /// Quantiser step size.
    det: i32,
    /// NB upper limit (18432 lower band, 22528 upper band).
    nb_max: i32,
    /// Scale-factor shift base (8 lower band, 10 upper band).
    shift: i32,
}

impl Band {
    fn new(lower: bool) -> Self {
        let mut b = Band {
            s: 0,
            sz: 0,
            r: [0; 3],
            p: [0; 3],
            a: [0; 3],
            b: [0; 7],
            d: [0; 7],
            nb: 0,
            det: 0,
            nb_max: if lower { 18432 } else { 22528 },
            shift: if lower { 8 } else { 10 },
        };
        b.det = b.scale();
        b
    }

    /// Step size from the log scale factor.
    #[inline]
    fn scale(&self) -> i32 {
        let frac = ((self.nb >> 6) & 31) as usize;
        let sh = self.shift - (self.nb >> 11);
        let v = if sh < 0 {
            ILB[frac] << -sh
        } else {
            ILB[frac] >> sh
        };
        v << 2
    }

    /// Log scale-factor adaptation with leakage 127/128.
    #[inline]
    fn adapt_scale(&mut self, w: i32) {
        self.nb = (((self.nb * 127) >> 7) + w).clamp(0, self.nb_max);
        self.det = self.scale();
    }

    /// Predictor adaptation with the quantised difference `dq` of the
    /// current sample; leaves `s`/`sz` predicting the next sample.
    #[inline]
    fn adapt_predictor(&mut self, dq: i32) {
        let r0 = sat16(self.s + dq);
        let p0 = sat16(self.sz + dq);

        // Second pole coefficient.
        let neg0 = p0 < 0;
        let neg1 = self.p[1] < 0;
        let neg2 = self.p[2] < 0;
        let w1 = sat16(self.a[1] * 4);
        let w2 = (if neg0 == neg1 { -w1 } else { w1 }).min(32767) >> 7;
        let w3 = if neg0 == neg2 { 128 } else { -128 };
        let a2 = (w2 + w3 + ((self.a[2] * 127) >> 7)).clamp(-12288, 12288);

        // First pole coefficient, stability-limited by a2.
        let w1 = if neg0 == neg1 { 192 } else { -192 };
        let lim = 15360 - a2;
        let a1 = (w1 + ((self.a[1] * 255) >> 8)).clamp(-lim, lim);

        // Zero coefficients: sign-sign with leakage 255/256.
        let step = if dq == 0 { 0 } else { 128 };
        let negd = dq < 0;
        for i in 1..7 {
            let g = if (self.d[i] < 0) == negd { step } else { -step };
            self.b[i] = sat16(g + ((self.b[i] * 255) >> 8));
        }

        // Delay lines.
        self.d.copy_within(1..6, 2);
        self.d[1] = dq;
        self.p[2] = self.p[1];
        self.p[1] = p0;
        self.r[2] = self.r[1];
        self.r[1] = r0;
        self.a[1] = a1;
        self.a[2] = a2;

        // Prediction for the next sample.
        // Doubling is in 16-bit arithmetic, so it saturates.
        let sp = sat16(((a1 * sat16(2 * self.r[1])) >> 15) + ((a2 * sat16(2 * self.r[2])) >> 15));
        let mut sz = 0;
        for i in 1..7 {
            sz += (self.b[i] * sat16(2 * self.d[i])) >> 15;
        }
        self.sz = sat16(sz);
        self.s = sat16(sp + self.sz);
    }
}

/// Lower band: reconstruct from a 6-bit code and adapt; returns r_L.
#[inline]
fn lower_decode(band: &mut Band, il: u8) -> i32 {
    let dl = (band.det * QM6[il as usize]) >> 15;
    let il4 = (il >> 2) as usize;
    let dlt = (band.det * QM4[il4]) >> 15;
    let rl = (band.s + dl).clamp(-16384, 16383);
    band.adapt_scale(WL[RL42[il4]]);
    band.adapt_predictor(dlt);
    rl
}

/// Upper band: reconstruct from a 2-bit code and adapt; returns r_H.
#[inline]
fn upper_decode(band: &mut Band, ih: u8) -> i32 {
    let dh = (band.det * QM2[ih as usize]) >> 15;
    let rh = (band.s + dh).clamp(-16384, 16383);
    band.adapt_scale(WH_BY_CODE[ih as usize]);
    band.adapt_predictor(dh);
    rh
}

/// G.722 64 kbit/s decoder: octets in, 16 kHz samples out.
#[derive(Debug, Clone)]
pub struct G722Decoder {
    low: Band,
    high: Band,
    /// Receive-QMF delay lines of r_L - r_H and r_L + r_H, newest first.
    xd: [i32; 12],
    xs: [i32; 12],
    plc: Plc,
}

impl Default for G722Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Decoder {
    /// A decoder in the reset state.
    pub fn new() -> Self {
        G722Decoder {
            low: Band::new(true),
            high: Band::new(false),
            xd: [0; 12],
            xs: [0; 12],
            plc: Plc::new(16_000),
        }
    }

    /// Decode octets to 16-bit samples (two per octet), appending to `out`.
    pub fn decode_i16(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        out.reserve(payload.len() * 2);
        for &byte in payload {
            let [a, b] = self.decode_octet(byte);
            out.push(a);
            out.push(b);
        }
    }

    #[inline]
    fn decode_octet(&mut self, byte: u8) -> [i16; 2] {
        let rl = lower_decode(&mut self.low, byte & 0x3f);
        let rh = upper_decode(&mut self.high, byte >> 6);
        self.xd.copy_within(0..11, 1);
        self.xs.copy_within(0..11, 1);
        self.xd[0] = rl - rh;
        self.xs[0] = rl + rh;
        let even: i32 = QMF_EVEN.iter().zip(&self.xd).map(|(h, x)| h * x).sum();
        let odd: i32 = QMF_ODD.iter().zip(&self.xs).map(|(h, x)| h * x).sum();
        [sat16(even >> 11) as i16, sat16(odd >> 11) as i16]
    }
}

impl Decoder for G722Decoder {
    fn sample_rate(&self) -> u32 {
        16_000
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<f32>) -> Result<(), CodecError> {
        let start = out.len();
        out.reserve(payload.len() * 2);
        for &byte in payload {
            let [a, b] = self.decode_octet(byte);
            out.push(a as f32 * (1.0 / 32768.0));
            out.push(b as f32 * (1.0 / 32768.0));
        }
        self.plc.record(&out[start..]);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<f32>) {
        self.plc.conceal(samples, out);
    }
}

/// G.722 64 kbit/s encoder (for tests and tone generation): pairs of 16 kHz
/// samples in, octets out.
#[derive(Debug, Clone)]
pub struct G722Encoder {
    low: Band,
    high: Band,
    /// Transmit-QMF input history, newest first.
    x: [i32; 24],
    /// An odd sample left over from the previous call.
    pending: Option<i16>,
}

impl Default for G722Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl G722Encoder {
    /// An encoder in the reset state.
    pub fn new() -> Self {
        G722Encoder {
            low: Band::new(true),
            high: Band::new(false),
            x: [0; 24],
            pending: None,
        }
    }

    /// Encode 16 kHz samples, appending one octet per pair. An odd trailing
    /// sample is kept for the next call.
    pub fn encode(&mut self, samples: &[i16], out: &mut Vec<u8>) {
        let mut rest = samples;
        if let Some(first) = self.pending.take() {
            match rest.split_first() {
                Some((&second, tail)) => {
                    out.push(self.encode_pair(first, second));
                    rest = tail;
                }
                None => {
                    self.pending = Some(first);
                    return;
                }
            }
        }
        let mut pairs = rest.chunks_exact(2);
        for pair in &mut pairs {
            out.push(self.encode_pair(pair[0], pair[1]));
        }
        if let [last] = pairs.remainder() {
            self.pending = Some(*last);
        }
    }

    fn encode_pair(&mut self, first: i16, second: i16) -> u8 {
        self.x.copy_within(0..22, 2);
        self.x[1] = first as i32;
        self.x[0] = second as i32;
        let mut sum_even = 0i32;
        let mut sum_odd = 0i32;
        for i in 0..12 {
            sum_even += QMF[2 * i] * self.x[2 * i];
            sum_odd += QMF[2 * i + 1] * self.x[2 * i + 1];
        }
        let xl = (sum_even + sum_odd) >> 14;
        let xh = (sum_even - sum_odd) >> 14;

        // Lower band: 6-bit quantiser against the adaptive step size.
        let el = sat16(xl - self.low.s);
        let mag = if el >= 0 { el } else { -(el + 1) };
        let mut mil = 30;
        for (i, &q) in Q6.iter().enumerate().skip(1) {
            if mag < (q * self.low.det) >> 12 {
                mil = i;
                break;
            }
        }
        let il = if el < 0 { iln(mil) } else { ilp(mil) };

        // Upper band: 2-bit quantiser.
        let eh = sat16(xh - self.high.s);
        let mag = if eh >= 0 { eh } else { -(eh + 1) };
        let big = mag >= (564 * self.high.det) >> 12;
        let ih: u8 = match (eh < 0, big) {
            (true, true) => 0,
            (true, false) => 1,
            (false, true) => 2,
            (false, false) => 3,
        };

        // The encoder runs the decoder's adaptation to stay in step.
        lower_decode(&mut self.low, il);
        upper_decode(&mut self.high, ih);
        (ih << 6) | il
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ilb_is_two_to_the_i_over_32() {
        for (i, &v) in ILB.iter().enumerate() {
            let exact = 2048.0 * 2f64.powf(i as f64 / 32.0);
            assert!(
                (v as f64 - exact).abs() <= 0.5 + 1e-9,
                "{i}: {v} vs {exact}"
            );
        }
    }

    #[test]
    fn code_maps_are_bijective() {
        let mut seen = [false; 64];
        for (mil, &qq) in QQ6.iter().enumerate().skip(1) {
            for c in [iln(mil), ilp(mil)] {
                assert!(!seen[c as usize], "code {c} twice");
                seen[c as usize] = true;
                assert_eq!(QM6[c as usize].abs(), qq * 8);
            }
        }
        // The 4-bit embedded code of each 6-bit code has the same sign.
        for c in 4..64usize {
            let s6 = QM6[c].signum();
            let s4 = QM4[c >> 2].signum();
            assert!(s4 == 0 || s4 == s6, "code {c}");
        }
        // Codes 0..=3 are the only ones an encoder never sends.
        assert!(seen[4..].iter().all(|&s| s));
    }

    #[test]
    fn initial_step_sizes() {
        assert_eq!(Band::new(true).det, 32);
        assert_eq!(Band::new(false).det, 8);
    }

    #[test]
    fn silence_stays_quiet() {
        let mut enc = G722Encoder::new();
        let mut bytes = Vec::new();
        enc.encode(&[0i16; 320], &mut bytes);
        assert_eq!(bytes.len(), 160);
        let mut dec = G722Decoder::new();
        let mut pcm = Vec::new();
        dec.decode_i16(&bytes, &mut pcm);
        assert_eq!(pcm.len(), 320);
        assert!(pcm.iter().all(|s| s.abs() < 16), "{pcm:?}");
    }

    #[test]
    fn odd_sample_split_is_carried() {
        let samples: Vec<i16> = (0..321).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        let mut a = G722Encoder::new();
        let mut one = Vec::new();
        a.encode(&samples[..320], &mut one);
        let mut b = G722Encoder::new();
        let mut split = Vec::new();
        b.encode(&samples[..3], &mut split);
        b.encode(&samples[3..7], &mut split);
        b.encode(&samples[7..320], &mut split);
        assert_eq!(one, split);
    }
}
