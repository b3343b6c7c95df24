//! Alert: Skyline's alerters (`ALERTS`, `alert_smtp`, `alert_slack`, `alert_http`,
//! `alert_syslog`, `alert_pagerduty`) and a Prometheus Alertmanager alerter, fed by the
//! Analyzer, Mirage, Boundary and Thunder.
//!
//! * **Actor**: [`Alerts`] (on the monitoring arbiter): matches each anomaly against the
//!   `[[alerts]]` rules ([`rules`], pure), applies the per-metric, per-alerter expiration and
//!   queues the alert for that alerter's delivery worker, an async task per alerter
//!   ([`Channel`]: [`smtp`], [`slack`], [`webhook`], [`syslog`], [`alertmanager`],
//!   [`pagerduty`]).
//! * **Messages** ([`messages`]): [`AlertAnomaly`] from the Analyzer and [`SystemAlert`] from
//!   Thunder, both sent with `do_send`; senders import nothing else from here.
//!   [`AlertRouted`] (Boundary) names its alerters and `last_alert` keys itself.
//! * **Redis keys**: `last_alert.<alerter>.<metric>` — string, value `int(anomaly
//!   timestamp)` (Skyline G's), TTL = the matching rule's `expiration_secs`; written with
//!   `SET … EX … NX`, so one alert per metric per alerter per expiration, compatible with a
//!   Python Skyline sharing the Redis. Read by nothing else.
//! * **Catch-all**: every anomaly is logged (`Analyzer - Anomalous metric: <name> (value:
//!   <v>)`) and, with `[alerters.syslog] all_anomalies`, sent to syslog without expiration
//!   (Skyline's `SYSLOG_ENABLED`), whatever the rules say. Panorama records every anomaly on
//!   its own.
//! * **Backpressure**: nothing here ever makes the Analyzer wait. Each alerter has a bounded
//!   queue (`[alerters] queue_max`); when it is full the alert is dropped, counted and logged,
//!   and its `last_alert` key is left unset so the next run alerts again. Deliveries are
//!   retried with back-off (`max_attempts`, `retry_initial_ms` doubling to
//!   `retry_max_secs`), each attempt capped at `timeout_secs`; failures are logged at ERROR
//!   naming the alerter, the metric and the peer (never a password, webhook path or header
//!   value). See [`actor`].
//! * **Shutdown** ([`ShutdownAlerts`], from `app`): queued alerts are delivered within the
//!   budget; what is left (the one in flight included) is appended to
//!   `[data] dir/alerts-pending.jsonl` (`{"alerter", "notification"}` per line, fsynced) and
//!   queued again, then the file removed, at the next start — at least once: an alert cut off
//!   mid-delivery may arrive twice.
//! * [`graph`] draws the SVG graph for emails (pure); [`channel::test_alert`] backs
//!   `skyline alert-test`.

pub mod actor;
pub mod alertmanager;
pub mod channel;
pub mod config;
mod error;
pub mod graph;
pub mod messages;
pub mod notification;
pub mod pagerduty;
pub mod rules;
pub mod slack;
pub mod smtp;
pub mod syslog;
pub mod webhook;

pub use actor::{last_alert_key, last_alert_key_for, Alerts, AlertsSetup, RetryPolicy};
pub use channel::{build_channels, test_alert, Channel, TestOutcome};
pub use config::{AlertRule, AlertersSettings};
pub use error::AlertError;
pub use messages::{
    AlertAnomaly, AlertRoute, AlertRouted, ShutdownAlerts, ShutdownReport, SystemAlert,
    SystemStatus,
};
pub use notification::{Context, Notification};
pub use rules::RuleSet;
