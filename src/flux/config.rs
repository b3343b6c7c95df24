//! `[flux]`: HTTP metric submission settings.

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

/// `[flux]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FluxSettings {
    /// Serve `/flux/*` on `[webapp] bind`.
    pub enabled: bool,
    /// Accepted API keys.
    pub api_keys: Vec<ApiKey>,
    /// carbon's pickle receiver that accepted points are forwarded to. Empty = no forwarding.
    pub carbon_pickle_addr: String,
    /// Also feed accepted points straight into our own metric actors.
    pub feed_horizon: bool,
    /// Points older than this are refused.
    pub max_age_secs: i64,
}

impl Default for FluxSettings {
    fn default() -> Self {
        FluxSettings {
            enabled: true,
            api_keys: Vec::new(),
            carbon_pickle_addr: "127.0.0.1:2004".into(),
            feed_horizon: true,
            max_age_secs: 86_400,
        }
    }
}

impl FluxSettings {
    /// Adds every problem to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        for k in &self.api_keys {
            let key = match k {
                ApiKey::Plain(s) => s,
                ApiKey::WithPrefix { key, .. } => key,
            };
            if key.len() < 8 {
                problems.push("[flux] api_keys: every key must be at least 8 characters".into());
            }
        }
    }
}
