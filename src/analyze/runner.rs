//! `Analyzer`: the run loop (Skyline's Analyzer agent). Every `run_every_secs` it reads
//! `metrics.unique_metrics`, MGETs the series in chunks of `mget_chunk`, fans the chunks out to
//! the `AnalysisWorker` pool, and then, for the run as a whole:
//! - removes `EmptyTimeseries` keys from `metrics.unique_metrics` (as Skyline does);
//! - sends each anomaly to every anomaly recipient (Panorama's `RecordAnomaly`, the alert
//!   actor's `AlertAnomaly`) with `do_send`: a low rate edge (at most one message per
//!   anomalous metric per run), never blocking the loop;
//! - writes `analyzer.current_anomalies` (JSON list, rewritten every run, so the dashboard
//!   never shows a stale list), the `analyzer` heartbeat (TTL 120 s), `analyzer.run_stats`
//!   (JSON: counts of each exception and algorithm, run time), and, when `anomaly_dump` is
//!   set, a Skyline-compatible JSONP `anomalies.json` (`handle_data([...])`).
//!
//! On a Redis Cluster ([`Analyzer::with_cluster`], docs/cluster.md) each run first reads the
//! live nodes and analyses only the metrics the rendezvous assignment gives this node
//! (`store::cluster`); it claims each anomaly cluster-wide (`SET panorama.last_check.<app>.
//! <metric> NX EX`, Skyline's key and window) before recording and alerting it; and it writes
//! its own list to `analyzer.current_anomalies.<node>` and `skyline.cluster.run.<node>`, then
//! `analyzer.current_anomalies` as the merge of the live nodes' lists. On one Redis none of
//! this runs and the keys are exactly as above.
//!
//! A run that overruns its interval is logged and counted; ticks during a run are skipped, so
//! the next run starts when it ends. Backpressure to the pool: at most two batches per worker
//! in flight. A Redis failure ends the run (counted, logged); the next tick retries.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::redis_conn::RedisConn;
use actix::prelude::*;
use futures_util::stream::{FuturesUnordered, StreamExt};
use log::{error, info, warn};
use serde::Serialize;

use super::messages::{AnalyzeBatch, BatchOutcome, EXCEPTION_NAMES};
use super::worker::AnalysisWorker;
use crate::alert::AlertAnomaly;
use crate::model::Anomaly;
use crate::panorama::{KeepTrainingData, RecordAnomaly};
use crate::store::cluster::Assignment;
pub use crate::store::cluster::ClusterRole;
use crate::telemetry::metrics as m;

/// Redis key holding the current anomalies as JSON (our own key; rewritten every run).
pub const CURRENT_ANOMALIES_KEY: &str = "analyzer.current_anomalies";
/// Redis key holding the last run's statistics as JSON.
pub const RUN_STATS_KEY: &str = "analyzer.run_stats";
/// Skyline's analyzer heartbeat key.
pub const HEARTBEAT_KEY: &str = "analyzer";

/// Totals of one run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RunReport {
    /// Members of the unique set.
    pub total_metrics: usize,
    /// Metrics run through the algorithms.
    pub total_analyzed: usize,
    /// Exception name → count (every name present, 0 when absent, as Skyline does).
    pub exception_stats: Vec<(String, usize)>,
    /// Algorithm name → anomalous metrics it triggered on.
    pub anomaly_breakdown: Vec<(String, usize)>,
    /// Anomalies found.
    pub anomalies: Vec<Anomaly>,
    /// Seconds the run took.
    pub run_time: f64,
    /// Epoch seconds at the start of the run.
    pub timestamp: i64,
    /// The Mirage hand-off of this run (None: Mirage off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirage: Option<super::waterfall::HandoffReport>,
    /// Cluster mode: the metrics this node was assigned this run (None on one Redis).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_assigned: Option<usize>,
    /// The analysed series of each anomaly, by base name (for Ionosphere training).
    #[serde(skip)]
    pub training: std::collections::HashMap<String, Vec<(i64, f64)>>,
}

/// Analyzer settings the loop needs.
#[derive(Debug, Clone)]
pub struct RunnerSettings {
    /// Seconds between runs.
    pub run_every: Duration,
    /// Keys per MGET.
    pub mget_chunk: usize,
    /// Number of pool threads (for the in-flight bound).
    pub workers: usize,
    /// JSONP dump path, if any.
    pub anomaly_dump: Option<PathBuf>,
}

/// One complete run against Redis: fetch, analyse, aggregate (no side effects beyond SREM of
/// empty keys). Used by the actor and by `skyline bench analyze`.
pub async fn run_cycle(
    conn: &mut RedisConn,
    pool: &Addr<AnalysisWorker>,
    settings: &RunnerSettings,
) -> Result<RunReport, String> {
    run_cycle_assigned(conn, pool, settings, None).await
}

/// [`run_cycle`] over the metrics `assignment` gives this node (all of them when `None`).
pub async fn run_cycle_assigned(
    conn: &mut RedisConn,
    pool: &Addr<AnalysisWorker>,
    settings: &RunnerSettings,
    assignment: Option<&Assignment>,
) -> Result<RunReport, String> {
    let started = Instant::now();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(crate::model::UNIQUE_METRICS)
        .query_async(conn)
        .await
        .map_err(|err| format!("SMEMBERS: {err}"))?;
    let total_metrics = members.len();
    let members: Vec<String> = match assignment {
        Some(a) => members.into_iter().filter(|k| a.is_mine(k)).collect(),
        None => members,
    };
    let mut total = BatchOutcome::default();
    let mut breakdown: Vec<(&'static str, usize)> = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    let limit = settings.workers.max(1) * 2;
    let mut absorb = |o: BatchOutcome, total: &mut BatchOutcome| {
        total.analysed += o.analysed;
        for (t, x) in total.exceptions.iter_mut().zip(o.exceptions) {
            *t += x;
        }
        for (name, n) in o.triggered {
            match breakdown.iter_mut().find(|(a, _)| *a == name) {
                Some(e) => e.1 += n,
                None => breakdown.push((name, n)),
            }
        }
        total.anomalies.extend(o.anomalies);
        total.empty.extend(o.empty);
        total.training.extend(o.training);
    };
    for chunk in members.chunks(settings.mget_chunk.max(1)) {
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(chunk)
            .query_async(conn)
            .await
            .map_err(|err| format!("MGET: {err}"))?;
        in_flight.push(pool.send(AnalyzeBatch {
            keys: chunk.to_vec(),
            values,
            now,
        }));
        while in_flight.len() >= limit {
            if let Some(r) = in_flight.next().await {
                absorb(
                    r.map_err(|err| format!("analysis pool: {err}"))?,
                    &mut total,
                );
            }
        }
    }
    while let Some(r) = in_flight.next().await {
        absorb(
            r.map_err(|err| format!("analysis pool: {err}"))?,
            &mut total,
        );
    }
    if !total.empty.is_empty() {
        let _: () = redis::cmd("SREM")
            .arg(crate::model::UNIQUE_METRICS)
            .arg(&total.empty)
            .query_async(conn)
            .await
            .map_err(|err| format!("SREM: {err}"))?;
    }
    total.anomalies.sort_by(|a, b| a.metric.cmp(&b.metric));
    Ok(RunReport {
        total_metrics,
        metrics_assigned: assignment.map(|_| members.len()),
        total_analyzed: total.analysed,
        exception_stats: EXCEPTION_NAMES
            .iter()
            .zip(total.exceptions)
            .map(|(n, c)| (n.to_string(), c))
            .collect(),
        anomaly_breakdown: breakdown
            .into_iter()
            .map(|(a, n)| (a.to_string(), n))
            .collect(),
        anomalies: total.anomalies,
        run_time: started.elapsed().as_secs_f64(),
        timestamp: now as i64,
        mirage: None,
        training: total.training.into_iter().collect(),
    })
}

/// The run-loop actor.
pub struct Analyzer {
    conn: RedisConn,
    pool: Addr<AnalysisWorker>,
    settings: RunnerSettings,
    recipients: Vec<Recipient<RecordAnomaly>>,
    alert_recipients: Vec<Recipient<AlertAnomaly>>,
    running: bool,
    mirage: Option<std::sync::Arc<super::waterfall::MirageHandoff>>,
    training: Option<Training>,
    ionosphere: Option<super::to_ionosphere::IonosphereHandoff>,
    cluster: Option<ClusterRole>,
}

/// Where the Analyzer sends each recorded anomaly's series (Panorama's `KeepTrainingData`).
struct Training {
    recipients: Vec<Recipient<KeepTrainingData>>,
    full_duration: i64,
}

impl Analyzer {
    /// `recipients` (Panorama) and `alert_recipients` (the alert actor) receive every anomaly.
    pub fn new(
        conn: RedisConn,
        pool: Addr<AnalysisWorker>,
        settings: RunnerSettings,
        recipients: Vec<Recipient<RecordAnomaly>>,
        alert_recipients: Vec<Recipient<AlertAnomaly>>,
    ) -> Self {
        Analyzer {
            conn,
            pool,
            settings,
            recipients,
            alert_recipients,
            running: false,
            mirage: None,
            training: None,
            ionosphere: None,
            cluster: None,
        }
    }

    /// Works as one node of a cluster (see the module docs).
    pub fn with_cluster(mut self, role: ClusterRole) -> Self {
        self.cluster = Some(role);
        self
    }

    /// Hands the anomalies of Ionosphere-enabled metrics to the matcher instead of recording
    /// and alerting them (see `to_ionosphere`).
    pub fn with_ionosphere(mut self, handoff: super::to_ionosphere::IonosphereHandoff) -> Self {
        self.ionosphere = Some(handoff);
        self
    }

    /// Sends the series of every anomaly it records to `recipients` (Panorama keeps it for
    /// Ionosphere training); `full_duration` is `[horizon] full_duration_secs`.
    pub fn with_training(
        mut self,
        recipients: Vec<Recipient<KeepTrainingData>>,
        full_duration: i64,
    ) -> Self {
        self.training = Some(Training {
            recipients,
            full_duration,
        });
        self
    }

    /// Hands Mirage metrics' anomalies to Mirage instead of recording and alerting them
    /// (see `waterfall`).
    pub fn with_mirage(mut self, handoff: super::waterfall::MirageHandoff) -> Self {
        self.mirage = Some(std::sync::Arc::new(handoff));
        self
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            m::ANALYZER_OVERRUNS.inc();
            warn!(
                "analysis run still going after {:?}; skipping this tick",
                self.settings.run_every
            );
            return;
        }
        self.running = true;
        let mut conn = self.conn.clone();
        let pool = self.pool.clone();
        let settings = self.settings.clone();
        let mirage = self.mirage.clone();
        let cluster = self.cluster.clone();
        let fut = async move {
            let assignment = match &cluster {
                Some(role) => Some(
                    crate::store::cluster::assignment(&mut conn, &role.node_id)
                        .await
                        .map_err(|err| format!("reading the cluster's live nodes: {err}"))?,
                ),
                None => None,
            };
            let mut report =
                run_cycle_assigned(&mut conn, &pool, &settings, assignment.as_ref()).await?;
            if let Some(role) = &cluster {
                claim(&mut conn, role, &mut report).await?;
            }
            if let Some(h) = &mirage {
                let now = report.timestamp;
                report.mirage = Some(
                    super::waterfall::hand_off(&mut conn, h, &mut report.anomalies, now).await,
                );
            }
            if let (Some(role), Some(a)) = (&cluster, &assignment) {
                publish_node(&mut conn, role, a, &report, settings.run_every).await?;
            }
            let dump = settings.anomaly_dump.as_deref();
            publish(&mut conn, &report, dump, cluster.is_none()).await?;
            Ok::<RunReport, String>(report)
        };
        ctx.spawn(fut.into_actor(self).map(|res, act, _| {
            act.running = false;
            match res {
                Ok(mut report) => {
                    let own = match act.ionosphere.as_mut() {
                        Some(h) => h.hand_off(report.anomalies.clone(), &mut report.training),
                        None => report.anomalies.clone(),
                    };
                    if let Some(t) = &act.training {
                        for a in &report.anomalies {
                            let Some(series) = report.training.remove(&a.metric) else {
                                continue;
                            };
                            let td = crate::db::ionosphere::TrainingData {
                                metric: a.metric.clone(),
                                app: a.app.clone(),
                                metric_timestamp: a.timestamp,
                                full_duration: t.full_duration,
                                added_at: a.added_at,
                                series,
                            };
                            for r in &t.recipients {
                                r.do_send(KeepTrainingData(td.clone()));
                            }
                        }
                    }
                    for a in &own {
                        for r in &act.recipients {
                            // Low rate (one per anomalous metric per run): do_send never blocks.
                            r.do_send(RecordAnomaly(a.clone()));
                        }
                        for r in &act.alert_recipients {
                            // The alert actor never waits on I/O in its handler (bounded
                            // queues behind it), so its mailbox drains as fast as this.
                            r.do_send(AlertAnomaly(a.clone()));
                        }
                    }
                    record(&report, act.settings.run_every);
                }
                Err(err) => {
                    m::ANALYZER_ERRORS.inc();
                    error!("analysis run failed: {err}");
                }
            }
        }));
    }
}

/// Counters and Skyline's per-run log lines.
fn record(r: &RunReport, every: Duration) {
    m::ANALYZER_RUNS.inc();
    m::ANALYZER_ANALYSED.add(r.total_analyzed as u64);
    m::ANALYZER_ANOMALIES.add(r.anomalies.len() as u64);
    let counters = [
        &m::ANALYZER_TOO_SHORT,
        &m::ANALYZER_EMPTY,
        &m::ANALYZER_STALE,
        &m::ANALYZER_BORING,
        &m::ANALYZER_OTHER,
    ];
    for (c, (_, n)) in counters.iter().zip(&r.exception_stats) {
        c.add(*n as u64);
    }
    m::ANALYZER_RUN_TIME_MS.set((r.run_time * 1000.0) as i64);
    m::ANALYZER_TOTAL_METRICS.set(r.total_metrics as i64);
    if r.run_time > every.as_secs_f64() {
        m::ANALYZER_OVERRUNS.inc();
        warn!(
            "analysis run took {:.2}s, longer than run_every_secs ({})",
            r.run_time,
            every.as_secs()
        );
    }
    info!("seconds to run     :: {:.2}", r.run_time);
    info!("total metrics      :: {}", r.total_metrics);
    info!("total analyzed     :: {}", r.total_analyzed);
    info!("total anomalies    :: {}", r.anomalies.len());
    info!("exception stats    :: {:?}", r.exception_stats);
    info!("anomaly breakdown  :: {:?}", r.anomaly_breakdown);
}

/// Keeps only the anomalies this node claims (`store::cluster::claim_anomalies`).
async fn claim(conn: &mut RedisConn, role: &ClusterRole, r: &mut RunReport) -> Result<(), String> {
    let all = std::mem::take(&mut r.anomalies);
    r.anomalies = crate::store::cluster::claim_anomalies(conn, role, r.timestamp, all)
        .await
        .map_err(|err| format!("claiming this run's anomalies: {err}"))?;
    Ok(())
}

/// Cluster mode: this node's list and run, and the merged `analyzer.current_anomalies`.
async fn publish_node(
    conn: &mut RedisConn,
    role: &ClusterRole,
    a: &Assignment,
    r: &RunReport,
    every: Duration,
) -> Result<(), String> {
    use crate::store::cluster::{node_current_key, run_key};
    let own = crate::model::current_anomalies_json(&r.anomalies).map_err(|e| e.to_string())?;
    let run = serde_json::json!({
        "metrics_assigned": r.metrics_assigned.unwrap_or(0),
        "timestamp": r.timestamp,
        "total_analyzed": r.total_analyzed,
        "run_time": r.run_time,
    });
    let keep = (every.as_secs() * 3).max(60);
    let _: () = redis::cmd("SET")
        .arg(run_key(&role.node_id))
        .arg(run.to_string())
        .arg("EX")
        .arg(86_400)
        .query_async(conn)
        .await
        .map_err(|err| format!("writing this node's run: {err}"))?;
    crate::store::cluster::publish_merged(
        conn,
        &a.live,
        node_current_key,
        &node_current_key(&role.node_id),
        &own,
        keep,
        CURRENT_ANOMALIES_KEY,
    )
    .await
    .map_err(|err| format!("writing the nodes' current anomalies: {err}"))
}

/// Writes the run's outputs for the webapp (Redis keys, optional JSONP dump).
/// `current`: write `analyzer.current_anomalies` (on one Redis; a cluster node writes the
/// merge in [`publish_node`]).
async fn publish(
    conn: &mut RedisConn,
    r: &RunReport,
    dump: Option<&std::path::Path>,
    current: bool,
) -> Result<(), String> {
    let json = crate::model::current_anomalies_json(&r.anomalies).map_err(|err| err.to_string())?;
    let mut stats = serde_json::to_value(r).map_err(|err| err.to_string())?;
    if let Some(o) = stats.as_object_mut() {
        o.remove("anomalies");
        o.insert("total_anomalies".into(), r.anomalies.len().into());
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
        .cmd("SET")
        .arg(HEARTBEAT_KEY)
        .arg(r.timestamp)
        .arg("EX")
        .arg(120)
        .ignore()
        .query_async(conn)
        .await
        .map_err(|err| format!("writing run outputs: {err}"))?;
    if let Some(path) = dump {
        // Skyline's webapp fetches this as JSONP; JSON is valid JS (Skyline wrote Python repr).
        let items: Vec<serde_json::Value> = r
            .anomalies
            .iter()
            .map(|a| serde_json::json!([a.datapoint, a.metric, a.timestamp]))
            .collect();
        let text = format!("handle_data({})", serde_json::Value::Array(items));
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|err| format!("anomaly_dump {}: {err}", path.display()))?;
    }
    Ok(())
}

impl Actor for Analyzer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // First run shortly after start, as Skyline does, then every run_every_secs.
        ctx.run_later(Duration::from_secs(2), |act, ctx| act.tick(ctx));
        ctx.run_interval(self.settings.run_every, |act, ctx| act.tick(ctx));
    }
}
