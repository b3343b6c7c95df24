//! The Alertmanager alerter: one `POST <url>/api/v2/alerts` per alert to a Prometheus
//! Alertmanager (`[alerters.alertmanager] url`), so operators get routing, grouping, silences,
//! inhibition and escalation from the tool they already run.
//!
//! * An anomaly becomes one alert with labels `alertname="SkylineAnomaly"`, `metric`, `app`
//!   (`analyzer`, `mirage`, `boundary`), `algorithms` (the triggered ones, sorted,
//!   comma-joined), `instance` (this host) plus the configured static `labels`;
//!   annotations `summary` (Skyline's headline), `value`, `anomaly_timestamp`; `startsAt` the
//!   anomalous datapoint's time, `endsAt` the end of its alert window (detection time +
//!   the rule's `expiration_secs`). The daemon sends one alert per metric per window (the
//!   `last_alert.alertmanager.<metric>` key), so Alertmanager sees one alert per anomaly
//!   window and resolves it itself at `endsAt` (a `send_resolved` receiver gets the resolve),
//!   even if this daemon is down by then; an anomaly that persists past the window is alerted
//!   again and so re-opens it.
//! * A Thunder event becomes `alertname="SkylineSystem"` with labels `check`, `instance`;
//!   firing without `endsAt` (Alertmanager's `resolve_timeout` applies; Thunder repeats it while
//!   the condition lasts), recovered with `endsAt` = now, which resolves it at once.
//! * `skyline alert-test` sends a `SkylineAnomaly` with `test="true"` ending five minutes later.
//!
//! Delivery is the shared webhook POST (2xx = delivered, anything else retried by the
//! delivery worker); errors name `scheme://host:port` only; header values never logged.
//! Backpressure: one request at a time from its delivery task, each capped by
//! `[alerters] timeout_secs`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::config::{peer_of, AlertmanagerSettings};
use super::error::AlertError;
use super::messages::SystemStatus;
use super::notification::{rfc3339, value_str, Context, Notification};
use super::webhook::post_json;

/// How long a test alert stays firing.
const TEST_ALERT_SECS: i64 = 300;

/// Delivers to an Alertmanager.
#[derive(Clone)]
pub struct AlertmanagerAlerter {
    endpoint: String,
    labels: BTreeMap<String, String>,
    headers: Vec<(String, String)>,
    ctx: Context,
}

/// `<url>/api/v2/alerts` (the URL may already end with it).
pub fn endpoint(url: &str) -> String {
    let base = url.trim_end_matches('/');
    if base.ends_with("/api/v2/alerts") {
        base.to_string()
    } else {
        format!("{base}/api/v2/alerts")
    }
}

/// The alert (one element of the posted array) for `n`; `now` is epoch seconds.
pub fn alert(n: &Notification, ctx: &Context, extra: &BTreeMap<String, String>, now: i64) -> Value {
    let mut labels = Map::new();
    for (k, v) in extra {
        labels.insert(k.clone(), Value::String(v.clone()));
    }
    let mut annotations = Map::new();
    annotations.insert("summary".into(), Value::String(n.headline()));
    let mut out = Map::new();
    match n {
        Notification::Anomaly(a) => {
            let x = &a.anomaly;
            let mut algos = x.triggered_algorithms.clone();
            algos.sort();
            algos.dedup();
            labels.insert("alertname".into(), json!("SkylineAnomaly"));
            labels.insert("metric".into(), json!(x.metric));
            labels.insert("app".into(), json!(x.app));
            labels.insert("algorithms".into(), json!(algos.join(",")));
            labels.insert("instance".into(), json!(x.host));
            if a.test {
                labels.insert("test".into(), json!("true"));
            }
            annotations.insert("value".into(), json!(value_str(x.datapoint)));
            annotations.insert("anomaly_timestamp".into(), json!(x.timestamp.to_string()));
            annotations.insert("source".into(), json!(x.source));
            // The window opens at the anomalous datapoint (never in the future, which
            // Alertmanager would take literally) and closes when the alert expires.
            let starts = x.timestamp.min(now);
            let ends = if a.test {
                now + TEST_ALERT_SECS
            } else {
                a.window_end(now)
            };
            out.insert("startsAt".into(), json!(rfc3339(starts)));
            out.insert("endsAt".into(), json!(rfc3339(ends.max(starts + 1))));
            if let Some(link) = ctx.graph_link(&x.metric, x.timestamp) {
                out.insert("generatorURL".into(), json!(link));
            }
        }
        Notification::System(s) => {
            labels.insert("alertname".into(), json!("SkylineSystem"));
            labels.insert("check".into(), json!(s.check));
            labels.insert("instance".into(), json!(s.host));
            annotations.insert("description".into(), json!(s.summary));
            match s.status {
                SystemStatus::Firing => {
                    out.insert("startsAt".into(), json!(rfc3339(s.timestamp.min(now))));
                }
                SystemStatus::Recovered => {
                    // Same labels, endsAt now: Alertmanager resolves the open alert.
                    out.insert("endsAt".into(), json!(rfc3339(now)));
                }
            }
        }
    }
    out.insert("labels".into(), Value::Object(labels));
    out.insert("annotations".into(), Value::Object(annotations));
    Value::Object(out)
}

impl AlertmanagerAlerter {
    /// From `[alerters.alertmanager]`.
    pub fn new(s: &AlertmanagerSettings, ctx: Context) -> Self {
        AlertmanagerAlerter {
            endpoint: endpoint(&s.url),
            labels: s.labels.clone(),
            headers: s
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ctx,
        }
    }

    /// `scheme://host:port` of the URL, for logs.
    pub fn peer(&self) -> String {
        peer_of(&self.endpoint)
    }

    /// One POST of a one-alert array.
    pub async fn send(
        &self,
        client: &awc::Client,
        n: &Notification,
        timeout: Duration,
    ) -> Result<(), AlertError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let body = Value::Array(vec![alert(n, &self.ctx, &self.labels, now)]).to_string();
        post_json(
            client,
            "alertmanager",
            &self.endpoint,
            &self.headers,
            body,
            timeout,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::messages::SystemAlert;
    use super::super::notification::AnomalyNotice;
    use super::*;

    fn anomaly(test: bool) -> Notification {
        Notification::Anomaly(AnomalyNotice {
            anomaly: crate::model::Anomaly {
                metric: "web.h1.requests".into(),
                timestamp: 1_000,
                datapoint: 7.0,
                from_timestamp: 10,
                full_duration: 990,
                algorithms_run: vec!["grubbs".into(), "ks_test".into()],
                triggered_algorithms: vec!["ks_test".into(), "grubbs".into()],
                app: "analyzer".into(),
                source: "graphite".into(),
                host: "h1".into(),
                added_at: 1_010,
            },
            expiration_secs: 600,
            to: vec![],
            test,
            resolve: None,
        })
    }

    #[test]
    fn anomaly_alert_has_labels_and_a_window() {
        let extra: BTreeMap<String, String> = [("team".to_string(), "web".to_string())].into();
        let ctx = Context {
            graphite_url: "http://graphite:8080".into(),
            full_duration_secs: 3600,
        };
        let v = alert(&anomaly(false), &ctx, &extra, 1_020);
        assert_eq!(v["labels"]["alertname"], "SkylineAnomaly");
        assert_eq!(v["labels"]["metric"], "web.h1.requests");
        assert_eq!(v["labels"]["app"], "analyzer");
        assert_eq!(v["labels"]["algorithms"], "grubbs,ks_test");
        assert_eq!(v["labels"]["team"], "web");
        assert!(v["labels"].get("test").is_none());
        assert_eq!(v["startsAt"], rfc3339(1_000));
        assert_eq!(v["endsAt"], rfc3339(1_610));
        assert_eq!(v["annotations"]["value"], "7.0");
        assert!(v["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("Anomalous metric: web.h1.requests"));
        assert!(v["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("http://graphite:8080/render/"));
        // The daemon's labels win over a static label of the same name.
        let clash: BTreeMap<String, String> = [("metric".to_string(), "x".to_string())].into();
        let v = alert(&anomaly(false), &Context::default(), &clash, 1_020);
        assert_eq!(v["labels"]["metric"], "web.h1.requests");
        assert!(v.get("generatorURL").is_none());
    }

    #[test]
    fn test_alerts_are_labelled_and_short() {
        let v = alert(&anomaly(true), &Context::default(), &BTreeMap::new(), 5_000);
        assert_eq!(v["labels"]["test"], "true");
        assert_eq!(v["startsAt"], rfc3339(1_000));
        assert_eq!(v["endsAt"], rfc3339(5_300));
    }

    #[test]
    fn thunder_fires_then_resolves_with_the_same_labels() {
        let mut s = SystemAlert {
            check: "redis".into(),
            status: SystemStatus::Firing,
            summary: "Redis does not answer".into(),
            host: "h1".into(),
            timestamp: 50,
        };
        let firing = alert(
            &Notification::System(s.clone()),
            &Context::default(),
            &BTreeMap::new(),
            60,
        );
        assert_eq!(firing["labels"]["alertname"], "SkylineSystem");
        assert_eq!(firing["startsAt"], rfc3339(50));
        assert!(firing.get("endsAt").is_none());
        s.status = SystemStatus::Recovered;
        let resolved = alert(
            &Notification::System(s),
            &Context::default(),
            &BTreeMap::new(),
            90,
        );
        assert_eq!(resolved["labels"], firing["labels"]);
        assert_eq!(resolved["endsAt"], rfc3339(90));
    }

    #[test]
    fn endpoint_is_the_v2_alerts_api() {
        assert_eq!(
            endpoint("http://127.0.0.1:9093"),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
        assert_eq!(
            endpoint("http://am:9093/api/v2/alerts/"),
            "http://am:9093/api/v2/alerts"
        );
    }
}
