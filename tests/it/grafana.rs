//! What Grafana and Prometheus read from the webapp: graphite-web's events API over Panorama
//! (Grafana annotations from its built-in Graphite data source; compared with answers recorded
//! from a real graphite-web, `tests/fixtures/graphite-web-events.json`), the `skyline_anomaly` gauge on
//! `/metrics`; plus the small things a new user met (404 navigation, Panorama's metric column).

use crate::support::web::*;
use crate::support::*;

/// A real graphite-web's answers (1.1.8, Debian's package), recorded by
/// `scripts/record-graphite-web-events.sh`: five events posted through its own API, then the
/// answers of `GET /events/get_data` to a few queries.
const RECORDED: &str = include_str!("../fixtures/graphite-web-events.json");

fn json_type(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        serde_json::Value::Number(_) => "float",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(a) if a.iter().all(|x| x.is_string()) => "strings",
        _ => "other",
    }
}

/// The daemon answers every recorded query as graphite-web did: same status, content type,
/// events in the same order with the same keys, JSON types and values (`id` is each daemon's
/// own row id: compared through the order the events were created in).
#[actix_rt::test]
async fn events_api_answers_as_a_recorded_real_graphite_web_does() {
    let recorded: serde_json::Value = serde_json::from_str(RECORDED).unwrap();
    let posted = recorded["events_posted"].as_array().unwrap();
    let web = Web::start(|_| {}).await;
    let values = [1.0, 2.0, 3.0, 4.5, 5.0];
    let rows: Vec<_> = posted
        .iter()
        .zip(values)
        .map(|(e, v)| {
            let tags: Vec<&str> = e["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect();
            anomaly(tags[1], e["when"].as_i64().unwrap(), v, tags[0], &tags[2..])
        })
        .collect();
    // One at a time, so that creation order is id order, as in graphite-web.
    for r in &rows {
        insert_anomalies(&web.pool(), std::slice::from_ref(r));
    }
    let all = skyline::db::queries::search(
        &web.pool(),
        &skyline::db::queries::AnomalyQuery {
            limit: 1000,
            order: skyline::db::queries::Order::Asc,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(all.len(), 5);
    // Our id → creation index (graphite-web's ids are 1..=5 in creation order).
    let index_of = |id: i64| all.iter().position(|r| r.id == id).unwrap() as i64 + 1;
    let responses = recorded["responses"].as_array().unwrap();
    assert!(responses.len() >= 8);
    for r in responses {
        let query = r["query"].as_str().unwrap();
        let (status, ct, body) = web.get(&format!("/events/get_data?{query}")).await;
        assert_eq!(
            status as u64,
            r["status"].as_u64().unwrap(),
            "{query}: {body}"
        );
        assert_eq!(ct, r["content_type"].as_str().unwrap(), "{query}");
        let ours: serde_json::Value = serde_json::from_str(&body).unwrap();
        let ours = ours.as_array().unwrap();
        let theirs = r["body"].as_array().unwrap();
        assert_eq!(
            ours.iter()
                .map(|e| index_of(e["id"].as_i64().unwrap()))
                .collect::<Vec<_>>(),
            theirs
                .iter()
                .map(|e| e["id"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            "{query}: {body}"
        );
        for (o, t) in ours.iter().zip(theirs) {
            let (o, t) = (o.as_object().unwrap(), t.as_object().unwrap());
            assert_eq!(
                o.keys().collect::<Vec<_>>(),
                t.keys().collect::<Vec<_>>(),
                "{query}"
            );
            for (k, tv) in t {
                assert_eq!(json_type(&o[k]), json_type(tv), "{query}: {k}");
                if k != "id" {
                    assert_eq!(&o[k], tv, "{query}: {k}");
                }
            }
        }
    }
    // Exactly Panorama's rows of the window, oldest first.
    let (from, until) = (1_765_000_000, 1_765_007_200);
    let window: Vec<i64> = all
        .iter()
        .filter(|r| (from..=until).contains(&r.anomaly_timestamp))
        .map(|r| r.id)
        .collect();
    let events = web
        .json(&format!("/events/get_data?from={from}&until={until}"), 200)
        .await;
    let ids: Vec<i64> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, window);

    // Grafana's relative times; a bad time is a 400 naming the parameter (graphite-web
    // answers 500 with a traceback there).
    insert_anomalies(
        &web.pool(),
        &[anomaly(
            "recent.one",
            now() - 3600,
            1.0,
            "analyzer",
            &["grubbs"],
        )],
    );
    let recent = web.json("/events/get_data?from=-1d&until=now", 200).await;
    let recent = recent.as_array().unwrap();
    assert_eq!(recent.len(), 1, "{recent:?}");
    assert_eq!(recent[0]["what"], "anomaly: recent.one");
    let (s, _, body) = web.get("/events/get_data?from=soon").await;
    assert_eq!(s, 400);
    assert!(body.contains("from"), "{body}");
    // Behind the login like every other route.
    let path = format!("/events/get_data?from={from}&until={until}");
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
