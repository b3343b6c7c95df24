//! Every self-metric, declared once.
//!
//! Counters are monotonic `AtomicU64`s (`_total`), gauges are last-value `AtomicI64`s. Each has
//! a Prometheus name (`skyline_<stage>_<noun>[_unit]_total`) and the Graphite name Skyline's
//! reference uses where one exists (`skyline.<app>.<host>.<name>`). Call sites only increment;
//! `/metrics` and the Graphite self-metrics sender read [`ALL_COUNTERS`] and [`ALL_GAUGES`].

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonic counter.
pub struct Counter {
    /// Prometheus name.
    pub name: &'static str,
    /// Graphite name below `skyline.`, `{host}` replaced by the host name.
    pub graphite: &'static str,
    /// One-line description.
    pub help: &'static str,
    value: AtomicU64,
}

impl Counter {
    const fn new(name: &'static str, graphite: &'static str, help: &'static str) -> Self {
        Counter {
            name,
            graphite,
            help,
            value: AtomicU64::new(0),
        }
    }

    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.value.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    /// Current value.
    pub fn get(&self) -> u64 {
        self.value.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
pub struct Gauge {
    /// Prometheus name.
    pub name: &'static str,
    /// Graphite name below `skyline.`.
    pub graphite: &'static str,
    /// One-line description.
    pub help: &'static str,
    value: AtomicI64,
}

impl Gauge {
    const fn new(name: &'static str, graphite: &'static str, help: &'static str) -> Self {
        Gauge {
            name,
            graphite,
            help,
            value: AtomicI64::new(0),
        }
    }

    /// Sets the value.
    pub fn set(&self, v: i64) {
        self.value.store(v, Ordering::Relaxed);
    }

    /// Adds `d` (may be negative).
    pub fn add(&self, d: i64) {
        self.value.fetch_add(d, Ordering::Relaxed);
    }

    /// Current value.
    pub fn get(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

macro_rules! counters {
    ($($id:ident = $name:literal, $graphite:literal, $help:literal;)*) => {
        $(
            #[doc = $help]
            pub static $id: Counter = Counter::new($name, $graphite, $help);
        )*
        /// Every counter, for exposition.
        pub static ALL_COUNTERS: &[&Counter] = &[$(&$id),*];
    };
}

macro_rules! gauges {
    ($($id:ident = $name:literal, $graphite:literal, $help:literal;)*) => {
        $(
            #[doc = $help]
            pub static $id: Gauge = Gauge::new($name, $graphite, $help);
        )*
        /// Every gauge, for exposition.
        pub static ALL_GAUGES: &[&Gauge] = &[$(&$id),*];
    };
}

counters! {
    DATAPOINTS_RECEIVED = "skyline_horizon_datapoints_received_total",
        "horizon.{host}.listen.datapoints_received", "Datapoints decoded by the listeners.";
    FRAMES_RECEIVED = "skyline_horizon_frames_received_total",
        "horizon.{host}.listen.frames_received", "Pickle frames, UDP datagrams and plaintext lines decoded.";
    CONNECTIONS_ACCEPTED = "skyline_horizon_connections_accepted_total",
        "horizon.{host}.listen.connections_accepted", "TCP connections accepted.";
    CONNECTIONS_REFUSED = "skyline_horizon_connections_refused_total",
        "horizon.{host}.listen.connections_refused", "TCP connections refused over max_connections.";
    DROPPED_DECODE = "skyline_horizon_dropped_decode_error_total",
        "horizon.{host}.listen.dropped.decode_error", "Frames, datagrams or lines refused by the decoder (incl. hostile pickles).";
    DROPPED_OVERSIZE = "skyline_horizon_dropped_oversize_frame_total",
        "horizon.{host}.listen.dropped.oversize_frame", "Connections closed on a frame length over max_frame_bytes.";
    DROPPED_BAD_NAME = "skyline_horizon_dropped_bad_name_total",
        "horizon.{host}.listen.dropped.bad_name", "Datapoints with an empty name or control characters.";
    DROPPED_NON_FINITE = "skyline_horizon_dropped_non_finite_total",
        "horizon.{host}.listen.dropped.non_finite", "Datapoints with a NaN or infinite value or timestamp.";
    DROPPED_BAD_SHAPE = "skyline_horizon_dropped_bad_shape_total",
        "horizon.{host}.listen.dropped.bad_shape", "Items that are not (name, (timestamp, value)) or hold out-of-range ints.";
    DROPPED_FUTURE = "skyline_horizon_dropped_future_total",
        "horizon.{host}.listen.dropped.future", "Datapoints stamped more than max_future_secs ahead of the clock.";
    CONNECTIONS_EVICTED = "skyline_horizon_connections_evicted_total",
        "horizon.{host}.listen.connections_evicted", "Idle TCP connections closed at max_connections to admit a new one.";
    CONNECTIONS_TIMED_OUT = "skyline_horizon_connections_timed_out_total",
        "horizon.{host}.listen.connections_timed_out", "TCP connections closed by idle_timeout_secs or frame_timeout_secs.";
    DROPPED_TOO_OLD = "skyline_horizon_dropped_too_old_total",
        "horizon.{host}.worker.dropped.too_old", "Datapoints older than max_resolution_secs (Skyline's MAX_RESOLUTION).";
    DROPPED_SKIPPED = "skyline_horizon_dropped_skip_list_total",
        "horizon.{host}.worker.dropped.skip_list", "Datapoints of metrics matching SKIP_LIST.";
    DROPPED_QUEUE_FULL = "skyline_horizon_dropped_queue_full_total",
        "horizon.{host}.listen.udp_chunks_dropped", "UDP datapoints dropped because the metric actors were full.";
    DROPPED_REDIS_UNAVAILABLE = "skyline_horizon_dropped_redis_unavailable_total",
        "horizon.{host}.worker.dropped.redis_unavailable", "Datapoints dropped after max_buffered_points while Redis was unreachable.";
    DATAPOINTS_WRITTEN = "skyline_horizon_datapoints_written_total",
        "horizon.{host}.worker.datapoints_sent_to_redis", "Datapoints APPENDed to Redis.";
    REDIS_WRITE_ERRORS = "skyline_horizon_redis_write_errors_total",
        "horizon.{host}.worker.redis_write_errors", "Failed Redis flushes (the batch is kept and retried).";
    REDIS_CLUSTER_RETRIES = "skyline_redis_cluster_retries_total",
        "horizon.{host}.redis.cluster_retries", "Redis Cluster commands resent after a redirection (MOVED/ASK/TRYAGAIN/CLUSTERDOWN), a lost connection or a timeout.";
    REDIS_CLUSTER_ERRORS = "skyline_redis_cluster_errors_total",
        "horizon.{host}.redis.cluster_errors", "Redis Cluster commands that failed after every retry.";
    REDIS_CLUSTER_RECONNECTS = "skyline_redis_cluster_reconnects_total",
        "horizon.{host}.redis.cluster_reconnects", "Redis Cluster client connections replaced because a command timed out.";
    REDIS_WAIT_SHORT = "skyline_horizon_redis_wait_short_total",
        "horizon.{host}.worker.redis_wait_short", "Flushes fewer replicas than [redis] wait_replicas acknowledged in time (kept and retried).";
    CLUSTER_HEARTBEAT_ERRORS = "skyline_cluster_heartbeat_errors_total",
        "horizon.{host}.cluster.heartbeat_errors", "Failed cluster heartbeats (retried at the next tick).";
    CLUSTER_CLAIMS_LOST = "skyline_cluster_anomaly_claims_lost_total",
        "analyzer.{host}.cluster.claims_lost", "Anomalies another node had already claimed (recorded and alerted there).";
    ROOMBA_TRIMMED = "skyline_roomba_keys_trimmed_total",
        "horizon.{host}.roomba.trimmed", "Keys rewritten by Roomba.";
    ROOMBA_EUTHANIZED = "skyline_roomba_keys_euthanized_total",
        "horizon.{host}.roomba.euthanized", "Keys deleted by Roomba (all data expired or undecodable).";
    ROOMBA_BLOCKED = "skyline_roomba_keys_blocked_total",
        "horizon.{host}.roomba.blocked", "Keys Roomba left for the next run because they changed underneath it.";
    ROOMBA_COMPACTED = "skyline_roomba_keys_compacted_total",
        "horizon.{host}.roomba.compacted", "Keys Roomba rewrote unchanged to shrink a wasteful Redis allocation.";
    ANALYZER_RUNS = "skyline_analyzer_runs_total",
        "analyzer.{host}.runs", "Analysis runs completed.";
    ANALYZER_OVERRUNS = "skyline_analyzer_overruns_total",
        "analyzer.{host}.overruns", "Runs that took longer than run_every_secs.";
    ANALYZER_ANALYSED = "skyline_analyzer_metrics_analysed_total",
        "analyzer.{host}.total_analyzed", "Metrics run through the algorithms.";
    ANALYZER_ANOMALIES = "skyline_analyzer_anomalies_total",
        "analyzer.{host}.total_anomalies", "Anomalies found.";
    ANALYZER_TOO_SHORT = "skyline_analyzer_exceptions_too_short_total",
        "analyzer.{host}.exceptions.TooShort", "Metrics skipped as TooShort.";
    ANALYZER_EMPTY = "skyline_analyzer_exceptions_empty_timeseries_total",
        "analyzer.{host}.exceptions.EmptyTimeseries", "Metrics skipped as EmptyTimeseries.";
    ANALYZER_STALE = "skyline_analyzer_exceptions_stale_total",
        "analyzer.{host}.exceptions.Stale", "Metrics skipped as Stale.";
    ANALYZER_BORING = "skyline_analyzer_exceptions_boring_total",
        "analyzer.{host}.exceptions.Boring", "Metrics skipped as Boring.";
    ANALYZER_OTHER = "skyline_analyzer_exceptions_other_total",
        "analyzer.{host}.exceptions.Other", "Metrics whose Redis value could not be decoded.";
    ANALYZER_ERRORS = "skyline_analyzer_errors_total",
        "analyzer.{host}.errors", "Analysis runs that failed on Redis errors.";
    ROOMBA_ERRORS = "skyline_roomba_errors_total",
        "horizon.{host}.roomba.errors", "Roomba runs that failed on Redis errors.";
    FLUX_ACCEPTED = "skyline_flux_datapoints_accepted_total",
        "flux.{host}.listen.added_to_queue", "Datapoints accepted over HTTP (answered 204) and queued.";
    FLUX_REJECTED_INVALID = "skyline_flux_requests_invalid_total",
        "flux.{host}.listen.discarded.invalid", "Flux requests refused with 400 (nothing of them queued).";
    FLUX_REJECTED_KEY = "skyline_flux_requests_invalid_key_total",
        "flux.{host}.listen.discarded.invalid_key", "Flux requests refused with 401 (wrong or missing key).";
    FLUX_REJECTED_TOO_LARGE = "skyline_flux_requests_too_large_total",
        "flux.{host}.listen.discarded.too_large", "Flux requests refused with 413 (body over max_body_bytes).";
    FLUX_REJECTED_QUEUE_FULL = "skyline_flux_requests_queue_full_total",
        "flux.{host}.listen.discarded.queue_full", "Flux requests refused with 503 (queue at queue_max_points).";
    FLUX_DEDUPLICATED = "skyline_flux_datapoints_deduplicated_total",
        "flux.{host}.worker.discarded.already_received", "Datapoints dropped because flux.last.<metric> was not older.";
    FLUX_DEDUP_ERRORS = "skyline_flux_dedup_errors_total",
        "flux.{host}.worker.dedup_errors", "Failed flux.last lookups or updates (points are forwarded anyway).";
    FLUX_SENT_TO_CARBON = "skyline_flux_datapoints_sent_to_carbon_total",
        "flux.{host}.worker.metrics_sent_to_graphite", "Datapoints written to carbon's pickle receiver.";
    FLUX_CARBON_ERRORS = "skyline_flux_carbon_errors_total",
        "flux.{host}.worker.carbon_errors", "Failed connections or writes to carbon (the points are kept and retried).";
    FLUX_SPOOLED = "skyline_flux_datapoints_spooled_total",
        "flux.{host}.worker.spooled", "Datapoints for carbon written to the disk spool (memory bound reached).";
    FLUX_DROPPED_SPOOL_FULL = "skyline_flux_datapoints_dropped_spool_full_total",
        "flux.{host}.worker.dropped.spool_full", "Datapoints for carbon dropped: memory and disk spool full, or spool unwritable.";
    FLUX_SENT_TO_HORIZON = "skyline_flux_datapoints_sent_to_horizon_total",
        "flux.{host}.worker.metrics_sent_to_horizon", "Datapoints handed to our own metric actors (feed_horizon).";
    HTTP_REQUESTS = "skyline_http_requests_total",
        "webapp.{host}.http.requests", "HTTP requests answered on [webapp] bind (webapp and flux).";
    PANORAMA_RECEIVED = "skyline_panorama_anomalies_received_total",
        "panorama.{host}.received", "Anomalies handed to Panorama.";
    PANORAMA_INSERTED = "skyline_panorama_anomalies_inserted_total",
        "panorama.{host}.inserted", "Anomalies inserted into the database (directly or from the spool).";
    PANORAMA_SPOOLED = "skyline_panorama_anomalies_spooled_total",
        "panorama.{host}.spooled", "Anomalies written to the spool while the database was unavailable.";
    PANORAMA_DEDUPLICATED = "skyline_panorama_anomalies_deduplicated_total",
        "panorama.{host}.dedup_skipped", "Anomalies dropped by the expiry window (one per metric per app per expiry_secs).";
    PANORAMA_TOO_OLD = "skyline_panorama_anomalies_too_old_total",
        "panorama.{host}.too_old", "Anomalies older than check_max_age_secs on arrival.";
    PANORAMA_INVALID = "skyline_panorama_anomalies_invalid_total",
        "panorama.{host}.invalid", "Anomalies dropped as unusable (empty name, non-finite value).";
    PANORAMA_INSERT_FAILURES = "skyline_panorama_insert_failures_total",
        "panorama.{host}.insert_failures", "Failed insert attempts (each failed batch once).";
    PANORAMA_REJECTED = "skyline_panorama_anomalies_rejected_total",
        "panorama.{host}.rejected", "Anomalies the database refused repeatedly, moved to rejected.jsonl.";
    PANORAMA_LOST = "skyline_panorama_anomalies_lost_total",
        "panorama.{host}.lost", "Anomalies that could be neither inserted nor spooled.";
    ALERTS_SENT = "skyline_alerts_sent_total",
        "analyzer.{host}.alerts.sent", "Alerts delivered (every alerter, Thunder's included).";
    ALERTS_FAILED = "skyline_alerts_failed_total",
        "analyzer.{host}.alerts.failed", "Alerts given up after max_attempts delivery attempts.";
    ALERTS_RETRIES = "skyline_alerts_retries_total",
        "analyzer.{host}.alerts.retries", "Failed delivery attempts that were retried.";
    ALERTS_DROPPED_QUEUE_FULL = "skyline_alerts_dropped_queue_full_total",
        "analyzer.{host}.alerts.dropped.queue_full", "Alerts dropped because their alerter's queue held queue_max.";
    ALERTS_SUPPRESSED = "skyline_alerts_suppressed_expiration_total",
        "analyzer.{host}.alerts.suppressed_expiration", "Alerts not sent because their last_alert key had not expired yet.";
    ALERTS_REDIS_ERRORS = "skyline_alerts_redis_errors_total",
        "analyzer.{host}.alerts.redis_errors", "Failed last_alert.* checks (decided from the in-memory record instead).";
    THUNDER_ALERTS = "skyline_thunder_alerts_total",
        "thunder.{host}.alerts", "Self-monitoring alerts raised (each repeat after its expiry too).";
    THUNDER_RECOVERIES = "skyline_thunder_recoveries_total",
        "thunder.{host}.recoveries", "Self-monitoring conditions that cleared after an alert.";
    SELFMETRICS_SENT = "skyline_selfmetrics_lines_sent_total",
        "selfmetrics.{host}.lines_sent", "Self-metric lines written to carbon.";
    SELFMETRICS_ERRORS = "skyline_selfmetrics_send_errors_total",
        "selfmetrics.{host}.send_errors", "Failed connections or writes to carbon_plaintext_addr (retried with back-off).";
    SELFMETRICS_DROPPED = "skyline_selfmetrics_lines_dropped_total",
        "selfmetrics.{host}.lines_dropped", "Self-metric lines dropped while carbon was unreachable (oldest first).";
    HTTP_CLIENT_ERRORS = "skyline_http_responses_client_error_total",
        "webapp.{host}.http.responses_4xx", "HTTP responses with a 4xx status.";
    HTTP_SERVER_ERRORS = "skyline_http_responses_server_error_total",
        "webapp.{host}.http.responses_5xx", "HTTP responses with a 5xx status.";
    HTTP_AUTH_FAILURES = "skyline_http_auth_failures_total",
        "webapp.{host}.http.auth_failures", "Webapp requests refused with 401 (no or wrong basic-auth credentials).";
    HTTP_FORBIDDEN_IP = "skyline_http_forbidden_ip_total",
        "webapp.{host}.http.forbidden_ip", "Requests refused with 403 because the client is not in [webapp] allowed_ips.";
    WEBAPP_GRAPHITE_REQUESTS = "skyline_webapp_graphite_requests_total",
        "webapp.{host}.graphite.requests", "Requests sent to Graphite's render API (/api?graphite_metric, /render).";
    WEBAPP_GRAPHITE_ERRORS = "skyline_webapp_graphite_errors_total",
        "webapp.{host}.graphite.errors", "Graphite requests that failed (down, timeout, unusable answer).";
    WEBAPP_REBROW_DELETES = "skyline_webapp_rebrow_keys_deleted_total",
        "webapp.{host}.rebrow.deleted", "Redis keys deleted through rebrow.";
    LOGGED_ERRORS_HORIZON = "skyline_horizon_logged_errors_total",
        "horizon.{host}.logged_errors", "ERROR log lines from the listeners, metric actors and Roomba.";
    LOGGED_ERRORS_ANALYZER = "skyline_analyzer_logged_errors_total",
        "analyzer.{host}.logged_errors", "ERROR log lines from the Analyzer and the alerters.";
    LOGGED_ERRORS_PANORAMA = "skyline_panorama_logged_errors_total",
        "panorama.{host}.logged_errors", "ERROR log lines from Panorama and its database.";
    LOGGED_ERRORS_FLUX = "skyline_flux_logged_errors_total",
        "flux.{host}.logged_errors", "ERROR log lines from flux.";
    LOGGED_ERRORS_WEBAPP = "skyline_webapp_logged_errors_total",
        "webapp.{host}.logged_errors", "ERROR log lines from the webapp.";
    LOGGED_ERRORS_OTHER = "skyline_thunder_logged_errors_total",
        "thunder.{host}.logged_errors", "ERROR log lines from Thunder, start-up and everything else.";
    BOUNDARY_RUNS = "skyline_boundary_runs_total",
        "boundary.{host}.runs", "Boundary runs completed.";
    BOUNDARY_CHECKS = "skyline_boundary_checks_total",
        "boundary.{host}.total_analyzed", "Boundary (metric, rule) checks run.";
    BOUNDARY_DETECTIONS = "skyline_boundary_detections_total",
        "boundary.{host}.detections", "Boundary checks that found the metric anomalous (before alert_threshold).";
    BOUNDARY_ANOMALIES = "skyline_boundary_anomalies_total",
        "boundary.{host}.total_anomalies", "Boundary detections that reached alert_threshold (recorded and alerted).";
    BOUNDARY_EXCEPTIONS = "skyline_boundary_exceptions_total",
        "boundary.{host}.exceptions", "Boundary checks stopped by TooShort, Stale, Boring, empty or undecodable series.";
    BOUNDARY_OVERRUNS = "skyline_boundary_overruns_total",
        "boundary.{host}.overruns", "Boundary ticks skipped because the previous run was still going.";
    BOUNDARY_ERRORS = "skyline_boundary_errors_total",
        "boundary.{host}.errors", "Boundary runs that failed on Redis errors.";
    // Mirage (H4)
    MIRAGE_CHECKS_SENT = "skyline_mirage_checks_sent_total",
        "analyzer.{host}.mirage.checks_sent", "Mirage checks the Analyzer handed to Mirage (instead of recording and alerting).";
    MIRAGE_QUEUE_FULL = "skyline_mirage_checks_queue_full_total",
        "analyzer.{host}.mirage.queue_full", "Mirage checks the Analyzer alerted itself because the hand-off queue was full.";
    MIRAGE_WATERFALL = "skyline_mirage_waterfall_alerts_total",
        "analyzer.{host}.mirage.waterfall_alerts", "Mirage checks not decided within waterfall_secs, alerted by the Analyzer.";
    MIRAGE_CHECKS_DONE = "skyline_mirage_checks_done_total",
        "mirage.{host}.checks.done", "Mirage checks analysed (Skyline's mirage.checks.done).";
    MIRAGE_ANOMALIES = "skyline_mirage_anomalies_total",
        "mirage.{host}.anomalies", "Mirage checks found anomalous over their days (recorded and alerted).";
    MIRAGE_CLEARED = "skyline_mirage_not_anomalous_total",
        "mirage.{host}.not_anomalous", "Mirage checks found not anomalous over their days (never alerted).";
    MIRAGE_UNDECIDED = "skyline_mirage_undecided_total",
        "mirage.{host}.undecided", "Mirage checks left to the waterfall (stale, no history, too short, no data source).";
    MIRAGE_GRAPHITE_ERRORS = "skyline_mirage_graphite_errors_total",
        "mirage.{host}.graphite_errors", "Failed graphite-web fetches (the built-in history is used, else the waterfall alerts).";
    MIRAGE_REDIS_ERRORS = "skyline_mirage_redis_errors_total",
        "mirage.{host}.redis_errors", "Mirage checks that met a Redis error (left to the waterfall).";
    MIRAGE_HISTORY_BUCKETS = "skyline_mirage_history_buckets_total",
        "mirage.{host}.history.buckets", "Buckets appended to mirage.history.* keys.";
    MIRAGE_HISTORY_ERRORS = "skyline_mirage_history_errors_total",
        "mirage.{host}.history.errors", "History keeper rounds that failed on Redis errors.";
    PANORAMA_TRAINING_KEPT = "skyline_panorama_training_series_kept_total",
        "panorama.{host}.training.kept", "Anomaly series kept for Ionosphere training.";
    PANORAMA_TRAINING_FAILED = "skyline_panorama_training_series_failed_total",
        "panorama.{host}.training.failed", "Anomaly series that could not be kept (database failure).";
    IONOSPHERE_TRAINED = "skyline_ionosphere_profiles_created_total",
        "ionosphere.{host}.profiles_created", "Features profiles created (trained or learnt).";
    IONOSPHERE_CHECKS = "skyline_ionosphere_checks_total",
        "ionosphere.{host}.checks", "Anomalies of Ionosphere-enabled metrics compared with their profiles.";
    IONOSPHERE_MATCHED = "skyline_ionosphere_matched_total",
        "ionosphere.{host}.not_anomalous", "Anomalies matched to a profile (not recorded, not alerted).";
    IONOSPHERE_NOT_MATCHED = "skyline_ionosphere_not_matched_total",
        "ionosphere.{host}.anomalous", "Anomalies no profile matched (recorded and alerted).";
    IONOSPHERE_ERRORS = "skyline_ionosphere_errors_total",
        "ionosphere.{host}.errors", "Checks that failed (database, features); each is recorded and alerted.";
    IONOSPHERE_WATERFALL = "skyline_ionosphere_waterfall_alerts_total",
        "ionosphere.{host}.waterfall", "Anomalies alerted because Ionosphere did not decide in time (or its queue was full).";
    FLUX_PROMETHEUS_SAMPLES = "skyline_flux_prometheus_samples_accepted_total",
        "flux.{host}.prometheus.samples_accepted", "Prometheus remote_write samples accepted (answered 204) and queued.";
    FLUX_PROMETHEUS_STALE_SKIPPED = "skyline_flux_prometheus_stale_samples_skipped_total",
        "flux.{host}.prometheus.stale_skipped", "remote_write samples skipped because Prometheus marked them stale.";
    FLUX_PROMETHEUS_NON_FINITE_SKIPPED = "skyline_flux_prometheus_non_finite_samples_skipped_total",
        "flux.{host}.prometheus.non_finite_skipped", "remote_write samples skipped for a NaN (not a staleness marker) or infinite value.";
    FLUX_PROMETHEUS_CARDINALITY_REFUSED = "skyline_flux_prometheus_cardinality_refused_total",
        "flux.{host}.prometheus.cardinality_refused", "remote_write requests refused because their new series would exceed prometheus_max_series.";
    ANOMALY_GAUGE_OMITTED = "skyline_anomaly_gauge_omitted_total",
        "webapp.{host}.anomaly_gauge.omitted", "Current anomalies left out of the skyline_anomaly family of a /metrics answer (over [webapp] anomaly_gauge_max), summed over answers.";
    MONITOR_RECORDED = "skyline_monitor_records_written_total",
        "webapp.{host}.monitor.written", "Endpoint monitor records written to the database.";
    MONITOR_OUTLIERS = "skyline_monitor_outliers_total",
        "webapp.{host}.monitor.outliers", "Requests recorded as outliers with their context.";
    MONITOR_OUTLIERS_CAPPED = "skyline_monitor_outliers_capped_total",
        "webapp.{host}.monitor.outliers_capped", "Slow requests not kept as outliers because their route already had [monitor] outliers_per_sec this second.";
    MONITOR_DROPPED = "skyline_monitor_dropped_total",
        "webapp.{host}.monitor.dropped", "Endpoint monitor records dropped: queue full, writer gone, or the database failing while the backlog was full.";
    MONITOR_WRITE_FAILURES = "skyline_monitor_write_failures_total",
        "webapp.{host}.monitor.write_failures", "Failed endpoint monitor batch writes (kept and retried).";
    MONITOR_PRUNED = "skyline_monitor_pruned_total",
        "webapp.{host}.monitor.pruned", "Endpoint monitor records and outliers older than keep_days deleted.";
    MONITOR_CORRUPT_BLOCKS = "skyline_monitor_corrupt_blocks_total",
        "webapp.{host}.monitor.corrupt_blocks", "Stored endpoint monitor blocks that could not be decoded when read (skipped; the rest of the read goes on).";
}

gauges! {
    BUFFERED_POINTS = "skyline_horizon_buffered_datapoints",
        "horizon.{host}.worker.queue_size", "Datapoints held by metric actors, not yet in Redis.";
    OPEN_CONNECTIONS = "skyline_horizon_open_connections",
        "horizon.{host}.listen.open_connections", "Open TCP connections on the listeners.";
    ANALYZER_RUN_TIME_MS = "skyline_analyzer_run_time_milliseconds",
        "analyzer.{host}.run_time", "Duration of the last analysis run.";
    ANALYZER_TOTAL_METRICS = "skyline_analyzer_total_metrics",
        "analyzer.{host}.total_metrics", "Metrics in the last analysis run.";
    UNIQUE_METRICS = "skyline_horizon_unique_metrics",
        "horizon.{host}.worker.metrics_received", "Members of metrics.unique_metrics at the last Roomba run.";
    FLUX_QUEUED = "skyline_flux_queued_datapoints",
        "flux.{host}.worker.httpMetricDataQueue.size", "Datapoints accepted over HTTP, not yet de-duplicated and handed on.";
    FLUX_CARBON_PENDING = "skyline_flux_carbon_pending_datapoints",
        "flux.{host}.worker.carbon_pending", "Datapoints held in memory for carbon, not yet written.";
    FLUX_SPOOL_BYTES = "skyline_flux_spool_bytes",
        "flux.{host}.worker.spool_bytes", "Bytes of pickle frames waiting in the disk spool for carbon.";
    PANORAMA_SPOOL_DEPTH = "skyline_panorama_spool_depth",
        "panorama.{host}.spool_depth", "Anomalies waiting in Panorama's spool for the database.";
    PANORAMA_DB_AVAILABLE = "skyline_panorama_database_available",
        "panorama.{host}.db_available", "1 when Panorama's last database operation succeeded, else 0.";
    ALERTS_QUEUED = "skyline_alerts_queued",
        "analyzer.{host}.alerts.queued", "Alerts waiting in the alerters' queues.";
    THUNDER_FAILING = "skyline_thunder_failing_checks",
        "thunder.{host}.failing_checks", "Self-monitoring checks currently failing.";
    SELFMETRICS_PENDING = "skyline_selfmetrics_pending_lines",
        "selfmetrics.{host}.pending_lines", "Self-metric lines waiting for carbon.";
    BOUNDARY_RUN_TIME_MS = "skyline_boundary_run_time_milliseconds",
        "boundary.{host}.run_time", "Duration of the last Boundary run.";
    STREAM_ABOVE_THRESHOLD = "skyline_analyzer_stream_above_threshold_metrics",
        "analyzer.{host}.stream.above_threshold", "Metrics whose last analysis run the stream detector scored at or above its threshold.";
    FLUX_PROMETHEUS_SERIES = "skyline_flux_prometheus_series",
        "flux.{host}.prometheus.series", "Distinct Prometheus series written within prometheus_series_idle_secs (bounded by prometheus_max_series).";
}

/// Renders every counter and gauge in the Prometheus text format.
pub fn render_prometheus() -> String {
    let mut out = String::new();
    for c in ALL_COUNTERS {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} counter\n{} {}",
            c.name,
            c.help,
            c.name,
            c.name,
            c.get()
        );
    }
    for g in ALL_GAUGES {
        let _ = writeln!(
            out,
            "# HELP {} {}\n# TYPE {} gauge\n{} {}",
            g.name,
            g.help,
            g.name,
            g.name,
            g.get()
        );
    }
    out
}

/// True when `name` is one of [`ALL_COUNTERS`] or [`ALL_GAUGES`] (so another exposition
/// appended to [`render_prometheus`] must not declare it again).
pub fn is_declared(name: &str) -> bool {
    ALL_COUNTERS.iter().any(|c| c.name == name) || ALL_GAUGES.iter().any(|g| g.name == name)
}

/// Checks a Prometheus text exposition the way a scraper would: every family has at most one
/// `# TYPE` and one `# HELP` line, its `# TYPE` comes before its samples, and every sample
/// belongs to a declared family and has a numeric value. Returns every problem, one sentence
/// each.
pub fn check_exposition(text: &str) -> Result<(), Vec<String>> {
    use std::collections::HashSet;
    let mut problems = Vec::new();
    let (mut typed, mut helped) = (HashSet::new(), HashSet::new());
    let mut sampled: HashSet<&str> = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !typed.insert(name) {
                problems.push(format!(
                    "line {n}: family {name} is declared a second time."
                ));
            }
            if sampled.contains(name) {
                problems.push(format!(
                    "line {n}: family {name} is declared after its samples."
                ));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("");
            if !helped.insert(name) {
                problems.push(format!("line {n}: family {name} has a second HELP line."));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let series = parts.next().unwrap_or("");
        let name = series.split('{').next().unwrap_or("");
        if !typed.contains(name) {
            problems.push(format!(
                "line {n}: sample {name} has no TYPE line before it."
            ));
        }
        sampled.insert(name);
        match parts.next() {
            Some(v) if v.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&v) => {}
            _ => problems.push(format!("line {n}: sample {name} has no numeric value.")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_checker_finds_a_family_declared_twice() {
        assert_eq!(check_exposition(&render_prometheus()), Ok(()));
        let twice = format!(
            "{}# HELP skyline_panorama_spool_depth x\n# TYPE skyline_panorama_spool_depth gauge\nskyline_panorama_spool_depth 1\n",
            render_prometheus()
        );
        let err = check_exposition(&twice).unwrap_err();
        assert!(
            err.iter()
                .any(|p| p.contains("skyline_panorama_spool_depth is declared a second time")),
            "{err:?}"
        );
        assert!(check_exposition("orphan_total 1\n").is_err());
        assert!(is_declared("skyline_panorama_spool_depth"));
        assert!(!is_declared("skyline_panorama_received_total"));
    }

    #[test]
    fn names_unique_and_prometheus_valid() {
        let mut names: Vec<&str> = ALL_COUNTERS.iter().map(|c| c.name).collect();
        names.extend(ALL_GAUGES.iter().map(|g| g.name));
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate metric names");
        for name in names {
            assert!(name.starts_with("skyline_"));
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
        for c in ALL_COUNTERS {
            assert!(c.name.ends_with("_total"), "{}", c.name);
        }
        assert!(render_prometheus()
            .contains("# TYPE skyline_horizon_datapoints_received_total counter"));
    }
}
