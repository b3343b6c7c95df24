//! `[thunder]`: self-monitoring checks (Skyline's Thunder) and how often each may alert.

use serde::{Deserialize, Serialize};

/// The checks Thunder knows.
pub const CHECK_NAMES: [&str; 5] = ["no_data", "analyzer_overrun", "redis", "database", "spool"];

/// `[thunder]`. Each check alerts once its condition has held for `<check>_after_secs`,
/// again every `<check>_expiry_secs` while it lasts, and sends a recovery notice when it
/// clears (`recovery_notices`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ThunderSettings {
    /// Run the checks.
    pub enabled: bool,
    /// Seconds between two rounds of checks.
    pub check_interval_secs: u64,
    /// Checks to run (of `no_data`, `analyzer_overrun`, `redis`, `database`, `spool`).
    pub checks: Vec<String>,
    /// Alerters that receive Thunder alerts; empty = every configured alerter.
    pub alerters: Vec<String>,
    /// Send a notice when a condition that alerted clears.
    pub recovery_notices: bool,
    /// No datapoint received (listeners and flux) for this long.
    pub no_data_after_secs: u64,
    /// Repeat interval of the no-data alert.
    pub no_data_expiry_secs: u64,
    /// An analysis run overran `[analyzer] run_every_secs`, or none finished for three
    /// intervals, for this long (0 = at the first check that sees it).
    pub analyzer_overrun_after_secs: u64,
    /// Repeat interval of the analyzer alert.
    pub analyzer_overrun_expiry_secs: u64,
    /// Redis did not answer PING for this long.
    pub redis_after_secs: u64,
    /// Repeat interval of the Redis alert.
    pub redis_expiry_secs: u64,
    /// The Panorama database did not answer `SELECT 1` for this long.
    pub database_after_secs: u64,
    /// Repeat interval of the database alert.
    pub database_expiry_secs: u64,
    /// Panorama's or flux's spool was non-empty and not shrinking for this long.
    pub spool_after_secs: u64,
    /// Repeat interval of the spool alert.
    pub spool_expiry_secs: u64,
}

impl Default for ThunderSettings {
    fn default() -> Self {
        ThunderSettings {
            enabled: true,
            check_interval_secs: 60,
            checks: CHECK_NAMES.map(String::from).to_vec(),
            alerters: Vec::new(),
            recovery_notices: true,
            no_data_after_secs: 300,
            no_data_expiry_secs: 3600,
            analyzer_overrun_after_secs: 0,
            analyzer_overrun_expiry_secs: 3600,
            redis_after_secs: 60,
            redis_expiry_secs: 900,
            database_after_secs: 60,
            database_expiry_secs: 900,
            spool_after_secs: 600,
            spool_expiry_secs: 3600,
        }
    }
}

impl ThunderSettings {
    /// True when `check` is listed.
    pub fn runs(&self, check: &str) -> bool {
        self.enabled && self.checks.iter().any(|c| c == check)
    }

    /// Adds every problem to `problems`; `configured` are the configured alerter names.
    pub fn validate(&self, configured: &[&str], problems: &mut Vec<String>) {
        if self.check_interval_secs == 0 {
            problems.push("[thunder] check_interval_secs: must be positive".into());
        }
        for c in &self.checks {
            if !CHECK_NAMES.contains(&c.as_str()) {
                problems.push(format!(
                    "[thunder] checks: unknown check {c:?} (known: {})",
                    CHECK_NAMES.join(", ")
                ));
            }
        }
        for a in &self.alerters {
            if !configured.contains(&a.as_str()) {
                problems.push(format!(
                    "[thunder] alerters: {a:?} is not a configured alerter ([alerters.{a}])"
                ));
            }
        }
        for (key, v) in [
            ("no_data_expiry_secs", self.no_data_expiry_secs),
            (
                "analyzer_overrun_expiry_secs",
                self.analyzer_overrun_expiry_secs,
            ),
            ("redis_expiry_secs", self.redis_expiry_secs),
            ("database_expiry_secs", self.database_expiry_secs),
            ("spool_expiry_secs", self.spool_expiry_secs),
        ] {
            if v == 0 {
                problems.push(format!("[thunder] {key}: must be positive"));
            }
        }
    }
}
