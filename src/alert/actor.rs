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
//! Backpressure: the handlers never wait. Each alerter's queue is a bounded channel of
//! `[alerters] queue_max`; when it is full the alert is dropped, counted
//! (`skyline_alerts_dropped_queue_full_total`) and logged (at most once a minute per alerter);
//! its `last_alert` key is not set, so the next analysis run tries again. Each worker sends
//! one alert at a time with up to `max_attempts` attempts of at most `timeout_secs`, pausing
//! `retry_initial_ms` doubling to `retry_max_secs` between them; a slow or failing alerter only
//! fills its own queue. Queued alerts are lost if the process stops.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use futures_util::FutureExt as _;
use log::{debug, error, info, warn};
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;

use super::channel::{http_client, Channel};
use super::config::AlertersSettings;
use super::messages::{AlertAnomaly, AlertRouted, SystemAlert, SystemStatus};
use super::notification::{AnomalyNotice, Notification};
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
    redis: Option<ConnectionManager>,
    /// `last_alert` key → expiry (epoch seconds), used while Redis fails.
    fallback: HashMap<String, i64>,
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
    pub fn new(
        setup: AlertsSetup,
        channels: Vec<Channel>,
        redis: Option<ConnectionManager>,
    ) -> Self {
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

/// One alerter's delivery loop: one alert at a time, retried with back-off.
async fn deliver_loop(ch: Channel, mut rx: mpsc::Receiver<Job>, p: RetryPolicy) {
    let http = http_client(p.timeout);
    while let Some(job) = rx.recv().await {
        m::ALERTS_QUEUED.add(-1);
        let label = job.n.label();
        let mut pause = p.initial;
        for attempt in 1..=p.max_attempts {
            match ch.deliver(&http, &job.n, p.timeout).await {
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
                    break;
                }
                Err(e) if attempt < p.max_attempts && e.retryable() => {
                    m::ALERTS_RETRIES.inc();
                    warn!(
                        "{} alert for {label} to {} failed (attempt {attempt} of {}): {e}; retrying in {pause:?}",
                        ch.name(),
                        ch.peer(),
                        p.max_attempts
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
                    break;
                }
            }
        }
    }
}

impl Actor for Alerts {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Self::Context) {
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
        for (ch, rx) in self.workers.drain(..) {
            actix_rt::spawn(deliver_loop(ch, rx, self.policy));
        }
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
