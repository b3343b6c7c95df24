//! Endpoint monitoring: a middleware that records every HTTP request (webapp and flux) into a
//! bounded in-memory [`Monitor`], shown at `/monitor`, and hands records and outliers to the
//! stored endpoint monitor ([`crate::monitor`], views in [`super::monitor_views`]) according
//! to the route's level (`[[monitor.rules]]`): level ≥ 1 a [`Hit`], level ≥ 2 an
//! [`OutlierRecord`] for a request slower than `outlier_factor` × its route's mean (with the
//! query, the headers with secrets redacted, CPU, RSS and the span breakdown), level 3 the
//! breakdown on every record. Records go through a bounded queue (full: dropped, counted);
//! the request never waits for them.
//!
//! Level ≥ 1 request records are kept here, compact ([`Pending`]: the route as an entry
//! number, the client IP as an address, the user a shared name), in the same locked state as
//! the per-route figures, so recording one costs a push under the lock the request takes
//! anyway; the monitor writer takes them all every `flush_ms` ([`HitSource`]) and builds the
//! full [`Hit`]s on its own thread. At most `[monitor] queue_max` are kept: more are dropped
//! and counted (`skyline_monitor_dropped_total`). Outliers (rare) go to the writer's bounded
//! channel ([`RecordSender`]).
//!
//! Per route (the registered pattern, e.g. `/api`, so the set is bounded; unmatched paths
//! share one entry): hits, errors, mean, max, and median and p99 from a log-linear latency
//! histogram (about 6% resolution, fixed size), plus hits in each of the last 24 hours. A
//! request slower than 2.5× its route's mean (once the route has 20 hits) is kept in a ring of
//! the last [`SLOW_KEPT`] slow requests with its time, path and parameters; parameters named
//! like secrets (`key`, `password`, `token`, …) are replaced by `***`.
//!
//! Slow requests kept (the live list and the stored outliers) are capped per route and second
//! (`[monitor] outliers_per_sec`, 10; more are counted in
//! `skyline_monitor_outliers_capped_total`): under overload many requests are slow, and
//! describing each one (redacted query and headers, `/proc`) would add to the overload.
//!
//! Cost: one uncontended mutex lock, a hash lookup by route pattern and a few array updates
//! per request; each route's entry also holds its level and its entry number, so a level ≥ 1
//! record costs no string allocation and no channel operation: levels 0 and 2 differ by
//! looking up the user and group header and pushing a 64-byte [`Pending`] under that lock.
//! Latency is measured until the response head is ready (streamed bodies are not included).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use serde::Serialize;

use crate::monitor::spans::{self, Spans};
use crate::monitor::{
    Breakdown, ClientIp, Hit, HitSource, Identity, MonitorSettings, OutlierRecord, Record,
    RecordSender, RequestRecord,
};
use crate::telemetry::metrics as m;

/// Slow requests kept.
pub const SLOW_KEPT: usize = 200;
/// Routes tracked (more share the `(other)` entry).
pub const MAX_ROUTES: usize = 128;
/// A request is slow when over this many times its route's mean.
pub const SLOW_FACTOR: f64 = 2.5;
/// Hits a route needs before its mean is trusted for "slow".
pub const SLOW_MIN_HITS: u64 = 20;
/// Slow requests kept per route and second (without `[monitor]`).
pub const SLOW_PER_SEC: u32 = 10;
/// The key and label of routes over [`MAX_ROUTES`].
const OTHER: &str = "(other)";
/// The route of a path no route matched.
const UNMATCHED: &str = "(unmatched)";
const HOURS: usize = 24;
const LINEAR: u64 = 64;
const SUB: u64 = 16;
const BUCKETS: usize = (LINEAR + 58 * SUB) as usize;

fn bucket(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let log = 63 - us.leading_zeros() as u64; // >= 6
    let sub = (us >> (log - 4)) & (SUB - 1);
    (LINEAR + (log - 6) * SUB + sub) as usize
}

/// The upper bound (µs) of bucket `i`.
fn bucket_upper(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let log = (i - LINEAR) / SUB + 6;
    let sub = (i - LINEAR) % SUB;
    ((SUB + sub + 1) << (log - 4)).saturating_sub(1)
}

struct RouteStats {
    /// `GET /api`, or `(other)`.
    label: String,
    /// The method (to find the entry).
    method: Box<str>,
    /// Its entry number: the index of its route and method in [`Inner::names`].
    id: u16,
    /// The route's monitoring level (`[[monitor.rules]]`), decided at its first request.
    level: u8,
    /// (epoch second, slow requests kept in it): the per-second cap.
    kept_in_sec: (i64, u32),
    hits: u64,
    errors: u64,
    sum_us: u64,
    max_us: u64,
    hist: Box<[u32; BUCKETS]>,
    /// (hour since epoch, hits) per slot `hour % 24`.
    hours: [(u64, u64); HOURS],
    /// Epoch seconds of the last request.
    last: i64,
}

impl RouteStats {
    fn new(label: String, method: &str, id: u16, level: u8) -> Self {
        RouteStats {
            label,
            method: method.into(),
            id,
            level,
            kept_in_sec: (0, 0),
            hits: 0,
            errors: 0,
            sum_us: 0,
            max_us: 0,
            hist: Box::new([0; BUCKETS]),
            hours: [(0, 0); HOURS],
            last: 0,
        }
    }

    fn mean_us(&self) -> f64 {
        if self.hits == 0 {
            0.0
        } else {
            self.sum_us as f64 / self.hits as f64
        }
    }

    fn quantile_us(&self, q: f64) -> u64 {
        let total: u64 = self.hist.iter().map(|&c| c as u64).sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, &c) in self.hist.iter().enumerate() {
            seen += c as u64;
            if seen >= rank {
                return bucket_upper(i).min(self.max_us);
            }
        }
        self.max_us
    }
}

/// One slow request.
#[derive(Debug, Clone, Serialize)]
pub struct SlowRequest {
    /// Epoch seconds when it finished.
    pub time: i64,
    /// HTTP method.
    pub method: String,
    /// Route pattern.
    pub route: String,
    /// Path as requested.
    pub path: String,
    /// Query string, secrets redacted, at most 300 characters.
    pub query: String,
    /// Response status.
    pub status: u16,
    /// Latency, µs.
    pub latency_us: u64,
    /// The route's mean when it happened, µs.
    pub route_mean_us: u64,
}

/// One route's figures, for the page and tests.
#[derive(Debug, Clone, Serialize)]
pub struct RouteReport {
    /// `GET /api`.
    pub route: String,
    /// Requests.
    pub hits: u64,
    /// 5xx responses.
    pub errors: u64,
    /// Mean latency, µs.
    pub mean_us: u64,
    /// Median latency, µs (histogram resolution).
    pub median_us: u64,
    /// 99th percentile latency, µs (histogram resolution).
    pub p99_us: u64,
    /// Slowest, µs.
    pub max_us: u64,
    /// Hits in each of the last 24 hours, oldest first (the last is the current hour).
    pub per_hour: Vec<u64>,
    /// Epoch seconds of its last request (level 0 keeps only this and the figures above).
    pub last: i64,
}

/// Everything `/monitor` shows.
#[derive(Debug, Clone, Serialize)]
pub struct MonitorReport {
    /// Epoch seconds when recording started.
    pub since: i64,
    /// Routes, busiest first.
    pub routes: Vec<RouteReport>,
    /// All routes' hits per hour, oldest first.
    pub per_hour: Vec<u64>,
    /// The hour (epoch seconds) of the last `per_hour` entry.
    pub current_hour: i64,
    /// Slow requests, slowest first.
    pub slow: Vec<SlowRequest>,
}

struct Inner {
    /// Per route pattern (`(unmatched)`, `(other)`), one entry per method.
    routes: HashMap<Box<str>, Vec<RouteStats>>,
    /// (route, method) of each entry, by its number ([`RouteStats::id`]); only grows.
    names: Vec<(Arc<str>, Arc<str>)>,
    slow: VecDeque<SlowRequest>,
    /// Level ≥ 1 records not yet taken by the writer (at most `queue_max`).
    pending: Vec<Pending>,
}

/// A level ≥ 1 request record as kept until the writer takes it (64 bytes): what is
/// repeated (route, method, version) is not in it.
struct Pending {
    time_ms: i64,
    duration_us: u64,
    user: Option<Arc<str>>,
    /// Rare parts: a group tag, a breakdown (level 3), the names of an `(other)` route.
    extra: Option<Box<Extra>>,
    ip: Option<IpAddr>,
    status: u16,
    /// The route's entry number ([`Inner::names`]).
    entry: u16,
}

struct Extra {
    /// (route, method) of a request counted under `(other)`.
    names: Option<(Arc<str>, Arc<str>)>,
    group: Option<Box<str>>,
    breakdown: Option<Breakdown>,
}

/// What a level ≥ 1 record takes from the request itself ([`Monitor::finish`] asks for it
/// only at level ≥ 1).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capture {
    /// The TCP peer.
    pub ip: Option<IpAddr>,
    /// The authenticated user or flux key ([`Identity`]).
    pub user: Option<Arc<str>>,
    /// The group tag (`[monitor] group_header`).
    pub group: Option<Box<str>>,
    /// Where its time went (level 3).
    pub breakdown: Option<Breakdown>,
}

/// A finished request, as the middleware describes it to [`Monitor::finish`].
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// The matched route pattern, if any.
    pub route: Option<&'a str>,
    /// The path as requested.
    pub path: &'a str,
    /// The query string as requested.
    pub query: &'a str,
    /// Response status.
    pub status: u16,
    /// Until the response head, µs.
    pub latency_us: u64,
    /// When it finished, epoch milliseconds.
    pub now_ms: i64,
}

/// What [`Monitor::finish`] says about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Its route's monitoring level (0 without a stored monitor).
    pub level: u8,
    /// The route's mean (µs) when the request is slow and kept (within the per-second cap).
    pub slow_mean_us: Option<u64>,
}

/// Where the stored endpoint monitor's records go, and how to decide what to record.
pub struct Recorder {
    /// `[monitor]` (levels, group header).
    pub settings: MonitorSettings,
    /// The version label of every record.
    pub version: Arc<str>,
    /// The writer's bounded channel (outliers).
    pub tx: RecordSender,
    group_header: Option<actix_web::http::header::HeaderName>,
}

impl Recorder {
    /// Records of this daemon go to `tx`.
    pub fn new(settings: MonitorSettings, tx: RecordSender) -> Self {
        let group_header =
            actix_web::http::header::HeaderName::from_bytes(settings.group_header.as_bytes()).ok();
        Recorder {
            version: settings.version_label().into(),
            settings,
            tx,
            group_header,
        }
    }

    /// What a record at `level` takes from `r` (the breakdown from `spans` at level 3).
    fn capture(&self, r: &actix_web::HttpRequest, level: u8, spans: &Spans) -> Capture {
        Capture {
            ip: r.peer_addr().map(|a| a.ip()),
            user: r.extensions().get::<Identity>().map(|i| i.0.clone()),
            group: self
                .group_header
                .as_ref()
                .and_then(|h| r.headers().get(h))
                .map(|v| {
                    String::from_utf8_lossy(v.as_bytes())
                        .chars()
                        .take(100)
                        .collect::<String>()
                        .into_boxed_str()
                }),
            breakdown: (level >= 3).then(|| spans.breakdown()),
        }
    }
}

/// The bounded request recorder.
pub struct Monitor {
    since: i64,
    inner: Mutex<Inner>,
    factor: f64,
    min_hits: u64,
    per_sec: u32,
    recorder: Option<Recorder>,
    /// The highest level recorded now, whatever the rules say ([`Monitor::cap_levels`]).
    cap: std::sync::atomic::AtomicU8,
    /// The records' vector the writer emptied last, reused ([`HitSource::take_hits`]).
    spare: Mutex<Vec<Pending>>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new()
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

const SECRET_PARAMS: &[&str] = &[
    "key", "api_key", "apikey", "password", "passwd", "pass", "pw",
];

/// The query string with the values of secret-looking parameters replaced by `***`, cut to
/// 300 characters.
pub fn redact_query(query: &str) -> String {
    let mut out = String::with_capacity(query.len().min(300));
    for (i, part) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let name = percent_encoding::percent_decode_str(k)
            .decode_utf8_lossy()
            .to_ascii_lowercase();
        let secret = SECRET_PARAMS.contains(&name.as_str())
            || ["password", "secret", "token", "csrf", "auth"]
                .iter()
                .any(|s| name.contains(s));
        out.push_str(k);
        if part.contains('=') {
            out.push('=');
            out.push_str(if secret && !v.is_empty() { "***" } else { v });
        }
    }
    if out.len() > 300 {
        let mut cut = 300;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

impl Monitor {
    /// An empty monitor that keeps nothing beyond memory.
    pub fn new() -> Self {
        Monitor {
            since: now_secs(),
            inner: Mutex::new(Inner {
                routes: HashMap::new(),
                names: Vec::new(),
                slow: VecDeque::with_capacity(SLOW_KEPT),
                pending: Vec::new(),
            }),
            factor: SLOW_FACTOR,
            min_hits: SLOW_MIN_HITS,
            per_sec: SLOW_PER_SEC,
            recorder: None,
            cap: std::sync::atomic::AtomicU8::new(u8::MAX),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// Records every route at no more than `level` from now on (`u8::MAX`: as the rules say).
    /// `skyline bench webapp --interleave` switches one daemon between levels with it, so the
    /// levels are compared in one process; an operator tool could pause stored monitoring.
    pub fn cap_levels(&self, level: u8) {
        self.cap.store(level, std::sync::atomic::Ordering::Relaxed);
    }

    fn capped(&self, level: u8) -> u8 {
        level.min(self.cap.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// An empty monitor that also hands records to `recorder` (its `outlier_factor` and
    /// `outlier_min_hits` decide what is slow).
    pub fn with_recorder(recorder: Recorder) -> Self {
        Monitor {
            factor: recorder.settings.outlier_factor,
            min_hits: recorder.settings.outlier_min_hits,
            per_sec: recorder.settings.outliers_per_sec.max(1),
            recorder: Some(recorder),
            ..Monitor::new()
        }
    }

    /// The stored monitor's settings, when records are stored.
    pub fn settings(&self) -> Option<&MonitorSettings> {
        self.recorder.as_ref().map(|r| &r.settings)
    }

    /// The level of `route` (0 without a stored monitor).
    fn level_of(&self, route: Option<&str>) -> u8 {
        self.recorder
            .as_ref()
            .map_or(0, |r| r.settings.level_of(route))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves figures that are still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one finished request (tests and callers without a request): as
    /// [`Monitor::finish`] at `now` epoch seconds, with nothing captured from a request.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        method: &str,
        route: Option<&str>,
        path: &str,
        query: &str,
        status: u16,
        latency_us: u64,
        now: i64,
    ) -> Seen {
        let finished = Finished {
            method,
            route,
            path,
            query,
            status,
            latency_us,
            now_ms: now.saturating_mul(1000),
        };
        self.finish(&finished, |_| Capture::default())
    }

    /// Records one finished request: its route's figures; the request in the live slow list
    /// when it is slow (over the outlier factor × the route's mean, once the route has
    /// enough hits) and within the route's per-second cap; and, when its route's level is
    /// ≥ 1 and records are stored, a record with what `capture` takes from the request (called
    /// with the level, under the lock; not called at level 0). Says the route's level, and
    /// the route's mean when the request was kept as slow.
    pub fn finish(&self, f: &Finished<'_>, capture: impl FnOnce(u8) -> Capture) -> Seen {
        let now = f.now_ms.div_euclid(1000);
        let mut guard = self.lock();
        let inner = &mut *guard;
        let key = f.route.unwrap_or(UNMATCHED);
        let pos = inner
            .routes
            .get(key)
            .and_then(|v| v.iter().position(|s| &*s.method == f.method));
        let (list_key, idx, overflow) = match pos {
            Some(i) => (key, i, false),
            None if inner.names.len() < MAX_ROUTES => {
                let id = inner.names.len() as u16;
                inner.names.push((key.into(), f.method.into()));
                let list = inner.routes.entry(key.into()).or_default();
                list.push(RouteStats::new(
                    format!("{} {key}", f.method),
                    f.method,
                    id,
                    self.level_of(f.route),
                ));
                (key, list.len() - 1, false)
            }
            None => {
                if !inner.routes.contains_key(OTHER) {
                    let id = inner.names.len() as u16;
                    inner.names.push((OTHER.into(), "".into()));
                    inner.routes.insert(
                        OTHER.into(),
                        vec![RouteStats::new(OTHER.to_string(), "", id, 0)],
                    );
                }
                (OTHER, 0, true)
            }
        };
        let Some(stats) = inner.routes.get_mut(list_key).and_then(|v| v.get_mut(idx)) else {
            return Seen {
                level: 0,
                slow_mean_us: None,
            };
        };
        let latency_us = f.latency_us;
        let mean = stats.mean_us();
        let mut slow = stats.hits >= self.min_hits && latency_us as f64 > self.factor * mean;
        if slow {
            if stats.kept_in_sec.0 != now {
                stats.kept_in_sec = (now, 0);
            }
            if stats.kept_in_sec.1 >= self.per_sec {
                m::MONITOR_OUTLIERS_CAPPED.inc();
                slow = false;
            } else {
                stats.kept_in_sec.1 += 1;
            }
        }
        stats.last = now;
        stats.hits += 1;
        stats.sum_us += latency_us;
        stats.max_us = stats.max_us.max(latency_us);
        if f.status >= 500 {
            stats.errors += 1;
        }
        stats.hist[bucket(latency_us).min(BUCKETS - 1)] += 1;
        let hour = (now / 3600) as u64;
        let slot = &mut stats.hours[(hour % HOURS as u64) as usize];
        if slot.0 != hour {
            *slot = (hour, 0);
        }
        slot.1 += 1;
        // An `(other)` request is recorded under its own route's level and names.
        let level = self.capped(if overflow {
            self.level_of(f.route)
        } else {
            stats.level
        });
        let entry = stats.id;
        if let (Some(rec), true) = (&self.recorder, level >= 1) {
            if inner.pending.len() >= rec.settings.queue_max {
                m::MONITOR_DROPPED.inc();
            } else {
                let c = capture(level);
                let names = overflow.then(|| (key.into(), f.method.into()));
                let extra =
                    (names.is_some() || c.group.is_some() || c.breakdown.is_some()).then(|| {
                        Box::new(Extra {
                            names,
                            group: c.group,
                            breakdown: c.breakdown,
                        })
                    });
                inner.pending.push(Pending {
                    time_ms: f.now_ms,
                    duration_us: latency_us,
                    user: c.user,
                    extra,
                    ip: c.ip,
                    status: f.status,
                    entry,
                });
            }
        }
        if slow {
            if inner.slow.len() == SLOW_KEPT {
                inner.slow.pop_front();
            }
            inner.slow.push_back(SlowRequest {
                time: now,
                method: f.method.to_string(),
                route: key.to_string(),
                path: f.path.chars().take(300).collect(),
                query: redact_query(f.query),
                status: f.status,
                latency_us,
                route_mean_us: mean as u64,
            });
        }
        Seen {
            level,
            slow_mean_us: slow.then_some(mean as u64),
        }
    }

    /// A snapshot for `/monitor`.
    pub fn report(&self) -> MonitorReport {
        let now = now_secs();
        let hour = (now / 3600) as u64;
        let hours_of = |s: &RouteStats| -> Vec<u64> {
            (0..HOURS as u64)
                .map(|back| {
                    let h = hour - (HOURS as u64 - 1 - back);
                    let slot = s.hours[(h % HOURS as u64) as usize];
                    if slot.0 == h {
                        slot.1
                    } else {
                        0
                    }
                })
                .collect()
        };
        let inner = self.lock();
        let mut routes: Vec<RouteReport> = inner
            .routes
            .values()
            .flatten()
            .map(|s| RouteReport {
                route: s.label.clone(),
                hits: s.hits,
                errors: s.errors,
                mean_us: s.mean_us() as u64,
                median_us: s.quantile_us(0.5),
                p99_us: s.quantile_us(0.99),
                max_us: s.max_us,
                per_hour: hours_of(s),
                last: s.last,
            })
            .collect();
        routes.sort_by(|a, b| b.hits.cmp(&a.hits).then(a.route.cmp(&b.route)));
        let mut per_hour = vec![0; HOURS];
        for r in &routes {
            for (t, h) in per_hour.iter_mut().zip(&r.per_hour) {
                *t += h;
            }
        }
        let mut slow: Vec<SlowRequest> = inner.slow.iter().cloned().collect();
        slow.sort_by_key(|s| std::cmp::Reverse(s.latency_us));
        MonitorReport {
            since: self.since,
            routes,
            per_hour,
            current_hour: (hour * 3600) as i64,
            slow,
        }
    }
}

impl HitSource for Monitor {
    /// The kept records, as [`Hit`]s built here (the writer's thread), not under the lock.
    fn take_hits(&self, out: &mut Vec<Hit>) {
        let Some(rec) = &self.recorder else {
            return;
        };
        // The vector taken last time, empty, its memory kept: the request threads push into
        // memory already mapped, and no allocation is made under the lock.
        let mut pending =
            std::mem::take(&mut *self.spare.lock().unwrap_or_else(PoisonError::into_inner));
        let names = {
            let mut inner = self.lock();
            if inner.pending.is_empty() {
                drop(inner);
                *self.spare.lock().unwrap_or_else(PoisonError::into_inner) = pending;
                return;
            }
            std::mem::swap(&mut inner.pending, &mut pending);
            inner.names.clone()
        };
        out.reserve(pending.len());
        let unknown: (Arc<str>, Arc<str>) = (UNMATCHED.into(), "".into());
        for p in pending.drain(..) {
            let (own, group, breakdown) = match p.extra {
                Some(e) => (e.names, e.group, e.breakdown),
                None => (None, None, None),
            };
            let (route, method) =
                own.unwrap_or_else(|| names.get(p.entry as usize).unwrap_or(&unknown).clone());
            out.push(Hit {
                time_ms: p.time_ms,
                route,
                method,
                status: p.status,
                duration_us: p.duration_us,
                version: rec.version.clone(),
                ip: p.ip.map_or(ClientIp::Unknown, ClientIp::Addr),
                user: p.user,
                group,
                breakdown,
            });
        }
        *self.spare.lock().unwrap_or_else(PoisonError::into_inner) = pending;
    }
}

/// Header names whose values are never kept (besides any containing `auth`, `token`,
/// `secret`, `password`, `key` or `cookie`).
fn secret_header(name: &str) -> bool {
    [
        "auth", "token", "secret", "password", "passwd", "key", "cookie", "session", "csrf",
    ]
    .iter()
    .any(|s| name.contains(s))
}

/// The request headers as `name: value` lines, secret ones redacted, at most 50 lines of
/// 300 characters.
pub fn redact_headers(headers: &actix_web::http::header::HeaderMap) -> String {
    let mut lines: Vec<String> = headers
        .iter()
        .take(50)
        .map(|(k, v)| {
            let name = k.as_str();
            let value = if secret_header(name) {
                "***".to_string()
            } else {
                String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .take(300)
                    .collect()
            };
            format!("{name}: {value}")
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

/// Middleware: times the request (with the span recorder installed), records it in memory,
/// hands it to the stored monitor by its route's level, counts HTTP responses.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let monitor = req.app_data::<web::Data<Monitor>>().cloned();
    let span_set = std::rc::Rc::new(Spans::default());
    let res = spans::scope(span_set.clone(), next.call(req)).await?;
    let latency = started.elapsed().as_micros() as u64;
    let status = res.status().as_u16();
    m::HTTP_REQUESTS.inc();
    if status >= 500 {
        m::HTTP_SERVER_ERRORS.inc();
    } else if status >= 400 {
        m::HTTP_CLIENT_ERRORS.inc();
    }
    if let Some(mon) = monitor {
        let r = res.request();
        let pattern = r.match_pattern();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let finished = Finished {
            method: r.method().as_str(),
            route: pattern.as_deref(),
            path: r.path(),
            query: r.query_string(),
            status,
            latency_us: latency,
            now_ms,
        };
        // Level 0 stops at the figures: `capture` runs only for a record (level ≥ 1).
        let seen = mon.finish(&finished, |level| match &mon.recorder {
            Some(rec) => rec.capture(r, level, &span_set),
            None => Capture::default(),
        });
        if let (Some(rec), Some(mean), true) = (&mon.recorder, seen.slow_mean_us, seen.level >= 2) {
            let c = rec.capture(r, seen.level, &span_set);
            let (cpu_percent, rss_bytes) = crate::monitor::sysinfo::sample();
            rec.tx.send(Record::Outlier(Box::new(OutlierRecord {
                request: RequestRecord {
                    time_ms: now_ms,
                    route: finished.route.unwrap_or(UNMATCHED).to_string(),
                    method: finished.method.to_string(),
                    status,
                    duration_us: latency,
                    version: rec.version.to_string(),
                    ip: c.ip.map(|a| a.to_string()).unwrap_or_default(),
                    user: c.user.as_deref().unwrap_or("").to_string(),
                    group: c.group.map(String::from),
                    breakdown: c.breakdown,
                },
                route_mean_us: mean,
                query: redact_query(r.query_string()),
                headers: redact_headers(r.headers()),
                cpu_percent,
                rss_bytes,
                breakdown: span_set.breakdown(),
            })));
        }
    }
    Ok(res)
}

fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2} s", us as f64 / 1e6)
    } else if us >= 1000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} µs")
    }
}

/// Bars for `counts` as an SVG of `w`×`h` (numbers only, nothing to escape).
pub(crate) fn bars_svg(counts: &[u64], w: f64, h: f64, class: &str) -> String {
    use std::fmt::Write as _;
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let n = counts.len().max(1) as f64;
    let bw = w / n;
    let mut out = format!(
        "<svg class=\"{class}\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"hits per hour\">"
    );
    for (i, &c) in counts.iter().enumerate() {
        let bh = if c == 0 {
            0.0
        } else {
            (c as f64 / max * (h - 2.0)).max(1.5)
        };
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\"><title>{} hits</title></rect>",
            i as f64 * bw + 0.5,
            h - bh,
            (bw - 1.0).max(0.5),
            bh,
            c
        );
    }
    out.push_str("</svg>");
    out
}

#[derive(Serialize)]
struct RouteView {
    route: String,
    hits: u64,
    errors: u64,
    mean: String,
    median: String,
    p99: String,
    max: String,
    spark: String,
    last_iso: String,
    last_utc: String,
    last: i64,
}

#[derive(Serialize)]
struct SlowView {
    time: i64,
    time_iso: String,
    time_utc: String,
    method: String,
    route: String,
    path: String,
    query: String,
    status: u16,
    latency: String,
    factor: String,
}

#[derive(Serialize)]
struct MonitorView {
    title: &'static str,
    nav_monitor: bool,
    scripts: &'static [&'static str],
    page_config: String,
    since_iso: String,
    since_utc: String,
    since: i64,
    total: u64,
    per_hour_svg: String,
    per_hour_max: u64,
    routes: Vec<RouteView>,
    slow: Vec<SlowView>,
    slow_factor: f64,
    slow_min_hits: u64,
}

/// `GET /monitor`.
pub async fn page(
    state: web::Data<super::WebState>,
    monitor: Option<web::Data<Monitor>>,
) -> Result<actix_web::HttpResponse, super::PageError> {
    use super::templates::{fmt_utc, iso_utc, json_for_html};
    let (slow_factor, slow_min_hits) = monitor
        .as_ref()
        .map_or((SLOW_FACTOR, SLOW_MIN_HITS), |m| (m.factor, m.min_hits));
    let report = monitor
        .map(|m| m.report())
        .unwrap_or_else(|| Monitor::new().report());
    let view = MonitorView {
        title: "Monitor",
        nav_monitor: true,
        scripts: &["common.js"],
        page_config: json_for_html(&serde_json::json!({
            "page": "monitor",
            "timezone": state.settings.timezone,
        }))?,
        since_iso: iso_utc(report.since),
        since_utc: fmt_utc(report.since),
        since: report.since,
        total: report.routes.iter().map(|r| r.hits).sum(),
        per_hour_svg: bars_svg(&report.per_hour, 720.0, 90.0, "bars"),
        per_hour_max: report.per_hour.iter().copied().max().unwrap_or(0),
        routes: report
            .routes
            .iter()
            .map(|r| RouteView {
                route: r.route.clone(),
                hits: r.hits,
                errors: r.errors,
                mean: fmt_us(r.mean_us),
                median: fmt_us(r.median_us),
                p99: fmt_us(r.p99_us),
                max: fmt_us(r.max_us),
                spark: bars_svg(&r.per_hour, 120.0, 22.0, "spark"),
                last_iso: iso_utc(r.last),
                last_utc: fmt_utc(r.last),
                last: r.last,
            })
            .collect(),
        slow: report
            .slow
            .iter()
            .take(100)
            .map(|s| SlowView {
                time: s.time,
                time_iso: iso_utc(s.time),
                time_utc: fmt_utc(s.time),
                method: s.method.clone(),
                route: s.route.clone(),
                path: s.path.clone(),
                query: s.query.clone(),
                status: s.status,
                latency: fmt_us(s.latency_us),
                factor: format!(
                    "{:.1}×",
                    s.latency_us as f64 / s.route_mean_us.max(1) as f64
                ),
            })
            .collect(),
        slow_factor,
        slow_min_hits,
    };
    Ok(super::panorama::html_response(
        actix_web::http::StatusCode::OK,
        state.templates.render("monitor", &view)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_monotonic_and_tight() {
        let mut last = 0;
        for us in [
            0u64,
            1,
            63,
            64,
            65,
            100,
            1000,
            10_000,
            1_000_000,
            u32::MAX as u64,
        ] {
            let b = bucket(us);
            assert!(b >= last, "{us}");
            last = b;
            assert!(bucket_upper(b) >= us, "{us} > upper {}", bucket_upper(b));
            if us >= 64 {
                assert!((bucket_upper(b) - us) as f64 / us as f64 <= 0.0625, "{us}");
            }
        }
        assert!(bucket(u64::MAX) < BUCKETS);
    }

    #[test]
    fn quantiles_and_slow_requests() {
        let m = Monitor::new();
        let now = 1_800_000_000;
        for i in 0..100 {
            m.record("GET", Some("/api"), "/api", "metric=x", 200, 1000 + i, now);
        }
        m.record(
            "GET",
            Some("/api"),
            "/api",
            "metric=x&key=sekrit",
            200,
            50_000,
            now,
        );
        m.record("GET", None, "/nope", "", 404, 10, now);
        let r = m.report();
        let api = r.routes.iter().find(|r| r.route == "GET /api").unwrap();
        assert_eq!(api.hits, 101);
        assert!((1000..1150).contains(&api.median_us), "{}", api.median_us);
        assert!(api.p99_us >= 1090, "{}", api.p99_us);
        assert_eq!(api.max_us, 50_000);
        assert_eq!(r.slow.len(), 1);
        assert_eq!(r.slow[0].query, "metric=x&key=***");
        assert!(r.routes.iter().any(|r| r.route == "GET (unmatched)"));
    }

    #[test]
    fn the_level_cap_lowers_every_route_until_lifted() {
        let settings = MonitorSettings {
            default_level: 2,
            rules: vec![crate::monitor::LevelRule {
                route: "/flux/*".into(),
                level: 3,
            }],
            ..MonitorSettings::default()
        };
        let (tx, _rx) = crate::monitor::channel(16);
        let m = Monitor::with_recorder(Recorder::new(settings, tx));
        let now = 1_800_000_000;
        let level = |route: Option<&str>| m.record("GET", route, "/x", "", 200, 100, now).level;
        assert_eq!(level(Some("/api")), 2);
        assert_eq!(level(Some("/flux/metric_data")), 3);
        m.cap_levels(0);
        assert_eq!(level(Some("/api")), 0);
        assert_eq!(level(Some("/flux/metric_data")), 0);
        assert_eq!(level(None), 0);
        m.cap_levels(2);
        assert_eq!(level(Some("/flux/metric_data")), 2);
        m.cap_levels(u8::MAX);
        assert_eq!(level(Some("/api")), 2);
        assert_eq!(level(Some("/flux/metric_data")), 3);
    }

    #[test]
    fn slow_requests_are_capped_per_route_and_second() {
        let m = Monitor::new();
        let now = 1_800_000_000;
        let first = m.record("GET", Some("/api"), "/api", "", 200, 1000, now);
        assert_eq!(first.level, 0);
        for _ in 0..99 {
            let seen = m.record("GET", Some("/api"), "/api", "", 200, 1000, now);
            assert_eq!(seen.slow_mean_us, None);
        }
        let kept = (0..25)
            .filter(|_| {
                m.record("GET", Some("/api"), "/api", "", 200, 90_000, now)
                    .slow_mean_us
                    .is_some()
            })
            .count();
        assert_eq!(kept, SLOW_PER_SEC as usize);
        // Another route has its own allowance; the next second too.
        for _ in 0..30 {
            m.record("POST", Some("/api"), "/api", "", 200, 1000, now);
        }
        assert!(m
            .record("POST", Some("/api"), "/api", "", 200, 90_000, now)
            .slow_mean_us
            .is_some());
        assert!(m
            .record("GET", Some("/api"), "/api", "", 200, 900_000, now + 1)
            .slow_mean_us
            .is_some());
        let r = m.report();
        assert_eq!(r.slow.len(), SLOW_PER_SEC as usize + 2);
        let get = r.routes.iter().find(|r| r.route == "GET /api").unwrap();
        assert_eq!(get.hits, 126, "capped requests still count");
        assert!(r.routes.iter().any(|r| r.route == "POST /api"));
    }

    fn stored(settings: MonitorSettings) -> (Monitor, tokio::sync::mpsc::Receiver<Record>) {
        let (tx, rx) = crate::monitor::channel(16);
        (Monitor::with_recorder(Recorder::new(settings, tx)), rx)
    }

    fn taken(m: &Monitor) -> Vec<Hit> {
        let mut out = Vec::new();
        m.take_hits(&mut out);
        out
    }

    #[test]
    fn routes_over_the_limit_share_one_entry_but_keep_their_names_in_records() {
        let (m, _rx) = stored(MonitorSettings::default());
        for i in 0..MAX_ROUTES + 5 {
            let route = format!("/r{i}");
            m.record("GET", Some(&route), &route, "", 200, 10, 1);
        }
        let r = m.report();
        assert_eq!(r.routes.len(), MAX_ROUTES + 1);
        let other = r.routes.iter().find(|r| r.route == "(other)").unwrap();
        assert_eq!(other.hits, 5);
        let hits = taken(&m);
        assert_eq!(hits.len(), MAX_ROUTES + 5);
        for (i, h) in hits.iter().enumerate() {
            assert_eq!(&*h.route, format!("/r{i}"));
            assert_eq!(&*h.method, "GET");
        }
    }

    #[test]
    fn records_are_kept_until_taken_with_what_the_request_gave() {
        let settings = MonitorSettings {
            version: "9.9 (test)".into(),
            rules: vec![
                crate::monitor::LevelRule {
                    route: "/quiet".into(),
                    level: 0,
                },
                crate::monitor::LevelRule {
                    route: "/deep".into(),
                    level: 3,
                },
            ],
            ..MonitorSettings::default()
        };
        let (m, _rx) = stored(settings);
        let admin: Arc<str> = "admin".into();
        let ip: IpAddr = [10, 1, 2, 3].into();
        let asked = std::cell::RefCell::new(Vec::new());
        let finish = |route: &'static str, method: &'static str, status: u16, ms: i64| {
            let f = Finished {
                method,
                route: Some(route),
                path: route,
                query: "",
                status,
                latency_us: 1_000 + ms as u64,
                now_ms: 1_800_000_000_000 + ms,
            };
            m.finish(&f, |level| {
                asked.borrow_mut().push(level);
                Capture {
                    ip: Some(ip),
                    user: Some(admin.clone()),
                    group: (route == "/deep").then(|| "canary".into()),
                    breakdown: (level >= 3).then(|| Breakdown {
                        redis_us: 7,
                        ..Breakdown::default()
                    }),
                }
            })
        };
        assert_eq!(finish("/api", "GET", 200, 1).level, 2);
        assert_eq!(finish("/quiet", "GET", 200, 2).level, 0);
        assert_eq!(finish("/deep", "POST", 503, 3).level, 3);
        assert_eq!(finish("/api", "GET", 404, 4).level, 2);
        assert_eq!(*asked.borrow(), [2, 3, 2], "level 0 captures nothing");
        let hits = taken(&m);
        let got: Vec<_> = hits
            .iter()
            .map(|h| {
                (
                    &*h.route,
                    &*h.method,
                    h.status,
                    h.time_ms - 1_800_000_000_000,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("/api", "GET", 200, 1),
                ("/deep", "POST", 503, 3),
                ("/api", "GET", 404, 4)
            ]
        );
        for h in &hits {
            assert_eq!(&*h.version, "9.9 (test)");
            assert_eq!(h.ip, ClientIp::Addr(ip));
            assert_eq!(h.user.as_deref(), Some("admin"));
            assert_eq!(
                h.duration_us,
                1_000 + (h.time_ms - 1_800_000_000_000) as u64
            );
        }
        assert_eq!(hits[1].group.as_deref(), Some("canary"));
        assert_eq!(hits[1].breakdown.map(|b| b.redis_us), Some(7));
        assert_eq!((hits[0].group.as_deref(), hits[0].breakdown), (None, None));
        assert!(taken(&m).is_empty(), "taken once");
        finish("/api", "GET", 200, 5);
        assert_eq!(taken(&m).len(), 1);
    }

    #[test]
    fn kept_records_are_bounded_and_the_rest_counted() {
        let (mon, _rx) = stored(MonitorSettings {
            queue_max: 10,
            ..MonitorSettings::default()
        });
        let before = m::MONITOR_DROPPED.get();
        for i in 0..25 {
            mon.record("GET", Some("/api"), "/api", "", 200, 10, i);
        }
        assert!(m::MONITOR_DROPPED.get() >= before + 15);
        let hits = taken(&mon);
        assert_eq!(hits.len(), 10, "the first ten, the rest dropped");
        assert_eq!(hits[9].time_ms, 9_000);
        // Room again once taken; a monitor without storage keeps nothing.
        mon.record("GET", Some("/api"), "/api", "", 200, 10, 30);
        assert_eq!(taken(&mon).len(), 1);
        let plain = Monitor::new();
        plain.record("GET", Some("/api"), "/api", "", 200, 10, 1);
        assert!(taken(&plain).is_empty());
    }

    #[test]
    fn header_redaction() {
        use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Basic YWRtaW46cGFzcw=="),
            ("cookie", "session=abc"),
            ("key", "flux-secret-key"),
            ("x-api-token", "t0k3n"),
            ("user-agent", "curl/8"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let text = redact_headers(&h);
        assert_eq!(
            text,
            "authorization: ***\ncookie: ***\nkey: ***\nuser-agent: curl/8\nx-api-token: ***"
        );
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_query("metric=a&password=x&Key=y&auth_token=z&k=v&flag"),
            "metric=a&password=***&Key=***&auth_token=***&k=v&flag"
        );
        assert_eq!(redact_query("my%5Fpassword=1"), "my%5Fpassword=***");
        assert!(redact_query(&"a=b&".repeat(200)).chars().count() <= 301);
    }
}
