//! Mirage: a second look over days before anyone is paged (Skyline's Mirage).
//!
//! * **Who**: metrics whose first matching smtp `[[alerts]]` rule has
//!   `second_order_resolution_hours` > 24 (`alert::RuleSet::mirage_hours`).
//! * **Hand-off** ([`messages`]): the Analyzer neither records nor alerts their anomalies; it
//!   SADDs a member to `analyzer.waterfall_alerts.sent_to_mirage` and sends a
//!   [`MirageCheck`] over a bounded channel (`[mirage] queue_max`; full → the Analyzer alerts
//!   at once). Whatever Mirage has not decided within `waterfall_secs` (300) the Analyzer
//!   alerts (the waterfall), so a stuck Mirage never silences an alert.
//! * **Actors**: [`Mirage`] (own arbiter; [`actor`]) decides checks; [`HistoryKeeper`]
//!   (own arbiter; [`history`]) keeps `mirage.history.<metric>`.
//! * **Days** come from graphite-web ([`graphite`]) when `[graphite] url` is set, else — and
//!   when Graphite fails — from the built-in history.
//! * **Analysis** ([`analysis`], pure): the nine algorithms with MIRAGE_CONSENSUS.
//! * **Redis keys**: reads `metrics.<m>`, `mirage.history.<m>`,
//!   `mirage.last_alert.smtp.<m>` (TTL); writes `mirage.history.<m>`,
//!   `mirage.current_anomalies`, `mirage.run_stats`, `mirage` (heartbeat), SREM on
//!   `analyzer.waterfall_alerts.sent_to_mirage`. Alerts go out with Mirage's own
//!   `mirage.last_alert.<alerter>.<m>` keys (set by the alert actor).
//! * **Cluster mode** (docs/cluster.md): checks come only from this node's Analyzer (which
//!   claimed the anomalies first); the history keeper keeps only this node's metrics; this
//!   node's decisions go to `mirage.current_anomalies.<node>` (TTL 120 s) and
//!   `mirage.current_anomalies` is the merge of the live nodes' lists; `mirage.run_stats` is
//!   the last node's.
//! * **Outbound**: `panorama::RecordAnomaly` (app `mirage`) and `alert::AlertAnomaly`,
//!   `do_send`, one per anomalous check; with Ionosphere on, `panorama::KeepTrainingData`
//!   (the series analysed, so the anomaly can be trained on) and, for Ionosphere-enabled
//!   metrics, `ionosphere::messages::CheckAnomaly` instead of recording and alerting (the
//!   matcher does both when no profile matches; the Ionosphere waterfall when it does not
//!   decide in 300 s).
//! * **Backpressure**: see [`messages`] (bounded channel, Analyzer alerts when full) and the
//!   actors' docs.

pub mod actor;
pub mod analysis;
pub mod config;
pub mod graphite;
pub mod history;
pub mod messages;

pub use actor::{
    node_current_key, Mirage, MirageRunStats, MirageSetup, CURRENT_ANOMALIES_KEY, RUN_STATS_KEY,
};
pub use config::MirageSettings;
pub use history::{keep_round, keep_round_as, HistoryKeeper, KeeperSettings, MiragePredicate};
pub use messages::{check_channel, CheckSender, MirageCheck, WATERFALL_KEY};

/// Mirage's errors.
#[derive(Debug, thiserror::Error)]
pub enum MirageError {
    /// graphite-web failed or answered nothing usable.
    #[error("graphite-web {peer} failed for metric {metric}: {reason}")]
    Graphite {
        /// The metric.
        metric: String,
        /// Graphite's address (credentials redacted).
        peer: String,
        /// What went wrong.
        reason: String,
    },
}
