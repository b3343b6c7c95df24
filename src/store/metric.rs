//! `MetricShard`: the metric actors (Skyline's Horizon workers).
//!
//! Each actor owns a disjoint set of metrics (the [`super::Ingestor`] hashes names onto
//! actors) and, for each, the msgpack bytes not yet written. Every `flush_interval_ms`, or as
//! soon as it holds `flush_max_points`, it writes them in one non-transactional pipeline:
//! `APPEND metrics.<name> <pairs>` per metric (byte-identical to Skyline's per-datapoint
//! APPENDs, in arrival order) and one `SADD metrics.unique_metrics` for metrics it has not
//! announced in the last minute. Batching instead of Skyline's MULTI/EXEC per datapoint is safe
//! because Roomba's rewrite only needs per-key atomicity (see `roomba.rs`).
//!
//! Applied on arrival, in Skyline's order: SKIP_LIST / DO_NOT_SKIP_LIST (decision cached per
//! name), then the age filter (`int(ts) < int(now) - max_resolution_secs` is dropped; for
//! flux's points, [`Ingest::history`], `full_duration_secs` instead: flux answered 2xx for
//! them, so they are stored as far back as Roomba keeps anything).
//!
//! Failure and backpressure: one flush is in flight at a time; new datapoints keep buffering
//! meanwhile. A failed flush puts its batch back *in front of* newer bytes (order kept) and is
//! retried with exponential back-off (100 ms … 10 s), counted and logged (first failure, then
//! once a minute). While Redis is away the buffers grow to `max_buffered_points` per actor;
//! the shared [`super::Pressure`] then makes TCP listeners stop reading (carbon-relay queues),
//! and only a flood beyond twice that limit is dropped and counted. A flush that dies mid-way
//! may be re-sent: delivery is at-least-once, and Roomba removes duplicate timestamps.
//! On [`super::Flush`] (shutdown) it writes until empty and replies.
//!
//! Allocation: at high cardinality each flush sees most metrics once, so the per-metric work
//! is per datapoint. Buffers are double-buffered: a flush takes the active map and the actor
//! goes on in the map recycled from the flush before (names and byte buffers kept, emptied),
//! so a metric that sends steadily costs no allocation for its name or buffer; a recycled map
//! keeps only the metrics that had data in its batch (a quiet metric's entry goes). Keys are
//! written straight into each command's buffer (no `metrics.<name>` string per flush), and
//! each command is sized once.

use ahash::HashMap;
use ahash::HashMapExt;
use std::io::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::store::redis_conn::RedisConn;
use actix::prelude::*;
use log::{error, info, warn};
use tokio::sync::oneshot;

use super::encoding::encode_point;
use super::keys::{self, UNIQUE_METRICS};
use super::messages::{Flush, FlushReport, Ingest, Pressure};
use super::skip::SkipRules;
use crate::telemetry::metrics as m;

/// How often a metric is re-announced in `metrics.unique_metrics` (Roomba or a Python
/// analyzer may have removed it).
const ANNOUNCE_EVERY: Duration = Duration::from_secs(60);

/// Largest back-off between retries while Redis is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A recycled buffer bigger than this (a metric's backlog while Redis was away) is freed
/// rather than kept.
const KEEP_BUFFER_BYTES: usize = 4096;

/// `metrics.<name>` as a command argument, written straight into the command's buffer.
struct KeyArg<'a>(&'a str);

impl redis::ToRedisArgs for KeyArg<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        let mut w = out.writer_for_next_arg();
        // Writing into a Vec cannot fail.
        let _ = w.write_all(crate::model::FULL_NAMESPACE.as_bytes());
        let _ = w.write_all(self.0.as_bytes());
    }
}

/// `APPEND metrics.<name> <bytes>`, allocated once at its final size.
fn append_cmd(name: &str, bytes: &[u8]) -> redis::Cmd {
    let key_len = crate::model::FULL_NAMESPACE.len() + name.len();
    let mut cmd = redis::Cmd::with_capacity(3, 6 + key_len + bytes.len());
    cmd.arg("APPEND").arg(KeyArg(name)).arg(bytes);
    cmd
}

/// Empties a flushed batch for reuse: keeps the metrics that had data (and their buffers,
/// unless big), drops the others.
fn recycle(mut batch: HashMap<String, Vec<u8>>) -> HashMap<String, Vec<u8>> {
    batch.retain(|_, bytes| !bytes.is_empty());
    for bytes in batch.values_mut() {
        if bytes.capacity() > KEEP_BUFFER_BYTES {
            *bytes = Vec::with_capacity(64);
        } else {
            bytes.clear();
        }
    }
    batch
}

/// The metric actors' share of `[horizon]`.
#[derive(Debug, Clone)]
pub struct ShardSettings {
    /// Datapoints older than now minus this are dropped.
    pub max_resolution_secs: i64,
    /// Flux's points (`Ingest::history`) are kept back to now minus this instead.
    pub full_duration_secs: i64,
    /// Flush period.
    pub flush_interval: Duration,
    /// Flush early at this many buffered datapoints.
    pub flush_max_points: usize,
    /// Hold at most this many while Redis fails (then the listeners are told to wait).
    pub max_buffered_points: usize,
    /// `[redis] wait_replicas`: after the flush, `WAIT` for this many replicas (of every
    /// master on a cluster); fewer fails the flush (kept and retried). 0: no `WAIT`.
    pub wait_replicas: u32,
    /// `[redis] wait_timeout_ms`.
    pub wait_timeout_ms: u64,
}

/// One metric actor. Runs on one of the per-core arbiters.
pub struct MetricShard {
    /// Index among the actors; actor 0 also writes the `horizon` heartbeat.
    id: usize,
    /// Shared, reconnecting connection; cloned into each flush future.
    redis: RedisConn,
    settings: ShardSettings,
    skip: std::sync::Arc<SkipRules>,
    /// Skip decision per name (cleared when it grows past a million names).
    skip_cache: HashMap<String, bool>,
    /// Metric name → msgpack pairs not yet written (an empty buffer: nothing pending). Taken
    /// whole by a flush, merged back in front on failure, emptied at shutdown by [`Flush`].
    buffers: HashMap<String, Vec<u8>>,
    /// The map of the last successful flush, emptied for reuse (see the module doc).
    spare: HashMap<String, Vec<u8>>,
    /// Datapoints in `buffers`.
    buffered_points: usize,
    /// When each metric was last SADDed to the unique set.
    announced: HashMap<String, Instant>,
    /// A flush future is running.
    flushing: bool,
    /// Consecutive failed flushes (drives the back-off).
    failures: u32,
    /// No flush before this instant (back-off).
    next_attempt: Instant,
    /// Last time a flush error was logged (rate limit).
    last_error_log: Option<Instant>,
    /// Last heartbeat write (actor 0 only).
    last_heartbeat: Option<Instant>,
    /// Shutdown callers waiting for the buffers to drain.
    drain_waiters: Vec<oneshot::Sender<FlushReport>>,
    pressure: Pressure,
}

impl MetricShard {
    /// A new actor; nothing is connected until the first flush.
    pub fn new(
        id: usize,
        redis: RedisConn,
        settings: ShardSettings,
        skip: std::sync::Arc<SkipRules>,
        pressure: Pressure,
    ) -> Self {
        MetricShard {
            id,
            redis,
            settings,
            skip,
            skip_cache: HashMap::new(),
            buffers: HashMap::new(),
            spare: HashMap::new(),
            buffered_points: 0,
            announced: HashMap::new(),
            flushing: false,
            failures: 0,
            next_attempt: Instant::now(),
            last_error_log: None,
            last_heartbeat: None,
            drain_waiters: Vec::new(),
            pressure,
        }
    }

    fn skipped(&mut self, name: &str) -> bool {
        if self.skip.is_empty() {
            return keys::is_reserved(name);
        }
        if let Some(&s) = self.skip_cache.get(name) {
            return s;
        }
        if self.skip_cache.len() > 1_000_000 {
            self.skip_cache.clear();
        }
        let s = self.skip.skips(name) || keys::is_reserved(name);
        self.skip_cache.insert(name.to_string(), s);
        s
    }

    fn backoff(&self) -> Duration {
        let exp = self.failures.min(7);
        (Duration::from_millis(100) * 2u32.pow(exp)).min(MAX_BACKOFF)
    }

    /// Starts a flush unless one is running, the buffer is empty, or we are backing off.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.buffered_points == 0 || Instant::now() < self.next_attempt {
            self.reply_drained();
            return;
        }
        let spare = std::mem::take(&mut self.spare);
        let batch = std::mem::replace(&mut self.buffers, spare);
        let points = std::mem::take(&mut self.buffered_points);
        let now = Instant::now();
        let members: Vec<String> = batch
            .iter()
            .filter(|(name, bytes)| {
                !bytes.is_empty()
                    && self
                        .announced
                        .get(*name)
                        .is_none_or(|t| now.duration_since(*t) >= ANNOUNCE_EVERY)
            })
            .map(|(name, _)| keys::metric_key(name))
            .collect();
        let heartbeat = self.id == 0
            && self
                .last_heartbeat
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60));
        let mut conn = self.redis.clone();
        let (wait_replicas, wait_ms) = (self.settings.wait_replicas, self.settings.wait_timeout_ms);
        self.flushing = true;

        let fut = async move {
            let mut pipe = redis::Pipeline::with_capacity(batch.len() + 2);
            pipe.ignore_errors();
            for (name, bytes) in &batch {
                if !bytes.is_empty() {
                    pipe.add_command(append_cmd(name, bytes));
                }
            }
            if !members.is_empty() {
                pipe.cmd("SADD").arg(UNIQUE_METRICS).arg(&members);
            }
            if heartbeat {
                pipe.cmd("SET")
                    .arg(keys::HORIZON_HEARTBEAT)
                    .arg(epoch_secs())
                    .arg("EX")
                    .arg(120);
            }
            let mut res: redis::RedisResult<Vec<redis::RedisResult<redis::Value>>> =
                pipe.query_async(&mut conn).await;
            drop(pipe);
            if wait_replicas > 0 && res.is_ok() {
                // On a cluster WAIT goes to every master over the connections the APPENDs
                // used, and the smallest count comes back.
                let acked: redis::RedisResult<i64> = redis::cmd("WAIT")
                    .arg(wait_replicas)
                    .arg(wait_ms)
                    .query_async(&mut conn)
                    .await;
                match acked {
                    Ok(n) if n >= i64::from(wait_replicas) => {}
                    Ok(n) => {
                        m::REDIS_WAIT_SHORT.inc();
                        res = Err(redis::RedisError::from((
                            redis::ErrorKind::Client,
                            "WAIT",
                            format!(
                                "{n} replica(s) acknowledged the flush within {wait_ms} ms, {wait_replicas} required"
                            ),
                        )));
                    }
                    Err(err) => res = Err(err),
                }
            }
            (res, batch, points, members, heartbeat)
        };
        ctx.spawn(fut.into_actor(self).map(
            |(res, batch, points, members, heartbeat), act, ctx| {
                act.flushing = false;
                match res {
                    Ok(replies) => {
                        let mut rejected = 0usize;
                        // The APPENDs were queued in this order (the map is unchanged).
                        let names = batch.iter().filter(|(_, b)| !b.is_empty()).map(|(n, _)| n);
                        for (name, reply) in names.zip(replies.iter()) {
                            if let Err(err) = reply {
                                // A server-side refusal (e.g. WRONGTYPE: the key is not a
                                // string) would fail forever: drop that metric's batch.
                                rejected += 1;
                                error!("Redis refused APPEND for metric {name}: {err}; its datapoints were dropped");
                            }
                        }
                        act.failures = 0;
                        if act.last_error_log.take().is_some() {
                            info!("Redis writes recovered (metric actor {})", act.id);
                        }
                        let now = Instant::now();
                        for key in members {
                            act.announced.insert(keys::base_name(&key).to_string(), now);
                        }
                        if heartbeat {
                            act.last_heartbeat = Some(now);
                        }
                        m::DATAPOINTS_WRITTEN.add(points as u64);
                        if rejected > 0 {
                            m::REDIS_WRITE_ERRORS.add(rejected as u64);
                        }
                        act.pressure.sub(points);
                        m::BUFFERED_POINTS.add(-(points as i64));
                        act.spare = recycle(batch);
                    }
                    Err(err) => {
                        act.failures += 1;
                        act.next_attempt = Instant::now() + act.backoff();
                        m::REDIS_WRITE_ERRORS.inc();
                        let log_now = act
                            .last_error_log
                            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60));
                        if log_now {
                            error!(
                                "cannot write to Redis (metric actor {}): {}; holding {} datapoints of {} metrics, retrying",
                                act.id,
                                super::redis_conn::describe(&err),
                                points + act.buffered_points,
                                batch.len()
                            );
                            act.last_error_log = Some(Instant::now());
                        }
                        // Put the batch back in front of whatever arrived meanwhile.
                        for (name, mut bytes) in batch {
                            if bytes.is_empty() {
                                continue;
                            }
                            match act.buffers.get_mut(&name) {
                                Some(newer) => {
                                    bytes.extend_from_slice(newer);
                                    *newer = bytes;
                                }
                                None => {
                                    act.buffers.insert(name, bytes);
                                }
                            }
                        }
                        act.buffered_points += points;
                    }
                }
                if !act.drain_waiters.is_empty() {
                    if act.failures > 0 {
                        // Shutdown: report what could not be written rather than wait forever.
                        act.reply_now();
                    } else {
                        act.flush(ctx);
                    }
                }
                act.reply_drained();
            },
        ));
    }

    fn reply_drained(&mut self) {
        if self.buffered_points == 0 && !self.flushing {
            self.reply_now();
        }
    }

    fn reply_now(&mut self) {
        let report = FlushReport {
            remaining: self.buffered_points,
        };
        for w in self.drain_waiters.drain(..) {
            let _ = w.send(report);
        }
    }
}

fn epoch_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Actor for MetricShard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64);
        ctx.run_interval(self.settings.flush_interval, |act, ctx| act.flush(ctx));
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        if self.buffered_points > 0 {
            error!(
                "metric actor {} stopped with {} datapoints not written to Redis",
                self.id, self.buffered_points
            );
        }
    }
}

impl Handler<Ingest> for MetricShard {
    type Result = ();

    fn handle(&mut self, Ingest { points, history }: Ingest, ctx: &mut Self::Context) {
        let now = epoch_secs();
        let oldest = now
            - if history {
                self.settings
                    .full_duration_secs
                    .max(self.settings.max_resolution_secs)
            } else {
                self.settings.max_resolution_secs
            };
        let hard_limit = self.settings.max_buffered_points.saturating_mul(2);
        let mut added = 0usize;
        for dp in points {
            if self.skipped(&dp.metric) {
                m::DROPPED_SKIPPED.inc();
                continue;
            }
            let ts = dp.point.timestamp.as_f64();
            if (ts.trunc() as i64) < oldest {
                m::DROPPED_TOO_OLD.inc();
                continue;
            }
            if self.buffered_points + added >= hard_limit {
                m::DROPPED_REDIS_UNAVAILABLE.inc();
                continue;
            }
            let buf = match self.buffers.get_mut(&dp.metric) {
                Some(b) => b,
                None => self
                    .buffers
                    .entry(dp.metric)
                    .or_insert_with(|| Vec::with_capacity(64)),
            };
            encode_point(buf, &dp.point);
            added += 1;
        }
        self.buffered_points += added;
        self.pressure.add(added);
        m::BUFFERED_POINTS.add(added as i64);
        if self.buffered_points >= self.settings.flush_max_points {
            self.flush(ctx);
        }
    }
}

impl Handler<Flush> for MetricShard {
    type Result = ResponseFuture<FlushReport>;

    fn handle(&mut self, _: Flush, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        self.next_attempt = Instant::now();
        let remaining = self.buffered_points;
        self.flush(ctx);
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                warn!("metric actor stopped before its flush finished");
                FlushReport { remaining }
            })
        })
    }
}
