//! Counting HTTP requests (webapp and flux) for the self-metrics: an actix-web middleware
//! function, wrapped around the whole `App` by `app::start_http`. It only increments atomics
//! after the response is produced; it never delays or alters a request.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use super::metrics as m;

/// Counts every answered request and its status class.
pub async fn count_requests(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let res = next.call(req).await;
    m::HTTP_REQUESTS.inc();
    let status = match &res {
        Ok(r) => r.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    if status.is_client_error() {
        m::HTTP_CLIENT_ERRORS.inc();
    } else if status.is_server_error() {
        m::HTTP_SERVER_ERRORS.inc();
    }
    res
}
