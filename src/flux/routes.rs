//! The flux routes, mounted by `app::start_http` beside the webapp's. They are not behind the
//! webapp's basic auth: flux authenticates every request by API key.
//!
//! | path | method | handler |
//! |---|---|---|
//! | `/flux/metric_data` | GET | [`handlers::metric_data`] |
//! | `/flux/metric_data_post` | POST | [`handlers::metric_data_post`] |
//! | `/flux/populate_metric` | POST | [`handlers::populate_metric`] |
//!
//! Other methods on these paths get 405 with a JSON body. The handlers need a
//! `web::Data<FluxState>` registered on the app.
//!
//! Backpressure: see [`handlers`].

use actix_web::web;

use super::handlers;

/// Registers the flux routes under `/flux`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/flux")
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
