//! What senders (the Analyzer) hand to the Ionosphere matcher, and the state they share with
//! it: the set of Ionosphere-enabled metrics and the anomalies waiting for a verdict.
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

use actix::Message;

use crate::model::Anomaly;

/// Compare one anomaly with its metric's profiles.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct CheckAnomaly {
    /// The anomaly.
    pub anomaly: Anomaly,
    /// The series it was found in (time order).
    pub series: Vec<(i64, f64)>,
    /// Its nominal window (`[horizon] full_duration_secs` for the Analyzer): only profiles of
    /// this duration are compared by features.
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
