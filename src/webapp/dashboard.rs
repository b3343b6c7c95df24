//! The Now view (`/`, `/now`, and `/api/now` which its script polls), plus the operational
//! endpoints: `/health`, `/errors` and `/metrics`.
//!
//! The Now view reads the Analyzer's outputs, `analyzer.current_anomalies` (JSON list of
//! `{metric, timestamp, datapoint, triggered_algorithms, algorithms_run}`, rewritten every
//! run, so the list is never stale) and `analyzer.run_stats`, with one `MGET`. The page and
//! its JSON are rebuilt only when those bytes change ([`NowCache`]). Each card's graph is drawn
//! by `assets/now.js` from `/api?metric=metrics.<name>` (the last `FULL_DURATION` in Redis),
//! with the anomalous point marked; the script polls `/api/now` every `[webapp]
//! refresh_secs` and rebuilds the cards when the version changes, without reloading.
//! The page and the JSON are compressed once per change and served gzipped to clients that
//! accept it (browsers do).
//!
//! Stages: the list merges `analyzer.current_anomalies`, `mirage.current_anomalies` and
//! `boundary.current_anomalies` (same entry shape, each written by its stage every run), each
//! entry with a `stage` field (`analyzer` | `mirage` | `boundary`); `mirage.run_stats` adds
//! Mirage's last run and the metrics it **cleared** (found not anomalous over their days,
//! so never alerted). All five keys are read with the one `MGET`.

use std::sync::Mutex;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use bytes::Bytes;
use log::error;
use serde::{Deserialize, Serialize};

use super::api::{encoded_response, gzip};
use super::error::{PageError, WebError};
use super::panorama::html_response;
use super::templates::{fmt_utc, fmt_value, iso_utc, json_for_html, query_value};
use super::{WebState, Worker};
use crate::analyze::{CURRENT_ANOMALIES_KEY, RUN_STATS_KEY};
use crate::mirage::{
    CURRENT_ANOMALIES_KEY as MIRAGE_CURRENT_KEY, RUN_STATS_KEY as MIRAGE_RUN_STATS_KEY,
};

/// Boundary's current anomalies (written by Boundary every run; same entry shape).
pub const BOUNDARY_CURRENT_KEY: &str = "boundary.current_anomalies";

/// The keys the Now view reads, in `raw` order.
const NOW_KEYS: [&str; 5] = [
    CURRENT_ANOMALIES_KEY,
    RUN_STATS_KEY,
    MIRAGE_CURRENT_KEY,
    MIRAGE_RUN_STATS_KEY,
    BOUNDARY_CURRENT_KEY,
];
type Raw = [Option<Vec<u8>>; 5];
use crate::panorama::{GetStats, PanoramaStats};

/// One current anomaly as the Analyzer writes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CurrentAnomaly {
    /// Base name.
    pub metric: String,
    /// Timestamp of the anomalous (last) point.
    pub timestamp: i64,
    /// Its value.
    pub datapoint: f64,
    /// Algorithms that triggered.
    #[serde(default)]
    pub triggered_algorithms: Vec<String>,
    /// Algorithms run.
    #[serde(default)]
    pub algorithms_run: Vec<String>,
    /// Which stage decided it: `analyzer`, `mirage` or `boundary` (set from the key read).
    #[serde(default)]
    pub stage: String,
    /// The "not anomalous — train" action is offered (set from `WebState::trainable`, so the
    /// cards `now.js` rebuilds from `/api/now` keep the action).
    #[serde(default)]
    pub trainable: bool,
}

/// A metric Mirage cleared in its last run.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ClearedView {
    /// Base name.
    pub metric: String,
    /// The Analyzer's anomaly timestamp.
    pub timestamp: i64,
    /// Its value.
    pub datapoint: f64,
    /// Hours Mirage looked at.
    #[serde(default)]
    pub hours: u64,
    /// `graphite` or `history`.
    #[serde(default)]
    pub source: String,
}

/// `mirage.run_stats`, the fields shown.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct MirageRun {
    /// Epoch seconds of Mirage's last run.
    pub timestamp: i64,
    /// Checks in it.
    pub checks: u64,
    /// Found anomalous.
    pub anomalous: u64,
    /// Found not anomalous.
    pub not_anomalous: u64,
    /// Left to the Analyzer's waterfall alert, by reason.
    pub undecided: Vec<(String, u64)>,
    /// Cleared metrics.
    pub cleared: Vec<ClearedView>,
}
/// `analyzer.run_stats`, the fields shown.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct RunStats {
    /// Members of the unique set.
    pub total_metrics: u64,
    /// Metrics run through the algorithms.
    pub total_analyzed: u64,
    /// Anomalies found.
    pub total_anomalies: u64,
    /// Exception → count.
    pub exception_stats: Vec<(String, u64)>,
    /// Seconds the run took.
    pub run_time: f64,
    /// Epoch seconds at the start of the run.
    pub timestamp: i64,
}

#[derive(Serialize)]
struct NowJson<'a> {
    version: &'a str,
    analyzer_every_secs: u64,
    full_duration_secs: u64,
    warning: Option<&'a str>,
    run: Option<&'a RunStats>,
    anomalies: &'a [CurrentAnomaly],
    mirage: Option<&'a MirageRun>,
}

#[derive(Serialize)]
struct Card {
    metric: String,
    metric_q: String,
    series_q: String,
    rebrow_k: String,
    datapoint: f64,
    datapoint_fmt: String,
    ts: i64,
    ts_iso: String,
    ts_utc: String,
    triggered: Vec<String>,
    triggered_count: usize,
    run_count: usize,
    stage: String,
    trainable: bool,
}

#[derive(Serialize)]
struct ClearedCard {
    metric: String,
    metric_q: String,
    datapoint_fmt: String,
    ts: i64,
    ts_iso: String,
    ts_utc: String,
    hours: u64,
    source: String,
}

#[derive(Serialize)]
struct MirageRunView {
    ts: i64,
    ts_iso: String,
    ts_utc: String,
    checks: u64,
    anomalous: u64,
    not_anomalous: u64,
    undecided: Vec<(String, u64)>,
    cleared: Vec<ClearedCard>,
}

#[derive(Serialize)]
struct RunView {
    ts: i64,
    ts_iso: String,
    ts_utc: String,
    run_time: String,
    total_metrics: u64,
    total_analyzed: u64,
    total_anomalies: u64,
    exceptions: Vec<(String, u64)>,
}

#[derive(Serialize)]
struct PageConfig<'a> {
    page: &'static str,
    timezone: &'a str,
    refresh_secs: u64,
    version: &'a str,
    analyzer_every_secs: u64,
    full_duration_secs: u64,
}

#[derive(Serialize)]
struct NowView<'a> {
    title: &'static str,
    nav_now: bool,
    scripts: &'static [&'static str],
    page_config: String,
    cards: Vec<Card>,
    count: usize,
    run: Option<RunView>,
    warning: Option<&'a str>,
    analyzer_off: bool,
    mirage: Option<MirageRunView>,
}

struct NowEntry {
    raw: Raw,
    html: Bytes,
    html_gz: Option<Bytes>,
    json: Bytes,
    json_gz: Option<Bytes>,
}

/// A Now answer: plain and gzipped.
#[derive(Clone)]
struct Encoded {
    plain: Bytes,
    gz: Option<Bytes>,
}

/// The last Now page and `/api/now` answer, with the Redis bytes they were built from.
#[derive(Default)]
pub struct NowCache {
    inner: Mutex<Option<NowEntry>>,
}

/// A short, stable fingerprint of the inputs (FNV-1a), the `version` the page polls.
fn fingerprint(raw: &[Option<Vec<u8>>]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in raw.iter().enumerate() {
        for b in part.iter().flatten().chain(std::iter::once(&(i as u8))) {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The metric's Redis key, base64url (rebrow's `k` parameter).
pub fn rebrow_k(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

fn build(state: &WebState, raw: Raw) -> Result<NowEntry, WebError> {
    let version = fingerprint(&raw);
    let mut warning = None;
    let mut anomalies: Vec<CurrentAnomaly> = Vec::new();
    for (i, stage, key) in [
        (0, "analyzer", CURRENT_ANOMALIES_KEY),
        (2, "mirage", MIRAGE_CURRENT_KEY),
        (4, "boundary", BOUNDARY_CURRENT_KEY),
    ] {
        let Some(bytes) = &raw[i] else { continue };
        match serde_json::from_slice::<Vec<CurrentAnomaly>>(bytes) {
            Ok(list) => anomalies.extend(list.into_iter().map(|mut a| {
                a.stage = stage.to_string();
                a.trainable = state.trainable(&a.metric);
                a
            })),
            Err(err) => {
                error!("webapp: redis {key} is not the {stage}'s JSON: {err}");
                warning = Some("a current anomalies list in Redis could not be read; see /errors");
            }
        }
    }
    anomalies.retain(|a| a.datapoint.is_finite());
    anomalies.sort_by(|a, b| a.metric.cmp(&b.metric).then(a.stage.cmp(&b.stage)));
    let mirage: Option<MirageRun> = raw[3]
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok());
    let run: Option<RunStats> = raw[1]
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok());
    let json = serde_json::to_vec(&NowJson {
        version: &version,
        analyzer_every_secs: state.analyzer_every_secs,
        full_duration_secs: state.full_duration_secs,
        warning,
        run: run.as_ref(),
        anomalies: &anomalies,
        mirage: mirage.as_ref(),
    })
    .map_err(|err| WebError::internal("now JSON", &err))?;
    let cards = anomalies
        .iter()
        .map(|a| {
            let key = crate::store::keys::metric_key(&a.metric);
            Card {
                metric_q: query_value(&a.metric),
                series_q: query_value(&key),
                rebrow_k: rebrow_k(&key),
                metric: a.metric.clone(),
                datapoint: a.datapoint,
                datapoint_fmt: fmt_value(a.datapoint),
                ts: a.timestamp,
                ts_iso: iso_utc(a.timestamp),
                ts_utc: fmt_utc(a.timestamp),
                triggered_count: a.triggered_algorithms.len(),
                triggered: a.triggered_algorithms.clone(),
                run_count: a.algorithms_run.len(),
                stage: a.stage.clone(),
                trainable: a.trainable,
            }
        })
        .collect::<Vec<_>>();
    let view = NowView {
        title: "Now",
        nav_now: true,
        scripts: &["common.js", "chart.js", "now.js", "train.js"],
        page_config: json_for_html(&PageConfig {
            page: "now",
            timezone: &state.settings.timezone,
            refresh_secs: state.settings.refresh_secs,
            version: &version,
            analyzer_every_secs: state.analyzer_every_secs,
            full_duration_secs: state.full_duration_secs,
        })?,
        count: cards.len(),
        cards,
        run: run.map(|r| RunView {
            ts: r.timestamp,
            ts_iso: iso_utc(r.timestamp),
            ts_utc: fmt_utc(r.timestamp),
            run_time: format!("{:.2}s", r.run_time),
            total_metrics: r.total_metrics,
            total_analyzed: r.total_analyzed,
            total_anomalies: r.total_anomalies,
            exceptions: r.exception_stats.into_iter().filter(|e| e.1 > 0).collect(),
        }),
        warning,
        analyzer_off: state.analyzer_every_secs == 0,
        mirage: mirage.map(|r| MirageRunView {
            ts: r.timestamp,
            ts_iso: iso_utc(r.timestamp),
            ts_utc: fmt_utc(r.timestamp),
            checks: r.checks,
            anomalous: r.anomalous,
            not_anomalous: r.not_anomalous,
            undecided: r.undecided,
            cleared: r
                .cleared
                .into_iter()
                .map(|c| ClearedCard {
                    metric_q: query_value(&c.metric),
                    datapoint_fmt: fmt_value(c.datapoint),
                    ts: c.timestamp,
                    ts_iso: iso_utc(c.timestamp),
                    ts_utc: fmt_utc(c.timestamp),
                    metric: c.metric,
                    hours: c.hours,
                    source: c.source,
                })
                .collect(),
        }),
    };
    let html = state.templates.render("now", &view)?;
    // Built once per analysis run, served many times: compress now, at the default level.
    Ok(NowEntry {
        raw,
        html_gz: gzip(html.as_bytes(), 6),
        html: Bytes::from(html),
        json_gz: gzip(&json, 6),
        json: Bytes::from(json),
    })
}

/// The Now page and JSON for the current Redis contents: `(html, json)`.
async fn current(state: &WebState, worker: &Worker) -> Result<(Encoded, Encoded), WebError> {
    let mut conn = worker.redis.clone();
    let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
        .arg(&NOW_KEYS[..])
        .query_async(&mut conn)
        .await
        .map_err(|err| WebError::redis_failed(&format!("MGET {}", NOW_KEYS.join(" ")), &err))?;
    let mut it = values.into_iter();
    let raw: Raw = std::array::from_fn(|_| it.next().flatten());
    let pick = |e: &NowEntry| {
        (
            Encoded {
                plain: e.html.clone(),
                gz: e.html_gz.clone(),
            },
            Encoded {
                plain: e.json.clone(),
                gz: e.json_gz.clone(),
            },
        )
    };
    if let Ok(guard) = state.now_cache.inner.lock() {
        if let Some(e) = guard.as_ref().filter(|e| e.raw == raw) {
            return Ok(pick(e));
        }
    }
    let entry = build(state, raw)?;
    let out = pick(&entry);
    if let Ok(mut guard) = state.now_cache.inner.lock() {
        *guard = Some(entry);
    }
    Ok(out)
}

/// `GET /` and `/now`.
pub async fn now(
    req: HttpRequest,
    state: web::Data<WebState>,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, PageError> {
    let (html, _) = current(&state, &worker).await?;
    Ok(encoded_response(
        &req,
        "text/html; charset=utf-8",
        html.plain,
        html.gz,
    ))
}

/// `GET /api/now`.
pub async fn now_json(
    req: HttpRequest,
    state: web::Data<WebState>,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, WebError> {
    let (_, json) = current(&state, &worker).await?;
    Ok(encoded_response(
        &req,
        "application/json",
        json.plain,
        json.gz,
    ))
}

/// `GET /health` (no auth, no details): 200 `{"status":"ok"}` when Redis answers, else 503.
pub async fn health(worker: web::Data<Worker>) -> HttpResponse {
    let mut conn = worker.redis.clone();
    let ping = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("PING").query_async::<String>(&mut conn),
    )
    .await;
    match ping {
        Ok(Ok(_)) => HttpResponse::Ok()
            .content_type("application/json")
            .insert_header(("Cache-Control", "no-store"))
            .body(r#"{"status":"ok"}"#),
        _ => HttpResponse::ServiceUnavailable()
            .content_type("application/json")
            .insert_header(("Cache-Control", "no-store"))
            .body(r#"{"status":"unavailable"}"#),
    }
}

#[derive(Serialize)]
struct ErrorLine {
    time: String,
    text: String,
}

#[derive(Serialize)]
struct ErrorsView {
    title: &'static str,
    nav_errors: bool,
    scripts: &'static [&'static str],
    page_config: String,
    lines: Vec<ErrorLine>,
    count: usize,
    capacity: usize,
}

/// `GET /errors`: the last ERROR log lines, newest first.
pub async fn errors(state: web::Data<WebState>) -> Result<HttpResponse, PageError> {
    let lines: Vec<ErrorLine> = crate::telemetry::recent_errors(crate::telemetry::ERROR_RING)
        .into_iter()
        .map(|l| match l.split_once(' ') {
            Some((t, rest)) if t.len() >= 20 && t.as_bytes()[4] == b'-' => ErrorLine {
                time: t.to_string(),
                text: rest.to_string(),
            },
            _ => ErrorLine {
                time: String::new(),
                text: l,
            },
        })
        .collect();
    let view = ErrorsView {
        title: "Errors",
        nav_errors: true,
        scripts: &["common.js"],
        page_config: json_for_html(&serde_json::json!({
            "page": "errors",
            "timezone": state.settings.timezone,
        }))?,
        count: lines.len(),
        capacity: crate::telemetry::ERROR_RING,
        lines,
    };
    Ok(html_response(
        StatusCode::OK,
        state.templates.render("errors", &view)?,
    ))
}

fn panorama_metrics(s: &PanoramaStats) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let counters: [(&str, u64, &str); 11] = [
        ("received", s.received, "Anomalies Panorama received."),
        (
            "inserted",
            s.inserted,
            "Anomalies inserted into the database.",
        ),
        (
            "replayed",
            s.replayed,
            "Of inserted, those that went through the spool.",
        ),
        (
            "dedup_skipped",
            s.dedup_skipped,
            "Anomalies dropped by the expiry window.",
        ),
        (
            "too_old",
            s.too_old,
            "Anomalies dropped as older than check_max_age_secs.",
        ),
        ("invalid", s.invalid, "Anomalies dropped as unusable."),
        ("spooled", s.spooled, "Anomalies written to the spool."),
        (
            "replay_duplicates",
            s.replay_duplicates,
            "Spooled anomalies found already recorded.",
        ),
        (
            "insert_failures",
            s.insert_failures,
            "Failed insert attempts.",
        ),
        ("rejected", s.rejected, "Anomalies moved to rejected.jsonl."),
        ("lost", s.lost, "Anomalies neither inserted nor spooled."),
    ];
    // Families the global registry already declares (spool depth, insert failures) are
    // skipped here: a family declared twice makes a real scrape fail.
    for (name, v, help) in counters {
        if crate::telemetry::metrics::is_declared(&format!("skyline_panorama_{name}_total")) {
            continue;
        }
        let _ = writeln!(
            out,
            "# HELP skyline_panorama_{name}_total {help}\n# TYPE skyline_panorama_{name}_total counter\nskyline_panorama_{name}_total {v}"
        );
    }
    let gauges: [(&str, u64, &str); 3] = [
        (
            "spool_depth",
            s.spool_depth,
            "Anomalies waiting in the spool.",
        ),
        ("dedup_windows", s.dedup_windows, "Open dedup windows."),
        (
            "db_available",
            u64::from(s.db_available),
            "1 when the last database operation succeeded.",
        ),
    ];
    for (name, v, help) in gauges {
        if crate::telemetry::metrics::is_declared(&format!("skyline_panorama_{name}")) {
            continue;
        }
        let _ = writeln!(
            out,
            "# HELP skyline_panorama_{name} {help}\n# TYPE skyline_panorama_{name} gauge\nskyline_panorama_{name} {v}"
        );
    }
    out
}

/// Escapes a Prometheus label value (`\\`, `\"`, newline).
fn label_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The current anomalies as the bounded `skyline_anomaly` gauge family: one series per
/// current (metric, stage), value 1, at most `max` of them (sorted by metric; the rest counted in
/// `skyline_anomaly_gauge_omitted_total`). `None` (Redis unreachable) gives
/// `skyline_anomaly_gauge_up 0` and no series, so an alert rule can tell "none" from "unknown".
pub fn anomaly_metrics(current: Option<&[CurrentAnomaly]>, max: usize) -> String {
    use std::fmt::Write as _;
    let mut out = String::from(
        "# HELP skyline_anomaly 1 for each metric currently anomalous (the Now list), by stage.\n# TYPE skyline_anomaly gauge\n",
    );
    let mut shown = 0usize;
    let mut total = 0usize;
    if let Some(list) = current {
        let mut list: Vec<&CurrentAnomaly> = list.iter().collect();
        list.sort_by(|a, b| a.metric.cmp(&b.metric).then(a.stage.cmp(&b.stage)));
        list.dedup_by(|a, b| a.metric == b.metric && a.stage == b.stage);
        total = list.len();
        for a in list.iter().take(max) {
            let _ = writeln!(
                out,
                "skyline_anomaly{{metric=\"{}\",stage=\"{}\"}} 1",
                label_value(&a.metric),
                label_value(&a.stage)
            );
            shown += 1;
        }
    }
    let omitted = total - shown;
    crate::telemetry::metrics::ANOMALY_GAUGE_OMITTED.add(omitted as u64);
    let _ = write!(
        out,
        "# HELP skyline_anomaly_current Current anomalies (all stages), including any left out of skyline_anomaly.\n# TYPE skyline_anomaly_current gauge\nskyline_anomaly_current {total}\n\
         # HELP skyline_anomaly_gauge_up 1 when the current anomalies could be read from Redis for this answer.\n# TYPE skyline_anomaly_gauge_up gauge\nskyline_anomaly_gauge_up {}\n",
        u8::from(current.is_some())
    );
    out
}

/// The merged current anomalies of the three stages (one `MGET`), `None` if Redis fails.
async fn current_anomalies(worker: &Worker) -> Option<Vec<CurrentAnomaly>> {
    let keys = [
        CURRENT_ANOMALIES_KEY,
        MIRAGE_CURRENT_KEY,
        BOUNDARY_CURRENT_KEY,
    ];
    let mut conn = worker.redis.clone();
    let got = tokio::time::timeout(
        Duration::from_secs(2),
        redis::cmd("MGET")
            .arg(&keys[..])
            .query_async::<Vec<Option<Vec<u8>>>>(&mut conn),
    )
    .await;
    let values = match got {
        Ok(Ok(v)) => v,
        Ok(Err(err)) => {
            error!("webapp: /metrics: redis MGET {}: {err}", keys.join(" "));
            return None;
        }
        Err(_) => {
            error!("webapp: /metrics: redis MGET {} timed out", keys.join(" "));
            return None;
        }
    };
    let mut out = Vec::new();
    for ((value, key), stage) in values
        .into_iter()
        .zip(keys)
        .zip(["analyzer", "mirage", "boundary"])
    {
        let Some(bytes) = value else { continue };
        match serde_json::from_slice::<Vec<CurrentAnomaly>>(&bytes) {
            Ok(list) => out.extend(list.into_iter().map(|mut a| {
                a.stage = stage.to_string();
                a
            })),
            Err(err) => error!("webapp: /metrics: redis {key} is not the {stage}'s JSON: {err}"),
        }
    }
    Some(out)
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(state: web::Data<WebState>, worker: web::Data<Worker>) -> HttpResponse {
    let mut text = crate::telemetry::metrics::render_prometheus();
    if let Some(p) = &state.panorama {
        match tokio::time::timeout(Duration::from_secs(2), p.send(GetStats)).await {
            Ok(Ok(stats)) => text.push_str(&panorama_metrics(&stats)),
            _ => text.push_str("# panorama stats unavailable (actor busy or stopped)\n"),
        }
    }
    let current = current_anomalies(&worker).await;
    text.push_str(&anomaly_metrics(
        current.as_deref(),
        state.settings.anomaly_gauge_max,
    ));
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_differ() {
        let a = fingerprint(&[Some(b"[]".to_vec()), None, None, None, None]);
        let b = fingerprint(&[None, Some(b"[]".to_vec()), None, None, None]);
        let c = fingerprint(&[Some(b"[]".to_vec()), None, None, None, None]);
        assert_ne!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn anomaly_gauge_is_bounded_escaped_and_valid() {
        let a = |m: &str, stage: &str| CurrentAnomaly {
            metric: m.into(),
            timestamp: 1,
            datapoint: 2.0,
            triggered_algorithms: vec![],
            algorithms_run: vec![],
            stage: stage.into(),
            trainable: false,
        };
        let list = vec![
            a("b.metric", "analyzer"),
            a(r#"up{job="x\y"}"#, "analyzer"),
            a("a.metric", "mirage"),
            a("a.metric", "analyzer"),
        ];
        let before = crate::telemetry::metrics::ANOMALY_GAUGE_OMITTED.get();
        let t = anomaly_metrics(Some(&list), 3);
        assert!(
            t.contains("skyline_anomaly{metric=\"a.metric\",stage=\"analyzer\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("skyline_anomaly{metric=\"a.metric\",stage=\"mirage\"} 1\n"),
            "{t}"
        );
        assert!(
            t.contains("skyline_anomaly{metric=\"b.metric\",stage=\"analyzer\"} 1\n"),
            "{t}"
        );
        // The fourth (sorted last) is left out and counted.
        assert!(!t.contains("up{"), "{t}");
        assert!(t.contains("skyline_anomaly_current 4\n"), "{t}");
        assert!(t.contains("skyline_anomaly_gauge_up 1\n"), "{t}");
        assert!(crate::telemetry::metrics::ANOMALY_GAUGE_OMITTED.get() > before);
        let t = anomaly_metrics(Some(&list), 10);
        assert!(
            t.contains(r#"skyline_anomaly{metric="up{job=\"x\\y\"}",stage="analyzer"} 1"#),
            "{t}"
        );
        let whole = crate::telemetry::metrics::render_prometheus() + &t;
        assert_eq!(crate::telemetry::metrics::check_exposition(&whole), Ok(()));
        let down = anomaly_metrics(None, 10);
        assert!(down.contains("skyline_anomaly_gauge_up 0\n"), "{down}");
        assert!(down.contains("skyline_anomaly_current 0\n"), "{down}");
    }

    #[test]
    fn panorama_exposition() {
        let t = panorama_metrics(&PanoramaStats {
            inserted: 3,
            db_available: true,
            ..Default::default()
        });
        assert!(t.contains("skyline_panorama_inserted_total 3"));
        assert!(t.contains("skyline_panorama_db_available 1"));
        // Declared once, by the global registry, not again here.
        assert!(!t.contains("skyline_panorama_spool_depth"));
        assert!(!t.contains("skyline_panorama_insert_failures_total"));
        let whole = crate::telemetry::metrics::render_prometheus() + &t;
        assert_eq!(crate::telemetry::metrics::check_exposition(&whole), Ok(()));
    }
}
