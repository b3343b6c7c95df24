//! `[webapp]`: the dashboard and HTTP API settings.

use serde::{Deserialize, Serialize};

/// `[webapp]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WebappSettings {
    /// Serve the dashboard, APIs and flux.
    pub enabled: bool,
    /// Listen address (`WEBAPP_IP:WEBAPP_PORT`).
    pub bind: String,
    /// HTTP basic-auth user.
    pub auth_user: String,
    /// HTTP basic-auth password. Empty = generated at first start, stored with mode 0600
    /// under `[data] dir` and printed once.
    pub auth_password: String,
    /// Client addresses or CIDR ranges allowed on every route (403 otherwise).
    pub allowed_ips: Vec<String>,
    /// Time zone of the pages: `browser` or an IANA name such as `UTC`.
    pub timezone: String,
    /// Allow rebrow to delete keys.
    pub rebrow_writable: bool,
}

impl Default for WebappSettings {
    fn default() -> Self {
        WebappSettings {
            enabled: true,
            bind: "127.0.0.1:1500".into(),
            auth_user: "admin".into(),
            auth_password: String::new(),
            allowed_ips: vec!["127.0.0.1".into(), "::1".into()],
            timezone: "browser".into(),
            rebrow_writable: false,
        }
    }
}

impl WebappSettings {
    /// Adds every problem to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        if self.auth_user.is_empty() {
            problems.push("[webapp] auth_user: must not be empty".into());
        }
        for ip in &self.allowed_ips {
            let addr = ip.split('/').next().unwrap_or("");
            if addr.parse::<std::net::IpAddr>().is_err() {
                problems.push(format!("[webapp] allowed_ips: {ip:?} is not an IP or CIDR"));
            }
        }
    }
}
