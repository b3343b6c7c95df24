//! Panorama database benchmarks: insert rate and every webapp search over 1,000,000 anomaly
//! rows, on SQLite always and on PostgreSQL / MySQL when `SKYLINE_TEST_POSTGRES_URL` /
//! `SKYLINE_TEST_MYSQL_URL` name an admin URL (a `skyline_bench_*` database is created and
//! dropped).
//!
//! Run: `cargo bench --bench panorama` (`SKYLINE_BENCH_ROWS=100000` for a quicker run).
//! Besides Criterion's report, it prints p50/p99/max per search over 100 runs, because the
//! target is "every search ≤ 50 ms at p99", and the actor's end-to-end insert rate.

// A benchmark is test code: any failure should abort it loudly, with the context the
// message gives, so `expect` is the intended error handling here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use diesel::connection::SimpleConnection;
use skyline::db::{self, queries, AnomalyQuery, IdCache, Order, Pool, PoolOptions};
use skyline::model::Anomaly;
use skyline::panorama::{GetStats, Panorama, PanoramaSettings, RecordAnomaly};

const METRICS: usize = 10_000;
const STEP: i64 = 30;
const T0: i64 = 1_700_000_000;
const ALGORITHMS: [&str; 9] = skyline::analyze::config::ALGORITHM_NAMES;

fn rows() -> usize {
    std::env::var("SKYLINE_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// 10,000 metrics: `stats.hostNNN.<family>.mNN`, the last ten hosts under `carbon.agents`.
fn metric_name(m: usize) -> String {
    let host = m / 100;
    let leaf = m % 100;
    let family = ["cpu", "mem", "disk", "net", "app"][leaf % 5];
    let root = if host >= 90 { "carbon.agents" } else { "stats" };
    format!("{root}.host{host:03}.{family}.m{leaf:02}")
}

/// Row `i` of the data set: every metric 1 % of rows, spread over ~a year; analyzer 89 %,
/// mirage 10 %, boundary 1 %; redis source 5 %; three hosts; a rare algorithm in 0.1 %.
fn anomaly(i: usize) -> Anomaly {
    let triggered: &[&str] = match i % 6 {
        0 => &["grubbs", "ks_test"],
        1 => &["histogram_bins", "least_squares", "stddev_from_average"],
        2 => &["median_absolute_deviation"],
        3 => &[
            "first_hour_average",
            "grubbs",
            "mean_subtraction_cumulation",
        ],
        4 => &["stddev_from_moving_average", "least_squares"],
        _ => &[
            "ks_test",
            "histogram_bins",
            "median_absolute_deviation",
            "grubbs",
        ],
    };
    let mut triggered: Vec<String> = triggered.iter().map(|s| s.to_string()).collect();
    if i % 1000 == 7 {
        triggered.push("rare_algorithm".into());
    }
    let ts = T0 + i as i64 * STEP;
    Anomaly {
        metric: metric_name(i % METRICS),
        timestamp: ts,
        datapoint: (i % 1000) as f64 * 1.5,
        from_timestamp: ts - 86_340,
        full_duration: 86_340,
        algorithms_run: ALGORITHMS.iter().map(|s| s.to_string()).collect(),
        triggered_algorithms: triggered,
        app: if i % 100 == 0 {
            "boundary"
        } else if i % 10 == 1 {
            "mirage"
        } else {
            "analyzer"
        }
        .into(),
        source: if i % 20 == 0 { "redis" } else { "graphite" }.into(),
        host: format!("skyline-{}", i % 3 + 1),
        added_at: ts + 5,
    }
}

fn bulk_load(label: &str, pool: &Pool, n: usize) -> IdCache {
    let started = Instant::now();
    let mut cache = IdCache::new();
    let chunk = 10_000;
    for start in (0..n).step_by(chunk) {
        let batch: Vec<Anomaly> = (start..(start + chunk).min(n)).map(anomaly).collect();
        queries::insert_anomalies(pool, &mut cache, &batch, 1).expect("bulk insert");
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "[{label}] bulk load: {n} anomalies in {secs:.1} s ({:.0} rows/s)",
        n as f64 / secs
    );
    // Production tables have planner statistics (autovacuum, InnoDB's persistent stats); a
    // table loaded a second ago may not, so gather them as the servers eventually would.
    let analyze = match pool.backend() {
        db::Backend::Sqlite => "ANALYZE",
        db::Backend::Postgres => "ANALYZE anomalies",
        db::Backend::Mysql => "ANALYZE TABLE anomalies",
    };
    match pool.kind() {
        db::PoolKind::Sqlite(p) => p.get().expect("conn").batch_execute(analyze),
        db::PoolKind::Postgres(p) => p.get().expect("conn").batch_execute(analyze),
        db::PoolKind::Mysql(p) => p.get().expect("conn").batch_execute(analyze),
    }
    .expect("analyze");
    cache
}

/// Builds the `i`-th instance of a search (so repeated runs use different metrics).
type MakeQuery = Box<dyn Fn(usize) -> AnomalyQuery>;

/// The searches the webapp runs; `i` varies the metric between runs.
fn searches(n: usize) -> Vec<(&'static str, MakeQuery)> {
    let t_end = T0 + n as i64 * STEP;
    let day = 86_400;
    let q = AnomalyQuery::default;
    vec![
        ("latest_10", Box::new(move |_| q())),
        (
            "metric",
            Box::new(move |i| AnomalyQuery {
                metric: Some(metric_name(i * 37 % METRICS)),
                ..q()
            }),
        ),
        (
            "metric_30_days",
            Box::new(move |i| AnomalyQuery {
                metric: Some(metric_name(i * 37 % METRICS)),
                from_ts: Some(t_end - 30 * day),
                until_ts: Some(t_end),
                limit: 100,
                ..q()
            }),
        ),
        (
            "metric_like_host",
            Box::new(move |i| AnomalyQuery {
                metric_like: Some(format!("stats.host{:03}.%", i % 90)),
                ..q()
            }),
        ),
        (
            "metric_like_suffix",
            Box::new(move |i| AnomalyQuery {
                metric_like: Some(format!("*.m{:02}", i % 100)),
                ..q()
            }),
        ),
        (
            "namespace",
            Box::new(move |i| AnomalyQuery {
                namespace: Some(format!("stats.host{:03}.cpu", i % 90)),
                ..q()
            }),
        ),
        (
            "last_24h",
            Box::new(move |_| AnomalyQuery {
                from_ts: Some(t_end - day),
                limit: 100,
                ..q()
            }),
        ),
        (
            "week_asc",
            Box::new(move |_| AnomalyQuery {
                from_ts: Some(T0 + 100 * day),
                until_ts: Some(T0 + 107 * day),
                order: Order::Asc,
                limit: 500,
                ..q()
            }),
        ),
        (
            "app_rare",
            Box::new(move |_| AnomalyQuery {
                app: Some("boundary".into()),
                ..q()
            }),
        ),
        (
            "source",
            Box::new(move |_| AnomalyQuery {
                source: Some("redis".into()),
                ..q()
            }),
        ),
        (
            "host",
            Box::new(move |_| AnomalyQuery {
                host: Some("skyline-2".into()),
                ..q()
            }),
        ),
        (
            "algorithm",
            Box::new(move |_| AnomalyQuery {
                algorithm: Some("median_absolute_deviation".into()),
                ..q()
            }),
        ),
        (
            "algorithm_rare",
            Box::new(move |_| AnomalyQuery {
                algorithm: Some("rare_algorithm".into()),
                ..q()
            }),
        ),
        (
            "combined",
            Box::new(move |i| AnomalyQuery {
                namespace: Some(format!("stats.host{:03}", i % 90)),
                app: Some("analyzer".into()),
                source: Some("graphite".into()),
                algorithm: Some("grubbs".into()),
                from_ts: Some(t_end - 180 * day),
                limit: 50,
                ..q()
            }),
        ),
    ]
}

/// Counts, the webapp's `count_by_metric` mode.
fn counts(n: usize) -> Vec<(&'static str, AnomalyQuery)> {
    let t_end = T0 + n as i64 * STEP;
    vec![
        (
            "count_by_metric_all",
            AnomalyQuery {
                limit: 100,
                ..AnomalyQuery::default()
            },
        ),
        (
            "count_by_metric_7_days",
            AnomalyQuery {
                from_ts: Some(t_end - 7 * 86_400),
                limit: 100,
                ..AnomalyQuery::default()
            },
        ),
        (
            "count_by_metric_namespace",
            AnomalyQuery {
                namespace: Some("stats.host007".into()),
                limit: 100,
                ..AnomalyQuery::default()
            },
        ),
    ]
}

fn percentiles(label: &str, name: &str, f: impl FnMut(usize)) {
    percentiles_n(label, name, 100, f);
}

fn percentiles_n(label: &str, name: &str, runs: usize, mut f: impl FnMut(usize)) {
    for i in 0..3 {
        f(i);
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |q: f64| times[((runs as f64 * q).ceil() as usize).clamp(1, runs) - 1];
    let p99 = at(0.99);
    println!(
        "[{label}] {name:<28} p50 {:>8.2} ms  p99 {:>8.2} ms  max {:>8.2} ms{}",
        ms(at(0.5)),
        ms(p99),
        ms(times[runs - 1]),
        if p99 > Duration::from_millis(50) {
            "  OVER 50 ms"
        } else {
            ""
        }
    );
}

/// Anomalies/s through the actor (group commit), end to end, for `n` anomalies of known
/// metrics: first with the new actor's id cache cold (one lookup per metric), then warm.
fn actor_rate(label: &str, pool: &Pool, n: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pool = pool.clone();
    let settings = PanoramaSettings {
        retry_tick: Duration::ZERO,
        check_max_age_secs: 0,
        ..PanoramaSettings::new(dir.path().join("spool"))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let sys = actix::System::new();
    sys.block_on(async move {
        let addr =
            actix::SyncArbiter::start(1, move || Panorama::new(pool.clone(), settings.clone()));
        addr.send(GetStats).await.expect("stats");
        // One anomaly per metric per app, so the dedup window lets every one through.
        for (round, app) in [("cold id cache", "analyzer"), ("warm id cache", "mirage")] {
            let before = addr.send(GetStats).await.expect("stats").inserted;
            let started = Instant::now();
            for i in 0..n {
                let mut a = anomaly(i);
                a.app = app.into();
                a.timestamp = now;
                addr.do_send(RecordAnomaly(a));
            }
            let s = addr.send(GetStats).await.expect("stats");
            let secs = started.elapsed().as_secs_f64();
            assert_eq!((s.inserted - before) as usize, n, "{s:?}");
            println!(
                "[{label}] actor, {round}: {n} RecordAnomaly inserted in {secs:.2} s ({:.0} anomalies/s)",
                n as f64 / secs
            );
        }
    });
}

fn run_backend(c: &mut Criterion, label: &str, pool: &Pool) {
    let n = rows();
    db::migrate(pool).expect("migrate");
    let mut cache = bulk_load(label, pool, n);

    // An unfiltered count_by_metric before Panorama has folded anything into the per-metric
    // summary (a database just migrated from Skyline), then the one-off fold.
    let all = AnomalyQuery {
        limit: 100,
        ..AnomalyQuery::default()
    };
    percentiles_n(label, "count_by_metric_all_unfolded", 20, |_| {
        queries::count_by_metric(pool, &all).expect("count");
    });
    let started = Instant::now();
    let through = queries::max_anomaly_id(pool).expect("max id");
    let folded = queries::refresh_metric_counts(pool, through).expect("refresh");
    println!(
        "[{label}] folded {folded} anomalies into the metric counts in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    println!("[{label}] search latency over {n} rows (100 runs each):");
    for (name, make) in searches(n) {
        percentiles(label, name, |i| {
            queries::search(pool, &make(i)).expect("search");
        });
    }
    for (name, query) in counts(n) {
        percentiles(label, name, |_| {
            queries::count_by_metric(pool, &query).expect("count");
        });
    }
    percentiles(label, "anomaly_by_id", |i| {
        queries::anomaly_by_id(pool, (i * 7919 % n + 1) as i64).expect("by id");
    });
    percentiles(label, "list_algorithms", |_| {
        queries::list_algorithms(pool).expect("list");
    });

    let mut g = c.benchmark_group(format!("{label}/search"));
    for (name, make) in searches(n) {
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                queries::search(pool, &make(i)).expect("search")
            })
        });
    }
    for (name, query) in counts(n) {
        g.bench_function(name, |b| {
            b.iter(|| queries::count_by_metric(pool, &query).expect("count"))
        });
    }
    g.finish();

    // Known metrics, warm id cache: the steady state of a running Panorama.
    let mut g = c.benchmark_group(format!("{label}/insert"));
    let mut next = n;
    for batch in [1usize, 100, 1000] {
        g.throughput(Throughput::Elements(batch as u64));
        g.bench_with_input(BenchmarkId::from_parameter(batch), &batch, |b, &batch| {
            b.iter(|| {
                let rows: Vec<Anomaly> = (next..next + batch).map(anomaly).collect();
                next += batch;
                if batch == 1 {
                    queries::insert_anomaly(pool, &mut cache, &rows[0], 1).expect("insert");
                } else {
                    queries::insert_anomalies(pool, &mut cache, &rows, 1).expect("insert");
                }
            })
        });
    }
    g.finish();

    actor_rate(label, pool, 10_000);
}

/// A fresh database on the server named by `env`, dropped afterwards.
struct ServerDb {
    admin: String,
    name: String,
    mysql: bool,
}

impl ServerDb {
    fn create(env: &str, mysql: bool) -> Option<(ServerDb, Pool)> {
        let admin = std::env::var(env).ok().filter(|v| !v.is_empty())?;
        let name = format!("skyline_bench_{}", std::process::id());
        let sql = if mysql {
            format!("CREATE DATABASE `{name}`")
        } else {
            format!("CREATE DATABASE \"{name}\"")
        };
        admin_exec(&admin, mysql, &sql);
        let (base, query) = admin
            .split_once('?')
            .map_or((admin.as_str(), ""), |(b, q)| (b, q));
        let base = base.rsplit_once('/').map_or(base, |(b, _)| b);
        let url = if query.is_empty() {
            format!("{base}/{name}")
        } else {
            format!("{base}/{name}?{query}")
        };
        let pool = db::connect_with(
            &url,
            &PoolOptions {
                statement_timeout: None,
                ..PoolOptions::default()
            },
        )
        .expect("connect to the bench database");
        Some((ServerDb { admin, name, mysql }, pool))
    }
}

fn admin_exec(admin: &str, _mysql: bool, sql: &str) {
    db::execute_batch(admin, sql).expect("admin statement");
}

impl Drop for ServerDb {
    fn drop(&mut self) {
        let sql = if self.mysql {
            format!("DROP DATABASE IF EXISTS `{}`", self.name)
        } else {
            format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)
        };
        admin_exec(&self.admin, self.mysql, &sql);
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();

    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/bench.sqlite", dir.path().display());
    let pool = db::connect(&url, 4).expect("open sqlite");
    run_backend(&mut c, "sqlite", &pool);
    drop(pool);

    match ServerDb::create("SKYLINE_TEST_POSTGRES_URL", false) {
        Some((_db, pool)) => run_backend(&mut c, "postgres", &pool),
        None => println!("[postgres] skipped: SKYLINE_TEST_POSTGRES_URL is not set"),
    }
    match ServerDb::create("SKYLINE_TEST_MYSQL_URL", true) {
        Some((_db, pool)) => run_backend(&mut c, "mysql", &pool),
        None => println!("[mysql] skipped: SKYLINE_TEST_MYSQL_URL is not set"),
    }
    c.final_summary();
}
