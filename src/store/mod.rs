//! Store: Skyline's Horizon worker and Roomba over Skyline's Redis layout.
//!
//! Actors: [`MetricShard`] (the metric actors, one per core, each owning the metrics hashed to
//! it) and [`Roomba`] (trimming, on its own arbiter). Messages: [`Ingest`], [`Flush`], sent
//! through an [`Ingestor`].
//!
//! Redis keys written (see [`keys`]): `metrics.<name>` (concatenated msgpack `[ts, value]`
//! pairs, byte-identical to Skyline's Horizon), `metrics.unique_metrics` (set of full keys),
//! `horizon` (heartbeat, TTL 120 s). A Python Skyline analyzer or webapp pointed at the same
//! Redis reads this data unchanged.
//!
//! On a Redis Cluster (`[redis] cluster_urls`) the layout is the same (no key is renamed);
//! [`cluster`] adds the membership keys and the assignment of metrics to nodes.
//!
//! Backpressure: see [`messages`] — TCP senders wait, UDP and flux senders are told what was
//! dropped; while Redis is down the actors buffer up to `max_buffered_points` each and the
//! listeners stop reading.

pub mod cluster;
mod error;
pub mod keys;
pub mod managed;
mod messages;
mod metric;
pub mod redis_conn;
pub mod roomba;
pub mod skip;

pub use crate::model::msgpack as encoding;
pub use error::StoreError;
pub use messages::{Flush, FlushReport, Ingest, Ingestor, Pressure};
pub use metric::{MetricShard, ShardSettings};
pub use roomba::Roomba;
