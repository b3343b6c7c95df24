//! The Alertmanager and PagerDuty alerters: through the daemon to local HTTP receivers
//! (payloads, one alert per window, retries, PagerDuty's resolve at the window's end, no secret
//! in what the daemon reports), and to a
//! real `prometheus-alertmanager` (Debian package, `.ci/run` installs it): one alert per
//! anomaly window and its resolve, seen through Alertmanager's own API and its webhook
//! receiver.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use skyline::alert::AlertAnomaly;
use skyline::config::Config;
use skyline::model::Anomaly;

use crate::support::sinks::HttpSink;
use crate::support::*;

fn cfg_from(text: &str, redis: &TestRedis, dir: &TempDir) -> Config {
    let mut cfg = skyline::config::from_str_with_env(text, &[]).unwrap();
    let base = config(redis, dir);
    cfg.redis = base.redis;
    cfg.horizon = base.horizon;
    cfg.data = base.data;
    cfg.webapp = base.webapp;
    cfg.thunder.enabled = false;
    cfg
}

fn anomaly(metric: &str, value: f64) -> Anomaly {
    let t = now();
    Anomaly {
        metric: metric.into(),
        timestamp: t - 1,
        datapoint: value,
        from_timestamp: t - 86_400,
        full_duration: 86_400,
        algorithms_run: vec!["grubbs".into(), "ks_test".into(), "median".into()],
        triggered_algorithms: vec!["median".into(), "grubbs".into()],
        app: "analyzer".into(),
        source: "graphite".into(),
        host: "test-host".into(),
        added_at: t,
    }
}

/// Both alerters through the daemon to local receivers: Alertmanager gets a one-alert array
/// on `/api/v2/alerts` with the labels and a window ending at the expiry; PagerDuty gets an
/// Events API v2 trigger (its first answer a 500: retried); a repeat within the expiration
/// sends nothing.
#[actix_rt::test]
async fn alertmanager_and_pagerduty_payloads_through_the_daemon() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("incident-sinks");
    let am = HttpSink::start(0);
    let pd = HttpSink::start(1);
    let text = format!(
        r#"
[analyzer]
enabled = false
[panorama]
enabled = false
[[alerts]]
pattern = "web.*.requests"
alerter = "alertmanager"
expiration_secs = 600
[[alerts]]
pattern = "web"
alerter = "pagerduty"
expiration_secs = 900
[alerters]
retry_initial_ms = 100
[alerters.alertmanager]
url = "{}"
labels = {{ team = "web", metric = "ignored" }}
[alerters.pagerduty]
url = "{}"
routing_key = "R0UTING-KEY-SECRET"
severity = "error"
"#,
        am.url(""),
        pd.url("/v2/enqueue")
    );
    let cfg = cfg_from(&text, &redis, &dir);
    let running = skyline::app::start(&cfg).await.unwrap();
    let a = anomaly("web.h1.requests", 42.0);
    running.alert_anomalies.do_send(AlertAnomaly(a.clone()));

    let req = eventually(20, || am.requests().first().cloned())
        .await
        .expect("Alertmanager received the alert");
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/api/v2/alerts");
    let j = req.json();
    let alerts = j.as_array().expect("a JSON array");
    assert_eq!(alerts.len(), 1, "{j}");
    let labels = &alerts[0]["labels"];
    assert_eq!(labels["alertname"], "SkylineAnomaly");
    assert_eq!(labels["metric"], "web.h1.requests");
    assert_eq!(labels["app"], "analyzer");
    assert_eq!(labels["algorithms"], "grubbs,median");
    assert_eq!(labels["team"], "web");
    assert_eq!(labels["instance"], "test-host");
    assert_eq!(
        alerts[0]["startsAt"],
        skyline::model::time::rfc3339(a.timestamp)
    );
    assert_eq!(
        alerts[0]["endsAt"],
        skyline::model::time::rfc3339(a.added_at + 600)
    );

    // PagerDuty: the first attempt got a 500, the retry a 2xx.
    let got = eventually(20, || {
        let r = pd.requests();
        (r.len() >= 2).then_some(r)
    })
    .await
    .expect("PagerDuty retried after a 500");
    assert_eq!(got[0].body, got[1].body, "the retry sends the same event");
    let e = got[1].json();
    assert_eq!(got[1].path, "/v2/enqueue");
    assert_eq!(e["routing_key"], "R0UTING-KEY-SECRET");
    assert_eq!(e["event_action"], "trigger");
    assert_eq!(e["dedup_key"], "skyline/analyzer/web.h1.requests");
    assert_eq!(e["payload"]["severity"], "error");
    assert_eq!(e["payload"]["source"], "test-host");
    assert_eq!(e["payload"]["component"], "web.h1.requests");
    assert_eq!(e["payload"]["custom_details"]["value"], "42.0");

    // Skyline's expiry keys, then a repeat within the window: nothing more is sent.
    let mut conn = redis_conn(&redis);
    for (alerter, ttl_max) in [("alertmanager", 600), ("pagerduty", 900)] {
        let key = format!("last_alert.{alerter}.web.h1.requests");
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut conn).unwrap();
        assert!((ttl_max - 60..=ttl_max).contains(&ttl), "{key} ttl {ttl}");
    }
    running.alert_anomalies.do_send(AlertAnomaly(a));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(am.requests().len(), 1, "one Alertmanager alert per window");
    assert_eq!(pd.requests().len(), 2, "one PagerDuty trigger per window");

    // The routing key never appears in what the daemon logs or reports about the alerter.
    let shown = format!("{:?}", cfg.alerters);
    assert!(!shown.contains("R0UTING"), "{shown}");
    running.shutdown().await;
}

/// PagerDuty: the incident an anomaly opened is resolved (same `dedup_key`) when its window
/// ends; a resolve left due by a previous run (in `pagerduty.open_incidents`) is sent too.
#[actix_rt::test]
async fn pagerduty_resolves_the_incident_when_the_anomaly_window_ends() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("incident-pd-resolve");
    let pd = HttpSink::start(0);
    let mut conn = redis_conn(&redis);
    // Left by a previous run: an incident whose window ended while the daemon was down.
    let _: () = redis::cmd("ZADD")
        .arg("pagerduty.open_incidents")
        .arg(now() - 30)
        .arg("skyline/mirage/db.slow.queries")
        .query(&mut conn)
        .unwrap();
    let text = format!(
        r#"
[analyzer]
enabled = false
[panorama]
enabled = false
[[alerts]]
pattern = "web"
alerter = "pagerduty"
expiration_secs = 2
[alerters]
retry_initial_ms = 100
[alerters.pagerduty]
url = "{}"
routing_key = "R0UTING-KEY-SECRET"
"#,
        pd.url("/v2/enqueue")
    );
    let cfg = cfg_from(&text, &redis, &dir);
    let running = skyline::app::start(&cfg).await.unwrap();
    let events = |pd: &HttpSink| -> Vec<serde_json::Value> {
        pd.requests().iter().map(|r| r.json()).collect()
    };
    let old = eventually(10, || {
        events(&pd)
            .into_iter()
            .find(|e| e["dedup_key"] == "skyline/mirage/db.slow.queries")
    })
    .await
    .expect("the resolve left by the previous run is sent");
    assert_eq!(
        old,
        serde_json::json!({"routing_key": "R0UTING-KEY-SECRET", "event_action": "resolve",
            "dedup_key": "skyline/mirage/db.slow.queries"})
    );

    let a = anomaly("web.h3.requests", 42.0);
    running.alert_anomalies.do_send(AlertAnomaly(a.clone()));
    let key = "skyline/analyzer/web.h3.requests";
    let trigger = eventually(10, || {
        events(&pd)
            .into_iter()
            .find(|e| e["dedup_key"] == key && e["event_action"] == "trigger")
    })
    .await
    .expect("the trigger is sent");
    assert_eq!(trigger["payload"]["component"], "web.h3.requests");
    // Scheduled for the window's end (detection + expiration_secs), as Alertmanager's endsAt.
    let due: Option<i64> = eventually(10, || {
        redis::cmd("ZSCORE")
            .arg("pagerduty.open_incidents")
            .arg(key)
            .query::<Option<i64>>(&mut conn)
            .unwrap()
    })
    .await;
    assert_eq!(due, Some(a.added_at + 2));
    let all = eventually(15, || {
        let e = events(&pd);
        e.iter()
            .any(|e| e["dedup_key"] == key && e["event_action"] == "resolve")
            .then_some(e)
    })
    .await
    .unwrap_or_else(|| panic!("no resolve: {:?}", events(&pd)));
    let ours: Vec<&serde_json::Value> = all.iter().filter(|e| e["dedup_key"] == key).collect();
    assert_eq!(ours.len(), 2, "one trigger, then one resolve: {ours:?}");
    assert_eq!(ours[0]["event_action"], "trigger");
    assert_eq!(
        *ours[1],
        serde_json::json!({"routing_key": "R0UTING-KEY-SECRET", "event_action": "resolve",
            "dedup_key": key})
    );
    // Delivered resolves are forgotten.
    eventually(10, || {
        let n: i64 = redis::cmd("ZCARD")
            .arg("pagerduty.open_incidents")
            .query(&mut conn)
            .unwrap();
        (n == 0).then_some(())
    })
    .await
    .expect("resolved incidents leave pagerduty.open_incidents");
    running.shutdown().await;
}

/// A free TCP port on 127.0.0.1 (bound then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn get_json(url: &str) -> Option<serde_json::Value> {
    let mut resp = crate::support::web::client().get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.body().limit(1 << 20).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// Webhook notifications Alertmanager sent to `sink` for `metric`, as (status, alert status).
fn notifications(sink: &HttpSink, metric: &str) -> Vec<String> {
    sink.to_path("/am")
        .iter()
        .flat_map(|r| {
            r.json()["alerts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a["labels"]["metric"] == metric)
                .map(|a| a["status"].as_str().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A real Alertmanager: the daemon's alert is listed by `GET /api/v2/alerts` (once, with its
/// labels), Alertmanager notifies its receiver (firing), then resolves it at the end of the
/// window (the rule's expiration) and notifies the resolve; a repeat within the window adds
/// nothing; the next window opens a new alert.
#[actix_rt::test]
async fn real_alertmanager_gets_one_alert_per_window_and_its_resolve() {
    let bin = "/usr/bin/prometheus-alertmanager";
    if !std::path::Path::new(bin).exists() {
        panic!(
            "{bin} is required (apt-get install -y prometheus-alertmanager; .ci/run installs it)"
        );
    }
    let dir = TempDir::new("alertmanager");
    let sink = HttpSink::start(0);
    let port = free_port();
    let conf = dir.0.join("alertmanager.yml");
    std::fs::write(
        &conf,
        format!(
            "route:\n  receiver: sink\n  group_by: ['alertname', 'metric']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n- name: sink\n  webhook_configs:\n  - url: '{}'\n    send_resolved: true\n",
            sink.url("/am")
        ),
    )
    .unwrap();
    let _am = KillOnDrop(
        Command::new(bin)
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!("--storage.path={}", dir.0.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus-alertmanager"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        if get_json(&format!("{base}/api/v2/status")).await.is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "Alertmanager did not answer within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let redis = TestRedis::start().unwrap();
    let text = format!(
        r#"
[analyzer]
enabled = false
[panorama]
enabled = false
[[alerts]]
pattern = "web.*.requests"
alerter = "alertmanager"
expiration_secs = 3
[alerters.alertmanager]
url = "{base}"
"#
    );
    let cfg = cfg_from(&text, &redis, &dir);
    let running = skyline::app::start(&cfg).await.unwrap();
    let metric = "web.h2.requests";
    running
        .alert_anomalies
        .do_send(AlertAnomaly(anomaly(metric, 99.0)));
    running
        .alert_anomalies
        .do_send(AlertAnomaly(anomaly(metric, 98.0)));

    // Listed once by Alertmanager, with the daemon's labels.
    let mut listed = None;
    for _ in 0..100 {
        if let Some(v) = get_json(&format!("{base}/api/v2/alerts")).await {
            let ours: Vec<_> = v
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a["labels"]["metric"] == metric)
                .collect();
            if !ours.is_empty() {
                listed = Some(ours);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let listed = listed.expect("Alertmanager lists the daemon's alert");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["labels"]["alertname"], "SkylineAnomaly");
    assert_eq!(listed[0]["labels"]["app"], "analyzer");
    assert_eq!(listed[0]["labels"]["algorithms"], "grubbs,median");
    assert_eq!(listed[0]["status"]["state"], "active");
    assert_eq!(listed[0]["annotations"]["value"], "99.0");

    // Its receiver is notified (firing), then resolved when the window ends.
    let resolved = eventually(15, || {
        let n = notifications(&sink, metric);
        n.iter().any(|s| s == "resolved").then_some(n)
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no resolve notified; notifications: {:?}",
            notifications(&sink, metric)
        )
    });
    assert_eq!(
        resolved.first().map(String::as_str),
        Some("firing"),
        "{resolved:?}"
    );
    assert_eq!(
        resolved.iter().filter(|s| *s == "firing").count(),
        1,
        "one firing notification for the window: {resolved:?}"
    );
    let still: Vec<_> = get_json(&format!("{base}/api/v2/alerts?active=true"))
        .await
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a["labels"]["metric"] == metric)
        .collect();
    assert!(
        still.is_empty(),
        "resolved alerts are no longer active: {still:?}"
    );

    // The next window (once the expiry key is gone): a new alert.
    let mut conn = redis_conn(&redis);
    let key = format!("last_alert.alertmanager.{metric}");
    eventually(10, || {
        let n: i64 = redis::cmd("EXISTS").arg(&key).query(&mut conn).unwrap();
        (n == 0).then_some(())
    })
    .await
    .expect("the expiry key expires");
    running
        .alert_anomalies
        .do_send(AlertAnomaly(anomaly(metric, 97.0)));
    eventually(15, || {
        let n = notifications(&sink, metric);
        (n.iter().filter(|s| *s == "firing").count() == 2).then_some(())
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "the second window did not fire: {:?}",
            notifications(&sink, metric)
        )
    });
    running.shutdown().await;
}
