//! Response security headers and the client address allow-list, both applied to every route
//! of the HTTP server (pages, APIs, `/health`, and flux).
//!
//! Headers: a Content-Security-Policy that allows only this origin's scripts and styles (no
//! inline script, no `eval`, no inline style attributes, no framing), `X-Frame-Options: DENY`,
//! `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
//! `Cross-Origin-Opener-Policy: same-origin`. Handlers may set their own value of any of them.
//!
//! Allow-list: `[webapp] allowed_ips` (addresses or CIDR ranges, default loopback only) is
//! checked against the TCP peer address (an IPv4-mapped IPv6 peer counts as its IPv4 address);
//! `X-Forwarded-For` is not trusted. Anything else gets 403 before any handler runs.
//!
//! HEAD: [`head_as_get`] answers HEAD wherever GET works (the GET's status and headers, no
//! body), so monitoring probes and `curl -I` do not get 405.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{web, ResponseError};
use ipnet::IpNet;
use log::warn;

use super::error::WebError;
use crate::telemetry::metrics as m;

/// The Content-Security-Policy of every response.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The security headers, as a middleware that adds each one unless the handler set it.
pub fn headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CSP))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
}

/// Parses `10.0.0.0/8`, `127.0.0.1` or `::1` (a bare address is a single-host range).
pub fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The client addresses allowed on every route.
#[derive(Debug, Clone)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

impl AllowList {
    /// From `[webapp] allowed_ips` (entries that do not parse were refused by validation and
    /// are skipped here: the list only ever narrows).
    pub fn new(entries: &[String]) -> Self {
        AllowList {
            nets: entries.iter().filter_map(|e| parse_net(e)).collect(),
        }
    }

    /// True when `ip` is inside one of the ranges.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip))
    }
}

static LAST_FORBIDDEN_LOG: AtomicU64 = AtomicU64::new(0);

/// Middleware: 403 unless the peer address is allowed (fails closed when the list is missing).
pub async fn allow_list(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let peer = req.peer_addr().map(|a| a.ip());
    let allowed = match (req.app_data::<web::Data<AllowList>>(), peer) {
        (Some(list), Some(ip)) => list.allows(ip),
        _ => false,
    };
    if allowed {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    m::HTTP_FORBIDDEN_IP.inc();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // A scan would flood the log: one line per 10 s, the counter has the total.
    if now.saturating_sub(LAST_FORBIDDEN_LOG.swap(now, Ordering::Relaxed)) >= 10 {
        warn!(
            "webapp: refused {} {} from {} (not in [webapp] allowed_ips)",
            req.method(),
            req.path(),
            peer.map(|p| p.to_string()).unwrap_or_else(|| "?".into())
        );
    }
    let res = WebError::Forbidden("forbidden: your address is not in [webapp] allowed_ips".into())
        .error_response();
    Ok(req.into_response(res).map_into_right_body())
}

/// Serves HEAD as GET without the body (RFC 9110: HEAD works wherever GET does). Routes are
/// registered for GET only; this runs before routing, so every GET route answers HEAD, and a
/// POST-only route answers HEAD with the same 405 as GET.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if req.method() != actix_web::http::Method::HEAD {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    req.head_mut().method = actix_web::http::Method::GET;
    let res = next.call(req).await?;
    let (req, res) = res.into_parts();
    let (head, _) = res.into_parts();
    Ok(ServiceResponse::new(req, head.set_body(()).map_into_boxed_body()).map_into_right_body())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_cidrs_and_mapped_v4() {
        let l = AllowList::new(&["127.0.0.1".into(), "10.1.0.0/16".into(), "::1".into()]);
        assert!(l.allows("127.0.0.1".parse().unwrap()));
        assert!(l.allows("::ffff:127.0.0.1".parse().unwrap()));
        assert!(l.allows("10.1.200.3".parse().unwrap()));
        assert!(l.allows("::1".parse().unwrap()));
        assert!(!l.allows("10.2.0.1".parse().unwrap()));
        assert!(!l.allows("127.0.0.2".parse().unwrap()));
        assert!(!AllowList::new(&[]).allows("127.0.0.1".parse().unwrap()));
        assert!(parse_net("nonsense").is_none());
        assert!(parse_net("fe80::/10").is_some());
    }

    #[test]
    fn csp_forbids_inline_script() {
        assert!(!CSP.contains("unsafe-inline"));
        assert!(!CSP.contains("unsafe-eval"));
        assert!(CSP.contains("frame-ancestors 'none'"));
    }
}
