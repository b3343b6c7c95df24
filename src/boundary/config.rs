//! `[boundary]` and `[[boundary.rules]]` (Skyline's `BOUNDARY_*` settings and
//! `BOUNDARY_METRICS` tuples): the settings types and their checks. Pure: no I/O.

use serde::{Deserialize, Serialize};

use super::algorithms::Algorithm;
use crate::alert::config::{AlertersSettings, ALERTER_NAMES};
use crate::alert::rules::Matcher;

/// `[boundary]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BoundarySettings {
    /// Run Boundary when at least one rule is configured.
    pub enabled: bool,
    /// Seconds between the starts of two runs (`BOUNDARY_OPTIMUM_RUN_DURATION`).
    pub run_every_secs: u64,
    /// Send alerts (`BOUNDARY_ENABLE_ALERTS`); anomalies are recorded in Panorama either way.
    pub enable_alerts: bool,
    /// A series whose last point is older than this is `Stale` (`STALE_PERIOD`).
    pub stale_period_secs: i64,
    /// `detect_drop_off_cliff` needs this many points, else `TooShort` (`MIN_TOLERABLE_LENGTH`).
    pub min_tolerable_length: usize,
    /// Window of the Boring test (`MAX_TOLERABLE_BOREDOM`).
    pub max_tolerable_boredom: usize,
    /// Boring when the window holds exactly this many distinct values (`BOREDOM_SET_SIZE`).
    pub boredom_set_size: usize,
    /// A rule matching more metrics than this has its algorithm removed from all of them
    /// (Skyline's cardinality guard, 200).
    pub max_metrics_per_rule: usize,
    /// Keys per MGET.
    pub mget_chunk: usize,
    /// The rules, in order (`BOUNDARY_METRICS`).
    pub rules: Vec<BoundaryRule>,
}

impl Default for BoundarySettings {
    fn default() -> Self {
        BoundarySettings {
            enabled: true,
            run_every_secs: 60,
            enable_alerts: true,
            stale_period_secs: 500,
            min_tolerable_length: 100,
            max_tolerable_boredom: 100,
            boredom_set_size: 1,
            max_metrics_per_rule: 200,
            mget_chunk: 1000,
            rules: Vec::new(),
        }
    }
}

/// One `[[boundary.rules]]` entry: a `BOUNDARY_METRICS` tuple.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BoundaryRule {
    /// Metric pattern, matched as `[[alerts]]` patterns are.
    pub pattern: String,
    /// `greater_than`, `less_than` or `detect_drop_off_cliff`.
    pub algorithm: String,
    /// The threshold of `greater_than` / `less_than` (unused by the cliff).
    #[serde(default)]
    pub trigger_value: f64,
    /// `detect_drop_off_cliff` only: not anomalous while the mean over the last
    /// `min_average_seconds` is below this (both must be > 0 to apply).
    #[serde(default)]
    pub min_average: f64,
    /// See `min_average`.
    #[serde(default)]
    pub min_average_seconds: i64,
    /// Consecutive detections needed before recording and alerting (0 and 1 mean 1).
    #[serde(default = "one")]
    pub alert_threshold: u32,
    /// Configured alerter names to alert through (`ALERT_VIAS`); empty = Panorama only.
    #[serde(default)]
    pub alerters: Vec<String>,
    /// One alert per metric, algorithm and alerter within this many seconds (`EXPIRATION_TIME`).
    #[serde(default = "default_expiration")]
    pub expiration_secs: u64,
    /// Metrics matching any of these patterns are skipped by this rule (`EXCLUDES`).
    #[serde(default)]
    pub excludes: Vec<String>,
    /// 1-based position in the file, for problems (set by the loader; 0 = its index here).
    #[serde(skip)]
    pub position: usize,
}

fn one() -> u32 {
    1
}

fn default_expiration() -> u64 {
    1800
}

impl BoundarySettings {
    /// Adds every problem of `[boundary]` and its rules to `problems`; `alerters` says which
    /// alerters are configured.
    pub fn validate(&self, alerters: &AlertersSettings, problems: &mut Vec<String>) {
        if self.run_every_secs == 0 {
            problems.push("[boundary] run_every_secs: must be positive".into());
        }
        if self.stale_period_secs <= 0 {
            problems.push("[boundary] stale_period_secs: must be positive".into());
        }
        if self.mget_chunk == 0 {
            problems.push("[boundary] mget_chunk: must be positive".into());
        }
        if self.max_metrics_per_rule == 0 {
            problems.push("[boundary] max_metrics_per_rule: must be positive".into());
        }
        for (i, r) in self.rules.iter().enumerate() {
            let n = if r.position > 0 { r.position } else { i + 1 };
            let slot = format!("[[boundary.rules]] #{n} ({:?})", r.pattern);
            if let Err(err) = Matcher::parse(&r.pattern) {
                problems.push(format!("{slot} pattern: {err}"));
            }
            for e in &r.excludes {
                if let Err(err) = Matcher::parse(e) {
                    problems.push(format!("{slot} excludes {e:?}: {err}"));
                }
            }
            if r.algorithm.parse::<Algorithm>().is_err() {
                problems.push(format!(
                    "{slot} algorithm: {:?} must be one of {}",
                    r.algorithm,
                    Algorithm::NAMES.join(", ")
                ));
            }
            if !r.trigger_value.is_finite() || !r.min_average.is_finite() {
                problems.push(format!("{slot} trigger_value/min_average: must be finite"));
            }
            if r.min_average_seconds < 0 {
                problems.push(format!("{slot} min_average_seconds: must not be negative"));
            }
            if r.expiration_secs == 0 {
                problems.push(format!("{slot} expiration_secs: must be at least 1"));
            }
            for a in &r.alerters {
                if !ALERTER_NAMES.contains(&a.as_str()) {
                    problems.push(format!(
                        "{slot} alerters: {a:?} must be one of {}",
                        ALERTER_NAMES.join(", ")
                    ));
                } else if !alerters.configured(a) {
                    problems.push(format!(
                        "{slot} alerters: {a:?} but [alerters.{a}] is not configured"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, algorithm: &str, alerters: &[&str]) -> BoundaryRule {
        BoundaryRule {
            pattern: pattern.into(),
            algorithm: algorithm.into(),
            trigger_value: 0.0,
            min_average: 0.0,
            min_average_seconds: 0,
            alert_threshold: 1,
            alerters: alerters.iter().map(|s| s.to_string()).collect(),
            expiration_secs: 1800,
            excludes: vec![],
            position: 0,
        }
    }

    #[test]
    fn every_rule_problem_is_named() {
        let alerters = AlertersSettings {
            webhook: Some(Default::default()),
            ..Default::default()
        };
        let mut bad = rule("^web(", "lower_than", &["pager", "smtp", "webhook"]);
        bad.excludes = vec!["x.[a".into()];
        bad.expiration_secs = 0;
        let s = BoundarySettings {
            rules: vec![rule("web.*", "less_than", &["webhook"]), bad],
            ..Default::default()
        };
        let mut problems = Vec::new();
        s.validate(&alerters, &mut problems);
        let all = problems.join("\n");
        for needle in [
            "[[boundary.rules]] #2 (\"^web(\") pattern: invalid regex",
            "#2 (\"^web(\") excludes \"x.[a\"",
            "algorithm: \"lower_than\" must be one of greater_than, less_than, detect_drop_off_cliff",
            "alerters: \"pager\" must be one of",
            "alerters: \"smtp\" but [alerters.smtp] is not configured",
            "expiration_secs: must be at least 1",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
        assert_eq!(problems.len(), 6, "{all}");
        assert!(!all.contains("#1"), "{all}");
    }
}

#[cfg(test)]
mod shipped_example {
    /// The worked example in conf/skyline.toml loads once uncommented, with its alerters.
    #[test]
    fn the_worked_example_in_the_shipped_config_is_valid() {
        let shipped = include_str!("../../conf/skyline.toml");
        let start = shipped.find("# BEGIN boundary example").unwrap();
        let end = shipped.find("# END boundary example").unwrap();
        let example: String = shipped[start..end]
            .lines()
            .skip(1)
            .map(|l| l.strip_prefix("# ").unwrap_or(l.trim_start_matches('#')))
            .collect::<Vec<_>>()
            .join("\n");
        let text = format!(
            "{example}\n[alerters.smtp]\nfrom = \"s@example.org\"\nto = [\"o@example.org\"]\n\
             [alerters.slack]\nwebhook_url = \"https://hooks.slack.com/services/x\"\n"
        );
        let cfg = crate::config::from_str_with_env(&text, &[]).unwrap();
        let rules = &cfg.boundary.rules;
        assert_eq!(rules.len(), 3);
        assert_eq!(rules[0].algorithm, "detect_drop_off_cliff");
        assert_eq!(rules[0].min_average_seconds, 600);
        assert_eq!(rules[1].trigger_value, 5000.0);
        assert_eq!(rules[2].alerters, vec!["smtp".to_string()]);
        let book = super::super::RuleBook::new(rules, 200).unwrap();
        let names = [
            "shop.eu.orders",
            "shop.test.orders",
            "jobs.queue.mail.depth",
            "web.logins",
        ];
        assert_eq!(book.resolve(&names).checks.len(), 3);
    }

    /// Bad rules in a file are named by their position, every one at once.
    #[test]
    fn check_config_names_each_bad_rule() {
        let text = r#"
[boundary]
run_every_secs = 0
[[boundary.rules]]
pattern = "a"
algorithm = "less_than"
typo = 1
[[boundary.rules]]
pattern = "b"
algorithm = "median"
alerters = ["webhook"]
"#;
        let err = crate::config::from_str_with_env(text, &[]).unwrap_err();
        let all = err.problems.join("\n");
        for needle in [
            "[boundary] run_every_secs: must be positive",
            "[[boundary.rules]] #1: unknown field `typo`",
            "[[boundary.rules]] #2 (\"b\") algorithm: \"median\" must be one of",
            "[[boundary.rules]] #2 (\"b\") alerters: \"webhook\" but [alerters.webhook] is not configured",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }
}
