//! first_hour_average: anomalous when tail_avg lies more than 3 standard deviations from the
//! mean of the first hour of the FULL_DURATION window. Skyline G (since 2022-11) anchors that
//! hour on the series' *last timestamp*, not on the wall clock.

use super::context::Ctx;
use super::stats::{bottleneck_std, pandas_mean, tail_avg};

/// first_hour_average on a `(timestamp, value)` series, with the window
/// `last_ts - full_duration < t < last_ts - full_duration + 3600` (both bounds strict).
/// `None` for an empty series (the reference raises).
pub fn first_hour_average(series: &[(f64, f64)], full_duration: i64) -> Option<bool> {
    super::run_single(series, 0.0, full_duration, kernel)
}

/// Kernel shared with the ensemble.
pub(crate) fn kernel(ctx: &mut Ctx<'_>) -> Option<bool> {
    let last_ts = ctx.points.last()?.0;
    let start = last_ts - ctx.full_duration as f64;
    let end = start + 3600.0;
    let after = |t: f64| t > start;
    let before = |t: f64| t < end;
    let range = ctx.window(after, before);
    let window = &mut ctx.scratch.a;
    window.clear();
    // The values keep series order: the pandas mean sums in this order.
    match range {
        Some((lo, hi)) => window.extend_from_slice(&ctx.values[lo..hi]),
        None => window.extend(
            ctx.points
                .iter()
                .filter(|p| after(p.0) && before(p.0))
                .map(|p| p.1),
        ),
    }
    let std = bottleneck_std(window);
    let t = tail_avg(ctx.values)?;
    if std.is_nan() {
        // Fewer than two values in the window: the comparison with NaN is False.
        return Some(false);
    }
    let mean = pandas_mean(window, &mut ctx.scratch.b);
    Some((t - mean).abs() > 3.0 * std)
}
