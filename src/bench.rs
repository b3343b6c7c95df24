//! `skyline bench ingest`: end-to-end ingest throughput. Starts a private redis-server and the
//! daemon's listeners and metric actors in-process, pushes N pickled datapoints (carbon-relay
//! style frames of 500 float pairs) over loopback on several connections, and times until all
//! of them are in Redis. The same run then measures `redis-benchmark -P 64 APPEND` against the
//! same kind of server as the ceiling, and reports both and their ratio.

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::telemetry::metrics as m;
use crate::testkit::TestRedis;

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

fn frames(points: usize, metrics: usize) -> Result<Vec<Vec<u8>>, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let names: Vec<String> = (0..metrics)
        .map(|i| format!("bench.host-{}.metric-{}", i % 97, i))
        .collect();
    let per_metric = points.div_ceil(metrics).max(1);
    let mut items = Vec::with_capacity(points);
    'outer: for step in 0..per_metric {
        let ts = (now - per_metric as i64 + step as i64) as f64;
        for (i, name) in names.iter().enumerate() {
            if items.len() == points {
                break 'outer;
            }
            items.push((name.clone(), (ts, (i + step) as f64 * 0.5)));
        }
    }
    items
        .chunks(500)
        .map(|c| {
            let body = serde_pickle::to_vec(&c, serde_pickle::SerOptions::new().proto_v2())
                .map_err(|err| err.to_string())?;
            let mut f = (body.len() as u32).to_be_bytes().to_vec();
            f.extend_from_slice(&body);
            Ok(f)
        })
        .collect()
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
    let redis = TestRedis::start().map_err(|err| format!("redis-server: {err}"))?;
    let dir = std::env::temp_dir().join(format!("skyline-bench-{}", std::process::id()));
    let mut config = Config::default();
    config.data.dir = dir.clone();
    config.redis.url = redis.url();
    config.horizon.pickle_bind = "127.0.0.1:0".into();
    config.horizon.udp_bind = String::new();
    config.horizon.roomba_interval_secs = 3600;
    let _ = writeln!(out, "encoding {points} datapoints over {metrics} metrics…");
    let frames = frames(points, metrics)?;
    let rss_start = rss_kb();
    let system = actix_rt::System::new();
    let result = system.block_on(async move {
        let running = crate::app::start(&config)
            .await
            .map_err(|err| err.to_string())?;
        let addr = running.pickle_addr.ok_or("no pickle listener")?;
        let written_before = m::DATAPOINTS_WRITTEN.get();
        let started = Instant::now();
        let per_conn = frames.len().div_ceil(connections.max(1)).max(1);
        let chunks: Vec<Vec<Vec<u8>>> = frames.chunks(per_conn).map(|c| c.to_vec()).collect();
        let senders: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                std::thread::spawn(move || -> Result<(), String> {
                    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
                    for f in chunk {
                        s.write_all(&f).map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        let deadline = Instant::now() + Duration::from_secs(600);
        while m::DATAPOINTS_WRITTEN.get() - written_before < points as u64 {
            if Instant::now() > deadline {
                return Err("timed out waiting for Redis writes".to_string());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        for s in senders {
            s.join().map_err(|_| "sender panicked".to_string())??;
        }
        running.shutdown().await;
        Ok::<f64, String>(seconds)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let seconds = result?;
    let rss_end = rss_kb();
    drop(redis);
    let _ = writeln!(out, "measuring redis-benchmark -P 64 APPEND ceiling…");
    let ceiling = redis_ceiling(points.clamp(100_000, 2_000_000));
    Ok(IngestReport {
        points,
        metrics,
        seconds,
        rate: points as f64 / seconds,
        redis_append_ceiling: ceiling,
        rss_kb: (rss_start, rss_end),
    })
}
