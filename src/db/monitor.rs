//! The endpoint monitor's tables, `monitor_request_blocks` (migration
//! `2026-12-06-000030_monitor_request_blocks`), `monitor_outliers` (`…-000002_monitor`),
//! `monitor_batches` (`…-000012_monitor_batches`) and the older per-request rows of
//! `monitor_requests` (`…-000002_monitor`, no longer written, read until pruned), and every
//! query on them: batch inserts (the monitor writer), pruning, and the reads behind the
//! monitor views and `/monitor/export`. Blocking functions taking `&Pool`, like
//! [`super::queries`]: call them through `web::block` or [`super::Bounded`]. All values are
//! bound parameters.
//!
//! A batch's requests are one row of `monitor_request_blocks` (encoded by
//! [`crate::monitor::block`]; its `first_ms`/`last_ms` bound the records' times), not a row
//! each: the per-request row insert was most of what monitoring cost a request. Reads take
//! the blocks overlapping their range, a page at a time in `first_ms` order, decode and
//! filter them, and stop once no later block can hold a record older than the ones kept.
//!
//! A batch insert is idempotent: it writes its batch id (the primary key of
//! `monitor_batches`) in the same transaction as its block and outlier rows, so a batch whose first attempt
//! committed but was reported failed (timed out, connection dropped after the commit) fails
//! on that key when the writer retries it, and is then found there and reported as already
//! written: the records are in the tables exactly once.

use diesel::prelude::*;

use super::{DbError, Pool, PoolKind};
use crate::monitor::block::{self, Block};
use crate::monitor::messages::{Breakdown, Hit, OutlierRecord, RequestRecord};
use crate::telemetry::ratelimit::LogLimiter;

/// Rows per multi-row INSERT of outliers (17 parameters each; few rows).
const OUTLIER_CHUNK: usize = 500;
/// Upper bound on records one read returns.
pub const MAX_ROWS: i64 = 500_000;
/// Blocks per read of `monitor_request_blocks` (each up to `[monitor] batch_max` records,
/// 10,000 by default: a page decodes up to 80,000 records at a time).
const BLOCK_PAGE: i64 = 8;

diesel::table! {
    /// One row per monitored request, as written before `monitor_request_blocks`
    /// (`…-000030_monitor_request_blocks`): read alongside the blocks until pruned.
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
    /// One row per writer batch: its requests, encoded ([`crate::monitor::block`]).
    monitor_request_blocks (id) {
        id -> BigInt,
        first_ms -> BigInt,
        last_ms -> BigInt,
        records -> Integer,
        data -> Binary,
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

fn request_of(t: RequestTuple) -> RequestRecord {
    let (_id, time_ms, route, method, status, duration_us, version, ip, user, group, b) = t;
    let breakdown = match b {
        (Some(r), Some(s), Some(g), Some(t)) => Some(Breakdown {
            redis_us: r.max(0) as u64,
            sql_us: s.max(0) as u64,
            graphite_us: g.max(0) as u64,
            template_us: t.max(0) as u64,
        }),
        _ => None,
    };
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
    }
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
        use super::{monitor_batches as bt, monitor_outliers as o, monitor_requests as r};
        use super::{monitor_request_blocks as rb, Batch, Block, Inserted, NewOutlier};
        use super::{OutlierTuple, OUTLIER_CHUNK};

        pub fn insert(c: &mut Conn, batch: &Batch, block: &Block) -> QueryResult<Inserted> {
            // The batch row first: a write as the transaction's first statement waits for
            // SQLite's lock (busy_timeout) rather than failing, and on MySQL/PostgreSQL it
            // waits for a still-open earlier attempt of the same batch, then fails on the key.
            let written = c.transaction::<_, diesel::result::Error, _>(|c| {
                let n = batch.requests.len().min(i32::MAX as usize) as i32;
                diesel::insert_into(bt::table)
                    .values((
                        bt::id.eq(batch.id),
                        bt::time_ms.eq(batch.time_ms),
                        bt::requests.eq(n),
                    ))
                    .execute(c)?;
                if n > 0 {
                    diesel::insert_into(rb::table)
                        .values((
                            rb::first_ms.eq(block.first_ms),
                            rb::last_ms.eq(block.last_ms),
                            rb::records.eq(n),
                            rb::data.eq(&block.data),
                        ))
                        .execute(c)?;
                }
                for chunk in batch.outliers.chunks(OUTLIER_CHUNK) {
                    let rows: Vec<NewOutlier<'_>> = chunk.iter().map(NewOutlier::of).collect();
                    diesel::insert_into(o::table).values(&rows).execute(c)?;
                }
                Ok(batch.requests.len())
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
            c.transaction(|c| {
                let blocks: Vec<i32> = rb::table
                    .filter(rb::last_ms.lt(before_ms))
                    .select(rb::records)
                    .load(c)?;
                diesel::delete(rb::table.filter(rb::last_ms.lt(before_ms))).execute(c)?;
                let a = diesel::delete(r::table.filter(r::time_ms.lt(before_ms))).execute(c)?;
                let b = diesel::delete(o::table.filter(o::time_ms.lt(before_ms))).execute(c)?;
                diesel::delete(bt::table.filter(bt::time_ms.lt(before_ms))).execute(c)?;
                let in_blocks: usize = blocks.iter().map(|&n| n.max(0) as usize).sum();
                Ok((a + in_blocks, b))
            })
        }

        /// Up to `page` blocks overlapping `[from_ms, until_ms)` after `(first_ms, id)`
        /// `after`, by (first_ms, id): (first_ms, id, data).
        pub fn blocks(
            c: &mut Conn,
            from_ms: i64,
            until_ms: i64,
            after: (i64, i64),
            page: i64,
        ) -> QueryResult<Vec<(i64, i64, Vec<u8>)>> {
            rb::table
                .filter(rb::last_ms.ge(from_ms))
                .filter(rb::first_ms.lt(until_ms))
                .filter(
                    rb::first_ms
                        .gt(after.0)
                        .or(rb::first_ms.eq(after.0).and(rb::id.gt(after.1))),
                )
                .order((rb::first_ms.asc(), rb::id.asc()))
                .limit(page)
                .select((rb::first_ms, rb::id, rb::data))
                .load(c)
        }

        /// Rows written before the blocks.
        pub fn legacy(
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
            let a: i64 = r::table.count().get_result(c)?;
            let blocks: Vec<i32> = rb::table.select(rb::records).load(c)?;
            let b = o::table.count().get_result(c)?;
            Ok((
                a + blocks.iter().map(|&n| i64::from(n.max(0))).sum::<i64>(),
                b,
            ))
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

/// Inserts `batch` in one transaction, unless its id is already recorded (then nothing):
/// its requests as one block (`monitor_request_blocks`), its outliers as rows.
pub fn insert_batch(pool: &Pool, batch: &Batch) -> Result<Inserted, DbError> {
    if batch.requests.is_empty() && batch.outliers.is_empty() {
        return Ok(Inserted {
            requests: 0,
            already: false,
        });
    }
    let block = block::encode(&batch.requests);
    let block = &block;
    dispatch!(pool, insert(batch, block))
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

/// Deletes records and outliers older than `before_ms`; returns how many of each. A block
/// goes when its newest record is older (a block spans one writer batch, `flush_ms`).
pub fn prune(pool: &Pool, before_ms: i64) -> Result<(usize, usize), DbError> {
    dispatch!(pool, prune(before_ms))
}

static CORRUPT_BLOCKS: LogLimiter = LogLimiter::new();

/// Records with `from_ms <= time_ms < until_ms`, oldest first (equal times in the order they
/// were written), at most `limit` (clamped to [`MAX_ROWS`]). A block that cannot be decoded
/// is skipped, logged (at most once a minute) and counted in
/// `skyline_monitor_corrupt_blocks_total`; the rest is read.
pub fn requests(
    pool: &Pool,
    from_ms: i64,
    until_ms: i64,
    limit: i64,
) -> Result<Vec<RequestRecord>, DbError> {
    let limit = limit.clamp(1, MAX_ROWS) as usize;
    let legacy = dispatch!(pool, legacy(from_ms, until_ms, limit as i64))?;
    let mut out: Vec<RequestRecord> = legacy.into_iter().map(request_of).collect();
    let mut after = (i64::MIN, i64::MIN);
    loop {
        let page = dispatch!(pool, blocks(from_ms, until_ms, after, BLOCK_PAGE))?;
        let full = page.len() as i64 == BLOCK_PAGE;
        for (first_ms, id, data) in page {
            after = (first_ms, id);
            match block::decode(&data) {
                Ok(records) => out.extend(
                    records
                        .into_iter()
                        .filter(|r| r.time_ms >= from_ms && r.time_ms < until_ms),
                ),
                Err(err) => {
                    crate::telemetry::metrics::MONITOR_CORRUPT_BLOCKS.inc();
                    CORRUPT_BLOCKS.error(format_args!(
                        "monitor: block {id} of monitor_request_blocks skipped: {err}"
                    ));
                }
            }
        }
        // Stable: equal times keep the blocks' (first_ms, id) order and each block's order.
        out.sort_by_key(|r| r.time_ms);
        out.truncate(limit);
        // Every block not read yet starts at or after `after.0`: its records cannot come
        // before the limit-th record kept when that is older.
        let settled = out.len() == limit && out.last().is_some_and(|r| r.time_ms < after.0);
        if !full || settled {
            return Ok(out);
        }
    }
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
        // Three batches: three blocks.
        assert_eq!(
            insert(pool, &reqs[..500], std::slice::from_ref(&outlier)).unwrap(),
            500
        );
        assert_eq!(insert(pool, &reqs[500..1000], &[]).unwrap(), 500);
        assert_eq!(insert(pool, &reqs[1000..], &[]).unwrap(), 500);
        assert_eq!(count(pool).unwrap(), (1_500, 1));
        let back = requests(pool, 0, i64::MAX, 10_000).unwrap();
        // Every field, in the batch's order.
        assert_eq!(back, reqs);
        assert!(reqs[600..900].iter().any(|r| r.breakdown.is_some()));
        assert!(reqs[600..900].iter().any(|r| r.group.is_some()));
        let o = outliers(pool, None, 10).unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].1.breakdown, outlier.breakdown);
        assert_eq!(o[0].1.headers, outlier.headers);
        assert_eq!(outliers(pool, Some(o[0].0), 1).unwrap().len(), 1);
        assert!(outliers(pool, Some(o[0].0 + 1), 1).unwrap().is_empty());
        // Prune everything before the 1000th record: the first two blocks. A block goes
        // whole, when its newest record is older.
        assert_eq!(prune(pool, reqs[999].time_ms).unwrap(), (500, 1));
        let (a, b) = prune(pool, reqs[1000].time_ms).unwrap();
        assert_eq!(count(pool).unwrap(), (500, 0));
        let (a, b) = (a + 500, b + 1);
        assert_eq!((a, b), (1000, 1));
        assert_eq!(count(pool).unwrap(), (500, 0));
    }

    /// Reads page through many blocks whose times overlap and keep the oldest `limit`
    /// records of the range, in time order, whatever the page boundaries.
    fn reads_page_through_overlapping_blocks(pool: &Pool) {
        crate::db::migrate(pool).unwrap();
        let base = 1_800_000_000_000;
        let mut all = Vec::new();
        // 150 batches (over two pages of blocks) of 10 records; batch k's times are
        // base + 10k + 7j: each batch overlaps the next six, no two records share a time.
        for k in (0..150).rev() {
            let batch: Vec<RequestRecord> = (0..10)
                .map(|j| {
                    let mut r = rec(j, "1.0", false);
                    r.time_ms = base + 10 * k + 7 * j;
                    r.route = format!("/r{k}");
                    r
                })
                .collect();
            insert(pool, &batch, &[]).unwrap();
            all.extend(batch);
        }
        all.sort_by_key(|r| r.time_ms);
        for (from, until) in [
            (0, i64::MAX),
            (base + 200, base + 900),
            (base + 3, base + 4),
        ] {
            for limit in [1, 5, 64, 100, 1_499, 1_500, 5_000] {
                let want: Vec<&RequestRecord> = all
                    .iter()
                    .filter(|r| r.time_ms >= from && r.time_ms < until)
                    .take(limit)
                    .collect();
                let got = requests(pool, from, until, limit as i64).unwrap();
                assert_eq!(
                    got.iter().collect::<Vec<_>>(),
                    want,
                    "{from} {until} {limit}"
                );
            }
        }
    }

    fn sqlite_conn(
        pool: &Pool,
    ) -> r2d2::PooledConnection<diesel::r2d2::ConnectionManager<diesel::SqliteConnection>> {
        match pool.kind() {
            PoolKind::Sqlite(p) => p.get().unwrap(),
            _ => panic!("not SQLite"),
        }
    }

    /// A block that cannot be decoded is skipped and counted; the other blocks are read.
    #[test]
    fn a_corrupt_block_is_skipped_and_the_rest_read() {
        let (_dir, pool) = crate::db::testutil::sqlite_db();
        crate::db::migrate(&pool).unwrap();
        let reqs: Vec<RequestRecord> = (0..20).map(|i| rec(i, "1.0", false)).collect();
        insert(&pool, &reqs[..10], &[]).unwrap();
        insert(&pool, &reqs[10..], &[]).unwrap();
        let mut c = sqlite_conn(&pool);
        diesel::update(
            monitor_request_blocks::table
                .filter(monitor_request_blocks::first_ms.eq(reqs[0].time_ms)),
        )
        .set(monitor_request_blocks::data.eq(vec![block::FORMAT, 0xff]))
        .execute(&mut *c)
        .unwrap();
        let before = crate::telemetry::metrics::MONITOR_CORRUPT_BLOCKS.get();
        assert_eq!(requests(&pool, 0, i64::MAX, 100).unwrap(), reqs[10..]);
        assert!(crate::telemetry::metrics::MONITOR_CORRUPT_BLOCKS.get() > before);
    }

    /// Rows written before the blocks existed are read alongside them, in time order.
    #[test]
    fn rows_from_before_the_blocks_are_read_and_pruned_with_them() {
        let (_dir, pool) = crate::db::testutil::sqlite_db();
        crate::db::migrate(&pool).unwrap();
        let reqs: Vec<RequestRecord> = (0..30).map(|i| rec(i, "0.9", i % 3 == 0)).collect();
        let mut c = sqlite_conn(&pool);
        for r in reqs.iter().step_by(2) {
            let b = r.breakdown;
            diesel::insert_into(monitor_requests::table)
                .values((
                    monitor_requests::time_ms.eq(r.time_ms),
                    monitor_requests::route.eq(&r.route),
                    monitor_requests::method.eq(&r.method),
                    monitor_requests::status.eq(i32::from(r.status)),
                    monitor_requests::duration_us.eq(r.duration_us as i64),
                    monitor_requests::version.eq(&r.version),
                    monitor_requests::ip.eq(&r.ip),
                    monitor_requests::user_name.eq(&r.user),
                    monitor_requests::group_tag.eq(&r.group),
                    (
                        monitor_requests::redis_us.eq(b.map(|b| b.redis_us as i64)),
                        monitor_requests::sql_us.eq(b.map(|b| b.sql_us as i64)),
                        monitor_requests::graphite_us.eq(b.map(|b| b.graphite_us as i64)),
                        monitor_requests::template_us.eq(b.map(|b| b.template_us as i64)),
                    ),
                ))
                .execute(&mut *c)
                .unwrap();
        }
        drop(c);
        let odd: Vec<RequestRecord> = reqs.iter().skip(1).step_by(2).cloned().collect();
        insert(&pool, &odd, &[]).unwrap();
        assert_eq!(count(&pool).unwrap(), (30, 0));
        assert_eq!(requests(&pool, 0, i64::MAX, 100).unwrap(), reqs);
        assert_eq!(requests(&pool, 0, i64::MAX, 7).unwrap(), reqs[..7]);
        // The old rows go by their own time, the block when its newest record is old.
        assert_eq!(prune(&pool, reqs[10].time_ms).unwrap(), (5, 0));
        assert_eq!(prune(&pool, reqs[29].time_ms + 1).unwrap(), (25, 0));
        assert_eq!(count(&pool).unwrap(), (0, 0));
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

    /// One test per backend of `$check(&pool)`: SQLite always, MySQL and PostgreSQL when
    /// their URLs are set (a fresh database named `$db`).
    macro_rules! on_each_backend {
        ($check:ident, $db:literal, $sqlite:ident, $mysql:ident, $postgres:ident) => {
            #[test]
            fn $sqlite() {
                let (_dir, pool) = crate::db::testutil::sqlite_db();
                $check(&pool);
            }

            #[test]
            fn $mysql() {
                let Some(db) = TestDb::mysql($db) else {
                    return;
                };
                $check(&db.pool);
            }

            #[test]
            fn $postgres() {
                let Some(db) = TestDb::postgres($db) else {
                    return;
                };
                $check(&db.pool);
            }
        };
    }

    on_each_backend!(
        round_trip,
        "monitor_round_trip",
        sqlite_round_trip,
        mysql_round_trip,
        postgres_round_trip
    );
    on_each_backend!(
        reads_page_through_overlapping_blocks,
        "monitor_block_pages",
        sqlite_reads_page_through_overlapping_blocks,
        mysql_reads_page_through_overlapping_blocks,
        postgres_reads_page_through_overlapping_blocks
    );
    on_each_backend!(
        retried_batch_is_written_once,
        "monitor_retried_batch",
        sqlite_retried_batch_is_written_once,
        mysql_retried_batch_is_written_once,
        postgres_retried_batch_is_written_once
    );
}
