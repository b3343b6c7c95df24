//! `SelfMetrics`: sends every self-metric to Graphite over the plaintext protocol
//! (`skyline.<component>.<host>.<name> <value> <timestamp>\n`), as Skyline's apps report
//! themselves.
//!
//! Once every `interval` (60 s, `[graphite] send_interval_secs`) it snapshots
//! [`ALL_COUNTERS`] and [`ALL_GAUGES`]: counters are sent as their increase since the previous
//! snapshot (Skyline's per-run, per-minute figures such as `total_analyzed`), gauges as their
//! value, durations kept in milliseconds are sent in seconds (Skyline's `run_time`). Names are
//! each metric's `graphite` template with `{host}` filled in; with an empty host the element is
//! left out, as Skyline does with an empty `SERVER_METRICS_NAME`.
//!
//! One TCP connection, kept open and reused; a write that fails or a connection the peer
//! closed is dropped and reconnected with back-off (1 s doubling to `reconnect_max`).
//! Backpressure: the actor never blocks anyone — it runs on its own timer, every connect and
//! write is an async task with a timeout, and lines carbon has not taken wait in memory up to
//! `max_pending_lines` (oldest dropped first, counted). No Redis keys, no tables.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use log::{error, info, warn};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::metrics::{self as m, ALL_COUNTERS, ALL_GAUGES};

/// How the sender is set up (from `[graphite]`).
#[derive(Debug, Clone)]
pub struct SelfMetricsSettings {
    /// carbon's plaintext receiver, `host:port`.
    pub addr: String,
    /// The `<host>` element (`SERVER_METRICS_NAME`).
    pub host: String,
    /// Time between snapshots.
    pub interval: Duration,
    /// Longest pause between reconnection attempts.
    pub reconnect_max: Duration,
    /// Lines kept while carbon is unreachable.
    pub max_pending_lines: usize,
}

/// The Graphite path of a metric template (`analyzer.{host}.run_time` →
/// `skyline.analyzer.<host>.run_time`).
pub fn graphite_name(template: &str, host: &str) -> String {
    if host.is_empty() {
        format!("skyline.{}", template.replace(".{host}", ""))
    } else {
        format!("skyline.{}", template.replace("{host}", host))
    }
}

/// One snapshot as plaintext lines. `prev` holds the counter values of the previous snapshot
/// (empty on the first) and is updated.
pub fn snapshot(host: &str, timestamp: i64, prev: &mut Vec<u64>) -> Vec<String> {
    let mut lines = Vec::with_capacity(ALL_COUNTERS.len() + ALL_GAUGES.len());
    if prev.len() != ALL_COUNTERS.len() {
        *prev = vec![0; ALL_COUNTERS.len()];
    }
    for (c, before) in ALL_COUNTERS.iter().zip(prev.iter_mut()) {
        let now = c.get();
        let delta = now.saturating_sub(*before);
        *before = now;
        lines.push(format!(
            "{} {delta} {timestamp}\n",
            graphite_name(c.graphite, host)
        ));
    }
    for g in ALL_GAUGES {
        let v = g.get();
        let value = if g.name.ends_with("_milliseconds") {
            format!("{:.3}", v as f64 / 1000.0)
        } else {
            v.to_string()
        };
        lines.push(format!(
            "{} {value} {timestamp}\n",
            graphite_name(g.graphite, host)
        ));
    }
    lines
}

/// The sender actor.
pub struct SelfMetrics {
    settings: SelfMetricsSettings,
    prev: Vec<u64>,
    pending: VecDeque<String>,
    stream: Option<TcpStream>,
    busy: bool,
    backoff: Duration,
    failing: bool,
}

impl SelfMetrics {
    /// A sender; start it on any arbiter.
    pub fn new(settings: SelfMetricsSettings) -> Self {
        SelfMetrics {
            settings,
            prev: Vec::new(),
            pending: VecDeque::new(),
            stream: None,
            busy: false,
            backoff: Duration::ZERO,
            failing: false,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let lines = snapshot(&self.settings.host, ts, &mut self.prev);
        self.pending.extend(lines);
        if !self.busy {
            let over = self
                .pending
                .len()
                .saturating_sub(self.settings.max_pending_lines);
            if over > 0 {
                self.pending.drain(..over);
                m::SELFMETRICS_DROPPED.add(over as u64);
            }
        }
        m::SELFMETRICS_PENDING.set(self.pending.len() as i64);
        self.flush(ctx);
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.busy || self.pending.is_empty() {
            return;
        }
        self.busy = true;
        let n = self.pending.len();
        let payload: String = self.pending.iter().map(String::as_str).collect();
        let stream = self.stream.take();
        let addr = self.settings.addr.clone();
        let fut = async move {
            let mut stream = match stream.filter(peer_still_open) {
                Some(s) => s,
                None => tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&addr))
                    .await
                    .map_err(|_| "connect timed out after 5 s".to_string())?
                    .map_err(|e| format!("connect: {e}"))?,
            };
            tokio::time::timeout(
                Duration::from_secs(10),
                stream.write_all(payload.as_bytes()),
            )
            .await
            .map_err(|_| "write timed out after 10 s".to_string())?
            .map_err(|e| format!("write: {e}"))?;
            Ok::<TcpStream, String>(stream)
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.busy = false;
            match res {
                Ok(stream) => {
                    act.stream = Some(stream);
                    act.pending.drain(..n.min(act.pending.len()));
                    m::SELFMETRICS_SENT.add(n as u64);
                    m::SELFMETRICS_PENDING.set(act.pending.len() as i64);
                    act.backoff = Duration::ZERO;
                    if act.failing {
                        act.failing = false;
                        info!(
                            "self-metrics: carbon {} reachable again; sent {n} lines",
                            act.settings.addr
                        );
                    }
                }
                Err(err) => {
                    act.stream = None;
                    m::SELFMETRICS_ERRORS.inc();
                    act.backoff = (act.backoff * 2)
                        .max(Duration::from_secs(1))
                        .min(act.settings.reconnect_max);
                    if act.failing {
                        warn!(
                            "self-metrics: carbon {}: {err}; {} lines waiting, retrying in {:?}",
                            act.settings.addr,
                            act.pending.len(),
                            act.backoff
                        );
                    } else {
                        act.failing = true;
                        error!(
                            "self-metrics: cannot send to carbon {} ([graphite] carbon_plaintext_addr): {err}; retrying in {:?}",
                            act.settings.addr, act.backoff
                        );
                    }
                    ctx.run_later(act.backoff, |act, ctx| act.flush(ctx));
                }
            }
        }));
    }
}

/// False when carbon closed the connection (a read would return end of file) or it errored;
/// carbon never writes to us, so "would block" means the connection is alive.
fn peer_still_open(s: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    match s.try_read(&mut buf) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
    }
}

impl Actor for SelfMetrics {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        info!(
            "self-metrics: sending to carbon {} every {:?} as skyline.<component>.{}.*",
            self.settings.addr, self.settings.interval, self.settings.host
        );
        // Baseline now, so the first batch carries one interval's increase.
        let _ = snapshot(&self.settings.host, 0, &mut self.prev);
        ctx.run_interval(self.settings.interval, |act, ctx| act.tick(ctx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_skyline() {
        assert_eq!(
            graphite_name("analyzer.{host}.run_time", "h1"),
            "skyline.analyzer.h1.run_time"
        );
        assert_eq!(
            graphite_name("horizon.{host}.worker.queue_size", ""),
            "skyline.horizon.worker.queue_size"
        );
    }

    #[test]
    fn counters_are_sent_as_increases() {
        let mut prev = Vec::new();
        let first = snapshot("h", 100, &mut prev);
        assert_eq!(first.len(), ALL_COUNTERS.len() + ALL_GAUGES.len());
        m::ALERTS_SENT.add(3);
        let second = snapshot("h", 160, &mut prev);
        let line = second
            .iter()
            .find(|l| l.starts_with("skyline.analyzer.h.alerts.sent "))
            .unwrap();
        // Other tests may send alerts concurrently: at least our 3.
        let v: u64 = line.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(v >= 3, "{line}");
        assert!(line.ends_with(" 160\n"));
        let rt = second
            .iter()
            .find(|l| l.starts_with("skyline.analyzer.h.run_time "))
            .unwrap();
        assert!(rt.split(' ').nth(1).unwrap().contains('.'), "seconds: {rt}");
        for l in &second {
            let parts: Vec<&str> = l.trim_end().split(' ').collect();
            assert_eq!(parts.len(), 3, "{l}");
            assert!(!parts[0].contains("{host}"), "{l}");
        }
    }
}
