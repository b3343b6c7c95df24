//! Endpoint monitor storage benchmarks: what the writer does per batch of 1,000 records
//! (encode the block, insert it with its batch row into SQLite) and what every view does per
//! block (decode), so the per-record cost of monitoring at level ≥ 1 can be read off.
//!
//! The group `monitor_request` measures the request path itself: one request through the
//! real monitor middleware to a trivial handler, the same `Monitor` capped at level 0 and at
//! level 2 (records kept by the monitor, taken and dropped every millisecond on another
//! thread as the writer does). Its difference is what level 2 adds to every request on the
//! request's own thread; the writer's share is the `monitor_write` figure per record.
//!
//! Run: `cargo bench --bench monitor`. Criterion's throughput is in records (requests).

// A benchmark is test code: any failure should abort it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use skyline::db::{self, monitor::Batch};
use skyline::monitor::block;
use skyline::monitor::{Breakdown, ClientIp, Hit};

const RECORDS: usize = 1_000;

/// A batch as the middleware fills it: shared names, a few client addresses, one record in
/// ten with a group tag and one in ten with a breakdown.
fn hits(n: usize) -> Vec<Hit> {
    let routes: Vec<Arc<str>> = ["/api", "/", "/flux/metric_data_post", "/panorama"]
        .iter()
        .map(|&r| r.into())
        .collect();
    let (get, post): (Arc<str>, Arc<str>) = ("GET".into(), "POST".into());
    let version: Arc<str> = "0.1.0 (b64b754)".into();
    let user: Arc<str> = "admin".into();
    (0..n)
        .map(|i| Hit {
            time_ms: 1_800_000_000_000 + i as i64 / 3,
            route: routes[i % routes.len()].clone(),
            method: if i % 4 == 2 {
                post.clone()
            } else {
                get.clone()
            },
            status: if i % 50 == 0 { 500 } else { 200 },
            duration_us: 200 + (i as u64 * 7919) % 40_000,
            version: version.clone(),
            ip: ClientIp::Addr(IpAddr::from([10, 0, (i % 3) as u8, 7])),
            user: Some(user.clone()),
            group: (i % 10 == 0).then(|| "canary".into()),
            breakdown: (i % 10 == 5).then_some(Breakdown {
                redis_us: 120,
                sql_us: 0,
                graphite_us: 0,
                template_us: 40,
            }),
        })
        .collect()
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let hs = hits(RECORDS);
    let encoded = block::encode(&hs);
    println!(
        "block of {RECORDS} records: {} bytes ({:.1} a record)",
        encoded.data.len(),
        encoded.data.len() as f64 / RECORDS as f64
    );
    let mut g = c.benchmark_group("monitor_block");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("encode", |b| b.iter(|| block::encode(&hs)));
    g.bench_function("decode", |b| b.iter(|| block::decode(&encoded.data)));
    g.finish();

    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("monitor.db").display());
    let pool = db::connect(&url, 2).expect("SQLite pool");
    db::migrate(&pool).expect("migrations");
    let mut g = c.benchmark_group("monitor_write");
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function("insert_batch_sqlite", |b| {
        b.iter(|| {
            let batch = Batch::new(hs.clone(), Vec::new());
            db::monitor::insert_batch(&pool, &batch).expect("insert")
        })
    });
    g.finish();

    request_path(&mut c);
    c.final_summary();
}

/// One request through the monitor middleware at level 0 and at level 2 (see the top).
fn request_path(c: &mut Criterion) {
    use actix_web::{middleware::from_fn, test, web, App, HttpMessage, HttpResponse};
    use skyline::monitor::{HitSource, Identity, MonitorSettings};
    use skyline::webapp::monitor::{Monitor, Recorder};

    let system = actix_rt::System::new();
    let (tx, mut rx) = skyline::monitor::channel(MonitorSettings::default().queue_max);
    let settings = MonitorSettings {
        version: "0.1.0 (bench)".into(),
        ..MonitorSettings::default()
    };
    let monitor = web::Data::new(Monitor::with_recorder(Recorder::new(settings, tx)));
    let stop = Arc::new(AtomicBool::new(false));
    // The writer's part: takes the kept records (and drains outliers) on another thread,
    // every millisecond, and drops them.
    let drainer = {
        let stop = stop.clone();
        let source: Arc<dyn HitSource> = monitor.clone().into_inner();
        std::thread::spawn(move || {
            let mut hits = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                source.take_hits(&mut hits);
                hits.clear();
                while let Ok(record) = rx.try_recv() {
                    drop(record);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let app = system.block_on(test::init_service(
        App::new()
            .app_data(monitor.clone())
            .wrap(from_fn(skyline::webapp::monitor::record))
            .route(
                "/api",
                web::get().to(|| async { HttpResponse::Ok().body("{\"ok\": true}") }),
            ),
    ));
    let user = Identity("admin".into());
    let peer: std::net::SocketAddr = "127.0.0.1:50000".parse().expect("address");
    let mut g = c.benchmark_group("monitor_request");
    g.throughput(Throughput::Elements(1));
    // Alternating the levels twice: a drift of the machine shows as a difference between the
    // two runs of one level.
    for (run, level) in [0u8, 2, 2, 0].into_iter().enumerate() {
        monitor.cap_levels(level);
        g.bench_function(format!("level_{level}_run_{}", run / 2 + 1), |b| {
            b.iter(|| {
                system.block_on(async {
                    let req = test::TestRequest::get()
                        .uri("/api?metric=bench.metric")
                        .peer_addr(peer)
                        .insert_header(("User-Agent", "bench"))
                        .to_request();
                    req.extensions_mut().insert(user.clone());
                    test::call_service(&app, req).await
                })
            })
        });
    }
    g.finish();
    stop.store(true, Ordering::Relaxed);
    let _ = drainer.join();
}
