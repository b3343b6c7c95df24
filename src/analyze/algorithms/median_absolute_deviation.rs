//! median_absolute_deviation: anomalous when the last raw value's distance from the median is
//! more than 6 times the median absolute deviation. Skyline G runs it in numba, whose median is
//! a quickselect reproduced in [`super::stats::numba_median`].

use super::context::Ctx;
use super::stats::numba_median;

/// median_absolute_deviation on a `(timestamp, value)` series. `None` for an empty series.
pub fn median_absolute_deviation(series: &[(f64, f64)]) -> Option<bool> {
    super::run_single(series, 0.0, 0, kernel)
}

/// Kernel shared with the ensemble.
pub(crate) fn kernel(ctx: &mut Ctx<'_>) -> Option<bool> {
    let values = ctx.values;
    let &last = values.last()?;
    // numba's own quickselect: it is also faster here than the standard library's selection,
    // and only it reproduces the reference when NaNs are present.
    let buf = &mut ctx.scratch.a;
    buf.clear();
    buf.extend_from_slice(values);
    let median = numba_median(buf);
    buf.clear();
    buf.extend(values.iter().map(|&v| (v - median).abs()));
    let mad = numba_median(buf);
    // The statistic is infinite when the MAD is zero; the reference plays safe with False.
    if mad == 0.0 {
        return Some(false);
    }
    Some((last - median).abs() / mad > 6.0)
}
