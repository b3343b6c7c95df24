//! Skyline's Redis key names, in one place. Every key the daemon writes is named here.

use crate::model::FULL_NAMESPACE;

/// The set of every metric key. It lives inside the metric key space, so a Graphite metric
/// named `unique_metrics` is refused rather than allowed to collide with it.
pub use crate::model::UNIQUE_METRICS;

/// Horizon's heartbeat (string, TTL 120 s, value = epoch).
pub const HORIZON_HEARTBEAT: &str = "horizon";

/// Roomba's record of when each key was last trimmed (hash full key → epoch).
pub const ROOMBA_LAST_TRIMMED: &str = "horizon.roomba.metrics_last_trimmed";

/// `metrics.<name>`: the concatenated msgpack pairs of one metric.
pub fn metric_key(name: &str) -> String {
    let mut k = String::with_capacity(FULL_NAMESPACE.len() + name.len());
    k.push_str(FULL_NAMESPACE);
    k.push_str(name);
    k
}

/// The Graphite name of a full key: strips only the *leading* `metrics.`.
pub fn base_name(full_key: &str) -> &str {
    full_key.strip_prefix(FULL_NAMESPACE).unwrap_or(full_key)
}

/// True for a name that would collide with the unique-metrics set.
pub fn is_reserved(name: &str) -> bool {
    name == "unique_metrics"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(metric_key("a.b"), "metrics.a.b");
        assert_eq!(base_name("metrics.metrics.x"), "metrics.x");
        assert_eq!(base_name("other"), "other");
        assert_eq!(metric_key("unique_metrics"), UNIQUE_METRICS);
        assert!(is_reserved("unique_metrics"));
    }
}
