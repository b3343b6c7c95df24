//! The Analyzer against a real redis-server: a full cycle over Skyline-format keys, its
//! exceptions, the unique-set clean-up, its Redis outputs; and the `skyline analyze` CLI.

use std::process::Command;
use std::time::Duration;

use skyline::analyze::{run_cycle, AnalysisWorker, RunnerSettings};
use skyline::model::msgpack::encode_point;
use skyline::model::{Number, Point};

use crate::support::*;

fn series(n: usize, end: i64, step: i64, f: impl Fn(usize) -> f64) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..n {
        let ts = end - ((n - 1 - i) as i64) * step;
        encode_point(
            &mut b,
            &Point {
                timestamp: Number::Float(ts as f64),
                value: Number::Float(f(i)),
            },
        );
    }
    b
}

#[actix_rt::test]
async fn a_cycle_classifies_every_metric_and_cleans_the_unique_set() {
    let redis = TestRedis::start().unwrap();
    let mut conn = redis_conn(&redis);
    let end = now() - 10;
    let wave = |i: usize| 100.0 + (i as f64 / 30.0).sin() * 10.0 + (i % 7) as f64 * 0.3;
    let keys: Vec<(&str, Vec<u8>)> = vec![
        ("metrics.a.normal", series(1440, end, 60, wave)),
        (
            "metrics.a.spike",
            series(1440, end, 60, |i| if i >= 1437 { 5000.0 } else { wave(i) }),
        ),
        ("metrics.a.short", series(50, end, 60, wave)),
        ("metrics.a.stale", series(1440, end - 3600, 60, wave)),
        ("metrics.a.boring", series(1440, end, 60, |_| 7.0)),
        ("metrics.a.empty", Vec::new()),
        ("metrics.a.garbage", b"\xc1\xc1".to_vec()),
    ];
    for (k, v) in &keys {
        let _: () = redis::cmd("SET").arg(k).arg(v).query(&mut conn).unwrap();
        let _: () = redis::cmd("SADD")
            .arg("metrics.unique_metrics")
            .arg(k)
            .query(&mut conn)
            .unwrap();
    }
    // a member whose key Roomba already deleted
    let _: () = redis::cmd("SADD")
        .arg("metrics.unique_metrics")
        .arg("metrics.a.gone")
        .query(&mut conn)
        .unwrap();

    let settings = skyline::analyze::config::AnalyzerSettings::default().algorithm_settings(86_400);
    let pool = actix::SyncArbiter::start(2, move || {
        AnalysisWorker::new(settings.clone(), "test-host".into())
    });
    let mut cm = skyline::store::redis_conn::connect(redis.url(), Duration::from_secs(5)).unwrap();
    let runner = RunnerSettings {
        run_every: Duration::from_secs(60),
        mget_chunk: 3,
        workers: 2,
        anomaly_dump: None,
    };
    let report = run_cycle(&mut cm, &pool, &runner).await.unwrap();

    assert_eq!(report.total_metrics, 8);
    let stat = |name: &str| {
        report
            .exception_stats
            .iter()
            .find(|(n, _)| n == name)
            .unwrap()
            .1
    };
    assert_eq!(stat("TooShort"), 1);
    assert_eq!(stat("Stale"), 1);
    assert_eq!(stat("Boring"), 1);
    assert_eq!(stat("EmptyTimeseries"), 2, "empty value and vanished key");
    assert_eq!(stat("Other"), 1, "undecodable value");
    assert_eq!(report.total_analyzed, 2);
    let names: Vec<&str> = report.anomalies.iter().map(|a| a.metric.as_str()).collect();
    assert_eq!(names, vec!["a.spike"]);
    let a = &report.anomalies[0];
    assert_eq!(a.datapoint, 5000.0, "the last raw value");
    assert_eq!(a.timestamp, end);
    assert_eq!(
        a.from_timestamp,
        end - 1438 * 60,
        "the second point, as Skyline's check file"
    );
    assert_eq!(a.full_duration, 1438 * 60);
    assert_eq!(a.host, "test-host");
    assert!(a.triggered_algorithms.len() >= 6);
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("metrics.unique_metrics")
        .query(&mut conn)
        .unwrap();
    assert!(
        !members.contains(&"metrics.a.empty".to_string()),
        "EmptyTimeseries is removed from the set"
    );
    assert!(!members.contains(&"metrics.a.gone".to_string()));
    assert!(members.contains(&"metrics.a.short".to_string()));
}

#[test]
fn analyze_cli_reproduces_the_reference_vectors() {
    let out = Command::new(env!("CARGO_BIN_EXE_skyline"))
        .args(["analyze", "--input"])
        .arg(shared("vectors/algorithms.jsonl"))
        .env("SKYLINE_CONFIG", "/nonexistent-use-defaults")
        .output()
        .unwrap();
    // SKYLINE_CONFIG pointing nowhere is an error: config files are never silently skipped.
    assert!(!out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_skyline"))
        .args(["analyze", "--input"])
        .arg(shared("vectors/algorithms.jsonl"))
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = std::fs::read_to_string(shared("vectors/algorithms.jsonl")).unwrap();
    let got = String::from_utf8(out.stdout).unwrap();
    let got: Vec<serde_json::Value> = got
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let want: Vec<serde_json::Value> = expected
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g["metric"], w["metric"]);
        for field in ["anomalous", "ensemble", "exception"] {
            assert_eq!(g[field], w["expected"][field], "{} {field}", w["metric"]);
        }
        assert_eq!(
            g["datapoint"].as_f64(),
            w["expected"]["datapoint"].as_f64(),
            "{}",
            w["metric"]
        );
    }
}

#[test]
fn analyze_cli_names_the_bad_line_and_exits_2() {
    let dir = TempDir::new("crucible");
    let p = dir.0.join("bad.jsonl");
    std::fs::write(
        &p,
        "{\"metric\":\"a\",\"now\":1,\"timeseries\":[]}\nnot json\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_skyline"))
        .args(["analyze", "--input"])
        .arg(&p)
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(":2"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn analyze_cli_reads_a_csv() {
    let dir = TempDir::new("crucible-csv");
    let p = dir.0.join("s.csv");
    let mut text = String::from("timestamp,value\n");
    for i in 0..1440 {
        let v = if i >= 1437 {
            900.0
        } else {
            10.0 + (i % 5) as f64
        };
        text.push_str(&format!("{},{v}\n", 1_700_000_000 + i * 60));
    }
    std::fs::write(&p, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_skyline"))
        .args(["analyze", "--csv"])
        .arg(&p)
        .current_dir(&dir.0)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("histogram_bins"), "{report}");
    assert!(report.to_lowercase().contains("anomalous"), "{report}");
}
