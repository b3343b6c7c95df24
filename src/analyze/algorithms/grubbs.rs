//! grubbs: a one-sided Grubbs test of tail_avg against the whole series. Only upward
//! deviations can trigger it.

use std::cell::RefCell;

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::context::Ctx;
use super::shortcut;
use super::stats::tail_avg;

/// Slots of the per-thread cache of critical values (series lengths repeat from run to run).
const CACHE_SLOTS: usize = 64;

thread_local! {
    static CRITICAL: RefCell<[(usize, f64); CACHE_SLOTS]> =
        const { RefCell::new([(0, f64::NAN); CACHE_SLOTS]) };
}

/// grubbs on a `(timestamp, value)` series. `None` for an empty series.
pub fn grubbs(series: &[(f64, f64)]) -> Option<bool> {
    super::run_single(series, 0.0, 0, kernel)
}

/// Kernel shared with the ensemble: `z = (T - mean) / std > G_crit(n)`, False when std is 0.
pub(crate) fn kernel(ctx: &mut Ctx<'_>) -> Option<bool> {
    let t = tail_avg(ctx.values)?;
    let mean = ctx.mean();
    let dev = t - mean;
    // One-sided: with T at or below the mean, z <= 0 (or NaN) never exceeds the critical
    // value, whatever the std (a zero std returns False anyway).
    if dev.is_nan() || dev <= 0.0 {
        return Some(false);
    }
    let approx = ctx.approx();
    let magnitude = |max_abs: f64| max_abs + t.abs() + mean.abs();
    // The critical value is at least 1.1543 (n = 3) and grows with n, so a z of at most 1
    // cannot exceed it and the quantile need not be computed.
    if let Some(a) = approx {
        if shortcut::exceeds(dev, 1.0, a.var, magnitude(a.max_abs)) == Some(false) {
            return Some(false);
        }
    }
    let g = critical_value(ctx.values.len());
    if g.is_nan() {
        return Some(false);
    }
    if let Some(a) = approx {
        if let Some(clear) = shortcut::exceeds(dev, g, a.var, magnitude(a.max_abs)) {
            return Some(clear);
        }
    }
    let std = ctx.moments().std;
    // G (sample std): a flat series returns False before anything else.
    if std == 0.0 {
        return Some(false);
    }
    Some(dev / std > g)
}

/// Skyline's Grubbs critical value for `n` points:
/// `τ = t.isf(0.05 / (2n), n - 2)`, `G = ((n-1)/√n) · √(τ² / (n - 2 + τ²))`.
/// NaN for `n < 3` (no degrees of freedom), as scipy returns.
pub fn critical_value(n: usize) -> f64 {
    if n < 3 {
        return f64::NAN;
    }
    let slot = n % CACHE_SLOTS;
    let cached = CRITICAL.with(|c| c.try_borrow().ok().map(|c| c[slot]));
    if let Some((key, value)) = cached {
        if key == n {
            return value;
        }
    }
    let value = compute_critical_value(n);
    CRITICAL.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c[slot] = (n, value);
        }
    });
    value
}

/// Student's t inverse survival function, `t.isf(p, df)`, via the lower quantile by symmetry
/// (asking for the `1 - p` quantile would lose the digits of a tiny `p`).
pub fn t_isf(p: f64, df: f64) -> f64 {
    let in_range = p > 0.0 && p < 1.0;
    match StudentsT::new(0.0, 1.0, df) {
        Ok(dist) if in_range => -dist.inverse_cdf(p),
        _ => f64::NAN,
    }
}

fn compute_critical_value(n: usize) -> f64 {
    let nf = n as f64;
    let tau = t_isf(0.05 / (2.0 * nf), nf - 2.0);
    let tau2 = tau * tau;
    ((nf - 1.0) / nf.sqrt()) * (tau2 / ((nf - 2.0) + tau2)).sqrt()
}
