//! Which `[[boundary.rules]]` apply to which metrics (Skyline's `metrics_manager` resolution
//! of `BOUNDARY_METRICS`, stages-spec §2.2). Pure: no I/O, no clock.
//!
//! Patterns and excludes are matched by [`crate::alert::rules::Matcher`], exactly as
//! `[[alerts]]` patterns are. For each metric every rule is tried in order and the **last**
//! matching rule per algorithm wins (a specific rule after a wildcard overrides it). A rule
//! that matches more than `max_metrics_per_rule` metrics has its algorithm removed from every
//! metric it matches (Skyline's cardinality guard). The winning rule's `excludes` then drop
//! the metric for that algorithm.

use super::algorithms::{Algorithm, Params};
use super::config::BoundaryRule;
use crate::alert::rules::Matcher;

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// The rule as configured.
    pub rule: BoundaryRule,
    /// Its algorithm.
    pub algorithm: Algorithm,
    matcher: Matcher,
    excludes: Vec<Matcher>,
}

impl CompiledRule {
    /// The algorithm's parameters.
    pub fn params(&self) -> Params {
        Params {
            algorithm: self.algorithm,
            trigger: self.rule.trigger_value,
            min_average: self.rule.min_average,
            min_average_seconds: self.rule.min_average_seconds,
        }
    }

    /// `alert_threshold`, with Skyline's 0 → 1.
    pub fn threshold(&self) -> u32 {
        self.rule.alert_threshold.max(1)
    }
}

/// The compiled rule list.
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    rules: Vec<CompiledRule>,
    cap: usize,
}

/// One (metric, rule) pair to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Index into the names given to [`RuleBook::resolve`].
    pub metric: usize,
    /// Index into [`RuleBook::rules`].
    pub rule: usize,
}

/// What [`RuleBook::resolve`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// The checks, ordered by metric, then algorithm (greater_than, less_than, cliff).
    pub checks: Vec<Check>,
    /// Rules over the cap: (rule index, metrics it matched).
    pub capped: Vec<(usize, usize)>,
    /// Checks dropped by a winning rule's `excludes`.
    pub excluded: usize,
}

const SLOTS: usize = 3;

fn slot(a: Algorithm) -> usize {
    match a {
        Algorithm::GreaterThan => 0,
        Algorithm::LessThan => 1,
        Algorithm::DetectDropOffCliff => 2,
    }
}

impl RuleBook {
    /// Compiles `rules`; fails on the first bad pattern or algorithm (check-config names all).
    pub fn new(rules: &[BoundaryRule], max_metrics_per_rule: usize) -> Result<RuleBook, String> {
        let rules = rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let n = if r.position > 0 { r.position } else { i + 1 };
                let at = |e: String| format!("[[boundary.rules]] #{n} ({:?}): {e}", r.pattern);
                Ok(CompiledRule {
                    algorithm: r.algorithm.parse().map_err(at)?,
                    matcher: Matcher::parse(&r.pattern).map_err(|e| at(format!("pattern: {e}")))?,
                    excludes: r
                        .excludes
                        .iter()
                        .map(|e| {
                            Matcher::parse(e).map_err(|err| at(format!("excludes {e:?}: {err}")))
                        })
                        .collect::<Result<_, _>>()?,
                    rule: r.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(RuleBook {
            rules,
            cap: max_metrics_per_rule,
        })
    }

    /// The compiled rules, in order.
    pub fn rules(&self) -> &[CompiledRule] {
        &self.rules
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The (metric, rule) pairs to evaluate for `names` (base names).
    pub fn resolve(&self, names: &[&str]) -> Resolution {
        let mut matched = vec![0usize; self.rules.len()];
        let mut winners: Vec<[Option<usize>; SLOTS]> = Vec::with_capacity(names.len());
        for name in names {
            let mut w = [None; SLOTS];
            for (i, r) in self.rules.iter().enumerate() {
                if r.matcher.matches(name).is_some() {
                    matched[i] += 1;
                    w[slot(r.algorithm)] = Some(i);
                }
            }
            winners.push(w);
        }
        let mut out = Resolution::default();
        for (i, r) in self.rules.iter().enumerate() {
            if matched[i] <= self.cap {
                continue;
            }
            out.capped.push((i, matched[i]));
            for (name, w) in names.iter().zip(winners.iter_mut()) {
                if r.matcher.matches(name).is_some() {
                    w[slot(r.algorithm)] = None;
                }
            }
        }
        for (m, (name, w)) in names.iter().zip(&winners).enumerate() {
            for rule in w.iter().flatten().copied() {
                if self.rules[rule]
                    .excludes
                    .iter()
                    .any(|e| e.matches(name).is_some())
                {
                    out.excluded += 1;
                    continue;
                }
                out.checks.push(Check { metric: m, rule });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, algorithm: &str, trigger: f64) -> BoundaryRule {
        BoundaryRule {
            pattern: pattern.into(),
            algorithm: algorithm.into(),
            trigger_value: trigger,
            min_average: 0.0,
            min_average_seconds: 0,
            alert_threshold: 1,
            alerters: vec![],
            expiration_secs: 1800,
            excludes: vec![],
            position: 0,
        }
    }

    fn pairs(book: &RuleBook, names: &[&str]) -> Vec<(String, String, f64)> {
        book.resolve(names)
            .checks
            .iter()
            .map(|c| {
                let r = &book.rules()[c.rule];
                (
                    names[c.metric].to_string(),
                    r.rule.algorithm.clone(),
                    r.rule.trigger_value,
                )
            })
            .collect()
    }

    #[test]
    fn last_matching_rule_per_algorithm_wins() {
        let book = RuleBook::new(
            &[
                rule("web.*.requests", "less_than", 10.0),
                rule("web.*.requests", "detect_drop_off_cliff", 0.0),
                rule("web.h1.requests", "less_than", 3.0),
                rule("db", "greater_than", 90.0),
            ],
            200,
        )
        .unwrap();
        let got = pairs(
            &book,
            &["web.h1.requests", "web.h2.requests", "db.cpu", "cpu"],
        );
        assert_eq!(
            got,
            vec![
                ("web.h1.requests".into(), "less_than".into(), 3.0),
                (
                    "web.h1.requests".into(),
                    "detect_drop_off_cliff".into(),
                    0.0
                ),
                ("web.h2.requests".into(), "less_than".into(), 10.0),
                (
                    "web.h2.requests".into(),
                    "detect_drop_off_cliff".into(),
                    0.0
                ),
                ("db.cpu".into(), "greater_than".into(), 90.0),
            ]
        );
    }

    #[test]
    fn excludes_of_the_winning_rule_skip_the_metric() {
        let mut wide = rule("web", "less_than", 10.0);
        wide.excludes = vec!["web.test.*".into()];
        let book = RuleBook::new(&[wide, rule("web", "greater_than", 5.0)], 200).unwrap();
        let r = book.resolve(&["web.test.a", "web.prod.a"]);
        assert_eq!(r.excluded, 1);
        let got = pairs(&book, &["web.test.a", "web.prod.a"]);
        assert_eq!(
            got,
            vec![
                ("web.test.a".into(), "greater_than".into(), 5.0),
                ("web.prod.a".into(), "greater_than".into(), 5.0),
                ("web.prod.a".into(), "less_than".into(), 10.0),
            ]
        );
    }

    #[test]
    fn a_rule_over_the_cap_loses_its_algorithm_on_every_metric_it_matches() {
        let names: Vec<String> = (0..201).map(|i| format!("web.h{i}.requests")).collect();
        let mut refs: Vec<&str> = names.iter().map(String::as_str).collect();
        refs.push("db.cpu");
        let book = RuleBook::new(
            &[
                rule("db.cpu", "less_than", 1.0),
                rule("web.*.requests", "greater_than", 10.0),
                // Matches everything: 202 metrics > 200, so less_than goes from all of them,
                // including db.cpu's own earlier rule.
                rule("^.*", "less_than", 2.0),
                rule("web.h7.requests", "detect_drop_off_cliff", 0.0),
            ],
            200,
        )
        .unwrap();
        let r = book.resolve(&refs);
        assert_eq!(r.capped, vec![(1, 201), (2, 202)]);
        let got = pairs(&book, &refs);
        assert_eq!(
            got,
            vec![(
                "web.h7.requests".into(),
                "detect_drop_off_cliff".into(),
                0.0
            )]
        );
        // At the cap exactly, nothing is removed.
        let r = book.resolve(&refs[..200]);
        assert!(r.capped.is_empty());
        assert_eq!(r.checks.len(), 200 + 200 + 1);
    }

    #[test]
    fn bad_rules_are_refused_with_their_number() {
        let err = RuleBook::new(
            &[rule("a", "less_than", 1.0), rule("b", "median", 1.0)],
            200,
        )
        .unwrap_err();
        assert!(err.contains("#2") && err.contains("median"), "{err}");
        let err = RuleBook::new(&[rule("^a(", "less_than", 1.0)], 200).unwrap_err();
        assert!(err.contains("#1") && err.contains("pattern"), "{err}");
    }
}
