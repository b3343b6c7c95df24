//! `GET /api/cluster`: the daemons sharing this Redis Cluster, from the keys of
//! `store::cluster` (registry `skyline.cluster.nodes`, heartbeats `skyline.cluster.node.<id>`,
//! last runs `skyline.cluster.run.<id>`): one `SMEMBERS` and one `MGET` (split per slot by the
//! cluster client). On one Redis it answers `{"cluster": false, "nodes": []}`.
//!
//! Answer: `{"cluster": true, "nodes": [{"id", "last_seen", "metrics_assigned", "last_run":
//! {"timestamp", "total_analyzed", "run_time"}}]}`, live nodes only (heartbeat key present),
//! sorted by id; `last_run` is null before a node's first run.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::error::WebError;
use super::{WebState, Worker};
use crate::monitor::spans::{timed, Kind::Redis};
use crate::store::cluster::{node_key, run_key, NODES_KEY};

#[derive(Serialize)]
struct LastRun {
    timestamp: i64,
    total_analyzed: u64,
    run_time: f64,
}

#[derive(Serialize)]
struct Node {
    id: String,
    last_seen: i64,
    metrics_assigned: u64,
    last_run: Option<LastRun>,
}

#[derive(Serialize)]
struct Body {
    cluster: bool,
    nodes: Vec<Node>,
}

/// The live nodes, read from Redis (shared by `/api/cluster` and the Now page's section).
async fn nodes(worker: &Worker) -> Result<Vec<Node>, WebError> {
    let mut conn = worker.redis.clone();
    let mut ids: Vec<String> = timed(
        Redis,
        redis::cmd("SMEMBERS").arg(NODES_KEY).query_async(&mut conn),
    )
    .await
    .map_err(|err| WebError::redis_failed(&format!("SMEMBERS {NODES_KEY}"), &err))?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    ids.sort();
    let mut keys: Vec<String> = ids.iter().map(|i| node_key(i)).collect();
    keys.extend(ids.iter().map(|i| run_key(i)));
    let values: Vec<Option<String>> =
        timed(Redis, redis::cmd("MGET").arg(&keys).query_async(&mut conn))
            .await
            .map_err(|err| WebError::redis_failed("MGET skyline.cluster.*", &err))?;
    let (seen, runs) = values.split_at(ids.len().min(values.len()));
    let mut out = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let Some(last_seen) = seen
            .get(i)
            .and_then(|v| v.as_deref())
            .and_then(|s| s.parse::<i64>().ok())
        else {
            continue;
        };
        let run: Option<serde_json::Value> = runs
            .get(i)
            .and_then(|v| v.as_deref())
            .and_then(|s| serde_json::from_str(s).ok());
        let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
        out.push(Node {
            id,
            last_seen,
            metrics_assigned: run
                .as_ref()
                .map(|r| num(r, "metrics_assigned"))
                .unwrap_or(0),
            last_run: run.as_ref().map(|r| LastRun {
                timestamp: r.get("timestamp").and_then(|x| x.as_i64()).unwrap_or(0),
                total_analyzed: num(r, "total_analyzed"),
                run_time: r.get("run_time").and_then(|x| x.as_f64()).unwrap_or(0.0),
            }),
        });
    }
    Ok(out)
}

/// `GET /api/cluster`.
pub async fn api(
    state: web::Data<WebState>,
    worker: web::Data<Worker>,
) -> Result<HttpResponse, WebError> {
    let nodes = if state.cluster {
        nodes(&worker).await?
    } else {
        Vec::new()
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("Cache-Control", "no-store"))
        .json(Body {
            cluster: state.cluster,
            nodes,
        }))
}
