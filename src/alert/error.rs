//! `AlertError`: every way delivering an alert can fail. Messages name the alerter and the
//! peer (host, never a webhook path or query, never a password).

use thiserror::Error;

/// A failed delivery attempt (retried by the worker unless it is a [`AlertError::Config`]).
#[derive(Debug, Error)]
pub enum AlertError {
    /// The alerter's settings are unusable (caught at load; seen only by `alert-test`).
    #[error("{alerter}: configuration: {message}")]
    Config {
        /// `smtp`, `slack`, `webhook`, `syslog`, `alertmanager` or `pagerduty`.
        alerter: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The SMTP server refused the message or could not be reached.
    #[error("smtp to {server}: {message}")]
    Smtp {
        /// `host:port`.
        server: String,
        /// The SMTP client's error.
        message: String,
    },
    /// An HTTP alerter (Slack, webhook, Alertmanager, PagerDuty) failed: connection error or a non-2xx answer.
    #[error("{alerter} to {peer}: {message}")]
    Http {
        /// `slack`, `webhook`, `alertmanager` or `pagerduty`.
        alerter: &'static str,
        /// `scheme://host[:port]` only (paths and queries may hold tokens).
        peer: String,
        /// Status and start of the body, or the connection error.
        message: String,
    },
    /// Writing to the syslog socket failed.
    #[error("syslog to {peer}: {source}")]
    Syslog {
        /// `/dev/log` or `host:port`.
        peer: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The attempt took longer than `[alerters] timeout_secs`.
    #[error("{alerter}: no answer within {secs} s")]
    Timeout {
        /// The alerter.
        alerter: &'static str,
        /// The limit.
        secs: u64,
    },
}

impl AlertError {
    /// False for errors no retry can fix.
    pub fn retryable(&self) -> bool {
        !matches!(self, AlertError::Config { .. })
    }
}
