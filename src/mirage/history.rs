//! The built-in history: each Mirage metric's last `[mirage] history_days` downsampled to
//! `[mirage] history_resolution_secs`, so Mirage works with no Graphite anywhere, and as the
//! fallback when Graphite fails.
//!
//! Redis key `mirage.history.<metric>` (string, TTL `history_days`): concatenated msgpack
//! `[ts, value]` pairs like `metrics.<metric>`, one per bucket, always `uint32` timestamp and
//! `float64` mean (15 bytes a pair), oldest first. Buckets are Graphite's: labelled
//! `floor(t / res) · res`, the mean of the points in `[label, label + res)`.
//!
//! [`HistoryKeeper`] (its own arbiter, timer every `history_interval_secs`) is the only
//! writer (on a Redis Cluster, each node's keeper only for the metrics the assignment of
//! `store::cluster` gives it): for each Mirage metric in `metrics.unique_metrics` it reads `metrics.<metric>`
//! and the last kept pair (`GETRANGE -15 -1`), APPENDs the buckets completed since, and
//! rewrites the key without the buckets older than `history_days` once they are an hour
//! past due. It never touches the ingest path (the metric actors only APPEND to
//! `metrics.*`), so its cost is a read of each Mirage metric's 24 h every interval.
//! Backpressure: one round at a time (a tick during a round is skipped); a Redis failure
//! ends the round, counted and logged once a minute.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::redis_conn::RedisConn;
use actix::prelude::*;
use log::{error, info};

use crate::model::msgpack::{decode_series_f64, encode_point};
use crate::model::{Number, Point, FULL_NAMESPACE, UNIQUE_METRICS};
use crate::telemetry::metrics as m;

/// Prefix of the history keys.
pub const HISTORY_PREFIX: &str = "mirage.history.";

/// `mirage.history.<metric>`.
pub fn history_key(metric: &str) -> String {
    format!("{HISTORY_PREFIX}{metric}")
}

/// Encodes buckets as the history key holds them.
pub fn encode(buckets: &[(i64, f64)]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(buckets.len() * 15);
    for &(t, v) in buckets {
        encode_point(
            &mut buf,
            &Point {
                timestamp: Number::Int(t),
                value: Number::Float(v),
            },
        );
    }
    buf
}

/// Graphite-style buckets of a sorted series: `(label, mean)` for every bucket *completed*
/// (a point at or after its end exists) whose label is after `after`.
pub fn completed_buckets(series: &[(f64, f64)], res: i64, after: Option<i64>) -> Vec<(i64, f64)> {
    let res = res.max(1);
    let Some(&(last, _)) = series.last() else {
        return Vec::new();
    };
    let last = last as i64;
    let mut out = Vec::new();
    let mut cur: Option<(i64, f64, usize)> = None;
    for &(t, v) in series {
        if !t.is_finite() || !v.is_finite() {
            continue;
        }
        let label = (t as i64).div_euclid(res) * res;
        if after.is_some_and(|a| label <= a) || label + res > last {
            continue;
        }
        match &mut cur {
            Some((l, sum, n)) if *l == label => {
                *sum += v;
                *n += 1;
            }
            _ => {
                if let Some((l, sum, n)) = cur.take() {
                    out.push((l, sum / n as f64));
                }
                cur = Some((label, v, 1));
            }
        }
    }
    if let Some((l, sum, n)) = cur {
        out.push((l, sum / n as f64));
    }
    out
}

/// What the keeper should do with one metric's history.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// Nothing new.
    None,
    /// APPEND these pairs.
    Append(Vec<u8>),
}

/// The update for one metric: `series` is its sorted Redis series, `first`/`last` the
/// labels of the first and last kept buckets (None: no history, or unreadable), `whole` the
/// whole history when a trim is due (read only then), `keep_from` the oldest label to keep.
pub fn plan(
    series: &[(f64, f64)],
    res: i64,
    first: Option<i64>,
    last: Option<i64>,
    keep_from: i64,
) -> (Update, bool) {
    let new = completed_buckets(series, res, last);
    // A trim is due once the oldest bucket is an hour past the window (hysteresis, so the
    // key is rewritten about once an hour, not every round).
    let trim_due = first.is_some_and(|f| f < keep_from - 3600);
    if new.is_empty() {
        return (Update::None, trim_due);
    }
    (Update::Append(encode(&new)), trim_due)
}

/// The kept part of a whole history plus `append` (already encoded), for a trim.
pub fn trimmed(whole: &[u8], append: &[u8], keep_from: i64) -> Vec<u8> {
    let mut pts = Vec::new();
    if decode_series_f64(whole, &mut pts).is_err() {
        pts.clear();
    }
    let kept: Vec<(i64, f64)> = pts
        .into_iter()
        .filter(|p| p.0 as i64 >= keep_from)
        .map(|p| (p.0 as i64, p.1))
        .collect();
    let mut out = encode(&kept);
    out.extend_from_slice(append);
    out
}

fn label_of(pair: &[u8]) -> Option<i64> {
    let mut pts = Vec::with_capacity(1);
    decode_series_f64(pair, &mut pts).ok()?;
    (pts.len() == 1).then(|| pts[0].0 as i64)
}

pub use super::messages::MiragePredicate;

/// Settings of the keeper.
#[derive(Clone)]
pub struct KeeperSettings {
    /// Bucket width, seconds.
    pub resolution: i64,
    /// Seconds kept.
    pub keep_secs: i64,
    /// Seconds between rounds.
    pub interval: Duration,
    /// Metric name → Mirage hours (None: not a Mirage metric).
    pub is_mirage: MiragePredicate,
}

/// Totals of one keeper round (for tests and the log).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RoundReport {
    /// Mirage metrics seen.
    pub metrics: usize,
    /// Buckets appended.
    pub appended: usize,
    /// Keys rewritten (trimmed).
    pub rewritten: usize,
}

/// One round over every Mirage metric. Used by the actor and by tests.
pub async fn keep_round(
    conn: &mut RedisConn,
    s: &KeeperSettings,
    cache: &mut HashMap<String, bool>,
    now: i64,
) -> Result<RoundReport, String> {
    keep_round_as(conn, s, cache, now, None).await
}

/// [`keep_round`] as cluster node `node`: only over the Mirage metrics the rendezvous
/// assignment (`store::cluster`) gives it, so no two nodes append the same buckets.
pub async fn keep_round_as(
    conn: &mut RedisConn,
    s: &KeeperSettings,
    cache: &mut HashMap<String, bool>,
    now: i64,
    node: Option<&str>,
) -> Result<RoundReport, String> {
    let mut members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(UNIQUE_METRICS)
        .query_async(conn)
        .await
        .map_err(|e| format!("SMEMBERS {UNIQUE_METRICS}: {e}"))?;
    if let Some(me) = node {
        let a = crate::store::cluster::assignment(conn, me)
            .await
            .map_err(|e| format!("reading the cluster's live nodes: {e}"))?;
        members.retain(|k| a.is_mine(k));
    }
    if cache.len() > members.len() * 2 + 1024 {
        cache.clear();
    }
    let names: Vec<String> = members
        .iter()
        .map(|k| k.strip_prefix(FULL_NAMESPACE).unwrap_or(k))
        .filter(|n| {
            *cache
                .entry(n.to_string())
                .or_insert_with(|| (s.is_mirage)(n).is_some())
        })
        .map(String::from)
        .collect();
    let keep_from = now - s.keep_secs;
    let mut report = RoundReport {
        metrics: names.len(),
        ..Default::default()
    };
    let mut series = Vec::new();
    for chunk in names.chunks(100) {
        let mut p = redis::pipe();
        for n in chunk {
            let h = history_key(n);
            p.cmd("GET").arg(format!("{FULL_NAMESPACE}{n}"));
            p.cmd("GETRANGE").arg(&h).arg(0).arg(14);
            p.cmd("GETRANGE").arg(&h).arg(-15).arg(-1);
        }
        let vals: Vec<Option<Vec<u8>>> = p
            .query_async(conn)
            .await
            .map_err(|e| format!("reading {} series: {e}", chunk.len()))?;
        let mut w = redis::pipe();
        let mut writes = 0;
        for (n, v) in chunk.iter().zip(vals.chunks(3)) {
            let raw = v[0].as_deref().unwrap_or_default();
            if decode_series_f64(raw, &mut series).is_err() {
                continue;
            }
            if !series.windows(2).all(|w| w[0].0 <= w[1].0) {
                series.sort_by(|a, b| a.0.total_cmp(&b.0));
            }
            let first = v[1].as_deref().filter(|b| !b.is_empty()).map(label_of);
            let last = v[2].as_deref().filter(|b| !b.is_empty()).map(label_of);
            let key = history_key(n);
            // An unreadable key (not 15-byte pairs) is rebuilt from what Redis holds.
            let corrupt = matches!(first, Some(None)) || matches!(last, Some(None));
            let (first, last) = (first.flatten(), last.flatten());
            if corrupt {
                let b = completed_buckets(&series, s.resolution, None);
                report.rewritten += 1;
                report.appended += b.len();
                w.cmd("SET").arg(&key).arg(encode(&b)).ignore();
                w.cmd("EXPIRE").arg(&key).arg(s.keep_secs).ignore();
                writes += 1;
                continue;
            }
            let (update, trim_due) = plan(&series, s.resolution, first, last, keep_from);
            if trim_due {
                let whole: Vec<u8> = redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<Vec<u8>>>(conn)
                    .await
                    .map_err(|e| format!("GET {key}: {e}"))?
                    .unwrap_or_default();
                let append = match &update {
                    Update::Append(a) => a.as_slice(),
                    _ => &[],
                };
                report.appended += append.len() / 15;
                report.rewritten += 1;
                w.cmd("SET")
                    .arg(&key)
                    .arg(trimmed(&whole, append, keep_from))
                    .ignore();
            } else if let Update::Append(a) = update {
                report.appended += a.len() / 15;
                w.cmd("APPEND").arg(&key).arg(a).ignore();
            } else {
                continue;
            }
            w.cmd("EXPIRE").arg(&key).arg(s.keep_secs).ignore();
            writes += 1;
        }
        if writes > 0 {
            let _: () = w
                .query_async(conn)
                .await
                .map_err(|e| format!("writing {writes} history key(s): {e}"))?;
        }
    }
    Ok(report)
}

/// The history keeper actor (see the module docs).
pub struct HistoryKeeper {
    conn: RedisConn,
    settings: KeeperSettings,
    cache: HashMap<String, bool>,
    running: bool,
    last_error_log: Option<Instant>,
    node: Option<String>,
}

impl HistoryKeeper {
    /// A keeper writing through `conn`.
    pub fn new(conn: RedisConn, settings: KeeperSettings) -> Self {
        HistoryKeeper {
            conn,
            settings,
            cache: HashMap::new(),
            running: false,
            last_error_log: None,
            node: None,
        }
    }

    /// Keeps only the history of the metrics the cluster assignment gives node `id`.
    pub fn with_cluster(mut self, id: String) -> Self {
        self.node = Some(id);
        self
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.running {
            return;
        }
        self.running = true;
        let mut conn = self.conn.clone();
        let settings = self.settings.clone();
        let mut cache = std::mem::take(&mut self.cache);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let node = self.node.clone();
        let fut = async move {
            let r = keep_round_as(&mut conn, &settings, &mut cache, now, node.as_deref()).await;
            (r, cache)
        };
        ctx.spawn(fut.into_actor(self).map(|(r, cache), act, _| {
            act.running = false;
            act.cache = cache;
            match r {
                Ok(rep) => {
                    m::MIRAGE_HISTORY_BUCKETS.add(rep.appended as u64);
                    if rep.rewritten > 0 {
                        info!(
                            "mirage history: {} metric(s), {} bucket(s) appended, {} key(s) trimmed",
                            rep.metrics, rep.appended, rep.rewritten
                        );
                    }
                }
                Err(e) => {
                    m::MIRAGE_HISTORY_ERRORS.inc();
                    if act
                        .last_error_log
                        .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
                    {
                        error!("mirage history: round failed against Redis: {e}");
                        act.last_error_log = Some(Instant::now());
                    }
                }
            }
        }));
    }
}

impl Actor for HistoryKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_later(Duration::from_secs(5), |act, ctx| act.tick(ctx));
        ctx.run_interval(self.settings.interval, |act, ctx| act.tick(ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_graphites_and_only_complete_ones() {
        // 60-s points from 1000 to 2800: buckets of 600 labelled 600, 1200, 1800, 2400.
        let s: Vec<(f64, f64)> = (0..31)
            .map(|i| (1000.0 + i as f64 * 60.0, i as f64))
            .collect();
        let b = completed_buckets(&s, 600, None);
        // Last point 2800: bucket 2400 (2400..3000) is not complete.
        assert_eq!(
            b.iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![600, 1200, 1800]
        );
        // Bucket 1200 holds 1240..1780 = i 4..=13.
        let want = (4..=13).map(|i| i as f64).sum::<f64>() / 10.0;
        assert_eq!(b[1].1, want);
        assert_eq!(completed_buckets(&s, 600, Some(1200)).len(), 1);
    }

    #[test]
    fn a_pair_is_15_bytes_and_round_trips() {
        let b = vec![(1_700_000_400, 1.5), (1_700_001_000, -2.25)];
        let e = encode(&b);
        assert_eq!(e.len(), 30);
        assert_eq!(label_of(&e[15..]), Some(1_700_001_000));
        let mut back = Vec::new();
        decode_series_f64(&e, &mut back).unwrap();
        assert_eq!(back, vec![(1_700_000_400.0, 1.5), (1_700_001_000.0, -2.25)]);
    }

    #[test]
    fn trim_keeps_the_window_and_appends() {
        let old = encode(&[(1000, 1.0), (5000, 2.0), (9000, 3.0)]);
        let add = encode(&[(9600, 4.0)]);
        let t = trimmed(&old, &add, 5000);
        let mut back = Vec::new();
        decode_series_f64(&t, &mut back).unwrap();
        assert_eq!(back, vec![(5000.0, 2.0), (9000.0, 3.0), (9600.0, 4.0)]);
        let s: Vec<(f64, f64)> = (0..100).map(|i| (i as f64 * 60.0, 1.0)).collect();
        let (u, due) = plan(&s, 600, Some(0), Some(4800), 10_000);
        assert!(due);
        assert_eq!(u, Update::None);
    }
}
