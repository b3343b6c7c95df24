//! The configured alerters as one enum, built from `[alerters]`, and `skyline alert-test`.
//! Every delivery goes through [`Channel::deliver`], which caps the attempt at
//! `[alerters] timeout_secs` (the only bound needed: callers send one alert at a time).

use std::time::Duration;

use crate::store::redis_conn::RedisConn;

use super::alertmanager::AlertmanagerAlerter;
use super::config::{AlertRule, AlertersSettings};
use super::error::AlertError;
use super::notification::{AnomalyNotice, Context, Notification};
use super::pagerduty::PagerdutyAlerter;
use super::rules::RuleSet;
use super::slack::SlackAlerter;
use super::smtp::SmtpAlerter;
use super::syslog::SyslogAlerter;
use super::webhook::WebhookAlerter;
use crate::model::Anomaly;

/// One alerter.
#[derive(Clone)]
pub enum Channel {
    /// `[alerters.smtp]` (boxed: the transport is large).
    Smtp(Box<SmtpAlerter>),
    /// `[alerters.slack]`.
    Slack(SlackAlerter),
    /// `[alerters.webhook]`.
    Webhook(WebhookAlerter),
    /// `[alerters.syslog]`.
    Syslog(SyslogAlerter),
    /// `[alerters.alertmanager]`.
    Alertmanager(AlertmanagerAlerter),
    /// `[alerters.pagerduty]`.
    Pagerduty(PagerdutyAlerter),
}

impl Channel {
    /// `smtp`, `slack`, `webhook`, `syslog`, `alertmanager` or `pagerduty` (the `<alerter>` of
    /// `last_alert.<alerter>.*`).
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Smtp(_) => "smtp",
            Channel::Slack(_) => "slack",
            Channel::Webhook(_) => "webhook",
            Channel::Syslog(_) => "syslog",
            Channel::Alertmanager(_) => "alertmanager",
            Channel::Pagerduty(_) => "pagerduty",
        }
    }

    /// Where it delivers, safe to log (no path, query or credentials).
    pub fn peer(&self) -> String {
        match self {
            Channel::Smtp(c) => c.peer(),
            Channel::Slack(c) => c.peer(),
            Channel::Webhook(c) => c.peer(),
            Channel::Syslog(c) => c.peer(),
            Channel::Alertmanager(c) => c.peer(),
            Channel::Pagerduty(c) => c.peer(),
        }
    }

    /// One attempt, at most `timeout` long. `http` serves the HTTP alerters.
    pub async fn deliver(
        &self,
        http: &awc::Client,
        n: &Notification,
        timeout: Duration,
    ) -> Result<(), AlertError> {
        let attempt = async {
            match self {
                Channel::Smtp(c) => c.send(n).await,
                Channel::Slack(c) => c.send(http, n, timeout).await,
                Channel::Webhook(c) => c.send(http, n, timeout).await,
                Channel::Syslog(c) => c.send(n).await,
                Channel::Alertmanager(c) => c.send(http, n, timeout).await,
                Channel::Pagerduty(c) => c.send(http, n, timeout).await,
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(AlertError::Timeout {
                alerter: self.name(),
                secs: timeout.as_secs(),
            }),
        }
    }
}

/// Builds every configured alerter. `redis` is read for email graphs; `hostname` goes in
/// syslog lines.
pub fn build_channels(
    s: &AlertersSettings,
    redis: Option<RedisConn>,
    ctx: &Context,
    hostname: &str,
) -> Result<Vec<Channel>, AlertError> {
    let mut out = Vec::new();
    if let Some(smtp) = &s.smtp {
        out.push(Channel::Smtp(Box::new(SmtpAlerter::new(
            smtp,
            Duration::from_secs(s.timeout_secs),
            redis.clone(),
            ctx.clone(),
        )?)));
    }
    if let Some(slack) = &s.slack {
        out.push(Channel::Slack(SlackAlerter::new(slack, ctx.clone())));
    }
    if let Some(w) = &s.webhook {
        out.push(Channel::Webhook(WebhookAlerter::new(w, ctx.clone())));
    }
    if let Some(sys) = &s.syslog {
        out.push(Channel::Syslog(SyslogAlerter::new(sys, hostname)?));
    }
    if let Some(a) = &s.alertmanager {
        out.push(Channel::Alertmanager(AlertmanagerAlerter::new(
            a,
            ctx.clone(),
        )));
    }
    if let Some(p) = &s.pagerduty {
        out.push(Channel::Pagerduty(PagerdutyAlerter::new(
            p,
            ctx.clone(),
            redis,
        )));
    }
    Ok(out)
}

/// An HTTP client for the HTTP alerters (Slack, webhook, Alertmanager, PagerDuty) (create on the arbiter that uses it).
pub fn http_client(timeout: Duration) -> awc::Client {
    awc::Client::builder().timeout(timeout).finish()
}

/// The result of one alerter in `skyline alert-test`.
#[derive(Debug)]
pub struct TestOutcome {
    /// The alerter.
    pub alerter: &'static str,
    /// Where it delivered (safe to print).
    pub peer: String,
    /// The pattern of the rule that matched.
    pub pattern: String,
    /// Delivered, or why not.
    pub result: Result<(), AlertError>,
}

/// `skyline alert-test --metric NAME`: one test alert through every alerter whose first
/// matching rule matches `metric` (no `last_alert` key is read or written). Must run inside
/// an actix system. Reads the metric's last value (and, for email, its graph) from Redis
/// when `redis` is given and answers. Empty when no rule matches.
pub async fn test_alert(
    rules: &[AlertRule],
    alerters: &AlertersSettings,
    ctx: &Context,
    host: &str,
    metric: &str,
    redis: Option<RedisConn>,
) -> Result<Vec<TestOutcome>, String> {
    let rules = RuleSet::new(rules)?;
    let matched = rules.matching(metric);
    if matched.is_empty() {
        return Ok(Vec::new());
    }
    let channels = build_channels(alerters, redis.clone(), ctx, host).map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (mut timestamp, mut value) = (now, 0.0);
    if let Some(mut conn) = redis {
        if let Some(series) = super::smtp::fetch_series(&mut conn, metric, 3600).await {
            if let Some(&(t, v)) = series.iter().max_by(|a, b| a.0.total_cmp(&b.0)) {
                (timestamp, value) = (t as i64, v);
            }
        }
    }
    let timeout = Duration::from_secs(alerters.timeout_secs);
    let http = http_client(timeout);
    let mut out = Vec::new();
    for (rule, _) in matched {
        let Some(ch) = channels.iter().find(|c| c.name() == rule.alerter) else {
            continue;
        };
        let n = Notification::Anomaly(AnomalyNotice {
            anomaly: Anomaly {
                metric: metric.to_string(),
                timestamp,
                datapoint: value,
                from_timestamp: timestamp - ctx.full_duration_secs,
                full_duration: ctx.full_duration_secs,
                algorithms_run: Vec::new(),
                triggered_algorithms: Vec::new(),
                app: "analyzer".into(),
                source: "graphite".into(),
                host: host.to_string(),
                added_at: now,
            },
            expiration_secs: rule.expiration_secs,
            to: rule.to.clone(),
            test: true,
            resolve: None,
        });
        let result = ch.deliver(&http, &n, timeout).await;
        out.push(TestOutcome {
            alerter: ch.name(),
            peer: ch.peer(),
            pattern: rule.pattern.clone(),
            result,
        });
    }
    Ok(out)
}
