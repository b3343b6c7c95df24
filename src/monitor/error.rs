//! The monitor stage's errors.

/// What can go wrong in the endpoint monitor.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A database operation failed or timed out (the batch is kept and retried).
    #[error("monitor database: {0}")]
    Db(#[from] crate::db::DbError),
    /// A view's parameters are unusable.
    #[error("{0}")]
    BadRequest(String),
}
