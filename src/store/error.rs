//! The store stage's errors.

use thiserror::Error;

/// Everything that can go wrong between the metric actors and Redis.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A Redis command or connection failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The managed redis-server could not be started or supervised.
    #[error("managed redis-server: {0}")]
    Managed(String),
    /// A stored value is not Skyline's msgpack format.
    #[error("undecodable value in {key}: {source}")]
    Decode {
        /// The Redis key.
        key: String,
        /// What was wrong.
        source: super::encoding::EncodingError,
    },
    /// The metric actors are gone (shutdown) or over capacity.
    #[error("metric actors unavailable: {0}")]
    Unavailable(&'static str),
    /// File-system problem (managed Redis directory).
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}
