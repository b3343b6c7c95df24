//! The stream detector in the pipeline, against a real redis-server: a stream anomaly
//! reaches Panorama with `stream` among its triggered algorithms and `/metrics` counts it;
//! `/api?metric=NAME&scores=1` and `skyline analyze --csv FILE --detector stream` show the
//! per-point scores.

use std::process::Command;

use skyline::analyze::stream::DEFAULT_THRESHOLD;
use skyline::db::queries;
use skyline::model::msgpack::encode_point;
use skyline::model::{Number, Point};

use crate::support::web::*;
use crate::support::*;

/// A noisy wave around 100; nothing Skyline's algorithms or the stream detector flag.
fn wave(i: usize) -> f64 {
    100.0 + (i as f64 / 30.0).sin() * 10.0 + (i % 7) as f64 * 0.3
}

#[actix_rt::test]
async fn a_stream_anomaly_reaches_panorama_with_stream_triggered() {
    let web = Web::start(|c| {
        c.analyzer.enabled = true;
        c.analyzer.run_every_secs = 1;
        c.analyzer.detectors = vec!["skyline".into(), "stream".into()];
        // The stream detector alone decides, so the row below is its doing.
        c.analyzer.combine = "stream".into();
    })
    .await;
    let mut r = web.redis();
    let end = now() - 60;
    put_metric(&mut r, "s.jump", &series(end, 1000, 60, wave));
    // Let at least one run replay the history (no anomaly: only the last point is judged).
    let stats = eventually(20, || {
        let s: Option<String> = redis::cmd("GET")
            .arg(skyline::analyze::RUN_STATS_KEY)
            .query(&mut r)
            .ok()?;
        s.filter(|s| s.contains("\"total_analyzed\":1"))
    })
    .await;
    assert!(stats.is_some(), "the analyzer ran over the metric");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let pool = web.pool();
    let rows = queries::latest(&pool, 10).unwrap();
    assert!(
        rows.iter().all(|r| r.metric != "s.jump"),
        "no anomaly from the replay: {rows:?}"
    );
    // A new point far beyond the learned range, appended as Horizon does.
    let mut b = Vec::new();
    encode_point(
        &mut b,
        &Point {
            timestamp: Number::Int(end + 30),
            value: Number::Float(400.0),
        },
    );
    let _: () = redis::cmd("APPEND")
        .arg("metrics.s.jump")
        .arg(b)
        .query(&mut r)
        .unwrap();
    let row = eventually(30, || {
        queries::latest(&pool, 10)
            .ok()?
            .into_iter()
            .find(|r| r.metric == "s.jump")
    })
    .await
    .expect("a stream anomaly row in Panorama");
    assert!(
        row.triggered_algorithms.iter().any(|a| a == "stream"),
        "{row:?}"
    );
    assert!(row.algorithms_run.iter().any(|a| a == "stream"), "{row:?}");
    assert_eq!(row.datapoint, 400.0);
    assert_eq!(row.anomaly_timestamp, end + 30);
    // /metrics counts the metric above the stream threshold (until its next run).
    let (status, _, prom) = web.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        prom.contains("skyline_analyzer_stream_above_threshold_metrics"),
        "{prom}"
    );
    web.stop().await;
}

#[actix_rt::test]
async fn api_scores_show_the_stream_detector_per_point() {
    let web = Web::start(|_| {}).await;
    let mut r = web.redis();
    let pts = series(now(), 800, 60, |i| {
        if i >= 700 {
            wave(i) + 300.0
        } else {
            wave(i)
        }
    });
    put_metric(&mut r, "s.api", &pts);
    let j = web.json("/api?metric=s.api&scores=1", 200).await;
    assert_eq!(j["results"].as_array().unwrap().len(), 800);
    let scores: Vec<f64> = j["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    assert_eq!(scores.len(), 800);
    assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
    assert!(
        scores[..700].iter().all(|&s| s < DEFAULT_THRESHOLD),
        "{scores:?}"
    );
    assert!(scores[700] >= DEFAULT_THRESHOLD, "{}", scores[700]);
    assert_eq!(j["threshold"].as_f64(), Some(DEFAULT_THRESHOLD));
    // Without scores=1 the answer is Skyline's.
    let j = web.json("/api?metric=s.api", 200).await;
    assert!(j.get("scores").is_none());
    web.json("/api?metric=s.none&scores=1", 404).await;
    web.stop().await;
}

#[test]
fn analyze_cli_prints_stream_scores() {
    let dir = TempDir::new("stream-cli");
    let csv = dir.0.join("s.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..600 {
        let v = if i == 500 { 10_000.0 } else { wave(i) };
        text.push_str(&format!("{},{v}\n", 1_600_000_000 + i * 60));
    }
    std::fs::write(&csv, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_skyline"))
        .args(["analyze", "--detector", "stream", "--csv"])
        .arg(&csv)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "timestamp,value,score");
    assert_eq!(lines.len(), 1 + 600 + 1);
    let score = |k: usize| -> f64 { lines[1 + k].rsplit(',').next().unwrap().parse().unwrap() };
    assert!(score(500) >= DEFAULT_THRESHOLD);
    assert!(score(499) < DEFAULT_THRESHOLD);
    assert!(
        lines[601].contains("1 at or above the threshold"),
        "{}",
        lines[601]
    );
    let bad = Command::new(env!("CARGO_BIN_EXE_skyline"))
        .args(["analyze", "--detector", "nope", "--csv"])
        .arg(&csv)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
