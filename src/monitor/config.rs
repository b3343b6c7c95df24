//! `[monitor]` and `[[monitor.rules]]`: endpoint monitoring levels, retention, outliers, export.

use serde::{Deserialize, Serialize};

/// The highest monitoring level.
pub const MAX_LEVEL: u8 = 3;

/// One `[[monitor.rules]]` entry: requests whose route pattern matches `route` are monitored
/// at `level`. `route` is a route pattern as registered (`/api`, `/flux/metric_data`,
/// `/rebrow/key`); a trailing `*` matches any rest (`/flux/*`, `*`). First match wins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LevelRule {
    /// Route pattern, exact or with a trailing `*`.
    pub route: String,
    /// 0 = last request time only, 1 = a record per request, 2 = plus outliers with their
    /// context, 3 = plus the time breakdown of every request.
    pub level: u8,
}

/// The largest `[monitor] batch_max`: a block of that many records is about 1.2 MB, and a
/// read decodes a few blocks at a time.
pub const BATCH_MAX_LIMIT: usize = 100_000;

/// `[monitor]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorSettings {
    /// Level of routes no rule matches.
    pub default_level: u8,
    /// Per-route levels, first match wins.
    pub rules: Vec<LevelRule>,
    /// Records and outliers older than this many days are pruned (hourly).
    pub keep_days: u64,
    /// A request slower than this many times its route's mean is an outlier (level ≥ 2).
    pub outlier_factor: f64,
    /// Requests a route needs before its mean is trusted for outliers.
    pub outlier_min_hits: u64,
    /// Outliers kept per route and second (the live slow-request list and, at level ≥ 2, the
    /// stored outliers); more slow requests in that second are only counted
    /// (`skyline_monitor_outliers_capped_total`): an overloaded daemon, where many requests
    /// are slow, does not spend more on describing them.
    pub outliers_per_sec: u32,
    /// Records waiting for the database writer; when full, new records are dropped and
    /// counted (`skyline_monitor_dropped_total`), never a slower request.
    pub queue_max: usize,
    /// Records per block and transaction (at most [`BATCH_MAX_LIMIT`]): one commit per flush
    /// up to that many requests, since each commit (and its `fsync`) costs more than
    /// encoding thousands of records.
    pub batch_max: usize,
    /// How often the writer flushes, milliseconds.
    pub flush_ms: u64,
    /// The writer's thread (and the database threads it starts) run this much below the
    /// request threads (0 to 19): its bursts every `flush_ms` yield to requests on a busy
    /// core instead of delaying them.
    pub writer_nice: i32,
    /// Bearer token of `GET /monitor/export` (empty = export disabled, 403).
    pub export_token: String,
    /// Version label of the records; empty = the crate version plus the git commit embedded
    /// at build time.
    pub version: String,
    /// Request header whose value becomes the record's group tag (empty = none).
    pub group_header: String,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        MonitorSettings {
            default_level: 2,
            rules: Vec::new(),
            keep_days: 30,
            outlier_factor: 2.5,
            outlier_min_hits: 20,
            outliers_per_sec: 10,
            queue_max: 20_000,
            batch_max: 10_000,
            flush_ms: 500,
            writer_nice: 10,
            export_token: String::new(),
            version: String::new(),
            group_header: "X-Monitor-Group".into(),
        }
    }
}

impl MonitorSettings {
    /// Adds every problem to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        if self.default_level > MAX_LEVEL {
            problems.push(format!("[monitor] default_level: 0 to {MAX_LEVEL}"));
        }
        for r in &self.rules {
            if r.level > MAX_LEVEL {
                problems.push(format!(
                    "[[monitor.rules]] route {:?}: level 0 to {MAX_LEVEL}",
                    r.route
                ));
            }
            if r.route.is_empty()
                || (r.route.contains('*') && !r.route.ends_with('*'))
                || r.route.matches('*').count() > 1
            {
                problems.push(format!(
                    "[[monitor.rules]] route {:?}: a route pattern, optionally ending in one `*`",
                    r.route
                ));
            }
        }
        if self.keep_days == 0 {
            problems.push("[monitor] keep_days: must be positive".into());
        }
        if !(self.outlier_factor.is_finite() && self.outlier_factor > 1.0) {
            problems.push("[monitor] outlier_factor: must be a number over 1".into());
        }
        if self.queue_max == 0
            || self.batch_max == 0
            || self.flush_ms == 0
            || self.outliers_per_sec == 0
        {
            problems.push(
                "[monitor] queue_max, batch_max, flush_ms, outliers_per_sec: must be positive"
                    .into(),
            );
        }
        if self.batch_max > BATCH_MAX_LIMIT {
            problems.push(format!(
                "[monitor] batch_max: at most {BATCH_MAX_LIMIT} records a block, not {}",
                self.batch_max
            ));
        }
        if !(0..=19).contains(&self.writer_nice) {
            problems.push(format!(
                "[monitor] writer_nice: must be 0 to 19, not {}",
                self.writer_nice
            ));
        }
        if !self.export_token.is_empty() && self.export_token.len() < 16 {
            problems.push("[monitor] export_token: at least 16 characters (or empty)".into());
        }
        if self.version.len() > 100 {
            problems.push("[monitor] version: at most 100 characters".into());
        }
    }

    /// The level of `route` (a registered pattern; `None` for an unmatched path, which only
    /// `*` rules and the default cover).
    pub fn level_of(&self, route: Option<&str>) -> u8 {
        let path = route.unwrap_or("");
        for r in &self.rules {
            let hit = match r.route.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix) && (route.is_some() || prefix.is_empty()),
                None => route == Some(r.route.as_str()),
            };
            if hit {
                return r.level;
            }
        }
        self.default_level
    }

    /// The version label of this build (or the configured override).
    pub fn version_label(&self) -> String {
        if self.version.is_empty() {
            build_version()
        } else {
            self.version.clone()
        }
    }
}

/// `<crate version>+<git commit>` as embedded by `build.rs` (`+unknown` without git).
pub fn build_version() -> String {
    format!(
        "{}+{}",
        env!("CARGO_PKG_VERSION"),
        env!("SKYLINE_GIT_COMMIT")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_first_match_wins() {
        let s = MonitorSettings {
            rules: vec![
                LevelRule {
                    route: "/flux/*".into(),
                    level: 1,
                },
                LevelRule {
                    route: "/api".into(),
                    level: 3,
                },
                LevelRule {
                    route: "/api*".into(),
                    level: 0,
                },
            ],
            ..Default::default()
        };
        assert_eq!(s.level_of(Some("/flux/metric_data")), 1);
        assert_eq!(s.level_of(Some("/api")), 3);
        assert_eq!(s.level_of(Some("/api/now")), 0);
        assert_eq!(s.level_of(Some("/panorama")), 2);
        assert_eq!(s.level_of(None), 2);
    }

    #[test]
    fn validation() {
        let mut p = Vec::new();
        MonitorSettings::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        let s = MonitorSettings {
            default_level: 4,
            rules: vec![LevelRule {
                route: "/a*b".into(),
                level: 9,
            }],
            keep_days: 0,
            outlier_factor: 0.5,
            export_token: "short".into(),
            ..Default::default()
        };
        s.validate(&mut p);
        assert_eq!(p.len(), 6, "{p:?}");
        let mut p = Vec::new();
        let big = |batch_max| MonitorSettings {
            batch_max,
            ..Default::default()
        };
        big(BATCH_MAX_LIMIT).validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        big(BATCH_MAX_LIMIT + 1).validate(&mut p);
        assert_eq!(p.len(), 1);
        assert!(p[0].contains("batch_max: at most 100000"), "{p:?}");
    }

    #[test]
    fn version_label_has_crate_version() {
        let v = MonitorSettings::default().version_label();
        assert!(v.starts_with(env!("CARGO_PKG_VERSION")), "{v}");
        assert!(v.contains('+'), "{v}");
        let o = MonitorSettings {
            version: "1.2.3".into(),
            ..Default::default()
        };
        assert_eq!(o.version_label(), "1.2.3");
    }
}
