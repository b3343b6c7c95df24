//! Decide-or-defer shortcuts for the comparisons against a standard deviation.
//!
//! The reference computes its standard deviations with sequential (latency-bound) loops or
//! recursions whose exact bits matter only when a value lies on the decision boundary. The
//! kernels therefore first evaluate the same comparison from a vectorisable computation of
//! the same quantity, and keep that answer only when it is farther from the boundary than a
//! wide margin; otherwise they run the exact reproduction. The verdict is the exact one in
//! every case.
//!
//! Why the margin is safe: two summation orders of the same n terms differ by at most about
//! `n·ε` of the summed magnitudes. For `dev² - c²·var`, with values and means bounded by
//! `A` and deviations by `D = |dev| + c·σ` (a mean's error enters the squared deviations
//! multiplied by a deviation, hence `A·D`), that is below about `50·n·ε·(A·D + D²)`: under
//! 6e-10 of `A·D + D²` for the [`MAX_LEN`] points allowed here, more than ten times inside
//! [`MARGIN`]. Non-finite data and longer series always take the exact path.

/// The relative margin (of `A·D + D²`) inside which a shortcut defers to the exact path.
pub(crate) const MARGIN: f64 = 1e-8;

/// Longest series a shortcut is tried on.
pub(crate) const MAX_LEN: usize = 100_000;

/// Sum in four interleaved lanes (the order does not matter for a shortcut).
pub(crate) fn lane_sum(values: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let mut chunks = values.chunks_exact(4);
    for chunk in &mut chunks {
        for (acc, &x) in lanes.iter_mut().zip(chunk) {
            *acc += x;
        }
    }
    for (acc, &x) in lanes.iter_mut().zip(chunks.remainder()) {
        *acc += x;
    }
    (lanes[0] + lanes[1]) + (lanes[2] + lanes[3])
}

/// `Σ(x - center)²` and `max |x|`, in four lanes.
pub(crate) fn spread(values: &[f64], center: f64) -> (f64, f64) {
    let mut ssd = [0.0f64; 4];
    let mut max = [0.0f64; 4];
    let mut chunks = values.chunks_exact(4);
    for chunk in &mut chunks {
        for ((s, m), &x) in ssd.iter_mut().zip(max.iter_mut()).zip(chunk) {
            let d = x - center;
            *s += d * d;
            *m = m.max(x.abs());
        }
    }
    for ((s, m), &x) in ssd.iter_mut().zip(max.iter_mut()).zip(chunks.remainder()) {
        let d = x - center;
        *s += d * d;
        *m = m.max(x.abs());
    }
    (
        (ssd[0] + ssd[1]) + (ssd[2] + ssd[3]),
        max[0].max(max[1]).max(max[2].max(max[3])),
    )
}

/// Whether `dev > c·√var` (`dev ≥ 0`, `c > 0`), from an approximate `var`, with `magnitude`
/// bounding the values and means involved. `None` when too close to call, when `var` is 0
/// (the exact std may then be exactly 0, which some algorithms special-case), or when
/// anything is not finite.
pub(crate) fn exceeds(dev: f64, c: f64, var: f64, magnitude: f64) -> Option<bool> {
    if var.is_nan() || var <= 0.0 {
        return None;
    }
    let spread = dev + c * var.sqrt();
    let d = dev * dev - c * c * var;
    let tolerance = MARGIN * (magnitude * spread + spread * spread);
    if d.is_finite() && tolerance.is_finite() && d.abs() > tolerance {
        Some(d > 0.0)
    } else {
        None
    }
}

/// Whether `std > threshold`, from an approximate `std` (same conventions as [`exceeds`]).
pub(crate) fn std_above(std: f64, threshold: f64, magnitude: f64) -> Option<bool> {
    let tolerance = MARGIN * (magnitude + std);
    let gap = std - threshold;
    if gap.is_finite() && tolerance.is_finite() && gap.abs() > tolerance {
        Some(gap > 0.0)
    } else {
        None
    }
}
