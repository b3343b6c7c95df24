//! Flux against a real bound HTTP server (port 0), a private redis-server and a local carbon
//! pickle receiver built on our own decoder: endpoints, every status code, prefixes,
//! de-duplication, all-or-nothing batches, carbon outages, the disk spool and feed_horizon.

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skyline::config::Config;
use skyline::flux::config::ApiKey;
use skyline::listen::pickle::decode_datapoints;
use skyline::model::msgpack::decode_series;
use skyline::model::{Datapoint, Number};

use crate::support::*;

const KEY: &str = "test-key-0123456789";
const PREFIX_KEY: &str = "prefix-key-0123456789";

/// A carbon pickle receiver: decodes every frame with `decode_datapoints` and keeps the points.
struct Sink {
    points: Arc<Mutex<Vec<Datapoint>>>,
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
}

impl Sink {
    fn start() -> Sink {
        Sink::start_on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    fn start_on(listener: TcpListener) -> Sink {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let points = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, st) = (points.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (p, st) = (p.clone(), st.clone());
                        std::thread::spawn(move || serve(conn, p, st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Sink { points, stop, addr }
    }

    fn points(&self) -> Vec<Datapoint> {
        self.points.lock().unwrap().clone()
    }

    fn names(&self) -> BTreeSet<String> {
        self.points().into_iter().map(|d| d.metric).collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<Datapoint> {
        eventually(30, || {
            let p = self.points();
            (p.len() >= n).then_some(p)
        })
        .await
        .unwrap_or_else(|| panic!("sink got {:?}, wanted {n} points", self.points()))
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut conn: std::net::TcpStream, points: Arc<Mutex<Vec<Datapoint>>>, stop: Arc<AtomicBool>) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return,
        }
        while buf.len() >= 4 {
            let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            assert!(len <= 1 << 20, "frame over carbon's 1 MiB cap");
            if buf.len() < 4 + len {
                break;
            }
            let d = decode_datapoints(&buf[4..4 + len]).expect("flux sends plain pickles");
            assert_eq!(d.bad_shape + d.bad_name + d.non_finite, 0);
            points.lock().unwrap().extend(d.points);
            buf.drain(..4 + len);
        }
    }
}

/// A config with flux keys, forwarding to `carbon` (empty = none).
fn flux_config(redis: &TestRedis, dir: &TempDir, carbon: &str) -> Config {
    let mut c = config(redis, dir);
    c.flux.api_keys = vec![
        ApiKey::Plain(KEY.into()),
        ApiKey::WithPrefix {
            key: PREFIX_KEY.into(),
            prefix: "warehouse-1".into(),
        },
    ];
    c.flux.carbon_pickle_addr = carbon.to_string();
    c
}

fn url(running: &skyline::app::Running, path: &str) -> String {
    format!("http://{}{path}", running.http_addr.unwrap())
}

struct Reply {
    status: u16,
    body: Vec<u8>,
    retry_after: Option<String>,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

async fn get(u: &str) -> Reply {
    let mut resp = awc::Client::new().get(u).send().await.unwrap();
    reply(&mut resp).await
}

async fn post(u: &str, body: &serde_json::Value, header_key: Option<&str>) -> Reply {
    post_raw(u, body.to_string().into_bytes(), header_key).await
}

async fn post_raw(u: &str, body: Vec<u8>, header_key: Option<&str>) -> Reply {
    let mut req = awc::Client::new()
        .post(u)
        .insert_header(("Content-Type", "application/json"));
    if let Some(k) = header_key {
        req = req.insert_header(("key", k));
    }
    let mut resp = req.send_body(body).await.unwrap();
    reply(&mut resp).await
}

async fn reply<S>(resp: &mut awc::ClientResponse<S>) -> Reply
where
    S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
{
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.body().limit(8 << 20).await.unwrap().to_vec();
    Reply {
        status,
        body,
        retry_after,
    }
}

fn get_string(conn: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(conn).unwrap()
}

fn flux_keys(conn: &mut redis::Connection) -> Vec<String> {
    redis::cmd("KEYS").arg("flux.*").query(conn).unwrap()
}

#[actix_rt::test]
async fn flux_get_metric_data_forwards_dedups_and_feeds_horizon() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flux-get");
    let sink = Sink::start();
    let running = skyline::app::start(&flux_config(&redis, &dir, &sink.addr.to_string()))
        .await
        .unwrap();
    let t = now();

    // health check, no key needed
    let r = get(&url(&running, "/flux/metric_data?status")).await;
    assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("ok")));

    let u = |ts: i64, v: &str| {
        url(
            &running,
            &format!("/flux/metric_data?metric=flux.get.cpu&timestamp={ts}&value={v}&key={KEY}"),
        )
    };
    let r = get(&u(t - 10, "1.5")).await;
    assert_eq!(r.status, 204, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(r.body.is_empty());
    let got = sink.wait_for(1).await;
    assert_eq!(got[0].metric, "flux.get.cpu");
    assert_eq!(got[0].point.timestamp, Number::Int(t - 10));
    assert_eq!(got[0].point.value, Number::Float(1.5));

    // flux.last.<metric> in Skyline's format
    let mut conn = redis_conn(&redis);
    let last = eventually(10, || get_string(&mut conn, "flux.last.flux.get.cpu")).await;
    assert_eq!(last.as_deref(), Some(format!("[{}, 1.5]", t - 10).as_str()));
    let ttl: i64 = redis::cmd("TTL")
        .arg("flux.last.flux.get.cpu")
        .query(&mut conn)
        .unwrap();
    assert!(ttl > 3500 && ttl <= 3600, "ttl {ttl}");

    // feed_horizon: the point is in our own Redis layout, as carbon-relay would send it
    let raw = eventually(10, || get_raw(&mut conn, "flux.get.cpu"))
        .await
        .unwrap();
    let series = decode_series(&raw).unwrap();
    assert_eq!(series[0].timestamp, Number::Float((t - 10) as f64));
    assert_eq!(series[0].value, Number::Float(1.5));

    // same and older timestamps: acknowledged, dropped; newer: forwarded
    assert_eq!(get(&u(t - 10, "9")).await.status, 204);
    assert_eq!(get(&u(t - 20, "9")).await.status, 204);
    assert_eq!(get(&u(t - 5, "2")).await.status, 204);
    let got = sink.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_all = sink.points();
    assert_eq!(got_all.len(), 2, "duplicates were forwarded: {got_all:?}");
    assert_eq!(got[1].point.timestamp, Number::Int(t - 5));
    let last = eventually(10, || {
        get_string(&mut conn, "flux.last.flux.get.cpu")
            .filter(|v| v.starts_with(&format!("[{}", t - 5)))
    })
    .await;
    assert!(last.is_some());
    running.shutdown().await;
}

#[actix_rt::test]
async fn flux_post_single_batch_header_key_and_prefix() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flux-post");
    let sink = Sink::start();
    let running = skyline::app::start(&flux_config(&redis, &dir, &sink.addr.to_string()))
        .await
        .unwrap();
    let u = url(&running, "/flux/metric_data_post");
    let t = now();

    let single =
        serde_json::json!({"metric": "post.single", "timestamp": t, "value": 1, "key": KEY});
    assert_eq!(post(&u, &single, None).await.status, 204);

    let batch = serde_json::json!({"metrics": [
        {"metric": "post.batch.a", "timestamp": t, "value": 1.25},
        {"metric": "post.batch.b", "timestamp": t.to_string(), "value": "2"},
        {"metric": "post.batch.c", "value": -3},
    ]});
    assert_eq!(post(&u, &batch, Some(KEY)).await.status, 204, "header key");

    // a prefixed key puts everything under its namespace (already-prefixed names stay as is)
    let prefixed = serde_json::json!({"key": PREFIX_KEY, "metrics": [
        {"metric": "x", "timestamp": t, "value": 1},
        {"metric": "warehouse-1.y", "timestamp": t, "value": 1},
        {"metric": "warehouse-10.z", "timestamp": t, "value": 1},
    ]});
    assert_eq!(post(&u, &prefixed, None).await.status, 204);

    sink.wait_for(7).await;
    let want: BTreeSet<String> = [
        "post.single",
        "post.batch.a",
        "post.batch.b",
        "post.batch.c",
        "warehouse-1.x",
        "warehouse-1.y",
        "warehouse-1.warehouse-10.z",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(sink.names(), want);
    let b = sink
        .points()
        .into_iter()
        .find(|d| d.metric == "post.batch.b")
        .unwrap();
    assert_eq!(b.point.value, Number::Float(2.0));
    running.shutdown().await;
}

#[actix_rt::test]
async fn flux_status_codes_and_json_errors() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flux-codes");
    let sink = Sink::start();
    let mut cfg = flux_config(&redis, &dir, &sink.addr.to_string());
    cfg.flux.max_body_bytes = 4096;
    let running = skyline::app::start(&cfg).await.unwrap();
    let post_u = url(&running, "/flux/metric_data_post");
    let t = now();
    let good = |key: Option<&str>| {
        let mut v = serde_json::json!({"metric": "codes.m", "timestamp": t, "value": 1});
        if let Some(k) = key {
            v["key"] = k.into();
        }
        v
    };

    // 401: missing or wrong key, on every endpoint and every way of sending it
    for r in [
        post(&post_u, &good(None), None).await,
        post(&post_u, &good(Some("wrong-key-0123456789")), None).await,
        post(&post_u, &good(Some(KEY)), Some("wrong-key-0123456789")).await,
        get(&url(&running, "/flux/metric_data?metric=a&value=1")).await,
        get(&url(
            &running,
            "/flux/metric_data?metric=a&value=1&key=nope",
        ))
        .await,
        post(
            &url(&running, "/flux/populate_metric"),
            &serde_json::json!({"metric": "a", "datapoints": [[t, 1]]}),
            None,
        )
        .await,
    ] {
        assert_eq!(r.status, 401, "{:?}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["code"], 401);
        assert!(r.json()["message"].as_str().unwrap().contains("key"));
    }

    // 400: not JSON; unknown GET parameter; a batch naming each problem
    let r = post_raw(&post_u, b"{not json".to_vec(), Some(KEY)).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("invalid JSON"));
    let r = get(&url(
        &running,
        &format!("/flux/metric_data?metric=a&value=1&key={KEY}&foo=1"),
    ))
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"][0]["field"], "foo");
    let r = get(&url(
        &running,
        &format!(
            "/flux/metric_data?metric=bad%20name&value=nan&timestamp={}&key={KEY}",
            t * 1000
        ),
    ))
    .await;
    assert_eq!(r.status, 400);
    let fields: Vec<String> = r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        fields,
        ["metric", "timestamp", "value"],
        "GET names are validated too"
    );

    let batch = serde_json::json!({"key": KEY, "metrics": [
        {"metric": "codes.ok.1", "timestamp": t, "value": 1},
        {"metric": "codes.ok.2", "timestamp": t, "value": 2},
        {"metric": "codes bad", "timestamp": t, "value": 3},
        {"metric": "codes.ok.3", "timestamp": t - 10 * 86_400, "value": 4},
        {"metric": "codes.ok.4", "timestamp": t + 3600, "value": "inf"},
    ]});
    let r = post(&post_u, &batch, None).await;
    assert_eq!(r.status, 400);
    let j = r.json();
    assert_eq!(j["code"], 400);
    assert_eq!(
        j["message"],
        "3 of 5 datapoints are invalid; nothing was accepted"
    );
    let errs: Vec<(u64, String, String)> = j["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["metric"].as_str().unwrap().to_string(),
                e["field"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        errs,
        vec![
            (2, "codes bad".into(), "metric".into()),
            (3, "codes.ok.3".into(), "timestamp".into()),
            (4, "codes.ok.4".into(), "timestamp".into()),
            (4, "codes.ok.4".into(), "value".into()),
        ]
    );
    assert!(j["errors"][1]["message"]
        .as_str()
        .unwrap()
        .contains("too old"));

    // 413: body over max_body_bytes
    let big: Vec<serde_json::Value> = (0..200)
        .map(
            |i| serde_json::json!({"metric": format!("codes.big.{i}"), "timestamp": t, "value": i}),
        )
        .collect();
    let r = post(
        &post_u,
        &serde_json::json!({"key": KEY, "metrics": big}),
        None,
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], 413);

    // 405 with JSON
    let r = get(&post_u).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["code"], 405);

    // 204 once everything is right; nothing of the refused requests was forwarded or recorded
    assert_eq!(post(&post_u, &good(Some(KEY)), None).await.status, 204);
    sink.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.names(), BTreeSet::from(["codes.m".to_string()]));
    let mut conn = redis_conn(&redis);
    let keys = eventually(10, || Some(flux_keys(&mut conn)).filter(|k| !k.is_empty())).await;
    assert_eq!(keys.unwrap(), vec!["flux.last.codes.m".to_string()]);
    for name in ["codes.ok.1", "codes.ok.2", "codes.big.0", "a"] {
        assert!(get_raw(&mut conn, name).is_none(), "{name} reached Redis");
    }
    running.shutdown().await;
}

#[actix_rt::test]
async fn flux_queue_full_is_503_with_retry_after_and_last_is_set_only_after_queueing() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flux-503");
    let sink = Sink::start();
    let mut cfg = flux_config(&redis, &dir, &sink.addr.to_string());
    cfg.flux.queue_max_points = 10;
    cfg.flux.retry_after_secs = 3;
    let running = skyline::app::start(&cfg).await.unwrap();
    let u = url(&running, "/flux/metric_data_post");
    let t = now();
    let batch = |name: &str, n: usize| {
        let items: Vec<serde_json::Value> = (0..n)
            .map(|i| serde_json::json!({"metric": name, "timestamp": t - 100 + i as i64, "value": i}))
            .collect();
        serde_json::json!({"key": KEY, "metrics": items})
    };

    // a batch that can never fit the queue
    assert_eq!(post(&u, &batch("q.huge", 11), None).await.status, 413);

    // Stall the forwarder's Redis lookups: the first batch stays queued.
    let mut conn = redis_conn(&redis);
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2500)
        .arg("ALL")
        .query(&mut conn)
        .unwrap();
    assert_eq!(post(&u, &batch("q.first", 8), None).await.status, 204);
    let r = post(&u, &batch("q.second", 5), None).await;
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.retry_after.as_deref(), Some("3"));
    assert_eq!(r.json()["code"], 503);
    assert!(r.json()["message"].as_str().unwrap().contains("full"));
    let mut no_key = batch("q.nokey", 1);
    no_key.as_object_mut().unwrap().remove("key");
    assert_eq!(
        post(&u, &no_key, None).await.status,
        401,
        "401 always, even when full"
    );
    assert_eq!(
        post(&u, &no_key, Some("wrong-key-0123456789")).await.status,
        401
    );

    // Once Redis answers, the first batch goes through; the refused one left no trace.
    sink.wait_for(8).await;
    let mut conn = redis_conn(&redis);
    assert!(
        eventually(10, || get_string(&mut conn, "flux.last.q.first"))
            .await
            .is_some()
    );
    assert!(get_string(&mut conn, "flux.last.q.second").is_none());
    assert!(sink.names().iter().all(|n| n == "q.first"));
    // and the client's retry is accepted in full
    assert_eq!(post(&u, &batch("q.second", 5), None).await.status, 204);
    sink.wait_for(13).await;
    assert!(
        eventually(10, || get_string(&mut conn, "flux.last.q.second"))
            .await
            .is_some()
    );
    running.shutdown().await;
}

#[actix_rt::test]
async fn flux_carbon_down_then_up_loses_nothing_and_spools_to_disk() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flux-outage");
    // reserve a port for carbon, down for now
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let carbon = reserved.local_addr().unwrap();
    drop(reserved);
    let mut cfg = flux_config(&redis, &dir, &carbon.to_string());
    cfg.flux.carbon_chunk_points = 10;
    cfg.flux.carbon_max_pending_points = 30;
    cfg.flux.carbon_reconnect_max_secs = 1;
    let running = skyline::app::start(&cfg).await.unwrap();
    let u = url(&running, "/flux/metric_data_post");
    let t = now();
    let mut want = BTreeSet::new();
    for b in 0..10 {
        let items: Vec<serde_json::Value> = (0..10)
            .map(|i| {
                let name = format!("outage.b{b}.m{i}");
                want.insert(name.clone());
                serde_json::json!({"metric": name, "timestamp": t - 30, "value": i})
            })
            .collect();
        let r = post(&u, &serde_json::json!({"key": KEY, "metrics": items}), None).await;
        assert_eq!(r.status, 204);
    }
    // 30 points in memory, the other 70 on disk
    let spool = dir.0.join("flux-spool");
    let spooled = eventually(10, || {
        let bytes: u64 = std::fs::read_dir(&spool)
            .ok()?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        (bytes > 0).then_some(bytes)
    })
    .await;
    assert!(
        spooled.is_some(),
        "points over the memory bound go to the disk spool"
    );
    // every point was recorded as queued, though carbon never saw it
    let mut conn = redis_conn(&redis);
    assert!(
        eventually(10, || get_string(&mut conn, "flux.last.outage.b9.m9"))
            .await
            .is_some()
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    let sink = Sink::start_on(TcpListener::bind(carbon).unwrap());
    let got = sink.wait_for(100).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.names(), want, "nothing lost");
    assert_eq!(got.len(), 100);
    assert_eq!(sink.points().len(), 100, "nothing sent twice");
    let left: usize = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len() as usize)
        .sum();
    assert_eq!(left, 0, "the spool is emptied");
    running.shutdown().await;
}

#[actix_rt::test]
async fn flux_shutdown_spools_unsent_points_and_the_next_start_sends_them() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flux-restart");
    let reserved = TcpListener::bind("127.0.0.1:0").unwrap();
    let carbon = reserved.local_addr().unwrap();
    drop(reserved);
    let cfg = flux_config(&redis, &dir, &carbon.to_string());
    let running = skyline::app::start(&cfg).await.unwrap();
    let t = now();
    let items: Vec<serde_json::Value> = (0..25)
        .map(|i| serde_json::json!({"metric": format!("restart.m{i}"), "timestamp": t, "value": i}))
        .collect();
    let r = post(
        &url(&running, "/flux/metric_data_post"),
        &serde_json::json!({"key": KEY, "metrics": items}),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let mut conn = redis_conn(&redis);
    assert!(
        eventually(10, || get_string(&mut conn, "flux.last.restart.m24"))
            .await
            .is_some()
    );
    assert_eq!(running.shutdown().await, 0, "spooled, not lost");

    let sink = Sink::start_on(TcpListener::bind(carbon).unwrap());
    let running = skyline::app::start(&cfg).await.unwrap();
    sink.wait_for(25).await;
    assert_eq!(sink.names().len(), 25);
    running.shutdown().await;
}

#[actix_rt::test]
async fn flux_feed_horizon_without_carbon_and_populate_metric_backfills() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flux-horizon");
    let running = skyline::app::start(&flux_config(&redis, &dir, ""))
        .await
        .unwrap();
    let t = now();
    let r = post(
        &url(&running, "/flux/metric_data_post"),
        &serde_json::json!({"key": PREFIX_KEY, "metric": "horizon.fed", "timestamp": t, "value": 7.5}),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let mut conn = redis_conn(&redis);
    let raw = eventually(10, || get_raw(&mut conn, "warehouse-1.horizon.fed"))
        .await
        .expect("feed_horizon puts points into metrics.<name>");
    let series = decode_series(&raw).unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0].timestamp, Number::Float(t as f64));
    assert_eq!(series[0].value, Number::Float(7.5));
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("metrics.unique_metrics")
        .query(&mut conn)
        .unwrap();
    assert!(members.contains(&"metrics.warehouse-1.horizon.fed".to_string()));

    // populate_metric without carbon: history the metric actors would not keep (older than
    // full_duration_secs) is refused, saying why, never 204-and-dropped
    let old = t - 5 * 86_400;
    let r = post(
        &url(&running, "/flux/populate_metric"),
        &serde_json::json!({"key": KEY, "metric": "backfill.m", "datapoints": [[old, 1], [t - 60, 3]]}),
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(
        r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("would not be stored"),
        "{:?}",
        r.json()
    );
    // within full_duration: every point is stored, even those older than max_resolution_secs
    // (1000 s), not de-duplicated, and flux.last is not moved
    let r = post(
        &url(&running, "/flux/populate_metric"),
        &serde_json::json!({"key": KEY, "metric": "backfill.m", "datapoints": [[t - 80_000, 1], [t - 5000, 2], [t - 60, 3], [t - 60, 3]]}),
        None,
    )
    .await;
    assert_eq!(r.status, 204, "{:?}", String::from_utf8_lossy(&r.body));
    let raw = eventually(10, || get_raw(&mut conn, "backfill.m"))
        .await
        .unwrap();
    let series = decode_series(&raw).unwrap();
    assert_eq!(
        series.iter().map(|p| p.value.as_f64()).collect::<Vec<_>>(),
        vec![1.0, 2.0, 3.0, 3.0],
        "flux's points are stored back to full_duration"
    );
    assert!(get_string(&mut conn, "flux.last.backfill.m").is_none());
    let r = post(
        &url(&running, "/flux/populate_metric"),
        &serde_json::json!({"key": KEY, "metric": "backfill.m", "datapoints": [[t - 60, "x"]]}),
        None,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errors"][0]["field"], "value");
    running.shutdown().await;
}

#[actix_rt::test]
async fn flux_populate_metric_reaches_carbon_with_old_timestamps() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flux-populate");
    let sink = Sink::start();
    let running = skyline::app::start(&flux_config(&redis, &dir, &sink.addr.to_string()))
        .await
        .unwrap();
    let old = now() - 30 * 86_400;
    let points: Vec<serde_json::Value> = (0..100)
        .map(|i| serde_json::json!([old + 60 * i, i]))
        .collect();
    let r = post(
        &url(&running, "/flux/populate_metric"),
        &serde_json::json!({"metric": "vista.m", "datapoints": points}),
        Some(PREFIX_KEY),
    )
    .await;
    assert_eq!(r.status, 204);
    let got = sink.wait_for(100).await;
    assert!(got.iter().all(|d| d.metric == "warehouse-1.vista.m"));
    assert_eq!(got[0].point.timestamp, Number::Int(old));
    running.shutdown().await;
}

#[actix_rt::test]
async fn flux_dedups_against_last_timestamps_already_in_redis() {
    let redis = TestRedis::start().unwrap();
    let dir = TempDir::new("flux-compat");
    let sink = Sink::start();
    let t = now();
    // as Skyline's flux leaves them: the legacy key, a Python literal
    let mut conn = redis_conn(&redis);
    let _: () = redis::cmd("SET")
        .arg("flux.last.compat.m")
        .arg(format!("[{t}, 1.0]"))
        .query(&mut conn)
        .unwrap();
    let running = skyline::app::start(&flux_config(&redis, &dir, &sink.addr.to_string()))
        .await
        .unwrap();
    let u = url(&running, "/flux/metric_data_post");
    let point = |ts: i64, v: f64| serde_json::json!({"key": KEY, "metric": "compat.m", "timestamp": ts, "value": v});
    assert_eq!(post(&u, &point(t, 2.0), None).await.status, 204);
    assert_eq!(post(&u, &point(t - 1, 3.0), None).await.status, 204);
    assert_eq!(post(&u, &point(t + 1, 4.0), None).await.status, 204);
    let got = sink.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.points().len(), 1, "{:?}", sink.points());
    assert_eq!(got[0].point.value, Number::Float(4.0));
    let last = eventually(10, || {
        get_string(&mut conn, "flux.last.compat.m").filter(|v| v == &format!("[{}, 4.0]", t + 1))
    })
    .await;
    assert!(last.is_some(), "updated in Skyline's format");
    // a restart (empty memory) still knows, from Redis
    assert_eq!(running.shutdown().await, 0);
    let running = skyline::app::start(&flux_config(&redis, &dir, &sink.addr.to_string()))
        .await
        .unwrap();
    let u = url(&running, "/flux/metric_data_post");
    assert_eq!(post(&u, &point(t + 1, 5.0), None).await.status, 204);
    assert_eq!(post(&u, &point(t + 2, 6.0), None).await.status, 204);
    sink.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let values: Vec<Number> = sink.points().iter().map(|d| d.point.value).collect();
    assert_eq!(values, vec![Number::Float(4.0), Number::Float(6.0)]);
    running.shutdown().await;
}
