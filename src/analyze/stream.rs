//! The `stream` detector: a per-datapoint anomaly score in [0, 1] for one metric, updated in
//! timestamp order with bounded state (≈ 6.4 KB per metric, see [`StreamState::BYTES`]).
//!
//! Pure code (no actix, redis or diesel). Owns no actors, messages, Redis keys or tables; its
//! callers own the state (one [`StreamState`] per metric) and feed it points in order. It has
//! no queue of its own, so it has no backpressure policy: an update is O(1) (at most 16 × 16
//! box comparisons once per 6-point block) and allocation free.
//!
//! Design (our own composition of well-known ingredients; see docs/stream.md):
//!
//! 1. **Online normalisation.** The metric's range `[min, max]` is learned from the points
//!    seen so far; nothing is known in advance.
//! 2. **Spatial novelty.** A value beyond the learned range by more than 2 % of its width
//!    scores 1.0 at once.
//! 3. **Five surprise signals** in [0, 1]. Four are turned into a score by their own
//!    *anomaly likelihood* (as HTM's post-processor: the mean of the last few raw values is
//!    compared with the long-run distribution of that signal, exponentially weighted mean
//!    and variance; the one-sided Gaussian tail probability `q` gives
//!    `log(q) / log(1e-10)`, clamped):
//!    * *residual*: `|v - m| / d` against an exponentially weighted mean `m` and mean
//!      absolute deviation `d`, mapped to [0, 1) by `1 - exp(-(z - 1)⁺ / 3)`;
//!    * *context novelty*: the value is quantised into 8 levels of the learned range (plus
//!      one below, one above) and the pattern of the last 4 levels is looked up in an exact
//!      10,000-bit "seen" set; a pattern never seen scores 1 (CAD OSE's idea of context
//!      novelty);
//!    * *daily-profile residual*: the value against an exponentially weighted mean of its
//!      time-of-day bucket (144 buckets of 10 minutes, rate 0.5: mostly the last day or
//!      two, "same time yesterday"), in units of the typical such residual: it catches a
//!      broken daily shape that stays inside the range;
//!    * *block-shape novelty*: every 6 points become one block value (the block's extreme on
//!      the side farther from its mean, so spikes survive, as ARTime's downsampling does);
//!      the pattern of the last 4 block levels (8 levels) is looked up in a second seen
//!      set: new shapes over a longer span.
//!
//!    The fifth is an **adaptive-resonance (fuzzy ART) clusterer** of windows of the last 8
//!    block values (48 points), after ARTime's idea (our own design, see [`Art`]): block
//!    values near the running mean are taken as the mean (noise makes no shapes), a window
//!    is described by its levels in the learned range and by its shape, and at most 16
//!    categories (boxes) are kept, the least recently used replaced. A window that
//!    resonates with no category founds a new one; after at least 32 resonant blocks in a
//!    row that is an anomaly, scored by how far the window lay outside the nearest box.
//!
//!    The point's score is the **noisy-OR** of the five, `1 - Π(1 - sᵢ)`: moderate evidence
//!    from several signals adds up.
//! 4. **Learning period**: the first 150 points score 0.
//! 5. **Rest** ("report once, then rest"): a score of at least 0.45 starts a rest of 120
//!    points in which scores are 0 unless one exceeds the highest of the rest by 0.5
//!    (much stronger evidence is still reported). The scores do not depend on the threshold.
//!
//! Robustness: NaN and ±∞ values, and points not newer than the last one (late or
//! duplicate), are ignored (score 0, state unchanged). Gaps are not special for the
//! sequence models; the daily profile uses the timestamp, so it is right across gaps. Huge
//! values are plain `f64` arithmetic with every running statistic reset when it stops being
//! finite (the ART skips windows while the range is not finite). A constant series never
//! scores above 0 after its learning period.

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
    /// Score at or above which a point is a detection (the daemon's verdict; the scores
    /// themselves do not depend on it).
    pub threshold: f64,
    /// Points of rest after a score of at least `rest_floor`.
    pub suppress: u32,
    /// ART: largest mean side of a category's box once grown to take a window (the
    /// vigilance is 1 minus this), in feature units (each feature is in [0, 1]).
    pub art_box: f64,
    /// ART: mean distance outside every category's box that scores 1.0.
    pub art_scale: f64,
    /// ART: blocks in a row that resonated with a known category before a new category
    /// scores (a new category amid others is the series still being learned).
    pub art_calm: u32,
    /// ART: a block value within this fraction of the learned range from the running mean
    /// is taken as the mean (noise does not make new shapes).
    pub art_chomp: f64,
    /// ART: a window's shape is scaled by its own span, but never by less than this
    /// fraction of the learned range (small wiggles stay small).
    pub art_floor: f64,
    /// A score at or above this starts a rest of `suppress` points.
    pub rest_floor: f64,
    /// During a rest, a score still counts when it exceeds the highest of the rest by this
    /// much (stronger evidence of the same incident, or a new one).
    pub rest_margin: f64,
}

/// The detection threshold the detector ships with: inside the band of the NAB standard
/// profile's optimum (0.464; 0.455 to 0.48 all score within 2 points of it), just above
/// `rest_floor`, see docs/stream.md.
pub const DEFAULT_THRESHOLD: f64 = 0.46;

impl Default for StreamParams {
    fn default() -> Self {
        StreamParams {
            learn: 150,
            tolerance: 0.02,
            residual_rate: 0.05,
            phase_rate: 0.5,
            history_rate: 0.001,
            block_history_rate: 0.005,
            threshold: DEFAULT_THRESHOLD,
            suppress: 120,
            art_box: 0.15,
            art_scale: 0.2,
            art_calm: 32,
            art_chomp: 0.075,
            art_floor: 0.1,
            rest_floor: 0.45,
            rest_margin: 0.5,
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

/// Block values in an ART feature window.
const ART_WIN: usize = 8;
/// Feature dimensions: the window's block values as levels of the learned range, then its
/// shape (the same values scaled by the window's own span).
const ART_DIM: usize = 2 * ART_WIN;
/// ART categories kept (the least recently resonating one is replaced).
const ART_CATS: usize = 16;

/// A fuzzy-ART clusterer of feature windows (adaptive resonance, as ARTime uses it; our own
/// simplified design). A category is a box `[lo, hi]` per feature, the complement-coded
/// weight of fuzzy ART. A window resonates with the category nearest to it (least mean
/// distance outside its box) when that box, grown to take the window, keeps a mean side of
/// at most `art_box` (the vigilance test); it then learns at once (the box grows). A
/// window that resonates with none founds a new category: its surprise is its mean
/// distance outside the nearest box, and it scores only after `art_calm` resonant blocks in
/// a row (a series still being learned founds categories all the time).
#[derive(Debug, Clone, PartialEq)]
struct Art {
    lo: [[f32; ART_DIM]; ART_CATS],
    hi: [[f32; ART_DIM]; ART_CATS],
    /// Clock of each category's last resonance.
    used: [u32; ART_CATS],
    len: u8,
    /// Block values of the window (raw units), oldest first.
    win: [f64; ART_WIN],
    filled: u8,
    /// Blocks seen (the clock of `used`).
    clock: u32,
    /// Resonant blocks in a row.
    calm: u32,
}

impl Art {
    fn new() -> Self {
        Art {
            lo: [[0.0; ART_DIM]; ART_CATS],
            hi: [[0.0; ART_DIM]; ART_CATS],
            used: [0; ART_CATS],
            len: 0,
            win: [0.0; ART_WIN],
            filled: 0,
            clock: 0,
            calm: 0,
        }
    }

    /// The learned range moved from `(min0, w0)` to `(min1, w1)`: re-express the level
    /// features of every box in the new range (shape features do not depend on it).
    fn rescale(&mut self, min0: f64, w0: f64, min1: f64, w1: f64) {
        if !(w0 > 0.0 && w1 > 0.0 && w0.is_finite() && w1.is_finite()) {
            return;
        }
        let a = w0 / w1;
        let b = (min0 - min1) / w1;
        if !(a.is_finite() && b.is_finite()) {
            return;
        }
        for c in 0..usize::from(self.len) {
            for d in 0..ART_WIN {
                self.lo[c][d] = (f64::from(self.lo[c][d]) * a + b) as f32;
                self.hi[c][d] = (f64::from(self.hi[c][d]) * a + b) as f32;
            }
        }
    }

    /// Take one block value; return the score of a new category (0 when the window
    /// resonates, is not full yet, or the series has no range yet).
    fn push(&mut self, bv: f64, min: f64, width: f64, p: &StreamParams) -> f64 {
        self.win.copy_within(1.., 0);
        self.win[ART_WIN - 1] = bv;
        self.filled = (usize::from(self.filled) + 1).min(ART_WIN) as u8;
        self.clock = self.clock.wrapping_add(1);
        if usize::from(self.filled) < ART_WIN || !(width > 0.0 && width.is_finite()) {
            return 0.0;
        }
        let mut x = [0f32; ART_DIM];
        let (mut wmin, mut wmax) = (f64::INFINITY, f64::NEG_INFINITY);
        for (d, &v) in self.win.iter().enumerate() {
            x[d] = ((v - min) / width).clamp(-0.5, 1.5) as f32;
            wmin = wmin.min(v);
            wmax = wmax.max(v);
        }
        let span = (wmax - wmin).max(p.art_floor * width);
        for (d, &v) in self.win.iter().enumerate() {
            let s = if span > 0.0 && span.is_finite() {
                (v - wmin) / span
            } else {
                0.0
            };
            x[ART_WIN + d] = s.clamp(0.0, 1.0) as f32;
        }
        // Nearest category: least mean distance outside its box, then smallest grown box.
        let mut best: Option<(usize, f32, f32)> = None;
        for c in 0..usize::from(self.len) {
            let (mut out, mut side) = (0f32, 0f32);
            for ((&lo, &hi), &xd) in self.lo[c].iter().zip(&self.hi[c]).zip(&x) {
                out += (lo - xd).max(0.0) + (xd - hi).max(0.0);
                side += hi.max(xd) - lo.min(xd);
            }
            let (out, side) = (out / ART_DIM as f32, side / ART_DIM as f32);
            if best.is_none_or(|(_, o, s)| out < o || (out == o && side < s)) {
                best = Some((c, out, side));
            }
        }
        match best {
            Some((c, _, side)) if f64::from(side) <= p.art_box => {
                for ((lo, hi), &xd) in self.lo[c].iter_mut().zip(&mut self.hi[c]).zip(&x) {
                    *lo = lo.min(xd);
                    *hi = hi.max(xd);
                }
                self.used[c] = self.clock;
                self.calm = self.calm.saturating_add(1);
                0.0
            }
            _ => {
                let surprise = best.map_or(0.0, |(_, out, _)| f64::from(out));
                let c = if usize::from(self.len) < ART_CATS {
                    self.len += 1;
                    usize::from(self.len) - 1
                } else {
                    (0..ART_CATS)
                        .max_by_key(|&c| self.clock.wrapping_sub(self.used[c]))
                        .unwrap_or(0)
                };
                self.lo[c] = x;
                self.hi[c] = x;
                self.used[c] = self.clock;
                let calm = self.calm;
                self.calm = 0;
                if calm >= p.art_calm {
                    (surprise / p.art_scale).min(1.0)
                } else {
                    0.0
                }
            }
        }
    }
}

// The state stays within the 8 KB per metric.
const _: () = assert!(StreamState::BYTES <= 8 * 1024);

/// "Report once, then rest": a score of at least `rest_floor` starts a rest of `suppress`
/// points in which scores are 0, unless one exceeds the highest of the rest by
/// `rest_margin` (stronger evidence: it is reported and becomes the rest's level). The rest
/// starts below the shipped threshold, so a near miss also rests, and does not depend on
/// the threshold, so the scores do not either.
#[derive(Debug, Clone, PartialEq)]
struct Rest {
    left: u32,
    level: f64,
}

impl Rest {
    fn new() -> Self {
        Rest {
            left: 0,
            level: 0.0,
        }
    }

    /// The score to report for a point whose combined score is `score`.
    fn pass(&mut self, score: f64, p: &StreamParams) -> f64 {
        if self.left > 0 {
            self.left -= 1;
            if score > self.level + p.rest_margin {
                self.level = score;
                return score;
            }
            return 0.0;
        }
        if score >= p.rest_floor {
            self.left = p.suppress;
            self.level = score;
        }
        score
    }
}

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
    art: Art,
    art_score: f64,
    rest: Rest,
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
            art: Art::new(),
            art_score: 0.0,
            rest: Rest::new(),
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
            // 3e. ART resonance of the last windows of block values, noise taken out.
            let value = if (value - self.mean).abs() < p.art_chomp * width {
                self.mean
            } else {
                value
            };
            self.art_score = self.art.push(value, self.min, width, p);
            self.block_score = self
                .lik_block
                .push(f64::from(u8::from(novel)), p.block_history_rate);
            self.block_sum = 0.0;
            self.block_hi = f64::NEG_INFINITY;
            self.block_lo = f64::INFINITY;
            self.block_len = 0;
        }

        let (min0, w0) = (self.min, width);
        if self.n == 1 || v < self.min {
            self.min = v;
        }
        if self.n == 1 || v > self.max {
            self.max = v;
        }
        if self.min != min0 || self.max - self.min != w0 {
            self.art.rescale(min0, w0, self.min, self.max - self.min);
        }

        let hr = p.history_rate;
        let scores = [
            self.lik_residual.push(residual, hr),
            self.lik_novelty.push(f64::from(u8::from(novel)), hr),
            self.lik_phase.push(daily, hr),
            self.block_score,
            self.art_score,
        ];
        let mut score = if self.n <= p.learn {
            0.0
        } else {
            // Noisy-OR: independent pieces of evidence add up.
            1.0 - scores.iter().fold(1.0, |keep, &s| keep * (1.0 - s))
        };
        if spatial && self.n > p.learn {
            score = 1.0;
        }

        // 5. Rest: one report per incident, unless stronger evidence follows.
        let score = self.rest.pass(score, p);
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
    fn detects_a_new_shape_inside_the_range() {
        // A clean wave, then a square wave of half its period: every value stays inside
        // the learned range and levels near the old ones; the shape is new.
        let wave = |i: usize| 50.0 + 10.0 * ((i % 48) as f64 / 48.0 * std::f64::consts::TAU).sin();
        let square = |i: usize| [42.0, 58.0][(i / 12) % 2];
        check_change(|i| if i >= 1500 { square(i) } else { wave(i) }, 1500, 60);
        // And it is the ART signal that sees it.
        let p = StreamParams::default();
        let mut st = StreamState::new();
        let mut art = 0.0f64;
        for i in 0..1600 {
            st.update(
                i as i64 * 60,
                if i >= 1500 { square(i) } else { wave(i) },
                &p,
            );
            if i == 1499 {
                assert_eq!(st.art_score, 0.0);
            }
            if i >= 1500 {
                art = art.max(st.art_score);
            }
        }
        assert!(art > 0.5, "ART score {art}");
    }

    #[test]
    fn art_scores_a_new_category_only_after_a_calm() {
        let p = StreamParams::default();
        let mut art = Art::new();
        // A repeating shape of block values (period 4) in a range [0, 10].
        let shape = [1.0, 4.0, 8.0, 4.0];
        let mut scores = Vec::new();
        for k in 0..200 {
            scores.push(art.push(shape[k % 4], 0.0, 10.0, &p));
        }
        // Learned: its windows resonate (no new category, no score) long before the end.
        assert!(scores[100..].iter().all(|&s| s == 0.0));
        assert!(usize::from(art.len) <= 4, "{} categories", art.len);
        // A window of a new shape (flat at a level never seen) founds a category and scores.
        let mut hit = 0.0f64;
        for _ in 0..ART_WIN {
            hit = hit.max(art.push(9.5, 0.0, 10.0, &p));
        }
        assert!(hit > 0.0, "new shape not scored");
        // A second novelty right after it is part of the same learning: no score.
        let mut again = 0.0f64;
        for k in 0..ART_WIN {
            again = again.max(art.push(if k % 2 == 0 { 0.0 } else { 6.0 }, 0.0, 10.0, &p));
        }
        assert_eq!(again, 0.0);
    }

    #[test]
    fn art_boxes_follow_a_growing_range() {
        let p = StreamParams::default();
        let mut art = Art::new();
        for k in 0..100 {
            art.push([2.0, 6.0][k % 2], 0.0, 10.0, &p);
        }
        // The range doubles: the same raw windows must still resonate.
        art.rescale(0.0, 10.0, 0.0, 20.0);
        for k in 0..50 {
            assert_eq!(art.push([2.0, 6.0][k % 2], 0.0, 20.0, &p), 0.0);
        }
        assert!(art.lo[..usize::from(art.len)]
            .iter()
            .all(|b| b.iter().all(|x| x.is_finite())));
    }

    #[test]
    fn rest_reports_once_unless_stronger_evidence_follows() {
        let p = StreamParams::default();
        let mut rest = Rest::new();
        // Below the floor: reported as is, no rest.
        assert_eq!(rest.pass(0.3, &p), 0.3);
        assert_eq!(rest.pass(0.35, &p), 0.35);
        // A score at the floor starts the rest.
        assert!(p.rest_floor <= 0.46 && p.rest_margin == 0.5);
        assert_eq!(rest.pass(0.46, &p), 0.46);
        assert_eq!(rest.pass(0.9, &p), 0.0, "not stronger by the margin");
        assert_eq!(rest.pass(0.97, &p), 0.97, "stronger evidence");
        assert_eq!(rest.pass(1.0, &p), 0.0, "1.0 is not 0.5 above 0.97");
        for _ in 3..p.suppress {
            assert_eq!(rest.pass(0.7, &p), 0.0);
        }
        // The rest is over.
        assert_eq!(rest.pass(0.7, &p), 0.7);
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
