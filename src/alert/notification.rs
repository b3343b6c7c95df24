//! What an alerter delivers ([`Notification`]) and the wording every alerter shares, kept in
//! Skyline G's phrasing (`<context> - Anomalous metric: <name> (value: <v>)`,
//! `[Skyline alert] - <context> ALERT - <name>`). Pure: no I/O.

use std::fmt::Write as _;

use super::messages::{SystemAlert, SystemStatus};
use crate::model::Anomaly;

/// An anomaly alert for one alerter.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AnomalyNotice {
    /// The anomaly.
    pub anomaly: Anomaly,
    /// The matching rule's expiration (the next alert for this metric and alerter comes no
    /// sooner).
    pub expiration_secs: u64,
    /// smtp recipients from the rule (empty = `[alerters.smtp] to`).
    pub to: Vec<String>,
    /// Sent by `skyline alert-test`.
    pub test: bool,
    /// Not an alert but the end of one: PagerDuty's `resolve` of the incident this anomaly
    /// opened, sent when its window ended; the value is the resolve's claim in
    /// `pagerduty.open_incidents` (see [`super::pagerduty`]). Only the PagerDuty queue gets
    /// these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve: Option<i64>,
}

impl AnomalyNotice {
    /// When the alert window of this anomaly ends (epoch seconds): its detection (or the
    /// datapoint, if later) plus the rule's expiration, when the next alert for the metric may
    /// come. `now` stands in for a missing detection time.
    pub fn window_end(&self, now: i64) -> i64 {
        let x = &self.anomaly;
        let detected = if x.added_at > 0 { x.added_at } else { now };
        detected.max(x.timestamp) + self.expiration_secs.max(1) as i64
    }
}

/// What a delivery worker sends (serialisable: alerts still queued at shutdown are written
/// to `[data] dir/alerts-pending.jsonl` and sent at the next start).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum Notification {
    /// An anomalous metric.
    Anomaly(AnomalyNotice),
    /// A Thunder event.
    System(SystemAlert),
}

/// Settings every alerter formats with.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// graphite-web base URL for a render link (`[graphite] url`); empty = no link.
    pub graphite_url: String,
    /// How much history a graph shows (`[horizon] full_duration_secs`).
    pub full_duration_secs: i64,
}

/// Python's `str(float)` for the values Skyline prints: `42.0`, `0.5`, `1234.5678`.
pub fn value_str(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v}")
    }
}

pub use crate::model::time::{rfc3339, utc_fields};

/// Percent-encodes everything but ASCII letters, digits and `.-_` (for Graphite targets).
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"._-".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Escapes text for HTML and XML (SVG) content and attributes.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

impl Context {
    /// A graphite-web render link for `metric` over the full duration ending at `until`.
    pub fn graph_link(&self, metric: &str, until: i64) -> Option<String> {
        if self.graphite_url.is_empty() {
            return None;
        }
        Some(format!(
            "{}/render/?from={}&until={}&target={}",
            self.graphite_url.trim_end_matches('/'),
            until - self.full_duration_secs.max(3600),
            until + 60,
            url_encode(metric)
        ))
    }
}

/// Skyline's alert context for an anomaly found by `app`: `Mirage`, `Boundary` or `Analyzer`.
pub fn app_context(app: &str) -> &'static str {
    match app {
        "mirage" => "Mirage",
        "boundary" => "Boundary",
        _ => "Analyzer",
    }
}

impl Notification {
    /// Skyline's alert context: `Analyzer`, `Boundary`, `Test` (alert-test) or `Thunder`.
    pub fn context(&self) -> &'static str {
        match self {
            Notification::Anomaly(n) if n.test => "Test",
            Notification::Anomaly(n) => app_context(&n.anomaly.app),
            Notification::System(_) => "Thunder",
        }
    }

    /// The metric, for anomaly alerts.
    pub fn metric(&self) -> Option<&str> {
        match self {
            Notification::Anomaly(n) => Some(&n.anomaly.metric),
            Notification::System(_) => None,
        }
    }

    /// What the log names: the metric, or `thunder.<check>`.
    pub fn label(&self) -> String {
        match self {
            Notification::Anomaly(n) if n.resolve.is_some() => {
                format!("{} (resolve)", n.anomaly.metric)
            }
            Notification::Anomaly(n) => n.anomaly.metric.clone(),
            Notification::System(s) => format!("thunder.{}", s.check),
        }
    }

    /// Skyline G's syslog line: `Analyzer - Anomalous metric: <name> (value: <v>)`; for
    /// Thunder `Thunder - <check> - <summary>` (`… RECOVERED - …` when it cleared).
    pub fn headline(&self) -> String {
        match self {
            Notification::Anomaly(n) => format!(
                "{} - Anomalous metric: {} (value: {})",
                self.context(),
                n.anomaly.metric,
                value_str(n.anomaly.datapoint)
            ),
            Notification::System(s) => match s.status {
                SystemStatus::Firing => format!("Thunder - {} - {}", s.check, s.summary),
                SystemStatus::Recovered => {
                    format!("Thunder - {} - RECOVERED - {}", s.check, s.summary)
                }
            },
        }
    }

    /// The email subject, Skyline G's `[Skyline alert] - Analyzer ALERT - <metric>`.
    pub fn subject(&self) -> String {
        match self {
            Notification::Anomaly(n) if n.test => {
                format!(
                    "[Skyline alert] - TEST - Analyzer ALERT - {}",
                    n.anomaly.metric
                )
            }
            Notification::Anomaly(n) => {
                format!(
                    "[Skyline alert] - {} ALERT - {}",
                    self.context(),
                    n.anomaly.metric
                )
            }
            Notification::System(s) => match s.status {
                SystemStatus::Firing => {
                    format!(
                        "[Skyline alert] - Thunder ALERT - {} on {}",
                        s.check, s.host
                    )
                }
                SystemStatus::Recovered => format!(
                    "[Skyline alert] - Thunder RECOVERED - {} on {}",
                    s.check, s.host
                ),
            },
        }
    }

    /// Plain-text body (email text part, and the detail of chat messages).
    pub fn text(&self, ctx: &Context) -> String {
        let mut t = String::new();
        match self {
            Notification::Anomaly(n) => {
                let a = &n.anomaly;
                let _ = writeln!(t, "{}", self.headline());
                if n.test {
                    let _ = writeln!(
                        t,
                        "This is a test alert sent by `skyline alert-test`; no anomaly was found."
                    );
                }
                let _ = writeln!(t);
                let _ = writeln!(t, "metric:     {}", a.metric);
                let _ = writeln!(t, "value:      {}", value_str(a.datapoint));
                let _ = writeln!(t, "at:         {} ({})", rfc3339(a.timestamp), a.timestamp);
                let _ = writeln!(
                    t,
                    "triggered:  {} ({} of {} algorithms)",
                    a.triggered_algorithms.join(", "),
                    a.triggered_algorithms.len(),
                    a.algorithms_run.len()
                );
                let _ = writeln!(t, "found by:   {} on {}", a.app, a.host);
                let _ = writeln!(t, "next alert: not before {} s from now", n.expiration_secs);
                if let Some(link) = ctx.graph_link(&a.metric, a.timestamp) {
                    let _ = writeln!(t, "graph:      {link}");
                }
            }
            Notification::System(s) => {
                let _ = writeln!(t, "{}", self.headline());
                let _ = writeln!(t);
                let _ = writeln!(t, "check:  {}", s.check);
                let _ = writeln!(
                    t,
                    "status: {}",
                    match s.status {
                        SystemStatus::Firing => "failing",
                        SystemStatus::Recovered => "recovered",
                    }
                );
                let _ = writeln!(t, "host:   {}", s.host);
                let _ = writeln!(t, "at:     {} ({})", rfc3339(s.timestamp), s.timestamp);
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn anomaly(metric: &str, value: f64) -> Anomaly {
        Anomaly {
            metric: metric.into(),
            timestamp: 1_763_690_400,
            datapoint: value,
            from_timestamp: 1_763_604_060,
            full_duration: 86_340,
            algorithms_run: vec!["grubbs".into(), "ks_test".into()],
            triggered_algorithms: vec!["grubbs".into()],
            app: "analyzer".into(),
            source: "graphite".into(),
            host: "h1".into(),
            added_at: 1_763_690_401,
        }
    }

    #[test]
    fn python_float_str() {
        assert_eq!(value_str(42.0), "42.0");
        assert_eq!(value_str(-3.0), "-3.0");
        assert_eq!(value_str(0.5), "0.5");
        assert_eq!(value_str(1234.5678), "1234.5678");
        assert_eq!(value_str(f64::NAN), "nan");
    }

    #[test]
    fn g_wording() {
        let n = Notification::Anomaly(AnomalyNotice {
            anomaly: anomaly("web.h1.requests", 18123.0),
            expiration_secs: 3600,
            to: vec![],
            test: false,
            resolve: None,
        });
        assert_eq!(
            n.headline(),
            "Analyzer - Anomalous metric: web.h1.requests (value: 18123.0)"
        );
        assert_eq!(
            n.subject(),
            "[Skyline alert] - Analyzer ALERT - web.h1.requests"
        );
        let ctx = Context {
            graphite_url: "http://g:8080/".into(),
            full_duration_secs: 86_400,
        };
        let text = n.text(&ctx);
        assert!(text.contains("2025-11-21T02:00:00Z"), "{text}");
        assert!(
            text.contains(
                "http://g:8080/render/?from=1763604000&until=1763690460&target=web.h1.requests"
            ),
            "{text}"
        );
    }

    #[test]
    fn calendar() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_763_690_400), "2025-11-21T02:00:00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn escaping() {
        assert_eq!(xml_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
        assert_eq!(url_encode("a.b:c(d)/e f"), "a.b%3Ac%28d%29%2Fe%20f");
    }
}
