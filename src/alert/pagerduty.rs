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
//!   Graphite link when `[graphite] url` is set. Anomaly incidents are closed by people or by
//!   the PagerDuty service's own auto-resolve timeout (the daemon keeps no timers that a
//!   restart would lose).
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

use serde_json::{json, Value};

use super::config::{peer_of, PagerdutySettings};
use super::error::AlertError;
use super::messages::SystemStatus;
use super::notification::{rfc3339, value_str, Context, Notification};
use super::webhook::post_json;

/// PagerDuty's limit on `payload.summary`.
const SUMMARY_MAX: usize = 1024;

/// Delivers to PagerDuty Events API v2.
#[derive(Clone)]
pub struct PagerdutyAlerter {
    url: String,
    routing_key: String,
    severity: String,
    ctx: Context,
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
    /// From `[alerters.pagerduty]`.
    pub fn new(s: &PagerdutySettings, ctx: Context) -> Self {
        PagerdutyAlerter {
            url: s.url.clone(),
            routing_key: s.routing_key.clone(),
            severity: s.severity.clone(),
            ctx,
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
        post_json(client, "pagerduty", &self.url, &[], body, timeout).await
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
    fn long_summaries_are_clipped() {
        let s = clip("x".repeat(5000));
        assert_eq!(s.chars().count(), SUMMARY_MAX);
    }
}
