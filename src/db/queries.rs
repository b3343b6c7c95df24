//! Every Panorama query: id resolution and anomaly inserts (used by the Panorama actor) and the
//! searches behind the webapp's Panorama view. All values are bound parameters of diesel's DSL;
//! the only SQL text written by hand is fixed per backend (the created-timestamp epoch
//! expression and MySQL's `LAST_INSERT_ID()`), never built from values.
//!
//! These are blocking functions taking `&Pool`. From actix-web call them inside `web::block`;
//! each checks one connection out of the pool for its whole duration (never two, so a
//! one-connection in-memory SQLite pool cannot deadlock).
//!
//! Results are ordered by anomaly timestamp (then id), see [`Order`]. An unfiltered
//! [`count_by_metric`] reads the `panorama_metric_counts` summary plus the anomalies added
//! since it was last folded ([`refresh_metric_counts`], run by Panorama every few seconds), so
//! it stays exact and does not aggregate the whole table.
//!
//! Name matching rules, identical on the three backends:
//! * `metric`, `app`, `source`, `host`, `algorithm` filters and id resolution are **exact and
//!   case-sensitive**: candidates are fetched with SQL `=` (which MySQL collations make
//!   case-insensitive) and then compared byte for byte here.
//! * `metric_like` and `namespace` are **case-insensitive** LIKE matches (Skyline's webapp uses
//!   ILIKE): PostgreSQL `ILIKE`, MySQL's `_ci` collation, SQLite's ASCII-folding `LIKE`.
//!   See [`AnomalyQuery::metric_like`] for the pattern syntax.

use std::collections::HashMap;

use diesel::prelude::*;
use serde::Serialize;

use super::schema::anomalies;
use super::{DbError, Pool, PoolKind};
use crate::model::Anomaly;

/// Rows returned when [`AnomalyQuery::limit`] is not set (Skyline's form default).
pub const DEFAULT_LIMIT: i64 = 10;
/// Upper bound applied to every limit.
pub const MAX_LIMIT: i64 = 10_000;
/// Rows per multi-row INSERT (well under SQLite's 32766 bound parameters at 10 per row).
const INSERT_CHUNK: usize = 500;
/// Ids per `IN (…)` list when resolving names.
const IN_CHUNK: usize = 1_000;
/// `panorama_state` row: the highest anomaly id folded into `panorama_metric_counts`.
const COUNTS_THROUGH: &str = "metric_counts_through_id";
/// Up to this many metrics matched by `metric_like` / `namespace` are passed to the anomaly
/// query as an id list (well under SQLite's and MySQL's bound-parameter limits); more fall
/// back to a subquery.
const MAX_METRIC_IDS: i64 = 5_000;
/// The escape character for LIKE patterns built here (`\` is not portable: MySQL string
/// literals treat it specially and SQLite has no default escape).
const LIKE_ESCAPE: char = '!';

/// Ionosphere learn defaults a new `metrics` row gets (Skyline's `determine_db_id`).
const LEARN_FULL_DURATION_DAYS: i32 = 30;
const LEARN_VALID_TS_OLDER_THAN: i32 = 3661;
const MAX_GENERATIONS: i32 = 16;
const MAX_PERCENT_DIFF_FROM_ORIGIN: f64 = 100.0;

/// Sort order of search results: by anomaly timestamp, ties by anomaly id.
///
/// Skyline orders by id (insertion order), which equals timestamp order except for anomalies
/// recorded late (spool replays, batch analysis). Timestamp order is what a reader of "the
/// newest anomalies" expects, and it lets every search walk an index that ends in
/// `anomaly_timestamp` and stop after `limit` rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first (Skyline's default).
    #[default]
    Desc,
}

/// A Panorama search. Every filter that is `Some` applies; they combine with AND.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyQuery {
    /// Exact metric name (case-sensitive). An unknown metric matches nothing.
    pub metric: Option<String>,
    /// Case-insensitive LIKE pattern on the metric name: `%` (or `*`, Graphite-glob style)
    /// matches any run of characters and `_` exactly one; there is no escape character, so
    /// `%` and `_` cannot be matched literally (a literal `_` is matched by `_` anyway).
    pub metric_like: Option<String>,
    /// Namespace prefix: matches the metric named exactly so and every metric below it in the
    /// dotted hierarchy (`stats` matches `stats` and `stats.x`, not `statsd.x`); a trailing
    /// `.` is allowed. Case-insensitive like `metric_like`; wildcards are literal here.
    pub namespace: Option<String>,
    /// `anomaly_timestamp >= from_ts` (epoch seconds).
    pub from_ts: Option<i64>,
    /// `anomaly_timestamp <= until_ts` (epoch seconds).
    pub until_ts: Option<i64>,
    /// Exact app name (`analyzer`, `mirage`, …).
    pub app: Option<String>,
    /// Exact source name (`graphite`, …).
    pub source: Option<String>,
    /// Exact host name (the `added_by` of the recording instance).
    pub host: Option<String>,
    /// Exact algorithm name that must be among the anomaly's *triggered* algorithms
    /// (Skyline's equivalent filter is dead code).
    pub algorithm: Option<String>,
    /// Maximum rows, clamped to `1..=MAX_LIMIT`.
    pub limit: i64,
    /// Order by anomaly timestamp (then id).
    pub order: Order,
}

impl Default for AnomalyQuery {
    fn default() -> Self {
        AnomalyQuery {
            metric: None,
            metric_like: None,
            namespace: None,
            from_ts: None,
            until_ts: None,
            app: None,
            source: None,
            host: None,
            algorithm: None,
            limit: DEFAULT_LIMIT,
            order: Order::Desc,
        }
    }
}

impl AnomalyQuery {
    fn clamped_limit(&self) -> i64 {
        self.limit.clamp(1, MAX_LIMIT)
    }
}

/// One recorded anomaly with its ids resolved to names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyRow {
    /// Anomaly id.
    pub id: i64,
    /// Metric name (`metric_id:<n>` if the metrics row is missing).
    pub metric: String,
    /// App name (`app_id:<n>` if unknown).
    pub app: String,
    /// Source name (`source_id:<n>` if unknown).
    pub source: String,
    /// Host name (`host_id:<n>` if unknown).
    pub host: String,
    /// Epoch seconds of the anomalous datapoint.
    pub anomaly_timestamp: i64,
    /// Epoch seconds when the anomaly ended, if recorded.
    pub anomaly_end_timestamp: Option<i64>,
    /// The anomalous value (rounded to 6 decimal places on insert).
    pub datapoint: f64,
    /// Seconds of data the anomaly was detected in.
    pub full_duration: i64,
    /// Names of the algorithms run (unknown ids are kept as their number).
    pub algorithms_run: Vec<String>,
    /// Names of the algorithms that triggered.
    pub triggered_algorithms: Vec<String>,
    /// Epoch seconds when the row was created (`created_timestamp`).
    pub created_timestamp: Option<i64>,
}

/// The lookup tables whose ids anomalies reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// `metrics.metric`.
    Metric,
    /// `apps.app`.
    App,
    /// `hosts.host`.
    Host,
    /// `sources.source`.
    Source,
    /// `algorithms.algorithm`.
    Algorithm,
}

impl Lookup {
    fn index(self) -> usize {
        match self {
            Lookup::Metric => 0,
            Lookup::App => 1,
            Lookup::Host => 2,
            Lookup::Source => 3,
            Lookup::Algorithm => 4,
        }
    }
}

/// Name → id cache for the lookup tables. Ids never change once assigned (rows are never
/// deleted), so entries never expire. Lookup rows are created inside the anomaly insert's
/// transaction (one commit, one fsync, per batch); their ids are staged and only become
/// cached when that transaction commits, so a rollback cannot leave a phantom id behind.
#[derive(Debug, Default, Clone)]
pub struct IdCache {
    maps: [HashMap<String, i32>; 5],
    staged: [HashMap<String, i32>; 5],
}

impl IdCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached (or staged, in the current transaction) id of `name`, if any.
    pub fn get(&self, kind: Lookup, name: &str) -> Option<i32> {
        let i = kind.index();
        self.maps[i]
            .get(name)
            .or_else(|| self.staged[i].get(name))
            .copied()
    }

    fn stage(&mut self, kind: Lookup, name: &str, id: i32) {
        self.staged[kind.index()].insert(name.to_string(), id);
    }

    /// The transaction that found or created the staged ids committed.
    fn commit(&mut self) {
        for (map, staged) in self.maps.iter_mut().zip(self.staged.iter_mut()) {
            map.extend(staged.drain());
        }
    }

    /// The transaction rolled back: its ids may not exist.
    fn discard(&mut self) {
        self.staged.iter_mut().for_each(HashMap::clear);
    }

    /// Commits or discards the staged ids according to `result`.
    fn settle<T, E>(&mut self, result: Result<T, E>) -> Result<T, E> {
        match &result {
            Ok(_) => self.commit(),
            Err(_) => self.discard(),
        }
        result
    }

    /// Number of cached names.
    pub fn len(&self) -> usize {
        self.maps.iter().map(HashMap::len).sum()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Strips Skyline's ` (override - …)` style suffixes from an algorithm name.
pub fn clean_algorithm_name(name: &str) -> &str {
    match name.find(" (") {
        Some(i) => name[..i].trim(),
        None => name.trim(),
    }
}

/// Rounds to 6 decimal places like Python's `round(value, 6)` (correctly rounded through the
/// decimal representation, so large magnitudes do not overflow as `v * 1e6` would).
pub fn round6(value: f64) -> f64 {
    if !value.is_finite() {
        return value;
    }
    format!("{value:.6}").parse().unwrap_or(value)
}

/// The algorithm lists as Skyline stores them: `algorithms_run` extended with any triggered
/// name it lacks, suffixes stripped, duplicates dropped, order kept.
fn algorithm_lists(a: &Anomaly) -> (Vec<String>, Vec<String>) {
    fn push_unique(v: &mut Vec<String>, name: &str) {
        let name = clean_algorithm_name(name);
        if !name.is_empty() && !v.iter().any(|n| n == name) {
            v.push(name.to_string());
        }
    }
    let mut triggered = Vec::new();
    for n in &a.triggered_algorithms {
        push_unique(&mut triggered, n);
    }
    let mut run = Vec::new();
    for n in a.algorithms_run.iter().chain(&a.triggered_algorithms) {
        push_unique(&mut run, n);
    }
    (run, triggered)
}

fn csv_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

fn parse_csv_ids(csv: &str) -> Vec<&str> {
    csv.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Escapes `%`, `_` and the escape character itself for a literal LIKE match.
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 4);
    for c in s.chars() {
        if c == '%' || c == '_' || c == LIKE_ESCAPE {
            out.push(LIKE_ESCAPE);
        }
        out.push(c);
    }
    out
}

/// A user `metric_like` pattern as used with `ESCAPE '!'`: `*` → `%`, `!` made literal.
fn like_pattern(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '*' => out.push('%'),
            LIKE_ESCAPE => {
                out.push(LIKE_ESCAPE);
                out.push(LIKE_ESCAPE);
            }
            c => out.push(c),
        }
    }
    out
}

/// The columns an anomaly insert needs, ids resolved.
#[derive(Debug, Clone, PartialEq, Insertable)]
#[diesel(table_name = anomalies)]
pub(crate) struct NewAnomaly {
    metric_id: i32,
    host_id: i32,
    app_id: i32,
    source_id: i32,
    anomaly_timestamp: i64,
    anomalous_datapoint: f64,
    full_duration: i64,
    algorithms_run: String,
    triggered_algorithms: String,
    user_id: i32,
}

/// A search result row before names are resolved.
type RawRow = (
    i32,
    i32,
    i32,
    i32,
    i32,
    i64,
    Option<i64>,
    f64,
    i64,
    String,
    String,
    Option<i64>,
);

/// Whether a filter set can match anything.
enum Filter<C> {
    /// No condition: every row matches.
    All,
    /// Some named entity does not exist: nothing can match.
    Nothing,
    /// A WHERE condition.
    Where(C),
}

/// The body of every query, instantiated once per backend module below (with that module's
/// `Conn`, `Db`, `CREATED_EPOCH`, `like_ci` and `insert_returning_id!`), because diesel's
/// query types are backend-specific and generic bounds over three backends are unreadable.
macro_rules! backend_queries {
    () => {
        use std::collections::{HashMap, HashSet};

        use diesel::dsl::{count_star, max, sql};
        use diesel::expression::BoxableExpression;
        use diesel::prelude::*;
        use diesel::sql_types::{BigInt, Bool, Nullable};

        use super::super::schema::{
            algorithms, anomalies, apps, hosts, metrics, panorama_metric_counts, panorama_state,
            sources,
        };
        use super::LIKE_ESCAPE;
        use super::{
            algorithm_lists, csv_ids, like_literal, like_pattern, parse_csv_ids, round6,
            AnomalyQuery, AnomalyRow, Filter, IdCache, Lookup, NewAnomaly, Order, RawRow,
            COUNTS_THROUGH, INSERT_CHUNK, IN_CHUNK, LEARN_FULL_DURATION_DAYS,
            LEARN_VALID_TS_OLDER_THAN, MAX_GENERATIONS, MAX_METRIC_IDS,
            MAX_PERCENT_DIFF_FROM_ORIGIN,
        };
        use crate::model::Anomaly;

        type Cond = Box<dyn BoxableExpression<anomalies::table, Db, SqlType = Bool>>;

        /// Ids whose name equals `name` exactly, lowest first.
        pub(crate) fn find_ids(conn: &mut Conn, kind: Lookup, name: &str) -> QueryResult<Vec<i32>> {
            // SQL `=` may fold case or trailing spaces (MySQL collations): compare here too.
            let rows: Vec<(i32, String)> = match kind {
                Lookup::Metric => metrics::table
                    .filter(metrics::metric.eq(name))
                    .select((metrics::id, metrics::metric))
                    .order(metrics::id)
                    .load(conn)?,
                Lookup::App => apps::table
                    .filter(apps::app.eq(name))
                    .select((apps::id, apps::app))
                    .order(apps::id)
                    .load(conn)?,
                Lookup::Host => hosts::table
                    .filter(hosts::host.eq(name))
                    .select((hosts::id, hosts::host))
                    .order(hosts::id)
                    .load(conn)?,
                Lookup::Source => sources::table
                    .filter(sources::source.eq(name))
                    .select((sources::id, sources::source))
                    .order(sources::id)
                    .load(conn)?,
                Lookup::Algorithm => algorithms::table
                    .filter(algorithms::algorithm.eq(name))
                    .select((algorithms::id, algorithms::algorithm))
                    .order(algorithms::id)
                    .load(conn)?,
            };
            Ok(rows
                .into_iter()
                .filter(|(_, n)| n == name)
                .map(|(id, _)| id)
                .collect())
        }

        fn create(conn: &mut Conn, kind: Lookup, name: &str) -> QueryResult<i32> {
            match kind {
                Lookup::Metric => insert_returning_id!(
                    conn,
                    diesel::insert_into(metrics::table).values((
                        metrics::metric.eq(name),
                        metrics::learn_full_duration_days.eq(LEARN_FULL_DURATION_DAYS),
                        metrics::learn_valid_ts_older_than.eq(LEARN_VALID_TS_OLDER_THAN),
                        metrics::max_generations.eq(MAX_GENERATIONS),
                        metrics::max_percent_diff_from_origin.eq(MAX_PERCENT_DIFF_FROM_ORIGIN),
                    )),
                    metrics::id
                ),
                Lookup::App => insert_returning_id!(
                    conn,
                    diesel::insert_into(apps::table).values(apps::app.eq(name)),
                    apps::id
                ),
                Lookup::Host => insert_returning_id!(
                    conn,
                    diesel::insert_into(hosts::table).values(hosts::host.eq(name)),
                    hosts::id
                ),
                Lookup::Source => insert_returning_id!(
                    conn,
                    diesel::insert_into(sources::table).values(sources::source.eq(name)),
                    sources::id
                ),
                Lookup::Algorithm => insert_returning_id!(
                    conn,
                    diesel::insert_into(algorithms::table).values(algorithms::algorithm.eq(name)),
                    algorithms::id
                ),
            }
        }

        /// The id of `name`, from the cache, the table, or a new row.
        pub(crate) fn resolve(
            conn: &mut Conn,
            cache: &mut IdCache,
            kind: Lookup,
            name: &str,
        ) -> QueryResult<i32> {
            if let Some(id) = cache.get(kind, name) {
                return Ok(id);
            }
            let id = match find_ids(conn, kind, name)?.first() {
                Some(id) => *id,
                None => create(conn, kind, name)?,
            };
            // Staged until the caller's transaction (or autocommit) is known to have committed.
            cache.stage(kind, name, id);
            Ok(id)
        }

        pub(crate) fn new_anomaly(
            conn: &mut Conn,
            cache: &mut IdCache,
            a: &Anomaly,
            user_id: i32,
        ) -> QueryResult<NewAnomaly> {
            let (run, triggered) = algorithm_lists(a);
            let mut ids = |names: &[String]| -> QueryResult<Vec<i32>> {
                names
                    .iter()
                    .map(|n| resolve(conn, cache, Lookup::Algorithm, n))
                    .collect()
            };
            let run_ids = ids(&run)?;
            let triggered_ids = ids(&triggered)?;
            Ok(NewAnomaly {
                metric_id: resolve(conn, cache, Lookup::Metric, &a.metric)?,
                host_id: resolve(conn, cache, Lookup::Host, &a.host)?,
                app_id: resolve(conn, cache, Lookup::App, &a.app)?,
                source_id: resolve(conn, cache, Lookup::Source, &a.source)?,
                anomaly_timestamp: a.timestamp,
                anomalous_datapoint: round6(a.datapoint),
                full_duration: a.full_duration,
                algorithms_run: csv_ids(&run_ids),
                triggered_algorithms: csv_ids(&triggered_ids),
                user_id,
            })
        }

        pub(crate) fn insert_one(conn: &mut Conn, row: &NewAnomaly) -> QueryResult<i64> {
            let id: i32 = insert_returning_id!(
                conn,
                diesel::insert_into(anomalies::table).values(row),
                anomalies::id
            )?;
            Ok(i64::from(id))
        }

        /// Multi-row INSERTs; the caller provides the transaction.
        pub(crate) fn insert_many(conn: &mut Conn, rows: &[NewAnomaly]) -> QueryResult<usize> {
            let mut n = 0;
            for chunk in rows.chunks(INSERT_CHUNK) {
                n += diesel::insert_into(anomalies::table)
                    .values(chunk)
                    .execute(conn)?;
            }
            Ok(n)
        }

        /// True when a row with the same metric, app, host, source, timestamp, duration and
        /// triggered algorithms exists (used to make spool replays idempotent).
        pub(crate) fn exists(conn: &mut Conn, row: &NewAnomaly) -> QueryResult<bool> {
            let n: i64 = anomalies::table
                .filter(anomalies::metric_id.eq(row.metric_id))
                .filter(anomalies::anomaly_timestamp.eq(row.anomaly_timestamp))
                .filter(anomalies::app_id.eq(row.app_id))
                .filter(anomalies::host_id.eq(row.host_id))
                .filter(anomalies::source_id.eq(row.source_id))
                .filter(anomalies::full_duration.eq(row.full_duration))
                .filter(anomalies::triggered_algorithms.eq(&row.triggered_algorithms))
                .select(count_star())
                .first(conn)?;
            Ok(n > 0)
        }

        fn and(acc: Option<Cond>, next: Cond) -> Option<Cond> {
            Some(match acc {
                Some(a) => Box::new(a.and(next)),
                None => next,
            })
        }

        fn ids_cond(
            conn: &mut Conn,
            kind: Lookup,
            name: &str,
            make: impl FnOnce(Vec<i32>) -> Cond,
        ) -> QueryResult<Option<Cond>> {
            let ids = find_ids(conn, kind, name)?;
            Ok(if ids.is_empty() {
                None
            } else {
                Some(make(ids))
            })
        }

        /// `triggered_algorithms` (a CSV of ids) contains `id`.
        fn csv_contains(id: i32) -> Cond {
            let s = id.to_string();
            Box::new(
                anomalies::triggered_algorithms
                    .eq(s.clone())
                    .or(anomalies::triggered_algorithms.like(format!("{s},%")))
                    .or(anomalies::triggered_algorithms.like(format!("%,{s}")))
                    .or(anomalies::triggered_algorithms.like(format!("%,{s},%"))),
            )
        }

        fn build_filter(conn: &mut Conn, q: &AnomalyQuery) -> QueryResult<Filter<Cond>> {
            let mut acc: Option<Cond> = None;
            if let Some(m) = &q.metric {
                match ids_cond(conn, Lookup::Metric, m, |ids| {
                    Box::new(anomalies::metric_id.eq_any(ids))
                })? {
                    Some(c) => acc = and(acc, c),
                    None => return Ok(Filter::Nothing),
                }
            }
            // Metric patterns are resolved to ids first: with an explicit id list the planners
            // walk the timestamp index and stop after `limit` rows, where a subquery often
            // makes them fetch every row of every matching metric. Very broad patterns keep
            // the subquery (bind-parameter limits; and then that walk is cheap anyway).
            // `metric_id IN (ids of the metrics matching $cond)`; `$cond` is evaluated twice.
            macro_rules! metric_match {
                ($cond:expr) => {{
                    let ids: Vec<i32> = metrics::table
                        .filter($cond)
                        .select(metrics::id)
                        .limit(MAX_METRIC_IDS + 1)
                        .load(conn)?;
                    if ids.is_empty() {
                        return Ok(Filter::Nothing);
                    }
                    let cond: Cond = if ids.len() as i64 <= MAX_METRIC_IDS {
                        Box::new(anomalies::metric_id.eq_any(ids))
                    } else {
                        let all = metrics::table.filter($cond).select(metrics::id);
                        Box::new(anomalies::metric_id.eq_any(all))
                    };
                    acc = and(acc, cond);
                }};
            }
            if let Some(p) = &q.metric_like {
                metric_match!(like_ci!(like_pattern(p)));
            }
            if let Some(ns) = &q.namespace {
                let ns = ns.trim_end_matches('.');
                metric_match!(
                    like_ci!(like_literal(ns)).or(like_ci!(format!("{}.%", like_literal(ns))))
                );
            }
            if let Some(t) = q.from_ts {
                acc = and(acc, Box::new(anomalies::anomaly_timestamp.ge(t)));
            }
            if let Some(t) = q.until_ts {
                acc = and(acc, Box::new(anomalies::anomaly_timestamp.le(t)));
            }
            let named = [
                (&q.app, Lookup::App),
                (&q.source, Lookup::Source),
                (&q.host, Lookup::Host),
            ];
            for (name, kind) in named {
                if let Some(name) = name {
                    let cond = ids_cond(conn, kind, name, |ids| -> Cond {
                        match kind {
                            Lookup::App => Box::new(anomalies::app_id.eq_any(ids)),
                            Lookup::Source => Box::new(anomalies::source_id.eq_any(ids)),
                            _ => Box::new(anomalies::host_id.eq_any(ids)),
                        }
                    })?;
                    match cond {
                        Some(c) => acc = and(acc, c),
                        None => return Ok(Filter::Nothing),
                    }
                }
            }
            if let Some(alg) = &q.algorithm {
                let ids = find_ids(conn, Lookup::Algorithm, super::clean_algorithm_name(alg))?;
                let mut any: Option<Cond> = None;
                for id in ids {
                    any = Some(match any {
                        Some(a) => Box::new(a.or(csv_contains(id))),
                        None => csv_contains(id),
                    });
                }
                match any {
                    Some(c) => acc = and(acc, c),
                    None => return Ok(Filter::Nothing),
                }
            }
            Ok(match acc {
                Some(c) => Filter::Where(c),
                None => Filter::All,
            })
        }

        /// id → name maps for the small lookup tables, and for the given metric ids.
        struct Names {
            metrics: HashMap<i32, String>,
            apps: HashMap<i32, String>,
            sources: HashMap<i32, String>,
            hosts: HashMap<i32, String>,
            algorithms: HashMap<i32, String>,
        }

        fn metric_names(conn: &mut Conn, ids: &[i32]) -> QueryResult<HashMap<i32, String>> {
            let mut out = HashMap::with_capacity(ids.len());
            for chunk in ids.chunks(IN_CHUNK) {
                let rows: Vec<(i32, String)> = metrics::table
                    .filter(metrics::id.eq_any(chunk))
                    .select((metrics::id, metrics::metric))
                    .load(conn)?;
                out.extend(rows);
            }
            Ok(out)
        }

        fn names_for(conn: &mut Conn, rows: &[RawRow]) -> QueryResult<Names> {
            let metric_ids: Vec<i32> = rows
                .iter()
                .map(|r| r.1)
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            Ok(Names {
                metrics: metric_names(conn, &metric_ids)?,
                apps: apps::table
                    .select((apps::id, apps::app))
                    .load::<(i32, String)>(conn)?
                    .into_iter()
                    .collect(),
                sources: sources::table
                    .select((sources::id, sources::source))
                    .load::<(i32, String)>(conn)?
                    .into_iter()
                    .collect(),
                hosts: hosts::table
                    .select((hosts::id, hosts::host))
                    .load::<(i32, String)>(conn)?
                    .into_iter()
                    .collect(),
                algorithms: algorithms::table
                    .select((algorithms::id, algorithms::algorithm))
                    .load::<(i32, String)>(conn)?
                    .into_iter()
                    .collect(),
            })
        }

        fn name_of(map: &HashMap<i32, String>, id: i32, what: &str) -> String {
            map.get(&id)
                .cloned()
                .unwrap_or_else(|| format!("{what}:{id}"))
        }

        fn algorithm_names(names: &Names, csv: &str) -> Vec<String> {
            parse_csv_ids(csv)
                .into_iter()
                .map(|s| {
                    s.parse::<i32>()
                        .ok()
                        .and_then(|id| names.algorithms.get(&id).cloned())
                        .unwrap_or_else(|| s.to_string())
                })
                .collect()
        }

        fn to_rows(conn: &mut Conn, raw: Vec<RawRow>) -> QueryResult<Vec<AnomalyRow>> {
            if raw.is_empty() {
                return Ok(Vec::new());
            }
            let names = names_for(conn, &raw)?;
            Ok(raw
                .into_iter()
                .map(|r| AnomalyRow {
                    id: i64::from(r.0),
                    metric: name_of(&names.metrics, r.1, "metric_id"),
                    app: name_of(&names.apps, r.2, "app_id"),
                    source: name_of(&names.sources, r.3, "source_id"),
                    host: name_of(&names.hosts, r.4, "host_id"),
                    anomaly_timestamp: r.5,
                    anomaly_end_timestamp: r.6,
                    datapoint: r.7,
                    full_duration: r.8,
                    algorithms_run: algorithm_names(&names, &r.9),
                    triggered_algorithms: algorithm_names(&names, &r.10),
                    created_timestamp: r.11,
                })
                .collect())
        }

        pub(crate) fn search(conn: &mut Conn, q: &AnomalyQuery) -> QueryResult<Vec<AnomalyRow>> {
            let filter = build_filter(conn, q)?;
            let mut query = anomalies::table
                .select((
                    anomalies::id,
                    anomalies::metric_id,
                    anomalies::app_id,
                    anomalies::source_id,
                    anomalies::host_id,
                    anomalies::anomaly_timestamp,
                    anomalies::anomaly_end_timestamp,
                    anomalies::anomalous_datapoint,
                    anomalies::full_duration,
                    anomalies::algorithms_run,
                    anomalies::triggered_algorithms,
                    sql::<Nullable<BigInt>>(CREATED_EPOCH),
                ))
                .into_boxed();
            match filter {
                Filter::Nothing => return Ok(Vec::new()),
                Filter::All => {}
                Filter::Where(c) => query = query.filter(c),
            }
            query = match q.order {
                Order::Asc => {
                    query.order((anomalies::anomaly_timestamp.asc(), anomalies::id.asc()))
                }
                Order::Desc => {
                    query.order((anomalies::anomaly_timestamp.desc(), anomalies::id.desc()))
                }
            };
            let raw: Vec<RawRow> = query.limit(q.clamped_limit()).load(conn)?;
            to_rows(conn, raw)
        }

        pub(crate) fn by_id(conn: &mut Conn, id: i64) -> QueryResult<Option<AnomalyRow>> {
            let Ok(id) = i32::try_from(id) else {
                return Ok(None);
            };
            let raw: Vec<RawRow> = anomalies::table
                .filter(anomalies::id.eq(id))
                .select((
                    anomalies::id,
                    anomalies::metric_id,
                    anomalies::app_id,
                    anomalies::source_id,
                    anomalies::host_id,
                    anomalies::anomaly_timestamp,
                    anomalies::anomaly_end_timestamp,
                    anomalies::anomalous_datapoint,
                    anomalies::full_duration,
                    anomalies::algorithms_run,
                    anomalies::triggered_algorithms,
                    sql::<Nullable<BigInt>>(CREATED_EPOCH),
                ))
                .load(conn)?;
            Ok(to_rows(conn, raw)?.into_iter().next())
        }

        pub(crate) fn count_by_metric(
            conn: &mut Conn,
            q: &AnomalyQuery,
        ) -> QueryResult<Vec<(String, i64)>> {
            let filter = build_filter(conn, q)?;
            let counts: Vec<(i32, i64)> = match filter {
                Filter::Nothing => return Ok(Vec::new()),
                // Unfiltered: the per-metric summary plus the rows added since it was folded,
                // instead of aggregating the whole table.
                Filter::All => {
                    let mut counts = all_metric_counts(conn)?;
                    counts.sort_by(|a, b| match q.order {
                        Order::Asc => a.1.cmp(&b.1).then(a.0.cmp(&b.0)),
                        Order::Desc => b.1.cmp(&a.1).then(a.0.cmp(&b.0)),
                    });
                    counts.truncate(q.clamped_limit() as usize);
                    counts
                }
                Filter::Where(c) => {
                    let query = anomalies::table
                        .group_by(anomalies::metric_id)
                        .select((anomalies::metric_id, count_star()))
                        .filter(c)
                        .into_boxed();
                    let query = match q.order {
                        Order::Asc => query.order((count_star().asc(), anomalies::metric_id.asc())),
                        Order::Desc => {
                            query.order((count_star().desc(), anomalies::metric_id.asc()))
                        }
                    };
                    query.limit(q.clamped_limit()).load(conn)?
                }
            };
            let ids: Vec<i32> = counts.iter().map(|(id, _)| *id).collect();
            let names = metric_names(conn, &ids)?;
            Ok(counts
                .into_iter()
                .map(|(id, n)| (name_of(&names, id, "metric_id"), n))
                .collect())
        }

        fn counts_through(conn: &mut Conn) -> QueryResult<i64> {
            Ok(panorama_state::table
                .filter(panorama_state::name.eq(COUNTS_THROUGH))
                .select(panorama_state::value)
                .first::<i64>(conn)
                .optional()?
                .unwrap_or(0))
        }

        /// `metric_id` of every anomaly with `after < id <= until`. Aggregated by the caller:
        /// a `GROUP BY metric_id` here makes SQLite walk the whole (metric_id, …) index
        /// instead of the short primary-key range.
        fn metric_ids_after(
            conn: &mut Conn,
            after: i64,
            until: Option<i64>,
        ) -> QueryResult<Vec<i32>> {
            let after = i32::try_from(after).unwrap_or(i32::MAX);
            let until = until.map_or(i32::MAX, |u| i32::try_from(u).unwrap_or(i32::MAX));
            anomalies::table
                .filter(anomalies::id.gt(after))
                .filter(anomalies::id.le(until))
                .select(anomalies::metric_id)
                .load(conn)
        }

        /// Exact anomaly count of every metric: folded summary + rows after its watermark.
        fn all_metric_counts(conn: &mut Conn) -> QueryResult<Vec<(i32, i64)>> {
            conn.transaction(|conn| {
                let through = counts_through(conn)?;
                let mut counts: HashMap<i32, i64> = panorama_metric_counts::table
                    .select((
                        panorama_metric_counts::metric_id,
                        panorama_metric_counts::anomalies,
                    ))
                    .load::<(i32, i64)>(conn)?
                    .into_iter()
                    .collect();
                let tail = metric_ids_after(conn, through, None)?;
                for m in tail {
                    *counts.entry(m).or_insert(0) += 1;
                }
                Ok(counts.into_iter().filter(|(_, n)| *n > 0).collect())
            })
        }

        pub(crate) fn max_anomaly_id(conn: &mut Conn) -> QueryResult<i64> {
            let id: Option<i32> = anomalies::table.select(max(anomalies::id)).first(conn)?;
            Ok(id.map_or(0, i64::from))
        }

        /// Folds anomalies with `watermark < id <= through` into the per-metric summary.
        /// Returns the rows folded (0 when another refresh got there first).
        pub(crate) fn refresh_metric_counts(conn: &mut Conn, through: i64) -> QueryResult<u64> {
            conn.transaction(|conn| {
                let from = counts_through(conn)?;
                if through <= from {
                    return Ok(0);
                }
                let mut delta: HashMap<i32, i64> = HashMap::new();
                for m in metric_ids_after(conn, from, Some(through))? {
                    *delta.entry(m).or_insert(0) += 1;
                }
                let mut folded = 0;
                for (metric_id, n) in delta {
                    folded += n as u64;
                    // Portable upsert: update, insert when absent (single writer per summary,
                    // guarded by the watermark compare-and-set below).
                    let updated = diesel::update(
                        panorama_metric_counts::table
                            .filter(panorama_metric_counts::metric_id.eq(metric_id)),
                    )
                    .set(
                        panorama_metric_counts::anomalies.eq(panorama_metric_counts::anomalies + n),
                    )
                    .execute(conn)?;
                    if updated == 0 {
                        diesel::insert_into(panorama_metric_counts::table)
                            .values((
                                panorama_metric_counts::metric_id.eq(metric_id),
                                panorama_metric_counts::anomalies.eq(n),
                            ))
                            .execute(conn)?;
                    }
                }
                let moved = diesel::update(
                    panorama_state::table
                        .filter(panorama_state::name.eq(COUNTS_THROUGH))
                        .filter(panorama_state::value.eq(from)),
                )
                .set(panorama_state::value.eq(through))
                .execute(conn)?;
                if moved != 1 {
                    // Someone else folded these rows meanwhile: undo ours.
                    return Err(diesel::result::Error::RollbackTransaction);
                }
                Ok(folded)
            })
            .or_else(|e| match e {
                diesel::result::Error::RollbackTransaction => Ok(0),
                e => Err(e),
            })
        }

        pub(crate) fn list(conn: &mut Conn, kind: Lookup) -> QueryResult<Vec<String>> {
            let mut names: Vec<String> = match kind {
                Lookup::Metric => metrics::table.select(metrics::metric).load(conn)?,
                Lookup::App => apps::table.select(apps::app).load(conn)?,
                Lookup::Host => hosts::table.select(hosts::host).load(conn)?,
                Lookup::Source => sources::table.select(sources::source).load(conn)?,
                Lookup::Algorithm => algorithms::table.select(algorithms::algorithm).load(conn)?,
            };
            names.sort();
            names.dedup();
            Ok(names)
        }

        pub(crate) fn latest_per_metric_app(
            conn: &mut Conn,
            since: i64,
        ) -> QueryResult<Vec<(String, String, i64)>> {
            let rows: Vec<(i32, i32, Option<i64>)> = anomalies::table
                .filter(anomalies::anomaly_timestamp.ge(since))
                .group_by((anomalies::metric_id, anomalies::app_id))
                .select((
                    anomalies::metric_id,
                    anomalies::app_id,
                    max(anomalies::anomaly_timestamp),
                ))
                .load(conn)?;
            let ids: Vec<i32> = rows.iter().map(|r| r.0).collect();
            let metric_names = metric_names(conn, &ids)?;
            let app_names: HashMap<i32, String> = apps::table
                .select((apps::id, apps::app))
                .load::<(i32, String)>(conn)?
                .into_iter()
                .collect();
            Ok(rows
                .into_iter()
                .filter_map(|(m, a, ts)| {
                    Some((
                        metric_names.get(&m)?.clone(),
                        app_names.get(&a)?.clone(),
                        ts?,
                    ))
                })
                .collect())
        }
    };
}

mod sqlite_q {

    type Conn = diesel::SqliteConnection;
    type Db = diesel::sqlite::Sqlite;
    const CREATED_EPOCH: &str = "CAST(strftime('%s', created_timestamp) AS INTEGER)";

    /// Case-insensitive LIKE on `metrics.metric`: SQLite's LIKE folds ASCII case. (A macro,
    /// not a boxed expression, because diesel checks a subquery's WHERE against the outer
    /// query's tables and a boxed expression only knows its own table.)
    macro_rules! like_ci {
        ($pattern:expr) => {
            metrics::metric.like($pattern).escape(LIKE_ESCAPE)
        };
    }

    macro_rules! insert_returning_id {
        ($conn:expr, $stmt:expr, $id:expr) => {
            $stmt.returning($id).get_result::<i32>($conn)
        };
    }

    backend_queries!();
}

mod pg_q {

    type Conn = crate::db::PgConn;
    type Db = diesel::pg::Pg;
    const CREATED_EPOCH: &str = "CAST(EXTRACT(EPOCH FROM created_timestamp) AS BIGINT)";

    /// Case-insensitive LIKE on `metrics.metric`: PostgreSQL's LIKE is case-sensitive, so
    /// ILIKE (as Skyline's webapp).
    macro_rules! like_ci {
        ($pattern:expr) => {
            metrics::metric.ilike($pattern).escape(LIKE_ESCAPE)
        };
    }

    macro_rules! insert_returning_id {
        ($conn:expr, $stmt:expr, $id:expr) => {
            $stmt.returning($id).get_result::<i32>($conn)
        };
    }

    backend_queries!();
}

mod mysql_q {

    type Conn = crate::db::MysqlConn;
    type Db = diesel::mysql::Mysql;
    const CREATED_EPOCH: &str = "CAST(UNIX_TIMESTAMP(created_timestamp) AS SIGNED)";

    /// Case-insensitive LIKE on `metrics.metric`: Skyline's tables use a `_ci` collation,
    /// so MySQL's LIKE already ignores case.
    macro_rules! like_ci {
        ($pattern:expr) => {
            metrics::metric.like($pattern).escape(LIKE_ESCAPE)
        };
    }

    /// MySQL has no RETURNING: the id comes from `LAST_INSERT_ID()` on the same connection.
    fn last_insert_id(conn: &mut Conn) -> QueryResult<i32> {
        let id: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
            "CAST(LAST_INSERT_ID() AS SIGNED)",
        ))
        .get_result(conn)?;
        i32::try_from(id).map_err(|e| diesel::result::Error::DeserializationError(Box::new(e)))
    }

    macro_rules! insert_returning_id {
        ($conn:expr, $stmt:expr, $id:expr) => {{
            let _ = $id;
            $stmt
                .execute(&mut *$conn)
                .and_then(|_| last_insert_id($conn))
        }};
    }

    backend_queries!();
}

/// Runs `$f(conn, args…)` from the backend module matching `$pool`, on one pooled connection.
macro_rules! dispatch {
    ($pool:expr, $f:ident ( $($arg:expr),* )) => {
        match $pool.kind() {
            PoolKind::Sqlite(p) => {
                let mut c = $pool.checkout(p)?;
                sqlite_q::$f(&mut *c $(, $arg)*).map_err(DbError::from)
            }
            PoolKind::Mysql(p) => crate::db::off_runtime(|| {
                let mut c = $pool.checkout(p)?;
                mysql_q::$f(&mut *c $(, $arg)*).map_err(DbError::from)
            }),
            PoolKind::Postgres(p) => crate::db::off_runtime(|| {
                let mut c = $pool.checkout(p)?;
                pg_q::$f(&mut *c $(, $arg)*).map_err(DbError::from)
            }),
        }
    };
}

/// Runs a closure-like block with the backend module `$m` and connection `$c` bound, so a
/// multi-step operation uses one connection.
macro_rules! with_backend {
    ($pool:expr, |$m:ident, $c:ident| $body:block) => {
        match $pool.kind() {
            PoolKind::Sqlite(p) => {
                let mut guard = $pool.checkout(p)?;
                let $c = &mut *guard;
                #[allow(unused_imports)]
                use sqlite_q as $m;
                $body
            }
            PoolKind::Mysql(p) => crate::db::off_runtime(|| -> Result<_, DbError> {
                let mut guard = $pool.checkout(p)?;
                let $c = &mut *guard;
                #[allow(unused_imports)]
                use mysql_q as $m;
                $body
            }),
            PoolKind::Postgres(p) => crate::db::off_runtime(|| -> Result<_, DbError> {
                let mut guard = $pool.checkout(p)?;
                let $c = &mut *guard;
                #[allow(unused_imports)]
                use pg_q as $m;
                $body
            }),
        }
    };
}

/// Resolves (creating when absent) the id of `name` in the `kind` lookup table.
pub fn resolve_id(
    pool: &Pool,
    cache: &mut IdCache,
    kind: Lookup,
    name: &str,
) -> Result<i32, DbError> {
    let result = dispatch!(pool, resolve(cache, kind, name));
    cache.settle(result)
}

/// Inserts one anomaly (resolving or creating its metric, app, host, source and algorithm
/// ids) and returns its id. `user_id` is Skyline's recording user (1 = `Skyline`).
pub fn insert_anomaly(
    pool: &Pool,
    cache: &mut IdCache,
    anomaly: &Anomaly,
    user_id: i32,
) -> Result<i64, DbError> {
    with_backend!(pool, |b, c| {
        let result = c.transaction::<_, diesel::result::Error, _>(|c| {
            let row = b::new_anomaly(c, cache, anomaly, user_id)?;
            b::insert_one(c, &row)
        });
        Ok(cache.settle(result)?)
    })
}

/// Inserts several anomalies in one transaction (multi-row INSERTs, new lookup rows included),
/// in order; returns the number inserted.
pub fn insert_anomalies(
    pool: &Pool,
    cache: &mut IdCache,
    anomalies: &[Anomaly],
    user_id: i32,
) -> Result<usize, DbError> {
    if anomalies.is_empty() {
        return Ok(0);
    }
    with_backend!(pool, |b, c| {
        let result = c.transaction::<_, diesel::result::Error, _>(|c| {
            let rows = anomalies
                .iter()
                .map(|a| b::new_anomaly(c, cache, a, user_id))
                .collect::<QueryResult<Vec<_>>>()?;
            b::insert_many(c, &rows)
        });
        Ok(cache.settle(result)?)
    })
}

/// Inserts those of `anomalies` not already recorded (same metric, app, host, source,
/// timestamp, full duration and triggered algorithms), in one transaction. Returns
/// `(inserted, already_present)`. Used to replay a spool idempotently after a crash or an
/// ambiguous commit failure.
pub fn insert_anomalies_if_absent(
    pool: &Pool,
    cache: &mut IdCache,
    anomalies: &[Anomaly],
    user_id: i32,
) -> Result<(usize, usize), DbError> {
    if anomalies.is_empty() {
        return Ok((0, 0));
    }
    with_backend!(pool, |b, c| {
        let result = c.transaction::<_, diesel::result::Error, _>(|c| {
            let mut rows = Vec::with_capacity(anomalies.len());
            let mut present = 0;
            for a in anomalies {
                let row = b::new_anomaly(c, cache, a, user_id)?;
                // Also catches a duplicate earlier in this same batch.
                if b::exists(c, &row)? || rows.contains(&row) {
                    present += 1;
                } else {
                    rows.push(row);
                }
            }
            Ok((b::insert_many(c, &rows)?, present))
        });
        Ok(cache.settle(result)?)
    })
}

/// True when an anomaly like `anomaly` (see [`insert_anomalies_if_absent`]) is recorded.
pub fn anomaly_exists(
    pool: &Pool,
    cache: &mut IdCache,
    anomaly: &Anomaly,
) -> Result<bool, DbError> {
    with_backend!(pool, |b, c| {
        let result = c.transaction::<_, diesel::result::Error, _>(|c| {
            let row = b::new_anomaly(c, cache, anomaly, 0)?;
            b::exists(c, &row)
        });
        Ok(cache.settle(result)?)
    })
}

/// The anomalies matching `query`, ordered by timestamp then id (see [`Order`]), at most
/// `query.limit` rows.
pub fn search(pool: &Pool, query: &AnomalyQuery) -> Result<Vec<AnomalyRow>, DbError> {
    dispatch!(pool, search(query))
}

/// Per-metric anomaly counts for the anomalies matching `query` (all filters apply), ordered
/// by count (`query.order`, ties by metric id), at most `query.limit` metrics.
pub fn count_by_metric(pool: &Pool, query: &AnomalyQuery) -> Result<Vec<(String, i64)>, DbError> {
    dispatch!(pool, count_by_metric(query))
}

/// The highest anomaly id (0 when there are none).
pub fn max_anomaly_id(pool: &Pool) -> Result<i64, DbError> {
    dispatch!(pool, max_anomaly_id())
}

/// Folds the anomalies with ids up to `through` into the per-metric summary table
/// (`panorama_metric_counts`) that makes an unfiltered [`count_by_metric`] cheap; returns the
/// number of anomalies folded. Results are exact whether or not this runs (rows after the
/// summary's watermark are counted directly); it only keeps that tail short.
///
/// Pass an id observed a while ago (Panorama uses the maximum id seen at its previous
/// refresh): a concurrent writer's transaction holding a lower id that commits after the
/// fold would otherwise be missed. Deleting anomalies is not reflected in the summary.
pub fn refresh_metric_counts(pool: &Pool, through: i64) -> Result<u64, DbError> {
    dispatch!(pool, refresh_metric_counts(through))
}

/// One anomaly by id.
pub fn anomaly_by_id(pool: &Pool, id: i64) -> Result<Option<AnomalyRow>, DbError> {
    dispatch!(pool, by_id(id))
}

/// The `n` newest anomalies by timestamp (Skyline's "Latest anomalies", `n` clamped to
/// `1..=MAX_LIMIT`).
pub fn latest(pool: &Pool, n: i64) -> Result<Vec<AnomalyRow>, DbError> {
    search(
        pool,
        &AnomalyQuery {
            limit: n,
            ..AnomalyQuery::default()
        },
    )
}

/// App names, sorted, for the search form's dropdown.
pub fn list_apps(pool: &Pool) -> Result<Vec<String>, DbError> {
    dispatch!(pool, list(Lookup::App))
}

/// Source names, sorted.
pub fn list_sources(pool: &Pool) -> Result<Vec<String>, DbError> {
    dispatch!(pool, list(Lookup::Source))
}

/// Host names, sorted.
pub fn list_hosts(pool: &Pool) -> Result<Vec<String>, DbError> {
    dispatch!(pool, list(Lookup::Host))
}

/// Algorithm names, sorted.
pub fn list_algorithms(pool: &Pool) -> Result<Vec<String>, DbError> {
    dispatch!(pool, list(Lookup::Algorithm))
}

/// For each (metric, app) with an anomaly at or after `since`, the newest anomaly timestamp:
/// what Panorama's dedup needs to survive a restart.
pub fn latest_per_metric_app(
    pool: &Pool,
    since: i64,
) -> Result<Vec<(String, String, i64)>, DbError> {
    dispatch!(pool, latest_per_metric_app(since))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::testutil::{anomaly, now, sqlite_db, TestDb};
    use crate::db::{connect_with, migrate, PoolOptions};

    #[test]
    fn helpers() {
        assert_eq!(round6(1.234_567_89), 1.234_568);
        assert_eq!(round6(-2.000_000_4), -2.0);
        assert_eq!(round6(1e300), 1e300);
        assert_eq!(round6(12_345.678_901_7), 12_345.678_902);
        assert_eq!(clean_algorithm_name("grubbs (override - 3sigma)"), "grubbs");
        assert_eq!(clean_algorithm_name(" ks_test "), "ks_test");
        assert_eq!(like_literal("a_b%c!d"), "a!_b!%c!!d");
        assert_eq!(like_pattern("stats.*.cpu!"), "stats.%.cpu!!");
        assert_eq!(parse_csv_ids("1, 2,,3"), vec!["1", "2", "3"]);
        let mut a = anomaly("m", 1, "analyzer", &["grubbs (override - x)", "extra"]);
        a.algorithms_run = vec!["grubbs".into(), "ks_test".into(), "grubbs".into()];
        let (run, trig) = algorithm_lists(&a);
        assert_eq!(run, vec!["grubbs", "ks_test", "extra"]);
        assert_eq!(trig, vec!["grubbs", "extra"]);
    }

    /// Case-insensitive LIKE reference: `%`/`*` any run, `_` one character.
    fn like_match(pattern: &str, s: &str) -> bool {
        fn go(p: &[char], s: &[char]) -> bool {
            match p.first() {
                None => s.is_empty(),
                Some('%') | Some('*') => (0..=s.len()).any(|i| go(&p[1..], &s[i..])),
                Some('_') => !s.is_empty() && go(&p[1..], &s[1..]),
                Some(c) => !s.is_empty() && c.eq_ignore_ascii_case(&s[0]) && go(&p[1..], &s[1..]),
            }
        }
        let p: Vec<char> = pattern.chars().collect();
        let s: Vec<char> = s.chars().collect();
        go(&p, &s)
    }

    fn reference_match(q: &AnomalyQuery, a: &Anomaly) -> bool {
        if q.metric.as_ref().is_some_and(|m| *m != a.metric) {
            return false;
        }
        if q.metric_like
            .as_ref()
            .is_some_and(|p| !like_match(p, &a.metric))
        {
            return false;
        }
        if let Some(ns) = &q.namespace {
            let ns = ns.trim_end_matches('.').to_ascii_lowercase();
            let m = a.metric.to_ascii_lowercase();
            if !(m == ns || m.starts_with(&format!("{ns}."))) {
                return false;
            }
        }
        if q.from_ts.is_some_and(|t| a.timestamp < t) || q.until_ts.is_some_and(|t| a.timestamp > t)
        {
            return false;
        }
        if q.app.as_ref().is_some_and(|x| *x != a.app)
            || q.source.as_ref().is_some_and(|x| *x != a.source)
            || q.host.as_ref().is_some_and(|x| *x != a.host)
        {
            return false;
        }
        if let Some(alg) = &q.algorithm {
            let alg = clean_algorithm_name(alg);
            if !a
                .triggered_algorithms
                .iter()
                .any(|t| clean_algorithm_name(t) == alg)
            {
                return false;
            }
        }
        true
    }

    fn dataset(t0: i64) -> Vec<Anomaly> {
        let metrics = [
            "stats.web01.cpu",
            "stats.web02.cpu",
            "stats.db01.mem",
            "statsd.packets",
            "carbon.agents.a.cpu",
            "Stats.Upper",
            "stats.web01.cpu_user",
        ];
        let triggered: [&[&str]; 6] = [
            &["grubbs", "ks_test"],
            &["histogram_bins"],
            &["least_squares", "grubbs (override - sigma)"],
            &["custom_b"],
            &["custom_a", "custom_b", "custom_c"],
            &[
                "median_absolute_deviation",
                "histogram_bins",
                "least_squares",
            ],
        ];
        (0..40)
            .map(|i: i64| {
                let m = metrics[(i as usize * 3) % metrics.len()];
                let app = if i % 3 == 0 { "mirage" } else { "analyzer" };
                let mut a = anomaly(m, t0 + i, app, triggered[i as usize % triggered.len()]);
                if i % 4 == 1 {
                    a.source = "redis".into();
                }
                if i % 5 == 2 {
                    a.host = "skyline-test-2".into();
                }
                if a.triggered_algorithms
                    .iter()
                    .any(|t| t.starts_with("custom"))
                {
                    a.algorithms_run.push("custom_a".into());
                }
                a.datapoint = i as f64 * 1.000_000_4 - 7.0;
                a
            })
            .collect()
    }

    /// Deterministic pseudo-random numbers (no rand crate needed).
    struct Lcg(u64);
    impl Lcg {
        fn pick(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            ((self.0 >> 33) % n as u64) as usize
        }
    }

    fn queries(t0: i64) -> Vec<AnomalyQuery> {
        let metric = [
            None,
            Some("stats.web01.cpu"),
            Some("Stats.Upper"),
            Some("nope"),
        ];
        let like = [
            None,
            Some("stats.%.cpu"),
            Some("*web*"),
            Some("STATS.WEB01%"),
            Some("zz%"),
        ];
        let ns = [
            None,
            Some("stats"),
            Some("stats.web01."),
            Some("STATSD"),
            Some("carbon.agents"),
        ];
        let from = [None, Some(t0 + 5)];
        let until = [None, Some(t0 + 30)];
        let app = [
            None,
            Some("analyzer"),
            Some("mirage"),
            Some("boundary"),
            Some("nosuchapp"),
        ];
        let source = [None, Some("redis"), Some("graphite")];
        let host = [None, Some("skyline-test-2"), Some("nosuchhost")];
        let alg = [
            None,
            Some("grubbs"),
            Some("histogram_bins"),
            Some("custom_b"),
            Some("least_squares (override - z)"),
            Some("nosuchalg"),
        ];
        let order = [Order::Asc, Order::Desc];
        let limit = [3, 100, 0];
        let s = |o: Option<&str>| o.map(str::to_string);
        let mut out = vec![AnomalyQuery::default()];
        // Every value of every filter alone, then random combinations of all of them.
        let single = |f: &dyn Fn(&mut AnomalyQuery)| {
            let mut q = AnomalyQuery {
                limit: 100,
                ..AnomalyQuery::default()
            };
            f(&mut q);
            q
        };
        for v in metric.iter().flatten() {
            out.push(single(&|q| q.metric = s(Some(v))));
        }
        for v in like.iter().flatten() {
            out.push(single(&|q| q.metric_like = s(Some(v))));
        }
        for v in ns.iter().flatten() {
            out.push(single(&|q| q.namespace = s(Some(v))));
        }
        out.push(single(&|q| q.from_ts = Some(t0 + 5)));
        out.push(single(&|q| q.until_ts = Some(t0 + 30)));
        for v in app.iter().flatten() {
            out.push(single(&|q| q.app = s(Some(v))));
        }
        for v in source.iter().flatten() {
            out.push(single(&|q| q.source = s(Some(v))));
        }
        for v in host.iter().flatten() {
            out.push(single(&|q| q.host = s(Some(v))));
        }
        for v in alg.iter().flatten() {
            out.push(single(&|q| q.algorithm = s(Some(v))));
        }
        let mut rng = Lcg(42);
        // Each filter is present with probability 1/3, so combinations still match rows.
        fn opt<T: Copy>(rng: &mut Lcg, values: &[Option<T>]) -> Option<T> {
            if rng.pick(3) == 0 {
                values[rng.pick(values.len())]
            } else {
                None
            }
        }
        for _ in 0..200 {
            out.push(AnomalyQuery {
                metric: s(opt(&mut rng, &metric)),
                metric_like: s(opt(&mut rng, &like)),
                namespace: s(opt(&mut rng, &ns)),
                from_ts: opt(&mut rng, &from),
                until_ts: opt(&mut rng, &until),
                app: s(opt(&mut rng, &app)),
                source: s(opt(&mut rng, &source)),
                host: s(opt(&mut rng, &host)),
                algorithm: s(opt(&mut rng, &alg)),
                limit: limit[rng.pick(limit.len())],
                order: order[rng.pick(2)],
            });
        }
        out
    }

    fn key(a: &Anomaly) -> (String, i64, String) {
        (a.metric.clone(), a.timestamp, a.app.clone())
    }

    fn row_key(r: &AnomalyRow) -> (String, i64, String) {
        (r.metric.clone(), r.anomaly_timestamp, r.app.clone())
    }

    /// The whole query contract, run against one migrated, empty database.
    pub(crate) fn exercise(pool: &Pool) {
        let t0 = now() - 3_600;
        let data = dataset(t0);
        let mut cache = IdCache::new();

        // The first anomaly alone, so the algorithm ids are Skyline's first-sight order.
        let id = insert_anomaly(pool, &mut cache, &data[0], 1).unwrap();
        assert!(id > 0);
        assert_eq!(
            insert_anomalies(pool, &mut cache, &data[1..20], 1).unwrap(),
            19
        );
        // Fold part of the table into the per-metric summary: counts below must be exact
        // with a summary plus a tail of unfolded rows.
        let folded_through = max_anomaly_id(pool).unwrap();
        assert_eq!(refresh_metric_counts(pool, folded_through).unwrap(), 20);
        assert_eq!(
            refresh_metric_counts(pool, folded_through).unwrap(),
            0,
            "idempotent"
        );
        assert_eq!(
            refresh_metric_counts(pool, folded_through - 5).unwrap(),
            0,
            "never back"
        );
        // The rest one at a time through a cold cache, which must find the same ids.
        let mut cold = IdCache::new();
        for a in &data[20..] {
            insert_anomaly(pool, &mut cold, a, 1).unwrap();
        }
        assert_eq!(
            cache.get(Lookup::Metric, "stats.web01.cpu"),
            cold.get(Lookup::Metric, "stats.web01.cpu")
        );

        // Stored like Skyline: CSV of algorithm ids, run list extended with triggered ones.
        assert_eq!(
            resolve_id(
                pool,
                &mut IdCache::new(),
                Lookup::Algorithm,
                "histogram_bins"
            )
            .unwrap(),
            1
        );
        assert_eq!(
            resolve_id(
                pool,
                &mut IdCache::new(),
                Lookup::Algorithm,
                "least_squares"
            )
            .unwrap(),
            9
        );
        assert_eq!(
            resolve_id(pool, &mut IdCache::new(), Lookup::App, "analyzer").unwrap(),
            1
        );
        assert_eq!(
            resolve_id(pool, &mut IdCache::new(), Lookup::App, "mirage").unwrap(),
            2
        );
        let raw = raw_csv(pool, id);
        assert_eq!(raw, ("1,2,3,4,5,6,7,8,9".to_string(), "4,5".to_string()));

        // All rows, oldest first, match the dataset exactly.
        let all = search(
            pool,
            &AnomalyQuery {
                limit: MAX_LIMIT,
                order: Order::Asc,
                ..AnomalyQuery::default()
            },
        )
        .unwrap();
        assert_eq!(all.len(), data.len());
        for (r, a) in all.iter().zip(&data) {
            assert_eq!(row_key(r), key(a));
            assert_eq!(r.source, a.source);
            assert_eq!(r.host, a.host);
            assert_eq!(r.full_duration, a.full_duration);
            assert_eq!(r.datapoint, round6(a.datapoint), "datapoint of {r:?}");
            assert_eq!(r.anomaly_end_timestamp, None);
            let (run, trig) = algorithm_lists(a);
            assert_eq!(r.algorithms_run, run);
            assert_eq!(r.triggered_algorithms, trig);
            let created = r.created_timestamp.expect("created_timestamp");
            assert!(
                (created - now()).abs() < 300,
                "created {created} vs now {}",
                now()
            );
        }
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));

        // Every filter alone and in random combinations, against the reference.
        let mut non_empty = 0;
        for q in queries(t0) {
            let mut expected: Vec<&Anomaly> =
                data.iter().filter(|a| reference_match(&q, a)).collect();
            if q.order == Order::Desc {
                expected.reverse();
            }
            expected.truncate(q.limit.clamp(1, MAX_LIMIT) as usize);
            let got = search(pool, &q).unwrap();
            let got_keys: Vec<_> = got.iter().map(row_key).collect();
            let expected_keys: Vec<_> = expected.iter().map(|a| key(a)).collect();
            assert_eq!(got_keys, expected_keys, "search {q:?}");
            non_empty += usize::from(!got.is_empty());

            // count_by_metric: same filters, grouped, ordered by count then metric id.
            let mut counts: Vec<(String, i64, i64)> = Vec::new();
            for a in data.iter().filter(|a| reference_match(&q, a)) {
                match counts.iter_mut().find(|c| c.0 == a.metric) {
                    Some(c) => c.1 += 1,
                    None => counts.push((a.metric.clone(), 1, metric_rank(&data, &a.metric))),
                }
            }
            counts.sort_by(|x, y| match q.order {
                Order::Asc => x.1.cmp(&y.1).then(x.2.cmp(&y.2)),
                Order::Desc => y.1.cmp(&x.1).then(x.2.cmp(&y.2)),
            });
            counts.truncate(q.limit.clamp(1, MAX_LIMIT) as usize);
            let expected: Vec<(String, i64)> = counts.into_iter().map(|c| (c.0, c.1)).collect();
            assert_eq!(
                count_by_metric(pool, &q).unwrap(),
                expected,
                "count_by_metric {q:?}"
            );
        }

        // Guard against a degenerate query set that only ever matches nothing.
        assert!(non_empty > 100, "only {non_empty} queries matched anything");

        // Folding the rest changes no count.
        let before = count_by_metric(
            pool,
            &AnomalyQuery {
                limit: MAX_LIMIT,
                ..AnomalyQuery::default()
            },
        )
        .unwrap();
        assert_eq!(before.iter().map(|c| c.1).sum::<i64>(), data.len() as i64);
        let through = max_anomaly_id(pool).unwrap();
        assert_eq!(
            refresh_metric_counts(pool, through).unwrap(),
            data.len() as u64 - 20
        );
        let after = count_by_metric(
            pool,
            &AnomalyQuery {
                limit: MAX_LIMIT,
                ..AnomalyQuery::default()
            },
        )
        .unwrap();
        assert_eq!(before, after);

        // by id, latest.
        let one = anomaly_by_id(pool, all[7].id).unwrap().unwrap();
        assert_eq!(one, all[7]);
        assert_eq!(anomaly_by_id(pool, 9_999_999).unwrap(), None);
        assert_eq!(anomaly_by_id(pool, i64::MAX).unwrap(), None);
        let newest = latest(pool, 5).unwrap();
        let expected: Vec<_> = all.iter().rev().take(5).cloned().collect();
        assert_eq!(newest, expected);
        assert_eq!(latest(pool, DEFAULT_LIMIT).unwrap().len(), 10);

        // Dropdown lists: seeds plus what the inserts created.
        let apps = list_apps(pool).unwrap();
        for a in ["analyzer", "mirage", "boundary", "vortex"] {
            assert!(apps.contains(&a.to_string()), "{apps:?}");
        }
        assert_eq!(
            list_hosts(pool).unwrap(),
            vec!["skyline-test-1".to_string(), "skyline-test-2".to_string()]
        );
        assert!(list_sources(pool)
            .unwrap()
            .contains(&"redistimeseries".to_string()));
        let algs = list_algorithms(pool).unwrap();
        assert_eq!(algs.len(), 12, "{algs:?}");
        assert!(algs.windows(2).all(|w| w[0] < w[1]));

        // Dedup seeding: newest timestamp per (metric, app) since a time.
        let latest_pairs = latest_per_metric_app(pool, t0 + 30).unwrap();
        let mut expected: Vec<(String, String, i64)> = Vec::new();
        for a in data.iter().filter(|a| a.timestamp >= t0 + 30) {
            match expected
                .iter_mut()
                .find(|e| e.0 == a.metric && e.1 == a.app)
            {
                Some(e) => e.2 = e.2.max(a.timestamp),
                None => expected.push((a.metric.clone(), a.app.clone(), a.timestamp)),
            }
        }
        let mut got = latest_pairs;
        got.sort();
        expected.sort();
        assert_eq!(got, expected);

        // Idempotent replay: already-present anomalies are not inserted twice.
        let mut c = IdCache::new();
        assert!(anomaly_exists(pool, &mut c, &data[3]).unwrap());
        let fresh = anomaly("stats.new.metric", t0 + 100, "analyzer", &["grubbs"]);
        assert!(!anomaly_exists(pool, &mut c, &fresh).unwrap());
        let batch = vec![
            data[3].clone(),
            fresh.clone(),
            fresh.clone(),
            data[4].clone(),
        ];
        assert_eq!(
            insert_anomalies_if_absent(pool, &mut c, &batch, 1).unwrap(),
            (1, 3)
        );
        assert!(anomaly_exists(pool, &mut c, &fresh).unwrap());
        assert_eq!(latest(pool, 1).unwrap()[0].metric, "stats.new.metric");
        assert_eq!(latest(pool, MAX_LIMIT).unwrap().len(), data.len() + 1);

        // Order is by anomaly timestamp, not insertion: a late (backfilled) anomaly sorts by
        // its own timestamp.
        let late = anomaly("stats.backfilled", t0 - 500, "analyzer", &["grubbs"]);
        let late_id = insert_anomaly(pool, &mut c, &late, 1).unwrap();
        assert_eq!(latest(pool, 1).unwrap()[0].metric, "stats.new.metric");
        let oldest = search(
            pool,
            &AnomalyQuery {
                limit: 1,
                order: Order::Asc,
                ..AnomalyQuery::default()
            },
        )
        .unwrap();
        assert_eq!(
            (oldest[0].id, oldest[0].metric.as_str()),
            (late_id, "stats.backfilled")
        );

        // Values at the edges of what Skyline stores.
        let mut big = anomaly("edge.values", t0 + 200, "analyzer", &[]);
        big.datapoint = 50_000_000_000_000.25;
        big.algorithms_run.clear();
        let id = insert_anomaly(pool, &mut c, &big, 1).unwrap();
        let row = anomaly_by_id(pool, id).unwrap().unwrap();
        assert_eq!(row.datapoint, 50_000_000_000_000.25);
        assert!(row.algorithms_run.is_empty() && row.triggered_algorithms.is_empty());
    }

    fn metric_rank(data: &[Anomaly], metric: &str) -> i64 {
        let mut seen: Vec<&str> = Vec::new();
        for a in data {
            if !seen.contains(&a.metric.as_str()) {
                seen.push(&a.metric);
            }
        }
        seen.iter().position(|m| *m == metric).unwrap_or(usize::MAX) as i64
    }

    /// The stored CSV columns of one anomaly.
    fn raw_csv(pool: &Pool, id: i64) -> (String, String) {
        fn get(pool: &Pool, id: i64) -> Result<(String, String), DbError> {
            with_backend!(pool, |_b, c| {
                Ok(anomalies::table
                    .filter(anomalies::id.eq(id as i32))
                    .select((anomalies::algorithms_run, anomalies::triggered_algorithms))
                    .first(c)?)
            })
        }
        get(pool, id).unwrap()
    }

    #[test]
    fn a_failed_batch_rolls_back_its_lookup_rows_and_cached_ids() {
        let (_dir, pool) = sqlite_db();
        migrate(&pool).unwrap();
        let PoolKind::Sqlite(p) = pool.kind() else {
            unreachable!()
        };
        diesel::connection::SimpleConnection::batch_execute(
            &mut *p.get().unwrap(),
            "CREATE TRIGGER poison BEFORE INSERT ON anomalies WHEN NEW.anomaly_timestamp = 42 \
             BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
        )
        .unwrap();
        let mut c = IdCache::new();
        let good = anomaly("new.metric", 100, "analyzer", &["brand_new_algorithm"]);
        let batch = [good.clone(), anomaly("poison.metric", 42, "analyzer", &[])];
        let e = insert_anomalies(&pool, &mut c, &batch, 1).unwrap_err();
        assert!(e.to_string().contains("poisoned row"), "{e}");
        assert_eq!(c.get(Lookup::Metric, "new.metric"), None);
        assert_eq!(c.get(Lookup::Algorithm, "brand_new_algorithm"), None);
        fn metric_rows(pool: &Pool) -> Result<i64, DbError> {
            with_backend!(pool, |_b, c| {
                Ok(super::super::schema::metrics::table
                    .count()
                    .get_result::<i64>(c)?)
            })
        }
        assert_eq!(metric_rows(&pool).unwrap(), 0, "metrics rows rolled back");
        assert!(list_algorithms(&pool).unwrap().is_empty());

        let id = insert_anomaly(&pool, &mut c, &good, 1).unwrap();
        let row = anomaly_by_id(&pool, id).unwrap().unwrap();
        assert_eq!(row.metric, "new.metric");
        assert!(row
            .triggered_algorithms
            .contains(&"brand_new_algorithm".to_string()));
        assert_eq!(c.get(Lookup::Metric, "new.metric"), Some(1));
        assert_eq!(metric_rows(&pool).unwrap(), 1);
    }

    #[test]
    fn sqlite_queries() {
        let (_dir, pool) = sqlite_db();
        migrate(&pool).unwrap();
        exercise(&pool);
    }

    #[test]
    fn sqlite_memory_queries() {
        let pool = connect_with(":memory:", &PoolOptions::default()).unwrap();
        migrate(&pool).unwrap();
        exercise(&pool);
    }

    #[test]
    fn mysql_queries() {
        let Some(db) = TestDb::mysql("mysql_queries") else {
            return;
        };
        migrate(&db.pool).unwrap();
        exercise(&db.pool);
    }

    #[test]
    fn postgres_queries() {
        let Some(db) = TestDb::postgres("postgres_queries") else {
            return;
        };
        migrate(&db.pool).unwrap();
        exercise(&db.pool);
    }
}
