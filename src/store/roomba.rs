//! `Roomba`: trims every metric key to `full_duration_secs + roomba_grace_secs`, as Skyline's
//! Roomba does, so Redis holds FULL_DURATION of each metric and no more.
//!
//! Per key: decode, stable-sort by `(timestamp, value)`, drop points with
//! `ts <= now - duration`, keep the first of each repeated timestamp (so the *smallest* value
//! survives, like Skyline), re-encode in the concatenated format. A key whose newest point is
//! older than the window, or that is not Skyline's format, is deleted and removed from
//! `metrics.unique_metrics` ("euthanized"); a set member whose key is gone is removed.
//! Keys that need no change are not written.
//!
//! Atomicity without WATCH (which a multiplexed connection cannot do safely): the rewrite is a
//! server-side compare-and-swap on the key's length. Metric actors only ever APPEND, so if the
//! key grew since we read it, the script keeps the appended tail after our rewrite; if it
//! shrank, someone else rewrote it and the key is left for the next run ("blocked").
//!
//! Runs on its own arbiter (the decode and sort are CPU work); one run at a time, every
//! `roomba_interval_secs`. Keys: reads and writes `metrics.*` and `metrics.unique_metrics`.
//! Backpressure: none needed; it is driven by its own timer, and a run that overlaps the next
//! tick makes that tick a no-op.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use log::{error, info};
use redis::aio::ConnectionManager;

use super::encoding::{decode_series, encode_series};
use super::keys::UNIQUE_METRICS;
use crate::model::Point;
use crate::telemetry::metrics as m;

/// Keys fetched per MGET.
const CHUNK: usize = 500;

const CAS_SCRIPT: &str = r#"
local cur = redis.call('STRLEN', KEYS[1])
local expected = tonumber(ARGV[1])
if cur < expected then return -1 end
local suffix = ''
if cur > expected then suffix = redis.call('GETRANGE', KEYS[1], expected, -1) end
local value = ARGV[2] .. suffix
if value == '' then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], KEYS[1])
  return 0
end
redis.call('SET', KEYS[1], value)
return 1
"#;

/// What Roomba decided for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum Trim {
    /// Already sorted, unique and inside the window.
    Keep,
    /// Replace with these bytes.
    Rewrite(Vec<u8>),
    /// Delete the key and remove it from the unique set (expired or undecodable).
    Euthanize,
}

/// Pure per-key decision. `now` and `duration` in seconds.
pub fn trim(bytes: &[u8], now: f64, duration: f64) -> Trim {
    let mut points = match decode_series(bytes) {
        Ok(p) => p,
        Err(_) => return Trim::Euthanize,
    };
    if points.is_empty() {
        return Trim::Euthanize;
    }
    let cutoff = now - duration;
    let key = |p: &Point| (p.timestamp.as_f64(), p.value.as_f64());
    let sorted_unique = points.windows(2).all(|w| key(&w[0]).0 < key(&w[1]).0);
    if !sorted_unique {
        points.sort_by(|a, b| {
            let (ta, va) = key(a);
            let (tb, vb) = key(b);
            ta.total_cmp(&tb).then(va.total_cmp(&vb))
        });
    }
    let newest = points
        .last()
        .map(|p| p.timestamp.as_f64())
        .unwrap_or(f64::MIN);
    if newest < cutoff {
        return Trim::Euthanize;
    }
    let before = points.len();
    let mut last_ts: Option<f64> = None;
    points.retain(|p| {
        let ts = p.timestamp.as_f64();
        let keep = ts > cutoff && last_ts != Some(ts);
        if ts > cutoff {
            last_ts = Some(ts);
        }
        keep
    });
    if sorted_unique && points.len() == before {
        return Trim::Keep;
    }
    if points.is_empty() {
        return Trim::Euthanize;
    }
    Trim::Rewrite(encode_series(&points))
}

/// Counts of one Roomba run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoombaReport {
    /// Members of the unique set at the start.
    pub keys: usize,
    /// Keys rewritten.
    pub trimmed: usize,
    /// Keys deleted.
    pub euthanized: usize,
    /// Keys left for the next run (rewritten by someone else meanwhile).
    pub blocked: usize,
}

/// Runs one pass over every key. Also used by tests and `skyline` commands directly.
pub async fn run_once(
    conn: &mut ConnectionManager,
    duration: f64,
) -> redis::RedisResult<RoombaReport> {
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(UNIQUE_METRICS)
        .query_async(conn)
        .await?;
    let mut report = RoombaReport {
        keys: members.len(),
        ..Default::default()
    };
    let script = redis::Script::new(CAS_SCRIPT);
    // Pipelines use EVALSHA: make sure the script is cached (a restarted Redis forgets it).
    script.prepare_invoke().load_async(conn).await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    for chunk in members.chunks(CHUNK) {
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(chunk).query_async(conn).await?;
        let mut pipe = redis::pipe();
        let mut actions = 0;
        for (key, value) in chunk.iter().zip(values) {
            let (expected, new_value, euthanize) = match value {
                None => (0usize, Vec::new(), true),
                Some(bytes) => match trim(&bytes, now, duration) {
                    Trim::Keep => continue,
                    Trim::Rewrite(v) => (bytes.len(), v, false),
                    Trim::Euthanize => (bytes.len(), Vec::new(), true),
                },
            };
            if euthanize {
                report.euthanized += 1;
            } else {
                report.trimmed += 1;
            }
            pipe.invoke_script(
                script
                    .key(key)
                    .key(UNIQUE_METRICS)
                    .arg(expected)
                    .arg(new_value),
            );
            actions += 1;
        }
        if actions == 0 {
            continue;
        }
        let results: Vec<i64> = pipe.query_async(conn).await?;
        report.blocked += results.iter().filter(|&&r| r < 0).count();
    }
    Ok(report)
}

/// The Roomba actor.
pub struct Roomba {
    conn: ConnectionManager,
    duration: f64,
    interval: Duration,
    running: bool,
}

impl Roomba {
    /// `duration` = full_duration + grace, in seconds.
    pub fn new(conn: ConnectionManager, duration_secs: u64, interval: Duration) -> Self {
        Roomba {
            conn,
            duration: duration_secs as f64,
            interval,
            running: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        self.running = true;
        let mut conn = self.conn.clone();
        let duration = self.duration;
        let started = Instant::now();
        let fut = async move { run_once(&mut conn, duration).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _| {
            act.running = false;
            match res {
                Ok(r) => {
                    m::ROOMBA_TRIMMED.add(r.trimmed as u64);
                    m::ROOMBA_EUTHANIZED.add(r.euthanized as u64);
                    m::ROOMBA_BLOCKED.add(r.blocked as u64);
                    m::UNIQUE_METRICS.set(r.keys as i64);
                    info!(
                        "roomba :: keys {} trimmed {} euthanized {} blocked {} in {:.2}s",
                        r.keys,
                        r.trimmed,
                        r.euthanized,
                        r.blocked,
                        started.elapsed().as_secs_f64()
                    );
                }
                Err(err) => {
                    m::ROOMBA_ERRORS.inc();
                    error!("roomba run failed: {err}");
                }
            }
        }));
    }
}

impl Actor for Roomba {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.interval, |act, ctx| act.tick(ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Number;

    fn pt(ts: i64, v: f64) -> Point {
        Point {
            timestamp: Number::Int(ts),
            value: Number::Float(v),
        }
    }

    #[test]
    fn keeps_sorted_recent() {
        let b = encode_series(&[pt(100, 1.0), pt(101, 2.0)]);
        assert_eq!(trim(&b, 150.0, 100.0), Trim::Keep);
    }

    #[test]
    fn sorts_dedups_smallest_value_and_trims() {
        let b = encode_series(&[
            pt(102, 5.0),
            pt(40, 1.0),
            pt(101, 9.0),
            pt(101, 3.0),
            pt(50, 0.0),
        ]);
        // cutoff = 150 - 100 = 50: ts 50 is not > 50, so it goes too.
        match trim(&b, 150.0, 100.0) {
            Trim::Rewrite(v) => {
                assert_eq!(decode_series(&v).unwrap(), vec![pt(101, 3.0), pt(102, 5.0)]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expired_and_garbage_are_euthanized() {
        let b = encode_series(&[pt(10, 1.0)]);
        assert_eq!(trim(&b, 1000.0, 100.0), Trim::Euthanize);
        assert_eq!(trim(b"\x01", 0.0, 100.0), Trim::Euthanize);
        assert_eq!(trim(b"", 0.0, 100.0), Trim::Euthanize);
    }
}
