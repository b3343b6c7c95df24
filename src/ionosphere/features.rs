//! The tsfresh feature set Skyline's Ionosphere computes for a features profile, in pure Rust.
//!
//! Owns no actor, message, Redis key or table: pure functions from a series' values (in time
//! order) to the 210 features of Skyline's tsfresh fork with `EfficientFCParameters` (spec §3.4),
//! named exactly as the fork emits them (`value__…`), in the fork's output order. Of these, the
//! 140 in [`STORED_FEATURE_IDS`] carry a `TSFRESH_FEATURES` id and are the ones stored with a
//! profile and compared; `features_count`/`features_sum` of a profile use all 210.
//!
//! Backpressure: none (no I/O). One call costs O(n log n) plus O(n²) for `mean_autocorrelation`
//! (as numpy's direct `correlate`), about a millisecond for a day of one-minute points.
//!
//! Where the fork's calculators differ from their documented meaning, the fork wins (its output
//! is the reference, `shared/vectors/ionosphere/features-golden.csv`):
//! - `mean_autocorrelation` divides the lag-`l` sum by `l`, not `n − l` (the fork's
//!   `r[0:n-1] / arange(n-1, 0, -1)` pairs lag `n−1` with divisor `n−1`).
//! - `autocorrelation` is pandas' `Series.autocorr` (Pearson of the two overlapping slices).
//! - `fft_coefficient` uses only the first 18 points (`rfft(x, n = min(len, 18))`).
//!
//! Inputs must be finite; callers drop unparsable or non-finite points first (spec §3.4 step 1).

use nalgebra::{DMatrix, DVector};
use rustfft::{num_complex::Complex, FftPlanner};
use std::sync::OnceLock;

/// The feature ids Skyline stores per profile (`skyline/tsfresh_feature_names.py`, spec
/// Appendix A), with the name the fork emits. Exactly 140.
pub const STORED_FEATURE_IDS: [(u16, &str); 140] = [
    (1, "value__symmetry_looking__r_0.65"),
    (2, "value__first_location_of_maximum"),
    (3, "value__absolute_sum_of_changes"),
    (4, "value__large_number_of_peaks__n_1"),
    (5, "value__large_number_of_peaks__n_3"),
    (6, "value__large_number_of_peaks__n_5"),
    (7, "value__last_location_of_minimum"),
    (8, "value__mean_abs_change_quantiles__qh_0.4__ql_0.0"),
    (9, "value__mean_abs_change_quantiles__qh_0.4__ql_0.2"),
    (10, "value__mean_abs_change_quantiles__qh_0.4__ql_0.4"),
    (11, "value__mean_abs_change_quantiles__qh_0.4__ql_0.6"),
    (12, "value__mean_abs_change_quantiles__qh_0.4__ql_0.8"),
    (13, "value__maximum"),
    (14, "value__value_count__value_-inf"),
    (15, "value__skewness"),
    (16, "value__number_peaks__n_3"),
    (17, "value__longest_strike_above_mean"),
    (18, "value__number_peaks__n_5"),
    (19, "value__first_location_of_minimum"),
    (20, "value__large_standard_deviation__r_0.25"),
    (21, "value__augmented_dickey_fuller"),
    (22, "value__count_above_mean"),
    (23, "value__symmetry_looking__r_0.75"),
    (
        24,
        "value__percentage_of_reoccurring_datapoints_to_all_datapoints",
    ),
    (25, "value__mean_abs_change"),
    (26, "value__mean_change"),
    (27, "value__value_count__value_1"),
    (28, "value__value_count__value_0"),
    (29, "value__minimum"),
    (30, "value__autocorrelation__lag_5"),
    (31, "value__median"),
    (33, "value__mean_abs_change_quantiles__qh_0.8__ql_0.4"),
    (34, "value__symmetry_looking__r_0.05"),
    (35, "value__mean_abs_change_quantiles__qh_0.8__ql_0.6"),
    (36, "value__value_count__value_inf"),
    (37, "value__mean_abs_change_quantiles__qh_0.8__ql_0.0"),
    (38, "value__mean_abs_change_quantiles__qh_0.8__ql_0.2"),
    (39, "value__large_standard_deviation__r_0.45"),
    (40, "value__mean_abs_change_quantiles__qh_0.8__ql_0.8"),
    (41, "value__autocorrelation__lag_6"),
    (42, "value__autocorrelation__lag_7"),
    (43, "value__autocorrelation__lag_4"),
    (44, "value__last_location_of_maximum"),
    (45, "value__autocorrelation__lag_2"),
    (46, "value__autocorrelation__lag_3"),
    (47, "value__autocorrelation__lag_0"),
    (48, "value__autocorrelation__lag_1"),
    (49, "value__autocorrelation__lag_8"),
    (50, "value__autocorrelation__lag_9"),
    (51, "value__range_count__max_1__min_-1"),
    (52, "value__variance"),
    (53, "value__mean"),
    (54, "value__standard_deviation"),
    (55, "value__mean_abs_change_quantiles__qh_0.6__ql_0.6"),
    (56, "value__mean_abs_change_quantiles__qh_0.6__ql_0.4"),
    (57, "value__mean_abs_change_quantiles__qh_0.6__ql_0.2"),
    (58, "value__mean_abs_change_quantiles__qh_0.6__ql_0.0"),
    (60, "value__ratio_value_number_to_time_series_length"),
    (61, "value__mean_second_derivate_central"),
    (62, "value__number_peaks__n_1"),
    (63, "value__length"),
    (64, "value__mean_abs_change_quantiles__qh_1.0__ql_0.0"),
    (65, "value__mean_abs_change_quantiles__qh_1.0__ql_0.2"),
    (66, "value__mean_abs_change_quantiles__qh_1.0__ql_0.4"),
    (67, "value__time_reversal_asymmetry_statistic__lag_3"),
    (68, "value__mean_abs_change_quantiles__qh_1.0__ql_0.6"),
    (69, "value__mean_abs_change_quantiles__qh_1.0__ql_0.8"),
    (70, "value__sum_of_reoccurring_values"),
    (71, "value__abs_energy"),
    (72, "value__variance_larger_than_standard_deviation"),
    (73, "value__mean_abs_change_quantiles__qh_0.6__ql_0.8"),
    (74, "value__kurtosis"),
    (77, "value__symmetry_looking__r_0.25"),
    (79, "value__percentage_of_reoccurring_values_to_all_values"),
    (81, "value__time_reversal_asymmetry_statistic__lag_2"),
    (83, "value__time_reversal_asymmetry_statistic__lag_1"),
    (86, "value__large_standard_deviation__r_0.2"),
    (87, "value__large_standard_deviation__r_0.1"),
    (88, "value__large_standard_deviation__r_0.0"),
    (89, "value__large_standard_deviation__r_0.4"),
    (91, "value__mean_autocorrelation"),
    (92, "value__binned_entropy__max_bins_10"),
    (95, "value__longest_strike_below_mean"),
    (96, "value__sum_values"),
    (97, "value__symmetry_looking__r_0.45"),
    (100, "value__symmetry_looking__r_0.4"),
    (101, "value__symmetry_looking__r_0.5"),
    (102, "value__symmetry_looking__r_0.2"),
    (104, "value__symmetry_looking__r_0.0"),
    (105, "value__symmetry_looking__r_0.1"),
    (106, "value__has_duplicate"),
    (107, "value__symmetry_looking__r_0.8"),
    (108, "value__symmetry_looking__r_0.9"),
    (109, "value__value_count__value_nan"),
    (110, "value__mean_abs_change_quantiles__qh_0.2__ql_0.8"),
    (111, "value__large_standard_deviation__r_0.05"),
    (112, "value__mean_abs_change_quantiles__qh_0.2__ql_0.2"),
    (113, "value__has_duplicate_max"),
    (114, "value__mean_abs_change_quantiles__qh_0.2__ql_0.0"),
    (115, "value__mean_abs_change_quantiles__qh_0.2__ql_0.6"),
    (116, "value__mean_abs_change_quantiles__qh_0.2__ql_0.4"),
    (117, "value__number_cwt_peaks__n_5"),
    (118, "value__number_cwt_peaks__n_1"),
    (120, "value__has_duplicate_min"),
    (121, "value__symmetry_looking__r_0.55"),
    (122, "value__count_below_mean"),
    (123, "value__quantile__q_0.1"),
    (124, "value__quantile__q_0.2"),
    (125, "value__quantile__q_0.3"),
    (126, "value__quantile__q_0.4"),
    (127, "value__quantile__q_0.6"),
    (128, "value__quantile__q_0.7"),
    (129, "value__quantile__q_0.8"),
    (130, "value__quantile__q_0.9"),
    (131, "value__ar_coefficient__k_10__coeff_0"),
    (132, "value__ar_coefficient__k_10__coeff_1"),
    (133, "value__ar_coefficient__k_10__coeff_2"),
    (134, "value__ar_coefficient__k_10__coeff_3"),
    (135, "value__ar_coefficient__k_10__coeff_4"),
    (136, "value__index_mass_quantile__q_0.1"),
    (137, "value__index_mass_quantile__q_0.2"),
    (138, "value__index_mass_quantile__q_0.3"),
    (139, "value__index_mass_quantile__q_0.4"),
    (140, "value__index_mass_quantile__q_0.6"),
    (141, "value__index_mass_quantile__q_0.7"),
    (142, "value__index_mass_quantile__q_0.8"),
    (143, "value__index_mass_quantile__q_0.9"),
    (204, "value__spkt_welch_density__coeff_2"),
    (205, "value__spkt_welch_density__coeff_5"),
    (206, "value__spkt_welch_density__coeff_8"),
    (207, "value__fft_coefficient__coeff_0"),
    (208, "value__fft_coefficient__coeff_1"),
    (209, "value__fft_coefficient__coeff_2"),
    (210, "value__fft_coefficient__coeff_3"),
    (211, "value__fft_coefficient__coeff_4"),
    (212, "value__fft_coefficient__coeff_5"),
    (213, "value__fft_coefficient__coeff_6"),
    (214, "value__fft_coefficient__coeff_7"),
    (215, "value__fft_coefficient__coeff_8"),
    (216, "value__fft_coefficient__coeff_9"),
];

/// How many features one extraction yields (the fork's EfficientFCParameters).
pub const FEATURE_COUNT: usize = 210;

/// The version string stored with a profile (`ionosphere.tsfresh_version`): the tsfresh
/// release the fork is based on, as Skyline stores it (its column is `VARCHAR(12)`).
pub const TSFRESH_VERSION: &str = "0.20.3";

/// One computed feature's name and, when it has one, its `TSFRESH_FEATURES` id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureName {
    pub name: String,
    pub id: Option<u16>,
}

/// Why no features could be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    #[error("no datapoints")]
    Empty,
    #[error("datapoint {0} is not a finite number")]
    NotFinite(usize),
}

/// The 210 features of one series, in the order of [`feature_names`].
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub values: Vec<f64>,
}

impl Features {
    /// `features_count` as Skyline stores it: every computed feature (NaN included).
    pub fn count(&self) -> usize {
        self.values.len()
    }

    /// `features_sum` as Skyline stores it: Σ of all computed features, NaN skipped.
    pub fn sum(&self) -> f64 {
        self.values.iter().filter(|v| !v.is_nan()).sum()
    }

    /// The `(feature_id, value)` pairs stored with a profile: the 140 features that have an id,
    /// NaN ones left out (Skyline skips empty CSV values), in ascending id order.
    pub fn stored(&self) -> Vec<(u16, f64)> {
        let mut out: Vec<(u16, f64)> = feature_names()
            .iter()
            .zip(&self.values)
            .filter_map(|(n, &v)| n.id.filter(|_| !v.is_nan()).map(|id| (id, v)))
            .collect();
        out.sort_by_key(|&(id, _)| id);
        out
    }

    /// The value of the feature named `name` (with its `value__` prefix).
    pub fn get(&self, name: &str) -> Option<f64> {
        feature_names()
            .iter()
            .position(|n| n.name == name)
            .and_then(|i| self.values.get(i).copied())
    }
}

/// Σ of the stored features' values (the sum the matcher compares), NaN skipped.
pub fn stored_sum(stored: &[(u16, f64)]) -> f64 {
    stored.iter().map(|&(_, v)| v).filter(|v| !v.is_nan()).sum()
}

/// Python's `repr` of a float as the fork formats parameters (`0.0`, `0.15000000000000002`).
fn py_repr(v: f64) -> String {
    let s = format!("{v}");
    if s.contains('.') || s.contains('e') || s.contains("inf") || s.contains("NaN") {
        s
    } else {
        format!("{s}.0")
    }
}

const SYMMETRY_STEPS: usize = 20;
const LARGE_STD_STEPS: usize = 10;
const QUANTILES: [f64; 8] = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9];
const CWT_WIDTHS: [f64; 4] = [2.0, 5.0, 10.0, 20.0];
const CWT_COEFFS: usize = 15;
const WELCH_COEFFS: [usize; 3] = [2, 5, 8];
const AR_K: usize = 10;
const AR_COEFFS: usize = 5;
const MACQ: [f64; 5] = [0.0, 0.2, 0.4, 0.6, 0.8];
const MACQ_HIGH: [f64; 5] = [0.2, 0.4, 0.6, 0.8, 1.0];
const FFT_COEFFS: usize = 10;
const FFT_POINTS: usize = 18;

/// The names (and ids) of the 210 features, in the fork's output order.
pub fn feature_names() -> &'static [FeatureName] {
    static NAMES: OnceLock<Vec<FeatureName>> = OnceLock::new();
    NAMES.get_or_init(build_names)
}

fn build_names() -> Vec<FeatureName> {
    let mut raw: Vec<String> = Vec::with_capacity(FEATURE_COUNT);
    for s in [
        "variance_larger_than_standard_deviation",
        "has_duplicate_max",
        "has_duplicate_min",
        "has_duplicate",
        "sum_values",
        "mean_autocorrelation",
        "augmented_dickey_fuller",
        "abs_energy",
        "mean_abs_change",
        "mean_change",
        "mean_second_derivate_central",
        "median",
        "mean",
        "length",
        "standard_deviation",
        "variance",
        "skewness",
        "kurtosis",
        "absolute_sum_of_changes",
        "longest_strike_below_mean",
        "longest_strike_above_mean",
        "count_above_mean",
        "count_below_mean",
        "last_location_of_maximum",
        "first_location_of_maximum",
        "last_location_of_minimum",
        "first_location_of_minimum",
        "percentage_of_reoccurring_datapoints_to_all_datapoints",
        "percentage_of_reoccurring_values_to_all_values",
        "sum_of_reoccurring_values",
        "ratio_value_number_to_time_series_length",
        "maximum",
        "minimum",
    ] {
        raw.push(s.to_string());
    }
    for lag in 1..=3 {
        raw.push(format!("time_reversal_asymmetry_statistic__lag_{lag}"));
    }
    for i in 0..SYMMETRY_STEPS {
        raw.push(format!("symmetry_looking__r_{}", py_repr(i as f64 * 0.05)));
    }
    for i in 0..LARGE_STD_STEPS {
        raw.push(format!(
            "large_standard_deviation__r_{}",
            py_repr(i as f64 * 0.05)
        ));
    }
    for q in QUANTILES {
        raw.push(format!("quantile__q_{}", py_repr(q)));
    }
    for lag in 0..10 {
        raw.push(format!("autocorrelation__lag_{lag}"));
    }
    for n in [1, 5] {
        raw.push(format!("number_cwt_peaks__n_{n}"));
    }
    for n in [1, 3, 5] {
        raw.push(format!("number_peaks__n_{n}"));
    }
    for n in [1, 3, 5] {
        raw.push(format!("large_number_of_peaks__n_{n}"));
    }
    raw.push("binned_entropy__max_bins_10".to_string());
    for q in QUANTILES {
        raw.push(format!("index_mass_quantile__q_{}", py_repr(q)));
    }
    for c in 0..CWT_COEFFS {
        for w in CWT_WIDTHS {
            raw.push(format!(
                "cwt_coefficients__widths_(2, 5, 10, 20)__coeff_{c}__w_{}",
                w as u32
            ));
        }
    }
    for c in WELCH_COEFFS {
        raw.push(format!("spkt_welch_density__coeff_{c}"));
    }
    for c in 0..AR_COEFFS {
        raw.push(format!("ar_coefficient__k_{AR_K}__coeff_{c}"));
    }
    for ql in MACQ {
        for qh in MACQ_HIGH {
            raw.push(format!(
                "mean_abs_change_quantiles__qh_{}__ql_{}",
                py_repr(qh),
                py_repr(ql)
            ));
        }
    }
    for c in 0..FFT_COEFFS {
        raw.push(format!("fft_coefficient__coeff_{c}"));
    }
    for v in ["0", "1", "nan", "inf", "-inf"] {
        raw.push(format!("value_count__value_{v}"));
    }
    raw.push("range_count__max_1__min_-1".to_string());

    raw.into_iter()
        .map(|s| {
            let name = format!("value__{s}");
            let id = STORED_FEATURE_IDS
                .iter()
                .find(|(_, n)| *n == name)
                .map(|&(id, _)| id);
            FeatureName { name, id }
        })
        .collect()
}

fn bool_f(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Computes the 210 features of `x` (values in time order).
pub fn extract(x: &[f64]) -> Result<Features, FeatureError> {
    if x.is_empty() {
        return Err(FeatureError::Empty);
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(FeatureError::NotFinite(i));
    }
    let n = x.len();
    let nf = n as f64;
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let sum: f64 = pairwise_sum(x);
    let mean = sum / nf;
    let var = pairwise_sum_map(x, |v| {
        let d = v - mean;
        d * d
    }) / nf;
    let std = var.sqrt();
    let median = quantile_sorted(&sorted, 0.5);
    let min = sorted[0];
    let max = sorted[n - 1];
    let diffs: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();

    // Runs of equal values in the sorted copy: distinct values and their counts.
    let mut distinct = 0usize;
    let mut reoccurring_distinct = 0usize;
    let mut reoccurring_points = 0usize;
    let mut reoccurring_sum = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i + 1;
        while j < n && sorted[j] == sorted[i] {
            j += 1;
        }
        let c = j - i;
        distinct += 1;
        if c > 1 {
            reoccurring_distinct += 1;
            reoccurring_points += c;
            reoccurring_sum += sorted[i] * c as f64;
        }
        i = j;
    }

    let mut out = Vec::with_capacity(FEATURE_COUNT);
    out.push(bool_f(var > var.sqrt()));
    out.push(bool_f(x.iter().filter(|&&v| v == max).count() >= 2));
    out.push(bool_f(x.iter().filter(|&&v| v == min).count() >= 2));
    out.push(bool_f(distinct != n));
    out.push(sum);
    out.push(mean_autocorrelation(x, mean, var));
    out.push(augmented_dickey_fuller(x));
    out.push(x.iter().map(|v| v * v).sum());
    let abs_changes = diffs.iter().map(|d| d.abs()).sum::<f64>();
    out.push(if diffs.is_empty() {
        f64::NAN
    } else {
        pairwise_sum_map(&diffs, f64::abs) / diffs.len() as f64
    });
    out.push(if diffs.is_empty() {
        f64::NAN
    } else {
        pairwise_sum(&diffs) / diffs.len() as f64
    });
    out.push(mean_second_derivate_central(x));
    out.push(median);
    out.push(mean);
    out.push(nf);
    out.push(std);
    out.push(var);
    out.push(skewness(x, mean));
    out.push(kurtosis(x, mean));
    out.push(abs_changes);
    out.push(longest_strike(x, |v| v < mean));
    out.push(longest_strike(x, |v| v > mean));
    out.push(x.iter().filter(|&&v| v > mean).count() as f64);
    out.push(x.iter().filter(|&&v| v < mean).count() as f64);
    let first_max = x.iter().position(|&v| v == max).unwrap_or(0);
    let last_max = x.iter().rposition(|&v| v == max).unwrap_or(0);
    let first_min = x.iter().position(|&v| v == min).unwrap_or(0);
    let last_min = x.iter().rposition(|&v| v == min).unwrap_or(0);
    out.push(1.0 - (n - 1 - last_max) as f64 / nf);
    out.push(first_max as f64 / nf);
    out.push(1.0 - (n - 1 - last_min) as f64 / nf);
    out.push(first_min as f64 / nf);
    out.push(reoccurring_distinct as f64 / distinct as f64);
    out.push(reoccurring_points as f64 / nf);
    out.push(reoccurring_sum);
    out.push(distinct as f64 / nf);
    out.push(max);
    out.push(min);
    for lag in 1..=3 {
        out.push(time_reversal_asymmetry_statistic(x, lag));
    }
    let range = max - min;
    let mean_median = (mean - median).abs();
    for i in 0..SYMMETRY_STEPS {
        out.push(bool_f(mean_median < (i as f64 * 0.05) * range));
    }
    for i in 0..LARGE_STD_STEPS {
        out.push(bool_f(std > (i as f64 * 0.05) * range));
    }
    for q in QUANTILES {
        out.push(quantile_sorted(&sorted, q));
    }
    for lag in 0..10 {
        out.push(autocorrelation(x, lag));
    }
    let cwt_peak_rows = cwt(x, &[1.0, 2.0, 3.0, 4.0, 5.0], n);
    // Both calls share the width-1 row, so its noise floor is computed once.
    let noises = cwt_noise(&cwt_peak_rows[0]);
    out.push(number_cwt_peaks(&cwt_peak_rows[..1], &[1.0], &noises));
    out.push(number_cwt_peaks(
        &cwt_peak_rows,
        &[1.0, 2.0, 3.0, 4.0, 5.0],
        &noises,
    ));
    let peaks = [1, 3, 5].map(|k| number_peaks(x, k));
    for p in peaks {
        out.push(p as f64);
    }
    for p in peaks {
        out.push(bool_f(p > 5));
    }
    out.push(binned_entropy(x, min, max, 10));
    index_mass_quantiles(x, &mut out);
    let cwt_rows = cwt(x, &CWT_WIDTHS, CWT_COEFFS);
    for c in 0..CWT_COEFFS {
        for row in &cwt_rows {
            out.push(row.get(c).copied().unwrap_or(f64::NAN));
        }
    }
    let welch = welch_density(x, &WELCH_COEFFS);
    out.extend_from_slice(&welch);
    out.extend_from_slice(&ar_coefficients(x, AR_K, AR_COEFFS));
    for ql in MACQ {
        for qh in MACQ_HIGH {
            out.push(mean_abs_change_quantiles(x, &sorted, ql, qh));
        }
    }
    fft_coefficients(x, &mut out);
    for v in [0.0, 1.0] {
        out.push(x.iter().filter(|&&e| e == v).count() as f64);
    }
    // Finite input: no NaN and no infinities to count.
    out.push(0.0);
    out.push(0.0);
    out.push(0.0);
    out.push(x.iter().filter(|&&v| (-1.0..1.0).contains(&v)).count() as f64);
    debug_assert_eq!(out.len(), FEATURE_COUNT);
    Ok(Features { values: out })
}

/// numpy's pairwise summation (blocks of 8 below 128 elements), so means match numpy's bits
/// closely.
fn pairwise_sum(a: &[f64]) -> f64 {
    pairwise_sum_map(a, |v| v)
}

fn pairwise_sum_map(a: &[f64], f: impl Fn(f64) -> f64 + Copy) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, &v| s + f(v))
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        for (k, slot) in r.iter_mut().enumerate() {
            *slot = f(a[k]);
        }
        let mut i = 8;
        while i < n - (n % 8) {
            for (slot, &v) in r.iter_mut().zip(&a[i..i + 8]) {
                *slot += f(v);
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[i..] {
            res += f(v);
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum_map(&a[..n2], f) + pairwise_sum_map(&a[n2..], f)
    }
}

/// numpy's linear-interpolation quantile of sorted values.
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let virtual_index = q * (n - 1) as f64;
    let prev = virtual_index.floor();
    let lo = (prev as usize).min(n - 1);
    let hi = (lo + 1).min(n - 1);
    let gamma = virtual_index - prev;
    let (a, b) = (sorted[lo], sorted[hi]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

fn mean_second_derivate_central(x: &[f64]) -> f64 {
    let n = x.len();
    if n < 3 {
        return f64::NAN;
    }
    let terms: Vec<f64> = (1..n - 1)
        .map(|i| (x[i - 1] - 2.0 * x[i] + x[i + 1]) / 2.0)
        .collect();
    pairwise_sum(&terms) / terms.len() as f64
}

/// pandas `Series.skew` (G1, bias-corrected).
fn skewness(x: &[f64], mean: f64) -> f64 {
    let n = x.len() as f64;
    if x.len() < 3 {
        return f64::NAN;
    }
    let m2 = zero_out_fperr(pairwise_sum_map(x, |v| (v - mean).powi(2)));
    let m3 = zero_out_fperr(pairwise_sum_map(x, |v| {
        let d = v - mean;
        d * d * d
    }));
    if m2 == 0.0 {
        return 0.0;
    }
    (n * (n - 1.0).sqrt() / (n - 2.0)) * (m3 / m2.powf(1.5))
}

/// pandas `Series.kurt` (G2, bias-corrected excess kurtosis).
fn kurtosis(x: &[f64], mean: f64) -> f64 {
    let n = x.len() as f64;
    if x.len() < 4 {
        return f64::NAN;
    }
    let m2 = pairwise_sum_map(x, |v| (v - mean).powi(2));
    let m4 = pairwise_sum_map(x, |v| {
        let d = (v - mean) * (v - mean);
        d * d
    });
    let adj = 3.0 * (n - 1.0).powi(2) / ((n - 2.0) * (n - 3.0));
    let numer = zero_out_fperr(n * (n + 1.0) * (n - 1.0) * m4);
    let denom = zero_out_fperr((n - 2.0) * (n - 3.0) * m2 * m2);
    if denom == 0.0 {
        return 0.0;
    }
    numer / denom - adj
}

fn zero_out_fperr(v: f64) -> f64 {
    if v.abs() < 1e-14 {
        0.0
    } else {
        v
    }
}

fn longest_strike(x: &[f64], pred: impl Fn(f64) -> bool) -> f64 {
    let (mut best, mut cur) = (0usize, 0usize);
    for &v in x {
        if pred(v) {
            cur += 1;
            best = best.max(cur);
        } else {
            cur = 0;
        }
    }
    best as f64
}

/// The fork's `time_reversal_asymmetry_statistic`.
fn time_reversal_asymmetry_statistic(x: &[f64], lag: usize) -> f64 {
    let n = x.len();
    if 2 * lag >= n {
        return 0.0;
    }
    let terms: Vec<f64> = (0..n - 2 * lag)
        .map(|i| x[i + 2 * lag] * x[i + 2 * lag] * x[i] - x[i + lag] * x[i] * x[i])
        .collect();
    pairwise_sum(&terms) / terms.len() as f64
}

/// pandas `Series.autocorr(lag)`: Pearson correlation of `x[..n-lag]` and `x[lag..]`.
fn autocorrelation(x: &[f64], lag: usize) -> f64 {
    let n = x.len();
    if lag >= n {
        return f64::NAN;
    }
    let a = &x[..n - lag];
    let b = &x[lag..];
    let m = a.len() as f64;
    if a.len() < 2 {
        return f64::NAN;
    }
    let ma = a.iter().sum::<f64>() / m;
    let mb = b.iter().sum::<f64>() / m;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&p, &q) in a.iter().zip(b) {
        let (dp, dq) = (p - ma, q - mb);
        sab += dp * dq;
        saa += dp * dp;
        sbb += dq * dq;
    }
    sab / (saa * sbb).sqrt()
}

/// The fork's `mean_autocorrelation` (lag-`l` sum divided by `l`, see the module docs).
fn mean_autocorrelation(x: &[f64], mean: f64, var: f64) -> f64 {
    let n = x.len();
    if var.abs() < 1e-10 || n == 1 {
        return 0.0;
    }
    let sums = lag_products(x, mean);
    let mut total = 0.0;
    for (lag, s) in sums.iter().enumerate().skip(1) {
        total += s / lag as f64 / var;
    }
    total / (n - 1) as f64
}

/// `Σ_{t<n−l} (x_t − μ)(x_{t+l} − μ)` for every lag `l` in `0..n`: directly for short series
/// (as numpy's `correlate`), through a zero-padded FFT (rustfft) for long ones.
fn lag_products(x: &[f64], mean: f64) -> Vec<f64> {
    let n = x.len();
    let c: Vec<f64> = x.iter().map(|v| v - mean).collect();
    if n <= DIRECT_CORRELATION_MAX {
        return (0..n).map(|lag| dot(&c[..n - lag], &c[lag..])).collect();
    }
    let size = 2 * n;
    // The planner caches plans (and their twiddles) per size: keep one per thread.
    thread_local! {
        static PLANNER: std::cell::RefCell<FftPlanner<f64>> =
            std::cell::RefCell::new(FftPlanner::new());
    }
    let (fwd, inv) = PLANNER.with(|p| {
        let mut p = p.borrow_mut();
        (p.plan_fft_forward(size), p.plan_fft_inverse(size))
    });
    let mut buf: Vec<Complex<f64>> = c
        .iter()
        .map(|&v| Complex::new(v, 0.0))
        .chain(std::iter::repeat_n(Complex::new(0.0, 0.0), size - n))
        .collect();
    fwd.process(&mut buf);
    for z in buf.iter_mut() {
        *z = Complex::new(z.norm_sqr(), 0.0);
    }
    inv.process(&mut buf);
    buf.iter().take(n).map(|z| z.re / size as f64).collect()
}

/// Longest series whose lag products are summed directly rather than through an FFT.
const DIRECT_CORRELATION_MAX: usize = 128;

/// Σ a·b with four interleaved partial sums (vectorises; same order for equal inputs).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let len = a.len().min(b.len());
    let (a, b) = (&a[..len], &b[..len]);
    let mut acc = [0.0f64; 4];
    let mut ca = a.chunks_exact(4);
    let mut cb = b.chunks_exact(4);
    for (p, q) in (&mut ca).zip(&mut cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(p).zip(q) {
            *s += u * v;
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (p, q) in ca.remainder().iter().zip(cb.remainder()) {
        s += p * q;
    }
    s
}

/// The fork's `number_peaks`: `i` in `[k, n-k)` greater than its `k` neighbours on each side.
fn number_peaks(x: &[f64], k: usize) -> usize {
    let n = x.len();
    if n <= 2 * k {
        return 0;
    }
    (k..n - k)
        .filter(|&i| (1..=k).all(|j| x[i] > x[i - j] && x[i] > x[i + j]))
        .count()
}

/// numpy `histogram(x, bins)` then `−Σ p ln p` over the non-empty bins.
fn binned_entropy(x: &[f64], min: f64, max: f64, bins: usize) -> f64 {
    let (mut first, mut last) = (min, max);
    if first == last {
        first -= 0.5;
        last += 0.5;
    }
    // numpy linspace: start + i·step, the last edge set to stop.
    let step = (last - first) / bins as f64;
    let edges: Vec<f64> = (0..=bins)
        .map(|i| {
            if i == bins {
                last
            } else {
                i as f64 * step + first
            }
        })
        .collect();
    let mut counts = vec![0usize; bins];
    for &v in x {
        let f = (v - first) / (last - first) * bins as f64;
        let mut idx = (f as usize).min(bins);
        if idx == bins {
            idx -= 1;
        }
        if v < edges[idx] && idx > 0 {
            idx -= 1;
        }
        if v >= edges[idx + 1] && idx != bins - 1 {
            idx += 1;
        }
        counts[idx] += 1;
    }
    let n = x.len() as f64;
    -counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            p * p.ln()
        })
        .sum::<f64>()
}

fn index_mass_quantiles(x: &[f64], out: &mut Vec<f64>) {
    let n = x.len() as f64;
    let total: f64 = pairwise_sum_map(x, f64::abs);
    if total == 0.0 {
        out.extend(std::iter::repeat_n(f64::NAN, QUANTILES.len()));
        return;
    }
    let mut cum = Vec::with_capacity(x.len());
    let mut s = 0.0;
    for v in x {
        s += v.abs();
        cum.push(s / total);
    }
    for q in QUANTILES {
        let i = cum.iter().position(|&m| m >= q).unwrap_or(0);
        out.push((i + 1) as f64 / n);
    }
}

/// scipy's `ricker(points, a)` (Mexican hat) wavelet.
fn ricker(points: usize, a: f64) -> Vec<f64> {
    let amp = 2.0 / ((3.0 * a).sqrt() * std::f64::consts::PI.powf(0.25));
    let wsq = a * a;
    (0..points)
        .map(|i| {
            let v = i as f64 - (points as f64 - 1.0) / 2.0;
            let xsq = v * v;
            let m = 1.0 - xsq / wsq;
            let g = (-xsq / (2.0 * wsq)).exp();
            amp * m * g
        })
        .collect()
}

/// scipy's `cwt(x, ricker, widths)`: per width, `convolve(x, ricker(min(10w, n), w), 'same')`,
/// the first `len` positions of each row.
fn cwt(x: &[f64], widths: &[f64], len: usize) -> Vec<Vec<f64>> {
    let n = x.len();
    widths
        .iter()
        .map(|&w| {
            let points = ((10.0 * w) as usize).min(n);
            // The wavelet reversed, so each output is one contiguous dot product (ricker is
            // symmetric, so this is the same array).
            let mut wav = ricker(points, w);
            wav.reverse();
            let start = (points - 1) / 2;
            (0..len.min(n))
                .map(|i| {
                    // full[k] = Σ_j x[j]·wav[k − j], k = i + start, j in j_lo..=j_hi.
                    let k = i + start;
                    let j_lo = (k + 1).saturating_sub(points);
                    let j_hi = k.min(n - 1);
                    // wav[k − j] reversed is rev[points − 1 − k + j].
                    let r0 = points - 1 - (k - j_lo);
                    dot(&x[j_lo..=j_hi], &wav[r0..r0 + (j_hi - j_lo + 1)])
                })
                .collect()
        })
        .collect()
}

/// `len(scipy.signal.find_peaks_cwt(x, widths, ricker))` given the cwt rows of `widths`.
fn number_cwt_peaks(rows: &[Vec<f64>], widths: &[f64], noises: &[f64]) -> f64 {
    let nrows = rows.len();
    let Some(num_points) = rows.first().map(Vec::len) else {
        return 0.0;
    };
    let max_distances: Vec<f64> = widths.iter().map(|w| w / 4.0).collect();
    let gap_thresh = widths[0].ceil();
    // _boolrelextrema(np.greater, order=1, mode='clip'): the ends compare with themselves.
    let relmax: Vec<Vec<usize>> = rows
        .iter()
        .map(|r| {
            (1..num_points.saturating_sub(1))
                .filter(|&i| r[i] > r[i - 1] && r[i] > r[i + 1])
                .collect()
        })
        .collect();
    let Some(start_row) = (0..nrows).rev().find(|&r| !relmax[r].is_empty()) else {
        return 0.0;
    };
    struct Line {
        rows: Vec<usize>,
        cols: Vec<usize>,
        gap: f64,
    }
    let mut lines: Vec<Line> = relmax[start_row]
        .iter()
        .map(|&c| Line {
            rows: vec![start_row],
            cols: vec![c],
            gap: 0.0,
        })
        .collect();
    let mut finals: Vec<Line> = Vec::new();
    for row in (0..start_row).rev() {
        for l in lines.iter_mut() {
            l.gap += 1.0;
        }
        let prev_cols: Vec<usize> = lines.iter().map(|l| *l.cols.last().unwrap_or(&0)).collect();
        for &col in &relmax[row] {
            let mut target = None;
            if !prev_cols.is_empty() {
                let mut closest = 0;
                let mut best = usize::MAX;
                for (i, &pc) in prev_cols.iter().enumerate() {
                    let d = col.abs_diff(pc);
                    if d < best {
                        best = d;
                        closest = i;
                    }
                }
                if best as f64 <= max_distances[row] {
                    target = Some(closest);
                }
            }
            match target {
                Some(i) => {
                    lines[i].cols.push(col);
                    lines[i].rows.push(row);
                    lines[i].gap = 0.0;
                }
                None => lines.push(Line {
                    rows: vec![row],
                    cols: vec![col],
                    gap: 0.0,
                }),
            }
        }
        let mut i = lines.len();
        while i > 0 {
            i -= 1;
            if lines[i].gap > gap_thresh {
                finals.push(lines.remove(i));
            }
        }
    }
    // _filter_ridge_lines
    let min_length = (nrows as f64 / 4.0).ceil();
    finals
        .iter()
        .chain(lines.iter())
        .filter(|l| {
            if (l.rows.len() as f64) < min_length {
                return false;
            }
            // numpy's argsort (stable for these short lines), then the scatter
            // `rows[sortargs] = line[0]` the way scipy writes it.
            let mut order: Vec<usize> = (0..l.rows.len()).collect();
            order.sort_by_key(|&k| l.rows[k]);
            let Some(pos) = order.iter().position(|&o| o == 0) else {
                return false;
            };
            let (r0, c0) = (l.rows[pos], l.cols[pos]);
            let snr = (rows[r0][c0] / noises[c0]).abs();
            // NaN (0/0) is not `< min_snr`, so such a line is kept, as in scipy.
            snr >= 1.0 || snr.is_nan()
        })
        .count() as f64
}

/// `_filter_ridge_lines`' noise floor: per point, the 10th percentile (scipy
/// `scoreatpercentile`, 'fraction') of the first cwt row over a window of `ceil(n/20)` points.
fn cwt_noise(row_one: &[f64]) -> Vec<f64> {
    let num_points = row_one.len();
    let window_size = (num_points as f64 / 20.0).ceil() as usize;
    let (hf, odd) = (window_size / 2, window_size % 2);
    // The window [s, e) slides by at most one element at each end per point: keep it sorted.
    let mut window: Vec<f64> = Vec::with_capacity(window_size + 1);
    let (mut s, mut e) = (0usize, 0usize);
    (0..num_points)
        .map(|i| {
            let (ns, ne) = (i.saturating_sub(hf), (i + hf + odd).min(num_points));
            for &v in &row_one[e..ne] {
                let at = window.partition_point(|w| w.total_cmp(&v).is_lt());
                window.insert(at, v);
            }
            for v in &row_one[s..ns] {
                // Equal under total_cmp means the same bits, so any match is the one to drop.
                if let Ok(at) = window.binary_search_by(|w| w.total_cmp(v)) {
                    window.remove(at);
                }
            }
            (s, e) = (ns, ne.max(e));
            score_at_percentile(&window, 10.0)
        })
        .collect()
}

/// scipy `scoreatpercentile(a, per)` ('fraction') of sorted values.
fn score_at_percentile(sorted: &[f64], per: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = per / 100.0 * (sorted.len() - 1) as f64;
    let i = idx as usize;
    if idx == i as f64 {
        sorted[i]
    } else {
        sorted[i] * ((i + 1) as f64 - idx) + sorted[i + 1] * (idx - i as f64)
    }
}

/// scipy `welch(x, nperseg=min(n, 256))` density at the requested bins (NaN past the end).
fn welch_density(x: &[f64], coeffs: &[usize]) -> Vec<f64> {
    let n = x.len();
    let nperseg = n.min(256);
    let noverlap = nperseg / 2;
    let step = nperseg - noverlap;
    let nseg = (n - noverlap).checked_div(step).unwrap_or(0);
    let bins = nperseg / 2 + 1;
    if nseg == 0 || nperseg < 2 {
        return vec![f64::NAN; coeffs.len()];
    }
    let win: Vec<f64> = (0..nperseg)
        .map(|k| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * k as f64 / nperseg as f64).cos())
        .collect();
    let scale = 1.0 / win.iter().map(|w| w * w).sum::<f64>();
    let tw = Twiddles::new(nperseg);
    let mut out = Vec::with_capacity(coeffs.len());
    let mut seg = vec![0.0; nperseg];
    for &c in coeffs {
        if c >= bins {
            out.push(f64::NAN);
            continue;
        }
        let mut total = 0.0;
        for s in 0..nseg {
            let part = &x[s * step..s * step + nperseg];
            let m = part.iter().sum::<f64>() / nperseg as f64;
            for (k, slot) in seg.iter_mut().enumerate() {
                *slot = (part[k] - m) * win[k];
            }
            let (re, im) = tw.bin(&seg, c);
            let mut p = (re * re + im * im) * scale;
            let nyquist = nperseg % 2 == 0 && c == bins - 1;
            if c != 0 && !nyquist {
                p *= 2.0;
            }
            total += p;
        }
        out.push(total / nseg as f64);
    }
    out
}

/// cos/sin of `2π·m/n` for `m` in `0..n`, for single DFT bins of length-`n` inputs.
struct Twiddles {
    cos: Vec<f64>,
    sin: Vec<f64>,
}

impl Twiddles {
    fn new(n: usize) -> Self {
        let ang = |m: usize| 2.0 * std::f64::consts::PI * m as f64 / n as f64;
        Twiddles {
            cos: (0..n).map(|m| ang(m).cos()).collect(),
            sin: (0..n).map(|m| ang(m).sin()).collect(),
        }
    }

    /// Bin `c` of the DFT of `v` (`v.len()` = n; angles reduced exactly via `k·c mod n`).
    fn bin(&self, v: &[f64], c: usize) -> (f64, f64) {
        let n = self.cos.len();
        let (mut re, mut im) = (0.0, 0.0);
        for (k, &val) in v.iter().enumerate() {
            let m = (k * c) % n;
            re += val * self.cos[m];
            im -= val * self.sin[m];
        }
        (re, im)
    }
}

/// The fork's `fft_coefficient`: real part of `rfft(x, n = min(len, 18))[c]`.
fn fft_coefficients(x: &[f64], out: &mut Vec<f64>) {
    let m = x.len().min(FFT_POINTS);
    let bins = m / 2 + 1;
    let tw = Twiddles::new(m);
    for c in 0..FFT_COEFFS {
        if c >= bins {
            out.push(f64::NAN);
        } else {
            out.push(tw.bin(&x[..m], c).0);
        }
    }
}

/// Least squares with a constant term, through the centred Gram matrix (the constant is
/// projected out, so the normal equations stay well conditioned for large-valued metrics).
struct CentredOls {
    gram: DMatrix<f64>,
    xty: DVector<f64>,
    yty: f64,
    x_means: Vec<f64>,
    y_mean: f64,
    nobs: usize,
}

impl CentredOls {
    /// `cols[j][t]` is regressor `j` at observation `t`.
    fn new(cols: &[Vec<f64>], y: &[f64]) -> Self {
        let k = cols.len();
        let nobs = y.len();
        let nf = nobs as f64;
        let y_mean = y.iter().sum::<f64>() / nf;
        let yc: Vec<f64> = y.iter().map(|v| v - y_mean).collect();
        let x_means: Vec<f64> = cols.iter().map(|c| c.iter().sum::<f64>() / nf).collect();
        let xc: Vec<Vec<f64>> = cols
            .iter()
            .zip(&x_means)
            .map(|(c, m)| c.iter().map(|v| v - m).collect())
            .collect();
        let mut gram = DMatrix::zeros(k, k);
        for a in 0..k {
            for b in a..k {
                let s = dot(&xc[a], &xc[b]);
                gram[(a, b)] = s;
                gram[(b, a)] = s;
            }
        }
        let xty = DVector::from_iterator(k, xc.iter().map(|c| dot(c, &yc)));
        let yty = dot(&yc, &yc);
        CentredOls {
            gram,
            xty,
            yty,
            x_means,
            y_mean,
            nobs,
        }
    }

    /// The residual sum of squares of the fits on the first 1, 2, … regressors (plus the
    /// constant), from one Cholesky factorisation. `None` if the regressors are collinear.
    fn prefix_ssr(&self) -> Option<Vec<f64>> {
        let chol = self.gram.clone().cholesky()?;
        let z = chol.l().solve_lower_triangular(&self.xty)?;
        let mut ssr = self.yty;
        Some(
            z.iter()
                .map(|zj| {
                    ssr -= zj * zj;
                    ssr
                })
                .collect(),
        )
    }

    /// Coefficients (constant first), and the t-value of regressor 0.
    fn fit(&self) -> Option<(Vec<f64>, f64)> {
        let k = self.gram.nrows();
        let chol = self.gram.clone().cholesky()?;
        let beta = chol.solve(&self.xty);
        let explained = beta.dot(&self.xty);
        let ssr = self.yty - explained;
        let df = self.nobs.checked_sub(k + 1).filter(|&d| d > 0)? as f64;
        let inv = chol.inverse();
        let t0 = beta[0] / (ssr / df * inv[(0, 0)]).sqrt();
        let c0 = self.y_mean
            - beta
                .iter()
                .zip(&self.x_means)
                .map(|(b, m)| b * m)
                .sum::<f64>();
        let mut coefs = Vec::with_capacity(k + 1);
        coefs.push(c0);
        coefs.extend(beta.iter().copied());
        Some((coefs, t0))
    }
}

/// statsmodels `adfuller(x)` defaults (constant, AIC lag selection up to
/// `ceil(12·(n/100)^¼)` capped at `n/2 − 2`): the t-statistic of the lagged level. NaN where
/// statsmodels raises (too short, constant, collinear).
fn augmented_dickey_fuller(x: &[f64]) -> f64 {
    adf(x).unwrap_or(f64::NAN)
}

fn adf(x: &[f64]) -> Option<f64> {
    let n = x.len();
    let (lo, hi) = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if n < 4 || lo == hi {
        return None;
    }
    let maxlag =
        ((12.0 * (n as f64 / 100.0).powf(0.25)).ceil() as usize).min((n / 2).checked_sub(2)?);
    let diff: Vec<f64> = x.windows(2).map(|w| w[1] - w[0]).collect();
    let design = |lag: usize, first: usize| -> (Vec<Vec<f64>>, Vec<f64>) {
        let rows = first..diff.len();
        let mut cols = Vec::with_capacity(lag + 1);
        cols.push(rows.clone().map(|t| x[t]).collect());
        for j in 1..=lag {
            cols.push(rows.clone().map(|t| diff[t - j]).collect());
        }
        (cols, diff[first..].to_vec())
    };
    // Lag selection on the common sample (rows maxlag..), statsmodels' `_autolag`.
    let (cols, y) = design(maxlag, maxlag);
    let nobs = y.len();
    if nobs <= maxlag + 2 {
        return None;
    }
    let ssr = CentredOls::new(&cols, &y).prefix_ssr()?;
    let mut best = (f64::INFINITY, 0usize);
    for (p, &s) in ssr.iter().enumerate() {
        // prefix p+1 regressors + constant = p+2 parameters; lag = p.
        let aic = nobs as f64 * (s / nobs as f64).ln() + 2.0 * (p + 2) as f64;
        if aic < best.0 {
            best = (aic, p);
        }
    }
    let lag = best.1;
    let (cols, y) = design(lag, lag);
    let (_, t) = CentredOls::new(&cols, &y).fit()?;
    Some(t)
}

/// statsmodels `AR(x).fit(maxlag=k)` (conditional MLE = OLS with a constant): coefficients
/// 0..count (0 is the intercept). NaN where the fit is impossible.
fn ar_coefficients(x: &[f64], k: usize, count: usize) -> Vec<f64> {
    let n = x.len();
    let fit = (n > 2 * k + 1)
        .then(|| {
            let cols: Vec<Vec<f64>> = (1..=k).map(|j| x[k - j..n - j].to_vec()).collect();
            CentredOls::new(&cols, &x[k..]).fit()
        })
        .flatten();
    match fit {
        Some((coefs, _)) => coefs.into_iter().take(count).collect(),
        None => vec![f64::NAN; count],
    }
}

/// The fork's `mean_abs_change_quantiles`: mean |Δx| over steps inside the [ql, qh] quantile
/// corridor (both ends inclusive, as `pd.qcut`); 0 when `ql ≥ qh` (qcut raises) or none.
fn mean_abs_change_quantiles(x: &[f64], sorted: &[f64], ql: f64, qh: f64) -> f64 {
    if ql >= qh {
        return 0.0;
    }
    let lo = quantile_sorted(sorted, ql);
    let hi = quantile_sorted(sorted, qh);
    if lo == hi {
        // qcut: "Bin edges must be unique".
        return 0.0;
    }
    let inside = |v: f64| v >= lo && v <= hi;
    let (mut s, mut c) = (0.0, 0usize);
    for w in x.windows(2) {
        if inside(w[0]) && inside(w[1]) {
            s += (w[1] - w[0]).abs();
            c += 1;
        }
    }
    if c == 0 {
        0.0
    } else {
        s / c as f64
    }
}

#[cfg(test)]
mod tests;
