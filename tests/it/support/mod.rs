//! Shared test helpers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use skyline::config::Config;

pub use skyline::testkit::TestRedis;

pub mod server_db;
pub mod sinks;
pub mod web;

/// `../shared` beside the repository (CI clones it there too). Fails, never skips.
pub fn shared(path: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(path);
    assert!(
        p.exists(),
        "test data missing: {} (../shared must sit beside the repo)",
        p.display()
    );
    p
}

/// A fresh temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "skyline-it-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config on port 0 everywhere, pointing at `redis`.
pub fn config(redis: &TestRedis, dir: &TempDir) -> Config {
    let mut c = Config::default();
    // The tests feed series that Skyline's algorithms flag; they pin the combination in
    // which those verdicts count (the default is the stream detector alone).
    c.analyzer.combine = "any".into();
    c.data.dir = dir.0.clone();
    c.redis.url = redis.url();
    c.horizon.pickle_bind = "127.0.0.1:0".into();
    c.horizon.udp_bind = "127.0.0.1:0".into();
    c.horizon.plaintext_bind = "127.0.0.1:0".into();
    c.horizon.flush_interval_ms = 20;
    c.horizon.workers = 2;
    c.webapp.bind = "127.0.0.1:0".into();
    c
}

/// Sync Redis connection for assertions.
pub fn redis_conn(redis: &TestRedis) -> redis::Connection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// Polls `f` until it returns Some or `secs` pass.
pub async fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Reads `metrics.<name>` raw.
pub fn get_raw(conn: &mut redis::Connection, name: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(format!("metrics.{name}"))
        .query(conn)
        .unwrap()
}

/// A protocol-2 pickle frame with header.
pub fn frame(items: &[(String, (f64, f64))]) -> Vec<u8> {
    let body = serde_pickle::to_vec(&items, serde_pickle::SerOptions::new().proto_v2()).unwrap();
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend_from_slice(&body);
    f
}
