//! Metric-name rules shared by every ingest path.

use thiserror::Error;

/// Skyline's `FULL_NAMESPACE`: the prefix of every metric key in Redis.
pub const FULL_NAMESPACE: &str = "metrics.";

/// The set of every metric key (`FULL_NAMESPACE + "unique_metrics"`), Skyline's layout. Its
/// members are full keys (`metrics.<name>`). Written by the store, read by the analyzer and
/// the webapp, so it lives here rather than in one of them.
pub const UNIQUE_METRICS: &str = "metrics.unique_metrics";

/// Longest metric name accepted (Graphite's own practical limit is the file system's).
pub const MAX_NAME_BYTES: usize = 4096;

/// Why a metric name was refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    #[error("empty metric name")]
    Empty,
    /// The name is longer than [`MAX_NAME_BYTES`].
    #[error("metric name longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
    /// The name contains a control character (newline, tab, NUL, DEL…).
    #[error("metric name contains a control character")]
    ControlChar,
}

/// Checks the rules every listener applies: not empty, not too long, no control characters.
/// A plain space is allowed: Skyline stores such names from pickles (the plaintext protocol
/// cannot carry them anyway).
pub fn validate_metric_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlChar);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate_metric_name("a.b"), Ok(()));
        assert_eq!(validate_metric_name("stats.ünïcode.metric"), Ok(()));
        assert_eq!(validate_metric_name(""), Err(NameError::Empty));
        assert_eq!(validate_metric_name("a\nb"), Err(NameError::ControlChar));
        assert_eq!(validate_metric_name("a b"), Ok(()));
        assert_eq!(validate_metric_name("a\tb"), Err(NameError::ControlChar));
        assert_eq!(validate_metric_name("a\u{7f}"), Err(NameError::ControlChar));
        assert_eq!(
            validate_metric_name(&"x".repeat(5000)),
            Err(NameError::TooLong)
        );
    }
}
