//! Endpoint monitor storage benchmarks: what the writer does per batch of 1,000 records
//! (encode the block, insert it with its batch row into SQLite) and what every view does per
//! block (decode), so the per-record cost of monitoring at level ≥ 1 can be read off.
//!
//! Run: `cargo bench --bench monitor`. Criterion's throughput is in records.

// A benchmark is test code: any failure should abort it loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::IpAddr;
use std::sync::Arc;

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
    c.final_summary();
}
