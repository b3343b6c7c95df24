//! Issue 10's operational defects, each with the regression test that failed before its fix:
//! a valid `/metrics` exposition, gzip bombs refused without inflating, flux points older
//! than `max_resolution_secs` stored (never 204-and-dropped), impossible search dates refused,
//! the managed Redis dying with the daemon, HEAD where GET works, and alerts queued at
//! shutdown delivered at the next start.

use std::time::Duration;

use crate::support::web::*;
use crate::support::*;

/// `/metrics` declares every family once, as a scraper requires: checked by the built-in
/// checker always and by `promtool check metrics` (fails, never skips, when `CI=true` and
/// promtool is missing).
#[actix_rt::test]
async fn metrics_exposition_is_valid_prometheus() {
    let web = Web::start(|_| {}).await;
    let (s, _, text) = web.get("/metrics").await;
    assert_eq!(s, 200);
    assert!(
        text.contains("\nskyline_panorama_inserted_total "),
        "{text}"
    );
    if let Err(problems) = skyline::telemetry::metrics::check_exposition(&text) {
        panic!("invalid exposition: {problems:#?}");
    }
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    match promtool {
        Ok(mut child) => {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            // promtool 2.42 exits 1 for style lints too (e.g. "use base unit seconds"), which
            // a scrape accepts; a parse error ("second TYPE line for metric name …") is what
            // makes a real scrape fail.
            assert!(
                !said.contains("error while linting") && !said.contains("parsing error"),
                "promtool check metrics: {said}"
            );
            if !out.status.success() {
                eprintln!("promtool style lints (not scrape errors):\n{said}");
            }
        }
        Err(err) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is required in CI (Debian package prometheus): {err}"
            );
            eprintln!("promtool not found ({err}); only the built-in check ran");
        }
    }
    web.stop().await;
}

const FLUX_KEY: &str = "hardening-key-0123456789";

fn flux_config(redis: &TestRedis, dir: &TempDir) -> skyline::config::Config {
    let mut c = config(redis, dir);
    c.analyzer.enabled = false;
    c.webapp.enabled = false;
    c.flux.api_keys = vec![skyline::flux::config::ApiKey::Plain(FLUX_KEY.into())];
    c.flux.carbon_pickle_addr = String::new();
    c
}

/// (status, body) of a POST of raw bytes with optional headers.
async fn post_raw(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish()
        .post(url)
        .insert_header(("Content-Type", "application/json"));
    for h in headers {
        req = req.insert_header(*h);
    }
    match req.send_body(body).await {
        Ok(mut res) => {
            let b = res.body().limit(1 << 20).await.unwrap_or_default();
            (
                res.status().as_u16(),
                String::from_utf8_lossy(&b).into_owned(),
            )
        }
        // The server may close the connection right after answering 413 without reading
        // the rest of the body; that is still a refusal.
        Err(err) => (0, err.to_string()),
    }
}

/// The process's peak resident set (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A gzip member of `inflated` zero bytes (about 1 MB per GiB).
fn gzip_bomb(inflated: usize) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..inflated >> 20 {
        e.write_all(&zeros).unwrap();
    }
    e.finish().unwrap()
}

/// Eight concurrent 1 MB → 1 GiB gzip bombs with a valid key: all 413 and the process's peak
/// RSS grows < 100 MB (decompression stops at `max_body_bytes`); without a header key a
/// compressed body is refused (401) before it is read; a real gzip batch is still accepted.
#[actix_rt::test]
async fn flux_gzip_bombs_are_refused_without_inflating() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("gzip-bomb");
    let running = skyline::app::start(&flux_config(&redis, &dir))
        .await
        .unwrap();
    let url = format!(
        "http://{}/flux/metric_data_post",
        running.http_addr.unwrap()
    );

    // A real gzipped request still works.
    let t = now();
    let body = serde_json::json!({"metric": "gz.ok", "timestamp": t, "value": 1.5}).to_string();
    let (s, b) = post_raw(
        &url,
        gzip(body.as_bytes()),
        &[("Content-Encoding", "gzip"), ("key", FLUX_KEY)],
    )
    .await;
    assert_eq!(s, 204, "{b}");
    // ?key= works as well as the header.
    let (s, b) = post_raw(
        &format!("{url}?key={FLUX_KEY}"),
        gzip(body.as_bytes()),
        &[("Content-Encoding", "gzip")],
    )
    .await;
    assert_eq!(s, 204, "{b}");

    let bomb = gzip_bomb(1 << 30);
    assert!(bomb.len() < (1 << 20), "bomb is {} bytes", bomb.len());

    // No key outside the compressed body: refused before decompression.
    let (s, b) = post_raw(&url, bomb.clone(), &[("Content-Encoding", "gzip")]).await;
    assert_eq!(s, 401, "{b}");
    assert!(b.contains("key"), "{b}");

    let before = peak_rss();
    let bombs = (0..8).map(|_| {
        post_raw(
            &url,
            bomb.clone(),
            &[("Content-Encoding", "gzip"), ("key", FLUX_KEY)],
        )
    });
    let replies = futures_util::future::join_all(bombs).await;
    let grown = peak_rss().saturating_sub(before);
    for (s, b) in &replies {
        assert_eq!(*s, 413, "{b}");
    }
    assert!(
        grown < 100 << 20,
        "peak RSS grew by {} MB for 8 bombs",
        grown >> 20
    );
    running.shutdown().await;
}

/// A flux point older than `max_resolution_secs` (but within `max_age_secs`) is stored in
/// Redis, not acknowledged with 204 and dropped by the metric actors; one older than
/// `full_duration_secs` with no carbon configured is refused with a 400 that says why.
#[actix_rt::test]
async fn flux_point_older_than_max_resolution_is_stored() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flux-old");
    let cfg = flux_config(&redis, &dir);
    assert_eq!(cfg.horizon.max_resolution_secs, 1000);
    let running = skyline::app::start(&cfg).await.unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    let t = now() - 3600;
    let client = awc::Client::new();
    let mut res = client
        .get(format!(
            "{base}/flux/metric_data?metric=old.point&timestamp={t}&value=4.5&key={FLUX_KEY}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 204);
    let _ = res.body().await;
    let mut conn = redis_conn(&redis);
    let raw = eventually(10, || get_raw(&mut conn, "old.point"))
        .await
        .expect("a 204 means the point is stored");
    let series = skyline::model::msgpack::decode_series(&raw).unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].value.as_f64(), 4.5);

    let too_old = now() - 86_400 - 600;
    let (s, b) = post_raw(
        &format!("{base}/flux/populate_metric"),
        serde_json::json!({"metric": "older.point", "datapoints": [[too_old, 1]]})
            .to_string()
            .into_bytes(),
        &[("key", FLUX_KEY)],
    )
    .await;
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("would not be stored"), "{b}");
    running.shutdown().await;
}

/// Pids of live (not zombie) redis-server processes whose command line names `socket`.
fn redis_servers_on(socket: &std::path::Path) -> Vec<u32> {
    let needle = socket.to_string_lossy().into_owned();
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains("redis-server") || !cmdline.contains(&needle) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next());
        if !matches!(state, Some('Z') | Some('X') | None) {
            out.push(pid);
        }
    }
    out
}

/// Kills the daemon if the test fails half-way.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// SIGKILL the daemon → its managed redis-server exits too (no orphan on the socket and AOF);
/// while it runs, a second start on the same data dir is refused with a clear message.
#[actix_rt::test]
async fn managed_redis_dies_with_the_daemon_and_a_live_one_is_refused() {
    use std::io::BufRead;
    let dir = TempDir::new("managed");
    let data = dir.0.join("d");
    let cfg = dir.0.join("skyline.toml");
    std::fs::write(
        &cfg,
        format!(
            "[redis]\nmanaged = true\n[horizon]\npickle_bind = \"127.0.0.1:0\"\nudp_bind = \"\"\n\
             plaintext_bind = \"\"\n[data]\ndir = \"{}\"\n[webapp]\nbind = \"127.0.0.1:0\"\n\
             enabled = false\n[flux]\nenabled = false\n[analyzer]\nenabled = false\n",
            data.display()
        ),
    )
    .unwrap();
    let mut daemon = Daemon(
        std::process::Command::new(env!("CARGO_BIN_EXE_skyline"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = daemon.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut ready = false;
    let mut seen = Vec::new();
    while std::time::Instant::now() < deadline && !ready {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            ready = line.contains("running:");
            seen.push(line);
        }
    }
    assert!(ready, "daemon did not report running: {seen:#?}");
    let socket = data.join("redis").join("redis.sock");
    let pids = redis_servers_on(&socket);
    assert_eq!(pids.len(), 1, "one managed redis-server: {pids:?}");

    // A second daemon on the same data dir: refused, the first server untouched.
    let err = skyline::store::managed::ManagedRedis::start("redis-server", &data)
        .await
        .err()
        .expect("a live server on the socket is refused");
    let msg = err.to_string();
    assert!(msg.contains("already running"), "{msg}");
    assert!(!msg.contains("Custom {") && !msg.contains("Some("), "{msg}");
    assert_eq!(redis_servers_on(&socket), pids);

    // SIGKILL: no shutdown code runs, the kernel still stops the child.
    daemon.0.kill().unwrap();
    daemon.0.wait().unwrap();
    let gone = eventually(10, || redis_servers_on(&socket).is_empty().then_some(())).await;
    assert!(
        gone.is_some(),
        "redis-server {pids:?} outlived the killed daemon"
    );

    // The next start finds no live server and starts its own.
    let again = skyline::store::managed::ManagedRedis::start("redis-server", &data)
        .await
        .unwrap();
    assert_eq!(redis_servers_on(&socket).len(), 1);
    again.stop().await;
}

/// An alert queued while its receiver is down is not dropped at shutdown: it is written to
/// `[data] dir/alerts-pending.jsonl` and delivered by the next start.
#[actix_rt::test]
async fn alert_queued_at_shutdown_is_sent_at_next_start() {
    use crate::support::sinks::HttpSink;
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("alerts-shutdown");
    let make = |url: &str| {
        let text = format!(
            r#"
[analyzer]
enabled = false
[panorama]
enabled = false
[flux]
enabled = false
[alerters]
max_attempts = 100
retry_initial_ms = 100
retry_max_secs = 1
[[alerts]]
pattern = "^shutdown\\.metric$"
alerter = "webhook"
expiration_secs = 3600
[alerters.webhook]
url = "{url}"
"#
        );
        let mut cfg = skyline::config::from_str_with_env(&text, &[]).unwrap();
        let base = config(&redis, &dir);
        cfg.redis = base.redis;
        cfg.horizon = base.horizon;
        cfg.data = base.data;
        cfg.webapp = base.webapp;
        cfg.webapp.enabled = false;
        cfg.thunder.enabled = false;
        cfg
    };
    // The receiver is "down": it answers 500 to everything.
    let down = HttpSink::start(usize::MAX);
    let running = skyline::app::start(&make(&down.url("/hook")))
        .await
        .unwrap();
    let t = now();
    running
        .alert_anomalies
        .do_send(skyline::alert::AlertAnomaly(skyline::model::Anomaly {
            metric: "shutdown.metric".into(),
            timestamp: t,
            datapoint: 42.0,
            from_timestamp: t - 86_400,
            full_duration: 86_400,
            algorithms_run: vec!["grubbs".into()],
            triggered_algorithms: vec!["grubbs".into()],
            app: "analyzer".into(),
            source: "graphite".into(),
            host: "test".into(),
            added_at: t,
        }));
    assert!(
        eventually(10, || (!down.requests().is_empty()).then_some(()))
            .await
            .is_some(),
        "the alert was attempted"
    );
    running.shutdown().await;
    let pending = dir.0.join("alerts-pending.jsonl");
    let text = std::fs::read_to_string(&pending).expect("the undelivered alert is on disk");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("shutdown.metric"), "{text}");

    // Next start, receiver up: the alert arrives and the file is gone.
    let up = HttpSink::start(0);
    let running = skyline::app::start(&make(&up.url("/hook"))).await.unwrap();
    let got = eventually(10, || {
        let r = up.requests();
        (!r.is_empty()).then_some(r)
    })
    .await
    .expect("the pending alert is delivered at the next start");
    assert!(got[0].body.contains("shutdown.metric"), "{}", got[0].body);
    assert!(!pending.exists(), "the pending file is removed once queued");
    running.shutdown().await;
    assert!(!pending.exists(), "nothing left at the second shutdown");
}

/// HEAD answers wherever GET does (status and headers of the GET, no body), including
/// `/health`, a page behind basic auth, `/metrics` and flux's status check; a POST-only route
/// still says 405. Panorama refuses an impossible date with a 400 that explains it.
#[actix_rt::test]
async fn head_works_where_get_does_and_impossible_dates_are_refused() {
    let web = Web::start(|c| {
        c.flux.api_keys = vec![skyline::flux::config::ApiKey::Plain(FLUX_KEY.into())];
    })
    .await;
    for path in [
        "/health",
        "/now",
        "/metrics",
        "/api/now",
        "/flux/metric_data?status",
    ] {
        let mut res = web
            .client
            .head(web.url(path))
            .basic_auth(USER, &web.password)
            // awc would try to gunzip the empty body of a HEAD answer that says gzip
            .insert_header(("Accept-Encoding", "identity"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "HEAD {path}");
        let body = res.body().await.unwrap();
        assert!(body.is_empty(), "HEAD {path} has no body");
        assert!(
            res.headers().contains_key("content-type"),
            "HEAD {path} keeps the GET's headers"
        );
    }
    let res = web.client.head(web.url("/now")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401, "HEAD is authenticated like GET");
    let res = web
        .client
        .head(web.url("/flux/metric_data_post"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);

    for path in [
        "/api/anomalies?from=2026-02-30",
        "/api/anomalies?until=2023-04-31%2010:00",
    ] {
        let (s, _, body) = web.get(path).await;
        assert_eq!(s, 400, "{path}: {body}");
        assert!(body.contains("is not a date"), "{path}: {body}");
        assert!(
            body.contains("has 28 days") || body.contains("has 30 days"),
            "{body}"
        );
    }
    let (s, _, body) = web.get("/api/anomalies?from=2024-02-29").await;
    assert_eq!(s, 200, "a leap day is a date: {body}");
    web.stop().await;
}
