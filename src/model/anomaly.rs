//! The anomaly record the Analyzer sends to Panorama (and alerters), carrying what Skyline's
//! Panorama check file carried.

use serde::{Deserialize, Serialize};

/// One anomaly, as found by an analysis run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// Graphite metric name (base_name, without `metrics.`).
    pub metric: String,
    /// Timestamp of the last point of the analysed series (Skyline's `metric_timestamp`).
    pub timestamp: i64,
    /// The last raw value of the analysed series (not tail_avg).
    pub datapoint: f64,
    /// Timestamp of the *second* point of the series (Skyline's check-file `from_timestamp`).
    pub from_timestamp: i64,
    /// `timestamp - from_timestamp` (what Panorama stores as `full_duration`).
    pub full_duration: i64,
    /// Algorithms that were run, in order.
    pub algorithms_run: Vec<String>,
    /// Algorithms whose vote was not False and not None (truthy).
    pub triggered_algorithms: Vec<String>,
    /// The Skyline app that found it: `analyzer` for our Analyzer.
    pub app: String,
    /// Where the data came from: `graphite` for Horizon-fed metrics.
    pub source: String,
    /// Host name of the instance that found it (`added_by`).
    pub host: String,
    /// Epoch seconds when the anomaly was found (`added_at`).
    pub added_at: i64,
}

/// One entry of a stage's `<stage>.current_anomalies` list (`analyzer.`, `boundary.`): the
/// fields the Now page reads, borrowed from an [`Anomaly`].
#[derive(Debug, Serialize)]
pub struct CurrentAnomaly<'a> {
    /// Base name.
    pub metric: &'a str,
    /// Timestamp of the anomalous point.
    pub timestamp: i64,
    /// Its value.
    pub datapoint: f64,
    /// Algorithms that triggered.
    pub triggered_algorithms: &'a [String],
    /// Algorithms run.
    pub algorithms_run: &'a [String],
}

impl<'a> From<&'a Anomaly> for CurrentAnomaly<'a> {
    fn from(a: &'a Anomaly) -> Self {
        CurrentAnomaly {
            metric: &a.metric,
            timestamp: a.timestamp,
            datapoint: a.datapoint,
            triggered_algorithms: &a.triggered_algorithms,
            algorithms_run: &a.algorithms_run,
        }
    }
}

/// The JSON list a stage writes to its `<stage>.current_anomalies` key.
pub fn current_anomalies_json(anomalies: &[Anomaly]) -> serde_json::Result<String> {
    let list: Vec<CurrentAnomaly<'_>> = anomalies.iter().map(CurrentAnomaly::from).collect();
    serde_json::to_string(&list)
}
