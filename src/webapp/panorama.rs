//! The Panorama view (`/panorama`): search recorded anomalies with every filter, a results
//! table and a graph per anomaly; or count anomalies by metric. `/api/anomalies` takes the
//! same parameters ([`parse_search`]) and answers JSON.
//!
//! Parameters (an empty value or `all` means "no filter", as in Skyline's form):
//! `metric` (exact base name; a leading `metrics.` is dropped, as Skyline does),
//! `metric_like` (pattern: `%` or `*` any run, `_` one character, case-insensitive),
//! `namespace` (a dotted prefix), `from_timestamp`/`until_timestamp` (or `from`/`until`:
//! epoch seconds, `-24h`-style relative times, or `YYYY-MM-DD[ HH:MM[:SS]]` read as UTC —
//! the page's script converts dates typed in the display time zone to epoch before
//! submitting), `app`, `source`, `host`, `algorithm` (a triggered algorithm), `limit`
//! (1–10,000, default 10), `order` (`DESC` newest first, or `ASC`), `count_by_metric`
//! (`true`/`false`). An unknown parameter is a 400, as in Skyline.
//!
//! Every query is `db::queries` (bound parameters), run inside `web::block`. The graphs come
//! from Graphite (`/api?graphite_metric=`, the anomaly's full duration before it plus 5 %
//! after) when `[graphite] url` is set, else from Redis (`/api?metric=`, the last
//! `FULL_DURATION`, with a note when the anomaly is older than that).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::api::{params, MAX_NAME_BYTES};
use super::error::{PageError, WebError};
use super::templates::{fmt_duration, fmt_utc, fmt_value, iso_utc, json_for_html, query_value};
use super::WebState;
use crate::db::queries::{self, AnomalyQuery, AnomalyRow, Order, DEFAULT_LIMIT, MAX_LIMIT};
use crate::model::FULL_NAMESPACE;

const KNOWN: &[&str] = &[
    "metric",
    "metric_like",
    "namespace",
    "from_timestamp",
    "until_timestamp",
    "from",
    "until",
    "app",
    "source",
    "host",
    "algorithm",
    "limit",
    "order",
    "count_by_metric",
];

/// A validated search.
#[derive(Debug, Clone)]
pub struct Search {
    /// The query for `db::queries`.
    pub query: AnomalyQuery,
    /// Count by metric instead of listing anomalies.
    pub count_by_metric: bool,
    /// Whether any parameter was given (no parameters: Skyline's "latest anomalies").
    pub any: bool,
}

/// The normalised search, echoed in `/api/anomalies` answers.
#[derive(Debug, Clone, Serialize)]
pub struct QueryEcho {
    metric: Option<String>,
    metric_like: Option<String>,
    namespace: Option<String>,
    from_timestamp: Option<i64>,
    until_timestamp: Option<i64>,
    app: Option<String>,
    source: Option<String>,
    host: Option<String>,
    algorithm: Option<String>,
    limit: i64,
    order: &'static str,
}

impl Search {
    /// The normalised parameters.
    pub fn echo(&self) -> QueryEcho {
        let q = &self.query;
        QueryEcho {
            metric: q.metric.clone(),
            metric_like: q.metric_like.clone(),
            namespace: q.namespace.clone(),
            from_timestamp: q.from_ts,
            until_timestamp: q.until_ts,
            app: q.app.clone(),
            source: q.source.clone(),
            host: q.host.clone(),
            algorithm: q.algorithm.clone(),
            limit: q.limit,
            order: match q.order {
                Order::Asc => "ASC",
                Order::Desc => "DESC",
            },
        }
    }
}

fn text(name: &str, v: &str) -> Result<Option<String>, WebError> {
    let v = v.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    if v.len() > MAX_NAME_BYTES || v.chars().any(char::is_control) {
        return Err(WebError::BadRequest(format!(
            "{name}: at most {MAX_NAME_BYTES} bytes, no control characters"
        )));
    }
    Ok(Some(v.to_string()))
}

/// Parses a time: epoch seconds, `now`, `-<n><unit>` (s, min, h, d, w; Graphite's forms), or
/// `YYYY-MM-DD[ HH:MM[:SS]]` / `YYYY-MM-DDTHH:MM[:SS]` / `YYYYMMDD HH:MM` read as UTC.
pub fn parse_time(s: &str, now: i64) -> Option<i64> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("now") {
        return Some(now);
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.len() != 8 {
        return s.parse().ok();
    }
    if let Some(rel) = s.strip_prefix('-') {
        let split = rel.find(|c: char| !c.is_ascii_digit())?;
        let n: i64 = rel[..split].parse().ok()?;
        let unit = match rel[split..].to_ascii_lowercase().as_str() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "min" | "mins" | "minute" | "minutes" | "m" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            _ => return None,
        };
        return Some(now - n.checked_mul(unit)?);
    }
    // Dates: normalise the separators, then read the digits.
    let norm: String = s.replace('T', " ");
    let (date, time) = match norm.split_once(' ') {
        Some((d, t)) => (d.trim(), t.trim()),
        None => (norm.as_str(), ""),
    };
    let digits: String = date.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() != 8 || !(date.len() == 8 || date.len() == 10) {
        return None;
    }
    let y: i64 = digits[0..4].parse().ok()?;
    let mo: u32 = digits[4..6].parse().ok()?;
    let d: u32 = digits[6..8].parse().ok()?;
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return None;
    }
    let mut secs = 0i64;
    if !time.is_empty() {
        let time = time.trim_end_matches('Z');
        let parts: Vec<&str> = time.split(':').collect();
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        let h: i64 = parts[0].parse().ok()?;
        let mi: i64 = parts[1].parse().ok()?;
        let se: i64 = parts.get(2).map_or(Some(0), |p| p.parse().ok())?;
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs = h * 3600 + mi * 60 + se;
    }
    Some(super::templates::days_from_civil(y, mo, d) * 86_400 + secs)
}

/// Days in `month` (1–12) of `year`, leap years included.
fn days_in_month(year: i64, month: u32) -> u32 {
    use super::templates::days_from_civil;
    let next = if month == 12 {
        days_from_civil(year + 1, 1, 1)
    } else {
        days_from_civil(year, month + 1, 1)
    };
    (next - days_from_civil(year, month, 1)) as u32
}

/// Why a date-looking value is not a date (`2026-02-30`: "February 2026 has 28 days"), for
/// the 400's sentence; `None` when it does not look like `YYYY-MM-DD`.
fn date_problem(s: &str) -> Option<String> {
    let date = s.trim().split([' ', 'T']).next()?;
    let parts: Vec<&str> = date.split('-').collect();
    let [y, mo, d] = parts[..] else { return None };
    let (y, mo, d) = (
        y.parse::<i64>().ok()?,
        mo.parse::<u32>().ok()?,
        d.parse::<u32>().ok()?,
    );
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    if !(1..=12).contains(&mo) {
        return Some(format!("there is no month {mo}"));
    }
    let max = days_in_month(y, mo);
    (d < 1 || d > max).then(|| format!("{} {y} has {max} days", MONTHS[mo as usize - 1]))
}

/// Validates the Panorama parameters (first problem wins, naming the parameter).
pub fn parse_search(params: &[(String, String)], now: i64) -> Result<Search, WebError> {
    let mut q = AnomalyQuery::default();
    let mut count_by_metric = false;
    let mut any = false;
    for (k, v) in params {
        if !KNOWN.contains(&k.as_str()) {
            return Err(WebError::BadRequest(format!(
                "unknown parameter {k:?} (known: {})",
                KNOWN.join(", ")
            )));
        }
        any = true;
        match k.as_str() {
            "metric" => {
                q.metric = text(k, v)?.map(|m| match m.strip_prefix(FULL_NAMESPACE) {
                    Some(base) if !base.is_empty() => base.to_string(),
                    _ => m,
                })
            }
            "metric_like" => q.metric_like = text(k, v)?,
            "namespace" => q.namespace = text(k, v)?,
            "from_timestamp" | "from" | "until_timestamp" | "until" => {
                let ts = match text(k, v)? {
                    None => None,
                    Some(t) => Some(parse_time(&t, now).ok_or_else(|| {
                        WebError::BadRequest(match date_problem(&t) {
                            Some(why) => format!("{k}: {t} is not a date: {why}."),
                            None => format!(
                                "{k}: {t} is not epoch seconds, a relative time like -24h, or a date like YYYY-MM-DD HH:MM."
                            ),
                        })
                    })?),
                };
                if k.starts_with("from") {
                    q.from_ts = ts;
                } else {
                    q.until_ts = ts;
                }
            }
            "app" => q.app = text(k, v)?,
            "source" => q.source = text(k, v)?,
            "host" => q.host = text(k, v)?,
            "algorithm" => q.algorithm = text(k, v)?,
            "limit" => {
                q.limit = match v.trim() {
                    "" => DEFAULT_LIMIT,
                    s => s
                        .parse::<i64>()
                        .ok()
                        .filter(|l| (1..=MAX_LIMIT).contains(l))
                        .ok_or_else(|| {
                            WebError::BadRequest(format!("limit: a number from 1 to {MAX_LIMIT}"))
                        })?,
                }
            }
            "order" => {
                q.order = match v.trim().to_ascii_uppercase().as_str() {
                    "" | "DESC" => Order::Desc,
                    "ASC" => Order::Asc,
                    _ => return Err(WebError::BadRequest("order: DESC or ASC".into())),
                }
            }
            "count_by_metric" => {
                count_by_metric = match v.trim() {
                    "" | "false" => false,
                    "true" => true,
                    _ => {
                        return Err(WebError::BadRequest(
                            "count_by_metric: true or false".into(),
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    if let (Some(f), Some(u)) = (q.from_ts, q.until_ts) {
        if f > u {
            return Err(WebError::BadRequest(
                "from_timestamp is after until_timestamp".into(),
            ));
        }
    }
    Ok(Search {
        query: q,
        count_by_metric,
        any,
    })
}

#[derive(Serialize)]
struct Opt {
    name: String,
    selected: bool,
}

fn options(names: Vec<String>, chosen: Option<&str>) -> Vec<Opt> {
    names
        .into_iter()
        .map(|name| Opt {
            selected: Some(name.as_str()) == chosen,
            name,
        })
        .collect()
}

#[derive(Serialize)]
struct Row {
    id: i64,
    metric: String,
    /// Escaped, breakable only between parts ([`super::templates::breakable_name`]).
    metric_html: String,
    metric_q: String,
    datapoint: f64,
    datapoint_fmt: String,
    ts: i64,
    ts_iso: String,
    ts_utc: String,
    end_ts: Option<i64>,
    end_utc: Option<String>,
    duration: String,
    full_duration: i64,
    full_duration_fmt: String,
    created_ts: Option<i64>,
    created_utc: Option<String>,
    app: String,
    source: String,
    host: String,
    triggered: Vec<String>,
    algorithms_run: usize,
    graph_from: i64,
    graph_until: i64,
    trainable: bool,
}

impl Row {
    fn new(r: AnomalyRow) -> Self {
        let shift = (r.full_duration / 20).max(60);
        Row {
            id: r.id,
            metric_q: query_value(&r.metric),
            metric_html: super::templates::breakable_name(&r.metric),
            metric: r.metric,
            datapoint: r.datapoint,
            datapoint_fmt: fmt_value(r.datapoint),
            ts: r.anomaly_timestamp,
            ts_iso: iso_utc(r.anomaly_timestamp),
            ts_utc: fmt_utc(r.anomaly_timestamp),
            end_ts: r.anomaly_end_timestamp,
            end_utc: r.anomaly_end_timestamp.map(fmt_utc),
            duration: r
                .anomaly_end_timestamp
                .map(|e| fmt_duration(e - r.anomaly_timestamp))
                .unwrap_or_else(|| "unknown".into()),
            full_duration: r.full_duration,
            full_duration_fmt: fmt_duration(r.full_duration),
            created_ts: r.created_timestamp,
            created_utc: r.created_timestamp.map(fmt_utc),
            app: r.app,
            source: r.source,
            host: r.host,
            algorithms_run: r.algorithms_run.len(),
            triggered: r.triggered_algorithms,
            graph_from: r.anomaly_timestamp - r.full_duration.max(3600),
            graph_until: r.anomaly_timestamp + shift,
            trainable: false,
        }
    }
}

#[derive(Serialize)]
struct CountView {
    metric: String,
    metric_html: String,
    metric_q: String,
    count: i64,
    drill_limit: i64,
}

#[derive(Serialize)]
struct Form {
    metric: String,
    metric_like: String,
    namespace: String,
    from: String,
    until: String,
    limit: String,
    order_asc: bool,
    count_by_metric: bool,
}

#[derive(Serialize)]
struct PageConfig<'a> {
    page: &'static str,
    timezone: &'a str,
    graphite: bool,
    full_duration: u64,
}

#[derive(Serialize)]
struct PanoramaPage<'a> {
    title: &'static str,
    nav_panorama: bool,
    scripts: &'static [&'static str],
    page_config: String,
    timezone_label: &'a str,
    disabled: bool,
    error: Option<String>,
    form: Form,
    apps: Vec<Opt>,
    sources: Vec<Opt>,
    hosts: Vec<Opt>,
    algorithms: Vec<Opt>,
    caption: String,
    rows: Vec<Row>,
    counts: Vec<CountView>,
    count_mode: bool,
    total: usize,
    graphite: bool,
}

struct Lists {
    apps: Vec<String>,
    sources: Vec<String>,
    hosts: Vec<String>,
    algorithms: Vec<String>,
}

enum Found {
    Rows(Vec<AnomalyRow>),
    Counts(Vec<(String, i64)>),
}

fn caption(s: &Search) -> String {
    if !s.any {
        return "Latest anomalies".into();
    }
    let q = &s.query;
    let mut parts = Vec::new();
    let mut add = |label: &str, v: &Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{label} {v}"));
        }
    };
    add("metric", &q.metric);
    add("metric like", &q.metric_like);
    add("namespace", &q.namespace);
    add("app", &q.app);
    add("source", &q.source);
    add("host", &q.host);
    add("algorithm", &q.algorithm);
    if let Some(f) = q.from_ts {
        parts.push(format!("from {}", fmt_utc(f)));
    }
    if let Some(u) = q.until_ts {
        parts.push(format!("until {}", fmt_utc(u)));
    }
    let what = if s.count_by_metric {
        "Anomaly counts by metric"
    } else {
        "Anomalies"
    };
    let order = match q.order {
        Order::Desc => "newest first",
        Order::Asc => "oldest first",
    };
    if parts.is_empty() {
        format!("{what}, {order}, at most {}", q.limit)
    } else {
        format!(
            "{what} with {}, {order}, at most {}",
            parts.join(", "),
            q.limit
        )
    }
}

/// `GET /panorama`.
pub async fn page(req: HttpRequest, state: web::Data<WebState>) -> Result<HttpResponse, PageError> {
    let raw = params(&req)?;
    let get = |k: &str| {
        raw.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let form = Form {
        metric: get("metric"),
        metric_like: get("metric_like"),
        namespace: get("namespace"),
        from: [get("from_timestamp"), get("from")].concat(),
        until: [get("until_timestamp"), get("until")].concat(),
        limit: Some(get("limit"))
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| DEFAULT_LIMIT.to_string()),
        order_asc: get("order").eq_ignore_ascii_case("asc"),
        count_by_metric: get("count_by_metric") == "true",
    };
    let graphite = state.graphite_url.is_some();
    let settings = &state.settings;
    let page_config = json_for_html(&PageConfig {
        page: "panorama",
        timezone: &settings.timezone,
        graphite,
        full_duration: state.full_duration_secs,
    })?;
    let mut view = PanoramaPage {
        title: "Panorama",
        nav_panorama: true,
        scripts: &["common.js", "chart.js", "panorama.js", "train.js"],
        page_config,
        timezone_label: &settings.timezone,
        disabled: state.db.is_none(),
        error: None,
        form,
        apps: Vec::new(),
        sources: Vec::new(),
        hosts: Vec::new(),
        algorithms: Vec::new(),
        caption: String::new(),
        rows: Vec::new(),
        counts: Vec::new(),
        count_mode: false,
        total: 0,
        graphite,
    };
    let Some(pool) = state.db.clone() else {
        let html = state.templates.render("panorama", &view)?;
        return Ok(html_response(StatusCode::OK, html));
    };
    let search = parse_search(&raw, super::now());
    let query = search.as_ref().ok().cloned();
    let (limit, target) = (pool.op_timeout(), pool.target().to_string());
    let (lists, found) = db_within(limit, target, move || {
        let lists = Lists {
            apps: queries::list_apps(&pool)?,
            sources: queries::list_sources(&pool)?,
            hosts: queries::list_hosts(&pool)?,
            algorithms: queries::list_algorithms(&pool)?,
        };
        let found = match query {
            None => None,
            Some(s) if s.count_by_metric => {
                Some(Found::Counts(queries::count_by_metric(&pool, &s.query)?))
            }
            Some(s) => Some(Found::Rows(queries::search(&pool, &s.query)?)),
        };
        Ok::<_, crate::db::DbError>((lists, found))
    })
    .await
    .map_err(|err| WebError::db_failed("page", &err))?;
    let q = search.as_ref().ok().map(|s| &s.query);
    view.apps = options(lists.apps, q.and_then(|q| q.app.as_deref()));
    view.sources = options(lists.sources, q.and_then(|q| q.source.as_deref()));
    view.hosts = options(lists.hosts, q.and_then(|q| q.host.as_deref()));
    view.algorithms = options(lists.algorithms, q.and_then(|q| q.algorithm.as_deref()));
    let status = match (&search, found) {
        (Err(err), _) => {
            view.error = Some(err.to_string());
            StatusCode::BAD_REQUEST
        }
        (Ok(s), Some(Found::Counts(c))) => {
            view.caption = caption(s);
            view.count_mode = true;
            view.total = c.len();
            view.counts = c
                .into_iter()
                .map(|(metric, count)| CountView {
                    metric_q: query_value(&metric),
                    metric_html: super::templates::breakable_name(&metric),
                    metric,
                    drill_limit: count.clamp(1, 100),
                    count,
                })
                .collect();
            StatusCode::OK
        }
        (Ok(s), found) => {
            view.caption = caption(s);
            let rows = match found {
                Some(Found::Rows(r)) => r,
                _ => Vec::new(),
            };
            view.total = rows.len();
            view.rows = rows
                .into_iter()
                .map(|r| {
                    let trainable = state.trainable(&r.metric);
                    Row {
                        trainable,
                        ..Row::new(r)
                    }
                })
                .collect();
            StatusCode::OK
        }
    };
    let html = state.templates.render("panorama", &view)?;
    Ok(html_response(status, html))
}

/// An HTML page response (never cached: it reflects live data).
pub fn html_response(status: StatusCode, html: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(html)
}

/// Runs blocking database work `f` on the blocking pool and waits at most `limit`
/// (`[panorama] db_timeout_secs`): a database that hangs gets the request a 503
/// ([`crate::db::DbError::Timeout`]) instead of holding it open. The work itself finishes
/// in the background when the database answers.
pub(crate) async fn db_within<T, F>(
    limit: std::time::Duration,
    target: String,
    f: F,
) -> Result<T, crate::db::DbError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, crate::db::DbError> + Send + 'static,
{
    let work = actix_web::rt::time::timeout(limit, web::block(f));
    match crate::monitor::spans::timed(crate::monitor::spans::Kind::Sql, work).await {
        Ok(Ok(result)) => result,
        Ok(Err(err)) => Err(crate::db::DbError::Worker {
            target,
            message: err.to_string(),
        }),
        Err(_) => Err(crate::db::DbError::Timeout {
            target,
            after: limit,
        }),
    }
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

    #[test]
    fn times() {
        let now = 1_800_000_000;
        assert_eq!(parse_time("1700000000", now), Some(1_700_000_000));
        assert_eq!(parse_time("now", now), Some(now));
        assert_eq!(parse_time("-24h", now), Some(now - 86_400));
        assert_eq!(parse_time("-15min", now), Some(now - 900));
        assert_eq!(parse_time("-2d", now), Some(now - 172_800));
        assert_eq!(parse_time("2023-11-14 22:13", now), Some(1_699_999_980));
        assert_eq!(parse_time("2023-11-14T22:13:20", now), Some(1_700_000_000));
        assert_eq!(parse_time("20231114 22:13", now), Some(1_699_999_980));
        assert_eq!(parse_time("2023-11-14", now), Some(1_699_920_000));
        assert!(parse_time("2024-02-29", now).is_some(), "a leap day");
        assert_eq!(
            date_problem("2026-02-30 10:00").as_deref(),
            Some("February 2026 has 28 days")
        );
        for bad in [
            "yesterday",
            "-3x",
            "2023-13-01",
            "2026-02-30",
            "2023-02-29",
            "2023-04-31",
            "2023-11-14 25:00",
            "12:00",
        ] {
            assert_eq!(parse_time(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn search_parameters() {
        let s = parse_search(
            &p(&[
                ("metric", "metrics.a.b"),
                ("metric_like", "all"),
                ("from_timestamp", "1700000000"),
                ("until", "-1h"),
                ("limit", "50"),
                ("order", "asc"),
                ("app", "analyzer"),
                ("algorithm", "grubbs"),
                ("count_by_metric", "false"),
            ]),
            1_800_000_000,
        )
        .unwrap();
        assert_eq!(s.query.metric.as_deref(), Some("a.b"));
        assert_eq!(s.query.metric_like, None);
        assert_eq!(s.query.from_ts, Some(1_700_000_000));
        assert_eq!(s.query.until_ts, Some(1_800_000_000 - 3600));
        assert_eq!(s.query.limit, 50);
        assert_eq!(s.query.order, Order::Asc);
        assert_eq!(s.query.algorithm.as_deref(), Some("grubbs"));
        assert!(s.any && !s.count_by_metric);
        assert!(!parse_search(&[], 0).unwrap().any);
        for bad in [
            ("nope", "1"),
            ("limit", "0"),
            ("limit", "10001"),
            ("order", "sideways"),
            ("count_by_metric", "maybe"),
            ("from", "whenever"),
        ] {
            assert!(parse_search(&p(&[bad]), 0).is_err(), "{bad:?}");
        }
        assert!(parse_search(&p(&[("from", "200"), ("until", "100")]), 0).is_err());
    }
}
