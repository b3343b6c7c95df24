//! Opening Redis connections the way every stage needs them, on one Redis or on a Redis
//! Cluster. [`RedisConn`] is the one connection type every stage uses (metric actors, Roomba,
//! the Analyzer, Boundary, Mirage, flux, alerts, Thunder, the webapp): it implements the redis
//! crate's async `ConnectionLike`, so every `cmd(..).query_async(&mut conn)` and
//! `pipe().query_async(&mut conn)` works unchanged on either.
//!
//! * One Redis ([`Target::Single`]): a lazily connecting, auto-reconnecting multiplexed
//!   `ConnectionManager` with a generous response timeout (the redis crate's 500 ms default
//!   loses writes under a flood). Byte-for-byte what the daemon always sent.
//! * Redis Cluster ([`Target::Cluster`], `[redis] cluster_urls`): the redis crate's async
//!   cluster client (slot map, MOVED/ASK redirections, reconnection and failover retried by the
//!   client). A single command is routed by the client (MGET/DEL/EXISTS are split per slot by
//!   it). A non-transactional pipeline is split here into one sub-pipeline per hash slot, sent
//!   concurrently, and the answers put back in the pipeline's order; a command of the pipeline
//!   without one key (PING, INFO, MGET…) is sent on its own. A command answered with MOVED,
//!   ASK, TRYAGAIN or CLUSTERDOWN inside a sub-pipeline (a slot migrating or a failover under
//!   way) was not executed, so it is sent again on its own, where the client follows the
//!   redirection. Every such retry and every failed cluster command is counted
//!   (`skyline_redis_cluster_retries_total`, `skyline_redis_cluster_errors_total`) and logged
//!   at most once a minute. A MULTI/EXEC pipeline is passed whole (its keys must share a slot).
//!
//! No actor; no keys; no backpressure of its own (callers bound what they send).

use std::collections::HashMap;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::{Arg, Cmd, Pipeline, RedisFuture, RedisResult, Value};

use super::StoreError;
use crate::telemetry::metrics as m;
use crate::telemetry::ratelimit::LogLimiter;

/// Where the daemon's Redis is: one server, or the seed nodes of a Redis Cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `redis://…`, `rediss://…` or `unix://…` (`[redis] url`, or the managed socket).
    Single(String),
    /// Seed nodes of a Redis Cluster (`[redis] cluster_urls`, non-empty).
    Cluster(Vec<String>),
}

impl Target {
    /// The target as an operator should read it (passwords redacted).
    pub fn label(&self) -> String {
        match self {
            Target::Single(url) => crate::telemetry::redact_url(url),
            Target::Cluster(urls) => format!(
                "cluster [{}]",
                urls.iter()
                    .map(|u| crate::telemetry::redact_url(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// True for a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Target::Cluster(_))
    }

    /// The single server's URL, or the first seed node's.
    pub fn first_url(&self) -> &str {
        match self {
            Target::Single(url) => url,
            Target::Cluster(urls) => urls.first().map(String::as_str).unwrap_or(""),
        }
    }
}

impl From<&str> for Target {
    fn from(url: &str) -> Self {
        Target::Single(url.to_string())
    }
}

impl From<&String> for Target {
    fn from(url: &String) -> Self {
        Target::Single(url.clone())
    }
}

impl From<String> for Target {
    fn from(url: String) -> Self {
        Target::Single(url)
    }
}

impl From<&Target> for Target {
    fn from(t: &Target) -> Self {
        t.clone()
    }
}

/// The one Redis connection type of the daemon (see the module docs). Cheap to clone: clones
/// share the underlying multiplexed connections.
#[derive(Clone)]
pub enum RedisConn {
    /// One Redis server.
    Single(ConnectionManager),
    /// A Redis Cluster.
    Cluster(ClusterConnection),
}

impl From<ConnectionManager> for RedisConn {
    fn from(c: ConnectionManager) -> Self {
        RedisConn::Single(c)
    }
}

impl RedisConn {
    /// True on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisConn::Cluster(_))
    }
}

/// Creates a connection for `target` (a URL or a [`Target`]). It connects on first use and
/// reconnects with back-off by itself, so this succeeds even while Redis is down; commands
/// fail (and are retried by their callers) until it is back.
pub fn connect(
    target: impl Into<Target>,
    response_timeout: Duration,
) -> Result<RedisConn, StoreError> {
    match target.into() {
        Target::Single(url) => {
            let client = redis::Client::open(url.as_str())?;
            let cfg = ConnectionManagerConfig::new()
                .set_response_timeout(Some(response_timeout))
                .set_connection_timeout(Some(Duration::from_secs(2)))
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_secs(2));
            Ok(RedisConn::Single(ConnectionManager::new_lazy_with_config(
                client, cfg,
            )?))
        }
        Target::Cluster(urls) => {
            let client = redis::cluster::ClusterClientBuilder::new(urls)
                .connection_timeout(Duration::from_secs(2))
                .response_timeout(response_timeout)
                .retries(6)
                .max_retry_wait(2_000)
                .build()?;
            let cfg = redis::cluster::ClusterConfig::new()
                .set_connection_timeout(Duration::from_secs(2))
                .set_response_timeout(response_timeout);
            Ok(RedisConn::Cluster(
                client.get_pending_async_connection_with_config(cfg),
            ))
        }
    }
}

static CLUSTER_ERRORS_LOG: LogLimiter = LogLimiter::new();
static CLUSTER_RETRIES_LOG: LogLimiter = LogLimiter::new();

fn counted<T>(r: RedisResult<T>) -> RedisResult<T> {
    if let Err(err) = &r {
        m::REDIS_CLUSTER_ERRORS.inc();
        CLUSTER_ERRORS_LOG.warn(format_args!(
            "redis cluster: a command failed after the client's retries: {}",
            describe(err)
        ));
    }
    r
}

/// Commands whose only key is their first argument (the ones the daemon pipelines, and the
/// common single-key ones). Anything else in a pipeline is sent on its own.
fn single_key_command(name: &[u8]) -> bool {
    const ONE_KEY: &[&[u8]] = &[
        b"GET",
        b"SET",
        b"SETEX",
        b"PSETEX",
        b"SETNX",
        b"GETDEL",
        b"GETEX",
        b"APPEND",
        b"GETRANGE",
        b"SETRANGE",
        b"STRLEN",
        b"INCR",
        b"INCRBY",
        b"DECR",
        b"DECRBY",
        b"EXPIRE",
        b"PEXPIRE",
        b"EXPIREAT",
        b"PERSIST",
        b"TTL",
        b"PTTL",
        b"TYPE",
        b"SADD",
        b"SREM",
        b"SISMEMBER",
        b"SMISMEMBER",
        b"SMEMBERS",
        b"SCARD",
        b"SSCAN",
        b"HSET",
        b"HGET",
        b"HDEL",
        b"HLEN",
        b"HSCAN",
        b"HGETALL",
        b"HMGET",
        b"HINCRBY",
        b"LPUSH",
        b"RPUSH",
        b"LRANGE",
        b"LLEN",
        b"LTRIM",
        b"ZADD",
        b"ZRANGE",
        b"ZCARD",
        b"ZREM",
        b"ZREMRANGEBYSCORE",
        b"XADD",
        b"XLEN",
        b"XREVRANGE",
    ];
    ONE_KEY.iter().any(|c| c.eq_ignore_ascii_case(name))
}

fn simple_arg(cmd: &Cmd, idx: usize) -> Option<&[u8]> {
    match cmd.args_iter().nth(idx)? {
        Arg::Simple(d) => Some(d),
        _ => None,
    }
}

/// The hash slot a pipelined command must go to, when it has exactly one known key.
fn route_of(cmd: &Cmd) -> Option<Route> {
    let name = simple_arg(cmd, 0)?;
    let key = if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL") {
        // EVALSHA sha numkeys key…: all keys must share a slot (the server checks).
        let n: u64 = std::str::from_utf8(simple_arg(cmd, 2)?)
            .ok()?
            .parse()
            .ok()?;
        if n == 0 {
            return None;
        }
        simple_arg(cmd, 3)?
    } else if single_key_command(name) {
        simple_arg(cmd, 1)?
    } else {
        return None;
    };
    Some(Route::with_key(key, SlotAddr::Master))
}

/// A redirection or cluster-state answer: the command was not executed and may be resent.
fn is_redirect(v: &Value) -> bool {
    match v {
        Value::ServerError(e) => matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"),
        _ => false,
    }
}

type Part = (Vec<usize>, RedisResult<Vec<Value>>);

async fn cluster_pipeline(
    conn: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let len = pipeline.len();
    if offset != 0 || count != len {
        // MULTI/EXEC: one slot by contract; the client routes it by its first key.
        return counted(conn.req_packed_commands(pipeline, offset, count).await);
    }
    let mut groups: HashMap<Route, (Pipeline, Vec<usize>)> = HashMap::new();
    let mut alone: Vec<usize> = Vec::new();
    for (i, cmd) in pipeline.cmd_iter().enumerate() {
        match route_of(cmd) {
            Some(route) => {
                let g = groups
                    .entry(route)
                    .or_insert_with(|| (redis::pipe(), Vec::new()));
                g.0.add_command(cmd.clone());
                g.1.push(i);
            }
            None => alone.push(i),
        }
    }
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let mut parts: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = Part> + Send>>> =
        Vec::with_capacity(groups.len() + alone.len());
    for (route, (pipe, idx)) in groups {
        let mut c = conn.clone();
        parts.push(Box::pin(async move {
            let n = idx.len();
            let r = c
                .route_pipeline(pipe, 0, n, SingleNodeRoutingInfo::SpecificNode(route))
                .await;
            (idx, r)
        }));
    }
    for i in alone {
        let mut c = conn.clone();
        let cmd = cmds[i].clone();
        parts.push(Box::pin(async move {
            let r = c.req_packed_command(&cmd).await.map(|v| vec![v]);
            (vec![i], r)
        }));
    }
    let mut out = vec![Value::Nil; len];
    let mut resend = Vec::new();
    for (idx, r) in futures_util::future::join_all(parts).await {
        let values = counted(r)?;
        for (i, v) in idx.into_iter().zip(values) {
            if is_redirect(&v) {
                resend.push(i);
            }
            out[i] = v;
        }
    }
    if !resend.is_empty() {
        m::REDIS_CLUSTER_RETRIES.add(resend.len() as u64);
        CLUSTER_RETRIES_LOG.warn(format_args!(
            "redis cluster: {} pipelined command(s) redirected (slot moving or failover); resent",
            resend.len()
        ));
        for i in resend {
            out[i] = counted(conn.req_packed_command(cmds[i]).await)?;
        }
    }
    Ok(out)
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => {
                Box::pin(async move { counted(c.req_packed_command(cmd).await) })
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => Box::pin(cluster_pipeline(c, pipeline, offset, count)),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
        }
    }
}

/// A Redis failure as an operator should read it: a refused or dropped connection says that
/// Redis is stopped or unreachable (not "broken pipe"), a timeout says it did not answer;
/// anything else is the client's own sentence.
pub fn describe(err: &redis::RedisError) -> String {
    if err.is_connection_refusal() {
        format!("Redis is not running or not reachable (connection refused: {err})")
    } else if err.is_connection_dropped() {
        format!("Redis closed the connection: it was stopped or restarted ({err})")
    } else if err.is_timeout() {
        format!("Redis did not answer in time ({err})")
    } else if err.is_io_error() {
        format!("Redis is not reachable ({err})")
    } else {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_commands_route_by_their_key() {
        let mut set = redis::cmd("SET");
        set.arg("metrics.a").arg(1);
        let mut append = redis::cmd("append");
        append.arg("metrics.a").arg("x");
        assert_eq!(route_of(&set), route_of(&append));
        assert_eq!(
            route_of(&set),
            Some(Route::with_key("metrics.a", SlotAddr::Master))
        );
        let mut eval = redis::cmd("EVALSHA");
        eval.arg("abc")
            .arg(2)
            .arg("metrics.b")
            .arg("metrics.unique_metrics");
        assert_eq!(
            route_of(&eval),
            Some(Route::with_key("metrics.b", SlotAddr::Master))
        );
        let mut mget = redis::cmd("MGET");
        mget.arg("metrics.a").arg("metrics.b");
        assert_eq!(
            route_of(&mget),
            None,
            "multi-key: sent alone, split by the client"
        );
        assert_eq!(route_of(&redis::cmd("PING")), None);
    }

    #[test]
    fn targets_read_well() {
        let t = Target::Cluster(vec!["redis://:pw@10.0.0.1:7000".into()]);
        assert!(t.is_cluster());
        assert!(!t.label().contains("pw"), "{}", t.label());
        assert_eq!(
            Target::from("redis://x"),
            Target::Single("redis://x".into())
        );
    }
}
