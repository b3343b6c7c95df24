//! The stored endpoint monitor's views ([`crate::monitor`], docs/monitor.md): pages under
//! `/monitor/{view}` and the same data as JSON under `/api/monitor/{view}`, plus
//! `/monitor/outlier/{id}` and the machine export `GET /monitor/export?since=EPOCH`.
//!
//! Views: `endpoints` (per route: hits, last request, median, p90, p99, error rate),
//! `traffic` (hour-of-day × day heatmap, daily utilisation), `versions` (box plots per
//! version), `clients` (per IP and per user across versions), `status` (status codes),
//! `outliers`, `profile` (level-3 time breakdown grouped per route) and `report` (two time
//! intervals or two versions: per route the change in median latency with a Mann–Whitney U
//! test, and the change in error rate). Every view reads `monitor_request_blocks` /
//! `monitor_outliers` once (bounded by `[panorama] db_timeout_secs` and
//! [`crate::db::monitor::MAX_ROWS`]) and aggregates with [`crate::monitor::report`].
//!
//! The export sits outside basic auth: only `Authorization: Bearer <[monitor] export_token>`
//! (constant-time compare) gets in; no token configured, none sent or a wrong one: 403. The
//! IP allow-list still applies (it wraps every route).

use std::fmt::Write as _;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::json;

use super::api::params;
use super::error::{PageError, WebError};
use super::monitor::Monitor;
use super::templates::{escape_html, fmt_utc, iso_utc, json_for_html, query_value};
use super::WebState;
use crate::db::monitor as q;
use crate::monitor::report::{self, route_key};
use crate::monitor::{OutlierRecord, RequestRecord};

/// The views, in tab order: `(path segment, tab label)`.
pub const VIEWS: &[(&str, &str)] = &[
    ("endpoints", "Endpoints"),
    ("traffic", "Traffic"),
    ("versions", "Versions"),
    ("clients", "Clients"),
    ("status", "Status codes"),
    ("outliers", "Outliers"),
    ("profile", "Profile"),
    ("report", "Report"),
];

const DAY_MS: i64 = 86_400_000;

fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter()
        .find(|(n, _)| n == k)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn epoch_param(p: &[(String, String)], k: &str) -> Result<Option<i64>, WebError> {
    match get(p, k) {
        None => Ok(None),
        Some(v) => v
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite() && *x >= 0.0 && *x < 1e11)
            .map(|x| Some((x * 1000.0) as i64))
            .ok_or_else(|| WebError::BadRequest(format!("{k}: epoch seconds expected, got {v:?}"))),
    }
}

/// The window `[from, until)` in ms: `from`/`until` (epoch seconds) or the last `days`
/// (default 7).
/// How far past now a view's default window ends.
const UNTIL_SLACK_MS: i64 = 60_000;

fn window(p: &[(String, String)], now_ms: i64) -> Result<(i64, i64), WebError> {
    let days = match get(p, "days") {
        None => 7,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|d| (1..=366).contains(d))
            .ok_or_else(|| WebError::BadRequest(format!("days: 1 to 366, got {v:?}")))?,
    };
    // The default end is a minute ahead: records of the last second (and clocks a little
    // apart) are in the window.
    let until = epoch_param(p, "until")?.unwrap_or(now_ms + UNTIL_SLACK_MS);
    let from = epoch_param(p, "from")?.unwrap_or(until - days * DAY_MS);
    if from >= until {
        return Err(WebError::BadRequest("from must be before until".into()));
    }
    Ok((from, until))
}

/// Now in milliseconds (the records' resolution, not the second's).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn load(
    state: &WebState,
    from_ms: i64,
    until_ms: i64,
) -> Result<Vec<RequestRecord>, WebError> {
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let (limit, target) = (pool.op_timeout(), pool.target().to_string());
    super::panorama::db_within(limit, target, move || {
        q::requests(&pool, from_ms, until_ms, q::MAX_ROWS)
    })
    .await
    .map_err(|err| WebError::db_failed("monitor records", &err))
}

async fn load_outliers(
    state: &WebState,
    id: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, OutlierRecord)>, WebError> {
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let (t, target) = (pool.op_timeout(), pool.target().to_string());
    super::panorama::db_within(t, target, move || q::outliers(&pool, id, limit))
        .await
        .map_err(|err| WebError::db_failed("monitor outliers", &err))
}

/// The report's two samples, as chosen by the parameters: `a_version` and `b_version`, or
/// `a_from`, `a_until`, `b_from`, `b_until`; by default the two latest versions seen in the
/// window, else the window's first half against its second.
fn split_report(
    p: &[(String, String)],
    rows: Vec<RequestRecord>,
    (from, until): (i64, i64),
) -> Result<(String, String, Vec<RequestRecord>, Vec<RequestRecord>), WebError> {
    if let (Some(va), Some(vb)) = (get(p, "a_version"), get(p, "b_version")) {
        let a = rows.iter().filter(|r| r.version == va).cloned().collect();
        let b = rows.into_iter().filter(|r| r.version == vb).collect();
        return Ok((format!("version {va}"), format!("version {vb}"), a, b));
    }
    let ranges = [
        epoch_param(p, "a_from")?,
        epoch_param(p, "a_until")?,
        epoch_param(p, "b_from")?,
        epoch_param(p, "b_until")?,
    ];
    if let [Some(af), Some(au), Some(bf), Some(bu)] = ranges {
        let a = rows
            .iter()
            .filter(|r| (af..au).contains(&r.time_ms))
            .cloned()
            .collect();
        let b = rows
            .into_iter()
            .filter(|r| (bf..bu).contains(&r.time_ms))
            .collect();
        let label = |f: i64, u: i64| format!("{} – {}", fmt_utc(f / 1000), fmt_utc(u / 1000));
        return Ok((label(af, au), label(bf, bu), a, b));
    }
    if ranges.iter().any(Option::is_some)
        || get(p, "a_version").is_some()
        || get(p, "b_version").is_some()
    {
        return Err(WebError::BadRequest(
            "report: give a_version and b_version, or all of a_from, a_until, b_from, b_until"
                .into(),
        ));
    }
    let versions = report::version_order(&rows);
    if versions.len() >= 2 {
        let (va, vb) = (&versions[versions.len() - 2], &versions[versions.len() - 1]);
        let a = rows.iter().filter(|r| &r.version == va).cloned().collect();
        let b = rows.iter().filter(|r| &r.version == vb).cloned().collect();
        return Ok((format!("version {va}"), format!("version {vb}"), a, b));
    }
    let mid = from + (until - from) / 2;
    let (a, b): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.time_ms < mid);
    Ok(("first half".into(), "second half".into(), a, b))
}

fn outlier_json(id: i64, o: &OutlierRecord) -> serde_json::Value {
    let r = &o.request;
    json!({
        "id": id,
        "route": r.route, "method": r.method, "status": r.status,
        "duration_ms": r.duration_us as f64 / 1000.0,
        "time": r.time_ms as f64 / 1000.0,
        "version": r.version, "ip": r.ip, "user": r.user,
        "route_mean_ms": o.route_mean_us as f64 / 1000.0,
        "query": o.query, "headers": o.headers,
        "cpu_percent": o.cpu_percent, "rss_bytes": o.rss_bytes,
        "breakdown_ms": {
            "redis": o.breakdown.redis_us as f64 / 1000.0,
            "sql": o.breakdown.sql_us as f64 / 1000.0,
            "graphite": o.breakdown.graphite_us as f64 / 1000.0,
            "template": o.breakdown.template_us as f64 / 1000.0,
            "other": o.breakdown.other_us(r.duration_us) as f64 / 1000.0,
        },
        "slowest_part": o.breakdown.dominant(r.duration_us),
    })
}

/// The data of `view` as JSON.
async fn view_data(
    state: &WebState,
    view: &str,
    p: &[(String, String)],
) -> Result<serde_json::Value, WebError> {
    let now_ms = now_ms();
    let (from, until) = window(p, now_ms)?;
    let head = json!({"view": view, "from": from / 1000, "until": until / 1000});
    let body = match view {
        "outliers" => {
            let rows = load_outliers(state, None, 200).await?;
            json!({"outliers": rows.iter().map(|(id, o)| outlier_json(*id, o)).collect::<Vec<_>>()})
        }
        "endpoints" | "traffic" | "versions" | "clients" | "status" | "profile" | "report" => {
            let rows = load(state, from, until).await?;
            match view {
                "endpoints" => json!({"routes": report::overview(&rows)}),
                "traffic" => json!({"traffic": report::traffic(&rows, from, until)}),
                "versions" => {
                    json!({"versions": report::version_order(&rows), "routes": report::versions(&rows)})
                }
                "clients" => json!({
                    "ips": report::clients(&rows, |r| r.ip.clone()),
                    "users": report::clients(&rows, |r| if r.user.is_empty() { "(anonymous)".to_string() } else { r.user.clone() }),
                }),
                "status" => json!({"routes": report::status_codes(&rows).into_iter()
                    .map(|(route, codes)| json!({"route": route, "codes": codes})).collect::<Vec<_>>()}),
                "profile" => json!({"routes": report::profile(&rows)}),
                _ => {
                    let (la, lb, a, b) = split_report(p, rows, (from, until))?;
                    json!({"a": la, "b": lb, "routes": report::compare(&a, &b)})
                }
            }
        }
        other => return Err(WebError::NotFound(format!("no monitor view {other:?}"))),
    };
    let mut out = head;
    if let (Some(o), serde_json::Value::Object(b)) = (out.as_object_mut(), body) {
        o.extend(b);
    }
    Ok(out)
}

/// `GET /api/monitor/{view}`.
pub async fn api(
    req: HttpRequest,
    view: web::Path<String>,
    state: web::Data<WebState>,
) -> Result<HttpResponse, WebError> {
    let p = params(&req)?;
    let data = view_data(&state, &view, &p).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(data))
}

#[derive(Serialize, Default)]
struct Cell {
    text: String,
    class: &'static str,
    href: Option<String>,
}

fn c(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        ..Default::default()
    }
}

fn n(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        class: "num",
        href: None,
    }
}

fn mono(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        class: "mono",
        href: None,
    }
}

#[derive(Serialize)]
struct Head {
    text: &'static str,
    num: bool,
}

fn heads(names: &[&'static str]) -> Vec<Head> {
    names
        .iter()
        .map(|t| Head {
            text: t.trim_start_matches('#'),
            num: t.starts_with('#'),
        })
        .collect()
}

#[derive(Serialize, Default)]
struct Panel {
    title: String,
    note: String,
    svg: String,
    headers: Vec<Head>,
    rows: Vec<Vec<Cell>>,
    pre: String,
    empty: &'static str,
}

#[derive(Serialize)]
struct Tab {
    href: String,
    label: &'static str,
    active: bool,
}

#[derive(Serialize)]
struct Field {
    name: &'static str,
    label: &'static str,
    value: String,
}

#[derive(Serialize)]
struct ViewPage {
    title: &'static str,
    nav_monitor: bool,
    scripts: &'static [&'static str],
    page_config: String,
    heading: String,
    subtitle: String,
    hint: String,
    tabs: Vec<Tab>,
    form: Vec<Field>,
    json_href: String,
    panels: Vec<Panel>,
}

fn f_ms(x: f64) -> String {
    if x >= 1000.0 {
        format!("{:.2} s", x / 1000.0)
    } else if x >= 10.0 {
        format!("{x:.1} ms")
    } else {
        format!("{x:.2} ms")
    }
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// Horizontal box plots, one row per version, on a shared ms scale.
fn boxes_svg(boxes: &[report::VersionBox]) -> String {
    let w = 720.0;
    let label_w = 170.0;
    let row_h = 26.0;
    let h = row_h * boxes.len() as f64 + 18.0;
    let max = boxes
        .iter()
        .map(|b| b.summary.high)
        .fold(0.0f64, f64::max)
        .max(0.001);
    let x = |v: f64| label_w + (v / max) * (w - label_w - 10.0);
    let mut out = format!(
        "<svg class=\"boxes\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"latency per version\">"
    );
    for (i, b) in boxes.iter().enumerate() {
        let s = &b.summary;
        let y = i as f64 * row_h + 4.0;
        let mid = y + row_h / 2.0 - 2.0;
        let label: String = b.version.chars().take(28).collect();
        let _ = write!(
            out,
            "<g class=\"box\"><title>{} — n {}, median {}, quartiles {} – {}, whiskers {} – {}</title>\
             <text x=\"0\" y=\"{:.1}\">{}</text>\
             <line class=\"whisker\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{mid:.1}\" y2=\"{mid:.1}\"/>\
             <rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"/>\
             <line class=\"median\" x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/></g>",
            escape_html(&b.version),
            s.n,
            f_ms(s.median),
            f_ms(s.q1),
            f_ms(s.q3),
            f_ms(s.low),
            f_ms(s.high),
            mid + 4.0,
            escape_html(&label),
            x(s.low),
            x(s.high),
            x(s.q1),
            y + 3.0,
            (x(s.q3) - x(s.q1)).max(1.0),
            row_h - 10.0,
            x(s.median),
            x(s.median),
            y + 1.0,
            y + row_h - 5.0,
        );
    }
    let _ = write!(
        out,
        "<text class=\"axis\" x=\"{label_w}\" y=\"{:.1}\">0</text><text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text></svg>",
        h - 2.0,
        w - 10.0,
        h - 2.0,
        escape_html(&f_ms(max))
    );
    out
}

/// The hour-of-day × day heatmap: a row per day, a cell per hour, shaded in 6 steps.
fn heatmap_svg(t: &report::Traffic) -> String {
    let cell = 22.0;
    let label_w = 90.0;
    let w = label_w + 24.0 * cell;
    let h = cell * t.days.len() as f64 + 16.0;
    let max = t.hours.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let mut out = format!(
        "<svg class=\"heat\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"requests per hour of day and day\">"
    );
    for (d, (day, hours)) in t.days.iter().zip(&t.hours).enumerate() {
        let y = d as f64 * cell;
        let date: String = fmt_utc(*day).chars().take(10).collect();
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{:.1}\">{date}</text>",
            y + cell - 7.0
        );
        for (hour, &count) in hours.iter().enumerate() {
            let level = if count == 0 {
                0
            } else {
                1 + ((count as f64 / max) * 4.999) as usize
            };
            let _ = write!(
                out,
                "<rect class=\"h{level}\" x=\"{:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{date} {hour:02}:00 UTC: {count} requests</title></rect>",
                label_w + hour as f64 * cell,
                cell - 2.0,
                cell - 2.0
            );
        }
    }
    for hour in (0..24).step_by(3) {
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\">{hour:02}h</text>",
            label_w + hour as f64 * cell,
            h - 2.0
        );
    }
    out.push_str("</svg>");
    out
}

fn tabs(active: &str, qs: &str) -> Vec<Tab> {
    let mut t = vec![Tab {
        href: "/monitor".into(),
        label: "Live",
        active: active == "live",
    }];
    t.extend(VIEWS.iter().map(|(v, label)| Tab {
        href: if qs.is_empty() {
            format!("/monitor/{v}")
        } else {
            format!("/monitor/{v}?{qs}")
        },
        label,
        active: *v == active,
    }));
    t
}

/// The query string to carry between tabs (the window only).
fn carry(p: &[(String, String)]) -> String {
    ["days", "from", "until"]
        .iter()
        .filter_map(|k| get(p, k).map(|v| format!("{k}={}", query_value(v))))
        .collect::<Vec<_>>()
        .join("&")
}

fn panels_for(view: &str, rows: ViewRows) -> Vec<Panel> {
    match rows {
        ViewRows::Endpoints(o) => vec![Panel {
            title: "Endpoints".into(),
            note: "per route, busiest first".into(),
            headers: heads(&["route", "#hits", "last request", "#median", "#p90", "#p99", "#5xx rate"]),
            rows: o
                .into_iter()
                .map(|r| {
                    vec![
                        mono(r.route),
                        n(r.hits.to_string()),
                        c(fmt_utc(r.last_ms / 1000)),
                        n(f_ms(r.median_ms)),
                        n(f_ms(r.p90_ms)),
                        n(f_ms(r.p99_ms)),
                        n(pct(r.error_rate)),
                    ]
                })
                .collect(),
            empty: "No records in this window.",
            ..Default::default()
        }],
        ViewRows::Traffic(t) => {
            let per_day = t.per_day.clone();
            vec![
                Panel {
                    title: "Hour of day × day".into(),
                    note: "requests, UTC".into(),
                    svg: heatmap_svg(&t),
                    ..Default::default()
                },
                Panel {
                    title: "Daily utilisation".into(),
                    note: format!("requests per day (max {})", per_day.iter().max().unwrap_or(&0)),
                    svg: super::monitor::bars_svg(&per_day, 720.0, 90.0, "bars"),
                    headers: heads(&["day", "#requests", "#5xx", "#median"]),
                    rows: t
                        .days
                        .iter()
                        .zip(&t.per_day)
                        .zip(&t.errors_per_day)
                        .zip(&t.median_per_day_ms)
                        .rev()
                        .map(|(((d, n_), e), m)| {
                            vec![
                                c(fmt_utc(*d).chars().take(10).collect::<String>()),
                                n(n_.to_string()),
                                n(e.to_string()),
                                n(f_ms(*m)),
                            ]
                        })
                        .collect(),
                    empty: "No records in this window.",
                    ..Default::default()
                },
            ]
        }
        ViewRows::Versions(v) => {
            if v.is_empty() {
                return vec![Panel {
                    title: "Latency per version".into(),
                    empty: "No records in this window.",
                    ..Default::default()
                }];
            }
            v.into_iter()
                .take(40)
                .map(|r| Panel {
                    title: r.route.clone(),
                    note: "latency per version: box = quartiles, bar = median, whiskers = 1.5 IQR".into(),
                    svg: boxes_svg(&r.boxes),
                    headers: heads(&["version", "#n", "#median", "#q1", "#q3", "#mean", "#5xx rate"]),
                    rows: r
                        .boxes
                        .iter()
                        .map(|b| {
                            vec![
                                mono(b.version.clone()),
                                n(b.summary.n.to_string()),
                                n(f_ms(b.summary.median)),
                                n(f_ms(b.summary.q1)),
                                n(f_ms(b.summary.q3)),
                                n(f_ms(b.summary.mean)),
                                n(pct(b.error_rate)),
                            ]
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect()
        }
        ViewRows::Clients(ips, users) => [("Per IP", ips), ("Per user", users)]
            .into_iter()
            .map(|(title, list)| Panel {
                title: title.into(),
                note: "across versions".into(),
                headers: heads(&["client", "version", "#hits", "#median", "#p90", "#5xx rate"]),
                rows: list
                    .into_iter()
                    .take(500)
                    .map(|r| {
                        vec![
                            mono(r.client),
                            mono(r.version),
                            n(r.hits.to_string()),
                            n(f_ms(r.median_ms)),
                            n(f_ms(r.p90_ms)),
                            n(pct(r.error_rate)),
                        ]
                    })
                    .collect(),
                empty: "No records in this window.",
                ..Default::default()
            })
            .collect(),
        ViewRows::Status(s) => vec![Panel {
            title: "Status codes".into(),
            note: "per route".into(),
            headers: heads(&["route", "status", "#requests"]),
            rows: s
                .into_iter()
                .flat_map(|(route, codes)| {
                    codes
                        .into_iter()
                        .map(move |(code, count)| vec![mono(route.clone()), c(code.to_string()), n(count.to_string())])
                })
                .collect(),
            empty: "No records in this window.",
            ..Default::default()
        }],
        ViewRows::Outliers(list) => vec![Panel {
            title: "Outliers".into(),
            note: "requests slower than outlier_factor × their route's mean, newest first".into(),
            headers: heads(&["time", "route", "#status", "#duration", "#× mean", "slowest part", "version", "client"]),
            rows: list
                .into_iter()
                .map(|(id, o)| {
                    let r = &o.request;
                    vec![
                        Cell {
                            text: fmt_utc(r.time_ms / 1000),
                            class: "nowrap",
                            href: Some(format!("/monitor/outlier/{id}")),
                        },
                        mono(route_key(r)),
                        n(r.status.to_string()),
                        n(f_ms(r.duration_us as f64 / 1000.0)),
                        n(format!("{:.1}×", r.duration_us as f64 / o.route_mean_us.max(1) as f64)),
                        c(o.breakdown.dominant(r.duration_us)),
                        mono(r.version.clone()),
                        mono(format!("{} {}", r.ip, r.user)),
                    ]
                })
                .collect(),
            empty: "No outliers recorded.",
            ..Default::default()
        }],
        ViewRows::Profile(p) => vec![Panel {
            title: "Where the time goes".into(),
            note: "level-3 routes: mean per request, grouped by route".into(),
            headers: heads(&["route / part", "#requests", "#mean", "#share"]),
            rows: p
                .into_iter()
                .flat_map(|r| {
                    let total = r.total_us.max(1.0);
                    let mut rows = vec![vec![
                        mono(r.route.clone()),
                        n(r.n.to_string()),
                        n(f_ms(r.total_us / 1000.0)),
                        n("100 %"),
                    ]];
                    rows.extend(r.parts.iter().map(|(part, us)| {
                        vec![
                            mono(format!("  └ {part}")),
                            n(""),
                            n(f_ms(us / 1000.0)),
                            n(pct(us / total)),
                        ]
                    }));
                    rows
                })
                .collect(),
            empty: "No level-3 records in this window (set a route's level to 3 in [[monitor.rules]]).",
            ..Default::default()
        }],
        ViewRows::Report(la, lb, list) => vec![Panel {
            title: format!("{la} → {lb}"),
            note: "per route: median latency change (Mann–Whitney U, two-sided) and error-rate change".into(),
            headers: heads(&["route", "#n A", "#n B", "#median A", "#median B", "#change", "#p", "significant", "#5xx A", "#5xx B", "#Δ 5xx"]),
            rows: list
                .into_iter()
                .map(|r| {
                    vec![
                        mono(r.route),
                        n(r.n_a.to_string()),
                        n(r.n_b.to_string()),
                        n(f_ms(r.median_a_ms)),
                        n(f_ms(r.median_b_ms)),
                        n(format!("{:+.1} %", r.median_change_pct)),
                        n(format!("{:.4}", r.p_value)),
                        c(if r.significant {
                            if r.median_change_pct > 0.0 { "yes: slower" } else { "yes: faster" }
                        } else {
                            "no"
                        }),
                        n(pct(r.error_rate_a)),
                        n(pct(r.error_rate_b)),
                        n(format!("{:+.1} pts", r.error_rate_change_pts)),
                    ]
                })
                .collect(),
            empty: "No records in this window.",
            ..Default::default()
        }],
    }
    .into_iter()
    .map(|mut p| {
        if p.title.is_empty() {
            p.title = view.to_string();
        }
        p
    })
    .collect()
}

enum ViewRows {
    Endpoints(Vec<report::RouteOverview>),
    Traffic(report::Traffic),
    Versions(Vec<report::RouteVersions>),
    Clients(Vec<report::ClientPerf>, Vec<report::ClientPerf>),
    Status(Vec<report::StatusCounts>),
    Outliers(Vec<(i64, OutlierRecord)>),
    Profile(Vec<report::RouteProfile>),
    Report(String, String, Vec<report::Comparison>),
}

/// `GET /monitor/{view}`.
pub async fn page(
    req: HttpRequest,
    view: web::Path<String>,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let view = view.into_inner();
    let Some((_, label)) = VIEWS.iter().find(|(v, _)| *v == view) else {
        return Err(WebError::NotFound(format!("no monitor view {view:?}")).into());
    };
    let p = params(&req)?;
    let now_ms = now_ms();
    let (from, until) = window(&p, now_ms)?;
    let rows = match view.as_str() {
        "outliers" => ViewRows::Outliers(load_outliers(&state, None, 200).await?),
        _ => {
            let rows = load(&state, from, until).await?;
            match view.as_str() {
                "endpoints" => ViewRows::Endpoints(report::overview(&rows)),
                "traffic" => ViewRows::Traffic(report::traffic(&rows, from, until)),
                "versions" => ViewRows::Versions(report::versions(&rows)),
                "clients" => ViewRows::Clients(
                    report::clients(&rows, |r| r.ip.clone()),
                    report::clients(&rows, |r| {
                        if r.user.is_empty() {
                            "(anonymous)".to_string()
                        } else {
                            r.user.clone()
                        }
                    }),
                ),
                "status" => ViewRows::Status(report::status_codes(&rows)),
                "profile" => ViewRows::Profile(report::profile(&rows)),
                _ => {
                    let (la, lb, a, b) = split_report(&p, rows, (from, until))?;
                    ViewRows::Report(la, lb, report::compare(&a, &b))
                }
            }
        }
    };
    let mut form = vec![
        Field {
            name: "days",
            label: "last days",
            value: get(&p, "days").unwrap_or("").to_string(),
        },
        Field {
            name: "from",
            label: "from (epoch s)",
            value: get(&p, "from").unwrap_or("").to_string(),
        },
        Field {
            name: "until",
            label: "until (epoch s)",
            value: get(&p, "until").unwrap_or("").to_string(),
        },
    ];
    if view == "report" {
        for (name, label) in [
            ("a_version", "A: version"),
            ("b_version", "B: version"),
            ("a_from", "A: from"),
            ("a_until", "A: until"),
            ("b_from", "B: from"),
            ("b_until", "B: until"),
        ] {
            form.push(Field {
                name,
                label,
                value: get(&p, name).unwrap_or("").to_string(),
            });
        }
    }
    let qs = carry(&p);
    let full_qs = req.query_string();
    let page = ViewPage {
        title: "Monitor",
        nav_monitor: true,
        scripts: &["common.js"],
        page_config: json_for_html(&json!({"page": "monitor", "timezone": state.settings.timezone}))?,
        heading: format!("Monitor · {label}"),
        subtitle: format!("{} – {}", fmt_utc(from / 1000), fmt_utc(until / 1000)),
        hint: "Stored per-request records ([monitor] levels ≥ 1) from the Panorama database; latencies until the response head.".into(),
        tabs: tabs(&view, &qs),
        form,
        json_href: if full_qs.is_empty() {
            format!("/api/monitor/{view}")
        } else {
            format!("/api/monitor/{view}?{}", escape_query(full_qs))
        },
        panels: panels_for(&view, rows),
    };
    Ok(super::panorama::html_response(
        StatusCode::OK,
        state.templates.render("monitor_view", &page)?,
    ))
}

/// Keeps a query string as given but re-encodes anything outside the safe set (the link is
/// HTML-escaped by the template as well).
fn escape_query(qs: &str) -> String {
    qs.chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "&=.-_~%+".contains(ch) {
                ch.to_string()
            } else {
                query_value(&ch.to_string())
            }
        })
        .collect()
}

/// `GET /monitor/outlier/{id}` (page) and `GET /api/monitor/outlier/{id}` (JSON).
pub async fn outlier(
    req: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<WebState>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let found = load_outliers(&state, Some(id), 1).await?;
    let Some((id, o)) = found.into_iter().next() else {
        return Err(WebError::NotFound(format!("no outlier {id}")).into());
    };
    if req.path().starts_with("/api/") {
        return Ok(HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(outlier_json(id, &o)));
    }
    let r = &o.request;
    let b = o.breakdown;
    let parts = [
        ("redis", b.redis_us),
        ("sql", b.sql_us),
        ("graphite", b.graphite_us),
        ("template", b.template_us),
        ("other", b.other_us(r.duration_us)),
    ];
    let total = r.duration_us.max(1) as f64;
    let panels = vec![
        Panel {
            title: "Request".into(),
            headers: heads(&["field", "value"]),
            rows: vec![
                vec![c("time"), c(fmt_utc(r.time_ms / 1000))],
                vec![c("route"), mono(route_key(r))],
                vec![c("status"), c(r.status.to_string())],
                vec![c("duration"), c(f_ms(r.duration_us as f64 / 1000.0))],
                vec![
                    c("route mean then"),
                    c(f_ms(o.route_mean_us as f64 / 1000.0)),
                ],
                vec![c("version"), mono(r.version.clone())],
                vec![c("client IP"), mono(r.ip.clone())],
                vec![c("user"), mono(r.user.clone())],
                vec![c("query"), mono(o.query.clone())],
                vec![c("process CPU"), c(format!("{:.1} %", o.cpu_percent))],
                vec![
                    c("process RSS"),
                    c(format!("{:.1} MiB", o.rss_bytes as f64 / 1048576.0)),
                ],
            ],
            ..Default::default()
        },
        Panel {
            title: "Where the time went".into(),
            note: format!("slowest part: {}", b.dominant(r.duration_us)),
            headers: heads(&["part", "#time", "#share"]),
            rows: parts
                .iter()
                .map(|(k, us)| {
                    vec![
                        c(*k),
                        n(f_ms(*us as f64 / 1000.0)),
                        n(pct(*us as f64 / total)),
                    ]
                })
                .collect(),
            ..Default::default()
        },
        Panel {
            title: "Headers".into(),
            note: "secrets redacted".into(),
            pre: o.headers.clone(),
            empty: "",
            ..Default::default()
        },
    ];
    let page = ViewPage {
        title: "Monitor",
        nav_monitor: true,
        scripts: &["common.js"],
        page_config: json_for_html(
            &json!({"page": "monitor", "timezone": state.settings.timezone}),
        )?,
        heading: format!("Outlier #{id}"),
        subtitle: format!("{} at {}", route_key(r), iso_utc(r.time_ms / 1000)),
        hint: String::new(),
        tabs: tabs("outliers", ""),
        form: Vec::new(),
        json_href: format!("/api/monitor/outlier/{id}"),
        panels,
    };
    Ok(super::panorama::html_response(
        StatusCode::OK,
        state.templates.render("monitor_view", &page)?,
    ))
}

/// `GET /monitor/export?since=EPOCH[&limit=N]`: records with `time >= since` as JSON lines
/// (`route`, `method`, `status`, `duration_ms`, `time`, `version`, `ip`, `user`, and
/// `group` when set), oldest first, at most `limit` (default and cap 100,000; continue from
/// the last `time` seen). Bearer token only (see the module docs).
pub async fn export(
    req: HttpRequest,
    state: web::Data<WebState>,
    monitor: Option<web::Data<Monitor>>,
) -> Result<HttpResponse, WebError> {
    let token = monitor
        .as_ref()
        .and_then(|m| m.settings())
        .map(|s| s.export_token.clone())
        .unwrap_or_default();
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .unwrap_or(b"");
    // No token configured: nobody gets in (the empty string never matches).
    if token.is_empty() | !super::auth::ct_eq(given, token.as_bytes()) {
        crate::telemetry::metrics::HTTP_AUTH_FAILURES.inc();
        return Err(WebError::Forbidden(
            "export needs Authorization: Bearer <[monitor] export_token>".into(),
        ));
    }
    let p = params(&req)?;
    let since = epoch_param(&p, "since")?
        .ok_or_else(|| WebError::BadRequest("since: epoch seconds required".into()))?;
    let limit = match get(&p, "limit") {
        None => 100_000,
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|l| (1..=100_000).contains(l))
            .ok_or_else(|| WebError::BadRequest(format!("limit: 1 to 100000, got {v:?}")))?,
    };
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let (t, target) = (pool.op_timeout(), pool.target().to_string());
    let rows = super::panorama::db_within(t, target, move || {
        q::requests(&pool, since, i64::MAX, limit)
    })
    .await
    .map_err(|err| WebError::db_failed("monitor export", &err))?;
    let mut body = String::with_capacity(rows.len() * 160);
    for r in rows {
        let mut line = json!({
            "route": r.route, "method": r.method, "status": r.status,
            "duration_ms": r.duration_us as f64 / 1000.0,
            "time": r.time_ms as f64 / 1000.0,
            "version": r.version, "ip": r.ip, "user": r.user,
        });
        if let (Some(g), Some(o)) = (&r.group, line.as_object_mut()) {
            o.insert("group".into(), json!(g));
        }
        body.push_str(&line.to_string());
        body.push('\n');
    }
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .insert_header(("Cache-Control", "no-store"))
        .body(body))
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
    fn windows() {
        let now = 1_800_000_000_000;
        assert_eq!(
            window(&p(&[]), now).unwrap(),
            (now + UNTIL_SLACK_MS - 7 * DAY_MS, now + UNTIL_SLACK_MS)
        );
        assert_eq!(
            window(&p(&[("from", "100"), ("until", "200")]), now).unwrap(),
            (100_000, 200_000)
        );
        assert!(window(&p(&[("days", "0")]), now).is_err());
        assert!(window(&p(&[("from", "x")]), now).is_err());
        assert!(window(&p(&[("from", "300"), ("until", "200")]), now).is_err());
    }

    #[test]
    fn svgs_escape_labels() {
        let b = crate::monitor::stats::box_summary(&[1.0, 2.0, 3.0]).unwrap();
        let svg = boxes_svg(&[report::VersionBox {
            version: "<script>".into(),
            first_ms: 0,
            summary: b,
            error_rate: 0.0,
        }]);
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert_eq!(escape_query("a=1&b=<x>"), "a=1&b=%3Cx%3E");
    }
}
