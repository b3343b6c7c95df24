//! Panorama: records every anomaly the Analyzer finds in the `anomalies` table (Skyline's
//! Panorama, core-spec §7), so the webapp can search them.
//!
//! * **Actor**: [`Panorama`], a `SyncArbiter` actor (one thread: diesel blocks, and a single
//!   writer keeps inserts in order). Start it with [`Panorama::start`], which also spawns the
//!   retry timer.
//! * **Messages**: [`RecordAnomaly`] (sent with `do_send` by the Analyzer; never blocks the
//!   sender), [`Retry`] (timer), [`GetStats`] → [`PanoramaStats`] (for `/metrics`), and
//!   [`Flush`], which Panorama sends itself for group commit: anomalies accepted in a burst
//!   are inserted in one transaction, a lone one immediately.
//! * **Tables written** (owned by [`crate::db`]): `anomalies`; the lookup tables `metrics`,
//!   `apps`, `hosts`, `sources`, `algorithms`, whose rows are created on first sight (in the
//!   anomaly's transaction); and this port's `panorama_metric_counts` / `panorama_state`,
//!   the count summary folded every `counts_refresh` on [`Retry`] ticks. With `auto_migrate`
//!   it also runs the migrations on first contact with the database.
//! * **Dedup** ([`dedup`]): one anomaly per metric per app per `expiry_secs` (900), measured
//!   from the anomaly timestamp; `webapp` and `crucible` bypass it; anomalies whose data was
//!   older than `check_max_age_secs` (300) when they were detected (`added_at`) are dropped.
//!   Survives restarts: rebuilt from the database and the spool. A lost anomaly reopens its
//!   window.
//! * **Backpressure / durability** ([`spool`]): nothing accepted is dropped. Every database
//!   operation runs through `db::Bounded`, so the actor waits at most the pool's `op_timeout`
//!   (`[panorama] db_timeout_secs`) whatever the server does; while an operation that timed
//!   out is still running no new one starts (its late commit must be visible to the replay's
//!   duplicate check). When the database is down, hangs, is slow or refuses an
//!   insert, the anomaly is appended and fsynced to the spool file, and every later anomaly
//!   goes behind it until the spool has drained, so inserts stay in arrival order. The spool
//!   is retried with exponential back-off (`retry_initial` doubling to `retry_max`) on each
//!   [`Retry`] tick and each new anomaly, and replayed at start. While the back-off runs, new
//!   anomalies cost one fsync and no database round trip. Replays skip anomalies already in
//!   the database, so a crash between insert and checkpoint does not duplicate them. An
//!   anomaly the database refuses `max_attempts` times while reachable goes to
//!   `rejected.jsonl` rather than blocking the rest. The actor's mailbox is unbounded and in
//!   memory: anomalies queued there when the process dies are lost (the Analyzer finds them
//!   again on its next run if they are still anomalous).
//! * **Training data** ([`KeepTrainingData`], sent with an anomaly): the series it was found
//!   in goes to `ionosphere_training_data` (`db::ionosphere`), best effort (a failure is
//!   counted and logged once a minute, not spooled), and is deleted after
//!   `training_keep_secs` (checked every 10 minutes on [`Retry`] ticks).
//! * **Self-metrics**: after every message the actor adds the change in its [`PanoramaStats`]
//!   to the process-wide counters (`skyline_panorama_anomalies_inserted_total`, …) and sets
//!   the `skyline_panorama_spool_depth` and `skyline_panorama_database_available` gauges
//!   (`telemetry::metrics`); observing only, it changes nothing of the above.

pub mod actor;
pub mod dedup;
pub mod messages;
pub mod spool;

pub use actor::{Panorama, PanoramaError, PanoramaSettings};
pub use dedup::Dedup;
pub use messages::{Flush, GetStats, KeepTrainingData, PanoramaStats, RecordAnomaly, Retry};
pub use spool::{Spool, SpoolError, SpoolRecord};
