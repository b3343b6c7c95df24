//! The flux request handlers: authenticate, read (bounded), validate the whole request, then
//! queue it all or nothing.
//!
//! Order of checks, so that each status means one thing: a `key` header (or `?key=`) is
//! checked first, before any byte of the body is read (401); a compressed body
//! (`Content-Encoding: gzip` or `deflate`) must carry its key there (401 otherwise), so only
//! a valid key ever costs decompression; the body is read up to `max_body_bytes`, counted both
//! as received and as decompressed, decompression streaming into a buffer that stops at the
//! limit (413); it must be a
//! JSON object (400) — but when a valid `key` header came and the queue is already full, 503
//! before reading it (load shedding); the key (header, else query or body) must be one of
//! `[flux] api_keys`
//! (401 — missing or wrong, always); every datapoint is validated and every problem reported
//! (400); the batch is reserved in the queue whole (503 + `Retry-After` when full) and handed to
//! the forwarder; 204.
//!
//! Backpressure: handlers never wait on Redis, carbon or the metric actors; the only shared
//! resource is the [`QueueGauge`](super::forwarder::QueueGauge) bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use actix::Recipient;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use log::warn;

use super::config::FluxSettings;
use super::error::FluxError;
use super::forwarder::{Enqueue, QueueGauge};
use super::validate::{self, FluxPoint, KeyRing, Limits, Problem};
use crate::telemetry::metrics as m;

/// What the handlers share, registered as `web::Data<FluxState>` by `app::start_http`.
pub struct FluxState {
    pub(super) keys: KeyRing,
    pub(super) settings: FluxSettings,
    queue: QueueGauge,
    forwarder: Recipient<Enqueue>,
    /// See [`Limits::stored_back_secs`].
    stored_back_secs: Option<i64>,
    /// remote_write: how far back the metric actors keep a labelled series
    /// (`[horizon] full_duration_secs`); `None` when flux does not feed them (labelled series
    /// would be stored nowhere: 422).
    pub(super) prometheus_keep_secs: Option<i64>,
    /// remote_write: the webapp's basic-auth check, when the webapp runs.
    pub(super) basic_auth: Option<BasicAuth>,
    /// remote_write: recently written series, bounded.
    pub(super) series: super::prometheus::SeriesTracker,
}

/// Checks an `Authorization` header value against the webapp's login (handed in by `app`).
pub type BasicAuth = std::sync::Arc<dyn Fn(Option<&[u8]>) -> bool + Send + Sync>;

impl FluxState {
    /// State for `settings`, queueing into `forwarder` against `queue`.
    pub fn new(settings: &FluxSettings, queue: QueueGauge, forwarder: Recipient<Enqueue>) -> Self {
        FluxState {
            keys: KeyRing::new(&settings.api_keys),
            settings: settings.clone(),
            queue,
            forwarder,
            stored_back_secs: None,
            prometheus_keep_secs: None,
            basic_auth: None,
            series: super::prometheus::SeriesTracker::new(
                settings.prometheus_max_series,
                settings.prometheus_series_idle_secs,
            ),
        }
    }

    /// remote_write: labelled series are stored by the metric actors back to `secs`
    /// (`[horizon] full_duration_secs`); `None` when flux does not feed them.
    pub fn prometheus_stored_back_to(mut self, secs: Option<i64>) -> Self {
        self.prometheus_keep_secs = secs;
        self
    }

    /// remote_write also accepts the webapp's basic-auth login, checked by `check`.
    pub fn with_basic_auth(mut self, check: BasicAuth) -> Self {
        self.basic_auth = Some(check);
        self
    }

    /// When nothing forwards to carbon: the metric actors keep points back to `secs` (0: flux
    /// feeds nothing); older points are refused with 400 instead of acknowledged and dropped.
    pub fn stored_back_to(mut self, secs: Option<i64>) -> Self {
        self.stored_back_secs = secs;
        self
    }

    pub(super) fn limits(&self, backfill: bool) -> Limits {
        Limits {
            now: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            max_age_secs: self.settings.max_age_secs,
            max_future_skew_secs: self.settings.max_future_skew_secs,
            backfill,
            stored_back_secs: self.stored_back_secs,
        }
    }
}

/// Epoch second of the last "refused key" log line (one a minute at most).
static LAST_KEY_LOG: AtomicU64 = AtomicU64::new(0);
/// Refusals since that line.
static KEY_REFUSALS: AtomicU64 = AtomicU64::new(0);

pub(super) fn refuse_key(req: &HttpRequest, err: FluxError) -> FluxError {
    m::FLUX_REJECTED_KEY.inc();
    let n = KEY_REFUSALS.fetch_add(1, Ordering::Relaxed) + 1;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let last = LAST_KEY_LOG.load(Ordering::Relaxed);
    if now >= last + 60
        && LAST_KEY_LOG
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        KEY_REFUSALS.store(0, Ordering::Relaxed);
        let peer = req
            .peer_addr()
            .map_or_else(|| "unknown peer".to_string(), |a| a.to_string());
        warn!(
            "flux: refused {} {} from {peer}: {err} ({n} refused since the last such line)",
            req.method(),
            req.path()
        );
    }
    err
}

pub(super) fn header_key(req: &HttpRequest) -> Option<&str> {
    req.headers().get("key").and_then(|v| v.to_str().ok())
}

/// The `key` query parameter of a POST (flux's GET endpoint parses its query itself).
fn query_key(req: &HttpRequest) -> Option<String> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .ok()?
        .into_inner()
        .into_iter()
        .find(|(k, _)| k == "key")
        .map(|(_, v)| v)
}

/// Authenticates a POST before any of its body is read, when the key came in the `key`
/// header or `?key=`: a wrong key is refused without reading, and a compressed body is only
/// decompressed for a valid key (it must carry its key there, not inside the compressed JSON).
/// Returns the key found, for the body's own `key` field to be compared against.
fn authenticate_before_body(
    req: &HttpRequest,
    state: &FluxState,
) -> Result<Option<String>, FluxError> {
    let key = header_key(req)
        .map(str::to_string)
        .or_else(|| query_key(req));
    match &key {
        Some(k) => {
            authenticate(req, state, Some(k))?;
            shed_if_full(state)?;
        }
        None if coding(req)? != Coding::Identity => {
            return Err(refuse_key(req, FluxError::KeyBeforeCompressedBody));
        }
        None => {}
    }
    Ok(key)
}

/// The prefix of the request's key: the `key` header wins over `fallback` (query or body).
pub(super) fn authenticate<'s>(
    req: &HttpRequest,
    state: &'s FluxState,
    fallback: Option<&str>,
) -> Result<&'s str, FluxError> {
    let Some(key) = header_key(req).or(fallback) else {
        return Err(refuse_key(req, FluxError::MissingKey));
    };
    let prefix = state
        .keys
        .lookup(key)
        .ok_or_else(|| refuse_key(req, FluxError::InvalidKey))?;
    // Who it was, for the endpoint monitor: the key's prefix, never the secret.
    use actix_web::HttpMessage;
    req.extensions_mut()
        .insert(crate::monitor::Identity(if prefix.is_empty() {
            "flux key (no prefix)".into()
        } else {
            format!("flux key {prefix}").into()
        }));
    Ok(prefix)
}

/// A body sink that refuses to grow past `limit` bytes: decompression stops at the limit,
/// not after an inflated chunk.
struct Bounded {
    buf: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("body over max_body_bytes"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How the body is encoded (`Content-Encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Identity,
    Gzip,
    Deflate,
}

fn coding(req: &HttpRequest) -> Result<Coding, FluxError> {
    let Some(v) = req.headers().get(actix_web::http::header::CONTENT_ENCODING) else {
        return Ok(Coding::Identity);
    };
    let v = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
    match v.as_str() {
        "" | "identity" => Ok(Coding::Identity),
        "gzip" | "x-gzip" => Ok(Coding::Gzip),
        "deflate" => Ok(Coding::Deflate),
        _ => Err(FluxError::invalid(Problem::request(
            "Content-Encoding",
            format!(
                "the Content-Encoding {:?} is not supported; send the body plain, gzip or deflate",
                v.chars().take(40).collect::<String>()
            ),
        ))),
    }
}

/// Where the decoded body goes: straight into the bounded buffer, or through a streaming
/// decompressor that writes into it.
enum Sink {
    Plain(Bounded),
    Gzip(flate2::write::GzDecoder<Bounded>),
    Deflate(flate2::write::ZlibDecoder<Bounded>),
}

impl Sink {
    fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        match self {
            Sink::Plain(w) => w.write_all(data),
            Sink::Gzip(w) => w.write_all(data),
            Sink::Deflate(w) => w.write_all(data),
        }
    }

    fn over(&self) -> bool {
        match self {
            Sink::Plain(w) => w.over,
            Sink::Gzip(w) => w.get_ref().over,
            Sink::Deflate(w) => w.get_ref().over,
        }
    }

    fn finish(self) -> std::io::Result<Bounded> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Gzip(w) => w.finish(),
            Sink::Deflate(w) => w.finish(),
        }
    }
}

/// Reads the body (decompressed when `Content-Encoding: gzip` or `deflate`) up to `limit`
/// bytes. Both the bytes received and the bytes decompressed are bounded by `limit`, and
/// decompression streams into a buffer that stops at `limit` (a gzip bomb costs at most
/// `limit` bytes of memory, not an inflated chunk).
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, FluxError> {
    let too_large = || {
        m::FLUX_REJECTED_TOO_LARGE.inc();
        FluxError::TooLarge { limit }
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let out = Bounded {
        buf: Vec::with_capacity(declared.unwrap_or(0).min(limit)),
        limit,
        over: false,
    };
    let mut sink = match coding(req)? {
        Coding::Identity => Sink::Plain(out),
        Coding::Gzip => Sink::Gzip(flate2::write::GzDecoder::new(out)),
        Coding::Deflate => Sink::Deflate(flate2::write::ZlibDecoder::new(out)),
    };
    let undecodable = |err: std::io::Error| {
        FluxError::invalid(Problem::request(
            "body",
            format!("the compressed request body cannot be decompressed: {err}"),
        ))
    };
    let mut received = 0usize;
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
        received += chunk.len();
        if received > limit {
            return Err(too_large());
        }
        if let Err(err) = sink.write_all(&chunk) {
            return Err(if sink.over() {
                too_large()
            } else {
                undecodable(err)
            });
        }
    }
    let over = sink.over();
    match sink.finish() {
        Ok(b) if !b.over => Ok(b.buf),
        Ok(_) => Err(too_large()),
        Err(_) if over => Err(too_large()),
        Err(err) => Err(undecodable(err)),
    }
}

pub(super) fn reject(problems: Vec<Problem>, total: usize) -> FluxError {
    m::FLUX_REJECTED_INVALID.inc();
    FluxError::invalid_batch(problems, total)
}

/// Reserves the whole batch in the queue and hands it to the forwarder.
pub(super) fn enqueue(
    state: &FluxState,
    points: Vec<FluxPoint>,
    backfill: bool,
) -> Result<(), FluxError> {
    let n = points.len();
    let retry_after_secs = state.settings.retry_after_secs;
    if n > state.queue.max() {
        return Err(FluxError::BatchTooLarge {
            points: n,
            limit: state.queue.max(),
        });
    }
    if !state.forwarder.connected() {
        return Err(FluxError::ShuttingDown { retry_after_secs });
    }
    if !state.queue.try_reserve(n) {
        m::FLUX_REJECTED_QUEUE_FULL.inc();
        return Err(FluxError::QueueFull { retry_after_secs });
    }
    state.forwarder.do_send(Enqueue { points, backfill });
    m::FLUX_ACCEPTED.add(n as u64);
    Ok(())
}

/// Refuses an authenticated request at once, before reading and parsing its body, while the
/// queue is full (load shedding: an overloaded daemon does not spend its CPU on requests it
/// will refuse anyway).
pub(super) fn shed_if_full(state: &FluxState) -> Result<(), FluxError> {
    if state.queue.queued() >= state.queue.max() {
        m::FLUX_REJECTED_QUEUE_FULL.inc();
        return Err(FluxError::QueueFull {
            retry_after_secs: state.settings.retry_after_secs,
        });
    }
    Ok(())
}

fn status_ok() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// `GET /flux/metric_data?metric=&timestamp=&value=&key=` (and `?status` for a health check).
pub async fn metric_data(
    req: HttpRequest,
    query: Result<web::Query<Vec<(String, String)>>, actix_web::Error>,
    state: web::Data<FluxState>,
) -> Result<HttpResponse, FluxError> {
    let params = match query {
        Ok(q) => q.into_inner(),
        Err(err) => {
            return Err(reject(
                vec![Problem::request(
                    "query",
                    format!("cannot parse the query string: {err}"),
                )],
                1,
            ))
        }
    };
    let (mut metric, mut timestamp, mut value, mut key) = (None, None, None, None);
    let mut status = false;
    let mut problems = Vec::new();
    for (name, v) in params {
        let slot = match name.as_str() {
            "metric" => &mut metric,
            "timestamp" => &mut timestamp,
            "value" => &mut value,
            "key" => &mut key,
            "status" => {
                status = true;
                continue;
            }
            other => {
                problems.push(Problem::request(
                    other,
                    format!("invalid parameter {other:?} (expected metric, timestamp, value, key)"),
                ));
                continue;
            }
        };
        if slot.replace(v).is_some() {
            problems.push(Problem::request(
                &name,
                format!("parameter {name:?} given more than once"),
            ));
        }
    }
    if status && problems.is_empty() && metric.is_none() {
        return Ok(status_ok());
    }
    let prefix = authenticate(&req, &state, key.as_deref())?;
    let limits = state.limits(false);
    let submitted = metric.clone();
    let mut push = |field: &str, message: String| {
        problems.push(Problem {
            index: None,
            metric: submitted.clone(),
            field: field.to_string(),
            message,
        })
    };
    let full = match metric {
        Some(m) => {
            let full = validate::apply_prefix(prefix, &m);
            match validate::check_name(&full) {
                Ok(()) => Some(full),
                Err(why) => {
                    push("metric", why);
                    None
                }
            }
        }
        None => {
            push("metric", "no metric parameter passed".into());
            None
        }
    };
    let ts = match timestamp.as_deref() {
        None => Ok(limits.now),
        Some(t) => validate::parse_timestamp_str(t),
    }
    .and_then(|ts| validate::check_timestamp(ts, &limits).map(|()| ts));
    let ts = ts.map_err(|why| push("timestamp", why)).ok();
    let value = match value.as_deref() {
        None => Err("no value parameter passed".to_string()),
        Some(v) => validate::parse_value_str(v),
    };
    let value = value.map_err(|why| push("value", why)).ok();
    match (full, ts, value) {
        (Some(metric), Some(timestamp), Some(value)) if problems.is_empty() => {
            enqueue(
                &state,
                vec![FluxPoint {
                    metric,
                    timestamp,
                    value,
                }],
                false,
            )?;
            Ok(HttpResponse::NoContent().finish())
        }
        _ => Err(reject(problems, 1)),
    }
}

/// `POST /flux/metric_data_post`: `{"metric","timestamp","value","key"}` or
/// `{"key", "metrics": [{"metric","timestamp","value"}, …]}`.
pub async fn metric_data_post(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FluxState>,
) -> Result<HttpResponse, FluxError> {
    let early = authenticate_before_body(&req, &state)?;
    let body = read_body(&req, payload, state.settings.max_body_bytes).await?;
    let parsed = validate::parse_post(&body).map_err(|p| reject(vec![p], 1))?;
    let prefix = authenticate(&req, &state, early.as_deref().or(parsed.key.as_deref()))?;
    let limits = state.limits(false);
    let total = parsed.items.len();
    let mut problems = parsed.problems;
    match validate::validate_items(&parsed.items, prefix, &limits, parsed.batch) {
        Ok(points) if problems.is_empty() => {
            enqueue(&state, points, false)?;
            Ok(HttpResponse::NoContent().finish())
        }
        Ok(_) => Err(reject(problems, total)),
        Err(more) => {
            problems.extend(more);
            Err(reject(problems, total))
        }
    }
}

/// `POST /flux/populate_metric`: backfill one metric's history,
/// `{"key", "metric", "datapoints": [[timestamp, value], …]}`. No age limit and no
/// de-duplication; `flux.last.<metric>` is not moved.
pub async fn populate_metric(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<FluxState>,
) -> Result<HttpResponse, FluxError> {
    let early = authenticate_before_body(&req, &state)?;
    let body = read_body(&req, payload, state.settings.max_body_bytes).await?;
    let parsed = validate::parse_populate(&body).map_err(|p| reject(vec![p], 1))?;
    let prefix = authenticate(&req, &state, early.as_deref().or(parsed.key.as_deref()))?;
    let total = parsed.datapoints.len();
    if !parsed.problems.is_empty() {
        return Err(reject(parsed.problems, total));
    }
    let Some(metric) = parsed.metric else {
        return Err(reject(
            vec![Problem::request("metric", "metric is missing")],
            total,
        ));
    };
    let limits = state.limits(true);
    let points = validate::validate_populate(&metric, &parsed.datapoints, prefix, &limits)
        .map_err(|p| reject(p, total))?;
    enqueue(&state, points, true)?;
    Ok(HttpResponse::NoContent().finish())
}

/// 405 for `GET` on the POST endpoints.
pub async fn post_only() -> Result<HttpResponse, FluxError> {
    Err(FluxError::MethodNotAllowed { allowed: "POST" })
}

/// 405 for other methods on `metric_data`.
pub async fn get_only() -> Result<HttpResponse, FluxError> {
    Err(FluxError::MethodNotAllowed { allowed: "GET" })
}
