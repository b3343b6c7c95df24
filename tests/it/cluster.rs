//! Scale-out end to end: a real 3-master Redis Cluster (`redis-server --cluster-enabled yes`
//! ×3 + `redis-cli --cluster create`), two real `skyline run` daemons on it sharing one
//! Panorama database (the machine's PostgreSQL when `SKYLINE_TEST_POSTGRES_URL` is set — it
//! is in CI — else one SQLite file both processes open), and a real webhook receiver.
//!
//! 2,000 metrics fed half through each daemon's plaintext listener are readable through either
//! node's `/api?metric=`; `/api/cluster` lists both nodes, each assigned 30–70 %; 10 anomalous
//! metrics give exactly 10 Panorama rows and 10 alerts; after a SIGKILL of one daemon, the
//! first run of the other that starts once the dead node's key has expired is assigned 100 %,
//! and an anomaly fed after the kill is recorded once.
//!
//! Two more tests feed 200 metrics into an in-process daemon while the cluster changes under
//! it, and find every datapoint (distinct timestamps) in Redis afterwards: a slot migration
//! (`redis-cli --cluster reshard`) and a master failover (SIGKILL of a master of a 3+3
//! cluster, `[redis] wait_replicas = 1`).
//!
//! One more starts an in-process daemon with the webapp on a cluster: rebrow's pages walk
//! every master (each key once, the cursor `<master>-<cursor>`), and `skyline seed` reads its
//! metric back through the cluster.

use std::io::Write as _;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skyline::model::msgpack::encode_point;
use skyline::model::{Number, Point};
use skyline::store::redis_conn::{self, Target};
use skyline::testkit::TestCluster;

use crate::support::server_db::ServerDb;
use crate::support::sinks::HttpSink;
use crate::support::web::client;
use crate::support::*;

const PASSWORD: &str = "cluster-test-password";
const FED: usize = 2_000;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_cluster(_dir: &Path) -> TestCluster {
    TestCluster::start(3, 0).expect("a 3-master Redis Cluster (redis-server, redis-cli)")
}

/// A `skyline run` daemon, SIGKILLed on drop.
struct Daemon {
    child: Child,
    web: u16,
    plain: u16,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn start(id: &str, dir: &Path, seeds: &[String], db_url: &str, hook: &str) -> Daemon {
        let (web, plain) = (free_port(), free_port());
        let data = dir.join(id);
        std::fs::create_dir_all(&data).unwrap();
        let cfg = data.join("skyline.toml");
        let seeds: Vec<String> = seeds.iter().map(|s| format!("{s:?}")).collect();
        std::fs::write(
            &cfg,
            format!(
                r#"
[redis]
cluster_urls = [{seeds}]

[cluster]
node_id = "{id}"
heartbeat_secs = 1
node_ttl_secs = 3

[horizon]
pickle_bind = ""
udp_bind = ""
plaintext_bind = "127.0.0.1:{plain}"
flush_interval_ms = 50

[data]
dir = "{data}"

[webapp]
bind = "127.0.0.1:{web}"
auth_password = "{PASSWORD}"

[flux]
enabled = false

[thunder]
enabled = false

[analyzer]
run_every_secs = 2
combine = "any"

[panorama]
database_url = "{db_url}"

[boundary]
enabled = true
run_every_secs = 2

[[boundary.rules]]
pattern = "cl.bnd.*"
algorithm = "greater_than"
trigger_value = 1000.0
alerters = ["webhook"]
expiration_secs = 3600

[[alerts]]
pattern = "cl.anom.*"
alerter = "webhook"
expiration_secs = 3600

[alerters.webhook]
url = "{hook}"
"#,
                seeds = seeds.join(", "),
                data = data.display(),
            ),
        )
        .unwrap();
        let log = data.join("daemon.log");
        let child = Command::new(env!("CARGO_BIN_EXE_skyline"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(data.join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon {
            child,
            web,
            plain,
            log,
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut res = client()
            .get(format!("http://127.0.0.1:{}{path}", self.web))
            .basic_auth("admin", PASSWORD)
            .send()
            .await
            .ok()?;
        let body = res.body().limit(16 << 20).await.ok()?;
        Some((
            res.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        ))
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        let (status, body) = self
            .get(path)
            .await
            .unwrap_or_else(|| panic!("GET {path}: no answer\n{}", self.logs()));
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn wait_healthy(&self) {
        for _ in 0..600 {
            if let Some((200, _)) = self.get("/health").await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("daemon did not become healthy:\n{}", self.logs());
    }

    fn feed(&self, lines: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.plain)).unwrap();
        s.write_all(lines.as_bytes()).unwrap();
    }
}

fn fed_name(i: usize) -> String {
    format!("cl.fed.m{i:04}")
}

/// 1,440 minutely points of a quiet wave ending in a spike every algorithm sees.
fn spiky(end: i64) -> Vec<u8> {
    let mut b = Vec::new();
    for i in 0..1440usize {
        let ts = end - (1439 - i as i64) * 60;
        let v = if i >= 1437 {
            5000.0
        } else {
            100.0 + (i as f64 / 30.0).sin() * 10.0 + (i % 7) as f64 * 0.3
        };
        encode_point(
            &mut b,
            &Point {
                timestamp: Number::Float(ts as f64),
                value: Number::Float(v),
            },
        );
    }
    b
}

/// Writes an anomalous metric's history straight into the cluster (through the daemon's own
/// cluster connection type), as Horizon would have accumulated it.
async fn put_spiky(conn: &mut redis_conn::RedisConn, name: &str) {
    let key = format!("metrics.{name}");
    let _: () = redis::pipe()
        .cmd("SET")
        .arg(&key)
        .arg(spiky(now() - 5))
        .ignore()
        .cmd("SADD")
        .arg("metrics.unique_metrics")
        .arg(&key)
        .ignore()
        .query_async(conn)
        .await
        .unwrap();
}

async fn cluster_nodes(d: &Daemon) -> Vec<serde_json::Value> {
    let v = d.json("/api/cluster").await;
    assert_eq!(v["cluster"], true);
    v["nodes"].as_array().unwrap().clone()
}

async fn panorama_rows(d: &Daemon) -> Vec<String> {
    rows_of(d, "cl.anom.", "analyzer").await
}

/// Panorama rows of metrics named `prefix…` recorded by `app`.
async fn rows_of(d: &Daemon, prefix: &str, app: &str) -> Vec<String> {
    let v = d.json("/api/anomalies?limit=1000").await;
    let mut rows: Vec<String> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["app"] == app)
        .filter_map(|r| r["metric"].as_str())
        .filter(|m| m.starts_with(prefix))
        .map(String::from)
        .collect();
    rows.sort();
    rows
}

/// The Boundary alerts the webhook received, by metric.
fn boundary_alerted(hook: &HttpSink) -> Vec<String> {
    let mut names: Vec<String> = hook
        .requests()
        .iter()
        .map(|r| r.json())
        .filter(|j| j["app"] == "boundary")
        .filter_map(|j| j["metric"].as_str().map(String::from))
        .collect();
    names.sort();
    names
}

fn alerted(hook: &HttpSink) -> Vec<String> {
    let mut names: Vec<String> = hook
        .requests()
        .iter()
        .filter_map(|r| {
            (0..12)
                .map(|i| format!("cl.anom.a{i:02}"))
                .find(|n| r.body.contains(&format!("\"{n}\"")))
        })
        .collect();
    names.sort();
    names
}

#[actix_rt::test]
async fn two_daemons_share_a_redis_cluster_and_one_database() {
    let dir = TempDir::new("cluster");
    let cluster = start_cluster(&dir.0);
    let seeds = cluster.urls();
    let server_db = ServerDb::create("SKYLINE_TEST_POSTGRES_URL", "cluster");
    let db_url = match &server_db {
        Some(db) => db.url.clone(),
        None => format!("sqlite://{}", dir.0.join("panorama.sqlite").display()),
    };
    let hook = HttpSink::start(0);
    let hook_url = hook.url("/hook");

    // One at a time, so the database is migrated once.
    let a = Daemon::start("node-a", &dir.0, &seeds, &db_url, &hook_url);
    a.wait_healthy().await;
    let mut b = Daemon::start("node-b", &dir.0, &seeds, &db_url, &hook_url);
    b.wait_healthy().await;

    // 2,000 metrics, half through each node.
    let t = now();
    for (half, d) in [(0, &a), (1, &b)] {
        let mut lines = String::new();
        for i in (half * FED / 2)..((half + 1) * FED / 2) {
            for k in 0..3i64 {
                lines.push_str(&format!(
                    "{} {} {}\n",
                    fed_name(i),
                    i as i64 + k,
                    t - 120 + k * 60
                ));
            }
        }
        d.feed(&lines);
    }
    let mut conn =
        redis_conn::connect(Target::Cluster(seeds.clone()), Duration::from_secs(10)).unwrap();
    for i in 0..10 {
        put_spiky(&mut conn, &format!("cl.anom.a{i:02}")).await;
    }
    // Boundary: 6 metrics over its rule's threshold (their last value is 5,000).
    for i in 0..6 {
        put_spiky(&mut conn, &format!("cl.bnd.b{i}")).await;
    }
    let total = FED + 16;
    let mut stored = 0;
    for _ in 0..400 {
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg("metrics.unique_metrics")
            .query_async(&mut conn)
            .await
            .unwrap();
        stored = members.len();
        if stored == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored, total, "every fed metric is in the unique set");

    // Every series readable through either node.
    for d in [&a, &b] {
        for i in 0..FED {
            let v = d.json(&format!("/api?metric={}", fed_name(i))).await;
            let pts = v["results"].as_array().unwrap();
            assert_eq!(pts.len(), 3, "{} through node {}", fed_name(i), d.web);
            assert_eq!(pts[2][1].as_f64(), Some(i as f64 + 2.0));
        }
    }

    // Both nodes listed, each with 30–70 % of the metrics, together all of them, from runs
    // that both started after both nodes were live.
    let both_live = now();
    let mut shares = Vec::new();
    for _ in 0..300 {
        let list = cluster_nodes(&a).await;
        let fresh: Vec<&serde_json::Value> = list
            .iter()
            .filter(|n| n["last_run"]["timestamp"].as_i64().unwrap_or(0) > both_live)
            .collect();
        if list.len() == 2 && fresh.len() == 2 {
            shares = fresh
                .iter()
                .map(|n| n["metrics_assigned"].as_u64().unwrap() as usize)
                .collect();
            if shares.iter().sum::<usize>() == total {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        shares.len(),
        2,
        "both nodes ran: {:?}",
        cluster_nodes(&a).await
    );
    assert_eq!(
        shares.iter().sum::<usize>(),
        total,
        "together all: {shares:?}"
    );
    for s in &shares {
        let f = *s as f64 / total as f64;
        assert!((0.3..=0.7).contains(&f), "share {f} of {shares:?}");
    }
    let ids: Vec<String> = cluster_nodes(&b)
        .await
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ids,
        vec!["node-a", "node-b"],
        "the same view through the other node"
    );

    // Exactly 10 Panorama rows and 10 alerts, through several more runs.
    let first = eventually_async(60, || panorama_rows(&a), |r| r.len() >= 10).await;
    assert_eq!(first.len(), 10, "rows: {first:?}\n{}", a.logs());
    let settle = now() + 5;
    while now() < settle {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut rows = panorama_rows(&b).await;
    rows.sort();
    let want: Vec<String> = (0..10).map(|i| format!("cl.anom.a{i:02}")).collect();
    assert_eq!(rows, want, "one row per anomaly");
    assert_eq!(alerted(&hook), want, "one alert per anomaly");
    // Boundary, sharded the same way: one row and one alert per breaching metric.
    let want_b: Vec<String> = (0..6).map(|i| format!("cl.bnd.b{i}")).collect();
    assert_eq!(
        rows_of(&b, "cl.bnd.", "boundary").await,
        want_b,
        "one Boundary row per breach"
    );
    assert_eq!(
        boundary_alerted(&hook),
        want_b,
        "one Boundary alert per breach"
    );

    // SIGKILL node-b: node-a's first run after node-b's key expired analyses everything.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    let mut gone = false;
    for _ in 0..200 {
        let exists: bool = redis::cmd("EXISTS")
            .arg("skyline.cluster.node.node-b")
            .query_async(&mut conn)
            .await
            .unwrap();
        if !exists {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "node-b's key expires");
    let expired_at = now();
    put_spiky(&mut conn, "cl.anom.a10").await;
    let total = total + 1;
    let mut first_run = None;
    for _ in 0..300 {
        let list = cluster_nodes(&a).await;
        if let Some(n) = list
            .iter()
            .find(|n| n["last_run"]["timestamp"].as_i64().unwrap_or(0) > expired_at)
        {
            first_run = Some((list.len(), n["metrics_assigned"].as_u64().unwrap() as usize));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        first_run,
        Some((1, total)),
        "node-a alone, assigned 100 % in its first run after node-b expired"
    );
    let rows = eventually_async(30, || panorama_rows(&a), |r| r.len() >= 11).await;
    assert_eq!(
        rows.len(),
        11,
        "the anomaly fed after the kill is recorded once"
    );
    let settle = now() + 4;
    while now() < settle {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(panorama_rows(&a).await.len(), 11, "and only once");
    drop(a);
    drop(server_db);
}

/// Polls the async `f` until `ok` holds or `secs` pass; returns the last value.
async fn eventually_async<T, F, Fut>(secs: u64, mut f: F, ok: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let v = f().await;
        if ok(&v) || std::time::Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn node_id_of(port: u16) -> String {
    let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .unwrap()
        .get_connection()
        .unwrap();
    redis::cmd("CLUSTER").arg("MYID").query(&mut c).unwrap()
}

/// An in-process daemon with only the listeners and metric actors, on `seeds`.
async fn ingest_only(dir: &Path, seeds: Vec<String>, wait_replicas: u32) -> skyline::app::Running {
    let mut cfg = skyline::config::Config::default();
    cfg.data.dir = dir.join("data");
    cfg.redis.cluster_urls = seeds;
    cfg.redis.wait_replicas = wait_replicas;
    cfg.cluster.node_id = "solo".into();
    cfg.horizon.pickle_bind = String::new();
    cfg.horizon.udp_bind = String::new();
    cfg.horizon.plaintext_bind = "127.0.0.1:0".into();
    cfg.horizon.flush_interval_ms = 20;
    cfg.horizon.workers = 2;
    cfg.webapp.enabled = false;
    cfg.flux.enabled = false;
    cfg.analyzer.enabled = false;
    cfg.panorama.enabled = false;
    cfg.thunder.enabled = false;
    skyline::app::start(&cfg).await.unwrap()
}

/// Feeds `metrics` × `points` datapoints (one point per metric every 40 ms, timestamps one
/// second apart) on one plaintext connection, in a thread.
fn feed_in_background(
    addr: std::net::SocketAddr,
    prefix: &'static str,
    metrics: usize,
    points: i64,
    t0: i64,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        for k in 0..points {
            let mut lines = String::new();
            for m in 0..metrics {
                lines.push_str(&format!("{prefix}.m{m:03} {k} {}\n", t0 + k));
            }
            s.write_all(lines.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(40));
        }
    })
}

/// Waits (up to 60 s; a failed flush is held and retried by its metric actor) until every
/// fed metric has all its timestamps in Redis; returns the metrics still short as (metric,
/// distinct timestamps, points stored). Counts distinct timestamps: a flush that failed after
/// some of its APPENDs landed is re-sent whole (at-least-once; Roomba drops the duplicates).
async fn short_metrics(
    conn: &mut redis_conn::RedisConn,
    prefix: &str,
    metrics: usize,
    points: i64,
) -> Vec<(usize, usize, usize)> {
    let mut short = Vec::new();
    for _ in 0..300 {
        short.clear();
        for m in 0..metrics {
            let raw: Option<Vec<u8>> = redis::cmd("GET")
                .arg(format!("metrics.{prefix}.m{m:03}"))
                .query_async(conn)
                .await
                .unwrap();
            let series = raw
                .map(|r| skyline::model::msgpack::decode_series(&r).unwrap())
                .unwrap_or_default();
            let mut ts: Vec<i64> = series.iter().map(|p| p.timestamp.as_f64() as i64).collect();
            let stored = ts.len();
            ts.sort_unstable();
            ts.dedup();
            if ts.len() != points as usize {
                short.push((m, ts.len(), stored));
            }
        }
        if short.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    short
}

/// A slot migration (`redis-cli --cluster reshard`, a third of the slots moving between two
/// masters) while 200 metrics are fed: every datapoint written before, during and after it is
/// in Redis afterwards (MOVED/ASK/TRYAGAIN answers are followed, never dropped; an ASK the
/// redis crate could not follow on its shared connection is resent as ASKING + the command
/// in one write).
#[actix_rt::test]
async fn a_slot_migration_during_ingest_loses_no_datapoint() {
    let _ = skyline::telemetry::init("warn", "");
    let dir = TempDir::new("cluster-reshard");
    let cluster = start_cluster(&dir.0);
    let seeds = cluster.urls();
    let running = ingest_only(&dir.0, seeds.clone(), 0).await;
    let addr = running.plaintext_addr.unwrap();

    const METRICS: usize = 200;
    const POINTS: i64 = 60;
    let retries_before = skyline::telemetry::metrics::REDIS_CLUSTER_RETRIES.get();
    let feeder = feed_in_background(addr, "cl.mig", METRICS, POINTS, now() - 300);
    // The reshard runs while the feeder writes (~2.4 s of datapoints).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let nodes = &cluster.nodes;
    let (from, to) = (node_id_of(nodes[0].port), node_id_of(nodes[1].port));
    let reshard = Command::new("redis-cli")
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", nodes[0].port),
        ])
        .args(["--cluster-from", &from, "--cluster-to", &to])
        .args(["--cluster-slots", "5000", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(reshard.success(), "redis-cli --cluster reshard");
    feeder.join().unwrap();

    let mut conn = redis_conn::connect(Target::Cluster(seeds), Duration::from_secs(10)).unwrap();
    let short = short_metrics(&mut conn, "cl.mig", METRICS, POINTS).await;
    assert!(
        short.is_empty(),
        "metrics short of points (metric, distinct, stored): {short:?}; retries {} errors {}; log: {:?}",
        skyline::telemetry::metrics::REDIS_CLUSTER_RETRIES.get() - retries_before,
        skyline::telemetry::metrics::REDIS_CLUSTER_ERRORS.get(),
        skyline::telemetry::recent_errors(50)
    );
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg("metrics.unique_metrics")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members.len(), METRICS);
    running.shutdown().await;
}

/// `CLUSTER INFO` of the node on `port` says `cluster_state:ok`.
fn cluster_state_ok(port: u16) -> bool {
    redis::Client::open(format!("redis://127.0.0.1:{port}"))
        .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
        .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query::<String>(&mut c))
        .is_ok_and(|info| info.contains("cluster_state:ok"))
}

/// A master failover during ingest: a 3-master cluster with one replica each; a master is
/// SIGKILLed while 200 metrics are fed; its replica takes over (`cluster-node-timeout` 2 s,
/// or `CLUSTER FAILOVER TAKEOVER` if it has not after 8 s) and the killed node comes back as
/// its replica. With `[redis] wait_replicas = 1` a flush counts as written only once a replica
/// of every master has it, so no acknowledged datapoint can die with the master: every point
/// is in Redis afterwards, and the retried writes were counted.
#[actix_rt::test]
async fn a_master_failover_during_ingest_loses_no_acknowledged_datapoint() {
    let _ = skyline::telemetry::init("warn", "");
    let mut cluster = TestCluster::start(3, 1).expect("a 3+3 Redis Cluster");
    let dir = TempDir::new("cluster-failover");
    let seeds = cluster.urls();
    let running = ingest_only(&dir.0, seeds.clone(), 1).await;
    let addr = running.plaintext_addr.unwrap();

    const METRICS: usize = 200;
    const POINTS: i64 = 100;
    // Failed flushes (retried by the metric actors) and resent commands (retried inside
    // the connection) together: which of the two absorbs the failover depends on timing.
    let retried = || {
        skyline::telemetry::metrics::REDIS_WRITE_ERRORS.get()
            + skyline::telemetry::metrics::REDIS_CLUSTER_RETRIES.get()
    };
    let retried_before = retried();
    let feeder = feed_in_background(addr, "cl.fail", METRICS, POINTS, now() - 300);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let victim_port = cluster.master_ports()[0];
    let victim = cluster
        .nodes
        .iter()
        .position(|n| n.port == victim_port)
        .unwrap();
    cluster.nodes[victim].kill();
    // Its replica: the live node whose master_port is the victim's.
    let replica = cluster
        .nodes
        .iter()
        .filter(|n| n.alive())
        .map(|n| n.port)
        .find(|&p| {
            TestCluster::info_of(p, "replication").contains(&format!("master_port:{victim_port}"))
        });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut took_over = false;
    loop {
        let ok = cluster
            .nodes
            .iter()
            .filter(|n| n.alive())
            .all(|n| cluster_state_ok(n.port))
            && replica
                .is_some_and(|p| TestCluster::info_of(p, "replication").contains("role:master"));
        if ok {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no failover within 30 s"
        );
        if !took_over && std::time::Instant::now() + Duration::from_secs(22) > deadline {
            if let Some(p) = replica {
                let mut c = redis::Client::open(format!("redis://127.0.0.1:{p}"))
                    .unwrap()
                    .get_connection()
                    .unwrap();
                let _: redis::RedisResult<()> = redis::cmd("CLUSTER")
                    .arg("FAILOVER")
                    .arg("TAKEOVER")
                    .query(&mut c);
            }
            took_over = true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The old master rejoins as the new master's replica, so WAIT 1 can succeed again there.
    cluster.nodes[victim].restart().unwrap();
    feeder.join().unwrap();

    let mut conn = redis_conn::connect(Target::Cluster(seeds), Duration::from_secs(10)).unwrap();
    let short = short_metrics(&mut conn, "cl.fail", METRICS, POINTS).await;
    assert!(
        short.is_empty(),
        "metrics short of points (metric, distinct, stored): {short:?}; log: {:?}",
        skyline::telemetry::recent_errors(50)
    );
    assert!(
        retried() > retried_before,
        "the writes that met the dead master were counted and retried"
    );
    running.shutdown().await;
}

/// GET `path` from the webapp at `base` with the test password: (status, body).
async fn web_get(base: &str, path: &str) -> (u16, String) {
    let mut res = client()
        .get(format!("{base}{path}"))
        .basic_auth("admin", PASSWORD)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let body = res.body().limit(16 << 20).await.unwrap();
    (
        res.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The key names listed on a rebrow page, and its "next page" link (unescaped).
fn rebrow_page(body: &str) -> (Vec<String>, Option<String>) {
    let names = body
        .split("<td class=\"mono metric-cell\"><a href=\"/rebrow/key?k=")
        .skip(1)
        .map(|part| {
            part.split('>')
                .nth(1)
                .unwrap()
                .split('<')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let next = body.split("class=\"button\" href=\"").nth(1).map(|rest| {
        rest.split('"')
            .next()
            .unwrap()
            .replace("&amp;", "&")
            .replace("&#x3D;", "=")
    });
    (names, next)
}

/// One Redis Cluster, one in-process daemon with the webapp and the pickle listener on it.
/// rebrow: 300 keys spread over the three masters (among 3,000 others) are found by paging
/// `/rebrow` (20 a page) exactly once each; the pages walk master 0, 1 and 2 (the cursor
/// `<master>-<cursor>`, mid-master too) and end after the last; each master's address and
/// `INFO` are shown. `skyline seed` (the binary) against the daemon reads its metric back
/// through the cluster and prints PASS.
#[actix_rt::test]
async fn rebrow_pages_every_master_and_seed_reads_through_the_cluster() {
    let dir = TempDir::new("cluster-rebrow");
    let cluster = start_cluster(&dir.0);
    let seeds = cluster.urls();
    let mut cfg = skyline::config::Config::default();
    cfg.data.dir = dir.0.join("data");
    cfg.redis.cluster_urls = seeds.clone();
    cfg.cluster.node_id = "rebrow".into();
    cfg.horizon.pickle_bind = "127.0.0.1:0".into();
    cfg.horizon.udp_bind = String::new();
    cfg.horizon.plaintext_bind = String::new();
    cfg.horizon.flush_interval_ms = 20;
    cfg.horizon.workers = 2;
    cfg.webapp.bind = "127.0.0.1:0".into();
    cfg.webapp.auth_password = PASSWORD.into();
    cfg.flux.enabled = false;
    cfg.analyzer.enabled = false;
    cfg.panorama.enabled = false;
    cfg.thunder.enabled = false;
    let running = skyline::app::start(&cfg).await.unwrap();
    let base = format!("http://{}", running.http_addr.unwrap());

    const KEYS: usize = 300;
    let name = |i: usize| format!("metrics.rebrow.{i:03}");
    let mut conn =
        redis_conn::connect(Target::Cluster(seeds.clone()), Duration::from_secs(10)).unwrap();
    let mut p = redis::pipe();
    for i in 0..KEYS {
        p.cmd("SET").arg(name(i)).arg(i).ignore();
    }
    for i in 0..3_000 {
        p.cmd("SET").arg(format!("filler.{i:04}")).arg(i).ignore();
    }
    let _: () = p.query_async(&mut conn).await.unwrap();
    // The keys really are on every master.
    let masters = cluster.master_ports();
    assert_eq!(masters.len(), 3);
    for &port in &masters {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_connection()
            .unwrap();
        let mine: Vec<String> = redis::cmd("KEYS")
            .arg("metrics.rebrow.*")
            .query(&mut c)
            .unwrap();
        assert!(mine.len() >= 50, "master {port} holds {}", mine.len());
    }

    let mut seen: Vec<String> = Vec::new();
    let mut cursors: Vec<(usize, u64)> = Vec::new();
    let mut path = "/rebrow?pattern=metrics.rebrow.*&count=20".to_string();
    let last = loop {
        let (status, body) = web_get(&base, &path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        crate::support::web::assert_safe_html(&path, &body);
        let (names, next) = rebrow_page(&body);
        seen.extend(names);
        match next {
            Some(next) => {
                let cursor = next.split("cursor=").nth(1).expect("a cursor in the link");
                let (m, c) = cursor.split_once('-').expect("<master>-<cursor>");
                cursors.push((m.parse().unwrap(), c.parse().unwrap()));
                path = next;
            }
            None => break body,
        }
        assert!(cursors.len() < 200, "paging does not end: {cursors:?}");
    };
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), seen.len(), "no key twice across pages");
    assert_eq!(sorted, (0..KEYS).map(name).collect::<Vec<_>>(), "every key");
    assert!(last.contains("End of the keyspace."));
    let walked: std::collections::BTreeSet<usize> = cursors.iter().map(|c| c.0).collect();
    assert!(
        walked.contains(&1) && walked.contains(&2),
        "the pages went on to masters 1 and 2: {cursors:?}"
    );
    assert!(
        cursors.iter().any(|c| c.1 != 0),
        "a page ended inside a master: {cursors:?}"
    );
    assert!(
        cursors.windows(2).all(|w| w[0].0 <= w[1].0),
        "master by master, forward: {cursors:?}"
    );
    // Each master shown, with its INFO; the keys summed over the masters.
    for &port in &masters {
        assert!(
            last.contains(&format!("127.0.0.1:{port}")),
            "master {port} shown"
        );
    }
    assert!(last.contains("INFO of each master") && last.contains("redis_version"));
    let total: u64 = masters
        .iter()
        .map(|&port| {
            let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}"))
                .unwrap()
                .get_connection()
                .unwrap();
            redis::cmd("DBSIZE").query::<u64>(&mut c).unwrap()
        })
        .sum();
    let shown: u64 = last
        .split("<span class=\"stat-label\">keys</span><span class=\"stat-value\">")
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .and_then(|v| v.parse().ok())
        .expect("the keys figure");
    // (The daemon's own keys may come and go between the page and this count.)
    assert!(
        total >= 3_300 && shown + 20 >= total && shown <= total + 20,
        "keys summed over the masters: {shown} shown, {total} counted"
    );
    // A key on each master opens; cursors that do not fit the cluster are refused.
    for i in [0, 1, 2, 150, 299] {
        use base64::Engine;
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(name(i));
        let (status, body) = web_get(&base, &format!("/rebrow/key?k={k}")).await;
        assert_eq!(status, 200, "{}: {body}", name(i));
        assert!(body.contains(&name(i)));
    }
    assert_eq!(web_get(&base, "/rebrow?cursor=7-0").await.0, 400);
    assert_eq!(web_get(&base, "/rebrow?cursor=1792").await.0, 400);

    // `skyline seed` against this daemon, reading back through the cluster.
    let seed_cfg = dir.0.join("seed.toml");
    std::fs::write(
        &seed_cfg,
        format!(
            "[redis]\ncluster_urls = [{}]\n[horizon]\npickle_bind = \"{}\"\n[data]\ndir = \"{}\"\n",
            seeds
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", "),
            running.pickle_addr.unwrap(),
            dir.0.join("data").display()
        ),
    )
    .unwrap();
    let seed = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_skyline"))
            .args(["seed", "--config"])
            .arg(&seed_cfg)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&seed.stdout);
    assert!(
        seed.status.success() && out.contains("PASS"),
        "seed: {out} {}",
        String::from_utf8_lossy(&seed.stderr)
    );
    running.shutdown().await;
}
