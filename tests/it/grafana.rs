//! What Grafana and Prometheus read from the webapp: graphite-web's events API over Panorama
//! (Grafana annotations from its built-in Graphite data source), the `skyline_anomaly` gauge on
//! `/metrics`; plus the small things a new user met (404 navigation, Panorama's metric column).

use crate::support::web::*;
use crate::support::*;

/// graphite-web's documented `GET /events/get_data` answer (graphite-web docs/events.rst), the
/// shape Grafana's Graphite data source parses.
const GRAPHITE_WEB_EVENTS: &str = r#"[
  {"when": 1392046352, "tags": ["deploy"], "data": "deploy of master branch happened at Fri Jan 3 22:34:41 UTC 2014", "id": 2, "what": "Event - deploy"},
  {"id": 3, "what": "Event - deploy", "when": 1392046661, "tags": ["deploy"], "data": "deploy of master branch happened at Fri Jan 3 22:34:41 UTC 2014"}
]"#;

fn shape(v: &serde_json::Value) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let t = match v {
                serde_json::Value::Number(_) => "number",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Array(a) if a.iter().all(|x| x.is_string()) => "strings",
                _ => "other",
            };
            (k.clone(), t)
        })
        .collect();
    out.sort();
    out
}

#[actix_rt::test]
async fn events_api_serves_exactly_the_panorama_rows_of_the_window_in_graphite_webs_format() {
    let web = Web::start(|_| {}).await;
    let t0 = now() - 10 * 3600;
    insert_anomalies(
        &web.pool(),
        &[
            anomaly("before.window", t0 - 100, 1.0, "analyzer", &["grubbs"]),
            anomaly("web.a", t0, 2.0, "analyzer", &["grubbs", "ks_test"]),
            anomaly("web.b", t0 + 60, 3.0, "mirage", &["ks_test"]),
            anomaly("web.a", t0 + 3600, 4.5, "boundary", &["greater_than"]),
            anomaly("after.window", t0 + 7300, 5.0, "analyzer", &["grubbs"]),
        ],
    );
    let (from, until) = (t0, t0 + 7200);
    let path = format!("/events/get_data?from={from}&until={until}");
    let events = web.json(&path, 200).await;
    let events = events.as_array().unwrap();
    // Exactly Panorama's rows of the window, oldest first.
    let rows = skyline::db::queries::search(
        &web.pool(),
        &skyline::db::queries::AnomalyQuery {
            from_ts: Some(from),
            until_ts: Some(until),
            limit: 1000,
            order: skyline::db::queries::Order::Asc,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(rows.len(), 3);
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, rows.iter().map(|r| r.id).collect::<Vec<_>>());
    let whens: Vec<f64> = events.iter().map(|e| e["when"].as_f64().unwrap()).collect();
    assert_eq!(whens, vec![t0 as f64, (t0 + 60) as f64, (t0 + 3600) as f64]);
    assert_eq!(
        events[0]["tags"],
        serde_json::json!(["analyzer", "web.a", "grubbs", "ks_test"])
    );
    assert_eq!(events[0]["what"], "anomaly: web.a");
    assert!(
        events[2]["data"].as_str().unwrap().contains("4.5"),
        "{:?}",
        events[2]
    );
    // graphite-web's shape: the same keys with the same JSON types as its documented answer.
    let documented: serde_json::Value = serde_json::from_str(GRAPHITE_WEB_EVENTS).unwrap();
    for e in events {
        assert_eq!(shape(e), shape(&documented[0]), "{e}");
    }

    // Tags: graphite-web's lazy union by default, intersection on request.
    let got = |v: serde_json::Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let by_tag = got(web.json(&format!("{path}&tags=mirage"), 200).await);
    assert_eq!(by_tag, vec![rows[1].id]);
    let union = got(web
        .json(&format!("{path}&tags=mirage%20boundary"), 200)
        .await);
    assert_eq!(union, vec![rows[1].id, rows[2].id]);
    let inter = got(web
        .json(&format!("{path}&tags=web.a%20grubbs&set=intersection"), 200)
        .await);
    assert_eq!(inter, vec![rows[0].id]);
    // Grafana's relative times; a bad time is a 400 naming the parameter.
    let all = got(web.json("/events/get_data?from=-1d&until=now", 200).await);
    assert_eq!(all.len(), 5);
    let (s, _, body) = web.get("/events/get_data?from=soon").await;
    assert_eq!(s, 400);
    assert!(body.contains("from"), "{body}");
    // Behind the login like every other route.
    let res = web.client.get(web.url(&path)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
    web.stop().await;
}

#[actix_rt::test]
async fn metrics_exposes_current_anomalies_as_a_bounded_gauge() {
    let web = Web::start(|c| c.webapp.anomaly_gauge_max = 2).await;
    let mut conn = web.redis();
    let (_, _, text) = web.get("/metrics").await;
    assert!(text.contains("\nskyline_anomaly_current 0\n"), "{text}");
    assert!(text.contains("\nskyline_anomaly_gauge_up 1\n"), "{text}");
    assert!(!text.contains("skyline_anomaly{"), "{text}");
    let t = now() - 30;
    put_current(
        &mut conn,
        &[
            ("stats.a", t, 1.0),
            ("stats.b", t, 2.0),
            ("stats.c", t, 3.0),
        ],
        10,
    );
    let _: () = redis::cmd("SET")
        .arg("boundary.current_anomalies")
        .arg(
            serde_json::json!([{"metric": r#"up{job="x"}"#, "timestamp": t, "datapoint": 0.0,
                "triggered_algorithms": ["less_than"], "algorithms_run": ["less_than"]}])
            .to_string(),
        )
        .query(&mut conn)
        .unwrap();
    let (_, _, text) = web.get("/metrics").await;
    assert!(
        text.contains("\nskyline_anomaly{metric=\"stats.a\",stage=\"analyzer\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("\nskyline_anomaly{metric=\"stats.b\",stage=\"analyzer\"} 1\n"),
        "{text}"
    );
    // Capped at 2 series (sorted by metric), all 4 counted.
    assert!(!text.contains("metric=\"stats.c\""), "{text}");
    assert!(text.contains("\nskyline_anomaly_current 4\n"), "{text}");
    if let Err(problems) = skyline::telemetry::metrics::check_exposition(&text) {
        panic!("invalid exposition: {problems:#?}");
    }
    // Raised cap: the labelled metric's quotes are escaped and promtool-valid.
    web.stop().await;
    let web = Web::start(|c| c.webapp.anomaly_gauge_max = 10).await;
    let mut conn = web.redis();
    let _: () = redis::cmd("SET")
        .arg("boundary.current_anomalies")
        .arg(
            serde_json::json!([{"metric": r#"up{job="x"}"#, "timestamp": t, "datapoint": 0.0}])
                .to_string(),
        )
        .query(&mut conn)
        .unwrap();
    let (_, _, text) = web.get("/metrics").await;
    assert!(
        text.contains(r#"skyline_anomaly{metric="up{job=\"x\"}",stage="boundary"} 1"#),
        "{text}"
    );
    if let Ok(mut child) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
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
        assert!(
            !said.contains("error while linting") && !said.contains("parsing error"),
            "promtool check metrics: {said}"
        );
    }
    web.stop().await;
}

#[actix_rt::test]
async fn not_found_page_has_the_navigation_and_panorama_names_break_between_parts() {
    let web = Web::start(|_| {}).await;
    let (s, ct, body) = web.get("/no/such/page").await;
    assert_eq!(s, 404);
    assert!(ct.starts_with("text/html"), "{ct}");
    for link in [
        "class=\"mainnav\"",
        "href=\"/panorama\"",
        "href=\"/rebrow\"",
        "href=\"/monitor\"",
        "href=\"/errors\"",
        "href=\"/docs\"",
    ] {
        assert!(body.contains(link), "{link}: {body}");
    }
    insert_anomalies(
        &web.pool(),
        &[anomaly(
            "carbon.agents.graphiteserver01-a.cache.queues",
            now() - 60,
            1.0,
            "analyzer",
            &["grubbs"],
        )],
    );
    let page = web.page("/panorama?from_timestamp=-1h").await;
    assert!(
        page.contains("carbon.<wbr>agents.<wbr>graphiteserver01-a.<wbr>cache.<wbr>queues"),
        "{page}"
    );
    let css = web.get("/assets/skyline.css").await.2;
    let rule = css.lines().find(|l| l.starts_with(".metric-cell")).unwrap();
    assert!(
        !rule.contains("anywhere") && !rule.contains("break-all"),
        "{rule}"
    );
    web.stop().await;
}

/// The shipped Grafana dashboard is valid JSON and names only metrics `/metrics` exposes (a
/// renamed counter would leave a panel silently empty).
#[actix_rt::test]
async fn grafana_dashboard_names_only_exposed_metrics() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/conf/grafana/skyline-health.json"
    ))
    .unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dash["uid"], "skyline-health");
    let web = Web::start(|_| {}).await;
    let (_, _, metrics) = web.get("/metrics").await;
    let exposed: std::collections::HashSet<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let re = regex::Regex::new(r"skyline_[a-z_]+").unwrap();
    let mut named = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            for m in re.find_iter(expr) {
                let name = m.as_str();
                // Regex selectors (`skyline_horizon_dropped_.*`) name a family prefix.
                if expr[m.end()..].starts_with(".*") {
                    assert!(
                        exposed.iter().any(|e| e.starts_with(name)),
                        "{name}.* matches nothing"
                    );
                } else {
                    assert!(exposed.contains(name), "{name} is not on /metrics");
                }
                named += 1;
            }
        }
    }
    assert!(named > 20, "{named}");
    web.stop().await;
}
