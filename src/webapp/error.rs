//! Every way a webapp request can fail, and its HTTP response: one enum, one status match
//! ([`WebError::status_code`]). APIs answer JSON `{"code", "message"}`; pages wrap the same
//! error in [`PageError`], which renders a small HTML page with the same status.
//!
//! Internals (Redis, database, Graphite and template errors) are logged at `error!` with the
//! metric or peer they concern when the error is built (the `*_failed` constructors), and
//! never sent: the client gets a fixed message.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use log::error;
use serde::Serialize;
use thiserror::Error;

/// A failed webapp request.
#[derive(Debug, Error)]
pub enum WebError {
    /// 400: a parameter is missing or invalid (the message names it).
    #[error("{0}")]
    BadRequest(String),
    /// 404: the metric, key, anomaly or page does not exist.
    #[error("{0}")]
    NotFound(String),
    /// 401: no or wrong basic-auth credentials.
    #[error("authentication required")]
    Unauthorized,
    /// 403: the client address is not allowed, or a write without a valid CSRF token, or
    /// rebrow is read-only.
    #[error("{0}")]
    Forbidden(String),
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the request conflicts with the current state (e.g. training data expired).
    #[error("{0}")]
    Conflict(String),
    /// 422: well-formed but unusable (e.g. a series too short to train on).
    #[error("{0}")]
    Unprocessable(String),
    /// 503: Panorama is disabled in the config.
    #[error("Panorama is disabled ([panorama] enabled = false)")]
    PanoramaDisabled,
    /// 503: no `[graphite] url`.
    #[error("no Graphite is configured ([graphite] url)")]
    GraphiteNotConfigured,
    /// 502: Graphite is down or answered something unusable (detail logged).
    #[error("Graphite did not answer usably")]
    Graphite,
    /// 504: Graphite did not answer in time.
    #[error("Graphite did not answer within the timeout")]
    GraphiteTimeout,
    /// 503: Redis failed (detail logged).
    #[error("Redis is unavailable")]
    Redis,
    /// 503: the Panorama database is unreachable (detail logged).
    #[error("the Panorama database is unavailable")]
    DbUnavailable,
    /// 500: a bug or an unexpected failure (detail logged).
    #[error("internal error")]
    Internal,
}

impl WebError {
    /// Logs a Redis failure naming what was read, and returns the 503.
    pub fn redis_failed(what: &str, err: &redis::RedisError) -> Self {
        error!(
            "webapp: redis {what} failed: {}",
            crate::store::redis_conn::describe(err)
        );
        WebError::Redis
    }

    /// Logs a database failure naming the query, and returns the 503 (unreachable) or 500.
    pub fn db_failed(what: &str, err: &crate::db::DbError) -> Self {
        error!("webapp: panorama {what} failed: {err}");
        if err.is_unavailable() {
            WebError::DbUnavailable
        } else {
            WebError::Internal
        }
    }

    /// Logs an unexpected failure and returns the 500.
    pub fn internal(what: &str, detail: &dyn std::fmt::Display) -> Self {
        error!("webapp: {what}: {detail}");
        WebError::Internal
    }
}

#[derive(Serialize)]
struct Body {
    code: u16,
    message: String,
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Unauthorized => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::PanoramaDisabled
            | WebError::GraphiteNotConfigured
            | WebError::Redis
            | WebError::DbUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Graphite => StatusCode::BAD_GATEWAY,
            WebError::GraphiteTimeout => StatusCode::GATEWAY_TIMEOUT,
            WebError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut res = HttpResponse::build(status);
        if matches!(self, WebError::Unauthorized) {
            res.insert_header((header::WWW_AUTHENTICATE, super::auth::CHALLENGE));
        }
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .json(Body {
                code: status.as_u16(),
                message: self.to_string(),
            })
    }
}

/// A [`WebError`] on an HTML page: same status, an HTML body.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct PageError(#[from] pub WebError);

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut res = HttpResponse::build(status);
        if matches!(self.0, WebError::Unauthorized) {
            res.insert_header((header::WWW_AUTHENTICATE, super::auth::CHALLENGE));
        }
        res.insert_header((header::CACHE_CONTROL, "no-store"))
            .content_type("text/html; charset=utf-8")
            .body(error_page(status, &self.0.to_string()))
    }
}

/// A self-contained error page (no template, so it cannot fail), escaped.
pub fn error_page(status: StatusCode, message: &str) -> String {
    let reason = status.canonical_reason().unwrap_or("Error");
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {reason} · Skyline</title>\
         <link rel=\"stylesheet\" href=\"/assets/skyline.css\"><link rel=\"icon\" href=\"/assets/favicon.svg\"></head>\
         <body><header class=\"topbar\"><a class=\"brand\" href=\"/\"><img src=\"/assets/favicon.svg\" alt=\"\" width=\"22\" height=\"22\"><span>Skyline</span></a>\
         <nav class=\"mainnav\" aria-label=\"Main\"><a href=\"/\">Now</a><a href=\"/panorama\">Panorama</a><a href=\"/rebrow\">rebrow</a>\
         <a href=\"/monitor\">Monitor</a><a href=\"/errors\">Errors</a><a href=\"/docs\">Docs</a></nav></header>\
         <main class=\"error-page\"><h1>{code} {reason}</h1><p>{msg}</p><p><a href=\"/\">Back to the Now view</a></p></main></body></html>",
        code = status.as_u16(),
        reason = super::templates::escape_html(reason),
        msg = super::templates::escape_html(message),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies() {
        assert_eq!(WebError::Graphite.status_code(), StatusCode::BAD_GATEWAY);
        assert_eq!(
            WebError::BadRequest("x".into()).status_code(),
            StatusCode::BAD_REQUEST
        );
        let r = WebError::Unauthorized.error_response();
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
        let page = error_page(StatusCode::NOT_FOUND, "no key <script>");
        assert!(page.contains("no key &lt;script&gt;"));
        assert!(!page.contains("<script>"));
        // The navigation of every page, so a lost user can go on.
        for link in [
            "href=\"/panorama\"",
            "href=\"/rebrow\"",
            "href=\"/docs\"",
            "class=\"mainnav\"",
        ] {
            assert!(page.contains(link), "{link}: {page}");
        }
    }
}
