//! `[[alerts]]` (Skyline's `ALERTS` tuples) and `[alerters]` (`SMTP_OPTS`, `SLACK_OPTS`,
//! `SYSLOG_OPTS`, …): the settings types and their checks. Pure: no I/O, no actors, nothing
//! queued.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::rules::Matcher;

/// The alerter names a rule may use.
pub const ALERTER_NAMES: [&str; 6] = [
    "smtp",
    "slack",
    "webhook",
    "syslog",
    "alertmanager",
    "pagerduty",
];

/// One `[[alerts]]` entry: Skyline's `(pattern, alerter, EXPIRATION_TIME)` tuple.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Metric pattern: a regex when it starts with `^`; a Graphite glob when it holds `*`, `?`,
    /// `[` or `{`; otherwise a namespace matched as Skyline G does (exact, substring, every
    /// dotted element, then a regex from the start).
    pub pattern: String,
    /// `smtp`, `slack`, `webhook`, `syslog`, `alertmanager` or `pagerduty`.
    pub alerter: String,
    /// One alert per metric per alerter within this many seconds (`EXPIRATION_TIME`), kept
    /// in Redis as `last_alert.<alerter>.<metric>`.
    #[serde(default = "default_expiration")]
    pub expiration_secs: u64,
    /// smtp only: recipients for this rule instead of `[alerters.smtp] to` (Skyline's
    /// `SMTP_OPTS['recipients'][pattern]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Skyline's 4th ALERTS element (`SECOND_ORDER_RESOLUTION_HOURS`): on the first matching
    /// `smtp` rule, a value above 24 makes the metric a Mirage metric re-analysed over this
    /// many hours before anyone is alerted (see docs/mirage.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_order_resolution_hours: Option<u64>,
}

fn default_expiration() -> u64 {
    3600
}

/// `[alerters]`: common delivery settings plus one optional table per alerter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AlertersSettings {
    /// Send alerts at all (`ENABLE_ALERTS`). Anomalies are logged either way.
    pub enabled: bool,
    /// Alerts waiting per alerter; when full, new alerts for that alerter are dropped and
    /// counted (their `last_alert` key is not set, so the next run tries again).
    pub queue_max: usize,
    /// Delivery attempts per alert (the first included).
    pub max_attempts: u32,
    /// First pause between attempts; doubles per failure.
    pub retry_initial_ms: u64,
    /// Longest pause between attempts.
    pub retry_max_secs: u64,
    /// One attempt may take this long (Skyline kills its smtp child after 15 s).
    pub timeout_secs: u64,
    /// `[alerters.smtp]`: email with a graph of the metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSettings>,
    /// `[alerters.slack]`: a Slack incoming webhook.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slack: Option<SlackSettings>,
    /// `[alerters.webhook]`: a JSON POST to any URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSettings>,
    /// `[alerters.syslog]`: RFC 3164/5424 to `/dev/log` or UDP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub syslog: Option<SyslogSettings>,
    /// `[alerters.alertmanager]`: a Prometheus Alertmanager (`POST <url>/api/v2/alerts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alertmanager: Option<AlertmanagerSettings>,
    /// `[alerters.pagerduty]`: PagerDuty Events API v2.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pagerduty: Option<PagerdutySettings>,
}

impl Default for AlertersSettings {
    fn default() -> Self {
        AlertersSettings {
            enabled: true,
            queue_max: 1000,
            max_attempts: 5,
            retry_initial_ms: 1000,
            retry_max_secs: 60,
            timeout_secs: 15,
            smtp: None,
            slack: None,
            webhook: None,
            syslog: None,
            alertmanager: None,
            pagerduty: None,
        }
    }
}

/// `[alerters.smtp]` (`SMTP_OPTS`).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// `host:port` of the mail server (Skyline: `127.0.0.1`, port 25).
    pub server: String,
    /// Sender address (`SMTP_OPTS['sender']`).
    pub from: String,
    /// Default recipients (`SMTP_OPTS['default_recipient']`).
    pub to: Vec<String>,
    /// `none` (plain, as Skyline), `opportunistic` (STARTTLS when offered), `starttls`
    /// (STARTTLS required) or `tls` (implicit TLS, usually port 465). Certificates are checked
    /// against the Mozilla roots.
    pub tls: String,
    /// SMTP AUTH user; empty = no AUTH.
    pub username: String,
    /// SMTP AUTH password (never logged).
    pub password: String,
    /// Put a graph of the metric's last `full_duration_secs` (from Redis) in the email, inline
    /// SVG plus the same SVG attached.
    pub graph: bool,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("server", &self.server)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("graph", &self.graph)
            .finish()
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            server: "127.0.0.1:25".into(),
            from: String::new(),
            to: Vec::new(),
            tls: "none".into(),
            username: String::new(),
            password: String::new(),
            graph: true,
        }
    }
}

/// `[alerters.slack]`: an incoming webhook (the URL is the secret; never logged).
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SlackSettings {
    /// `https://hooks.slack.com/services/…`.
    pub webhook_url: String,
    /// Override the webhook's channel (`#ops`); empty = the webhook's own.
    pub channel: String,
    /// Override the poster's name; empty = the webhook's own.
    pub username: String,
    /// Override the poster's icon (`:rotating_light:`); empty = the webhook's own.
    pub icon_emoji: String,
}

impl std::fmt::Debug for SlackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSettings")
            .field("webhook_url", &peer_of(&self.webhook_url))
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

/// `[alerters.webhook]`: a JSON POST per alert.
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http://` or `https://` URL.
    pub url: String,
    /// Extra request headers, e.g. `{ Authorization = "Bearer …" }` (values never logged).
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &peer_of(&self.url))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// `[alerters.alertmanager]`: alerts POSTed to a Prometheus Alertmanager.
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AlertmanagerSettings {
    /// The Alertmanager's base URL (`http://127.0.0.1:9093`); `/api/v2/alerts` is appended.
    pub url: String,
    /// Static labels added to every alert (`{ team = "web" }`); the daemon's own labels
    /// (`alertname`, `metric`, `app`, `algorithms`, `instance`, `check`, `test`) win.
    pub labels: BTreeMap<String, String>,
    /// Extra request headers, e.g. `{ Authorization = "Bearer …" }` (values never logged).
    pub headers: BTreeMap<String, String>,
}

impl std::fmt::Debug for AlertmanagerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanagerSettings")
            .field("url", &peer_of(&self.url))
            .field("labels", &self.labels)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `[alerters.pagerduty]` (Skyline's `PAGERDUTY_OPTS`, on Events API v2).
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PagerdutySettings {
    /// The service integration's routing (integration) key: a secret, never logged.
    pub routing_key: String,
    /// Events API v2 endpoint.
    pub url: String,
    /// `critical`, `error`, `warning` or `info` for anomaly incidents (Thunder's are
    /// `critical`).
    pub severity: String,
}

impl Default for PagerdutySettings {
    fn default() -> Self {
        PagerdutySettings {
            routing_key: String::new(),
            url: PAGERDUTY_EVENTS_URL.into(),
            severity: "warning".into(),
        }
    }
}

impl std::fmt::Debug for PagerdutySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerdutySettings")
            .field(
                "routing_key",
                &if self.routing_key.is_empty() {
                    ""
                } else {
                    "***"
                },
            )
            .field("url", &peer_of(&self.url))
            .field("severity", &self.severity)
            .finish()
    }
}

fn check_headers(slot: &str, headers: &BTreeMap<String, String>, problems: &mut Vec<String>) {
    for (name, value) in headers {
        if awc::http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            problems.push(format!("{slot} headers: {name:?} is not a header name"));
        }
        if awc::http::header::HeaderValue::from_str(value).is_err() {
            problems.push(format!(
                "{slot} headers: the value of {name:?} is not a valid header value"
            ));
        }
    }
}

/// `[alerters.syslog]` (`SYSLOG_OPTS`, `SYSLOG_ENABLED`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogSettings {
    /// A unix datagram socket path (`/dev/log`) or `udp://host:port` / `host:port`.
    pub address: String,
    /// `rfc3164` (BSD, what Python's syslog module writes) or `rfc5424`.
    pub format: String,
    /// `local0` … `local7`, `user`, `daemon` (Skyline: `local4`).
    pub facility: String,
    /// The tag (`SYSLOG_OPTS['ident']`).
    pub ident: String,
    /// `SYSLOG_ENABLED`: every anomaly goes to syslog, whatever `[[alerts]]` say and without
    /// expiration, as Skyline G does.
    pub all_anomalies: bool,
}

impl Default for SyslogSettings {
    fn default() -> Self {
        SyslogSettings {
            address: "/dev/log".into(),
            format: "rfc3164".into(),
            facility: "local4".into(),
            ident: "skyline".into(),
            all_anomalies: true,
        }
    }
}

/// Syslog facility code of a name.
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

/// `scheme://host[:port]` of a URL: what logs and errors may show of a webhook (its path and
/// query often carry the token).
pub fn peer_of(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return "<invalid url>".into();
    };
    let rest = &url[scheme_end + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{}{host}", &url[..scheme_end + 3])
}

/// Splits `host:port` (`[v6]:port` too).
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.trim().rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn check_mailbox(slot: &str, addr: &str, problems: &mut Vec<String>) {
    if lettre::message::Mailbox::from_str(addr).is_err() {
        problems.push(format!("{slot}: {addr:?} is not an email address"));
    }
}

fn check_http_url(slot: &str, url: &str, problems: &mut Vec<String>) {
    if url.is_empty() {
        problems.push(format!("{slot}: must be set"));
    } else if !(url.starts_with("http://") || url.starts_with("https://")) {
        problems.push(format!("{slot}: must start with http:// or https://"));
    } else if url.parse::<awc::http::Uri>().is_err() {
        problems.push(format!("{slot}: {} is not a valid URL", peer_of(url)));
    }
}

impl AlertersSettings {
    /// True when `[alerters.<name>]` is present.
    pub fn configured(&self, name: &str) -> bool {
        match name {
            "smtp" => self.smtp.is_some(),
            "slack" => self.slack.is_some(),
            "webhook" => self.webhook.is_some(),
            "syslog" => self.syslog.is_some(),
            "alertmanager" => self.alertmanager.is_some(),
            "pagerduty" => self.pagerduty.is_some(),
            _ => false,
        }
    }

    /// The configured alerters, in [`ALERTER_NAMES`] order.
    pub fn configured_names(&self) -> Vec<&'static str> {
        ALERTER_NAMES
            .into_iter()
            .filter(|n| self.configured(n))
            .collect()
    }

    /// Adds every problem of `[alerters]` to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        if self.queue_max == 0 {
            problems.push("[alerters] queue_max: must be positive".into());
        }
        if self.max_attempts == 0 {
            problems.push("[alerters] max_attempts: must be at least 1".into());
        }
        if self.timeout_secs == 0 {
            problems.push("[alerters] timeout_secs: must be positive".into());
        }
        if self.retry_max_secs == 0 {
            problems.push("[alerters] retry_max_secs: must be positive".into());
        }
        if let Some(s) = &self.smtp {
            match split_host_port(&s.server) {
                None => problems.push(format!(
                    "[alerters.smtp] server: {:?} is not host:port",
                    s.server
                )),
                Some((host, _)) => {
                    if !s.username.is_empty() && s.tls == "none" && !is_loopback(&host) {
                        problems.push(
                            "[alerters.smtp] tls: \"none\" would send the password in clear to a remote server; use starttls or tls".into(),
                        );
                    }
                }
            }
            if s.from.is_empty() {
                problems.push("[alerters.smtp] from: must be set".into());
            } else {
                check_mailbox("[alerters.smtp] from", &s.from, problems);
            }
            for to in &s.to {
                check_mailbox("[alerters.smtp] to", to, problems);
            }
            if !["none", "opportunistic", "starttls", "tls"].contains(&s.tls.as_str()) {
                problems.push(format!(
                    "[alerters.smtp] tls: {:?} must be none, opportunistic, starttls or tls",
                    s.tls
                ));
            }
            if s.username.is_empty() != s.password.is_empty() {
                problems.push("[alerters.smtp] username/password: set both or neither".to_string());
            }
        }
        if let Some(s) = &self.slack {
            check_http_url("[alerters.slack] webhook_url", &s.webhook_url, problems);
        }
        if let Some(w) = &self.webhook {
            check_http_url("[alerters.webhook] url", &w.url, problems);
            for (name, value) in &w.headers {
                if awc::http::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problems.push(format!(
                        "[alerters.webhook] headers: {name:?} is not a header name"
                    ));
                }
                if awc::http::header::HeaderValue::from_str(value).is_err() {
                    problems.push(format!(
                        "[alerters.webhook] headers: the value of {name:?} is not a valid header value"
                    ));
                }
            }
        }
        if let Some(s) = &self.syslog {
            let addr = s.address.trim();
            let udp = addr.strip_prefix("udp://").unwrap_or(addr);
            if addr.is_empty() {
                problems.push("[alerters.syslog] address: must be set".into());
            } else if !addr.starts_with('/') && split_host_port(udp).is_none() {
                problems.push(format!(
                    "[alerters.syslog] address: {addr:?} is neither a socket path nor udp://host:port"
                ));
            }
            if !["rfc3164", "rfc5424"].contains(&s.format.as_str()) {
                problems.push(format!(
                    "[alerters.syslog] format: {:?} must be rfc3164 or rfc5424",
                    s.format
                ));
            }
            if facility_code(&s.facility).is_none() {
                problems.push(format!(
                    "[alerters.syslog] facility: {:?} is not a syslog facility (local0..local7, user, daemon, …)",
                    s.facility
                ));
            }
            if s.ident.is_empty() || s.ident.contains(char::is_whitespace) {
                problems.push("[alerters.syslog] ident: must be one word".into());
            }
        }
        if let Some(a) = &self.alertmanager {
            check_http_url("[alerters.alertmanager] url", &a.url, problems);
            check_headers("[alerters.alertmanager]", &a.headers, problems);
            for name in a.labels.keys() {
                let ok = name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    problems.push(format!(
                        "[alerters.alertmanager] labels: {name:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                    ));
                }
            }
        }
        if let Some(p) = &self.pagerduty {
            if p.routing_key.trim().is_empty() {
                problems.push(
                    "[alerters.pagerduty] routing_key: must be set (the service integration key)"
                        .into(),
                );
            }
            check_http_url("[alerters.pagerduty] url", &p.url, problems);
            if !["critical", "error", "warning", "info"].contains(&p.severity.as_str()) {
                problems.push(format!(
                    "[alerters.pagerduty] severity: {:?} must be critical, error, warning or info",
                    p.severity
                ));
            }
        }
    }
}

/// Adds every problem of the `[[alerts]]` list (given the alerters) to `problems`.
pub fn validate_rules(
    rules: &[AlertRule],
    alerters: &AlertersSettings,
    problems: &mut Vec<String>,
) {
    for (i, r) in rules.iter().enumerate() {
        let slot = format!("[[alerts]] #{} ({:?})", i + 1, r.pattern);
        if let Err(err) = Matcher::parse(&r.pattern) {
            problems.push(format!("{slot} pattern: {err}"));
        }
        if !ALERTER_NAMES.contains(&r.alerter.as_str()) {
            problems.push(format!(
                "{slot} alerter: {:?} must be one of {}",
                r.alerter,
                ALERTER_NAMES.join(", ")
            ));
        } else if !alerters.configured(&r.alerter) {
            problems.push(format!(
                "{slot} alerter: {:?} but [alerters.{}] is not configured",
                r.alerter, r.alerter
            ));
        }
        if r.expiration_secs == 0 {
            problems.push(format!("{slot} expiration_secs: must be at least 1"));
        }
        if !r.to.is_empty() && r.alerter != "smtp" {
            problems.push(format!("{slot} to: only for alerter = \"smtp\""));
        }
        for to in &r.to {
            check_mailbox(&format!("{slot} to"), to, problems);
        }
        if r.alerter == "smtp" && r.to.is_empty() {
            if let Some(s) = &alerters.smtp {
                if s.to.is_empty() {
                    problems.push(format!(
                        "{slot}: no recipients (set to here or [alerters.smtp] to)"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_hide_paths_and_credentials() {
        assert_eq!(
            peer_of("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            peer_of("http://u:p@127.0.0.1:8080/x?token=1"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(peer_of("nonsense"), "<invalid url>");
    }

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("127.0.0.1:25"),
            Some(("127.0.0.1".into(), 25))
        );
        assert_eq!(split_host_port("[::1]:25"), Some(("::1".into(), 25)));
        assert_eq!(split_host_port("mail"), None);
        assert_eq!(split_host_port(":25"), None);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let s = SmtpSettings {
            password: "hunter2".into(),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("hunter2"));
        let w = WebhookSettings {
            url: "https://h/secret-path".into(),
            headers: [("Authorization".to_string(), "Bearer tok".to_string())].into(),
        };
        let shown = format!("{w:?}");
        assert!(
            !shown.contains("secret-path") && !shown.contains("tok"),
            "{shown}"
        );
        let k = SlackSettings {
            webhook_url: "https://hooks.slack.com/services/T/B/xyz".into(),
            ..Default::default()
        };
        assert!(!format!("{k:?}").contains("xyz"));
        let p = PagerdutySettings {
            routing_key: "R0UTINGKEY".into(),
            ..Default::default()
        };
        assert!(!format!("{p:?}").contains("R0UTINGKEY"));
        let a = AlertmanagerSettings {
            url: "http://am:9093/secret".into(),
            headers: [("Authorization".to_string(), "Bearer tok".to_string())].into(),
            ..Default::default()
        };
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("tok"),
            "{shown}"
        );
    }

    #[test]
    fn rules_are_checked_against_alerters() {
        let alerters = AlertersSettings {
            smtp: Some(SmtpSettings {
                from: "skyline@example.org".into(),
                to: vec!["ops@example.org".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut problems = Vec::new();
        alerters.validate(&mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        let rules = vec![
            AlertRule {
                pattern: "web.*.requests".into(),
                alerter: "smtp".into(),
                expiration_secs: 3600,
                to: vec![],
                second_order_resolution_hours: None,
            },
            AlertRule {
                pattern: "^(".into(),
                alerter: "slack".into(),
                expiration_secs: 0,
                to: vec!["x".into()],
                second_order_resolution_hours: None,
            },
        ];
        validate_rules(&rules, &alerters, &mut problems);
        let all = problems.join("\n");
        assert!(all.contains("#2") && all.contains("pattern"), "{all}");
        assert!(all.contains("[alerters.slack] is not configured"), "{all}");
        assert!(all.contains("expiration_secs"), "{all}");
        assert!(all.contains("only for alerter"), "{all}");
        assert!(!all.contains("#1"), "{all}");
    }

    #[test]
    fn alertmanager_and_pagerduty_are_checked() {
        let alerters: AlertersSettings = toml::from_str(
            "[alertmanager]\nurl = \"127.0.0.1:9093\"\nlabels = { \"bad-label\" = \"x\", team = \"web\" }\n\
             [pagerduty]\nseverity = \"loud\"\n",
        )
        .unwrap();
        assert_eq!(
            alerters.pagerduty.as_ref().unwrap().url,
            PAGERDUTY_EVENTS_URL
        );
        let mut problems = Vec::new();
        alerters.validate(&mut problems);
        let all = problems.join("\n");
        assert!(
            all.contains("[alerters.alertmanager] url: must start with http"),
            "{all}"
        );
        assert!(
            all.contains("\"bad-label\" is not a Prometheus label name"),
            "{all}"
        );
        assert!(!all.contains("\"team\""), "{all}");
        assert!(
            all.contains("[alerters.pagerduty] routing_key: must be set"),
            "{all}"
        );
        assert!(all.contains("severity: \"loud\""), "{all}");
        let rules = vec![AlertRule {
            pattern: "web.*".into(),
            alerter: "alertmanager".into(),
            expiration_secs: 600,
            to: vec![],
            second_order_resolution_hours: None,
        }];
        let mut problems = Vec::new();
        validate_rules(&rules, &AlertersSettings::default(), &mut problems);
        assert_eq!(
            problems,
            vec!["[[alerts]] #1 (\"web.*\") alerter: \"alertmanager\" but [alerters.alertmanager] is not configured".to_string()]
        );
    }

    #[test]
    fn clear_text_password_to_a_remote_server_is_refused() {
        let alerters = AlertersSettings {
            smtp: Some(SmtpSettings {
                server: "mail.example.org:25".into(),
                from: "a@example.org".into(),
                to: vec!["b@example.org".into()],
                username: "u".into(),
                password: "p".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut problems = Vec::new();
        alerters.validate(&mut problems);
        assert!(
            problems.iter().any(|p| p.contains("in clear")),
            "{problems:?}"
        );
    }
}
