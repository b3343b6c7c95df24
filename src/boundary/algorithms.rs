//! Boundary's three algorithms and the gates in front of them, exactly as Skyline's
//! `boundary_algorithms.py` (stages-spec §2.4–2.5). Pure: std only, no actix, redis or diesel.
//!
//! A series is `(timestamp, value)` pairs sorted by timestamp. Each algorithm decides alone;
//! there is no consensus.

use std::collections::HashSet;
use std::str::FromStr;

/// One of Boundary's algorithms (`BOUNDARY_ALGORITHMS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// Anomalous when the last value is above `trigger_value`.
    GreaterThan,
    /// Anomalous when the last value is below `trigger_value`.
    LessThan,
    /// Anomalous when the last value fell off a cliff relative to the last ten points.
    DetectDropOffCliff,
}

impl Algorithm {
    /// The names, in Skyline's `BOUNDARY_ALGORITHMS` spelling.
    pub const NAMES: [&'static str; 3] = ["greater_than", "less_than", "detect_drop_off_cliff"];

    /// Skyline's name.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::GreaterThan => "greater_than",
            Algorithm::LessThan => "less_than",
            Algorithm::DetectDropOffCliff => "detect_drop_off_cliff",
        }
    }
}

impl FromStr for Algorithm {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "greater_than" => Ok(Algorithm::GreaterThan),
            "less_than" => Ok(Algorithm::LessThan),
            "detect_drop_off_cliff" => Ok(Algorithm::DetectDropOffCliff),
            other => Err(format!("unknown boundary algorithm {other:?}")),
        }
    }
}

/// The parameters of one (metric, rule) check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// `TRIGGER_VALUE`.
    pub trigger: f64,
    /// `MIN_AVERAGE`.
    pub min_average: f64,
    /// `MIN_AVERAGE_SECONDS`.
    pub min_average_seconds: i64,
}

/// The gates' settings (`[boundary]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gates {
    /// `STALE_PERIOD`.
    pub stale_period: i64,
    /// `MIN_TOLERABLE_LENGTH` (cliff only).
    pub min_tolerable_length: usize,
    /// `MAX_TOLERABLE_BOREDOM`.
    pub max_tolerable_boredom: usize,
    /// `BOREDOM_SET_SIZE`.
    pub boredom_set_size: usize,
}

impl Default for Gates {
    fn default() -> Self {
        Gates {
            stale_period: 500,
            min_tolerable_length: 100,
            max_tolerable_boredom: 100,
            boredom_set_size: 1,
        }
    }
}

/// Why a series was not run through its algorithm (each counts as "not anomalous").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exception {
    /// No points.
    EmptyTimeseries,
    /// Fewer than `min_tolerable_length` points (cliff), or none left.
    TooShort,
    /// The last point is older than `stale_period`.
    Stale,
    /// Too few distinct values in the last `max_tolerable_boredom` (cliff and less_than).
    Boring,
}

impl Exception {
    /// Skyline's exception name.
    pub fn name(self) -> &'static str {
        match self {
            Exception::EmptyTimeseries => "EmptyTimeseries",
            Exception::TooShort => "TooShort",
            Exception::Stale => "Stale",
            Exception::Boring => "Boring",
        }
    }
}

/// `less_than`: True iff the last value is below `trigger`.
pub fn less_than(series: &[(f64, f64)], trigger: f64) -> bool {
    series.last().is_some_and(|&(_, v)| v < trigger)
}

/// `greater_than`: True iff the last value is above `trigger`.
pub fn greater_than(series: &[(f64, f64)], trigger: f64) -> bool {
    series.last().is_some_and(|&(_, v)| v > trigger)
}

/// Python's `int(x)` on a float: truncation toward zero.
fn py_int(x: f64) -> f64 {
    x.trunc()
}

/// `detect_drop_off_cliff` (stages-spec §2.5), including Skyline's quirks: the "similar
/// datapoints" guards never fire (`len(np.where(...))` is always 1), `last` and the ratio
/// are truncated to integers, and the trigger overrides apply in order.
pub fn detect_drop_off_cliff(
    series: &[(f64, f64)],
    min_average: f64,
    min_average_seconds: i64,
) -> bool {
    let n = series.len();
    if n < 30 {
        return false;
    }
    let end = py_int(series[n - 1].0);
    let resolution = end - py_int(series[n - 2].0);
    let ten_ago = end - resolution * 10.0;
    let ten: Vec<f64> = series
        .iter()
        .filter(|(t, _)| *t <= end && *t > ten_ago)
        .map(|&(_, v)| v)
        .collect();
    if ten.len() <= 3 {
        return false;
    }
    let min = ten.iter().copied().fold(f64::INFINITY, f64::min);
    let max = ten.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if min < 0.0 || max == 0.0 || min == max {
        return false;
    }
    let sum: f64 = ten.iter().sum();
    let avg = sum / ten.len() as f64;
    let mut last = py_int(ten[ten.len() - 1]);
    // Skyline's "> 2 similar datapoints in the last 10 / 20" exits compare the length of
    // np.where's tuple (always 1) with 2: they never fire, so they are not here.
    if min_average > 0.0 && min_average_seconds > 0 {
        let since = end - min_average_seconds as f64;
        let (s, c) = series
            .iter()
            .filter(|(t, _)| *t <= end && *t > since)
            .fold((0.0, 0usize), |(s, c), &(_, v)| (s + v, c + 1));
        // Skyline divides by the window's length; an empty window raises, which Skyline
        // turns into None (not anomalous).
        if c == 0 || s / (c as f64) < min_average {
            return false;
        }
    }
    let mut trigger = 0.0;
    if max < 101.0 {
        trigger = 15.0;
    }
    if max < 20.0 {
        trigger = avg / 2.0;
    }
    if max > 100.0 {
        trigger = 100.0;
    }
    if last == 0.0 {
        last = 0.1;
    }
    if last == 1.0 {
        trigger = 1.0;
    }
    if last == 1.0 && max < 10.0 {
        trigger = 0.1;
    }
    if last == 0.1 && avg < 1.0 && sum < 7.0 {
        trigger = 7.0;
    }
    py_int(avg / last) > trigger
}

/// Runs the gates of `run_selected_algorithm` and then the algorithm: `Ok(anomalous)` or the
/// exception that stopped it. `now` is the run's epoch seconds.
pub fn evaluate(
    series: &[(f64, f64)],
    p: &Params,
    gates: &Gates,
    now: f64,
) -> Result<bool, Exception> {
    let Some(&(last_ts, _)) = series.last() else {
        return Err(Exception::EmptyTimeseries);
    };
    let cliff = p.algorithm == Algorithm::DetectDropOffCliff;
    if cliff && series.len() < gates.min_tolerable_length {
        return Err(Exception::TooShort);
    }
    if now - last_ts > gates.stale_period as f64 {
        return Err(Exception::Stale);
    }
    if cliff || p.algorithm == Algorithm::LessThan {
        let from = series.len().saturating_sub(gates.max_tolerable_boredom);
        let distinct: HashSet<u64> = series[from..].iter().map(|&(_, v)| v.to_bits()).collect();
        if distinct.len() == gates.boredom_set_size {
            return Err(Exception::Boring);
        }
    }
    Ok(match p.algorithm {
        Algorithm::LessThan => less_than(series, p.trigger),
        Algorithm::GreaterThan => greater_than(series, p.trigger),
        Algorithm::DetectDropOffCliff => {
            detect_drop_off_cliff(series, p.min_average, p.min_average_seconds)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_700_000_000.0;

    /// 60-s points ending at NOW.
    fn s(values: &[f64]) -> Vec<(f64, f64)> {
        let n = values.len();
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (NOW - 60.0 * (n - 1 - i) as f64, v))
            .collect()
    }

    fn cliff_series() -> Vec<(f64, f64)> {
        let mut v = vec![1000.0; 110];
        v.push(5.0);
        s(&v)
    }

    fn params(algorithm: Algorithm) -> Params {
        Params {
            algorithm,
            trigger: 0.0,
            min_average: 0.0,
            min_average_seconds: 0,
        }
    }

    #[test]
    fn thresholds_compare_the_last_value_strictly() {
        let x = s(&[5.0, 20.0, 10.0]);
        assert!(less_than(&x, 10.5));
        assert!(!less_than(&x, 10.0));
        assert!(greater_than(&x, 9.9));
        assert!(!greater_than(&x, 10.0));
        assert!(!less_than(&[], 1.0));
        assert!(!greater_than(&[], -1.0));
    }

    #[test]
    fn cliff_appendix_b() {
        // avg of the last 10 = (9*1000 + 5)/10 = 900.5; int(900.5 / 5) = 180 > 100.
        assert!(detect_drop_off_cliff(&cliff_series(), 0.0, 0));
        // The 600-s window holds 9 × 1000 and 5 (mean 900.5) < 2000: not anomalous.
        assert!(!detect_drop_off_cliff(&cliff_series(), 2000.0, 600));
        // A min_average the window's mean reaches does not stop it.
        assert!(detect_drop_off_cliff(&cliff_series(), 900.0, 600));
        // Either of the two at 0 disables the min-average test.
        assert!(detect_drop_off_cliff(&cliff_series(), 2000.0, 0));
        assert!(detect_drop_off_cliff(&cliff_series(), 0.0, 600));
    }

    #[test]
    fn cliff_truncates_last_and_ratio() {
        // ten = [150]*9 + [1.9]: last = int(1.9) = 1 → trigger 1 (max 150 > 100 gave 100
        // first, last == 1 overrides). avg = 135.19, int(135.19 / 1) = 135 > 1.
        let mut v = vec![150.0; 40];
        v.push(1.9);
        assert!(detect_drop_off_cliff(&s(&v), 0.0, 0));
        // `last` is truncated: ten = [1000]*9 + [8.95] → last 8, int(900.895 / 8) = 112 > 100;
        // with the raw 8.95 the ratio would be 100.66 → 100, not anomalous.
        let mut v = vec![1000.0; 40];
        v.push(8.95);
        assert!(detect_drop_off_cliff(&s(&v), 0.0, 0));
        // The ratio is truncated: ten = [1000]*9 + [9] → 900.9 / 9 = 100.1 → 100, not > 100.
        let mut v = vec![1000.0; 40];
        v.push(9.0);
        assert!(!detect_drop_off_cliff(&s(&v), 0.0, 0));
        // max < 20: trigger = avg / 2 = 8.6, then last == 1 overrides it to 1 (max >= 10);
        // ten = [19]*9 + [1] → avg 17.2 → int(17.2) = 17 > 1.
        let mut v = vec![19.0; 40];
        v.push(1.0);
        assert!(detect_drop_off_cliff(&s(&v), 0.0, 0));
        // max < 10 and last == 1: trigger 0.1; ten = [2]*9 + [1] → avg 1.9 → 1 > 0.1.
        let mut v = vec![2.0; 40];
        v.push(1.0);
        assert!(detect_drop_off_cliff(&s(&v), 0.0, 0));
        // last 0 → 0.1; avg < 1 and sum < 7 → trigger 7: ten = [0.5]*9 + [0] → sum 4.5,
        // avg 0.45, 0.45 / 0.1 = 4.5 → 4, not > 7.
        let mut v = vec![0.5; 40];
        v.push(0.0);
        assert!(!detect_drop_off_cliff(&s(&v), 0.0, 0));
        // last 0 with a large average: ten = [50]*9 + [0.4] → int(0.4) = 0 → 0.1,
        // trigger 15, int(45.04 / 0.1) = 450 > 15.
        let mut v = vec![50.0; 40];
        v.push(0.4);
        assert!(detect_drop_off_cliff(&s(&v), 0.0, 0));
    }

    #[test]
    fn cliff_early_exits() {
        // Under 30 points.
        let mut v = vec![1000.0; 28];
        v.push(5.0);
        assert!(!detect_drop_off_cliff(&s(&v), 0.0, 0));
        // A negative value in the last ten.
        let mut v = vec![1000.0; 40];
        v.push(-5.0);
        assert!(!detect_drop_off_cliff(&s(&v), 0.0, 0));
        // All zero; all equal.
        assert!(!detect_drop_off_cliff(&s(&[0.0; 40]), 0.0, 0));
        assert!(!detect_drop_off_cliff(&s(&[7.0; 40]), 0.0, 0));
        // Three or fewer points in the ten-resolution window (the last step is 60 s, the
        // points before are 10,000 s older).
        let sparse: Vec<(f64, f64)> = (0..40)
            .map(|i| (NOW - 60.0 * (40 - i) as f64, 1000.0))
            .chain([(NOW + 10_000.0, 1000.0), (NOW + 10_060.0, 5.0)])
            .collect();
        assert!(!detect_drop_off_cliff(&sparse, 0.0, 0));
    }

    #[test]
    fn the_similar_datapoints_guard_is_a_no_op() {
        // Three values at the minimum in the last ten: Skyline intended "not anomalous" but
        // its guard never fires, so this is anomalous (parity, spec trap 10).
        let mut v = vec![1000.0; 40];
        v.extend([5.0, 1000.0, 5.0, 1000.0, 5.0]);
        assert!(detect_drop_off_cliff(&s(&v), 0.0, 0));
    }

    #[test]
    fn gates_in_skyline_order() {
        let g = Gates::default();
        let cliff = params(Algorithm::DetectDropOffCliff);
        assert_eq!(
            evaluate(&[], &cliff, &g, NOW),
            Err(Exception::EmptyTimeseries)
        );
        // Appendix B: the cliff fires; fewer than 100 points is TooShort.
        assert_eq!(evaluate(&cliff_series(), &cliff, &g, NOW), Ok(true));
        let short = &cliff_series()[20..];
        assert_eq!(evaluate(short, &cliff, &g, NOW), Err(Exception::TooShort));
        // TooShort is the cliff's only: less_than on 3 points runs.
        let lt = Params {
            trigger: 7.0,
            ..params(Algorithm::LessThan)
        };
        assert_eq!(evaluate(&s(&[5.0, 9.0, 6.0]), &lt, &g, NOW), Ok(true));
        // Stale: last point more than 500 s old.
        assert_eq!(
            evaluate(&s(&[5.0, 9.0, 6.0]), &lt, &g, NOW + 501.0),
            Err(Exception::Stale)
        );
        assert_eq!(
            evaluate(&s(&[5.0, 9.0, 6.0]), &lt, &g, NOW + 500.0),
            Ok(true)
        );
        // Boring for less_than and the cliff, not for greater_than.
        let flat = s(&[3.0; 150]);
        assert_eq!(evaluate(&flat, &lt, &g, NOW), Err(Exception::Boring));
        assert_eq!(evaluate(&flat, &cliff, &g, NOW), Err(Exception::Boring));
        let gt = Params {
            trigger: 2.0,
            ..params(Algorithm::GreaterThan)
        };
        assert_eq!(evaluate(&flat, &gt, &g, NOW), Ok(true));
        // Only the last 100 values count for boredom.
        let mut v = vec![1.0];
        v.extend([3.0; 100]);
        assert_eq!(evaluate(&s(&v), &lt, &g, NOW), Err(Exception::Boring));
    }

    #[test]
    fn names_round_trip() {
        for n in Algorithm::NAMES {
            assert_eq!(n.parse::<Algorithm>().map(Algorithm::name), Ok(n));
        }
        assert!("lower_than".parse::<Algorithm>().is_err());
    }
}
