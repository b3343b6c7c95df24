//! What the Analyzer hands to Mirage, and the Redis keys both sides share. Senders import
//! only this module.
//!
//! The hand-off is a bounded `tokio::sync::mpsc` channel of [`MirageCheck`]s
//! (`[mirage] queue_max`). The Analyzer uses `try_send`: when the channel is full the check is
//! **alerted and recorded by the Analyzer at once** (counted
//! `skyline_mirage_checks_queue_full_total`, logged once a minute), never dropped.

use serde::{Deserialize, Serialize};

use crate::model::Anomaly;

/// Set of checks handed to Mirage and not decided yet (Skyline's key; members are this
/// port's JSON [`WaterfallItem`], not Skyline's Python literal). The Analyzer SADDs before
/// sending and, every run, alerts the members older than `[mirage] waterfall_secs` that it
/// can SREM; Mirage SREMs a member as soon as it has decided, and acts only when its SREM
/// removed it, so a check is alerted exactly once whichever side gets there first.
pub const WATERFALL_KEY: &str = "analyzer.waterfall_alerts.sent_to_mirage";

/// `analyzer.mirage_check_sent.<timestamp>.<metric>` (TTL 300 s): one check per anomaly
/// timestamp (Skyline's dedupe key).
pub fn check_sent_key(timestamp: i64, metric: &str) -> String {
    format!("analyzer.mirage_check_sent.{timestamp}.{metric}")
}

/// A Mirage check: the Analyzer's anomaly, to be re-analysed over `hours`.
#[derive(Debug, Clone)]
pub struct MirageCheck {
    /// The Analyzer's anomaly (metric, value, timestamp, triggered algorithms, …).
    pub anomaly: Anomaly,
    /// `second_order_resolution_hours` of the metric's smtp rule.
    pub hours: u64,
    /// The exact member of [`WATERFALL_KEY`] for this check.
    pub waterfall_item: String,
}

/// Metric name → its Mirage hours (None: not a Mirage metric); built by `app` from the
/// `[[alerts]]` rules, shared by the Analyzer's hand-off and the history keeper.
pub type MiragePredicate = std::sync::Arc<dyn Fn(&str) -> Option<u64> + Send + Sync>;

/// The send side of the hand-off.
pub type CheckSender = tokio::sync::mpsc::Sender<MirageCheck>;
/// The receive side of the hand-off (Mirage's).
pub type CheckReceiver = tokio::sync::mpsc::Receiver<MirageCheck>;

/// The bounded hand-off channel.
pub fn check_channel(queue_max: usize) -> (CheckSender, CheckReceiver) {
    tokio::sync::mpsc::channel(queue_max.max(1))
}

/// One member of [`WATERFALL_KEY`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaterfallItem {
    /// Base name.
    pub metric: String,
    /// Anomaly timestamp.
    pub timestamp: i64,
    /// Anomalous value.
    pub value: f64,
    /// Epoch seconds when it was handed to Mirage.
    pub added_at: i64,
    /// Mirage hours.
    pub hours: u64,
    /// The Analyzer's anomaly, alerted and recorded as is when the waterfall fires.
    pub anomaly: Anomaly,
}

impl WaterfallItem {
    /// The member string (JSON).
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `mirage.current_anomalies` / `analyzer.current_anomalies` entry shape.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CurrentEntry {
    /// Base name.
    pub metric: String,
    /// Anomaly timestamp.
    pub timestamp: i64,
    /// Value.
    pub datapoint: f64,
    /// Algorithms that voted True.
    pub triggered_algorithms: Vec<String>,
    /// Algorithms run.
    pub algorithms_run: Vec<String>,
}

/// A metric Mirage cleared (found not anomalous over its days), in `mirage.run_stats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClearedEntry {
    /// Base name.
    pub metric: String,
    /// The Analyzer's anomaly timestamp.
    pub timestamp: i64,
    /// The Analyzer's anomalous value.
    pub datapoint: f64,
    /// Hours Mirage looked at.
    pub hours: u64,
    /// Algorithms that triggered on the 24 h (the Analyzer's).
    pub analyzer_triggered: Vec<String>,
    /// Algorithms that triggered on the days (fewer than MIRAGE_CONSENSUS).
    pub triggered_algorithms: Vec<String>,
    /// `graphite` or `history`.
    pub source: String,
}
