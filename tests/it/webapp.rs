//! The webapp against a real bound server (port 0), a private redis-server and a SQLite
//! Panorama: auth (and the generated password), the IP allow-list, every page and API,
//! escaping of hostile metric names, the Graphite API and render proxy against a fake
//! graphite-web (and a dead one), rebrow paging and deletes, monitor, errors, health, metrics,
//! and the newcomer's path: seed → analyzer → Now and Panorama.

use std::collections::HashMap;
use std::io::Write;

use base64::Engine;
use skyline::seed;

use crate::support::web::*;
use crate::support::*;

const XSS: &str = "x.<script>alert(1)</script>.\"quoted\"&<img src=x onerror=alert(2)>";

fn k(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(key)
}

#[actix_rt::test]
async fn auth_required_and_generated_password_private_and_reused() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("webauth");
    let mut cfg = web_config(&redis, &dir);
    cfg.webapp.auth_password = String::new();
    let running = skyline::app::start(&cfg).await.unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    let file = dir.0.join("webapp.password");
    let password = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert_eq!(password.len(), 32);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "password file mode {mode:o}");
    }
    let c = client();
    for path in [
        "/",
        "/api?metric=x",
        "/panorama",
        "/rebrow",
        "/metrics",
        "/nope",
        "/assets/common.js",
    ] {
        let res = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "{path} without credentials");
        let challenge = res
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(challenge.starts_with("Basic realm="), "{challenge}");
        let res = c
            .get(format!("{base}{path}"))
            .basic_auth(USER, "wrong-password")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401, "{path} with a wrong password");
        let res = c
            .get(format!("{base}{path}"))
            .basic_auth("root", &password)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401, "{path} with a wrong user");
    }
    let res = c
        .get(format!("{base}/"))
        .basic_auth(USER, &password)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    // /health needs no credentials and says nothing more than its status.
    let mut res = c.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.body().await.unwrap(), r#"{"status":"ok"}"#.as_bytes());
    running.shutdown().await;

    // The next start reuses the stored password.
    let running = skyline::app::start(&cfg).await.unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().trim(),
        password,
        "password file rewritten"
    );
    let res = c
        .get(format!("{base}/"))
        .basic_auth(USER, &password)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    running.shutdown().await;
}

#[actix_rt::test]
async fn ip_allow_list_refuses_every_route() {
    let web = Web::start(|c| c.webapp.allowed_ips = vec!["10.1.2.3".into()]).await;
    for path in [
        "/",
        "/health",
        "/api?metric=x",
        "/flux/metric_data?status",
        "/nope",
    ] {
        let (status, _, body) = web.get(path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    web.stop().await;
    let web = Web::start(|c| c.webapp.allowed_ips = vec!["127.0.0.0/8".into()]).await;
    assert_eq!(web.get("/health").await.0, 200);
    web.stop().await;
}

#[actix_rt::test]
async fn security_headers_on_every_response() {
    let web = Web::start(|_| {}).await;
    for path in [
        "/",
        "/api/now",
        "/health",
        "/nope",
        "/assets/now.js",
        "/favicon.ico",
    ] {
        let res = web
            .client
            .get(web.url(path))
            .basic_auth(USER, &web.password)
            .send()
            .await
            .unwrap();
        let h = res.headers();
        let csp = h.get("content-security-policy").unwrap().to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY");
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff");
        assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer");
    }
    for (name, ct) in [
        ("common.js", "text/javascript"),
        ("chart.js", "text/javascript"),
        ("skyline.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let (s, got, _) = web.get(&format!("/assets/{name}")).await;
        assert_eq!(s, 200);
        assert!(got.starts_with(ct), "{name}: {got}");
    }
    assert_eq!(web.get("/assets/..%2FCargo.toml").await.0, 404);
    web.stop().await;
}

#[actix_rt::test]
async fn now_page_and_api_with_hostile_names() {
    let web = Web::start(|_| {}).await;
    let mut r = web.redis();
    let end = now();
    let normal = series(end, 1440, 60, |i| 100.0 + (i % 7) as f64);
    put_metric(&mut r, "web.cpu", &normal);
    put_metric(&mut r, XSS, &normal);
    // Empty state first.
    let body = web.page("/").await;
    assert!(body.contains("No current anomalies"), "{body}");
    assert!(body.contains("analyzer is disabled"), "{body}");
    put_current(&mut r, &[("web.cpu", end, 999.5), (XSS, end, 12.0)], 2);
    for path in ["/", "/now"] {
        let body = web.page(path).await;
        assert!(body.contains("web.cpu"), "{body}");
        assert!(body.contains("999.5"));
        assert!(
            body.contains("x.&lt;script&gt;alert(1)&lt;/script&gt;.&quot;quoted&quot;&amp;&lt;img"),
            "{body}"
        );
        assert!(body.contains("/rebrow/key?k="));
        assert!(body.contains("id=\"empty\" class=\"empty\" hidden"));
    }
    let j = web.json("/api/now", 200).await;
    let names: Vec<&str> = j["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["metric"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["web.cpu", XSS]);
    assert_eq!(j["run"]["total_metrics"], 2);
    let v1 = j["version"].as_str().unwrap().to_string();
    // A new analyzer run changes the version the page polls.
    put_current(&mut r, &[("web.cpu", end + 60, 1000.0)], 2);
    let j = web.json("/api/now", 200).await;
    assert_ne!(j["version"].as_str().unwrap(), v1);
    assert_eq!(j["anomalies"].as_array().unwrap().len(), 1);
    // Garbage in the key: the page still renders, with a warning, and the error is logged.
    let _: () = redis::cmd("SET")
        .arg("analyzer.current_anomalies")
        .arg("not json")
        .query(&mut r)
        .unwrap();
    let body = web.page("/").await;
    assert!(body.contains("could not be read"), "{body}");
    web.stop().await;
}

#[actix_rt::test]
async fn api_metric_unique_metrics_and_errors() {
    let web = Web::start(|_| {}).await;
    let mut r = web.redis();
    let pts = series(now(), 1440, 60, |i| i as f64 * 0.5);
    put_metric(&mut r, "a.b", &pts);
    put_metric(&mut r, "x", &pts[..4]);
    put_metric(&mut r, "metrics.x", &pts[..3]);
    put_metric(&mut r, XSS, &pts[..2]);
    for name in ["a.b", "metrics.a.b"] {
        let j = web.json(&format!("/api?metric={name}"), 200).await;
        let res = j["results"].as_array().unwrap();
        assert_eq!(res.len(), 1440, "{name}");
        assert_eq!(res[1][0].as_i64().unwrap(), pts[1].0);
        assert_eq!(res[1][1].as_f64().unwrap(), 0.5);
    }
    // `metrics.x` is both the key of metric `x` and the base name of key
    // `metrics.metrics.x`: the key wins (Skyline's order); the full key reaches the other.
    let j = web.json("/api?metric=metrics.x", 200).await;
    assert_eq!(j["results"].as_array().unwrap().len(), 4);
    let j = web.json("/api?metric=metrics.metrics.x", 200).await;
    assert_eq!(j["results"].as_array().unwrap().len(), 3);
    let j = web
        .json(&format!("/api?metric={}", templates_q(XSS)), 200)
        .await;
    assert_eq!(j["results"].as_array().unwrap().len(), 2);
    // Gzipped for clients that ask (browsers do), plain otherwise; the same JSON either way.
    let mut plain_body = Vec::new();
    for enc in ["identity", "gzip"] {
        let mut res = web
            .client
            .get(web.url("/api?metric=a.b"))
            .basic_auth(USER, &web.password)
            .insert_header(("Accept-Encoding", enc))
            .no_decompress()
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers().get("vary").unwrap(), "Accept-Encoding");
        let body = res.body().limit(1 << 24).await.unwrap().to_vec();
        if enc == "gzip" {
            assert_eq!(res.headers().get("content-encoding").unwrap(), "gzip");
            let mut out = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
                .unwrap();
            assert_eq!(out, plain_body);
        } else {
            assert!(res.headers().get("content-encoding").is_none());
            plain_body = body;
        }
    }
    // Same answer twice (the second from the cache), and after a change, the new data.
    let a = web.get("/api?metric=a.b").await.2;
    assert_eq!(a, web.get("/api?metric=a.b").await.2);
    put_metric(&mut r, "a.b", &pts[..10]);
    let j = web.json("/api?metric=a.b", 200).await;
    assert_eq!(j["results"].as_array().unwrap().len(), 10);

    let j = web.json("/api?metric=no.such.metric", 404).await;
    assert_eq!(j["code"], 404);
    assert!(web.json("/api?metric=", 400).await["message"]
        .as_str()
        .unwrap()
        .contains("metric"));
    web.json("/api", 400).await;
    // A key that is not a series is a 500 with nothing internal in the body.
    let _: () = redis::cmd("SET")
        .arg("metrics.broken")
        .arg("\u{1}\u{2}")
        .query(&mut r)
        .unwrap();
    let j = web.json("/api?metric=broken", 500).await;
    assert_eq!(j["message"], "internal error");

    for path in ["/api/unique_metrics", "/api?unique_metrics"] {
        let j = web.json(path, 200).await;
        let m: Vec<&str> = j["data"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            m.contains(&"metrics.a.b") && m.contains(&"metrics.metrics.x"),
            "{m:?}"
        );
    }
    let j = web
        .json(
            "/api/unique_metrics?filter_namespace=a&remove_full_namespace_prefix=true",
            200,
        )
        .await;
    assert_eq!(j["data"]["metrics"], serde_json::json!(["a.b"]));
    web.stop().await;
}

fn templates_q(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn seed_panorama(web: &Web) -> i64 {
    let t = now() - 3600;
    let rows = vec![
        anomaly(
            "stats.web01.cpu",
            t - 7200,
            95.5,
            "analyzer",
            &["grubbs", "ks_test"],
        ),
        anomaly("stats.web01.mem", t - 3600, 70.0, "analyzer", &["grubbs"]),
        anomaly("stats.web02.cpu", t - 1800, 99.0, "mirage", &["ks_test"]),
        anomaly(
            "statsd.other",
            t - 900,
            1.0,
            "analyzer",
            &["histogram_bins"],
        ),
        anomaly(XSS, t, 3.0, "analyzer", &["grubbs"]),
        anomaly("stats.web01.cpu", t + 60, 97.0, "analyzer", &["grubbs"]),
    ];
    insert_anomalies(&web.pool(), &rows);
    t
}

fn metrics_of(j: &serde_json::Value) -> Vec<String> {
    j["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metric"].as_str().unwrap().to_string())
        .collect()
}

#[actix_rt::test]
async fn api_anomalies_every_filter() {
    let web = Web::start(|_| {}).await;
    let t = seed_panorama(&web);
    let j = web.json("/api/anomalies", 200).await;
    assert_eq!(j["total"], 6);
    assert_eq!(metrics_of(&j)[0], "stats.web01.cpu", "newest first");
    let cases: Vec<(String, Vec<&str>)> = vec![
        (
            "metric=stats.web01.cpu".into(),
            vec!["stats.web01.cpu", "stats.web01.cpu"],
        ),
        (
            "metric=metrics.stats.web01.mem".into(),
            vec!["stats.web01.mem"],
        ),
        (
            "metric_like=stats.%25.cpu&order=ASC".into(),
            vec!["stats.web01.cpu", "stats.web02.cpu", "stats.web01.cpu"],
        ),
        ("metric_like=*web02*".into(), vec!["stats.web02.cpu"]),
        (
            "namespace=stats".into(),
            vec![
                "stats.web01.cpu",
                "stats.web02.cpu",
                "stats.web01.mem",
                "stats.web01.cpu",
            ],
        ),
        (
            "namespace=stats.web01&limit=1".into(),
            vec!["stats.web01.cpu"],
        ),
        (
            format!("from_timestamp={}&until_timestamp={}", t - 2000, t - 1),
            vec!["statsd.other", "stats.web02.cpu"],
        ),
        ("app=mirage".into(), vec!["stats.web02.cpu"]),
        (
            "source=graphite&host=web-test-host&limit=2".into(),
            vec!["stats.web01.cpu", XSS],
        ),
        (
            "algorithm=ks_test".into(),
            vec!["stats.web02.cpu", "stats.web01.cpu"],
        ),
        (
            "app=all&metric=&algorithm=histogram_bins".into(),
            vec!["statsd.other"],
        ),
        ("host=nobody".into(), vec![]),
    ];
    for (q, want) in cases {
        let j = web.json(&format!("/api/anomalies?{q}"), 200).await;
        assert_eq!(metrics_of(&j), want, "{q}");
    }
    let j = web
        .json("/api/anomalies?count_by_metric=true&namespace=stats", 200)
        .await;
    assert_eq!(j["count_by_metric"], true);
    assert_eq!(j["results"][0]["metric"], "stats.web01.cpu");
    assert_eq!(j["results"][0]["count"], 2);
    let row = &web.json("/api/anomalies?app=mirage", 200).await["results"][0];
    assert_eq!(row["datapoint"], 99.0);
    assert_eq!(row["triggered_algorithms"], serde_json::json!(["ks_test"]));
    assert_eq!(row["full_duration"], 86_400);
    for bad in [
        "nope=1",
        "limit=0",
        "limit=x",
        "order=up",
        "from_timestamp=whenever",
        "count_by_metric=maybe",
        "from=200&until=100",
    ] {
        let j = web.json(&format!("/api/anomalies?{bad}"), 400).await;
        assert_eq!(j["code"], 400, "{bad}");
    }
    web.stop().await;
    let web = Web::start(|c| c.panorama.enabled = false).await;
    web.json("/api/anomalies", 503).await;
    let body = web.page("/panorama").await;
    assert!(body.contains("Panorama is disabled"));
    web.stop().await;
}

#[actix_rt::test]
async fn panorama_page_filters_count_mode_and_escaping() {
    let web = Web::start(|_| {}).await;
    let t = seed_panorama(&web);
    let body = web.page("/panorama").await;
    assert!(body.contains("Latest anomalies"), "{body}");
    assert!(body.contains("stats.web02.cpu"));
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        body.contains("<option value=\"mirage\">mirage</option>"),
        "{body}"
    );
    assert!(body.contains("data-from=\""));
    let body = web
        .page(&format!(
            "/panorama?app=mirage&from_timestamp={}&limit=5",
            t - 7300
        ))
        .await;
    assert!(
        body.contains("<option value=\"mirage\" selected>"),
        "{body}"
    );
    assert!(body.contains("stats.web02.cpu") && !body.contains("stats.web01.mem"));
    let body = web.page("/panorama?count_by_metric=true").await;
    assert!(body.contains("Anomaly counts by metric"), "{body}");
    assert!(body.contains("limit=2&amp;order=DESC"), "{body}");
    // A hostile search term is echoed escaped; a bad parameter is a 400 page.
    let body = web
        .page(&format!(
            "/panorama?metric_like={}",
            templates_q("<script>alert(9)</script>")
        ))
        .await;
    assert!(
        body.contains("value=\"&lt;script&gt;alert(9)&lt;/script&gt;\""),
        "{body}"
    );
    let (s, ct, body) = web
        .get(&format!("/panorama?limit={}", templates_q("<b>x</b>")))
        .await;
    assert_eq!(s, 400);
    assert!(ct.starts_with("text/html"));
    assert!(
        body.contains("limit: a number") && !body.contains("<b>x</b>"),
        "{body}"
    );
    let (s, _, body) = web.get("/panorama?evil=%3Cscript%3E").await;
    assert_eq!(s, 400);
    assert!(
        body.contains("&quot;evil&quot;") && !body.contains("<script>"),
        "{body}"
    );
    web.stop().await;
}

fn graphite_data(end: i64) -> HashMap<String, Vec<(i64, Option<f64>)>> {
    let mut m = HashMap::new();
    m.insert(
        "test.series".to_string(),
        (0..60)
            .map(|i| {
                let t = end - 3600 + i * 60;
                (t, (i % 10 != 3).then_some(i as f64 * 1.5))
            })
            .collect(),
    );
    m.insert(
        "odd:name+with%chars/x".to_string(),
        vec![(end - 60, Some(7.0))],
    );
    m
}

#[actix_rt::test]
async fn graphite_api_and_render_proxy() {
    let end = now() / 60 * 60;
    let fake = FakeGraphite::start(graphite_data(end));
    let url = fake.url();
    let web = Web::start(move |c| c.graphite.url = format!("{url}/")).await;
    let (from, until) = (end - 3600, end);
    let j = web
        .json(
            &format!(
                "/api?graphite_metric=test.series&from_timestamp={from}&until_timestamp={until}"
            ),
            200,
        )
        .await;
    let res = j["results"].as_array().unwrap();
    assert_eq!(res.len(), 54, "nulls dropped");
    assert_eq!(
        res[0],
        serde_json::json!([end - 3600, 0.0]),
        "[ts, value] order"
    );
    assert!(res.iter().all(|p| p[0].is_i64()), "integer timestamps");
    assert_eq!(j["target"], "test.series");
    let last = fake.requests().last().unwrap().clone();
    assert!(
        last.contains(&format!(
            "target=test.series&from={from}&until={until}&format=json"
        )),
        "{last}"
    );
    // Names with characters Skyline mangled arrive intact.
    let j = web
        .json(
            &format!(
                "/api?graphite_metric={}&from_timestamp={from}&until_timestamp={until}",
                templates_q("odd:name+with%chars/x")
            ),
            200,
        )
        .await;
    assert_eq!(j["results"], serde_json::json!([[end - 60, 7.0]]));
    let j = web
        .json(
            &format!(
                "/api?graphite_metric=unknown.metric&from_timestamp={from}&until_timestamp={until}"
            ),
            200,
        )
        .await;
    assert_eq!(j["results"], serde_json::json!([]));
    // graphite_metric wins over metric, as in Skyline.
    let j = web
        .json(
            &format!("/api?metric=x&graphite_metric=test.series&from_timestamp={from}&until_timestamp={until}"),
            200,
        )
        .await;
    assert_eq!(j["target"], "test.series");
    // Bad parameters: 400 naming them.
    let j = web.json("/api?graphite_metric=test.series", 400).await;
    let msg = j["message"].as_str().unwrap();
    assert!(
        msg.contains("from_timestamp") && msg.contains("until_timestamp"),
        "{msg}"
    );
    let j = web
        .json(
            &format!("/api?graphite_metric=&from_timestamp={from}&until_timestamp={until}"),
            400,
        )
        .await;
    assert!(j["message"].as_str().unwrap().contains("graphite_metric"));
    web.json(
        &format!("/api?graphite_metric=t&from_timestamp=yesterday&until_timestamp={until}"),
        400,
    )
    .await;
    web.json(
        &format!("/api?graphite_metric=t&from_timestamp={until}&until_timestamp={from}"),
        400,
    )
    .await;
    web.json(
        &format!("/api?graphite_metric=bad(x&from_timestamp={from}&until_timestamp={until}"),
        400,
    )
    .await;

    // The render proxy passes anything through, status and content type kept.
    let (s, ct, body) = web
        .get(&format!(
            "/render?target=test.series&from={from}&until={until}&format=json"
        ))
        .await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v[0]["datapoints"][3],
        serde_json::json!([null, end - 3600 + 180])
    );
    let (s, ct, body) = web.get("/render/?target=test.series&format=png").await;
    assert_eq!((s, ct.as_str()), (200, "image/png"));
    assert!(body.contains("PNG"));
    let (s, _, _) = web.get("/render?target=bad(x").await;
    assert_eq!(s, 400);
    let res = web
        .client
        .get(web.url("/render?target=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        401,
        "the proxy needs credentials too"
    );
    web.stop().await;

    // Graphite down: 502, not Skyline's 200 with an empty string.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let web = Web::start(move |c| c.graphite.url = dead_url).await;
    let j = web
        .json(
            &format!(
                "/api?graphite_metric=test.series&from_timestamp={from}&until_timestamp={until}"
            ),
            502,
        )
        .await;
    assert_eq!(j["code"], 502);
    assert_eq!(web.get("/render?target=test.series").await.0, 502);
    web.stop().await;

    // No Graphite configured: 503 saying so.
    let web = Web::start(|_| {}).await;
    let j = web
        .json(
            &format!(
                "/api?graphite_metric=test.series&from_timestamp={from}&until_timestamp={until}"
            ),
            503,
        )
        .await;
    assert!(j["message"].as_str().unwrap().contains("[graphite] url"));
    assert_eq!(web.get("/render?target=x").await.0, 503);
    web.stop().await;
}

#[actix_rt::test]
async fn rebrow_browses_by_type_pages_with_scan_and_escapes() {
    let web = Web::start(|_| {}).await;
    let mut r = web.redis();
    for i in 0..120 {
        let _: () = redis::cmd("SET")
            .arg(format!("page.key.{i:03}"))
            .arg(i)
            .query(&mut r)
            .unwrap();
    }
    let pts = series(now(), 50, 60, |i| i as f64);
    put_metric(&mut r, "web.cpu", &pts);
    put_metric(&mut r, XSS, &pts);
    let _: () = redis::pipe()
        .cmd("RPUSH")
        .arg("t.list")
        .arg("a")
        .arg("<b>")
        .cmd("SADD")
        .arg("t.set")
        .arg("m1")
        .arg("m2")
        .cmd("ZADD")
        .arg("t.zset")
        .arg(1.5)
        .arg("z1")
        .cmd("HSET")
        .arg("t.hash")
        .arg("f")
        .arg("v<i>")
        .cmd("SET")
        .arg("t.json")
        .arg(r#"{"a":[1,2]}"#)
        .cmd("SET")
        .arg("t.bin")
        .arg(b"\xff\x00\x01".as_slice())
        .cmd("XADD")
        .arg("t.stream")
        .arg("*")
        .arg("k")
        .arg("v")
        .cmd("SET")
        .arg("t.ttl")
        .arg("x")
        .arg("EX")
        .arg(100)
        .query(&mut r)
        .unwrap();

    let body = web.page("/rebrow").await;
    assert!(body.contains("redis_version"), "INFO shown");
    let body = web.page("/rebrow?pattern=metrics.*").await;
    assert!(body.contains("&lt;script&gt;"), "hostile key escaped");
    // Paging: follow the SCAN cursor until the end; every key once.
    let mut seen = std::collections::BTreeSet::new();
    let mut path = "/rebrow?pattern=page.key.*&count=50".to_string();
    let mut pages = 0;
    loop {
        pages += 1;
        let body = web.page(&path).await;
        for part in body
            .split("<td class=\"mono metric-cell\"><a href=\"/rebrow/key?k=")
            .skip(1)
        {
            let name = part.split('>').nth(1).unwrap().split('<').next().unwrap();
            seen.insert(name.to_string());
        }
        match body.split("class=\"button\" href=\"").nth(1) {
            Some(rest) => {
                path = rest
                    .split('"')
                    .next()
                    .unwrap()
                    .replace("&amp;", "&")
                    .replace("&#x3D;", "=")
            }
            None => break,
        }
        assert!(pages < 50);
    }
    assert!(pages >= 2, "paged");
    assert_eq!(seen.len(), 120, "{seen:?}");
    let body = web.page("/rebrow?pattern=t.*&type=hash").await;
    assert!(body.contains("t.hash") && !body.contains("t.list"));
    assert_eq!(web.get("/rebrow?type=nonsense").await.0, 400);

    // Each type.
    let body = web
        .page(&format!("/rebrow/key?k={}", k("metrics.web.cpu")))
        .await;
    assert!(
        body.contains("Skyline msgpack series") && body.contains("50 datapoints"),
        "{body}"
    );
    assert!(body.contains("id=\"series-data\""));
    let body = web
        .page(&format!("/rebrow/key?k={}", k(&format!("metrics.{XSS}"))))
        .await;
    assert!(body.contains("Skyline msgpack series"));
    assert!(
        body.contains("\\u003cscript\\u003e"),
        "JSON config escaped for HTML"
    );
    let body = web.page(&format!("/rebrow/key?k={}", k("t.list"))).await;
    assert!(body.contains("<li>&lt;b&gt;</li>"), "{body}");
    let body = web.page(&format!("/rebrow/key?k={}", k("t.set"))).await;
    assert!(body.contains("<li>m1</li>") && body.contains("<li>m2</li>"));
    let body = web.page(&format!("/rebrow/key?k={}", k("t.zset"))).await;
    assert!(body.contains("z1") && body.contains("1.5"));
    let body = web.page(&format!("/rebrow/key?k={}", k("t.hash"))).await;
    assert!(body.contains("v&lt;i&gt;"));
    let body = web.page(&format!("/rebrow/key?k={}", k("t.json"))).await;
    assert!(body.contains("&quot;a&quot;: ["), "pretty JSON: {body}");
    let body = web.page(&format!("/rebrow/key?k={}", k("t.bin"))).await;
    assert!(body.contains("hex dump") && body.contains("ff 00 01"));
    let body = web.page(&format!("/rebrow/key?k={}", k("t.stream"))).await;
    assert!(body.contains("k v"));
    let body = web.page(&format!("/rebrow/key?k={}", k("t.ttl"))).await;
    assert!(
        body.contains("1m 40s") || body.contains("1m 39s"),
        "TTL shown"
    );
    assert!(!body.contains("delete-form"), "read-only: no delete form");
    assert_eq!(
        web.get(&format!("/rebrow/key?k={}", k("no.such"))).await.0,
        404
    );
    assert_eq!(web.get("/rebrow/key?k=!!").await.0, 400);

    // Read-only: delete refused.
    let res = web
        .client
        .post(web.url("/rebrow/key/delete"))
        .basic_auth(USER, &web.password)
        .send_form(&[("k", k("t.list")), ("csrf", "x".into())])
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let n: i64 = redis::cmd("EXISTS").arg("t.list").query(&mut r).unwrap();
    assert_eq!(n, 1);
    web.stop().await;
}

#[actix_rt::test]
async fn rebrow_delete_needs_writable_post_and_csrf() {
    let web = Web::start(|c| c.webapp.rebrow_writable = true).await;
    let mut r = web.redis();
    let _: () = redis::cmd("SET")
        .arg("doomed")
        .arg("1")
        .query(&mut r)
        .unwrap();
    let body = web.page(&format!("/rebrow/key?k={}", k("doomed"))).await;
    assert!(body.contains("id=\"delete-form\""));
    let csrf = body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let post = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut req = web
            .client
            .post(web.url("/rebrow/key/delete"))
            .basic_auth(USER, &web.password);
        if let Some(o) = origin {
            req = req.insert_header(("Origin", o));
        }
        async move { req.send_form(&form).await.unwrap() }
    };
    let exists =
        |r: &mut redis::Connection| -> i64 { redis::cmd("EXISTS").arg("doomed").query(r).unwrap() };
    // GET is not allowed; no token, a wrong token, or another site's form: 403.
    assert_eq!(web.get("/rebrow/key/delete").await.0, 405);
    assert_eq!(
        post(vec![("k", k("doomed"))], None).await.status().as_u16(),
        400
    );
    assert_eq!(
        post(vec![("k", k("doomed")), ("csrf", "0".repeat(64))], None)
            .await
            .status()
            .as_u16(),
        403
    );
    assert_eq!(
        post(
            vec![("k", k("doomed")), ("csrf", csrf.clone())],
            Some("https://evil.example")
        )
        .await
        .status()
        .as_u16(),
        403
    );
    assert_eq!(exists(&mut r), 1);
    let res = post(vec![("k", k("doomed")), ("csrf", csrf.clone())], None).await;
    assert_eq!(res.status().as_u16(), 303);
    let location = res
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(exists(&mut r), 0);
    let body = web.page(&location).await;
    assert!(body.contains("Deleted key <code>doomed</code>"), "{body}");
    web.stop().await;
}

#[actix_rt::test]
async fn docs_monitor_errors_and_metrics() {
    // /errors reads the log ring, which the logger fills.
    let _ = skyline::telemetry::init("error", "");
    let web = Web::start(|_| {}).await;
    for (path, want) in [
        ("/docs", "Skyline in Rust"),
        ("/docs/readme", "A five-minute tour"),
        ("/docs/webapp", "Getting in"),
        ("/docs/architecture", "Actor map"),
        ("/docs/configuration", "[webapp]"),
    ] {
        let body = web.page(path).await;
        assert!(body.contains(want), "{path}");
        assert!(body.contains("class=\"markdown\""));
    }
    assert_eq!(web.get("/docs/nope").await.0, 404);
    assert_eq!(
        web.get("/docs/screenshots/..%2F..%2FCargo.toml").await.0,
        404
    );

    // Requests with secrets in their parameters, then the monitor.
    for _ in 0..25 {
        web.get("/api?metric=nothing.here").await;
    }
    web.get("/api?metric=nothing.here&password=hunter2&key=sekrit-key")
        .await;
    let body = web.page("/monitor").await;
    assert!(body.contains("GET /api"), "{body}");
    assert!(body.contains("Hits per hour"));
    assert!(
        !body.contains("hunter2") && !body.contains("sekrit-key"),
        "secrets redacted"
    );

    log::error!("webapp test: metric <b>bold</b> failed");
    let body = web.page("/errors").await;
    assert!(
        body.contains("webapp test: metric &lt;b&gt;bold&lt;/b&gt; failed"),
        "{body}"
    );

    let (s, ct, text) = web.get("/metrics").await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("text/plain"), "{ct}");
    for name in [
        "skyline_http_requests_total",
        "skyline_http_auth_failures_total",
        "skyline_http_responses_client_error_total",
        "skyline_horizon_datapoints_received_total",
        "skyline_analyzer_runs_total",
        "skyline_flux_datapoints_accepted_total",
        "skyline_panorama_inserted_total",
        "skyline_panorama_db_available",
    ] {
        assert!(text.contains(&format!("\n{name} ")), "{name} missing");
    }
    let line = text
        .lines()
        .find(|l| l.starts_with("skyline_http_requests_total "))
        .unwrap();
    assert!(
        line.split(' ').nth(1).unwrap().parse::<u64>().unwrap() >= 26,
        "{line}"
    );
    web.stop().await;
}

/// The newcomer's path: seed → the analyzer → the Now page, /api/now and Panorama.
#[actix_rt::test]
async fn seeded_anomaly_reaches_now_and_panorama() {
    let web = Web::start(|c| {
        c.analyzer.enabled = true;
        c.analyzer.run_every_secs = 1;
    })
    .await;
    let pickle = web.running.as_ref().unwrap().pickle_addr.unwrap();
    let end = now();
    for batch in seed::series(end).chunks(100) {
        let items: Vec<(String, (i64, f64))> = batch
            .iter()
            .map(|&(t, v)| (seed::SEED_METRIC.to_string(), (t, v)))
            .collect();
        let mut s = std::net::TcpStream::connect(pickle).unwrap();
        s.write_all(&seed::frame(&items).unwrap()).unwrap();
    }
    let mut found = false;
    for _ in 0..120 {
        let j = web.json("/api/now", 200).await;
        if j["anomalies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["metric"] == seed::SEED_METRIC)
        {
            found = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(found, "the seeded metric never reached /api/now");
    let body = web.page("/").await;
    assert!(body.contains(seed::SEED_METRIC));
    let j = web
        .json("/api?metric=metrics.horizon.test.pickle", 200)
        .await;
    assert_eq!(j["results"].as_array().unwrap().len(), seed::SEED_POINTS);
    let mut in_panorama = false;
    for _ in 0..120 {
        let j = web
            .json("/api/anomalies?metric=horizon.test.pickle", 200)
            .await;
        if j["total"] == 1 {
            in_panorama = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(in_panorama, "the seeded anomaly never reached Panorama");
    let body = web.page("/panorama").await;
    assert!(body.contains(seed::SEED_METRIC));
    web.stop().await;
}

#[actix_rt::test]
async fn fixed_timezone_reaches_every_page() {
    let web = Web::start(|c| c.webapp.timezone = "Europe/Paris".into()).await;
    for path in ["/", "/panorama", "/rebrow", "/monitor", "/errors", "/docs"] {
        let body = web.page(path).await;
        assert!(body.contains(r#""timezone":"Europe/Paris""#), "{path}");
    }
    web.stop().await;
}
