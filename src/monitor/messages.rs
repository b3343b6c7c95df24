//! What the HTTP middleware hands to the monitor writer, and the identity a request carries.
//!
//! Request records reach the writer through a [`HitSource`]: the webapp's in-memory monitor
//! keeps them, compact, beside its per-route figures (under the lock it takes per request
//! anyway) and the writer takes them all at once every `flush_ms`, as [`Hit`]s (route,
//! method, version and user shared `Arc<str>`s, the client IP an address formatted by the
//! writer). Outliers, rare, go through the bounded channel as [`Record`]s. [`RequestRecord`]
//! is a record as read back from the database.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Who made a request: set in the request's extensions by basic auth (the user name, or the
/// guest user) and by flux (`flux key <prefix>`, never the secret). Shared: a record takes a
/// reference, not a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(pub Arc<str>);

/// Where a request's time went, µs (spans around those calls; the rest is `other`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breakdown {
    /// Redis commands.
    pub redis_us: u64,
    /// SQL (Panorama database) operations.
    pub sql_us: u64,
    /// graphite-web requests.
    pub graphite_us: u64,
    /// Template rendering.
    pub template_us: u64,
}

impl Breakdown {
    /// The rest of `total_us`.
    pub fn other_us(&self, total_us: u64) -> u64 {
        total_us.saturating_sub(self.redis_us + self.sql_us + self.graphite_us + self.template_us)
    }

    /// The largest part's name (`redis`, `sql`, `graphite`, `template` or `other`).
    pub fn dominant(&self, total_us: u64) -> &'static str {
        let parts = [
            ("redis", self.redis_us),
            ("sql", self.sql_us),
            ("graphite", self.graphite_us),
            ("template", self.template_us),
            ("other", self.other_us(total_us)),
        ];
        parts
            .iter()
            .max_by_key(|p| p.1)
            .map(|p| p.0)
            .unwrap_or("other")
    }
}

/// One monitored request (level ≥ 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// When it finished, epoch milliseconds.
    pub time_ms: i64,
    /// Route pattern (`/api`), `(unmatched)` for a path no route matched.
    pub route: String,
    /// HTTP method.
    pub method: String,
    /// Response status.
    pub status: u16,
    /// Duration until the response head, µs.
    pub duration_us: u64,
    /// Version label of the daemon that served it.
    pub version: String,
    /// Client IP (the TCP peer).
    pub ip: String,
    /// Authenticated user, `flux key <prefix>`, or empty.
    pub user: String,
    /// Group tag (`[monitor] group_header`), if any.
    pub group: Option<String>,
    /// Level 3: where its time went.
    pub breakdown: Option<Breakdown>,
}

/// The client address of a [`Hit`]: the TCP peer as an address (formatted by the writer, off
/// the request path), or a text (records converted from a [`RequestRecord`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientIp {
    /// No peer address.
    Unknown,
    /// The TCP peer.
    Addr(IpAddr),
    /// As stored.
    Text(Arc<str>),
}

impl ClientIp {
    /// The text stored in the `ip` column.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        match self {
            ClientIp::Unknown => std::borrow::Cow::Borrowed(""),
            ClientIp::Addr(a) => std::borrow::Cow::Owned(a.to_string()),
            ClientIp::Text(t) => std::borrow::Cow::Borrowed(&**t),
        }
    }
}

/// One monitored request as the writer takes it (level ≥ 1): [`RequestRecord`]'s fields,
/// the repeated strings shared.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// When it finished, epoch milliseconds.
    pub time_ms: i64,
    /// Route pattern (`/api`), `(unmatched)` for a path no route matched.
    pub route: Arc<str>,
    /// HTTP method.
    pub method: Arc<str>,
    /// Response status.
    pub status: u16,
    /// Duration until the response head, µs.
    pub duration_us: u64,
    /// Version label of the daemon that served it.
    pub version: Arc<str>,
    /// Client IP (the TCP peer).
    pub ip: ClientIp,
    /// Authenticated user, `flux key <prefix>`, or none.
    pub user: Option<Arc<str>>,
    /// Group tag (`[monitor] group_header`), if any.
    pub group: Option<Box<str>>,
    /// Level 3: where its time went.
    pub breakdown: Option<Breakdown>,
}

impl Hit {
    /// The record as it is stored and read back.
    pub fn to_record(&self) -> RequestRecord {
        RequestRecord {
            time_ms: self.time_ms,
            route: self.route.to_string(),
            method: self.method.to_string(),
            status: self.status,
            duration_us: self.duration_us,
            version: self.version.to_string(),
            ip: self.ip.text().into_owned(),
            user: self.user.as_deref().unwrap_or("").to_string(),
            group: self.group.as_deref().map(str::to_string),
            breakdown: self.breakdown,
        }
    }
}

impl From<&RequestRecord> for Hit {
    fn from(r: &RequestRecord) -> Hit {
        Hit {
            time_ms: r.time_ms,
            route: r.route.as_str().into(),
            method: r.method.as_str().into(),
            status: r.status,
            duration_us: r.duration_us,
            version: r.version.as_str().into(),
            ip: ClientIp::Text(r.ip.as_str().into()),
            user: (!r.user.is_empty()).then(|| r.user.as_str().into()),
            group: r.group.as_deref().map(Into::into),
            breakdown: r.breakdown,
        }
    }
}

/// A request slower than `outlier_factor` × its route's mean, with its context (level ≥ 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutlierRecord {
    /// The request.
    pub request: RequestRecord,
    /// Its route's mean when it happened, µs.
    pub route_mean_us: u64,
    /// Query string, secrets redacted.
    pub query: String,
    /// Request headers as `name: value` lines; `Authorization`, cookies and secret-looking
    /// headers redacted.
    pub headers: String,
    /// Process CPU use since the previous sample, percent of one core.
    pub cpu_percent: f64,
    /// Process resident memory, bytes.
    pub rss_bytes: u64,
    /// Where its time went.
    pub breakdown: Breakdown,
}

/// Where the writer takes request records from: kept in memory by the HTTP middleware (at
/// most `[monitor] queue_max`; more are dropped and counted, the request never waits) until
/// the writer takes them all at once.
pub trait HitSource: Send + Sync {
    /// Moves every record kept so far to the end of `out`, oldest first.
    fn take_hits(&self, out: &mut Vec<Hit>);
}

/// What goes through the writer's bounded channel.
#[derive(Debug, Clone)]
pub enum Record {
    /// A request.
    Request(Hit),
    /// An outlier (its request is sent as a `Request` too).
    Outlier(Box<OutlierRecord>),
}

/// Writes what is queued now and answers when it is in the database (or failed).
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "Result<usize, String>")]
pub struct FlushMonitor;
