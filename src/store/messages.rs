//! What other stages send to the metric actors, and the handle they send it through.
//!
//! Senders (listeners, flux) hold an [`Ingestor`], never an actor address: it shards
//! datapoints by metric name over the metric actors so each metric always lands on the same
//! actor (arrival order per metric is kept), and it carries the shared [`Pressure`] gauge.
//!
//! Backpressure: [`Ingestor::ingest`] waits for mailbox space (`send().await`), so a TCP
//! connection stops reading while the metric actors are full and carbon-relay queues on its
//! side; listeners also wait while [`Ingestor::saturated`] (Redis down and the buffers at
//! `max_buffered_points`). [`Ingestor::try_ingest`] never waits: a full mailbox drops the
//! points and says how many (UDP and flux use it and count or refuse).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;

use crate::model::Datapoint;

/// A batch of datapoints for one metric actor.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ingest {
    /// The datapoints, in arrival order.
    pub points: Vec<Datapoint>,
    /// `false` (listeners): points older than `max_resolution_secs` are dropped, as Skyline's
    /// Horizon does. `true` (flux, which has already answered 2xx for them): kept back to
    /// `full_duration_secs`, so an accepted point is stored, not dropped.
    pub history: bool,
}

/// Write everything buffered to Redis now; replies once the buffer is empty or the actor has
/// given up (Redis unreachable), saying how many datapoints are still held.
#[derive(Message)]
#[rtype(result = "FlushReport")]
pub struct Flush;

/// Reply to [`Flush`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Datapoints still buffered (not in Redis) when the actor replied.
    pub remaining: usize,
}

/// Datapoints held by all metric actors and not yet written, against a limit.
#[derive(Debug, Clone)]
pub struct Pressure {
    buffered: Arc<AtomicUsize>,
    limit: usize,
}

impl Pressure {
    /// A gauge with `limit` = `max_buffered_points` summed over the actors.
    pub fn new(limit: usize) -> Self {
        Pressure {
            buffered: Arc::new(AtomicUsize::new(0)),
            limit,
        }
    }

    /// Records `n` more buffered datapoints.
    pub fn add(&self, n: usize) {
        self.buffered.fetch_add(n, Ordering::Relaxed);
    }

    /// Records `n` datapoints written (or dropped).
    pub fn sub(&self, n: usize) {
        let _ = self
            .buffered
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Datapoints currently buffered.
    pub fn buffered(&self) -> usize {
        self.buffered.load(Ordering::Relaxed)
    }

    /// True when the buffers are at their limit (Redis is not keeping up or is down).
    pub fn saturated(&self) -> bool {
        self.buffered() >= self.limit
    }
}

/// The send side of the metric actors. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    shards: Arc<[Recipient<Ingest>]>,
    /// Keyed per process (DoS-resistant, unlike a fixed hash), fast on short names.
    hasher: ahash::RandomState,
    pressure: Pressure,
    accepted: Arc<AtomicU64>,
}

impl Ingestor {
    /// Wraps the metric actors' recipients (the order defines the sharding).
    pub fn new(shards: Vec<Recipient<Ingest>>, pressure: Pressure) -> Self {
        Ingestor {
            shards: shards.into(),
            hasher: Default::default(),
            pressure,
            accepted: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Datapoints this instance's metric actors have been handed so far (Thunder's "data
    /// received" signal; per instance, unlike the process-wide counters).
    pub fn accepted_total(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// The shared buffer gauge.
    pub fn pressure(&self) -> &Pressure {
        &self.pressure
    }

    /// True while the metric actors hold `max_buffered_points` (see [`Pressure`]).
    pub fn saturated(&self) -> bool {
        self.pressure.saturated()
    }

    fn shard_of(&self, metric: &str) -> usize {
        (self.hasher.hash_one(metric) % self.shards.len() as u64) as usize
    }

    fn split(&self, points: Vec<Datapoint>) -> Vec<(usize, Vec<Datapoint>)> {
        if self.shards.len() == 1 {
            return vec![(0, points)];
        }
        let n = self.shards.len();
        // Sized for an even spread plus a margin, so a frame's split rarely reallocates.
        let each = points.len() / n + points.len() / (4 * n) + 8;
        let mut parts: Vec<Vec<Datapoint>> = (0..n).map(|_| Vec::with_capacity(each)).collect();
        for p in points {
            let i = self.shard_of(&p.metric);
            parts[i].push(p);
        }
        parts
            .into_iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }

    /// Hands `points` to their metric actors, waiting for mailbox space.
    /// Fails only when the actors are gone (shutdown).
    pub async fn ingest(&self, points: Vec<Datapoint>) -> Result<(), super::StoreError> {
        self.send_all(points, false).await
    }

    /// As [`Ingestor::ingest`], for points a client was already told are stored (flux):
    /// kept back to `full_duration_secs` instead of `max_resolution_secs`.
    pub async fn ingest_history(&self, points: Vec<Datapoint>) -> Result<(), super::StoreError> {
        self.send_all(points, true).await
    }

    async fn send_all(
        &self,
        points: Vec<Datapoint>,
        history: bool,
    ) -> Result<(), super::StoreError> {
        if points.is_empty() || self.shards.is_empty() {
            return Ok(());
        }
        for (i, part) in self.split(points) {
            let n = part.len() as u64;
            self.shards[i]
                .send(Ingest {
                    points: part,
                    history,
                })
                .await
                .map_err(|_| super::StoreError::Unavailable("metric actor stopped"))?;
            self.accepted.fetch_add(n, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Hands `points` to their metric actors without waiting; returns how many were dropped
    /// because a mailbox was full or an actor was gone.
    pub fn try_ingest(&self, points: Vec<Datapoint>) -> usize {
        if self.shards.is_empty() {
            return points.len();
        }
        let mut dropped = 0;
        for (i, part) in self.split(points) {
            let n = part.len();
            let msg = Ingest {
                points: part,
                history: false,
            };
            if self.shards[i].try_send(msg).is_err() {
                dropped += n;
            } else {
                self.accepted.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        dropped
    }
}
