//! The Ionosphere routes: train a features profile on a recorded anomaly, list profiles and
//! matches, enable/disable profiles, and the Ionosphere page.
//!
//! * `POST /api/ionosphere/train` — JSON `{"anomaly_id": N, "label": "...", "learn": false}`
//!   → 201 `{"fp_id", "metric", "features_count", "features_sum", "full_duration"}` (200 with
//!   the same body when the anomaly was already trained on: idempotent); 404 no such anomaly;
//!   409 its series is no longer kept (`[ionosphere] keep_training_secs`); 422 the series is
//!   too short (spec §3.4 step 2).
//!   `"learn": true` is refused (422) unless the metric is in a learning namespace
//!   (`[[ionosphere.learn]]`); training a metric of such a namespace writes the namespace's
//!   learn settings into its `metrics` row.
//! * `POST /api/ionosphere/enabled` — JSON `{"fp_id": N, "enabled": bool}`; disabling also
//!   disables every profile learnt from it.
//! * `POST /api/ionosphere/layers` — JSON `{"fp_id": N, "label": "...", "d": {"condition",
//!   "boundary"}, "d1": {"condition", "boundary", "times_in_row"}, "e": {"condition",
//!   "boundary", "times_in_row"}}` (`d1` optional) → 201 `{"layers_id", "fp_id"}`: a layers
//!   definition for the profile (spec §3.6).
//! * `GET /api/ionosphere/profiles?metric=NAME`, `GET /api/ionosphere/matches?metric=NAME`.
//! * `GET /ionosphere?metric=NAME` — the page.
//!
//! Writes take a JSON body only (`Content-Type: application/json`), which a cross-site HTML
//! form cannot send, and are refused when the browser says the request is cross-site
//! (`Origin`, `Sec-Fetch-Site`). Every query runs through `db::ionosphere` inside
//! `web::block`, bounded by `[panorama] db_timeout_secs`. After a change the profile cache
//! version ([`crate::ionosphere::cache`]) is bumped so the matcher reloads the metric.

use std::sync::Mutex;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use log::{info, warn};
use serde::{Deserialize, Serialize};

use super::api::{param, params};
use super::panorama::{db_within, html_response};
use super::{PageError, WebError, WebState};
use crate::db::ionosphere as q;
use crate::db::DbError;
use crate::ionosphere::training;
use crate::ionosphere::{cache, learn, matching};
use crate::telemetry::metrics as m;

/// One training at a time in this process, so two clicks cannot create two profiles.
static TRAINING: Mutex<()> = Mutex::new(());

/// `POST /api/ionosphere/train` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// `anomalies.id`.
    pub anomaly_id: i64,
    /// Optional label.
    #[serde(default)]
    pub label: Option<String>,
    /// Skyline's LEARN choice.
    #[serde(default)]
    pub learn: bool,
}

/// The created (or existing) profile.
#[derive(Debug, Serialize, PartialEq)]
pub struct TrainResponse {
    /// The profile id.
    pub fp_id: i32,
    /// Base name.
    pub metric: String,
    /// Features computed.
    pub features_count: i32,
    /// Σ of all features.
    pub features_sum: f64,
    /// Seconds the profile covers.
    pub full_duration: i64,
}

/// `POST /api/ionosphere/enabled` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnableRequest {
    /// The profile.
    pub fp_id: i32,
    /// Enable or disable.
    pub enabled: bool,
}

/// One rule of a `POST /api/ionosphere/layers` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerSpec {
    /// `<`, `>`, `==`, `!=`, `<=` or `>=` (`<` is evaluated as `<=` and `>` as `>=`, as
    /// Skyline does).
    pub condition: String,
    /// The limit.
    pub boundary: f64,
    /// Values in a row (D1, E); ignored for D.
    #[serde(default)]
    pub times_in_row: i32,
}

/// `POST /api/ionosphere/layers` body (spec §3.6: D and E required, D1 optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayersRequest {
    /// The profile the layers belong to.
    pub fp_id: i32,
    /// Optional label.
    #[serde(default)]
    pub label: Option<String>,
    /// D: the last value satisfying it is definitely anomalous.
    pub d: LayerSpec,
    /// D1: none of the last `times_in_row` values may satisfy it.
    #[serde(default)]
    pub d1: Option<LayerSpec>,
    /// E: one of the last `times_in_row` values satisfying it makes the anomaly normal.
    pub e: LayerSpec,
}

const CONDITIONS: [&str; 6] = ["<", ">", "==", "!=", "<=", ">="];

impl LayersRequest {
    /// The `layers_algorithms` rules, or what is wrong with the request.
    pub fn rules(&self) -> Result<Vec<q::LayerRule>, String> {
        let rule = |name: &str, s: &LayerSpec, times_needed: bool| {
            if !CONDITIONS.contains(&s.condition.as_str()) {
                return Err(format!("{name}.condition: one of {}", CONDITIONS.join(" ")));
            }
            if !s.boundary.is_finite() {
                return Err(format!("{name}.boundary: a finite number"));
            }
            if times_needed && !(1..=1440).contains(&s.times_in_row) {
                return Err(format!("{name}.times_in_row: 1 to 1440"));
            }
            Ok(q::LayerRule {
                layer_id: 0,
                layer: name.to_ascii_uppercase(),
                condition: s.condition.clone(),
                boundary: s.boundary.to_string(),
                times_in_row: if times_needed { s.times_in_row } else { 0 },
            })
        };
        let mut rules = vec![rule("d", &self.d, false)?];
        rules.push(match &self.d1 {
            Some(d1) => rule("d1", d1, true)?,
            // Skyline inserts an unused D1 as condition 'none'.
            None => q::LayerRule {
                layer_id: 0,
                layer: "D1".into(),
                condition: "none".into(),
                boundary: "0".into(),
                times_in_row: 0,
            },
        });
        rules.push(rule("e", &self.e, true)?);
        Ok(rules)
    }
}

enum Trained {
    Created(TrainResponse),
    Existing(TrainResponse),
    NoAnomaly,
    NotTrainable(String),
    Expired(String),
    TooShort(String),
}

/// True when the browser says the request comes from another site.
fn cross_site(req: &HttpRequest) -> bool {
    let host = req.connection_info().host().to_string();
    let origin_bad = req.headers().get(header::ORIGIN).is_some_and(|o| {
        let o = o.to_str().unwrap_or("");
        o != format!("http://{host}") && o != format!("https://{host}")
    });
    let site_bad = req
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|s| !matches!(s.to_str().unwrap_or(""), "same-origin" | "none"));
    origin_bad || site_bad
}

/// Parses a state-changing request's JSON body, refusing anything a cross-site form could
/// send.
fn json_body<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    body: &[u8],
) -> Result<T, WebError> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(WebError::Forbidden(
            "state changes need a JSON body (Content-Type: application/json)".into(),
        ));
    }
    if cross_site(req) {
        warn!(
            "webapp: cross-site ionosphere request refused from {}",
            req.peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|| "?".into())
        );
        return Err(WebError::Forbidden(
            "cross-site requests are refused".into(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| WebError::BadRequest(format!("invalid JSON body: {e}")))
}

fn db_error(what: &str, err: &DbError) -> WebError {
    WebError::db_failed(what, err)
}

fn train_blocking(
    pool: &crate::db::Pool,
    req: &TrainRequest,
    user: &str,
    state: &WebState,
) -> Result<Trained, DbError> {
    let _one = TRAINING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(a) = q::anomaly_for_training(pool, req.anomaly_id)? else {
        return Ok(Trained::NoAnomaly);
    };
    if !state.trainable(&a.metric) {
        return Ok(Trained::NotTrainable(format!(
            "{} is not covered by an smtp [[alerts]] rule (only smtp-alerted metrics are trained, as in Skyline)",
            a.metric
        )));
    }
    let learns = learn::namespace_for(&state.learn, &a.metric);
    if req.learn && learns.is_none() {
        return Ok(Trained::NotTrainable(format!(
            "{} is in no learning namespace ([[ionosphere.learn]]): train with \"learn\": false",
            a.metric
        )));
    }
    if let Some(ns) = learns {
        q::set_learn_params(pool, a.metric_id, &ns.params())?;
    }
    let Some(td) = a.training else {
        return Ok(Trained::Expired(format!(
            "the series of anomaly {} ({} at {}) is no longer kept; training data is kept for [ionosphere] keep_training_secs",
            req.anomaly_id, a.metric, a.anomaly_timestamp
        )));
    };
    if let Some((fp_id, count, sum)) =
        q::find_profile(pool, a.metric_id, a.anomaly_timestamp, td.full_duration)?
    {
        return Ok(Trained::Existing(TrainResponse {
            fp_id,
            metric: a.metric,
            features_count: count,
            features_sum: sum,
            full_duration: td.full_duration,
        }));
    }
    let profile = match training::profile_of(&td.series, td.full_duration) {
        Ok(p) => p,
        Err(e) => {
            return Ok(Trained::TooShort(format!(
                "cannot train on anomaly {} ({}): {e}",
                req.anomaly_id, a.metric
            )))
        }
    };
    let values: Vec<f64> = td.series.iter().map(|&(_, v)| v).collect();
    let new = q::NewProfile {
        metric_id: a.metric_id,
        full_duration: td.full_duration,
        anomaly_timestamp: a.anomaly_timestamp,
        calc_time: profile.calc_time,
        features_count: i32::try_from(profile.count()).unwrap_or(i32::MAX),
        features_sum: profile.sum(),
        features: profile.stored.clone(),
        minmax: matching::minmax_of(&values),
        series: td.series,
        parent_id: 0,
        generation: 0,
        label: req.label.clone().filter(|l| !l.trim().is_empty()),
        user: user.to_string(),
    };
    let fp_id = q::create_profile(pool, &new)?;
    cache::changed();
    Ok(Trained::Created(TrainResponse {
        fp_id,
        metric: a.metric,
        features_count: new.features_count,
        features_sum: new.features_sum,
        full_duration: new.full_duration,
    }))
}

/// `POST /api/ionosphere/train`.
pub async fn train(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<WebState>,
) -> Result<HttpResponse, WebError> {
    let request: TrainRequest = json_body(&req, &body)?;
    if request
        .label
        .as_ref()
        .is_some_and(|l| l.chars().count() > 255)
    {
        return Err(WebError::BadRequest("label: at most 255 characters".into()));
    }
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let user = state.settings.auth_user.clone();
    let (limit, target) = (pool.op_timeout(), pool.target().to_string());
    let id = request.anomaly_id;
    let st = state.clone();
    let outcome = db_within(limit, target, move || {
        train_blocking(&pool, &request, &user, &st)
    })
    .await
    .map_err(|e| db_error("ionosphere train", &e))?;
    match outcome {
        Trained::Created(r) => {
            m::IONOSPHERE_TRAINED.inc();
            info!(
                "webapp: ionosphere profile {} created for {} from anomaly {id}",
                r.fp_id, r.metric
            );
            Ok(HttpResponse::Created()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(r))
        }
        Trained::Existing(r) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(r)),
        Trained::NoAnomaly => Err(WebError::NotFound(format!("no anomaly {id}"))),
        Trained::NotTrainable(msg) | Trained::TooShort(msg) => Err(WebError::Unprocessable(msg)),
        Trained::Expired(msg) => Err(WebError::Conflict(msg)),
    }
}

/// `POST /api/ionosphere/enabled`.
pub async fn set_enabled(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<WebState>,
) -> Result<HttpResponse, WebError> {
    let request: EnableRequest = json_body(&req, &body)?;
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let (limit, target) = (pool.op_timeout(), pool.target().to_string());
    let (fp_id, enabled) = (request.fp_id, request.enabled);
    let changed = db_within(limit, target, move || {
        match q::set_enabled(&pool, fp_id, enabled) {
            Ok(ids) => Ok(Some(ids)),
            Err(DbError::Query(diesel::result::Error::NotFound)) => Ok(None),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(|e| db_error("ionosphere enable", &e))?
    .ok_or_else(|| WebError::NotFound(format!("no features profile {fp_id}")))?;
    cache::changed();
    info!(
        "webapp: ionosphere profile(s) {changed:?} {}",
        if enabled { "enabled" } else { "disabled" }
    );
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"fp_id": fp_id, "enabled": enabled, "changed": changed})))
}

/// `POST /api/ionosphere/layers`.
pub async fn create_layers(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<WebState>,
) -> Result<HttpResponse, WebError> {
    let request: LayersRequest = json_body(&req, &body)?;
    let rules = request.rules().map_err(WebError::Unprocessable)?;
    let label = request.label.clone().filter(|l| !l.trim().is_empty());
    if label.as_ref().is_some_and(|l| l.chars().count() > 255) {
        return Err(WebError::BadRequest("label: at most 255 characters".into()));
    }
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let (limit, target) = (pool.op_timeout(), pool.target().to_string());
    let fp_id = request.fp_id;
    let created = db_within(limit, target, move || {
        let Some(metric_id) = q::profile_metric_id(&pool, fp_id)? else {
            return Ok(None);
        };
        q::create_layers(&pool, fp_id, metric_id, label.as_deref(), &rules).map(Some)
    })
    .await
    .map_err(|e| db_error("ionosphere layers", &e))?
    .ok_or_else(|| WebError::NotFound(format!("no features profile {fp_id}")))?;
    cache::changed();
    info!("webapp: ionosphere layers {created} created for profile {fp_id}");
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"layers_id": created, "fp_id": fp_id})))
}

fn metric_param(req: &HttpRequest) -> Result<String, WebError> {
    let p = params(req)?;
    param(&p, "metric")
        .map(|m| m.strip_prefix("metrics.").unwrap_or(m).to_string())
        .filter(|m| !m.is_empty())
        .ok_or_else(|| WebError::BadRequest("metric: required".into()))
}

async fn load(
    state: &WebState,
    metric: String,
) -> Result<(Vec<q::ProfileRow>, Vec<q::MatchRow>), WebError> {
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let (limit, target) = (pool.op_timeout(), pool.target().to_string());
    db_within(limit, target, move || {
        let profiles = q::profiles(&pool, &metric)?;
        let ids: Vec<i32> = profiles.iter().map(|p| p.id).collect();
        let matches = q::matches(&pool, &ids)?;
        Ok((profiles, matches))
    })
    .await
    .map_err(|e| db_error("ionosphere profiles", &e))
}

/// `GET /api/ionosphere/profiles?metric=NAME`.
pub async fn profiles(
    req: HttpRequest,
    state: web::Data<WebState>,
) -> Result<HttpResponse, WebError> {
    let metric = metric_param(&req)?;
    let (profiles, _) = load(&state, metric).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "profiles": profiles })))
}

/// `GET /api/ionosphere/matches?metric=NAME`.
pub async fn matches(
    req: HttpRequest,
    state: web::Data<WebState>,
) -> Result<HttpResponse, WebError> {
    let metric = metric_param(&req)?;
    let (profiles, matches) = load(&state, metric).await?;
    let out: Vec<serde_json::Value> = matches
        .iter()
        .map(|m| {
            let metric = profiles
                .iter()
                .find(|p| p.id == m.fp_id)
                .map(|p| p.metric.as_str())
                .unwrap_or("");
            serde_json::json!({
                "id": m.id,
                "fp_id": m.fp_id,
                "metric": metric,
                "metric_timestamp": m.metric_timestamp,
                "method": m.method,
                "sum_common_values": m.sum_common_values,
                "common_features_count": m.common_features_count,
            })
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "matches": out })))
}

/// `GET /api/ionosphere/series?fp_id=N` (a profile's training series) or
/// `?metric=NAME&timestamp=T` (the kept series of that anomaly) → `{"results": [[ts, v], …]}`.
pub async fn series(
    req: HttpRequest,
    state: web::Data<WebState>,
) -> Result<HttpResponse, WebError> {
    let p = params(&req)?;
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let (limit, target) = (pool.op_timeout(), pool.target().to_string());
    let pts = if let Some(fp) = param(&p, "fp_id") {
        let fp: i32 = fp
            .parse()
            .map_err(|_| WebError::BadRequest("fp_id: not an integer".into()))?;
        db_within(limit, target, move || q::profile_series(&pool, fp)).await
    } else {
        let metric = metric_param(&req)?;
        let ts: i64 = param(&p, "timestamp")
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| WebError::BadRequest("timestamp: required (epoch seconds)".into()))?;
        db_within(limit, target, move || {
            q::training_series(&pool, &metric, ts).map(Option::unwrap_or_default)
        })
        .await
    }
    .map_err(|e| db_error("ionosphere series", &e))?;
    if pts.is_empty() {
        return Err(WebError::NotFound(
            "no such series (or no longer kept)".into(),
        ));
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "results": pts })))
}

/// `GET /ionosphere?metric=NAME`: the page (profiles and matches of one metric; without a
/// metric, the Ionosphere-enabled metrics).
pub async fn page(req: HttpRequest, state: web::Data<WebState>) -> Result<HttpResponse, PageError> {
    let p = params(&req)?;
    let metric = param(&p, "metric")
        .map(|m| m.strip_prefix("metrics.").unwrap_or(m).to_string())
        .filter(|m| !m.is_empty());
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let (limit, target) = (pool.op_timeout(), pool.target().to_string());
    let metrics = db_within(limit, target, move || q::enabled_metrics(&pool))
        .await
        .map_err(|e| db_error("ionosphere metrics", &e))?;
    let (profiles, matches) = match &metric {
        Some(m) => load(&state, m.clone()).await?,
        None => (Vec::new(), Vec::new()),
    };
    let ctx = serde_json::json!({
        "title": "Ionosphere",
        "nav_ionosphere": true,
        "scripts": ["common.js", "chart.js", "ionosphere.js"],
        "page_config": super::templates::json_for_html(&serde_json::json!({
            "page": "ionosphere",
            "timezone": state.settings.timezone,
        }))?,
        "metric": metric,
        "metrics": metrics
            .iter()
            .map(|(_, m)| serde_json::json!({"name": m, "q": super::templates::query_value(m)}))
            .collect::<Vec<_>>(),
        "profiles": profiles,
        "matches": matches,
    });
    let html = state.templates.render("ionosphere", &ctx)?;
    Ok(html_response(actix_web::http::StatusCode::OK, html))
}
