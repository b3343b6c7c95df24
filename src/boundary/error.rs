//! Boundary's one error type.

use thiserror::Error;

/// Why a Boundary run failed (the next run retries; nothing is taken as "not anomalous").
#[derive(Debug, Error)]
pub enum BoundaryError {
    /// A Redis command failed or timed out.
    #[error("Redis {what}: {source}")]
    Redis {
        /// The command.
        what: &'static str,
        /// The cause.
        source: redis::RedisError,
    },
    /// A run was asked for while one is going.
    #[error("a Boundary run is already going")]
    Busy,
    /// The run's outputs could not be encoded.
    #[error("encoding the run's outputs: {0}")]
    Encode(#[from] serde_json::Error),
}

impl BoundaryError {
    pub(crate) fn redis(what: &'static str) -> impl FnOnce(redis::RedisError) -> BoundaryError {
        move |source| BoundaryError::Redis { what, source }
    }
}
