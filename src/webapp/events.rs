//! graphite-web's events API, `GET /events/get_data?from=&until=&tags=&set=`, serving Panorama's
//! anomalies, so Grafana's built-in Graphite data source (pointed at this daemon, whose
//! `/render` proxies graphite-web) shows anomalies as annotations on any panel, no plugin.
//!
//! Format (graphite-web's `events.views.get_data`): a JSON list, oldest first, of
//! `{"when": <epoch seconds, integer>, "what": "<title>", "data": "<text>", "tags": [..], "id": <int>}`
//! (keys in graphite-web's order; checked field for field against answers recorded from a real
//! graphite-web 1.1.8, `tests/fixtures/graphite-web-events.json`).
//! Each event is one row of the `anomalies` table in the window (`from` ≤ anomaly timestamp ≤
//! `until`): `when` is its anomaly timestamp, `what` names the metric, `data` says the value, app
//! and triggered algorithms, `tags` are the app, the metric and the triggered algorithms. Times are
//! graphite-web's: epoch seconds, `now`, `-6h` / `-30min` / `-7d` / `-2w` / `-1mon` / `-1y`,
//! `YYYY-MM-DD[ HH:MM]`; `from` defaults to 0 and `until` to now. `tags` is space-separated; as
//! in graphite-web (`Event.find_events`), by default and with `set=intersection` an event
//! matches when it carries every requested tag, with `set=union` when it carries any of them
//! (empty tags from doubled spaces are ignored, where graphite-web would match nothing). JSONP (`jsonp=`) is not
//! served (400): it would be a cross-site read of the login-protected data.
//!
//! Reads: `db::queries::search` (table `anomalies` and its lookups), in pages of
//! `queries::MAX_LIMIT` rows on the `(anomaly_timestamp)` index, at most [`MAX_EVENTS`] events.
//! Backpressure: each page is one database call bounded by `[panorama] db_timeout_secs` (503
//! after it, as the other Panorama reads).

use std::collections::HashSet;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::api::{param, params};
use super::error::WebError;
use super::WebState;
use crate::db::queries::{self, AnomalyQuery, AnomalyRow, Order};

/// Most events in one answer (10 pages); a wider window is refused with 400 naming it.
pub const MAX_EVENTS: usize = 100_000;

/// One graphite-web event.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Epoch seconds of the anomalous datapoint (an integer, as graphite-web answers).
    pub when: i64,
    /// Title.
    pub what: String,
    /// Text.
    pub data: String,
    /// App, metric, triggered algorithms.
    pub tags: Vec<String>,
    /// The anomaly id.
    pub id: i64,
}

/// How `tags` combine (graphite-web's `set`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetOp {
    /// Every requested tag (the default and `intersection`).
    All,
    /// Any requested tag (`union`).
    Any,
}

/// The event of one anomaly row.
pub fn event(row: &AnomalyRow) -> Event {
    let mut tags = Vec::with_capacity(2 + row.triggered_algorithms.len());
    tags.push(row.app.clone());
    tags.push(row.metric.clone());
    tags.extend(row.triggered_algorithms.iter().cloned());
    Event {
        when: row.anomaly_timestamp,
        what: format!("anomaly: {}", row.metric),
        data: format!(
            "{} = {} at {} ({}); triggered: {}",
            row.metric,
            super::templates::fmt_value(row.datapoint),
            super::templates::fmt_utc(row.anomaly_timestamp),
            row.app,
            row.triggered_algorithms.join(", ")
        ),
        tags,
        id: row.id,
    }
}

/// True when `e` has the requested tags.
pub fn matches(e: &Event, tags: &[String], op: SetOp) -> bool {
    if tags.is_empty() {
        return true;
    }
    let has = |t: &String| e.tags.iter().any(|x| x == t);
    match op {
        SetOp::All => tags.iter().all(has),
        SetOp::Any => tags.iter().any(has),
    }
}

/// graphite-web's at-time for this API: what [`super::panorama::parse_time`] reads, plus
/// `-<n>mon` (30 days) and `-<n>y` (365 days), which Grafana sends for month and year ranges.
pub fn parse_at(s: &str, now: i64) -> Option<i64> {
    let t = s.trim();
    if let Some(rel) = t.strip_prefix('-') {
        let split = rel.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rel[..split].parse().ok()?;
        let unit = match rel[split..].to_ascii_lowercase().as_str() {
            "mon" | "month" | "months" => Some(30 * 86_400),
            "y" | "year" | "years" => Some(365 * 86_400),
            _ => None,
        };
        if let Some(unit) = unit {
            return Some(now - n.checked_mul(unit)?);
        }
    }
    super::panorama::parse_time(t, now)
}

/// The validated parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct EventsQuery {
    /// Window start (inclusive).
    pub from: i64,
    /// Window end (inclusive).
    pub until: i64,
    /// Requested tags.
    pub tags: Vec<String>,
    /// How they combine.
    pub op: SetOp,
}

/// Reads `from`, `until`, `tags`, `set` (400 naming the parameter otherwise).
pub fn parse_query(params: &[(String, String)], now: i64) -> Result<EventsQuery, WebError> {
    let time = |name: &str, default: i64| {
        match param(params, name) {
        None | Some("") => Ok(default),
        Some(v) => parse_at(v, now).ok_or_else(|| {
            WebError::BadRequest(format!(
                "{name}: {:?} is not a time (epoch seconds, now, -6h, -30min, -7d, YYYY-MM-DD HH:MM)",
                v.chars().take(40).collect::<String>()
            ))
        }),
    }
    };
    if param(params, "jsonp").is_some() {
        return Err(WebError::BadRequest(
            "jsonp: not served (a cross-site read of login-protected data); use JSON".into(),
        ));
    }
    let from = time("from", 0)?;
    let until = time("until", now)?;
    if until < from {
        return Err(WebError::BadRequest(format!(
            "until ({until}) is before from ({from})"
        )));
    }
    let tags: Vec<String> = param(params, "tags")
        .unwrap_or("")
        .split(' ')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    let op = match param(params, "set") {
        None | Some("") | Some("intersection") => SetOp::All,
        Some("union") => SetOp::Any,
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "set: {:?} is neither union nor intersection",
                other.chars().take(40).collect::<String>()
            )))
        }
    };
    Ok(EventsQuery {
        from,
        until,
        tags,
        op,
    })
}

/// Every anomaly of the window, oldest first, in pages (`from` inclusive, de-duplicated by id).
fn window(pool: &crate::db::Pool, from: i64, until: i64) -> Result<Vec<AnomalyRow>, WebWindow> {
    let mut out: Vec<AnomalyRow> = Vec::new();
    let mut seen: HashSet<i64> = HashSet::new();
    let mut start = from;
    loop {
        let q = AnomalyQuery {
            from_ts: Some(start),
            until_ts: Some(until),
            limit: queries::MAX_LIMIT,
            order: Order::Asc,
            ..AnomalyQuery::default()
        };
        let page = queries::search(pool, &q).map_err(WebWindow::Db)?;
        let full = page.len() as i64 >= queries::MAX_LIMIT;
        let last_ts = page.last().map(|r| r.anomaly_timestamp);
        let mut added = 0;
        for row in page {
            if seen.insert(row.id) {
                out.push(row);
                added += 1;
            }
        }
        if out.len() > MAX_EVENTS {
            return Err(WebWindow::TooMany);
        }
        match last_ts {
            Some(ts) if full && added > 0 => start = ts,
            Some(_) if full => return Err(WebWindow::TooMany),
            _ => break,
        }
    }
    out.sort_by_key(|r| (r.anomaly_timestamp, r.id));
    Ok(out)
}

enum WebWindow {
    Db(crate::db::DbError),
    TooMany,
}

/// `GET /events/get_data`.
pub async fn get_data(
    req: HttpRequest,
    state: web::Data<WebState>,
) -> Result<HttpResponse, WebError> {
    let params = params(&req)?;
    let q = parse_query(&params, super::now())?;
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let limit = pool.op_timeout();
    let target = pool.target().to_string();
    let (from, until) = (q.from, q.until);
    let rows = super::panorama::db_within(limit, target, move || Ok(window(&pool, from, until)))
        .await
        .map_err(|err| WebError::db_failed("events", &err))?;
    let rows = match rows {
        Ok(rows) => rows,
        Err(WebWindow::Db(err)) => return Err(WebError::db_failed("events", &err)),
        Err(WebWindow::TooMany) => {
            let why = format!("more than {MAX_EVENTS} anomalies between {from} and {until}");
            return Err(WebError::BadRequest(format!(
                "{why}; ask for a shorter window"
            )));
        }
    };
    let events: Vec<Event> = rows
        .iter()
        .map(event)
        .filter(|e| matches(e, &q.tags, q.op))
        .collect();
    let json =
        serde_json::to_vec(&events).map_err(|err| WebError::internal("events JSON", &err))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"))
        .body(json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn row(id: i64, ts: i64, metric: &str, app: &str, triggered: &[&str]) -> AnomalyRow {
        AnomalyRow {
            id,
            metric: metric.into(),
            app: app.into(),
            source: "graphite".into(),
            host: "h".into(),
            anomaly_timestamp: ts,
            anomaly_end_timestamp: None,
            datapoint: 12.5,
            full_duration: 86400,
            algorithms_run: vec![],
            triggered_algorithms: triggered.iter().map(|s| s.to_string()).collect(),
            created_timestamp: None,
        }
    }

    #[test]
    fn event_shape_is_graphite_webs() {
        let e = event(&row(
            7,
            1_700_000_000,
            "a.b",
            "analyzer",
            &["histogram_bins", "ks_test"],
        ));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["when"], serde_json::json!(1_700_000_000));
        assert!(v["when"].is_i64(), "{v}");
        assert_eq!(v["id"], 7);
        assert_eq!(v["what"], "anomaly: a.b");
        assert_eq!(
            v["tags"],
            serde_json::json!(["analyzer", "a.b", "histogram_bins", "ks_test"])
        );
        assert!(v["data"].as_str().unwrap().contains("12.5"), "{v}");
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5);
    }

    #[test]
    fn tags_combine_like_graphite_web() {
        let e = event(&row(1, 1, "a.b", "mirage", &["ks_test"]));
        let t = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(matches(&e, &[], SetOp::All));
        assert!(matches(&e, &t(&["mirage", "a.b"]), SetOp::All));
        assert!(!matches(&e, &t(&["mirage", "analyzer"]), SetOp::All));
        assert!(matches(&e, &t(&["mirage", "analyzer"]), SetOp::Any));
        assert!(!matches(&e, &t(&["boundary"]), SetOp::Any));
        // graphite-web has no wildcard tag.
        assert!(!matches(&e, &t(&["*"]), SetOp::All));
    }

    #[test]
    fn parameters() {
        let now = 1_700_000_000;
        let q = parse_query(
            &p(&[
                ("from", "-6h"),
                ("until", "now"),
                ("tags", "analyzer  ks_test"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!((q.from, q.until), (now - 6 * 3600, now));
        assert_eq!(q.tags, vec!["analyzer", "ks_test"]);
        assert_eq!(q.op, SetOp::All);
        let q = parse_query(&p(&[("tags", "a b"), ("set", "union")]), now).unwrap();
        assert_eq!(q.op, SetOp::Any);
        let q = parse_query(
            &p(&[
                ("from", "1600000000"),
                ("until", "1600003600"),
                ("set", "intersection"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(
            (q.from, q.until, q.op),
            (1_600_000_000, 1_600_003_600, SetOp::All)
        );
        let q = parse_query(&p(&[]), now).unwrap();
        assert_eq!((q.from, q.until), (0, now));
        assert_eq!(parse_at("-1mon", now), Some(now - 30 * 86_400));
        assert_eq!(parse_at("-2y", now), Some(now - 2 * 365 * 86_400));
        assert_eq!(parse_at("-30min", now), Some(now - 1800));
        for bad in [
            vec![("from", "yesterday-ish")],
            vec![("from", "now"), ("until", "-1h")],
            vec![("set", "xor")],
            vec![("jsonp", "cb")],
        ] {
            assert!(parse_query(&p(&bad), now).is_err(), "{bad:?}");
        }
    }
}
