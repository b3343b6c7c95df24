//! Thunder: the daemon watching itself (Skyline's Thunder), alerting through the configured
//! alerters when it degrades.
//!
//! * **Actor**: [`Thunder`] (monitoring arbiter), a timer every `[thunder]
//!   check_interval_secs`. **Messages out**: [`crate::alert::SystemAlert`] via `do_send` to
//!   the alert actor, which delivers it to `[thunder] alerters` (all configured alerters by
//!   default). No messages in.
//! * **Checks** ([`checks`], pure): `no_data` (no datapoint received for
//!   `no_data_after_secs`), `analyzer_overrun` (a run longer than `run_every_secs`, or no run
//!   finishing for three intervals), `redis` (PING fails), `database` (Panorama's database
//!   does not answer `SELECT 1`), `spool` (Panorama's or flux's spool non-empty and not
//!   shrinking). Each alerts once its condition has held `<check>_after_secs`, again every
//!   `<check>_expiry_secs` while it lasts, and sends a recovery notice when it clears.
//!   Alerts are logged at ERROR, recoveries at INFO, and counted.
//! * **State**: in memory only (Redis may be what is down); no keys, no tables.
//! * **Backpressure**: one round at a time (a slow probe skips ticks); probes are capped
//!   (Redis 5 s, database 10 s on a blocking thread); alerts are `do_send`, and the alert
//!   actor's queues are bounded.
//!
//! Counters read are process-wide (one daemon per process); the received count is this
//! instance's (handed in by `app`).

mod actor;
pub mod checks;
pub mod config;

pub use actor::{Probes, ReceivedCounter, Thunder};
pub use checks::{Checks, Labels};
pub use config::ThunderSettings;
