//! mean_subtraction_cumulation: subtract the mean of all but the last value; anomalous when
//! the last value's deviation exceeds 3 population standard deviations of the others'
//! deviations. Skyline G runs this in numba: naive loops and `np.std` (ddof 0).

use super::context::Ctx;
use super::shortcut;

/// mean_subtraction_cumulation on a `(timestamp, value)` series. `None` for fewer than two
/// points (numba's mean of an empty slice raises ZeroDivisionError).
pub fn mean_subtraction_cumulation(series: &[(f64, f64)]) -> Option<bool> {
    super::run_single(series, 0.0, 0, kernel)
}

/// Kernel shared with the ensemble.
///
/// The reference first maps falsy values to 0 (`x if x else 0`); only -0.0 changes, and a
/// -0.0 contributes exactly like 0.0 to every sum below, so no copy is made. NaN is truthy
/// and propagates.
pub(crate) fn kernel(ctx: &mut Ctx<'_>) -> Option<bool> {
    let v = ctx.values;
    let (&last, head) = v.split_last()?;
    if head.is_empty() {
        return None;
    }
    let k = head.len() as f64;
    if ctx.shortcuts && !ctx.shape.has_nan && head.len() < shortcut::MAX_LEN {
        let m = shortcut::lane_sum(head) / k;
        let (ssd, max_abs) = shortcut::spread(head, m);
        let magnitude = max_abs + last.abs() + m.abs();
        if let Some(clear) = shortcut::exceeds((last - m).abs(), 3.0, ssd / k, magnitude) {
            return Some(clear);
        }
    }
    // series_out = y - mean(y[:-1]); stdDev = np.std(series_out[:-1]). The first two loops
    // come from the shared statistics when the series has no NaN.
    let (m, sum_u) = match ctx.moments().msc {
        Some(p) => (p.m, p.sum_u),
        None => first_loops(head),
    };
    let mean_u = sum_u / k;
    let mut ssd = 0.0;
    for &x in head {
        let d = (x - m) - mean_u;
        ssd += d * d;
    }
    let std = (ssd / k).sqrt();
    Some((last - m).abs() > 3.0 * std)
}

/// numba's mean of `head`, then the naive sum of the deviations from it. The deviations are
/// recomputed in each loop rather than stored: same operation, same bits.
fn first_loops(head: &[f64]) -> (f64, f64) {
    let mut sum = 0.0;
    for &x in head {
        sum += x;
    }
    let m = sum / head.len() as f64;
    let mut sum_u = 0.0;
    for &x in head {
        sum_u += x - m;
    }
    (m, sum_u)
}
