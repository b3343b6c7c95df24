//! The syslog alerter (Skyline G's `alert_syslog`): `<context> - Anomalous metric: <name>
//! (value: <v>)` at facility `local4`, severity warning, ident `skyline`, as RFC 3164 (what
//! Python's `syslog` module writes) or RFC 5424, to a unix datagram socket (`/dev/log`) or
//! a UDP address. One datagram per alert; a send error is retried by the delivery worker.
//! Thunder events go at severity err when firing and notice when recovered. Timestamps are
//! UTC. Backpressure: a datagram send never waits on a reader; a missing socket is an error
//! retried by the delivery task.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::config::{facility_code, SyslogSettings};
use super::error::AlertError;
use super::messages::SystemStatus;
use super::notification::{utc_fields, Notification};

/// Severity codes used.
pub const WARNING: u8 = 4;
/// Thunder firing.
pub const ERR: u8 = 3;
/// Thunder recovered.
pub const NOTICE: u8 = 5;

/// Where datagrams go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A unix datagram socket such as `/dev/log`.
    Unix(PathBuf),
    /// `host:port` over UDP.
    Udp(String),
}

/// RFC 3164 or RFC 5424.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `<PRI>Mmm dd hh:mm:ss [host ]ident[pid]: msg`.
    Rfc3164,
    /// `<PRI>1 timestamp host ident pid - - msg`.
    Rfc5424,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// One header fields set, for [`format_line`].
#[derive(Debug, Clone)]
pub struct Header<'a> {
    /// RFC.
    pub format: Format,
    /// Facility code (local4 = 20).
    pub facility: u8,
    /// Severity code.
    pub severity: u8,
    /// Tag / APP-NAME.
    pub ident: &'a str,
    /// HOSTNAME (omitted in RFC 3164 lines for the local socket, as glibc does).
    pub hostname: Option<&'a str>,
    /// PROCID.
    pub pid: u32,
}

/// Formats one syslog line. Pure. `epoch_ms` is the UTC wall clock.
pub fn format_line(h: &Header<'_>, epoch_ms: i64, msg: &str) -> String {
    let pri = u16::from(h.facility) * 8 + u16::from(h.severity);
    let secs = epoch_ms.div_euclid(1000);
    let (y, mo, d, hh, mi, ss) = utc_fields(secs);
    let msg: String = msg.chars().filter(|c| *c != '\n' && *c != '\r').collect();
    let mut line = match h.format {
        Format::Rfc3164 => {
            let month = MONTHS[(mo as usize).saturating_sub(1).min(11)];
            let host = h.hostname.map(|n| format!("{n} ")).unwrap_or_default();
            format!(
                "<{pri}>{month} {d:>2} {hh:02}:{mi:02}:{ss:02} {host}{}[{}]: {msg}",
                h.ident, h.pid
            )
        }
        Format::Rfc5424 => format!(
            "<{pri}>1 {y:04}-{mo:02}-{d:02}T{hh:02}:{mi:02}:{ss:02}.{:03}Z {} {} {} - - {msg}",
            epoch_ms.rem_euclid(1000),
            h.hostname.filter(|n| !n.is_empty()).unwrap_or("-"),
            h.ident,
            h.pid
        ),
    };
    let cap = match h.format {
        Format::Rfc3164 => 1024,
        Format::Rfc5424 => 2048,
    };
    if line.len() > cap {
        let mut end = cap;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    line
}

/// Delivers to syslog.
#[derive(Debug, Clone)]
pub struct SyslogAlerter {
    target: Target,
    format: Format,
    facility: u8,
    ident: String,
    hostname: String,
}

impl SyslogAlerter {
    /// From `[alerters.syslog]` (validated at load); `hostname` goes in UDP and RFC 5424 lines.
    pub fn new(s: &SyslogSettings, hostname: &str) -> Result<Self, AlertError> {
        let addr = s.address.trim();
        let target = if addr.starts_with('/') {
            Target::Unix(PathBuf::from(addr))
        } else {
            Target::Udp(addr.strip_prefix("udp://").unwrap_or(addr).to_string())
        };
        Ok(SyslogAlerter {
            target,
            format: if s.format == "rfc5424" {
                Format::Rfc5424
            } else {
                Format::Rfc3164
            },
            facility: facility_code(&s.facility).ok_or_else(|| AlertError::Config {
                alerter: "syslog",
                message: format!("unknown facility {:?}", s.facility),
            })?,
            ident: s.ident.clone(),
            hostname: hostname.to_string(),
        })
    }

    /// `/dev/log` or `host:port`.
    pub fn peer(&self) -> String {
        match &self.target {
            Target::Unix(p) => p.display().to_string(),
            Target::Udp(a) => a.clone(),
        }
    }

    /// The line for `n` at `epoch_ms`.
    pub fn line(&self, n: &Notification, epoch_ms: i64) -> String {
        let severity = match n {
            Notification::Anomaly(_) => WARNING,
            Notification::System(s) if s.status == SystemStatus::Firing => ERR,
            Notification::System(_) => NOTICE,
        };
        let hostname = match (&self.target, self.format) {
            (Target::Unix(_), Format::Rfc3164) => None,
            _ => Some(self.hostname.as_str()),
        };
        let h = Header {
            format: self.format,
            facility: self.facility,
            severity,
            ident: &self.ident,
            hostname,
            pid: std::process::id(),
        };
        format_line(&h, epoch_ms, &n.headline())
    }

    /// Sends one datagram.
    pub async fn send(&self, n: &Notification) -> Result<(), AlertError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let line = self.line(n, now);
        let err = |source| AlertError::Syslog {
            peer: self.peer(),
            source,
        };
        match &self.target {
            Target::Unix(path) => {
                let sock = tokio::net::UnixDatagram::unbound().map_err(err)?;
                sock.send_to(line.as_bytes(), path).await.map_err(err)?;
            }
            Target::Udp(addr) => {
                let peer = tokio::net::lookup_host(addr.as_str())
                    .await
                    .map_err(err)?
                    .next()
                    .ok_or_else(|| err(std::io::Error::other("address did not resolve")))?;
                let bind = if peer.is_ipv6() {
                    "[::]:0"
                } else {
                    "0.0.0.0:0"
                };
                let sock = tokio::net::UdpSocket::bind(bind).await.map_err(err)?;
                sock.send_to(line.as_bytes(), peer).await.map_err(err)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3164_like_python_syslog() {
        let h = Header {
            format: Format::Rfc3164,
            facility: 20,
            severity: WARNING,
            ident: "skyline",
            hostname: None,
            pid: 42,
        };
        // 2025-11-01 02:00:00 UTC
        let line = format_line(
            &h,
            1_761_962_400_000,
            "Analyzer - Anomalous metric: a.b (value: 1.0)",
        );
        assert_eq!(
            line,
            "<164>Nov  1 02:00:00 skyline[42]: Analyzer - Anomalous metric: a.b (value: 1.0)"
        );
    }

    #[test]
    fn rfc5424_with_host_and_millis() {
        let h = Header {
            format: Format::Rfc5424,
            facility: 20,
            severity: WARNING,
            ident: "skyline",
            hostname: Some("h1"),
            pid: 7,
        };
        let line = format_line(&h, 1_761_962_400_123, "x\ny");
        assert_eq!(line, "<164>1 2025-11-01T02:00:00.123Z h1 skyline 7 - - xy");
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let h = Header {
            format: Format::Rfc3164,
            facility: 20,
            severity: WARNING,
            ident: "skyline",
            hostname: Some("h"),
            pid: 1,
        };
        let line = format_line(&h, 0, &"é".repeat(2000));
        assert!(line.len() <= 1024);
    }
}
