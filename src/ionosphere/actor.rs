//! The Ionosphere matcher: a `SyncArbiter` actor (one thread: diesel blocks) that compares each
//! anomaly of an Ionosphere-enabled metric with the metric's enabled profiles (spec §3.7
//! steps 7–17 without motifs, echo or learning).
//!
//! Accepts [`CheckAnomaly`] (from the Analyzer, `do_send`) and [`Refresh`] (a timer). Per
//! check: the metric's profiles (cached per metric; the cache is dropped when
//! [`super::cache::version`] changes, i.e. a profile was trained, enabled or disabled), the
//! anomaly's features, the features-sum comparison with the min-max retry against profiles of
//! the anomaly's duration, then the layers of every enabled profile. Then it takes the anomaly
//! off the waiting list ([`Shared::take_pending`]); only if it was still there does it act:
//! a match updates the profile (or layer) counts and writes `ionosphere_matched` (or
//! `ionosphere_layers_matched`) — no anomaly row, no alert; no match (or any failure:
//! database, features) sends `RecordAnomaly` and `AlertAnomaly` on as the Analyzer would.
//!
//! Learning (spec §3.13, [`super::learn`]): an unmatched anomaly of a metric in a learning
//! namespace (`[[ionosphere.learn]]`) is queued; once it is `learn_valid_ts_older_than`
//! seconds old (the metric's `metrics` learn columns) the queue, run on every [`Refresh`],
//! creates a generation-n profile from its series when its features sum is within
//! `max_percent_diff_from_origin` of an enabled profile's origin. The queue is in memory and
//! bounded ([`LEARN_QUEUE_MAX`], the oldest dropped and counted when full): a restart forgets
//! it, which only means a profile is not learnt (an anomaly is never silenced by learning).
//!
//! Tables: reads `ionosphere`, `ionosphere_fp_features`, `ionosphere_minmax`,
//! `ionosphere_layers`, `layers_algorithms`, `metrics`; writes `ionosphere` (counts),
//! `ionosphere_matched`, `ionosphere_layers` (counts), `ionosphere_layers_matched`.
//! Backpressure: the mailbox is bounded by the waiting list (`[ionosphere] queue_max`, the
//! sender records and alerts itself when it is full); a check the actor has not decided within
//! `waterfall_secs` is recorded and alerted by the sender.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr, Handler, Recipient, SyncArbiter, SyncContext};
use log::{error, info};

use super::features;
use super::learn::{self, Candidate, LearnNamespace, Learnt};
use super::matching::{self, MatchSettings, Profile, Rule};
use super::messages::{CheckAnomaly, Refresh, Shared};
use super::training;
use crate::alert::AlertAnomaly;
use crate::db::ionosphere::{self as q, NewLayersMatch, NewMatch, ProfileFeatures};
use crate::db::{DbError, IdCache, Lookup, Pool};
use crate::model::Anomaly;
use crate::panorama::RecordAnomaly;
use crate::telemetry::metrics as m;

/// Errors of one check; each makes the anomaly go on as not matched.
#[derive(Debug, thiserror::Error)]
pub enum IonosphereError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// No features could be computed.
    #[error("features: {0}")]
    Features(#[from] features::FeatureError),
}

/// Everything the matcher needs, built by `app`.
pub struct IonosphereSetup {
    /// The Panorama database.
    pub pool: Pool,
    /// Thresholds.
    pub settings: MatchSettings,
    /// The learning namespaces (`[[ionosphere.learn]]`).
    pub learn: Vec<LearnNamespace>,
    /// Shared with the senders.
    pub shared: Shared,
    /// Panorama (unmatched anomalies).
    pub record: Vec<Recipient<RecordAnomaly>>,
    /// The alert actor (unmatched anomalies).
    pub alert: Vec<Recipient<AlertAnomaly>>,
}

/// The verdict of one check, with the row to record for a match.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Matched a profile by features.
    Features(NewMatch),
    /// Matched a profile's layers.
    Layers(NewLayersMatch),
    /// No match.
    NotMatched,
}

/// Unmatched anomalies waiting to be learnt from, at most.
pub const LEARN_QUEUE_MAX: usize = 100;

/// An unmatched anomaly of a learning namespace, with its series.
#[derive(Debug, Clone)]
struct LearnJob {
    anomaly: Anomaly,
    series: Vec<(i64, f64)>,
    full_duration: i64,
}

/// What one learn job came to.
#[derive(Debug, Clone, PartialEq)]
pub enum LearnStep {
    /// Not `learn_valid_ts_older_than` old yet: kept queued.
    Wait,
    /// Nothing to learn (no profile close enough, too short, learnt already).
    Nothing,
    /// A profile was learnt: its id and how.
    Learnt(i32, Learnt),
}

/// The matcher.
pub struct Ionosphere {
    setup: IonosphereSetup,
    learn_queue: VecDeque<LearnJob>,
    ids: IdCache,
    cache: HashMap<String, (i32, Vec<ProfileFeatures>)>,
    version: u64,
    refreshed: Option<(u64, Instant)>,
    logged_at: Option<Instant>,
}

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl Ionosphere {
    /// A matcher (not started).
    pub fn new(setup: IonosphereSetup) -> Self {
        Ionosphere {
            setup,
            learn_queue: VecDeque::new(),
            ids: IdCache::new(),
            cache: HashMap::new(),
            version: super::cache::version(),
            refreshed: None,
            logged_at: None,
        }
    }

    /// Starts it on a one-thread `SyncArbiter`, and a timer on the current arbiter sending
    /// [`Refresh`] every 5 s (the enabled-metrics set is reloaded when profiles changed, or
    /// every minute). Call from within a running actix `System`.
    pub fn start(setup: IonosphereSetup) -> Addr<Ionosphere> {
        let addr = SyncArbiter::start(1, move || {
            Ionosphere::new(IonosphereSetup {
                pool: setup.pool.clone(),
                settings: setup.settings,
                learn: setup.learn.clone(),
                shared: setup.shared.clone(),
                record: setup.record.clone(),
                alert: setup.alert.clone(),
            })
        });
        let weak = addr.downgrade();
        actix::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                let Some(a) = weak.upgrade() else { break };
                a.do_send(Refresh);
            }
        });
        addr
    }

    fn log_error(&mut self, msg: &str) {
        if self
            .logged_at
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            self.logged_at = Some(Instant::now());
            error!("{msg} (logged once a minute)");
        } else {
            log::debug!("{msg}");
        }
    }

    fn refresh(&mut self) {
        let v = super::cache::version();
        if self
            .refreshed
            .is_some_and(|(rv, t)| rv == v && t.elapsed() < Duration::from_secs(60))
        {
            return;
        }
        match q::enabled_metrics(&self.setup.pool) {
            Ok(list) => {
                let set: HashSet<String> = list.into_iter().map(|(_, m)| m).collect();
                self.setup.shared.set_enabled(set);
                self.refreshed = Some((v, Instant::now()));
            }
            Err(e) => {
                m::IONOSPHERE_ERRORS.inc();
                self.log_error(&format!(
                    "ionosphere :: reading the enabled metrics from {} failed: {e}",
                    self.setup.pool.target()
                ));
            }
        }
    }

    fn profiles(&mut self, metric: &str) -> Result<(i32, Vec<ProfileFeatures>), DbError> {
        let v = super::cache::version();
        if v != self.version {
            self.cache.clear();
            self.version = v;
        }
        if let Some(c) = self.cache.get(metric) {
            return Ok(c.clone());
        }
        let metric_id = crate::db::queries::resolve_id(
            &self.setup.pool,
            &mut self.ids,
            Lookup::Metric,
            metric,
        )?;
        let profiles = q::matching_profiles(&self.setup.pool, metric_id)?;
        self.cache
            .insert(metric.to_string(), (metric_id, profiles.clone()));
        Ok((metric_id, profiles))
    }

    /// Decides one check (no side effect on the waiting list or recipients).
    pub fn judge(&mut self, check: &CheckAnomaly) -> Result<Verdict, IonosphereError> {
        let a = &check.anomaly;
        let (metric_id, profiles) = self.profiles(&a.metric)?;
        if profiles.is_empty() {
            return Ok(Verdict::NotMatched);
        }
        let values: Vec<f64> = check.series.iter().map(|&(_, v)| v).collect();
        let at_duration: Vec<Profile> = profiles
            .iter()
            .filter(|p| p.full_duration == check.full_duration)
            .map(|p| Profile {
                id: p.id,
                features: p.features.clone(),
                minmax: p.minmax,
            })
            .collect();
        let now = now_epoch();
        if !at_duration.is_empty() {
            let f = features::extract(&values)?;
            let (found, checked) =
                matching::match_features(&at_duration, &f, &values, &self.setup.settings);
            q::record_checked(&self.setup.pool, &checked, now)?;
            if let Some(hit) = found {
                let mm = hit.minmax;
                return Ok(Verdict::Features(NewMatch {
                    fp_id: hit.fp_id,
                    metric_timestamp: a.timestamp,
                    all_calc_features_sum: f.sum(),
                    all_calc_features_count: i32::try_from(f.count()).unwrap_or(i32::MAX),
                    sum_common_values: hit.comparison.sum_calc,
                    common_features_count: i32::try_from(hit.comparison.common_count)
                        .unwrap_or(i32::MAX),
                    minmax: mm.is_some(),
                    minmax_fp_features_sum: mm.map_or(0.0, |r| r.fp_sum),
                    minmax_anomalous_features_sum: mm.map_or(0.0, |r| r.anomalous_sum),
                    minmax_features_count: mm
                        .map_or(0, |r| i32::try_from(r.features_count).unwrap_or(i32::MAX)),
                    fp_count: i32::try_from(at_duration.len()).unwrap_or(i32::MAX),
                    fp_checked: i32::try_from(hit.fp_checked).unwrap_or(i32::MAX),
                    now,
                }));
            }
        }
        let with_layers: Vec<&ProfileFeatures> =
            profiles.iter().filter(|p| !p.layers.is_empty()).collect();
        let checked = with_layers.len();
        for p in with_layers {
            let mut by_layer: Vec<i32> = p.layers.iter().map(|l| l.layer_id).collect();
            by_layer.dedup();
            for layer_id in by_layer {
                let rules: Vec<Rule> = p
                    .layers
                    .iter()
                    .filter(|l| l.layer_id == layer_id)
                    .map(|l| Rule {
                        layer: l.layer.clone(),
                        condition: l.condition.clone(),
                        boundary: l.boundary.clone(),
                        times_in_row: l.times_in_row,
                    })
                    .collect();
                let v = matching::evaluate_layers(&rules, &values, &self.setup.settings);
                if !v.matched {
                    continue;
                }
                let (ts, value) = check
                    .series
                    .last()
                    .copied()
                    .unwrap_or((a.timestamp, a.datapoint));
                return Ok(Verdict::Layers(NewLayersMatch {
                    layer_id,
                    fp_id: p.id,
                    metric_id,
                    anomaly_timestamp: ts,
                    anomalous_datapoint: value,
                    full_duration: check.full_duration,
                    layers_checked: i32::try_from(checked).unwrap_or(i32::MAX),
                    approx_close: v.approx_close,
                    now,
                }));
            }
        }
        Ok(Verdict::NotMatched)
    }

    /// Learns from one queued anomaly (see the module docs) at `now`.
    fn learn_one(&mut self, job: &LearnJob, now: i64) -> Result<LearnStep, IonosphereError> {
        let a = &job.anomaly;
        let (metric_id, profiles) = self.profiles(&a.metric)?;
        let pool = &self.setup.pool;
        let params = q::learn_params(pool, metric_id)?.unwrap_or_default();
        if now - a.timestamp < i64::from(params.valid_ts_older_than) {
            return Ok(LearnStep::Wait);
        }
        if q::profile_at(pool, metric_id, a.timestamp, job.full_duration)?.is_some() {
            return Ok(LearnStep::Nothing);
        }
        let mut candidates = Vec::new();
        for p in profiles
            .iter()
            .filter(|p| p.full_duration == job.full_duration)
        {
            if let Some((_, sum, ts)) = q::origin_of(pool, p.id)? {
                candidates.push(Candidate {
                    fp_id: p.id,
                    generation: p.generation,
                    origin_features_sum: sum,
                    origin_timestamp: ts,
                });
            }
        }
        if candidates.is_empty() {
            return Ok(LearnStep::Nothing);
        }
        let Ok(computed) = training::profile_of(&job.series, job.full_duration) else {
            return Ok(LearnStep::Nothing);
        };
        let Some(how) = learn::choose_parent(&candidates, computed.sum(), a.timestamp, &params)
        else {
            return Ok(LearnStep::Nothing);
        };
        let values: Vec<f64> = job.series.iter().map(|&(_, v)| v).collect();
        let fp_id = q::create_profile(
            pool,
            &q::NewProfile {
                metric_id,
                full_duration: job.full_duration,
                anomaly_timestamp: a.timestamp,
                calc_time: computed.calc_time,
                features_count: i32::try_from(computed.count()).unwrap_or(i32::MAX),
                features_sum: computed.sum(),
                features: computed.stored.clone(),
                series: job.series.clone(),
                minmax: matching::minmax_of(&values),
                parent_id: how.parent_id,
                generation: how.generation,
                label: Some(learn::LEARNT_LABEL.into()),
                user: learn::LEARN_USER.into(),
            },
        )?;
        super::cache::changed();
        m::IONOSPHERE_TRAINED.inc();
        Ok(LearnStep::Learnt(fp_id, how))
    }

    /// Runs the learn jobs that are due; the others stay queued.
    pub fn learn_due(&mut self) -> Vec<LearnStep> {
        let now = now_epoch();
        let mut steps = Vec::new();
        let mut keep = VecDeque::new();
        while let Some(job) = self.learn_queue.pop_front() {
            match self.learn_one(&job, now) {
                Ok(LearnStep::Wait) => {
                    keep.push_back(job);
                    steps.push(LearnStep::Wait);
                }
                Ok(step) => {
                    if let LearnStep::Learnt(fp_id, how) = &step {
                        info!(
                            "ionosphere :: learnt profile {fp_id} (generation {}, parent {}, {:.2} % from its origin) from {} at {}",
                            how.generation,
                            how.parent_id,
                            how.percent_diff,
                            job.anomaly.metric,
                            job.anomaly.timestamp
                        );
                    }
                    steps.push(step);
                }
                Err(e) => {
                    m::IONOSPHERE_ERRORS.inc();
                    self.log_error(&format!(
                        "ionosphere :: learning from {} at {} failed: {e}; not learnt",
                        job.anomaly.metric, job.anomaly.timestamp
                    ));
                }
            }
        }
        self.learn_queue = keep;
        steps
    }

    /// Queues an unmatched anomaly for learning when its namespace learns.
    fn queue_learning(&mut self, check: &CheckAnomaly) {
        if learn::namespace_for(&self.setup.learn, &check.anomaly.metric).is_none() {
            return;
        }
        if self.learn_queue.len() >= LEARN_QUEUE_MAX {
            if let Some(old) = self.learn_queue.pop_front() {
                m::IONOSPHERE_ERRORS.inc();
                self.log_error(&format!(
                    "ionosphere :: learn queue full ({LEARN_QUEUE_MAX}); not learning from {} at {}",
                    old.anomaly.metric, old.anomaly.timestamp
                ));
            }
        }
        self.learn_queue.push_back(LearnJob {
            anomaly: check.anomaly.clone(),
            series: check.series.clone(),
            full_duration: check.full_duration,
        });
    }

    fn pass_on(&self, a: &Anomaly) {
        for r in &self.setup.record {
            r.do_send(RecordAnomaly(a.clone()));
        }
        for r in &self.setup.alert {
            r.do_send(AlertAnomaly(a.clone()));
        }
    }
}

impl Actor for Ionosphere {
    type Context = SyncContext<Self>;
}

impl Handler<Refresh> for Ionosphere {
    type Result = ();

    fn handle(&mut self, _msg: Refresh, _ctx: &mut Self::Context) {
        self.refresh();
        if !self.learn_queue.is_empty() {
            self.learn_due();
        }
    }
}

impl Handler<CheckAnomaly> for Ionosphere {
    type Result = ();

    fn handle(&mut self, check: CheckAnomaly, _ctx: &mut Self::Context) {
        m::IONOSPHERE_CHECKS.inc();
        let a = &check.anomaly;
        let verdict = match self.judge(&check) {
            Ok(Verdict::NotMatched) => {
                self.queue_learning(&check);
                Verdict::NotMatched
            }
            Ok(v) => v,
            Err(e) => {
                m::IONOSPHERE_ERRORS.inc();
                self.log_error(&format!(
                    "ionosphere :: checking {} at {} failed: {e}; alerting it as not matched",
                    a.metric, a.timestamp
                ));
                Verdict::NotMatched
            }
        };
        // Whoever takes the anomaly off the waiting list acts on it; the sender's waterfall
        // already alerted it otherwise.
        if !self.setup.shared.take_pending(&a.metric, a.timestamp) {
            info!(
                "ionosphere :: {} at {} decided after the waterfall had alerted it",
                a.metric, a.timestamp
            );
            return;
        }
        let recorded = match &verdict {
            Verdict::Features(row) => q::record_match(&self.setup.pool, row).map(|id| {
                info!(
                    "ionosphere :: {} at {} matched features profile {}{} (match {id}) - not anomalous",
                    a.metric,
                    a.timestamp,
                    row.fp_id,
                    if row.minmax { ", min-max scaled" } else { "" }
                );
            }),
            Verdict::Layers(row) => q::record_layers_match(&self.setup.pool, row).map(|id| {
                info!(
                    "ionosphere :: {} at {} matched layers {} of profile {} (match {id}) - not anomalous",
                    a.metric, a.timestamp, row.layer_id, row.fp_id
                );
            }),
            Verdict::NotMatched => {
                m::IONOSPHERE_NOT_MATCHED.inc();
                info!(
                    "ionosphere :: {} at {} matched no profile - anomalous",
                    a.metric, a.timestamp
                );
                self.pass_on(a);
                return;
            }
        };
        match recorded {
            Ok(()) => m::IONOSPHERE_MATCHED.inc(),
            Err(e) => {
                // A match that cannot be recorded is not silenced: alerted as unmatched.
                m::IONOSPHERE_ERRORS.inc();
                self.log_error(&format!(
                    "ionosphere :: recording the match of {} at {} failed: {e}; alerting it",
                    a.metric, a.timestamp
                ));
                self.pass_on(a);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::ionosphere::{LayerRule, NewProfile};
    use crate::db::{connect_with, migrate, PoolOptions};

    fn matcher(dir: &std::path::Path) -> (Ionosphere, i32, i32) {
        let url = format!("sqlite://{}/panorama.sqlite", dir.display());
        let pool = connect_with(&url, &PoolOptions::default()).unwrap();
        migrate(&pool).unwrap();
        let metric_id = crate::db::queries::resolve_id(
            &pool,
            &mut IdCache::new(),
            Lookup::Metric,
            "layers.test",
        )
        .unwrap();
        // A profile of another duration (so only its layers can match).
        let fp = q::create_profile(
            &pool,
            &NewProfile {
                metric_id,
                full_duration: 604_800,
                anomaly_timestamp: 1_700_000_000,
                calc_time: 0.0,
                features_count: 210,
                features_sum: 1.0,
                features: vec![(1, 1.0)],
                series: vec![(1_700_000_000, 1.0)],
                minmax: None,
                parent_id: 0,
                generation: 0,
                label: None,
                user: "admin".into(),
            },
        )
        .unwrap();
        let rule = |layer: &str, condition: &str, boundary: &str, times: i32| LayerRule {
            layer_id: 0,
            layer: layer.into(),
            condition: condition.into(),
            boundary: boundary.into(),
            times_in_row: times,
        };
        let layer = q::create_layers(
            &pool,
            fp,
            metric_id,
            None,
            &[rule("D", ">", "5", 0), rule("E", "<", "5", 1)],
        )
        .unwrap();
        let m = Ionosphere::new(IonosphereSetup {
            pool,
            settings: MatchSettings::default(),
            learn: Vec::new(),
            shared: Shared::new(),
            record: Vec::new(),
            alert: Vec::new(),
        });
        (m, fp, layer)
    }

    fn check(last: f64) -> CheckAnomaly {
        let t = 1_700_086_400;
        let series: Vec<(i64, f64)> = (0..100)
            .map(|i| (t - (99 - i) * 60, 1.0 + (i % 3) as f64))
            .chain([(t + 60, last)])
            .collect();
        CheckAnomaly {
            anomaly: crate::model::Anomaly {
                metric: "layers.test".into(),
                timestamp: t + 60,
                datapoint: last,
                from_timestamp: t - 99 * 60,
                full_duration: 86_400,
                algorithms_run: Vec::new(),
                triggered_algorithms: Vec::new(),
                app: "analyzer".into(),
                source: "graphite".into(),
                host: "h".into(),
                added_at: t + 61,
            },
            series,
            full_duration: 86_400,
        }
    }

    fn learn_check(end: i64, scale: f64) -> CheckAnomaly {
        let series: Vec<(i64, f64)> = (0..1440)
            .map(|i| {
                let wave = (f64::from(i) / 1440.0 * std::f64::consts::TAU).sin();
                let spike = if i >= 1437 { 3000.0 } else { 0.0 };
                let v = (1000.0 + 100.0 * wave + f64::from(i % 7) * 5.0 + spike) * scale;
                (end - i64::from(1439 - i) * 60, v)
            })
            .collect();
        CheckAnomaly {
            anomaly: crate::model::Anomaly {
                metric: "learn.test.requests".into(),
                timestamp: end,
                datapoint: series[1439].1,
                from_timestamp: end - 86_340,
                full_duration: 86_400,
                algorithms_run: Vec::new(),
                triggered_algorithms: Vec::new(),
                app: "analyzer".into(),
                source: "graphite".into(),
                host: "h".into(),
                added_at: end + 1,
            },
            series,
            full_duration: 86_400,
        }
    }

    #[test]
    fn an_unmatched_similar_anomaly_of_a_learning_namespace_becomes_a_learnt_profile() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/panorama.sqlite", dir.path().display());
        let pool = connect_with(&url, &PoolOptions::default()).unwrap();
        migrate(&pool).unwrap();
        let metric_id = crate::db::queries::resolve_id(
            &pool,
            &mut IdCache::new(),
            Lookup::Metric,
            "learn.test.requests",
        )
        .unwrap();
        let t0 = now_epoch() - 7_200;
        let origin = learn_check(t0, 1.0);
        let p = training::profile_of(&origin.series, 86_400).unwrap();
        let fp = q::create_profile(
            &pool,
            &NewProfile {
                metric_id,
                full_duration: 86_400,
                anomaly_timestamp: t0,
                calc_time: 0.0,
                features_count: 210,
                features_sum: p.sum(),
                features: p.stored.clone(),
                series: origin.series.clone(),
                minmax: None,
                parent_id: 0,
                generation: 0,
                label: None,
                user: "admin".into(),
            },
        )
        .unwrap();
        let ns = LearnNamespace {
            namespace: "learn.test".into(),
            ..Default::default()
        };
        q::set_learn_params(&pool, metric_id, &ns.params()).unwrap();
        let mut m = Ionosphere::new(IonosphereSetup {
            pool: pool.clone(),
            settings: MatchSettings {
                minmax_enabled: false,
                ..MatchSettings::default()
            },
            learn: vec![ns],
            shared: Shared::new(),
            record: Vec::new(),
            alert: Vec::new(),
        });
        // +2 %: the features sum differs by more than the 1 % match threshold but less than
        // the 7 % learn limit. Not matched; learnt once it is 3661 s old.
        let later = learn_check(now_epoch() - 60, 1.02);
        assert_eq!(m.judge(&later).unwrap(), Verdict::NotMatched);
        m.queue_learning(&later);
        assert_eq!(m.learn_due(), vec![LearnStep::Wait]);
        let old = learn_check(now_epoch() - 3_700, 1.02);
        m.learn_queue.clear();
        m.queue_learning(&old);
        let steps = m.learn_due();
        let (child, how) = match steps.as_slice() {
            [LearnStep::Learnt(id, how)] => (*id, *how),
            other => panic!("{other:?}"),
        };
        assert_eq!((how.parent_id, how.generation), (fp, 1));
        assert!(how.percent_diff > 1.0 && how.percent_diff <= 7.0, "{how:?}");
        assert!(m.learn_queue.is_empty());
        // The same anomaly is not learnt twice; a far one (x 1.5) is not learnt at all.
        m.queue_learning(&old);
        m.queue_learning(&learn_check(now_epoch() - 3_800, 1.5));
        assert_eq!(m.learn_due(), vec![LearnStep::Nothing, LearnStep::Nothing]);
        // The learnt profile now matches that shape.
        match m.judge(&learn_check(now_epoch() - 30, 1.02)).unwrap() {
            Verdict::Features(row) => assert_eq!(row.fp_id, child),
            other => panic!("{other:?}"),
        }
        let rows = q::profiles(&pool, "learn.test.requests").unwrap();
        let c = rows.iter().find(|r| r.id == child).unwrap();
        assert_eq!((c.generation, c.parent_id), (1, i64::from(fp)));
        assert_eq!(c.label.as_deref(), Some(learn::LEARNT_LABEL));
        // Disabling the origin disables what was learnt from it.
        q::set_enabled(&pool, fp, false).unwrap();
        assert!(q::profiles(&pool, "learn.test.requests")
            .unwrap()
            .iter()
            .all(|r| !r.enabled));
        // Outside a learning namespace nothing is queued.
        m.setup.learn.clear();
        m.queue_learning(&old);
        assert!(m.learn_queue.is_empty());
    }

    #[test]
    fn a_layers_d_boundary_matches_exactly_as_skyline() {
        let dir = tempfile::tempdir().unwrap();
        let (mut m, fp, layer) = matcher(dir.path());
        // D `>` 5 is `>=` 5: a last value of exactly 5 is definitely anomalous.
        assert_eq!(m.judge(&check(5.0)).unwrap(), Verdict::NotMatched);
        // Just below: D does not fire and E `<` 5 (`<=`) holds on the last value.
        match m.judge(&check(4.999)).unwrap() {
            Verdict::Layers(row) => {
                assert_eq!((row.fp_id, row.layer_id), (fp, layer));
                assert_eq!(row.anomalous_datapoint, 4.999);
                assert!(!row.approx_close);
            }
            other => panic!("{other:?}"),
        }
        // The profile's own duration differs, so the features pass never ran.
        assert_eq!(q::match_count(&m.setup.pool, fp).unwrap(), 0);
    }
}
