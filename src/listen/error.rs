//! The listen stage's errors.

use thiserror::Error;

/// Failures of the listeners. Per-frame problems are counted, not raised.
#[derive(Debug, Error)]
pub enum ListenError {
    /// Binding a listen address failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A pickle frame was refused.
    #[error("pickle: {0}")]
    Pickle(#[from] super::pickle::PickleError),
}
