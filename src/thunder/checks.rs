//! Thunder's decisions, pure: observations in, alerts and recoveries out. The clock is a
//! number of seconds handed in, so every rule is unit-tested without waiting.

use super::config::ThunderSettings;

/// What one check decided this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Nothing to send.
    Quiet,
    /// Send an alert (first time, or again after the expiry).
    Alert,
    /// The condition cleared after an alert: send a recovery notice.
    Recover,
}

/// The state of one check.
#[derive(Debug, Clone, Default)]
pub struct CheckState {
    since: Option<f64>,
    last_alert: Option<f64>,
    firing: bool,
}

impl CheckState {
    /// Feeds one observation: `failing` at `now`; alerts once it has held `after` seconds,
    /// then every `expiry` seconds; recovers when it clears after an alert.
    pub fn step(&mut self, now: f64, failing: bool, after: f64, expiry: f64) -> Step {
        if failing {
            let since = *self.since.get_or_insert(now);
            if now - since < after {
                return Step::Quiet;
            }
            match self.last_alert {
                Some(t) if now - t < expiry => Step::Quiet,
                _ => {
                    self.last_alert = Some(now);
                    self.firing = true;
                    Step::Alert
                }
            }
        } else {
            self.since = None;
            self.last_alert = None;
            if std::mem::take(&mut self.firing) {
                Step::Recover
            } else {
                Step::Quiet
            }
        }
    }

    /// True between an alert and its recovery.
    pub fn firing(&self) -> bool {
        self.firing
    }
}

/// One round of observations.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Datapoints received so far (monotonic).
    pub received: u64,
    /// Analysis runs finished or failed so far.
    pub analyzer_runs: u64,
    /// Overrunning runs so far.
    pub analyzer_overruns: u64,
    /// Duration of the last run, ms.
    pub analyzer_run_time_ms: i64,
    /// PING result (None: not checked).
    pub redis: Option<Result<(), String>>,
    /// `SELECT 1` result (None: no database or not checked).
    pub database: Option<Result<(), String>>,
    /// Anomalies waiting in Panorama's spool.
    pub panorama_spool: i64,
    /// Bytes waiting in flux's spool.
    pub flux_spool_bytes: i64,
}

/// An event to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The check.
    pub check: &'static str,
    /// Alert or recovery.
    pub step: Step,
    /// One line.
    pub summary: String,
}

/// Labels used in summaries.
#[derive(Debug, Clone, Default)]
pub struct Labels {
    /// Redis URL, password redacted.
    pub redis: String,
    /// Database URL, password redacted.
    pub database: String,
}

/// All checks and their memory.
#[derive(Debug, Clone)]
pub struct Checks {
    settings: ThunderSettings,
    /// `[analyzer] run_every_secs` when the Analyzer runs.
    run_every: Option<f64>,
    labels: Labels,
    states: [CheckState; 5],
    prev: Option<Observation>,
    last_received_change: f64,
    last_run_progress: f64,
    last_redis_error: String,
    last_db_error: String,
}

/// Seconds as `5m 0s`.
pub fn human(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s / 60 % 60),
    }
}

impl Checks {
    /// Checks as configured; `now` is the start.
    pub fn new(
        settings: ThunderSettings,
        run_every: Option<f64>,
        labels: Labels,
        now: f64,
    ) -> Self {
        Checks {
            settings,
            run_every,
            labels,
            states: Default::default(),
            prev: None,
            last_received_change: now,
            last_run_progress: now,
            last_redis_error: String::new(),
            last_db_error: String::new(),
        }
    }

    /// Number of checks currently between alert and recovery.
    pub fn failing(&self) -> usize {
        self.states.iter().filter(|s| s.firing()).count()
    }

    /// Feeds one round; returns what to send.
    pub fn evaluate(&mut self, now: f64, o: &Observation) -> Vec<Event> {
        let prev = self.prev.clone().unwrap_or_else(|| Observation {
            received: o.received,
            analyzer_runs: o.analyzer_runs,
            analyzer_overruns: o.analyzer_overruns,
            ..o.clone()
        });
        if o.received != prev.received {
            self.last_received_change = now;
        }
        if o.analyzer_runs != prev.analyzer_runs {
            self.last_run_progress = now;
        }
        let s = self.settings.clone();
        let mut out = Vec::new();

        // no_data: measured from the last change of the received count.
        if s.runs("no_data") {
            let quiet_for = now - self.last_received_change;
            let failing = quiet_for >= s.no_data_after_secs as f64;
            self.push(
                &mut out,
                0,
                now,
                failing,
                0.0,
                s.no_data_expiry_secs,
                "no_data",
                || format!("no datapoints received for {}", human(quiet_for)),
                || "datapoints are arriving again".to_string(),
            );
        }

        if let (true, Some(every)) = (s.runs("analyzer_overrun"), self.run_every) {
            let overran = o.analyzer_overruns > prev.analyzer_overruns;
            let slow = o.analyzer_run_time_ms as f64 > every * 1000.0;
            let stalled_for = now - self.last_run_progress;
            let stalled = stalled_for > 3.0 * every + s.check_interval_secs as f64;
            let run_time = o.analyzer_run_time_ms as f64 / 1000.0;
            self.push(
                &mut out,
                1,
                now,
                overran || slow || stalled,
                s.analyzer_overrun_after_secs as f64,
                s.analyzer_overrun_expiry_secs,
                "analyzer_overrun",
                || {
                    if stalled {
                        format!(
                            "no analysis run has finished for {} (run_every_secs {every})",
                            human(stalled_for)
                        )
                    } else {
                        format!(
                            "analysis is overrunning run_every_secs ({every}): the last run took {run_time:.1} s"
                        )
                    }
                },
                || format!("analysis runs finish within run_every_secs ({every}) again"),
            );
        }

        if let (true, Some(r)) = (s.runs("redis"), &o.redis) {
            if let Err(e) = r {
                self.last_redis_error = e.clone();
            }
            let (label, err) = (self.labels.redis.clone(), self.last_redis_error.clone());
            self.push(
                &mut out,
                2,
                now,
                r.is_err(),
                s.redis_after_secs as f64,
                s.redis_expiry_secs,
                "redis",
                || format!("Redis {label} unreachable: {err}"),
                || format!("Redis {label} answers again"),
            );
        }

        if let (true, Some(r)) = (s.runs("database"), &o.database) {
            if let Err(e) = r {
                self.last_db_error = e.clone();
            }
            let (label, err) = (self.labels.database.clone(), self.last_db_error.clone());
            self.push(
                &mut out,
                3,
                now,
                r.is_err(),
                s.database_after_secs as f64,
                s.database_expiry_secs,
                "database",
                || format!("Panorama database {label} unreachable: {err}"),
                || format!("Panorama database {label} answers again"),
            );
        }

        if s.runs("spool") {
            let pan = o.panorama_spool > 0 && o.panorama_spool >= prev.panorama_spool;
            let flux = o.flux_spool_bytes > 0 && o.flux_spool_bytes >= prev.flux_spool_bytes;
            let (p, f) = (o.panorama_spool, o.flux_spool_bytes);
            self.push(
                &mut out,
                4,
                now,
                pan || flux,
                s.spool_after_secs as f64,
                s.spool_expiry_secs,
                "spool",
                || {
                    let mut parts = Vec::new();
                    if pan {
                        parts.push(format!(
                            "Panorama's spool holds {p} anomalies (database not taking them)"
                        ));
                    }
                    if flux {
                        parts.push(format!(
                            "flux's spool holds {f} bytes for carbon (carbon not taking them)"
                        ));
                    }
                    format!("spool not draining: {}", parts.join("; "))
                },
                || "spools are draining again".to_string(),
            );
        }
        self.prev = Some(o.clone());
        out
    }

    #[allow(clippy::too_many_arguments)] // reason: one call site per check, all positional
    fn push(
        &mut self,
        out: &mut Vec<Event>,
        idx: usize,
        now: f64,
        failing: bool,
        after: f64,
        expiry: u64,
        check: &'static str,
        fire: impl FnOnce() -> String,
        recover: impl FnOnce() -> String,
    ) {
        match self.states[idx].step(now, failing, after, expiry as f64) {
            Step::Quiet => {}
            Step::Alert => out.push(Event {
                check,
                step: Step::Alert,
                summary: fire(),
            }),
            Step::Recover => out.push(Event {
                check,
                step: Step::Recover,
                summary: recover(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ThunderSettings {
        ThunderSettings {
            no_data_after_secs: 120,
            redis_after_secs: 30,
            redis_expiry_secs: 300,
            spool_after_secs: 60,
            ..Default::default()
        }
    }

    #[test]
    fn state_machine_alerts_repeats_and_recovers() {
        let mut s = CheckState::default();
        assert_eq!(s.step(0.0, true, 10.0, 100.0), Step::Quiet);
        assert_eq!(s.step(5.0, true, 10.0, 100.0), Step::Quiet);
        assert_eq!(s.step(10.0, true, 10.0, 100.0), Step::Alert);
        assert_eq!(s.step(50.0, true, 10.0, 100.0), Step::Quiet);
        assert_eq!(s.step(110.0, true, 10.0, 100.0), Step::Alert);
        assert!(s.firing());
        assert_eq!(s.step(120.0, false, 10.0, 100.0), Step::Recover);
        assert_eq!(s.step(130.0, false, 10.0, 100.0), Step::Quiet);
        // A blip shorter than `after` never alerts, so never recovers.
        assert_eq!(s.step(140.0, true, 10.0, 100.0), Step::Quiet);
        assert_eq!(s.step(145.0, false, 10.0, 100.0), Step::Quiet);
    }

    #[test]
    fn no_data_counts_from_the_last_datapoint() {
        let mut c = Checks::new(settings(), None, Labels::default(), 0.0);
        let mut o = Observation {
            redis: None,
            ..Default::default()
        };
        assert!(c.evaluate(60.0, &o).is_empty());
        o.received = 10;
        assert!(c.evaluate(100.0, &o).is_empty());
        assert!(
            c.evaluate(200.0, &o).is_empty(),
            "only 100 s since the data"
        );
        let ev = c.evaluate(220.0, &o);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].check, "no_data");
        assert_eq!(ev[0].summary, "no datapoints received for 2m 0s");
        assert_eq!(c.failing(), 1);
        o.received = 11;
        let ev = c.evaluate(230.0, &o);
        assert_eq!(ev[0].step, Step::Recover);
    }

    #[test]
    fn redis_waits_for_after_and_repeats_after_expiry() {
        let mut c = Checks::new(
            settings(),
            None,
            Labels {
                redis: "redis://h:1/0".into(),
                database: String::new(),
            },
            0.0,
        );
        let down = Observation {
            received: 1,
            redis: Some(Err("connection refused".into())),
            ..Default::default()
        };
        let up = Observation {
            redis: Some(Ok(())),
            ..down.clone()
        };
        let redis_events = |ev: Vec<Event>| -> Vec<Event> {
            ev.into_iter().filter(|e| e.check == "redis").collect()
        };
        assert!(redis_events(c.evaluate(0.0, &down)).is_empty());
        let ev = redis_events(c.evaluate(30.0, &down));
        assert_eq!(
            ev[0].summary,
            "Redis redis://h:1/0 unreachable: connection refused"
        );
        assert!(redis_events(c.evaluate(200.0, &down)).is_empty());
        assert_eq!(redis_events(c.evaluate(330.0, &down)).len(), 1);
        let ev = redis_events(c.evaluate(340.0, &up));
        assert_eq!(ev[0].step, Step::Recover);
        assert_eq!(ev[0].summary, "Redis redis://h:1/0 answers again");
    }

    #[test]
    fn analyzer_overrun_and_stall() {
        let mut c = Checks::new(settings(), Some(10.0), Labels::default(), 0.0);
        let mut o = Observation {
            analyzer_runs: 1,
            ..Default::default()
        };
        assert!(c
            .evaluate(0.0, &o)
            .iter()
            .all(|e| e.check != "analyzer_overrun"));
        o.analyzer_runs = 2;
        o.analyzer_overruns = 1;
        o.analyzer_run_time_ms = 12_500;
        let ev: Vec<Event> = c
            .evaluate(60.0, &o)
            .into_iter()
            .filter(|e| e.check == "analyzer_overrun")
            .collect();
        assert!(ev[0].summary.contains("the last run took 12.5 s"), "{ev:?}");
        o.analyzer_run_time_ms = 1_000;
        o.analyzer_runs = 3;
        let ev: Vec<Event> = c
            .evaluate(70.0, &o)
            .into_iter()
            .filter(|e| e.check == "analyzer_overrun")
            .collect();
        assert_eq!(ev[0].step, Step::Recover);
        // No run finishes for more than 3 intervals + one check interval: stalled.
        let ev: Vec<Event> = c
            .evaluate(70.0 + 30.0 + 61.0, &o)
            .into_iter()
            .filter(|e| e.check == "analyzer_overrun")
            .collect();
        assert!(
            ev[0].summary.contains("no analysis run has finished"),
            "{ev:?}"
        );
    }

    #[test]
    fn spool_not_draining() {
        let mut c = Checks::new(settings(), None, Labels::default(), 0.0);
        let spool = |p: i64, t: f64, c: &mut Checks| -> Vec<Event> {
            c.evaluate(
                t,
                &Observation {
                    received: t as u64,
                    panorama_spool: p,
                    ..Default::default()
                },
            )
            .into_iter()
            .filter(|e| e.check == "spool")
            .collect()
        };
        assert!(spool(3, 0.0, &mut c).is_empty());
        assert!(spool(4, 30.0, &mut c).is_empty());
        let ev = spool(4, 60.0, &mut c);
        assert!(ev[0].summary.contains("holds 4 anomalies"), "{ev:?}");
        // Shrinking is draining.
        assert_eq!(spool(2, 70.0, &mut c)[0].step, Step::Recover);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(5.0), "5s");
        assert_eq!(human(300.0), "5m 0s");
        assert_eq!(human(7260.0), "2h 1m");
    }
}
