//! The whole pipeline: pickle listener → metric actors → Redis → Analyzer → Panorama rows,
//! on SQLite always and on the machine's MariaDB and PostgreSQL when their URLs are set.

use std::io::Write;
use std::net::TcpStream;

use skyline::db::queries;
use skyline::seed;

use crate::support::server_db::ServerDb;
use crate::support::*;

/// Feeds the seed series through the pickle listener and waits for its Panorama row.
async fn seeded_anomaly_lands_in(database_url: String) {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("pipeline");
    let mut cfg = config(&redis, &dir);
    cfg.analyzer.run_every_secs = 1;
    cfg.panorama.database_url = database_url;
    let running = skyline::app::start(&cfg).await.unwrap();
    let end = now();
    for batch in seed::series(end).chunks(100) {
        let items: Vec<(String, (i64, f64))> = batch
            .iter()
            .map(|&(t, v)| (seed::SEED_METRIC.to_string(), (t, v)))
            .collect();
        let mut s = TcpStream::connect(running.pickle_addr.unwrap()).unwrap();
        s.write_all(&seed::frame(&items).unwrap()).unwrap();
    }
    let mut conn = redis_conn(&redis);
    let current = eventually(30, || {
        let v: Option<String> = redis::cmd("GET")
            .arg(skyline::analyze::CURRENT_ANOMALIES_KEY)
            .query(&mut conn)
            .ok()?;
        v.filter(|s| s.contains(seed::SEED_METRIC))
    })
    .await;
    assert!(
        current.is_some(),
        "the seeded metric must be reported anomalous by the analyzer"
    );
    let pool = running.db.clone().unwrap();
    let row = eventually(30, || {
        queries::latest(&pool, 10)
            .ok()?
            .into_iter()
            .find(|r| r.metric == seed::SEED_METRIC)
    })
    .await
    .expect("an anomaly row in Panorama");
    assert_eq!(row.app, "analyzer");
    assert_eq!(row.source, "graphite");
    assert!(row.datapoint > 18_000.0, "{row:?}");
    assert!(row.triggered_algorithms.len() >= 6, "{row:?}");
    // The nine algorithms and the stream detector ([analyzer] detectors' default).
    assert_eq!(row.algorithms_run.len(), 10, "{row:?}");
    assert_eq!(
        row.algorithms_run.last().map(String::as_str),
        Some("stream")
    );
    assert!((end - 20..end).contains(&row.anomaly_timestamp), "{row:?}");
    // Dedup: later runs (every second) must not add rows within expiry_secs.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let rows: Vec<_> = queries::latest(&pool, 100)
        .unwrap()
        .into_iter()
        .filter(|r| r.metric == seed::SEED_METRIC)
        .collect();
    assert_eq!(
        rows.len(),
        1,
        "one anomaly per metric per app within the expiry window"
    );
    running.shutdown().await;
}

#[actix_rt::test]
async fn seeded_anomaly_lands_in_sqlite() {
    let dir = TempDir::new("sqlite");
    seeded_anomaly_lands_in(format!("sqlite://{}", dir.0.join("p.sqlite").display())).await;
}

#[actix_rt::test]
async fn seeded_anomaly_lands_in_mariadb() {
    if let Some(db) = ServerDb::create("SKYLINE_TEST_MYSQL_URL", "pipe") {
        seeded_anomaly_lands_in(db.url.clone()).await;
    }
}

#[actix_rt::test]
async fn seeded_anomaly_lands_in_postgres() {
    if let Some(db) = ServerDb::create("SKYLINE_TEST_POSTGRES_URL", "pipe") {
        seeded_anomaly_lands_in(db.url.clone()).await;
    }
}
