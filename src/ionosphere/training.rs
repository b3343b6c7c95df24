//! Training: from the series an anomaly was found in to the content of a features profile
//! (spec §3.4–3.5). Pure functions, no I/O; owns no actor, key or table.
//!
//! Backpressure: none (no I/O); one call costs one feature extraction.

use std::time::Instant;

use super::features::{self, FeatureError, Features};

/// The most points kept with an anomaly for training (newest kept): a week at one minute
/// is 10,080, so every Analyzer (24 h) and Mirage (days at Graphite resolution) window fits.
pub const MAX_TRAINING_POINTS: usize = 20_000;

/// Why a series cannot be trained on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// Skyline's validity guard (spec §3.4 step 2): the series spans less than
    /// `full_duration` minus 2 h (4 h beyond a day).
    #[error(
        "insufficient data: the series spans {span} s, at least {needed} s of its {full_duration} s window are needed"
    )]
    TooShort {
        /// Seconds from the first to the last point.
        span: i64,
        /// Seconds required.
        needed: i64,
        /// The window.
        full_duration: i64,
    },
    /// No usable points.
    #[error("no features: {0}")]
    Features(#[from] FeatureError),
}

/// A computed profile: what `ionosphere` and `ionosphere_fp_features` store.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputedProfile {
    /// All 210 features.
    pub features: Features,
    /// The 140 id-mapped ones.
    pub stored: Vec<(u16, f64)>,
    /// Seconds the extraction took.
    pub calc_time: f64,
}

impl ComputedProfile {
    /// `features_count`.
    pub fn count(&self) -> usize {
        self.features.count()
    }

    /// `features_sum` (all features, NaN skipped).
    pub fn sum(&self) -> f64 {
        self.features.sum()
    }
}

/// The newest [`MAX_TRAINING_POINTS`] finite points of `series` (seconds, value), with
/// timestamps truncated to whole seconds, in time order.
pub fn bound_series(series: &[(f64, f64)]) -> Vec<(i64, f64)> {
    let start = series.len().saturating_sub(MAX_TRAINING_POINTS);
    series[start..]
        .iter()
        .filter(|(t, v)| t.is_finite() && v.is_finite())
        .map(|&(t, v)| (t as i64, v))
        .collect()
}

/// Skyline's validity guard (spec §3.4 step 2): the series must span at least
/// `full_duration − 7200` s (`− 14400` when `full_duration` exceeds a day).
pub fn check_span(series: &[(i64, f64)], full_duration: i64) -> Result<(), TrainError> {
    let offset = if full_duration > 86_400 {
        14_400
    } else {
        7_200
    };
    let needed = (full_duration - offset).max(0);
    let span = match (series.first(), series.last()) {
        (Some(f), Some(l)) => l.0 - f.0,
        _ => return Err(TrainError::Features(FeatureError::Empty)),
    };
    if span < needed {
        return Err(TrainError::TooShort {
            span,
            needed,
            full_duration,
        });
    }
    Ok(())
}

/// Features of a series' values (time order), timed.
pub fn compute(series: &[(i64, f64)]) -> Result<ComputedProfile, TrainError> {
    let started = Instant::now();
    let values: Vec<f64> = series.iter().map(|&(_, v)| v).collect();
    let features = features::extract(&values)?;
    let stored = features.stored();
    Ok(ComputedProfile {
        features,
        stored,
        calc_time: started.elapsed().as_secs_f64(),
    })
}

/// [`check_span`] then [`compute`]: what training does with an anomaly's series.
pub fn profile_of(
    series: &[(i64, f64)],
    full_duration: i64,
) -> Result<ComputedProfile, TrainError> {
    check_span(series, full_duration)?;
    compute(series)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(step: i64, span: i64) -> Vec<(i64, f64)> {
        (0..=span / step)
            .map(|i| (1_700_000_000 + i * step, 10.0 + (i % 7) as f64))
            .collect()
    }

    #[test]
    fn the_validity_guard_is_skylines() {
        // A day window needs 22 h of data; 21 h 59 min is refused, 22 h accepted.
        assert!(check_span(&day(60, 22 * 3600), 86_400).is_ok());
        let e = check_span(&day(60, 22 * 3600 - 60), 86_400).unwrap_err();
        assert_eq!(
            e,
            TrainError::TooShort {
                span: 22 * 3600 - 60,
                needed: 22 * 3600,
                full_duration: 86_400
            }
        );
        // Beyond a day the offset is 4 h: 7 days need 6 days 20 h.
        assert!(check_span(&day(600, 7 * 86_400 - 14_400), 7 * 86_400).is_ok());
        assert!(check_span(&day(600, 7 * 86_400 - 14_400 - 600), 7 * 86_400).is_err());
        assert!(matches!(
            check_span(&[], 86_400),
            Err(TrainError::Features(FeatureError::Empty))
        ));
    }

    #[test]
    fn bounding_keeps_the_newest_finite_points() {
        let long: Vec<(f64, f64)> = (0..MAX_TRAINING_POINTS + 10)
            .map(|i| {
                (
                    i as f64 + 0.5,
                    if i == MAX_TRAINING_POINTS {
                        f64::NAN
                    } else {
                        1.0
                    },
                )
            })
            .collect();
        let b = bound_series(&long);
        assert_eq!(b.len(), MAX_TRAINING_POINTS - 1);
        assert_eq!(b[0].0, 10);
        assert_eq!(b.last().unwrap().0, (MAX_TRAINING_POINTS + 9) as i64);
    }

    #[test]
    fn a_profile_has_skylines_counts() {
        let p = profile_of(&day(60, 86_400), 86_400).unwrap();
        assert_eq!(p.count(), features::FEATURE_COUNT);
        assert!(
            p.stored.len() <= 140 && p.stored.len() > 100,
            "{}",
            p.stored.len()
        );
        assert!(p.sum().is_finite());
    }
}
