//! The Prometheus remote_write handler: `POST /flux/prometheus/write` (Skyline's path) and
//! `POST /api/v1/write` (the Prometheus convention), both registered by [`super::configure`].
//!
//! Order of checks, so that each status means what Prometheus' retry logic expects (it retries
//! 5xx and gives up on 4xx): credentials first, before any byte of the body is read — a `[flux]
//! api_keys` key in the `key` header (its prefix applies: `<prefix>.name{…}`), or the webapp's
//! basic-auth login (Prometheus' `basic_auth`) — else 401; a full queue sheds the request at
//! once (503 + `Retry-After`: a retry helps); the snappy body is read up to
//! `prometheus_max_body_bytes` (413) and decompressed only when its declared length is within
//! `prometheus_max_decompressed_bytes` (400); the whole request is validated and every bad series
//! named (400, nothing stored); a request that would take the distinct series written within
//! `prometheus_series_idle_secs` over `prometheus_max_series` is refused (400, counted); the
//! datapoints are reserved in the flux queue whole (503 when full) and handed to the
//! [`Forwarder`](super::Forwarder) like any flux batch; 204.
//!
//! Labelled series are never sent to carbon (Graphite cannot name them); they are stored by our
//! metric actors (`feed_horizon`) under `metrics.<canonical name>`, so with `feed_horizon = false`
//! the endpoint answers 422 saying so.
//!
//! Backpressure: as the other flux handlers, the flux queue gauge only (503 + `Retry-After`).

use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;

use super::error::FluxError;
use super::handlers::{self, FluxState};
use super::prometheus::{self, Limits};
use super::validate::{apply_prefix, Problem};
use crate::telemetry::metrics as m;

fn header<'r>(req: &'r HttpRequest, name: &str) -> Option<&'r str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The namespace prefix of the caller: a valid `key` header, else the webapp's login.
fn authenticate<'s>(req: &HttpRequest, state: &'s FluxState) -> Result<&'s str, FluxError> {
    if handlers::header_key(req).is_some() {
        return handlers::authenticate(req, state, None);
    }
    let authorization = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    match &state.basic_auth {
        Some(check) if authorization.is_some() => {
            if check(authorization) {
                Ok("")
            } else {
                Err(handlers::refuse_key(req, FluxError::InvalidKey))
            }
        }
        _ => Err(handlers::refuse_key(req, FluxError::MissingKey)),
    }
}

/// Reads the (compressed) body up to `limit` bytes.
async fn read_compressed(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, FluxError> {
    let too_large = || {
        m::FLUX_REJECTED_TOO_LARGE.inc();
        FluxError::TooLarge { limit }
    };
    if let Some(enc) = header(req, "content-encoding") {
        if !enc.eq_ignore_ascii_case("snappy") {
            return Err(FluxError::invalid(Problem::request(
                "Content-Encoding",
                format!(
                    "remote_write bodies are snappy-compressed (Content-Encoding: snappy), not {:?}",
                    enc.chars().take(40).collect::<String>()
                ),
            )));
        }
    }
    let declared = header(req, "content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut stream = payload.into_inner();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| {
            FluxError::invalid(Problem::request(
                "body",
                format!(
                    "the request body could not be read: {}",
                    crate::telemetry::text::payload_error(&err)
                ),
            ))
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `POST /flux/prometheus/write` and `/api/v1/write`.
pub async fn write(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FluxState>,
) -> Result<HttpResponse, FluxError> {
    let prefix = authenticate(&req, &state)?.to_string();
    let Some(keep_secs) = state.prometheus_keep_secs else {
        return Err(FluxError::NotStored {
            reason: "labelled Prometheus series are stored only in our own Redis, and [flux] feed_horizon is false".into(),
        });
    };
    handlers::shed_if_full(&state)?;
    let s = &state.settings;
    let body = read_compressed(&req, payload, s.prometheus_max_body_bytes).await?;
    let invalid = |p: Problem| handlers::reject(vec![p], 1);
    let raw =
        prometheus::decompress(&body, s.prometheus_max_decompressed_bytes).map_err(invalid)?;
    drop(body);
    let limits = Limits {
        max_name_bytes: s.prometheus_max_name_bytes,
        max_labels: s.prometheus_max_labels,
        max_series_per_request: s.prometheus_max_series_per_request,
        time: state.limits(false),
        keep_secs,
    };
    let mut extra = Vec::with_capacity(2);
    if let Some(t) = header(&req, "x-tenant-id") {
        extra.push(("_tenant_id", t));
    }
    if let Some(t) = header(&req, "x-server-id") {
        extra.push(("_server_id", t));
    }
    // One pass over the bytes: labels are borrowed, one canonical name per series.
    let mut accepted = prometheus::validate_raw(&raw, &extra, &limits).map_err(|r| match r {
        prometheus::RawRefusal::Decode(p) => invalid(p),
        prometheus::RawRefusal::Invalid(problems, total) => handlers::reject(problems, total),
    })?;
    drop(raw);
    m::FLUX_PROMETHEUS_STALE_SKIPPED.add(accepted.stale as u64);
    m::FLUX_PROMETHEUS_NON_FINITE_SKIPPED.add(accepted.non_finite as u64);
    if let Err(over) = state.series.admit(&accepted.series, limits.time.now) {
        m::FLUX_PROMETHEUS_CARDINALITY_REFUSED.inc();
        m::FLUX_REJECTED_INVALID.inc();
        return Err(FluxError::invalid(Problem {
            index: None,
            metric: Some(over.first),
            field: "timeseries".into(),
            message: format!(
                "{} new series would take the series written in the last {} s over {} ([flux] prometheus_max_series; {} known); nothing was accepted",
                over.new_series, s.prometheus_series_idle_secs, s.prometheus_max_series, over.known
            ),
        }));
    }
    m::FLUX_PROMETHEUS_SERIES.set(state.series.len() as i64);
    if !prefix.is_empty() {
        for p in &mut accepted.points {
            p.metric = apply_prefix(&prefix, &p.metric);
        }
    }
    let samples = accepted.points.len() as u64;
    handlers::enqueue(&state, accepted.points, false)?;
    m::FLUX_PROMETHEUS_SAMPLES.add(samples);
    Ok(HttpResponse::NoContent().finish())
}
