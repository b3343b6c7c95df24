//! Webapp: the dashboard, Panorama search, JSON APIs, the Graphite render proxy, rebrow, the
//! docs, endpoint monitoring and the error log, served by the actix-web server that
//! `app::start_http` starts on `[webapp] bind` (beside flux).
//!
//! # Routes ([`routes`])
//!
//! | path | what | reads |
//! |---|---|---|
//! | `/health` | `{"status":"ok"}` or 503; **no auth** | Redis `PING` |
//! | `/`, `/now` | Now view: current anomalies, a graph of each metric's last `FULL_DURATION` | `analyzer.current_anomalies`, `analyzer.run_stats`; the graphs via `/api?metric=` |
//! | `/api/now` | the same as JSON (the Now page polls it) | same |
//! | `/api/cluster` | the daemons sharing the Redis Cluster (`webapp::cluster`) | `SMEMBERS skyline.cluster.nodes`, `MGET skyline.cluster.node.* skyline.cluster.run.*` |
//! | `/api?metric=NAME` | `{"results": [[ts, value], …]}` | `metrics.<NAME>` (NAME with or without `metrics.`) |
//! | `/api?graphite_metric=T&from_timestamp=&until_timestamp=` | the series from Graphite | `[graphite] url`/render |
//! | `/api/unique_metrics`, `/api?unique_metrics` | metric names | `metrics.unique_metrics` |
//! | `/api/anomalies` | Panorama search as JSON | `anomalies` + lookup tables (`db::queries`) |
//! | `/render` | Graphite render API passthrough (streamed) | `[graphite] url`/render |
//! | `/panorama` | Panorama search page | as `/api/anomalies`, plus `apps`, `sources`, `hosts`, `algorithms` |
//! | `/rebrow`, `/rebrow/key`, `/rebrow/key/delete` | Redis browser (`SCAN`, `INFO`, by type; delete only with `rebrow_writable`, POST + CSRF token; on a Redis Cluster `SCAN`, `INFO`, `DBSIZE` on every master in turn, the cursor `<master>-<cursor>`) | any key of the configured Redis (every master's, `CLUSTER NODES`) |
//! | `/docs`, `/docs/{page}` | README, webapp guide, architecture, configuration, rendered | compiled in |
//! | `/monitor` | hits, median/p99 latency per route, hits per hour, slow requests | [`monitor::Monitor`] |
//! | `/monitor/{view}`, `/api/monitor/{view}`, `/monitor/outlier/{id}` | the stored endpoint monitor's views ([`monitor_views`]) | `monitor_request_blocks`, `monitor_outliers` |
//! | `/monitor/export?since=` | records as JSON lines; **Bearer `[monitor] export_token`, no basic auth** | `monitor_request_blocks` |
//! | `/errors` | the last ERROR log lines, newest first | `telemetry::recent_errors` |
//! | `/metrics` | Prometheus text: every self-metric, HTTP counters, Panorama's stats, the current anomalies as the bounded `skyline_anomaly{metric,stage}` family | `telemetry::metrics`, `panorama::GetStats`, the three `*.current_anomalies` keys |
//! | `/events/get_data` | graphite-web's events API: Panorama anomalies as Grafana annotations ([`events`]) | `anomalies` + lookup tables |
//! | `/assets/*` | CSS, JS, icon | compiled in |
//!
//! Every route needs HTTP basic auth ([`auth`]) except `/health`, `/monitor/export` (bearer
//! token) and flux's `/flux/*` (API key). The optional guest user is read-only (403 on every
//! method but GET/HEAD/OPTIONS). Every route, flux included, is limited to `[webapp]
//! allowed_ips` and carries the security headers ([`security`]). Errors: [`error::WebError`].
//!
//! # Backpressure and blocking
//!
//! Handlers never block a worker thread: Redis is read through an async multiplexed
//! `RedisConn` (one per HTTP worker, so each worker's commands are pipelined on its
//! own connection), Panorama queries run inside `web::block` (one pooled connection each,
//! bounded by `[panorama] pool_size`; a pool checkout times out rather than queueing forever),
//! Graphite is fetched with `awc` (one client per worker, `[webapp] graphite_timeout_secs`).
//! `/api?metric=` and the Now page keep their last answer per key beside the Redis bytes it
//! was built from ([`api::SeriesCache`], [`dashboard::NowCache`], bounded): each request
//! still reads Redis, and re-encodes only when the bytes changed, so answers are never stale.
//! Nothing here writes Redis except a rebrow delete.

pub mod api;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod dashboard;
pub mod docs;
pub mod error;
pub mod events;
pub mod graphite;
pub mod ionosphere;
pub mod monitor;
pub mod monitor_views;
pub mod panorama;
pub mod rebrow;
pub mod routes;
pub mod security;
pub mod templates;
pub mod timed_redis;

use std::time::Duration;

use crate::store::redis_conn::RedisConn;
use actix::Recipient;
use actix_web::web;

pub use auth::Credentials;
pub use error::{PageError, WebError};
pub use monitor::Monitor;
pub use security::AllowList;

use crate::config::Config;
use crate::panorama::GetStats;

/// What every webapp handler shares (one per server, behind `web::Data`).
pub struct WebState {
    /// `[webapp]`.
    pub settings: config::WebappSettings,
    /// The compiled templates.
    pub templates: templates::Templates,
    /// The Panorama database, when Panorama is enabled.
    pub db: Option<crate::db::Pool>,
    /// Panorama's stats (for `/metrics`).
    pub panorama: Option<Recipient<GetStats>>,
    /// graphite-web's base URL (no trailing `/`), when configured.
    pub graphite_url: Option<String>,
    /// `[horizon] full_duration_secs`.
    pub full_duration_secs: u64,
    /// `[analyzer] run_every_secs` (0 when the analyzer is off).
    pub analyzer_every_secs: u64,
    /// The per-process token rebrow's delete form must carry.
    pub csrf_token: String,
    /// Last `/api?metric=` answers.
    pub series_cache: api::SeriesCache,
    /// Last Now page.
    pub now_cache: dashboard::NowCache,
    /// The Redis URL, password redacted (shown by rebrow).
    pub redis_label: String,
    /// The daemon runs on a Redis Cluster (`/api/cluster`, the Now page's Cluster section).
    pub cluster: bool,
    /// Ionosphere training is offered (`[ionosphere] enabled` and Panorama on).
    pub ionosphere: bool,
    /// The `[[alerts]]` rules: only metrics covered by an smtp rule can be trained.
    pub alert_rules: crate::alert::RuleSet,
    /// `[[ionosphere.learn]]`: the namespaces that learn.
    pub learn: Vec<crate::ionosphere::learn::LearnNamespace>,
}

impl WebState {
    /// Whether anomalies of `metric` get the "not anomalous — train" action: Ionosphere is on
    /// and an smtp `[[alerts]]` rule covers the metric (Skyline trains smtp-alerted metrics
    /// only).
    pub fn trainable(&self, metric: &str) -> bool {
        self.ionosphere
            && self.db.is_some()
            && self
                .alert_rules
                .matching(metric)
                .iter()
                .any(|(r, _)| r.alerter == "smtp")
    }
}

/// Per HTTP worker: its own Redis connection and Graphite client (awc is not `Send`).
pub struct Worker {
    /// Multiplexed, reconnecting Redis connection (one node or a cluster); every command
    /// counts as the request's Redis time for the endpoint monitor.
    pub redis: timed_redis::TimedRedis,
    /// HTTP client for Graphite.
    pub http: awc::Client,
}

/// Everything `app::start_http` needs to mount the webapp on each worker.
#[derive(Clone)]
pub struct Webapp {
    state: web::Data<WebState>,
    creds: web::Data<Credentials>,
    redis: RedisConn,
    redis_target: crate::store::redis_conn::Target,
    redis_timeout: Duration,
}

impl Webapp {
    /// Builds the shared state: compiles the templates, opens the Redis connection.
    /// `password` comes from [`auth::resolve_password`]; `db` and `panorama` are `None` when
    /// Panorama is disabled.
    pub fn new(
        config: &Config,
        password: &str,
        redis_target: impl Into<crate::store::redis_conn::Target>,
        db: Option<crate::db::Pool>,
        panorama: Option<Recipient<GetStats>>,
    ) -> Result<Self, String> {
        let templates = templates::Templates::new()?;
        let redis_timeout = Duration::from_secs(config.redis.response_timeout_secs);
        let redis_target: crate::store::redis_conn::Target = redis_target.into();
        let redis = crate::store::redis_conn::connect(&redis_target, redis_timeout)
            .map_err(|err| format!("webapp redis: {err}"))?;
        let graphite_url = Some(config.graphite.url.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty());
        let state = WebState {
            settings: config.webapp.clone(),
            templates,
            db,
            panorama,
            graphite_url,
            full_duration_secs: config.horizon.full_duration_secs,
            analyzer_every_secs: if config.analyzer.enabled {
                config.analyzer.run_every_secs
            } else {
                0
            },
            csrf_token: auth::random_token().map_err(|err| format!("[webapp] {err}"))?,
            series_cache: api::SeriesCache::new(api::SERIES_CACHE_BYTES),
            now_cache: dashboard::NowCache::default(),
            redis_label: redis_target.label(),
            cluster: redis_target.is_cluster(),
            ionosphere: config.ionosphere.enabled,
            alert_rules: crate::alert::RuleSet::new(&config.alerts).unwrap_or_default(),
            learn: config.ionosphere.learn.clone(),
        };
        Ok(Webapp {
            state: web::Data::new(state),
            creds: web::Data::new(
                Credentials::new(&config.webapp.auth_user, password)
                    .with_guest(&config.webapp.guest_user, &config.webapp.guest_password),
            ),
            redis,
            redis_target,
            redis_timeout,
        })
    }

    /// Registers the webapp's state and routes on one worker's app (call it inside the
    /// `HttpServer::new` factory, after flux's routes).
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        // A connection per worker; the shared one if that fails (it cannot: same URL).
        let redis = crate::store::redis_conn::connect(&self.redis_target, self.redis_timeout)
            .unwrap_or_else(|_| self.redis.clone());
        let timeout = Duration::from_secs(self.state.settings.graphite_timeout_secs);
        let http = awc::Client::builder()
            .timeout(timeout)
            .connector(awc::Connector::new().timeout(timeout))
            .finish();
        cfg.app_data(self.state.clone())
            .app_data(self.creds.clone())
            .app_data(web::Data::new(Worker {
                redis: timed_redis::TimedRedis(redis),
                http,
            }));
        routes::configure(cfg);
    }
}

/// Epoch seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
