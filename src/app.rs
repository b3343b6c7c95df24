//! The composition root: the only module that names concrete actor types, starts arbiters and
//! wires `Recipient`s together.
//!
//! Start order is reverse data flow (Redis, metric actors and Roomba, the flux forwarder,
//! listeners and the HTTP server), so every upstream actor is built with its downstream
//! already running. [`Running::shutdown`] stops in data-flow order: stop the HTTP server and
//! close the listeners (no new data), drain the flux forwarder (into carbon, its spool and the
//! metric actors), flush every metric actor into Redis, then stop the managed Redis and the
//! arbiters. Written once, here.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use log::{error, info, warn};
use thiserror::Error;

use crate::alert::{self, AlertAnomaly, Alerts, AlertsSetup, RetryPolicy, RuleSet, ShutdownAlerts};
use crate::analyze::{AnalysisWorker, Analyzer, RunnerSettings};
use crate::boundary::{Boundary, BoundarySetup, CycleSettings, RuleBook};
use crate::config::{parse_bind, Config};
use crate::flux::{Drain, FluxState, Forwarder, ForwarderSettings, QueueGauge};
use crate::listen::{Protocol, StopListening, TcpListener, TcpSettings, UdpListener};
use crate::panorama::{Flush as PanoramaFlush, Panorama, PanoramaSettings, RecordAnomaly};
use crate::store::cluster::Membership;
use crate::store::managed::ManagedRedis;
use crate::store::skip::SkipRules;
use crate::store::{redis_conn, Flush, Ingestor, MetricShard, Pressure, Roomba, ShardSettings};
use crate::telemetry::graphite::{SelfMetrics, SelfMetricsSettings};
use crate::telemetry::redact_url;
use crate::thunder::{Checks, Labels, Probes, ReceivedCounter, Thunder};

/// How long shutdown waits for the metric actors to write their buffers.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(6);

/// How long shutdown lets flux finish in-flight requests and send to carbon before spooling.
pub const FLUX_DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How long shutdown lets the alerters deliver what is queued before writing the rest to
/// `[data] dir/alerts-pending.jsonl` (sent at the next start).
pub const ALERT_DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Startup failures (each maps to a clear message and a non-zero exit).
#[derive(Debug, Error)]
pub enum AppError {
    /// A listen address could not be bound.
    #[error(transparent)]
    Listen(#[from] crate::listen::ListenError),
    /// Redis could not be set up.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The Panorama database URL is unusable (a down server is not an error: it is retried).
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    /// A file or directory problem.
    #[error("{0}")]
    Io(String),
}

/// The running daemon: its real addresses and what shutdown needs.
pub struct Running {
    /// Where the pickle listener listens (port 0 in the config → the real port).
    pub pickle_addr: Option<SocketAddr>,
    /// Where the UDP listener listens.
    pub udp_addr: Option<SocketAddr>,
    /// Where the plaintext listener listens.
    pub plaintext_addr: Option<SocketAddr>,
    /// Where the HTTP server (flux, webapp) listens (port 0 in the config → the real port).
    pub http_addr: Option<SocketAddr>,
    /// The Redis URL in use (the managed socket when managed; on a Redis Cluster, `[redis]
    /// url`, unused: see `redis`).
    pub redis_url: String,
    /// The Redis in use: one server (`redis_url`) or a Redis Cluster.
    pub redis: redis_conn::Target,
    /// Send side of the metric actors (flux and tests feed through it).
    pub ingestor: Ingestor,
    /// The alert actor's anomaly input (the Analyzer sends here; tests may too).
    pub alert_anomalies: Recipient<AlertAnomaly>,
    http: Option<ServerHandle>,
    forwarder: Option<Addr<Forwarder>>,
    tcp_listeners: Vec<Addr<TcpListener>>,
    udp_listeners: Vec<Addr<UdpListener>>,
    shards: Vec<Addr<MetricShard>>,
    arbiters: Vec<Arbiter>,
    managed: Option<ManagedRedis>,
    /// The Panorama database pool (the webapp searches through it).
    pub db: Option<crate::db::Pool>,
    /// The HTTP endpoints' monitor (with the HTTP server): its level cap
    /// ([`crate::webapp::Monitor::cap_levels`]).
    pub http_monitor: Option<web::Data<crate::webapp::Monitor>>,
    panorama: Option<Addr<Panorama>>,
    alerts: Addr<Alerts>,
    monitor_writer: Option<Addr<crate::monitor::MonitorWriter>>,
}

fn bind_tcp(spec: &str, what: &str) -> Result<Option<std::net::TcpListener>, AppError> {
    let Some(addr) = parse_bind(spec).map_err(AppError::Io)? else {
        return Ok(None);
    };
    std::net::TcpListener::bind(addr)
        .map(Some)
        .map_err(|source| {
            crate::listen::ListenError::Bind {
                addr: format!("{what} {addr}"),
                source,
            }
            .into()
        })
}

/// Starts everything the config asks for. Must be called inside a running actix `System`.
pub async fn start(config: &Config) -> Result<Running, AppError> {
    std::fs::create_dir_all(&config.data.dir).map_err(|err| {
        AppError::Io(format!(
            "cannot create data dir {}: {err}",
            config.data.dir.display()
        ))
    })?;

    // Bind first, so a taken port fails the start before anything else runs.
    let h = &config.horizon;
    let pickle_socket = bind_tcp(&h.pickle_bind, "[horizon] pickle_bind")?;
    let plaintext_socket = bind_tcp(&h.plaintext_bind, "[horizon] plaintext_bind")?;
    let udp_socket = match parse_bind(&h.udp_bind).map_err(AppError::Io)? {
        Some(addr) => Some(std::net::UdpSocket::bind(addr).map_err(|source| {
            crate::listen::ListenError::Bind {
                addr: format!("[horizon] udp_bind {addr}"),
                source,
            }
        })?),
        None => None,
    };
    let http_wanted = config.webapp.enabled || config.flux.enabled;
    let http_socket = if http_wanted {
        bind_tcp(&config.webapp.bind, "[webapp] bind")?
    } else {
        None
    };
    if config.flux.enabled && http_socket.is_none() {
        warn!("[flux] enabled but [webapp] bind is empty: flux is off");
    }
    // The webapp's password (generated and stored at first start) before anything runs.
    let web_password = if config.webapp.enabled && http_socket.is_some() {
        let (password, _) = crate::webapp::auth::resolve_password(&config.webapp, &config.data.dir)
            .map_err(|err| AppError::Io(format!("[webapp] password: {err}")))?;
        Some(password)
    } else {
        None
    };

    // Redis: the managed one, or exactly the configured one (never a silent fallback).
    let managed = if config.redis.managed {
        Some(ManagedRedis::start(&config.redis.redis_server, &config.data.dir).await?)
    } else {
        None
    };
    let redis_url = managed
        .as_ref()
        .map(|m| m.url().to_string())
        .unwrap_or_else(|| config.redis.url.clone());
    let redis_target = config.redis_target(&redis_url);
    info!("redis at {}", redis_target.label());
    let timeout = Duration::from_secs(config.redis.response_timeout_secs);

    // Metric actors, one per worker arbiter.
    let workers = config.horizon_workers();
    let per_shard_limit = h.max_buffered_points;
    let pressure = Pressure::new(per_shard_limit.saturating_mul(workers));
    let skip = Arc::new(SkipRules::new(&h.skip_list, &h.do_not_skip_list));
    let shard_settings = ShardSettings {
        max_resolution_secs: h.max_resolution_secs as i64,
        full_duration_secs: h.full_duration_secs as i64,
        flush_interval: Duration::from_millis(h.flush_interval_ms),
        flush_max_points: h.flush_max_points,
        max_buffered_points: per_shard_limit,
        wait_replicas: config.redis.wait_replicas,
        wait_timeout_ms: config.redis.wait_timeout_ms,
    };
    let mut arbiters = Vec::with_capacity(workers + 1);
    let mut shards = Vec::with_capacity(workers);
    for id in 0..workers {
        let arbiter = Arbiter::new();
        let conn = redis_conn::connect(&redis_target, timeout)?;
        let (s, sk, p) = (shard_settings.clone(), skip.clone(), pressure.clone());
        let addr = MetricShard::start_in_arbiter(&arbiter.handle(), move |_| {
            MetricShard::new(id, conn, s, sk, p)
        });
        shards.push(addr);
        arbiters.push(arbiter);
    }
    let ingestor = Ingestor::new(
        shards.iter().map(|a| a.clone().recipient()).collect(),
        pressure,
    );

    // Roomba on an arbiter of its own (CPU work).
    let roomba_arbiter = Arbiter::new();
    let roomba_conn = redis_conn::connect(&redis_target, timeout)?;
    let duration = h.full_duration_secs + h.roomba_grace_secs;
    let interval = Duration::from_secs(h.roomba_interval_secs);
    let node_id = redis_target.is_cluster().then(|| config.cluster_node_id());
    let roomba_node = node_id.clone();
    Roomba::start_in_arbiter(&roomba_arbiter.handle(), move |_| {
        let roomba = Roomba::new(roomba_conn, duration, interval);
        match roomba_node {
            Some(id) => roomba.with_cluster(id),
            None => roomba,
        }
    });
    arbiters.push(roomba_arbiter);
    // Cluster membership: this node's heartbeat key (docs/cluster.md).
    if let Some(id) = &node_id {
        let c = &config.cluster;
        info!("cluster: this node is {id}");
        let membership = Membership::new(
            redis_conn::connect(&redis_target, timeout)?,
            id.clone(),
            Duration::from_secs(c.heartbeat_secs),
            Duration::from_secs(c.node_ttl_secs),
        );
        membership.start();
    }

    // Flux's forwarder on an arbiter of its own (de-duplication, carbon, spool).
    let flux = if config.flux.enabled && http_socket.is_some() {
        let f = &config.flux;
        let queue = QueueGauge::new(f.queue_max_points);
        let settings = ForwarderSettings {
            carbon_addr: Some(f.carbon_pickle_addr.trim().to_string()).filter(|a| !a.is_empty()),
            check_last_timestamp: f.check_last_timestamp,
            last_ttl_secs: f.last_timestamp_ttl_secs,
            chunk_points: f.carbon_chunk_points,
            max_pending_points: f.carbon_max_pending_points,
            spool_dir: config.data.dir.join("flux-spool"),
            spool_max_bytes: f.carbon_spool_max_bytes,
            reconnect_max: Duration::from_secs(f.carbon_reconnect_max_secs),
            last_flush_interval: Duration::from_millis(f.last_timestamp_flush_ms),
            redis_label: redis_target.label(),
        };
        let fwd = Forwarder::new(
            settings,
            redis_conn::connect(&redis_target, timeout)?,
            f.feed_horizon.then(|| ingestor.clone()),
            queue.clone(),
        )
        .map_err(|err| {
            AppError::Io(format!(
                "flux spool {}: {err}",
                config.data.dir.join("flux-spool").display()
            ))
        })?;
        let arbiter = Arbiter::new();
        let addr = Forwarder::start_in_arbiter(&arbiter.handle(), move |_| fwd);
        arbiters.push(arbiter);
        if f.api_keys.is_empty() {
            warn!("flux: [flux] api_keys is empty; every flux request will be refused with 401");
        }
        // Without carbon, flux's points are only stored by the metric actors, which keep
        // them back to full_duration_secs: older ones are refused (400), not 204-and-dropped.
        let keep = (f.carbon_pickle_addr.trim().is_empty()).then_some(if f.feed_horizon {
            h.full_duration_secs as i64
        } else {
            0
        });
        let mut state = FluxState::new(f, queue, addr.clone().recipient())
            .stored_back_to(keep)
            .prometheus_stored_back_to(f.feed_horizon.then_some(h.full_duration_secs as i64));
        // remote_write also takes the webapp's login (Prometheus' basic_auth).
        if let Some(password) = &web_password {
            let creds = crate::webapp::Credentials::new(&config.webapp.auth_user, password);
            state =
                state.with_basic_auth(std::sync::Arc::new(move |h: Option<&[u8]>| creds.check(h)));
        }
        let state = web::Data::new(state);
        Some((addr, state))
    } else {
        None
    };

    // Panorama: a pool that connects lazily (a database that is down is retried by the actor,
    // with anomalies spooled meanwhile), pending migrations applied now when reachable.
    let (db, panorama) = if config.panorama.enabled {
        let url = config.panorama.effective_url(&config.data.dir);
        let op_timeout = Duration::from_secs(config.panorama.db_timeout_secs.max(1));
        let defaults = crate::db::PoolOptions::default();
        let opts = crate::db::PoolOptions {
            max_size: config.panorama.pool_size,
            op_timeout,
            connection_timeout: defaults.connection_timeout.min(op_timeout),
            ..defaults
        };
        let pool = crate::db::connect_lazy(&url, &opts)?;
        // Bounded: a database that hangs must not hold up the start (Panorama retries).
        let migrated = crate::db::Bounded::new(op_timeout).run(&pool, crate::db::migrate);
        match migrated {
            Ok(applied) if applied.is_empty() => {
                info!("panorama database {} is up to date", redact_url(&url))
            }
            Ok(applied) => info!(
                "panorama database {}: applied {}",
                redact_url(&url),
                applied.join(", ")
            ),
            Err(err) => error!(
                "panorama database {} not ready ({err}); anomalies are spooled until it is",
                redact_url(&url)
            ),
        }
        let mut ps = PanoramaSettings::new(config.data.dir.join("panorama-spool"));
        ps.expiry_secs = config.panorama.expiry_secs;
        ps.check_max_age_secs = config.panorama.check_max_age_secs;
        ps.training_keep_secs = config.ionosphere.keep_training_secs;
        (Some(pool.clone()), Some(Panorama::start(pool, ps)))
    } else {
        (None, None)
    };

    // Monitoring arbiter: the alert actor, Thunder and the self-metrics sender (async I/O
    // only, so a slow mail server or carbon never shares a thread with the analysis loop).
    let host = crate::telemetry::hostname(&config.graphite.host_name);
    let monitor = Arbiter::new();
    let alerts = start_alerts(config, &monitor, &redis_target, timeout, &host)?;
    if config.thunder.enabled {
        let flux_only = config.flux.enabled && !config.flux.feed_horizon;
        let ing = ingestor.clone();
        let received: ReceivedCounter = Box::new(move || {
            ing.accepted_total()
                + if flux_only {
                    crate::telemetry::metrics::FLUX_ACCEPTED.get()
                } else {
                    0
                }
        });
        let probes = Probes {
            received,
            redis: Some(redis_conn::connect(&redis_target, timeout)?),
            database: db.clone(),
        };
        let labels = Labels {
            redis: redis_target.label(),
            database: db
                .as_ref()
                .map(|p| p.target().to_string())
                .unwrap_or_default(),
        };
        let run_every = config
            .analyzer
            .enabled
            .then_some(config.analyzer.run_every_secs as f64);
        let checks = Checks::new(config.thunder.clone(), run_every, labels, 0.0);
        let interval = Duration::from_secs(config.thunder.check_interval_secs);
        let recovery = config.thunder.recovery_notices;
        let sinks = vec![alerts.clone().recipient()];
        let th_host = host.clone();
        Thunder::start_in_arbiter(&monitor.handle(), move |_| {
            Thunder::new(checks, probes, interval, recovery, sinks, th_host)
        });
    }
    let carbon = config.graphite.carbon_plaintext_addr.trim();
    if !carbon.is_empty() {
        let g = &config.graphite;
        let settings = SelfMetricsSettings {
            addr: carbon.to_string(),
            host: host.clone(),
            interval: Duration::from_secs(g.send_interval_secs),
            reconnect_max: Duration::from_secs(g.reconnect_max_secs),
            max_pending_lines: g.max_pending_lines,
        };
        SelfMetrics::start_in_arbiter(&monitor.handle(), move |_| SelfMetrics::new(settings));
    }
    arbiters.push(monitor);

    // Ionosphere: Panorama keeps each anomaly's series so it can be trained on, and the
    // anomalies of trained metrics go to the matcher first (it records and alerts the
    // unmatched ones; the senders' waterfall alerts what it does not decide in time). Started
    // before Mirage and the Analyzer, its two senders.
    let full_duration = i64::try_from(config.horizon.full_duration_secs).unwrap_or(86_400);
    let ionosphere = match (
        &panorama,
        &db,
        config.ionosphere.enabled && config.analyzer.enabled,
    ) {
        (Some(p), Some(pool), true) => {
            let io = &config.ionosphere;
            let shared = crate::ionosphere::messages::Shared::new();
            let matcher = crate::ionosphere::actor::Ionosphere::start(
                crate::ionosphere::actor::IonosphereSetup {
                    pool: pool.clone(),
                    settings: io.matching(),
                    learn: io.learn.clone(),
                    shared: shared.clone(),
                    record: vec![p.clone().recipient()],
                    alert: vec![alerts.clone().recipient()],
                },
            );
            let handoff = move || {
                crate::ionosphere::messages::IonosphereHandoff::new(
                    matcher.clone().recipient(),
                    shared.clone(),
                    io.waterfall_secs,
                    io.queue_max,
                    full_duration,
                )
            };
            Some((p.clone(), handoff))
        }
        _ => None,
    };

    // Mirage: its decider and the history keeper, each on an arbiter of its own.
    let mirage = start_mirage(
        config,
        &mut arbiters,
        &redis_target,
        timeout,
        &panorama,
        &alerts,
        ionosphere
            .as_ref()
            .map(|(p, h)| (p.clone().recipient(), h())),
    )?;

    // Analyzer: the run loop on this arbiter, the algorithms on a SyncArbiter pool.
    if config.analyzer.enabled {
        let settings = config.analyzer.algorithm_settings(h.full_duration_secs);
        let host = crate::telemetry::hostname(&config.graphite.host_name);
        let workers = config.analyzer.worker_count();
        // The stream detector's per-metric states, shared by the pool (docs/stream.md).
        let stream = config
            .analyzer
            .runs("stream")
            .then(|| crate::analyze::streaming::StreamRun {
                store: std::sync::Arc::new(crate::analyze::streaming::StreamStore::new(
                    crate::analyze::stream::StreamParams::default(),
                )),
                combine: crate::analyze::streaming::Combine::parse(&config.analyzer.combine)
                    .unwrap_or(crate::analyze::streaming::Combine::Stream),
                skyline: config.analyzer.runs("skyline"),
            });
        let nice = config.analyzer.worker_nice;
        let pool = SyncArbiter::start(workers, move || {
            let worker = AnalysisWorker::new(settings.clone(), host.clone()).with_nice(nice);
            match &stream {
                Some(run) => worker.with_stream(run.clone()),
                None => worker,
            }
        });
        let recipients: Vec<Recipient<RecordAnomaly>> =
            panorama.iter().map(|p| p.clone().recipient()).collect();
        let runner = RunnerSettings {
            run_every: Duration::from_secs(config.analyzer.run_every_secs),
            mget_chunk: config.analyzer.mget_chunk,
            workers,
            anomaly_dump: (!config.analyzer.anomaly_dump.is_empty())
                .then(|| config.analyzer.anomaly_dump.clone().into()),
        };
        let alert_recipients: Vec<Recipient<AlertAnomaly>> = vec![alerts.clone().recipient()];
        let analyzer = Analyzer::new(
            redis_conn::connect(&redis_target, timeout)?,
            pool,
            runner,
            recipients,
            alert_recipients,
        );
        let analyzer = match &ionosphere {
            Some((p, handoff)) => analyzer
                .with_training(vec![p.clone().recipient()], full_duration)
                .with_ionosphere(handoff()),
            None => analyzer,
        };
        let analyzer = match &node_id {
            Some(id) => analyzer.with_cluster(crate::store::cluster::ClusterRole {
                node_id: id.clone(),
                expiry_secs: config.panorama.expiry_secs,
            }),
            None => analyzer,
        };
        match mirage {
            Some(handoff) => analyzer.with_mirage(handoff).start(),
            None => analyzer.start(),
        };
    }

    // Boundary: operator rules on key metrics, its own timer on this arbiter.
    if config.boundary.enabled && !config.boundary.rules.is_empty() {
        let b = &config.boundary;
        let book = RuleBook::new(&b.rules, b.max_metrics_per_rule).map_err(AppError::Io)?;
        let setup = BoundarySetup {
            cycle: CycleSettings {
                book,
                gates: b.gates(),
                mget_chunk: b.mget_chunk,
                host: crate::telemetry::hostname(&config.graphite.host_name),
            },
            run_every: Duration::from_secs(b.run_every_secs),
            first_run_after: Duration::from_secs(b.run_every_secs.min(2)),
            enable_alerts: b.enable_alerts,
        };
        let recipients: Vec<Recipient<RecordAnomaly>> =
            panorama.iter().map(|p| p.clone().recipient()).collect();
        let conn = redis_conn::connect(&redis_target, timeout)?;
        let alert_to = vec![alerts.clone().recipient()];
        let boundary = Boundary::new(conn, setup, recipients, alert_to);
        match &node_id {
            Some(id) => boundary.with_cluster(crate::store::cluster::ClusterRole {
                node_id: id.clone(),
                expiry_secs: config.panorama.expiry_secs,
            }),
            None => boundary,
        }
        .start();
    }

    // Listeners; their connections run on the worker arbiters.
    let worker_handles: Vec<ArbiterHandle> =
        arbiters[..workers].iter().map(Arbiter::handle).collect();
    let io = |err: std::io::Error| AppError::Io(format!("listener socket: {err}"));
    let mut tcp_listeners = Vec::new();
    let mut pickle_addr = None;
    let mut plaintext_addr = None;
    for (socket, protocol) in [
        (pickle_socket, Protocol::Pickle),
        (plaintext_socket, Protocol::Plaintext),
    ] {
        let Some(socket) = socket else { continue };
        let settings = TcpSettings {
            protocol,
            max_frame_bytes: h.max_frame_bytes,
            max_connections: h.max_connections,
            idle_timeout: Duration::from_secs(h.idle_timeout_secs),
            frame_timeout: Duration::from_secs(h.frame_timeout_secs),
            max_future_secs: h.max_future_secs,
        };
        let listener = TcpListener::new(socket, settings, ingestor.clone(), worker_handles.clone())
            .map_err(io)?;
        let addr = listener_addr(&listener);
        match protocol {
            Protocol::Pickle => pickle_addr = Some(addr),
            Protocol::Plaintext => plaintext_addr = Some(addr),
        }
        tcp_listeners.push(listener.start());
    }
    let mut udp_listeners = Vec::new();
    let mut udp_addr = None;
    if let Some(socket) = udp_socket {
        udp_addr = Some(socket.local_addr().map_err(io)?);
        udp_listeners.push(
            UdpListener::new(socket, ingestor.clone(), h.max_future_secs)
                .map_err(io)?
                .start(),
        );
    }

    let (forwarder, flux_state) = match flux {
        Some((addr, state)) => (Some(addr), Some(state)),
        None => (None, None),
    };
    let webapp = match web_password {
        Some(password) => {
            let stats = panorama
                .as_ref()
                .map(|p| p.clone().recipient::<crate::panorama::GetStats>());
            Some(
                crate::webapp::Webapp::new(config, &password, &redis_target, db.clone(), stats)
                    .map_err(AppError::Io)?,
            )
        }
        None => None,
    };
    // The HTTP middleware's monitor. With the Panorama database, its records go to a batch
    // writer on its own arbiter: request records kept by the monitor (taken every
    // `flush_ms`), outliers through a bounded channel.
    let (monitor, monitor_writer) = match (&db, http_socket.is_some()) {
        (Some(pool), true) => {
            let (tx, rx) = crate::monitor::channel(config.monitor.queue_max);
            let monitor = web::Data::new(crate::webapp::Monitor::with_recorder(
                crate::webapp::monitor::Recorder::new(config.monitor.clone(), tx),
            ));
            let source: Arc<dyn crate::monitor::HitSource> = monitor.clone().into_inner();
            let (pool, settings) = (pool.clone(), config.monitor.clone());
            let limit = Duration::from_secs(config.panorama.db_timeout_secs.max(1));
            let arbiter = Arbiter::new();
            let addr =
                crate::monitor::MonitorWriter::start_in_arbiter(&arbiter.handle(), move |_| {
                    crate::monitor::MonitorWriter::new(rx, pool, &settings, limit)
                        .with_source(source)
                });
            arbiters.push(arbiter);
            (monitor, Some(addr))
        }
        _ => (web::Data::new(crate::webapp::Monitor::new()), None),
    };
    let (http, http_addr, http_monitor) = match http_socket {
        Some(socket) => {
            let (handle, addr, monitor) = start_http(config, socket, flux_state, webapp, monitor)?;
            (Some(handle), Some(addr), Some(monitor))
        }
        None => (None, None, None),
    };

    Ok(Running {
        pickle_addr,
        udp_addr,
        plaintext_addr,
        http_addr,
        http_monitor,
        redis_url,
        redis: redis_target,
        ingestor,
        alert_anomalies: alerts.clone().recipient(),
        alerts,
        http,
        forwarder,
        tcp_listeners,
        udp_listeners,
        shards,
        arbiters,
        managed,
        db,
        panorama,
        monitor_writer,
    })
}

/// Starts Mirage and its history keeper when `[mirage] enabled`, the Analyzer runs and some
/// smtp rule has `second_order_resolution_hours` > 24; returns the Analyzer's hand-off.
fn start_mirage(
    config: &Config,
    arbiters: &mut Vec<Arbiter>,
    redis: &redis_conn::Target,
    timeout: Duration,
    panorama: &Option<Addr<Panorama>>,
    alerts: &Addr<Alerts>,
    ionosphere: Option<(
        Recipient<crate::panorama::KeepTrainingData>,
        crate::ionosphere::messages::IonosphereHandoff,
    )>,
) -> Result<Option<crate::analyze::waterfall::MirageHandoff>, AppError> {
    let node_id = redis.is_cluster().then(|| config.cluster_node_id());
    let s = &config.mirage;
    let wanted = config
        .alerts
        .iter()
        .any(|r| r.alerter == "smtp" && r.second_order_resolution_hours.is_some_and(|h| h > 24));
    if !(s.enabled && config.analyzer.enabled && wanted) {
        return Ok(None);
    }
    let rules = Arc::new(
        RuleSet::new(&config.alerts).map_err(|e| AppError::Io(format!("[[alerts]] {e}")))?,
    );
    let hours: crate::mirage::MiragePredicate = Arc::new(move |m: &str| rules.mirage_hours(m));
    let (tx, rx) = crate::mirage::check_channel(s.queue_max);
    let setup = crate::mirage::MirageSetup {
        settings: s.clone(),
        graphite_url: Some(config.graphite.url.clone()).filter(|u| !u.trim().is_empty()),
        conn: redis_conn::connect(redis, timeout)?,
        checks: rx,
        record: panorama.iter().map(|p| p.clone().recipient()).collect(),
        alert: vec![alerts.clone().recipient()],
        training: ionosphere.iter().map(|(t, _)| t.clone()).collect(),
        ionosphere: ionosphere.map(|(_, h)| h),
        node: node_id.clone(),
    };
    let arbiter = Arbiter::new();
    crate::mirage::Mirage::start_in_arbiter(&arbiter.handle(), move |_| {
        crate::mirage::Mirage::new(setup)
    });
    arbiters.push(arbiter);
    if s.history_days > 0 {
        let ks = crate::mirage::KeeperSettings {
            resolution: s.history_resolution_secs as i64,
            keep_secs: (s.history_days * 86_400) as i64,
            interval: Duration::from_secs(s.history_interval_secs),
            is_mirage: hours.clone(),
        };
        let conn = redis_conn::connect(redis, timeout)?;
        let arbiter = Arbiter::new();
        crate::mirage::HistoryKeeper::start_in_arbiter(&arbiter.handle(), move |_| {
            let keeper = crate::mirage::HistoryKeeper::new(conn, ks);
            match node_id {
                Some(id) => keeper.with_cluster(id),
                None => keeper,
            }
        });
        arbiters.push(arbiter);
    }
    Ok(Some(crate::analyze::waterfall::MirageHandoff::new(
        tx,
        hours,
        s.waterfall_secs,
    )))
}

fn listener_addr(l: &TcpListener) -> SocketAddr {
    l.local_addr()
}

/// Starts the alert actor on `arbiter` with every configured alerter (none configured: it
/// still logs every anomaly).
fn start_alerts(
    config: &Config,
    arbiter: &Arbiter,
    redis: &redis_conn::Target,
    timeout: Duration,
    host: &str,
) -> Result<Addr<Alerts>, AppError> {
    let a = &config.alerters;
    let ctx = alert::Context {
        graphite_url: config.graphite.url.clone(),
        full_duration_secs: config.horizon.full_duration_secs as i64,
    };
    let rules =
        RuleSet::new(&config.alerts).map_err(|e| AppError::Io(format!("[[alerts]] {e}")))?;
    let channels = alert::build_channels(a, Some(redis_conn::connect(redis, timeout)?), &ctx, host)
        .map_err(|e| AppError::Io(format!("[alerters] {e}")))?;
    let thunder_alerters = if config.thunder.alerters.is_empty() {
        a.configured_names().into_iter().map(String::from).collect()
    } else {
        config.thunder.alerters.clone()
    };
    let setup = AlertsSetup {
        rules,
        enabled: a.enabled,
        queue_max: a.queue_max,
        policy: RetryPolicy::from_settings(a),
        syslog_all: a.syslog.as_ref().is_some_and(|s| s.all_anomalies),
        thunder_alerters,
        pending_file: Some(config.data.dir.join("alerts-pending.jsonl")),
    };
    let redis = redis_conn::connect(redis, timeout)?;
    Ok(Alerts::start_in_arbiter(&arbiter.handle(), move |_| {
        Alerts::new(setup, channels, Some(redis))
    }))
}

// ---------------------------------------------------------------------------------------------
// The HTTP server. Kept in one function so the webapp's routes are added beside flux's.
// ---------------------------------------------------------------------------------------------

/// Starts the actix-web server on `socket` (bound from `[webapp] bind` with the other sockets)
/// and returns its handle (stopped first by [`Running::shutdown`]) and real address.
///
/// Every route gets the security headers, is recorded by the endpoint monitor and is limited
/// to `[webapp] allowed_ips`. Mounts `flux::configure` when `flux` is given: flux routes
/// authenticate by API key and are deliberately outside the webapp's basic auth, which
/// `webapp::configure` puts on its own scope, registered after flux's.
pub fn start_http(
    config: &Config,
    socket: std::net::TcpListener,
    flux: Option<web::Data<FluxState>>,
    webapp: Option<crate::webapp::Webapp>,
    monitor: web::Data<crate::webapp::Monitor>,
) -> Result<(ServerHandle, SocketAddr, web::Data<crate::webapp::Monitor>), AppError> {
    use actix_web::middleware::from_fn;
    let io = |err: std::io::Error| AppError::Io(format!("[webapp] bind: {err}"));
    let addr = socket.local_addr().map_err(io)?;
    let allow = web::Data::new(crate::webapp::AllowList::new(&config.webapp.allowed_ips));
    let monitor_data = monitor.clone();
    let prometheus = config.flux.prometheus_enabled;
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .app_data(allow.clone())
            .app_data(monitor.clone())
            .wrap(from_fn(crate::webapp::security::allow_list))
            .wrap(from_fn(crate::webapp::monitor::record))
            .wrap(crate::webapp::security::headers())
            .wrap(from_fn(crate::webapp::security::head_as_get));
        if let Some(state) = &flux {
            app = app
                .app_data(state.clone())
                .configure(|cfg| crate::flux::routes::configure_with(cfg, prometheus));
        }
        if let Some(w) = &webapp {
            app = app.configure(|cfg| w.configure(cfg));
        }
        app
    })
    .disable_signals() // main.rs owns the signals and calls Running::shutdown
    .shutdown_timeout(FLUX_DRAIN_TIMEOUT.as_secs())
    .listen(socket)
    .map_err(io)?
    .run();
    let handle = server.handle();
    actix_rt::spawn(async move {
        if let Err(err) = server.await {
            error!("HTTP server on {addr} stopped: {err}");
        }
    });
    info!("HTTP server listening on {addr}");
    Ok((handle, addr, monitor_data))
}

impl Running {
    /// Writes the endpoint monitor's queued records now and answers when they are in the
    /// database: the number written (0 without a stored monitor), or why not.
    pub async fn flush_monitor(&self) -> Result<usize, String> {
        match &self.monitor_writer {
            Some(w) => w
                .send(crate::monitor::FlushMonitor)
                .await
                .map_err(|err| format!("the monitor writer is gone: {err}"))?,
            None => Ok(0),
        }
    }

    /// Stops in data-flow order; returns the number of datapoints that could not be written
    /// to Redis (0 unless Redis was unreachable for the whole flush timeout).
    pub async fn shutdown(self) -> usize {
        if let Some(http) = &self.http {
            info!("shutting down: stopping the HTTP server");
            http.stop(true).await;
        }
        if let Some(w) = &self.monitor_writer {
            // Endpoint monitor records still queued go to the database before we stop.
            match tokio::time::timeout(Duration::from_secs(3), w.send(crate::monitor::FlushMonitor))
                .await
            {
                Ok(Ok(Ok(_))) => {}
                Ok(Ok(Err(err))) => warn!("monitor: last records not written: {err}"),
                _ => warn!("monitor writer did not flush within 3 s"),
            }
        }
        info!("shutting down: closing listeners");
        for l in &self.tcp_listeners {
            let _ = l.send(StopListening).await;
        }
        for l in &self.udp_listeners {
            let _ = l.send(StopListening).await;
        }
        let mut flux_lost = 0;
        if let Some(f) = &self.forwarder {
            info!("draining flux");
            match f
                .send(Drain {
                    timeout: FLUX_DRAIN_TIMEOUT,
                })
                .await
            {
                Ok(report) => flux_lost = report.lost,
                Err(err) => warn!("flux forwarder gone before its drain: {err}"),
            }
            if flux_lost > 0 {
                error!("flux: {flux_lost} datapoints could be neither sent to carbon nor spooled");
            }
        }
        info!("flushing metric actors");
        let flushes = self.shards.iter().map(|s| s.send(Flush));
        let mut lost = 0;
        match tokio::time::timeout(FLUSH_TIMEOUT, futures_util::future::join_all(flushes)).await {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(report) => lost += report.remaining,
                        Err(err) => warn!("metric actor gone before flush: {err}"),
                    }
                }
            }
            Err(_) => {
                lost = self.ingestor.pressure().buffered();
            }
        }
        if lost > 0 {
            error!("{lost} datapoints could not be written to Redis before shutdown");
        } else {
            info!("all datapoints written to Redis");
        }
        if let Some(p) = &self.panorama {
            // Anomalies already queued are inserted, or spooled to disk, before we go.
            match tokio::time::timeout(Duration::from_secs(3), p.send(PanoramaFlush)).await {
                Ok(Ok(())) => info!("panorama flushed"),
                _ => warn!("panorama did not finish its queue within 3 s; its spool keeps what it accepted"),
            }
        }
        // Alerts still queued: delivered within the budget, the rest written to the pending
        // file and sent at the next start.
        match self
            .alerts
            .send(ShutdownAlerts {
                budget: ALERT_DRAIN_TIMEOUT,
            })
            .await
        {
            Ok(r) if r.lost > 0 => error!("{} alert(s) lost at shutdown", r.lost),
            Ok(_) => {}
            Err(err) => warn!("alert actor gone before its shutdown: {err}"),
        }
        for a in &self.arbiters {
            a.stop();
        }
        if let Some(m) = self.managed {
            info!("stopping managed redis-server");
            m.stop().await;
        }
        lost + flux_lost
    }
}
