//! The `stream` detector: a per-datapoint anomaly score in [0, 1] for one metric, updated in
//! timestamp order with bounded state (≈ 4.2 KB per metric, see [`StreamState::BYTES`]).
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
//! 2. **Spatial novelty.** A value beyond the learned range by more than 2 % of its width
//!    scores 1.0 at once.
//! 3. **Four surprise signals**, each turned into a score by its own *anomaly likelihood*
//!    (as HTM's post-processor: the mean of the last few raw values is compared with the
//!    long-run distribution of that signal, exponentially weighted mean and variance; the
//!    one-sided Gaussian tail probability `q` gives `log(q) / log(1e-10)`, clamped):
//!    * *residual*: `|v - m| / d` against an exponentially weighted mean `m` and mean
//!      absolute deviation `d`, mapped to [0, 1) by `1 - exp(-(z - 1)⁺ / 3)`;
//!    * *context novelty*: the value is quantised into 8 levels of the learned range (plus
//!      one below, one above) and the pattern of the last 4 levels is looked up in an exact
//!      10,000-bit "seen" set; a pattern never seen scores 1 (CAD OSE's idea of context
//!      novelty);
//!    * *daily-profile residual*: the value against an exponentially weighted mean of its
//!      time-of-day bucket (144 buckets of 10 minutes), in units of the typical such
//!      residual: it catches a broken daily shape that stays inside the range;
//!    * *block-shape novelty*: every 6 points become one block value (the block's extreme on
//!      the side farther from its mean, so spikes survive, as ARTime's downsampling does);
//!      the pattern of the last 4 block levels (8 levels) is looked up in a second seen
//!      set: new shapes over a longer span.
//!
//!    The point's score is the highest of the four likelihoods.
//! 4. **Learning period**: the first 150 points score 0.
//! 5. **Suppression**: after a score ≥ the threshold, the next 100 points score 0, so one
//!    incident is reported once.
//!
//! Robustness: NaN and ±∞ values, and points not newer than the last one (late or
//! duplicate), are ignored (score 0, state unchanged). Gaps are not special for the
//! sequence models; the daily profile uses the timestamp, so it is right across gaps. Huge
//! values are plain `f64` arithmetic with every running statistic reset when it stops being
//! finite. A constant series never scores above 0 after its learning period.

/// Parameters of the stream detector. `Default` is the one parameter set the daemon ships
/// with and that produced the NAB figures in the README.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamParams {
    /// Points scored 0 while the model learns.
    pub learn: u32,
    /// Spatial tolerance, as a fraction of the learned range.
    pub tolerance: f64,
    /// Rate of the exponentially weighted mean and deviation of the values.
    pub residual_rate: f64,
    /// Rate of a time-of-day bucket's mean.
    pub phase_rate: f64,
    /// Rate of the long-run distribution of the per-point signals (1 / window length).
    pub history_rate: f64,
    /// Rate of the long-run distribution of the block-shape novelty (per block).
    pub block_history_rate: f64,
    /// Score at or above which a point is a detection (and suppression starts).
    pub threshold: f64,
    /// Points scored 0 after a detection.
    pub suppress: u32,
}

/// The detection threshold the detector ships with (the NAB optimum of all three profiles,
/// see docs/stream.md).
pub const DEFAULT_THRESHOLD: f64 = 0.5;

impl Default for StreamParams {
    fn default() -> Self {
        StreamParams {
            learn: 150,
            tolerance: 0.02,
            residual_rate: 0.05,
            phase_rate: 0.3,
            history_rate: 0.001,
            block_history_rate: 0.005,
            threshold: DEFAULT_THRESHOLD,
            suppress: 100,
        }
    }
}

/// Quantisation levels of the learned range (codes 0..=LEVELS+1 with one below, one above).
const LEVELS: u16 = 8;
/// Distinct level codes.
const CODES: u16 = LEVELS + 2;
/// Length of the level pattern whose novelty is scored.
const CONTEXT: usize = 4;
/// Distinct patterns (CODES^CONTEXT): the seen sets are exact bitmaps.
const PATTERNS: usize = (CODES as usize).pow(CONTEXT as u32);
const SEEN_WORDS: usize = PATTERNS.div_ceil(64);
/// Raw values averaged by a per-point likelihood.
const SHORT: usize = 10;
/// Blocks averaged by the block likelihood.
const BLOCK_SHORT: usize = 3;
/// Points per block.
const BLOCK: u8 = 6;
/// Time-of-day buckets.
const PHASES: usize = 144;
/// Residual samples before the daily profile scores (one per bucket, then some).
const PHASE_WARMUP: u32 = PHASES as u32;
/// Residual samples over which the typical daily residual warms up, then its rate.
const PHASE_DEV_WARMUP: u32 = 200;
const PHASE_DEV_RATE: f64 = 0.01;

// The state stays within the 8 KB per metric.
const _: () = assert!(StreamState::BYTES <= 8 * 1024);

/// The anomaly likelihood of one signal: its recent mean against its long-run distribution.
#[derive(Debug, Clone, PartialEq)]
struct Likelihood<const N: usize> {
    ring: [f64; N],
    pos: u8,
    len: u8,
    mean: f64,
    var: f64,
    n: u32,
}

impl<const N: usize> Likelihood<N> {
    fn new() -> Self {
        Likelihood {
            ring: [0.0; N],
            pos: 0,
            len: 0,
            mean: 0.0,
            var: 0.0,
            n: 0,
        }
    }

    /// Take one raw value in [0, 1] and return the likelihood score in [0, 1].
    fn push(&mut self, raw: f64, history_rate: f64) -> f64 {
        self.ring[usize::from(self.pos)] = raw;
        self.pos = ((usize::from(self.pos) + 1) % N) as u8;
        self.len = (usize::from(self.len) + 1).min(N) as u8;
        let recent = self.ring[..usize::from(self.len)].iter().sum::<f64>() / f64::from(self.len);
        let rate = if f64::from(self.n) * history_rate >= 1.0 {
            history_rate
        } else {
            1.0 / (f64::from(self.n) + 1.0)
        };
        let d = raw - self.mean;
        self.mean += rate * d;
        self.var = (1.0 - rate) * (self.var + rate * d * d);
        self.n = self.n.saturating_add(1);
        // One-sided: recent values no higher than usual score 0.
        let sd = self.var.sqrt().max(1e-4);
        let z = (recent - self.mean) / sd;
        if z > 0.0 {
            ((gaussian_tail(z) + 1e-10).ln() / 1e-10f64.ln()).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// A set of level patterns seen, exact (one bit per pattern), with the last levels.
#[derive(Debug, Clone, PartialEq)]
struct Patterns {
    levels: [u8; CONTEXT],
    seen: [u64; SEEN_WORDS],
}

impl Patterns {
    fn new() -> Self {
        Patterns {
            levels: [0; CONTEXT],
            seen: [0; SEEN_WORDS],
        }
    }

    /// Append `level` (< CODES) and return whether the pattern of the last levels is new.
    fn novel(&mut self, level: u8) -> bool {
        self.levels.copy_within(1.., 0);
        self.levels[CONTEXT - 1] = level;
        let code = self
            .levels
            .iter()
            .fold(0usize, |c, &l| c * usize::from(CODES) + usize::from(l));
        let (word, mask) = (code / 64, 1u64 << (code % 64));
        let novel = self.seen[word] & mask == 0;
        self.seen[word] |= mask;
        novel
    }
}

/// The level code (0 below the range, 1..=LEVELS inside, LEVELS + 1 above) of `v` in a
/// range starting at `min` of `width`.
fn level(v: f64, min: f64, width: f64) -> u8 {
    if width > 0.0 && width.is_finite() {
        let x = (v - min) / width * f64::from(LEVELS - 1) + 0.5;
        // NaN (cannot happen for finite inputs) falls to the lowest code.
        (x.floor().clamp(-1.0, f64::from(LEVELS)) + 1.0) as u8
    } else {
        1
    }
}

/// `1 - exp(-(z - 1)⁺ / 3)`: a deviation of `z` typical deviations as a surprise in [0, 1].
fn surprise(z: f64) -> f64 {
    let excess = (z - 1.0).max(0.0);
    if excess.is_finite() {
        1.0 - (-excess / 3.0).exp()
    } else {
        1.0
    }
}

/// `r / d`, infinite when `d` is 0 and `r` is not.
fn ratio(r: f64, d: f64) -> f64 {
    if d > 0.0 {
        r / d
    } else if r > 0.0 {
        f64::INFINITY
    } else {
        0.0
    }
}

/// One metric's detector state. Fixed size, no heap.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamState {
    n: u32,
    last_t: Option<i64>,
    min: f64,
    max: f64,
    mean: f64,
    dev: f64,
    points: Patterns,
    phase_mean: [f64; PHASES],
    /// Buckets that have a mean (one bit each).
    phase_set: [u64; PHASES.div_ceil(64)],
    phase_dev: f64,
    phase_n: u32,
    block_sum: f64,
    block_hi: f64,
    block_lo: f64,
    block_len: u8,
    blocks: Patterns,
    block_score: f64,
    lik_residual: Likelihood<SHORT>,
    lik_novelty: Likelihood<SHORT>,
    lik_phase: Likelihood<SHORT>,
    lik_block: Likelihood<BLOCK_SHORT>,
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
            points: Patterns::new(),
            phase_mean: [0.0; PHASES],
            phase_set: [0; PHASES.div_ceil(64)],
            phase_dev: 0.0,
            phase_n: 0,
            block_sum: 0.0,
            block_hi: f64::NEG_INFINITY,
            block_lo: f64::INFINITY,
            block_len: 0,
            blocks: Patterns::new(),
            block_score: 0.0,
            lik_residual: Likelihood::new(),
            lik_novelty: Likelihood::new(),
            lik_phase: Likelihood::new(),
            lik_block: Likelihood::new(),
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
            let z = ratio(r, self.dev);
            self.mean += p.residual_rate * (v - self.mean);
            self.dev += p.residual_rate * (r - self.dev);
            if !self.mean.is_finite() || !self.dev.is_finite() {
                self.mean = v;
                self.dev = 0.0;
            }
            surprise(z)
        };

        // 3b. Context novelty of the last levels.
        let novel = self.points.novel(level(v, self.min, width));

        // 3c. Daily-profile residual.
        let bucket = (t.rem_euclid(86_400) * PHASES as i64 / 86_400) as usize;
        let phase = &mut self.phase_mean[bucket];
        let (word, bit) = (bucket / 64, 1u64 << (bucket % 64));
        let daily = if self.phase_set[word] & bit == 0 {
            self.phase_set[word] |= bit;
            *phase = v;
            0.0
        } else {
            let r = (v - *phase).abs();
            let z = ratio(r, self.phase_dev);
            let s = if self.phase_n > PHASE_WARMUP {
                surprise(z)
            } else {
                0.0
            };
            let rate = if self.phase_n < PHASE_DEV_WARMUP {
                1.0 / (f64::from(self.phase_n) + 1.0)
            } else {
                PHASE_DEV_RATE
            };
            self.phase_dev += rate * (r - self.phase_dev);
            self.phase_n = self.phase_n.saturating_add(1);
            *phase += p.phase_rate * (v - *phase);
            if !phase.is_finite() {
                *phase = v;
            }
            if !self.phase_dev.is_finite() {
                self.phase_dev = 0.0;
                self.phase_n = 0;
            }
            s
        };

        // 3d. Block-shape novelty, once per block.
        self.block_sum += v / f64::from(BLOCK);
        self.block_hi = self.block_hi.max(v);
        self.block_lo = self.block_lo.min(v);
        self.block_len += 1;
        if self.block_len == BLOCK {
            let m = self.block_sum;
            let value = if self.block_hi - m >= m - self.block_lo {
                self.block_hi
            } else {
                self.block_lo
            };
            let novel = self.blocks.novel(level(value, self.min, width));
            self.block_score = self
                .lik_block
                .push(f64::from(u8::from(novel)), p.block_history_rate);
            self.block_sum = 0.0;
            self.block_hi = f64::NEG_INFINITY;
            self.block_lo = f64::INFINITY;
            self.block_len = 0;
        }

        if self.n == 1 || v < self.min {
            self.min = v;
        }
        if self.n == 1 || v > self.max {
            self.max = v;
        }

        let hr = p.history_rate;
        let scores = [
            self.lik_residual.push(residual, hr),
            self.lik_novelty.push(f64::from(u8::from(novel)), hr),
            self.lik_phase.push(daily, hr),
            self.block_score,
        ];
        let mut score = if self.n <= p.learn {
            0.0
        } else {
            scores.into_iter().fold(0.0, f64::max)
        };
        if spatial && self.n > p.learn {
            score = 1.0;
        }

        // 5. Suppression of repeated detections.
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

    /// A daily square wave (5-minute points): low at night, high from 08:00 to 18:00.
    fn daily(i: usize, rises: bool) -> f64 {
        let minute = (i * 5) % 1440;
        let day = (8 * 60..18 * 60).contains(&minute);
        20.0 + if day && rises { 60.0 } else { 0.0 } + (base(i) - 50.0) * 0.2
    }

    #[test]
    fn detects_a_missing_daily_rise() {
        // Ten normal days, then a day that stays low: every value is inside the learned
        // range and the level patterns are the night's, only the time of day is wrong.
        let p = StreamParams::default();
        let per_day = 288;
        let odd_day = 10;
        let pts: Vec<(i64, f64)> = (0..12 * per_day)
            .map(|i| (i as i64 * 300, daily(i, i / per_day != odd_day)))
            .collect();
        let scores = score_series(&pts, &p);
        let before = scores[2 * per_day..odd_day * per_day]
            .iter()
            .filter(|&&s| s >= p.threshold)
            .count();
        assert_eq!(before, 0, "false detections on normal days");
        // The rise is due at 08:00 (point 96 of the day); found within the next two hours.
        let due = odd_day * per_day + 96;
        let hit = first_detection(&scores, odd_day * per_day).expect("missing rise detected");
        assert!(
            (due..due + 24).contains(&hit),
            "detected at {hit}, due at {due}"
        );
    }

    #[test]
    fn detects_a_slow_ramp() {
        // A noisy wave, then a slow ramp: each point is only a little off the last.
        check_change(
            |i| {
                if (1500..1560).contains(&i) {
                    base(i) + (i - 1500) as f64 * 0.2
                } else {
                    base(i)
                }
            },
            1500,
            60,
        );
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
