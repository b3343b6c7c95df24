//! Skyline's Panorama dedup: at most one recorded anomaly per metric per app within
//! `expiry_secs`, measured from the anomaly's own timestamp (core-spec §7.2, pitfall 19).
//!
//! Skyline sets the Redis key `panorama.last_check.<app>.<metric>` after an insert with a TTL
//! of `expiry − (now − metric_timestamp)`, or 60 s when that is below 1; while the key exists
//! further anomalies for that metric and app are dropped. This keeps the same expiry instants
//! in memory. Apps in the bypass list (`webapp`, `crucible`) are never deduplicated.
//!
//! Restarts: the state is rebuilt from the database's newest anomaly per metric and app and
//! from the spool's pending records, so a restart does not reopen the window.
//!
//! Memory: one entry per metric and app seen within the window; [`Dedup::purge`] drops the
//! expired ones.

use std::collections::HashMap;

/// The dedup state.
#[derive(Debug, Clone)]
pub struct Dedup {
    expiry_secs: i64,
    bypass: Vec<String>,
    /// app → metric → epoch second at which the window closes.
    until: HashMap<String, HashMap<String, i64>>,
}

/// Skyline's key lifetime, as the instant it expires.
fn expires_at(anomaly_ts: i64, recorded_at: i64, expiry_secs: i64) -> i64 {
    let ttl = expiry_secs - (recorded_at - anomaly_ts);
    if ttl < 1 {
        recorded_at + 60
    } else {
        recorded_at + ttl
    }
}

impl Dedup {
    /// A new, empty state.
    pub fn new(expiry_secs: i64, bypass_apps: &[String]) -> Dedup {
        Dedup {
            expiry_secs,
            bypass: bypass_apps.to_vec(),
            until: HashMap::new(),
        }
    }

    /// True for apps that are never deduplicated (and skip the max-age check).
    pub fn bypasses(&self, app: &str) -> bool {
        self.bypass.iter().any(|a| a == app)
    }

    /// True when an anomaly for `metric` and `app` was recorded within the window.
    pub fn is_recorded(&self, metric: &str, app: &str, now: i64) -> bool {
        if self.bypasses(app) {
            return false;
        }
        self.until
            .get(app)
            .and_then(|m| m.get(metric))
            .is_some_and(|&until| now < until)
    }

    /// Notes that an anomaly with timestamp `anomaly_ts` was recorded at `recorded_at`.
    pub fn record(&mut self, metric: &str, app: &str, anomaly_ts: i64, recorded_at: i64) {
        if self.bypasses(app) {
            return;
        }
        let until = expires_at(anomaly_ts, recorded_at, self.expiry_secs);
        let slot = self
            .until
            .entry(app.to_string())
            .or_default()
            .entry(metric.to_string())
            .or_insert(until);
        *slot = (*slot).max(until);
    }

    /// Restores a window from an anomaly found in the database after a restart. The moment it
    /// was recorded is unknown, so the window is `anomaly_ts + expiry_secs` (Skyline's key
    /// lifetime whenever the anomaly was recorded within the window).
    pub fn seed(&mut self, metric: &str, app: &str, anomaly_ts: i64, now: i64) {
        if anomaly_ts + self.expiry_secs > now {
            self.record(metric, app, anomaly_ts, anomaly_ts.min(now));
        }
    }

    /// Removes the window of `metric` and `app` (after an anomaly that closed it was lost, so
    /// the next detection is recorded rather than skipped).
    pub fn forget(&mut self, metric: &str, app: &str) {
        if let Some(metrics) = self.until.get_mut(app) {
            metrics.remove(metric);
            if metrics.is_empty() {
                self.until.remove(app);
            }
        }
    }

    /// Drops the windows that have closed.
    pub fn purge(&mut self, now: i64) {
        for metrics in self.until.values_mut() {
            metrics.retain(|_, until| now < *until);
        }
        self.until.retain(|_, m| !m.is_empty());
    }

    /// Number of open windows.
    pub fn len(&self) -> usize {
        self.until.values().map(HashMap::len).sum()
    }

    /// True when no window is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dedup() -> Dedup {
        Dedup::new(900, &["webapp".to_string(), "crucible".to_string()])
    }

    #[test]
    fn window_is_measured_from_the_anomaly_timestamp() {
        let mut d = dedup();
        let t = 1_700_000_000;
        assert!(!d.is_recorded("m", "analyzer", t));
        // Recorded 100 s after the anomaly: the window closes at t + 900, not t + 1000.
        d.record("m", "analyzer", t, t + 100);
        assert!(d.is_recorded("m", "analyzer", t + 100));
        assert!(d.is_recorded("m", "analyzer", t + 899));
        assert!(!d.is_recorded("m", "analyzer", t + 900));
        // Per app and per metric.
        assert!(!d.is_recorded("m", "mirage", t + 100));
        assert!(!d.is_recorded("other", "analyzer", t + 100));
    }

    #[test]
    fn stale_anomaly_gets_skylines_sixty_second_minimum() {
        let mut d = dedup();
        let t = 1_700_000_000;
        d.record("m", "analyzer", t, t + 2_000);
        assert!(d.is_recorded("m", "analyzer", t + 2_059));
        assert!(!d.is_recorded("m", "analyzer", t + 2_060));
    }

    #[test]
    fn bypass_apps_are_never_deduplicated() {
        let mut d = dedup();
        d.record("m", "webapp", 10, 10);
        d.record("m", "crucible", 10, 10);
        assert!(!d.is_recorded("m", "webapp", 11));
        assert!(!d.is_recorded("m", "crucible", 11));
        assert!(d.is_empty());
        assert!(d.bypasses("webapp") && !d.bypasses("analyzer"));
    }

    #[test]
    fn seeding_after_a_restart_and_purge() {
        let mut d = dedup();
        let now = 1_700_001_000;
        d.seed("recent", "analyzer", now - 300, now);
        d.seed("old", "analyzer", now - 900, now);
        assert!(d.is_recorded("recent", "analyzer", now));
        assert!(!d.is_recorded("recent", "analyzer", now + 600));
        assert!(!d.is_recorded("old", "analyzer", now));
        assert_eq!(d.len(), 1);
        // A later window is never shortened by an earlier one.
        d.record("recent", "analyzer", now - 100, now);
        d.seed("recent", "analyzer", now - 300, now);
        assert!(d.is_recorded("recent", "analyzer", now + 700));
        d.purge(now + 800);
        assert!(d.is_empty());
    }
}
