//! histogram_bins: anomalous when tail_avg falls into a sparsely populated bin (≤ 20 values)
//! of a 15-bin histogram of the series, using the compiled (numba) binning of Skyline G.

use super::context::Ctx;
use super::stats::tail_avg;

const BINS: usize = 15;
/// A bin holding at most this many values is "sparse".
const SPARSE: usize = 20;

/// histogram_bins on a `(timestamp, value)` series. `None` where the reference raises (an
/// empty series, or no non-NaN value).
pub fn histogram_bins(series: &[(f64, f64)]) -> Option<bool> {
    super::run_single(series, 0.0, 0, kernel)
}

/// Kernel shared with the ensemble.
pub(crate) fn kernel(ctx: &mut Ctx<'_>) -> Option<bool> {
    let values = ctx.values;
    let t = tail_avg(values)?;
    // G drops NaNs before binning; numba's `min()` of what is left raises when it is empty.
    let (min, max) = min_max(values)?;
    let edges = bin_edges(min, max);

    // Which bins would fire if sparse, in the reference's own order and conditions: bin 0
    // only for T <= min (half-open test), bin i for edge[i] <= T < edge[i+1]. When none can
    // fire (the common case), the histogram itself need not be built.
    let mut candidates = [false; BINS];
    candidates[0] = t <= edges[0];
    for i in 1..BINS {
        candidates[i] = t >= edges[i] && t < edges[i + 1];
    }
    if !candidates.iter().any(|&c| c) {
        return Some(false);
    }

    // Count only the candidate bins, and only as far as needed to know they are not sparse.
    Some((0..BINS).any(|k| candidates[k] && count_up_to(values, k, min, max, SPARSE + 1) <= SPARSE))
}

/// Minimum and maximum of the non-NaN values.
fn min_max(values: &[f64]) -> Option<(f64, f64)> {
    let mut it = values.iter().copied().filter(|v| !v.is_nan());
    let first = it.next()?;
    let (mut lo, mut hi) = (first, first);
    for v in it {
        if v < lo {
            lo = v;
        }
        if v > hi {
            hi = v;
        }
    }
    Some((lo, hi))
}

/// numba's `get_bin_edges`: `min + i * delta`, with the last edge pinned to `max`.
fn bin_edges(min: f64, max: f64) -> [f64; BINS + 1] {
    let delta = (max - min) / BINS as f64;
    let mut edges = [0.0; BINS + 1];
    for (i, e) in edges.iter_mut().enumerate() {
        *e = min + i as f64 * delta;
    }
    edges[BINS] = max;
    edges
}

/// numba's `compute_bin`: `x == max` goes to the last bin (so a constant series never divides
/// by zero); otherwise `int(15 * (x - min) / (max - min))`, and an index outside 0..15 (15
/// itself from rounding, or NaN, which x86 converts to i64::MIN) drops the value.
#[inline]
fn bin_index(x: f64, min: f64, max: f64) -> Option<usize> {
    if x == max {
        return Some(BINS - 1);
    }
    let f = BINS as f64 * (x - min) / (max - min);
    // x >= min, so f is >= 0 or NaN; truncation is Python's int().
    if f >= 0.0 && f < BINS as f64 {
        Some(f as usize)
    } else {
        None
    }
}

/// How many values land in bin `k`, counting no further than `limit`.
///
/// Most values are ruled out by a multiplication instead of numba's division: the product
/// `(x - min) * (15 / (max - min))` is within a few ulps of the exact quotient, so anything
/// more than half a bin away from bin `k` cannot be in it; the rest get the exact test.
fn count_up_to(values: &[f64], k: usize, min: f64, max: f64, limit: usize) -> usize {
    let scale = BINS as f64 / (max - min);
    let prefilter = scale.is_finite() && scale > 0.0;
    let (near_lo, near_hi) = (k as f64 - 0.5, k as f64 + 1.5);
    let mut count = 0;
    for &x in values {
        if x.is_nan() {
            continue;
        }
        if prefilter && x != max {
            let approx = (x - min) * scale;
            if approx < near_lo || approx >= near_hi {
                continue;
            }
        }
        if bin_index(x, min, max) == Some(k) {
            count += 1;
            if count >= limit {
                break;
            }
        }
    }
    count
}
