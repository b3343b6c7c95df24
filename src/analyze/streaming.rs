//! The stream detector inside the analyzer: per-metric [`StreamState`]s shared by the
//! analysis workers, and how its verdict combines with Skyline's (`[analyzer] detectors`,
//! `[analyzer] combine`).
//!
//! Owns [`StreamStore`] (in memory only: no Redis key, no table). Each analysis run hands a
//! worker the metric's FULL_DURATION series from Redis; the worker feeds the store the points
//! newer than the metric's last one, so the detector sees every datapoint once, in timestamp
//! order. A metric the store has not seen (first run, or after a restart) is rebuilt by
//! replaying its whole series: the restart needs no state store of its own, and only the last
//! point of a replay can raise an anomaly (older points were judged before the restart).
//!
//! Backpressure: none of its own. The work is O(new points) per metric per run inside the
//! worker pool, whose in-flight batches the run loop bounds; memory is one fixed-size state
//! per metric (see [`StreamState::BYTES`]). States of metrics that left
//! `metrics.unique_metrics` are dropped by [`StreamStore::retain`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use super::stream::{StreamParams, StreamState};

/// Name of the stream detector among triggered algorithms.
pub const STREAM: &str = "stream";

/// How the verdicts of the detectors that run make an anomaly (`[analyzer] combine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// Anomalous when any detector that ran says so.
    Any,
    /// Anomalous when every detector that ran says so.
    All,
    /// Skyline's algorithms alone decide (the stream detector still scores).
    Skyline,
    /// The stream detector alone decides.
    Stream,
}

impl Combine {
    /// Parses `any`, `all`, `skyline` or `stream`.
    pub fn parse(s: &str) -> Option<Combine> {
        match s {
            "any" => Some(Combine::Any),
            "all" => Some(Combine::All),
            "skyline" => Some(Combine::Skyline),
            "stream" => Some(Combine::Stream),
            _ => None,
        }
    }

    /// The combined verdict of the detectors that ran (`None`: did not run).
    pub fn decide(self, skyline: Option<bool>, stream: Option<bool>) -> bool {
        match (self, skyline, stream) {
            (_, Some(k), None) => k,
            (_, None, Some(s)) => s,
            (_, None, None) => false,
            (Combine::Any, Some(k), Some(s)) => k || s,
            (Combine::All, Some(k), Some(s)) => k && s,
            (Combine::Skyline, Some(k), Some(_)) => k,
            (Combine::Stream, Some(_), Some(s)) => s,
        }
    }
}

/// The stream detector as the analysis workers run it.
#[derive(Clone)]
pub struct StreamRun {
    /// The shared per-metric states.
    pub store: std::sync::Arc<StreamStore>,
    /// How verdicts combine.
    pub combine: Combine,
    /// Whether Skyline's algorithms are among `[analyzer] detectors`.
    pub skyline: bool,
}

impl StreamRun {
    /// Feed metric `name`'s sorted series and combine with Skyline's verdict: the combined
    /// verdict and the stream detector's own.
    pub fn judge(
        &self,
        name: &str,
        series: &[(f64, f64)],
        skyline_anomalous: bool,
    ) -> (bool, StreamVerdict) {
        let v = self.store.observe(name, series);
        let combined = self
            .combine
            .decide(self.skyline.then_some(skyline_anomalous), Some(v.anomalous));
        (combined, v)
    }
}

/// What the stream detector made of one metric in one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamVerdict {
    /// Points taken this run (the whole series on a replay).
    pub taken: usize,
    /// Whether this run rebuilt the metric's state from its series.
    pub replayed: bool,
    /// Highest score among the points that are judged this run (the new points; on a
    /// replay, the last point only).
    pub score: f64,
    /// The point with that score.
    pub point: Option<(f64, f64)>,
    /// `score >= threshold`.
    pub anomalous: bool,
}

const SHARDS: usize = 64;

/// One metric: its detector state and whether its last run's verdict was anomalous.
#[derive(Default)]
struct Entry {
    state: StreamState,
    above: bool,
}

/// Every metric's stream detector state, sharded by name so workers rarely contend.
pub struct StreamStore {
    params: StreamParams,
    shards: Vec<Mutex<HashMap<String, Entry>>>,
    above: AtomicI64,
}

impl StreamStore {
    /// An empty store using `params`.
    pub fn new(params: StreamParams) -> Self {
        StreamStore {
            params,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            above: AtomicI64::new(0),
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    fn shard(&self, name: &str) -> &Mutex<HashMap<String, Entry>> {
        // FNV-1a: deterministic and cheap.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        &self.shards[(h % SHARDS as u64) as usize]
    }

    /// Metrics whose last run's verdict was anomalous (a judged score at or above the
    /// threshold).
    pub fn above_threshold(&self) -> i64 {
        self.above.load(Ordering::Relaxed)
    }

    /// Metrics held.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    /// Whether no metric is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Feed `series` (sorted by timestamp) of metric `name`: the points newer than the last
    /// one taken, or all of them when the metric is new.
    pub fn observe(&self, name: &str, series: &[(f64, f64)]) -> StreamVerdict {
        let p = &self.params;
        let mut shard = self.shard(name).lock().unwrap_or_else(|e| e.into_inner());
        let replayed = !shard.contains_key(name);
        let entry = shard.entry(name.to_string()).or_default();
        let was_above = entry.above;
        let state = &mut entry.state;
        let last = state.last_timestamp();
        let start = match last {
            Some(t) => series.partition_point(|pt| (pt.0 as i64) <= t),
            None => 0,
        };
        let mut verdict = StreamVerdict {
            taken: 0,
            replayed,
            score: 0.0,
            point: None,
            anomalous: false,
        };
        let judged_from = if replayed {
            series.len().saturating_sub(1)
        } else {
            start
        };
        for (i, &(t, v)) in series.iter().enumerate().skip(start) {
            let before = state.points();
            let score = state.update(t as i64, v, p);
            if state.points() != before {
                verdict.taken += 1;
            }
            if i >= judged_from && (verdict.point.is_none() || score > verdict.score) {
                verdict.score = score;
                verdict.point = Some((t, v));
            }
        }
        verdict.anomalous = verdict.score >= p.threshold;
        let is_above = verdict.anomalous;
        entry.above = is_above;
        if is_above != was_above {
            let now = self
                .above
                .fetch_add(if is_above { 1 } else { -1 }, Ordering::Relaxed)
                + if is_above { 1 } else { -1 };
            crate::telemetry::metrics::STREAM_ABOVE_THRESHOLD.set(now);
        }
        verdict
    }

    /// Drop the states of metrics for which `keep` is false.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            shard.retain(|name, entry| {
                let k = keep(name);
                if !k && entry.above {
                    self.above.fetch_sub(1, Ordering::Relaxed);
                }
                k
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(n: usize, jump_at: usize) -> Vec<(f64, f64)> {
        (0..n)
            .map(|i| {
                let v = 10.0 + (i % 7) as f64 + if i >= jump_at { 500.0 } else { 0.0 };
                (1_000_000.0 + i as f64 * 60.0, v)
            })
            .collect()
    }

    #[test]
    fn combine_rules() {
        assert!(Combine::Any.decide(Some(false), Some(true)));
        assert!(!Combine::All.decide(Some(true), Some(false)));
        assert!(Combine::All.decide(Some(true), Some(true)));
        assert!(!Combine::Skyline.decide(Some(false), Some(true)));
        assert!(Combine::Stream.decide(Some(false), Some(true)));
        assert!(Combine::All.decide(Some(true), None));
        assert!(Combine::All.decide(None, Some(true)));
        assert!(!Combine::Skyline.decide(None, Some(false)));
        assert_eq!(Combine::parse("all"), Some(Combine::All));
        assert_eq!(Combine::parse("most"), None);
    }

    #[test]
    fn incremental_runs_equal_one_replay() {
        let s = series(1000, 900);
        let a = StreamStore::new(StreamParams::default());
        let b = StreamStore::new(StreamParams::default());
        // Each run sees the series so far (with the points of earlier runs again).
        for end in (300..=1000).step_by(50) {
            a.observe("m", &s[..end]);
        }
        b.observe("m", &s);
        let sa = a
            .shard("m")
            .lock()
            .unwrap()
            .get("m")
            .map(|e| e.state.clone());
        let sb = b
            .shard("m")
            .lock()
            .unwrap()
            .get("m")
            .map(|e| e.state.clone());
        assert!(sa.is_some());
        assert_eq!(sa, sb);
    }

    #[test]
    fn replay_judges_only_the_last_point_then_new_points() {
        let store = StreamStore::new(StreamParams::default());
        let s = series(1000, 900);
        // A replay containing an old jump does not report it...
        let v = store.observe("m", &s[..950]);
        assert!(v.replayed);
        assert_eq!(v.taken, 950);
        assert!(!v.anomalous, "{v:?}");
        // ...and a fresh metric whose new points jump is reported.
        let fresh = StreamStore::new(StreamParams::default());
        let v = fresh.observe("m", &s[..800]);
        assert!(v.replayed && !v.anomalous);
        let v = fresh.observe("m", &s[..905]);
        assert!(!v.replayed);
        assert_eq!(v.taken, 105);
        assert!(v.anomalous, "{v:?}");
        assert_eq!(fresh.above_threshold(), 1);
        // Nothing new: nothing taken.
        let v = fresh.observe("m", &s[..905]);
        assert_eq!(v.taken, 0);
        assert!(!v.anomalous);
        assert_eq!(fresh.above_threshold(), 0);
        fresh.retain(|_| false);
        assert!(fresh.is_empty());
    }
}
