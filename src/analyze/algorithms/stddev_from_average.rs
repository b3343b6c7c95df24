//! stddev_from_average: anomalous when tail_avg lies more than 3 sample standard deviations
//! from the mean of the whole series (pandas mean and std).

use super::context::Ctx;
use super::shortcut;
use super::stats::tail_avg;

/// stddev_from_average on a `(timestamp, value)` series. `None` for an empty series.
pub fn stddev_from_average(series: &[(f64, f64)]) -> Option<bool> {
    super::run_single(series, 0.0, 0, kernel)
}

/// Kernel shared with the ensemble: `abs(T - mean) > 3 * std`.
pub(crate) fn kernel(ctx: &mut Ctx<'_>) -> Option<bool> {
    let t = tail_avg(ctx.values)?;
    let mean = ctx.mean();
    let dev = (t - mean).abs();
    if let Some(a) = ctx.approx() {
        let magnitude = a.max_abs + t.abs() + mean.abs();
        if let Some(clear) = shortcut::exceeds(dev, 3.0, a.var, magnitude) {
            return Some(clear);
        }
    }
    Some(dev > 3.0 * ctx.moments().std)
}
