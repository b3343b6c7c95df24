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
//!   client), plus our own follow-up of what it gives up on (`send_one`): an `ASK` is resent
//!   as `ASKING` + the command in one write to the importing node (the client sends `ASKING`
//!   alone and waits for its answer before sending the command, so on the connection every
//!   concurrent command shares, another command can consume the one-shot flag: the command is
//!   redirected again and, under a flush of hundreds of commands during a slot migration, the
//!   client's retries run out); `MOVED`, `TRYAGAIN`, `CLUSTERDOWN`, a lost connection or a
//!   timeout are resent after a pause (20 ms doubling, 8 attempts). A non-transactional
//!   pipeline is sent command by command that way, concurrently (at most 1,000 in flight),
//!   over the client's multiplexed connection to each master, so the commands still travel
//!   pipelined on the wire, and the answers come back in the pipeline's order. A command
//!   refused by the server (WRONGTYPE…) is that command's answer, as in a pipeline on one
//!   Redis; a command that still could not be delivered fails the whole pipeline (its caller
//!   retries). Resent commands and failed cluster commands are counted
//!   (`skyline_redis_cluster_retries_total`, `skyline_redis_cluster_errors_total`) and logged
//!   at most once a minute. A MULTI/EXEC pipeline is passed whole (its keys must share a slot).
//! * Keyless commands for one master ([`RedisConn::on_master`], rebrow's per-master `SCAN`,
//!   `INFO`, `DBSIZE`): routed by a slot that master serves; the masters come from `CLUSTER
//!   NODES` ([`RedisConn::cluster_masters`], [`parse_cluster_nodes`]).
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
    Cluster(ClusterHandle),
}

/// The cluster client's connection, shared by every clone of a [`RedisConn`], and replaced
/// by a fresh one when it stops answering (see [`ClusterHandle::replace`]).
#[derive(Clone)]
pub struct ClusterHandle {
    shared: std::sync::Arc<ClusterShared>,
}

struct ClusterShared {
    client: redis::cluster::ClusterClient,
    config: redis::cluster::ClusterConfig,
    /// (generation, connection).
    current: std::sync::Mutex<(u64, ClusterConnection)>,
}

impl ClusterHandle {
    /// The current connection and its generation.
    fn get(&self) -> (u64, ClusterConnection) {
        match self.shared.current.lock() {
            Ok(g) => (g.0, g.1.clone()),
            Err(poisoned) => {
                let g = poisoned.into_inner();
                (g.0, g.1.clone())
            }
        }
    }

    /// Replaces generation `seen` with a new connection (a no-op when another caller already
    /// did). Under a flood of redirections and slot refreshes the redis crate's cluster
    /// connection task was seen to stop serving requests for good (every command timing
    /// out while the cluster answered other clients): a fresh connection has its own task.
    /// The old one ends when its last in-flight clone is dropped.
    fn replace(&self, seen: u64) {
        let mut g = match self.shared.current.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if g.0 == seen {
            g.1 = self
                .shared
                .client
                .get_pending_async_connection_with_config(self.shared.config.clone());
            g.0 += 1;
            m::REDIS_CLUSTER_RECONNECTS.inc();
            CLUSTER_RECONNECT_LOG.warn(format_args!(
                "redis cluster: the client stopped answering (a command timed out); replaced it with a fresh connection"
            ));
        }
    }
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
            let conn = client.get_pending_async_connection_with_config(cfg.clone());
            Ok(RedisConn::Cluster(ClusterHandle {
                shared: std::sync::Arc::new(ClusterShared {
                    client,
                    config: cfg,
                    current: std::sync::Mutex::new((0, conn)),
                }),
            }))
        }
    }
}

static CLUSTER_ERRORS_LOG: LogLimiter = LogLimiter::new();
static CLUSTER_RETRIES_LOG: LogLimiter = LogLimiter::new();
static CLUSTER_RECONNECT_LOG: LogLimiter = LogLimiter::new();

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

/// What to do with one command's answer on a cluster.
#[derive(Debug, PartialEq, Eq)]
enum Next {
    /// Keep the answer.
    Done,
    /// `ASK <slot> <host:port>`: the key is being migrated; resend it to that node preceded by
    /// `ASKING`, both in one write.
    Ask(String, u16),
    /// Not executed (`MOVED`, `TRYAGAIN`, `CLUSTERDOWN`, the client's own gave up) or the
    /// connection failed or timed out: resend after a pause.
    Retry,
}

fn ask_target(detail: Option<&str>) -> Option<(String, u16)> {
    let mut it = detail?.split_ascii_whitespace();
    let _slot = it.next()?;
    let (host, port) = it.next()?.rsplit_once(':')?;
    Some((host.to_string(), port.parse().ok()?))
}

fn next_step(answer: &RedisResult<Value>) -> Next {
    let (code, detail) = match answer {
        Ok(Value::ServerError(e)) => (e.code().to_string(), e.details().map(str::to_string)),
        Ok(_) => return Next::Done,
        Err(err) => match err.code() {
            Some(code) => (code.to_string(), err.detail().map(str::to_string)),
            // Not a server answer: a lost connection or a timeout.
            None if err.is_io_error()
                || err.is_timeout()
                || err.is_connection_dropped()
                || err.is_connection_refusal()
                || err.kind() == redis::ErrorKind::ClusterConnectionNotFound
                || !matches!(err.retry_method(), redis::RetryMethod::NoRetry) =>
            {
                return Next::Retry
            }
            None => return Next::Done,
        },
    };
    match code.as_str() {
        "ASK" => match ask_target(detail.as_deref()) {
            Some((host, port)) => Next::Ask(host, port),
            None => Next::Retry,
        },
        "MOVED" | "TRYAGAIN" | "CLUSTERDOWN" => Next::Retry,
        _ => Next::Done,
    }
}

/// Commands whose keys may lie in several slots (the client splits them): never resent to
/// one node with `ASKING`.
fn multi_key(cmd: &Cmd) -> bool {
    let name = match cmd.args_iter().next() {
        Some(redis::Arg::Simple(n)) => n.to_ascii_uppercase(),
        _ => return true,
    };
    matches!(
        name.as_slice(),
        b"MGET" | b"MSET" | b"DEL" | b"UNLINK" | b"EXISTS" | b"TOUCH" | b"SCAN" | b"KEYS"
    )
}

/// Whether `cmd` is `WAIT`: its answer speaks only for the writes made before it on the same
/// nodes. Resent after a lost connection or a failover it would be answered by the new
/// masters, which may never have had those writes (a master killed between the writes'
/// answers and `WAIT`, its replica promoted, the old master back as the new one's replica:
/// `WAIT 1` then says 1 for writes that are gone). So it is never resent: a failed `WAIT`
/// fails the flush, whose writes are retried.
fn is_wait(cmd: &Cmd) -> bool {
    matches!(cmd.args_iter().next(), Some(redis::Arg::Simple(n)) if n.eq_ignore_ascii_case(b"WAIT"))
}

/// Attempts per command (the client's own retries come on top of each).
const ATTEMPTS: u32 = 8;

/// One command on the cluster: routed by the client, then an `ASK` it could not follow
/// resent as `ASKING` + the command in one pipeline to the importing node (the client sends
/// `ASKING` on its own and waits for its answer before the command, so on a connection
/// shared by concurrent commands another command can take the one-shot `ASKING` flag: the
/// command is then redirected again, and after its retries the client gives up), and a
/// redirection, refusal to serve (`TRYAGAIN`, `CLUSTERDOWN`) or lost connection resent after
/// a pause. Counted and logged at most once a minute.
async fn send_one(handle: &ClusterHandle, cmd: &Cmd) -> RedisResult<Value> {
    let mut attempt = 0;
    let (mut generation, mut conn) = handle.get();
    let mut answer = conn.req_packed_command(cmd).await;
    loop {
        if matches!(&answer, Err(err) if err.is_timeout()) {
            handle.replace(generation);
            (generation, conn) = handle.get();
        }
        let next = next_step(&answer);
        if next == Next::Done || attempt + 1 >= ATTEMPTS || is_wait(cmd) {
            return counted(answer);
        }
        attempt += 1;
        m::REDIS_CLUSTER_RETRIES.inc();
        CLUSTER_RETRIES_LOG.warn(format_args!(
            "redis cluster: a command was redirected or failed (slot moving, failover or lost connection: {}); resent",
            match &answer {
                Ok(Value::ServerError(e)) => e.to_string(),
                Ok(_) => String::new(),
                Err(err) => describe(err),
            }
        ));
        answer = match next {
            Next::Ask(host, port) if !multi_key(cmd) => {
                let mut p = redis::pipe();
                p.cmd("ASKING").add_command(cmd.clone());
                match conn
                    .route_pipeline(
                        p,
                        0,
                        2,
                        redis::cluster_routing::SingleNodeRoutingInfo::ByAddress { host, port },
                    )
                    .await
                {
                    Ok(mut values) if values.len() == 2 => Ok(values.swap_remove(1)),
                    Ok(values) => Err(redis::RedisError::from((
                        redis::ErrorKind::Client,
                        "ASKING pipeline",
                        format!("{} answers to 2 commands", values.len()),
                    ))),
                    Err(err) => Err(err),
                }
            }
            _ => {
                let pause = Duration::from_millis(20u64 << attempt.min(6));
                tokio::time::sleep(pause).await;
                conn.req_packed_command(cmd).await
            }
        };
    }
}

fn unreachable_ok() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "cluster pipeline: no answer"))
}

/// At most this many commands of one split pipeline in flight at once.
const MAX_IN_FLIGHT: usize = 1_000;

async fn cluster_pipeline(
    handle: &ClusterHandle,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    use futures_util::stream::{self, StreamExt};
    let len = pipeline.len();
    if offset != 0 || count != len {
        // MULTI/EXEC: one slot by contract; the client routes it by its first key.
        let (_, mut conn) = handle.get();
        return counted(conn.req_packed_commands(pipeline, offset, count).await);
    }
    // Each command on its own (see `send_one`); the commands still share the client's
    // multiplexed connection to each master, so they travel pipelined on the wire;
    // `buffered` keeps the answers in order.
    type Answer = std::pin::Pin<Box<dyn std::future::Future<Output = RedisResult<Value>> + Send>>;
    let sends: Vec<Answer> = pipeline
        .cmd_iter()
        .map(|cmd| {
            let h = handle.clone();
            let cmd: Cmd = cmd.clone();
            Box::pin(async move { send_one(&h, &cmd).await }) as Answer
        })
        .collect();
    let answers: Vec<RedisResult<Value>> =
        stream::iter(sends).buffered(MAX_IN_FLIGHT).collect().await;
    let mut out = Vec::with_capacity(len);
    for r in answers {
        if next_step(&r) != Next::Done {
            // Still redirected or undelivered after every attempt: not executed, so not
            // an answer to hand back (a caller ignoring errors would take it for a refusal).
            return Err(match r {
                Err(err) => err,
                Ok(Value::ServerError(e)) => e.into(),
                Ok(_) => unreachable_ok(),
            });
        }
        out.push(match r {
            Ok(v) => v,
            // A refusal of one command (WRONGTYPE…) is that command's answer, as in a
            // pipeline on one Redis; a command that still could not be delivered fails the
            // whole pipeline (its caller retries it).
            Err(err) => match redis::ServerError::try_from(err) {
                Ok(e) => Value::ServerError(e),
                Err(err) => return Err(err),
            },
        });
    }
    Ok(out)
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => Box::pin(send_one(c, cmd)),
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
            RedisConn::Cluster(_) => 0,
        }
    }
}

/// A master of a Redis Cluster, as `CLUSTER NODES` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMaster {
    /// `host:port` the cluster announces for it.
    pub addr: String,
    /// The slot ranges it serves (inclusive), ascending.
    pub slots: Vec<(u16, u16)>,
}

impl ClusterMaster {
    /// Its lowest slot: commands for this master are routed by it.
    pub fn first_slot(&self) -> u16 {
        self.slots.first().map(|r| r.0).unwrap_or(0)
    }

    /// How many slots it serves.
    pub fn slot_count(&self) -> usize {
        self.slots
            .iter()
            .map(|&(a, b)| usize::from(b.saturating_sub(a)) + 1)
            .sum()
    }

    /// `0-5460, 10923-10999` as an operator reads slot ranges.
    pub fn slots_label(&self) -> String {
        self.slots
            .iter()
            .map(|&(a, b)| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The masters in a `CLUSTER NODES` answer that serve slots and are not failed (a master
/// only suspected, `fail?`, still serves and is kept), ordered by their lowest slot: an
/// order every node gives alike and that a failover keeps (the promoted replica takes over
/// the same slots); only a slot migration changes it. Slots being migrated (`[…->-…]`,
/// `[…-<-…]`) are not counted.
pub fn parse_cluster_nodes(text: &str) -> Vec<ClusterMaster> {
    let mut masters: Vec<ClusterMaster> = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let flags: Vec<&str> = fields[2].split(',').collect();
        if !flags.contains(&"master")
            || flags
                .iter()
                .any(|f| matches!(*f, "fail" | "noaddr" | "handshake"))
        {
            continue;
        }
        // `ip:port@cport[,hostname]`
        let addr = fields[1]
            .split(',')
            .next()
            .and_then(|a| a.split('@').next())
            .unwrap_or("");
        if addr.is_empty() || addr.starts_with(':') {
            continue;
        }
        let mut slots: Vec<(u16, u16)> = fields[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|a| (a, a)),
            })
            .collect();
        if slots.is_empty() {
            continue;
        }
        slots.sort_unstable();
        masters.push(ClusterMaster {
            addr: addr.to_string(),
            slots,
        });
    }
    masters.sort_by_key(ClusterMaster::first_slot);
    masters
}

/// Attempts of a command sent to one master (`RedisConn::on_master`).
const MASTER_ATTEMPTS: u32 = 4;

async fn route_to_master(handle: &ClusterHandle, slot: u16, cmd: &Cmd) -> RedisResult<Value> {
    use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
    let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
        slot,
        SlotAddr::Master,
    )));
    let mut attempt = 0;
    loop {
        let (generation, mut conn) = handle.get();
        let answer = conn.route_command(cmd.clone(), routing.clone()).await;
        if matches!(&answer, Err(err) if err.is_timeout()) {
            handle.replace(generation);
        }
        // A keyless command is never redirected; a lost connection or a node that is not
        // serving (failover under way) is retried after a pause.
        if next_step(&answer) == Next::Done || attempt + 1 >= MASTER_ATTEMPTS {
            return counted(answer);
        }
        attempt += 1;
        m::REDIS_CLUSTER_RETRIES.inc();
        tokio::time::sleep(Duration::from_millis(40u64 << attempt)).await;
    }
}

impl RedisConn {
    /// The cluster's masters that serve slots, ordered by their lowest slot (see
    /// [`parse_cluster_nodes`]; `CLUSTER NODES` from any node); empty on one Redis.
    pub async fn cluster_masters(&mut self) -> RedisResult<Vec<ClusterMaster>> {
        if !self.is_cluster() {
            return Ok(Vec::new());
        }
        let text: String = redis::cmd("CLUSTER").arg("NODES").query_async(self).await?;
        Ok(parse_cluster_nodes(&text))
    }

    /// Sends a keyless command (`SCAN`, `INFO`, `DBSIZE`) to the master that serves `slot`
    /// in the client's slot map, retried (at most 4 attempts) on a lost connection or
    /// `CLUSTERDOWN`; on one Redis, to it (`slot` unused).
    pub async fn on_master(&mut self, slot: u16, cmd: &Cmd) -> RedisResult<Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd).await,
            RedisConn::Cluster(h) => route_to_master(h, slot, cmd).await,
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

    fn server_error(text: &str) -> RedisResult<Value> {
        match redis::parse_redis_value(format!("-{text}\r\n").as_bytes()) {
            Ok(v) => Ok(v),
            Err(err) => panic!("{err}"),
        }
    }

    #[test]
    fn redirections_are_followed_and_refusals_kept() {
        assert_eq!(
            next_step(&server_error("ASK 3999 127.0.0.1:7002")),
            Next::Ask("127.0.0.1".into(), 7002)
        );
        assert_eq!(
            next_step(&server_error("MOVED 3999 127.0.0.1:7002")),
            Next::Retry
        );
        assert_eq!(
            next_step(&server_error(
                "TRYAGAIN Multiple keys request during rehashing of slot"
            )),
            Next::Retry
        );
        assert_eq!(
            next_step(&server_error("CLUSTERDOWN The cluster is down")),
            Next::Retry
        );
        assert_eq!(
            next_step(&server_error(
                "WRONGTYPE Operation against a key holding the wrong kind of value"
            )),
            Next::Done
        );
        assert_eq!(next_step(&Ok(Value::Int(3))), Next::Done);
        let lost: RedisResult<Value> =
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset).into());
        assert_eq!(next_step(&lost), Next::Retry);
        // The same redirection as an error (the client gave up) is followed the same way.
        let given_up: RedisResult<Value> = match server_error("ASK 12 10.0.0.3:7000") {
            Ok(Value::ServerError(e)) => Err(e.into()),
            other => panic!("{other:?}"),
        };
        assert_eq!(next_step(&given_up), Next::Ask("10.0.0.3".into(), 7000));
        assert!(multi_key(&redis::cmd("MGET")));
        assert!(!multi_key(redis::cmd("APPEND").arg("metrics.a").arg("x")));
        // WAIT is never resent (its answer would speak for other nodes' writes).
        assert!(is_wait(redis::cmd("wait").arg(1).arg(500)));
        assert!(!is_wait(redis::cmd("APPEND").arg("wait").arg("x")));
    }

    #[test]
    fn cluster_nodes_give_the_serving_masters_by_lowest_slot() {
        // Redis 7 format: id addr flags master ping pong epoch link slots…
        let text = "\
a1 127.0.0.1:30002@40002,host-b master - 0 1 2 connected 5461-10922 [5460-<-a0]
a2 127.0.0.1:30003@40003 master - 0 1 3 connected 10923-16383 100
a0 127.0.0.1:30001@40001 myself,master - 0 0 1 connected 0-99 101-5460 [5461->-a1]
r1 127.0.0.1:30004@40004 slave a0 0 1 1 connected
f1 127.0.0.1:30005@40005 master,fail - 0 1 4 disconnected 200
e1 127.0.0.1:30006@40006 master - 0 1 5 connected
s1 127.0.0.1:30007@40007 master,fail? - 0 1 6 connected
";
        let masters = parse_cluster_nodes(text);
        let addrs: Vec<&str> = masters.iter().map(|m| m.addr.as_str()).collect();
        assert_eq!(
            addrs,
            vec!["127.0.0.1:30001", "127.0.0.1:30003", "127.0.0.1:30002"],
            "masters with slots, failed and slotless ones left out, by lowest slot"
        );
        assert_eq!(masters[0].slots, vec![(0, 99), (101, 5460)]);
        assert_eq!(masters[0].slot_count(), 5460);
        assert_eq!(masters[1].first_slot(), 100);
        assert_eq!(masters[1].slots_label(), "100, 10923-16383");
        assert_eq!(masters[2].slot_count(), 5462);
        assert!(parse_cluster_nodes("").is_empty());
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
