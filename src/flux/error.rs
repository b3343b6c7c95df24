//! Every way a flux request can fail, and its HTTP response. One status match
//! ([`FluxError::status_code`]); every body is JSON `{"code", "message"}` (plus `errors` for a
//! 400 naming each problem). Internal details are logged, never sent.
//!
//! Backpressure: the 503 variants carry `Retry-After` (`[flux] retry_after_secs`).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use log::error;
use serde::Serialize;
use thiserror::Error;

use super::validate::{Problem, MAX_LISTED_PROBLEMS};

/// A refused flux request.
#[derive(Debug, Error)]
pub enum FluxError {
    /// 400: the request or some of its datapoints are invalid; nothing of it was queued.
    #[error("{message}")]
    Invalid {
        /// Summary.
        message: String,
        /// Each problem.
        problems: Vec<Problem>,
    },
    /// 401: no key anywhere.
    #[error("no API key: send it in the `key` header, the `key` query parameter or the JSON body's `key` field")]
    MissingKey,
    /// 401: a compressed body without a key in the `key` header or `?key=` (the key is checked
    /// before a body is decompressed).
    #[error("a compressed body must carry its API key in the `key` header or the `key` query parameter, so that it is checked before the body is decompressed")]
    KeyBeforeCompressedBody,
    /// 401: a key that is not in `[flux] api_keys`.
    #[error("invalid API key")]
    InvalidKey,
    /// 405.
    #[error("method not allowed: use {allowed}")]
    MethodNotAllowed {
        /// The method to use.
        allowed: &'static str,
    },
    /// 413: the body is over `[flux] max_body_bytes`.
    #[error("request body larger than {limit} bytes (max_body_bytes); split the batch")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// 413: one batch can never fit the queue.
    #[error("batch of {points} datapoints is larger than the whole flux queue ({limit}, queue_max_points); split it")]
    BatchTooLarge {
        /// Datapoints in the batch.
        points: usize,
        /// `queue_max_points`.
        limit: usize,
    },
    /// 503: the queue is at `queue_max_points`.
    #[error("flux queue is full; retry after {retry_after_secs} s")]
    QueueFull {
        /// `Retry-After`.
        retry_after_secs: u64,
    },
    /// 503: shutting down.
    #[error("flux is shutting down; retry after {retry_after_secs} s")]
    ShuttingDown {
        /// `Retry-After`.
        retry_after_secs: u64,
    },
    /// 422: the request is valid but this configuration would store it nowhere.
    #[error("not stored: {reason}")]
    NotStored {
        /// Why, naming the setting.
        reason: String,
    },
    /// 500: a bug or an unexpected failure; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

impl FluxError {
    /// A 400 with one problem.
    pub fn invalid(problem: Problem) -> Self {
        FluxError::Invalid {
            message: problem.message.clone(),
            problems: vec![problem],
        }
    }

    /// A 400 naming every problem of a batch of `total` items.
    pub fn invalid_batch(problems: Vec<Problem>, total: usize) -> Self {
        let bad: std::collections::BTreeSet<Option<usize>> =
            problems.iter().map(|p| p.index).collect();
        let message = if problems.len() == 1 {
            problems[0].message.clone()
        } else if total > 1 && bad.iter().all(Option::is_some) {
            format!(
                "{} of {total} datapoints are invalid; nothing was accepted",
                bad.len()
            )
        } else {
            format!(
                "{} problems with the request; nothing was accepted",
                problems.len()
            )
        };
        FluxError::Invalid { message, problems }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            FluxError::QueueFull { retry_after_secs }
            | FluxError::ShuttingDown { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    code: u16,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a [Problem]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors_total: Option<usize>,
}

impl ResponseError for FluxError {
    fn status_code(&self) -> StatusCode {
        match self {
            FluxError::Invalid { .. } => StatusCode::BAD_REQUEST,
            FluxError::MissingKey | FluxError::InvalidKey | FluxError::KeyBeforeCompressedBody => {
                StatusCode::UNAUTHORIZED
            }
            FluxError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            FluxError::TooLarge { .. } | FluxError::BatchTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            FluxError::QueueFull { .. } | FluxError::ShuttingDown { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            FluxError::NotStored { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            FluxError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if let FluxError::Internal(detail) = self {
            error!("flux: internal error: {detail}");
        }
        let (errors, errors_total) = match self {
            FluxError::Invalid { problems, .. } => (
                Some(&problems[..problems.len().min(MAX_LISTED_PROBLEMS)]),
                (problems.len() > MAX_LISTED_PROBLEMS).then_some(problems.len()),
            ),
            _ => (None, None),
        };
        let body = Body {
            code: status.as_u16(),
            message: self.to_string(),
            errors,
            errors_total,
        };
        let mut resp = HttpResponse::build(status);
        if let Some(secs) = self.retry_after() {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            if let FluxError::MethodNotAllowed { allowed } = self {
                resp.insert_header((header::ALLOW, *allowed));
            }
        }
        resp.json(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(e: &FluxError) -> serde_json::Value {
        let bytes = e.error_response().into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn statuses_and_bodies() {
        let e = FluxError::QueueFull {
            retry_after_secs: 7,
        };
        let r = e.error_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers().get("retry-after").unwrap(), "7");
        assert_eq!(body_of(&e)["code"], 503);
        assert_eq!(FluxError::MissingKey.status_code(), 401);
        assert_eq!(FluxError::InvalidKey.status_code(), 401);
        assert_eq!(FluxError::TooLarge { limit: 1 }.status_code(), 413);
        let internal = FluxError::Internal("secret detail".into());
        assert_eq!(internal.status_code(), 500);
        assert!(!body_of(&internal).to_string().contains("secret"));
        let bad = FluxError::invalid_batch(
            vec![
                Problem {
                    index: Some(1),
                    metric: Some("a b".into()),
                    field: "metric".into(),
                    message: "bad".into(),
                },
                Problem {
                    index: Some(3),
                    metric: Some("c".into()),
                    field: "value".into(),
                    message: "bad".into(),
                },
            ],
            5,
        );
        let b = body_of(&bad);
        assert_eq!(b["code"], 400);
        assert_eq!(
            b["message"],
            "2 of 5 datapoints are invalid; nothing was accepted"
        );
        assert_eq!(b["errors"][0]["metric"], "a b");
        assert_eq!(b["errors"][1]["index"], 3);
    }
}
