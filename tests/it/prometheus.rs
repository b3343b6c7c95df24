//! Prometheus remote_write against a real bound HTTP server (port 0) and a private
//! redis-server: canonical names in Redis, auth (key header, basic auth), whole-request
//! validation, bounds, a 10,000-series request, and a real Prometheus (Debian `prometheus`)
//! remote-writing its scrape of the daemon's own `/metrics`.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use skyline::flux::config::ApiKey;
use skyline::flux::prometheus::{self, Label, Sample, TimeSeries, WriteRequest};
use skyline::model::msgpack::decode_series;

use crate::support::web::{Web, USER};
use crate::support::*;

const KEY: &str = "prom-key-0123456789";
const PREFIX_KEY: &str = "prom-prefixed-0123456789";

async fn start() -> Web {
    Web::start(|c| {
        c.flux.api_keys = vec![
            ApiKey::Plain(KEY.into()),
            ApiKey::WithPrefix {
                key: PREFIX_KEY.into(),
                prefix: "team-a".into(),
            },
        ];
    })
    .await
}

fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    TimeSeries {
        labels: labels
            .iter()
            .map(|(n, v)| Label {
                name: n.to_string(),
                value: v.to_string(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|&(ts, value)| Sample {
                value,
                timestamp: ts * 1000,
            })
            .collect(),
    }
}

/// POSTs a snappy body; `auth`: `Some(key)` in the `key` header, `None` = basic auth.
async fn write(
    web: &Web,
    path: &str,
    body: Vec<u8>,
    auth: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut req = web
        .client
        .post(web.url(path))
        .insert_header(("Content-Type", "application/x-protobuf"))
        .insert_header(("Content-Encoding", "snappy"))
        .insert_header(("X-Prometheus-Remote-Write-Version", "0.1.0"));
    req = match auth {
        Some(k) => req.insert_header(("key", k)),
        None => req.basic_auth(USER, &web.password),
    };
    for h in headers {
        req = req.insert_header(*h);
    }
    let mut res = req.send_body(body).await.unwrap();
    let status = res.status().as_u16();
    let bytes = res.body().limit(8 << 20).await.unwrap();
    let json = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)))
    };
    (status, json)
}

fn points(conn: &mut redis::Connection, name: &str) -> Vec<(f64, f64)> {
    get_raw(conn, name)
        .map(|raw| {
            decode_series(&raw)
                .unwrap()
                .into_iter()
                .map(|p| (p.timestamp.as_f64(), p.value.as_f64()))
                .collect()
        })
        .unwrap_or_default()
}

#[actix_rt::test]
async fn remote_write_stores_canonical_series_and_refuses_bad_requests_whole() {
    let web = start().await;
    let now = now();
    let mut conn = web.redis();

    // Key header on Prometheus' path; two series, one stale marker skipped.
    let req = WriteRequest {
        timeseries: vec![
            series(
                &[
                    ("job", "node"),
                    ("__name__", "node_load1"),
                    ("instance", "h:9100"),
                ],
                &[(now - 30, 0.5), (now - 15, 0.75)],
            ),
            series(&[("__name__", "up"), ("path", "a\"b")], &[(now - 15, 1.0)]),
            TimeSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: "gone".into(),
                }],
                samples: vec![Sample {
                    value: f64::from_bits(prometheus::STALE_NAN_BITS),
                    timestamp: now * 1000,
                }],
            },
        ],
    };
    let (s, body) = write(
        &web,
        "/api/v1/write",
        prometheus::encode(&req),
        Some(KEY),
        &[],
    )
    .await;
    assert_eq!(s, 204, "{body}");
    let load = r#"node_load1{instance="h:9100",job="node"}"#;
    let got = eventually(10, || {
        let p = points(&mut conn, load);
        (p.len() == 2).then_some(p)
    })
    .await
    .unwrap_or_else(|| panic!("{load} not in Redis: {:?}", points(&mut conn, load)));
    assert_eq!(
        got,
        vec![((now - 30) as f64, 0.5), ((now - 15) as f64, 0.75)]
    );
    let up = r#"up{path="a\"b"}"#;
    assert!(
        eventually(10, || (!points(&mut conn, up).is_empty()).then_some(()))
            .await
            .is_some()
    );
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("metrics.unique_metrics")
        .query(&mut conn)
        .unwrap();
    assert!(members.contains(&format!("metrics.{load}")), "{members:?}");
    assert!(!members.iter().any(|m| m.contains("gone")), "{members:?}");

    // Skyline's path with basic auth and the tenant / server headers as labels.
    let req = WriteRequest {
        timeseries: vec![series(&[("__name__", "up")], &[(now - 10, 1.0)])],
    };
    let (s, body) = write(
        &web,
        "/flux/prometheus/write",
        prometheus::encode(&req),
        None,
        &[("x-tenant-id", "acme"), ("x-server-id", "prom-1")],
    )
    .await;
    assert_eq!(s, 204, "{body}");
    let tenant = r#"up{_server_id="prom-1",_tenant_id="acme"}"#;
    assert!(
        eventually(10, || (!points(&mut conn, tenant).is_empty()).then_some(()))
            .await
            .is_some(),
        "{tenant}"
    );

    // A prefixed key puts its series under its namespace.
    let (s, _) = write(
        &web,
        "/api/v1/write",
        prometheus::encode(&req),
        Some(PREFIX_KEY),
        &[],
    )
    .await;
    assert_eq!(s, 204);
    assert!(
        eventually(10, || (!points(&mut conn, "team-a.up{}").is_empty())
            .then_some(()))
        .await
        .is_some()
    );

    // One bad series (too old) and one without a name: 400 naming both, nothing stored.
    let bad = WriteRequest {
        timeseries: vec![
            series(&[("__name__", "fine_metric")], &[(now - 5, 1.0)]),
            series(&[("__name__", "old_metric")], &[(now - 200_000, 1.0)]),
            series(&[("job", "nameless")], &[(now - 5, 1.0)]),
        ],
    };
    let (s, body) = write(
        &web,
        "/api/v1/write",
        prometheus::encode(&bad),
        Some(KEY),
        &[],
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{body}");
    assert_eq!(errors[0]["index"], 1);
    assert_eq!(errors[0]["metric"], "old_metric{}");
    assert_eq!(errors[1]["index"], 2);
    assert!(
        errors[1]["message"].as_str().unwrap().contains("__name__"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        points(&mut conn, "fine_metric{}").is_empty(),
        "partial request stored"
    );

    // Credentials: none → 401, wrong key → 401, wrong password → 401.
    let ok_body = prometheus::encode(&req);
    let res = web
        .client
        .post(web.url("/api/v1/write"))
        .insert_header(("Content-Encoding", "snappy"))
        .send_body(ok_body.clone())
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let (s, _) = write(
        &web,
        "/api/v1/write",
        ok_body.clone(),
        Some("wrong-key-000000"),
        &[],
    )
    .await;
    assert_eq!(s, 401);
    let res = web
        .client
        .post(web.url("/api/v1/write"))
        .insert_header(("Content-Encoding", "snappy"))
        .basic_auth(USER, "not-the-password")
        .send_body(ok_body.clone())
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);

    // Not snappy, not protobuf, gzip: 400 saying so (Prometheus does not retry a 4xx).
    let (s, body) = write(
        &web,
        "/api/v1/write",
        b"not snappy at all".to_vec(),
        Some(KEY),
        &[],
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let garbage = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\xff\xff\xff")
        .unwrap();
    let (s, body) = write(&web, "/api/v1/write", garbage, Some(KEY), &[]).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("protobuf"),
        "{body}"
    );
    // GET: 405.
    let res = web
        .client
        .get(web.url("/api/v1/write"))
        .insert_header(("key", KEY))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    web.stop().await;
}

#[actix_rt::test]
async fn remote_write_bounds_body_size_decompressed_size_and_cardinality() {
    let web = Web::start(|c| {
        c.flux.api_keys = vec![ApiKey::Plain(KEY.into())];
        c.flux.prometheus_max_body_bytes = 4096;
        c.flux.prometheus_max_decompressed_bytes = 64 * 1024;
        c.flux.prometheus_max_series = 3;
        c.flux.prometheus_max_series_per_request = 3;
    })
    .await;
    let now = now();
    // Compressed body over the limit: 413.
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let big: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let (s, body) = write(
        &web,
        "/api/v1/write",
        snap::raw::Encoder::new().compress_vec(&big).unwrap(),
        Some(KEY),
        &[],
    )
    .await;
    assert_eq!(s, 413, "{body}");
    // A small body declaring a huge decompressed size: refused before decompressing.
    // (a snappy block starts with its decompressed length as a varint: here 1 MiB)
    let mut bomb = vec![0x80, 0x80, 0x40];
    bomb.extend_from_slice(&[0u8; 64]);
    let (s, body) = write(&web, "/api/v1/write", bomb, Some(KEY), &[]).await;
    assert_eq!(s, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("prometheus_max_decompressed_bytes"),
        "{body}"
    );
    // Cardinality: three series fit, a fourth new one is refused whole and counted.
    let req = |names: &[&str]| WriteRequest {
        timeseries: names
            .iter()
            .map(|&n| series(&[("__name__", n)], &[(now - 5, 1.0)]))
            .collect(),
    };
    let (s, body) = write(
        &web,
        "/api/v1/write",
        prometheus::encode(&req(&["a", "b", "c"])),
        Some(KEY),
        &[],
    )
    .await;
    assert_eq!(s, 204, "{body}");
    let (s, body) = write(
        &web,
        "/api/v1/write",
        prometheus::encode(&req(&["a", "d"])),
        Some(KEY),
        &[],
    )
    .await;
    assert_eq!(s, 400, "{body}");
    assert_eq!(body["errors"][0]["metric"], "d{}", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("prometheus_max_series"),
        "{body}"
    );
    let (s, body) = write(
        &web,
        "/api/v1/write",
        prometheus::encode(&req(&["a", "b", "c", "e"])),
        Some(KEY),
        &[],
    )
    .await;
    assert_eq!(s, 400, "{body}");
    let (_, _, metrics) = web.get("/metrics").await;
    assert!(
        metrics.contains("\nskyline_flux_prometheus_series 3\n"),
        "{metrics}"
    );
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("skyline_flux_prometheus_cardinality_refused_total "))
        .unwrap();
    assert_ne!(
        refused,
        "skyline_flux_prometheus_cardinality_refused_total 0"
    );
    web.stop().await;
}

#[actix_rt::test]
async fn remote_write_accepts_a_10000_series_request_whole() {
    let web = start().await;
    let now = now();
    let req = WriteRequest {
        timeseries: (0..10_000)
            .map(|i| {
                let id = i.to_string();
                series(
                    &[
                        ("__name__", "big_request_metric"),
                        ("series", id.as_str()),
                        ("job", "bulk"),
                    ],
                    &[(now - 20, i as f64)],
                )
            })
            .collect(),
    };
    let body = prometheus::encode(&req);
    let (s, reply) = write(&web, "/api/v1/write", body, Some(KEY), &[]).await;
    assert_eq!(s, 204, "{reply}");
    let mut conn = web.redis();
    let n = eventually(30, || {
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg("metrics.unique_metrics")
            .query(&mut conn)
            .unwrap();
        let n = members
            .iter()
            .filter(|m| m.starts_with("metrics.big_request_metric{"))
            .count();
        (n == 10_000).then_some(n)
    })
    .await;
    assert_eq!(n, Some(10_000));
    let p = points(&mut conn, r#"big_request_metric{job="bulk",series="9999"}"#);
    assert_eq!(p, vec![((now - 20) as f64, 9999.0)]);
    web.stop().await;
}

/// A real Prometheus (Debian `prometheus`; fails, never skips, in CI) scrapes the daemon's own
/// `/metrics` every second and remote-writes to `/api/v1/write`: every series of that target
/// that Prometheus knows reaches Redis under its canonical name.
#[actix_rt::test]
async fn real_prometheus_remote_write_reaches_redis_under_canonical_names() {
    let bin = which("prometheus");
    let Some(bin) = bin else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "prometheus is required in CI (Debian package prometheus)"
        );
        eprintln!("prometheus not installed; skipped outside CI");
        return;
    };
    let web = start().await;
    let addr = web.base.trim_start_matches("http://").to_string();
    let dir = TempDir::new("prometheus");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: skyline\n    metrics_path: /metrics\n    basic_auth:\n      username: {USER}\n      password: {pw}\n    static_configs:\n      - targets: ['{addr}']\n\
         remote_write:\n  - url: http://{addr}/api/v1/write\n    basic_auth:\n      username: {USER}\n      password: {pw}\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n      max_backoff: 1s\n",
        pw = web.password
    );
    let cfg_path = dir.0.join("prometheus.yml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut child = Killed(
        Command::new(bin)
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.0.join("prometheus.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );

    // Prometheus' own view of the target's series.
    let api = format!("http://127.0.0.1:{port}/api/v1/series?match[]=%7Bjob%3D%22skyline%22%7D");
    let client = awc::Client::new();
    let mut conn = web.redis();
    let mut known: Vec<BTreeMap<String, String>> = Vec::new();
    let mut missing: Vec<String> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok(mut res) = client.get(&api).send().await else {
            continue;
        };
        let Ok(body) = res.json::<serde_json::Value>().limit(16 << 20).await else {
            continue;
        };
        known = body["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|s| serde_json::from_value(s).unwrap())
            .collect();
        // Wait for a few scrapes' worth of series (the first scrape's and the scrape_* ones).
        if known.len() < 20 {
            continue;
        }
        missing = known
            .iter()
            .map(canonical)
            .filter(|name| get_raw(&mut conn, name).is_none())
            .collect();
        if missing.is_empty() {
            break;
        }
    }
    child.stop();
    let log = std::fs::read_to_string(dir.0.join("prometheus.log")).unwrap_or_default();
    assert!(
        known.len() >= 20,
        "Prometheus knows {} series: {log}",
        known.len()
    );
    assert!(
        missing.is_empty(),
        "{} of {} series not in Redis, e.g. {:?}\n{log}",
        missing.len(),
        known.len(),
        &missing[..missing.len().min(5)]
    );
    // Scrape-generated series and the daemon's own ones among them.
    let up = format!(r#"up{{instance="{addr}",job="skyline"}}"#);
    assert!(get_raw(&mut conn, &up).is_some(), "{up}");
    assert!(known
        .iter()
        .any(|l| l["__name__"] == "skyline_http_requests_total"));
    web.stop().await;
}

/// The canonical name of a label set, as the daemon names it.
fn canonical(labels: &BTreeMap<String, String>) -> String {
    let labels: Vec<Label> = labels
        .iter()
        .map(|(n, v)| Label {
            name: n.clone(),
            value: v.clone(),
        })
        .collect();
    prometheus::canonical_name(
        &labels,
        &[],
        &prometheus::Limits {
            max_name_bytes: 4000,
            max_labels: 100,
            max_series_per_request: 1,
            time: skyline::flux::validate::Limits {
                now: 0,
                max_age_secs: 0,
                max_future_skew_secs: 0,
                backfill: false,
                stored_back_secs: None,
            },
            keep_secs: 0,
        },
    )
    .unwrap()
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// Our Prometheus child, killed and reaped when the test ends (or panics).
struct Killed(std::process::Child);

impl Killed {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.stop();
    }
}
