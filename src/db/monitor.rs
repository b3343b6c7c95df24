//! The endpoint monitor's tables, `monitor_requests` and `monitor_outliers` (migration
//! `2026-12-06-000002_monitor`) and `monitor_batches` (`…-000012_monitor_batches`), and every
//! query on them: batch inserts (the monitor writer), pruning, and the reads behind the
//! monitor views and `/monitor/export`. Blocking functions taking `&Pool`, like
//! [`super::queries`]: call them through `web::block` or [`super::Bounded`]. All values are
//! bound parameters.
//!
//! A batch insert is idempotent: it writes its batch id (the primary key of
//! `monitor_batches`) in the same transaction as its rows, so a batch whose first attempt
//! committed but was reported failed (timed out, connection dropped after the commit) fails
//! on that key when the writer retries it, and is then found there and reported as already
//! written: the records are in the tables exactly once.

use diesel::prelude::*;

use super::{DbError, Pool, PoolKind};
use std::net::IpAddr;
use std::sync::Arc;

use crate::monitor::messages::{Breakdown, ClientIp, Hit, OutlierRecord, RequestRecord};

/// Rows per multi-row INSERT of requests (13 parameters each, 3,328 a statement: under every
/// backend's limit, SQLite's 32,766 included). A full chunk is one statement type
/// (`&[_; INSERT_CHUNK]`), so diesel prepares it once per connection and reuses it; the rest
/// of a batch goes in chunks of [`SMALL_CHUNK`] rows, then single rows (each also prepared
/// once).
const INSERT_CHUNK: usize = 256;
/// Rows per INSERT of what is left of a batch after its [`INSERT_CHUNK`]s.
const SMALL_CHUNK: usize = 16;
/// Rows per multi-row INSERT of outliers (17 parameters each; few rows).
const OUTLIER_CHUNK: usize = 500;
/// Upper bound on rows one read returns.
pub const MAX_ROWS: i64 = 500_000;

diesel::table! {
    /// One row per monitored request.
    monitor_requests (id) {
        id -> BigInt,
        time_ms -> BigInt,
        route -> Varchar,
        method -> Varchar,
        status -> Integer,
        duration_us -> BigInt,
        version -> Varchar,
        ip -> Varchar,
        user_name -> Varchar,
        group_tag -> Nullable<Varchar>,
        redis_us -> Nullable<BigInt>,
        sql_us -> Nullable<BigInt>,
        graphite_us -> Nullable<BigInt>,
        template_us -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// One row per committed batch (its id, when, how many requests), for idempotent retries.
    monitor_batches (id) {
        id -> BigInt,
        time_ms -> BigInt,
        requests -> Integer,
    }
}

diesel::table! {
    /// One row per outlier, with its context.
    monitor_outliers (id) {
        id -> BigInt,
        time_ms -> BigInt,
        route -> Varchar,
        method -> Varchar,
        status -> Integer,
        duration_us -> BigInt,
        version -> Varchar,
        ip -> Varchar,
        user_name -> Varchar,
        route_mean_us -> BigInt,
        query_string -> Text,
        headers -> Text,
        cpu_percent -> Double,
        rss_bytes -> BigInt,
        redis_us -> BigInt,
        sql_us -> BigInt,
        graphite_us -> BigInt,
        template_us -> BigInt,
    }
}

/// A shared string bound as `Text`: the names every record repeats (route, method, version,
/// user, IP) go into a row as a reference count, not a copy, and the row owns them, so a
/// fixed-size chunk of rows is a statement type diesel prepares once and caches (a statement
/// over borrowed rows, or over a `Vec` of rows, is prepared again for every chunk).
#[derive(Debug, Clone, diesel::expression::AsExpression)]
#[diesel(sql_type = diesel::sql_types::Text)]
struct SharedStr(Arc<str>);

impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for SharedStr
where
    DB: diesel::backend::Backend,
    str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
{
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, DB>,
    ) -> diesel::serialize::Result {
        <str as diesel::serialize::ToSql<diesel::sql_types::Text, DB>>::to_sql(&self.0, out)
    }
}

#[derive(Insertable)]
#[diesel(table_name = monitor_requests, treat_none_as_default_value = false)]
struct NewRequest {
    time_ms: i64,
    route: SharedStr,
    method: SharedStr,
    status: i32,
    duration_us: i64,
    version: SharedStr,
    ip: SharedStr,
    user_name: SharedStr,
    group_tag: Option<String>,
    redis_us: Option<i64>,
    sql_us: Option<i64>,
    graphite_us: Option<i64>,
    template_us: Option<i64>,
}

/// A row of [`NewRequest`] without a group tag or a breakdown (levels 1 and 2 without a
/// group header: nearly every record): five parameters fewer to bind, the columns left to
/// their default, NULL. `treat_none_as_default_value = false` matters here too, although no
/// field is an `Option`: without it diesel's derive makes every field optional, and SQLite
/// (no `DEFAULT` in `VALUES`) then inserts a batch one row per statement: twice the
/// instructions per record of the 13-column statement under valgrind.
#[derive(Insertable)]
#[diesel(table_name = monitor_requests, treat_none_as_default_value = false)]
struct PlainRequest {
    time_ms: i64,
    route: SharedStr,
    method: SharedStr,
    status: i32,
    duration_us: i64,
    version: SharedStr,
    ip: SharedStr,
    user_name: SharedStr,
}

/// Consecutive rows of one shape.
enum Rows {
    Plain(Vec<PlainRequest>),
    Full(Vec<NewRequest>),
}

/// `rows` split into runs of one shape, in order (ids follow the batch's order).
fn by_shape(rows: Vec<NewRequest>) -> Vec<Rows> {
    let mut out: Vec<Rows> = Vec::new();
    for row in rows {
        let plain = row.group_tag.is_none()
            && row.redis_us.is_none()
            && row.sql_us.is_none()
            && row.graphite_us.is_none()
            && row.template_us.is_none();
        match (plain, out.last_mut()) {
            (true, Some(Rows::Plain(v))) => v.push(PlainRequest::of(row)),
            (true, _) => out.push(Rows::Plain(vec![PlainRequest::of(row)])),
            (false, Some(Rows::Full(v))) => v.push(row),
            (false, _) => out.push(Rows::Full(vec![row])),
        }
    }
    out
}

impl PlainRequest {
    fn of(r: NewRequest) -> Self {
        PlainRequest {
            time_ms: r.time_ms,
            route: r.route,
            method: r.method,
            status: r.status,
            duration_us: r.duration_us,
            version: r.version,
            ip: r.ip,
            user_name: r.user_name,
        }
    }
}

/// The rows of `hits`; client addresses formatted here (off the request path), the last one
/// reused while it repeats.
fn new_requests(hits: &[Hit]) -> Vec<NewRequest> {
    let empty: Arc<str> = Arc::from("");
    let mut last_ip: Option<(IpAddr, Arc<str>)> = None;
    hits.iter()
        .map(|r| {
            let ip = match &r.ip {
                ClientIp::Unknown => empty.clone(),
                ClientIp::Text(t) => t.clone(),
                ClientIp::Addr(a) => match &last_ip {
                    Some((l, text)) if l == a => text.clone(),
                    _ => {
                        let text: Arc<str> = a.to_string().into();
                        last_ip = Some((*a, text.clone()));
                        text
                    }
                },
            };
            let b = r.breakdown;
            NewRequest {
                time_ms: r.time_ms,
                route: SharedStr(r.route.clone()),
                method: SharedStr(r.method.clone()),
                status: r.status as i32,
                duration_us: r.duration_us.min(i64::MAX as u64) as i64,
                version: SharedStr(r.version.clone()),
                ip: SharedStr(ip),
                user_name: SharedStr(r.user.clone().unwrap_or_else(|| empty.clone())),
                group_tag: r.group.as_deref().map(str::to_string),
                redis_us: b.map(|b| b.redis_us as i64),
                sql_us: b.map(|b| b.sql_us as i64),
                graphite_us: b.map(|b| b.graphite_us as i64),
                template_us: b.map(|b| b.template_us as i64),
            }
        })
        .collect()
}

#[derive(Insertable)]
#[diesel(table_name = monitor_outliers)]
struct NewOutlier<'a> {
    time_ms: i64,
    route: &'a str,
    method: &'a str,
    status: i32,
    duration_us: i64,
    version: &'a str,
    ip: &'a str,
    user_name: &'a str,
    route_mean_us: i64,
    query_string: &'a str,
    headers: &'a str,
    cpu_percent: f64,
    rss_bytes: i64,
    redis_us: i64,
    sql_us: i64,
    graphite_us: i64,
    template_us: i64,
}

impl<'a> NewOutlier<'a> {
    fn of(o: &'a OutlierRecord) -> Self {
        let r = &o.request;
        NewOutlier {
            time_ms: r.time_ms,
            route: &r.route,
            method: &r.method,
            status: r.status as i32,
            duration_us: r.duration_us as i64,
            version: &r.version,
            ip: &r.ip,
            user_name: &r.user,
            route_mean_us: o.route_mean_us as i64,
            query_string: &o.query,
            headers: &o.headers,
            cpu_percent: if o.cpu_percent.is_finite() {
                o.cpu_percent
            } else {
                0.0
            },
            rss_bytes: o.rss_bytes.min(i64::MAX as u64) as i64,
            redis_us: o.breakdown.redis_us as i64,
            sql_us: o.breakdown.sql_us as i64,
            graphite_us: o.breakdown.graphite_us as i64,
            template_us: o.breakdown.template_us as i64,
        }
    }
}

type RequestTuple = (
    i64,
    i64,
    String,
    String,
    i32,
    i64,
    String,
    String,
    String,
    Option<String>,
    (Option<i64>, Option<i64>, Option<i64>, Option<i64>),
);

fn request_of(t: RequestTuple) -> (i64, RequestRecord) {
    let (id, time_ms, route, method, status, duration_us, version, ip, user, group, b) = t;
    let breakdown = match b {
        (Some(r), Some(s), Some(g), Some(t)) => Some(Breakdown {
            redis_us: r.max(0) as u64,
            sql_us: s.max(0) as u64,
            graphite_us: g.max(0) as u64,
            template_us: t.max(0) as u64,
        }),
        _ => None,
    };
    (
        id,
        RequestRecord {
            time_ms,
            route,
            method,
            status: status.clamp(0, u16::MAX as i32) as u16,
            duration_us: duration_us.max(0) as u64,
            version,
            ip,
            user,
            group,
            breakdown,
        },
    )
}

type OutlierTuple = (
    (i64, i64, String, String, i32, i64, String, String, String),
    (i64, String, String, f64, i64),
    (i64, i64, i64, i64),
);

fn outlier_of(t: OutlierTuple) -> (i64, OutlierRecord) {
    let ((id, time_ms, route, method, status, duration_us, version, ip, user), o, b) = t;
    let (route_mean_us, query, headers, cpu_percent, rss) = o;
    let breakdown = Breakdown {
        redis_us: b.0.max(0) as u64,
        sql_us: b.1.max(0) as u64,
        graphite_us: b.2.max(0) as u64,
        template_us: b.3.max(0) as u64,
    };
    (
        id,
        OutlierRecord {
            request: RequestRecord {
                time_ms,
                route,
                method,
                status: status.clamp(0, u16::MAX as i32) as u16,
                duration_us: duration_us.max(0) as u64,
                version,
                ip,
                user,
                group: None,
                breakdown: Some(breakdown),
            },
            route_mean_us: route_mean_us.max(0) as u64,
            query,
            headers,
            cpu_percent,
            rss_bytes: rss.max(0) as u64,
            breakdown,
        },
    )
}

/// The query bodies, instantiated per backend (diesel's query types are backend-specific).
macro_rules! monitor_queries {
    () => {
        use diesel::prelude::*;

        use super::RequestTuple;
        use super::{by_shape, new_requests, Rows};
        use super::{monitor_batches as bt, monitor_outliers as o, monitor_requests as r};
        use super::{Batch, Inserted, NewOutlier, NewRequest, OutlierTuple, PlainRequest};
        use super::{INSERT_CHUNK, OUTLIER_CHUNK, SMALL_CHUNK};

        pub fn insert(c: &mut Conn, batch: &Batch) -> QueryResult<Inserted> {
            // The batch row first: a write as the transaction's first statement waits for
            // SQLite's lock (busy_timeout) rather than failing, and on MySQL/PostgreSQL it
            // waits for a still-open earlier attempt of the same batch, then fails on the key.
            let written = c.transaction::<_, diesel::result::Error, _>(|c| {
                diesel::insert_into(bt::table)
                    .values((
                        bt::id.eq(batch.id),
                        bt::time_ms.eq(batch.time_ms),
                        bt::requests.eq(batch.requests.len().min(i32::MAX as usize) as i32),
                    ))
                    .execute(c)?;
                // Fixed-size arrays: each size is one statement type, prepared once per
                // connection and cached (a Vec's statement would be prepared every time).
                macro_rules! insert_rows {
                    ($rows:expr, $t:ty) => {{
                        let mut n = 0;
                        let big = $rows.chunks_exact(INSERT_CHUNK);
                        let rest = big.remainder();
                        for chunk in big {
                            let Ok(chunk) = <&[$t; INSERT_CHUNK]>::try_from(chunk) else {
                                return Err(diesel::result::Error::RollbackTransaction);
                            };
                            n += diesel::insert_into(r::table).values(chunk).execute(c)?;
                        }
                        let small = rest.chunks_exact(SMALL_CHUNK);
                        let single = small.remainder();
                        for chunk in small {
                            let Ok(chunk) = <&[$t; SMALL_CHUNK]>::try_from(chunk) else {
                                return Err(diesel::result::Error::RollbackTransaction);
                            };
                            n += diesel::insert_into(r::table).values(chunk).execute(c)?;
                        }
                        for row in single {
                            n += diesel::insert_into(r::table).values(row).execute(c)?;
                        }
                        n
                    }};
                }
                let mut n = 0;
                for rows in by_shape(new_requests(&batch.requests)) {
                    n += match rows {
                        Rows::Plain(rows) => insert_rows!(rows, PlainRequest),
                        Rows::Full(rows) => insert_rows!(rows, NewRequest),
                    };
                }
                for chunk in batch.outliers.chunks(OUTLIER_CHUNK) {
                    let rows: Vec<NewOutlier<'_>> = chunk.iter().map(NewOutlier::of).collect();
                    diesel::insert_into(o::table).values(&rows).execute(c)?;
                }
                Ok(n)
            });
            match written {
                Ok(n) => Ok(Inserted {
                    requests: n,
                    already: false,
                }),
                // Whatever the error (a duplicate key is reported differently by each
                // driver): if the batch is there, an earlier attempt committed it.
                Err(err) => {
                    let seen: QueryResult<i64> =
                        bt::table.filter(bt::id.eq(batch.id)).count().get_result(c);
                    match seen {
                        Ok(n) if n > 0 => Ok(Inserted {
                            requests: batch.requests.len(),
                            already: true,
                        }),
                        _ => Err(err),
                    }
                }
            }
        }

        pub fn prune(c: &mut Conn, before_ms: i64) -> QueryResult<(usize, usize)> {
            let a = diesel::delete(r::table.filter(r::time_ms.lt(before_ms))).execute(c)?;
            let b = diesel::delete(o::table.filter(o::time_ms.lt(before_ms))).execute(c)?;
            diesel::delete(bt::table.filter(bt::time_ms.lt(before_ms))).execute(c)?;
            Ok((a, b))
        }

        pub fn requests(
            c: &mut Conn,
            from_ms: i64,
            until_ms: i64,
            limit: i64,
        ) -> QueryResult<Vec<RequestTuple>> {
            r::table
                .filter(r::time_ms.ge(from_ms))
                .filter(r::time_ms.lt(until_ms))
                .order((r::time_ms.asc(), r::id.asc()))
                .limit(limit)
                .select((
                    r::id,
                    r::time_ms,
                    r::route,
                    r::method,
                    r::status,
                    r::duration_us,
                    r::version,
                    r::ip,
                    r::user_name,
                    r::group_tag,
                    (r::redis_us, r::sql_us, r::graphite_us, r::template_us),
                ))
                .load(c)
        }

        pub fn count(c: &mut Conn) -> QueryResult<(i64, i64)> {
            let a = r::table.count().get_result(c)?;
            let b = o::table.count().get_result(c)?;
            Ok((a, b))
        }

        pub fn outliers(
            c: &mut Conn,
            id: Option<i64>,
            limit: i64,
        ) -> QueryResult<Vec<OutlierTuple>> {
            // One id, or all of them (one query shape for both).
            let (lo, hi) = id.map_or((i64::MIN, i64::MAX), |i| (i, i));
            o::table
                .filter(o::id.between(lo, hi))
                .order((o::time_ms.desc(), o::id.desc()))
                .limit(limit)
                .select((
                    (
                        o::id,
                        o::time_ms,
                        o::route,
                        o::method,
                        o::status,
                        o::duration_us,
                        o::version,
                        o::ip,
                        o::user_name,
                    ),
                    (
                        o::route_mean_us,
                        o::query_string,
                        o::headers,
                        o::cpu_percent,
                        o::rss_bytes,
                    ),
                    (o::redis_us, o::sql_us, o::graphite_us, o::template_us),
                ))
                .load(c)
        }
    };
}

mod sqlite_m {
    type Conn = diesel::SqliteConnection;
    monitor_queries!();
}

mod mysql_m {
    type Conn = crate::db::MysqlConn;
    monitor_queries!();
}

mod pg_m {
    type Conn = crate::db::PgConn;
    monitor_queries!();
}

/// Runs `$f(conn, args…)` of the backend module matching `$pool`, on one pooled connection.
macro_rules! dispatch {
    ($pool:expr, $f:ident ( $($arg:expr),* )) => {
        match $pool.kind() {
            PoolKind::Sqlite(p) => {
                let mut c = $pool.checkout(p)?;
                sqlite_m::$f(&mut *c $(, $arg)*).map_err(DbError::from)
            }
            PoolKind::Mysql(p) => crate::db::off_runtime(|| {
                let mut c = $pool.checkout(p)?;
                mysql_m::$f(&mut *c $(, $arg)*).map_err(DbError::from)
            }),
            PoolKind::Postgres(p) => crate::db::off_runtime(|| {
                let mut c = $pool.checkout(p)?;
                pg_m::$f(&mut *c $(, $arg)*).map_err(DbError::from)
            }),
        }
    };
}

/// One batch of records as the monitor writer sends it, and resends it unchanged until it
/// is written: `id` makes the insert idempotent.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Random, non-negative; unique per batch.
    pub id: i64,
    /// When the batch was formed, epoch milliseconds (pruned with the records).
    pub time_ms: i64,
    /// Its requests.
    pub requests: Vec<Hit>,
    /// Its outliers.
    pub outliers: Vec<OutlierRecord>,
}

impl Batch {
    /// A batch with a fresh random id, formed now.
    pub fn new(requests: Vec<Hit>, outliers: Vec<OutlierRecord>) -> Batch {
        Batch {
            id: new_batch_id(),
            time_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            requests,
            outliers,
        }
    }
}

/// A random non-negative 63-bit id (OS randomness; the clock and a counter if that fails).
fn new_batch_id() -> i64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut bytes = [0u8; 8];
    let n = if getrandom::getrandom(&mut bytes).is_ok() {
        u64::from_le_bytes(bytes)
    } else {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos
            ^ (u64::from(std::process::id()) << 40)
            ^ COUNTER.fetch_add(1, Ordering::Relaxed).rotate_left(20)
    };
    (n >> 1) as i64
}

/// What [`insert_batch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inserted {
    /// The batch's requests (inserted now, or earlier when `already`).
    pub requests: usize,
    /// The batch was already in the database (an earlier attempt committed): nothing inserted.
    pub already: bool,
}

/// Inserts `batch` in one transaction, unless its id is already recorded (then nothing).
pub fn insert_batch(pool: &Pool, batch: &Batch) -> Result<Inserted, DbError> {
    if batch.requests.is_empty() && batch.outliers.is_empty() {
        return Ok(Inserted {
            requests: 0,
            already: false,
        });
    }
    dispatch!(pool, insert(batch))
}

/// Inserts `requests` and `outliers` as one new batch; returns the requests inserted.
pub fn insert(
    pool: &Pool,
    requests: &[RequestRecord],
    outliers: &[OutlierRecord],
) -> Result<usize, DbError> {
    let batch = Batch::new(requests.iter().map(Hit::from).collect(), outliers.to_vec());
    insert_batch(pool, &batch).map(|i| i.requests)
}

/// Deletes records and outliers older than `before_ms`; returns how many of each.
pub fn prune(pool: &Pool, before_ms: i64) -> Result<(usize, usize), DbError> {
    dispatch!(pool, prune(before_ms))
}

/// Records with `from_ms <= time_ms < until_ms`, oldest first, at most `limit`
/// (clamped to [`MAX_ROWS`]), each with its id.
pub fn requests(
    pool: &Pool,
    from_ms: i64,
    until_ms: i64,
    limit: i64,
) -> Result<Vec<(i64, RequestRecord)>, DbError> {
    let rows = dispatch!(pool, requests(from_ms, until_ms, limit.clamp(1, MAX_ROWS)))?;
    Ok(rows.into_iter().map(request_of).collect())
}

/// (records, outliers) stored.
pub fn count(pool: &Pool) -> Result<(i64, i64), DbError> {
    dispatch!(pool, count())
}

/// The newest outliers (or the one with `id`), newest first.
pub fn outliers(
    pool: &Pool,
    id: Option<i64>,
    limit: i64,
) -> Result<Vec<(i64, OutlierRecord)>, DbError> {
    let rows = dispatch!(pool, outliers(id, limit.clamp(1, MAX_ROWS)))?;
    Ok(rows.into_iter().map(outlier_of).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testutil::TestDb;

    fn rec(i: i64, version: &str, slow: bool) -> RequestRecord {
        RequestRecord {
            time_ms: 1_800_000_000_000 + i * 1000,
            route: "/api".into(),
            method: "GET".into(),
            status: if i % 10 == 0 { 500 } else { 200 },
            duration_us: if slow { 90_000 } else { 1_000 + i as u64 },
            version: version.into(),
            ip: "127.0.0.1".into(),
            user: "admin".into(),
            group: (i % 2 == 0).then(|| "g".to_string()),
            breakdown: (i % 3 == 0).then_some(Breakdown {
                redis_us: 10,
                sql_us: 20,
                graphite_us: 0,
                template_us: 5,
            }),
        }
    }

    fn round_trip(pool: &Pool) {
        crate::db::migrate(pool).unwrap();
        // Runs of plain records (no group, no breakdown: one statement shape) around mixed
        // ones (the other shape), each run longer than a full chunk.
        let reqs: Vec<RequestRecord> = (0..1_500)
            .map(|i| {
                let mut r = rec(i, "1.0", false);
                if !(600..900).contains(&i) {
                    r.group = None;
                    r.breakdown = None;
                }
                r
            })
            .collect();
        let outlier = OutlierRecord {
            request: rec(7, "1.0", true),
            route_mean_us: 1_000,
            query: "metric=x&key=***".into(),
            headers: "user-agent: t\nauthorization: ***".into(),
            cpu_percent: 12.5,
            rss_bytes: 1 << 24,
            breakdown: Breakdown {
                redis_us: 1,
                sql_us: 80_000,
                graphite_us: 2,
                template_us: 3,
            },
        };
        assert_eq!(
            insert(pool, &reqs, std::slice::from_ref(&outlier)).unwrap(),
            1_500
        );
        assert_eq!(count(pool).unwrap(), (1_500, 1));
        let back = requests(pool, 0, i64::MAX, 10_000).unwrap();
        assert_eq!(back.len(), 1_500);
        for (b, r) in back.iter().zip(&reqs) {
            assert_eq!(&b.1, r);
        }
        // In the batch's order.
        assert!(back.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(reqs[600..900].iter().any(|r| r.breakdown.is_some()));
        assert!(reqs[600..900].iter().any(|r| r.group.is_some()));
        let o = outliers(pool, None, 10).unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].1.breakdown, outlier.breakdown);
        assert_eq!(o[0].1.headers, outlier.headers);
        assert_eq!(outliers(pool, Some(o[0].0), 1).unwrap().len(), 1);
        assert!(outliers(pool, Some(o[0].0 + 1), 1).unwrap().is_empty());
        // Prune everything before the 1000th record.
        let (a, b) = prune(pool, reqs[1000].time_ms).unwrap();
        assert_eq!((a, b), (1000, 1));
        assert_eq!(count(pool).unwrap(), (500, 0));
    }

    /// A batch sent twice (a retry after a lost answer) is written once; a pruned batch id
    /// is forgotten.
    fn retried_batch_is_written_once(pool: &Pool) {
        crate::db::migrate(pool).unwrap();
        let reqs: Vec<RequestRecord> = (0..10).map(|i| rec(i, "1.0", false)).collect();
        let outlier = OutlierRecord {
            request: rec(3, "1.0", true),
            route_mean_us: 1_000,
            query: String::new(),
            headers: String::new(),
            cpu_percent: 1.0,
            rss_bytes: 1,
            breakdown: Breakdown::default(),
        };
        let hits = || reqs.iter().map(Hit::from).collect::<Vec<_>>();
        let batch = Batch::new(hits(), vec![outlier]);
        let first = insert_batch(pool, &batch).unwrap();
        assert_eq!(
            first,
            Inserted {
                requests: 10,
                already: false
            }
        );
        let again = insert_batch(pool, &batch).unwrap();
        assert_eq!(
            again,
            Inserted {
                requests: 10,
                already: true
            }
        );
        assert_eq!(count(pool).unwrap(), (10, 1));
        // Another batch with the same records is another batch.
        let mut old = Batch::new(hits(), Vec::new());
        old.time_ms = 1_000;
        assert!(!insert_batch(pool, &old).unwrap().already);
        assert_eq!(count(pool).unwrap(), (20, 1));
        assert!(insert_batch(pool, &old).unwrap().already);
        // Pruning before 2000 ms removes no record but forgets the old batch's id.
        assert_eq!(prune(pool, 2_000).unwrap(), (0, 0));
        assert!(!insert_batch(pool, &old).unwrap().already);
        assert!(insert_batch(pool, &batch).unwrap().already);
        assert_eq!(count(pool).unwrap(), (30, 1));
        assert_eq!(insert(pool, &[], &[]).unwrap(), 0);
    }

    #[test]
    fn sqlite_round_trip() {
        let (_dir, pool) = crate::db::testutil::sqlite_db();
        round_trip(&pool);
    }

    #[test]
    fn sqlite_retried_batch_is_written_once() {
        let (_dir, pool) = crate::db::testutil::sqlite_db();
        retried_batch_is_written_once(&pool);
    }

    #[test]
    fn mysql_retried_batch_is_written_once() {
        let Some(db) = TestDb::mysql("monitor_retried_batch") else {
            return;
        };
        retried_batch_is_written_once(&db.pool);
    }

    #[test]
    fn postgres_retried_batch_is_written_once() {
        let Some(db) = TestDb::postgres("monitor_retried_batch") else {
            return;
        };
        retried_batch_is_written_once(&db.pool);
    }

    #[test]
    fn mysql_round_trip() {
        let Some(db) = TestDb::mysql("monitor_round_trip") else {
            return;
        };
        round_trip(&db.pool);
    }

    #[test]
    fn postgres_round_trip() {
        let Some(db) = TestDb::postgres("monitor_round_trip") else {
            return;
        };
        round_trip(&db.pool);
    }
}
