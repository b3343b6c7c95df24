//! Alerting end to end against local receivers: a real SMTP conversation, HTTP receivers for
//! Slack and the webhook, a UDP syslog receiver, a carbon plaintext receiver; rules and
//! `last_alert.*` expiration in a private Redis; Thunder; `skyline alert-test`.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use skyline::alert::AlertAnomaly;
use skyline::config::Config;
use skyline::model::Anomaly;
use skyline::seed;

use crate::support::sinks::*;
use crate::support::*;

/// Parses `text` as the config file would be, then points it at the test Redis, port 0
/// everywhere and the temp dir (Thunder off unless the test turns it on).
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

fn feed_seed(addr: std::net::SocketAddr) {
    for batch in seed::series(now()).chunks(100) {
        let items: Vec<(String, (i64, f64))> = batch
            .iter()
            .map(|&(t, v)| (seed::SEED_METRIC.to_string(), (t, v)))
            .collect();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&seed::frame(&items).unwrap()).unwrap();
    }
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes, and unfolds header lines
/// (enough to search a mail).
fn qp_decode(s: &str) -> String {
    let s = s
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn anomaly(metric: &str, value: f64) -> Anomaly {
    let t = now();
    Anomaly {
        metric: metric.into(),
        timestamp: t,
        datapoint: value,
        from_timestamp: t - 86_400,
        full_duration: 86_400,
        algorithms_run: vec!["grubbs".into(), "ks_test".into()],
        triggered_algorithms: vec!["grubbs".into()],
        app: "analyzer".into(),
        source: "graphite".into(),
        host: "test".into(),
        added_at: t,
    }
}

fn run_stats_timestamp(conn: &mut redis::Connection) -> i64 {
    let v: Option<String> = redis::cmd("GET")
        .arg(skyline::analyze::RUN_STATS_KEY)
        .query(conn)
        .unwrap();
    v.and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|j| j["timestamp"].as_i64())
        .unwrap_or(0)
}

/// The headline: the seed series through the pickle listener, an Analyzer running every
/// second, and exactly one email and one webhook call while the expiration lasts.
#[actix_rt::test]
async fn seeded_anomaly_sends_one_email_and_one_webhook_per_expiration() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("alerts-e2e");
    let smtp = SmtpSink::start(0);
    let hook = HttpSink::start(0);
    let text = format!(
        r#"
[analyzer]
run_every_secs = 1
combine = "any"

[[alerts]]
pattern = "horizon.test.*"
alerter = "smtp"
expiration_secs = 3600

[[alerts]]
pattern = "horizon.test.pickle"
alerter = "webhook"
expiration_secs = 3600

[alerters.smtp]
server = "{}"
from = "skyline@example.org"
to = ["ops@example.org"]

[alerters.webhook]
url = "{}"
headers = {{ Authorization = "Bearer s3cret", "X-Team" = "ops" }}
"#,
        smtp.addr,
        hook.url("/skyline")
    );
    let cfg = cfg_from(&text, &redis, &dir);
    let running = skyline::app::start(&cfg).await.unwrap();
    feed_seed(running.pickle_addr.unwrap());

    let first = eventually(40, || smtp.mails().first().cloned()).await;
    let mail = first.expect("an email for the seeded anomaly");
    eventually(10, || hook.requests().first().cloned())
        .await
        .expect("a webhook call for the seeded anomaly");

    // Let several more analysis runs find the same anomaly.
    let mut conn = redis_conn(&redis);
    let before = run_stats_timestamp(&mut conn);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = run_stats_timestamp(&mut conn);
    assert!(
        after - before >= 2,
        "analysis kept running: {before} → {after}"
    );
    assert_eq!(smtp.mails().len(), 1, "one email per expiration window");
    assert_eq!(
        hook.requests().len(),
        1,
        "one webhook call per expiration window"
    );

    // The email: G's subject, the recipients, an inline SVG graph with the point marked.
    assert!(
        mail.from.starts_with("<skyline@example.org>"),
        "{}",
        mail.from
    );
    assert_eq!(mail.rcpt, vec!["<ops@example.org>".to_string()]);
    let data = qp_decode(&mail.data);
    assert!(
        data.contains("Subject: [Skyline alert] - Analyzer ALERT - horizon.test.pickle"),
        "{data}"
    );
    assert!(data.contains("Analyzer - Anomalous metric: horizon.test.pickle (value: "));
    assert!(
        data.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{data}"
    );
    assert!(data.contains("<circle"), "anomalous point marked");
    assert!(data.contains("image/svg+xml") && data.contains("horizon.test.pickle.svg"));
    assert!(!data.contains("no data in Redis"), "graph drawn from Redis");

    // The webhook: JSON body, configured headers.
    let req = &hook.requests()[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.path, "/skyline");
    assert_eq!(req.headers["authorization"], "Bearer s3cret");
    assert_eq!(req.headers["x-team"], "ops");
    assert!(req.headers["content-type"].starts_with("application/json"));
    let j = req.json();
    assert_eq!(j["type"], "anomaly");
    assert_eq!(j["metric"], seed::SEED_METRIC);
    assert!(j["value"].as_f64().unwrap() > 18_000.0, "{j}");
    assert_eq!(j["expiration_secs"], 3600);

    // Skyline's keys: last_alert.<alerter>.<metric> = int(anomaly timestamp), TTL = expiration.
    for alerter in ["smtp", "webhook"] {
        let key = format!("last_alert.{alerter}.{}", seed::SEED_METRIC);
        let v: Option<i64> = redis::cmd("GET").arg(&key).query(&mut conn).unwrap();
        assert_eq!(v, j["timestamp"].as_i64(), "{key}");
        let ttl: i64 = redis::cmd("TTL").arg(&key).query(&mut conn).unwrap();
        assert!((3500..=3600).contains(&ttl), "{key} ttl {ttl}");
    }
    running.shutdown().await;
}

/// When the expiration runs out the next run alerts again, and not before.
#[actix_rt::test]
async fn expiration_window_spaces_alerts() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("alerts-expiry");
    let hook = HttpSink::start(0);
    let text = format!(
        r#"
[analyzer]
run_every_secs = 1
combine = "any"
[panorama]
enabled = false
[[alerts]]
pattern = "^horizon\\.test\\.pickle$"
alerter = "webhook"
expiration_secs = 3
[alerters.webhook]
url = "{}"
"#,
        hook.url("/h")
    );
    let cfg = cfg_from(&text, &redis, &dir);
    let running = skyline::app::start(&cfg).await.unwrap();
    feed_seed(running.pickle_addr.unwrap());
    let two = eventually(40, || {
        let r = hook.requests();
        (r.len() >= 2).then_some(r)
    })
    .await
    .expect("a second alert once the expiration ran out");
    let gap = two[1].at.duration_since(two[0].at);
    assert!(
        gap >= Duration::from_millis(2000),
        "second alert only after the 3 s expiration, got {gap:?}"
    );
    running.shutdown().await;
}

/// Rules route each metric to its alerters only; a failing webhook is retried with back-off;
/// a mail server that never answers does not hold up the others; expiration suppresses a
/// repeat.
#[actix_rt::test]
async fn rules_route_retry_and_a_hanging_alerter_blocks_nobody() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("alerts-route");
    let http = HttpSink::start(2); // the first two requests get a 500
                                   // Accepts connections but never greets: the SMTP client waits for its timeout.
    let blackhole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let text = format!(
        r##"
[analyzer]
enabled = false
[panorama]
enabled = false
[[alerts]]
pattern = "web.*.requests"
alerter = "webhook"
expiration_secs = 600
[[alerts]]
pattern = "^db\\."
alerter = "slack"
[[alerts]]
pattern = "web"
alerter = "smtp"
[alerters]
max_attempts = 4
retry_initial_ms = 100
timeout_secs = 10
[alerters.smtp]
server = "{}"
from = "skyline@example.org"
to = ["ops@example.org"]
[alerters.slack]
webhook_url = "{}"
channel = "#ops"
[alerters.webhook]
url = "{}"
"##,
        blackhole.local_addr().unwrap(),
        http.url("/slack/T000/B000/secret"),
        http.url("/hook")
    );
    let cfg = cfg_from(&text, &redis, &dir);
    let running = skyline::app::start(&cfg).await.unwrap();
    let sent = Instant::now();
    running
        .alert_anomalies
        .do_send(AlertAnomaly(anomaly("web.h1.requests", 42.0)));
    running
        .alert_anomalies
        .do_send(AlertAnomaly(anomaly("db.primary.qps", 7.5)));
    running
        .alert_anomalies
        .do_send(AlertAnomaly(anomaly("cpu.idle", 1.0)));

    let hook = eventually(20, || {
        http.to_path("/hook")
            .into_iter()
            .find(|r| r.body.contains("web.h1.requests") && !r.body.is_empty())
    })
    .await
    .expect("webhook delivered");
    let slack = eventually(20, || {
        let r = http.to_path("/slack/T000/B000/secret");
        (!r.is_empty()).then_some(r)
    })
    .await
    .expect("slack delivered");
    // Delivered (after two 500s and retries) long before the hanging SMTP attempt gives up.
    assert!(
        sent.elapsed() < Duration::from_secs(8),
        "the webhook waited for the mail server: {:?}",
        sent.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let all = http.requests();
    assert_eq!(
        all.len(),
        4,
        "two failed attempts, then one success per alerter: {all:#?}"
    );
    let mut metrics: Vec<String> = all
        .iter()
        .map(|r| {
            let j = r.json();
            if r.path == "/hook" {
                j["metric"].as_str().unwrap().to_string()
            } else {
                j["text"].as_str().unwrap().to_string()
            }
        })
        .collect();
    metrics.sort();
    metrics.dedup();
    assert_eq!(metrics.len(), 2, "{metrics:?}");
    assert!(
        metrics.iter().all(|m| !m.contains("cpu.idle")),
        "{metrics:?}"
    );
    assert_eq!(hook.json()["value"], 42.0);
    let text = slack[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.starts_with("*Skyline Analyzer - ALERT* on db.primary.qps at 24 hours - 7.5"),
        "{text}"
    );
    assert_eq!(slack[0].json()["channel"], "#ops");

    // The same anomaly again within the expiration: nothing new.
    running
        .alert_anomalies
        .do_send(AlertAnomaly(anomaly("web.h1.requests", 43.0)));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(http.requests().len(), 4);

    let mut conn = redis_conn(&redis);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("last_alert.*")
        .query(&mut conn)
        .unwrap();
    let mut keys = keys;
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "last_alert.slack.db.primary.qps".to_string(),
            "last_alert.smtp.web.h1.requests".to_string(),
            "last_alert.webhook.web.h1.requests".to_string(),
        ]
    );
    let ttl: i64 = redis::cmd("TTL")
        .arg("last_alert.webhook.web.h1.requests")
        .query(&mut conn)
        .unwrap();
    assert!((590..=600).contains(&ttl), "rule expiration_secs: {ttl}");
    let slack_ttl: i64 = redis::cmd("TTL")
        .arg("last_alert.slack.db.primary.qps")
        .query(&mut conn)
        .unwrap();
    assert!(slack_ttl > 3500, "default expiration 3600: {slack_ttl}");
    drop(blackhole);
    running.shutdown().await;
}

/// SYSLOG_ENABLED: every anomaly goes to syslog in G's words, whatever the rules say, once.
#[actix_rt::test]
async fn every_anomaly_goes_to_syslog_in_g_words() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("alerts-syslog");
    let sink = SyslogSink::start();
    let text = format!(
        r#"
[analyzer]
enabled = false
[panorama]
enabled = false
[[alerts]]
pattern = "web"
alerter = "syslog"
[alerters.syslog]
address = "udp://{}"
"#,
        sink.addr
    );
    let cfg = cfg_from(&text, &redis, &dir);
    let running = skyline::app::start(&cfg).await.unwrap();
    running
        .alert_anomalies
        .do_send(AlertAnomaly(anomaly("web.a.requests", 5.0)));
    running
        .alert_anomalies
        .do_send(AlertAnomaly(anomaly("no.rule.matches", 0.25)));
    let lines = eventually(10, || {
        let l = sink.lines();
        (l.len() >= 2).then_some(l)
    })
    .await
    .expect("two syslog datagrams");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.lines().len(), 2, "the matching rule adds no duplicate");
    let pid = std::process::id();
    for (metric, value) in [("web.a.requests", "5.0"), ("no.rule.matches", "0.25")] {
        let line = lines
            .iter()
            .find(|l| l.contains(metric))
            .unwrap_or_else(|| panic!("{metric} in {lines:?}"));
        assert!(line.starts_with("<164>"), "local4.warning: {line}");
        assert!(
            line.ends_with(&format!(
                " skyline[{pid}]: Analyzer - Anomalous metric: {metric} (value: {value})"
            )),
            "{line}"
        );
    }
    running.shutdown().await;
}

/// Thunder: no data for the configured window raises an alert through the alerters; data
/// arriving again sends a recovery notice.
#[actix_rt::test]
async fn thunder_no_data_alerts_and_recovers() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("thunder-nodata");
    let hook = HttpSink::start(0);
    let text = format!(
        r#"
[analyzer]
enabled = false
[panorama]
enabled = false
[thunder]
check_interval_secs = 1
checks = ["no_data"]
no_data_after_secs = 2
[alerters.webhook]
url = "{}"
"#,
        hook.url("/thunder")
    );
    let mut cfg = cfg_from(&text, &redis, &dir);
    cfg.thunder.enabled = true;
    let running = skyline::app::start(&cfg).await.unwrap();
    let alert = eventually(15, || hook.requests().first().cloned())
        .await
        .expect("a Thunder alert for no data");
    let j = alert.json();
    assert_eq!(j["type"], "thunder");
    assert_eq!(j["check"], "no_data");
    assert_eq!(j["status"], "firing");
    assert!(
        j["summary"]
            .as_str()
            .unwrap()
            .starts_with("no datapoints received for"),
        "{j}"
    );
    // Not repeated within its expiry (3600 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hook.requests().len(), 1);
    // Data again: a recovery notice.
    let items = vec![("thunder.test".to_string(), (now(), 1.0))];
    let mut s = TcpStream::connect(running.pickle_addr.unwrap()).unwrap();
    s.write_all(&seed::frame(&items).unwrap()).unwrap();
    let rec = eventually(10, || hook.requests().get(1).cloned())
        .await
        .expect("a recovery notice");
    assert_eq!(rec.json()["status"], "recovered");
    assert_eq!(rec.json()["check"], "no_data");
    running.shutdown().await;
}

/// Thunder: Redis killed → an alert by email (while Redis is down); Redis back → recovery.
#[actix_rt::test]
async fn thunder_alerts_when_redis_dies() {
    let mut redis = TestRedis::start().unwrap();
    let port = redis.port;
    let dir = TempDir::new("thunder-redis");
    let smtp = SmtpSink::start(0);
    let text = format!(
        r#"
[analyzer]
enabled = false
[panorama]
enabled = false
[thunder]
check_interval_secs = 1
checks = ["redis"]
redis_after_secs = 1
[alerters]
retry_initial_ms = 100
[alerters.smtp]
server = "{}"
from = "skyline@example.org"
to = ["ops@example.org"]
"#,
        smtp.addr
    );
    let mut cfg = cfg_from(&text, &redis, &dir);
    cfg.thunder.enabled = true;
    let running = skyline::app::start(&cfg).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(smtp.mails().is_empty(), "no alert while Redis answers");
    redis.kill();
    let mail = eventually(20, || smtp.mails().first().cloned())
        .await
        .expect("a Thunder email once Redis is unreachable");
    assert!(
        qp_decode(&mail.data).contains("Subject: [Skyline alert] - Thunder ALERT - redis on "),
        "{}",
        mail.data
    );
    assert!(
        qp_decode(&mail.data).contains("unreachable"),
        "{}",
        mail.data
    );
    let _redis2 = TestRedis::start_on(port).unwrap();
    let rec = eventually(20, || smtp.mails().get(1).cloned())
        .await
        .expect("a recovery email once Redis is back");
    assert!(
        qp_decode(&rec.data).contains("Subject: [Skyline alert] - Thunder RECOVERED - redis on "),
        "{}",
        rec.data
    );
    running.shutdown().await;
}

/// Self-metrics reach a carbon plaintext receiver as `skyline.<component>.<host>.<name>`,
/// batched over one connection, after the receiver comes up late (reconnect with back-off).
#[actix_rt::test]
async fn self_metrics_reach_carbon_with_skyline_names() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("selfmetrics");
    // A free port nobody listens on yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        r#"
[analyzer]
run_every_secs = 1
combine = "any"
[graphite]
carbon_plaintext_addr = "127.0.0.1:{port}"
host_name = "testhost"
send_interval_secs = 1
reconnect_max_secs = 1
"#
    );
    let cfg = cfg_from(&text, &redis, &dir);
    let running = skyline::app::start(&cfg).await.unwrap();
    // Traffic for the figures: datapoints, an HTTP request.
    let items = vec![("selfmetrics.test".to_string(), (now(), 1.0))];
    let mut s = TcpStream::connect(running.pickle_addr.unwrap()).unwrap();
    s.write_all(&seed::frame(&items).unwrap()).unwrap();
    let mut h = TcpStream::connect(running.http_addr.unwrap()).unwrap();
    h.write_all(b"GET /flux/metric_data?status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (carbon, _) = CarbonSink::start_on(&format!("127.0.0.1:{port}"));
    let lines = eventually(20, || {
        let l = carbon.lines();
        l.iter()
            .any(|x| x.starts_with("skyline.analyzer.testhost.run_time "))
            .then_some(l)
    })
    .await
    .expect("self-metrics at the carbon receiver");
    for line in &lines {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 3, "{line}");
        assert!(parts[0].starts_with("skyline."), "{line}");
        assert_eq!(parts[0].split('.').nth(2), Some("testhost"), "{line}");
        assert!(parts[1].parse::<f64>().is_ok(), "{line}");
        assert!(
            (now() - parts[2].parse::<i64>().unwrap()).abs() < 120,
            "{line}"
        );
    }
    let names: std::collections::HashSet<&str> =
        lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    for name in [
        "skyline.horizon.testhost.listen.datapoints_received",
        "skyline.horizon.testhost.worker.datapoints_sent_to_redis",
        "skyline.horizon.testhost.worker.redis_write_errors",
        "skyline.horizon.testhost.listen.dropped.decode_error",
        "skyline.analyzer.testhost.total_analyzed",
        "skyline.analyzer.testhost.exceptions.TooShort",
        "skyline.analyzer.testhost.total_anomalies",
        "skyline.analyzer.testhost.run_time",
        "skyline.panorama.testhost.inserted",
        "skyline.panorama.testhost.spool_depth",
        "skyline.webapp.testhost.http.requests",
        "skyline.analyzer.testhost.alerts.sent",
        "skyline.thunder.testhost.failing_checks",
    ] {
        assert!(names.contains(name), "{name} missing");
    }
    // Increases since the last batch: the datapoint sent before carbon came up is counted in
    // the first batch that got through (the sender kept it).
    let received: u64 = lines
        .iter()
        .filter(|l| l.starts_with("skyline.horizon.testhost.listen.datapoints_received "))
        .map(|l| l.split(' ').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(received >= 1, "{lines:?}");
    let http: u64 = lines
        .iter()
        .filter(|l| l.starts_with("skyline.webapp.testhost.http.requests "))
        .map(|l| l.split(' ').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(http >= 1, "the flux status request was counted");
    assert_eq!(
        carbon.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one connection, reused for every batch"
    );
    // And the same figures on /metrics.
    let prom = skyline::telemetry::metrics::render_prometheus();
    for name in [
        "skyline_panorama_spool_depth",
        "skyline_panorama_anomalies_inserted_total",
        "skyline_alerts_sent_total",
        "skyline_http_requests_total",
        "skyline_selfmetrics_lines_sent_total",
        "skyline_thunder_alerts_total",
    ] {
        assert!(prom.contains(&format!("\n{name} ")), "{name} on /metrics");
    }
    running.shutdown().await;
}

const BIN: &str = env!("CARGO_BIN_EXE_skyline");

/// `skyline alert-test`: every matching alerter gets a test alert; a failing one makes the
/// exit non-zero and is named; no matching rule exits 2.
#[test]
fn alert_test_cli_sends_through_every_matching_alerter() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("alert-test");
    let smtp = SmtpSink::start(0);
    let hook = HttpSink::start(0);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let write_cfg = |webhook_url: &str| {
        let path = dir.0.join("alerts.toml");
        std::fs::write(
            &path,
            format!(
                r#"
[redis]
url = "{}"
[[alerts]]
pattern = "web.*.requests"
alerter = "smtp"
[[alerts]]
pattern = "web"
alerter = "webhook"
[alerters]
max_attempts = 1
timeout_secs = 3
[alerters.smtp]
server = "{}"
from = "skyline@example.org"
to = ["ops@example.org"]
[alerters.webhook]
url = "{webhook_url}"
"#,
                redis.url(),
                smtp.addr
            ),
        )
        .unwrap();
        path
    };
    let ok = std::process::Command::new(BIN)
        .arg("alert-test")
        .args(["--metric", "web.h1.requests", "--config"])
        .arg(write_cfg(&hook.url("/t")))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(out.contains("smtp") && out.contains("webhook"), "{out}");
    assert_eq!(smtp.mails().len(), 1);
    assert!(qp_decode(&smtp.mails()[0].data)
        .contains("Subject: [Skyline alert] - TEST - Analyzer ALERT - web.h1.requests"));
    let j = hook.requests()[0].json();
    assert_eq!(j["test"], true);
    assert_eq!(j["metric"], "web.h1.requests");

    // No key was set by the test.
    let mut conn = redis_conn(&redis);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("last_alert.*")
        .query(&mut conn)
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");

    let bad = std::process::Command::new(BIN)
        .arg("alert-test")
        .args(["--metric", "web.h1.requests", "--config"])
        .arg(write_cfg(&format!("http://{closed}/x")))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("FAILED: webhook"), "{err}");
    assert!(!err.contains("smtp"), "smtp worked: {err}");
    assert_eq!(smtp.mails().len(), 2);

    let none = std::process::Command::new(BIN)
        .arg("alert-test")
        .args(["--metric", "db.x", "--config"])
        .arg(write_cfg(&hook.url("/t")))
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no [[alerts]] rule matches"));
}

/// The README's alert example loads and routes as the README says.
#[test]
fn readme_alert_example_is_valid() {
    let readme = include_str!("../../README.md");
    let at = readme.find("<!-- alert-example").expect("marker");
    let rest = &readme[at..];
    let start = rest.find("```toml\n").expect("toml block") + "```toml\n".len();
    let end = rest[start..].find("```").expect("end of block");
    let cfg = skyline::config::from_str_with_env(&rest[start..start + end], &[])
        .unwrap_or_else(|e| panic!("README example: {e}"));
    let rules = skyline::alert::RuleSet::new(&cfg.alerts).unwrap();
    let routed = |m: &str| -> Vec<String> {
        rules
            .matching(m)
            .into_iter()
            .map(|(r, _)| r.alerter.clone())
            .collect()
    };
    assert_eq!(routed("web.h1.requests"), ["smtp", "webhook"]);
    assert_eq!(routed("web.h1.errors"), ["webhook"]);
    assert_eq!(routed("db.primary.qps"), ["slack", "webhook"]);
    assert!(routed("cpu.idle").is_empty());
    assert!(cfg.alerters.syslog.unwrap().all_anomalies);
}
