//! What the HTTP middleware hands to the monitor writer, and the identity a request carries.

use serde::{Deserialize, Serialize};

/// Who made a request: set in the request's extensions by basic auth (the user name, or the
/// guest user) and by flux (`flux key <prefix>`, never the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity(pub String);

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

/// What goes through the writer's bounded queue.
#[derive(Debug, Clone)]
pub enum Record {
    /// A request.
    Request(RequestRecord),
    /// An outlier (its request is sent as a `Request` too).
    Outlier(Box<OutlierRecord>),
}

/// Writes what is queued now and answers when it is in the database (or failed).
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "Result<usize, String>")]
pub struct FlushMonitor;
