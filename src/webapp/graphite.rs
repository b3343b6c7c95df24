//! Graphite: `/api?graphite_metric=…` (one series from graphite-web's render API, as
//! Skyline's Panorama page uses it) and `/render` (the render API passed through, streamed).
//!
//! Requests go to `[graphite] url` + `/render` with epoch `from`/`until` (never Skyline's
//! server-local `HH:MM_YYYYMMDD`, which skewed windows across time zones) and the target
//! percent-encoded (names with `:`, `+`, `%`, `/` arrive intact). graphite-web answers
//! `[{"target", "datapoints": [[value, ts], …]}]`; `/api` returns the first series as
//! `{"results": [[ts, value], …]}` without its `null` points, timestamps kept numeric.
//!
//! Status codes: 400 for missing or invalid parameters (and a target Graphite itself refuses
//! with 400), 503 when no Graphite is configured, 502 when it is down or answers something
//! that is not its JSON, 504 on timeout (`[webapp] graphite_timeout_secs`). The failure is
//! logged at `error!` with Graphite's address and the target.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use awc::error::SendRequestError;
use log::error;
use serde::{Deserialize, Serialize};

use super::api::{param, MAX_NAME_BYTES};
use super::error::WebError;
use super::templates::query_value;
use super::{WebState, Worker};
use crate::telemetry::metrics as m;

/// Largest Graphite JSON answer read for `/api` (a year of minutely points is ~20 MB).
pub const MAX_GRAPHITE_BYTES: usize = 64 << 20;

/// One series of a graphite-web JSON answer.
#[derive(Debug, Deserialize)]
pub struct GraphiteSeries {
    /// The resolved name or expression.
    pub target: String,
    /// `[value, timestamp]`, value `null` for an empty step.
    pub datapoints: Vec<(Option<f64>, f64)>,
}

#[derive(Serialize)]
struct SeriesBody {
    target: Option<String>,
    from_timestamp: i64,
    until_timestamp: i64,
    results: Vec<(serde_json::Number, f64)>,
}

fn epoch_param(params: &[(String, String)], name: &str) -> Result<Option<i64>, WebError> {
    match param(params, name) {
        None => Ok(None),
        Some(v) => {
            let v = v.trim();
            let parsed = v.parse::<i64>().ok().or_else(|| {
                v.parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| f as i64)
            });
            match parsed {
                Some(t) if t >= 0 => Ok(Some(t)),
                _ => Err(WebError::BadRequest(format!(
                    "{name}: {v:?} is not an epoch timestamp in seconds"
                ))),
            }
        }
    }
}

/// Checks a Graphite target: non-empty, bounded, no control characters.
pub fn check_target(target: &str) -> Result<(), WebError> {
    if target.is_empty() || target.len() > MAX_NAME_BYTES {
        return Err(WebError::BadRequest(format!(
            "graphite_metric: give a target of 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    if target.chars().any(char::is_control) {
        return Err(WebError::BadRequest(
            "graphite_metric: control characters are not allowed".into(),
        ));
    }
    Ok(())
}

fn send_error(base: &str, what: &str, err: &SendRequestError) -> WebError {
    m::WEBAPP_GRAPHITE_ERRORS.inc();
    match err {
        SendRequestError::Timeout => {
            error!("webapp: graphite {base} timed out on {what}");
            WebError::GraphiteTimeout
        }
        other => {
            error!("webapp: graphite {base} failed on {what}: {other}");
            WebError::Graphite
        }
    }
}

/// Largest `max_data_points` passed on to Graphite.
pub const MAX_DATA_POINTS: u32 = 100_000;

/// Fetches `target` between `from` and `until` (epoch seconds) from graphite-web; with
/// `max_points`, Graphite consolidates to at most that many points (`maxDataPoints`).
pub async fn fetch(
    client: &awc::Client,
    base: &str,
    target: &str,
    from: i64,
    until: i64,
    max_points: Option<u32>,
) -> Result<Vec<GraphiteSeries>, WebError> {
    let mut url = format!(
        "{base}/render?target={}&from={from}&until={until}&format=json",
        query_value(target)
    );
    if let Some(n) = max_points {
        url.push_str(&format!("&maxDataPoints={n}"));
    }
    m::WEBAPP_GRAPHITE_REQUESTS.inc();
    let what = format!("render target {target:?}");
    let graphite = crate::monitor::spans::Kind::Graphite;
    let send = client
        .get(&url)
        .insert_header((header::ACCEPT, "application/json"))
        .send();
    let mut res = crate::monitor::spans::timed(graphite, send)
        .await
        .map_err(|err| send_error(base, &what, &err))?;
    let status = res.status();
    let read = res.body().limit(MAX_GRAPHITE_BYTES);
    let body = crate::monitor::spans::timed(graphite, read)
        .await
        .map_err(|err| {
            m::WEBAPP_GRAPHITE_ERRORS.inc();
            error!(
                "webapp: graphite {base} answer to {what} unreadable: {}",
                crate::telemetry::text::payload_error(&err)
            );
            WebError::Graphite
        })?;
    if status == StatusCode::BAD_REQUEST {
        return Err(WebError::BadRequest(format!(
            "Graphite refused the target {target:?} (HTTP 400)"
        )));
    }
    if !status.is_success() {
        m::WEBAPP_GRAPHITE_ERRORS.inc();
        error!("webapp: graphite {base} answered HTTP {status} to {what}");
        return Err(WebError::Graphite);
    }
    serde_json::from_slice(&body).map_err(|err| {
        m::WEBAPP_GRAPHITE_ERRORS.inc();
        error!("webapp: graphite {base} answer to {what} is not render JSON: {err}");
        WebError::Graphite
    })
}

/// A timestamp as a JSON integer when it is one.
fn ts_number(ts: f64) -> Option<serde_json::Number> {
    if ts.fract() == 0.0 && ts.abs() < 9.0e15 {
        Some(serde_json::Number::from(ts as i64))
    } else {
        serde_json::Number::from_f64(ts)
    }
}

/// `max_data_points`: absent, or 1 to [`MAX_DATA_POINTS`].
fn max_points_param(params: &[(String, String)]) -> Result<Option<u32>, WebError> {
    match param(params, "max_data_points") {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if (1..=MAX_DATA_POINTS).contains(&n) => Ok(Some(n)),
            _ => Err(WebError::BadRequest(format!(
                "max_data_points: {v:?} must be a whole number from 1 to {MAX_DATA_POINTS}"
            ))),
        },
    }
}

/// `/api?graphite_metric=T&from_timestamp=F&until_timestamp=U[&max_data_points=N]` (`N`
/// becomes Graphite's `maxDataPoints`; the Panorama page sends one point per 10 s of the
/// window so Graphite never consolidates below the archive's own resolution).
pub async fn series_api(
    state: &WebState,
    worker: &Worker,
    params: &[(String, String)],
) -> Result<HttpResponse, WebError> {
    let target = param(params, "graphite_metric").unwrap_or("");
    let from = epoch_param(params, "from_timestamp")?;
    let until = epoch_param(params, "until_timestamp")?;
    let max_points = max_points_param(params)?;
    let missing: Vec<&str> = [
        ("graphite_metric", target.is_empty()),
        ("from_timestamp", from.is_none()),
        ("until_timestamp", until.is_none()),
    ]
    .iter()
    .filter(|(_, m)| *m)
    .map(|(n, _)| *n)
    .collect();
    let (Some(from), Some(until), true) = (from, until, missing.is_empty()) else {
        return Err(WebError::BadRequest(format!(
            "missing parameters: {}",
            missing.join(", ")
        )));
    };
    check_target(target)?;
    if from >= until {
        return Err(WebError::BadRequest(
            "from_timestamp must be before until_timestamp".into(),
        ));
    }
    let base = state
        .graphite_url
        .as_deref()
        .ok_or(WebError::GraphiteNotConfigured)?;
    let series = fetch(&worker.http, base, target, from, until, max_points).await?;
    let first = series.into_iter().next();
    let body = SeriesBody {
        target: first.as_ref().map(|s| s.target.clone()),
        from_timestamp: from,
        until_timestamp: until,
        results: first
            .map(|s| {
                s.datapoints
                    .into_iter()
                    .filter_map(|(v, ts)| {
                        let v = v.filter(|v| v.is_finite())?;
                        Some((ts_number(ts)?, v))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let json =
        serde_json::to_vec(&body).map_err(|err| WebError::internal("graphite JSON", &err))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(json))
}

/// `GET /render?…`: graphite-web's render API, passed through and streamed (status and
/// content type kept; the body decompressed).
pub async fn render(
    req: HttpRequest,
    state: web::Data<WebState>,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, WebError> {
    let base = state
        .graphite_url
        .as_deref()
        .ok_or(WebError::GraphiteNotConfigured)?;
    let qs = req.query_string();
    if qs.len() > 16 * 1024 || qs.chars().any(char::is_control) {
        return Err(WebError::BadRequest("render: query string too long".into()));
    }
    let url = if qs.is_empty() {
        format!("{base}/render")
    } else {
        format!("{base}/render?{qs}")
    };
    m::WEBAPP_GRAPHITE_REQUESTS.inc();
    let upstream = crate::monitor::spans::timed(
        crate::monitor::spans::Kind::Graphite,
        worker.http.get(&url).send(),
    )
    .await
    .map_err(|err| send_error(base, "render proxy", &err))?;
    if upstream.status().is_server_error() {
        m::WEBAPP_GRAPHITE_ERRORS.inc();
        error!(
            "webapp: graphite {base} answered HTTP {} to the render proxy",
            upstream.status()
        );
    }
    let mut out = HttpResponse::build(upstream.status());
    for name in [header::CONTENT_TYPE, header::CACHE_CONTROL, header::EXPIRES] {
        if let Some(v) = upstream.headers().get(&name) {
            out.insert_header((name.clone(), v.clone()));
        }
    }
    Ok(out.streaming(upstream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_params() {
        let p = vec![
            ("a".to_string(), "1700000000".to_string()),
            ("b".to_string(), "1700000000.0".to_string()),
            ("c".to_string(), "yesterday".to_string()),
            ("d".to_string(), "-5".to_string()),
        ];
        assert_eq!(epoch_param(&p, "a").unwrap(), Some(1_700_000_000));
        assert_eq!(epoch_param(&p, "b").unwrap(), Some(1_700_000_000));
        assert!(epoch_param(&p, "c").is_err());
        assert!(epoch_param(&p, "d").is_err());
        assert_eq!(epoch_param(&p, "zz").unwrap(), None);
        let mp = |v: &str| max_points_param(&[("max_data_points".to_string(), v.to_string())]);
        assert_eq!(mp("8640").unwrap(), Some(8640));
        assert!(mp("0").is_err() && mp("100001").is_err() && mp("x").is_err());
        assert_eq!(max_points_param(&p).unwrap(), None);
    }

    #[test]
    fn parses_graphite_json() {
        let s: Vec<GraphiteSeries> = serde_json::from_str(
            r#"[{"target":"a.b","tags":{"name":"a.b"},"datapoints":[[null,1700000000],[1.5,1700000060]]}]"#,
        )
        .unwrap();
        assert_eq!(
            s[0].datapoints,
            vec![(None, 1.7e9), (Some(1.5), 1_700_000_060.0)]
        );
        assert_eq!(ts_number(1.7e9).unwrap().to_string(), "1700000000");
        assert!(check_target("a\nb").is_err());
        assert!(check_target("sumSeries(a.*)").is_ok());
    }
}
