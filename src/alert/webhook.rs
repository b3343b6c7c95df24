//! The generic HTTP webhook alerter: one JSON POST per alert to `[alerters.webhook] url`,
//! with the configured extra headers. Also the POST helper the Slack alerter uses. A 2xx
//! answer is success; anything else (or no answer within the timeout) is retried by the
//! delivery worker. Errors name the peer as `scheme://host:port` only; header values are
//! never logged. Backpressure: one request at a time per alerter (its delivery task), each
//! capped by `[alerters] timeout_secs`.

use std::time::Duration;

use serde_json::{json, Value};

use super::config::{peer_of, WebhookSettings};
use super::error::AlertError;
use super::notification::{value_str, Context, Notification};

/// Delivers to a generic webhook.
#[derive(Clone)]
pub struct WebhookAlerter {
    url: String,
    headers: Vec<(String, String)>,
    ctx: Context,
}

/// The JSON document posted for `n`.
pub fn payload(n: &Notification, ctx: &Context) -> Value {
    match n {
        Notification::Anomaly(a) => {
            let x = &a.anomaly;
            json!({
                "type": "anomaly",
                "context": n.context(),
                "test": a.test,
                "metric": x.metric,
                "value": x.datapoint,
                "value_str": value_str(x.datapoint),
                "timestamp": x.timestamp,
                "from_timestamp": x.from_timestamp,
                "full_duration": x.full_duration,
                "triggered_algorithms": x.triggered_algorithms,
                "algorithms_run": x.algorithms_run,
                "app": x.app,
                "source": x.source,
                "host": x.host,
                "added_at": x.added_at,
                "expiration_secs": a.expiration_secs,
                "message": n.headline(),
                "graph_url": ctx.graph_link(&x.metric, x.timestamp),
            })
        }
        Notification::System(s) => json!({
            "type": "thunder",
            "context": n.context(),
            "check": s.check,
            "status": s.status,
            "summary": s.summary,
            "host": s.host,
            "timestamp": s.timestamp,
            "message": n.headline(),
        }),
    }
}

/// POSTs `body` as JSON; Ok on 2xx.
pub async fn post_json(
    client: &awc::Client,
    alerter: &'static str,
    url: &str,
    headers: &[(String, String)],
    body: String,
    timeout: Duration,
) -> Result<(), AlertError> {
    let fail = |message: String| AlertError::Http {
        alerter,
        peer: peer_of(url),
        message,
    };
    let mut req = client
        .post(url)
        .timeout(timeout)
        .insert_header(("Content-Type", "application/json"));
    for (k, v) in headers {
        req = req.insert_header((k.as_str(), v.as_str()));
    }
    let mut resp = req.send_body(body).await.map_err(|e| match e {
        awc::error::SendRequestError::Timeout => AlertError::Timeout {
            alerter,
            secs: timeout.as_secs(),
        },
        // Connect errors name the host only; the request (with its headers) is not shown.
        other => fail(other.to_string()),
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let body = resp.body().limit(4096).await.unwrap_or_default();
    let text: String = String::from_utf8_lossy(&body).chars().take(200).collect();
    Err(fail(format!("HTTP {status}: {}", text.trim())))
}

impl WebhookAlerter {
    /// From `[alerters.webhook]`.
    pub fn new(s: &WebhookSettings, ctx: Context) -> Self {
        WebhookAlerter {
            url: s.url.clone(),
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
        peer_of(&self.url)
    }

    /// One POST.
    pub async fn send(
        &self,
        client: &awc::Client,
        n: &Notification,
        timeout: Duration,
    ) -> Result<(), AlertError> {
        let body = payload(n, &self.ctx).to_string();
        post_json(client, "webhook", &self.url, &self.headers, body, timeout).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::messages::{SystemAlert, SystemStatus};
    use super::super::notification::AnomalyNotice;
    use super::*;

    #[test]
    fn anomaly_and_thunder_documents() {
        let a = crate::model::Anomaly {
            metric: "web.h1.requests".into(),
            timestamp: 100,
            datapoint: 7.0,
            from_timestamp: 10,
            full_duration: 90,
            algorithms_run: vec!["grubbs".into()],
            triggered_algorithms: vec!["grubbs".into()],
            app: "analyzer".into(),
            source: "graphite".into(),
            host: "h".into(),
            added_at: 101,
        };
        let n = Notification::Anomaly(AnomalyNotice {
            anomaly: a,
            expiration_secs: 60,
            to: vec![],
            test: false,
            resolve: None,
        });
        let v = payload(&n, &Context::default());
        assert_eq!(v["type"], "anomaly");
        assert_eq!(v["metric"], "web.h1.requests");
        assert_eq!(v["value"], 7.0);
        assert_eq!(v["expiration_secs"], 60);
        assert_eq!(
            v["message"],
            "Analyzer - Anomalous metric: web.h1.requests (value: 7.0)"
        );
        assert!(v["graph_url"].is_null());
        let s = Notification::System(SystemAlert {
            check: "redis".into(),
            status: SystemStatus::Recovered,
            summary: "Redis answers again".into(),
            host: "h".into(),
            timestamp: 5,
        });
        let v = payload(&s, &Context::default());
        assert_eq!(v["type"], "thunder");
        assert_eq!(v["status"], "recovered");
        assert_eq!(v["check"], "redis");
    }
}
