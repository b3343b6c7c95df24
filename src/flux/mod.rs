//! Flux: HTTP metric submission (Skyline's flux), served on `[webapp] bind`.
//!
//! Routes ([`routes`]): `GET /flux/metric_data?metric=&timestamp=&value=&key=`,
//! `POST /flux/metric_data_post` (one metric, or `{"key", "metrics": [...]}`), and
//! `POST /flux/populate_metric` (backfill: `{"key", "metric", "datapoints": [[ts, value], …]}`),
//! and Prometheus remote_write on `POST /flux/prometheus/write` and `POST /api/v1/write`
//! ([`remote_write`], pure part in [`prometheus`]; labelled series named `name{a="1",…}`,
//! stored only by our metric actors, never sent to carbon).
//! Success is 204; every error is JSON `{"code", "message"}` ([`error`]): 400 naming each
//! problem (nothing of the request is queued), 401 for a wrong or missing key, 405, 413 for a
//! body over `max_body_bytes`, 503 + `Retry-After` when the queue is full. Keys come from
//! `[flux] api_keys` (plain, or `{ key, prefix }` to put everything that key sends under
//! `<prefix>.`), compared in constant time. Validation is pure ([`validate`]).
//!
//! Actor: [`Forwarder`] ([`forwarder`]), on its own arbiter: de-duplicates against Redis,
//! sends pickle frames to carbon (`carbon_pickle_addr`, one persistent connection, back-off,
//! bounded memory then disk spool in [`outbox`]) and, with `feed_horizon`, hands the datapoints
//! to our metric actors through `store::Ingestor` (the only thing flux imports from `store`).
//!
//! Redis keys: `flux.last.<metric>` (string, TTL `last_timestamp_ttl_secs`, Skyline's
//! Python-literal `[timestamp, value]`): the last forwarded timestamp of each metric; a point
//! not newer is acknowledged (204) and dropped. Written only after the point is queued for
//! carbon and handed to the metric actors, coalesced every `last_timestamp_flush_ms`; read
//! (one `MGET` per cycle) only for metrics the forwarder has not seen, and also understood in
//! Skyline's `{'timestamp': …}` form. Flux
//! writes no other key (Skyline's `flux.last.metric_data` hash, `flux.queue` and counters are
//! not used; counts are self-metrics instead).
//!
//! Backpressure, edge by edge:
//! - client → handler: body ≤ `max_body_bytes` (413); whole batch reserved in the
//!   [`QueueGauge`] or refused with 503 + `Retry-After` (`queue_max_points`).
//! - handler → forwarder: unbounded mailbox, bounded by the gauge (points, not messages).
//! - forwarder → Redis: at most one `MGET` per cycle of up to [`forwarder::CYCLE_POINTS`]
//!   (unknown metrics only) and one `SET` pipeline per `last_timestamp_flush_ms`; a failed
//!   read forwards without de-duplication, a failed write is retried (counted, logged).
//! - forwarder → metric actors: waits for mailbox space; no cycle while they are saturated,
//!   so the gauge fills and clients get 503.
//! - forwarder → carbon: never blocks; `carbon_max_pending_points` in memory, then the disk
//!   spool up to `carbon_spool_max_bytes` (sent after restarts too), then dropped and counted.

pub mod config;
pub mod error;
pub mod forwarder;
pub mod handlers;
pub mod outbox;
pub mod prometheus;
pub mod remote_write;
pub mod routes;
pub mod validate;

pub use error::FluxError;
pub use forwarder::{Drain, DrainReport, Enqueue, Forwarder, ForwarderSettings, QueueGauge};
pub use handlers::{BasicAuth, FluxState};
pub use routes::configure;
