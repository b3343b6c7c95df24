//! The PagerDuty alerter (Skyline's `PAGERDUTY_OPTS`, now on Events API v2): one JSON POST
//! per alert to `[alerters.pagerduty] url` (default `https://events.pagerduty.com/v2/enqueue`)
//! carrying the integration's `routing_key`.
//!
//! * An anomaly is a `trigger` with `dedup_key = "skyline/<app>/<metric>"`: while PagerDuty
//!   holds an open incident for the metric, a later alert for it (after the rule's expiration)
//!   is added to that incident instead of paging again. Payload: `summary` (Skyline's
//!   headline, at most 1024 characters), `source` (this host), `severity` (`[alerters.pagerduty]
//!   severity`), `timestamp` (the anomalous datapoint), `component` (the metric), `group` (the
//!   app), `class` `anomaly`, `custom_details` (value, algorithms, window, expiration) and a
//!   Graphite link when `[graphite] url` is set.
//! * The incident is resolved when the anomaly's alert window ends (detection + the rule's
//!   `expiration_secs`, the `endsAt` the Alertmanager alerter sends), with a `resolve` of the
//!   same `dedup_key`. Once a trigger is delivered its key is added to the Redis sorted set
//!   `pagerduty.open_incidents` (score: the window's end), so a restart loses no resolve. The
//!   `Alerts` actor looks for due members every [`RESOLVE_TICK`]: it claims them (score moved
//!   [`RESOLVE_RECLAIM_SECS`] ahead, so a resolve that is not delivered is tried again then)
//!   and queues a resolve for each, at most the queue's free room; a delivered resolve removes
//!   its member unless a newer trigger re-scheduled it. An anomaly that persists past the
//!   window is alerted again and so re-opens the incident. Redis errors are counted
//!   (`skyline_alerts_redis_errors_total`) and logged naming the metric.
//! * A Thunder event is a `trigger` (severity `critical`) and its recovery a `resolve`, both
//!   with `dedup_key = "skyline/thunder/<host>/<check>"`, so the incident closes itself.
//! * `skyline alert-test` sends a `trigger` with `dedup_key = "skyline/test/<metric>"` and
//!   severity `info`.
//!
//! The routing key is a secret: it is only in the request body, never in a log line, error or
//! `Debug` output. 2xx (PagerDuty answers 202) = delivered; anything else is retried by the
//! delivery worker. Backpressure: one request at a time from its delivery task, each capped by
//! `[alerters] timeout_secs`.

use std::time::Duration;

use crate::store::redis_conn::RedisConn;
use log::error;
use serde_json::{json, Value};

use super::config::{peer_of, PagerdutySettings};
use super::error::AlertError;
use super::messages::SystemStatus;
use super::notification::{rfc3339, value_str, AnomalyNotice, Context, Notification};
use super::webhook::post_json;
use crate::telemetry::metrics as m;

/// The sorted set of PagerDuty incidents the daemon opened and will resolve: member the
/// `dedup_key`, score the epoch second the resolve is due.
pub const OPEN_INCIDENTS_KEY: &str = "pagerduty.open_incidents";

/// How often the `Alerts` actor looks for due resolves.
pub const RESOLVE_TICK: Duration = Duration::from_secs(1);

/// A claimed resolve not delivered by then is claimed again.
pub const RESOLVE_RECLAIM_SECS: i64 = 600;

/// Most resolves claimed per tick.
pub const RESOLVE_BATCH: usize = 100;

/// Claims the due members: `ZRANGEBYSCORE -inf now LIMIT 0 n`, each moved to `reclaim_at`.
const CLAIM_SCRIPT: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do redis.call('ZADD', KEYS[1], 'XX', ARGV[2], m) end
return due";

/// Removes a member only while its score is still the claim (no newer trigger moved it).
const DONE_SCRIPT: &str = r"
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) == tonumber(ARGV[2]) then return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0";

/// PagerDuty's limit on `payload.summary`.
const SUMMARY_MAX: usize = 1024;

/// Delivers to PagerDuty Events API v2.
#[derive(Clone)]
pub struct PagerdutyAlerter {
    url: String,
    routing_key: String,
    severity: String,
    ctx: Context,
    /// Holds [`OPEN_INCIDENTS_KEY`] (None: anomaly incidents are not resolved by the daemon).
    redis: Option<RedisConn>,
}

/// The resolve of the incident `dedup_key` (an anomaly's `skyline/<app>/<metric>`), claimed
/// at `claim`; None for another kind of key.
pub fn resolve_notice(dedup_key: &str, claim: i64) -> Option<AnomalyNotice> {
    let (app, metric) = dedup_key.strip_prefix("skyline/")?.split_once('/')?;
    if app == "test" || app == "thunder" || metric.is_empty() {
        return None;
    }
    Some(AnomalyNotice {
        anomaly: crate::model::Anomaly {
            metric: metric.to_string(),
            timestamp: claim,
            datapoint: 0.0,
            from_timestamp: claim,
            full_duration: 0,
            algorithms_run: Vec::new(),
            triggered_algorithms: Vec::new(),
            app: app.to_string(),
            source: String::new(),
            host: String::new(),
            added_at: claim,
        },
        expiration_secs: 0,
        to: Vec::new(),
        test: false,
        resolve: Some(claim),
    })
}

/// Claims up to `limit` resolves due at `now` (see the module docs); their keys.
pub async fn claim_due(
    conn: &mut RedisConn,
    now: i64,
    limit: usize,
) -> redis::RedisResult<(i64, Vec<String>)> {
    let claim = now + RESOLVE_RECLAIM_SECS;
    let script = redis::Script::new(CLAIM_SCRIPT);
    let mut inv = script.prepare_invoke();
    inv.key(OPEN_INCIDENTS_KEY).arg(now).arg(claim).arg(limit);
    let due: Vec<String> = inv.invoke_async(conn).await?;
    Ok((claim, due))
}

/// The `dedup_key` of `n`.
pub fn dedup_key(n: &Notification) -> String {
    match n {
        Notification::Anomaly(a) if a.test => format!("skyline/test/{}", a.anomaly.metric),
        Notification::Anomaly(a) => format!("skyline/{}/{}", a.anomaly.app, a.anomaly.metric),
        Notification::System(s) => format!("skyline/thunder/{}/{}", s.host, s.check),
    }
}

fn clip(s: String) -> String {
    if s.chars().count() <= SUMMARY_MAX {
        return s;
    }
    let mut out: String = s.chars().take(SUMMARY_MAX - 1).collect();
    out.push('…');
    out
}

/// The Events API v2 document posted for `n`.
pub fn event(n: &Notification, ctx: &Context, routing_key: &str, severity: &str) -> Value {
    let key = dedup_key(n);
    match n {
        Notification::Anomaly(a) if a.resolve.is_some() => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": key,
        }),
        Notification::Anomaly(a) => {
            let x = &a.anomaly;
            let mut v = json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": key,
                "client": "Skyline",
                "payload": {
                    "summary": clip(n.headline()),
                    "source": x.host,
                    "severity": if a.test { "info" } else { severity },
                    "timestamp": rfc3339(x.timestamp),
                    "component": x.metric,
                    "group": x.app,
                    "class": "anomaly",
                    "custom_details": {
                        "metric": x.metric,
                        "value": value_str(x.datapoint),
                        "triggered_algorithms": x.triggered_algorithms,
                        "algorithms_run": x.algorithms_run,
                        "from_timestamp": x.from_timestamp,
                        "anomaly_timestamp": x.timestamp,
                        "expiration_secs": a.expiration_secs,
                        "test": a.test,
                    },
                },
            });
            if let Some(link) = ctx.graph_link(&x.metric, x.timestamp) {
                v["links"] = json!([{ "href": link, "text": "Graphite" }]);
            }
            v
        }
        Notification::System(s) => match s.status {
            SystemStatus::Firing => json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": key,
                "client": "Skyline",
                "payload": {
                    "summary": clip(n.headline()),
                    "source": s.host,
                    "severity": "critical",
                    "timestamp": rfc3339(s.timestamp),
                    "component": s.check,
                    "group": "thunder",
                    "class": "self-monitoring",
                    "custom_details": { "check": s.check, "summary": s.summary },
                },
            }),
            SystemStatus::Recovered => json!({
                "routing_key": routing_key,
                "event_action": "resolve",
                "dedup_key": key,
            }),
        },
    }
}

impl PagerdutyAlerter {
    /// From `[alerters.pagerduty]`; `redis` holds the incidents to resolve.
    pub fn new(s: &PagerdutySettings, ctx: Context, redis: Option<RedisConn>) -> Self {
        PagerdutyAlerter {
            url: s.url.clone(),
            routing_key: s.routing_key.clone(),
            severity: s.severity.clone(),
            ctx,
            redis,
        }
    }

    /// `scheme://host:port` of the URL, for logs.
    pub fn peer(&self) -> String {
        peer_of(&self.url)
    }

    /// One POST.
    pub async fn send(
        &self,
        client: &awc::Client,
        n: &Notification,
        timeout: Duration,
    ) -> Result<(), AlertError> {
        let body = event(n, &self.ctx, &self.routing_key, &self.severity).to_string();
        post_json(client, "pagerduty", &self.url, &[], body, timeout).await?;
        if let (Notification::Anomaly(a), Some(conn)) = (n, &self.redis) {
            if !a.test {
                self.record(conn.clone(), a, &dedup_key(n), timeout).await;
            }
        }
        Ok(())
    }

    /// After a delivered trigger: schedules its resolve at the window's end; after a delivered
    /// resolve: forgets the incident unless a newer trigger re-scheduled it.
    async fn record(&self, mut conn: RedisConn, a: &AnomalyNotice, key: &str, timeout: Duration) {
        let (what, res) = match a.resolve {
            None => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(OPEN_INCIDENTS_KEY).arg(a.window_end(now)).arg(key);
                let res = tokio::time::timeout(timeout, cmd.query_async::<i64>(&mut conn)).await;
                ("schedule the resolve of", res)
            }
            Some(claim) => {
                let script = redis::Script::new(DONE_SCRIPT);
                let mut inv = script.prepare_invoke();
                inv.key(OPEN_INCIDENTS_KEY).arg(key).arg(claim);
                let res = tokio::time::timeout(timeout, inv.invoke_async::<i64>(&mut conn)).await;
                ("forget the resolved", res)
            }
        };
        let res = match res {
            Ok(Ok(_)) => return,
            Ok(Err(err)) => err.to_string(),
            Err(_) => format!("no answer within {} s", timeout.as_secs()),
        };
        m::ALERTS_REDIS_ERRORS.inc();
        error!(
            "pagerduty: cannot {what} incident for metric {} in Redis ({OPEN_INCIDENTS_KEY}): {res}{}",
            a.anomaly.metric,
            if a.resolve.is_none() {
                "; the daemon will not resolve it (PagerDuty's auto-resolve or a person must)"
            } else {
                "; it is resolved again after the reclaim delay (harmless)"
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::messages::SystemAlert;
    use super::super::notification::AnomalyNotice;
    use super::*;

    fn notice(test: bool) -> Notification {
        Notification::Anomaly(AnomalyNotice {
            anomaly: crate::model::Anomaly {
                metric: "web.h1.requests".into(),
                timestamp: 1_763_690_400,
                datapoint: 18123.0,
                from_timestamp: 1_763_604_000,
                full_duration: 86_400,
                algorithms_run: vec!["grubbs".into(), "ks_test".into()],
                triggered_algorithms: vec!["grubbs".into()],
                app: "analyzer".into(),
                source: "graphite".into(),
                host: "h1".into(),
                added_at: 1_763_690_401,
            },
            expiration_secs: 3600,
            to: vec![],
            test,
            resolve: None,
        })
    }

    #[test]
    fn anomaly_is_a_trigger_deduplicated_per_metric() {
        let v = event(&notice(false), &Context::default(), "R0UT1NG", "warning");
        assert_eq!(v["routing_key"], "R0UT1NG");
        assert_eq!(v["event_action"], "trigger");
        assert_eq!(v["dedup_key"], "skyline/analyzer/web.h1.requests");
        assert_eq!(v["payload"]["severity"], "warning");
        assert_eq!(v["payload"]["source"], "h1");
        assert_eq!(v["payload"]["timestamp"], "2025-11-21T02:00:00Z");
        assert_eq!(v["payload"]["custom_details"]["value"], "18123.0");
        assert_eq!(
            v["payload"]["summary"],
            "Analyzer - Anomalous metric: web.h1.requests (value: 18123.0)"
        );
        assert!(v.get("links").is_none());
        let t = event(&notice(true), &Context::default(), "k", "error");
        assert_eq!(t["payload"]["severity"], "info");
        assert_eq!(t["dedup_key"], "skyline/test/web.h1.requests");
    }

    #[test]
    fn thunder_triggers_then_resolves_the_same_incident() {
        let mut s = SystemAlert {
            check: "redis".into(),
            status: SystemStatus::Firing,
            summary: "Redis does not answer".into(),
            host: "h1".into(),
            timestamp: 5,
        };
        let fire = event(
            &Notification::System(s.clone()),
            &Context::default(),
            "k",
            "warning",
        );
        assert_eq!(fire["event_action"], "trigger");
        assert_eq!(fire["payload"]["severity"], "critical");
        s.status = SystemStatus::Recovered;
        let res = event(
            &Notification::System(s),
            &Context::default(),
            "k",
            "warning",
        );
        assert_eq!(res["event_action"], "resolve");
        assert_eq!(res["dedup_key"], fire["dedup_key"]);
        assert_eq!(res["dedup_key"], "skyline/thunder/h1/redis");
    }

    #[test]
    fn anomaly_incidents_resolve_with_the_same_dedup_key() {
        let trigger = event(&notice(false), &Context::default(), "k", "warning");
        let n = resolve_notice("skyline/analyzer/web.h1.requests", 1_000).unwrap();
        assert_eq!(n.resolve, Some(1_000));
        let resolve = event(
            &Notification::Anomaly(n),
            &Context::default(),
            "k",
            "warning",
        );
        assert_eq!(
            resolve,
            json!({"routing_key": "k", "event_action": "resolve",
                "dedup_key": "skyline/analyzer/web.h1.requests"})
        );
        assert_eq!(resolve["dedup_key"], trigger["dedup_key"]);
        // A metric name with slashes keeps them; test and Thunder keys are never resolved here.
        let n = resolve_notice("skyline/mirage/a/b", 5).unwrap();
        assert_eq!(
            (n.anomaly.app.as_str(), n.anomaly.metric.as_str()),
            ("mirage", "a/b")
        );
        assert!(resolve_notice("skyline/test/x", 5).is_none());
        assert!(resolve_notice("skyline/thunder/h/redis", 5).is_none());
        assert!(resolve_notice("other", 5).is_none());
        // The window ends where Alertmanager's endsAt does.
        let Notification::Anomaly(a) = notice(false) else {
            unreachable!()
        };
        assert_eq!(a.window_end(0), 1_763_690_401 + 3600);
    }

    #[test]
    fn long_summaries_are_clipped() {
        let s = clip("x".repeat(5000));
        assert_eq!(s.chars().count(), SUMMARY_MAX);
    }
}
