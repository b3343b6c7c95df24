//! Mirage's fetch of its days from graphite-web's render API (spec §0.4), and the
//! once-a-minute outage log.
//!
//! `GET <[graphite] url>/render?target=<metric>&from=<epoch>&until=<epoch>&format=json`, no
//! `maxDataPoints`, so Graphite answers at the step of the archive that covers the range
//! (600 s for 7 days on a typical retention). `null` points are dropped. Epoch `from`/`until`
//! instead of Skyline's server-local `HH:MM_YYYYMMDD` (which shifted windows when the two
//! hosts' time zones differed). Unlike Skyline, a failed or empty answer is an **error**
//! ([`MirageError::Graphite`]), never "not anomalous": Mirage falls back to its built-in
//! history, and without one leaves the check to the Analyzer's waterfall alert.

use std::time::{Duration, Instant};

use log::error;
use serde::Deserialize;

use super::MirageError;

/// Largest render answer read (90 days of minutely points is ~4 MB).
const MAX_BYTES: usize = 32 << 20;

#[derive(Deserialize)]
struct Series {
    datapoints: Vec<(Option<f64>, Option<f64>)>,
}

/// Percent-encodes a target for a query string.
fn enc(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'-')
        .remove(b'_');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// The render URL for `metric` over `[from, until]`.
pub fn render_url(base: &str, metric: &str, from: i64, until: i64) -> String {
    format!(
        "{}/render?target={}&from={from}&until={until}&format=json",
        base.trim_end_matches('/'),
        enc(metric)
    )
}

/// Parses graphite-web's JSON: the first series' `[value, ts]` pairs as sorted
/// `(ts, value)`, nulls dropped. An empty answer (unknown metric) is an error.
pub fn parse_render(body: &[u8]) -> Result<Vec<(f64, f64)>, String> {
    let all: Vec<Series> =
        serde_json::from_slice(body).map_err(|e| format!("not graphite-web's JSON: {e}"))?;
    let Some(first) = all.into_iter().next() else {
        return Err("no series for this target".into());
    };
    let mut out: Vec<(f64, f64)> = first
        .datapoints
        .into_iter()
        .filter_map(|(v, t)| Some((t?, v?)))
        .filter(|(t, v)| t.is_finite() && v.is_finite())
        .collect();
    if out.is_empty() {
        return Err("only null datapoints in the range".into());
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out)
}

/// Fetches `metric` from `from` to `until` (epoch seconds).
pub async fn fetch(
    client: &awc::Client,
    base: &str,
    metric: &str,
    from: i64,
    until: i64,
    timeout: Duration,
) -> Result<Vec<(f64, f64)>, MirageError> {
    let url = render_url(base, metric, from, until);
    let fail = |reason: String| MirageError::Graphite {
        metric: metric.to_string(),
        peer: crate::telemetry::redact_url(base),
        reason,
    };
    let mut res = client
        .get(&url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !res.status().is_success() {
        return Err(fail(format!("HTTP {}", res.status().as_u16())));
    }
    let body = res
        .body()
        .limit(MAX_BYTES)
        .await
        .map_err(|e| fail(crate::telemetry::text::payload_error(&e)))?;
    parse_render(&body).map_err(fail)
}

/// Logs a repeated failure once a minute with the count since the last line.
#[derive(Debug, Default)]
pub struct OutageLog {
    last: Option<Instant>,
    suppressed: usize,
}

impl OutageLog {
    /// Records one failure; logs it when the last line is a minute old (or there was none).
    /// Returns whether it logged.
    pub fn record(&mut self, what: &str) -> bool {
        self.suppressed += 1;
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60))
        {
            return false;
        }
        error!(
            "mirage: {what} ({} failure(s) in the last minute; next line in 60 s at the earliest)",
            self.suppressed
        );
        self.suppressed = 0;
        self.last = Some(Instant::now());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_answer_parsed_nulls_dropped() {
        let body =
            br#"[{"target":"a.b","tags":{},"datapoints":[[1.5,600],[null,1200],[2.0,1800]]}]"#;
        assert_eq!(
            parse_render(body).unwrap(),
            vec![(600.0, 1.5), (1800.0, 2.0)]
        );
        assert!(parse_render(b"[]").is_err(), "unknown metric is an error");
        assert!(parse_render(br#"[{"datapoints":[[null,1]]}]"#).is_err());
        assert!(parse_render(b"<html>").is_err());
    }

    #[test]
    fn url_encodes_the_target() {
        assert_eq!(
            render_url("http://g:8080/", "a.b c", 1, 2),
            "http://g:8080/render?target=a.b%20c&from=1&until=2&format=json"
        );
    }

    #[test]
    fn outage_logs_once_a_minute() {
        let mut o = OutageLog::default();
        assert!(o.record("graphite down"));
        for _ in 0..100 {
            assert!(!o.record("graphite down"));
        }
        assert_eq!(o.suppressed, 100);
    }
}
