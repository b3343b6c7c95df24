//! Headless Chromium against the running webapp, driven over the DevTools protocol (a small
//! CDP client on awc's websocket): every page loads with seeded data, takes a screenshot, and
//! the test fails on any console error, uncaught exception or failed resource load (CSP
//! violations included). Then hostile metric names are added everywhere and the pages are
//! loaded again: no script from data may run. The Now page must also update itself, without
//! a reload, when the analyzer publishes a new list.
//!
//! Needs the Debian `chromium` package (`.ci/run` installs it). Without it the test fails
//! under CI and is skipped (with a message) elsewhere. Screenshots go to
//! `$SKYLINE_SCREENSHOTS` (e.g. `docs/screenshots`) or a temporary directory.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_codec::Framed;
use awc::ws;
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::support::web::*;
use crate::support::*;

const WIDTH: u64 = 1360;

pub(crate) struct Chrome {
    child: Child,
    pub(crate) ws_url: String,
    _profile: TempDir,
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn launch() -> Option<Chrome> {
    if Command::new("chromium").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "chromium is required in CI (apt-get install -y chromium)"
        );
        eprintln!("chromium not installed: the browser test is skipped here");
        return None;
    }
    let profile = TempDir::new("chromium");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("DevTools listening on ") {
                let _ = tx.send(url.trim().to_string());
            }
        }
    });
    let ws_url = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("chromium printed no DevTools URL within 60 s");
    Some(Chrome {
        child,
        ws_url,
        _profile: profile,
    })
}

/// A minimal Chrome DevTools Protocol client on one page session.
pub(crate) struct Cdp {
    io: Framed<awc::BoxedSocket, ws::Codec>,
    id: u64,
    session: Option<String>,
    events: Vec<Value>,
    partial: Vec<u8>,
}

impl Cdp {
    pub(crate) async fn connect(url: &str) -> Cdp {
        let (_, io) = awc::Client::builder()
            .timeout(Duration::from_secs(30))
            .finish()
            .ws(url)
            .max_frame_size(256 << 20)
            .connect()
            .await
            .expect("connect to chromium's DevTools websocket");
        let mut cdp = Cdp {
            io,
            id: 0,
            session: None,
            events: Vec::new(),
            partial: Vec::new(),
        };
        let target = cdp
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = cdp
            .call(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await;
        cdp.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        cdp
    }

    async fn recv(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let frame = match tokio::time::timeout(left, self.io.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("chromium closed the DevTools connection"),
                Ok(Some(f)) => f.expect("websocket frame"),
            };
            let text = match frame {
                ws::Frame::Text(b) | ws::Frame::Binary(b) => b.to_vec(),
                ws::Frame::Continuation(item) => match item {
                    actix_http::ws::Item::FirstText(b) | actix_http::ws::Item::FirstBinary(b) => {
                        self.partial = b.to_vec();
                        continue;
                    }
                    actix_http::ws::Item::Continue(b) => {
                        self.partial.extend_from_slice(&b);
                        continue;
                    }
                    actix_http::ws::Item::Last(b) => {
                        self.partial.extend_from_slice(&b);
                        std::mem::take(&mut self.partial)
                    }
                },
                ws::Frame::Ping(p) => {
                    self.io.send(ws::Message::Pong(p)).await.unwrap();
                    continue;
                }
                ws::Frame::Pong(_) => continue,
                ws::Frame::Close(_) => panic!("chromium closed the DevTools connection"),
            };
            return Some(serde_json::from_slice(&text).expect("CDP message is JSON"));
        }
    }

    pub(crate) async fn call(&mut self, method: &str, params: Value) -> Value {
        self.id += 1;
        let id = self.id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.io
            .send(ws::Message::Text(msg.to_string().into()))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self
                .recv(deadline)
                .await
                .unwrap_or_else(|| panic!("no answer to {method} within 60 s"));
            if v["id"].as_u64() == Some(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    async fn wait_event(&mut self, method: &str, secs: u64) -> bool {
        if self.events.iter().any(|e| e["method"] == method) {
            return true;
        }
        let deadline = Instant::now() + Duration::from_secs(secs);
        while let Some(v) = self.recv(deadline).await {
            let hit = v["method"] == method;
            self.events.push(v);
            if hit {
                return true;
            }
        }
        false
    }

    pub(crate) async fn drain(&mut self, ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(ms);
        while let Some(v) = self.recv(deadline).await {
            self.events.push(v);
        }
    }

    pub(crate) async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Console errors, exceptions and failed loads seen so far, as text.
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for e in &self.events {
            let p = &e["params"];
            match e["method"].as_str().unwrap_or("") {
                "Runtime.exceptionThrown" => out.push(format!(
                    "exception: {}",
                    p["exceptionDetails"]["exception"]["description"]
                        .as_str()
                        .or(p["exceptionDetails"]["text"].as_str())
                        .unwrap_or("?")
                )),
                "Runtime.consoleAPICalled"
                    if matches!(p["type"].as_str(), Some("error") | Some("assert")) =>
                {
                    out.push(format!("console.{}: {}", p["type"], p["args"]))
                }
                "Log.entryAdded" if p["entry"]["level"] == "error" => out.push(format!(
                    "log: {} {}",
                    p["entry"]["text"],
                    p["entry"]["url"].as_str().unwrap_or("")
                )),
                _ => {}
            }
        }
        out
    }

    /// Loads `url` and waits until the charts in view are drawn; returns the page height.
    pub(crate) async fn open(&mut self, url: &str) -> u64 {
        self.events.clear();
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        self.call("Page.navigate", json!({"url": url})).await;
        assert!(
            self.wait_event("Page.loadEventFired", 30).await,
            "{url} did not load"
        );
        let height = self
            .eval("document.documentElement.scrollHeight")
            .await
            .as_u64()
            .unwrap_or(900)
            .clamp(600, 1800);
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let loading = self
                .eval(
                    "Array.from(document.querySelectorAll('.chart > p, .chart-msg')).filter(e => \
                     e.textContent === 'loading…' && e.getBoundingClientRect().top < innerHeight).length",
                )
                .await;
            if loading == json!(0) {
                break;
            }
            self.drain(100).await;
        }
        self.drain(400).await;
        height
    }

    pub(crate) async fn screenshot(&mut self, path: &std::path::Path, height: u64) {
        let r = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(path, png).unwrap();
    }

    pub(crate) fn assert_clean(&self, what: &str) {
        let p = self.problems();
        assert!(p.is_empty(), "{what}: browser reported:\n{}", p.join("\n"));
    }
}

fn k(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

/// A day-shaped series with a spike at the end (`end` is the last timestamp).
pub(crate) fn shaped(
    end: i64,
    n: usize,
    base: f64,
    amp: f64,
    spike: f64,
    seed: u64,
) -> Vec<(i64, f64)> {
    let mut x = seed;
    series(end, n, 60, |i| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let noise = ((x >> 33) as f64 / (1u64 << 31) as f64 - 0.5) * amp * 0.3;
        let day = (i as f64 / 1440.0 * std::f64::consts::TAU).sin() * amp;
        let v = base + day + noise;
        if i + 3 >= n {
            v + spike
        } else {
            v
        }
    })
}

#[actix_rt::test]
async fn pages_render_without_console_errors_and_resist_hostile_names() {
    let Some(chrome) = launch() else { return };
    let end = now() / 60 * 60;
    let now_metrics: Vec<(&str, Vec<(i64, f64)>)> = vec![
        (
            "prod.web01.cpu.user",
            shaped(end, 1440, 35.0, 12.0, 55.0, 1),
        ),
        (
            "prod.web01.http.5xx_rate",
            shaped(end, 1440, 2.0, 0.8, 18.0, 2),
        ),
        (
            "prod.db01.disk.io_wait",
            shaped(end, 1440, 4.0, 1.5, 40.0, 3),
        ),
        (
            "prod.queue.orders.depth",
            shaped(end, 1440, 120.0, 60.0, 900.0, 4),
        ),
        ("horizon.test.pickle", skyline::seed::series(end + 1)),
    ];
    // Graphite holds two days of the Panorama metrics, with the anomalies in them.
    let mut graphite: HashMap<String, Vec<(i64, Option<f64>)>> = HashMap::new();
    let mut rows = Vec::new();
    let apps = ["analyzer", "analyzer", "mirage", "analyzer"];
    for (i, (name, _)) in now_metrics.iter().take(4).enumerate() {
        let long = shaped(end, 2880, 30.0 + i as f64 * 20.0, 10.0, 0.0, 10 + i as u64);
        let mut pts: Vec<(i64, Option<f64>)> = long.iter().map(|&(t, v)| (t, Some(v))).collect();
        for j in 0..3 {
            let at = 200 + j * 800 + i * 37;
            let value = pts[at].1.unwrap() * 3.2 + 25.0;
            pts[at].1 = Some(value);
            rows.push(anomaly(
                name,
                pts[at].0,
                (value * 100.0).round() / 100.0,
                apps[(i + j) % 4],
                &[
                    "grubbs",
                    "median_absolute_deviation",
                    "stddev_from_average",
                    "histogram_bins",
                    "first_hour_average",
                    "ks_test",
                ][..4 + j],
            ));
        }
        graphite.insert(name.to_string(), pts);
    }
    let fake = FakeGraphite::start(graphite);
    let gurl = fake.url();
    let web = Web::start(move |c| {
        c.graphite.url = gurl;
        c.webapp.refresh_secs = 2;
        c.webapp.rebrow_writable = true;
        // This daemon is the newer of the two seeded versions (the screenshots do not
        // depend on the commit being built).
        c.monitor.version = "0.1.0+b7e1c02".into();
    })
    .await;
    let mut r = web.redis();
    for (name, pts) in &now_metrics {
        put_metric(&mut r, name, pts);
    }
    put_metric(
        &mut r,
        "prod.web02.cpu.user",
        &shaped(end, 1440, 30.0, 10.0, 0.0, 9),
    );
    let current: Vec<(&str, i64, f64)> = now_metrics
        .iter()
        .map(|(n, p)| (*n, p.last().unwrap().0, p.last().unwrap().1))
        .collect();
    put_current(&mut r, &current, 6);
    insert_anomalies(&web.pool(), &rows);
    // An Ionosphere profile of prod.web01.cpu.user (trained on its series) with a match and
    // a layers match, for the Ionosphere page.
    {
        use skyline::db::ionosphere as io;
        let pool = web.pool();
        let series = &now_metrics[0].1;
        let metric_id = skyline::db::queries::resolve_id(
            &pool,
            &mut skyline::db::IdCache::new(),
            skyline::db::Lookup::Metric,
            "prod.web01.cpu.user",
        )
        .unwrap();
        let values: Vec<f64> = series.iter().map(|p| p.1).collect();
        let f = skyline::ionosphere::features::extract(&values).unwrap();
        let fp = io::create_profile(
            &pool,
            &io::NewProfile {
                metric_id,
                full_duration: 86_400,
                anomaly_timestamp: series.last().unwrap().0 - 86_400,
                calc_time: 0.002,
                features_count: 210,
                features_sum: f.sum(),
                features: f.stored(),
                series: series.clone(),
                minmax: skyline::ionosphere::matching::minmax_of(&values),
                parent_id: 0,
                generation: 0,
                label: Some("<script>alert(1)</script> nightly".into()),
                user: "admin".into(),
            },
        )
        .unwrap();
        let end_ts = series.last().unwrap().0;
        io::store_training(
            &pool,
            &mut skyline::db::IdCache::new(),
            &io::TrainingData {
                metric: "prod.web01.cpu.user".into(),
                app: "analyzer".into(),
                metric_timestamp: end_ts,
                full_duration: 86_400,
                added_at: end_ts,
                series: series.clone(),
            },
        )
        .unwrap();
        io::record_match(
            &pool,
            &io::NewMatch {
                fp_id: fp,
                metric_timestamp: end_ts,
                all_calc_features_sum: f.sum(),
                all_calc_features_count: 210,
                sum_common_values: 1.0,
                common_features_count: 140,
                minmax: false,
                minmax_fp_features_sum: 0.0,
                minmax_anomalous_features_sum: 0.0,
                minmax_features_count: 0,
                fp_count: 1,
                fp_checked: 1,
                now: end_ts,
            },
        )
        .unwrap();
    }
    // Some traffic for the monitor, and an error line.
    let _ = skyline::telemetry::init("error", "");
    for _ in 0..30 {
        web.get("/api?metric=prod.web01.cpu.user").await;
        web.get("/api/now").await;
    }
    web.get("/api?metric=no.such.metric&key=secret-key").await;
    seed_monitor(&web.pool(), end);
    log::error!("webapp: redis GET metrics.example failed: connection refused (example error for the screenshot)");

    let out = std::env::var("SKYLINE_SCREENSHOTS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::env::temp_dir().join(format!("skyline-shots-{}", std::process::id()))
        });
    std::fs::create_dir_all(&out).unwrap();

    let mut cdp = Cdp::connect(&chrome.ws_url).await;
    for m in [
        "Page.enable",
        "Runtime.enable",
        "Log.enable",
        "Network.enable",
    ] {
        cdp.call(m, json!({})).await;
    }
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{}", web.password));
    cdp.call(
        "Network.setExtraHTTPHeaders",
        json!({"headers": {"Authorization": format!("Basic {auth}")}}),
    )
    .await;

    let pages: Vec<(String, Option<&str>)> = vec![
        ("/".into(), Some("now")),
        ("/panorama?limit=8".into(), Some("panorama")),
        ("/panorama?count_by_metric=true".into(), None),
        ("/rebrow?pattern=prod.*&count=50".into(), None),
        ("/rebrow?count=25".into(), Some("rebrow")),
        (
            format!("/rebrow/key?k={}", k("metrics.prod.web01.cpu.user")),
            Some("rebrow-key"),
        ),
        (
            format!("/rebrow/key?k={}", k("analyzer.current_anomalies")),
            None,
        ),
        ("/ionosphere".into(), None),
        (
            "/ionosphere?metric=prod.web01.cpu.user".into(),
            Some("ionosphere"),
        ),
        ("/monitor".into(), Some("monitor")),
        ("/monitor/endpoints".into(), Some("monitor-endpoints")),
        ("/monitor/traffic".into(), Some("monitor-traffic")),
        ("/monitor/versions".into(), None),
        // The seeded three days only (the test's own requests come after `end`): two boxes
        // per route, the new version slower on /api.
        (
            format!("/monitor/versions?from={}&until={end}", end - 3 * 86_400),
            Some("monitor-versions"),
        ),
        ("/monitor/clients".into(), None),
        ("/monitor/status".into(), None),
        ("/monitor/outliers".into(), None),
        ("/monitor/outlier/1".into(), Some("monitor-outlier")),
        ("/monitor/profile".into(), None),
        ("/monitor/report".into(), None),
        (
            format!("/monitor/report?from={}&until={end}", end - 3 * 86_400),
            Some("monitor-report"),
        ),
        ("/docs/monitor".into(), None),
        ("/errors".into(), None),
        ("/docs".into(), None),
        ("/docs/webapp".into(), Some("docs")),
        ("/docs/architecture".into(), None),
        ("/docs/configuration".into(), None),
    ];
    for (path, shot) in &pages {
        let height = cdp.open(&web.url(path)).await;
        cdp.assert_clean(path);
        assert_eq!(
            cdp.eval("document.getElementById('js-error').hidden").await,
            json!(true),
            "{path}: the page's error banner is showing"
        );
        if let Some(name) = shot {
            cdp.screenshot(&out.join(format!("{name}.png")), height)
                .await;
        }
    }
    // The Now page drew a graph for each anomaly, with the anomalous point marked.
    cdp.open(&web.url("/")).await;
    assert_eq!(
        cdp.eval("document.querySelectorAll('#cards .chart svg .anomaly-dot').length")
            .await,
        json!(now_metrics.len())
    );
    // Panorama drew its graphs from Graphite.
    cdp.open(&web.url("/panorama?limit=4")).await;
    assert_eq!(
        cdp.eval("document.querySelectorAll('#graphs .chart svg .series').length")
            .await,
        json!(4)
    );
    assert!(fake
        .requests()
        .iter()
        .any(|l| l.contains("/render?target=prod.")));

    // Live update: a new analyzer run shows up without a reload.
    cdp.open(&web.url("/")).await;
    cdp.eval("window.__sameDocument = 42").await;
    put_metric(
        &mut r,
        "prod.web02.cpu.user",
        &shaped(end, 1440, 30.0, 10.0, 80.0, 9),
    );
    let mut updated = current.clone();
    updated.push(("prod.web02.cpu.user", end, 110.0));
    put_current(&mut r, &updated, 6);
    let mut seen = false;
    for _ in 0..60 {
        cdp.drain(250).await;
        let n = cdp
            .eval("document.querySelectorAll('#cards .card[data-metric=\"prod.web02.cpu.user\"] svg').length")
            .await;
        if n == json!(1) {
            seen = true;
            break;
        }
    }
    assert!(seen, "the Now page did not pick up the new anomaly");
    assert_eq!(
        cdp.eval("window.__sameDocument").await,
        json!(42),
        "page reloaded"
    );
    assert_eq!(
        cdp.eval("document.getElementById('now-count').textContent")
            .await,
        json!("6")
    );
    cdp.assert_clean("Now page live update");

    // Hostile names in Redis keys, the current anomalies, Panorama rows and rebrow.
    let hostile = [
        "evil.<script>window.__xss=1</script>",
        "evil.<img src=x onerror=\"window.__xss=2\">",
        "evil.\"'><svg onload=window.__xss=3>",
        "evil.</script><script>window.__xss=4</script>",
        "evil.javascript:window.__xss=5",
    ];
    let mut cur = updated.clone();
    let mut bad_rows = Vec::new();
    for h in &hostile {
        put_metric(&mut r, h, &shaped(end, 300, 10.0, 2.0, 30.0, 5));
        cur.push((h, end, 40.0));
        bad_rows.push(anomaly(h, end - 120, 40.0, "analyzer", &["grubbs"]));
    }
    put_current(&mut r, &cur, 12);
    insert_anomalies(&web.pool(), &bad_rows);
    // Hostile versions, users and groups in the monitor's records.
    let hostile_records: Vec<skyline::monitor::RequestRecord> = hostile
        .iter()
        .enumerate()
        .map(|(i, h)| skyline::monitor::RequestRecord {
            time_ms: (end - 60) * 1000 + i as i64,
            route: "/api".into(),
            method: "GET".into(),
            status: 200,
            duration_us: 900,
            version: h.to_string(),
            ip: "127.0.0.1".into(),
            user: h.to_string(),
            group: Some(h.to_string()),
            breakdown: None,
        })
        .collect();
    skyline::db::monitor::insert(&web.pool(), &hostile_records, &[]).unwrap();
    web.get(&format!(
        "/api?metric=x&probe={}",
        percent_encoding::utf8_percent_encode(hostile[0], percent_encoding::NON_ALPHANUMERIC)
    ))
    .await;
    let mut hostile_pages = vec![
        "/".to_string(),
        "/panorama?metric_like=evil.*".to_string(),
        "/panorama?count_by_metric=true&namespace=evil".to_string(),
        "/rebrow?pattern=metrics.evil.*".to_string(),
        "/monitor".to_string(),
        "/monitor/versions".to_string(),
        "/monitor/clients".to_string(),
        "/monitor/outliers".to_string(),
        "/monitor/report".to_string(),
    ];
    for h in &hostile {
        hostile_pages.push(format!("/rebrow/key?k={}", k(&format!("metrics.{h}"))));
    }
    for path in &hostile_pages {
        cdp.open(&web.url(path)).await;
        cdp.drain(300).await;
        cdp.assert_clean(&format!("hostile {path}"));
        assert_eq!(
            cdp.eval("typeof window.__xss").await,
            json!("undefined"),
            "{path}: XSS ran"
        );
        assert_eq!(
            cdp.eval("document.querySelectorAll('script:not([src]):not([type=\"application/json\"])').length")
                .await,
            json!(0),
            "{path}: an inline script element appeared"
        );
        assert_eq!(
            cdp.eval("document.querySelectorAll('img[src=\"x\"], svg[onload]').length")
                .await,
            json!(0),
            "{path}: markup from data"
        );
    }
    // The hostile names are shown as text.
    cdp.open(&web.url("/")).await;
    let text = cdp
        .eval("document.getElementById('cards').textContent")
        .await;
    assert!(text.as_str().unwrap().contains(hostile[0]), "{text}");
    web.stop().await;
    eprintln!("browser test screenshots in {}", out.display());
}

/// Three days of stored monitor records over two versions, level-3 breakdowns on `/api`, and
/// one outlier (id 1), for the monitor views and their screenshots.
fn seed_monitor(pool: &skyline::db::Pool, end: i64) {
    use skyline::monitor::{Breakdown, OutlierRecord, RequestRecord};
    let mut rows = Vec::new();
    let routes = [
        ("/api", 700u64),
        ("/api/now", 1_100),
        ("/", 2_400),
        ("/panorama", 5_200),
    ];
    for i in 0..1_800i64 {
        let t = end - 3 * 86_400 + i * 144;
        let newer = i >= 1_100;
        let (route, base) = routes[(i % 4) as usize];
        let jitter = ((i * 7_919) % 600) as u64;
        let slower = if newer && route == "/api" { 400 } else { 0 };
        let us = base + jitter + slower;
        rows.push(RequestRecord {
            time_ms: t * 1000,
            route: route.into(),
            method: "GET".into(),
            status: if i % 97 == 0 { 503 } else { 200 },
            duration_us: us,
            version: if newer {
                "0.1.0+b7e1c02"
            } else {
                "0.1.0+3fd7883"
            }
            .into(),
            ip: ["127.0.0.1", "10.1.2.3", "10.1.2.4"][(i % 3) as usize].into(),
            user: if i % 5 == 0 {
                "flux key warehouse-1"
            } else {
                "admin"
            }
            .into(),
            group: None,
            breakdown: (route == "/api").then_some(Breakdown {
                redis_us: us / 2,
                sql_us: 0,
                graphite_us: 0,
                template_us: 0,
            }),
        });
    }
    let slow = RequestRecord {
        time_ms: (end - 3_600) * 1000,
        route: "/panorama".into(),
        method: "GET".into(),
        status: 200,
        duration_us: 48_000,
        version: "0.1.0+b7e1c02".into(),
        ip: "10.1.2.3".into(),
        user: "admin".into(),
        group: None,
        breakdown: None,
    };
    let outlier = OutlierRecord {
        request: slow.clone(),
        route_mean_us: 5_500,
        query: "metric_like=prod.*&limit=500".into(),
        headers: "accept: text/html\nauthorization: ***\nuser-agent: Mozilla/5.0".into(),
        cpu_percent: 37.5,
        rss_bytes: 48 << 20,
        breakdown: Breakdown {
            redis_us: 300,
            sql_us: 41_000,
            graphite_us: 0,
            template_us: 2_100,
        },
    };
    rows.push(slow);
    skyline::db::monitor::insert(pool, &rows, &[outlier]).unwrap();
}
