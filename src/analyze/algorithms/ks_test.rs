//! ks_test: anomalous when the last 10 minutes are distributed differently from the 50
//! minutes before them (two-sample Kolmogorov–Smirnov, D > 0.5) *and* that reference hour is
//! stationary (ADF). Both windows are taken from the injected wall clock `now`.

use super::adf::{adf_tstat, ADF_T_CRITICAL};
use super::context::Ctx;

/// Each window needs at least this many points.
const MIN_WINDOW: usize = 20;

/// ks_test on a `(timestamp, value)` series at wall-clock time `now`.
///
/// Reference window `now - 3600 <= t < now - 600`, probe window `t >= now - 600`. `None` where
/// the reference raises: D > 0.5 with only 20–23 reference points (statsmodels rejects
/// maxlag 10 for them), which Skyline G records as a None vote.
pub fn ks_test(series: &[(f64, f64)], now: f64) -> Option<bool> {
    super::run_single(series, now, 0, kernel)
}

/// Kernel shared with the ensemble.
pub(crate) fn kernel(ctx: &mut Ctx<'_>) -> Option<bool> {
    let hour_ago = ctx.now - 3600.0;
    let ten_minutes_ago = ctx.now - 600.0;
    let in_reference = |t: f64| t >= hour_ago && t < ten_minutes_ago;
    let ranges = ctx
        .window(|t| t >= hour_ago, |t| t < ten_minutes_ago)
        .zip(ctx.window(|t| t >= ten_minutes_ago, |_| true));
    let values = ctx.values;
    let points = ctx.points;
    let reference = &mut ctx.scratch.a;
    let probe = &mut ctx.scratch.b;
    reference.clear();
    probe.clear();
    match ranges {
        Some(((r_lo, r_hi), (p_lo, p_hi))) => {
            reference.extend_from_slice(&values[r_lo..r_hi]);
            probe.extend_from_slice(&values[p_lo..p_hi]);
        }
        None => {
            for &(t, v) in points {
                if in_reference(t) {
                    reference.push(v);
                } else if t >= ten_minutes_ago {
                    probe.push(v);
                }
            }
        }
    }
    if reference.len() < MIN_WINDOW || probe.len() < MIN_WINDOW {
        return Some(false);
    }
    // scipy propagates NaN into the statistic, and `nan > 0.5` is False.
    if reference.iter().chain(probe.iter()).any(|v| v.is_nan()) {
        return Some(false);
    }
    // Skyline G: a constant reference is not analysed.
    let first = reference[0];
    if reference.iter().all(|&v| v == first) {
        return Some(false);
    }
    // For samples of at least 20 points, D > 0.5 already implies a KS p-value below 0.05
    // (worst case 0.0082 at 20 vs 21 points), so only D is needed.
    reference.sort_by(f64::total_cmp);
    probe.sort_by(f64::total_cmp);
    let d = ks_statistic(reference, probe);
    if d.is_nan() || d <= 0.5 {
        return Some(false);
    }
    // The ADF needs the reference in time order again (it was sorted in place above).
    reference.clear();
    reference.extend(points.iter().filter(|p| in_reference(p.0)).map(|p| p.1));
    let t = adf_tstat(reference)?;
    Some(t < ADF_T_CRITICAL)
}

/// scipy's two-sided two-sample KS statistic of two ascending samples: the largest
/// `|i/n1 - j/n2|` over the pooled values, computed with the same float operations
/// (`searchsorted(side='right') / n`, then the difference).
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return f64::NAN;
    }
    let (nf1, nf2) = (n1 as f64, n2 as f64);
    let (mut i, mut j) = (0usize, 0usize);
    let mut max_diff = f64::NEG_INFINITY;
    let mut min_diff = f64::INFINITY;
    while i < n1 || j < n2 {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => break,
        };
        while i < n1 && a[i] <= v {
            i += 1;
        }
        while j < n2 && b[j] <= v {
            j += 1;
        }
        let diff = i as f64 / nf1 - j as f64 / nf2;
        max_diff = max_diff.max(diff);
        min_diff = min_diff.min(diff);
    }
    let min_s = (-min_diff).clamp(0.0, 1.0);
    min_s.max(max_diff)
}
