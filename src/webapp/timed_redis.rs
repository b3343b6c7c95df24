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
use crate::store::redis_conn::RedisConn;

/// A [`RedisConn`] (one node or a cluster) whose commands count as the current request's
/// Redis time.
#[derive(Clone)]
pub struct TimedRedis(pub RedisConn);

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
