//! Scale-out on a Redis Cluster: which daemon works on which metric (docs/cluster.md).
//!
//! Owns the cluster keys (none of them exists on a single Redis):
//! - `skyline.cluster.node.<id>`: string, the epoch of the node's last heartbeat, `SET … EX
//!   [cluster] node_ttl_secs`, renewed every `heartbeat_secs` by [`Membership`]. A node whose
//!   key expired is dead.
//! - `skyline.cluster.nodes`: set of the node ids that announced themselves (a registry; the
//!   live ones are those whose node key exists, dead ids are SREMed by the Analyzers).
//! - `skyline.cluster.run.<id>`: JSON of the node's last analysis run (`metrics_assigned`,
//!   `timestamp`, `total_analyzed`, `run_time`), written by its Analyzer, TTL 1 day.
//! - `analyzer.current_anomalies.<id>`: the node's own current anomalies (TTL 3 runs); every
//!   Analyzer rewrites the shared `analyzer.current_anomalies` as the merge of the live nodes'
//!   lists, so the webapp's Now page reads one key, as on a single Redis.
//! - `panorama.last_check.<app>.<metric>` (Skyline's name): claimed with `SET NX EX` before
//!   an anomaly is recorded and alerted, so whichever node saw it, it is recorded once.
//!
//! The assignment is rendezvous hashing (highest random weight) of the metric's full key over
//! the live node ids ([`owner`], pure): every node computes the same owner from the same
//! live set; a node that leaves moves only its own metrics, spread over the others; a node
//! that comes back gets the same metrics back. Every node reads the live set at the start of
//! each run, so a dead node's metrics move within one TTL plus one run.
//!
//! Actor: [`Membership`] (a timer; one `SET` and one `SADD` per heartbeat). Backpressure: one
//! heartbeat at a time (a tick during a slow one is skipped); a failed heartbeat is counted,
//! logged at most once a minute and retried at the next tick.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use log::info;

use super::redis_conn::{describe, RedisConn};
use crate::model::Anomaly;
use crate::telemetry::metrics as m;
use crate::telemetry::ratelimit::LogLimiter;

/// Registry of announced node ids (set).
pub const NODES_KEY: &str = "skyline.cluster.nodes";

/// `skyline.cluster.node.<id>`: a live node's heartbeat.
pub fn node_key(id: &str) -> String {
    format!("skyline.cluster.node.{id}")
}

/// `skyline.cluster.run.<id>`: the node's last analysis run (JSON).
pub fn run_key(id: &str) -> String {
    format!("skyline.cluster.run.{id}")
}

/// `analyzer.current_anomalies.<id>`: the node's own current anomalies.
pub fn node_current_key(id: &str) -> String {
    format!("analyzer.current_anomalies.{id}")
}

/// Skyline's Panorama check key `panorama.last_check.<app>.<metric>`.
pub fn panorama_check_key(app: &str, metric: &str) -> String {
    format!("panorama.last_check.{app}.{metric}")
}

/// A 64-bit hash that is the same on every machine and every build (FNV-1a, then the
/// splitmix64 finaliser so that close inputs spread over the whole range).
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in p.iter() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The live node that owns `metric` (rendezvous hashing); `None` when no node is live. Ties
/// (astronomically rare) go to the smaller id, so the answer never depends on the order.
pub fn owner<'a>(metric: &str, nodes: &'a [String]) -> Option<&'a str> {
    nodes
        .iter()
        .map(|n| (stable_hash(&[n.as_bytes(), metric.as_bytes()]), n.as_str()))
        .max_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, n)| n)
}

/// This node's place in the cluster for one run: its id and the live node ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// This node's id.
    pub me: String,
    /// The live node ids, sorted, always including `me`.
    pub live: Vec<String>,
}

impl Assignment {
    /// An assignment over `live` (deduplicated, sorted, `me` added).
    pub fn new(me: &str, mut live: Vec<String>) -> Self {
        live.push(me.to_string());
        live.sort();
        live.dedup();
        Assignment {
            me: me.to_string(),
            live,
        }
    }

    /// True when this node works on `metric`.
    pub fn is_mine(&self, metric: &str) -> bool {
        owner(metric, &self.live) == Some(self.me.as_str())
    }
}

/// Reads the live node ids (registry members whose node key exists) and SREMs the dead ones
/// from the registry. Always includes `me`.
pub async fn assignment(conn: &mut RedisConn, me: &str) -> redis::RedisResult<Assignment> {
    let ids: Vec<String> = redis::cmd("SMEMBERS")
        .arg(NODES_KEY)
        .query_async(conn)
        .await?;
    if ids.is_empty() {
        return Ok(Assignment::new(me, Vec::new()));
    }
    let keys: Vec<String> = ids.iter().map(|i| node_key(i)).collect();
    let seen: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(conn).await?;
    let mut live = Vec::new();
    let mut dead = Vec::new();
    for (id, s) in ids.into_iter().zip(seen) {
        match s {
            Some(_) => live.push(id),
            None if id != me => dead.push(id),
            None => {}
        }
    }
    if !dead.is_empty() {
        info!(
            "cluster: nodes gone (their keys expired): {}",
            dead.join(", ")
        );
        let _: () = redis::cmd("SREM")
            .arg(NODES_KEY)
            .arg(&dead)
            .query_async(conn)
            .await?;
    }
    Ok(Assignment::new(me, live))
}

/// Claims the right to record and alert one anomaly cluster-wide: `SET
/// panorama.last_check.<app>.<metric> <node> NX EX ttl`. True for the node that holds the
/// claim (the one that set it, in this run or an earlier one: its later runs keep Panorama's
/// and the alerters' own de-duplication, exactly as on one Redis).
pub async fn claim_anomaly(
    conn: &mut RedisConn,
    app: &str,
    metric: &str,
    me: &str,
    ttl_secs: u64,
) -> redis::RedisResult<bool> {
    let set: Option<String> = redis::cmd("SET")
        .arg(panorama_check_key(app, metric))
        .arg(me)
        .arg("NX")
        .arg("EX")
        .arg(ttl_secs.max(1))
        .query_async(conn)
        .await?;
    if set.is_some() {
        return Ok(true);
    }
    let holder: Option<String> = redis::cmd("GET")
        .arg(panorama_check_key(app, metric))
        .query_async(conn)
        .await?;
    Ok(holder.as_deref() == Some(me))
}

/// A stage's part in a cluster of daemons (the Analyzer's and Boundary's): this node's id and
/// the window of the claim keys.
#[derive(Debug, Clone)]
pub struct ClusterRole {
    /// This node's id (`[cluster] node_id`).
    pub node_id: String,
    /// Panorama's de-duplication window (`[panorama] expiry_secs`), the claim keys' TTL.
    pub expiry_secs: i64,
}

/// Keeps only the anomalies this node claims ([`claim_anomaly`], with the TTL Panorama's
/// de-duplication window leaves at `now`): another node that saw the same anomaly in a run
/// where the live set was changing has recorded and alerted it already. Lost claims are
/// counted in `skyline_cluster_anomaly_claims_lost_total`.
pub async fn claim_anomalies(
    conn: &mut RedisConn,
    role: &ClusterRole,
    now: i64,
    anomalies: Vec<Anomaly>,
) -> redis::RedisResult<Vec<Anomaly>> {
    let mut kept = Vec::with_capacity(anomalies.len());
    for a in anomalies {
        let ttl = role.expiry_secs - (now - a.timestamp);
        let ttl = if ttl < 1 { 60 } else { ttl as u64 };
        if claim_anomaly(conn, &a.app, &a.metric, &role.node_id, ttl).await? {
            kept.push(a);
        } else {
            m::CLUSTER_CLAIMS_LOST.inc();
        }
    }
    Ok(kept)
}

/// Writes this node's own list (`own_key`, a JSON array, `EX keep_secs`), then `shared_key` as
/// the concatenation of the lists of the `live` nodes (`node_key_of` names each node's key).
/// A node's list that is missing or not a JSON array adds nothing.
pub async fn publish_merged(
    conn: &mut RedisConn,
    live: &[String],
    node_key_of: fn(&str) -> String,
    own_key: &str,
    own_json: &str,
    keep_secs: u64,
    shared_key: &str,
) -> redis::RedisResult<()> {
    let _: () = redis::cmd("SET")
        .arg(own_key)
        .arg(own_json)
        .arg("EX")
        .arg(keep_secs.max(1))
        .query_async(conn)
        .await?;
    let keys: Vec<String> = live.iter().map(|n| node_key_of(n)).collect();
    let lists: Vec<Option<String>> = if keys.is_empty() {
        Vec::new()
    } else {
        redis::cmd("MGET").arg(&keys).query_async(conn).await?
    };
    let mut merged: Vec<serde_json::Value> = Vec::new();
    for text in lists.into_iter().flatten() {
        if let Ok(serde_json::Value::Array(items)) = serde_json::from_str(&text) {
            merged.extend(items);
        }
    }
    redis::cmd("SET")
        .arg(shared_key)
        .arg(serde_json::Value::Array(merged).to_string())
        .query_async(conn)
        .await
}

fn epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Writes this node's heartbeat: its key with the TTL, and its id in the registry.
pub async fn heartbeat(conn: &mut RedisConn, me: &str, ttl: Duration) -> redis::RedisResult<()> {
    redis::pipe()
        .cmd("SET")
        .arg(node_key(me))
        .arg(epoch())
        .arg("EX")
        .arg(ttl.as_secs().max(1))
        .ignore()
        .cmd("SADD")
        .arg(NODES_KEY)
        .arg(me)
        .ignore()
        .query_async(conn)
        .await
}

static HEARTBEAT_LOG: LogLimiter = LogLimiter::new();

/// The heartbeat actor: announces this node every `every`, with a key that lives `ttl`.
pub struct Membership {
    conn: RedisConn,
    me: String,
    every: Duration,
    ttl: Duration,
    busy: bool,
}

impl Membership {
    /// A heartbeat for node `me`.
    pub fn new(conn: RedisConn, me: String, every: Duration, ttl: Duration) -> Self {
        Membership {
            conn,
            me,
            every,
            ttl,
            busy: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let mut conn = self.conn.clone();
        let (me, ttl) = (self.me.clone(), self.ttl);
        let fut = async move { heartbeat(&mut conn, &me, ttl).await };
        ctx.spawn(fut.into_actor(self).map(|r, act, _| {
            act.busy = false;
            if let Err(err) = r {
                m::CLUSTER_HEARTBEAT_ERRORS.inc();
                HEARTBEAT_LOG.error(format_args!(
                    "cluster: heartbeat of node {} failed: {}",
                    act.me,
                    describe(&err)
                ));
            }
        }));
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(
            "cluster: node {} announcing itself every {:?}",
            self.me, self.every
        );
        self.tick(ctx);
        ctx.run_interval(self.every, |act, ctx| act.tick(ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("metrics.host{i}.cpu.user"))
            .collect()
    }

    #[test]
    fn two_nodes_share_the_metrics_in_balance() {
        let nodes = vec!["alpha:8080".to_string(), "beta:8080".to_string()];
        let metrics = names(2_000);
        let alpha = metrics
            .iter()
            .filter(|m| owner(m, &nodes) == Some("alpha:8080"))
            .count();
        let share = alpha as f64 / 2_000.0;
        assert!((0.3..=0.7).contains(&share), "alpha owns {share}");
        // Each metric has exactly one owner among the two.
        let a = Assignment::new("alpha:8080", nodes.clone());
        let b = Assignment::new("beta:8080", nodes.clone());
        for m in &metrics {
            assert!(a.is_mine(m) ^ b.is_mine(m), "{m}");
        }
    }

    #[test]
    fn a_node_alone_owns_everything_and_a_leaver_moves_only_its_own() {
        let three = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let two = vec!["a".to_string(), "b".to_string()];
        let alone = Assignment::new("a", Vec::new());
        for m in names(500) {
            assert!(alone.is_mine(&m));
            let before = owner(&m, &three);
            let after = owner(&m, &two);
            if before != Some("c") {
                assert_eq!(before, after, "{m} moved although its node stayed");
            }
        }
    }

    #[test]
    fn the_assignment_is_deterministic_and_order_free() {
        let x = vec!["n1".to_string(), "n2".to_string(), "n3".to_string()];
        let y = vec!["n3".to_string(), "n1".to_string(), "n2".to_string()];
        for m in names(200) {
            assert_eq!(owner(&m, &x), owner(&m, &y));
        }
        // Pinned values: the hash must never change between builds or machines.
        assert_eq!(stable_hash(&[b"a"]), 198_367_012_849_983_736);
        assert_eq!(
            stable_hash(&[b"node-1", b"metrics.cpu"]),
            6_729_974_197_081_976_439
        );
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_eq!(owner("metrics.x", &[]), None);
    }
}
