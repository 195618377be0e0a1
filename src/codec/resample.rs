//! Streaming resampling of decoder output to the speech rate (16 kHz).
//!
//! Three paths, all with fixed-phase FIR filters whose taps are computed once
//! per process (Kaiser-windowed sinc, β = 7, about 70 dB stopband):
//!
//! * 8 kHz → 16 kHz: ×2 interpolation with a 32-tap half-band filter. Every
//!   even output sample is an input sample (delayed), every odd one the
//!   interpolated mid-point, so the cost is 32 multiply-adds per input sample.
//!   Cutoff 4 kHz, transition about 3.5..4.5 kHz.
//! * 48 kHz → 16 kHz: ÷3 decimation with a 97-tap anti-alias low-pass
//!   (cutoff 7 kHz, passband to about 6 kHz, stopband from about 8 kHz)
//!   evaluated only at the kept samples.
//! * equal rates: pass-through.
//!
//! The filters keep their history between calls, so splitting a stream into
//! frames of any size gives bit-identical output to processing it at once.
//! Group delay: [`Resampler::delay`] output samples.

use std::sync::OnceLock;

use super::CodecError;

/// Half the length of the half-band interpolator (taps per side).
const UP_HALF: usize = 16;
/// Length of the ÷3 decimation filter.
const DOWN_TAPS: usize = 97;
/// Kaiser β shared by both designs.
const BETA: f64 = 7.0;

/// Zeroth-order modified Bessel function of the first kind (power series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..64 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Kaiser window at `t` in [-1, 1] (normalised distance from the centre).
fn kaiser(t: f64) -> f64 {
    let r = (1.0 - t * t).max(0.0);
    bessel_i0(BETA * r.sqrt()) / bessel_i0(BETA)
}

fn sinc(x: f64) -> f64 {
    if x.abs() < 1e-12 {
        1.0
    } else {
        (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
    }
}

/// The 2·UP_HALF taps producing the mid-point between two input samples
/// from the 2·UP_HALF inputs around it (oldest first); they sum to 1.
fn up_taps() -> &'static [f32; 2 * UP_HALF] {
    static TAPS: OnceLock<[f32; 2 * UP_HALF]> = OnceLock::new();
    TAPS.get_or_init(|| {
        // Tap m multiplies the input at distance (m - UP_HALF + 0.5) from
        // the interpolated point.
        let raw: [f64; 2 * UP_HALF] = std::array::from_fn(|m| {
            let t = m as f64 - UP_HALF as f64 + 0.5;
            sinc(t) * kaiser(t / UP_HALF as f64)
        });
        let sum: f64 = raw.iter().sum();
        raw.map(|v| (v / sum) as f32)
    })
}

/// The ÷3 anti-alias low-pass (cutoff 7 kHz at 48 kHz), unity DC gain.
fn down_taps() -> &'static [f32] {
    static TAPS: OnceLock<Box<[f32]>> = OnceLock::new();
    TAPS.get_or_init(|| {
        let fc = 7_000.0 / 48_000.0;
        let mid = (DOWN_TAPS - 1) as f64 / 2.0;
        let raw: Vec<f64> = (0..DOWN_TAPS)
            .map(|k| {
                let t = k as f64 - mid;
                2.0 * fc * sinc(2.0 * fc * t) * kaiser(t / (mid + 1.0))
            })
            .collect();
        let sum: f64 = raw.iter().sum();
        raw.iter().map(|v| (v / sum) as f32).collect()
    })
}

/// Dot product with eight independent accumulators (vectorisable, and the
/// summation order depends only on the slice contents, not on framing).
#[inline]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

#[derive(Debug, Clone)]
enum Kind {
    Pass,
    Up2 { taps: &'static [f32; 2 * UP_HALF] },
    Down3 { taps: &'static [f32], offset: usize },
}

/// Streaming resampler to the speech rate, mono `f32`.
#[derive(Debug, Clone)]
pub struct Resampler {
    kind: Kind,
    /// Filter history followed, during `process`, by the new input.
    buf: Vec<f32>,
    in_rate: u32,
    out_rate: u32,
}

impl Resampler {
    /// Supported: 8000→16000, 48000→16000 and any rate to itself.
    pub fn new(in_rate: u32, out_rate: u32) -> Result<Self, CodecError> {
        let (kind, hist) = match (in_rate, out_rate) {
            (a, b) if a == b && a > 0 => (Kind::Pass, 0),
            (8_000, 16_000) => (Kind::Up2 { taps: up_taps() }, 2 * UP_HALF - 1),
            (48_000, 16_000) => (
                Kind::Down3 {
                    taps: down_taps(),
                    offset: 0,
                },
                DOWN_TAPS - 1,
            ),
            (from, to) => return Err(CodecError::UnsupportedRate { from, to }),
        };
        // History plus one 20 ms packet; grows if a chunk is longer.
        let mut buf = Vec::with_capacity(hist + in_rate as usize / 50);
        buf.resize(hist, 0.0);
        Ok(Resampler {
            kind,
            buf,
            in_rate,
            out_rate,
        })
    }

    /// Input rate.
    pub fn in_rate(&self) -> u32 {
        self.in_rate
    }

    /// Output rate.
    pub fn out_rate(&self) -> u32 {
        self.out_rate
    }

    /// Group delay in output samples (32 for ×2, 16 for ÷3, 0 pass-through).
    pub fn delay(&self) -> usize {
        match self.kind {
            Kind::Pass => 0,
            Kind::Up2 { .. } => 2 * UP_HALF,
            Kind::Down3 { .. } => (DOWN_TAPS - 1) / 2 / 3,
        }
    }

    /// Forget the filter history (e.g. after a stream restart).
    pub fn reset(&mut self) {
        self.buf.fill(0.0);
        if let Kind::Down3 { offset, .. } = &mut self.kind {
            *offset = 0;
        }
    }

    /// Give back history-buffer capacity beyond `keep` samples (it grows to
    /// the largest input ever processed; the history itself is tiny).
    pub fn trim(&mut self, keep: usize) {
        if self.buf.capacity() > keep {
            self.buf.shrink_to(keep);
        }
    }

    /// Resample `input`, appending to `out`.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        match &mut self.kind {
            Kind::Pass => out.extend_from_slice(input),
            Kind::Up2 { taps } => {
                let hist = 2 * UP_HALF - 1;
                self.buf.extend_from_slice(input);
                // Written in place (no per-sample push), over fixed-size
                // windows the compiler unrolls; bit for bit the filter
                // formula (`up2_is_the_filter_formula_whatever_the_framing`).
                let start = out.len();
                out.resize(start + 2 * input.len(), 0.0);
                let windows = self.buf.windows(2 * UP_HALF);
                for (pair, window) in out[start..].chunks_exact_mut(2).zip(windows) {
                    let window: &[f32; 2 * UP_HALF] = window.try_into().expect("window");
                    pair[0] = window[UP_HALF - 1];
                    pair[1] = dot(*taps, window);
                }
                let keep_from = self.buf.len() - hist;
                self.buf.drain(..keep_from);
            }
            Kind::Down3 { taps, offset } => {
                let hist = DOWN_TAPS - 1;
                self.buf.extend_from_slice(input);
                out.reserve(input.len() / 3 + 1);
                let mut q = hist + *offset;
                while q < self.buf.len() {
                    out.push(dot(taps, &self.buf[q - hist..=q]));
                    q += 3;
                }
                *offset = q - self.buf.len();
                let keep_from = self.buf.len() - hist;
                self.buf.drain(..keep_from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_are_symmetric_and_normalised() {
        for taps in [&up_taps()[..], down_taps()] {
            let n = taps.len();
            for i in 0..n / 2 {
                assert!((taps[i] - taps[n - 1 - i]).abs() < 1e-7);
            }
            let sum: f32 = taps.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "{sum}");
        }
    }

    #[test]
    fn up2_is_the_filter_formula_whatever_the_framing() {
        // Every even output is the input delayed by UP_HALF - 1 samples,
        // every odd one the taps' dot product with the 2·UP_HALF inputs
        // around it (zeros before the start), bit for bit, in any framing.
        let input: Vec<f32> = (0..2_000u32)
            .map(|n| ((n * 7919 % 2_003) as f32 / 1_001.0 - 1.0) * 0.9)
            .collect();
        let hist = 2 * UP_HALF - 1;
        let mut padded = vec![0.0; hist];
        padded.extend_from_slice(&input);
        let mut expected = vec![];
        for q in hist..padded.len() {
            expected.push(padded[q - UP_HALF]);
            expected.push(dot(up_taps(), &padded[q - hist..=q]));
        }
        for frame in [1, 7, 160, 2_000] {
            let mut r = Resampler::new(8_000, 16_000).unwrap();
            let mut out = vec![];
            for chunk in input.chunks(frame) {
                r.process(chunk, &mut out);
            }
            assert_eq!(out.len(), expected.len());
            let same = out
                .iter()
                .zip(&expected)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "framing {frame}");
        }
    }

    #[test]
    fn bessel_values() {
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008_4).abs() < 1e-12);
        assert!((bessel_i0(7.0) - 168.593_908_510_289_6).abs() < 1e-9);
    }

    #[test]
    fn unsupported_rates() {
        assert_eq!(
            Resampler::new(44_100, 16_000).err(),
            Some(CodecError::UnsupportedRate {
                from: 44_100,
                to: 16_000
            })
        );
        assert!(Resampler::new(0, 0).is_err());
        assert!(Resampler::new(16_000, 16_000).is_ok());
    }

    #[test]
    fn output_lengths() {
        let mut up = Resampler::new(8_000, 16_000).unwrap();
        let mut down = Resampler::new(48_000, 16_000).unwrap();
        let mut out = Vec::new();
        up.process(&[0.0; 160], &mut out);
        assert_eq!(out.len(), 320);
        out.clear();
        let mut total = 0;
        for n in [1usize, 2, 5, 7, 960, 11] {
            down.process(&vec![0.0; n], &mut out);
            total += n;
        }
        assert_eq!(out.len(), total.div_ceil(3));
    }

    #[test]
    fn dc_passes_at_unity() {
        let mut up = Resampler::new(8_000, 16_000).unwrap();
        let mut out = Vec::new();
        up.process(&[0.5; 400], &mut out);
        assert!(out[100..].iter().all(|v| (v - 0.5).abs() < 1e-5));
        let mut down = Resampler::new(48_000, 16_000).unwrap();
        out.clear();
        down.process(&[0.5; 1200], &mut out);
        assert!(out[50..].iter().all(|v| (v - 0.5).abs() < 1e-5));
    }
}
