//! `[mirage]`: Skyline's Mirage settings (`ENABLE_MIRAGE`, `MIRAGE_CONSENSUS`,
//! `MIRAGE_STALE_SECONDS`, …) plus this port's built-in history. Pure: no I/O.

use serde::{Deserialize, Serialize};

use crate::alert::AlertRule;
use crate::analyze::config::ALGORITHM_NAMES;

/// `[mirage]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MirageSettings {
    /// Hand Mirage metrics to Mirage (`ENABLE_MIRAGE`). Off: every anomaly is the Analyzer's.
    /// Mirage metrics are those whose first matching smtp `[[alerts]]` rule has
    /// `second_order_resolution_hours` > 24.
    pub enabled: bool,
    /// Algorithms Mirage runs (`MIRAGE_ALGORITHMS`).
    pub algorithms: Vec<String>,
    /// `MIRAGE_CONSENSUS`: anomalous when at most `len - consensus` votes are False.
    pub consensus: usize,
    /// A fetched series shorter than this is not analysed (`MIN_TOLERABLE_LENGTH`); the check
    /// is left to the Analyzer's waterfall alert.
    pub min_tolerable_length: usize,
    /// A check whose anomaly timestamp is older than this when Mirage reaches it is not
    /// analysed (`MIRAGE_STALE_SECONDS`); the waterfall alerts it.
    pub stale_secs: u64,
    /// A check Mirage has not decided within this many seconds is alerted (and recorded) by
    /// the Analyzer (Skyline's 300-s waterfall).
    pub waterfall_secs: u64,
    /// Checks waiting for Mirage (the bounded hand-off channel). Full: the Analyzer alerts
    /// the check itself at once (counted, logged once a minute).
    pub queue_max: usize,
    /// Days of built-in history kept per Mirage metric in `mirage.history.<metric>`.
    /// 0 = keep no history (Mirage then needs `[graphite] url`).
    pub history_days: u64,
    /// Resolution of the built-in history (mean per bucket), seconds.
    pub history_resolution_secs: u64,
    /// How often the history keeper folds the Redis series into the history, seconds.
    pub history_interval_secs: u64,
    /// Each graphite-web render request may take this long.
    pub graphite_timeout_secs: u64,
}

impl Default for MirageSettings {
    fn default() -> Self {
        MirageSettings {
            enabled: true,
            algorithms: ALGORITHM_NAMES.map(String::from).to_vec(),
            consensus: 6,
            min_tolerable_length: 100,
            stale_secs: 300,
            waterfall_secs: 300,
            queue_max: 1000,
            history_days: 7,
            history_resolution_secs: 600,
            history_interval_secs: 300,
            graphite_timeout_secs: 10,
        }
    }
}

impl MirageSettings {
    /// Every problem with `[mirage]` and the `second_order_resolution_hours` of the rules.
    pub fn validate(&self, rules: &[AlertRule], problems: &mut Vec<String>) {
        for a in &self.algorithms {
            if !ALGORITHM_NAMES.contains(&a.as_str()) {
                problems.push(format!(
                    "[mirage] algorithms: unknown algorithm {a:?} (one of {})",
                    ALGORITHM_NAMES.join(", ")
                ));
            }
        }
        if self.algorithms.is_empty() {
            problems.push("[mirage] algorithms: must name at least one algorithm".into());
        }
        if self.consensus == 0 || self.consensus > self.algorithms.len() {
            problems.push(format!(
                "[mirage] consensus: must be between 1 and the number of algorithms ({})",
                self.algorithms.len()
            ));
        }
        for (key, v) in [
            ("waterfall_secs", self.waterfall_secs),
            ("queue_max", self.queue_max as u64),
            ("history_resolution_secs", self.history_resolution_secs),
            ("history_interval_secs", self.history_interval_secs),
            ("graphite_timeout_secs", self.graphite_timeout_secs),
            ("stale_secs", self.stale_secs),
        ] {
            if v == 0 {
                problems.push(format!("[mirage] {key}: must be positive"));
            }
        }
        if self.history_days > 0
            && self.history_resolution_secs > 0
            && self.history_days * 86_400 / self.history_resolution_secs < 100
        {
            problems.push(format!(
                "[mirage] history_days/history_resolution_secs: {} day(s) at {} s is fewer than \
                 the 100 points Mirage needs",
                self.history_days, self.history_resolution_secs
            ));
        }
        for (i, r) in rules.iter().enumerate() {
            let Some(h) = r.second_order_resolution_hours else {
                continue;
            };
            let slot = format!("[[alerts]] #{} ({:?})", i + 1, r.pattern);
            if r.alerter != "smtp" {
                problems.push(format!(
                    "{slot} second_order_resolution_hours: only an smtp rule makes Mirage \
                     metrics (Skyline ignores it on {} rules)",
                    r.alerter
                ));
            } else if h <= 24 {
                problems.push(format!(
                    "{slot} second_order_resolution_hours: {h} must be above 24 (24 h is the \
                     Analyzer's own window)"
                ));
            } else if h > 24 * 90 {
                problems.push(format!(
                    "{slot} second_order_resolution_hours: {h} is more than 90 days"
                ));
            }
        }
    }

    /// The algorithms as the pure analysis takes them (names were validated at load).
    pub fn algorithm_list(&self) -> Vec<crate::analyze::algorithms::Algorithm> {
        self.algorithms
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(alerter: &str, h: Option<u64>) -> AlertRule {
        AlertRule {
            pattern: "web".into(),
            alerter: alerter.into(),
            expiration_secs: 3600,
            to: vec![],
            second_order_resolution_hours: h,
        }
    }

    #[test]
    fn defaults_are_skylines_and_valid() {
        let s = MirageSettings::default();
        let mut p = Vec::new();
        s.validate(&[rule("smtp", Some(168))], &mut p);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!((s.consensus, s.stale_secs, s.waterfall_secs), (6, 300, 300));
        assert_eq!((s.history_days, s.history_resolution_secs), (7, 600));
        assert_eq!(s.algorithm_list().len(), 9);
    }

    #[test]
    fn every_problem_is_named() {
        let s = MirageSettings {
            algorithms: vec!["grubbs".into(), "nope".into()],
            consensus: 3,
            queue_max: 0,
            history_days: 1,
            history_resolution_secs: 3600,
            ..Default::default()
        };
        let mut p = Vec::new();
        s.validate(&[rule("slack", Some(168)), rule("smtp", Some(24))], &mut p);
        let all = p.join("\n");
        for needle in [
            "[mirage] algorithms: unknown algorithm \"nope\"",
            "[mirage] consensus",
            "[mirage] queue_max: must be positive",
            "fewer than the 100 points",
            "#1 (\"web\") second_order_resolution_hours: only an smtp rule",
            "#2 (\"web\") second_order_resolution_hours: 24 must be above 24",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }
}
