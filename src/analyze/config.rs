//! `[analyzer]`: Skyline's Analyzer settings.

use serde::{Deserialize, Serialize};

/// Algorithm names Skyline knows, in earthgecko Skyline's default order.
pub const ALGORITHM_NAMES: [&str; 9] = [
    "histogram_bins",
    "first_hour_average",
    "stddev_from_average",
    "grubbs",
    "ks_test",
    "mean_subtraction_cumulation",
    "median_absolute_deviation",
    "stddev_from_moving_average",
    "least_squares",
];

/// `[analyzer]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyzerSettings {
    /// Run the Analyzer (`ANALYZER_ENABLED`).
    pub enabled: bool,
    /// Seconds between the starts of two runs (`ANALYZER_OPTIMUM_RUN_DURATION`).
    pub run_every_secs: u64,
    /// Analysis threads; 0 = one per core (`ANALYZER_PROCESSES`).
    pub workers: usize,
    /// Algorithms run, in order (`ALGORITHMS`).
    pub algorithms: Vec<String>,
    /// Votes needed (`CONSENSUS`): anomalous when at most `len - consensus` votes are False.
    pub consensus: usize,
    /// Series shorter than this are `TooShort` (`MIN_TOLERABLE_LENGTH`).
    pub min_tolerable_length: usize,
    /// A series whose last point is older than this is `Stale` (`STALE_PERIOD`).
    pub stale_period_secs: i64,
    /// Window for the Boring test (`MAX_TOLERABLE_BOREDOM`).
    pub max_tolerable_boredom: usize,
    /// Boring when the window holds exactly this many distinct values (`BOREDOM_SET_SIZE`).
    pub boredom_set_size: usize,
    /// Stop running algorithms once consensus can no longer be reached
    /// (`RUN_OPTIMIZED_WORKFLOW`); the verdict is the same either way.
    pub run_optimized_workflow: bool,
    /// Write a Skyline-compatible `anomalies.json` (JSONP) here after each run with
    /// anomalies (`ANOMALY_DUMP`). Empty = off.
    pub anomaly_dump: String,
    /// Keys per MGET when reading series from Redis.
    pub mget_chunk: usize,
    /// Detectors that run: `skyline` (the algorithms above) and/or `stream` (the per-point
    /// stream detector, docs/stream.md).
    pub detectors: Vec<String>,
    /// How their verdicts make an anomaly: `any`, `all`, `skyline` or `stream`.
    pub combine: String,
    /// How much lower than the rest of the daemon the analysis threads run (a Linux nice
    /// increment, 0..=19; 0 = same priority): when the cores are busy, ingest keeps its
    /// pace and the analysis run takes longer, rather than the other way round.
    pub worker_nice: i32,
}

/// Detector names `[analyzer] detectors` accepts.
pub const DETECTOR_NAMES: [&str; 2] = ["skyline", "stream"];

impl Default for AnalyzerSettings {
    fn default() -> Self {
        AnalyzerSettings {
            enabled: true,
            run_every_secs: 60,
            workers: 0,
            algorithms: ALGORITHM_NAMES.map(String::from).to_vec(),
            consensus: 6,
            min_tolerable_length: 100,
            stale_period_secs: 500,
            max_tolerable_boredom: 100,
            boredom_set_size: 1,
            run_optimized_workflow: true,
            anomaly_dump: String::new(),
            mget_chunk: 100,
            // Measured on NAB (docs/stream.md): the stream detector alone scores best on all
            // three profiles (74.6 / 68.2 / 78.8 against 66.4 / 50.0 / 74.6 for "any"):
            // Skyline's verdicts add false alarms and, since the ART version, no window.
            // Skyline's algorithms still run for the run statistics and for Mirage.
            detectors: vec!["skyline".into(), "stream".into()],
            combine: "stream".into(),
            // Measured with `skyline bench ingest --stream-history 1440` (docs/stream.md).
            worker_nice: 10,
        }
    }
}

impl AnalyzerSettings {
    /// Adds every problem to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        for a in &self.algorithms {
            if !ALGORITHM_NAMES.contains(&a.as_str()) {
                problems.push(format!(
                    "[analyzer] algorithms: unknown algorithm {a:?} (known: {})",
                    ALGORITHM_NAMES.join(", ")
                ));
            }
        }
        if self.algorithms.is_empty() {
            problems.push("[analyzer] algorithms: must not be empty".into());
        }
        if self.consensus == 0 || self.consensus > self.algorithms.len() {
            problems.push(format!(
                "[analyzer] consensus: must be between 1 and the number of algorithms ({})",
                self.algorithms.len()
            ));
        }
        if self.run_every_secs == 0 {
            problems.push("[analyzer] run_every_secs: must be positive".into());
        }
        for d in &self.detectors {
            if !DETECTOR_NAMES.contains(&d.as_str()) {
                problems.push(format!(
                    "[analyzer] detectors: unknown detector {d:?} (known: skyline, stream)"
                ));
            }
        }
        if self.detectors.is_empty() {
            problems.push("[analyzer] detectors: must not be empty".into());
        }
        if crate::analyze::streaming::Combine::parse(&self.combine).is_none() {
            problems.push(format!(
                "[analyzer] combine: must be any, all, skyline or stream, not {:?}",
                self.combine
            ));
        } else if (self.combine == "stream" && !self.runs("stream"))
            || (self.combine == "skyline" && !self.runs("skyline"))
        {
            problems.push(format!(
                "[analyzer] combine = {:?} needs that detector in [analyzer] detectors",
                self.combine
            ));
        }
        if self.mget_chunk == 0 {
            problems.push("[analyzer] mget_chunk: must be positive".into());
        }
        if !(0..=19).contains(&self.worker_nice) {
            problems.push(format!(
                "[analyzer] worker_nice: must be 0 to 19, not {}",
                self.worker_nice
            ));
        }
    }
}

impl AnalyzerSettings {
    /// Whether detector `name` is in `detectors`.
    pub fn runs(&self, name: &str) -> bool {
        self.detectors.iter().any(|d| d == name)
    }
}
