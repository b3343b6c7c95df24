//! The stored endpoint monitor: records in the database (exactly one per request, surviving a
//! restart), versions as separate boxes, outliers whose breakdown names the slow part, the
//! level-3 profile, the read-only guest and the bearer-token export. Records, restart,
//! versions and outliers run on SQLite always and on MariaDB / PostgreSQL when
//! `SKYLINE_TEST_MYSQL_URL` / `SKYLINE_TEST_POSTGRES_URL` are set (required under `CI`).

use std::time::Duration;

use base64::Engine;
use skyline::config::Config;
use skyline::monitor::LevelRule;

use crate::support::server_db::ServerDb;
use crate::support::web::{client, put_metric, series, web_config, PASSWORD, USER};
use crate::support::{eventually, now, redis_conn, TempDir, TestRedis};

const TOKEN: &str = "export-token-0123456789";

/// The web config with the monitor's test settings; Panorama on `db` (a server URL) or on a
/// SQLite file in `dir`.
fn cfg(redis: &TestRedis, dir: &TempDir, version: &str, db: Option<&str>) -> Config {
    let mut c = web_config(redis, dir);
    if let Some(url) = db {
        c.panorama.database_url = url.to_string();
    }
    c.monitor.version = version.into();
    c.monitor.flush_ms = 50;
    c.monitor.export_token = TOKEN.into();
    c
}

fn count(pool: &skyline::db::Pool) -> (i64, i64) {
    skyline::db::monitor::count(pool).unwrap()
}

async fn get(base: &str, path: &str, user: &str, password: &str) -> (u16, String) {
    let mut res = client()
        .get(format!("{base}{path}"))
        .basic_auth(user, password)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let body = res.body().limit(16 << 20).await.unwrap();
    (
        res.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_rt::test]
async fn records_are_exact_survive_a_restart_and_split_by_version() {
    records_are_exact_survive_a_restart_and_split_by_version_on(None).await;
}

#[actix_rt::test]
async fn records_are_exact_survive_a_restart_and_split_by_version_on_mariadb() {
    if let Some(db) = ServerDb::create("SKYLINE_TEST_MYSQL_URL", "monitor") {
        records_are_exact_survive_a_restart_and_split_by_version_on(Some(&db.url)).await;
    }
}

#[actix_rt::test]
async fn records_are_exact_survive_a_restart_and_split_by_version_on_postgres() {
    if let Some(db) = ServerDb::create("SKYLINE_TEST_POSTGRES_URL", "monitor") {
        records_are_exact_survive_a_restart_and_split_by_version_on(Some(&db.url)).await;
    }
}

async fn records_are_exact_survive_a_restart_and_split_by_version_on(db: Option<&str>) {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("monitor-restart");
    put_metric(
        &mut redis_conn(&redis),
        "m.a",
        &series(now(), 100, 60, |i| i as f64),
    );

    // Version 1: 25 requests on two routes.
    let running = skyline::app::start(&cfg(&redis, &dir, "1.0.0", db))
        .await
        .unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    let pool = running.db.clone().unwrap();
    for i in 0..25 {
        let path = if i % 5 == 0 {
            "/api/now"
        } else {
            "/api?metric=m.a"
        };
        let (s, _) = get(&base, path, USER, PASSWORD).await;
        assert_eq!(s, 200, "{path}");
    }
    let n1 = eventually(10, || (count(&pool).0 == 25).then_some(())).await;
    assert!(n1.is_some(), "expected 25 records, have {:?}", count(&pool));
    running.shutdown().await;

    // Version 2, same database: the records are still there, 15 more are added.
    let running = skyline::app::start(&cfg(&redis, &dir, "1.1.0", db))
        .await
        .unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    let pool = running.db.clone().unwrap();
    assert_eq!(count(&pool).0, 25, "records survive the restart");
    for _ in 0..15 {
        assert_eq!(get(&base, "/api?metric=m.a", USER, PASSWORD).await.0, 200);
    }
    let n2 = eventually(10, || (count(&pool).0 == 40).then_some(())).await;
    assert!(n2.is_some(), "expected 40 records, have {:?}", count(&pool));

    // Two boxes for /api: one per version, in release order.
    let (s, body) = get(&base, "/api/monitor/versions?days=1", USER, PASSWORD).await;
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["versions"], serde_json::json!(["1.0.0", "1.1.0"]));
    let api = v["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "GET /api")
        .unwrap_or_else(|| panic!("{v}"));
    let boxes = api["boxes"].as_array().unwrap();
    assert_eq!(boxes.len(), 2, "{api}");
    assert_eq!(boxes[0]["version"], "1.0.0");
    assert_eq!(boxes[0]["summary"]["n"], 20);
    assert_eq!(boxes[1]["version"], "1.1.0");
    assert_eq!(boxes[1]["summary"]["n"], 15);
    let (s, page) = get(&base, "/monitor/versions", USER, PASSWORD).await;
    assert_eq!(s, 200);
    assert!(
        page.matches("<g class=\"box\">").count() >= 3,
        "boxes drawn"
    );
    crate::support::web::assert_safe_html("/monitor/versions", &page);

    // The report compares the two versions by default.
    let (s, body) = get(&base, "/api/monitor/report", USER, PASSWORD).await;
    assert_eq!(s, 200, "{body}");
    let r: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["a"], "version 1.0.0");
    assert_eq!(r["b"], "version 1.1.0");
    assert!(r["routes"][0]["p_value"].is_number(), "{r}");

    // Every view answers, as a page and as JSON.
    for (view, _) in skyline::webapp::monitor_views::VIEWS {
        let (s, body) = get(&base, &format!("/monitor/{view}"), USER, PASSWORD).await;
        assert_eq!(s, 200, "/monitor/{view}: {body}");
        crate::support::web::assert_safe_html(view, &body);
        let (s, body) = get(&base, &format!("/api/monitor/{view}"), USER, PASSWORD).await;
        assert_eq!(s, 200, "/api/monitor/{view}: {body}");
    }
    assert_eq!(get(&base, "/monitor/nonsense", USER, PASSWORD).await.0, 404);
    assert_eq!(
        get(&base, "/api/monitor/endpoints?days=0", USER, PASSWORD)
            .await
            .0,
        400
    );

    // Export: bearer token only.
    let export = |auth: Option<String>| {
        let mut req = client().get(format!("{base}/monitor/export?since=0"));
        if let Some(a) = auth {
            req = req.insert_header(("Authorization", a));
        }
        async move {
            let mut res = req.send().await.unwrap();
            let body = res.body().limit(16 << 20).await.unwrap();
            (
                res.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    };
    assert_eq!(export(None).await.0, 403);
    assert_eq!(
        export(Some("Bearer wrong-token-0123456789".into())).await.0,
        403
    );
    assert_eq!(export(Some(format!("Bearer {TOKEN}x"))).await.0, 403);
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert_eq!(
        export(Some(format!("Basic {basic}"))).await.0,
        403,
        "basic auth is not enough"
    );
    let (s, body) = export(Some(format!("Bearer {TOKEN}"))).await;
    assert_eq!(s, 200, "{body}");
    let lines: Vec<serde_json::Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 40, "{}", lines.len());
    let first = &lines[0];
    for field in [
        "route",
        "method",
        "status",
        "duration_ms",
        "time",
        "version",
        "ip",
        "user",
    ] {
        assert!(first.get(field).is_some(), "{field} missing: {first}");
    }
    assert_eq!(first["version"], "1.0.0");
    assert_eq!(first["user"], USER);
    assert_eq!(first["ip"], "127.0.0.1");
    running.shutdown().await;
}

#[actix_rt::test]
async fn a_slowed_route_yields_outliers_naming_the_slow_part() {
    a_slowed_route_yields_outliers_naming_the_slow_part_on(None).await;
}

#[actix_rt::test]
async fn a_slowed_route_yields_outliers_naming_the_slow_part_on_mariadb() {
    if let Some(db) = ServerDb::create("SKYLINE_TEST_MYSQL_URL", "monitor") {
        a_slowed_route_yields_outliers_naming_the_slow_part_on(Some(&db.url)).await;
    }
}

#[actix_rt::test]
async fn a_slowed_route_yields_outliers_naming_the_slow_part_on_postgres() {
    if let Some(db) = ServerDb::create("SKYLINE_TEST_POSTGRES_URL", "monitor") {
        a_slowed_route_yields_outliers_naming_the_slow_part_on(Some(&db.url)).await;
    }
}

async fn a_slowed_route_yields_outliers_naming_the_slow_part_on(db: Option<&str>) {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("monitor-outlier");
    let mut c = cfg(&redis, &dir, "2.0.0", db);
    c.monitor.outlier_min_hits = 10;
    c.monitor.rules = vec![
        LevelRule {
            route: "/api".into(),
            level: 3,
        },
        LevelRule {
            route: "/rebrow*".into(),
            level: 3,
        },
    ];
    put_metric(
        &mut redis_conn(&redis),
        "m.slow",
        &series(now(), 100, 60, |i| i as f64),
    );
    let running = skyline::app::start(&c).await.unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    let pool = running.db.clone().unwrap();
    for _ in 0..20 {
        assert_eq!(
            get(&base, "/api?metric=m.slow", USER, PASSWORD).await.0,
            200
        );
    }
    // Slow Redis down on purpose: every client paused for 400 ms.
    let mut admin = redis_conn(&redis);
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(400)
        .query(&mut admin)
        .unwrap();
    let (s, _) = get(&base, "/api?metric=m.slow", USER, PASSWORD).await;
    assert_eq!(s, 200);
    // The paused request's outlier (a warm-up request slow by chance on a loaded machine may
    // be an outlier too: the slowest is the paused one).
    let slow = |(_, o): &(i64, skyline::monitor::OutlierRecord)| o.request.duration_us >= 300_000;
    let got = eventually(10, || {
        skyline::db::monitor::outliers(&pool, None, 100)
            .unwrap()
            .iter()
            .any(slow)
            .then_some(())
    })
    .await;
    assert!(got.is_some(), "no outlier recorded: {:?}", count(&pool));
    let (s, body) = get(&base, "/api/monitor/outliers", USER, PASSWORD).await;
    assert_eq!(s, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let o = v["outliers"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["duration_ms"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["duration_ms"].as_f64().unwrap())
        })
        .unwrap();
    assert_eq!(o["route"], "/api", "{o}");
    assert_eq!(o["slowest_part"], "redis", "{o}");
    assert!(o["breakdown_ms"]["redis"].as_f64().unwrap() >= 300.0, "{o}");
    assert!(o["rss_bytes"].as_u64().unwrap() > 0, "{o}");
    let headers = o["headers"].as_str().unwrap();
    assert!(headers.contains("authorization: ***"), "{headers}");
    assert!(!headers
        .contains(&base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))));
    // Its page.
    let id = o["id"].as_i64().unwrap();
    let (s, page) = get(&base, &format!("/monitor/outlier/{id}"), USER, PASSWORD).await;
    assert_eq!(s, 200);
    assert!(page.contains("slowest part: redis"), "{page}");
    // Level 3: every /api record has its breakdown; the profile groups it per route.
    let (s, body) = get(&base, "/api/monitor/profile", USER, PASSWORD).await;
    assert_eq!(s, 200, "{body}");
    let p: serde_json::Value = serde_json::from_str(&body).unwrap();
    let api = &p["routes"][0];
    assert_eq!(api["route"], "GET /api", "{p}");
    assert_eq!(api["n"], 21, "{p}");

    // rebrow's Redis calls are Redis time too (its commands go through the timed connection).
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(400)
        .query(&mut admin)
        .unwrap();
    assert_eq!(get(&base, "/rebrow", USER, PASSWORD).await.0, 200);
    let rebrow = eventually(10, || {
        skyline::db::monitor::requests(&pool, 0, i64::MAX, 10_000)
            .unwrap()
            .into_iter()
            .find(|r| r.route == "/rebrow")
    })
    .await
    .expect("a /rebrow record");
    let b = rebrow.breakdown.expect("level 3 keeps the breakdown");
    assert!(b.redis_us >= 300_000, "{b:?}");
    assert_eq!(b.dominant(rebrow.duration_us), "redis", "{rebrow:?}");
    running.shutdown().await;
}

#[actix_rt::test]
async fn the_guest_reads_everything_and_changes_nothing() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("monitor-guest");
    let mut c = cfg(&redis, &dir, "3.0.0", None);
    c.webapp.guest_user = "viewer".into();
    c.webapp.guest_password = "viewer-pass-1".into();
    c.webapp.rebrow_writable = true;
    let mut r = redis_conn(&redis);
    let _: () = redis::cmd("SET")
        .arg("doomed")
        .arg("1")
        .query(&mut r)
        .unwrap();
    let running = skyline::app::start(&c).await.unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    for path in [
        "/",
        "/panorama",
        "/rebrow",
        "/monitor",
        "/monitor/endpoints",
        "/metrics",
    ] {
        assert_eq!(
            get(&base, path, "viewer", "viewer-pass-1").await.0,
            200,
            "{path}"
        );
    }
    assert_eq!(get(&base, "/", "viewer", "wrong-pass-1").await.0, 401);
    // The CSRF token from the key page (the guest may read it).
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("doomed");
    let (_, page) = get(
        &base,
        &format!("/rebrow/key?k={k}"),
        "viewer",
        "viewer-pass-1",
    )
    .await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("csrf token on the key page")
        .to_string();
    let post =
        |user: &'static str, pass: &'static str, path: &'static str, method: &'static str| {
            let form = format!("k={k}&csrf={csrf}");
            let url = format!("{base}{path}");
            async move {
                let m = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
                client()
                    .request(m, url)
                    .basic_auth(user, pass)
                    .content_type("application/x-www-form-urlencoded")
                    .send_body(form)
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
    // Every state-changing route, and any non-read method on any path: 403 for the guest.
    assert_eq!(
        post("viewer", "viewer-pass-1", "/rebrow/key/delete", "POST").await,
        403
    );
    for path in [
        "/",
        "/api",
        "/api/now",
        "/panorama",
        "/rebrow",
        "/rebrow/key",
        "/monitor",
        "/metrics",
        "/api/ionosphere/train",
        "/no/such/route",
    ] {
        for method in ["POST", "PUT", "DELETE", "PATCH"] {
            assert_eq!(
                post("viewer", "viewer-pass-1", path, method).await,
                403,
                "{method} {path}"
            );
        }
    }
    let exists: i64 = redis::cmd("EXISTS").arg("doomed").query(&mut r).unwrap();
    assert_eq!(exists, 1, "the guest deleted nothing");
    // The admin, with the same form, deletes.
    assert_eq!(
        post(USER, PASSWORD, "/rebrow/key/delete", "POST").await,
        303
    );
    let exists: i64 = redis::cmd("EXISTS").arg("doomed").query(&mut r).unwrap();
    assert_eq!(exists, 0);
    // The guest shows up as a user in the records.
    let pool = running.db.clone().unwrap();
    let _ = eventually(10, || (count(&pool).0 >= 6).then_some(())).await;
    let rows = skyline::db::monitor::requests(&pool, 0, i64::MAX, 1000).unwrap();
    assert!(rows.iter().any(|r| r.user == "viewer" && r.status == 403));
    tokio::time::sleep(Duration::from_millis(10)).await;
    running.shutdown().await;
}

/// `skyline bench webapp --phase-ms`: one daemon under one continuous load, its monitor level
/// switched phase by phase: every phase serves requests without errors, only the level-2
/// phases write records, and each arm is compared with the first level-0 arm.
#[test]
fn the_phased_bench_switches_levels_under_one_load() {
    let opts = skyline::bench::WebappBenchOptions {
        duration_secs: 1,
        threads: 1,
        connections: 4,
        anomalies: 5,
        points: 120,
        monitor_levels: vec![0, 0, 2],
        repeat: 3,
        pin: false,
        interleave: false,
        phase_ms: 80,
    };
    let mut out = Vec::new();
    let report = skyline::bench::webapp(&opts, &mut out).unwrap();
    assert!(report.runs.is_empty());
    assert_eq!(report.phased.len(), 2, "/api and the Now page");
    for t in &report.phased {
        assert_eq!(t.phases.len(), 9, "3 rounds of 3 arms");
        assert_eq!((t.non_2xx, t.socket_errors), (0, 0), "{}", t.target);
        let mut written = [0usize; 3];
        for p in &t.phases {
            assert!(
                p.done > 0 && !p.latency_us.is_empty(),
                "{}: {p:?}",
                t.target
            );
            assert!(p.seconds >= 0.08, "{p:?}");
            assert!(p.cpu_secs.unwrap() > 0.0, "{p:?}");
            written[p.arm] += p.written;
        }
        assert!(written[2] > 0, "level 2 writes records: {written:?}");
        assert!(
            written[0] + written[1] <= written[2] / 10,
            "level 0 writes (nearly) none: {written:?}"
        );
        let lines = skyline::bench::phased::report_lines(&opts.monitor_levels, t);
        for want in [
            "monitor level 2 vs level 0 (#1): throughput",
            "monitor level 0 (#2) vs level 0 (#1): throughput",
        ] {
            assert!(lines.iter().any(|l| l.contains(want)), "{want}: {lines:#?}");
        }
    }
}
