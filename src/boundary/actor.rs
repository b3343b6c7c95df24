//! The `Boundary` actor: a timer every `[boundary] run_every_secs` that runs [`run_cycle`]
//! and hands what it found to Panorama and the alert actor. See the module docs of
//! [`crate::boundary`] for keys and backpressure.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::redis_conn::RedisConn;
use actix::prelude::*;
use log::{error, info, warn};

use super::algorithms::{evaluate, Exception, Gates};
use super::error::BoundaryError;
use super::messages::{Detection, RunBoundary, RunReport};
use super::rules::RuleBook;
use crate::alert::{AlertRoute, AlertRouted};
use crate::model::{msgpack, Anomaly, FULL_NAMESPACE, UNIQUE_METRICS};
use crate::panorama::RecordAnomaly;
use crate::store::cluster::{self, ClusterRole};
use crate::telemetry::metrics as m;

/// Boundary's heartbeat key (string, TTL 120 s, epoch seconds), as Skyline's.
pub const HEARTBEAT_KEY: &str = "boundary";
/// JSON list of the last run's reported anomalies, shaped as `analyzer.current_anomalies`.
pub const CURRENT_ANOMALIES_KEY: &str = "boundary.current_anomalies";
/// JSON of the last run's totals.
pub const RUN_STATS_KEY: &str = "boundary.run_stats";

/// Skyline's consecutive-detection counter: `anomaly_seen.<algorithm>.<base_name>`.
pub fn anomaly_seen_key(algorithm: &str, metric: &str) -> String {
    format!("anomaly_seen.{algorithm}.{metric}")
}

/// Boundary's alert key: `last_alert.boundary.<alerter>.<base_name>.<algorithm>`.
pub fn last_alert_key(alerter: &str, metric: &str, algorithm: &str) -> String {
    format!("last_alert.boundary.{alerter}.{metric}.{algorithm}")
}

/// What a run needs besides Redis.
#[derive(Debug, Clone)]
pub struct CycleSettings {
    /// The compiled rules.
    pub book: RuleBook,
    /// TooShort / Stale / Boring settings.
    pub gates: Gates,
    /// Keys per MGET.
    pub mget_chunk: usize,
    /// Host name for the anomalies' `host`.
    pub host: String,
}

const EXCEPTIONS: [&str; 5] = ["EmptyTimeseries", "TooShort", "Stale", "Boring", "Other"];

fn exception_slot(e: Option<Exception>) -> usize {
    match e {
        Some(Exception::EmptyTimeseries) => 0,
        Some(Exception::TooShort) => 1,
        Some(Exception::Stale) => 2,
        Some(Exception::Boring) => 3,
        None => 4,
    }
}

/// One Boundary run against Redis (stages-spec §2.3–2.7): heartbeat, rule resolution over
/// `metrics.unique_metrics`, MGET, the algorithms, the `anomaly_seen.*` counters, and the
/// run's outputs (`boundary.current_anomalies`, `boundary.run_stats`). Sends nothing: the
/// caller hands `anomalies` to Panorama and the reported detections to the alerters.
pub async fn run_cycle(
    conn: &mut RedisConn,
    s: &CycleSettings,
) -> Result<RunReport, BoundaryError> {
    run_cycle_in(conn, s, None).await
}

/// [`run_cycle`] as one node of a cluster when `cluster` is given (docs/cluster.md): the
/// rules are resolved over every metric (so `max_metrics_per_rule` caps the same on every
/// node), then only the metrics the rendezvous assignment gives this node are checked; each
/// anomaly is claimed cluster-wide (`panorama.last_check.boundary.<metric>`, `SET NX EX`)
/// and kept only when this node holds the claim; this node's list goes to
/// `boundary.current_anomalies.<node>` and `boundary.current_anomalies` is rewritten as the
/// merge of the live nodes' lists (each node's list lives three `run_every`, at least 60 s).
pub async fn run_cycle_in(
    conn: &mut RedisConn,
    s: &CycleSettings,
    cluster: Option<(&ClusterRole, Duration)>,
) -> Result<RunReport, BoundaryError> {
    let role = cluster.map(|c| c.0);
    let started = Instant::now();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let now_i = now as i64;
    let _: () = redis::cmd("SET")
        .arg(HEARTBEAT_KEY)
        .arg(now_i)
        .arg("EX")
        .arg(120)
        .query_async(conn)
        .await
        .map_err(BoundaryError::redis("SET boundary"))?;
    let assignment = match role {
        Some(role) => Some(
            cluster::assignment(conn, &role.node_id)
                .await
                .map_err(BoundaryError::redis("reading the cluster's live nodes"))?,
        ),
        None => None,
    };
    let mut keys: Vec<String> = redis::cmd("SMEMBERS")
        .arg(UNIQUE_METRICS)
        .query_async(conn)
        .await
        .map_err(BoundaryError::redis("SMEMBERS"))?;
    keys.sort_unstable();
    let names: Vec<&str> = keys
        .iter()
        .map(|k| k.strip_prefix(FULL_NAMESPACE).unwrap_or(k))
        .collect();
    let mut resolution = s.book.resolve(&names);
    let mut metrics_assigned = None;
    if let Some(a) = &assignment {
        let mine: Vec<bool> = keys.iter().map(|k| a.is_mine(k)).collect();
        resolution.checks.retain(|c| mine[c.metric]);
        metrics_assigned = Some(mine.iter().filter(|&&m| m).count());
    }
    let rules = s.book.rules();
    let mut report = RunReport {
        timestamp: now_i,
        total_metrics: keys.len(),
        total_checks: resolution.checks.len(),
        metrics_assigned,
        excluded: resolution.excluded,
        capped_rules: resolution
            .capped
            .iter()
            .map(|&(i, n)| {
                format!(
                    "#{} {} {}: {n}",
                    i + 1,
                    rules[i].rule.pattern,
                    rules[i].rule.algorithm
                )
            })
            .collect(),
        ..Default::default()
    };
    for c in &report.capped_rules {
        warn!(
            "[[boundary.rules]] {c} metrics, over max_metrics_per_rule: rule not applied to them"
        );
    }

    // The metrics to fetch, in order, each with its checks.
    let mut by_metric: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for c in &resolution.checks {
        by_metric.entry(c.metric).or_default().push(c.rule);
    }
    report.boundary_metrics = by_metric.len();
    let metric_ids: Vec<usize> = by_metric.keys().copied().collect();
    let mut exceptions = [0usize; 5];
    // (metric id, rule id, datapoint, timestamp, from_timestamp)
    let mut hits: Vec<(usize, usize, f64, i64, i64)> = Vec::new();
    let mut series: Vec<(f64, f64)> = Vec::new();
    for chunk in metric_ids.chunks(s.mget_chunk.max(1)) {
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(chunk.iter().map(|&i| keys[i].as_str()).collect::<Vec<_>>())
            .query_async(conn)
            .await
            .map_err(BoundaryError::redis("MGET"))?;
        for (&mid, value) in chunk.iter().zip(values) {
            let checks = &by_metric[&mid];
            series.clear();
            let decoded = match value {
                None => Ok(()),
                Some(bytes) => msgpack::decode_series_f64(&bytes, &mut series),
            };
            if decoded.is_err() {
                exceptions[exception_slot(None)] += checks.len();
                continue;
            }
            series.sort_by(|a, b| a.0.total_cmp(&b.0));
            for &rid in checks {
                match evaluate(&series, &rules[rid].params(), &s.gates, now) {
                    Ok(true) => {
                        let (first, last) = (series[0], series[series.len() - 1]);
                        hits.push((mid, rid, last.1, last.0 as i64, first.0 as i64));
                    }
                    Ok(false) => {}
                    Err(e) => exceptions[exception_slot(Some(e))] += 1,
                }
            }
        }
    }
    report.exception_stats = EXCEPTIONS
        .iter()
        .zip(exceptions)
        .map(|(n, c)| (n.to_string(), c))
        .collect();

    // Consecutive detections (spec §2.7): a rule with alert_threshold > 1 counts in
    // anomaly_seen.<algorithm>.<metric> (TTL (threshold + 1) × 60 s); any run that does not
    // find it anomalous resets it.
    let mut pipe = redis::pipe();
    let mut counted: Vec<usize> = Vec::new(); // index into hits, per INCR reply
    let hit_set: std::collections::HashSet<(usize, usize)> =
        hits.iter().map(|h| (h.0, h.1)).collect();
    for c in &resolution.checks {
        let r = &rules[c.rule];
        if r.threshold() > 1 && !hit_set.contains(&(c.metric, c.rule)) {
            pipe.cmd("DEL")
                .arg(anomaly_seen_key(&r.rule.algorithm, names[c.metric]))
                .ignore();
        }
    }
    for (i, h) in hits.iter().enumerate() {
        let r = &rules[h.1];
        if r.threshold() > 1 {
            let key = anomaly_seen_key(&r.rule.algorithm, names[h.0]);
            pipe.cmd("INCR").arg(&key);
            pipe.cmd("EXPIRE")
                .arg(&key)
                .arg((u64::from(r.threshold()) + 1) * 60)
                .ignore();
            counted.push(i);
        }
    }
    let seen: Vec<u64> = if pipe.cmd_iter().next().is_some() {
        pipe.query_async(conn)
            .await
            .map_err(BoundaryError::redis("anomaly_seen counters"))?
    } else {
        Vec::new()
    };
    let mut times_seen = vec![1u64; hits.len()];
    for (i, n) in counted.into_iter().zip(seen) {
        times_seen[i] = n;
    }

    // One Panorama anomaly per metric, its reported algorithms as triggered_algorithms.
    let mut per_metric: BTreeMap<usize, Anomaly> = BTreeMap::new();
    for (h, seen) in hits.iter().zip(&times_seen) {
        let r = &rules[h.1];
        let reported = *seen >= u64::from(r.threshold());
        report.detections.push(Detection {
            metric: names[h.0].to_string(),
            algorithm: r.rule.algorithm.clone(),
            datapoint: h.2,
            timestamp: h.3,
            times_seen: *seen,
            threshold: r.threshold(),
            alerters: r.rule.alerters.clone(),
            expiration_secs: r.rule.expiration_secs,
            reported,
        });
        if !reported {
            info!(
                "boundary: {} {} seen {seen} of {} time(s) (value: {}); not yet alerting",
                names[h.0],
                r.rule.algorithm,
                r.threshold(),
                h.2
            );
            continue;
        }
        let a = per_metric.entry(h.0).or_insert_with(|| Anomaly {
            metric: names[h.0].to_string(),
            timestamp: h.3,
            datapoint: h.2,
            from_timestamp: h.4,
            full_duration: h.3 - h.4,
            algorithms_run: by_metric[&h.0]
                .iter()
                .map(|&rid| rules[rid].rule.algorithm.clone())
                .collect(),
            triggered_algorithms: Vec::new(),
            app: "boundary".into(),
            source: "redis".into(),
            host: s.host.clone(),
            added_at: now_i,
        });
        a.triggered_algorithms.push(r.rule.algorithm.clone());
    }
    report.anomalies = per_metric.into_values().collect();
    if let Some(role) = role {
        let all = std::mem::take(&mut report.anomalies);
        report.anomalies = cluster::claim_anomalies(conn, role, now_i, all)
            .await
            .map_err(BoundaryError::redis("claiming this run's anomalies"))?;
    }
    report.run_time = started.elapsed().as_secs_f64();
    publish(conn, &report, assignment.is_none()).await?;
    if let (Some((role, every)), Some(a)) = (cluster, &assignment) {
        let keep = (every.as_secs() * 3).max(60);
        publish_node(conn, role, a, &report, keep).await?;
    }
    Ok(report)
}

/// `boundary.current_anomalies.<node>`: a cluster node's own current Boundary anomalies.
pub fn node_current_key(id: &str) -> String {
    format!("{CURRENT_ANOMALIES_KEY}.{id}")
}

/// Cluster mode: this node's own list, and `boundary.current_anomalies` as the merge of the
/// live nodes' lists (written after [`publish`], which wrote this node's alone).
async fn publish_node(
    conn: &mut RedisConn,
    role: &ClusterRole,
    a: &cluster::Assignment,
    r: &RunReport,
    keep_secs: u64,
) -> Result<(), BoundaryError> {
    let own = crate::model::current_anomalies_json(&r.anomalies)?;
    cluster::publish_merged(
        conn,
        &a.live,
        node_current_key,
        &node_current_key(&role.node_id),
        &own,
        keep_secs,
        CURRENT_ANOMALIES_KEY,
    )
    .await
    .map_err(BoundaryError::redis("writing the nodes' current anomalies"))
}

/// Writes `boundary.run_stats` and, when `current` (one Redis; a cluster node writes the
/// merge in [`publish_node`]), `boundary.current_anomalies`.
async fn publish(conn: &mut RedisConn, r: &RunReport, current: bool) -> Result<(), BoundaryError> {
    let json = crate::model::current_anomalies_json(&r.anomalies)?;
    let mut stats = serde_json::to_value(r)?;
    if let Some(o) = stats.as_object_mut() {
        o.remove("anomalies");
        o.remove("detections");
        o.insert("total_anomalies".into(), r.anomalies.len().into());
        o.insert("total_detections".into(), r.detections.len().into());
    }
    let mut pipe = redis::pipe();
    if current {
        pipe.cmd("SET")
            .arg(CURRENT_ANOMALIES_KEY)
            .arg(&json)
            .ignore();
    }
    let _: () = pipe
        .cmd("SET")
        .arg(RUN_STATS_KEY)
        .arg(stats.to_string())
        .ignore()
        .query_async(conn)
        .await
        .map_err(BoundaryError::redis("writing run outputs"))?;
    Ok(())
}

/// The alerts of a run: one [`AlertRouted`] per reported (metric, algorithm) with alerters.
pub fn alerts_of(report: &RunReport) -> Vec<AlertRouted> {
    report
        .detections
        .iter()
        .filter(|d| d.reported && !d.alerters.is_empty())
        .filter_map(|d| {
            let base = report.anomalies.iter().find(|a| a.metric == d.metric)?;
            let expiration_secs = d.expiration_secs;
            Some(AlertRouted {
                anomaly: Anomaly {
                    triggered_algorithms: vec![d.algorithm.clone()],
                    ..base.clone()
                },
                routes: d
                    .alerters
                    .iter()
                    .map(|alerter| AlertRoute {
                        alerter: alerter.clone(),
                        key: last_alert_key(alerter, &d.metric, &d.algorithm),
                        expiration_secs,
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Runtime settings of the actor.
#[derive(Debug, Clone)]
pub struct BoundarySetup {
    /// What each run needs.
    pub cycle: CycleSettings,
    /// Seconds between runs.
    pub run_every: Duration,
    /// Delay of the first run after start.
    pub first_run_after: Duration,
    /// Send alerts (`[boundary] enable_alerts`).
    pub enable_alerts: bool,
}

/// The Boundary run loop (see the module docs).
pub struct Boundary {
    conn: RedisConn,
    setup: BoundarySetup,
    panorama: Vec<Recipient<RecordAnomaly>>,
    alerts: Vec<Recipient<AlertRouted>>,
    running: bool,
    cluster: Option<ClusterRole>,
}

impl Boundary {
    /// `panorama` receives every reported anomaly, `alerts` every alert.
    pub fn new(
        conn: RedisConn,
        setup: BoundarySetup,
        panorama: Vec<Recipient<RecordAnomaly>>,
        alerts: Vec<Recipient<AlertRouted>>,
    ) -> Self {
        Boundary {
            conn,
            setup,
            panorama,
            alerts,
            running: false,
            cluster: None,
        }
    }

    /// Works as one node of a cluster: checks only its assigned metrics and claims each
    /// anomaly cluster-wide ([`run_cycle_in`], docs/cluster.md).
    pub fn with_cluster(mut self, role: ClusterRole) -> Self {
        self.cluster = Some(role);
        self
    }

    fn run(&mut self) -> ResponseActFuture<Self, Result<RunReport, BoundaryError>> {
        if self.running {
            return Box::pin(fut::ready(Err(BoundaryError::Busy)));
        }
        self.running = true;
        let mut conn = self.conn.clone();
        let cycle = self.setup.cycle.clone();
        let (role, every) = (self.cluster.clone(), self.setup.run_every);
        let fut =
            async move { run_cycle_in(&mut conn, &cycle, role.as_ref().map(|r| (r, every))).await };
        Box::pin(fut.into_actor(self).map(|res, act, _| {
            act.running = false;
            match &res {
                Ok(report) => act.hand_on(report),
                Err(err) => {
                    m::BOUNDARY_ERRORS.inc();
                    error!("boundary run failed: {err}");
                }
            }
            res
        }))
    }

    fn hand_on(&self, r: &RunReport) {
        for a in &r.anomalies {
            for p in &self.panorama {
                // Low rate (one per anomalous metric per run), never blocks.
                p.do_send(RecordAnomaly(a.clone()));
            }
        }
        if self.setup.enable_alerts {
            for alert in alerts_of(r) {
                for to in &self.alerts {
                    // The alert actor's handler does no I/O waits; its queues are bounded.
                    to.do_send(alert.clone());
                }
            }
        }
        m::BOUNDARY_RUNS.inc();
        m::BOUNDARY_CHECKS.add(r.total_checks as u64);
        m::BOUNDARY_DETECTIONS.add(r.detections.len() as u64);
        m::BOUNDARY_ANOMALIES.add(r.anomalies.len() as u64);
        m::BOUNDARY_EXCEPTIONS.add(r.exception_stats.iter().map(|e| e.1 as u64).sum());
        m::BOUNDARY_RUN_TIME_MS.set((r.run_time * 1000.0) as i64);
        info!(
            "boundary: {} metric(s) with rules, {} check(s), {} detection(s), {} anomal(ies) in {:.2}s; exceptions {:?}",
            r.boundary_metrics,
            r.total_checks,
            r.detections.len(),
            r.anomalies.len(),
            r.run_time,
            r.exception_stats
        );
    }
}

impl Actor for Boundary {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let tick = |act: &mut Boundary, ctx: &mut Context<Boundary>| {
            if act.running {
                m::BOUNDARY_OVERRUNS.inc();
                warn!(
                    "boundary run still going after {:?}; skipping this tick",
                    act.setup.run_every
                );
                return;
            }
            ctx.spawn(act.run().map(|_, _, _| ()));
        };
        ctx.run_later(self.setup.first_run_after, tick);
        ctx.run_interval(self.setup.run_every, tick);
    }
}

impl Handler<RunBoundary> for Boundary {
    type Result = ResponseActFuture<Self, Result<RunReport, BoundaryError>>;

    fn handle(&mut self, _msg: RunBoundary, _ctx: &mut Self::Context) -> Self::Result {
        self.run()
    }
}
