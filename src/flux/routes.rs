//! The flux routes, mounted by `app::start_http` beside the webapp's. They are not behind the
//! webapp's basic auth: flux authenticates every request by API key.
//!
//! | path | method | handler |
//! |---|---|---|
//! | `/flux/metric_data` | GET | [`handlers::metric_data`] |
//! | `/flux/metric_data_post` | POST | [`handlers::metric_data_post`] |
//! | `/flux/populate_metric` | POST | [`handlers::populate_metric`] |
//! | `/flux/prometheus/write`, `/api/v1/write` | POST | [`remote_write::write`] (when `prometheus_enabled`) |
//!
//! Other methods on these paths get 405 with a JSON body. The handlers need a
//! `web::Data<FluxState>` registered on the app.
//!
//! Backpressure: see [`handlers`].

use actix_web::web;

use super::handlers;
use super::remote_write;

/// Registers the flux routes under `/flux` (and `/api/v1/write` with `prometheus_enabled`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    configure_with(cfg, true);
}

/// As [`configure`], with the remote_write routes only when `prometheus` is true.
pub fn configure_with(cfg: &mut web::ServiceConfig, prometheus: bool) {
    if prometheus {
        cfg.service(
            web::resource("/api/v1/write")
                .route(web::post().to(remote_write::write))
                .default_service(web::to(handlers::post_only)),
        );
    }
    let mut scope = web::scope("/flux");
    if prometheus {
        scope = scope.service(
            web::resource("/prometheus/write")
                .route(web::post().to(remote_write::write))
                .default_service(web::to(handlers::post_only)),
        );
    }
    cfg.service(
        scope
            .service(
                web::resource("/metric_data")
                    .route(web::get().to(handlers::metric_data))
                    .default_service(web::to(handlers::get_only)),
            )
            .service(
                web::resource("/metric_data_post")
                    .route(web::post().to(handlers::metric_data_post))
                    .default_service(web::to(handlers::post_only)),
            )
            .service(
                web::resource("/populate_metric")
                    .route(web::post().to(handlers::populate_metric))
                    .default_service(web::to(handlers::post_only)),
            ),
    );
}
