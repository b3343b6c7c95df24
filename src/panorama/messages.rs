//! Messages the Panorama actor accepts, and the stats snapshot it replies with.
//!
//! Senders use `Addr::do_send`, which never blocks and never fails for a running actor: the
//! mailbox of a `SyncArbiter` actor is unbounded, and anomalies arrive at a low rate (at most
//! one per metric per app per 15 minutes gets recorded). Never `send(...).await` a
//! [`RecordAnomaly`] from an analysis loop: the reply would wait for a database insert.

use actix::Message;
use serde::Serialize;

use crate::model::Anomaly;

/// Record one anomaly (dedup, then insert, or spool when the database is unavailable).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct RecordAnomaly(pub Anomaly);

/// Keep the series an anomaly was found in (`ionosphere_training_data`), so an operator can
/// train Ionosphere on it later (Skyline's training data, spec §0.3). Sent with the
/// anomaly's [`RecordAnomaly`]; kept `training_keep_secs`. Best effort: a database failure is
/// counted and logged, never retried (the anomaly itself is spooled as ever).
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct KeepTrainingData(pub crate::db::ionosphere::TrainingData);

/// Retry spooled inserts if the back-off allows. Sent every `retry_tick` by the timer that
/// [`crate::panorama::Panorama::start`] spawns; may also be sent by anyone at any time.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Retry;

/// Insert the anomalies accepted so far. Panorama sends this to itself after accepting an
/// anomaly; because it queues behind the messages already in the mailbox, a burst of
/// anomalies is inserted in one transaction (group commit) while a lone one is inserted at
/// once. Harmless to send from outside.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Ask for a [`PanoramaStats`] snapshot (for `/metrics`). Answered after the messages
/// already queued (whose anomalies it first inserts or spools), so it can take as long as
/// their inserts (bounded by the pool timeouts).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "PanoramaStats")]
pub struct GetStats;

/// Counters since the actor started, plus current state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PanoramaStats {
    /// `RecordAnomaly` messages handled.
    pub received: u64,
    /// Anomalies inserted (directly or from the spool).
    pub inserted: u64,
    /// Of `inserted`, those that went through the spool.
    pub replayed: u64,
    /// Dropped by the dedup window.
    pub dedup_skipped: u64,
    /// Dropped because older than `check_max_age_secs` on arrival.
    pub too_old: u64,
    /// Dropped because unusable (empty metric name, non-finite datapoint).
    pub invalid: u64,
    /// Written to the spool.
    pub spooled: u64,
    /// Waiting in the spool now.
    pub spool_depth: u64,
    /// Spooled anomalies found already recorded on replay (not inserted again).
    pub replay_duplicates: u64,
    /// Failed insert attempts (each failed batch counts once).
    pub insert_failures: u64,
    /// Anomalies the database refused repeatedly while reachable, moved to `rejected.jsonl`.
    pub rejected: u64,
    /// Anomalies that could be neither inserted nor spooled.
    pub lost: u64,
    /// Open dedup windows.
    pub dedup_windows: u64,
    /// Whether the last database operation succeeded.
    pub db_available: bool,
    /// The last database or spool error (credentials redacted).
    pub last_error: Option<String>,
}
