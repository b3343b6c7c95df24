//! The SMTP alerter (lettre over tokio, rustls for `starttls`/`tls`). One email per alert:
//! subject `[Skyline alert] - Analyzer ALERT - <metric>` (Skyline G), a text part, an HTML
//! part with the metric's last `full_duration_secs` drawn inline as SVG (read from Redis
//! `metrics.<metric>` when the alert is sent; "no data" when Redis does not answer within
//! 5 s), and the same SVG attached. Thunder events are text only. A new connection per
//! email (alerts are rare); a refusal or timeout is retried by the delivery worker. The
//! password is only handed to lettre, never formatted. Backpressure: called by the smtp
//! delivery task, one email at a time, each attempt capped by `[alerters] timeout_secs`.

use std::str::FromStr;
use std::time::Duration;

use crate::store::redis_conn::RedisConn;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::config::{split_host_port, SmtpSettings};
use super::error::AlertError;
use super::graph::render_svg;
use super::notification::{value_str, xml_escape, Context, Notification};

/// Delivers by email.
#[derive(Clone)]
pub struct SmtpAlerter {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    graph: bool,
    redis: Option<RedisConn>,
    ctx: Context,
}

fn config_err(message: String) -> AlertError {
    AlertError::Config {
        alerter: "smtp",
        message,
    }
}

fn mailbox(addr: &str) -> Result<Mailbox, AlertError> {
    Mailbox::from_str(addr).map_err(|e| config_err(format!("{addr:?}: {e}")))
}

/// Reads `metrics.<metric>` and keeps the last `full_duration` seconds.
pub async fn fetch_series(
    conn: &mut RedisConn,
    metric: &str,
    full_duration: i64,
) -> Option<Vec<(f64, f64)>> {
    let key = format!("{}{metric}", crate::model::FULL_NAMESPACE);
    let mut cmd = redis::cmd("GET");
    cmd.arg(&key);
    let get = cmd.query_async::<Option<Vec<u8>>>(conn);
    let bytes = match tokio::time::timeout(Duration::from_secs(5), get).await {
        Ok(Ok(Some(b))) => b,
        Ok(Ok(None)) => return Some(Vec::new()),
        Ok(Err(e)) => {
            log::warn!("smtp graph for {metric}: reading {key}: {e}");
            return None;
        }
        Err(_) => {
            log::warn!("smtp graph for {metric}: Redis did not answer within 5 s");
            return None;
        }
    };
    let mut series = Vec::new();
    if crate::model::msgpack::decode_series_f64(&bytes, &mut series).is_err() {
        return None;
    }
    let last = series.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    series.retain(|p| p.0 > last - full_duration as f64);
    Some(series)
}

/// The HTML part: the text as a table, then the graph.
pub fn html_body(n: &Notification, ctx: &Context, svg: Option<&str>) -> String {
    let mut h = String::from(
        "<html><body style=\"font-family:Helvetica,Arial,sans-serif;color:#222\">\
         <h3><font color=\"#dd3023\">Sky</font><font color=\"#6698FF\">line</font> ",
    );
    h.push_str(&xml_escape(n.context()));
    h.push_str(" alert</h3>");
    h.push_str("<p><b>");
    h.push_str(&xml_escape(&n.headline()));
    h.push_str("</b></p><table cellpadding=\"2\">");
    for line in n.text(ctx).lines().skip(1) {
        if let Some((k, v)) = line.split_once(':') {
            h.push_str(&format!(
                "<tr><td><b>{}</b></td><td>{}</td></tr>",
                xml_escape(k.trim()),
                xml_escape(v.trim())
            ));
        } else if !line.trim().is_empty() {
            h.push_str(&format!(
                "<tr><td colspan=\"2\">{}</td></tr>",
                xml_escape(line)
            ));
        }
    }
    h.push_str("</table>");
    if let Some(svg) = svg {
        h.push_str("<p>");
        h.push_str(svg);
        h.push_str("</p>");
    }
    h.push_str("</body></html>");
    h
}

/// A file name for the attached graph: the metric with unsafe characters replaced.
pub fn graph_filename(metric: &str) -> String {
    let safe: String = metric
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    format!("{safe}.svg")
}

/// Builds the email. Pure.
pub fn build_message(
    from: &Mailbox,
    to: &[Mailbox],
    n: &Notification,
    ctx: &Context,
    svg: Option<String>,
) -> Result<Message, AlertError> {
    let mut b = Message::builder().from(from.clone()).subject(n.subject());
    for t in to {
        b = b.to(t.clone());
    }
    let alt = MultiPart::alternative()
        .singlepart(SinglePart::plain(n.text(ctx)))
        .singlepart(SinglePart::html(html_body(n, ctx, svg.as_deref())));
    let body = match (svg, n.metric()) {
        (Some(svg), Some(metric)) => {
            let ct = ContentType::parse("image/svg+xml")
                .map_err(|e| config_err(format!("content type: {e}")))?;
            MultiPart::mixed()
                .multipart(alt)
                .singlepart(Attachment::new(graph_filename(metric)).body(svg, ct))
        }
        _ => MultiPart::mixed().multipart(alt),
    };
    b.multipart(body)
        .map_err(|e| config_err(format!("building the email: {e}")))
}

impl SmtpAlerter {
    /// From `[alerters.smtp]`; `redis` is read for graphs (None: no graph).
    pub fn new(
        s: &SmtpSettings,
        timeout: Duration,
        redis: Option<RedisConn>,
        ctx: Context,
    ) -> Result<Self, AlertError> {
        let (host, port) = split_host_port(&s.server)
            .ok_or_else(|| config_err(format!("server {:?} is not host:port", s.server)))?;
        let params =
            || TlsParameters::new(host.clone()).map_err(|e| config_err(format!("TLS: {e}")));
        let mut b = match s.tls.as_str() {
            "none" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host),
            "opportunistic" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
                .tls(Tls::Opportunistic(params()?)),
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
                .tls(Tls::Required(params()?)),
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
                .tls(Tls::Wrapper(params()?)),
            other => return Err(config_err(format!("tls {other:?}"))),
        }
        .port(port)
        .timeout(Some(timeout));
        if !s.username.is_empty() {
            b = b.credentials(Credentials::new(s.username.clone(), s.password.clone()));
        }
        Ok(SmtpAlerter {
            transport: b.build(),
            server: s.server.clone(),
            from: mailbox(&s.from)?,
            to: s.to.iter().map(|t| mailbox(t)).collect::<Result<_, _>>()?,
            graph: s.graph,
            redis,
            ctx,
        })
    }

    /// `host:port`, for logs.
    pub fn peer(&self) -> String {
        self.server.clone()
    }

    /// Renders the graph for an anomaly (None for Thunder events or with `graph = false`).
    async fn graph(&self, n: &Notification) -> Option<String> {
        let Notification::Anomaly(a) = n else {
            return None;
        };
        if !self.graph {
            return None;
        }
        let x = &a.anomaly;
        let series = match &self.redis {
            Some(conn) => {
                let mut conn = conn.clone();
                fetch_series(&mut conn, &x.metric, self.ctx.full_duration_secs.max(3600))
                    .await
                    .unwrap_or_default()
            }
            None => Vec::new(),
        };
        let title = format!("{} (anomalous value {})", x.metric, value_str(x.datapoint));
        Some(render_svg(
            &title,
            &series,
            Some((x.timestamp as f64, x.datapoint)),
        ))
    }

    /// Sends one email.
    pub async fn send(&self, n: &Notification) -> Result<(), AlertError> {
        let to: Vec<Mailbox> = match n {
            Notification::Anomaly(a) if !a.to.is_empty() => {
                a.to.iter().map(|t| mailbox(t)).collect::<Result<_, _>>()?
            }
            _ => self.to.clone(),
        };
        if to.is_empty() {
            return Err(config_err("no recipients".into()));
        }
        let svg = self.graph(n).await;
        let msg = build_message(&self.from, &to, n, &self.ctx, svg)?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| AlertError::Smtp {
                server: self.server.clone(),
                message: e.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::super::notification::AnomalyNotice;
    use super::*;

    #[test]
    fn email_has_subject_text_html_and_graph() {
        let a = crate::model::Anomaly {
            metric: "web.<x>.requests".into(),
            timestamp: 1_700_000_000,
            datapoint: 99.0,
            from_timestamp: 1_699_913_660,
            full_duration: 86_340,
            algorithms_run: vec!["grubbs".into()],
            triggered_algorithms: vec!["grubbs".into()],
            app: "analyzer".into(),
            source: "graphite".into(),
            host: "h".into(),
            added_at: 1_700_000_001,
        };
        let n = Notification::Anomaly(AnomalyNotice {
            anomaly: a,
            expiration_secs: 3600,
            to: vec![],
            test: false,
            resolve: None,
        });
        let svg = render_svg("t", &[(1.0, 1.0), (2.0, 2.0)], Some((2.0, 2.0)));
        let from = mailbox("skyline@example.org").unwrap();
        let to = vec![mailbox("ops@example.org").unwrap()];
        let msg = build_message(&from, &to, &n, &Context::default(), Some(svg)).unwrap();
        let raw = String::from_utf8(msg.formatted()).unwrap();
        assert!(
            raw.contains("Subject: [Skyline alert] - Analyzer ALERT - web.<x>.requests"),
            "{raw}"
        );
        assert!(raw.contains("image/svg+xml"), "{raw}");
        assert!(raw.contains("web._x_.requests.svg"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");
        assert!(raw.contains("To: ops@example.org"), "{raw}");
    }

    #[test]
    fn html_escapes_the_metric() {
        let n = Notification::Anomaly(AnomalyNotice {
            anomaly: crate::model::Anomaly {
                metric: "<script>".into(),
                timestamp: 0,
                datapoint: 1.0,
                from_timestamp: 0,
                full_duration: 0,
                algorithms_run: vec![],
                triggered_algorithms: vec![],
                app: "analyzer".into(),
                source: "graphite".into(),
                host: "h".into(),
                added_at: 0,
            },
            expiration_secs: 1,
            to: vec![],
            test: false,
            resolve: None,
        });
        let h = html_body(&n, &Context::default(), None);
        assert!(!h.contains("<script>"), "{h}");
        assert!(h.contains("&lt;script&gt;"));
    }
}
