//! What senders (the Analyzer, Mirage) hand to the Ionosphere matcher, and the state they
//! share with it: the set of Ionosphere-enabled metrics and the anomalies waiting for a
//! verdict. [`IonosphereHandoff`] is the senders' side: both senders import only this module.
//!
//! The waiting list is the waterfall (Skyline's `analyzer.waterfall_alerts.sent_to_ionosphere`,
//! in memory): the sender adds an anomaly before sending its check; whoever **removes** it
//! acts on it — the matcher when it has decided (match: recorded in `ionosphere_matched`,
//! nothing else; no match: recorded and alerted), the sender when it has waited
//! `waterfall_secs` (recorded and alerted). So a matcher that is down, slow or stuck delays an
//! alert by at most the waterfall, never loses it. Held in memory only: anomalies waiting at
//! a restart are not alerted by the waterfall (the Analyzer finds them again if they are still
//! anomalous).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix::{Message, Recipient};
use log::error;

use crate::model::Anomaly;
use crate::telemetry::metrics as m;

/// Compare one anomaly with its metric's profiles.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CheckAnomaly {
    /// The anomaly.
    pub anomaly: Anomaly,
    /// The series it was found in (time order).
    pub series: Vec<(i64, f64)>,
    /// Its nominal window (`[horizon] full_duration_secs` for the Analyzer, the Mirage hours
    /// for Mirage): only profiles of this duration are compared by features.
    pub full_duration: i64,
}

/// Reload the enabled-metrics set if profiles changed (or a minute passed). Sent by a timer.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct Refresh;

/// Anomalies waiting for the matcher, by (metric, timestamp), with when they were handed over.
type Waiting = HashMap<(String, i64), (Instant, Anomaly)>;

/// State shared by the senders and the matcher (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct Shared {
    enabled: Arc<RwLock<HashSet<String>>>,
    pending: Arc<Mutex<Waiting>>,
    seen: Arc<Mutex<HashMap<(String, i64), Instant>>>,
}

/// What [`Shared::add_pending`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// On the waiting list: send the check.
    Added,
    /// This anomaly (metric and timestamp) was handed over within [`SEEN_SECS`]: already
    /// decided (or waiting), nothing to do. The Analyzer finds the same anomaly every run
    /// until new data arrives; Skyline checks it once too (`ionosphere.check.<file>` key).
    Seen,
    /// The waiting list is full: record and alert it now.
    Full,
}

/// How long a handed-over anomaly is remembered (Skyline's `ionosphere.check.*` TTL, 3960 s).
pub const SEEN_SECS: u64 = 3960;

impl Shared {
    /// Empty: no metric enabled, nothing waiting.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `metric` has profiles (its anomalies go to the matcher).
    pub fn is_enabled(&self, metric: &str) -> bool {
        self.enabled
            .read()
            .map(|s| s.contains(metric))
            .unwrap_or(false)
    }

    /// Replaces the enabled set.
    pub fn set_enabled(&self, metrics: HashSet<String>) {
        if let Ok(mut s) = self.enabled.write() {
            *s = metrics;
        }
    }

    /// Marks `metric` enabled at once (a profile was just created).
    pub fn enable(&self, metric: &str) {
        if let Ok(mut s) = self.enabled.write() {
            s.insert(metric.to_string());
        }
    }

    /// Adds an anomaly to the waiting list unless it was handed over already or `max` are
    /// waiting.
    pub fn add_pending(&self, anomaly: &Anomaly, max: usize) -> Added {
        let key = (anomaly.metric.clone(), anomaly.timestamp);
        if let Ok(mut seen) = self.seen.lock() {
            let ttl = Duration::from_secs(SEEN_SECS);
            if seen.len() > 10_000 {
                seen.retain(|_, t| t.elapsed() < ttl);
            }
            if seen.get(&key).is_some_and(|t| t.elapsed() < ttl) {
                return Added::Seen;
            }
        }
        let Ok(mut p) = self.pending.lock() else {
            return Added::Full;
        };
        if p.len() >= max {
            return Added::Full;
        }
        p.insert(key.clone(), (Instant::now(), anomaly.clone()));
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(key, Instant::now());
        }
        Added::Added
    }

    /// Removes an anomaly from the waiting list; true when it was there (the caller acts on
    /// it).
    pub fn take_pending(&self, metric: &str, timestamp: i64) -> bool {
        self.pending
            .lock()
            .map(|mut p| p.remove(&(metric.to_string(), timestamp)).is_some())
            .unwrap_or(false)
    }

    /// Removes and returns the anomalies waiting longer than `after`.
    pub fn take_expired(&self, after: Duration) -> Vec<Anomaly> {
        let Ok(mut p) = self.pending.lock() else {
            return Vec::new();
        };
        let keys: Vec<(String, i64)> = p
            .iter()
            .filter(|(_, (t, _))| t.elapsed() >= after)
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter()
            .filter_map(|k| p.remove(k))
            .map(|(_, a)| a)
            .collect()
    }

    /// Anomalies waiting now.
    pub fn pending_len(&self) -> usize {
        self.pending.lock().map(|p| p.len()).unwrap_or(0)
    }
}

/// A sender's side of the hand-off (spec §3.3, §3.9; §1.8 step 7 for Mirage): one per sender
/// (the Analyzer's and Mirage's share the same [`Shared`] waiting list, so whichever sender
/// runs first alerts an expired anomaly, exactly once).
///
/// Each anomaly of an Ionosphere-enabled metric (one with a features profile,
/// [`Shared::is_enabled`]) is put on the waiting list and sent to the matcher as a
/// [`CheckAnomaly`] with the series it was found in, instead of being recorded and alerted.
/// Fallbacks, each alerting rather than silencing: no series, or the waiting list is full
/// (`[ionosphere] queue_max`) → recorded and alerted by the sender at once (counted, logged
/// once a minute); an anomaly still waiting after `waterfall_secs` (matcher down, slow or
/// stuck) → taken off the list and recorded and alerted by the sender (counted
/// `…ionosphere_waterfall…`).
pub struct IonosphereHandoff {
    /// The matcher.
    pub check: Recipient<CheckAnomaly>,
    /// Enabled metrics and the waiting list, shared with the matcher.
    pub shared: Shared,
    /// Seconds after which an undecided anomaly is recorded and alerted by the sender.
    pub waterfall_secs: u64,
    /// Most anomalies waiting at once.
    pub queue_max: usize,
    /// The duration of the sender's series (`[horizon] full_duration_secs` for the
    /// Analyzer); [`IonosphereHandoff::hand_off_one`] takes its own.
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

    /// Hands one anomaly to the matcher when its metric is Ionosphere-enabled. Returns the
    /// anomaly when the sender must record and alert it itself (not enabled, no series, the
    /// waiting list full); None when the matcher (or the waterfall) now owns it, or it was
    /// handed over already ([`Added::Seen`]).
    pub fn hand_off_one(
        &mut self,
        a: Anomaly,
        series: Vec<(i64, f64)>,
        full_duration: i64,
    ) -> Option<Anomaly> {
        if !self.shared.is_enabled(&a.metric) {
            return Some(a);
        }
        let added = if series.is_empty() {
            Added::Full
        } else {
            self.shared.add_pending(&a, self.queue_max)
        };
        match added {
            Added::Seen => None,
            Added::Full => {
                m::IONOSPHERE_WATERFALL.inc();
                self.log_once_a_minute(&format!(
                    "ionosphere hand-off: waiting list full ({} anomalies) or no series; alerting {} at once",
                    self.queue_max, a.metric
                ));
                Some(a)
            }
            Added::Added => {
                self.check.do_send(CheckAnomaly {
                    anomaly: a,
                    series,
                    full_duration,
                });
                None
            }
        }
    }

    /// Takes the anomalies that waited longer than `waterfall_secs` off the list: the caller
    /// records and alerts them.
    pub fn take_expired(&mut self) -> Vec<Anomaly> {
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
        expired
    }

    /// The Analyzer's run: sends the anomalies of enabled metrics to the matcher (with their
    /// series from `series`, at [`Self::full_duration`]) and returns the ones the caller must
    /// record and alert itself: those of other metrics, those refused, and those whose
    /// waterfall expired.
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
            let fd = self.full_duration;
            own.extend(self.hand_off_one(a, s, fd));
        }
        own.extend(self.take_expired());
        own
    }
}
