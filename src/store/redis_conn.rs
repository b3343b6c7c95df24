//! Opening Redis connections the way every stage needs them: a lazily connecting, auto-
//! reconnecting multiplexed `ConnectionManager` with a generous response timeout (the redis
//! crate's 500 ms default loses writes under a flood). No actor; no keys.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::StoreError;

/// Creates a connection manager for `url`. It connects on first use and reconnects with
/// back-off by itself, so this succeeds even while Redis is down; commands fail (and are
/// retried by their callers) until it is back.
pub fn connect(url: &str, response_timeout: Duration) -> Result<ConnectionManager, StoreError> {
    let client = redis::Client::open(url)?;
    let cfg = ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    Ok(ConnectionManager::new_lazy_with_config(client, cfg)?)
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
