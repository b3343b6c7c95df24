//! `[flux]`: HTTP metric submission settings. Every key is documented (with its default and
//! the Skyline setting it replaces) in `conf/skyline.toml`.
//!
//! Backpressure: this module only declares the bounds — `max_body_bytes` (413),
//! `queue_max_points` (503 + `retry_after_secs`), `carbon_max_pending_points` and
//! `carbon_spool_max_bytes` (memory, then disk, then counted drops) — enforced by the handlers,
//! the forwarder and its outbox.

use serde::{Deserialize, Serialize};

/// One API key: a plain string, or a table with a namespace prefix.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ApiKey {
    /// `"key"`
    Plain(String),
    /// `{ key = "…", prefix = "…" }`: the prefix is prepended to every metric it submits.
    WithPrefix {
        /// The key.
        key: String,
        /// Namespace prefix.
        #[serde(default)]
        prefix: String,
    },
}

impl ApiKey {
    /// The secret.
    pub fn key(&self) -> &str {
        match self {
            ApiKey::Plain(k) | ApiKey::WithPrefix { key: k, .. } => k,
        }
    }

    /// The namespace prefix, without surrounding dots; empty for none.
    pub fn prefix(&self) -> &str {
        match self {
            ApiKey::Plain(_) => "",
            ApiKey::WithPrefix { prefix, .. } => prefix.trim_matches('.'),
        }
    }
}

/// `[flux]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FluxSettings {
    /// Serve `/flux/*` on `[webapp] bind`.
    pub enabled: bool,
    /// Accepted API keys (`FLUX_API_KEYS`).
    pub api_keys: Vec<ApiKey>,
    /// carbon's pickle receiver that accepted points are forwarded to
    /// (`FLUX_CARBON_HOST:FLUX_CARBON_PICKLE_PORT`). Empty = no forwarding.
    pub carbon_pickle_addr: String,
    /// Also feed accepted points straight into our own metric actors.
    pub feed_horizon: bool,
    /// Points older than this are refused (`FLUX_MAX_AGE`).
    pub max_age_secs: i64,
    /// Points further than this in the future are refused (Skyline: 60 s).
    pub max_future_skew_secs: i64,
    /// Largest request body, after gzip decompression (Skyline's nginx: 1024K). Bigger: 413.
    pub max_body_bytes: usize,
    /// Drop points whose timestamp is not newer than `flux.last.<metric>`
    /// (`FLUX_CHECK_LAST_TIMESTAMP`).
    pub check_last_timestamp: bool,
    /// TTL of the `flux.last.<metric>` keys (Skyline: 3600 s).
    pub last_timestamp_ttl_secs: u64,
    /// New last timestamps are written to Redis this often, coalesced per metric (the
    /// forwarder de-duplicates from memory meanwhile).
    pub last_timestamp_flush_ms: u64,
    /// Datapoints accepted over HTTP and not yet de-duplicated and handed on. Beyond it,
    /// requests get 503 with `Retry-After`.
    pub queue_max_points: usize,
    /// The `Retry-After` seconds sent with a 503.
    pub retry_after_secs: u64,
    /// Datapoints per pickle frame sent to carbon (carbon's `MAX_DATAPOINTS_PER_MESSAGE`);
    /// frames are also kept under 1 MiB, carbon's receive cap.
    pub carbon_chunk_points: usize,
    /// Unsent datapoints kept in memory for carbon; beyond it they are spooled to disk under
    /// `[data] dir`/`flux-spool`.
    pub carbon_max_pending_points: usize,
    /// Bytes of pickle frames the disk spool may hold; beyond it datapoints for carbon are
    /// dropped (counted, logged).
    pub carbon_spool_max_bytes: u64,
    /// Longest wait between reconnection attempts to carbon (back-off starts at 100 ms).
    pub carbon_reconnect_max_secs: u64,
    /// Serve Prometheus remote_write on `/flux/prometheus/write` and `/api/v1/write`.
    pub prometheus_enabled: bool,
    /// Largest snappy-compressed remote_write body; bigger: 413.
    pub prometheus_max_body_bytes: usize,
    /// Largest decompressed remote_write body (checked before allocating); bigger: 400.
    pub prometheus_max_decompressed_bytes: usize,
    /// Longest canonical series name `name{a="1",…}`, in bytes.
    pub prometheus_max_name_bytes: usize,
    /// Most labels per series, `__name__` included.
    pub prometheus_max_labels: usize,
    /// Most series in one remote_write request.
    pub prometheus_max_series_per_request: usize,
    /// Most distinct Prometheus series written within `prometheus_series_idle_secs`; a request
    /// that would add more is refused (400, counted).
    pub prometheus_max_series: usize,
    /// A series not written for this long no longer counts against `prometheus_max_series`.
    pub prometheus_series_idle_secs: u64,
}

impl Default for FluxSettings {
    fn default() -> Self {
        FluxSettings {
            enabled: true,
            api_keys: Vec::new(),
            carbon_pickle_addr: "127.0.0.1:2004".into(),
            feed_horizon: true,
            max_age_secs: 86_400,
            max_future_skew_secs: 60,
            max_body_bytes: 1 << 20,
            check_last_timestamp: true,
            last_timestamp_ttl_secs: 3600,
            last_timestamp_flush_ms: 1000,
            queue_max_points: 500_000,
            retry_after_secs: 5,
            carbon_chunk_points: 500,
            carbon_max_pending_points: 500_000,
            carbon_spool_max_bytes: 1 << 30,
            carbon_reconnect_max_secs: 10,
            prometheus_enabled: true,
            prometheus_max_body_bytes: 8 << 20,
            prometheus_max_decompressed_bytes: 64 << 20,
            prometheus_max_name_bytes: 2048,
            prometheus_max_labels: 32,
            prometheus_max_series_per_request: 50_000,
            prometheus_max_series: 200_000,
            prometheus_series_idle_secs: 3600,
        }
    }
}

impl FluxSettings {
    /// Adds every problem to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        let mut seen = std::collections::HashSet::new();
        for k in &self.api_keys {
            let key = k.key();
            if key.chars().count() < 8 {
                problems.push("[flux] api_keys: every key must be at least 8 characters".into());
            }
            if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
                problems.push(
                    "[flux] api_keys: keys must not contain spaces or control characters".into(),
                );
            }
            if !seen.insert(key) {
                problems.push("[flux] api_keys: a key is listed twice".into());
            }
            let prefix = k.prefix();
            if !prefix.is_empty() {
                if let Err(why) = super::validate::check_name(prefix) {
                    problems.push(format!("[flux] api_keys: prefix {prefix:?}: {why}"));
                }
            }
        }
        let addr = self.carbon_pickle_addr.trim();
        if !addr.is_empty() {
            let port_ok = addr
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                problems.push(format!(
                    "[flux] carbon_pickle_addr: {addr:?} is not host:port (empty = no forwarding)"
                ));
            }
        }
        if self.enabled && addr.is_empty() && !self.feed_horizon {
            problems.push(
                "[flux] carbon_pickle_addr is empty and feed_horizon = false: accepted points would go nowhere; set one of them".into(),
            );
        }
        if self.max_age_secs <= 0 {
            problems.push("[flux] max_age_secs: must be positive".into());
        }
        if self.max_future_skew_secs < 0 {
            problems.push("[flux] max_future_skew_secs: must not be negative".into());
        }
        if self.max_body_bytes < 1024 {
            problems.push("[flux] max_body_bytes: must be at least 1024".into());
        }
        if self.queue_max_points == 0 {
            problems.push("[flux] queue_max_points: must be positive".into());
        }
        if self.carbon_chunk_points == 0 {
            problems.push("[flux] carbon_chunk_points: must be positive".into());
        }
        if self.carbon_max_pending_points < self.carbon_chunk_points {
            problems
                .push("[flux] carbon_max_pending_points: must be >= carbon_chunk_points".into());
        }
        if self.carbon_reconnect_max_secs == 0 {
            problems.push("[flux] carbon_reconnect_max_secs: must be positive".into());
        }
        if self.last_timestamp_flush_ms == 0
            || self.last_timestamp_flush_ms > self.last_timestamp_ttl_secs.saturating_mul(500)
        {
            problems.push(
                "[flux] last_timestamp_flush_ms: must be positive and well under the TTL".into(),
            );
        }
        if self.last_timestamp_ttl_secs == 0 {
            problems.push("[flux] last_timestamp_ttl_secs: must be positive".into());
        }
        self.validate_prometheus(problems);
    }

    fn validate_prometheus(&self, problems: &mut Vec<String>) {
        if self.prometheus_max_body_bytes < 1024 {
            problems.push("[flux] prometheus_max_body_bytes: must be at least 1024".into());
        }
        if self.prometheus_max_decompressed_bytes < self.prometheus_max_body_bytes {
            problems.push(
                "[flux] prometheus_max_decompressed_bytes: must be >= prometheus_max_body_bytes"
                    .into(),
            );
        }
        let room = super::validate::MAX_NAME_BYTES;
        if !(16..=room).contains(&self.prometheus_max_name_bytes) {
            problems.push(format!(
                "[flux] prometheus_max_name_bytes: must be between 16 and {room}"
            ));
        }
        if self.prometheus_max_labels == 0 {
            problems.push("[flux] prometheus_max_labels: must be positive".into());
        }
        if self.prometheus_max_series_per_request == 0
            || self.prometheus_max_series_per_request > self.prometheus_max_series
        {
            problems.push(
                "[flux] prometheus_max_series_per_request: must be positive and <= prometheus_max_series"
                    .into(),
            );
        }
        if self.prometheus_series_idle_secs == 0 {
            problems.push("[flux] prometheus_series_idle_secs: must be positive".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_plain_and_with_prefix() {
        let s: FluxSettings = toml::from_str(
            r#"api_keys = ["abcdefgh12", { key = "ijklmnop34", prefix = "warehouse-1." }]"#,
        )
        .unwrap();
        assert_eq!(s.api_keys[0].key(), "abcdefgh12");
        assert_eq!(s.api_keys[0].prefix(), "");
        assert_eq!(s.api_keys[1].key(), "ijklmnop34");
        assert_eq!(s.api_keys[1].prefix(), "warehouse-1");
        let mut p = Vec::new();
        s.validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn bad_settings_reported() {
        let s = FluxSettings {
            api_keys: vec![
                ApiKey::Plain("short".into()),
                ApiKey::WithPrefix {
                    key: "long enough".into(),
                    prefix: "bad prefix".into(),
                },
            ],
            carbon_pickle_addr: "nohost".into(),
            max_body_bytes: 10,
            ..FluxSettings::default()
        };
        let mut p = Vec::new();
        s.validate(&mut p);
        let all = p.join("\n");
        assert!(all.contains("at least 8"), "{all}");
        assert!(all.contains("spaces"), "{all}");
        assert!(all.contains("prefix"), "{all}");
        assert!(all.contains("carbon_pickle_addr"), "{all}");
        assert!(all.contains("max_body_bytes"), "{all}");
    }
}
