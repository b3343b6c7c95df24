//! `skyline seed`: Skyline's `utils/seed_data.py`. Sends `horizon.test.pickle` — 1,000 points
//! one second apart ending now, the last 15 raised by 18,500–24,000 — to the pickle listener as
//! protocol-2 frames of 100 datapoints, each on a new connection (as seed_data.py does), then
//! checks that the points reached Redis and prints a clear pass or fail. The check reads the
//! daemon's Redis: one server (`[redis] url` or the managed socket), or a Redis Cluster
//! (`[redis] cluster_urls`) through the redis crate's cluster client, which sends the `GET`
//! and `SISMEMBER` to the master serving each key's slot (a plain connection to a seed node
//! would be answered `MOVED` for keys on another master).
//!
//! The base values are a deterministic stand-in for the first 1,000 values of Skyline's
//! `utils/data.json` (same range, 9,856–11,534), generated here rather than shipped.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::msgpack::decode_series_f64;
use crate::store::redis_conn::Target;

/// The metric seed_data.py sends and the UI is expected to show as anomalous.
pub const SEED_METRIC: &str = "horizon.test.pickle";

/// Points sent.
pub const SEED_POINTS: usize = 1000;

/// Raised points at the end.
pub const SEED_RAISED: usize = 15;

/// A small deterministic generator (no dependency, reproducible seed data).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
}

/// The seed series `(timestamp, value)`, ending at `end - 1`.
pub fn series(end: i64) -> Vec<(i64, f64)> {
    let mut rng = Lcg(20_130_527);
    (0..SEED_POINTS)
        .map(|i| {
            let ts = end - SEED_POINTS as i64 + i as i64;
            let wave = (i as f64 / 160.0 * std::f64::consts::TAU).sin();
            let mut v = (10_700.0 + 550.0 * wave + 250.0 * (rng.next() - 0.5)).round();
            if i >= SEED_POINTS - SEED_RAISED {
                v += (18_500.0 + rng.next() * 5_500.0).round();
            }
            (ts, v)
        })
        .collect()
}

/// Pickles `items` as protocol 2 (what seed_data.py and carbon-relay send) with its header.
pub fn frame(items: &[(String, (i64, f64))]) -> Result<Vec<u8>, String> {
    let body = serde_pickle::to_vec(&items, serde_pickle::SerOptions::new().proto_v2())
        .map_err(|err| format!("pickle: {err}"))?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A blocking connection to the daemon's Redis: one server, or the cluster (commands routed
/// by key to their slot's master).
fn open(redis: &Target) -> Result<Box<dyn redis::ConnectionLike>, String> {
    match redis {
        Target::Single(url) => {
            let client =
                redis::Client::open(url.as_str()).map_err(|err| format!("redis url: {err}"))?;
            Ok(Box::new(
                client
                    .get_connection_with_timeout(Duration::from_secs(2))
                    .map_err(|err| format!("redis {}: {err}", redis.label()))?,
            ))
        }
        Target::Cluster(urls) => {
            let client = redis::cluster::ClusterClientBuilder::new(urls.clone())
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(Duration::from_secs(5))
                .build()
                .map_err(|err| format!("redis cluster_urls: {err}"))?;
            Ok(Box::new(client.get_connection().map_err(|err| {
                format!("redis {}: {err}", redis.label())
            })?))
        }
    }
}

/// Sends the seed data to `pickle_addr` and verifies it in `redis` (one server or a cluster).
/// Writes progress to `out`; returns Ok(true) on pass.
pub fn run(pickle_addr: SocketAddr, redis: &Target, out: &mut dyn Write) -> Result<bool, String> {
    let end = now();
    let data = series(end);
    let _ = writeln!(
        out,
        "Sending {} datapoints of {SEED_METRIC} to {pickle_addr}",
        data.len()
    );
    for batch in data.chunks(100) {
        let items: Vec<(String, (i64, f64))> = batch
            .iter()
            .map(|&(t, v)| (SEED_METRIC.to_string(), (t, v)))
            .collect();
        let bytes = frame(&items)?;
        let mut s = std::net::TcpStream::connect_timeout(&pickle_addr, Duration::from_secs(5))
            .map_err(|err| format!("cannot connect to the pickle listener at {pickle_addr}: {err} (is `skyline run` running?)"))?;
        s.write_all(&bytes).map_err(|err| format!("send: {err}"))?;
    }
    if let Target::Single(url) = redis {
        // A malformed URL fails now, not after the polling below.
        redis::Client::open(url.as_str()).map_err(|err| format!("redis url: {err}"))?;
    }
    let mut conn: Option<Box<dyn redis::ConnectionLike>> = None;
    let mut found = 0usize;
    let mut last = 0.0;
    // Points older than max_resolution (1,000 s) at arrival are dropped, as by Skyline.
    let expected = SEED_POINTS - 5;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        if conn.is_none() {
            conn = open(redis).ok();
        }
        let Some(c) = conn.as_mut() else { continue };
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(format!("metrics.{SEED_METRIC}"))
            .query(c.as_mut())
            .map_err(|err| format!("redis: {err}"))?;
        let mut pts = Vec::new();
        if let Some(b) = bytes {
            decode_series_f64(&b, &mut pts).map_err(|err| format!("stored value: {err}"))?;
        }
        found = pts.len();
        last = pts.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        if found >= expected {
            break;
        }
    }
    let member: bool = match conn.as_mut() {
        Some(c) => redis::cmd("SISMEMBER")
            .arg("metrics.unique_metrics")
            .arg(format!("metrics.{SEED_METRIC}"))
            .query(c.as_mut())
            .unwrap_or(false),
        None => false,
    };
    let pass = found >= expected && member && last > 18_000.0;
    if pass {
        let _ = writeln!(
            out,
            "PASS: metrics.{SEED_METRIC} holds {found} datapoints (raised tail up to {last}) and is in metrics.unique_metrics.\nCongratulations! The data made it in."
        );
    } else {
        let _ = writeln!(
            out,
            "FAIL: metrics.{SEED_METRIC} holds {found} of at least {expected} datapoints; in metrics.unique_metrics: {member}. Check `skyline logs --errors`."
        );
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_shape() {
        let s = series(2_000_000_000);
        assert_eq!(s.len(), SEED_POINTS);
        assert_eq!(s.last().unwrap().0, 1_999_999_999);
        assert!(s[..SEED_POINTS - SEED_RAISED]
            .iter()
            .all(|p| (9_856.0..=11_534.0).contains(&p.1)));
        assert!(s[SEED_POINTS - SEED_RAISED..]
            .iter()
            .all(|p| p.1 > 18_500.0 + 9_856.0));
    }

    #[test]
    fn frame_decodes_with_our_decoder() {
        let items = vec![("a.b".to_string(), (1_700_000_000i64, 1.5f64))];
        let f = frame(&items).unwrap();
        assert_eq!(&f[..4], &(f.len() as u32 - 4).to_be_bytes());
        let d = crate::listen::pickle::decode_datapoints(&f[4..]).unwrap();
        assert_eq!(d.points.len(), 1);
        assert_eq!(
            d.points[0].point.timestamp,
            crate::model::Number::Int(1_700_000_000)
        );
    }
}
