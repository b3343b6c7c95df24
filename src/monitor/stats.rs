//! Pure statistics for the monitor views: quantiles, box-plot summaries and the
//! Mann–Whitney U test (normal approximation with tie and continuity correction).

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

/// The `q` quantile (0..=1) of `sorted` (ascending), linear interpolation between ranks
/// (NumPy's default); 0 for an empty slice.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => 0.0,
        1 => sorted[0],
        n => {
            let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = pos.ceil() as usize;
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        }
    }
}

/// A box plot: quartiles and Tukey whiskers (the furthest points within 1.5 IQR).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BoxSummary {
    /// Values.
    pub n: usize,
    /// Lower whisker.
    pub low: f64,
    /// First quartile.
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
    /// Upper whisker.
    pub high: f64,
    /// Mean.
    pub mean: f64,
}

/// The box plot of `values` (any order); `None` when empty.
pub fn box_summary(values: &[f64]) -> Option<BoxSummary> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let q1 = quantile(&v, 0.25);
    let q3 = quantile(&v, 0.75);
    let iqr = q3 - q1;
    let low = v
        .iter()
        .copied()
        .find(|&x| x >= q1 - 1.5 * iqr)
        .unwrap_or(v[0]);
    let high = v
        .iter()
        .rev()
        .copied()
        .find(|&x| x <= q3 + 1.5 * iqr)
        .unwrap_or(v[v.len() - 1]);
    Some(BoxSummary {
        n: v.len(),
        low,
        q1,
        median: quantile(&v, 0.5),
        q3,
        high,
        mean: v.iter().sum::<f64>() / v.len() as f64,
    })
}

/// A Mann–Whitney U test of `a` against `b`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MannWhitney {
    /// U of `a` (the number of pairs where `a` is larger, ties counting ½).
    pub u: f64,
    /// The normal approximation's z (tie-corrected variance, continuity correction).
    pub z: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// The Mann–Whitney U test of two samples (two-sided); `None` when either is empty.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (a.len(), b.len());
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let mut all: Vec<(f64, bool)> = a
        .iter()
        .map(|&x| (x, true))
        .chain(b.iter().map(|&x| (x, false)))
        .collect();
    all.sort_by(|x, y| x.0.total_cmp(&y.0));
    let n = all.len();
    let mut rank_sum_a = 0.0;
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_a += rank * all[i..=j].iter().filter(|x| x.1).count() as f64;
        tie_term += t * t * t - t;
        i = j + 1;
    }
    let (f1, f2, fnn) = (n1 as f64, n2 as f64, n as f64);
    let u = rank_sum_a - f1 * (f1 + 1.0) / 2.0;
    let mean = f1 * f2 / 2.0;
    let var = f1 * f2 / 12.0 * ((fnn + 1.0) - tie_term / (fnn * (fnn - 1.0)).max(1.0));
    if var <= 0.0 {
        // Every value equal: no evidence of a difference.
        return Some(MannWhitney { u, z: 0.0, p: 1.0 });
    }
    let d = u - mean;
    let corrected = if d.abs() <= 0.5 {
        0.0
    } else {
        d - 0.5 * d.signum()
    };
    let z = corrected / var.sqrt();
    let p = Normal::standard();
    let p = (2.0 * (1.0 - p.cdf(z.abs()))).clamp(0.0, 1.0);
    Some(MannWhitney { u, z, p })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_boxes() {
        let v: Vec<f64> = (1..=9).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 5.0);
        assert_eq!(quantile(&v, 0.25), 3.0);
        assert_eq!(quantile(&[1.0, 2.0], 0.5), 1.5);
        let mut with_outlier = v.clone();
        with_outlier.push(100.0);
        let b = box_summary(&with_outlier).unwrap();
        assert_eq!(b.n, 10);
        assert_eq!(b.median, 5.5);
        assert_eq!(b.high, 9.0, "the outlier is beyond the whisker");
        assert_eq!(b.low, 1.0);
        assert!(box_summary(&[]).is_none());
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        // scipy.stats.mannwhitneyu(a, b, alternative='two-sided', method='asymptotic')
        let a: Vec<f64> = (1..=10).map(f64::from).collect();
        let b: Vec<f64> = (11..=20).map(f64::from).collect();
        let r = mann_whitney(&a, &b).unwrap();
        assert_eq!(r.u, 0.0);
        assert!((r.p - 0.00018267).abs() < 2e-6, "{r:?}");
        // With ties (ranks 1, 3, 3, 6 for `a`): U = 3, tie-corrected variance 10.857,
        // z = -4.5 / sqrt(10.857), p = 0.172034.
        let r = mann_whitney(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 3.0, 4.0]).unwrap();
        assert_eq!(r.u, 3.0);
        assert!((r.p - 0.172034).abs() < 2e-6, "{r:?}");
        // Same samples: no difference.
        let r = mann_whitney(&a, &a).unwrap();
        assert!(r.p > 0.99, "{r:?}");
        assert_eq!(mann_whitney(&[5.0, 5.0], &[5.0]).unwrap().p, 1.0);
        assert!(mann_whitney(&[], &a).is_none());
    }
}
