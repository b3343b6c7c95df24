//! [`TimedRedis`]: the webapp's Redis connection, timed. Every command or pipeline a handler
//! sends through it adds its time to the current request's Redis span
//! ([`crate::monitor::spans`]), so the endpoint monitor's "where the time went" covers every
//! Redis call on a webapp request path (the Now page, `/api`, rebrow, `/health`, `/metrics`)
//! without each call site having to remember it. Outside a monitored request it only
//! forwards. No queue of its own: backpressure is the wrapped connection's
//! (pipelined on one connection, `[redis] response_timeout_secs`).

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::monitor::spans::{timed, Kind};
use crate::store::redis_conn::{ClusterMaster, RedisConn};

/// A [`RedisConn`] (one node or a cluster) whose commands count as the current request's
/// Redis time.
#[derive(Clone)]
pub struct TimedRedis(pub RedisConn);

impl TimedRedis {
    /// [`RedisConn::cluster_masters`], timed.
    pub async fn cluster_masters(&mut self) -> redis::RedisResult<Vec<ClusterMaster>> {
        timed(Kind::Redis, self.0.cluster_masters()).await
    }

    /// [`RedisConn::on_master`], timed.
    pub async fn on_master(&mut self, slot: u16, cmd: &Cmd) -> redis::RedisResult<Value> {
        timed(Kind::Redis, self.0.on_master(slot, cmd)).await
    }
}

impl ConnectionLike for TimedRedis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(timed(Kind::Redis, self.0.req_packed_command(cmd)))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(timed(
            Kind::Redis,
            self.0.req_packed_commands(pipeline, offset, count),
        ))
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}
