//! `Forwarder`: flux's worker actor (Skyline's flux `worker.py`), on an arbiter of its own.
//!
//! It owns the points the HTTP handlers accepted ([`Enqueue`]) until they are handed on. In
//! cycles of up to [`CYCLE_POINTS`] it
//! 1. knows the last timestamp of every live metric of the cycle — from its in-memory table of
//!    what it forwarded itself, else from Redis (one `MGET` of `flux.last.<metric>` for the
//!    metrics it has not seen within `last_timestamp_ttl_secs`) — and drops each point whose
//!    timestamp is not newer (also within the cycle); backfilled points (`populate_metric`)
//!    skip this and never move the last timestamp;
//! 2. queues the rest: pickle frames into the carbon [`Outbox`] (memory, then disk spool) and,
//!    with `feed_horizon`, the datapoints into the queue for our metric actors, which one feeder
//!    hands on in order (`Ingestor::ingest`, one call in flight, waiting for mailbox space);
//! 3. only then records the new last timestamps: in memory, and in Redis as
//!    `SET flux.last.<metric> "[ts, value]" EX <ttl>` (Skyline's legacy key and Python-literal
//!    value), coalesced per metric and written every `last_timestamp_flush_ms`. A point that was
//!    not queued never hides a resend: if the outbox refuses a frame (spool full) the cycle's
//!    in-memory updates are undone and nothing of it is written. The in-memory table holds at
//!    most [`LAST_CACHE_MAX`] metrics (then it is cleared and refilled from Redis); it uses a
//!    seeded multiplicative hash, which is fast and fine for names from authenticated clients.
//!
//! Carbon: one persistent TCP connection to `carbon_pickle_addr`, frames written in order, one
//! write in flight. A failed connect or write puts the frames back and retries with back-off
//! (100 ms doubling to `carbon_reconnect_max_secs`), counted and logged at ERROR with the peer
//! once a minute. A peer that closed the connection is noticed before the next write. Delivery
//! is at-least-once: a write that fails midway is resent whole (Graphite overwrites by
//! timestamp).
//!
//! Backpressure policy of each edge:
//! - HTTP → forwarder: a shared [`QueueGauge`] of points accepted and not yet de-duplicated
//!   and handed on (to the outbox and, with `feed_horizon`, to the metric actors); at
//!   `queue_max_points` handlers answer 503 + `Retry-After`, queueing nothing.
//! - forwarder → metric actors: the feeder waits for mailbox space and no cycle starts while
//!   they are saturated (Redis down), so the gauge fills and HTTP clients are told to retry.
//! - forwarder → Redis (`flux.last`): a failed lookup forwards the cycle's unknown metrics
//!   without de-duplication (duplicates are harmless, lost data is not); a failed write keeps
//!   the values for the next flush; both counted and logged.
//! - forwarder → carbon: never blocks the cycles; unsent frames wait in the bounded outbox
//!   (memory, then disk spool; beyond both they are dropped, counted and logged).
//!
//! Shutdown ([`Drain`]): processes what is queued, tries carbon until the timeout, then writes
//! every unsent frame (and any point still queued, undeduplicated) to the disk spool, which the
//! next start sends first.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::redis_conn::RedisConn;
use actix::prelude::*;
use log::{error, info, warn};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::outbox::{encode_frames, Outbox, Refused};
use super::validate::FluxPoint;
use crate::model::{Datapoint, Number, Point};
use crate::store::Ingestor;
use crate::telemetry::metrics as m;

/// Points de-duplicated and handed on per cycle at most.
pub const CYCLE_POINTS: usize = 20_000;

/// Metrics whose last timestamp is kept in memory at most (about 100 bytes each).
pub const LAST_CACHE_MAX: usize = 1_000_000;

/// Bytes of frames written to carbon per write at most.
const SEND_BYTES: usize = 1 << 20;

/// Connecting to carbon gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A write to carbon that makes no progress for this long counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often retries, spool reads and saturation waits are re-checked.
const TICK: Duration = Duration::from_millis(100);

/// Errors of one kind are logged at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// `flux.last.<metric>`: Skyline's legacy last-timestamp key.
pub fn last_key(metric: &str) -> String {
    let mut k = String::with_capacity(10 + metric.len());
    k.push_str("flux.last.");
    k.push_str(metric);
    k
}

/// Skyline's value of `flux.last.<metric>`: the Python literal `[timestamp, value]`.
pub fn last_value(timestamp: i64, value: f64) -> String {
    format!("[{timestamp}, {value:?}]")
}

/// The timestamp in a `flux.last.*` value: `[ts, value]`, `{'timestamp': ts, …}` (the hash
/// field format of Skyline's `flux.last.metric_data`) or a bare number.
pub fn parse_last_timestamp(raw: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    let num = if let Some(rest) = s.strip_prefix('[') {
        rest.split(',').next()?
    } else if s.starts_with('{') {
        let at = s.find("timestamp")?;
        let rest = s[at + "timestamp".len()..].trim_start_matches(['\'', '"', ' ', ':']);
        rest.split([',', '}']).next()?
    } else {
        s
    };
    let num = num.trim();
    num.parse::<i64>().ok().or_else(|| {
        num.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
    })
}

/// Points accepted over HTTP and not yet through de-duplication and hand-off, against
/// `queue_max_points`. Shared by the handlers (reserve) and the forwarder (release).
#[derive(Debug, Clone)]
pub struct QueueGauge {
    queued: Arc<AtomicUsize>,
    max: usize,
}

impl QueueGauge {
    /// A gauge bounded at `max` points.
    pub fn new(max: usize) -> Self {
        QueueGauge {
            queued: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Points queued now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Reserves room for `n` points, all or nothing.
    pub fn try_reserve(&self, n: usize) -> bool {
        let ok = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                cur.checked_add(n).filter(|&total| total <= self.max)
            })
            .is_ok();
        if ok {
            m::FLUX_QUEUED.add(n as i64);
        }
        ok
    }

    /// Releases `n` points.
    pub fn release(&self, n: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                Some(cur.saturating_sub(n))
            });
        m::FLUX_QUEUED.add(-(n as i64));
    }
}

/// Validated points from one request. The sender has reserved `points.len()` in the
/// [`QueueGauge`]; the forwarder releases them once handed on.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Enqueue {
    /// The points, names already prefixed.
    pub points: Vec<FluxPoint>,
    /// Backfill (`populate_metric`): no de-duplication, `flux.last` untouched.
    pub backfill: bool,
}

/// Shutdown: hand on what is queued, send to carbon until `timeout`, spool the rest.
#[derive(Message)]
#[rtype(result = "DrainReport")]
pub struct Drain {
    /// How long to keep trying carbon.
    pub timeout: Duration,
}

/// Reply to [`Drain`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// Datapoints neither delivered nor spooled (lost).
    pub lost: usize,
    /// Bytes left in the disk spool for the next start.
    pub spooled_bytes: u64,
}

/// The forwarder's share of `[flux]` (and where its spool lives).
#[derive(Debug, Clone)]
pub struct ForwarderSettings {
    /// carbon's pickle receiver (`host:port`); `None` = no forwarding.
    pub carbon_addr: Option<String>,
    /// De-duplicate against `flux.last.<metric>`.
    pub check_last_timestamp: bool,
    /// TTL of `flux.last.<metric>`.
    pub last_ttl_secs: u64,
    /// Datapoints per pickle frame.
    pub chunk_points: usize,
    /// Unsent datapoints kept in memory.
    pub max_pending_points: usize,
    /// The disk spool directory.
    pub spool_dir: PathBuf,
    /// The disk spool's bound.
    pub spool_max_bytes: u64,
    /// Longest back-off between carbon reconnections.
    pub reconnect_max: Duration,
    /// How often new last timestamps are written to Redis (coalesced per metric).
    pub last_flush_interval: Duration,
    /// How Redis is named in logs (redacted URL).
    pub redis_label: String,
}

struct Queued {
    point: FluxPoint,
    backfill: bool,
}

/// What one cycle de-duplicated, and how to undo its table updates.
struct Cycle {
    accepted: Vec<FluxPoint>,
    /// (index in `accepted`, the metric's entry before) for every advanced entry, in order.
    undo: Vec<(usize, Option<Last>)>,
    /// Indexes in `accepted` of metrics that became dirty.
    newly_dirty: Vec<usize>,
    deduplicated: usize,
}

impl Cycle {
    fn with_capacity(n: usize) -> Self {
        Cycle {
            accepted: Vec::with_capacity(n),
            undo: Vec::new(),
            newly_dirty: Vec::new(),
            deduplicated: 0,
        }
    }
}

/// A metric's last forwarded timestamp, and when it was learnt (expires like the Redis key).
#[derive(Debug, Clone, Copy)]
struct Last {
    /// `i64::MIN` when Redis had none.
    ts: i64,
    /// The value at `ts` (Skyline stores it beside the timestamp).
    value: f64,
    at: Instant,
    /// Not yet written to Redis (the name is in `Forwarder::dirty`).
    dirty: bool,
}

/// A seeded FxHash-style hasher (8 bytes per step): several times cheaper than SipHash on
/// metric names, which come from authenticated clients only.
#[derive(Clone, Copy)]
struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.0 =
                (self.0.rotate_left(5) ^ u64::from_le_bytes(w) ^ rest.len() as u64).wrapping_mul(K);
        }
    }
    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn finish(&self) -> u64 {
        // final avalanche so the table's high bits are well mixed
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h
    }
}

/// Builds [`FastHasher`]s with a per-process random seed.
#[derive(Clone, Copy)]
struct FastState(u64);

impl FastState {
    fn new() -> Self {
        FastState(std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(self.0)
    }
}

/// The flux worker actor.
pub struct Forwarder {
    settings: ForwarderSettings,
    redis: RedisConn,
    ingestor: Option<Ingestor>,
    gauge: QueueGauge,
    incoming: VecDeque<Queued>,
    /// A cycle waits for Redis (`MGET` of its unknown metrics).
    busy: bool,
    /// Points waiting with it.
    cycle_points: usize,
    outbox: Outbox,
    stream: Option<TcpStream>,
    /// Points of the carbon write in flight.
    sending: Option<usize>,
    failures: u32,
    next_attempt: Instant,
    last_carbon_log: Option<Instant>,
    last_dedup_log: Option<Instant>,
    last_spool_log: Option<Instant>,
    drain_waiters: Vec<oneshot::Sender<DrainReport>>,
    /// Last timestamps known in this process (what it forwarded, or read from Redis).
    last: HashMap<String, Last, FastState>,
    /// Names whose entry in `last` is dirty (each once), to write to Redis.
    dirty: Vec<String>,
    /// Names being written to Redis.
    writing_last: Option<usize>,
    last_written: Instant,
    /// Accepted datapoints not yet handed to the metric actors (still counted in the gauge).
    horizon_pending: Vec<Datapoint>,
    /// An `ingest` is in flight with this many datapoints.
    feeding: Option<usize>,
}

fn due(last: &mut Option<Instant>) -> bool {
    if last.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
        *last = Some(Instant::now());
        true
    } else {
        false
    }
}

async fn write_frames(
    stream: Option<TcpStream>,
    addr: &str,
    frames: &[super::outbox::Frame],
) -> std::io::Result<TcpStream> {
    let mut s = match stream {
        Some(s) if !peer_closed(&s) => s,
        _ => {
            let s = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| std::io::Error::other("connect timed out"))??;
            let _ = s.set_nodelay(true);
            s
        }
    };
    for f in frames {
        tokio::time::timeout(WRITE_TIMEOUT, s.write_all(&f.bytes))
            .await
            .map_err(|_| std::io::Error::other("write timed out"))??;
    }
    Ok(s)
}

/// carbon never writes to us: a readable end-of-stream (or an error) means it closed.
fn peer_closed(s: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

impl Forwarder {
    /// A forwarder; opens (and will resend) the disk spool when forwarding to carbon.
    pub fn new(
        settings: ForwarderSettings,
        redis: RedisConn,
        ingestor: Option<Ingestor>,
        gauge: QueueGauge,
    ) -> std::io::Result<Self> {
        let spool = settings
            .carbon_addr
            .as_ref()
            .map(|_| settings.spool_dir.as_path());
        let outbox = Outbox::new(settings.max_pending_points, spool, settings.spool_max_bytes)?;
        if outbox.spool_bytes() > 0 {
            info!(
                "flux: {} bytes of datapoints for carbon left in the spool by a previous run; sending them",
                outbox.spool_bytes()
            );
        }
        Ok(Forwarder {
            settings,
            redis,
            ingestor,
            gauge,
            incoming: VecDeque::new(),
            busy: false,
            cycle_points: 0,
            outbox,
            stream: None,
            sending: None,
            failures: 0,
            next_attempt: Instant::now(),
            last_carbon_log: None,
            last_dedup_log: None,
            last_spool_log: None,
            drain_waiters: Vec::new(),
            last: HashMap::with_hasher(FastState::new()),
            dirty: Vec::new(),
            writing_last: None,
            last_written: Instant::now(),
            horizon_pending: Vec::new(),
            feeding: None,
        })
    }

    fn ttl(&self) -> Duration {
        Duration::from_secs(self.settings.last_ttl_secs)
    }

    fn backoff(&self) -> Duration {
        let exp = self.failures.saturating_sub(1).min(16);
        (Duration::from_millis(100) * 2u32.pow(exp)).min(self.settings.reconnect_max)
    }

    /// Runs a cycle unless one waits for Redis or nothing waits: points of metrics whose last
    /// timestamp is known in memory are de-duplicated and queued at once (one table lookup
    /// each); the others wait for one `MGET` first.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.incoming.is_empty() {
            self.check_drained();
            return;
        }
        if self.drain_waiters.is_empty() && self.ingestor.as_ref().is_some_and(|i| i.saturated()) {
            return; // the tick retries; meanwhile the queue fills and HTTP answers 503
        }
        let n = self.incoming.len().min(CYCLE_POINTS);
        let batch: Vec<Queued> = self.incoming.drain(..n).collect();
        let mut cycle = Cycle::with_capacity(n);
        let mut unknown = Vec::new();
        let now = Instant::now();
        for q in batch {
            self.dedup(q, now, &mut cycle, Some(&mut unknown));
        }
        self.queue(cycle, ctx);
        if unknown.is_empty() {
            if !self.incoming.is_empty() {
                // Next cycle after the mailbox had a turn.
                ctx.run_later(Duration::ZERO, |act, ctx| act.pump(ctx));
            }
            self.check_drained();
            return;
        }
        let mut names: Vec<String> = unknown.iter().map(|q| q.point.metric.clone()).collect();
        names.sort_unstable();
        names.dedup();
        self.busy = true;
        self.cycle_points = unknown.len();
        let mut conn = self.redis.clone();
        let fut = async move {
            let keys: Vec<String> = names.iter().map(|m| last_key(m)).collect();
            let lasts = redis::cmd("MGET")
                .arg(&keys)
                .query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                .await;
            (unknown, names, lasts)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(|(unknown, names, lasts), act, ctx| act.looked_up(unknown, names, lasts, ctx)),
        );
    }

    /// The `MGET` of a cycle's unknown metrics answered: remember, then de-duplicate and queue.
    fn looked_up(
        &mut self,
        unknown: Vec<Queued>,
        names: Vec<String>,
        lasts: redis::RedisResult<Vec<Option<Vec<u8>>>>,
        ctx: &mut Context<Self>,
    ) {
        let now = Instant::now();
        match lasts {
            Ok(values) => {
                if self.last.len() + names.len() > LAST_CACHE_MAX {
                    self.last.clear();
                    self.dirty.clear(); // harmless: later duplicates after a restart at worst
                }
                for (metric, raw) in names.into_iter().zip(values) {
                    let entry = Last {
                        ts: raw
                            .as_deref()
                            .and_then(parse_last_timestamp)
                            .unwrap_or(i64::MIN),
                        value: 0.0,
                        at: now,
                        dirty: false,
                    };
                    match self.last.get_mut(&metric) {
                        Some(e) if e.dirty => {} // ours is newer and not yet written
                        Some(e) => *e = entry,
                        None => {
                            self.last.insert(metric, entry);
                        }
                    }
                }
            }
            Err(err) => {
                m::FLUX_DEDUP_ERRORS.inc();
                if due(&mut self.last_dedup_log) {
                    error!(
                        "flux: cannot read flux.last.* of {} metrics from Redis at {}: {err}; forwarding them without de-duplication",
                        names.len(),
                        self.settings.redis_label
                    );
                }
            }
        }
        let mut cycle = Cycle::with_capacity(unknown.len());
        for q in unknown {
            self.dedup(q, now, &mut cycle, None);
        }
        self.queue(cycle, ctx);
        self.busy = false;
        self.cycle_points = 0;
        self.pump(ctx);
    }

    /// De-duplicates one point against (and advances) the in-memory table. With `unknown`, a
    /// point whose metric is not known (or expired) is put there instead, for an `MGET`;
    /// without, it counts as having no last timestamp.
    fn dedup(
        &mut self,
        q: Queued,
        now: Instant,
        cycle: &mut Cycle,
        unknown: Option<&mut Vec<Queued>>,
    ) {
        if q.backfill || !self.settings.check_last_timestamp {
            cycle.accepted.push(q.point);
            return;
        }
        let ttl = self.ttl();
        let next = Last {
            ts: q.point.timestamp,
            value: q.point.value,
            at: now,
            dirty: true,
        };
        let index = cycle.accepted.len();
        match self.last.get_mut(&q.point.metric) {
            Some(e) if now.duration_since(e.at) < ttl => {
                if q.point.timestamp <= e.ts {
                    cycle.deduplicated += 1;
                    return;
                }
                cycle.undo.push((index, Some(*e)));
                if !e.dirty {
                    cycle.newly_dirty.push(index);
                }
                *e = next;
            }
            found => {
                if let Some(unknown) = unknown {
                    unknown.push(q);
                    return;
                }
                match found {
                    Some(e) => {
                        cycle.undo.push((index, Some(*e)));
                        if !e.dirty {
                            cycle.newly_dirty.push(index);
                        }
                        *e = next;
                    }
                    None => {
                        cycle.undo.push((index, None));
                        cycle.newly_dirty.push(index);
                        self.last.insert(q.point.metric.clone(), next);
                    }
                }
            }
        }
        cycle.accepted.push(q.point);
    }

    /// Queues a cycle's accepted points: pickle frames into the outbox, datapoints for the
    /// metric actors; then its new last timestamps become due for Redis — or, if the outbox
    /// refused some, the cycle's updates are undone.
    fn queue(&mut self, cycle: Cycle, ctx: &mut Context<Self>) {
        let Cycle {
            accepted,
            undo,
            newly_dirty,
            deduplicated,
        } = cycle;
        m::FLUX_DEDUPLICATED.add(deduplicated as u64);
        self.gauge.release(deduplicated);
        if accepted.is_empty() {
            return;
        }
        let mut all_queued = true;
        if self.settings.carbon_addr.is_some() {
            let mut frames = Vec::new();
            // Labelled (Prometheus) series are not Graphite names: never sent to carbon.
            if accepted
                .iter()
                .any(|p| super::prometheus::is_labelled(&p.metric))
            {
                let graphite: Vec<FluxPoint> = accepted
                    .iter()
                    .filter(|p| !super::prometheus::is_labelled(&p.metric))
                    .cloned()
                    .collect();
                encode_frames(&graphite, self.settings.chunk_points, &mut frames);
            } else {
                encode_frames(&accepted, self.settings.chunk_points, &mut frames);
            }
            let mut dropped = 0;
            let mut io_err = None;
            for f in frames {
                let points = f.points;
                match self.outbox.push(f) {
                    Ok(()) => {}
                    Err(Refused::Full) => dropped += points,
                    Err(Refused::Io(e)) => {
                        dropped += points;
                        io_err = Some(e);
                    }
                }
            }
            if dropped > 0 {
                all_queued = false;
                if due(&mut self.last_spool_log) {
                    let why = io_err.map_or_else(
                        || "the spool is at carbon_spool_max_bytes".to_string(),
                        |e| format!("cannot write the spool: {e}"),
                    );
                    error!(
                        "flux: dropped {dropped} datapoints for carbon at {}: memory holds {} and {why} ({})",
                        self.settings.carbon_addr.as_deref().unwrap_or(""),
                        self.outbox.mem_points(),
                        self.settings.spool_dir.display()
                    );
                }
            }
            self.send(ctx);
        }
        if all_queued {
            for i in newly_dirty {
                self.dirty.push(accepted[i].metric.clone());
            }
        } else {
            // Not (all) queued: forget this cycle's last timestamps, so a resend is accepted.
            for (i, previous) in undo.into_iter().rev() {
                let metric = &accepted[i].metric;
                match previous {
                    Some(prev) => {
                        if let Some(e) = self.last.get_mut(metric) {
                            *e = prev;
                        }
                    }
                    None => {
                        self.last.remove(metric);
                    }
                }
            }
        }
        if self.ingestor.is_some() {
            self.horizon_pending
                .extend(accepted.into_iter().map(|p| Datapoint {
                    metric: p.metric,
                    point: Point {
                        timestamp: Number::Float(p.timestamp as f64),
                        value: Number::Float(p.value),
                    },
                }));
            self.feed(ctx);
        } else {
            self.gauge.release(accepted.len());
        }
    }

    /// Hands everything pending to the metric actors, one `ingest` in flight (so each metric's
    /// points arrive in order); the queue gauge is released once they have it.
    fn feed(&mut self, ctx: &mut Context<Self>) {
        let Some(ingestor) = self.ingestor.clone() else {
            return;
        };
        if self.feeding.is_some() || self.horizon_pending.is_empty() {
            return;
        }
        let datapoints = std::mem::take(&mut self.horizon_pending);
        let points = datapoints.len();
        self.feeding = Some(points);
        let fut = async move { ingestor.ingest_history(datapoints).await.is_ok() };
        ctx.spawn(fut.into_actor(self).map(move |ok, act, ctx| {
            act.feeding = None;
            if ok {
                m::FLUX_SENT_TO_HORIZON.add(points as u64);
            } else {
                error!(
                    "flux: {points} datapoints could not be handed to the metric actors (stopped)"
                );
            }
            act.gauge.release(points);
            act.feed(ctx);
            act.check_drained();
        }));
    }

    /// Writes the dirty last timestamps to Redis, at most once per `last_flush_interval` (at
    /// once while draining), one `SET … EX` per metric in one pipeline.
    fn write_last(&mut self, ctx: &mut Context<Self>) {
        if self.writing_last.is_some()
            || self.dirty.is_empty()
            || (self.drain_waiters.is_empty()
                && self.last_written.elapsed() < self.settings.last_flush_interval)
        {
            return;
        }
        let names = std::mem::take(&mut self.dirty);
        let ttl = self.settings.last_ttl_secs;
        let mut pipe = redis::pipe();
        let mut written = Vec::with_capacity(names.len());
        for name in names {
            let Some(e) = self.last.get_mut(&name) else {
                continue;
            };
            if !e.dirty {
                continue;
            }
            e.dirty = false;
            pipe.cmd("SET")
                .arg(last_key(&name))
                .arg(last_value(e.ts, e.value))
                .arg("EX")
                .arg(ttl)
                .ignore();
            written.push(name);
        }
        if written.is_empty() {
            return;
        }
        self.writing_last = Some(written.len());
        let mut conn = self.redis.clone();
        let fut = async move { pipe.query_async::<()>(&mut conn).await };
        ctx.spawn(fut.into_actor(self).map(move |res, act, _ctx| {
            act.writing_last = None;
            act.last_written = Instant::now();
            if let Err(err) = res {
                m::FLUX_DEDUP_ERRORS.inc();
                if due(&mut act.last_dedup_log) {
                    error!(
                        "flux: cannot write flux.last.* of {} metrics to Redis at {}: {err}; retrying",
                        written.len(),
                        act.settings.redis_label
                    );
                }
                for name in written {
                    if let Some(e) = act.last.get_mut(&name) {
                        if !e.dirty {
                            e.dirty = true;
                            act.dirty.push(name);
                        }
                    }
                }
            }
            act.check_drained();
        }));
    }

    /// Writes the next frames to carbon unless a write is in flight or we are backing off.
    fn send(&mut self, ctx: &mut Context<Self>) {
        let Some(addr) = self.settings.carbon_addr.clone() else {
            return;
        };
        if self.sending.is_some() || Instant::now() < self.next_attempt {
            return;
        }
        let frames = match self.outbox.take(SEND_BYTES) {
            Ok(f) => f,
            Err(err) => {
                error!(
                    "flux: spool {} for carbon at {addr}: {err}",
                    self.settings.spool_dir.display()
                );
                Vec::new()
            }
        };
        if frames.is_empty() {
            self.check_drained();
            return;
        }
        let points: usize = frames.iter().map(|f| f.points).sum();
        self.sending = Some(points);
        let stream = self.stream.take();
        let fut = async move {
            let res = write_frames(stream, &addr, &frames).await;
            (res, frames, addr)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(res, frames, addr), act, ctx| {
                    act.sending = None;
                    match res {
                        Ok(s) => {
                            act.stream = Some(s);
                            m::FLUX_SENT_TO_CARBON.add(points as u64);
                            if act.failures > 0 {
                                info!("flux: carbon at {addr} is reachable again; sending held datapoints");
                            }
                            act.failures = 0;
                            act.last_carbon_log = None;
                            act.send(ctx);
                        }
                        Err(err) => {
                            act.outbox.put_back(frames);
                            act.failures += 1;
                            act.next_attempt = Instant::now() + act.backoff();
                            m::FLUX_CARBON_ERRORS.inc();
                            if due(&mut act.last_carbon_log) {
                                error!(
                                    "flux: cannot send to carbon at {addr}: {err}; holding {} datapoints in memory and {} bytes in the spool, retrying with back-off",
                                    act.outbox.mem_points(),
                                    act.outbox.spool_bytes()
                                );
                            }
                        }
                    }
                    act.check_drained();
                }),
        );
    }

    fn check_drained(&mut self) {
        if self.drain_waiters.is_empty() {
            return;
        }
        let carbon_done = self.settings.carbon_addr.is_none() || self.outbox.is_empty();
        if self.incoming.is_empty()
            && !self.busy
            && self.feeding.is_none()
            && self.horizon_pending.is_empty()
            && self.sending.is_none()
            && carbon_done
            && self.dirty.is_empty()
            && self.writing_last.is_none()
        {
            self.finish_drain();
        }
    }

    /// Spools whatever carbon did not get and answers the shutdown.
    fn finish_drain(&mut self) {
        if self.drain_waiters.is_empty() {
            return;
        }
        let mut lost = 0;
        let left: Vec<FluxPoint> = self.incoming.drain(..).map(|q| q.point).collect();
        if self.settings.carbon_addr.is_none() {
            // Everything still reserved never reached the metric actors.
            lost += self.gauge.queued();
        }
        self.gauge.release(left.len());
        if self.settings.carbon_addr.is_some() {
            let mut frames = Vec::new();
            encode_frames(&left, self.settings.chunk_points, &mut frames);
            for f in frames {
                let points = f.points;
                if self.outbox.push(f).is_err() {
                    lost += points;
                }
            }
            lost += self.outbox.spill_all();
            // A write in flight at the deadline may or may not have reached carbon.
            lost += self.sending.unwrap_or(0);
            // A cycle waiting for Redis at the deadline never reached the outbox.
            lost += self.cycle_points;
            let unfed = if self.ingestor.is_some() {
                self.gauge.queued().saturating_sub(self.cycle_points)
            } else {
                0
            };
            if unfed > 0 {
                warn!("flux: {unfed} datapoints went to carbon (or its spool) but not into our metric actors before shutdown");
            }
        }
        if !self.dirty.is_empty() {
            warn!(
                "flux: the last timestamps of {} metrics were not written to Redis; after a restart their next points may be forwarded twice",
                self.dirty.len()
            );
        }
        let report = DrainReport {
            lost,
            spooled_bytes: self.outbox.spool_bytes(),
        };
        if report.spooled_bytes > 0 {
            warn!(
                "flux: {} bytes of datapoints for carbon kept in the spool {} for the next start",
                report.spooled_bytes,
                self.settings.spool_dir.display()
            );
        }
        for w in self.drain_waiters.drain(..) {
            let _ = w.send(report);
        }
    }
}

impl Actor for Forwarder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(TICK, |act, ctx| {
            act.pump(ctx);
            act.send(ctx);
            act.write_last(ctx);
        });
    }
}

impl Handler<Enqueue> for Forwarder {
    type Result = ();

    fn handle(&mut self, msg: Enqueue, ctx: &mut Self::Context) {
        let backfill = msg.backfill;
        self.incoming.extend(
            msg.points
                .into_iter()
                .map(|point| Queued { point, backfill }),
        );
        self.pump(ctx);
    }
}

impl Handler<Drain> for Forwarder {
    type Result = ResponseFuture<DrainReport>;

    fn handle(&mut self, msg: Drain, ctx: &mut Self::Context) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        ctx.run_later(msg.timeout, |act, _| act.finish_drain());
        self.next_attempt = Instant::now();
        self.pump(ctx);
        self.send(ctx);
        self.write_last(ctx);
        self.check_drained();
        Box::pin(async move { rx.await.unwrap_or_default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_values_round_trip_and_read_skylines_formats() {
        assert_eq!(last_key("a.b"), "flux.last.a.b");
        assert_eq!(last_value(1_700_000_000, 1.0), "[1700000000, 1.0]");
        assert_eq!(last_value(1_700_000_000, -0.25), "[1700000000, -0.25]");
        assert_eq!(
            parse_last_timestamp(b"[1700000000, 1.0]"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_last_timestamp(b"{'timestamp': 1700000001, 'value': 2.5}"),
            Some(1_700_000_001)
        );
        assert_eq!(
            parse_last_timestamp(b"{\"timestamp\": 1700000002.0, \"value\": 2.5}"),
            Some(1_700_000_002)
        );
        assert_eq!(parse_last_timestamp(b"1700000003"), Some(1_700_000_003));
        assert_eq!(parse_last_timestamp(b"garbage"), None);
        assert_eq!(parse_last_timestamp(b"[None, None]"), None);
    }

    #[test]
    fn fast_hasher_spreads_metric_names() {
        let state = FastState::new();
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000 {
            seen.insert(state.hash_one(format!("stats.host-{}.cpu.{}", i % 97, i)) >> 44);
        }
        // 100k names into 2^20 buckets of the top bits: collisions stay near the random rate
        assert!(seen.len() > 90_000, "{}", seen.len());
        let mut map: HashMap<String, u32, FastState> = HashMap::with_hasher(state);
        map.insert("a.b".into(), 1);
        map.insert("a.bb".into(), 2);
        map.insert("a.b\0".into(), 3);
        assert_eq!((map["a.b"], map["a.bb"], map["a.b\0"]), (1, 2, 3));
    }

    #[test]
    fn gauge_is_all_or_nothing() {
        let g = QueueGauge::new(10);
        assert!(g.try_reserve(6));
        assert!(!g.try_reserve(5));
        assert_eq!(g.queued(), 6);
        assert!(g.try_reserve(4));
        g.release(10);
        assert_eq!(g.queued(), 0);
        assert!(!g.try_reserve(11));
    }
}
