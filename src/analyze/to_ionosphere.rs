//! The Analyzer's side of the Ionosphere hand-off (spec §3.3, §3.9), kept apart from the run
//! loop.
//!
//! After each run, each anomaly of an Ionosphere-enabled metric (one with a features profile,
//! [`Shared::is_enabled`]) is put on the waiting list and sent to the matcher as a
//! `CheckAnomaly` with the series it was found in, instead of being recorded and alerted.
//! Fallbacks, each alerting rather than silencing: the waiting list is full
//! (`[ionosphere] queue_max`) → recorded and alerted at once (counted, logged once a minute);
//! an anomaly still waiting after `waterfall_secs` (matcher down, slow or stuck) → taken off
//! the list and recorded and alerted by the Analyzer (counted `…ionosphere_waterfall…`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::Recipient;
use log::error;

use crate::ionosphere::messages::{Added, CheckAnomaly, Shared};
use crate::model::Anomaly;
use crate::telemetry::metrics as m;

/// What the Analyzer needs to hand anomalies to Ionosphere (built by `app`).
pub struct IonosphereHandoff {
    /// The matcher.
    pub check: Recipient<CheckAnomaly>,
    /// Enabled metrics and the waiting list, shared with the matcher.
    pub shared: Shared,
    /// Seconds after which an undecided anomaly is recorded and alerted by the Analyzer.
    pub waterfall_secs: u64,
    /// Most anomalies waiting at once.
    pub queue_max: usize,
    /// `[horizon] full_duration_secs`: the duration of the Analyzer's series.
    pub full_duration: i64,
    last_log: Option<Instant>,
}

impl IonosphereHandoff {
    /// A hand-off to `check`.
    pub fn new(
        check: Recipient<CheckAnomaly>,
        shared: Shared,
        waterfall_secs: u64,
        queue_max: usize,
        full_duration: i64,
    ) -> Self {
        IonosphereHandoff {
            check,
            shared,
            waterfall_secs,
            queue_max,
            full_duration,
            last_log: None,
        }
    }

    fn log_once_a_minute(&mut self, msg: &str) {
        if self
            .last_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            error!("{msg} (logged once a minute)");
            self.last_log = Some(Instant::now());
        }
    }

    /// Sends the anomalies of enabled metrics to the matcher and returns the ones the Analyzer
    /// must record and alert itself: those of other metrics, those the full waiting list
    /// refused, and those whose waterfall expired.
    pub fn hand_off(
        &mut self,
        anomalies: Vec<Anomaly>,
        series: &mut HashMap<String, Vec<(i64, f64)>>,
    ) -> Vec<Anomaly> {
        let mut own = Vec::new();
        for a in anomalies {
            if !self.shared.is_enabled(&a.metric) {
                own.push(a);
                continue;
            }
            let s = series.get(&a.metric).cloned().unwrap_or_default();
            let added = if s.is_empty() {
                Added::Full
            } else {
                self.shared.add_pending(&a, self.queue_max)
            };
            if added == Added::Seen {
                continue;
            }
            if added == Added::Full {
                m::IONOSPHERE_WATERFALL.inc();
                self.log_once_a_minute(&format!(
                    "ionosphere hand-off: waiting list full ({} anomalies) or no series; alerting {} at once",
                    self.queue_max, a.metric
                ));
                own.push(a);
                continue;
            }
            self.check.do_send(CheckAnomaly {
                anomaly: a,
                series: s,
                full_duration: self.full_duration,
            });
        }
        let expired = self
            .shared
            .take_expired(Duration::from_secs(self.waterfall_secs));
        if !expired.is_empty() {
            m::IONOSPHERE_WATERFALL.add(expired.len() as u64);
            let names: Vec<&str> = expired.iter().map(|a| a.metric.as_str()).collect();
            let msg = format!(
                "ionosphere did not decide within {} s on {}; alerting them (waterfall)",
                self.waterfall_secs,
                names.join(", ")
            );
            self.log_once_a_minute(&msg);
        }
        own.extend(expired);
        own
    }
}
