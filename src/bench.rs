//! `skyline bench ingest`: end-to-end ingest throughput. Starts a private redis-server and the
//! daemon's listeners and metric actors in-process, pushes N pickled datapoints (carbon-relay
//! style frames of 500 float pairs) over loopback on several connections, and times until all
//! of them are in Redis. The same run then measures `redis-benchmark -P 64 APPEND` against the
//! same kind of server as the ceiling, and reports both and their ratio. After the load it
//! reads Redis's `used_memory` (bytes per point as loaded), runs one Roomba pass (which
//! compacts strings APPEND left in oversized allocations) and reads it again.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::telemetry::metrics as m;
use crate::testkit::TestRedis;

pub mod phased;

/// Result of one ingest benchmark.
#[derive(Debug, Clone)]
pub struct IngestReport {
    /// Datapoints pushed.
    pub points: usize,
    /// Distinct metrics.
    pub metrics: usize,
    /// Seconds from the first byte sent to the last datapoint written to Redis.
    pub seconds: f64,
    /// Datapoints per second end to end.
    pub rate: f64,
    /// `redis-benchmark -P 64 APPEND` requests per second on the same machine, if it ran.
    pub redis_append_ceiling: Option<f64>,
    /// Resident memory (kB) after start and after the run.
    pub rss_kb: (u64, u64),
    /// Redis's `used_memory` around the load, if it could be read (summed over the nodes of
    /// a cluster).
    pub redis_memory: Option<RedisMemory>,
    /// Redis masters the load went to (1: one redis-server; N: an N-master Redis Cluster).
    pub redis_nodes: usize,
    /// CPU seconds of this process (listeners, metric actors, Redis client, the sender
    /// threads) from the first byte sent to the last datapoint written.
    pub cpu_secs: f64,
    /// CPU seconds of the redis-server(s) over the same window (`INFO cpu`, summed).
    pub redis_cpu_secs: Option<f64>,
    /// Bytes the redis-server(s) received over the same window (`total_net_input_bytes`).
    pub redis_net_in: Option<f64>,
}

impl IngestReport {
    /// Microseconds of this process's CPU per datapoint.
    pub fn cpu_us_per_point(&self) -> f64 {
        self.cpu_secs * 1e6 / self.points.max(1) as f64
    }

    /// Microseconds of Redis CPU per datapoint.
    pub fn redis_cpu_us_per_point(&self) -> Option<f64> {
        self.redis_cpu_secs
            .map(|c| c * 1e6 / self.points.max(1) as f64)
    }

    /// Bytes sent to Redis per datapoint.
    pub fn net_bytes_per_point(&self) -> Option<f64> {
        self.redis_net_in.map(|b| b / self.points.max(1) as f64)
    }
}

/// Redis's `used_memory` (bytes) before the load, after it, and after one Roomba pass.
#[derive(Debug, Clone, Copy)]
pub struct RedisMemory {
    /// The empty server.
    pub empty: u64,
    /// Right after the last datapoint was written.
    pub loaded: u64,
    /// After one Roomba pass over every key.
    pub after_roomba: u64,
    /// Keys that pass rewrote to shrink their allocation.
    pub compacted: usize,
    /// Keys that pass rewrote sorted (several connections interleave a metric's points).
    pub sorted: usize,
}

/// What `skyline bench ingest` pushes.
#[derive(Debug, Clone, Copy)]
pub struct IngestSpec {
    /// Datapoints to push (ignored when `points_per_metric` is set).
    pub points: usize,
    /// Distinct metrics.
    pub metrics: usize,
    /// Connections.
    pub connections: usize,
    /// `Some(n)`: n points per metric, 60 s apart, ending now (a 24 h load is 1,440), and the
    /// daemon keeps points that old; `None`: `points` spread evenly, 1 s apart.
    pub points_per_metric: Option<usize>,
    /// Points of history per metric written to Redis before the daemon starts (ending a
    /// minute before the load), so the analyzer's first run is a restart replay; 0: none.
    pub history: usize,
    /// 0: one private redis-server; N: a private N-master Redis Cluster
    /// ([`crate::testkit::TestCluster`]), the daemon in cluster mode.
    pub cluster: usize,
}

impl IngestSpec {
    fn total(&self) -> usize {
        match self.points_per_metric {
            Some(n) => n.saturating_mul(self.metrics),
            None => self.points,
        }
    }
}

/// Built-in defaults plus `SKYLINE__…` environment overrides (no config file), so a benchmark
/// can be repeated with one setting changed.
fn bench_config() -> Result<Config, String> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    crate::config::from_str_with_env("", &env).map_err(|err| err.to_string())
}

/// The `BENCH …` summary line our wrk Lua script prints, or an error quoting wrk's output.
fn wrk_summary(stdout: &str, stderr: &[u8]) -> Result<String, String> {
    stdout
        .lines()
        .find(|l| l.starts_with("BENCH "))
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "wrk printed no summary: {stdout}{}",
                String::from_utf8_lossy(stderr)
            )
        })
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// Pre-encode the frames up to this many datapoints; beyond, each sender encodes its own as
/// it goes (a 24 h load of 10,000 metrics would need about a gigabyte of frames).
const PRE_ENCODE_MAX_POINTS: usize = 4_000_000;

/// The datapoints of one benchmark, in arrival order: step by step, every metric once per
/// step (what carbon-relay sends after a catch-up).
struct Load {
    names: Vec<String>,
    per_metric: usize,
    spacing: i64,
    now: i64,
}

impl Load {
    fn new(points: usize, metrics: usize, per_metric: Option<usize>) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let metrics = metrics.max(1);
        Load {
            names: (0..metrics)
                .map(|i| format!("bench.host-{}.metric-{}", i % 97, i))
                .collect(),
            per_metric: per_metric.unwrap_or_else(|| points.div_ceil(metrics).max(1)),
            spacing: if per_metric.is_some() { 60 } else { 1 },
            now,
        }
    }

    /// Seconds between the oldest datapoint and now.
    fn span_secs(&self) -> i64 {
        self.per_metric as i64 * self.spacing
    }

    /// Frames of up to 500 datapoints for items `from..to`.
    fn frames(&self, from: usize, to: usize) -> Result<Vec<Vec<u8>>, String> {
        let mut frames = Vec::new();
        let mut start = from;
        while start < to {
            let end = (start + 500).min(to);
            frames.push(self.frame(start, end)?);
            start = end;
        }
        Ok(frames)
    }

    fn frame(&self, from: usize, to: usize) -> Result<Vec<u8>, String> {
        let metrics = self.names.len();
        let items: Vec<(&str, (f64, f64))> = (from..to)
            .map(|k| {
                let (step, i) = (k / metrics, k % metrics);
                let ts = (self.now - self.span_secs() + step as i64 * self.spacing) as f64;
                (self.names[i].as_str(), (ts, (i + step) as f64 * 0.5))
            })
            .collect();
        let body = serde_pickle::to_vec(&items, serde_pickle::SerOptions::new().proto_v2())
            .map_err(|err| err.to_string())?;
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&body);
        Ok(f)
    }
}

/// The private Redis of one benchmark: one redis-server, or an N-master Redis Cluster.
enum BenchRedis {
    Single(TestRedis),
    Cluster(crate::testkit::TestCluster),
}

impl BenchRedis {
    /// `masters` 0: one redis-server; N: an N-master cluster without replicas.
    fn start(masters: usize) -> Result<Self, String> {
        if masters == 0 {
            TestRedis::start()
                .map(BenchRedis::Single)
                .map_err(|err| format!("redis-server: {err}"))
        } else {
            crate::testkit::TestCluster::start(masters, 0)
                .map(BenchRedis::Cluster)
                .map_err(|err| format!("redis cluster: {err}"))
        }
    }

    fn ports(&self) -> Vec<u16> {
        match self {
            BenchRedis::Single(r) => vec![r.port],
            BenchRedis::Cluster(c) => c.nodes.iter().map(|n| n.port).collect(),
        }
    }

    fn masters(&self) -> usize {
        match self {
            BenchRedis::Single(_) => 1,
            BenchRedis::Cluster(c) => c.masters,
        }
    }

    fn target(&self) -> crate::store::redis_conn::Target {
        match self {
            BenchRedis::Single(r) => crate::store::redis_conn::Target::Single(r.url()),
            BenchRedis::Cluster(c) => crate::store::redis_conn::Target::Cluster(c.urls()),
        }
    }

    /// Points the daemon's config at it.
    fn configure(&self, config: &mut Config) {
        match self {
            BenchRedis::Single(r) => config.redis.url = r.url(),
            BenchRedis::Cluster(c) => {
                config.redis.cluster_urls = c.urls();
                config.cluster.node_id = "bench".into();
            }
        }
    }

    /// An `INFO` field summed over the servers.
    fn info(&self, section: &str, field: &str) -> Option<f64> {
        crate::testkit::info_sum(&self.ports(), section, field)
    }

    /// Redis CPU seconds (user + sys), summed over the servers.
    fn cpu_secs(&self) -> Option<f64> {
        Some(self.info("cpu", "used_cpu_user")? + self.info("cpu", "used_cpu_sys")?)
    }

    fn used_memory(&self) -> Option<u64> {
        self.info("memory", "used_memory").map(|v| v as u64)
    }
}

/// `redis-benchmark -P 64 APPEND` requests/s against a fresh private server.
fn redis_ceiling(n: usize) -> Option<f64> {
    let r = TestRedis::start().ok()?;
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &r.port.to_string(),
            "-P",
            "64",
            "-q",
        ])
        .args(["-n", &n.to_string(), "-r", "100000", "-c", "50"])
        .args(["APPEND", "bench:__rand_int__", "0123456789abcdefghi"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "APPEND bench:__rand_int__ 0123...: 1234567.00 requests per second, p50=..."
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("requests per second"))?;
    let after = line.rsplit_once(": ")?.1;
    after.split_whitespace().next()?.parse().ok()
}

/// Runs the benchmark. `out` receives progress lines.
pub fn ingest(
    points: usize,
    metrics: usize,
    connections: usize,
    out: &mut dyn Write,
) -> Result<IngestReport, String> {
    ingest_with(points, metrics, connections, &|_| {}, out)
}

/// [`ingest`] with `tweak` applied to the daemon's config (e.g. Mirage on, for a
/// before/after comparison in one run).
pub fn ingest_with(
    points: usize,
    metrics: usize,
    connections: usize,
    tweak: &dyn Fn(&mut Config),
    out: &mut dyn Write,
) -> Result<IngestReport, String> {
    let spec = IngestSpec {
        points,
        metrics,
        connections,
        points_per_metric: None,
        history: 0,
        cluster: 0,
    };
    ingest_spec(&spec, tweak, out)
}

/// Result of `skyline bench ingest --stream`: the same ingest twice in one run, with the
/// analyzer running every second over `history` points per metric already in Redis (so its
/// first run is a restart replay), once with Skyline's algorithms alone, once with the
/// stream detector too.
#[derive(Debug, Clone)]
pub struct IngestStreamReport {
    /// `detectors = ["skyline"]`.
    pub off: IngestReport,
    /// `detectors = ["skyline", "stream"]`, `combine = "any"`.
    pub on: IngestReport,
    /// Points per metric in Redis before the daemon starts.
    pub history: usize,
}

/// Runs `skyline bench ingest --stream` (see [`IngestStreamReport`]).
pub fn ingest_stream(
    points: usize,
    metrics: usize,
    connections: usize,
    history: usize,
    out: &mut dyn Write,
) -> Result<IngestStreamReport, String> {
    let with = |detectors: &[&str], combine: &str| {
        let detectors: Vec<String> = detectors.iter().map(|d| d.to_string()).collect();
        let combine = combine.to_string();
        move |c: &mut Config| {
            c.analyzer.enabled = true;
            c.analyzer.run_every_secs = 1;
            c.analyzer.detectors = detectors.clone();
            c.analyzer.combine = combine.clone();
        }
    };
    let _ = writeln!(
        out,
        "ingest, analyzer every 1 s, Skyline's algorithms only…"
    );
    let spec = IngestSpec {
        points,
        metrics,
        connections,
        points_per_metric: None,
        history,
        cluster: 0,
    };
    let off = ingest_spec(&spec, &with(&["skyline"], "skyline"), out)?;
    let _ = writeln!(
        out,
        "ingest, analyzer every 1 s, Skyline and the stream detector…"
    );
    let on = ingest_spec(&spec, &with(&["skyline", "stream"], "any"), out)?;
    Ok(IngestStreamReport { off, on, history })
}

/// `history` points per ingest metric (ending before the ingested ones) in Redis, and the
/// metrics in `metrics.unique_metrics`.
fn preload_history(url: &str, metrics: usize, history: usize, end: i64) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = client.get_connection().map_err(|e| e.to_string())?;
    for start in (0..metrics).step_by(500) {
        let mut pipe = redis::pipe();
        let mut keys = Vec::new();
        for i in start..(start + 500).min(metrics) {
            let key = format!(
                "{}bench.host-{}.metric-{i}",
                crate::model::FULL_NAMESPACE,
                i % 97
            );
            pipe.cmd("SET")
                .arg(&key)
                .arg(series_bytes(i as u64, history, end))
                .ignore();
            keys.push(key);
        }
        pipe.cmd("SADD")
            .arg(crate::model::UNIQUE_METRICS)
            .arg(keys)
            .ignore();
        let _: () = pipe.query(&mut conn).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Runs the benchmark described by `spec`, with `tweak` applied to the daemon's config.
pub fn ingest_spec(
    spec: &IngestSpec,
    tweak: &dyn Fn(&mut Config),
    out: &mut dyn Write,
) -> Result<IngestReport, String> {
    let points = spec.total();
    let metrics = spec.metrics.max(1);
    let connections = spec.connections.max(1);
    if spec.cluster > 0 && spec.history > 0 {
        return Err("history preloading is for one redis-server only".into());
    }
    let redis = BenchRedis::start(spec.cluster)?;
    let dir = std::env::temp_dir().join(format!("skyline-bench-{}", std::process::id()));
    let mut config = bench_config()?;
    tweak(&mut config);
    config.data.dir = dir.clone();
    redis.configure(&mut config);
    config.horizon.pickle_bind = "127.0.0.1:0".into();
    config.horizon.udp_bind = String::new();
    config.horizon.roomba_interval_secs = 3600;
    let load = std::sync::Arc::new(Load::new(points, metrics, spec.points_per_metric));
    if spec.history > 0 {
        let history = spec.history;
        let _ = writeln!(out, "loading {history} points of history per metric…");
        // The history ends a minute before the load's first datapoint.
        let end = load.now - load.span_secs() - 60;
        preload_history(redis.target().first_url(), metrics, history, end)?;
    }
    // Keep every pushed datapoint: the age filter and Roomba's window cover the whole load.
    let span = load.span_secs().max(0) as u64 + 600;
    config.horizon.max_resolution_secs = config.horizon.max_resolution_secs.max(span);
    let roomba_secs = (config.horizon.full_duration_secs + config.horizon.roomba_grace_secs)
        .max(span + 600) as f64;
    let lazy = points > PRE_ENCODE_MAX_POINTS;
    // Each connection sends a contiguous run of whole frames.
    let per_conn = points.div_ceil(500).div_ceil(connections).max(1) * 500;
    let ranges: Vec<(usize, usize)> = (0..connections)
        .map(|c| (c * per_conn, ((c + 1) * per_conn).min(points)))
        .filter(|(a, b)| a < b)
        .collect();
    let mut encoded: Vec<Vec<Vec<u8>>> = Vec::new();
    if lazy {
        let _ = writeln!(
            out,
            "{points} datapoints over {metrics} metrics; each sender encodes its frames as it goes…"
        );
    } else {
        let _ = writeln!(out, "encoding {points} datapoints over {metrics} metrics…");
        for (a, b) in &ranges {
            encoded.push(load.frames(*a, *b)?);
        }
    }
    let target = redis.target();
    let rss_start = rss_kb();
    let system = actix_rt::System::new();
    let redis_ref = &redis;
    let result = system.block_on(async move {
        let redis = redis_ref;
        let mut conn = crate::store::redis_conn::connect(target, Duration::from_secs(60))
            .map_err(|err| err.to_string())?;
        let empty = redis.used_memory();
        let running = crate::app::start(&config)
            .await
            .map_err(|err| err.to_string())?;
        let addr = running.pickle_addr.ok_or("no pickle listener")?;
        let written_before = m::DATAPOINTS_WRITTEN.get();
        let redis_cpu_before = redis.cpu_secs();
        let net_before = redis.info("stats", "total_net_input_bytes");
        let cpu_before = crate::monitor::sysinfo::cpu_seconds();
        let started = Instant::now();
        let senders: Vec<_> = ranges
            .into_iter()
            .enumerate()
            .map(|(c, (a, b))| {
                let frames = encoded.get_mut(c).map(std::mem::take);
                let load = load.clone();
                std::thread::spawn(move || -> Result<(), String> {
                    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
                    match frames {
                        Some(frames) => {
                            for f in frames {
                                s.write_all(&f).map_err(|e| e.to_string())?;
                            }
                        }
                        None => {
                            let mut start = a;
                            while start < b {
                                let end = (start + 500).min(b);
                                let f = load.frame(start, end)?;
                                s.write_all(&f).map_err(|e| e.to_string())?;
                                start = end;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(1800);
        while m::DATAPOINTS_WRITTEN.get() - written_before < points as u64 {
            if Instant::now() > deadline {
                return Err("timed out waiting for Redis writes".to_string());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        let cpu_secs = crate::monitor::sysinfo::cpu_seconds() - cpu_before;
        let redis_cpu = redis
            .cpu_secs()
            .zip(redis_cpu_before)
            .map(|(after, before)| after - before);
        let net_in = redis
            .info("stats", "total_net_input_bytes")
            .zip(net_before)
            .map(|(after, before)| after - before);
        for s in senders {
            s.join().map_err(|_| "sender panicked".to_string())??;
        }
        running.shutdown().await;
        let loaded = redis.used_memory();
        let roomba = crate::store::roomba::run_once(&mut conn, roomba_secs)
            .await
            .map_err(|err| format!("roomba pass: {err}"))?;
        if roomba.euthanized > 0 {
            return Err(format!(
                "the Roomba pass deleted {} keys of a load inside its window",
                roomba.euthanized
            ));
        }
        let after = redis.used_memory();
        let memory = match (empty, loaded, after) {
            (Some(empty), Some(loaded), Some(after_roomba)) => Some(RedisMemory {
                empty,
                loaded,
                after_roomba,
                compacted: roomba.compacted,
                sorted: roomba.trimmed,
            }),
            _ => None,
        };
        Ok::<_, String>((seconds, memory, cpu_secs, redis_cpu, net_in))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let (seconds, redis_memory, cpu_secs, redis_cpu_secs, redis_net_in) = result?;
    let rss_end = rss_kb();
    let redis_nodes = redis.masters();
    drop(redis);
    let ceiling = if spec.cluster == 0 {
        let _ = writeln!(out, "measuring redis-benchmark -P 64 APPEND ceiling…");
        redis_ceiling(points.clamp(100_000, 2_000_000))
    } else {
        None
    };
    Ok(IngestReport {
        points,
        metrics,
        seconds,
        rate: points as f64 / seconds,
        redis_append_ceiling: ceiling,
        rss_kb: (rss_start, rss_end),
        redis_memory,
        redis_nodes,
        cpu_secs,
        redis_cpu_secs,
        redis_net_in,
    })
}

/// `skyline bench ingest --cluster N`: the same load into one redis-server, then into an
/// N-master Redis Cluster, in one run (single first, then cluster).
pub fn ingest_cluster(
    spec: &IngestSpec,
    masters: usize,
    out: &mut dyn Write,
) -> Result<(IngestReport, IngestReport), String> {
    let single = IngestSpec {
        cluster: 0,
        ..*spec
    };
    let _ = writeln!(out, "ingest into one redis-server…");
    let one = ingest_spec(&single, &|_| {}, out)?;
    let clustered = IngestSpec {
        cluster: masters.max(1),
        ..*spec
    };
    let _ = writeln!(out, "ingest into a {masters}-master Redis Cluster…");
    let many = ingest_spec(&clustered, &|_| {}, out)?;
    Ok((one, many))
}

// ---------------------------------------------------------------------------------------------
// `skyline bench flux`
// ---------------------------------------------------------------------------------------------

/// Options of `skyline bench flux`.
#[derive(Debug, Clone)]
pub struct FluxBenchOptions {
    /// wrk run time, seconds.
    pub duration_secs: u64,
    /// wrk threads.
    pub threads: usize,
    /// wrk connections (over all threads).
    pub connections: usize,
    /// Datapoints per POST.
    pub batch: usize,
    /// Distinct metrics per wrk thread.
    pub metrics_per_thread: usize,
    /// Also feed our own metric actors (`[flux] feed_horizon`).
    pub feed_horizon: bool,
}

/// Result of one flux benchmark.
#[derive(Debug, Clone)]
pub struct FluxReport {
    /// HTTP requests wrk completed.
    pub requests: u64,
    /// Responses other than 2xx.
    pub non_2xx: u64,
    /// Socket errors (connect, read, write, timeout).
    pub socket_errors: u64,
    /// wrk's run time, seconds.
    pub seconds: f64,
    /// Datapoints answered 204.
    pub accepted: u64,
    /// Datapoints the pickle sink decoded.
    pub forwarded: u64,
    /// Datapoints dropped as duplicates (should be 0).
    pub deduplicated: u64,
    /// Datapoints written to Redis by the metric actors.
    pub horizon_written: u64,
    /// Seconds from wrk's start until the sink had every accepted datapoint.
    pub forward_seconds: f64,
    /// Latency percentiles (µs): 50, 90, 99, max.
    pub latency_us: [u64; 4],
    /// /proc/loadavg before and after.
    pub load: (String, String),
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// A carbon pickle receiver that counts the datapoints it decodes.
fn counting_sink() -> Result<
    (
        std::net::SocketAddr,
        std::sync::Arc<std::sync::atomic::AtomicU64>,
    ),
    String,
> {
    use std::io::Read;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let count = Arc::new(AtomicU64::new(0));
    let c = count.clone();
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map(|_| ())
    };
    spawn(
        "bench-sink",
        Box::new(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let c = c.clone();
                let _ = spawn(
                    "bench-sink-conn",
                    Box::new(move || {
                        let mut buf = Vec::new();
                        let mut chunk = vec![0u8; 1 << 16];
                        loop {
                            match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            let mut pos = 0;
                            while buf.len() >= pos + 4 {
                                let len = u32::from_be_bytes([
                                    buf[pos],
                                    buf[pos + 1],
                                    buf[pos + 2],
                                    buf[pos + 3],
                                ]) as usize;
                                if buf.len() < pos + 4 + len {
                                    break;
                                }
                                if let Ok(d) = crate::listen::pickle::decode_datapoints(
                                    &buf[pos + 4..pos + 4 + len],
                                ) {
                                    c.fetch_add(d.points.len() as u64, Ordering::Relaxed);
                                }
                                pos += 4 + len;
                            }
                            buf.drain(..pos);
                        }
                    }),
                );
            }
        }),
    )
    .map_err(|e| e.to_string())?;
    Ok((addr, count))
}

fn wrk_script(key: &str, batch: usize, blocks: usize, base_ts: i64) -> String {
    format!(
        r#"-- generated by `skyline bench flux`: every request POSTs {batch} datapoints (key in the `key`
-- header, so a full queue is refused before the body is parsed); thread t
-- cycles over {blocks} blocks of {batch} metrics, the timestamp rising by 1 s per cycle, so no
-- datapoint is a duplicate.
local key = "{key}"
local batch = {batch}
local blocks = {blocks}
local base = {base_ts}
local counter = 0
local nthreads = 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end
function request()
  local block = counter % blocks
  local ts = base + math.floor(counter / blocks)
  counter = counter + 1
  local parts = {{}}
  for j = 0, batch - 1 do
    parts[j + 1] = string.format('{{"metric":"bench.t%d.b%d.m%d","timestamp":%d,"value":%d}}', tid, block, j, ts, counter + j)
  end
  local body = '{{"metrics":[' .. table.concat(parts, ",") .. ']}}'
  return wrk.format("POST", "/flux/metric_data_post", {{["Content-Type"] = "application/json", ["key"] = key}}, body)
end
function done(summary, latency, requests)
  io.write(string.format("BENCH requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d p50=%d p90=%d p99=%d max=%d\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"#
    )
}

fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Runs `wrk` against flux in-process: private redis-server, the daemon's HTTP server, flux's
/// forwarder and metric actors, and a counting pickle sink as carbon.
pub fn flux(opts: &FluxBenchOptions, out: &mut dyn Write) -> Result<FluxReport, String> {
    use std::sync::atomic::Ordering;
    const KEY: &str = "bench-key-0123456789";
    if Command::new("wrk").arg("--version").output().is_err() {
        return Err("wrk not found: apt-get install -y wrk".into());
    }
    let redis = TestRedis::start().map_err(|err| format!("redis-server: {err}"))?;
    let dir = std::env::temp_dir().join(format!("skyline-bench-flux-{}", std::process::id()));
    let (sink_addr, sink_count) = counting_sink()?;
    let mut config = bench_config()?;
    config.data.dir = dir.clone();
    config.redis.url = redis.url();
    config.horizon.pickle_bind = String::new();
    config.horizon.udp_bind = String::new();
    config.horizon.roomba_interval_secs = 3600;
    config.webapp.bind = "127.0.0.1:0".into();
    config.flux.api_keys = vec![crate::flux::config::ApiKey::Plain(KEY.into())];
    config.flux.carbon_pickle_addr = sink_addr.to_string();
    config.flux.feed_horizon = opts.feed_horizon;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let blocks = (opts.metrics_per_thread / opts.batch.max(1)).max(1);
    let script = dir.join("flux.lua");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::write(&script, wrk_script(KEY, opts.batch, blocks, now - 900))
        .map_err(|e| e.to_string())?;
    let load_before = loadavg();
    let opts = opts.clone();
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let running = crate::app::start(&config)
            .await
            .map_err(|err| err.to_string())?;
        let http = running.http_addr.ok_or("no HTTP server")?;
        let accepted_before = m::FLUX_ACCEPTED.get();
        let dedup_before = m::FLUX_DEDUPLICATED.get();
        let written_before = m::DATAPOINTS_WRITTEN.get();
        let sent_before = sink_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "wrk -t{} -c{} -d{}s --latency -s {} http://{http}/flux/metric_data_post",
            opts.threads,
            opts.connections,
            opts.duration_secs,
            script.display()
        );
        let (tx, rx) = tokio::sync::oneshot::channel();
        let args = vec![
            format!("-t{}", opts.threads),
            format!("-c{}", opts.connections),
            format!("-d{}s", opts.duration_secs),
            "--latency".to_string(),
            "-s".to_string(),
            script.display().to_string(),
            format!("http://{http}/flux/metric_data_post"),
        ];
        let started = Instant::now();
        std::thread::spawn(move || {
            let _ = tx.send(Command::new("wrk").args(&args).output());
        });
        let output = rx
            .await
            .map_err(|_| "wrk thread died".to_string())?
            .map_err(|e| format!("wrk: {e}"))?;
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let _ = write!(out, "{text}");
        let line = wrk_summary(&text, &output.stderr)?;
        let accepted = m::FLUX_ACCEPTED.get() - accepted_before;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut forwarded;
        loop {
            forwarded = sink_count.load(Ordering::Relaxed) - sent_before;
            let dedup = m::FLUX_DEDUPLICATED.get() - dedup_before;
            if forwarded + dedup >= accepted || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let forward_seconds = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let horizon_written = m::DATAPOINTS_WRITTEN.get() - written_before;
        running.shutdown().await;
        Ok::<_, String>(FluxReport {
            requests: field(&line, "requests"),
            non_2xx: field(&line, "status"),
            socket_errors: field(&line, "connect")
                + field(&line, "read")
                + field(&line, "write")
                + field(&line, "timeout"),
            seconds: field(&line, "duration_us") as f64 / 1e6,
            accepted,
            forwarded,
            deduplicated: m::FLUX_DEDUPLICATED.get() - dedup_before,
            horizon_written,
            forward_seconds,
            latency_us: [
                field(&line, "p50"),
                field(&line, "p90"),
                field(&line, "p99"),
                field(&line, "max"),
            ],
            load: (load_before, String::new()),
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
    drop(redis);
    let mut report = result?;
    report.load.1 = loadavg();
    Ok(report)
}

/// Result of `skyline bench analyze`.
#[derive(Debug, Clone)]
pub struct AnalyzeReport {
    /// Metrics per cycle.
    pub metrics: usize,
    /// Points per metric.
    pub points: usize,
    /// Analysis threads.
    pub workers: usize,
    /// Seconds of each full cycle (SMEMBERS, MGET, decode, algorithms, aggregation).
    pub cycles: Vec<f64>,
    /// Anomalies in the last cycle.
    pub anomalies: usize,
    /// Baseline in the same process: one thread, decode + algorithms, no Redis (metrics/s).
    pub single_thread_pure: f64,
    /// With `--stream`: the same cycles again over the same data with the stream detector on
    /// (a fresh store, so the first of them replays every metric's 1,440 points, as after a
    /// restart), and the anomalies of the last of them.
    pub stream_cycles: Option<(Vec<f64>, usize)>,
    /// Redis masters the series were on (1: one redis-server; N: an N-master Redis Cluster).
    pub redis_nodes: usize,
    /// Redis `used_memory` per loaded metric (after the load minus empty, summed over nodes).
    pub redis_bytes_per_metric: Option<f64>,
    /// CPU seconds of this process per cycle (mean over the timed cycles: Redis client,
    /// decoding, algorithms).
    pub cpu_secs_per_cycle: f64,
    /// CPU seconds of the redis-server(s) per cycle (mean, summed over the nodes).
    pub redis_cpu_secs_per_cycle: Option<f64>,
    /// Bytes the redis-server(s) sent per cycle (mean, `total_net_output_bytes`).
    pub redis_net_out_per_cycle: Option<f64>,
}

impl AnalyzeReport {
    /// The best cycle, seconds.
    pub fn best(&self) -> f64 {
        self.cycles.iter().copied().fold(f64::MAX, f64::min)
    }

    /// Microseconds of wall time per metric in the best cycle.
    pub fn us_per_metric(&self) -> f64 {
        self.best() * 1e6 / self.metrics.max(1) as f64
    }
}

impl std::fmt::Display for AnalyzeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let best = self.cycles.iter().copied().fold(f64::MAX, f64::min);
        let rate = self.metrics as f64 / best;
        writeln!(
            f,
            "analyze: {} metrics x {} points, {} workers",
            self.metrics, self.points, self.workers
        )?;
        writeln!(
            f,
            "analyze: cycles {:?} s (best {best:.3} s, Redis reads included), {} anomalies",
            self.cycles
                .iter()
                .map(|c| (c * 1000.0).round() / 1000.0)
                .collect::<Vec<_>>(),
            self.anomalies
        )?;
        writeln!(
            f,
            "analyze: {rate:.0} metrics/s in full cycles, {:.0} metrics/s per worker",
            rate / self.workers as f64
        )?;
        writeln!(
            f,
            "baseline (same run): one thread, no Redis: {:.0} metrics/s; cycle rate / baseline = {:.2}",
            self.single_thread_pure,
            rate / self.single_thread_pure
        )?;
        write!(
            f,
            "projected 100,000-metric cycle at this rate: {:.1} s",
            100_000.0 / rate
        )?;
        if let Some((cycles, anomalies)) = &self.stream_cycles {
            let round = |c: &f64| (c * 1000.0).round() / 1000.0;
            let first = cycles.first().copied().unwrap_or(0.0);
            let rest = cycles.iter().skip(1).copied().fold(f64::MAX, f64::min);
            write!(
                f,
                "\nstream on (combine any), same run: cycles {:?} s, {anomalies} anomalies\n\
                 stream on: first cycle (restart replay of {} x {} points) {first:.3} s = {:.2} x the best cycle off; \
                 later cycles best {:.3} s = {:.2} x off",
                cycles.iter().map(round).collect::<Vec<_>>(),
                self.metrics,
                self.points,
                first / best,
                if rest == f64::MAX { first } else { rest },
                if rest == f64::MAX { first } else { rest } / best,
            )?;
        }
        Ok(())
    }
}

fn series_bytes(seed: u64, points: usize, end: i64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut v = 100.0 + 50.0 * next();
    let mut out = Vec::with_capacity(points * 19);
    for i in 0..points {
        v += next() - 0.5;
        let mut value = v + 2.0 * (next() - 0.5);
        // one metric in fifty ends in a spike
        if seed % 50 == 0 && i + 3 >= points {
            value += 200.0;
        }
        let ts = (end - ((points - 1 - i) as i64) * 60) as f64;
        crate::model::msgpack::encode_point(
            &mut out,
            &crate::model::Point {
                timestamp: crate::model::Number::Float(ts),
                value: crate::model::Number::Float(value),
            },
        );
    }
    out
}

/// Runs `skyline bench analyze`.
pub fn analyze(
    metrics: usize,
    cycles: usize,
    workers: usize,
    out: &mut dyn Write,
) -> Result<AnalyzeReport, String> {
    analyze_with(metrics, cycles, workers, false, out)
}

/// [`analyze_with`] on one redis-server (`cluster` 0) or an N-master Redis Cluster.
pub fn analyze_with(
    metrics: usize,
    cycles: usize,
    workers: usize,
    stream: bool,
    out: &mut dyn Write,
) -> Result<AnalyzeReport, String> {
    analyze_on(metrics, cycles, workers, stream, 0, out)
}

/// `skyline bench analyze --cluster N`: the same cycles over the same series on one
/// redis-server, then on an N-master Redis Cluster, in one run.
pub fn analyze_cluster(
    metrics: usize,
    cycles: usize,
    workers: usize,
    masters: usize,
    out: &mut dyn Write,
) -> Result<(AnalyzeReport, AnalyzeReport), String> {
    let _ = writeln!(out, "analysis cycles on one redis-server…");
    let one = analyze_on(metrics, cycles, workers, false, 0, out)?;
    let _ = writeln!(out, "analysis cycles on a {masters}-master Redis Cluster…");
    let many = analyze_on(metrics, cycles, workers, false, masters.max(1), out)?;
    Ok((one, many))
}

/// Runs `skyline bench analyze`; with `stream`, the cycles run a second time over the same
/// data with the stream detector on (`detectors = ["skyline", "stream"]`, `combine =
/// "any"`), from an empty store: its first cycle is the restart replay. `cluster` 0: one
/// private redis-server; N: a private N-master Redis Cluster.
pub fn analyze_on(
    metrics: usize,
    cycles: usize,
    workers: usize,
    stream: bool,
    cluster: usize,
    out: &mut dyn Write,
) -> Result<AnalyzeReport, String> {
    use crate::analyze::{run_cycle, AnalysisWorker, RunnerSettings};
    const POINTS: usize = 1440;
    let workers = if workers == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        workers
    };
    let redis = BenchRedis::start(cluster)?;
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64 - 30)
        .unwrap_or(0);
    let _ = writeln!(
        out,
        "loading {metrics} metrics x {POINTS} points into redis…"
    );
    let system = actix_rt::System::new();
    let target = redis.target();
    // The cluster client spawns its task on the runtime it is created in.
    let load_target = target.clone();
    let mut conn = system
        .block_on(
            async move { crate::store::redis_conn::connect(load_target, Duration::from_secs(60)) },
        )
        .map_err(|e| e.to_string())?;
    let empty_memory = redis.used_memory();
    let mut sample = Vec::new();
    for start in (0..metrics).step_by(500) {
        let mut pipe = redis::pipe();
        let mut keys = Vec::new();
        for i in start..(start + 500).min(metrics) {
            let key = format!("metrics.bench.host-{}.metric-{i}", i % 100);
            let bytes = series_bytes(i as u64, POINTS, end);
            if sample.len() < 2000 {
                sample.push(bytes.clone());
            }
            pipe.cmd("SET").arg(&key).arg(bytes).ignore();
            keys.push(key);
        }
        pipe.cmd("SADD")
            .arg(crate::model::UNIQUE_METRICS)
            .arg(keys)
            .ignore();
        let _: () = system
            .block_on(pipe.query_async(&mut conn))
            .map_err(|e| e.to_string())?;
    }
    let redis_bytes_per_metric = redis
        .used_memory()
        .zip(empty_memory)
        .map(|(loaded, empty)| loaded.saturating_sub(empty) as f64 / metrics.max(1) as f64);
    // Baseline: one thread, decode + algorithms, no Redis, same settings.
    let settings = crate::analyze::config::AnalyzerSettings::default().algorithm_settings(86_400);
    let now = (end + 30) as f64;
    let mut buf = Vec::new();
    let started = Instant::now();
    let mut n = 0usize;
    while started.elapsed() < Duration::from_secs(2) {
        for bytes in &sample {
            crate::model::msgpack::decode_series_f64(bytes, &mut buf).map_err(|e| e.to_string())?;
            let _ = crate::analyze::algorithms::run_selected_algorithm(&buf, now, &settings);
            n += 1;
        }
    }
    let single_thread_pure = n as f64 / started.elapsed().as_secs_f64();

    let _ = writeln!(
        out,
        "running {cycles} analysis cycles with {workers} workers…"
    );
    let redis_ref = &redis;
    let result = system.block_on(async move {
        let redis = redis_ref;
        let host = "bench".to_string();
        let s = settings.clone();
        let pool = actix::SyncArbiter::start(workers, move || {
            AnalysisWorker::new(s.clone(), host.clone())
        });
        let stream_pool = stream.then(|| {
            use crate::analyze::streaming::{Combine, StreamRun, StreamStore};
            let run = StreamRun {
                store: std::sync::Arc::new(StreamStore::new(
                    crate::analyze::stream::StreamParams::default(),
                )),
                combine: Combine::Any,
                skyline: true,
            };
            let s = settings.clone();
            actix::SyncArbiter::start(workers, move || {
                AnalysisWorker::new(s.clone(), "bench".to_string()).with_stream(run.clone())
            })
        });
        let mut conn = crate::store::redis_conn::connect(target, Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
        let runner = RunnerSettings {
            run_every: Duration::from_secs(60),
            mget_chunk: std::env::var("SKYLINE_BENCH_MGET_CHUNK")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(crate::analyze::config::AnalyzerSettings::default().mget_chunk),
            workers,
            anomaly_dump: None,
        };
        let mut times = Vec::new();
        let mut anomalies = 0;
        let cpu_before = crate::monitor::sysinfo::cpu_seconds();
        let redis_cpu_before = redis.cpu_secs();
        let net_before = redis.info("stats", "total_net_output_bytes");
        for _ in 0..cycles.max(1) {
            let r = run_cycle(&mut conn, &pool, &runner).await?;
            times.push(r.run_time);
            anomalies = r.anomalies.len();
        }
        let n = cycles.max(1) as f64;
        let cpu = (crate::monitor::sysinfo::cpu_seconds() - cpu_before) / n;
        let redis_cpu = redis
            .cpu_secs()
            .zip(redis_cpu_before)
            .map(|(a, b)| (a - b) / n);
        let net_out = redis
            .info("stats", "total_net_output_bytes")
            .zip(net_before)
            .map(|(a, b)| (a - b) / n);
        let mut stream_cycles = None;
        if let Some(pool) = stream_pool {
            let mut times = Vec::new();
            let mut anomalies = 0;
            for _ in 0..cycles.max(1) {
                let r = run_cycle(&mut conn, &pool, &runner).await?;
                times.push(r.run_time);
                anomalies = r.anomalies.len();
            }
            stream_cycles = Some((times, anomalies));
        }
        Ok::<_, String>((times, anomalies, stream_cycles, cpu, redis_cpu, net_out))
    });
    let (
        cycles,
        anomalies,
        stream_cycles,
        cpu_secs_per_cycle,
        redis_cpu_secs_per_cycle,
        redis_net_out_per_cycle,
    ) = result?;
    Ok(AnalyzeReport {
        metrics,
        points: POINTS,
        workers,
        cycles,
        anomalies,
        single_thread_pure,
        stream_cycles,
        redis_nodes: redis.masters(),
        redis_bytes_per_metric,
        cpu_secs_per_cycle,
        redis_cpu_secs_per_cycle,
        redis_net_out_per_cycle,
    })
}

// ---------------------------------------------------------------------------------------------
// `skyline bench webapp`
// ---------------------------------------------------------------------------------------------

/// Options of `skyline bench webapp`.
#[derive(Debug, Clone)]
pub struct WebappBenchOptions {
    /// wrk run time per target, seconds.
    pub duration_secs: u64,
    /// wrk threads.
    pub threads: usize,
    /// wrk connections (over all threads).
    pub connections: usize,
    /// Current anomalies on the Now page.
    pub anomalies: usize,
    /// Points of the metric `/api?metric=` serves.
    pub points: usize,
    /// Endpoint monitor levels to compare (`[monitor] default_level`, Panorama on SQLite):
    /// one daemon per entry, in order, each measured on `/api?metric=` and the Now page
    /// (no gzip). Empty: the usual four targets with Panorama off.
    pub monitor_levels: Vec<u8>,
    /// How many times to run `monitor_levels`, every second time in reverse order (`0,2`
    /// three times runs 0,2,2,0,0,2: each level runs as often first as second, so a drift of
    /// the machine's load favours neither). The k-th run of a level is compared with the k-th
    /// run of level 0 ([`level_comparisons`]).
    pub repeat: usize,
    /// Pin the in-process daemon's threads to CPU 0, and wrk and redis-server to CPU 1, when
    /// the machine has at least two CPUs (else nothing is pinned): wrk then cannot take the
    /// daemon's core, and the daemon's CPU per request is measured on a core of its own.
    pub pin: bool,
    /// One daemon for every run of `monitor_levels`, recording at the highest of them, each
    /// run capping its levels ([`crate::webapp::Monitor::cap_levels`]): the levels are then
    /// compared in one process (same heap, same connections, same Redis), without the
    /// differences between daemon instances.
    pub interleave: bool,
    /// Phases of this many ms instead of wrk runs ([`phased`]): one daemon under one
    /// continuous load, its level switched phase by phase, `repeat` rounds of every entry of
    /// `monitor_levels` in a random order (0: wrk runs).
    pub phase_ms: u64,
}

/// One wrk run.
#[derive(Debug, Clone)]
pub struct WrkResult {
    /// What was measured.
    pub name: String,
    /// The exact wrk command.
    pub command: String,
    /// Bytes of one response body as sent (gzipped when asked).
    pub body_bytes: usize,
    /// Requests completed.
    pub requests: u64,
    /// Responses other than 2xx.
    pub non_2xx: u64,
    /// Socket errors.
    pub socket_errors: u64,
    /// wrk's run time, seconds.
    pub seconds: f64,
    /// Latency percentiles (µs): 50, 90, 99, max.
    pub latency_us: [u64; 4],
    /// The target's name without the monitor level (`Now page (100 anomalies)`).
    pub target: String,
    /// The daemon's `[monitor] default_level`, when levels are compared.
    pub level: Option<u8>,
}

impl WrkResult {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds.max(1e-9)
    }
}

/// Result of `skyline bench webapp`.
#[derive(Debug, Clone)]
pub struct WebappReport {
    /// One entry per target.
    pub runs: Vec<WrkResult>,
    /// Per run (same order): the daemon's CPU time (this process's threads; wrk and
    /// redis-server are other processes) per request served, µs, including the monitor
    /// writer's work for those requests. Far less sensitive to other load on the machine
    /// than throughput.
    pub cpu_us_per_request: Vec<f64>,
    /// /proc/loadavg before and after.
    pub load: (String, String),
    /// Whether the daemon ran on CPU 0 and wrk and redis-server on CPU 1
    /// ([`WebappBenchOptions::pin`]).
    pub pinned: bool,
    /// With [`WebappBenchOptions::phase_ms`]: per target, its phases (`runs` is empty).
    pub phased: Vec<phased::PhasedTarget>,
}

/// The spread of some per-pair figures: quartiles (linear interpolation), min and max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Values.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// First quartile.
    pub q1: f64,
    /// Median.
    pub median: f64,
    /// Third quartile.
    pub q3: f64,
    /// Largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values` (any order, non-finite ones left out); `None` when empty.
    pub fn of(values: &[f64]) -> Option<Spread> {
        use crate::monitor::stats::quantile;
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some(Spread {
            n: v.len(),
            min: v[0],
            q1: quantile(&v, 0.25),
            median: quantile(&v, 0.5),
            q3: quantile(&v, 0.75),
            max: v[v.len() - 1],
        })
    }
}

/// One monitor level against level 0 on one target, over pairs of runs: the k-th run of the
/// level with the k-th run of level 0 (with [`WebappBenchOptions::repeat`], neighbours in
/// time). Each figure is per pair, then summarised: a ratio per pair cancels what a pair's
/// two runs share (the machine's load at that moment), which a ratio of means would not.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelComparison {
    /// The target.
    pub target: String,
    /// The level compared with level 0.
    pub level: u8,
    /// Requests per second, level ÷ level 0.
    pub throughput_ratio: Spread,
    /// p99 latency, level − level 0, ms.
    pub p99_delta_ms: Spread,
    /// Daemon CPU per request, level ÷ level 0.
    pub cpu_ratio: Spread,
    /// Daemon CPU per request, level − level 0, µs.
    pub cpu_delta_us: Spread,
}

/// Every level ≠ 0 against level 0, per target, over pairs of runs (see [`LevelComparison`]);
/// empty without level-0 runs.
pub fn level_comparisons(report: &WebappReport) -> Vec<LevelComparison> {
    let cpu = |i: usize| {
        report
            .cpu_us_per_request
            .get(i)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let mut keys: Vec<(String, u8)> = Vec::new();
    for run in &report.runs {
        if let Some(level) = run.level.filter(|&l| l != 0) {
            if !keys.iter().any(|k| k.0 == run.target && k.1 == level) {
                keys.push((run.target.clone(), level));
            }
        }
    }
    let runs_of = |target: &str, level: u8| -> Vec<usize> {
        (0..report.runs.len())
            .filter(|&i| report.runs[i].target == target && report.runs[i].level == Some(level))
            .collect()
    };
    let runs = &report.runs;
    let mut out = Vec::new();
    for (target, level) in keys {
        let pairs: Vec<(usize, usize)> = runs_of(&target, 0)
            .into_iter()
            .zip(runs_of(&target, level))
            .collect();
        let figures = |f: &dyn Fn(usize, usize) -> f64| -> Option<Spread> {
            Spread::of(&pairs.iter().map(|&(z, l)| f(z, l)).collect::<Vec<f64>>())
        };
        let (Some(throughput_ratio), Some(p99_delta_ms), Some(cpu_ratio), Some(cpu_delta_us)) = (
            figures(&|z, l| runs[l].rate() / runs[z].rate()),
            figures(&|z, l| (runs[l].latency_us[2] as f64 - runs[z].latency_us[2] as f64) / 1e3),
            figures(&|z, l| cpu(l) / cpu(z)),
            figures(&|z, l| cpu(l) - cpu(z)),
        ) else {
            continue;
        };
        out.push(LevelComparison {
            target,
            level,
            throughput_ratio,
            p99_delta_ms,
            cpu_ratio,
            cpu_delta_us,
        });
    }
    out
}

/// The order of the daemons: `levels` `repeat` times, every second time reversed.
fn level_rounds(levels: &[u8], repeat: usize) -> Vec<u8> {
    (0..repeat.max(1))
        .flat_map(|r| {
            let mut l = levels.to_vec();
            if r % 2 == 1 {
                l.reverse();
            }
            l
        })
        .collect()
}

/// Restricts thread `tid` (0: the calling thread) to `cpus`; its children and the threads it
/// starts later inherit that.
#[cfg(target_os = "linux")]
fn set_thread_cpus(tid: i32, cpus: &[usize]) -> std::io::Result<()> {
    #[allow(unsafe_code)] // reason: the CPU_* helpers and sched_setaffinity are unsafe.
    // SAFETY: `set` is a plain C bit array for which all-zero bytes are the valid empty set;
    // CPU_SET is given CPU numbers below CPU_SETSIZE (checked); `set` outlives the call and
    // its size is passed with it; the kernel only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            if c < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(c, &mut set);
            }
        }
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Restricts every thread of this process to `cpus`.
#[cfg(target_os = "linux")]
fn set_process_cpus(cpus: &[usize]) -> std::io::Result<()> {
    for entry in std::fs::read_dir("/proc/self/task")? {
        let tid: i32 = entry?
            .file_name()
            .to_string_lossy()
            .parse()
            .map_err(|_| std::io::Error::other("a non-numeric /proc/self/task entry"))?;
        set_thread_cpus(tid, cpus)?;
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn set_thread_cpus(_tid: i32, _cpus: &[usize]) -> std::io::Result<()> {
    Err(std::io::Error::other("pinning needs Linux"))
}

#[cfg(not(target_os = "linux"))]
fn set_process_cpus(_cpus: &[usize]) -> std::io::Result<()> {
    Err(std::io::Error::other("pinning needs Linux"))
}

fn wrk_summary_script() -> &'static str {
    r#"-- generated by `skyline bench webapp`: prints one summary line for the bench to parse
function done(summary, latency, requests)
  io.write(string.format("BENCH requests=%d duration_us=%d status=%d connect=%d read=%d write=%d timeout=%d p50=%d p90=%d p99=%d max=%d\n",
    summary.requests, summary.duration, summary.errors.status, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"#
}

/// Runs `wrk` against the webapp in-process (private redis-server, the daemon's HTTP server
/// with its real middleware: security headers, monitor, allow-list, basic auth): first
/// `/api?metric=` on a `points`-point metric, then the Now page with `anomalies` anomalies,
/// each without and with `Accept-Encoding: gzip` (what browsers send).
pub fn webapp(opts: &WebappBenchOptions, out: &mut dyn Write) -> Result<WebappReport, String> {
    use base64::Engine;
    const PASSWORD: &str = "bench-password-0123";
    let phased_mode = opts.phase_ms > 0 && !opts.monitor_levels.is_empty();
    if !phased_mode && Command::new("wrk").arg("--version").output().is_err() {
        return Err("wrk not found: apt-get install -y wrk".into());
    }
    // Pinning: redis-server inherits CPU 1 from this thread, then every thread of this
    // process (and every thread the daemon starts later) goes to CPU 0; wrk is started from a
    // thread on CPU 1.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = opts.pin && cpus >= 2 && cfg!(target_os = "linux");
    if pinned {
        set_thread_cpus(0, &[1]).map_err(|e| format!("pinning to CPU 1: {e}"))?;
    }
    let redis = TestRedis::start().map_err(|err| format!("redis-server: {err}"));
    if pinned {
        set_process_cpus(&[0]).map_err(|e| format!("pinning to CPU 0: {e}"))?;
    }
    let redis = redis?;
    let dir = std::env::temp_dir().join(format!("skyline-bench-webapp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut config = bench_config()?;
    config.data.dir = dir.clone();
    config.redis.url = redis.url();
    config.horizon.pickle_bind = String::new();
    config.horizon.udp_bind = String::new();
    config.horizon.roomba_interval_secs = 3600;
    config.analyzer.enabled = false;
    config.panorama.enabled = false;
    config.flux.enabled = false;
    config.webapp.bind = "127.0.0.1:0".into();
    config.webapp.auth_password = PASSWORD.into();

    // Data: the served metric, and `anomalies` metrics listed as current anomalies.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut conn = redis::Client::open(redis.url())
        .and_then(|c| c.get_connection())
        .map_err(|e| format!("redis: {e}"))?;
    let metric = "bench.webapp.metric";
    let mut pipe = redis::pipe();
    pipe.cmd("SET")
        .arg(crate::store::keys::metric_key(metric))
        .arg(series_bytes(7, opts.points, now))
        .ignore();
    let mut current = Vec::with_capacity(opts.anomalies);
    for i in 0..opts.anomalies {
        let name = format!("bench.webapp.host-{:03}.cpu.user", i);
        pipe.cmd("SET")
            .arg(crate::store::keys::metric_key(&name))
            .arg(series_bytes(100 + i as u64, opts.points, now))
            .ignore();
        current.push(serde_json::json!({
            "metric": name, "timestamp": now, "datapoint": 1000.0 + i as f64 * 0.25,
            "triggered_algorithms": ["first_hour_average", "grubbs", "histogram_bins",
                "median_absolute_deviation", "stddev_from_average", "stddev_from_moving_average"],
            "algorithms_run": ["histogram_bins", "first_hour_average", "stddev_from_average",
                "grubbs", "ks_test", "mean_subtraction_cumulation", "median_absolute_deviation",
                "stddev_from_moving_average", "least_squares"],
        }));
    }
    pipe.cmd("SET")
        .arg(crate::analyze::CURRENT_ANOMALIES_KEY)
        .arg(serde_json::Value::Array(current).to_string())
        .ignore();
    pipe.cmd("SET")
        .arg(crate::analyze::RUN_STATS_KEY)
        .arg(
            serde_json::json!({"total_metrics": opts.anomalies + 1, "total_analyzed": opts.anomalies + 1,
                "total_anomalies": opts.anomalies, "run_time": 0.5, "timestamp": now,
                "exception_stats": [["TooShort", 0]]})
            .to_string(),
        )
        .ignore();
    let _: () = pipe.query(&mut conn).map_err(|e| format!("redis: {e}"))?;

    let script = dir.join("summary.lua");
    std::fs::write(&script, wrk_summary_script()).map_err(|e| e.to_string())?;
    let auth = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}"))
    );
    let load_before = loadavg();
    let opts = opts.clone();
    // One daemon per monitor level (or one, Panorama off, without levels).
    let rounds: Vec<Option<u8>> = if opts.monitor_levels.is_empty() {
        vec![None]
    } else {
        level_rounds(&opts.monitor_levels, opts.repeat)
            .into_iter()
            .map(Some)
            .collect()
    };
    let interleave = opts.interleave && !opts.monitor_levels.is_empty();
    let top_level = opts.monitor_levels.iter().copied().max().unwrap_or(0);
    let api_target = format!("/api?metric= ({} points)", opts.points);
    let now_target = format!("Now page ({} anomalies)", opts.anomalies);
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let mut runs = Vec::new();
        let mut cpu = Vec::new();
        let mut shared: Option<crate::app::Running> = None;
        if phased_mode {
            // One daemon, recording at the highest level, each phase capping it.
            let mut config = config.clone();
            config.panorama.enabled = true;
            config.panorama.database_url = format!(
                "sqlite://{}",
                config.data.dir.join("bench-monitor-phased.sqlite").display()
            );
            config.monitor.default_level = top_level;
            let running = crate::app::start(&config)
                .await
                .map_err(|err| err.to_string())?;
            let http = running.http_addr.ok_or("no HTTP server")?;
            let seed = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            let mut targets = Vec::new();
            for (target, path) in [
                (api_target.clone(), format!("/api?metric={metric}")),
                (now_target.clone(), "/".to_string()),
            ] {
                let request = format!(
                    "GET {path} HTTP/1.1\r\nHost: {http}\r\n{auth}\r\nAccept-Encoding: identity\r\n\r\n"
                );
                let run = phased::PhasedRun {
                    running: &running,
                    request: request.into_bytes(),
                    target,
                    levels: &opts.monitor_levels,
                    rounds: opts.repeat.max(1),
                    phase: Duration::from_millis(opts.phase_ms),
                    connections: opts.connections,
                    load_cpu: pinned.then_some(1),
                    seed,
                };
                match phased::run_target(run, out).await {
                    Ok(t) => targets.push(t),
                    Err(err) => {
                        running.shutdown().await;
                        return Err(err);
                    }
                }
            }
            running.shutdown().await;
            return Ok((runs, cpu, targets));
        }
        for (round, level) in rounds.into_iter().enumerate() {
            let mut config = config.clone();
            if let Some(level) = level {
                config.panorama.enabled = true;
                config.panorama.database_url = format!(
                    "sqlite://{}",
                    config
                        .data
                        .dir
                        .join(format!("bench-monitor-{round}.sqlite"))
                        .display()
                );
                config.monitor.default_level = if interleave { top_level } else { level };
            }
            let running = match shared.take() {
                Some(running) => running,
                None => crate::app::start(&config)
                    .await
                    .map_err(|err| err.to_string())?,
            };
            if let (true, Some(level), Some(monitor)) = (interleave, level, &running.http_monitor) {
                monitor.cap_levels(level);
            }
            let http = running.http_addr.ok_or("no HTTP server")?;
            let client = awc::Client::default();
            let api = format!("/api?metric={metric}");
            let all_targets = [
                (api_target.clone(), api.clone(), false),
                (format!("{api_target}, gzip"), api, true),
                (now_target.clone(), "/".to_string(), false),
                (format!("{now_target}, gzip"), "/".to_string(), true),
            ];
            let targets: Vec<(String, String, String, bool)> = match level {
                None => all_targets
                    .into_iter()
                    .map(|(name, path, gz)| (name.clone(), name, path, gz))
                    .collect(),
                Some(l) => all_targets
                    .into_iter()
                    .filter(|t| !t.2)
                    .map(|(target, path, gz)| {
                        (format!("{target}, monitor level {l}"), target, path, gz)
                    })
                    .collect(),
            };
            for (name, target, path, gz) in targets {
                let url = format!("http://{http}{path}");
                // Warm up (and check the answer) before measuring; awc asks for gzip itself, so
                // the size reported is what goes over the wire.
                let mut req = client
                    .get(&url)
                    .insert_header(("Authorization", &auth["Authorization: ".len()..]))
                    .no_decompress();
                req = req.insert_header(("Accept-Encoding", if gz { "gzip" } else { "identity" }));
                let mut res = req.send().await.map_err(|e| format!("{url}: {e}"))?;
                let body = res
                    .body()
                    .limit(64 << 20)
                    .await
                    .map_err(|e| e.to_string())?;
                if !res.status().is_success() {
                    return Err(format!("{url}: HTTP {}", res.status()));
                }
                let encoding = if gz {
                    " -H 'Accept-Encoding: gzip'"
                } else {
                    ""
                };
                let command = format!(
                "wrk -t{} -c{} -d{}s --latency -H 'Authorization: Basic …'{encoding} -s {} '{url}'",
                opts.threads,
                opts.connections,
                opts.duration_secs,
                script.display()
            );
                let _ = writeln!(out, "{name}: {command}");
                let mut args = vec![
                    format!("-t{}", opts.threads),
                    format!("-c{}", opts.connections),
                    format!("-d{}s", opts.duration_secs),
                    "--latency".to_string(),
                    "-H".to_string(),
                    auth.clone(),
                ];
                if gz {
                    args.extend(["-H".to_string(), "Accept-Encoding: gzip".to_string()]);
                }
                args.extend(["-s".to_string(), script.display().to_string(), url.clone()]);
                let (tx, rx) = tokio::sync::oneshot::channel();
                let cpu_before = crate::monitor::sysinfo::cpu_seconds();
                std::thread::spawn(move || {
                    // wrk inherits this thread's CPU.
                    let output = if pinned {
                        set_thread_cpus(0, &[1])
                            .and_then(|()| Command::new("wrk").args(&args).output())
                    } else {
                        Command::new("wrk").args(&args).output()
                    };
                    let _ = tx.send(output);
                });
                let output = rx
                    .await
                    .map_err(|_| "wrk thread died".to_string())?
                    .map_err(|e| format!("wrk: {e}"))?;
                // Let the monitor writer store the run's last records (it flushes every
                // flush_ms) so their cost is counted with the run.
                tokio::time::sleep(Duration::from_millis(config.monitor.flush_ms + 300)).await;
                let cpu_secs = crate::monitor::sysinfo::cpu_seconds() - cpu_before;
                let text = String::from_utf8_lossy(&output.stdout).to_string();
                let line = wrk_summary(&text, &output.stderr)?;
                let served = field(&line, "requests").max(1) as f64;
                cpu.push(cpu_secs * 1e6 / served);
                runs.push(WrkResult {
                    name,
                    command,
                    body_bytes: body.len(),
                    requests: field(&line, "requests"),
                    non_2xx: field(&line, "status"),
                    socket_errors: field(&line, "connect")
                        + field(&line, "read")
                        + field(&line, "write")
                        + field(&line, "timeout"),
                    seconds: field(&line, "duration_us") as f64 / 1e6,
                    latency_us: [
                        field(&line, "p50"),
                        field(&line, "p90"),
                        field(&line, "p99"),
                        field(&line, "max"),
                    ],
                    target,
                    level,
                });
            }
            if interleave {
                shared = Some(running);
            } else {
                running.shutdown().await;
            }
        }
        if let Some(running) = shared {
            running.shutdown().await;
        }
        Ok::<_, String>((runs, cpu, Vec::new()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    drop(redis);
    if pinned {
        let all: Vec<usize> = (0..cpus).collect();
        if let Err(e) = set_process_cpus(&all) {
            eprintln!("skyline bench webapp: could not unpin this process: {e}");
        }
    }
    let (runs, cpu_us_per_request, phased) = result?;
    Ok(WebappReport {
        runs,
        cpu_us_per_request,
        load: (load_before, loadavg()),
        pinned,
        phased,
    })
}

// ---------------------------------------------------------------------------------------------
// Mirage (`skyline bench mirage`)
// ---------------------------------------------------------------------------------------------

/// Results of `skyline bench mirage`.
#[derive(Debug, Clone)]
pub struct MirageBenchReport {
    /// Mirage checks per second on one core: merge of the 24 h Redis series into 1,008
    /// points at 600 s plus the nine algorithms with MIRAGE_CONSENSUS (fetch excluded).
    pub checks_per_sec: f64,
    /// The same without the merge (the algorithms on an already merged series).
    pub analysis_per_sec: f64,
    /// Baseline in the same run: the Analyzer's algorithms on one 1,440-point series per
    /// second on one core.
    pub analyzer_per_sec: f64,
    /// Anomalous share of the bench checks (so the short circuit is not the whole story).
    pub anomalous_share: f64,
    /// Bytes per kept history point: the encoding.
    pub history_encoded_bytes_per_point: f64,
    /// Bytes per kept history point in Redis (`used_memory` growth over 1,000 keys).
    pub history_redis_bytes_per_point: f64,
    /// `skyline bench ingest` datapoints/s without and with Mirage (a `[[alerts]]` rule
    /// making every bench metric a Mirage metric, the history keeper every second).
    pub ingest: Option<(f64, f64)>,
}

type Series = Vec<(f64, f64)>;

fn mirage_bench_series(k: usize, end: f64) -> (Series, Series) {
    let noise = |i: usize| (((i * 7919 + k * 104_729) % 13) as f64 - 6.0) * 0.5;
    let daily = |t: f64| 100.0 + 40.0 * (t / 86_400.0 * std::f64::consts::TAU).sin();
    let jump = if k % 4 == 0 { 400.0 } else { 0.0 };
    let days: Vec<(f64, f64)> = (0..1008)
        .map(|i| {
            let t = end - (1007 - i) as f64 * 600.0;
            (t, daily(t) + noise(i))
        })
        .collect();
    let recent: Vec<(f64, f64)> = (0..1440)
        .map(|i| {
            let t = end - (1439 - i) as f64 * 60.0;
            let j = if i >= 1430 { jump } else { 0.0 };
            (t, daily(t) + noise(i) + j)
        })
        .collect();
    (days, recent)
}

/// Runs the Mirage benchmark: `secs` seconds per timed loop; `ingest_points` > 0 also runs
/// `skyline bench ingest` twice (without and with Mirage).
pub fn mirage(
    secs: f64,
    ingest_points: usize,
    out: &mut dyn Write,
) -> Result<MirageBenchReport, String> {
    use crate::analyze::algorithms::{run_selected_algorithm, Workspace};
    use crate::mirage::analysis::{analyse_with, merge_recent, prepare, MirageAnalysis};
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as f64 - 30.0)
        .unwrap_or(0.0);
    let sets: Vec<_> = (0..64).map(|k| mirage_bench_series(k, end)).collect();
    let merged: Vec<Vec<(f64, f64)>> = sets
        .iter()
        .map(|(d, r)| {
            let mut m = merge_recent(d, r);
            prepare(&mut m);
            m
        })
        .collect();
    let settings = MirageAnalysis::default();
    let mut ws = Workspace::new();
    let now = end + 30.0;
    let budget = Duration::from_secs_f64(secs.max(0.2));
    let _ = writeln!(out, "mirage: merge + analysis, one thread, {secs} s…");
    let (mut n, mut anomalous) = (0usize, 0usize);
    let started = Instant::now();
    while started.elapsed() < budget {
        for (d, r) in &sets {
            let mut m = merge_recent(d, r);
            prepare(&mut m);
            if let Ok(v) = analyse_with(&mut ws, &m, end, now, &settings, true) {
                anomalous += usize::from(v.anomalous);
            }
            n += 1;
        }
    }
    let checks_per_sec = n as f64 / started.elapsed().as_secs_f64();
    let anomalous_share = anomalous as f64 / n.max(1) as f64;
    let _ = writeln!(out, "mirage: analysis only…");
    let mut n = 0usize;
    let started = Instant::now();
    while started.elapsed() < budget {
        for m in &merged {
            let _ = analyse_with(&mut ws, m, end, now, &settings, true);
            n += 1;
        }
    }
    let analysis_per_sec = n as f64 / started.elapsed().as_secs_f64();
    let _ = writeln!(out, "baseline: the Analyzer on 1,440 points…");
    let a_settings = crate::analyze::algorithms::Settings::default();
    let mut n = 0usize;
    let started = Instant::now();
    while started.elapsed() < budget {
        for (_, r) in &sets {
            let _ = run_selected_algorithm(r, now, &a_settings);
            n += 1;
        }
    }
    let analyzer_per_sec = n as f64 / started.elapsed().as_secs_f64();

    let _ = writeln!(
        out,
        "history: 1,000 keys x 1,008 buckets in a private redis-server…"
    );
    let buckets: Vec<(i64, f64)> = sets[1].0.iter().map(|p| (p.0 as i64, p.1)).collect();
    let encoded = crate::mirage::history::encode(&buckets);
    let history_encoded_bytes_per_point = encoded.len() as f64 / buckets.len() as f64;
    let redis = TestRedis::start().map_err(|err| format!("redis-server: {err}"))?;
    let client = redis::Client::open(redis.url()).map_err(|e| e.to_string())?;
    let mut conn = client.get_connection().map_err(|e| e.to_string())?;
    let used = |conn: &mut redis::Connection| -> Result<f64, String> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query(conn)
            .map_err(|e| e.to_string())?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .ok_or_else(|| "no used_memory in INFO".to_string())
    };
    let before = used(&mut conn)?;
    for chunk in (0..1000).collect::<Vec<usize>>().chunks(100) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("SET")
                .arg(crate::mirage::history::history_key(&format!(
                    "bench.host-{}.metric-{i}",
                    i % 97
                )))
                .arg(&encoded)
                .ignore();
        }
        let _: () = p.query(&mut conn).map_err(|e| e.to_string())?;
    }
    let after = used(&mut conn)?;
    let history_redis_bytes_per_point = (after - before) / (1000.0 * buckets.len() as f64);
    drop(redis);

    let ingest = if ingest_points > 0 {
        let metrics = 10_000.min(ingest_points);
        let _ = writeln!(out, "ingest without Mirage…");
        let plain = ingest_with(ingest_points, metrics, 4, &|_| {}, out)?;
        let _ = writeln!(out, "ingest with every metric a Mirage metric…");
        let with = ingest_with(
            ingest_points,
            metrics,
            4,
            &|c: &mut Config| {
                c.alerts.push(crate::alert::AlertRule {
                    pattern: "bench".into(),
                    alerter: "smtp".into(),
                    expiration_secs: 3600,
                    to: Vec::new(),
                    second_order_resolution_hours: Some(168),
                });
                c.mirage.history_interval_secs = 1;
            },
            out,
        )?;
        Some((plain.rate, with.rate))
    } else {
        None
    };
    Ok(MirageBenchReport {
        checks_per_sec,
        analysis_per_sec,
        analyzer_per_sec,
        anomalous_share,
        history_encoded_bytes_per_point,
        history_redis_bytes_per_point,
        ingest,
    })
}

/// What `skyline bench stream` measured.
#[derive(Debug, Clone)]
pub struct StreamBenchReport {
    /// Metrics fed.
    pub metrics: usize,
    /// Points per metric.
    pub points: usize,
    /// Updates per second on one thread, metrics interleaved point by point in time order.
    pub per_core: f64,
    /// Updates per second of a replay of every metric's series on all cores (one metric at a
    /// time per thread, as after a restart).
    pub replay: f64,
    /// Threads of the replay.
    pub threads: usize,
    /// Bytes of one metric's state.
    pub state_bytes: usize,
    /// Points that scored at or above the threshold (keeps the work observable).
    pub detections: usize,
}

impl std::fmt::Display for StreamBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let updates = (self.metrics * self.points) as f64;
        writeln!(
            f,
            "stream: {} metrics x {} points, state {} bytes/metric ({:.1} MB in all)",
            self.metrics,
            self.points,
            self.state_bytes,
            (self.state_bytes * self.metrics) as f64 / 1e6
        )?;
        writeln!(
            f,
            "  live (1 thread, interleaved): {:.0} updates/s",
            self.per_core
        )?;
        writeln!(
            f,
            "  replay ({} threads): {:.0} updates/s; 100,000 metrics x 1,440 points would take {:.0} s",
            self.threads,
            self.replay,
            144e6 / self.replay
        )?;
        write!(
            f,
            "  {} detections in {:.0} updates",
            self.detections, updates
        )
    }
}

/// `skyline bench stream`: the stream detector's update rate and state size.
pub fn stream(metrics: usize, points: usize) -> StreamBenchReport {
    use crate::analyze::stream::{StreamParams, StreamState};
    let metrics = metrics.max(1);
    let params = StreamParams::default();
    // A deterministic noisy daily wave per metric, with an occasional spike.
    let value = |m: usize, i: usize| -> f64 {
        let mut x = (((m as u64) << 32) | i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 29;
        let noise = (x % 1000) as f64 / 100.0;
        let spike = if x % 5000 == 0 { 500.0 } else { 0.0 };
        100.0 + (m % 13) as f64 + 30.0 * ((i % 1440) as f64 / 229.0).sin() + noise + spike
    };
    let mut states = vec![StreamState::new(); metrics];
    let mut detections = 0usize;
    let started = Instant::now();
    for i in 0..points {
        let t = 1_600_000_000 + i as i64 * 60;
        for (m, s) in states.iter_mut().enumerate() {
            if s.update(t, value(m, i), &params) >= params.threshold {
                detections += 1;
            }
        }
    }
    let per_core = (metrics * points) as f64 / started.elapsed().as_secs_f64();

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let m = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if m >= metrics {
                    break;
                }
                let mut s = StreamState::new();
                for i in 0..points {
                    s.update(1_600_000_000 + i as i64 * 60, value(m, i), &params);
                }
                std::hint::black_box(&s);
            });
        }
    });
    let replay = (metrics * points) as f64 / started.elapsed().as_secs_f64();
    StreamBenchReport {
        metrics,
        points,
        per_core,
        replay,
        threads,
        state_bytes: StreamState::BYTES,
        detections,
    }
}

// ---------------------------------------------------------------------------------------------
// `skyline bench remote-write`
// ---------------------------------------------------------------------------------------------

/// Options of `skyline bench remote-write`.
#[derive(Debug, Clone)]
pub struct RemoteWriteBenchOptions {
    /// Samples to send (each arm).
    pub samples: usize,
    /// Samples per request (one per series, as Prometheus sends them).
    pub batch: usize,
    /// Distinct series.
    pub series: usize,
    /// Concurrent client connections.
    pub connections: usize,
    /// Stop sending after this many seconds (each arm); 0: send every sample.
    pub secs: f64,
}

/// One arm of the remote-write benchmark.
#[derive(Debug, Clone, Default)]
pub struct IngestArm {
    /// Samples answered 2xx.
    pub samples: usize,
    /// Requests sent (answered 2xx).
    pub requests: usize,
    /// Requests sent again (after a 503, or a connection the server closed).
    pub retries: usize,
    /// Seconds from the first request until every sample was written to Redis.
    pub seconds: f64,
    /// Samples per second end to end (HTTP → Redis).
    pub rate: f64,
    /// Request latency percentiles (ms): 50, 99, max.
    pub latency_ms: [f64; 3],
    /// Datapoints read back from the arm's Redis keys at the end (must equal `samples`).
    pub in_redis: usize,
}

/// Result of `skyline bench remote-write`: remote_write and, as the baseline in the same run,
/// flux's JSON `metric_data_post` with the same samples, client and daemon.
#[derive(Debug, Clone)]
pub struct RemoteWriteReport {
    /// Options used.
    pub opts: RemoteWriteBenchOptions,
    /// Prometheus remote_write (snappy protobuf) to `/api/v1/write`.
    pub remote_write: IngestArm,
    /// flux JSON to `/flux/metric_data_post`.
    pub flux_json: IngestArm,
    /// /proc/loadavg before and after.
    pub load: (String, String),
}

impl std::fmt::Display for RemoteWriteReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let o = &self.opts;
        writeln!(
            f,
            "remote-write bench: {} samples per arm, {} per request, {} series, {} connections, HTTP → Redis",
            o.samples, o.batch, o.series, o.connections
        )?;
        for (name, a) in [
            (
                "remote_write (snappy protobuf, /api/v1/write)",
                &self.remote_write,
            ),
            (
                "baseline: flux JSON (/flux/metric_data_post)",
                &self.flux_json,
            ),
        ] {
            writeln!(
                f,
                "{name}: {} samples in {} requests, {:.2} s = {:.0} samples/s; latency per request p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} retries (503 or connection closed); Redis holds {} of the {} points",
                a.samples, a.requests, a.seconds, a.rate, a.latency_ms[0], a.latency_ms[1], a.latency_ms[2], a.retries, a.in_redis, a.samples
            )?;
        }
        writeln!(
            f,
            "remote_write / flux JSON = {:.2}",
            self.remote_write.rate / self.flux_json.rate.max(1e-9)
        )?;
        write!(
            f,
            "load average before: {}; after: {}; cores: {}",
            self.load.0,
            self.load.1,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        )
    }
}

/// One request on `s`: writes `head` and `body`, reads one response (headers, then
/// Content-Length bytes) through `buf`. Its status and body text; an I/O error or a closed
/// connection is an `Err` (the caller reconnects).
fn exchange(
    s: &mut std::net::TcpStream,
    buf: &mut Vec<u8>,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    use std::io::Read;
    let closed = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "server closed");
    let mut tmp = [0u8; 4096];
    s.write_all(head)?;
    s.write_all(body)?;
    let (status, end, len) = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..p]).to_string();
            let status: u16 = text
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let len = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            break (status, p + 4, len);
        }
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(closed());
        }
        buf.extend_from_slice(&tmp[..n]);
    };
    while buf.len() < end + len {
        let n = s.read(&mut tmp)?;
        if n == 0 {
            return Err(closed());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let text = String::from_utf8_lossy(&buf[end..end + len]).to_string();
    buf.drain(..end + len);
    Ok((status, text))
}

/// Sends each chunk of bodies as POSTs to `path` over its own keep-alive connection (a small
/// HTTP/1.1 client on plain sockets), in order, until `stop_at`; a 503 is retried after 5 ms,
/// and a connection the server closed (it may close one after shedding a request unread) is
/// opened again and the request resent, as Prometheus does. Returns the latency of each 2xx
/// request and the retries.
fn post_all(
    addr: std::net::SocketAddr,
    path: &'static str,
    headers: &'static str,
    chunks: Vec<Vec<Vec<u8>>>,
    stop_at: Option<Instant>,
) -> Result<(Vec<Duration>, usize), String> {
    let connect = move || -> Result<std::net::TcpStream, String> {
        let s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        Ok(s)
    };
    let threads: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            std::thread::spawn(move || -> Result<(Vec<Duration>, usize), String> {
                let mut s = connect()?;
                let mut lat = Vec::with_capacity(chunk.len());
                let mut retries = 0;
                let mut buf = Vec::with_capacity(4096);
                for body in chunk {
                    if stop_at.is_some_and(|t| Instant::now() >= t) {
                        break;
                    }
                    let head = format!(
                        "POST {path} HTTP/1.1\r\nHost: bench\r\n{headers}Content-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let mut reconnects = 0;
                    loop {
                        let t = Instant::now();
                        let (status, text) = match exchange(&mut s, &mut buf, head.as_bytes(), &body) {
                            Ok(r) => r,
                            Err(err) => {
                                reconnects += 1;
                                if reconnects > 100 {
                                    return Err(format!("{path}: {err} (100 reconnections)"));
                                }
                                retries += 1;
                                buf.clear();
                                std::thread::sleep(Duration::from_millis(5));
                                s = connect()?;
                                continue;
                            }
                        };
                        match status {
                            200..=299 => {
                                lat.push(t.elapsed());
                                break;
                            }
                            503 => {
                                retries += 1;
                                std::thread::sleep(Duration::from_millis(5));
                            }
                            other => return Err(format!("{path}: HTTP {other}: {text}")),
                        }
                    }
                }
                Ok((lat, retries))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut retries = 0;
    for t in threads {
        let (l, r) = t
            .join()
            .map_err(|_| "client thread panicked".to_string())??;
        all.extend(l);
        retries += r;
    }
    Ok((all, retries))
}

fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// Runs one arm: sends (for at most `secs` seconds when not 0), then waits until the metric
/// actors wrote every sample sent to Redis.
async fn ingest_arm(
    addr: std::net::SocketAddr,
    path: &'static str,
    headers: &'static str,
    chunks: Vec<Vec<Vec<u8>>>,
    batch: usize,
    secs: f64,
) -> Result<IngestArm, String> {
    let written_before = m::DATAPOINTS_WRITTEN.get();
    let dedup_before = m::FLUX_DEDUPLICATED.get();
    let started = Instant::now();
    let stop_at = (secs > 0.0).then(|| started + Duration::from_secs_f64(secs));
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(post_all(addr, path, headers, chunks, stop_at));
    });
    let (mut lat, retries) = rx.await.map_err(|_| "client died".to_string())??;
    let requests = lat.len();
    let samples = requests * batch;
    let deadline = Instant::now() + Duration::from_secs(300);
    while m::DATAPOINTS_WRITTEN.get() - written_before + (m::FLUX_DEDUPLICATED.get() - dedup_before)
        < samples as u64
    {
        if Instant::now() > deadline {
            return Err(format!(
                "{path}: timed out: {} of {samples} samples written to Redis",
                m::DATAPOINTS_WRITTEN.get() - written_before
            ));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    if m::FLUX_DEDUPLICATED.get() != dedup_before {
        return Err(format!(
            "{path}: {} samples were dropped as duplicates",
            m::FLUX_DEDUPLICATED.get() - dedup_before
        ));
    }
    lat.sort_unstable();
    Ok(IngestArm {
        samples,
        requests,
        retries,
        seconds,
        rate: samples as f64 / seconds,
        latency_ms: [
            percentile_ms(&lat, 0.5),
            percentile_ms(&lat, 0.99),
            lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        ],
        in_redis: 0,
    })
}

/// Datapoints stored under `keys` (Skyline's msgpack strings), read in pipelines of 1,000.
async fn points_in_redis(
    conn: &mut redis::aio::ConnectionManager,
    keys: &[String],
) -> Result<usize, String> {
    let mut total = 0;
    let mut points = Vec::new();
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("GET").arg(k);
        }
        let values: Vec<Option<Vec<u8>>> = pipe
            .query_async(conn)
            .await
            .map_err(|err| format!("reading the series back from Redis: {err}"))?;
        for (k, v) in chunk.iter().zip(values) {
            points.clear();
            if let Some(bytes) = v {
                crate::model::msgpack::decode_series_f64(&bytes, &mut points)
                    .map_err(|err| format!("{k}: {err}"))?;
            }
            total += points.len();
        }
    }
    Ok(total)
}

/// Runs `skyline bench remote-write`: a private redis-server, the daemon in-process (HTTP
/// server, flux forwarder, metric actors; no carbon), remote_write requests of `batch` samples
/// (one per series, timestamps rising per round so none is a duplicate), then the same samples
/// as flux JSON as the baseline.
pub fn remote_write(
    opts: &RemoteWriteBenchOptions,
    out: &mut dyn Write,
) -> Result<RemoteWriteReport, String> {
    use crate::flux::prometheus::{encode, Label, Sample, TimeSeries, WriteRequest};
    const KEY: &str = "bench-key-0123456789";
    let opts = RemoteWriteBenchOptions {
        batch: opts.batch.max(1),
        series: opts.series.max(opts.batch.max(1)),
        ..opts.clone()
    };
    let redis = TestRedis::start().map_err(|err| format!("redis-server: {err}"))?;
    let dir = std::env::temp_dir().join(format!("skyline-bench-rw-{}", std::process::id()));
    let mut config = bench_config()?;
    config.data.dir = dir.clone();
    config.redis.url = redis.url();
    config.horizon.pickle_bind = String::new();
    config.horizon.udp_bind = String::new();
    config.horizon.roomba_interval_secs = 3600;
    config.analyzer.enabled = false;
    config.webapp.bind = "127.0.0.1:0".into();
    config.flux.api_keys = vec![crate::flux::config::ApiKey::Plain(KEY.into())];
    config.flux.carbon_pickle_addr = String::new();
    config.flux.feed_horizon = true;
    config.flux.prometheus_max_series = config.flux.prometheus_max_series.max(opts.series * 2);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let requests = opts.samples.div_ceil(opts.batch);
    let per_round = (opts.series / opts.batch).max(1);
    let rounds = requests.div_ceil(per_round) as i64;
    let _ = writeln!(
        out,
        "encoding {requests} remote_write and {requests} flux JSON requests…"
    );
    // Each connection owns a fixed set of series (as Prometheus shards by series), so every
    // series' samples arrive in order.
    let connections = opts.connections.clamp(1, per_round);
    let mut rw: Vec<Vec<Vec<u8>>> = vec![Vec::new(); connections];
    let mut json: Vec<Vec<Vec<u8>>> = vec![Vec::new(); connections];
    for r in 0..requests {
        let block = r % per_round;
        let ts = now - rounds - 60 + (r / per_round) as i64;
        let ids = (0..opts.batch).map(|j| block * opts.batch + j);
        let req = WriteRequest {
            timeseries: ids
                .clone()
                .map(|id| TimeSeries {
                    labels: vec![
                        Label {
                            name: "__name__".into(),
                            value: "bench_requests_total".into(),
                        },
                        Label {
                            name: "instance".into(),
                            value: format!("host-{}:9100", id % 97),
                        },
                        Label {
                            name: "job".into(),
                            value: "bench".into(),
                        },
                        Label {
                            name: "series".into(),
                            value: id.to_string(),
                        },
                    ],
                    samples: vec![Sample {
                        value: (r + id) as f64 * 0.5,
                        timestamp: ts * 1000,
                    }],
                })
                .collect(),
        };
        rw[block % connections].push(encode(&req));
        let items: Vec<String> = ids
            .map(|id| {
                format!(
                    r#"{{"metric":"bench.json.host-{}.series-{id}","timestamp":{ts},"value":{}}}"#,
                    id % 97,
                    (r + id) as f64 * 0.5
                )
            })
            .collect();
        json[block % connections]
            .push(format!(r#"{{"metrics":[{}]}}"#, items.join(",")).into_bytes());
    }
    let rw_keys: Vec<String> = (0..opts.series)
        .map(|id| {
            format!(
                r#"metrics.bench_requests_total{{instance="host-{}:9100",job="bench",series="{id}"}}"#,
                id % 97
            )
        })
        .collect();
    let json_keys: Vec<String> = (0..opts.series)
        .map(|id| format!("metrics.bench.json.host-{}.series-{id}", id % 97))
        .collect();
    let redis_url = redis.url();
    let (batch, secs) = (opts.batch, opts.secs);
    let load_before = loadavg();
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let running = crate::app::start(&config)
            .await
            .map_err(|err| err.to_string())?;
        let http = running.http_addr.ok_or("no HTTP server")?;
        let _ = writeln!(out, "remote_write to http://{http}/api/v1/write …");
        let mut remote_write = ingest_arm(
            http,
            "/api/v1/write",
            "Content-Type: application/x-protobuf\r\nContent-Encoding: snappy\r\nkey: bench-key-0123456789\r\n",
            rw,
            batch,
            secs,
        )
        .await?;
        let _ = writeln!(out, "baseline: flux JSON to http://{http}/flux/metric_data_post …");
        let mut flux_json = ingest_arm(
            http,
            "/flux/metric_data_post",
            "Content-Type: application/json\r\nkey: bench-key-0123456789\r\n",
            json,
            batch,
            secs,
        )
        .await?;
        running.shutdown().await;
        // Every sample counted as written must be in Redis under its series' key.
        let client = redis::Client::open(redis_url.as_str()).map_err(|e| e.to_string())?;
        let mut conn = redis::aio::ConnectionManager::new(client)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        remote_write.in_redis = points_in_redis(&mut conn, &rw_keys).await?;
        flux_json.in_redis = points_in_redis(&mut conn, &json_keys).await?;
        for (name, arm) in [("remote_write", &remote_write), ("flux JSON", &flux_json)] {
            if arm.in_redis != arm.samples {
                return Err(format!(
                    "{name}: Redis holds {} points under the arm's keys, {} were sent",
                    arm.in_redis, arm.samples
                ));
            }
        }
        Ok::<_, String>((remote_write, flux_json))
    });
    let _ = std::fs::remove_dir_all(&dir);
    drop(redis);
    let (remote_write, flux_json) = result?;
    Ok(RemoteWriteReport {
        opts,
        remote_write,
        flux_json,
        load: (load_before, loadavg()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(target: &str, level: u8, requests: u64, p99_us: u64) -> WrkResult {
        WrkResult {
            name: format!("{target}, monitor level {level}"),
            command: String::new(),
            body_bytes: 0,
            requests,
            non_2xx: 0,
            socket_errors: 0,
            seconds: 1.0,
            latency_us: [0, 0, p99_us, 0],
            target: target.into(),
            level: Some(level),
        }
    }

    #[test]
    fn levels_repeat_in_alternating_order() {
        assert_eq!(level_rounds(&[0, 2], 3), vec![0, 2, 2, 0, 0, 2]);
        assert_eq!(level_rounds(&[0, 2, 3], 2), vec![0, 2, 3, 3, 2, 0]);
        assert_eq!(level_rounds(&[1], 0), vec![1]);
    }

    #[test]
    fn spread_has_quartiles_min_and_max() {
        let s = Spread::of(&[5.0, 1.0, 3.0, 2.0, 4.0, f64::NAN]).unwrap();
        assert_eq!(s.n, 5);
        assert_eq!(
            (s.min, s.q1, s.median, s.q3, s.max),
            (1.0, 2.0, 3.0, 4.0, 5.0)
        );
        assert!(Spread::of(&[]).is_none());
    }

    /// The k-th run of a level is compared with the k-th run of level 0 of the same target:
    /// a load change between pairs moves both runs of a pair, not the ratio.
    #[test]
    fn levels_are_compared_pair_by_pair() {
        // Pair 1 on a quiet machine, pair 2 at half the speed: each pair's level 2 is 2 %
        // slower and 10 % dearer in CPU than its level 0.
        let runs = vec![
            run("api", 0, 1000, 1000),
            run("page", 0, 500, 2000),
            run("api", 2, 980, 1100),
            run("page", 2, 490, 2100),
            run("api", 2, 490, 2300),
            run("page", 2, 245, 4300),
            run("api", 0, 500, 2000),
            run("page", 0, 250, 4000),
        ];
        let cpu = vec![30.0, 40.0, 33.0, 44.0, 66.0, 88.0, 60.0, 80.0];
        let report = WebappReport {
            runs,
            cpu_us_per_request: cpu,
            load: Default::default(),
            pinned: false,
            phased: Vec::new(),
        };
        let c = level_comparisons(&report);
        assert_eq!(c.len(), 2);
        assert_eq!((c[0].target.as_str(), c[0].level), ("api", 2));
        assert_eq!(c[1].target, "page");
        for c in &c {
            assert_eq!(c.throughput_ratio.n, 2);
            assert!((c.throughput_ratio.min - 0.98).abs() < 1e-9, "{c:?}");
            assert!((c.throughput_ratio.max - 0.98).abs() < 1e-9, "{c:?}");
            assert!((c.cpu_ratio.median - 1.1).abs() < 1e-9, "{c:?}");
        }
        assert!((c[0].p99_delta_ms.min - 0.1).abs() < 1e-9);
        assert!((c[0].p99_delta_ms.max - 0.3).abs() < 1e-9);
        assert!((c[0].cpu_delta_us.median - 4.5).abs() < 1e-9);
        // The CPU differences are per pair: 3 µs on the quiet machine, 6 µs on the slow one.
        assert_eq!((c[0].cpu_delta_us.min, c[0].cpu_delta_us.max), (3.0, 6.0));
    }
}
