//! Boundary against a private redis-server: alert_threshold counting through the real alert
//! actor and a local webhook receiver, the drop-off cliff of stages-spec Appendix B, and the
//! daemon end to end (one Panorama row, app `boundary`, and one alert).

use std::time::Duration;

use actix::prelude::*;
use skyline::alert::{self, AlertRoute, AlertRouted, Alerts, AlertsSetup, RetryPolicy, RuleSet};
use skyline::boundary::{
    anomaly_seen_key, Boundary, BoundaryRule, BoundarySettings, BoundarySetup, CycleSettings,
    RuleBook, RunBoundary, RunReport, CURRENT_ANOMALIES_KEY, HEARTBEAT_KEY, RUN_STATS_KEY,
};
use skyline::config::AlertersSettings;
use skyline::db::queries;
use skyline::store::redis_conn;

use crate::support::sinks::*;
use crate::support::web::{put_metric, series};
use crate::support::*;

fn rule(pattern: &str, algorithm: &str) -> BoundaryRule {
    BoundaryRule {
        pattern: pattern.into(),
        algorithm: algorithm.into(),
        trigger_value: 0.0,
        min_average: 0.0,
        min_average_seconds: 0,
        alert_threshold: 1,
        alerters: vec![],
        expiration_secs: 3600,
        excludes: vec![],
        position: 0,
    }
}

/// A Boundary actor that only runs when asked (`RunBoundary`), and, when `webhook` is given,
/// the real alert actor delivering to it.
async fn boundary_with(
    redis: &TestRedis,
    rules: Vec<BoundaryRule>,
    webhook: Option<&HttpSink>,
) -> (Addr<Boundary>, Option<Addr<Alerts>>) {
    let settings = BoundarySettings {
        rules,
        ..Default::default()
    };
    let timeout = Duration::from_secs(5);
    let alerts = match webhook {
        Some(hook) => {
            let a = AlertersSettings {
                webhook: Some(alert::config::WebhookSettings {
                    url: hook.url("/boundary"),
                    ..Default::default()
                }),
                max_attempts: 1,
                ..Default::default()
            };
            let channels =
                alert::build_channels(&a, None, &alert::Context::default(), "test").unwrap();
            let setup = AlertsSetup {
                rules: RuleSet::new(&[]).unwrap(),
                enabled: true,
                queue_max: 100,
                policy: RetryPolicy::from_settings(&a),
                syslog_all: false,
                thunder_alerters: vec![],
                pending_file: None,
            };
            let conn = redis_conn::connect(redis.url(), timeout).unwrap();
            Some(Alerts::new(setup, channels, Some(conn)).start())
        }
        None => None,
    };
    let setup = BoundarySetup {
        cycle: CycleSettings {
            book: RuleBook::new(&settings.rules, settings.max_metrics_per_rule).unwrap(),
            gates: settings.gates(),
            mget_chunk: 2,
            host: "test".into(),
        },
        // The timer never fires within a test: every run is a RunBoundary.
        run_every: Duration::from_secs(86_400),
        first_run_after: Duration::from_secs(86_400),
        enable_alerts: true,
    };
    let conn = redis_conn::connect(redis.url(), timeout).unwrap();
    let to: Vec<Recipient<AlertRouted>> = alerts.iter().map(|a| a.clone().recipient()).collect();
    (Boundary::new(conn, setup, vec![], to).start(), alerts)
}

async fn run(b: &Addr<Boundary>) -> RunReport {
    b.send(RunBoundary).await.unwrap().unwrap()
}

/// 120 varying 60-s points ending now, the last one `last`.
fn varying_then(last: f64) -> Vec<(i64, f64)> {
    let mut s = series(now(), 120, 60, |i| 50.0 + (i % 7) as f64);
    if let Some(p) = s.last_mut() {
        p.1 = last;
    }
    s
}

fn get(conn: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(conn).unwrap()
}

/// Waits until the alert actor has decided on everything sent before: a marker alert sent
/// after them arrives at the receiver only after every earlier queued alert (one FIFO queue
/// per alerter, claims answered in order on one connection).
async fn drain(alerts: &Addr<Alerts>, hook: &HttpSink, n: usize) {
    let marker = format!("marker.{n}");
    let mut a = skyline::model::Anomaly {
        metric: marker.clone(),
        timestamp: now(),
        datapoint: 1.0,
        from_timestamp: now() - 60,
        full_duration: 60,
        algorithms_run: vec![],
        triggered_algorithms: vec![],
        app: "boundary".into(),
        source: "redis".into(),
        host: "test".into(),
        added_at: now(),
    };
    a.triggered_algorithms.push("marker".into());
    alerts.do_send(AlertRouted {
        anomaly: a,
        routes: vec![AlertRoute {
            alerter: "webhook".into(),
            key: format!("test.marker.{n}"),
            expiration_secs: 60,
        }],
    });
    eventually(20, || {
        hook.requests()
            .iter()
            .any(|r| r.json()["metric"] == marker.as_str())
            .then_some(())
    })
    .await
    .expect("the marker alert");
}

fn boundary_alerts(hook: &HttpSink) -> Vec<serde_json::Value> {
    hook.requests()
        .iter()
        .map(|r| r.json())
        .filter(|j| !j["metric"].as_str().unwrap_or("").starts_with("marker."))
        .collect()
}

#[actix_rt::test]
async fn less_than_with_threshold_3_alerts_once_after_the_third_consecutive_breach() {
    let redis = TestRedis::start().unwrap();
    let hook = HttpSink::start(0);
    let mut conn = redis_conn(&redis);
    let mut r = rule("key.web.requests", "less_than");
    r.trigger_value = 10.0;
    r.alert_threshold = 3;
    r.alerters = vec!["webhook".into()];
    let (b, alerts) = boundary_with(&redis, vec![r], Some(&hook)).await;
    let alerts = alerts.unwrap();
    let seen = anomaly_seen_key("less_than", "key.web.requests");

    // Runs 1 and 2: breached, counted, not reported, nothing alerted.
    for n in 1..=2u64 {
        put_metric(&mut conn, "key.web.requests", &varying_then(5.0));
        let report = run(&b).await;
        assert_eq!(report.detections.len(), 1, "{report:?}");
        assert_eq!(report.detections[0].times_seen, n);
        assert!(!report.detections[0].reported);
        assert!(report.anomalies.is_empty());
        assert_eq!(get(&mut conn, &seen), Some(n.to_string()));
        let ttl: i64 = redis::cmd("TTL").arg(&seen).query(&mut conn).unwrap();
        assert!((200..=240).contains(&ttl), "TTL (3 + 1) × 60: {ttl}");
        assert_eq!(get(&mut conn, CURRENT_ANOMALIES_KEY).as_deref(), Some("[]"));
        drain(&alerts, &hook, n as usize).await;
        assert!(
            boundary_alerts(&hook).is_empty(),
            "no alert before the third breach"
        );
    }

    // Run 3: the third consecutive breach alerts.
    put_metric(&mut conn, "key.web.requests", &varying_then(5.0));
    let report = run(&b).await;
    assert!(report.detections[0].reported && report.detections[0].times_seen == 3);
    assert_eq!(report.anomalies.len(), 1);
    let alert = eventually(20, || boundary_alerts(&hook).first().cloned())
        .await
        .expect("one alert after the third breach");
    assert_eq!(alert["context"], "Boundary");
    assert_eq!(alert["metric"], "key.web.requests");
    assert_eq!(alert["value"], 5.0);
    assert_eq!(
        alert["triggered_algorithms"],
        serde_json::json!(["less_than"])
    );
    assert_eq!(alert["app"], "boundary");
    assert_eq!(alert["expiration_secs"], 3600);
    let key = "last_alert.boundary.webhook.key.web.requests.less_than";
    let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut conn).unwrap();
    assert!((3500..=3600).contains(&ttl), "{key} TTL {ttl}");
    let current: serde_json::Value =
        serde_json::from_str(&get(&mut conn, CURRENT_ANOMALIES_KEY).unwrap()).unwrap();
    assert_eq!(current[0]["metric"], "key.web.requests");
    assert_eq!(
        current[0]["triggered_algorithms"],
        serde_json::json!(["less_than"])
    );
    assert_eq!(
        current[0]["algorithms_run"],
        serde_json::json!(["less_than"])
    );
    assert_eq!(current[0]["datapoint"], 5.0);

    // Run 4: still breached and reported, but within the expiration: no second alert.
    put_metric(&mut conn, "key.web.requests", &varying_then(5.0));
    let report = run(&b).await;
    assert!(report.detections[0].reported && report.detections[0].times_seen == 4);
    drain(&alerts, &hook, 4).await;
    assert_eq!(boundary_alerts(&hook).len(), 1, "exactly one alert");

    // A run that does not breach resets the count; the next breach is the first again.
    put_metric(&mut conn, "key.web.requests", &varying_then(50.0));
    let report = run(&b).await;
    assert!(report.detections.is_empty());
    assert_eq!(get(&mut conn, &seen), None);
    put_metric(&mut conn, "key.web.requests", &varying_then(5.0));
    let report = run(&b).await;
    assert_eq!(report.detections[0].times_seen, 1);
    assert!(!report.detections[0].reported);
}

#[actix_rt::test]
async fn drop_off_cliff_appendix_b_and_min_average() {
    let redis = TestRedis::start().unwrap();
    let mut conn = redis_conn(&redis);
    // [1000]*110 + [5], 60-s points, fresh.
    let cliff = series(now(), 111, 60, |i| if i == 110 { 5.0 } else { 1000.0 });
    put_metric(&mut conn, "cliff.plain", &cliff);
    put_metric(&mut conn, "cliff.min_average", &cliff);
    put_metric(&mut conn, "cliff.short", &cliff[20..]);
    put_metric(&mut conn, "unrelated.metric", &cliff);
    let mut with_min = rule("cliff.min_average", "detect_drop_off_cliff");
    with_min.min_average = 2000.0;
    with_min.min_average_seconds = 600;
    let rules = vec![
        rule("cliff", "detect_drop_off_cliff"),
        // The last matching rule per algorithm wins: this one replaces the line above for
        // cliff.min_average only.
        with_min,
    ];
    let (b, _) = boundary_with(&redis, rules, None).await;
    let report = run(&b).await;
    assert_eq!(report.total_metrics, 4);
    assert_eq!(report.boundary_metrics, 3);
    assert_eq!(report.total_checks, 3);
    let found: Vec<&str> = report
        .detections
        .iter()
        .map(|d| d.metric.as_str())
        .collect();
    assert_eq!(found, vec!["cliff.plain"], "{report:?}");
    let too_short = report
        .exception_stats
        .iter()
        .find(|(n, _)| n == "TooShort")
        .map(|e| e.1);
    assert_eq!(too_short, Some(1), "91 points are TooShort for the cliff");
    let a = &report.anomalies[0];
    assert_eq!((a.metric.as_str(), a.datapoint), ("cliff.plain", 5.0));
    assert_eq!(a.app, "boundary");
    assert_eq!(a.source, "redis");
    // Boundary's from_timestamp is the first point of the series (spec trap 8).
    assert_eq!(a.from_timestamp, cliff[0].0);
    assert_eq!(a.full_duration, 110 * 60);
    // The run's outputs for the Now page.
    let current: serde_json::Value =
        serde_json::from_str(&get(&mut conn, CURRENT_ANOMALIES_KEY).unwrap()).unwrap();
    assert_eq!(current.as_array().map(Vec::len), Some(1));
    assert_eq!(current[0]["metric"], "cliff.plain");
    assert_eq!(current[0]["timestamp"], cliff[110].0);
    let stats: serde_json::Value =
        serde_json::from_str(&get(&mut conn, RUN_STATS_KEY).unwrap()).unwrap();
    assert_eq!(stats["total_anomalies"], 1);
    assert_eq!(stats["total_checks"], 3);
    let ttl: i64 = redis::cmd("TTL")
        .arg(HEARTBEAT_KEY)
        .query(&mut conn)
        .unwrap();
    assert!((100..=120).contains(&ttl), "heartbeat TTL {ttl}");
}

/// The daemon with `[boundary] run_every_secs = 1`: one Panorama row (app boundary) and one
/// webhook alert, however many runs see the breach.
#[actix_rt::test]
async fn daemon_records_one_boundary_anomaly_and_sends_one_alert() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("boundary-e2e");
    let hook = HttpSink::start(0);
    let text = format!(
        r#"
[analyzer]
enabled = false

[boundary]
run_every_secs = 1

[[boundary.rules]]
pattern = "e2e.queue.*"
algorithm = "greater_than"
trigger_value = 100
alerters = ["webhook"]
expiration_secs = 3600

[alerters.webhook]
url = "{}"
"#,
        hook.url("/boundary")
    );
    let mut cfg = skyline::config::from_str_with_env(&text, &[]).unwrap();
    let base = config(&redis, &dir);
    cfg.redis = base.redis;
    cfg.horizon = base.horizon;
    cfg.data = base.data;
    cfg.webapp = base.webapp;
    cfg.thunder.enabled = false;
    let mut conn = redis_conn(&redis);
    let points = series(
        now(),
        60,
        60,
        |i| if i == 59 { 250.0 } else { 20.0 + i as f64 },
    );
    put_metric(&mut conn, "e2e.queue.depth", &points);
    let running = skyline::app::start(&cfg).await.unwrap();

    let alert = eventually(30, || hook.requests().first().map(|r| r.json()))
        .await
        .expect("a webhook alert from Boundary");
    assert_eq!(alert["context"], "Boundary");
    assert_eq!(alert["metric"], "e2e.queue.depth");
    assert_eq!(alert["value"], 250.0);
    let pool = running.db.clone().unwrap();
    let row = eventually(30, || {
        queries::latest(&pool, 10)
            .ok()?
            .into_iter()
            .find(|r| r.metric == "e2e.queue.depth")
    })
    .await
    .expect("a Panorama row");
    assert_eq!(row.app, "boundary");
    assert_eq!(row.source, "redis");
    assert_eq!(row.datapoint, 250.0);
    assert_eq!(row.triggered_algorithms, vec!["greater_than".to_string()]);
    assert_eq!(row.anomaly_timestamp, points[59].0);
    assert_eq!(row.full_duration, 59 * 60);

    // Three more runs find the same breach.
    let runs = |conn: &mut redis::Connection| -> i64 {
        get(conn, RUN_STATS_KEY)
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|j| j["timestamp"].as_i64())
            .unwrap_or(0)
    };
    let first = runs(&mut conn);
    eventually(30, || (runs(&mut conn) >= first + 3).then_some(()))
        .await
        .expect("three more Boundary runs");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(hook.requests().len(), 1, "one alert per expiration");
    let rows = queries::latest(&pool, 100)
        .unwrap()
        .into_iter()
        .filter(|r| r.metric == "e2e.queue.depth")
        .count();
    assert_eq!(
        rows, 1,
        "one Panorama row per metric per app per expiry window"
    );
    running.shutdown().await;
}

/// Two cluster nodes' Boundary runs against one Redis (the assignment is the same on a Redis
/// Cluster; `cluster::` runs the daemons there): each checks only its own metrics, together
/// all; the merged `boundary.current_anomalies` holds every node's list; after one node's key
/// expires the other checks everything but records only what it claims, so what the dead node
/// recorded is not recorded again, and a new anomaly is recorded once.
#[actix_rt::test]
async fn cluster_nodes_split_the_metrics_and_record_each_anomaly_once() {
    use skyline::boundary::{node_current_key, run_cycle_in};
    use skyline::store::cluster::{heartbeat, node_key, ClusterRole};
    let redis = TestRedis::start().unwrap();
    let mut sync = redis_conn(&redis);
    let mut conn = redis_conn::connect(redis.url(), Duration::from_secs(5)).unwrap();
    let mut r = rule("bnd.cl.*", "greater_than");
    r.trigger_value = 100.0;
    r.alerters = vec!["webhook".into()];
    let settings = BoundarySettings {
        rules: vec![r],
        ..Default::default()
    };
    let cycle = CycleSettings {
        book: RuleBook::new(&settings.rules, 1_000).unwrap(),
        gates: settings.gates(),
        mget_chunk: 7,
        host: "test".into(),
    };
    let names: Vec<String> = (0..60).map(|i| format!("bnd.cl.m{i:02}")).collect();
    for n in &names {
        put_metric(&mut sync, n, &varying_then(500.0));
    }
    let role = |id: &str| ClusterRole {
        node_id: id.into(),
        expiry_secs: 3600,
    };
    let (a, b) = (role("node-a"), role("node-b"));
    let every = Duration::from_secs(60);
    for n in [&a, &b] {
        heartbeat(&mut conn, &n.node_id, Duration::from_secs(60))
            .await
            .unwrap();
    }
    let ra = run_cycle_in(&mut conn, &cycle, Some((&a, every)))
        .await
        .unwrap();
    let rb = run_cycle_in(&mut conn, &cycle, Some((&b, every)))
        .await
        .unwrap();
    let metrics = |r: &RunReport| -> Vec<String> {
        let mut m: Vec<String> = r.anomalies.iter().map(|x| x.metric.clone()).collect();
        m.sort();
        m
    };
    let (ma, mb) = (metrics(&ra), metrics(&rb));
    assert!(!ma.is_empty() && !mb.is_empty(), "both work: {ma:?} {mb:?}");
    assert_eq!(
        ra.metrics_assigned.unwrap() + rb.metrics_assigned.unwrap(),
        names.len(),
        "together all of the unique set"
    );
    assert_eq!(
        ra.total_checks + rb.total_checks,
        names.len(),
        "each checked once"
    );
    let mut union: Vec<String> = ma.iter().chain(&mb).cloned().collect();
    union.sort();
    assert_eq!(union, names, "each anomaly found by exactly one node");
    for x in &ra.anomalies {
        assert_eq!(
            get(
                &mut sync,
                &format!("panorama.last_check.boundary.{}", x.metric)
            )
            .as_deref(),
            Some("node-a"),
            "claimed by the node that found it"
        );
    }
    let merged: Vec<serde_json::Value> =
        serde_json::from_str(&get(&mut sync, CURRENT_ANOMALIES_KEY).unwrap()).unwrap();
    assert_eq!(
        merged.len(),
        names.len(),
        "the merged list holds both nodes'"
    );
    let own_b: Vec<serde_json::Value> =
        serde_json::from_str(&get(&mut sync, &node_current_key("node-b")).unwrap()).unwrap();
    assert_eq!(own_b.len(), mb.len());

    // node-b dies: node-a checks everything, records only what it holds or newly claims.
    let _: () = redis::cmd("DEL")
        .arg(node_key("node-b"))
        .query(&mut sync)
        .unwrap();
    put_metric(&mut sync, "bnd.cl.new", &varying_then(500.0));
    let ra2 = run_cycle_in(&mut conn, &cycle, Some((&a, every)))
        .await
        .unwrap();
    assert_eq!(ra2.metrics_assigned, Some(names.len() + 1), "node-a alone");
    assert_eq!(ra2.total_checks, names.len() + 1);
    assert_eq!(
        ra2.detections.len(),
        names.len() + 1,
        "every breach detected"
    );
    let mut want = ma.clone();
    want.push("bnd.cl.new".into());
    want.sort();
    assert_eq!(
        metrics(&ra2),
        want,
        "node-b's anomalies are not recorded again; the new one is"
    );
    let mut alerted: Vec<String> = skyline::boundary::alerts_of(&ra2)
        .into_iter()
        .map(|x| x.anomaly.metric)
        .collect();
    alerted.sort();
    assert_eq!(
        alerted, want,
        "alerts only for the anomalies this node holds"
    );
}
