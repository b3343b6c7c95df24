//! Numerical building blocks that reproduce, operation for operation, the statistics the
//! reference Skyline gets from its pinned libraries (numpy 2.4, pandas 3.0 with bottleneck
//! 1.5, numba 0.65). Agreement has to be bit-exact because the algorithms compare against
//! `3 * std` and round(): a different summation order flips verdicts on the boundary.
//!
//! Owns no state and does no I/O.

/// numpy's block size for pairwise summation (`PW_BLOCKSIZE`).
const PW_BLOCKSIZE: usize = 128;

/// numpy's pairwise sum of a contiguous float64 array (`DOUBLE_pairwise_sum`), which is what
/// `np.add.reduce` and therefore pandas' `Series.mean()` use. The reduction starts from the
/// identity 0.0, so the result is `0.0 + pairwise(a)`.
pub fn pairwise_sum(a: &[f64]) -> f64 {
    0.0 + pairwise_inner(a)
}

fn pairwise_inner(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &x in a {
            res += x;
        }
        res
    } else if n <= PW_BLOCKSIZE {
        // Eight independent accumulators, exactly as numpy unrolls them; each lane keeps its
        // own left-to-right order so the compiler may vectorise without changing results.
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[full..] {
            res += x;
        }
        res
    } else {
        // Halve, but keep the split on a multiple of the unroll factor.
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_inner(&a[..n2]) + pairwise_inner(&a[n2..])
    }
}

/// pandas `Series.mean()` (`nanops.nanmean`): NaNs are replaced by 0 for numpy's pairwise sum
/// and excluded from the count. An empty (or all-NaN) series gives NaN.
pub fn pandas_mean(values: &[f64], scratch: &mut Vec<f64>) -> f64 {
    let nan_count = values.iter().filter(|v| v.is_nan()).count();
    let count = values.len() - nan_count;
    if count == 0 {
        return f64::NAN;
    }
    let sum = if nan_count == 0 {
        pairwise_sum(values)
    } else {
        scratch.clear();
        scratch.extend(values.iter().map(|&v| if v.is_nan() { 0.0 } else { v }));
        pairwise_sum(scratch)
    };
    sum / count as f64
}

/// pandas `Series.std()` (ddof 1), which pandas hands to bottleneck's `nanstd`: a naive
/// sequential sum for the mean, then a naive sum of squared deviations, NaNs skipped.
/// Fewer than two non-NaN values give NaN.
pub fn bottleneck_std(values: &[f64]) -> f64 {
    let mut sum = 0.0;
    let mut count = 0usize;
    for &v in values {
        if !v.is_nan() {
            sum += v;
            count += 1;
        }
    }
    bottleneck_std_from_sum(values, sum, count)
}

/// The second pass of [`bottleneck_std`], for callers that already hold bottleneck's naive
/// first-pass sum (the same chain numba uses for its mean, see the ensemble).
pub fn bottleneck_std_from_sum(values: &[f64], sum: f64, count: usize) -> f64 {
    if count <= 1 {
        return f64::NAN;
    }
    let mean = sum / count as f64;
    let mut ssd = 0.0;
    for &v in values {
        if !v.is_nan() {
            let d = v - mean;
            ssd += d * d;
        }
    }
    (ssd / (count - 1) as f64).sqrt()
}

/// A naive left-to-right sum starting from 0.0: numba's `np.mean` accumulator and bottleneck's
/// first pass when there is no NaN.
pub fn naive_sum(values: &[f64]) -> f64 {
    let mut s = 0.0;
    for &v in values {
        s += v;
    }
    s
}

/// numba's `np.mean`: a naive loop divided by the size. numba raises ZeroDivisionError on an
/// empty array (its default error model), which the reference turns into a None vote.
pub fn numba_mean(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(naive_sum(values) / values.len() as f64)
}

/// numba's `np.std` (population, ddof 0): `var ** 0.5` with `var` a naive sum of squared
/// deviations from the naive mean, divided by n. `x ** 0.5` is lowered to a correctly rounded
/// square root, so `sqrt` gives the same bits.
pub fn numba_std(values: &[f64]) -> Option<f64> {
    let mean = numba_mean(values)?;
    let mut ssd = 0.0;
    for &v in values {
        let d = v - mean;
        ssd += d * d;
    }
    Some((ssd / values.len() as f64).sqrt())
}

/// numba's `np.median`: a quickselect with numba's exact partition scheme (median of three,
/// Hoare-style scan with `<`), so that even NaN-contaminated input selects the same element
/// as the reference. Mutates `buf`. Empty input gives NaN, as numba 0.65 does.
pub fn numba_median(buf: &mut [f64]) -> f64 {
    let n = buf.len();
    if n == 0 {
        return f64::NAN;
    }
    let half = n >> 1;
    if n & 1 == 0 {
        let (a, b) = select_two(buf, half - 1, 0, n - 1);
        (a + b) / 2.0
    } else {
        select(buf, half, 0, n - 1)
    }
}

/// numba `_partition` with `less_than` = `a < b`, on `a[low..=high]`; returns the pivot's
/// final index. Works on the sub-slice with local indices, and keeps numba's signed `j` as
/// `j + 1` (so that "-1" is 0), which lets the compiler drop the bounds checks.
fn partition(a: &mut [f64], low: usize, high: usize) -> usize {
    let s = &mut a[low..=high];
    let h = s.len() - 1;
    // numba's mid = (low + high) >> 1, relative to low.
    let mid = h >> 1;
    if s[mid] < s[0] {
        s.swap(0, mid);
    }
    if s[h] < s[mid] {
        s.swap(h, mid);
    }
    if s[mid] < s[0] {
        s.swap(0, mid);
    }
    let pivot = s[mid];
    s.swap(h, mid);
    let mut i = 0;
    let mut j = h; // numba's j is j - 1 here
    loop {
        while i < h && s[i] < pivot {
            i += 1;
        }
        while j > 0 && pivot < s[j - 1] {
            j -= 1;
        }
        if i + 1 >= j {
            break;
        }
        s.swap(i, j - 1);
        i += 1;
        j -= 1;
    }
    s.swap(i, h);
    low + i
}

/// numba `_select`: the k'th smallest element of `a[low..=high]`.
fn select(a: &mut [f64], k: usize, mut low: usize, mut high: usize) -> f64 {
    let mut i = partition(a, low, high);
    while i != k {
        if i < k {
            low = i + 1;
        } else {
            // i > k >= low, so i - 1 cannot underflow.
            high = i - 1;
        }
        i = partition(a, low, high);
    }
    a[k]
}

/// numba `_select_two`: the k'th and (k+1)'th smallest elements of `a[low..=high]`.
fn select_two(a: &mut [f64], k: usize, mut low: usize, mut high: usize) -> (f64, f64) {
    loop {
        if high <= low {
            // numba asserts `high > low` here; it holds by construction for n >= 2.
            break;
        }
        let i = partition(a, low, high);
        if i < k {
            low = i + 1;
        } else if i > k + 1 {
            high = i - 1;
        } else if i == k {
            select(a, k + 1, i + 1, high);
            break;
        } else {
            select(a, k, low, i - 1);
            break;
        }
    }
    (a[k], a[k + 1])
}

/// Python 3's `round()` on a float compared with 0: `round(x) != 0` is true iff the value
/// rounded half-to-even is non-zero. Python raises on NaN and infinity (`None` here).
pub fn py_round_nonzero(x: f64) -> Option<bool> {
    if !x.is_finite() {
        return None;
    }
    Some(x.round_ties_even() != 0.0)
}

/// Skyline's `tail_avg`: `(v[-1] + v[-2] + v[-3]) / 3`, added left to right, or the last value
/// when there are fewer than three. `None` for an empty series (the reference raises).
pub fn tail_avg(values: &[f64]) -> Option<f64> {
    match values.len() {
        0 => None,
        1 | 2 => Some(values[values.len() - 1]),
        n => Some((values[n - 1] + values[n - 2] + values[n - 3]) / 3.0),
    }
}

/// pandas' online EWM state (`window_aggregations.ewmcov` of a series with itself, com 50,
/// adjust=True, ignore_na=False, min_periods 0), advanced one observation at a time. Its
/// `mean_x` equals pandas' `ewm().mean()` when there is no NaN; with NaNs the two recursions
/// differ (the mean's weight grows on a NaN, the covariance's does not), so
/// [`EwmMean`] is tracked separately.
#[derive(Debug, Clone)]
pub struct EwmCov {
    old_wt_factor: f64,
    mean: f64,
    cov: f64,
    sum_wt: f64,
    sum_wt2: f64,
    old_wt: f64,
    nobs: usize,
    len: usize,
}

impl EwmCov {
    /// A fresh state for centre of mass `com`.
    pub fn new(com: f64) -> Self {
        let alpha = 1.0 / (1.0 + com);
        EwmCov {
            old_wt_factor: 1.0 - alpha,
            mean: f64::NAN,
            cov: 0.0,
            sum_wt: 1.0,
            sum_wt2: 1.0,
            old_wt: 1.0,
            nobs: 0,
            len: 0,
        }
    }

    /// Feed the next value.
    pub fn push(&mut self, cur: f64) {
        let is_obs = !cur.is_nan();
        self.len += 1;
        if self.len == 1 {
            self.nobs = usize::from(is_obs);
            self.mean = if is_obs { cur } else { f64::NAN };
            return;
        }
        self.nobs += usize::from(is_obs);
        if !self.mean.is_nan() {
            let f = self.old_wt_factor;
            self.sum_wt *= f;
            self.sum_wt2 *= f * f;
            self.old_wt *= f;
            if is_obs {
                let old_mean = self.mean;
                // pandas skips the update when equal, to stay exact on constant series.
                if self.mean != cur {
                    self.mean = (self.old_wt * old_mean + cur) / (self.old_wt + 1.0);
                }
                let dm = old_mean - self.mean;
                let dc = cur - self.mean;
                self.cov = (self.old_wt * (self.cov + dm * dm) + dc * dc) / (self.old_wt + 1.0);
                self.sum_wt += 1.0;
                self.sum_wt2 += 1.0;
                self.old_wt += 1.0;
            }
        } else if is_obs {
            self.mean = cur;
        }
    }

    /// The running mean of this recursion (pandas' EWM mean when no NaN was fed).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// pandas `ewm().std(bias=False)` at the last value fed: `zsqrt` of the unbiased
    /// variance, NaN after a single observation.
    pub fn std(&self) -> f64 {
        // pandas writes NaN for the first row (bias=False) and before any observation.
        if self.len <= 1 || self.nobs == 0 {
            return f64::NAN;
        }
        let numerator = self.sum_wt * self.sum_wt;
        let denominator = numerator - self.sum_wt2;
        let var = if denominator > 0.0 {
            (numerator / denominator) * self.cov
        } else {
            f64::NAN
        };
        // zsqrt: negative variances become 0.
        if var < 0.0 {
            0.0
        } else {
            var.sqrt()
        }
    }
}

/// pandas' EWM mean recursion (`window_aggregations.ewm`, adjust=True, ignore_na=False),
/// needed separately from [`EwmCov`] only when the series holds NaNs.
#[derive(Debug, Clone)]
pub struct EwmMean {
    old_wt_factor: f64,
    weighted: f64,
    old_wt: f64,
    nobs: usize,
    started: bool,
}

impl EwmMean {
    /// A fresh state for centre of mass `com`.
    pub fn new(com: f64) -> Self {
        let alpha = 1.0 / (1.0 + com);
        EwmMean {
            old_wt_factor: 1.0 - alpha,
            weighted: f64::NAN,
            old_wt: 1.0,
            nobs: 0,
            started: false,
        }
    }

    /// Feed the next value.
    pub fn push(&mut self, cur: f64) {
        let is_obs = !cur.is_nan();
        if !self.started {
            self.started = true;
            self.weighted = cur;
            self.nobs = usize::from(is_obs);
            return;
        }
        self.nobs += usize::from(is_obs);
        if !self.weighted.is_nan() {
            self.old_wt *= self.old_wt_factor;
            if is_obs && self.weighted != cur {
                self.weighted = (self.old_wt * self.weighted + cur) / (self.old_wt + 1.0);
            }
            self.old_wt += 1.0;
        } else if is_obs {
            self.weighted = cur;
        }
    }

    /// The EWM mean at the last value fed (NaN before the first observation).
    pub fn mean(&self) -> f64 {
        if self.nobs == 0 {
            f64::NAN
        } else {
            self.weighted
        }
    }
}
