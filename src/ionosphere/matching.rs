//! Matching an anomaly against a metric's features profiles (spec §3.7 step 13, §3.8, §3.10).
//! Pure functions, no I/O; owns no actor, key or table.
//!
//! Order, as Skyline's: per profile at the anomaly's duration (most recently matched first),
//! the features-sum comparison, then (when it fails) the min-max-scaled retry; when no profile
//! matched, the layers of every enabled profile. Divergence (documented in docs/ionosphere.md):
//! the min-max range test is always enforced (Skyline skips it when the fp's min-max data is
//! cached, spec §3.8 step 3).
//!
//! Backpressure: none (no I/O). Cost: one feature extraction of the anomaly (and one of its
//! min-max-scaled series when a retry happens) plus O(140) per profile.

use super::features::{self, Features};

/// Matching thresholds (Skyline's settings, spec §3.15).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchSettings {
    /// IONOSPHERE_FEATURES_PERCENT_SIMILAR (1.0, strict `<`).
    pub features_percent_similar: f64,
    /// IONOSPHERE_MINMAX_SCALING_ENABLED (true).
    pub minmax_enabled: bool,
    /// IONOSPHERE_MINMAX_SCALING_RANGE_TOLERANCE (0.15).
    pub minmax_range_tolerance: f64,
    /// IONOSPHERE_LAYERS_USE_APPROXIMATELY_CLOSE (true).
    pub layers_approx_close: bool,
}

impl Default for MatchSettings {
    fn default() -> Self {
        MatchSettings {
            features_percent_similar: 1.0,
            minmax_enabled: true,
            minmax_range_tolerance: 0.15,
            layers_approx_close: true,
        }
    }
}

/// A profile's min-max data (`ionosphere_minmax`): the range of its training series and the
/// features of that series min-max scaled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinMax {
    /// Minimum of the training series.
    pub min: f64,
    /// Maximum of the training series.
    pub max: f64,
    /// Points in the training series.
    pub values_count: usize,
    /// Features of the scaled series.
    pub features_count: usize,
    /// Σ of those features.
    pub features_sum: f64,
}

/// One profile as the matcher sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// fp id.
    pub id: i32,
    /// `(feature_id, value)` of its stored features.
    pub features: Vec<(i32, f64)>,
    /// Its min-max data, when computed.
    pub minmax: Option<MinMax>,
}

/// Skyline's `percent_different(base, compare)` (spec §0.5): None for non-finite input or a
/// zero base (unless both are zero: 0).
pub fn percent_different(base: f64, compare: f64) -> Option<f64> {
    if !base.is_finite() || !compare.is_finite() {
        return None;
    }
    if base == 0.0 && compare == 0.0 {
        return Some(0.0);
    }
    if base == 0.0 {
        return None;
    }
    Some(((compare - base) / base).abs() * 100.0)
}

/// `(x − min) / (max − min)`, all zeros when flat.
pub fn minmax_scale(x: &[f64]) -> Vec<f64> {
    let min = x.iter().copied().fold(f64::INFINITY, f64::min);
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max.is_nan() || max <= min {
        return vec![0.0; x.len()];
    }
    x.iter().map(|v| (v - min) / (max - min)).collect()
}

/// The min-max data of a training series (stored with the profile).
pub fn minmax_of(values: &[f64]) -> Option<MinMax> {
    if values.is_empty() {
        return None;
    }
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let f = features::extract(&minmax_scale(values)).ok()?;
    Some(MinMax {
        min,
        max,
        values_count: values.len(),
        features_count: f.count(),
        features_sum: f.sum(),
    })
}

/// The outcome of comparing an anomaly with one profile's features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeaturesComparison {
    /// Ids both have.
    pub common_count: usize,
    /// Σ of the profile's values over the common ids.
    pub sum_fp: f64,
    /// Σ of the anomaly's values over the common ids.
    pub sum_calc: f64,
    /// `percent_different(sum_fp, sum_calc)`.
    pub percent_different: Option<f64>,
    /// Matched by the features sum.
    pub matched: bool,
}

/// Spec §3.7 step 13 d–g: the common-ids sums, matched when almost equal (|Δ| < 1.5e-6) or
/// `pd < threshold`. None when no id is common (the profile is skipped).
pub fn compare_features(
    fp: &[(i32, f64)],
    calc: &[(u16, f64)],
    threshold: f64,
) -> Option<FeaturesComparison> {
    let mut sum_fp = 0.0;
    let mut sum_calc = 0.0;
    let mut common = 0;
    for &(id, v) in calc {
        if let Ok(i) = fp.binary_search_by_key(&i32::from(id), |&(fid, _)| fid) {
            sum_fp += fp[i].1;
            sum_calc += v;
            common += 1;
        }
    }
    if common == 0 {
        return None;
    }
    let pd = percent_different(sum_fp, sum_calc);
    let almost_equal = (sum_fp - sum_calc).abs() < 1.5e-6;
    Some(FeaturesComparison {
        common_count: common,
        sum_fp,
        sum_calc,
        percent_different: pd,
        matched: almost_equal || pd.is_some_and(|p| p < threshold),
    })
}

fn range_part_similar(fp: f64, an: f64, tol: f64) -> bool {
    // Python int(): truncation toward zero.
    if fp as i64 == an as i64 {
        return true;
    }
    if fp == 0.0 || an == 0.0 {
        return false;
    }
    let lo = (fp - tol * fp) as i64;
    let hi = (fp + tol * fp) as i64;
    (lo..hi).contains(&(an as i64))
}

/// Spec §3.8 step 3: the anomaly's range is similar to the profile's (lower first; upper only
/// when the lower is).
pub fn range_similar(fp: &MinMax, an_min: f64, an_max: f64, tol: f64) -> bool {
    range_part_similar(fp.min, an_min, tol) && range_part_similar(fp.max, an_max, tol)
}

/// The min-max retry's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MinMaxComparison {
    /// Σ of the profile's scaled features.
    pub fp_sum: f64,
    /// Σ of the anomaly's scaled features.
    pub anomalous_sum: f64,
    /// Features in each sum.
    pub features_count: usize,
    /// Matched.
    pub matched: bool,
}

/// Spec §3.8: None when the retry does not apply (no min-max data, ranges not similar, lengths
/// differ by more than Skyline's −14..13, or no scaled features); else the comparison (an exact
/// 0 % difference is ignored, as Skyline does).
pub fn minmax_retry(
    fp: &MinMax,
    values: &[f64],
    scaled: &mut Option<Option<Features>>,
    settings: &MatchSettings,
) -> Option<MinMaxComparison> {
    if values.is_empty() {
        return None;
    }
    let an_min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let an_max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !range_similar(fp, an_min, an_max, settings.minmax_range_tolerance) {
        return None;
    }
    let diff = fp.values_count as i64 - values.len() as i64;
    if !(-14..=13).contains(&diff) {
        return None;
    }
    let f = scaled
        .get_or_insert_with(|| features::extract(&minmax_scale(values)).ok())
        .as_ref()?;
    let an_sum = f.sum();
    let mut matched = false;
    if fp.features_sum != 0.0 && an_sum != 0.0 {
        if let Some(pd) = percent_different(fp.features_sum, an_sum) {
            if pd != 0.0 {
                matched = pd < settings.features_percent_similar;
            }
        }
    }
    Some(MinMaxComparison {
        fp_sum: fp.features_sum,
        anomalous_sum: an_sum,
        features_count: f.count(),
        matched,
    })
}

/// How an anomaly matched a profile by features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeaturesMatch {
    /// The profile.
    pub fp_id: i32,
    /// Its features comparison.
    pub comparison: FeaturesComparison,
    /// Set when the min-max retry matched.
    pub minmax: Option<MinMaxComparison>,
    /// Profiles compared, this one included.
    pub fp_checked: usize,
}

/// The features-sum pass over `profiles` (already filtered to the anomaly's duration, in
/// Skyline's order): the first match, and the ids of every profile compared.
pub fn match_features(
    profiles: &[Profile],
    anomaly: &Features,
    values: &[f64],
    settings: &MatchSettings,
) -> (Option<FeaturesMatch>, Vec<i32>) {
    match_features_scaled(profiles, anomaly, values, &mut None, settings)
}

/// [`match_features`] with the anomaly's min-max-scaled features supplied (or computed at the
/// first min-max retry and left in `scaled`): they depend on the anomaly alone, so one check
/// computes them at most once whatever the number of profiles.
pub fn match_features_scaled(
    profiles: &[Profile],
    anomaly: &Features,
    values: &[f64],
    scaled: &mut Option<Option<Features>>,
    settings: &MatchSettings,
) -> (Option<FeaturesMatch>, Vec<i32>) {
    let calc = anomaly.stored();
    let mut checked = Vec::new();
    for p in profiles {
        let Some(c) = compare_features(&p.features, &calc, settings.features_percent_similar)
        else {
            continue;
        };
        checked.push(p.id);
        if c.matched {
            return (
                Some(FeaturesMatch {
                    fp_id: p.id,
                    comparison: c,
                    minmax: None,
                    fp_checked: checked.len(),
                }),
                checked,
            );
        }
        if settings.minmax_enabled {
            if let Some(mm) = p.minmax.as_ref() {
                if let Some(r) = minmax_retry(mm, values, scaled, settings) {
                    if r.matched {
                        return (
                            Some(FeaturesMatch {
                                fp_id: p.id,
                                comparison: c,
                                minmax: Some(r),
                                fp_checked: checked.len(),
                            }),
                            checked,
                        );
                    }
                }
            }
        }
    }
    (None, checked)
}

/// One layers rule (a `layers_algorithms` row).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// `D`, `D1`, `E`, `Es`, `F1`, `F2`.
    pub layer: String,
    /// `<`, `>`, `==`, `!=`, `<=`, `>=` or `none`.
    pub condition: String,
    /// The boundary as stored.
    pub boundary: String,
    /// Values in a row (D1, E).
    pub times_in_row: i32,
}

/// A layers verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayersVerdict {
    /// The layers matched (the anomaly is normal).
    pub matched: bool,
    /// It matched only thanks to the approximately-close tolerance.
    pub approx_close: bool,
}

/// Skyline's layer operators: `<` is `<=` and `>` is `>=` (spec §3.10, kept on purpose).
fn op(condition: &str, value: f64, limit: f64) -> Option<bool> {
    Some(match condition {
        "<" | "<=" => value <= limit,
        ">" | ">=" => value >= limit,
        "==" => value == limit,
        "!=" => value != limit,
        _ => return None,
    })
}

/// The approximately-close limit: +10 % (ceil) for 11 ≤ limit < 30, +5 % from 30.
fn approx(limit: f64) -> f64 {
    let pct = if (11.0..30.0).contains(&limit) {
        10.0
    } else if limit >= 30.0 {
        5.0
    } else {
        return limit;
    };
    limit + (limit * pct / 100.0).ceil()
}

fn run_layers(rules: &[Rule], values: &[f64], approx_close: bool) -> bool {
    let Some(&last) = values.last() else {
        return false;
    };
    let find = |name: &str| rules.iter().find(|r| r.layer == name);
    let limit_of = |r: &Rule| r.boundary.trim().parse::<f64>().ok();
    // D: definitely anomalous.
    if let Some(d) = find("D") {
        let Some(mut limit) = limit_of(d) else {
            return false;
        };
        if approx_close && matches!(d.condition.as_str(), ">" | ">=") {
            limit = approx(limit);
        }
        match op(&d.condition, last, limit) {
            Some(true) | None => return false,
            Some(false) => {}
        }
    }
    if let Some(d1) = find("D1").filter(|r| r.condition != "none") {
        let Some(limit) = limit_of(d1) else {
            return false;
        };
        let n = usize::try_from(d1.times_in_row.max(0)).unwrap_or(0);
        let tail = &values[values.len().saturating_sub(n)..];
        if tail
            .iter()
            .any(|&v| op(&d1.condition, v, limit).unwrap_or(true))
        {
            return false;
        }
    }
    let Some(e) = find("E") else {
        return false;
    };
    let Some(mut limit) = limit_of(e) else {
        return false;
    };
    if approx_close && matches!(e.condition.as_str(), "<" | "<=") {
        limit = approx(limit);
    }
    let n = usize::try_from(e.times_in_row.max(0)).unwrap_or(0);
    values
        .iter()
        .rev()
        .take(n)
        .any(|&v| op(&e.condition, v, limit).unwrap_or(false))
}

/// Evaluates one profile's layers on the series' values (spec §3.10). Es, F1 and F2 are
/// ignored, as Skyline does.
pub fn evaluate_layers(rules: &[Rule], values: &[f64], settings: &MatchSettings) -> LayersVerdict {
    let matched = run_layers(rules, values, settings.layers_approx_close);
    LayersVerdict {
        matched,
        approx_close: matched && settings.layers_approx_close && !run_layers(rules, values, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(layer: &str, condition: &str, boundary: &str, times: i32) -> Rule {
        Rule {
            layer: layer.into(),
            condition: condition.into(),
            boundary: boundary.into(),
            times_in_row: times,
        }
    }

    #[test]
    fn percent_different_is_skylines() {
        assert_eq!(percent_different(0.0, 0.0), Some(0.0));
        assert_eq!(percent_different(0.0, 1.0), None);
        assert_eq!(percent_different(f64::NAN, 1.0), None);
        assert_eq!(percent_different(100.0, 99.0), Some(1.0));
        assert_eq!(percent_different(-100.0, -98.0), Some(2.0));
    }

    #[test]
    fn layers_d_greater_than_matches_its_boundary_as_greater_or_equal() {
        // Appendix B: D `>` 5, last value exactly 5 → not matched (`>` is `>=`); below 11 no
        // approximately-close tolerance applies.
        let rules = vec![rule("D", ">", "5", 0), rule("E", "<", "5", 1)];
        let s = MatchSettings::default();
        let v = evaluate_layers(&rules, &[1.0, 2.0, 5.0], &s);
        assert!(!v.matched);
        let v = evaluate_layers(&rules, &[1.0, 2.0, 4.999], &s);
        assert!(v.matched && !v.approx_close);
        // E `<` 5 is `<=` 5: exactly 5 satisfies it when D allows (D `>` 6).
        let rules = vec![rule("D", ">", "6", 0), rule("E", "<", "5", 1)];
        assert!(evaluate_layers(&rules, &[5.0], &s).matched);
    }

    #[test]
    fn approximately_close_widens_d_and_e() {
        // D > 20 becomes >= 22 (10 %, ceil): 21 is not definitely anomalous.
        let rules = vec![rule("D", ">", "20", 0), rule("E", "<", "30", 3)];
        let s = MatchSettings::default();
        let v = evaluate_layers(&rules, &[10.0, 40.0, 21.0], &s);
        assert!(v.matched && v.approx_close, "{v:?}");
        let strict = MatchSettings {
            layers_approx_close: false,
            ..s
        };
        assert!(!evaluate_layers(&rules, &[10.0, 40.0, 21.0], &strict).matched);
        // D1 guard: any of the last 2 values above 15 → not matched.
        let rules = vec![
            rule("D", ">", "100", 0),
            rule("D1", ">", "15", 2),
            rule("E", "<", "30", 3),
        ];
        assert!(!evaluate_layers(&rules, &[1.0, 16.0, 2.0], &s).matched);
        assert!(evaluate_layers(&rules, &[16.0, 1.0, 2.0], &s).matched);
        // No E rule: never matched.
        assert!(!evaluate_layers(&[rule("D", ">", "100", 0)], &[1.0], &s).matched);
    }

    #[test]
    fn identical_features_match_with_zero_difference_and_a_scaled_series_fails() {
        let x: Vec<f64> = (0..1440)
            .map(|i| 100.0 + ((i * 37) % 23) as f64 + (i as f64 / 200.0).sin() * 10.0)
            .collect();
        let f = features::extract(&x).unwrap();
        let fp: Vec<(i32, f64)> = f.stored().iter().map(|&(i, v)| (i32::from(i), v)).collect();
        let s = MatchSettings::default();
        let c = compare_features(&fp, &f.stored(), 1.0).unwrap();
        assert!(c.matched);
        assert_eq!(c.percent_different, Some(0.0));
        assert_eq!(c.common_count, fp.len());
        let profile = Profile {
            id: 7,
            features: fp,
            minmax: minmax_of(&x),
        };
        // ×10: the raw sums differ by far more than 1 %, and the ranges are not similar, so
        // the min-max retry does not apply either.
        let y: Vec<f64> = x.iter().map(|v| v * 10.0).collect();
        let fy = features::extract(&y).unwrap();
        let (m, checked) = match_features(std::slice::from_ref(&profile), &fy, &y, &s);
        assert_eq!(m, None);
        assert_eq!(checked, vec![7]);
        // Within a few per cent (+0.3 %): matched by the features sum.
        let z: Vec<f64> = x.iter().map(|v| v * 1.003).collect();
        let fz = features::extract(&z).unwrap();
        let (m, _) = match_features(std::slice::from_ref(&profile), &fz, &z, &s);
        assert_eq!(m.map(|m| m.fp_id), Some(7));
    }

    #[test]
    fn the_minmax_retry_matches_a_shifted_shape_in_a_similar_range() {
        let x: Vec<f64> = (0..1440)
            .map(|i| 1000.0 + ((i * 37) % 23) as f64 + (i as f64 / 200.0).sin() * 100.0)
            .collect();
        let mm = minmax_of(&x).unwrap();
        // +5 % offset-and-scale: same shape, so the scaled features are identical; the raw sum
        // differs by far more than 1 %.
        let y: Vec<f64> = x.iter().map(|v| v * 1.05 + 1.0).collect();
        let s = MatchSettings::default();
        let r = minmax_retry(&mm, &y, &mut None, &s).unwrap();
        // Identical scaled features: pd is (about) 0 — Skyline ignores an exact 0 %.
        assert!(r.fp_sum != 0.0);
        let pd = percent_different(r.fp_sum, r.anomalous_sum).unwrap();
        assert!(pd < 1.0);
        assert_eq!(r.matched, pd != 0.0);
        // Out of range (×2): no retry.
        let far: Vec<f64> = x.iter().map(|v| v * 2.0).collect();
        assert_eq!(minmax_retry(&mm, &far, &mut None, &s), None);
    }
}
