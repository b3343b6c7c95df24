//! The Slack alerter: a message per alert to an incoming webhook (`[alerters.slack]
//! webhook_url`, which is the secret: only `https://hooks.slack.com` is ever logged). Text in
//! Skyline G's phrasing (`*Skyline Analyzer - ALERT* on <metric> at 24 hours - <value>`),
//! with a graphite-web link when `[graphite] url` is set. Delivery, retries and backpressure
//! as the webhook (one request at a time from its own delivery task).

use std::time::Duration;

use serde_json::{json, Value};

use super::config::{peer_of, SlackSettings};
use super::error::AlertError;
use super::messages::SystemStatus;
use super::notification::{rfc3339, value_str, Context, Notification};
use super::webhook::post_json;

/// Escapes Slack mrkdwn control characters.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Delivers to a Slack incoming webhook.
#[derive(Clone)]
pub struct SlackAlerter {
    settings: SlackSettings,
    ctx: Context,
}

/// The message text for `n`.
pub fn text(n: &Notification, ctx: &Context) -> String {
    match n {
        Notification::Anomaly(a) => {
            let x = &a.anomaly;
            let hours = (ctx.full_duration_secs.max(3600)) / 3600;
            let mut t = format!(
                "*Skyline {} - ALERT* on {} at {hours} hours - {}\n",
                if a.test { "Test" } else { "Analyzer" },
                escape(&x.metric),
                value_str(x.datapoint)
            );
            t.push_str(&format!(
                "Triggered {} of {} algorithms: {}\nAnomaly at {} (UTC), found by {} on {}. Next alert for this metric in {} s.",
                x.triggered_algorithms.len(),
                x.algorithms_run.len(),
                escape(&x.triggered_algorithms.join(", ")),
                rfc3339(x.timestamp),
                escape(&x.app),
                escape(&x.host),
                a.expiration_secs
            ));
            if a.test {
                t.push_str("\n_This is a test alert from `skyline alert-test`._");
            }
            if let Some(link) = ctx.graph_link(&x.metric, x.timestamp) {
                t.push_str(&format!("\n<{link}|Graph>"));
            }
            t
        }
        Notification::System(s) => {
            let state = match s.status {
                SystemStatus::Firing => "ALERT",
                SystemStatus::Recovered => "RECOVERED",
            };
            format!(
                "*Skyline Thunder - {state}* {} on {}: {}",
                escape(&s.check),
                escape(&s.host),
                escape(&s.summary)
            )
        }
    }
}

/// The JSON document posted for `n`.
pub fn payload(n: &Notification, ctx: &Context, s: &SlackSettings) -> Value {
    let mut v = json!({ "text": text(n, ctx) });
    for (key, val) in [
        ("channel", &s.channel),
        ("username", &s.username),
        ("icon_emoji", &s.icon_emoji),
    ] {
        if !val.is_empty() {
            v[key] = json!(val);
        }
    }
    v
}

impl SlackAlerter {
    /// From `[alerters.slack]`.
    pub fn new(s: &SlackSettings, ctx: Context) -> Self {
        SlackAlerter {
            settings: s.clone(),
            ctx,
        }
    }

    /// `https://hooks.slack.com`, for logs.
    pub fn peer(&self) -> String {
        peer_of(&self.settings.webhook_url)
    }

    /// One POST.
    pub async fn send(
        &self,
        client: &awc::Client,
        n: &Notification,
        timeout: Duration,
    ) -> Result<(), AlertError> {
        let body = payload(n, &self.ctx, &self.settings).to_string();
        post_json(
            client,
            "slack",
            &self.settings.webhook_url,
            &[],
            body,
            timeout,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::notification::AnomalyNotice;
    use super::*;

    #[test]
    fn g_title_and_escaping() {
        let a = crate::model::Anomaly {
            metric: "web.<h1>&.requests".into(),
            timestamp: 100,
            datapoint: 7.5,
            from_timestamp: 10,
            full_duration: 90,
            algorithms_run: vec!["grubbs".into(), "ks_test".into()],
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
        let ctx = Context {
            graphite_url: String::new(),
            full_duration_secs: 86_400,
        };
        let s = SlackSettings {
            channel: "#ops".into(),
            ..Default::default()
        };
        let v = payload(&n, &ctx, &s);
        let t = v["text"].as_str().unwrap();
        assert!(
            t.starts_with(
                "*Skyline Analyzer - ALERT* on web.&lt;h1&gt;&amp;.requests at 24 hours - 7.5"
            ),
            "{t}"
        );
        assert_eq!(v["channel"], "#ops");
        assert!(v.get("username").is_none());
    }
}
