//! Packet-loss concealment for the waveform codecs (G.711, G.722).
//!
//! The decoder records what it produced; on loss the concealer repeats the
//! last pitch-synchronous stretch of audio (the largest multiple of the
//! estimated pitch period that fits in 10 ms, or plain 10 ms for unvoiced
//! audio) and fades it linearly to silence over 60 ms from the start of the
//! loss; after that it emits silence. Good audio resets the fade.

/// Concealment state for one stream.
#[derive(Debug, Clone)]
pub struct Plc {
    /// Last 20 ms of good output, oldest first.
    hist: Box<[f32]>,
    /// How many samples of `hist` have ever been filled (up to its length).
    filled: usize,
    /// Samples concealed since the last good audio.
    lost: usize,
    /// Length of the repeated segment (set at the start of a loss).
    period: usize,
    /// Position within the repeated segment.
    pos: usize,
    /// Fade length in samples (60 ms).
    fade: usize,
    rate: u32,
}

impl Plc {
    /// Concealment for a stream at `rate` Hz.
    pub fn new(rate: u32) -> Self {
        let rate = rate.max(400);
        let h = (rate / 50) as usize;
        Plc {
            hist: vec![0.0; h].into_boxed_slice(),
            filled: 0,
            lost: 0,
            period: (rate / 100) as usize,
            pos: 0,
            fade: (rate as usize * 60) / 1000,
            rate,
        }
    }

    /// Sample rate this concealer was built for.
    pub fn sample_rate(&self) -> u32 {
        self.rate
    }

    /// Samples concealed since the last good audio.
    pub fn lost_samples(&self) -> usize {
        self.lost
    }

    /// Forget all history.
    pub fn reset(&mut self) {
        self.hist.fill(0.0);
        self.filled = 0;
        self.lost = 0;
        self.pos = 0;
    }

    /// Record good decoded audio (ends any concealment in progress).
    pub fn record(&mut self, samples: &[f32]) {
        if samples.is_empty() {
            return;
        }
        self.lost = 0;
        let h = self.hist.len();
        if samples.len() >= h {
            self.hist.copy_from_slice(&samples[samples.len() - h..]);
        } else {
            let n = samples.len();
            self.hist.copy_within(n.., 0);
            self.hist[h - n..].copy_from_slice(samples);
        }
        self.filled = (self.filled + samples.len()).min(h);
    }

    /// Append `samples` of concealment to `out`.
    pub fn conceal(&mut self, samples: usize, out: &mut Vec<f32>) {
        if samples == 0 {
            return;
        }
        if self.lost == 0 {
            self.period = self.estimate_period();
            self.pos = 0;
        }
        out.reserve(samples);
        let h = self.hist.len();
        let start = h - self.period;
        let mut remaining = samples;
        let inv_fade = 1.0 / self.fade as f32;
        while remaining > 0 && self.lost < self.fade {
            let gain = 1.0 - self.lost as f32 * inv_fade;
            out.push(self.hist[start + self.pos] * gain);
            self.pos += 1;
            if self.pos == self.period {
                self.pos = 0;
            }
            self.lost += 1;
            remaining -= 1;
        }
        if remaining > 0 {
            out.resize(out.len() + remaining, 0.0);
            self.lost = self.lost.saturating_add(remaining);
        }
    }

    /// Length of the segment to repeat: the largest multiple of the pitch
    /// period (2.5..10 ms, normalised autocorrelation over the last 10 ms)
    /// not above 10 ms; 10 ms when the audio is not clearly periodic.
    fn estimate_period(&self) -> usize {
        let h = self.hist.len();
        let ten_ms = h / 2;
        if self.filled < h {
            return ten_ms.min(self.filled.max(1));
        }
        let min_lag = (self.rate / 400) as usize;
        let max_lag = ten_ms;
        let window = &self.hist[h - ten_ms..];
        let energy: f32 = window.iter().map(|x| x * x).sum();
        if energy.is_nan() || energy <= 1e-9 {
            return ten_ms;
        }
        let mut best_lag = ten_ms;
        let mut best = 0.0f32;
        for lag in min_lag..=max_lag {
            let past = &self.hist[h - ten_ms - lag..h - lag];
            let mut xy = 0.0f32;
            let mut yy = 0.0f32;
            for (a, b) in window.iter().zip(past) {
                xy += a * b;
                yy += b * b;
            }
            if yy <= 1e-9 || xy <= 0.0 {
                continue;
            }
            let score = xy / (energy * yy).sqrt();
            if score > best {
                best = score;
                best_lag = lag;
            }
        }
        if best < 0.5 {
            return ten_ms;
        }
        (ten_ms / best_lag).max(1) * best_lag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fades_to_silence_with_exact_length() {
        let mut plc = Plc::new(8000);
        let tone: Vec<f32> = (0..400)
            .map(|i| 0.5 * (i as f32 * 2.0 * std::f32::consts::PI * 200.0 / 8000.0).sin())
            .collect();
        plc.record(&tone);
        let mut out = Vec::new();
        plc.conceal(100, &mut out);
        plc.conceal(700, &mut out);
        assert_eq!(out.len(), 800);
        assert!(out.iter().all(|x| x.is_finite()));
        // Audible at first, silent after 60 ms (480 samples).
        assert!(out[..80].iter().any(|x| x.abs() > 0.3));
        assert!(out[480..].iter().all(|&x| x == 0.0));
        // Monotone fade envelope: peak of each 10 ms block decreases.
        let peaks: Vec<f32> = out[..480]
            .chunks(80)
            .map(|c| c.iter().fold(0.0f32, |m, x| m.max(x.abs())))
            .collect();
        assert!(peaks.windows(2).all(|w| w[1] <= w[0] + 1e-6), "{peaks:?}");
    }

    #[test]
    fn pitch_period_found_for_voiced_audio() {
        let mut plc = Plc::new(8000);
        // 250 Hz = 32-sample period; largest multiple within 80 is 64.
        let tone: Vec<f32> = (0..160)
            .map(|i| (i as f32 * 2.0 * std::f32::consts::PI / 32.0).sin())
            .collect();
        plc.record(&tone);
        assert_eq!(plc.estimate_period(), 64);
        // Continuation is smooth: the first concealed sample continues the sine.
        let mut out = Vec::new();
        plc.conceal(1, &mut out);
        assert!((out[0] - tone[160 - 64]).abs() < 1e-6);
    }

    #[test]
    fn no_history_gives_silence() {
        let mut plc = Plc::new(16000);
        let mut out = Vec::new();
        plc.conceal(2000, &mut out);
        assert_eq!(out.len(), 2000);
        assert!(out.iter().all(|&x| x == 0.0));
    }
}
