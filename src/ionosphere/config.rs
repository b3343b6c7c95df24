//! `[ionosphere]`: Skyline's Ionosphere settings (spec §3.15) that this port honours. Pure: no
//! I/O.

use serde::{Deserialize, Serialize};

use super::learn::LearnNamespace;
use super::matching::MatchSettings;

/// `[ionosphere]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct IonosphereSettings {
    /// `IONOSPHERE_ENABLED`: keep anomalies' series for training, offer training, and compare
    /// anomalies of trained metrics with their profiles before recording or alerting them.
    pub enabled: bool,
    /// `IONOSPHERE_KEEP_TRAINING_TIMESERIES_FOR`: seconds an anomaly's series is kept for
    /// training (3 days); 0 keeps it forever.
    pub keep_training_secs: i64,
    /// `IONOSPHERE_FEATURES_PERCENT_SIMILAR`: features-sum match threshold, strict `<` (1.0).
    pub features_percent_similar: f64,
    /// `IONOSPHERE_MINMAX_SCALING_ENABLED` (true).
    pub minmax_scaling: bool,
    /// `IONOSPHERE_MINMAX_SCALING_RANGE_TOLERANCE` (0.15).
    pub minmax_range_tolerance: f64,
    /// `IONOSPHERE_LAYERS_USE_APPROXIMATELY_CLOSE` (true).
    pub layers_approx_close: bool,
    /// An anomaly Ionosphere has not decided within this many seconds is recorded and alerted
    /// as if no profile matched (Skyline's 300-s waterfall).
    pub waterfall_secs: u64,
    /// Anomalies waiting for the matcher; beyond this they are recorded and alerted at once.
    pub queue_max: usize,
    /// `[[ionosphere.learn]]`: the namespaces that learn (Skyline's
    /// IONOSPHERE_LEARN_NAMESPACE_CONFIG, spec §3.13); none by default.
    pub learn: Vec<LearnNamespace>,
}

impl Default for IonosphereSettings {
    fn default() -> Self {
        IonosphereSettings {
            enabled: true,
            keep_training_secs: 259_200,
            features_percent_similar: 1.0,
            minmax_scaling: true,
            minmax_range_tolerance: 0.15,
            layers_approx_close: true,
            waterfall_secs: 300,
            queue_max: 1000,
            learn: Vec::new(),
        }
    }
}

impl IonosphereSettings {
    /// The matcher's thresholds.
    pub fn matching(&self) -> MatchSettings {
        MatchSettings {
            features_percent_similar: self.features_percent_similar,
            minmax_enabled: self.minmax_scaling,
            minmax_range_tolerance: self.minmax_range_tolerance,
            layers_approx_close: self.layers_approx_close,
        }
    }

    /// Every problem with `[ionosphere]`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        if self.keep_training_secs < 0 {
            problems.push("[ionosphere] keep_training_secs: must be 0 or positive".into());
        }
        let p = self.features_percent_similar;
        if p.is_nan() || p <= 0.0 || p.is_infinite() {
            problems
                .push("[ionosphere] features_percent_similar: must be a positive number".into());
        }
        if !(0.0..1.0).contains(&self.minmax_range_tolerance) {
            problems.push("[ionosphere] minmax_range_tolerance: must be in [0, 1)".into());
        }
        if self.waterfall_secs == 0 {
            problems.push("[ionosphere] waterfall_secs: must be positive".into());
        }
        if self.queue_max == 0 {
            problems.push("[ionosphere] queue_max: must be positive".into());
        }
        for (i, l) in self.learn.iter().enumerate() {
            l.validate(i, problems);
        }
    }
}
