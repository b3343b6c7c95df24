//! The `Alerts` actor: turns anomalies into alerts (rules, `last_alert.*` expiration) and
//! hands them to one delivery worker per alerter.
//!
//! Per [`AlertAnomaly`]: log it (`Analyzer - Anomalous metric: …`, always), queue it for
//! syslog when `[alerters.syslog] all_anomalies`, then for each alerter whose first rule
//! matches: reserve a slot in that alerter's queue, `SET last_alert.<alerter>.<metric>
//! <int(timestamp)> EX <expiration_secs> NX` in a task, and queue the alert only when the key
//! was absent (Skyline G's GET + SETEX, made atomic). If Redis fails, an in-memory record of
//! the keys decides instead (counted, logged), so an outage neither floods nor silences.
//!
//! Per [`AlertRouted`] (Boundary): the same, but through exactly the alerters and keys the
//! message names (no `[[alerts]]` rule is consulted).
//!
//! Per [`SystemAlert`] (Thunder): queue it for every `[thunder] alerters` alerter.
//!
//! PagerDuty resolves: with PagerDuty configured, every [`pagerduty::RESOLVE_TICK`] the
//! resolves due in `pagerduty.open_incidents` are claimed (at most the queue's free room, one
//! claim in flight) and queued like alerts (see [`super::pagerduty`]).
//!
//! Backpressure: the handlers never wait. Each alerter's queue is a bounded channel of
//! `[alerters] queue_max`; when it is full the alert is dropped, counted
//! (`skyline_alerts_dropped_queue_full_total`) and logged (at most once a minute per alerter);
//! its `last_alert` key is not set, so the next analysis run tries again. Each worker sends
//! one alert at a time with up to `max_attempts` attempts of at most `timeout_secs`, pausing
//! `retry_initial_ms` doubling to `retry_max_secs` between them; a slow or failing alerter only
//! fills its own queue.
//!
//! Shutdown ([`ShutdownAlerts`]): the queues are closed and delivered within the budget; then
//! the workers are told to stop and hand back what they still hold (the alert in flight
//! too), which is appended to the pending file (`[data] dir/alerts-pending.jsonl`, one
//! `{"alerter", "notification"}` per line, fsynced). At the next start the file is read,
//! its alerts queued again (before any new one) and the file removed; alerts that arrive
//! after shutdown began go straight to the file. Delivery is at least once.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::redis_conn::RedisConn;
use actix::prelude::*;
use futures_util::FutureExt as _;
use log::{debug, error, info, warn};
use tokio::sync::{mpsc, watch};

use super::channel::{http_client, Channel};
use super::config::AlertersSettings;
use super::messages::{
    AlertAnomaly, AlertRouted, ShutdownAlerts, ShutdownReport, SystemAlert, SystemStatus,
};
use super::notification::{AnomalyNotice, Notification};
use super::pagerduty;
use super::rules::RuleSet;
use crate::telemetry::metrics as m;

/// The Redis key recording the last alert of `alerter` for `metric` (Skyline's).
pub fn last_alert_key(alerter: &str, metric: &str) -> String {
    format!("last_alert.{alerter}.{metric}")
}

/// The expiry key for an anomaly found by `app`: Mirage keeps its own
/// (`mirage.last_alert.<alerter>.<metric>`, Skyline's, so an Analyzer alert never hides a
/// Mirage one); every other app uses [`last_alert_key`].
pub fn last_alert_key_for(app: &str, alerter: &str, metric: &str) -> String {
    match app {
        "mirage" => format!("mirage.last_alert.{alerter}.{metric}"),
        _ => last_alert_key(alerter, metric),
    }
}

/// Retry policy of the delivery workers.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts per alert.
    pub max_attempts: u32,
    /// First pause.
    pub initial: Duration,
    /// Longest pause.
    pub max: Duration,
    /// Cap per attempt.
    pub timeout: Duration,
}

impl RetryPolicy {
    /// From `[alerters]`.
    pub fn from_settings(s: &AlertersSettings) -> Self {
        RetryPolicy {
            max_attempts: s.max_attempts.max(1),
            initial: Duration::from_millis(s.retry_initial_ms),
            max: Duration::from_secs(s.retry_max_secs),
            timeout: Duration::from_secs(s.timeout_secs),
        }
    }
}

struct Job {
    n: Notification,
}

struct Queue {
    name: &'static str,
    peer: String,
    tx: mpsc::Sender<Job>,
    dropped_since_log: u64,
    last_drop_log: Option<Instant>,
}

/// What the actor is built from.
pub struct AlertsSetup {
    /// The compiled `[[alerts]]`.
    pub rules: RuleSet,
    /// `[alerters] enabled`.
    pub enabled: bool,
    /// `[alerters] queue_max`.
    pub queue_max: usize,
    /// Delivery retries.
    pub policy: RetryPolicy,
    /// `[alerters.syslog] all_anomalies` (and syslog configured).
    pub syslog_all: bool,
    /// Alerters Thunder events go to.
    pub thunder_alerters: Vec<String>,
    /// Where alerts still queued at shutdown are written and read back at the next start
    /// (`[data] dir/alerts-pending.jsonl`); `None`: they are lost (logged).
    pub pending_file: Option<PathBuf>,
}

/// One line of the pending file.
#[derive(serde::Serialize, serde::Deserialize)]
struct Pending {
    alerter: String,
    notification: Notification,
}

/// Appends `items` to `path`, one JSON line each, and fsyncs.
fn append_pending(path: &Path, items: &[Pending]) -> std::io::Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut text = String::new();
    for p in items {
        text.push_str(&serde_json::to_string(p).map_err(std::io::Error::other)?);
        text.push('\n');
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// The alert actor (see the module docs).
pub struct Alerts {
    rules: RuleSet,
    enabled: bool,
    syslog_all: bool,
    thunder_alerters: Vec<String>,
    policy: RetryPolicy,
    queues: Vec<Queue>,
    workers: Vec<(Channel, mpsc::Receiver<Job>)>,
    redis: Option<RedisConn>,
    /// `last_alert` key → expiry (epoch seconds), used while Redis fails.
    fallback: HashMap<String, i64>,
    pending_file: Option<PathBuf>,
    /// Tells the delivery workers to stop and hand back what they hold (shutdown).
    abort: Option<watch::Sender<bool>>,
    /// The delivery workers; each returns the alerts it did not deliver.
    handles: Vec<(&'static str, tokio::task::JoinHandle<Vec<Job>>)>,
    /// Shutdown has begun: new alerts go to the pending file.
    closed: bool,
    /// The alerters' names once the queues are closed.
    closed_names: Vec<&'static str>,
    /// A claim of due PagerDuty resolves is in flight.
    resolving: bool,
    /// Last time a failed claim was logged (once a minute).
    resolve_err_log: Option<Instant>,
}

fn now_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Alerts {
    /// One queue and worker per channel; `redis` holds the `last_alert.*` keys (None: in
    /// memory only).
    pub fn new(setup: AlertsSetup, channels: Vec<Channel>, redis: Option<RedisConn>) -> Self {
        let mut queues = Vec::new();
        let mut workers = Vec::new();
        for ch in channels {
            let (tx, rx) = mpsc::channel(setup.queue_max.max(1));
            queues.push(Queue {
                name: ch.name(),
                peer: ch.peer(),
                tx,
                dropped_since_log: 0,
                last_drop_log: None,
            });
            workers.push((ch, rx));
        }
        Alerts {
            rules: setup.rules,
            enabled: setup.enabled,
            syslog_all: setup.syslog_all,
            thunder_alerters: setup.thunder_alerters,
            policy: setup.policy,
            queues,
            workers,
            redis,
            fallback: HashMap::new(),
            pending_file: setup.pending_file,
            abort: None,
            handles: Vec::new(),
            closed: false,
            closed_names: Vec::new(),
            resolving: false,
            resolve_err_log: None,
        }
    }

    /// Claims the PagerDuty resolves now due and queues them (see the module docs).
    fn resolve_due(&mut self, ctx: &mut Context<Self>) {
        if self.resolving || self.closed || !self.enabled {
            return;
        }
        let Some(mut conn) = self.redis.clone() else {
            return;
        };
        let Some(q) = self.queue("pagerduty") else {
            return;
        };
        let room = q.tx.capacity().min(pagerduty::RESOLVE_BATCH);
        if room == 0 {
            return; // the next tick tries again
        }
        self.resolving = true;
        let now = now_epoch();
        let claim = async move {
            tokio::time::timeout(
                Duration::from_secs(5),
                pagerduty::claim_due(&mut conn, now, room),
            )
            .await
        };
        ctx.spawn(claim.into_actor(self).map(move |res, act, _| {
            act.resolving = false;
            let err = match res {
                Ok(Ok((claim, keys))) => {
                    for key in keys {
                        match pagerduty::resolve_notice(&key, claim) {
                            Some(n) => act.enqueue("pagerduty", Notification::Anomaly(n)),
                            None => error!(
                                "pagerduty: {} holds {key:?}, not an anomaly incident; ignored until reclaimed",
                                pagerduty::OPEN_INCIDENTS_KEY
                            ),
                        }
                    }
                    return;
                }
                Ok(Err(err)) => err.to_string(),
                Err(_) => "no answer within 5 s".to_string(),
            };
            m::ALERTS_REDIS_ERRORS.inc();
            if act
                .resolve_err_log
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
            {
                act.resolve_err_log = Some(Instant::now());
                error!(
                    "pagerduty: cannot read the incidents due for a resolve from Redis ({}): {err}; retrying every {} s",
                    pagerduty::OPEN_INCIDENTS_KEY,
                    pagerduty::RESOLVE_TICK.as_secs()
                );
            }
        }));
    }

    /// Writes alerts that arrive after shutdown began to the pending file.
    fn persist_late(&self, alerter: &str, n: Notification) {
        let label = n.label();
        let item = Pending {
            alerter: alerter.to_string(),
            notification: n,
        };
        match &self.pending_file {
            Some(path) => match append_pending(path, &[item]) {
                Ok(()) => info!(
                    "{alerter} alert for {label} arrived during shutdown; written to {} for the next start",
                    path.display()
                ),
                Err(err) => {
                    m::ALERTS_FAILED.inc();
                    error!(
                        "{alerter} alert for {label} arrived during shutdown and could not be written to {}: {err}; it is lost",
                        path.display()
                    );
                }
            },
            None => error!("{alerter} alert for {label} arrived during shutdown; it is lost"),
        }
    }

    /// Queues the alerts a previous run left in the pending file, then removes the file
    /// (what does not fit the queues stays in it).
    fn load_pending(&mut self) {
        let Some(path) = self.pending_file.clone() else {
            return;
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return,
            Err(err) => {
                error!(
                    "cannot read the pending alerts file {}: {err}; its alerts are not sent",
                    path.display()
                );
                return;
            }
        };
        let (mut queued, mut kept, mut unusable) = (0usize, Vec::new(), 0usize);
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let Ok(p) = serde_json::from_str::<Pending>(line) else {
                unusable += 1;
                continue;
            };
            let Some(q) = self.queues.iter_mut().find(|q| q.name == p.alerter) else {
                error!(
                    "an alert for {} left by the last run names alerter {}, which is no longer configured; it is dropped",
                    p.notification.label(),
                    p.alerter
                );
                continue;
            };
            match q.tx.try_send(Job {
                n: p.notification.clone(),
            }) {
                Ok(()) => {
                    m::ALERTS_QUEUED.add(1);
                    queued += 1;
                }
                Err(_) => kept.push(p),
            }
        }
        if unusable > 0 {
            error!(
                "{unusable} line(s) of {} are not alerts and were dropped",
                path.display()
            );
        }
        let rewrite = std::fs::remove_file(&path).and_then(|()| append_pending(&path, &kept));
        if let Err(err) = rewrite {
            error!(
                "cannot update the pending alerts file {}: {err}; its alerts may be sent again at the next start",
                path.display()
            );
        }
        if queued > 0 || !kept.is_empty() {
            info!(
                "queued {queued} alert(s) left by the last run ({} still waiting in {})",
                kept.len(),
                path.display()
            );
        }
    }

    fn queue(&mut self, name: &str) -> Option<&mut Queue> {
        self.queues.iter_mut().find(|q| q.name == name)
    }

    /// Counts and (at most once a minute) logs a drop.
    fn dropped(q: &mut Queue, what: &str) {
        m::ALERTS_DROPPED_QUEUE_FULL.inc();
        q.dropped_since_log += 1;
        if q.last_drop_log
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            error!(
                "{} queue full (queue_max) for {}: dropped {} alert(s), latest for {what}",
                q.name, q.peer, q.dropped_since_log
            );
            q.dropped_since_log = 0;
            q.last_drop_log = Some(Instant::now());
        }
    }

    /// Queues `n` for `alerter` now (no expiration check).
    fn enqueue(&mut self, alerter: &str, n: Notification) {
        if self.closed {
            if self.closed_names.contains(&alerter) {
                self.persist_late(alerter, n);
            }
            return;
        }
        let label = n.label();
        let Some(q) = self.queue(alerter) else {
            return;
        };
        match q.tx.try_send(Job { n }) {
            Ok(()) => m::ALERTS_QUEUED.add(1),
            Err(mpsc::error::TrySendError::Full(_)) => Self::dropped(q, &label),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// The in-memory decision used while Redis fails: true when no unexpired record exists
    /// (and records one).
    fn fallback_claim(&mut self, key: &str, expiration: u64) -> bool {
        let now = now_epoch();
        if self.fallback.len() > 10_000 {
            self.fallback.retain(|_, exp| *exp > now);
        }
        match self.fallback.get(key) {
            Some(exp) if *exp > now => false,
            _ => {
                self.fallback
                    .insert(key.to_string(), now + expiration as i64);
                true
            }
        }
    }

    fn alert_anomaly(&mut self, a: crate::model::Anomaly, ctx: &mut Context<Self>) {
        let matched: Vec<(String, u64, Vec<String>, String)> = self
            .rules
            .matching(&a.metric)
            .into_iter()
            .map(|(r, by)| {
                (
                    r.alerter.clone(),
                    r.expiration_secs,
                    r.to.clone(),
                    format!("{} ({by:?})", r.pattern),
                )
            })
            .collect();
        if self.syslog_all {
            self.enqueue(
                "syslog",
                Notification::Anomaly(AnomalyNotice {
                    anomaly: a.clone(),
                    expiration_secs: 0,
                    to: Vec::new(),
                    test: false,
                    resolve: None,
                }),
            );
        }
        for (alerter, expiration, to, pattern) in matched {
            if alerter == "syslog" && self.syslog_all {
                continue; // already sent above
            }
            let key = last_alert_key_for(&a.app, &alerter, &a.metric);
            let notice = AnomalyNotice {
                anomaly: a.clone(),
                expiration_secs: expiration,
                to,
                test: false,
                resolve: None,
            };
            self.claim_and_queue(&alerter, key, expiration, notice, pattern, ctx);
        }
    }

    /// Reserves a slot in `alerter`'s queue, then (in a task) `SET key <int(ts)> EX
    /// <expiration> NX` and queues `notice` only when the key was absent. `why` is for logs.
    fn claim_and_queue(
        &mut self,
        alerter: &str,
        key: String,
        expiration: u64,
        notice: AnomalyNotice,
        why: String,
        ctx: &mut Context<Self>,
    ) {
        if self.closed {
            // Shutting down: what a stopped alerter would have sent goes to the pending file.
            if self.closed_names.contains(&alerter) {
                self.persist_late(alerter, Notification::Anomaly(notice));
            }
            return;
        }
        let Some(q) = self.queue(alerter) else {
            return;
        };
        let permit = match q.tx.clone().try_reserve_owned() {
            Ok(p) => p,
            Err(mpsc::error::TrySendError::Full(_)) => {
                Self::dropped(q, &notice.anomaly.metric);
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        };
        let ts = notice.anomaly.timestamp;
        let job = Job {
            n: Notification::Anomaly(notice),
        };
        let alerter = alerter.to_string();
        let claim = match self.redis.clone() {
            Some(mut conn) => {
                let k = key.clone();
                async move {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(&k).arg(ts).arg("EX").arg(expiration).arg("NX");
                    let set = cmd.query_async::<Option<String>>(&mut conn);
                    match tokio::time::timeout(Duration::from_secs(5), set).await {
                        Ok(Ok(v)) => Ok(v.is_some()),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("no answer within 5 s".to_string()),
                    }
                }
                .boxed_local()
            }
            None => async { Err("no Redis connection".to_string()) }.boxed_local(),
        };
        let has_redis = self.redis.is_some();
        let pattern = why;
        ctx.spawn(claim.into_actor(self).map(move |res, act, _| {
            let send = match res {
                Ok(set) => {
                    // An alert sent from the in-memory record during an outage still counts.
                    let remembered = act.fallback.get(&key).is_some_and(|exp| *exp > now_epoch());
                    set && !remembered
                }
                Err(e) => {
                    if has_redis {
                        m::ALERTS_REDIS_ERRORS.inc();
                        error!(
                            "cannot check {key} in Redis ({e}); deciding from memory for metric {}",
                            job.n.label()
                        );
                    }
                    act.fallback_claim(&key, expiration)
                }
            };
            if send {
                debug!("{key} set ({pattern}); queueing");
                permit.send(job);
                m::ALERTS_QUEUED.add(1);
            } else {
                m::ALERTS_SUPPRESSED.inc();
                debug!("{key} present: no {alerter} alert within its expiration");
            }
        }));
    }
}

/// One alerter's delivery loop: one alert at a time, retried with back-off, until its queue
/// is closed and empty or `abort` is raised; returns the alerts it did not deliver (the one
/// in flight when aborted, and whatever is still queued).
async fn deliver_loop(
    ch: Channel,
    mut rx: mpsc::Receiver<Job>,
    p: RetryPolicy,
    mut abort: watch::Receiver<bool>,
) -> Vec<Job> {
    let http = http_client(p.timeout);
    let mut left = Vec::new();
    loop {
        let job = tokio::select! {
            biased;
            _ = abort.wait_for(|a| *a) => break,
            j = rx.recv() => match j {
                Some(j) => j,
                None => break,
            },
        };
        m::ALERTS_QUEUED.add(-1);
        let done = tokio::select! {
            biased;
            _ = abort.wait_for(|a| *a) => false,
            () = deliver_one(&ch, &http, &job, p) => true,
        };
        if !done {
            left.push(job);
            break;
        }
    }
    rx.close();
    while let Ok(job) = rx.try_recv() {
        m::ALERTS_QUEUED.add(-1);
        left.push(job);
    }
    left
}

/// Delivers one alert with retries; logs the outcome.
async fn deliver_one(ch: &Channel, http: &awc::Client, job: &Job, p: RetryPolicy) {
    let label = job.n.label();
    let mut pause = p.initial;
    for attempt in 1..=p.max_attempts {
        match ch.deliver(http, &job.n, p.timeout).await {
            Ok(()) => {
                m::ALERTS_SENT.inc();
                info!(
                    "sent {} alert for {label} to {}{}",
                    ch.name(),
                    ch.peer(),
                    if attempt > 1 {
                        format!(" (attempt {attempt})")
                    } else {
                        String::new()
                    }
                );
                return;
            }
            Err(e) if attempt < p.max_attempts && e.retryable() => {
                m::ALERTS_RETRIES.inc();
                warn!(
                    "{} alert for {label} to {} failed (attempt {attempt} of {}): {e}; retrying in {} ms",
                    ch.name(),
                    ch.peer(),
                    p.max_attempts,
                    pause.as_millis()
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(p.max);
            }
            Err(e) => {
                m::ALERTS_FAILED.inc();
                error!(
                    "{} alert for {label} to {} not delivered after {attempt} attempt(s): {e}",
                    ch.name(),
                    ch.peer()
                );
                return;
            }
        }
    }
}

impl Actor for Alerts {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let names: Vec<&str> = self.queues.iter().map(|q| q.name).collect();
        info!(
            "{} rule(s), alerters: {}{}",
            self.rules.len(),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            },
            if self.enabled {
                ""
            } else {
                " (disabled: [alerters] enabled = false)"
            }
        );
        // Alerts a previous run could not deliver before it stopped go first.
        self.load_pending();
        let (abort_tx, abort_rx) = watch::channel(false);
        for (ch, rx) in self.workers.drain(..) {
            let name = ch.name();
            let h = actix_rt::spawn(deliver_loop(ch, rx, self.policy, abort_rx.clone()));
            self.handles.push((name, h));
        }
        self.abort = Some(abort_tx);
        if self.redis.is_some() && self.queues.iter().any(|q| q.name == "pagerduty") {
            ctx.run_interval(pagerduty::RESOLVE_TICK, |act, ctx| act.resolve_due(ctx));
        }
    }
}

impl Handler<ShutdownAlerts> for Alerts {
    type Result = ResponseFuture<ShutdownReport>;

    fn handle(&mut self, msg: ShutdownAlerts, _ctx: &mut Self::Context) -> Self::Result {
        self.closed = true;
        self.closed_names = self.queues.iter().map(|q| q.name).collect();
        // Dropping the senders closes the queues: each worker stops once its queue is empty
        // (claims still checking `last_alert` hold a sender until they finish, within 5 s).
        self.queues.clear();
        let handles = std::mem::take(&mut self.handles);
        let abort = self.abort.take();
        let file = self.pending_file.clone();
        Box::pin(async move {
            let all = futures_util::future::join_all(
                handles
                    .into_iter()
                    .map(|(name, h)| async move { (name, h.await) }),
            );
            futures_util::pin_mut!(all);
            let results = match tokio::time::timeout(msg.budget, &mut all).await {
                Ok(r) => r,
                Err(_) => {
                    if let Some(a) = &abort {
                        let _ = a.send(true);
                    }
                    match tokio::time::timeout(Duration::from_secs(2), &mut all).await {
                        Ok(r) => r,
                        Err(_) => {
                            error!("alert delivery workers did not stop within 2 s; their queued alerts are lost");
                            Vec::new()
                        }
                    }
                }
            };
            let mut left = Vec::new();
            for (name, r) in results {
                match r {
                    Ok(jobs) => left.extend(jobs.into_iter().map(|j| Pending {
                        alerter: name.to_string(),
                        notification: j.n,
                    })),
                    Err(err) => error!("{name} alert delivery worker failed: {err}"),
                }
            }
            let mut report = ShutdownReport::default();
            if left.is_empty() {
                info!("every queued alert was delivered before shutdown");
                return report;
            }
            match &file {
                Some(path) => match append_pending(path, &left) {
                    Ok(()) => {
                        report.persisted = left.len();
                        warn!(
                            "{} alert(s) not delivered before shutdown were written to {}; they are sent at the next start",
                            left.len(),
                            path.display()
                        );
                    }
                    Err(err) => {
                        report.lost = left.len();
                        error!(
                            "{} alert(s) not delivered before shutdown could not be written to {}: {err}; they are lost",
                            left.len(),
                            path.display()
                        );
                    }
                },
                None => {
                    report.lost = left.len();
                    error!(
                        "{} alert(s) not delivered before shutdown are lost (no pending file)",
                        left.len()
                    );
                }
            }
            report
        })
    }
}

impl Handler<AlertAnomaly> for Alerts {
    type Result = ();

    fn handle(&mut self, msg: AlertAnomaly, ctx: &mut Self::Context) {
        let a = msg.0;
        // SYSLOG_ENABLED-style catch-all: every anomaly is in the log, whatever the rules say.
        info!(
            "{} - Anomalous metric: {} (value: {})",
            super::notification::app_context(&a.app),
            a.metric,
            super::notification::value_str(a.datapoint)
        );
        if self.enabled {
            self.alert_anomaly(a, ctx);
        }
    }
}

impl Handler<AlertRouted> for Alerts {
    type Result = ();

    fn handle(&mut self, msg: AlertRouted, ctx: &mut Self::Context) {
        let a = msg.anomaly;
        let notice = |expiration_secs| AnomalyNotice {
            anomaly: a.clone(),
            expiration_secs,
            to: Vec::new(),
            test: false,
            resolve: None,
        };
        let context = Notification::Anomaly(notice(0)).context();
        info!(
            "{context} - Anomalous metric: {} (value: {}, algorithm: {})",
            a.metric,
            super::notification::value_str(a.datapoint),
            a.triggered_algorithms.join(", ")
        );
        if !self.enabled {
            return;
        }
        if self.syslog_all {
            self.enqueue("syslog", Notification::Anomaly(notice(0)));
        }
        for r in msg.routes {
            if r.alerter == "syslog" && self.syslog_all {
                continue; // already sent above
            }
            let n = notice(r.expiration_secs);
            self.claim_and_queue(&r.alerter, r.key, r.expiration_secs, n, context.into(), ctx);
        }
    }
}

impl Handler<SystemAlert> for Alerts {
    type Result = ();

    fn handle(&mut self, msg: SystemAlert, _ctx: &mut Self::Context) {
        if !self.enabled {
            return;
        }
        let targets = self.thunder_alerters.clone();
        debug!(
            "thunder {} {} for {}",
            msg.check,
            match msg.status {
                SystemStatus::Firing => "alert",
                SystemStatus::Recovered => "recovery",
            },
            targets.join(", ")
        );
        for name in targets {
            self.enqueue(&name, Notification::System(msg.clone()));
        }
    }
}
