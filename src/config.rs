//! Configuration: one TOML file, layered and validated before anything starts.
//!
//! Layers, lowest first: built-in defaults (the `Default` impls below, which are Skyline's
//! defaults unless a comment says otherwise), the file (`--config`, `SKYLINE_CONFIG`, or
//! `conf/skyline.toml`), then environment overrides `SKYLINE__SECTION__KEY=value` (the value is
//! parsed as a TOML value when it parses, e.g. `false`, `5`, `["a","b"]`, else taken as a string).
//!
//! Every section is `deny_unknown_fields`, so a typo fails at load. [`load`] reports every
//! problem at once (unknown keys, wrong types, bad addresses, address clashes) instead of
//! stopping at the first; `skyline check-config` prints them and exits 78 (`EX_CONFIG`).
//!
//! Each stage receives its own section by value; nothing below this module reads the file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use crate::alert::config::{AlertRule, AlertersSettings};
pub use crate::analyze::config::AnalyzerSettings;
pub use crate::boundary::config::{BoundaryRule, BoundarySettings};
pub use crate::flux::config::FluxSettings;
pub use crate::ionosphere::config::IonosphereSettings;
pub use crate::mirage::config::MirageSettings;
pub use crate::thunder::config::ThunderSettings;
pub use crate::webapp::config::WebappSettings;

/// The default config file, relative to the working directory.
pub const DEFAULT_CONFIG_PATH: &str = "conf/skyline.toml";

/// Exit code for configuration errors (sysexits `EX_CONFIG`).
pub const EX_CONFIG: i32 = 78;

/// `[redis]`: where Skyline's data lives.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// `redis://host:port/db`, `rediss://…`, or `unix:///path/redis.sock` (Skyline's
    /// `REDIS_SOCKET_PATH`; a password goes in the URL, `REDIS_PASSWORD`). Ignored when `managed`.
    pub url: String,
    /// Run a private `redis-server` (from `redis_server`) on a unix socket under `[data] dir`,
    /// with persistence, supervised and stopped on exit. `false`: use `url` and nothing else.
    pub managed: bool,
    /// The `redis-server` binary used when `managed` (looked up in `PATH`).
    pub redis_server: String,
    /// Response timeout for every Redis command. The redis crate's 500 ms default loses writes
    /// under a flood; Skyline's Python client waits indefinitely.
    pub response_timeout_secs: u64,
    /// Seed nodes of a Redis Cluster (`["redis://host:port", …]`). Non-empty = cluster mode:
    /// `url` is ignored, `managed` must be false, and the daemon joins the `[cluster]` of
    /// daemons sharing that Redis Cluster (docs/cluster.md). Empty (default): one Redis.
    pub cluster_urls: Vec<String>,
    /// After each metric actor flush, `WAIT <wait_replicas> <wait_timeout_ms>` (on a cluster:
    /// on every master): a flush counts as written only once that many replicas have it, else
    /// it is kept and retried. 0 (default): written when the master acknowledged it (Redis
    /// replication is asynchronous: a master that dies before replicating loses what it
    /// acknowledged; docs/cluster.md).
    pub wait_replicas: u32,
    /// How long `WAIT` waits for the replicas, milliseconds.
    pub wait_timeout_ms: u64,
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: "redis://127.0.0.1:6379/0".into(),
            managed: false,
            redis_server: "redis-server".into(),
            response_timeout_secs: 10,
            cluster_urls: Vec::new(),
            wait_replicas: 0,
            wait_timeout_ms: 1000,
        }
    }
}

/// `[cluster]`: this daemon's place among the daemons sharing one Redis Cluster (used only
/// when `[redis] cluster_urls` is set; docs/cluster.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    /// This node's id in `skyline.cluster.node.<id>`. Empty (default): the host name and the
    /// port of the first configured listener (`[webapp] bind`, else pickle, plaintext, UDP).
    pub node_id: String,
    /// How often the node renews its key.
    pub heartbeat_secs: u64,
    /// The key's TTL: a node silent this long is dead and its metrics move to the others.
    pub node_ttl_secs: u64,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            node_id: String::new(),
            heartbeat_secs: 5,
            node_ttl_secs: 15,
        }
    }
}

/// `[horizon]`: the listeners (Horizon listen), the metric actors (Horizon worker) and Roomba.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HorizonSettings {
    /// Graphite pickle protocol over TCP (`HORIZON_IP:PICKLE_PORT`). Empty = off.
    pub pickle_bind: String,
    /// Skyline's msgpack-over-UDP protocol (`HORIZON_IP:UDP_PORT`). Empty = off.
    pub udp_bind: String,
    /// Graphite plaintext protocol (`name value timestamp\n`, carbon's port 2003). Empty = off.
    pub plaintext_bind: String,
    /// How much history each metric keeps in Redis (`FULL_DURATION`).
    pub full_duration_secs: u64,
    /// Roomba keeps `full_duration_secs + roomba_grace_secs` (`ROOMBA_GRACE_TIME`).
    pub roomba_grace_secs: u64,
    /// How often Roomba trims every key (`ROOMBA_OPTIMUM_RUN_DURATION`).
    pub roomba_interval_secs: u64,
    /// Datapoints older than now minus this are dropped on arrival (`MAX_RESOLUTION`).
    pub max_resolution_secs: u64,
    /// Metrics matching an entry are not stored (`SKIP_LIST`; substring or dotted elements).
    pub skip_list: Vec<String>,
    /// Entries rescue metrics from `skip_list` (`DO_NOT_SKIP_LIST`).
    pub do_not_skip_list: Vec<String>,
    /// Largest pickle frame accepted; a bigger length header closes the connection
    /// (carbon's own receiver caps at 1 MiB; Skyline had no cap).
    pub max_frame_bytes: usize,
    /// Number of metric actors (shards); 0 = one per core (`WORKER_PROCESSES`).
    pub workers: usize,
    /// How often each metric actor writes its buffer to Redis.
    pub flush_interval_ms: u64,
    /// A metric actor flushes early once it holds this many datapoints.
    pub flush_max_points: usize,
    /// While Redis is unreachable each metric actor keeps up to this many datapoints, then
    /// drops the oldest (counted as `dropped_redis_unavailable`).
    pub max_buffered_points: usize,
    /// Concurrent TCP connections per listener. At the limit the connection idle the longest
    /// is closed to admit the new one; only when none is idle is the new one refused (counted).
    pub max_connections: usize,
    /// A TCP connection that sends no byte for this long (between frames or lines) is closed.
    pub idle_timeout_secs: u64,
    /// A pickle frame (or plaintext line) whose first byte has arrived must be complete
    /// within this long, or the connection is closed.
    pub frame_timeout_secs: u64,
    /// Datapoints stamped more than this far ahead of the clock are refused at every
    /// listener (counted as `dropped_future`).
    pub max_future_secs: u64,
}

impl Default for HorizonSettings {
    fn default() -> Self {
        HorizonSettings {
            pickle_bind: "127.0.0.1:2024".into(),
            udp_bind: "127.0.0.1:2025".into(),
            plaintext_bind: String::new(),
            full_duration_secs: 86_400,
            roomba_grace_secs: 600,
            roomba_interval_secs: 60,
            max_resolution_secs: 1000,
            skip_list: [
                "skyline.analyzer.",
                "skyline.boundary.",
                "skyline.ionosphere.",
                "skyline.mirage.",
            ]
            .map(String::from)
            .to_vec(),
            do_not_skip_list: [
                "skyline.analyzer.run_time",
                "skyline.boundary.run_time",
                "skyline.analyzer.ionosphere_metrics",
                "skyline.analyzer.mirage_metrics",
                "skyline.analyzer.total_analyzed",
                "skyline.analyzer.total_anomalies",
                "skyline.analyzer.anomalous",
                "skyline.analyzer.metrics_sparsity",
                "skyline.exceptions",
                "skyline.mirage.checks",
                "skyline.logged_errors",
                "skyline.mirage.run_time",
                "skyline.ionosphere.features_calculation_time",
                "skyline.analyzer.labelled_metrics.anomalous",
                "skyline.analyzer.labelled_metrics.checked",
                "skyline.horizon.prometheus.flux_received",
            ]
            .map(String::from)
            .to_vec(),
            max_frame_bytes: 1 << 20,
            workers: 0,
            flush_interval_ms: 200,
            flush_max_points: 20_000,
            max_buffered_points: 2_000_000,
            max_connections: 1024,
            idle_timeout_secs: 300,
            frame_timeout_secs: 60,
            max_future_secs: 300,
        }
    }
}

/// `[logging]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingSettings {
    /// Log file (appended; reopened on SIGHUP). Empty = stderr only. Relative paths are
    /// relative to the working directory.
    pub file: String,
    /// `error`, `warn`, `info`, `debug` or `trace`, or an env_logger filter such as
    /// `info,skyline::listen=debug`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LoggingSettings {
    fn default() -> Self {
        LoggingSettings {
            file: String::new(),
            level: "info".into(),
        }
    }
}

/// `[data]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DataSettings {
    /// Where the daemon keeps its files (managed Redis, SQLite, spools, generated password).
    pub dir: PathBuf,
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings { dir: "data".into() }
    }
}

/// `[panorama]`: anomaly persistence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PanoramaConfig {
    /// Record anomalies in SQL (`PANORAMA_ENABLED`).
    pub enabled: bool,
    /// `sqlite://PATH` (relative or `sqlite:///abs`), `mysql://…`, `postgres://…`.
    /// Empty = `sqlite://<[data] dir>/panorama.sqlite`.
    pub database_url: String,
    /// One anomaly per metric per app within this window (`PANORAMA_EXPIRY_TIME`).
    pub expiry_secs: i64,
    /// Anomalies older than this when they reach Panorama are discarded
    /// (`PANORAMA_CHECK_MAX_AGE`; 0 = keep all).
    pub check_max_age_secs: i64,
    /// Database connections in the pool.
    pub pool_size: u32,
    /// Longest wait, in seconds, for one database operation (connection checkout and
    /// statements) before Panorama spools the anomaly and the webapp answers 503, whatever
    /// the database does (a stopped or overloaded server). Also bounds each connection
    /// attempt (at most this, 5 s by default).
    pub db_timeout_secs: u64,
}

impl Default for PanoramaConfig {
    fn default() -> Self {
        PanoramaConfig {
            enabled: true,
            database_url: String::new(),
            expiry_secs: 900,
            check_max_age_secs: 300,
            pool_size: 4,
            db_timeout_secs: 10,
        }
    }
}

impl PanoramaConfig {
    /// The database URL with the default filled in from the data dir.
    pub fn effective_url(&self, data_dir: &Path) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", data_dir.join("panorama.sqlite").display())
        } else {
            self.database_url.clone()
        }
    }
}

/// `[graphite]`: the Graphite this Skyline sits beside.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GraphiteSettings {
    /// graphite-web's base URL for the render API, e.g. `http://127.0.0.1:8080`. Empty = none.
    pub url: String,
    /// carbon plaintext receiver for Skyline's own metrics (`host:port`). Empty = off.
    pub carbon_plaintext_addr: String,
    /// The `<host>` element of self-metric names (`SERVER_METRICS_NAME`). Empty = hostname.
    pub host_name: String,
    /// Seconds between two batches of self-metrics (Skyline sends once a minute).
    pub send_interval_secs: u64,
    /// Longest pause between reconnections to `carbon_plaintext_addr`.
    pub reconnect_max_secs: u64,
    /// Self-metric lines kept in memory while carbon is unreachable (oldest dropped first).
    pub max_pending_lines: usize,
}

impl Default for GraphiteSettings {
    fn default() -> Self {
        GraphiteSettings {
            url: String::new(),
            carbon_plaintext_addr: String::new(),
            host_name: String::new(),
            send_interval_secs: 60,
            reconnect_max_secs: 60,
            max_pending_lines: 100_000,
        }
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[redis]`
    pub redis: RedisSettings,
    /// `[cluster]`
    pub cluster: ClusterSettings,
    /// `[horizon]`
    pub horizon: HorizonSettings,
    /// `[logging]`
    pub logging: LoggingSettings,
    /// `[data]`
    pub data: DataSettings,
    /// `[analyzer]`
    pub analyzer: AnalyzerSettings,
    /// `[panorama]`
    pub panorama: PanoramaConfig,
    /// `[webapp]`
    pub webapp: WebappSettings,
    /// `[graphite]`
    pub graphite: GraphiteSettings,
    /// `[flux]`
    pub flux: FluxSettings,
    /// `[[alerts]]`: Skyline's `ALERTS` tuples, in order.
    pub alerts: Vec<AlertRule>,
    /// `[alerters]` and `[alerters.<name>]`.
    pub alerters: AlertersSettings,
    /// `[thunder]`
    pub thunder: ThunderSettings,
    /// `[boundary]` and `[[boundary.rules]]`
    pub boundary: BoundarySettings,
    /// `[mirage]`
    pub mirage: MirageSettings,
    /// `[ionosphere]`
    pub ionosphere: IonosphereSettings,
    /// `[monitor]` and `[[monitor.rules]]`: endpoint monitoring (docs/monitor.md).
    pub monitor: crate::monitor::MonitorSettings,
}

/// Everything wrong with a config, each problem on its own line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct ConfigError {
    /// One human-readable line per problem, prefixed with the section or key.
    pub problems: Vec<String>,
}

/// Where the config comes from: the explicit path, else `SKYLINE_CONFIG`, else the default
/// path when it exists, else built-in defaults only.
pub fn resolve_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    if let Ok(p) = std::env::var("SKYLINE_CONFIG") {
        if !p.is_empty() {
            return Some(PathBuf::from(p));
        }
    }
    let default = PathBuf::from(DEFAULT_CONFIG_PATH);
    default.exists().then_some(default)
}

/// Loads and validates the config from `path` (or defaults only) plus the process environment.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    let text = match path {
        Some(p) => std::fs::read_to_string(p).map_err(|err| ConfigError {
            problems: vec![format!("{}: cannot read: {err}", p.display())],
        })?,
        None => String::new(),
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    from_str_with_env(&text, &env)
}

/// Parses `text`, applies `SKYLINE__…` overrides from `env`, and validates.
pub fn from_str_with_env(text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
    let mut problems = Vec::new();
    let mut table: toml::Table = match text.parse() {
        Ok(t) => t,
        Err(err) => {
            return Err(ConfigError {
                problems: vec![format!("syntax: {err}")],
            })
        }
    };
    apply_env(&mut table, env, &mut problems);

    let mut config = Config::default();
    for (name, value) in table {
        let slot = format!("[{name}]");
        match name.as_str() {
            "redis" => section(value, &slot, &mut config.redis, &mut problems),
            "horizon" => section(value, &slot, &mut config.horizon, &mut problems),
            "cluster" => section(value, &slot, &mut config.cluster, &mut problems),
            "logging" => section(value, &slot, &mut config.logging, &mut problems),
            "data" => section(value, &slot, &mut config.data, &mut problems),
            "analyzer" => section(value, &slot, &mut config.analyzer, &mut problems),
            "panorama" => section(value, &slot, &mut config.panorama, &mut problems),
            "webapp" => section(value, &slot, &mut config.webapp, &mut problems),
            "graphite" => section(value, &slot, &mut config.graphite, &mut problems),
            "flux" => section(value, &slot, &mut config.flux, &mut problems),
            "thunder" => section(value, &slot, &mut config.thunder, &mut problems),
            "mirage" => section(value, &slot, &mut config.mirage, &mut problems),
            "ionosphere" => section(value, &slot, &mut config.ionosphere, &mut problems),
            "monitor" => section(value, &slot, &mut config.monitor, &mut problems),
            "alerters" => alerters_section(value, &mut config.alerters, &mut problems),
            "alerts" => alert_rules(value, &mut config.alerts, &mut problems),
            "boundary" => boundary_section(value, &mut config.boundary, &mut problems),
            other => problems.push(format!("[{other}]: unknown section")),
        }
    }
    config.validate(&mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError { problems })
    }
}

/// Deserializes one section. On failure each key is tried on its own, so every bad key of the
/// section is reported, not only the first one serde meets.
fn section<T: DeserializeOwned>(
    value: toml::Value,
    slot: &str,
    out: &mut T,
    problems: &mut Vec<String>,
) {
    let toml::Value::Table(table) = value else {
        problems.push(format!("{slot}: must be a table"));
        return;
    };
    match toml::Value::Table(table.clone()).try_into::<T>() {
        Ok(v) => *out = v,
        Err(whole) => {
            // Report each bad key, and keep the good ones so the semantic checks still run.
            let before = problems.len();
            let mut good = toml::Table::new();
            for (key, val) in table {
                let mut one = toml::Table::new();
                one.insert(key.clone(), val.clone());
                match toml::Value::Table(one).try_into::<T>() {
                    Ok(_) => {
                        good.insert(key, val);
                    }
                    Err(err) => problems.push(format!("{slot} {key}: {}", err.message().trim())),
                }
            }
            if problems.len() == before {
                problems.push(format!("{slot}: {}", whole.message().trim()));
            } else if let Ok(v) = toml::Value::Table(good).try_into::<T>() {
                *out = v;
            }
        }
    }
}

/// `[alerters]`: its own keys, then each `[alerters.<name>]` table reported under its own
/// name, every bad key at once.
fn alerters_section(value: toml::Value, out: &mut AlertersSettings, problems: &mut Vec<String>) {
    let toml::Value::Table(mut table) = value else {
        problems.push("[alerters]: must be a table".into());
        return;
    };
    let mut subs: Vec<(String, toml::Value)> = Vec::new();
    for name in crate::alert::config::ALERTER_NAMES {
        if let Some(v) = table.remove(name) {
            subs.push((name.to_string(), v));
        }
    }
    section(toml::Value::Table(table), "[alerters]", out, problems);
    for (name, v) in subs {
        let slot = format!("[alerters.{name}]");
        match name.as_str() {
            "smtp" => {
                let mut s = crate::alert::config::SmtpSettings::default();
                section(v, &slot, &mut s, problems);
                out.smtp = Some(s);
            }
            "slack" => {
                let mut s = crate::alert::config::SlackSettings::default();
                section(v, &slot, &mut s, problems);
                out.slack = Some(s);
            }
            "webhook" => {
                let mut s = crate::alert::config::WebhookSettings::default();
                section(v, &slot, &mut s, problems);
                out.webhook = Some(s);
            }
            "alertmanager" => {
                let mut s = crate::alert::config::AlertmanagerSettings::default();
                section(v, &slot, &mut s, problems);
                out.alertmanager = Some(s);
            }
            "pagerduty" => {
                let mut s = crate::alert::config::PagerdutySettings::default();
                section(v, &slot, &mut s, problems);
                out.pagerduty = Some(s);
            }
            _ => {
                let mut s = crate::alert::config::SyslogSettings::default();
                section(v, &slot, &mut s, problems);
                out.syslog = Some(s);
            }
        }
    }
}

/// `[[alerts]]`: an array of tables, each checked on its own.
fn alert_rules(value: toml::Value, out: &mut Vec<AlertRule>, problems: &mut Vec<String>) {
    let toml::Value::Array(items) = value else {
        problems.push("[[alerts]]: must be an array of tables ([[alerts]] entries)".into());
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        let slot = format!("[[alerts]] #{}", i + 1);
        let toml::Value::Table(t) = item else {
            problems.push(format!("{slot}: must be a table"));
            continue;
        };
        match toml::Value::Table(t.clone()).try_into::<AlertRule>() {
            Ok(rule) => out.push(rule),
            Err(err) => problems.push(format!("{slot}: {}", err.message().trim())),
        }
    }
}

/// `[boundary]`: its own keys, then each `[[boundary.rules]]` entry checked on its own.
fn boundary_section(value: toml::Value, out: &mut BoundarySettings, problems: &mut Vec<String>) {
    let toml::Value::Table(mut table) = value else {
        problems.push("[boundary]: must be a table".into());
        return;
    };
    let rules = table.remove("rules");
    section(toml::Value::Table(table), "[boundary]", out, problems);
    let Some(rules) = rules else { return };
    let toml::Value::Array(items) = rules else {
        problems.push("[[boundary.rules]]: must be an array of tables".into());
        return;
    };
    for (i, item) in items.into_iter().enumerate() {
        let slot = format!("[[boundary.rules]] #{}", i + 1);
        match item.try_into::<BoundaryRule>() {
            Ok(rule) => out.rules.push(BoundaryRule {
                position: i + 1,
                ..rule
            }),
            Err(err) => problems.push(format!("{slot}: {}", err.message().trim())),
        }
    }
}

/// `SKYLINE__HORIZON__PICKLE_BIND=127.0.0.1:0` sets `[horizon] pickle_bind`.
fn apply_env(table: &mut toml::Table, env: &[(String, String)], problems: &mut Vec<String>) {
    let overrides: BTreeMap<&str, &str> = env
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("SKYLINE__").map(|rest| (rest, v.as_str())))
        .collect();
    for (rest, raw) in overrides {
        let mut parts = rest.splitn(2, "__");
        let (Some(sec), Some(key)) = (parts.next(), parts.next()) else {
            problems.push(format!("SKYLINE__{rest}: expected SKYLINE__SECTION__KEY"));
            continue;
        };
        let (sec, key) = (sec.to_ascii_lowercase(), key.to_ascii_lowercase());
        let value = format!("v = {raw}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string()));
        let entry = table
            .entry(sec.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key, value);
            }
            _ => problems.push(format!("SKYLINE__{rest}: [{sec}] is not a table")),
        }
    }
}

/// Parses an optional listen address: empty means "off".
pub fn parse_bind(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.trim().is_empty() {
        return Ok(None);
    }
    s.trim()
        .parse::<SocketAddr>()
        .map(Some)
        .map_err(|err| format!("{s:?} is not an address (ip:port): {err}"))
}

impl Config {
    /// The Redis this daemon uses: the cluster when `[redis] cluster_urls` is set, else
    /// `single_url` (the managed socket or `[redis] url`).
    pub fn redis_target(&self, single_url: &str) -> crate::store::redis_conn::Target {
        if self.redis.cluster_urls.is_empty() {
            crate::store::redis_conn::Target::Single(single_url.to_string())
        } else {
            crate::store::redis_conn::Target::Cluster(self.redis.cluster_urls.clone())
        }
    }

    /// This node's cluster id: `[cluster] node_id`, else `<host>:<port of the first listener>`.
    pub fn cluster_node_id(&self) -> String {
        let id = self.cluster.node_id.trim();
        if !id.is_empty() {
            return id.to_string();
        }
        let host = crate::telemetry::hostname(&self.graphite.host_name);
        let h = &self.horizon;
        let port = [
            &self.webapp.bind,
            &h.pickle_bind,
            &h.plaintext_bind,
            &h.udp_bind,
        ]
        .iter()
        .find_map(|b| b.trim().rsplit_once(':').map(|(_, p)| p.to_string()))
        .unwrap_or_else(|| std::process::id().to_string());
        format!("{host}:{port}")
    }

    /// Collects every semantic problem into `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        let mut binds: Vec<(&str, SocketAddr)> = Vec::new();
        let h = &self.horizon;
        for (key, val) in [
            ("[horizon] pickle_bind", &h.pickle_bind),
            ("[horizon] udp_bind", &h.udp_bind),
            ("[horizon] plaintext_bind", &h.plaintext_bind),
            ("[webapp] bind", &self.webapp.bind),
        ] {
            match parse_bind(val) {
                Ok(Some(addr)) => binds.push((key, addr)),
                Ok(None) => {}
                Err(err) => problems.push(format!("{key}: {err}")),
            }
        }
        // Two TCP listeners on one address clash (UDP may share a port number with TCP).
        let tcp: Vec<_> = binds.iter().filter(|(k, _)| !k.contains("udp")).collect();
        for (i, (ka, a)) in tcp.iter().enumerate() {
            for (kb, b) in &tcp[i + 1..] {
                if a == b && a.port() != 0 {
                    problems.push(format!("{ka} and {kb}: both bind {a}"));
                }
            }
        }
        if h.full_duration_secs < 3600 {
            problems.push("[horizon] full_duration_secs: must be at least 3600".into());
        }
        if h.max_frame_bytes < 64 {
            problems.push("[horizon] max_frame_bytes: must be at least 64".into());
        }
        if h.idle_timeout_secs == 0 {
            problems.push("[horizon] idle_timeout_secs: must be positive".into());
        }
        if h.frame_timeout_secs == 0 {
            problems.push("[horizon] frame_timeout_secs: must be positive".into());
        }
        if h.flush_interval_ms == 0 {
            problems.push("[horizon] flush_interval_ms: must be positive".into());
        }
        if h.roomba_interval_secs == 0 {
            problems.push("[horizon] roomba_interval_secs: must be positive".into());
        }
        if h.max_buffered_points < h.flush_max_points {
            problems.push("[horizon] max_buffered_points: must be >= flush_max_points".into());
        }
        if !self.redis.cluster_urls.is_empty() {
            if self.redis.managed {
                problems.push(
                    "[redis] cluster_urls: a Redis Cluster cannot be managed; set managed = false"
                        .into(),
                );
            }
            for url in &self.redis.cluster_urls {
                if redis::Client::open(url.as_str()).is_err() || url.starts_with("unix:") {
                    problems.push(format!(
                        "[redis] cluster_urls: {:?} is not a redis://host:port URL",
                        crate::telemetry::redact_url(url)
                    ));
                }
            }
            let c = &self.cluster;
            if c.heartbeat_secs == 0 || c.node_ttl_secs <= c.heartbeat_secs {
                problems.push(
                    "[cluster] heartbeat_secs must be positive and below node_ttl_secs".into(),
                );
            }
            if c.node_id
                .chars()
                .any(|ch| ch.is_whitespace() || ch.is_control())
            {
                problems.push("[cluster] node_id: no spaces or control characters".into());
            }
        }
        if !self.redis.managed
            && self.redis.cluster_urls.is_empty()
            && redis::Client::open(self.redis.url.as_str()).is_err()
        {
            problems.push(format!(
                "[redis] url: {:?} is not a redis URL (redis://, rediss://, unix://)",
                crate::telemetry::redact_url(&self.redis.url)
            ));
        }
        if self.redis.response_timeout_secs == 0 {
            problems.push("[redis] response_timeout_secs: must be positive".into());
        }
        match self.logging.level.to_ascii_lowercase().as_str() {
            "error" | "warn" | "info" | "debug" | "trace" | "off" => {}
            other if other.contains('=') || other.contains(',') => {}
            other => problems.push(format!("[logging] level: {other:?} is not a log level")),
        }
        if self.panorama.expiry_secs < 0 || self.panorama.check_max_age_secs < 0 {
            problems.push("[panorama] expiry_secs/check_max_age_secs: must not be negative".into());
        }
        if self.panorama.pool_size == 0 {
            problems.push("[panorama] pool_size: must be positive".into());
        }
        let url = self.panorama.effective_url(&self.data.dir);
        if ![
            "sqlite://",
            "mysql://",
            "mariadb://",
            "postgres://",
            "postgresql://",
        ]
        .iter()
        .any(|p| url.starts_with(p))
        {
            problems.push(format!(
                "[panorama] database_url: {:?} must start with sqlite://, mysql://, postgres://",
                crate::telemetry::redact_url(&url)
            ));
        }
        let g = &self.graphite.url;
        if !(g.is_empty() || g.starts_with("http://") || g.starts_with("https://")) {
            problems.push("[graphite] url: must start with http:// or https://".into());
        }
        if !self.graphite.carbon_plaintext_addr.is_empty()
            && crate::alert::config::split_host_port(&self.graphite.carbon_plaintext_addr).is_none()
        {
            problems.push("[graphite] carbon_plaintext_addr: expected host:port".into());
        }
        if self.graphite.send_interval_secs == 0 || self.graphite.reconnect_max_secs == 0 {
            problems
                .push("[graphite] send_interval_secs/reconnect_max_secs: must be positive".into());
        }
        self.alerters.validate(problems);
        crate::alert::config::validate_rules(&self.alerts, &self.alerters, problems);
        self.thunder
            .validate(&self.alerters.configured_names(), problems);
        self.analyzer.validate(problems);
        self.boundary.validate(&self.alerters, problems);
        self.webapp.validate(problems);
        self.flux.validate(problems);
        self.mirage.validate(&self.alerts, problems);
        self.ionosphere.validate(problems);
        self.monitor.validate(problems);
    }

    /// Number of metric actors to run.
    pub fn horizon_workers(&self) -> usize {
        if self.horizon.workers == 0 {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        } else {
            self.horizon.workers
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_mode_needs_an_unmanaged_redis_and_sane_timings() {
        let cfg = from_str_with_env(
            "[redis]\ncluster_urls = [\"redis://10.0.0.1:7000\", \"redis://10.0.0.2:7000\"]\n\
             [cluster]\nnode_id = \"node-a\"\n",
            &[],
        )
        .unwrap();
        assert!(cfg.redis_target("redis://ignored").is_cluster());
        assert_eq!(cfg.cluster_node_id(), "node-a");
        assert!(!from_str_with_env("", &[])
            .unwrap()
            .redis_target("redis://x")
            .is_cluster());
        let err = from_str_with_env(
            "[redis]\nmanaged = true\ncluster_urls = [\"redis://10.0.0.1:7000\"]\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot be managed"), "{err}");
        let err = from_str_with_env(
            "[redis]\ncluster_urls = [\"redis://h:1\"]\n[cluster]\nheartbeat_secs = 20\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("below node_ttl_secs"), "{err}");
        // The default id: host name and the first listener's port.
        let mut c = Config::default();
        c.graphite.host_name = "box1".into();
        c.webapp.bind = "127.0.0.1:1500".into();
        assert_eq!(c.cluster_node_id(), "box1:1500");
    }

    #[test]
    fn defaults_validate() {
        let cfg = from_str_with_env("", &[]).unwrap();
        assert_eq!(cfg.horizon.pickle_bind, "127.0.0.1:2024");
        assert_eq!(cfg.horizon.max_frame_bytes, 1 << 20);
        assert_eq!(cfg.horizon.full_duration_secs, 86_400);
        assert_eq!(cfg.data.dir, PathBuf::from("data"));
    }

    #[test]
    fn shipped_config_loads() {
        let text = include_str!("../conf/skyline.toml");
        let cfg = from_str_with_env(text, &[]).unwrap();
        assert!(cfg.redis.managed, "the quick start runs a managed Redis");
    }

    #[test]
    fn env_overrides_file() {
        let env = vec![
            (
                "SKYLINE__HORIZON__PICKLE_BIND".to_string(),
                "127.0.0.1:0".to_string(),
            ),
            ("SKYLINE__REDIS__MANAGED".to_string(), "true".to_string()),
            (
                "SKYLINE__HORIZON__SKIP_LIST".to_string(),
                r#"["a.", "b"]"#.to_string(),
            ),
            (
                "SKYLINE__LOGGING__FILE".to_string(),
                "/tmp/x y.log".to_string(),
            ),
        ];
        let cfg = from_str_with_env("[horizon]\npickle_bind = \"127.0.0.1:9\"\n", &env).unwrap();
        assert_eq!(cfg.horizon.pickle_bind, "127.0.0.1:0");
        assert!(cfg.redis.managed);
        assert_eq!(
            cfg.horizon.skip_list,
            vec!["a.".to_string(), "b".to_string()]
        );
        assert_eq!(cfg.logging.file, "/tmp/x y.log");
    }

    #[test]
    fn every_problem_reported_at_once() {
        let text = r#"
[horizon]
pickle_bind = "nonsense"
max_frame_bytes = "big"
typo_key = 1
[webapp]
bind = "127.0.0.1:1500"
[nosuch]
x = 1
[logging]
level = "loud"
"#;
        let err = from_str_with_env(text, &[]).unwrap_err();
        let all = err.problems.join("\n");
        assert!(all.contains("[horizon]"), "{all}");
        assert!(all.contains("[nosuch]: unknown section"), "{all}");
        assert!(all.contains("[logging] level"), "{all}");
        assert!(err.problems.len() >= 3, "{all}");
    }

    const ISSUE_EXAMPLE: &str = r#"
[[alerts]]
pattern = "web.*.requests"     # glob on the metric name (regex allowed when it starts with ^)
alerter = "smtp"               # smtp | slack | webhook | syslog
expiration_secs = 3600

[alerters.smtp]
server = "127.0.0.1:25"
from = "skyline@example.org"
to = ["ops@example.org"]

[alerters.webhook]
url = "https://hooks.example.org/skyline"

[graphite]
carbon_plaintext_addr = "127.0.0.1:2003"   # where self-metrics go
"#;

    #[test]
    fn alert_config_loads() {
        let cfg = from_str_with_env(ISSUE_EXAMPLE, &[]).unwrap();
        assert_eq!(cfg.alerts.len(), 1);
        assert_eq!(cfg.alerts[0].pattern, "web.*.requests");
        assert_eq!(cfg.alerts[0].expiration_secs, 3600);
        let smtp = cfg.alerters.smtp.as_ref().unwrap();
        assert_eq!(smtp.server, "127.0.0.1:25");
        assert_eq!(smtp.to, vec!["ops@example.org".to_string()]);
        assert_eq!(
            cfg.alerters.webhook.as_ref().unwrap().url,
            "https://hooks.example.org/skyline"
        );
        assert!(cfg.alerters.slack.is_none() && cfg.alerters.syslog.is_none());
        assert_eq!(cfg.graphite.carbon_plaintext_addr, "127.0.0.1:2003");
        assert!(cfg.thunder.enabled);
    }

    #[test]
    fn alert_config_problems_all_reported() {
        let text = r#"
[[alerts]]
pattern = "^web("
alerter = "pager"
[[alerts]]
pattern = "db"
alerter = "slack"
typo = 1
[alerters]
queue_max = 0
[alerters.smtp]
server = "nohost"
form = "x"
[alerters.webhook]
url = "ftp://x"
headers = { "Bad Header" = "v" }
[alerters.syslog]
format = "json"
facility = "local9"
[thunder]
checks = ["no_data", "moon"]
alerters = ["slack"]
"#;
        let err = from_str_with_env(text, &[]).unwrap_err();
        let all = err.problems.join("\n");
        for needle in [
            "[[alerts]] #1 (\"^web(\") pattern",
            "alerter: \"pager\" must be one of",
            "[[alerts]] #2: unknown field `typo`",
            "[alerters] queue_max",
            "[alerters.smtp] form",
            "[alerters.smtp] server",
            "[alerters.smtp] from: must be set",
            "[alerters.webhook] url",
            "[alerters.webhook] headers",
            "[alerters.syslog] format",
            "[alerters.syslog] facility",
            "[thunder] checks",
            "[thunder] alerters",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
    }

    #[test]
    fn address_clash_detected() {
        let text =
            "[horizon]\npickle_bind = \"127.0.0.1:3000\"\nplaintext_bind = \"127.0.0.1:3000\"\n";
        let err = from_str_with_env(text, &[]).unwrap_err();
        assert!(
            err.problems.iter().any(|p| p.contains("both bind")),
            "{err}"
        );
    }
}
