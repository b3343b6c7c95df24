//! stddev_from_moving_average: anomalous when the last raw value lies more than 3 EWM
//! standard deviations from the EWM mean (pandas `ewm(com=50, adjust=True)`), computed with
//! pandas' own online recursion so the bits match.
//!
//! That recursion is a chain of dependent divisions (~20 cycles per point). Most series are
//! nowhere near the 3σ boundary, so the closed form (vectorisable, no division in the loop)
//! decides first, and the exact recursion runs only when the closed form lands within a
//! generous error margin of the boundary. The verdict is the recursion's either way.

use super::context::Ctx;
use super::shortcut;
use super::stats::{EwmCov, EwmMean};

/// The centre of mass Skyline uses.
pub const COM: f64 = 50.0;

/// stddev_from_moving_average on a `(timestamp, value)` series. `None` for an empty series.
pub fn stddev_from_moving_average(series: &[(f64, f64)]) -> Option<bool> {
    super::run_single(series, 0.0, 0, kernel)
}

/// Kernel shared with the ensemble.
pub(crate) fn kernel(ctx: &mut Ctx<'_>) -> Option<bool> {
    let values = ctx.values;
    let &last = values.last()?;
    if ctx.shortcuts && !ctx.shape.has_nan {
        if let Some(clear) = closed_form_verdict(values) {
            return Some(clear);
        }
    }
    Some(exact_verdict(values, last))
}

/// The verdict from pandas' recursion itself.
pub(crate) fn exact_verdict(values: &[f64], last: f64) -> bool {
    let mut cov = EwmCov::new(COM);
    for &v in values {
        cov.push(v);
    }
    let mean = if values.iter().any(|v| v.is_nan()) {
        // With NaNs pandas' mean recursion and its covariance recursion weight differently.
        let mut m = EwmMean::new(COM);
        for &v in values {
            m.push(v);
        }
        m.mean()
    } else {
        cov.mean()
    };
    verdict(last, mean, cov.std())
}

/// Beyond this length the closed form is not tried (its weights would reach the subnormal
/// range, where arithmetic is slow); the recursion is used instead.
const CLOSED_FORM_MAX: usize = 16_000;

/// The EWM verdict from the closed form `μ = Σwᵢxᵢ / S`,
/// `σ² = S²/(S² - S₂) · Σwᵢ(xᵢ - μ)² / S` with `wᵢ = (1-α)^(n-1-i)`, `S = Σw`, `S₂ = Σw²`,
/// decided on `(x - μ)² - 9σ²` by `shortcut::exceeds`. `None` when that is too close to call
/// (or anything is not finite): the caller then runs the recursion.
pub(crate) fn closed_form_verdict(values: &[f64]) -> Option<bool> {
    let n = values.len();
    if !(2..=CLOSED_FORM_MAX).contains(&n) {
        return None;
    }
    let last = values[n - 1];
    let f = 1.0 - 1.0 / (1.0 + COM);
    // Four lanes walk back from the newest value with weights f^j·(f⁴)^m.
    let [s, s2, sx, sabs] = decayed_sums(values, f, |w, x| [w, w * w, w * x, w * x.abs()]);
    let mu = sx / s;
    let [q] = decayed_sums(values, f, |w, x| [w * (x - mu) * (x - mu)]);
    let k = s * s / (s * s - s2);
    let var = k * q / s;
    let magnitude = last.abs() + mu.abs() + sabs / s;
    shortcut::exceeds((last - mu).abs(), 3.0, var, magnitude)
}

/// `Σ term(w, x)` over the values from newest to oldest, with `w = f^age`, in four lanes.
fn decayed_sums<const K: usize>(
    values: &[f64],
    f: f64,
    term: impl Fn(f64, f64) -> [f64; K],
) -> [f64; K] {
    let f2 = f * f;
    let mut weights = [1.0, f, f2, f2 * f];
    let step = f2 * f2;
    let mut lanes = [[0.0f64; K]; 4];
    let mut chunks = values.rchunks_exact(4);
    for chunk in &mut chunks {
        // rchunks keep ascending order inside a chunk: the newest value is the last one.
        for (j, lane) in lanes.iter_mut().enumerate() {
            for (acc, t) in lane.iter_mut().zip(term(weights[j], chunk[3 - j])) {
                *acc += t;
            }
            weights[j] *= step;
        }
    }
    for (j, &x) in chunks.remainder().iter().rev().enumerate() {
        for (acc, t) in lanes[j].iter_mut().zip(term(weights[j], x)) {
            *acc += t;
        }
    }
    let mut out = [0.0; K];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (lanes[0][i] + lanes[1][i]) + (lanes[2][i] + lanes[3][i]);
    }
    out
}

/// `abs(v[-1] - mean) > 3 * std`.
pub(crate) fn verdict(last: f64, mean: f64, std: f64) -> bool {
    (last - mean).abs() > 3.0 * std
}

/// stddev_from_moving_average as a running state: feed values one at a time; after `n`
/// values [`MovingAverage::vote`] equals [`stddev_from_moving_average`] on those `n` values
/// (pandas' EWM is itself this recursion, so a stream costs O(1) per value).
#[derive(Debug, Clone)]
pub struct MovingAverage {
    cov: EwmCov,
    mean: EwmMean,
    nan_seen: bool,
    last: Option<f64>,
}

impl Default for MovingAverage {
    fn default() -> Self {
        Self::new()
    }
}

impl MovingAverage {
    /// An empty state.
    pub fn new() -> Self {
        MovingAverage {
            cov: EwmCov::new(COM),
            mean: EwmMean::new(COM),
            nan_seen: false,
            last: None,
        }
    }

    /// Append the next value of the series.
    pub fn push(&mut self, v: f64) {
        self.cov.push(v);
        self.mean.push(v);
        self.nan_seen |= v.is_nan();
        self.last = Some(v);
    }

    /// The vote on the values pushed so far (`None` before the first value).
    pub fn vote(&self) -> Option<bool> {
        let last = self.last?;
        let mean = if self.nan_seen {
            self.mean.mean()
        } else {
            self.cov.mean()
        };
        Some(verdict(last, mean, self.cov.std()))
    }
}
