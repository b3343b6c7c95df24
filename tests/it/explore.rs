//! Graphs an SRE can explore, in headless Chromium (the CDP client of `browser.rs`): the range
//! picker offers only the ranges the data covers and sets the window; a real mouse drag zooms,
//! a double-click zooms out; the anomaly's time has a vertical marker; time labels carry the
//! date and the UTC offset; units come from the name; the log toggle appears for a spike;
//! the stream detector's scores are shaded; the Ionosphere page's profile and match graphs have
//! the same controls; Panorama asks Graphite for the picked window with
//! a `maxDataPoints` that keeps the resolution, and falls back to Redis when Graphite fails.
//! Zero console errors throughout (the one expected failed Graphite request aside).

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::browser::{launch, shaped, Cdp};
use crate::support::web::*;
use crate::support::*;

async fn span(cdp: &mut Cdp, sel: &str) -> i64 {
    let v = cdp
        .eval(&format!(
            "(() => {{ const c = document.querySelector('{sel}'); \
             return Number(c.getAttribute('data-x1')) - Number(c.getAttribute('data-x0')); }})()"
        ))
        .await;
    v.as_i64().unwrap_or(-1)
}

async fn wait_for(cdp: &mut Cdp, expr: &str, what: &str) -> Value {
    for _ in 0..80 {
        let v = cdp.eval(expr).await;
        if v != json!(null) && v != json!(false) && v != json!(0) {
            return v;
        }
        cdp.drain(100).await;
    }
    panic!("timed out waiting for {what}: {expr}");
}

/// A real left-button drag across the plot of `sel`, from fraction `a` to `b` of its width.
async fn drag(cdp: &mut Cdp, sel: &str, a: f64, b: f64) {
    let r = cdp
        .eval(&format!(
            "(() => {{ const h = document.querySelector('{sel} svg .hit'); h.scrollIntoView({{block: 'center'}}); \
             const r = h.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; }})()"
        ))
        .await;
    let (left, top, w, h) = (
        r[0].as_f64().unwrap(),
        r[1].as_f64().unwrap(),
        r[2].as_f64().unwrap(),
        r[3].as_f64().unwrap(),
    );
    let y = top + h / 2.0;
    let (x0, x1) = (left + w * a, left + w * b);
    let ev = |kind: &str, x: f64, buttons: u8| json!({"type": kind, "x": x, "y": y, "button": "left", "buttons": buttons, "clickCount": 1});
    cdp.call("Input.dispatchMouseEvent", ev("mouseMoved", x0, 0))
        .await;
    cdp.call("Input.dispatchMouseEvent", ev("mousePressed", x0, 1))
        .await;
    for i in 1..=5 {
        let x = x0 + (x1 - x0) * i as f64 / 5.0;
        cdp.call("Input.dispatchMouseEvent", ev("mouseMoved", x, 1))
            .await;
    }
    cdp.call("Input.dispatchMouseEvent", ev("mouseReleased", x1, 0))
        .await;
    cdp.drain(200).await;
}

/// A screenshot of the page from a little above the card holding `sel` down to its end (or
/// at most `max_height` px), so the explored graph is in the picture.
async fn card_screenshot(cdp: &mut Cdp, sel: &str, path: &std::path::Path, max_height: f64) {
    let r = cdp
        .eval(&format!(
            "(() => {{ const c = document.querySelector('{sel}').closest('.card'); \
             const r = c.getBoundingClientRect(); return [r.top + window.scrollY, r.height]; }})()"
        ))
        .await;
    let (top, h) = (r[0].as_f64().unwrap(), r[1].as_f64().unwrap());
    let y = (top - 24.0).max(0.0);
    let res = cdp
        .call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": y, "width": 720, "height": (h + 48.0).min(max_height), "scale": 1}}),
        )
        .await;
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        res["data"].as_str().unwrap(),
    )
    .unwrap();
    assert!(png.starts_with(b"\x89PNG"));
    std::fs::write(path, png).unwrap();
}

#[actix_rt::test]
async fn graphs_zoom_pick_ranges_mark_the_anomaly_and_fall_back_to_redis() {
    let Some(chrome) = launch() else { return };
    let end = now() / 60 * 60;
    // Now: a day of a latency in seconds with a spike at the end (the anomaly).
    let latency = shaped(end, 1440, 0.25, 0.05, 30.0, 7);
    // Panorama: eight days of requests in Graphite, one anomaly two days ago, and the last
    // day in Redis.
    let long = shaped(end, 8 * 1440, 500.0, 120.0, 0.0, 8);
    let mut gpts: Vec<(i64, Option<f64>)> = long.iter().map(|&(t, v)| (t, Some(v))).collect();
    let at = gpts.len() - 2 * 1440;
    let anomaly_value = 4321.5;
    gpts[at].1 = Some(anomaly_value);
    let anomaly_ts = gpts[at].0;
    let graphite = FakeGraphite::start(HashMap::from([("prod.api.requests".to_string(), gpts)]));
    let gurl = graphite.url();
    let web = Web::start(move |c| {
        c.graphite.url = gurl;
    })
    .await;
    let mut r = web.redis();
    put_metric(&mut r, "prod.web01.latency_seconds", &latency);
    put_metric(&mut r, "prod.api.requests", &long[long.len() - 1440..]);
    let last = *latency.last().unwrap();
    put_current(&mut r, &[("prod.web01.latency_seconds", last.0, last.1)], 2);
    insert_anomalies(
        &web.pool(),
        &[anomaly(
            "prod.api.requests",
            anomaly_ts,
            anomaly_value,
            "analyzer",
            &["grubbs", "ks_test"],
        )],
    );

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
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{USER}:{}", web.password),
    );
    cdp.call(
        "Network.setExtraHTTPHeaders",
        json!({"headers": {"Authorization": format!("Basic {auth}")}}),
    )
    .await;

    // --- Now.
    cdp.open(&web.url("/")).await;
    let chart = "#cards .card .chart";
    wait_for(
        &mut cdp,
        &format!("document.querySelectorAll('{chart} svg').length"),
        "the Now graph",
    )
    .await;
    let ranges = cdp
        .eval(&format!(
            "Array.from(document.querySelectorAll('{chart} .chart-ranges button')).map(b => b.textContent)"
        ))
        .await;
    assert_eq!(
        ranges,
        json!(["1 h", "6 h", "24 h", "all"]),
        "7 d offered for a day of data"
    );
    assert_eq!(
        cdp.eval(&format!(
            "document.querySelectorAll('{chart} .anomaly-vline').length"
        ))
        .await,
        json!(1),
        "a vertical marker at the anomaly time"
    );
    let dates = cdp
        .eval(&format!(
            "Array.from(document.querySelectorAll('{chart} .x-date')).map(t => t.textContent)"
        ))
        .await;
    let dates = dates.as_array().unwrap();
    assert!(!dates.is_empty(), "the date is written under the time axis");
    for d in dates {
        let d = d.as_str().unwrap();
        assert!(
            d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-',
            "ISO date label: {d}"
        );
    }
    let zone = cdp
        .eval(&format!(
            "document.querySelector('{chart} .zone').textContent"
        ))
        .await;
    let zone = zone.as_str().unwrap();
    assert!(
        zone.starts_with("UTC+") || zone.starts_with("UTC-"),
        "{zone}"
    );
    let ticks = cdp
        .eval(&format!(
            "document.querySelectorAll('{chart} .x-tick').length"
        ))
        .await;
    assert!(ticks.as_u64().unwrap() >= 6, "enough time ticks: {ticks}");
    let ylabels = cdp
        .eval(&format!(
            "Array.from(document.querySelectorAll('{chart} .axis-text')).map(t => t.textContent).join('|')"
        ))
        .await;
    assert!(
        ylabels.as_str().unwrap().contains(" s|"),
        "unit from the name: {ylabels}"
    );
    assert!(
        cdp.eval(&format!(
            "document.querySelectorAll('{chart} .score-cell').length"
        ))
        .await
        .as_u64()
        .unwrap()
            > 0,
        "the stream detector's scores are drawn"
    );

    // Range picker: 1 h.
    cdp.eval(&format!(
        "document.querySelector('{chart} button[data-range=\"3600\"]').click()"
    ))
    .await;
    assert_eq!(span(&mut cdp, chart).await, 3600);
    assert_eq!(
        cdp.eval(&format!("document.querySelector('{chart} button[data-range=\"3600\"]').getAttribute('aria-pressed')")).await,
        json!("true")
    );
    // Drag across 30 % to 60 % of the hour: about 18 minutes.
    drag(&mut cdp, chart, 0.3, 0.6).await;
    let zoomed = span(&mut cdp, chart).await;
    assert!((900..=1260).contains(&zoomed), "zoomed window {zoomed} s");
    assert_eq!(
        cdp.eval(&format!(
            "document.querySelectorAll('{chart} .reset-zoom').length"
        ))
        .await,
        json!(1)
    );
    // Double-click zooms out to the picked range.
    let r = cdp
        .eval(&format!(
            "(() => {{ const h = document.querySelector('{chart} svg .hit'); const r = h.getBoundingClientRect(); \
             return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ))
        .await;
    let (x, y) = (r[0].as_f64().unwrap(), r[1].as_f64().unwrap());
    for (kind, count) in [
        ("mousePressed", 1),
        ("mouseReleased", 1),
        ("mousePressed", 2),
        ("mouseReleased", 2),
    ] {
        cdp.call(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": count}),
        )
        .await;
    }
    cdp.drain(200).await;
    assert_eq!(span(&mut cdp, chart).await, 3600, "double-click zooms out");
    // "all" shows the whole day.
    cdp.eval(&format!(
        "document.querySelector('{chart} button[data-range=\"all\"]').click()"
    ))
    .await;
    assert!(span(&mut cdp, chart).await >= 86_000);
    // The spike flattens the rest: the log toggle is offered and works.
    cdp.eval(&format!(
        "document.querySelector('{chart} .log-toggle').click()"
    ))
    .await;
    assert_eq!(
        cdp.eval(&format!(
            "document.querySelector('{chart} .log-toggle').getAttribute('aria-pressed')"
        ))
        .await,
        json!("true")
    );
    cdp.assert_clean("Now graph exploration");
    cdp.screenshot(&out.join("now-explore.png"), 700).await;

    // --- Panorama: Graphite, 6 h around the anomaly, maxDataPoints keeping 10 s resolution.
    let pano = "#graphs .card .chart";
    cdp.open(&web.url("/panorama?metric=prod.api.requests"))
        .await;
    wait_for(
        &mut cdp,
        &format!("document.querySelectorAll('{pano} svg .series').length"),
        "the Panorama graph",
    )
    .await;
    let reqs = graphite.requests();
    assert!(
        reqs.iter()
            .any(|l| l.contains("target=prod.api.requests") && l.contains("maxDataPoints=2160")),
        "{reqs:?}"
    );
    assert_eq!(
        cdp.eval(&format!(
            "document.querySelectorAll('{pano} .anomaly-dot').length"
        ))
        .await,
        json!(1),
        "the anomalous point is among Graphite's points"
    );
    let note = cdp
        .eval("document.querySelector('#graphs .source-note').textContent")
        .await;
    assert!(
        note.as_str()
            .unwrap()
            .starts_with("Graphite, one point per 1 min"),
        "{note}"
    );
    let s = span(&mut cdp, pano).await;
    assert!((21_000..=21_700).contains(&s), "6 h window: {s}");
    // Pick 7 d: Graphite is asked again for that window.
    cdp.eval(&format!(
        "document.querySelector('{pano} button[data-range=\"604800\"]').click()"
    ))
    .await;
    wait_for(
        &mut cdp,
        &format!("document.querySelector('{pano} button[data-range=\"604800\"]') && document.querySelector('{pano} button[data-range=\"604800\"]').getAttribute('aria-pressed') === 'true'"),
        "the 7 d graph",
    )
    .await;
    assert!(graphite
        .requests()
        .iter()
        .any(|l| l.contains("maxDataPoints=60480")));
    let s = span(&mut cdp, pano).await;
    assert!(s >= 6 * 86_400, "7 d window: {s}");
    drag(&mut cdp, pano, 0.7, 0.9).await;
    let zoomed = span(&mut cdp, pano).await;
    assert!(zoomed < s / 3, "zoomed the Panorama graph: {zoomed}");
    cdp.assert_clean("Panorama graph exploration");
    card_screenshot(&mut cdp, pano, &out.join("panorama-explore.png"), 600.0).await;

    // --- Ionosphere: a profile trained on the Now metric's day (its spike at the end) and a
    // match; the same controls on its graphs.
    {
        use skyline::db::ionosphere as io;
        let pool = web.pool();
        let metric = "prod.web01.latency_seconds";
        let metric_id = skyline::db::queries::resolve_id(
            &pool,
            &mut skyline::db::IdCache::new(),
            skyline::db::Lookup::Metric,
            metric,
        )
        .unwrap();
        let values: Vec<f64> = latency.iter().map(|p| p.1).collect();
        let f = skyline::ionosphere::features::extract(&values).unwrap();
        let fp = io::create_profile(
            &pool,
            &io::NewProfile {
                metric_id,
                full_duration: 86_400,
                anomaly_timestamp: last.0,
                calc_time: 0.002,
                features_count: 210,
                features_sum: f.sum(),
                features: f.stored(),
                series: latency.clone(),
                minmax: skyline::ionosphere::matching::minmax_of(&values),
                parent_id: 0,
                generation: 0,
                label: Some("deploy spike".into()),
                user: "admin".into(),
            },
        )
        .unwrap();
        io::store_training(
            &pool,
            &mut skyline::db::IdCache::new(),
            &io::TrainingData {
                metric: metric.into(),
                app: "analyzer".into(),
                metric_timestamp: last.0,
                full_duration: 86_400,
                added_at: last.0,
                series: latency.clone(),
            },
        )
        .unwrap();
        io::record_match(
            &pool,
            &io::NewMatch {
                fp_id: fp,
                metric_timestamp: last.0,
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
                now: last.0,
            },
        )
        .unwrap();
    }
    cdp.open(&web.url("/ionosphere?metric=prod.web01.latency_seconds"))
        .await;
    let fp_chart = ".fp-card .chart";
    wait_for(
        &mut cdp,
        "document.querySelectorAll('.fp-card .chart svg, .match-card .chart svg').length === 3",
        "the Ionosphere graphs",
    )
    .await;
    for sel in [
        fp_chart,
        ".match-card .profile-chart",
        ".match-card .anomaly-chart",
    ] {
        let ranges = cdp
            .eval(&format!(
                "Array.from(document.querySelectorAll('{sel} .chart-ranges button')).map(b => b.textContent)"
            ))
            .await;
        assert_eq!(ranges, json!(["1 h", "6 h", "24 h", "all"]), "{sel}");
        assert_eq!(
            cdp.eval(&format!(
                "document.querySelectorAll('{sel} .anomaly-vline').length"
            ))
            .await,
            json!(1),
            "{sel}: a vertical marker at the anomaly time"
        );
        assert!(
            cdp.eval(&format!(
                "document.querySelectorAll('{sel} .x-date').length"
            ))
            .await
            .as_u64()
            .unwrap()
                > 0,
            "{sel}: dated time labels"
        );
        assert_eq!(
            cdp.eval(&format!(
                "document.querySelectorAll('{sel} .log-toggle').length"
            ))
            .await,
            json!(1),
            "{sel}: the spike offers the log toggle"
        );
    }
    let zone = cdp
        .eval(&format!(
            "document.querySelector('{fp_chart} .zone').textContent"
        ))
        .await;
    assert!(zone.as_str().unwrap().starts_with("UTC"), "{zone}");
    // Log scale on the whole day (the spike flattens it), then 1 h and a zoom: it stays on.
    cdp.eval(&format!(
        "document.querySelector('{fp_chart} .log-toggle').click()"
    ))
    .await;
    assert_eq!(
        cdp.eval(&format!(
            "document.querySelector('{fp_chart} .log-toggle').getAttribute('aria-pressed')"
        ))
        .await,
        json!("true")
    );
    cdp.eval(&format!(
        "document.querySelector('{fp_chart} button[data-range=\"3600\"]').click()"
    ))
    .await;
    assert_eq!(span(&mut cdp, fp_chart).await, 3600);
    drag(&mut cdp, fp_chart, 0.2, 0.5).await;
    let zoomed = span(&mut cdp, fp_chart).await;
    assert!((900..=1260).contains(&zoomed), "zoomed window {zoomed} s");
    assert_eq!(
        cdp.eval(&format!(
            "document.querySelector('{fp_chart} .log-toggle').getAttribute('aria-pressed')"
        ))
        .await,
        json!("true")
    );
    // 6 h around the trained anomaly, log scale still on, for the screenshot.
    cdp.eval(&format!(
        "document.querySelector('{fp_chart} button[data-range=\"21600\"]').click()"
    ))
    .await;
    assert_eq!(span(&mut cdp, fp_chart).await, 21_600);
    cdp.assert_clean("Ionosphere graph exploration");
    card_screenshot(
        &mut cdp,
        fp_chart,
        &out.join("ionosphere-explore.png"),
        600.0,
    )
    .await;

    // --- Graphite down: the graph comes from Redis, and says so.
    drop(graphite);
    std::thread::sleep(std::time::Duration::from_millis(100));
    cdp.open(&web.url("/panorama?metric=prod.api.requests"))
        .await;
    let note = wait_for(
        &mut cdp,
        "(() => { const n = document.querySelector('#graphs .source-note').textContent; return n.includes('Redis') ? n : null; })()",
        "the Redis fallback",
    )
    .await;
    assert!(note.as_str().unwrap().contains("Graphite failed"), "{note}");
    assert_eq!(
        cdp.eval(&format!(
            "document.querySelectorAll('{pano} svg .series').length"
        ))
        .await,
        json!(1)
    );
    let unexpected: Vec<String> = cdp
        .problems()
        .into_iter()
        .filter(|p| !(p.contains("graphite_metric") || p.contains("502")))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert_eq!(
        cdp.eval("document.getElementById('js-error').hidden").await,
        json!(true)
    );
    web.stop().await;
}
