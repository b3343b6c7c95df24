//! The `Mirage` actor: decides each Mirage check over its days (spec §1.4–§1.9).
//!
//! Runs on its own arbiter. Its one task waits for a check on the hand-off channel, takes
//! every check already queued with it (a "run", normally one Analyzer run's checks, oldest
//! first), and per check, in order:
//! 1. stale (`now - anomaly timestamp > stale_secs`): left to the waterfall;
//! 2. `mirage.last_alert.smtp.<metric>` with TTL > 59 s: an smtp alert is in force, the check
//!    is dropped from the waterfall set and not analysed (Skyline's alert-key skip);
//! 3. the days: graphite-web when `[graphite] url` is set, else — and when Graphite fails —
//!    `mirage.history.<metric>`; the recent part is replaced by `metrics.<metric>`
//!    downsampled to the days' step;
//! 4. the algorithms with MIRAGE_CONSENSUS ([`super::analysis`]);
//! 5. SREM of the check's waterfall member; only if it was still there: anomalous → the
//!    series it analysed is kept for Ionosphere training (`KeepTrainingData`, app `mirage`,
//!    full_duration = hours·3600, spec §1.8 steps 2 and 6); then, for an Ionosphere-enabled
//!    metric (one with a features profile), the anomaly goes to the Ionosphere matcher
//!    (`CheckAnomaly` at hours·3600, spec §1.8 step 7), which records and alerts it only if
//!    no profile matches — and the Ionosphere waterfall (300 s, shared with the Analyzer's)
//!    alerts it if the matcher does not decide; any other metric → `RecordAnomaly` (app
//!    `mirage`, full_duration = hours·3600) and `AlertAnomaly` (keys
//!    `mirage.last_alert.<alerter>.<metric>`). Not anomalous → counted and listed, never
//!    alerted.
//!
//! A check Mirage cannot decide (stale, no data source, too little history, a Redis error)
//! stays in the waterfall set, so the Analyzer alerts it after `waterfall_secs`. Graphite
//! failures are counted and logged once a minute, whatever the number of metrics.
//!
//! Writes per run: `mirage.current_anomalies` (JSON list like `analyzer.current_anomalies`),
//! `mirage.run_stats` (JSON, with `cleared`: the metrics found not anomalous), `mirage`
//! (heartbeat, TTL 120). Backpressure: one check at a time; the channel in front is bounded
//! and the Analyzer alerts what does not fit. Outbound messages go with `do_send` (one per
//! anomalous check).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::redis_conn::RedisConn;
use actix::prelude::*;
use log::{info, warn};
use serde::Serialize;

use super::analysis::{self, MirageAnalysis};
use super::config::MirageSettings;
use super::graphite::{self, OutageLog};
use super::history::history_key;
use super::messages::{CheckReceiver, ClearedEntry, CurrentEntry, MirageCheck, WATERFALL_KEY};
use crate::alert::AlertAnomaly;
use crate::analyze::algorithms::Workspace;
use crate::ionosphere::messages::IonosphereHandoff;
use crate::ionosphere::training::bound_series;
use crate::model::msgpack::decode_series_f64;
use crate::model::{Anomaly, FULL_NAMESPACE};
use crate::panorama::{KeepTrainingData, RecordAnomaly};
use crate::telemetry::metrics as m;

/// Mirage's current anomalies (JSON list, rewritten every Mirage run).
pub const CURRENT_ANOMALIES_KEY: &str = "mirage.current_anomalies";
/// Mirage's last run (JSON, includes the `cleared` metrics).
pub const RUN_STATS_KEY: &str = "mirage.run_stats";
/// Mirage's heartbeat (TTL 120 s).
pub const HEARTBEAT_KEY: &str = "mirage";

/// Most checks taken into one run.
const MAX_RUN: usize = 1000;

/// Everything Mirage needs, built by `app`.
pub struct MirageSetup {
    /// `[mirage]`.
    pub settings: MirageSettings,
    /// `[graphite] url` (None: the built-in history only).
    pub graphite_url: Option<String>,
    /// Redis (checks, history, series, outputs).
    pub conn: RedisConn,
    /// The hand-off channel's receive side.
    pub checks: CheckReceiver,
    /// Panorama.
    pub record: Vec<Recipient<RecordAnomaly>>,
    /// The alert actor.
    pub alert: Vec<Recipient<AlertAnomaly>>,
    /// Panorama's training-data keeper (empty: Ionosphere off).
    pub training: Vec<Recipient<KeepTrainingData>>,
    /// The hand-off to the Ionosphere matcher (None: Ionosphere off).
    pub ionosphere: Option<IonosphereHandoff>,
    /// Cluster mode: this node's id (`mirage.current_anomalies.<node>` and the merged list).
    pub node: Option<String>,
}

/// `mirage.current_anomalies.<node>`: a cluster node's own current Mirage decisions.
pub fn node_current_key(id: &str) -> String {
    format!("{CURRENT_ANOMALIES_KEY}.{id}")
}

/// Where a Mirage anomaly goes besides Panorama and the alerters (Ionosphere).
#[derive(Default)]
pub struct Onward {
    /// Panorama's training-data keeper.
    pub training: Vec<Recipient<KeepTrainingData>>,
    /// The Ionosphere hand-off.
    pub ionosphere: Option<IonosphereHandoff>,
}

/// What one check came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Anomalous over the days: recorded and alerted (or handed to Ionosphere), with the
    /// series analysed.
    Anomalous(Anomaly, Vec<(f64, f64)>),
    /// Not anomalous over the days: never alerted.
    Cleared(ClearedEntry),
    /// Not decided; the waterfall alerts it (reason).
    Undecided(&'static str),
    /// Dropped without analysis (an smtp alert in force, or the waterfall already fired).
    Skipped(&'static str),
}

/// Totals of one Mirage run, as `mirage.run_stats`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct MirageRunStats {
    /// Epoch seconds at the start of the run.
    pub timestamp: i64,
    /// Seconds the run took.
    pub run_time: f64,
    /// Checks taken.
    pub checks: usize,
    /// Found anomalous.
    pub anomalous: usize,
    /// Found not anomalous.
    pub not_anomalous: usize,
    /// Left to the waterfall, by reason.
    pub undecided: Vec<(String, usize)>,
    /// Dropped without analysis, by reason.
    pub skipped: Vec<(String, usize)>,
    /// The metrics cleared in this run.
    pub cleared: Vec<ClearedEntry>,
}

/// How long a Mirage decision stays in `mirage.current_anomalies` / the run stats' `cleared`
/// list: two default Analyzer runs, so a run's checks decided in several batches all show.
const RECENT_SECS: i64 = 120;

/// The decisions of the last [`RECENT_SECS`], one per metric (the latest).
#[derive(Debug, Default)]
struct Recent {
    current: Vec<(i64, CurrentEntry)>,
    cleared: Vec<(i64, ClearedEntry)>,
}

impl Recent {
    fn keep(&mut self, now: i64, current: Vec<CurrentEntry>, cleared: Vec<ClearedEntry>) {
        let fresh = |t: &i64| now - *t < RECENT_SECS;
        for c in current {
            self.current.retain(|(_, e)| e.metric != c.metric);
            self.cleared.retain(|(_, e)| e.metric != c.metric);
            self.current.push((now, c));
        }
        for c in cleared {
            self.current.retain(|(_, e)| e.metric != c.metric);
            self.cleared.retain(|(_, e)| e.metric != c.metric);
            self.cleared.push((now, c));
        }
        self.current.retain(|(t, _)| fresh(t));
        self.cleared.retain(|(t, _)| fresh(t));
    }
}

fn bump(v: &mut Vec<(String, usize)>, k: &str) {
    match v.iter_mut().find(|(n, _)| n == k) {
        Some(e) => e.1 += 1,
        None => v.push((k.to_string(), 1)),
    }
}

fn now_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The per-check state of the Mirage task.
pub struct Decider {
    settings: MirageSettings,
    analysis: MirageAnalysis,
    graphite_url: Option<String>,
    client: awc::Client,
    conn: RedisConn,
    graphite_outage: OutageLog,
    redis_outage: OutageLog,
    ws: Workspace,
}

impl Decider {
    /// A decider (creates its own HTTP client: call on the thread that will use it).
    pub fn new(settings: MirageSettings, graphite_url: Option<String>, conn: RedisConn) -> Self {
        let analysis = MirageAnalysis {
            algorithms: settings.algorithm_list(),
            consensus: settings.consensus,
            min_tolerable_length: settings.min_tolerable_length,
        };
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(settings.graphite_timeout_secs))
            .finish();
        Decider {
            settings,
            analysis,
            graphite_url: graphite_url.filter(|u| !u.trim().is_empty()),
            client,
            conn,
            graphite_outage: OutageLog::default(),
            redis_outage: OutageLog::default(),
            ws: Workspace::new(),
        }
    }

    /// The days of `metric` ending at `until`, and where they came from.
    async fn days(
        &mut self,
        metric: &str,
        from: i64,
        until: i64,
    ) -> Result<Option<(Vec<(f64, f64)>, &'static str)>, redis::RedisError> {
        if let Some(url) = &self.graphite_url {
            let t = Duration::from_secs(self.settings.graphite_timeout_secs);
            match graphite::fetch(&self.client, url, metric, from, until, t).await {
                Ok(s) => return Ok(Some((s, "graphite"))),
                Err(e) => {
                    m::MIRAGE_GRAPHITE_ERRORS.inc();
                    self.graphite_outage.record(&format!(
                        "{e}; using the built-in history where there is one"
                    ));
                }
            }
        }
        if self.settings.history_days == 0 {
            return Ok(None);
        }
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(history_key(metric))
            .query_async(&mut self.conn)
            .await?;
        let mut pts = Vec::new();
        if decode_series_f64(raw.as_deref().unwrap_or_default(), &mut pts).is_err() {
            return Ok(None);
        }
        pts.retain(|p| p.0 >= from as f64 && p.0 <= until as f64);
        Ok((!pts.is_empty()).then_some((pts, "history")))
    }

    /// Decides one check (see the module docs).
    pub async fn decide(&mut self, check: &MirageCheck, now: f64) -> Outcome {
        match self.try_decide(check, now).await {
            Ok(o) => o,
            Err(e) => {
                m::MIRAGE_REDIS_ERRORS.inc();
                self.redis_outage.record(&format!(
                    "Redis error on the check of metric {} ({e}); left to the Analyzer's waterfall alert",
                    check.anomaly.metric
                ));
                Outcome::Undecided("redis")
            }
        }
    }

    async fn try_decide(
        &mut self,
        check: &MirageCheck,
        now: f64,
    ) -> Result<Outcome, redis::RedisError> {
        let a = &check.anomaly;
        if now - a.timestamp as f64 > self.settings.stale_secs as f64 {
            return Ok(Outcome::Undecided("stale"));
        }
        let ttl: i64 = redis::cmd("TTL")
            .arg(format!("mirage.last_alert.smtp.{}", a.metric))
            .query_async(&mut self.conn)
            .await?;
        if ttl > 59 {
            let _: i64 = redis::cmd("SREM")
                .arg(WATERFALL_KEY)
                .arg(&check.waterfall_item)
                .query_async(&mut self.conn)
                .await?;
            return Ok(Outcome::Skipped("smtp_alert_in_force"));
        }
        let span = check.hours as i64 * 3600;
        let (from, until) = (a.timestamp - span, a.timestamp);
        let Some((days, source)) = self.days(&a.metric, from, until).await? else {
            return Ok(Outcome::Undecided("no_data"));
        };
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("{FULL_NAMESPACE}{}", a.metric))
            .query_async(&mut self.conn)
            .await?;
        let mut recent = Vec::new();
        if decode_series_f64(raw.as_deref().unwrap_or_default(), &mut recent).is_err() {
            recent.clear();
        }
        analysis::prepare(&mut recent);
        let mut series = analysis::merge_recent(&days, &recent);
        analysis::prepare(&mut series);
        m::MIRAGE_CHECKS_DONE.inc();
        let verdict = match analysis::analyse_with(
            &mut self.ws,
            &series,
            a.timestamp as f64,
            now,
            &self.analysis,
            true,
        ) {
            Ok(v) => v,
            Err(u) => return Ok(Outcome::Undecided(u.name())),
        };
        let removed: i64 = redis::cmd("SREM")
            .arg(WATERFALL_KEY)
            .arg(&check.waterfall_item)
            .query_async(&mut self.conn)
            .await?;
        if removed == 0 {
            return Ok(Outcome::Skipped("waterfall_already_alerted"));
        }
        if verdict.anomalous {
            Ok(Outcome::Anomalous(
                Anomaly {
                    metric: a.metric.clone(),
                    timestamp: a.timestamp,
                    datapoint: a.datapoint,
                    from_timestamp: a.timestamp - span,
                    full_duration: span,
                    algorithms_run: self
                        .analysis
                        .algorithms
                        .iter()
                        .map(|x| x.name().to_string())
                        .collect(),
                    triggered_algorithms: verdict.triggered(),
                    app: "mirage".into(),
                    source: if source == "graphite" {
                        "graphite"
                    } else {
                        "redis"
                    }
                    .into(),
                    host: a.host.clone(),
                    added_at: now as i64,
                },
                series,
            ))
        } else {
            Ok(Outcome::Cleared(ClearedEntry {
                metric: a.metric.clone(),
                timestamp: a.timestamp,
                datapoint: a.datapoint,
                hours: check.hours,
                analyzer_triggered: a.triggered_algorithms.clone(),
                triggered_algorithms: verdict.triggered(),
                source: source.into(),
            }))
        }
    }
}

fn record_and_alert(
    a: &Anomaly,
    record: &[Recipient<RecordAnomaly>],
    alert: &[Recipient<AlertAnomaly>],
) {
    for r in record {
        r.do_send(RecordAnomaly(a.clone()));
    }
    for r in alert {
        r.do_send(AlertAnomaly(a.clone()));
    }
}

/// Runs `checks` through `decider`, sends the anomalies on (to Ionosphere first for its
/// enabled metrics, see the module docs), records and alerts what the Ionosphere waterfall
/// gives back, and returns the run's stats and current anomalies.
pub async fn run_checks(
    decider: &mut Decider,
    checks: Vec<MirageCheck>,
    record: &[Recipient<RecordAnomaly>],
    alert: &[Recipient<AlertAnomaly>],
    onward: &mut Onward,
) -> (MirageRunStats, Vec<CurrentEntry>) {
    let started = Instant::now();
    let now = now_f64();
    let mut stats = MirageRunStats {
        timestamp: now as i64,
        checks: checks.len(),
        ..Default::default()
    };
    let mut current = Vec::new();
    for check in &checks {
        match decider.decide(check, now_f64()).await {
            Outcome::Anomalous(a, series) => {
                m::MIRAGE_ANOMALIES.inc();
                stats.anomalous += 1;
                info!(
                    "mirage: {} anomalous over {} h (value {}, triggered {:?})",
                    a.metric, check.hours, a.datapoint, a.triggered_algorithms
                );
                current.push(CurrentEntry {
                    metric: a.metric.clone(),
                    timestamp: a.timestamp,
                    datapoint: a.datapoint,
                    triggered_algorithms: a.triggered_algorithms.clone(),
                    algorithms_run: a.algorithms_run.clone(),
                });
                let series = bound_series(&series);
                if !onward.training.is_empty() {
                    let td = crate::db::ionosphere::TrainingData {
                        metric: a.metric.clone(),
                        app: a.app.clone(),
                        metric_timestamp: a.timestamp,
                        full_duration: a.full_duration,
                        added_at: a.added_at,
                        series: series.clone(),
                    };
                    for r in &onward.training {
                        r.do_send(KeepTrainingData(td.clone()));
                    }
                }
                let own = match onward.ionosphere.as_mut() {
                    Some(h) => {
                        let fd = a.full_duration;
                        h.hand_off_one(a, series, fd)
                    }
                    None => Some(a),
                };
                if let Some(a) = own {
                    record_and_alert(&a, record, alert);
                }
            }
            Outcome::Cleared(c) => {
                m::MIRAGE_CLEARED.inc();
                stats.not_anomalous += 1;
                info!(
                    "mirage: {} not anomalous over {} h (value {}); no alert",
                    c.metric, c.hours, c.datapoint
                );
                stats.cleared.push(c);
            }
            Outcome::Undecided(why) => {
                m::MIRAGE_UNDECIDED.inc();
                bump(&mut stats.undecided, why);
            }
            Outcome::Skipped(why) => bump(&mut stats.skipped, why),
        }
    }
    if let Some(h) = onward.ionosphere.as_mut() {
        for a in h.take_expired() {
            record_and_alert(&a, record, alert);
        }
    }
    stats.run_time = started.elapsed().as_secs_f64();
    (stats, current)
}

/// Writes Mirage's outputs. On a cluster (`node`), this node's list goes to
/// `mirage.current_anomalies.<node>` (TTL [`RECENT_SECS`], what it covers) and
/// `mirage.current_anomalies` becomes the merge of the live nodes' lists.
async fn publish(
    conn: &mut RedisConn,
    stats: &MirageRunStats,
    current: &[CurrentEntry],
    node: Option<&str>,
) -> Result<(), redis::RedisError> {
    let cur = serde_json::to_string(current).unwrap_or_else(|_| "[]".into());
    let st = serde_json::to_string(stats).unwrap_or_else(|_| "{}".into());
    let mut pipe = redis::pipe();
    match node {
        Some(me) => {
            let live = crate::store::cluster::assignment(conn, me).await?.live;
            crate::store::cluster::publish_merged(
                conn,
                &live,
                node_current_key,
                &node_current_key(me),
                &cur,
                RECENT_SECS as u64,
                CURRENT_ANOMALIES_KEY,
            )
            .await?;
        }
        None => {
            pipe.cmd("SET").arg(CURRENT_ANOMALIES_KEY).arg(cur).ignore();
        }
    }
    pipe.cmd("SET")
        .arg(RUN_STATS_KEY)
        .arg(st)
        .ignore()
        .cmd("SET")
        .arg(HEARTBEAT_KEY)
        .arg(stats.timestamp)
        .arg("EX")
        .arg(120)
        .ignore()
        .query_async(conn)
        .await
}

/// The actor hosting Mirage's task (see the module docs).
pub struct Mirage {
    setup: Option<MirageSetup>,
}

impl Mirage {
    /// A Mirage that starts its task when the actor starts.
    pub fn new(setup: MirageSetup) -> Self {
        Mirage { setup: Some(setup) }
    }
}

impl Actor for Mirage {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(setup) = self.setup.take() else {
            return;
        };
        info!(
            "mirage: consensus {} of {}, days from {}",
            setup.settings.consensus,
            setup.settings.algorithms.len(),
            match (&setup.graphite_url, setup.settings.history_days) {
                (Some(_), 0) => "graphite-web".to_string(),
                (Some(_), d) => format!("graphite-web (fallback: {d} d built-in history)"),
                (None, d) => format!("the built-in history ({d} d)"),
            }
        );
        let MirageSetup {
            settings,
            graphite_url,
            conn,
            mut checks,
            record,
            alert,
            training,
            ionosphere,
            node,
        } = setup;
        let mut onward = Onward {
            training,
            ionosphere,
        };
        let mut out_conn = conn.clone();
        let fut = async move {
            let mut decider = Decider::new(settings, graphite_url, conn);
            let mut publish_log = OutageLog::default();
            let mut recent = Recent::default();
            while let Some(first) = checks.recv().await {
                let mut batch = vec![first];
                while batch.len() < MAX_RUN {
                    match checks.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                let (mut stats, current) =
                    run_checks(&mut decider, batch, &record, &alert, &mut onward).await;
                // One Analyzer run's checks can arrive in several batches: what the Now page
                // shows is every decision of the last RECENT_SECS, not only this batch's.
                let now = stats.timestamp;
                recent.keep(now, current, std::mem::take(&mut stats.cleared));
                stats.cleared = recent.cleared.iter().map(|(_, c)| c.clone()).collect();
                let current: Vec<CurrentEntry> =
                    recent.current.iter().map(|(_, c)| c.clone()).collect();
                if let Err(e) = publish(&mut out_conn, &stats, &current, node.as_deref()).await {
                    m::MIRAGE_REDIS_ERRORS.inc();
                    publish_log.record(&format!("cannot write {RUN_STATS_KEY}: {e}"));
                }
            }
            warn!("mirage: the hand-off channel closed; Mirage stops");
        };
        ctx.spawn(fut.into_actor(self));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current(metric: &str) -> CurrentEntry {
        CurrentEntry {
            metric: metric.into(),
            timestamp: 1,
            datapoint: 2.0,
            triggered_algorithms: vec![],
            algorithms_run: vec![],
        }
    }

    fn cleared(metric: &str) -> ClearedEntry {
        ClearedEntry {
            metric: metric.into(),
            timestamp: 1,
            datapoint: 2.0,
            hours: 168,
            analyzer_triggered: vec![],
            triggered_algorithms: vec![],
            source: "redis".into(),
        }
    }

    #[test]
    fn recent_keeps_every_batch_of_a_run_and_the_latest_decision_per_metric() {
        let mut r = Recent::default();
        r.keep(1_000, vec![current("a")], vec![]);
        r.keep(1_001, vec![], vec![cleared("b")]);
        assert_eq!(r.current.len(), 1, "the first batch's anomaly stays");
        assert_eq!(r.cleared.len(), 1);
        // A later decision on the same metric replaces the earlier one.
        r.keep(1_002, vec![], vec![cleared("a")]);
        assert!(r.current.is_empty());
        assert_eq!(r.cleared.len(), 2);
        // Older than RECENT_SECS: gone.
        r.keep(1_002 + RECENT_SECS, vec![current("c")], vec![]);
        assert_eq!(r.current.len(), 1);
        assert!(r.cleared.is_empty());
    }
}
