//! The `stream` detector: a per-datapoint anomaly score in [0, 1] for one metric, updated in
//! timestamp order with bounded state (≈ 1.2 KB per metric, see [`StreamState::BYTES`]).
//!
//! Pure code (no actix, redis or diesel). Owns no actors, messages, Redis keys or tables; its
//! callers own the state (one [`StreamState`] per metric) and feed it points in order. It has
//! no queue of its own, so it has no backpressure policy: an update is O(1) and allocation
//! free.
//!
//! Design (our own composition of well-known ingredients; see docs/stream.md):
//!
//! 1. **Online normalisation.** The metric's range `[min, max]` is learned from the points
//!    seen so far; nothing is known in advance.
//! 2. **Spatial novelty.** A value beyond the learned range by more than 5 % of its width
//!    scores 1.0 at once (as Numenta's NAB detector does for values outside the seen range).
//! 3. **Raw surprise** per point, the mean of two parts:
//!    * *residual surprise*: `|v - m| / d` against an exponentially weighted mean `m` and
//!      mean absolute deviation `d`, mapped to [0, 1) by `1 - exp(-(z - 1)⁺ / 3)`;
//!    * *contextual novelty*: the value is quantised into 16 levels of the learned range and
//!      the pattern of the last 4 levels is looked up in a 8,192-bit hashed "seen" set; a
//!      pattern never seen before scores 1 (the idea of CAD OSE's context novelty).
//! 4. **Anomaly likelihood** (as HTM's post-processor): the mean of the last 10 raw scores
//!    is compared with the long-run distribution of raw scores (exponentially weighted mean
//!    and variance, ~1,000 points); the Gaussian tail probability `q` becomes the score
//!    `log(q) / log(1e-10)` clamped to [0, 1].
//! 5. **Learning period**: the first 150 points score 0.
//! 6. **Suppression**: after a score ≥ the threshold, the next 100 points score 0, so one
//!    incident is reported once.
//!
//! Robustness: NaN and ±∞ values, and points not newer than the last one (late or
//! duplicate), are ignored (score 0, state unchanged). Gaps are not special: the model is
//! sequence based. Huge values are plain `f64` arithmetic with every intermediate checked for
//! finiteness. A constant series never scores above 0 after its learning period.

/// Parameters of the stream detector. `Default` is the one parameter set the daemon ships
/// with and that produced the NAB figures in the README.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamParams {
    /// Points scored 0 while the model learns.
    pub learn: u32,
    /// Spatial tolerance, as a fraction of the learned range.
    pub tolerance: f64,
    /// Weight of the residual surprise in the raw score (the contextual novelty has
    /// `1 - residual_weight`).
    pub residual_weight: f64,
    /// Rate of the exponentially weighted mean and deviation of the values.
    pub residual_rate: f64,
    /// Rate of the long-run raw score distribution (1 / window length).
    pub history_rate: f64,
    /// Score at or above which a point is a detection (and suppression starts).
    pub threshold: f64,
    /// Points scored 0 after a detection.
    pub suppress: u32,
}

/// The detection threshold the detector ships with (the NAB standard profile's optimum).
pub const DEFAULT_THRESHOLD: f64 = 0.5;

impl Default for StreamParams {
    fn default() -> Self {
        StreamParams {
            learn: 150,
            tolerance: 0.05,
            residual_weight: 0.5,
            residual_rate: 0.05,
            history_rate: 0.001,
            threshold: DEFAULT_THRESHOLD,
            suppress: 100,
        }
    }
}

/// Quantisation levels of the learned range (plus one below and one above).
const LEVELS: f64 = 16.0;
/// Length of the level pattern whose novelty is scored.
const CONTEXT: usize = 4;
/// Raw scores averaged by the likelihood.
const SHORT: usize = 10;
/// Bits of the hashed set of seen patterns.
const SEEN_BITS: u32 = 13;
const SEEN_WORDS: usize = (1 << SEEN_BITS) / 64;

// The state stays within the 8 KB per metric.
const _: () = assert!(StreamState::BYTES <= 8 * 1024);

/// One metric's detector state. Fixed size, no heap.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamState {
    n: u32,
    last_t: Option<i64>,
    min: f64,
    max: f64,
    mean: f64,
    dev: f64,
    levels: [u8; CONTEXT],
    levels_len: u8,
    seen: [u64; SEEN_WORDS],
    hist_mean: f64,
    hist_var: f64,
    hist_n: u32,
    ring: [f32; SHORT],
    ring_pos: u8,
    ring_len: u8,
    suppress_left: u32,
    last_score: f64,
}

impl Default for StreamState {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamState {
    /// Bytes of one metric's state.
    pub const BYTES: usize = std::mem::size_of::<StreamState>();

    /// A state that has seen nothing.
    pub fn new() -> Self {
        StreamState {
            n: 0,
            last_t: None,
            min: 0.0,
            max: 0.0,
            mean: 0.0,
            dev: 0.0,
            levels: [0; CONTEXT],
            levels_len: 0,
            seen: [0; SEEN_WORDS],
            hist_mean: 0.0,
            hist_var: 0.0,
            hist_n: 0,
            ring: [0.0; SHORT],
            ring_pos: 0,
            ring_len: 0,
            suppress_left: 0,
            last_score: 0.0,
        }
    }

    /// Points taken into the model.
    pub fn points(&self) -> u32 {
        self.n
    }

    /// Timestamp of the last point taken.
    pub fn last_timestamp(&self) -> Option<i64> {
        self.last_t
    }

    /// Score of the last point taken (0 before any).
    pub fn last_score(&self) -> f64 {
        self.last_score
    }

    /// Take the point `(t, v)` and return its anomaly score in [0, 1]. Points with a
    /// non-finite value or not newer than the last point score 0 and change nothing.
    pub fn update(&mut self, t: i64, v: f64, p: &StreamParams) -> f64 {
        if !v.is_finite() || self.last_t.is_some_and(|last| t <= last) {
            return 0.0;
        }
        self.last_t = Some(t);
        self.n = self.n.saturating_add(1);

        // 2. Spatial novelty against the range learned before this point.
        let width = self.max - self.min;
        // A constant series has a range of width 0: any other value is outside it.
        let spatial = self.n > 1
            && width.is_finite()
            && (v > self.max + width * p.tolerance || v < self.min - width * p.tolerance);

        // 3a. Residual surprise.
        let residual = if self.n == 1 {
            self.mean = v;
            0.0
        } else {
            let r = (v - self.mean).abs();
            let z = if self.dev > 0.0 {
                r / self.dev
            } else if r > 0.0 {
                f64::INFINITY
            } else {
                0.0
            };
            self.mean += p.residual_rate * (v - self.mean);
            self.dev += p.residual_rate * (r - self.dev);
            if !self.mean.is_finite() || !self.dev.is_finite() {
                self.mean = v;
                self.dev = 0.0;
            }
            let excess = (z - 1.0).max(0.0);
            if excess.is_finite() {
                1.0 - (-excess / 3.0).exp()
            } else {
                1.0
            }
        };

        // 3b. Contextual novelty of the last levels.
        let level = if self.n > 1 && width > 0.0 && width.is_finite() {
            let x = (v - self.min) / width * (LEVELS - 1.0) + 0.5;
            // Out-of-range values get their own levels below (0) and above (LEVELS + 1).
            (x.floor().clamp(-1.0, LEVELS) + 1.0) as u8
        } else {
            1
        };
        if usize::from(self.levels_len) == CONTEXT {
            self.levels.copy_within(1.., 0);
            self.levels[CONTEXT - 1] = level;
        } else {
            self.levels[usize::from(self.levels_len)] = level;
            self.levels_len += 1;
        }
        let mut h: u32 = 0;
        for &l in &self.levels[..usize::from(self.levels_len)] {
            h = h.wrapping_mul(31).wrapping_add(u32::from(l) + 1);
        }
        let bit = h.wrapping_mul(2_654_435_761) >> (32 - SEEN_BITS);
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        let novel = self.seen[word] & mask == 0;
        self.seen[word] |= mask;

        if self.n == 1 || v < self.min {
            self.min = v;
        }
        if self.n == 1 || v > self.max {
            self.max = v;
        }

        let raw = p.residual_weight * residual + (1.0 - p.residual_weight) * f64::from(novel);
        let raw = raw.clamp(0.0, 1.0);

        // 4. Likelihood of the recent raw scores under their long-run distribution.
        self.ring[usize::from(self.ring_pos)] = raw as f32;
        self.ring_pos = ((usize::from(self.ring_pos) + 1) % SHORT) as u8;
        self.ring_len = (self.ring_len + 1).min(SHORT as u8);
        let short_mean = self.ring[..usize::from(self.ring_len)]
            .iter()
            .map(|&x| f64::from(x))
            .sum::<f64>()
            / f64::from(self.ring_len);
        let rate = if f64::from(self.hist_n) * p.history_rate >= 1.0 {
            p.history_rate
        } else {
            1.0 / (f64::from(self.hist_n) + 1.0)
        };
        let d = raw - self.hist_mean;
        self.hist_mean += rate * d;
        self.hist_var = (1.0 - rate) * (self.hist_var + rate * d * d);
        self.hist_n = self.hist_n.saturating_add(1);

        let mut score = if self.n <= p.learn {
            0.0
        } else {
            // One-sided: recent raw scores no higher than usual score 0.
            let sd = self.hist_var.sqrt().max(1e-4);
            let z = (short_mean - self.hist_mean) / sd;
            if z > 0.0 {
                let tail = gaussian_tail(z);
                ((tail + 1e-10).ln() / 1e-10f64.ln()).clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        if spatial && self.n > p.learn {
            score = 1.0;
        }

        // 6. Suppression of repeated detections.
        if self.suppress_left > 0 {
            self.suppress_left -= 1;
            score = 0.0;
        } else if score >= p.threshold {
            self.suppress_left = p.suppress;
        }
        self.last_score = score;
        score
    }
}

/// P(Z > z) for a standard normal Z.
fn gaussian_tail(z: f64) -> f64 {
    if z.is_nan() {
        return 1.0;
    }
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Score a whole series (points in any order are taken as they come; see
/// [`StreamState::update`]). One score per point.
pub fn score_series(points: &[(i64, f64)], p: &StreamParams) -> Vec<f64> {
    let mut state = StreamState::new();
    points.iter().map(|&(t, v)| state.update(t, v, p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic noisy daily-ish signal: period 48 points, amplitude 10, noise ±1.
    fn base(i: usize) -> f64 {
        let mut x = (i as u64).wrapping_mul(6_364_136_223_846_793_005) ^ 0x9E37_79B9;
        x ^= x >> 33;
        let noise = (x % 1000) as f64 / 500.0 - 1.0;
        50.0 + 10.0 * ((i % 48) as f64 / 48.0 * std::f64::consts::TAU).sin() + noise
    }

    fn series(n: usize, f: impl Fn(usize) -> f64) -> Vec<(i64, f64)> {
        (0..n).map(|i| (i as i64 * 60, f(i))).collect()
    }

    fn first_detection(scores: &[f64], from: usize) -> Option<usize> {
        scores[from..]
            .iter()
            .position(|&s| s >= DEFAULT_THRESHOLD)
            .map(|k| k + from)
    }

    /// Detections before the change point (false positives) and the first after it.
    fn check_change(f: impl Fn(usize) -> f64, change: usize, within: usize) {
        let p = StreamParams::default();
        let scores = score_series(&series(2000, f), &p);
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
        let before = scores[400..change]
            .iter()
            .filter(|&&s| s >= p.threshold)
            .count();
        assert!(before <= 1, "{before} detections before the change");
        let hit = first_detection(&scores, change).expect("change detected");
        assert!(
            hit < change + within,
            "detected at {hit}, change at {change}"
        );
    }

    #[test]
    fn detects_a_step() {
        check_change(|i| base(i) + if i >= 1500 { 40.0 } else { 0.0 }, 1500, 5);
    }

    #[test]
    fn detects_a_spike() {
        check_change(
            |i| if i == 1500 { base(i) + 100.0 } else { base(i) },
            1500,
            2,
        );
    }

    #[test]
    fn detects_a_variance_change() {
        check_change(
            |i| {
                if i >= 1500 {
                    50.0 + (base(i) - 50.0) * 4.0
                } else {
                    base(i)
                }
            },
            1500,
            30,
        );
    }

    #[test]
    fn detects_flat_then_jump() {
        check_change(|i| if i < 1500 { 7.0 } else { 9.0 }, 1500, 2);
    }

    #[test]
    fn constant_series_never_fires() {
        let p = StreamParams::default();
        let scores = score_series(&series(3000, |_| 42.0), &p);
        assert!(scores.iter().all(|&s| s == 0.0));
    }

    #[test]
    fn learning_period_scores_zero_and_suppression_holds() {
        let p = StreamParams::default();
        // Ever higher spikes: at 100 (learning), 400, 450 (suppressed) and 600.
        let spike = |i: usize| match i {
            100 => 1_000.0,
            400 => 2_000.0,
            450 => 3_000.0,
            600 => 4_000.0,
            _ => 0.0,
        };
        let scores = score_series(&series(800, |i| base(i) + spike(i)), &p);
        assert!(scores[..p.learn as usize].iter().all(|&s| s == 0.0));
        let hits: Vec<usize> = (0..scores.len())
            .filter(|&i| scores[i] >= p.threshold)
            .collect();
        assert_eq!(hits, vec![400, 600]);
    }

    #[test]
    fn nan_late_duplicate_points_change_nothing() {
        let p = StreamParams::default();
        let mut a = StreamState::new();
        let mut b = StreamState::new();
        for i in 0..600 {
            let t = i as i64 * 60;
            a.update(t, base(i), &p);
            b.update(t, base(i), &p);
            assert_eq!(b.update(t, 1e300, &p), 0.0, "duplicate");
            assert_eq!(b.update(t - 30, -5.0, &p), 0.0, "late");
            assert_eq!(b.update(t + 1, f64::NAN, &p), 0.0, "nan");
            assert_eq!(b.update(t + 1, f64::INFINITY, &p), 0.0, "inf");
        }
        assert_eq!(a, b);
    }

    #[test]
    fn gaps_are_taken() {
        let p = StreamParams::default();
        let pts: Vec<(i64, f64)> = (0..1000)
            .map(|i| {
                (
                    i as i64 * 60 + if i > 500 { 86_400 * 30 } else { 0 },
                    base(i),
                )
            })
            .collect();
        let scores = score_series(&pts, &p);
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    }

    #[test]
    fn huge_values_do_not_break_it() {
        let p = StreamParams::default();
        let vals = [1e308, -1e308, f64::MAX, f64::MIN, 0.0, 1e-308, 5.0];
        let pts: Vec<(i64, f64)> = (0..2000)
            .map(|i| (i as i64, vals[i % vals.len()]))
            .collect();
        let scores = score_series(&pts, &p);
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
        // And after the storm it still works on ordinary values.
        let mut s = StreamState::new();
        for &(t, v) in &pts {
            s.update(t, v, &p);
        }
        let r = s.update(10_000, 3.0, &p);
        assert!((0.0..=1.0).contains(&r));
    }

    #[test]
    fn deterministic() {
        let p = StreamParams::default();
        let pts = series(3000, |i| base(i) + if i > 2000 { 30.0 } else { 0.0 });
        assert_eq!(score_series(&pts, &p), score_series(&pts, &p));
    }

    #[test]
    fn state_is_bounded() {
        let state = StreamState::new();
        let bytes = std::mem::size_of_val(&state);
        assert_eq!(bytes, StreamState::BYTES);
        assert!(bytes <= 8 * 1024, "{bytes}");
        assert!(bytes >= SEEN_WORDS * 8);
    }

    #[test]
    fn erfc_matches_known_values() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-6);
        assert!((erfc(1.0) - 0.157_299_207).abs() < 1e-6);
        assert!((erfc(-1.0) - 1.842_700_793).abs() < 1e-6);
        assert!(gaussian_tail(f64::NAN) == 1.0);
    }
}
