//! Boundary: Skyline's Boundary — operator rules (`[[boundary.rules]]`, Skyline's
//! `BOUNDARY_METRICS`) for the few key metrics where 3-sigma is the wrong tool: a threshold
//! (`greater_than`, `less_than`) or a drop-off cliff (`detect_drop_off_cliff`) on the most
//! recent Redis data, one algorithm per (metric, rule), no consensus (stages-spec §2).
//!
//! * **Actor**: [`Boundary`] (system arbiter), a timer every `[boundary] run_every_secs`
//!   (60) running [`run_cycle`]. **Messages in**: [`RunBoundary`] (the timer's, or anyone's)
//!   → [`RunReport`]. **Messages out** (`do_send`): `panorama::RecordAnomaly` (app
//!   `boundary`, source `redis`, `from_timestamp` = the series' *first* point) and
//!   `alert::AlertRouted` to the rule's `alerters`.
//! * **Rules** ([`rules`], pure): patterns matched as `[[alerts]]` patterns are; last
//!   matching rule per algorithm wins; a rule matching more than `max_metrics_per_rule` (200)
//!   metrics is not applied to them; the winning rule's `excludes` skip a metric.
//! * **Algorithms** ([`algorithms`], pure): the three exactly as Skyline's, behind the
//!   TooShort (cliff only) / Stale / Boring (cliff and less_than) gates.
//! * **Redis keys** read: `metrics.unique_metrics`, `metrics.<name>`. Written: `boundary`
//!   (heartbeat, TTL 120), `anomaly_seen.<algorithm>.<name>` (consecutive detections when
//!   `alert_threshold > 1`: INCR + EXPIRE `(threshold + 1) × 60`, DEL on a run that does not
//!   detect), `boundary.current_anomalies` (JSON list shaped like
//!   `analyzer.current_anomalies`, rewritten every run), `boundary.run_stats` (JSON). The
//!   alert actor writes `last_alert.boundary.<alerter>.<name>.<algorithm>` (TTL = the rule's
//!   `expiration_secs`, `SET NX`) before queueing an alert.
//! * **Cluster mode** ([`Boundary::with_cluster`], docs/cluster.md): the rules are resolved
//!   over every metric, then a node checks only the metrics the rendezvous assignment
//!   (`store::cluster`) gives it, the Analyzer's assignment; each anomaly is claimed with
//!   `SET panorama.last_check.boundary.<name> <node> NX EX` before it goes to Panorama and
//!   the alerters; the node writes `boundary.current_anomalies.<node>` (TTL 3 runs) and
//!   `boundary.current_anomalies` as the merge of the live nodes' lists; `boundary.run_stats`
//!   is the last node's run (with its `metrics_assigned`). The `anomaly_seen.*` counters are
//!   in Redis, so a metric that moves to another node keeps its count.
//! * **Backpressure**: one run at a time (a tick during a run is skipped and counted); at most
//!   one Panorama message per anomalous metric and one alert message per (metric, algorithm)
//!   per run, `do_send` to actors whose handlers never wait on I/O. A Redis failure ends the
//!   run (logged at ERROR, counted); the next run retries.

pub mod actor;
pub mod algorithms;
pub mod config;
mod error;
pub mod messages;
pub mod rules;

pub use actor::{
    alerts_of, anomaly_seen_key, last_alert_key, node_current_key, run_cycle, run_cycle_in,
    Boundary, BoundarySetup, CycleSettings, CURRENT_ANOMALIES_KEY, HEARTBEAT_KEY, RUN_STATS_KEY,
};
pub use config::{BoundaryRule, BoundarySettings};
pub use error::BoundaryError;
pub use messages::{Detection, RunBoundary, RunReport};
pub use rules::RuleBook;

impl BoundarySettings {
    /// The gates these settings describe.
    pub fn gates(&self) -> algorithms::Gates {
        algorithms::Gates {
            stale_period: self.stale_period_secs,
            min_tolerable_length: self.min_tolerable_length,
            max_tolerable_boredom: self.max_tolerable_boredom,
            boredom_set_size: self.boredom_set_size,
        }
    }
}
