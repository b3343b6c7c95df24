//! `[webapp]`: the dashboard and HTTP API settings.

use serde::{Deserialize, Serialize};

/// The file under `[data] dir` holding the generated password (mode 0600).
pub const PASSWORD_FILE: &str = "webapp.password";

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
    /// under `[data] dir` ([`PASSWORD_FILE`]) and printed once.
    pub auth_password: String,
    /// Client addresses or CIDR ranges allowed on every route (403 otherwise).
    pub allowed_ips: Vec<String>,
    /// Time zone of the pages: `browser` or an IANA name such as `UTC` or `Europe/Paris`.
    pub timezone: String,
    /// Allow rebrow to delete keys.
    pub rebrow_writable: bool,
    /// How often the Now page polls for the current anomalies, seconds.
    pub refresh_secs: u64,
    /// Timeout of each Graphite render request (connect and answer), seconds.
    pub graphite_timeout_secs: u64,
    /// Most series of the `skyline_anomaly` gauge family on `/metrics` (the current anomalies);
    /// beyond it they are left out and counted.
    pub anomaly_gauge_max: usize,
    /// Read-only guest user (empty = none): sees every page, 403 on anything that changes
    /// state.
    pub guest_user: String,
    /// The guest's password (at least 8 characters when `guest_user` is set).
    pub guest_password: String,
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
            refresh_secs: 10,
            graphite_timeout_secs: 10,
            anomaly_gauge_max: 1000,
            guest_user: String::new(),
            guest_password: String::new(),
        }
    }
}

impl WebappSettings {
    /// Adds every problem to `problems`.
    pub fn validate(&self, problems: &mut Vec<String>) {
        if self.auth_user.is_empty() || self.auth_user.contains(':') {
            problems.push("[webapp] auth_user: must be non-empty and contain no ':'".into());
        }
        if !self.auth_password.is_empty() && self.auth_password.len() < 8 {
            problems.push(
                "[webapp] auth_password: at least 8 characters (or empty to generate one)".into(),
            );
        }
        for ip in &self.allowed_ips {
            if super::security::parse_net(ip).is_none() {
                problems.push(format!("[webapp] allowed_ips: {ip:?} is not an IP or CIDR"));
            }
        }
        if !valid_timezone(&self.timezone) {
            problems.push(format!(
                "[webapp] timezone: {:?} is neither \"browser\" nor an IANA zone name like \"UTC\" or \"Europe/Paris\"",
                self.timezone
            ));
        }
        if self.refresh_secs == 0 {
            problems.push("[webapp] refresh_secs: must be positive".into());
        }
        if self.graphite_timeout_secs == 0 {
            problems.push("[webapp] graphite_timeout_secs: must be positive".into());
        }
        if !self.guest_user.is_empty()
            && (self.guest_user.contains(':')
                || self.guest_user == self.auth_user
                || self.guest_password.len() < 8)
        {
            problems.push(
                "[webapp] guest_user / guest_password: a name without ':' other than auth_user, and a password of at least 8 characters".into(),
            );
        }
    }
}

/// `browser`, or something shaped like an IANA zone (`UTC`, `Etc/GMT+1`, `America/New_York`).
/// The browser resolves the name; an unknown one falls back to UTC with a notice on the page.
pub fn valid_timezone(tz: &str) -> bool {
    tz == "browser"
        || (!tz.is_empty()
            && tz.len() <= 64
            && tz
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '+'))
            && !tz.starts_with('/')
            && !tz.contains(".."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timezones() {
        for ok in [
            "browser",
            "UTC",
            "Etc/GMT+1",
            "America/New_York",
            "Europe/Paris",
        ] {
            assert!(valid_timezone(ok), "{ok}");
        }
        for bad in ["", "/etc/passwd", "Europe/Paris<script>", "a b", "x\"y"] {
            assert!(!valid_timezone(bad), "{bad}");
        }
    }

    #[test]
    fn validation() {
        let mut p = Vec::new();
        WebappSettings::default().validate(&mut p);
        assert!(p.is_empty(), "{p:?}");
        let s = WebappSettings {
            allowed_ips: vec!["10.0.0.0/8".into(), "nonsense".into(), "::1/128".into()],
            auth_password: "short".into(),
            ..Default::default()
        };
        s.validate(&mut p);
        assert_eq!(p.len(), 2, "{p:?}");
    }
}
