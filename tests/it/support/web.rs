//! Helpers for the webapp tests: a started daemon with its HTTP client, data seeding (Redis
//! series, the analyzer's current anomalies, Panorama rows) and a fake graphite-web render API.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skyline::app::Running;
use skyline::config::Config;
use skyline::db::{queries, IdCache};
use skyline::model::msgpack::encode_series;
use skyline::model::{Anomaly, Number, Point};

use super::{config, now, redis_conn, TempDir, TestRedis};

pub const USER: &str = "admin";
pub const PASSWORD: &str = "test-password-0123";

/// A daemon with the webapp, its Redis and data dir.
pub struct Web {
    pub running: Option<Running>,
    pub base: String,
    pub client: awc::Client,
    pub redis: TestRedis,
    /// The data dir (kept until the test ends).
    pub _dir: TempDir,
    pub password: String,
}

/// The test config: analyzer off (tests write `analyzer.current_anomalies` themselves unless
/// they turn it on), Panorama on SQLite in the temp dir, a fixed password.
pub fn web_config(redis: &TestRedis, dir: &TempDir) -> Config {
    let mut c = config(redis, dir);
    c.analyzer.enabled = false;
    c.webapp.auth_password = PASSWORD.into();
    c.flux.carbon_pickle_addr = String::new();
    c.panorama.database_url = format!("sqlite://{}", dir.0.join("panorama.sqlite").display());
    c
}

pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .disable_redirects()
        .finish()
}

impl Web {
    /// Starts with `tweak` applied to [`web_config`].
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Web {
        let redis = TestRedis::start().unwrap();
        let dir = TempDir::new("web");
        let mut cfg = web_config(&redis, &dir);
        tweak(&mut cfg);
        let password = if cfg.webapp.auth_password.is_empty() {
            String::new()
        } else {
            cfg.webapp.auth_password.clone()
        };
        let running = skyline::app::start(&cfg).await.unwrap();
        let base = format!("http://{}", running.http_addr.unwrap());
        let password = if password.is_empty() {
            std::fs::read_to_string(dir.0.join("webapp.password"))
                .unwrap()
                .trim()
                .to_string()
        } else {
            password
        };
        Web {
            running: Some(running),
            base,
            client: client(),
            redis,
            _dir: dir,
            password,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with the right credentials: (status, content type, body).
    pub async fn get(&self, path: &str) -> (u16, String, String) {
        let mut res = self
            .client
            .get(self.url(path))
            .basic_auth(USER, &self.password)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = res.body().limit(64 << 20).await.unwrap();
        (
            res.status().as_u16(),
            ct,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    /// GET expecting JSON with status `status`.
    pub async fn json(&self, path: &str, status: u16) -> serde_json::Value {
        let (s, ct, body) = self.get(path).await;
        assert_eq!(s, status, "GET {path}: {body}");
        assert!(ct.starts_with("application/json"), "GET {path}: {ct}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    /// GET expecting an HTML page with status 200; checks the page-wide security rules.
    pub async fn page(&self, path: &str) -> String {
        let (s, ct, body) = self.get(path).await;
        assert_eq!(s, 200, "GET {path}: {body}");
        assert!(ct.starts_with("text/html"), "GET {path}: {ct}");
        assert_safe_html(path, &body);
        body
    }

    pub fn redis(&self) -> redis::Connection {
        redis_conn(&self.redis)
    }

    pub fn pool(&self) -> skyline::db::Pool {
        self.running.as_ref().unwrap().db.clone().unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

/// No inline script, no event-handler attributes, no `javascript:` URLs, no unescaped
/// `<script>` from data.
pub fn assert_safe_html(path: &str, body: &str) {
    let lower = body.to_ascii_lowercase();
    // The markup outside JSON data blocks (whose content is checked separately).
    let mut markup = String::new();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("<script") {
        let tag_end = rest[i..].find('>').map(|e| i + e).unwrap();
        let tag = &rest[i..=tag_end];
        assert!(
            tag.contains(" src=\"/assets/") || tag.contains("type=\"application/json\""),
            "{path}: inline script tag {tag}"
        );
        markup.push_str(&rest[..=tag_end]);
        let close = rest[tag_end..].find("</script>").unwrap() + tag_end;
        let inner = &rest[tag_end + 1..close];
        if tag.contains("application/json") {
            assert!(
                !inner.contains('<') && !inner.contains('>'),
                "{path}: markup characters inside a JSON block: {inner}"
            );
            serde_json::from_str::<serde_json::Value>(
                &body[body.len() - rest.len() + tag_end + 1..body.len() - rest.len() + close],
            )
            .unwrap_or_else(|e| panic!("{path}: JSON block does not parse: {e}"));
        } else {
            assert!(inner.trim().is_empty(), "{path}: script with content");
        }
        rest = &rest[close..];
    }
    markup.push_str(rest);
    for bad in [
        " onerror=",
        " onload=",
        " onclick=",
        " onmouseover=",
        "javascript:",
        " style=",
    ] {
        assert!(!markup.contains(bad), "{path}: contains {bad}");
    }
    assert!(
        !body.contains("<script>alert") && !body.contains("<img src=x"),
        "{path}: unescaped hostile markup"
    );
}

/// A series of `n` points `step` seconds apart ending at `end`, from `f(i)`.
pub fn series(end: i64, n: usize, step: i64, mut f: impl FnMut(usize) -> f64) -> Vec<(i64, f64)> {
    (0..n)
        .map(|i| (end - (n as i64 - 1 - i as i64) * step, f(i)))
        .collect()
}

/// Stores a metric in Skyline's layout.
pub fn put_metric(conn: &mut redis::Connection, name: &str, points: &[(i64, f64)]) {
    let pts: Vec<Point> = points
        .iter()
        .map(|&(t, v)| Point {
            timestamp: Number::Int(t),
            value: Number::Float(v),
        })
        .collect();
    let key = format!("metrics.{name}");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(encode_series(&pts))
        .query(conn)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("metrics.unique_metrics")
        .arg(&key)
        .query(conn)
        .unwrap();
}

/// Writes `analyzer.current_anomalies` and `analyzer.run_stats` as the analyzer does.
pub fn put_current(conn: &mut redis::Connection, anomalies: &[(&str, i64, f64)], metrics: usize) {
    let list: Vec<serde_json::Value> = anomalies
        .iter()
        .map(|(m, t, v)| {
            serde_json::json!({
                "metric": m, "timestamp": t, "datapoint": v,
                "triggered_algorithms": ["first_hour_average", "grubbs", "histogram_bins",
                    "median_absolute_deviation", "stddev_from_average", "stddev_from_moving_average",
                    "mean_subtraction_cumulation"],
                "algorithms_run": ["histogram_bins", "first_hour_average", "stddev_from_average",
                    "grubbs", "ks_test", "mean_subtraction_cumulation", "median_absolute_deviation",
                    "stddev_from_moving_average", "least_squares"],
            })
        })
        .collect();
    let stats = serde_json::json!({
        "total_metrics": metrics, "total_analyzed": metrics.saturating_sub(1),
        "exception_stats": [["TooShort", 1], ["EmptyTimeseries", 0], ["Stale", 0], ["Boring", 0], ["Other", 0]],
        "anomaly_breakdown": [["grubbs", anomalies.len()]],
        "run_time": 0.42, "timestamp": now() - 20, "total_anomalies": anomalies.len(),
    });
    let _: () = redis::pipe()
        .cmd("SET")
        .arg("analyzer.current_anomalies")
        .arg(serde_json::Value::Array(list).to_string())
        .cmd("SET")
        .arg("analyzer.run_stats")
        .arg(stats.to_string())
        .query(conn)
        .unwrap();
}

/// An anomaly row for Panorama.
pub fn anomaly(metric: &str, ts: i64, value: f64, app: &str, triggered: &[&str]) -> Anomaly {
    Anomaly {
        metric: metric.into(),
        timestamp: ts,
        datapoint: value,
        from_timestamp: ts - 86_400,
        full_duration: 86_400,
        algorithms_run: skyline::analyze::config::ALGORITHM_NAMES
            .map(String::from)
            .to_vec(),
        triggered_algorithms: triggered.iter().map(|s| s.to_string()).collect(),
        app: app.into(),
        source: "graphite".into(),
        host: "web-test-host".into(),
        added_at: ts + 5,
    }
}

pub fn insert_anomalies(pool: &skyline::db::Pool, rows: &[Anomaly]) {
    queries::insert_anomalies(pool, &mut IdCache::new(), rows, 1).unwrap();
}

/// A fake graphite-web: `GET /render?target=…&from=…&until=…&format=json` answers from its
/// series table in graphite-web's JSON (`[{"target", "tags", "datapoints": [[value, ts]]}]`,
/// `null` for empty steps, `[]` for unknown names, 400 for a target with `(` that is not a
/// known function); `format=png` answers a few PNG bytes. It records every request line.
pub struct FakeGraphite {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl FakeGraphite {
    pub fn start(series: HashMap<String, Vec<(i64, Option<f64>)>>) -> FakeGraphite {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, st) = (requests.clone(), stop.clone());
        let series = Arc::new(series);
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (r, s) = (r.clone(), series.clone());
                        std::thread::spawn(move || serve(conn, &r, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FakeGraphite {
            addr,
            requests,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeGraphite {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn serve(
    mut conn: TcpStream,
    requests: &Mutex<Vec<String>>,
    series: &HashMap<String, Vec<(i64, Option<f64>)>>,
) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let line = head.lines().next().unwrap_or("").to_string();
    requests.lock().unwrap().push(line.clone());
    let target_path = line.split_whitespace().nth(1).unwrap_or("/");
    let (path, query) = target_path.split_once('?').unwrap_or((target_path, ""));
    let params: HashMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let (status, ctype, body): (&str, &str, Vec<u8>) = if path != "/render" && path != "/render/" {
        ("404 Not Found", "text/plain", b"not found".to_vec())
    } else if params.get("format").map(String::as_str) == Some("png") {
        ("200 OK", "image/png", b"\x89PNG\r\n\x1a\nfake".to_vec())
    } else {
        let target = params.get("target").cloned().unwrap_or_default();
        let from: i64 = params.get("from").and_then(|f| f.parse().ok()).unwrap_or(0);
        let until: i64 = params
            .get("until")
            .and_then(|f| f.parse().ok())
            .unwrap_or(i64::MAX);
        if target.contains('(') && !target.starts_with("keepLastValue(") {
            ("400 Bad Request", "text/plain", b"bad target".to_vec())
        } else {
            let name = target
                .strip_prefix("keepLastValue(")
                .and_then(|t| t.strip_suffix(')'))
                .unwrap_or(&target);
            match series.get(name) {
                None => ("200 OK", "application/json", b"[]".to_vec()),
                Some(points) => {
                    let dps: Vec<serde_json::Value> = points
                        .iter()
                        .filter(|(t, _)| *t >= from && *t <= until)
                        .map(|(t, v)| serde_json::json!([v, t]))
                        .collect();
                    let body = serde_json::json!([{
                        "target": name, "tags": {"name": name}, "datapoints": dps,
                    }]);
                    ("200 OK", "application/json", body.to_string().into_bytes())
                }
            }
        }
    };
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    let _ = conn.write_all(&out);
}
