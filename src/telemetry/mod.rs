//! Logging and self-metrics.
//!
//! Owns: the log format and sinks (stderr, the `[logging] file`, an in-memory ring of the last
//! ERROR lines for `/errors`), every self-metric counter (declared once in [`metrics`]), the
//! actor sending them to Graphite ([`graphite::SelfMetrics`]); HTTP requests are counted by
//! the webapp's monitor middleware; and [`priority`], which background threads use to run
//! below the serving ones. No Redis keys, no tables. Writing a log line never
//! blocks on anything but the file write itself; counters are lock-free atomics; ERROR lines
//! are counted per Skyline app (`<app>.logged_errors`).
//!
//! Log line format: `2026-11-21T10:00:01.123Z ERROR horizon.listen :: error :: <message>`.
//! Operators grep the file for ` ERROR `; Skyline's own `error :: ` marker is kept so the
//! reference's greps keep working.

pub mod graphite;
pub mod metrics;
pub mod priority;
pub mod ratelimit;
pub mod text;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// How many recent ERROR lines `/errors` can show.
pub const ERROR_RING: usize = 500;

struct Sinks {
    path: Option<PathBuf>,
    file: Option<File>,
}

static SINKS: OnceLock<Mutex<Sinks>> = OnceLock::new();
static ERRORS: OnceLock<Mutex<VecDeque<String>>> = OnceLock::new();

fn sinks() -> &'static Mutex<Sinks> {
    SINKS.get_or_init(|| {
        Mutex::new(Sinks {
            path: None,
            file: None,
        })
    })
}

fn error_ring() -> &'static Mutex<VecDeque<String>> {
    ERRORS.get_or_init(|| Mutex::new(VecDeque::with_capacity(ERROR_RING)))
}

/// The writer env_logger formats into: stderr, plus the log file when configured.
struct Tee;

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A log write must never fail the caller: errors are swallowed here.
        let _ = io::stderr().write_all(buf);
        if let Ok(mut s) = sinks().lock() {
            if let Some(f) = s.file.as_mut() {
                let _ = f.write_all(buf);
            }
        }
        if buf.windows(7).any(|w| w == b" ERROR ") {
            if let Ok(mut ring) = error_ring().lock() {
                if ring.len() == ERROR_RING {
                    ring.pop_front();
                }
                ring.push_back(String::from_utf8_lossy(buf).trim_end().to_string());
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Ok(mut s) = sinks().lock() {
            if let Some(f) = s.file.as_mut() {
                let _ = f.flush();
            }
        }
        io::stderr().flush()
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)?;
        }
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Maps a module path to Skyline's component vocabulary for the log line.
fn component(target: &str) -> &str {
    let t = target.strip_prefix("skyline::").unwrap_or(target);
    match t.split("::").next().unwrap_or(t) {
        "listen" => "horizon.listen",
        "store" => "horizon.worker",
        "analyze" => "analyzer",
        "skyline" => "skyline",
        other => other,
    }
}

/// The `<app>.logged_errors` counter an ERROR record from `target` counts towards (Skyline's
/// `skyline.<app>.<host>.logged_errors`).
fn error_counter(target: &str) -> &'static metrics::Counter {
    let t = target.strip_prefix("skyline::").unwrap_or(target);
    match t.split("::").next().unwrap_or(t) {
        "listen" | "store" => &metrics::LOGGED_ERRORS_HORIZON,
        "analyze" | "alert" => &metrics::LOGGED_ERRORS_ANALYZER,
        "panorama" | "db" => &metrics::LOGGED_ERRORS_PANORAMA,
        "flux" => &metrics::LOGGED_ERRORS_FLUX,
        "webapp" => &metrics::LOGGED_ERRORS_WEBAPP,
        _ => &metrics::LOGGED_ERRORS_OTHER,
    }
}

/// Starts logging. `level` is an env_logger filter (`RUST_LOG` wins when set); `file` empty
/// means stderr only. Safe to call once per process; later calls only reopen the file.
pub fn init(level: &str, file: &str) -> io::Result<()> {
    let path = (!file.is_empty()).then(|| PathBuf::from(file));
    let opened = match &path {
        Some(p) => Some(open_log(p)?),
        None => None,
    };
    if let Ok(mut s) = sinks().lock() {
        s.path = path;
        s.file = opened;
    }
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_string());
    let result = env_logger::Builder::new()
        .parse_filters(&filter)
        .format(|buf, record| {
            let level = record.level();
            let msg = record.args().to_string();
            if level == log::Level::Error {
                error_counter(record.target()).inc();
            }
            let marker = if level == log::Level::Error && !msg.starts_with("error :: ") {
                "error :: "
            } else {
                ""
            };
            writeln!(
                buf,
                "{} {:<5} {} :: {}{}",
                buf.timestamp_millis(),
                level,
                component(record.target()),
                marker,
                msg
            )
        })
        .target(env_logger::Target::Pipe(Box::new(Tee)))
        .try_init();
    // A second init (tests, `skyline run` after a subcommand) keeps the first logger.
    let _ = result;
    Ok(())
}

/// Reopens the log file (SIGHUP, after logrotate moved it).
pub fn reopen() -> io::Result<()> {
    let mut s = sinks()
        .lock()
        .map_err(|_| io::Error::other("log sink lock poisoned"))?;
    if let Some(p) = s.path.clone() {
        s.file = Some(open_log(&p)?);
    }
    Ok(())
}

/// The most recent ERROR lines, newest first.
pub fn recent_errors(limit: usize) -> Vec<String> {
    error_ring()
        .lock()
        .map(|r| r.iter().rev().take(limit).cloned().collect())
        .unwrap_or_default()
}

/// The host name used in self-metric names and as Panorama's `added_by`: `configured` when
/// set (Skyline's `SERVER_METRICS_NAME`), else the machine's host name.
pub fn hostname(configured: &str) -> String {
    if !configured.is_empty() {
        return configured.to_string();
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Removes the password from a URL before it is logged or shown
/// (`mysql://u:secret@h/db` → `mysql://u:***@h/db`).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_string()
            };
            format!("{}{}@{}", &url[..scheme_end + 3], shown, &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("mysql://u:secret@h:3306/db"),
            "mysql://u:***@h:3306/db"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            redact_url("sqlite://data/x.sqlite"),
            "sqlite://data/x.sqlite"
        );
        assert!(!redact_url("postgres://a:b@c/d?x=@").contains(":b@"));
    }

    #[test]
    fn components() {
        assert_eq!(component("skyline::listen::pickle"), "horizon.listen");
        assert_eq!(component("skyline::store::shard"), "horizon.worker");
        assert_eq!(component("actix_server::builder"), "actix_server");
    }
}
