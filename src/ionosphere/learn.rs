//! Learning (spec §3.13), as this port does it: for the namespaces the operator enables
//! (`[[ionosphere.learn]]`, Skyline's IONOSPHERE_LEARN_NAMESPACE_CONFIG), a later anomaly that
//! no profile matched but whose features sum is within `max_percent_diff_from_origin` of a
//! profile's generation-0 origin becomes a profile of its own: `parent_id` the closest such
//! profile, `generation` the parent's + 1 (at most `max_generations`), label `LEARNT`.
//! Pure functions and settings, no I/O; owns no actor, key or table (the matcher runs the
//! learn queue, `db::ionosphere` reads and writes the `metrics` learn columns).
//!
//! Backpressure: none here (the matcher bounds its learn queue).

use serde::{Deserialize, Serialize};

use super::matching::percent_different;

/// The label of a learnt profile (Skyline's).
pub const LEARNT_LABEL: &str = "LEARNT";
/// The user a learnt profile is created by.
pub const LEARN_USER: &str = "ionosphere_learn";

/// One `[[ionosphere.learn]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LearnNamespace {
    /// A dotted prefix: `web` covers `web` and `web.*` (not `webapp.*`); `*` covers every
    /// metric.
    pub namespace: String,
    /// `learn_full_duration_days`: a later anomaly is learnt from only within this many days
    /// of its origin profile's anomaly (0: 30 days).
    pub full_duration_days: i32,
    /// `learn_valid_ts_older_than`: an anomaly is learnt from only once it is this many
    /// seconds old (Skyline's 3661).
    pub valid_ts_older_than: i32,
    /// `max_generations`: a profile of this generation has no learnt children.
    pub max_generations: i32,
    /// `max_percent_diff_from_origin`: the anomaly's features sum must be within this many
    /// per cent of the origin profile's.
    pub max_percent_diff_from_origin: f64,
}

impl Default for LearnNamespace {
    fn default() -> Self {
        LearnNamespace {
            namespace: String::new(),
            full_duration_days: 30,
            valid_ts_older_than: 3661,
            max_generations: 5,
            max_percent_diff_from_origin: 7.0,
        }
    }
}

impl LearnNamespace {
    /// Whether this entry covers `metric`.
    pub fn covers(&self, metric: &str) -> bool {
        let ns = self.namespace.trim_end_matches('.');
        ns == "*"
            || metric == ns
            || metric
                .strip_prefix(ns)
                .is_some_and(|rest| rest.starts_with('.'))
    }

    /// The `metrics` learn columns this entry writes.
    pub fn params(&self) -> LearnParams {
        LearnParams {
            full_duration_days: self.full_duration_days,
            valid_ts_older_than: self.valid_ts_older_than,
            max_generations: self.max_generations,
            max_percent_diff_from_origin: self.max_percent_diff_from_origin,
        }
    }

    /// Every problem with entry `i`.
    pub fn validate(&self, i: usize, problems: &mut Vec<String>) {
        let at = format!("[[ionosphere.learn]] #{}", i + 1);
        if self.namespace.trim().is_empty() {
            problems.push(format!("{at} namespace: required (a dotted prefix, or *)"));
        }
        if self.full_duration_days < 0 || self.valid_ts_older_than < 0 {
            problems.push(format!(
                "{at}: full_duration_days and valid_ts_older_than must be 0 or positive"
            ));
        }
        if self.max_generations < 1 {
            problems.push(format!("{at} max_generations: must be at least 1"));
        }
        let p = self.max_percent_diff_from_origin;
        if !(p.is_finite() && p > 0.0) {
            problems.push(format!(
                "{at} max_percent_diff_from_origin: must be a positive number"
            ));
        }
    }
}

/// The first entry covering `metric`, if its namespace learns.
pub fn namespace_for<'a>(list: &'a [LearnNamespace], metric: &str) -> Option<&'a LearnNamespace> {
    list.iter().find(|l| l.covers(metric))
}

/// A metric's learn settings: its `metrics` row's learn columns (the source of truth, as in
/// Skyline; written from the namespace's entry when a profile of it is trained).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LearnParams {
    /// `learn_full_duration_days`.
    pub full_duration_days: i32,
    /// `learn_valid_ts_older_than`.
    pub valid_ts_older_than: i32,
    /// `max_generations`.
    pub max_generations: i32,
    /// `max_percent_diff_from_origin`.
    pub max_percent_diff_from_origin: f64,
}

impl Default for LearnParams {
    fn default() -> Self {
        LearnNamespace::default().params()
    }
}

impl LearnParams {
    /// Seconds after an origin's anomaly within which anomalies are learnt from.
    pub fn window_secs(&self) -> i64 {
        let days = if self.full_duration_days <= 0 {
            30
        } else {
            self.full_duration_days
        };
        i64::from(days) * 86_400
    }
}

/// An enabled profile of the anomaly's duration a learnt profile could descend from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// The profile.
    pub fp_id: i32,
    /// Its generation.
    pub generation: i32,
    /// Its generation-0 origin's `features_sum`.
    pub origin_features_sum: f64,
    /// Its origin's anomaly timestamp.
    pub origin_timestamp: i64,
}

/// What to learn: the new profile's parent and generation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Learnt {
    /// `parent_id`.
    pub parent_id: i32,
    /// `generation`.
    pub generation: i32,
    /// The anomaly's per cent difference from the parent's origin.
    pub percent_diff: f64,
}

/// The parent an unmatched anomaly (features sum `anomaly_sum`, at `anomaly_ts`) is learnt
/// from: among the candidates below `max_generations` whose origin's anomaly is before it and
/// at most [`LearnParams::window_secs`] older, those whose origin's features sum differs by at
/// most `max_percent_diff_from_origin` per cent; the closest (ties: the older profile). None:
/// nothing to learn.
pub fn choose_parent(
    candidates: &[Candidate],
    anomaly_sum: f64,
    anomaly_ts: i64,
    params: &LearnParams,
) -> Option<Learnt> {
    let window = params.window_secs();
    candidates
        .iter()
        .filter(|c| c.generation < params.max_generations)
        .filter(|c| anomaly_ts > c.origin_timestamp && anomaly_ts - c.origin_timestamp <= window)
        .filter_map(|c| {
            let pd = percent_different(c.origin_features_sum, anomaly_sum)?;
            (pd <= params.max_percent_diff_from_origin).then_some((c, pd))
        })
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.fp_id.cmp(&b.0.fp_id)))
        .map(|(c, pd)| Learnt {
            parent_id: c.fp_id,
            generation: c.generation + 1,
            percent_diff: pd,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(fp_id: i32, generation: i32, sum: f64, ts: i64) -> Candidate {
        Candidate {
            fp_id,
            generation,
            origin_features_sum: sum,
            origin_timestamp: ts,
        }
    }

    #[test]
    fn namespaces_are_dotted_prefixes() {
        let l = LearnNamespace {
            namespace: "web".into(),
            ..Default::default()
        };
        assert!(l.covers("web") && l.covers("web.requests"));
        assert!(!l.covers("webapp.requests") && !l.covers("db.web"));
        let all = LearnNamespace {
            namespace: "*".into(),
            ..Default::default()
        };
        assert!(all.covers("anything.at.all"));
        let list = vec![l.clone(), all];
        assert_eq!(namespace_for(&list, "web.x"), Some(&l));
        let mut problems = Vec::new();
        LearnNamespace::default().validate(0, &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");
    }

    #[test]
    fn learn_namespaces_come_from_the_config() {
        let text = "[ionosphere]\nqueue_max = 5\n\n[[ionosphere.learn]]\nnamespace = \"web\"\nmax_percent_diff_from_origin = 4.5\n";
        let cfg = crate::config::from_str_with_env(text, &[]).unwrap();
        assert_eq!(cfg.ionosphere.learn.len(), 1);
        let l = &cfg.ionosphere.learn[0];
        assert_eq!(l.namespace, "web");
        assert_eq!(l.max_percent_diff_from_origin, 4.5);
        assert_eq!(
            (
                l.full_duration_days,
                l.valid_ts_older_than,
                l.max_generations
            ),
            (30, 3661, 5)
        );
        assert!(
            crate::config::from_str_with_env("[[ionosphere.learn]]\nnamespace = \"\"\n", &[])
                .is_err()
        );
    }

    #[test]
    fn the_closest_origin_within_the_limits_is_the_parent() {
        let p = LearnParams {
            max_percent_diff_from_origin: 7.0,
            max_generations: 3,
            full_duration_days: 30,
            valid_ts_older_than: 3661,
        };
        let t0 = 1_700_000_000;
        // 5 % from origin 1, 2 % from origin 2 (a generation-1 profile): the closer wins.
        let c = [cand(1, 0, 100.0, t0), cand(2, 1, 103.0, t0)];
        let l = choose_parent(&c, 105.0, t0 + 86_400, &p).unwrap();
        assert_eq!((l.parent_id, l.generation), (2, 2));
        assert!((l.percent_diff - 2.0 / 103.0 * 100.0).abs() < 1e-9);
        // The limit is inclusive (≤; 8 / 128 is exactly 6.25 %), beyond it is not.
        let exact = LearnParams {
            max_percent_diff_from_origin: 6.25,
            ..p
        };
        assert!(choose_parent(&[cand(1, 0, 128.0, t0)], 136.0, t0 + 60, &exact).is_some());
        assert!(choose_parent(&[cand(1, 0, 100.0, t0)], 106.9, t0 + 60, &p).is_some());
        assert!(choose_parent(&[cand(1, 0, 100.0, t0)], 107.5, t0 + 60, &p).is_none());
        // A profile at max_generations has no children.
        assert!(choose_parent(&[cand(1, 3, 100.0, t0)], 101.0, t0 + 60, &p).is_none());
        // Outside the learn window (30 days), or not later than the origin: nothing.
        assert!(choose_parent(&[cand(1, 0, 100.0, t0)], 101.0, t0 + 31 * 86_400, &p).is_none());
        assert!(choose_parent(&[cand(1, 0, 100.0, t0)], 101.0, t0, &p).is_none());
        // A zero origin sum has no percent difference: never learnt from.
        assert!(choose_parent(&[cand(1, 0, 0.0, t0)], 1.0, t0 + 60, &p).is_none());
    }
}
