//! The webapp's route table (see the table in the module docs of [`crate::webapp`]).
//!
//! `/health` is registered on its own, outside basic auth; everything else sits in one
//! empty-prefix scope wrapped by [`auth::require_auth`], so an unknown path answers 401 before
//! it answers 404. Flux's `/flux` scope must be registered before this one (it is, by
//! `app::start_http`), or this scope would claim its paths.

use actix_web::middleware::from_fn;
use actix_web::{web, HttpResponse};

use super::{
    api, auth, cluster, dashboard, docs, events, graphite, ionosphere, monitor, monitor_views,
    panorama, rebrow, PageError,
};
use super::{templates, WebError};

/// Registers every webapp route (state is registered by [`super::Webapp::configure`]).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/health").route(web::get().to(dashboard::health)))
        // Bearer token, not basic auth (machines); the allow-list still applies.
        .service(web::resource("/monitor/export").route(web::get().to(monitor_views::export)))
        .service(
            web::scope("")
                .wrap(from_fn(auth::require_auth))
                .service(web::resource(["/", "/now"]).route(web::get().to(dashboard::now)))
                .service(web::resource("/api").route(web::get().to(api::api)))
                .service(web::resource("/api/now").route(web::get().to(dashboard::now_json)))
                .service(web::resource("/api/cluster").route(web::get().to(cluster::api)))
                .service(
                    web::resource("/api/unique_metrics")
                        .route(web::get().to(api::unique_metrics_route)),
                )
                .service(web::resource("/api/anomalies").route(web::get().to(api::anomalies)))
                .service(
                    web::resource(["/render", "/render/"]).route(web::get().to(graphite::render)),
                )
                .service(
                    web::resource(["/events/get_data", "/events/get_data/"])
                        .route(web::get().to(events::get_data)),
                )
                .service(web::resource("/panorama").route(web::get().to(panorama::page)))
                .service(web::resource("/ionosphere").route(web::get().to(ionosphere::page)))
                .service(
                    web::resource("/api/ionosphere/profiles")
                        .route(web::get().to(ionosphere::profiles)),
                )
                .service(
                    web::resource("/api/ionosphere/matches")
                        .route(web::get().to(ionosphere::matches)),
                )
                .service(
                    web::resource("/api/ionosphere/series")
                        .route(web::get().to(ionosphere::series)),
                )
                .service(
                    web::resource("/api/ionosphere/train")
                        .route(web::post().to(ionosphere::train))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/api/ionosphere/enabled")
                        .route(web::post().to(ionosphere::set_enabled))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(
                    web::resource("/api/ionosphere/layers")
                        .route(web::post().to(ionosphere::create_layers))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(web::resource("/rebrow").route(web::get().to(rebrow::index)))
                .service(web::resource("/rebrow/key").route(web::get().to(rebrow::key)))
                .service(
                    web::resource("/rebrow/key/delete")
                        .route(web::post().to(rebrow::delete))
                        .default_service(web::to(method_not_allowed)),
                )
                .service(web::resource("/docs").route(web::get().to(docs::index)))
                .service(
                    web::resource("/docs/screenshots/{file}")
                        .route(web::get().to(docs::screenshot)),
                )
                .service(web::resource("/docs/{page}").route(web::get().to(docs::page)))
                .service(web::resource("/monitor").route(web::get().to(monitor::page)))
                .service(
                    web::resource(["/monitor/outlier/{id}", "/api/monitor/outlier/{id}"])
                        .route(web::get().to(monitor_views::outlier)),
                )
                .service(web::resource("/monitor/{view}").route(web::get().to(monitor_views::page)))
                .service(
                    web::resource("/api/monitor/{view}").route(web::get().to(monitor_views::api)),
                )
                .service(web::resource("/errors").route(web::get().to(dashboard::errors)))
                .service(web::resource("/metrics").route(web::get().to(dashboard::metrics)))
                .service(web::resource("/assets/{name}").route(web::get().to(asset)))
                .service(web::resource("/favicon.ico").route(web::get().to(favicon)))
                .default_service(web::to(not_found)),
        );
}

async fn asset(name: web::Path<String>) -> Result<HttpResponse, WebError> {
    let (content_type, body) =
        templates::asset(&name).ok_or_else(|| WebError::NotFound(format!("no asset {name:?}")))?;
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "private, max-age=300"))
        .body(body))
}

async fn favicon() -> Result<HttpResponse, WebError> {
    asset(web::Path::from("favicon.svg".to_string())).await
}

async fn not_found() -> Result<HttpResponse, PageError> {
    Err(WebError::NotFound("no such page".into()).into())
}

async fn method_not_allowed() -> Result<HttpResponse, WebError> {
    Err(WebError::MethodNotAllowed)
}
