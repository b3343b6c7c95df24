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
//!   it). A non-transactional pipeline is sent command by command, concurrently (at most
//!   1,000 in flight), so the client follows MOVED and ASK for each command on its own (the
//!   client would resend a redirected pipeline whole, with ASKING before its first command
//!   only: during a slot migration a flush hung until the response timeout); the commands
//!   still share the client's multiplexed connection to each master, so they travel
//!   pipelined on the wire, and the answers come back in the pipeline's order. A command refused by the server (WRONGTYPE…)
//!   is that command's answer, as in a pipeline on one Redis; a lost connection fails the
//!   whole pipeline (its caller retries). A redirection still seen in an answer is resent on
//!   its own. Resent commands and failed cluster commands are counted
//!   (`skyline_redis_cluster_retries_total`, `skyline_redis_cluster_errors_total`) and logged
//!   at most once a minute. A MULTI/EXEC pipeline is passed whole (its keys must share a slot).
//!
//! No actor; no keys; no backpressure of its own (callers bound what they send).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

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

/// A redirection or cluster-state answer: the command was not executed and may be resent.
fn is_redirect(v: &Value) -> bool {
    match v {
        Value::ServerError(e) => matches!(e.code(), "MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN"),
        _ => false,
    }
}

/// At most this many commands of one split pipeline in flight at once.
const MAX_IN_FLIGHT: usize = 1_000;

async fn cluster_pipeline(
    conn: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    use futures_util::stream::{self, StreamExt};
    let len = pipeline.len();
    if offset != 0 || count != len {
        // MULTI/EXEC: one slot by contract; the client routes it by its first key.
        return counted(conn.req_packed_commands(pipeline, offset, count).await);
    }
    // Each command on its own, so the client follows MOVED/ASK per command (a redirected
    // sub-pipeline would be resent whole, with ASKING before its first command only). The
    // commands still share the client's multiplexed connection to each master, so they
    // travel pipelined on the wire; `buffered` keeps the answers in order.
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = RedisResult<Value>> + Send>>;
    let mut sends: Vec<Answer> = Vec::with_capacity(len);
    for cmd in &cmds {
        let mut c = conn.clone();
        let cmd: Cmd = (*cmd).clone();
        sends.push(Box::pin(async move { c.req_packed_command(&cmd).await }));
    }
    let answers: Vec<RedisResult<Value>> =
        stream::iter(sends).buffered(MAX_IN_FLIGHT).collect().await;
    let mut out = Vec::with_capacity(len);
    let mut resend = Vec::new();
    for (i, r) in answers.into_iter().enumerate() {
        let v = match r {
            Ok(v) => v,
            // A refusal of one command (WRONGTYPE…) is that command's answer, as in a
            // pipeline on one Redis; a lost connection fails the whole pipeline.
            Err(err) => match redis::ServerError::try_from(err) {
                Ok(e) => Value::ServerError(e),
                Err(err) => return counted(Err(err)),
            },
        };
        if is_redirect(&v) {
            resend.push(i);
        }
        out.push(v);
    }
    if !resend.is_empty() {
        m::REDIS_CLUSTER_RETRIES.add(resend.len() as u64);
        CLUSTER_RETRIES_LOG.warn(format_args!(
            "redis cluster: {} pipelined command(s) still redirected (slot moving or failover); resent",
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
