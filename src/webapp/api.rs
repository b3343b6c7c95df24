//! The JSON APIs: `/api` (Skyline's multiplexed endpoint: `graphite_metric`, then
//! `unique_metrics`, then `metric`, in that order of precedence, as in Skyline),
//! `/api/unique_metrics` and `/api/anomalies` (the Panorama search).
//!
//! Every answer is `application/json`; errors are `{"code", "message"}` with a real status
//! (400 bad parameters, 404 unknown metric, 502/504 Graphite, 503 Redis or database down)
//! instead of Skyline's 200 with an empty string. Values that are not finite become `null`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use serde::Serialize;

use super::error::WebError;
use super::{graphite, panorama, WebState, Worker};
use crate::db::queries;
use crate::model::msgpack::{decode_series, EncodingError};
use crate::model::{Number, FULL_NAMESPACE};
use crate::store::keys::UNIQUE_METRICS;

/// Bytes of cached `/api?metric=` answers (Redis bytes plus JSON) kept at most.
pub const SERIES_CACHE_BYTES: usize = 64 << 20;
/// Longest metric name or key accepted in a parameter.
pub const MAX_NAME_BYTES: usize = 4096;

/// The query string as ordered pairs (400 when it is not valid `application/x-www-form-urlencoded`).
pub fn params(req: &HttpRequest) -> Result<Vec<(String, String)>, WebError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|_| WebError::BadRequest("the query string is not valid URL encoding".into()))
}

/// The first value of `name`.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// True when `Accept-Encoding` lists `gzip` (or `*`) without `q=0`.
pub fn accepts_gzip(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(actix_web::http::header::ACCEPT_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';').map(str::trim);
            let coding = parts.next().unwrap_or("");
            let q_zero = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !q_zero
        })
}

/// `data` gzipped at `level` (0–9), or `None` when it is too small to gain.
pub fn gzip(data: &[u8], level: u32) -> Option<Bytes> {
    use std::io::Write as _;
    if data.len() < 1024 {
        return None;
    }
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 4),
        flate2::Compression::new(level),
    );
    enc.write_all(data).ok()?;
    enc.finish().ok().map(Bytes::from)
}

/// A cached body: the gzipped copy when the client accepts it and there is one.
pub fn encoded_response(
    req: &HttpRequest,
    content_type: &'static str,
    plain: Bytes,
    gz: Option<Bytes>,
) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.content_type(content_type)
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Vary", "Accept-Encoding"));
    match gz {
        Some(gz) if accepts_gzip(req) => res.insert_header(("Content-Encoding", "gzip")).body(gz),
        _ => res.body(plain),
    }
}

fn json_ok(body: impl actix_web::body::MessageBody + 'static) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// Appends a JSON number (`null` when not finite).
fn push_number(out: &mut Vec<u8>, n: Number) {
    use std::io::Write;
    match n {
        Number::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Number::UInt(u) => {
            let _ = write!(out, "{u}");
        }
        Number::Float(f) if f.is_finite() => {
            let _ = serde_json::to_writer(&mut *out, &f);
        }
        Number::Float(_) => out.extend_from_slice(b"null"),
    }
}

/// `{"results": [[ts, value], …]}` from a Redis value in Skyline's format; numbers keep
/// their wire type (an int timestamp stays an int).
pub fn series_json(raw: &[u8]) -> Result<Vec<u8>, EncodingError> {
    let points = decode_series(raw)?;
    let mut out = Vec::with_capacity(16 + points.len() * 28);
    out.extend_from_slice(b"{\"results\":[");
    for (i, p) in points.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        push_number(&mut out, p.timestamp);
        out.push(b',');
        push_number(&mut out, p.value);
        out.push(b']');
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

struct CacheEntry {
    raw: Vec<u8>,
    json: Bytes,
    gz: Option<Bytes>,
    used: u64,
}

impl CacheEntry {
    fn size(&self, key: &str) -> usize {
        self.raw.len() + self.json.len() + self.gz.as_ref().map_or(0, Bytes::len) + key.len()
    }
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<String, CacheEntry>,
    bytes: usize,
    tick: u64,
}

/// The last `/api?metric=` answer per key (JSON, and gzipped once a client asked for it),
/// with the Redis bytes it was built from. A hit needs the same bytes (so it is never
/// stale); least recently used entries go first when over the byte bound.
pub struct SeriesCache {
    max_bytes: usize,
    inner: Mutex<CacheInner>,
}

impl SeriesCache {
    /// A cache of at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        SeriesCache {
            max_bytes,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    /// The JSON (and gzipped JSON, if made) for `key` if built from exactly `raw`.
    pub fn get(&self, key: &str, raw: &[u8]) -> Option<(Bytes, Option<Bytes>)> {
        let mut inner = self.inner.lock().ok()?;
        inner.tick += 1;
        let tick = inner.tick;
        let e = inner.map.get_mut(key)?;
        if e.raw == raw {
            e.used = tick;
            Some((e.json.clone(), e.gz.clone()))
        } else {
            None
        }
    }

    /// Remembers `json` (and `gz`) for `key` built from `raw`.
    pub fn put(&self, key: &str, raw: Vec<u8>, json: Bytes, gz: Option<Bytes>) {
        let entry = CacheEntry {
            raw,
            json,
            gz,
            used: 0,
        };
        let size = entry.size(key);
        if size > self.max_bytes / 4 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.tick += 1;
        let used = inner.tick;
        if let Some(old) = inner.map.remove(key) {
            inner.bytes -= old.size(key);
        }
        while inner.bytes + size > self.max_bytes {
            let Some(oldest) = inner
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = inner.map.remove(&oldest) {
                inner.bytes -= e.size(&oldest);
            }
        }
        inner.bytes += size;
        inner
            .map
            .insert(key.to_string(), CacheEntry { used, ..entry });
    }
}

/// The Redis keys tried for a metric parameter, in order: a name given with the `metrics.`
/// prefix (as Skyline's pages send it) is tried as a key first, then as a base name.
pub fn candidate_keys(name: &str) -> Vec<String> {
    let mut keys = Vec::with_capacity(2);
    // Mirage's built-in history (same msgpack pairs): Panorama graphs a Mirage anomaly's
    // days from it when no Graphite is configured.
    if name.starts_with(FULL_NAMESPACE) || name.starts_with(crate::mirage::history::HISTORY_PREFIX)
    {
        keys.push(name.to_string());
    }
    keys.push(crate::store::keys::metric_key(name));
    keys
}

/// Reads a metric's series as `/api` JSON, plus its gzipped form when `want_gz` (both
/// through the cache).
pub async fn metric_series(
    state: &WebState,
    worker: &Worker,
    name: &str,
    want_gz: bool,
) -> Result<(Bytes, Option<Bytes>), WebError> {
    let (key, raw) = find_series(worker, name).await?;
    let cached = state.series_cache.get(&key, &raw);
    if let Some((json, gz)) = &cached {
        if gz.is_some() || !want_gz || json.len() < 1024 {
            return Ok((json.clone(), gz.clone()));
        }
    }
    let json =
        match cached {
            Some((json, _)) => json,
            None => Bytes::from(series_json(&raw).map_err(|err| {
                WebError::internal(&format!("{key} is not a Skyline series"), &err)
            })?),
        };
    let gz = if want_gz { gzip(&json, 3) } else { None };
    state.series_cache.put(&key, raw, json.clone(), gz.clone());
    Ok((json, gz))
}

/// The first of `name`'s candidate keys (see [`candidate_keys`]) that holds a value, with that
/// value; 400 for an empty or over-long name, 404 when none exists.
async fn find_series(worker: &Worker, name: &str) -> Result<(String, Vec<u8>), WebError> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(WebError::BadRequest(format!(
            "metric: give a metric name of 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    let mut conn = worker.redis.clone();
    for key in candidate_keys(name) {
        if key == UNIQUE_METRICS {
            continue;
        }
        let raw: Option<Vec<u8>> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(|err| WebError::redis_failed(&format!("GET {key}"), &err))?;
        if let Some(raw) = raw {
            return Ok((key, raw));
        }
    }
    Err(WebError::NotFound(
        "no metric by that name in Redis (metrics.<name>)".into(),
    ))
}

/// `/api?metric=NAME&scores=1`: the series plus `"scores"`, the stream detector's score of
/// every point (the series replayed through a fresh detector in timestamp order, as the
/// analyzer rebuilds a metric after a restart; a point it ignores, non-finite or duplicate,
/// scores 0), and `"threshold"`. Not cached.
async fn metric_scores(worker: &Worker, name: &str) -> Result<HttpResponse, WebError> {
    use crate::analyze::stream::{StreamParams, StreamState};
    let (key, raw) = find_series(worker, name).await?;
    let bad =
        |err: EncodingError| WebError::internal(&format!("{key} is not a Skyline series"), &err);
    let mut json = series_json(&raw).map_err(bad)?;
    let mut points = Vec::new();
    crate::model::msgpack::decode_series_f64(&raw, &mut points).map_err(bad)?;
    // Scores in the order of the stored points; the detector takes them sorted.
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_by(|&a, &b| points[a].0.total_cmp(&points[b].0));
    let params = StreamParams::default();
    let mut state = StreamState::new();
    let mut scores = vec![0.0; points.len()];
    for i in order {
        let (t, v) = points[i];
        scores[i] = state.update(t as i64, v, &params);
    }
    json.pop(); // the closing brace
    json.extend_from_slice(b",\"scores\":[");
    for (i, s) in scores.iter().enumerate() {
        if i > 0 {
            json.push(b',');
        }
        json.extend_from_slice(format!("{s:.6}").as_bytes());
    }
    json.extend_from_slice(format!("],\"threshold\":{}}}", params.threshold).as_bytes());
    Ok(json_ok(json))
}

/// `GET /api`.
pub async fn api(
    req: HttpRequest,
    state: web::Data<WebState>,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, WebError> {
    let params = params(&req)?;
    if params.iter().any(|(k, _)| k == "graphite_metric") {
        return graphite::series_api(&state, &worker, &params).await;
    }
    if params.iter().any(|(k, _)| k == "unique_metrics") {
        return unique_metrics(&worker, &params).await;
    }
    if let Some(name) = param(&params, "metric") {
        if param(&params, "scores") == Some("1") {
            return metric_scores(&worker, name).await;
        }
        let (json, gz) = metric_series(&state, &worker, name, accepts_gzip(&req)).await?;
        return Ok(encoded_response(&req, "application/json", json, gz));
    }
    Err(WebError::BadRequest(
        "use /api?metric=NAME, /api?graphite_metric=NAME&from_timestamp=EPOCH&until_timestamp=EPOCH, \
         /api?unique_metrics, /api/anomalies?… or /api/now (see /docs/webapp)"
            .into(),
    ))
}

/// `GET /api/unique_metrics`.
pub async fn unique_metrics_route(
    req: HttpRequest,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, WebError> {
    let params = params(&req)?;
    unique_metrics(&worker, &params).await
}

#[derive(Serialize)]
struct UniqueStatus<'a> {
    response: u16,
    request_time: f64,
    filtered: bool,
    filter_namespace: Vec<&'a str>,
    remove_full_namespace_prefix: bool,
}

#[derive(Serialize)]
struct UniqueData {
    metrics: Vec<String>,
}

#[derive(Serialize)]
struct UniqueBody<'a> {
    status: UniqueStatus<'a>,
    data: UniqueData,
}

fn flag(params: &[(String, String)], name: &str) -> Result<bool, WebError> {
    match param(params, name) {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(_) => Err(WebError::BadRequest(format!("{name}: true or false"))),
    }
}

async fn unique_metrics(
    worker: &Worker,
    params: &[(String, String)],
) -> Result<HttpResponse, WebError> {
    let started = Instant::now();
    let strip = flag(params, "remove_full_namespace_prefix")?;
    let namespaces: Vec<&str> = param(params, "filter_namespace")
        .map(|s| {
            s.split(',')
                .map(|n| n.trim().trim_end_matches('.'))
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let mut conn = worker.redis.clone();
    let members: Vec<Vec<u8>> = redis::cmd("SMEMBERS")
        .arg(UNIQUE_METRICS)
        .query_async(&mut conn)
        .await
        .map_err(|err| WebError::redis_failed(&format!("SMEMBERS {UNIQUE_METRICS}"), &err))?;
    let mut metrics: Vec<String> = members
        .iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .filter(|full| {
            let base = crate::store::keys::base_name(full);
            namespaces.is_empty()
                || namespaces
                    .iter()
                    .any(|n| base == *n || base.strip_prefix(n).is_some_and(|r| r.starts_with('.')))
        })
        .map(|full| {
            if strip {
                crate::store::keys::base_name(&full).to_string()
            } else {
                full
            }
        })
        .collect();
    metrics.sort_unstable();
    let body = UniqueBody {
        status: UniqueStatus {
            response: 200,
            request_time: started.elapsed().as_secs_f64(),
            filtered: !namespaces.is_empty(),
            filter_namespace: namespaces,
            remove_full_namespace_prefix: strip,
        },
        data: UniqueData { metrics },
    };
    let json =
        serde_json::to_vec(&body).map_err(|err| WebError::internal("unique_metrics JSON", &err))?;
    Ok(json_ok(json))
}

#[derive(Serialize)]
struct CountRow {
    metric: String,
    count: i64,
}

#[derive(Serialize)]
#[serde(untagged)]
enum AnomalyResults {
    Rows(Vec<queries::AnomalyRow>),
    Counts(Vec<CountRow>),
}

#[derive(Serialize)]
struct AnomaliesBody {
    query: panorama::QueryEcho,
    count_by_metric: bool,
    total: usize,
    results: AnomalyResults,
}

/// `GET /api/anomalies`: the Panorama search (same parameters as `/panorama`) as JSON.
pub async fn anomalies(
    req: HttpRequest,
    state: web::Data<WebState>,
) -> Result<HttpResponse, WebError> {
    let params = params(&req)?;
    let search = panorama::parse_search(&params, super::now())?;
    let pool = state.db.clone().ok_or(WebError::PanoramaDisabled)?;
    let (query, by_metric) = (search.query.clone(), search.count_by_metric);
    let limit = pool.op_timeout();
    let target = pool.target().to_string();
    let results = crate::webapp::panorama::db_within(limit, target, move || {
        if by_metric {
            queries::count_by_metric(&pool, &query).map(|c| {
                AnomalyResults::Counts(
                    c.into_iter()
                        .map(|(metric, count)| CountRow { metric, count })
                        .collect(),
                )
            })
        } else {
            queries::search(&pool, &query).map(AnomalyResults::Rows)
        }
    })
    .await
    .map_err(|err| WebError::db_failed("search", &err))?;
    let total = match &results {
        AnomalyResults::Rows(r) => r.len(),
        AnomalyResults::Counts(c) => c.len(),
    };
    let body = AnomaliesBody {
        query: search.echo(),
        count_by_metric: by_metric,
        total,
        results,
    };
    let json =
        serde_json::to_vec(&body).map_err(|err| WebError::internal("anomalies JSON", &err))?;
    Ok(json_ok(json))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::msgpack::encode_series;
    use crate::model::Point;

    #[test]
    fn series_json_keeps_types_and_nulls_non_finite() {
        let raw = encode_series(&[
            Point {
                timestamp: Number::Int(1_700_000_000),
                value: Number::Float(1.5),
            },
            Point {
                timestamp: Number::Float(1_700_000_060.0),
                value: Number::Int(-3),
            },
            Point {
                timestamp: Number::Int(1_700_000_120),
                value: Number::Float(f64::NAN),
            },
        ]);
        let json = String::from_utf8(series_json(&raw).unwrap()).unwrap();
        assert_eq!(
            json,
            r#"{"results":[[1700000000,1.5],[1700000060.0,-3],[1700000120,null]]}"#
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["results"].as_array().unwrap().len(), 3);
        assert!(series_json(b"\xc1").is_err());
    }

    #[test]
    fn gzip_negotiation() {
        use actix_web::test::TestRequest;
        let yes = |h: &str| {
            accepts_gzip(
                &TestRequest::default()
                    .insert_header(("Accept-Encoding", h))
                    .to_http_request(),
            )
        };
        assert!(yes("gzip, deflate, br"));
        assert!(yes("br;q=1.0, gzip;q=0.8"));
        assert!(yes("*"));
        assert!(!yes("gzip;q=0"));
        assert!(!yes("identity"));
        assert!(!accepts_gzip(&TestRequest::default().to_http_request()));
        let data = vec![b'a'; 5000];
        let gz = gzip(&data, 3).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out).unwrap();
        assert_eq!(out, data);
        assert!(gzip(b"small", 3).is_none());
    }

    #[test]
    fn keys_tried() {
        assert_eq!(candidate_keys("a.b"), vec!["metrics.a.b"]);
        assert_eq!(
            candidate_keys("metrics.a.b"),
            vec!["metrics.a.b", "metrics.metrics.a.b"]
        );
    }

    #[test]
    fn cache_hits_only_on_same_bytes_and_stays_bounded() {
        let c = SeriesCache::new(4000);
        c.put("k", b"raw".to_vec(), Bytes::from_static(b"json"), None);
        assert_eq!(c.get("k", b"raw").unwrap().0, Bytes::from_static(b"json"));
        assert!(c.get("k", b"raw2").is_none());
        for i in 0..100 {
            c.put(
                &format!("k{i}"),
                vec![0; 200],
                Bytes::from(vec![1; 200]),
                Some(Bytes::from(vec![2; 50])),
            );
        }
        let inner = c.inner.lock().unwrap();
        assert!(inner.bytes <= 4000, "{}", inner.bytes);
        assert!(inner.map.contains_key("k99"));
    }
}
