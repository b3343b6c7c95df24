//! Endpoint monitoring, stored: per-request records, outliers with their context, and the
//! statistics behind the monitor views (docs/monitor.md).
//!
//! * Owns the actor [`writer::MonitorWriter`] (own arbiter) and the Panorama database tables
//!   `monitor_request_blocks`, `monitor_outliers` and `monitor_batches` (queries in [`crate::db::monitor`]). No Redis
//!   keys.
//! * Messages ([`messages`]): request records taken from a [`messages::HitSource`] (the
//!   webapp's monitor keeps them in memory), outliers as [`messages::Record`]s through a
//!   bounded channel ([`writer::RecordSender`]), [`messages::FlushMonitor`] (shutdown, tests), and the
//!   request [`messages::Identity`] that basic auth and flux put in a request's extensions.
//! * Levels per route ([`config::MonitorSettings::level_of`], FMD's model): 0 = last request
//!   time only (in memory), 1 = a record per request, 2 = plus outliers (slower than
//!   `outlier_factor` × the route's mean, at most `outliers_per_sec` per route and second) with
//!   query, headers (secrets redacted), CPU, RSS and the time breakdown, 3 = plus the
//!   breakdown of every request.
//! * [`spans`]: the task-local span recorder the middleware installs; Redis, SQL, Graphite and
//!   template calls in the webapp add their time to it.
//! * [`stats`]: pure functions (quantiles, box plots, Mann–Whitney U).
//!
//! Backpressure: the middleware never waits: a full queue (`[monitor] queue_max` records
//! kept, or outliers in the channel) drops the record and counts it (`skyline_monitor_dropped_total`). The writer batches
//! (`batch_max` per transaction, every `flush_ms`), each database operation bounded by
//! `[panorama] db_timeout_secs`; a failed batch is kept (up to `queue_max`, then the oldest
//! are dropped and counted) and retried, failures counted and logged at most once a minute.

pub mod block;
pub mod config;
pub mod error;
pub mod messages;
pub mod report;
pub mod spans;
pub mod stats;
pub mod sysinfo;
pub mod writer;

pub use config::{LevelRule, MonitorSettings};
pub use error::MonitorError;
pub use messages::{
    Breakdown, ClientIp, FlushMonitor, Hit, HitSource, Identity, OutlierRecord, Record,
    RequestRecord,
};
pub use writer::{channel, MonitorWriter, RecordSender};
