//! Ionosphere end to end through the daemon: the Analyzer finds an anomaly, Panorama records
//! it with its series, an operator trains a profile on it (`POST /api/ionosphere/train`);
//! the same shape again later (values +0.3 %) is matched — one `ionosphere_matched` row, no
//! anomaly row, no alert — and a clearly different anomaly of the same metric is recorded
//! and alerted. On SQLite always, on MariaDB / PostgreSQL when their URLs are set.
//!
//! Also on SQLite: a Mirage anomaly is kept with Mirage's 7-day series, trained on, and the
//! same shape later is matched by Ionosphere instead of being recorded and alerted by Mirage;
//! learning (a later similar anomaly becomes a generation-1 profile that then matches, and
//! disabling the origin disables it); layers created through the API matching exactly at a
//! `D` boundary (`>` is `>=`).

use std::time::Duration;

use skyline::db::queries;

use crate::support::sinks::HttpSink;
use crate::support::web::{put_metric, PASSWORD, USER};
use crate::support::*;

const METRIC: &str = "ionosphere.test.requests";

/// A day at 60 s: a daily wave with noise, the last three points raised by `spike`.
fn day(end: i64, scale: f64, spike: f64) -> Vec<(i64, f64)> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    (0..1440)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
            let wave = (i as f64 / 1440.0 * std::f64::consts::TAU).sin();
            let mut v = (1000.0 + 100.0 * wave + 40.0 * noise).round();
            if i >= 1437 {
                v += spike;
            }
            (end - (1439 - i) * 60, v * scale)
        })
        .collect()
}

/// A different shape: flat, then a ramp, the last three points far below.
fn other(end: i64) -> Vec<(i64, f64)> {
    (0..1440)
        .map(|i| {
            let v = if i < 1000 {
                50.0
            } else {
                50.0 + (i - 1000) as f64 * 3.0
            };
            let v = if i >= 1437 { 9000.0 } else { v };
            (end - (1439 - i) * 60, v)
        })
        .collect()
}

/// What a test daemon adds to the base configuration.
#[derive(Default)]
struct Extra {
    /// Lines of `[analyzer]`.
    analyzer: &'static str,
    /// Lines of `[panorama]`.
    panorama: &'static str,
    /// `[mirage]` lines (`enabled = false` when empty).
    mirage: &'static str,
    /// Lines of `[ionosphere]`.
    ionosphere: &'static str,
    /// Further top-level tables (`[[alerts]]`, `[[ionosphere.learn]]`).
    tables: &'static str,
}

struct Daemon {
    running: Option<skyline::app::Running>,
    base: String,
    client: awc::Client,
    hook: HttpSink,
    _redis: TestRedis,
    _dir: TempDir,
    conn: redis::Connection,
}

impl Daemon {
    async fn start(database_url: Option<String>) -> Daemon {
        Daemon::start_with(database_url, Extra::default()).await
    }

    async fn start_with(database_url: Option<String>, extra: Extra) -> Daemon {
        let redis = TestRedis::start().unwrap();
        let dir = TempDir::new("ionosphere");
        let hook = HttpSink::start(0);
        let text = format!(
            r#"
[analyzer]
run_every_secs = 1
combine = "any"
{}

[panorama]
expiry_secs = 60
{}

[mirage]
{}

[ionosphere]
{}
{}

[[alerts]]
pattern = "ionosphere.test.*"
alerter = "smtp"
expiration_secs = 1

[[alerts]]
pattern = "ionosphere.test.*"
alerter = "webhook"
expiration_secs = 1

[alerters.smtp]
server = "127.0.0.1:9"
from = "skyline@example.org"
to = ["ops@example.org"]

[alerters.webhook]
url = "{}"
"#,
            extra.analyzer,
            extra.panorama,
            if extra.mirage.is_empty() {
                "enabled = false"
            } else {
                extra.mirage
            },
            extra.ionosphere,
            extra.tables,
            hook.url("/hook")
        );
        let mut cfg = skyline::config::from_str_with_env(&text, &[]).unwrap();
        let base = config(&redis, &dir);
        cfg.redis = base.redis;
        cfg.horizon = base.horizon;
        cfg.data = base.data;
        cfg.webapp = base.webapp;
        cfg.webapp.auth_password = PASSWORD.into();
        cfg.thunder.enabled = false;
        cfg.flux.carbon_pickle_addr = String::new();
        cfg.panorama.database_url = database_url
            .unwrap_or_else(|| format!("sqlite://{}", dir.0.join("panorama.sqlite").display()));
        let running = skyline::app::start(&cfg).await.unwrap();
        let base = format!("http://{}", running.http_addr.unwrap());
        let conn = redis_conn(&redis);
        Daemon {
            running: Some(running),
            base,
            client: crate::support::web::client(),
            hook,
            _redis: redis,
            _dir: dir,
            conn,
        }
    }

    fn pool(&self) -> skyline::db::Pool {
        self.running.as_ref().unwrap().db.clone().unwrap()
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let mut res = self
            .client
            .post(format!("{}{path}", self.base))
            .basic_auth(USER, PASSWORD)
            .send_json(&body)
            .await
            .unwrap();
        let b = res.body().await.unwrap();
        (
            res.status().as_u16(),
            serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null),
        )
    }

    async fn get(&self, path: &str) -> serde_json::Value {
        let mut res = self
            .client
            .get(format!("{}{path}", self.base))
            .basic_auth(USER, PASSWORD)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "GET {path}");
        serde_json::from_slice(&res.body().await.unwrap()).unwrap()
    }

    /// The anomaly rows of METRIC at `ts`.
    fn rows_at(&self, ts: i64) -> usize {
        queries::latest(&self.pool(), 1000)
            .unwrap()
            .iter()
            .filter(|r| r.metric == METRIC && r.anomaly_timestamp == ts)
            .count()
    }

    /// Webhook alerts for METRIC at `ts`.
    fn alerts_at(&self, ts: i64) -> usize {
        self.alerts_of(METRIC, ts)
    }

    /// Webhook alerts for `metric` at `ts`.
    fn alerts_of(&self, metric: &str, ts: i64) -> usize {
        self.hook
            .requests()
            .iter()
            .filter(|r| {
                let j = r.json();
                j.to_string().contains(metric) && j.to_string().contains(&format!("{ts}"))
            })
            .count()
    }

    /// The id of the anomaly row of `metric` at `ts`, once recorded.
    async fn recorded(&self, metric: &str, ts: i64) -> Option<(i64, String, i64)> {
        let pool = self.pool();
        eventually(30, || {
            queries::latest(&pool, 100)
                .ok()?
                .into_iter()
                .find(|r| r.metric == metric && r.anomaly_timestamp == ts)
                .map(|r| (r.id, r.app.clone(), r.full_duration))
        })
        .await
    }

    async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown().await;
        }
    }
}

async fn train_match_and_alert(database_url: Option<String>) {
    let mut d = Daemon::start(database_url).await;
    // 1. An anomaly: recorded (with its series) and alerted.
    let end1 = now() - 240;
    put_metric(&mut d.conn, METRIC, &day(end1, 1.0, 3000.0));
    let pool = d.pool();
    let id = eventually(30, || {
        queries::latest(&pool, 100)
            .ok()?
            .into_iter()
            .find(|r| r.metric == METRIC && r.anomaly_timestamp == end1)
            .map(|r| r.id)
    })
    .await
    .expect("the anomaly is recorded");
    // Panorama records one anomaly per metric per window (`expiry_secs`, at least 60 s from
    // recording): step 4's must come after it.
    let window_ends = std::time::Instant::now() + Duration::from_secs(62);
    assert!(
        eventually(20, || (d.alerts_at(end1) > 0).then_some(()))
            .await
            .is_some(),
        "the untrained anomaly is alerted"
    );
    // Its series is kept (Panorama, best effort, right after the anomaly).
    let kept = eventually(20, || {
        skyline::db::ionosphere::training_series(&pool, METRIC, end1)
            .ok()
            .flatten()
    })
    .await
    .expect("the series is kept for training");
    assert_eq!(kept.len(), 1440);

    // 2. Train: 201, then idempotent (200, same profile); bad requests refused.
    let body = serde_json::json!({"anomaly_id": id, "label": "daily peak", "learn": false});
    let (status, fp) = d.post("/api/ionosphere/train", body.clone()).await;
    assert_eq!(status, 201, "{fp}");
    assert_eq!(fp["metric"], METRIC);
    assert_eq!(fp["features_count"], 210);
    assert_eq!(fp["full_duration"], 86_400);
    assert!(fp["features_sum"].as_f64().unwrap().is_finite());
    let fp_id = fp["fp_id"].as_i64().unwrap();
    let (status, again) = d.post("/api/ionosphere/train", body).await;
    assert_eq!((status, again["fp_id"].as_i64()), (200, Some(fp_id)));
    let (status, _) = d
        .post(
            "/api/ionosphere/train",
            serde_json::json!({"anomaly_id": id + 10_000}),
        )
        .await;
    assert_eq!(status, 404);
    let profiles = d
        .get(&format!("/api/ionosphere/profiles?metric={METRIC}"))
        .await;
    let list = profiles["profiles"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"].as_i64(), Some(fp_id));
    assert_eq!(list[0]["enabled"], true);
    assert_eq!(list[0]["label"], "daily peak");
    assert_eq!(list[0]["user"], USER);
    assert_eq!(list[0]["generation"], 0);
    // The matcher learns the metric is trained (its refresh runs every 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;

    // 3. The same shape later, values +0.3 %: matched, not recorded, not alerted.
    let end2 = now() - 120;
    put_metric(&mut d.conn, METRIC, &day(end2, 1.003, 3000.0));
    let matched = eventually(30, || {
        let m = skyline::db::ionosphere::matches(&pool, &[fp_id as i32]).ok()?;
        let at: Vec<_> = m
            .into_iter()
            .filter(|m| m.metric_timestamp == end2)
            .collect();
        (!at.is_empty()).then_some(at)
    })
    .await
    .expect("the same shape is matched");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let m = skyline::db::ionosphere::matches(&pool, &[fp_id as i32]).unwrap();
    assert_eq!(
        m.iter().filter(|m| m.metric_timestamp == end2).count(),
        1,
        "one ionosphere_matched row, however many runs saw it: {matched:?}"
    );
    assert_eq!(d.rows_at(end2), 0, "a matched anomaly is not recorded");
    assert_eq!(d.alerts_at(end2), 0, "a matched anomaly is not alerted");
    let api = d
        .get(&format!("/api/ionosphere/matches?metric={METRIC}"))
        .await;
    assert!(api["matches"]
        .as_array()
        .unwrap()
        .iter()
        .any(
            |x| x["metric_timestamp"].as_i64() == Some(end2) && x["fp_id"].as_i64() == Some(fp_id)
        ));
    let profiles = d
        .get(&format!("/api/ionosphere/profiles?metric={METRIC}"))
        .await;
    assert!(profiles["profiles"][0]["matched_count"].as_i64().unwrap() >= 1);

    // 4. A clearly different anomaly of the same metric: recorded and alerted.
    tokio::time::sleep_until(window_ends.into()).await;
    let end3 = now();
    put_metric(&mut d.conn, METRIC, &other(end3));
    assert!(
        eventually(30, || (d.rows_at(end3) > 0).then_some(()))
            .await
            .is_some(),
        "an unmatched anomaly is recorded"
    );
    assert!(
        eventually(20, || (d.alerts_at(end3) > 0).then_some(()))
            .await
            .is_some(),
        "an unmatched anomaly is alerted"
    );
    let m = skyline::db::ionosphere::matches(&pool, &[fp_id as i32]).unwrap();
    assert!(m.iter().all(|m| m.metric_timestamp != end3));

    // 5. Disabled, the profile no longer matches: the same shape is alerted again.
    let (status, r) = d
        .post(
            "/api/ionosphere/enabled",
            serde_json::json!({"fp_id": fp_id, "enabled": false}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let end4 = now();
    put_metric(&mut d.conn, METRIC, &day(end4, 1.003, 3000.0));
    assert!(
        eventually(30, || (d.alerts_at(end4) > 0).then_some(()))
            .await
            .is_some(),
        "with its only profile disabled the shape is alerted"
    );
    d.stop().await;
}

#[actix_rt::test]
async fn train_match_and_alert_on_sqlite() {
    train_match_and_alert(None).await;
}

/// A scratch database on the server named by `var`, dropped afterwards.
fn server_db(var: &str) -> Option<(String, String, String)> {
    let Ok(base) = std::env::var(var) else {
        eprintln!("{var} not set: this backend is not exercised here");
        return None;
    };
    let name = format!("skyline_iono_{}_{}", std::process::id(), now() % 100_000);
    let (head, _) = base.rsplit_once('/').expect("URL ends with /database");
    let url = format!("{head}/{name}");
    skyline::db::execute_batch(&base, &format!("CREATE DATABASE {name}")).unwrap();
    Some((base, name, url))
}

fn drop_db(admin: &str, name: &str) {
    let force = if admin.starts_with("postgres") {
        " WITH (FORCE)"
    } else {
        ""
    };
    let _ = skyline::db::execute_batch(admin, &format!("DROP DATABASE IF EXISTS {name}{force}"));
}

#[actix_rt::test]
async fn train_match_and_alert_on_mariadb() {
    let Some((admin, name, url)) = server_db("SKYLINE_TEST_MYSQL_URL") else {
        return;
    };
    train_match_and_alert(Some(url)).await;
    drop_db(&admin, &name);
}

#[actix_rt::test]
async fn train_match_and_alert_on_postgres() {
    let Some((admin, name, url)) = server_db("SKYLINE_TEST_POSTGRES_URL") else {
        return;
    };
    train_match_and_alert(Some(url)).await;
    drop_db(&admin, &name);
}

/// State changes refuse what a cross-site form could send.
#[actix_rt::test]
async fn writes_need_json_and_the_same_site() {
    let d = Daemon::start(None).await;
    let url = format!("{}/api/ionosphere/train", d.base);
    // A form post (what a cross-site page can send without CORS).
    let res = d
        .client
        .post(&url)
        .basic_auth(USER, PASSWORD)
        .content_type("application/x-www-form-urlencoded")
        .send_body("anomaly_id=1")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let res = d
        .client
        .post(&url)
        .basic_auth(USER, PASSWORD)
        .content_type("text/plain")
        .send_body(r#"{"anomaly_id": 1}"#)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    // JSON, but the browser says it comes from another site.
    let res = d
        .client
        .post(&url)
        .basic_auth(USER, PASSWORD)
        .insert_header(("Origin", "https://evil.example"))
        .send_json(&serde_json::json!({"anomaly_id": 1}))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    // Same site JSON, no such anomaly: 404; GET on the write route: 405.
    let (status, _) = d
        .post(
            "/api/ionosphere/train",
            serde_json::json!({"anomaly_id": 1}),
        )
        .await;
    assert_eq!(status, 404);
    let res = d
        .client
        .get(&url)
        .basic_auth(USER, PASSWORD)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 405);
    // Learning is decided per metric (see learn_outside_a_learning_namespace_is_refused):
    // an unknown anomaly is 404 whatever it asks.
    let (status, _) = d
        .post(
            "/api/ionosphere/train",
            serde_json::json!({"anomaly_id": 1, "learn": true}),
        )
        .await;
    assert_eq!(status, 404);
    d.stop().await;
}

/// 409 when the series is no longer kept, 422 when it is too short to train on.
#[actix_rt::test]
async fn train_refuses_expired_and_short_series() {
    let d = Daemon::start(None).await;
    let pool = d.pool();
    let ts = now() - 30;
    let a = crate::support::web::anomaly(METRIC, ts, 5.0, "analyzer", &["grubbs"]);
    crate::support::web::insert_anomalies(&pool, std::slice::from_ref(&a));
    let id = queries::latest(&pool, 10).unwrap()[0].id;
    let (status, body) = d
        .post(
            "/api/ionosphere/train",
            serde_json::json!({"anomaly_id": id}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    // Kept, but only 2 hours of the day: Skyline's validity guard refuses it.
    let td = skyline::db::ionosphere::TrainingData {
        metric: METRIC.into(),
        app: "analyzer".into(),
        metric_timestamp: ts,
        full_duration: 86_400,
        added_at: ts,
        series: (0..120)
            .map(|i| (ts - (119 - i) * 60, 1.0 + i as f64))
            .collect(),
    };
    skyline::db::ionosphere::store_training(&pool, &mut skyline::db::IdCache::new(), &td).unwrap();
    let (status, body) = d
        .post(
            "/api/ionosphere/train",
            serde_json::json!({"anomaly_id": id}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("insufficient data"),
        "{body}"
    );
    d.stop().await;
}

/// The `/api/now` entries carry the train action, so the cards `now.js` rebuilds keep it.
fn now_entry_trainable(now: &serde_json::Value, metric: &str) -> Option<bool> {
    now["anomalies"]
        .as_array()?
        .iter()
        .find(|a| a["metric"] == metric)
        .and_then(|a| a["trainable"].as_bool())
}

const MIRAGE_METRIC: &str = "ionosphere.mirage.level";

/// Mirage's test shape (tests/it/mirage.rs): ≈100 for days, ≈1000 for the last 15 minutes.
fn mirage_recent(end: i64) -> Vec<(i64, f64)> {
    (0..1440)
        .map(|i| {
            let n = ((i * 7919) % 13) as f64 - 6.0;
            let v = if i >= 1440 - 15 {
                1000.0 + 3.0 * n
            } else {
                100.0 + n
            };
            (end - (1439 - i as i64) * 60, v)
        })
        .collect()
}

/// Seven days at 600 s (the built-in history), ≈100.
fn mirage_days(end: i64) -> Vec<(i64, f64)> {
    (0..1008)
        .map(|i| {
            let n = ((i * 7919) % 13) as f64 - 6.0;
            (end - (1007 - i as i64) * 600, 100.0 + n)
        })
        .collect()
}

fn put_mirage(d: &mut Daemon, end: i64) {
    put_metric(&mut d.conn, MIRAGE_METRIC, &mirage_recent(end));
    let _: () = redis::cmd("SET")
        .arg(skyline::mirage::history::history_key(MIRAGE_METRIC))
        .arg(skyline::mirage::history::encode(&mirage_days(end)))
        .query(&mut d.conn)
        .unwrap();
}

/// Spec §1.8: Mirage keeps the series it analysed with its anomaly (so it can be trained on
/// later), and hands the anomalies of trained metrics to Ionosphere, which matches the same
/// shape instead of Mirage recording and alerting it.
#[actix_rt::test]
async fn a_mirage_anomaly_is_kept_trained_on_and_then_matched() {
    // Both occurrences are 600 s apart (the history's step), so Mirage's merged series hold
    // the same values; staleness is relaxed for the older one, consensus lowered so the
    // verdicts do not depend on the wall clock (ks_test), and Panorama takes anomalies up to
    // an hour old.
    let mut d = Daemon::start_with(
        None,
        Extra {
            analyzer: "stale_period_secs = 3600\nconsensus = 1",
            panorama: "check_max_age_secs = 3600",
            mirage: "stale_secs = 3600\nconsensus = 1\nhistory_interval_secs = 86400",
            tables: r#"
[[alerts]]
pattern = "ionosphere.mirage.*"
alerter = "smtp"
expiration_secs = 1
second_order_resolution_hours = 168

[[alerts]]
pattern = "ionosphere.mirage.*"
alerter = "webhook"
expiration_secs = 1
"#,
            ..Extra::default()
        },
    )
    .await;
    let end1 = now() - 900;
    put_mirage(&mut d, end1);
    let (id, app, full_duration) = d
        .recorded(MIRAGE_METRIC, end1)
        .await
        .expect("Mirage records the anomaly");
    assert_eq!((app.as_str(), full_duration), ("mirage", 604_800));
    assert!(
        eventually(20, || (d.alerts_of(MIRAGE_METRIC, end1) > 0).then_some(()))
            .await
            .is_some(),
        "Mirage alerts the untrained anomaly"
    );
    // Mirage's 7-day series is kept with it (not the Analyzer's 24 h).
    let pool = d.pool();
    let kept = eventually(20, || {
        skyline::db::ionosphere::training_series(&pool, MIRAGE_METRIC, end1)
            .ok()
            .flatten()
    })
    .await
    .expect("Mirage's series is kept for training");
    assert!(kept.len() > 1000, "{}", kept.len());
    assert!(kept[kept.len() - 1].0 - kept[0].0 >= 604_800 - 14_400);
    let (status, fp) = d
        .post(
            "/api/ionosphere/train",
            serde_json::json!({"anomaly_id": id, "label": "new normal"}),
        )
        .await;
    assert_eq!(status, 201, "{fp}");
    assert_eq!(fp["full_duration"], 604_800);
    let fp_id = fp["fp_id"].as_i64().unwrap() as i32;
    // The matcher learns the metric is trained (its refresh runs every 5 s).
    tokio::time::sleep(Duration::from_secs(6)).await;

    // The same shape 600 s later: matched by Ionosphere at Mirage's duration.
    let end2 = end1 + 600;
    put_mirage(&mut d, end2);
    let matched = eventually(30, || {
        let m = skyline::db::ionosphere::matches(&pool, &[fp_id]).ok()?;
        m.into_iter().find(|m| m.metric_timestamp == end2)
    })
    .await
    .expect("the Mirage anomaly is matched by its profile");
    assert_eq!(matched.method, "features");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = queries::latest(&pool, 100).unwrap();
    assert!(
        !rows
            .iter()
            .any(|r| r.metric == MIRAGE_METRIC && r.anomaly_timestamp == end2),
        "a matched Mirage anomaly is not recorded"
    );
    assert_eq!(
        d.alerts_of(MIRAGE_METRIC, end2),
        0,
        "a matched Mirage anomaly is not alerted"
    );
    d.stop().await;
}

/// Spec §3.13: in a learning namespace a later anomaly close to a profile's origin (within
/// `max_percent_diff_from_origin`, not within the 1 % match) becomes a generation-1 profile
/// that matches that shape from then on; disabling the origin disables it.
#[actix_rt::test]
async fn learning_creates_a_generation_one_profile_that_matches_later() {
    let mut d = Daemon::start_with(
        None,
        Extra {
            // No min-max retry: a scaled copy of the shape would match by it.
            ionosphere: "minmax_scaling = false",
            tables: r#"
[[ionosphere.learn]]
namespace = "ionosphere.test"
valid_ts_older_than = 0
max_percent_diff_from_origin = 7.0
"#,
            ..Extra::default()
        },
    )
    .await;
    // Panorama drops anomalies older than check_max_age_secs (300) when they reach it.
    let end1 = now() - 240;
    put_metric(&mut d.conn, METRIC, &day(end1, 1.0, 3000.0));
    let (id, _, _) = d.recorded(METRIC, end1).await.expect("recorded");
    // The Now page's JSON says the anomaly can be trained (now.js rebuilds the button).
    let now_json = d.get("/api/now").await;
    assert_eq!(
        now_entry_trainable(&now_json, METRIC),
        Some(true),
        "{now_json}"
    );
    let pool = d.pool();
    eventually(20, || {
        skyline::db::ionosphere::training_series(&pool, METRIC, end1)
            .ok()
            .flatten()
    })
    .await
    .expect("kept");
    let (status, fp) = d
        .post(
            "/api/ionosphere/train",
            serde_json::json!({"anomaly_id": id, "learn": true}),
        )
        .await;
    assert_eq!(status, 201, "{fp}");
    let fp_id = fp["fp_id"].as_i64().unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;

    // +2 %: not matched (the features sum differs by more than 1 %), alerted, then learnt.
    let end2 = now() - 200;
    put_metric(&mut d.conn, METRIC, &day(end2, 1.02, 3000.0));
    assert!(
        eventually(30, || (d.alerts_at(end2) > 0).then_some(()))
            .await
            .is_some(),
        "the not-yet-learnt shape is alerted"
    );
    let learnt = eventually(30, || {
        let rows = skyline::db::ionosphere::profiles(&pool, METRIC).ok()?;
        rows.into_iter()
            .find(|p| p.generation == 1 && p.parent_id == fp_id)
    })
    .await
    .expect("a generation-1 profile is learnt");
    assert_eq!(learnt.anomaly_timestamp, end2);
    assert_eq!(learnt.label.as_deref(), Some("LEARNT"));
    assert!(learnt.enabled);

    // The same shape again: matched by the learnt profile, not alerted.
    let end3 = now() - 100;
    put_metric(&mut d.conn, METRIC, &day(end3, 1.02, 3000.0));
    eventually(30, || {
        let m = skyline::db::ionosphere::matches(&pool, &[learnt.id]).ok()?;
        m.into_iter().find(|m| m.metric_timestamp == end3)
    })
    .await
    .expect("the learnt profile matches");
    assert_eq!(d.alerts_at(end3), 0);

    // Disabling the origin disables what was learnt from it.
    let (status, r) = d
        .post(
            "/api/ionosphere/enabled",
            serde_json::json!({"fp_id": fp_id, "enabled": false}),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["changed"], serde_json::json!([fp_id, learnt.id]));
    let profiles = d
        .get(&format!("/api/ionosphere/profiles?metric={METRIC}"))
        .await;
    assert!(profiles["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["enabled"] == false));
    d.stop().await;
}

/// Learning is per namespace: `"learn": true` outside one is refused, not ignored.
#[actix_rt::test]
async fn learn_outside_a_learning_namespace_is_refused() {
    let mut d = Daemon::start(None).await;
    let end1 = now() - 120;
    put_metric(&mut d.conn, METRIC, &day(end1, 1.0, 3000.0));
    let (id, _, _) = d.recorded(METRIC, end1).await.expect("recorded");
    let (status, body) = d
        .post(
            "/api/ionosphere/train",
            serde_json::json!({"anomaly_id": id, "learn": true}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("no learning namespace"),
        "{body}"
    );
    d.stop().await;
}

/// ≈1 with a little noise, the last three points at `last` (anomalous to the Analyzer).
fn low(end: i64, last: f64) -> Vec<(i64, f64)> {
    (0..1440)
        .map(|i| {
            let v = if i >= 1437 {
                last
            } else {
                1.0 + ((i * 7919) % 13) as f64 / 1000.0
            };
            (end - (1439 - i) * 60, v)
        })
        .collect()
}

/// Spec §3.6, §3.10, Appendix B: layers created through the API; `D > 5` is `>= 5`, so a
/// last value of exactly 5 is definitely anomalous (alerted), 4.999 is not (matched by the
/// layers: an `ionosphere_layers_matched` row, no alert).
#[actix_rt::test]
async fn layers_from_the_api_match_exactly_at_a_d_boundary() {
    let mut d = Daemon::start(None).await;
    // A profile of the usual shape (the low series never match it by features).
    // Panorama drops anomalies older than check_max_age_secs (300) when they reach it.
    let end1 = now() - 240;
    put_metric(&mut d.conn, METRIC, &day(end1, 1.0, 3000.0));
    let (id, _, _) = d.recorded(METRIC, end1).await.expect("recorded");
    let pool = d.pool();
    eventually(20, || {
        skyline::db::ionosphere::training_series(&pool, METRIC, end1)
            .ok()
            .flatten()
    })
    .await
    .expect("kept");
    let (status, fp) = d
        .post(
            "/api/ionosphere/train",
            serde_json::json!({"anomaly_id": id}),
        )
        .await;
    assert_eq!(status, 201, "{fp}");
    let fp_id = fp["fp_id"].as_i64().unwrap();
    // Bad layers are refused; a form post is refused.
    let (status, _) = d
        .post(
            "/api/ionosphere/layers",
            serde_json::json!({"fp_id": fp_id, "d": {"condition": "in", "boundary": 5},
                "e": {"condition": "<", "boundary": 5, "times_in_row": 1}}),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = d
        .post(
            "/api/ionosphere/layers",
            serde_json::json!({"fp_id": 999_999, "d": {"condition": ">", "boundary": 5},
                "e": {"condition": "<", "boundary": 5, "times_in_row": 1}}),
        )
        .await;
    assert_eq!(status, 404);
    let res = d
        .client
        .post(format!("{}/api/ionosphere/layers", d.base))
        .basic_auth(USER, PASSWORD)
        .content_type("application/x-www-form-urlencoded")
        .send_body("fp_id=1")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let (status, layers) = d
        .post(
            "/api/ionosphere/layers",
            serde_json::json!({"fp_id": fp_id, "label": "cap at 5",
                "d": {"condition": ">", "boundary": 5},
                "e": {"condition": "<", "boundary": 5, "times_in_row": 1}}),
        )
        .await;
    assert_eq!(status, 201, "{layers}");
    assert!(layers["layers_id"].as_i64().unwrap() > 0, "{layers}");
    tokio::time::sleep(Duration::from_secs(6)).await;
    let page = d
        .client
        .get(format!("{}/ionosphere?metric={METRIC}", d.base))
        .basic_auth(USER, PASSWORD)
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&page).contains("layers-form"),
        "the page offers the layers form"
    );

    // Exactly at the boundary: D fires (`>` is `>=`): alerted, no layers match.
    let end2 = now() - 200;
    put_metric(&mut d.conn, METRIC, &low(end2, 5.0));
    assert!(
        eventually(30, || (d.alerts_at(end2) > 0).then_some(()))
            .await
            .is_some(),
        "a last value of exactly the D boundary is alerted"
    );
    // Just below it: E (`<` 5, i.e. `<=`) holds: matched by the layers, not alerted.
    let end3 = now() - 100;
    put_metric(&mut d.conn, METRIC, &low(end3, 4.999));
    let api = eventually(30, || {
        let m = skyline::db::ionosphere::matches(&pool, &[fp_id as i32]).ok()?;
        m.into_iter()
            .find(|m| m.metric_timestamp == end3 && m.method == "layers")
    })
    .await
    .expect("matched by the layers");
    assert!(api.id > 0);
    let m = skyline::db::ionosphere::matches(&pool, &[fp_id as i32]).unwrap();
    assert!(
        m.iter().all(|m| m.metric_timestamp != end2),
        "nothing matched at the boundary: {m:?}"
    );
    assert_eq!(d.alerts_at(end3), 0, "a layers match is not alerted");
    d.stop().await;
}
