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
