//! Messages the Boundary actor accepts, and what a run reports.

use actix::Message;
use serde::Serialize;

use super::error::BoundaryError;
use crate::model::Anomaly;

/// Run Boundary once now. The actor's timer sends it every `[boundary] run_every_secs`;
/// anyone may send it (a run already going answers [`BoundaryError::Busy`]). The anomalies
/// of the run are sent to Panorama and the alerters before the reply.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<RunReport, BoundaryError>")]
pub struct RunBoundary;

/// One check that found its metric anomalous.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// Base name.
    pub metric: String,
    /// The rule's algorithm.
    pub algorithm: String,
    /// The last raw value.
    pub datapoint: f64,
    /// Timestamp of the last point.
    pub timestamp: i64,
    /// Consecutive detections so far (`anomaly_seen.<algorithm>.<metric>`).
    pub times_seen: u64,
    /// The rule's `alert_threshold` (at least 1).
    pub threshold: u32,
    /// The rule's alerters.
    pub alerters: Vec<String>,
    /// The rule's `expiration_secs` (TTL of its `last_alert.boundary.*` keys).
    pub expiration_secs: u64,
    /// `times_seen >= threshold`: recorded in Panorama and alerted.
    pub reported: bool,
}

/// Totals of one run (also written to `boundary.run_stats`, without `anomalies`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    /// Epoch seconds at the start of the run.
    pub timestamp: i64,
    /// Seconds the run took.
    pub run_time: f64,
    /// Members of `metrics.unique_metrics`.
    pub total_metrics: usize,
    /// Metrics with at least one rule.
    pub boundary_metrics: usize,
    /// (metric, rule) checks run.
    pub total_checks: usize,
    /// Cluster mode: the members of `metrics.unique_metrics` assigned to this node (None on
    /// one Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_assigned: Option<usize>,
    /// Exception name → count (every name present).
    pub exception_stats: Vec<(String, usize)>,
    /// Checks dropped by a rule's `excludes`.
    pub excluded: usize,
    /// Rules over `max_metrics_per_rule`, as `#<n> <pattern> <algorithm>: <matched>`.
    pub capped_rules: Vec<String>,
    /// Every anomalous check, reported or still below its threshold.
    pub detections: Vec<Detection>,
    /// What went to Panorama: one per metric (app `boundary`), its reported algorithms as
    /// `triggered_algorithms`.
    pub anomalies: Vec<Anomaly>,
}
