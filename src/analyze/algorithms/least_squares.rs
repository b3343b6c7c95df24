//! least_squares: fit `value = m·t + c` on the raw epoch timestamps; anomalous when the mean
//! of the last three residuals exceeds 3 sample standard deviations of all residuals and both
//! numbers are non-zero after Python 3's banker's rounding.

use super::context::Ctx;
use super::shortcut;
use super::stats::{bottleneck_std_from_sum, naive_sum, py_round_nonzero};

/// least_squares on a `(timestamp, value)` series. `None` where the reference raises: any
/// non-finite timestamp or value (LAPACK's SVD does not converge), or a non-finite residual
/// mean reaching Python's `round()`.
pub fn least_squares(series: &[(f64, f64)]) -> Option<bool> {
    super::run_single(series, 0.0, 0, kernel)
}

/// Kernel shared with the ensemble.
pub(crate) fn kernel(ctx: &mut Ctx<'_>) -> Option<bool> {
    let points = ctx.points;
    let (m, c) = fit(points)?;
    let n = points.len();
    if n < 3 {
        return Some(false);
    }
    // The residual `value - (m*t + c)`, evaluated without FMA as numpy does.
    let errors = &mut ctx.scratch.a;
    errors.clear();
    errors.extend(points.iter().map(|p| p.1 - (m * p.0 + c)));
    let t = (errors[n - 1] + errors[n - 2] + errors[n - 3]) / 3.0;
    if ctx.shortcuts && n <= shortcut::MAX_LEN {
        if let Some(clear) = shortcut_verdict(errors, t) {
            return Some(clear);
        }
    }
    // pandas' std through bottleneck: naive sum, then naive sum of squared deviations.
    let std = bottleneck_std_from_sum(errors, naive_sum(errors), n);
    evaluate(t, std)
}

/// [`evaluate`] from a vectorised std of the residuals, or `None` when a comparison is too
/// close to call (see `shortcut`).
fn shortcut_verdict(errors: &[f64], t: f64) -> Option<bool> {
    let n = errors.len() as f64;
    let mean = shortcut::lane_sum(errors) / n;
    let (ssd, max_abs) = shortcut::spread(errors, mean);
    let var = ssd / (n - 1.0);
    let magnitude = max_abs + t.abs() + mean.abs();
    if !shortcut::exceeds(t.abs(), 3.0, var, magnitude)? {
        return Some(false);
    }
    // round(std) != 0 exactly when std > 0.5 (half to even: round(0.5) == 0).
    if !shortcut::std_above(var.sqrt(), 0.5, magnitude)? {
        return Some(false);
    }
    py_round_nonzero(t)
}

/// `abs(t) > std * 3 and round(std) != 0 and round(t) != 0`, short-circuiting like Python.
pub(crate) fn evaluate(t: f64, std: f64) -> Option<bool> {
    let beyond_three_sigma = t.abs() > std * 3.0;
    if !beyond_three_sigma {
        return Some(false);
    }
    if !py_round_nonzero(std)? {
        return Some(false);
    }
    py_round_nonzero(t)
}

/// LAPACK's relative machine precision, `dlamch('E')` = 2⁻⁵³: with `rcond=-1`, gelsd treats
/// singular values `<= eps · σ₁` as zero.
const LAPACK_EPS: f64 = f64::EPSILON / 2.0;

/// Least-squares slope and intercept as numpy's `lstsq(A, y, rcond=-1)` (LAPACK gelsd)
/// returns them for `A = [t, 1]` on raw epoch timestamps.
///
/// That matrix is badly conditioned: σ₂/σ₁ ≈ std(t)/mean(t)². For a short span (e.g. 100
/// points 10 s apart, ~1e-16) gelsd's rank cut-off drops σ₂ and returns the *minimum-norm
/// rank-1* solution, which fits a line through the origin, i.e. removes no slope. Both
/// singular values of a 2-column matrix are cheap to get accurately, so the same rank
/// decision is taken here; a full-rank fit is solved through centred sums (the same line to
/// rounding).
///
/// `None` when a timestamp or value is not finite (LAPACK's SVD does not converge).
pub fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    if points.is_empty() {
        // numpy returns zeros for a matrix without rows.
        return Some((0.0, 0.0));
    }
    let n = points.len() as f64;
    // gelsd's own rounding is not reproduced, so these sums are free to use four lanes. The
    // last term is 0 for finite input and NaN as soon as a timestamp or value is not.
    let [st, sy, stt, poison] = lane_sums(points, |t, y| [t, y, t * t, t * 0.0 + y * 0.0]);
    if poison != 0.0 {
        return None;
    }
    let (tm, ym) = (st / n, sy / n);
    let [sxx, sxy] = lane_sums(points, |t, y| {
        let dt = t - tm;
        [dt * dt, dt * (y - ym)]
    });
    // AᵀA = [[Σt², Σt], [Σt, n]]: σ₁² + σ₂² = Σt² + n and σ₁²σ₂² = n·Sxx.
    let s1_sq = stt + n;
    let s2_sq = n * sxx / s1_sq;
    if s2_sq <= LAPACK_EPS * LAPACK_EPS * s1_sq {
        return Some(rank_one_fit(points, stt, st, n));
    }
    let m = sxy / sxx;
    Some((m, ym - m * tm))
}

/// The minimum-norm solution when only σ₁ is kept: project y on `A·v₁`, with `v₁` the top
/// eigenvector of AᵀA taken from its better-scaled row.
fn rank_one_fit(points: &[(f64, f64)], stt: f64, st: f64, n: f64) -> (f64, f64) {
    let (v_m, v_c) = if stt >= n { (stt, st) } else { (st, n) };
    let mut ay = 0.0;
    let mut aa = 0.0;
    for &(t, y) in points {
        let a = v_m * t + v_c;
        ay += a * y;
        aa += a * a;
    }
    if aa == 0.0 {
        return (0.0, 0.0);
    }
    let k = ay / aa;
    (v_m * k, v_c * k)
}

/// Sums of `K` per-point terms, accumulated in four interleaved lanes.
fn lane_sums<const K: usize>(points: &[(f64, f64)], f: impl Fn(f64, f64) -> [f64; K]) -> [f64; K] {
    let mut lanes = [[0.0f64; K]; 4];
    let mut chunks = points.chunks_exact(4);
    for chunk in &mut chunks {
        for (lane, &(t, y)) in lanes.iter_mut().zip(chunk) {
            for (acc, term) in lane.iter_mut().zip(f(t, y)) {
                *acc += term;
            }
        }
    }
    for (lane, &(t, y)) in lanes.iter_mut().zip(chunks.remainder()) {
        for (acc, term) in lane.iter_mut().zip(f(t, y)) {
            *acc += term;
        }
    }
    let mut out = [0.0; K];
    for (j, o) in out.iter_mut().enumerate() {
        *o = (lanes[0][j] + lanes[1][j]) + (lanes[2][j] + lanes[3][j]);
    }
    out
}
